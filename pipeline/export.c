/* export.c: writing exports (model.safetensors, config.json, tokenizer.json, preprocess.json)
 * and the embedder that loads an export or a checkpoint and embeds raw images and texts.
 * See export.h. */
#include "pipeline/export.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/json.h"
#include "modalities/text.h"
#include "pipeline/checkpoint.h"
#include "pipeline/data.h"

#define PATH_CAP 4400

/* out = dir + "/" + name; false (and an error) when it does not fit. */
static bool join_(char *out, size_t cap, const char *dir, const char *name) {
    int k = snprintf(out, cap, "%s/%s", dir, name);
    if (k < 0 || (size_t)k >= cap) {
        clasp_set_error(CLASP_ERR_ARG, "%s: path too long", dir);
        return false;
    }
    return true;
}

static bool is_file_(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static bool is_dir_(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static const char *resize_name_(clasp_resize_mode r) {
    return r == CLASP_RESIZE_SQUASH ? "squash" : r == CLASP_RESIZE_LONGEST ? "longest" : "shortest";
}

/* ---- writing ---------------------------------------------------------------------------- */

/* The config JSON as exported: a BPE tokenizer's file is the export's tokenizer.json. */
static clasp_status export_config_json_(const clasp_model_config *mc, cJSON **out) {
    clasp_model_config c = *mc;
    if (!strcmp(c.text.tokenizer.type, "bpe"))
        snprintf(c.text.tokenizer.file, sizeof c.text.tokenizer.file, "tokenizer.json");
    return clasp_model_config_to_json(&c, out);
}

static cJSON *float_array_(const float *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        cJSON *x = cJSON_CreateNumber((double)v[i]);
        if (!x) {
            cJSON_Delete(a);
            return NULL;
        }
        cJSON_AddItemToArray(a, x);
    }
    return a;
}

static cJSON *preprocess_json_(const clasp_model_config *mc, const clasp_tokenizer *tok) {
    clasp_text_config tc = clasp_text_default_config();
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    bool ok = cJSON_AddStringToObject(root, "format", "clasp-preprocess") &&
              cJSON_AddNumberToObject(root, "version", 1);
    if (ok && mc->image.type != CLASP_IMAGE_NONE) {
        const clasp_image_tower_config *ic = &mc->image;
        cJSON *im = cJSON_AddObjectToObject(root, "image");
        cJSON *mean = float_array_(ic->mean, ic->channels);
        cJSON *sd = float_array_(ic->std, ic->channels);
        ok = im && mean && sd && cJSON_AddNumberToObject(im, "channels", ic->channels) &&
             cJSON_AddNumberToObject(im, "size", ic->size) &&
             cJSON_AddStringToObject(im, "resize", resize_name_(ic->resize)) &&
             cJSON_AddStringToObject(im, "filter", "catmull-rom") &&
             cJSON_AddStringToObject(im, "alpha", "white") &&
             cJSON_AddStringToObject(im, "scale", "x / 255");
        if (ok) {
            cJSON_AddItemToObject(im, "mean", mean);
            cJSON_AddItemToObject(im, "std", sd);
        } else {
            cJSON_Delete(mean);
            cJSON_Delete(sd);
        }
    }
    if (ok && mc->text.type != CLASP_TEXT_NONE) {
        cJSON *t = cJSON_AddObjectToObject(root, "text");
        cJSON *nz = t ? cJSON_AddObjectToObject(t, "normalize") : NULL;
        ok = t && nz && cJSON_AddNumberToObject(t, "context_length", mc->text.context_length) &&
             cJSON_AddStringToObject(t, "tokenizer",
                                     clasp_tokenizer_kind(tok) == CLASP_TOKENIZER_BPE ? "bpe"
                                                                                      : "bytes") &&
             cJSON_AddNumberToObject(t, "bos_id", CLASP_TOKEN_BOS) &&
             cJSON_AddNumberToObject(t, "eos_id", CLASP_TOKEN_EOS) &&
             cJSON_AddNumberToObject(t, "pad_id", CLASP_TOKEN_PAD) &&
             cJSON_AddNumberToObject(t, "vocab_size", clasp_tokenizer_vocab_size(tok)) &&
             cJSON_AddBoolToObject(nz, "nfkc", tc.nfkc) &&
             cJSON_AddBoolToObject(nz, "casefold", tc.casefold) &&
             cJSON_AddBoolToObject(nz, "strip_control", tc.strip_control) &&
             cJSON_AddBoolToObject(nz, "collapse_whitespace", tc.collapse_whitespace) &&
             cJSON_AddBoolToObject(nz, "trim", tc.trim);
    }
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* Removes a folder holding only plain files (an old export or a failed temporary one). */
static void remove_flat_dir_(const char *dir) {
    static const char *const files[] = {"model.safetensors",     "config.json",
                                        "tokenizer.json",        "preprocess.json",
                                        "model.safetensors.tmp", NULL};
    char p[PATH_CAP];
    for (int i = 0; files[i]; i++) {
        if (join_(p, sizeof p, dir, files[i])) unlink(p);
    }
    rmdir(dir);
}

static clasp_status write_files_(const clasp_model *m, const clasp_tokenizer *tok,
                                 const char *dir) {
    char p[PATH_CAP];
    cJSON *cfg = NULL, *pre = NULL;
    char *cfg_text = NULL;
    clasp_st_writer *w = NULL;
    clasp_status s = export_config_json_(&m->config, &cfg);
    if (s == CLASP_OK) {
        join_(p, sizeof p, dir, "config.json");
        s = clasp_json_save(p, cfg);
    }
    if (s == CLASP_OK) {
        cfg_text = cJSON_PrintUnformatted(cfg);
        w = clasp_st_writer_new();
        if (!cfg_text || !w) s = clasp_set_error(CLASP_ERR_NOMEM, "export: out of memory");
    }
    if (s == CLASP_OK) s = clasp_model_add_tensors(m, w, "", m->params);
    if (s == CLASP_OK) s = clasp_st_writer_meta(w, "format", "clasp-model");
    if (s == CLASP_OK) s = clasp_st_writer_meta(w, "config", cfg_text);
    if (s == CLASP_OK) {
        join_(p, sizeof p, dir, "model.safetensors");
        s = clasp_st_writer_write(w, p);
    }
    if (s == CLASP_OK) {
        join_(p, sizeof p, dir, "tokenizer.json");
        s = clasp_tokenizer_save(tok, p);
    }
    if (s == CLASP_OK) {
        pre = preprocess_json_(&m->config, tok);
        if (!pre) s = clasp_set_error(CLASP_ERR_NOMEM, "export: out of memory");
    }
    if (s == CLASP_OK) {
        join_(p, sizeof p, dir, "preprocess.json");
        s = clasp_json_save(p, pre);
    }
    clasp_st_writer_free(w);
    cJSON_free(cfg_text);
    cJSON_Delete(cfg);
    cJSON_Delete(pre);
    return s;
}

clasp_status clasp_export_model(const clasp_model *m, const clasp_tokenizer *tok,
                                const char *out_dir) {
    if (!m || !tok || !out_dir || !*out_dir)
        return clasp_set_error(CLASP_ERR_ARG, "export: NULL model, tokenizer or folder");
    if (strlen(out_dir) > 4000)
        return clasp_set_error(CLASP_ERR_ARG, "export: folder name too long");
    char tmp[PATH_CAP], old[PATH_CAP];
    long pid = (long)getpid();
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", out_dir, pid) >= (int)sizeof tmp ||
        snprintf(old, sizeof old, "%s.old-%ld", out_dir, pid) >= (int)sizeof old)
        return clasp_set_error(CLASP_ERR_ARG, "export: folder name too long");
    remove_flat_dir_(tmp);
    if (mkdir(tmp, 0755) != 0)
        return clasp_set_error(CLASP_ERR_IO, "%s: cannot create folder: %s", tmp, strerror(errno));
    clasp_status s = write_files_(m, tok, tmp);
    if (s != CLASP_OK) {
        remove_flat_dir_(tmp);
        return clasp_wrap_error(s, "export to %s", out_dir);
    }
    bool had_old = false;
    if (is_dir_(out_dir)) {
        if (rename(out_dir, old) != 0) {
            s = clasp_set_error(CLASP_ERR_IO, "%s: cannot move the old export aside: %s", out_dir,
                                strerror(errno));
            remove_flat_dir_(tmp);
            return s;
        }
        had_old = true;
    } else if (access(out_dir, F_OK) == 0) {
        remove_flat_dir_(tmp);
        return clasp_set_error(CLASP_ERR_IO, "%s: exists and is not a folder", out_dir);
    }
    if (rename(tmp, out_dir) != 0) {
        s = clasp_set_error(CLASP_ERR_IO, "%s: cannot rename %s into place: %s", out_dir, tmp,
                            strerror(errno));
        if (had_old) rename(old, out_dir);
        remove_flat_dir_(tmp);
        return s;
    }
    if (had_old) {
        remove_flat_dir_(old);
        if (is_dir_(old))
            fprintf(stderr, "clasp export: left the previous export at %s (it held other files)\n",
                    old);
    }
    return CLASP_OK;
}

/* ---- loading ---------------------------------------------------------------------------- */

clasp_status clasp_file_hash(const char *path, uint64_t *out) {
    char *buf;
    size_t n;
    CLASP_TRY(clasp_read_file(path, (size_t)4 << 30, &buf, &n));
    *out = clasp_hash64(buf, n, 0);
    free(buf);
    return CLASP_OK;
}

/* Compares one preprocess.json number with the config's value. */
static clasp_status check_num_(const cJSON *obj, const char *name, const char *file,
                               const char *prefix, double want) {
    double v;
    CLASP_TRY(clasp_json_num(obj, name, file, prefix, &v));
    if (fabs(v - want) > 1e-6 * (1.0 + fabs(want)))
        return clasp_set_error(CLASP_ERR_CONFIG, "%s: field '%s.%s' is %g but config.json says %g",
                               file, prefix, name, v, want);
    return CLASP_OK;
}

static clasp_status check_floats_(const cJSON *obj, const char *name, const char *file,
                                  const char *prefix, const float *want, int n) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "%s: field '%s.%s' must be an array of %d numbers (config.json)",
                               file, prefix, name, n);
    for (int i = 0; i < n; i++) {
        const cJSON *x = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(x) || fabs(x->valuedouble - (double)want[i]) > 1e-6)
            return clasp_set_error(CLASP_ERR_CONFIG,
                                   "%s: field '%s.%s[%d]' differs from config.json (%g)", file,
                                   prefix, name, i, (double)want[i]);
    }
    return CLASP_OK;
}

/* preprocess.json must describe what config.json implies. */
static clasp_status check_preprocess_(const char *dir, const clasp_model_config *mc,
                                      const clasp_tokenizer *tok) {
    char p[PATH_CAP];
    join_(p, sizeof p, dir, "preprocess.json");
    if (!is_file_(p)) return clasp_set_error(CLASP_ERR_NOT_FOUND, "%s: missing", p);
    cJSON *root;
    CLASP_TRY(clasp_json_load(p, &root));
    clasp_status s = CLASP_OK;
    const cJSON *im = NULL, *tx = NULL;
    if (mc->image.type != CLASP_IMAGE_NONE) s = clasp_json_obj(root, "image", p, "", &im);
    if (s == CLASP_OK) s = check_num_(im, "channels", p, "image", mc->image.channels);
    if (s == CLASP_OK) s = check_num_(im, "size", p, "image", mc->image.size);
    if (s == CLASP_OK) {
        char r[32];
        s = clasp_json_str(im, "resize", p, "image", r, sizeof r);
        if (s == CLASP_OK && strcmp(r, resize_name_(mc->image.resize)))
            s = clasp_set_error(CLASP_ERR_CONFIG,
                                "%s: field 'image.resize' is \"%s\" but config.json says \"%s\"", p,
                                r, resize_name_(mc->image.resize));
    }
    if (s == CLASP_OK)
        s = check_floats_(im, "mean", p, "image", mc->image.mean, mc->image.channels);
    if (s == CLASP_OK) s = check_floats_(im, "std", p, "image", mc->image.std, mc->image.channels);
    if (s == CLASP_OK && mc->text.type != CLASP_TEXT_NONE)
        s = clasp_json_obj(root, "text", p, "", &tx);
    if (s == CLASP_OK) s = check_num_(tx, "context_length", p, "text", mc->text.context_length);
    if (s == CLASP_OK) s = check_num_(tx, "vocab_size", p, "text", clasp_tokenizer_vocab_size(tok));
    cJSON_Delete(root);
    return s;
}

/* model.safetensors' metadata "config" (when present) must equal config.json. */
static clasp_status check_meta_config_(const clasp_safetensors *st, const char *st_path,
                                       const cJSON *cfg, const char *cfg_path) {
    const char *meta = clasp_st_meta(st, "config");
    if (!meta) return CLASP_OK;
    cJSON *m = cJSON_Parse(meta);
    if (!m) return clasp_set_error(CLASP_ERR_FORMAT, "%s: metadata 'config' is not JSON", st_path);
    clasp_status s = CLASP_OK;
    const cJSON *it;
    cJSON_ArrayForEach(it, cfg) {
        if (it->string && it->string[0] == '_') continue;
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(m, it->string);
        if (!o || !cJSON_Compare(o, it, 1)) {
            s = clasp_set_error(CLASP_ERR_CONFIG,
                                "%s: field '%s' differs from the config the weights were saved "
                                "with (metadata 'config' of %s)",
                                cfg_path, it->string, st_path);
            break;
        }
    }
    cJSON_Delete(m);
    return s;
}

static void run_dir_of_(const char *ckpt, char *out, size_t cap) {
    out[0] = '\0';
    char tmp[PATH_CAP];
    snprintf(tmp, sizeof tmp, "%s", ckpt);
    size_t n = strlen(tmp);
    while (n > 1 && tmp[n - 1] == '/') tmp[--n] = '\0';
    char *slash = strrchr(tmp, '/');
    if (!slash) return;
    *slash = '\0'; /* tmp = .../checkpoints */
    const char *base = strrchr(tmp, '/');
    base = base ? base + 1 : tmp;
    if (strcmp(base, "checkpoints") != 0) return;
    if (base == tmp) {
        snprintf(out, cap, ".");
    } else {
        tmp[base - tmp - 1] = '\0';
        snprintf(out, cap, "%s", tmp[0] ? tmp : "/");
    }
}

void clasp_embedder_close(clasp_embedder *em) {
    if (!em) return;
    clasp_engine_free(&em->engine);
    clasp_tokenizer_free(em->tok);
    free(em->pix);
    free(em->tokens);
    memset(em, 0, sizeof *em);
}

static clasp_status start_engine_(clasp_embedder *em, int threads, int batch_size) {
    if (threads < 1) threads = 1;
    if (threads > CLASP_ENGINE_MAX_CHUNKS) threads = CLASP_ENGINE_MAX_CHUNKS;
    if (batch_size < 1) batch_size = 64;
    batch_size = (batch_size + threads - 1) / threads * threads;
    clasp_engine_options eo = {.batch_size = batch_size,
                               .accum_steps = 1,
                               .chunks = threads,
                               .threads = threads,
                               .loss = CLASP_LOSS_INFONCE};
    CLASP_TRY(clasp_engine_init(&em->engine, &em->config, &eo));
    em->batch_size = batch_size;
    size_t px = (size_t)em->config.image.channels * (size_t)em->config.image.size *
                (size_t)em->config.image.size;
    em->pix = malloc((size_t)batch_size * px * sizeof(float));
    em->tokens =
        malloc((size_t)batch_size * (size_t)em->config.text.context_length * sizeof(int32_t));
    if (!em->pix || !em->tokens) return clasp_set_error(CLASP_ERR_NOMEM, "embedder: out of memory");
    return CLASP_OK;
}

static clasp_status open_export_(clasp_embedder *em, const char *dir, int threads, int batch) {
    char p[PATH_CAP], tp[PATH_CAP], mp[PATH_CAP];
    em->kind = CLASP_SOURCE_EXPORT;
    em->step = -1;
    snprintf(em->path, sizeof em->path, "%s", dir);
    join_(p, sizeof p, dir, "config.json");
    join_(tp, sizeof tp, dir, "tokenizer.json");
    join_(mp, sizeof mp, dir, "model.safetensors");
    const char *need[3] = {p, tp, mp};
    for (int i = 0; i < 3; i++)
        if (!is_file_(need[i]))
            return clasp_set_error(CLASP_ERR_NOT_FOUND, "%s: missing (not a complete export)",
                                   need[i]);
    cJSON *cfg;
    CLASP_TRY(clasp_json_load(p, &cfg));
    clasp_status s = clasp_model_config_parse(cfg, p, &em->config);
    if (s == CLASP_OK && !strcmp(em->config.text.tokenizer.type, "bpe") &&
        !join_(em->config.text.tokenizer.file, sizeof em->config.text.tokenizer.file, dir,
               "tokenizer.json"))
        s = clasp_wrap_error(CLASP_ERR_ARG, "BPE tokenizer");
    if (s == CLASP_OK) s = clasp_data_loader_config(&em->config, &em->lc, &em->tok);
    if (s == CLASP_OK) {
        /* tokenizer.json must be the tokenizer config.json names */
        clasp_tokenizer *t2 = NULL;
        s = clasp_tokenizer_load(tp, &t2);
        if (s == CLASP_OK &&
            (clasp_tokenizer_kind(t2) != clasp_tokenizer_kind(em->tok) ||
             clasp_tokenizer_vocab_size(t2) != clasp_tokenizer_vocab_size(em->tok)))
            s = clasp_set_error(CLASP_ERR_CONFIG,
                                "%s: a %s tokenizer of %d tokens, but config.json's "
                                "text.tokenizer.type is \"%s\"",
                                tp,
                                clasp_tokenizer_kind(t2) == CLASP_TOKENIZER_BPE ? "bpe" : "bytes",
                                clasp_tokenizer_vocab_size(t2), em->config.text.tokenizer.type);
        clasp_tokenizer_free(t2);
    }
    if (s == CLASP_OK) s = check_preprocess_(dir, &em->config, em->tok);
    clasp_safetensors *st = NULL;
    if (s == CLASP_OK) s = clasp_st_open(mp, &st);
    if (s == CLASP_OK) s = check_meta_config_(st, mp, cfg, p);
    if (s == CLASP_OK) s = start_engine_(em, threads, batch);
    if (s == CLASP_OK)
        s = clasp_model_read_tensors(&em->engine.models[0], st, "", em->engine.models[0].params);
    if (s == CLASP_OK) em->model_hash = clasp_hash64(st->file, st->file_len, 0);
    clasp_st_free(st);
    cJSON_Delete(cfg);
    return s;
}

static clasp_status open_checkpoint_(clasp_embedder *em, const char *path, int threads, int batch) {
    em->kind = CLASP_SOURCE_CHECKPOINT;
    CLASP_TRY(clasp_ckpt_resolve(path, em->path, sizeof em->path));
    run_dir_of_(em->path, em->run_dir, sizeof em->run_dir);
    clasp_ckpt c;
    CLASP_TRY(clasp_ckpt_open(em->path, &c));
    char sp[PATH_CAP];
    snprintf(sp, sizeof sp, "%s/state.json", em->path);
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(c.state, "config");
    clasp_status s = cJSON_IsObject(cfg)
                         ? clasp_model_config_parse(cfg, sp, &em->config)
                         : clasp_set_error(CLASP_ERR_FORMAT, "%s: field 'config' missing", sp);
    if (s == CLASP_OK) s = clasp_data_loader_config(&em->config, &em->lc, &em->tok);
    if (s == CLASP_OK) s = start_engine_(em, threads, batch);
    if (s == CLASP_OK)
        s = clasp_model_read_tensors(&em->engine.models[0], c.model, "",
                                     em->engine.models[0].params);
    if (s == CLASP_OK) em->model_hash = clasp_hash64(c.model->file, c.model->file_len, 0);
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(c.state, "step");
    em->step = cJSON_IsNumber(step) ? (int64_t)step->valuedouble : -1;
    clasp_ckpt_close(&c);
    return s;
}

clasp_status clasp_embedder_open(const char *path, int threads, int batch_size,
                                 clasp_embedder *em) {
    memset(em, 0, sizeof *em);
    if (!path || !*path) return clasp_set_error(CLASP_ERR_ARG, "embedder: no model path");
    if (strlen(path) > 4000)
        return clasp_set_error(CLASP_ERR_ARG, "%.200s...: path too long", path);
    char p[PATH_CAP];
    join_(p, sizeof p, path, "state.json");
    /* a checkpoint (state.json), a run (checkpoints/latest; a run also holds a config.json),
     * else an export (config.json or model.safetensors: a missing file is named later) */
    bool ckpt = is_file_(p);
    join_(p, sizeof p, path, "checkpoints/latest");
    bool run = !ckpt && is_file_(p);
    bool exp = false;
    if (!ckpt && !run) {
        join_(p, sizeof p, path, "config.json");
        exp = is_file_(p);
        join_(p, sizeof p, path, "model.safetensors");
        exp = exp || is_file_(p);
        if (!exp && !is_dir_(path))
            return clasp_set_error(CLASP_ERR_NOT_FOUND, "%s: no such folder", path);
    }
    clasp_status s = exp ? open_export_(em, path, threads, batch_size)
                         : open_checkpoint_(em, path, threads, batch_size);
    if (s != CLASP_OK) {
        clasp_embedder_close(em);
        return s;
    }
    em->lc.eval = true;
    clasp_engine_sync_params(&em->engine);
    return CLASP_OK;
}

clasp_status clasp_export_checkpoint(const char *ckpt_or_run, const char *out_dir, char *ckpt_out,
                                     size_t ckpt_cap) {
    char dir[4096];
    CLASP_TRY(clasp_ckpt_resolve(ckpt_or_run, dir, sizeof dir));
    clasp_embedder em;
    CLASP_TRY(clasp_embedder_open(dir, 1, 1, &em));
    clasp_status s = clasp_export_model(&em.engine.models[0], em.tok, out_dir);
    if (s == CLASP_OK && ckpt_out) snprintf(ckpt_out, ckpt_cap, "%s", dir);
    clasp_embedder_close(&em);
    return s;
}

/* ---- embedding -------------------------------------------------------------------------- */

clasp_status clasp_embedder_tokenize(const clasp_embedder *em, const char *text, int32_t *tokens) {
    char *norm = NULL;
    size_t nn = 0;
    CLASP_TRY(clasp_text_normalize(text, strlen(text), &em->lc.text, &norm, &nn));
    clasp_status s =
        clasp_tokenizer_encode_n(em->tok, norm, nn, tokens, em->lc.context_length, NULL);
    free(norm);
    return s;
}

clasp_status clasp_embedder_images(clasp_embedder *em, const void *const *data,
                                   const size_t *nbytes, const char *const *names, int n,
                                   float *out) {
    if (n < 0 || (n > 0 && (!data || !nbytes || !out)))
        return clasp_set_error(CLASP_ERR_ARG, "embed images: bad arguments");
    size_t px = clasp_image_tensor_numel(&em->lc.image);
    size_t D = (size_t)em->engine.D;
    for (int at = 0; at < n; at += em->batch_size) {
        int m = n - at < em->batch_size ? n - at : em->batch_size;
        for (int i = 0; i < m; i++) {
            clasp_status s = clasp_image_load(data[at + i], nbytes[at + i], &em->lc.image,
                                              em->pix + (size_t)i * px);
            if (s != CLASP_OK) {
                if (names) return clasp_wrap_error(s, "%s", names[at + i]);
                return clasp_wrap_error(s, "image %d", at + i);
            }
        }
        CLASP_TRY(
            clasp_engine_embed(&em->engine, CLASP_TOWER_IMAGE, em->pix, m, out + (size_t)at * D));
    }
    return CLASP_OK;
}

clasp_status clasp_embedder_image_files(clasp_embedder *em, const char *const *paths, int n,
                                        float *out) {
    size_t D = (size_t)em->engine.D;
    for (int at = 0; at < n; at += em->batch_size) {
        int m = n - at < em->batch_size ? n - at : em->batch_size;
        char *bufs[CLASP_ENGINE_MAX_CHUNKS * 64];
        char **b = m <= (int)(sizeof bufs / sizeof *bufs) ? bufs : calloc((size_t)m, sizeof *b);
        size_t *sz = calloc((size_t)m, sizeof *sz);
        clasp_status s = b && sz ? CLASP_OK : clasp_set_error(CLASP_ERR_NOMEM, "out of memory");
        int got = 0;
        for (; got < m && s == CLASP_OK; got++) {
            s = clasp_read_file(paths[at + got], (size_t)1 << 30, &b[got], &sz[got]);
            if (s != CLASP_OK) break;
        }
        if (s == CLASP_OK)
            s = clasp_embedder_images(em, (const void *const *)b, sz, paths + at, m,
                                      out + (size_t)at * D);
        for (int i = 0; i < got; i++) free(b[i]);
        if (b != bufs) free(b);
        free(sz);
        CLASP_TRY(s);
    }
    return CLASP_OK;
}

clasp_status clasp_embedder_texts(clasp_embedder *em, const char *const *texts, int n, float *out) {
    if (n < 0 || (n > 0 && (!texts || !out)))
        return clasp_set_error(CLASP_ERR_ARG, "embed texts: bad arguments");
    size_t T = (size_t)em->lc.context_length, D = (size_t)em->engine.D;
    for (int at = 0; at < n; at += em->batch_size) {
        int m = n - at < em->batch_size ? n - at : em->batch_size;
        for (int i = 0; i < m; i++) {
            clasp_status s = clasp_embedder_tokenize(em, texts[at + i], em->tokens + (size_t)i * T);
            if (s != CLASP_OK) return clasp_wrap_error(s, "text %d", at + i);
        }
        CLASP_TRY(
            clasp_engine_embed(&em->engine, CLASP_TOWER_TEXT, em->tokens, m, out + (size_t)at * D));
    }
    return CLASP_OK;
}
