/* test_serve.c: serve/ (the `clasp serve` server) in-process on an ephemeral port, spoken to
 * over a plain socket: /embed against the embedder itself, /search against the index, /healthz,
 * /metrics through promtool, the 4xx answers, 503 on a full queue, the bearer token, and index
 * reloads under load with no failed request; plus the request parsers without sockets. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/hash.h"
#include "export/export.h"
#include "fixtures.h"
#include "index/index.h"
#include "serve/request.h"
#include "serve/serve.h"

/* ---- a minimal HTTP/1.1 client ---- */

typedef struct reply {
    int status;
    char *body; /* malloc'd, NUL-terminated */
} reply;

static reply http_(int port, const char *method, const char *path, const char *ctype,
                   const void *body, size_t len, const char *auth) {
    reply r = {0, NULL};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0) close(fd);
        return r;
    }
    char head[1024];
    int h = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n%s%s%s%s%s\r\n",
                     method, path, len, ctype ? "Content-Type: " : "", ctype ? ctype : "",
                     ctype ? "\r\n" : "", auth ? auth : "", auth ? "\r\n" : "");
    bool ok = send(fd, head, (size_t)h, MSG_NOSIGNAL) == h;
    for (size_t at = 0; ok && at < len;) {
        ssize_t w = send(fd, (const char *)body + at, len - at, MSG_NOSIGNAL);
        if (w <= 0) break; /* the server may answer (413) before reading it all */
        at += (size_t)w;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (ssize_t got; (got = recv(fd, buf + n, cap - n - 1, 0)) > 0;) {
        n += (size_t)got;
        if (n + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    close(fd);
    buf[n] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.%*d %d", &r.status) != 1 || !sep) {
        free(buf);
        return (reply){0, NULL};
    }
    r.body = strdup(sep + 4);
    free(buf);
    return r;
}

static reply post_(int port, const char *path, const char *ctype, const char *json) {
    return http_(port, "POST", path, ctype, json, strlen(json), NULL);
}

/* ---- fixtures: an export, an index of some texts ---- */

static const char *const texts_[] = {"a photo of a boot", "a sandal", "a red dress",
                                     "a trouser",         "a bag",    "a pullover"};
#define N_TEXTS 6

static void export_(const char *dir) {
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    cr_assert(fx_export_model(cfg, NULL, dir, 1), "%s", clasp_last_error());
}

/* The embeddings of texts_ (N_TEXTS, *D) by the embedder itself; malloc'd. */
static float *embed_direct_(const char *model, int *D, uint64_t *hash) {
    clasp_embedder em;
    cr_assert_eq(clasp_embedder_open(model, 1, 8, &em), CLASP_OK, "%s", clasp_last_error());
    float *x = malloc((size_t)N_TEXTS * (size_t)em.D * sizeof *x);
    cr_assert_eq(clasp_embedder_texts(&em, texts_, N_TEXTS, x), CLASP_OK, "%s", clasp_last_error());
    *D = em.D;
    *hash = em.model_hash;
    clasp_embedder_close(&em);
    return x;
}

/* Builds a flat index of x with keys prefix0..prefix5. */
static void build_(const char *idx, const float *x, int D, uint64_t hash, const char *prefix) {
    char kb[N_TEXTS][32];
    const char *keys[N_TEXTS];
    for (int i = 0; i < N_TEXTS; i++) {
        snprintf(kb[i], sizeof kb[i], "%s%d", prefix, i);
        keys[i] = kb[i];
    }
    clasp_index_spec spec;
    cr_assert_eq(clasp_index_spec_parse("flat", &spec), CLASP_OK);
    clasp_index_origin o = {hash, "text", "fp32"};
    cr_assert_eq(clasp_index_build(idx, &spec, &o, x, N_TEXTS, D, keys), CLASP_OK, "%s",
                 clasp_last_error());
}

typedef struct world {
    char dir[FX_PATH], model[FX_PATH], idx[FX_PATH];
    float *x;
    int D;
    uint64_t hash;
    clasp_serve *s;
    int port;
} world;

static void world_(world *w, const char *name, clasp_serve_config c) {
    fx_scratch(name, w->dir, w->model, "export", w->idx, "idx", NULL);
    export_(w->model);
    w->x = embed_direct_(w->model, &w->D, &w->hash);
    build_(w->idx, w->x, w->D, w->hash, "k");
    c.model = w->model;
    c.index = w->idx;
    c.addr = "127.0.0.1:0";
    cr_assert_eq(clasp_serve_start(&c, &w->s), CLASP_OK, "%s", clasp_last_error());
    w->port = clasp_serve_port(w->s);
}

static void world_end_(world *w) {
    clasp_serve_stop(w->s);
    free(w->x);
}

static cJSON *json_ok_(reply r, int status) {
    cr_assert_eq(r.status, status, "status %d, body %s", r.status, r.body);
    cJSON *j = cJSON_Parse(r.body);
    cr_assert(j, "not JSON: %s", r.body);
    free(r.body);
    return j;
}

/* ---- the routes ---- */

Test(serve, embed_search_healthz_metrics) {
    world w;
    world_(&w, "serve-routes", clasp_serve_default_config());
    /* /embed gives what the embedder gives */
    cJSON *j = json_ok_(
        post_(w.port, "/embed", "application/json", "{\"texts\":[\"a sandal\",\"a bag\"]}"), 200);
    cJSON *e = cJSON_GetObjectItem(j, "embeddings");
    cr_assert_eq(cJSON_GetArraySize(e), 2);
    for (int r = 0; r < 2; r++) {
        const float *want = w.x + (size_t)(r == 0 ? 1 : 4) * (size_t)w.D;
        cJSON *row = cJSON_GetArrayItem(e, r);
        cr_assert_eq(cJSON_GetArraySize(row), w.D);
        for (int i = 0; i < w.D; i++)
            cr_assert_float_eq(cJSON_GetArrayItem(row, i)->valuedouble, (double)want[i], 1e-5,
                               "row %d [%d]", r, i);
    }
    char hex[17];
    clasp_hash_hex(w.hash, hex);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "model_hash")->valuestring, hex);
    cJSON_Delete(j);
    /* /search by text: each text finds itself first */
    for (int t = 0; t < N_TEXTS; t++) {
        char body[256], key[16];
        snprintf(body, sizeof body, "{\"text\":\"%s\",\"k\":3}", texts_[t]);
        j = json_ok_(post_(w.port, "/search", "application/json", body), 200);
        cJSON *keys = cJSON_GetObjectItem(j, "keys");
        cr_assert_eq(cJSON_GetArraySize(keys), 3);
        snprintf(key, sizeof key, "k%d", t);
        cr_assert_str_eq(cJSON_GetArrayItem(keys, 0)->valuestring, key);
        cr_assert_float_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "scores"), 0)->valuedouble,
                           1.0, 1e-4);
        cr_assert_str_eq(cJSON_GetObjectItem(j, "model_hash")->valuestring, hex);
        cr_assert(cJSON_IsString(cJSON_GetObjectItem(j, "index_version")));
        cJSON_Delete(j);
    }
    /* by vector, with ?k= */
    size_t cap = (size_t)w.D * 24 + 64, at = 0;
    char *body = malloc(cap);
    at += (size_t)snprintf(body, cap, "{\"vector\":[");
    for (int i = 0; i < w.D; i++)
        at += (size_t)snprintf(body + at, cap - at, "%s%.9g", i ? "," : "",
                               (double)w.x[(size_t)2 * (size_t)w.D + (size_t)i]);
    snprintf(body + at, cap - at, "]}");
    j = json_ok_(post_(w.port, "/search?k=2", "application/json", body), 200);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "keys")), 2);
    cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "keys"), 0)->valuestring, "k2");
    cJSON_Delete(j);
    free(body);
    /* an image body */
    uint8_t *px = fx_random_pixels(28, 28, 1, 3);
    size_t n;
    uint8_t *png = fx_png(px, 28, 28, 1, &n);
    reply r = http_(w.port, "POST", "/embed", "image/png", png, n, NULL);
    j = json_ok_(r, 200);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "embeddings"), 0)),
                 w.D);
    cJSON_Delete(j);
    /* a truncated image is 400 naming the problem */
    r = http_(w.port, "POST", "/search", "image/png", png, n / 2, NULL);
    cr_assert_eq(r.status, 400, "%d %s", r.status, r.body);
    cr_assert(strstr(r.body, "error"), "%s", r.body);
    free(r.body);
    free(png);
    free(px);
    /* healthz */
    j = json_ok_(http_(w.port, "GET", "/healthz", NULL, "", 0, NULL), 200);
    cr_assert_eq(cJSON_GetObjectItem(j, "index_size")->valuedouble, N_TEXTS);
    cJSON_Delete(j);
    /* metrics: counts by route and status, checked by promtool */
    r = http_(w.port, "GET", "/metrics", NULL, "", 0, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "clasp_serve_requests_total{route=\"/search\",status=\"200\"} 7"),
              "%s", r.body);
    cr_assert(strstr(r.body, "clasp_serve_requests_total{route=\"/search\",status=\"400\"} 1"),
              "%s", r.body);
    cr_assert(strstr(r.body, "clasp_serve_embed_batch_size_count 2"), "%s", r.body);
    cr_assert(strstr(r.body, "clasp_serve_index_size 6"), "%s", r.body);
    char path[FX_PATH], cmd[2 * FX_PATH];
    fx_scratch("serve-routes", w.dir, path, "metrics.txt", NULL);
    cr_assert(fx_write_str(path, r.body));
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s'", path);
    cr_assert_eq(fx_system(cmd), 0, "promtool refused:\n%s", r.body);
    free(r.body);
    world_end_(&w);
}

/* Each bad request: its status, and the message naming the problem. */
static void bad_(int port, const char *path, const char *ctype, const char *body, int status,
                 const char *says) {
    reply r = post_(port, path, ctype, body);
    cr_assert_eq(r.status, status, "%s %s: %d %s", path, body, r.status, r.body);
    cr_assert(r.body && strstr(r.body, says), "%s %s: %s lacks %s", path, body, r.body, says);
    free(r.body);
}

Test(serve, bad_requests_are_4xx_and_the_server_answers) {
    world w;
    clasp_serve_config c = clasp_serve_default_config();
    c.max_body = 4096;
    world_(&w, "serve-bad", c);
    bad_(w.port, "/embed", "application/json", "{\"texts\":[\"a\"", 400, "invalid JSON");
    bad_(w.port, "/embed", "application/json", "{\"texts\":[]}", 400, "texts");
    bad_(w.port, "/embed", "application/json", "{\"texts\":[3]}", 400, "texts[0]");
    bad_(w.port, "/embed", "text/plain", "hello", 415, "Content-Type");
    bad_(w.port, "/search", "application/json", "{\"vector\":[1e999]}", 400, "dimension");
    bad_(w.port, "/search", "application/json", "{\"text\":\"a\",\"vector\":[1]}", 400,
         "exactly one");
    bad_(w.port, "/search?k=0", "application/json", "{\"text\":\"a\"}", 400, "?k=");
    bad_(w.port, "/search", "application/json", "{\"text\":\"a\",\"k\":1.5}", 400,
         "must be an integer");
    /* a non-finite entry of a vector of the right dimension */
    char *body = malloc((size_t)w.D * 8 + 32);
    size_t at = (size_t)sprintf(body, "{\"vector\":[1e999");
    for (int i = 1; i < w.D; i++) at += (size_t)sprintf(body + at, ",0");
    sprintf(body + at, "]}");
    bad_(w.port, "/search", "application/json", body, 400, "vector[0] is not finite");
    free(body);
    /* above max_body: 413 from the HTTP layer */
    char *big = malloc(8192);
    memset(big, ' ', 8191);
    big[8191] = '\0';
    reply r = post_(w.port, "/embed", "application/json", big);
    cr_assert_eq(r.status, 413, "%d", r.status);
    free(r.body);
    free(big);
    r = http_(w.port, "GET", "/healthz", NULL, "", 0, NULL);
    cr_assert_eq(r.status, 200);
    free(r.body);
    world_end_(&w);
}

/* ---- the queue and the token ---- */

static sem_t hold_entered_, hold_release_;
static void hold_(void *user) {
    (void)user;
    sem_post(&hold_entered_);
    sem_wait(&hold_release_);
}

static void *embed_thread_(void *arg) {
    int port = *(int *)arg;
    reply r = post_(port, "/embed", "application/json", "{\"texts\":[\"a bag\"]}");
    free(r.body);
    return (void *)(intptr_t)r.status;
}

/* A server with one worker, held busy by an /embed request of thread *t (hold_). */
static void busy_world_(world *w, const char *name, int queue, int timeout_ms, pthread_t *t) {
    sem_init(&hold_entered_, 0, 0);
    sem_init(&hold_release_, 0, 0);
    clasp_serve_config c = clasp_serve_default_config();
    c.workers = 1;
    c.queue = queue;
    if (timeout_ms > 0) c.timeout_ms = timeout_ms;
    c.job_hook = hold_;
    world_(w, name, c);
    pthread_create(t, NULL, embed_thread_, &w->port);
    sem_wait(&hold_entered_); /* the one worker is busy */
}

Test(serve, full_queue_is_503) {
    world w;
    pthread_t t;
    busy_world_(&w, "serve-queue", 0, 0, &t);
    reply r = post_(w.port, "/embed", "application/json", "{\"texts\":[\"a bag\"]}");
    cr_assert_eq(r.status, 503, "%d %s", r.status, r.body);
    cr_assert(strstr(r.body, "queue is full"), "%s", r.body);
    free(r.body);
    r = http_(w.port, "GET", "/healthz", NULL, "", 0, NULL); /* not stuck behind the worker */
    cr_assert_eq(r.status, 200);
    free(r.body);
    sem_post(&hold_release_);
    void *st;
    pthread_join(t, &st);
    cr_assert_eq((int)(intptr_t)st, 200);
    world_end_(&w);
}

Test(serve, no_worker_within_the_timeout_is_503) {
    world w;
    pthread_t t;
    busy_world_(&w, "serve-timeout", 1, 200, &t);
    reply r = post_(w.port, "/embed", "application/json", "{\"texts\":[\"a bag\"]}");
    cr_assert_eq(r.status, 503, "%d %s", r.status, r.body);
    cr_assert(strstr(r.body, "within the timeout"), "%s", r.body);
    free(r.body);
    sem_post(&hold_release_);
    void *st;
    pthread_join(t, &st);
    cr_assert_eq((int)(intptr_t)st, 200);
    world_end_(&w);
}

Test(serve, bearer_token) {
    world w;
    clasp_serve_config c = clasp_serve_default_config();
    c.token = "s3cret";
    world_(&w, "serve-token", c);
    reply r = http_(w.port, "GET", "/healthz", NULL, "", 0, NULL);
    cr_assert_eq(r.status, 401);
    free(r.body);
    r = http_(w.port, "GET", "/metrics", NULL, "", 0, "Authorization: Bearer s3cres");
    cr_assert_eq(r.status, 401);
    free(r.body);
    r = http_(w.port, "GET", "/healthz", NULL, "", 0, "Authorization: Bearer s3cret");
    cr_assert_eq(r.status, 200);
    free(r.body);
    world_end_(&w);
    /* a non-loopback address needs allow_remote and a token */
    c = clasp_serve_default_config();
    c.model = w.model;
    c.addr = "0.0.0.0:0";
    clasp_serve *s;
    cr_assert_eq(clasp_serve_start(&c, &s), CLASP_ERR_ARG);
    c.allow_remote = true;
    cr_assert_eq(clasp_serve_start(&c, &s), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "token"), "%s", clasp_last_error());
}

/* ---- reload under load ---- */

typedef struct load {
    int port;
    volatile int stop;
    int ok, failed, saw_new;
} load;

static void *load_thread_(void *arg) {
    load *l = arg;
    while (!l->stop) {
        reply r = post_(l->port, "/search", "application/json", "{\"text\":\"a bag\",\"k\":1}");
        if (r.status == 200) {
            l->ok++;
            l->saw_new |= strstr(r.body, "\"n4\"") != NULL;
        } else {
            l->failed++;
        }
        free(r.body);
    }
    return NULL;
}

Test(serve, reload_under_load_fails_no_request) {
    world w;
    clasp_serve_config c = clasp_serve_default_config();
    c.workers = 2;
    world_(&w, "serve-reload", c);
    load l[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        l[i] = (load){.port = w.port};
        pthread_create(&t[i], NULL, load_thread_, &l[i]);
    }
    double gen = 0;
    for (int v = 0; v < 6; v++) {
        build_(w.idx, w.x, w.D, w.hash, v % 2 ? "k" : "n");
        cJSON *j = json_ok_(post_(w.port, "/admin/reload", "application/json", "{}"), 200);
        double g = cJSON_GetObjectItem(j, "index_generation")->valuedouble;
        cr_assert_gt(g, gen, "the reload did not move to the new version");
        gen = g;
        cJSON_Delete(j);
        usleep(50000);
    }
    for (int i = 0; i < 3; i++) {
        l[i].stop = 1;
        pthread_join(t[i], NULL);
    }
    int ok = 0, failed = 0, saw_new = 0;
    for (int i = 0; i < 3; i++) {
        ok += l[i].ok;
        failed += l[i].failed;
        saw_new |= l[i].saw_new;
    }
    cr_assert_eq(failed, 0, "%d failed requests of %d", failed, ok + failed);
    cr_assert_gt(ok, 0);
    cr_assert(saw_new, "no request answered from a reloaded index");
    /* an index of another model is refused, the old one kept */
    build_(w.idx, w.x, w.D, w.hash + 1, "z");
    reply r = post_(w.port, "/admin/reload", "application/json", "{}");
    cr_assert_eq(r.status, 409, "%d %s", r.status, r.body);
    free(r.body);
    cJSON *j = json_ok_(post_(w.port, "/search", "application/json", "{\"text\":\"a bag\"}"), 200);
    cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "keys"), 0)->valuestring, "k4");
    cJSON_Delete(j);
    world_end_(&w);
}

/* ---- the command ---- */

/* The port `clasp serve` prints on stderr (log), waiting up to 20 s; 0 if none. */
static int port_of_(const char *log) {
    for (int i = 0; i < 200; i++) {
        char *t = fx_read_text(log);
        const char *p = t ? strstr(t, "listening on port ") : NULL;
        int port = p ? atoi(p + strlen("listening on port ")) : 0;
        free(t);
        if (port > 0) return port;
        usleep(100000);
    }
    return 0;
}

Test(serve_cli, sighup_reloads_sigterm_stops) {
    char dir[FX_PATH], model[FX_PATH], idx[FX_PATH], log[FX_PATH];
    fx_scratch("serve-cli", dir, model, "export", idx, "idx", log, "serve.log", NULL);
    export_(model);
    int D;
    uint64_t hash;
    float *x = embed_direct_(model, &D, &hash);
    build_(idx, x, D, hash, "k");
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion ends the test: the server too */
        FILE *f = freopen(log, "w", stderr);
        (void)f;
        execl(clasp_test_bin(), "clasp", "serve", "--model", model, "--index", idx, "--addr",
              "127.0.0.1:0", "--workers", "1", (char *)NULL);
        _exit(127);
    }
    int port = port_of_(log);
    cr_assert_gt(port, 0, "no port in %s", log);
    cJSON *j = json_ok_(http_(port, "GET", "/healthz", NULL, "", 0, NULL), 200);
    double g1 = cJSON_GetObjectItem(j, "index_generation")->valuedouble;
    cJSON_Delete(j);
    build_(idx, x, D, hash, "n");
    kill(pid, SIGHUP);
    double g2 = g1;
    for (int i = 0; i < 100 && g2 == g1; i++) {
        usleep(50000);
        j = json_ok_(http_(port, "GET", "/healthz", NULL, "", 0, NULL), 200);
        g2 = cJSON_GetObjectItem(j, "index_generation")->valuedouble;
        cJSON_Delete(j);
    }
    cr_assert_gt(g2, g1, "SIGHUP did not reload");
    j = json_ok_(post_(port, "/search", "application/json", "{\"text\":\"a bag\"}"), 200);
    cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "keys"), 0)->valuestring, "n4");
    cJSON_Delete(j);
    kill(pid, SIGTERM);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    free(x);
    /* refusals: --allow-remote without --token, a non-loopback address without it */
    char *out = NULL;
    cr_assert_eq(fx_clasp(&out, "serve --model %s --addr 0.0.0.0:0 --allow-remote 2>&1", model), 2);
    cr_assert(strstr(out, "--token"), "%s", out);
    free(out);
    cr_assert_eq(fx_clasp(&out, "serve --model %s --addr 0.0.0.0:0 2>&1", model), 1);
    cr_assert(strstr(out, "loopback"), "%s", out);
    free(out);
}

/* ---- the parsers without sockets ---- */

Test(serve_request, parsers) {
    char **t;
    int n;
    const char *ok = "{\"texts\":[\"x\",\"yz\"]}";
    cr_assert_eq(clasp_serve_parse_texts(ok, strlen(ok), &t, &n), CLASP_OK);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(t[1], "yz");
    free(t);
    cr_assert_eq(clasp_serve_parse_texts(ok, 5, &t, &n), CLASP_ERR_FORMAT); /* truncated */
    clasp_serve_query q;
    const char *v = "{\"vector\":[0,0]}";
    cr_assert_eq(clasp_serve_parse_search(v, strlen(v), 2, 10, &q), CLASP_ERR_NUMERIC);
    cr_assert(strstr(clasp_last_error(), "all zero"));
    v = "{\"vector\":[0.5,-2],\"k\":4}";
    cr_assert_eq(clasp_serve_parse_search(v, strlen(v), 2, 10, &q), CLASP_OK);
    cr_assert_eq(q.k, 4);
    cr_assert_float_eq(q.vector[1], -2.0f, 0);
    clasp_serve_query_free(&q);
    cr_assert_eq(clasp_serve_parse_search(v, strlen(v), 3, 10, &q), CLASP_ERR_ARG);
    cr_assert_eq(clasp_serve_body_kind("application/json; charset=utf-8"), CLASP_SERVE_BODY_JSON);
    cr_assert_eq(clasp_serve_body_kind("application/jsonx"), CLASP_SERVE_BODY_OTHER);
    cr_assert_eq(clasp_serve_body_kind("image/png"), CLASP_SERVE_BODY_IMAGE);
    cr_assert_eq(clasp_serve_body_kind(NULL), CLASP_SERVE_BODY_OTHER);
    int k;
    cr_assert_eq(clasp_serve_parse_k("12", 10, &k), CLASP_OK);
    cr_assert_eq(k, 12);
    cr_assert_eq(clasp_serve_parse_k("12x", 10, &k), CLASP_ERR_ARG);
    cr_assert_eq(clasp_serve_parse_k("-1", 10, &k), CLASP_ERR_ARG);
    cr_assert(clasp_serve_bearer_ok("Bearer abc", "abc"));
    cr_assert(!clasp_serve_bearer_ok("Bearer abcd", "abc"));
    cr_assert(!clasp_serve_bearer_ok("Bearer ab", "abc"));
    cr_assert(!clasp_serve_bearer_ok("abc", "abc"));
    cr_assert(!clasp_serve_bearer_ok(NULL, "abc"));
}
