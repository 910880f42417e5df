/* files.c: the folder and TSV/CSV shard builders (see files.h). */
#include "datasets/files.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/array.h"
#include "core/json.h"
#include "datasets/internal.h"
#include "datasets/shard_writer.h"
#include "modalities/audio.h"
#include "modalities/image.h"
#include "modalities/text.h"

#define MAX_DEPTH 64

clasp_files_options clasp_files_default_options(void) {
    return (clasp_files_options){.prefix = "shard",
                                 .shards = {.maxcount = 1000},
                                 .url_col = "url",
                                 .caption_col = "caption"};
}

bool clasp_files_is_image_ext(const char *e) {
    static const char *const x[] = {"jpg", "jpeg", "png", "bmp", "gif", "tga", "ppm", "pgm"};
    for (size_t i = 0; i < sizeof x / sizeof *x; i++)
        if (!strcmp(e, x[i])) return true;
    return false;
}

bool clasp_files_is_audio_ext(const char *e) {
    static const char *const x[] = {"wav", "flac", "ogg", "opus", "mp3"};
    for (size_t i = 0; i < sizeof x / sizeof *x; i++)
        if (!strcmp(e, x[i])) return true;
    return false;
}

static bool is_kept_ext(const char *e) {
    return clasp_files_is_image_ext(e) || clasp_files_is_audio_ext(e) || !strcmp(e, "txt") ||
           !strcmp(e, "json") || !strcmp(e, "cls");
}

/* Checks one field's bytes; returns NULL if usable, else a skip reason (detail filled). */
static const char *check_field(const char *ext, const void *data, size_t n, char *detail,
                               size_t cap) {
    detail[0] = 0;
    if (n == 0) return strcmp(ext, "txt") ? "empty_file" : "empty_caption";
    if (clasp_files_is_image_ext(ext)) {
        clasp_image img;
        if (clasp_image_decode(data, n, 3, CLASP_IMAGE_DEFAULT_MAX_PIXELS, &img) != CLASP_OK) {
            snprintf(detail, cap, "%s", clasp_last_error());
            return "bad_image";
        }
        clasp_image_free(&img);
    } else if (clasp_files_is_audio_ext(ext)) {
        clasp_audio_info info;
        clasp_audio_skip why;
        if (clasp_audio_probe(data, n, &info, &why) != CLASP_OK) {
            if (why == CLASP_AUDIO_EMPTY) return "empty_audio";
            snprintf(detail, cap, "%s", clasp_last_error());
            return "bad_audio";
        }
        if (info.source_frames == 0) return "empty_audio";
    } else if (!strcmp(ext, "txt")) {
        size_t off;
        if (clasp_text_validate_utf8(data, n, &off) != CLASP_OK) {
            snprintf(detail, cap, "%s", clasp_last_error());
            return "bad_utf8";
        }
        const unsigned char *p = data;
        size_t i = 0;
        while (i < n && isspace(p[i])) i++;
        if (i == n) return "empty_caption";
    } else if (!strcmp(ext, "json")) {
        cJSON *j = cJSON_ParseWithLength(data, n);
        if (!j) return "bad_json";
        cJSON_Delete(j);
    }
    return NULL;
}

static const char *read_reason(clasp_status st) {
    return st == CLASP_ERR_OVERFLOW ? "too_large" : st == CLASP_ERR_NOMEM ? NULL : "unreadable";
}

/* ------------------------------------------------------------------ shared writer setup */

static clasp_status begin(const clasp_files_options *o, const char *kind, clasp_manifest *m,
                          clasp_shard_writer **w) {
    *w = NULL;
    if (!o || !o->source || !o->shards.out_dir || !m)
        return clasp_set_error(CLASP_ERR_ARG, "%s: need a source and an output directory", kind);
    CLASP_TRY(clasp_manifest_init(m, kind));
    clasp_status st = clasp_mkdir_p(o->shards.out_dir);
    cJSON *opt = clasp_manifest_options(m);
    cJSON_AddStringToObject(opt, "source", o->source);
    clasp_shards_options_to_json(opt, &o->shards);
    clasp_shard_writer_config wc =
        clasp_shards_writer_config(&o->shards, o->prefix ? o->prefix : "shard");
    if (st == CLASP_OK) st = clasp_shard_writer_open(&wc, w);
    if (st != CLASP_OK) clasp_manifest_free(m);
    return st;
}

static clasp_status finish(const clasp_files_options *o, clasp_manifest *m, clasp_shard_writer *w,
                           clasp_status st) {
    if (st == CLASP_OK) st = clasp_shard_writer_close(w);
    if (st == CLASP_OK) st = clasp_manifest_add_split(m, o->prefix ? o->prefix : "shard", w);
    if (st == CLASP_OK) st = clasp_manifest_add_source(m, o->source, "local", "see source");
    if (st == CLASP_OK) st = clasp_manifest_save(m, o->shards.out_dir);
    clasp_shard_writer_free(w);
    if (st != CLASP_OK) clasp_manifest_free(m);
    return st;
}

/* Adds a sample; a key the writer refuses is a skip ("bad_name"), other errors are fatal. */
static clasp_status add_or_skip(clasp_shard_writer *w, clasp_manifest *m, const char *key,
                                const clasp_shard_field *f, size_t nf, bool *added) {
    *added = false;
    clasp_status st = clasp_shard_writer_add(w, key, f, nf);
    if (st == CLASP_ERR_ARG) return clasp_manifest_skip(m, "bad_name", key, clasp_last_error());
    if (st == CLASP_OK) *added = true;
    return st;
}

/* ------------------------------------------------------------------ folder */

typedef struct file_ent {
    char *rel; /* path relative to the source folder; the allocation also holds ext */
    size_t key_len;
    char *ext; /* the extension lower-cased, after rel's NUL */
} file_ent;

typedef struct file_list {
    file_ent *v;
    size_t n, cap;
} file_list;

static void file_list_free(file_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i].rel);
    free(l->v);
}

static clasp_status walk(const char *root, const char *rel, int depth, file_list *l,
                         clasp_manifest *m) {
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
    if (depth > MAX_DEPTH) return clasp_manifest_skip(m, "too_deep", rel, NULL);
    DIR *d = opendir(path);
    if (!d) {
        if (depth == 0)
            return clasp_set_error(CLASP_ERR_IO, "%s: cannot open folder: %s", path,
                                   strerror(errno));
        return clasp_manifest_skip(m, "unreadable", rel, strerror(errno));
    }
    clasp_status st = CLASP_OK;
    struct dirent *de;
    while (st == CLASP_OK && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char sub[4096], full[8192];
        if ((size_t)snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name) >=
            sizeof sub) {
            st = clasp_manifest_skip(m, "bad_name", de->d_name, "path too long");
            continue;
        }
        snprintf(full, sizeof full, "%s/%s", root, sub);
        struct stat sb;
        if (stat(full, &sb) != 0) {
            st = clasp_manifest_skip(m, "unreadable", sub, strerror(errno));
        } else if (S_ISDIR(sb.st_mode)) {
            st = walk(root, sub, depth + 1, l, m);
        } else if (S_ISREG(sb.st_mode)) {
            const char *base = strrchr(sub, '/');
            base = base ? base + 1 : sub;
            const char *dot = strchr(base, '.');
            if (!dot || !dot[1]) {
                st = clasp_manifest_skip(m, "unknown_type", sub, "no extension");
                continue;
            }
            file_ent *p = clasp_grow(l->v, l->n, &l->cap, sizeof *p, 256);
            if (!p) {
                st = clasp_set_error(CLASP_ERR_NOMEM, "folder: out of memory");
                break;
            }
            l->v = p;
            file_ent *e = &l->v[l->n];
            size_t rn = strlen(sub) + 1, xn = strlen(dot + 1) + 1;
            e->rel = malloc(rn + xn);
            if (!e->rel) {
                st = clasp_set_error(CLASP_ERR_NOMEM, "folder: out of memory");
                break;
            }
            memcpy(e->rel, sub, rn);
            e->ext = memcpy(e->rel + rn, dot + 1, xn);
            for (char *c = e->ext; *c; c++) *c = (char)tolower((unsigned char)*c);
            e->key_len = (size_t)(dot - sub);
            l->n++;
        }
    }
    closedir(d);
    return st;
}

static int cmp_ent(const void *a, const void *b) {
    const file_ent *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->rel, y->rel, n);
    if (c) return c;
    if (x->key_len != y->key_len) return x->key_len < y->key_len ? -1 : 1;
    return strcmp(x->ext, y->ext);
}

clasp_status clasp_folder_build(const clasp_files_options *o, clasp_manifest *m) {
    clasp_shard_writer *w;
    CLASP_TRY(begin(o, "folder", m, &w));
    file_list l = {0};
    clasp_status st = walk(o->source, "", 0, &l, m);
    if (st == CLASP_OK) qsort(l.v, l.n, sizeof *l.v, cmp_ent);
    size_t written = 0;
    for (size_t i = 0; st == CLASP_OK && i < l.n;) {
        size_t j = i + 1;
        while (j < l.n && l.v[j].key_len == l.v[i].key_len &&
               !memcmp(l.v[j].rel, l.v[i].rel, l.v[i].key_len))
            j++;
        if (o->shards.limit && written >= o->shards.limit) break;
        char key[4096];
        snprintf(key, sizeof key, "%.*s", (int)l.v[i].key_len, l.v[i].rel);
        clasp_shard_field f[CLASP_SHARD_MAX_FIELDS];
        char *bufs[CLASP_SHARD_MAX_FIELDS];
        size_t nf = 0;
        bool has_txt = false, has_media = false, bad = false;
        for (size_t k = i; k < j && st == CLASP_OK; k++) {
            const file_ent *e = &l.v[k];
            if (!is_kept_ext(e->ext)) {
                st = clasp_manifest_skip(m, "unknown_type", e->rel, NULL);
                continue;
            }
            if (bad || nf == CLASP_SHARD_MAX_FIELDS) continue;
            char full[8192], detail[512];
            snprintf(full, sizeof full, "%s/%s", o->source, e->rel);
            char *data;
            size_t n;
            clasp_status rs = clasp_read_file(full, CLASP_FILES_MAX_BYTES, &data, &n);
            if (rs != CLASP_OK) {
                const char *why = read_reason(rs);
                if (!why) {
                    st = rs;
                    break;
                }
                st = clasp_manifest_skip(m, why, e->rel, clasp_last_error());
                bad = true;
                continue;
            }
            const char *why = check_field(e->ext, data, n, detail, sizeof detail);
            if (why) {
                free(data);
                st = clasp_manifest_skip(m, why, e->rel, detail[0] ? detail : NULL);
                bad = true;
                continue;
            }
            has_txt |= !strcmp(e->ext, "txt");
            has_media |= clasp_files_is_image_ext(e->ext) || clasp_files_is_audio_ext(e->ext);
            bufs[nf] = data;
            f[nf].ext = e->ext;
            f[nf].data = data;
            f[nf].nbytes = n;
            nf++;
        }
        if (st == CLASP_OK && !bad && nf > 0) { /* nf == 0: only unknown types, counted */
            if (!has_txt || !has_media) {
                st = clasp_manifest_skip(m, "unpaired", key,
                                         !has_txt ? "no caption (.txt)" : "no image or audio");
            } else {
                bool added;
                st = add_or_skip(w, m, key, f, nf, &added);
                written += added;
            }
        }
        for (size_t k = 0; k < nf; k++) free(bufs[k]);
        if (o->shards.progress && written && written % 10000 == 0)
            fprintf(stderr, "folder: %zu samples\n", written);
        i = j;
    }
    file_list_free(&l);
    return finish(o, m, w, st);
}

/* ------------------------------------------------------------------ tsv / csv */

typedef struct record {
    char **f;
    size_t n, cap;
} record;

static void record_clear(record *r) {
    for (size_t i = 0; i < r->n; i++) free(r->f[i]);
    r->n = 0;
}

static clasp_status record_push(record *r, const char *s, size_t n) {
    char **p = clasp_grow(r->f, r->n, &r->cap, sizeof *p, 16);
    if (!p) return clasp_set_error(CLASP_ERR_NOMEM, "tsv: out of memory");
    r->f = p;
    char *c = malloc(n + 1);
    if (!c) return clasp_set_error(CLASP_ERR_NOMEM, "tsv: out of memory");
    size_t k = 0;
    /* Drop the doubled quotes of a quoted CSV field ("" -> "). */
    for (size_t i = 0; i < n; i++) {
        c[k++] = s[i];
        if (s[i] == '"' && i + 1 < n && s[i + 1] == '"') i++;
    }
    c[k] = 0;
    r->f[r->n++] = c;
    return CLASP_OK;
}

/* Parses one record starting at *p; advances *p past its line end. TSV: fields split at tabs,
 * no quoting. CSV: RFC 4180 (quoted fields may hold commas, quotes as "" and newlines).
 * Returns CLASP_ERR_FORMAT for an unterminated quote. */
static clasp_status next_record(const char **p, const char *end, bool csv, record *r) {
    record_clear(r);
    const char *s = *p;
    char sep = csv ? ',' : '\t';
    for (;;) {
        if (csv && s < end && *s == '"') {
            const char *q = ++s;
            for (;;) {
                if (q >= end) return clasp_set_error(CLASP_ERR_FORMAT, "unterminated quote");
                if (*q == '"') {
                    if (q + 1 < end && q[1] == '"') {
                        q += 2;
                        continue;
                    }
                    break;
                }
                q++;
            }
            CLASP_TRY(record_push(r, s, (size_t)(q - s)));
            s = q + 1;
            while (s < end && *s != sep && *s != '\n') s++; /* junk after the quote: ignored */
        } else {
            const char *q = s;
            while (q < end && *q != sep && *q != '\n') q++;
            size_t n = (size_t)(q - s);
            if (n && s[n - 1] == '\r' && (q >= end || *q == '\n')) n--;
            CLASP_TRY(record_push(r, s, n));
            s = q;
        }
        if (s < end && *s == sep) {
            s++;
            continue;
        }
        if (s < end && *s == '\n') s++;
        break;
    }
    *p = s;
    return CLASP_OK;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcasecmp(s + a - b, suffix);
}

clasp_status clasp_tsv_build(const clasp_files_options *o, clasp_manifest *m) {
    clasp_shard_writer *w;
    CLASP_TRY(begin(o, "tsv", m, &w));
    const char *url_col = o->url_col ? o->url_col : "url";
    const char *cap_col = o->caption_col ? o->caption_col : "caption";
    cJSON_AddStringToObject(clasp_manifest_options(m), "url_col", url_col);
    cJSON_AddStringToObject(clasp_manifest_options(m), "caption_col", cap_col);
    bool csv = ends_with(o->source, ".csv");
    char *text = NULL;
    size_t n = 0;
    record r = {0};
    clasp_status st = clasp_read_file(o->source, (size_t)1 << 31, &text, &n);
    if (st != CLASP_OK) {
        st = clasp_wrap_error(st, "tsv");
        goto done;
    }
    const char *p = text, *end = text + n;
    if (n >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) p += 3;
    st = next_record(&p, end, csv, &r);
    if (st != CLASP_OK) {
        st = clasp_wrap_error(st, "%s: header", o->source);
        goto done;
    }
    long ucol = -1, ccol = -1;
    for (size_t i = 0; i < r.n; i++) {
        if (!strcmp(r.f[i], url_col)) ucol = (long)i;
        if (!strcmp(r.f[i], cap_col)) ccol = (long)i;
    }
    if (ucol < 0 || ccol < 0) {
        st = clasp_set_error(CLASP_ERR_CONFIG, "%s: no column '%s' in the header row", o->source,
                             ucol < 0 ? url_col : cap_col);
        goto done;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", o->source);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    size_t row = 0, written = 0;
    while (st == CLASP_OK && p < end && !(o->shards.limit && written >= o->shards.limit)) {
        const char *line = p;
        st = next_record(&p, end, csv, &r);
        if (st != CLASP_OK) {
            st = clasp_wrap_error(st, "%s: row %zu", o->source, row);
            break;
        }
        if (r.n == 1 && r.f[0][0] == 0 && (size_t)(p - line) <= 2) continue; /* blank line */
        char key[32], item[4200], detail[512];
        snprintf(key, sizeof key, "%09zu", row);
        row++;
        if ((long)r.n <= ucol || (long)r.n <= ccol) {
            snprintf(item, sizeof item, "row %s", key);
            st = clasp_manifest_skip(m, "bad_row", item, "too few columns");
            continue;
        }
        const char *url = r.f[ucol], *cap = r.f[ccol];
        snprintf(item, sizeof item, "row %s: %s", key, url);
        if (strstr(url, "://")) {
            st = clasp_manifest_skip(m, "not_local", item, NULL);
            continue;
        }
        const char *base = strrchr(url, '/');
        base = base ? base + 1 : url;
        const char *dot = strrchr(base, '.');
        char ext[16];
        size_t el = dot ? strlen(dot + 1) : 0;
        if (!dot || el == 0 || el >= sizeof ext) {
            st = clasp_manifest_skip(m, "unknown_type", item, "no extension");
            continue;
        }
        for (size_t i = 0; i <= el; i++) ext[i] = (char)tolower((unsigned char)dot[1 + i]);
        if (!clasp_files_is_image_ext(ext) && !clasp_files_is_audio_ext(ext)) {
            st = clasp_manifest_skip(m, "unknown_type", item, NULL);
            continue;
        }
        const char *why = check_field("txt", cap, strlen(cap), detail, sizeof detail);
        if (why) {
            st = clasp_manifest_skip(m, why, item, detail[0] ? detail : NULL);
            continue;
        }
        char full[8400];
        if (url[0] == '/')
            snprintf(full, sizeof full, "%s", url);
        else
            snprintf(full, sizeof full, "%s/%s", dir, url);
        if (!clasp_is_file(full)) {
            st = clasp_manifest_skip(m, "missing_file", item, NULL);
            continue;
        }
        char *data;
        size_t dn;
        clasp_status rs = clasp_read_file(full, CLASP_FILES_MAX_BYTES, &data, &dn);
        if (rs != CLASP_OK) {
            why = read_reason(rs);
            st = why ? clasp_manifest_skip(m, why, item, clasp_last_error()) : rs;
            continue;
        }
        why = check_field(ext, data, dn, detail, sizeof detail);
        if (why) {
            st = clasp_manifest_skip(m, why, item, detail[0] ? detail : NULL);
        } else {
            clasp_shard_field f[2] = {{ext, data, dn}, {"txt", cap, strlen(cap)}};
            bool added;
            st = add_or_skip(w, m, key, f, 2, &added);
            written += added;
        }
        free(data);
        if (o->shards.progress && written && written % 10000 == 0)
            fprintf(stderr, "tsv: %zu samples\n", written);
    }
done:
    record_clear(&r);
    free(r.f);
    free(text);
    return finish(o, m, w, st);
}
