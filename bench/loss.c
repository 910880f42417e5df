/* bench/loss.c: forward + backward time of symmetric InfoNCE (loss/infonce.h) against the
 * matrix products it cannot avoid, measured in the same run.
 *
 * Which products are unavoidable: the loss needs the N x N logits A B^T (one N x N x D
 * product) and its feature gradients dA = G B and dB = G^T A (two more, G = dloss/dlogits is a
 * dense N x N matrix). Stacking them does not save work ([dA; dB] = [[0 G]; [G^T 0]] [A; B]
 * doubles the flops), so the floor is THREE sgemm calls of 2 N^2 D flops each; "gemm3" is that
 * floor and ratio3 = loss / gemm3 is the figure the target (<= 1.5 at N = 1024, D = 512)
 * applies to. gemm2 (logits + one gradient product) and ratio2 are printed for reference only.
 * Each figure is the median of several repetitions after one warm-up.
 *
 *     OPENBLAS_NUM_THREADS=1 ./bench_loss
 *     OPENBLAS_NUM_THREADS=2 ./bench_loss
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench.h"
#include "core/compute.h"
#include "core/rng.h"
#include "loss/infonce.h"

static double now_s(void) {
    return bench_now(CLOCK_MONOTONIC);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void fill_normalised(float *x, size_t N, size_t D, uint64_t stream) {
    clasp_rng r;
    clasp_rng_init(&r, 1234, 1, stream, 0);
    for (size_t i = 0; i < N; i++) {
        double s = 0.0;
        for (size_t k = 0; k < D; k++) {
            x[i * D + k] = (float)clasp_rng_normal(&r);
            s += (double)x[i * D + k] * (double)x[i * D + k];
        }
        for (size_t k = 0; k < D; k++) x[i * D + k] = (float)((double)x[i * D + k] / sqrt(s));
    }
}

int main(void) {
    const size_t Ns[] = {256, 1024, 4096}, Ds[] = {128, 512};
    const char *th = getenv("OPENBLAS_NUM_THREADS");
    printf("symmetric InfoNCE forward+backward vs its sgemm floor (OPENBLAS_NUM_THREADS=%s)\n",
           th ? th : "unset");
    printf("%6s %5s %4s %11s %11s %7s %11s %7s\n", "N", "D", "reps", "loss_ms", "gemm3_ms",
           "ratio3", "gemm2_ms", "ratio2");
    for (size_t a = 0; a < sizeof Ns / sizeof *Ns; a++)
        for (size_t b = 0; b < sizeof Ds / sizeof *Ds; b++) {
            const size_t N = Ns[a], D = Ds[b];
            const int iN = (int)N, iD = (int)D;
            float *A = malloc(N * D * sizeof *A), *B = malloc(N * D * sizeof *B);
            float *dA = malloc(N * D * sizeof *dA), *dB = malloc(N * D * sizeof *dB);
            float *work = malloc(clasp_infonce_work_floats(N) * sizeof *work);
            if (!A || !B || !dA || !dB || !work) {
                fprintf(stderr, "bench_loss: out of memory at N=%zu D=%zu\n", N, D);
                return 1;
            }
            fill_normalised(A, N, D, 1);
            fill_normalised(B, N, D, 2);
            const float s = logf(1.0f / 0.07f);
            int reps = N >= 4096 ? 3 : N >= 1024 ? 7 : 21;
            double tl[21], t3[21], t2[21], t0;
            float loss, ds;
            for (int r = -1; r < reps; r++) {
                t0 = now_s();
                if (clasp_infonce(&loss, dA, dB, &ds, A, B, s, NULL, N, D, work) != CLASP_OK) {
                    fprintf(stderr, "bench_loss: %s\n", clasp_last_error());
                    return 1;
                }
                if (r >= 0) tl[r] = now_s() - t0;
                /* the floor: logits, then G B and G^T A with G = the (gradient) matrix */
                t0 = now_s();
                clasp_gemm(0, 1, iN, iN, iD, 1.0f, A, iD, B, iD, 0.0f, work, iN);
                clasp_gemm(0, 0, iN, iD, iN, 1.0f, work, iN, B, iD, 0.0f, dA, iD);
                double t_two = now_s() - t0;
                clasp_gemm(1, 0, iN, iD, iN, 1.0f, work, iN, A, iD, 0.0f, dB, iD);
                if (r >= 0) t3[r] = now_s() - t0, t2[r] = t_two;
            }
            double ml = median(tl, reps), m3 = median(t3, reps), m2 = median(t2, reps);
            printf("%6zu %5zu %4d %11.3f %11.3f %7.3f %11.3f %7.3f\n", N, D, reps, 1e3 * ml,
                   1e3 * m3, ml / m3, 1e3 * m2, ml / m2);
            fflush(stdout);
            free(A), free(B), free(dA), free(dB), free(work);
        }
    return 0;
}
