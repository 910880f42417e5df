/* cmd_index.c: `clasp index build|add|info|eval`: ANN index folders of embeddings (index/index.h,
 * FAISS), recording the model that made them.
 *
 *   build --model EXPORT (--embeddings X.npy [--keys K.json] | --shards SPEC) -o IDX --type T
 *   add   IDX --model EXPORT (--embeddings X.npy [--keys K.json] | --shards SPEC)
 *   info  IDX [--json]
 *   eval  IDX --exact X.npy --queries Q.npy [-k 10] [--target-recall R [--save]] [--json]
 */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/compute.h"
#include "core/hash.h"
#include "core/json.h"
#include "eval/retrieval.h"
#include "export/export.h"
#include "index/index.h"

/* The option values of one invocation (one struct for the four subcommands). */
typedef struct index_args {
    const char *idx, *model, *embeddings, *keys, *shards, *out, *type, *exact, *queries;
    int modality; /* CHOICE index into "image|text|audio"; -1: not given */
    int batch, threads, workers, precision, k, search_param;
    double target;
    bool json, save;
} index_args;

#define A(field) offsetof(index_args, field)
/* The input options of build and add. */
/* clang-format off */
#define INDEX_INPUT_ARGS                                                                           \
    CLASP_ARG_MODEL(A(model), "EXPORT"),                                                           \
    {"embeddings", 0, CLASP_ARG_STRING, A(embeddings), "X.npy",                                    \
     "embeddings written by `clasp embed` with this model (unit rows)", NULL, CLASP_ARG_IN, 0, 0,  \
     NULL, NULL},                                                                                  \
    {"keys", 0, CLASP_ARG_STRING, A(keys), "K.json",                                               \
     "their sidecar (its \"keys\", \"modality\" and \"model_hash\"; default X.json)", NULL,        \
     CLASP_ARG_IN, 0, 0, NULL, NULL},                                                              \
    {"shards", 0, CLASP_ARG_STRING, A(shards), "SPEC",                                             \
     "embed the samples of shards with the model instead (keys: sample keys), as "                 \
     "`clasp embed --shards` does", NULL, 0, 0, 0, NULL, NULL},                                    \
    {"modality", 0, CLASP_ARG_CHOICE, A(modality), NULL,                                           \
     "what to embed of --shards (default: image, else audio, else text)", NULL, 0, 0, 0,           \
     "image|text|audio", NULL},                                                                    \
    CLASP_ARG_BATCH(A(batch)), CLASP_ARG_PRECISION(A(precision), "fp32"),                          \
    CLASP_ARG_THREADS(A(threads), "1"), CLASP_ARG_WORKERS(A(workers), " for --shards")
/* clang-format on */

static const clasp_arg build_table[] = {
    CLASP_ARG_COMMAND(
        "index build",
        "--model EXPORT (--embeddings X.npy [--keys K.json] | --shards SPEC)\n"
        " -o IDX [--type flat|hnsw[:M=32,efc=200,ef=64]|ivf-flat[:nlist=4096,nprobe=16]|\n"
        " ivf-pq[:nlist=4096,m=16,nbits=8,nprobe=16,refine=0]]",
        "Builds an ANN index folder (FAISS) of embeddings, recording the model hash,\n"
        "tower, precision, type and parameters (docs/index.md). An existing IDX is\n"
        "replaced atomically: readers see the old or the new index, never half.\n\n",
        NULL),
    INDEX_INPUT_ARGS,
    {"out", 'o', CLASP_ARG_STRING, A(out), "IDX", "the index folder", NULL,
     CLASP_ARG_REQ | CLASP_ARG_DIR, 0, 0, NULL, NULL},
    {"type", 0, CLASP_ARG_STRING, A(type), "T", "index type and parameters (default hnsw)", NULL, 0,
     0, 0, NULL, NULL},
    CLASP_ARG_JSON(A(json), "summary on stdout"),
    CLASP_ARG_END,
};

static const clasp_arg add_table[] = {
    CLASP_ARG_COMMAND("index add",
                      "IDX --model EXPORT (--embeddings X.npy [--keys K.json] | --shards SPEC)",
                      "Adds embeddings to an index folder as a new version (same model only: a\n"
                      "model of another hash is refused).\n\n",
                      NULL),
    {"idx", 0, CLASP_ARG_POS, A(idx), "IDX", NULL, NULL, CLASP_ARG_REQ | CLASP_ARG_DIR, 0, 0, NULL,
     NULL},
    INDEX_INPUT_ARGS,
    CLASP_ARG_JSON(A(json), "summary on stdout"),
    CLASP_ARG_END,
};

static const clasp_arg info_table[] = {
    CLASP_ARG_COMMAND("index info", "IDX [--json]",
                      "Prints what an index folder records (meta.json of its current version).\n\n",
                      NULL),
    {"idx", 0, CLASP_ARG_POS, A(idx), "IDX", NULL, NULL, CLASP_ARG_REQ | CLASP_ARG_DIR, 0, 0, NULL,
     NULL},
    CLASP_ARG_JSON(A(json), "meta.json's fields as JSON on stdout"),
    CLASP_ARG_END,
};

static const clasp_arg eval_table[] = {
    CLASP_ARG_COMMAND(
        "index eval",
        "IDX --exact X.npy --queries Q.npy [-k 10] [--search-param P]\n"
        " [--target-recall R [--save]] [--json]",
        "Measures an index against exact search (one sgemv per query over X): recall@1 and\n"
        "recall@10, queries per second and p50/p99 latency (one query per call, one thread),\n"
        "and the memory the opened index takes (resident set growth). --target-recall sweeps\n"
        "efSearch (hnsw) or nprobe (ivf-flat, ivf-pq) and reports the smallest reaching R.\n\n",
        NULL),
    {"idx", 0, CLASP_ARG_POS, A(idx), "IDX", NULL, NULL, CLASP_ARG_REQ | CLASP_ARG_DIR, 0, 0, NULL,
     NULL},
    {"exact", 0, CLASP_ARG_STRING, A(exact), "X.npy",
     "the embeddings the index holds, in its row order (unit rows)", NULL,
     CLASP_ARG_REQ | CLASP_ARG_IN, 0, 0, NULL, NULL},
    {"queries", 0, CLASP_ARG_STRING, A(queries), "Q.npy", "query embeddings", NULL,
     CLASP_ARG_REQ | CLASP_ARG_IN, 0, 0, NULL, NULL},
    {"k", 'k', CLASP_ARG_INT, A(k), "K", "exact neighbours compared (default 10)", NULL, 0, 1, 0,
     NULL, NULL},
    {"search-param", 0, CLASP_ARG_INT, A(search_param), "P",
     "efSearch / nprobe to measure (default: the index's stored default)", NULL, 0, 1, 0, NULL,
     NULL},
    {"target-recall", 0, CLASP_ARG_DOUBLE, A(target), "R",
     "find the smallest search parameter whose recall@10 reaches R (0 < R <= 1)", NULL, 0, 1e-9, 1,
     NULL, NULL},
    {"save", 0, CLASP_ARG_FLAG, A(save), NULL,
     "store the parameter found as the index's default (a new version)", NULL, 0, 0, 0, NULL, NULL},
    CLASP_ARG_JSON(A(json), "results as JSON on stdout"),
    CLASP_ARG_END,
};
#undef A

/* ---- inputs: the model's identity and the vectors ---- */

/* Keys, modality and model hash from an embeddings sidecar; refuses one of another model. */
static clasp_status read_sidecar_(const char *path, const clasp_embedder *em, int64_t n,
                                  clasp_cli_keys *keys, char *modality, size_t cap) {
    cJSON *j;
    CLASP_TRY(clasp_json_load(path, &j));
    clasp_status s = CLASP_OK;
    const cJSON *mh = cJSON_GetObjectItemCaseSensitive(j, "model_hash");
    const cJSON *mod = cJSON_GetObjectItemCaseSensitive(j, "modality");
    const cJSON *ka = cJSON_GetObjectItemCaseSensitive(j, "keys");
    char hex[17];
    clasp_hash_hex(em->model_hash, hex);
    if (cJSON_IsString(mh) && strcmp(mh->valuestring, hex) != 0)
        s = clasp_set_error(CLASP_ERR_CONFIG,
                            "%s: the embeddings were made by model %s, --model is %s (embed them "
                            "again with this model)",
                            path, mh->valuestring, hex);
    if (s == CLASP_OK && cJSON_IsString(mod)) snprintf(modality, cap, "%s", mod->valuestring);
    if (s == CLASP_OK && ka && (!cJSON_IsArray(ka) || cJSON_GetArraySize(ka) != n))
        s = clasp_set_error(CLASP_ERR_FORMAT, "%s: field 'keys': %d keys for %lld rows", path,
                            cJSON_IsArray(ka) ? cJSON_GetArraySize(ka) : -1, (long long)n);
    for (const cJSON *k = ka ? ka->child : NULL; s == CLASP_OK && k; k = k->next) {
        if (!cJSON_IsString(k))
            s = clasp_set_error(CLASP_ERR_FORMAT, "%s: field 'keys': a key is not a string", path);
        else if (!clasp_cli_keys_add(keys, k->valuestring))
            s = clasp_set_error(CLASP_ERR_NOMEM, "out of memory");
    }
    cJSON_Delete(j);
    return s;
}

/* The modality --shards embeds: --modality, else the model's first of image, audio, text. */
static clasp_tower shard_tower_(const index_args *a, const clasp_embedder *em, const char **name) {
    static const char *const names[] = {"image", "text", "audio"};
    static const clasp_tower towers[] = {CLASP_TOWER_IMAGE, CLASP_TOWER_TEXT, CLASP_TOWER_AUDIO};
    int m = a->modality;
    if (m < 0)
        m = clasp_embedder_has(em, CLASP_TOWER_IMAGE)   ? 0
            : clasp_embedder_has(em, CLASP_TOWER_AUDIO) ? 2
                                                        : 1;
    *name = names[m];
    return towers[m];
}

typedef struct index_input {
    clasp_embedder em;
    float *x;
    int64_t n;
    int dim;
    clasp_cli_keys keys;
    char tower[16];
} index_input;

static void input_free_(index_input *in) {
    free(in->x);
    clasp_cli_keys_free(&in->keys);
    clasp_embedder_close(&in->em);
}

/* Opens the model (its hash, dim) and reads or embeds the vectors and keys. */
static clasp_status load_input_(const index_args *a, index_input *in) {
    memset(in, 0, sizeof *in);
    CLASP_TRY(clasp_cli_open_embedder(a->model, a->threads, a->batch, a->precision, true, &in->em));
    if (a->shards) {
        const char *name;
        clasp_tower t = shard_tower_(a, &in->em, &name);
        snprintf(in->tower, sizeof in->tower, "%s", name);
        if (!clasp_embedder_has(&in->em, t))
            return clasp_set_error(CLASP_ERR_CONFIG, "%s: the model has no %s tower", a->model,
                                   name);
        size_t n = 0;
        CLASP_TRY(clasp_cli_embed_shards(&in->em, a->shards, t, a->workers, &in->keys, &in->x, &n));
        in->n = (int64_t)n;
        in->dim = in->em.D;
        return n ? CLASP_OK
                 : clasp_set_error(CLASP_ERR_FORMAT, "%s: no usable sample (empty embedding set)",
                                   a->shards);
    }
    int64_t cols;
    CLASP_TRY(clasp_npy_read_f32(a->embeddings, &in->x, &in->n, &cols));
    const char *shown = clasp_args_display(a->embeddings);
    if (cols != in->em.D)
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: rows of dim %lld, the model embeds dim %d",
                               shown, (long long)cols, in->em.D);
    in->dim = (int)cols;
    char side[4200] = "";
    if (a->keys)
        snprintf(side, sizeof side, "%s", a->keys);
    else if (strcmp(shown, "-") != 0)
        clasp_cli_sidecar_path(a->embeddings, side, sizeof side);
    if (side[0] && (a->keys || clasp_is_file(side)))
        CLASP_TRY(read_sidecar_(side, &in->em, in->n, &in->keys, in->tower, sizeof in->tower));
    return CLASP_OK;
}

static void print_meta_(const clasp_index *ix, const char *dir, bool json) {
    const clasp_index_meta *m = clasp_index_get_meta(ix);
    char mh[17], iv[17];
    clasp_hash_hex(m->model_hash, mh);
    clasp_hash_hex(m->index_version, iv);
    if (!json) {
        printf("index          %s (version folder %s)\n", dir, clasp_index_path(ix));
        printf("type           %s%s%s\n", m->type, m->params[0] ? ":" : "", m->params);
        printf("vectors        %lld x %d (cosine)\n", (long long)m->count, m->dim);
        printf("model hash     %s\n", mh);
        printf("tower          %s\n", m->tower[0] ? m->tower : "(unknown)");
        printf("precision      %s\n", m->precision);
        printf("search default %d%s\n", m->search_def,
               !strcmp(m->type, "hnsw")       ? " (efSearch)"
               : !strncmp(m->type, "ivf-", 4) ? " (nprobe)"
                                              : " (exact)");
        printf("created        %s by clasp %s\n", m->created, m->clasp_version);
        printf("generation     %lld\n", (long long)m->generation);
        printf("index version  %s\n", iv);
        return;
    }
    cJSON *o = clasp_index_meta_json(m);
    if (o) {
        cJSON_AddStringToObject(o, "index", dir);
        cJSON_AddStringToObject(o, "path", clasp_index_path(ix));
    }
    clasp_cli_print_json(o, true);
}

/* After a build or an add: reopens the index and prints its summary. */
static int report_(const clasp_arg *table, const char *dir, const char *what, bool json) {
    clasp_index *ix;
    if (clasp_index_open(dir, &ix) != CLASP_OK) return clasp_args_fail(table);
    const clasp_index_meta *m = clasp_index_get_meta(ix);
    fprintf(stderr, "clasp index %s: %s: %s index of %lld vectors of dim %d (generation %lld)\n",
            what, dir, m->type, (long long)m->count, m->dim, (long long)m->generation);
    if (json) print_meta_(ix, dir, true);
    clasp_index_close(ix);
    return 0;
}

int clasp_cmd_index_build(int argc, char **argv) {
    index_args a = {.modality = -1, .batch = 256, .threads = 1, .workers = 1, .type = "hnsw"};
    int rc;
    if (!clasp_args_parse(build_table, &a, argc, argv, &rc)) return rc;
    if ((a.embeddings != NULL) + (a.shards != NULL) != 1)
        return clasp_args_usage_error(build_table, "need exactly one of --embeddings, --shards");
    clasp_index_spec spec;
    if (clasp_index_spec_parse(a.type, &spec) != CLASP_OK)
        return clasp_args_usage_error(build_table, "--type: %s", clasp_last_error());
    index_input in;
    clasp_status s = load_input_(&a, &in);
    clasp_index_origin o = {in.em.model_hash, in.tower,
                            clasp_precision_name((clasp_precision)a.precision)};
    double t0 = (double)clock() / CLOCKS_PER_SEC;
    if (s == CLASP_OK)
        s = clasp_index_build(a.out, &spec, &o, in.x, in.n, in.dim,
                              in.keys.n ? (const char *const *)in.keys.k : NULL);
    if (s == CLASP_OK)
        fprintf(stderr, "clasp index build: %.1f s of CPU time\n",
                (double)clock() / CLOCKS_PER_SEC - t0);
    input_free_(&in);
    if (s != CLASP_OK) return clasp_args_fail(build_table);
    return report_(build_table, a.out, "build", a.json);
}

int clasp_cmd_index_add(int argc, char **argv) {
    index_args a = {.modality = -1, .batch = 256, .threads = 1, .workers = 1};
    int rc;
    if (!clasp_args_parse(add_table, &a, argc, argv, &rc)) return rc;
    if ((a.embeddings != NULL) + (a.shards != NULL) != 1)
        return clasp_args_usage_error(add_table, "need exactly one of --embeddings, --shards");
    index_input in;
    clasp_status s = load_input_(&a, &in);
    clasp_index_origin o = {in.em.model_hash, in.tower,
                            clasp_precision_name((clasp_precision)a.precision)};
    if (s == CLASP_OK)
        s = clasp_index_add(a.idx, &o, in.x, in.n, in.dim,
                            in.keys.n ? (const char *const *)in.keys.k : NULL);
    input_free_(&in);
    if (s != CLASP_OK) return clasp_args_fail(add_table);
    return report_(add_table, a.idx, "add", a.json);
}

int clasp_cmd_index_info(int argc, char **argv) {
    index_args a = {0};
    int rc;
    if (!clasp_args_parse(info_table, &a, argc, argv, &rc)) return rc;
    clasp_index *ix;
    if (clasp_index_open(a.idx, &ix) != CLASP_OK) return clasp_args_fail(info_table);
    print_meta_(ix, a.idx, a.json);
    clasp_index_close(ix);
    return 0;
}

/* ---- eval ---- */

typedef struct eval_data {
    float *x, *q;
    int64_t n, nq;
    int64_t *exact; /* (nq, k) */
    float *scores;  /* (nq, k) */
    double exact_qps;
} eval_data;

/* Reads X and Q, checks them against the index, and computes the exact top-k (timing the
 * exact scan one query at a time on up to 100 queries). */
static clasp_status eval_load_(const index_args *a, const clasp_index *ix, eval_data *d) {
    const clasp_index_meta *m = clasp_index_get_meta(ix);
    int64_t cols, qcols;
    CLASP_TRY(clasp_npy_read_f32(a->exact, &d->x, &d->n, &cols));
    CLASP_TRY(clasp_npy_read_f32(a->queries, &d->q, &d->nq, &qcols));
    const char *xs = clasp_args_display(a->exact), *qs = clasp_args_display(a->queries);
    if (cols != m->dim || qcols != m->dim)
        return clasp_set_error(CLASP_ERR_FORMAT, "%s has dim %lld, %s dim %lld: the index's is %d",
                               xs, (long long)cols, qs, (long long)qcols, m->dim);
    if (d->n != m->count)
        return clasp_set_error(CLASP_ERR_FORMAT,
                               "%s: %lld rows, the index holds %lld (--exact is the embeddings "
                               "the index was built from)",
                               xs, (long long)d->n, (long long)m->count);
    if (d->nq < 1 || d->nq > (1 << 24))
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: %lld queries", qs, (long long)d->nq);
    d->exact = malloc((size_t)d->nq * (size_t)a->k * sizeof *d->exact);
    d->scores = malloc((size_t)d->nq * (size_t)a->k * sizeof *d->scores);
    int64_t *one = malloc((size_t)a->k * sizeof *one);
    float *sc = malloc((size_t)a->k * sizeof *sc);
    clasp_status s = d->exact && d->scores && one && sc
                         ? CLASP_OK
                         : clasp_set_error(CLASP_ERR_NOMEM, "out of memory");
    if (s == CLASP_OK)
        s = clasp_search_topk(d->x, d->n, m->dim, d->q, (int)d->nq, a->k, d->exact, d->scores);
    int timed = d->nq < 100 ? (int)d->nq : 100;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; s == CLASP_OK && i < timed; i++)
        s = clasp_search_topk(d->x, d->n, m->dim, d->q + (size_t)i * (size_t)m->dim, 1, a->k, one,
                              sc);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    d->exact_qps = sec > 0 ? timed / sec : 0;
    free(one);
    free(sc);
    return s;
}

static void eval_print_(const clasp_index *ix, const clasp_index_eval *e, const eval_data *d,
                        double mem_mb, const index_args *a, int found) {
    const clasp_index_meta *m = clasp_index_get_meta(ix);
    const char *pname = !strcmp(m->type, "hnsw")       ? "efSearch"
                        : !strncmp(m->type, "ivf-", 4) ? "nprobe"
                                                       : "param";
    if (a->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "index", a->idx);
        cJSON_AddStringToObject(o, "type", m->type);
        cJSON_AddNumberToObject(o, "count", (double)m->count);
        cJSON_AddNumberToObject(o, "queries", (double)d->nq);
        cJSON_AddNumberToObject(o, "search_param", e->search_param);
        const char *names[] = {"recall1", "recall10",  "qps",      "p50_ms",
                               "p99_ms",  "exact_qps", "memory_mb"};
        const double v[] = {e->recall1, e->recall10,  e->qps, e->p50_ms,
                            e->p99_ms,  d->exact_qps, mem_mb};
        clasp_cli_add_numbers(o, names, v, 7);
        if (a->target > 0) {
            cJSON_AddNumberToObject(o, "target_recall", a->target);
            cJSON_AddBoolToObject(o, "target_reached", found);
        }
        clasp_cli_print_json(o, true);
        return;
    }
    printf("%s: %s index, %lld vectors, %lld queries, %s %d\n", a->idx, m->type,
           (long long)m->count, (long long)d->nq, pname, e->search_param);
    printf("recall@1 %.4f  recall@%d %.4f (against exact top-%d)\n", e->recall1, e->k, e->recall10,
           a->k);
    printf("QPS %.0f (exact scan %.0f: x%.1f)  latency p50 %.3f ms  p99 %.3f ms\n", e->qps,
           d->exact_qps, d->exact_qps > 0 ? e->qps / d->exact_qps : 0, e->p50_ms, e->p99_ms);
    printf("memory %.1f MB (resident set growth at open)\n", mem_mb);
    if (a->target > 0)
        printf(found ? "target recall@10 %.3f reached: smallest %s %d\n"
                     : "target recall@10 %.3f NOT reached: best %s %d\n",
               a->target, pname, e->search_param);
}

int clasp_cmd_index_eval(int argc, char **argv) {
    index_args a = {.k = 10};
    int rc;
    if (!clasp_args_parse(eval_table, &a, argc, argv, &rc)) return rc;
    if (a.save && a.target <= 0)
        return clasp_args_usage_error(eval_table, "--save needs --target-recall");
    int64_t rss0 = clasp_index_rss_bytes();
    clasp_index *ix;
    if (clasp_index_open(a.idx, &ix) != CLASP_OK) return clasp_args_fail(eval_table);
    double mem_mb = (double)(clasp_index_rss_bytes() - rss0) / 1048576.0;
    eval_data d = {0};
    clasp_index_eval e;
    int found = 0;
    clasp_status s = eval_load_(&a, ix, &d);
    clasp_index_truth truth = {d.exact, d.scores, a.k};
    if (s == CLASP_OK && a.target > 0)
        s = clasp_index_tune(ix, d.q, (int)d.nq, &truth, a.target, &e, &found);
    else if (s == CLASP_OK)
        s = clasp_index_evaluate(ix, d.q, (int)d.nq, &truth, a.search_param, &e);
    if (s == CLASP_OK) eval_print_(ix, &e, &d, mem_mb, &a, found);
    const char *type = clasp_index_get_meta(ix)->type;
    if (s == CLASP_OK && a.save && found && strcmp(type, "flat") != 0) {
        s = clasp_index_set_default(a.idx, e.search_param);
        if (s == CLASP_OK)
            fprintf(stderr, "clasp index eval: stored %d as %s's default search parameter\n",
                    e.search_param, a.idx);
    }
    free(d.x);
    free(d.q);
    free(d.exact);
    free(d.scores);
    clasp_index_close(ix);
    if (s != CLASP_OK) return clasp_args_fail(eval_table);
    return a.target > 0 && !found ? 1 : 0;
}
