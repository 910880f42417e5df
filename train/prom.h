/* prom.h: a training run's figures for Prometheus: the snapshot the trainer publishes, its
 * rendering in the text exposition format (net/prom.h) and the node_exporter textfile.
 *
 * The trainer (rank 0) fills a clasp_train_snapshot in its metrics (metrics.h) and publishes a
 * finished copy after each train line, evaluation and checkpoint: clasp_train_publish copies it
 * under the publisher's mutex (a memcpy of 624 bytes on x86-64), so a scrape never waits for a
 * step and a step never waits for a scrape: the HTTP server (net/http.h, started by the CLI)
 * reads the last copy and renders it on its own thread. No HTTP here: train/ does not link
 * libmicrohttpd. The series, their types and labels are listed in docs/metrics.md. */
#ifndef CLASP_TRAIN_PROM_H
#define CLASP_TRAIN_PROM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "encoders/model.h"
#include "net/prom.h"
#include "pipeline/stats.h"
#include "train/trainer.h"

typedef struct clasp_train_snapshot {
    bool ready; /* false until the trainer's first publish */
    int64_t step, total_steps, samples, skipped_steps;
    int epoch, world;
    double lr, logit_scale, grad_norm;
    /* over the steps since the previous train line */
    double samples_per_s, data_wait, flops_per_s;
    int n_sources;
    char pair[CLASP_TRAIN_MAX_SOURCES][32]; /* "image-text" */
    double loss[CLASP_TRAIN_MAX_SOURCES];   /* mean loss of the source's steps; NaN before any */
    /* feature diagnostics of the last logged step (loss/diag.h); per tower: NaN when the tower
     * has not been in a logged step's pair */
    double feat_std[CLASP_N_TOWERS];
    double alignment, uniformity, pos_sim, hardneg_sim;
    uint64_t skipped[CLASP_SKIP_N]; /* samples skipped by reason, all sources, cumulative */
    int64_t ckpt_step;              /* -1 before the first checkpoint of this invocation */
    double ckpt_unix;               /* its wall-clock time (Unix seconds) */
    int64_t eval_step;              /* -1 before the first zero-shot evaluation */
    double zs_top1, zs_top5, zs_mean_recall, eval_seconds;
    int64_t eval_images;
    bool has_retrieval; /* the last evaluation measured retrieval by class */
    double i2t_r1, i2t_r5, t2i_r1, t2i_r5;
    double start_unix; /* when this invocation started training */
} clasp_train_snapshot;

/* A snapshot with every figure "not yet": NaN losses and feature stds, no checkpoint, no eval. */
void clasp_train_snapshot_init(clasp_train_snapshot *s);

/* Wall-clock time in Unix seconds. */
double clasp_train_unix_now(void);

/* Renders s as the text exposition format 0.0.4 into b; now_unix gives the checkpoint age.
 * Before the first publish (s->ready false) only clasp_train_ready 0 is written. */
void clasp_train_prom_render(const clasp_train_snapshot *s, double now_unix, clasp_prom_buf *b);

/* Renders s and writes it to path atomically (temp file, fsync, rename), for node_exporter's
 * textfile collector. CLASP_ERR_IO naming the path. */
clasp_status clasp_train_prom_write_textfile(const char *path, const clasp_train_snapshot *s);

/* The last published snapshot, shared between the trainer and the server's thread. */
typedef struct clasp_train_publisher {
    pthread_mutex_t mu;
    clasp_train_snapshot snap;
} clasp_train_publisher;

void clasp_train_publisher_init(clasp_train_publisher *p);
void clasp_train_publisher_free(clasp_train_publisher *p);
/* Copies *s in (the mutex is held for the copy only). */
void clasp_train_publish(clasp_train_publisher *p, const clasp_train_snapshot *s);
/* Copies the last published snapshot out. */
void clasp_train_publisher_read(clasp_train_publisher *p, clasp_train_snapshot *out);

#endif
