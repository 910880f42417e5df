/* augment.c: deterministic image augmentation (random-resized-crop, flip, colour jitter,
 * grayscale) and caption choice, every draw from the keyed counter RNG (augment.h). */
#include "modalities/augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/json.h"
#include "core/sizes.h"

clasp_image_augment_config clasp_image_augment_default_config(void) {
    return (clasp_image_augment_config){
        .enabled = true,
        .random_resized_crop = true,
        .scale_min = 0.08f,
        .scale_max = 1.0f,
        .ratio_min = 3.0f / 4.0f,
        .ratio_max = 4.0f / 3.0f,
        .hflip = 0.5f,
    };
}

clasp_status clasp_image_augment_config_check(const clasp_image_augment_config *c) {
    if (!c) return clasp_set_error(CLASP_ERR_ARG, "augment config: NULL");
    if (!(c->scale_min > 0.0f && c->scale_min <= c->scale_max && c->scale_max <= 1.0f))
        return clasp_set_error(CLASP_ERR_CONFIG, "augment config: scale [%g, %g] not within (0, 1]",
                               (double)c->scale_min, (double)c->scale_max);
    if (!(c->ratio_min > 0.0f && c->ratio_min <= c->ratio_max && isfinite(c->ratio_max)))
        return clasp_set_error(CLASP_ERR_CONFIG, "augment config: ratio [%g, %g] invalid",
                               (double)c->ratio_min, (double)c->ratio_max);
    const float p[2] = {c->hflip, c->grayscale};
    const char *pn[2] = {"hflip", "grayscale"};
    for (int i = 0; i < 2; i++)
        if (!(p[i] >= 0.0f && p[i] <= 1.0f))
            return clasp_set_error(CLASP_ERR_CONFIG, "augment config: %s = %g not in [0, 1]", pn[i],
                                   (double)p[i]);
    const float j[3] = {c->brightness, c->contrast, c->saturation};
    const char *jn[3] = {"brightness", "contrast", "saturation"};
    for (int i = 0; i < 3; i++)
        if (!(j[i] >= 0.0f && isfinite(j[i])))
            return clasp_set_error(CLASP_ERR_CONFIG, "augment config: %s = %g must be >= 0", jn[i],
                                   (double)j[i]);
    return CLASP_OK;
}

static clasp_status range_field(const cJSON *obj, const char *name, const char *file,
                                const char *prefix, float *lo, float *hi) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!a) return CLASP_OK;
    const cJSON *x = cJSON_GetArrayItem(a, 0), *y = cJSON_GetArrayItem(a, 1);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 2 || !cJSON_IsNumber(x) || !cJSON_IsNumber(y))
        return clasp_set_error(CLASP_ERR_CONFIG, "%s: field '%s%s%s': expected [min, max]",
                               file ? file : "config", prefix ? prefix : "", prefix ? "." : "",
                               name);
    *lo = (float)x->valuedouble;
    *hi = (float)y->valuedouble;
    return CLASP_OK;
}

static clasp_status float_field(const cJSON *obj, const char *name, const char *file,
                                const char *prefix, float *v) {
    double d;
    CLASP_TRY(clasp_json_num_opt(obj, name, file, prefix, (double)*v, &d));
    *v = (float)d;
    return CLASP_OK;
}

clasp_status clasp_image_augment_config_from_json(const cJSON *obj, const char *file,
                                                  const char *prefix,
                                                  clasp_image_augment_config *out) {
    if (!out) return clasp_set_error(CLASP_ERR_ARG, "augment config from json: NULL output");
    clasp_image_augment_config c = clasp_image_augment_default_config();
    if (obj) {
        CLASP_TRY(clasp_json_bool_opt(obj, "enabled", file, prefix, c.enabled, &c.enabled));
        CLASP_TRY(clasp_json_bool_opt(obj, "random_resized_crop", file, prefix,
                                      c.random_resized_crop, &c.random_resized_crop));
        CLASP_TRY(range_field(obj, "scale", file, prefix, &c.scale_min, &c.scale_max));
        CLASP_TRY(range_field(obj, "ratio", file, prefix, &c.ratio_min, &c.ratio_max));
        CLASP_TRY(float_field(obj, "hflip", file, prefix, &c.hflip));
        CLASP_TRY(float_field(obj, "brightness", file, prefix, &c.brightness));
        CLASP_TRY(float_field(obj, "contrast", file, prefix, &c.contrast));
        CLASP_TRY(float_field(obj, "saturation", file, prefix, &c.saturation));
        CLASP_TRY(float_field(obj, "grayscale", file, prefix, &c.grayscale));
    }
    clasp_status s = clasp_image_augment_config_check(&c);
    if (s != CLASP_OK)
        return clasp_wrap_error(s, "%s%s%s", file ? file : "config", prefix ? ": " : "",
                                prefix ? prefix : "");
    *out = c;
    return CLASP_OK;
}

/* Uniform in [lo, hi) from 53 random bits. */
static double uniform(clasp_rng *r, double lo, double hi) {
    return lo + (hi - lo) * clasp_rng_uniform_f64(r);
}

void clasp_image_random_resized_crop(int w, int h, float scale_min, float scale_max,
                                     float ratio_min, float ratio_max, clasp_rng *rng, int *x,
                                     int *y, int *cw, int *ch) {
    /* ref: torchvision.transforms.RandomResizedCrop.get_params */
    const double area = (double)w * (double)h;
    const double lr0 = log((double)ratio_min), lr1 = log((double)ratio_max);
    for (int attempt = 0; attempt < 10; attempt++) {
        const double target = area * uniform(rng, (double)scale_min, (double)scale_max);
        const double ar = exp(uniform(rng, lr0, lr1));
        const int tw = (int)nearbyint(sqrt(target * ar));
        const int th = (int)nearbyint(sqrt(target / ar));
        if (tw > 0 && tw <= w && th > 0 && th <= h) {
            *y = (int)clasp_rng_below(rng, (uint64_t)(h - th + 1));
            *x = (int)clasp_rng_below(rng, (uint64_t)(w - tw + 1));
            *cw = tw;
            *ch = th;
            return;
        }
    }
    /* Fallback: central crop with the aspect ratio clamped to the range. */
    const double in_ratio = (double)w / (double)h;
    int tw = w, th = h;
    if (in_ratio < (double)ratio_min) {
        th = (int)nearbyint(w / (double)ratio_min);
    } else if (in_ratio > (double)ratio_max) {
        tw = (int)nearbyint(h * (double)ratio_max);
    }
    if (tw < 1) tw = 1;
    if (th < 1) th = 1;
    if (tw > w) tw = w;
    if (th > h) th = h;
    *cw = tw;
    *ch = th;
    *y = (h - th) / 2;
    *x = (w - tw) / 2;
}

static float clamp01(float v) {
    return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
}

/* Gray value of pixel i of CHW planes x (C = 1 or 3). */
static float gray_at(const float *x, size_t plane, int C, size_t i) {
    if (C == 1) return x[i];
    return 0.299f * x[i] + 0.587f * x[plane + i] + 0.114f * x[2 * plane + i];
}

static void adjust_brightness(float *x, size_t n, float f) {
    for (size_t i = 0; i < n; i++) x[i] = clamp01(x[i] * f);
}

static void adjust_contrast(float *x, size_t plane, int C, float f) {
    double sum = 0.0;
    for (size_t i = 0; i < plane; i++) sum += (double)gray_at(x, plane, C, i);
    const float m = (float)(sum / (double)plane);
    for (size_t i = 0; i < plane * (size_t)C; i++) x[i] = clamp01(f * x[i] + (1.0f - f) * m);
}

static void adjust_saturation(float *x, size_t plane, int C, float f) {
    if (C != 3) return;
    for (size_t i = 0; i < plane; i++) {
        const float g = gray_at(x, plane, C, i);
        for (int c = 0; c < 3; c++) {
            float *v = &x[(size_t)c * plane + i];
            *v = clamp01(f * *v + (1.0f - f) * g);
        }
    }
}

/* A jitter factor ~ U(max(0, 1 - v), 1 + v); the draw happens even when v is 0. */
static float jitter_factor(clasp_rng *r, float v) {
    const double u = clasp_rng_uniform_f64(r);
    if (v == 0.0f) return 1.0f;
    const double lo = fmax(0.0, 1.0 - (double)v), hi = 1.0 + (double)v;
    return (float)(lo + (hi - lo) * u);
}

/* Every random choice of one sample, for a W x H (header) image. */
typedef struct draws_ {
    bool flip, gray;
    const int *order;
    float factor[3];
    int cx, cy, cw, ch; /* the random crop (when on) */
} draws_;

static void draw_(const clasp_image_augment_config *aug, uint64_t seed, uint64_t epoch,
                  const char *key, int W, int H, draws_ *d) {
    clasp_rng r;
    clasp_rng_init(&r, seed, CLASP_RNG_AUGMENT, epoch, clasp_hash_str(key, 0));
    /* Fixed draw order (augment.h): flip, jitter order, factors, grayscale, crop. */
    d->flip = clasp_rng_uniform_f64(&r) < (double)aug->hflip;
    static const int orders[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                     {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    d->order = orders[clasp_rng_below(&r, 6)];
    d->factor[0] = jitter_factor(&r, aug->brightness);
    d->factor[1] = jitter_factor(&r, aug->contrast);
    d->factor[2] = jitter_factor(&r, aug->saturation);
    d->gray = clasp_rng_uniform_f64(&r) < (double)aug->grayscale;
    d->cx = d->cy = 0;
    d->cw = W;
    d->ch = H;
    if (aug->random_resized_crop)
        clasp_image_random_resized_crop(W, H, aug->scale_min, aug->scale_max, aug->ratio_min,
                                        aug->ratio_max, &r, &d->cx, &d->cy, &d->cw, &d->ch);
}

int clasp_image_augment_region_px(const clasp_image_config *pre,
                                  const clasp_image_augment_config *aug, uint64_t seed,
                                  uint64_t epoch, const char *key, int w, int h) {
    if (!pre || w <= 0 || h <= 0) return 0;
    if (!aug || !aug->enabled || !aug->random_resized_crop || !key)
        return clasp_image_resize_region_px(pre, w, h);
    if (pre->size <= 0) return 0;
    draws_ d;
    draw_(aug, seed, epoch, key, w, h, &d);
    return d.cw < d.ch ? d.cw : d.ch;
}

clasp_status clasp_image_augment(const clasp_image *img, const clasp_image_config *pre,
                                 const clasp_image_augment_config *aug, uint64_t seed,
                                 uint64_t epoch, const char *key, float *out) {
    if (!aug || !aug->enabled) return clasp_image_preprocess(img, pre, out);
    if (!img || !img->pixels || !out || !key)
        return clasp_set_error(CLASP_ERR_ARG, "image augment: NULL argument");
    CLASP_TRY(clasp_image_config_check(pre));
    CLASP_TRY(clasp_image_augment_config_check(aug));
    const int C = img->channels;
    if (C != pre->channels)
        return clasp_set_error(CLASP_ERR_ARG, "image augment: image has %d channels, config %d", C,
                               pre->channels);
    if (aug->random_resized_crop && pre->size <= 0)
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "image augment: random_resized_crop needs image_size > 0");

    /* The crop is drawn on the header's size, so a DCT-scaled decode (image.h full_w) sees the
     * same draws and the same part of the picture. */
    draws_ d;
    draw_(aug, seed, epoch, key, img->full_w > 0 ? img->full_w : img->w,
          img->full_h > 0 ? img->full_h : img->h, &d);
    const bool flip = d.flip, gray = d.gray;
    const int *order = d.order;
    const float *factor = d.factor;

    int S_w, S_h;
    if (aug->random_resized_crop) {
        S_w = S_h = pre->size;
    } else if (pre->size > 0) {
        S_w = S_h = pre->size;
    } else {
        S_w = img->w;
        S_h = img->h;
    }
    size_t nbytes;
    if (!clasp_size_mul3((size_t)S_w, (size_t)S_h, (size_t)C, &nbytes))
        return clasp_set_error(CLASP_ERR_OVERFLOW, "image augment: size overflows");
    uint8_t *buf = malloc(nbytes);
    if (!buf) return clasp_set_error(CLASP_ERR_NOMEM, "image augment: %zu bytes", nbytes);
    /* the random crop's region, else the preprocessing's resize (pad included) */
    clasp_status s =
        aug->random_resized_crop || pre->size <= 0
            ? clasp_image_crop_resize(img, pre->interp, d.cx, d.cy, d.cw, d.ch, buf, S_w, S_h)
            : clasp_image_resize_interp(img, pre->mode, pre->interp, S_w, buf);
    if (s != CLASP_OK) {
        free(buf);
        return s;
    }
    /* To [0, 1] CHW, flipping columns on the way; the same float ops as clasp_image_normalize. */
    const size_t plane = (size_t)S_w * (size_t)S_h;
    for (int c = 0; c < C; c++)
        for (int yy = 0; yy < S_h; yy++)
            for (int xx = 0; xx < S_w; xx++) {
                const int sx = flip ? S_w - 1 - xx : xx;
                const uint8_t p =
                    buf[((size_t)yy * (size_t)S_w + (size_t)sx) * (size_t)C + (size_t)c];
                out[(size_t)c * plane + (size_t)yy * (size_t)S_w + (size_t)xx] = (float)p / 255.0f;
            }
    free(buf);
    for (int k = 0; k < 3; k++) {
        const int op = order[k];
        if (factor[op] == 1.0f) continue;
        if (op == 0) adjust_brightness(out, plane * (size_t)C, factor[0]);
        if (op == 1) adjust_contrast(out, plane, C, factor[1]);
        if (op == 2) adjust_saturation(out, plane, C, factor[2]);
    }
    if (gray && C == 3) {
        for (size_t i = 0; i < plane; i++) {
            const float g = gray_at(out, plane, C, i);
            out[i] = out[plane + i] = out[2 * plane + i] = g;
        }
    }
    for (int c = 0; c < C; c++) {
        const float m = pre->mean[c], sd = pre->std[c];
        float *o = out + (size_t)c * plane;
        for (size_t i = 0; i < plane; i++) o[i] = (o[i] - m) / sd;
    }
    return CLASP_OK;
}

uint64_t clasp_augment_view_seed(uint64_t seed, int view) {
    if (view == 0) return seed;
    return clasp_splitmix64(seed ^ clasp_splitmix64(0x56494557ull + (uint64_t)view));
}

size_t clasp_caption_choose(uint64_t seed, uint64_t epoch, const char *key, size_t n_captions) {
    if (n_captions <= 1) return 0;
    clasp_rng r;
    clasp_rng_init(&r, seed, CLASP_RNG_CAPTION, epoch, clasp_hash_str(key ? key : "", 0));
    return (size_t)clasp_rng_below(&r, (uint64_t)n_captions);
}
