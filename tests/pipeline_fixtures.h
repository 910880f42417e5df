/* pipeline_fixtures.h: tar shard fixtures for the pipeline tests, written with libarchive's
 * archive_write API (any tar format, any compression filter) plus a tiny PGM/PPM writer and
 * a WAV writer. Header-only (static functions) so each test file stays self-contained. */
#ifndef CLASP_TESTS_PIPELINE_FIXTURES_H
#define CLASP_TESTS_PIPELINE_FIXTURES_H

#include <archive.h>
#include <archive_entry.h>
#include <locale.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fx_member {
    const char *name;
    const void *data; /* NULL with n > 0: n bytes of pattern */
    size_t n;
    int type; /* 0 = regular file, else AE_IFDIR / AE_IFLNK */
} fx_member;

/* Writes members to path with format (ARCHIVE_FORMAT_TAR_*) and filter (ARCHIVE_FILTER_*). */
__attribute__((unused)) static bool fx_write_tar(const char *path, int format, int filter,
                                                 const fx_member *m, size_t n) {
    /* libarchive converts names through the locale; UTF-8 names need a UTF-8 locale. */
    setlocale(LC_CTYPE, "C.UTF-8");
    struct archive *a = archive_write_new();
    if (!a) return false;
    if (archive_write_set_format(a, format) != ARCHIVE_OK) goto fail;
    if (filter != ARCHIVE_FILTER_NONE && archive_write_add_filter(a, filter) != ARCHIVE_OK)
        goto fail;
    if (archive_write_open_filename(a, path) != ARCHIVE_OK) goto fail;
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname_utf8(e, m[i].name);
        archive_entry_set_mode(e, (m[i].type ? (unsigned)m[i].type : AE_IFREG) | 0644);
        if (m[i].type == AE_IFLNK) archive_entry_set_symlink(e, "target");
        size_t sz = m[i].type ? 0 : m[i].n;
        archive_entry_set_size(e, (la_int64_t)sz);
        archive_entry_set_mtime(e, 1700000000, 0);
        if (archive_write_header(a, e) != ARCHIVE_OK) {
            fprintf(stderr, "write header %s: %s\n", m[i].name, archive_error_string(a));
            archive_entry_free(e);
            goto fail;
        }
        if (sz) {
            uint8_t *buf = NULL;
            const void *d = m[i].data;
            if (!d) {
                buf = malloc(sz);
                for (size_t k = 0; k < sz; k++) buf[k] = (uint8_t)(k * 7 + i);
                d = buf;
            }
            archive_write_data(a, d, sz);
            free(buf);
        }
        archive_entry_free(e);
    }
    if (archive_write_close(a) != ARCHIVE_OK) goto fail;
    archive_write_free(a);
    return true;
fail:
    fprintf(stderr, "fx_write_tar %s: %s\n", path, archive_error_string(a));
    archive_write_free(a);
    return false;
}

/* A binary PGM (P5, channels 1) or PPM (P6, channels 3) of w x h with a pattern from `seed`.
 * Returns a malloc'd buffer of *n bytes. */
__attribute__((unused)) static uint8_t *fx_pnm(int w, int h, int channels, unsigned seed,
                                               size_t *n) {
    char head[64];
    int hn = snprintf(head, sizeof head, "P%d\n%d %d\n255\n", channels == 1 ? 5 : 6, w, h);
    size_t np = (size_t)w * (size_t)h * (size_t)channels;
    uint8_t *b = malloc((size_t)hn + np);
    memcpy(b, head, (size_t)hn);
    for (size_t i = 0; i < np; i++) b[(size_t)hn + i] = (uint8_t)((i * 31u + seed * 17u) & 255u);
    *n = (size_t)hn + np;
    return b;
}

/* Reads a whole file (tests only). */
__attribute__((unused)) static uint8_t *fx_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

/* Writes the first n bytes of data to path. */
__attribute__((unused)) static bool fx_write(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

#endif
