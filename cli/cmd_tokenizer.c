/* cmd_tokenizer.c: `clasp tokenizer train SPEC|--lines FILE -o tokenizer.json [--vocab N]`:
 * trains a byte-level BPE (modalities/tokenizer.h) on the captions of a shard spec (every
 * caption training may draw: the caption rule of pipeline/captions.h) or of a text file with
 * one caption per line, normalised as training normalises them (modalities/text.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
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

static void usage_(FILE *f) {
    fprintf(f, "usage: clasp tokenizer train SPEC -o tokenizer.json [--vocab N] [--min-count K]\n"
               "       clasp tokenizer train --lines FILE -o tokenizer.json [--vocab N]\n\n"
               "Trains a byte-level BPE on captions: the text fields (and json 'captions'/'text')\n"
               "of the shards of SPEC, or the lines of FILE. Captions are normalised as in\n"
               "training (NFKC, control characters stripped, whitespace collapsed).\n"
               "  -o PATH          output tokenizer.json (required)\n"
               "  --vocab N        target vocabulary size, >= 259 (default 4096)\n"
               "  --min-count K    stop when no pair occurs K times (default 2)\n"
               "  --casefold       case-fold captions before training\n"
               "  --json           machine-readable summary on stdout\n");
}

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
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        char **p = realloc(l->s, cap * sizeof *p);
        if (!p) {
            free(norm);
            return 1;
        }
        l->s = p;
        l->cap = cap;
    }
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

int clasp_cmd_tokenizer_train(int argc, char **argv) {
    const char *spec = NULL, *lines = NULL, *out = NULL;
    long vocab = 4096, min_count = 2;
    bool json = false;
    clasp_text_config tc = clasp_text_default_config();
    for (int i = 1; i < argc; i++) {
        char *end;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage_(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(argv[i], "--lines") && i + 1 < argc) {
            lines = argv[++i];
        } else if (!strcmp(argv[i], "--vocab") && i + 1 < argc) {
            vocab = strtol(argv[++i], &end, 10);
            if (*end || vocab < CLASP_TOKEN_FIRST_MERGE || vocab > CLASP_TOKENIZER_MAX_VOCAB) {
                fprintf(stderr, "clasp tokenizer train: --vocab: expected %d..%d\n",
                        CLASP_TOKEN_FIRST_MERGE, CLASP_TOKENIZER_MAX_VOCAB);
                return 2;
            }
        } else if (!strcmp(argv[i], "--min-count") && i + 1 < argc) {
            min_count = strtol(argv[++i], &end, 10);
            if (*end || min_count < 1 || min_count > 1000000000L) {
                fprintf(stderr, "clasp tokenizer train: --min-count: expected >= 1\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--casefold")) {
            tc.casefold = true;
        } else if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "clasp tokenizer train: unknown option %s\n", argv[i]);
            usage_(stderr);
            return 2;
        } else if (!spec) {
            spec = argv[i];
        } else {
            fprintf(stderr, "clasp tokenizer train: unexpected argument %s\n", argv[i]);
            return 2;
        }
    }
    if (!out || (!spec && !lines) || (spec && lines)) {
        fprintf(stderr, "clasp tokenizer train: need -o PATH and one of SPEC or --lines FILE\n");
        usage_(stderr);
        return 2;
    }
    caption_list l = {0};
    size_t n_shards = 0;
    int rc = lines ? read_lines_(lines, &tc, &l) : read_shards_(spec, &tc, &l, &n_shards);
    clasp_tokenizer *tok = NULL;
    if (!rc && l.n == 0) {
        fprintf(stderr, "clasp tokenizer train: no usable captions in %s\n", lines ? lines : spec);
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
            cJSON_AddStringToObject(o, "output", out);
            cJSON_AddNumberToObject(o, "captions", (double)l.n);
            cJSON_AddNumberToObject(o, "rejected", (double)l.invalid);
            cJSON_AddNumberToObject(o, "shards", (double)n_shards);
            cJSON_AddNumberToObject(o, "vocab_size", clasp_tokenizer_vocab_size(tok));
            cJSON_AddNumberToObject(o, "merges", clasp_tokenizer_n_merges(tok));
            char *txt = cJSON_PrintUnformatted(o);
            if (txt) printf("%s\n", txt);
            free(txt);
            cJSON_Delete(o);
        } else {
            fprintf(stderr, "clasp tokenizer train: wrote %s (vocab %d, %d merges)\n", out,
                    clasp_tokenizer_vocab_size(tok), clasp_tokenizer_n_merges(tok));
        }
    }
    clasp_tokenizer_free(tok);
    for (size_t i = 0; i < l.n; i++) free(l.s[i]);
    free(l.s);
    return rc;
}
