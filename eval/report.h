/* report.h: `clasp report`: one self-contained HTML page about a run folder.
 *
 * The page (template eval/report.html, with the chart library third_party/uplot inlined: no
 * network needed) shows
 *   - the curves of RUN/metrics.jsonl over steps: loss, lr, temperature (1 / logit scale),
 *     the engine's diagnostics (positive and hardest-negative similarity, alignment, feature
 *     std per tower, uniformity, gradient norm), throughput and data wait, each with the
 *     evaluation points ("kind": "eval" lines) marked;
 *   - zero-shot recall per class and the confusion matrix, computed from the model (the run's
 *     latest checkpoint, or `model`) on the evaluation data (the run's "val" in options.json,
 *     or `data`) with the class names and templates (`classes`/`templates`, by default
 *     classnames.txt and templates.txt in the folder of the data's first shard, the layout
 *     `clasp shards build` writes);
 *   - a retrieval gallery: image-text models: one text query per class (or the first distinct
 *     captions without labels) with its top-5 images as data: URI thumbnails (the image itself
 *     when a browser shows its format and it is under 48 KiB, else a 128 x 128 PNG); audio models:
 *     audio queries (<audio> players, data: URIs) with their top-5 captions; a hit (same
 *     class, same caption group) is marked;
 *   - options.json, config.json and the environment (clasp version and backend of the report,
 *     the run's precision, threads, ranks and end-of-run summary).
 * What cannot be computed (no metrics yet, no checkpoint yet, no evaluation data, no class
 * names) is a section saying "not available: why", never an error. A run still training is
 * read as it is: a last line of metrics.jsonl without its newline (being written) is ignored.
 *
 * Everything taken from files goes into the page as one JSON object in a
 * <script type="application/json"> element with '<', '>' and '&' escaped (\u003c ...); the
 * page's script puts it into the document with textContent only, so captions, keys and config
 * strings cannot break the page.
 *
 * Opened with the fragment #selftest the page checks itself after drawing: every chart's
 * canvas holds pixels of each of its series' colours, and no script error happened; it writes
 * "SELFTEST OK: N charts" or "SELFTEST FAIL: reasons" into <pre id="selftest"> (what
 * `chromium --headless --dump-dom` prints; tests/report_browser.sh reads it).
 */
#ifndef CLASP_EVAL_REPORT_H
#define CLASP_EVAL_REPORT_H

#include <cjson/cJSON.h>

#include "core/status.h"

typedef struct clasp_report_options {
    const char *run_dir;   /* the run folder (required) */
    const char *out_path;  /* the HTML file written (atomically) */
    const char *data;      /* evaluation shards; NULL: options.json "val" */
    const char *model;     /* export, checkpoint or run folder; NULL: run_dir's latest checkpoint */
    const char *classes;   /* class names; NULL: classnames.txt beside the data's first shard */
    const char *templates; /* prompt templates; NULL: templates.txt beside it (absent: names) */
    const char *version;   /* clasp version shown in the environment section (may be NULL) */
    int threads, workers;  /* compute threads and decode threads of the model's pass */
    int queries;           /* gallery queries (default 8 when 0) */
} clasp_report_options;

/* Builds the page's data object (exposed for tests; the caller cJSON_Deletes it). Errors only
 * for an unreadable run folder (CLASP_ERR_NOT_FOUND naming it), a newer run format and out of
 * memory; everything else becomes a "not available" section. */
clasp_status clasp_report_data(const clasp_report_options *o, cJSON **out);

/* Writes the page for `data` (clasp_report_data's) to `path`. */
clasp_status clasp_report_write_html(const cJSON *data, const char *path);

/* Both: the data, then the page at o->out_path. */
clasp_status clasp_report(const clasp_report_options *o);

/* The HTML-safe JSON text of j: cJSON's output with '<', '>' and '&' written as \u003c, \u003e,
 * \u0026 (malloc'd; NULL when out of memory). */
char *clasp_report_json_text(const cJSON *j);

#endif
