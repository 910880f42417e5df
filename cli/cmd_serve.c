/* cmd_serve.c: `clasp serve --model EXPORT [--index IDX] [--addr HOST:PORT] ...`: the
 * embedding/search HTTP server (serve/serve.h, docs/serve.md) until SIGINT/SIGTERM; SIGHUP
 * reloads the index folder's current version. */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/json.h"
#include "core/log.h"
#include "serve/serve.h"

typedef struct serve_args {
    const char *model, *index, *addr, *token;
    int workers, queue, timeout_ms;
    int64_t max_body;
    bool allow_remote;
} serve_args;

#define A(field) offsetof(serve_args, field)
static const clasp_arg serve_table[] = {
    CLASP_ARG_COMMAND("serve",
                      "--model EXPORT [--index IDX] [--addr HOST:PORT] [--workers N] [--queue N]\n"
                      " [--max-body BYTES] [--timeout-ms MS] [--token FILE] [--allow-remote]",
                      "Serves POST /embed, POST /search, GET /healthz, GET /metrics and POST\n"
                      "/admin/reload over HTTP (docs/serve.md) until interrupted; SIGHUP reloads\n"
                      "the index folder's current version.\n\n",
                      NULL),
    CLASP_ARG_MODEL(A(model), "EXPORT"),
    {"index", 0, CLASP_ARG_STRING, A(index), "IDX",
     "an index folder (`clasp index build`) of the same model, for /search", NULL, 0, 0, 0, NULL,
     NULL},
    {"addr", 0, CLASP_ARG_STRING, A(addr), "HOST:PORT",
     "address to listen on (default 127.0.0.1:8080; port 0 = any free port)", NULL, 0, 0, 0, NULL,
     NULL},
    {"workers", 0, CLASP_ARG_INT, A(workers), "N",
     "requests embedded/searched at once, one model replica each (default 2)", NULL, 0, 1, 64, NULL,
     NULL},
    {"queue", 0, CLASP_ARG_INT, A(queue), "N",
     "requests waiting for a worker before answering 503 (default 16)", NULL, 0, 0, 1024, NULL,
     NULL},
    {"max-body", 0, CLASP_ARG_INT64, A(max_body), "BYTES",
     "request body limit, 413 above (default 8388608)", NULL, 0, 1, 0, NULL, NULL},
    {"timeout-ms", 0, CLASP_ARG_INT, A(timeout_ms), "MS",
     "longest wait for a worker (503 after); idle connections close after it (default 10000)", NULL,
     0, 1, 0, NULL, NULL},
    {"token", 0, CLASP_ARG_STRING, A(token), "FILE",
     "a file holding the bearer token every request must send (Authorization: Bearer TOKEN)", NULL,
     CLASP_ARG_IN, 0, 0, NULL, NULL},
    {"allow-remote", 0, CLASP_ARG_FLAG, A(allow_remote), NULL,
     "allow a non-loopback --addr (needs --token)", NULL, 0, 0, 0, NULL, NULL},
    CLASP_ARG_END,
};
#undef A

static volatile sig_atomic_t stop_, hup_;
static void on_stop_(int sig) {
    (void)sig;
    stop_ = 1;
}
static void on_hup_(int sig) {
    (void)sig;
    hup_ = 1;
}

/* The token of FILE: its first line, surrounding whitespace removed. */
static clasp_status read_token_(const char *path, char **out) {
    char *t;
    size_t n;
    CLASP_TRY(clasp_read_file(path, 4096, &t, &n));
    size_t a = strspn(t, " \t\r\n"), b = a + strcspn(t + a, " \t\r\n");
    t[b] = '\0';
    memmove(t, t + a, b - a + 1);
    if (!t[0]) {
        free(t);
        return clasp_set_error(CLASP_ERR_CONFIG, "%s: empty token", path);
    }
    *out = t;
    return CLASP_OK;
}

static int run_(const serve_args *sa, const char *token) {
    clasp_serve_config c = clasp_serve_default_config();
    c.model = sa->model;
    c.index = sa->index;
    if (sa->addr) c.addr = sa->addr;
    c.allow_remote = sa->allow_remote;
    c.token = token;
    c.workers = sa->workers;
    c.queue = sa->queue;
    c.max_body = (size_t)sa->max_body;
    c.timeout_ms = sa->timeout_ms;
    clasp_serve *s;
    if (clasp_serve_start(&c, &s) != CLASP_OK) return clasp_args_fail(serve_table);
    struct sigaction st = {.sa_handler = on_stop_}, sh = {.sa_handler = on_hup_};
    sigaction(SIGINT, &st, NULL);
    sigaction(SIGTERM, &st, NULL);
    sigaction(SIGHUP, &sh, NULL);
    fprintf(stderr, "clasp serve: listening on port %d\n", clasp_serve_port(s));
    while (!stop_) {
        nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
        if (hup_) {
            hup_ = 0;
            if (clasp_serve_reload(s) == CLASP_OK)
                fprintf(stderr, "clasp serve: index reloaded\n");
            else
                fprintf(stderr, "clasp serve: reload refused, old index kept: %s\n",
                        clasp_last_error());
        }
    }
    clasp_serve_stop(s);
    return 0;
}

int clasp_cmd_serve(int argc, char **argv) {
    serve_args sa = {.workers = 2, .queue = 16, .timeout_ms = 10000, .max_body = (int64_t)8 << 20};
    int rc;
    if (!clasp_args_parse(serve_table, &sa, argc, argv, &rc)) return rc;
    if (sa.allow_remote && !sa.token)
        return clasp_args_usage_error(serve_table, "--allow-remote needs --token FILE");
    char *token = NULL;
    if (sa.token && read_token_(sa.token, &token) != CLASP_OK) return clasp_args_fail(serve_table);
    rc = run_(&sa, token);
    free(token);
    return rc;
}
