/* supcon.h: supervised contrastive loss (Khosla et al. 2020, the L_out variant) and NT-Xent.
 * ref: HobbitLong/SupContrast losses.py (with base_temperature = temperature).
 *
 * Features z_1..z_M (M x D) with labels; s_ia = z_i . z_a / tau. For anchor i let
 * P(i) = {p != i : label_p = label_i} and A(i) = {a != i}:
 *     L_i  = -(1/|P(i)|) sum_{p in P(i)} log( exp(s_ip) / sum_{a in A(i)} exp(s_ia) )
 *     loss = mean of L_i over the anchors with |P(i)| >= 1.
 * Anchors without positives are EXCLUDED from the mean (the reference code would produce
 * 0/0 for them); if no anchor has a positive, loss = 0 and all gradients are 0.
 * Multi-view batches are flat rows with repeated labels. Gradients are written.
 *
 * NT-Xent is the normalised-temperature cross entropy of SimCLR (Chen et al. 2020).
 * Two views Z1, Z2 (N x D) of the same N samples are stacked into 2N rows z_k; the positive of
 * row k is its other view, the 2N - 2 other rows are negatives, self-similarity is excluded:
 *     l_k  = -log( exp(z_k . z_pos(k) / tau) / sum_{m != k} exp(z_k . z_m / tau) )
 *     loss = mean over the 2N rows.
 * This equals SupCon with labels (0..N-1, 0..N-1) and shares its code.
 * SimCLR normalises inside the loss: pass normalize = 1 for that (F.normalize, eps 1e-12,
 * gradients w.r.t. the raw views); normalize = 0 uses the views as given. Gradients written. */
#ifndef CLASP_LOSS_SUPCON_H
#define CLASP_LOSS_SUPCON_H

#include <stddef.h>

#include "core/status.h"
#include "loss/registry.h"

/* Scratch floats: M*M + M*D + 2*M. 0 on overflow. */
size_t clasp_supcon_work_floats(size_t M, size_t D);

/* Z (M, D); labels (M); temperature tau > 0.
 * normalize: 0 = Z is already L2-normalised (used as given); 1 = rows are normalised inside
 * as F.normalize(eps = 1e-12) and dZ is the gradient w.r.t. the raw rows (a zero row gives a
 * zero feature and a finite gradient).
 * Outputs (written; all but loss may be NULL): *loss, dZ (M, D), *dtemp (dloss/dtau),
 * *n_anchors (anchors with at least one positive).
 * Returns CLASP_OK or CLASP_ERR_ARG (M == 0, D == 0, tau <= 0 or not finite, NULL inputs). */
clasp_status clasp_supcon(float *loss, float *dZ, float *dtemp, size_t *n_anchors, const float *Z,
                          const int *labels, float temperature, int normalize, size_t M, size_t D,
                          float *work);

/* Scratch floats: 4N^2 + 6ND + 4N. 0 on overflow. */
size_t clasp_ntxent_work_floats(size_t N, size_t D);

/* Z1 (N, D), Z2 (N, D); temperature tau > 0 (SimCLR uses 0.1 - 0.5).
 * Outputs (written; all but loss may be NULL): *loss, dZ1 (N, D), dZ2 (N, D), *dtemp.
 * Returns CLASP_OK or CLASP_ERR_ARG (N == 0, D == 0, tau <= 0, NULL inputs). */
clasp_status clasp_ntxent(float *loss, float *dZ1, float *dZ2, float *dtemp, const float *Z1,
                          const float *Z2, float temperature, int normalize, size_t N, size_t D,
                          float *work);

/* Registry adapters (loss/registry.h), the replicated recipe: each rank stacks Z = [a_all;
 * b_all] (2N rows) and computes the global loss, keeping its rows' gradients; the loss and the
 * temperature gradient are reported on rank 0 only. The temperature is the "temperature"
 * option or the learnable logit scale (clasp_loss_log_scale).
 * supcon: labels = the groups twice (a row's positives: every other row of either side with
 * its label, its own pair included); needs groups.
 * ntxent: clasp_ntxent(a_all, b_all): the positive of a row is the other side of its pair;
 * with option "hard-negatives" or "tau-plus" set, clasp_ntxent_hardneg (loss/hardneg.h). */
size_t clasp_supcon_batch_work_floats(const clasp_loss_setup *s);
clasp_status clasp_supcon_batch(const clasp_loss_batch *in, clasp_loss_grads *out);
size_t clasp_ntxent_batch_work_floats(const clasp_loss_setup *s);
clasp_status clasp_ntxent_batch(const clasp_loss_batch *in, clasp_loss_grads *out);

#endif
