/* supcon.c: SupCon (L_out) and NT-Xent forward + backward; NT-Xent is SupCon with pair labels.
 * ref: HobbitLong/SupContrast losses.py, SimCLR (Chen et al. 2020) NT-Xent. */
#include "loss/supcon.h"

#include <math.h>
#include <string.h>

#include "core/sizes.h"
#include "loss/hardneg.h"
#include "loss/registry.h"
#include "loss/internal.h"

#define NORM_EPS 1e-12f

static size_t supcon_core_work_(size_t M, size_t D) {
    size_t mm, md, r;
    if (!clasp_size_mul(M, M, &mm) || !clasp_size_mul(M, D, &md) || !clasp_size_add(mm, md, &r) ||
        !clasp_size_add(r, 2 * M, &r))
        return 0;
    return r;
}

static int label_of(const int *labels, size_t half, size_t k) {
    return labels ? labels[k] : (int)(k % half);
}

/* The shared core of SupCon and NT-Xent. Z (M, D); labels (M), or NULL for pair labels
 * label(k) = k % half (NT-Xent's two stacked views). normalize: L2-normalise rows inside.
 * dZ (M, D) may be NULL; dtemp may be NULL; n_anchors may be NULL.
 * work: supcon_core_work_(M, D) floats. */
static void supcon_core_(float *loss, float *dZ, float *dtemp, size_t *n_anchors, const float *Z,
                         const int *labels, size_t half, float temperature, int normalize, size_t M,
                         size_t D, float *work) {
    float *S = work;          /* (M, M) similarities / tau, then dloss/dS */
    float *Zn = S + M * M;    /* (M, D) features used (normalised copy or Z) */
    float *norm = Zn + M * D; /* (M) */
    float *cnt = norm + M;    /* (M) number of positives per anchor */
    const float inv_t = 1.0f / temperature;
    const float *F = Z;
    if (normalize) {
        clasp__loss_l2norm_forward(Zn, norm, Z, M, D, NORM_EPS);
        F = Zn;
    }
    clasp__loss_logits(S, F, F, inv_t, M, M, D);
    size_t nv = 0;
    for (size_t i = 0; i < M; i++) {
        size_t c = 0;
        int li = label_of(labels, half, i);
        for (size_t p = 0; p < M; p++) c += p != i && label_of(labels, half, p) == li;
        cnt[i] = (float)c;
        nv += c > 0;
    }
    if (n_anchors) *n_anchors = nv;
    double lsum = 0.0, dts = 0.0;
    const float w = nv ? (float)(1.0 / (double)nv) : 0.0f;
    for (size_t i = 0; i < M; i++) {
        float *x = S + i * M;
        int li = label_of(labels, half, i);
        if (cnt[i] == 0.0f) {
            memset(x, 0, M * sizeof *x);
            continue;
        }
        float m = -INFINITY;
        for (size_t a = 0; a < M; a++)
            if (a != i && x[a] > m) m = x[a];
        double s = 0.0;
        for (size_t a = 0; a < M; a++)
            if (a != i) s += (double)expf(x[a] - m);
        float lse = (float)log(s);
        double li_loss = (double)lse;
        const float yp = 1.0f / cnt[i];
        for (size_t a = 0; a < M; a++) {
            if (a == i) continue;
            float l = x[a], y = label_of(labels, half, a) == li ? yp : 0.0f;
            li_loss -= (double)y * (double)(l - m);
            float g = (expf((l - m) - lse) - y) * w;
            dts += (double)g * (double)l;
            x[a] = g;
        }
        x[i] = 0.0f;
        lsum += li_loss;
    }
    *loss = (float)(lsum * (double)w);
    /* dS/dtau = -S/tau */
    if (dtemp) *dtemp = (float)(-dts / (double)temperature);
    if (!dZ) return;
    /* S = F F^T / tau: dF = (G + G^T) F / tau. Symmetrise G in place. */
    for (size_t i = 0; i < M; i++)
        for (size_t j = i + 1; j < M; j++) {
            float v = S[i * M + j] + S[j * M + i];
            S[i * M + j] = v;
            S[j * M + i] = v;
        }
    clasp__loss_logits_backward(dZ, NULL, S, F, F, inv_t, M, M, D);
    if (normalize) clasp__loss_l2norm_backward(dZ, dZ, Zn, norm, Z, M, D, NORM_EPS);
}

size_t clasp_supcon_work_floats(size_t M, size_t D) {
    return supcon_core_work_(M, D);
}

/* Argument checks shared by clasp_supcon and clasp_ntxent: `rows` named `rows_name` (M or
 * N), at most max_rows; work_floats 0 means a size overflow. */
static clasp_status check_args_(const char *who, const char *rows_name, int ptrs_ok, size_t rows,
                                size_t D, float temperature, size_t work_floats, size_t max_rows) {
    if (!ptrs_ok || rows == 0 || D == 0 || !(temperature > 0.0f) || !isfinite(temperature))
        return clasp_set_error(CLASP_ERR_ARG, "%s: bad arguments (%s=%zu, D=%zu, tau=%g)", who,
                               rows_name, rows, D, (double)temperature);
    if (work_floats == 0 || rows > max_rows || D > (size_t)INT32_MAX)
        return clasp_set_error(CLASP_ERR_OVERFLOW, "%s: %s=%zu D=%zu too large", who, rows_name,
                               rows, D);
    return CLASP_OK;
}

clasp_status clasp_supcon(float *loss, float *dZ, float *dtemp, size_t *n_anchors, const float *Z,
                          const int *labels, float temperature, int normalize, size_t M, size_t D,
                          float *work) {
    CLASP_TRY(check_args_("supcon", "M", loss && Z && labels && work, M, D, temperature,
                          clasp_supcon_work_floats(M, D), (size_t)INT32_MAX));
    supcon_core_(loss, dZ, dtemp, n_anchors, Z, labels, 1, temperature, normalize, M, D, work);
    return CLASP_OK;
}

size_t clasp_ntxent_work_floats(size_t N, size_t D) {
    size_t m, md, core, r;
    if (!clasp_size_mul(N, 2, &m) || !clasp_size_mul(m, D, &md)) return 0;
    core = supcon_core_work_(m, D);
    /* stacked views + stacked gradient + core */
    if (core == 0 || !clasp_size_add(core, md, &r) || !clasp_size_add(r, md, &r)) return 0;
    return r;
}

clasp_status clasp_ntxent(float *loss, float *dZ1, float *dZ2, float *dtemp, const float *Z1,
                          const float *Z2, float temperature, int normalize, size_t N, size_t D,
                          float *work) {
    CLASP_TRY(check_args_("ntxent", "N", loss && Z1 && Z2 && work, N, D, temperature,
                          clasp_ntxent_work_floats(N, D), (size_t)INT32_MAX / 2));
    const size_t M = 2 * N, nd = N * D;
    float *Zs = work, *dZs = work + M * D, *core = dZs + M * D;
    memcpy(Zs, Z1, nd * sizeof *Zs);
    memcpy(Zs + nd, Z2, nd * sizeof *Zs);
    int need = dZ1 || dZ2;
    supcon_core_(loss, need ? dZs : NULL, dtemp, NULL, Zs, NULL, N, temperature, normalize, M, D,
                 core);
    if (dZ1) memcpy(dZ1, dZs, nd * sizeof *dZ1);
    if (dZ2) memcpy(dZ2, dZs + nd, nd * sizeof *dZ2);
    return CLASP_OK;
}

/* Adapters (loss/registry.h): the replicated recipe on the stacked sides. */
static size_t stacked_work_(size_t stack, size_t loss) {
    size_t r;
    if (!stack || !loss || !clasp_size_add(stack, loss, &r)) return 0;
    return r;
}

size_t clasp_supcon_batch_work_floats(const clasp_loss_setup *s) {
    return stacked_work_(clasp__loss_stack_floats(s->N, s->D),
                         clasp_supcon_work_floats(2 * s->N, s->D));
}

clasp_status clasp_supcon_batch(const clasp_loss_batch *in, clasp_loss_grads *out) {
    if (!in->groups)
        return clasp_set_error(CLASP_ERR_ARG, "supcon: needs labels (group ids) on every step");
    float *Z, *dZ;
    int *labels;
    clasp__loss_stack(in->work, in, &Z, &dZ, &labels);
    bool learnable;
    const float tau = expf(-clasp_loss_log_scale(in, &learnable));
    float loss = 0, dtau = 0;
    CLASP_TRY(clasp_supcon(&loss, dZ, &dtau, NULL, Z, labels, tau, 0, 2 * in->N, in->D,
                           in->work + clasp__loss_stack_floats(in->N, in->D)));
    const float ds = learnable ? -tau * dtau : 0.0f; /* tau = exp(-s) */
    clasp__loss_unstack(out, in, dZ, loss, &ds);
    return CLASP_OK;
}

size_t clasp_ntxent_batch_work_floats(const clasp_loss_setup *s) {
    float beta, tau_plus;
    size_t loss = clasp__loss_hardneg_options(s->cfg, &beta, &tau_plus)
                      ? clasp_ntxent_hardneg_work_floats(s->N, s->D)
                      : clasp_ntxent_work_floats(s->N, s->D);
    return stacked_work_(clasp__loss_stack_floats(s->N, s->D), loss);
}

clasp_status clasp_ntxent_batch(const clasp_loss_batch *in, clasp_loss_grads *out) {
    float *Z, *dZ;
    int *labels;
    clasp__loss_stack(in->work, in, &Z, &dZ, &labels); /* dZ = [dZ1; dZ2] */
    bool learnable;
    const float s = clasp_loss_log_scale(in, &learnable), tau = expf(-s);
    float loss = 0, ds = 0, beta, tau_plus,
          *work = in->work + clasp__loss_stack_floats(in->N, in->D);
    if (clasp__loss_hardneg_options(in->cfg, &beta, &tau_plus)) {
        CLASP_TRY(clasp_ntxent_hardneg(&loss, dZ, dZ + in->N * in->D, &ds, in->a_all, in->b_all, s,
                                       beta, tau_plus, in->N, in->D, work));
    } else {
        float dtau = 0;
        CLASP_TRY(clasp_ntxent(&loss, dZ, dZ + in->N * in->D, &dtau, in->a_all, in->b_all, tau, 0,
                               in->N, in->D, work));
        ds = -tau * dtau; /* tau = exp(-s) */
    }
    if (!learnable) ds = 0.0f;
    clasp__loss_unstack(out, in, dZ, loss, &ds);
    return CLASP_OK;
}
