/* cmd_report.c: `clasp report RUN -o report.html [--data SPEC] [--model EXPORT]`: one
 * self-contained HTML page about a run (curves, zero-shot per class, confusion matrix,
 * retrieval gallery, config and environment; eval/report.h). */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "eval/report.h"

typedef struct report_args {
    clasp_report_options o;
} report_args;

#define A(field) offsetof(report_args, o.field)
static const clasp_arg report_table[] = {
    CLASP_ARG_COMMAND(
        "report",
        "RUN -o report.html [--data SPEC] [--model EXPORT|CKPT]\n"
        " [--zeroshot classes.txt [--templates t.txt]] [--queries N] [--threads N]",
        "Writes one self-contained HTML file about a run folder (works offline: the chart\n"
        "library, the data, thumbnails and audio are inlined): loss, lr, temperature and\n"
        "diagnostics curves over steps with the evaluation points, throughput and data wait,\n"
        "zero-shot recall per class and the confusion matrix, a retrieval gallery (text\n"
        "queries with their top-5 images; audio models: audio queries with players and their\n"
        "top-5 captions), the run's options, model config and environment. The model is the\n"
        "run's latest checkpoint (or --model) on the run's --val shards (or --data); a\n"
        "section that cannot be computed says why. A run still training is read as it is.\n"
        "Open the file with '#selftest' after its name to have the page check its charts.\n\n",
        NULL),
    {"RUN", 0, CLASP_ARG_POS, A(run_dir), NULL, NULL, NULL, CLASP_ARG_REQ | CLASP_ARG_DIR, 0, 0,
     NULL, NULL},
    {"", 'o', CLASP_ARG_STRING, A(out_path), "FILE", "the HTML file written (required)", NULL,
     CLASP_ARG_REQ | CLASP_ARG_DIR, 0, 0, NULL, NULL},
    {"data", 0, CLASP_ARG_STRING, A(data), "SPEC",
     "evaluation shards (default: the run's --val, options.json \"val\")", NULL, CLASP_ARG_DIR, 0,
     0, NULL, NULL},
    {"model", 0, CLASP_ARG_STRING, A(model), "EXPORT|CKPT",
     "the model of the zero-shot and gallery sections (default: the run's latest checkpoint)", NULL,
     CLASP_ARG_DIR, 0, 0, NULL, NULL},
    {"zeroshot", 0, CLASP_ARG_STRING, A(classes), "FILE",
     "class names, one per line (default: classnames.txt beside the data's first shard)", NULL,
     CLASP_ARG_DIR, 0, 0, NULL, NULL},
    {"templates", 0, CLASP_ARG_STRING, A(templates), "FILE",
     "prompt templates with '{}' (default: templates.txt beside the data's first shard, else "
     "the class names alone)",
     NULL, CLASP_ARG_DIR, 0, 0, NULL, NULL},
    {"queries", 0, CLASP_ARG_INT, A(queries), "N", "gallery queries (default 8)", NULL, 0, 1, 64,
     NULL, NULL},
    CLASP_ARG_THREADS(A(threads), "2"),
    CLASP_ARG_WORKERS(A(workers), ""),
    CLASP_ARG_END,
};
#undef A

int clasp_cmd_report(int argc, char **argv) {
    report_args r = {.o = {.threads = 2, .workers = 1, .queries = 8, .version = CLASP_VERSION}};
    int rc;
    if (!clasp_args_parse(report_table, &r, argc, argv, &rc)) return rc;
    if (clasp_report(&r.o) != CLASP_OK) return clasp_args_fail(report_table);
    fprintf(stderr, "clasp report: %s\n", r.o.out_path);
    return 0;
}
