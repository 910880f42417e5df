/* trainer.c: the training loop: setup, steps (data, engine, AdamW, guards), evaluation,
 * checkpoints (runstate.h), exact resume, signals; metrics lines in metrics.c. See trainer.h. */
#include "train/trainer.h"
#include "train/temperature.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/json.h"
#include "core/log.h"
#include "core/rng.h"
#include "encoders/model.h"
#include "modalities/augment.h"
#include "pipeline/data.h"
#include "train/checkpoint.h"
#include "train/dist.h"
#include "train/metrics.h"
#include "train/optim.h"
#include "train/runstate.h"

_Static_assert(CLASP_TRAIN_MAX_SOURCES <= CLASP_RUNSTATE_MAX_SOURCES,
               "a checkpoint holds every source's loader position");

/* The optimiser's defaults are AdamW's, the data stage's are the data options'. */
clasp_train_options clasp_train_default_options(void) {
    const clasp_adamw_config adamw = clasp_adamw_default_config();
    const clasp_data_options data = clasp_data_default_options();
    return (clasp_train_options){
        .epochs = 1,
        .batch_size = 256,
        .accum_steps = 1,
        .lr = adamw.lr,
        .warmup = 100,
        .weight_decay = adamw.weight_decay,
        .beta1 = adamw.beta1,
        .beta2 = adamw.beta2,
        .eps = adamw.eps,
        .loss.def = clasp_loss_default(),
        .threads = 2,
        .workers = data.workers,
        .shuffle_buffer = data.shuffle_buffer,
        .log_every = 50,
        .keep = 3,
        .max_bad_steps = 5,
        .collapse_std = 0.01,
        .data_split = CLASP_DATA_SPLIT_SHARDS,
        .dist_timeout = 600,
        .check_every = 100,
        .precision = -1,
    };
}

/* ---- signals ------------------------------------------------------------------------------ */

static volatile sig_atomic_t g_stop_signal;

static void on_signal_(int sig) {
    g_stop_signal = sig;
}

static void install_signals_(struct sigaction *old_int, struct sigaction *old_term) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal_;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, old_int);
    sigaction(SIGTERM, &sa, old_term);
}

/* ---- the run ------------------------------------------------------------------------------ */

/* One training source at run time. */
typedef struct source_rt {
    clasp_data *data;
    const char *spec;
    clasp_tower ta, tb;
    char pair[32]; /* "audio-text" */
    double weight;
} source_rt;

/* Everything a run holds between setup and the end. */
typedef struct trainer {
    clasp_train_options o; /* resolved: chunks, sources */
    int world, rank, local_b;
    clasp_model_config cfg;
    clasp_preprocess pre; /* the config's preprocessing: the loaders' and the zero-shot's */
    cJSON *config_json;   /* the model config as saved in config.json and checkpoints */
    cJSON *resume_key;    /* the options an exact resume needs equal */
    clasp_engine e;
    clasp_model *m; /* the engine's replica 0: the parameters AdamW updates */
    clasp_adamw opt;
    bool frozen[CLASP_N_TOWERS];
    clasp_param_group groups[CLASP_N_TOWERS]; /* --lr-scale, --tower-wd per tower */
    bool has_groups;                          /* either given: segments point at groups[] */
    clasp_param_seg *segs;                    /* (n_params) one per tensor */
    source_rt src[CLASP_TRAIN_MAX_SOURCES];
    int n_src;
    clasp_image_augment_config img_aug;
    int64_t total, steps_per_epoch;
    int32_t *group_buf;        /* (B) dense group ids of the global batch */
    uint64_t *gid_all;         /* (B) caption hashes of the global batch */
    int64_t *lab_all;          /* (B) .cls labels of the global batch (label positives) */
    uint64_t *lab64;           /* (B) the labels as ids (scratch) */
    int32_t *grp_tmp;          /* (2 B) scratch of the caption-or-label union */
    clasp_positives positives; /* resolved: --positives, or LABEL for a loss needing groups */
    clasp_runstate rs;         /* step, samples, skipped steps and what checkpoints hold */
    int bad_streak;            /* consecutive non-finite steps */
    /* Collapse watch (rank 0): a warning when the feature std falls under --collapse-std, a
     * note when it is back above twice that, and the state at the end of the run. */
    bool collapsed;             /* under the threshold since the last warning */
    int64_t collapse_step;      /* step of that warning */
    int collapse_warnings;      /* warnings so far (this invocation) */
    int temp_opt;               /* index of the loss's "temperature" option, or -1 */
    clasp_temp_schedule tsched; /* kind 0: no --temperature-schedule */
    float step_log_scale;       /* the logit scale the last step's loss used */
    clasp_step_stats st;
    clasp_train_metrics mx;
    double flops_per_sample;
    int run_lock; /* clasp_run_lock's handle (rank 0), 0 = none */
} trainer;

static void trainer_free_(trainer *t) {
    clasp_metrics_close(&t->mx);
    clasp_run_unlock(t->run_lock);
    free(t->segs);
    free(t->group_buf);
    free(t->gid_all);
    free(t->lab_all);
    free(t->lab64);
    free(t->grp_tmp);
    clasp_adamw_free(&t->opt);
    for (int k = 0; k < CLASP_TRAIN_MAX_SOURCES; k++) clasp_data_close(t->src[k].data);
    clasp_preprocess_free(&t->pre);
    clasp_engine_free(&t->e);
    cJSON_Delete(t->resume_key);
    cJSON_Delete(t->config_json);
}

static int epoch_(const trainer *t) {
    return t->steps_per_epoch ? (int)((t->rs.step - 1) / t->steps_per_epoch) + 1 : 1;
}

/* The options that must match for a resume to be exact. */
static cJSON *resume_key_(const clasp_train_options *o, int64_t total_steps, int world,
                          const source_rt *src, int n_src) {
    cJSON *k = cJSON_CreateObject();
    cJSON_AddNumberToObject(k, "batch_size", o->batch_size);
    cJSON_AddNumberToObject(k, "accum_steps", o->accum_steps);
    cJSON_AddNumberToObject(k, "chunks", o->chunks);
    /* only when not fp32, so that runs saved before precisions existed still resume */
    if (o->precision != CLASP_FP32)
        cJSON_AddStringToObject(k, "precision",
                                clasp_precision_name((clasp_precision)o->precision));
    cJSON_AddNumberToObject(k, "seed", (double)o->seed);
    cJSON_AddNumberToObject(k, "total_steps", (double)total_steps);
    cJSON_AddStringToObject(k, "loss", clasp_loss_config_def(&o->loss)->name);
    /* the options given (absent when none, so older checkpoints stay resumable) */
    if (o->loss.set)
        clasp_loss_config_add_json(&o->loss, cJSON_AddObjectToObject(k, "loss_options"));
    if (o->temperature_schedule)
        cJSON_AddStringToObject(k, "temperature_schedule", o->temperature_schedule);
    cJSON_AddBoolToObject(k, "multi_positive", o->multi_positive);
    /* absent for caption positives (= multi_positive) and none, so older runs stay resumable */
    if (o->positives == CLASP_POSITIVES_LABEL || o->positives == CLASP_POSITIVES_BOTH)
        cJSON_AddStringToObject(k, "positives",
                                o->positives == CLASP_POSITIVES_LABEL ? "label" : "both");
    cJSON_AddStringToObject(k, "train", src[0].spec);
    /* absent for a single source with the default pair, so older checkpoints stay resumable */
    bool plain = n_src == 1 && !o->sources[0].pair;
    if (!plain) {
        cJSON *a = cJSON_AddArrayToObject(k, "sources");
        for (int i = 0; i < n_src && a; i++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "spec", src[i].spec);
            cJSON_AddStringToObject(x, "pair", src[i].pair);
            cJSON_AddNumberToObject(x, "weight", src[i].weight);
            cJSON_AddItemToArray(a, x);
        }
    }
    if (o->freeze && *o->freeze) cJSON_AddStringToObject(k, "freeze", o->freeze);
    if (o->audio_augment) cJSON_AddBoolToObject(k, "audio_augment", true);
    if (o->image_augment) cJSON_AddStringToObject(k, "image_augment", o->image_augment);
    if (world > 1) /* absent in one-process checkpoints, which stay resumable */
        cJSON_AddStringToObject(k, "data_split",
                                o->data_split == CLASP_DATA_SPLIT_SAMPLES ? "samples" : "shards");
    return k;
}

/* options.json: the resolved options of this invocation (the resume key and the rest);
 * clasp_run_write_options adds the run folder's format version. */
static cJSON *options_json_(const trainer *t) {
    const clasp_train_options *o = &t->o;
    cJSON *j = cJSON_Duplicate(t->resume_key, 1);
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "model", o->model_config);
    if (o->init) cJSON_AddStringToObject(j, "init", o->init);
    if (o->val_spec) cJSON_AddStringToObject(j, "val", o->val_spec);
    const struct {
        const char *name;
        double value;
    } nums[] = {{"epochs", o->epochs},
                {"samples_per_epoch", (double)o->samples_per_epoch},
                {"lr", o->lr},
                {"warmup", (double)o->warmup},
                {"weight_decay", o->weight_decay},
                {"beta1", o->beta1},
                {"beta2", o->beta2},
                {"eps", o->eps},
                {"clip_norm", o->clip_norm},
                {"threads", o->threads},
                {"workers", o->workers},
                {"shuffle_buffer", o->shuffle_buffer},
                {"world", t->world}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        cJSON_AddNumberToObject(j, nums[i].name, nums[i].value);
    if (t->has_groups) { /* absent without --lr-scale / --tower-wd, as before they existed */
        cJSON *ls = cJSON_AddObjectToObject(j, "lr_scale"),
              *wd = cJSON_AddObjectToObject(j, "tower_weight_decay");
        for (int k = 0; k < CLASP_N_TOWERS && ls && wd; k++) {
            if (t->frozen[k] || !clasp_model_config_has(&t->cfg, (clasp_tower)k)) continue;
            cJSON_AddNumberToObject(ls, clasp_tower_name((clasp_tower)k), t->groups[k].lr_scale);
            cJSON_AddNumberToObject(wd, clasp_tower_name((clasp_tower)k),
                                    t->groups[k].weight_decay);
        }
    }
    return j;
}

/* ---- evaluation (zero-shot) ------------------------------------------------------------- */

static clasp_status evaluate_(trainer *t, clasp_train_summary *sum) {
    const clasp_train_options *o = &t->o;
    if (!o->val_spec || !o->zeroshot || !o->zeroshot_fn || !t->mx.f)
        return CLASP_OK; /* rank 0 evaluates */
    clasp_train_eval_result zr;
    double t0 = clasp_metrics_now();
    CLASP_TRY(
        o->zeroshot_fn(&t->e, &t->pre, o->val_spec, o->zeroshot, o->templates, o->workers, &zr));
    double dt = clasp_metrics_now() - t0;
    sum->zeroshot_top1 = zr.top1;
    sum->zeroshot_top5 = zr.top5;
    sum->zeroshot_mean_recall = zr.mean_recall;
    clasp_metrics_eval_line(&t->mx, t->rs.step, epoch_(t), t->rs.samples, &zr, dt);
    if (o->progress) fputc('\n', stderr);
    CLASP_INFO("step %lld: zero-shot top-1 %.2f%%  top-5 %.2f%%  mean recall %.2f%%  (%lld images, "
               "%.1f s)",
               (long long)t->rs.step, 100 * zr.top1, 100 * zr.top5, 100 * zr.mean_recall,
               (long long)zr.n, dt);
    return CLASP_OK;
}

/* ---- helpers ------------------------------------------------------------------------------ */

/* CLASP_FAULT_INJECT=die:R:S|hang:R:S (trainer.h): what to do on this rank after step S. */
static void fault_inject_(int64_t step) {
    const char *f = getenv("CLASP_FAULT_INJECT");
    if (!f || clasp_dist_world() < 2) return;
    char kind[8] = {0};
    int rank = -1;
    long long at = -1;
    if (sscanf(f, "%7[a-z]:%d:%lld", kind, &rank, &at) != 3 || rank != clasp_dist_rank() ||
        at != step)
        return;
    if (!strcmp(kind, "die")) {
        fprintf(stderr, "clasp train: rank %d: fault injection: SIGKILL after step %lld\n", rank,
                at);
        raise(SIGKILL);
    } else if (!strcmp(kind, "hang")) {
        fprintf(stderr, "clasp train: rank %d: fault injection: hanging after step %lld\n", rank,
                at);
        for (;;) pause();
    }
}

/* Dense group ids of the global batch: rows with the same caption hash share an id. */
static void dense_groups_(int32_t *out, const uint64_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) {
        out[i] = (int32_t)i;
        for (size_t j = 0; j < i; j++)
            if (ids[j] == ids[i]) {
                out[i] = out[j];
                break;
            }
    }
}

/* Dense group ids of `n` rows as the union of two groupings (first-occurrence indexes as
 * dense_groups_ makes them): rows equal under either share a group, closed transitively; a
 * group's id is its lowest row. parent: n ints of scratch. */
static void union_groups_(int32_t *out, const int32_t *g1, const int32_t *g2, int32_t *parent,
                          size_t n) {
    for (size_t i = 0; i < n; i++) parent[i] = (int32_t)i;
    for (size_t i = 0; i < n; i++) {
        const int32_t other[2] = {g1[i], g2[i]};
        for (int k = 0; k < 2; k++) {
            int32_t a = (int32_t)i, b = other[k];
            while (parent[a] != a) a = parent[a];
            while (parent[b] != b) b = parent[b];
            if (a < b) parent[b] = a; /* the lower row is the root */
            if (b < a) parent[a] = b;
        }
    }
    for (size_t i = 0; i < n; i++) {
        int32_t a = (int32_t)i;
        while (parent[a] != a) a = parent[a];
        out[i] = a;
    }
}

void clasp_train_groups(clasp_positives p, const uint64_t *caption, const int64_t *labels, size_t n,
                        int32_t *out, int32_t *scratch, uint64_t *scratch64) {
    int32_t *cap = p == CLASP_POSITIVES_BOTH ? scratch : out;
    int32_t *lab = p == CLASP_POSITIVES_BOTH ? scratch + n : out;
    if (p == CLASP_POSITIVES_NONE) {
        for (size_t i = 0; i < n; i++) out[i] = (int32_t)i;
        return;
    }
    if (p != CLASP_POSITIVES_LABEL) dense_groups_(cap, caption, n);
    if (p != CLASP_POSITIVES_CAPTION) {
        for (size_t i = 0; i < n; i++) scratch64[i] = (uint64_t)labels[i];
        dense_groups_(lab, scratch64, n);
    }
    if (p == CLASP_POSITIVES_BOTH) union_groups_(out, cap, lab, scratch + 2 * n, n);
}

/* The group ids of this step's global batch per t->positives (trainer.h), or NULL for none.
 * Collective with several ranks. A sample without .cls under label positives is refused (a
 * usage error: the shards do not fit the flags). */
static clasp_status make_groups_(trainer *t, const source_rt *cur, const clasp_batch *b,
                                 const int32_t **groups, clasp_train_summary *sum) {
    *groups = NULL;
    const clasp_positives p = t->positives;
    if (p == CLASP_POSITIVES_NONE) return CLASP_OK;
    const size_t N = b->n * (size_t)t->world;
    if (p != CLASP_POSITIVES_LABEL)
        CLASP_TRY(clasp_dist_allgather(t->gid_all, b->group_ids, b->n * sizeof(uint64_t)));
    if (p != CLASP_POSITIVES_CAPTION) {
        for (size_t i = 0; i < b->n; i++)
            if (b->labels[i] < 0) {
                char flag[64];
                if (t->o.positives == CLASP_POSITIVES_NONE) /* the loss's default */
                    snprintf(flag, sizeof flag, "--loss %s", t->e.loss->name);
                else
                    snprintf(flag, sizeof flag, "--positives %s",
                             p == CLASP_POSITIVES_LABEL ? "label" : "both");
                sum->usage_error = true;
                return clasp_set_error(CLASP_ERR_ARG,
                                       "%s needs a label (.cls) on every sample: sample '%s' of "
                                       "--train %s has none",
                                       flag, b->keys ? b->keys[i] : "?", cur->spec);
            }
        CLASP_TRY(clasp_dist_allgather(t->lab_all, b->labels, b->n * sizeof(int64_t)));
    }
    clasp_train_groups(p, t->gid_all, t->lab_all, N, t->group_buf, t->grp_tmp, t->lab64);
    *groups = t->group_buf;
    return CLASP_OK;
}

/* The loss's temperature option (or -1) and --temperature-schedule (temperature.h). */
static clasp_status check_temperature_(trainer *t) {
    const clasp_train_options *o = &t->o;
    t->temp_opt = clasp_loss_option_index(clasp_loss_config_def(&o->loss), "temperature");
    return clasp_temp_schedule_for_loss(&o->loss, o->temperature_schedule, &t->tsched);
}

/* Group ids that hold across steps (a key queue compares a query's group with keys of past
 * batches): the caption hash folded into 31 bits (two captions share one with probability
 * 2^-31: a queued key of the other is then dropped, or an in-batch pair made positive). */
static void hash_groups_(int32_t *out, const uint64_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (int32_t)((ids[i] ^ (ids[i] >> 32)) & 0x7fffffffu);
}

/* The tower named by the n bytes at p (an item of `flag`'s list `list`), present in cfg. */
static clasp_status tower_item_(const char *flag, const char *list, const char *p, size_t n,
                                const clasp_model_config *cfg, int *tower) {
    *tower = -1;
    for (int t = 0; t < CLASP_N_TOWERS; t++) {
        const char *name = clasp_tower_name((clasp_tower)t);
        if (strlen(name) == n && !strncmp(p, name, n)) *tower = t;
    }
    if (*tower < 0)
        return clasp_set_error(CLASP_ERR_ARG,
                               "%s '%s': '%.*s' is not a tower (image, text, audio, shared)", flag,
                               list, (int)n, p);
    if (!clasp_model_config_has(cfg, (clasp_tower)*tower))
        return clasp_set_error(CLASP_ERR_ARG, "%s '%s': the model has no %s tower", flag, list,
                               clasp_tower_name((clasp_tower)*tower));
    return CLASP_OK;
}

/* --freeze LIST: comma-separated tower names (image, text, audio, shared) into frozen[]. */
static clasp_status parse_freeze_(const char *list, const clasp_model_config *cfg,
                                  bool frozen[CLASP_N_TOWERS]) {
    for (int t = 0; t < CLASP_N_TOWERS; t++) frozen[t] = false;
    if (!list || !*list) return CLASP_OK;
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        int found;
        CLASP_TRY(tower_item_("--freeze", list, p, n, cfg, &found));
        frozen[found] = true;
        p += n;
        if (*p == ',') p++;
    }
    return CLASP_OK;
}

/* --lr-scale / --tower-wd LIST: comma-separated TOWER=VALUE items (VALUE a finite number >= 0,
 * each tower at most once, none frozen) into value[tower], given[tower]. */
static clasp_status parse_tower_values_(const char *flag, const char *list,
                                        const clasp_model_config *cfg,
                                        const bool frozen[CLASP_N_TOWERS],
                                        double value[CLASP_N_TOWERS], bool given[CLASP_N_TOWERS]) {
    for (int t = 0; t < CLASP_N_TOWERS; t++) given[t] = false;
    if (!list) return CLASP_OK;
    const char *p = list;
    do {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (!eq)
            return clasp_set_error(CLASP_ERR_ARG, "%s '%s': '%.*s' is not TOWER=VALUE", flag, list,
                                   (int)n, p);
        int t;
        CLASP_TRY(tower_item_(flag, list, p, (size_t)(eq - p), cfg, &t));
        char num[64] = "", *end = NULL;
        size_t vn = n - (size_t)(eq + 1 - p);
        if (vn < sizeof num) memcpy(num, eq + 1, vn);
        double x = vn && vn < sizeof num ? strtod(num, &end) : (double)NAN;
        if (!end || *end || !isfinite(x) || x < 0)
            return clasp_set_error(CLASP_ERR_ARG, "%s '%s': %s: '%.*s' is not a number >= 0", flag,
                                   list, clasp_tower_name((clasp_tower)t), (int)vn, eq + 1);
        if (given[t])
            return clasp_set_error(CLASP_ERR_ARG, "%s '%s': the %s tower is given twice", flag,
                                   list, clasp_tower_name((clasp_tower)t));
        if (frozen[t])
            return clasp_set_error(CLASP_ERR_ARG,
                                   "%s '%s': the %s tower is frozen (--freeze): it is not updated, "
                                   "so it takes no learning rate or weight decay",
                                   flag, list, clasp_tower_name((clasp_tower)t));
        value[t] = x;
        given[t] = true;
        p += n;
    } while (*p++ == ',');
    return CLASP_OK;
}

/* --freeze, --lr-scale and --tower-wd into frozen[] and the towers' parameter groups (lr scale
 * 1 and --wd unless given). A bad list is a usage error naming its flag. */
static clasp_status tower_options_(trainer *t, clasp_train_summary *sum) {
    const clasp_train_options *o = &t->o;
    double scale[CLASP_N_TOWERS], wd[CLASP_N_TOWERS];
    bool given_scale[CLASP_N_TOWERS], given_wd[CLASP_N_TOWERS];
    clasp_status s = parse_freeze_(o->freeze, &t->cfg, t->frozen);
    if (s == CLASP_OK)
        s = parse_tower_values_("--lr-scale", o->lr_scale, &t->cfg, t->frozen, scale, given_scale);
    if (s == CLASP_OK)
        s = parse_tower_values_("--tower-wd", o->tower_wd, &t->cfg, t->frozen, wd, given_wd);
    if (s != CLASP_OK) {
        sum->usage_error = true;
        return s;
    }
    t->has_groups = o->lr_scale || o->tower_wd;
    for (int k = 0; k < CLASP_N_TOWERS; k++) {
        t->groups[k] = (clasp_param_group){.lr_scale = given_scale[k] ? scale[k] : 1.0,
                                           .weight_decay = given_wd[k] ? wd[k] : o->weight_decay};
        if (t->has_groups && t->rank == 0 && !t->frozen[k] &&
            clasp_model_config_has(&t->cfg, (clasp_tower)k)) {
            if (k == CLASP_TOWER_SHARED) /* the logit scale/bias: no decayed tensor */
                CLASP_INFO("logit scale: lr x %g", t->groups[k].lr_scale);
            else
                CLASP_INFO("%s tower: lr x %g, weight decay %g", clasp_tower_name((clasp_tower)k),
                           t->groups[k].lr_scale, t->groups[k].weight_decay);
        }
    }
    return CLASP_OK;
}

/* --init: copies every parameter of m that `from` (export or checkpoint folder, or a run
 * folder's latest checkpoint) holds by name; others keep their values. */
static clasp_status load_init_(clasp_model *m, const char *from) {
    char dir[4096], path[4200], what[4300];
    snprintf(path, sizeof path, "%s/model.safetensors", from);
    if (clasp_is_file(path)) {
        snprintf(dir, sizeof dir, "%s", from);
    } else {
        CLASP_TRY(clasp_ckpt_resolve(from, dir, sizeof dir));
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
    }
    clasp_safetensors *st = NULL;
    CLASP_TRY(clasp_st_open(path, &st));
    int loaded = 0, fresh = 0;
    snprintf(what, sizeof what, "--init %s", path);
    clasp_status s = clasp_model_load_matching(m, st, what, &loaded, &fresh);
    if (s == CLASP_OK)
        CLASP_INFO("init from %s: %d tensors loaded, %d keep their fresh init", path, loaded,
                   fresh);
    clasp_st_free(st);
    return s;
}

/* The source of 0-based step `step`: counter RNG keyed by (seed, CLASP_TRAIN_RNG_SOURCE, step). */
static int pick_source_(uint64_t seed, int64_t step, const source_rt *src, int n_src) {
    if (n_src == 1) return 0;
    clasp_rng r;
    clasp_rng_init(&r, seed, CLASP_TRAIN_RNG_SOURCE, (uint64_t)step, 0);
    double total = 0;
    for (int k = 0; k < n_src; k++) total += src[k].weight;
    double u = clasp_rng_uniform_f64(&r) * total, acc = 0;
    for (int k = 0; k < n_src; k++) {
        acc += src[k].weight;
        if (u < acc) return k;
    }
    return n_src - 1;
}

/* Tower t's input in batch b; view 1 = the second augmented view (image-image, audio-audio). */
static const void *batch_input_(const clasp_batch *b, clasp_tower t, int view) {
    if (t == CLASP_TOWER_IMAGE) return view ? b->images2 : b->images;
    if (t == CLASP_TOWER_TEXT) return b->tokens;
    if (t == CLASP_TOWER_AUDIO) return view ? b->audio2 : b->audio;
    return NULL;
}

/* Skip counters of every source summed into one {reason: count} object. */
static cJSON *skips_all_(source_rt *src, int n_src) {
    cJSON *j = clasp_data_skips_json(src[0].data);
    for (int k = 1; k < n_src && j; k++) {
        cJSON *x = clasp_data_skips_json(src[k].data), *it;
        cJSON_ArrayForEach(it, x) {
            cJSON *have = cJSON_GetObjectItemCaseSensitive(j, it->string);
            if (have)
                cJSON_SetNumberValue(have, have->valuedouble + it->valuedouble);
            else
                cJSON_AddNumberToObject(j, it->string, it->valuedouble);
        }
        cJSON_Delete(x);
    }
    return j;
}

/* ---- setup -------------------------------------------------------------------------------- */

/* The options, the ranks and the model config. */
static clasp_status begin_(trainer *t, const clasp_train_options *oin, clasp_train_summary *sum) {
    t->o = *oin;
    clasp_train_options *o = &t->o;
    if (o->chunks <= 0) o->chunks = o->threads;
    memset(sum, 0, sizeof *sum);
    sum->zeroshot_top1 = sum->zeroshot_top5 = sum->zeroshot_mean_recall = -1;
    g_stop_signal = 0;
    CLASP_TRY(clasp_dist_init());
    t->world = clasp_dist_world();
    t->rank = clasp_dist_rank();
    sum->world = t->world;
    clasp_dist_set_timeout(o->dist_timeout);
    if (o->batch_size % t->world != 0)
        return clasp_set_error(CLASP_ERR_ARG,
                               "--batch-size %d (the global batch over all ranks) is not divisible "
                               "by the %d ranks",
                               o->batch_size, t->world);
    t->local_b = o->batch_size / t->world; /* this rank's rows */
    if (o->multi_positive && o->positives == CLASP_POSITIVES_NONE)
        o->positives = CLASP_POSITIVES_CAPTION; /* --multi-positive = --positives caption */
    if (o->multi_positive && o->positives != CLASP_POSITIVES_CAPTION)
        return clasp_set_error(CLASP_ERR_ARG, "--multi-positive is --positives caption: not with "
                                              "--positives label|both");
    o->multi_positive = o->positives != CLASP_POSITIVES_NONE;
    t->positives = o->positives;
    if (t->positives == CLASP_POSITIVES_NONE &&
        (clasp_loss_config_def(&o->loss)->needs & CLASP_LOSS_NEEDS_GROUPS))
        t->positives = CLASP_POSITIVES_LABEL;
    if (t->rank != 0) o->progress = false;
    CLASP_TRY(check_temperature_(t));
    CLASP_TRY(clasp_model_config_load(o->model_config, &t->cfg));
    if (o->precision >= 0) t->cfg.precision = (clasp_precision)o->precision;
    o->precision = (int)t->cfg.precision; /* the run config and an export record it */
    sum->precision = t->cfg.precision;
    CLASP_TRY(clasp_compute_check(t->cfg.precision, NULL));
    CLASP_TRY(clasp_preprocess_load(o->model_config, &t->pre));
    CLASP_TRY(clasp_model_config_to_json(&t->cfg, &t->config_json));
    CLASP_TRY(clasp_preprocess_add_json(&t->pre, t->config_json));
    return tower_options_(t, sum);
}

/* The engine (frozen towers), fresh weights and --init. */
static clasp_status setup_model_(trainer *t) {
    const clasp_train_options *o = &t->o;
    clasp_engine_options eo = {.batch_size = t->local_b,
                               .accum_steps = o->accum_steps,
                               .chunks = o->chunks,
                               .threads = o->threads,
                               .loss = o->loss,
                               .multi_positive = o->multi_positive,
                               .rank = t->rank,
                               .world = t->world,
                               .precision = t->cfg.precision};
    memcpy(eo.frozen, t->frozen, sizeof t->frozen);
    CLASP_TRY(clasp_engine_init(&t->e, &t->cfg, &eo));
    t->m = &t->e.models[0];
    clasp_model_init_weights(t->m, o->seed);
    if (o->init && !o->resume) CLASP_TRY(load_init_(t->m, o->init));
    return CLASP_OK;
}

/* The loader field a tower's input comes from. */
static unsigned need_of_(clasp_tower t) {
    return t == CLASP_TOWER_IMAGE  ? CLASP_NEED_IMAGE
           : t == CLASP_TOWER_TEXT ? CLASP_NEED_TEXT
                                   : CLASP_NEED_AUDIO;
}

/* A source pairing one tower with itself (image-image, audio-audio): a two-view loss, two views
 * per sample, and the augmentation that makes them differ (the default one when none is given;
 * the pair is in the resume key, so this choice is too). */
static clasp_status two_views_(trainer *t, int k, clasp_data_options *dopt) {
    const clasp_train_options *o = &t->o;
    const source_rt *x = &t->src[k];
    const clasp_loss_def *def = clasp_loss_config_def(&o->loss);
    if (!(def->needs & CLASP_LOSS_NEEDS_TWO_VIEWS)) {
        char names[256] = "";
        for (int i = 0; i < clasp_loss_count(); i++)
            if (clasp_loss_at(i)->needs & CLASP_LOSS_NEEDS_TWO_VIEWS) {
                size_t len = strlen(names);
                snprintf(names + len, sizeof names - len, "%s%s", len ? ", " : "",
                         clasp_loss_at(i)->name);
            }
        return clasp_set_error(CLASP_ERR_ARG,
                               "--pair %s (training source %d) pairs the %s tower with itself: "
                               "--loss %s is not a two-view loss (two-view losses: %s)",
                               x->pair, k + 1, clasp_tower_name(x->ta), def->name,
                               *names ? names : "none registered");
    }
    dopt->views = 2;
    if (x->ta == CLASP_TOWER_IMAGE && !o->image_augment) {
        dopt->image_augment = &t->img_aug; /* open_sources_ set the defaults */
        if (t->rank == 0)
            CLASP_INFO("--pair %s: two views with the default image augmentation "
                       "(--image-augment default)",
                       x->pair);
    }
    if (x->ta == CLASP_TOWER_AUDIO && !o->audio_augment) {
        dopt->audio_augment = true;
        if (t->rank == 0)
            CLASP_INFO("--pair %s: two views with the audio augmentation (--audio-augment)",
                       x->pair);
    }
    return CLASP_OK;
}

/* Source k's loader. */
static clasp_status open_source_(trainer *t, int k) {
    const clasp_train_options *o = &t->o;
    source_rt *x = &t->src[k];
    x->spec = o->sources[k].spec;
    x->weight = o->sources[k].weight;
    if (!x->spec || !*x->spec || !(x->weight > 0) || !isfinite(x->weight))
        return clasp_set_error(CLASP_ERR_ARG, "training source %d: needs a spec and a weight > 0",
                               k + 1);
    if (o->sources[k].pair) {
        CLASP_TRY(clasp_pair_parse(o->sources[k].pair, &x->ta, &x->tb));
    } else {
        x->ta = t->e.ta; /* the engine's default: image-text, else the model's two towers */
        x->tb = t->e.tb;
    }
    snprintf(x->pair, sizeof x->pair, "%s-%s", clasp_tower_name(x->ta), clasp_tower_name(x->tb));
    clasp_data_options dopt = clasp_data_default_options();
    if (x->ta == x->tb) CLASP_TRY(two_views_(t, k, &dopt));
    dopt.spec = x->spec;
    /* source 0 keeps the run seed (single-source runs read as before); others derive one */
    dopt.seed = k == 0 ? o->seed : clasp_splitmix64(o->seed ^ (0x5352430000ull + (uint64_t)k));
    dopt.batch_size = t->local_b;
    dopt.rank = t->rank;
    dopt.world = t->world;
    dopt.split = o->data_split;
    dopt.workers = o->workers;
    dopt.shuffle_buffer = o->shuffle_buffer;
    dopt.samples_per_epoch = o->samples_per_epoch;
    dopt.train = true;
    dopt.required = need_of_(x->ta) | need_of_(x->tb);
    dopt.audio_augment = dopt.audio_augment || o->audio_augment;
    if (o->image_augment) dopt.image_augment = &t->img_aug;
    dopt.on_error = o->on_error_fail ? CLASP_ON_ERROR_FAIL : CLASP_ON_ERROR_SKIP;
    clasp_status s = clasp_data_open(&dopt, &t->pre, &x->data);
    if (s != CLASP_OK)
        return clasp_wrap_error(s, "training source %d (%s, %s)", k + 1, x->pair, x->spec);
    return CLASP_OK;
}

/* Data: one loader per source (--train alone is one source of the default pair). */
static clasp_status open_sources_(trainer *t) {
    clasp_train_options *o = &t->o;
    if (o->n_sources <= 0) {
        o->n_sources = 1;
        o->sources[0] = (clasp_train_source){.spec = o->train_spec, .pair = NULL, .weight = 1};
    }
    if (o->n_sources > CLASP_TRAIN_MAX_SOURCES)
        return clasp_set_error(CLASP_ERR_ARG, "at most %d training sources",
                               CLASP_TRAIN_MAX_SOURCES);
    o->train_spec = o->sources[0].spec;
    t->img_aug = clasp_image_augment_default_config();
    if (o->image_augment && strcmp(o->image_augment, "default") != 0) {
        cJSON *aj = NULL;
        clasp_status s = clasp_json_load(o->image_augment, &aj);
        if (s == CLASP_OK)
            s = clasp_image_augment_config_from_json(aj, o->image_augment, "", &t->img_aug);
        cJSON_Delete(aj);
        if (s == CLASP_OK) s = clasp_image_augment_config_check(&t->img_aug);
        if (s != CLASP_OK) return s;
    }
    for (int k = 0; k < o->n_sources; k++) {
        CLASP_TRY(open_source_(t, k));
        t->n_src = k + 1;
    }
    return CLASP_OK;
}

/* --steps, or epochs x the sum over sources of full batches per epoch; equal on every rank. */
static clasp_status count_steps_(trainer *t) {
    const clasp_train_options *o = &t->o;
    t->steps_per_epoch = 0;
    t->total = o->steps;
    if (t->total <= 0) {
        for (int k = 0; k < t->n_src; k++) {
            int64_t n_samples = 0;
            CLASP_TRY(clasp_data_epoch_samples(t->src[k].data, &n_samples));
            int64_t spe = n_samples / t->local_b; /* n_samples is this rank's share */
            if (spe < 1)
                return clasp_set_error(
                    CLASP_ERR_ARG, "%s: %lld usable samples are fewer than one batch of %d",
                    t->src[k].spec, (long long)n_samples * t->world, o->batch_size);
            t->steps_per_epoch += spe;
        }
        t->total = t->steps_per_epoch * o->epochs;
    }
    return clasp_dist_check_equal((uint64_t)t->total, "the number of steps");
}

/* AdamW over parameter segments (one per tensor), the run state, the batch buffers. */
static clasp_status setup_optim_(trainer *t) {
    const clasp_train_options *o = &t->o;
    clasp_model *m = t->m;
    clasp_adamw_config ac = {.lr = o->lr,
                             .beta1 = o->beta1,
                             .beta2 = o->beta2,
                             .eps = o->eps,
                             .weight_decay = o->weight_decay};
    CLASP_TRY(clasp_adamw_init(&t->opt, m->n_floats, ac));
    t->segs = calloc((size_t)m->n_params, sizeof *t->segs);
    t->group_buf = malloc((size_t)o->batch_size * sizeof(int32_t));
    t->gid_all = malloc((size_t)o->batch_size * sizeof(uint64_t));
    t->lab_all = malloc((size_t)o->batch_size * sizeof(int64_t));
    t->lab64 = malloc((size_t)o->batch_size * sizeof(uint64_t));
    t->grp_tmp = malloc(3 * (size_t)o->batch_size * sizeof(int32_t));
    t->resume_key = resume_key_(o, t->total, t->world, t->src, t->n_src);
    if (!t->segs || !t->group_buf || !t->gid_all || !t->lab_all || !t->lab64 || !t->grp_tmp ||
        !t->resume_key)
        return clasp_set_error(CLASP_ERR_NOMEM, "trainer: out of memory");
    for (int i = 0; i < m->n_params; i++)
        t->segs[i] = (clasp_param_seg){m->info[i].offset, m->info[i].numel, m->info[i].decay,
                                       t->frozen[m->info[i].tower],
                                       t->has_groups ? &t->groups[m->info[i].tower] : NULL};
    /* what checkpoints hold; state a loss or tower adds (a queue of keys, momentum copies)
     * joins with clasp_runstate_register here */
    clasp_runstate_init(&t->rs, m, &t->opt, t->config_json);
    t->rs.resume_key = t->resume_key;
    clasp_loss_tensor lt[CLASP_RUNSTATE_MAX_REGISTERED];
    int nlt = clasp_engine_loss_tensors(&t->e, lt, CLASP_RUNSTATE_MAX_REGISTERED);
    for (int i = 0; i < nlt; i++) /* key queues, momentum copy (optim.safetensors) */
        CLASP_TRY(clasp_runstate_register(&t->rs, CLASP_CKPT_FILE_OPTIM, lt[i].name, lt[i].ndim,
                                          lt[i].shape, lt[i].data));
    t->rs.n_sources = t->n_src;
    for (int k = 0; k < t->n_src; k++) {
        t->rs.data[k] = t->src[k].data;
        t->rs.pair[k] = t->src[k].pair;
    }
    return CLASP_OK;
}

/* --resume: the run folder's version, then the checkpoint (latest or a folder). */
static clasp_status resume_(trainer *t) {
    const clasp_train_options *o = &t->o;
    CLASP_TRY(clasp_run_check_version(o->out_dir));
    char dir[4096];
    const char *where = !strcmp(o->resume, "latest") ? o->out_dir : o->resume;
    CLASP_TRY(clasp_ckpt_resolve(where, dir, sizeof dir));
    return clasp_runstate_restore(&t->rs, dir, o->model_config);
}

/* Rank 0's config.json and options.json. */
static clasp_status write_run_files_(trainer *t) {
    char path[4300];
    snprintf(path, sizeof path, "%s/config.json", t->o.out_dir);
    CLASP_TRY(clasp_json_save(path, t->config_json));
    cJSON *oj = options_json_(t);
    clasp_status s = oj ? clasp_run_write_options(t->o.out_dir, oj)
                        : clasp_set_error(CLASP_ERR_NOMEM, "trainer: out of memory");
    cJSON_Delete(oj);
    return s;
}

/* The Prometheus figures known before the first step, published once: a --metrics-textfile that
 * cannot be written stops the run here rather than after hours. */
static clasp_status start_prom_(trainer *t) {
    clasp_train_metrics *mx = &t->mx;
    mx->pub = t->o.metrics_pub;
    mx->textfile = t->o.metrics_textfile;
    mx->flops_per_sample = t->flops_per_sample;
    clasp_train_snapshot *sn = &mx->snap;
    sn->step = t->rs.step;
    sn->total_steps = t->total;
    sn->epoch = epoch_(t);
    sn->samples = t->rs.samples;
    sn->skipped_steps = t->rs.skipped_steps;
    sn->world = t->world;
    sn->start_unix = clasp_train_unix_now();
    sn->n_sources = t->n_src;
    for (int k = 0; k < t->n_src; k++)
        snprintf(sn->pair[k], sizeof sn->pair[k], "%s", t->src[k].pair);
    sn->lr = clasp_lr_cosine(t->rs.step, t->o.warmup, t->total, t->o.lr);
    sn->logit_scale = exp((double)t->m->params[t->m->logit_scale_offset]);
    clasp_status s = clasp_metrics_publish(mx, true);
    return s == CLASP_OK ? s : clasp_wrap_error(s, "--metrics-textfile");
}

/* The run folder: a resumed or a fresh run, the ranks' agreement, config.json, options.json,
 * metrics. */
static clasp_status open_run_(trainer *t) {
    const clasp_train_options *o = &t->o;
    CLASP_TRY(clasp_mkdir_p(o->out_dir));
    if (t->rank == 0) CLASP_TRY(clasp_run_lock(o->out_dir, &t->run_lock));
    if (o->resume) {
        CLASP_TRY(resume_(t));
    } else {
        char path[4300];
        snprintf(path, sizeof path, "%s/checkpoints/latest", o->out_dir);
        struct stat sb;
        if (stat(path, &sb) == 0)
            return clasp_set_error(CLASP_ERR_STATE,
                                   "%s already holds a run (checkpoints/latest): use --resume "
                                   "latest or another --out",
                                   o->out_dir);
    }
    if (t->world > 1) {
        /* every rank starts from rank 0's state (equal already when every rank read the same
         * checkpoint; this also covers a lagging shared filesystem) */
        CLASP_TRY(clasp_runstate_bcast(&t->rs));
        CLASP_TRY(clasp_dist_check_equal((uint64_t)t->rs.step, "the resumed step"));
    }
    clasp_engine_sync_params(&t->e);
    if (t->rank == 0) CLASP_TRY(write_run_files_(t));
    CLASP_TRY(clasp_metrics_open(&t->mx, o->out_dir, t->rank == 0, o->resume ? t->rs.step : -1));
    t->mx.progress = o->progress;
    t->mx.batch_size = o->batch_size;
    t->mx.per_source = t->n_src > 1 || o->sources[0].pair;
    t->mx.n_sources = t->n_src;
    for (int k = 0; k < t->n_src; k++) t->mx.pair[k] = t->src[k].pair;
    /* FLOPs of source 0's pair */
    t->flops_per_sample =
        clasp_metrics_train_flops(t->m, t->src[0].ta, t->src[0].tb, o->batch_size);
    t->mx.t_start = clasp_metrics_now();
    return start_prom_(t);
}

static clasp_status setup_(trainer *t) {
    CLASP_TRY(setup_model_(t));
    CLASP_TRY(open_sources_(t));
    CLASP_TRY(count_steps_(t));
    CLASP_TRY(setup_optim_(t));
    return open_run_(t);
}

/* ---- the loop ----------------------------------------------------------------------------- */

static clasp_status save_(trainer *t, clasp_train_summary *sum) {
    CLASP_TRY(clasp_runstate_save(&t->rs, t->o.out_dir, t->o.keep, sum->checkpoint,
                                  sizeof sum->checkpoint));
    clasp_metrics_checkpoint(&t->mx, t->rs.step);
    return CLASP_OK;
}

/* AdamW on a finite step (logit scale clamped, replicas synced), else a counted skip. */
static void update_(trainer *t, bool finite, double lr, double gnorm) {
    clasp_model *m = t->m;
    if (finite) {
        clasp_adamw_step(&t->opt, m->params, m->grads, t->segs, m->n_params, lr);
        float *ls = &m->params[m->logit_scale_offset];
        const float scale_max = (float)t->cfg.max_logit_scale;
        if (*ls < 0.0f) *ls = 0.0f;
        if (*ls > scale_max) *ls = scale_max;
        clasp_engine_sync_params(&t->e);
        clasp_engine_momentum_update(&t->e); /* no-op without momentum keys */
        t->bad_streak = 0;
        return;
    }
    t->rs.skipped_steps++;
    t->bad_streak++;
    if (t->rank == 0)
        CLASP_WARN("step %lld: non-finite loss or gradient (loss %g, grad norm %g): step skipped "
                   "(%d in a row)",
                   (long long)t->rs.step, (double)t->st.loss, gnorm, t->bad_streak);
}

/* The temperature the loss used this step (-1 for a loss without one): the option's value
 * (fixed or scheduled), else 1 / the logit scale the step started from. */
static double temperature_(const trainer *t) {
    if (t->temp_opt < 0) return -1;
    const clasp_loss_config *c = &t->e.opt.loss;
    if (c->set >> t->temp_opt & 1u) return c->value[t->temp_opt];
    return exp(-(double)t->step_log_scale);
}

/* The collapse watch on this step's diagnostics. A warning when either tower's mean
 * per-dimension std falls under the threshold; a run whose std comes back above twice the
 * threshold (a dip early in warmup, say) is told so, and warned again if it falls again. */
static void collapse_watch_(trainer *t, int64_t step) {
    const double lo = t->o.collapse_std;
    const float a = t->st.feat_std_a, b = t->st.feat_std_b;
    if (!t->collapsed && (a < (float)lo || b < (float)lo)) {
        CLASP_WARN("step %lld: features are collapsing (mean per-dimension std %.4g / %.4g "
                   "below %.4g)",
                   (long long)step, (double)a, (double)b, lo);
        t->collapsed = true;
        t->collapse_step = step;
        t->collapse_warnings++;
    } else if (t->collapsed && a >= (float)(2 * lo) && b >= (float)(2 * lo)) {
        CLASP_INFO("step %lld: features recovered (mean per-dimension std %.4g / %.4g, collapsing "
                   "since step %lld)",
                   (long long)step, (double)a, (double)b, (long long)t->collapse_step);
        t->collapsed = false;
    }
}

/* Diagnostics (every 10 steps and on log steps), the collapse watch and the train line of the
 * step just done. */
static void log_step_(trainer *t, int source, double lr, double gnorm, bool finite) {
    const clasp_train_options *o = &t->o;
    const int64_t step = t->rs.step;
    const clasp_step_stats *st = &t->st;
    bool log_now = step % o->log_every == 0 || step == t->total;
    if (!log_now && step % 10 != 0) return;
    clasp_engine_diag(&t->e, &t->st);
    if (finite && st->feat_std_a > 0 && t->rank == 0) collapse_watch_(t, step);
    if (!log_now) return;
    clasp_train_line l = {.step = step,
                          .samples = t->rs.samples,
                          .skipped_steps = t->rs.skipped_steps,
                          .epoch = epoch_(t),
                          .source = source,
                          .ta = t->e.ta,
                          .tb = t->e.tb,
                          .loss = (double)st->loss,
                          .lr = lr,
                          .logit_scale = exp((double)t->m->params[t->m->logit_scale_offset]),
                          .temperature = temperature_(t),
                          .grad_norm = gnorm,
                          .st = st};
    clasp_metrics_train_line(&t->mx, &l, skips_all_(t->src, t->n_src), t->total);
}

/* One optimiser step: the step's source's batch, gradients, AdamW, timing and the train line. */
static clasp_status step_(trainer *t, clasp_train_summary *sum) {
    const clasp_train_options *o = &t->o;
    clasp_model *m = t->m;
    double t0 = clasp_metrics_now();
    const clasp_batch *b = NULL;
    const int ks = pick_source_(o->seed, t->rs.step, t->src, t->n_src);
    source_rt *cur = &t->src[ks];
    CLASP_TRY(clasp_data_next(cur->data, &b));
    double t1 = clasp_metrics_now();
    const int32_t *groups = NULL;
    if (t->e.key_models != NULL) {
        /* a key queue (MoCo) stores caption groups that must hold across steps: hashes, not
         * the batch's dense ids (--positives label|both is refused with --queue) */
        CLASP_TRY(clasp_dist_allgather(t->gid_all, b->group_ids, b->n * sizeof(uint64_t)));
        hash_groups_(t->group_buf, t->gid_all, b->n * (size_t)t->world);
        groups = t->group_buf;
    } else {
        CLASP_TRY(make_groups_(t, cur, b, &groups, sum));
    }
    if (t->tsched.kind) { /* this step's scheduled temperature, as a fixed one */
        t->e.opt.loss.value[t->temp_opt] = clasp_temp_schedule_at(&t->tsched, t->rs.step, t->total);
        t->e.opt.loss.set |= 1u << t->temp_opt;
    }
    double lr = clasp_lr_cosine(t->rs.step, o->warmup, t->total, o->lr);
    t->step_log_scale = m->params[m->logit_scale_offset];
    CLASP_TRY(clasp_engine_grads_pair(&t->e, cur->ta, batch_input_(b, cur->ta, 0), cur->tb,
                                      batch_input_(b, cur->tb, cur->ta == cur->tb), groups,
                                      (int)b->n, &t->st));
    clasp_data_release(cur->data, b);
    double gnorm = clasp_clip_grad_norm(m->grads, t->segs, m->n_params, o->clip_norm);
    bool finite = isfinite(t->st.loss) && isfinite(gnorm);
    update_(t, finite, lr, gnorm);
    t->rs.step++;
    t->rs.samples += o->batch_size;
    clasp_metrics_step_time(&t->mx, t0, t1, clasp_metrics_now());
    sum->final_loss = (double)t->st.loss;
    if (finite) clasp_metrics_add_loss(&t->mx, ks, (double)t->st.loss);
    log_step_(t, ks, lr, gnorm, finite);
    return clasp_metrics_check(&t->mx);
}

/* With several ranks: every rank stops at the same step (a signal may reach them at different
 * steps), and every --check-every steps the ranks' parameters agree. */
static clasp_status agree_(trainer *t, bool *stop) {
    int64_t flag = *stop;
    CLASP_TRY(clasp_dist_allreduce_max_i64(&flag, 1));
    *stop = flag != 0;
    if (t->o.check_every > 0 && t->rs.step % t->o.check_every == 0) {
        char what[96];
        snprintf(what, sizeof what, "the parameters (xxh64) after step %lld",
                 (long long)t->rs.step);
        CLASP_TRY(clasp_dist_check_equal(
            clasp_hash64(t->m->params, t->m->n_floats * sizeof(float), 0), what));
    }
    return CLASP_OK;
}

/* After a step: the non-finite guard, stopping, evaluation and checkpoints on schedule. */
static clasp_status after_step_(trainer *t, clasp_train_summary *sum, bool *stop) {
    const clasp_train_options *o = &t->o;
    const int64_t step = t->rs.step;
    if (t->bad_streak >= o->max_bad_steps) {
        save_(t, sum);
        return clasp_set_error(CLASP_ERR_NUMERIC,
                               "%d consecutive steps had a non-finite loss or gradient; stopped "
                               "at step %lld (checkpoint written)",
                               t->bad_streak, (long long)step);
    }
    fault_inject_(step);
    *stop = g_stop_signal || (o->stop_after > 0 && t->mx.steps >= o->stop_after);
    if (t->world > 1) CLASP_TRY(agree_(t, stop));
    if (t->mx.steps == 1) clasp_dist_reset_stats(); /* steady state: from step 2 on */
    if (o->val_every > 0 && step % o->val_every == 0 && step < t->total)
        CLASP_TRY(evaluate_(t, sum));
    if ((o->save_every > 0 && step % o->save_every == 0) || *stop) CLASP_TRY(save_(t, sum));
    if (*stop) {
        if (o->progress) fputc('\n', stderr);
        if (t->rank == 0)
            CLASP_WARN("stopped at step %lld (%s); resume with --resume latest", (long long)step,
                       g_stop_signal ? "signal" : "--stop-after");
        sum->interrupted = true;
    }
    return CLASP_OK;
}

static clasp_status loop_(trainer *t, clasp_train_summary *sum) {
    while (t->rs.step < t->total) {
        bool stop = false;
        CLASP_TRY(step_(t, sum));
        CLASP_TRY(after_step_(t, sum, &stop));
        if (stop) return CLASP_ERR_INTERRUPTED;
    }
    return CLASP_OK;
}

/* After the loop (finished, or stopped with s = CLASP_ERR_INTERRUPTED): the last checkpoint and
 * evaluation of a finished run, the summary. */
static clasp_status finish_(trainer *t, clasp_train_summary *sum, clasp_status s) {
    const clasp_train_options *o = &t->o;
    clasp_metrics_loop_end(&t->mx, sum);
    if (s == CLASP_OK) {
        if (o->save_every == 0 || t->rs.step % o->save_every != 0) CLASP_TRY(save_(t, sum));
        CLASP_TRY(evaluate_(t, sum));
    }
    sum->steps = t->rs.step;
    sum->samples = t->rs.samples;
    sum->skipped_steps = t->rs.skipped_steps;
    sum->collapse_warnings = t->collapse_warnings;
    sum->collapsed = t->collapsed;
    if (t->collapsed && t->rank == 0)
        CLASP_WARN("features still collapsed at step %lld (mean per-dimension std %.4g / %.4g; "
                   "collapsing since step %lld)",
                   (long long)t->rs.step, (double)t->st.feat_std_a, (double)t->st.feat_std_b,
                   (long long)t->collapse_step);
    sum->skipped_samples = 0;
    for (int k = 0; k < t->n_src; k++)
        sum->skipped_samples += clasp_data_skipped_total(t->src[k].data);
    clasp_metrics_summary(&t->mx, sum, t->flops_per_sample, t->e.opt.threads, t->rank == 0);
    clasp_metrics_close(&t->mx);
    return s != CLASP_OK ? s : clasp_metrics_check(&t->mx);
}

clasp_status clasp_train(const clasp_train_options *o, clasp_train_summary *sum) {
    trainer t;
    memset(&t, 0, sizeof t);
    clasp_status s = begin_(&t, o, sum);
    if (s != CLASP_OK) {
        cJSON_Delete(t.config_json);
        clasp_preprocess_free(&t.pre);
        return s;
    }
    struct sigaction old_int, old_term;
    install_signals_(&old_int, &old_term);
    s = setup_(&t);
    if (s == CLASP_OK) s = loop_(&t, sum);
    if (s == CLASP_OK || s == CLASP_ERR_INTERRUPTED) s = finish_(&t, sum, s);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    trainer_free_(&t);
    return s;
}
