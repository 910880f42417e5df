/* test_knn.c: k-NN accuracy (eval/knn.c): hand-made cases with known answers (weighted vote vs
 * plain majority, ties, unlabelled rows, k beyond the reference set, errors), and `clasp eval
 * --knn` on a briefly trained Fashion-MNIST model (well above chance). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "eval/eval.h"
#include "fixtures.h"

#define PI 3.14159265358979323846

/* Unit vectors at the given angles (degrees) into x (n, 2). */
static void at_(float *x, const double *deg, int n) {
    for (int i = 0; i < n; i++) {
        x[2 * i] = (float)cos(deg[i] * PI / 180);
        x[2 * i + 1] = (float)sin(deg[i] * PI / 180);
    }
}

/* Accuracy of the query (1, 0) labelled y against the reference rows below, whose cosine
 * similarities to it are exact in float (x * 1 + y * 0). */
static double one_(int64_t y, int k, double tau, clasp_knn_result *r) {
    static const float ref[7 * 2] = {
        0.0f,  1.0f,  /* row 0, class 0: s = 0 */
        -1.0f, 0.0f,  /* row 1, class 0: s = -1 */
        0.6f,  0.8f,  /* row 2, class 0: s = 0.6 */
        0.8f,  0.6f,  /* row 3, class 1: s = 0.8 */
        0.6f,  -0.8f, /* row 4, class 1: s = 0.6, tied with row 2 */
        -0.6f, 0.8f,  /* row 5, class 2: s = -0.6 */
        1.0f,  0.0f,  /* row 6, unlabelled: s = 1, never a neighbour */
    };
    static const int64_t ref_y[7] = {0, 0, 0, 1, 1, 2, -1};
    static const float q[2] = {1.0f, 0.0f};
    cr_assert_eq(clasp_knn(ref, ref_y, 7, q, &y, 1, 2, k, tau, r), CLASP_OK, "%s",
                 clasp_last_error());
    return r->accuracy;
}

Test(knn, known_answers) {
    clasp_knn_result r;
    cr_assert_eq(one_(1, 1, 0.07, &r), 1.0, "the nearest row is row 3, class 1");
    cr_assert_eq(r.k, 1);
    cr_assert_eq(r.n_train, 6, "the unlabelled row is no neighbour");
    cr_assert_eq(r.n_test, 1);
    cr_assert_eq(r.n_classes, 3);
    /* k = 2: row 3 (class 1, s 0.8), then rows 2 (class 0) and 4 (class 1) tie at 0.6 and the
     * lower row, 2, is the second neighbour. Weighted by exp(s / 0.07) class 1 wins; by plain
     * majority 1 : 1 ties and the lower class, 0, wins. */
    cr_assert_eq(one_(1, 2, 0.07, &r), 1.0);
    cr_assert_eq(one_(0, 2, 0.07, &r), 0.0);
    cr_assert_eq(one_(0, 2, 0, &r), 1.0);
    cr_assert_eq(one_(1, 2, 0, &r), 0.0);
    /* k = 3 takes both tied rows: class 1 by majority too */
    cr_assert_eq(one_(1, 3, 0, &r), 1.0);
    /* k beyond the reference set: the 6 labelled rows vote; majority: class 0 (3 rows);
     * weighted by exp(s / 0.07): class 1 (s 0.8 and 0.6); near-uniform weights (tau 100):
     * class 0 again */
    cr_assert_eq(one_(0, 50, 0, &r), 1.0);
    cr_assert_eq(r.k, 6);
    cr_assert_eq(one_(1, 50, 0.07, &r), 1.0);
    cr_assert_eq(one_(0, 50, 100, &r), 1.0);
}

Test(knn, several_queries_unlabelled_queries_and_errors) {
    const double ref_deg[4] = {0, 90, 180, 270}, q_deg[5] = {1, 89, 181, 269, 30};
    const int64_t ref_y[4] = {0, 1, 0, 1}, q_y[5] = {0, 1, 1, -1, 0};
    float xr[8], xq[10];
    at_(xr, ref_deg, 4);
    at_(xq, q_deg, 5);
    clasp_knn_result r;
    /* k = 1: hit, hit, miss (181 -> 180, class 0), unlabelled, hit (30 -> 0) */
    cr_assert_eq(clasp_knn(xr, ref_y, 4, xq, q_y, 5, 2, 1, 0.07, &r), CLASP_OK);
    cr_assert_eq(r.n_test, 4);
    cr_assert_float_eq(r.accuracy, 0.75, 1e-12);
    cr_assert_eq(clasp_knn(xr, ref_y, 4, xq, q_y, 5, 2, 0, 0.07, &r), CLASP_ERR_ARG);
    const int64_t none[4] = {-1, -1, -1, -1};
    cr_assert_eq(clasp_knn(xr, none, 4, xq, q_y, 5, 2, 1, 0.07, &r), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "no labelled row"), "%s", clasp_last_error());
}

/* 600 random queries against 700 random references: the brute-force answer (full scan) equals
 * clasp_knn's, across several blocks of queries. The coordinates are multiples of 1/8 in
 * [-1, 1], so every dot product is exact in any summation order (and ties are frequent: the
 * lower row must win in both). */
Test(knn, equals_brute_force_over_blocks) {
    enum { NR = 700, NQ = 600, D = 8, K = 5, C = 4 };
    static float xr[NR * D], xq[NQ * D];
    static int64_t yr[NR], yq[NQ], yq0[NQ];
    uint8_t *bytes = fx_random_pixels(NR + NQ, D, 1, 77);
    for (int i = 0; i < NR + NQ; i++) {
        float *x = i < NR ? xr + i * D : xq + (i - NR) * D;
        for (int d = 0; d < D; d++) x[d] = (float)(bytes[i * D + d] % 17) / 8.0f - 1.0f;
        if (i < NR) yr[i] = i % C;
    }
    free(bytes);
    int64_t hits = 0;
    for (int q = 0; q < NQ; q++) {
        /* the brute force: K best by (similarity desc, row asc), weights exp(s / 0.07) */
        int best[K];
        float bs[K];
        for (int t = 0; t < K; t++) {
            best[t] = -1;
            for (int i = 0; i < NR; i++) {
                bool used = false;
                for (int u = 0; u < t; u++) used |= best[u] == i;
                if (used) continue;
                float s = 0;
                for (int d = 0; d < D; d++) s += xq[q * D + d] * xr[i * D + d];
                if (best[t] < 0 || s > bs[t]) best[t] = i, bs[t] = s;
            }
        }
        /* weighted by exp(s / 0.07), and plain majority (where the tied rows at rank K decide
         * more often) */
        double w[C] = {0}, w0[C] = {0};
        for (int t = 0; t < K; t++) {
            w[yr[best[t]]] += exp((double)bs[t] / 0.07);
            w0[yr[best[t]]] += 1;
        }
        int c = 0, c0 = 0;
        for (int k = 1; k < C; k++) {
            if (w[k] > w[c]) c = k;
            if (w0[k] > w0[c0]) c0 = k;
        }
        yq[q] = q % 3 ? c : (c + 1) % C; /* two thirds right, one third wrong */
        yq0[q] = q % 3 ? c0 : (c0 + 1) % C;
        hits += q % 3 != 0;
    }
    clasp_knn_result r;
    cr_assert_eq(clasp_knn(xr, yr, NR, xq, yq, NQ, D, K, 0.07, &r), CLASP_OK);
    cr_assert_float_eq(r.accuracy, (double)hits / NQ, 1e-12, "%g", r.accuracy);
    cr_assert_eq(clasp_knn(xr, yr, NR, xq, yq0, NQ, D, K, 0, &r), CLASP_OK);
    cr_assert_float_eq(r.accuracy, (double)hits / NQ, 1e-12, "majority: %g", r.accuracy);
}

/* clasp eval --knn on a model trained for a few steps: well above chance (10%), in the text and
 * the JSON output; --knn without a reference set is a usage error. */
Test(knn, trained_model_well_above_chance) {
    struct stat sb;
    if (stat("/usr/share/datasets/fashion-mnist", &sb) != 0)
        cr_skip_test("dataset-fashion-mnist is not installed");
    char base[4096], data[FX_PATH], run[FX_PATH];
    fx_scratch("knn_trained", base, data, "fmnist", run, "run", NULL);
    cr_assert_eq(fx_fmnist_shards(data), 0);
    cr_assert_eq(fx_clasp(NULL,
                          "train --model %s/configs/fmnist-small.json --train "
                          "'%s/train-{000000..000004}.tar' --out %s --batch-size 64 --steps 20 "
                          "--warmup 2 --no-progress >%s.log 2>&1",
                          CLASP_SOURCE_DIR, data, run, run),
                 0);
    char *out = NULL;
    int rc = fx_clasp(&out,
                      "eval --model %s --data '%s/test-{000000..000004}.tar' --probe-train "
                      "'%s/train-{000000..000004}.tar' --knn 20 --json 2>%s.eval",
                      run, data, data, run);
    cr_assert_eq(rc, 0);
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "%s", out);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "knn");
    cr_assert_not_null(k, "%s", out);
    double acc = cJSON_GetObjectItemCaseSensitive(k, "accuracy")->valuedouble;
    cr_assert_gt(acc, 0.5, "20-NN accuracy %g (chance 0.1)", acc);
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(k, "k")->valueint, 20);
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(k, "n_test")->valueint, 640);
    cJSON_Delete(j);
    free(out);
    char path[FX_PATH + 16];
    snprintf(path, sizeof path, "%s.eval", run);
    char *text = fx_read_text(path);
    cr_assert(strstr(text, "20-NN (640 reference, 640 test, 10 classes"), "%s", text);
    free(text);
    cr_assert_eq(fx_clasp(NULL, "eval --model %s --data '%s/test-000000.tar' --knn 5 2>/dev/null",
                          run, data),
                 2);
}
