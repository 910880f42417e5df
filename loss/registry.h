/* registry.h: the losses training can use, one table entry each (loss/registry.c).
 *
 * Adding a loss to training = its code in loss/ (the loss function, and a `_batch` adapter
 * with the clasp_loss_compute_fn signature below) plus ONE entry in the table of registry.c.
 * Nothing else changes: the engine (train/engine.c) calls every loss through this entry in one
 * place, `clasp train --loss NAME` looks NAME up here and its help lists the table, and the
 * run's resume key records the entry's name.
 *
 * What the engine does for every loss, per step (see train/engine.h for the data flow):
 *   1. encodes this rank's n rows of the two paired sides ("a" = the query side ta, "b" = tb)
 *      and L2-normalises them: a, b (n, D);
 *   2. with several ranks, all-gathers both sides into a_all, b_all (N, D), rank r holding
 *      rows r*n .. r*n+n-1 (one rank: a_all == a, b_all == b). Group ids (N) are the global
 *      batch's, identical on every rank. These are ALL the gathers a loss gets: features of
 *      both sides (diagnostics need them anyway) and the groups. A key queue is fed from
 *      b_all, so every rank's queue holds the same keys (MoCo's "keys all-gathered before
 *      enqueue" falls out of it);
 *   3. calls def->compute(batch, grads) once;
 *   4. turns the gradients into this rank's full feature gradient: per side X, if the loss
 *      wrote dX_all (CLASP_LOSS_WROTE_A_ALL / _B_ALL) the engine reduce-scatters it (sums the
 *      ranks' (N, D) parts, each rank receiving its own n rows) and adds the result to dX when
 *      CLASP_LOSS_WROTE_A / _B is set too, else uses it as dX; a side nothing was written for
 *      gets a zero gradient;
 *   5. adds dscalars[k] to the gradient of the model parameter named by def->scalars[k],
 *      back-propagates, and all-reduces (sums) parameter gradients, the loss and, through the
 *      parameter gradients, the scalar gradients over ranks.
 * So the contract for a loss with several ranks: return this rank's PART of the loss, of the
 * scalar gradients and of the gathered-row gradients, such that the sums over ranks are the
 * global values. A loss with a natural split computes the rows it owns against all rows
 * (InfoNCE's local_loss, SigLIP's pairs (local i, any j)); a loss without one computes the
 * whole global loss on a_all/b_all on every rank (redundant but exact), writes the rows
 * offset..offset+n-1 of its (N, D) gradients into da/db (WROTE_A/_B only), and reports the
 * loss and dscalars on rank 0 only (0 elsewhere).
 *
 * Learnable scalars live in the model's parameter block (the "shared" parameters: logit_scale,
 * logit_bias), so the optimiser, gradient clipping, --freeze shared, checkpoints and exports
 * carry them without knowing the loss. An entry lists which it uses in def->scalars; the
 * engine refuses a model that lacks one (SigLIP without "init_logit_bias"). A learnable
 * temperature is the logit scale: tau = exp(-logit_scale).
 *
 * Options (temperature, margin, mining, ...) are declared by the entry (def->options): name
 * (the CLI flag without "--"), help, default, range or choices. clasp_loss_config holds the
 * chosen entry and the values set; unset options read as their default, so a zeroed config is
 * the default loss with default options. clasp_loss_config_set() parses and checks a value
 * and refuses an option the chosen loss does not take, naming both.
 *
 * State (a key queue, running statistics...) is created by def->state_init from the batch
 * geometry and options, freed by def->state_free, and updated by compute itself (MoCo:
 * enqueue b_all after computing the loss). def->state_tensors names the float tensors to save
 * in and restore from checkpoints ("loss.queue" ...): pointers into the state, so restoring is
 * copying into them. Stateless losses leave the three NULL.
 *
 * Requirements the engine checks or provides (def->needs):
 *   CLASP_LOSS_NEEDS_GROUPS: the loss needs group ids (labels) on every step, whether or not
 *     --multi-positive is given; a step without them is refused.
 *   CLASP_LOSS_NEEDS_TWO_VIEWS: the pairing may be one tower with itself (two independently
 *     augmented views of each sample: image-image, audio-audio, passed as a and b of
 *     clasp_engine_grads_pair); both views back-propagate into the same tower (the engine
 *     re-runs each view's forward before its backward). Making the two views (the
 *     augmentation RNG keyed by view) is the data pipeline's part.
 *   CLASP_LOSS_NEEDS_MOMENTUM_KEYS: the b side (keys) is encoded by a momentum (EMA) copy
 *     of the model, without gradient (the loss writes no b gradient; the engine runs no
 *     backward there). The copy starts as the parameters (first clasp_engine_sync_params) and
 *     follows theta_k = m theta_k + (1 - m) theta through clasp_engine_momentum_update, which
 *     the trainer calls after each optimiser step (m = the entry's "momentum" option, else
 *     0.999). clasp_engine_loss_tensors adds the copy ("momentum.params", "momentum.ready")
 *     to the entry's own state tensors for checkpoints. Every rank holds the same parameters,
 *     hence the same copy and the same keys.
 *
 * How the losses of loss/ fill their entries (registry.c):
 *   infonce: natural split (clasp_infonce_dist); scalars = {LOGIT_SCALE}; options temperature
 *            (fixed: see clasp_loss_log_scale), hard-negatives and tau-plus (either set:
 *            clasp_infonce_hardneg of loss/hardneg.h, one positive per row, refused with
 *            groups).
 *   supcon:  needs GROUPS; option temperature (unset: learnable, scalars = {LOGIT_SCALE});
 *            no natural split: each rank stacks Z = [a_all; b_all] (2N rows, labels = groups
 *            twice), calls clasp_supcon on it and keeps its rows' gradients (the replicated
 *            recipe above; clasp__loss_stack / _unstack of loss/internal.h). work:
 *            clasp_supcon_work_floats(2N, D) + 4 N D (Z, dZ) + 2N (labels).
 *   triplet: needs GROUPS; options margin (> 0), mining (batch-all|batch-hard|semi-hard),
 *            distance (euclidean|squared|cosine); the same stacking and recipe as supcon with
 *            clasp_triplet; no scalars.
 *   ntxent:  needs TWO_VIEWS (a, b = the two views) or pairs two towers; options temperature
 *            (as supcon), hard-negatives and tau-plus (clasp_ntxent_hardneg: HCL's own form);
 *            clasp_ntxent(a_all, b_all) with the replicated recipe.
 *   margin:  needs GROUPS; option margin (> 0); pairs (a_i, b_j) over the local rows i against
 *            all j, similar = same group: clasp_margin_cross has a natural split (pairs owned by
 *            the rank of i), writing da and db_all.
 * With GROUPS the trainer passes the samples' .cls labels as group ids (a sample without one
 * is a usage error naming --loss and the shards).
 *   moco:    needs MOMENTUM_KEYS (and TWO_VIEWS for image-image); options queue (>= the
 *            global batch), momentum, temperature; state = a clasp_queue (state_tensors
 *            "loss.queue" with its head/count as float tensors); compute = clasp_moco_infonce
 *            of the local queries a against their keys b and the queue, loss and da scaled by
 *            n/N so the ranks' parts sum to the global mean (writes da only: keys get no
 *            gradient), then clasp_queue_enqueue(b_all) on every rank. That is one direction
 *            (queries a, keys b: MoCo's own, unimodal with two views); a symmetric cross-modal
 *            form would also need a momentum encoding of the a side, which the engine does not
 *            make (a second flag).
 * A loss's options reach it through clasp_loss_config_set: `clasp train` makes one "--NAME
 * VALUE" flag per distinct option name over the registry (cli/cmd_train.c) and passes the ones
 * given, so a new option is a line of the entry's table too; options set enter the run's
 * resume key ("loss_options"). A "temperature" option is also what --temperature-schedule sets
 * before each step (train/temperature.h).
 */
#ifndef CLASP_LOSS_REGISTRY_H
#define CLASP_LOSS_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/status.h"

#define CLASP_LOSS_MAX_OPTIONS 8
#define CLASP_LOSS_MAX_SCALARS 2

/* Learnable scalars in the model's parameter block a loss may use. */
typedef enum clasp_loss_scalar {
    CLASP_LOSS_SCALAR_LOGIT_SCALE = 0, /* log of the logit scale ("logit_scale") */
    CLASP_LOSS_SCALAR_LOGIT_BIAS = 1   /* additive logit bias ("logit_bias", SigLIP) */
} clasp_loss_scalar;

/* def->needs bits (see above). */
enum {
    CLASP_LOSS_NEEDS_GROUPS = 1u << 0,
    CLASP_LOSS_NEEDS_TWO_VIEWS = 1u << 1,
    CLASP_LOSS_NEEDS_MOMENTUM_KEYS = 1u << 2
};

/* clasp_loss_grads.wrote bits: which gradient buffers the loss filled. */
enum {
    CLASP_LOSS_WROTE_A = 1u << 0,     /* da (n, D) */
    CLASP_LOSS_WROTE_B = 1u << 1,     /* db (n, D) */
    CLASP_LOSS_WROTE_A_ALL = 1u << 2, /* da_all (N, D), summed over ranks by the engine */
    CLASP_LOSS_WROTE_B_ALL = 1u << 3  /* db_all (N, D) */
};

/* One option of a loss; the CLI flag is "--" name. A number when choices is NULL (accepted:
 * min <= v <= max, or min < v when min_exclusive), else one of the NULL-terminated choices
 * (the value is the index). */
typedef struct clasp_loss_option {
    const char *name;
    const char *help;
    double def;
    double min, max;
    bool min_exclusive;
    const char *const *choices;
} clasp_loss_option;

struct clasp_loss_def;

/* The chosen loss and its options. Zeroed = the default loss (infonce) with default options. */
typedef struct clasp_loss_config {
    const struct clasp_loss_def *def;     /* NULL: clasp_loss_default() */
    unsigned set;                         /* bit i: value[i] was set */
    double value[CLASP_LOSS_MAX_OPTIONS]; /* by index into def->options */
} clasp_loss_config;

/* The batch geometry a loss is set up for (sizes its work memory and state). */
typedef struct clasp_loss_setup {
    size_t n; /* rows of this rank */
    size_t N; /* rows of the global batch (n * world) */
    size_t D; /* feature size */
    int rank, world;
    const clasp_loss_config *cfg;
} clasp_loss_setup;

/* One step's inputs. */
typedef struct clasp_loss_batch {
    const float *a, *b;         /* (n, D) this rank's L2-normalised features, rows offset.. */
    const float *a_all, *b_all; /* (N, D) all ranks' rows (== a, b when world == 1) */
    const int *groups;          /* (N) group ids of the global batch, or NULL (diagonal) */
    size_t n, offset, N, D;
    int rank, world;
    const float *scalars; /* (n_scalars) current values of def->scalars */
    const clasp_loss_config *cfg;
    void *state; /* def->state_init's state, or NULL */
    float *work; /* def->work_floats(setup) floats */
} clasp_loss_batch;

/* One step's outputs (gradients are written, as everywhere in loss/). */
typedef struct clasp_loss_grads {
    float loss;             /* this rank's part (sums over ranks to the global loss) */
    float *da, *db;         /* (n, D) gradient through the local rows */
    float *da_all, *db_all; /* (N, D) gradient through the gathered rows; NULL when world == 1
                               (then write the complete gradient into da, db) */
    float *dscalars;        /* (n_scalars) this rank's part */
    unsigned wrote;         /* CLASP_LOSS_WROTE_* bits set by the loss */
} clasp_loss_grads;

/* A float tensor of a loss's state, for checkpoints (data points into the state). */
typedef struct clasp_loss_tensor {
    const char *name;
    int ndim;
    int64_t shape[4];
    float *data;
} clasp_loss_tensor;

typedef clasp_status (*clasp_loss_compute_fn)(const clasp_loss_batch *in, clasp_loss_grads *out);

typedef struct clasp_loss_def {
    const char *name;           /* "infonce": the --loss value and the resume key's */
    const char *const *aliases; /* other accepted names (NULL-terminated) or NULL */
    const char *summary;        /* one line for help texts */
    unsigned needs;             /* CLASP_LOSS_NEEDS_* */
    int n_scalars;
    clasp_loss_scalar scalars[CLASP_LOSS_MAX_SCALARS];
    int n_options;
    const clasp_loss_option *options;
    /* scratch floats for one step (0 = overflow) */
    size_t (*work_floats)(const clasp_loss_setup *s);
    clasp_loss_compute_fn compute;
    /* state: all three NULL for stateless losses */
    clasp_status (*state_init)(void **state, const clasp_loss_setup *s);
    void (*state_free)(void *state);
    int (*state_tensors)(void *state, clasp_loss_tensor *out, int max); /* returns the count */
} clasp_loss_def;

/* The registered losses, in table order (the first is the default). */
int clasp_loss_count(void);
const clasp_loss_def *clasp_loss_at(int i); /* NULL outside 0 .. count-1 */
const clasp_loss_def *clasp_loss_default(void);

/* Looks a name or alias up. CLASP_ERR_ARG naming the name and listing the known ones. */
clasp_status clasp_loss_find(const char *name, const clasp_loss_def **out);

/* Writes the registered names joined by sep ("infonce|siglip") into buf (always terminated
 * when cap > 0); returns the length the full list needs, like snprintf. */
size_t clasp_loss_names(char *buf, size_t cap, const char *sep);

/* The config's entry (its def, or the default when NULL). */
const clasp_loss_def *clasp_loss_config_def(const clasp_loss_config *cfg);

/* Sets option `name` (without "--") from text: a number in range, or one of the choices.
 * CLASP_ERR_ARG naming the flag and the value: unknown to the chosen loss (listing the
 * options it takes), not a number, out of range, not one of the choices. */
clasp_status clasp_loss_config_set(clasp_loss_config *cfg, const char *name, const char *value);

/* Index of the option called `name` in def->options, or -1. */
int clasp_loss_option_index(const clasp_loss_def *def, const char *name);

/* Value of option i of the config's loss (its default when unset). */
double clasp_loss_config_get(const clasp_loss_config *cfg, int i);

/* Adds the options set in cfg to the JSON object obj, by name: a number, or the choice's name
 * ({"margin": 0.3, "mining": "semi-hard"}); nothing for options left at their default. Used by
 * the run's resume key and summaries. */
void clasp_loss_config_add_json(const clasp_loss_config *cfg, cJSON *obj);

/* The log scale s (logits = exp(s) cos, tau = exp(-s)) a loss with a "temperature" option
 * uses this step: -ln T when the option is set (--temperature T, or the value the trainer's
 * --temperature-schedule set for this step), else the learnable in->scalars[0] (the logit
 * scale). *learnable tells whether the loss's dscalars[0] applies (else it writes 0 there, and
 * the logit scale is not trained). */
float clasp_loss_log_scale(const clasp_loss_batch *in, bool *learnable);

#endif
