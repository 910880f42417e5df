/* test_drift.c: the drift metrics (eval/drift.h) on known cases: identical sets (no drift), a
 * random orthogonal rotation of the embedding space (cosine ~0, same neighbourhoods, CKA 1,
 * stale index broken), a known shift between windows, linear CKA and k-NN overlap against
 * direct computations, strict --fail-if parsing; and `clasp drift` on .npy sets written here
 * (rotation, windows, bad input) and on two fmnist models trained 1 and 3 epochs. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "eval/drift.h"
#include "eval/retrieval.h"
#include "tests/fixtures.h"

/* n rows of dim D around `c` random cluster centres (noise 0.35), from stream `seed`. */
static float *clusters_(int64_t n, int D, int c, uint64_t seed) {
    float *x = malloc((size_t)n * (size_t)D * sizeof(float));
    double *cen = malloc((size_t)c * (size_t)D * sizeof(double));
    clasp_rng r;
    clasp_rng_init(&r, 77, CLASP_RNG_TEST, 0, 0); /* the same centres for every seed */
    for (int i = 0; i < c * D; i++) cen[i] = clasp_rng_normal(&r);
    clasp_rng_init(&r, seed, CLASP_RNG_TEST, 1, 0);
    for (int64_t i = 0; i < n; i++)
        for (int d = 0; d < D; d++)
            x[i * D + d] = (float)(cen[(i % c) * D + d] + 0.35 * clasp_rng_normal(&r));
    free(cen);
    return x;
}

/* A random orthogonal (D, D) matrix: Gram-Schmidt on Gaussian columns, in double. */
static double *rotation_(int D, uint64_t seed) {
    double *q = malloc((size_t)D * (size_t)D * sizeof(double));
    clasp_rng r;
    clasp_rng_init(&r, seed, CLASP_RNG_TEST, 2, 0);
    for (int i = 0; i < D * D; i++) q[i] = clasp_rng_normal(&r);
    for (int j = 0; j < D; j++) { /* column j of q, orthogonal to the columns before */
        for (int k = 0; k < j; k++) {
            double p = 0;
            for (int i = 0; i < D; i++) p += q[i * D + j] * q[i * D + k];
            for (int i = 0; i < D; i++) q[i * D + j] -= p * q[i * D + k];
        }
        double s = 0;
        for (int i = 0; i < D; i++) s += q[i * D + j] * q[i * D + j];
        for (int i = 0; i < D; i++) q[i * D + j] /= sqrt(s);
    }
    return q;
}

/* x (n, D) times q (D, D), a new array. */
static float *rotate_(const float *x, int64_t n, int D, const double *q) {
    float *y = malloc((size_t)n * (size_t)D * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < D; j++) {
            double s = 0;
            for (int k = 0; k < D; k++) s += (double)x[i * D + k] * q[k * D + j];
            y[i * D + j] = (float)s;
        }
    return y;
}

/* Writes x (n, D) as DIR/NAME.npy with the sidecar `clasp embed` writes (keys "k<i + off>"). */
static void write_set_(const char *dir, const char *name, const char *modality, const float *x,
                       int64_t n, int D, int key_off) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s.npy", dir, name);
    cr_assert_eq(clasp_npy_write_f32(p, x, n, D), CLASP_OK, "%s", clasp_last_error());
    cJSON *j = cJSON_CreateObject(), *k = cJSON_AddArrayToObject(j, "keys");
    cJSON_AddStringToObject(j, "format", "clasp-embeddings");
    cJSON_AddStringToObject(j, "modality", modality);
    cJSON_AddNumberToObject(j, "dim", D);
    for (int64_t i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%lld", (long long)(i + key_off));
        cJSON_AddItemToArray(k, cJSON_CreateString(key));
    }
    char *text = cJSON_Print(j);
    snprintf(p, sizeof p, "%s/%s.json", dir, name);
    cr_assert(fx_write_str(p, text));
    free(text);
    cJSON_Delete(j);
}

/* The number `metric` of entry `entry` in clasp drift's --json output (NAN when null/absent). */
static double json_metric_(const cJSON *j, const char *entry, const char *metric) {
    const cJSON *e = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "entries"), entry);
    const cJSON *v = cJSON_GetObjectItem(e, metric);
    return cJSON_IsNumber(v) ? v->valuedouble : (double)NAN;
}

/* Runs `clasp drift ARGS --json` expecting exit 0; the parsed output. */
static cJSON *drift_json_(const char *args) {
    char *out = NULL;
    int rc = fx_clasp(&out, "drift %s --json", args);
    cr_assert_eq(rc, 0, "clasp drift %s: exit %d\n%s", args, rc, out ? out : "");
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "%s", out);
    free(out);
    return j;
}

/* Runs `clasp drift ARGS 2>&1`: exit status, output (stdout and stderr) in *out. */
static int drift_run_(char **out, const char *args) {
    return fx_clasp(out, "drift %s 2>&1", args);
}

Test(drift, identical_sets_no_drift) {
    const int64_t n = 300;
    const int D = 24;
    float *x = clusters_(n, D, 6, 1);
    double v[CLASP_DRIFT_N_METRICS];
    clasp_drift_options o = clasp_drift_default_options();
    o.pairs = 5000; /* sampled pairs: both histograms must use the same ones */
    cr_assert_eq(clasp_drift_compare(x, D, x, D, n, &o, v), CLASP_OK, "%s", clasp_last_error());
    cr_expect_float_eq(v[CLASP_DRIFT_MEAN_COSINE], 1.0, 1e-6);
    cr_expect_float_eq(v[CLASP_DRIFT_KNN_OVERLAP], 1.0, 1e-12);
    cr_expect_float_eq(v[CLASP_DRIFT_CKA], 1.0, 1e-5);
    cr_expect_eq(v[CLASP_DRIFT_SIM_JS], 0.0);
    cr_expect_float_eq(v[CLASP_DRIFT_MMD], 0.0, 1e-6);
    cr_expect_eq(v[CLASP_DRIFT_CENTROID_SHIFT], 0.0);
    cr_expect_float_eq(v[CLASP_DRIFT_CENTROID_COSINE], 1.0, 1e-12);
    cr_expect_eq(v[CLASP_DRIFT_STD_CHANGE_MAX], 0.0);
    cr_expect_eq(v[CLASP_DRIFT_STALE_SELF_R1], 1.0);
    cr_expect(isnan(v[CLASP_DRIFT_R1_STALE]), "cross-modal figures are not clasp_drift_compare's");
    free(x);
}

Test(drift, rotation_keeps_geometry_but_not_coordinates) {
    const int64_t n = 400;
    const int D = 32;
    float *x = clusters_(n, D, 8, 2);
    double *q = rotation_(D, 3);
    float *y = rotate_(x, n, D, q);
    double v[CLASP_DRIFT_N_METRICS];
    clasp_drift_options o = clasp_drift_default_options();
    cr_assert_eq(clasp_drift_compare(x, D, y, D, n, &o, v), CLASP_OK, "%s", clasp_last_error());
    cr_expect(fabs(v[CLASP_DRIFT_MEAN_COSINE]) < 0.15, "mean cosine %g",
              v[CLASP_DRIFT_MEAN_COSINE]);
    cr_expect(v[CLASP_DRIFT_KNN_OVERLAP] > 0.99, "overlap %g", v[CLASP_DRIFT_KNN_OVERLAP]);
    cr_expect_float_eq(v[CLASP_DRIFT_CKA], 1.0, 1e-4);
    cr_expect(v[CLASP_DRIFT_SIM_JS] < 1e-3, "js %g", v[CLASP_DRIFT_SIM_JS]);
    cr_expect(v[CLASP_DRIFT_STALE_SELF_R1] < 0.1, "stale r1 %g", v[CLASP_DRIFT_STALE_SELF_R1]);
    cr_expect(v[CLASP_DRIFT_MMD] > 0.05, "mmd %g", v[CLASP_DRIFT_MMD]);
    /* the centroid turned: the same length, another direction */
    cr_expect(v[CLASP_DRIFT_CENTROID_SHIFT] > 0.1, "shift %g", v[CLASP_DRIFT_CENTROID_SHIFT]);
    free(x), free(q), free(y);
}

/* Linear CKA in its kernel form (Kornblith et al. 2019, eq. 3 with linear kernels): HSIC(K, L)
 * / sqrt(HSIC(K, K) HSIC(L, L)), K = X X^T, L = Y Y^T, centred with H = I - 11^T/n; in double. */
static double cka_kernel_form_(const float *x, int Da, const float *y, int Db, int n) {
    double *K = calloc((size_t)n * n, sizeof(double)), *L = calloc((size_t)n * n, sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            for (int d = 0; d < Da; d++)
                K[i * n + j] += (double)x[i * Da + d] * (double)x[j * Da + d];
            for (int d = 0; d < Db; d++)
                L[i * n + j] += (double)y[i * Db + d] * (double)y[j * Db + d];
        }
    double *M[2] = {K, L};
    for (int m = 0; m < 2; m++) { /* H M H: subtract row and column means, add the grand mean */
        double *A = M[m], g = 0, *r = calloc((size_t)n, sizeof(double));
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) r[i] += A[i * n + j] / n, g += A[i * n + j] / n / n;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) A[i * n + j] += g - r[i] - r[j];
        free(r);
    }
    double kl = 0, kk = 0, ll = 0;
    for (int i = 0; i < n * n; i++) kl += K[i] * L[i], kk += K[i] * K[i], ll += L[i] * L[i];
    free(K), free(L);
    return kl / sqrt(kk * ll);
}

/* Mean k-NN overlap by sorting each row's cosines (stable, ties to the lower index). */
static const double *g_sim;
static int by_sim_desc_(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (g_sim[i] != g_sim[j]) return g_sim[i] > g_sim[j] ? -1 : 1;
    return (i > j) - (i < j);
}
static void knn_sorted_(const float *x, int D, int n, int k, int *nb) {
    double *s = malloc((size_t)n * sizeof(double));
    int *o = malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            double d = 0, a = 0, b = 0;
            for (int t = 0; t < D; t++) {
                d += (double)x[i * D + t] * (double)x[j * D + t];
                a += (double)x[i * D + t] * (double)x[i * D + t];
                b += (double)x[j * D + t] * (double)x[j * D + t];
            }
            s[j] = j == i ? -(double)INFINITY : d / sqrt(a * b);
            o[j] = j;
        }
        g_sim = s;
        qsort(o, (size_t)n, sizeof(int), by_sim_desc_);
        memcpy(nb + i * k, o, (size_t)k * sizeof(int));
    }
    free(s), free(o);
}

/* The mean overlap of the two sorted neighbour lists. */
static double overlap_sorted_(const float *x, int Da, const float *y, int Db, int n) {
    const int k = CLASP_DRIFT_K;
    int *na = malloc((size_t)n * k * sizeof(int)), *nb = malloc((size_t)n * k * sizeof(int));
    knn_sorted_(x, Da, n, k, na);
    knn_sorted_(y, Db, n, k, nb);
    double ov = 0;
    for (int i = 0; i < n; i++)
        for (int p = 0; p < k; p++)
            for (int q = 0; q < k; q++) ov += na[i * k + p] == nb[i * k + q];
    free(na), free(nb);
    return ov / ((double)n * k);
}

Test(drift, cka_and_knn_overlap_match_direct_computations_across_dims) {
    const int n = 60, Da = 12, Db = 7;
    float *x = clusters_(n, Da, 5, 4);
    float *y = clusters_(n, Db, 3, 5); /* another dimension: 7 of x's coordinates + noise */
    for (int i = 0; i < n; i++)
        for (int d = 0; d < Db; d++) y[i * Db + d] = x[i * Da + d] + 0.5f * y[i * Db + d];
    double v[CLASP_DRIFT_N_METRICS];
    clasp_drift_options o = clasp_drift_default_options();
    cr_assert_eq(clasp_drift_compare(x, Da, y, Db, n, &o, v), CLASP_OK, "%s", clasp_last_error());
    double want = cka_kernel_form_(x, Da, y, Db, n);
    cr_expect(fabs(v[CLASP_DRIFT_CKA] - want) < 1e-4, "cka %g, direct %g", v[CLASP_DRIFT_CKA],
              want);
    cr_expect(want > 0.05 && want < 0.95, "a case between the ends: %g", want);
    cr_expect(fabs(v[CLASP_DRIFT_KNN_OVERLAP] - overlap_sorted_(x, Da, y, Db, n)) < 1e-12,
              "overlap %g, direct %g", v[CLASP_DRIFT_KNN_OVERLAP],
              overlap_sorted_(x, Da, y, Db, n));
    /* unrelated sets: near the chance overlap k / (n - 1) */
    float *z = clusters_(n, Db, 7, 13);
    double w[CLASP_DRIFT_N_METRICS];
    cr_assert_eq(clasp_drift_compare(x, Da, z, Db, n, &o, w), CLASP_OK);
    double ov = overlap_sorted_(x, Da, z, Db, n);
    cr_expect(fabs(w[CLASP_DRIFT_KNN_OVERLAP] - ov) < 1e-12, "overlap %g, direct %g",
              w[CLASP_DRIFT_KNN_OVERLAP], ov);
    cr_expect(ov < 0.3, "unrelated overlap %g", ov);
    free(z);
    /* across dimensions the per-coordinate metrics are n/a */
    cr_expect(isnan(v[CLASP_DRIFT_MEAN_COSINE]) && isnan(v[CLASP_DRIFT_CENTROID_SHIFT]) &&
              isnan(v[CLASP_DRIFT_MMD]) && isnan(v[CLASP_DRIFT_STALE_SELF_R1]));
    cr_expect(!isnan(v[CLASP_DRIFT_SIM_JS]));
    free(x), free(y);
}

Test(drift, distribution_sees_a_known_shift) {
    const int64_t n = 500;
    const int D = 16;
    float *x = clusters_(n, D, 4, 6), *same = clusters_(n, D, 4, 7);
    float *moved = clusters_(n, D, 4, 7);
    for (int64_t i = 0; i < n; i++) moved[i * D] += 1.5f; /* every row moves 1.5 along dim 0 */
    double a[CLASP_DRIFT_N_METRICS], b[CLASP_DRIFT_N_METRICS];
    clasp_drift_options o = clasp_drift_default_options();
    o.pairs = 20000; /* fewer than n(n-1)/2: the sampled pairs */
    cr_assert_eq(clasp_drift_distribution(x, n, same, n, D, &o, a), CLASP_OK);
    cr_assert_eq(clasp_drift_distribution(same, n, moved, n, D, &o, b), CLASP_OK);
    /* a pure translation: the centroid moves by exactly its length, the spreads stay */
    cr_expect_float_eq(b[CLASP_DRIFT_CENTROID_SHIFT], 1.5, 1e-5);
    cr_expect(b[CLASP_DRIFT_STD_CHANGE_MAX] < 1e-5, "std change %g", b[CLASP_DRIFT_STD_CHANGE_MAX]);
    cr_expect(a[CLASP_DRIFT_CENTROID_SHIFT] < 0.3, "same distribution %g",
              a[CLASP_DRIFT_CENTROID_SHIFT]);
    cr_expect(b[CLASP_DRIFT_MMD] > 5 * a[CLASP_DRIFT_MMD], "mmd %g vs %g", b[CLASP_DRIFT_MMD],
              a[CLASP_DRIFT_MMD]);
    cr_expect(b[CLASP_DRIFT_SIM_JS] > 3 * a[CLASP_DRIFT_SIM_JS], "js %g vs %g",
              b[CLASP_DRIFT_SIM_JS], a[CLASP_DRIFT_SIM_JS]);
    cr_expect(isnan(a[CLASP_DRIFT_KNN_OVERLAP]) && isnan(a[CLASP_DRIFT_MEAN_COSINE]));
    /* deterministic: the same call gives the same bits */
    double c[CLASP_DRIFT_N_METRICS];
    cr_assert_eq(clasp_drift_distribution(same, n, moved, n, D, &o, c), CLASP_OK);
    cr_expect(!memcmp(&b[CLASP_DRIFT_SIM_JS], &c[CLASP_DRIFT_SIM_JS], sizeof(double)));
    cr_expect(!memcmp(&b[CLASP_DRIFT_MMD], &c[CLASP_DRIFT_MMD], sizeof(double)));
    free(x), free(same), free(moved);
}

Test(drift, bad_input_is_refused) {
    float x[3 * 4] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
    double v[CLASP_DRIFT_N_METRICS];
    clasp_drift_options o = clasp_drift_default_options();
    cr_expect_eq(clasp_drift_compare(x, 4, x, 4, 1, &o, v), CLASP_ERR_ARG);
    cr_expect(strstr(clasp_last_error(), "at least 2 rows"), "%s", clasp_last_error());
    cr_expect_eq(clasp_drift_compare(x, 4, x, 4, 0, &o, v), CLASP_ERR_ARG);
    float y[3 * 4];
    memcpy(y, x, sizeof y);
    y[6] = NAN;
    cr_expect_eq(clasp_drift_compare(x, 4, y, 4, 3, &o, v), CLASP_ERR_NUMERIC);
    cr_expect(strstr(clasp_last_error(), "B row 1"), "%s", clasp_last_error());
    memset(y + 8, 0, 4 * sizeof(float));
    y[6] = 0;
    cr_expect_eq(clasp_drift_distribution(x, 3, y, 3, 4, &o, v), CLASP_ERR_NUMERIC);
    cr_expect(strstr(clasp_last_error(), "row 2 is all zeros"), "%s", clasp_last_error());
}

Test(drift, distinct_rows_keep_first_occurrences) {
    /* rows 0..5 of a (2 dims) and b (3 dims): 2 repeats 0 in both, 3 repeats 1 in a only,
     * 5 repeats 4 in both */
    const float a[] = {1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 5, 6};
    const float b[] = {1, 1, 1, 2, 2, 2, 1, 1, 1, 9, 9, 9, 3, 3, 3, 3, 3, 3};
    int64_t keep[6], n = -1;
    cr_assert_eq(clasp_drift_distinct_rows(a, 2, b, 3, 6, keep, &n), CLASP_OK);
    cr_assert_eq(n, 4);
    const int64_t want[] = {0, 1, 3, 4};
    for (int i = 0; i < 4; i++)
        cr_expect_eq(keep[i], want[i], "keep[%d] = %lld", i, (long long)keep[i]);
}

Test(drift, conditions_parse_strictly) {
    clasp_drift_condition c[4];
    int n;
    cr_assert_eq(clasp_drift_conditions_parse("knn_overlap@10<0.8", c, 4, &n), CLASP_OK);
    cr_expect_eq(n, 1);
    cr_expect_eq(c[0].metric, CLASP_DRIFT_KNN_OVERLAP);
    cr_expect_eq(c[0].op, CLASP_DRIFT_LT);
    cr_expect_float_eq(c[0].value, 0.8, 1e-15);
    cr_assert_eq(clasp_drift_conditions_parse(" cka <= 0.9 , image:mmd>1e-2,text->image:"
                                              "r1_delta < -0.05",
                                              c, 4, &n),
                 CLASP_OK, "%s", clasp_last_error());
    cr_expect_eq(n, 3);
    cr_expect_eq(c[0].op, CLASP_DRIFT_LE);
    cr_expect_str_eq(c[0].text, "cka <= 0.9");
    cr_expect_str_eq(c[1].scope, "image");
    cr_expect_eq(c[1].op, CLASP_DRIFT_GT);
    cr_expect_str_eq(c[2].scope, "text->image");
    cr_expect_float_eq(c[2].value, -0.05, 1e-15);
    cr_expect(clasp_drift_condition_fires(&c[0], 0.9) && !clasp_drift_condition_fires(&c[0], 0.91));
    cr_expect(!clasp_drift_condition_fires(&c[0], (double)NAN), "n/a never fires");
    const char *bad[][2] = {{"knn_overlap<0.8", "unknown metric"},
                            {"cka 0.9", "no operator"},
                            {"cka<", "not a number"},
                            {"cka<0.9x", "not a number"},
                            {"cka<nan", "not a number"},
                            {"cka=0.9", "unknown operator"},
                            {"cka!=0.9", "unknown operator"},
                            {"cka<0.9,", "empty condition"},
                            {"", "empty condition"},
                            {"video:cka<0.9", "unknown scope"},
                            {"cka<1,cka<2,cka<3,cka<4,cka<5", "more than 4"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(clasp_drift_conditions_parse(bad[i][0], c, 4, &n), CLASP_ERR_CONFIG, "'%s'",
                     bad[i][0]);
        cr_expect(strstr(clasp_last_error(), bad[i][1]), "'%s': %s", bad[i][0], clasp_last_error());
    }
    cr_expect_eq(clasp_drift_metric_find("knn_overlap@10"), CLASP_DRIFT_KNN_OVERLAP);
    cr_expect(clasp_drift_metric_per_sample(CLASP_DRIFT_CKA));
    cr_expect(!clasp_drift_metric_per_sample(CLASP_DRIFT_MMD));
}

/* Image and text sets of one "model" (texts = their image + noise) and of its rotation. */
static void write_rotation_sets_(const char *dir, int64_t n, int D) {
    float *img = clusters_(n, D, 10, 8), *txt = malloc((size_t)n * D * sizeof(float));
    clasp_rng r;
    clasp_rng_init(&r, 9, CLASP_RNG_TEST, 3, 0);
    for (int64_t i = 0; i < n * D; i++) txt[i] = img[i] + 0.05f * (float)clasp_rng_normal(&r);
    double *q = rotation_(D, 10);
    float *rimg = rotate_(img, n, D, q), *rtxt = rotate_(txt, n, D, q);
    write_set_(dir, "a_img", "image", img, n, D, 0);
    write_set_(dir, "a_txt", "text", txt, n, D, 0);
    write_set_(dir, "b_img", "image", rimg, n, D, 0);
    write_set_(dir, "b_txt", "text", rtxt, n, D, 0);
    free(img), free(txt), free(q), free(rimg), free(rtxt);
}

Test(drift, cli_rotation_of_npy_sets_breaks_the_stale_index) {
    char d[FX_PATH];
    fx_scratch("drift-rot", d, NULL);
    write_rotation_sets_(d, 300, 32);
    char args[4096];
    snprintf(args, sizeof args, "%s/a_img.npy,%s/a_txt.npy %s/b_img.npy,%s/b_txt.npy", d, d, d, d);
    cJSON *j = drift_json_(args);
    cr_expect(fabs(json_metric_(j, "image", "mean_cosine")) < 0.15);
    cr_expect(json_metric_(j, "image", "knn_overlap@10") > 0.99);
    cr_expect(fabs(json_metric_(j, "text", "cka") - 1) < 1e-4);
    cr_expect(json_metric_(j, "text->image", "r1_fresh") > 0.9, "%g",
              json_metric_(j, "text->image", "r1_fresh"));
    cr_expect(json_metric_(j, "text->image", "r1_stale") < 0.1);
    cr_expect(json_metric_(j, "text->image", "r10_delta") < -0.5);
    cJSON_Delete(j);
    /* A against itself: nothing moved */
    snprintf(args, sizeof args, "%s/a_img.npy,%s/a_txt.npy %s/a_img.npy,%s/a_txt.npy", d, d, d, d);
    j = drift_json_(args);
    cr_expect_float_eq(json_metric_(j, "image", "mean_cosine"), 1.0, 1e-6);
    cr_expect_eq(json_metric_(j, "text", "sim_js"), 0.0);
    cr_expect_eq(json_metric_(j, "text->image", "r1_delta"), 0.0);
    cJSON_Delete(j);
    /* alerts: the rotation keeps the neighbourhoods and breaks the coordinates */
    char *out;
    snprintf(args, sizeof args,
             "%s/a_img.npy %s/b_img.npy --fail-if 'knn_overlap@10<0.8, image:mean_cosine<0.5'", d,
             d);
    cr_expect_eq(drift_run_(&out, args), 1, "%s", out);
    cr_expect(strstr(out, "alert: image:mean_cosine<0.5 (image: "), "%s", out);
    cr_expect(!strstr(out, "alert: knn_overlap"), "%s", out);
    free(out);
    snprintf(args, sizeof args, "%s/a_img.npy %s/b_img.npy --fail-if 'knn_overlap@10<0.8'", d, d);
    cr_expect_eq(drift_run_(&out, args), 0, "%s", out);
    cr_expect(strstr(out, "knn_overlap@10"), "the text report: %s", out);
    free(out);
}

Test(drift, cli_help_lists_the_metrics) {
    char *out;
    cr_assert_eq(fx_clasp(&out, "drift --help"), 0);
    for (int m = 0; m < CLASP_DRIFT_N_METRICS; m++)
        cr_expect(strstr(out, clasp_drift_metric_name((clasp_drift_metric)m)),
                  "%s missing from --help", clasp_drift_metric_name((clasp_drift_metric)m));
    cr_expect(strstr(out, "--fail-if CONDS"), "%s", out);
    free(out);
    cr_assert_eq(fx_clasp(&out, "--help"), 0);
    cr_expect(strstr(out, "  drift "), "%s", out);
    free(out);
}

Test(drift, cli_refuses_bad_input_clearly) {
    char d[FX_PATH];
    fx_scratch("drift-bad", d, NULL);
    float *x = clusters_(40, 8, 4, 11);
    write_set_(d, "a", "image", x, 40, 8, 0);
    write_set_(d, "shifted_keys", "image", x, 40, 8, 1);
    write_set_(d, "fewer", "image", x, 30, 8, 0);
    write_set_(d, "empty", "image", x, 0, 8, 0);
    write_set_(d, "text", "text", x, 40, 8, 0);
    write_set_(d, "other_text", "text", x, 40, 8, 1);
    free(x);
    struct {
        const char *args;
        int rc;
        const char *msg;
    } cases[] = {
        {"%s/a.npy %s/shifted_keys.npy", 1, "row 0 has key 'k0' in"},
        {"%s/a.npy %s/fewer.npy", 1, "has 40 rows"},
        {"%s/a.npy %s/empty.npy", 1, "no rows"},
        {"%s/a.npy %s/text.npy", 1, "share no modality"},
        {"%s/a.npy,%s/other_text.npy %s/a.npy,%s/other_text.npy", 0,
         "text->image not measured: text->image: row 0 has key 'k1' in A's text but 'k0' in "
         "image"},
        {"%s/a.npy %s/nope.npy", 1, "nope.npy"},
        {"%s/a.npy %s/a.npy --fail-if 'overlap<0.8'", 2, "unknown metric 'overlap'"},
        {"%s/a.npy %s/a.npy --fail-if 'cka<<0.8'", 2, "not a number"},
        {"%s/a.npy %s/a.npy --window 10", 2, "give A alone"},
        {"%s/a.npy --window 10 --fail-if 'cka<0.9' %.0s", 2, "per-sample metric"},
        {"%s/a.npy --window 30 %.0s", 1, "fewer than two windows"},
        {"%s/a.npy %.0s", 2, "need B"},
        {"%s/a.npy %s/a.npy --data x.tar", 2, "--data applies to exports"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[2048], *out;
        snprintf(args, sizeof args, cases[i].args, d, d, d, d);
        int rc = drift_run_(&out, args);
        cr_expect_eq(rc, cases[i].rc, "%s: exit %d\n%s", args, rc, out);
        cr_expect(strstr(out, cases[i].msg), "%s: no '%s' in\n%s", args, cases[i].msg, out);
        free(out);
    }
}

Test(drift, cli_window_finds_the_shifted_window) {
    char d[FX_PATH];
    fx_scratch("drift-win", d, NULL);
    const int64_t N = 150;
    const int D = 16;
    float *x = clusters_(3 * N + 20, D, 5, 12); /* 3 windows and a tail of 20 rows */
    for (int64_t i = 2 * N; i < 3 * N + 20; i++) x[i * D + 3] += 2.0f; /* the third window moved */
    write_set_(d, "w", "audio", x, 3 * N + 20, D, 0);
    free(x);
    char args[2048];
    snprintf(args, sizeof args, "%s/w.npy --window %lld", d, (long long)N);
    cJSON *j = drift_json_(args);
    const cJSON *w = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "entries"), "audio"), "windows");
    cr_assert_eq(cJSON_GetArraySize(w), 2);
    const cJSON *w0 = cJSON_GetArrayItem(w, 0), *w1 = cJSON_GetArrayItem(w, 1);
    double c0 = cJSON_GetObjectItem(w0, "centroid_shift")->valuedouble;
    double c1 = cJSON_GetObjectItem(w1, "centroid_shift")->valuedouble;
    cr_expect(c1 > 1.8 && c0 < 0.5, "centroid shifts %g then %g", c0, c1);
    cr_expect(cJSON_GetObjectItem(w1, "mmd")->valuedouble >
              5 * cJSON_GetObjectItem(w0, "mmd")->valuedouble);
    cr_expect(!cJSON_GetObjectItem(w0, "knn_overlap@10"), "no per-sample metric between windows");
    cr_expect_eq(cJSON_GetObjectItem(w1, "from_row")->valueint, N);
    cJSON_Delete(j);
    char *out;
    snprintf(args, sizeof args, "%s/w.npy --window %lld --fail-if 'centroid_shift>1'", d,
             (long long)N);
    cr_expect_eq(drift_run_(&out, args), 1, "%s", out);
    cr_expect(strstr(out, "alert: centroid_shift>1 (audio, windows 1 -> 2: "), "%s", out);
    cr_expect(!strstr(out, "windows 0 -> 1"), "%s", out);
    free(out);
}

/* Trains fmnist-small on the first 256 images of the fixture's training split for `epochs`
 * (4 steps an epoch) into dir/run. */
static void train_(const char *dir, const char *run, int epochs) {
    char *out = NULL;
    int rc = fx_clasp(&out,
                      "train --model %s/configs/fmnist-small.json --train "
                      "'%s/fm/train-{000000..000001}.tar' --out %s/%s --epochs %d --batch-size 64 "
                      "--warmup 2 --threads 1 2>&1",
                      CLASP_SOURCE_DIR, dir, dir, run, epochs);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
}

Test(drift, cli_retrained_model_drifts_measurably) {
    char d[FX_PATH], fm[FX_PATH];
    fx_scratch("drift-fmnist", d, fm, "fm", NULL);
    cr_assert_eq(fx_fmnist_shards(fm), 0);
    train_(d, "r1", 1);
    train_(d, "r3", 3);
    char args[4096];
    snprintf(args, sizeof args, "%s/r1 %s/r1 --data '%s/test-{000000..000004}.tar'", d, d, fm);
    cJSON *j = drift_json_(args);
    cr_expect_float_eq(json_metric_(j, "image", "mean_cosine"), 1.0, 1e-6);
    cr_expect_eq(json_metric_(j, "image", "knn_overlap@10"), 1.0);
    cr_expect_float_eq(json_metric_(j, "text", "cka"), 1.0, 1e-5);
    cr_expect_eq(json_metric_(j, "image", "sim_js"), 0.0);
    cr_expect_eq(json_metric_(j, "text", "sim_js"), 0.0);
    cr_expect_eq(json_metric_(j, "text", "stale_self_r1"), 1.0);
    cr_expect_eq(json_metric_(j, "text->image", "r10_delta"), 0.0);
    /* fmnist's captions: 10 class names under 8 templates, each input counted once */
    cr_expect_eq(json_metric_(j, "text", "distinct"), 80.0);
    cr_expect_eq(json_metric_(j, "image", "distinct"), 640.0);
    /* the same figures from `clasp embed` sets: on .npy sets a caption's group is its
     * embedding's bits, on exports the loader's caption hash */
    char *out;
    for (int m = 0; m < 2; m++) {
        cr_assert_eq(fx_clasp(&out,
                              "embed --model %s/r1 --shards '%s/test-{000000..000004}.tar' "
                              "--modality %s -o %s/r1_%s.npy 2>&1",
                              d, fm, m ? "text" : "image", d, m ? "txt" : "img"),
                     0, "%s", out);
        free(out);
    }
    snprintf(args, sizeof args, "%s/r1_img.npy,%s/r1_txt.npy %s/r1_img.npy,%s/r1_txt.npy", d, d, d,
             d);
    cJSON *k = drift_json_(args);
    const char *same[][2] = {{"image", "knn_overlap@10"},
                             {"text->image", "r1_fresh"},
                             {"text->image", "r10_fresh"},
                             {"text", "distinct"}};
    /* .npy texts group by bitwise identical rows: OpenBLAS's products depend on a row's place in
     * the batch, so there copies of a caption differ in their last bits and count apart */
    const int n_same = strcmp(CLASP_BACKEND_NAME, "openblas") ? 4 : 1;
    if (n_same == 1) cr_expect_geq(json_metric_(k, "text", "distinct"), 80.0);
    for (int i = 0; i < n_same; i++)
        cr_expect_eq(json_metric_(k, same[i][0], same[i][1]),
                     json_metric_(j, same[i][0], same[i][1]), "%s %s", same[i][0], same[i][1]);
    cJSON_Delete(k);
    cJSON_Delete(j);
    snprintf(args, sizeof args, "%s/r1 %s/r3 --data '%s/test-{000000..000004}.tar'", d, d, fm);
    j = drift_json_(args);
    double ov = json_metric_(j, "image", "knn_overlap@10"), cka = json_metric_(j, "image", "cka");
    cr_expect(ov < 0.95 && ov > 0.05, "image overlap %g", ov);
    cr_expect(cka < 0.99 && cka > 0.1, "image cka %g", cka);
    cr_expect(json_metric_(j, "text", "sim_js") > 0.01);
    cr_expect(json_metric_(j, "text", "knn_overlap@10") < 0.95);
    cr_expect(!isnan(json_metric_(j, "text->image", "r1_stale")));
    cr_expect_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "entries"), "image"), "n")
            ->valueint,
        640);
    cJSON_Delete(j);
    /* one model over time: five windows of 128 test samples in shard order */
    snprintf(args, sizeof args, "%s/r3 --window 128 --data '%s/test-{000000..000004}.tar'", d, fm);
    j = drift_json_(args);
    const cJSON *w = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "entries"), "image"), "windows");
    cr_expect_eq(cJSON_GetArraySize(w), 4);
    cJSON_Delete(j);
}
