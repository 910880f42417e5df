/* bench/matmul_peak.c: the matrix-product peak of this build's compute backend, measured
 * through core/compute.h's clasp_gemm, in fp32 and (when clasp_compute_check allows it) bf16:
 *
 *   (a) large square NN products (1024, 2048): best of several timings;
 *   (b) the GEMM shapes of fmnist-small at batch 256 split into 2 replicas of 128 rows, each
 *       forward product with its two backward products (median of the timings), and their
 *       model-weighted aggregate: the FLOPs of one replica step's products (each shape times
 *       the number of calls the step makes) over the time those calls take.
 *
 * "1T" is one calling thread (clasp_compute_set_threads(1)); "2T" is two pthreads each running
 * its own single-threaded products on its own buffers at the same time, as clasp's replica
 * engine uses the cores; 2T figures are aggregate GFLOP/s (both threads' FLOPs over the wall
 * time from the common start to the last finish).
 *
 *     ./bench_matmul_peak [--quick] [--cpu-time] [--precision fp32|bf16]
 *
 * Besides the table it prints one line per precision and kind that a script can grep:
 *
 *     peak fp32 square 1T 215.3 2T 398.1 GFLOP/s
 *     peak fp32 model 1T 120.4 2T 230.9 GFLOP/s
 *
 * FLOPs are 2 per multiply-add. Times come from clock_gettime(CLOCK_MONOTONIC), or with
 * --cpu-time from each thread's CPU clock (see g_clock).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench.h"
#include "core/compute.h"

/* --cpu-time: each thread's own CPU clock instead of wall time; a 2T figure is then the sum of
 * the threads' rates, as if no other process took a core (a shared machine time-slices this
 * one), but two threads that never ran at the same time would not show what they cost each
 * other (caches, memory bandwidth, clock speed) */
static clockid_t g_clock = CLOCK_MONOTONIC;

static double now_sec(void) {
    return bench_now(g_clock);
}

static float *buf(size_t n, unsigned seed) {
    return bench_buf(n, seed, 1.0f);
}

/* One product C (M, N) = op(A) op(B), row-major, as clasp_gemm; `calls` is how many times one
 * replica step of fmnist-small makes it (0: listed for completeness, not run by the model). */
typedef struct shape {
    const char *layer, *pass;
    int ta, tb, M, N, K;
    long calls;
} shape;

static double shape_flops(const shape *s) {
    return 2.0 * (double)s->M * (double)s->N * (double)s->K;
}

/* ---- one timing: `reps` calls of one shape on `nthreads` threads at once ------------------ */

typedef struct worker {
    const shape *s;
    clasp_precision prec;
    long reps;
    int ntimings;
    float *A, *B, *C;
    double *t0, *t1; /* (ntimings) start and end of each timing */
    pthread_barrier_t *bar;
} worker;

static void run_reps(const worker *w) {
    const shape *s = w->s;
    int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    for (long r = 0; r < w->reps; r++)
        clasp_gemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, w->A, lda, w->B, ldb, 0.0f, w->C, s->N);
}

static void *worker_main(void *p) {
    worker *w = p;
    clasp_compute_set_precision(w->prec);
    run_reps(w); /* warm-up: creates this thread's primitive for the shape */
    for (int t = 0; t < w->ntimings; t++) {
        if (w->bar) pthread_barrier_wait(w->bar);
        w->t0[t] = now_sec();
        run_reps(w);
        w->t1[t] = now_sec();
    }
    clasp_compute_thread_release();
    return NULL;
}

enum { MAX_THREADS = 2, MAX_TIMINGS = 32 };

/* Times `ntimings` rounds of `reps` calls on each of `nthreads` threads; returns the median
 * (best = 0) or the minimum (best = 1) over rounds of the aggregate GFLOP/s. */
static double time_shape(const shape *s, clasp_precision prec, int nthreads, long reps,
                         int ntimings, int best) {
    worker w[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    pthread_barrier_t bar;
    double t0[MAX_THREADS][MAX_TIMINGS], t1[MAX_THREADS][MAX_TIMINGS];
    if (ntimings > MAX_TIMINGS) ntimings = MAX_TIMINGS;
    if (nthreads > 1) pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
    size_t na = (size_t)s->M * s->K, nb = (size_t)s->K * s->N, nc = (size_t)s->M * s->N;
    for (int i = 0; i < nthreads; i++) {
        w[i] = (worker){.s = s,
                        .prec = prec,
                        .reps = reps,
                        .ntimings = ntimings,
                        .A = buf(na, 11u + 3u * (unsigned)i),
                        .B = buf(nb, 12u + 3u * (unsigned)i),
                        .C = buf(nc, 13u + 3u * (unsigned)i),
                        .t0 = t0[i],
                        .t1 = t1[i],
                        .bar = nthreads > 1 ? &bar : NULL};
        if (nthreads > 1) {
            if (pthread_create(&th[i], NULL, worker_main, &w[i]) != 0) {
                fprintf(stderr, "bench_matmul_peak: pthread_create failed\n");
                exit(1);
            }
        }
    }
    if (nthreads == 1) { /* the calling thread itself, as the 1-thread engine does */
        clasp_precision was = clasp_compute_precision();
        clasp_compute_set_precision(prec);
        run_reps(&w[0]);
        for (int t = 0; t < ntimings; t++) {
            t0[0][t] = now_sec();
            run_reps(&w[0]);
            t1[0][t] = now_sec();
        }
        clasp_compute_set_precision(was);
    } else {
        for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
        pthread_barrier_destroy(&bar);
    }
    double g[MAX_TIMINGS];
    for (int t = 0; t < ntimings; t++) {
        double a = t0[0][t], b = t1[0][t], sum = 0;
        for (int i = 0; i < nthreads; i++) {
            a = t0[i][t] < a ? t0[i][t] : a;
            b = t1[i][t] > b ? t1[i][t] : b;
            sum += shape_flops(s) * (double)reps / (t1[i][t] - t0[i][t]) * 1e-9;
        }
        /* wall: both threads' FLOPs from the first start to the last finish */
        g[t] = g_clock == CLOCK_MONOTONIC
                   ? shape_flops(s) * (double)reps * nthreads / (b - a) * 1e-9
                   : sum;
    }
    for (int i = 0; i < nthreads; i++) free(w[i].A), free(w[i].B), free(w[i].C);
    qsort(g, (size_t)ntimings, sizeof(double), bench_cmp_double);
    return best ? g[ntimings - 1] : g[ntimings / 2];
}

/* Calls of one shape that make a timing last at least min_sec on one thread. */
static long calibrate(const shape *s, clasp_precision prec, double min_sec) {
    clasp_precision was = clasp_compute_precision();
    clasp_compute_set_precision(prec);
    float *A = buf((size_t)s->M * s->K, 1), *B = buf((size_t)s->K * s->N, 2);
    float *C = buf((size_t)s->M * s->N, 3);
    worker w = {.s = s, .reps = 1, .A = A, .B = B, .C = C};
    run_reps(&w); /* primitive creation stays out of the calibration */
    for (;;) {
        double t0 = now_sec();
        run_reps(&w);
        double dt = now_sec() - t0;
        if (dt >= min_sec || w.reps >= (1L << 30)) break;
        /* scale by the estimate once a call is long enough to trust it, else double */
        long next = dt > min_sec / 8 ? (long)((double)w.reps * min_sec / dt * 1.1) + 1 : 0;
        w.reps = next > w.reps * 2 ? next : w.reps * 2;
    }
    free(A), free(B), free(C);
    clasp_compute_set_precision(was);
    return w.reps;
}

/* ---- fmnist-small's GEMM shapes, one replica of 128 rows --------------------------------- */

/* Linear y (R, O) = x (R, I) W^T: forward NT (R x O x I), dinp NN (R x I x O), dW TN
 * (O x I x R). Conv as im2col per image: out (OC, P) = W (OC, CK) col (CK, P): forward NN,
 * dW = dout col^T NT (OC x CK x P), dcol = W^T dout TN (CK x P x OC). Attention per (image,
 * head): S = q k^T, O = P v, and the four backward products of clasp_attention_backward. */
#define LINEAR(name, R, I, O, n)                                                                   \
    {name, "fwd", 0, 1, R, O, I, n}, {name, "dinp", 0, 0, R, I, O, n}, {                           \
        name, "dW", 1, 0, O, I, R, n                                                               \
    }

enum { REPLICA = 128, TXT_T = 32, TXT_C = 128, TXT_H = 4, TXT_F = 512, TXT_L = 2 };

static const shape g_model[] = {
    {"conv1 1->32", "fwd", 0, 0, 32, 784, 9, REPLICA},
    {"conv1 1->32", "dW", 0, 1, 32, 9, 784, REPLICA},
    {"conv1 1->32", "dinp", 1, 0, 9, 784, 32, 0}, /* the first layer needs no dinp */
    {"conv2 32->64", "fwd", 0, 0, 64, 196, 288, REPLICA},
    {"conv2 32->64", "dW", 0, 1, 64, 288, 196, REPLICA},
    {"conv2 32->64", "dinp", 1, 0, 288, 196, 64, REPLICA},
    LINEAR("img fc1", REPLICA, 3136, 256, 1),
    LINEAR("img fc2", REPLICA, 256, 128, 1),
    LINEAR("txt qkv", REPLICA *TXT_T, TXT_C, 3 * TXT_C, TXT_L),
    LINEAR("txt proj", REPLICA *TXT_T, TXT_C, TXT_C, TXT_L),
    LINEAR("txt fc1", REPLICA *TXT_T, TXT_C, TXT_F, TXT_L),
    LINEAR("txt fc2", REPLICA *TXT_T, TXT_F, TXT_C, TXT_L),
    {"txt att qk^T", "fwd", 0, 1, TXT_T, TXT_T, TXT_C / TXT_H, REPLICA *TXT_H *TXT_L},
    {"txt att pv", "fwd", 0, 0, TXT_T, TXT_C / TXT_H, TXT_T, REPLICA *TXT_H *TXT_L},
    {"txt att dP", "bwd", 0, 1, TXT_T, TXT_T, TXT_C / TXT_H, REPLICA *TXT_H *TXT_L},
    {"txt att dV,dK", "bwd", 1, 0, TXT_T, TXT_C / TXT_H, TXT_T, 2 * REPLICA *TXT_H *TXT_L},
    {"txt att dQ", "bwd", 0, 0, TXT_T, TXT_C / TXT_H, TXT_T, REPLICA *TXT_H *TXT_L},
    LINEAR("txt out proj", REPLICA, TXT_C, 128, 1),
};
#define N_MODEL (sizeof g_model / sizeof g_model[0])

typedef struct peaks {
    double square[2], model[2]; /* [1T, 2T] */
} peaks;

static void run_precision(clasp_precision prec, int quick, peaks *pk) {
    const char *pn = clasp_precision_name(prec);
    const int ntim_sq = quick ? 3 : 5, ntim = quick ? 3 : 7;
    const double min_sq = quick ? 0.15 : 0.4, min_sh = quick ? 0.02 : 0.06;
    printf("\n# %s: (a) large square NN products, best of %d timings of >= %.2f s\n", pn, ntim_sq,
           min_sq);
    printf("%-14s %-6s %16s %10s %10s %7s\n", "product", "pass", "M x N x K", "1T GF/s", "2T GF/s",
           "2T/1T");
    pk->square[0] = pk->square[1] = 0;
    const int sq[] = {1024, 2048};
    for (int i = 0; i < 2; i++) {
        int n = sq[i];
        shape s = {"square", "NN", 0, 0, n, n, n, 0};
        long reps = calibrate(&s, prec, min_sq);
        double g1 = time_shape(&s, prec, 1, reps, ntim_sq, 1);
        double g2 = time_shape(&s, prec, 2, reps, ntim_sq, 1);
        char dims[48];
        snprintf(dims, sizeof dims, "%dx%dx%d", n, n, n);
        printf("%-14s %-6s %16s %10.1f %10.1f %7.2f\n", "square", "NN", dims, g1, g2, g2 / g1);
        fflush(stdout);
        pk->square[0] = g1 > pk->square[0] ? g1 : pk->square[0];
        pk->square[1] = g2 > pk->square[1] ? g2 : pk->square[1];
    }
    printf("# %s: (b) fmnist-small GEMM shapes (batch 256 = 2 replicas x 128 rows), median of %d "
           "timings of >= %.3f s; calls = per replica step\n",
           pn, ntim, min_sh);
    printf("%-14s %-6s %16s %10s %10s %7s %7s %9s\n", "layer", "pass", "M x N x K", "1T GF/s",
           "2T GF/s", "2T/1T", "calls", "%sq 1T");
    double flops = 0, t1 = 0, t2 = 0; /* model-weighted: one replica step's products */
    for (size_t i = 0; i < N_MODEL; i++) {
        const shape *s = &g_model[i];
        long reps = calibrate(s, prec, min_sh);
        double g1 = time_shape(s, prec, 1, reps, ntim, 0);
        double g2 = time_shape(s, prec, 2, reps, ntim, 0);
        char dims[48];
        snprintf(dims, sizeof dims, "%dx%dx%d", s->M, s->N, s->K);
        printf("%-14s %-6s %-2s%14s %10.1f %10.1f %7.2f %7ld %8.0f%%\n", s->layer, s->pass,
               s->ta ? (s->tb ? "TT" : "TN") : (s->tb ? "NT" : "NN"), dims, g1, g2, g2 / g1,
               s->calls, 100.0 * g1 / pk->square[0]);
        fflush(stdout);
        double f = shape_flops(s) * (double)s->calls;
        flops += f;
        t1 += f / (g1 * 1e9);
        t2 += f / (g2 * 1e9); /* 2T: twice the FLOPs in twice this time */
    }
    pk->model[0] = flops / t1 * 1e-9;
    pk->model[1] = flops / t2 * 1e-9;
    printf("# %s model-weighted (%.3f GFLOP per replica step): 1T %.1f GFLOP/s (%.0f%% of square), "
           "2T %.1f GFLOP/s (%.0f%% of square)\n",
           pn, flops * 1e-9, pk->model[0], 100.0 * pk->model[0] / pk->square[0], pk->model[1],
           100.0 * pk->model[1] / pk->square[1]);
}

int main(int argc, char **argv) {
    bench_args args;
    if (!bench_parse_args(&args, "bench_matmul_peak", 1, argc, argv)) return 2;
    const int quick = args.quick, only = args.only;
    if (args.cpu_time) g_clock = CLOCK_THREAD_CPUTIME_ID;
    clasp_compute_set_threads(1);
    printf("# bench_matmul_peak: backend %s, clasp_gemm, 1T = one calling thread, 2T = two "
           "threads each running its own single-threaded products; %s time\n",
           clasp_compute_backend(), g_clock == CLOCK_MONOTONIC ? "wall" : "per-thread CPU");
    bench_print_load("before");
    peaks pk[2];
    int have[2] = {0, 0};
    for (int p = CLASP_FP32; p <= CLASP_BF16; p++) {
        if (only >= 0 && only != p) continue;
        int native = 0;
        if (clasp_compute_check((clasp_precision)p, &native) != CLASP_OK) {
            printf("\n# %s: not available: %s\n", clasp_precision_name((clasp_precision)p),
                   clasp_last_error());
            continue;
        }
        if (p == CLASP_BF16)
            printf("\n# bf16: %s\n", native ? "native oneDNN bf16 kernels"
                                            : "EMULATED (inputs rounded to bf16, fp32 kernels)");
        run_precision((clasp_precision)p, quick, &pk[p]);
        have[p] = 1;
    }
    printf("\n");
    bench_print_load("after");
    for (int p = CLASP_FP32; p <= CLASP_BF16; p++) {
        const char *pn = clasp_precision_name((clasp_precision)p);
        if (!have[p]) {
            if (only < 0 || only == p) printf("peak %s unavailable\n", pn);
            continue;
        }
        printf("peak %s square 1T %.1f 2T %.1f GFLOP/s\n", pn, pk[p].square[0], pk[p].square[1]);
        printf("peak %s model 1T %.1f 2T %.1f GFLOP/s\n", pn, pk[p].model[0], pk[p].model[1]);
    }
    return 0;
}
