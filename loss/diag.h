/* diag.h: embedding diagnostics for training logs (no gradients).
 *
 * - Per-dimension standard deviation of normalised features: a collapse detector. For
 *   L2-normalised D-dim features spread over the sphere the std per dim is about 1/sqrt(D);
 *   collapse drives it to 0. Population std (divide by N).
 * - Alignment (Wang & Isola 2020, alpha = 2): mean_i ||a_i - b_i||^2.
 * - Uniformity (Wang & Isola 2020, t = 2): log mean_{i<j} exp(-2 ||x_i - x_j||^2).
 * - Mean positive similarity mean_i a_i . b_i, and mean hardest-negative similarity
 *   mean_i max_{j negative} a_i . b_j (negatives: j != i, or different group when groups
 *   are given). Rows without any negative are left out of the second mean.
 * Degenerate inputs give defined values: N < 2 gives uniformity 0 and hardneg_sim 0. */
#ifndef CLASP_LOSS_DIAG_H
#define CLASP_LOSS_DIAG_H

#include <stddef.h>

#include "core/status.h"

typedef struct clasp_diag {
    float std_mean_a, std_min_a; /* mean and min over dims of the per-dim std of A */
    float std_mean_b, std_min_b; /* the same for B */
    float alignment;             /* mean ||a_i - b_i||^2 */
    float uniformity_a;          /* log mean_{i<j} exp(-2 ||a_i - a_j||^2) */
    float uniformity_b;
    float pos_sim;     /* mean a_i . b_i */
    float hardneg_sim; /* mean over rows of max negative a_i . b_j */
} clasp_diag;

/* X (N, D): *std_mean and *std_min over dims of the population std of each column. */
void clasp_diag_feature_std(float *std_mean, float *std_min, const float *X, size_t N, size_t D);
/* A (N, D), B (N, D). */
float clasp_diag_alignment(const float *A, const float *B, size_t N, size_t D);
/* X (N, D). O(N^2 D). */
float clasp_diag_uniformity(const float *X, size_t N, size_t D);
/* A (N, D), B (N, D), groups (N) or NULL. O(N^2 D). */
void clasp_diag_similarity(float *pos_sim, float *hardneg_sim, const float *A, const float *B,
                           const int *groups, size_t N, size_t D);
/* All of the above for a paired batch. Returns CLASP_ERR_ARG for NULLs, N == 0 or D == 0. */
clasp_status clasp_diag_compute(clasp_diag *out, const float *A, const float *B, const int *groups,
                                size_t N, size_t D);

#endif
