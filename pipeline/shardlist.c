/* shardlist.c: brace expansion of shard specs and per-epoch shard orders (see shardlist.h). */
#include "pipeline/shardlist.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/rng.h"

typedef struct strvec {
    char **v;
    size_t n, cap, max; /* max: the cap on names */
    bool count_only;    /* a first pass counts the names and stores none */
} strvec;

static clasp_status push_(strvec *sv, const char *s, size_t n) {
    if (n == 0) /* "{a,,b}": found by tests/fuzz/fuzz_shardspec.c */
        return clasp_set_error(CLASP_ERR_ARG, "shard spec: a brace list gives an empty name");
    if (sv->n >= sv->max)
        return clasp_set_error(CLASP_ERR_OVERFLOW, "shard spec expands to more than %zu names",
                               sv->max);
    if (sv->count_only) {
        sv->n++;
        return CLASP_OK;
    }
    char **v = clasp_grow(sv->v, sv->n, &sv->cap, sizeof *v, 16);
    if (!v) return clasp_set_error(CLASP_ERR_NOMEM, "shard list: out of memory");
    sv->v = v;
    char *c = malloc(n + 1);
    if (!c) return clasp_set_error(CLASP_ERR_NOMEM, "shard list: out of memory");
    memcpy(c, s, n);
    c[n] = 0;
    sv->v[sv->n++] = c;
    return CLASP_OK;
}

/* Index of the '}' matching the '{' at s[open], or -1. */
static long match_(const char *s, size_t n, size_t open) {
    int depth = 0;
    for (size_t i = open; i < n; i++) {
        if (s[i] == '{') depth++;
        if (s[i] == '}' && --depth == 0) return (long)i;
    }
    return -1;
}

static bool all_digits_(const char *s, size_t n) {
    if (n == 0 || n > 18) return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return false;
    return true;
}

/* Builds prefix + mid + suffix in a fresh buffer. */
static char *join3_(const char *a, size_t na, const char *b, size_t nb, const char *c, size_t nc) {
    char *r = malloc(na + nb + nc + 1);
    if (!r) return NULL;
    memcpy(r, a, na);
    memcpy(r + na, b, nb);
    memcpy(r + na + nb, c, nc);
    r[na + nb + nc] = 0;
    return r;
}

static clasp_status expand_(const char *s, size_t n, size_t from, strvec *out, int depth);

/* Expands s with the group [open, close] replaced by `alt`, then continues. */
static clasp_status expand_alt_(const char *s, size_t open, size_t close, size_t n, const char *alt,
                                size_t nalt, strvec *out, int depth) {
    char *t = join3_(s, open, alt, nalt, s + close + 1, n - close - 1);
    if (!t) return clasp_set_error(CLASP_ERR_NOMEM, "shard list: out of memory");
    /* Braces inside `alt` (nested lists) are expanded too: continue from the group start. */
    clasp_status st = expand_(t, open + nalt + (n - close - 1), open, out, depth + 1);
    free(t);
    return st;
}

static clasp_status expand_(const char *s, size_t n, size_t from, strvec *out, int depth) {
    if (depth > 64) return clasp_set_error(CLASP_ERR_ARG, "shard spec: braces nested too deeply");
    for (size_t i = from; i < n; i++) {
        if (s[i] == '}') {
            /* A stray closing brace: literal, as in bash. */
            continue;
        }
        if (s[i] != '{') continue;
        long close = match_(s, n, i);
        if (close < 0)
            return clasp_set_error(CLASP_ERR_ARG, "shard spec '%.*s': unbalanced '{'", (int)n, s);
        size_t c = (size_t)close;
        const char *in = s + i + 1;
        size_t nin = c - i - 1;
        /* Top-level commas make a list. */
        int d = 0;
        bool has_comma = false;
        for (size_t k = 0; k < nin; k++) {
            if (in[k] == '{')
                d++;
            else if (in[k] == '}')
                d--;
            else if (in[k] == ',' && d == 0)
                has_comma = true;
        }
        if (has_comma) {
            size_t start = 0;
            d = 0;
            for (size_t k = 0; k <= nin; k++) {
                if (k < nin && in[k] == '{')
                    d++;
                else if (k < nin && in[k] == '}')
                    d--;
                if (k == nin || (in[k] == ',' && d == 0)) {
                    CLASP_TRY(expand_alt_(s, i, c, n, in + start, k - start, out, depth));
                    start = k + 1;
                }
            }
            return CLASP_OK;
        }
        const char *dots = NULL;
        for (size_t k = 0; k + 1 < nin; k++)
            if (in[k] == '.' && in[k + 1] == '.') {
                dots = in + k;
                break;
            }
        if (dots) {
            size_t na = (size_t)(dots - in), nb = nin - na - 2;
            const char *b = dots + 2;
            if (all_digits_(in, na) && all_digits_(b, nb)) {
                unsigned long long lo = strtoull(in, NULL, 10), hi = strtoull(b, NULL, 10);
                int width = 0;
                if ((na > 1 && in[0] == '0') || (nb > 1 && b[0] == '0'))
                    width = (int)(na > nb ? na : nb);
                long long step = lo <= hi ? 1 : -1;
                unsigned long long count = (lo <= hi ? hi - lo : lo - hi) + 1;
                if (count > out->max)
                    return clasp_set_error(CLASP_ERR_OVERFLOW,
                                           "shard spec range {%.*s} has %llu names (max %zu)",
                                           (int)nin, in, count, out->max);
                for (unsigned long long k = 0; k < count; k++) {
                    char num[32];
                    unsigned long long v = lo + (unsigned long long)((long long)k * step);
                    int m = snprintf(num, sizeof num, "%0*llu", width, v);
                    CLASP_TRY(expand_alt_(s, i, c, n, num, (size_t)m, out, depth));
                }
                return CLASP_OK;
            }
        }
        /* Neither a list nor a numeric range: the group is literal; expand what follows. */
        i = c;
    }
    return push_(out, s, n);
}

clasp_status clasp_shardlist_expand(const char *spec, clasp_shardlist *out) {
    return clasp_shardlist_expand_max(spec, CLASP_SHARDLIST_MAX, out);
}

clasp_status clasp_shardlist_expand_max(const char *spec, size_t max_names, clasp_shardlist *out) {
    memset(out, 0, sizeof *out);
    if (!spec || !*spec) return clasp_set_error(CLASP_ERR_ARG, "empty shard spec");
    strvec sv = {.max = max_names};
    clasp_status st = CLASP_OK;
    const char *p = spec;
    for (;;) {
        const char *e = strstr(p, "::");
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0) {
            st = clasp_set_error(CLASP_ERR_ARG, "shard spec '%s': empty part around '::'", spec);
            break;
        }
        /* count first, so a spec above the cap is refused before its names take memory
         * (products of ranges reached gigabytes under ASan: tests/fuzz/fuzz_shardspec.c) */
        strvec count = {.n = sv.n, .max = max_names, .count_only = true};
        st = expand_(p, n, 0, &count, 0);
        if (st == CLASP_OK) st = expand_(p, n, 0, &sv, 0);
        if (st != CLASP_OK) break;
        if (!e) break;
        p = e + 2;
    }
    out->names = sv.v;
    out->n = sv.n;
    if (st == CLASP_OK && sv.n == 0)
        st = clasp_set_error(CLASP_ERR_ARG, "shard spec '%s' names no shard", spec);
    for (size_t i = 0; st == CLASP_OK && i < sv.n; i++)
        if (clasp_shard_is_pipe(sv.v[i]) && !clasp_shard_pipes_allowed())
            st = clasp_set_error(CLASP_ERR_ARG,
                                 "shard '%s': pipe: shards are forbidden here (CLASP_NO_PIPE is "
                                 "set)",
                                 sv.v[i]);
    return st;
}

void clasp_shardlist_free(clasp_shardlist *l) {
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    l->names = NULL;
    l->n = 0;
}

bool clasp_shard_pipes_allowed(void) {
    const char *v = getenv("CLASP_NO_PIPE");
    return !v || !v[0] || !strcmp(v, "0");
}

bool clasp_shard_is_pipe(const char *name) {
    return strncmp(name, "pipe:", 5) == 0;
}

bool clasp_shard_is_stdin(const char *name) {
    return strcmp(name, "-") == 0;
}

clasp_status clasp_shard_order_init(clasp_shard_order *o, const clasp_shardlist *list,
                                    uint64_t seed, uint64_t epoch, int rank, int world,
                                    bool shuffle, bool resample) {
    memset(o, 0, sizeof *o);
    if (!list || list->n == 0)
        return clasp_set_error(CLASP_ERR_ARG, "empty shard list: nothing to read");
    if (world < 1 || rank < 0 || rank >= world)
        return clasp_set_error(CLASP_ERR_ARG, "rank %d outside world size %d", rank, world);
    o->list = list;
    o->seed = seed;
    o->epoch = epoch;
    o->rank = rank;
    o->world = world;
    o->shuffle = shuffle;
    o->resample = resample;
    if (resample) {
        o->n = list->n;
        return CLASP_OK;
    }
    if (list->n < (size_t)world)
        return clasp_set_error(CLASP_ERR_ARG,
                               "%zu shard(s) for %d ranks: rank %d would get no shard (split "
                               "the data into at least %d shards, or use --samples-per-epoch "
                               "to resample)",
                               list->n, world, world - 1, world);
    size_t *all = malloc(list->n * sizeof *all);
    if (!all) return clasp_set_error(CLASP_ERR_NOMEM, "shard order: out of memory");
    for (size_t i = 0; i < list->n; i++) all[i] = i;
    if (shuffle) {
        clasp_rng r;
        clasp_rng_init(&r, seed, CLASP_RNG_SHUFFLE, epoch, 0x5348415244ull /* "SHARD" */);
        for (size_t i = list->n; i > 1; i--) {
            size_t j = (size_t)clasp_rng_below(&r, i);
            size_t t = all[i - 1];
            all[i - 1] = all[j];
            all[j] = t;
        }
    }
    size_t n = 0;
    for (size_t i = (size_t)rank; i < list->n; i += (size_t)world) all[n++] = all[i];
    o->idx = all;
    o->n = n;
    return CLASP_OK;
}

void clasp_shard_order_free(clasp_shard_order *o) {
    if (!o) return;
    free(o->idx);
    o->idx = NULL;
    o->n = 0;
}

const char *clasp_shard_order_get(const clasp_shard_order *o, uint64_t p) {
    if (!o->list) return NULL;
    if (o->resample) {
        clasp_rng r;
        uint64_t b = ((uint64_t)(uint32_t)o->rank << 40) ^ p;
        clasp_rng_init(&r, o->seed, CLASP_RNG_RESAMPLE, o->epoch, b);
        return o->list->names[clasp_rng_below(&r, o->list->n)];
    }
    if (p >= o->n) return NULL;
    return o->list->names[o->idx[p]];
}
