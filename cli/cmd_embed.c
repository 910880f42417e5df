/* cmd_embed.c: `clasp embed --model DIR (--image FILES... | --audio FILES... | --text FILE |
 * --shards SPEC) -o OUT.npy`: embeds inputs with an export (or checkpoint) into a float32
 * (N, D) .npy of L2-normalised rows, plus a sidecar OUT.json: {"format": "clasp-embeddings",
 * "version": 1, "model": DIR, "model_hash": xxh64 of model.safetensors (hex), "modality":
 * "image"|"text"|"audio", "dim": D, "count": N, "keys": [...]}. Keys are the file names
 * (--image, --audio), the 1-based line numbers as strings (--text; empty lines are skipped) or
 * the sample keys (--shards). */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/hash.h"
#include "core/json.h"
#include "export/export.h"
#include "pipeline/loader.h"
#include "eval/retrieval.h"

static void usage_(FILE *f) {
    fprintf(f,
            "usage: clasp embed --model DIR (--image FILES... | --audio FILES... | --text FILE |\n"
            "                   --shards SPEC) -o OUT.npy [--modality image|text|audio]\n"
            "                   [--batch-size B] [--threads N] [--workers W] [--json]\n\n"
            "Embeds inputs with an export (or a checkpoint or run folder) into OUT.npy (float32,\n"
            "N x D, unit rows) and OUT.json (model hash, modality, keys).\n"
            "  --image FILES...   image files (keys: the file names)\n"
            "  --audio FILES...   audio files (WAV, FLAC, OGG, Opus, MP3; keys: the file names),\n"
            "                     prepared as the export's preprocess.json says (mono, the\n"
            "                     model's rate, head of a long file, padding of a short one)\n"
            "  --text FILE        one text per line (keys: line numbers; empty lines skipped)\n"
            "  --shards SPEC      samples of shards; --modality image, audio (the audio field)\n"
            "                     or text (the first caption); default: image if the model\n"
            "                     has an image tower, else audio, else text. Keys: sample keys\n"
            "  --batch-size B     rows per engine call (default 256)\n"
            "  --threads N        compute threads (default 1)\n"
            "  --workers W        decode threads for --shards (default 1)\n"
            "  --json             summary on stdout\n");
}

typedef struct key_list {
    char **k;
    size_t n, cap;
} key_list;

static bool key_add_(key_list *l, const char *s) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        char **p = realloc(l->k, cap * sizeof *p);
        if (!p) return false;
        l->k = p;
        l->cap = cap;
    }
    l->k[l->n] = strdup(s);
    return l->k[l->n++] != NULL;
}

static void key_free_(key_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->k[i]);
    free(l->k);
}

/* Grows the (rows, D) output to hold `need` rows. */
static bool grow_(float **out, size_t *cap, size_t need, size_t D) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    float *p = realloc(*out, c * D * sizeof(float));
    if (!p) return false;
    *out = p;
    *cap = c;
    return true;
}

static clasp_status embed_text_file_(clasp_embedder *em, const char *path, key_list *keys,
                                     float **out, size_t *n) {
    char *buf;
    size_t len;
    CLASP_TRY(clasp_read_file(path, (size_t)1 << 31, &buf, &len));
    char **texts = NULL;
    size_t nt = 0, cap = 0;
    clasp_status s = CLASP_OK;
    size_t line = 0;
    for (char *p = buf; p && *p && s == CLASP_OK;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        line++;
        bool blank = true;
        for (const char *q = p; *q; q++)
            if (*q != ' ' && *q != '\t' && *q != '\r') blank = false;
        if (!blank) {
            char ln[32];
            snprintf(ln, sizeof ln, "%zu", line);
            if (nt == cap) {
                cap = cap ? 2 * cap : 256;
                char **t = realloc(texts, cap * sizeof *t);
                if (!t)
                    s = clasp_set_error(CLASP_ERR_NOMEM, "out of memory");
                else
                    texts = t;
            }
            if (s == CLASP_OK) {
                texts[nt++] = p;
                if (!key_add_(keys, ln)) s = clasp_set_error(CLASP_ERR_NOMEM, "out of memory");
            }
        }
        p = nl ? nl + 1 : NULL;
    }
    size_t D = (size_t)em->D, ocap = 0;
    if (s == CLASP_OK && nt == 0) s = clasp_set_error(CLASP_ERR_FORMAT, "%s: no text lines", path);
    if (s == CLASP_OK && !grow_(out, &ocap, nt, D))
        s = clasp_set_error(CLASP_ERR_NOMEM, "out of memory");
    if (s == CLASP_OK) {
        s = clasp_embedder_texts(em, (const char *const *)texts, (int)nt, *out);
        if (s != CLASP_OK) {
            /* name the line rather than the index */
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", clasp_last_error());
            s = clasp_set_error(s, "%s: %s", path, msg);
        }
    }
    *n = nt;
    free(texts);
    free(buf);
    return s;
}

static clasp_status embed_shards_(clasp_embedder *em, const char *spec, clasp_tower t, int workers,
                                  key_list *keys, float **out, size_t *n) {
    clasp_loader_config lc = em->lc;
    clasp_loader_config_eval(&lc, spec, (size_t)em->batch_size, workers);
    lc.required = t == CLASP_TOWER_TEXT    ? CLASP_NEED_TEXT
                  : t == CLASP_TOWER_AUDIO ? CLASP_NEED_AUDIO
                                           : CLASP_NEED_IMAGE;
    clasp_loader *L;
    CLASP_TRY(clasp_loader_open(&lc, NULL, &L));
    size_t D = (size_t)em->D, cap = 0;
    clasp_status s = CLASP_OK;
    *n = 0;
    for (;;) {
        const clasp_batch *b;
        bool end;
        s = clasp_loader_next(L, &b, &end);
        if (s != CLASP_OK || end) break;
        if (!grow_(out, &cap, *n + b->n, D)) {
            s = clasp_set_error(CLASP_ERR_NOMEM, "out of memory");
            break;
        }
        const void *in = t == CLASP_TOWER_TEXT    ? (const void *)b->tokens
                         : t == CLASP_TOWER_AUDIO ? (const void *)b->audio
                                                  : (const void *)b->images;
        s = clasp_embedder_embed_inputs(em, t, in, (int)b->n, *out + *n * D);
        for (size_t i = 0; i < b->n && s == CLASP_OK; i++)
            if (!key_add_(keys, b->keys[i])) s = clasp_set_error(CLASP_ERR_NOMEM, "out of memory");
        if (s != CLASP_OK) break;
        *n += b->n;
    }
    clasp_data_stats *st = clasp_loader_stats(L);
    uint64_t skipped = st ? clasp_data_stats_total_skipped(st) : 0;
    if (skipped) fprintf(stderr, "clasp embed: %lld samples skipped\n", (long long)skipped);
    clasp_loader_close(L);
    return s;
}

static clasp_status write_sidecar_(const char *npy, const clasp_embedder *em, const char *model,
                                   const char *modality, size_t n, const key_list *keys) {
    char path[4200];
    size_t len = strlen(npy);
    if (len > 4 && !strcmp(npy + len - 4, ".npy"))
        snprintf(path, sizeof path, "%.*s.json", (int)(len - 4), npy);
    else
        snprintf(path, sizeof path, "%s.json", npy);
    char hex[17];
    clasp_hash_hex(em->model_hash, hex);
    cJSON *j = cJSON_CreateObject();
    cJSON *ka = cJSON_CreateArray();
    bool ok =
        j && ka && cJSON_AddStringToObject(j, "format", "clasp-embeddings") &&
        cJSON_AddNumberToObject(j, "version", 1) && cJSON_AddStringToObject(j, "model", model) &&
        cJSON_AddStringToObject(j, "model_hash", hex) &&
        cJSON_AddStringToObject(j, "modality", modality) &&
        cJSON_AddNumberToObject(j, "dim", em->D) && cJSON_AddNumberToObject(j, "count", (double)n);
    for (size_t i = 0; ok && i < keys->n; i++) {
        cJSON *s = cJSON_CreateString(keys->k[i]);
        ok = s != NULL;
        if (ok) cJSON_AddItemToArray(ka, s);
    }
    if (ok) {
        cJSON_AddItemToObject(j, "keys", ka);
        ka = NULL;
    }
    clasp_status s =
        ok ? clasp_json_save(path, j) : clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
    cJSON_Delete(ka);
    cJSON_Delete(j);
    return s;
}

int clasp_cmd_embed(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *shards = NULL, *out = NULL, *modality = NULL;
    const char **images = NULL, **audio = NULL;
    int n_images = 0, n_audio = 0, batch = 256, threads = 1, workers = 1;
    bool json = false;
    images = calloc((size_t)argc, sizeof *images);
    audio = calloc((size_t)argc, sizeof *audio);
    if (!images || !audio) {
        free(images);
        free(audio);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage_(stdout);
            free(images);
            free(audio);
            return 0;
        } else if (!strcmp(a, "--model") && i + 1 < argc) {
            model = argv[++i];
        } else if (!strcmp(a, "--image")) {
            while (i + 1 < argc && argv[i + 1][0] != '-') images[n_images++] = argv[++i];
        } else if (!strcmp(a, "--audio")) {
            while (i + 1 < argc && argv[i + 1][0] != '-') audio[n_audio++] = argv[++i];
        } else if (!strcmp(a, "--text") && i + 1 < argc) {
            text = argv[++i];
        } else if (!strcmp(a, "--shards") && i + 1 < argc) {
            shards = argv[++i];
        } else if (!strcmp(a, "--modality") && i + 1 < argc) {
            modality = argv[++i];
        } else if (!strcmp(a, "-o") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(a, "--batch-size") && i + 1 < argc) {
            batch = atoi(argv[++i]);
        } else if (!strcmp(a, "--threads") && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(a, "--workers") && i + 1 < argc) {
            workers = atoi(argv[++i]);
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else {
            fprintf(stderr, "clasp embed: unknown or incomplete option %s\n", a);
            usage_(stderr);
            free(images);
            free(audio);
            return 2;
        }
    }
    int sources = (n_images > 0) + (n_audio > 0) + (text != NULL) + (shards != NULL);
    if (!model || !out || sources != 1 || batch < 1 || threads < 1 || workers < 1 ||
        (modality && strcmp(modality, "image") && strcmp(modality, "text") &&
         strcmp(modality, "audio"))) {
        fprintf(stderr, "clasp embed: need --model, -o and exactly one of --image, --audio, "
                        "--text, --shards (positive --batch-size/--threads/--workers; "
                        "--modality image|text|audio)\n");
        usage_(stderr);
        free(images);
        free(audio);
        return 2;
    }
    clasp_embedder em;
    if (clasp_embedder_open(model, threads, batch, &em) != CLASP_OK) {
        fprintf(stderr, "clasp embed: %s\n", clasp_last_error());
        free(images);
        free(audio);
        return 1;
    }
    const char *mod = text ? "text" : n_audio ? "audio" : n_images ? "image" : modality;
    if (!mod) /* --shards without --modality: the model's first tower of image, audio, text */
        mod = clasp_embedder_has(&em, CLASP_TOWER_IMAGE)   ? "image"
              : clasp_embedder_has(&em, CLASP_TOWER_AUDIO) ? "audio"
                                                           : "text";
    clasp_tower tower = !strcmp(mod, "text")    ? CLASP_TOWER_TEXT
                        : !strcmp(mod, "audio") ? CLASP_TOWER_AUDIO
                                                : CLASP_TOWER_IMAGE;
    key_list keys = {0};
    float *emb = NULL;
    size_t n = 0;
    clasp_status s = CLASP_OK;
    size_t D = (size_t)em.D;
    if (!clasp_embedder_has(&em, tower)) {
        s = clasp_set_error(CLASP_ERR_CONFIG, "%s: the model has no %s tower", model, mod);
    } else if (n_images || n_audio) {
        const char **files = n_images ? images : audio;
        int nf = n_images ? n_images : n_audio;
        emb = malloc((size_t)nf * D * sizeof(float));
        s = !emb      ? clasp_set_error(CLASP_ERR_NOMEM, "out of memory")
            : n_audio ? clasp_embedder_audio_files(&em, files, nf, emb)
                      : clasp_embedder_image_files(&em, files, nf, emb);
        for (int i = 0; i < nf && s == CLASP_OK; i++)
            if (!key_add_(&keys, files[i])) s = clasp_set_error(CLASP_ERR_NOMEM, "out of memory");
        n = (size_t)nf;
    } else if (text) {
        s = embed_text_file_(&em, text, &keys, &emb, &n);
    } else {
        s = embed_shards_(&em, shards, tower, workers, &keys, &emb, &n);
        if (s == CLASP_OK && n == 0)
            s = clasp_set_error(CLASP_ERR_FORMAT, "%s: no usable sample", shards);
    }
    if (s == CLASP_OK) s = clasp_npy_write_f32(out, emb, (int64_t)n, (int64_t)D);
    if (s == CLASP_OK) s = write_sidecar_(out, &em, model, mod, n, &keys);
    int rc = 0;
    if (s != CLASP_OK) {
        fprintf(stderr, "clasp embed: %s\n", clasp_last_error());
        rc = 1;
    } else {
        char hex[17];
        clasp_hash_hex(em.model_hash, hex);
        fprintf(stderr, "clasp embed: %zu %s embeddings of dim %zu -> %s\n", n, mod, D, out);
        if (json)
            printf("{\"output\": \"%s\", \"count\": %zu, \"dim\": %zu, \"modality\": \"%s\", "
                   "\"model_hash\": \"%s\"}\n",
                   out, n, D, mod, hex);
    }
    free(emb);
    key_free_(&keys);
    clasp_embedder_close(&em);
    free(images);
    free(audio);
    return rc;
}
