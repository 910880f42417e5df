/* json.c: cJSON loading with file- and field-naming errors; atomic file writes. */
#include "core/json.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define JSON_MAX_BYTES ((size_t)64 << 20)

clasp_status clasp_read_file(const char *path, size_t limit, char **out, size_t *n) {
    *out = NULL;
    if (n) *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return clasp_set_error(CLASP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && !S_ISREG(st.st_mode)) {
        /* a folder opens for reading on Linux, and its "size" is not a length */
        fclose(f);
        return clasp_set_error(CLASP_ERR_IO, "%s: not a regular file%s", path,
                               S_ISDIR(st.st_mode) ? " (a folder)" : "");
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return clasp_set_error(CLASP_ERR_IO, "%s: cannot seek", path);
    }
    long len = ftell(f);
    if (len < 0 || (size_t)len > limit) {
        fclose(f);
        return clasp_set_error(CLASP_ERR_OVERFLOW, "%s: size %ld exceeds the limit of %zu bytes",
                               path, len, limit);
    }
    rewind(f);
    char *buf = malloc((size_t)len + 1);
    if (!buf) {
        fclose(f);
        return clasp_set_error(CLASP_ERR_NOMEM, "%s: cannot allocate %ld bytes", path, len);
    }
    size_t got = fread(buf, 1, (size_t)len, f);
    fclose(f);
    if (got != (size_t)len) {
        free(buf);
        return clasp_set_error(CLASP_ERR_IO, "%s: short read (%zu of %ld bytes)", path, got, len);
    }
    buf[len] = '\0';
    *out = buf;
    if (n) *n = (size_t)len;
    return CLASP_OK;
}

clasp_status clasp_write_file_atomic(const char *path, const void *data, size_t n) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return clasp_set_error(CLASP_ERR_ARG, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return clasp_set_error(CLASP_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    const unsigned char *p = data;
    size_t left = n;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return clasp_set_error(CLASP_ERR_IO, "%s: write failed: %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return clasp_set_error(CLASP_ERR_IO, "%s: fsync/close failed: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return clasp_set_error(CLASP_ERR_IO, "%s: rename failed: %s", path, strerror(e));
    }
    return CLASP_OK;
}

clasp_status clasp_json_parse(const char *text, size_t n, const char *what, cJSON **out) {
    *out = NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!root) {
        size_t off = end ? (size_t)(end - text) : 0;
        char snippet[41];
        size_t k = 0;
        for (size_t i = off; i < n && k < 40; i++) {
            char c = text[i];
            snippet[k++] = (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
        }
        snippet[k] = '\0';
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: invalid JSON at byte %zu near '%s'", what,
                               off, snippet);
    }
    *out = root;
    return CLASP_OK;
}

clasp_status clasp_json_load(const char *path, cJSON **out) {
    char *buf;
    size_t n;
    *out = NULL;
    CLASP_TRY(clasp_read_file(path, JSON_MAX_BYTES, &buf, &n));
    clasp_status s = clasp_json_parse(buf, n, path, out);
    free(buf);
    return s;
}

clasp_status clasp_json_save(const char *path, const cJSON *root) {
    char *text = cJSON_Print(root);
    if (!text) return clasp_set_error(CLASP_ERR_NOMEM, "%s: cannot serialise JSON", path);
    size_t n = strlen(text);
    char *withnl = realloc(text, n + 2);
    if (!withnl) {
        free(text);
        return clasp_set_error(CLASP_ERR_NOMEM, "%s: cannot serialise JSON", path);
    }
    withnl[n] = '\n';
    withnl[n + 1] = '\0';
    clasp_status s = clasp_write_file_atomic(path, withnl, n + 1);
    free(withnl);
    return s;
}

#define FIELD_FMT "%s: field '%s%s%s'"
#define FIELD_ARGS                                                                                 \
    file ? file : "<json>", prefix ? prefix : "", (prefix && *prefix) ? "." : "", name

static clasp_status get_int_(const cJSON *it, const char *name, const char *file,
                             const char *prefix, int64_t lo, int64_t hi, int64_t *out) {
    if (!cJSON_IsNumber(it))
        return clasp_set_error(CLASP_ERR_CONFIG, FIELD_FMT ": expected an integer", FIELD_ARGS);
    double v = it->valuedouble;
    if (!isfinite(v) || v != floor(v) || v < -9.0e15 || v > 9.0e15)
        return clasp_set_error(CLASP_ERR_CONFIG, FIELD_FMT ": expected an integer, got %g",
                               FIELD_ARGS, v);
    int64_t iv = (int64_t)v;
    if (iv < lo || iv > hi)
        return clasp_set_error(CLASP_ERR_CONFIG, FIELD_FMT ": value %lld out of range [%lld, %lld]",
                               FIELD_ARGS, (long long)iv, (long long)lo, (long long)hi);
    *out = iv;
    return CLASP_OK;
}

clasp_status clasp_json_int(const cJSON *obj, const char *name, const char *file,
                            const char *prefix, int64_t lo, int64_t hi, int64_t *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!it) return clasp_set_error(CLASP_ERR_CONFIG, FIELD_FMT ": missing", FIELD_ARGS);
    return get_int_(it, name, file, prefix, lo, hi, out);
}

clasp_status clasp_json_int_opt(const cJSON *obj, const char *name, const char *file,
                                const char *prefix, int64_t lo, int64_t hi, int64_t def,
                                int64_t *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!it) {
        *out = def;
        return CLASP_OK;
    }
    return get_int_(it, name, file, prefix, lo, hi, out);
}

clasp_status clasp_json_num(const cJSON *obj, const char *name, const char *file,
                            const char *prefix, double *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!it) return clasp_set_error(CLASP_ERR_CONFIG, FIELD_FMT ": missing", FIELD_ARGS);
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return clasp_set_error(CLASP_ERR_CONFIG, FIELD_FMT ": expected a finite number",
                               FIELD_ARGS);
    *out = it->valuedouble;
    return CLASP_OK;
}

clasp_status clasp_json_num_opt(const cJSON *obj, const char *name, const char *file,
                                const char *prefix, double def, double *out) {
    if (!cJSON_GetObjectItemCaseSensitive(obj, name)) {
        *out = def;
        return CLASP_OK;
    }
    return clasp_json_num(obj, name, file, prefix, out);
}

clasp_status clasp_json_bool_opt(const cJSON *obj, const char *name, const char *file,
                                 const char *prefix, bool def, bool *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!it) {
        *out = def;
        return CLASP_OK;
    }
    if (!cJSON_IsBool(it))
        return clasp_set_error(CLASP_ERR_CONFIG, FIELD_FMT ": expected true or false", FIELD_ARGS);
    *out = cJSON_IsTrue(it);
    return CLASP_OK;
}

static clasp_status get_str_(const cJSON *it, const char *name, const char *file,
                             const char *prefix, char *out, size_t cap) {
    if (!cJSON_IsString(it) || !it->valuestring)
        return clasp_set_error(CLASP_ERR_CONFIG, FIELD_FMT ": expected a string", FIELD_ARGS);
    size_t n = strlen(it->valuestring);
    if (n >= cap)
        return clasp_set_error(CLASP_ERR_CONFIG, FIELD_FMT ": string longer than %zu bytes",
                               FIELD_ARGS, cap - 1);
    memcpy(out, it->valuestring, n + 1);
    return CLASP_OK;
}

clasp_status clasp_json_str(const cJSON *obj, const char *name, const char *file,
                            const char *prefix, char *out, size_t cap) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!it) return clasp_set_error(CLASP_ERR_CONFIG, FIELD_FMT ": missing", FIELD_ARGS);
    return get_str_(it, name, file, prefix, out, cap);
}

clasp_status clasp_json_str_opt(const cJSON *obj, const char *name, const char *file,
                                const char *prefix, const char *def, char *out, size_t cap) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!it) {
        size_t n = strlen(def);
        if (n >= cap) return clasp_set_error(CLASP_ERR_ARG, "default string too long");
        memcpy(out, def, n + 1);
        return CLASP_OK;
    }
    return get_str_(it, name, file, prefix, out, cap);
}

clasp_status clasp_json_obj(const cJSON *obj, const char *name, const char *file,
                            const char *prefix, const cJSON **out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!it) return clasp_set_error(CLASP_ERR_CONFIG, FIELD_FMT ": missing", FIELD_ARGS);
    if (!cJSON_IsObject(it))
        return clasp_set_error(CLASP_ERR_CONFIG, FIELD_FMT ": expected an object", FIELD_ARGS);
    *out = it;
    return CLASP_OK;
}

bool clasp_is_file(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool clasp_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

clasp_status clasp_mkdir_p(const char *path) {
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp)
        return clasp_set_error(CLASP_ERR_ARG, "'%s': empty or too long a folder path", path);
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0') continue;
        char c = tmp[i];
        tmp[i] = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return clasp_set_error(CLASP_ERR_IO, "%s: cannot create folder: %s", tmp,
                                   strerror(errno));
        tmp[i] = c;
    }
    if (!clasp_is_dir(path))
        return clasp_set_error(CLASP_ERR_IO, "%s: exists and is not a folder", path);
    return CLASP_OK;
}

double clasp_json_short_float(float v) {
    for (int digits = 6; digits <= 9; digits++) {
        char buf[40];
        snprintf(buf, sizeof buf, "%.*g", digits, (double)v);
        double d;
        if (sscanf(buf, "%lf", &d) == 1 && (float)d == v) return d;
    }
    return (double)v;
}

clasp_status clasp_json_format_version(const cJSON *root, const char *file, int supported,
                                       int *out) {
    int64_t v;
    CLASP_TRY(clasp_json_int_opt(root, "format_version", file, NULL, 1, INT32_MAX, 1, &v));
    if (v > supported)
        return clasp_set_error(CLASP_ERR_UNSUPPORTED,
                               "%s: format_version %lld is newer than this clasp reads (%d); "
                               "use a newer clasp",
                               file ? file : "<json>", (long long)v, supported);
    *out = (int)v;
    return CLASP_OK;
}

clasp_status clasp_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return clasp_set_error(CLASP_ERR_IO, "%s: cannot open: %s", dir, strerror(errno));
    int r = fsync(fd);
    int err = errno;
    close(fd);
    if (r != 0) return clasp_set_error(CLASP_ERR_IO, "%s: fsync failed: %s", dir, strerror(err));
    return CLASP_OK;
}

clasp_status clasp_rm_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return CLASP_OK;
    struct dirent *e;
    char p[4352];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    if (rmdir(dir) != 0 && errno != ENOENT)
        return clasp_set_error(CLASP_ERR_IO, "%s: cannot remove: %s", dir, strerror(errno));
    return CLASP_OK;
}
