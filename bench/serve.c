/* bench/serve.c: a small load client for `clasp serve` on 127.0.0.1 (minimal HTTP/1.1 over a
 * socket, one connection per request). scripts/serve-load.sh starts the server and runs it.
 *
 *     bench_serve load PORT [SECONDS]       text /search QPS, p50/p99 at 1, 2, 8 clients
 *     bench_serve malformed PORT            1,000 bad requests: each must be a 4xx, the server
 *                                           must still answer /healthz
 *     bench_serve reload PORT [SECONDS]     4 clients search while /admin/reload runs every
 *                                           100 ms: counts failed requests
 * Exit status 1 when a request failed (load, reload) or a bad request was not a 4xx. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static int port_;

/* One request; returns the status (0 when the connection failed), the body into out (optional,
 * malloc'd). content_length < 0: the body's length; otherwise announced as given. */
static int request_(const char *method, const char *path, const char *ctype, const void *body,
                    size_t len, long long content_length, char **out) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port_)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0) close(fd);
        return 0;
    }
    char head[512];
    int h = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: "
                     "%s\r\nContent-Length: %lld\r\n\r\n",
                     method, path, ctype, content_length < 0 ? (long long)len : content_length);
    bool ok = send(fd, head, (size_t)h, MSG_NOSIGNAL) == h;
    for (size_t at = 0; ok && at < len;) {
        ssize_t w = send(fd, (const char *)body + at, len - at, MSG_NOSIGNAL);
        if (w <= 0) break; /* answered (413) before the whole body */
        at += (size_t)w;
    }
    size_t cap = 1 << 14, n = 0;
    char *buf = malloc(cap);
    for (ssize_t got; buf && (got = recv(fd, buf + n, cap - n - 1, 0)) > 0;) {
        n += (size_t)got;
        if (n + 1 == cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b) break;
            buf = b;
        }
    }
    close(fd);
    int status = 0;
    if (buf) {
        buf[n] = '\0';
        if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) status = 0;
        const char *sep = strstr(buf, "\r\n\r\n");
        if (out) *out = strdup(sep ? sep + 4 : "");
    }
    free(buf);
    return status;
}

static const char *const queries_[] = {"a photo of a boot", "a sandal",     "a red dress", "a bag",
                                       "a pullover",        "an ankle boot"};

typedef struct client {
    double until;
    double *lat;
    int n, cap, errors;
} client;

static void *client_(void *arg) {
    client *c = arg;
    char body[128];
    for (int i = 0; bench_now(CLOCK_MONOTONIC) < c->until; i++) {
        snprintf(body, sizeof body, "{\"text\":\"%s\",\"k\":10}", queries_[i % 6]);
        double t0 = bench_now(CLOCK_MONOTONIC);
        int st = request_("POST", "/search", "application/json", body, strlen(body), -1, NULL);
        double dt = bench_now(CLOCK_MONOTONIC) - t0;
        if (st != 200) c->errors++;
        if (c->n == c->cap) {
            double *l = realloc(c->lat, (size_t)(c->cap = c->cap ? 2 * c->cap : 1024) * sizeof *l);
            if (!l) break;
            c->lat = l;
        }
        c->lat[c->n++] = dt;
    }
    return NULL;
}

/* nc clients for seconds; prints one line; returns the errors. */
static int run_clients_(int nc, double seconds, const char *what) {
    client cs[16] = {{0}};
    pthread_t t[16];
    double t0 = bench_now(CLOCK_MONOTONIC);
    for (int i = 0; i < nc; i++) {
        cs[i].until = t0 + seconds;
        pthread_create(&t[i], NULL, client_, &cs[i]);
    }
    int n = 0, errors = 0;
    for (int i = 0; i < nc; i++) {
        pthread_join(t[i], NULL);
        n += cs[i].n;
        errors += cs[i].errors;
    }
    double wall = bench_now(CLOCK_MONOTONIC) - t0;
    double *all = malloc((size_t)(n ? n : 1) * sizeof *all);
    for (int i = 0, at = 0; i < nc; i++) {
        memcpy(all + at, cs[i].lat, (size_t)cs[i].n * sizeof *all);
        at += cs[i].n;
        free(cs[i].lat);
    }
    qsort(all, (size_t)n, sizeof *all, bench_cmp_double);
    printf("%s clients=%d requests=%d qps=%.1f p50_ms=%.2f p99_ms=%.2f errors=%d\n", what, nc, n,
           n / wall, n ? 1e3 * all[n / 2] : 0.0, n ? 1e3 * all[(size_t)(0.99 * (n - 1))] : 0.0,
           errors);
    free(all);
    return errors;
}

/* The model's dimension, from an /embed of one text. */
static int dim_(void) {
    char *out = NULL;
    const char *b = "{\"texts\":[\"a bag\"]}";
    int st = request_("POST", "/embed", "application/json", b, strlen(b), -1, &out);
    const char *d = out ? strstr(out, "\"dim\":") : NULL;
    int dim = st == 200 && d ? atoi(d + 6) : 0;
    free(out);
    return dim;
}

/* Bad request number i (six kinds in turn); *want names it. */
static int bad_request_(int i, int dim, const char **kind) {
    static const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0,
                                        0,    13,  'I', 'H', 'D',  'R',  0,    0,    0, 28};
    char *b = malloc((size_t)dim * 4 + 64);
    size_t at;
    int st = 0;
    switch (i % 6) {
    case 0:
        *kind = "bad JSON";
        st = request_("POST", "/search", "application/json", "{\"text\": \"a", 11, -1, NULL);
        break;
    case 1:
        *kind = "huge body";
        st = request_("POST", "/embed", "application/json", "{\"texts\":[", 10, 1LL << 30, NULL);
        break;
    case 2:
        *kind = "wrong content type";
        st = request_("POST", "/search", "text/plain", "a bag", 5, -1, NULL);
        break;
    case 3:
        *kind = "truncated image";
        st = request_("POST", "/search", "image/png", png, sizeof png, -1, NULL);
        break;
    case 4:
        *kind = "NaN vector";
        at = (size_t)sprintf(b, "{\"vector\":[1e999");
        for (int d = 1; d < dim; d++) at += (size_t)sprintf(b + at, ",0");
        at += (size_t)sprintf(b + at, "]}");
        st = request_("POST", "/search", "application/json", b, at, -1, NULL);
        break;
    default:
        *kind = "wrong dimension";
        at = (size_t)sprintf(b, "{\"vector\":[1");
        for (int d = 1; d < dim + 1; d++) at += (size_t)sprintf(b + at, ",0");
        at += (size_t)sprintf(b + at, "]}");
        st = request_("POST", "/search", "application/json", b, at, -1, NULL);
    }
    free(b);
    return st;
}

static int malformed_(void) {
    int dim = dim_();
    if (dim < 1) {
        fprintf(stderr, "bench_serve: /embed did not answer with a dimension\n");
        return 1;
    }
    int not4xx = 0, down = 0, by[6] = {0};
    for (int i = 0; i < 1000; i++) {
        const char *kind;
        int st = bad_request_(i, dim, &kind);
        if (st >= 400 && st < 500)
            by[i % 6]++;
        else if (not4xx++ < 10)
            fprintf(stderr, "request %d (%s): status %d\n", i, kind, st);
        if (i % 100 == 99 && request_("GET", "/healthz", "text/plain", "", 0, -1, NULL) != 200)
            down++;
    }
    printf("malformed requests=1000 4xx=%d not_4xx=%d healthz_failures=%d (bad JSON %d, huge body "
           "%d, content type %d, truncated image %d, NaN vector %d, wrong dimension %d)\n",
           1000 - not4xx, not4xx, down, by[0], by[1], by[2], by[3], by[4], by[5]);
    return not4xx || down;
}

typedef struct reloader {
    double until;
    int ok, failed;
} reloader;

static void *reloader_(void *arg) {
    reloader *r = arg;
    while (bench_now(CLOCK_MONOTONIC) < r->until) {
        if (request_("POST", "/admin/reload", "application/json", "{}", 2, -1, NULL) == 200)
            r->ok++;
        else
            r->failed++;
        nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3 || (port_ = atoi(argv[2])) <= 0) {
        fprintf(stderr, "usage: bench_serve load|malformed|reload PORT [SECONDS]\n");
        return 2;
    }
    double seconds = argc > 3 ? atof(argv[3]) : 5;
    if (strcmp(argv[1], "malformed") == 0) return malformed_();
    if (strcmp(argv[1], "reload") == 0) {
        reloader r = {.until = bench_now(CLOCK_MONOTONIC) + seconds};
        pthread_t t;
        pthread_create(&t, NULL, reloader_, &r);
        int errors = run_clients_(4, seconds, "reload-under-load");
        pthread_join(t, NULL);
        printf("reloads ok=%d failed=%d; failed search requests=%d\n", r.ok, r.failed, errors);
        return errors || r.failed;
    }
    if (strcmp(argv[1], "load") != 0) {
        fprintf(stderr, "bench_serve: unknown mode %s\n", argv[1]);
        return 2;
    }
    int errors = 0;
    static const int nc[] = {1, 2, 8};
    for (int i = 0; i < 3; i++) errors += run_clients_(nc[i], seconds, "search-text");
    return errors != 0;
}
