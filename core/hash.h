/* hash.h: xxhash (XXH64/XXH3) for sample keys, parameter names and checksums. */
#ifndef CLASP_CORE_HASH_H
#define CLASP_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t clasp_hash64(const void *data, size_t n, uint64_t seed); /* XXH64 */
uint64_t clasp_hash_str(const char *s, uint64_t seed);            /* XXH64 of strlen(s) bytes */
/* 16 lowercase hex digits of XXH64 into out[17]. */
void clasp_hash_hex(uint64_t h, char out[17]);

#endif
