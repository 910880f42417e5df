/* safetensors.c: validated reader and atomic writer for the safetensors format.
 * ref: https://github.com/huggingface/safetensors (format description in its README). */
#include "core/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/array.h"
#include "core/json.h"
#include "core/sizes.h"

#define ST_MAX_FILE   ((size_t)4 << 30)
#define ST_MAX_HEADER ((size_t)100 << 20)

static const struct {
    const char *name;
    size_t size;
} g_dtypes[] = {
    [CLASP_DTYPE_F32] = {"F32", 4}, [CLASP_DTYPE_F64] = {"F64", 8},
    [CLASP_DTYPE_F16] = {"F16", 2}, [CLASP_DTYPE_BF16] = {"BF16", 2},
    [CLASP_DTYPE_I64] = {"I64", 8}, [CLASP_DTYPE_I32] = {"I32", 4},
    [CLASP_DTYPE_I16] = {"I16", 2}, [CLASP_DTYPE_I8] = {"I8", 1},
    [CLASP_DTYPE_U8] = {"U8", 1},   [CLASP_DTYPE_BOOL] = {"BOOL", 1},
};
#define N_DTYPES ((int)(sizeof g_dtypes / sizeof g_dtypes[0]))

const char *clasp_dtype_name(clasp_dtype d) {
    return ((int)d >= 0 && (int)d < N_DTYPES) ? g_dtypes[d].name : "?";
}

size_t clasp_dtype_size(clasp_dtype d) {
    return ((int)d >= 0 && (int)d < N_DTYPES) ? g_dtypes[d].size : 0;
}

static int dtype_from_name_(const char *s) {
    for (int i = 0; i < N_DTYPES; i++)
        if (!strcmp(s, g_dtypes[i].name)) return i;
    return -1;
}

void clasp_st_free(clasp_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n_tensors; i++) {
        free(st->tensors[i].name);
        if (st->f32_cache) free(st->f32_cache[i]);
    }
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    free(st->f32_cache);
    free(st->tensors);
    if (st->mapped)
        munmap(st->file, st->file_len);
    else
        free(st->file);
    free(st->path);
    free(st);
}

static int cmp_begin_(const void *a, const void *b) {
    const clasp_st_tensor *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

static char *dupstr_(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Parses one tensor entry; `what` is the file name for messages. */
static clasp_status parse_tensor_(const cJSON *it, const char *what, size_t data_len,
                                  clasp_st_tensor *t) {
    const char *name = it->string;
    if (!cJSON_IsObject(it))
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: tensor '%s': entry is not an object", what,
                               name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
    if (!cJSON_IsString(dt))
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: tensor '%s': missing dtype", what, name);
    int d = dtype_from_name_(dt->valuestring);
    if (d < 0)
        return clasp_set_error(CLASP_ERR_UNSUPPORTED, "%s: tensor '%s': unknown dtype '%s'", what,
                               name, dt->valuestring);
    if (!cJSON_IsArray(sh))
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: tensor '%s': missing shape", what, name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > CLASP_ST_MAX_DIMS)
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: tensor '%s': %d dims (max %d)", what, name,
                               nd, CLASP_ST_MAX_DIMS);
    size_t numel = 1;
    int k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, sh) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 9.0e15 ||
            e->valuedouble != (double)(int64_t)e->valuedouble)
            return clasp_set_error(CLASP_ERR_FORMAT, "%s: tensor '%s': bad shape entry %d", what,
                                   name, k);
        t->shape[k] = (int64_t)e->valuedouble;
        if (!clasp_size_mul(numel, (size_t)t->shape[k], &numel))
            return clasp_set_error(CLASP_ERR_OVERFLOW, "%s: tensor '%s': shape overflows", what,
                                   name);
        k++;
    }
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: tensor '%s': missing data_offsets", what,
                               name);
    double b = cJSON_GetArrayItem(off, 0)->valuedouble,
           en = cJSON_GetArrayItem(off, 1)->valuedouble;
    if (!cJSON_IsNumber(cJSON_GetArrayItem(off, 0)) ||
        !cJSON_IsNumber(cJSON_GetArrayItem(off, 1)) || b < 0 || en < b || en > (double)data_len)
        return clasp_set_error(CLASP_ERR_FORMAT,
                               "%s: tensor '%s': data_offsets [%.0f, %.0f] outside the data block "
                               "of %zu bytes",
                               what, name, b, en, data_len);
    size_t nbytes;
    if (!clasp_size_mul(numel, g_dtypes[d].size, &nbytes))
        return clasp_set_error(CLASP_ERR_OVERFLOW, "%s: tensor '%s': size overflows", what, name);
    t->begin = (size_t)b;
    t->end = (size_t)en;
    if (t->end - t->begin != nbytes)
        return clasp_set_error(CLASP_ERR_FORMAT,
                               "%s: tensor '%s': %zu bytes of data but shape and dtype need %zu",
                               what, name, t->end - t->begin, nbytes);
    t->dtype = (clasp_dtype)d;
    t->ndim = nd;
    t->numel = numel;
    t->name = dupstr_(name);
    if (!t->name) return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", what);
    return CLASP_OK;
}

static clasp_status parse_(clasp_safetensors *st, const char *what) {
    if (st->file_len < 8)
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: file of %zu bytes is too short for a header",
                               what, st->file_len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | st->file[i];
    if (hlen > st->file_len - 8 || hlen > ST_MAX_HEADER)
        return clasp_set_error(CLASP_ERR_FORMAT,
                               "%s: header length %llu is beyond the file (%zu bytes)", what,
                               (unsigned long long)hlen, st->file_len);
    cJSON *root = NULL;
    char hwhat[1100];
    snprintf(hwhat, sizeof hwhat, "%s (header)", what);
    CLASP_TRY(clasp_json_parse((const char *)st->file + 8, (size_t)hlen, hwhat, &root));
    clasp_status s = CLASP_OK;
    if (!cJSON_IsObject(root)) {
        s = clasp_set_error(CLASP_ERR_FORMAT, "%s: header is not a JSON object", what);
        goto done;
    }
    size_t data_off = 8 + (size_t)hlen, data_len = st->file_len - data_off;
    int n = cJSON_GetArraySize(root);
    st->tensors = calloc((size_t)n + 1, sizeof *st->tensors);
    st->f32_cache = calloc((size_t)n + 1, sizeof *st->f32_cache);
    if (!st->tensors || !st->f32_cache) {
        s = clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", what);
        goto done;
    }
    const cJSON *it;
    /* JSON allows a key twice and cJSON keeps both: a second "__metadata__" leaked the first's
     * arrays, a second tensor of one name shadowed the first (found by
     * tests/fuzz/fuzz_safetensors.c). A repeated key is a malformed header. */
    cJSON_ArrayForEach(it, root) {
        for (const cJSON *prev = root->child; prev != it; prev = prev->next)
            if (!strcmp(prev->string, it->string)) {
                s = clasp_set_error(CLASP_ERR_FORMAT, "%s: header names '%s' twice", what,
                                    it->string);
                goto done;
            }
    }
    cJSON_ArrayForEach(it, root) {
        if (!strcmp(it->string, "__metadata__")) {
            if (!cJSON_IsObject(it)) {
                s = clasp_set_error(CLASP_ERR_FORMAT, "%s: __metadata__ is not an object", what);
                goto done;
            }
            int m = cJSON_GetArraySize(it);
            st->meta_keys = calloc((size_t)m + 1, sizeof(char *));
            st->meta_values = calloc((size_t)m + 1, sizeof(char *));
            if (!st->meta_keys || !st->meta_values) {
                s = clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", what);
                goto done;
            }
            const cJSON *kv;
            cJSON_ArrayForEach(kv, it) {
                if (!cJSON_IsString(kv)) {
                    s = clasp_set_error(CLASP_ERR_FORMAT, "%s: __metadata__ '%s' is not a string",
                                        what, kv->string);
                    goto done;
                }
                st->meta_keys[st->n_meta] = dupstr_(kv->string);
                st->meta_values[st->n_meta] = dupstr_(kv->valuestring);
                st->n_meta++;
                if (!st->meta_keys[st->n_meta - 1] || !st->meta_values[st->n_meta - 1]) {
                    s = clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", what);
                    goto done;
                }
            }
            continue;
        }
        s = parse_tensor_(it, what, data_len, &st->tensors[st->n_tensors]);
        if (s != CLASP_OK) goto done;
        st->tensors[st->n_tensors].data = st->file + data_off + st->tensors[st->n_tensors].begin;
        st->n_tensors++;
    }
    qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, cmp_begin_);
    for (int i = 1; i < st->n_tensors; i++) {
        if (st->tensors[i].begin < st->tensors[i - 1].end) {
            s = clasp_set_error(CLASP_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", what,
                                st->tensors[i - 1].name, st->tensors[i].name);
            goto done;
        }
    }
    for (int i = 0; i < st->n_tensors; i++)
        for (int j = i + 1; j < st->n_tensors; j++)
            if (!strcmp(st->tensors[i].name, st->tensors[j].name)) {
                s = clasp_set_error(CLASP_ERR_FORMAT, "%s: tensor '%s' appears twice", what,
                                    st->tensors[i].name);
                goto done;
            }
done:
    cJSON_Delete(root);
    return s;
}

clasp_status clasp_st_from_memory(const void *buf, size_t n, const char *what,
                                  clasp_safetensors **out) {
    *out = NULL;
    clasp_safetensors *st = calloc(1, sizeof *st);
    if (!st) return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", what);
    st->path = dupstr_(what);
    st->file = malloc(n ? n : 1);
    if (!st->path || !st->file) {
        clasp_st_free(st);
        return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", what);
    }
    memcpy(st->file, buf, n);
    st->file_len = n;
    clasp_status s = parse_(st, what);
    if (s != CLASP_OK) {
        clasp_st_free(st);
        return s;
    }
    *out = st;
    return CLASP_OK;
}

clasp_status clasp_st_open(const char *path, clasp_safetensors **out) {
    *out = NULL;
    char *buf;
    size_t n;
    CLASP_TRY(clasp_read_file(path, ST_MAX_FILE, &buf, &n));
    clasp_safetensors *st = calloc(1, sizeof *st);
    if (!st) {
        free(buf);
        return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
    }
    st->file = (unsigned char *)buf;
    st->file_len = n;
    st->path = dupstr_(path);
    clasp_status s =
        st->path ? parse_(st, path) : clasp_set_error(CLASP_ERR_NOMEM, "out of memory");
    if (s != CLASP_OK) {
        clasp_st_free(st);
        return s;
    }
    *out = st;
    return CLASP_OK;
}

clasp_status clasp_st_open_mapped(const char *path, clasp_safetensors **out) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return clasp_set_error(errno == ENOENT ? CLASP_ERR_NOT_FOUND : CLASP_ERR_IO, "%s: %s", path,
                               strerror(errno));
    struct stat sb;
    clasp_status s = CLASP_OK;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        s = clasp_set_error(CLASP_ERR_IO, "%s: not a readable file", path);
    else if ((uint64_t)sb.st_size > ST_MAX_FILE || sb.st_size < 8)
        s = clasp_set_error(CLASP_ERR_FORMAT, "%s: size %lld outside [8, %llu] bytes", path,
                            (long long)sb.st_size, (unsigned long long)ST_MAX_FILE);
    void *map = MAP_FAILED;
    if (s == CLASP_OK) map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (s == CLASP_OK && map == MAP_FAILED)
        s = clasp_set_error(CLASP_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    if (s != CLASP_OK) return s;
    clasp_safetensors *st = calloc(1, sizeof *st);
    if (!st) {
        munmap(map, (size_t)sb.st_size);
        return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
    }
    st->file = map;
    st->file_len = (size_t)sb.st_size;
    st->mapped = true;
    st->path = dupstr_(path);
    s = st->path ? parse_(st, path) : clasp_set_error(CLASP_ERR_NOMEM, "out of memory");
    if (s != CLASP_OK) {
        clasp_st_free(st);
        return s;
    }
    *out = st;
    return CLASP_OK;
}

void clasp_st_release(clasp_safetensors *st, const clasp_st_tensor *t) {
    if (!st->mapped || !t) return;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)t->data + page - 1) / page * page;
    uintptr_t hi = ((uintptr_t)t->data + (t->end - t->begin)) / page * page;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

const clasp_st_tensor *clasp_st_find(const clasp_safetensors *st, const char *name) {
    for (int i = 0; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i].name, name)) return &st->tensors[i];
    return NULL;
}

const float *clasp_st_f32(clasp_safetensors *st, const clasp_st_tensor *t) {
    if (t->dtype != CLASP_DTYPE_F32) {
        clasp_set_error(CLASP_ERR_FORMAT, "%s: tensor '%s' has dtype %s, expected F32", st->path,
                        t->name, clasp_dtype_name(t->dtype));
        return NULL;
    }
    int i = (int)(t - st->tensors);
    if (!st->f32_cache[i]) {
        float *p = malloc(t->numel ? t->numel * sizeof(float) : 1);
        if (!p) {
            clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", st->path);
            return NULL;
        }
        /* Little-endian on disk; this build targets little-endian hosts only. */
        memcpy(p, t->data, t->numel * sizeof(float));
        st->f32_cache[i] = p;
    }
    return st->f32_cache[i];
}

clasp_status clasp_st_check_f32(const clasp_safetensors *st, const char *name, int ndim,
                                const int64_t *shape, const clasp_st_tensor **out) {
    const clasp_st_tensor *t = clasp_st_find(st, name);
    if (!t)
        return clasp_set_error(CLASP_ERR_NOT_FOUND, "%s: tensor '%s' is missing", st->path, name);
    if (t->dtype != CLASP_DTYPE_F32)
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: tensor '%s' has dtype %s, expected F32",
                               st->path, name, clasp_dtype_name(t->dtype));
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char got[128] = "", want[128] = "";
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "," : "",
                     (long long)t->shape[i]);
        for (int i = 0; i < ndim; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? "," : "",
                     (long long)shape[i]);
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: tensor '%s' has shape [%s], expected [%s]",
                               st->path, name, got, want);
    }
    if (out) *out = t;
    return CLASP_OK;
}

clasp_status clasp_st_read_f32(clasp_safetensors *st, const char *name, int ndim,
                               const int64_t *shape, float *dst) {
    const clasp_st_tensor *t = NULL;
    CLASP_TRY(clasp_st_check_f32(st, name, ndim, shape, &t));
    memcpy(dst, t->data, t->numel * sizeof(float));
    return CLASP_OK;
}

const char *clasp_st_meta(const clasp_safetensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta_keys[i], key)) return st->meta_values[i];
    return NULL;
}

/* ---- writer ---------------------------------------------------------------------------- */

typedef struct st_wentry {
    char *name;
    clasp_dtype dtype;
    int ndim;
    int64_t shape[CLASP_ST_MAX_DIMS];
    size_t nbytes;
    const void *data;
} st_wentry;

struct clasp_st_writer {
    st_wentry *e;
    int n;
    size_t cap;
    cJSON *meta;
};

clasp_st_writer *clasp_st_writer_new(void) {
    clasp_st_writer *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->meta = cJSON_CreateObject();
    if (!w->meta) {
        free(w);
        return NULL;
    }
    return w;
}

void clasp_st_writer_free(clasp_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->e[i].name);
    free(w->e);
    cJSON_Delete(w->meta);
    free(w);
}

clasp_status clasp_st_writer_add(clasp_st_writer *w, const char *name, clasp_dtype dtype, int ndim,
                                 const int64_t *shape, const void *data) {
    if (ndim < 0 || ndim > CLASP_ST_MAX_DIMS || !clasp_dtype_size(dtype) || !name ||
        !strcmp(name, "__metadata__"))
        return clasp_set_error(CLASP_ERR_ARG, "safetensors writer: bad tensor '%s'",
                               name ? name : "(null)");
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->e[i].name, name))
            return clasp_set_error(CLASP_ERR_ARG, "safetensors writer: tensor '%s' added twice",
                                   name);
    st_wentry *ne = clasp_grow(w->e, (size_t)w->n, &w->cap, sizeof *ne, 16);
    if (!ne) return clasp_set_error(CLASP_ERR_NOMEM, "safetensors writer: out of memory");
    w->e = ne;
    st_wentry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    size_t nb = clasp_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || !clasp_size_mul(nb, (size_t)shape[i], &nb))
            return clasp_set_error(CLASP_ERR_OVERFLOW, "safetensors writer: '%s' shape overflows",
                                   name);
        e->shape[i] = shape[i];
    }
    e->name = dupstr_(name);
    if (!e->name) return clasp_set_error(CLASP_ERR_NOMEM, "safetensors writer: out of memory");
    e->dtype = dtype;
    e->ndim = ndim;
    e->nbytes = nb;
    e->data = data;
    w->n++;
    return CLASP_OK;
}

clasp_status clasp_st_writer_meta(clasp_st_writer *w, const char *key, const char *value) {
    cJSON_DeleteItemFromObjectCaseSensitive(w->meta, key);
    if (!cJSON_AddStringToObject(w->meta, key, value))
        return clasp_set_error(CLASP_ERR_NOMEM, "safetensors writer: out of memory");
    return CLASP_OK;
}

clasp_status clasp_st_writer_write(clasp_st_writer *w, const char *path) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
    clasp_status s = CLASP_OK;
    char *hjson = NULL;
    unsigned char *buf = NULL;
    if (cJSON_GetArraySize(w->meta) > 0)
        cJSON_AddItemToObject(root, "__metadata__", cJSON_Duplicate(w->meta, 1));
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        cJSON *t = cJSON_AddObjectToObject(root, w->e[i].name);
        cJSON *sh = cJSON_CreateArray();
        cJSON *of = cJSON_CreateArray();
        if (!t || !sh || !of) {
            cJSON_Delete(sh);
            cJSON_Delete(of);
            s = clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        cJSON_AddStringToObject(t, "dtype", clasp_dtype_name(w->e[i].dtype));
        for (int k = 0; k < w->e[i].ndim; k++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)w->e[i].shape[k]));
        cJSON_AddItemToObject(t, "shape", sh);
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + w->e[i].nbytes)));
        cJSON_AddItemToObject(t, "data_offsets", of);
        off += w->e[i].nbytes;
    }
    hjson = cJSON_PrintUnformatted(root);
    if (!hjson) {
        s = clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    /* Pad the header with spaces so the data block starts 8-byte aligned. */
    size_t hl = strlen(hjson), hpad = (8 - (8 + hl) % 8) % 8, total = 8 + hl + hpad + off;
    buf = malloc(total);
    if (!buf) {
        s = clasp_set_error(CLASP_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, total);
        goto done;
    }
    uint64_t hlen = hl + hpad;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + 8, hjson, hl);
    memset(buf + 8 + hl, ' ', hpad);
    size_t p = 8 + hl + hpad;
    for (int i = 0; i < w->n; i++) {
        if (w->e[i].nbytes) memcpy(buf + p, w->e[i].data, w->e[i].nbytes);
        p += w->e[i].nbytes;
    }
    s = clasp_write_file_atomic(path, buf, total);
done:
    free(buf);
    free(hjson);
    cJSON_Delete(root);
    return s;
}
