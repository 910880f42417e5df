/* infonce.c: symmetric InfoNCE (CLIP) forward + backward, plain and distributed forms.
 * ref: open_clip/loss.py ClipLoss (local_loss, gather_with_grad). */
#include "loss/infonce.h"

#include <math.h>
#include <string.h>

#include "core/sizes.h"
#include "loss/hardneg.h"
#include "loss/internal.h"

#define COL_BLOCK 64

size_t clasp_infonce_work_floats(size_t N) {
    size_t nn, r;
    if (!clasp_size_mul(N, N, &nn) || !clasp_size_mul(N, 4, &r) || !clasp_size_add(nn, r, &r))
        return 0;
    return r;
}

size_t clasp_infonce_dist_work_floats(size_t n, size_t N) {
    size_t nn, r;
    if (!clasp_size_mul(n, N, &nn) || !clasp_size_add(nn, N, &r)) return 0;
    return r;
}

/* Column statistics of L (R, C): cm[j] = max_i L_ij, lcs[j] = log sum_i exp(L_ij - cm[j]).
 * Columns are processed in blocks so that sums run in double with row-major reads. */
static void column_lse(float *cm, float *lcs, const float *L, size_t R, size_t C) {
    for (size_t j0 = 0; j0 < C; j0 += COL_BLOCK) {
        size_t nb = C - j0 < COL_BLOCK ? C - j0 : COL_BLOCK;
        float mx[COL_BLOCK];
        double acc[COL_BLOCK];
        for (size_t b = 0; b < nb; b++) mx[b] = -INFINITY, acc[b] = 0.0;
        for (size_t i = 0; i < R; i++) {
            const float *row = L + i * C + j0;
            for (size_t b = 0; b < nb; b++) mx[b] = row[b] > mx[b] ? row[b] : mx[b];
        }
        for (size_t i = 0; i < R; i++) {
            const float *row = L + i * C + j0;
            for (size_t b = 0; b < nb; b++) acc[b] += (double)expf(row[b] - mx[b]);
        }
        for (size_t b = 0; b < nb; b++) {
            cm[j0 + b] = mx[b];
            lcs[j0 + b] = (float)log(acc[b]);
        }
    }
}

/* Row max and log-sum-exp of one row x (C). */
static void row_lse(float *m_out, float *lse_out, const float *x, size_t C) {
    float m = -INFINITY;
    for (size_t j = 0; j < C; j++) m = x[j] > m ? x[j] : m;
    double s = 0.0;
    for (size_t j = 0; j < C; j++) s += (double)expf(x[j] - m);
    *m_out = m;
    *lse_out = (float)log(s);
}

clasp_status clasp_infonce(float *loss, float *dA, float *dB, float *dlog_scale, const float *A,
                           const float *B, float log_scale, const int *groups, size_t N, size_t D,
                           float *work) {
    if (!loss || !A || !B || !work || N == 0 || D == 0)
        return clasp_set_error(CLASP_ERR_ARG, "infonce: bad arguments (N=%zu, D=%zu)", N, D);
    if (clasp_infonce_work_floats(N) == 0 || N > (size_t)INT32_MAX || D > (size_t)INT32_MAX)
        return clasp_set_error(CLASP_ERR_OVERFLOW, "infonce: N=%zu D=%zu too large", N, D);
    float *L = work;       /* (N, N) logits, then their gradient */
    float *cm = L + N * N; /* (N) column max */
    float *lcs = cm + N;   /* (N) column log-sum-exp (minus max) */
    float *cnt = lcs + N;  /* (N) group sizes */
    float *erow = cnt + N; /* (N) exp(L_ij - row max) of the current row */
    const float scale = expf(log_scale);

    /* L = exp(s) * A B^T */
    clasp__loss_logits(L, A, B, scale, N, N, D);
    column_lse(cm, lcs, L, N, N);
    clasp__loss_group_counts(cnt, groups, N);

    /* Per row: row statistics, the two losses and G = (P_row - Y_row + P_col - Y_col) / 2N.
     * Loss terms are lse - sum_j y_ij (L_ij - max), which keeps well-separated cases exact. */
    const float gs = (float)(0.5 / (double)N);
    double row_loss = 0.0, col_loss = 0.0, ds = 0.0;
    for (size_t j = 0; j < N; j++) col_loss += (double)lcs[j];
    for (size_t i = 0; i < N; i++) {
        float *x = L + i * N;
        /* Row softmax: keep exp(L - max) in a row buffer so each entry costs three
         * exponentials in all (column sums, row sums, column softmax), not four. */
        float rm = -INFINITY;
        for (size_t j = 0; j < N; j++) rm = x[j] > rm ? x[j] : rm;
        double rs = 0.0;
        for (size_t j = 0; j < N; j++) {
            erow[j] = expf(x[j] - rm);
            rs += (double)erow[j];
        }
        const float inv_rs = (float)(1.0 / rs);
        row_loss += log(rs);
        for (size_t j = 0; j < N; j++) {
            float l = x[j];
            float pr = erow[j] * inv_rs, pc = expf((l - cm[j]) - lcs[j]);
            float yr = 0.0f, yc = 0.0f;
            if (groups ? groups[i] == groups[j] : i == j) {
                yr = 1.0f / cnt[i];
                yc = 1.0f / cnt[j];
                row_loss -= (double)yr * (double)(l - rm);
                col_loss -= (double)yc * (double)(l - cm[j]);
            }
            float g = ((pr - yr) + (pc - yc)) * gs;
            ds += (double)g * (double)l;
            x[j] = g;
        }
    }
    *loss = (float)((row_loss + col_loss) * 0.5 / (double)N);
    if (dlog_scale) *dlog_scale = (float)ds;
    /* dA = exp(s) G B, dB = exp(s) G^T A */
    clasp__loss_logits_backward(dA, dB, L, A, B, scale, N, N, D);
    return CLASP_OK;
}

/* One direction of the distributed loss: queries Q (n, D) = rows offset.. of the global batch,
 * keys K_all (N, D). Writes dQ (n, D) and dK_all (N, D) (each may be NULL), adds to the loss
 * and log-scale sums. L is n x N scratch. */
static void dist_direction(double *loss_sum, double *ds_sum, float *dQ, float *dK_all,
                           const float *Q, const float *K_all, float scale, const int *groups,
                           const float *cnt, size_t n, size_t offset, size_t N, size_t D,
                           float *L) {
    clasp__loss_logits(L, Q, K_all, scale, n, N, D);
    const float gs = (float)(0.5 / (double)N);
    for (size_t i = 0; i < n; i++) {
        size_t gi = offset + i;
        float *x = L + i * N;
        float m, lse;
        row_lse(&m, &lse, x, N);
        *loss_sum += (double)lse;
        for (size_t j = 0; j < N; j++) {
            float l = x[j], p = expf((l - m) - lse), y = 0.0f;
            if (groups ? groups[gi] == groups[j] : gi == j) {
                y = 1.0f / cnt[gi];
                *loss_sum -= (double)y * (double)(l - m);
            }
            float g = (p - y) * gs;
            *ds_sum += (double)g * (double)l;
            x[j] = g;
        }
    }
    clasp__loss_logits_backward(dQ, dK_all, L, Q, K_all, scale, n, N, D);
}

clasp_status clasp_infonce_dist(float *loss, float *dA_loc, float *dB_loc, float *dA_all,
                                float *dB_all, float *dlog_scale, const float *A_loc,
                                const float *B_loc, const float *A_all, const float *B_all,
                                float log_scale, const int *groups_all, size_t n, size_t offset,
                                size_t N, size_t D, float *work) {
    if (!loss || !A_loc || !B_loc || !A_all || !B_all || !work || n == 0 || D == 0 || offset > N ||
        n > N - offset)
        return clasp_set_error(CLASP_ERR_ARG,
                               "infonce_dist: bad arguments (n=%zu, offset=%zu, N=%zu, D=%zu)", n,
                               offset, N, D);
    if (clasp_infonce_dist_work_floats(n, N) == 0 || N > (size_t)INT32_MAX || D > (size_t)INT32_MAX)
        return clasp_set_error(CLASP_ERR_OVERFLOW, "infonce_dist: N=%zu D=%zu too large", N, D);
    float *L = work;        /* (n, N) */
    float *cnt = L + n * N; /* (N) */
    const float scale = expf(log_scale);
    clasp__loss_group_counts(cnt, groups_all, N);
    double loss_sum = 0.0, ds = 0.0;
    /* image rows (local) against all texts, then text rows (local) against all images */
    dist_direction(&loss_sum, &ds, dA_loc, dB_all, A_loc, B_all, scale, groups_all, cnt, n, offset,
                   N, D, L);
    dist_direction(&loss_sum, &ds, dB_loc, dA_all, B_loc, A_all, scale, groups_all, cnt, n, offset,
                   N, D, L);
    *loss = (float)(loss_sum * 0.5 / (double)N);
    if (dlog_scale) *dlog_scale = (float)ds;
    return CLASP_OK;
}

size_t clasp_infonce_batch_work_floats(const clasp_loss_setup *s) {
    float beta, tau_plus;
    if (clasp__loss_hardneg_options(s->cfg, &beta, &tau_plus)) {
        /* one rank: the gathered-row gradients go to scratch, then are added to da, db */
        size_t r = clasp_infonce_hardneg_work_floats(s->n, s->N), nd;
        if (s->world > 1) return r;
        if (!r || !clasp_size_mul(s->N, 2 * s->D, &nd) || !clasp_size_add(r, nd, &r)) return 0;
        return r;
    }
    return s->world > 1 ? clasp_infonce_dist_work_floats(s->n, s->N)
                        : clasp_infonce_work_floats(s->N);
}

static clasp_status hardneg_batch_(const clasp_loss_batch *in, clasp_loss_grads *out,
                                   float log_scale, float beta, float tau_plus) {
    if (in->groups)
        return clasp_set_error(CLASP_ERR_ARG, "--hard-negatives takes one positive per row: not "
                                              "with group ids (--multi-positive)");
    const bool one = in->world <= 1;
    float *ta = in->work + in->n * in->N, *tb = ta + in->N * in->D;
    CLASP_TRY(clasp_infonce_hardneg(&out->loss, out->da, out->db, one ? ta : out->da_all,
                                    one ? tb : out->db_all, &out->dscalars[0], in->a, in->b,
                                    in->a_all, in->b_all, log_scale, beta, tau_plus, in->n,
                                    in->offset, in->N, in->D, in->work));
    out->wrote = CLASP_LOSS_WROTE_A | CLASP_LOSS_WROTE_B;
    if (!one) {
        out->wrote |= CLASP_LOSS_WROTE_A_ALL | CLASP_LOSS_WROTE_B_ALL;
        return CLASP_OK;
    }
    for (size_t i = 0; i < in->N * in->D; i++) out->da[i] += ta[i], out->db[i] += tb[i];
    return CLASP_OK;
}

clasp_status clasp_infonce_batch(const clasp_loss_batch *in, clasp_loss_grads *out) {
    bool learnable;
    const float s = clasp_loss_log_scale(in, &learnable);
    float beta, tau_plus;
    clasp_status st;
    if (clasp__loss_hardneg_options(in->cfg, &beta, &tau_plus)) {
        st = hardneg_batch_(in, out, s, beta, tau_plus);
    } else if (in->world <= 1) {
        st = clasp_infonce(&out->loss, out->da, out->db, &out->dscalars[0], in->a, in->b, s,
                           in->groups, in->N, in->D, in->work);
        out->wrote = CLASP_LOSS_WROTE_A | CLASP_LOSS_WROTE_B;
    } else {
        st = clasp_infonce_dist(&out->loss, out->da, out->db, out->da_all, out->db_all,
                                &out->dscalars[0], in->a, in->b, in->a_all, in->b_all, s,
                                in->groups, in->n, in->offset, in->N, in->D, in->work);
        out->wrote = CLASP_LOSS_WROTE_A | CLASP_LOSS_WROTE_B | CLASP_LOSS_WROTE_A_ALL |
                     CLASP_LOSS_WROTE_B_ALL;
    }
    if (!learnable) out->dscalars[0] = 0.0f; /* a fixed temperature: the logit scale stays */
    return st;
}
