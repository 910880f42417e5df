/* bench/search.c: query latency of `clasp search` (exact top-k cosine, eval/retrieval.h
 * clasp_search_topk with one query: one cblas_sgemv over the index + a top-k pass) over 10k,
 * 100k and 1M stored random unit vectors of dimension 128 and 512, against the time of the bare
 * cblas_sgemv it needs, measured in the same run on the same data. Embedding the query itself is
 * not included (see bench/eval for texts/s).
 *
 *     ./build/bench/bench_search [queries=50] [k=10] [blas_threads=1]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/compute.h"
#include "core/rng.h"
#include "eval/retrieval.h"

static double now_(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d_(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct_(double *v, int n, double p) {
    qsort(v, (size_t)n, sizeof *v, cmp_d_);
    int i = (int)ceil(p * n) - 1;
    return v[i < 0 ? 0 : i];
}

static void unit_rows_(float *x, size_t n, int D, uint64_t seed) {
    clasp_rng r;
    clasp_rng_init(&r, seed, 0, 0, 0);
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        float *row = x + i * (size_t)D;
        for (int d = 0; d < D; d++) {
            row[d] = clasp_rng_normal(&r);
            s += (double)row[d] * (double)row[d];
        }
        float inv = (float)(1.0 / sqrt(s));
        for (int d = 0; d < D; d++) row[d] *= inv;
    }
}

int main(int argc, char **argv) {
    int Q = argc > 1 ? atoi(argv[1]) : 50;
    int k = argc > 2 ? atoi(argv[2]) : 10;
    int bt = argc > 3 ? atoi(argv[3]) : 1;
    if (Q < 1 || k < 1 || bt < 1) {
        fprintf(stderr, "usage: %s [queries] [k] [blas_threads]\n", argv[0]);
        return 2;
    }
    clasp_compute_set_threads(bt);
    printf("bench_search: %d queries, k=%d, OpenBLAS threads %d, latency per query in ms\n", Q, k,
           bt);
    printf("%9s %4s | %9s %9s | %9s %9s | %6s | %8s\n", "N", "D", "search50", "search95", "sgemv50",
           "sgemv95", "ratio", "GB/s");
    const long Ns[3] = {10000, 100000, 1000000};
    const int Ds[2] = {128, 512};
    for (int di = 0; di < 2; di++) {
        for (int ni = 0; ni < 3; ni++) {
            long N = Ns[ni];
            int D = Ds[di];
            float *X = malloc((size_t)N * D * sizeof(float));
            float *q = malloc((size_t)Q * D * sizeof(float));
            float *y = malloc((size_t)N * sizeof(float));
            int64_t *idx = malloc((size_t)k * sizeof(int64_t));
            float *sc = malloc((size_t)k * sizeof(float));
            double *ts = malloc((size_t)Q * sizeof(double)),
                   *tg = malloc((size_t)Q * sizeof(double));
            if (!X || !q || !y || !idx || !sc || !ts || !tg) {
                fprintf(stderr, "out of memory at N=%ld D=%d\n", N, D);
                return 1;
            }
            unit_rows_(X, (size_t)N, D, 1);
            unit_rows_(q, (size_t)Q, D, 2);
            /* warm-up: touch the index once each way */
            clasp_gemm(0, 0, (int)N, 1, D, 1.0f, X, D, q, 1, 0.0f, y, 1);
            clasp_search_topk(X, N, D, q, 1, k, idx, sc);
            double check = 0;
            for (int i = 0; i < Q; i++) {
                const float *qi = q + (size_t)i * D;
                double t0 = now_();
                clasp_gemm(0, 0, (int)N, 1, D, 1.0f, X, D, qi, 1, 0.0f, y, 1);
                double t1 = now_();
                if (clasp_search_topk(X, N, D, qi, 1, k, idx, sc) != CLASP_OK) return 1;
                double t2 = now_();
                tg[i] = 1e3 * (t1 - t0);
                ts[i] = 1e3 * (t2 - t1);
                check += (double)sc[0] + (double)y[idx[0]];
            }
            double s50 = pct_(ts, Q, 0.5), s95 = pct_(ts, Q, 0.95);
            double g50 = pct_(tg, Q, 0.5), g95 = pct_(tg, Q, 0.95);
            double gbs = (double)N * D * 4 / (g50 * 1e-3) / 1e9;
            printf("%9ld %4d | %9.3f %9.3f | %9.3f %9.3f | %6.2f | %8.1f%s\n", N, D, s50, s95, g50,
                   g95, s50 / g50, gbs, check != check ? " (NaN!)" : "");
            free(X), free(q), free(y), free(idx), free(sc), free(ts), free(tg);
        }
    }
    printf("search = clasp_search_topk (sgemv over the index in blocks of up to 2^20 rows + top-k "
           "insertion);\nsgemv = one cblas_sgemv over the whole index; ratio = search p50 / sgemv "
           "p50; GB/s = index bytes / sgemv p50\n");
    return 0;
}
