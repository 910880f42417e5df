/* config.c: the towers of a model config (configs/NAME.json): parsing, validation and
 * serialisation. The preprocessing fields of the same file (image mean/std/resize, the
 * tokenizer, the audio front-end) are modalities/preprocess.c's; this parser only knows their
 * names, so that a typo among them is still an unknown key.
 *
 * Every error names the file and the field path, e.g.
 * "configs/x.json: field 'text.heads': 5 does not divide width 128". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "encoders/model.h"

#define SIZE_MAX_DIM 65536 /* sanity bound for every size in a config */

const char *clasp_tower_name(clasp_tower t) {
    static const char *const names[CLASP_N_TOWERS] = {[CLASP_TOWER_IMAGE] = "image",
                                                      [CLASP_TOWER_TEXT] = "text",
                                                      [CLASP_TOWER_AUDIO] = "audio",
                                                      [CLASP_TOWER_SHARED] = "shared"};
    return (unsigned)t < CLASP_N_TOWERS ? names[t] : "?";
}

/* Refuses keys not in `allowed` (NULL-terminated); keys starting with '_' are comments. */
static clasp_status check_keys(const cJSON *obj, const char *const *allowed, const char *file,
                               const char *prefix) {
    for (const cJSON *it = obj->child; it; it = it->next) {
        if (!it->string || it->string[0] == '_') continue;
        bool ok = false;
        for (int i = 0; allowed[i] && !ok; i++) ok = !strcmp(allowed[i], it->string);
        if (!ok)
            return clasp_set_error(CLASP_ERR_CONFIG, "%s: field '%s%s%s': unknown key", file,
                                   prefix, *prefix ? "." : "", it->string);
    }
    return CLASP_OK;
}

static clasp_status get_int(const cJSON *o, const char *name, const char *file, const char *prefix,
                            int lo, int hi, int *out) {
    int64_t v;
    CLASP_TRY(clasp_json_int(o, name, file, prefix, lo, hi, &v));
    *out = (int)v;
    return CLASP_OK;
}

static clasp_status get_int_opt(const cJSON *o, const char *name, const char *file,
                                const char *prefix, int lo, int hi, int def, int *out) {
    int64_t v;
    CLASP_TRY(clasp_json_int_opt(o, name, file, prefix, lo, hi, def, &v));
    *out = (int)v;
    return CLASP_OK;
}

static clasp_status get_float_opt(const cJSON *o, const char *name, const char *file,
                                  const char *prefix, double def, float *out) {
    double v;
    CLASP_TRY(clasp_json_num_opt(o, name, file, prefix, def, &v));
    *out = (float)v;
    return CLASP_OK;
}

static clasp_status bad(const char *file, const char *prefix, const char *name, const char *why) {
    return clasp_set_error(CLASP_ERR_CONFIG, "%s: field '%s%s%s': %s", file, prefix,
                           *prefix ? "." : "", name, why);
}

/* A string field with two allowed values, the first being the default: *is_second tells which
 * one it holds. */
static clasp_status get_either(const cJSON *o, const char *name, const char *file,
                               const char *prefix, const char *first, const char *second,
                               bool *is_second) {
    char s[16];
    CLASP_TRY(clasp_json_str_opt(o, name, file, prefix, first, s, sizeof s));
    if (strcmp(s, first) && strcmp(s, second)) {
        char why[96];
        snprintf(why, sizeof why, "expected \"%s\" or \"%s\"", first, second);
        return bad(file, prefix, name, why);
    }
    *is_second = !strcmp(s, second);
    return CLASP_OK;
}

static const char *const act_names_[] = {"gelu", "gelu_tanh", "quick_gelu"};

static clasp_status get_act(const cJSON *o, const char *file, const char *prefix, clasp_act *act) {
    char s[16];
    CLASP_TRY(clasp_json_str_opt(o, "act", file, prefix, "gelu", s, sizeof s));
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, act_names_[i])) {
            *act = (clasp_act)i;
            return CLASP_OK;
        }
    return bad(file, prefix, "act", "expected \"gelu\", \"gelu_tanh\" or \"quick_gelu\"");
}

/* "width", "layers" (at least min_layers), "heads" (dividing width) and "mlp_width" of a
 * transformer tower (ViT, AST, text). */
static clasp_status get_stack(const cJSON *o, const char *file, const char *P, int min_layers,
                              int *width, int *layers, int *heads, int *mlp_width) {
    CLASP_TRY(get_int(o, "width", file, P, 1, SIZE_MAX_DIM, width));
    CLASP_TRY(get_int(o, "layers", file, P, min_layers, 1024, layers));
    CLASP_TRY(get_int(o, "heads", file, P, 1, SIZE_MAX_DIM, heads));
    CLASP_TRY(get_int(o, "mlp_width", file, P, 1, SIZE_MAX_DIM, mlp_width));
    if (*width % *heads != 0) {
        char why[96];
        snprintf(why, sizeof why, "%d does not divide width %d", *heads, *width);
        return bad(file, P, "heads", why);
    }
    return CLASP_OK;
}

static clasp_status check_output_dim(const cJSON *o, const char *file, const char *prefix,
                                     int embed_dim) {
    int od;
    CLASP_TRY(get_int_opt(o, "output_dim", file, prefix, 1, SIZE_MAX_DIM, embed_dim, &od));
    if (od != embed_dim) {
        char why[96];
        snprintf(why, sizeof why, "%d differs from embed_dim %d", od, embed_dim);
        return bad(file, prefix, "output_dim", why);
    }
    return CLASP_OK;
}

/* Conv blocks then fc widths (image "cnn", "audio_cnn"): input c x h x w; `gap` = global
 * average pooling after the blocks (the fc input is the last block's channels) instead of
 * flattening. */
static clasp_status parse_conv_fc(const cJSON *o, const char *file, const char *P, int c, int h,
                                  int w, bool gap, int *n_conv, clasp_conv_block *convs, int *n_fc,
                                  int *fcs) {
    const cJSON *conv = cJSON_GetObjectItemCaseSensitive(o, "conv");
    if (!conv) return bad(file, P, "conv", "missing");
    if (!cJSON_IsArray(conv)) return bad(file, P, "conv", "expected an array of conv blocks");
    int n = cJSON_GetArraySize(conv);
    if (n > CLASP_MAX_CONV_BLOCKS) return bad(file, P, "conv", "too many conv blocks (max 8)");
    if (gap && n < 1) return bad(file, P, "conv", "needs at least one conv block");
    *n_conv = n;
    int i = 0;
    for (const cJSON *b = conv->child; b; b = b->next, i++) {
        char pre[48];
        snprintf(pre, sizeof pre, "%s.conv[%d]", P, i);
        if (!cJSON_IsObject(b))
            return clasp_set_error(CLASP_ERR_CONFIG, "%s: field '%s': expected an object", file,
                                   pre);
        static const char *const keys[] = {"channels", "kernel", "stride", "padding", "pool", NULL};
        CLASP_TRY(check_keys(b, keys, file, pre));
        clasp_conv_block *cb = &convs[i];
        CLASP_TRY(get_int(b, "channels", file, pre, 1, SIZE_MAX_DIM, &cb->channels));
        CLASP_TRY(get_int(b, "kernel", file, pre, 1, 64, &cb->kernel));
        CLASP_TRY(get_int_opt(b, "stride", file, pre, 1, 64, 1, &cb->stride));
        CLASP_TRY(get_int_opt(b, "padding", file, pre, 0, 64, 0, &cb->padding));
        CLASP_TRY(get_int_opt(b, "pool", file, pre, 0, 64, 0, &cb->pool));
        int oh = h + 2 * cb->padding - cb->kernel, ow = w + 2 * cb->padding - cb->kernel;
        if (oh < 0 || ow < 0) return bad(file, pre, "kernel", "larger than the padded input");
        oh = oh / cb->stride + 1;
        ow = ow / cb->stride + 1;
        if (cb->pool > 0) {
            oh /= cb->pool;
            ow /= cb->pool;
        }
        if (oh < 1 || ow < 1) return bad(file, pre, "pool", "pooling leaves no pixels");
        h = oh;
        w = ow;
        c = cb->channels;
    }
    size_t flat = gap ? (size_t)c : (size_t)c * (size_t)h * (size_t)w;
    if (flat > (size_t)1 << 24) return bad(file, P, "conv", "flattened feature map too large");
    const cJSON *fc = cJSON_GetObjectItemCaseSensitive(o, "fc");
    *n_fc = 0;
    if (fc) {
        if (!cJSON_IsArray(fc)) return bad(file, P, "fc", "expected an array of widths");
        if (cJSON_GetArraySize(fc) > CLASP_MAX_FC_LAYERS)
            return bad(file, P, "fc", "too many fc layers (max 8)");
        for (const cJSON *it = fc->child; it; it = it->next) {
            double v = cJSON_IsNumber(it) ? it->valuedouble : -1.0;
            if (!(v >= 1.0 && v <= SIZE_MAX_DIM && v == floor(v)))
                return bad(file, P, "fc", "expected positive integer widths");
            fcs[(*n_fc)++] = (int)v;
        }
    }
    return CLASP_OK;
}

static clasp_status parse_cnn(const cJSON *o, const char *file, clasp_image_tower_config *ic) {
    return parse_conv_fc(o, file, "image", ic->channels, ic->size, ic->size, false, &ic->n_conv,
                         ic->conv, &ic->n_fc, ic->fc);
}

/* "pool" ("cls" default | "mean"), "ln_eps" (default 1e-5), "act" of a ViT or AST. */
static clasp_status get_pool_eps_act(const cJSON *o, const char *file, const char *P,
                                     clasp_pool *pool_, float *eps, clasp_act *act) {
    bool mean = false;
    CLASP_TRY(get_either(o, "pool", file, P, "cls", "mean", &mean));
    *pool_ = mean ? CLASP_POOL_MEAN : CLASP_POOL_CLS;
    CLASP_TRY(get_float_opt(o, "ln_eps", file, P, 1e-5, eps));
    if (!(*eps > 0.0f)) return bad(file, P, "ln_eps", "must be positive");
    return get_act(o, file, P, act);
}

/* "ls_init_value": layer scale's initial gamma, absent or 0 = none. */
static clasp_status get_ls_init(const cJSON *o, const char *file, const char *P, float *out) {
    CLASP_TRY(get_float_opt(o, "ls_init_value", file, P, 0.0, out));
    if (!(*out >= 0.0f) || !isfinite(*out))
        return bad(file, P, "ls_init_value", "must be finite and >= 0");
    return CLASP_OK;
}

static clasp_status parse_vit(const cJSON *o, const char *file, clasp_image_tower_config *ic) {
    const char *P = "image";
    CLASP_TRY(get_int(o, "patch_size", file, P, 1, SIZE_MAX_DIM, &ic->patch_size));
    CLASP_TRY(get_stack(o, file, P, 1, &ic->width, &ic->layers, &ic->heads, &ic->mlp_width));
    if (ic->size % ic->patch_size != 0) return bad(file, P, "patch_size", "does not divide size");
    CLASP_TRY(clasp_json_bool_opt(o, "ln_pre", file, P, false, &ic->ln_pre));
    bool pb = true;
    CLASP_TRY(clasp_json_bool_opt(o, "proj_bias", file, P, true, &pb));
    ic->no_proj_bias = !pb;
    CLASP_TRY(clasp_json_bool_opt(o, "patch_bias", file, P, true, &pb));
    ic->no_patch_bias = !pb;
    CLASP_TRY(get_ls_init(o, file, P, &ic->ls_init));
    return get_pool_eps_act(o, file, P, &ic->pool, &ic->ln_eps, &ic->act);
}

static clasp_status parse_image(const cJSON *o, const char *file, int embed_dim,
                                clasp_image_tower_config *ic) {
    /* "mean", "std", "resize", "interp", "jpeg_dct_scaling": preprocessing, read by
     * modalities/preprocess.c */
    static const char *const keys[] = {"type",
                                       "channels",
                                       "size",
                                       "conv",
                                       "fc",
                                       "patch_size",
                                       "width",
                                       "layers",
                                       "heads",
                                       "mlp_width",
                                       "pool",
                                       "ln_eps",
                                       "act",
                                       "mean",
                                       "std",
                                       "resize",
                                       "output_dim",
                                       "ln_pre",
                                       "proj_bias",
                                       "ls_init_value",
                                       "patch_bias",
                                       "interp",
                                       "jpeg_dct_scaling",
                                       NULL};
    const char *P = "image";
    CLASP_TRY(check_keys(o, keys, file, P));
    char type[16];
    CLASP_TRY(clasp_json_str(o, "type", file, P, type, sizeof type));
    CLASP_TRY(get_int(o, "channels", file, P, 1, CLASP_MAX_IMAGE_CHANNELS, &ic->channels));
    CLASP_TRY(get_int(o, "size", file, P, 1, SIZE_MAX_DIM, &ic->size));
    CLASP_TRY(check_output_dim(o, file, P, embed_dim));
    ic->ln_eps = 1e-5f;
    if (!strcmp(type, "cnn")) {
        ic->type = CLASP_IMAGE_CNN;
        return parse_cnn(o, file, ic);
    }
    if (!strcmp(type, "vit")) {
        ic->type = CLASP_IMAGE_VIT;
        return parse_vit(o, file, ic);
    }
    return bad(file, P, "type", "unknown image tower type (expected \"cnn\" or \"vit\")");
}

/* The ids of the "tokenizer" object that the tower's eos_id / pad_id default to and that must
 * fit its vocabulary. The object itself (type, path) is preprocessing: modalities/preprocess.c
 * reads and checks it. */
static clasp_status tokenizer_ids(const cJSON *o, const char *file, int ids[3]) {
    static const char *const names[3] = {"bos", "eos", "pad"};
    ids[0] = ids[1] = ids[2] = -1;
    if (!cJSON_GetObjectItemCaseSensitive(o, "tokenizer")) return CLASP_OK;
    const cJSON *tko;
    CLASP_TRY(clasp_json_obj(o, "tokenizer", file, "text", &tko));
    for (int i = 0; i < 3; i++)
        CLASP_TRY(get_int_opt(tko, names[i], file, "text.tokenizer", -1, 1 << 24, -1, &ids[i]));
    return CLASP_OK;
}

static clasp_status parse_text(const cJSON *o, const char *file, int embed_dim,
                               clasp_text_tower_config *tc) {
    static const char *const keys[] = {
        "type",      "vocab_size", "context_length", "width",     "layers",        "heads",
        "mlp_width", "causal",     "pool",           "eos_id",    "pad_id",        "ln_eps",
        "act",       "tokenizer",  "output_dim",     "proj_bias", "ls_init_value", NULL};
    const char *P = "text";
    CLASP_TRY(check_keys(o, keys, file, P));
    char type[16];
    CLASP_TRY(clasp_json_str(o, "type", file, P, type, sizeof type));
    if (strcmp(type, "transformer"))
        return bad(file, P, "type", "unknown text tower type (expected \"transformer\")");
    tc->type = CLASP_TEXT_TRANSFORMER;
    int tok[3]; /* the tokenizer's bos, eos, pad */
    CLASP_TRY(tokenizer_ids(o, file, tok));
    CLASP_TRY(get_int(o, "vocab_size", file, P, 1, 1 << 24, &tc->vocab_size));
    CLASP_TRY(get_int(o, "context_length", file, P, 1, SIZE_MAX_DIM, &tc->context_length));
    CLASP_TRY(get_stack(o, file, P, 0, &tc->width, &tc->layers, &tc->heads, &tc->mlp_width));
    CLASP_TRY(check_output_dim(o, file, P, embed_dim));
    CLASP_TRY(clasp_json_bool_opt(o, "causal", file, P, true, &tc->causal));
    bool mean = false;
    CLASP_TRY(get_either(o, "pool", file, P, "eos", "mean", &mean));
    tc->pool = mean ? CLASP_POOL_MEAN : CLASP_POOL_EOS;
    int V = tc->vocab_size;
    CLASP_TRY(get_int_opt(o, "eos_id", file, P, -1, V - 1, tok[1], &tc->eos_id));
    CLASP_TRY(get_int_opt(o, "pad_id", file, P, -1, V - 1, tok[2], &tc->pad_id));
    if (tc->eos_id >= V) return bad(file, P, "tokenizer.eos", "not below vocab_size");
    if (tc->pad_id >= V) return bad(file, P, "tokenizer.pad", "not below vocab_size");
    if (tok[0] >= V) return bad(file, P, "tokenizer.bos", "not below vocab_size");
    if (tc->pool == CLASP_POOL_EOS && tc->eos_id < 0)
        return bad(file, P, "eos_id", "missing (pool \"eos\" needs eos_id or tokenizer.eos)");
    CLASP_TRY(get_float_opt(o, "ln_eps", file, P, 1e-5, &tc->ln_eps));
    if (!(tc->ln_eps > 0.0f)) return bad(file, P, "ln_eps", "must be positive");
    bool pb = true;
    CLASP_TRY(clasp_json_bool_opt(o, "proj_bias", file, P, true, &pb));
    tc->no_proj_bias = !pb;
    CLASP_TRY(get_ls_init(o, file, P, &tc->ls_init));
    return get_act(o, file, P, &tc->act);
}

/* ---- audio ------------------------------------------------------------------------------ */

/* Keys of the "audio" object read by the towers; for each type, the ones it does not use. */
static const char *const audio_encoder_keys[] = {
    "type",   "output_dim", "conv",      "fc",   "patch_freq", "patch_time", "width",
    "layers", "heads",      "mlp_width", "pool", "ln_eps",     "act",        NULL};
static const char *const audio_cnn_only[] = {"conv", "fc", NULL};
static const char *const audio_ast_only[] = {"patch_freq", "patch_time", "width", "layers",
                                             "heads",      "mlp_width",  "pool",  "ln_eps",
                                             "act",        NULL};

/* The names of the front-end fields of modalities/audio.h (clasp_audio_config_from_json,
 * composed by modalities/preprocess.c, which checks their values): accepted here, and the ones
 * that fix the tower's input size read by audio_geometry. */
static const char *const audio_frontend_keys[] = {
    "sample_rate", "clip_seconds", "pad",        "crop",      "resample_quality", "min_seconds",
    "n_fft",       "win_length",   "hop_length", "window",    "center",           "pad_mode",
    "n_mels",      "fmin",         "fmax",       "mel_scale", "mel_norm",         "power",
    "log",         "log_floor",    "norm_mean",  "norm_std",  "nonfinite",        NULL};

static bool in_list(const char *const *list, const char *k) {
    for (int i = 0; list[i]; i++)
        if (!strcmp(list[i], k)) return true;
    return false;
}

/* Checks the keys of the audio object: the type's encoder fields and the front-end's. */
static clasp_status audio_keys(const cJSON *o, const char *file,
                               const clasp_audio_tower_config *ac) {
    const char *P = "audio";
    const char *const *unused = ac->type == CLASP_AUDIO_TYPE_CNN ? audio_ast_only : audio_cnn_only;
    for (const cJSON *it = o->child; it; it = it->next) {
        if (!it->string || it->string[0] == '_') continue;
        if (in_list(unused, it->string))
            return bad(file, P, it->string,
                       ac->type == CLASP_AUDIO_TYPE_CNN ? "not used by type \"audio_cnn\""
                                                        : "not used by type \"ast\"");
        if (!in_list(audio_encoder_keys, it->string) && !in_list(audio_frontend_keys, it->string))
            return bad(file, P, it->string, "unknown key");
    }
    return CLASP_OK;
}

/* The front-end fields that fix the tower's input size, and n_frames from them (the formula
 * of clasp_audio_clip_frames). */
static clasp_status audio_geometry(const cJSON *o, const char *file, clasp_audio_tower_config *ac) {
    const char *P = "audio";
    CLASP_TRY(get_int(o, "sample_rate", file, P, 1, 1000000, &ac->sample_rate));
    CLASP_TRY(clasp_json_num(o, "clip_seconds", file, P, &ac->clip_seconds));
    if (!(ac->clip_seconds > 0.0) || !(ac->clip_seconds * ac->sample_rate <= 1e8))
        return bad(file, P, "clip_seconds", "must be > 0 and give at most 1e8 samples");
    CLASP_TRY(get_int(o, "hop_length", file, P, 1, 1 << 20, &ac->hop_length));
    CLASP_TRY(get_int(o, "n_mels", file, P, 1, 4096, &ac->n_mels));
    CLASP_TRY(clasp_json_bool_opt(o, "center", file, P, true, &ac->center));
    if (ac->center)
        CLASP_TRY(get_int_opt(o, "n_fft", file, P, 2, 65536, 0, &ac->n_fft));
    else
        CLASP_TRY(get_int(o, "n_fft", file, P, 2, 65536, &ac->n_fft));
    long long n = llround(ac->clip_seconds * (double)ac->sample_rate);
    long long frames = ac->center      ? 1 + n / ac->hop_length
                       : n < ac->n_fft ? 0
                                       : 1 + (n - ac->n_fft) / ac->hop_length;
    if (frames < 1) return bad(file, P, "clip_seconds", "the clip is shorter than one frame");
    if (frames > (1 << 20)) return bad(file, P, "clip_seconds", "too many frames (max 2^20)");
    ac->n_frames = (int)frames;
    return CLASP_OK;
}

static clasp_status parse_ast(const cJSON *o, const char *file, clasp_audio_tower_config *ac) {
    const char *P = "audio";
    CLASP_TRY(get_int(o, "patch_freq", file, P, 1, SIZE_MAX_DIM, &ac->patch_freq));
    CLASP_TRY(get_int(o, "patch_time", file, P, 1, SIZE_MAX_DIM, &ac->patch_time));
    if (ac->patch_freq > ac->n_mels) return bad(file, P, "patch_freq", "larger than n_mels");
    if (ac->patch_time > ac->n_frames) {
        char why[96];
        snprintf(why, sizeof why, "larger than the clip's %d frames", ac->n_frames);
        return bad(file, P, "patch_time", why);
    }
    size_t T = (size_t)(ac->n_mels / ac->patch_freq) * (size_t)(ac->n_frames / ac->patch_time);
    if (T > 65536) return bad(file, P, "patch_time", "more than 65536 patches");
    CLASP_TRY(get_stack(o, file, P, 1, &ac->width, &ac->layers, &ac->heads, &ac->mlp_width));
    return get_pool_eps_act(o, file, P, &ac->pool, &ac->ln_eps, &ac->act);
}

static clasp_status parse_audio(const cJSON *o, const char *file, int embed_dim,
                                clasp_audio_tower_config *ac) {
    const char *P = "audio";
    char type[16];
    CLASP_TRY(clasp_json_str(o, "type", file, P, type, sizeof type));
    if (!strcmp(type, "audio_cnn"))
        ac->type = CLASP_AUDIO_TYPE_CNN;
    else if (!strcmp(type, "ast"))
        ac->type = CLASP_AUDIO_TYPE_AST;
    else
        return bad(file, P, "type", "unknown audio tower type (expected \"audio_cnn\" or \"ast\")");
    CLASP_TRY(audio_keys(o, file, ac));
    CLASP_TRY(audio_geometry(o, file, ac));
    CLASP_TRY(check_output_dim(o, file, P, embed_dim));
    ac->ln_eps = 1e-5f;
    if (ac->type == CLASP_AUDIO_TYPE_CNN)
        return parse_conv_fc(o, file, P, 1, ac->n_mels, ac->n_frames, true, &ac->n_conv, ac->conv,
                             &ac->n_fc, ac->fc);
    return parse_ast(o, file, ac);
}

clasp_status clasp_model_config_parse(const cJSON *root, const char *what,
                                      clasp_model_config *cfg) {
    const char *file = what ? what : "<config>";
    memset(cfg, 0, sizeof *cfg);
    cfg->text.eos_id = cfg->text.pad_id = -1;
    if (!cJSON_IsObject(root))
        return clasp_set_error(CLASP_ERR_CONFIG, "%s: expected a JSON object", file);
    /* "format_version": an export's config.json is also a model config (clasp train --model
     * EXPORT); the export format is checked by export/ when it opens one, not here */
    static const char *const keys[] = {"embed_dim",
                                       "format_version",
                                       "init_logit_scale",
                                       "max_logit_scale",
                                       "init_logit_bias",
                                       "precision",
                                       "image",
                                       "text",
                                       "audio",
                                       NULL};
    CLASP_TRY(check_keys(root, keys, file, ""));
    bool bf16 = false;
    CLASP_TRY(get_either(root, "precision", file, "", "fp32", "bf16", &bf16));
    cfg->precision = bf16 ? CLASP_BF16 : CLASP_FP32;
    CLASP_TRY(get_int(root, "embed_dim", file, "", 1, SIZE_MAX_DIM, &cfg->embed_dim));
    CLASP_TRY(clasp_json_num_opt(root, "init_logit_scale", file, "", log(1.0 / 0.07),
                                 &cfg->init_logit_scale));
    CLASP_TRY(
        clasp_json_num_opt(root, "max_logit_scale", file, "", log(100.0), &cfg->max_logit_scale));
    if (cfg->init_logit_scale > cfg->max_logit_scale)
        return bad(file, "", "init_logit_scale", "exceeds max_logit_scale");
    cfg->has_logit_bias = cJSON_GetObjectItemCaseSensitive(root, "init_logit_bias") != NULL;
    CLASP_TRY(clasp_json_num_opt(root, "init_logit_bias", file, "", 0.0, &cfg->init_logit_bias));
    const cJSON *o;
    int towers = 0;
    if (cJSON_GetObjectItemCaseSensitive(root, "image")) {
        CLASP_TRY(clasp_json_obj(root, "image", file, "", &o));
        CLASP_TRY(parse_image(o, file, cfg->embed_dim, &cfg->image));
        towers++;
    }
    if (cJSON_GetObjectItemCaseSensitive(root, "text")) {
        CLASP_TRY(clasp_json_obj(root, "text", file, "", &o));
        CLASP_TRY(parse_text(o, file, cfg->embed_dim, &cfg->text));
        towers++;
    }
    if (cJSON_GetObjectItemCaseSensitive(root, "audio")) {
        CLASP_TRY(clasp_json_obj(root, "audio", file, "", &o));
        CLASP_TRY(parse_audio(o, file, cfg->embed_dim, &cfg->audio));
        towers++;
    }
    if (towers == 0)
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "%s: no tower: need an 'image', 'text' or 'audio' object", file);
    return CLASP_OK;
}

clasp_status clasp_model_config_load(const char *path, clasp_model_config *cfg) {
    cJSON *root;
    memset(cfg, 0, sizeof *cfg);
    CLASP_TRY(clasp_json_load(path, &root));
    clasp_status s = clasp_model_config_parse(root, path, cfg);
    cJSON_Delete(root);
    return s;
}

/* ---- serialisation --------------------------------------------------------------------- */

static const char *pool_name(clasp_pool p) {
    return p == CLASP_POOL_CLS ? "cls" : p == CLASP_POOL_MEAN ? "mean" : "eos";
}

static const char *act_name(clasp_act act) {
    return act_names_[act];
}

static bool add_float(cJSON *o, const char *name, float v) {
    return cJSON_AddNumberToObject(o, name, clasp_json_short_float(v)) != NULL;
}

/* get_stack's fields */
static bool add_stack(cJSON *o, int width, int layers, int heads, int mlp_width) {
    return cJSON_AddNumberToObject(o, "width", width) &&
           cJSON_AddNumberToObject(o, "layers", layers) &&
           cJSON_AddNumberToObject(o, "heads", heads) &&
           cJSON_AddNumberToObject(o, "mlp_width", mlp_width);
}

/* get_pool_eps_act's fields */
static bool add_pool_eps_act(cJSON *o, clasp_pool pool, float ln_eps, clasp_act act) {
    return cJSON_AddStringToObject(o, "pool", pool_name(pool)) && add_float(o, "ln_eps", ln_eps) &&
           cJSON_AddStringToObject(o, "act", act_name(act));
}

static bool add_conv_fc(cJSON *o, int n_conv, const clasp_conv_block *convs, int n_fc,
                        const int *fcs) {
    cJSON *conv = cJSON_AddArrayToObject(o, "conv");
    bool ok = conv != NULL;
    for (int i = 0; ok && i < n_conv; i++) {
        cJSON *b = cJSON_CreateObject();
        ok = b && cJSON_AddItemToArray(conv, b);
        ok = ok && cJSON_AddNumberToObject(b, "channels", convs[i].channels) &&
             cJSON_AddNumberToObject(b, "kernel", convs[i].kernel) &&
             cJSON_AddNumberToObject(b, "stride", convs[i].stride) &&
             cJSON_AddNumberToObject(b, "padding", convs[i].padding) &&
             cJSON_AddNumberToObject(b, "pool", convs[i].pool);
    }
    cJSON *fc = ok ? cJSON_AddArrayToObject(o, "fc") : NULL;
    ok = fc != NULL;
    for (int i = 0; ok && i < n_fc; i++) {
        cJSON *x = cJSON_CreateNumber(fcs[i]);
        ok = x && cJSON_AddItemToArray(fc, x);
    }
    return ok;
}

static bool image_to_json(cJSON *root, const clasp_image_tower_config *ic) {
    cJSON *o = cJSON_AddObjectToObject(root, "image");
    if (!o) return false;
    bool ok = cJSON_AddStringToObject(o, "type", ic->type == CLASP_IMAGE_CNN ? "cnn" : "vit") &&
              cJSON_AddNumberToObject(o, "channels", ic->channels) &&
              cJSON_AddNumberToObject(o, "size", ic->size);
    if (ok && ic->type == CLASP_IMAGE_CNN) {
        ok = add_conv_fc(o, ic->n_conv, ic->conv, ic->n_fc, ic->fc);
    } else if (ok) {
        ok = cJSON_AddNumberToObject(o, "patch_size", ic->patch_size) &&
             add_stack(o, ic->width, ic->layers, ic->heads, ic->mlp_width) &&
             add_pool_eps_act(o, ic->pool, ic->ln_eps, ic->act);
        /* written only when set, so configs without it serialise as before */
        if (ok && ic->ln_pre) ok = cJSON_AddBoolToObject(o, "ln_pre", true) != NULL;
        if (ok && ic->no_proj_bias) ok = cJSON_AddBoolToObject(o, "proj_bias", false) != NULL;
        if (ok && ic->no_patch_bias) ok = cJSON_AddBoolToObject(o, "patch_bias", false) != NULL;
        if (ok && ic->ls_init > 0.0f) ok = add_float(o, "ls_init_value", ic->ls_init);
    }
    return ok;
}

static bool text_to_json(cJSON *root, const clasp_text_tower_config *tc) {
    cJSON *o = cJSON_AddObjectToObject(root, "text");
    if (!o) return false;
    bool ok = cJSON_AddStringToObject(o, "type", "transformer") &&
              cJSON_AddNumberToObject(o, "vocab_size", tc->vocab_size) &&
              cJSON_AddNumberToObject(o, "context_length", tc->context_length) &&
              add_stack(o, tc->width, tc->layers, tc->heads, tc->mlp_width) &&
              cJSON_AddBoolToObject(o, "causal", tc->causal) &&
              cJSON_AddStringToObject(o, "pool", pool_name(tc->pool)) &&
              cJSON_AddNumberToObject(o, "eos_id", tc->eos_id) &&
              cJSON_AddNumberToObject(o, "pad_id", tc->pad_id) &&
              add_float(o, "ln_eps", tc->ln_eps) &&
              cJSON_AddStringToObject(o, "act", act_name(tc->act));
    if (ok && tc->no_proj_bias) ok = cJSON_AddBoolToObject(o, "proj_bias", false) != NULL;
    if (ok && tc->ls_init > 0.0f) ok = add_float(o, "ls_init_value", tc->ls_init);
    return ok;
}

static bool audio_to_json(cJSON *root, const clasp_audio_tower_config *ac) {
    cJSON *o = cJSON_AddObjectToObject(root, "audio");
    if (!o) return false;
    bool ok =
        cJSON_AddStringToObject(o, "type", ac->type == CLASP_AUDIO_TYPE_CNN ? "audio_cnn" : "ast");
    if (ok && ac->type == CLASP_AUDIO_TYPE_CNN) {
        ok = add_conv_fc(o, ac->n_conv, ac->conv, ac->n_fc, ac->fc);
    } else if (ok) {
        ok = cJSON_AddNumberToObject(o, "patch_freq", ac->patch_freq) &&
             cJSON_AddNumberToObject(o, "patch_time", ac->patch_time) &&
             add_stack(o, ac->width, ac->layers, ac->heads, ac->mlp_width) &&
             add_pool_eps_act(o, ac->pool, ac->ln_eps, ac->act);
    }
    /* the front-end fields that fix the input size (n_fft when given, center when false); the
     * others are preprocessing (clasp_preprocess_add_json writes every given field back in its
     * order) */
    return ok && cJSON_AddNumberToObject(o, "sample_rate", ac->sample_rate) &&
           cJSON_AddNumberToObject(o, "clip_seconds", ac->clip_seconds) &&
           cJSON_AddNumberToObject(o, "hop_length", ac->hop_length) &&
           cJSON_AddNumberToObject(o, "n_mels", ac->n_mels) &&
           (ac->n_fft == 0 || cJSON_AddNumberToObject(o, "n_fft", ac->n_fft)) &&
           (ac->center || cJSON_AddBoolToObject(o, "center", false));
}

clasp_status clasp_model_config_to_json(const clasp_model_config *cfg, cJSON **out) {
    *out = NULL;
    cJSON *root = cJSON_CreateObject();
    /* "precision" only when not fp32: configs, checkpoints and runs saved before precisions
     * existed stay equal to new fp32 ones */
    bool ok = root && cJSON_AddNumberToObject(root, "embed_dim", cfg->embed_dim) &&
              (cfg->precision == CLASP_FP32 ||
               cJSON_AddStringToObject(root, "precision", clasp_precision_name(cfg->precision))) &&
              cJSON_AddNumberToObject(root, "init_logit_scale", cfg->init_logit_scale) &&
              cJSON_AddNumberToObject(root, "max_logit_scale", cfg->max_logit_scale) &&
              (!cfg->has_logit_bias ||
               cJSON_AddNumberToObject(root, "init_logit_bias", cfg->init_logit_bias));
    if (ok && cfg->image.type != CLASP_IMAGE_NONE) ok = image_to_json(root, &cfg->image);
    if (ok && cfg->text.type != CLASP_TEXT_NONE) ok = text_to_json(root, &cfg->text);
    if (ok && cfg->audio.type != CLASP_AUDIO_TYPE_NONE) ok = audio_to_json(root, &cfg->audio);
    if (!ok) {
        cJSON_Delete(root);
        return clasp_set_error(CLASP_ERR_NOMEM, "model config: cannot build JSON");
    }
    *out = root;
    return CLASP_OK;
}

/* ---- sizes ------------------------------------------------------------------------------ */

bool clasp_model_config_has(const clasp_model_config *c, clasp_tower t) {
    switch (t) {
    case CLASP_TOWER_IMAGE:
        return c->image.type != CLASP_IMAGE_NONE;
    case CLASP_TOWER_TEXT:
        return c->text.type != CLASP_TEXT_NONE;
    case CLASP_TOWER_AUDIO:
        return c->audio.type != CLASP_AUDIO_TYPE_NONE;
    case CLASP_TOWER_SHARED:
        return true;
    default:
        return false;
    }
}

size_t clasp_model_input_elems(const clasp_model_config *c, clasp_tower t) {
    if (t == CLASP_TOWER_SHARED || !clasp_model_config_has(c, t)) return 0;
    if (t == CLASP_TOWER_IMAGE)
        return (size_t)c->image.channels * (size_t)c->image.size * (size_t)c->image.size;
    if (t == CLASP_TOWER_TEXT) return (size_t)c->text.context_length;
    return (size_t)c->audio.n_mels * (size_t)c->audio.n_frames;
}

/* Conv blocks + fc layers on a c x h x w input (gap: global average before the fc). */
static double cnn_macs(int c, int h, int w, int n_conv, const clasp_conv_block *conv, int n_fc,
                       const int *fc, bool gap, int D) {
    double macs = 0.0;
    for (int i = 0; i < n_conv; i++) {
        const clasp_conv_block *b = &conv[i];
        int oh = (h + 2 * b->padding - b->kernel) / b->stride + 1;
        int ow = (w + 2 * b->padding - b->kernel) / b->stride + 1;
        macs += (double)oh * ow * b->channels * c * b->kernel * b->kernel;
        c = b->channels;
        h = b->pool > 0 ? oh / b->pool : oh;
        w = b->pool > 0 ? ow / b->pool : ow;
    }
    double in = gap ? (double)c : (double)c * h * w;
    for (int j = 0; j < n_fc; j++) {
        macs += in * fc[j];
        in = fc[j];
    }
    return macs + in * D;
}

/* L pre-LN blocks of width C, mlp F on T tokens: qkv, proj, fc1, fc2, QK^T and AV. */
static double stack_macs(int L, int T, int C, int F) {
    return (double)L * ((double)T * C * (4.0 * C + 2.0 * F) + 2.0 * (double)T * T * C);
}

double clasp_model_forward_macs(const clasp_model_config *c, clasp_tower t) {
    int D = c->embed_dim;
    if (t == CLASP_TOWER_IMAGE && c->image.type == CLASP_IMAGE_CNN) {
        const clasp_image_tower_config *ic = &c->image;
        return cnn_macs(ic->channels, ic->size, ic->size, ic->n_conv, ic->conv, ic->n_fc, ic->fc,
                        false, D);
    }
    if (t == CLASP_TOWER_IMAGE && c->image.type == CLASP_IMAGE_VIT) {
        const clasp_image_tower_config *ic = &c->image;
        int G = ic->size / ic->patch_size, N = G * G;
        int T = N + (ic->pool == CLASP_POOL_CLS ? 1 : 0);
        return (double)N * ic->channels * ic->patch_size * ic->patch_size * ic->width +
               stack_macs(ic->layers, T, ic->width, ic->mlp_width) + (double)ic->width * D;
    }
    if (t == CLASP_TOWER_TEXT && c->text.type != CLASP_TEXT_NONE) {
        const clasp_text_tower_config *tc = &c->text;
        return stack_macs(tc->layers, tc->context_length, tc->width, tc->mlp_width) +
               (double)tc->width * D;
    }
    if (t == CLASP_TOWER_AUDIO && c->audio.type == CLASP_AUDIO_TYPE_CNN) {
        const clasp_audio_tower_config *ac = &c->audio;
        return cnn_macs(1, ac->n_mels, ac->n_frames, ac->n_conv, ac->conv, ac->n_fc, ac->fc, true,
                        D);
    }
    if (t == CLASP_TOWER_AUDIO && c->audio.type == CLASP_AUDIO_TYPE_AST) {
        const clasp_audio_tower_config *ac = &c->audio;
        int N = (ac->n_mels / ac->patch_freq) * (ac->n_frames / ac->patch_time);
        int T = N + (ac->pool == CLASP_POOL_CLS ? 1 : 0);
        return (double)N * ac->patch_freq * ac->patch_time * ac->width +
               stack_macs(ac->layers, T, ac->width, ac->mlp_width) + (double)ac->width * D;
    }
    return 0.0;
}
