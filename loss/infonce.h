/* infonce.h: symmetric cross-modal InfoNCE (CLIP loss) with a learnable log-scale,
 * optional multi-positive targets, and the distributed (local rows vs all rows) form.
 *
 * Conventions for every loss in loss/:
 * - Inputs are float32 row-major feature buffers; nothing here allocates, opens files or
 *   starts threads. Scratch memory is passed in as `work`, sized by the matching
 *   *_work_floats() function (the training step never mallocs).
 * - Gradients are WRITTEN (overwritten), not accumulated: the trainer passes them on to the
 *   encoders' backward (which accumulates into parameter gradients). Every gradient pointer
 *   may be NULL when not needed; the matching product is then skipped.
 * - Losses are means; gradients are exact derivatives of the returned value.
 *
 * Symmetric InfoNCE (ref: OpenCLIP ClipLoss, open_clip/loss.py):
 *     logits = exp(s) * A B^T                                    (N, N)
 *     loss   = ( CE(logits rows, targets) + CE(logits columns, targets) ) / 2
 * where CE is the mean over rows of -sum_j y_ij log softmax_j(logits_i). Targets are the
 * diagonal (y = I) or, with group ids, soft targets: row i spreads mass 1/|G(i)| over every
 * column j with groups[j] == groups[i] (and likewise column-wise). Log-sum-exp is
 * max-subtracted; features are expected L2-normalised (|logit| <= exp(s)) but any finite
 * input gives finite output. OpenCLIP starts s at ln(1/0.07) and clamps it to [0, ln 100]
 * after each optimiser step; that clamp is the trainer's job.
 *
 * Cost: three N x N x D sgemm calls (A B^T, G B, G^T A) and O(N^2) exponentials; memory: one
 * N x N float matrix (the logits, overwritten by their gradient) plus O(N).
 */
#ifndef CLASP_LOSS_INFONCE_H
#define CLASP_LOSS_INFONCE_H

#include <stddef.h>

#include "core/status.h"
#include "loss/registry.h"

/* Scratch floats for clasp_infonce(N, ...): N*N + 4*N. Returns 0 on size overflow. */
size_t clasp_infonce_work_floats(size_t N);

/* Plain (single-process) symmetric InfoNCE.
 * A (N, D), B (N, D): L2-normalised features of pair i (image i, text i).
 * log_scale: s, logits are exp(s) * A B^T.
 * groups (N) or NULL: group id per pair (caption id, class label); NULL = diagonal targets.
 * Outputs: *loss (required); dA (N, D), dB (N, D), *dlog_scale: written, each may be NULL.
 * work: clasp_infonce_work_floats(N) floats.
 * Returns CLASP_OK, or CLASP_ERR_ARG for N == 0, D == 0 or a NULL required pointer. */
clasp_status clasp_infonce(float *loss, float *dA, float *dB, float *dlog_scale, const float *A,
                           const float *B, float log_scale, const int *groups, size_t N, size_t D,
                           float *work);

/* Scratch floats for clasp_infonce_dist(n, N, ...): n*N + N. 0 on overflow. */
size_t clasp_infonce_dist_work_floats(size_t n, size_t N);

/* Distributed form (OpenCLIP local_loss=True + gather_with_grad=True). This rank owns rows
 * offset .. offset+n-1 of the global batch of N pairs.
 *     loss_r = ( sum_{i local} CE_row(exp(s) a_i B_all^T) + sum_{j local} CE_row(exp(s) b_j
 * A_all^T) ) / (2N) so the sum of loss_r over ranks is the global loss of clasp_infonce on (A_all,
 * B_all). A_loc (n, D), B_loc (n, D): this rank's rows (equal in value to A_all/B_all rows
 * offset..). A_all (N, D), B_all (N, D): all rows (all-gathered). groups_all (N) or NULL. Gradients
 * (written, each may be NULL): dA_loc, dB_loc (n, D): through the local rows used as queries;
 *   dA_all, dB_all (N, D): through the gathered rows used as keys;
 *   *dlog_scale: this rank's part (sum over ranks = global).
 * The caller sums dA_all and dB_all over ranks (all-reduce), and adds rows offset..offset+n-1
 * of the sums to dA_loc, dB_loc: that is the full gradient for this rank's features. With one
 * rank (n = N, offset = 0) dA = dA_loc + dA_all equals clasp_infonce's dA.
 * work: clasp_infonce_dist_work_floats(n, N) floats (one n x N matrix, reused for both
 * directions). Cost: six n x N x D sgemm calls.
 * Returns CLASP_OK, or CLASP_ERR_ARG (n == 0, offset + n > N, D == 0, NULL inputs). */
clasp_status clasp_infonce_dist(float *loss, float *dA_loc, float *dB_loc, float *dA_all,
                                float *dB_all, float *dlog_scale, const float *A_loc,
                                const float *B_loc, const float *A_all, const float *B_all,
                                float log_scale, const int *groups_all, size_t n, size_t offset,
                                size_t N, size_t D, float *work);

/* The registry adapter (loss/registry.h): clasp_infonce with one rank, clasp_infonce_dist with
 * several; scalars = {logit scale}, or a fixed temperature (option "temperature": the scalar's
 * gradient is then 0). With option "hard-negatives" or "tau-plus" set: clasp_infonce_hardneg
 * (loss/hardneg.h; refused with group ids). Work: clasp_infonce_batch_work_floats. */
size_t clasp_infonce_batch_work_floats(const clasp_loss_setup *s);
clasp_status clasp_infonce_batch(const clasp_loss_batch *in, clasp_loss_grads *out);

#endif
