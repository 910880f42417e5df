/* test_compute.c: core/compute.h against a naive double-precision product.
 * - clasp_gemm in fp32 and bf16 for every transpose pair, row strides wider than the rows,
 *   alpha != 1, beta 0 (C full of NaN: never read), 1 and 0.5, K = 0, M or N = 1, odd sizes;
 *   the padding between rows of C is never written.
 * - bf16 equals the fp32 product of the inputs rounded with clasp_bf16_round_n (within fp32
 *   accumulation-order error) and is far from the plain fp32 product.
 * - The primitive cache: the same shape again, other data of that shape, other shapes in
 *   between: identical bits; and 1, 2 or all threads per product: identical bits. Two threads at
 * once (one bf16, one fp32): the main thread's bits; the precision is the calling thread's own.
 * - The bf16 helpers against an independent round-to-nearest-even (ties, +-inf, NaN,
 *   denormals flushed to signed zero, the largest floats), clasp_precision_parse and the backend's
 * answer to bf16.
 * - ONEDNN_MAX_CPU_ISA=AVX2 / AVX512_CORE (read once per process: a child process, this
 *   binary re-run with CLASP_COMPUTE_CHILD set): bf16 products agree with the native ones
 *   within fp32 accumulation error; never other numbers. */
#include <criterion/criterion.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/compute.h"
#include "core/rng.h"
#include "core/status.h"
#include "fixtures.h"

/* ---- helpers ------------------------------------------------------------------------------ */

/* n floats uniform in [-1, 1) from (seed) */
static float *uniform_(size_t n, uint64_t seed) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    cr_assert_not_null(p);
    clasp_rng r;
    clasp_rng_init(&r, seed, CLASP_RNG_TEST, 13, n);
    for (size_t i = 0; i < n; i++) p[i] = 2.0f * clasp_rng_uniform(&r) - 1.0f;
    return p;
}

static float *copy_(const float *x, size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    cr_assert_not_null(p);
    memcpy(p, x, n * sizeof(float));
    return p;
}

/* One product's operands: op(A) (M, K), op(B) (K, N), C (M, N) in buffers with row strides
 * lda, ldb, ldc (each wider than its rows by `pad`). */
typedef struct gemm_case {
    int ta, tb, M, N, K, lda, ldb, ldc;
    float alpha, beta;
    float *A, *B, *C0; /* C0: C before the product */
    size_t na, nb, nc;
} gemm_case;

static gemm_case case_make_(int ta, int tb, int M, int N, int K, int pad, float alpha, float beta,
                            uint64_t seed) {
    gemm_case g = {ta, tb, M, N, K, 0, 0, 0, alpha, beta, NULL, NULL, NULL, 0, 0, 0};
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    g.lda = ac + pad, g.ldb = bc + pad, g.ldc = N + pad;
    g.na = (size_t)ar * g.lda, g.nb = (size_t)br * g.ldb, g.nc = (size_t)M * g.ldc;
    g.A = uniform_(g.na, seed), g.B = uniform_(g.nb, seed + 1), g.C0 = uniform_(g.nc, seed + 2);
    if (beta == 0.0f)
        for (size_t i = 0; i < g.nc; i++) g.C0[i] = NAN; /* beta = 0 must not read C */
    return g;
}

static void case_free_(gemm_case *g) {
    free(g->A), free(g->B), free(g->C0);
}

static float a_at_(const gemm_case *g, const float *A, int m, int k) {
    return g->ta ? A[(size_t)k * g->lda + m] : A[(size_t)m * g->lda + k];
}

static float b_at_(const gemm_case *g, const float *B, int k, int n) {
    return g->tb ? B[(size_t)n * g->ldb + k] : B[(size_t)k * g->ldb + n];
}

/* C = clasp_gemm of the case, computed in the calling thread's precision (malloc'd, nc floats) */
static float *case_run_(const gemm_case *g) {
    float *C = copy_(g->C0, g->nc);
    clasp_gemm(g->ta, g->tb, g->M, g->N, g->K, g->alpha, g->A, g->lda, g->B, g->ldb, g->beta, C,
               g->ldc);
    return C;
}

/* Checks C against the double product of A and B (rounded to bf16 first when `bf16`): every
 * element within 2 (K + 2) FLT_EPSILON sum |terms| (fp32 accumulation in any order); the
 * padding of C untouched. Returns the largest |C - exact product of the unrounded inputs|
 * relative to its bound, for the caller's "far from fp32" check. */
static double case_check_(const gemm_case *g, const float *C, int bf16, const char *what) {
    float *A = copy_(g->A, g->na), *B = copy_(g->B, g->nb);
    if (bf16) clasp_bf16_round_n(A, g->na), clasp_bf16_round_n(B, g->nb);
    double worst_fp32 = 0.0;
    for (int m = 0; m < g->M; m++) {
        for (int n = 0; n < g->N; n++) {
            double s = 0.0, s32 = 0.0, abs = 0.0;
            for (int k = 0; k < g->K; k++) {
                double t = (double)a_at_(g, A, m, k) * (double)b_at_(g, B, k, n);
                s += t, abs += fabs(t);
                s32 += (double)a_at_(g, g->A, m, k) * (double)b_at_(g, g->B, k, n);
            }
            double c0 = g->beta == 0.0f ? 0.0 : (double)g->C0[(size_t)m * g->ldc + n];
            double want = (double)g->alpha * s + (double)g->beta * c0;
            double want32 = (double)g->alpha * s32 + (double)g->beta * c0;
            double tol = 2.0 * (g->K + 2) * (double)FLT_EPSILON *
                             (fabs((double)g->alpha) * abs + fabs((double)g->beta * c0)) +
                         1e-30;
            double got = (double)C[(size_t)m * g->ldc + n];
            cr_assert(fabs(got - want) <= tol,
                      "%s ta=%d tb=%d M=%d N=%d K=%d alpha=%g beta=%g C[%d,%d] = %.9g, want "
                      "%.9g (tol %.3g)",
                      what, g->ta, g->tb, g->M, g->N, g->K, (double)g->alpha, (double)g->beta, m, n,
                      got, want, tol);
            if (fabs(got - want32) / tol > worst_fp32) worst_fp32 = fabs(got - want32) / tol;
        }
        for (int n = g->N; n < g->ldc; n++) {
            float was = g->C0[(size_t)m * g->ldc + n], now = C[(size_t)m * g->ldc + n];
            cr_assert(!memcmp(&was, &now, sizeof was), "%s: padding C[%d,%d] was written", what, m,
                      n);
        }
    }
    free(A), free(B);
    return worst_fp32;
}

static const int k_shapes[][3] = {/* M N K */
                                  {1, 1, 1}, {1, 7, 5},    {9, 1, 13},   {17, 23, 31},
                                  {3, 5, 1}, {64, 48, 96}, {33, 65, 17}, {128, 3, 200}};
#define N_SHAPES (sizeof k_shapes / sizeof k_shapes[0])

static void gemm_sweep_(clasp_precision p) {
    static const float alphas[] = {1.0f, -0.75f}, betas[] = {0.0f, 1.0f, 0.5f};
    clasp_compute_set_precision(p);
    uint64_t seed = 100;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (size_t s = 0; s < N_SHAPES; s++)
                for (int ai = 0; ai < 2; ai++)
                    for (int bi = 0; bi < 3; bi++)
                        for (int pad = 0; pad <= 3; pad += 3) {
                            gemm_case g =
                                case_make_(ta, tb, k_shapes[s][0], k_shapes[s][1], k_shapes[s][2],
                                           pad, alphas[ai], betas[bi], seed += 3);
                            float *C = case_run_(&g);
                            case_check_(&g, C, p == CLASP_BF16, clasp_precision_name(p));
                            free(C);
                            case_free_(&g);
                        }
    clasp_compute_set_precision(CLASP_FP32);
}

/* ---- products ----------------------------------------------------------------------------- */

Test(compute, gemm_fp32_matches_double_reference) {
    gemm_sweep_(CLASP_FP32);
}

Test(compute, gemm_bf16_is_fp32_product_of_rounded_inputs) {
    if (clasp_compute_check(CLASP_BF16, NULL) != CLASP_OK) cr_skip_test("%s", clasp_last_error());
    gemm_sweep_(CLASP_BF16);
}

/* bf16 really rounds: on a product of K = 96 values in [-1, 1), bf16 is tens of fp32
 * bounds away from the exact product of the unrounded inputs, while fp32 is within one. */
Test(compute, bf16_differs_from_fp32) {
    if (clasp_compute_check(CLASP_BF16, NULL) != CLASP_OK) cr_skip_test("%s", clasp_last_error());
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            gemm_case g = case_make_(ta, tb, 64, 48, 96, 1, 1.0f, 0.0f, 7 + ta * 2 + tb);
            float *C32 = case_run_(&g);
            double w32 = case_check_(&g, C32, 0, "fp32");
            clasp_compute_set_precision(CLASP_BF16);
            float *C16 = case_run_(&g);
            clasp_compute_set_precision(CLASP_FP32);
            double w16 = case_check_(&g, C16, 1, "bf16");
            cr_expect(w32 <= 1.0, "fp32: %.3g bounds from the exact product", w32);
            cr_expect(w16 > 10.0, "bf16 is only %.3g fp32 bounds from the fp32 product", w16);
            cr_expect(fx_max_abs_diff(C16, C32, g.nc) > 1e-3, "bf16 ~ fp32: %.3g",
                      fx_max_abs_diff(C16, C32, g.nc));
            free(C32), free(C16);
            case_free_(&g);
        }
}

Test(compute, k_zero_scales_c) {
    for (int p = 0; p < 2; p++) {
        clasp_compute_set_precision((clasp_precision)p);
        for (int bi = 0; bi < 3; bi++) {
            static const float betas[] = {0.0f, 1.0f, 0.5f};
            gemm_case g = case_make_(0, 1, 5, 4, 0, 2, 1.5f, betas[bi], 40 + bi);
            float *C = case_run_(&g);
            case_check_(&g, C, p, "K = 0");
            if (betas[bi] == 0.0f)
                for (int m = 0; m < 5; m++)
                    for (int n = 0; n < 4; n++) cr_expect_eq(C[m * g.ldc + n], 0.0f);
            free(C);
            case_free_(&g);
        }
    }
    clasp_compute_set_precision(CLASP_FP32);
}

/* The cache keys on the shape and re-points the data: the same product again, a product of
 * other data of the same shape, then of other shapes, then the first again give the same
 * bits as the first time. */
Test(compute, cached_products_repeat_bit_for_bit) {
    for (int p = 0; p < 2; p++) {
        if (p && clasp_compute_check(CLASP_BF16, NULL) != CLASP_OK) break;
        clasp_compute_set_precision((clasp_precision)p);
        gemm_case x = case_make_(0, 1, 37, 29, 53, 2, 1.0f, 0.5f, 500);
        gemm_case y = case_make_(0, 1, 37, 29, 53, 2, 1.0f, 0.5f, 600);  /* same shape */
        gemm_case z = case_make_(1, 0, 29, 37, 11, 0, -1.0f, 0.0f, 700); /* another */
        float *x1 = case_run_(&x), *y1 = case_run_(&y);
        for (int rep = 0; rep < 3; rep++) {
            float *zr = case_run_(&z), *xr = case_run_(&x), *yr = case_run_(&y);
            cr_assert(!memcmp(x1, xr, x.nc * sizeof(float)), "%s rep %d: x changed",
                      clasp_precision_name((clasp_precision)p), rep);
            cr_assert(!memcmp(y1, yr, y.nc * sizeof(float)), "%s rep %d: y changed",
                      clasp_precision_name((clasp_precision)p), rep);
            free(zr), free(xr), free(yr);
        }
        cr_assert(memcmp(x1, y1, x.nc * sizeof(float)), "other data, same bits");
        /* after the cache is released, rebuilt primitives give the same bits */
        clasp_compute_thread_release();
        float *x2 = case_run_(&x);
        cr_assert(!memcmp(x1, x2, x.nc * sizeof(float)), "after release: x changed");
        free(x1), free(y1), free(x2);
        case_free_(&x), case_free_(&y), case_free_(&z);
    }
    clasp_compute_set_precision(CLASP_FP32);
}

/* ---- threads ------------------------------------------------------------------------------ */

typedef struct thread_job {
    const gemm_case *g;
    clasp_precision p;
    clasp_precision seen; /* the thread's precision before it set its own */
    float *C[4];
} thread_job;

static void *thread_run_(void *arg) {
    thread_job *j = arg;
    j->seen = clasp_compute_precision();
    clasp_compute_set_precision(j->p);
    for (int r = 0; r < 4; r++) j->C[r] = case_run_(j->g);
    return NULL;
}

Test(compute, threads_give_the_main_threads_bits) {
    int bf16 = clasp_compute_check(CLASP_BF16, NULL) == CLASP_OK;
    gemm_case g = case_make_(0, 0, 96, 80, 112, 1, 1.0f, 0.0f, 900);
    float *main32 = case_run_(&g), *main16 = NULL;
    if (bf16) {
        clasp_compute_set_precision(CLASP_BF16);
        main16 = case_run_(&g);
    }
    /* the main thread is in bf16 now: new threads start in fp32 */
    thread_job jobs[2] = {{&g, bf16 ? CLASP_BF16 : CLASP_FP32, CLASP_BF16, {0}},
                          {&g, CLASP_FP32, CLASP_BF16, {0}}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, thread_run_, &jobs[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    cr_expect_eq(clasp_compute_precision(), bf16 ? CLASP_BF16 : CLASP_FP32);
    clasp_compute_set_precision(CLASP_FP32);
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(jobs[i].seen, CLASP_FP32, "a new thread starts in fp32");
        const float *want = jobs[i].p == CLASP_BF16 ? main16 : main32;
        for (int r = 0; r < 4; r++) {
            cr_expect(!memcmp(jobs[i].C[r], want, g.nc * sizeof(float)),
                      "thread %d (%s) run %d: other bits than the main thread", i,
                      clasp_precision_name(jobs[i].p), r);
            free(jobs[i].C[r]);
        }
    }
    free(main32), free(main16);
    case_free_(&g);
}

/* compute.h: on oneDNN a product's result never depends on the threads one product may use.
 * (OpenBLAS's multi-threaded sgemm can give other bits for some shapes: measured here for
 * 130x70x300; the engine runs every product single-threaded, so training never depends on it.) */
Test(compute, product_threads_do_not_change_bits) {
    if (strcmp(CLASP_BACKEND_NAME, "onednn"))
        cr_skip_test("OpenBLAS's threaded sgemm may split the sum: clasp uses it single-threaded");
    for (int p = 0; p < 2; p++) {
        if (p && clasp_compute_check(CLASP_BF16, NULL) != CLASP_OK) break;
        clasp_compute_set_precision((clasp_precision)p);
        for (int t = 0; t < 4; t++) {
            gemm_case g = case_make_(t >> 1, t & 1, 130, 70, 300, 1, 1.0f, 0.0f, 1000 + t);
            clasp_compute_set_threads(1);
            float *c1 = case_run_(&g);
            clasp_compute_set_threads(2);
            float *c2 = case_run_(&g);
            clasp_compute_set_threads(0);
            float *c0 = case_run_(&g);
            clasp_compute_set_threads(1);
            cr_expect(!memcmp(c1, c2, g.nc * sizeof(float)), "%s ta=%d tb=%d: 1 vs 2 threads",
                      clasp_precision_name((clasp_precision)p), t >> 1, t & 1);
            cr_expect(!memcmp(c1, c0, g.nc * sizeof(float)), "%s ta=%d tb=%d: 1 vs all threads",
                      clasp_precision_name((clasp_precision)p), t >> 1, t & 1);
            free(c1), free(c2), free(c0);
            case_free_(&g);
        }
    }
    clasp_compute_set_precision(CLASP_FP32);
}

/* ---- bf16 helpers ------------------------------------------------------------------------- */

static uint32_t bits_(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float from_bits_(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Round to nearest even, written from the definition: the two bf16 neighbours of x (the upper
 * one 2^128 past the largest bf16, i.e. infinity), the nearer one, the even one on a tie; fp32
 * denormals are signed zero (compute.h). Not NaN. */
static uint16_t rne_ref_(float x) {
    uint32_t u = bits_(x), lo = u & 0xffff0000u;
    if (fpclassify(x) == FP_SUBNORMAL) return (uint16_t)((u >> 16) & 0x8000u);
    if ((u & 0x7fffffffu) == 0x7f800000u) return (uint16_t)(u >> 16);
    uint32_t hi = lo + 0x10000u; /* next in magnitude (0x7f80 with the sign: infinity) */
    double ax = fabs((double)x), alo = fabs((double)from_bits_(lo));
    double ahi = (hi & 0x7fffffffu) == 0x7f800000u ? ldexp(1.0, 128) : fabs((double)from_bits_(hi));
    double dlo = ax - alo, dhi = ahi - ax;
    if (dlo < dhi) return (uint16_t)(lo >> 16);
    if (dhi < dlo) return (uint16_t)(hi >> 16);
    return (uint16_t)(((lo >> 16) & 1u) ? hi >> 16 : lo >> 16);
}

/* The three helpers agree with each other and with rne_ref_ on x; NaN stays NaN (any payload,
 * either sign). */
static void check_round_(uint32_t u) {
    float x = from_bits_(u), r = x;
    uint16_t h = clasp_f32_to_bf16(x), hn;
    clasp_f32_to_bf16_n(&hn, &x, 1);
    clasp_bf16_round_n(&r, 1);
    cr_assert_eq(h, hn, "0x%08x: clasp_f32_to_bf16 0x%04x, _n 0x%04x", u, h, hn);
    if (isnan(x)) {
        cr_assert(isnan(clasp_bf16_to_f32(h)), "NaN 0x%08x became 0x%04x", u, h);
        cr_assert(isnan(r), "NaN 0x%08x rounded to 0x%08x", u, bits_(r));
        cr_assert_eq(h >> 15, u >> 31, "NaN 0x%08x lost its sign", u);
        return;
    }
    uint16_t want = rne_ref_(x);
    cr_assert_eq(h, want, "0x%08x (%.9g) -> 0x%04x, want 0x%04x", u, (double)x, h, want);
    cr_assert_eq(bits_(r), (uint32_t)want << 16, "round_n 0x%08x -> 0x%08x, want 0x%04x0000", u,
                 bits_(r), want);
    cr_assert_eq(bits_(clasp_bf16_to_f32(h)), (uint32_t)h << 16);
}

Test(compute, bf16_rounding_cases) {
    static const struct {
        uint32_t in;
        uint16_t out;
    } cases[] = {
        /* clang-format off */
        {0x3f800000u, 0x3f80}, /* 1 */
        {0x3f808000u, 0x3f80}, /* 1 + 2^-8: tie, to even (down) */
        {0x3f818000u, 0x3f82}, /* 1 + 3 2^-8: tie, to even (up) */
        {0x3f808001u, 0x3f81}, /* just above the tie */
        {0x3f807fffu, 0x3f80}, /* just below */
        {0xbf808000u, 0xbf80}, /* negative ties */
        {0xbf818000u, 0xbf82},
        {0x7f800000u, 0x7f80}, /* +inf */
        {0xff800000u, 0xff80}, /* -inf */
        {0x00000000u, 0x0000}, /* +0 */
        {0x80000000u, 0x8000}, /* -0 */
        /* fp32 denormals become signed zero (as AVX512-BF16's VCVTNEPS2BF16) */
        {0x00000001u, 0x0000},
        {0x00008000u, 0x0000},
        {0x00018000u, 0x0000},
        {0x00010000u, 0x0000}, /* even one that is a bf16 denormal */
        {0x007fffffu, 0x0000}, /* the largest: not rounded up to the smallest normal */
        {0x80018000u, 0x8000},
        {0x80000001u, 0x8000},
        {0x00800000u, 0x0080}, /* the smallest normal stays */
        {0x00808000u, 0x0080}, /* tie above it, to even */
        {0x00818000u, 0x0082},
        {0x7f7f7fffu, 0x7f7f}, /* below the tie above the largest bf16 */
        {0x7f7f8000u, 0x7f80}, /* tie, 0x7f7f is odd: to infinity */
        {0x7f7fffffu, 0x7f80}, /* FLT_MAX: infinity */
        {0xff7fffffu, 0xff80}, /* -FLT_MAX */
        /* clang-format on */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(clasp_f32_to_bf16(from_bits_(cases[i].in)), cases[i].out,
                     "0x%08x -> 0x%04x, want 0x%04x", cases[i].in,
                     clasp_f32_to_bf16(from_bits_(cases[i].in)), cases[i].out);
        check_round_(cases[i].in);
    }
    /* NaNs whose rounding would carry into the exponent or the sign, quiet and signalling */
    static const uint32_t nans[] = {0x7fc00000u, 0x7f800001u, 0x7f80ffffu, 0x7fffffffu,
                                    0xffffffffu, 0xff800001u, 0x7fff8000u, 0xffc00000u};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) check_round_(nans[i]);
}

/* Every exponent, random mantissas, and the tie and near-tie patterns, through the scalar
 * and the vector helpers (n not a multiple of any vector width). */
Test(compute, bf16_rounding_sweep) {
    enum { N = 1 << 16 };
    uint32_t *u = malloc(N * sizeof *u);
    clasp_rng r;
    clasp_rng_init(&r, 3, CLASP_RNG_TEST, 1, 2);
    for (size_t i = 0; i < N; i++) {
        uint32_t v = clasp_rng_u32(&r);
        if (i % 4 == 1) v = (v & 0xffff0000u) | 0x8000u;                       /* tie */
        if (i % 4 == 2) v = (v & 0xffff0000u) | 0x7fffu;                       /* below */
        if (i % 8 == 3) v = (v & 0x807fffffu) | (uint32_t)(i / 8 % 256) << 23; /* exponents */
        u[i] = v;
    }
    for (size_t i = 0; i < N; i++) check_round_(u[i]);
    size_t n = N - 5;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    uint16_t *h = malloc(n * sizeof *h);
    memcpy(x, u, n * sizeof *x);
    memcpy(y, u, n * sizeof *y);
    clasp_f32_to_bf16_n(h, x, n);
    clasp_bf16_round_n(y, n);
    for (size_t i = 0; i < n; i++) {
        uint16_t want = clasp_f32_to_bf16(x[i]);
        cr_assert_eq(h[i], want, "_n[%zu] 0x%08x -> 0x%04x, scalar 0x%04x", i, u[i], h[i], want);
        if (isnan(x[i]))
            cr_assert(isnan(y[i]));
        else
            cr_assert_eq(bits_(y[i]), (uint32_t)want << 16, "round_n[%zu] 0x%08x", i, u[i]);
    }
    free(u), free(x), free(y), free(h);
}

/* ---- precision names and the backend ------------------------------------------------------ */

Test(compute, precision_parse) {
    clasp_precision p = CLASP_BF16;
    cr_assert_eq(clasp_precision_parse("fp32", &p), CLASP_OK);
    cr_assert_eq(p, CLASP_FP32);
    cr_assert_eq(clasp_precision_parse("bf16", &p), CLASP_OK);
    cr_assert_eq(p, CLASP_BF16);
    cr_assert_str_eq(clasp_precision_name(CLASP_FP32), "fp32");
    cr_assert_str_eq(clasp_precision_name(CLASP_BF16), "bf16");
    static const char *bad[] = {"fp16", "BF16", "", "bf16 ", "float32", "bfloat16"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = CLASP_BF16;
        cr_assert_eq(clasp_precision_parse(bad[i], &p), CLASP_ERR_CONFIG, "'%s'", bad[i]);
        cr_assert_eq(p, CLASP_BF16, "'%s' changed the output", bad[i]);
        char want[64];
        snprintf(want, sizeof want, "'%s'", bad[i]);
        cr_assert(strstr(clasp_last_error(), want), "'%s': %s", bad[i], clasp_last_error());
    }
    cr_assert_eq(clasp_precision_parse(NULL, &p), CLASP_ERR_CONFIG);
}

Test(compute, backend_and_bf16_availability) {
    cr_assert_str_eq(clasp_compute_backend(), CLASP_BACKEND_NAME);
    int native = -1;
    cr_assert_eq(clasp_compute_check(CLASP_FP32, &native), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(native, 1);
    native = -1;
    clasp_status st = clasp_compute_check(CLASP_BF16, &native);
    if (!strcmp(CLASP_BACKEND_NAME, "openblas")) {
        cr_assert_eq(st, CLASP_ERR_UNSUPPORTED);
        cr_assert(strstr(clasp_last_error(), "openblas"), "%s", clasp_last_error());
        cr_assert(strstr(clasp_last_error(), "bf16"), "%s", clasp_last_error());
    } else {
        cr_assert_eq(st, CLASP_OK, "%s", clasp_last_error());
        cr_assert(native == 0 || native == 1);
        cr_log_info("bf16 on %s: native %d", CLASP_BACKEND_NAME, native);
    }
}

/* ---- instruction-set limits: a child process ---------------------------------------------- */

/* The child's products: every transpose pair of one odd shape with padded rows, fp32 then
 * bf16, concatenated. */
#define ISA_M 37
#define ISA_N 29
#define ISA_K 53
static gemm_case isa_case_(int ta, int tb) {
    return case_make_(ta, tb, ISA_M, ISA_N, ISA_K, 3, 0.5f, 1.0f, 4242 + ta * 2 + tb);
}

/* out: 8 products of M x ldc floats; returns the bf16 "native" flag */
static int isa_products_(float *out, size_t per) {
    int native = -1;
    clasp_compute_check(CLASP_BF16, &native);
    for (int p = 0; p < 2; p++) {
        clasp_compute_set_precision((clasp_precision)p);
        for (int t = 0; t < 4; t++) {
            gemm_case g = isa_case_(t >> 1, t & 1);
            float *C = case_run_(&g);
            memcpy(out + (size_t)(p * 4 + t) * per, C, per * sizeof(float));
            free(C);
            case_free_(&g);
        }
    }
    clasp_compute_set_precision(CLASP_FP32);
    return native;
}

#define ISA_PER ((size_t)ISA_M * (ISA_N + 3))

/* The hidden mode: CLASP_COMPUTE_CHILD=FILE runs the products, writes the native flag and
 * them to FILE, and exits before Criterion starts. */
__attribute__((constructor)) static void isa_child_(void) {
    const char *path = getenv("CLASP_COMPUTE_CHILD");
    if (!path) return;
    static float out[8 * ISA_PER];
    int native = isa_products_(out, ISA_PER);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(&native, sizeof native, 1, f) == 1 &&
             fwrite(out, sizeof(float), 8 * ISA_PER, f) == 8 * ISA_PER;
    if (f && fclose(f)) ok = 0;
    _exit(ok ? 0 : 1);
}

/* Runs this binary with ONEDNN_MAX_CPU_ISA=isa in the hidden mode; *native and the products */
static void isa_child_run_(const char *isa, int *native, float *out) {
    char dir[FX_PATH], file[FX_PATH];
    fx_scratch("compute_isa", dir, file, isa, NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        setenv("ONEDNN_MAX_CPU_ISA", isa, 1);
        setenv("CLASP_COMPUTE_CHILD", file, 1);
        execl("/proc/self/exe", "test_compute", (char *)NULL);
        _exit(127);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child with ONEDNN_MAX_CPU_ISA=%s failed",
              isa);
    size_t n = 0;
    uint8_t *b = fx_read(file, &n);
    cr_assert(b && n == sizeof(int) + 8 * ISA_PER * sizeof(float), "%s: %zu bytes", file, n);
    memcpy(native, b, sizeof(int));
    memcpy(out, b + sizeof(int), 8 * ISA_PER * sizeof(float));
    free(b);
}

static void isa_check_(const char *isa) {
    if (strcmp(CLASP_BACKEND_NAME, "onednn")) cr_skip_test("ONEDNN_MAX_CPU_ISA is for onednn");
    static float here[8 * ISA_PER], there[8 * ISA_PER];
    int native_here = isa_products_(here, ISA_PER), native_there = -1;
    isa_child_run_(isa, &native_there, there);
    cr_log_info("bf16 native: %d here, %d with ONEDNN_MAX_CPU_ISA=%s", native_here, native_there,
                isa);
    for (int p = 0; p < 2; p++)
        for (int t = 0; t < 4; t++) {
            gemm_case g = isa_case_(t >> 1, t & 1);
            const float *a = here + (size_t)(p * 4 + t) * ISA_PER;
            const float *b = there + (size_t)(p * 4 + t) * ISA_PER;
            char what[96];
            snprintf(what, sizeof what, "%s, ONEDNN_MAX_CPU_ISA=%s",
                     clasp_precision_name((clasp_precision)p), isa);
            /* both are the product of the (rounded) inputs within fp32 accumulation error */
            case_check_(&g, a, p, "native");
            case_check_(&g, b, p, what);
            /* and so within twice that of each other */
            cr_expect(fx_max_abs_diff(a, b, ISA_PER) < 1e-4, "%s: %.3g apart", what,
                      fx_max_abs_diff(a, b, ISA_PER));
            case_free_(&g);
        }
}

Test(compute, bf16_under_onednn_max_cpu_isa_avx2) {
    isa_check_("AVX2");
}

Test(compute, bf16_under_onednn_max_cpu_isa_avx512_core) {
    isa_check_("AVX512_CORE");
}

/* A product whose alpha changes every call (the loss's logit scale changes every step) reuses
 * one primitive, and gives alpha times the alpha = 1 result: the cache does not grow per step. */
Test(compute, changing_alpha_reuses_one_primitive) {
    enum { M = 24, N = 20, K = 16 };
    float A[M * K], B[K * N], C1[M * N], C[M * N];
    for (int i = 0; i < M * K; i++) A[i] = (float)((i * 7) % 13) * 0.125f - 0.75f;
    for (int i = 0; i < K * N; i++) B[i] = (float)((i * 5) % 11) * 0.25f - 1.25f;
    clasp_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C1, N);
    clasp_gemm(0, 0, M, N, K, 0.5f, A, K, B, N, 0.0f, C, N);
    size_t held = clasp_compute_cached_primitives();
    for (int step = 0; step < 50; step++) {
        float alpha = 1.0f + 0.25f * (float)(step + 1); /* exact multiples: exact products */
        clasp_gemm(0, 0, M, N, K, alpha, A, K, B, N, 0.0f, C, N);
        for (int i = 0; i < M * N; i++)
            cr_assert_eq(C[i], alpha * C1[i], "step %d, C[%d]: %g vs %g", step, i, (double)C[i],
                         (double)(alpha * C1[i]));
    }
    cr_expect_eq(clasp_compute_cached_primitives(), held, "50 alphas built %zu new primitives",
                 clasp_compute_cached_primitives() - held);
}

/* clasp_gemm_batched: (batch x batch2) strided products equal one clasp_gemm each (to 1e-5: the
 * batched primitive may sum in another order), in fp32 and in bf16, also when the caller hands
 * bf16 copies of A and B (Ah, Bh) or only of A */
Test(compute, batched_equals_one_product_each) {
    enum { NB = 3, NH = 2, M = 9, N = 7, K = 11, LDA = 2 * K + 3, LDB = 2 * N + 1, LDC = 2 * N };
    /* A rows hold the NH heads side by side (as attention's qkv), likewise B and C */
    float *A = uniform_((size_t)NB * M * LDA, 71), *B = uniform_((size_t)NB * K * LDB, 72);
    size_t nc = (size_t)NB * M * LDC;
    float *C = calloc(nc, sizeof(float)), *R = calloc(nc, sizeof(float));
    uint16_t *Ah = malloc((size_t)NB * M * LDA * sizeof(uint16_t));
    uint16_t *Bh = malloc((size_t)NB * K * LDB * sizeof(uint16_t));
    cr_assert(C && R && Ah && Bh);
    clasp_f32_to_bf16_n(Ah, A, (size_t)NB * M * LDA);
    clasp_f32_to_bf16_n(Bh, B, (size_t)NB * K * LDB);
    for (int p = 0; p < 2; p++) {
        if (p && clasp_compute_check(CLASP_BF16, NULL) != CLASP_OK) break;
        clasp_compute_set_precision((clasp_precision)p);
        for (int i = 0; i < NB; i++)
            for (int h = 0; h < NH; h++)
                clasp_gemm(0, 0, M, N, K, 0.5f, A + (size_t)i * M * LDA + h * K, LDA,
                           B + (size_t)i * K * LDB + h * N, LDB, 0.0f,
                           R + (size_t)i * M * LDC + h * N, LDC);
        for (int given = 0; given < (p ? 3 : 1); given++) {
            clasp_gemm_batch g = {.batch = NB,
                                  .batch2 = NH,
                                  .A = A,
                                  .lda = LDA,
                                  .sa = (long long)M * LDA,
                                  .sa2 = K,
                                  .B = B,
                                  .ldb = LDB,
                                  .sb = (long long)K * LDB,
                                  .sb2 = N,
                                  .C = C,
                                  .ldc = LDC,
                                  .sc = (long long)M * LDC,
                                  .sc2 = N};
            if (given >= 1) g.Ah = Ah;
            if (given == 2) g.Bh = Bh;
            memset(C, 0, nc * sizeof(float));
            clasp_gemm_batched(0, 0, M, N, K, 0.5f, 0.0f, &g);
            for (size_t k = 0; k < nc; k++)
                cr_assert(fabsf(C[k] - R[k]) <= 1e-5f * (1.0f + fabsf(R[k])),
                          "%s given %d: C[%zu] %.9g vs one product %.9g",
                          clasp_precision_name((clasp_precision)p), given, k, (double)C[k],
                          (double)R[k]);
        }
    }
    clasp_compute_set_precision(CLASP_FP32);
    free(A), free(B), free(C), free(R), free(Ah), free(Bh);
}
