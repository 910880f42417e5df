/* openclip.c: OpenCLIP model configs -> clasp model configs, and the checkpoint import (the
 * tensor name map of openclip.h). */
#include "export/openclip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/compute.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "encoders/model.h"
#include "export/export.h"
#include "modalities/preprocess.h"

/* OpenAI CLIP's image normalisation (also OpenCLIP's default). */
static const float OPENAI_MEAN[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float OPENAI_STD[3] = {0.26862954f, 0.26130258f, 0.27577711f};

/* The clip_bpe tokenizer's ids (modalities/tokenizer.h). */
#define CLIP_VOCAB 49408
#define CLIP_SOT   49406
#define CLIP_EOT   49407

/* ---- architecture ----------------------------------------------------------------------- */

static clasp_status unsupported_(const char *what, const char *field, const char *why) {
    return clasp_set_error(CLASP_ERR_UNSUPPORTED, "%s: field '%s': %s is not supported yet", what,
                           field, why);
}

/* A field that must be absent, null, false, zero or equal to `ok_str` (a string value). */
static clasp_status default_only_(const cJSON *o, const char *name, const char *what,
                                  const char *prefix, const char *ok_str, const char *why) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    char field[96];
    snprintf(field, sizeof field, "%s%s", prefix, name);
    if (!it || cJSON_IsNull(it) || cJSON_IsFalse(it)) return CLASP_OK;
    if (cJSON_IsNumber(it) && it->valuedouble == 0.0) return CLASP_OK;
    if (ok_str && cJSON_IsString(it) && !strcmp(it->valuestring, ok_str)) return CLASP_OK;
    return unsupported_(what, field, why);
}

/* Refuses keys of o outside `known` (NULL-terminated). */
static clasp_status known_keys_(const cJSON *o, const char *const *known, const char *what,
                                const char *prefix) {
    for (const cJSON *it = o->child; it; it = it->next) {
        bool ok = it->string && it->string[0] == '_';
        for (int i = 0; known[i] && !ok; i++) ok = !strcmp(it->string, known[i]);
        if (!ok)
            return clasp_set_error(CLASP_ERR_CONFIG, "%s: field '%s%s': unknown OpenCLIP field",
                                   what, prefix, it->string ? it->string : "?");
    }
    return CLASP_OK;
}

static clasp_status int_field_(const cJSON *o, const char *name, const char *what,
                               const char *prefix, int64_t def, int *out) {
    int64_t v;
    if (def < 0)
        CLASP_TRY(clasp_json_int(o, name, what, prefix, 1, 1 << 20, &v));
    else
        CLASP_TRY(clasp_json_int_opt(o, name, what, prefix, 1, 1 << 20, def, &v));
    *out = (int)v;
    return CLASP_OK;
}

/* width * mlp_ratio (default 4), which must be a whole number. */
static clasp_status mlp_width_(const cJSON *o, const char *what, const char *prefix, int width,
                               int *out) {
    double r;
    CLASP_TRY(clasp_json_num_opt(o, "mlp_ratio", what, prefix, 4.0, &r));
    double w = r * width;
    if (!(r > 0) || w > (double)(1 << 22) || w != floor(w))
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "%s: field '%smlp_ratio': %g x width %d is not a whole number", what,
                               prefix, r, width);
    *out = (int)w;
    return CLASP_OK;
}

/* "ls_init_value": absent, null or 0 = no layer scale, else a positive number (its value only
 * initialises clasp's gammas: imported ones come from the checkpoint). */
static clasp_status ls_value_(const cJSON *o, const char *what, const char *prefix, float *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, "ls_init_value");
    *out = 0.0f;
    if (!it || cJSON_IsNull(it)) return CLASP_OK;
    if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0) || it->valuedouble > 1e30)
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "%s: field '%sls_init_value': expected null or a number >= 0", what,
                               prefix);
    *out = (float)it->valuedouble;
    if (it->valuedouble > 0 && !(*out > 0.0f)) *out = 1e-30f; /* below float: still present */
    return CLASP_OK;
}

/* "image_mean"/"image_std": three numbers, or absent (OpenAI's). */
static clasp_status triple_(const cJSON *o, const char *name, const char *what, const float *def,
                            float *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!it || cJSON_IsNull(it)) {
        memcpy(out, def, 3 * sizeof *out);
        return CLASP_OK;
    }
    if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 3)
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "%s: field 'vision_cfg.%s': expected 3 numbers (R, G, B)", what,
                               name);
    for (int c = 0; c < 3; c++) {
        const cJSON *x = cJSON_GetArrayItem(it, c);
        /* the std divides: positive; both well inside float range */
        if (!cJSON_IsNumber(x) || !(fabs(x->valuedouble) <= 1e6) ||
            (def == OPENAI_STD && !(x->valuedouble > 1e-6)))
            return clasp_set_error(CLASP_ERR_CONFIG,
                                   "%s: field 'vision_cfg.%s[%d]': expected a number in "
                                   "[-1e6, 1e6]%s",
                                   what, name, c, def == OPENAI_STD ? ", above 1e-6" : "");
        out[c] = (float)x->valuedouble;
    }
    return CLASP_OK;
}

static clasp_status image_size_(const cJSON *v, const char *what, int *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(v, "image_size");
    if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2) {
        const cJSON *h = cJSON_GetArrayItem(it, 0), *w = cJSON_GetArrayItem(it, 1);
        if (cJSON_IsNumber(h) && cJSON_IsNumber(w) && h->valuedouble != w->valuedouble)
            return unsupported_(what, "vision_cfg.image_size", "a non-square image size");
        if (cJSON_IsNumber(h) && h->valuedouble >= 1 && h->valuedouble <= 65536 &&
            h->valuedouble == floor(h->valuedouble)) {
            *out = (int)h->valuedouble;
            return CLASP_OK;
        }
    }
    if (cJSON_IsArray(it))
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "%s: field 'vision_cfg.image_size': expected N or [N, N]", what);
    return int_field_(v, "image_size", what, "vision_cfg.", -1, out);
}

static clasp_status vision_(const cJSON *v, const char *what, clasp_openclip_arch *a) {
    static const char *const known[] = {"layers",
                                        "width",
                                        "patch_size",
                                        "image_size",
                                        "head_width",
                                        "mlp_ratio",
                                        "ls_init_value",
                                        "patch_dropout",
                                        "attentional_pool",
                                        "attn_pooler_queries",
                                        "attn_pooler_heads",
                                        "no_ln_pre",
                                        "pos_embed_type",
                                        "final_ln_after_pool",
                                        "pool_type",
                                        "output_tokens",
                                        "timm_model_name",
                                        "timm_model_pretrained",
                                        "timm_pool",
                                        "timm_proj",
                                        "timm_proj_bias",
                                        "timm_drop",
                                        "timm_drop_path",
                                        "global_average_pool",
                                        "act_kwargs",
                                        "norm_kwargs",
                                        "image_mean",
                                        "image_std",
                                        "image_interpolation",
                                        "image_resize_mode",
                                        "input_patchnorm",
                                        NULL};
    const char *P = "vision_cfg.";
    CLASP_TRY(known_keys_(v, known, what, P));
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(v, "layers");
    if (cJSON_IsArray(layers))
        return unsupported_(what, "vision_cfg.layers", "a ResNet (ModifiedResNet) vision tower");
    CLASP_TRY(default_only_(v, "timm_model_name", what, P, NULL, "a timm vision tower"));
    CLASP_TRY(ls_value_(v, what, P, &a->vision_ls));
    CLASP_TRY(default_only_(v, "attentional_pool", what, P, NULL, "attentional pooling"));
    CLASP_TRY(default_only_(v, "no_ln_pre", what, P, NULL, "a tower without ln_pre"));
    CLASP_TRY(default_only_(v, "pos_embed_type", what, P, "learnable",
                            "a position embedding other than \"learnable\""));
    CLASP_TRY(default_only_(v, "final_ln_after_pool", what, P, NULL, "final_ln_after_pool"));
    CLASP_TRY(default_only_(v, "pool_type", what, P, "tok", "pooling other than \"tok\""));
    CLASP_TRY(default_only_(v, "output_tokens", what, P, NULL, "output_tokens"));
    CLASP_TRY(default_only_(v, "global_average_pool", what, P, NULL, "global_average_pool"));
    CLASP_TRY(default_only_(v, "input_patchnorm", what, P, NULL, "input_patchnorm"));
    CLASP_TRY(default_only_(v, "image_resize_mode", what, P, "shortest",
                            "a resize mode other than \"shortest\""));
    const cJSON *ak = cJSON_GetObjectItemCaseSensitive(v, "act_kwargs");
    const cJSON *nk = cJSON_GetObjectItemCaseSensitive(v, "norm_kwargs");
    if ((ak && !cJSON_IsNull(ak)) || (nk && !cJSON_IsNull(nk)))
        return unsupported_(
            what, ak && !cJSON_IsNull(ak) ? "vision_cfg.act_kwargs" : "vision_cfg.norm_kwargs",
            "a custom activation or norm");
    int head_width;
    CLASP_TRY(int_field_(v, "layers", what, P, -1, &a->vision_layers));
    CLASP_TRY(int_field_(v, "width", what, P, -1, &a->vision_width));
    CLASP_TRY(int_field_(v, "patch_size", what, P, -1, &a->patch_size));
    CLASP_TRY(image_size_(v, what, &a->image_size));
    CLASP_TRY(int_field_(v, "head_width", what, P, 64, &head_width));
    if (a->vision_width % head_width)
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "%s: field 'vision_cfg.head_width': %d does not divide width %d",
                               what, head_width, a->vision_width);
    a->vision_heads = a->vision_width / head_width;
    if (a->image_size % a->patch_size)
        return clasp_set_error(
            CLASP_ERR_CONFIG, "%s: field 'vision_cfg.patch_size': %d does not divide image_size %d",
            what, a->patch_size, a->image_size);
    CLASP_TRY(mlp_width_(v, what, P, a->vision_width, &a->vision_mlp));
    CLASP_TRY(triple_(v, "image_mean", what, OPENAI_MEAN, a->mean));
    return triple_(v, "image_std", what, OPENAI_STD, a->std);
}

static clasp_status text_(const cJSON *t, const char *what, clasp_openclip_arch *a) {
    static const char *const known[] = {"context_length",
                                        "vocab_size",
                                        "width",
                                        "heads",
                                        "layers",
                                        "mlp_ratio",
                                        "ls_init_value",
                                        "hf_model_name",
                                        "hf_tokenizer_name",
                                        "hf_model_pretrained",
                                        "hf_proj_type",
                                        "hf_pooler_type",
                                        "proj_type",
                                        "proj_bias",
                                        "pool_type",
                                        "embed_cls",
                                        "pad_id",
                                        "no_causal_mask",
                                        "final_ln_after_pool",
                                        "output_tokens",
                                        "act_kwargs",
                                        "norm_kwargs",
                                        "tokenizer_kwargs",
                                        "attentional_pool",
                                        "dropout",
                                        "attn_pooler_heads",
                                        "attn_pooler_queries",
                                        NULL};
    const char *P = "text_cfg.";
    CLASP_TRY(known_keys_(t, known, what, P));
    CLASP_TRY(default_only_(t, "hf_model_name", what, P, NULL, "a Hugging Face text tower"));
    CLASP_TRY(ls_value_(t, what, P, &a->text_ls));
    CLASP_TRY(default_only_(t, "proj_bias", what, P, NULL, "a text projection with bias"));
    CLASP_TRY(default_only_(t, "pool_type", what, P, "argmax", "pooling other than \"argmax\""));
    CLASP_TRY(default_only_(t, "embed_cls", what, P, NULL, "a text class token (embed_cls)"));
    CLASP_TRY(default_only_(t, "pad_id", what, P, NULL, "a pad id other than 0"));
    CLASP_TRY(
        default_only_(t, "no_causal_mask", what, P, NULL, "a text tower without causal mask"));
    CLASP_TRY(default_only_(t, "final_ln_after_pool", what, P, NULL, "final_ln_after_pool"));
    CLASP_TRY(default_only_(t, "output_tokens", what, P, NULL, "output_tokens"));
    CLASP_TRY(default_only_(t, "attentional_pool", what, P, NULL, "attentional pooling"));
    CLASP_TRY(default_only_(t, "tokenizer_kwargs", what, P, NULL, "tokenizer options"));
    const cJSON *ak = cJSON_GetObjectItemCaseSensitive(t, "act_kwargs");
    const cJSON *nk = cJSON_GetObjectItemCaseSensitive(t, "norm_kwargs");
    if ((ak && !cJSON_IsNull(ak)) || (nk && !cJSON_IsNull(nk)))
        return unsupported_(
            what, ak && !cJSON_IsNull(ak) ? "text_cfg.act_kwargs" : "text_cfg.norm_kwargs",
            "a custom activation or norm");
    CLASP_TRY(int_field_(t, "context_length", what, P, 77, &a->context_length));
    CLASP_TRY(int_field_(t, "vocab_size", what, P, CLIP_VOCAB, &a->vocab_size));
    CLASP_TRY(int_field_(t, "width", what, P, 512, &a->text_width));
    CLASP_TRY(int_field_(t, "heads", what, P, 8, &a->text_heads));
    CLASP_TRY(int_field_(t, "layers", what, P, 12, &a->text_layers));
    if (a->vocab_size < CLIP_VOCAB)
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "%s: field 'text_cfg.vocab_size': %d is below the CLIP tokenizer's "
                               "%d ids",
                               what, a->vocab_size, CLIP_VOCAB);
    if (a->context_length < 2)
        return clasp_set_error(CLASP_ERR_CONFIG, "%s: field 'text_cfg.context_length': below 2",
                               what);
    if (a->text_width % a->text_heads)
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "%s: field 'text_cfg.heads': %d does not divide width %d", what,
                               a->text_heads, a->text_width);
    return mlp_width_(t, what, P, a->text_width, &a->text_mlp);
}

clasp_status clasp_openclip_arch_parse(const cJSON *root, const char *what,
                                       clasp_openclip_arch *a) {
    static const char *const known[] = {"embed_dim",        "vision_cfg",      "text_cfg",
                                        "quick_gelu",       "custom_text",     "cast_dtype",
                                        "init_logit_scale", "init_logit_bias", NULL};
    memset(a, 0, sizeof *a);
    if (!cJSON_IsObject(root))
        return clasp_set_error(CLASP_ERR_CONFIG, "%s: not a JSON object", what);
    CLASP_TRY(known_keys_(root, known, what, ""));
    CLASP_TRY(default_only_(root, "init_logit_bias", what, "", NULL, "a logit bias (SigLIP)"));
    CLASP_TRY(default_only_(root, "custom_text", what, "", NULL,
                            "custom_text (a text tower under text.*)"));
    CLASP_TRY(int_field_(root, "embed_dim", what, "", -1, &a->embed_dim));
    CLASP_TRY(clasp_json_bool_opt(root, "quick_gelu", what, "", false, &a->quick_gelu));
    const cJSON *v, *t;
    CLASP_TRY(clasp_json_obj(root, "vision_cfg", what, "", &v));
    CLASP_TRY(clasp_json_obj(root, "text_cfg", what, "", &t));
    CLASP_TRY(vision_(v, what, a));
    return text_(t, what, a);
}

clasp_status clasp_openclip_arch_load(const char *path, clasp_openclip_arch *a) {
    cJSON *root = NULL;
    CLASP_TRY(clasp_json_load(path, &root));
    clasp_status s = clasp_openclip_arch_parse(root, path, a);
    cJSON_Delete(root);
    return s;
}

/* ---- clasp config ----------------------------------------------------------------------- */

/* The image tower and its preprocessing (resize "shortest" with PIL's bicubic); mean and std
 * are set on the parsed preprocessing (clasp_openclip_import). */
static bool image_json_(cJSON *root, const clasp_openclip_arch *a, const char *act) {
    cJSON *im = cJSON_AddObjectToObject(root, "image");
    return im && cJSON_AddStringToObject(im, "type", "vit") &&
           cJSON_AddNumberToObject(im, "channels", 3) &&
           cJSON_AddNumberToObject(im, "size", a->image_size) &&
           cJSON_AddNumberToObject(im, "patch_size", a->patch_size) &&
           cJSON_AddNumberToObject(im, "width", a->vision_width) &&
           cJSON_AddNumberToObject(im, "layers", a->vision_layers) &&
           cJSON_AddNumberToObject(im, "heads", a->vision_heads) &&
           cJSON_AddNumberToObject(im, "mlp_width", a->vision_mlp) &&
           cJSON_AddStringToObject(im, "pool", "cls") && cJSON_AddStringToObject(im, "act", act) &&
           cJSON_AddBoolToObject(im, "ln_pre", 1) && cJSON_AddBoolToObject(im, "proj_bias", 0) &&
           cJSON_AddBoolToObject(im, "patch_bias", 0) &&
           cJSON_AddStringToObject(im, "resize", "shortest") &&
           /* PIL's BICUBIC, as OpenAI's and OpenCLIP's Resize (docs/preprocessing.md) */
           cJSON_AddStringToObject(im, "interp", "bicubic") &&
           (a->vision_ls == 0.0f ||
            cJSON_AddNumberToObject(im, "ls_init_value", (double)a->vision_ls));
}

static bool text_json_(cJSON *root, const clasp_openclip_arch *a, const char *act,
                       const char *merges) {
    cJSON *tx = cJSON_AddObjectToObject(root, "text");
    cJSON *tk = tx ? cJSON_AddObjectToObject(tx, "tokenizer") : NULL;
    /* no pad_id: OpenCLIP masks no key (the causal mask hides the padding after the eot) */
    return tx && tk && cJSON_AddStringToObject(tx, "type", "transformer") &&
           cJSON_AddNumberToObject(tx, "vocab_size", a->vocab_size) &&
           cJSON_AddNumberToObject(tx, "context_length", a->context_length) &&
           cJSON_AddNumberToObject(tx, "width", a->text_width) &&
           cJSON_AddNumberToObject(tx, "layers", a->text_layers) &&
           cJSON_AddNumberToObject(tx, "heads", a->text_heads) &&
           cJSON_AddNumberToObject(tx, "mlp_width", a->text_mlp) &&
           cJSON_AddBoolToObject(tx, "causal", 1) && cJSON_AddStringToObject(tx, "pool", "eos") &&
           cJSON_AddNumberToObject(tx, "eos_id", CLIP_EOT) &&
           cJSON_AddNumberToObject(tx, "pad_id", -1) && cJSON_AddStringToObject(tx, "act", act) &&
           cJSON_AddBoolToObject(tx, "proj_bias", 0) &&
           (a->text_ls == 0.0f ||
            cJSON_AddNumberToObject(tx, "ls_init_value", (double)a->text_ls)) &&
           cJSON_AddStringToObject(tk, "type", "clip_bpe") &&
           cJSON_AddNumberToObject(tk, "bos", CLIP_SOT) &&
           cJSON_AddNumberToObject(tk, "eos", CLIP_EOT) && cJSON_AddNumberToObject(tk, "pad", 0) &&
           cJSON_AddStringToObject(tk, "path", merges);
}

clasp_status clasp_openclip_model_config(const clasp_openclip_arch *a, const char *merges,
                                         double max_logit_scale, cJSON **out) {
    const char *act = a->quick_gelu ? "quick_gelu" : "gelu";
    cJSON *root = cJSON_CreateObject();
    bool ok = root && cJSON_AddNumberToObject(root, "embed_dim", a->embed_dim) &&
              cJSON_AddNumberToObject(root, "max_logit_scale", max_logit_scale) &&
              image_json_(root, a, act) && text_json_(root, a, act, merges);
    if (!ok) {
        cJSON_Delete(root);
        return clasp_set_error(CLASP_ERR_NOMEM, "openclip: out of memory");
    }
    *out = root;
    return CLASP_OK;
}

/* ---- the name map ----------------------------------------------------------------------- */

typedef enum map_kind { MAP_COPY = 0, MAP_TRANSPOSE } map_kind;

typedef struct map_entry {
    char oc[96];                     /* OpenCLIP name */
    char ours[CLASP_PARAM_NAME_MAX]; /* clasp parameter */
    map_kind kind;
    int ndim;
    int64_t shape[4]; /* the OpenCLIP shape */
} map_entry;

typedef struct name_map {
    map_entry *e;
    int n, cap;
} name_map;

static clasp_status add_(name_map *m, const char *oc, const char *ours, map_kind kind, int ndim,
                         int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    if (m->n == m->cap) {
        int cap = m->cap ? 2 * m->cap : 64;
        map_entry *e = realloc(m->e, (size_t)cap * sizeof *e);
        if (!e) return clasp_set_error(CLASP_ERR_NOMEM, "openclip: out of memory");
        m->e = e;
        m->cap = cap;
    }
    map_entry *x = &m->e[m->n++];
    memset(x, 0, sizeof *x);
    snprintf(x->oc, sizeof x->oc, "%s", oc);
    snprintf(x->ours, sizeof x->ours, "%s", ours);
    x->kind = kind;
    x->ndim = ndim;
    int64_t d[4] = {d0, d1, d2, d3};
    memcpy(x->shape, d, sizeof d);
    return CLASP_OK;
}

/* LayerNorm weight and bias, both (W). */
static clasp_status add_ln_(name_map *m, const char *oc, const char *ours, int64_t W) {
    char a[96], b[CLASP_PARAM_NAME_MAX];
    snprintf(a, sizeof a, "%s.weight", oc);
    snprintf(b, sizeof b, "%s.weight", ours);
    CLASP_TRY(add_(m, a, b, MAP_COPY, 1, W, 0, 0, 0));
    snprintf(a, sizeof a, "%s.bias", oc);
    snprintf(b, sizeof b, "%s.bias", ours);
    return add_(m, a, b, MAP_COPY, 1, W, 0, 0, 0);
}

/* A linear layer: weight (out, in) and bias (out). */
static clasp_status add_linear_(name_map *m, const char *ocw, const char *ocb, const char *ours,
                                int64_t out, int64_t in) {
    char b[CLASP_PARAM_NAME_MAX];
    snprintf(b, sizeof b, "%s.weight", ours);
    CLASP_TRY(add_(m, ocw, b, MAP_COPY, 2, out, in, 0, 0));
    snprintf(b, sizeof b, "%s.bias", ours);
    return add_(m, ocb, b, MAP_COPY, 1, out, 0, 0, 0);
}

/* The residual blocks of one tower: OpenCLIP prefix oc ("visual.transformer.resblocks."). */
static clasp_status add_blocks_(name_map *m, const char *oc, const char *ours, int layers,
                                int64_t W, int64_t Fw, bool ls) {
    for (int l = 0; l < layers; l++) {
        char o[96], u[CLASP_PARAM_NAME_MAX], ow[128], ob[128];
        snprintf(o, sizeof o, "%s%d", oc, l);
        snprintf(u, sizeof u, "%s%d", ours, l);
        char so[128], su[CLASP_PARAM_NAME_MAX + 16];
        snprintf(so, sizeof so, "%s.ln_1", o);
        snprintf(su, sizeof su, "%s.ln1", u);
        CLASP_TRY(add_ln_(m, so, su, W));
        snprintf(ow, sizeof ow, "%s.attn.in_proj_weight", o);
        snprintf(ob, sizeof ob, "%s.attn.in_proj_bias", o);
        snprintf(su, sizeof su, "%s.attn.qkv", u);
        CLASP_TRY(add_linear_(m, ow, ob, su, 3 * W, W));
        snprintf(ow, sizeof ow, "%s.attn.out_proj.weight", o);
        snprintf(ob, sizeof ob, "%s.attn.out_proj.bias", o);
        snprintf(su, sizeof su, "%s.attn.proj", u);
        CLASP_TRY(add_linear_(m, ow, ob, su, W, W));
        snprintf(so, sizeof so, "%s.ln_2", o);
        snprintf(su, sizeof su, "%s.ln2", u);
        CLASP_TRY(add_ln_(m, so, su, W));
        snprintf(ow, sizeof ow, "%s.mlp.c_fc.weight", o);
        snprintf(ob, sizeof ob, "%s.mlp.c_fc.bias", o);
        snprintf(su, sizeof su, "%s.mlp.fc1", u);
        CLASP_TRY(add_linear_(m, ow, ob, su, Fw, W));
        snprintf(ow, sizeof ow, "%s.mlp.c_proj.weight", o);
        snprintf(ob, sizeof ob, "%s.mlp.c_proj.bias", o);
        snprintf(su, sizeof su, "%s.mlp.fc2", u);
        CLASP_TRY(add_linear_(m, ow, ob, su, W, Fw));
        for (int k = 1; ls && k <= 2; k++) { /* LayerScale */
            snprintf(ow, sizeof ow, "%s.ls_%d.gamma", o, k);
            snprintf(su, sizeof su, "%s.ls%d.gamma", u, k);
            CLASP_TRY(add_(m, ow, su, MAP_COPY, 1, W, 0, 0, 0));
        }
    }
    return CLASP_OK;
}

static clasp_status build_map_(const clasp_openclip_arch *a, name_map *m) {
    const int64_t W = a->vision_width, P = a->patch_size, D = a->embed_dim;
    const int64_t T =
        (int64_t)(a->image_size / a->patch_size) * (a->image_size / a->patch_size) + 1;
    CLASP_TRY(add_(m, "visual.conv1.weight", "image.patch_embed.weight", MAP_COPY, 4, W, 3, P, P));
    CLASP_TRY(add_(m, "visual.class_embedding", "image.cls_token", MAP_COPY, 1, W, 0, 0, 0));
    CLASP_TRY(add_(m, "visual.positional_embedding", "image.pos_emb", MAP_COPY, 2, T, W, 0, 0));
    CLASP_TRY(add_ln_(m, "visual.ln_pre", "image.ln_pre", W));
    CLASP_TRY(add_blocks_(m, "visual.transformer.resblocks.", "image.blocks.", a->vision_layers, W,
                          a->vision_mlp, a->vision_ls > 0.0f));
    CLASP_TRY(add_ln_(m, "visual.ln_post", "image.ln_f", W));
    CLASP_TRY(add_(m, "visual.proj", "image.proj.weight", MAP_TRANSPOSE, 2, W, D, 0, 0));
    const int64_t TW = a->text_width;
    CLASP_TRY(add_(m, "token_embedding.weight", "text.tok_emb.weight", MAP_COPY, 2, a->vocab_size,
                   TW, 0, 0));
    CLASP_TRY(
        add_(m, "positional_embedding", "text.pos_emb", MAP_COPY, 2, a->context_length, TW, 0, 0));
    CLASP_TRY(add_blocks_(m, "transformer.resblocks.", "text.blocks.", a->text_layers, TW,
                          a->text_mlp, a->text_ls > 0.0f));
    CLASP_TRY(add_ln_(m, "ln_final", "text.ln_f", TW));
    CLASP_TRY(add_(m, "text_projection", "text.proj.weight", MAP_TRANSPOSE, 2, TW, D, 0, 0));
    return add_(m, "logit_scale", "logit_scale", MAP_COPY, 0, 0, 0, 0, 0);
}

/* ---- reading ---------------------------------------------------------------------------- */

/* IEEE half -> float. */
static float f16_to_f32_(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf, nan */
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: normalise */
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while (!(man & 0x400u));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* The OpenAI TorchScript buffers that carry no weights. */
static bool ignorable_(const char *name) {
    const char *dot = strrchr(name, '.');
    const char *leaf = dot ? dot + 1 : name;
    return !strcmp(leaf, "attn_mask") || !strcmp(name, "input_resolution") ||
           !strcmp(name, "context_length") || !strcmp(name, "vocab_size");
}

static void shape_str_(char *out, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(out, cap, "(");
    for (int d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(out + k, cap - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < cap) snprintf(out + k, cap - k, ")");
}

static bool same_shape_(const map_entry *e, const clasp_st_tensor *t) {
    if (e->ndim == 0) /* logit_scale: () or (1) */
        return t->numel == 1 && (t->ndim == 0 || t->ndim == 1);
    if (t->ndim != e->ndim) return false;
    for (int d = 0; d < e->ndim; d++)
        if (t->shape[d] != e->shape[d]) return false;
    return true;
}

/* Checks one tensor's shape and dtype against the map. */
static clasp_status check_tensor_(const clasp_safetensors *st, const map_entry *e,
                                  const clasp_st_tensor *t) {
    char want[96], got[96];
    if (!same_shape_(e, t)) {
        shape_str_(want, sizeof want, e->ndim, e->shape);
        shape_str_(got, sizeof got, t->ndim, t->shape);
        return clasp_set_error(CLASP_ERR_FORMAT,
                               "%s: tensor '%s' has shape %s, the architecture expects %s",
                               st->path, e->oc, got, want);
    }
    if (t->dtype != CLASP_DTYPE_F32 && t->dtype != CLASP_DTYPE_F16 && t->dtype != CLASP_DTYPE_BF16)
        return clasp_set_error(CLASP_ERR_FORMAT,
                               "%s: tensor '%s' has dtype %s (F32, F16 or BF16 expected)", st->path,
                               e->oc, clasp_dtype_name(t->dtype));
    return CLASP_OK;
}

/* Element i of an F32, F16 or BF16 tensor as a float. */
static float value_at_(const clasp_st_tensor *t, size_t i) {
    float v;
    uint16_t h;
    if (t->dtype == CLASP_DTYPE_F32) {
        memcpy(&v, t->data + 4 * i, 4);
        return v;
    }
    memcpy(&h, t->data + 2 * i, 2);
    return t->dtype == CLASP_DTYPE_F16 ? f16_to_f32_(h) : clasp_bf16_to_f32(h);
}

/* Writes a checked tensor (fp32, transposed if so mapped) into dst. */
static void read_tensor_(const map_entry *e, const clasp_st_tensor *t, float *dst,
                         clasp_openclip_report *r) {
    const size_t n = t->numel;
    const size_t rows = e->kind == MAP_TRANSPOSE ? (size_t)e->shape[0] : 1;
    const size_t cols = e->kind == MAP_TRANSPOSE ? (size_t)e->shape[1] : n;
    for (size_t i = 0; i < n; i++) {
        /* OpenCLIP's (W, D) projections are used as x @ P; ours are (D, W) weights */
        size_t o = e->kind == MAP_TRANSPOSE ? (i % cols) * rows + i / cols : i;
        dst[o] = value_at_(t, i);
    }
    r->n_f32 += t->dtype == CLASP_DTYPE_F32;
    r->n_f16 += t->dtype == CLASP_DTYPE_F16;
    r->n_bf16 += t->dtype == CLASP_DTYPE_BF16;
    r->n_tensors++;
}

/* Every tensor of st is either mapped or an ignorable buffer (listed in r). */
static clasp_status check_names_(const clasp_safetensors *st, name_map *m,
                                 clasp_openclip_report *r) {
    for (int i = 0; i < st->n_tensors; i++) {
        const char *name = st->tensors[i].name;
        int j = 0;
        while (j < m->n && strcmp(m->e[j].oc, name)) j++;
        if (j < m->n) continue;
        if (ignorable_(name)) {
            size_t k = strlen(r->ignored);
            if (k + strlen(name) + 3 < sizeof r->ignored)
                snprintf(r->ignored + k, sizeof r->ignored - k, "%s%s", k ? ", " : "", name);
            r->n_ignored++;
            continue;
        }
        return clasp_set_error(CLASP_ERR_FORMAT,
                               "%s: tensor '%s' is not part of the architecture (extra tensor; "
                               "wrong --arch?)",
                               st->path, name);
    }
    return CLASP_OK;
}

/* Fills m's parameters from st through the map: every parameter of the model is one of the
 * checkpoint's (the config says "patch_bias": false, as OpenCLIP's conv1 has none). */
static clasp_status fill_(clasp_model *model, clasp_safetensors *st, name_map *m,
                          clasp_openclip_report *r) {
    CLASP_TRY(check_names_(st, m, r));
    for (int j = 0; j < m->n; j++) {
        const clasp_st_tensor *t = clasp_st_find(st, m->e[j].oc);
        if (!t) {
            char want[96];
            shape_str_(want, sizeof want, m->e[j].ndim, m->e[j].shape);
            return clasp_set_error(CLASP_ERR_NOT_FOUND,
                                   "%s: tensor '%s' %s is missing (the architecture needs it)",
                                   st->path, m->e[j].oc, want);
        }
        CLASP_TRY(check_tensor_(st, &m->e[j], t));
        int k = clasp_model_find(model, m->e[j].ours);
        if (k < 0 || model->info[k].numel != t->numel)
            return clasp_set_error(CLASP_ERR_STATE, "openclip: no parameter %s of %zu values",
                                   m->e[j].ours, t->numel);
        read_tensor_(&m->e[j], t, model->params + model->info[k].offset, r);
    }
    if (r->n_tensors != model->n_params)
        return clasp_set_error(CLASP_ERR_STATE, "openclip: %d of %d parameters mapped",
                               r->n_tensors, model->n_params);
    return CLASP_OK;
}

/* The checkpoint's log logit scale (checked later with the other tensors). */
static double logit_scale_of_(const clasp_safetensors *st) {
    const clasp_st_tensor *t = clasp_st_find(st, "logit_scale");
    if (!t || t->numel != 1 ||
        (t->dtype != CLASP_DTYPE_F32 && t->dtype != CLASP_DTYPE_F16 &&
         t->dtype != CLASP_DTYPE_BF16))
        return log(100.0);
    float v = value_at_(t, 0);
    return isfinite(v) ? (double)v : log(100.0);
}

clasp_status clasp_openclip_import(const char *ckpt, const clasp_openclip_arch *a,
                                   const char *merges, const char *out_dir,
                                   clasp_openclip_report *rep) {
    clasp_openclip_report r0;
    clasp_openclip_report *r = rep ? rep : &r0;
    memset(r, 0, sizeof *r);
    clasp_safetensors *st = NULL;
    cJSON *doc = NULL;
    clasp_model_config mc;
    clasp_model m = {0};
    clasp_preprocess pre = {0};
    name_map map = {0};
    clasp_status s = clasp_st_open(ckpt, &st);
    if (s == CLASP_OK) {
        r->logit_scale = logit_scale_of_(st);
        /* OpenCLIP clamps the scale at 100 while training; keep a larger imported one */
        double max_ls = r->logit_scale > log(100.0) ? r->logit_scale : log(100.0);
        s = clasp_openclip_model_config(a, merges, max_ls, &doc);
    }
    if (s == CLASP_OK) s = clasp_model_config_parse(doc, "openclip import", &mc);
    if (s == CLASP_OK) s = clasp_preprocess_parse(doc, NULL, &pre);
    if (s == CLASP_OK) { /* OpenAI's normalisation or the arch's image_mean / image_std */
        memcpy(pre.image.mean, a->mean, sizeof a->mean);
        memcpy(pre.image.std, a->std, sizeof a->std);
    }
    if (s == CLASP_OK) s = clasp_model_init(&m, &mc);
    if (s == CLASP_OK) s = build_map_(a, &map);
    if (s == CLASP_OK) s = fill_(&m, st, &map, r);
    if (s == CLASP_OK) s = clasp_export_model(&m, &pre, out_dir);
    free(map.e);
    clasp_model_free(&m);
    clasp_preprocess_free(&pre);
    cJSON_Delete(doc);
    clasp_st_free(st);
    return s;
}
