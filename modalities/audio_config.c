/* audio_config.c: the audio front-end config <-> JSON (the "audio" object of a model config,
 * and the export's preprocess.json), so C and tools/clasp_torch.py preprocess identically. */
#include <string.h>

#include <cjson/cJSON.h>

#include "core/json.h"
#include "modalities/audio.h"

typedef struct name_val {
    const char *name;
    int value;
} name_val;

static const name_val pad_names[] = {{"repeat", CLASP_AUDIO_PAD_REPEAT},
                                     {"zero", CLASP_AUDIO_PAD_ZERO},
                                     {"repeatpad", CLASP_AUDIO_PAD_REPEATPAD},
                                     {NULL, 0}};
static const name_val crop_names[] = {
    {"head", CLASP_AUDIO_CROP_HEAD}, {"random", CLASP_AUDIO_CROP_RANDOM}, {NULL, 0}};
static const name_val window_names[] = {{"hann", CLASP_WINDOW_HANN},
                                        {"hann_symmetric", CLASP_WINDOW_HANN_SYM},
                                        {"hamming", CLASP_WINDOW_HAMMING},
                                        {"rect", CLASP_WINDOW_RECT},
                                        {NULL, 0}};
static const name_val padmode_names[] = {
    {"reflect", CLASP_PAD_REFLECT}, {"constant", CLASP_PAD_CONSTANT}, {NULL, 0}};
static const name_val scale_names[] = {
    {"htk", CLASP_MEL_HTK}, {"slaney", CLASP_MEL_SLANEY}, {NULL, 0}};
static const name_val norm_names[] = {
    {"none", CLASP_MEL_NORM_NONE}, {"slaney", CLASP_MEL_NORM_SLANEY}, {NULL, 0}};
static const name_val log_names[] = {
    {"ln", CLASP_MEL_LOG_LN}, {"db", CLASP_MEL_LOG_DB}, {"none", CLASP_MEL_LOG_NONE}, {NULL, 0}};
static const name_val nonfinite_names[] = {{"reject", 0}, {"zero", 1}, {NULL, 0}};

static const char *name_of(const name_val *t, int v) {
    for (; t->name; t++)
        if (t->value == v) return t->name;
    return "?";
}

/* Optional enum field given by name. */
static clasp_status enum_opt(const cJSON *obj, const char *name, const char *file,
                             const char *prefix, const name_val *t, int *inout) {
    char buf[32];
    CLASP_TRY(clasp_json_str_opt(obj, name, file, prefix, name_of(t, *inout), buf, sizeof buf));
    for (const name_val *p = t; p->name; p++) {
        if (strcmp(p->name, buf) == 0) {
            *inout = p->value;
            return CLASP_OK;
        }
    }
    char allowed[160] = "";
    for (const name_val *p = t; p->name; p++) {
        if (p != t) strncat(allowed, "|", sizeof allowed - strlen(allowed) - 1);
        strncat(allowed, p->name, sizeof allowed - strlen(allowed) - 1);
    }
    return clasp_set_error(CLASP_ERR_CONFIG, "%s: field '%s%s%s': '%s' is not one of %s",
                           file ? file : "<json>", prefix ? prefix : "",
                           prefix && *prefix ? "." : "", name, buf, allowed);
}

static clasp_status int_opt(const cJSON *obj, const char *name, const char *file,
                            const char *prefix, int lo, int hi, int *inout) {
    int64_t v;
    CLASP_TRY(clasp_json_int_opt(obj, name, file, prefix, lo, hi, *inout, &v));
    *inout = (int)v;
    return CLASP_OK;
}

clasp_status clasp_audio_config_from_json(const cJSON *obj, const char *file, const char *prefix,
                                          clasp_audio_config *out) {
    if (!obj || !out) return clasp_set_error(CLASP_ERR_ARG, "audio_config_from_json: NULL");
    clasp_audio_config c = clasp_audio_default_config();
    clasp_melspec_config *m = &c.mel;
    int e;
#define ENUM(field, table, dst)                                                                    \
    do {                                                                                           \
        e = (int)(dst);                                                                            \
        CLASP_TRY(enum_opt(obj, field, file, prefix, table, &e));                                  \
        (dst) = e;                                                                                 \
    } while (0)
    CLASP_TRY(int_opt(obj, "sample_rate", file, prefix, 1, 1000000, &m->sample_rate));
    CLASP_TRY(
        clasp_json_num_opt(obj, "clip_seconds", file, prefix, c.clip_seconds, &c.clip_seconds));
    ENUM("pad", pad_names, c.pad_mode);
    ENUM("crop", crop_names, c.crop_mode);
    CLASP_TRY(int_opt(obj, "resample_quality", file, prefix, 0, 4, &c.resample_quality));
    CLASP_TRY(clasp_json_num_opt(obj, "min_seconds", file, prefix, c.min_seconds, &c.min_seconds));
    e = c.nonfinite_to_zero ? 1 : 0;
    CLASP_TRY(enum_opt(obj, "nonfinite", file, prefix, nonfinite_names, &e));
    c.nonfinite_to_zero = e == 1;
    bool has_nfft = cJSON_GetObjectItemCaseSensitive(obj, "n_fft") != NULL;
    CLASP_TRY(int_opt(obj, "n_fft", file, prefix, 2, 65536, &m->n_fft));
    if (has_nfft) m->win_length = m->n_fft; /* as torch: win_length defaults to n_fft */
    CLASP_TRY(int_opt(obj, "win_length", file, prefix, 1, 65536, &m->win_length));
    CLASP_TRY(int_opt(obj, "hop_length", file, prefix, 1, 1 << 20, &m->hop_length));
    ENUM("window", window_names, m->window);
    CLASP_TRY(clasp_json_bool_opt(obj, "center", file, prefix, m->center, &m->center));
    ENUM("pad_mode", padmode_names, m->pad_mode);
    CLASP_TRY(int_opt(obj, "n_mels", file, prefix, 1, 4096, &m->n_mels));
    CLASP_TRY(clasp_json_num_opt(obj, "fmin", file, prefix, m->fmin, &m->fmin));
    if (m->sample_rate / 2.0 < m->fmax) m->fmax = m->sample_rate / 2.0; /* default: Nyquist */
    CLASP_TRY(clasp_json_num_opt(obj, "fmax", file, prefix, m->fmax, &m->fmax));
    ENUM("mel_scale", scale_names, m->mel_scale);
    ENUM("mel_norm", norm_names, m->mel_norm);
    CLASP_TRY(clasp_json_num_opt(obj, "power", file, prefix, m->power, &m->power));
    ENUM("log", log_names, m->log);
    CLASP_TRY(clasp_json_num_opt(obj, "log_floor", file, prefix, m->log_floor, &m->log_floor));
    CLASP_TRY(clasp_json_num_opt(obj, "norm_mean", file, prefix, m->norm_mean, &m->norm_mean));
    CLASP_TRY(clasp_json_num_opt(obj, "norm_std", file, prefix, m->norm_std, &m->norm_std));
#undef ENUM
    clasp_status s = clasp_audio_config_check(&c);
    if (s != CLASP_OK)
        return clasp_wrap_error(s, "%s: %s", file ? file : "<json>", prefix ? prefix : "audio");
    *out = c;
    return CLASP_OK;
}

cJSON *clasp_audio_config_to_json(const clasp_audio_config *c) {
    if (!c) return NULL;
    const clasp_melspec_config *m = &c->mel;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    bool ok = cJSON_AddNumberToObject(o, "sample_rate", m->sample_rate) &&
              cJSON_AddNumberToObject(o, "clip_seconds", c->clip_seconds) &&
              cJSON_AddStringToObject(o, "pad", name_of(pad_names, (int)c->pad_mode)) &&
              cJSON_AddStringToObject(o, "crop", name_of(crop_names, (int)c->crop_mode)) &&
              cJSON_AddNumberToObject(o, "resample_quality", c->resample_quality) &&
              cJSON_AddNumberToObject(o, "min_seconds", c->min_seconds) &&
              cJSON_AddStringToObject(o, "nonfinite", c->nonfinite_to_zero ? "zero" : "reject") &&
              cJSON_AddNumberToObject(o, "n_fft", m->n_fft) &&
              cJSON_AddNumberToObject(o, "win_length", m->win_length) &&
              cJSON_AddNumberToObject(o, "hop_length", m->hop_length) &&
              cJSON_AddStringToObject(o, "window", name_of(window_names, (int)m->window)) &&
              cJSON_AddBoolToObject(o, "center", m->center) &&
              cJSON_AddStringToObject(o, "pad_mode", name_of(padmode_names, (int)m->pad_mode)) &&
              cJSON_AddNumberToObject(o, "n_mels", m->n_mels) &&
              cJSON_AddNumberToObject(o, "fmin", m->fmin) &&
              cJSON_AddNumberToObject(o, "fmax", m->fmax > 0 ? m->fmax : m->sample_rate / 2.0) &&
              cJSON_AddStringToObject(o, "mel_scale", name_of(scale_names, (int)m->mel_scale)) &&
              cJSON_AddStringToObject(o, "mel_norm", name_of(norm_names, (int)m->mel_norm)) &&
              cJSON_AddNumberToObject(o, "power", m->power) &&
              cJSON_AddStringToObject(o, "log", name_of(log_names, (int)m->log)) &&
              cJSON_AddNumberToObject(o, "log_floor", m->log_floor) &&
              cJSON_AddNumberToObject(o, "norm_mean", m->norm_mean) &&
              cJSON_AddNumberToObject(o, "norm_std", m->norm_std);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
