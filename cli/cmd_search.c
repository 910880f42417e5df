/* cmd_search.c: `clasp search --model DIR --index OUT.npy|IDX (--text Q | --image F | --audio F)
 * -k K`: embeds the query with the model and prints the K stored rows of highest cosine: exact
 * (one sgemv over a .npy, with the keys of its sidecar OUT.json), or from an ANN index folder
 * (index/index.h), which refuses a model whose hash is not the index's unless
 * --allow-model-mismatch. */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/hash.h"
#include "core/json.h"
#include "export/export.h"
#include "eval/retrieval.h"
#include "index/index.h"

/* The option values of one invocation; the table below points into it. */
typedef struct search_args {
    const char *model, *index, *sidecar, *text, *image, *audio;
    int k, threads;
    int precision, search_param;
    bool json, allow_mismatch;
} search_args;

#define A(field) offsetof(search_args, field)
static const clasp_arg search_table[] = {
    CLASP_ARG_COMMAND(
        "search",
        "--model DIR --index OUT.npy|IDX (--text QUERY | --image FILE |\n"
        " --audio FILE) [-k K] [--threads N] [--json]",
        "Prints the K entries of an index with the highest cosine similarity to the query:\n"
        "embeddings written by `clasp embed` (exact search; keys from the sidecar OUT.json or\n"
        "the file --sidecar names), or an index folder of `clasp index build` (approximate;\n"
        "its model hash must be the model's).\n\n",
        NULL),
    CLASP_ARG_MODEL(A(model), "DIR"),
    {"index", 0, CLASP_ARG_STRING, A(index), "OUT.npy",
     "embeddings written by `clasp embed` ('-' = stdin), or an index folder (`clasp index build`)",
     NULL, CLASP_ARG_REQ | CLASP_ARG_IN, 0, 0, NULL, NULL},
    {"allow-model-mismatch", 0, CLASP_ARG_FLAG, A(allow_mismatch), NULL,
     "search an index folder built with another model (a warning instead of an error)", NULL, 0, 0,
     0, NULL, NULL},
    {"search-param", 0, CLASP_ARG_INT, A(search_param), "P",
     "efSearch / nprobe of an index folder (default: its stored default)", NULL, 0, 1, 0, NULL,
     NULL},
    {"sidecar", 0, CLASP_ARG_STRING, A(sidecar), "FILE",
     "the index's keys (default: OUT.npy with .json for .npy; none for --index -)", NULL,
     CLASP_ARG_IN, 0, 0, NULL, NULL},
    {"text", 0, CLASP_ARG_STRING, A(text), "QUERY", "a text query", NULL, 0, 0, 0, NULL, NULL},
    {"image", 0, CLASP_ARG_STRING, A(image), "FILE", "an image query ('-' = stdin)", NULL,
     CLASP_ARG_IN, 0, 0, NULL, NULL},
    {"audio", 0, CLASP_ARG_STRING, A(audio), "FILE", "an audio query ('-' = stdin)", NULL,
     CLASP_ARG_IN, 0, 0, NULL, NULL},
    {"k", 'k', CLASP_ARG_INT, A(k), "K", "results (default 10)", NULL, 0, 1, 0, NULL, NULL},
    CLASP_ARG_PRECISION(A(precision), "fp32"),
    CLASP_ARG_THREADS(A(threads), "1"),
    CLASP_ARG_JSON(A(json), "results as JSON on stdout"),
    CLASP_ARG_END,
};
#undef A

/* The keys of the index rows from its sidecar, or NULL (rows are then printed by number). */
static const cJSON *load_keys_(const search_args *a, int64_t N, cJSON **side) {
    char path[4200] = "";
    if (a->sidecar)
        snprintf(path, sizeof path, "%s", a->sidecar);
    else if (strcmp(clasp_args_display(a->index), "-") != 0)
        clasp_cli_sidecar_path(a->index, path, sizeof path);
    *side = NULL;
    if (path[0] && clasp_json_load(path, side) != CLASP_OK) {
        fprintf(stderr, "clasp search: %s (printing row numbers)\n", clasp_last_error());
        *side = NULL;
    }
    const cJSON *keys = *side ? cJSON_GetObjectItemCaseSensitive(*side, "keys") : NULL;
    if (keys && (!cJSON_IsArray(keys) || cJSON_GetArraySize(keys) != N)) {
        fprintf(stderr, "clasp search: %s's sidecar has %d keys for %lld rows\n",
                clasp_args_display(a->index), cJSON_IsArray(keys) ? cJSON_GetArraySize(keys) : -1,
                (long long)N);
        keys = NULL;
    }
    return keys;
}

/* The key of a result row: from the sidecar's keys (npy) or the index folder. */
typedef struct key_source {
    const cJSON *keys;     /* .npy: the sidecar's "keys", or NULL */
    const clasp_index *ix; /* index folder, or NULL */
} key_source;

static const char *key_of_(const key_source *ks, int64_t row, char *buf, size_t cap) {
    const char *k = NULL;
    if (ks->ix) {
        k = clasp_index_key(ks->ix, row);
    } else if (ks->keys) {
        const cJSON *kj = cJSON_GetArrayItem(ks->keys, (int)row);
        k = cJSON_IsString(kj) ? kj->valuestring : NULL;
    }
    if (k) return k;
    snprintf(buf, cap, "%lld", (long long)row);
    return buf;
}

static clasp_status embed_query_(clasp_embedder *em, const search_args *sa, float *q) {
    const char *text = sa->text, *image = sa->image, *audio = sa->audio;
    return text    ? clasp_embedder_texts(em, &text, 1, q)
           : audio ? clasp_embedder_audio_files(em, &audio, 1, q)
                   : clasp_embedder_image_files(em, &image, 1, q);
}

/* Prints the results (text lines, or JSON with `extra`'s fields added, extra consumed). */
static void print_results_(const search_args *sa, const int64_t *idx, const float *sc,
                           const key_source *ks, cJSON *extra) {
    cJSON *res = sa->json ? cJSON_CreateArray() : NULL;
    for (int i = 0; i < sa->k && idx[i] >= 0; i++) {
        char rowname[32];
        const char *key = key_of_(ks, idx[i], rowname, sizeof rowname);
        if (sa->json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "rank", i + 1);
            cJSON_AddStringToObject(o, "key", key);
            cJSON_AddNumberToObject(o, "row", (double)idx[i]);
            cJSON_AddNumberToObject(o, "score", (double)sc[i]);
            cJSON_AddItemToArray(res, o);
        } else {
            printf("%3d  %.6f  %s\n", i + 1, (double)sc[i], key);
        }
    }
    if (!sa->json) {
        cJSON_Delete(extra);
        return;
    }
    cJSON *o = extra ? extra : cJSON_CreateObject();
    const char *shown = sa->text ? sa->text : clasp_args_display(sa->audio ? sa->audio : sa->image);
    cJSON_AddStringToObject(o, "query", shown);
    cJSON_AddStringToObject(o, "modality", sa->text ? "text" : sa->audio ? "audio" : "image");
    cJSON_AddItemToObject(o, "results", res);
    clasp_cli_print_json(o, false);
}

/* --index IDX, an index folder: refuses another model's hash unless --allow-model-mismatch. */
static int search_folder_(const search_args *sa) {
    clasp_index *ix;
    if (clasp_index_open(sa->index, &ix) != CLASP_OK) return clasp_args_fail(search_table);
    clasp_embedder em;
    if (clasp_cli_open_embedder(sa->model, sa->threads, 1, sa->precision, true, &em) != CLASP_OK) {
        clasp_index_close(ix);
        return clasp_args_fail(search_table);
    }
    const clasp_index_meta *m = clasp_index_get_meta(ix);
    clasp_status s = clasp_index_check_model(ix, em.model_hash);
    if (s != CLASP_OK && sa->allow_mismatch) {
        fprintf(stderr, "clasp search: warning (--allow-model-mismatch): %s\n", clasp_last_error());
        s = CLASP_OK;
    }
    if (s == CLASP_OK && m->dim != em.D)
        s = clasp_set_error(CLASP_ERR_FORMAT, "%s: vectors of dim %d, the model embeds dim %d",
                            sa->index, m->dim, em.D);
    float *q = malloc((size_t)em.D * sizeof(float));
    int64_t *idx = malloc((size_t)sa->k * sizeof(int64_t));
    float *sc = malloc((size_t)sa->k * sizeof(float));
    if (s == CLASP_OK && (!q || !idx || !sc)) s = clasp_set_error(CLASP_ERR_NOMEM, "out of memory");
    if (s == CLASP_OK) s = embed_query_(&em, sa, q);
    if (s == CLASP_OK) s = clasp_index_search(ix, q, 1, sa->k, sa->search_param, idx, sc);
    int rc = 0;
    if (s != CLASP_OK) {
        rc = clasp_args_fail(search_table);
    } else {
        char mh[17], ih[17], iv[17];
        clasp_hash_hex(em.model_hash, mh);
        clasp_hash_hex(m->model_hash, ih);
        clasp_hash_hex(m->index_version, iv);
        cJSON *extra = sa->json ? cJSON_CreateObject() : NULL;
        if (extra) {
            cJSON_AddStringToObject(extra, "model_hash", mh);
            cJSON_AddStringToObject(extra, "index_model_hash", ih);
            cJSON_AddStringToObject(extra, "index_version", iv);
            cJSON_AddStringToObject(extra, "index_type", m->type);
        }
        key_source ks = {NULL, ix};
        print_results_(sa, idx, sc, &ks, extra);
    }
    free(q), free(idx), free(sc);
    clasp_embedder_close(&em);
    clasp_index_close(ix);
    return rc;
}

int clasp_cmd_search(int argc, char **argv) {
    search_args sa = {.k = 10, .threads = 1};
    int rc;
    if (!clasp_args_parse(search_table, &sa, argc, argv, &rc)) return rc;
    if ((sa.text != NULL) + (sa.image != NULL) + (sa.audio != NULL) != 1)
        return clasp_args_usage_error(search_table, "need one of --text, --image, --audio");
    if (clasp_is_dir(sa.index)) return search_folder_(&sa);
    const char *index = sa.index;
    int k = sa.k;
    float *X = NULL;
    int64_t N = 0, D = 0;
    if (clasp_npy_read_f32(index, &X, &N, &D) != CLASP_OK) return clasp_args_fail(search_table);
    cJSON *side;
    const cJSON *keys = load_keys_(&sa, N, &side);
    clasp_embedder em;
    if (clasp_cli_open_embedder(sa.model, sa.threads, 1, sa.precision, true, &em) != CLASP_OK) {
        free(X);
        cJSON_Delete(side);
        return clasp_args_fail(search_table);
    }
    rc = 0;
    index = clasp_args_display(index);
    const cJSON *mh = side ? cJSON_GetObjectItemCaseSensitive(side, "model_hash") : NULL;
    char hex[17];
    clasp_hash_hex(em.model_hash, hex);
    if (cJSON_IsString(mh) && strcmp(mh->valuestring, hex) != 0)
        fprintf(stderr, "clasp search: warning: %s was embedded with model %s, this is %s\n", index,
                mh->valuestring, hex);
    float *q = malloc((size_t)em.D * sizeof(float));
    int64_t *idx = malloc((size_t)k * sizeof(int64_t));
    float *sc = malloc((size_t)k * sizeof(float));
    clasp_status s = q && idx && sc ? CLASP_OK : clasp_set_error(CLASP_ERR_NOMEM, "out of memory");
    if (s == CLASP_OK && D != em.D)
        s = clasp_set_error(CLASP_ERR_FORMAT, "%s: rows of dim %lld, the model embeds dim %d",
                            index, (long long)D, em.D);
    if (s == CLASP_OK) s = embed_query_(&em, &sa, q);
    if (s == CLASP_OK) s = clasp_search_topk(X, N, (int)D, q, 1, k, idx, sc);
    if (s != CLASP_OK) {
        rc = clasp_args_fail(search_table);
    } else {
        key_source ks = {keys, NULL};
        print_results_(&sa, idx, sc, &ks, NULL);
    }
    free(q), free(idx), free(sc), free(X);
    cJSON_Delete(side);
    clasp_embedder_close(&em);
    return rc;
}
