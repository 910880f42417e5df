/* test_optim.c: AdamW, the cosine schedule and gradient clipping against torch.optim.AdamW,
 * torch.nn.utils.clip_grad_norm_ and ../shared/bench/ref_clip_fmnist.py's schedule; parameter
 * groups (per-tower lr scale and weight decay) against direct calls, bit for bit. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "core/safetensors.h"
#include "train/optim.h"
#include "fixtures.h"

Test(optim, adamw_clip_schedule_match_pytorch) {
    clasp_safetensors *st = fx_ref_open("optim/adamw.safetensors");
    cr_assert(st, "%s", clasp_last_error());
    const float *p0 = clasp_st_f32(st, clasp_st_find(st, "p0"));
    const clasp_st_tensor *tg = clasp_st_find(st, "grads");
    const float *grads = clasp_st_f32(st, tg);
    const clasp_st_tensor *tl = clasp_st_find(st, "lrs"), *tn = clasp_st_find(st, "norms");
    double lrs[6], norms[6];
    memcpy(lrs, tl->data, sizeof lrs);
    memcpy(norms, tn->data, sizeof norms);
    enum { N = 27, STEPS = 6 };
    cr_assert_eq(tg->shape[0], STEPS);
    cr_assert_eq(tg->shape[1], N);
    float p[N], g[N];
    memcpy(p, p0, sizeof p);
    clasp_param_seg segs[2] = {{0, 20, true, false, NULL}, {20, 7, false, false, NULL}};
    clasp_adamw_config cfg = clasp_adamw_default_config();
    cfg.lr = 1e-2;
    clasp_adamw o;
    cr_assert_eq(clasp_adamw_init(&o, N, cfg), CLASP_OK);
    for (int s = 0; s < STEPS; s++) {
        double lr = clasp_lr_cosine(s, 2, 6, 1e-2);
        cr_assert(fabs(lr - lrs[s]) < 1e-15, "lr step %d: %g vs %g", s, lr, lrs[s]);
        memcpy(g, grads + s * N, sizeof g);
        double norm = clasp_clip_grad_norm(g, segs, 2, 4.0);
        cr_assert(fabs(norm - norms[s]) < 1e-5 * norms[s], "norm step %d: %g vs %g", s, norm,
                  norms[s]);
        clasp_adamw_step(&o, p, g, segs, 2, lr);
    }
    cr_assert(clasp_test_check_tensor("adamw.p", p, clasp_st_f32(st, clasp_st_find(st, "p_final")),
                                      N, 1e-7, 1e-6));
    cr_assert(clasp_test_check_tensor(
        "adamw.m", o.m, clasp_st_f32(st, clasp_st_find(st, "m_final")), N, 1e-7, 1e-6));
    cr_assert(clasp_test_check_tensor(
        "adamw.v", o.v, clasp_st_f32(st, clasp_st_find(st, "v_final")), N, 1e-7, 1e-6));
    clasp_adamw_free(&o);
    clasp_st_free(st);
}

Test(optim, frozen_segments_do_not_move) {
    float p[4] = {1, 2, 3, 4}, g[4] = {1, 1, 1, 1};
    clasp_param_seg segs[2] = {{0, 2, true, true, NULL}, {2, 2, true, false, NULL}};
    clasp_adamw o;
    cr_assert_eq(clasp_adamw_init(&o, 4, clasp_adamw_default_config()), CLASP_OK);
    clasp_adamw_step(&o, p, g, segs, 2, 1e-2);
    cr_assert(p[0] == 1 && p[1] == 2 && o.m[0] == 0.0f);
    cr_assert(p[2] < 3 && p[3] < 4);
    /* the norm ignores frozen grads */
    cr_assert(fabs(clasp_clip_grad_norm(g, segs, 2, 0) - sqrt(2.0)) < 1e-12);
    clasp_adamw_free(&o);
}

Test(optim, schedule_shape) {
    cr_assert(fabs(clasp_lr_cosine(0, 100, 1170, 1e-3) - 1e-5) < 1e-18);
    cr_assert(fabs(clasp_lr_cosine(99, 100, 1170, 1e-3) - 1e-3) < 1e-18);
    cr_assert(fabs(clasp_lr_cosine(100, 100, 1170, 1e-3) - 1e-3) < 1e-18);
    cr_assert(fabs(clasp_lr_cosine(635, 100, 1170, 1e-3) - 0.5e-3) < 1e-12);
    cr_assert(clasp_lr_cosine(1169, 100, 1170, 1e-3) < 1e-8);
}

/* ---- parameter groups (--lr-scale, --tower-wd) ------------------------------------------ */

enum { GN = 48, GSTEPS = 5 };

/* Parameters and GSTEPS steps of gradients, from the counter RNG; p[3] is -0 (a sign an update
 * of zero must not flip). */
static void group_data_(float p[GN], float g[GSTEPS][GN]) {
    clasp_rng r;
    clasp_rng_init(&r, 7, CLASP_RNG_INIT, 0, 0);
    for (int i = 0; i < GN; i++) p[i] = (float)clasp_rng_normal(&r);
    p[3] = -0.0f;
    for (int s = 0; s < GSTEPS; s++)
        for (int i = 0; i < GN; i++) g[s][i] = (float)clasp_rng_normal(&r) * 0.1f;
}

/* From p0 (copied to p), GSTEPS steps of a fresh AdamW with config c over `segs`, scheduled
 * lr x lr_mult; its moments are copied to m and v when they are not NULL. */
static void group_run_(float *p, const float *p0, float g[GSTEPS][GN], clasp_adamw_config c,
                       const clasp_param_seg *segs, int n_segs, double lr_mult, float *m,
                       float *v) {
    if (p0) memcpy(p, p0, GN * sizeof(float));
    clasp_adamw o;
    cr_assert_eq(clasp_adamw_init(&o, GN, c), CLASP_OK);
    for (int s = 0; s < GSTEPS; s++)
        clasp_adamw_step(&o, p, g[s], segs, n_segs, clasp_lr_cosine(s, 2, GSTEPS, 1e-2) * lr_mult);
    if (m) memcpy(m, o.m, GN * sizeof(float));
    if (v) memcpy(v, o.v, GN * sizeof(float));
    clasp_adamw_free(&o);
}

static bool same_bits_(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof(float)) == 0;
}

/* A group with lr scale 0 keeps its parameters bit for bit (as frozen, -0 included) while its
 * moments follow the gradients; the other segments step exactly as beside a frozen one. */
Test(optim, lr_scale_zero_leaves_parameters_as_frozen) {
    float p0[GN], g[GSTEPS][GN], pa[GN], pb[GN], m[GN], v[GN];
    group_data_(p0, g);
    const clasp_adamw_config c = clasp_adamw_default_config();
    const clasp_param_group zero = {.lr_scale = 0, .weight_decay = 0.1};
    clasp_param_seg sa[2] = {{0, 20, true, false, &zero}, {20, GN - 20, true, false, NULL}};
    clasp_param_seg sb[2] = {{0, 20, true, true, NULL}, {20, GN - 20, true, false, NULL}};
    group_run_(pa, p0, g, c, sa, 2, 1, m, v);
    group_run_(pb, p0, g, c, sb, 2, 1, NULL, NULL);
    cr_assert(same_bits_(pa, p0, 20), "a tower with lr scale 0 moved");
    cr_assert(signbit(pa[3]), "-0 became +0");
    cr_assert(same_bits_(pa, pb, GN), "lr scale 0 differs from frozen");
    cr_assert(!same_bits_(pa + 20, p0 + 20, GN - 20), "the other segment did not train");
    cr_assert(m[0] != 0.0f && v[0] > 0.0f, "the moments of a scale-0 group stay updated");
}

/* A group with lr scale 0.5 takes exactly the step of a direct call at half the lr; the
 * segments without a group take the full lr's step. */
Test(optim, lr_scale_half_is_the_step_at_half_the_lr) {
    float p0[GN], g[GSTEPS][GN], pa[GN], pb[GN], pc[GN], ma[GN], mb[GN], va[GN], vb[GN];
    group_data_(p0, g);
    const clasp_adamw_config c = clasp_adamw_default_config();
    const clasp_param_group half = {.lr_scale = 0.5, .weight_decay = 0.1};
    clasp_param_seg sa[3] = {{0, 10, true, false, &half},
                             {10, 10, false, false, &half},
                             {20, GN - 20, true, false, NULL}};
    clasp_param_seg direct_half[2] = {{0, 10, true, false, NULL}, {10, 10, false, false, NULL}};
    clasp_param_seg direct_full[1] = {{20, GN - 20, true, false, NULL}};
    group_run_(pa, p0, g, c, sa, 3, 1, ma, va);
    group_run_(pb, p0, g, c, direct_half, 2, 0.5, mb, vb);
    group_run_(pb, NULL, g, c, direct_full, 1, 1, NULL, NULL);
    cr_assert(same_bits_(pa, pb, GN), "scale 0.5 is not the AdamW step of half the lr");
    cr_assert(same_bits_(ma, mb, 20) && same_bits_(va, vb, 20));
    /* and it differs from the full step (the comparison can fail) */
    group_run_(pc, p0, g, c, direct_half, 2, 1, NULL, NULL);
    cr_assert(!same_bits_(pa, pc, 20));
}

/* A group's weight decay applies to its decayed segments only: its other segments and the
 * segments of other groups keep theirs. */
Test(optim, group_weight_decay_applies_to_its_decayed_segments_only) {
    float p0[GN], g[GSTEPS][GN], pa[GN], pb[GN], pc[GN];
    group_data_(p0, g);
    const clasp_param_group strong = {.lr_scale = 1, .weight_decay = 3.0};
    clasp_param_seg sa[3] = {{0, 10, true, false, &strong},
                             {10, 10, false, false, &strong},
                             {20, GN - 20, true, false, NULL}};
    clasp_adamw_config c3 = clasp_adamw_default_config(), c0 = c3;
    c3.weight_decay = 3.0;
    c0.weight_decay = 0.1;
    clasp_param_seg d_decay[1] = {{0, 10, true, false, NULL}};
    clasp_param_seg d_rest[2] = {{10, 10, false, false, NULL}, {20, GN - 20, true, false, NULL}};
    group_run_(pa, p0, g, c0, sa, 3, 1, NULL, NULL);
    group_run_(pb, p0, g, c3, d_decay, 1, 1, NULL, NULL);
    group_run_(pb, NULL, g, c0, d_rest, 2, 1, NULL, NULL);
    cr_assert(same_bits_(pa, pb, GN), "the group's decay is not a direct call's with that wd");
    /* without the group's decay on its decayed segment, it would differ */
    group_run_(pc, p0, g, c0, d_decay, 1, 1, NULL, NULL);
    cr_assert(!same_bits_(pa, pc, 10));
}
