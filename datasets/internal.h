/* internal.h: helpers shared by the dataset builders (private to datasets/). */
#ifndef CLASP_DATASETS_INTERNAL_H
#define CLASP_DATASETS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* Reads a whole file, decompressing it when libarchive recognises a filter (gzip, xz, bzip2,
 * zstd, ...), into a NUL-terminated malloc'd buffer *out of *n bytes (NUL not counted).
 * Fails with CLASP_ERR_OVERFLOW beyond `limit` bytes, CLASP_ERR_NOT_FOUND if the file does not
 * exist, CLASP_ERR_IO / CLASP_ERR_FORMAT otherwise; the message names the file. */
clasp_status clasp__read_decompressed(const char *path, size_t limit, uint8_t **out, size_t *n);

/* True when `path` names an existing regular file. */
int clasp__is_file(const char *path);
/* Creates directory `path` (one level) unless it exists. */
clasp_status clasp__ensure_dir(const char *path);
/* Writes `text` to DIR/NAME atomically. */
clasp_status clasp__write_text(const char *dir, const char *name, const char *text);

#endif
