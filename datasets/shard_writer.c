/* shard_writer.c: the WebDataset tar shard writer (see shard_writer.h for the format). */
#include "datasets/shard_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <locale.h>
#include <wchar.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/array.h"

/* Output side of one libarchive handle: counts bytes; when `f` is set also writes and hashes. */
typedef struct sink {
    FILE *f;
    XXH64_state_t *hash;
    uint64_t nbytes;
    int err; /* errno of a failed fwrite, 0 if none */
} sink;

struct clasp_shard_writer {
    locale_t loc; /* UTF-8 LC_CTYPE, made current around every libarchive call */
    char *dir;
    char *prefix;
    size_t maxcount;
    uint64_t maxsize;

    struct archive *measure; /* formats headers into a counting sink to size samples */
    sink measure_sink;

    struct archive *cur; /* the open shard, or NULL */
    sink cur_sink;
    size_t cur_samples;
    char cur_path[4096];
    char tmp_path[4096 + 8];

    clasp_shard_info *shards;
    size_t n_shards, cap_shards;
    size_t n_samples;
    bool closed;
    bool failed;
};

static la_ssize_t sink_write(struct archive *a, void *client, const void *buf, size_t n) {
    (void)a;
    sink *s = client;
    if (s->f) {
        if (fwrite(buf, 1, n, s->f) != n) {
            s->err = errno ? errno : EIO;
            archive_set_error(a, s->err, "write failed: %s", strerror(s->err));
            return -1;
        }
        XXH64_update(s->hash, buf, n);
    }
    s->nbytes += n;
    return (la_ssize_t)n;
}

/* A tar handle configured the one way every shard is written. */
static clasp_status new_archive(sink *s, struct archive **out) {
    struct archive *a = archive_write_new();
    if (!a) return clasp_set_error(CLASP_ERR_NOMEM, "archive_write_new failed");
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(a, 0) != ARCHIVE_OK ||
        archive_write_open(a, s, NULL, sink_write, NULL) != ARCHIVE_OK) {
        clasp_status st = clasp_set_error(CLASP_ERR_IO, "libarchive setup: %s",
                                          archive_error_string(a) ? archive_error_string(a) : "?");
        archive_write_free(a);
        return st;
    }
    *out = a;
    return CLASP_OK;
}

/* libarchive converts names between the current locale's charset and UTF-8 (pax "path"). In
 * the default "C" locale a non-ASCII name fails to convert (libarchive 3.6 then even crashes on
 * a NULL name), so every libarchive call runs under a thread-local UTF-8 LC_CTYPE
 * (uselocale): names are UTF-8 bytes in, UTF-8 pax records out, whatever the process locale. */
static clasp_status utf8_locale(locale_t *out) {
    static const char *const names[] = {"C.UTF-8", "C.utf8", "en_US.UTF-8"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        *out = newlocale(LC_CTYPE_MASK, names[i], (locale_t)0);
        if (*out != (locale_t)0) return CLASP_OK;
    }
    return clasp_set_error(CLASP_ERR_UNSUPPORTED, "shard writer: no UTF-8 locale (C.UTF-8)");
}

/* Checks the key and fields and sorts field indices by extension into order[]. */
static clasp_status check_sample(const char *key, const clasp_shard_field *fields, size_t n,
                                 size_t order[CLASP_SHARD_MAX_FIELDS]) {
    if (!key || !*key) return clasp_set_error(CLASP_ERR_ARG, "shard writer: empty sample key");
    if (!fields || n == 0 || n > CLASP_SHARD_MAX_FIELDS)
        return clasp_set_error(CLASP_ERR_ARG, "shard writer: key '%s': %zu fields (1..%d)", key, n,
                               CLASP_SHARD_MAX_FIELDS);
    /* Called under the UTF-8 locale: mbstowcs rejects invalid UTF-8. */
    if (mbstowcs(NULL, key, 0) == (size_t)-1)
        return clasp_set_error(CLASP_ERR_ARG, "shard writer: key is not valid UTF-8");
    if (key[0] == '/')
        return clasp_set_error(CLASP_ERR_ARG, "shard writer: key '%s' is absolute", key);
    const char *last = strrchr(key, '/');
    last = last ? last + 1 : key;
    if (!*last || strchr(last, '.'))
        return clasp_set_error(CLASP_ERR_ARG,
                               "shard writer: key '%s': last path component must be non-empty "
                               "and contain no '.'",
                               key);
    for (size_t i = 0; i < n; i++) {
        const char *e = fields[i].ext;
        if (!e || !*e || strchr(e, '/') || strlen(key) + 1 + strlen(e) >= CLASP_SHARD_MAX_NAME)
            return clasp_set_error(CLASP_ERR_ARG, "shard writer: key '%s': bad extension '%s'", key,
                                   e ? e : "(null)");
        if (fields[i].nbytes && !fields[i].data)
            return clasp_set_error(CLASP_ERR_ARG, "shard writer: key '%s.%s': NULL data", key, e);
        order[i] = i;
    }
    /* Insertion sort: n is tiny. */
    for (size_t i = 1; i < n; i++) {
        size_t v = order[i], j = i;
        while (j > 0 && strcmp(fields[order[j - 1]].ext, fields[v].ext) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
    for (size_t i = 1; i < n; i++)
        if (!strcmp(fields[order[i - 1]].ext, fields[order[i]].ext))
            return clasp_set_error(CLASP_ERR_ARG, "shard writer: key '%s': extension '%s' twice",
                                   key, fields[order[i]].ext);
    return CLASP_OK;
}

/* Writes the members of a sample. With with_data = false, data is left to libarchive's
 * zero padding (same size, used for measuring). */
static clasp_status write_sample(struct archive *a, const char *key,
                                 const clasp_shard_field *fields, const size_t *order, size_t n,
                                 bool with_data) {
    struct archive_entry *e = archive_entry_new();
    if (!e) return clasp_set_error(CLASP_ERR_NOMEM, "archive_entry_new failed");
    clasp_status st = CLASP_OK;
    char name[CLASP_SHARD_MAX_NAME];
    for (size_t i = 0; i < n && st == CLASP_OK; i++) {
        const clasp_shard_field *f = &fields[order[i]];
        snprintf(name, sizeof name, "%s.%s", key, f->ext);
        archive_entry_clear(e);
        archive_entry_copy_pathname(e, name); /* UTF-8 under the writer locale */
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t)f->nbytes);
        archive_entry_set_mtime(e, CLASP_SHARD_MTIME, 0);
        archive_entry_set_uid(e, 0);
        archive_entry_set_gid(e, 0);
        int r = archive_write_header(a, e);
        if (r != ARCHIVE_OK) {
            st = clasp_set_error(CLASP_ERR_IO, "member '%s': %s", name, archive_error_string(a));
            break;
        }
        if (with_data && f->nbytes) {
            const char *p = f->data;
            size_t left = f->nbytes;
            while (left > 0) {
                la_ssize_t k = archive_write_data(a, p, left);
                if (k <= 0) {
                    st = clasp_set_error(CLASP_ERR_IO, "member '%s': %s", name,
                                         archive_error_string(a));
                    break;
                }
                p += k;
                left -= (size_t)k;
            }
        }
        if (st == CLASP_OK && archive_write_finish_entry(a) != ARCHIVE_OK)
            st = clasp_set_error(CLASP_ERR_IO, "member '%s': %s", name, archive_error_string(a));
    }
    archive_entry_free(e);
    return st;
}

clasp_shard_writer_config clasp_shard_writer_default_config(void) {
    clasp_shard_writer_config c = {NULL, "shard", 10000, 0};
    return c;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

clasp_status clasp_shard_writer_open(const clasp_shard_writer_config *cfg,
                                     clasp_shard_writer **out) {
    if (!out) return clasp_set_error(CLASP_ERR_ARG, "shard writer: NULL out");
    *out = NULL;
    if (!cfg || !cfg->dir || !*cfg->dir || !cfg->prefix || !*cfg->prefix ||
        strchr(cfg->prefix, '/'))
        return clasp_set_error(CLASP_ERR_ARG, "shard writer: need a directory and a prefix "
                                              "without '/'");
    if (strlen(cfg->dir) + strlen(cfg->prefix) + 32 > sizeof(((clasp_shard_writer *)0)->cur_path))
        return clasp_set_error(CLASP_ERR_ARG, "shard writer: path too long: %s", cfg->dir);
    clasp_shard_writer *w = calloc(1, sizeof *w);
    if (!w) return clasp_set_error(CLASP_ERR_NOMEM, "shard writer: out of memory");
    w->dir = dup_str(cfg->dir);
    w->prefix = dup_str(cfg->prefix);
    w->maxcount = cfg->maxcount;
    w->maxsize = cfg->maxsize;
    if (!w->dir || !w->prefix) {
        clasp_shard_writer_free(w);
        return clasp_set_error(CLASP_ERR_NOMEM, "shard writer: out of memory");
    }
    clasp_status st = utf8_locale(&w->loc);
    if (st != CLASP_OK) {
        clasp_shard_writer_free(w);
        return st;
    }
    locale_t old = uselocale(w->loc);
    st = new_archive(&w->measure_sink, &w->measure);
    uselocale(old);
    if (st != CLASP_OK) {
        clasp_shard_writer_free(w);
        return st;
    }
    *out = w;
    return CLASP_OK;
}

static clasp_status open_shard(clasp_shard_writer *w) {
    snprintf(w->cur_path, sizeof w->cur_path, "%s/%s-%06zu.tar", w->dir, w->prefix, w->n_shards);
    snprintf(w->tmp_path, sizeof w->tmp_path, "%s.tmp", w->cur_path);
    memset(&w->cur_sink, 0, sizeof w->cur_sink);
    w->cur_sink.f = fopen(w->tmp_path, "wb");
    if (!w->cur_sink.f)
        return clasp_set_error(CLASP_ERR_IO, "%s: cannot create: %s", w->tmp_path, strerror(errno));
    w->cur_sink.hash = XXH64_createState();
    if (!w->cur_sink.hash) return clasp_set_error(CLASP_ERR_NOMEM, "xxhash state");
    XXH64_reset(w->cur_sink.hash, 0);
    clasp_status st = new_archive(&w->cur_sink, &w->cur);
    if (st != CLASP_OK) return clasp_wrap_error(st, "%s", w->tmp_path);
    w->cur_samples = 0;
    return CLASP_OK;
}

/* Releases the current shard's handles without renaming; removes the temp file if asked. */
static void drop_shard(clasp_shard_writer *w, bool remove_tmp) {
    if (w->cur) {
        archive_write_free(w->cur); /* may write the end marker into a file we then delete */
        w->cur = NULL;
    }
    if (w->cur_sink.f) {
        fclose(w->cur_sink.f);
        w->cur_sink.f = NULL;
        if (remove_tmp) remove(w->tmp_path);
    }
    if (w->cur_sink.hash) {
        XXH64_freeState(w->cur_sink.hash);
        w->cur_sink.hash = NULL;
    }
}

static clasp_status finish_shard(clasp_shard_writer *w) {
    if (!w->cur) return CLASP_OK;
    clasp_status st = CLASP_OK;
    if (archive_write_close(w->cur) != ARCHIVE_OK)
        st = clasp_set_error(CLASP_ERR_IO, "%s: %s", w->tmp_path, archive_error_string(w->cur));
    archive_write_free(w->cur);
    w->cur = NULL;
    if (st == CLASP_OK && (fflush(w->cur_sink.f) != 0 || fsync(fileno(w->cur_sink.f)) != 0))
        st = clasp_set_error(CLASP_ERR_IO, "%s: flush: %s", w->tmp_path, strerror(errno));
    if (st != CLASP_OK) {
        drop_shard(w, true);
        return st;
    }
    FILE *f = w->cur_sink.f;
    w->cur_sink.f = NULL;
    if (fclose(f) != 0) {
        drop_shard(w, true);
        remove(w->tmp_path);
        return clasp_set_error(CLASP_ERR_IO, "%s: close: %s", w->tmp_path, strerror(errno));
    }
    if (rename(w->tmp_path, w->cur_path) != 0) {
        st = clasp_set_error(CLASP_ERR_IO, "%s: rename to %s: %s", w->tmp_path, w->cur_path,
                             strerror(errno));
        drop_shard(w, true);
        remove(w->tmp_path);
        return st;
    }
    clasp_shard_info *p = clasp_grow(w->shards, w->n_shards, &w->cap_shards, sizeof *p, 16);
    if (!p) {
        drop_shard(w, false);
        return clasp_set_error(CLASP_ERR_NOMEM, "shard writer: out of memory");
    }
    w->shards = p;
    clasp_shard_info *info = &w->shards[w->n_shards++];
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s-%06zu.tar", w->prefix, w->n_shards - 1);
    info->n_samples = w->cur_samples;
    info->nbytes = w->cur_sink.nbytes;
    info->xxh64 = XXH64_digest(w->cur_sink.hash);
    drop_shard(w, false);
    return CLASP_OK;
}

static clasp_status add_impl(clasp_shard_writer *w, const char *key,
                             const clasp_shard_field *fields, size_t n_fields) {
    if (w->closed || w->failed)
        return clasp_set_error(CLASP_ERR_STATE, "shard writer %s/%s: %s", w->dir, w->prefix,
                               w->closed ? "already closed" : "failed earlier");
    size_t order[CLASP_SHARD_MAX_FIELDS];
    CLASP_TRY(check_sample(key, fields, n_fields, order));

    uint64_t before = w->measure_sink.nbytes;
    clasp_status st = write_sample(w->measure, key, fields, order, n_fields, false);
    if (st != CLASP_OK) {
        w->failed = true;
        return clasp_wrap_error(st, "shard writer: measuring key '%s'", key);
    }
    uint64_t need = w->measure_sink.nbytes - before;

    if (w->cur) {
        bool full_count = w->maxcount && w->cur_samples >= w->maxcount;
        bool full_size =
            w->maxsize && w->cur_sink.nbytes + need + CLASP_SHARD_EOA_NBYTES > w->maxsize;
        if (full_count || full_size) {
            st = finish_shard(w);
            if (st != CLASP_OK) {
                w->failed = true;
                return st;
            }
        }
    }
    if (!w->cur) {
        st = open_shard(w);
        if (st != CLASP_OK) {
            w->failed = true;
            drop_shard(w, true);
            return st;
        }
    }
    uint64_t at = w->cur_sink.nbytes;
    st = write_sample(w->cur, key, fields, order, n_fields, true);
    if (st == CLASP_OK && w->cur_sink.nbytes - at != need)
        st = clasp_set_error(
            CLASP_ERR_FORMAT, "shard writer: key '%s' took %llu bytes, measured %llu", key,
            (unsigned long long)(w->cur_sink.nbytes - at), (unsigned long long)need);
    if (st != CLASP_OK) {
        w->failed = true;
        return clasp_wrap_error(st, "%s", w->tmp_path);
    }
    w->cur_samples++;
    w->n_samples++;
    return CLASP_OK;
}

clasp_status clasp_shard_writer_add(clasp_shard_writer *w, const char *key,
                                    const clasp_shard_field *fields, size_t n_fields) {
    if (!w) return clasp_set_error(CLASP_ERR_ARG, "shard writer: NULL writer");
    locale_t old = uselocale(w->loc);
    clasp_status st = add_impl(w, key, fields, n_fields);
    uselocale(old);
    return st;
}

static clasp_status close_impl(clasp_shard_writer *w) {
    if (w->closed) return CLASP_OK;
    if (w->failed)
        return clasp_set_error(CLASP_ERR_STATE, "shard writer %s/%s: failed earlier", w->dir,
                               w->prefix);
    clasp_status st = finish_shard(w);
    if (st != CLASP_OK) {
        w->failed = true;
        return st;
    }
    w->closed = true;
    return CLASP_OK;
}

clasp_status clasp_shard_writer_close(clasp_shard_writer *w) {
    if (!w) return clasp_set_error(CLASP_ERR_ARG, "shard writer: NULL writer");
    locale_t old = uselocale(w->loc);
    clasp_status st = close_impl(w);
    uselocale(old);
    return st;
}

const clasp_shard_info *clasp_shard_writer_shards(const clasp_shard_writer *w, size_t *n) {
    if (n) *n = w ? w->n_shards : 0;
    return w ? w->shards : NULL;
}

size_t clasp_shard_writer_n_samples(const clasp_shard_writer *w) {
    return w ? w->n_samples : 0;
}

void clasp_shard_writer_free(clasp_shard_writer *w) {
    if (!w) return;
    locale_t old = w->loc ? uselocale(w->loc) : (locale_t)0;
    drop_shard(w, true);
    if (w->measure) archive_write_free(w->measure);
    if (w->loc) {
        uselocale(old);
        freelocale(w->loc);
    }
    free(w->shards);
    free(w->dir);
    free(w->prefix);
    free(w);
}

clasp_status clasp_shard_sample_nbytes(const char *key, const clasp_shard_field *fields,
                                       size_t n_fields, uint64_t *out) {
    if (!out) return clasp_set_error(CLASP_ERR_ARG, "shard writer: NULL out");
    *out = 0;
    locale_t loc;
    CLASP_TRY(utf8_locale(&loc));
    locale_t old = uselocale(loc);
    size_t order[CLASP_SHARD_MAX_FIELDS];
    sink s = {0};
    struct archive *a = NULL;
    clasp_status st = check_sample(key, fields, n_fields, order);
    if (st == CLASP_OK) st = new_archive(&s, &a);
    if (st == CLASP_OK) st = write_sample(a, key, fields, order, n_fields, false);
    if (st == CLASP_OK) *out = s.nbytes;
    if (a) archive_write_free(a);
    uselocale(old);
    freelocale(loc);
    return st;
}
