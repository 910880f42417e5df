/* hash.c: thin wrappers over libxxhash. */
#include "core/hash.h"

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
