/* export.c: writing exports (model.safetensors, config.json, tokenizer.json, preprocess.json)
 * and the embedder that loads an export or a checkpoint and embeds raw images, texts and
 * audio. See export.h. */
#include "core/compute.h"
#include "export/export.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/json.h"
#include "encoders/layers.h"
#include "modalities/text.h"
#include "train/checkpoint.h"
#include "train/runstate.h"
#include "pipeline/data.h"

#define PATH_CAP 4400
#define L2_EPS   1e-12f /* as the engine's normalisation */

/* out = dir + "/" + name; false (and an error) when it does not fit. */
static bool join_(char *out, size_t cap, const char *dir, const char *name) {
    int k = snprintf(out, cap, "%s/%s", dir, name);
    if (k < 0 || (size_t)k >= cap) {
        clasp_set_error(CLASP_ERR_ARG, "%s: path too long", dir);
        return false;
    }
    return true;
}

/* preprocess.json's "audio" object: the whole front-end, the evaluation crop and the derived
 * tower input size. NULL on allocation failure. */
static cJSON *audio_preprocess_json_(const clasp_audio_config *ac) {
    cJSON *a = clasp_audio_config_to_json(ac);
    if (a && (!cJSON_AddStringToObject(a, "eval_crop", "head") ||
              !cJSON_AddNumberToObject(a, "n_frames", (double)clasp_audio_clip_frames(ac)) ||
              !cJSON_AddNumberToObject(a, "clip_samples", (double)clasp_audio_clip_samples(ac)))) {
        cJSON_Delete(a);
        a = NULL;
    }
    return a;
}

/* ---- writing ---------------------------------------------------------------------------- */

/* The config JSON as exported (towers and preprocessing): a BPE tokenizer's file is the
 * export's tokenizer.json. */
static clasp_status export_config_json_(const clasp_model_config *mc, const clasp_preprocess *pre,
                                        cJSON **out) {
    clasp_preprocess p = *pre; /* shares the tokenizer; only the spec changes */
    if (!strcmp(p.tokenizer_spec.type, "bpe"))
        snprintf(p.tokenizer_spec.path, sizeof p.tokenizer_spec.path, "tokenizer.json");
    const char *merges = clasp_tokenizer_merges_path(pre->tokenizer); /* clip_bpe: copied */
    if (merges) {
        const char *slash = strrchr(merges, '/');
        snprintf(p.tokenizer_spec.path, sizeof p.tokenizer_spec.path, "%s",
                 slash ? slash + 1 : merges);
    }
    CLASP_TRY(clasp_model_config_to_json(mc, out));
    clasp_status s = CLASP_OK;
    /* an export always says which precision it was trained in */
    if (!cJSON_GetObjectItemCaseSensitive(*out, "precision") &&
        !cJSON_AddStringToObject(*out, "precision", clasp_precision_name(mc->precision)))
        s = clasp_set_error(CLASP_ERR_NOMEM, "export: out of memory");
    if (s == CLASP_OK) s = clasp_preprocess_add_json(&p, *out);
    if (s != CLASP_OK) {
        cJSON_Delete(*out);
        *out = NULL;
    }
    return s;
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

/* *out = preprocess.json's document (caller deletes). */
static clasp_status preprocess_json_(const clasp_preprocess *pre, cJSON **out) {
    *out = NULL;
    const clasp_tokenizer *tok = pre->tokenizer;
    const clasp_text_config tc = pre->text;
    cJSON *root = cJSON_CreateObject();
    if (!root) return clasp_set_error(CLASP_ERR_NOMEM, "export: out of memory");
    bool ok = cJSON_AddStringToObject(root, "format", "clasp-preprocess") &&
              cJSON_AddNumberToObject(root, "version", 1);
    if (ok && pre->has_image) {
        const clasp_image_config *ic = &pre->image;
        cJSON *im = cJSON_AddObjectToObject(root, "image");
        cJSON *mean = float_array_(ic->mean, ic->channels);
        cJSON *sd = float_array_(ic->std, ic->channels);
        ok = im && mean && sd && cJSON_AddNumberToObject(im, "channels", ic->channels) &&
             cJSON_AddNumberToObject(im, "size", ic->size) &&
             cJSON_AddStringToObject(im, "resize", clasp_image_resize_name(ic->mode)) &&
             cJSON_AddStringToObject(im, "filter",
                                     ic->interp == CLASP_IMAGE_INTERP_BICUBIC ? "pil-bicubic"
                                                                              : "catmull-rom") &&
             (ic->interp == CLASP_IMAGE_INTERP_CATMULLROM ||
              cJSON_AddStringToObject(im, "interp", clasp_image_interp_name(ic->interp))) &&
             (!ic->jpeg_dct_scaling || cJSON_AddTrueToObject(im, "jpeg_dct_scaling")) &&
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
    if (ok && pre->has_text) {
        cJSON *t = cJSON_AddObjectToObject(root, "text");
        cJSON *nz = t ? cJSON_AddObjectToObject(t, "normalize") : NULL;
        ok = t && nz && cJSON_AddNumberToObject(t, "context_length", pre->context_length) &&
             cJSON_AddStringToObject(t, "tokenizer", clasp_tokenizer_type_name(tok)) &&
             cJSON_AddNumberToObject(t, "bos_id", clasp_tokenizer_bos_id(tok)) &&
             cJSON_AddNumberToObject(t, "eos_id", clasp_tokenizer_eos_id(tok)) &&
             cJSON_AddNumberToObject(t, "pad_id", clasp_tokenizer_pad_id(tok)) &&
             cJSON_AddNumberToObject(t, "vocab_size", clasp_tokenizer_vocab_size(tok)) &&
             cJSON_AddBoolToObject(nz, "nfkc", tc.nfkc) &&
             cJSON_AddBoolToObject(nz, "casefold", tc.casefold) &&
             cJSON_AddBoolToObject(nz, "strip_control", tc.strip_control) &&
             cJSON_AddBoolToObject(nz, "collapse_whitespace", tc.collapse_whitespace) &&
             cJSON_AddBoolToObject(nz, "trim", tc.trim);
    }
    if (ok && pre->has_audio) {
        cJSON *a = audio_preprocess_json_(&pre->audio);
        ok = a != NULL;
        if (ok) cJSON_AddItemToObject(root, "audio", a);
    }
    if (!ok) {
        cJSON_Delete(root);
        return clasp_set_error(CLASP_ERR_NOMEM, "export: out of memory");
    }
    *out = root;
    return CLASP_OK;
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

static clasp_status write_files_(const clasp_model *m, const clasp_preprocess *pre,
                                 const char *dir) {
    char p[PATH_CAP];
    cJSON *cfg = NULL, *pj = NULL;
    char *cfg_text = NULL;
    clasp_st_writer *w = NULL;
    clasp_status s = export_config_json_(&m->config, pre, &cfg);
    if (s == CLASP_OK) {
        /* the weights' metadata holds the model config alone (as before versions) */
        cfg_text = cJSON_PrintUnformatted(cfg);
        w = clasp_st_writer_new();
        if (!cfg_text || !w ||
            !cJSON_AddNumberToObject(cfg, "format_version", CLASP_EXPORT_FORMAT_VERSION))
            s = clasp_set_error(CLASP_ERR_NOMEM, "export: out of memory");
    }
    if (s == CLASP_OK) {
        join_(p, sizeof p, dir, "config.json");
        s = clasp_json_save(p, cfg);
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
        s = clasp_tokenizer_save(pre->tokenizer, p);
    }
    if (s == CLASP_OK) s = preprocess_json_(pre, &pj);
    if (s == CLASP_OK) {
        join_(p, sizeof p, dir, "preprocess.json");
        s = clasp_json_save(p, pj);
    }
    clasp_st_writer_free(w);
    cJSON_free(cfg_text);
    cJSON_Delete(cfg);
    cJSON_Delete(pj);
    return s;
}

clasp_status clasp_export_model(const clasp_model *m, const clasp_preprocess *pre,
                                const char *out_dir) {
    if (!m || !pre || !pre->tokenizer || !out_dir || !*out_dir)
        return clasp_set_error(CLASP_ERR_ARG, "export: NULL model, preprocessing or folder");
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
    clasp_status s = write_files_(m, pre, tmp);
    if (s != CLASP_OK) {
        remove_flat_dir_(tmp);
        return clasp_wrap_error(s, "export to %s", out_dir);
    }
    bool had_old = false;
    if (clasp_is_dir(out_dir)) {
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
        if (clasp_is_dir(old))
            fprintf(stderr, "clasp export: left the previous export at %s (it held other files)\n",
                    old);
    }
    return CLASP_OK;
}

/* ---- loading ---------------------------------------------------------------------------- */

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

/* preprocess.json's "image" (parsed by clasp_image_config_from_json, as config.json's) must
 * equal config.json's image preprocessing. */
static clasp_status check_image_(const clasp_image_config *got, const clasp_image_config *want,
                                 const char *p) {
    char field[32] = "";
    if (got->channels != want->channels)
        snprintf(field, sizeof field, "channels");
    else if (got->size != want->size)
        snprintf(field, sizeof field, "size");
    else if (got->mode != want->mode)
        snprintf(field, sizeof field, "resize");
    else if (got->interp != want->interp)
        snprintf(field, sizeof field, "interp");
    else if (got->jpeg_dct_scaling != want->jpeg_dct_scaling)
        snprintf(field, sizeof field, "jpeg_dct_scaling");
    for (int c = 0; !field[0] && c < want->channels; c++) {
        if (got->mean[c] != want->mean[c]) snprintf(field, sizeof field, "mean[%d]", c);
        if (!field[0] && got->std[c] != want->std[c]) snprintf(field, sizeof field, "std[%d]", c);
    }
    if (!field[0]) return CLASP_OK;
    return clasp_set_error(CLASP_ERR_CONFIG, "%s: field 'image.%s' differs from config.json", p,
                           field);
}

/* preprocess.json's "audio" object (`au`, in file p) must hold every front-end field, each
 * valid and equal to config.json's front-end `want`. */
static clasp_status check_audio_preprocess_(const cJSON *au, const char *p,
                                            const clasp_audio_config *want) {
    cJSON *w = audio_preprocess_json_(want), *g = NULL;
    if (!w) return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", p);
    clasp_status s = CLASP_OK;
    const cJSON *it;
    cJSON_ArrayForEach(it, w) {
        if (!cJSON_GetObjectItemCaseSensitive(au, it->string)) {
            s = clasp_set_error(CLASP_ERR_CONFIG, "%s: field 'audio.%s' missing", p, it->string);
            break;
        }
    }
    clasp_audio_config got;
    if (s == CLASP_OK) s = clasp_audio_config_from_json(au, p, "audio", &got);
    if (s == CLASP_OK) {
        g = audio_preprocess_json_(&got);
        if (!g) s = clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", p);
    }
    /* fields the parser does not read (eval_crop, n_frames, clip_samples) come from the file */
    static const char *const own[] = {"eval_crop", "n_frames", "clip_samples"};
    for (int i = 0; s == CLASP_OK && i < 3; i++) {
        cJSON *v = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(au, own[i]), 1);
        if (!v || !cJSON_ReplaceItemInObjectCaseSensitive(g, own[i], v)) {
            cJSON_Delete(v);
            s = clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", p);
        }
    }
    cJSON_ArrayForEach(it, w) {
        if (s != CLASP_OK) break;
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(g, it->string);
        if (!x || !cJSON_Compare(x, it, 1)) {
            char *want_s = cJSON_PrintUnformatted(it);
            char *got_s = x ? cJSON_PrintUnformatted(x) : NULL;
            s = clasp_set_error(CLASP_ERR_CONFIG,
                                "%s: field 'audio.%s' is %s but config.json says %s", p, it->string,
                                got_s ? got_s : "?", want_s ? want_s : "?");
            cJSON_free(want_s);
            cJSON_free(got_s);
        }
    }
    cJSON_Delete(w);
    cJSON_Delete(g);
    return s;
}

/* preprocess.json must describe what config.json implies. */
static clasp_status check_preprocess_(const char *dir, const clasp_preprocess *pre) {
    char p[PATH_CAP];
    join_(p, sizeof p, dir, "preprocess.json");
    if (!clasp_is_file(p)) return clasp_set_error(CLASP_ERR_NOT_FOUND, "%s: missing", p);
    cJSON *root;
    CLASP_TRY(clasp_json_load(p, &root));
    clasp_status s = CLASP_OK;
    const cJSON *im = NULL, *tx = NULL, *au = NULL;
    if (pre->has_image) {
        clasp_image_config got;
        s = clasp_json_obj(root, "image", p, "", &im);
        if (s == CLASP_OK) s = clasp_image_config_from_json(im, p, "image", &got);
        if (s == CLASP_OK) s = check_image_(&got, &pre->image, p);
    }
    if (s == CLASP_OK && pre->has_text) {
        s = clasp_json_obj(root, "text", p, "", &tx);
        if (s == CLASP_OK) s = check_num_(tx, "context_length", p, "text", pre->context_length);
        if (s == CLASP_OK)
            s = check_num_(tx, "vocab_size", p, "text", clasp_tokenizer_vocab_size(pre->tokenizer));
    }
    if (s == CLASP_OK && pre->has_audio) {
        s = clasp_json_obj(root, "audio", p, "", &au);
        if (s == CLASP_OK) s = check_audio_preprocess_(au, p, &pre->audio);
    }
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

bool clasp_embedder_has(const clasp_embedder *em, clasp_tower t) {
    return em && t != CLASP_TOWER_SHARED && clasp_model_config_has(&em->config, t);
}

static clasp_model *model0_(clasp_embedder *em) {
    if (em->own) return &em->own[0];
    return em->engine.models ? &em->engine.models[0] : NULL;
}

/* An export's towers are loaded when first embedded (`clasp embed --image` never reads the
 * text tower; its parameter pages are never touched: encoders/model.h). Opening checked every
 * tensor, so reading one cannot fail but for a file changed since. The mapping is released
 * once every tower is in. */
static clasp_status load_tower_(clasp_embedder *em, clasp_tower t) {
    if (!em->pending || em->loaded[t]) return CLASP_OK;
    clasp_model *m0 = model0_(em);
    CLASP_TRY(clasp_model_read_tower_tensors(m0, em->pending, "", t, m0->params));
    em->loaded[t] = true;
    for (int k = 0; k < CLASP_N_TOWERS; k++)
        if (!em->loaded[k]) return CLASP_OK;
    clasp_st_free(em->pending);
    em->pending = NULL;
    return CLASP_OK;
}

static clasp_status load_all_(clasp_embedder *em) {
    for (int t = 0; t < CLASP_N_TOWERS && em->pending; t++) CLASP_TRY(load_tower_(em, t));
    return CLASP_OK;
}

clasp_model *clasp_embedder_model(clasp_embedder *em) {
    return load_all_(em) == CLASP_OK ? model0_(em) : NULL;
}

static clasp_model *replica_(clasp_embedder *em, int r) {
    return em->own ? &em->own[r] : &em->engine.models[r];
}

size_t clasp_embedder_bytes(const clasp_embedder *em) {
    size_t n = 0;
    for (int r = 0; r < em->n_rep; r++)
        n += clasp_model_bytes(em->own ? &em->own[r] : &em->engine.models[r]);
    return n;
}

void clasp_embedder_close(clasp_embedder *em) {
    if (!em) return;
    clasp_st_free(em->pending);
    clasp_engine_free(&em->engine);
    if (em->own)
        for (int r = 0; r < em->n_rep; r++) clasp_model_free(&em->own[r]);
    free(em->own);
    clasp_preprocess_free(&em->pre);
    clasp_audio_frontend_free(em->fe);
    free(em->pix);
    free(em->tokens);
    free(em->mel);
    free(em->norms);
    memset(em, 0, sizeof *em);
}

/* An export references only its own files: a config.json whose tokenizer path is absolute or
 * climbs out with ".." is refused (an export from elsewhere must not make clasp read, say,
 * /etc/... or a sibling folder). docs/security.md. */
static clasp_status confined_paths_(const cJSON *cfg, const char *file) {
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cfg, "text"), "tokenizer");
    static const char *const keys[] = {"path", "file"};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(tk, keys[i]);
        if (!cJSON_IsString(v)) continue;
        const char *p = v->valuestring;
        bool up = !strcmp(p, "..") || !strncmp(p, "../", 3) || strstr(p, "/../") ||
                  (strlen(p) >= 3 && !strcmp(p + strlen(p) - 3, "/.."));
        if (p[0] == '/' || up)
            return clasp_set_error(CLASP_ERR_CONFIG,
                                   "%s: field 'text.tokenizer.%s': '%s' is outside the export "
                                   "folder (an export may only name its own files)",
                                   file, keys[i], p);
    }
    return CLASP_OK;
}

/* em->config (the towers), em->pre (the preprocessing) and em->lc (the loader's
 * evaluation-mode preprocessing; callers set lc.required) from a model config document; `file`
 * names it in messages and anchors a relative tokenizer path. */
static clasp_status model_config_(clasp_embedder *em, const cJSON *cfg, const char *file) {
    CLASP_TRY(clasp_model_config_parse(cfg, file, &em->config));
    CLASP_TRY(clasp_preprocess_parse(cfg, file, &em->pre));
    return clasp_data_loader_config(&em->pre, 0, &em->lc);
}

/* The compute side: the engine for image-text models, else `threads` own replicas; scratch
 * buffers for each tower the model has; the audio front-end. */
static clasp_status start_engine_(clasp_embedder *em, int threads, int batch_size) {
    if (threads < 1) threads = 1;
    if (threads > CLASP_ENGINE_MAX_CHUNKS) threads = CLASP_ENGINE_MAX_CHUNKS;
    if (batch_size < 1) batch_size = 64;
    batch_size = (batch_size + threads - 1) / threads * threads;
    const clasp_model_config *mc = &em->config;
    em->n_rep = threads;
    em->batch_size = batch_size;
    em->D = mc->embed_dim;
    if (mc->image.type != CLASP_IMAGE_NONE && mc->text.type != CLASP_TEXT_NONE) {
        clasp_engine_options eo = {.batch_size = batch_size,
                                   .accum_steps = 1,
                                   .chunks = threads,
                                   .threads = threads,
                                   .loss = {0},
                                   .inference = true};
        CLASP_TRY(clasp_engine_init(&em->engine, mc, &eo));
    } else {
        em->own = calloc((size_t)threads, sizeof *em->own);
        if (!em->own) return clasp_set_error(CLASP_ERR_NOMEM, "embedder: out of memory");
        for (int r = 0; r < threads; r++)
            CLASP_TRY(clasp_model_init_inference(&em->own[r], mc, r ? em->own[0].params : NULL));
        /* One threading layer, as the engine: our threads; OpenBLAS single-threaded in each. */
        clasp_compute_set_threads(1);
    }
    size_t B = (size_t)batch_size;
    bool ok = true;
    if (mc->image.type != CLASP_IMAGE_NONE)
        ok = ok && (em->pix = malloc(B * clasp_model_input_elems(mc, CLASP_TOWER_IMAGE) *
                                     sizeof(float))) != NULL;
    if (mc->text.type != CLASP_TEXT_NONE)
        ok = ok && (em->tokens = malloc(B * clasp_model_input_elems(mc, CLASP_TOWER_TEXT) *
                                        sizeof(int32_t))) != NULL;
    if (mc->audio.type != CLASP_AUDIO_TYPE_NONE)
        ok = ok && (em->mel = malloc(B * clasp_model_input_elems(mc, CLASP_TOWER_AUDIO) *
                                     sizeof(float))) != NULL;
    ok = ok && (em->norms = malloc(B * sizeof(float))) != NULL;
    if (!ok) return clasp_set_error(CLASP_ERR_NOMEM, "embedder: out of memory");
    if (mc->audio.type != CLASP_AUDIO_TYPE_NONE)
        CLASP_TRY(clasp_audio_frontend_new(&em->lc.audio, &em->fe));
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
        if (!clasp_is_file(need[i]))
            return clasp_set_error(CLASP_ERR_NOT_FOUND, "%s: missing (not a complete export)",
                                   need[i]);
    cJSON *cfg;
    CLASP_TRY(clasp_json_load(p, &cfg));
    /* "format_version" (absent: 1) belongs to the export, not to the model config */
    int version;
    clasp_status s = clasp_json_format_version(cfg, p, CLASP_EXPORT_FORMAT_VERSION, &version);
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "format_version");
    if (s == CLASP_OK) s = confined_paths_(cfg, p);
    if (s == CLASP_OK) s = model_config_(em, cfg, p);
    if (s == CLASP_OK) {
        /* tokenizer.json must be the tokenizer config.json names */
        clasp_tokenizer *t2 = NULL;
        s = clasp_tokenizer_load(tp, &t2);
        if (s == CLASP_OK &&
            (clasp_tokenizer_kind(t2) != clasp_tokenizer_kind(em->pre.tokenizer) ||
             clasp_tokenizer_vocab_size(t2) != clasp_tokenizer_vocab_size(em->pre.tokenizer)))
            s = clasp_set_error(CLASP_ERR_CONFIG,
                                "%s: a %s tokenizer of %d tokens, but config.json's "
                                "text.tokenizer.type is \"%s\"",
                                tp, clasp_tokenizer_type_name(t2), clasp_tokenizer_vocab_size(t2),
                                em->pre.tokenizer_spec.type);
        clasp_tokenizer_free(t2);
    }
    if (s == CLASP_OK) s = check_preprocess_(dir, &em->pre);
    clasp_safetensors *st = NULL;
    /* the hash streams the file; the tensors are copied from a mapping released as it goes:
     * opening never holds the file and the parameters at once */
    if (s == CLASP_OK) s = clasp_hash_file(mp, &em->model_hash);
    if (s == CLASP_OK) s = clasp_st_open_mapped(mp, &st);
    if (s == CLASP_OK) s = check_meta_config_(st, mp, cfg, p);
    if (s == CLASP_OK) s = start_engine_(em, threads, batch);
    if (s == CLASP_OK) s = clasp_model_check_tensors(model0_(em), st, "");
    if (s == CLASP_OK) {
        em->pending = st;
        for (int t = 0; t < CLASP_N_TOWERS; t++)
            em->loaded[t] = t != CLASP_TOWER_SHARED && !clasp_model_config_has(&em->config, t);
        s = load_tower_(em, CLASP_TOWER_SHARED);
    } else {
        clasp_st_free(st);
    }
    cJSON_Delete(cfg);
    return s;
}

/* A checkpoint folder, or a run folder's latest checkpoint, read through train/runstate.h. */
static clasp_status open_checkpoint_(clasp_embedder *em, const char *path, int threads, int batch) {
    em->kind = CLASP_SOURCE_CHECKPOINT;
    CLASP_TRY(clasp_ckpt_resolve(path, em->path, sizeof em->path));
    run_dir_of_(em->path, em->run_dir, sizeof em->run_dir);
    if (em->run_dir[0]) CLASP_TRY(clasp_run_check_version(em->run_dir));
    clasp_ckpt c;
    CLASP_TRY(clasp_runstate_open(em->path, &c, &em->config, &em->step));
    char sp[PATH_CAP];
    snprintf(sp, sizeof sp, "%s/state.json", em->path);
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(c.state, "config");
    clasp_status s = cJSON_IsObject(cfg)
                         ? model_config_(em, cfg, sp)
                         : clasp_set_error(CLASP_ERR_FORMAT, "%s: field 'config' missing", sp);
    if (s == CLASP_OK) s = start_engine_(em, threads, batch);
    if (s == CLASP_OK) s = clasp_runstate_load_model(&c, model0_(em));
    if (s == CLASP_OK) em->model_hash = clasp_hash64(c.model->file, c.model->file_len, 0);
    clasp_ckpt_close(&c);
    return s;
}

clasp_status clasp_embedder_open_lazy(const char *path, int threads, int batch_size,
                                      clasp_embedder *em) {
    memset(em, 0, sizeof *em);
    if (!path || !*path) return clasp_set_error(CLASP_ERR_ARG, "embedder: no model path");
    if (strlen(path) > 4000)
        return clasp_set_error(CLASP_ERR_ARG, "%.200s...: path too long", path);
    char p[PATH_CAP];
    join_(p, sizeof p, path, "state.json");
    /* a checkpoint (state.json), a run (checkpoints/latest; a run also holds a config.json),
     * else an export (config.json or model.safetensors: a missing file is named later) */
    bool ckpt = clasp_is_file(p);
    join_(p, sizeof p, path, "checkpoints/latest");
    bool run = !ckpt && clasp_is_file(p);
    bool exp = false;
    if (!ckpt && !run) {
        join_(p, sizeof p, path, "config.json");
        exp = clasp_is_file(p);
        join_(p, sizeof p, path, "model.safetensors");
        exp = exp || clasp_is_file(p);
        if (!exp && !clasp_is_dir(path))
            return clasp_set_error(CLASP_ERR_NOT_FOUND, "%s: no such folder", path);
    }
    clasp_status s = exp ? open_export_(em, path, threads, batch_size)
                         : open_checkpoint_(em, path, threads, batch_size);
    if (s != CLASP_OK) {
        clasp_embedder_close(em);
        return s;
    }
    em->lc.eval = true; /* the replicas share replica 0's parameters: nothing to copy */
    return CLASP_OK;
}

clasp_status clasp_embedder_open(const char *path, int threads, int batch_size,
                                 clasp_embedder *em) {
    CLASP_TRY(clasp_embedder_open_lazy(path, threads, batch_size, em));
    clasp_status s = load_all_(em);
    if (s != CLASP_OK) clasp_embedder_close(em);
    return s;
}

clasp_status clasp_export_checkpoint(const char *ckpt_or_run, const char *out_dir, char *ckpt_out,
                                     size_t ckpt_cap) {
    char dir[4096];
    CLASP_TRY(clasp_ckpt_resolve(ckpt_or_run, dir, sizeof dir));
    clasp_embedder em;
    CLASP_TRY(clasp_embedder_open(dir, 1, 1, &em));
    clasp_status s = clasp_export_model(clasp_embedder_model(&em), &em.pre, out_dir);
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
        clasp_tokenizer_encode_n(em->pre.tokenizer, norm, nn, tokens, em->lc.context_length, NULL);
    free(norm);
    return s;
}

/* One replica's share of an embedding call (own-replica path). */
typedef struct embed_job {
    clasp_model *m;
    clasp_tower t;
    const void *in; /* this job's first input row */
    int n;
    int D;
    float *out;   /* (n, D) */
    float *norms; /* (n) */
    clasp_precision precision;
    clasp_status s;
    char err[1024];
} embed_job;

static void *embed_job_run_(void *arg) {
    embed_job *j = arg;
    clasp_precision was = clasp_compute_set_precision(j->precision);
    j->s = clasp_model_encode_rows(j->m, j->t, j->in, j->n, j->out);
    clasp_compute_set_precision(was);
    if (j->s == CLASP_OK)
        clasp_l2norm_forward(j->out, j->norms, j->out, j->n, j->D, L2_EPS);
    else
        snprintf(j->err, sizeof j->err, "%s", clasp_last_error());
    return NULL;
}

/* Embeds n inputs of tower t on the replicas: pieces of batch_size rows, each cut into
 * n_rep slices of batch_size / n_rep rows run by one thread each (the caller runs slice 0). */
static clasp_status embed_replicas_(clasp_embedder *em, clasp_tower t, const void *input, int n,
                                    float *out) {
    size_t row_bytes = clasp_model_input_elems(&em->config, t) *
                       (t == CLASP_TOWER_TEXT ? sizeof(int32_t) : sizeof(float));
    int crows = em->batch_size / em->n_rep, D = em->D;
    for (int r = 0; r < em->n_rep; r++) /* the tower's activations, on its first use */
        CLASP_TRY(clasp_model_prepare_tower(
            replica_(em, r), t, crows,
            em->precision == CLASP_FP32 ? CLASP_ENGINE_INFER_ARENA_BYTES / (size_t)em->n_rep : 0));
    for (int at = 0; at < n; at += em->batch_size) {
        int m = n - at < em->batch_size ? n - at : em->batch_size;
        embed_job jobs[CLASP_ENGINE_MAX_CHUNKS];
        pthread_t th[CLASP_ENGINE_MAX_CHUNKS];
        bool started[CLASP_ENGINE_MAX_CHUNKS] = {false};
        int nj = 0;
        for (int lo = 0; lo < m; lo += crows, nj++) {
            size_t row = (size_t)at + (size_t)lo;
            jobs[nj] = (embed_job){.m = replica_(em, nj),
                                   .t = t,
                                   .in = (const char *)input + row * row_bytes,
                                   .n = m - lo < crows ? m - lo : crows,
                                   .D = D,
                                   .out = out + row * (size_t)D,
                                   .norms = em->norms + lo,
                                   .precision = em->precision,
                                   .s = CLASP_OK};
        }
        for (int j = 1; j < nj; j++)
            started[j] = pthread_create(&th[j], NULL, embed_job_run_, &jobs[j]) == 0;
        embed_job_run_(&jobs[0]);
        for (int j = 1; j < nj; j++) {
            if (started[j])
                pthread_join(th[j], NULL);
            else
                embed_job_run_(&jobs[j]); /* no thread: run it here */
        }
        for (int j = 0; j < nj; j++)
            if (jobs[j].s != CLASP_OK) return clasp_set_error(jobs[j].s, "%s", jobs[j].err);
    }
    return CLASP_OK;
}

clasp_status clasp_embedder_set_precision(clasp_embedder *em, clasp_precision p) {
    CLASP_TRY(clasp_compute_check(p, NULL));
    em->precision = p;
    em->engine.opt.precision = p;
    return CLASP_OK;
}

static const char *tower_word_(clasp_tower t) {
    return t == CLASP_TOWER_IMAGE ? "image" : t == CLASP_TOWER_TEXT ? "text" : "audio";
}

static clasp_status need_tower_(const clasp_embedder *em, clasp_tower t) {
    if (clasp_embedder_has(em, t)) return CLASP_OK;
    return clasp_set_error(CLASP_ERR_CONFIG, "%s: the model has no %s tower", em->path,
                           tower_word_(t));
}

clasp_status clasp_embedder_embed_inputs(clasp_embedder *em, clasp_tower t, const void *input,
                                         int n, float *out) {
    if (!em || n < 0 || (n > 0 && (!input || !out)))
        return clasp_set_error(CLASP_ERR_ARG, "embed: bad arguments");
    CLASP_TRY(need_tower_(em, t));
    if (n == 0) return CLASP_OK;
    CLASP_TRY(load_tower_(em, t));
    if (!em->own && (t == CLASP_TOWER_IMAGE || t == CLASP_TOWER_TEXT))
        return clasp_engine_embed(&em->engine, t, input, n, out);
    return embed_replicas_(em, t, input, n, out);
}

clasp_status clasp_embedder_images(clasp_embedder *em, const void *const *data,
                                   const size_t *nbytes, const char *const *names, int n,
                                   float *out) {
    if (n < 0 || (n > 0 && (!data || !nbytes || !out)))
        return clasp_set_error(CLASP_ERR_ARG, "embed images: bad arguments");
    CLASP_TRY(need_tower_(em, CLASP_TOWER_IMAGE));
    size_t px = clasp_image_tensor_numel(&em->lc.image);
    size_t D = (size_t)em->D;
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
            clasp_embedder_embed_inputs(em, CLASP_TOWER_IMAGE, em->pix, m, out + (size_t)at * D));
    }
    return CLASP_OK;
}

clasp_status clasp_embedder_audio(clasp_embedder *em, const void *const *data, const size_t *nbytes,
                                  const char *const *names, int n, float *out) {
    if (n < 0 || (n > 0 && (!data || !nbytes || !out)))
        return clasp_set_error(CLASP_ERR_ARG, "embed audio: bad arguments");
    CLASP_TRY(need_tower_(em, CLASP_TOWER_AUDIO));
    size_t numel = clasp_audio_frontend_numel(em->fe), D = (size_t)em->D;
    for (int at = 0; at < n; at += em->batch_size) {
        int m = n - at < em->batch_size ? n - at : em->batch_size;
        for (int i = 0; i < m; i++) {
            char what[64];
            snprintf(what, sizeof what, "audio %d", at + i);
            clasp_audio_skip why = CLASP_AUDIO_OK;
            /* aug NULL: evaluation mode (head crop, no augmentation) */
            clasp_status s = clasp_audio_frontend_run(em->fe, data[at + i], nbytes[at + i], NULL, 0,
                                                      0, names ? names[at + i] : what,
                                                      em->mel + (size_t)i * numel, NULL, &why);
            if (s != CLASP_OK) return s; /* the message names the input and the reason */
        }
        CLASP_TRY(
            clasp_embedder_embed_inputs(em, CLASP_TOWER_AUDIO, em->mel, m, out + (size_t)at * D));
    }
    return CLASP_OK;
}

/* Embeds files through `fn` (clasp_embedder_images or _audio) in pieces of batch_size, each
 * file mapped read-only (mmap: the audio front-end touches only the pages a clip needs, so a
 * 2-hour recording costs what its first seconds do; a file that cannot be mapped is read). */
typedef clasp_status (*embed_bytes_fn)(clasp_embedder *, const void *const *, const size_t *,
                                       const char *const *, int, float *);

static clasp_status map_file_(const char *path, void **data, size_t *n, bool *mapped) {
    *data = NULL;
    *n = 0;
    *mapped = false;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return clasp_set_error(CLASP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return clasp_set_error(CLASP_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            *data = p;
            *n = (size_t)st.st_size;
            *mapped = true;
        }
    }
    close(fd);
    if (*mapped || st.st_size == 0) return CLASP_OK;
    char *buf;
    CLASP_TRY(clasp_read_file(path, (size_t)4 << 30, &buf, n));
    *data = buf;
    return CLASP_OK;
}

static clasp_status embed_files_(clasp_embedder *em, const char *const *paths, int n, float *out,
                                 embed_bytes_fn fn) {
    if (n < 0 || (n > 0 && (!paths || !out)))
        return clasp_set_error(CLASP_ERR_ARG, "embed files: bad arguments");
    size_t D = (size_t)em->D;
    int B = em->batch_size;
    void **bufs = calloc((size_t)B, sizeof *bufs);
    size_t *sz = calloc((size_t)B, sizeof *sz);
    bool *mapped = calloc((size_t)B, sizeof *mapped);
    clasp_status s =
        bufs && sz && mapped ? CLASP_OK : clasp_set_error(CLASP_ERR_NOMEM, "out of memory");
    for (int at = 0; at < n && s == CLASP_OK; at += B) {
        int m = n - at < B ? n - at : B, got = 0;
        for (; got < m && s == CLASP_OK; got++) {
            s = map_file_(paths[at + got], &bufs[got], &sz[got], &mapped[got]);
            if (s != CLASP_OK) break;
        }
        if (s == CLASP_OK)
            s = fn(em, (const void *const *)bufs, sz, paths + at, m, out + (size_t)at * D);
        for (int i = 0; i < got; i++) {
            if (mapped[i])
                munmap(bufs[i], sz[i]);
            else
                free(bufs[i]);
            bufs[i] = NULL;
        }
    }
    free(bufs);
    free(sz);
    free(mapped);
    return s;
}

clasp_status clasp_embedder_image_files(clasp_embedder *em, const char *const *paths, int n,
                                        float *out) {
    CLASP_TRY(need_tower_(em, CLASP_TOWER_IMAGE));
    return embed_files_(em, paths, n, out, clasp_embedder_images);
}

clasp_status clasp_embedder_audio_files(clasp_embedder *em, const char *const *paths, int n,
                                        float *out) {
    CLASP_TRY(need_tower_(em, CLASP_TOWER_AUDIO));
    return embed_files_(em, paths, n, out, clasp_embedder_audio);
}

clasp_status clasp_embedder_texts(clasp_embedder *em, const char *const *texts, int n, float *out) {
    if (n < 0 || (n > 0 && (!texts || !out)))
        return clasp_set_error(CLASP_ERR_ARG, "embed texts: bad arguments");
    CLASP_TRY(need_tower_(em, CLASP_TOWER_TEXT));
    size_t T = (size_t)em->lc.context_length, D = (size_t)em->D;
    for (int at = 0; at < n; at += em->batch_size) {
        int m = n - at < em->batch_size ? n - at : em->batch_size;
        for (int i = 0; i < m; i++) {
            clasp_status s = clasp_embedder_tokenize(em, texts[at + i], em->tokens + (size_t)i * T);
            if (s != CLASP_OK) return clasp_wrap_error(s, "text %d", at + i);
        }
        CLASP_TRY(
            clasp_embedder_embed_inputs(em, CLASP_TOWER_TEXT, em->tokens, m, out + (size_t)at * D));
    }
    return CLASP_OK;
}
