/* index.c: index folders (meta.json + index.faiss + keys.txt), their versions and atomic swaps,
 * and the checks of everything read back. The FAISS calls go through index/faiss_shim.cpp. */
#include "index/index.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/json.h"
#include "core/rng.h"
#include "index/internal.h"

#define INDEX_FORMAT_VERSION 1
#define META_FILE            "meta.json"
#define FAISS_FILE           "index.faiss"
#define KEYS_FILE            "keys.txt"
#define KEYS_LIMIT           ((size_t)1 << 34) /* keys.txt read at most 16 GiB */
#define IVF_TRAIN_PER_LIST   39                /* rows per coarse cell FAISS asks for (k-means) */
#define IVF_TRAIN_MAX        262144            /* rows sampled to train ivf-flat / ivf-pq */

struct clasp_index {
    clasp_index_meta meta;
    clasp_faiss *f;
    char **keys; /* (count) pointers into key_buf */
    char *key_buf;
    char path[4096]; /* the version folder opened */
};

/* ---- type strings ---- */

static clasp_status parse_param_(const char *s, const char *key, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi)
        return clasp_set_error(CLASP_ERR_ARG, "index type: %s=%s: expected an integer in [%d, %d]",
                               key, s, lo, hi);
    *out = (int)v;
    return CLASP_OK;
}

/* The field of spec a "key" of the type names, with its bounds; NULL when unknown. */
static int *spec_field_(clasp_index_spec *sp, const char *key, int *lo, int *hi) {
    *lo = 1;
    *hi = 1 << 20;
    if (sp->type == CLASP_INDEX_HNSW) {
        if (!strcmp(key, "M")) return *hi = 256, &sp->hnsw_m;
        if (!strcmp(key, "efc")) return &sp->hnsw_efc;
        if (!strcmp(key, "ef")) return &sp->search_def;
    } else if (sp->type == CLASP_INDEX_IVF_PQ || sp->type == CLASP_INDEX_IVF_FLAT) {
        if (!strcmp(key, "nlist")) return &sp->ivf_nlist;
        if (!strcmp(key, "nprobe")) return &sp->search_def;
        if (sp->type == CLASP_INDEX_IVF_FLAT) return NULL;
        if (!strcmp(key, "m")) return *hi = 1024, &sp->pq_m;
        if (!strcmp(key, "nbits")) return *hi = 16, &sp->pq_nbits;
        if (!strcmp(key, "refine")) return *lo = 0, *hi = 1024, &sp->refine;
    }
    return NULL;
}

clasp_status clasp_index_spec_parse(const char *s, clasp_index_spec *out) {
    clasp_index_spec sp = {0};
    const char *colon = strchr(s, ':');
    size_t tn = colon ? (size_t)(colon - s) : strlen(s);
    if (tn == 4 && !strncmp(s, "flat", 4)) {
        sp.type = CLASP_INDEX_FLAT;
    } else if (tn == 4 && !strncmp(s, "hnsw", 4)) {
        sp = (clasp_index_spec){CLASP_INDEX_HNSW, 32, 200, 0, 0, 0, 64, 0};
    } else if (tn == 6 && !strncmp(s, "ivf-pq", 6)) {
        sp = (clasp_index_spec){CLASP_INDEX_IVF_PQ, 0, 0, 4096, 16, 8, 16, 0};
    } else if (tn == 8 && !strncmp(s, "ivf-flat", 8)) {
        sp = (clasp_index_spec){CLASP_INDEX_IVF_FLAT, 0, 0, 4096, 0, 0, 16, 0};
    } else {
        return clasp_set_error(CLASP_ERR_ARG,
                               "index type '%.*s': expected flat, hnsw[:M=..,efc=..,ef=..], "
                               "ivf-flat[:nlist=..,nprobe=..] or "
                               "ivf-pq[:nlist=..,m=..,nbits=..,nprobe=..,refine=..]",
                               (int)tn, s);
    }
    if (colon && colon[1]) {
        char buf[256];
        if (strlen(colon + 1) >= sizeof buf)
            return clasp_set_error(CLASP_ERR_ARG, "index type '%s': parameters too long", s);
        strcpy(buf, colon + 1);
        char *save = NULL;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(tok, '=');
            int lo, hi, *field = NULL;
            if (eq) *eq = '\0';
            if (eq) field = spec_field_(&sp, tok, &lo, &hi);
            if (!field)
                return clasp_set_error(CLASP_ERR_ARG, "index type '%s': unknown parameter '%s'", s,
                                       tok);
            CLASP_TRY(parse_param_(eq + 1, tok, lo, hi, field));
        }
    }
    *out = sp;
    return CLASP_OK;
}

void clasp_index_spec_params(const clasp_index_spec *spec, char *buf, int cap) {
    if (spec->type == CLASP_INDEX_HNSW)
        snprintf(buf, (size_t)cap, "M=%d,efc=%d", spec->hnsw_m, spec->hnsw_efc);
    else if (spec->type == CLASP_INDEX_IVF_PQ && spec->refine > 0)
        snprintf(buf, (size_t)cap, "nlist=%d,m=%d,nbits=%d,refine=%d", spec->ivf_nlist, spec->pq_m,
                 spec->pq_nbits, spec->refine);
    else if (spec->type == CLASP_INDEX_IVF_PQ)
        snprintf(buf, (size_t)cap, "nlist=%d,m=%d,nbits=%d", spec->ivf_nlist, spec->pq_m,
                 spec->pq_nbits);
    else if (spec->type == CLASP_INDEX_IVF_FLAT)
        snprintf(buf, (size_t)cap, "nlist=%d", spec->ivf_nlist);
    else if (cap > 0)
        buf[0] = '\0';
}

static const char *type_name_(clasp_index_type t) {
    static const char *const names[] = {"flat", "hnsw", "ivf-pq", "ivf-flat"};
    return (unsigned)t < 4 ? names[t] : "?";
}

/* A path built printf-style into out[cap]; CLASP_ERR_ARG when it does not fit. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static clasp_status
pathf_(char *out, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) return clasp_set_error(CLASP_ERR_ARG, "%s: path too long", out);
    return CLASP_OK;
}

/* ---- vectors ---- */

/* dst (n, dim) = the rows of src L2-normalised; a zero or non-finite row is an error naming
 * `what` and the row. */
static clasp_status normalise_rows_(float *dst, const float *src, int64_t n, int dim,
                                    const char *what) {
    for (int64_t i = 0; i < n; i++) {
        const float *r = src + i * dim;
        double ss = 0;
        for (int j = 0; j < dim; j++) ss += (double)r[j] * (double)r[j];
        if (!isfinite(ss) || ss == 0)
            return clasp_set_error(CLASP_ERR_NUMERIC, "%s row %" PRId64 ": %s", what, i,
                                   ss == 0 ? "zero vector (cannot be normalised)"
                                           : "non-finite value");
        float inv = (float)(1.0 / sqrt(ss));
        for (int j = 0; j < dim; j++) dst[i * dim + j] = r[j] * inv;
    }
    return CLASP_OK;
}

static float *normalised_copy_(const float *x, int64_t n, int dim, const char *what,
                               clasp_status *s) {
    size_t bytes;
    if (n < 1 || dim < 1 || (uint64_t)n > SIZE_MAX / sizeof(float) / (uint64_t)dim) {
        *s = clasp_set_error(CLASP_ERR_OVERFLOW, "%s: %" PRId64 " x %d vectors too large", what, n,
                             dim);
        return NULL;
    }
    bytes = (size_t)n * (size_t)dim * sizeof(float);
    float *y = malloc(bytes);
    if (!y) {
        *s = clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory (%zu bytes)", what, bytes);
        return NULL;
    }
    *s = normalise_rows_(y, x, n, dim, what);
    if (*s != CLASP_OK) {
        free(y);
        return NULL;
    }
    return y;
}

/* ---- keys ---- */

static void free_keys_(clasp_index *ix) {
    free(ix->keys);
    free(ix->key_buf);
    ix->keys = NULL;
    ix->key_buf = NULL;
}

/* Splits buf (n bytes, one key per '\n'-terminated line) into ix->keys; takes buf. */
static clasp_status split_keys_(clasp_index *ix, char *buf, size_t n, const char *file) {
    int64_t lines = 0;
    for (size_t i = 0; i < n; i++) lines += buf[i] == '\n';
    if (n > 0 && buf[n - 1] != '\n') {
        free(buf);
        return clasp_set_error(
            CLASP_ERR_FORMAT,
            "%s: truncated (the last key has no newline; %" PRId64 " complete keys)", file, lines);
    }
    if (lines != ix->meta.count) {
        free(buf);
        return clasp_set_error(CLASP_ERR_FORMAT,
                               "%s: %" PRId64 " keys, but meta.json field 'count' is %" PRId64,
                               file, lines, ix->meta.count);
    }
    ix->keys = malloc((size_t)(lines > 0 ? lines : 1) * sizeof *ix->keys);
    if (!ix->keys) {
        free(buf);
        return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", file);
    }
    ix->key_buf = buf;
    char *p = buf;
    for (int64_t i = 0; i < lines; i++) {
        char *nl = memchr(p, '\n', n - (size_t)(p - buf));
        *nl = '\0';
        ix->keys[i] = p;
        p = nl + 1;
    }
    return CLASP_OK;
}

/* keys.txt of `count` keys: keys[i], or the row number first + i when keys is NULL. */
static clasp_status keys_text_(const char *const *keys, const char *const *old_keys, int64_t n_old,
                               int64_t n, char **out, size_t *len) {
    size_t cap = 0, used = 0;
    char *buf = NULL;
    for (int64_t i = 0; i < n_old + n; i++) {
        char num[32];
        const char *k;
        if (i < n_old) {
            k = old_keys[i];
        } else if (keys) {
            k = keys[i - n_old];
        } else {
            snprintf(num, sizeof num, "%" PRId64, i);
            k = num;
        }
        if (!k || strchr(k, '\n') || strchr(k, '\r')) {
            free(buf);
            return clasp_set_error(CLASP_ERR_ARG, "key %" PRId64 ": %s", i - n_old,
                                   k ? "contains a line break" : "missing (NULL)");
        }
        size_t kl = strlen(k);
        if (used + kl + 1 > cap) {
            size_t nc = cap ? cap * 2 : 4096;
            while (nc < used + kl + 1) nc *= 2;
            char *nb = realloc(buf, nc);
            if (!nb) {
                free(buf);
                return clasp_set_error(CLASP_ERR_NOMEM, "keys: out of memory");
            }
            buf = nb;
            cap = nc;
        }
        memcpy(buf + used, k, kl);
        buf[used + kl] = '\n';
        used += kl + 1;
    }
    *out = buf;
    *len = used;
    return CLASP_OK;
}

/* ---- meta.json ---- */

static clasp_status hex_field_(const cJSON *root, const char *name, const char *file,
                               uint64_t *out) {
    char hex[17];
    CLASP_TRY(clasp_json_str(root, name, file, "", hex, sizeof hex));
    char *end;
    size_t n = strlen(hex);
    unsigned long long v = strtoull(hex, &end, 16);
    if (n != 16 || *end || strspn(hex, "0123456789abcdef") != 16)
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: field '%s': '%s' is not 16 hex digits", file,
                               name, hex);
    *out = (uint64_t)v;
    return CLASP_OK;
}

cJSON *clasp_index_meta_json(const clasp_index_meta *m) {
    char mh[17], iv[17];
    clasp_hash_hex(m->model_hash, mh);
    clasp_hash_hex(m->index_version, iv);
    cJSON *r = cJSON_CreateObject();
    if (!r) return NULL;
    bool ok = cJSON_AddStringToObject(r, "type", m->type) &&
              cJSON_AddStringToObject(r, "params", m->params) &&
              cJSON_AddNumberToObject(r, "dim", m->dim) &&
              cJSON_AddNumberToObject(r, "count", (double)m->count) &&
              cJSON_AddStringToObject(r, "model_hash", mh) &&
              cJSON_AddStringToObject(r, "tower", m->tower) &&
              cJSON_AddStringToObject(r, "precision", m->precision) &&
              cJSON_AddStringToObject(r, "created", m->created) &&
              cJSON_AddStringToObject(r, "clasp_version", m->clasp_version) &&
              cJSON_AddNumberToObject(r, "search_default", m->search_def) &&
              cJSON_AddNumberToObject(r, "generation", (double)m->generation) &&
              cJSON_AddStringToObject(r, "index_version", iv);
    if (!ok) {
        cJSON_Delete(r);
        return NULL;
    }
    return r;
}

static clasp_status meta_write_(const char *path, const clasp_index_meta *m, uint64_t keys_hash) {
    char kh[17];
    clasp_hash_hex(keys_hash, kh);
    cJSON *r = clasp_index_meta_json(m);
    bool ok = r && cJSON_AddNumberToObject(r, "format_version", INDEX_FORMAT_VERSION) &&
              cJSON_AddStringToObject(r, "metric", "cosine") &&
              cJSON_AddStringToObject(r, "keys_hash", kh);
    clasp_status s =
        ok ? clasp_json_save(path, r) : clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
    cJSON_Delete(r);
    return s;
}

/* Reads meta.json of a version folder into *m (and keys_hash); every field checked. */
static clasp_status meta_read_(const char *file, clasp_index_meta *m, uint64_t *keys_hash,
                               clasp_index_spec *spec) {
    cJSON *r = NULL;
    CLASP_TRY(clasp_json_load(file, &r));
    clasp_status s = CLASP_OK;
    int fv;
    int64_t dim = 0, count = 0, sd = 0, gen = 0;
    memset(m, 0, sizeof *m);
    if (!cJSON_IsObject(r)) s = clasp_set_error(CLASP_ERR_FORMAT, "%s: not a JSON object", file);
    if (!s) s = clasp_json_format_version(r, file, INDEX_FORMAT_VERSION, &fv);
    if (!s) s = clasp_json_str(r, "type", file, "", m->type, sizeof m->type);
    if (!s) s = clasp_json_str(r, "params", file, "", m->params, sizeof m->params);
    if (!s) s = clasp_json_int(r, "dim", file, "", 1, 65536, &dim);
    if (!s) s = clasp_json_int(r, "count", file, "", 1, INT64_C(1) << 40, &count);
    if (!s) s = hex_field_(r, "model_hash", file, &m->model_hash);
    if (!s) s = clasp_json_str(r, "tower", file, "", m->tower, sizeof m->tower);
    if (!s) s = clasp_json_str(r, "precision", file, "", m->precision, sizeof m->precision);
    if (!s) s = clasp_json_str(r, "created", file, "", m->created, sizeof m->created);
    if (!s)
        s = clasp_json_str(r, "clasp_version", file, "", m->clasp_version, sizeof m->clasp_version);
    if (!s) s = clasp_json_int(r, "search_default", file, "", 0, 1 << 20, &sd);
    if (!s) s = clasp_json_int(r, "generation", file, "", 1, INT64_MAX, &gen);
    if (!s) s = hex_field_(r, "index_version", file, &m->index_version);
    if (!s) s = hex_field_(r, "keys_hash", file, keys_hash);
    cJSON_Delete(r);
    if (s != CLASP_OK) return s == CLASP_ERR_CONFIG ? CLASP_ERR_FORMAT : s;
    m->dim = (int)dim;
    m->count = count;
    m->search_def = (int)sd;
    m->generation = gen;
    char full[160];
    snprintf(full, sizeof full, "%s%s%s", m->type, m->params[0] ? ":" : "", m->params);
    if (clasp_index_spec_parse(full, spec) != CLASP_OK)
        return clasp_wrap_error(CLASP_ERR_FORMAT, "%s: fields 'type'/'params'", file);
    if ((spec->type == CLASP_INDEX_FLAT) != (sd == 0))
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: field 'search_default': %d for a %s index",
                               file, (int)sd, m->type);
    spec->search_def = (int)sd;
    return CLASP_OK;
}

/* ---- reading a version ---- */

clasp_status clasp_faiss_check_header(const unsigned char *p, size_t n, const char *file,
                                      const clasp_index_spec *spec, int dim, int64_t count) {
    static const char *fourcc[] = {"IxFI", "IHNf", "IwPQ", "IwFl"};
    const char *tag = spec->type == CLASP_INDEX_IVF_PQ && spec->refine > 0 ? "IxRF"
                      : (unsigned)spec->type < 4                           ? fourcc[spec->type]
                                                                           : "????";
    if (n < CLASP_FAISS_HEADER_BYTES)
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: truncated (%zu bytes, header needs %d)", file,
                               n, CLASP_FAISS_HEADER_BYTES);
    if (memcmp(p, tag, 4) != 0)
        return clasp_set_error(
            CLASP_ERR_FORMAT, "%s: header tag '%.4s' is not that of a %s%s index ('%s')", file,
            (const char *)p, type_name_(spec->type), spec->refine > 0 ? " (refine)" : "", tag);
    int32_t d, metric;
    int64_t nt;
    memcpy(&d, p + 4, 4);
    memcpy(&nt, p + 8, 8);
    memcpy(&metric, p + 33, 4);
    if (d != dim)
        return clasp_set_error(CLASP_ERR_FORMAT,
                               "%s: dimension %d, but meta.json field 'dim' is %d", file, (int)d,
                               dim);
    if (nt != count)
        return clasp_set_error(CLASP_ERR_FORMAT,
                               "%s: %" PRId64 " vectors, but meta.json field 'count' is %" PRId64,
                               file, nt, count);
    if (p[32] != 1 || metric != 0)
        return clasp_set_error(CLASP_ERR_FORMAT,
                               "%s: not a trained inner-product index (is_trained %d, metric %d)",
                               file, p[32], (int)metric);
    return CLASP_OK;
}

/* index.faiss: its header must match meta's type/dim/count, its xxh64 meta's index_version;
 * only then does FAISS read it (FAISS's reader is not safe on crafted bytes), and the structure
 * it read is checked (index/faiss_shim.cpp). */
static clasp_status read_faiss_(clasp_index *ix, const char *vdir, const clasp_index_spec *spec) {
    char file[4200];
    CLASP_TRY(pathf_(file, sizeof file, "%s/" FAISS_FILE, vdir));
    unsigned char head[CLASP_FAISS_HEADER_BYTES];
    FILE *fp = fopen(file, "rb");
    if (!fp)
        return clasp_set_error(errno == ENOENT ? CLASP_ERR_NOT_FOUND : CLASP_ERR_IO,
                               "%s: cannot open: %s", file, strerror(errno));
    size_t got = fread(head, 1, sizeof head, fp);
    fclose(fp);
    CLASP_TRY(clasp_faiss_check_header(head, got, file, spec, ix->meta.dim, ix->meta.count));
    uint64_t h;
    CLASP_TRY(clasp_hash_file(file, &h));
    if (h != ix->meta.index_version) {
        char a[17], b[17];
        clasp_hash_hex(h, a);
        clasp_hash_hex(ix->meta.index_version, b);
        return clasp_set_error(CLASP_ERR_FORMAT,
                               "%s: content hash %s differs from meta.json field 'index_version' "
                               "%s (corrupt or truncated file)",
                               file, a, b);
    }
    clasp_index_type t;
    int d, refine;
    int64_t n;
    CLASP_TRY(clasp_faiss_read(file, &ix->f, &t, &d, &n, &refine));
    if (t != spec->type || refine != spec->refine || d != ix->meta.dim || n != ix->meta.count)
        return clasp_set_error(
            CLASP_ERR_FORMAT,
            "%s: a %s index of %" PRId64 " x %d, but meta.json says %s, %" PRId64 " x %d", file,
            type_name_(t), n, d, ix->meta.type, ix->meta.count, ix->meta.dim);
    return CLASP_OK;
}

static clasp_status open_version_(const char *vdir, clasp_index **out) {
    clasp_index *ix = calloc(1, sizeof *ix);
    if (!ix) return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", vdir);
    if (pathf_(ix->path, sizeof ix->path, "%s", vdir) != CLASP_OK) {
        free(ix);
        return CLASP_ERR_ARG;
    }
    char file[4200];
    uint64_t keys_hash = 0;
    clasp_index_spec spec;
    clasp_status s = pathf_(file, sizeof file, "%s/" META_FILE, vdir);
    if (s == CLASP_OK) s = meta_read_(file, &ix->meta, &keys_hash, &spec);
    if (s == CLASP_OK) {
        char *buf = NULL;
        size_t n = 0;
        s = pathf_(file, sizeof file, "%s/" KEYS_FILE, vdir);
        if (s == CLASP_OK) s = clasp_read_file(file, KEYS_LIMIT, &buf, &n);
        if (s == CLASP_OK && clasp_hash64(buf, n, 0) != keys_hash) {
            free(buf);
            s = clasp_set_error(CLASP_ERR_FORMAT,
                                "%s: content hash differs from meta.json field 'keys_hash' "
                                "(corrupt or truncated file)",
                                file);
        } else if (s == CLASP_OK) {
            s = split_keys_(ix, buf, n, file);
        }
    }
    if (s == CLASP_OK) s = read_faiss_(ix, vdir, &spec);
    if (s != CLASP_OK) {
        clasp_index_close(ix);
        return s;
    }
    *out = ix;
    return CLASP_OK;
}

/* The version `current` names in dir ("vN"): its folder path and N. */
static clasp_status current_version_(const char *dir, char *vdir, size_t cap, int64_t *gen) {
    char link[4200], target[256];
    CLASP_TRY(pathf_(link, sizeof link, "%s/current", dir));
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0) {
        if (errno == ENOENT)
            return clasp_set_error(CLASP_ERR_NOT_FOUND,
                                   "%s: not an index folder (no 'current' version link)", dir);
        return clasp_set_error(CLASP_ERR_IO, "%s: cannot read: %s", link, strerror(errno));
    }
    target[n] = '\0';
    char *end;
    long long g = target[0] == 'v' ? strtoll(target + 1, &end, 10) : 0;
    if (target[0] != 'v' || end == target + 1 || *end || g < 1)
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: points at '%s', not a version folder vN",
                               link, target);
    CLASP_TRY(pathf_(vdir, cap, "%s/%s", dir, target));
    *gen = g;
    return CLASP_OK;
}

clasp_status clasp_index_open(const char *dir, clasp_index **out) {
    *out = NULL;
    for (int attempt = 0;; attempt++) {
        char vdir[4400];
        int64_t gen = 0;
        CLASP_TRY(current_version_(dir, vdir, sizeof vdir, &gen));
        clasp_status s = open_version_(vdir, out);
        /* A writer removed the version between readlink and the reads (two swaps meanwhile):
         * read `current` again. */
        if (s == CLASP_ERR_NOT_FOUND && attempt < 3 && !clasp_is_dir(vdir)) continue;
        if (s == CLASP_OK && (*out)->meta.generation != gen) {
            s = clasp_set_error(CLASP_ERR_FORMAT,
                                "%s/" META_FILE ": field 'generation' %" PRId64
                                " but the folder is v%" PRId64,
                                vdir, (*out)->meta.generation, gen);
            clasp_index_close(*out);
            *out = NULL;
        }
        return s;
    }
}

void clasp_index_close(clasp_index *ix) {
    if (!ix) return;
    clasp_faiss_free(ix->f);
    free_keys_(ix);
    free(ix);
}

const clasp_index_meta *clasp_index_get_meta(const clasp_index *ix) {
    return &ix->meta;
}
const char *clasp_index_path(const clasp_index *ix) {
    return ix->path;
}

void clasp_index_set_threads(int n) {
    clasp_faiss_set_threads(n);
}

const char *clasp_index_key(const clasp_index *ix, int64_t id) {
    if (!ix || id < 0 || id >= ix->meta.count) return NULL;
    return ix->keys[id];
}

clasp_status clasp_index_check_model(const clasp_index *ix, uint64_t model_hash) {
    if (model_hash == ix->meta.model_hash) return CLASP_OK;
    char a[17], b[17];
    clasp_hash_hex(model_hash, a);
    clasp_hash_hex(ix->meta.model_hash, b);
    return clasp_set_error(CLASP_ERR_CONFIG,
                           "model hash %s differs from the index's model hash %s (%s was built "
                           "with another model; re-embed and rebuild, or pass "
                           "--allow-model-mismatch)",
                           a, b, ix->path);
}

clasp_status clasp_index_search(const clasp_index *ix, const float *q, int nq, int k,
                                int search_param, int64_t *ids, float *scores) {
    if (nq < 1 || k < 1 || search_param < 0)
        return clasp_set_error(CLASP_ERR_ARG, "index search: nq %d, k %d, search parameter %d", nq,
                               k, search_param);
    clasp_status s;
    float *qn = normalised_copy_(q, nq, ix->meta.dim, "query", &s);
    if (!qn) return s;
    int param = search_param ? search_param : ix->meta.search_def;
    s = clasp_faiss_search(ix->f, qn, nq, k, param, ids, scores);
    free(qn);
    for (int64_t i = 0; s == CLASP_OK && i < (int64_t)nq * k; i++)
        if (ids[i] < 0 || ids[i] >= ix->meta.count) {
            ids[i] = -1;
            scores[i] = -INFINITY;
        }
    return s;
}

clasp_status clasp_index_vectors(const clasp_index *ix, float **out) {
    size_t bytes = (size_t)ix->meta.count * (size_t)ix->meta.dim * sizeof(float);
    float *v = malloc(bytes);
    if (!v)
        return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory (%zu bytes)", ix->path, bytes);
    clasp_status s = clasp_faiss_reconstruct_all(ix->f, v);
    if (s != CLASP_OK) {
        free(v);
        return s;
    }
    *out = v;
    return CLASP_OK;
}

/* ---- writing a version ---- */

/* The next N: one above the largest vK (or vK.tmp-*) present, so a version left by a crash
 * between rename and swap is never reused. */
static int64_t next_generation_(const char *dir) {
    int64_t best = 0;
    DIR *d = opendir(dir);
    if (!d) return 1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] != 'v') continue;
        char *end;
        long long g = strtoll(e->d_name + 1, &end, 10);
        if (end != e->d_name + 1 && (*end == '\0' || *end == '.') && g > best) best = g;
    }
    closedir(d);
    return best + 1;
}

/* Removes versions below keep_from, and temporary folders of dead builds older than ours. */
static void prune_versions_(const char *dir, int64_t keep_from) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (e->d_name[0] != 'v') continue;
        long long g = strtoll(e->d_name + 1, &end, 10);
        if (end == e->d_name + 1 || *end != '\0' || g >= keep_from) continue;
        char p[4400];
        if (pathf_(p, sizeof p, "%s/%s", dir, e->d_name) == CLASP_OK) clasp_rm_dir(p);
    }
    closedir(d);
}

static clasp_status write_files_(const char *tmp, const clasp_faiss *f, clasp_index_meta *m,
                                 const char *keys, size_t keys_len) {
    char file[4400];
    CLASP_TRY(pathf_(file, sizeof file, "%s/" FAISS_FILE, tmp));
    CLASP_TRY(clasp_faiss_write(f, file));
    int fd = open(file, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        return clasp_set_error(CLASP_ERR_IO, "%s: fsync failed: %s", file, strerror(e));
    }
    close(fd);
    CLASP_TRY(clasp_hash_file(file, &m->index_version));
    CLASP_TRY(pathf_(file, sizeof file, "%s/" KEYS_FILE, tmp));
    CLASP_TRY(clasp_write_file_atomic(file, keys, keys_len));
    CLASP_TRY(pathf_(file, sizeof file, "%s/" META_FILE, tmp));
    CLASP_TRY(meta_write_(file, m, clasp_hash64(keys, keys_len, 0)));
    return clasp_fsync_dir(tmp);
}

/* Writes a new version of dir from f, m and keys, then swaps `current` to it. */
static clasp_status write_version_(const char *dir, const clasp_faiss *f, clasp_index_meta *m,
                                   const char *keys, size_t keys_len) {
    CLASP_TRY(clasp_mkdir_p(dir));
    m->generation = next_generation_(dir);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(m->created, sizeof m->created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(m->clasp_version, sizeof m->clasp_version, "%s", CLASP_VERSION);
    char tmp[4400], fin[4400], link_tmp[4400], link[4400], target[32];
    long pid = (long)getpid();
    CLASP_TRY(pathf_(tmp, sizeof tmp, "%s/v%" PRId64 ".tmp-%ld", dir, m->generation, pid));
    CLASP_TRY(pathf_(fin, sizeof fin, "%s/v%" PRId64, dir, m->generation));
    CLASP_TRY(pathf_(target, sizeof target, "v%" PRId64, m->generation));
    CLASP_TRY(pathf_(link_tmp, sizeof link_tmp, "%s/current.tmp-%ld", dir, pid));
    CLASP_TRY(pathf_(link, sizeof link, "%s/current", dir));
    clasp_rm_dir(tmp);
    if (mkdir(tmp, 0755) != 0)
        return clasp_set_error(CLASP_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    clasp_status s = write_files_(tmp, f, m, keys, keys_len);
    if (s == CLASP_OK && rename(tmp, fin) != 0)
        s = clasp_set_error(CLASP_ERR_IO, "%s: rename failed: %s", fin, strerror(errno));
    if (s != CLASP_OK) {
        clasp_rm_dir(tmp); /* the old version stays current */
        return s;
    }
    unlink(link_tmp);
    if (symlink(target, link_tmp) != 0)
        return clasp_set_error(CLASP_ERR_IO, "%s: cannot create: %s", link_tmp, strerror(errno));
    CLASP_TRY(clasp_fsync_dir(dir));
    if (rename(link_tmp, link) != 0) {
        s = clasp_set_error(CLASP_ERR_IO, "%s: rename failed: %s", link, strerror(errno));
        unlink(link_tmp);
        return s;
    }
    CLASP_TRY(clasp_fsync_dir(dir));
    prune_versions_(dir, m->generation - 1);
    return CLASP_OK;
}

/* ---- build, add ---- */

/* nlist capped so every coarse cell gets IVF_TRAIN_PER_LIST training rows (at least 1). */
static int ivf_nlist_(int nlist, int64_t n) {
    int64_t cap = n / IVF_TRAIN_PER_LIST;
    if (cap < 1) cap = 1;
    return nlist < cap ? nlist : (int)cap;
}

/* ivf-flat, ivf-pq: train on a seeded sample of at most IVF_TRAIN_MAX rows (all when fewer). */
static clasp_status train_(clasp_faiss *f, const float *x, int64_t n, int dim) {
    if (n <= IVF_TRAIN_MAX) return clasp_faiss_train(f, x, n);
    float *sample = malloc((size_t)IVF_TRAIN_MAX * (size_t)dim * sizeof(float));
    if (!sample) return clasp_set_error(CLASP_ERR_NOMEM, "index train: out of memory");
    clasp_rng r;
    clasp_rng_init(&r, 0x1d5eed, 0, (uint64_t)n, (uint64_t)dim);
    /* Floyd's sampling would need a set; a stride with a random phase is enough here. */
    double step = (double)n / IVF_TRAIN_MAX;
    double phase = clasp_rng_uniform_f64(&r) * step;
    for (int64_t i = 0; i < IVF_TRAIN_MAX; i++) {
        int64_t row = (int64_t)(phase + (double)i * step);
        if (row >= n) row = n - 1;
        memcpy(sample + i * dim, x + row * dim, (size_t)dim * sizeof(float));
    }
    clasp_status s = clasp_faiss_train(f, sample, IVF_TRAIN_MAX);
    free(sample);
    return s;
}

static clasp_status check_rows_(int64_t n, int dim) {
    if (n < 1) return clasp_set_error(CLASP_ERR_ARG, "index: empty embedding set (0 vectors)");
    if (dim < 1 || dim > 65536)
        return clasp_set_error(CLASP_ERR_ARG, "index: dimension %d (expected 1..65536)", dim);
    return CLASP_OK;
}

clasp_status clasp_index_build(const char *dir, const clasp_index_spec *spec,
                               const clasp_index_origin *origin, const float *x, int64_t n, int dim,
                               const char *const *keys) {
    CLASP_TRY(check_rows_(n, dim));
    clasp_index_spec sp = *spec;
    if (sp.type == CLASP_INDEX_IVF_FLAT) sp.ivf_nlist = ivf_nlist_(sp.ivf_nlist, n);
    if (sp.type == CLASP_INDEX_IVF_PQ) {
        if (dim % sp.pq_m != 0)
            return clasp_set_error(CLASP_ERR_ARG, "index type ivf-pq: m=%d does not divide dim %d",
                                   sp.pq_m, dim);
        sp.ivf_nlist = ivf_nlist_(sp.ivf_nlist, n);
        if (n < ((int64_t)1 << sp.pq_nbits))
            return clasp_set_error(CLASP_ERR_ARG,
                                   "index type ivf-pq: %" PRId64 " vectors, nbits=%d needs at "
                                   "least %d to train",
                                   n, sp.pq_nbits, 1 << sp.pq_nbits);
    }
    clasp_index_meta m = {0};
    snprintf(m.type, sizeof m.type, "%s", type_name_(sp.type));
    clasp_index_spec_params(&sp, m.params, sizeof m.params);
    m.dim = dim;
    m.count = n;
    m.model_hash = origin->model_hash;
    snprintf(m.tower, sizeof m.tower, "%s", origin->tower ? origin->tower : "");
    snprintf(m.precision, sizeof m.precision, "%s", origin->precision ? origin->precision : "");
    m.search_def = sp.type == CLASP_INDEX_FLAT ? 0 : sp.search_def;
    char *kt = NULL;
    size_t kl = 0;
    CLASP_TRY(keys_text_(keys, NULL, 0, n, &kt, &kl));
    clasp_status s;
    float *xn = normalised_copy_(x, n, dim, "embeddings", &s);
    clasp_faiss *f = NULL;
    if (xn) s = clasp_faiss_new(&sp, dim, &f);
    if (s == CLASP_OK) s = train_(f, xn, n, dim);
    if (s == CLASP_OK) s = clasp_faiss_add(f, xn, n);
    free(xn);
    if (s == CLASP_OK) s = write_version_(dir, f, &m, kt, kl);
    clasp_faiss_free(f);
    free(kt);
    return s;
}

clasp_status clasp_index_add(const char *dir, const clasp_index_origin *origin, const float *x,
                             int64_t n, int dim, const char *const *keys) {
    CLASP_TRY(check_rows_(n, dim));
    clasp_index *ix;
    CLASP_TRY(clasp_index_open(dir, &ix));
    clasp_status s = clasp_index_check_model(ix, origin->model_hash);
    if (s == CLASP_OK && dim != ix->meta.dim)
        s = clasp_set_error(CLASP_ERR_FORMAT, "%s: vectors of dimension %d, the index's is %d", dir,
                            dim, ix->meta.dim);
    char *kt = NULL;
    size_t kl = 0;
    if (s == CLASP_OK)
        s = keys_text_(keys, (const char *const *)ix->keys, ix->meta.count, n, &kt, &kl);
    float *xn = NULL;
    if (s == CLASP_OK) xn = normalised_copy_(x, n, dim, "embeddings", &s);
    if (s == CLASP_OK) s = clasp_faiss_add(ix->f, xn, n);
    free(xn);
    if (s == CLASP_OK) {
        clasp_index_meta m = ix->meta;
        m.count += n;
        s = write_version_(dir, ix->f, &m, kt, kl);
    }
    free(kt);
    clasp_index_close(ix);
    return s;
}

clasp_status clasp_index_set_default(const char *dir, int search_def) {
    clasp_index *ix;
    CLASP_TRY(clasp_index_open(dir, &ix));
    clasp_status s = CLASP_OK;
    if (!strcmp(ix->meta.type, "flat") || search_def < 1)
        s = clasp_set_error(CLASP_ERR_ARG, "%s: a default search parameter %d for a %s index", dir,
                            search_def, ix->meta.type);
    char *kt = NULL;
    size_t kl = 0;
    if (s == CLASP_OK)
        s = keys_text_(NULL, (const char *const *)ix->keys, ix->meta.count, 0, &kt, &kl);
    if (s == CLASP_OK) {
        clasp_index_meta m = ix->meta;
        m.search_def = search_def;
        s = write_version_(dir, ix->f, &m, kt, kl);
    }
    free(kt);
    clasp_index_close(ix);
    return s;
}
