/* trainer.h: `clasp train`: the training loop around the engine (engine.h), the loader
 * (loader.h), AdamW (optim.h) and checkpoints (checkpoint.h).
 *
 * A run folder (--out RUN) holds config.json (the resolved model config), options.json (the
 * resolved training options and the run folder's "format_version", runstate.h), metrics.jsonl
 * (one JSON object per logged step and per evaluation, metrics.h) and checkpoints/ (the run
 * state, runstate.h). Resume (--resume latest|CKPT) restores parameters, AdamW moments, the
 * step counter and the loader position, so the losses after resume equal bit for bit those of
 * a run that never stopped (same machine, same thread and chunk counts); a run folder or a
 * checkpoint of a newer format version than this clasp reads is refused.
 *
 * Data parallel over MPI (`mpirun -np N clasp train ...`, build with CLASP_MPI=ON; dist.h):
 * --batch-size is the GLOBAL batch B (rows per optimiser step, all negatives of the loss); each
 * rank computes B / N rows (B must be divisible by N, and B / N by chunks x accum steps). The
 * engine all-gathers features and sums gradients (engine.h), so every rank takes the same
 * AdamW step and holds the same parameters (checked by a hash every --check-every steps).
 * Ranks read their own shards (--data-split shards) or each its rows of the one-process stream
 * (--data-split samples: N ranks then equal one process up to fp32 summation order; data.h).
 * Rank 0 alone writes config.json, metrics.jsonl, checkpoints and evaluates; the run folder and
 * the shards must be visible to every rank (a shared filesystem across machines), because
 * every rank reads the checkpoint on resume. A checkpoint holds every rank's loader position
 * ("loaders" in state.json) and the rank count ("world"); resuming with another rank count is
 * refused (the shard split and the positions depend on it). A collective that waits longer than
 * --dist-timeout seconds fails and the CLI aborts the job (MPI_Abort); a rank that dies makes
 * mpirun stop the others. Checkpoints are written atomically, so the last one stays valid.
 *
 * Several sources in one run (ImageBind-style binding through a shared tower): sources[] each
 * name a shard spec, the pair of towers its batches train (image-text, audio-text,
 * audio-image, ...) and a mixing weight. Step s (0-based) draws its source from the counter
 * RNG keyed by (seed, CLASP_TRAIN_RNG_SOURCE, s): u = uniform [0,1) (53 bits), source = the
 * first k with u * sum(w) < w_0 + .. + w_k; that batch comes from source k's own loader and
 * runs the k's pair's loss. So the source sequence is a function of (seed, step, weights)
 * alone, and every source's loader position is in the checkpoint ("sources" in state.json;
 * source 0 also under "loader"/"loaders" as in single-source runs): resume is exact. Without
 * --steps, a run lasts epochs x (sum over sources of full batches per epoch) steps.
 * metrics.jsonl's train lines carry "sources": per source, the steps since the last line and
 * their mean loss.
 *
 * Freezing (freeze = "image,text", also "audio", "shared" for logit_scale/bias): frozen
 * towers get no gradient (their backward is skipped) and no AdamW update (frozen segments).
 * Init (init = EXPORT|CKPT|RUN): a fresh run starts from that model's parameters, matched by
 * name: tensors absent from it keep their fresh init (e.g. a new audio tower); a shared name
 * with another shape is CLASP_ERR_CONFIG naming the tensor and both shapes; a file holding no
 * tensor of this model is CLASP_ERR_CONFIG. Ignored when resuming (the checkpoint has all).
 * Locked-tower tuning: --init an image-text export --freeze image,text and an audio-text
 * source: only the audio tower (and the logit scale) learn.
 * Per-tower optimiser settings (lr_scale = "image=0.1,text=1", tower_wd = "image=0.05"; towers
 * image, text, audio, shared): each tower is an AdamW parameter group (optim.h) whose lr is the
 * scheduled lr x its scale (default 1) and whose weight decay replaces weight_decay on its decayed
 * tensors. An unknown tower, one the model lacks, a value that is not a number >= 0, a tower given
 * twice or a frozen tower is a usage error naming the flag (summary->usage_error, as for
 * --freeze). Like lr and weight_decay they are options of the invocation, recorded in
 * options.json, not in the resume key: --resume takes the values given (the same flags continue
 * bit for bit). A scale of 0 leaves the tower's parameters unchanged bit for bit, as --freeze,
 * but still computes its gradient (which --clip-norm then counts) and moments.
 *
 * Fault injection for tests (only with more than one rank): CLASP_FAULT_INJECT=die:R:S makes
 * rank R kill itself with SIGKILL after step S; hang:R:S makes it stop answering (sleep).
 */
#ifndef CLASP_TRAIN_TRAINER_H
#define CLASP_TRAIN_TRAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "pipeline/data.h"
#include "train/engine.h"

struct clasp_train_publisher; /* prom.h */

#define CLASP_TRAIN_MAX_SOURCES 8
#define CLASP_TRAIN_RNG_SOURCE  0x534F5552u /* RNG purpose of the source draw ("SOUR") */

/* Which rows of a batch are positives of each other beyond each row's own pair (--positives):
 * the group ids handed to the loss (clasp_engine_grads_pair), made from the GLOBAL batch
 * (all ranks' rows, all-gathered) so every rank holds the same groups:
 *   CAPTION: same caption (the loader's group id: the hash of the caption's tokens; the .cls
 *            label for a pairing without text, the sample itself when it has neither);
 *   LABEL:   same .cls label (every row must carry one: a sample without is an error naming
 *            --positives, the source and the key);
 *   BOTH:    same caption OR same label, closed transitively (the groups are the connected
 *            components of the union of the two relations).
 * NONE: no groups (each row's positive is its own pair), except for a loss that needs groups
 * (CLASP_LOSS_NEEDS_GROUPS: SupCon, triplet, margin), which then gets LABEL's. */
typedef enum clasp_positives {
    CLASP_POSITIVES_NONE = 0,
    CLASP_POSITIVES_CAPTION = 1,
    CLASP_POSITIVES_LABEL = 2,
    CLASP_POSITIVES_BOTH = 3
} clasp_positives;

/* The group ids of n rows (a global batch) for positives p: out[i] = the lowest row of row i's
 * group. caption: the loader's group ids (p CAPTION, BOTH); labels: .cls labels (p LABEL,
 * BOTH); the one p does not use may be NULL. NONE: every row its own group. scratch: 3 n
 * int32, scratch64: n uint64. */
void clasp_train_groups(clasp_positives p, const uint64_t *caption, const int64_t *labels, size_t n,
                        int32_t *out, int32_t *scratch, uint64_t *scratch64);

typedef struct clasp_train_source {
    const char *spec; /* shard spec */
    const char *pair; /* "audio-text" etc.; NULL = the model's default (image-text when the model
                         has both, else its two towers). "image-image" / "audio-audio": two
                         independently augmented views of each sample (SimCLR), the loader's
                         views = 2 (loader.h); needs a loss with CLASP_LOSS_NEEDS_TWO_VIEWS,
                         and turns on the default image / audio augmentation when no
                         --image-augment / --audio-augment is given */
    double weight;    /* mixing weight > 0 */
} clasp_train_source;

/* Zero-shot evaluation during and after training. train/ sits below eval/ (eval runs the engine),
 * so the caller supplies the evaluation: cli/cmd_train.c sets clasp_eval_zeroshot_for_train
 * (eval/eval.h). The function embeds the class prompts and the images of `val_spec` with `e`,
 * preprocessed per `pre` (the model config's). */
typedef struct clasp_train_eval_result {
    double top1, top5, mean_recall; /* fractions */
    int64_t n;                      /* images evaluated */
    int n_classes;
    /* retrieval over the validation captions by class (eval/eval.h clasp_eval_retrieval_match
     * CLASS: image -> distinct captions, distinct caption -> images; recall fractions), when
     * the validation samples carry captions and labels; has_retrieval false otherwise */
    bool has_retrieval;
    double i2t_r1, i2t_r5, t2i_r1, t2i_r5;
} clasp_train_eval_result;
typedef clasp_status (*clasp_train_eval_fn)(clasp_engine *e, const clasp_preprocess *pre,
                                            const char *val_spec, const char *classes,
                                            const char *templates, int workers,
                                            clasp_train_eval_result *out);

typedef struct clasp_train_options {
    const char *model_config; /* --model configs/NAME.json */
    const char *train_spec;   /* --train SPEC (one source, default pair; used when
                                 n_sources == 0) */
    int n_sources;            /* --train given several times / with a pair or weight */
    clasp_train_source sources[CLASP_TRAIN_MAX_SOURCES];
    const char *freeze;        /* --freeze image,text,audio,shared (NULL: none) */
    const char *lr_scale;      /* --lr-scale image=0.1,text=1 (NULL: 1 for every tower) */
    const char *tower_wd;      /* --tower-wd image=0.05,... (NULL: weight_decay everywhere) */
    const char *init;          /* --init EXPORT|CKPT|RUN (NULL: fresh init) */
    bool audio_augment;        /* --audio-augment: gain/shift/SpecAugment on audio sources */
    const char *image_augment; /* --image-augment default|FILE.json: image augmentation of
                                  training images (modalities/augment.h fields); NULL = none */
    bool on_error_fail;        /* --on-error fail: a missing/unreadable shard stops the run */
    const char *val_spec;      /* --val SPEC (optional) */
    const char *out_dir;       /* --out RUN */
    const char *resume;        /* --resume latest|CKPT (NULL: fresh run; RUN must not hold one) */
    const char *zeroshot;      /* --zeroshot classes.txt (one class name per line) */
    const char *templates;     /* --templates t.txt (one template per line, "{}" = class) */
    clasp_train_eval_fn zeroshot_fn; /* runs --zeroshot (NULL: no evaluation; see above) */
    int64_t steps;                   /* --steps N (0: from epochs) */
    int epochs;                      /* --epochs E (default 1) */
    int64_t samples_per_epoch;       /* --samples-per-epoch N (0: exact epochs over the shards) */
    int batch_size;                  /* --batch-size B (256): global rows per step over all ranks */
    int accum_steps;                 /* --accum-steps K (1) */
    double lr;                       /* --lr (1e-3) */
    int64_t warmup;                  /* --warmup steps (100) */
    double weight_decay;             /* --wd (0.1) */
    double beta1, beta2, eps;        /* --beta1 0.9 --beta2 0.98 --eps 1e-6 */
    double clip_norm;                /* --clip-norm (0 = off) */
    clasp_loss_config loss;          /* --loss NAME (loss/registry.h; zeroed: infonce) */
    bool multi_positive;             /* --multi-positive: same caption = positive (the same as
                                        positives = CAPTION) */
    uint64_t seed;                   /* --seed (0) */
    int threads;                     /* --threads (compute threads, 2) */
    int chunks;                      /* --chunks (replicas; default = threads) */
    int precision;       /* --precision: a clasp_precision, or -1 (default): the model config's */
    int workers;         /* --workers (decode threads, 1) */
    int shuffle_buffer;  /* --shuffle-buffer (samples, 2000) */
    int log_every;       /* --log-every (steps, 50) */
    int64_t save_every;  /* --save-every (steps, 0 = end only) */
    int64_t val_every;   /* --val-every (steps, 0 = end only) */
    int keep;            /* --keep N checkpoints (3) */
    int max_bad_steps;   /* --max-bad-steps K consecutive non-finite steps (5) */
    double collapse_std; /* --collapse-std threshold (0.01) */
    bool json;           /* --json: summary on stdout */
    bool progress;       /* progress bar on stderr (default: when stderr is a terminal) */
    int64_t stop_after;  /* --stop-after N: stop (with checkpoint) after N steps of this
                            invocation, as if interrupted (tests of resume) */
    clasp_data_split data_split; /* --data-split shards|samples (data.h) with several ranks */
    double dist_timeout;         /* --dist-timeout seconds a collective may wait (600; 0 = none) */
    int64_t check_every;         /* --check-every N: parameter-hash agreement of the ranks every
                                    N steps (default 100; 0 = off) */
    /* --temperature-schedule KIND:START:END (temperature.h) or NULL; the loss's other options
     * (--temperature, --margin, ...) are in `loss` */
    const char *temperature_schedule;
    clasp_positives positives; /* --positives caption|label|both (see clasp_positives) */
    /* Prometheus (prom.h; rank 0): the figures are published to metrics_pub (the CLI's
     * --metrics-addr server reads it) and written to metrics_textfile (--metrics-textfile)
     * after each train line, evaluation and checkpoint. NULL: not. */
    struct clasp_train_publisher *metrics_pub;
    const char *metrics_textfile;
} clasp_train_options;

clasp_train_options clasp_train_default_options(void);

typedef struct clasp_train_summary {
    int64_t steps;             /* optimiser steps done in total */
    int64_t samples;           /* samples seen in total */
    double seconds;            /* wall time of this invocation's training steps */
    double samples_per_s;      /* steady-state rate of this invocation */
    double data_wait_frac;     /* fraction of step time spent waiting for the loader */
    double gflops;             /* achieved GFLOP/s (model FLOPs per sample x rate) */
    clasp_precision precision; /* of the run's matrix products */
    double final_loss;
    double zeroshot_top1, zeroshot_top5, zeroshot_mean_recall; /* -1 when not evaluated */
    int64_t skipped_steps;
    int64_t skipped_samples;
    bool interrupted;      /* stopped by a signal or --stop-after */
    int collapse_warnings; /* collapse warnings of this invocation (rank 0) */
    bool collapsed;        /* the features were still collapsed at the last check (rank 0) */
    int world;             /* ranks */
    double gather_ms_per_step, reduce_ms_per_step; /* collectives, steady-state steps, rank 0 */
    char checkpoint[4096];
    /* the run was refused for its options (a label loss on shards without .cls): exit 2 */
    bool usage_error;
} clasp_train_summary;

/* Runs training. Progress and logs go to stderr; returns CLASP_OK or an error with a message.
 * A SIGINT/SIGTERM finishes the current step, writes a checkpoint and returns
 * CLASP_ERR_INTERRUPTED with summary->interrupted set. */
clasp_status clasp_train(const clasp_train_options *o, clasp_train_summary *summary);

#endif
