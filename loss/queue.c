/* queue.c: MoCo FIFO key queue, InfoNCE against the queue, and the momentum update. */
#include "core/compute.h"
#include "loss/queue.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/sizes.h"
#include "loss/internal.h"

void clasp_queue_free(clasp_queue *q) {
    if (!q) return;
    free(q->keys);
    free(q->gbits);
    memset(q, 0, sizeof *q);
}

clasp_status clasp_queue_init(clasp_queue *q, size_t K, size_t D) {
    if (!q || K == 0 || D == 0)
        return clasp_set_error(CLASP_ERR_ARG, "queue: bad arguments (K=%zu, D=%zu)", K, D);
    memset(q, 0, sizeof *q);
    size_t nb;
    if (!clasp_size_mul3(K, D, sizeof(float), &nb))
        return clasp_set_error(CLASP_ERR_OVERFLOW, "queue: K=%zu x D=%zu too large", K, D);
    q->keys = calloc(1, nb);
    q->gbits = malloc(K * sizeof(float));
    if (!q->keys || !q->gbits) {
        clasp_queue_free(q);
        return clasp_set_error(CLASP_ERR_NOMEM, "queue: cannot allocate %zu bytes", nb);
    }
    const int32_t none = CLASP_QUEUE_NO_GROUP;
    for (size_t s = 0; s < K; s++) memcpy(&q->gbits[s], &none, sizeof none);
    q->K = K;
    q->D = D;
    return CLASP_OK;
}

int clasp_queue_group(const clasp_queue *q, size_t s) {
    int32_t g;
    memcpy(&g, &q->gbits[s], sizeof g);
    return (int)g;
}

clasp_status clasp_queue_enqueue(clasp_queue *q, const float *keys, size_t n) {
    return clasp_queue_enqueue_groups(q, keys, NULL, n);
}

clasp_status clasp_queue_enqueue_groups(clasp_queue *q, const float *keys, const int *groups,
                                        size_t n) {
    if (!q || !q->keys || !q->gbits || (!keys && n))
        return clasp_set_error(CLASP_ERR_ARG, "queue_enqueue: bad arguments");
    if (n > q->K) { /* only the newest K survive */
        keys += (n - q->K) * q->D;
        if (groups) groups += n - q->K;
        n = q->K;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(q->keys + q->head * q->D, keys + i * q->D, q->D * sizeof *keys);
        int32_t g = groups && groups[i] >= 0 ? (int32_t)groups[i] : CLASP_QUEUE_NO_GROUP;
        memcpy(&q->gbits[q->head], &g, sizeof g);
        q->head = (q->head + 1) % q->K;
    }
    q->count = q->count + n > q->K ? q->K : q->count + n;
    return CLASP_OK;
}

size_t clasp_moco_work_floats(size_t n, size_t K) {
    size_t r;
    if (!clasp_size_add(K, 1, &r) || !clasp_size_mul(n, r, &r)) return 0;
    return r;
}

clasp_status clasp_moco_infonce(float *loss, float *dq, float *dk, float *dtemp, const float *q,
                                const float *k, const clasp_queue *queue, float temperature,
                                size_t n, size_t D, float *work) {
    if (!loss || !q || !k || !queue || !queue->keys || !work || n == 0 || D != queue->D ||
        !(temperature > 0.0f) || !isfinite(temperature))
        return clasp_set_error(CLASP_ERR_ARG, "moco_infonce: bad arguments (n=%zu, D=%zu, tau=%g)",
                               n, D, (double)temperature);
    if (n > (size_t)INT32_MAX || queue->K >= (size_t)INT32_MAX || D > (size_t)INT32_MAX)
        return clasp_set_error(CLASP_ERR_OVERFLOW, "moco_infonce: sizes too large");
    const size_t c = queue->count, ld = c + 1;
    const int in = (int)n, ic = (int)c, iD = (int)D, ild = (int)ld;
    const float inv_t = 1.0f / temperature;
    float *L = work; /* (n, c + 1): column 0 positive, then the queue */
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        for (size_t j = 0; j < D; j++) s += (double)q[i * D + j] * (double)k[i * D + j];
        L[i * ld] = (float)s * inv_t;
    }
    if (c) clasp_gemm(0, 1, in, ic, iD, inv_t, q, iD, queue->keys, iD, 0.0f, L + 1, ild);
    const float w = (float)(1.0 / (double)n);
    double lsum = 0.0, dts = 0.0;
    for (size_t i = 0; i < n; i++) {
        float *x = L + i * ld, m = -INFINITY;
        for (size_t j = 0; j < ld; j++) m = x[j] > m ? x[j] : m;
        double s = 0.0;
        for (size_t j = 0; j < ld; j++) s += (double)expf(x[j] - m);
        float lse = (float)log(s);
        lsum += (double)lse - (double)(x[0] - m);
        for (size_t j = 0; j < ld; j++) {
            float g = (expf((x[j] - m) - lse) - (j == 0 ? 1.0f : 0.0f)) * w;
            dts += (double)g * (double)x[j];
            x[j] = g;
        }
    }
    *loss = (float)(lsum * (double)w);
    if (dtemp) *dtemp = (float)(-dts / (double)temperature);
    if (dq) {
        if (c)
            clasp_gemm(0, 0, in, iD, ic, inv_t, L + 1, ild, queue->keys, iD, 0.0f, dq, iD);
        else
            memset(dq, 0, n * D * sizeof *dq);
        for (size_t i = 0; i < n; i++) {
            float g0 = L[i * ld] * inv_t;
            for (size_t j = 0; j < D; j++) dq[i * D + j] += g0 * k[i * D + j];
        }
    }
    if (dk)
        for (size_t i = 0; i < n; i++) {
            float g0 = L[i * ld] * inv_t;
            for (size_t j = 0; j < D; j++) dk[i * D + j] = g0 * q[i * D + j];
        }
    return CLASP_OK;
}

size_t clasp_moco_sym_work_floats(size_t n, size_t N, size_t K) {
    size_t r;
    if (!clasp_size_add(N, K, &r) || !clasp_size_mul(n, r, &r) || !clasp_size_add(r, N, &r))
        return 0;
    return r;
}

/* One direction of clasp_moco_sym: local queries Q (n, D) against keys K_all (N, D) and the
 * queue qu. L: n x (N + qu->count) scratch, cnt: group sizes (N). Writes dQ (may be NULL). */
static void moco_direction_(double *loss_sum, double *ds_sum, float *dQ, const float *Q,
                            const float *K_all, const clasp_queue *qu, float scale,
                            const int *groups, const float *cnt, size_t n, size_t offset, size_t N,
                            size_t D, float *L) {
    const size_t c = qu->count, ld = N + c;
    const int in = (int)n, iN = (int)N, ic = (int)c, iD = (int)D, ild = (int)ld;
    clasp_gemm(0, 1, in, iN, iD, scale, Q, iD, K_all, iD, 0.0f, L, ild);
    if (c) clasp_gemm(0, 1, in, ic, iD, scale, Q, iD, qu->keys, iD, 0.0f, L + N, ild);
    const float gs = (float)(0.5 / (double)N);
    for (size_t i = 0; i < n; i++) {
        const size_t gi = offset + i;
        float *x = L + i * ld;
        /* dropped queue slots: the query's own group */
        for (size_t t = 0; groups && t < c; t++)
            if (clasp_queue_group(qu, t) == groups[gi]) x[N + t] = -INFINITY;
        float m = -INFINITY;
        for (size_t j = 0; j < ld; j++) m = x[j] > m ? x[j] : m;
        double s = 0.0;
        for (size_t j = 0; j < ld; j++) s += (double)expf(x[j] - m);
        const float lse = (float)log(s);
        *loss_sum += (double)lse;
        for (size_t j = 0; j < ld; j++) {
            float l = x[j];
            if (l == -INFINITY) { /* dropped: no term, no gradient */
                x[j] = 0.0f;
                continue;
            }
            float p = expf((l - m) - lse), y = 0.0f;
            if (j < N && (groups ? groups[gi] == groups[j] : gi == j)) {
                y = 1.0f / cnt[gi];
                *loss_sum -= (double)y * (double)(l - m);
            }
            float g = (p - y) * gs;
            *ds_sum += (double)g * (double)l;
            x[j] = g;
        }
    }
    if (!dQ) return;
    clasp_gemm(0, 0, in, iD, iN, scale, L, ild, K_all, iD, 0.0f, dQ, iD);
    if (c) clasp_gemm(0, 0, in, iD, ic, scale, L + N, ild, qu->keys, iD, 1.0f, dQ, iD);
}

clasp_status clasp_moco_sym(float *loss, float *dA, float *dB, float *dlog_scale, const float *A,
                            const float *B, const float *KA_all, const float *KB_all,
                            const clasp_queue *queue_a, const clasp_queue *queue_b, float log_scale,
                            const int *groups_all, size_t n, size_t offset, size_t N, size_t D,
                            float *work) {
    if (!loss || !A || !B || !KA_all || !KB_all || !queue_a || !queue_b || !queue_a->keys ||
        !queue_b->keys || !work || n == 0 || D == 0 || offset > N || n > N - offset ||
        queue_a->D != D || queue_b->D != D || !isfinite(log_scale))
        return clasp_set_error(CLASP_ERR_ARG,
                               "moco_sym: bad arguments (n=%zu, offset=%zu, N=%zu, D=%zu)", n,
                               offset, N, D);
    const size_t K = queue_a->K > queue_b->K ? queue_a->K : queue_b->K;
    if (clasp_moco_sym_work_floats(n, N, K) == 0 || N + K > (size_t)INT32_MAX ||
        D > (size_t)INT32_MAX)
        return clasp_set_error(CLASP_ERR_OVERFLOW, "moco_sym: N=%zu K=%zu D=%zu too large", N, K,
                               D);
    float *cnt = work, *L = work + N;
    clasp__loss_group_counts(cnt, groups_all, N);
    const float scale = expf(log_scale);
    double loss_sum = 0.0, ds = 0.0;
    moco_direction_(&loss_sum, &ds, dA, A, KB_all, queue_b, scale, groups_all, cnt, n, offset, N, D,
                    L);
    moco_direction_(&loss_sum, &ds, dB, B, KA_all, queue_a, scale, groups_all, cnt, n, offset, N, D,
                    L);
    *loss = (float)(loss_sum * 0.5 / (double)N);
    if (dlog_scale) *dlog_scale = (float)ds;
    return CLASP_OK;
}

void clasp_momentum_update(float *theta_k, const float *theta_q, size_t n, float m) {
    const float om = 1.0f - m;
    for (size_t i = 0; i < n; i++) theta_k[i] = m * theta_k[i] + om * theta_q[i];
}
