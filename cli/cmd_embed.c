/* cmd_embed.c: `clasp embed --model DIR (--image FILES... | --audio FILES... | --text FILE |
 * --shards SPEC) -o OUT.npy`: embeds inputs with an export (or checkpoint) into a float32
 * (N, D) .npy of L2-normalised rows, plus a sidecar OUT.json: {"format": "clasp-embeddings",
 * "version": 1, "model": DIR, "model_hash": xxh64 of model.safetensors (hex), "modality":
 * "image"|"text"|"audio", "dim": D, "count": N, "keys": [...]}. Keys are the file names
 * (--image, --audio), the 1-based line numbers as strings (--text; empty lines are skipped) or
 * the sample keys (--shards). `-o -` writes the .npy to stdout and the sidecar only where
 * --sidecar FILE says. */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/array.h"
#include "core/hash.h"
#include "core/json.h"
#include "export/export.h"
#include "pipeline/loader.h"
#include "eval/retrieval.h"

/* The option values of one invocation; the table below points into it. */
typedef struct embed_args {
    const char *model, *text, *shards, *out, *sidecar;
    clasp_arg_list images, audio;
    int modality; /* CHOICE index into "image|text|audio"; -1: not given */
    int batch, threads, workers;
    int precision;
    bool json;
} embed_args;

#define A(field) offsetof(embed_args, field)
static const clasp_arg embed_table[] = {
    CLASP_ARG_COMMAND(
        "embed",
        "--model DIR (--image FILES... | --audio FILES... | --text FILE |\n"
        " --shards SPEC) -o OUT.npy [--modality image|text|audio]\n"
        " [--batch-size B] [--threads N] [--workers W] [--json]",
        "Embeds inputs with an export (or a checkpoint or run folder) into OUT.npy (float32,\n"
        "N x D, unit rows) and the sidecar OUT.json (model hash, modality, keys).\n\n",
        NULL),
    CLASP_ARG_MODEL(A(model), "DIR"),
    {"image", 0, CLASP_ARG_LIST, A(images), "FILES...",
     "image files (keys: the file names; '-': one image from stdin)", NULL, CLASP_ARG_IN, 0, 0,
     NULL, NULL},
    {"audio", 0, CLASP_ARG_LIST, A(audio), "FILES...",
     "audio files (WAV, FLAC, OGG, Opus, MP3; keys: the file names; '-': one file from stdin), "
     "prepared as the export's preprocess.json says (mono, the model's rate, head of a long file, "
     "padding of a short one)",
     NULL, CLASP_ARG_IN, 0, 0, NULL, NULL},
    {"text", 0, CLASP_ARG_STRING, A(text), "FILE",
     "one text per line, '-' = stdin (keys: line numbers; empty lines skipped)", NULL, CLASP_ARG_IN,
     0, 0, NULL, NULL},
    {"shards", 0, CLASP_ARG_STRING, A(shards), "SPEC",
     "samples of shards; --modality image, audio (the audio field) or text (the first caption); "
     "default: image if the model has an image tower, else audio, else text. Keys: sample keys",
     NULL, 0, 0, 0, NULL, NULL},
    {"modality", 0, CLASP_ARG_CHOICE, A(modality), NULL, "what to embed of --shards", NULL, 0, 0, 0,
     "image|text|audio", NULL},
    {"out", 'o', CLASP_ARG_STRING, A(out), "OUT.npy",
     "the embeddings; '-' writes the .npy to stdout (then the sidecar is written only with "
     "--sidecar)",
     NULL, CLASP_ARG_REQ | CLASP_ARG_OUT, 0, 0, NULL, NULL},
    {"sidecar", 0, CLASP_ARG_STRING, A(sidecar), "FILE",
     "where the sidecar JSON goes (default: OUT.npy with .json for .npy)", NULL, CLASP_ARG_OUT, 0,
     0, NULL, NULL},
    CLASP_ARG_BATCH(A(batch)),
    CLASP_ARG_PRECISION(A(precision), "fp32"),
    CLASP_ARG_THREADS(A(threads), "1"),
    CLASP_ARG_WORKERS(A(workers), " for --shards"),
    CLASP_ARG_JSON(A(json), "summary on stdout"),
    CLASP_ARG_END,
};
#undef A

bool clasp_cli_keys_add(clasp_cli_keys *l, const char *s) {
    char **p = clasp_grow(l->k, l->n, &l->cap, sizeof *p, 256);
    if (!p) return false;
    l->k = p;
    l->k[l->n] = strdup(s);
    return l->k[l->n++] != NULL;
}

void clasp_cli_keys_free(clasp_cli_keys *l) {
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

static clasp_status embed_text_file_(clasp_embedder *em, const char *path, clasp_cli_keys *keys,
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
            char **t = clasp_grow(texts, nt, &cap, sizeof *t, 256);
            if (!t)
                s = clasp_set_error(CLASP_ERR_NOMEM, "out of memory");
            else
                texts = t;
            if (s == CLASP_OK) {
                texts[nt++] = p;
                if (!clasp_cli_keys_add(keys, ln))
                    s = clasp_set_error(CLASP_ERR_NOMEM, "out of memory");
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

clasp_status clasp_cli_embed_shards(clasp_embedder *em, const char *spec, clasp_tower t,
                                    int workers, clasp_cli_keys *keys, float **out, size_t *n) {
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
            if (!clasp_cli_keys_add(keys, b->keys[i]))
                s = clasp_set_error(CLASP_ERR_NOMEM, "out of memory");
        if (s != CLASP_OK) break;
        *n += b->n;
    }
    clasp_data_stats *st = clasp_loader_stats(L);
    uint64_t skipped = st ? clasp_data_stats_total_skipped(st) : 0;
    if (skipped) fprintf(stderr, "clasp embed: %lld samples skipped\n", (long long)skipped);
    clasp_loader_close(L);
    return s;
}

static clasp_status write_sidecar_(const char *path, const clasp_embedder *em, const char *model,
                                   const char *modality, size_t n, const clasp_cli_keys *keys) {
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

/* Embeds the one input of e with em into *emb (n rows), the keys into keys. */
static clasp_status embed_input_(clasp_embedder *em, const embed_args *e, clasp_tower tower,
                                 const char *mod, clasp_cli_keys *keys, float **emb, size_t *n) {
    size_t D = (size_t)em->D;
    if (!clasp_embedder_has(em, tower))
        return clasp_set_error(CLASP_ERR_CONFIG, "%s: the model has no %s tower", e->model, mod);
    if (e->images.n || e->audio.n) {
        const clasp_arg_list *l = e->images.n ? &e->images : &e->audio;
        *emb = malloc((size_t)l->n * D * sizeof(float));
        clasp_status s = !*emb        ? clasp_set_error(CLASP_ERR_NOMEM, "out of memory")
                         : e->audio.n ? clasp_embedder_audio_files(em, l->v, l->n, *emb)
                                      : clasp_embedder_image_files(em, l->v, l->n, *emb);
        for (int i = 0; i < l->n && s == CLASP_OK; i++)
            if (!clasp_cli_keys_add(keys, clasp_args_display(l->v[i])))
                s = clasp_set_error(CLASP_ERR_NOMEM, "out of memory");
        *n = (size_t)l->n;
        return s;
    }
    if (e->text) return embed_text_file_(em, e->text, keys, emb, n);
    clasp_status s = clasp_cli_embed_shards(em, e->shards, tower, e->workers, keys, emb, n);
    if (s == CLASP_OK && *n == 0)
        s = clasp_set_error(CLASP_ERR_FORMAT, "%s: no usable sample", e->shards);
    return s;
}

/* The modality embedded: the input's, or for --shards --modality or the model's first tower of
 * image, audio, text. */
static const char *modality_(const embed_args *e, const clasp_embedder *em) {
    static const char *const names[] = {"image", "text", "audio"};
    if (e->text) return "text";
    if (e->audio.n) return "audio";
    if (e->images.n) return "image";
    if (e->modality >= 0) return names[e->modality];
    return clasp_embedder_has(em, CLASP_TOWER_IMAGE)   ? "image"
           : clasp_embedder_has(em, CLASP_TOWER_AUDIO) ? "audio"
                                                       : "text";
}

int clasp_cmd_embed(int argc, char **argv) {
    embed_args e = {.modality = -1, .batch = 256, .threads = 1, .workers = 1};
    int rc;
    if (!clasp_args_parse(embed_table, &e, argc, argv, &rc)) return rc;
    if ((e.images.n > 0) + (e.audio.n > 0) + (e.text != NULL) + (e.shards != NULL) != 1)
        return clasp_args_usage_error(embed_table,
                                      "need exactly one of --image, --audio, --text, --shards");
    const char *out_name = clasp_args_display(e.out);
    char sidecar[4200] = "";
    if (e.sidecar)
        snprintf(sidecar, sizeof sidecar, "%s", e.sidecar);
    else if (strcmp(out_name, "-") != 0)
        clasp_cli_sidecar_path(e.out, sidecar, sizeof sidecar);
    clasp_embedder em;
    if (clasp_cli_open_embedder(e.model, e.threads, e.batch, e.precision, true, &em) != CLASP_OK)
        return clasp_args_fail(embed_table);
    const char *mod = modality_(&e, &em);
    clasp_tower tower = !strcmp(mod, "text")    ? CLASP_TOWER_TEXT
                        : !strcmp(mod, "audio") ? CLASP_TOWER_AUDIO
                                                : CLASP_TOWER_IMAGE;
    clasp_cli_keys keys = {0};
    float *emb = NULL;
    size_t n = 0, D = (size_t)em.D;
    clasp_status s = embed_input_(&em, &e, tower, mod, &keys, &emb, &n);
    if (s == CLASP_OK) s = clasp_npy_write_f32(e.out, emb, (int64_t)n, (int64_t)D);
    if (s == CLASP_OK && sidecar[0]) s = write_sidecar_(sidecar, &em, e.model, mod, n, &keys);
    rc = 0;
    if (s != CLASP_OK) {
        rc = clasp_args_fail(embed_table);
    } else {
        char hex[17];
        clasp_hash_hex(em.model_hash, hex);
        fprintf(stderr, "clasp embed: %zu %s embeddings of dim %zu -> %s\n", n, mod, D,
                strcmp(out_name, "-") ? out_name : "stdout");
        if (e.json)
            printf("{\"output\": \"%s\", \"count\": %zu, \"dim\": %zu, \"modality\": \"%s\", "
                   "\"model_hash\": \"%s\"}\n",
                   out_name, n, D, mod, hex);
    }
    free(emb);
    clasp_cli_keys_free(&keys);
    clasp_embedder_close(&em);
    return rc;
}
