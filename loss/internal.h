/* internal.h: helpers shared by the files of loss/ (cross-file private, prefix clasp__loss_).
 * Not part of the public API. */
#ifndef CLASP_LOSS_INTERNAL_H
#define CLASP_LOSS_INTERNAL_H

#include <stddef.h>

/* Group sizes: cnt[i] = #{j < N : groups[j] == groups[i]} (>= 1), as floats (exact below
 * 2^24). groups (N), cnt (N). O(N^2) comparisons; groups == NULL gives all ones. */
void clasp__loss_group_counts(float *cnt, const int *groups, size_t N);

/* out (N, D) = inp / max(||inp||, eps) (F.normalize); norm (N) caches max(||inp||, eps).
 * A zero row gives a zero output (no NaN). out may alias inp. */
void clasp__loss_l2norm_forward(float *out, float *norm, const float *inp, size_t N, size_t D,
                                float eps);
/* dinp (N, D) = (dout - out * <out, dout>) / norm; for rows whose norm was clamped to eps the
 * map is inp / eps, so dinp = dout / eps. dinp may alias dout. */
void clasp__loss_l2norm_backward(float *dinp, const float *dout, const float *out,
                                 const float *norm, const float *inp, size_t N, size_t D,
                                 float eps);
/* L (R, C) = scale * Q K^T for queries Q (R, D) and keys K (C, D) (one sgemm). */
void clasp__loss_logits(float *L, const float *Q, const float *K, float scale, size_t R, size_t C,
                        size_t D);
/* Back through L = scale * Q K^T, given G = dloss/dL (R, C): dQ (R, D) = scale * G K and
 * dK (C, D) = scale * G^T Q, written; either may be NULL (that product is skipped). */
void clasp__loss_logits_backward(float *dQ, float *dK, const float *G, const float *Q,
                                 const float *K, float scale, size_t R, size_t C, size_t D);

#endif
