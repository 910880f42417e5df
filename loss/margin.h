/* margin.h: pairwise margin contrastive loss (Hadsell, Chopra & LeCun 2006) over given pairs.
 *
 *     d_k  = ||x1_k - x2_k||  (euclidean)
 *     loss = (1/P) sum_k  y_k d_k^2 + (1 - y_k) max(0, m - d_k)^2
 * y_k = 1 marks a similar pair, 0 a dissimilar one (the paper writes Y = 0 for similar and
 * carries factors 1/2; this is the form given in the issue). At d_k = 0 the dissimilar term's
 * derivative direction is undefined: its gradient is taken as 0. Gradients are written. */
#ifndef CLASP_LOSS_MARGIN_H
#define CLASP_LOSS_MARGIN_H

#include <stddef.h>

#include "core/status.h"
#include "loss/registry.h"

/* X1 (P, D), X2 (P, D): the two sides of each pair; similar (P): 1 similar, 0 dissimilar
 * (any non-zero counts as 1); margin m >= 0.
 * Outputs (written; all but loss may be NULL): *loss, dX1 (P, D), dX2 (P, D).
 * No scratch memory. Returns CLASP_OK or CLASP_ERR_ARG (P == 0, D == 0, m < 0, NULLs). */
clasp_status clasp_margin_contrastive(float *loss, float *dX1, float *dX2, const float *X1,
                                      const float *X2, const int *similar, float margin, size_t P,
                                      size_t D);

/* Every cross pair (a_i, b_j) of a batch of N pairs, similar when groups_all[i] ==
 * groups_all[j] (i == j when groups_all is NULL): loss = the mean of the terms above over the
 * N*N pairs. This rank owns the pairs of its rows i = offset..offset+n-1 (A_loc (n, D)) against
 * all B_all (N, D) rows, so its loss and gradients are its part: the sums over ranks are the
 * global ones. Outputs (written; all but loss may be NULL): *loss, dA_loc (n, D), dB_all (N, D).
 * Returns CLASP_OK or CLASP_ERR_ARG. */
clasp_status clasp_margin_cross(float *loss, float *dA_loc, float *dB_all, const float *A_loc,
                                const float *B_all, const int *groups_all, float margin, size_t n,
                                size_t offset, size_t N, size_t D);

/* Registry adapter (loss/registry.h): clasp_margin_cross with the batch's groups (needed),
 * option margin; writes da and db (one rank) or db_all (several). */
size_t clasp_margin_batch_work_floats(const clasp_loss_setup *s);
clasp_status clasp_margin_batch(const clasp_loss_batch *in, clasp_loss_grads *out);

#endif
