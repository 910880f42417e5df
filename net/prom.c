/* prom.c: the Prometheus text exposition format 0.0.4. See prom.h. */
#include "net/prom.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void clasp_prom_init(clasp_prom_buf *b) {
    memset(b, 0, sizeof *b);
}

void clasp_prom_free(clasp_prom_buf *b) {
    if (!b) return;
    free(b->data);
    clasp_prom_init(b);
}

__attribute__((format(printf, 3, 4))) static void fail_(clasp_prom_buf *b, clasp_status code,
                                                        const char *fmt, ...) {
    if (b->failed != CLASP_OK) return; /* the first failure is the one reported */
    b->failed = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->error, sizeof b->error, fmt, ap);
    va_end(ap);
}

clasp_status clasp_prom_finish(clasp_prom_buf *b) {
    if (b->failed == CLASP_OK) return CLASP_OK;
    return clasp_set_error(b->failed, "prometheus exposition: %s", b->error);
}

static bool reserve_(clasp_prom_buf *b, size_t more) {
    if (b->failed != CLASP_OK) return false;
    if (b->len + more + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1) {
        if (cap > ((size_t)-1) / 2) {
            fail_(b, CLASP_ERR_OVERFLOW, "text too large");
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) {
        fail_(b, CLASP_ERR_NOMEM, "out of memory (%zu bytes)", cap);
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

static void put_(clasp_prom_buf *b, const char *s, size_t n) {
    if (!reserve_(b, n)) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void puts_(clasp_prom_buf *b, const char *s) {
    put_(b, s, strlen(s));
}

/* v as the format writes it into num[40]: NaN, +Inf, -Inf, or the shortest "%.*g" that reads
 * back as the same double (%.17g alone prints noise digits: 0.10000000000000001). */
static void format_value_(char *num, double v) {
    if (isnan(v)) {
        snprintf(num, 40, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(num, 40, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == floor(v) && fabs(v) < 9007199254740992.0) { /* an integer below 2^53: all digits */
        snprintf(num, 40, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(num, 40, "%.*g", prec, v);
        if (strtod(num, NULL) == v) return;
    }
}

static void put_value_(clasp_prom_buf *b, double v) {
    char num[40];
    format_value_(num, v);
    puts_(b, num);
}

bool clasp_prom_valid_metric_name(const char *s) {
    if (!s || !*s) return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (p > s && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

bool clasp_prom_valid_label_name(const char *s) {
    if (!s || !*s || !strncmp(s, "__", 2)) return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (p > s && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

/* Appends s with each character of `special` preceded by a backslash and '\n' written "\n". */
static void escaped_(clasp_prom_buf *b, const char *s, const char *special) {
    const char *run = s;
    for (const char *p = s; *p; p++) {
        if (*p != '\n' && !strchr(special, *p)) continue;
        put_(b, run, (size_t)(p - run));
        puts_(b, *p == '\n' ? "\\n" : *p == '"' ? "\\\"" : "\\\\");
        run = p + 1;
    }
    puts_(b, run);
}

void clasp_prom_escape_label(clasp_prom_buf *b, const char *value) {
    escaped_(b, value ? value : "", "\\\"");
}

static const char *type_name_(clasp_prom_type t) {
    switch (t) {
    case CLASP_PROM_COUNTER:
        return "counter";
    case CLASP_PROM_GAUGE:
        return "gauge";
    case CLASP_PROM_HISTOGRAM:
        return "histogram";
    default:
        return "untyped";
    }
}

static bool check_name_(clasp_prom_buf *b, const char *name) {
    if (clasp_prom_valid_metric_name(name)) return true;
    fail_(b, CLASP_ERR_ARG, "'%s' is not a valid metric name", name ? name : "(null)");
    return false;
}

void clasp_prom_family(clasp_prom_buf *b, const char *name, clasp_prom_type type,
                       const char *help) {
    if (!check_name_(b, name)) return;
    puts_(b, "# HELP ");
    puts_(b, name);
    puts_(b, " ");
    escaped_(b, help ? help : "", "\\");
    puts_(b, "\n# TYPE ");
    puts_(b, name);
    puts_(b, " ");
    puts_(b, type_name_(type));
    puts_(b, "\n");
}

/* name{labels[, extra="value"]} */
static void series_(clasp_prom_buf *b, const char *name, const clasp_prom_label *labels,
                    int n_labels, const clasp_prom_label *extra) {
    puts_(b, name);
    if (n_labels <= 0 && !extra) return;
    puts_(b, "{");
    for (int i = 0; i < n_labels + (extra != NULL); i++) {
        const clasp_prom_label *l = i < n_labels ? &labels[i] : extra;
        if (!clasp_prom_valid_label_name(l->name)) {
            fail_(b, CLASP_ERR_ARG, "%s: '%s' is not a valid label name", name,
                  l->name ? l->name : "(null)");
            return;
        }
        if (i > 0) puts_(b, ",");
        puts_(b, l->name);
        puts_(b, "=\"");
        clasp_prom_escape_label(b, l->value);
        puts_(b, "\"");
    }
    puts_(b, "}");
}

void clasp_prom_sample(clasp_prom_buf *b, const char *name, const clasp_prom_label *labels,
                       int n_labels, double value) {
    if (!check_name_(b, name)) return;
    series_(b, name, labels, n_labels, NULL);
    puts_(b, " ");
    put_value_(b, value);
    puts_(b, "\n");
}

void clasp_prom_metric(clasp_prom_buf *b, const char *name, clasp_prom_type type, const char *help,
                       double value) {
    clasp_prom_family(b, name, type, help);
    clasp_prom_sample(b, name, NULL, 0, value);
}

/* ---- histograms ------------------------------------------------------------------------- */

clasp_status clasp_prom_histogram_init(clasp_prom_histogram *h, const double *bounds,
                                       int n_bounds) {
    memset(h, 0, sizeof *h);
    if (!bounds || n_bounds < 1)
        return clasp_set_error(CLASP_ERR_ARG, "prometheus histogram: no bucket bounds");
    for (int i = 0; i < n_bounds; i++)
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
            return clasp_set_error(CLASP_ERR_ARG,
                                   "prometheus histogram: bound %d (%g) is not finite and above "
                                   "the one before",
                                   i, bounds[i]);
    h->counts = calloc((size_t)n_bounds + 1, sizeof *h->counts);
    if (!h->counts) return clasp_set_error(CLASP_ERR_NOMEM, "prometheus histogram: out of memory");
    h->bounds = bounds;
    h->n_bounds = n_bounds;
    return CLASP_OK;
}

void clasp_prom_histogram_free(clasp_prom_histogram *h) {
    if (!h) return;
    free(h->counts);
    memset(h, 0, sizeof *h);
}

void clasp_prom_histogram_observe(clasp_prom_histogram *h, double v) {
    int k = 0;
    while (k < h->n_bounds && !(v <= h->bounds[k])) k++; /* NaN: past every bound */
    h->counts[k]++;
    h->count++;
    if (!isnan(v)) h->sum += v;
}

void clasp_prom_write_histogram(clasp_prom_buf *b, const char *name, const clasp_prom_label *labels,
                                int n_labels, const clasp_prom_histogram *h) {
    if (!check_name_(b, name)) return;
    if (n_labels > 8) {
        fail_(b, CLASP_ERR_ARG, "%s: more than 8 labels", name);
        return;
    }
    char series[256];
    snprintf(series, sizeof series, "%s_bucket", name);
    uint64_t cum = 0;
    for (int k = 0; k <= h->n_bounds; k++) {
        cum += h->counts[k];
        char le[40];
        format_value_(le, k < h->n_bounds ? h->bounds[k] : HUGE_VAL);
        clasp_prom_label extra = {"le", le};
        series_(b, series, labels, n_labels, &extra);
        puts_(b, " ");
        put_value_(b, (double)cum);
        puts_(b, "\n");
    }
    snprintf(series, sizeof series, "%s_sum", name);
    clasp_prom_sample(b, series, labels, n_labels, h->sum);
    snprintf(series, sizeof series, "%s_count", name);
    clasp_prom_sample(b, series, labels, n_labels, (double)h->count);
}
