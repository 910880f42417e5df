/* hash.h: xxhash (XXH64/XXH3) for sample keys, parameter names and checksums. */
#ifndef CLASP_CORE_HASH_H
#define CLASP_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

uint64_t clasp_hash64(const void *data, size_t n, uint64_t seed); /* XXH64 */
uint64_t clasp_hash_str(const char *s, uint64_t seed);            /* XXH64 of strlen(s) bytes */
/* 16 lowercase hex digits of XXH64 into out[17]. */
void clasp_hash_hex(uint64_t h, char out[17]);
/* XXH64 (seed 0) of a whole file, read in chunks (the same value as clasp_hash64 of its bytes;
 * no size limit, no copy in memory): checkpoint checksums, the model hash of sidecars.
 * CLASP_ERR_NOT_FOUND / CLASP_ERR_IO name the file. */
clasp_status clasp_hash_file(const char *path, uint64_t *out);

#endif
