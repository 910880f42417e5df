/* image.c: image decoding with a pixel limit checked before decoding, alpha compositing on
 * white, resize + center crop, and normalisation into float CHW (see image.h). The stb calls go
 * through the clasp__stb_* wrappers of stb_impl.c. */
#include "modalities/image.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/sizes.h"

clasp_image_config clasp_image_default_config(void) {
    return (clasp_image_config){
        .channels = 3,
        .size = 224,
        .mode = CLASP_IMAGE_RESIZE_SHORTEST,
        .mean = {0.48145466f, 0.4578275f, 0.40821073f},
        .std = {0.26862954f, 0.26130258f, 0.27577711f},
        .max_pixels = CLASP_IMAGE_DEFAULT_MAX_PIXELS,
    };
}

static const char *const resize_names[] = {"shortest", "squash", "longest"};

const char *clasp_image_resize_name(clasp_image_resize_mode mode) {
    return (unsigned)mode < 3u ? resize_names[mode] : NULL;
}

/* Index of `name` in names[n], or -1. */
static int name_index_(const char *const *names, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (name && !strcmp(name, names[i])) return i;
    return -1;
}

int clasp_image_resize_from_name(const char *name) {
    return name_index_(resize_names, 3, name);
}

static const char *const interp_names[] = {"catmullrom", "bicubic"};

const char *clasp_image_interp_name(clasp_image_interp interp) {
    return (unsigned)interp < 2u ? interp_names[interp] : NULL;
}

int clasp_image_interp_from_name(const char *name) {
    return name_index_(interp_names, 2, name);
}

clasp_status clasp_image_config_check(const clasp_image_config *cfg) {
    if (!cfg) return clasp_set_error(CLASP_ERR_ARG, "image config: NULL");
    if (cfg->channels != 1 && cfg->channels != 3)
        return clasp_set_error(CLASP_ERR_CONFIG, "image config: channels %d (expected 1 or 3)",
                               cfg->channels);
    if (cfg->size < 0 || cfg->size > 65536)
        return clasp_set_error(CLASP_ERR_CONFIG, "image config: size %d out of [0, 65536]",
                               cfg->size);
    if (!clasp_image_resize_name(cfg->mode))
        return clasp_set_error(CLASP_ERR_CONFIG, "image config: unknown resize mode %d",
                               (int)cfg->mode);
    if (!clasp_image_interp_name(cfg->interp))
        return clasp_set_error(CLASP_ERR_CONFIG, "image config: unknown interp %d",
                               (int)cfg->interp);
    for (int c = 0; c < cfg->channels; c++) {
        if (!isfinite(cfg->mean[c]))
            return clasp_set_error(CLASP_ERR_CONFIG, "image config: mean[%d] is not finite", c);
        if (!isfinite(cfg->std[c]) || !(cfg->std[c] > 0.0f))
            return clasp_set_error(CLASP_ERR_CONFIG, "image config: std[%d] = %g must be > 0", c,
                                   (double)cfg->std[c]);
    }
    if (cfg->max_pixels < 1)
        return clasp_set_error(CLASP_ERR_CONFIG, "image config: max_pixels must be >= 1");
    return CLASP_OK;
}

/* "FILE: field 'PREFIX.NAME': why" */
static clasp_status bad_field(const char *file, const char *prefix, const char *name,
                              const char *why) {
    return clasp_set_error(CLASP_ERR_CONFIG, "%s: field '%s%s%s': %s", file ? file : "config",
                           prefix ? prefix : "", prefix && *prefix ? "." : "", name, why);
}

/* An optional array of exactly n finite numbers (all > 0 when `positive`). */
static clasp_status float_array(const cJSON *obj, const char *name, const char *file,
                                const char *prefix, int n, bool positive, float *out) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!a) return CLASP_OK;
    char why[96];
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) {
        snprintf(why, sizeof why, "expected an array of %d numbers (one per channel)", n);
        return bad_field(file, prefix, name, why);
    }
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            return bad_field(file, prefix, name, "expected finite numbers");
        out[i] = (float)v->valuedouble;
        if (positive && !(out[i] > 0.0f)) return bad_field(file, prefix, name, "must be positive");
        i++;
    }
    return CLASP_OK;
}

clasp_status clasp_image_config_from_json(const cJSON *obj, const char *file, const char *prefix,
                                          clasp_image_config *out) {
    if (!obj || !out) return clasp_set_error(CLASP_ERR_ARG, "image config from json: NULL");
    clasp_image_config c = clasp_image_default_config();
    int64_t v;
    CLASP_TRY(clasp_json_int(obj, "channels", file, prefix, 1, 3, &v));
    if (v == 2) return bad_field(file, prefix, "channels", "expected 1 or 3");
    c.channels = (int)v;
    CLASP_TRY(clasp_json_int(obj, "size", file, prefix, 1, 65536, &v));
    c.size = (int)v;
    char mode[32];
    CLASP_TRY(clasp_json_str_opt(obj, "resize", file, prefix, "shortest", mode, sizeof mode));
    int m = clasp_image_resize_from_name(mode);
    if (m < 0)
        return bad_field(file, prefix, "resize",
                         "expected \"shortest\", \"longest\" or \"squash\"");
    c.mode = (clasp_image_resize_mode)m;
    CLASP_TRY(clasp_json_str_opt(obj, "interp", file, prefix, "catmullrom", mode, sizeof mode));
    m = clasp_image_interp_from_name(mode);
    if (m < 0) return bad_field(file, prefix, "interp", "expected \"catmullrom\" or \"bicubic\"");
    c.interp = (clasp_image_interp)m;
    CLASP_TRY(
        clasp_json_bool_opt(obj, "jpeg_dct_scaling", file, prefix, false, &c.jpeg_dct_scaling));
    for (int i = 0; i < 3; i++) {
        c.mean[i] = 0.0f;
        c.std[i] = 1.0f;
    }
    CLASP_TRY(float_array(obj, "mean", file, prefix, c.channels, false, c.mean));
    CLASP_TRY(float_array(obj, "std", file, prefix, c.channels, true, c.std));
    CLASP_TRY(clasp_json_int_opt(obj, "max_pixels", file, prefix, 1, INT64_MAX,
                                 (int64_t)c.max_pixels, &v));
    c.max_pixels = (uint64_t)v;
    clasp_status s = clasp_image_config_check(&c);
    if (s != CLASP_OK)
        return clasp_wrap_error(s, "%s%s%s", file ? file : "config", prefix ? ": " : "",
                                prefix ? prefix : "");
    *out = c;
    return CLASP_OK;
}

cJSON *clasp_image_config_to_json(const clasp_image_config *cfg) {
    if (!cfg || !clasp_image_resize_name(cfg->mode)) return NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    bool ok = cJSON_AddNumberToObject(o, "channels", cfg->channels) &&
              cJSON_AddNumberToObject(o, "size", cfg->size) &&
              cJSON_AddStringToObject(o, "resize", clasp_image_resize_name(cfg->mode));
    cJSON *m = ok ? cJSON_CreateFloatArray(cfg->mean, cfg->channels) : NULL;
    ok = m && cJSON_AddItemToObject(o, "mean", m);
    if (!ok) cJSON_Delete(m);
    cJSON *sd = ok ? cJSON_CreateFloatArray(cfg->std, cfg->channels) : NULL;
    ok = sd && cJSON_AddItemToObject(o, "std", sd);
    if (!ok) cJSON_Delete(sd);
    ok = ok && cJSON_AddNumberToObject(o, "max_pixels", (double)cfg->max_pixels);
    if (ok && cfg->interp != CLASP_IMAGE_INTERP_CATMULLROM)
        ok = cJSON_AddStringToObject(o, "interp", clasp_image_interp_name(cfg->interp)) != NULL;
    if (ok && cfg->jpeg_dct_scaling) ok = cJSON_AddTrueToObject(o, "jpeg_dct_scaling") != NULL;
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

size_t clasp_image_tensor_numel(const clasp_image_config *cfg) {
    if (!cfg || cfg->size <= 0 || cfg->channels <= 0) return 0;
    return (size_t)cfg->channels * (size_t)cfg->size * (size_t)cfg->size;
}

/* Composites interleaved (v..., a) pixels with `channels` colour channels on white, compacting
 * in place from channels + 1 to channels values per pixel (writes never overtake reads). */
static void composite_on_white(uint8_t *p, size_t n_pixels, int channels) {
    const int in_c = channels + 1;
    for (size_t i = 0; i < n_pixels; i++) {
        const uint8_t *src = p + i * (size_t)in_c;
        unsigned a = src[channels];
        uint8_t tmp[3];
        for (int c = 0; c < channels; c++)
            tmp[c] = (uint8_t)((src[c] * a + 255u * (255u - a) + 127u) / 255u);
        memcpy(p + i * (size_t)channels, tmp, (size_t)channels);
    }
}

/* stb's PNG header reader refuses images above 2^30 decoded bytes on its own, and
 * stbi_info_from_memory then reports the last format it tried ("unknown image type"), losing
 * the reason. So when stbi_info fails on a PNG, read the width and height from the IHDR chunk
 * (signature, then length 13 and "IHDR", then two big-endian uint32) and report the pixel
 * limit if they exceed it. Only used to name the error; never to decode. */
static int png_too_large(const void *data, size_t n, uint64_t max_pixels, int *w, int *h) {
    static const uint8_t sig[16] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
                                    0,    0,   0,   13,  'I',  'H',  'D',  'R'};
    const uint8_t *b = data;
    if (n < 24 || memcmp(b, sig, 16) != 0) return 0;
    uint32_t pw = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
    uint32_t ph = (uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23];
    if (pw == 0 || ph == 0 || pw > INT_MAX || ph > INT_MAX) return 0;
    if ((uint64_t)pw * (uint64_t)ph <= max_pixels) return 0;
    *w = (int)pw;
    *h = (int)ph;
    return 1;
}

/* stb_image's PNM reader overflows a signed int on huge header numbers and overruns its
 * buffer on 16-bit files (maxval > 255) whose data is short (found by tests/fuzz_tar.c). So a
 * binary PNM header (P5/P6, the ones stb reads) is checked here first: three decimal numbers of
 * at most 9 digits, comments allowed, and maxval in 1..255. Returns CLASP_OK for non-PNM data. */
static clasp_status pnm_precheck(const uint8_t *d, size_t n) {
    if (n < 2 || d[0] != 'P' || (d[1] != '5' && d[1] != '6')) return CLASP_OK;
    size_t i = 2;
    long v[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        for (;;) { /* whitespace and # comments */
            while (i < n && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r' ||
                             d[i] == '\v' || d[i] == '\f'))
                i++;
            if (i < n && d[i] == '#') {
                while (i < n && d[i] != '\n' && d[i] != '\r') i++;
                continue;
            }
            break;
        }
        int digits = 0;
        while (i < n && d[i] >= '0' && d[i] <= '9') {
            if (++digits > 9)
                return clasp_set_error(CLASP_ERR_FORMAT, "image: PNM header number too long");
            v[k] = v[k] * 10 + (d[i] - '0');
            i++;
        }
        if (digits == 0) return clasp_set_error(CLASP_ERR_FORMAT, "image: malformed PNM header");
    }
    if (v[2] < 1 || v[2] > 255)
        return clasp_set_error(CLASP_ERR_UNSUPPORTED,
                               "image: PNM maxval %ld (only 8-bit PNM, maxval 1..255, is read)",
                               v[2]);
    return CLASP_OK;
}

/* stb_image's PNG reader grows its IDAT buffer by each chunk's declared length before reading
 * the chunk, so a 60-byte file declaring a 2 GiB IDAT makes it allocate 2 GiB (found by
 * tests/fuzz/fuzz_tar.c). So the chunk list is walked first: every chunk up to IEND must fit in
 * the bytes that remain. Returns CLASP_OK for non-PNG data. */
static clasp_status png_chunks_check(const uint8_t *d, size_t n) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n < 8 || memcmp(d, sig, 8) != 0) return CLASP_OK;
    size_t pos = 8;
    while (pos + 12 <= n) {
        const uint32_t len = (uint32_t)d[pos] << 24 | (uint32_t)d[pos + 1] << 16 |
                             (uint32_t)d[pos + 2] << 8 | d[pos + 3];
        char type[5] = {0};
        for (int i = 0; i < 4; i++) {
            const uint8_t c = d[pos + 4 + (size_t)i];
            type[i] = (char)((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ? c : '?');
        }
        if (len > n - pos - 12)
            return clasp_set_error(CLASP_ERR_FORMAT,
                                   "image: PNG chunk '%s' at byte %zu declares %lu bytes, only %zu "
                                   "remain (truncated or corrupt PNG)",
                                   type, pos, (unsigned long)len, n - pos - 12);
        if (!memcmp(type, "IEND", 4)) return CLASP_OK;
        pos += 12 + (size_t)len;
    }
    return clasp_set_error(CLASP_ERR_FORMAT, "image: PNG of %zu bytes ends before its IEND chunk",
                           n);
}

/* stb_image reads zeros past the end of its buffer, so a truncated TGA or BMP decodes to a
 * picture with a black remainder, and a 22-byte TGA header declaring 40246 x 24 pixels decoded
 * to a whole black image (found by tests/fuzz/fuzz_image.c). So the bytes an image declares
 * are checked against the bytes there are: exactly for uncompressed TGA and BMP (their pixel
 * data has a known size), and for every format by a compression floor: no image format here
 * packs more than 4096 pixels into a byte (deflate's limit is about 1032:1, LZW's 2730:1). */
static clasp_status declared_size_check(const uint8_t *d, size_t n, int w, int h) {
    const uint64_t px = (uint64_t)w * (uint64_t)h;
    if (px > (uint64_t)n * 4096u)
        return clasp_set_error(CLASP_ERR_FORMAT,
                               "image: %dx%d pixels cannot come from %zu bytes (truncated or "
                               "corrupt)",
                               w, h, n);
    uint64_t need = 0;
    const char *kind = NULL;
    if (n >= 18 && d[1] <= 1 && (d[2] == 1 || d[2] == 2 || d[2] == 3)) { /* TGA, uncompressed */
        const uint64_t cmap = d[1] ? (uint64_t)(d[5] | d[6] << 8) * ((d[7] + 7u) / 8u) : 0;
        const unsigned bits = d[16];
        need = 18u + d[0] + cmap + px * ((bits + 7u) / 8u);
        kind = "TGA";
    } else if (n >= 34 && d[0] == 'B' && d[1] == 'M') { /* BMP, BI_RGB or BI_BITFIELDS */
        const uint32_t off =
            (uint32_t)d[10] | (uint32_t)d[11] << 8 | (uint32_t)d[12] << 16 | (uint32_t)d[13] << 24;
        const unsigned bits = d[28] | d[29] << 8;
        const uint32_t comp =
            (uint32_t)d[30] | (uint32_t)d[31] << 8 | (uint32_t)d[32] << 16 | (uint32_t)d[33] << 24;
        if (comp == 0 || comp == 3) {
            const uint64_t stride = ((uint64_t)w * bits + 31u) / 32u * 4u;
            need = (uint64_t)off + stride * (uint64_t)h;
            kind = "BMP";
        }
    }
    if (kind && need > n)
        return clasp_set_error(CLASP_ERR_FORMAT,
                               "image: %s of %dx%d pixels needs %llu bytes, the file has %zu "
                               "(truncated)",
                               kind, w, h, (unsigned long long)need, n);
    return CLASP_OK;
}

clasp_status clasp_image_decode(const void *data, size_t n, int channels, uint64_t max_pixels,
                                clasp_image *out) {
    if (!out) return clasp_set_error(CLASP_ERR_ARG, "image decode: NULL output");
    memset(out, 0, sizeof *out);
    if (!data && n > 0) return clasp_set_error(CLASP_ERR_ARG, "image decode: NULL data");
    if (channels != 1 && channels != 3)
        return clasp_set_error(CLASP_ERR_ARG, "image decode: channels %d (expected 1 or 3)",
                               channels);
    if (n == 0) return clasp_set_error(CLASP_ERR_FORMAT, "image: empty buffer (0 bytes)");
    if (n > (size_t)INT_MAX)
        return clasp_set_error(CLASP_ERR_OVERFLOW, "image: %zu bytes is above stb_image's 2 GiB",
                               n);
    if (clasp__is_jpeg(data, n)) return clasp__jpeg_decode(data, n, channels, max_pixels, out);
    CLASP_TRY(pnm_precheck(data, n));
    CLASP_TRY(png_chunks_check(data, n));
    int w = 0, h = 0, comp = 0;
    if (!clasp__stb_info(data, n, &w, &h, &comp)) {
        const char *why = clasp__stb_failure_reason();
        if (strcmp(why, "too large") == 0)
            return clasp_set_error(CLASP_ERR_OVERFLOW,
                                   "image: header declares an image too large to decode "
                                   "(stb_image: %s; limit %llu pixels)",
                                   why, (unsigned long long)max_pixels);
        if (png_too_large(data, n, max_pixels, &w, &h))
            return clasp_set_error(CLASP_ERR_OVERFLOW,
                                   "image: %dx%d = %llu pixels is above the limit of %llu pixels",
                                   w, h, (unsigned long long)w * (unsigned long long)h,
                                   (unsigned long long)max_pixels);
        return clasp_set_error(CLASP_ERR_FORMAT, "image: cannot read header of %zu bytes (%s)", n,
                               why);
    }
    if (w <= 0 || h <= 0)
        return clasp_set_error(CLASP_ERR_FORMAT, "image: header declares %dx%d pixels", w, h);
    uint64_t n_px = (uint64_t)w * (uint64_t)h;
    if (n_px > max_pixels)
        return clasp_set_error(CLASP_ERR_OVERFLOW,
                               "image: %dx%d = %llu pixels is above the limit of %llu pixels", w, h,
                               (unsigned long long)n_px, (unsigned long long)max_pixels);
    CLASP_TRY(declared_size_check(data, n, w, h));
    const int alpha = (comp == 2 || comp == 4);
    const int req = alpha ? channels + 1 : channels;
    int dw = 0, dh = 0, dc = 0;
    uint8_t *p = clasp__stb_load(data, n, &dw, &dh, &dc, req);
    if (!p)
        return clasp_set_error(CLASP_ERR_FORMAT,
                               "image: cannot decode %dx%d image of %zu bytes (%s)", w, h, n,
                               clasp__stb_failure_reason());
    if (dw <= 0 || dh <= 0 || (uint64_t)dw * (uint64_t)dh > max_pixels) {
        clasp__stb_free(p);
        return clasp_set_error(CLASP_ERR_OVERFLOW, "image: decoded %dx%d pixels above the limit",
                               dw, dh);
    }
    if (alpha) composite_on_white(p, (size_t)dw * (size_t)dh, channels);
    *out = (clasp_image){.pixels = p, .w = dw, .h = dh, .channels = channels};
    return CLASP_OK;
}

clasp_status clasp_image_decode_scaled(const void *data, size_t n, int channels,
                                       uint64_t max_pixels, int need, int region,
                                       clasp_image *out) {
    if (need > 0 && region > 0 && data && out && (channels == 1 || channels == 3) &&
        n <= (size_t)INT_MAX && clasp__is_jpeg(data, n)) {
        memset(out, 0, sizeof *out);
        return clasp__jpeg_decode_scaled(data, n, channels, max_pixels, need, region, out);
    }
    return clasp_image_decode(data, n, channels, max_pixels, out);
}

int clasp_image_jpeg_size(const void *data, size_t n, int *w, int *h) {
    if (!data || !w || !h || !clasp__is_jpeg(data, n)) return 0;
    return clasp__jpeg_size(data, n, w, h);
}

int clasp_image_resize_region_px(const clasp_image_config *cfg, int w, int h) {
    if (!cfg || cfg->size <= 0 || w <= 0 || h <= 0) return 0;
    if (cfg->mode == CLASP_IMAGE_RESIZE_LONGEST) return w > h ? w : h;
    return w < h ? w : h;
}

void clasp_image_free(clasp_image *img) {
    if (!img) return;
    clasp__stb_free(img->pixels);
    memset(img, 0, sizeof *img);
}

clasp_status clasp_image_resample_region(const clasp_image *img, double x0, double y0, double x1,
                                         double y1, uint8_t *dst, int dw, int dh) {
    if (!img || !img->pixels || !dst)
        return clasp_set_error(CLASP_ERR_ARG, "image resample: NULL argument");
    if (dw <= 0 || dh <= 0 || img->w <= 0 || img->h <= 0)
        return clasp_set_error(CLASP_ERR_ARG, "image resample: bad size %dx%d", dw, dh);
    if (!(x0 >= 0.0 && y0 >= 0.0 && x1 <= img->w && y1 <= img->h && x1 > x0 && y1 > y0))
        return clasp_set_error(CLASP_ERR_ARG,
                               "image resample: region [%g,%g)x[%g,%g) outside the %dx%d image", x0,
                               x1, y0, y1, img->w, img->h);
    const int C = img->channels;
    if (x1 - x0 == (double)dw && y1 - y0 == (double)dh && x0 == floor(x0) && y0 == floor(y0)) {
        /* Same size at an integer offset: a copy, so untouched sizes stay bit-exact. */
        const size_t row = (size_t)dw * (size_t)C;
        for (int y = 0; y < dh; y++) {
            const uint8_t *src =
                img->pixels + (((size_t)y0 + (size_t)y) * (size_t)img->w + (size_t)x0) * (size_t)C;
            memcpy(dst + (size_t)y * row, src, row);
        }
        return CLASP_OK;
    }
    if (!clasp__stb_resize_region(img->pixels, img->w, img->h, C, dst, dw, dh, (float)(x0 / img->w),
                                  (float)(y0 / img->h), (float)(x1 / img->w), (float)(y1 / img->h)))
        return clasp_set_error(CLASP_ERR_NOMEM,
                               "image resample: stb_image_resize failed for "
                               "%dx%d -> %dx%d",
                               img->w, img->h, dw, dh);
    return CLASP_OK;
}

void clasp_image_normalize(const uint8_t *pixels, int w, int h, int channels, const float *mean,
                           const float *std, float *out) {
    const size_t plane = (size_t)w * (size_t)h;
    for (int c = 0; c < channels; c++) {
        const float m = mean[c], s = std[c];
        float *o = out + (size_t)c * plane;
        const uint8_t *p = pixels + c;
        /* ref: ../shared/bench/ref_clip_fmnist.py, (x.astype(float32) / 255.0 - MEAN) / STD:
         * divide, subtract, divide, each rounded to float32. Do not fold into a multiply. */
        for (size_t i = 0; i < plane; i++) o[i] = ((float)p[i * (size_t)channels] / 255.0f - m) / s;
    }
}

/* "resize shorter side to S, then center crop S x S": the resized size and the crop's offset. */
static void shortest_geometry_(int w, int h, int S, int *nw, int *nh, int *left, int *top) {
    /* ref: torchvision Resize(int): long side = int(S * long / short); CenterCrop offsets
     * round((new - S) / 2) with Python's half-to-even rounding. */
    if (w <= h) {
        *nw = S;
        *nh = (int)((int64_t)S * h / w);
    } else {
        *nh = S;
        *nw = (int)((int64_t)S * w / h);
    }
    *left = (int)nearbyint((*nw - S) / 2.0);
    *top = (int)nearbyint((*nh - S) / 2.0);
}

/* The source region that "resize shorter side to S, then center crop S x S" samples. */
void clasp_image_center_crop_region(int w, int h, int S, double *x0, double *y0, double *x1,
                                    double *y1) {
    int nw, nh, li, ti;
    shortest_geometry_(w, h, S, &nw, &nh, &li, &ti);
    double left = li, top = ti;
    /* Map the crop [left, left + S) of the resized image back to source pixels. */
    double sx = (double)w / nw, sy = (double)h / nh;
    *x0 = left * sx;
    *x1 = (left + S) * sx;
    *y0 = top * sy;
    *y1 = (top + S) * sy;
    if (*x1 > w) *x1 = w;
    if (*y1 > h) *y1 = h;
}

void clasp_image_longest_geometry(int w, int h, int S, int *nw, int *nh, int *left, int *top) {
    /* ref: open_clip transform.py ResizeKeepRatio.get_params with longest=1:
     * ratio = max(h / S, w / S); new size = round(side / ratio) (Python rounds half to even,
     * as nearbyint in the default rounding mode); then center_crop_or_pad(fill=0): pad left
     * (S - new) // 2, right (S - new + 1) // 2. */
    const double ratio = fmax((double)h / S, (double)w / S);
    *nw = (int)nearbyint(w / ratio);
    *nh = (int)nearbyint(h / ratio);
    if (*nw < 1) *nw = 1;
    if (*nh < 1) *nh = 1;
    if (*nw > S) *nw = S;
    if (*nh > S) *nh = S;
    *left = (S - *nw) / 2;
    *top = (S - *nh) / 2;
}

static int full_w_(const clasp_image *img) {
    return img->full_w > 0 ? img->full_w : img->w;
}

static int full_h_(const clasp_image *img) {
    return img->full_h > 0 ? img->full_h : img->h;
}

/* The whole image resized to dst (dh, dw, C) with `interp`. */
static clasp_status scale_whole_(const clasp_image *img, clasp_image_interp interp, uint8_t *dst,
                                 int dw, int dh) {
    if (interp == CLASP_IMAGE_INTERP_CATMULLROM)
        return clasp_image_resample_region(img, 0, 0, img->w, img->h, dst, dw, dh);
    const clasp__pil_axis ax = {0.0f, (float)img->w, dw, 0, 0, img->w};
    const clasp__pil_axis ay = {0.0f, (float)img->h, dh, 0, 0, img->h};
    return clasp__pil_resample(img, &ax, &ay, dst, dw, dh);
}

/* "shortest": the S x S center crop of the image resized (shorter side S), geometry on the
 * header's size. */
static clasp_status shortest_(const clasp_image *img, clasp_image_interp interp, int S,
                              uint8_t *dst) {
    const int W = full_w_(img), H = full_h_(img);
    if (interp == CLASP_IMAGE_INTERP_CATMULLROM) {
        double x0, y0, x1, y1;
        clasp_image_center_crop_region(W, H, S, &x0, &y0, &x1, &y1);
        if (W != img->w || H != img->h) { /* a scaled decode: the same part of the picture */
            const double fx = (double)img->w / W, fy = (double)img->h / H;
            x0 *= fx;
            x1 = fmin(x1 * fx, img->w);
            y0 *= fy;
            y1 = fmin(y1 * fy, img->h);
        }
        return clasp_image_resample_region(img, x0, y0, x1, y1, dst, S, S);
    }
    int nw, nh, left, top;
    shortest_geometry_(W, H, S, &nw, &nh, &left, &top);
    const clasp__pil_axis ax = {0.0f, (float)img->w, nw, left, 0, img->w};
    const clasp__pil_axis ay = {0.0f, (float)img->h, nh, top, 0, img->h};
    return clasp__pil_resample(img, &ax, &ay, dst, S, S);
}

clasp_status clasp_image_resize(const clasp_image *img, clasp_image_resize_mode mode, int S,
                                uint8_t *dst) {
    return clasp_image_resize_interp(img, mode, CLASP_IMAGE_INTERP_CATMULLROM, S, dst);
}

clasp_status clasp_image_resize_interp(const clasp_image *img, clasp_image_resize_mode mode,
                                       clasp_image_interp interp, int S, uint8_t *dst) {
    if (!img || !img->pixels || !dst || S <= 0 || !clasp_image_interp_name(interp))
        return clasp_set_error(CLASP_ERR_ARG, "image resize: bad argument");
    const int C = img->channels;
    if (mode == CLASP_IMAGE_RESIZE_LONGEST) {
        int nw, nh, left, top;
        clasp_image_longest_geometry(full_w_(img), full_h_(img), S, &nw, &nh, &left, &top);
        size_t nbytes;
        if (!clasp_size_mul3((size_t)nw, (size_t)nh, (size_t)C, &nbytes))
            return clasp_set_error(CLASP_ERR_OVERFLOW, "image resize: size %d overflows", S);
        uint8_t *tmp = malloc(nbytes);
        if (!tmp) return clasp_set_error(CLASP_ERR_NOMEM, "image resize: %zu bytes", nbytes);
        clasp_status s = scale_whole_(img, interp, tmp, nw, nh);
        if (s == CLASP_OK) {
            const size_t row = (size_t)S * (size_t)C, nrow = (size_t)nw * (size_t)C;
            memset(dst, 0, row * (size_t)S);
            for (int y = 0; y < nh; y++)
                memcpy(dst + (size_t)(top + y) * row + (size_t)left * (size_t)C,
                       tmp + (size_t)y * nrow, nrow);
        }
        free(tmp);
        return s;
    }
    if (mode == CLASP_IMAGE_RESIZE_SHORTEST) return shortest_(img, interp, S, dst);
    return scale_whole_(img, interp, dst, S, S);
}

clasp_status clasp_image_crop_resize(const clasp_image *img, clasp_image_interp interp, int cx,
                                     int cy, int cw, int ch, uint8_t *dst, int dw, int dh) {
    if (!img || !img->pixels || !dst || !clasp_image_interp_name(interp))
        return clasp_set_error(CLASP_ERR_ARG, "image crop: bad argument");
    const int W = full_w_(img), H = full_h_(img);
    if (cx < 0 || cy < 0 || cw <= 0 || ch <= 0 || cx > W - cw || cy > H - ch)
        return clasp_set_error(CLASP_ERR_ARG, "image crop: box %d,%d %dx%d outside the %dx%d image",
                               cx, cy, cw, ch, W, H);
    const double fx = (double)img->w / W, fy = (double)img->h / H;
    const double x0 = cx * fx, y0 = cy * fy;
    const double x1 = fmin((cx + cw) * fx, img->w), y1 = fmin((cy + ch) * fy, img->h);
    if (interp == CLASP_IMAGE_INTERP_CATMULLROM)
        return clasp_image_resample_region(img, x0, y0, x1, y1, dst, dw, dh);
    /* PIL's img.crop(box).resize(): coordinates from the box's first pixel, nothing outside
     * it read. For a scaled decode, the box's fractional edges stay in the span. */
    const int lx = (int)floor(x0), ly = (int)floor(y0);
    const int hx = (int)fmin(ceil(x1), img->w), hy = (int)fmin(ceil(y1), img->h);
    const clasp__pil_axis ax = {(float)(x0 - lx), (float)(x1 - lx), dw, 0, lx, hx};
    const clasp__pil_axis ay = {(float)(y0 - ly), (float)(y1 - ly), dh, 0, ly, hy};
    return clasp__pil_resample(img, &ax, &ay, dst, dw, dh);
}

clasp_status clasp_image_preprocess(const clasp_image *img, const clasp_image_config *cfg,
                                    float *out) {
    if (!img || !img->pixels || !out)
        return clasp_set_error(CLASP_ERR_ARG, "image preprocess: NULL argument");
    CLASP_TRY(clasp_image_config_check(cfg));
    if (img->channels != cfg->channels)
        return clasp_set_error(CLASP_ERR_ARG,
                               "image preprocess: image has %d channels, config wants %d",
                               img->channels, cfg->channels);
    const int S = cfg->size;
    if (S == 0 || (img->w == S && img->h == S)) {
        clasp_image_normalize(img->pixels, img->w, img->h, img->channels, cfg->mean, cfg->std, out);
        return CLASP_OK;
    }
    size_t nbytes;
    if (!clasp_size_mul3((size_t)S, (size_t)S, (size_t)img->channels, &nbytes))
        return clasp_set_error(CLASP_ERR_OVERFLOW, "image preprocess: size %d overflows", S);
    uint8_t *buf = malloc(nbytes);
    if (!buf) return clasp_set_error(CLASP_ERR_NOMEM, "image preprocess: %zu bytes", nbytes);
    clasp_status s = clasp_image_resize_interp(img, cfg->mode, cfg->interp, S, buf);
    if (s == CLASP_OK) clasp_image_normalize(buf, S, S, img->channels, cfg->mean, cfg->std, out);
    free(buf);
    return s;
}

clasp_status clasp_image_load(const void *data, size_t n, const clasp_image_config *cfg,
                              float *out) {
    CLASP_TRY(clasp_image_config_check(cfg));
    if (cfg->size <= 0)
        return clasp_set_error(CLASP_ERR_ARG, "image load: config size must be > 0 (the output "
                                              "shape must be known)");
    clasp_image img;
    int w = 0, h = 0;
    if (cfg->jpeg_dct_scaling && clasp_image_jpeg_size(data, n, &w, &h))
        CLASP_TRY(clasp_image_decode_scaled(data, n, cfg->channels, cfg->max_pixels, cfg->size,
                                            clasp_image_resize_region_px(cfg, w, h), &img));
    else
        CLASP_TRY(clasp_image_decode(data, n, cfg->channels, cfg->max_pixels, &img));
    clasp_status s = clasp_image_preprocess(&img, cfg, out);
    clasp_image_free(&img);
    return s;
}

clasp_status clasp_image_encode_png(const uint8_t *pixels, int w, int h, int channels,
                                    uint8_t **out, size_t *n) {
    if (!pixels || !out || !n) return clasp_set_error(CLASP_ERR_ARG, "image encode: NULL argument");
    *out = NULL;
    *n = 0;
    if (w <= 0 || h <= 0 || channels < 1 || channels > 4 || w > 65535 || h > 65535)
        return clasp_set_error(CLASP_ERR_ARG, "image encode: bad shape %dx%dx%d", w, h, channels);
    size_t nbytes;
    if (!clasp_size_mul3((size_t)w, (size_t)h, (size_t)channels, &nbytes) || nbytes > INT_MAX / 2)
        return clasp_set_error(CLASP_ERR_OVERFLOW, "image encode: %dx%dx%d too large", w, h,
                               channels);
    if (!clasp__stb_write_png(pixels, w, h, channels, out, n))
        return clasp_set_error(CLASP_ERR_NOMEM,
                               "image encode: stb_image_write PNG failed for "
                               "%dx%dx%d",
                               w, h, channels);
    return CLASP_OK;
}
