/* ntxent.h: NT-Xent, the normalised-temperature cross entropy of SimCLR (Chen et al. 2020).
 *
 * Two views Z1, Z2 (N x D) of the same N samples are stacked into 2N rows z_k; the positive of
 * row k is its other view, the 2N - 2 other rows are negatives, self-similarity is excluded:
 *     l_k  = -log( exp(z_k . z_pos(k) / tau) / sum_{m != k} exp(z_k . z_m / tau) )
 *     loss = mean over the 2N rows.
 * This equals SupCon (loss/supcon.h) with labels (0..N-1, 0..N-1) and shares its code.
 * SimCLR normalises inside the loss: pass normalize = 1 for that (F.normalize, eps 1e-12,
 * gradients w.r.t. the raw views); normalize = 0 uses the views as given. Gradients written. */
#ifndef CLASP_LOSS_NTXENT_H
#define CLASP_LOSS_NTXENT_H

#include <stddef.h>

#include "core/status.h"

/* Scratch floats: 4N^2 + 6ND + 4N. 0 on overflow. */
size_t clasp_ntxent_work_floats(size_t N, size_t D);

/* Z1 (N, D), Z2 (N, D); temperature tau > 0 (SimCLR uses 0.1 - 0.5).
 * Outputs (written; all but loss may be NULL): *loss, dZ1 (N, D), dZ2 (N, D), *dtemp.
 * Returns CLASP_OK or CLASP_ERR_ARG (N == 0, D == 0, tau <= 0, NULL inputs). */
clasp_status clasp_ntxent(float *loss, float *dZ1, float *dZ2, float *dtemp, const float *Z1,
                          const float *Z2, float temperature, int normalize, size_t N, size_t D,
                          float *work);

#endif
