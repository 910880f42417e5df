/* preprocess.c: the preprocessing of a model config, composed from clasp_image_config_from_json,
 * clasp_tokenizer_from_json and clasp_audio_config_from_json (see preprocess.h). */
#include "modalities/preprocess.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

static clasp_status bad(const char *file, const char *prefix, const char *name, const char *why) {
    return clasp_set_error(CLASP_ERR_CONFIG, "%s: field '%s.%s': %s", file, prefix, name, why);
}

/* ---- text ------------------------------------------------------------------------------- */

/* The "text.tokenizer" object into spec. */
static clasp_status tokenizer_spec_(const cJSON *o, const char *file, clasp_tokenizer_spec *tk) {
    const char *P = "text.tokenizer";
    static const char *const keys[] = {"type", "bos", "eos", "pad", "path", "file", NULL};
    for (const cJSON *it = o->child; it; it = it->next) {
        if (!it->string || it->string[0] == '_') continue;
        bool ok = false;
        for (int i = 0; keys[i] && !ok; i++) ok = !strcmp(keys[i], it->string);
        if (!ok) return bad(file, P, it->string, "unknown key");
    }
    CLASP_TRY(clasp_json_str(o, "type", file, P, tk->type, sizeof tk->type));
    if (strcmp(tk->type, "bytes") && strcmp(tk->type, "bpe") && strcmp(tk->type, "clip_bpe"))
        return bad(file, P, "type", "expected \"bytes\", \"bpe\" or \"clip_bpe\"");
    int *ids[3] = {&tk->bos, &tk->eos, &tk->pad};
    static const char *const id_names[3] = {"bos", "eos", "pad"};
    for (int i = 0; i < 3; i++) {
        int64_t v;
        CLASP_TRY(clasp_json_int_opt(o, id_names[i], file, P, -1, 1 << 24, -1, &v));
        *ids[i] = (int)v;
    }
    /* "path" (as in modalities/tokenizer.h) or its older spelling "file" */
    const bool has_path = cJSON_GetObjectItemCaseSensitive(o, "path") != NULL;
    if (has_path && cJSON_GetObjectItemCaseSensitive(o, "file"))
        return bad(file, P, "file", "give \"path\" or \"file\", not both");
    CLASP_TRY(
        clasp_json_str_opt(o, has_path ? "path" : "file", file, P, "", tk->path, sizeof tk->path));
    if (!strcmp(tk->type, "bpe") && !tk->path[0])
        return bad(file, P, "path", "a \"bpe\" tokenizer needs the path of its tokenizer.json");
    if (!strcmp(tk->type, "clip_bpe") && !tk->path[0])
        return bad(file, P, "path", "a \"clip_bpe\" tokenizer needs the path of its merges file");
    return CLASP_OK;
}

/* Makes a relative tokenizer path absolute: the folder of `path` (the config file, which
 * exists: it was just read), made absolute with realpath, joined with the tokenizer path. */
static clasp_status absolute_path_(const char *path, clasp_tokenizer_spec *tk) {
    if (!tk->path[0] || tk->path[0] == '/') return CLASP_OK;
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - path) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        return bad(path, "text.tokenizer", "path", "config path too long");
    char *abs = realpath(dir, NULL);
    if (!abs)
        return clasp_set_error(CLASP_ERR_IO,
                               "%s: field 'text.tokenizer.path': cannot resolve the config's "
                               "folder %s",
                               path, dir);
    char joined[sizeof tk->path];
    int k = snprintf(joined, sizeof joined, "%s%s%s", abs, strcmp(abs, "/") ? "/" : "", tk->path);
    free(abs);
    if (k < 0 || (size_t)k >= sizeof joined)
        return bad(path, "text.tokenizer", "path", "too long once joined with the config's folder");
    memcpy(tk->path, joined, (size_t)k + 1);
    return CLASP_OK;
}

/* The tokenizer the spec names, through clasp_tokenizer_from_json (a relative path from the
 * folder of `file`). */
static clasp_status open_tokenizer_(clasp_preprocess *p, const char *file) {
    const clasp_tokenizer_spec *tk = &p->tokenizer_spec;
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddStringToObject(o, "type", tk->type[0] ? tk->type : "bytes") &&
              (!tk->path[0] || cJSON_AddStringToObject(o, "path", tk->path));
    clasp_status s = ok ? clasp_tokenizer_from_json(o, file, &p->tokenizer)
                        : clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", file);
    cJSON_Delete(o);
    return s;
}

static clasp_status text_(const cJSON *o, const char *file, bool absolute, clasp_preprocess *p) {
    int64_t v;
    CLASP_TRY(clasp_json_int(o, "context_length", file, "text", 1, 65536, &v));
    p->context_length = (int)v;
    CLASP_TRY(clasp_json_int(o, "vocab_size", file, "text", 1, 1 << 24, &v));
    p->vocab_size = (int)v;
    p->text = clasp_text_default_config();
    clasp_tokenizer_spec *tk = &p->tokenizer_spec;
    tk->bos = tk->eos = tk->pad = -1;
    if (cJSON_GetObjectItemCaseSensitive(o, "tokenizer")) {
        const cJSON *tko;
        CLASP_TRY(clasp_json_obj(o, "tokenizer", file, "text", &tko));
        CLASP_TRY(tokenizer_spec_(tko, file, tk));
    }
    if (absolute) CLASP_TRY(absolute_path_(file, tk));
    if (!strcmp(tk->type, "clip_bpe")) /* it cleans text itself, as OpenCLIP (docs/clip_bpe.md) */
        p->text = (clasp_text_config){false, false, false, false, false, false};
    return open_tokenizer_(p, file);
}

/* ---- audio ------------------------------------------------------------------------------ */

/* The front-end fields given in `o`, in its order, as indices into clasp_audio_config_to_json's
 * fields (other keys belong to the tower). */
static clasp_status audio_fields_(const cJSON *o, const char *file, clasp_preprocess *p) {
    cJSON *all = clasp_audio_config_to_json(&p->audio);
    if (!all) return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", file);
    p->n_audio_fields = 0;
    for (const cJSON *it = o->child; it; it = it->next) {
        int k = 0;
        const cJSON *f = all->child;
        while (f && strcmp(f->string, it->string)) f = f->next, k++;
        if (f && p->n_audio_fields < CLASP_PREPROCESS_AUDIO_FIELDS)
            p->audio_fields[p->n_audio_fields++] = k;
    }
    cJSON_Delete(all);
    return CLASP_OK;
}

/* ---- composing -------------------------------------------------------------------------- */

static clasp_status compose_(const cJSON *root, const char *what, bool absolute,
                             clasp_preprocess *p) {
    const char *file = what ? what : "<config>";
    if (!cJSON_IsObject(root))
        return clasp_set_error(CLASP_ERR_CONFIG, "%s: expected a JSON object", file);
    const cJSON *o;
    if (cJSON_GetObjectItemCaseSensitive(root, "image")) {
        CLASP_TRY(clasp_json_obj(root, "image", file, "", &o));
        CLASP_TRY(clasp_image_config_from_json(o, file, "image", &p->image));
        p->has_image = true;
    }
    if (cJSON_GetObjectItemCaseSensitive(root, "text")) {
        CLASP_TRY(clasp_json_obj(root, "text", file, "", &o));
        CLASP_TRY(text_(o, file, absolute, p));
        p->has_text = true;
    }
    if (cJSON_GetObjectItemCaseSensitive(root, "audio")) {
        CLASP_TRY(clasp_json_obj(root, "audio", file, "", &o));
        CLASP_TRY(clasp_audio_config_from_json(o, file, "audio", &p->audio));
        CLASP_TRY(audio_fields_(o, file, p));
        p->has_audio = true;
    }
    /* without a text tower: the byte-level tokenizer (an export's tokenizer.json) */
    return p->tokenizer ? CLASP_OK : clasp_tokenizer_new_bytes(&p->tokenizer);
}

static clasp_status finish_(clasp_status s, clasp_preprocess *p) {
    if (s != CLASP_OK) clasp_preprocess_free(p);
    return s;
}

clasp_status clasp_preprocess_parse(const cJSON *root, const char *what, clasp_preprocess *out) {
    memset(out, 0, sizeof *out);
    return finish_(compose_(root, what, false, out), out);
}

clasp_status clasp_preprocess_load(const char *path, clasp_preprocess *out) {
    memset(out, 0, sizeof *out);
    cJSON *root;
    CLASP_TRY(clasp_json_load(path, &root));
    clasp_status s = compose_(root, path, true, out);
    cJSON_Delete(root);
    return finish_(s, out);
}

void clasp_preprocess_free(clasp_preprocess *pre) {
    if (!pre) return;
    clasp_tokenizer_free(pre->tokenizer);
    memset(pre, 0, sizeof *pre);
}

/* ---- serialising ------------------------------------------------------------------------ */

static bool add_floats_(cJSON *o, const char *name, const float *v, int n) {
    cJSON *a = cJSON_AddArrayToObject(o, name);
    for (int i = 0; a && i < n; i++) {
        cJSON *x = cJSON_CreateNumber(clasp_json_short_float(v[i]));
        if (!x || !cJSON_AddItemToArray(a, x)) {
            cJSON_Delete(x);
            return false;
        }
    }
    return a != NULL;
}

static bool add_text_(cJSON *t, const clasp_tokenizer_spec *tk) {
    if (!tk->type[0]) return true;
    cJSON *o = cJSON_AddObjectToObject(t, "tokenizer");
    return o && cJSON_AddStringToObject(o, "type", tk->type) &&
           cJSON_AddNumberToObject(o, "bos", tk->bos) &&
           cJSON_AddNumberToObject(o, "eos", tk->eos) &&
           cJSON_AddNumberToObject(o, "pad", tk->pad) &&
           (!tk->path[0] || cJSON_AddStringToObject(o, "file", tk->path));
}

static bool add_audio_(cJSON *a, const clasp_preprocess *pre) {
    cJSON *all = clasp_audio_config_to_json(&pre->audio);
    bool ok = all != NULL;
    for (int i = 0; ok && i < pre->n_audio_fields; i++) {
        const cJSON *f = cJSON_GetArrayItem(all, pre->audio_fields[i]);
        /* the encoder writes the fields that fix its input size: move them to the config's
         * position */
        if (f) cJSON_DeleteItemFromObjectCaseSensitive(a, f->string);
        cJSON *dup = f ? cJSON_Duplicate(f, true) : NULL;
        ok = dup && cJSON_AddItemToObject(a, f->string, dup);
        if (!ok) cJSON_Delete(dup);
    }
    cJSON_Delete(all);
    return ok;
}

/* "interp" and "jpeg_dct_scaling", written only when not the defaults (older configs keep
 * their bytes). */
static bool add_image_extra_(cJSON *o, const clasp_image_config *ic) {
    if (ic->interp != CLASP_IMAGE_INTERP_CATMULLROM &&
        !cJSON_AddStringToObject(o, "interp", clasp_image_interp_name(ic->interp)))
        return false;
    return !ic->jpeg_dct_scaling || cJSON_AddTrueToObject(o, "jpeg_dct_scaling");
}

clasp_status clasp_preprocess_add_json(const clasp_preprocess *pre, cJSON *root) {
    static const char *const names[3] = {"image", "text", "audio"};
    const bool has[3] = {pre->has_image, pre->has_text, pre->has_audio};
    for (int i = 0; i < 3; i++) {
        if (!has[i]) continue;
        cJSON *o = cJSON_GetObjectItemCaseSensitive(root, names[i]);
        if (!cJSON_IsObject(o))
            return clasp_set_error(CLASP_ERR_ARG, "preprocess to JSON: no '%s' object", names[i]);
        const clasp_image_config *ic = &pre->image;
        bool ok =
            i == 0 ? add_floats_(o, "mean", ic->mean, ic->channels) &&
                         add_floats_(o, "std", ic->std, ic->channels) &&
                         cJSON_AddStringToObject(o, "resize", clasp_image_resize_name(ic->mode)) &&
                         add_image_extra_(o, ic)
            : i == 1 ? add_text_(o, &pre->tokenizer_spec)
                     : add_audio_(o, pre);
        if (!ok) return clasp_set_error(CLASP_ERR_NOMEM, "preprocess to JSON: out of memory");
    }
    return CLASP_OK;
}
