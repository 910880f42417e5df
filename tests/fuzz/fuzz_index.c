/* fuzz_index.c: libFuzzer target: arbitrary bytes as an index folder (index/index.h) -> the
 * `current` version, meta.json's fields, keys.txt (count, lines), the FAISS header checked
 * against meta.json (tag, dim, count, metric), the content hashes.
 *
 * Input: META "\n--keys--\n" KEYS "\n--faiss--\n" FAISS (a missing part is an empty file). So that
 * mutations get past the keys' content hash to the parser behind it, "@KEYS@" in META is
 * replaced by the xxh64 (16 hex digits) of KEYS, as a writer records it. index.faiss's hash is
 * never substituted: FAISS 1.7.3's own reader is not safe on crafted bytes (this target, when
 * it let them through, found a division by zero in ProductQuantizer::set_derived_values and
 * allocations of whatever length a file declares), so clasp hands FAISS only files whose xxh64
 * is the one meta.json records (docs/index.md). Seeds (tests/fuzz/corpus/index) are small
 * flat, hnsw and ivf-pq folders in this form (their index.faiss hash recorded), made with
 * clasp_index_build (5 x 8 flat, 6 x 8 hnsw:M=4,efc=8,ef=8, 300 x 8
 * ivf-pq:nlist=4,m=2,nbits=4,nprobe=2) then joined with the separators, meta.json's keys_hash
 * replaced by "@KEYS@" (tests/fuzz/make_seeds.py has no FAISS to write them). */
#include <sys/stat.h>

#include "core/hash.h"
#include "fuzz.h"
#include "index/index.h"

/* The first occurrence of the NUL-terminated s in data[size], or NULL. */
static const uint8_t *find_(const uint8_t *data, size_t size, const char *s) {
    size_t n = strlen(s);
    for (size_t i = 0; i + n <= size; i++)
        if (data[i] == (uint8_t)s[0] && !memcmp(data + i, s, n)) return data + i;
    return NULL;
}

/* The part of data after `sep` up to `next` (or the end); NULL when sep is absent. */
static const uint8_t *part_(const uint8_t *data, size_t size, const char *sep, const char *next,
                            size_t *n) {
    const uint8_t *p = find_(data, size, sep);
    if (!p) return NULL;
    p += strlen(sep);
    size_t rest = size - (size_t)(p - data);
    const uint8_t *e = next ? find_(p, rest, next) : NULL;
    *n = e ? (size_t)(e - p) : rest;
    return p;
}

/* meta with every "@KEYS@" replaced by hex digits (6 -> 16 bytes). */
static char *meta_(const uint8_t *m, size_t n, const char *keys) {
    char *out = malloc(n * 3 + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n;) {
        if (i + 6 <= n && !memcmp(m + i, "@KEYS@", 6)) {
            memcpy(o, keys, 16), o += 16, i += 6;
        } else {
            *o++ = (char)m[i++];
        }
    }
    *o = '\0';
    return out;
}

static int put_(const char *dir, const char *leaf, const void *p, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, leaf);
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    return fclose(f) == 0 && w == n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char root[256], vdir[300];
    if (!root[0]) {
        fuzz_quiet();
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(root, sizeof root, "%s/clasp-fuzz-index-%ld", base, (long)getpid());
        snprintf(vdir, sizeof vdir, "%s/v1", root);
        mkdir(root, 0755);
        mkdir(vdir, 0755);
        char link[320];
        snprintf(link, sizeof link, "%s/current", root);
        if (symlink("v1", link) != 0) return 0;
    }
    size_t kn = 0, fn = 0;
    const uint8_t *keys = part_(data, size, "\n--keys--\n", "\n--faiss--\n", &kn);
    const uint8_t *faiss = part_(data, size, "\n--faiss--\n", NULL, &fn);
    const uint8_t *end = find_(data, size, "\n--keys--\n");
    size_t mn = end ? (size_t)(end - data) : size;
    char kh[17];
    clasp_hash_hex(clasp_hash64(keys ? keys : data, keys ? kn : 0, 0), kh);
    char *meta = meta_(data, mn, kh);
    if (!meta) return 0;
    int ok = put_(vdir, "meta.json", meta, strlen(meta)) && put_(vdir, "keys.txt", keys, kn) &&
             put_(vdir, "index.faiss", faiss, fn);
    free(meta);
    clasp_index *ix = NULL;
    if (ok && clasp_index_open(root, &ix) == CLASP_OK) {
        const clasp_index_meta *m = clasp_index_get_meta(ix);
        float *q = calloc((size_t)m->dim, sizeof *q);
        int64_t ids[3];
        float sc[3];
        if (q) {
            q[0] = 1.0f;
            if (clasp_index_search(ix, q, 1, 3, 0, ids, sc) == CLASP_OK)
                for (int i = 0; i < 3; i++) (void)clasp_index_key(ix, ids[i]);
        }
        free(q);
        clasp_index_close(ix);
    }
    return 0;
}
