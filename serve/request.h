/* request.h: the request parsing of `clasp serve` (serve/serve.h), kept apart from the sockets
 * so tests and the fuzz target (tests/fuzz/fuzz_serve_request.c) call it directly.
 *
 * Every parser takes the body as bytes (body_len; no NUL needed), returns CLASP_OK or
 * CLASP_ERR_FORMAT / CLASP_ERR_NUMERIC / CLASP_ERR_ARG with a message naming the field and the
 * problem (the server answers 400 with it). Nothing is allocated on failure. */
#ifndef CLASP_SERVE_REQUEST_H
#define CLASP_SERVE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"

#define CLASP_SERVE_MAX_TEXTS 256  /* texts of one /embed request */
#define CLASP_SERVE_MAX_K     1000 /* results of one /search request */

/* What a Content-Type header announces. */
typedef enum clasp_serve_body {
    CLASP_SERVE_BODY_OTHER = 0, /* anything else: 415 */
    CLASP_SERVE_BODY_JSON,      /* application/json[; charset=...] */
    CLASP_SERVE_BODY_IMAGE,     /* image/... */
    CLASP_SERVE_BODY_AUDIO      /* audio/... */
} clasp_serve_body;

clasp_serve_body clasp_serve_body_kind(const char *content_type);

/* {"texts": ["...", ...]}: 1..CLASP_SERVE_MAX_TEXTS non-empty strings. *texts is one malloc'd
 * block (the pointers, then the strings): free(*texts). */
clasp_status clasp_serve_parse_texts(const char *body, size_t body_len, char ***texts, int *n);

/* A /search JSON body: {"text": "..."} or {"vector": [numbers]} (exactly one), optional "k". */
typedef struct clasp_serve_query {
    char *text;    /* malloc'd, or NULL */
    float *vector; /* malloc'd (dim), or NULL */
    int k;         /* "k" of the body, or the value passed in */
} clasp_serve_query;

/* dim: the dimension a vector must have. k: the default (from ?k=). A vector must be finite
 * (as float) and not all zero. Free with clasp_serve_query_free. */
clasp_status clasp_serve_parse_search(const char *body, size_t body_len, int dim, int k,
                                      clasp_serve_query *q);
void clasp_serve_query_free(clasp_serve_query *q);

/* The ?k= argument: NULL = def; otherwise a decimal 1..CLASP_SERVE_MAX_K. */
clasp_status clasp_serve_parse_k(const char *s, int def, int *k);

/* "Bearer TOKEN" in header against token, in time independent of where they differ. */
bool clasp_serve_bearer_ok(const char *header, const char *token);

#endif
