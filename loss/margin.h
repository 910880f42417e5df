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

/* X1 (P, D), X2 (P, D): the two sides of each pair; similar (P): 1 similar, 0 dissimilar
 * (any non-zero counts as 1); margin m >= 0.
 * Outputs (written; all but loss may be NULL): *loss, dX1 (P, D), dX2 (P, D).
 * No scratch memory. Returns CLASP_OK or CLASP_ERR_ARG (P == 0, D == 0, m < 0, NULLs). */
clasp_status clasp_margin_contrastive(float *loss, float *dX1, float *dX2, const float *X1,
                                      const float *X2, const int *similar, float margin, size_t P,
                                      size_t D);

#endif
