/* json.h: reading configs and state files with cJSON, with errors that name the file and
 * the field path ("configs/x.json: field 'text.heads': expected a positive integer"). */
#ifndef CLASP_CORE_JSON_H
#define CLASP_CORE_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* Reads and parses a whole file (max 64 MiB). On a parse error the message gives the byte
 * offset and a snippet. Caller frees with cJSON_Delete. */
clasp_status clasp_json_load(const char *path, cJSON **out);
/* Parses a buffer; `what` names it in messages. */
clasp_status clasp_json_parse(const char *text, size_t n, const char *what, cJSON **out);
/* Writes `root` (pretty) to `path` atomically: path.tmp, fsync, rename. */
clasp_status clasp_json_save(const char *path, const cJSON *root);

/* Typed field access. `file` and `prefix` only build messages ("prefix.name").
 * The _opt forms return `def` when the field is absent but still reject a wrong type. */
clasp_status clasp_json_int(const cJSON *obj, const char *name, const char *file,
                            const char *prefix, int64_t lo, int64_t hi, int64_t *out);
clasp_status clasp_json_int_opt(const cJSON *obj, const char *name, const char *file,
                                const char *prefix, int64_t lo, int64_t hi, int64_t def,
                                int64_t *out);
clasp_status clasp_json_num(const cJSON *obj, const char *name, const char *file,
                            const char *prefix, double *out);
clasp_status clasp_json_num_opt(const cJSON *obj, const char *name, const char *file,
                                const char *prefix, double def, double *out);
clasp_status clasp_json_bool_opt(const cJSON *obj, const char *name, const char *file,
                                 const char *prefix, bool def, bool *out);
/* Copies a string field into out[cap]; error if absent (non-_opt), not a string or too long. */
clasp_status clasp_json_str(const cJSON *obj, const char *name, const char *file,
                            const char *prefix, char *out, size_t cap);
clasp_status clasp_json_str_opt(const cJSON *obj, const char *name, const char *file,
                                const char *prefix, const char *def, char *out, size_t cap);
/* Required object member (error if absent or not an object). */
clasp_status clasp_json_obj(const cJSON *obj, const char *name, const char *file,
                            const char *prefix, const cJSON **out);

/* A float as the double of its shortest decimal form (6 to 9 significant digits): serialises
 * short ("1e-05", not "9.9999997473787516e-06") and parses back to the same float. */
double clasp_json_short_float(float v);

/* The format version of a file clasp wrote (manifest.json, checkpoints, exports): the root's
 * integer "format_version", 1 when absent (files from before the field). A version above
 * `supported` is refused with CLASP_ERR_UNSUPPORTED and a message naming `file` and both
 * versions; a value that is not a positive integer is CLASP_ERR_CONFIG naming the field. */
clasp_status clasp_json_format_version(const cJSON *root, const char *file, int supported,
                                       int *out);

/* Reads a whole file into a NUL-terminated malloc'd buffer (max `limit` bytes). */
clasp_status clasp_read_file(const char *path, size_t limit, char **out, size_t *n);
/* True when path names a regular file (is_file) or a folder (is_dir), links followed. */
bool clasp_is_file(const char *path);
bool clasp_is_dir(const char *path);
/* Creates a folder and any missing parents (mkdir -p, mode 0755); an existing folder is fine,
 * an existing non-folder is CLASP_ERR_IO naming it. */
clasp_status clasp_mkdir_p(const char *path);
/* A folder's entries made durable (after creating or renaming files in it). A failure is an
 * error: the files may not survive a crash (found by scripts/faultinject.sh). */
clasp_status clasp_fsync_dir(const char *dir);
/* Removes a folder of files (not recursive: sub-folders make the rmdir fail, an error naming
 * it); a missing folder is fine. */
clasp_status clasp_rm_dir(const char *dir);
/* Writes bytes to path.tmp, fsyncs, renames to path. */
clasp_status clasp_write_file_atomic(const char *path, const void *data, size_t n);

#endif
