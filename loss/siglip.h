/* siglip.h: pairwise sigmoid loss (SigLIP, Zhai et al. 2023) with a learnable log-scale and
 * bias. ref: open_clip/loss.py SigLipLoss.
 *
 *     l_ij = exp(t) a_i . b_j + b,   z_ij = +1 if i == j (or same group), else -1
 *     loss = -(1/N) sum_{i,j} log sigmoid(z_ij l_ij)
 * Defaults as the paper: t = ln 10, b = -10 (clasp_siglip_default_*). Gradients are written
 * (see loss/infonce.h for the conventions shared by all losses).
 *
 * The same call serves one process and many: a rank passes its local image rows A_loc (n x D,
 * rows offset.. of the global batch) and all text rows B_all (N x D). Each pair (i, j) then
 * belongs to exactly one rank, so per-rank losses and gradients sum to the global ones (the
 * caller all-reduces dB_all and sums the scalar gradients). One process: n = N, offset = 0. */
#ifndef CLASP_LOSS_SIGLIP_H
#define CLASP_LOSS_SIGLIP_H

#include <stddef.h>

#include "core/status.h"
#include "loss/registry.h"

#define CLASP_SIGLIP_INIT_LOG_SCALE 2.302585092994046f /* ln 10 */
#define CLASP_SIGLIP_INIT_BIAS      (-10.0f)

/* Scratch floats: n*N. 0 on overflow. */
size_t clasp_siglip_work_floats(size_t n, size_t N);

/* A_loc (n, D), B_all (N, D): L2-normalised features; log_scale t, bias b.
 * groups_all (N) or NULL: pairs with equal ids are positives (z = +1).
 * Outputs (written; all but loss may be NULL): *loss (this rank's share, /N global),
 * dA_loc (n, D), dB_all (N, D), *dlog_scale, *dbias.
 * Returns CLASP_OK or CLASP_ERR_ARG (n == 0, offset + n > N, D == 0, NULL inputs). */
clasp_status clasp_siglip(float *loss, float *dA_loc, float *dB_all, float *dlog_scale,
                          float *dbias, const float *A_loc, const float *B_all, float log_scale,
                          float bias, const int *groups_all, size_t n, size_t offset, size_t N,
                          size_t D, float *work);

/* The registry adapter (loss/registry.h): local image rows against all text rows, one call for
 * one rank and many; scalars = {logit scale, logit bias}. Work: clasp_siglip_batch_work_floats. */
size_t clasp_siglip_batch_work_floats(const clasp_loss_setup *s);
clasp_status clasp_siglip_batch(const clasp_loss_batch *in, clasp_loss_grads *out);

#endif
