/* serve.h: the embedding/search HTTP server of `clasp serve` (docs/serve.md), over net/http.h
 * (libmicrohttpd) and net/prom.h.
 *
 *     clasp_serve_config c = clasp_serve_default_config();
 *     c.model = "EXPORT"; c.index = "IDX"; c.addr = "127.0.0.1:0";
 *     clasp_serve *s;
 *     if (clasp_serve_start(&c, &s) != CLASP_OK) fail(clasp_last_error());
 *     ... clasp_serve_port(s) ...  clasp_serve_reload(s) (SIGHUP) ...
 *     clasp_serve_stop(s);
 *
 * Routes: POST /embed, POST /search (needs an index), GET /healthz, GET /metrics,
 * POST /admin/reload. With a token every route needs "Authorization: Bearer TOKEN" (401).
 *
 * Workers: `workers` embedders (one model replica each, one compute thread) run the /embed and
 * /search requests; up to `queue` more wait for a free one, at most `timeout_ms`; beyond that a
 * request is 503 {"error": ...} at once (or after the wait). The HTTP layer has workers + queue + 2
 * threads, so /healthz, /metrics and the 503 answers are not stuck behind busy workers.
 *
 * Index reload: the index folder's current version is opened anew and published; each request
 * holds a reference to the version it started with, so in-flight requests finish on the old one
 * (closed when its last request ends) and new requests use the new one. A version built with
 * another model or dimension is refused and the old one stays. */
#ifndef CLASP_SERVE_SERVE_H
#define CLASP_SERVE_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct clasp_serve clasp_serve;

typedef struct clasp_serve_config {
    const char *model; /* export (or checkpoint) folder */
    const char *index; /* index folder (index/index.h), or NULL: /search answers 404 */
    const char *addr;  /* "HOST:PORT" (default 127.0.0.1:8080) */
    bool allow_remote; /* a non-loopback HOST; needs token */
    const char *token; /* bearer token (not a file), or NULL */
    int workers;       /* embedders (default 2) */
    int queue;         /* requests waiting for a worker (default 16) */
    size_t max_body;   /* request body limit (default 8 MiB) */
    int timeout_ms;    /* wait for a worker (default 10000); idle connections: ceil(s) */
    /* Tests: called by a worker before each job (to hold workers busy). */
    void (*job_hook)(void *user);
    void *hook_user;
} clasp_serve_config;

clasp_serve_config clasp_serve_default_config(void);

/* Opens the model (workers embedders) and the index (its model hash and dimension checked
 * against the model's), then binds. CLASP_ERR_ARG for a non-loopback address without
 * allow_remote and token. */
clasp_status clasp_serve_start(const clasp_serve_config *c, clasp_serve **out);
int clasp_serve_port(const clasp_serve *s);
/* Swaps to the index folder's current version (see above). CLASP_ERR_STATE without an index. */
clasp_status clasp_serve_reload(clasp_serve *s);
/* Stops serving and frees everything. NULL-safe. */
void clasp_serve_stop(clasp_serve *s);

#endif
