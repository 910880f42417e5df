/* manifest.h: the manifest.json written next to a built shard set.
 *
 * Layout (all keys always present; no timestamps, so a rebuild gives the same bytes):
 *
 *     {
 *       "format": "clasp-shards", "format_version": 1, "kind": "fmnist",
 *       "tar": {"format": "pax_restricted", "mtime": 0, "uid": 0, "gid": 0, "mode": "0644",
 *               "block_bytes": 512, "record_padding": false},
 *       "options": {...builder options...},
 *       "fields": ["cls", "png", "txt"],
 *       "splits": {"train": {"samples": 60000, "shards": [
 *                      {"name": "train-000000.tar", "samples": 10000, "bytes": 123,
 *                       "xxh64": "0123456789abcdef"}, ...]}, ...},
 *       "total": {"samples": 70000, "shards": 7, "bytes": 123},
 *       "sources": [{"package": "dataset-fashion-mnist", "version": "0.0~git...",
 *                    "licence": "Expat (MIT)"}],
 *       "skipped": {"total": 3, "by_reason": {"missing_file": 2, "bad_utf8": 1},
 *                   "items": [{"item": "row 7", "reason": "missing_file", "detail": "..."}]}
 *     }
 *
 * Checksums are XXH64 (seed 0) of each shard file as 16 hex digits. There is no sha256: no
 * approved library provides one (libarchive does not expose its digests) and hashing is not
 * written by hand in clasp. At most CLASP_MANIFEST_MAX_ITEMS skipped items are listed; the
 * counts are always complete.
 *
 * "format_version" is CLASP_MANIFEST_FORMAT_VERSION; a change to the layout bumps it, and a
 * reader refuses a manifest newer than it knows (clasp_manifest_load). Manifests written before
 * the field existed (they said "version": 1) read as version 1.
 */
#ifndef CLASP_DATASETS_MANIFEST_H
#define CLASP_DATASETS_MANIFEST_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "core/status.h"
#include "datasets/shard_writer.h"

#define CLASP_MANIFEST_MAX_ITEMS      10000
#define CLASP_MANIFEST_FORMAT_VERSION 1

typedef struct clasp_manifest {
    cJSON *root;
    cJSON *splits, *sources, *by_reason, *items, *options, *fields;
    size_t n_skipped;
} clasp_manifest;

/* Starts a manifest for a builder `kind` ("fmnist", "folder", ...). Free with _free. */
clasp_status clasp_manifest_init(clasp_manifest *m, const char *kind);
void clasp_manifest_free(clasp_manifest *m);

/* Records the shards of a closed writer as split `split`. */
clasp_status clasp_manifest_add_split(clasp_manifest *m, const char *split,
                                      const clasp_shard_writer *w);
/* Records a Debian source package with the installed version (dpkg-query; "unknown" if dpkg
 * does not know it) and its licence. */
clasp_status clasp_manifest_add_package(clasp_manifest *m, const char *package,
                                        const char *licence);
/* Same with an explicit version (npm packages, local folders). */
clasp_status clasp_manifest_add_source(clasp_manifest *m, const char *name, const char *version,
                                       const char *licence);
/* Counts one skipped item under `reason` (a short snake_case word) and lists it with an
 * optional detail while fewer than CLASP_MANIFEST_MAX_ITEMS are listed. */
clasp_status clasp_manifest_skip(clasp_manifest *m, const char *reason, const char *item,
                                 const char *detail);
/* The field extensions every sample carries, e.g. {"cls", "png", "txt"}. */
clasp_status clasp_manifest_set_fields(clasp_manifest *m, const char *const *exts, size_t n);
/* Builder options object (caller adds members to it); owned by the manifest. */
cJSON *clasp_manifest_options(clasp_manifest *m);

/* Fills "total" and writes DIR/manifest.json atomically. */
clasp_status clasp_manifest_save(clasp_manifest *m, const char *dir);
/* Reads DIR/manifest.json into *out (caller frees with cJSON_Delete) and checks its format
 * version: CLASP_ERR_UNSUPPORTED naming the file and both versions when it is newer than
 * CLASP_MANIFEST_FORMAT_VERSION; missing file or bad JSON as clasp_json_load. *version (may be
 * NULL) gets the file's format version. */
clasp_status clasp_manifest_load(const char *dir, cJSON **out, int *version);
/* A new summary object for `--json` (kind, splits with samples and shard count, total,
 * skipped counts, manifest path). Caller frees with cJSON_Delete; NULL on OOM. */
cJSON *clasp_manifest_summary(const clasp_manifest *m, const char *dir);

/* Installed version of a Debian package (dpkg-query -W -f '${Version}'), into out[cap].
 * Returns CLASP_ERR_NOT_FOUND when dpkg does not list it as installed. */
clasp_status clasp_dpkg_version(const char *package, char *out, size_t cap);

#endif
