/* internal.c: whole-file reading through libarchive filters and small file helpers. */
#include "datasets/internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/json.h"

int clasp__is_file(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

clasp_status clasp__ensure_dir(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return CLASP_OK;
        return clasp_set_error(CLASP_ERR_IO, "%s: exists and is not a directory", path);
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return clasp_set_error(CLASP_ERR_IO, "%s: cannot create directory: %s", path,
                               strerror(errno));
    return CLASP_OK;
}

clasp_status clasp__write_text(const char *dir, const char *name, const char *text) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return clasp_set_error(CLASP_ERR_ARG, "path too long: %s/%s", dir, name);
    return clasp_write_file_atomic(path, text, strlen(text));
}

clasp_status clasp__read_decompressed(const char *path, size_t limit, uint8_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (!clasp__is_file(path))
        return clasp_set_error(CLASP_ERR_NOT_FOUND, "%s: no such file", path);
    struct archive *a = archive_read_new();
    if (!a) return clasp_set_error(CLASP_ERR_NOMEM, "archive_read_new failed");
    archive_read_support_filter_all(a);
    archive_read_support_format_raw(a);
    clasp_status st = CLASP_OK;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    struct archive_entry *e;
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        st = clasp_set_error(CLASP_ERR_IO, "%s: %s", path, archive_error_string(a));
        goto done;
    }
    int r = archive_read_next_header(a, &e);
    if (r == ARCHIVE_EOF) goto done; /* empty file */
    if (r != ARCHIVE_OK) {
        st = clasp_set_error(CLASP_ERR_FORMAT, "%s: %s", path, archive_error_string(a));
        goto done;
    }
    for (;;) {
        if (cap - len < (1 << 16)) {
            size_t ncap = cap ? cap * 2 : (1 << 20);
            if (ncap > limit + (1 << 16) + 1) ncap = limit + (1 << 16) + 1;
            if (ncap <= cap) {
                st = clasp_set_error(CLASP_ERR_OVERFLOW, "%s: larger than %zu bytes", path, limit);
                goto done;
            }
            uint8_t *p = realloc(buf, ncap);
            if (!p) {
                st = clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
                goto done;
            }
            buf = p;
            cap = ncap;
        }
        la_ssize_t k = archive_read_data(a, buf + len, cap - len - 1);
        if (k < 0) {
            st = clasp_set_error(CLASP_ERR_FORMAT, "%s: %s", path, archive_error_string(a));
            goto done;
        }
        if (k == 0) break;
        len += (size_t)k;
        if (len > limit) {
            st = clasp_set_error(CLASP_ERR_OVERFLOW, "%s: larger than %zu bytes", path, limit);
            goto done;
        }
    }
done:
    archive_read_free(a);
    if (st != CLASP_OK) {
        free(buf);
        return st;
    }
    if (!buf) {
        buf = malloc(1);
        if (!buf) return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
    }
    buf[len] = 0;
    *out = buf;
    *n = len;
    return CLASP_OK;
}
