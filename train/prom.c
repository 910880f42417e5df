/* prom.c: the training figures as Prometheus series, the textfile, the publisher. See prom.h
 * and docs/metrics.md (the table of series). */
#include "train/prom.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/json.h"

void clasp_train_snapshot_init(clasp_train_snapshot *s) {
    memset(s, 0, sizeof *s);
    for (int k = 0; k < CLASP_TRAIN_MAX_SOURCES; k++) s->loss[k] = (double)NAN;
    for (int t = 0; t < CLASP_N_TOWERS; t++) s->feat_std[t] = (double)NAN;
    s->ckpt_step = -1;
    s->eval_step = -1;
    s->world = 1;
}

double clasp_train_unix_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define G CLASP_PROM_GAUGE
#define C CLASP_PROM_COUNTER

/* Progress, schedule and speed. */
static void render_progress_(const clasp_train_snapshot *s, clasp_prom_buf *b) {
    clasp_prom_metric(b, "clasp_train_step", G, "Optimiser steps done.", (double)s->step);
    clasp_prom_metric(b, "clasp_train_total_steps", G, "Optimiser steps the run will do.",
                      (double)s->total_steps);
    clasp_prom_metric(b, "clasp_train_epoch", G, "Current epoch (1-based).", s->epoch);
    clasp_prom_metric(b, "clasp_train_samples_total", C, "Training samples consumed.",
                      (double)s->samples);
    clasp_prom_metric(b, "clasp_train_skipped_steps_total", C,
                      "Steps skipped for a non-finite loss or gradient.", (double)s->skipped_steps);
    clasp_prom_metric(b, "clasp_train_world_size", G, "Data-parallel ranks.", s->world);
    clasp_prom_metric(b, "clasp_train_start_time_seconds", G,
                      "Unix time this invocation started training.", s->start_unix);
    clasp_prom_metric(b, "clasp_train_learning_rate", G, "Learning rate of the last step.", s->lr);
    clasp_prom_metric(b, "clasp_train_logit_scale", G, "Logit scale exp(t) of the loss.",
                      s->logit_scale);
    clasp_prom_metric(b, "clasp_train_temperature", G, "Softmax temperature 1 / logit scale.",
                      s->logit_scale > 0 ? 1.0 / s->logit_scale : (double)NAN);
    clasp_prom_metric(b, "clasp_train_grad_norm", G, "Global gradient norm of the last step.",
                      s->grad_norm);
    clasp_prom_metric(b, "clasp_train_samples_per_second", G,
                      "Training rate over the steps since the previous log line.",
                      s->samples_per_s);
    clasp_prom_metric(b, "clasp_train_data_wait_ratio", G,
                      "Share of step time spent waiting for the data loader (0 to 1).",
                      s->data_wait);
    clasp_prom_metric(b, "clasp_train_flops_per_second", G,
                      "Achieved model FLOP/s (forward + backward) since the previous log line.",
                      s->flops_per_s);
}

/* Losses per source, feature diagnostics per tower and of the pair. */
static void render_quality_(const clasp_train_snapshot *s, clasp_prom_buf *b) {
    clasp_prom_family(b, "clasp_train_loss", G,
                      "Mean loss of each source's steps since the previous log line.");
    for (int k = 0; k < s->n_sources; k++) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", k);
        clasp_prom_label l[] = {{"source", idx}, {"pair", s->pair[k]}};
        clasp_prom_sample(b, "clasp_train_loss", l, 2, s->loss[k]);
    }
    clasp_prom_family(b, "clasp_train_feature_std", G,
                      "Mean over dimensions of the per-dimension std of normalised features "
                      "(collapse: towards 0).");
    for (int t = 0; t < CLASP_N_TOWERS; t++) {
        if (isnan(s->feat_std[t])) continue;
        clasp_prom_label l[] = {{"tower", clasp_tower_name((clasp_tower)t)}};
        clasp_prom_sample(b, "clasp_train_feature_std", l, 1, s->feat_std[t]);
    }
    clasp_prom_metric(b, "clasp_train_alignment", G,
                      "Alignment mean ||a_i - b_i||^2 of the logged batch (lower: closer pairs).",
                      s->alignment);
    clasp_prom_metric(b, "clasp_train_uniformity", G,
                      "Uniformity log mean exp(-2 ||x_i - x_j||^2) of the logged batch (lower: "
                      "more uniform).",
                      s->uniformity);
    clasp_prom_metric(b, "clasp_train_positive_similarity", G,
                      "Mean cosine similarity of the positive pairs of the logged batch.",
                      s->pos_sim);
    clasp_prom_metric(b, "clasp_train_hardest_negative_similarity", G,
                      "Mean over rows of the highest negative cosine similarity.", s->hardneg_sim);
    clasp_prom_family(b, "clasp_train_skipped_samples_total", C,
                      "Training samples skipped by the data pipeline, by reason.");
    for (int r = 0; r < CLASP_SKIP_N; r++) {
        clasp_prom_label l[] = {{"reason", clasp_skip_reason_name((clasp_skip_reason)r)}};
        clasp_prom_sample(b, "clasp_train_skipped_samples_total", l, 1, (double)s->skipped[r]);
    }
}

/* The last checkpoint and zero-shot evaluation, once there are any. */
static void render_events_(const clasp_train_snapshot *s, double now_unix, clasp_prom_buf *b) {
    if (s->ckpt_step >= 0) {
        clasp_prom_metric(b, "clasp_train_last_checkpoint_step", G,
                          "Step of the last checkpoint written.", (double)s->ckpt_step);
        clasp_prom_metric(b, "clasp_train_last_checkpoint_timestamp_seconds", G,
                          "Unix time the last checkpoint was written.", s->ckpt_unix);
        clasp_prom_metric(b, "clasp_train_last_checkpoint_age_seconds", G,
                          "Seconds since the last checkpoint was written.",
                          now_unix > s->ckpt_unix ? now_unix - s->ckpt_unix : 0);
    }
    if (s->eval_step >= 0) {
        clasp_prom_metric(b, "clasp_train_zeroshot_step", G,
                          "Step of the last zero-shot evaluation.", (double)s->eval_step);
        clasp_prom_family(b, "clasp_train_zeroshot_accuracy_ratio", G,
                          "Zero-shot top-k accuracy of the last evaluation (0 to 1).");
        clasp_prom_label k1[] = {{"k", "1"}}, k5[] = {{"k", "5"}};
        clasp_prom_sample(b, "clasp_train_zeroshot_accuracy_ratio", k1, 1, s->zs_top1);
        clasp_prom_sample(b, "clasp_train_zeroshot_accuracy_ratio", k5, 1, s->zs_top5);
        clasp_prom_metric(b, "clasp_train_zeroshot_mean_recall_ratio", G,
                          "Zero-shot mean per-class recall of the last evaluation (0 to 1).",
                          s->zs_mean_recall);
        clasp_prom_metric(b, "clasp_train_zeroshot_images", G,
                          "Images in the last zero-shot evaluation.", (double)s->eval_images);
        clasp_prom_metric(b, "clasp_train_zeroshot_duration_seconds", G,
                          "Wall time of the last zero-shot evaluation.", s->eval_seconds);
    }
    if (s->eval_step >= 0 && s->has_retrieval) {
        clasp_prom_family(b, "clasp_train_retrieval_recall_ratio", G,
                          "Retrieval recall at k of the last evaluation over the validation "
                          "captions, a hit being the query's class (0 to 1).");
        const struct {
            const char *dir, *k;
            double v;
        } r[] = {{"image_to_text", "1", s->i2t_r1},
                 {"image_to_text", "5", s->i2t_r5},
                 {"text_to_image", "1", s->t2i_r1},
                 {"text_to_image", "5", s->t2i_r5}};
        for (int i = 0; i < 4; i++) {
            clasp_prom_label l[] = {{"direction", r[i].dir}, {"k", r[i].k}};
            clasp_prom_sample(b, "clasp_train_retrieval_recall_ratio", l, 2, r[i].v);
        }
    }
}

void clasp_train_prom_render(const clasp_train_snapshot *s, double now_unix, clasp_prom_buf *b) {
    clasp_prom_metric(b, "clasp_train_ready", G,
                      "1 once the trainer has published its figures (set up and training).",
                      s->ready ? 1 : 0);
    if (!s->ready) return;
    render_progress_(s, b);
    render_quality_(s, b);
    render_events_(s, now_unix, b);
}

#undef G
#undef C

clasp_status clasp_train_prom_write_textfile(const char *path, const clasp_train_snapshot *s) {
    clasp_prom_buf b;
    clasp_prom_init(&b);
    clasp_train_prom_render(s, clasp_train_unix_now(), &b);
    clasp_status st = clasp_prom_finish(&b);
    if (st == CLASP_OK) st = clasp_write_file_atomic(path, b.data ? b.data : "", b.len);
    clasp_prom_free(&b);
    return st;
}

void clasp_train_publisher_init(clasp_train_publisher *p) {
    pthread_mutex_init(&p->mu, NULL);
    clasp_train_snapshot_init(&p->snap);
}

void clasp_train_publisher_free(clasp_train_publisher *p) {
    if (p) pthread_mutex_destroy(&p->mu);
}

void clasp_train_publish(clasp_train_publisher *p, const clasp_train_snapshot *s) {
    pthread_mutex_lock(&p->mu);
    memcpy(&p->snap, s, sizeof *s);
    pthread_mutex_unlock(&p->mu);
}

void clasp_train_publisher_read(clasp_train_publisher *p, clasp_train_snapshot *out) {
    pthread_mutex_lock(&p->mu);
    memcpy(out, &p->snap, sizeof *out);
    pthread_mutex_unlock(&p->mu);
}
