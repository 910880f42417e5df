/* triplet.c: triplet loss with batch-all, batch-hard and semi-hard mining. */
#include "core/compute.h"
#include "loss/triplet.h"

#include <math.h>
#include <string.h>

#include "core/sizes.h"
#include "loss/internal.h"
#include "loss/registry.h"

size_t clasp_triplet_work_floats(size_t M) {
    size_t mm, r;
    if (!clasp_size_mul(M, M, &mm) || !clasp_size_add(mm, mm, &r) || !clasp_size_add(r, M, &r))
        return 0;
    return r;
}

static float distance(const float *a, const float *b, size_t D, clasp_triplet_distance dist) {
    double s = 0.0;
    if (dist == CLASP_TRIPLET_DISTANCE_COSINE) {
        for (size_t k = 0; k < D; k++) s += (double)a[k] * (double)b[k];
        return (float)(1.0 - s);
    }
    for (size_t k = 0; k < D; k++) {
        double d = (double)a[k] - (double)b[k];
        s += d * d;
    }
    return (float)(dist == CLASP_TRIPLET_DISTANCE_EUCLIDEAN ? sqrt(s) : s);
}

/* One hinge term with weight w on dloss/dd: C[a,p] += w, C[a,n] -= w if h > 0. */
static double add_term(float *C, const float *Dm, size_t M, size_t a, size_t p, size_t n,
                       float margin, float w, int *active) {
    double h = (double)Dm[a * M + p] - (double)Dm[a * M + n] + (double)margin;
    *active = h > 0.0;
    if (h <= 0.0) return 0.0;
    if (w != 0.0f) {
        C[a * M + p] += w;
        C[a * M + n] -= w;
    }
    return h;
}

clasp_status clasp_triplet(float *loss, float *dX, size_t *n_terms, const float *X,
                           const int *labels, float margin, clasp_triplet_distance dist,
                           clasp_triplet_mining mining, size_t M, size_t D, float *work) {
    if (!loss || !X || !labels || !work || M == 0 || D == 0 || !(margin >= 0.0f) ||
        (unsigned)dist > CLASP_TRIPLET_DISTANCE_COSINE ||
        (unsigned)mining > CLASP_TRIPLET_MINING_SEMI_HARD)
        return clasp_set_error(CLASP_ERR_ARG, "triplet: bad arguments (M=%zu, D=%zu, margin=%g)", M,
                               D, (double)margin);
    if (clasp_triplet_work_floats(M) == 0 || M > (size_t)INT32_MAX || D > (size_t)INT32_MAX)
        return clasp_set_error(CLASP_ERR_OVERFLOW, "triplet: M=%zu too large", M);
    float *Dm = work;      /* (M, M) distances */
    float *C = Dm + M * M; /* (M, M) dloss/dd(a, b), then the symmetric weight matrix W */
    float *rs = C + M * M; /* (M) row sums of W */
    for (size_t i = 0; i < M; i++) {
        Dm[i * M + i] = distance(X + i * D, X + i * D, D, dist);
        for (size_t j = i + 1; j < M; j++)
            Dm[i * M + j] = Dm[j * M + i] = distance(X + i * D, X + j * D, D, dist);
    }
    memset(C, 0, M * M * sizeof *C);
    double sum = 0.0;
    size_t terms = 0;
    int act;
    if (mining == CLASP_TRIPLET_MINING_BATCH_ALL) {
        /* First count the active triplets (the divisor), then weight them. */
        for (int pass = 0; pass < 2; pass++) {
            float w = pass && terms ? (float)(1.0 / (double)terms) : 0.0f;
            if (pass == 1) sum = 0.0;
            for (size_t a = 0; a < M; a++)
                for (size_t p = 0; p < M; p++) {
                    if (p == a || labels[p] != labels[a]) continue;
                    for (size_t n = 0; n < M; n++) {
                        if (labels[n] == labels[a]) continue;
                        sum += add_term(C, Dm, M, a, p, n, margin, w, &act);
                        if (pass == 0) terms += (size_t)act;
                    }
                }
            if (terms == 0) break;
        }
    } else {
        /* Hard and semi-hard: choose (a, p, n) tuples, count them, then weight. */
        for (int pass = 0; pass < 2; pass++) {
            float w = pass && terms ? (float)(1.0 / (double)terms) : 0.0f;
            sum = 0.0;
            size_t cnt = 0;
            for (size_t a = 0; a < M; a++) {
                const float *da = Dm + a * M;
                size_t nn = M; /* nearest negative */
                for (size_t n = 0; n < M; n++)
                    if (labels[n] != labels[a] && (nn == M || da[n] < da[nn])) nn = n;
                if (nn == M) continue;
                if (mining == CLASP_TRIPLET_MINING_BATCH_HARD) {
                    size_t fp = M;
                    for (size_t p = 0; p < M; p++)
                        if (p != a && labels[p] == labels[a] && (fp == M || da[p] > da[fp])) fp = p;
                    if (fp == M) continue;
                    sum += add_term(C, Dm, M, a, fp, nn, margin, w, &act);
                    cnt++;
                    continue;
                }
                for (size_t p = 0; p < M; p++) {
                    if (p == a || labels[p] != labels[a]) continue;
                    size_t sn = M;
                    for (size_t n = 0; n < M; n++)
                        if (labels[n] != labels[a] && da[n] > da[p] && da[n] < da[p] + margin &&
                            (sn == M || da[n] < da[sn]))
                            sn = n;
                    if (sn == M) sn = nn;
                    sum += add_term(C, Dm, M, a, p, sn, margin, w, &act);
                    cnt++;
                }
            }
            terms = cnt;
            if (terms == 0) break;
        }
    }
    *loss = terms ? (float)(sum / (double)terms) : 0.0f;
    if (n_terms) *n_terms = terms;
    if (!dX) return CLASP_OK;
    /* d is symmetric: dloss/dd_ab applies to both (a, b) and (b, a). W = C + C^T, scaled by
     * the distance's derivative factor. */
    for (size_t i = 0; i < M; i++) {
        C[i * M + i] = 0.0f;
        for (size_t j = i + 1; j < M; j++) {
            float w = C[i * M + j] + C[j * M + i];
            if (dist == CLASP_TRIPLET_DISTANCE_EUCLIDEAN)
                w = Dm[i * M + j] > 0.0f ? w / Dm[i * M + j] : 0.0f;
            else if (dist == CLASP_TRIPLET_DISTANCE_SQEUCLIDEAN)
                w *= 2.0f;
            C[i * M + j] = C[j * M + i] = w;
        }
    }
    const int iM = (int)M, iD = (int)D;
    if (dist == CLASP_TRIPLET_DISTANCE_COSINE) {
        /* d = 1 - x_a . x_b: dX = -W X */
        clasp_gemm(0, 0, iM, iD, iM, -1.0f, C, iM, X, iD, 0.0f, dX, iD);
        return CLASP_OK;
    }
    /* grad_i = sum_j W_ij (x_i - x_j) = rowsum(W)_i x_i - (W X)_i */
    for (size_t i = 0; i < M; i++) {
        double s = 0.0;
        for (size_t j = 0; j < M; j++) s += (double)C[i * M + j];
        rs[i] = (float)s;
    }
    clasp_gemm(0, 0, iM, iD, iM, -1.0f, C, iM, X, iD, 0.0f, dX, iD);
    for (size_t i = 0; i < M; i++)
        for (size_t k = 0; k < D; k++) dX[i * D + k] += rs[i] * X[i * D + k];
    return CLASP_OK;
}

size_t clasp_triplet_batch_work_floats(const clasp_loss_setup *s) {
    size_t a = clasp__loss_stack_floats(s->N, s->D), b = clasp_triplet_work_floats(2 * s->N), r;
    if (!a || !b || !clasp_size_add(a, b, &r)) return 0;
    return r;
}

clasp_status clasp_triplet_batch(const clasp_loss_batch *in, clasp_loss_grads *out) {
    if (!in->groups)
        return clasp_set_error(CLASP_ERR_ARG, "triplet: needs labels (group ids) on every step");
    const clasp_loss_def *d = clasp_loss_config_def(in->cfg);
    const double margin = clasp_loss_config_get(in->cfg, clasp_loss_option_index(d, "margin"));
    const int mining = (int)clasp_loss_config_get(in->cfg, clasp_loss_option_index(d, "mining"));
    const int dist = (int)clasp_loss_config_get(in->cfg, clasp_loss_option_index(d, "distance"));
    float *Z, *dZ;
    int *labels;
    clasp__loss_stack(in->work, in, &Z, &dZ, &labels);
    float loss = 0;
    CLASP_TRY(clasp_triplet(&loss, dZ, NULL, Z, labels, (float)margin, (clasp_triplet_distance)dist,
                            (clasp_triplet_mining)mining, 2 * in->N, in->D,
                            in->work + clasp__loss_stack_floats(in->N, in->D)));
    clasp__loss_unstack(out, in, dZ, loss, NULL);
    return CLASP_OK;
}
