/* config.c: model config parsing, validation and serialisation (configs/NAME.json).
 *
 * Every error names the file and the field path, e.g.
 * "configs/x.json: field 'text.heads': 5 does not divide width 128". */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "encoders/model.h"

#define SIZE_MAX_DIM 65536 /* sanity bound for every size in a config */

const char *clasp_tower_name(clasp_tower t) {
    switch (t) {
    case CLASP_TOWER_IMAGE:
        return "image";
    case CLASP_TOWER_TEXT:
        return "text";
    case CLASP_TOWER_AUDIO:
        return "audio";
    case CLASP_TOWER_SHARED:
        return "shared";
    default:
        return "?";
    }
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

/* Reads an optional float array of exactly n entries. */
static clasp_status get_float_array(const cJSON *o, const char *name, const char *file,
                                    const char *prefix, int n, float def, float *out) {
    for (int i = 0; i < n; i++) out[i] = def;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!a) return CLASP_OK;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) {
        char why[96];
        snprintf(why, sizeof why, "expected an array of %d numbers (one per channel)", n);
        return bad(file, prefix, name, why);
    }
    int i = 0;
    for (const cJSON *it = a->child; it; it = it->next, i++) {
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
            return bad(file, prefix, name, "expected finite numbers");
        out[i] = (float)it->valuedouble;
    }
    return CLASP_OK;
}

static clasp_status get_act(const cJSON *o, const char *file, const char *prefix, bool *tanh_) {
    char s[16];
    CLASP_TRY(clasp_json_str_opt(o, "act", file, prefix, "gelu", s, sizeof s));
    if (!strcmp(s, "gelu"))
        *tanh_ = false;
    else if (!strcmp(s, "gelu_tanh"))
        *tanh_ = true;
    else
        return bad(file, prefix, "act", "expected \"gelu\" or \"gelu_tanh\"");
    return CLASP_OK;
}

static clasp_status check_heads(const char *file, const char *prefix, int width, int heads) {
    if (width % heads != 0) {
        char why[96];
        snprintf(why, sizeof why, "%d does not divide width %d", heads, width);
        return bad(file, prefix, "heads", why);
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

static clasp_status parse_cnn(const cJSON *o, const char *file, clasp_image_tower_config *ic) {
    const char *P = "image";
    const cJSON *conv = cJSON_GetObjectItemCaseSensitive(o, "conv");
    if (!conv) return bad(file, P, "conv", "missing");
    if (!cJSON_IsArray(conv)) return bad(file, P, "conv", "expected an array of conv blocks");
    int n = cJSON_GetArraySize(conv);
    if (n > CLASP_MAX_CONV_BLOCKS) return bad(file, P, "conv", "too many conv blocks (max 8)");
    ic->n_conv = n;
    int h = ic->size, c = ic->channels, i = 0;
    for (const cJSON *b = conv->child; b; b = b->next, i++) {
        char pre[48];
        snprintf(pre, sizeof pre, "image.conv[%d]", i);
        if (!cJSON_IsObject(b))
            return clasp_set_error(CLASP_ERR_CONFIG, "%s: field '%s': expected an object", file,
                                   pre);
        static const char *const keys[] = {"channels", "kernel", "stride", "padding", "pool", NULL};
        CLASP_TRY(check_keys(b, keys, file, pre));
        clasp_conv_block *cb = &ic->conv[i];
        CLASP_TRY(get_int(b, "channels", file, pre, 1, SIZE_MAX_DIM, &cb->channels));
        CLASP_TRY(get_int(b, "kernel", file, pre, 1, 64, &cb->kernel));
        CLASP_TRY(get_int_opt(b, "stride", file, pre, 1, 64, 1, &cb->stride));
        CLASP_TRY(get_int_opt(b, "padding", file, pre, 0, 64, 0, &cb->padding));
        CLASP_TRY(get_int_opt(b, "pool", file, pre, 0, 64, 0, &cb->pool));
        int oh = h + 2 * cb->padding - cb->kernel;
        if (oh < 0) return bad(file, pre, "kernel", "larger than the padded input");
        oh = oh / cb->stride + 1;
        if (cb->pool > 0) oh /= cb->pool;
        if (oh < 1) return bad(file, pre, "pool", "pooling leaves no pixels");
        h = oh;
        c = cb->channels;
    }
    size_t flat = (size_t)c * (size_t)h * (size_t)h;
    if (flat > (size_t)1 << 24) return bad(file, P, "conv", "flattened feature map too large");
    const cJSON *fc = cJSON_GetObjectItemCaseSensitive(o, "fc");
    ic->n_fc = 0;
    if (fc) {
        if (!cJSON_IsArray(fc)) return bad(file, P, "fc", "expected an array of widths");
        if (cJSON_GetArraySize(fc) > CLASP_MAX_FC_LAYERS)
            return bad(file, P, "fc", "too many fc layers (max 8)");
        for (const cJSON *it = fc->child; it; it = it->next) {
            double v = cJSON_IsNumber(it) ? it->valuedouble : -1.0;
            if (!(v >= 1.0 && v <= SIZE_MAX_DIM && v == floor(v)))
                return bad(file, P, "fc", "expected positive integer widths");
            ic->fc[ic->n_fc++] = (int)v;
        }
    }
    return CLASP_OK;
}

static clasp_status parse_vit(const cJSON *o, const char *file, clasp_image_tower_config *ic) {
    const char *P = "image";
    CLASP_TRY(get_int(o, "patch_size", file, P, 1, SIZE_MAX_DIM, &ic->patch_size));
    CLASP_TRY(get_int(o, "width", file, P, 1, SIZE_MAX_DIM, &ic->width));
    CLASP_TRY(get_int(o, "layers", file, P, 1, 1024, &ic->layers));
    CLASP_TRY(get_int(o, "heads", file, P, 1, SIZE_MAX_DIM, &ic->heads));
    CLASP_TRY(get_int(o, "mlp_width", file, P, 1, SIZE_MAX_DIM, &ic->mlp_width));
    CLASP_TRY(check_heads(file, P, ic->width, ic->heads));
    if (ic->size % ic->patch_size != 0) return bad(file, P, "patch_size", "does not divide size");
    char pool[16];
    CLASP_TRY(clasp_json_str_opt(o, "pool", file, P, "cls", pool, sizeof pool));
    if (!strcmp(pool, "cls"))
        ic->pool = CLASP_POOL_CLS;
    else if (!strcmp(pool, "mean"))
        ic->pool = CLASP_POOL_MEAN;
    else
        return bad(file, P, "pool", "expected \"cls\" or \"mean\"");
    CLASP_TRY(get_float_opt(o, "ln_eps", file, P, 1e-5, &ic->ln_eps));
    if (!(ic->ln_eps > 0.0f)) return bad(file, P, "ln_eps", "must be positive");
    return get_act(o, file, P, &ic->gelu_tanh);
}

static clasp_status parse_image(const cJSON *o, const char *file, int embed_dim,
                                clasp_image_tower_config *ic) {
    static const char *const keys[] = {"type",       "channels",   "size",   "conv",  "fc",
                                       "patch_size", "width",      "layers", "heads", "mlp_width",
                                       "pool",       "ln_eps",     "act",    "mean",  "std",
                                       "resize",     "output_dim", NULL};
    const char *P = "image";
    CLASP_TRY(check_keys(o, keys, file, P));
    char type[16];
    CLASP_TRY(clasp_json_str(o, "type", file, P, type, sizeof type));
    CLASP_TRY(get_int(o, "channels", file, P, 1, CLASP_MAX_IMAGE_CHANNELS, &ic->channels));
    CLASP_TRY(get_int(o, "size", file, P, 1, SIZE_MAX_DIM, &ic->size));
    CLASP_TRY(check_output_dim(o, file, P, embed_dim));
    CLASP_TRY(get_float_array(o, "mean", file, P, ic->channels, 0.0f, ic->mean));
    CLASP_TRY(get_float_array(o, "std", file, P, ic->channels, 1.0f, ic->std));
    for (int c = 0; c < ic->channels; c++)
        if (!(ic->std[c] > 0.0f)) return bad(file, P, "std", "must be positive");
    char rs[16];
    CLASP_TRY(clasp_json_str_opt(o, "resize", file, P, "shortest", rs, sizeof rs));
    if (!strcmp(rs, "shortest"))
        ic->resize = CLASP_RESIZE_SHORTEST;
    else if (!strcmp(rs, "longest"))
        ic->resize = CLASP_RESIZE_LONGEST;
    else if (!strcmp(rs, "squash"))
        ic->resize = CLASP_RESIZE_SQUASH;
    else
        return bad(file, P, "resize", "expected \"shortest\", \"longest\" or \"squash\"");
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

static clasp_status parse_tokenizer(const cJSON *o, const char *file, clasp_tokenizer_config *tk) {
    const char *P = "text.tokenizer";
    static const char *const keys[] = {"type", "bos", "eos", "pad", "file", NULL};
    CLASP_TRY(check_keys(o, keys, file, P));
    CLASP_TRY(clasp_json_str(o, "type", file, P, tk->type, sizeof tk->type));
    if (strcmp(tk->type, "bytes") && strcmp(tk->type, "bpe"))
        return bad(file, P, "type", "expected \"bytes\" or \"bpe\"");
    CLASP_TRY(get_int_opt(o, "bos", file, P, -1, 1 << 24, -1, &tk->bos));
    CLASP_TRY(get_int_opt(o, "eos", file, P, -1, 1 << 24, -1, &tk->eos));
    CLASP_TRY(get_int_opt(o, "pad", file, P, -1, 1 << 24, -1, &tk->pad));
    CLASP_TRY(clasp_json_str_opt(o, "file", file, P, "", tk->file, sizeof tk->file));
    return CLASP_OK;
}

static clasp_status parse_text(const cJSON *o, const char *file, int embed_dim,
                               clasp_text_tower_config *tc) {
    static const char *const keys[] = {"type",   "vocab_size", "context_length", "width",
                                       "layers", "heads",      "mlp_width",      "causal",
                                       "pool",   "eos_id",     "pad_id",         "ln_eps",
                                       "act",    "tokenizer",  "output_dim",     NULL};
    const char *P = "text";
    CLASP_TRY(check_keys(o, keys, file, P));
    char type[16];
    CLASP_TRY(clasp_json_str(o, "type", file, P, type, sizeof type));
    if (strcmp(type, "transformer"))
        return bad(file, P, "type", "unknown text tower type (expected \"transformer\")");
    tc->type = CLASP_TEXT_TRANSFORMER;
    tc->tokenizer.bos = tc->tokenizer.eos = tc->tokenizer.pad = -1;
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(o, "tokenizer");
    if (tk) {
        const cJSON *tko;
        CLASP_TRY(clasp_json_obj(o, "tokenizer", file, P, &tko));
        CLASP_TRY(parse_tokenizer(tko, file, &tc->tokenizer));
    }
    CLASP_TRY(get_int(o, "vocab_size", file, P, 1, 1 << 24, &tc->vocab_size));
    CLASP_TRY(get_int(o, "context_length", file, P, 1, SIZE_MAX_DIM, &tc->context_length));
    CLASP_TRY(get_int(o, "width", file, P, 1, SIZE_MAX_DIM, &tc->width));
    CLASP_TRY(get_int(o, "layers", file, P, 0, 1024, &tc->layers));
    CLASP_TRY(get_int(o, "heads", file, P, 1, SIZE_MAX_DIM, &tc->heads));
    CLASP_TRY(get_int(o, "mlp_width", file, P, 1, SIZE_MAX_DIM, &tc->mlp_width));
    CLASP_TRY(check_heads(file, P, tc->width, tc->heads));
    CLASP_TRY(check_output_dim(o, file, P, embed_dim));
    CLASP_TRY(clasp_json_bool_opt(o, "causal", file, P, true, &tc->causal));
    char pool[16];
    CLASP_TRY(clasp_json_str_opt(o, "pool", file, P, "eos", pool, sizeof pool));
    if (!strcmp(pool, "eos"))
        tc->pool = CLASP_POOL_EOS;
    else if (!strcmp(pool, "mean"))
        tc->pool = CLASP_POOL_MEAN;
    else
        return bad(file, P, "pool", "expected \"eos\" or \"mean\"");
    int V = tc->vocab_size;
    CLASP_TRY(get_int_opt(o, "eos_id", file, P, -1, V - 1, tc->tokenizer.eos, &tc->eos_id));
    CLASP_TRY(get_int_opt(o, "pad_id", file, P, -1, V - 1, tc->tokenizer.pad, &tc->pad_id));
    if (tc->eos_id >= V) return bad(file, P, "tokenizer.eos", "not below vocab_size");
    if (tc->pad_id >= V) return bad(file, P, "tokenizer.pad", "not below vocab_size");
    if (tc->tokenizer.bos >= V) return bad(file, P, "tokenizer.bos", "not below vocab_size");
    if (tc->pool == CLASP_POOL_EOS && tc->eos_id < 0)
        return bad(file, P, "eos_id", "missing (pool \"eos\" needs eos_id or tokenizer.eos)");
    CLASP_TRY(get_float_opt(o, "ln_eps", file, P, 1e-5, &tc->ln_eps));
    if (!(tc->ln_eps > 0.0f)) return bad(file, P, "ln_eps", "must be positive");
    return get_act(o, file, P, &tc->gelu_tanh);
}

clasp_status clasp_model_config_parse(const cJSON *root, const char *what,
                                      clasp_model_config *cfg) {
    const char *file = what ? what : "<config>";
    memset(cfg, 0, sizeof *cfg);
    cfg->text.eos_id = cfg->text.pad_id = -1;
    if (!cJSON_IsObject(root))
        return clasp_set_error(CLASP_ERR_CONFIG, "%s: expected a JSON object", file);
    static const char *const keys[] = {"embed_dim",       "init_logit_scale",
                                       "max_logit_scale", "init_logit_bias",
                                       "image",           "text",
                                       "audio",           NULL};
    CLASP_TRY(check_keys(root, keys, file, ""));
    CLASP_TRY(get_int(root, "embed_dim", file, "", 1, SIZE_MAX_DIM, &cfg->embed_dim));
    CLASP_TRY(clasp_json_num_opt(root, "init_logit_scale", file, "", log(1.0 / 0.07),
                                 &cfg->init_logit_scale));
    CLASP_TRY(
        clasp_json_num_opt(root, "max_logit_scale", file, "", log(100.0), &cfg->max_logit_scale));
    if (cfg->init_logit_scale > cfg->max_logit_scale)
        return bad(file, "", "init_logit_scale", "exceeds max_logit_scale");
    cfg->has_logit_bias = cJSON_GetObjectItemCaseSensitive(root, "init_logit_bias") != NULL;
    CLASP_TRY(clasp_json_num_opt(root, "init_logit_bias", file, "", 0.0, &cfg->init_logit_bias));
    if (cJSON_GetObjectItemCaseSensitive(root, "audio"))
        return clasp_set_error(CLASP_ERR_UNSUPPORTED,
                               "%s: field 'audio': audio towers are not implemented yet", file);
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
    if (towers == 0)
        return clasp_set_error(CLASP_ERR_CONFIG, "%s: no tower: need an 'image' or 'text' object",
                               file);
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

/* A float as the double of its shortest decimal form: prints short ("1e-05", not
 * "9.9999997473787516e-06") and parses back to the same float. */
static double nice_double(float v) {
    for (int digits = 6; digits <= 9; digits++) {
        char buf[40];
        snprintf(buf, sizeof buf, "%.*g", digits, (double)v);
        double d;
        if (sscanf(buf, "%lf", &d) == 1 && (float)d == v) return d;
    }
    return (double)v;
}

static bool add_float(cJSON *o, const char *name, float v) {
    return cJSON_AddNumberToObject(o, name, nice_double(v)) != NULL;
}

static bool add_float_array(cJSON *o, const char *name, const float *v, int n) {
    cJSON *a = cJSON_AddArrayToObject(o, name);
    if (!a) return false;
    for (int i = 0; i < n; i++) {
        cJSON *x = cJSON_CreateNumber(nice_double(v[i]));
        if (!x || !cJSON_AddItemToArray(a, x)) return false;
    }
    return true;
}

static bool image_to_json(cJSON *root, const clasp_image_tower_config *ic) {
    cJSON *o = cJSON_AddObjectToObject(root, "image");
    if (!o) return false;
    bool ok = cJSON_AddStringToObject(o, "type", ic->type == CLASP_IMAGE_CNN ? "cnn" : "vit") &&
              cJSON_AddNumberToObject(o, "channels", ic->channels) &&
              cJSON_AddNumberToObject(o, "size", ic->size);
    if (ok && ic->type == CLASP_IMAGE_CNN) {
        cJSON *conv = cJSON_AddArrayToObject(o, "conv");
        ok = conv != NULL;
        for (int i = 0; ok && i < ic->n_conv; i++) {
            cJSON *b = cJSON_CreateObject();
            ok = b && cJSON_AddItemToArray(conv, b);
            ok = ok && cJSON_AddNumberToObject(b, "channels", ic->conv[i].channels) &&
                 cJSON_AddNumberToObject(b, "kernel", ic->conv[i].kernel) &&
                 cJSON_AddNumberToObject(b, "stride", ic->conv[i].stride) &&
                 cJSON_AddNumberToObject(b, "padding", ic->conv[i].padding) &&
                 cJSON_AddNumberToObject(b, "pool", ic->conv[i].pool);
        }
        cJSON *fc = ok ? cJSON_AddArrayToObject(o, "fc") : NULL;
        ok = fc != NULL;
        for (int i = 0; ok && i < ic->n_fc; i++) {
            cJSON *x = cJSON_CreateNumber(ic->fc[i]);
            ok = x && cJSON_AddItemToArray(fc, x);
        }
    } else if (ok) {
        ok = cJSON_AddNumberToObject(o, "patch_size", ic->patch_size) &&
             cJSON_AddNumberToObject(o, "width", ic->width) &&
             cJSON_AddNumberToObject(o, "layers", ic->layers) &&
             cJSON_AddNumberToObject(o, "heads", ic->heads) &&
             cJSON_AddNumberToObject(o, "mlp_width", ic->mlp_width) &&
             cJSON_AddStringToObject(o, "pool", pool_name(ic->pool)) &&
             add_float(o, "ln_eps", ic->ln_eps) &&
             cJSON_AddStringToObject(o, "act", ic->gelu_tanh ? "gelu_tanh" : "gelu");
    }
    static const char *const rs[] = {"shortest", "longest", "squash"};
    return ok && add_float_array(o, "mean", ic->mean, ic->channels) &&
           add_float_array(o, "std", ic->std, ic->channels) &&
           cJSON_AddStringToObject(o, "resize", rs[ic->resize]);
}

static bool text_to_json(cJSON *root, const clasp_text_tower_config *tc) {
    cJSON *o = cJSON_AddObjectToObject(root, "text");
    if (!o) return false;
    bool ok = cJSON_AddStringToObject(o, "type", "transformer") &&
              cJSON_AddNumberToObject(o, "vocab_size", tc->vocab_size) &&
              cJSON_AddNumberToObject(o, "context_length", tc->context_length) &&
              cJSON_AddNumberToObject(o, "width", tc->width) &&
              cJSON_AddNumberToObject(o, "layers", tc->layers) &&
              cJSON_AddNumberToObject(o, "heads", tc->heads) &&
              cJSON_AddNumberToObject(o, "mlp_width", tc->mlp_width) &&
              cJSON_AddBoolToObject(o, "causal", tc->causal) &&
              cJSON_AddStringToObject(o, "pool", pool_name(tc->pool)) &&
              cJSON_AddNumberToObject(o, "eos_id", tc->eos_id) &&
              cJSON_AddNumberToObject(o, "pad_id", tc->pad_id) &&
              add_float(o, "ln_eps", tc->ln_eps) &&
              cJSON_AddStringToObject(o, "act", tc->gelu_tanh ? "gelu_tanh" : "gelu");
    if (ok && tc->tokenizer.type[0]) {
        cJSON *t = cJSON_AddObjectToObject(o, "tokenizer");
        ok = t && cJSON_AddStringToObject(t, "type", tc->tokenizer.type) &&
             cJSON_AddNumberToObject(t, "bos", tc->tokenizer.bos) &&
             cJSON_AddNumberToObject(t, "eos", tc->tokenizer.eos) &&
             cJSON_AddNumberToObject(t, "pad", tc->tokenizer.pad) &&
             (!tc->tokenizer.file[0] || cJSON_AddStringToObject(t, "file", tc->tokenizer.file));
    }
    return ok;
}

clasp_status clasp_model_config_to_json(const clasp_model_config *cfg, cJSON **out) {
    *out = NULL;
    cJSON *root = cJSON_CreateObject();
    bool ok = root && cJSON_AddNumberToObject(root, "embed_dim", cfg->embed_dim) &&
              cJSON_AddNumberToObject(root, "init_logit_scale", cfg->init_logit_scale) &&
              cJSON_AddNumberToObject(root, "max_logit_scale", cfg->max_logit_scale) &&
              (!cfg->has_logit_bias ||
               cJSON_AddNumberToObject(root, "init_logit_bias", cfg->init_logit_bias));
    if (ok && cfg->image.type != CLASP_IMAGE_NONE) ok = image_to_json(root, &cfg->image);
    if (ok && cfg->text.type != CLASP_TEXT_NONE) ok = text_to_json(root, &cfg->text);
    if (!ok) {
        cJSON_Delete(root);
        return clasp_set_error(CLASP_ERR_NOMEM, "model config: cannot build JSON");
    }
    *out = root;
    return CLASP_OK;
}
