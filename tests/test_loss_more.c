/* test_loss_more.c: NT-Xent, SupCon, triplet (3 distances x 3 minings), margin contrastive,
 * the MoCo queue and the diagnostics: PyTorch parity, central finite differences (including
 * the temperature), closed forms and edge cases. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "loss/diag.h"
#include "loss/margin.h"
#include "loss/queue.h"
#include "loss/supcon.h"
#include "loss/triplet.h"
#include "test_loss_lib.h"

/* ---- NT-Xent ---------------------------------------------------------------------------- */

typedef struct {
    float *Z1, *Z2, tau, *work;
    int normalize;
    size_t N, D;
} ntxent_ctx;

static double ntxent_eval(void *p) {
    ntxent_ctx *c = p;
    float loss;
    cr_assert_eq(clasp_ntxent(&loss, NULL, NULL, NULL, c->Z1, c->Z2, c->tau, c->normalize, c->N,
                              c->D, c->work),
                 CLASP_OK);
    return (double)loss;
}

Test(loss, ntxent_finite_differences) {
    for (int normalize = 0; normalize < 2; normalize++) {
        size_t N = 3, D = 4;
        ntxent_ctx c = {
            lt_randn(N * D, 50, 1), lt_randn(N * D, 50, 2), 0.5f, NULL, normalize, N, D};
        if (!normalize) lt_normalize_rows(c.Z1, N, D), lt_normalize_rows(c.Z2, N, D);
        c.work = lt_alloc(clasp_ntxent_work_floats(N, D));
        float loss, dt, *d1 = lt_alloc(N * D), *d2 = lt_alloc(N * D);
        cr_assert_eq(clasp_ntxent(&loss, d1, d2, &dt, c.Z1, c.Z2, c.tau, normalize, N, D, c.work),
                     CLASP_OK);
        cr_assert(lt_fd_check("ntxent dZ1", ntxent_eval, &c, c.Z1, d1, N * D, 1e-2));
        cr_assert(lt_fd_check("ntxent dZ2", ntxent_eval, &c, c.Z2, d2, N * D, 1e-2));
        cr_assert(lt_fd_check("ntxent dtau", ntxent_eval, &c, &c.tau, &dt, 1, 1e-3));
        free(c.Z1), free(c.Z2), free(c.work), free(d1), free(d2);
    }
}

Test(loss, ntxent_matches_pytorch) {
    lt_ref r = lt_ref_open("loss/ntxent.safetensors");
    size_t N = lt_dim(&r, "Z1", 0), D = lt_dim(&r, "Z1", 1);
    float loss, dt, *d1 = lt_alloc(N * D), *d2 = lt_alloc(N * D);
    float *work = lt_alloc(clasp_ntxent_work_floats(N, D));
    cr_assert_eq(clasp_ntxent(&loss, d1, d2, &dt, lt_f(&r, "Z1"), lt_f(&r, "Z2"),
                              lt_f(&r, "temperature")[0], 1, N, D, work),
                 CLASP_OK);
    cr_assert(clasp_test_check_tensor("loss", &loss, lt_f(&r, "loss"), 1, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dZ1", d1, lt_f(&r, "dZ1"), N * D, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dZ2", d2, lt_f(&r, "dZ2"), N * D, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dtemp", &dt, lt_f(&r, "dtemp"), 1, 1e-6, 1e-4));
    free(d1), free(d2), free(work);
    lt_ref_close(&r);
}

/* Equal similarities: each anchor is uniform over 2N - 1 candidates, loss = ln(2N - 1).
 * N = 1: one candidate (the positive), loss 0. Zero rows with normalize: defined, finite. */
Test(loss, ntxent_closed_forms_and_edges) {
    const size_t N = 4, D = 2;
    float Z[8], d1[8], d2[8], loss, dt;
    for (size_t i = 0; i < N; i++) Z[2 * i] = 1.0f, Z[2 * i + 1] = 0.0f;
    float *w = lt_alloc(clasp_ntxent_work_floats(N, D));
    cr_assert_eq(clasp_ntxent(&loss, d1, d2, &dt, Z, Z, 0.1f, 0, N, D, w), CLASP_OK);
    cr_assert(fabsf(loss - logf(7.0f)) < 1e-5f, "loss %g", (double)loss);
    cr_assert_eq(clasp_ntxent(&loss, d1, d2, &dt, Z, Z, 0.1f, 0, 1, D, w), CLASP_OK);
    cr_assert(loss == 0.0f && lt_max_abs(d1, 2) == 0.0f);
    memset(Z, 0, sizeof Z);
    Z[0] = 3.0f;
    cr_assert_eq(clasp_ntxent(&loss, d1, d2, &dt, Z, Z, 0.05f, 1, N, D, w), CLASP_OK);
    cr_assert(isfinite(loss) && lt_all_finite(d1, 8) && lt_all_finite(d2, 8) && isfinite(dt));
    /* very small and very large temperatures stay finite */
    float *Z1 = lt_randn(N * D, 51, 1), *Z2 = lt_randn(N * D, 51, 2);
    const float taus[] = {1e-4f, 1e4f};
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(clasp_ntxent(&loss, d1, d2, &dt, Z1, Z2, taus[k], 1, N, D, w), CLASP_OK);
        cr_assert(isfinite(loss) && lt_all_finite(d1, 8) && isfinite(dt), "tau %g",
                  (double)taus[k]);
    }
    cr_assert_eq(clasp_ntxent(&loss, d1, d2, &dt, Z1, Z2, 0.0f, 1, N, D, w), CLASP_ERR_ARG);
    free(w), free(Z1), free(Z2);
}

/* ---- SupCon ----------------------------------------------------------------------------- */

typedef struct {
    float *Z, tau, *work;
    const int *labels;
    size_t M, D;
} supcon_ctx;

static double supcon_eval(void *p) {
    supcon_ctx *c = p;
    float loss;
    cr_assert_eq(
        clasp_supcon(&loss, NULL, NULL, NULL, c->Z, c->labels, c->tau, 1, c->M, c->D, c->work),
        CLASP_OK);
    return (double)loss;
}

Test(loss, supcon_finite_differences) {
    static const int labels[7] = {0, 1, 0, 1, 2, 0, 3};
    supcon_ctx c = {lt_randn(7 * 3, 60, 1), 0.3f, NULL, labels, 7, 3};
    c.work = lt_alloc(clasp_supcon_work_floats(7, 3));
    float loss, dt, *dZ = lt_alloc(7 * 3);
    size_t na;
    cr_assert_eq(clasp_supcon(&loss, dZ, &dt, &na, c.Z, labels, c.tau, 1, 7, 3, c.work), CLASP_OK);
    cr_assert_eq(na, 5u); /* labels 2 and 3 have no positive */
    cr_assert(lt_fd_check("supcon dZ", supcon_eval, &c, c.Z, dZ, 7 * 3, 1e-2));
    cr_assert(lt_fd_check("supcon dtau", supcon_eval, &c, &c.tau, &dt, 1, 1e-3));
    free(c.Z), free(c.work), free(dZ);
}

Test(loss, supcon_matches_pytorch) {
    lt_ref r = lt_ref_open("loss/supcon.safetensors");
    size_t M = lt_dim(&r, "Z", 0), D = lt_dim(&r, "Z", 1);
    int *labels = lt_ints_opt(&r, "labels");
    float loss, dt, *dZ = lt_alloc(M * D), *work = lt_alloc(clasp_supcon_work_floats(M, D));
    cr_assert_eq(clasp_supcon(&loss, dZ, &dt, NULL, lt_f(&r, "Z"), labels,
                              lt_f(&r, "temperature")[0], 1, M, D, work),
                 CLASP_OK);
    cr_assert(clasp_test_check_tensor("loss", &loss, lt_f(&r, "loss"), 1, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dZ", dZ, lt_f(&r, "dZ"), M * D, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dtemp", &dt, lt_f(&r, "dtemp"), 1, 1e-6, 1e-4));
    free(labels), free(dZ), free(work);
    lt_ref_close(&r);
}

/* NT-Xent is SupCon with labels (0..N-1, 0..N-1) on the stacked views; no anchor with a
 * positive gives 0; single row gives 0. */
Test(loss, supcon_equals_ntxent_and_edges) {
    const size_t N = 3, D = 4;
    float *Z = lt_randn(2 * N * D, 61, 1), *dZ = lt_alloc(2 * N * D), *d1 = lt_alloc(N * D);
    float *d2 = lt_alloc(N * D), *w = lt_alloc(clasp_ntxent_work_floats(N, D)), ls, ln, ts, tn;
    const int labels[6] = {0, 1, 2, 0, 1, 2}, distinct[6] = {0, 1, 2, 3, 4, 5};
    cr_assert_eq(clasp_supcon(&ls, dZ, &ts, NULL, Z, labels, 0.2f, 1, 2 * N, D, w), CLASP_OK);
    cr_assert_eq(clasp_ntxent(&ln, d1, d2, &tn, Z, Z + N * D, 0.2f, 1, N, D, w), CLASP_OK);
    cr_assert(fabsf(ls - ln) < 1e-6f && fabsf(ts - tn) < 1e-5f);
    cr_assert(clasp_test_check_tensor("dZ1", dZ, d1, N * D, 1e-7, 1e-5));
    cr_assert(clasp_test_check_tensor("dZ2", dZ + N * D, d2, N * D, 1e-7, 1e-5));
    size_t na = 99;
    cr_assert_eq(clasp_supcon(&ls, dZ, &ts, &na, Z, distinct, 0.2f, 1, 2 * N, D, w), CLASP_OK);
    cr_assert(na == 0 && ls == 0.0f && ts == 0.0f && lt_max_abs(dZ, 2 * N * D) == 0.0f);
    cr_assert_eq(clasp_supcon(&ls, dZ, &ts, &na, Z, labels, 0.2f, 1, 1, D, w), CLASP_OK);
    cr_assert(na == 0 && ls == 0.0f);
    /* duplicate rows and a zero row, tiny temperature: finite */
    memcpy(Z + D, Z, D * sizeof *Z);
    memset(Z + 2 * D, 0, D * sizeof *Z);
    cr_assert_eq(clasp_supcon(&ls, dZ, &ts, &na, Z, labels, 1e-3f, 1, 2 * N, D, w), CLASP_OK);
    cr_assert(isfinite(ls) && isfinite(ts) && lt_all_finite(dZ, 2 * N * D));
    /* D = 1 */
    cr_assert_eq(clasp_supcon(&ls, dZ, &ts, &na, Z, labels, 0.5f, 0, 2 * N, 1, w), CLASP_OK);
    cr_assert(isfinite(ls) && na == 6);
    free(Z), free(dZ), free(d1), free(d2), free(w);
}

/* ---- triplet ---------------------------------------------------------------------------- */

static const char *dist_name[] = {"euclidean", "sqeuclidean", "cosine"};
static const char *mining_name[] = {"batch_all", "batch_hard", "semi_hard"};

typedef struct {
    float *X, margin, *work;
    const int *labels;
    clasp_triplet_distance dist;
    clasp_triplet_mining mining;
    size_t M, D;
} triplet_ctx;

static double triplet_eval(void *p) {
    triplet_ctx *c = p;
    float loss;
    cr_assert_eq(clasp_triplet(&loss, NULL, NULL, c->X, c->labels, c->margin, c->dist, c->mining,
                               c->M, c->D, c->work),
                 CLASP_OK);
    return (double)loss;
}

Test(loss, triplet_finite_differences) {
    static const int labels[8] = {0, 1, 0, 2, 1, 0, 2, 1};
    for (int d = 0; d < 3; d++)
        for (int m = 0; m < 3; m++) {
            triplet_ctx c = {lt_randn(8 * 3, 70 + d, m), 0.4f, NULL, labels, d, m, 8, 3};
            lt_normalize_rows(c.X, 8, 3);
            c.work = lt_alloc(clasp_triplet_work_floats(8));
            float loss, *dX = lt_alloc(8 * 3);
            size_t nt;
            cr_assert_eq(clasp_triplet(&loss, dX, &nt, c.X, labels, c.margin, c.dist, c.mining, 8,
                                       3, c.work),
                         CLASP_OK);
            cr_assert(loss > 0.0f && nt > 0, "%s %s: loss %g", dist_name[d], mining_name[m],
                      (double)loss);
            char name[64];
            snprintf(name, sizeof name, "triplet %s %s", dist_name[d], mining_name[m]);
            cr_assert(lt_fd_check(name, triplet_eval, &c, c.X, dX, 8 * 3, 1e-3));
            free(c.X), free(c.work), free(dX);
        }
}

Test(loss, triplet_matches_pytorch) {
    for (int d = 0; d < 3; d++)
        for (int m = 0; m < 3; m++) {
            char file[128];
            snprintf(file, sizeof file, "loss/triplet_%s_%s.safetensors", dist_name[d],
                     mining_name[m]);
            lt_ref r = lt_ref_open(file);
            size_t M = lt_dim(&r, "X", 0), D = lt_dim(&r, "X", 1), nt;
            int *labels = lt_ints_opt(&r, "labels"), *want_nt = lt_ints_opt(&r, "n_terms");
            float loss, *dX = lt_alloc(M * D), *work = lt_alloc(clasp_triplet_work_floats(M));
            cr_assert_eq(clasp_triplet(&loss, dX, &nt, lt_f(&r, "X"), labels, lt_f(&r, "margin")[0],
                                       d, m, M, D, work),
                         CLASP_OK);
            cr_assert(clasp_test_check_tensor(file, &loss, lt_f(&r, "loss"), 1, 1e-6, 1e-4));
            cr_assert(clasp_test_check_tensor(file, dX, lt_f(&r, "dX"), M * D, 1e-6, 1e-4));
            cr_assert_eq(nt, (size_t)want_nt[0], "%s: n_terms %zu want %d", file, nt, want_nt[0]);
            free(labels), free(want_nt), free(dX), free(work);
            lt_ref_close(&r);
        }
}

/* Two tight clusters far apart: every mining gives 0 with margin 1; duplicate rows (zero
 * euclidean distance) give finite gradients; one class only gives 0 terms. */
Test(loss, triplet_closed_forms_and_edges) {
    float X[8] = {0, 0, 0.1f, 0, 5, 5, 5, 5.1f}, dX[8], loss, work[2 * 16 + 4];
    const int labels[4] = {0, 0, 1, 1}, one[4] = {0, 0, 0, 0};
    size_t nt;
    for (int d = 0; d < 2; d++)
        for (int m = 0; m < 3; m++) {
            cr_assert_eq(clasp_triplet(&loss, dX, &nt, X, labels, 1.0f, d, m, 4, 2, work),
                         CLASP_OK);
            cr_assert(loss == 0.0f && lt_max_abs(dX, 8) == 0.0f, "%s %s", dist_name[d],
                      mining_name[m]);
        }
    /* batch-hard by hand: anchor 0 (at origin) with its positive at distance 0.1 and the
     * nearest negative at sqrt(50): with margin 10, h = 0.1 - sqrt(50) + 10 */
    cr_assert_eq(clasp_triplet(&loss, NULL, &nt, X, labels, 10.0f, 0, 1, 4, 2, work), CLASP_OK);
    double h0 = 0.1 - sqrt(50.0) + 10.0, h1 = 0.1 - sqrt(4.9 * 4.9 + 25.0) + 10.0;
    double h2 = 0.1 - sqrt(4.9 * 4.9 + 25.0) + 10.0, h3 = 0.1 - sqrt(4.9 * 4.9 + 5.1 * 5.1) + 10.0;
    cr_assert(nt == 4 && fabs((double)loss - (h0 + h1 + h2 + h3) / 4.0) < 1e-5, "loss %g",
              (double)loss);
    memcpy(X + 2, X, 2 * sizeof *X); /* duplicate anchor/positive */
    for (int m = 0; m < 3; m++) {
        cr_assert_eq(clasp_triplet(&loss, dX, &nt, X, labels, 10.0f, 0, m, 4, 2, work), CLASP_OK);
        cr_assert(isfinite(loss) && lt_all_finite(dX, 8));
    }
    cr_assert_eq(clasp_triplet(&loss, dX, &nt, X, one, 1.0f, 0, 1, 4, 2, work), CLASP_OK);
    cr_assert(nt == 0 && loss == 0.0f);
    cr_assert_eq(clasp_triplet(&loss, dX, &nt, X, one, 1.0f, 0, 1, 1, 2, work), CLASP_OK);
    cr_assert_eq(clasp_triplet(&loss, dX, &nt, X, labels, -1.0f, 0, 1, 4, 2, work), CLASP_ERR_ARG);
}

/* ---- margin contrastive ----------------------------------------------------------------- */

typedef struct {
    float *X1, *X2, m;
    const int *y;
    size_t P, D;
} margin_ctx;

static double margin_eval(void *p) {
    margin_ctx *c = p;
    float loss;
    cr_assert_eq(clasp_margin_contrastive(&loss, NULL, NULL, c->X1, c->X2, c->y, c->m, c->P, c->D),
                 CLASP_OK);
    return (double)loss;
}

Test(loss, margin_finite_differences_and_pytorch) {
    lt_ref r = lt_ref_open("loss/margin.safetensors");
    size_t P = lt_dim(&r, "X1", 0), D = lt_dim(&r, "X1", 1);
    int *y = lt_ints_opt(&r, "similar");
    float loss, *d1 = lt_alloc(P * D), *d2 = lt_alloc(P * D);
    margin_ctx c = {lt_alloc(P * D), lt_alloc(P * D), lt_f(&r, "margin")[0], y, P, D};
    memcpy(c.X1, lt_f(&r, "X1"), P * D * sizeof(float));
    memcpy(c.X2, lt_f(&r, "X2"), P * D * sizeof(float));
    cr_assert_eq(clasp_margin_contrastive(&loss, d1, d2, c.X1, c.X2, y, c.m, P, D), CLASP_OK);
    cr_assert(clasp_test_check_tensor("loss", &loss, lt_f(&r, "loss"), 1, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dX1", d1, lt_f(&r, "dX1"), P * D, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dX2", d2, lt_f(&r, "dX2"), P * D, 1e-6, 1e-4));
    cr_assert(lt_fd_check("margin dX1", margin_eval, &c, c.X1, d1, P * D, 1e-3));
    cr_assert(lt_fd_check("margin dX2", margin_eval, &c, c.X2, d2, P * D, 1e-3));
    free(y), free(d1), free(d2), free(c.X1), free(c.X2);
    lt_ref_close(&r);
}

Test(loss, margin_closed_forms) {
    /* similar pair at distance 0.5: 0.25; dissimilar at 0.5, margin 2: 1.5^2 = 2.25;
     * dissimilar identical points (d = 0): m^2 with zero (sub)gradient, no NaN */
    float a[3] = {0, 0, 0}, b[3] = {0.3f, 0.4f, 0}, da[3], db[3], loss;
    const int sim = 1, dis = 0;
    cr_assert_eq(clasp_margin_contrastive(&loss, da, db, a, b, &sim, 2.0f, 1, 3), CLASP_OK);
    cr_assert(fabsf(loss - 0.25f) < 1e-6f && fabsf(da[0] + 0.6f) < 1e-6f);
    cr_assert_eq(clasp_margin_contrastive(&loss, da, db, a, b, &dis, 2.0f, 1, 3), CLASP_OK);
    cr_assert(fabsf(loss - 2.25f) < 1e-5f);
    cr_assert_eq(clasp_margin_contrastive(&loss, da, db, a, a, &dis, 2.0f, 1, 3), CLASP_OK);
    cr_assert(fabsf(loss - 4.0f) < 1e-6f && lt_max_abs(da, 3) == 0.0f && lt_all_finite(db, 3));
    cr_assert_eq(clasp_margin_contrastive(&loss, da, db, a, a, &dis, 2.0f, 0, 3), CLASP_ERR_ARG);
}

/* The training form over every cross pair of a batch (groups mark the similar ones), against
 * PyTorch; finite differences; and split over two "ranks" (rows 0..2 and 3..5 of A against all
 * of B), whose losses and dB add up to the whole batch's */
typedef struct {
    float *A, *B, m;
    const int *g;
    size_t N, D;
} margin_cross_ctx;

static double margin_cross_eval(void *p) {
    margin_cross_ctx *c = p;
    float loss;
    cr_assert_eq(clasp_margin_cross(&loss, NULL, NULL, c->A, c->B, c->g, c->m, c->N, 0, c->N, c->D),
                 CLASP_OK);
    return (double)loss;
}

Test(loss, margin_cross_pytorch_finite_differences_and_ranks) {
    lt_ref r = lt_ref_open("loss/margin_cross.safetensors");
    size_t N = lt_dim(&r, "A", 0), D = lt_dim(&r, "A", 1), h = N / 2;
    int *g = lt_ints_opt(&r, "groups");
    float loss, l0, l1, *dA = lt_alloc(N * D), *dB = lt_alloc(N * D), *dB1 = lt_alloc(N * D);
    margin_cross_ctx c = {lt_alloc(N * D), lt_alloc(N * D), lt_f(&r, "margin")[0], g, N, D};
    memcpy(c.A, lt_f(&r, "A"), N * D * sizeof(float));
    memcpy(c.B, lt_f(&r, "B"), N * D * sizeof(float));
    cr_assert_eq(clasp_margin_cross(&loss, dA, dB, c.A, c.B, g, c.m, N, 0, N, D), CLASP_OK);
    cr_assert(clasp_test_check_tensor("loss", &loss, lt_f(&r, "loss"), 1, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dA", dA, lt_f(&r, "dA"), N * D, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dB", dB, lt_f(&r, "dB"), N * D, 1e-6, 1e-4));
    cr_assert(lt_fd_check("margin_cross dA", margin_cross_eval, &c, c.A, dA, N * D, 1e-3));
    cr_assert(lt_fd_check("margin_cross dB", margin_cross_eval, &c, c.B, dB, N * D, 1e-3));
    /* two ranks: rank 0 writes dA rows 0..h-1 and its part of dB, rank 1 the rest */
    cr_assert_eq(clasp_margin_cross(&l0, dA, dB, c.A, c.B, g, c.m, h, 0, N, D), CLASP_OK);
    cr_assert_eq(clasp_margin_cross(&l1, dA + h * D, dB1, c.A + h * D, c.B, g, c.m, N - h, h, N, D),
                 CLASP_OK);
    for (size_t i = 0; i < N * D; i++) dB[i] += dB1[i];
    float sum = l0 + l1;
    cr_assert(clasp_test_check_tensor("loss (2 ranks)", &sum, lt_f(&r, "loss"), 1, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dA (2 ranks)", dA, lt_f(&r, "dA"), N * D, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dB (2 ranks)", dB, lt_f(&r, "dB"), N * D, 1e-6, 1e-4));
    free(g), free(dA), free(dB), free(dB1), free(c.A), free(c.B);
    lt_ref_close(&r);
}

/* ---- MoCo queue ------------------------------------------------------------------------- */

typedef struct {
    float *q, *k, tau, *work;
    const clasp_queue *queue;
    size_t n, D;
} moco_ctx;

static double moco_eval(void *p) {
    moco_ctx *c = p;
    float loss;
    cr_assert_eq(clasp_moco_infonce(&loss, NULL, NULL, NULL, c->q, c->k, c->queue, c->tau, c->n,
                                    c->D, c->work),
                 CLASP_OK);
    return (double)loss;
}

Test(loss, moco_matches_pytorch_and_finite_differences) {
    lt_ref r = lt_ref_open("loss/moco.safetensors");
    size_t n = lt_dim(&r, "q", 0), D = lt_dim(&r, "q", 1), K = lt_dim(&r, "queue", 0);
    clasp_queue queue;
    cr_assert_eq(clasp_queue_init(&queue, K, D), CLASP_OK);
    /* fill through the FIFO: two partial enqueues */
    cr_assert_eq(clasp_queue_enqueue(&queue, lt_f(&r, "queue"), 2), CLASP_OK);
    cr_assert_eq(clasp_queue_enqueue(&queue, lt_f(&r, "queue") + 2 * D, K - 2), CLASP_OK);
    cr_assert_eq(queue.count, K);
    moco_ctx c = {lt_alloc(n * D), lt_alloc(n * D), lt_f(&r, "temperature")[0], NULL, &queue, n, D};
    memcpy(c.q, lt_f(&r, "q"), n * D * sizeof(float));
    memcpy(c.k, lt_f(&r, "k"), n * D * sizeof(float));
    c.work = lt_alloc(clasp_moco_work_floats(n, K));
    float loss, dt, *dq = lt_alloc(n * D), *dk = lt_alloc(n * D);
    cr_assert_eq(clasp_moco_infonce(&loss, dq, dk, &dt, c.q, c.k, &queue, c.tau, n, D, c.work),
                 CLASP_OK);
    cr_assert(clasp_test_check_tensor("loss", &loss, lt_f(&r, "loss"), 1, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dq", dq, lt_f(&r, "dq"), n * D, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dk", dk, lt_f(&r, "dk"), n * D, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dtemp", &dt, lt_f(&r, "dtemp"), 1, 1e-5, 1e-4));
    c.tau = 0.5f; /* softer logits for the finite-difference check */
    cr_assert_eq(clasp_moco_infonce(&loss, dq, dk, &dt, c.q, c.k, &queue, c.tau, n, D, c.work),
                 CLASP_OK);
    cr_assert(lt_fd_check("moco dq", moco_eval, &c, c.q, dq, n * D, 1e-2));
    cr_assert(lt_fd_check("moco dk", moco_eval, &c, c.k, dk, n * D, 1e-2));
    cr_assert(lt_fd_check("moco dtau", moco_eval, &c, &c.tau, &dt, 1, 1e-3));
    clasp_queue_free(&queue);
    free(c.q), free(c.k), free(c.work), free(dq), free(dk);
    lt_ref_close(&r);
}

Test(loss, moco_queue_fifo_and_momentum) {
    clasp_queue q;
    cr_assert_eq(clasp_queue_init(&q, 3, 1), CLASP_OK);
    float k1[2] = {1, 2}, k2[2] = {3, 4}, k5[5] = {5, 6, 7, 8, 9};
    float qq = 1.0f, kk = 1.0f, loss, dq, dk, work[8];
    /* empty queue: only the positive, loss 0 */
    cr_assert_eq(clasp_moco_infonce(&loss, &dq, &dk, NULL, &qq, &kk, &q, 0.07f, 1, 1, work),
                 CLASP_OK);
    cr_assert(loss == 0.0f && dq == 0.0f && dk == 0.0f);
    clasp_queue_enqueue(&q, k1, 2);
    cr_assert(q.count == 2 && q.head == 2);
    clasp_queue_enqueue(&q, k2, 2); /* overwrites the oldest (1) */
    cr_assert(q.count == 3 && q.head == 1);
    cr_assert(q.keys[0] == 4.0f && q.keys[1] == 2.0f && q.keys[2] == 3.0f);
    clasp_queue_enqueue(&q, k5, 5); /* only the newest 3 survive: 7 8 9 */
    float s = q.keys[0] + q.keys[1] + q.keys[2];
    cr_assert(s == 24.0f && q.count == 3);
    /* equal logits: loss = ln(1 + count) */
    float zero_q[1] = {0.0f};
    cr_assert_eq(clasp_moco_infonce(&loss, &dq, NULL, NULL, zero_q, &kk, &q, 0.07f, 1, 1, work),
                 CLASP_OK);
    cr_assert(fabsf(loss - logf(4.0f)) < 1e-6f);
    clasp_queue_free(&q);
    clasp_queue_free(&q); /* idempotent */
    clasp_queue_free(NULL);
    float tk[3] = {1, 2, 3}, tq[3] = {3, 2, 1};
    clasp_momentum_update(tk, tq, 3, 0.75f);
    cr_assert(tk[0] == 1.5f && tk[1] == 2.0f && tk[2] == 2.5f);
    cr_assert_eq(clasp_queue_init(&q, 0, 4), CLASP_ERR_ARG);
}

/* ---- diagnostics ------------------------------------------------------------------------ */

Test(loss, diagnostics_closed_forms) {
    /* A: 4 one-hot rows e0..e3 (D = 4); B = A. */
    float A[16] = {0}, C[16];
    for (int i = 0; i < 4; i++) A[i * 4 + i] = 1.0f;
    clasp_diag d;
    cr_assert_eq(clasp_diag_compute(&d, A, A, NULL, 4, 4), CLASP_OK);
    /* each column is (1,0,0,0): std = sqrt(3)/4 */
    cr_assert(fabsf(d.std_mean_a - sqrtf(3.0f) / 4.0f) < 1e-6f && d.std_min_a == d.std_mean_a);
    cr_assert(d.alignment == 0.0f && d.pos_sim == 1.0f && d.hardneg_sim == 0.0f);
    /* all pairs at squared distance 2: uniformity = -4 */
    cr_assert(fabsf(d.uniformity_a + 4.0f) < 1e-6f);
    /* collapse: all rows equal -> std 0, uniformity 0 (exp(0)), hardest negative = 1 */
    for (int i = 0; i < 16; i++) C[i] = (i % 4 == 0) ? 1.0f : 0.0f;
    cr_assert_eq(clasp_diag_compute(&d, C, C, NULL, 4, 4), CLASP_OK);
    cr_assert(d.std_mean_a == 0.0f && d.std_min_a == 0.0f && d.uniformity_a == 0.0f);
    cr_assert(d.hardneg_sim == 1.0f);
    /* alignment: A vs C: rows 1..3 differ by 2, row 0 by 0 -> mean 1.5 */
    cr_assert(fabsf(clasp_diag_alignment(A, C, 4, 4) - 1.5f) < 1e-6f);
    /* groups: all one group -> no negatives -> hardneg 0; N = 1 edge */
    const int g[4] = {1, 1, 1, 1};
    cr_assert_eq(clasp_diag_compute(&d, A, A, g, 4, 4), CLASP_OK);
    cr_assert(d.hardneg_sim == 0.0f);
    cr_assert_eq(clasp_diag_compute(&d, A, A, NULL, 1, 4), CLASP_OK);
    cr_assert(d.uniformity_a == 0.0f && d.std_mean_a == 0.0f && isfinite(d.hardneg_sim));
    /* antipodal pair: ||x - y||^2 = 4 -> uniformity -8 */
    float P[2] = {1.0f, -1.0f};
    cr_assert(fabsf(clasp_diag_uniformity(P, 2, 1) + 8.0f) < 1e-6f);
    cr_assert_eq(clasp_diag_compute(&d, A, A, NULL, 0, 4), CLASP_ERR_ARG);
}

Test(loss, diagnostics_match_pytorch) {
    lt_ref r = lt_ref_open("loss/diag.safetensors");
    size_t N = lt_dim(&r, "A", 0), D = lt_dim(&r, "A", 1);
    clasp_diag d;
    cr_assert_eq(clasp_diag_compute(&d, lt_f(&r, "A"), lt_f(&r, "B"), NULL, N, D), CLASP_OK);
    cr_assert(
        clasp_test_check_tensor("std_mean", &d.std_mean_a, lt_f(&r, "std_mean_a"), 1, 1e-7, 1e-5));
    cr_assert(
        clasp_test_check_tensor("std_min", &d.std_min_a, lt_f(&r, "std_min_a"), 1, 1e-7, 1e-5));
    cr_assert(
        clasp_test_check_tensor("alignment", &d.alignment, lt_f(&r, "alignment"), 1, 1e-7, 1e-5));
    cr_assert(clasp_test_check_tensor("uniformity", &d.uniformity_a, lt_f(&r, "uniformity_a"), 1,
                                      1e-7, 1e-5));
    cr_assert(clasp_test_check_tensor("pos_sim", &d.pos_sim, lt_f(&r, "pos_sim"), 1, 1e-7, 1e-5));
    cr_assert(clasp_test_check_tensor("hardneg_sim", &d.hardneg_sim, lt_f(&r, "hardneg_sim"), 1,
                                      1e-7, 1e-5));
    lt_ref_close(&r);
}
