/* tar_reader.c: libarchive shard reading and WebDataset sample assembly (see tar_reader.h). */
#include "pipeline/tar_reader.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/array.h"
#include "pipeline/shardlist.h"

/* A member read ahead that belongs to the next sample. */
typedef struct member {
    char *key;
    clasp_field f;
    bool truncated, too_large;
    bool valid;
} member;

struct clasp_tar_reader {
    struct archive *a;
    FILE *pipe;
    char *shard;
    clasp_data_stats *stats;
    size_t max_member;
    uint64_t n_samples;
    uint64_t n_headers; /* members whose header was read */
    member pending;
    int64_t pending_entry_size; /* header size of the pending member (-1: unknown) */
    bool done;
    bool failed;
    bool read_to_end; /* reached ARCHIVE_EOF cleanly */
};

static void member_clear_(member *m) {
    free(m->key);
    free(m->f.ext);
    free(m->f.data);
    memset(m, 0, sizeof *m);
}

void clasp_sample_clear(clasp_sample *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n_fields; i++) {
        free(s->fields[i].ext);
        free(s->fields[i].data);
    }
    free(s->fields);
    free(s->shard);
    free(s->key);
    memset(s, 0, sizeof *s);
}

void clasp_sample_move(clasp_sample *dst, clasp_sample *src) {
    clasp_sample_clear(dst);
    *dst = *src;
    memset(src, 0, sizeof *src);
}

const clasp_field *clasp_sample_field(const clasp_sample *s, const char *ext) {
    for (size_t i = 0; i < s->n_fields; i++)
        if (!strcmp(s->fields[i].ext, ext)) return &s->fields[i];
    return NULL;
}

bool clasp_tar_split_name(const char *path, size_t *key_len, const char **ext) {
    while (path[0] == '.' && path[1] == '/') path += 2;
    const char *last = strrchr(path, '/');
    last = last ? last + 1 : path;
    if (last[0] == 0 || (last[0] == '_' && last[1] == '_')) return false;
    const char *dot = strchr(last, '.');
    if (!dot || dot == last || dot[1] == 0) return false;
    *key_len = (size_t)(dot - path);
    *ext = dot + 1;
    return true;
}

static char *strndup_(const char *s, size_t n) {
    char *r = malloc(n + 1);
    if (!r) return NULL;
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

/* A reader named `name` with its libarchive handle (any filter, tar format), not opened yet. */
static clasp_status reader_new(const char *name, clasp_data_stats *stats, size_t max_member_bytes,
                               clasp_tar_reader **out) {
    *out = NULL;
    clasp_tar_reader *r = calloc(1, sizeof *r);
    if (!r) return clasp_set_error(CLASP_ERR_NOMEM, "shard %s: out of memory", name);
    r->stats = stats;
    r->max_member = max_member_bytes ? max_member_bytes : CLASP_TAR_MAX_MEMBER_BYTES;
    r->shard = strndup_(name, strlen(name));
    r->a = archive_read_new();
    if (!r->shard || !r->a) {
        clasp_tar_close(r);
        return clasp_set_error(CLASP_ERR_NOMEM, "shard %s: out of memory", name);
    }
    archive_read_support_filter_all(r->a);
    archive_read_support_format_tar(r->a);
    *out = r;
    return CLASP_OK;
}

/* Ends an open that libarchive refused: counts the shard as unreadable with libarchive's
 * reason, releases the reader and returns `code`. */
static clasp_status open_refused(clasp_tar_reader *r, clasp_status code) {
    char msg[512];
    const char *es = archive_error_string(r->a);
    snprintf(msg, sizeof msg, "%s", es ? es : "cannot open");
    if (r->stats) clasp_data_stats_shard_error(r->stats, CLASP_SHARD_UNREADABLE, r->shard, msg);
    clasp_status st = clasp_set_error(code, "shard %s: %s", r->shard, msg);
    clasp_tar_close(r);
    return st;
}

clasp_status clasp_tar_open(const char *shard, clasp_data_stats *stats, size_t max_member_bytes,
                            clasp_tar_reader **out) {
    clasp_tar_reader *r;
    *out = NULL;
    CLASP_TRY(reader_new(shard, stats, max_member_bytes, &r));
    int rc;
    if (clasp_shard_is_pipe(shard) && !clasp_shard_pipes_allowed()) {
        clasp_tar_close(r);
        return clasp_set_error(CLASP_ERR_ARG,
                               "shard %s: pipe: shards are forbidden (CLASP_NO_PIPE)", shard);
    }
    if (clasp_shard_is_pipe(shard)) {
        fflush(NULL);
        r->pipe = popen(shard + 5, "r");
        if (!r->pipe) {
            int e = errno;
            if (stats)
                clasp_data_stats_shard_error(stats, CLASP_SHARD_UNREADABLE, shard, strerror(e));
            clasp_tar_close(r);
            return clasp_set_error(CLASP_ERR_IO, "shard %s: cannot run command: %s", shard,
                                   strerror(e));
        }
        rc = archive_read_open_FILE(r->a, r->pipe);
    } else if (clasp_shard_is_stdin(shard)) {
        rc = archive_read_open_fd(r->a, 0, 1 << 16);
    } else {
        struct stat st;
        if (stat(shard, &st) != 0) {
            int e = errno;
            clasp_shard_error kind = e == ENOENT ? CLASP_SHARD_MISSING : CLASP_SHARD_UNREADABLE;
            if (stats) clasp_data_stats_shard_error(stats, kind, shard, strerror(e));
            clasp_tar_close(r);
            return clasp_set_error(e == ENOENT ? CLASP_ERR_NOT_FOUND : CLASP_ERR_IO, "shard %s: %s",
                                   shard, strerror(e));
        }
        rc = archive_read_open_filename(r->a, shard, 1 << 16);
    }
    if (rc != ARCHIVE_OK) return open_refused(r, CLASP_ERR_IO);
    if (stats) clasp_data_stats_add(stats, &stats->shards_opened, 1);
    *out = r;
    return CLASP_OK;
}

clasp_status clasp_tar_open_memory(const void *data, size_t n, const char *name,
                                   clasp_data_stats *stats, size_t max_member_bytes,
                                   clasp_tar_reader **out) {
    clasp_tar_reader *r;
    *out = NULL;
    CLASP_TRY(reader_new(name, stats, max_member_bytes, &r));
    if (archive_read_open_memory(r->a, data, n) != ARCHIVE_OK)
        return open_refused(r, CLASP_ERR_FORMAT);
    if (stats) clasp_data_stats_add(stats, &stats->shards_opened, 1);
    *out = r;
    return CLASP_OK;
}

bool clasp_tar_failed(const clasp_tar_reader *r) {
    return r->failed;
}

void clasp_tar_close(clasp_tar_reader *r) {
    if (!r) return;
    if (r->a) archive_read_free(r->a);
    if (r->pipe) {
        int st = pclose(r->pipe);
        if (r->read_to_end && st != 0 && r->stats) {
            char msg[64];
            snprintf(msg, sizeof msg, "command exited with status %d",
                     WIFEXITED(st) ? WEXITSTATUS(st) : -1);
            clasp_data_stats_shard_error(r->stats, CLASP_SHARD_PIPE_FAILED, r->shard, msg);
        }
    }
    member_clear_(&r->pending);
    free(r->shard);
    free(r);
}

/* Ends the shard because of damage; counts it once. */
static void fail_(clasp_tar_reader *r, const char *what) {
    if (r->done) return;
    r->done = true;
    r->failed = true;
    char msg[512];
    const char *es = archive_error_string(r->a);
    snprintf(msg, sizeof msg, "%s after %llu member(s): %s", what, (unsigned long long)r->n_headers,
             es ? es : "error");
    if (r->stats)
        clasp_data_stats_shard_error(
            r->stats, r->n_headers == 0 ? CLASP_SHARD_UNREADABLE : CLASP_SHARD_TRUNCATED, r->shard,
            msg);
}

/* Reads (or skips) the current member's data into m. Returns NOMEM only. */
static clasp_status read_member_(clasp_tar_reader *r, int64_t size, bool payload, member *m) {
    m->f.n = size > 0 ? (size_t)size : 0;
    if (size < 0 || (uint64_t)size > r->max_member) {
        /* Unknown or above the limit: never buffered. */
        m->too_large = true;
        if (archive_read_data_skip(r->a) != ARCHIVE_OK) {
            m->truncated = true;
            fail_(r, "member data cut");
        }
        return CLASP_OK;
    }
    if (!payload) {
        if (archive_read_data_skip(r->a) != ARCHIVE_OK) {
            m->truncated = true;
            fail_(r, "member data cut");
        }
        return CLASP_OK;
    }
    m->f.data = malloc((size_t)size + 1);
    if (!m->f.data) return clasp_set_error(CLASP_ERR_NOMEM, "shard %s: out of memory", r->shard);
    size_t got = 0;
    while (got < (size_t)size) {
        la_ssize_t k = archive_read_data(r->a, m->f.data + got, (size_t)size - got);
        if (k <= 0) break;
        got += (size_t)k;
    }
    m->f.data[got] = 0;
    if (got != (size_t)size) {
        m->truncated = true;
        fail_(r, "member data cut");
    }
    if (r->stats) clasp_data_stats_add(r->stats, &r->stats->bytes, got);
    return CLASP_OK;
}

static clasp_status add_field_(clasp_sample *s, member *m) {
    clasp_field *f = clasp_grow(s->fields, s->n_fields, &s->cap_fields, sizeof *f, 4);
    if (!f) return clasp_set_error(CLASP_ERR_NOMEM, "sample: out of memory");
    s->fields = f;
    s->fields[s->n_fields++] = m->f;
    memset(&m->f, 0, sizeof m->f);
    s->truncated |= m->truncated;
    s->too_large |= m->too_large;
    return CLASP_OK;
}

/* Starts sample s from member m (m's key moves into s). */
static clasp_status start_(clasp_tar_reader *r, clasp_sample *s, member *m, bool payload) {
    s->key = m->key;
    m->key = NULL;
    s->shard = strndup_(r->shard, strlen(r->shard));
    s->ordinal = r->n_samples;
    s->has_payload = payload;
    if (!s->shard) return clasp_set_error(CLASP_ERR_NOMEM, "sample: out of memory");
    CLASP_TRY(add_field_(s, m));
    member_clear_(m);
    return CLASP_OK;
}

/* Whether one more member of `size` bytes would take sample s beyond CLASP_TAR_MAX_FIELDS
 * fields or the member limit in total bytes. */
static bool over_limit_(const clasp_tar_reader *r, const clasp_sample *s, int64_t size) {
    if (s->n_fields >= CLASP_TAR_MAX_FIELDS) return true;
    size_t bytes = size > 0 ? (size_t)size : 0;
    for (size_t i = 0; i < s->n_fields; i++) bytes += s->fields[i].n;
    return bytes > r->max_member;
}

clasp_status clasp_tar_next(clasp_tar_reader *r, bool payload, clasp_sample *s, bool *got) {
    clasp_sample_clear(s);
    *got = false;
    if (r->pending.valid) {
        /* The archive is positioned at the pending member's data: read it now, with this
         * call's payload choice. */
        CLASP_TRY(read_member_(r, r->pending_entry_size, payload, &r->pending));
        CLASP_TRY(start_(r, s, &r->pending, payload));
    } else if (r->done) {
        return CLASP_OK;
    }
    while (!r->done) {
        struct archive_entry *e;
        int rc = archive_read_next_header(r->a, &e);
        if (rc == ARCHIVE_EOF) {
            r->done = true;
            r->read_to_end = true;
            break;
        }
        if (rc < ARCHIVE_WARN) {
            fail_(r, "bad header");
            break;
        }
        r->n_headers++;
        if (archive_entry_filetype(e) != AE_IFREG) {
            if (r->stats) clasp_data_stats_add(r->stats, &r->stats->members_ignored, 1);
            continue;
        }
        const char *path = archive_entry_pathname_utf8(e);
        if (!path) path = archive_entry_pathname(e);
        size_t klen;
        const char *ext;
        if (!path || !clasp_tar_split_name(path, &klen, &ext)) {
            if (r->stats) clasp_data_stats_add(r->stats, &r->stats->members_ignored, 1);
            continue;
        }
        while (path[0] == '.' && path[1] == '/') path += 2; /* as clasp_tar_split_name */
        member m = {0};
        m.key = strndup_(path, klen);
        m.f.ext = strndup_(ext, strlen(ext));
        if (!m.key || !m.f.ext) {
            member_clear_(&m);
            return clasp_set_error(CLASP_ERR_NOMEM, "sample: out of memory");
        }
        for (char *c = m.f.ext; *c; c++) *c = (char)tolower((unsigned char)*c);
        m.valid = true;
        int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
        bool same = s->key && !strcmp(s->key, m.key);
        if (same && clasp_sample_field(s, m.f.ext)) {
            if (r->stats) clasp_data_stats_add(r->stats, &r->stats->repeated_ext, 1);
            same = false;
        }
        if (s->key && !same) {
            /* First member of the next sample: keep its header, leave its data unread. */
            r->pending = m;
            r->pending_entry_size = size;
            break;
        }
        if (s->key && over_limit_(r, s, size)) {
            s->too_large = true; /* the sample is skipped; its further members are not kept */
            m.valid = false;
            (void)read_member_(r, -1, false, &m);
            member_clear_(&m);
            continue;
        }
        clasp_status st = read_member_(r, size, payload, &m);
        if (st == CLASP_OK) st = s->key ? add_field_(s, &m) : start_(r, s, &m, payload);
        member_clear_(&m);
        if (st != CLASP_OK) return st;
    }
    if (s->key) {
        r->n_samples++;
        *got = true;
        if (r->stats) clasp_data_stats_add(r->stats, &r->stats->samples_read, 1);
    }
    return CLASP_OK;
}

/* ---- field map ---- */

static const char *const kind_names[CLASP_FIELD_N] = {"image", "text", "audio",
                                                      "label", "json", "other"};

const char *clasp_field_kind_name(clasp_field_kind k) {
    return (unsigned)k < CLASP_FIELD_N ? kind_names[k] : "other";
}

clasp_field_map clasp_field_map_default(void) {
    return (clasp_field_map){
        .image = "png,jpg,jpeg,bmp,gif,tga,ppm,pgm",
        .text = "txt",
        .audio = "wav,flac,ogg,opus,mp3",
        .label = "cls",
        .json = "json",
    };
}

clasp_status clasp_field_parse_required(const char *s, unsigned *mask) {
    *mask = 0;
    if (!s) return CLASP_OK;
    const char *p = s;
    while (*p) {
        size_t n = strcspn(p, ",;");
        if (n > 0) {
            int k = -1;
            for (int i = 0; i < CLASP_FIELD_JSON; i++)
                if (strlen(kind_names[i]) == n && !strncmp(p, kind_names[i], n)) k = i;
            if (k < 0)
                return clasp_set_error(
                    CLASP_ERR_ARG, "required field '%.*s': expected image, text, audio or label",
                    (int)n, p);
            *mask |= 1u << k;
        }
        p += n;
        if (*p) p++;
    }
    return CLASP_OK;
}

static bool in_list_(const char *list, const char *ext, size_t n) {
    const char *p = list;
    while (*p) {
        size_t k = strcspn(p, ",;");
        if (k == n && !strncmp(p, ext, n)) return true;
        p += k;
        if (*p) p++;
    }
    return false;
}

static int kind_exact_(const clasp_field_map *m, const char *ext, size_t n) {
    if (in_list_(m->image, ext, n)) return CLASP_FIELD_IMAGE;
    if (in_list_(m->text, ext, n)) return CLASP_FIELD_TEXT;
    if (in_list_(m->audio, ext, n)) return CLASP_FIELD_AUDIO;
    if (in_list_(m->label, ext, n)) return CLASP_FIELD_LABEL;
    if (in_list_(m->json, ext, n)) return CLASP_FIELD_JSON;
    return -1;
}

clasp_field_kind clasp_field_map_kind(const clasp_field_map *m, const char *ext) {
    int k = kind_exact_(m, ext, strlen(ext));
    if (k >= 0) return (clasp_field_kind)k;
    const char *dot = strrchr(ext, '.');
    if (dot) {
        k = kind_exact_(m, dot + 1, strlen(dot + 1));
        if (k >= 0) return (clasp_field_kind)k;
    }
    return CLASP_FIELD_OTHER;
}

const clasp_field *clasp_sample_find(const clasp_sample *s, const clasp_field_map *m,
                                     clasp_field_kind k) {
    for (size_t i = 0; i < s->n_fields; i++)
        if (kind_exact_(m, s->fields[i].ext, strlen(s->fields[i].ext)) == (int)k)
            return &s->fields[i];
    for (size_t i = 0; i < s->n_fields; i++)
        if (clasp_field_map_kind(m, s->fields[i].ext) == k) return &s->fields[i];
    return NULL;
}
