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

/* Shared core of SupCon and NT-Xent (loss/supcon.c). Z (M, D); labels (M), or NULL for
 * pair labels label(k) = k % half (NT-Xent's two stacked views). normalize: L2-normalise rows
 * inside. dZ (M, D) may be NULL; dtemp may be NULL; n_anchors may be NULL.
 * work: clasp__loss_supcon_core_work(M, D) floats. */
size_t clasp__loss_supcon_core_work(size_t M, size_t D);
void clasp__loss_supcon_core(float *loss, float *dZ, float *dtemp, size_t *n_anchors,
                             const float *Z, const int *labels, size_t half, float temperature,
                             int normalize, size_t M, size_t D, float *work);

#endif
