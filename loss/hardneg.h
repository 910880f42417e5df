/* hardneg.h: InfoNCE with hard negative sampling (Robinson et al. 2021, "Contrastive Learning
 * with Hard Negative Samples", ICLR) and debiasing (Chuang et al. 2020), in the symmetric
 * cross-modal form of loss/infonce.h.
 * ref: github joshr17/HCL, main.py `criterion` (estimator 'hard').
 *
 * For a query row i with logits s_ij = exp(t) q_i . k_j (t: log scale, tau = exp(-t)), its
 * positive p = i and its N_neg = N - 1 negatives n != p:
 *     w_n  = exp(beta s_in) / mean_n exp(beta s_in)                  (importance weights)
 *     Ng   = max( (-N_neg tau_plus exp(s_ip) + sum_n w_n exp(s_in)) / (1 - tau_plus),
 *                 N_neg exp(-1/tau) )
 *     l_i  = -log( exp(s_ip) / (exp(s_ip) + Ng) )
 * and loss = (mean over image rows + mean over text rows) / 2, as InfoNCE.
 * As in HCL, the weights are computed from the logits and gradients flow through them (they
 * are NOT detached), and where the clamp is active Ng's gradient is that of the bound
 * (nothing through the logits; the bound's own dependence on tau reaches dlog_scale). With
 * beta = 0 and tau_plus = 0 the loss is InfoNCE (the clamp cannot bind for cosines >= -1).
 * Everything is computed in double with the row maximum subtracted (no overflow for any
 * beta, scale). One positive per row: no group ids. */
#ifndef CLASP_LOSS_HARDNEG_H
#define CLASP_LOSS_HARDNEG_H

#include <stddef.h>

#include "core/status.h"

/* Scratch floats for clasp_infonce_hardneg(n, N): n*N. 0 on overflow. */
size_t clasp_infonce_hardneg_work_floats(size_t n, size_t N);

/* This rank owns rows offset..offset+n-1 of the global batch of N pairs (one process: n = N,
 * offset = 0), with the arguments and outputs of clasp_infonce_dist (loss/infonce.h): local
 * rows A_loc, B_loc (n, D); gathered A_all, B_all (N, D); gradients (written, each may be NULL)
 * dA_loc, dB_loc (n, D) through the local rows as queries, dA_all, dB_all (N, D) through the
 * gathered rows as keys, *dlog_scale this rank's part. beta >= 0, 0 <= tau_plus < 1.
 * Returns CLASP_OK or CLASP_ERR_ARG (N < 2, bad sizes or parameters, NULL inputs). */
clasp_status clasp_infonce_hardneg(float *loss, float *dA_loc, float *dB_loc, float *dA_all,
                                   float *dB_all, float *dlog_scale, const float *A_loc,
                                   const float *B_loc, const float *A_all, const float *B_all,
                                   float log_scale, float beta, float tau_plus, size_t n,
                                   size_t offset, size_t N, size_t D, float *work);

/* The same estimator in NT-Xent's form (SimCLR; HCL's own setting): the two views Z1, Z2
 * (N, D) are stacked into M = 2N rows z_k, s_kj = exp(t) z_k . z_j; row k's positive is the
 * other view of its sample, its own column is excluded, the N_neg = 2N - 2 other rows are its
 * negatives; loss = mean of l_k over the M rows (HCL's criterion exactly). Gradients (written,
 * each may be NULL): dZ1, dZ2 (N, D), *dlog_scale. The rows are used as given (SimCLR
 * normalises before). work: clasp_ntxent_hardneg_work_floats(N, D) = 4N^2 + 4ND floats.
 * Returns CLASP_OK or CLASP_ERR_ARG (N < 2, D == 0, bad beta / tau_plus, NULL inputs). */
size_t clasp_ntxent_hardneg_work_floats(size_t N, size_t D);
clasp_status clasp_ntxent_hardneg(float *loss, float *dZ1, float *dZ2, float *dlog_scale,
                                  const float *Z1, const float *Z2, float log_scale, float beta,
                                  float tau_plus, size_t N, size_t D, float *work);

#endif
