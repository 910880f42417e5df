/* test_engine.c: the compute engine. Exact gradient accumulation (batch 64 at once ==
 * accum 4 x 16), independence from the thread count, replica consistency, and the loss
 * registry through the engine (each registered loss equals its direct call bit for bit; a
 * stateful test-only entry runs without engine changes). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "encoders/layers.h"
#include "loss/infonce.h"
#include "loss/margin.h"
#include "loss/queue.h"
#include "loss/siglip.h"
#include "loss/supcon.h"
#include "loss/triplet.h"
#include "train/engine.h"
#include "fixtures.h"

static clasp_model_config load_cfg_(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    clasp_model_config cfg;
    cr_assert_eq(clasp_model_config_load(path, &cfg), CLASP_OK, "%s", clasp_last_error());
    return cfg;
}

/* Random images and real-looking token rows (BOS, bytes, EOS, PAD). */
static void make_batch_(int B, float *img, int32_t *tok, int32_t *groups) {
    clasp_rng r;
    clasp_rng_init(&r, 42, CLASP_RNG_TEST, 0, 0);
    for (int i = 0; i < B * 28 * 28; i++) img[i] = (float)clasp_rng_normal(&r);
    for (int b = 0; b < B; b++) {
        int len = 5 + (int)clasp_rng_below(&r, 20);
        int32_t *t = tok + b * 32;
        t[0] = 256;
        for (int i = 1; i <= len; i++) t[i] = 97 + (int)clasp_rng_below(&r, 26);
        t[len + 1] = 257;
        for (int i = len + 2; i < 32; i++) t[i] = 258;
        groups[b] = b % 10;
    }
}

/* The batch of a test: B <= MAX_B rows made by make_batch_ (Criterion runs each test in its
 * own process, so one static buffer serves them all). */
enum { MAX_B = 64, RD = 128 };
typedef struct test_batch {
    float img[MAX_B * 28 * 28];
    int32_t tok[MAX_B * 32], groups[MAX_B];
} test_batch;

static const test_batch *batch_(int B) {
    static test_batch b;
    cr_assert(B <= MAX_B);
    make_batch_(B, b.img, b.tok, b.groups);
    return &b;
}

static float *grads_(const clasp_model_config *cfg, int B, int accum, int chunks, int threads,
                     bool multi, const float *img, const int32_t *tok, const int32_t *groups,
                     float *loss, size_t *n) {
    clasp_engine e;
    clasp_engine_options o = {.batch_size = B,
                              .accum_steps = accum,
                              .chunks = chunks,
                              .threads = threads,
                              .multi_positive = multi};
    cr_assert_eq(clasp_engine_init(&e, cfg, &o), CLASP_OK, "%s", clasp_last_error());
    clasp_model_init_weights(&e.models[0], 7);
    clasp_engine_sync_params(&e);
    clasp_step_stats st;
    cr_assert_eq(clasp_engine_grads(&e, img, tok, groups, B, &st), CLASP_OK, "%s",
                 clasp_last_error());
    *n = e.models[0].n_floats;
    float *g = malloc(*n * sizeof(float));
    memcpy(g, e.models[0].grads, *n * sizeof(float));
    *loss = st.loss;
    cr_assert_eq(clasp_engine_diag(&e, &st), CLASP_OK);
    cr_assert(isfinite(st.loss) && st.feat_std_a > 0);
    clasp_engine_free(&e);
    return g;
}

/* got equals want to rounding (1e-6 of want's largest magnitude, or 1e-3 relative); frees
 * both (grads_'s results). */
static void check_grads_free_(const char *name, float *got, float *want, size_t n) {
    double maxg = 0;
    for (size_t i = 0; i < n; i++) maxg = fmax(maxg, fabs((double)want[i]));
    cr_assert(clasp_test_check_tensor(name, got, want, n, 1e-6 * maxg, 1e-3));
    free(got);
    free(want);
}

Test(engine, accumulation_equals_full_batch) {
    clasp_model_config cfg = load_cfg_();
    enum { B = 64 };
    const test_batch *tb = batch_(B);
    for (int multi = 0; multi < 2; multi++) {
        float l1, l4;
        size_t n;
        float *g1 = grads_(&cfg, B, 1, 1, 1, multi, tb->img, tb->tok, tb->groups, &l1, &n);
        float *g4 = grads_(&cfg, B, 4, 1, 1, multi, tb->img, tb->tok, tb->groups, &l4, &n);
        /* features of 16-row and 64-row forwards differ only by GEMM rounding */
        cr_assert(fabs((double)l1 - (double)l4) < 1e-5 * fabs((double)l1), "loss %.9g vs %.9g",
                  (double)l1, (double)l4);
        /* the same sums in a different order (dW over 16 rows four times vs 64 rows) */
        check_grads_free_(multi ? "accum4x16.grads.multipos" : "accum4x16.grads", g4, g1, n);
    }
}

Test(engine, results_do_not_depend_on_thread_count) {
    clasp_model_config cfg = load_cfg_();
    enum { B = 32 };
    const test_batch *tb = batch_(B);
    float la, lb;
    size_t n;
    float *ga = grads_(&cfg, B, 1, 2, 1, false, tb->img, tb->tok, tb->groups, &la, &n);
    float *gb = grads_(&cfg, B, 1, 2, 2, false, tb->img, tb->tok, tb->groups, &lb, &n);
    cr_assert_eq(la, lb);
    cr_assert_eq(memcmp(ga, gb, n * sizeof(float)), 0, "2 chunks on 1 or 2 threads: same bits");
    /* and 2 chunks agree with 1 chunk to rounding */
    float lc;
    float *gc = grads_(&cfg, B, 1, 1, 1, false, tb->img, tb->tok, tb->groups, &lc, &n);
    free(gb);
    check_grads_free_("chunks2_vs_1", ga, gc, n);
}

Test(engine, embed_matches_training_features) {
    clasp_model_config cfg = load_cfg_();
    enum { B = 16 };
    const test_batch *tb = batch_(B);
    clasp_engine e;
    clasp_engine_options o = {.batch_size = B, .accum_steps = 1, .chunks = 2, .threads = 2};
    cr_assert_eq(clasp_engine_init(&e, &cfg, &o), CLASP_OK, "%s", clasp_last_error());
    clasp_model_init_weights(&e.models[0], 3);
    clasp_engine_sync_params(&e);
    cr_assert_eq(clasp_engine_grads(&e, tb->img, tb->tok, tb->groups, B, NULL), CLASP_OK);
    static float za[B * 128], zb[B * 128];
    memcpy(za, e.za, sizeof za);
    memcpy(zb, e.zb, sizeof zb);
    /* an odd count exercises the uneven split */
    static float ea[B * 128], eb[B * 128];
    cr_assert_eq(clasp_engine_embed(&e, CLASP_TOWER_IMAGE, tb->img, 13, ea), CLASP_OK);
    cr_assert_eq(clasp_engine_embed(&e, CLASP_TOWER_TEXT, tb->tok, B, eb), CLASP_OK);
    cr_assert(clasp_test_check_tensor("embed.image", ea, za, 13 * 128, 1e-6, 1e-5));
    cr_assert(clasp_test_check_tensor("embed.text", eb, zb, B * 128, 1e-6, 1e-5));
    clasp_engine_free(&e);
}

/* ---- the loss registry through the engine ------------------------------------------------ */

/* An engine of B rows for loss `def` after one step on the test batch. */
static void registry_step_(clasp_engine *e, clasp_model_config *cfg, const clasp_loss_def *def,
                           bool multi, int B, const test_batch *tb, clasp_step_stats *st) {
    cfg->has_logit_bias = true; /* every loss may ask for it; those that do not, ignore it */
    cfg->init_logit_bias = -10.0;
    clasp_engine_options o = {.batch_size = B,
                              .accum_steps = 1,
                              .chunks = 2,
                              .threads = 2,
                              .loss = {.def = def},
                              .multi_positive = multi};
    cr_assert_eq(clasp_engine_init(e, cfg, &o), CLASP_OK, "%s", clasp_last_error());
    clasp_model_init_weights(&e->models[0], 11);
    clasp_engine_sync_params(e);
    cr_assert_eq(clasp_engine_grads(e, tb->img, tb->tok, tb->groups, B, st), CLASP_OK, "%s",
                 clasp_last_error());
}

/* Engine options of 16 rows, 2 chunks on 2 threads, for loss def with option name = value. */
static clasp_engine_options reg_options_(const clasp_loss_def *def, const char *name,
                                         const char *value) {
    clasp_engine_options o = {
        .batch_size = 16, .accum_steps = 1, .chunks = 2, .threads = 2, .loss = {.def = def}};
    cr_assert_eq(clasp_loss_config_set(&o.loss, name, value), CLASP_OK, "%s", clasp_last_error());
    return o;
}

static float scalar_(const clasp_model *m, const float *buf, clasp_loss_scalar s) {
    return buf[s == CLASP_LOSS_SCALAR_LOGIT_BIAS ? (size_t)m->logit_bias_offset
                                                 : m->logit_scale_offset];
}

/* The direct calls of the losses on the stacked sides Z = [za; zb] (loss/registry.h, the
 * replicated recipe) and of margin; false for a name it does not know. Label losses get the
 * batch's groups (the engine passes them whether or not --multi-positive is given). */
static bool direct_stacked_(const char *name, float *loss, float *dA, float *dB, float *ds,
                            const float *za, const float *zb, float s, const int *groups, int B,
                            int D) {
    static float Z[2 * 16 * RD], dZ[2 * 16 * RD], work[8 * 16 * 16 + 8 * 16 * RD + 64];
    static int lab[32];
    cr_assert(B <= 16 && D == RD);
    const size_t nd = (size_t)B * (size_t)D;
    memcpy(Z, za, nd * sizeof *Z);
    memcpy(Z + nd, zb, nd * sizeof *Z);
    for (int i = 0; i < B; i++) lab[i] = lab[B + i] = groups[i];
    const float tau = expf(-s);
    float dtau = 0;
    *ds = 0; /* losses without a learnable scalar */
    if (!strcmp(name, "supcon")) {
        cr_assert_eq(
            clasp_supcon(loss, dZ, &dtau, NULL, Z, lab, tau, 0, 2 * (size_t)B, (size_t)D, work),
            CLASP_OK);
        *ds = -tau * dtau;
    } else if (!strcmp(name, "ntxent")) {
        cr_assert_eq(
            clasp_ntxent(loss, dZ, dZ + nd, &dtau, za, zb, tau, 0, (size_t)B, (size_t)D, work),
            CLASP_OK);
        *ds = -tau * dtau;
    } else if (!strcmp(name, "triplet")) {
        cr_assert_eq(clasp_triplet(loss, dZ, NULL, Z, lab, 0.2f, CLASP_TRIPLET_DISTANCE_COSINE,
                                   CLASP_TRIPLET_MINING_BATCH_HARD, 2 * (size_t)B, (size_t)D, work),
                     CLASP_OK);
    } else if (!strcmp(name, "margin")) {
        cr_assert_eq(clasp_margin_cross(loss, dA, dB, za, zb, groups, 1.0f, (size_t)B, 0, (size_t)B,
                                        (size_t)D),
                     CLASP_OK);
        return true;
    } else {
        return false;
    }
    memcpy(dA, dZ, nd * sizeof *dA);
    memcpy(dB, dZ + nd, nd * sizeof *dB);
    return true;
}

Test(engine, registry_losses_equal_the_direct_call_bit_for_bit) {
    clasp_model_config cfg = load_cfg_();
    enum { B = 16, D = RD };
    const test_batch *tb = batch_(B);
    static float work[B * B + 4 * B], dA[B * D], dB[B * D];
    int groups_int[B];
    for (int i = 0; i < B; i++) groups_int[i] = tb->groups[i];
    for (int li = 0; li < clasp_loss_count(); li++) {
        const clasp_loss_def *def = clasp_loss_at(li);
        for (int multi = 0; multi < 2; multi++) {
            clasp_engine e;
            clasp_step_stats st;
            registry_step_(&e, &cfg, def, multi, B, tb, &st);
            const clasp_model *m = &e.models[0];
            float s = scalar_(m, m->params, CLASP_LOSS_SCALAR_LOGIT_SCALE);
            float bias = scalar_(m, m->params, CLASP_LOSS_SCALAR_LOGIT_BIAS);
            const int *g = multi ? groups_int : NULL;
            float loss = NAN, ds[2] = {NAN, NAN};
            if (!strcmp(def->name, "infonce")) {
                cr_assert_eq(clasp_infonce(&loss, dA, dB, &ds[0], e.za, e.zb, s, g, B, D, work),
                             CLASP_OK);
            } else if (!strcmp(def->name, "siglip")) {
                cr_assert_eq(clasp_siglip(&loss, dA, dB, &ds[0], &ds[1], e.za, e.zb, s, bias, g, B,
                                          0, B, D, work),
                             CLASP_OK);
            } else if (!direct_stacked_(def->name, &loss, dA, dB, &ds[0], e.za, e.zb, s, groups_int,
                                        B, D)) {
                cr_assert_fail("registered loss %s has no direct call in this test", def->name);
            }
            cr_assert_eq(memcmp(&loss, &st.loss, sizeof loss), 0, "%s: loss %.9g vs %.9g",
                         def->name, (double)st.loss, (double)loss);
            cr_assert_eq(memcmp(dA, e.dza, sizeof dA), 0, "%s multi %d: dA", def->name, multi);
            cr_assert_eq(memcmp(dB, e.dzb, sizeof dB), 0, "%s multi %d: dB", def->name, multi);
            /* the scalar gradients land on their parameters (nothing else writes there) */
            for (int k = 0; k < def->n_scalars; k++) {
                float got = scalar_(m, m->grads, def->scalars[k]);
                cr_assert_eq(memcmp(&got, &ds[k], sizeof got), 0, "%s: dscalar %d", def->name, k);
            }
            cr_assert_eq(memcmp(&st.dlog_scale, &ds[0], sizeof ds[0]), 0);
            if (def->n_scalars < 2)
                cr_assert_eq(scalar_(m, m->grads, CLASP_LOSS_SCALAR_LOGIT_BIAS), 0.0f,
                             "%s does not train the bias", def->name);
            clasp_engine_free(&e);
        }
    }
}

Test(engine, registry_loss_needs_what_the_model_has) {
    clasp_model_config cfg = load_cfg_();
    cfg.has_logit_bias = false;
    const clasp_loss_def *sig = NULL;
    cr_assert_eq(clasp_loss_find("siglip", &sig), CLASP_OK);
    clasp_engine e;
    clasp_engine_options o = {.batch_size = 8, .accum_steps = 1, .loss = {.def = sig}};
    cr_assert_eq(clasp_engine_init(&e, &cfg, &o), CLASP_ERR_CONFIG);
    cr_assert(strstr(clasp_last_error(), "loss siglip needs 'init_logit_bias'"), "%s",
              clasp_last_error());
}

/* A stateful loss that is NOT registered, built only from loss/ and an entry, to show that
 * the interface carries what issue 14 needs without engine changes: a MoCo-style key queue
 * (state, checkpoint tensors, fed from the gathered keys), keys without gradient (only da
 * written: the engine zeroes db), a fixed temperature option, and required group ids. */
typedef struct toy_state {
    clasp_queue q;
} toy_state;

static size_t toy_work_(const clasp_loss_setup *s) {
    return clasp_moco_work_floats(s->n, 64);
}

static clasp_status toy_init_(void **state, const clasp_loss_setup *s) {
    toy_state *t = calloc(1, sizeof *t);
    cr_assert(t);
    *state = t;
    return clasp_queue_init(&t->q, 64, s->D);
}

static void toy_free_(void *state) {
    toy_state *t = state;
    if (t) clasp_queue_free(&t->q);
    free(t);
}

static int toy_tensors_(void *state, clasp_loss_tensor *out, int max) {
    toy_state *t = state;
    if (max < 1) return 0;
    out[0] = (clasp_loss_tensor){.name = "loss.queue",
                                 .ndim = 2,
                                 .shape = {(int64_t)t->q.K, (int64_t)t->q.D},
                                 .data = t->q.keys};
    return 1;
}

static clasp_status toy_compute_(const clasp_loss_batch *in, clasp_loss_grads *out) {
    toy_state *t = in->state;
    cr_assert(in->groups, "NEEDS_GROUPS: groups are passed without --multi-positive");
    float tau = (float)clasp_loss_config_get(in->cfg, 0);
    CLASP_TRY(clasp_moco_infonce(&out->loss, out->da, NULL, NULL, in->a, in->b, &t->q, tau, in->n,
                                 in->D, in->work));
    out->wrote = CLASP_LOSS_WROTE_A;
    return clasp_queue_enqueue(&t->q, in->b_all, in->N);
}

static const clasp_loss_option toy_opts_[] = {{.name = "temperature",
                                               .help = "fixed temperature",
                                               .def = 0.07,
                                               .max = 10,
                                               .min_exclusive = true}};
static const clasp_loss_def toy_moco_ = {.name = "toy-moco",
                                         .summary = "test only",
                                         .needs = CLASP_LOSS_NEEDS_GROUPS,
                                         .n_options = 1,
                                         .options = toy_opts_,
                                         .work_floats = toy_work_,
                                         .compute = toy_compute_,
                                         .state_init = toy_init_,
                                         .state_free = toy_free_,
                                         .state_tensors = toy_tensors_};

Test(engine, stateful_loss_through_the_entry_alone) {
    clasp_engine_options o = reg_options_(&toy_moco_, "temperature", "0.2");
    clasp_model_config cfg = load_cfg_();
    clasp_engine e;
    cr_assert_eq(clasp_engine_init(&e, &cfg, &o), CLASP_OK, "%s", clasp_last_error());
    clasp_model_init_weights(&e.models[0], 5);
    clasp_engine_sync_params(&e);
    enum { B = 16, D = RD };
    const test_batch *rb = batch_(B);
    clasp_step_stats st;
    cr_assert_eq(clasp_engine_grads(&e, rb->img, rb->tok, NULL, B, &st), CLASP_ERR_ARG,
                 "no groups");
    cr_assert(strstr(clasp_last_error(), "toy-moco needs group ids"), "%s", clasp_last_error());

    /* the reference: the same calls by hand on the engine's features */
    clasp_queue q;
    cr_assert_eq(clasp_queue_init(&q, 64, D), CLASP_OK);
    static float work[B * 65], dq[B * D], zeros[B * D];
    for (int step = 0; step < 3; step++) {
        cr_assert_eq(clasp_engine_grads(&e, rb->img, rb->tok, rb->groups, B, &st), CLASP_OK, "%s",
                     clasp_last_error());
        float loss;
        cr_assert_eq(clasp_moco_infonce(&loss, dq, NULL, NULL, e.za, e.zb, &q, 0.2f, B, D, work),
                     CLASP_OK);
        cr_assert_eq(clasp_queue_enqueue(&q, e.zb, B), CLASP_OK);
        cr_assert_eq(memcmp(&loss, &st.loss, sizeof loss), 0, "step %d: %.9g vs %.9g", step,
                     (double)st.loss, (double)loss);
        cr_assert(step == 0 ? loss == 0.0f : loss > 0.0f, "the queue fills: step %d", step);
        cr_assert_eq(memcmp(dq, e.dza, sizeof dq), 0, "step %d: dA", step);
        cr_assert_eq(memcmp(zeros, e.dzb, sizeof zeros), 0, "keys get no gradient");
    }
    clasp_loss_tensor t[2];
    cr_assert_eq(clasp_engine_loss_tensors(&e, t, 2), 1);
    cr_assert_str_eq(t[0].name, "loss.queue");
    cr_assert(t[0].ndim == 2 && t[0].shape[0] == 64 && t[0].shape[1] == D);
    cr_assert_eq(memcmp(t[0].data, q.keys, 64 * D * sizeof(float)), 0, "the queue's keys");
    clasp_queue_free(&q);
    clasp_engine_free(&e);
}

/* A two-view loss (SimCLR's pairing, not registered): NT-Xent of two views of the image tower. */
static size_t views_work_(const clasp_loss_setup *s) {
    return clasp_ntxent_work_floats(s->N, s->D);
}

static clasp_status views_compute_(const clasp_loss_batch *in, clasp_loss_grads *out) {
    CLASP_TRY(clasp_ntxent(&out->loss, out->da, out->db, NULL, in->a, in->b, 0.5f, 0, in->N, in->D,
                           in->work));
    out->wrote = CLASP_LOSS_WROTE_A | CLASP_LOSS_WROTE_B;
    return CLASP_OK;
}

static const clasp_loss_def views_ntxent_ = {.name = "toy-ntxent",
                                             .summary = "test only",
                                             .needs = CLASP_LOSS_NEEDS_TWO_VIEWS,
                                             .work_floats = views_work_,
                                             .compute = views_compute_};

/* The second "augmented view": a contrast and brightness change of the first. */
static const float *second_view_(const float *img, int B) {
    static float v[MAX_B * 28 * 28];
    for (int i = 0; i < B * 28 * 28; i++) v[i] = 0.5f * img[i] + 0.1f;
    return v;
}

Test(engine, two_views_of_one_tower) {
    clasp_model_config cfg = load_cfg_();
    enum { B = 16, D = RD };
    const test_batch *tb = batch_(B);
    const float *view2 = second_view_(tb->img, B);
    /* a loss without two views refuses one tower with itself */
    clasp_engine e;
    clasp_engine_options o = {.batch_size = B, .accum_steps = 1, .chunks = 1, .threads = 1};
    cr_assert_eq(clasp_engine_init(&e, &cfg, &o), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_engine_grads_pair(&e, CLASP_TOWER_IMAGE, tb->img, CLASP_TOWER_IMAGE, view2,
                                         NULL, B, NULL),
                 CLASP_ERR_ARG);
    clasp_engine_free(&e);

    o.loss.def = &views_ntxent_;
    cr_assert_eq(clasp_engine_init(&e, &cfg, &o), CLASP_OK, "%s", clasp_last_error());
    clasp_model_init_weights(&e.models[0], 9);
    clasp_engine_sync_params(&e);
    clasp_step_stats st;
    cr_assert_eq(clasp_engine_grads_pair(&e, CLASP_TOWER_IMAGE, tb->img, CLASP_TOWER_IMAGE, view2,
                                         NULL, B, &st),
                 CLASP_OK, "%s", clasp_last_error());
    static float work[4 * B * B + 6 * B * D + 4 * B], dA[B * D], dB[B * D];
    float loss;
    cr_assert_eq(clasp_ntxent(&loss, dA, dB, NULL, e.za, e.zb, 0.5f, 0, B, D, work), CLASP_OK);
    cr_assert_eq(memcmp(&loss, &st.loss, sizeof loss), 0);
    cr_assert(memcmp(e.za, e.zb, sizeof dA) != 0, "two different views");
    cr_assert_eq(memcmp(dA, e.dza, sizeof dA), 0);
    cr_assert_eq(memcmp(dB, e.dzb, sizeof dB), 0);

    /* by hand: each view's forward right before its backward, both into the image tower */
    clasp_model m;
    cr_assert_eq(clasp_model_init(&m, &cfg), CLASP_OK);
    cr_assert_eq(clasp_model_prepare(&m, B), CLASP_OK);
    clasp_model_init_weights(&m, 9);
    clasp_model_zero_grad(&m);
    static float f[B * D], df[B * D];
    const float *views[2] = {tb->img, view2}, *dz[2] = {e.dza, e.dzb}, *z[2] = {e.za, e.zb};
    const float *nrm[2] = {e.na, e.nb};
    for (int v = 0; v < 2; v++) {
        cr_assert_eq(clasp_model_encode(&m, CLASP_TOWER_IMAGE, views[v], B, f), CLASP_OK);
        memset(df, 0, sizeof df);
        clasp_l2norm_backward(df, dz[v], z[v], nrm[v], B, D);
        cr_assert_eq(clasp_model_backward(&m, CLASP_TOWER_IMAGE, df), CLASP_OK);
    }
    cr_assert_eq(memcmp(m.grads, e.models[0].grads, m.n_floats * sizeof(float)), 0,
                 "the tower's gradient sums both views' backward");
    const clasp_param_range *rt = &m.range[CLASP_TOWER_TEXT];
    for (size_t i = 0; i < rt->n_floats; i++)
        cr_assert_eq(e.models[0].grads[rt->offset + i], 0.0f, "the text tower is not trained");
    clasp_model_free(&m);
    clasp_engine_free(&e);
}

/* A loss whose keys come from a momentum copy of the key tower (MoCo's key encoder; not
 * registered): InfoNCE of the queries against the keys, gradient through the queries only. */
static size_t keys_work_(const clasp_loss_setup *s) {
    return clasp_infonce_work_floats(s->N);
}

static clasp_status keys_compute_(const clasp_loss_batch *in, clasp_loss_grads *out) {
    CLASP_TRY(clasp_infonce(&out->loss, out->da, NULL, &out->dscalars[0], in->a, in->b,
                            in->scalars[0], NULL, in->N, in->D, in->work));
    out->wrote = CLASP_LOSS_WROTE_A;
    return CLASP_OK;
}

static const clasp_loss_option keys_opts_[] = {
    {.name = "momentum", .help = "EMA coefficient", .def = 0.999, .max = 1}};
static const clasp_loss_def keys_loss_ = {.name = "toy-momentum",
                                          .summary = "test only",
                                          .needs = CLASP_LOSS_NEEDS_MOMENTUM_KEYS,
                                          .n_scalars = 1,
                                          .scalars = {CLASP_LOSS_SCALAR_LOGIT_SCALE},
                                          .n_options = 1,
                                          .options = keys_opts_,
                                          .work_floats = keys_work_,
                                          .compute = keys_compute_};

/* The text features a default-loss engine computes with parameters p (same chunking). */
static void plain_keys_(const clasp_model_config *cfg, const float *p, const test_batch *tb, int B,
                        float *zb) {
    clasp_engine e;
    clasp_engine_options o = {.batch_size = B, .accum_steps = 1, .chunks = 2, .threads = 2};
    cr_assert_eq(clasp_engine_init(&e, cfg, &o), CLASP_OK);
    memcpy(e.models[0].params, p, e.models[0].n_floats * sizeof(float));
    clasp_engine_sync_params(&e);
    cr_assert_eq(clasp_engine_grads(&e, tb->img, tb->tok, NULL, B, NULL), CLASP_OK);
    memcpy(zb, e.zb, (size_t)B * RD * sizeof(float));
    clasp_engine_free(&e);
}

Test(engine, momentum_keys) {
    clasp_model_config cfg = load_cfg_();
    enum { B = 16, D = RD };
    const test_batch *tb = batch_(B);
    clasp_engine e;
    clasp_engine_options o = reg_options_(&keys_loss_, "momentum", "0.9");
    cr_assert_eq(clasp_engine_init(&e, &cfg, &o), CLASP_OK, "%s", clasp_last_error());
    cr_assert(e.key_models && e.momentum == 0.9f);
    clasp_model *m = &e.models[0];
    const size_t n = m->n_floats;
    clasp_model_init_weights(m, 5);
    clasp_engine_sync_params(&e); /* the copy starts as the parameters */
    cr_assert_eq(memcmp(e.key_models[0].params, m->params, n * sizeof(float)), 0);
    static float zb[B * D];
    clasp_step_stats st;
    cr_assert_eq(clasp_engine_grads(&e, tb->img, tb->tok, NULL, B, &st), CLASP_OK, "%s",
                 clasp_last_error());
    plain_keys_(&cfg, m->params, tb, B, zb);
    cr_assert_eq(memcmp(zb, e.zb, sizeof zb), 0, "step 1: keys from the copy = the parameters");
    const clasp_param_range *rt = &m->range[CLASP_TOWER_TEXT], *ri = &m->range[CLASP_TOWER_IMAGE];
    for (size_t i = 0; i < rt->n_floats; i++)
        cr_assert_eq(m->grads[rt->offset + i], 0.0f, "the key tower gets no gradient");
    double gi = 0;
    for (size_t i = 0; i < ri->n_floats; i++) gi += fabs((double)m->grads[ri->offset + i]);
    cr_assert(gi > 0, "the query tower does");

    /* an "optimiser step", then the EMA update */
    float *want = malloc(n * sizeof(float));
    memcpy(want, e.key_models[0].params, n * sizeof(float));
    for (size_t i = 0; i < n; i++) m->params[i] += 0.01f * (float)(i % 7);
    clasp_engine_sync_params(&e);
    clasp_engine_momentum_update(&e);
    clasp_momentum_update(want, m->params, n, 0.9f);
    cr_assert_eq(memcmp(want, e.key_models[0].params, n * sizeof(float)), 0);
    cr_assert_eq(clasp_engine_grads(&e, tb->img, tb->tok, NULL, B, &st), CLASP_OK);
    plain_keys_(&cfg, want, tb, B, zb);
    cr_assert_eq(memcmp(zb, e.zb, sizeof zb), 0, "step 2: keys from the EMA parameters");

    /* checkpoint tensors: restoring them survives the first sync of a fresh engine */
    clasp_loss_tensor t[4];
    cr_assert_eq(clasp_engine_loss_tensors(&e, t, 4), 2);
    cr_assert_str_eq(t[0].name, "momentum.params");
    cr_assert(t[0].ndim == 1 && t[0].shape[0] == (int64_t)n && t[0].data == e.key_models[0].params);
    cr_assert_str_eq(t[1].name, "momentum.ready");
    clasp_engine e2;
    cr_assert_eq(clasp_engine_init(&e2, &cfg, &o), CLASP_OK);
    memcpy(e2.models[0].params, m->params, n * sizeof(float));
    clasp_loss_tensor t2[4];
    cr_assert_eq(clasp_engine_loss_tensors(&e2, t2, 4), 2);
    for (int k = 0; k < 2; k++)
        memcpy(t2[k].data, t[k].data, (size_t)t[k].shape[0] * sizeof(float));
    clasp_engine_sync_params(&e2);
    cr_assert_eq(memcmp(want, e2.key_models[0].params, n * sizeof(float)), 0);
    free(want);
    clasp_engine_free(&e2);
    clasp_engine_free(&e);
}
