/* queue.h: MoCo negative queue (memory bank) and momentum update (He et al. 2020).
 * ref: facebookresearch/moco builder.py (_dequeue_and_enqueue, _momentum_update_key_encoder).
 *
 * The queue is a FIFO ring of K past key features (K x D). The loss for queries q_i and their
 * positive keys k_i uses the stored keys as negatives:
 *     logits_i = [ q_i . k_i, q_i . queue_1, ..., q_i . queue_c ] / tau   (c = filled slots)
 *     loss     = mean_i CE(logits_i, 0)
 * The queue is a constant (no gradient). Call clasp_queue_enqueue(keys) after the step. With
 * an empty queue the loss is 0. Gradients are written.
 *
 *     clasp_queue q;
 *     clasp_queue_init(&q, 4096, 128);           // allocates once
 *     ... per step: clasp_moco_infonce(...); clasp_queue_enqueue(&q, k, n);
 *     clasp_queue_free(&q);
 */
#ifndef CLASP_LOSS_QUEUE_H
#define CLASP_LOSS_QUEUE_H

#include <stddef.h>

#include "core/status.h"

typedef struct clasp_queue {
    float *keys;  /* (K, D) ring storage; slot s holds a key when s < count */
    size_t K, D;  /* capacity, feature size */
    size_t head;  /* next slot to write */
    size_t count; /* filled slots (<= K) */
} clasp_queue;

/* Allocates an empty queue of K keys of D floats. The caller calls clasp_queue_free.
 * Returns CLASP_OK, CLASP_ERR_ARG (K or D == 0), CLASP_ERR_OVERFLOW or CLASP_ERR_NOMEM. */
clasp_status clasp_queue_init(clasp_queue *q, size_t K, size_t D);
/* Releases the storage; q may be NULL or zeroed. */
void clasp_queue_free(clasp_queue *q);
/* Appends n keys (n, D), overwriting the oldest ones when full (only the last K are kept
 * if n > K). Returns CLASP_OK or CLASP_ERR_ARG. */
clasp_status clasp_queue_enqueue(clasp_queue *q, const float *keys, size_t n);

/* Scratch floats for clasp_moco_infonce: n * (K + 1). 0 on overflow. */
size_t clasp_moco_work_floats(size_t n, size_t K);

/* q (n, D) queries, k (n, D) positive keys (both L2-normalised), queue (read only),
 * temperature tau > 0 (MoCo: 0.07).
 * Outputs (written; all but loss may be NULL): *loss, dq (n, D), dk (n, D), *dtemp.
 * work: clasp_moco_work_floats(n, queue->K) floats.
 * Returns CLASP_OK or CLASP_ERR_ARG (n == 0, D mismatch, tau <= 0, NULLs). */
clasp_status clasp_moco_infonce(float *loss, float *dq, float *dk, float *dtemp, const float *q,
                                const float *k, const clasp_queue *queue, float temperature,
                                size_t n, size_t D, float *work);

/* Momentum (EMA) update over a parameter buffer: theta_k = m theta_k + (1 - m) theta_q, for
 * n floats. MoCo uses m = 0.999. */
void clasp_momentum_update(float *theta_k, const float *theta_q, size_t n, float m);

#endif
