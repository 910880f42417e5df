/* prom.h: the Prometheus text exposition format 0.0.4, written into a growing buffer.
 *
 * No HTTP here (net/http.h serves what this writes), so code below the CLI (train/) can render
 * its figures for a scrape or a node_exporter textfile without linking libmicrohttpd.
 *
 *     clasp_prom_buf b;
 *     clasp_prom_init(&b);
 *     clasp_prom_family(&b, "clasp_train_loss", CLASP_PROM_GAUGE, "Mean loss since the last log");
 *     clasp_prom_label src[] = {{"source", "0"}, {"pair", "image-text"}};
 *     clasp_prom_sample(&b, "clasp_train_loss", src, 2, 0.42);
 *     if (clasp_prom_finish(&b) == CLASP_OK) use(b.data, b.len);
 *     clasp_prom_free(&b);
 *
 * One family is written as its HELP and TYPE lines followed by all its samples (the format
 * wants a family's samples together). Values print as the shortest "%.17g" form; NaN and
 * infinities as NaN, +Inf, -Inf. Label values are escaped (backslash, double quote, newline);
 * HELP text too (backslash, newline). Names are checked: a metric name that does not match
 * [a-zA-Z_:][a-zA-Z0-9_:]* or a label name outside [a-zA-Z_][a-zA-Z0-9_]* (or starting with
 * "__") marks the buffer failed, and clasp_prom_finish reports it (CLASP_ERR_ARG naming it).
 * Allocation failure marks it failed too (CLASP_ERR_NOMEM). So writers need not check each call.
 *
 * Histograms: clasp_prom_histogram holds cumulative-ready bucket counts for caller-given upper
 * bounds; clasp_prom_histogram_observe adds one value; clasp_prom_write_histogram writes the
 * _bucket{le=...} series (cumulative, ending with le="+Inf"), _sum and _count. Neither the buffer
 * nor a histogram is thread-safe: guard a shared histogram with the caller's own mutex. */
#ifndef CLASP_NET_PROM_H
#define CLASP_NET_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* The content type of the text format served on /metrics. */
#define CLASP_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef enum clasp_prom_type {
    CLASP_PROM_COUNTER = 0,
    CLASP_PROM_GAUGE,
    CLASP_PROM_HISTOGRAM,
    CLASP_PROM_UNTYPED
} clasp_prom_type;

typedef struct clasp_prom_label {
    const char *name, *value;
} clasp_prom_label;

typedef struct clasp_prom_buf {
    char *data; /* NUL-terminated text (NULL until something is written) */
    size_t len, cap;
    clasp_status failed; /* first failure (CLASP_OK while none) */
    char error[256];     /* its message */
} clasp_prom_buf;

void clasp_prom_init(clasp_prom_buf *b);
void clasp_prom_free(clasp_prom_buf *b); /* NULL-safe; leaves an empty buffer */
/* The buffer's state: CLASP_OK, or the first failure with clasp_set_error(its message). */
clasp_status clasp_prom_finish(clasp_prom_buf *b);

/* "# HELP name help\n# TYPE name type\n". */
void clasp_prom_family(clasp_prom_buf *b, const char *name, clasp_prom_type type, const char *help);
/* "name{l1="v1",...} value\n" (no braces when n_labels is 0). */
void clasp_prom_sample(clasp_prom_buf *b, const char *name, const clasp_prom_label *labels,
                       int n_labels, double value);
/* A family of one unlabelled sample: clasp_prom_family + clasp_prom_sample. */
void clasp_prom_metric(clasp_prom_buf *b, const char *name, clasp_prom_type type, const char *help,
                       double value);

/* Whether s is a valid metric name / label name of the format. */
bool clasp_prom_valid_metric_name(const char *s);
bool clasp_prom_valid_label_name(const char *s);
/* Appends value escaped as a label value (\\, \", \n) to b. */
void clasp_prom_escape_label(clasp_prom_buf *b, const char *value);

typedef struct clasp_prom_histogram {
    int n_bounds;         /* finite upper bounds, ascending */
    const double *bounds; /* (n_bounds) borrowed */
    uint64_t *counts;     /* (n_bounds + 1) per bucket, not cumulative; last = above all */
    double sum;           /* of observed values */
    uint64_t count;       /* values observed */
} clasp_prom_histogram;

/* bounds (n_bounds >= 1, strictly ascending, finite) are borrowed and must outlive h.
 * CLASP_ERR_ARG for a bad bound list, CLASP_ERR_NOMEM. */
clasp_status clasp_prom_histogram_init(clasp_prom_histogram *h, const double *bounds, int n_bounds);
void clasp_prom_histogram_free(clasp_prom_histogram *h); /* NULL-safe */
/* Counts v in the first bucket whose bound is >= v (NaN goes to +Inf only, sum unchanged). */
void clasp_prom_histogram_observe(clasp_prom_histogram *h, double v);
/* name_bucket{labels...,le="b"} (cumulative), name_sum{labels}, name_count{labels}; the family
 * lines (clasp_prom_family with CLASP_PROM_HISTOGRAM) are the caller's, written once before
 * the histograms of all label sets. At most 8 labels. */
void clasp_prom_write_histogram(clasp_prom_buf *b, const char *name, const clasp_prom_label *labels,
                                int n_labels, const clasp_prom_histogram *h);

#endif
