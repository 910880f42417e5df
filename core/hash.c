/* hash.c: thin wrappers over libxxhash. */
#include "core/hash.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

uint64_t clasp_hash64(const void *data, size_t n, uint64_t seed) {
    return (uint64_t)XXH64(data, n, (XXH64_hash_t)seed);
}

uint64_t clasp_hash_str(const char *s, uint64_t seed) {
    return clasp_hash64(s, strlen(s), seed);
}

void clasp_hash_hex(uint64_t h, char out[17]) {
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

clasp_status clasp_hash_file(const char *path, uint64_t *out) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return clasp_set_error(errno == ENOENT ? CLASP_ERR_NOT_FOUND : CLASP_ERR_IO, "%s: %s", path,
                               strerror(errno));
    XXH64_state_t *st = XXH64_createState();
    clasp_status s = st ? CLASP_OK : clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
    if (s == CLASP_OK) XXH64_reset(st, 0);
    char buf[1 << 16];
    size_t got;
    while (s == CLASP_OK && (got = fread(buf, 1, sizeof buf, f)) > 0) XXH64_update(st, buf, got);
    if (s == CLASP_OK && ferror(f)) s = clasp_set_error(CLASP_ERR_IO, "%s: read error", path);
    if (s == CLASP_OK) *out = (uint64_t)XXH64_digest(st);
    XXH64_freeState(st);
    fclose(f);
    return s;
}
