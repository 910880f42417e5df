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

/* clasp_embedder_open (lazy: clasp_embedder_open_lazy, for commands that only embed through
 * the clasp_embedder_* calls), then the embedding precision (a clasp_precision; eval, embed and
 * search default to fp32); on error the embedder is closed and the message set. */
clasp_status clasp_cli_open_embedder(const char *path, int threads, int batch, int precision,
                                     bool lazy, clasp_embedder *em);

/* Keys of embedded rows (strdup'd), grown as rows are added. */
typedef struct clasp_cli_keys {
    char **k;
    size_t n, cap;
} clasp_cli_keys;
bool clasp_cli_keys_add(clasp_cli_keys *l, const char *s); /* false: out of memory */
void clasp_cli_keys_free(clasp_cli_keys *l);

/* Embeds tower t of every sample of the shard spec (the loader in evaluation mode, `workers`
 * decode threads) into *out (malloc'd, *n rows of em->D) and their sample keys into keys
 * (cli/cmd_embed.c: `clasp embed --shards`, `clasp index build --shards`). */
clasp_status clasp_cli_embed_shards(clasp_embedder *em, const char *spec, clasp_tower t,
                                    int workers, clasp_cli_keys *keys, float **out, size_t *n);

#endif
