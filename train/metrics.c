/* metrics.c: metrics.jsonl lines, the progress bar and the end-of-run summary. See metrics.h. */
#include "core/compute.h"
#include "train/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/json.h"
#include "core/log.h"
#include "train/dist.h"

double clasp_metrics_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void write_line_(clasp_train_metrics *mx, cJSON *obj) {
    if (!mx->f) return; /* ranks other than 0 keep no metrics */
    char *line = cJSON_PrintUnformatted(obj);
    if (line) {
        errno = 0;
        bool ok = fputs(line, mx->f) >= 0 && fputc('\n', mx->f) != EOF && fflush(mx->f) == 0;
        if (!ok && !mx->write_errno) mx->write_errno = errno ? errno : EIO;
    }
    free(line);
}

/* Keeps the metrics lines of steps <= `step` (dropping summaries), so that a resumed run's
 * metrics.jsonl reads as one uninterrupted run. A missing file is fine. */
static clasp_status truncate_(const char *path, int64_t step) {
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

clasp_status clasp_metrics_open(clasp_train_metrics *mx, const char *run_dir, bool write,
                                int64_t resume_step) {
    memset(mx, 0, sizeof *mx);
    clasp_train_snapshot_init(&mx->snap);
    if (!write) return CLASP_OK;
    char path[4300];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    /* on resume keep only the lines up to the checkpoint's step, so the file reads as one run */
    if (resume_step >= 0) CLASP_TRY(truncate_(path, resume_step));
    snprintf(mx->path, sizeof mx->path, "%s", path);
    mx->f = fopen(path, resume_step >= 0 ? "a" : "w");
    if (!mx->f) return clasp_set_error(CLASP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    return CLASP_OK;
}

void clasp_metrics_close(clasp_train_metrics *mx) {
    if (mx->f && fclose(mx->f) != 0 && !mx->write_errno) mx->write_errno = errno ? errno : EIO;
    mx->f = NULL;
}

clasp_status clasp_metrics_check(const clasp_train_metrics *mx) {
    if (!mx->write_errno) return CLASP_OK;
    return clasp_set_error(CLASP_ERR_IO, "%s: write failed: %s", mx->path,
                           strerror(mx->write_errno));
}

void clasp_metrics_step_time(clasp_train_metrics *mx, double t0, double t1, double t2) {
    mx->steps++;
    if (mx->steps == 1) mx->t_first = t2 - t0;
    if (mx->steps > 1) { /* the first step pays for warm-up: not in the rate */
        mx->t_steps += t2 - t0;
        mx->t_wait += t1 - t0;
        mx->samples_timed += mx->batch_size;
    }
    mx->win_t += t2 - t0;
    mx->win_wait += t1 - t0;
    mx->win_samples += mx->batch_size;
}

void clasp_metrics_add_loss(clasp_train_metrics *mx, int k, double loss) {
    mx->loss_sum[k] += loss;
    mx->loss_n[k]++;
}

static void progress_(const clasp_train_metrics *mx, int64_t step, int64_t total, double loss,
                      double rate) {
    if (!mx->progress) return;
    int width = 30, fill = total > 0 ? (int)((double)width * (double)step / (double)total) : 0;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    double eta = rate > 0 ? (double)(total - step) * (double)mx->batch_size / rate : 0;
    double elapsed = clasp_metrics_now() - mx->t_start;
    fprintf(stderr, "\r[%s] %lld/%lld loss %.4f  %.0f samples/s  %.0fs elapsed  ETA %.0fs ", bar,
            (long long)step, (long long)total, loss, rate, elapsed, eta);
    fflush(stderr);
}

/* The step's source and, per source, the mean loss since the last line (reset here). */
static void add_sources_(clasp_train_metrics *mx, cJSON *j, int source) {
    cJSON_AddNumberToObject(j, "source", source);
    cJSON *sa = cJSON_AddArrayToObject(j, "sources");
    for (int k = 0; k < mx->n_sources && sa; k++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "pair", mx->pair[k]);
        cJSON_AddNumberToObject(x, "steps", (double)mx->loss_n[k]);
        if (mx->loss_n[k] > 0)
            cJSON_AddNumberToObject(x, "loss", mx->loss_sum[k] / (double)mx->loss_n[k]);
        else
            cJSON_AddNullToObject(x, "loss");
        cJSON_AddItemToArray(sa, x);
        mx->loss_sum[k] = 0;
        mx->loss_n[k] = 0;
    }
}

clasp_status clasp_metrics_publish(clasp_train_metrics *mx, bool strict) {
    if (!mx->f) return CLASP_OK; /* rank 0 alone publishes */
    mx->snap.ready = true;
    if (mx->pub) clasp_train_publish(mx->pub, &mx->snap);
    if (!mx->textfile) return CLASP_OK;
    clasp_status s = clasp_train_prom_write_textfile(mx->textfile, &mx->snap);
    if (s == CLASP_OK || strict) return s;
    if (!mx->textfile_warned)
        CLASP_WARN("--metrics-textfile: %s (training goes on; warned once)", clasp_last_error());
    mx->textfile_warned = true;
    return CLASP_OK;
}

void clasp_metrics_checkpoint(clasp_train_metrics *mx, int64_t step) {
    mx->snap.ckpt_step = step;
    mx->snap.ckpt_unix = clasp_train_unix_now();
    clasp_metrics_publish(mx, false);
}

/* The figures of a train line into the published snapshot (before the window restarts). */
static void snap_train_(clasp_train_metrics *mx, const clasp_train_line *l, const cJSON *skipped,
                        double rate, int64_t total_steps) {
    clasp_train_snapshot *sn = &mx->snap;
    const clasp_step_stats *st = l->st;
    sn->step = l->step;
    sn->total_steps = total_steps;
    sn->epoch = l->epoch;
    sn->samples = l->samples;
    sn->skipped_steps = l->skipped_steps;
    sn->lr = l->lr;
    sn->logit_scale = l->logit_scale;
    sn->grad_norm = l->grad_norm;
    sn->samples_per_s = rate;
    sn->data_wait = mx->win_wait / mx->win_t;
    sn->flops_per_s = rate * mx->flops_per_sample;
    sn->n_sources = mx->n_sources > 0 ? mx->n_sources : 1;
    for (int k = 0; k < sn->n_sources; k++) {
        snprintf(sn->pair[k], sizeof sn->pair[k], "%s", mx->pair[k] ? mx->pair[k] : "");
        if (mx->loss_n[k] > 0) sn->loss[k] = mx->loss_sum[k] / (double)mx->loss_n[k];
    }
    sn->feat_std[l->ta] = (double)st->feat_std_a;
    sn->feat_std[l->tb] = (double)st->feat_std_b;
    sn->alignment = (double)st->alignment;
    sn->uniformity = (double)st->uniformity;
    sn->pos_sim = (double)st->pos_sim;
    sn->hardneg_sim = (double)st->hardneg_sim;
    for (int r = 0; r < CLASP_SKIP_N; r++) {
        const cJSON *n =
            cJSON_GetObjectItemCaseSensitive(skipped, clasp_skip_reason_name((clasp_skip_reason)r));
        sn->skipped[r] = cJSON_IsNumber(n) ? (uint64_t)n->valuedouble : 0;
    }
}

void clasp_metrics_train_line(clasp_train_metrics *mx, const clasp_train_line *l, cJSON *skipped,
                              int64_t total_steps) {
    const clasp_step_stats *st = l->st;
    double rate = (double)mx->win_samples / mx->win_t;
    if (mx->f) snap_train_(mx, l, skipped, rate, total_steps);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", "train");
    cJSON_AddNumberToObject(j, "step", (double)l->step);
    cJSON_AddNumberToObject(j, "epoch", l->epoch);
    cJSON_AddNumberToObject(j, "samples", (double)l->samples);
    cJSON_AddNumberToObject(j, "loss", l->loss);
    cJSON_AddNumberToObject(j, "lr", l->lr);
    cJSON_AddNumberToObject(j, "logit_scale", l->logit_scale);
    if (l->temperature >= 0) cJSON_AddNumberToObject(j, "temperature", l->temperature);
    cJSON_AddNumberToObject(j, "grad_norm", l->grad_norm);
    cJSON_AddNumberToObject(j, "samples_per_s", rate);
    cJSON_AddNumberToObject(j, "data_wait", mx->win_wait / mx->win_t);
    cJSON_AddNumberToObject(j, "feat_std_image", (double)st->feat_std_a);
    cJSON_AddNumberToObject(j, "feat_std_text", (double)st->feat_std_b);
    cJSON_AddNumberToObject(j, "alignment", (double)st->alignment);
    cJSON_AddNumberToObject(j, "uniformity", (double)st->uniformity);
    cJSON_AddNumberToObject(j, "pos_sim", (double)st->pos_sim);
    cJSON_AddNumberToObject(j, "hardneg_sim", (double)st->hardneg_sim);
    cJSON_AddNumberToObject(j, "skipped_steps", (double)l->skipped_steps);
    cJSON_AddItemToObject(j, "skipped", skipped);
    if (mx->per_source) add_sources_(mx, j, l->source);
    write_line_(mx, j);
    cJSON_Delete(j);
    progress_(mx, l->step, total_steps, l->loss, rate);
    mx->win_t = mx->win_wait = 0;
    mx->win_samples = 0;
    for (int k = 0; k < CLASP_TRAIN_MAX_SOURCES; k++) { /* add_sources_ resets only its own */
        mx->loss_sum[k] = 0;
        mx->loss_n[k] = 0;
    }
    clasp_metrics_publish(mx, false);
}

void clasp_metrics_eval_line(clasp_train_metrics *mx, int64_t step, int epoch, int64_t samples,
                             const clasp_train_eval_result *zr, double seconds) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", "eval");
    cJSON_AddNumberToObject(j, "step", (double)step);
    cJSON_AddNumberToObject(j, "epoch", epoch);
    cJSON_AddNumberToObject(j, "samples", (double)samples);
    cJSON_AddNumberToObject(j, "zeroshot_top1", zr->top1);
    cJSON_AddNumberToObject(j, "zeroshot_top5", zr->top5);
    cJSON_AddNumberToObject(j, "zeroshot_mean_recall", zr->mean_recall);
    cJSON_AddNumberToObject(j, "n_images", (double)zr->n);
    cJSON_AddNumberToObject(j, "n_classes", zr->n_classes);
    if (zr->has_retrieval) {
        cJSON_AddNumberToObject(j, "retrieval_i2t_r1", zr->i2t_r1);
        cJSON_AddNumberToObject(j, "retrieval_i2t_r5", zr->i2t_r5);
        cJSON_AddNumberToObject(j, "retrieval_t2i_r1", zr->t2i_r1);
        cJSON_AddNumberToObject(j, "retrieval_t2i_r5", zr->t2i_r5);
    }
    cJSON_AddNumberToObject(j, "eval_seconds", seconds);
    write_line_(mx, j);
    cJSON_Delete(j);
    mx->snap.eval_step = step;
    mx->snap.zs_top1 = zr->top1;
    mx->snap.zs_top5 = zr->top5;
    mx->snap.zs_mean_recall = zr->mean_recall;
    mx->snap.eval_images = zr->n;
    mx->snap.eval_seconds = seconds;
    mx->snap.has_retrieval = zr->has_retrieval;
    mx->snap.i2t_r1 = zr->i2t_r1, mx->snap.i2t_r5 = zr->i2t_r5;
    mx->snap.t2i_r1 = zr->t2i_r1, mx->snap.t2i_r5 = zr->t2i_r5;
    clasp_metrics_publish(mx, false);
}

/* Model FLOPs per training sample: forward + backward = 3 x the forward MACs x 2 FLOPs, of both
 * towers (encoders/'s clasp_model_forward_macs, the one formula per tower) and of one row of the
 * logits. */
double clasp_metrics_train_flops(const clasp_model *m, clasp_tower ta, clasp_tower tb, int B) {
    return 6.0 * (clasp_model_forward_macs(&m->config, ta) +
                  clasp_model_forward_macs(&m->config, tb) + (double)B * m->config.embed_dim);
}

/* Single-thread sgemm peak (GFLOP/s): best of a few 512^3 products, the method of
 * ../shared/bench/sgemm_peak.c in miniature (~0.1 s). The summary divides the achieved rate by
 * threads x this, since each compute thread runs a single-threaded OpenBLAS. */
/* one thread's product peak in precision p (512^3, best of 8) */
static double matmul_peak_1t_(clasp_precision p) {
    enum { N = 512 };
    float *a = malloc(sizeof(float) * N * N * 3);
    if (!a) return 0;
    for (size_t i = 0; i < (size_t)N * N * 3; i++) a[i] = (float)(i % 17) * 0.01f;
    double best = 1e30;
    clasp_precision was = clasp_compute_set_precision(p);
    for (int r = 0; r < 8; r++) {
        double t0 = clasp_metrics_now();
        clasp_gemm(0, 0, N, N, N, 1.0f, a, N, a + N * N, N, 0.0f, a + 2 * N * N, N);
        double dt = clasp_metrics_now() - t0;
        if (dt < best) best = dt;
    }
    clasp_compute_set_precision(was);
    free(a);
    return 2.0 * N * N * N / best / 1e9;
}

static long peak_rss_mib_(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

void clasp_metrics_loop_end(clasp_train_metrics *mx, clasp_train_summary *sum) {
    if (mx->progress) fputc('\n', stderr);
    clasp_dist_stats ds = clasp_dist_get_stats();
    if (mx->steps > 1) {
        sum->gather_ms_per_step = 1e3 * ds.gather_s / (double)(mx->steps - 1);
        sum->reduce_ms_per_step = 1e3 * ds.reduce_s / (double)(mx->steps - 1);
    }
}

static void summary_line_(clasp_train_metrics *mx, const clasp_train_summary *sum, double peak) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", "summary");
    cJSON_AddNumberToObject(j, "step", (double)sum->steps);
    cJSON_AddNumberToObject(j, "samples_per_s", sum->samples_per_s);
    cJSON_AddNumberToObject(j, "data_wait", sum->data_wait_frac);
    cJSON_AddNumberToObject(j, "gflops", sum->gflops);
    cJSON_AddStringToObject(j, "precision", clasp_precision_name(sum->precision));
    cJSON_AddNumberToObject(j, "matmul_peak_gflops", peak);
    cJSON_AddNumberToObject(j, "peak_rss_mib", (double)peak_rss_mib_());
    cJSON_AddNumberToObject(j, "seconds", clasp_metrics_now() - mx->t_start);
    if (sum->world > 1) {
        cJSON_AddNumberToObject(j, "world", sum->world);
        cJSON_AddNumberToObject(j, "allgather_ms_per_step", sum->gather_ms_per_step);
        cJSON_AddNumberToObject(j, "allreduce_ms_per_step", sum->reduce_ms_per_step);
    }
    write_line_(mx, j);
    cJSON_Delete(j);
}

void clasp_metrics_summary(clasp_train_metrics *mx, clasp_train_summary *sum,
                           double flops_per_sample, int threads, bool report) {
    sum->seconds = mx->t_steps + mx->t_first;
    sum->samples_per_s = mx->t_steps > 0 ? (double)mx->samples_timed / mx->t_steps : 0;
    sum->data_wait_frac = mx->t_steps > 0 ? mx->t_wait / mx->t_steps : 0;
    sum->gflops = sum->samples_per_s * flops_per_sample / 1e9;
    if (!report) return;
    const int world = sum->world;
    double peak = matmul_peak_1t_(sum->precision) * (double)threads * (double)world;
    summary_line_(mx, sum, peak);
    fprintf(stderr,
            "clasp train: %lld steps, %lld samples in %.1f s: %.0f samples/s, data wait %.1f%%, "
            "%.1f GFLOP/s = %.0f%% of the %s %s matmul peak (%.0f GFLOP/s on %d threads), "
            "final loss %.4f, peak RSS %ld MiB\n",
            (long long)sum->steps, (long long)sum->samples, clasp_metrics_now() - mx->t_start,
            sum->samples_per_s, 100 * sum->data_wait_frac, sum->gflops,
            peak > 0 ? 100 * sum->gflops / peak : 0, clasp_precision_name(sum->precision),
            clasp_compute_backend(), peak, threads * world, sum->final_loss, peak_rss_mib_());
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
}
