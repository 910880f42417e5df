/* safetensors.h: read and write the safetensors format (huggingface/safetensors).
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "value", ...}}, then the data block; offsets are relative to it.
 * Reading validates everything before use: header length within the file, JSON well formed,
 * dtype known, shape product * dtype size == end - begin, offsets inside the data block and
 * non-overlapping. Any violation is CLASP_ERR_FORMAT naming the file and the tensor.
 *
 *     clasp_safetensors *st;
 *     if (clasp_st_open("model.safetensors", &st)) { ... clasp_last_error() ... }
 *     const clasp_st_tensor *t = clasp_st_find(st, "image.conv1.weight");
 *     const float *w = clasp_st_f32(st, t);   // aligned copy owned by st
 *     clasp_st_free(st);
 */
#ifndef CLASP_CORE_SAFETENSORS_H
#define CLASP_CORE_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define CLASP_ST_MAX_DIMS 8

typedef enum clasp_dtype {
    CLASP_DTYPE_F32 = 0,
    CLASP_DTYPE_F64,
    CLASP_DTYPE_F16,
    CLASP_DTYPE_BF16,
    CLASP_DTYPE_I64,
    CLASP_DTYPE_I32,
    CLASP_DTYPE_I16,
    CLASP_DTYPE_I8,
    CLASP_DTYPE_U8,
    CLASP_DTYPE_BOOL
} clasp_dtype;

const char *clasp_dtype_name(clasp_dtype d);
size_t clasp_dtype_size(clasp_dtype d);

typedef struct clasp_st_tensor {
    char *name;
    clasp_dtype dtype;
    int ndim;
    int64_t shape[CLASP_ST_MAX_DIMS];
    size_t numel;
    size_t begin, end;         /* byte offsets in the data block */
    const unsigned char *data; /* points into the file buffer (maybe unaligned) */
} clasp_st_tensor;

typedef struct clasp_safetensors {
    char *path;
    unsigned char *file; /* whole file */
    size_t file_len;
    int n_tensors;
    clasp_st_tensor *tensors; /* in file order of data offsets */
    int n_meta;
    char **meta_keys;
    char **meta_values;
    float **f32_cache; /* aligned float copies, per tensor, made on demand */
    bool mapped;       /* file is a read-only mapping (clasp_st_open_mapped) */
} clasp_safetensors;

/* Reads and validates a file. Files above 4 GiB are refused. */
clasp_status clasp_st_open(const char *path, clasp_safetensors **out);
/* As clasp_st_open, but maps the file read-only instead of reading it: only the pages a
 * caller touches become resident, and clasp_st_release can drop them again (a loader copying
 * tensors one by one then never holds the whole file). */
clasp_status clasp_st_open_mapped(const char *path, clasp_safetensors **out);
/* Drops the resident pages lying wholly inside tensor t's data from a mapped file (they are
 * read again from the file if touched later); a no-op for a file read into memory. */
void clasp_st_release(clasp_safetensors *st, const clasp_st_tensor *t);
/* Parses a memory buffer (copied); `what` names it in messages. */
clasp_status clasp_st_from_memory(const void *buf, size_t n, const char *what,
                                  clasp_safetensors **out);
void clasp_st_free(clasp_safetensors *st);

const clasp_st_tensor *clasp_st_find(const clasp_safetensors *st, const char *name);
/* A float32 view of an F32 tensor (aligned, owned by st); NULL with an error if the dtype is
 * not F32. */
const float *clasp_st_f32(clasp_safetensors *st, const clasp_st_tensor *t);
/* Finds `name` and checks dtype F32 and the expected shape (ndim dims), touching no data;
 * *out (may be NULL) = the tensor. Errors name the file and the tensor. */
clasp_status clasp_st_check_f32(const clasp_safetensors *st, const char *name, int ndim,
                                const int64_t *shape, const clasp_st_tensor **out);
/* clasp_st_check_f32, then copies the tensor into dst. */
clasp_status clasp_st_read_f32(clasp_safetensors *st, const char *name, int ndim,
                               const int64_t *shape, float *dst);
/* Metadata value or NULL. */
const char *clasp_st_meta(const clasp_safetensors *st, const char *key);

/* Writer: collect tensors (data pointers are borrowed until write), then write atomically. */
typedef struct clasp_st_writer clasp_st_writer;
clasp_st_writer *clasp_st_writer_new(void);
clasp_status clasp_st_writer_add(clasp_st_writer *w, const char *name, clasp_dtype dtype, int ndim,
                                 const int64_t *shape, const void *data);
clasp_status clasp_st_writer_meta(clasp_st_writer *w, const char *key, const char *value);
/* Writes to path.tmp, fsyncs, renames. Tensors are stored in the order they were added. */
clasp_status clasp_st_writer_write(clasp_st_writer *w, const char *path);
void clasp_st_writer_free(clasp_st_writer *w);

#endif
