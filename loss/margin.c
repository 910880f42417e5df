/* margin.c: pairwise margin contrastive loss (Hadsell et al. 2006) forward + backward, over
 * given pairs and over all cross pairs of a batch (the registry adapter). */
#include "loss/margin.h"

#include <math.h>
#include <string.h>

#include "loss/registry.h"

/* One pair's term y d^2 + (1 - y) max(0, m - d)^2 (returned) and *coef, such that the
 * gradient of term * inv_p w.r.t. a is coef * (a - b) (and -coef * (a - b) w.r.t. b). */
static double pair_term_(double *coef, const float *a, const float *b, int similar, double margin,
                         double inv_p, size_t D) {
    double ss = 0.0;
    for (size_t j = 0; j < D; j++) {
        double t = (double)a[j] - (double)b[j];
        ss += t * t;
    }
    if (similar) {
        *coef = 2.0 * inv_p;
        return ss;
    }
    double d = sqrt(ss), h = margin - d;
    *coef = h > 0.0 && d > 0.0 ? -2.0 * h / d * inv_p : 0.0;
    return h > 0.0 ? h * h : 0.0;
}

clasp_status clasp_margin_contrastive(float *loss, float *dX1, float *dX2, const float *X1,
                                      const float *X2, const int *similar, float margin, size_t P,
                                      size_t D) {
    if (!loss || !X1 || !X2 || !similar || P == 0 || D == 0 || !(margin >= 0.0f) ||
        !isfinite(margin))
        return clasp_set_error(CLASP_ERR_ARG, "margin: bad arguments (P=%zu, D=%zu, m=%g)", P, D,
                               (double)margin);
    const double inv_p = 1.0 / (double)P;
    double sum = 0.0;
    for (size_t k = 0; k < P; k++) {
        const float *a = X1 + k * D, *b = X2 + k * D;
        double coef;
        sum += pair_term_(&coef, a, b, similar[k], (double)margin, inv_p, D);
        for (size_t j = 0; j < D; j++) {
            float g = (float)(coef * ((double)a[j] - (double)b[j]));
            if (dX1) dX1[k * D + j] = g;
            if (dX2) dX2[k * D + j] = -g;
        }
    }
    *loss = (float)(sum * inv_p);
    return CLASP_OK;
}

clasp_status clasp_margin_cross(float *loss, float *dA_loc, float *dB_all, const float *A_loc,
                                const float *B_all, const int *groups_all, float margin, size_t n,
                                size_t offset, size_t N, size_t D) {
    if (!loss || !A_loc || !B_all || n == 0 || D == 0 || offset > N || n > N - offset ||
        !(margin >= 0.0f) || !isfinite(margin))
        return clasp_set_error(CLASP_ERR_ARG,
                               "margin: bad arguments (n=%zu, offset=%zu, N=%zu, D=%zu, m=%g)", n,
                               offset, N, D, (double)margin);
    const double inv_p = 1.0 / ((double)N * (double)N);
    double sum = 0.0;
    if (dA_loc) memset(dA_loc, 0, n * D * sizeof *dA_loc);
    if (dB_all) memset(dB_all, 0, N * D * sizeof *dB_all);
    for (size_t i = 0; i < n; i++) {
        const float *a = A_loc + i * D;
        const size_t gi = offset + i;
        for (size_t j = 0; j < N; j++) {
            const float *b = B_all + j * D;
            int similar = groups_all ? groups_all[gi] == groups_all[j] : gi == j;
            double coef;
            sum += pair_term_(&coef, a, b, similar, (double)margin, inv_p, D);
            if (coef == 0.0) continue;
            for (size_t k = 0; k < D; k++) {
                float g = (float)(coef * ((double)a[k] - (double)b[k]));
                if (dA_loc) dA_loc[i * D + k] += g;
                if (dB_all) dB_all[j * D + k] -= g;
            }
        }
    }
    *loss = (float)(sum * inv_p);
    return CLASP_OK;
}

size_t clasp_margin_batch_work_floats(const clasp_loss_setup *s) {
    (void)s;
    return 1; /* no scratch (0 would mean overflow) */
}

clasp_status clasp_margin_batch(const clasp_loss_batch *in, clasp_loss_grads *out) {
    if (!in->groups)
        return clasp_set_error(CLASP_ERR_ARG, "margin: needs labels (group ids) on every step");
    const clasp_loss_def *d = clasp_loss_config_def(in->cfg);
    const double m = clasp_loss_config_get(in->cfg, clasp_loss_option_index(d, "margin"));
    float *db = in->world > 1 ? out->db_all : out->db;
    CLASP_TRY(clasp_margin_cross(&out->loss, out->da, db, in->a, in->b_all, in->groups, (float)m,
                                 in->n, in->offset, in->N, in->D));
    out->wrote = CLASP_LOSS_WROTE_A | (in->world > 1 ? CLASP_LOSS_WROTE_B_ALL : CLASP_LOSS_WROTE_B);
    return CLASP_OK;
}
