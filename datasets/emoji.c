/* emoji.c: the emoji builder (see emoji.h): npm pack into the cache, reading the package .tgz
 * files with libarchive, emojibase label tables, and the per-vendor sample loop. */
#include "datasets/emoji.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/array.h"
#include "core/json.h"
#include "datasets/internal.h"
#include "datasets/shard_writer.h"
#include "datasets/split.h"
#include "modalities/image.h"

#define MAX_MEMBER  ((size_t)64 << 20)
#define MAX_LOCALES 64

clasp_emoji_options clasp_emoji_default_options(void) {
    return (clasp_emoji_options){
        .vendors = "google,twitter", .val_percent = 10, .shards = {.maxcount = 1000}};
}

typedef struct vendor_info {
    const char *name, *licence, *attribution;
    bool allowed;
} vendor_info;

static const vendor_info VENDORS[] = {
    {"google", "Apache-2.0", "Noto Emoji, Google Inc.", 1},
    {"twitter", "CC-BY-4.0", "Twemoji, Copyright 2019 Twitter, Inc and other contributors", 1},
    {"apple", "proprietary", "", 0},
    {"facebook", "proprietary", "", 0},
};

static const vendor_info *find_vendor(const char *name) {
    for (size_t i = 0; i < sizeof VENDORS / sizeof *VENDORS; i++)
        if (!strcmp(VENDORS[i].name, name)) return &VENDORS[i];
    return NULL;
}

/* ---- fetching ---------------------------------------------------------------------------- */

/* The most telling line of npm's stderr, into out[cap] ("" when none): the first line naming
 * a fetch failure or a 404, else the first "npm error" line, else the last line. */
static void npm_reason(const char *path, char *out, size_t cap) {
    out[0] = 0;
    char *buf;
    size_t n;
    if (clasp_read_file(path, (size_t)1 << 20, &buf, &n) != CLASP_OK) return;
    const char *best = NULL, *first_err = NULL, *last = NULL;
    size_t best_n = 0, first_n = 0, last_n = 0;
    for (char *p = buf; p < buf + n;) {
        char *nl = memchr(p, '\n', (size_t)(buf + n - p));
        if (nl) *nl = 0;
        size_t len = strlen(p);
        if (len) {
            if (!best && (strstr(p, "FetchError") || strstr(p, "404"))) {
                best = p;
                best_n = len;
            }
            if (!first_err && !strncmp(p, "npm error", 9)) {
                first_err = p;
                first_n = len;
            }
            last = p;
            last_n = len;
        }
        p = nl ? nl + 1 : buf + n;
    }
    if (!best) {
        best = first_err ? first_err : last;
        best_n = first_err ? first_n : last_n;
    }
    if (best && !strncmp(best, "npm error ", 10)) {
        best += 10;
        best_n -= 10;
    }
    if (best) snprintf(out, cap, "%.*s", (int)best_n, best);
    free(buf);
}

clasp_status clasp_emoji_package(const clasp_emoji_options *o, const char *package,
                                 const char *version, char *path, size_t cap) {
    if (!o || !package || !version || !path)
        return clasp_set_error(CLASP_ERR_ARG, "emoji: NULL argument");
    int n;
    if (o->src_dir) {
        n = snprintf(path, cap, "%s/%s-%s.tgz", o->src_dir, package, version);
        if (n < 0 || (size_t)n >= cap) return clasp_set_error(CLASP_ERR_ARG, "path too long");
        if (!clasp_is_file(path))
            return clasp_set_error(CLASP_ERR_NOT_FOUND,
                                   "%s not found (get it with `npm pack %s@%s`)", path, package,
                                   version);
        return CLASP_OK;
    }
    char cache[3000], dir[3100], tmp[3200], got[3600], errp[3300];
    if (o->cache_dir)
        snprintf(cache, sizeof cache, "%s", o->cache_dir);
    else
        CLASP_TRY(clasp_datasets_cache_dir(cache, sizeof cache));
    snprintf(dir, sizeof dir, "%s/npm", cache);
    CLASP_TRY(clasp_mkdir_p(cache));
    CLASP_TRY(clasp_mkdir_p(dir));
    n = snprintf(path, cap, "%s/%s-%s.tgz", dir, package, version);
    if (n < 0 || (size_t)n >= cap) return clasp_set_error(CLASP_ERR_ARG, "path too long");
    if (clasp_is_file(path)) return CLASP_OK;

    /* npm pack writes into a private temporary folder; the file is renamed into the cache only
     * when npm succeeded, so an interrupted download never looks like a cached package. */
    snprintf(tmp, sizeof tmp, "%s/tmp-%ld", dir, (long)getpid());
    CLASP_TRY(clasp_mkdir_p(tmp));
    snprintf(got, sizeof got, "%s/%s-%s.tgz", tmp, package, version);
    snprintf(errp, sizeof errp, "%s/npm-stderr.txt", tmp);
    char spec[256];
    snprintf(spec, sizeof spec, "%s@%s", package, version);
    const char *npm = o->npm ? o->npm : "npm";
    char *argv[] = {(char *)npm,  "pack",      spec, "--pack-destination", tmp, "--fetch-retries=1",
                    "--no-audit", "--no-fund", NULL};
    int code;
    clasp_status st = clasp__run(argv, NULL, errp, &code);
    if (st == CLASP_ERR_NOT_FOUND) {
        st = clasp_set_error(CLASP_ERR_NOT_FOUND,
                             "cannot fetch %s: '%s' not found (`apt-get install npm`), or put "
                             "%s-%s.tgz into %s or a folder given as SOURCE",
                             spec, npm, package, version, dir);
    } else if (st == CLASP_OK && (code != 0 || !clasp_is_file(got))) {
        char line[512];
        npm_reason(errp, line, sizeof line);
        st = clasp_set_error(CLASP_ERR_IO,
                             "cannot fetch %s: `%s pack` failed (exit %d: %s); is the npm "
                             "registry reachable? Or put %s-%s.tgz into %s",
                             spec, npm, code, line[0] ? line : "no message", package, version, dir);
    } else if (st == CLASP_OK && rename(got, path) != 0) {
        st = clasp_set_error(CLASP_ERR_IO, "%s: cannot rename into the cache", got);
    }
    unlink(got);
    unlink(errp);
    rmdir(tmp);
    return st;
}

/* ---- emojibase labels ---------------------------------------------------------------------- */

typedef struct label_row {
    char *id;                     /* clasp__emoji_split_id of the hexcode */
    const char *loc[MAX_LOCALES]; /* label per locale, pointing into `strings` */
    char *strings;                /* malloc'd copies, freed with the row */
    cJSON *tags;                  /* English tags (owned) */
} label_row;

typedef struct label_table {
    label_row *v;
    size_t n, cap;
    char *locales[MAX_LOCALES]; /* sorted; locales[0..n_loc) */
    size_t n_loc, en;           /* index of "en" */
    char *jsons[MAX_LOCALES];   /* raw data.json text per locale while reading */
    size_t json_n[MAX_LOCALES];
    const char *want; /* comma-separated wanted locales or NULL */
    char version[64];
} label_table;

static void table_free(label_table *t) {
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].id);
        for (size_t k = 0; k < t->n_loc; k++) free((char *)t->v[i].loc[k]);
        cJSON_Delete(t->v[i].tags);
    }
    free(t->v);
    for (size_t k = 0; k < t->n_loc; k++) {
        free(t->locales[k]);
        free(t->jsons[k]);
    }
    memset(t, 0, sizeof *t);
}

static int cmp_row(const void *a, const void *b) {
    return strcmp(((const label_row *)a)->id, ((const label_row *)b)->id);
}

static label_row *find_row(const label_table *t, const char *id) {
    label_row k = {0};
    k.id = (char *)id;
    return bsearch(&k, t->v, t->n, sizeof *t->v, cmp_row);
}

/* True when `loc` is in the comma-separated list `list`. */
static bool in_list(const char *list, const char *loc) {
    size_t ln = strlen(loc);
    for (const char *p = list; *p;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n == ln && !strncmp(p, loc, n)) return true;
        p = c ? c + 1 : p + n;
    }
    return false;
}

/* "package/LOCALE/data.json" -> LOCALE in out (false if not that shape). */
static bool locale_of(const char *path, char *out, size_t cap) {
    if (strncmp(path, "package/", 8)) return false;
    const char *l = path + 8, *s = strchr(l, '/');
    if (!s || strcmp(s, "/data.json") || s == l || (size_t)(s - l) >= cap) return false;
    memcpy(out, l, (size_t)(s - l));
    out[s - l] = 0;
    return true;
}

static int want_labels(const char *path, void *user) {
    label_table *t = user;
    char loc[64];
    if (!strcmp(path, "package/package.json")) return 1;
    if (!locale_of(path, loc, sizeof loc)) return 0;
    return !t->want || !strcmp(loc, "en") || in_list(t->want, loc);
}

static void package_version(const uint8_t *json, char *out, size_t cap) {
    cJSON *j = cJSON_Parse((const char *)json);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "version");
    snprintf(out, cap, "%s", cJSON_IsString(v) ? v->valuestring : "unknown");
    cJSON_Delete(j);
}

static clasp_status got_labels(const char *path, const uint8_t *data, size_t n, void *user) {
    label_table *t = user;
    if (!strcmp(path, "package/package.json")) {
        package_version(data, t->version, sizeof t->version);
        return CLASP_OK;
    }
    char loc[64];
    locale_of(path, loc, sizeof loc);
    if (t->n_loc == MAX_LOCALES) return clasp_set_error(CLASP_ERR_FORMAT, "too many locales");
    char *l = strdup(loc), *j = malloc(n + 1);
    if (!l || !j) {
        free(l);
        free(j);
        return clasp_set_error(CLASP_ERR_NOMEM, "emojibase: out of memory");
    }
    memcpy(j, data, n + 1);
    t->locales[t->n_loc] = l;
    t->jsons[t->n_loc] = j;
    t->json_n[t->n_loc] = n;
    t->n_loc++;
    return CLASP_OK;
}

static clasp_status add_row(label_table *t, const cJSON *e) {
    const cJSON *hex = cJSON_GetObjectItemCaseSensitive(e, "hexcode");
    if (!cJSON_IsString(hex)) return CLASP_OK;
    label_row *p = clasp_grow(t->v, t->n, &t->cap, sizeof *p, 1024);
    if (!p) return clasp_set_error(CLASP_ERR_NOMEM, "emojibase: out of memory");
    t->v = p;
    label_row *r = &t->v[t->n];
    memset(r, 0, sizeof *r);
    char id[256];
    clasp__emoji_split_id(hex->valuestring, id, sizeof id);
    r->id = strdup(id);
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(e, "tags");
    r->tags = cJSON_IsArray(tags) ? cJSON_Duplicate(tags, 1) : cJSON_CreateArray();
    if (!r->id || !r->tags) {
        free(r->id);
        cJSON_Delete(r->tags);
        return clasp_set_error(CLASP_ERR_NOMEM, "emojibase: out of memory");
    }
    t->n++;
    return CLASP_OK;
}

static clasp_status set_label(label_table *t, size_t k, const cJSON *e) {
    const cJSON *hex = cJSON_GetObjectItemCaseSensitive(e, "hexcode");
    const cJSON *lab = cJSON_GetObjectItemCaseSensitive(e, "label");
    if (!cJSON_IsString(hex) || !cJSON_IsString(lab) || !lab->valuestring[0]) return CLASP_OK;
    char id[256];
    clasp__emoji_split_id(hex->valuestring, id, sizeof id);
    label_row *r = find_row(t, id);
    if (!r || r->loc[k]) return CLASP_OK; /* the first spelling of an id wins */
    r->loc[k] = strdup(lab->valuestring);
    return r->loc[k] ? CLASP_OK : clasp_set_error(CLASP_ERR_NOMEM, "emojibase: out of memory");
}

/* Calls fn on every entry of a data.json array and on every entry of its "skins". */
static clasp_status each_entry(label_table *t, size_t k, const cJSON *arr,
                               clasp_status (*fn)(label_table *, size_t, const cJSON *)) {
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        CLASP_TRY(fn(t, k, e));
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(e, "skins")) CLASP_TRY(fn(t, k, s));
    }
    return CLASP_OK;
}

static clasp_status add_row_k(label_table *t, size_t k, const cJSON *e) {
    (void)k;
    return add_row(t, e);
}

/* Reads the emojibase-data .tgz into t (rows from en, labels from every wanted locale). */
static clasp_status load_labels(const char *tgz, const char *want, label_table *t) {
    memset(t, 0, sizeof *t);
    t->want = want;
    snprintf(t->version, sizeof t->version, "unknown");
    clasp_status st = clasp__tar_each(tgz, MAX_MEMBER, want_labels, got_labels, t);
    if (st != CLASP_OK) return st;
    /* Sort locales (and their texts) by name so JSON output does not depend on tar order. */
    for (size_t i = 1; i < t->n_loc; i++)
        for (size_t j = i; j > 0 && strcmp(t->locales[j - 1], t->locales[j]) > 0; j--) {
            char *a = t->locales[j];
            t->locales[j] = t->locales[j - 1];
            t->locales[j - 1] = a;
            char *b = t->jsons[j];
            t->jsons[j] = t->jsons[j - 1];
            t->jsons[j - 1] = b;
            size_t c = t->json_n[j];
            t->json_n[j] = t->json_n[j - 1];
            t->json_n[j - 1] = c;
        }
    t->en = SIZE_MAX;
    for (size_t k = 0; k < t->n_loc; k++)
        if (!strcmp(t->locales[k], "en")) t->en = k;
    if (t->en == SIZE_MAX)
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: no package/en/data.json", tgz);
    for (size_t pass = 0; pass < 2 && st == CLASP_OK; pass++) {
        for (size_t k = 0; k < t->n_loc && st == CLASP_OK; k++) {
            if (pass == 0 && k != t->en) continue;
            cJSON *arr = cJSON_ParseWithLength(t->jsons[k], t->json_n[k]);
            if (!cJSON_IsArray(arr)) {
                cJSON_Delete(arr);
                return clasp_set_error(CLASP_ERR_FORMAT,
                                       "%s: package/%s/data.json: not a JSON "
                                       "array",
                                       tgz, t->locales[k]);
            }
            if (pass == 0) {
                st = each_entry(t, k, arr, add_row_k);
                if (st == CLASP_OK) qsort(t->v, t->n, sizeof *t->v, cmp_row);
            } else {
                st = each_entry(t, k, arr, set_label);
            }
            cJSON_Delete(arr);
        }
    }
    for (size_t k = 0; k < t->n_loc; k++) {
        free(t->jsons[k]);
        t->jsons[k] = NULL;
    }
    return st;
}

clasp_status clasp__emojibase_en_labels(const char *tgz, clasp__transcripts *out) {
    label_table t;
    clasp_status st = load_labels(tgz, "en", &t);
    /* Base emoji only: the rows of skin variations carry a skin-tone component. */
    for (size_t i = 0; st == CLASP_OK && i < t.n; i++) {
        const label_row *r = &t.v[i];
        if (!r->loc[t.en] || strstr(r->id, "-1F3F")) continue;
        char key[300];
        snprintf(key, sizeof key, "emoji/%s", r->id);
        st = clasp__transcripts_push(out, key, r->loc[t.en], r->id);
    }
    table_free(&t);
    return st;
}

/* ---- vendor packages ----------------------------------------------------------------------- */

typedef struct png_file {
    char *name; /* file name below img/VENDOR/64/ */
    uint8_t *data;
    size_t n;
} png_file;

typedef struct vendor_pkg {
    const char *vendor;
    char prefix[128]; /* "package/img/VENDOR/64/" */
    char *emoji_json;
    char version[64];
    png_file *png;
    size_t n_png, cap_png;
} vendor_pkg;

static void png_free(png_file *f) {
    free(f->name);
    free(f->data);
}

static void vendor_free(vendor_pkg *v) {
    for (size_t i = 0; i < v->n_png; i++) png_free(&v->png[i]);
    free(v->png);
    free(v->emoji_json);
    v->png = NULL;
    v->emoji_json = NULL;
    v->n_png = v->cap_png = 0;
}

static int want_vendor(const char *path, void *user) {
    vendor_pkg *v = user;
    if (!strcmp(path, "package/emoji.json") || !strcmp(path, "package/package.json")) return 1;
    size_t pn = strlen(v->prefix), n = strlen(path);
    return !strncmp(path, v->prefix, pn) && n > pn + 4 && !strcmp(path + n - 4, ".png") &&
           !strchr(path + pn, '/');
}

static clasp_status got_vendor(const char *path, const uint8_t *data, size_t n, void *user) {
    vendor_pkg *v = user;
    if (!strcmp(path, "package/package.json")) {
        package_version(data, v->version, sizeof v->version);
        return CLASP_OK;
    }
    if (!strcmp(path, "package/emoji.json")) {
        free(v->emoji_json);
        v->emoji_json = strdup((const char *)data);
        return v->emoji_json ? CLASP_OK : clasp_set_error(CLASP_ERR_NOMEM, "emoji: out of memory");
    }
    png_file *p = clasp_grow(v->png, v->n_png, &v->cap_png, sizeof *p, 1024);
    if (!p) return clasp_set_error(CLASP_ERR_NOMEM, "emoji: out of memory");
    v->png = p;
    png_file *f = &v->png[v->n_png];
    f->name = strdup(path + strlen(v->prefix));
    f->data = malloc(n ? n : 1);
    f->n = n;
    if (!f->name || !f->data) {
        png_free(f);
        return clasp_set_error(CLASP_ERR_NOMEM, "emoji: out of memory");
    }
    memcpy(f->data, data, n);
    v->n_png++;
    return CLASP_OK;
}

static int cmp_png(const void *a, const void *b) {
    return strcmp(((const png_file *)a)->name, ((const png_file *)b)->name);
}

/* One image of one emoji (a base emoji or one of its skin variations). */
typedef struct item {
    const char *unified, *image;
    const cJSON *base; /* the emoji.json entry of the base emoji: names and category */
    char base_id[256]; /* split id of the base emoji */
    bool has_img;
} item;

static int cmp_item(const void *a, const void *b) {
    return strcmp(((const item *)a)->unified, ((const item *)b)->unified);
}

static const char *str_of(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static clasp_status push_item(item **v, size_t *n, size_t *cap, const cJSON *obj, const cJSON *base,
                              const char *vendor) {
    const char *u = str_of(obj, "unified"), *img = str_of(obj, "image");
    if (!u[0] || !img[0]) return CLASP_OK;
    item *p = clasp_grow(*v, *n, cap, sizeof *p, 1024);
    if (!p) return clasp_set_error(CLASP_ERR_NOMEM, "emoji: out of memory");
    *v = p;
    item *it = &(*v)[(*n)++];
    memset(it, 0, sizeof *it);
    it->unified = u;
    it->image = img;
    it->base = base;
    clasp__emoji_split_id(str_of(base, "unified"), it->base_id, sizeof it->base_id);
    char flag[64];
    snprintf(flag, sizeof flag, "has_img_%s", vendor);
    it->has_img = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, flag));
    return CLASP_OK;
}

static char *sample_json(const item *it, const char *vendor, const vendor_info *vi,
                         const label_table *t, const label_row *r) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "unified", it->unified);
    cJSON_AddStringToObject(j, "vendor", vendor);
    char name[512];
    snprintf(name, sizeof name, "%s", str_of(it->base, "name"));
    for (char *c = name; *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    cJSON_AddStringToObject(j, "name", name);
    cJSON_AddStringToObject(j, "short_name", str_of(it->base, "short_name"));
    cJSON_AddStringToObject(j, "category", str_of(it->base, "category"));
    cJSON_AddStringToObject(j, "subcategory", str_of(it->base, "subcategory"));
    cJSON *labels = cJSON_AddObjectToObject(j, "labels");
    for (size_t k = 0; labels && k < t->n_loc; k++)
        if (r->loc[k]) cJSON_AddStringToObject(labels, t->locales[k], r->loc[k]);
    cJSON_AddItemToObject(j, "tags", cJSON_Duplicate(r->tags, 1));
    cJSON_AddStringToObject(j, "image_licence", vi->licence);
    cJSON_AddStringToObject(j, "split_id", it->base_id);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static clasp_status build_vendor(const clasp_emoji_options *o, const vendor_info *vi,
                                 const label_table *t, clasp_split_writers *sw, clasp_manifest *m) {
    char pkg[128], tgz[4096];
    snprintf(pkg, sizeof pkg, "emoji-datasource-%s", vi->name);
    CLASP_TRY(clasp_emoji_package(o, pkg, CLASP_EMOJI_DATASOURCE_VERSION, tgz, sizeof tgz));
    vendor_pkg v = {0};
    v.vendor = vi->name;
    snprintf(v.version, sizeof v.version, "unknown");
    snprintf(v.prefix, sizeof v.prefix, "package/img/%s/64/", vi->name);
    cJSON *ej = NULL;
    item *items = NULL;
    size_t n_items = 0, cap_items = 0, written = 0;
    clasp_status st = clasp__tar_each(tgz, MAX_MEMBER, want_vendor, got_vendor, &v);
    if (st == CLASP_OK && !v.emoji_json)
        st = clasp_set_error(CLASP_ERR_FORMAT, "%s: no package/emoji.json", tgz);
    if (st == CLASP_OK) {
        ej = cJSON_Parse(v.emoji_json);
        if (!cJSON_IsArray(ej))
            st = clasp_set_error(CLASP_ERR_FORMAT, "%s: package/emoji.json: not a JSON array", tgz);
    }
    if (st != CLASP_OK) goto done;
    qsort(v.png, v.n_png, sizeof *v.png, cmp_png);
    const cJSON *e;
    cJSON_ArrayForEach(e, ej) {
        st = push_item(&items, &n_items, &cap_items, e, e, vi->name);
        const cJSON *s;
        if (o->skins)
            cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(e, "skin_variations")) {
                if (st == CLASP_OK) st = push_item(&items, &n_items, &cap_items, s, e, vi->name);
            }
        if (st != CLASP_OK) goto done;
    }
    qsort(items, n_items, sizeof *items, cmp_item);
    for (size_t i = 0; st == CLASP_OK && i < n_items; i++) {
        const item *it = &items[i];
        char key[300], id[256];
        snprintf(key, sizeof key, "%s/%s", vi->name, it->unified);
        if (!it->has_img) {
            st = clasp_manifest_skip(m, "no_vendor_image", key, NULL);
            continue;
        }
        png_file pk = {(char *)it->image, NULL, 0};
        const png_file *f = bsearch(&pk, v.png, v.n_png, sizeof *v.png, cmp_png);
        if (!f) {
            st = clasp_manifest_skip(m, "missing_image", key, it->image);
            continue;
        }
        int w, h, c;
        if (f->n < 8 || memcmp(f->data, "\x89PNG\r\n\x1a\n", 8) ||
            !clasp__stb_info(f->data, f->n, &w, &h, &c)) {
            st = clasp_manifest_skip(m, "bad_image", key, it->image);
            continue;
        }
        clasp__emoji_split_id(it->unified, id, sizeof id);
        const label_row *r = find_row(t, id);
        if (!r || !r->loc[t->en]) {
            st = clasp_manifest_skip(m, "no_label", key, NULL);
            continue;
        }
        if (o->shards.limit && written >= o->shards.limit) break;
        char *js = sample_json(it, vi->name, vi, t, r);
        if (!js) {
            st = clasp_set_error(CLASP_ERR_NOMEM, "emoji: out of memory");
            break;
        }
        const char *txt = r->loc[t->en];
        clasp_shard_field fl[3] = {
            {"json", js, strlen(js)}, {"png", f->data, f->n}, {"txt", txt, strlen(txt)}};
        st = clasp_split_writers_add(sw, it->base_id, key, key, fl, 3, &written);
        free(js);
    }
    if (st == CLASP_OK) {
        char lic[512];
        snprintf(lic, sizeof lic, "images %s (%s); data MIT (emoji-datasource)", vi->licence,
                 vi->attribution);
        st = clasp_manifest_add_source(m, pkg, v.version, lic);
    }
    if (st == CLASP_OK && o->shards.progress)
        fprintf(stderr, "emoji %s: %zu samples (%s %s)\n", vi->name, written, pkg, v.version);
done:
    free(items);
    cJSON_Delete(ej);
    vendor_free(&v);
    return st;
}

clasp_status clasp_emoji_build(const clasp_emoji_options *o, clasp_manifest *m) {
    if (!o || !o->shards.out_dir || !m)
        return clasp_set_error(CLASP_ERR_ARG, "emoji: NULL argument");
    CLASP_TRY(clasp_split_check_percent("emoji", o->val_percent));
    const char *vendors = o->vendors ? o->vendors : "google,twitter";
    /* Check every vendor before any work or download. */
    const vendor_info *vlist[8];
    size_t n_v = 0;
    for (const char *p = vendors; *p;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        char name[32];
        if (n == 0 || n >= sizeof name || n_v == 8)
            return clasp_set_error(CLASP_ERR_ARG, "emoji: bad vendor list '%s'", vendors);
        memcpy(name, p, n);
        name[n] = 0;
        const vendor_info *vi = find_vendor(name);
        if (!vi)
            return clasp_set_error(CLASP_ERR_ARG,
                                   "emoji: unknown vendor '%s' (available: google, twitter)", name);
        if (!vi->allowed)
            return clasp_set_error(CLASP_ERR_ARG,
                                   "emoji: vendor '%s' refused: its emoji images are not under "
                                   "a licence that allows building and sharing a data set from "
                                   "them; use google (Apache-2.0) or twitter (CC-BY-4.0)",
                                   name);
        for (size_t i = 0; i < n_v; i++)
            if (vlist[i] == vi)
                return clasp_set_error(CLASP_ERR_ARG, "emoji: vendor '%s' given twice", name);
        vlist[n_v++] = vi;
        p = c ? c + 1 : p + n;
    }
    if (n_v == 0) return clasp_set_error(CLASP_ERR_ARG, "emoji: no vendor");
    if (o->locales)
        for (const char *c = o->locales; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || *c == '-' || *c == ','))
                return clasp_set_error(CLASP_ERR_ARG, "emoji: bad locale list '%s'", o->locales);

    char btgz[4096];
    CLASP_TRY(clasp_emoji_package(o, "emojibase-data", CLASP_EMOJIBASE_VERSION, btgz, sizeof btgz));
    CLASP_TRY(clasp_manifest_init(m, "emoji"));
    label_table t;
    clasp_status st = load_labels(btgz, o->locales, &t);
    cJSON *opt = clasp_manifest_options(m);
    cJSON_AddStringToObject(opt, "vendors", vendors);
    cJSON *locs = cJSON_AddArrayToObject(opt, "locales");
    for (size_t k = 0; st == CLASP_OK && k < t.n_loc; k++)
        cJSON_AddItemToArray(locs, cJSON_CreateString(t.locales[k]));
    cJSON_AddBoolToObject(opt, "skins", o->skins);
    clasp_split_options(opt, o->val_percent,
                        "xxh64(split_id of the base emoji, 0) % 100 < val_percent -> "
                        "validation (split_id: unified code points without FE0F)",
                        &o->shards);
    static const char *const exts[] = {"json", "png", "txt"};
    if (st == CLASP_OK) st = clasp_manifest_set_fields(m, exts, 3);
    clasp_split_writers sw = {0};
    if (st == CLASP_OK) st = clasp_split_writers_open(&sw, m, &o->shards, o->val_percent);
    for (size_t i = 0; st == CLASP_OK && i < n_v; i++) st = build_vendor(o, vlist[i], &t, &sw, m);
    if (st == CLASP_OK)
        st = clasp_manifest_add_source(m, "emojibase-data", t.version,
                                       "MIT (CLDR annotations: "
                                       "Unicode License v3)");
    if (st == CLASP_OK) st = clasp_split_writers_finish(&sw, o->shards.out_dir);
    clasp_split_writers_free(&sw);
    table_free(&t);
    if (st != CLASP_OK) clasp_manifest_free(m);
    return st;
}
