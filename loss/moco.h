/* moco.h: InfoNCE with momentum keys and key queues (MoCo), as the queue options of the
 * registry's infonce entry: `clasp train --loss infonce --queue N --momentum M`.
 *
 * Why options of infonce and not an entry of its own: the loss is InfoNCE with more negatives
 * (clasp_moco_sym, loss/queue.h); --queue 0 is exactly today's InfoNCE (no state, no momentum
 * copy, the same bits), so "batch 64 vs batch 64 + queue 4096" compares one loss with one
 * option changed, and --momentum has no meaning without a queue.
 *
 * With --queue K > 0 the entry needs momentum keys (clasp_moco_needs; it also accepts one tower
 * paired with itself, two views of each sample: MoCo's unimodal form): the engine encodes both
 * sides with the online towers (queries, with gradient) and with the momentum copy (keys, no
 * gradient), all-gathers the keys, and calls clasp_moco_infonce_batch, which computes this
 * rank's part of clasp_moco_sym, then enqueues the N gathered keys of each side with their
 * group ids into that side's queue (same keys and order on every rank: the queues agree).
 * State tensors (checkpoints): "loss.queue_a", "loss.queue_b" (K, D), "loss.queue_a_groups",
 * "loss.queue_b_groups" (K: int32 ids bit for bit) and "loss.queue_pos" (head and count of
 * each queue). Refused at setup (CLASP_ERR_ARG naming the flag): a queue smaller than the
 * global batch, a fractional queue, --momentum without --queue.
 */
#ifndef CLASP_LOSS_MOCO_H
#define CLASP_LOSS_MOCO_H

#include "loss/registry.h"

/* The largest momentum below 1 (the --momentum range is [0, 1)). */
#define CLASP_MOCO_MOMENTUM_MAX 0x1.fffffffffffffp-1

/* The queue options against the global batch N: CLASP_ERR_ARG naming the flag for a queue
 * smaller than N (each step enqueues N keys) or fractional, and --momentum without --queue. */
clasp_status clasp_moco_check(const clasp_loss_config *cfg, size_t N);

unsigned clasp_moco_needs(const clasp_loss_config *cfg);
size_t clasp_moco_infonce_work_floats(const clasp_loss_setup *s);
clasp_status clasp_moco_infonce_batch(const clasp_loss_batch *in, clasp_loss_grads *out);
clasp_status clasp_moco_state_init(void **state, const clasp_loss_setup *s);
void clasp_moco_state_free(void *state);
int clasp_moco_state_tensors(void *state, clasp_loss_tensor *out, int max);

#endif
