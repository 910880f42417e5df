/* internal.c: group counting, a small L2 normaliser and the logit products shared by loss/. */
#include "core/compute.h"
#include "loss/internal.h"

#include <math.h>
#include <string.h>

#include "core/sizes.h"

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

size_t clasp__loss_stack_floats(size_t N, size_t D) {
    size_t nd, r;
    if (!clasp_size_mul(N, D, &nd) || !clasp_size_mul(nd, 4, &r) || !clasp_size_add(r, 2 * N, &r))
        return 0;
    return r;
}

void clasp__loss_stack(float *work, const clasp_loss_batch *in, float **Z, float **dZ,
                       int **labels) {
    const size_t N = in->N, nd = in->N * in->D;
    *Z = work;
    *dZ = work + 2 * nd;
    *labels = (int *)(void *)(work + 4 * nd); /* malloc'd memory: takes the ints' type */
    memcpy(*Z, in->a_all, nd * sizeof(float));
    memcpy(*Z + nd, in->b_all, nd * sizeof(float));
    for (size_t i = 0; i < N; i++)
        (*labels)[i] = (*labels)[N + i] = in->groups ? in->groups[i] : (int)i;
}

void clasp__loss_unstack(clasp_loss_grads *out, const clasp_loss_batch *in, const float *dZ,
                         float loss, const float *dscalar) {
    const size_t nd = in->n * in->D, off = in->offset * in->D, Nd = in->N * in->D;
    memcpy(out->da, dZ + off, nd * sizeof(float));
    memcpy(out->db, dZ + Nd + off, nd * sizeof(float));
    out->loss = in->rank == 0 ? loss : 0.0f;
    if (dscalar) out->dscalars[0] = in->rank == 0 ? *dscalar : 0.0f;
    out->wrote = CLASP_LOSS_WROTE_A | CLASP_LOSS_WROTE_B;
}

bool clasp__loss_hardneg_options(const clasp_loss_config *cfg, float *beta, float *tau_plus) {
    const clasp_loss_def *d = clasp_loss_config_def(cfg);
    int ib = clasp_loss_option_index(d, "hard-negatives"),
        it = clasp_loss_option_index(d, "tau-plus");
    if (ib < 0 || it < 0 || !cfg || !(cfg->set & (1u << ib | 1u << it))) return false;
    *beta = (float)clasp_loss_config_get(cfg, ib);
    *tau_plus = (float)clasp_loss_config_get(cfg, it);
    return true;
}
