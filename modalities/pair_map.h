/* pair_map.h: the open-addressing map uint64 -> int64 that the BPE tokenizers (tokenizer.c,
 * clip_bpe.c) key merges by: a pair of ids packed by pair_key. Internal to modalities/. */
#ifndef CLASP_MODALITIES_PAIR_MAP_H
#define CLASP_MODALITIES_PAIR_MAP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

#define EMPTY_KEY UINT64_MAX

/* ---- open-addressing map uint64 -> int64 (pair -> rank or count) ---- */

typedef struct pair_map {
    uint64_t *keys;
    int64_t *vals;
    size_t cap; /* power of two */
    size_t n;
} pair_map;

static inline uint64_t pair_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

static inline bool map_init(pair_map *m, size_t want) {
    size_t cap = 64;
    while (cap < want * 2) cap *= 2;
    m->keys = malloc(cap * sizeof *m->keys);
    m->vals = calloc(cap, sizeof *m->vals);
    m->cap = cap;
    m->n = 0;
    if (!m->keys || !m->vals) return false;
    for (size_t i = 0; i < cap; i++) m->keys[i] = EMPTY_KEY;
    return true;
}

static inline void map_free(pair_map *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static inline size_t map_slot(const pair_map *m, uint64_t key) {
    size_t i = (size_t)clasp_splitmix64(key) & (m->cap - 1);
    while (m->keys[i] != EMPTY_KEY && m->keys[i] != key) i = (i + 1) & (m->cap - 1);
    return i;
}

/* Value for key, or -1 if absent. */
static inline int64_t map_get(const pair_map *m, uint64_t key) {
    if (!m->cap) return -1;
    size_t i = map_slot(m, key);
    return m->keys[i] == key ? m->vals[i] : -1;
}

/* Pointer to the value of key, inserting 0 if absent; NULL on OOM. */
static inline int64_t *map_ref(pair_map *m, uint64_t key) {
    if ((m->n + 1) * 2 > m->cap) {
        pair_map bigger;
        if (!map_init(&bigger, m->cap)) {
            map_free(&bigger);
            return NULL;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (m->keys[i] == EMPTY_KEY) continue;
            size_t j = map_slot(&bigger, m->keys[i]);
            bigger.keys[j] = m->keys[i];
            bigger.vals[j] = m->vals[i];
        }
        bigger.n = m->n;
        map_free(m);
        *m = bigger;
    }
    size_t i = map_slot(m, key);
    if (m->keys[i] != key) {
        m->keys[i] = key;
        m->vals[i] = 0;
        m->n++;
    }
    return &m->vals[i];
}

/* Replaces every occurrence of the pair (a, b) in ids[0..len), left to right, by `id`, in
 * place; returns the new length. Encoding, training and
 * clip_bpe merge with this one rule. */
static inline size_t merge_pair(int32_t *ids, size_t len, int32_t a, int32_t b, int32_t id) {
    size_t w = 0;
    for (size_t i = 0; i < len;) {
        if (i + 1 < len && ids[i] == a && ids[i + 1] == b) {
            ids[w++] = id;
            i += 2;
        } else {
            ids[w++] = ids[i++];
        }
    }
    return w;
}

/* The lowest value m holds for an adjacent pair of ids[0..L), its first position in *at; -1 when
 * no pair is in m. With value = rank (or rank << 32 | id) this is the next merge of a word. */
static inline int64_t lowest_pair(const pair_map *m, const int32_t *ids, size_t L, size_t *at) {
    int64_t best = INT64_MAX;
    *at = 0;
    for (size_t i = 0; i + 1 < L; i++) {
        int64_t r = map_get(m, pair_key(ids[i], ids[i + 1]));
        if (r >= 0 && r < best) {
            best = r;
            *at = i;
        }
    }
    return best == INT64_MAX ? -1 : best;
}

#endif
