/* siglip.c: SigLIP pairwise sigmoid loss forward + backward. ref: open_clip SigLipLoss. */
#include "loss/siglip.h"

#include <math.h>

#include "core/sizes.h"
#include "loss/internal.h"

size_t clasp_siglip_work_floats(size_t n, size_t N) {
    size_t r;
    if (!clasp_size_mul(n, N, &r)) return 0;
    return r;
}

clasp_status clasp_siglip(float *loss, float *dA_loc, float *dB_all, float *dlog_scale,
                          float *dbias, const float *A_loc, const float *B_all, float log_scale,
                          float bias, const int *groups_all, size_t n, size_t offset, size_t N,
                          size_t D, float *work) {
    if (!loss || !A_loc || !B_all || !work || n == 0 || D == 0 || offset > N || n > N - offset)
        return clasp_set_error(CLASP_ERR_ARG,
                               "siglip: bad arguments (n=%zu, offset=%zu, N=%zu, D=%zu)", n, offset,
                               N, D);
    if (clasp_siglip_work_floats(n, N) == 0 || N > (size_t)INT32_MAX || D > (size_t)INT32_MAX)
        return clasp_set_error(CLASP_ERR_OVERFLOW, "siglip: N=%zu D=%zu too large", N, D);
    const float scale = expf(log_scale);
    float *L = work; /* (n, N) logits, then dloss/dlogits */
    clasp__loss_logits(L, A_loc, B_all, scale, n, N, D);
    const double inv_n = 1.0 / (double)N;
    double lsum = 0.0, dt = 0.0, db = 0.0;
    for (size_t i = 0; i < n; i++) {
        size_t gi = offset + i;
        for (size_t j = 0; j < N; j++) {
            float *x = L + i * N + j;
            double z = (groups_all ? groups_all[gi] == groups_all[j] : gi == j) ? 1.0 : -1.0;
            double sl = (double)*x; /* exp(t) a.b */
            double u = z * (sl + (double)bias);
            /* One exponential: e = exp(-|u|) gives log sigmoid(u) = min(u, 0) - log1p(e)
             * and sigmoid(-u) = d(-log sigmoid(u))/d(-u). */
            double e = exp(-fabs(u));
            lsum -= (u < 0.0 ? u : 0.0) - log1p(e);
            double su = u >= 0 ? e / (1.0 + e) : 1.0 / (1.0 + e);
            double g = -z * su * inv_n;
            dt += g * sl;
            db += g;
            *x = (float)g;
        }
    }
    *loss = (float)(lsum * inv_n);
    if (dlog_scale) *dlog_scale = (float)dt;
    if (dbias) *dbias = (float)db;
    clasp__loss_logits_backward(dA_loc, dB_all, L, A_loc, B_all, scale, n, N, D);
    return CLASP_OK;
}

size_t clasp_siglip_batch_work_floats(const clasp_loss_setup *s) {
    return clasp_siglip_work_floats(s->n, s->N);
}

clasp_status clasp_siglip_batch(const clasp_loss_batch *in, clasp_loss_grads *out) {
    /* one rank: b_all is b and the text gradient is complete; several: the engine sums the
     * ranks' parts of db_all */
    float *db = in->world > 1 ? out->db_all : out->db;
    CLASP_TRY(clasp_siglip(&out->loss, out->da, db, &out->dscalars[0], &out->dscalars[1], in->a,
                           in->b_all, in->scalars[0], in->scalars[1], in->groups, in->n, in->offset,
                           in->N, in->D, in->work));
    out->wrote = CLASP_LOSS_WROTE_A | (in->world > 1 ? CLASP_LOSS_WROTE_B_ALL : CLASP_LOSS_WROTE_B);
    return CLASP_OK;
}
