/* test_optim.c: AdamW, the cosine schedule and gradient clipping against torch.optim.AdamW,
 * torch.nn.utils.clip_grad_norm_ and ../shared/bench/ref_clip_fmnist.py's schedule. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

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
    clasp_param_seg segs[2] = {{0, 20, true, false}, {20, 7, false, false}};
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
    clasp_param_seg segs[2] = {{0, 2, true, true}, {2, 2, true, false}};
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
