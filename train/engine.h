/* engine.h: the training and embedding compute engine: in-process data parallelism over
 * model replicas, the contrastive loss on the whole batch, and exact gradient accumulation.
 *
 * A batch of B pairs is cut into `chunks` equal row ranges; replica r (its own activation
 * arenas, a copy of the parameters) runs chunk r's forward and backward, so every layer runs
 * on all cores without a thread pool inside the layers, and OpenBLAS runs single-threaded in
 * each worker (one threading layer, no competing pools: ../shared/bench/README.md section 7).
 * The loss sees the features of the whole batch (all negatives). Chunk gradients are summed
 * into replica 0 in chunk order, so results depend on `chunks` but NOT on the thread count:
 * 1 thread running 2 chunks gives the same bits as 2 threads.
 *
 * Gradient accumulation (OpenCLIP accum_freq): with accum_steps K, the batch is K micro-
 * batches; all are first embedded (activations discarded), the loss and its feature gradients
 * are computed on all B rows at once, then each micro-batch is re-run with activations and
 * back-propagated with its rows of the feature gradient. The result is the gradient of the
 * full-batch loss, with activation memory for B/K rows only.
 *
 * Across processes (dist.h, opt.world > 1): each rank runs this engine on its own B local
 * rows (the global batch is N = B * world rows, rank r holding rows r*B .. r*B+B-1). The
 * normalised features are all-gathered, the rank computes its part of the loss on its rows
 * against all N (the loss's registry entry: loss/registry.h), the gradients through the
 * gathered rows are reduce-scattered (summed over ranks, each rank receiving its own rows) and
 * added to its local-row gradients, the towers back-propagate, and the parameter gradients are
 * all-reduced (summed: the loss parts are already normalised by the global N, so the sum is the
 * gradient of the global-batch loss, the same as one process with N rows).
 *
 * Pairing: the loss pairs any two towers of the model (image-text, audio-text, audio-image...),
 * chosen per batch (clasp_engine_grads_pair); every tower's activation arena exists in every
 * replica, so consecutive steps may pair different towers (a run mixing sources, ImageBind-
 * style: the text tower shared by image-text and audio-text batches). A frozen tower
 * (opt.frozen[t]) still runs its forward but its backward is skipped (no gradient: it stays
 * zero, and the optimiser's segments of that tower are frozen too: optim.h).
 *
 * Momentum keys (a loss needing CLASP_LOSS_NEEDS_MOMENTUM_KEYS, e.g. infonce --queue): in the
 * first forward pass each replica also encodes both sides with its momentum copy (key_models,
 * its own arenas; no backward) into ka, kb, all-gathered into ka_all, kb_all for the loss; the
 * online features and both towers' backward are as without them.
 */
#ifndef CLASP_TRAIN_ENGINE_H
#define CLASP_TRAIN_ENGINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/compute.h"
#include "core/status.h"
#include "encoders/model.h"
#include "loss/registry.h"

#define CLASP_ENGINE_MAX_CHUNKS 16
/* Activation memory of an inference engine's replicas together, per tower (opt.inference)
 * in fp32: each replica's arena is sized for the most rows that fit in its share, and larger
 * chunks run in pieces of that many rows (fp32 features do not depend on the piece size). In
 * bf16 they do (oneDNN picks its kernels by the product's size), so bf16 keeps whole chunks:
 * the same bits as the training engine's embedding. Either way an inference model's arena
 * holds one transformer block's activations, not every block's (encoders/towers.c). */
#define CLASP_ENGINE_INFER_ARENA_BYTES ((size_t)128 << 20)

typedef struct clasp_engine_options {
    int batch_size;              /* B: rows per optimiser step */
    int accum_steps;             /* K: micro-batches per step (B % K == 0) */
    int chunks;                  /* replicas per micro-batch ((B/K) % chunks == 0); 0 = threads */
    int threads;                 /* compute threads (<= chunks) */
    clasp_loss_config loss;      /* the loss and its options (loss/registry.h); zeroed:
                                    infonce */
    bool multi_positive;         /* pairs sharing a group id are positives */
    int rank, world;             /* data-parallel position (dist.h); 0 and 0 mean rank 0 of 1 */
    bool frozen[CLASP_N_TOWERS]; /* towers whose backward is skipped (locked-tower tuning);
                                    frozen[CLASP_TOWER_SHARED] freezes the logit scale/bias */
    clasp_precision precision;   /* of every matrix product the engine runs (core/compute.h):
                                    towers forward and backward, and the loss */
    bool inference;              /* embedding only (clasp_engine_embed; the grads calls are
                                    CLASP_ERR_STATE): replicas without gradient buffers, all
                                    reading models[0].params (one read-only copy), each tower's
                                    activation arena allocated on its first embedding */
} clasp_engine_options;

typedef struct clasp_step_stats {
    float loss;
    float dlog_scale;
    float feat_std_a, feat_std_b; /* mean over dims of the per-dimension std (collapse) */
    float alignment, uniformity;  /* Wang & Isola, on the batch */
    float pos_sim, hardneg_sim;   /* mean positive and hardest-negative cosine */
} clasp_step_stats;

struct clasp__engine_pool;

typedef struct clasp_engine {
    clasp_engine_options opt;
    clasp_model *models; /* (chunks) replicas; models[0] owns the master params and grads */
    int n_rep;
    int micro; /* rows per micro-batch B/K */
    int crows; /* rows per chunk micro/chunks */
    int D;
    int N;                      /* global rows per step: batch_size * world */
    clasp_tower ta, tb;         /* the two towers paired by the last step's loss (default: image
                                   and text when the model has both, else its first two towers) */
    float *fa, *fb;             /* (B, D) raw features */
    float *za, *zb;             /* (B, D) normalised */
    float *na, *nb;             /* (B) norms */
    float *dza, *dzb;           /* (B, D) loss gradients w.r.t. normalised features */
    float *dfa, *dfb;           /* (B, D) gradients w.r.t. raw features */
    float *za_all, *zb_all;     /* (N, D) gathered normalised features (= za, zb with one rank) */
    float *dza_all, *dzb_all;   /* (N, D) loss gradients through the gathered rows (world > 1) */
    float *ka, *kb;             /* (B, D) normalised momentum-copy keys of both sides (momentum
                                   keys only, else NULL) */
    float *kn;                  /* (B) their norms (scratch) */
    float *ka_all, *kb_all;     /* (N, D) gathered keys (= ka, kb with one rank) */
    const clasp_loss_def *loss; /* the registry entry every step calls (loss/registry.h) */
    void *loss_state;           /* its state (NULL for stateless losses) */
    ptrdiff_t scalar_offset[CLASP_LOSS_MAX_SCALARS]; /* params offsets of loss->scalars */
    clasp_model *key_models; /* (n_rep) momentum copies that encode the keys of both sides when
                                the loss needs CLASP_LOSS_NEEDS_MOMENTUM_KEYS, else NULL;
                                key_models[0].params holds the EMA parameters */
    float momentum;          /* EMA coefficient m (the loss's "momentum" option, else 0.999) */
    float momentum_ready;    /* 1 once the copy holds parameters (a checkpoint tensor) */
    float *loss_work;
    int *groups; /* (N) */
    struct clasp__engine_pool *pool;
} clasp_engine;

/* Builds `chunks` replicas of the model (params left to the caller: clasp_engine_sync_params
 * after writing models[0].params) and the loss's work memory and state. The model needs at
 * least two of image, text and audio towers, and the learnable scalars the loss uses
 * (CLASP_ERR_CONFIG otherwise). Sets OpenBLAS to one thread per caller thread. */
clasp_status clasp_engine_init(clasp_engine *e, const clasp_model_config *cfg,
                               const clasp_engine_options *opt);
void clasp_engine_free(clasp_engine *e);

/* Copies models[0].params to every other replica (after an optimiser step or a load; nothing to
 * copy in inference mode, where the replicas share them). With
 * momentum keys, the first call (or a step before any) also starts the momentum copy as a copy
 * of the parameters, unless a checkpoint restored it (clasp_engine_loss_tensors). */
void clasp_engine_sync_params(clasp_engine *e);

/* Momentum keys (loss/registry.h CLASP_LOSS_NEEDS_MOMENTUM_KEYS): theta_k = m theta_k +
 * (1 - m) theta over the whole parameter block, after each optimiser step. No-op for losses
 * without momentum keys. */
void clasp_engine_momentum_update(clasp_engine *e);

/* One step's gradients: zeroes models[0].grads, runs forward, loss and backward over the
 * batch (a: images (B,C,H,W) float; b: tokens (B,T) int32; groups (B) or NULL) and leaves
 * the summed gradient (including logit_scale / logit_bias) in models[0].grads.
 * B must equal opt.batch_size (this rank's rows). groups: (B * world) ids of the GLOBAL batch in
 * rank order (every rank passes the same array), or NULL. With world > 1 this is collective:
 * every rank calls it once per step; stats->loss and the gradients are global (equal on every
 * rank). */
clasp_status clasp_engine_grads(clasp_engine *e, const float *images, const int32_t *tokens,
                                const int32_t *groups, int B, clasp_step_stats *stats);

/* The same for any pair of the model's towers: a is tower ta's input (B rows in the layout of
 * clasp_model_encode: pixels float, tokens int32 or log-mel float), b is tower tb's. The loss
 * treats ta as the "image" side (rows) and tb as the "text" side. Both present and ta != tb,
 * except for a loss with CLASP_LOSS_NEEDS_TWO_VIEWS (loss/registry.h): ta == tb then pairs two
 * views of one tower (a, b: two augmentations of the same samples), each view's forward
 * running again right before its backward since both share the tower's activations.
 * CLASP_ERR_ARG otherwise. Sets e->ta, e->tb (diag then describes this pair). */
clasp_status clasp_engine_grads_pair(clasp_engine *e, clasp_tower ta, const void *a, clasp_tower tb,
                                     const void *b, const int32_t *groups, int B,
                                     clasp_step_stats *stats);

/* Parses "image-text", "audio-text", "audio-image", ... into two towers (image, text, audio),
 * distinct except "image-image" and "audio-audio" (two augmented views of one tower; text has
 * no augmentation, so "text-text" is refused). CLASP_ERR_ARG naming the string otherwise. */
clasp_status clasp_pair_parse(const char *s, clasp_tower *ta, clasp_tower *tb);

/* Diagnostics of the last step's normalised features (clasp_engine_grads fills only loss and
 * dlog_scale): per-dimension std, alignment, uniformity (of the image side), positive and
 * hardest-negative similarity (loss/diag.h), on the global batch. O(N^2 D): call it on
 * logging steps. */
clasp_status clasp_engine_diag(clasp_engine *e, clasp_step_stats *stats);

/* Embeds n inputs of one tower (image, text or audio) with the current parameters (no
 * gradients), writing L2-normalised features (n, D). Any n >= 1 (processed in pieces of at
 * most B/K rows). In inference mode the first call for a tower sizes its arenas. */
clasp_status clasp_engine_embed(clasp_engine *e, clasp_tower t, const void *input, int n,
                                float *out);

/* The loss state's checkpoint tensors: the entry's (loss/registry.h state_tensors), then with
 * momentum keys "momentum.params" (n_floats) and "momentum.ready" (1). Up to max entries written
 * to out, pointing into the engine; returns the count (0 for stateless losses). Restoring is
 * copying into them, then clasp_engine_sync_params. */
int clasp_engine_loss_tensors(clasp_engine *e, clasp_loss_tensor *out, int max);

#endif
