/* cmd_search.c: `clasp search --model DIR --index OUT.npy (--text Q | --image F | --audio F)
 * -k K`: embeds the query with the model and prints the K stored rows of highest cosine (exact, one
 * sgemv over the whole index), with the keys of the index's sidecar OUT.json. */
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

/* The option values of one invocation; the table below points into it. */
typedef struct search_args {
    const char *model, *index, *sidecar, *text, *image, *audio;
    int k, threads;
    int precision;
    bool json;
} search_args;

#define A(field) offsetof(search_args, field)
static const clasp_arg search_table[] = {
    CLASP_ARG_COMMAND(
        "search",
        "--model DIR --index OUT.npy (--text QUERY | --image FILE |\n"
        " --audio FILE) [-k K] [--threads N] [--json]",
        "Prints the K entries of an index written by `clasp embed` with the highest cosine\n"
        "similarity to the query (exact search), with their keys from the sidecar OUT.json (or\n"
        "the file --sidecar names).\n\n",
        NULL),
    CLASP_ARG_MODEL(A(model), "DIR"),
    {"index", 0, CLASP_ARG_STRING, A(index), "OUT.npy",
     "embeddings written by `clasp embed` ('-' = stdin)", NULL, CLASP_ARG_REQ | CLASP_ARG_IN, 0, 0,
     NULL, NULL},
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

int clasp_cmd_search(int argc, char **argv) {
    search_args sa = {.k = 10, .threads = 1};
    int rc;
    if (!clasp_args_parse(search_table, &sa, argc, argv, &rc)) return rc;
    if ((sa.text != NULL) + (sa.image != NULL) + (sa.audio != NULL) != 1)
        return clasp_args_usage_error(search_table, "need one of --text, --image, --audio");
    const char *index = sa.index, *text = sa.text, *image = sa.image, *audio = sa.audio;
    int k = sa.k;
    bool json = sa.json;
    float *X = NULL;
    int64_t N = 0, D = 0;
    if (clasp_npy_read_f32(index, &X, &N, &D) != CLASP_OK) return clasp_args_fail(search_table);
    cJSON *side;
    const cJSON *keys = load_keys_(&sa, N, &side);
    clasp_embedder em;
    if (clasp_cli_open_embedder(sa.model, sa.threads, 1, sa.precision, &em) != CLASP_OK) {
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
    if (s == CLASP_OK)
        s = text    ? clasp_embedder_texts(&em, &text, 1, q)
            : audio ? clasp_embedder_audio_files(&em, &audio, 1, q)
                    : clasp_embedder_image_files(&em, &image, 1, q);
    if (s == CLASP_OK) s = clasp_search_topk(X, N, (int)D, q, 1, k, idx, sc);
    if (s != CLASP_OK) {
        rc = clasp_args_fail(search_table);
    } else {
        cJSON *res = json ? cJSON_CreateArray() : NULL;
        for (int i = 0; i < k && idx[i] >= 0; i++) {
            const cJSON *kj = keys ? cJSON_GetArrayItem(keys, (int)idx[i]) : NULL;
            char rowname[32];
            snprintf(rowname, sizeof rowname, "%lld", (long long)idx[i]);
            const char *key = cJSON_IsString(kj) ? kj->valuestring : rowname;
            if (json) {
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
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "query",
                                    text ? text : clasp_args_display(audio ? audio : image));
            cJSON_AddStringToObject(o, "modality", text ? "text" : audio ? "audio" : "image");
            cJSON_AddItemToObject(o, "results", res);
            clasp_cli_print_json(o, false);
        }
    }
    free(q), free(idx), free(sc), free(X);
    cJSON_Delete(side);
    clasp_embedder_close(&em);
    return rc;
}
