/* clip_bpe.c: CLIP's BPE tokenizer (clip_bpe.h): merges file reading with libarchive, OpenCLIP's
 * text cleaning (html.unescape twice, whitespace, Python's str.lower), its pre-tokenisation
 * pattern written as a scanner over code points, and the rank-ordered merges. */
#include "modalities/clip_bpe.h"

#include <archive.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/hash.h"
#include "modalities/pair_map.h"
#include "modalities/text.h"

#include "modalities/html_entities.inc"

#define MAX_FILE_BYTES  ((size_t)64 << 20)
#define MAX_TOKEN_BYTES 1024 /* longest token string a merges file may build */
#define N_BASE          512  /* 256 bytes + 256 "</w>" variants */

struct clasp_clip_bpe {
    int32_t byte_id[256];   /* byte -> id of its bytes_to_unicode character */
    int16_t char_byte[512]; /* bytes_to_unicode character (< 512) -> byte, -1 if none */
    pair_map ranks;         /* pair_key(left id, right id) -> rank << 32 | merged id */
    size_t *str_off;        /* (vocab) offset of each token's string (UTF-8) in blob */
    uint32_t *str_len;
    char *blob;
    size_t blob_n, blob_cap;
    pair_map by_string; /* XXH64 of a token string -> id (collisions probe a rehash) */
};

void clasp_clip_bpe_free(clasp_clip_bpe *t) {
    if (!t) return;
    map_free(&t->ranks);
    map_free(&t->by_string);
    free(t->str_off);
    free(t->str_len);
    free(t->blob);
    free(t);
}

/* ---- the merges file ---- */

static clasp_status read_file(const char *path, char **out, size_t *out_n) {
    struct archive *a = archive_read_new();
    if (!a) return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
    archive_read_support_filter_gzip(a);
    archive_read_support_format_raw(a);
    struct archive_entry *e;
    clasp_status s = CLASP_OK;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        /* libarchive reads ahead when opening: a system error is I/O, the rest is the data */
        const int err = archive_errno(a);
        const bool io =
            err == ENOENT || err == EACCES || err == EISDIR || err == ENOTDIR || err == EIO;
        s = clasp_set_error(io ? CLASP_ERR_IO : CLASP_ERR_FORMAT,
                            "%s: cannot read the CLIP BPE merges file (%s)", path,
                            archive_error_string(a));
        goto done;
    }
    if (archive_read_next_header(a, &e) != ARCHIVE_OK) {
        s = clasp_set_error(CLASP_ERR_FORMAT, "%s: not a readable merges file (%s)", path,
                            archive_error_string(a));
        goto done;
    }
    for (;;) {
        if (cap - n < (1 << 16)) {
            cap = cap ? cap * 2 : (1 << 20);
            char *nb = cap <= MAX_FILE_BYTES + (1 << 20) ? realloc(buf, cap + 1) : NULL;
            if (!nb) {
                s = clasp_set_error(CLASP_ERR_OVERFLOW, "%s: merges file larger than %zu MiB", path,
                                    MAX_FILE_BYTES >> 20);
                goto done;
            }
            buf = nb;
        }
        la_ssize_t r = archive_read_data(a, buf + n, cap - n);
        if (r < 0) {
            s = clasp_set_error(CLASP_ERR_FORMAT, "%s: corrupt or truncated merges file (%s)", path,
                                archive_error_string(a));
            goto done;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
done:
    archive_read_free(a);
    if (s != CLASP_OK) {
        free(buf);
        return s;
    }
    if (!buf) buf = malloc(1);
    if (!buf) return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
    buf[n] = '\0';
    *out = buf;
    *out_n = n;
    return CLASP_OK;
}

static uint64_t str_hash(const char *s, size_t n, int probe) {
    uint64_t h = clasp_hash64(s, n, (uint64_t)probe);
    return h == EMPTY_KEY ? 0 : h;
}

/* Id of the token string s[n], or -1. */
static int32_t id_of(const clasp_clip_bpe *t, const char *s, size_t n) {
    for (int probe = 0;; probe++) {
        int64_t id = map_get(&t->by_string, str_hash(s, n, probe));
        if (id < 0) return -1;
        if (t->str_len[id] == n && memcmp(t->blob + t->str_off[id], s, n) == 0) return (int32_t)id;
    }
}

/* Appends token `id` = a[an] + b[bn] to the string table; a later equal string replaces the
 * earlier one in the lookup, as Python's dict(zip(vocab, range)) does. false on OOM. */
static bool add_string(clasp_clip_bpe *t, int32_t id, const char *a, size_t an, const char *b,
                       size_t bn) {
    if (t->blob_n + an + bn > t->blob_cap) {
        size_t cap = t->blob_cap ? t->blob_cap * 2 : 1 << 20;
        while (cap < t->blob_n + an + bn) cap *= 2;
        char *nb = realloc(t->blob, cap);
        if (!nb) return false;
        t->blob = nb;
        t->blob_cap = cap;
    }
    char *dst = t->blob + t->blob_n;
    memcpy(dst, a, an);
    memcpy(dst + an, b, bn);
    t->str_off[id] = t->blob_n;
    t->str_len[id] = (uint32_t)(an + bn);
    t->blob_n += an + bn;
    for (int probe = 0;; probe++) {
        const uint64_t k = str_hash(dst, an + bn, probe);
        int64_t old = map_get(&t->by_string, k);
        if (old >= 0 &&
            !(t->str_len[old] == an + bn && memcmp(t->blob + t->str_off[old], dst, an + bn) == 0))
            continue;
        int64_t *v = map_ref(&t->by_string, k);
        if (!v) return false;
        *v = id;
        return true;
    }
}

/* bytes_to_unicode: printable Latin-1 bytes map to themselves, the others to 256 + k. */
static void byte_table(clasp_clip_bpe *t, int32_t cps[256]) {
    int n = 0, extra = 0;
    bool printable[256] = {false};
    for (int b = 0; b < 256; b++)
        printable[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    for (int b = 0; b < 256; b++)
        if (printable[b]) {
            t->byte_id[b] = n;
            cps[n++] = b;
        }
    for (int b = 0; b < 256; b++)
        if (!printable[b]) {
            t->byte_id[b] = n;
            cps[n++] = 256 + extra++;
        }
    for (int c = 0; c < 512; c++) t->char_byte[c] = -1;
    for (int b = 0; b < 256; b++) t->char_byte[cps[t->byte_id[b]]] = (int16_t)b;
}

static clasp_status parse_merges(clasp_clip_bpe *t, const char *path, char *text, size_t n) {
    if (clasp_text_validate_utf8(text, n, NULL) != CLASP_OK)
        return clasp_wrap_error(CLASP_ERR_FORMAT, "%s: merges file", path);
    char *line = memchr(text, '\n', n); /* line 0 is the version header */
    char *end = text + n;
    int32_t id = N_BASE;
    for (int i = 0; i < CLASP_CLIP_BPE_MERGES; i++) {
        if (!line || line + 1 >= end)
            return clasp_set_error(CLASP_ERR_FORMAT,
                                   "%s: %d merges, expected at least %d (truncated file?)", path, i,
                                   CLASP_CLIP_BPE_MERGES);
        char *s = line + 1;
        line = memchr(s, '\n', (size_t)(end - s));
        char *e = line ? line : end;
        char *sp = memchr(s, ' ', (size_t)(e - s));
        if (!sp || sp == s || sp + 1 >= e || memchr(sp + 1, ' ', (size_t)(e - sp - 1)))
            return clasp_set_error(CLASP_ERR_FORMAT,
                                   "%s: line %d: '%.*s' is not two symbols separated by a space",
                                   path, i + 2, (int)(e - s > 60 ? 60 : e - s), s);
        const int32_t a = id_of(t, s, (size_t)(sp - s));
        const int32_t b = id_of(t, sp + 1, (size_t)(e - sp - 1));
        if (a < 0 || b < 0)
            return clasp_set_error(CLASP_ERR_FORMAT,
                                   "%s: line %d: '%.*s' names a symbol that no earlier token has",
                                   path, i + 2, (int)(e - s > 60 ? 60 : e - s), s);
        char ab[2 * MAX_TOKEN_BYTES];
        if (t->str_len[a] > MAX_TOKEN_BYTES || t->str_len[b] > MAX_TOKEN_BYTES)
            return clasp_set_error(CLASP_ERR_FORMAT, "%s: line %d makes a token over %d bytes",
                                   path, i + 2, MAX_TOKEN_BYTES);
        memcpy(ab, t->blob + t->str_off[a], t->str_len[a]);
        memcpy(ab + t->str_len[a], t->blob + t->str_off[b], t->str_len[b]);
        if (!add_string(t, id, ab, t->str_len[a] + t->str_len[b], "", 0))
            return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
        int64_t *r = map_ref(&t->ranks, pair_key(a, b));
        if (!r) return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
        *r = ((int64_t)i << 32) | id; /* a repeated pair: the later rank, as dict(zip()) */
        id++;
    }
    return CLASP_OK;
}

/* The merged id of a merge is the id its string has once the whole vocabulary is known. */
static void resolve_merged_ids(clasp_clip_bpe *t) {
    for (size_t i = 0; i < t->ranks.cap; i++) {
        if (t->ranks.keys[i] == EMPTY_KEY) continue;
        const int32_t id = (int32_t)(t->ranks.vals[i] & 0xffffffff);
        const int32_t final = id_of(t, t->blob + t->str_off[id], t->str_len[id]);
        t->ranks.vals[i] = (t->ranks.vals[i] & ~(int64_t)0xffffffff) | final;
    }
}

clasp_status clasp_clip_bpe_load(const char *path, clasp_clip_bpe **out) {
    if (!path || !out) return clasp_set_error(CLASP_ERR_ARG, "clip_bpe load: NULL argument");
    *out = NULL;
    char *text = NULL;
    size_t n = 0;
    CLASP_TRY(read_file(path, &text, &n));
    clasp_clip_bpe *t = calloc(1, sizeof *t);
    clasp_status s = CLASP_OK;
    if (!t || !(t->str_off = calloc(CLASP_CLIP_BPE_VOCAB, sizeof *t->str_off)) ||
        !(t->str_len = calloc(CLASP_CLIP_BPE_VOCAB, sizeof *t->str_len)) ||
        !map_init(&t->ranks, CLASP_CLIP_BPE_MERGES) ||
        !map_init(&t->by_string, CLASP_CLIP_BPE_VOCAB)) {
        s = clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    int32_t cps[256];
    byte_table(t, cps);
    for (int i = 0; i < N_BASE && s == CLASP_OK; i++) {
        uint8_t u[8];
        const size_t un = (size_t)utf8proc_encode_char(cps[i % 256], u);
        memcpy(u + un, "</w>", 4);
        if (!add_string(t, i, (const char *)u, un + (i >= 256 ? 4 : 0), "", 0))
            s = clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
    }
    if (s == CLASP_OK) s = parse_merges(t, path, text, n);
    if (s == CLASP_OK && (!add_string(t, CLASP_CLIP_BPE_SOT, "<|startoftext|>", 15, "", 0) ||
                          !add_string(t, CLASP_CLIP_BPE_EOT, "<|endoftext|>", 13, "", 0)))
        s = clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
    if (s != CLASP_OK) goto fail;
    resolve_merged_ids(t);
    free(text);
    *out = t;
    return CLASP_OK;
fail:
    free(text);
    clasp_clip_bpe_free(t);
    return s;
}

/* ---- cleaning, on code points ---- */

/* Python's str.isspace(): category Zs or bidirectional class WS, B or S. */
static bool py_isspace(int32_t c) {
    const utf8proc_property_t *p = utf8proc_get_property(c);
    return p->category == UTF8PROC_CATEGORY_ZS || p->bidi_class == UTF8PROC_BIDI_CLASS_WS ||
           p->bidi_class == UTF8PROC_BIDI_CLASS_B || p->bidi_class == UTF8PROC_BIDI_CLASS_S;
}

static int cmp_entity(const void *key, const void *elem) {
    return strcmp((const char *)key, ((const struct html_entity *)elem)->name);
}

/* Value of the HTML5 entity named c[n] (ASCII), or NULL. */
static const char *entity(const int32_t *c, size_t n) {
    char name[HTML_ENTITY_MAX_NAME + 1];
    if (n > HTML_ENTITY_MAX_NAME) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (c[i] <= 0 || c[i] >= 128) return NULL;
        name[i] = (char)c[i];
    }
    name[n] = '\0';
    const struct html_entity *e =
        bsearch(name, html_entities, N_HTML_ENTITIES, sizeof html_entities[0], cmp_entity);
    return e ? e->utf8 : NULL;
}

static size_t put_utf8(int32_t *out, const char *s) {
    size_t k = 0;
    for (const uint8_t *p = (const uint8_t *)s; *p;) {
        utf8proc_int32_t cp;
        p += utf8proc_iterate(p, -1, &cp);
        out[k++] = cp;
    }
    return k;
}

/* A numeric reference's character (html.unescape's rules); -1 for none. */
static int32_t charref(uint64_t num) {
    for (size_t i = 0; i < sizeof html_charref_fixes / sizeof html_charref_fixes[0]; i++)
        if (html_charref_fixes[i].from == num) return (int32_t)html_charref_fixes[i].to;
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return 0xFFFD;
    for (size_t i = 0; i < sizeof html_dropped_codepoints / sizeof html_dropped_codepoints[0]; i++)
        if (html_dropped_codepoints[i] == num) return -1;
    return (int32_t)num;
}

static int hex_digit(int32_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reference at c[i] == '&' (html.unescape's pattern): writes its replacement to out, returns
 * the code points consumed (0: no match, the '&' stays). */
static size_t unescape_at(const int32_t *c, size_t n, size_t i, int32_t *out, size_t *w) {
    size_t j = i + 1;
    if (j < n && c[j] == '#') {
        const bool hex = j + 1 < n && (c[j + 1] == 'x' || c[j + 1] == 'X');
        const int base = hex ? 16 : 10;
        size_t k = j + 1 + hex, start = k;
        uint64_t num = 0;
        while (k < n && hex_digit(c[k]) >= 0 && hex_digit(c[k]) < base) {
            num = num * (uint64_t)base + (uint64_t)hex_digit(c[k]);
            if (num > 0x10FFFF) num = 0x110000; /* saturate: any larger value is U+FFFD */
            k++;
        }
        if (k == start) return 0;
        if (k < n && c[k] == ';') k++;
        const int32_t r = charref(num);
        if (r >= 0) out[(*w)++] = r;
        return k - i;
    }
    size_t k = j;
    while (k < n && k - j < 32 && c[k] != '\t' && c[k] != '\n' && c[k] != '\f' && c[k] != ' ' &&
           c[k] != '<' && c[k] != '&' && c[k] != '#' && c[k] != ';')
        k++;
    if (k == j) return 0;
    if (k < n && c[k] == ';') k++;
    const size_t len = k - j;
    const char *v = entity(c + j, len);
    if (v) {
        *w += put_utf8(out + *w, v);
        return k - i;
    }
    for (size_t x = len - 1; x >= 2 && x < len; x--) {
        v = entity(c + j, x);
        if (v) {
            *w += put_utf8(out + *w, v);
            for (size_t q = j + x; q < k; q++) out[(*w)++] = c[q];
            return k - i;
        }
    }
    return 0; /* '&' + s: unchanged */
}

/* html.unescape of c[n] into out (never longer than the input); returns the new length. */
static size_t html_unescape(const int32_t *c, size_t n, int32_t *out) {
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        size_t used = c[i] == '&' ? unescape_at(c, n, i, out, &w) : 0;
        if (used) {
            i += used;
        } else {
            out[w++] = c[i++];
        }
    }
    return w;
}

/* Python's cased / case-ignorable properties, from utf8proc's data (approximation: the
 * Word_Break quote and colon characters are listed). */
static bool is_cased(int32_t c) {
    const utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT ||
           utf8proc_tolower(c) != c || utf8proc_toupper(c) != c;
}
static bool is_case_ignorable(int32_t c) {
    static const int32_t mid[] = {0x27,   0x2E,   0x3A,   0xB7,   0x387,  0x55F,
                                  0x5F4,  0x2018, 0x2019, 0x2024, 0x2027, 0xFE13,
                                  0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A};
    const utf8proc_category_t k = utf8proc_category(c);
    if (k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_ME || k == UTF8PROC_CATEGORY_CF ||
        k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_SK)
        return true;
    for (size_t i = 0; i < sizeof mid / sizeof mid[0]; i++)
        if (mid[i] == c) return true;
    return false;
}

/* Python's handling of U+03A3 in str.lower(): final sigma after a cased letter not followed by
 * one (case-ignorable characters skipped both ways). */
static int32_t lower_sigma(const int32_t *c, size_t n, size_t i) {
    size_t j = i;
    while (j > 0 && is_case_ignorable(c[j - 1])) j--;
    if (j == 0 || !is_cased(c[j - 1])) return 0x3C3;
    size_t k = i + 1;
    while (k < n && is_case_ignorable(c[k])) k++;
    return (k == n || !is_cased(c[k])) ? 0x3C2 : 0x3C3;
}

/* whitespace_clean(basic_clean(text)).lower() after the unescaping: runs of whitespace become
 * one space, both ends stripped, then Python's lower(). out has room for 2 n. */
static size_t clean_lower(const int32_t *c, size_t n, int32_t *out) {
    size_t w = 0;
    bool pending_space = false;
    for (size_t i = 0; i < n; i++) {
        if (py_isspace(c[i])) {
            pending_space = w > 0;
            continue;
        }
        if (pending_space) out[w++] = ' ';
        pending_space = false;
        if (c[i] == 0x130) { /* the one unconditional special lower-case mapping */
            out[w++] = 'i';
            out[w++] = 0x307;
        } else if (c[i] == 0x3A3) {
            out[w++] = lower_sigma(c, n, i);
        } else {
            out[w++] = utf8proc_tolower(c[i]);
        }
    }
    return w;
}

/* ---- pre-tokenisation and merging ---- */

static bool is_letter(int32_t c) {
    const utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}
static bool is_number(int32_t c) {
    const utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}

static bool match_ascii(const int32_t *c, size_t n, size_t i, const char *s) {
    for (; *s; s++, i++)
        if (i >= n || c[i] != (unsigned char)*s) return false;
    return true;
}

/* Length of the contraction ('s 't 're 've 'm 'll 'd, case-insensitive) at c[i] == '\'', or 0. */
static size_t contraction(const int32_t *c, size_t n, size_t i) {
    if (i + 1 >= n) return 0;
    const int32_t x = c[i + 1] == 0x17F ? 's' : utf8proc_tolower(c[i + 1]);
    if (x == 's' || x == 't' || x == 'm' || x == 'd') return 2;
    if (i + 2 >= n) return 0;
    const int32_t y = utf8proc_tolower(c[i + 2]);
    if ((x == 'r' && y == 'e') || (x == 'v' && y == 'e') || (x == 'l' && y == 'l')) return 3;
    return 0;
}

/* Merges ids[0..*len) by rank, each rank applied to all its occurrences left to right. */
static void merge_word(const clasp_clip_bpe *t, int32_t *ids, size_t *len) {
    size_t L = *len;
    while (L >= 2) {
        size_t at;
        const int64_t best = lowest_pair(&t->ranks, ids, L, &at);
        if (best < 0) break;
        L = merge_pair(ids, L, ids[at], ids[at + 1], (int32_t)(best & 0xffffffff));
    }
    *len = L;
}

typedef struct id_buf {
    int32_t *v;
    size_t n, cap;
} id_buf;

static bool reserve(id_buf *b, size_t more) {
    if (b->n + more <= b->cap) return true;
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->n + more) cap *= 2;
    int32_t *nv = realloc(b->v, cap * sizeof *nv);
    if (!nv) return false;
    b->v = nv;
    b->cap = cap;
    return true;
}

/* BPE of the word c[n] (code points), appended to b; pieces of at most MAX_WORD bytes. */
static bool bpe_word(const clasp_clip_bpe *t, const int32_t *c, size_t n, id_buf *b) {
    size_t i = 0;
    while (i < n) {
        if (!reserve(b, CLASP_CLIP_BPE_MAX_WORD)) return false;
        int32_t *w = b->v + b->n;
        size_t len = 0;
        for (; i < n; i++) {
            uint8_t u[4];
            const size_t k = (size_t)utf8proc_encode_char(c[i], u);
            if (len + k > CLASP_CLIP_BPE_MAX_WORD) break;
            for (size_t q = 0; q < k; q++) w[len++] = t->byte_id[u[q]];
        }
        w[len - 1] += 256; /* the last symbol carries "</w>" */
        merge_word(t, w, &len);
        b->n += len;
    }
    return true;
}

static bool pretokenize(const clasp_clip_bpe *t, const int32_t *c, size_t n, size_t limit,
                        id_buf *b) {
    for (size_t i = 0; i < n && b->n < limit;) {
        size_t k;
        if (c[i] == ' ' || c[i] == 0x345) { /* regex IGNORECASE matches U+0345 nowhere */
            i++;
            continue;
        }
        if (match_ascii(c, n, i, "<|startoftext|>") || match_ascii(c, n, i, "<|endoftext|>")) {
            if (!reserve(b, 1)) return false;
            const bool sot = c[i + 2] == 's';
            b->v[b->n++] = sot ? CLASP_CLIP_BPE_SOT : CLASP_CLIP_BPE_EOT;
            i += sot ? 15 : 13;
            continue;
        }
        if (c[i] == '\'' && (k = contraction(c, n, i)) > 0) {
            /* k as found */
        } else if (is_letter(c[i])) {
            for (k = 1; i + k < n && is_letter(c[i + k]);) k++;
        } else if (is_number(c[i])) {
            k = 1;
        } else {
            for (k = 1; i + k < n && c[i + k] != ' ' && c[i + k] != 0x345 && !is_letter(c[i + k]) &&
                        !is_number(c[i + k]);)
                k++;
        }
        if (!bpe_word(t, c + i, k, b)) return false;
        i += k;
    }
    return true;
}

clasp_status clasp_clip_bpe_encode(const clasp_clip_bpe *t, const char *text, size_t n,
                                   size_t limit, int32_t **ids, size_t *n_ids) {
    if (!t || (!text && n) || !ids || !n_ids)
        return clasp_set_error(CLASP_ERR_ARG, "clip_bpe encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    if (n > ((size_t)1 << 28))
        return clasp_set_error(CLASP_ERR_OVERFLOW, "clip_bpe encode: %zu bytes is too long", n);
    CLASP_TRY(clasp_text_validate_utf8(text, n, NULL));
    int32_t *a = malloc((2 * n + 1) * sizeof *a), *bb = malloc((2 * n + 1) * sizeof *bb);
    id_buf out = {NULL, 0, 0};
    bool ok = a && bb && reserve(&out, 1);
    if (ok) {
        size_t m = 0;
        for (size_t i = 0; i < n; m++) {
            utf8proc_int32_t cp;
            i +=
                (size_t)utf8proc_iterate((const uint8_t *)text + i, (utf8proc_ssize_t)(n - i), &cp);
            a[m] = cp;
        }
        m = html_unescape(a, m, bb);
        m = html_unescape(bb, m, a);
        m = clean_lower(a, m, bb);
        ok = pretokenize(t, bb, m, limit, &out);
    }
    free(a);
    free(bb);
    if (!ok) {
        free(out.v);
        return clasp_set_error(CLASP_ERR_NOMEM, "clip_bpe encode: out of memory (%zu bytes)", n);
    }
    *ids = out.v;
    *n_ids = out.n;
    return CLASP_OK;
}

clasp_status clasp_clip_bpe_decode(const clasp_clip_bpe *t, const int32_t *ids, size_t n,
                                   char **out, size_t *out_n) {
    if (!t || (!ids && n) || !out || !out_n)
        return clasp_set_error(CLASP_ERR_ARG, "clip_bpe decode: NULL argument");
    *out = NULL;
    *out_n = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= CLASP_CLIP_BPE_VOCAB)
            return clasp_set_error(CLASP_ERR_ARG,
                                   "clip_bpe decode: ids[%zu] = %d outside the vocabulary of %d", i,
                                   (int)ids[i], CLASP_CLIP_BPE_VOCAB);
        total += t->str_len[ids[i]];
    }
    char *s = malloc(total + 1);
    if (!s) return clasp_set_error(CLASP_ERR_NOMEM, "clip_bpe decode: %zu bytes", total + 1);
    size_t w = 0;
    for (size_t i = 0; i < n && ids[i] != CLASP_CLIP_BPE_EOT; i++) {
        if (ids[i] == CLASP_CLIP_BPE_SOT) continue;
        const uint8_t *p = (const uint8_t *)t->blob + t->str_off[ids[i]];
        const uint8_t *e = p + t->str_len[ids[i]];
        while (p < e) {
            if (e - p >= 4 && memcmp(p, "</w>", 4) == 0) {
                s[w++] = ' ';
                p += 4;
                continue;
            }
            utf8proc_int32_t cp;
            p += utf8proc_iterate(p, e - p, &cp);
            if (cp >= 0 && cp < 512 && t->char_byte[cp] >= 0) s[w++] = (char)t->char_byte[cp];
        }
    }
    s[w] = '\0';
    *out = s;
    *out_n = w;
    return CLASP_OK;
}
