/* internal.c: group counting, a small L2 normaliser and the logit products shared by loss/. */
#include "core/compute.h"
#include "loss/internal.h"

#include <math.h>

void clasp__loss_group_counts(float *cnt, const int *groups, size_t N) {
    for (size_t i = 0; i < N; i++) {
        size_t c = 0;
        if (groups) {
            for (size_t j = 0; j < N; j++) c += groups[j] == groups[i];
        } else {
            c = 1;
        }
        cnt[i] = (float)c;
    }
}

void clasp__loss_l2norm_forward(float *out, float *norm, const float *inp, size_t N, size_t D,
                                float eps) {
    for (size_t i = 0; i < N; i++) {
        const float *x = inp + i * D;
        double ss = 0.0;
        for (size_t k = 0; k < D; k++) ss += (double)x[k] * (double)x[k];
        double nr = sqrt(ss);
        if (nr < (double)eps) nr = (double)eps;
        norm[i] = (float)nr;
        float r = (float)(1.0 / nr);
        for (size_t k = 0; k < D; k++) out[i * D + k] = x[k] * r;
    }
}

void clasp__loss_l2norm_backward(float *dinp, const float *dout, const float *out,
                                 const float *norm, const float *inp, size_t N, size_t D,
                                 float eps) {
    for (size_t i = 0; i < N; i++) {
        const float *g = dout + i * D, *y = out + i * D;
        float *dx = dinp + i * D;
        /* Whether the clamp was active is decided on the input norm, as in forward. */
        double ss = 0.0;
        for (size_t k = 0; k < D; k++) ss += (double)inp[i * D + k] * (double)inp[i * D + k];
        if (sqrt(ss) < (double)eps) {
            for (size_t k = 0; k < D; k++) dx[k] = g[k] / eps;
            continue;
        }
        double dot = 0.0;
        for (size_t k = 0; k < D; k++) dot += (double)y[k] * (double)g[k];
        float r = 1.0f / norm[i], fd = (float)dot;
        for (size_t k = 0; k < D; k++) dx[k] = (g[k] - y[k] * fd) * r;
    }
}

void clasp__loss_logits(float *L, const float *Q, const float *K, float scale, size_t R, size_t C,
                        size_t D) {
    const int iR = (int)R, iC = (int)C, iD = (int)D;
    clasp_gemm(0, 1, iR, iC, iD, scale, Q, iD, K, iD, 0.0f, L, iC);
}

void clasp__loss_logits_backward(float *dQ, float *dK, const float *G, const float *Q,
                                 const float *K, float scale, size_t R, size_t C, size_t D) {
    const int iR = (int)R, iC = (int)C, iD = (int)D;
    if (dQ) clasp_gemm(0, 0, iR, iD, iC, scale, G, iC, K, iD, 0.0f, dQ, iD);
    if (dK) clasp_gemm(1, 0, iC, iD, iR, scale, G, iC, Q, iD, 0.0f, dK, iD);
}
