/* hardneg.c: hard-negative InfoNCE (Robinson et al. 2021) forward + backward.
 * ref: joshr17/HCL main.py criterion (estimator 'hard'). */
#include "loss/hardneg.h"

#include <math.h>
#include <string.h>

#include "core/sizes.h"
#include "loss/internal.h"

size_t clasp_infonce_hardneg_work_floats(size_t n, size_t N) {
    size_t r;
    if (!clasp_size_mul(n, N, &r) || r == 0) return 0;
    return r;
}

/* One query row x (C) of logits s_j = exp(t) cos with positive p: returns
 * l = log(exp(s_p) + Ng) - s_p, overwrites x with w * dl/ds and adds w * dl/dt to *ds (through
 * the logits, ds_j/dt = s_j, and through the clamp bound N_neg exp(-exp(t)) where it binds).
 * A column `self` < C (NT-Xent's own row) is neither positive nor negative (gradient 0).
 * In double, shifted by the row maximum m (P, E_n, Ng and the bound are scaled by exp(-m); the
 * beta weights by exp(-beta mb), which cancels in w_n). */
static double row_(float *x, size_t C, size_t p, size_t self, double beta, double tau_plus,
                   double scale, double w, double *ds) {
    double m = -HUGE_VAL, mb = -HUGE_VAL;
    for (size_t j = 0; j < C; j++) {
        if (j == self) continue;
        m = (double)x[j] > m ? (double)x[j] : m;
        if (j != p) mb = (double)x[j] > mb ? (double)x[j] : mb;
    }
    const double nneg = (double)(C - 1 - (self < C));
    double sb = 0.0, sa = 0.0; /* sum_n I_n, sum_n I_n E_n */
    for (size_t j = 0; j < C; j++) {
        if (j == p || j == self) continue;
        double in = exp(beta * ((double)x[j] - mb)), en = exp((double)x[j] - m);
        sb += in;
        sa += in * en;
    }
    const double P = exp((double)x[p] - m), r = nneg * sa / sb;
    const double raw = (r - nneg * tau_plus * P) / (1.0 - tau_plus);
    const double bound = nneg * exp(-scale - m); /* N_neg exp(-1/tau), shifted */
    const int clamped = raw < bound;             /* torch.clamp passes the gradient at equality */
    const double ng = clamped ? bound : raw, z = P + ng;
    const double loss = log(z) + m - (double)x[p];
    /* dl/ds_p = (P + dNg/ds_p) / z - 1; dl/ds_n = dNg/ds_n / z, where (not clamped)
     * dNg/ds_n = N_neg I_n / sb ((1 + beta) E_n - beta sa / sb) / (1 - tau_plus) */
    const double dng_dp = clamped ? 0.0 : -nneg * tau_plus * P / (1.0 - tau_plus);
    const double ratio = sa / sb, k = nneg / (sb * (1.0 - tau_plus) * z);
    double dt = 0.0;
    for (size_t j = 0; j < C; j++) {
        double g;
        if (j == self) {
            g = 0.0;
        } else if (j == p) {
            g = (P + dng_dp) / z - 1.0;
        } else if (clamped) {
            g = 0.0;
        } else {
            double in = exp(beta * ((double)x[j] - mb)), en = exp((double)x[j] - m);
            g = k * in * ((1.0 + beta) * en - beta * ratio);
        }
        dt += g * (double)x[j];
        x[j] = (float)(g * w);
    }
    if (clamped) dt += -bound * scale / z; /* d bound/dt = -bound exp(t) */
    *ds += w * dt;
    return loss;
}

/* One direction: queries Q (n, D) = rows offset.. of the batch against keys K_all (N, D);
 * L (n, N) scratch. */
static void direction_(double *loss_sum, double *ds_sum, float *dQ, float *dK_all, const float *Q,
                       const float *K_all, float scale, float beta, float tau_plus, size_t n,
                       size_t offset, size_t N, size_t D, float *L) {
    clasp__loss_logits(L, Q, K_all, scale, n, N, D);
    const double w = 0.5 / (double)N;
    for (size_t i = 0; i < n; i++)
        *loss_sum += row_(L + i * N, N, offset + i, N, (double)beta, (double)tau_plus,
                          (double)scale, w, ds_sum);
    clasp__loss_logits_backward(dQ, dK_all, L, Q, K_all, scale, n, N, D);
}

clasp_status clasp_infonce_hardneg(float *loss, float *dA_loc, float *dB_loc, float *dA_all,
                                   float *dB_all, float *dlog_scale, const float *A_loc,
                                   const float *B_loc, const float *A_all, const float *B_all,
                                   float log_scale, float beta, float tau_plus, size_t n,
                                   size_t offset, size_t N, size_t D, float *work) {
    if (!loss || !A_loc || !B_loc || !A_all || !B_all || !work || n == 0 || D == 0 || N < 2 ||
        offset > N || n > N - offset || !(beta >= 0.0f) || !isfinite(beta) || !(tau_plus >= 0.0f) ||
        !(tau_plus < 1.0f))
        return clasp_set_error(CLASP_ERR_ARG,
                               "infonce hard negatives: bad arguments (n=%zu, offset=%zu, N=%zu "
                               "(>= 2), D=%zu, beta=%g, tau_plus=%g)",
                               n, offset, N, D, (double)beta, (double)tau_plus);
    if (clasp_infonce_hardneg_work_floats(n, N) == 0 || N > (size_t)INT32_MAX ||
        D > (size_t)INT32_MAX)
        return clasp_set_error(CLASP_ERR_OVERFLOW, "infonce hard negatives: N=%zu D=%zu too large",
                               N, D);
    const float scale = expf(log_scale);
    double loss_sum = 0.0, ds = 0.0;
    direction_(&loss_sum, &ds, dA_loc, dB_all, A_loc, B_all, scale, beta, tau_plus, n, offset, N, D,
               work);
    direction_(&loss_sum, &ds, dB_loc, dA_all, B_loc, A_all, scale, beta, tau_plus, n, offset, N, D,
               work);
    *loss = (float)(loss_sum * 0.5 / (double)N);
    if (dlog_scale) *dlog_scale = (float)ds;
    return CLASP_OK;
}

size_t clasp_ntxent_hardneg_work_floats(size_t N, size_t D) {
    size_t m, mm, md, r;
    if (!clasp_size_mul(N, 2, &m) || !clasp_size_mul(m, m, &mm) || !clasp_size_mul(m, D, &md) ||
        !clasp_size_add(mm, md, &r) || !clasp_size_add(r, md, &r))
        return 0;
    return r;
}

clasp_status clasp_ntxent_hardneg(float *loss, float *dZ1, float *dZ2, float *dlog_scale,
                                  const float *Z1, const float *Z2, float log_scale, float beta,
                                  float tau_plus, size_t N, size_t D, float *work) {
    if (!loss || !Z1 || !Z2 || !work || N < 2 || D == 0 || !(beta >= 0.0f) || !isfinite(beta) ||
        !(tau_plus >= 0.0f) || !(tau_plus < 1.0f))
        return clasp_set_error(
            CLASP_ERR_ARG,
            "ntxent hard negatives: bad arguments (N=%zu (>= 2), D=%zu, beta=%g, "
            "tau_plus=%g)",
            N, D, (double)beta, (double)tau_plus);
    if (clasp_ntxent_hardneg_work_floats(N, D) == 0 || N > (size_t)INT32_MAX / 2 ||
        D > (size_t)INT32_MAX)
        return clasp_set_error(CLASP_ERR_OVERFLOW, "ntxent hard negatives: N=%zu D=%zu too large",
                               N, D);
    const size_t M = 2 * N, nd = N * D;
    float *S = work, *Z = S + M * M, *dZ = Z + M * D; /* (M, M), (M, D), (M, D) */
    memcpy(Z, Z1, nd * sizeof *Z);
    memcpy(Z + nd, Z2, nd * sizeof *Z);
    const float scale = expf(log_scale);
    clasp__loss_logits(S, Z, Z, scale, M, M, D);
    /* row k's positive is the other view of its sample; its own column is excluded */
    double lsum = 0.0, ds = 0.0;
    const double w = 1.0 / (double)M;
    for (size_t k = 0; k < M; k++)
        lsum += row_(S + k * M, M, (k + N) % M, k, (double)beta, (double)tau_plus, (double)scale, w,
                     &ds);
    *loss = (float)(lsum * w);
    if (dlog_scale) *dlog_scale = (float)ds;
    if (!dZ1 && !dZ2) return CLASP_OK;
    /* S = scale Z Z^T: dZ = scale (G + G^T) Z */
    for (size_t i = 0; i < M; i++)
        for (size_t j = i; j < M; j++) {
            float v = S[i * M + j] + S[j * M + i];
            S[i * M + j] = S[j * M + i] = v;
        }
    clasp__loss_logits_backward(dZ, NULL, S, Z, Z, scale, M, M, D);
    if (dZ1) memcpy(dZ1, dZ, nd * sizeof *dZ1);
    if (dZ2) memcpy(dZ2, dZ + nd, nd * sizeof *dZ2);
    return CLASP_OK;
}
