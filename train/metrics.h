/* metrics.h: a training run's metrics.jsonl, progress bar and end-of-run summary.
 *
 * metrics.jsonl holds one JSON object per line: "kind": "train" every --log-every steps (step,
 * epoch, samples, loss, lr, logit_scale, grad_norm, samples_per_s and data_wait over the
 * steps since the last line, the engine's feature diagnostics, skip counters; with several
 * sources or a named pair, "source" and per source the steps and mean loss since the last
 * line), "kind": "eval" after each zero-shot evaluation, "kind": "summary" at the end (rate,
 * GFLOP/s, sgemm peak, peak RSS, collectives). Rank 0 alone writes; the others keep the timing.
 */
#ifndef CLASP_TRAIN_METRICS_H
#define CLASP_TRAIN_METRICS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"
#include "encoders/model.h"
#include "train/engine.h"
#include "train/prom.h"
#include "train/trainer.h"

typedef struct clasp_train_metrics {
    FILE *f;         /* metrics.jsonl; NULL: no lines (ranks other than 0) */
    char path[4300]; /* metrics.jsonl's path, for messages */
    int write_errno; /* errno of the first failed write of f (0: none); clasp_metrics_check */
    bool progress;   /* progress bar on stderr */
    int batch_size;  /* global rows per step */
    double t_start;  /* clock at the start of training (clasp_metrics_now) */
    /* this invocation's steps: the first pays for warm-up and stays out of the rate */
    int64_t steps, samples_timed;
    double t_first, t_steps, t_wait;
    /* since the last train line */
    double win_t, win_wait;
    int64_t win_samples;
    bool per_source; /* train lines carry "source" and "sources" */
    int n_sources;
    const char *pair[CLASP_TRAIN_MAX_SOURCES]; /* borrowed */
    double loss_sum[CLASP_TRAIN_MAX_SOURCES];
    int64_t loss_n[CLASP_TRAIN_MAX_SOURCES];
    /* Prometheus (prom.h), rank 0: the figures as of the last train line, evaluation and
     * checkpoint, published to `pub` and written to `textfile` by clasp_metrics_publish */
    clasp_train_snapshot snap;
    clasp_train_publisher *pub; /* borrowed; NULL: no server */
    const char *textfile;       /* --metrics-textfile; NULL: none */
    bool textfile_warned;       /* a failed write after the first is warned about once */
    double flops_per_sample;    /* for snap.flops_per_s */
} clasp_train_metrics;

/* The values of one train line besides the timing the metrics keep. */
typedef struct clasp_train_line {
    int64_t step, samples, skipped_steps;
    int epoch;
    int source;         /* the step's source */
    clasp_tower ta, tb; /* the towers of the step's pair (st's a and b sides) */
    double loss, lr, logit_scale, grad_norm;
    double temperature;         /* the loss's temperature this step; < 0: none (not written) */
    const clasp_step_stats *st; /* feature diagnostics (engine.h) */
} clasp_train_line;

/* Monotonic clock in seconds. */
double clasp_metrics_now(void);

/* Starts metrics for run_dir: zeroes *mx and, when `write` (rank 0), opens
 * run_dir/metrics.jsonl; on resume (resume_step >= 0) first keeps only the lines of steps <=
 * resume_step, dropping summaries, so the file reads as one uninterrupted run. */
clasp_status clasp_metrics_open(clasp_train_metrics *mx, const char *run_dir, bool write,
                                int64_t resume_step);
void clasp_metrics_close(clasp_train_metrics *mx);
/* CLASP_ERR_IO naming metrics.jsonl when a line could not be written (a full disk): lines are
 * never lost silently. The trainer checks after each logged step and at the end. */
clasp_status clasp_metrics_check(const clasp_train_metrics *mx);

/* One optimiser step of this invocation: t0 start, t1 batch ready, t2 step done. */
void clasp_metrics_step_time(clasp_train_metrics *mx, double t0, double t1, double t2);
/* A finite step's loss, for source k's mean on the next train line. */
void clasp_metrics_add_loss(clasp_train_metrics *mx, int k, double loss);
/* Writes a train line (`skipped`: {reason: count}, taken over) and the progress bar; starts a
 * new window. */
void clasp_metrics_train_line(clasp_train_metrics *mx, const clasp_train_line *l, cJSON *skipped,
                              int64_t total_steps);
/* Publishes mx->snap (rank 0): to mx->pub and, with a textfile, rewrites it atomically.
 * The train, eval and checkpoint calls publish themselves; call this once after setting the
 * snapshot's run fields. A textfile that cannot be written is an error (CLASP_ERR_IO naming
 * it) when `strict`, else a warning, given once. */
clasp_status clasp_metrics_publish(clasp_train_metrics *mx, bool strict);
/* A checkpoint of `step` was written: its step and time join the published figures. */
void clasp_metrics_checkpoint(clasp_train_metrics *mx, int64_t step);
/* Writes an eval line. */
void clasp_metrics_eval_line(clasp_train_metrics *mx, int64_t step, int epoch, int64_t samples,
                             const clasp_train_eval_result *zr, double seconds);

/* Model FLOPs per training sample of pair (ta, tb) at global batch B: 3 x forward MACs x 2. */
double clasp_metrics_train_flops(const clasp_model *m, clasp_tower ta, clasp_tower tb, int B);

/* After the last step: ends the progress bar, puts the collectives' time per steady-state step
 * into sum (before the final checkpoint and evaluation add collectives of their own). */
void clasp_metrics_loop_end(clasp_train_metrics *mx, clasp_train_summary *sum);
/* Fills the summary's timing fields (seconds, samples_per_s, data_wait_frac, gflops); with `report`
 * (rank 0) writes the summary line and the end-of-run report on stderr. sum->steps, samples, world,
 * final_loss, checkpoint and the zero-shot fields are the caller's. */
void clasp_metrics_summary(clasp_train_metrics *mx, clasp_train_summary *sum,
                           double flops_per_sample, int threads, bool report);

#endif
