/* cmd_train.c: `clasp train`: parses options into clasp_train_options and runs the trainer. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/commands.h"
#include "train/dist.h"
#include "eval/eval.h"
#include "train/trainer.h"

static void train_usage_(FILE *f) {
    fputs(
        "usage: clasp train --model configs/NAME.json --train [PAIR=]SPEC [--train ...] --out RUN\n"
        "                   [options]\n"
        "\n"
        "Trains the model's towers with a contrastive loss on paired samples from WebDataset\n"
        "shards. RUN receives config.json, options.json, metrics.jsonl and checkpoints/.\n"
        "\n"
        "data and model\n"
        "  --model FILE          model config (configs/*.json)\n"
        "  --train SPEC          training shards: brace ranges, '::' lists, pipe:CMD, -\n"
        "                        Repeat for several sources mixed in one run; a source's\n"
        "                        pairing as a prefix PAIR=SPEC (e.g. 'audio-text=a-{0..3}.tar')\n"
        "                        or with --pair after it (default: image-text, or the model's\n"
        "                        two towers). Each step draws one source by weight from a\n"
        "                        counter RNG keyed by (seed, step) and trains that pair;\n"
        "                        towers are shared across sources (text binds audio and\n"
        "                        images: train image-text and audio-text together)\n"
        "  --pair PAIR           pairing of the preceding --train: image-text, audio-text,\n"
        "                        audio-image, ...\n"
        "  --weight W            mixing weight of the preceding --train (default 1)\n"
        "  --freeze LIST         towers kept fixed (no gradient, no update): image, text,\n"
        "                        audio, shared (logit scale); e.g. --freeze image,text\n"
        "  --init MODEL          start from an export, checkpoint or run's parameters by name\n"
        "                        (tensors it lacks, e.g. a new audio tower, keep their fresh\n"
        "                        init; a shape mismatch is an error naming the tensor)\n"
        "  --audio-augment       gain, time shift and SpecAugment masks on training audio\n"
        "  --image-augment A     training image augmentation: 'default' (random-resized-crop\n"
        "                        0.08-1, horizontal flip 0.5) or a JSON file with the fields\n"
        "                        of modalities/augment.h (scale, ratio, hflip, brightness,\n"
        "                        contrast, saturation, grayscale)\n"
        "  --on-error skip|fail  a missing or unreadable shard is counted and skipped\n"
        "                        (default) or stops the run\n"
        "  --val SPEC            evaluation shards (zero-shot during and after training)\n"
        "  --zeroshot FILE       class names, one per line (needs --val)\n"
        "  --templates FILE      prompt templates, one per line, '{}' = class name\n"
        "  --out RUN             run folder\n"
        "  --resume latest|CKPT  continue a run exactly where its checkpoint stopped\n",
        f);
    fputs("schedule\n"
          "  --epochs E            passes over the training shards (default 1)\n"
          "  --steps N             optimiser steps (overrides --epochs)\n"
          "  --samples-per-epoch N epoch length with shard resampling instead of exact epochs\n"
          "  --batch-size B        rows per step, all negatives of the loss (default 256); with\n"
          "                        mpirun -np N the global batch: each rank computes B/N rows\n"
          "  --accum-steps K       exact large-batch loss from K micro-batches (default 1)\n"
          "  --lr X                peak learning rate (default 1e-3)\n"
          "  --warmup N            linear warmup steps, then cosine (default 100)\n"
          "  --wd X                AdamW weight decay on conv/linear weights (default 0.1)\n"
          "  --beta1 X --beta2 X --eps X   AdamW (defaults 0.9, 0.98, 1e-6)\n"
          "  --clip-norm X         clip gradients to this global norm (default off)\n",
          f);
    char losses[256]; /* the loss registry's names */
    clasp_loss_names(losses, sizeof losses, "|");
    fprintf(f, "  --loss %-14s contrastive loss (default %s)\n", losses,
            clasp_loss_default()->name);
    fputs("  --multi-positive      pairs with the same caption are all positives\n"
          "  --seed S              run seed (default 0)\n"
          "machine\n"
          "  --threads N           compute threads (default 2)\n"
          "  --chunks N            batch replicas; results depend on chunks, not on threads\n"
          "                        (default = threads)\n"
          "  --workers N           decode threads (default 1)\n"
          "  --shuffle-buffer N    samples in the shuffle buffer (default 2000)\n"
          "data parallel (mpirun -np N clasp train ..., built with CLASP_MPI=ON)\n"
          "  --data-split shards|samples  ranks read their own shards (default), or each its\n"
          "                        rows of the one-process stream (equals one process; every\n"
          "                        rank decodes all samples: for checks and small data)\n"
          "  --dist-timeout S      a collective waiting longer than S seconds aborts the job\n"
          "                        (default 600; 0 = wait forever)\n"
          "  --check-every N       check every N steps that all ranks hold the same parameters\n"
          "                        (default 100; 0 = off)\n"
          "logging and checkpoints\n"
          "  --log-every N         metrics line every N steps (default 50)\n"
          "  --val-every N         zero-shot evaluation every N steps (default: at the end)\n"
          "  --save-every N        checkpoint every N steps (default: at the end)\n"
          "  --keep N              checkpoints kept (default 3)\n"
          "  --max-bad-steps K     stop after K consecutive non-finite steps (default 5)\n"
          "  --stop-after N        stop after N steps of this invocation, with a checkpoint\n"
          "  --no-progress         no progress bar\n"
          "  --json                print a JSON summary on stdout\n",
          f);
}

static int need_(int argc, char **argv, int i) {
    if (i + 1 >= argc) {
        fprintf(stderr, "clasp train: %s needs a value\n", argv[i]);
        return 0;
    }
    return 1;
}

static int parse_i64_(const char *opt, const char *s, int64_t lo, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < lo) {
        fprintf(stderr, "clasp train: %s expects an integer >= %lld, got '%s'\n", opt,
                (long long)lo, s);
        return 0;
    }
    *out = v;
    return 1;
}

static int parse_f64_(const char *opt, const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !isfinite(v) || v < 0) {
        fprintf(stderr, "clasp train: %s expects a non-negative number, got '%s'\n", opt, s);
        return 0;
    }
    *out = v;
    return 1;
}

int clasp_cmd_train(int argc, char **argv) {
    clasp_train_options o = clasp_train_default_options();
    o.zeroshot_fn = clasp_eval_zeroshot_for_train;
    o.progress = isatty(2);
    static char pair_buf[CLASP_TRAIN_MAX_SOURCES][32];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int64_t iv;
        double dv;
#define STR_OPT(name, field)                                                                       \
    if (!strcmp(a, name)) {                                                                        \
        if (!need_(argc, argv, i)) return 2;                                                       \
        o.field = argv[++i];                                                                       \
        continue;                                                                                  \
    }
#define INT_OPT(name, field, lo)                                                                   \
    if (!strcmp(a, name)) {                                                                        \
        if (!need_(argc, argv, i) || !parse_i64_(name, argv[++i], lo, &iv)) return 2;              \
        o.field = iv;                                                                              \
        continue;                                                                                  \
    }
#define NUM_OPT(name, field)                                                                       \
    if (!strcmp(a, name)) {                                                                        \
        if (!need_(argc, argv, i) || !parse_f64_(name, argv[++i], &dv)) return 2;                  \
        o.field = dv;                                                                              \
        continue;                                                                                  \
    }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            train_usage_(stdout);
            return 0;
        }
        STR_OPT("--model", model_config)
        if (!strcmp(a, "--train")) {
            if (!need_(argc, argv, i)) return 2;
            if (o.n_sources >= CLASP_TRAIN_MAX_SOURCES) {
                fprintf(stderr, "clasp train: at most %d --train sources\n",
                        CLASP_TRAIN_MAX_SOURCES);
                return 2;
            }
            const char *v = argv[++i];
            clasp_train_source *src = &o.sources[o.n_sources++];
            *src = (clasp_train_source){.spec = v, .pair = NULL, .weight = 1};
            /* PAIR=SPEC: the prefix is taken as a pairing only when it parses as one */
            const char *eq = strchr(v, '=');
            if (eq && (size_t)(eq - v) < sizeof pair_buf[0]) {
                char *pb = pair_buf[o.n_sources - 1];
                memcpy(pb, v, (size_t)(eq - v));
                pb[eq - v] = '\0';
                clasp_tower ta, tb;
                if (clasp_pair_parse(pb, &ta, &tb) == CLASP_OK) {
                    src->pair = pb;
                    src->spec = eq + 1;
                }
            }
            o.train_spec = o.sources[0].spec;
            continue;
        }
        if (!strcmp(a, "--pair") || !strcmp(a, "--weight")) {
            if (!need_(argc, argv, i)) return 2;
            if (o.n_sources == 0) {
                fprintf(stderr, "clasp train: %s applies to the preceding --train\n", a);
                return 2;
            }
            clasp_train_source *src = &o.sources[o.n_sources - 1];
            const char *v = argv[++i];
            if (!strcmp(a, "--pair")) {
                clasp_tower ta, tb;
                if (clasp_pair_parse(v, &ta, &tb) != CLASP_OK) {
                    fprintf(stderr, "clasp train: --pair: %s\n", clasp_last_error());
                    return 2;
                }
                src->pair = v;
            } else {
                if (!parse_f64_(a, v, &dv) || !(dv > 0)) {
                    fprintf(stderr, "clasp train: --weight expects a number > 0, got '%s'\n", v);
                    return 2;
                }
                src->weight = dv;
            }
            continue;
        }
        STR_OPT("--freeze", freeze)
        STR_OPT("--init", init)
        if (!strcmp(a, "--audio-augment")) {
            o.audio_augment = true;
            continue;
        }
        STR_OPT("--image-augment", image_augment)
        if (!strcmp(a, "--on-error")) {
            if (!need_(argc, argv, i)) return 2;
            const char *v = argv[++i];
            if (!strcmp(v, "skip") || !strcmp(v, "fail")) {
                o.on_error_fail = !strcmp(v, "fail");
            } else {
                fprintf(stderr, "clasp train: --on-error must be skip or fail, got '%s'\n", v);
                return 2;
            }
            continue;
        }
        STR_OPT("--val", val_spec)
        STR_OPT("--out", out_dir)
        STR_OPT("--resume", resume)
        STR_OPT("--zeroshot", zeroshot)
        STR_OPT("--templates", templates)
        INT_OPT("--steps", steps, 1)
        INT_OPT("--epochs", epochs, 1)
        INT_OPT("--samples-per-epoch", samples_per_epoch, 1)
        INT_OPT("--batch-size", batch_size, 1)
        INT_OPT("--accum-steps", accum_steps, 1)
        NUM_OPT("--lr", lr)
        INT_OPT("--warmup", warmup, 0)
        NUM_OPT("--wd", weight_decay)
        NUM_OPT("--beta1", beta1)
        NUM_OPT("--beta2", beta2)
        NUM_OPT("--eps", eps)
        NUM_OPT("--clip-norm", clip_norm)
        INT_OPT("--seed", seed, 0)
        INT_OPT("--threads", threads, 1)
        INT_OPT("--chunks", chunks, 1)
        INT_OPT("--workers", workers, 1)
        INT_OPT("--shuffle-buffer", shuffle_buffer, 1)
        INT_OPT("--log-every", log_every, 1)
        INT_OPT("--val-every", val_every, 0)
        INT_OPT("--save-every", save_every, 0)
        INT_OPT("--keep", keep, 0)
        INT_OPT("--max-bad-steps", max_bad_steps, 1)
        NUM_OPT("--collapse-std", collapse_std)
        INT_OPT("--stop-after", stop_after, 1)
        NUM_OPT("--dist-timeout", dist_timeout)
        INT_OPT("--check-every", check_every, 0)
        if (!strcmp(a, "--data-split")) {
            if (!need_(argc, argv, i)) return 2;
            const char *v = argv[++i];
            if (!strcmp(v, "shards")) {
                o.data_split = CLASP_DATA_SPLIT_SHARDS;
            } else if (!strcmp(v, "samples")) {
                o.data_split = CLASP_DATA_SPLIT_SAMPLES;
            } else {
                fprintf(stderr, "clasp train: --data-split must be shards or samples, got '%s'\n",
                        v);
                return 2;
            }
            continue;
        }
        if (!strcmp(a, "--loss")) {
            if (!need_(argc, argv, i)) return 2;
            const char *v = argv[++i];
            if (clasp_loss_find(v, &o.loss.def) != CLASP_OK) {
                fprintf(stderr, "clasp train: --loss: %s\n", clasp_last_error());
                return 2;
            }
            continue;
        }
        if (!strcmp(a, "--multi-positive")) {
            o.multi_positive = true;
            continue;
        }
        if (!strcmp(a, "--json")) {
            o.json = true;
            continue;
        }
        if (!strcmp(a, "--no-progress")) {
            o.progress = false;
            continue;
        }
        if (!strcmp(a, "--progress")) {
            o.progress = true;
            continue;
        }
        fprintf(stderr, "clasp train: unknown option '%s' (see clasp train --help)\n", a);
        return 2;
#undef STR_OPT
#undef INT_OPT
#undef NUM_OPT
    }
    if (!o.model_config || !o.train_spec || !o.out_dir) {
        fprintf(stderr, "clasp train: --model, --train and --out are required "
                        "(see clasp train --help)\n");
        return 2;
    }
    if (o.zeroshot && !o.val_spec) {
        fprintf(stderr, "clasp train: --zeroshot needs --val SPEC\n");
        return 2;
    }
    /* Under mpirun every rank runs this; an error on any rank ends the whole job (MPI_Abort),
     * since the other ranks would otherwise wait in their next collective. */
    clasp_status s = clasp_dist_init();
    if (s != CLASP_OK) {
        fprintf(stderr, "clasp train: error: %s\n", clasp_last_error());
        return 1;
    }
    clasp_train_summary sum;
    s = clasp_train(&o, &sum);
    if (s != CLASP_OK && s != CLASP_ERR_INTERRUPTED) {
        if (clasp_dist_world() > 1) {
            fprintf(stderr, "clasp train: error on rank %d of %d: %s\n", clasp_dist_rank(),
                    clasp_dist_world(), clasp_last_error());
            fflush(stderr);
            clasp_dist_abort(1);
        }
        fprintf(stderr, "clasp train: error: %s\n", clasp_last_error());
        clasp_dist_finalize();
        return 1;
    }
    bool report = clasp_dist_rank() == 0;
    clasp_dist_finalize();
    if (o.json && report) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "steps", (double)sum.steps);
        cJSON_AddNumberToObject(j, "samples", (double)sum.samples);
        cJSON_AddNumberToObject(j, "seconds", sum.seconds);
        cJSON_AddNumberToObject(j, "samples_per_s", sum.samples_per_s);
        cJSON_AddNumberToObject(j, "data_wait_frac", sum.data_wait_frac);
        cJSON_AddNumberToObject(j, "gflops", sum.gflops);
        cJSON_AddNumberToObject(j, "final_loss", sum.final_loss);
        cJSON_AddNumberToObject(j, "zeroshot_top1", sum.zeroshot_top1);
        cJSON_AddNumberToObject(j, "zeroshot_top5", sum.zeroshot_top5);
        cJSON_AddNumberToObject(j, "zeroshot_mean_recall", sum.zeroshot_mean_recall);
        cJSON_AddNumberToObject(j, "skipped_steps", (double)sum.skipped_steps);
        cJSON_AddNumberToObject(j, "skipped_samples", (double)sum.skipped_samples);
        cJSON_AddBoolToObject(j, "interrupted", sum.interrupted);
        cJSON_AddStringToObject(j, "checkpoint", sum.checkpoint);
        char *text = cJSON_PrintUnformatted(j);
        if (text) puts(text);
        free(text);
        cJSON_Delete(j);
    }
    return s == CLASP_OK ? 0 : 3;
}
