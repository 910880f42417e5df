/* serve.c: see serve.h. */
#include "serve/serve.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/hash.h"
#include "encoders/model.h"
#include "export/export.h"
#include "index/index.h"
#include "net/http.h"
#include "net/prom.h"
#include "serve/request.h"

enum { R_EMBED, R_SEARCH, R_HEALTHZ, R_METRICS, R_RELOAD, R_N };
static const char *const route_name[R_N] = {"/embed", "/search", "/healthz", "/metrics",
                                            "/admin/reload"};
static const int codes[] = {200, 400, 401, 404, 409, 415, 500, 503};
#define N_CODES ((int)(sizeof codes / sizeof codes[0]))
static const double lat_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1,   0.25,   0.5,   1,    2.5,   5};
static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};

typedef struct ixref {
    clasp_index *ix;
    int refs; /* the published one holds one; each request using it one more */
} ixref;

typedef struct route_ctx {
    clasp_serve *s;
    int route;
} route_ctx;

struct clasp_serve {
    clasp_serve_config c;
    char *model, *index, *token;
    clasp_http_server *http;
    clasp_embedder *ems; /* (workers) */
    bool *busy;          /* (workers) */
    int admitted;        /* requests holding or waiting for a worker */
    pthread_mutex_t mu;  /* admitted, busy, cur, metrics */
    pthread_cond_t cv;
    pthread_mutex_t reload_mu;
    ixref *cur;
    route_ctx ctx[R_N];
    uint64_t counts[R_N][N_CODES + 1];
    clasp_prom_histogram lat[R_N], batch;
    uint64_t reloads, reload_failures;
};

clasp_serve_config clasp_serve_default_config(void) {
    return (clasp_serve_config){.addr = "127.0.0.1:8080",
                                .workers = 2,
                                .queue = 16,
                                .max_body = (size_t)8 << 20,
                                .timeout_ms = 10000};
}

static double now_(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- responses ---- */

static void json_(clasp_http_response *res, int status, cJSON *j) {
    char *txt = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!txt) {
        clasp_http_respond_text(res, 500, "application/json", "{\"error\":\"out of memory\"}");
        return;
    }
    clasp_http_respond_take(res, status, "application/json", txt, strlen(txt));
}

static void error_(clasp_http_response *res, int status, const char *msg) {
    cJSON *j = cJSON_CreateObject();
    if (j) cJSON_AddStringToObject(j, "error", msg);
    json_(res, status, j);
}

/* 400 for what the request got wrong, 500 for the server's own failures. */
static void status_error_(clasp_http_response *res, clasp_status st) {
    bool client = st == CLASP_ERR_ARG || st == CLASP_ERR_FORMAT || st == CLASP_ERR_NUMERIC ||
                  st == CLASP_ERR_UNSUPPORTED || st == CLASP_ERR_OVERFLOW;
    error_(res, client ? 400 : 500, clasp_last_error());
}

static void add_hex_(cJSON *j, const char *name, uint64_t h) {
    char hex[17];
    clasp_hash_hex(h, hex);
    cJSON_AddStringToObject(j, name, hex);
}

/* ---- the index, reference counted ---- */

static ixref *ix_get_(clasp_serve *s) {
    pthread_mutex_lock(&s->mu);
    ixref *r = s->cur;
    if (r) r->refs++;
    pthread_mutex_unlock(&s->mu);
    return r;
}

static void ix_put_(clasp_serve *s, ixref *r) {
    if (!r) return;
    pthread_mutex_lock(&s->mu);
    bool last = --r->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last) {
        clasp_index_close(r->ix);
        free(r);
    }
}

static clasp_status ix_open_(clasp_serve *s, ixref **out) {
    clasp_index *ix;
    CLASP_TRY(clasp_index_open(s->index, &ix));
    clasp_status st = clasp_index_check_model(ix, s->ems[0].model_hash);
    const clasp_index_meta *m = clasp_index_get_meta(ix);
    if (st == CLASP_OK && m->dim != s->ems[0].D)
        st = clasp_set_error(CLASP_ERR_FORMAT, "%s: vectors of dim %d, the model embeds dim %d",
                             s->index, m->dim, s->ems[0].D);
    ixref *r = st == CLASP_OK ? malloc(sizeof *r) : NULL;
    if (st == CLASP_OK && !r) st = clasp_set_error(CLASP_ERR_NOMEM, "index reference");
    if (st != CLASP_OK) {
        clasp_index_close(ix);
        return st;
    }
    *r = (ixref){.ix = ix, .refs = 1};
    *out = r;
    return CLASP_OK;
}

clasp_status clasp_serve_reload(clasp_serve *s) {
    if (!s->index) return clasp_set_error(CLASP_ERR_STATE, "serve: no --index to reload");
    pthread_mutex_lock(&s->reload_mu);
    ixref *r = NULL;
    clasp_status st = ix_open_(s, &r);
    pthread_mutex_lock(&s->mu);
    ixref *old = NULL;
    if (st == CLASP_OK) {
        old = s->cur;
        s->cur = r;
        s->reloads++;
    } else {
        s->reload_failures++;
    }
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&s->reload_mu);
    ix_put_(s, old); /* closed now, or when its last request ends */
    return st;
}

/* ---- workers ---- */

/* A free worker's number, waiting up to timeout_ms; -1 with *why set when refused. */
static int worker_get_(clasp_serve *s, const char **why) {
    pthread_mutex_lock(&s->mu);
    if (s->admitted >= s->c.workers + s->c.queue) {
        pthread_mutex_unlock(&s->mu);
        *why = "server busy: the request queue is full, retry later";
        return -1;
    }
    s->admitted++;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    long long ns = (long long)dl.tv_nsec + (long long)s->c.timeout_ms * 1000000LL;
    dl.tv_sec += (time_t)(ns / 1000000000LL);
    dl.tv_nsec = (long)(ns % 1000000000LL);
    for (;;) {
        for (int i = 0; i < s->c.workers; i++)
            if (!s->busy[i]) {
                s->busy[i] = true;
                pthread_mutex_unlock(&s->mu);
                return i;
            }
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT) break;
    }
    s->admitted--;
    pthread_mutex_unlock(&s->mu);
    *why = "server busy: no worker free within the timeout, retry later";
    return -1;
}

static void worker_put_(clasp_serve *s, int w) {
    pthread_mutex_lock(&s->mu);
    s->busy[w] = false;
    s->admitted--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- routes ---- */

static cJSON *rows_json_(const float *x, int n, int d) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        cJSON *row = cJSON_CreateFloatArray(x + (size_t)i * d, d);
        if (!row || !cJSON_AddItemToArray(a, row)) {
            cJSON_Delete(row);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

/* Embeds a raw image/audio body into out (1, D). */
static clasp_status embed_bytes_(clasp_embedder *em, clasp_serve_body kind,
                                 const clasp_http_request *req, float *out) {
    const void *data = req->body;
    size_t n = req->body_len;
    const char *name = "body";
    clasp_tower t = kind == CLASP_SERVE_BODY_IMAGE ? CLASP_TOWER_IMAGE : CLASP_TOWER_AUDIO;
    if (!clasp_embedder_has(em, t))
        return clasp_set_error(CLASP_ERR_UNSUPPORTED, "the model has no %s tower",
                               t == CLASP_TOWER_IMAGE ? "image" : "audio");
    if (n == 0) return clasp_set_error(CLASP_ERR_FORMAT, "body: empty");
    return t == CLASP_TOWER_IMAGE ? clasp_embedder_images(em, &data, &n, &name, 1, out)
                                  : clasp_embedder_audio(em, &data, &n, &name, 1, out);
}

static void embed_(clasp_serve *s, clasp_embedder *em, const clasp_http_request *req,
                   clasp_http_response *res) {
    clasp_serve_body kind = clasp_serve_body_kind(req->content_type);
    char **texts = NULL;
    int n = 1;
    clasp_status st = CLASP_OK;
    if (kind == CLASP_SERVE_BODY_JSON)
        st = clasp_serve_parse_texts(req->body, req->body_len, &texts, &n);
    float *out = st == CLASP_OK ? malloc((size_t)n * (size_t)em->D * sizeof *out) : NULL;
    if (st == CLASP_OK && !out) st = clasp_set_error(CLASP_ERR_NOMEM, "embeddings of %d", n);
    if (st == CLASP_OK)
        st = texts ? clasp_embedder_texts(em, (const char *const *)texts, n, out)
                   : embed_bytes_(em, kind, req, out);
    free(texts);
    if (st != CLASP_OK) {
        free(out);
        status_error_(res, st);
        return;
    }
    pthread_mutex_lock(&s->mu);
    clasp_prom_histogram_observe(&s->batch, n);
    pthread_mutex_unlock(&s->mu);
    cJSON *j = cJSON_CreateObject();
    if (j) {
        add_hex_(j, "model_hash", em->model_hash);
        cJSON_AddNumberToObject(j, "dim", em->D);
        cJSON *rows = rows_json_(out, n, em->D);
        if (!rows || !cJSON_AddItemToObject(j, "embeddings", rows)) {
            cJSON_Delete(rows);
            cJSON_Delete(j);
            j = NULL;
        }
    }
    free(out);
    json_(res, 200, j);
}

static cJSON *results_json_(const clasp_index *ix, const int64_t *ids, const float *sc, int k) {
    const clasp_index_meta *m = clasp_index_get_meta(ix);
    cJSON *j = cJSON_CreateObject(), *keys = cJSON_CreateArray(), *scores = cJSON_CreateArray();
    if (!j || !cJSON_AddItemToObject(j, "keys", keys) ||
        !cJSON_AddItemToObject(j, "scores", scores)) {
        cJSON_Delete(j);
        cJSON_Delete(keys);
        cJSON_Delete(scores);
        return NULL;
    }
    for (int i = 0; i < k && ids[i] >= 0; i++) {
        const char *key = clasp_index_key(ix, ids[i]);
        cJSON_AddItemToArray(keys, cJSON_CreateString(key ? key : ""));
        cJSON_AddItemToArray(scores, cJSON_CreateNumber((double)sc[i]));
    }
    add_hex_(j, "model_hash", m->model_hash);
    add_hex_(j, "index_version", m->index_version);
    cJSON_AddNumberToObject(j, "index_generation", (double)m->generation);
    return j;
}

/* The query vector of a /search request into q (D). */
static clasp_status query_(clasp_embedder *em, const clasp_http_request *req, int *k, float *q) {
    clasp_serve_body kind = clasp_serve_body_kind(req->content_type);
    CLASP_TRY(clasp_serve_parse_k(clasp_http_query(req, "k"), 10, k));
    if (kind != CLASP_SERVE_BODY_JSON) return embed_bytes_(em, kind, req, q);
    clasp_serve_query sq;
    CLASP_TRY(clasp_serve_parse_search(req->body, req->body_len, em->D, *k, &sq));
    *k = sq.k;
    clasp_status st = CLASP_OK;
    if (sq.vector)
        memcpy(q, sq.vector, (size_t)em->D * sizeof *q);
    else
        st = clasp_embedder_texts(em, (const char *const *)&sq.text, 1, q);
    clasp_serve_query_free(&sq);
    return st;
}

static void search_(clasp_serve *s, clasp_embedder *em, const clasp_http_request *req,
                    clasp_http_response *res) {
    ixref *r = ix_get_(s);
    if (!r) {
        error_(res, 404, "no index: start the server with --index IDX");
        return;
    }
    int k = 10;
    float *q = malloc((size_t)em->D * sizeof *q);
    int64_t *ids = malloc(CLASP_SERVE_MAX_K * sizeof *ids);
    float *sc = malloc(CLASP_SERVE_MAX_K * sizeof *sc);
    clasp_status st = q && ids && sc ? query_(em, req, &k, q)
                                     : clasp_set_error(CLASP_ERR_NOMEM, "search buffers");
    if (st == CLASP_OK) {
        clasp_index_set_threads(1);
        st = clasp_index_search(r->ix, q, 1, k, 0, ids, sc);
    }
    if (st == CLASP_OK)
        json_(res, 200, results_json_(r->ix, ids, sc, k));
    else
        status_error_(res, st);
    free(q);
    free(ids);
    free(sc);
    ix_put_(s, r);
}

static void metrics_(clasp_serve *s, clasp_http_response *res);

static void healthz_(clasp_serve *s, clasp_http_response *res) {
    cJSON *j = cJSON_CreateObject();
    if (j) {
        cJSON_AddStringToObject(j, "status", "ok");
        add_hex_(j, "model_hash", s->ems[0].model_hash);
        ixref *r = ix_get_(s);
        if (r) {
            const clasp_index_meta *m = clasp_index_get_meta(r->ix);
            add_hex_(j, "index_version", m->index_version);
            cJSON_AddNumberToObject(j, "index_generation", (double)m->generation);
            cJSON_AddNumberToObject(j, "index_size", (double)m->count);
        }
        ix_put_(s, r);
    }
    json_(res, 200, j);
}

static void reload_(clasp_serve *s, clasp_http_response *res) {
    if (!s->index) {
        error_(res, 404, "no index: start the server with --index IDX");
        return;
    }
    if (clasp_serve_reload(s) != CLASP_OK) {
        error_(res, 409, clasp_last_error());
        return;
    }
    healthz_(s, res);
}

/* Runs a route needing a worker (embed, search) with one. */
static void with_worker_(clasp_serve *s, int route, const clasp_http_request *req,
                         clasp_http_response *res) {
    clasp_serve_body kind = clasp_serve_body_kind(req->content_type);
    if (kind == CLASP_SERVE_BODY_OTHER) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "Content-Type %.64s: application/json, image/... or audio/... expected",
                 req->content_type ? req->content_type : "(none)");
        error_(res, 415, msg);
        return;
    }
    const char *why;
    int w = worker_get_(s, &why);
    if (w < 0) {
        error_(res, 503, why);
        return;
    }
    if (s->c.job_hook) s->c.job_hook(s->c.hook_user);
    if (route == R_EMBED)
        embed_(s, &s->ems[w], req, res);
    else
        search_(s, &s->ems[w], req, res);
    worker_put_(s, w);
}

static void count_(clasp_serve *s, int route, int status, double seconds) {
    int c = 0;
    while (c < N_CODES && codes[c] != status) c++;
    pthread_mutex_lock(&s->mu);
    s->counts[route][c]++;
    clasp_prom_histogram_observe(&s->lat[route], seconds);
    pthread_mutex_unlock(&s->mu);
}

static void handle_(void *user, const clasp_http_request *req, clasp_http_response *res) {
    const route_ctx *rc = user;
    clasp_serve *s = rc->s;
    double t0 = now_();
    if (s->token && !clasp_serve_bearer_ok(clasp_http_header(req, "Authorization"), s->token))
        error_(res, 401, "missing or wrong bearer token (Authorization: Bearer TOKEN)");
    else if (rc->route == R_EMBED || rc->route == R_SEARCH)
        with_worker_(s, rc->route, req, res);
    else if (rc->route == R_HEALTHZ)
        healthz_(s, res);
    else if (rc->route == R_METRICS)
        metrics_(s, res);
    else
        reload_(s, res);
    count_(s, rc->route, res->status ? res->status : 200, now_() - t0);
}

/* ---- /metrics ---- */

static void metrics_index_(clasp_serve *s, clasp_prom_buf *b) {
    ixref *r = ix_get_(s);
    if (!r) return;
    const clasp_index_meta *m = clasp_index_get_meta(r->ix);
    char hex[17];
    clasp_hash_hex(m->index_version, hex);
    clasp_prom_family(b, "clasp_serve_index_info", CLASP_PROM_GAUGE,
                      "The index served (1), labelled with its version and type");
    clasp_prom_label l[] = {{"version", hex}, {"type", m->type}};
    clasp_prom_sample(b, "clasp_serve_index_info", l, 2, 1);
    clasp_prom_metric(b, "clasp_serve_index_generation", CLASP_PROM_GAUGE,
                      "Generation N of the index folder's version vN served",
                      (double)m->generation);
    clasp_prom_metric(b, "clasp_serve_index_size", CLASP_PROM_GAUGE, "Vectors in the index served",
                      (double)m->count);
    ix_put_(s, r);
}

static void metrics_(clasp_serve *s, clasp_http_response *res) {
    clasp_prom_buf b;
    clasp_prom_init(&b);
    pthread_mutex_lock(&s->mu);
    clasp_prom_family(&b, "clasp_serve_requests_total", CLASP_PROM_COUNTER,
                      "Requests answered by route and HTTP status");
    for (int r = 0; r < R_N; r++)
        for (int c = 0; c <= N_CODES; c++) {
            if (!s->counts[r][c]) continue;
            char code[16];
            if (c < N_CODES)
                snprintf(code, sizeof code, "%d", codes[c]);
            else
                snprintf(code, sizeof code, "other");
            clasp_prom_label l[] = {{"route", route_name[r]}, {"status", code}};
            clasp_prom_sample(&b, "clasp_serve_requests_total", l, 2, (double)s->counts[r][c]);
        }
    clasp_prom_family(&b, "clasp_serve_request_duration_seconds", CLASP_PROM_HISTOGRAM,
                      "Request handling time by route (waiting for a worker included)");
    for (int r = 0; r < R_N; r++) {
        clasp_prom_label l[] = {{"route", route_name[r]}};
        clasp_prom_write_histogram(&b, "clasp_serve_request_duration_seconds", l, 1, &s->lat[r]);
    }
    clasp_prom_family(&b, "clasp_serve_embed_batch_size", CLASP_PROM_HISTOGRAM,
                      "Inputs embedded per /embed request");
    clasp_prom_write_histogram(&b, "clasp_serve_embed_batch_size", NULL, 0, &s->batch);
    clasp_prom_metric(&b, "clasp_serve_queue_requests", CLASP_PROM_GAUGE,
                      "Requests holding or waiting for a worker", s->admitted);
    clasp_prom_metric(&b, "clasp_serve_workers", CLASP_PROM_GAUGE, "Workers", s->c.workers);
    clasp_prom_metric(&b, "clasp_serve_index_reloads_total", CLASP_PROM_COUNTER,
                      "Index versions swapped in", (double)s->reloads);
    clasp_prom_metric(&b, "clasp_serve_index_reload_failures_total", CLASP_PROM_COUNTER,
                      "Reloads refused (the old index kept)", (double)s->reload_failures);
    pthread_mutex_unlock(&s->mu);
    metrics_index_(s, &b);
    if (clasp_prom_finish(&b) != CLASP_OK) {
        clasp_prom_free(&b);
        error_(res, 500, clasp_last_error());
        return;
    }
    clasp_http_respond_take(res, 200, CLASP_PROM_CONTENT_TYPE, b.data, b.len);
}

/* ---- start / stop ---- */

static clasp_status check_config_(const clasp_serve_config *c) {
    if (!c->model) return clasp_set_error(CLASP_ERR_ARG, "serve: no model");
    if (c->workers < 1 || c->workers > 64)
        return clasp_set_error(CLASP_ERR_ARG, "serve: %d workers (1 to 64)", c->workers);
    if (c->queue < 0 || c->queue > 1024)
        return clasp_set_error(CLASP_ERR_ARG, "serve: queue of %d (0 to 1024)", c->queue);
    if (c->timeout_ms < 1)
        return clasp_set_error(CLASP_ERR_ARG, "serve: timeout %d ms", c->timeout_ms);
    if (c->allow_remote && (!c->token || !c->token[0]))
        return clasp_set_error(CLASP_ERR_ARG,
                               "serve: a non-loopback address needs a bearer token (--token FILE)");
    return CLASP_OK;
}

static clasp_status open_(clasp_serve *s) {
    for (int r = 0; r < R_N; r++)
        CLASP_TRY(clasp_prom_histogram_init(&s->lat[r], lat_bounds,
                                            (int)(sizeof lat_bounds / sizeof lat_bounds[0])));
    CLASP_TRY(clasp_prom_histogram_init(&s->batch, batch_bounds,
                                        (int)(sizeof batch_bounds / sizeof batch_bounds[0])));
    for (int w = 0; w < s->c.workers; w++)
        CLASP_TRY(clasp_embedder_open_lazy(s->model, 1, 8, &s->ems[w]));
    if (s->index) CLASP_TRY(ix_open_(s, &s->cur));
    clasp_http_route routes[R_N];
    static const char *const methods[R_N] = {"POST", "POST", "GET", "GET", "POST"};
    for (int r = 0; r < R_N; r++) {
        s->ctx[r] = (route_ctx){s, r};
        routes[r] = (clasp_http_route){methods[r], route_name[r], handle_, &s->ctx[r]};
    }
    clasp_http_config hc = clasp_http_default_config();
    hc.addr = s->c.addr;
    hc.allow_remote = s->c.allow_remote;
    hc.routes = routes;
    hc.n_routes = R_N;
    hc.max_body = s->c.max_body;
    hc.threads = s->c.workers + s->c.queue + 2;
    hc.timeout_s = (unsigned)((s->c.timeout_ms + 999) / 1000);
    hc.max_connections = (unsigned)(hc.threads * 4);
    return clasp_http_start(&hc, &s->http);
}

static char *dup_(const char *p) {
    return p ? strdup(p) : NULL;
}

clasp_status clasp_serve_start(const clasp_serve_config *c, clasp_serve **out) {
    CLASP_TRY(check_config_(c));
    clasp_serve *s = calloc(1, sizeof *s);
    if (!s) return clasp_set_error(CLASP_ERR_NOMEM, "serve");
    s->c = *c;
    s->model = dup_(c->model);
    s->index = dup_(c->index);
    s->token = c->token && c->token[0] ? dup_(c->token) : NULL;
    s->c.addr = c->addr ? c->addr : "127.0.0.1:8080";
    s->ems = calloc((size_t)c->workers, sizeof *s->ems);
    s->busy = calloc((size_t)c->workers, sizeof *s->busy);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->reload_mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    clasp_status st = s->model && s->ems && s->busy && (!c->index || s->index)
                          ? open_(s)
                          : clasp_set_error(CLASP_ERR_NOMEM, "serve");
    if (st != CLASP_OK) {
        clasp_serve_stop(s);
        return st;
    }
    *out = s;
    return CLASP_OK;
}

int clasp_serve_port(const clasp_serve *s) {
    return clasp_http_port(s->http);
}

void clasp_serve_stop(clasp_serve *s) {
    if (!s) return;
    clasp_http_stop(s->http); /* no handler runs after this */
    ix_put_(s, s->cur);
    for (int w = 0; s->ems && w < s->c.workers; w++) clasp_embedder_close(&s->ems[w]);
    for (int r = 0; r < R_N; r++) clasp_prom_histogram_free(&s->lat[r]);
    clasp_prom_histogram_free(&s->batch);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->reload_mu);
    pthread_cond_destroy(&s->cv);
    free(s->ems);
    free(s->busy);
    free(s->model);
    free(s->index);
    free(s->token);
    free(s);
}
