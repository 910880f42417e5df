/* test_engine.c: the compute engine. Exact gradient accumulation (batch 64 at once ==
 * accum 4 x 16), independence from the thread count, and replica consistency. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
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

/* One test's inputs: fmnist-small's config and a batch of up to 64 rows (make_batch_). */
typedef struct batch_ {
    clasp_model_config cfg;
    float img[64 * 28 * 28];
    int32_t tok[64 * 32], groups[64];
} batch_;

static batch_ *batch_new_(int B) {
    static batch_ b; /* one per test process */
    b.cfg = load_cfg_();
    make_batch_(B, b.img, b.tok, b.groups);
    return &b;
}

static double max_abs_(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

static float *grads_(const batch_ *in, int B, int accum, int chunks, int threads, bool multi,
                     float *loss, size_t *n) {
    clasp_engine e;
    clasp_engine_options o = {.batch_size = B,
                              .accum_steps = accum,
                              .chunks = chunks,
                              .threads = threads,
                              .loss = CLASP_LOSS_INFONCE,
                              .multi_positive = multi};
    cr_assert_eq(clasp_engine_init(&e, &in->cfg, &o), CLASP_OK, "%s", clasp_last_error());
    clasp_model_init_weights(&e.models[0], 7);
    clasp_engine_sync_params(&e);
    clasp_step_stats st;
    cr_assert_eq(clasp_engine_grads(&e, in->img, in->tok, in->groups, B, &st), CLASP_OK, "%s",
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

Test(engine, accumulation_equals_full_batch) {
    enum { B = 64 };
    batch_ *in = batch_new_(B);
    for (int multi = 0; multi < 2; multi++) {
        float l1, l4;
        size_t n;
        float *g1 = grads_(in, B, 1, 1, 1, multi, &l1, &n);
        float *g4 = grads_(in, B, 4, 1, 1, multi, &l4, &n);
        /* features of 16-row and 64-row forwards differ only by GEMM rounding */
        cr_assert(fabs((double)l1 - (double)l4) < 1e-5 * fabs((double)l1), "loss %.9g vs %.9g",
                  (double)l1, (double)l4);
        /* the same sums in a different order (dW over 16 rows four times vs 64 rows) */
        double maxg = max_abs_(g1, n);
        cr_assert(clasp_test_check_tensor(multi ? "accum4x16.grads.multipos" : "accum4x16.grads",
                                          g4, g1, n, 1e-6 * maxg, 1e-3));
        free(g1);
        free(g4);
    }
}

Test(engine, results_do_not_depend_on_thread_count) {
    enum { B = 32 };
    batch_ *in = batch_new_(B);
    float la, lb;
    size_t n;
    float *ga = grads_(in, B, 1, 2, 1, false, &la, &n);
    float *gb = grads_(in, B, 1, 2, 2, false, &lb, &n);
    cr_assert_eq(la, lb);
    cr_assert_eq(memcmp(ga, gb, n * sizeof(float)), 0, "2 chunks on 1 or 2 threads: same bits");
    /* and 2 chunks agree with 1 chunk to rounding */
    float lc;
    float *gc = grads_(in, B, 1, 1, 1, false, &lc, &n);
    double maxg = max_abs_(gc, n);
    cr_assert(clasp_test_check_tensor("chunks2_vs_1", ga, gc, n, 1e-6 * maxg, 1e-3));
    free(ga);
    free(gb);
    free(gc);
}

Test(engine, embed_matches_training_features) {
    enum { B = 16 };
    batch_ *in = batch_new_(B);
    clasp_engine e;
    clasp_engine_options o = {.batch_size = B, .accum_steps = 1, .chunks = 2, .threads = 2};
    cr_assert_eq(clasp_engine_init(&e, &in->cfg, &o), CLASP_OK, "%s", clasp_last_error());
    clasp_model_init_weights(&e.models[0], 3);
    clasp_engine_sync_params(&e);
    cr_assert_eq(clasp_engine_grads(&e, in->img, in->tok, in->groups, B, NULL), CLASP_OK);
    static float za[B * 128], zb[B * 128];
    memcpy(za, e.za, sizeof za);
    memcpy(zb, e.zb, sizeof zb);
    /* an odd count exercises the uneven split */
    static float ea[B * 128], eb[B * 128];
    cr_assert_eq(clasp_engine_embed(&e, CLASP_TOWER_IMAGE, in->img, 13, ea), CLASP_OK);
    cr_assert_eq(clasp_engine_embed(&e, CLASP_TOWER_TEXT, in->tok, B, eb), CLASP_OK);
    cr_assert(clasp_test_check_tensor("embed.image", ea, za, 13 * 128, 1e-6, 1e-5));
    cr_assert(clasp_test_check_tensor("embed.text", eb, zb, B * 128, 1e-6, 1e-5));
    clasp_engine_free(&e);
}
