/* cmd_drift.c: `clasp drift A B [--data SPEC]` measures how far model B's embeddings of the same
 * samples moved from model A's (eval/drift.h), per modality present in both, plus the
 * cross-modal stale-index retrieval (text queries of A searching B's images or audio);
 * `clasp drift A --window N` measures the distribution drift between consecutive windows of N
 * rows of one model. A and B are exports (or checkpoints, run folders), whose embeddings of
 * --data are computed here, or embedding sets written by `clasp embed`: one or more .npy files
 * joined by commas (one per modality), each with its sidecar (keys, modality). `--fail-if`
 * turns chosen figures into exit status 1. docs/drift.md explains every number. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/hash.h"
#include "core/json.h"
#include "eval/drift.h"
#include "eval/eval.h"
#include "eval/retrieval.h"
#include "export/export.h"

/* The option values of one invocation; the table below points into it. */
typedef struct drift_args {
    const char *a, *b, *data, *fail_if;
    int window, threads, batch, workers, precision;
    int bins;
    int64_t pairs;
    uint64_t seed;
    bool json;
} drift_args;

#define A(field) offsetof(drift_args, field)
static const clasp_arg drift_table[] = {
    CLASP_ARG_COMMAND(
        "drift",
        "A B [--data SPEC] [--json] [--fail-if 'METRIC<V,...']\n"
        "A --window N [--data SPEC] [--json] [--fail-if 'METRIC>V,...']",
        "Measures embedding drift. A and B are two exports (or checkpoints, run folders): both\n"
        "embed the samples of --data, per modality present in both; or two embedding sets\n"
        "written by `clasp embed` with the same keys: one or more .npy files joined by commas,\n"
        "one per modality, each with its sidecar OUT.json (keys, modality).\n"
        "Per modality: mean_cosine (same sample under A and B), centroid_shift and\n"
        "centroid_cosine, std_change_mean and std_change_max (per-dimension std),\n"
        "knn_overlap@10 (the two 10-NN graphs), cka (linear CKA), sim_js (JS divergence of\n"
        "the pairwise-cosine histograms), mmd (RBF kernel, median bandwidth), stale_self_r1\n"
        "and stale_self_r10 (a sample under A finds itself in an index built with B). With\n"
        "text and images (or audio), 'text->image': r1_fresh and r10_fresh (A's text queries\n"
        "on A's images), r1_stale and r10_stale (on B's images), r1_delta and r10_delta\n"
        "(stale - fresh). n/a: needs the same dimension. Repeated inputs (a caption used by\n"
        "many samples) count once in the per-modality figures.\n"
        "--window N: one model, rows in shard order, the distribution metrics (centroid_*,\n"
        "std_change_*, sim_js, mmd) between consecutive windows of N rows; per-sample metrics\n"
        "need two models. docs/drift.md says what each number means and when to alert.\n\n",
        "--fail-if takes comma-separated conditions [SCOPE:]METRIC OP NUMBER, OP one of < <= >\n"
        ">=, SCOPE a modality or 'text->image' (default: every entry; with --window every pair\n"
        "of windows); exit status 1 names each condition met, e.g.\n"
        "  clasp drift old/ new/ --data 'val-{0..3}.tar' --fail-if 'knn_overlap@10<0.8,cka<0.9'"),
    {"a", 0, CLASP_ARG_POS, A(a), "A", NULL, NULL, 0, 0, 0, NULL, NULL},
    {"b", 0, CLASP_ARG_POS, A(b), "B", NULL, NULL, 0, 0, 0, NULL, NULL},
    {"data", 0, CLASP_ARG_STRING, A(data), "SPEC",
     "shards the exports embed (needed for exports; samples with a caption)", NULL, 0, 0, 0, NULL,
     NULL},
    {"window", 0, CLASP_ARG_INT, A(window), "N",
     "drift between consecutive windows of N rows of A (no B)", NULL, 0, 2, 0, NULL, NULL},
    {"fail-if", 0, CLASP_ARG_STRING, A(fail_if), "CONDS",
     "exit 1 when a condition holds, e.g. 'knn_overlap@10<0.8' (see below)", NULL, 0, 0, 0, NULL,
     NULL},
    {"bins", 0, CLASP_ARG_INT, A(bins), "N", "similarity histogram bins over [-1, 1] (default 50)",
     NULL, 0, 2, 10000, NULL, NULL},
    {"pairs", 0, CLASP_ARG_INT64, A(pairs), "P",
     "sampled pairs per similarity histogram (default 100000; all when fewer)", NULL, 0, 1, 0, NULL,
     NULL},
    {"seed", 0, CLASP_ARG_U64, A(seed), "S", "seed of the pair draws (default 0)", NULL, 0, 0, 0,
     NULL, NULL},
    CLASP_ARG_BATCH(A(batch)),
    CLASP_ARG_PRECISION(A(precision), "fp32"),
    CLASP_ARG_THREADS(A(threads), "1"),
    CLASP_ARG_WORKERS(A(workers), " for --data"),
    CLASP_ARG_JSON(A(json), "results as JSON on stdout"),
    CLASP_ARG_END,
};
#undef A

/* ---- one side: per-modality embeddings with their keys ------------------------------------ */

enum { MAX_MOD = 3, MAX_COND = 32 };

typedef struct modality_set {
    char name[8]; /* "image", "text", "audio" */
    float *x;     /* (n, D) */
    int64_t n;
    int D;
    char **keys; /* (n) sample keys */
} modality_set;

typedef struct emb_set {
    const char *path;
    modality_set m[MAX_MOD];
    int n_mod;
    uint64_t *group; /* (n) caption groups of an embedded spec (rows shared by every modality) */
} emb_set;

static void keys_free_(char **k, int64_t n) {
    for (int64_t i = 0; k && i < n; i++) free(k[i]);
    free(k);
}

static void set_free_(emb_set *s) {
    for (int i = 0; i < s->n_mod; i++) {
        free(s->m[i].x);
        keys_free_(s->m[i].keys, s->m[i].n);
    }
    free(s->group);
    memset(s, 0, sizeof *s);
}

static const modality_set *find_mod_(const emb_set *s, const char *name) {
    for (int i = 0; i < s->n_mod; i++)
        if (!strcmp(s->m[i].name, name)) return &s->m[i];
    return NULL;
}

static char **keys_copy_(char *const *k, int64_t n) {
    char **c = calloc((size_t)(n ? n : 1), sizeof *c);
    for (int64_t i = 0; c && i < n; i++)
        if (!(c[i] = strdup(k[i]))) {
            keys_free_(c, i);
            return NULL;
        }
    return c;
}

/* Adds one modality of a collected spec to s (x is taken over). */
static clasp_status add_collected_(emb_set *s, clasp_tower t, float **x,
                                   const clasp_eval_towers *c) {
    modality_set *m = &s->m[s->n_mod];
    snprintf(m->name, sizeof m->name, "%s", clasp_tower_name(t));
    m->n = c->n, m->D = c->D;
    if (!(m->keys = keys_copy_(c->keys, c->n)))
        return clasp_set_error(CLASP_ERR_NOMEM, "drift: out of memory");
    m->x = *x, *x = NULL;
    s->n_mod++;
    return CLASP_OK;
}

/* Embeds spec with the export at s->path: image or audio, and text, as the model has them. */
static clasp_status load_export_(const drift_args *o, emb_set *s) {
    if (!o->data)
        return clasp_set_error(CLASP_ERR_ARG, "%s is a model folder: --data SPEC is needed",
                               s->path);
    clasp_embedder em;
    CLASP_TRY(clasp_cli_open_embedder(s->path, o->threads, o->batch, o->precision, true, &em));
    clasp_tower ta = clasp_embedder_has(&em, CLASP_TOWER_IMAGE)   ? CLASP_TOWER_IMAGE
                     : clasp_embedder_has(&em, CLASP_TOWER_AUDIO) ? CLASP_TOWER_AUDIO
                                                                  : CLASP_TOWER_TEXT;
    clasp_tower tb = ta != CLASP_TOWER_TEXT && clasp_embedder_has(&em, CLASP_TOWER_TEXT)
                         ? CLASP_TOWER_TEXT
                         : CLASP_N_TOWERS;
    clasp_eval_towers c;
    clasp_status st = clasp_eval_collect_towers(&em, o->data, ta, tb, o->workers, &c);
    clasp_embedder_close(&em);
    CLASP_TRY(st);
    if (c.skipped)
        fprintf(stderr, "clasp drift: %s: %lld samples skipped\n", s->path, (long long)c.skipped);
    st = add_collected_(s, ta, &c.a, &c);
    if (st == CLASP_OK && c.b) st = add_collected_(s, tb, &c.b, &c);
    if (st == CLASP_OK) {
        s->group = c.group;
        c.group = NULL;
    }
    clasp_eval_towers_free(&c);
    return st;
}

/* The keys and modality of a .npy's sidecar into m. */
static clasp_status read_sidecar_(const char *npy, modality_set *m) {
    char path[4200];
    clasp_cli_sidecar_path(npy, path, sizeof path);
    cJSON *j;
    CLASP_TRY(clasp_json_load(path, &j));
    const cJSON *mod = cJSON_GetObjectItemCaseSensitive(j, "modality");
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(j, "keys");
    clasp_status s = CLASP_OK;
    if (!cJSON_IsString(mod) ||
        (strcmp(mod->valuestring, "image") && strcmp(mod->valuestring, "text") &&
         strcmp(mod->valuestring, "audio")))
        s = clasp_set_error(CLASP_ERR_FORMAT, "%s: \"modality\" must be image, text or audio",
                            path);
    else if (!cJSON_IsArray(keys) || cJSON_GetArraySize(keys) != m->n)
        s = clasp_set_error(CLASP_ERR_FORMAT, "%s: \"keys\" has %d entries for the %lld rows of %s",
                            path, cJSON_IsArray(keys) ? cJSON_GetArraySize(keys) : -1,
                            (long long)m->n, npy);
    if (s == CLASP_OK) {
        snprintf(m->name, sizeof m->name, "%s", mod->valuestring);
        m->keys = calloc((size_t)(m->n ? m->n : 1), sizeof *m->keys);
        if (!m->keys) s = clasp_set_error(CLASP_ERR_NOMEM, "drift: out of memory");
    }
    int64_t i = 0;
    for (const cJSON *k = keys ? keys->child : NULL; s == CLASP_OK && k; k = k->next, i++) {
        if (!cJSON_IsString(k))
            s = clasp_set_error(CLASP_ERR_FORMAT, "%s: keys[%lld] is not a string", path,
                                (long long)i);
        else if (!(m->keys[i] = strdup(k->valuestring)))
            s = clasp_set_error(CLASP_ERR_NOMEM, "drift: out of memory");
    }
    cJSON_Delete(j);
    return s;
}

/* Reads the comma-separated .npy files of s->path, one modality each. */
static clasp_status load_npy_(emb_set *s) {
    char buf[8192];
    if (strlen(s->path) >= sizeof buf)
        return clasp_set_error(CLASP_ERR_ARG, "%.64s...: a list of .npy files too long", s->path);
    snprintf(buf, sizeof buf, "%s", s->path);
    clasp_status st = CLASP_OK;
    for (char *save = NULL, *f = strtok_r(buf, ",", &save); f && st == CLASP_OK;
         f = strtok_r(NULL, ",", &save)) {
        if (s->n_mod == MAX_MOD)
            return clasp_set_error(CLASP_ERR_ARG, "%s: more than %d files", s->path, MAX_MOD);
        modality_set *m = &s->m[s->n_mod];
        int64_t cols = 0;
        st = clasp_npy_read_f32(f, &m->x, &m->n, &cols);
        if (st != CLASP_OK) break;
        s->n_mod++;
        m->D = (int)cols;
        if (cols > INT_MAX)
            st = clasp_set_error(CLASP_ERR_FORMAT, "%s: %lld columns", f, (long long)cols);
        if (st == CLASP_OK && m->n == 0)
            st = clasp_set_error(CLASP_ERR_FORMAT, "%s: no rows (an empty embedding set)", f);
        if (st == CLASP_OK) st = read_sidecar_(f, m);
        for (int i = 0; st == CLASP_OK && i < s->n_mod - 1; i++)
            if (!strcmp(s->m[i].name, m->name))
                st = clasp_set_error(CLASP_ERR_ARG, "%s: two %s sets", s->path, m->name);
    }
    return st;
}

static bool is_dir_(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static clasp_status load_set_(const drift_args *o, const char *path, emb_set *s) {
    memset(s, 0, sizeof *s);
    s->path = path;
    clasp_status st = is_dir_(path) ? load_export_(o, s) : load_npy_(s);
    if (st != CLASP_OK) set_free_(s);
    return st;
}

/* ---- the figures ------------------------------------------------------------------------- */

typedef enum entry_kind { ENTRY_MODALITY, ENTRY_CROSS, ENTRY_WINDOW } entry_kind;

/* One row of the results: a modality of two models, a cross-modal pair, or a modality's
 * consecutive windows (n_win - 1 comparisons in w). */
typedef struct entry {
    char name[32];
    entry_kind kind;
    int64_t n, n_distinct; /* rows; distinct inputs the per-sample metrics use */
    int Da, Db;
    double v[CLASP_DRIFT_N_METRICS];
    double (*w)[CLASP_DRIFT_N_METRICS];
    int n_win;
} entry;

/* Whether metric m is reported for an entry of this kind. */
static bool shown_(entry_kind k, int m) {
    if (k == ENTRY_CROSS) return m >= CLASP_DRIFT_R1_FRESH;
    if (k == ENTRY_MODALITY) return m < CLASP_DRIFT_R1_FRESH;
    return !clasp_drift_metric_per_sample((clasp_drift_metric)m);
}

/* The same rows: counts and keys of A's and B's sets of one modality. */
static clasp_status same_keys_(const char *what, const modality_set *a, const char *pa,
                               const modality_set *b, const char *pb) {
    if (a->n != b->n)
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: %s has %lld rows, %s has %lld", what, pa,
                               (long long)a->n, pb, (long long)b->n);
    for (int64_t i = 0; a->keys && b->keys && i < a->n; i++)
        if (strcmp(a->keys[i], b->keys[i]) != 0)
            return clasp_set_error(CLASP_ERR_FORMAT,
                                   "%s: row %lld has key '%s' in %s but '%s' in %s (the sets must "
                                   "hold the same keys in the same order)",
                                   what, (long long)i, a->keys[i], pa, b->keys[i], pb);
    return CLASP_OK;
}

/* The cross-modal entry 'text->G' of A's text queries against A's and B's gallery G (rows of
 * the same keys). A query's hits are the gallery rows whose own caption is the query's: the
 * loader's caption group for an embedded spec; for .npy sets, texts with bitwise identical
 * embeddings under A (the same caption gives the same row). */
static clasp_status cross_(const emb_set *A, const emb_set *B, const char *gal, entry *e) {
    const modality_set *qt = find_mod_(A, "text"), *ga = find_mod_(A, gal), *gb = find_mod_(B, gal);
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "text->%s", gal);
    e->kind = ENTRY_CROSS;
    e->n = qt->n, e->Da = ga->D, e->Db = gb->D;
    for (int m = 0; m < CLASP_DRIFT_N_METRICS; m++) e->v[m] = (double)NAN;
    if (same_keys_(e->name, qt, "A's text", ga, gal) != CLASP_OK) {
        /* texts and gallery of other samples (`clasp embed --text` lines): no pairs to score */
        fprintf(stderr, "clasp drift: %s not measured: %s\n", e->name, clasp_last_error());
        e->name[0] = '\0';
        return CLASP_OK;
    }
    if (qt->D != ga->D || ga->D != gb->D) return CLASP_OK; /* n/a */
    uint64_t *g = malloc((size_t)qt->n * sizeof(uint64_t));
    if (!g) return clasp_set_error(CLASP_ERR_NOMEM, "drift: out of memory");
    for (int64_t i = 0; i < qt->n; i++)
        g[i] = A->group ? A->group[i]
                        : clasp_hash64(qt->x + i * qt->D, (size_t)qt->D * sizeof(float), 0);
    clasp_status s = clasp_drift_cross_retrieval(qt->x, g, ga->x, gb->x, g, qt->n, qt->D, e->v);
    free(g);
    return s;
}

/* Copies rows keep[0..n) of x (rows of D) into a new array (NULL when out of memory). */
static float *gather_(const float *x, int D, const int64_t *keep, int64_t n) {
    float *g = malloc((size_t)n * (size_t)D * sizeof(float));
    for (int64_t i = 0; g && i < n; i++)
        memcpy(g + i * D, x + keep[i] * D, (size_t)D * sizeof(float));
    return g;
}

typedef struct grow_ {
    uint64_t g;
    int64_t i;
} grow_;

static int cmp_grow_(const void *x, const void *y) {
    const grow_ *a = x, *b = y;
    if (a->g != b->g) return a->g < b->g ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

static int cmp_i64_(const void *x, const void *y) {
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* The first row of each caption group (the loader's hash of the caption's tokens) into keep, in
 * row order. */
static clasp_status distinct_groups_(const uint64_t *g, int64_t n, int64_t *keep, int64_t *nk) {
    grow_ *r = malloc((size_t)(n ? n : 1) * sizeof *r);
    if (!r) return clasp_set_error(CLASP_ERR_NOMEM, "drift: out of memory");
    for (int64_t i = 0; i < n; i++) r[i] = (grow_){g[i], i};
    qsort(r, (size_t)n, sizeof *r, cmp_grow_);
    *nk = 0;
    for (int64_t i = 0; i < n; i++)
        if (i == 0 || r[i].g != r[i - 1].g) keep[(*nk)++] = r[i].i;
    free(r);
    qsort(keep, (size_t)*nk, sizeof *keep, cmp_i64_);
    return CLASP_OK;
}

/* clasp_drift_compare over the distinct inputs of a modality (repeated captions once). Texts of
 * an embedded spec are grouped by caption (the same input whatever bits its embedding got: a
 * backend whose products depend on the row's position in the batch, OpenBLAS, gives copies of
 * one caption slightly different bits); .npy sets by bitwise identical rows. */
static clasp_status compare_distinct_(const modality_set *a, const modality_set *b,
                                      const uint64_t *group, const clasp_drift_options *opt,
                                      entry *e) {
    int64_t *keep = malloc((size_t)a->n * sizeof(int64_t)), nk = 0;
    if (!keep) return clasp_set_error(CLASP_ERR_NOMEM, "drift: out of memory");
    clasp_status s = CLASP_OK;
    if (group && !strcmp(a->name, "text"))
        s = distinct_groups_(group, a->n, keep, &nk);
    else
        s = clasp_drift_distinct_rows(a->x, a->D, b->x, b->D, a->n, keep, &nk);
    e->n_distinct = nk;
    float *ga = NULL, *gb = NULL;
    if (s == CLASP_OK && nk < a->n) {
        ga = gather_(a->x, a->D, keep, nk), gb = gather_(b->x, b->D, keep, nk);
        if (!ga || !gb) s = clasp_set_error(CLASP_ERR_NOMEM, "drift: out of memory");
    }
    if (s == CLASP_OK)
        s = clasp_drift_compare(ga ? ga : a->x, a->D, gb ? gb : b->x, b->D, nk, opt, e->v);
    free(keep), free(ga), free(gb);
    return s;
}

static clasp_status compare_models_(const emb_set *A, const emb_set *B,
                                    const clasp_drift_options *opt, entry *out, int *ne) {
    *ne = 0;
    for (int i = 0; i < A->n_mod; i++) {
        const modality_set *a = &A->m[i], *b = find_mod_(B, a->name);
        if (!b) continue;
        CLASP_TRY(same_keys_(a->name, a, A->path, b, B->path));
        entry *e = &out[(*ne)++];
        memset(e, 0, sizeof *e);
        snprintf(e->name, sizeof e->name, "%s", a->name);
        e->kind = ENTRY_MODALITY;
        e->n = a->n, e->Da = a->D, e->Db = b->D;
        clasp_status s = compare_distinct_(a, b, A->group && B->group ? A->group : NULL, opt, e);
        if (s != CLASP_OK) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", clasp_last_error());
            return clasp_set_error(s, "%s: %s", a->name, msg);
        }
    }
    if (*ne == 0)
        return clasp_set_error(CLASP_ERR_ARG, "%s and %s share no modality", A->path, B->path);
    static const char *const gals[] = {"image", "audio"};
    for (int g = 0; g < 2; g++)
        if (find_mod_(A, "text") && find_mod_(B, "text") && find_mod_(A, gals[g]) &&
            find_mod_(B, gals[g])) {
            CLASP_TRY(cross_(A, B, gals[g], &out[*ne]));
            if (out[*ne].name[0]) (*ne)++;
        }
    return CLASP_OK;
}

static clasp_status windows_(const emb_set *A, int N, const clasp_drift_options *opt, entry *out,
                             int *ne) {
    *ne = 0;
    for (int i = 0; i < A->n_mod; i++) {
        const modality_set *a = &A->m[i];
        int64_t nw = a->n / N;
        if (nw < 2)
            return clasp_set_error(CLASP_ERR_ARG,
                                   "%s: %lld %s rows make fewer than two windows of %d", A->path,
                                   (long long)a->n, a->name, N);
        entry *e = &out[(*ne)++];
        memset(e, 0, sizeof *e);
        snprintf(e->name, sizeof e->name, "%s", a->name);
        e->kind = ENTRY_WINDOW;
        e->n = a->n, e->Da = e->Db = a->D;
        e->n_win = (int)nw;
        if (!(e->w = malloc((size_t)(nw - 1) * sizeof *e->w)))
            return clasp_set_error(CLASP_ERR_NOMEM, "drift: out of memory");
        for (int64_t w = 0; w + 1 < nw; w++) {
            const float *x = a->x + (size_t)w * (size_t)N * (size_t)a->D;
            CLASP_TRY(clasp_drift_distribution(x, N, x + (size_t)N * (size_t)a->D, N, a->D, opt,
                                               e->w[w]));
        }
    }
    return CLASP_OK;
}

/* ---- output and alerts --------------------------------------------------------------------- */

static void add_metrics_json_(cJSON *o, entry_kind k, const double *v) {
    for (int m = 0; m < CLASP_DRIFT_N_METRICS; m++) {
        if (!shown_(k, m)) continue;
        const char *name = clasp_drift_metric_name((clasp_drift_metric)m);
        if (isnan(v[m]))
            cJSON_AddNullToObject(o, name);
        else
            cJSON_AddNumberToObject(o, name, v[m]);
    }
}

static void print_metrics_(entry_kind k, const double *v, const char *indent) {
    for (int m = 0; m < CLASP_DRIFT_N_METRICS; m++) {
        if (!shown_(k, m)) continue;
        const char *name = clasp_drift_metric_name((clasp_drift_metric)m);
        if (isnan(v[m]))
            printf("%s%-16s n/a\n", indent, name);
        else
            printf("%s%-16s %.6f\n", indent, name, v[m]);
    }
}

static void print_(const drift_args *o, const entry *e, int ne, int N) {
    if (o->json) {
        cJSON *j = cJSON_CreateObject(), *en = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "mode", N ? "window" : "models");
        cJSON_AddStringToObject(j, "a", o->a);
        if (o->b) cJSON_AddStringToObject(j, "b", o->b);
        if (o->data) cJSON_AddStringToObject(j, "data", o->data);
        if (N) cJSON_AddNumberToObject(j, "window", N);
        for (int i = 0; i < ne; i++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "n", (double)e[i].n);
            if (e[i].kind == ENTRY_MODALITY)
                cJSON_AddNumberToObject(x, "distinct", (double)e[i].n_distinct);
            cJSON_AddNumberToObject(x, "dim_a", e[i].Da);
            if (!N) cJSON_AddNumberToObject(x, "dim_b", e[i].Db);
            if (N) {
                cJSON *ws = cJSON_AddArrayToObject(x, "windows");
                for (int w = 0; w + 1 < e[i].n_win; w++) {
                    cJSON *p = cJSON_CreateObject();
                    cJSON_AddNumberToObject(p, "from_row", (double)w * N);
                    cJSON_AddNumberToObject(p, "to_row", (double)(w + 1) * N);
                    add_metrics_json_(p, ENTRY_WINDOW, e[i].w[w]);
                    cJSON_AddItemToArray(ws, p);
                }
            } else {
                add_metrics_json_(x, e[i].kind, e[i].v);
            }
            cJSON_AddItemToObject(en, e[i].name, x);
        }
        cJSON_AddItemToObject(j, "entries", en);
        clasp_cli_print_json(j, true);
        return;
    }
    for (int i = 0; i < ne; i++) {
        printf("%s: %lld rows", e[i].name, (long long)e[i].n);
        if (e[i].kind == ENTRY_MODALITY && e[i].n_distinct < e[i].n)
            printf(" (%lld distinct inputs)", (long long)e[i].n_distinct);
        printf(", dim %d%s", e[i].Da, N ? "" : (e[i].Da == e[i].Db ? " in both" : ""));
        if (!N && e[i].Da != e[i].Db) printf(" (A) and %d (B)", e[i].Db);
        printf("\n");
        if (!N) print_metrics_(e[i].kind, e[i].v, "  ");
        for (int w = 0; N && w + 1 < e[i].n_win; w++) {
            printf("  rows %lld-%lld -> %lld-%lld\n", (long long)w * N, (long long)(w + 1) * N - 1,
                   (long long)(w + 1) * N, (long long)(w + 2) * N - 1);
            print_metrics_(ENTRY_WINDOW, e[i].w[w], "    ");
        }
    }
}

/* Checks every condition against every entry (every window pair) in its scope; prints each
 * one met. Returns how many were met. */
static int alerts_(const clasp_drift_condition *c, int nc, const entry *e, int ne) {
    int fired = 0;
    for (int k = 0; k < nc; k++) {
        bool measured = false;
        for (int i = 0; i < ne; i++) {
            if (c[k].scope[0] && strcmp(c[k].scope, e[i].name) != 0) continue;
            int nv = e[i].kind == ENTRY_WINDOW ? e[i].n_win - 1 : 1;
            for (int w = 0; w < nv; w++) {
                double v = (e[i].kind == ENTRY_WINDOW ? e[i].w[w] : e[i].v)[c[k].metric];
                if (!isnan(v)) measured = true;
                if (!clasp_drift_condition_fires(&c[k], v)) continue;
                fired++;
                if (e[i].kind == ENTRY_WINDOW)
                    fprintf(stderr, "clasp drift: alert: %s (%s, windows %d -> %d: %g)\n",
                            c[k].text, e[i].name, w, w + 1, v);
                else
                    fprintf(stderr, "clasp drift: alert: %s (%s: %g)\n", c[k].text, e[i].name, v);
            }
        }
        if (!measured)
            fprintf(stderr, "clasp drift: warning: --fail-if '%s': not measured here (n/a)\n",
                    c[k].text);
    }
    return fired;
}

/* Usage checks that need more than the table: returns 0 or the usage error's code. */
static int check_usage_(const drift_args *o, clasp_drift_condition *c, int *nc) {
    if (!o->a) return clasp_args_usage_error(drift_table, "need A (and B, or --window N)");
    if (!o->b && !o->window)
        return clasp_args_usage_error(drift_table, "need B, or --window N over A alone");
    if (o->b && o->window)
        return clasp_args_usage_error(drift_table,
                                      "--window measures one model: give A alone, not B");
    if (o->data && !is_dir_(o->a) && (!o->b || !is_dir_(o->b)))
        return clasp_args_usage_error(drift_table, "--data applies to exports, not to .npy sets");
    *nc = 0;
    if (o->fail_if && clasp_drift_conditions_parse(o->fail_if, c, MAX_COND, nc) != CLASP_OK)
        return clasp_args_usage_error(drift_table, "%s", clasp_last_error());
    for (int k = 0; o->window && k < *nc; k++)
        if (clasp_drift_metric_per_sample(c[k].metric))
            return clasp_args_usage_error(
                drift_table,
                "--fail-if '%s': %s is a per-sample metric: it needs the same samples under two "
                "models (A B), not windows of one",
                c[k].text, clasp_drift_metric_name(c[k].metric));
    return 0;
}

int clasp_cmd_drift(int argc, char **argv) {
    drift_args o = {.threads = 1, .batch = 256, .workers = 1, .bins = 50, .pairs = 100000};
    int rc;
    if (!clasp_args_parse(drift_table, &o, argc, argv, &rc)) return rc;
    clasp_drift_condition cond[MAX_COND];
    int nc;
    if ((rc = check_usage_(&o, cond, &nc)) != 0) return rc;
    clasp_drift_options opt = clasp_drift_default_options();
    opt.bins = o.bins, opt.pairs = o.pairs, opt.seed = o.seed;
    emb_set A, B = {0};
    entry e[MAX_MOD + 2];
    int ne = 0;
    memset(e, 0, sizeof e);
    clasp_status s = load_set_(&o, o.a, &A);
    if (s == CLASP_OK && o.b) {
        s = load_set_(&o, o.b, &B);
        if (s == CLASP_OK) s = compare_models_(&A, &B, &opt, e, &ne);
    } else if (s == CLASP_OK) {
        s = windows_(&A, o.window, &opt, e, &ne);
    }
    rc = 0;
    if (s != CLASP_OK) {
        rc = clasp_args_fail(drift_table);
    } else {
        print_(&o, e, ne, o.window);
        if (alerts_(cond, nc, e, ne) > 0) rc = 1;
    }
    for (int i = 0; i < MAX_MOD + 2; i++) free(e[i].w);
    set_free_(&A);
    set_free_(&B);
    return rc;
}
