/* trainer.c: the training loop: data, engine, AdamW, guards, metrics, evaluation,
 * checkpoints, exact resume, signals. See trainer.h. */
#include "train/trainer.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/json.h"
#include "core/log.h"
#include "encoders/model.h"
#include "modalities/augment.h"
#include "train/checkpoint.h"
#include "pipeline/data.h"
#include "train/dist.h"
#include "train/optim.h"
#include "core/rng.h"

#define TRAINER_FORMAT_VERSION 1

clasp_train_options clasp_train_default_options(void) {
    clasp_train_options o;
    memset(&o, 0, sizeof o);
    o.epochs = 1;
    o.batch_size = 256;
    o.accum_steps = 1;
    o.lr = 1e-3;
    o.warmup = 100;
    o.weight_decay = 0.1;
    o.beta1 = 0.9;
    o.beta2 = 0.98;
    o.eps = 1e-6;
    o.loss.def = clasp_loss_default();
    o.threads = 2;
    o.workers = 1;
    o.shuffle_buffer = 2000;
    o.log_every = 50;
    o.keep = 3;
    o.max_bad_steps = 5;
    o.collapse_std = 0.01;
    o.data_split = CLASP_DATA_SPLIT_SHARDS;
    o.dist_timeout = 600;
    o.check_every = 100;
    return o;
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

/* ---- helpers ------------------------------------------------------------------------------ */

static double now_(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Model FLOPs per training sample (3 x forward MACs x 2), for the summary's GFLOP/s. */
static double model_train_flops_(const clasp_model *m, int B) {
    const clasp_model_config *c = &m->config;
    double macs = 0;
    if (c->image.type == CLASP_IMAGE_CNN) {
        int C = c->image.channels, H = c->image.size;
        for (int i = 0; i < c->image.n_conv; i++) {
            const clasp_conv_block *b = &c->image.conv[i];
            int OH = (H + 2 * b->padding - b->kernel) / b->stride + 1;
            macs += (double)OH * OH * b->channels * C * b->kernel * b->kernel;
            C = b->channels;
            H = b->pool > 0 ? OH / b->pool : OH;
        }
        int in = C * H * H;
        for (int i = 0; i < c->image.n_fc; i++) {
            macs += (double)in * c->image.fc[i];
            in = c->image.fc[i];
        }
        macs += (double)in * c->embed_dim;
    } else if (c->image.type == CLASP_IMAGE_VIT) {
        int P = c->image.patch_size, N = (c->image.size / P) * (c->image.size / P);
        int T = N + (c->image.pool == CLASP_POOL_CLS), W = c->image.width;
        macs += (double)N * c->image.channels * P * P * W;
        macs += (double)c->image.layers *
                ((double)T * W * 4 * W + 2.0 * T * T * W + 2.0 * T * W * c->image.mlp_width);
        macs += (double)W * c->embed_dim;
    }
    if (c->text.type == CLASP_TEXT_TRANSFORMER) {
        int T = c->text.context_length, W = c->text.width;
        macs += (double)c->text.layers *
                ((double)T * W * 4 * W + 2.0 * T * T * W + 2.0 * T * W * c->text.mlp_width);
        macs += (double)W * c->embed_dim;
    }
    macs += (double)B * c->embed_dim; /* one row of the logits */
    return 6.0 * macs;
}

static void write_metrics_(FILE *f, cJSON *obj) {
    if (!f) return; /* ranks other than 0 keep no metrics */
    char *line = cJSON_PrintUnformatted(obj);
    if (line) {
        fputs(line, f);
        fputc('\n', f);
        fflush(f);
    }
    free(line);
}

/* Keeps the metrics lines of steps <= `step` (dropping summaries), so that a resumed run's
 * metrics.jsonl reads as one uninterrupted run. A missing file is fine. */
static clasp_status metrics_truncate_(const char *path, int64_t step) {
    char *text;
    size_t n;
    FILE *f = fopen(path, "rb");
    if (!f) return CLASP_OK;
    fclose(f);
    CLASP_TRY(clasp_read_file(path, (size_t)1 << 30, &text, &n));
    char *out = malloc(n + 1);
    if (!out) {
        free(text);
        return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t k = 0;
    for (char *line = text; line < text + n;) {
        char *nl = memchr(line, '\n', (size_t)(text + n - line));
        size_t len = nl ? (size_t)(nl - line) + 1 : (size_t)(text + n - line);
        cJSON *j = cJSON_ParseWithLength(line, len);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "step");
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(j, "kind");
        bool keep = j && cJSON_IsNumber(st) && st->valuedouble <= (double)step &&
                    !(cJSON_IsString(kind) && !strcmp(kind->valuestring, "summary"));
        if (keep) {
            memcpy(out + k, line, len);
            k += len;
        }
        cJSON_Delete(j);
        line += len;
    }
    free(text);
    clasp_status s = clasp_write_file_atomic(path, out, k);
    free(out);
    return s;
}

/* One training source at run time. */
typedef struct source_rt {
    clasp_data *data;
    const char *spec;
    clasp_tower ta, tb;
    char pair[32]; /* "audio-text" */
    double weight;
    double loss_sum; /* since the last metrics line */
    int64_t loss_n;
} source_rt;

typedef struct run_state {
    int64_t step;    /* optimiser steps done */
    int64_t samples; /* samples consumed */
    int64_t skipped_steps;
    int bad_streak;
} run_state;

/* Parameters, AdamW moments and optimiser step count as named tensors for checkpoints. */
static clasp_status ckpt_tensors_(const clasp_model *m, const clasp_adamw *opt,
                                  clasp_named_tensor **model_t, clasp_named_tensor **optim_t,
                                  char **names_buf) {
    int n = m->n_params;
    *model_t = calloc((size_t)n, sizeof **model_t);
    *optim_t = calloc((size_t)n * 2, sizeof **optim_t);
    *names_buf = calloc((size_t)n * 2, CLASP_PARAM_NAME_MAX + 2);
    if (!*model_t || !*optim_t || !*names_buf)
        return clasp_set_error(CLASP_ERR_NOMEM, "checkpoint: out of memory");
    for (int i = 0; i < n; i++) {
        const clasp_param_info *p = &m->info[i];
        clasp_named_tensor t = {.name = p->name, .ndim = p->ndim, .data = m->params + p->offset};
        for (int d = 0; d < p->ndim; d++) t.shape[d] = p->shape[d];
        (*model_t)[i] = t;
        char *mn = *names_buf + (size_t)(2 * i) * (CLASP_PARAM_NAME_MAX + 2);
        char *vn = *names_buf + (size_t)(2 * i + 1) * (CLASP_PARAM_NAME_MAX + 2);
        snprintf(mn, CLASP_PARAM_NAME_MAX + 2, "m.%s", p->name);
        snprintf(vn, CLASP_PARAM_NAME_MAX + 2, "v.%s", p->name);
        (*optim_t)[2 * i] = t;
        (*optim_t)[2 * i].name = mn;
        (*optim_t)[2 * i].data = opt->m + p->offset;
        (*optim_t)[2 * i + 1] = t;
        (*optim_t)[2 * i + 1].name = vn;
        (*optim_t)[2 * i + 1].data = opt->v + p->offset;
    }
    return CLASP_OK;
}

/* The options that must match for a resume to be exact. */
static cJSON *resume_key_(const clasp_train_options *o, int64_t total_steps, int world,
                          const source_rt *src, int n_src) {
    cJSON *k = cJSON_CreateObject();
    cJSON_AddNumberToObject(k, "batch_size", o->batch_size);
    cJSON_AddNumberToObject(k, "accum_steps", o->accum_steps);
    cJSON_AddNumberToObject(k, "chunks", o->chunks);
    cJSON_AddNumberToObject(k, "seed", (double)o->seed);
    cJSON_AddNumberToObject(k, "total_steps", (double)total_steps);
    cJSON_AddStringToObject(k, "loss", clasp_loss_config_def(&o->loss)->name);
    cJSON_AddBoolToObject(k, "multi_positive", o->multi_positive);
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

static clasp_status save_ckpt_(const clasp_train_options *o, const clasp_model *m,
                               const clasp_adamw *opt, const run_state *rs, const source_rt *src,
                               int n_src, const cJSON *config_json, int64_t total_steps, char *out,
                               size_t cap) {
    /* Collective: rank 0 collects every rank's loader positions, then writes alone. */
    const int world = clasp_dist_world();
    const size_t per = 5 * (size_t)n_src; /* words per rank */
    uint64_t *all = malloc((size_t)world * per * sizeof *all);
    uint64_t mine[5 * CLASP_TRAIN_MAX_SOURCES];
    if (!all) return clasp_set_error(CLASP_ERR_NOMEM, "checkpoint: out of memory");
    for (int k = 0; k < n_src; k++) {
        clasp_loader_position p = clasp_loader_get_position(clasp_data_loader(src[k].data));
        uint64_t w[5] = {p.epoch, p.consumed, p.emitted, p.batches, p.end_pending};
        memcpy(mine + 5 * (size_t)k, w, sizeof w);
    }
    clasp_status s = clasp_dist_allgather(all, mine, per * sizeof *mine);
    if (s != CLASP_OK || clasp_dist_rank() != 0) {
        free(all);
        return s;
    }
    clasp_named_tensor *mt = NULL, *ot = NULL;
    char *names = NULL;
    s = ckpt_tensors_(m, opt, &mt, &ot, &names);
    cJSON *st = cJSON_CreateObject();
    if (s == CLASP_OK && st) {
        cJSON_AddNumberToObject(st, "format_version", TRAINER_FORMAT_VERSION);
        cJSON_AddNumberToObject(st, "world", world);
        cJSON *loaders = cJSON_AddArrayToObject(st, "loaders");
        for (int r = 0; r < world && loaders; r++) {
            const uint64_t *q = all + per * (size_t)r;
            clasp_loader_position pr = {q[0], q[1], q[2], q[3], q[4] != 0};
            cJSON_AddItemToArray(loaders, clasp_loader_position_to_json(&pr));
        }
        if (n_src > 1) {
            /* sources[k] = {"pair", "loaders": [per rank]}; source 0 repeats "loaders" */
            cJSON *sa = cJSON_AddArrayToObject(st, "sources");
            for (int k = 0; k < n_src && sa; k++) {
                cJSON *x = cJSON_CreateObject();
                cJSON_AddStringToObject(x, "pair", src[k].pair);
                cJSON *la = cJSON_AddArrayToObject(x, "loaders");
                for (int r = 0; r < world && la; r++) {
                    const uint64_t *q = all + per * (size_t)r + 5 * (size_t)k;
                    clasp_loader_position pr = {q[0], q[1], q[2], q[3], q[4] != 0};
                    cJSON_AddItemToArray(la, clasp_loader_position_to_json(&pr));
                }
                cJSON_AddItemToArray(sa, x);
            }
        }
        cJSON_AddNumberToObject(st, "samples", (double)rs->samples);
        cJSON_AddNumberToObject(st, "skipped_steps", (double)rs->skipped_steps);
        cJSON_AddNumberToObject(st, "adam_t", (double)opt->t);
        cJSON_AddItemToObject(st, "resume_key",
                              resume_key_(o, total_steps, clasp_dist_world(), src, n_src));
        cJSON_AddItemToObject(st, "config", cJSON_Duplicate(config_json, 1));
        cJSON *pos = NULL;
        s = clasp_data_position(src[0].data, &pos);
        if (s == CLASP_OK) cJSON_AddItemToObject(st, "loader", pos);
        if (s == CLASP_OK)
            s = clasp_ckpt_save(o->out_dir, rs->step, mt, m->n_params, ot, 2 * m->n_params, st,
                                o->keep, out, cap);
    } else if (s == CLASP_OK) {
        s = clasp_set_error(CLASP_ERR_NOMEM, "checkpoint: out of memory");
    }
    cJSON_Delete(st);
    free(mt);
    free(ot);
    free(names);
    free(all);
    return s;
}

static clasp_status load_ckpt_(const clasp_train_options *o, clasp_model *m, clasp_adamw *opt,
                               run_state *rs, source_rt *src, int n_src, const cJSON *config_json,
                               int64_t total_steps) {
    char dir[4096];
    const char *where = !strcmp(o->resume, "latest") ? o->out_dir : o->resume;
    CLASP_TRY(clasp_ckpt_resolve(where, dir, sizeof dir));
    clasp_ckpt c;
    CLASP_TRY(clasp_ckpt_open(dir, &c));
    clasp_status s = CLASP_OK;
    char sp[4200];
    snprintf(sp, sizeof sp, "%s/state.json", dir);
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(c.state, "config");
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(c.state, "resume_key");
    int64_t world = 1;
    const int my_world = clasp_dist_world();
    if (s == CLASP_OK && cJSON_GetObjectItemCaseSensitive(c.state, "world"))
        s = clasp_json_int(c.state, "world", sp, "", 1, INT32_MAX, &world);
    if (s == CLASP_OK && world != my_world)
        s = clasp_set_error(CLASP_ERR_CONFIG,
                            "%s: field 'world': the checkpoint was written by %lld rank(s), this "
                            "run has %d; the shard split and the loader positions depend on the "
                            "rank count: resume with mpirun -np %lld",
                            sp, (long long)world, my_world, (long long)world);
    cJSON *want = resume_key_(o, total_steps, clasp_dist_world(), src, n_src);
    if (s != CLASP_OK) {
        /* the rank count is reported first: it explains a differing resume_key too */
    } else if (!cfg || !cJSON_Compare(cfg, config_json, 1)) {
        s = clasp_set_error(CLASP_ERR_CONFIG,
                            "%s: field 'config' differs from %s: the checkpoint belongs to another "
                            "model",
                            sp, o->model_config);
    } else if (!key || !cJSON_Compare(key, want, 1)) {
        const cJSON *it;
        const char *field = "resume_key";
        cJSON_ArrayForEach(it, want) {
            const cJSON *had = cJSON_GetObjectItemCaseSensitive(key, it->string);
            if (!had || !cJSON_Compare(had, it, 1)) {
                field = it->string;
                break;
            }
        }
        s = clasp_set_error(CLASP_ERR_CONFIG,
                            "%s: field 'resume_key.%s' differs from this invocation's option: an "
                            "exact resume needs the same value",
                            sp, field);
    }
    cJSON_Delete(want);
    int64_t v;
    if (s == CLASP_OK) s = clasp_json_int(c.state, "step", sp, "", 0, INT64_MAX / 2, &v);
    if (s == CLASP_OK) rs->step = v;
    if (s == CLASP_OK) s = clasp_json_int(c.state, "samples", sp, "", 0, INT64_MAX / 2, &v);
    if (s == CLASP_OK) rs->samples = v;
    if (s == CLASP_OK) s = clasp_json_int(c.state, "skipped_steps", sp, "", 0, INT64_MAX / 2, &v);
    if (s == CLASP_OK) rs->skipped_steps = v;
    if (s == CLASP_OK) s = clasp_json_int(c.state, "adam_t", sp, "", 0, INT64_MAX / 2, &v);
    if (s == CLASP_OK) opt->t = v;
    if (s == CLASP_OK) s = clasp_model_read_tensors(m, c.model, "", m->params);
    if (s == CLASP_OK) s = clasp_model_read_tensors(m, c.optim, "m.", opt->m);
    if (s == CLASP_OK) s = clasp_model_read_tensors(m, c.optim, "v.", opt->v);
    if (s == CLASP_OK) {
        /* this rank's position: loaders[rank] (several ranks) or loader (one) */
        const cJSON *pos = cJSON_GetObjectItemCaseSensitive(c.state, "loader");
        if (my_world > 1)
            pos = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c.state, "loaders"),
                                     clasp_dist_rank());
        if (!pos)
            s = clasp_set_error(CLASP_ERR_FORMAT, "%s: field '%s' missing", sp,
                                my_world > 1 ? "loaders" : "loader");
        else
            s = clasp_data_restore(src[0].data, pos);
        if (s != CLASP_OK)
            clasp_wrap_error(s, "%s: field '%s'", sp, my_world > 1 ? "loaders" : "loader");
    }
    for (int k = 1; k < n_src && s == CLASP_OK; k++) {
        const cJSON *sa = cJSON_GetObjectItemCaseSensitive(c.state, "sources");
        const cJSON *x = cJSON_GetArrayItem(sa, k);
        const cJSON *pos =
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(x, "loaders"), clasp_dist_rank());
        if (!pos)
            s = clasp_set_error(CLASP_ERR_FORMAT, "%s: field 'sources[%d].loaders[%d]' missing", sp,
                                k, clasp_dist_rank());
        else if ((s = clasp_data_restore(src[k].data, pos)) != CLASP_OK)
            clasp_wrap_error(s, "%s: field 'sources[%d].loaders[%d]'", sp, k, clasp_dist_rank());
    }
    if (s == CLASP_OK) CLASP_INFO("resumed from %s at step %lld", dir, (long long)rs->step);
    clasp_ckpt_close(&c);
    return s;
}

static void progress_(const clasp_train_options *o, int64_t step, int64_t total, double loss,
                      double rate, double elapsed) {
    if (!o->progress) return;
    int width = 30, fill = total > 0 ? (int)((double)width * (double)step / (double)total) : 0;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    double eta = rate > 0 ? (double)(total - step) * (double)o->batch_size / rate : 0;
    fprintf(stderr, "\r[%s] %lld/%lld loss %.4f  %.0f samples/s  %.0fs elapsed  ETA %.0fs ", bar,
            (long long)step, (long long)total, loss, rate, elapsed, eta);
    fflush(stderr);
}

/* Single-thread sgemm peak (GFLOP/s): best of a few 512^3 products, the method of
 * ../shared/bench/sgemm_peak.c in miniature (~0.1 s). The summary divides the achieved rate by
 * threads x this, since each compute thread runs a single-threaded OpenBLAS. */
static double sgemm_peak_1t_(void) {
    enum { N = 512 };
    float *a = malloc(sizeof(float) * N * N * 3);
    if (!a) return 0;
    for (size_t i = 0; i < (size_t)N * N * 3; i++) a[i] = (float)(i % 17) * 0.01f;
    double best = 1e30;
    for (int r = 0; r < 8; r++) {
        double t0 = now_();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, a, N, a + N * N, N,
                    0.0f, a + 2 * N * N, N);
        double dt = now_() - t0;
        if (dt < best) best = dt;
    }
    free(a);
    return 2.0 * N * N * N / best / 1e9;
}

static long peak_rss_mib_(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

/* ---- evaluation (zero-shot) ------------------------------------------------------------- */

static clasp_status evaluate_(const clasp_train_options *o, clasp_engine *e, FILE *metrics,
                              const run_state *rs, int epoch, clasp_train_summary *sum) {
    if (!o->val_spec || !o->zeroshot || !o->zeroshot_fn || !metrics)
        return CLASP_OK; /* rank 0 evaluates */
    clasp_train_eval_result zr;
    double t0 = now_();
    CLASP_TRY(o->zeroshot_fn(e, o->val_spec, o->zeroshot, o->templates, o->workers, &zr));
    double dt = now_() - t0;
    sum->zeroshot_top1 = zr.top1;
    sum->zeroshot_top5 = zr.top5;
    sum->zeroshot_mean_recall = zr.mean_recall;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", "eval");
    cJSON_AddNumberToObject(j, "step", (double)rs->step);
    cJSON_AddNumberToObject(j, "epoch", epoch);
    cJSON_AddNumberToObject(j, "samples", (double)rs->samples);
    cJSON_AddNumberToObject(j, "zeroshot_top1", zr.top1);
    cJSON_AddNumberToObject(j, "zeroshot_top5", zr.top5);
    cJSON_AddNumberToObject(j, "zeroshot_mean_recall", zr.mean_recall);
    cJSON_AddNumberToObject(j, "n_images", (double)zr.n);
    cJSON_AddNumberToObject(j, "n_classes", zr.n_classes);
    cJSON_AddNumberToObject(j, "eval_seconds", dt);
    write_metrics_(metrics, j);
    cJSON_Delete(j);
    if (o->progress) fputc('\n', stderr);
    CLASP_INFO("step %lld: zero-shot top-1 %.2f%%  top-5 %.2f%%  mean recall %.2f%%  (%lld images, "
               "%.1f s)",
               (long long)rs->step, 100 * zr.top1, 100 * zr.top5, 100 * zr.mean_recall,
               (long long)zr.n, dt);
    return CLASP_OK;
}

/* ---- the loop ----------------------------------------------------------------------------- */

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

/* --freeze LIST: comma-separated tower names (image, text, audio, shared) into frozen[]. */
static clasp_status parse_freeze_(const char *list, const clasp_model_config *cfg,
                                  bool frozen[CLASP_N_TOWERS]) {
    for (int t = 0; t < CLASP_N_TOWERS; t++) frozen[t] = false;
    if (!list || !*list) return CLASP_OK;
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        int found = -1;
        for (int t = 0; t < CLASP_N_TOWERS; t++) {
            const char *name = clasp_tower_name((clasp_tower)t);
            if (strlen(name) == n && !strncmp(p, name, n)) found = t;
        }
        if (found < 0)
            return clasp_set_error(CLASP_ERR_ARG,
                                   "--freeze '%s': '%.*s' is not a tower (image, text, audio, "
                                   "shared)",
                                   list, (int)n, p);
        if (!clasp_model_config_has(cfg, (clasp_tower)found))
            return clasp_set_error(CLASP_ERR_ARG, "--freeze '%s': the model has no %s tower", list,
                                   clasp_tower_name((clasp_tower)found));
        frozen[found] = true;
        p += n;
        if (*p == ',') p++;
    }
    return CLASP_OK;
}

static bool is_file_(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* --init: copies every parameter of m that `from` (export or checkpoint folder, or a run
 * folder's latest checkpoint) holds by name; others keep their values. */
static clasp_status load_init_(clasp_model *m, const char *from) {
    char dir[4096], path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", from);
    if (is_file_(path)) {
        snprintf(dir, sizeof dir, "%s", from);
    } else {
        CLASP_TRY(clasp_ckpt_resolve(from, dir, sizeof dir));
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
    }
    clasp_safetensors *st = NULL;
    CLASP_TRY(clasp_st_open(path, &st));
    clasp_status s = CLASP_OK;
    int loaded = 0, fresh = 0;
    for (int i = 0; i < m->n_params && s == CLASP_OK; i++) {
        const clasp_param_info *p = &m->info[i];
        const clasp_st_tensor *t = clasp_st_find(st, p->name);
        if (!t) {
            fresh++;
            continue;
        }
        bool same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same) {
            char a[96] = "", b[96] = "";
            for (int d = 0; d < t->ndim; d++)
                snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", d ? ", " : "",
                         (long long)t->shape[d]);
            for (int d = 0; d < p->ndim; d++)
                snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", d ? ", " : "",
                         (long long)p->shape[d]);
            s = clasp_set_error(CLASP_ERR_CONFIG,
                                "--init %s: tensor '%s' has shape [%s] but this model's is [%s] "
                                "(incompatible configs)",
                                path, p->name, a, b);
            break;
        }
        s = clasp_st_read_f32(st, p->name, p->ndim, p->shape, m->params + p->offset);
        if (s == CLASP_OK) loaded++;
    }
    if (s == CLASP_OK && loaded == 0)
        s = clasp_set_error(CLASP_ERR_CONFIG, "--init %s: holds no tensor of this model", path);
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

static const void *batch_input_(const clasp_batch *b, clasp_tower t) {
    if (t == CLASP_TOWER_IMAGE) return b->images;
    if (t == CLASP_TOWER_TEXT) return b->tokens;
    if (t == CLASP_TOWER_AUDIO) return b->audio;
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

clasp_status clasp_train(const clasp_train_options *oin, clasp_train_summary *sum) {
    clasp_train_options o = *oin;
    if (o.chunks <= 0) o.chunks = o.threads;
    memset(sum, 0, sizeof *sum);
    sum->zeroshot_top1 = sum->zeroshot_top5 = sum->zeroshot_mean_recall = -1;
    g_stop_signal = 0;
    CLASP_TRY(clasp_dist_init());
    const int world = clasp_dist_world(), rank = clasp_dist_rank();
    sum->world = world;
    clasp_dist_set_timeout(o.dist_timeout);
    if (o.batch_size % world != 0)
        return clasp_set_error(CLASP_ERR_ARG,
                               "--batch-size %d (the global batch over all ranks) is not divisible "
                               "by the %d ranks",
                               o.batch_size, world);
    const int local_b = o.batch_size / world; /* this rank's rows */
    if (rank != 0) o.progress = false;

    clasp_model_config cfg;
    CLASP_TRY(clasp_model_config_load(o.model_config, &cfg));
    cJSON *config_json = NULL;
    CLASP_TRY(clasp_model_config_to_json(&cfg, &config_json));

    clasp_status s = CLASP_OK;
    clasp_engine e;
    memset(&e, 0, sizeof e);
    clasp_adamw opt;
    memset(&opt, 0, sizeof opt);
    source_rt src[CLASP_TRAIN_MAX_SOURCES];
    memset(src, 0, sizeof src);
    int n_src = 0;
    clasp_param_seg *segs = NULL;
    int32_t *group_buf = NULL;
    uint64_t *gid_all = NULL; /* (B) caption hashes of the global batch */
    FILE *metrics = NULL;
    run_state rs = {0};
    struct sigaction old_int, old_term;
    install_signals_(&old_int, &old_term);

    bool frozen[CLASP_N_TOWERS];
    s = parse_freeze_(o.freeze, &cfg, frozen);
    if (s != CLASP_OK) goto done;
    clasp_engine_options eo = {.batch_size = local_b,
                               .accum_steps = o.accum_steps,
                               .chunks = o.chunks,
                               .threads = o.threads,
                               .loss = o.loss,
                               .multi_positive = o.multi_positive,
                               .rank = rank,
                               .world = world};
    memcpy(eo.frozen, frozen, sizeof frozen);
    s = clasp_engine_init(&e, &cfg, &eo);
    if (s != CLASP_OK) goto done;
    clasp_model *m = &e.models[0];
    clasp_model_init_weights(m, o.seed);
    if (o.init && !o.resume) {
        s = load_init_(m, o.init);
        if (s != CLASP_OK) goto done;
    }

    /* data: one loader per source */
    if (o.n_sources <= 0) {
        o.n_sources = 1;
        o.sources[0] = (clasp_train_source){.spec = o.train_spec, .pair = NULL, .weight = 1};
    }
    if (o.n_sources > CLASP_TRAIN_MAX_SOURCES) {
        s = clasp_set_error(CLASP_ERR_ARG, "at most %d training sources", CLASP_TRAIN_MAX_SOURCES);
        goto done;
    }
    o.train_spec = o.sources[0].spec;
    clasp_image_augment_config img_aug = clasp_image_augment_default_config();
    if (o.image_augment && strcmp(o.image_augment, "default") != 0) {
        cJSON *aj = NULL;
        s = clasp_json_load(o.image_augment, &aj);
        if (s == CLASP_OK)
            s = clasp_image_augment_config_from_json(aj, o.image_augment, "", &img_aug);
        cJSON_Delete(aj);
        if (s == CLASP_OK) s = clasp_image_augment_config_check(&img_aug);
        if (s != CLASP_OK) goto done;
    }
    for (int k = 0; k < o.n_sources; k++) {
        source_rt *x = &src[k];
        x->spec = o.sources[k].spec;
        x->weight = o.sources[k].weight;
        if (!x->spec || !*x->spec || !(x->weight > 0) || !isfinite(x->weight)) {
            s = clasp_set_error(CLASP_ERR_ARG, "training source %d: needs a spec and a weight > 0",
                                k + 1);
            goto done;
        }
        if (o.sources[k].pair) {
            s = clasp_pair_parse(o.sources[k].pair, &x->ta, &x->tb);
        } else {
            x->ta = e.ta; /* the engine's default: image-text, else the model's two towers */
            x->tb = e.tb;
        }
        if (s != CLASP_OK) goto done;
        snprintf(x->pair, sizeof x->pair, "%s-%s", clasp_tower_name(x->ta),
                 clasp_tower_name(x->tb));
        clasp_data_options dopt = clasp_data_default_options();
        dopt.spec = x->spec;
        /* source 0 keeps the run seed (single-source runs read as before); others derive one */
        dopt.seed = k == 0 ? o.seed : clasp_splitmix64(o.seed ^ (0x5352430000ull + (uint64_t)k));
        dopt.batch_size = local_b;
        dopt.rank = rank;
        dopt.world = world;
        dopt.split = o.data_split;
        dopt.workers = o.workers;
        dopt.shuffle_buffer = o.shuffle_buffer;
        dopt.samples_per_epoch = o.samples_per_epoch;
        dopt.train = true;
        dopt.has_pair =
            o.sources[k].pair != NULL || !(x->ta == CLASP_TOWER_IMAGE && x->tb == CLASP_TOWER_TEXT);
        dopt.pair_a = x->ta;
        dopt.pair_b = x->tb;
        dopt.config_path = o.model_config;
        dopt.audio_augment = o.audio_augment;
        dopt.image_augment = o.image_augment ? &img_aug : NULL;
        dopt.on_error = o.on_error_fail ? CLASP_ON_ERROR_FAIL : CLASP_ON_ERROR_SKIP;
        s = clasp_data_open(&dopt, &cfg, &x->data);
        if (s != CLASP_OK) {
            clasp_wrap_error(s, "training source %d (%s, %s)", k + 1, x->pair, x->spec);
            goto done;
        }
        n_src = k + 1;
    }

    int64_t steps_per_epoch = 0, total = o.steps;
    if (total <= 0) {
        for (int k = 0; k < n_src; k++) {
            int64_t n_samples = 0;
            s = clasp_data_epoch_samples(src[k].data, &n_samples);
            if (s != CLASP_OK) goto done;
            int64_t spe = n_samples / local_b; /* n_samples is this rank's share */
            if (spe < 1) {
                s = clasp_set_error(CLASP_ERR_ARG,
                                    "%s: %lld usable samples are fewer than one batch of %d",
                                    src[k].spec, (long long)n_samples * world, o.batch_size);
                goto done;
            }
            steps_per_epoch += spe;
        }
        total = steps_per_epoch * o.epochs;
    }
    s = clasp_dist_check_equal((uint64_t)total, "the number of steps");
    if (s != CLASP_OK) goto done;

    /* optimiser over parameter segments (one per tensor) */
    clasp_adamw_config ac = {.lr = o.lr,
                             .beta1 = o.beta1,
                             .beta2 = o.beta2,
                             .eps = o.eps,
                             .weight_decay = o.weight_decay};
    s = clasp_adamw_init(&opt, m->n_floats, ac);
    if (s != CLASP_OK) goto done;
    segs = calloc((size_t)m->n_params, sizeof *segs);
    if (!segs) {
        s = clasp_set_error(CLASP_ERR_NOMEM, "trainer: out of memory");
        goto done;
    }
    for (int i = 0; i < m->n_params; i++)
        segs[i] = (clasp_param_seg){m->info[i].offset, m->info[i].numel, m->info[i].decay,
                                    frozen[m->info[i].tower]};

    /* run folder */
    s = clasp_mkdir_p(o.out_dir);
    if (s != CLASP_OK) goto done;
    char path[4300];
    if (o.resume) {
        s = load_ckpt_(&o, m, &opt, &rs, src, n_src, config_json, total);
        if (s != CLASP_OK) goto done;
    } else {
        snprintf(path, sizeof path, "%s/checkpoints/latest", o.out_dir);
        struct stat sb;
        if (stat(path, &sb) == 0) {
            s = clasp_set_error(CLASP_ERR_STATE,
                                "%s already holds a run (checkpoints/latest): use --resume latest "
                                "or another --out",
                                o.out_dir);
            goto done;
        }
    }
    if (world > 1) {
        /* every rank starts from rank 0's parameters and moments (equal already when every
         * rank read the same checkpoint; this also covers a lagging shared filesystem) */
        s = clasp_dist_bcast(m->params, m->n_floats * sizeof(float), 0);
        if (s == CLASP_OK) s = clasp_dist_bcast(opt.m, m->n_floats * sizeof(float), 0);
        if (s == CLASP_OK) s = clasp_dist_bcast(opt.v, m->n_floats * sizeof(float), 0);
        if (s == CLASP_OK) s = clasp_dist_check_equal((uint64_t)rs.step, "the resumed step");
        if (s != CLASP_OK) goto done;
    }
    clasp_engine_sync_params(&e);
    if (rank == 0) {
        snprintf(path, sizeof path, "%s/config.json", o.out_dir);
        s = clasp_json_save(path, config_json);
        if (s != CLASP_OK) goto done;
        snprintf(path, sizeof path, "%s/metrics.jsonl", o.out_dir);
        if (o.resume) {
            /* keep only the lines up to the checkpoint's step, so the file reads as one run */
            s = metrics_truncate_(path, rs.step);
            if (s != CLASP_OK) goto done;
        }
        metrics = fopen(path, o.resume ? "a" : "w");
        if (!metrics) {
            s = clasp_set_error(CLASP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
            goto done;
        }
    }

    /* FLOPs of source 0's pair (the image-text formula for image-text, else the towers' MACs) */
    const double flops_per_sample = src[0].ta == CLASP_TOWER_IMAGE && src[0].tb == CLASP_TOWER_TEXT
                                        ? model_train_flops_(m, o.batch_size)
                                        : 6.0 * (clasp_model_forward_macs(&cfg, src[0].ta) +
                                                 clasp_model_forward_macs(&cfg, src[0].tb) +
                                                 (double)o.batch_size * cfg.embed_dim);
    double t_start = now_(), t_steps = 0, t_wait = 0, t_first = 0;
    int64_t steps_this_run = 0, samples_timed = 0;
    double win_t = 0, win_wait = 0;
    int64_t win_samples = 0;
    const int32_t *groups = NULL;
    group_buf = malloc((size_t)o.batch_size * sizeof(int32_t));
    gid_all = malloc((size_t)o.batch_size * sizeof(uint64_t));
    if (!group_buf || !gid_all) {
        s = clasp_set_error(CLASP_ERR_NOMEM, "trainer: out of memory");
        goto done;
    }
    clasp_step_stats st = {0};
    bool collapse_warned = false;
    float scale_max = (float)cfg.max_logit_scale;

    while (rs.step < total) {
        double t0 = now_();
        const clasp_batch *b = NULL;
        const int ks = pick_source_(o.seed, rs.step, src, n_src);
        source_rt *cur = &src[ks];
        s = clasp_data_next(cur->data, &b);
        if (s != CLASP_OK) goto done;
        double t1 = now_();
        /* dense group ids of the global batch: rows with the same caption hash share an id */
        groups = NULL;
        if (o.multi_positive) {
            s = clasp_dist_allgather(gid_all, b->group_ids, b->n * sizeof(uint64_t));
            if (s != CLASP_OK) goto done;
            dense_groups_(group_buf, gid_all, b->n * (size_t)world);
            groups = group_buf;
        }
        double lr = clasp_lr_cosine(rs.step, o.warmup, total, o.lr);
        s = clasp_engine_grads_pair(&e, cur->ta, batch_input_(b, cur->ta), cur->tb,
                                    batch_input_(b, cur->tb), groups, (int)b->n, &st);
        if (s != CLASP_OK) goto done;
        clasp_data_release(cur->data, b);
        double gnorm = clasp_clip_grad_norm(m->grads, segs, m->n_params, o.clip_norm);
        bool finite = isfinite(st.loss) && isfinite(gnorm);
        if (finite) {
            clasp_adamw_step(&opt, m->params, m->grads, segs, m->n_params, lr);
            float *ls = &m->params[m->logit_scale_offset];
            if (*ls < 0.0f) *ls = 0.0f;
            if (*ls > scale_max) *ls = scale_max;
            clasp_engine_sync_params(&e);
            rs.bad_streak = 0;
        } else {
            rs.skipped_steps++;
            rs.bad_streak++;
            if (rank == 0)
                CLASP_WARN("step %lld: non-finite loss or gradient (loss %g, grad norm %g): step "
                           "skipped (%d in a row)",
                           (long long)rs.step, (double)st.loss, gnorm, rs.bad_streak);
        }
        rs.step++;
        rs.samples += o.batch_size;
        steps_this_run++;
        double t2 = now_();
        if (steps_this_run == 1) t_first = t2 - t0;
        if (steps_this_run > 1) { /* the first step pays for warm-up: not in the rate */
            t_steps += t2 - t0;
            t_wait += t1 - t0;
            samples_timed += o.batch_size;
        }
        win_t += t2 - t0;
        win_wait += t1 - t0;
        win_samples += o.batch_size;
        sum->final_loss = st.loss;
        if (finite) {
            cur->loss_sum += (double)st.loss;
            cur->loss_n++;
        }
        bool log_now = rs.step % o.log_every == 0 || rs.step == total;
        if (log_now || !collapse_warned) {
            if (log_now || rs.step % 10 == 0) clasp_engine_diag(&e, &st);
        }
        if (!collapse_warned && finite && st.feat_std_a > 0 && rank == 0 &&
            (st.feat_std_a < (float)o.collapse_std || st.feat_std_b < (float)o.collapse_std)) {
            CLASP_WARN("step %lld: features are collapsing (mean per-dimension std %.4g / %.4g "
                       "below %.4g)",
                       (long long)rs.step, (double)st.feat_std_a, (double)st.feat_std_b,
                       o.collapse_std);
            collapse_warned = true;
        }
        if (log_now) {
            cJSON *j = cJSON_CreateObject();
            int epoch = steps_per_epoch ? (int)((rs.step - 1) / steps_per_epoch) + 1 : 1;
            cJSON_AddStringToObject(j, "kind", "train");
            cJSON_AddNumberToObject(j, "step", (double)rs.step);
            cJSON_AddNumberToObject(j, "epoch", epoch);
            cJSON_AddNumberToObject(j, "samples", (double)rs.samples);
            cJSON_AddNumberToObject(j, "loss", (double)st.loss);
            cJSON_AddNumberToObject(j, "lr", lr);
            cJSON_AddNumberToObject(j, "logit_scale",
                                    exp((double)m->params[m->logit_scale_offset]));
            cJSON_AddNumberToObject(j, "grad_norm", gnorm);
            cJSON_AddNumberToObject(j, "samples_per_s", (double)win_samples / win_t);
            cJSON_AddNumberToObject(j, "data_wait", win_wait / win_t);
            cJSON_AddNumberToObject(j, "feat_std_image", (double)st.feat_std_a);
            cJSON_AddNumberToObject(j, "feat_std_text", (double)st.feat_std_b);
            cJSON_AddNumberToObject(j, "alignment", (double)st.alignment);
            cJSON_AddNumberToObject(j, "uniformity", (double)st.uniformity);
            cJSON_AddNumberToObject(j, "pos_sim", (double)st.pos_sim);
            cJSON_AddNumberToObject(j, "hardneg_sim", (double)st.hardneg_sim);
            cJSON_AddNumberToObject(j, "skipped_steps", (double)rs.skipped_steps);
            cJSON_AddItemToObject(j, "skipped", skips_all_(src, n_src));
            if (n_src > 1 || o.sources[0].pair) {
                /* the step's source and, per source, the mean loss since the last line */
                cJSON_AddNumberToObject(j, "source", ks);
                cJSON *sa = cJSON_AddArrayToObject(j, "sources");
                for (int k = 0; k < n_src && sa; k++) {
                    cJSON *x = cJSON_CreateObject();
                    cJSON_AddStringToObject(x, "pair", src[k].pair);
                    cJSON_AddNumberToObject(x, "steps", (double)src[k].loss_n);
                    if (src[k].loss_n > 0)
                        cJSON_AddNumberToObject(x, "loss", src[k].loss_sum / (double)src[k].loss_n);
                    else
                        cJSON_AddNullToObject(x, "loss");
                    cJSON_AddItemToArray(sa, x);
                    src[k].loss_sum = 0;
                    src[k].loss_n = 0;
                }
            }
            write_metrics_(metrics, j);
            cJSON_Delete(j);
            progress_(&o, rs.step, total, st.loss, (double)win_samples / win_t, now_() - t_start);
            win_t = win_wait = 0;
            win_samples = 0;
        }
        if (rs.bad_streak >= o.max_bad_steps) {
            save_ckpt_(&o, m, &opt, &rs, src, n_src, config_json, total, sum->checkpoint,
                       sizeof sum->checkpoint);
            s = clasp_set_error(CLASP_ERR_NUMERIC,
                                "%d consecutive steps had a non-finite loss or gradient; stopped "
                                "at step %lld (checkpoint written)",
                                rs.bad_streak, (long long)rs.step);
            goto done;
        }
        fault_inject_(rs.step);
        bool stop = g_stop_signal || (o.stop_after > 0 && steps_this_run >= o.stop_after);
        if (world > 1) {
            /* every rank stops at the same step (a signal may reach them at different steps) */
            int64_t flag = stop;
            s = clasp_dist_allreduce_max_i64(&flag, 1);
            if (s != CLASP_OK) goto done;
            stop = flag != 0;
            if (o.check_every > 0 && rs.step % o.check_every == 0) {
                char what[96];
                snprintf(what, sizeof what, "the parameters (xxh64) after step %lld",
                         (long long)rs.step);
                s = clasp_dist_check_equal(clasp_hash64(m->params, m->n_floats * sizeof(float), 0),
                                           what);
                if (s != CLASP_OK) goto done;
            }
        }
        if (steps_this_run == 1) clasp_dist_reset_stats(); /* steady state: from step 2 on */
        if (o.val_every > 0 && rs.step % o.val_every == 0 && rs.step < total) {
            int epoch = steps_per_epoch ? (int)((rs.step - 1) / steps_per_epoch) + 1 : 1;
            s = evaluate_(&o, &e, metrics, &rs, epoch, sum);
            if (s != CLASP_OK) goto done;
        }
        if ((o.save_every > 0 && rs.step % o.save_every == 0) || stop) {
            s = save_ckpt_(&o, m, &opt, &rs, src, n_src, config_json, total, sum->checkpoint,
                           sizeof sum->checkpoint);
            if (s != CLASP_OK) goto done;
        }
        if (stop) {
            if (o.progress) fputc('\n', stderr);
            if (rank == 0)
                CLASP_WARN("stopped at step %lld (%s); resume with --resume latest",
                           (long long)rs.step, g_stop_signal ? "signal" : "--stop-after");
            sum->interrupted = true;
            s = CLASP_ERR_INTERRUPTED;
            break;
        }
    }
    if (o.progress) fputc('\n', stderr);
    clasp_dist_stats ds = clasp_dist_get_stats();
    if (steps_this_run > 1) {
        sum->gather_ms_per_step = 1e3 * ds.gather_s / (double)(steps_this_run - 1);
        sum->reduce_ms_per_step = 1e3 * ds.reduce_s / (double)(steps_this_run - 1);
    }
    if (s == CLASP_OK) {
        if (o.save_every == 0 || rs.step % o.save_every != 0) {
            s = save_ckpt_(&o, m, &opt, &rs, src, n_src, config_json, total, sum->checkpoint,
                           sizeof sum->checkpoint);
            if (s != CLASP_OK) goto done;
        }
        int epoch = steps_per_epoch ? (int)((rs.step - 1) / steps_per_epoch) + 1 : 1;
        s = evaluate_(&o, &e, metrics, &rs, epoch, sum);
        if (s != CLASP_OK) goto done;
    }
    sum->steps = rs.step;
    sum->samples = rs.samples;
    sum->skipped_steps = rs.skipped_steps;
    sum->skipped_samples = 0;
    for (int k = 0; k < n_src; k++) sum->skipped_samples += clasp_data_skipped_total(src[k].data);
    sum->seconds = t_steps + t_first;
    sum->samples_per_s = t_steps > 0 ? (double)samples_timed / t_steps : 0;
    sum->data_wait_frac = t_steps > 0 ? t_wait / t_steps : 0;
    sum->gflops = sum->samples_per_s * flops_per_sample / 1e9;
    if (rank != 0) goto done; /* rank 0 reports */
    double peak = sgemm_peak_1t_() * (double)e.opt.threads * (double)world;
    {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "kind", "summary");
        cJSON_AddNumberToObject(j, "step", (double)rs.step);
        cJSON_AddNumberToObject(j, "samples_per_s", sum->samples_per_s);
        cJSON_AddNumberToObject(j, "data_wait", sum->data_wait_frac);
        cJSON_AddNumberToObject(j, "gflops", sum->gflops);
        cJSON_AddNumberToObject(j, "sgemm_peak_gflops", peak);
        cJSON_AddNumberToObject(j, "peak_rss_mib", (double)peak_rss_mib_());
        cJSON_AddNumberToObject(j, "seconds", now_() - t_start);
        if (world > 1) {
            cJSON_AddNumberToObject(j, "world", world);
            cJSON_AddNumberToObject(j, "allgather_ms_per_step", sum->gather_ms_per_step);
            cJSON_AddNumberToObject(j, "allreduce_ms_per_step", sum->reduce_ms_per_step);
        }
        write_metrics_(metrics, j);
        cJSON_Delete(j);
    }
    fprintf(stderr,
            "clasp train: %lld steps, %lld samples in %.1f s: %.0f samples/s, data wait %.1f%%, "
            "%.1f GFLOP/s = %.0f%% of the sgemm peak (%.0f GFLOP/s on %d threads), final loss "
            "%.4f, peak RSS %ld MiB\n",
            (long long)sum->steps, (long long)sum->samples, now_() - t_start, sum->samples_per_s,
            100 * sum->data_wait_frac, sum->gflops, peak > 0 ? 100 * sum->gflops / peak : 0, peak,
            e.opt.threads * world, sum->final_loss, peak_rss_mib_());
    if (world > 1)
        fprintf(stderr,
                "clasp train: %d ranks; per step on rank 0: all-gather %.2f ms, all-reduce / "
                "reduce-scatter %.2f ms\n",
                world, sum->gather_ms_per_step, sum->reduce_ms_per_step);
    if (sum->zeroshot_top1 >= 0)
        fprintf(stderr, "clasp train: zero-shot top-1 %.2f%%, top-5 %.2f%%, mean recall %.2f%%\n",
                100 * sum->zeroshot_top1, 100 * sum->zeroshot_top5,
                100 * sum->zeroshot_mean_recall);
    fprintf(stderr, "clasp train: checkpoint %s\n", sum->checkpoint);

done:
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (metrics) fclose(metrics);
    free(segs);
    free(group_buf);
    free(gid_all);
    clasp_adamw_free(&opt);
    for (int k = 0; k < CLASP_TRAIN_MAX_SOURCES; k++) clasp_data_close(src[k].data);
    clasp_engine_free(&e);
    cJSON_Delete(config_json);
    return s;
}
