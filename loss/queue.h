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
    float *gbits; /* (K) group id of each slot: an int32 stored bit for bit in a float (so that
                     checkpoints carry it as a float tensor; read with clasp_queue_group);
                     CLASP_QUEUE_NO_GROUP when the key was enqueued without one */
    size_t K, D;  /* capacity, feature size */
    size_t head;  /* next slot to write */
    size_t count; /* filled slots (<= K) */
} clasp_queue;

#define CLASP_QUEUE_NO_GROUP (-1)

/* Allocates an empty queue of K keys of D floats. The caller calls clasp_queue_free.
 * Returns CLASP_OK, CLASP_ERR_ARG (K or D == 0), CLASP_ERR_OVERFLOW or CLASP_ERR_NOMEM. */
clasp_status clasp_queue_init(clasp_queue *q, size_t K, size_t D);
/* Releases the storage; q may be NULL or zeroed. */
void clasp_queue_free(clasp_queue *q);
/* Appends n keys (n, D), overwriting the oldest ones when full (only the last K are kept
 * if n > K). Returns CLASP_OK or CLASP_ERR_ARG. */
clasp_status clasp_queue_enqueue(clasp_queue *q, const float *keys, size_t n);
/* The same, storing groups[i] (>= 0, or NULL: CLASP_QUEUE_NO_GROUP) with key i. */
clasp_status clasp_queue_enqueue_groups(clasp_queue *q, const float *keys, const int *groups,
                                        size_t n);
/* Group id of slot s (CLASP_QUEUE_NO_GROUP when none). */
int clasp_queue_group(const clasp_queue *q, size_t s);

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

/* Symmetric InfoNCE against momentum keys and two queues: cross-modal MoCo, i.e. CLIP whose
 * negatives go beyond the batch (ALBEF's image-text contrastive loss with queues; with one tower
 * and two views it is MoCo v3's symmetrised loss plus a queue). Queries are the online
 * encodings A, B of this rank's rows offset..offset+n-1 of the global batch; keys are the
 * momentum encodings KA_all, KB_all of all N rows; queue_a holds past a-side keys, queue_b past
 * b-side keys. With s = exp(log_scale), for a global row i:
 *     a->b: logits_i = s [ A_i . KB_all_j (j < N) ; A_i . queue_b_t (t < count_b) ]
 *     b->a: logits_i = s [ B_i . KA_all_j (j < N) ; B_i . queue_a_t (t < count_a) ]
 * targets y_ij = 1/|group(i)| over in-batch j with groups[j] == groups[i] (j == i without
 * groups; as clasp_infonce's multi-positive form), and queue slots whose group equals groups[i]
 * are DROPPED from the softmax: a queued key of the same caption is a false negative (fmnist's
 * ten captions), and a stale one, so it is neither pushed away nor a target. Slots enqueued
 * without a group, or no groups given, mask nothing.
 *     loss = (sum over the n local rows of both directions' CE) / (2 N)
 * so the ranks' parts sum to the global mean. Keys and queues are constants: only dA, dB (n, D)
 * are written (both may be NULL), and *dlog_scale (may be NULL). groups_all: (N) or NULL.
 * work: clasp_moco_sym_work_floats(n, N, max(queue_a->K, queue_b->K)).
 * Returns CLASP_OK or CLASP_ERR_ARG (sizes, NULLs, D mismatch). */
size_t clasp_moco_sym_work_floats(size_t n, size_t N, size_t K);
clasp_status clasp_moco_sym(float *loss, float *dA, float *dB, float *dlog_scale, const float *A,
                            const float *B, const float *KA_all, const float *KB_all,
                            const clasp_queue *queue_a, const clasp_queue *queue_b, float log_scale,
                            const int *groups_all, size_t n, size_t offset, size_t N, size_t D,
                            float *work);

/* Momentum (EMA) update over a parameter buffer: theta_k = m theta_k + (1 - m) theta_q, for
 * n floats. MoCo uses m = 0.999. */
void clasp_momentum_update(float *theta_k, const float *theta_q, size_t n, float m);

#endif
