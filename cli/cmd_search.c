/* cmd_search.c: `clasp search --model DIR --index OUT.npy (--text Q | --image F | --audio F)
 * -k K`: embeds the query with the model and prints the K stored rows of highest cosine (exact, one
 * sgemv over the whole index), with the keys of the index's sidecar OUT.json. */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/hash.h"
#include "core/json.h"
#include "export/export.h"
#include "eval/retrieval.h"

static void usage_(FILE *f) {
    fprintf(f, "usage: clasp search --model DIR --index OUT.npy (--text QUERY | --image FILE |\n"
               "                    --audio FILE) [-k K] [--threads N] [--json]\n\n"
               "Prints the K entries of an index written by `clasp embed` with the highest cosine\n"
               "similarity to the query (exact search), with their keys from OUT.json.\n"
               "  -k K        results (default 10)\n"
               "  --json      results as JSON on stdout\n");
}

static cJSON *load_sidecar_(const char *npy) {
    char path[4200];
    size_t len = strlen(npy);
    if (len > 4 && !strcmp(npy + len - 4, ".npy"))
        snprintf(path, sizeof path, "%.*s.json", (int)(len - 4), npy);
    else
        snprintf(path, sizeof path, "%s.json", npy);
    cJSON *j = NULL;
    if (clasp_json_load(path, &j) != CLASP_OK) return NULL;
    return j;
}

int clasp_cmd_search(int argc, char **argv) {
    const char *model = NULL, *index = NULL, *text = NULL, *image = NULL, *audio = NULL;
    int k = 10, threads = 1;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage_(stdout);
            return 0;
        } else if (!strcmp(a, "--model") && i + 1 < argc) {
            model = argv[++i];
        } else if (!strcmp(a, "--index") && i + 1 < argc) {
            index = argv[++i];
        } else if (!strcmp(a, "--text") && i + 1 < argc) {
            text = argv[++i];
        } else if (!strcmp(a, "--image") && i + 1 < argc) {
            image = argv[++i];
        } else if (!strcmp(a, "--audio") && i + 1 < argc) {
            audio = argv[++i];
        } else if ((!strcmp(a, "-k") || !strcmp(a, "--k")) && i + 1 < argc) {
            k = atoi(argv[++i]);
        } else if (!strcmp(a, "--threads") && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else {
            fprintf(stderr, "clasp search: unknown or incomplete option %s\n", a);
            usage_(stderr);
            return 2;
        }
    }
    if (!model || !index || (text != NULL) + (image != NULL) + (audio != NULL) != 1 || k < 1 ||
        threads < 1) {
        fprintf(stderr,
                "clasp search: need --model, --index, one of --text/--image/--audio, k >= 1\n");
        usage_(stderr);
        return 2;
    }
    float *X = NULL;
    int64_t N = 0, D = 0;
    if (clasp_npy_read_f32(index, &X, &N, &D) != CLASP_OK) {
        fprintf(stderr, "clasp search: %s\n", clasp_last_error());
        return 1;
    }
    cJSON *side = load_sidecar_(index);
    if (!side) fprintf(stderr, "clasp search: %s (printing row numbers)\n", clasp_last_error());
    const cJSON *keys = side ? cJSON_GetObjectItemCaseSensitive(side, "keys") : NULL;
    if (keys && (!cJSON_IsArray(keys) || cJSON_GetArraySize(keys) != N)) {
        fprintf(stderr, "clasp search: %s's sidecar has %d keys for %lld rows\n", index,
                cJSON_IsArray(keys) ? cJSON_GetArraySize(keys) : -1, (long long)N);
        keys = NULL;
    }
    clasp_embedder em;
    if (clasp_embedder_open(model, threads, 1, &em) != CLASP_OK) {
        fprintf(stderr, "clasp search: %s\n", clasp_last_error());
        free(X);
        cJSON_Delete(side);
        return 1;
    }
    int rc = 0;
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
        fprintf(stderr, "clasp search: %s\n", clasp_last_error());
        rc = 1;
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
            cJSON_AddStringToObject(o, "query", text ? text : audio ? audio : image);
            cJSON_AddStringToObject(o, "modality", text ? "text" : audio ? "audio" : "image");
            cJSON_AddItemToObject(o, "results", res);
            char *t = cJSON_PrintUnformatted(o);
            if (t) printf("%s\n", t);
            cJSON_free(t);
            cJSON_Delete(o);
        }
    }
    free(q), free(idx), free(sc), free(X);
    cJSON_Delete(side);
    clasp_embedder_close(&em);
    return rc;
}
