/* test_loss.c: InfoNCE (plain, multi-positive, distributed) and SigLIP: PyTorch parity,
 * central finite differences (including the log-scale and bias), closed forms, edge cases.
 * The other losses are in test_loss_more.c; shared helpers in test_loss_lib.h. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "loss/infonce.h"
#include "loss/siglip.h"
#include "test_loss_lib.h"

/* ---- InfoNCE ---------------------------------------------------------------------------- */

typedef struct {
    float *A, *B, s, *work;
    const int *groups;
    size_t N, D;
} infonce_ctx;

static double infonce_eval(void *p) {
    infonce_ctx *c = p;
    float loss;
    cr_assert_eq(
        clasp_infonce(&loss, NULL, NULL, NULL, c->A, c->B, c->s, c->groups, c->N, c->D, c->work),
        CLASP_OK);
    return (double)loss;
}

static void infonce_fd(size_t N, size_t D, float s, const int *groups, uint64_t seed) {
    infonce_ctx c = {lt_randn(N * D, seed, 1), lt_randn(N * D, seed, 2), s, NULL, groups, N, D};
    lt_normalize_rows(c.A, N, D);
    lt_normalize_rows(c.B, N, D);
    c.work = lt_alloc(clasp_infonce_work_floats(N));
    float loss, *dA = lt_alloc(N * D), *dB = lt_alloc(N * D), ds;
    cr_assert_eq(clasp_infonce(&loss, dA, dB, &ds, c.A, c.B, s, groups, N, D, c.work), CLASP_OK);
    cr_assert(lt_fd_check("infonce dA", infonce_eval, &c, c.A, dA, N * D, 1e-2));
    cr_assert(lt_fd_check("infonce dB", infonce_eval, &c, c.B, dB, N * D, 1e-2));
    cr_assert(lt_fd_check("infonce ds", infonce_eval, &c, &c.s, &ds, 1, 1e-2));
    free(c.A), free(c.B), free(c.work), free(dA), free(dB);
}

Test(loss, infonce_finite_differences) {
    infonce_fd(5, 4, 1.0f, NULL, 1);
    static const int g[6] = {0, 1, 0, 2, 1, 0};
    infonce_fd(6, 3, 0.5f, g, 2);
    infonce_fd(4, 1, 0.3f, NULL, 3); /* D = 1 */
}

static void infonce_parity(const char *file) {
    lt_ref r = lt_ref_open(file);
    size_t N = lt_dim(&r, "A", 0), D = lt_dim(&r, "A", 1);
    int *groups = lt_ints_opt(&r, "groups");
    float loss, ds, *dA = lt_alloc(N * D), *dB = lt_alloc(N * D);
    float *work = lt_alloc(clasp_infonce_work_floats(N));
    cr_assert_eq(clasp_infonce(&loss, dA, dB, &ds, lt_f(&r, "A"), lt_f(&r, "B"),
                               lt_f(&r, "log_scale")[0], groups, N, D, work),
                 CLASP_OK);
    cr_assert(clasp_test_check_tensor("loss", &loss, lt_f(&r, "loss"), 1, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dA", dA, lt_f(&r, "dA"), N * D, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dB", dB, lt_f(&r, "dB"), N * D, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dlog_scale", &ds, lt_f(&r, "dlog_scale"), 1, 1e-6, 1e-4));
    free(groups), free(dA), free(dB), free(work);
    lt_ref_close(&r);
}

Test(loss, infonce_matches_pytorch) {
    infonce_parity("loss/infonce.safetensors");
    infonce_parity("loss/infonce_groups.safetensors");
}

/* All logits equal: each row and column is uniform, loss = ln N, d log_scale = 0. */
Test(loss, infonce_equal_logits_is_log_n) {
    const size_t N = 7, D = 3;
    const float scales[] = {0.0f, logf(1.0f / 0.07f), logf(100.0f), -20.0f};
    float *A = lt_alloc(N * D), *B = lt_alloc(N * D), *dA = lt_alloc(N * D), *dB = lt_alloc(N * D);
    float *work = lt_alloc(clasp_infonce_work_floats(N));
    for (int orth = 0; orth < 2; orth++)
        for (size_t k = 0; k < sizeof scales / sizeof *scales; k++) {
            /* identical rows (logits = exp(s)) or orthogonal modalities (logits = 0) */
            for (size_t i = 0; i < N; i++) {
                for (size_t j = 0; j < D; j++) A[i * D + j] = B[i * D + j] = 0.0f;
                A[i * D] = 1.0f;
                B[i * D + (orth ? 1 : 0)] = 1.0f;
            }
            float loss, ds;
            cr_assert_eq(clasp_infonce(&loss, dA, dB, &ds, A, B, scales[k], NULL, N, D, work),
                         CLASP_OK);
            cr_assert(fabsf(loss - logf((float)N)) < 1e-5f, "loss %g for s=%g", (double)loss,
                      (double)scales[k]);
            cr_assert(fabsf(ds) < 1e-4f, "ds %g", (double)ds);
            cr_assert(lt_all_finite(dA, N * D) && lt_all_finite(dB, N * D));
        }
    free(A), free(B), free(dA), free(dB), free(work);
}

/* Orthonormal pairs with scale 100: the diagonal wins by 100 nats, loss ~ (N-1) e^-100. */
Test(loss, infonce_separated_is_near_zero) {
    const size_t N = 4, D = 4;
    float A[16] = {0}, dA[16], dB[16], loss, ds;
    for (size_t i = 0; i < N; i++) A[i * D + i] = 1.0f;
    float *work = lt_alloc(clasp_infonce_work_floats(N));
    cr_assert_eq(clasp_infonce(&loss, dA, dB, &ds, A, A, logf(100.0f), NULL, N, D, work), CLASP_OK);
    cr_assert(loss >= 0.0f && loss < 1e-6f, "loss %g", (double)loss);
    cr_assert(lt_all_finite(dA, 16) && lt_all_finite(dB, 16) && isfinite(ds));
    cr_assert(lt_max_abs(dA, 16) < 1e-6f);
    free(work);
}

Test(loss, infonce_single_pair_and_duplicates) {
    float a[3] = {0.6f, 0.8f, 0.0f}, da[3], db[3], loss, ds, work[8];
    cr_assert_eq(clasp_infonce_work_floats(1), 5u);
    cr_assert_eq(clasp_infonce(&loss, da, db, &ds, a, a, 4.6f, NULL, 1, 3, work), CLASP_OK);
    cr_assert(loss == 0.0f && ds == 0.0f && lt_max_abs(da, 3) == 0.0f);
    /* duplicate rows: pairs 0 and 1 identical. Swapping them changes nothing, so their
     * gradients are equal; and since the duplicated columns are identical, spreading the
     * target over both (groups) gives the same loss as the plain diagonal target. */
    const size_t N = 4, D = 3;
    float *A = lt_randn(N * D, 9, 1), *B = lt_randn(N * D, 9, 2);
    memcpy(A + D, A, D * sizeof *A);
    memcpy(B + D, B, D * sizeof *B);
    lt_normalize_rows(A, N, D);
    lt_normalize_rows(B, N, D);
    float *w = lt_alloc(clasp_infonce_work_floats(N)), plain, grouped;
    float *dA = lt_alloc(N * D), *dB = lt_alloc(N * D);
    const int g[4] = {5, 5, 6, 7};
    cr_assert_eq(clasp_infonce(&plain, dA, dB, NULL, A, B, 3.0f, NULL, N, D, w), CLASP_OK);
    cr_assert(isfinite(plain) && plain > 0.5f * logf(2.0f));
    cr_assert(clasp_test_check_tensor("dup dA", dA, dA + D, D, 1e-7, 1e-5));
    cr_assert(clasp_test_check_tensor("dup dB", dB, dB + D, D, 1e-7, 1e-5));
    cr_assert_eq(clasp_infonce(&grouped, NULL, NULL, NULL, A, B, 3.0f, g, N, D, w), CLASP_OK);
    cr_assert(fabsf(grouped - plain) < 1e-5f, "grouped %g plain %g", (double)grouped,
              (double)plain);
    /* zero feature rows are not an error: logits 0, finite output */
    memset(A, 0, N * D * sizeof *A);
    cr_assert_eq(clasp_infonce(&loss, dA, NULL, &ds, A, B, 4.6f, NULL, N, D, w), CLASP_OK);
    cr_assert(fabsf(loss - logf(4.0f)) < 1e-5f && lt_all_finite(dA, N * D));
    free(A), free(B), free(w), free(dA), free(dB);
}

Test(loss, infonce_rejects_bad_arguments) {
    float x[4] = {1, 0, 0, 1}, loss, work[16];
    cr_assert_eq(clasp_infonce(&loss, NULL, NULL, NULL, x, x, 0.0f, NULL, 0, 2, work),
                 CLASP_ERR_ARG);
    cr_assert_eq(clasp_infonce(NULL, NULL, NULL, NULL, x, x, 0.0f, NULL, 2, 2, work),
                 CLASP_ERR_ARG);
    cr_assert_eq(clasp_infonce_dist(&loss, NULL, NULL, NULL, NULL, NULL, x, x, x, x, 0.0f, NULL, 2,
                                    1, 2, 2, work),
                 CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "offset=1") != NULL);
}

/* Simulates R ranks: each computes the distributed loss on its rows; the summed losses,
 * log-scale gradients and reduced feature gradients must equal the one-process ones. */
static void infonce_ranks(size_t N, size_t D, size_t R, const int *groups, uint64_t seed) {
    float *A = lt_randn(N * D, seed, 1), *B = lt_randn(N * D, seed, 2);
    lt_normalize_rows(A, N, D);
    lt_normalize_rows(B, N, D);
    const float s = 2.5f;
    float loss1, ds1, *dA1 = lt_alloc(N * D), *dB1 = lt_alloc(N * D);
    float *w1 = lt_alloc(clasp_infonce_work_floats(N));
    cr_assert_eq(clasp_infonce(&loss1, dA1, dB1, &ds1, A, B, s, groups, N, D, w1), CLASP_OK);
    double loss = 0.0, ds = 0.0;
    double *dA = calloc(N * D, sizeof *dA), *dB = calloc(N * D, sizeof *dB);
    size_t n = N / R;
    float *dAl = lt_alloc(n * D), *dBl = lt_alloc(n * D), *dAa = lt_alloc(N * D);
    float *dBa = lt_alloc(N * D), *w = lt_alloc(clasp_infonce_dist_work_floats(n, N));
    for (size_t r = 0; r < R; r++) {
        size_t off = r * n;
        float l, d;
        cr_assert_eq(clasp_infonce_dist(&l, dAl, dBl, dAa, dBa, &d, A + off * D, B + off * D, A, B,
                                        s, groups, n, off, N, D, w),
                     CLASP_OK);
        loss += (double)l;
        ds += (double)d;
        for (size_t k = 0; k < N * D; k++) dA[k] += (double)dAa[k], dB[k] += (double)dBa[k];
        for (size_t k = 0; k < n * D; k++)
            dA[off * D + k] += (double)dAl[k], dB[off * D + k] += (double)dBl[k];
    }
    double l1 = (double)loss1, d1 = (double)ds1, *a1 = calloc(N * D, sizeof *a1),
           *b1 = calloc(N * D, sizeof *b1);
    for (size_t k = 0; k < N * D; k++) a1[k] = (double)dA1[k], b1[k] = (double)dB1[k];
    /* Float sums in another order: the loss within 1e-6 relative; gradient entries are sums of
     * O(1/N) terms, so they are compared within 2e-6 of the largest entry plus 1e-5 rel. */
    cr_assert(clasp_test_check_tensor_f64("dist loss", &loss, &l1, 1, 1e-7, 1e-6));
    cr_assert(clasp_test_check_tensor_f64("dist ds", &ds, &d1, 1, 1e-7, 1e-6));
    double ga = 0.0;
    for (size_t k = 0; k < N * D; k++) ga = fmax(ga, fmax(fabs(a1[k]), fabs(b1[k])));
    cr_assert(clasp_test_check_tensor_f64("dist dA", dA, a1, N * D, 2e-6 * ga, 1e-5));
    cr_assert(clasp_test_check_tensor_f64("dist dB", dB, b1, N * D, 2e-6 * ga, 1e-5));
    free(A), free(B), free(dA1), free(dB1), free(w1), free(dA), free(dB), free(dAl), free(dBl);
    free(dAa), free(dBa), free(w), free(a1), free(b1);
}

Test(loss, infonce_distributed_equals_single_process) {
    static const int g[8] = {3, 1, 3, 0, 1, 2, 3, 5};
    for (size_t R = 1; R <= 4; R *= 2) {
        infonce_ranks(8, 5, R, NULL, 10 + R);
        infonce_ranks(8, 5, R, g, 20 + R);
    }
}

/* ---- SigLIP ----------------------------------------------------------------------------- */

typedef struct {
    float *A, *B, t, b, *work;
    const int *groups;
    size_t N, D;
} siglip_ctx;

static double siglip_eval(void *p) {
    siglip_ctx *c = p;
    float loss;
    cr_assert_eq(clasp_siglip(&loss, NULL, NULL, NULL, NULL, c->A, c->B, c->t, c->b, c->groups,
                              c->N, 0, c->N, c->D, c->work),
                 CLASP_OK);
    return (double)loss;
}

Test(loss, siglip_finite_differences) {
    static const int g[5] = {0, 1, 0, 2, 1};
    for (int k = 0; k < 3; k++) {
        size_t N = 5, D = k == 2 ? 1 : 4;
        siglip_ctx c = {lt_randn(N * D, 30 + k, 1),
                        lt_randn(N * D, 30 + k, 2),
                        1.2f,
                        -1.5f,
                        NULL,
                        k == 1 ? g : NULL,
                        N,
                        D};
        lt_normalize_rows(c.A, N, D);
        lt_normalize_rows(c.B, N, D);
        c.work = lt_alloc(clasp_siglip_work_floats(N, N));
        float loss, dt, db, *dA = lt_alloc(N * D), *dB = lt_alloc(N * D);
        cr_assert_eq(
            clasp_siglip(&loss, dA, dB, &dt, &db, c.A, c.B, c.t, c.b, c.groups, N, 0, N, D, c.work),
            CLASP_OK);
        cr_assert(lt_fd_check("siglip dA", siglip_eval, &c, c.A, dA, N * D, 1e-2));
        cr_assert(lt_fd_check("siglip dB", siglip_eval, &c, c.B, dB, N * D, 1e-2));
        cr_assert(lt_fd_check("siglip dt", siglip_eval, &c, &c.t, &dt, 1, 1e-2));
        cr_assert(lt_fd_check("siglip db", siglip_eval, &c, &c.b, &db, 1, 1e-2));
        free(c.A), free(c.B), free(c.work), free(dA), free(dB);
    }
}

static void siglip_parity(const char *file) {
    lt_ref r = lt_ref_open(file);
    size_t N = lt_dim(&r, "A", 0), D = lt_dim(&r, "A", 1);
    int *groups = lt_ints_opt(&r, "groups");
    float loss, dt, db, *dA = lt_alloc(N * D), *dB = lt_alloc(N * D);
    float *work = lt_alloc(clasp_siglip_work_floats(N, N));
    cr_assert_eq(clasp_siglip(&loss, dA, dB, &dt, &db, lt_f(&r, "A"), lt_f(&r, "B"),
                              lt_f(&r, "log_scale")[0], lt_f(&r, "bias")[0], groups, N, 0, N, D,
                              work),
                 CLASP_OK);
    cr_assert(clasp_test_check_tensor("loss", &loss, lt_f(&r, "loss"), 1, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dA", dA, lt_f(&r, "dA"), N * D, 1e-7, 1e-4));
    cr_assert(clasp_test_check_tensor("dB", dB, lt_f(&r, "dB"), N * D, 1e-7, 1e-4));
    cr_assert(clasp_test_check_tensor("dlog_scale", &dt, lt_f(&r, "dlog_scale"), 1, 1e-7, 1e-4));
    cr_assert(clasp_test_check_tensor("dbias", &db, lt_f(&r, "dbias"), 1, 1e-7, 1e-4));
    free(groups), free(dA), free(dB), free(work);
    lt_ref_close(&r);
}

Test(loss, siglip_matches_pytorch) {
    siglip_parity("loss/siglip.safetensors");
    siglip_parity("loss/siglip_groups.safetensors");
}

/* 1 x 1: loss = -log sigmoid(exp(t) a.b + b) = log(1 + exp(-(10 * 0.6 - 10))) */
Test(loss, siglip_single_pair_closed_form) {
    float a[2] = {1.0f, 0.0f}, b[2] = {0.6f, 0.8f}, loss, dt, db, da[2], dbv[2], work[1];
    cr_assert_eq(clasp_siglip(&loss, da, dbv, &dt, &db, a, b, CLASP_SIGLIP_INIT_LOG_SCALE,
                              CLASP_SIGLIP_INIT_BIAS, NULL, 1, 0, 1, 2, work),
                 CLASP_OK);
    double want = log1p(exp(4.0)), sg = 1.0 / (1.0 + exp(-4.0)); /* sigmoid(-u), u = -4 */
    cr_assert(fabs((double)loss - want) < 1e-5, "loss %g want %g", (double)loss, want);
    cr_assert(fabs((double)db + sg) < 1e-6 && fabs((double)dt + sg * 6.0) < 1e-5);
    /* extreme logits stay finite: scale 100 and opposite features */
    b[0] = -1.0f, b[1] = 0.0f;
    cr_assert_eq(
        clasp_siglip(&loss, da, dbv, &dt, &db, a, b, logf(100.0f), 0.0f, NULL, 1, 0, 1, 2, work),
        CLASP_OK);
    cr_assert(fabsf(loss - 100.0f) < 1e-4f && lt_all_finite(da, 2) && isfinite(dt));
}

Test(loss, siglip_distributed_sums_to_single_process) {
    const size_t N = 8, D = 4, R = 4, n = N / R;
    float *A = lt_randn(N * D, 41, 1), *B = lt_randn(N * D, 41, 2);
    lt_normalize_rows(A, N, D);
    lt_normalize_rows(B, N, D);
    float loss1, dt1, db1, *dA1 = lt_alloc(N * D), *dB1 = lt_alloc(N * D);
    float *w = lt_alloc(clasp_siglip_work_floats(N, N));
    cr_assert_eq(clasp_siglip(&loss1, dA1, dB1, &dt1, &db1, A, B, 2.0f, -3.0f, NULL, N, 0, N, D, w),
                 CLASP_OK);
    float *dAl = lt_alloc(n * D), *dBa = lt_alloc(N * D), *dA = lt_alloc(N * D);
    float *dB = calloc(N * D, sizeof *dB), loss = 0, dt = 0, db = 0;
    for (size_t r = 0; r < R; r++) {
        float l, t, b;
        cr_assert_eq(clasp_siglip(&l, dAl, dBa, &t, &b, A + r * n * D, B, 2.0f, -3.0f, NULL, n,
                                  r * n, N, D, w),
                     CLASP_OK);
        loss += l, dt += t, db += b;
        memcpy(dA + r * n * D, dAl, n * D * sizeof *dA);
        for (size_t k = 0; k < N * D; k++) dB[k] += dBa[k];
    }
    cr_assert(clasp_test_check_tensor("loss", &loss, &loss1, 1, 1e-7, 1e-6));
    cr_assert(clasp_test_check_tensor("dt", &dt, &dt1, 1, 1e-7, 1e-5));
    cr_assert(clasp_test_check_tensor("db", &db, &db1, 1, 1e-7, 1e-5));
    cr_assert(clasp_test_check_tensor("dA", dA, dA1, N * D, 1e-8, 1e-6));
    cr_assert(clasp_test_check_tensor("dB", dB, dB1, N * D, 1e-8, 1e-5));
    free(A), free(B), free(dA1), free(dB1), free(w), free(dAl), free(dBa), free(dA), free(dB);
}
