/* internal.h: helpers shared by the files of loss/ (cross-file private, prefix clasp__loss_).
 * Not part of the public API. */
#ifndef CLASP_LOSS_INTERNAL_H
#define CLASP_LOSS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "loss/registry.h"

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

/* The replicated recipe of loss/registry.h for losses without a natural split: every rank
 * stacks Z (2N, D) = [a_all; b_all] with labels (2N) = the groups twice (0..N-1 twice when
 * there are none), computes the global loss on it, then keeps its rows' gradients.
 * clasp__loss_stack_floats(N, D): floats of Z, dZ and the labels (the labels are stored as
 * ints in float-sized slots), 0 on overflow; the stack starts at work. */
size_t clasp__loss_stack_floats(size_t N, size_t D);
void clasp__loss_stack(float *work, const clasp_loss_batch *in, float **Z, float **dZ,
                       int **labels);
/* Writes rows offset..offset+n-1 of dZ's two halves into out->da and out->db, the loss and
 * dscalar (may be NULL) on rank 0 only (0 elsewhere) and out->wrote. */
void clasp__loss_unstack(clasp_loss_grads *out, const clasp_loss_batch *in, const float *dZ,
                         float loss, const float *dscalar);

/* Hard negatives (loss/hardneg.h) are on when the loss's option "hard-negatives" or "tau-plus"
 * is set: true with their values (the defaults for the one not set). */
bool clasp__loss_hardneg_options(const clasp_loss_config *cfg, float *beta, float *tau_plus);

#endif
