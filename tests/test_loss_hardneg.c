/* test_loss_hardneg.c: InfoNCE with hard negatives (loss/hardneg.h): PyTorch parity against
 * HCL's criterion (tests/reference/make_loss_hardneg.py), central finite differences (features
 * and log scale, with and without the clamp binding), beta = 0 and tau_plus = 0 is InfoNCE,
 * rank parts sum to the one-process loss, large scales stay finite, bad arguments. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "loss/hardneg.h"
#include "loss/infonce.h"
#include "loss/supcon.h"
#include "test_loss_lib.h"

typedef struct {
    float *A, *B, s, beta, tau_plus, *work;
    size_t N, D;
} hn_ctx;

/* One process: full gradients dA = dA_loc + dA_all (and dB likewise). */
static float hn_full(const hn_ctx *c, float *dA, float *dB, float *ds) {
    const size_t nd = c->N * c->D;
    float *ta = dA ? lt_alloc(nd) : NULL, *tb = dB ? lt_alloc(nd) : NULL, loss = NAN;
    cr_assert_eq(clasp_infonce_hardneg(&loss, dA, dB, ta, tb, ds, c->A, c->B, c->A, c->B, c->s,
                                       c->beta, c->tau_plus, c->N, 0, c->N, c->D, c->work),
                 CLASP_OK, "%s", clasp_last_error());
    for (size_t i = 0; dA && i < nd; i++) dA[i] += ta[i], dB[i] += tb[i];
    free(ta), free(tb);
    return loss;
}

static double hn_eval(void *p) {
    return (double)hn_full(p, NULL, NULL, NULL);
}

static hn_ctx hn_random(size_t N, size_t D, float s, float beta, float tau_plus, uint64_t seed) {
    hn_ctx c = {lt_randn(N * D, seed, 1), lt_randn(N * D, seed, 2), s, beta, tau_plus, NULL, N, D};
    lt_normalize_rows(c.A, N, D);
    lt_normalize_rows(c.B, N, D);
    c.work = lt_alloc(clasp_infonce_hardneg_work_floats(N, N));
    return c;
}

static void hn_fd(size_t N, size_t D, float s, float beta, float tau_plus, uint64_t seed) {
    hn_ctx c = hn_random(N, D, s, beta, tau_plus, seed);
    float *dA = lt_alloc(N * D), *dB = lt_alloc(N * D), ds;
    hn_full(&c, dA, dB, &ds);
    cr_assert(lt_fd_check("hardneg dA", hn_eval, &c, c.A, dA, N * D, 1e-2));
    cr_assert(lt_fd_check("hardneg dB", hn_eval, &c, c.B, dB, N * D, 1e-2));
    cr_assert(lt_fd_check("hardneg ds", hn_eval, &c, &c.s, &ds, 1, 1e-2));
    free(c.A), free(c.B), free(c.work), free(dA), free(dB);
}

Test(loss_hardneg, finite_differences) {
    hn_fd(5, 4, 1.0f, 1.0f, 0.1f, 1);
    hn_fd(6, 3, 2.0f, 3.0f, 0.0f, 2);
    hn_fd(4, 2, 0.5f, 0.5f, 0.3f, 3);
    /* unnormalised inputs (the loss uses them as given) */
    hn_ctx c = hn_random(5, 3, 0.2f, 2.0f, 0.05f, 4);
    for (size_t i = 0; i < 15; i++) c.A[i] *= 1.7f, c.B[i] *= 0.6f;
    float dA[15], dB[15], ds;
    hn_full(&c, dA, dB, &ds);
    cr_assert(lt_fd_check("hardneg raw dA", hn_eval, &c, c.A, dA, 15, 1e-2));
    cr_assert(lt_fd_check("hardneg raw ds", hn_eval, &c, &c.s, &ds, 1, 1e-2));
    free(c.A), free(c.B), free(c.work);
}

static void parity_(const char *file, int want_clamped) {
    lt_ref r = lt_ref_open(file);
    size_t N = lt_dim(&r, "A", 0), D = lt_dim(&r, "A", 1);
    hn_ctx c = {lt_alloc(N * D),
                lt_alloc(N * D),
                lt_f(&r, "log_scale")[0],
                lt_f(&r, "beta")[0],
                lt_f(&r, "tau_plus")[0],
                lt_alloc(clasp_infonce_hardneg_work_floats(N, N)),
                N,
                D};
    memcpy(c.A, lt_f(&r, "A"), N * D * sizeof *c.A);
    memcpy(c.B, lt_f(&r, "B"), N * D * sizeof *c.B);
    int *clamped = lt_ints_opt(&r, "clamped_rows");
    cr_assert(clamped && (clamped[0] > 0) == want_clamped, "%s: clamped rows", file);
    float loss, ds, *dA = lt_alloc(N * D), *dB = lt_alloc(N * D);
    loss = hn_full(&c, dA, dB, &ds);
    cr_assert(clasp_test_check_tensor("loss", &loss, lt_f(&r, "loss"), 1, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dA", dA, lt_f(&r, "dA"), N * D, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dB", dB, lt_f(&r, "dB"), N * D, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dlog_scale", &ds, lt_f(&r, "dlog_scale"), 1, 1e-6, 1e-4));
    free(clamped), free(dA), free(dB), free(c.work), free(c.A), free(c.B);
    lt_ref_close(&r);
}

Test(loss_hardneg, matches_pytorch_hcl_criterion) {
    parity_("loss/hardneg.safetensors", 0);
    parity_("loss/hardneg_beta3.safetensors", 0);
    parity_("loss/hardneg_clamped.safetensors", 1);
}

Test(loss_hardneg, beta_zero_tau_plus_zero_is_infonce) {
    const size_t N = 7, D = 5;
    hn_ctx c = hn_random(N, D, 2.6f, 0.0f, 0.0f, 5);
    float l1, ds1, *dA1 = lt_alloc(N * D), *dB1 = lt_alloc(N * D);
    l1 = hn_full(&c, dA1, dB1, &ds1);
    float l0, ds0, *dA0 = lt_alloc(N * D), *dB0 = lt_alloc(N * D);
    float *w = lt_alloc(clasp_infonce_work_floats(N));
    cr_assert_eq(clasp_infonce(&l0, dA0, dB0, &ds0, c.A, c.B, c.s, NULL, N, D, w), CLASP_OK);
    cr_assert(clasp_test_check_tensor("loss", &l1, &l0, 1, 1e-6, 1e-5));
    cr_assert(clasp_test_check_tensor("dA", dA1, dA0, N * D, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dB", dB1, dB0, N * D, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("ds", &ds1, &ds0, 1, 1e-6, 1e-4));
    /* and beta > 0 changes it (the test above is not vacuous) */
    c.beta = 2.0f;
    float l2 = hn_full(&c, NULL, NULL, NULL);
    cr_assert(fabsf(l2 - l0) > 1e-3f, "beta 2: %g vs InfoNCE %g", (double)l2, (double)l0);
    free(c.A), free(c.B), free(c.work), free(dA1), free(dB1), free(dA0), free(dB0), free(w);
}

Test(loss_hardneg, rank_parts_sum_to_one_process) {
    const size_t N = 8, D = 4, n = 4;
    hn_ctx c = hn_random(N, D, 1.5f, 1.0f, 0.1f, 6);
    float l, ds, *dA = lt_alloc(N * D), *dB = lt_alloc(N * D);
    l = hn_full(&c, dA, dB, &ds);
    float lsum = 0, dssum = 0, *gA = lt_alloc(N * D), *gB = lt_alloc(N * D);
    float *aall = lt_alloc(N * D), *ball = lt_alloc(N * D), *la = lt_alloc(n * D),
          *lb = lt_alloc(n * D), *w = lt_alloc(clasp_infonce_hardneg_work_floats(n, N));
    for (size_t r = 0; r < N / n; r++) {
        float lr, dsr;
        const size_t off = r * n;
        cr_assert_eq(clasp_infonce_hardneg(&lr, la, lb, aall, ball, &dsr, c.A + off * D,
                                           c.B + off * D, c.A, c.B, c.s, c.beta, c.tau_plus, n, off,
                                           N, D, w),
                     CLASP_OK);
        lsum += lr, dssum += dsr;
        for (size_t i = 0; i < N * D; i++) gA[i] += aall[i], gB[i] += ball[i];
        for (size_t i = 0; i < n * D; i++) gA[off * D + i] += la[i], gB[off * D + i] += lb[i];
    }
    cr_assert(clasp_test_check_tensor("loss", &lsum, &l, 1, 1e-6, 1e-5));
    cr_assert(clasp_test_check_tensor("ds", &dssum, &ds, 1, 1e-6, 1e-5));
    cr_assert(clasp_test_check_tensor("dA", gA, dA, N * D, 1e-6, 1e-5));
    cr_assert(clasp_test_check_tensor("dB", gB, dB, N * D, 1e-6, 1e-5));
    free(c.A), free(c.B), free(c.work), free(dA), free(dB), free(gA), free(gB), free(aall),
        free(ball), free(la), free(lb), free(w);
}

Test(loss_hardneg, large_scale_and_beta_stay_finite) {
    const size_t N = 6, D = 3;
    hn_ctx c = hn_random(N, D, logf(100.0f), 40.0f, 0.2f, 7);
    float dA[18], dB[18], ds;
    float l = hn_full(&c, dA, dB, &ds);
    cr_assert(isfinite(l) && isfinite(ds) && lt_all_finite(dA, 18) && lt_all_finite(dB, 18),
              "loss %g", (double)l);
    free(c.A), free(c.B), free(c.work);
}

Test(loss_hardneg, rejects_bad_arguments) {
    float A[8] = {1, 0, 0, 1, 1, 0, 0, 1}, l, w[16];
    cr_assert_eq(clasp_infonce_hardneg(&l, NULL, NULL, NULL, NULL, NULL, A, A, A, A, 0, 1, 0.1f, 1,
                                       0, 1, 2, w),
                 CLASP_ERR_ARG, "one row has no negative");
    cr_assert(strstr(clasp_last_error(), "N=1"), "%s", clasp_last_error());
    cr_assert_eq(clasp_infonce_hardneg(&l, NULL, NULL, NULL, NULL, NULL, A, A, A, A, 0, -1, 0, 2, 0,
                                       2, 2, w),
                 CLASP_ERR_ARG, "beta < 0");
    cr_assert_eq(clasp_infonce_hardneg(&l, NULL, NULL, NULL, NULL, NULL, A, A, A, A, 0, 1, 1.0f, 2,
                                       0, 2, 2, w),
                 CLASP_ERR_ARG, "tau_plus = 1");
    cr_assert_eq(
        clasp_infonce_hardneg(&l, NULL, NULL, NULL, NULL, NULL, A, A, A, A, 0, 1, 0, 2, 1, 2, 2, w),
        CLASP_ERR_ARG, "offset + n > N");
    cr_assert_eq(
        clasp_infonce_hardneg(&l, NULL, NULL, NULL, NULL, NULL, A, A, A, A, 0, 1, 0, 2, 0, 2, 2, w),
        CLASP_OK);
    cr_assert(isfinite(l));
}

/* ---- NT-Xent form (HCL's own setting) --------------------------------------------------- */

static double nx_eval(void *p) {
    hn_ctx *c = p;
    float loss;
    cr_assert_eq(clasp_ntxent_hardneg(&loss, NULL, NULL, NULL, c->A, c->B, c->s, c->beta,
                                      c->tau_plus, c->N, c->D, c->work),
                 CLASP_OK, "%s", clasp_last_error());
    return (double)loss;
}

static hn_ctx nx_random(size_t N, size_t D, float s, float beta, float tau_plus, uint64_t seed) {
    hn_ctx c = hn_random(N, D, s, beta, tau_plus, seed);
    free(c.work);
    c.work = lt_alloc(clasp_ntxent_hardneg_work_floats(N, D));
    return c;
}

Test(loss_hardneg, ntxent_finite_differences) {
    const size_t N = 4, D = 3;
    hn_ctx c = nx_random(N, D, 1.2f, 1.5f, 0.1f, 8);
    float dA[12], dB[12], ds, loss;
    cr_assert_eq(
        clasp_ntxent_hardneg(&loss, dA, dB, &ds, c.A, c.B, c.s, c.beta, c.tau_plus, N, D, c.work),
        CLASP_OK);
    cr_assert(lt_fd_check("ntxent hardneg dZ1", nx_eval, &c, c.A, dA, N * D, 1e-2));
    cr_assert(lt_fd_check("ntxent hardneg dZ2", nx_eval, &c, c.B, dB, N * D, 1e-2));
    cr_assert(lt_fd_check("ntxent hardneg ds", nx_eval, &c, &c.s, &ds, 1, 1e-2));
    free(c.A), free(c.B), free(c.work);
}

Test(loss_hardneg, ntxent_matches_pytorch_hcl_criterion) {
    lt_ref r = lt_ref_open("loss/hardneg_ntxent.safetensors");
    size_t N = lt_dim(&r, "A", 0), D = lt_dim(&r, "A", 1);
    float *work = lt_alloc(clasp_ntxent_hardneg_work_floats(N, D));
    float loss, ds, *dA = lt_alloc(N * D), *dB = lt_alloc(N * D);
    cr_assert_eq(clasp_ntxent_hardneg(&loss, dA, dB, &ds, lt_f(&r, "A"), lt_f(&r, "B"),
                                      lt_f(&r, "log_scale")[0], lt_f(&r, "beta")[0],
                                      lt_f(&r, "tau_plus")[0], N, D, work),
                 CLASP_OK);
    cr_assert(clasp_test_check_tensor("loss", &loss, lt_f(&r, "loss"), 1, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dA", dA, lt_f(&r, "dA"), N * D, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dB", dB, lt_f(&r, "dB"), N * D, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dlog_scale", &ds, lt_f(&r, "dlog_scale"), 1, 1e-6, 1e-4));
    free(work), free(dA), free(dB);
    lt_ref_close(&r);
}

Test(loss_hardneg, ntxent_beta_zero_tau_plus_zero_is_ntxent) {
    const size_t N = 5, D = 4;
    hn_ctx c = nx_random(N, D, 1.7f, 0.0f, 0.0f, 9);
    float l1, ds1, dA1[20], dB1[20], l0, dt0, dA0[20], dB0[20];
    cr_assert_eq(clasp_ntxent_hardneg(&l1, dA1, dB1, &ds1, c.A, c.B, c.s, 0, 0, N, D, c.work),
                 CLASP_OK);
    float *w = lt_alloc(clasp_ntxent_work_floats(N, D)), tau = expf(-c.s);
    cr_assert_eq(clasp_ntxent(&l0, dA0, dB0, &dt0, c.A, c.B, tau, 0, N, D, w), CLASP_OK);
    float ds0 = -tau * dt0;
    cr_assert(clasp_test_check_tensor("loss", &l1, &l0, 1, 1e-6, 1e-5));
    cr_assert(clasp_test_check_tensor("dZ1", dA1, dA0, N * D, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dZ2", dB1, dB0, N * D, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("ds", &ds1, &ds0, 1, 1e-6, 1e-4));
    free(c.A), free(c.B), free(c.work), free(w);
}
