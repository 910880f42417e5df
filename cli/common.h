/* common.h: output helpers shared by the `clasp` commands (JSON on stdout, embedding sidecars,
 * run metrics). */
#ifndef CLASP_CLI_COMMON_H
#define CLASP_CLI_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "export/export.h"

/* Prints j on stdout as one line (pretty: indented) and deletes it; NULL prints nothing. */
void clasp_cli_print_json(cJSON *j, bool pretty);

/* Adds "names[i]": values[i] to o for i < n, in order. */
void clasp_cli_add_numbers(cJSON *o, const char *const *names, const double *values, size_t n);

/* The sidecar of an embeddings file: OUT.npy -> OUT.json, other names get ".json" appended. */
void clasp_cli_sidecar_path(const char *npy, char *out, size_t cap);

/* Appends line + '\n' to RUN/metrics.jsonl; returns 0, or 1 after a message naming `who`. */
int clasp_cli_append_metrics(const char *who, const char *run_dir, const char *line);

/* clasp_embedder_open, then the embedding precision (a clasp_precision; eval, embed and search
 * default to fp32); on error the embedder is closed and the message set. */
clasp_status clasp_cli_open_embedder(const char *path, int threads, int batch, int precision,
                                     clasp_embedder *em);

#endif
