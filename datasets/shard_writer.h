/* shard_writer.h: writes WebDataset tar shards (PREFIX-000000.tar, ...) with libarchive.
 *
 * Lifecycle (whoever calls _open calls _free):
 *
 *     clasp_shard_writer_config c = clasp_shard_writer_default_config();
 *     c.dir = "out"; c.prefix = "train"; c.maxcount = 10000;
 *     clasp_shard_writer *w;
 *     CLASP_TRY(clasp_shard_writer_open(&c, &w));
 *     clasp_shard_field f[2] = {{"txt", "a cat", 5}, {"png", png, png_nbytes}};
 *     clasp_shard_writer_add(w, "train_000000", f, 2);   // any number of times
 *     clasp_shard_writer_close(w);                        // finishes the last shard
 *     ... clasp_shard_writer_shards(w, &n) ...            // what was written
 *     clasp_shard_writer_free(w);
 *
 * Format. Members are written in the "restricted pax" tar format (archive_write_set_format_
 * pax_restricted): a plain ustar header per member, plus a pax extended header only when a
 * name needs it (longer than ustar allows, or not ASCII: the pax "path" record then holds the
 * UTF-8 name). Keys must be valid UTF-8. libarchive's name conversion follows the locale, so
 * the writer runs its libarchive calls under a thread-local C.UTF-8 LC_CTYPE (uselocale) and
 * never depends on, or changes, the process locale. A sample
 * is a run of adjacent members KEY.EXT, in ascending byte order of EXT (so "cls" < "json" <
 * "png" < "txt"), which is WebDataset's grouping rule: key = path up to the first dot of its
 * last component.
 *
 * Reproducibility. Every member has mtime CLASP_SHARD_MTIME (0, the epoch), uid = gid = 0,
 * empty uname/gname, mode 0644, type regular file, and no atime/ctime; the archive is written
 * unblocked (archive_write_set_bytes_per_block(0)) so a shard ends right after the two
 * 512-byte end-of-archive blocks instead of being padded to a 10240-byte record. The same
 * calls in the same order therefore give byte-identical shards.
 *
 * Size limits. A sample's exact tar size (headers, pax extended headers, data padded to 512)
 * is measured by formatting its headers through a second libarchive handle that counts bytes
 * and discards them (clasp_shard_sample_nbytes). A new shard starts when adding the sample
 * would make the shard hold more than `maxcount` samples, or make its file (including the
 * 1024-byte end-of-archive marker) larger than `maxsize` bytes. A shard exceeds `maxsize` only
 * when one sample alone does; it then holds only that sample.
 *
 * Atomicity. A shard is written to "NAME.tmp", flushed, fsynced and renamed to NAME when it is
 * complete. _free without _close removes the unfinished temporary file.
 *
 * Not thread-safe: one writer per thread.
 */
#ifndef CLASP_DATASETS_SHARD_WRITER_H
#define CLASP_DATASETS_SHARD_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define CLASP_SHARD_MTIME      0    /* seconds since the epoch, for every member */
#define CLASP_SHARD_EOA_NBYTES 1024 /* end-of-archive marker: two zero blocks */
#define CLASP_SHARD_MAX_FIELDS 32
#define CLASP_SHARD_MAX_NAME   1024 /* longest KEY.EXT in bytes */

typedef struct clasp_shard_writer_config {
    const char *dir;    /* output directory (must exist) */
    const char *prefix; /* shard names: PREFIX-%06d.tar; may not contain '/' */
    size_t maxcount;    /* samples per shard; 0 = no limit */
    uint64_t maxsize;   /* bytes per shard file, all headers and padding included; 0 = none */
} clasp_shard_writer_config;

/* One member of a sample: KEY.EXT with `nbytes` bytes of `data` (not copied). */
typedef struct clasp_shard_field {
    const char *ext; /* e.g. "png", "txt", "cls"; lower case, no '/', not empty */
    const void *data;
    size_t nbytes;
} clasp_shard_field;

/* A finished shard. */
typedef struct clasp_shard_info {
    char name[256];   /* file name inside dir, e.g. "train-000000.tar" */
    size_t n_samples; /* samples in the shard */
    uint64_t nbytes;  /* file size in bytes */
    uint64_t xxh64;   /* XXH64 (seed 0) of the whole file */
} clasp_shard_info;

typedef struct clasp_shard_writer clasp_shard_writer;

/* dir = NULL, prefix = "shard", maxcount = 10000, maxsize = 0 (no byte limit). */
clasp_shard_writer_config clasp_shard_writer_default_config(void);

/* Creates a writer. No file is created until the first sample. Returns CLASP_ERR_ARG for a
 * NULL/invalid config, CLASP_ERR_NOMEM. On error *out is NULL. */
clasp_status clasp_shard_writer_open(const clasp_shard_writer_config *cfg,
                                     clasp_shard_writer **out);

/* Appends one sample: `n_fields` members KEY.EXT, reordered by EXT. The key must be non-empty
 * UTF-8 text without '.' in its last path component and without a leading '/'; extensions must
 * be distinct. Returns CLASP_ERR_ARG for a bad key/extension (nothing is written; the writer
 * stays usable), CLASP_ERR_IO / CLASP_ERR_FORMAT when the shard cannot be written (the writer
 * is then in an error state: only _free is valid). */
clasp_status clasp_shard_writer_add(clasp_shard_writer *w, const char *key,
                                    const clasp_shard_field *fields, size_t n_fields);

/* Finishes and renames the current shard. Idempotent. After _close only the query functions
 * and _free are valid. */
clasp_status clasp_shard_writer_close(clasp_shard_writer *w);

/* Shards finished so far (array owned by the writer, valid until the next _add/_free). */
const clasp_shard_info *clasp_shard_writer_shards(const clasp_shard_writer *w, size_t *n);
/* Samples written so far, over all shards. */
size_t clasp_shard_writer_n_samples(const clasp_shard_writer *w);

/* Removes the unfinished temporary shard (if any) and releases everything. Accepts NULL. */
void clasp_shard_writer_free(clasp_shard_writer *w);

/* Exact number of bytes the sample occupies in a shard written by this writer (all member
 * headers, pax extended headers and 512-byte padding; no end-of-archive). Same argument rules
 * and errors as clasp_shard_writer_add. */
clasp_status clasp_shard_sample_nbytes(const char *key, const clasp_shard_field *fields,
                                       size_t n_fields, uint64_t *out);

#endif
