/* queue.c: MoCo FIFO key queue, InfoNCE against the queue, and the momentum update. */
#include "core/compute.h"
#include "loss/queue.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/sizes.h"

void clasp_queue_free(clasp_queue *q) {
    if (!q) return;
    free(q->keys);
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
    if (!q->keys) return clasp_set_error(CLASP_ERR_NOMEM, "queue: cannot allocate %zu bytes", nb);
    q->K = K;
    q->D = D;
    return CLASP_OK;
}

clasp_status clasp_queue_enqueue(clasp_queue *q, const float *keys, size_t n) {
    if (!q || !q->keys || (!keys && n))
        return clasp_set_error(CLASP_ERR_ARG, "queue_enqueue: bad arguments");
    if (n > q->K) { /* only the newest K survive */
        keys += (n - q->K) * q->D;
        n = q->K;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(q->keys + q->head * q->D, keys + i * q->D, q->D * sizeof *keys);
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

void clasp_momentum_update(float *theta_k, const float *theta_q, size_t n, float m) {
    const float om = 1.0f - m;
    for (size_t i = 0; i < n; i++) theta_k[i] = m * theta_k[i] + om * theta_q[i];
}
