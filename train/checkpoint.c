/* checkpoint.c: atomic checkpoint folders with checksums, `latest`, and retention. */
#include "train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/json.h"

#define CKPT_PREFIX "step-"

static clasp_status write_tensors_(const char *path, const clasp_named_tensor *t, int n,
                                   int64_t step) {
    clasp_st_writer *w = clasp_st_writer_new();
    if (!w) return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
    clasp_status s = CLASP_OK;
    for (int i = 0; i < n && s == CLASP_OK; i++)
        s = clasp_st_writer_add(w, t[i].name, CLASP_DTYPE_F32, t[i].ndim, t[i].shape, t[i].data);
    char sbuf[32];
    snprintf(sbuf, sizeof sbuf, "%lld", (long long)step);
    if (s == CLASP_OK) s = clasp_st_writer_meta(w, "step", sbuf);
    if (s == CLASP_OK) s = clasp_st_writer_meta(w, "format", "clasp");
    if (s == CLASP_OK) s = clasp_st_writer_write(w, path);
    clasp_st_writer_free(w);
    return s;
}

static int cmp_str_(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Removes the oldest step-* folders so that `keep` remain. */
static void prune_(const char *ckdir, int keep) {
    if (keep <= 0) return;
    DIR *d = opendir(ckdir);
    if (!d) return;
    char *names[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096) {
        size_t L = strlen(e->d_name);
        if (strncmp(e->d_name, CKPT_PREFIX, strlen(CKPT_PREFIX)) != 0) continue;
        if (L > 4 && !strcmp(e->d_name + L - 4, ".tmp")) continue;
        names[n] = strdup(e->d_name);
        if (names[n]) n++;
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str_);
    for (int i = 0; i < n; i++) {
        if (i < n - keep) {
            char p[4352];
            snprintf(p, sizeof p, "%s/%s", ckdir, names[i]);
            clasp_rm_dir(p);
        }
        free(names[i]);
    }
}

/* Writes the checkpoint's three files into the folder tmp. */
static clasp_status write_tmp_(const char *tmp, int64_t step, const clasp_named_tensor *model,
                               int n_model, const clasp_named_tensor *optim, int n_optim,
                               const cJSON *state) {
    char path[4400];
    uint64_t hm = 0, ho = 0;
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    CLASP_TRY(write_tensors_(path, model, n_model, step));
    CLASP_TRY(clasp_hash_file(path, &hm));
    snprintf(path, sizeof path, "%s/optim.safetensors", tmp);
    CLASP_TRY(write_tensors_(path, optim, n_optim, step));
    CLASP_TRY(clasp_hash_file(path, &ho));

    cJSON *st = state ? cJSON_Duplicate(state, 1) : cJSON_CreateObject();
    if (!st) return clasp_set_error(CLASP_ERR_NOMEM, "checkpoint: out of memory");
    cJSON_DeleteItemFromObjectCaseSensitive(st, "checksums");
    cJSON *cs = cJSON_AddObjectToObject(st, "checksums");
    char hex[17];
    clasp_hash_hex(hm, hex);
    cJSON_AddStringToObject(cs, "model.safetensors", hex);
    clasp_hash_hex(ho, hex);
    cJSON_AddStringToObject(cs, "optim.safetensors", hex);
    cJSON_DeleteItemFromObjectCaseSensitive(st, "step");
    cJSON_AddNumberToObject(st, "step", (double)step);
    if (!cJSON_GetObjectItemCaseSensitive(st, "format_version"))
        cJSON_AddNumberToObject(st, "format_version", CLASP_CKPT_FORMAT_VERSION);
    snprintf(path, sizeof path, "%s/state.json", tmp);
    clasp_status s = clasp_json_save(path, st);
    cJSON_Delete(st);
    CLASP_TRY(s);
    return clasp_fsync_dir(tmp);
}

clasp_status clasp_ckpt_save(const char *run_dir, int64_t step, const clasp_named_tensor *model,
                             int n_model, const clasp_named_tensor *optim, int n_optim,
                             const cJSON *state, int keep, char *out_dir, size_t out_cap) {
    char ckdir[4096], fin[4200], tmp[4300], path[4400];
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", run_dir);
    CLASP_TRY(clasp_mkdir_p(ckdir));
    snprintf(fin, sizeof fin, "%s/" CKPT_PREFIX "%08lld", ckdir, (long long)step);
    snprintf(tmp, sizeof tmp, "%s.tmp", fin);
    CLASP_TRY(clasp_rm_dir(tmp));
    if (mkdir(tmp, 0755) != 0)
        return clasp_set_error(CLASP_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    clasp_status s = write_tmp_(tmp, step, model, n_model, optim, n_optim, state);
    if (s == CLASP_OK)
        s = clasp_rm_dir(fin); /* a checkpoint of the same step from an earlier run */
    if (s == CLASP_OK && rename(tmp, fin) != 0)
        s = clasp_set_error(CLASP_ERR_IO, "%s: rename failed: %s", fin, strerror(errno));
    if (s != CLASP_OK) {
        clasp_rm_dir(tmp); /* no half-written folder stays behind; the error names the file */
        return s;
    }
    CLASP_TRY(clasp_fsync_dir(ckdir));
    const char *base = strrchr(fin, '/') + 1;
    char line[256];
    int n = snprintf(line, sizeof line, "%s\n", base);
    snprintf(path, sizeof path, "%s/latest", ckdir);
    CLASP_TRY(clasp_write_file_atomic(path, line, (size_t)n));
    CLASP_TRY(clasp_fsync_dir(ckdir));
    prune_(ckdir, keep);
    if (out_dir) snprintf(out_dir, out_cap, "%s", fin);
    return CLASP_OK;
}

clasp_status clasp_ckpt_resolve(const char *p, char *out, size_t cap) {
    char path[4400];
    snprintf(path, sizeof path, "%s/state.json", p);
    if (clasp_is_file(path)) {
        snprintf(out, cap, "%s", p);
        return CLASP_OK;
    }
    const char *ckdirs[2] = {"checkpoints", "."};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s/latest", p, ckdirs[i]);
        if (!clasp_is_file(path)) continue;
        char *text;
        size_t n;
        CLASP_TRY(clasp_read_file(path, 4096, &text, &n));
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' ')) n--;
        text[n] = '\0';
        if (n == 0 || strchr(text, '/')) {
            free(text);
            return clasp_set_error(CLASP_ERR_FORMAT, "%s: does not name a checkpoint folder", path);
        }
        snprintf(out, cap, "%s/%s/%s", p, ckdirs[i], text);
        free(text);
        if (!clasp_is_dir(out))
            return clasp_set_error(CLASP_ERR_NOT_FOUND, "%s: names '%s', which does not exist",
                                   path, out);
        return CLASP_OK;
    }
    return clasp_set_error(CLASP_ERR_NOT_FOUND,
                           "%s: neither a checkpoint folder (no state.json) nor a run folder "
                           "(no checkpoints/latest)",
                           p);
}

void clasp_ckpt_close(clasp_ckpt *c) {
    if (!c) return;
    cJSON_Delete(c->state);
    clasp_st_free(c->model);
    clasp_st_free(c->optim);
    c->state = NULL;
    c->model = c->optim = NULL;
}

clasp_status clasp_ckpt_open(const char *dir, clasp_ckpt *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    char path[4400];
    snprintf(path, sizeof path, "%s/state.json", dir);
    CLASP_TRY(clasp_json_load(path, &c->state));
    int version;
    clasp_status vs =
        clasp_json_format_version(c->state, path, CLASP_CKPT_FORMAT_VERSION, &version);
    if (vs != CLASP_OK) {
        clasp_ckpt_close(c);
        return vs;
    }
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(c->state, "checksums");
    const char *files[2] = {"model.safetensors", "optim.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(cs, files[i]);
        if (!cJSON_IsString(want)) {
            clasp_ckpt_close(c);
            return clasp_set_error(CLASP_ERR_FORMAT, "%s/state.json: field 'checksums.%s' missing",
                                   dir, files[i]);
        }
        uint64_t h;
        clasp_status s = clasp_hash_file(path, &h);
        if (s != CLASP_OK) {
            clasp_ckpt_close(c);
            return s;
        }
        char hex[17];
        clasp_hash_hex(h, hex);
        if (strcmp(hex, want->valuestring) != 0) {
            s = clasp_set_error(CLASP_ERR_FORMAT,
                                "%s: checksum mismatch (file xxh64 %s, state.json says %.16s): the "
                                "checkpoint is corrupt",
                                path, hex, want->valuestring);
            clasp_ckpt_close(c);
            return s;
        }
        s = clasp_st_open(path, i == 0 ? &c->model : &c->optim);
        if (s != CLASP_OK) {
            clasp_ckpt_close(c);
            return s;
        }
    }
    return CLASP_OK;
}

clasp_status clasp_ckpt_load_tensors(clasp_ckpt *c, int which, const clasp_named_tensor *t, int n) {
    clasp_safetensors *st = which == 0 ? c->model : c->optim;
    for (int i = 0; i < n; i++)
        CLASP_TRY(clasp_st_read_f32(st, t[i].name, t[i].ndim, t[i].shape, t[i].data));
    return CLASP_OK;
}
