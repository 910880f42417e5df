/* tokenizer.c: byte-level tokenizer and byte-level BPE (training, encoding, decoding,
 * tokenizer.json), see tokenizer.h for the id layout, the pre-split rule and the JSON format. */
#include "modalities/tokenizer.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/json.h"
#include "core/rng.h"
#include "core/sizes.h"
#include "modalities/clip_bpe.h"
#include "modalities/pair_map.h"

/* Longest word (bytes) the pre-split hands to the merger; longer runs are cut into pieces of
 * this size. Bounds the quadratic merge loop on hostile input (a 1 MB caption with no space). */
#define MAX_WORD 256
/* Longest byte string one token may stand for (guards hostile merge lists that double). */
#define MAX_TOKEN_BYTES 4096

/* ---- the tokenizer ---- */

struct clasp_tokenizer {
    clasp_tokenizer_type type;
    int n_merges;
    int32_t *merges;   /* (n_merges, 2) */
    pair_map ranks;    /* pair -> merge index */
    size_t *tok_off;   /* (vocab) offset of each token's bytes in blob */
    uint32_t *tok_len; /* (vocab) byte length; 0 for BOS/EOS/PAD */
    uint8_t *blob;
    clasp_clip_bpe *clip; /* CLASP_TOKENIZER_CLIP_BPE */
    int context_length;   /* clip_bpe: the JSON's "context_length" */
    char clip_path[4096]; /* clip_bpe: the merges file as opened */
};

void clasp_tokenizer_free(clasp_tokenizer *tok) {
    if (!tok) return;
    free(tok->merges);
    map_free(&tok->ranks);
    free(tok->tok_off);
    free(tok->tok_len);
    free(tok->blob);
    clasp_clip_bpe_free(tok->clip);
    free(tok);
}

clasp_tokenizer_type clasp_tokenizer_kind(const clasp_tokenizer *tok) {
    return tok ? tok->type : CLASP_TOKENIZER_BYTES;
}
int clasp_tokenizer_vocab_size(const clasp_tokenizer *tok) {
    if (tok && tok->clip) return CLASP_CLIP_BPE_VOCAB;
    return tok ? CLASP_TOKEN_FIRST_MERGE + tok->n_merges : 0;
}
int clasp_tokenizer_n_merges(const clasp_tokenizer *tok) {
    if (tok && tok->clip) return CLASP_CLIP_BPE_MERGES;
    return tok ? tok->n_merges : 0;
}
int32_t clasp_tokenizer_bos_id(const clasp_tokenizer *tok) {
    return tok && tok->clip ? CLASP_CLIP_BPE_SOT : CLASP_TOKEN_BOS;
}
int32_t clasp_tokenizer_eos_id(const clasp_tokenizer *tok) {
    return tok && tok->clip ? CLASP_CLIP_BPE_EOT : CLASP_TOKEN_EOS;
}
int32_t clasp_tokenizer_pad_id(const clasp_tokenizer *tok) {
    return tok && tok->clip ? 0 : CLASP_TOKEN_PAD;
}
int clasp_tokenizer_context_length(const clasp_tokenizer *tok) {
    return tok ? tok->context_length : 0;
}
const char *clasp_tokenizer_merges_path(const clasp_tokenizer *tok) {
    return tok && tok->clip ? tok->clip_path : NULL;
}

/* Builds a tokenizer owning `merges` ((n, 2), malloc'd; freed here on error). `what` names the
 * source in messages. */
static clasp_status build(clasp_tokenizer_type type, int32_t *merges, int n, const char *what,
                          clasp_tokenizer **out) {
    *out = NULL;
    clasp_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        free(merges);
        return clasp_set_error(CLASP_ERR_NOMEM, "tokenizer: out of memory");
    }
    t->type = type;
    t->n_merges = n;
    t->merges = merges;
    const size_t vocab = (size_t)CLASP_TOKEN_FIRST_MERGE + (size_t)n;
    t->tok_off = calloc(vocab, sizeof *t->tok_off);
    t->tok_len = calloc(vocab, sizeof *t->tok_len);
    if (!t->tok_off || !t->tok_len || !map_init(&t->ranks, (size_t)n + 1)) {
        clasp_tokenizer_free(t);
        return clasp_set_error(CLASP_ERR_NOMEM, "tokenizer: out of memory");
    }
    size_t total = 256;
    for (int b = 0; b < 256; b++) {
        t->tok_len[b] = 1;
        t->tok_off[b] = (size_t)b;
    }
    for (int i = 0; i < n; i++) {
        const int32_t a = merges[2 * i], b = merges[2 * i + 1];
        const int32_t id = CLASP_TOKEN_FIRST_MERGE + i;
        const bool ok_a = a >= 0 && a < id && (a < 256 || a >= CLASP_TOKEN_FIRST_MERGE);
        const bool ok_b = b >= 0 && b < id && (b < 256 || b >= CLASP_TOKEN_FIRST_MERGE);
        if (!ok_a || !ok_b) {
            clasp_tokenizer_free(t);
            return clasp_set_error(CLASP_ERR_FORMAT,
                                   "%s: merges[%d] = [%d, %d]: each id must be a byte or an "
                                   "earlier merge (< %d, not BOS/EOS/PAD)",
                                   what, i, (int)a, (int)b, (int)id);
        }
        const uint32_t len = t->tok_len[a] + t->tok_len[b];
        if (len > MAX_TOKEN_BYTES || total + len > ((size_t)1 << 28)) {
            clasp_tokenizer_free(t);
            return clasp_set_error(CLASP_ERR_FORMAT,
                                   "%s: merges[%d] makes a token of %u bytes (limit %d per "
                                   "token, 256 MiB in all)",
                                   what, i, len, MAX_TOKEN_BYTES);
        }
        if (map_get(&t->ranks, pair_key(a, b)) >= 0) {
            clasp_tokenizer_free(t);
            return clasp_set_error(CLASP_ERR_FORMAT,
                                   "%s: merges[%d] = [%d, %d] repeats an "
                                   "earlier merge",
                                   what, i, (int)a, (int)b);
        }
        int64_t *r = map_ref(&t->ranks, pair_key(a, b));
        if (!r) {
            clasp_tokenizer_free(t);
            return clasp_set_error(CLASP_ERR_NOMEM, "tokenizer: out of memory");
        }
        *r = i;
        t->tok_len[id] = len;
        t->tok_off[id] = total;
        total += len;
    }
    t->blob = malloc(total);
    if (!t->blob) {
        clasp_tokenizer_free(t);
        return clasp_set_error(CLASP_ERR_NOMEM, "tokenizer: out of memory");
    }
    for (int b = 0; b < 256; b++) t->blob[b] = (uint8_t)b;
    for (int i = 0; i < n; i++) {
        const int32_t a = merges[2 * i], b = merges[2 * i + 1];
        uint8_t *dst = t->blob + t->tok_off[CLASP_TOKEN_FIRST_MERGE + i];
        memcpy(dst, t->blob + t->tok_off[a], t->tok_len[a]);
        memcpy(dst + t->tok_len[a], t->blob + t->tok_off[b], t->tok_len[b]);
    }
    *out = t;
    return CLASP_OK;
}

clasp_status clasp_tokenizer_new_bytes(clasp_tokenizer **out) {
    if (!out) return clasp_set_error(CLASP_ERR_ARG, "tokenizer: NULL output");
    return build(CLASP_TOKENIZER_BYTES, NULL, 0, "bytes tokenizer", out);
}

/* ---- pre-split and encoding ---- */

/* Length of the word starting at s[pos] (pos < n): up to the next space that follows a
 * non-space byte, at most MAX_WORD bytes. */
static size_t word_len(const uint8_t *s, size_t n, size_t pos) {
    size_t i = pos + 1;
    while (i < n && i - pos < MAX_WORD && !(s[i] == ' ' && s[i - 1] != ' ')) i++;
    return i - pos;
}

/* Applies the merges to ids[0..*len) in place (lowest rank first, each rank applied to all its
 * occurrences left to right, as GPT-2's bpe()). */
static void merge_word(const clasp_tokenizer *t, int32_t *ids, size_t *len) {
    size_t L = *len;
    while (L >= 2) {
        size_t at;
        const int64_t best = lowest_pair(&t->ranks, ids, L, &at);
        if (best < 0) break;
        const int32_t a = t->merges[2 * best], b = t->merges[2 * best + 1];
        L = merge_pair(ids, L, a, b, (int32_t)(CLASP_TOKEN_FIRST_MERGE + best));
    }
    *len = L;
}

/* Encodes s[n] into ids (room for n entries), stopping once `limit` tokens are produced (the
 * remaining words cannot change them). Returns the count (may exceed limit by one word). */
static size_t encode_ids(const clasp_tokenizer *t, const uint8_t *s, size_t n, int32_t *ids,
                         size_t limit) {
    size_t count = 0;
    if (t->n_merges == 0) {
        size_t m = n < limit ? n : limit;
        for (size_t i = 0; i < m; i++) ids[i] = s[i];
        return m;
    }
    size_t pos = 0;
    while (pos < n && count < limit) {
        size_t wl = word_len(s, n, pos);
        int32_t *w = ids + count;
        for (size_t i = 0; i < wl; i++) w[i] = s[pos + i];
        merge_word(t, w, &wl);
        count += wl;
        pos += word_len(s, n, pos);
    }
    return count;
}

clasp_status clasp_tokenizer_encode_raw(const clasp_tokenizer *tok, const char *text, size_t n,
                                        int32_t **ids, size_t *n_ids) {
    if (!tok || (!text && n) || !ids || !n_ids)
        return clasp_set_error(CLASP_ERR_ARG, "tokenizer encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    if (tok->clip) return clasp_clip_bpe_encode(tok->clip, text, n, SIZE_MAX, ids, n_ids);
    int32_t *buf = malloc((n ? n : 1) * sizeof *buf);
    if (!buf) return clasp_set_error(CLASP_ERR_NOMEM, "tokenizer encode: %zu bytes", n);
    *n_ids = encode_ids(tok, (const uint8_t *)text, n, buf, SIZE_MAX);
    *ids = buf;
    return CLASP_OK;
}

/* OpenCLIP's tokenize(): [sot] + ids + [eot], cut to ctx with eot kept last, zero padding. */
static clasp_status encode_clip(const clasp_tokenizer *tok, const char *text, size_t n,
                                int32_t *out, int ctx, int *n_used) {
    int32_t *ids;
    size_t cnt;
    const size_t room = (size_t)ctx - 2;
    CLASP_TRY(clasp_clip_bpe_encode(tok->clip, text, n, room, &ids, &cnt));
    const size_t keep = cnt < room ? cnt : room;
    out[0] = CLASP_CLIP_BPE_SOT;
    for (size_t i = 0; i < keep; i++) out[1 + i] = ids[i];
    out[1 + keep] = CLASP_CLIP_BPE_EOT;
    for (size_t i = keep + 2; i < (size_t)ctx; i++) out[i] = 0;
    if (n_used) *n_used = (int)keep;
    free(ids);
    return CLASP_OK;
}

clasp_status clasp_tokenizer_encode_n(const clasp_tokenizer *tok, const char *text, size_t n,
                                      int32_t *out, int ctx, int *n_used) {
    if (!tok || (!text && n) || !out)
        return clasp_set_error(CLASP_ERR_ARG, "tokenizer encode: NULL argument");
    if (ctx < 2)
        return clasp_set_error(CLASP_ERR_ARG, "tokenizer encode: context %d < 2 (BOS + EOS)", ctx);
    if (tok->clip) return encode_clip(tok, text, n, out, ctx, n_used);
    const size_t room = (size_t)ctx - 2;
    /* encode_ids stops after the word that reaches `room` tokens, so it writes at most
     * room + MAX_WORD ids (a word is at most MAX_WORD bytes, hence ids). */
    const size_t cap = room + MAX_WORD;
    int32_t stack_buf[512];
    int32_t *ids = stack_buf;
    if (cap > sizeof stack_buf / sizeof stack_buf[0]) {
        ids = malloc(cap * sizeof *ids);
        if (!ids) return clasp_set_error(CLASP_ERR_NOMEM, "tokenizer encode: %zu ids", cap);
    }
    size_t cnt = encode_ids(tok, (const uint8_t *)text, n, ids, room);
    size_t keep = cnt < room ? cnt : room;
    out[0] = CLASP_TOKEN_BOS;
    for (size_t i = 0; i < keep; i++) out[1 + i] = ids[i];
    out[1 + keep] = CLASP_TOKEN_EOS;
    for (size_t i = keep + 2; i < (size_t)ctx; i++) out[i] = CLASP_TOKEN_PAD;
    if (n_used) *n_used = (int)keep;
    if (ids != stack_buf) free(ids);
    return CLASP_OK;
}

clasp_status clasp_tokenizer_encode(const clasp_tokenizer *tok, const char *text, int32_t *out,
                                    int ctx) {
    if (!text) return clasp_set_error(CLASP_ERR_ARG, "tokenizer encode: NULL text");
    return clasp_tokenizer_encode_n(tok, text, strlen(text), out, ctx, NULL);
}

clasp_status clasp_tokenizer_decode(const clasp_tokenizer *tok, const int32_t *ids, size_t n,
                                    char **out, size_t *out_n) {
    if (!tok || (!ids && n) || !out || !out_n)
        return clasp_set_error(CLASP_ERR_ARG, "tokenizer decode: NULL argument");
    *out = NULL;
    *out_n = 0;
    if (tok->clip) return clasp_clip_bpe_decode(tok->clip, ids, n, out, out_n);
    const int32_t vocab = clasp_tokenizer_vocab_size(tok);
    size_t total = 0, used = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= vocab)
            return clasp_set_error(CLASP_ERR_ARG,
                                   "tokenizer decode: ids[%zu] = %d outside the "
                                   "vocabulary of %d",
                                   i, (int)ids[i], (int)vocab);
        if (ids[i] == CLASP_TOKEN_EOS) break;
        total += tok->tok_len[ids[i]];
        used = i + 1;
    }
    char *s = malloc(total + 1);
    if (!s) return clasp_set_error(CLASP_ERR_NOMEM, "tokenizer decode: %zu bytes", total + 1);
    size_t w = 0;
    for (size_t i = 0; i < used; i++) {
        memcpy(s + w, tok->blob + tok->tok_off[ids[i]], tok->tok_len[ids[i]]);
        w += tok->tok_len[ids[i]];
    }
    s[w] = '\0';
    *out = s;
    *out_n = w;
    return CLASP_OK;
}

/* ---- BPE training ---- */

/* The unique words of the corpus with their multiplicities; symbols of word w are
 * ids[off[w] .. off[w] + len[w]). */
typedef struct word_set {
    int32_t *ids;
    size_t n_ids, cap_ids;
    size_t *off;
    size_t *len;
    int64_t *count;
    size_t n, cap;
    pair_map index; /* content hash -> word index */
} word_set;

static void words_free(word_set *ws) {
    free(ws->ids);
    free(ws->off);
    free(ws->len);
    free(ws->count);
    map_free(&ws->index);
}

static bool word_equal(const word_set *ws, size_t w, const uint8_t *s, size_t n) {
    if (ws->len[w] != n) return false;
    const int32_t *ids = ws->ids + ws->off[w];
    for (size_t i = 0; i < n; i++)
        if (ids[i] != s[i]) return false;
    return true;
}

/* Counts one occurrence of word s[n]; false on OOM. */
static bool words_add(word_set *ws, const uint8_t *s, size_t n) {
    uint64_t key = clasp_hash64(s, n, 0);
    for (;;) {
        if (key == EMPTY_KEY) key = 0;
        int64_t w = map_get(&ws->index, key);
        if (w < 0) break;
        if (word_equal(ws, (size_t)w, s, n)) {
            ws->count[w]++;
            return true;
        }
        key = clasp_splitmix64(key); /* 64-bit hash collision: probe another key */
    }
    if (ws->n == ws->cap) {
        size_t cap = ws->cap ? ws->cap * 2 : 1024;
        size_t *off = realloc(ws->off, cap * sizeof *off);
        if (off) ws->off = off;
        size_t *len = realloc(ws->len, cap * sizeof *len);
        if (len) ws->len = len;
        int64_t *count = realloc(ws->count, cap * sizeof *count);
        if (count) ws->count = count;
        if (!off || !len || !count) return false;
        ws->cap = cap;
    }
    if (ws->n_ids + n > ws->cap_ids) {
        size_t cap = ws->cap_ids ? ws->cap_ids : 4096;
        while (cap < ws->n_ids + n) cap *= 2;
        int32_t *ids = realloc(ws->ids, cap * sizeof *ids);
        if (!ids) return false;
        ws->ids = ids;
        ws->cap_ids = cap;
    }
    int64_t *slot = map_ref(&ws->index, key);
    if (!slot) return false;
    *slot = (int64_t)ws->n;
    ws->off[ws->n] = ws->n_ids;
    ws->len[ws->n] = n;
    ws->count[ws->n] = 1;
    for (size_t i = 0; i < n; i++) ws->ids[ws->n_ids + i] = s[i];
    ws->n_ids += n;
    ws->n++;
    return true;
}

/* Adds sign * count[w] to the count of every adjacent pair of word w; false on OOM. */
static bool count_pairs(pair_map *pc, const word_set *ws, size_t w, int64_t sign) {
    const int32_t *ids = ws->ids + ws->off[w];
    for (size_t i = 0; i + 1 < ws->len[w]; i++) {
        int64_t *c = map_ref(pc, pair_key(ids[i], ids[i + 1]));
        if (!c) return false;
        *c += sign * ws->count[w];
    }
    return true;
}

clasp_status clasp_tokenizer_train_bpe(const char *const *texts, size_t n_texts, int vocab_size,
                                       int min_count, clasp_tokenizer **out) {
    if (!out || (!texts && n_texts))
        return clasp_set_error(CLASP_ERR_ARG, "tokenizer train: NULL argument");
    *out = NULL;
    if (vocab_size < CLASP_TOKEN_FIRST_MERGE || vocab_size > CLASP_TOKENIZER_MAX_VOCAB)
        return clasp_set_error(CLASP_ERR_ARG, "tokenizer train: vocab size %d not in [%d, %d]",
                               vocab_size, CLASP_TOKEN_FIRST_MERGE, CLASP_TOKENIZER_MAX_VOCAB);
    if (min_count < 1)
        return clasp_set_error(CLASP_ERR_ARG, "tokenizer train: min_count %d < 1", min_count);
    const int want = vocab_size - CLASP_TOKEN_FIRST_MERGE;
    word_set ws;
    memset(&ws, 0, sizeof ws);
    pair_map pc;
    memset(&pc, 0, sizeof pc);
    int32_t *merges = malloc(((size_t)want + 1) * 2 * sizeof *merges);
    clasp_status st = CLASP_OK;
    if (!merges || !map_init(&ws.index, 1024) || !map_init(&pc, 4096)) goto oom;
    for (size_t t = 0; t < n_texts; t++) {
        const uint8_t *s = (const uint8_t *)texts[t];
        if (!s) continue;
        const size_t n = strlen(texts[t]);
        for (size_t pos = 0; pos < n;) {
            const size_t wl = word_len(s, n, pos);
            if (!words_add(&ws, s + pos, wl)) goto oom;
            pos += wl;
        }
    }
    for (size_t w = 0; w < ws.n; w++)
        if (!count_pairs(&pc, &ws, w, 1)) goto oom;

    int n_merges = 0;
    while (n_merges < want) {
        uint64_t best_key = EMPTY_KEY;
        int64_t best = 0;
        for (size_t i = 0; i < pc.cap; i++) {
            const uint64_t k = pc.keys[i];
            if (k == EMPTY_KEY || pc.vals[i] < min_count) continue;
            /* Highest count; ties to the lowest (left, right), i.e. the lowest key. */
            if (pc.vals[i] > best || (pc.vals[i] == best && k < best_key)) {
                best = pc.vals[i];
                best_key = k;
            }
        }
        if (best_key == EMPTY_KEY) break;
        const int32_t a = (int32_t)(best_key >> 32), b = (int32_t)(best_key & 0xffffffffu);
        const int32_t id = CLASP_TOKEN_FIRST_MERGE + n_merges;
        merges[2 * n_merges] = a;
        merges[2 * n_merges + 1] = b;
        n_merges++;
        for (size_t w = 0; w < ws.n; w++) {
            int32_t *ids = ws.ids + ws.off[w];
            const size_t L = ws.len[w];
            bool has = false;
            for (size_t i = 0; i + 1 < L && !has; i++) has = ids[i] == a && ids[i + 1] == b;
            if (!has) continue;
            if (!count_pairs(&pc, &ws, w, -1)) goto oom;
            ws.len[w] = merge_pair(ids, L, a, b, id);
            if (!count_pairs(&pc, &ws, w, 1)) goto oom;
        }
    }
    words_free(&ws);
    map_free(&pc);
    return build(CLASP_TOKENIZER_BPE, merges, n_merges, "trained BPE", out);
oom:
    st = clasp_set_error(CLASP_ERR_NOMEM, "tokenizer train: out of memory (%zu words)", ws.n);
    words_free(&ws);
    map_free(&pc);
    free(merges);
    return st;
}

/* ---- JSON ---- */

cJSON *clasp_tokenizer_to_json(const clasp_tokenizer *tok) {
    if (!tok) return NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    if (tok->clip) {
        const char *slash = strrchr(tok->clip_path, '/');
        if (!cJSON_AddStringToObject(o, "type", "clip_bpe") ||
            !cJSON_AddStringToObject(o, "path", slash ? slash + 1 : tok->clip_path) ||
            !cJSON_AddNumberToObject(o, "context_length", tok->context_length) ||
            !cJSON_AddNumberToObject(o, "vocab_size", CLASP_CLIP_BPE_VOCAB) ||
            !cJSON_AddNumberToObject(o, "bos_id", CLASP_CLIP_BPE_SOT) ||
            !cJSON_AddNumberToObject(o, "eos_id", CLASP_CLIP_BPE_EOT) ||
            !cJSON_AddNumberToObject(o, "pad_id", 0)) {
            cJSON_Delete(o);
            return NULL;
        }
        return o;
    }
    bool ok =
        cJSON_AddStringToObject(o, "type", tok->type == CLASP_TOKENIZER_BPE ? "bpe" : "bytes") &&
        cJSON_AddNumberToObject(o, "version", 1) &&
        cJSON_AddNumberToObject(o, "vocab_size", clasp_tokenizer_vocab_size(tok)) &&
        cJSON_AddNumberToObject(o, "bos_id", CLASP_TOKEN_BOS) &&
        cJSON_AddNumberToObject(o, "eos_id", CLASP_TOKEN_EOS) &&
        cJSON_AddNumberToObject(o, "pad_id", CLASP_TOKEN_PAD);
    if (ok && tok->type == CLASP_TOKENIZER_BPE) {
        ok = cJSON_AddStringToObject(o, "pre_split", "space") != NULL;
        cJSON *m = ok ? cJSON_AddArrayToObject(o, "merges") : NULL;
        ok = m != NULL;
        for (int i = 0; ok && i < tok->n_merges; i++) {
            cJSON *pair = cJSON_CreateIntArray((const int *)(tok->merges + 2 * i), 2);
            ok = pair && cJSON_AddItemToArray(m, pair);
        }
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* clip_bpe: copies the merges file beside `path` (the JSON names it by file name). */
static clasp_status copy_merges(const clasp_tokenizer *tok, const char *path) {
    const char *base = strrchr(tok->clip_path, '/');
    base = base ? base + 1 : tok->clip_path;
    const char *slash = strrchr(path, '/');
    char dst[4096];
    int k = slash ? snprintf(dst, sizeof dst, "%.*s/%s", (int)(slash - path), path, base)
                  : snprintf(dst, sizeof dst, "%s", base);
    if (k < 0 || (size_t)k >= sizeof dst)
        return clasp_set_error(CLASP_ERR_ARG, "%s: path too long", path);
    char *a = realpath(tok->clip_path, NULL), *b = realpath(dst, NULL);
    const bool same = a && b && !strcmp(a, b);
    free(a);
    free(b);
    if (same) return CLASP_OK;
    char *data = NULL;
    size_t n = 0;
    CLASP_TRY(clasp_read_file(tok->clip_path, (size_t)64 << 20, &data, &n));
    clasp_status s = clasp_write_file_atomic(dst, data, n);
    free(data);
    return s;
}

const char *clasp_tokenizer_type_name(const clasp_tokenizer *tok) {
    if (!tok || tok->type == CLASP_TOKENIZER_BYTES) return "bytes";
    return tok->type == CLASP_TOKENIZER_BPE ? "bpe" : "clip_bpe";
}

clasp_status clasp_tokenizer_save(const clasp_tokenizer *tok, const char *path) {
    if (!tok || !path) return clasp_set_error(CLASP_ERR_ARG, "tokenizer save: NULL argument");
    if (tok->clip) CLASP_TRY(copy_merges(tok, path));
    cJSON *o = clasp_tokenizer_to_json(tok);
    if (!o) return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory building JSON", path);
    clasp_status s = clasp_json_save(path, o);
    cJSON_Delete(o);
    return s;
}

static clasp_status from_json(const cJSON *obj, const char *file, int depth, clasp_tokenizer **out);

/* rel resolved against the folder of `file` into path[4096]. */
static clasp_status resolve_path(const char *rel, const char *file, char *path) {
    const char *slash = (file && rel[0] != '/') ? strrchr(file, '/') : NULL;
    int k = slash ? snprintf(path, 4096, "%.*s/%s", (int)(slash - file), file, rel)
                  : snprintf(path, 4096, "%s", rel);
    if (k < 0 || k >= 4096)
        return clasp_set_error(CLASP_ERR_CONFIG, "%s: tokenizer path too long", file);
    return CLASP_OK;
}

static clasp_status load_path(const char *rel, const char *file, int depth, clasp_tokenizer **out) {
    char path[4096];
    CLASP_TRY(resolve_path(rel, file, path));
    cJSON *root = NULL;
    clasp_status s = clasp_json_load(path, &root);
    if (s != CLASP_OK) return clasp_wrap_error(s, "%s: tokenizer 'path'", file ? file : "config");
    s = from_json(root, path, depth + 1, out);
    cJSON_Delete(root);
    return s;
}

/* A JSON number that is an int32 (checked before any cast: casting 1e12 is undefined). */
static bool is_int32_(const cJSON *x) {
    return cJSON_IsNumber(x) && x->valuedouble >= (double)INT32_MIN &&
           x->valuedouble <= (double)INT32_MAX && x->valuedouble == floor(x->valuedouble);
}

/* {"type": "clip_bpe", "path": merges file (relative to `file`'s folder), "context_length"} */
static clasp_status clip_from_json(const cJSON *obj, const char *file, int depth,
                                   clasp_tokenizer **out) {
    const char *f = file ? file : "tokenizer";
    char rel[4096];
    int64_t v, ctx;
    CLASP_TRY(clasp_json_str(obj, "path", f, NULL, rel, sizeof rel));
    /* a tokenizer file (an export's tokenizer.json) names only files of its own folder */
    const bool up = !strcmp(rel, "..") || !strncmp(rel, "../", 3) || strstr(rel, "/../") ||
                    (strlen(rel) >= 3 && !strcmp(rel + strlen(rel) - 3, "/.."));
    if (depth > 0 && (rel[0] == '/' || up))
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "%s: field 'path': '%s' is outside the tokenizer file's folder "
                               "(a tokenizer file may only name files beside it)",
                               f, rel);
    CLASP_TRY(clasp_json_int_opt(obj, "context_length", f, NULL, 2, 1 << 20, 77, &ctx));
    CLASP_TRY(clasp_json_int_opt(obj, "vocab_size", f, NULL, CLASP_CLIP_BPE_VOCAB,
                                 CLASP_CLIP_BPE_VOCAB, CLASP_CLIP_BPE_VOCAB, &v));
    CLASP_TRY(clasp_json_int_opt(obj, "bos_id", f, NULL, CLASP_CLIP_BPE_SOT, CLASP_CLIP_BPE_SOT,
                                 CLASP_CLIP_BPE_SOT, &v));
    CLASP_TRY(clasp_json_int_opt(obj, "eos_id", f, NULL, CLASP_CLIP_BPE_EOT, CLASP_CLIP_BPE_EOT,
                                 CLASP_CLIP_BPE_EOT, &v));
    CLASP_TRY(clasp_json_int_opt(obj, "pad_id", f, NULL, 0, 0, 0, &v));
    clasp_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return clasp_set_error(CLASP_ERR_NOMEM, "tokenizer: out of memory");
    t->type = CLASP_TOKENIZER_CLIP_BPE;
    t->context_length = (int)ctx;
    clasp_status s = resolve_path(rel, file, t->clip_path);
    if (s == CLASP_OK) s = clasp_clip_bpe_load(t->clip_path, &t->clip);
    if (s != CLASP_OK) {
        clasp_tokenizer_free(t);
        return clasp_wrap_error(s, "%s: clip_bpe tokenizer 'path'", f);
    }
    *out = t;
    return CLASP_OK;
}

static clasp_status from_json(const cJSON *obj, const char *file, int depth,
                              clasp_tokenizer **out) {
    const char *f = file ? file : "tokenizer";
    if (!cJSON_IsObject(obj))
        return clasp_set_error(CLASP_ERR_CONFIG, "%s: tokenizer must be a JSON object", f);
    char type[16];
    CLASP_TRY(clasp_json_str(obj, "type", f, NULL, type, sizeof type));
    if (strcmp(type, "clip_bpe") == 0) return clip_from_json(obj, file, depth, out);
    int64_t v;
    CLASP_TRY(clasp_json_int_opt(obj, "bos_id", f, NULL, CLASP_TOKEN_BOS, CLASP_TOKEN_BOS,
                                 CLASP_TOKEN_BOS, &v));
    CLASP_TRY(clasp_json_int_opt(obj, "eos_id", f, NULL, CLASP_TOKEN_EOS, CLASP_TOKEN_EOS,
                                 CLASP_TOKEN_EOS, &v));
    CLASP_TRY(clasp_json_int_opt(obj, "pad_id", f, NULL, CLASP_TOKEN_PAD, CLASP_TOKEN_PAD,
                                 CLASP_TOKEN_PAD, &v));
    CLASP_TRY(clasp_json_int_opt(obj, "version", f, NULL, 1, 1, 1, &v));
    if (strcmp(type, "bytes") == 0) {
        CLASP_TRY(clasp_json_int_opt(obj, "vocab_size", f, NULL, CLASP_TOKEN_FIRST_MERGE,
                                     CLASP_TOKEN_FIRST_MERGE, CLASP_TOKEN_FIRST_MERGE, &v));
        return clasp_tokenizer_new_bytes(out);
    }
    if (strcmp(type, "bpe") != 0)
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "%s: field 'type': '%s' (expected \"bytes\", \"bpe\" or "
                               "\"clip_bpe\")",
                               f, type);
    char pre[16];
    CLASP_TRY(clasp_json_str_opt(obj, "pre_split", f, NULL, "space", pre, sizeof pre));
    if (strcmp(pre, "space") != 0)
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "%s: field 'pre_split': '%s' (expected "
                               "\"space\")",
                               f, pre);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, "merges");
    if (!m) {
        char rel[4096];
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(obj, "path");
        if (!p)
            return clasp_set_error(CLASP_ERR_CONFIG,
                                   "%s: a bpe tokenizer needs 'merges' or "
                                   "'path'",
                                   f);
        if (depth > 0)
            return clasp_set_error(CLASP_ERR_CONFIG, "%s: 'path' inside a tokenizer file", f);
        CLASP_TRY(clasp_json_str(obj, "path", f, NULL, rel, sizeof rel));
        return load_path(rel, file, depth, out);
    }
    if (!cJSON_IsArray(m))
        return clasp_set_error(CLASP_ERR_CONFIG, "%s: field 'merges': expected an array", f);
    const int n = cJSON_GetArraySize(m);
    if (n > CLASP_TOKENIZER_MAX_VOCAB - CLASP_TOKEN_FIRST_MERGE)
        return clasp_set_error(CLASP_ERR_CONFIG, "%s: %d merges (limit %d)", f, n,
                               CLASP_TOKENIZER_MAX_VOCAB - CLASP_TOKEN_FIRST_MERGE);
    CLASP_TRY(clasp_json_int_opt(obj, "vocab_size", f, NULL, CLASP_TOKEN_FIRST_MERGE + n,
                                 CLASP_TOKEN_FIRST_MERGE + n, CLASP_TOKEN_FIRST_MERGE + n, &v));
    int32_t *merges = malloc(((size_t)n + 1) * 2 * sizeof *merges);
    if (!merges) return clasp_set_error(CLASP_ERR_NOMEM, "%s: %d merges", f, n);
    int i = 0;
    const cJSON *pair;
    cJSON_ArrayForEach(pair, m) {
        const cJSON *a = cJSON_GetArrayItem(pair, 0), *b = cJSON_GetArrayItem(pair, 1);
        if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 || !is_int32_(a) ||
            !is_int32_(b)) {
            free(merges);
            return clasp_set_error(CLASP_ERR_CONFIG,
                                   "%s: field 'merges[%d]': expected [left id, right id]", f, i);
        }
        merges[2 * i] = (int32_t)a->valuedouble;
        merges[2 * i + 1] = (int32_t)b->valuedouble;
        i++;
    }
    return build(CLASP_TOKENIZER_BPE, merges, n, f, out);
}

clasp_status clasp_tokenizer_from_json(const cJSON *obj, const char *file, clasp_tokenizer **out) {
    if (!out) return clasp_set_error(CLASP_ERR_ARG, "tokenizer from json: NULL output");
    *out = NULL;
    if (!obj) return clasp_set_error(CLASP_ERR_ARG, "tokenizer from json: NULL object");
    return from_json(obj, file, 0, out);
}

clasp_status clasp_tokenizer_load(const char *path, clasp_tokenizer **out) {
    if (!path || !out) return clasp_set_error(CLASP_ERR_ARG, "tokenizer load: NULL argument");
    *out = NULL;
    cJSON *root = NULL;
    CLASP_TRY(clasp_json_load(path, &root));
    clasp_status s = from_json(root, path, 1, out);
    cJSON_Delete(root);
    return s;
}
