/* http.h: a small HTTP server over libmicrohttpd: a route table of (method, path) -> handler,
 * a request body limit, loopback-only binding unless asked otherwise. Used by `clasp train
 * --metrics-addr` (GET /metrics) and meant for `clasp serve` (GET and POST routes).
 *
 *     static void metrics_(void *user, const clasp_http_request *req, clasp_http_response *res) {
 *         clasp_http_respond_text(res, 200, CLASP_PROM_CONTENT_TYPE, render(user));
 *     }
 *     clasp_http_route routes[] = {{"GET", "/metrics", metrics_, &state}};
 *     clasp_http_config c = clasp_http_default_config();
 *     c.addr = "127.0.0.1:9108";
 *     c.routes = routes;
 *     c.n_routes = 1;
 *     clasp_http_server *srv;
 *     if (clasp_http_start(&c, &srv) != CLASP_OK) fail(clasp_last_error());
 *     ... clasp_http_port(srv) ...
 *     clasp_http_stop(srv);
 *
 * Threads: the server runs in its own thread(s) (libmicrohttpd's internal polling thread, or a
 * pool of `threads`); handlers run there, so they must not block on the caller's work: read a
 * published snapshot, not live state. Connections are non-blocking: a slow or idle client holds
 * only its own connection (closed after `timeout_s` idle seconds), never the other clients or
 * the thread that started the server.
 *
 * Requests: the path is matched exactly (the query string is not part of it; read it with
 * clasp_http_query). A path with no route is 404; a path routed for other methods is 405 with
 * an Allow header. A body above max_body bytes (by Content-Length, or as it arrives) is 413
 * without calling the handler. The handler sees the whole body, NUL-terminated.
 *
 * Addresses: "HOST:PORT" with HOST an IPv4 address, a name ("localhost") or "[IPv6]"; PORT 0
 * binds a free port (clasp_http_port tells which). Unless allow_remote, HOST must resolve to a
 * loopback address (127.0.0.0/8, ::1): CLASP_ERR_ARG otherwise, saying so. */
#ifndef CLASP_NET_HTTP_H
#define CLASP_NET_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"

typedef struct clasp_http_server clasp_http_server;

typedef struct clasp_http_request {
    const char *method;       /* "GET", "POST", ... */
    const char *path;         /* "/metrics" (no query string) */
    const char *content_type; /* NULL when absent */
    const char *body;         /* (body_len) + NUL; "" without a body */
    size_t body_len;
    void *conn_; /* the connection, for clasp_http_header / clasp_http_query */
} clasp_http_request;

/* A request header (case-insensitive name) or query argument; NULL when absent. Valid during
 * the handler call. */
const char *clasp_http_header(const clasp_http_request *req, const char *name);
const char *clasp_http_query(const clasp_http_request *req, const char *key);

typedef struct clasp_http_response {
    int status;               /* HTTP status; 200 when the handler leaves it 0 */
    const char *content_type; /* a string that outlives the call (a literal); default text/plain */
    char *body;               /* malloc'd, taken over by the server; NULL = empty */
    size_t body_len;
    const char *allow; /* set by the server on 405: the Allow header */
} clasp_http_response;

/* Sets status, content type and a copy of text as the body (CLASP_ERR_NOMEM on failure; the
 * response then becomes a 500 with no body). */
clasp_status clasp_http_respond_text(clasp_http_response *res, int status, const char *content_type,
                                     const char *text);
/* Takes over body (malloc'd, len bytes) as the response body. */
void clasp_http_respond_take(clasp_http_response *res, int status, const char *content_type,
                             char *body, size_t len);

/* Fills *res for the request. Runs on a server thread; must be thread-safe when the server
 * has several threads. */
typedef void (*clasp_http_handler)(void *user, const clasp_http_request *req,
                                   clasp_http_response *res);

typedef struct clasp_http_route {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* exact path, e.g. "/metrics" */
    clasp_http_handler fn;
    void *user;
} clasp_http_route;

#define CLASP_HTTP_MAX_ROUTES 32

typedef struct clasp_http_config {
    const char *addr;               /* "HOST:PORT" (see above) */
    bool allow_remote;              /* false: HOST must be loopback */
    const clasp_http_route *routes; /* (n_routes) copied by clasp_http_start */
    int n_routes;                   /* 1..CLASP_HTTP_MAX_ROUTES */
    size_t max_body;                /* request body limit in bytes (default 1 MiB) */
    int threads;                    /* 1: one polling thread (default); N > 1: a pool of N */
    unsigned timeout_s;             /* idle connection timeout in seconds (default 30) */
    unsigned max_connections;       /* concurrent connections (default 64) */
} clasp_http_config;

clasp_http_config clasp_http_default_config(void);

/* Binds and starts serving. CLASP_ERR_ARG for a malformed or non-loopback address (the message
 * names the address), CLASP_ERR_IO when it cannot bind or listen (e.g. "address already in
 * use"), CLASP_ERR_ARG for a bad route table. */
clasp_status clasp_http_start(const clasp_http_config *c, clasp_http_server **out);
/* The bound port (the one chosen when the address asked for port 0). */
int clasp_http_port(const clasp_http_server *s);
/* Stops serving (open connections are closed), frees s. NULL-safe. */
void clasp_http_stop(clasp_http_server *s);

#endif
