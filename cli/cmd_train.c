/* cmd_train.c: `clasp train`: parses options into clasp_train_options and runs the trainer. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "train/dist.h"
#include "eval/eval.h"
#include "loss/moco.h"
#include "loss/registry.h"
#include "train/temperature.h"
#include "net/http.h"
#include "net/prom.h"
#include "train/prom.h"
#include "train/trainer.h"

#define MAX_LOSS_FLAGS 16 /* distinct option names over the loss registry */

/* The option values of one invocation; the table below points into it. */
typedef struct train_args {
    clasp_train_options o;
    char pair_buf[CLASP_TRAIN_MAX_SOURCES][32]; /* PAIR of PAIR=SPEC */
    const char *value;                          /* --train, --pair: handled by their callbacks */
    double weight;                              /* --weight: applied by its callback */
    int on_error, data_split;                   /* CHOICE indexes */
    int positives;                              /* CHOICE index, -1: not given */
    const char *loss;                           /* --loss NAME */
    const char *loss_value[MAX_LOSS_FLAGS];     /* --NAME VALUE of loss_flags_[k] */
    const char *metrics_addr;                   /* --metrics-addr HOST:PORT */
    bool metrics_allow_remote;                  /* --metrics-allow-remote */
    char model_file[4096];                      /* --model FOLDER: FOLDER/config.json */
} train_args;

/* --train [PAIR=]SPEC: a new source; the prefix is taken as a pairing only when it parses as one */
static int on_train_(void *ctx, const char *v) {
    train_args *t = ctx;
    clasp_train_options *o = &t->o;
    if (o->n_sources >= CLASP_TRAIN_MAX_SOURCES) {
        fprintf(stderr, "clasp train: at most %d --train sources\n", CLASP_TRAIN_MAX_SOURCES);
        return 2;
    }
    clasp_train_source *src = &o->sources[o->n_sources++];
    *src = (clasp_train_source){.spec = v, .pair = NULL, .weight = 1};
    const char *eq = strchr(v, '=');
    if (eq && (size_t)(eq - v) < sizeof t->pair_buf[0]) {
        char *pb = t->pair_buf[o->n_sources - 1];
        memcpy(pb, v, (size_t)(eq - v));
        pb[eq - v] = '\0';
        clasp_tower ta, tb;
        if (clasp_pair_parse(pb, &ta, &tb) == CLASP_OK) {
            src->pair = pb;
            src->spec = eq + 1;
        }
    }
    o->train_spec = o->sources[0].spec;
    return 0;
}

/* The source --pair and --weight apply to: the preceding --train. */
static clasp_train_source *preceding_(train_args *t, const char *opt) {
    if (t->o.n_sources > 0) return &t->o.sources[t->o.n_sources - 1];
    fprintf(stderr, "clasp train: %s applies to the preceding --train\n", opt);
    return NULL;
}

static int on_pair_(void *ctx, const char *v) {
    clasp_train_source *src = preceding_(ctx, "--pair");
    if (!src) return 2;
    clasp_tower ta, tb;
    if (clasp_pair_parse(v, &ta, &tb) != CLASP_OK) {
        fprintf(stderr, "clasp train: --pair: %s\n", clasp_last_error());
        return 2;
    }
    src->pair = v;
    return 0;
}

static int on_weight_(void *ctx, const char *v) {
    train_args *t = ctx;
    clasp_train_source *src = preceding_(t, "--weight");
    if (!src) return 2;
    if (!(t->weight > 0)) {
        fprintf(stderr, "clasp train: --weight expects a number > 0, got '%s'\n", v);
        return 2;
    }
    src->weight = t->weight;
    return 0;
}

/* --loss NAME: the loss of the run, looked up in the loss registry (loss/registry.h). */
static int parse_loss_(const char *v, clasp_train_options *o) {
    if (clasp_loss_find(v, &o->loss.def) != CLASP_OK) {
        fprintf(stderr, "clasp train: --loss: %s\n", clasp_last_error());
        return 2;
    }
    return 0;
}

#define O(field) offsetof(train_args, o.field)
#define A(field) offsetof(train_args, field)
static const char s_data[] = "data and model", s_sched[] = "schedule", s_mach[] = "machine",
                  s_dist[] =
                      "data parallel (mpirun -np N clasp train ..., built with CLASP_MPI=ON)",
                  s_log[] = "logging and checkpoints",
                  s_prom[] = "Prometheus metrics (series: docs/metrics.md)";
static clasp_arg train_table[] = {
    /* --loss lists the registry: see names_from_registry_ */
    CLASP_ARG_COMMAND(
        "train",
        "--model configs/NAME.json --train [PAIR=]SPEC [--train ...] --out RUN\n [options]",
        "Trains the model's towers with a contrastive loss on paired samples from WebDataset\n"
        "shards. RUN receives config.json, options.json, metrics.jsonl and checkpoints/.\n",
        NULL),
    {"model", 0, CLASP_ARG_STRING, O(model_config), "FILE",
     "model config (configs/*.json), or an export folder (its config.json: with --init EXPORT, "
     "fine-tune it, e.g. an imported OpenCLIP model)",
     s_data, CLASP_ARG_IN | CLASP_ARG_REQ, 0, 0, NULL, NULL},
    {"train", 0, CLASP_ARG_STRING, A(value), "SPEC",
     "training shards: brace ranges, '::' lists, pipe:CMD, -\nRepeat for several sources mixed in "
     "one run; a source's pairing as a prefix PAIR=SPEC (e.g. 'audio-text=a-{0..3}.tar') or with "
     "--pair after it (default: image-text, or the model's two towers). Each step draws one source "
     "by weight from a counter RNG keyed by (seed, step) and trains that pair; towers are shared "
     "across sources (text binds audio and images: train image-text and audio-text together)",
     s_data, CLASP_ARG_REQ, 0, 0, NULL, on_train_},
    {"pair", 0, CLASP_ARG_STRING, A(value), "PAIR",
     "pairing of the preceding --train: image-text, audio-text, audio-image, ...; image-image or "
     "audio-audio: two independently augmented views of each sample (SimCLR; needs a two-view "
     "loss such as --loss ntxent; default augmentation on unless --image-augment/--audio-augment "
     "is given)",
     s_data, 0, 0, 0, NULL, on_pair_},
    {"weight", 0, CLASP_ARG_DOUBLE, A(weight), "W",
     "mixing weight of the preceding --train (default 1)", s_data, 0, 0, 0, NULL, on_weight_},
    {"freeze", 0, CLASP_ARG_STRING, O(freeze), "LIST",
     "towers kept fixed (no gradient, no update): image, text, audio, shared (logit scale); e.g. "
     "--freeze image,text",
     s_data, 0, 0, 0, NULL, NULL},
    {"init", 0, CLASP_ARG_STRING, O(init), "MODEL",
     "start from an export, checkpoint or run's parameters by name (tensors it lacks, e.g. a new "
     "audio tower, keep their fresh init; a shape mismatch is an error naming the tensor)",
     s_data, CLASP_ARG_DIR, 0, 0, NULL, NULL},
    {"audio-augment", 0, CLASP_ARG_FLAG, O(audio_augment), NULL,
     "gain, time shift and SpecAugment masks on training audio", s_data, 0, 0, 0, NULL, NULL},
    {"image-augment", 0, CLASP_ARG_STRING, O(image_augment), "A",
     "training image augmentation: 'default' (random-resized-crop 0.08-1, horizontal flip 0.5) or "
     "a JSON file with the fields of modalities/augment.h (scale, ratio, hflip, brightness, "
     "contrast, saturation, grayscale)",
     s_data, CLASP_ARG_IN, 0, 0, NULL, NULL},
    {"on-error", 0, CLASP_ARG_CHOICE, A(on_error), NULL,
     "a missing or unreadable shard is counted and skipped (default) or stops the run", s_data, 0,
     0, 0, "skip|fail", NULL},
    {"val", 0, CLASP_ARG_STRING, O(val_spec), "SPEC",
     "evaluation shards (zero-shot during and after training)", s_data, 0, 0, 0, NULL, NULL},
    {"zeroshot", 0, CLASP_ARG_STRING, O(zeroshot), "FILE",
     "class names, one per line (needs --val)", s_data, CLASP_ARG_IN, 0, 0, NULL, NULL},
    {"templates", 0, CLASP_ARG_STRING, O(templates), "FILE",
     "prompt templates, one per line, '{}' = class name", s_data, CLASP_ARG_IN, 0, 0, NULL, NULL},
    {"out", 0, CLASP_ARG_STRING, O(out_dir), "RUN", "run folder", s_data,
     CLASP_ARG_DIR | CLASP_ARG_REQ, 0, 0, NULL, NULL},
    {"resume", 0, CLASP_ARG_STRING, O(resume), "latest|CKPT",
     "continue a run exactly where its checkpoint stopped", s_data, CLASP_ARG_DIR, 0, 0, NULL,
     NULL},
    {"epochs", 0, CLASP_ARG_INT, O(epochs), "E", "passes over the training shards (default 1)",
     s_sched, 0, 1, 0, NULL, NULL},
    {"steps", 0, CLASP_ARG_INT64, O(steps), "N", "optimiser steps (overrides --epochs)", s_sched, 0,
     1, 0, NULL, NULL},
    {"samples-per-epoch", 0, CLASP_ARG_INT64, O(samples_per_epoch), "N",
     "epoch length with shard resampling instead of exact epochs", s_sched, 0, 1, 0, NULL, NULL},
    {"batch-size", 0, CLASP_ARG_INT, O(batch_size), "B",
     "rows per step, all negatives of the loss (default 256); with mpirun -np N the global batch: "
     "each rank computes B/N rows",
     s_sched, 0, 1, 0, NULL, NULL},
    {"accum-steps", 0, CLASP_ARG_INT, O(accum_steps), "K",
     "exact large-batch loss from K micro-batches (default 1)", s_sched, 0, 1, 0, NULL, NULL},
    {"lr", 0, CLASP_ARG_DOUBLE, O(lr), "X", "peak learning rate (default 1e-3)", s_sched, 0, 0, 0,
     NULL, NULL},
    {"warmup", 0, CLASP_ARG_INT64, O(warmup), "N", "linear warmup steps, then cosine (default 100)",
     s_sched, 0, 0, 0, NULL, NULL},
    {"wd", 0, CLASP_ARG_DOUBLE, O(weight_decay), "X",
     "AdamW weight decay on conv/linear weights (default 0.1)", s_sched, 0, 0, 0, NULL, NULL},
    {"lr-scale", 0, CLASP_ARG_STRING, O(lr_scale), "TOWER=X,...",
     "per-tower learning rate: the tower's lr is --lr x X under the same warmup and cosine, e.g. "
     "--lr-scale image=0.1 to fine-tune a pretrained image tower gently (towers: image, text, "
     "audio, shared = logit scale; default 1; 0 keeps the tower's weights fixed but still computes "
     "its gradient: --freeze is cheaper; not for a frozen tower)",
     s_sched, 0, 0, 0, NULL, NULL},
    {"tower-wd", 0, CLASP_ARG_STRING, O(tower_wd), "TOWER=X,...",
     "per-tower AdamW weight decay on that tower's conv/linear weights, replacing --wd there, e.g. "
     "--tower-wd image=0.05,text=0.2 (the logit scale has none; not for a frozen tower)",
     s_sched, 0, 0, 0, NULL, NULL},
    {"beta1", 0, CLASP_ARG_DOUBLE, O(beta1), "X", "AdamW beta1 (default 0.9)", s_sched, 0, 0, 0,
     NULL, NULL},
    {"beta2", 0, CLASP_ARG_DOUBLE, O(beta2), "X", "AdamW beta2 (default 0.98)", s_sched, 0, 0, 0,
     NULL, NULL},
    {"eps", 0, CLASP_ARG_DOUBLE, O(eps), "X", "AdamW epsilon (default 1e-6)", s_sched, 0, 0, 0,
     NULL, NULL},
    {"clip-norm", 0, CLASP_ARG_DOUBLE, O(clip_norm), "X",
     "clip gradients to this global norm (default off)", s_sched, 0, 0, 0, NULL, NULL},
    {"loss", 0, CLASP_ARG_STRING, A(loss), "infonce|siglip", "contrastive loss (default infonce)",
     s_sched, 0, 0, 0, NULL, NULL},
    {"temperature-schedule", 0, CLASP_ARG_STRING, O(temperature_schedule), "KIND:START:END",
     "temperature over the run's steps instead of --temperature or a learnable one: "
     "cosine:START:END or linear:START:END (losses with a --temperature)",
     s_sched, 0, 0, 0, NULL, NULL},
    {"multi-positive", 0, CLASP_ARG_FLAG, O(multi_positive), NULL,
     "pairs with the same caption are all positives (= --positives caption)", s_sched, 0, 0, 0,
     NULL, NULL},
    {"positives", 0, CLASP_ARG_CHOICE, A(positives), NULL,
     "rows that are positives of each other in the global batch: same caption, same .cls label "
     "(every sample needs one), or either (caption OR label, closed transitively); for SupCon and "
     "multi-positive InfoNCE/SigLIP (default: each row's own pair; label for losses that need "
     "groups)",
     s_sched, 0, 0, 0, "caption|label|both", NULL},
    {"seed", 0, CLASP_ARG_U64, O(seed), "S", "run seed (default 0)", s_sched, 0, 0, 0, NULL, NULL},
    {"threads", 0, CLASP_ARG_INT, O(threads), "N", "compute threads (default 2)", s_mach, 0, 1, 0,
     NULL, NULL},
    {"chunks", 0, CLASP_ARG_INT, O(chunks), "N",
     "batch replicas; results depend on chunks, not on threads (default = threads)", s_mach, 0, 1,
     0, NULL, NULL},
    {"precision", 0, CLASP_ARG_CHOICE, O(precision), NULL,
     "precision of the matrix products: fp32, or bf16 inputs with fp32 accumulation as PyTorch "
     "autocast (default: the model config's \"precision\", else fp32)",
     s_mach, 0, 0, 0, "fp32|bf16", NULL},
    {"workers", 0, CLASP_ARG_INT, O(workers), "N", "decode threads (default 1)", s_mach, 0, 1, 0,
     NULL, NULL},
    {"shuffle-buffer", 0, CLASP_ARG_INT, O(shuffle_buffer), "N",
     "samples in the shuffle buffer (default 2000)", s_mach, 0, 1, 0, NULL, NULL},
    {"data-split", 0, CLASP_ARG_CHOICE, A(data_split), NULL,
     "ranks read their own shards (default), or each its rows of the one-process stream (equals "
     "one process; every rank decodes all samples: for checks and small data)",
     s_dist, 0, 0, 0, "shards|samples", NULL},
    {"dist-timeout", 0, CLASP_ARG_DOUBLE, O(dist_timeout), "S",
     "a collective waiting longer than S seconds aborts the job (default 600; 0 = wait forever)",
     s_dist, 0, 0, 0, NULL, NULL},
    {"check-every", 0, CLASP_ARG_INT64, O(check_every), "N",
     "check every N steps that all ranks hold the same parameters (default 100; 0 = off)", s_dist,
     0, 0, 0, NULL, NULL},
    {"log-every", 0, CLASP_ARG_INT, O(log_every), "N", "metrics line every N steps (default 50)",
     s_log, 0, 1, 0, NULL, NULL},
    {"val-every", 0, CLASP_ARG_INT64, O(val_every), "N",
     "zero-shot evaluation every N steps (default: at the end)", s_log, 0, 0, 0, NULL, NULL},
    {"save-every", 0, CLASP_ARG_INT64, O(save_every), "N",
     "checkpoint every N steps (default: at the end)", s_log, 0, 0, 0, NULL, NULL},
    {"keep", 0, CLASP_ARG_INT, O(keep), "N", "checkpoints kept (default 3)", s_log, 0, 0, 0, NULL,
     NULL},
    {"max-bad-steps", 0, CLASP_ARG_INT, O(max_bad_steps), "K",
     "stop after K consecutive non-finite steps (default 5)", s_log, 0, 1, 0, NULL, NULL},
    {"collapse-std", 0, CLASP_ARG_DOUBLE, O(collapse_std), "X",
     "warn when the features collapse: mean per-dimension std below X (default 0.01); a note when "
     "it is back above 2X",
     s_log, 0, 0, 0, NULL, NULL},
    {"stop-after", 0, CLASP_ARG_INT64, O(stop_after), "N",
     "stop after N steps of this invocation, with a checkpoint", s_log, 0, 1, 0, NULL, NULL},
    {"progress", 0, CLASP_ARG_FLAG, O(progress), NULL,
     "progress bar on stderr (default: when stderr is a terminal)", s_log, 0, 0, 0, NULL, NULL},
    {"no-progress", 0, CLASP_ARG_FLAG, O(progress), NULL, "no progress bar", s_log, CLASP_ARG_CLEAR,
     0, 0, NULL, NULL},
    {"json", 0, CLASP_ARG_FLAG, O(json), NULL, "print a JSON summary on stdout", s_log,
     CLASP_ARG_STDOUT, 0, 0, NULL, NULL},
    {"metrics-addr", 0, CLASP_ARG_STRING, A(metrics_addr), "HOST:PORT",
     "serve GET /metrics (Prometheus text format) on this address while training, e.g. "
     "127.0.0.1:9108 (port 0: a free port, printed); loopback only unless "
     "--metrics-allow-remote",
     s_prom, 0, 0, 0, NULL, NULL},
    {"metrics-allow-remote", 0, CLASP_ARG_FLAG, A(metrics_allow_remote), NULL,
     "let --metrics-addr bind a non-loopback address (the figures are then readable by anyone "
     "reaching it)",
     s_prom, 0, 0, 0, NULL, NULL},
    {"metrics-textfile", 0, CLASP_ARG_STRING, O(metrics_textfile), "FILE",
     "rewrite FILE atomically with the same figures after each log line (node_exporter's "
     "textfile collector: name it *.prom in its folder)",
     s_prom, 0, 0, 0, NULL, NULL},
    CLASP_ARG_END,
};
#undef O
#undef A

/* The loss options: one "--NAME VALUE" entry per distinct option name of the loss registry
 * (loss/registry.h), made from the entries' tables, so a new option is a line of its loss's
 * entry. Its help is the first declaring entry's, followed by the losses that take it. */
#define N_TRAIN_ARGS (sizeof train_table / sizeof train_table[0])
static clasp_arg full_table_[N_TRAIN_ARGS + MAX_LOSS_FLAGS];
static const char *loss_flags_[MAX_LOSS_FLAGS];
static char loss_help_[MAX_LOSS_FLAGS][512], loss_meta_[MAX_LOSS_FLAGS][128];

/* " triplet (default 0.2)": a loss taking the option and its default, when the default is a
 * value of the option (an unset temperature means learnable: its help says so). */
static void loss_and_default_(char *buf, size_t cap, const clasp_loss_option *op,
                              const char *loss) {
    bool valid = op->choices || (op->min_exclusive ? op->def > op->min : op->def >= op->min);
    if (!valid)
        snprintf(buf, cap, " %s", loss);
    else if (op->choices)
        snprintf(buf, cap, " %s (default %s)", loss, op->choices[(int)op->def]);
    else
        snprintf(buf, cap, " %s (default %g)", loss, op->def);
}

static void add_loss_flag_(int *n, const clasp_loss_option *op, const char *loss) {
    int k = 0;
    while (k < *n && strcmp(loss_flags_[k], op->name)) k++;
    if (k == MAX_LOSS_FLAGS) return; /* then --help lacks it: test_loss_train fails */
    char one[160];
    loss_and_default_(one, sizeof one, op, loss);
    size_t len = strlen(loss_help_[k]);
    if (k == *n) {
        loss_flags_[(*n)++] = op->name;
        snprintf(loss_help_[k], sizeof loss_help_[k], "%s. --loss%s", op->help, one);
        snprintf(loss_meta_[k], sizeof loss_meta_[k], "X");
        for (int c = 0; op->choices && op->choices[c]; c++) {
            size_t ml = c ? strlen(loss_meta_[k]) : 0;
            snprintf(loss_meta_[k] + ml, sizeof loss_meta_[k] - ml, "%s%s", c ? "|" : "",
                     op->choices[c]);
        }
    } else if (len < sizeof loss_help_[k]) {
        snprintf(loss_help_[k] + len, sizeof loss_help_[k] - len, ",%s", one);
    }
}

static const clasp_arg *table_(void) {
    static int built;
    if (built) return full_table_;
    size_t n = 0;
    for (; train_table[n].name; n++) full_table_[n] = train_table[n];
    int nf = 0;
    for (int i = 0; i < clasp_loss_count(); i++) {
        const clasp_loss_def *d = clasp_loss_at(i);
        for (int k = 0; k < d->n_options; k++) add_loss_flag_(&nf, &d->options[k], d->name);
    }
    for (int k = 0; k < nf; k++)
        full_table_[n++] =
            (clasp_arg){.name = loss_flags_[k],
                        .kind = CLASP_ARG_STRING,
                        .off = offsetof(train_args, loss_value) + (size_t)k * sizeof(const char *),
                        .meta = loss_meta_[k],
                        .help = loss_help_[k],
                        .section = "loss options (each applies to the losses named; see --loss)"};
    full_table_[n] = (clasp_arg)CLASP_ARG_END;
    built = 1;
    return full_table_;
}

/* The loss options given, into o->loss (after --loss); a usage error names the flag. */
static int apply_loss_options_(train_args *t) {
    for (int k = 0; k < MAX_LOSS_FLAGS; k++) {
        if (!t->loss_value[k]) continue;
        if (clasp_loss_config_set(&t->o.loss, loss_flags_[k], t->loss_value[k]) != CLASP_OK)
            return clasp_args_usage_error(table_(), "%s", clasp_last_error());
    }
    const clasp_loss_def *d = clasp_loss_config_def(&t->o.loss);
    const unsigned set = t->o.loss.set;
    const int ib = clasp_loss_option_index(d, "hard-negatives"),
              ip = clasp_loss_option_index(d, "tau-plus");
    const bool groups = t->o.multi_positive || t->o.positives != CLASP_POSITIVES_NONE;
    if (groups && ((ib >= 0 && (set >> ib & 1u)) || (ip >= 0 && (set >> ip & 1u))))
        return clasp_args_usage_error(table_(), "--hard-negatives and --tau-plus take one "
                                                "positive per row: not with --multi-positive or "
                                                "--positives");
    clasp_temp_schedule ts;
    if (clasp_temp_schedule_for_loss(&t->o.loss, t->o.temperature_schedule, &ts) != CLASP_OK)
        return clasp_args_usage_error(table_(), "%s", clasp_last_error());
    return 0;
}

/* Fills t from argv; returns true to run, else *rc is the exit code. */
static bool train_parse_(train_args *t, int argc, char **argv, int *rc) {
    t->o = clasp_train_default_options();
    t->o.zeroshot_fn = clasp_eval_zeroshot_for_train;
    t->o.progress = isatty(2);
    t->positives = -1;
    if (!clasp_args_parse(table_(), t, argc, argv, rc)) return false;
    struct stat st;
    if (t->o.model_config && stat(t->o.model_config, &st) == 0 && S_ISDIR(st.st_mode)) {
        int w = snprintf(t->model_file, sizeof t->model_file, "%s/config.json", t->o.model_config);
        if (w < 0 || (size_t)w >= sizeof t->model_file) {
            *rc = clasp_args_usage_error(table_(), "--model: path too long");
            return false;
        }
        t->o.model_config = t->model_file;
    }
    if (t->positives >= 0) {
        if (t->o.multi_positive && t->positives != 0) {
            *rc = clasp_args_usage_error(table_(), "--multi-positive is --positives caption: "
                                                   "not with --positives label|both");
            return false;
        }
        t->o.positives = (clasp_positives)(t->positives + 1);
    }
    t->o.on_error_fail = t->on_error == 1;
    t->o.data_split = t->data_split == 1 ? CLASP_DATA_SPLIT_SAMPLES : CLASP_DATA_SPLIT_SHARDS;
    if (t->loss && (*rc = parse_loss_(t->loss, &t->o)) != 0) return false;
    if ((*rc = apply_loss_options_(t)) != 0) return false;
    if (clasp_moco_check(&t->o.loss, (size_t)t->o.batch_size) != CLASP_OK) {
        *rc = clasp_args_usage_error(table_(), "%s", clasp_last_error());
        return false;
    }
    const int iq = clasp_loss_option_index(clasp_loss_config_def(&t->o.loss), "queue");
    if (iq >= 0 && clasp_loss_config_get(&t->o.loss, iq) > 0 &&
        (t->o.positives == CLASP_POSITIVES_LABEL || t->o.positives == CLASP_POSITIVES_BOTH)) {
        /* queued keys carry caption groups that hold across steps; label groups do not */
        *rc = clasp_args_usage_error(table_(), "--queue keeps caption groups with its keys: not "
                                               "with --positives label|both");
        return false;
    }
    if (t->o.zeroshot && !t->o.val_spec) {
        *rc = clasp_args_usage_error(table_(), "--zeroshot needs --val SPEC");
        return false;
    }
    if (t->o.metrics_textfile && (!*t->o.metrics_textfile || !strcmp(t->o.metrics_textfile, "-"))) {
        *rc = clasp_args_usage_error(table_(), "--metrics-textfile needs a file name");
        return false;
    }
    if (t->metrics_allow_remote && !t->metrics_addr) {
        *rc = clasp_args_usage_error(table_(), "--metrics-allow-remote needs --metrics-addr");
        return false;
    }
    return true;
}

/* The loss and the options given ({"margin": 0.3, "mining": "semi-hard"}) into j. */
static void add_loss_(cJSON *j, const clasp_train_options *o) {
    cJSON_AddStringToObject(j, "loss", clasp_loss_config_def(&o->loss)->name);
    clasp_loss_config_add_json(&o->loss, cJSON_AddObjectToObject(j, "loss_options"));
    if (o->temperature_schedule)
        cJSON_AddStringToObject(j, "temperature_schedule", o->temperature_schedule);
}

/* GET /metrics: the trainer's last published figures (train/prom.h), rendered on the server's
 * thread; the trainer only ever waits for the snapshot copy. */
static void serve_metrics_(void *user, const clasp_http_request *req, clasp_http_response *res) {
    (void)req;
    clasp_train_snapshot snap;
    clasp_train_publisher_read(user, &snap);
    clasp_prom_buf b;
    clasp_prom_init(&b);
    clasp_train_prom_render(&snap, clasp_train_unix_now(), &b);
    if (clasp_prom_finish(&b) != CLASP_OK) {
        clasp_prom_free(&b);
        clasp_http_respond_text(res, 500, NULL, clasp_last_error());
        return;
    }
    clasp_http_respond_take(res, 200, CLASP_PROM_CONTENT_TYPE, b.data, b.len);
}

/* --metrics-addr: the server on rank 0; a bad or busy address is a usage error naming it. */
static int start_metrics_(train_args *t, clasp_train_publisher *pub, clasp_http_server **srv) {
    *srv = NULL;
    if (!t->metrics_addr || clasp_dist_rank() != 0) return 0;
    clasp_http_route routes[] = {{"GET", "/metrics", serve_metrics_, pub}};
    clasp_http_config c = clasp_http_default_config();
    c.addr = t->metrics_addr;
    c.allow_remote = t->metrics_allow_remote;
    c.routes = routes;
    c.n_routes = 1;
    c.max_body = 4096; /* GET only */
    if (clasp_http_start(&c, srv) != CLASP_OK)
        return clasp_args_usage_error(table_(), "--metrics-addr: %s", clasp_last_error());
    t->o.metrics_pub = pub;
    char host[300];
    snprintf(host, sizeof host, "%s", t->metrics_addr);
    char *colon = strrchr(host, ':'); /* start checked HOST:PORT */
    if (colon) *colon = '\0';
    fprintf(stderr, "clasp train: metrics on http://%s:%d/metrics\n", host, clasp_http_port(*srv));
    return 0;
}

/* The --json summary line. */
static void print_summary_(const clasp_train_summary *sum, const clasp_train_options *o) {
    cJSON *j = cJSON_CreateObject();
    static const char *const names[] = {
        "steps",         "samples",        "seconds",       "samples_per_s", "data_wait_frac",
        "gflops",        "final_loss",     "zeroshot_top1", "zeroshot_top5", "zeroshot_mean_recall",
        "skipped_steps", "skipped_samples"};
    const double values[] = {
        (double)sum->steps,        (double)sum->samples,       sum->seconds,
        sum->samples_per_s,        sum->data_wait_frac,        sum->gflops,
        sum->final_loss,           sum->zeroshot_top1,         sum->zeroshot_top5,
        sum->zeroshot_mean_recall, (double)sum->skipped_steps, (double)sum->skipped_samples};
    clasp_cli_add_numbers(j, names, values, sizeof values / sizeof values[0]);
    add_loss_(j, o);
    cJSON_AddStringToObject(j, "precision", clasp_precision_name(sum->precision));
    cJSON_AddBoolToObject(j, "interrupted", sum->interrupted);
    cJSON_AddNumberToObject(j, "collapse_warnings", sum->collapse_warnings);
    cJSON_AddBoolToObject(j, "collapsed", sum->collapsed);
    cJSON_AddStringToObject(j, "checkpoint", sum->checkpoint);
    clasp_cli_print_json(j, false);
}

/* --loss's placeholder in --help: the registry's names ("infonce|siglip"). */
static void names_from_registry_(void) {
    static char names[256];
    clasp_loss_names(names, sizeof names, "|");
    for (clasp_arg *a = train_table + 1; a->name; a++) /* entry 0: the command */
        if (!strcmp(a->name, "loss")) a->meta = names;
    table_();
}

int clasp_cmd_train(int argc, char **argv) {
    static train_args t; /* the sources keep pointers into pair_buf */
    int rc;
    names_from_registry_();
    if (!train_parse_(&t, argc, argv, &rc)) return rc;
    clasp_train_options o = t.o; /* the run's options, as parsed (+ the metrics publisher) */
    /* Under mpirun every rank runs this; an error on any rank ends the whole job (MPI_Abort),
     * since the other ranks would otherwise wait in their next collective. */
    clasp_status s = clasp_dist_init();
    if (s != CLASP_OK) {
        fprintf(stderr, "clasp train: error: %s\n", clasp_last_error());
        return 1;
    }
    static clasp_train_publisher pub;
    clasp_train_publisher_init(&pub);
    clasp_http_server *srv = NULL;
    if ((rc = start_metrics_(&t, &pub, &srv)) != 0) {
        if (clasp_dist_world() > 1) clasp_dist_abort(rc);
        clasp_dist_finalize();
        return rc;
    }
    o.metrics_pub = t.o.metrics_pub;
    clasp_train_summary sum;
    s = clasp_train(&o, &sum);
    clasp_http_stop(srv);
    clasp_train_publisher_free(&pub);
    if (s != CLASP_OK && s != CLASP_ERR_INTERRUPTED) {
        if (clasp_dist_world() > 1) {
            fprintf(stderr, "clasp train: error on rank %d of %d: %s\n", clasp_dist_rank(),
                    clasp_dist_world(), clasp_last_error());
            fflush(stderr);
            clasp_dist_abort(1);
        }
        fprintf(stderr, "clasp train: error: %s\n", clasp_last_error());
        clasp_dist_finalize();
        return sum.usage_error ? 2 : 1;
    }
    bool report = clasp_dist_rank() == 0;
    clasp_dist_finalize();
    if (o.json && report) print_summary_(&sum, &o);
    return s == CLASP_OK ? 0 : 3;
}
