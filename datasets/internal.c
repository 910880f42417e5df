/* internal.c: whole-file reading through libarchive filters, reading members of a .tgz, running
 * a program with an argument vector (posix_spawnp), the download cache folder, transcript lists
 * and small file helpers. */
#include "datasets/internal.h"

#include "datasets/emoji.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/array.h"
#include "core/json.h"

clasp_status clasp__write_text(const char *dir, const char *name, const char *text) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return clasp_set_error(CLASP_ERR_ARG, "path too long: %s/%s", dir, name);
    return clasp_write_file_atomic(path, text, strlen(text));
}

/* Opens the file `path` with libarchive, any compression filter, and the tar format or (tar
 * false) the raw format that reads the whole decompressed file as one entry. */
static clasp_status open_archive(const char *path, bool tar, struct archive **out) {
    *out = NULL;
    if (!clasp_is_file(path)) return clasp_set_error(CLASP_ERR_NOT_FOUND, "%s: no such file", path);
    struct archive *a = archive_read_new();
    if (!a) return clasp_set_error(CLASP_ERR_NOMEM, "archive_read_new failed");
    archive_read_support_filter_all(a);
    if (tar)
        archive_read_support_format_tar(a);
    else
        archive_read_support_format_raw(a);
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        clasp_status st = clasp_set_error(CLASP_ERR_IO, "%s: %s", path, archive_error_string(a));
        archive_read_free(a);
        return st;
    }
    *out = a;
    return CLASP_OK;
}

clasp_status clasp__read_decompressed(const char *path, size_t limit, uint8_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    struct archive *a;
    CLASP_TRY(open_archive(path, false, &a));
    clasp_status st = CLASP_OK;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    struct archive_entry *e;
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

extern char **environ;

clasp_status clasp__run(char *const argv[], const char *out_path, const char *err_path,
                        int *exit_code) {
    *exit_code = -1;
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0)
        return clasp_set_error(CLASP_ERR_NOMEM, "%s: cannot prepare spawn", argv[0]);
    const int wr = O_WRONLY | O_CREAT | O_TRUNC;
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path ? out_path : "/dev/null", wr, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path ? err_path : "/dev/null", wr, 0644);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc == ENOENT || rc == EACCES || rc == ENOTDIR)
        return clasp_set_error(CLASP_ERR_NOT_FOUND, "%s: cannot run: %s", argv[0], strerror(rc));
    if (rc != 0) return clasp_set_error(CLASP_ERR_IO, "%s: cannot run: %s", argv[0], strerror(rc));
    int ws;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR)
            return clasp_set_error(CLASP_ERR_IO, "%s: waitpid: %s", argv[0], strerror(errno));
    /* glibc's posix_spawnp reports exec failures through its return value; other libcs make
     * the child exit with 127. */
    *exit_code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
    return CLASP_OK;
}

clasp_status clasp_datasets_cache_dir(char *out, size_t cap) {
    const char *c = getenv("CLASP_CACHE"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    int n;
    if (c && *c)
        n = snprintf(out, cap, "%s", c);
    else if (x && *x)
        n = snprintf(out, cap, "%s/clasp", x);
    else if (h && *h)
        n = snprintf(out, cap, "%s/.cache/clasp", h);
    else
        return clasp_set_error(CLASP_ERR_ARG, "no cache folder: set CLASP_CACHE or HOME");
    if (n < 0 || (size_t)n >= cap) return clasp_set_error(CLASP_ERR_ARG, "cache path too long");
    return clasp_mkdir_p(out);
}

static void transcript_free(clasp__transcript *t) {
    free(t->key);
    free(t->text);
    free(t->split_id);
}

void clasp__transcripts_free(clasp__transcripts *l) {
    for (size_t i = 0; i < l->n; i++) transcript_free(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

clasp_status clasp__transcripts_push(clasp__transcripts *l, const char *key, const char *text,
                                     const char *split_id) {
    clasp__transcript *p = clasp_grow(l->v, l->n, &l->cap, sizeof *p, 256);
    if (!p) return clasp_set_error(CLASP_ERR_NOMEM, "transcripts: out of memory");
    l->v = p;
    clasp__transcript *t = &l->v[l->n];
    t->key = strdup(key);
    t->text = strdup(text);
    t->split_id = strdup(split_id ? split_id : key);
    if (!t->key || !t->text || !t->split_id) {
        transcript_free(t);
        return clasp_set_error(CLASP_ERR_NOMEM, "transcripts: out of memory");
    }
    l->n++;
    return CLASP_OK;
}

void clasp__emoji_split_id(const char *hex, char *out, size_t cap) {
    size_t k = 0;
    const char *p = hex;
    while (*p && cap) {
        const char *d = strchr(p, '-');
        size_t n = d ? (size_t)(d - p) : strlen(p);
        if (!(n == 4 && !strncasecmp(p, "FE0F", 4))) {
            if (k && k + 1 < cap) out[k++] = '-';
            for (size_t i = 0; i < n && k + 1 < cap; i++)
                out[k++] = (char)toupper((unsigned char)p[i]);
        }
        p = d ? d + 1 : p + n;
    }
    if (cap) out[k < cap ? k : cap - 1] = 0;
}

clasp_status clasp__tar_each(const char *tgz, size_t limit, clasp__tar_want_fn want,
                             clasp__tar_got_fn got, void *user) {
    struct archive *a;
    CLASP_TRY(open_archive(tgz, true, &a));
    clasp_status st = CLASP_OK;
    uint8_t *buf = NULL;
    struct archive_entry *e;
    int r = ARCHIVE_EOF;
    while (st == CLASP_OK &&
           ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN)) {
        const char *path = archive_entry_pathname(e);
        if (!path || archive_entry_filetype(e) != AE_IFREG || !want(path, user)) continue;
        int64_t size = archive_entry_size(e);
        if (size < 0 || (uint64_t)size > limit) {
            st = clasp_set_error(CLASP_ERR_OVERFLOW, "%s: %s: larger than %zu bytes", tgz, path,
                                 limit);
            break;
        }
        uint8_t *p = realloc(buf, (size_t)size + 1);
        if (!p) {
            st = clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", tgz);
            break;
        }
        buf = p;
        size_t len = 0;
        while (len < (size_t)size) {
            la_ssize_t k = archive_read_data(a, buf + len, (size_t)size - len);
            if (k <= 0) {
                st = clasp_set_error(CLASP_ERR_FORMAT, "%s: %s: %s", tgz, path,
                                     k < 0 ? archive_error_string(a) : "truncated member");
                break;
            }
            len += (size_t)k;
        }
        buf[len] = 0;
        if (st == CLASP_OK) st = got(path, buf, len, user);
    }
    if (st == CLASP_OK && r != ARCHIVE_EOF)
        st = clasp_set_error(CLASP_ERR_FORMAT, "%s: %s", tgz, archive_error_string(a));
    free(buf);
    archive_read_free(a);
    return st;
}
