/* manifest.c: builds and saves manifest.json for a shard set (see manifest.h). */
#include "datasets/manifest.h"

#include <stdio.h>
#include <string.h>

#include "core/hash.h"
#include "core/json.h"

#define NOMEM() clasp_set_error(CLASP_ERR_NOMEM, "manifest: out of memory")

clasp_status clasp_manifest_init(clasp_manifest *m, const char *kind) {
    if (!m || !kind) return clasp_set_error(CLASP_ERR_ARG, "manifest: NULL argument");
    memset(m, 0, sizeof *m);
    cJSON *r = cJSON_CreateObject();
    if (!r) return NOMEM();
    m->root = r;
    cJSON_AddStringToObject(r, "format", "clasp-shards");
    cJSON_AddNumberToObject(r, "format_version", CLASP_MANIFEST_FORMAT_VERSION);
    cJSON_AddStringToObject(r, "kind", kind);
    cJSON *tar = cJSON_AddObjectToObject(r, "tar");
    if (tar) {
        cJSON_AddStringToObject(tar, "format", "pax_restricted");
        cJSON_AddNumberToObject(tar, "mtime", CLASP_SHARD_MTIME);
        cJSON_AddNumberToObject(tar, "uid", 0);
        cJSON_AddNumberToObject(tar, "gid", 0);
        cJSON_AddStringToObject(tar, "mode", "0644");
        cJSON_AddNumberToObject(tar, "block_bytes", 512);
        cJSON_AddBoolToObject(tar, "record_padding", 0);
        cJSON_AddStringToObject(tar, "checksum", "xxh64");
    }
    m->options = cJSON_AddObjectToObject(r, "options");
    m->fields = cJSON_AddArrayToObject(r, "fields");
    m->splits = cJSON_AddObjectToObject(r, "splits");
    cJSON_AddObjectToObject(r, "total");
    m->sources = cJSON_AddArrayToObject(r, "sources");
    cJSON *sk = cJSON_AddObjectToObject(r, "skipped");
    if (sk) {
        cJSON_AddNumberToObject(sk, "total", 0);
        m->by_reason = cJSON_AddObjectToObject(sk, "by_reason");
        m->items = cJSON_AddArrayToObject(sk, "items");
    }
    if (!tar || !m->options || !m->fields || !m->splits || !m->sources || !sk || !m->by_reason ||
        !m->items) {
        clasp_manifest_free(m);
        return NOMEM();
    }
    return CLASP_OK;
}

void clasp_manifest_free(clasp_manifest *m) {
    if (!m) return;
    cJSON_Delete(m->root);
    memset(m, 0, sizeof *m);
}

clasp_status clasp_manifest_add_split(clasp_manifest *m, const char *split,
                                      const clasp_shard_writer *w) {
    if (!m || !m->root || !split || !w) return clasp_set_error(CLASP_ERR_ARG, "manifest: NULL");
    cJSON_DeleteItemFromObjectCaseSensitive(m->splits, split);
    cJSON *s = cJSON_AddObjectToObject(m->splits, split);
    if (!s) return NOMEM();
    size_t n;
    const clasp_shard_info *sh = clasp_shard_writer_shards(w, &n);
    cJSON_AddNumberToObject(s, "samples", (double)clasp_shard_writer_n_samples(w));
    cJSON *arr = cJSON_AddArrayToObject(s, "shards");
    if (!arr) return NOMEM();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o) return NOMEM();
        char hex[17];
        clasp_hash_hex(sh[i].xxh64, hex);
        cJSON_AddStringToObject(o, "name", sh[i].name);
        cJSON_AddNumberToObject(o, "samples", (double)sh[i].n_samples);
        cJSON_AddNumberToObject(o, "bytes", (double)sh[i].nbytes);
        cJSON_AddStringToObject(o, "xxh64", hex);
        cJSON_AddItemToArray(arr, o);
    }
    return CLASP_OK;
}

static int valid_package_name(const char *p) {
    if (!p || !*p || strlen(p) > 200) return 0;
    for (const char *c = p; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '+' || *c == '-' ||
              *c == '.'))
            return 0;
    return 1;
}

clasp_status clasp_dpkg_version(const char *package, char *out, size_t cap) {
    if (!out || cap == 0) return clasp_set_error(CLASP_ERR_ARG, "dpkg version: no buffer");
    out[0] = 0;
    if (!valid_package_name(package))
        return clasp_set_error(CLASP_ERR_ARG, "dpkg version: bad package name '%s'",
                               package ? package : "(null)");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "dpkg-query -W -f '${db:Status-Abbrev}|${Version}' %s 2>/dev/null",
             package);
    FILE *p = popen(cmd, "r");
    if (!p) return clasp_set_error(CLASP_ERR_IO, "cannot run dpkg-query for %s", package);
    char buf[512] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    pclose(p);
    buf[n] = 0;
    char *bar = strchr(buf, '|');
    if (strncmp(buf, "ii", 2) != 0 || !bar || !bar[1])
        return clasp_set_error(CLASP_ERR_NOT_FOUND, "Debian package %s is not installed", package);
    snprintf(out, cap, "%s", bar + 1);
    return CLASP_OK;
}

clasp_status clasp_manifest_add_source(clasp_manifest *m, const char *name, const char *version,
                                       const char *licence) {
    if (!m || !m->root || !name) return clasp_set_error(CLASP_ERR_ARG, "manifest: NULL");
    cJSON *o = cJSON_CreateObject();
    if (!o) return NOMEM();
    cJSON_AddStringToObject(o, "package", name);
    cJSON_AddStringToObject(o, "version", version ? version : "unknown");
    cJSON_AddStringToObject(o, "licence", licence ? licence : "unknown");
    cJSON_AddItemToArray(m->sources, o);
    return CLASP_OK;
}

clasp_status clasp_manifest_add_package(clasp_manifest *m, const char *package,
                                        const char *licence) {
    char ver[256];
    if (clasp_dpkg_version(package, ver, sizeof ver) != CLASP_OK)
        snprintf(ver, sizeof ver, "unknown");
    return clasp_manifest_add_source(m, package, ver, licence);
}

clasp_status clasp_manifest_skip(clasp_manifest *m, const char *reason, const char *item,
                                 const char *detail) {
    if (!m || !m->root || !reason) return clasp_set_error(CLASP_ERR_ARG, "manifest: NULL");
    cJSON *c = cJSON_GetObjectItemCaseSensitive(m->by_reason, reason);
    if (c)
        cJSON_SetNumberValue(c, c->valuedouble + 1);
    else if (!cJSON_AddNumberToObject(m->by_reason, reason, 1))
        return NOMEM();
    m->n_skipped++;
    cJSON *sk = cJSON_GetObjectItemCaseSensitive(m->root, "skipped");
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(sk, "total"), (double)m->n_skipped);
    if (cJSON_GetArraySize(m->items) < CLASP_MANIFEST_MAX_ITEMS) {
        cJSON *o = cJSON_CreateObject();
        if (!o) return NOMEM();
        cJSON_AddStringToObject(o, "item", item ? item : "");
        cJSON_AddStringToObject(o, "reason", reason);
        if (detail) cJSON_AddStringToObject(o, "detail", detail);
        cJSON_AddItemToArray(m->items, o);
    }
    return CLASP_OK;
}

clasp_status clasp_manifest_set_fields(clasp_manifest *m, const char *const *exts, size_t n) {
    if (!m || !m->root || (!exts && n)) return clasp_set_error(CLASP_ERR_ARG, "manifest: NULL");
    while (cJSON_GetArraySize(m->fields) > 0) cJSON_DeleteItemFromArray(m->fields, 0);
    for (size_t i = 0; i < n; i++) {
        cJSON *s = cJSON_CreateString(exts[i]);
        if (!s) return NOMEM();
        cJSON_AddItemToArray(m->fields, s);
    }
    return CLASP_OK;
}

cJSON *clasp_manifest_options(clasp_manifest *m) {
    return m ? m->options : NULL;
}

/* DIR/manifest.json into path[cap]. */
static clasp_status manifest_path(const char *dir, char *path, size_t cap) {
    if ((size_t)snprintf(path, cap, "%s/manifest.json", dir) >= cap)
        return clasp_set_error(CLASP_ERR_ARG, "manifest: path too long: %s", dir);
    return CLASP_OK;
}

static void totals(const clasp_manifest *m, double *samples, double *shards, double *bytes) {
    *samples = *shards = *bytes = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, m->splits) {
        *samples += cJSON_GetObjectItemCaseSensitive(s, "samples")->valuedouble;
        const cJSON *sh;
        cJSON_ArrayForEach(sh, cJSON_GetObjectItemCaseSensitive(s, "shards")) {
            *shards += 1;
            *bytes += cJSON_GetObjectItemCaseSensitive(sh, "bytes")->valuedouble;
        }
    }
}

clasp_status clasp_manifest_save(clasp_manifest *m, const char *dir) {
    if (!m || !m->root || !dir) return clasp_set_error(CLASP_ERR_ARG, "manifest: NULL");
    double ns, nsh, nb;
    totals(m, &ns, &nsh, &nb);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(m->root, "total");
    while (cJSON_GetArraySize(t) > 0) cJSON_DeleteItemFromArray(t, 0);
    cJSON_AddNumberToObject(t, "samples", ns);
    cJSON_AddNumberToObject(t, "shards", nsh);
    cJSON_AddNumberToObject(t, "bytes", nb);
    char path[4096];
    CLASP_TRY(manifest_path(dir, path, sizeof path));
    return clasp_json_save(path, m->root);
}

clasp_status clasp_manifest_load(const char *dir, cJSON **out, int *version) {
    *out = NULL;
    char path[4096];
    CLASP_TRY(manifest_path(dir, path, sizeof path));
    cJSON *root;
    CLASP_TRY(clasp_json_load(path, &root));
    int v;
    clasp_status st = clasp_json_format_version(root, path, CLASP_MANIFEST_FORMAT_VERSION, &v);
    if (st != CLASP_OK) {
        cJSON_Delete(root);
        return st;
    }
    if (version) *version = v;
    *out = root;
    return CLASP_OK;
}

cJSON *clasp_manifest_summary(const clasp_manifest *m, const char *dir) {
    if (!m || !m->root) return NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "kind",
                            cJSON_GetObjectItemCaseSensitive(m->root, "kind")->valuestring);
    if (dir) {
        cJSON_AddStringToObject(o, "dir", dir);
        char path[4096];
        snprintf(path, sizeof path, "%s/manifest.json", dir);
        cJSON_AddStringToObject(o, "manifest", path);
    }
    cJSON *sp = cJSON_AddObjectToObject(o, "splits");
    const cJSON *s;
    cJSON_ArrayForEach(s, m->splits) {
        cJSON *x = cJSON_AddObjectToObject(sp, s->string);
        if (!x) continue;
        cJSON_AddNumberToObject(x, "samples",
                                cJSON_GetObjectItemCaseSensitive(s, "samples")->valuedouble);
        cJSON_AddNumberToObject(x, "shards",
                                cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(s, "shards")));
    }
    double ns, nsh, nb;
    totals(m, &ns, &nsh, &nb);
    cJSON *t = cJSON_AddObjectToObject(o, "total");
    cJSON_AddNumberToObject(t, "samples", ns);
    cJSON_AddNumberToObject(t, "shards", nsh);
    cJSON_AddNumberToObject(t, "bytes", nb);
    cJSON *sk = cJSON_AddObjectToObject(o, "skipped");
    cJSON_AddNumberToObject(sk, "total", (double)m->n_skipped);
    cJSON_AddItemToObject(sk, "by_reason", cJSON_Duplicate(m->by_reason, 1));
    cJSON_AddItemToObject(o, "sources", cJSON_Duplicate(m->sources, 1));
    return o;
}
