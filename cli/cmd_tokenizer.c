/* cmd_tokenizer.c: `clasp tokenizer encode TOKENIZER.json TEXT|--lines FILE` prints token ids
 * (any tokenizer kind); `clasp tokenizer train SPEC|--lines FILE -o tokenizer.json [--vocab N]`
 * trains a byte-level BPE (modalities/tokenizer.h) on the captions of a shard spec (every
 * caption training may draw: the caption rule of pipeline/captions.h) or of a text file with
 * one caption per line, normalised as training normalises them (modalities/text.h). */
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/array.h"
#include "core/json.h"
#include "modalities/text.h"
#include "modalities/tokenizer.h"
#include "pipeline/captions.h"
#include "pipeline/shardlist.h"
#include "pipeline/tar_reader.h"

typedef struct caption_list {
    char **s;
    size_t n, cap;
    size_t invalid; /* captions rejected by normalisation (invalid UTF-8, empty) */
} caption_list;

/* Normalises s[n] and appends it; returns 0, or 1 on out of memory. */
static int add_caption_(caption_list *l, const clasp_text_config *tc, const char *s, size_t n) {
    char *norm;
    size_t nn;
    clasp_status st = clasp_text_normalize(s, n, tc, &norm, &nn);
    if (st == CLASP_ERR_NOMEM) return 1;
    if (st != CLASP_OK) {
        l->invalid++;
        return 0;
    }
    char **p = clasp_grow(l->s, l->n, &l->cap, sizeof *p, 1024);
    if (!p) {
        free(norm);
        return 1;
    }
    l->s = p;
    l->s[l->n++] = norm;
    return 0;
}

static int read_lines_(const char *path, const clasp_text_config *tc, caption_list *l) {
    char *buf;
    size_t n;
    if (clasp_read_file(path, (size_t)1 << 31, &buf, &n) != CLASP_OK) {
        fprintf(stderr, "clasp tokenizer train: %s\n", clasp_last_error());
        return 1;
    }
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || buf[i] == '\n') {
            size_t len = i - start;
            if (len > 0 && add_caption_(l, tc, buf + start, len)) {
                free(buf);
                fprintf(stderr, "clasp tokenizer train: out of memory\n");
                return 1;
            }
            start = i + 1;
        }
    }
    free(buf);
    return 0;
}

static int read_shards_(const char *spec, const clasp_text_config *tc, caption_list *l,
                        size_t *n_shards_ok) {
    clasp_shardlist list;
    if (clasp_shardlist_expand(spec, &list) != CLASP_OK) {
        fprintf(stderr, "clasp tokenizer train: %s\n", clasp_last_error());
        clasp_shardlist_free(&list);
        return 2;
    }
    clasp_field_map fm = clasp_field_map_default();
    int rc = 0;
    for (size_t k = 0; k < list.n && !rc; k++) {
        clasp_tar_reader *r;
        if (clasp_tar_open(list.names[k], NULL, 0, &r) != CLASP_OK) {
            fprintf(stderr, "clasp tokenizer train: skipping %s: %s\n", list.names[k],
                    clasp_last_error());
            continue;
        }
        clasp_sample s = {0};
        bool got;
        while (!rc && clasp_tar_next(r, true, &s, &got) == CLASP_OK && got) {
            if (s.truncated || s.too_large) continue;
            /* every caption training may draw (pipeline/captions.h) */
            clasp_captions caps;
            if (clasp_captions_of(&s, &fm, &caps))
                for (size_t i = 0; i < caps.n && !rc; i++)
                    rc = add_caption_(l, tc, caps.c[i].p, caps.c[i].n);
            clasp_captions_free(&caps);
        }
        if (!clasp_tar_failed(r)) (*n_shards_ok)++;
        clasp_sample_clear(&s);
        clasp_tar_close(r);
    }
    clasp_shardlist_free(&list);
    if (rc) fprintf(stderr, "clasp tokenizer train: out of memory\n");
    return rc;
}

/* The option values of one invocation; the table below points into it. */
typedef struct tokenizer_args {
    const char *spec, *lines, *out;
    int vocab, min_count;
    bool json;
    clasp_text_config tc;
} tokenizer_args;

#define A(field) offsetof(tokenizer_args, field)
static const clasp_arg tokenizer_table[] = {
    CLASP_ARG_COMMAND(
        "tokenizer train",
        "SPEC -o tokenizer.json [--vocab N] [--min-count K]\n"
        "--lines FILE -o tokenizer.json [--vocab N]",
        "Trains a byte-level BPE on captions: the text fields (and json 'captions'/'text')\n"
        "of the shards of SPEC, or the lines of FILE. Captions are normalised as in\n"
        "training (NFKC, control characters stripped, whitespace collapsed).\n\n",
        NULL),
    {"SPEC", 0, CLASP_ARG_POS, A(spec), NULL, NULL, NULL, 0, 0, 0, NULL, NULL},
    {"out", 'o', CLASP_ARG_STRING, A(out), "PATH", "output tokenizer.json (required; '-' = stdout)",
     NULL, CLASP_ARG_REQ | CLASP_ARG_OUT, 0, 0, NULL, NULL},
    {"lines", 0, CLASP_ARG_STRING, A(lines), "FILE",
     "captions, one per line, instead of SPEC ('-' = stdin)", NULL, CLASP_ARG_IN, 0, 0, NULL, NULL},
    {"vocab", 0, CLASP_ARG_INT, A(vocab), "N", "target vocabulary size, >= 259 (default 4096)",
     NULL, 0, CLASP_TOKEN_FIRST_MERGE, CLASP_TOKENIZER_MAX_VOCAB, NULL, NULL},
    {"min-count", 0, CLASP_ARG_INT, A(min_count), "K",
     "stop when no pair occurs K times (default 2)", NULL, 0, 1, 1e9, NULL, NULL},
    {"casefold", 0, CLASP_ARG_FLAG, A(tc.casefold), NULL, "case-fold captions before training",
     NULL, 0, 0, 0, NULL, NULL},
    CLASP_ARG_JSON(A(json), "machine-readable summary on stdout"),
    CLASP_ARG_END,
};
#undef A

int clasp_cmd_tokenizer_train(int argc, char **argv) {
    tokenizer_args t = {.vocab = 4096, .min_count = 2, .tc = clasp_text_default_config()};
    int prc;
    if (!clasp_args_parse(tokenizer_table, &t, argc, argv, &prc)) return prc;
    if (!t.spec == !t.lines)
        return clasp_args_usage_error(tokenizer_table, "need one of SPEC or --lines FILE");
    const char *spec = t.spec, *lines = t.lines, *out = t.out;
    long vocab = t.vocab, min_count = t.min_count;
    bool json = t.json;
    clasp_text_config tc = t.tc;
    caption_list l = {0};
    size_t n_shards = 0;
    int rc = lines ? read_lines_(lines, &tc, &l) : read_shards_(spec, &tc, &l, &n_shards);
    clasp_tokenizer *tok = NULL;
    if (!rc && l.n == 0) {
        fprintf(stderr, "clasp tokenizer train: no usable captions in %s\n",
                lines ? clasp_args_display(lines) : spec);
        rc = 1;
    }
    if (!rc) {
        fprintf(stderr, "clasp tokenizer train: %zu captions (%zu rejected), training to %ld\n",
                l.n, l.invalid, vocab);
        if (clasp_tokenizer_train_bpe((const char *const *)l.s, l.n, (int)vocab, (int)min_count,
                                      &tok) != CLASP_OK ||
            clasp_tokenizer_save(tok, out) != CLASP_OK) {
            fprintf(stderr, "clasp tokenizer train: %s\n", clasp_last_error());
            rc = 1;
        }
    }
    if (!rc) {
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "output", clasp_args_display(out));
            cJSON_AddNumberToObject(o, "captions", (double)l.n);
            cJSON_AddNumberToObject(o, "rejected", (double)l.invalid);
            cJSON_AddNumberToObject(o, "shards", (double)n_shards);
            cJSON_AddNumberToObject(o, "vocab_size", clasp_tokenizer_vocab_size(tok));
            cJSON_AddNumberToObject(o, "merges", clasp_tokenizer_n_merges(tok));
            clasp_cli_print_json(o, false);
        } else {
            const char *shown = clasp_args_display(out);
            fprintf(stderr, "clasp tokenizer train: wrote %s (vocab %d, %d merges)\n",
                    strcmp(shown, "-") ? shown : "stdout", clasp_tokenizer_vocab_size(tok),
                    clasp_tokenizer_n_merges(tok));
        }
    }
    clasp_tokenizer_free(tok);
    for (size_t i = 0; i < l.n; i++) free(l.s[i]);
    free(l.s);
    return rc;
}

/* ---- clasp tokenizer encode ---- */

typedef struct encode_args {
    const char *tokenizer, *text, *lines;
    int context;
    bool raw, json;
} encode_args;

#define A(field) offsetof(encode_args, field)
static const clasp_arg encode_table[] = {
    CLASP_ARG_COMMAND("tokenizer encode",
                      "TOKENIZER.json TEXT [--context N] [--raw] [--json]\n"
                      "TOKENIZER.json --lines FILE [--context N] [--raw] [--json]",
                      "Prints the token ids of TEXT (or of each line of FILE), one line of ids\n"
                      "per text, as training and the C API encode them: bytes and bpe tokenizers\n"
                      "after the caption normalisation, clip_bpe with its own cleaning\n"
                      "(docs/clip_bpe.md). A text that cannot be encoded (invalid UTF-8) prints\n"
                      "an error on stderr and the command exits with 1.\n\n",
                      NULL),
    {"TOKENIZER.json", 0, CLASP_ARG_POS, A(tokenizer), NULL, NULL, NULL, 0, 0, 0, NULL, NULL},
    {"TEXT", 0, CLASP_ARG_POS, A(text), NULL, NULL, NULL, 0, 0, 0, NULL, NULL},
    {"lines", 0, CLASP_ARG_STRING, A(lines), "FILE", "texts, one per line, instead of TEXT", NULL,
     CLASP_ARG_IN, 0, 0, NULL, NULL},
    {"context", 0, CLASP_ARG_INT, A(context), "N",
     "context length (default: the tokenizer's context_length, else 77)", NULL, 0, 2, 1 << 20, NULL,
     NULL},
    {"raw", 0, CLASP_ARG_FLAG, A(raw), NULL,
     "ids only: no start/end tokens, no truncation or padding", NULL, 0, 0, 0, NULL, NULL},
    CLASP_ARG_JSON(A(json), "one JSON object per text: {\"text\", \"ids\"}"),
    CLASP_ARG_END,
};
#undef A

/* Encodes one text and prints its ids; returns 0, or 1 when it cannot be encoded. */
static int encode_one_(const clasp_tokenizer *tok, const encode_args *a, const char *s, size_t n) {
    char *norm = NULL;
    size_t nn = n;
    const char *text = s;
    clasp_status st = CLASP_OK;
    if (clasp_tokenizer_kind(tok) != CLASP_TOKENIZER_CLIP_BPE) {
        clasp_text_config tc = clasp_text_default_config();
        tc.reject_empty = false;
        st = clasp_text_normalize(s, n, &tc, &norm, &nn);
        text = norm;
    }
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (st == CLASP_OK && a->raw) {
        st = clasp_tokenizer_encode_raw(tok, text, nn, &ids, &n_ids);
    } else if (st == CLASP_OK) {
        ids = malloc((size_t)a->context * sizeof *ids);
        n_ids = (size_t)a->context;
        st = ids ? clasp_tokenizer_encode_n(tok, text, nn, ids, a->context, NULL)
                 : clasp_set_error(CLASP_ERR_NOMEM, "%d ids", a->context);
    }
    if (st != CLASP_OK) {
        fprintf(stderr, "clasp tokenizer encode: %s\n", clasp_last_error());
        free(norm);
        free(ids);
        return 1;
    }
    if (a->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "text", cJSON_CreateString(s));
        cJSON *arr = cJSON_AddArrayToObject(o, "ids");
        for (size_t i = 0; i < n_ids; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
        clasp_cli_print_json(o, false);
    } else {
        for (size_t i = 0; i < n_ids; i++) printf(i ? " %d" : "%d", (int)ids[i]);
        printf("\n");
    }
    free(norm);
    free(ids);
    return 0;
}

int clasp_cmd_tokenizer_encode(int argc, char **argv) {
    encode_args a = {0};
    int prc;
    if (!clasp_args_parse(encode_table, &a, argc, argv, &prc)) return prc;
    if (!a.tokenizer) return clasp_args_usage_error(encode_table, "missing TOKENIZER.json");
    if (!a.text == !a.lines)
        return clasp_args_usage_error(encode_table, "need one of TEXT or --lines FILE");
    clasp_tokenizer *tok = NULL;
    if (clasp_tokenizer_load(a.tokenizer, &tok) != CLASP_OK) {
        fprintf(stderr, "clasp tokenizer encode: %s\n", clasp_last_error());
        return 1;
    }
    if (!a.context)
        a.context = clasp_tokenizer_context_length(tok) ? clasp_tokenizer_context_length(tok) : 77;
    int rc = 0;
    if (a.text) {
        rc = encode_one_(tok, &a, a.text, strlen(a.text));
    } else {
        size_t n = 0;
        char *buf = NULL;
        if (clasp_read_file(a.lines, (size_t)1 << 31, &buf, &n) != CLASP_OK) {
            fprintf(stderr, "clasp tokenizer encode: %s\n", clasp_last_error());
            rc = 1;
        }
        for (size_t start = 0, i = 0; buf && i <= n; i++) {
            if (i < n && buf[i] != '\n') continue;
            if (i == n && start == n) break; /* no line after the last newline */
            rc |= encode_one_(tok, &a, buf + start, i - start);
            start = i + 1;
        }
        free(buf);
    }
    clasp_tokenizer_free(tok);
    return rc;
}
