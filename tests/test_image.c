/* test_image.c: image decoding, pixel limit, alpha compositing, resize/crop, normalisation
 * (bit-exact against numpy for Fashion-MNIST) and corrupt inputs (modalities/image.h). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image_write.h> /* JPEG fixtures: declarations only, from the system libstb */

#include "core/safetensors.h"
#include "modalities/image.h"
#include "fixtures.h"

/* A w x h x c test pattern. */
static uint8_t *pattern(int w, int h, int c, unsigned seed) {
    uint8_t *p = malloc((size_t)w * h * c);
    cr_assert(p);
    for (int i = 0; i < w * h * c; i++)
        p[i] = (uint8_t)((i * 7u + seed * 13u + (unsigned)(i / 5)) & 255u);
    return p;
}

static void encode_png(const uint8_t *px, int w, int h, int c, uint8_t **out, size_t *n) {
    cr_assert_eq(clasp_image_encode_png(px, w, h, c, out, n), CLASP_OK, "%s", clasp_last_error());
}

Test(image, png_roundtrip_gray_and_rgb) {
    for (int c = 1; c <= 3; c += 2) {
        uint8_t *px = pattern(17, 11, c, 1), *png;
        size_t n;
        encode_png(px, 17, 11, c, &png, &n);
        clasp_image img;
        cr_assert_eq(clasp_image_decode(png, n, c, CLASP_IMAGE_DEFAULT_MAX_PIXELS, &img), CLASP_OK,
                     "%s", clasp_last_error());
        cr_assert_eq(img.w, 17);
        cr_assert_eq(img.h, 11);
        cr_assert_eq(img.channels, c);
        cr_assert(memcmp(img.pixels, px, (size_t)17 * 11 * c) == 0, "PNG is lossless");
        clasp_image_free(&img);
        cr_assert_null(img.pixels);
        clasp_image_free(&img); /* twice is fine */
        free(px);
        free(png);
    }
}

Test(image, gray_to_rgb_and_rgb_to_gray) {
    uint8_t px[6] = {10, 20, 30, 200, 100, 0}, *png;
    size_t n;
    encode_png(px, 2, 1, 3, &png, &n);
    clasp_image img;
    cr_assert_eq(clasp_image_decode(png, n, 1, 1000, &img), CLASP_OK);
    /* stb's luma: (77 R + 150 G + 29 B) >> 8 */
    cr_assert_eq(img.pixels[0], (10 * 77 + 20 * 150 + 30 * 29) >> 8);
    cr_assert_eq(img.pixels[1], (200 * 77 + 100 * 150 + 0 * 29) >> 8);
    clasp_image_free(&img);
    free(png);
    uint8_t g[2] = {7, 250};
    encode_png(g, 2, 1, 1, &png, &n);
    cr_assert_eq(clasp_image_decode(png, n, 3, 1000, &img), CLASP_OK);
    const uint8_t want[6] = {7, 7, 7, 250, 250, 250};
    cr_assert(memcmp(img.pixels, want, 6) == 0);
    clasp_image_free(&img);
    free(png);
}

Test(image, alpha_composited_on_white) {
    /* RGBA: opaque red, fully transparent black, half transparent blue. */
    uint8_t px[12] = {255, 0, 0, 255, 0, 0, 0, 0, 0, 0, 255, 128}, *png;
    size_t n;
    encode_png(px, 3, 1, 4, &png, &n);
    clasp_image img;
    cr_assert_eq(clasp_image_decode(png, n, 3, 1000, &img), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(img.channels, 3);
    const uint8_t a = 128;
    const uint8_t half_white = (uint8_t)((255u * (255u - a) + 127u) / 255u);
    const uint8_t blue = (uint8_t)((255u * a + 255u * (255u - a) + 127u) / 255u);
    const uint8_t want[9] = {255, 0, 0, 255, 255, 255, half_white, half_white, blue};
    for (int i = 0; i < 9; i++)
        cr_assert_eq(img.pixels[i], want[i], "byte %d: %d vs %d", i, img.pixels[i], want[i]);
    clasp_image_free(&img);
    /* Gray output: the transparent pixel is white too. */
    cr_assert_eq(clasp_image_decode(png, n, 1, 1000, &img), CLASP_OK);
    cr_assert_eq(img.pixels[1], 255);
    clasp_image_free(&img);
    free(png);
}

Test(image, fmnist_normalisation_bit_exact_with_numpy) {
    clasp_safetensors *st = fx_ref_open("image/fmnist_norm.safetensors");
    cr_assert(st, "%s", clasp_last_error());
    const clasp_st_tensor *t = clasp_st_find(st, "normalized");
    cr_assert(t && t->numel == 256);
    const float *table = clasp_st_f32(st, t);
    cr_assert(table);
    /* A 28x28 image holding every byte value, through PNG and the full preprocessing. */
    uint8_t px[28 * 28];
    for (int i = 0; i < 28 * 28; i++) px[i] = (uint8_t)((i * 37) & 255);
    uint8_t *png;
    size_t n;
    encode_png(px, 28, 28, 1, &png, &n);
    clasp_image_config cfg = clasp_image_default_config();
    cfg.channels = 1;
    cfg.size = 28;
    cfg.mean[0] = 0.2860f;
    cfg.std[0] = 0.3530f;
    float out[28 * 28];
    cr_assert_eq(clasp_image_load(png, n, &cfg, out), CLASP_OK, "%s", clasp_last_error());
    for (int i = 0; i < 28 * 28; i++)
        cr_assert(memcmp(&out[i], &table[px[i]], sizeof(float)) == 0,
                  "pixel %d value %d: got %.9g want %.9g", i, px[i], (double)out[i],
                  (double)table[px[i]]);
    free(png);
    clasp_st_free(st);
}

Test(image, center_crop_and_exact_resize) {
    /* A 40x20 RGB image: shorter side 20 -> 10, so 20x10, then the center 10x10. */
    const int w = 40, h = 20;
    uint8_t *px = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) px[(y * w + x) * 3 + c] = (uint8_t)(x < 20 ? 50 : 200);
    clasp_image img = {px, w, h, 3, 0, 0};
    clasp_image_config cfg = clasp_image_default_config();
    cfg.size = 10;
    for (int c = 0; c < 3; c++) {
        cfg.mean[c] = 0.0f;
        cfg.std[c] = 1.0f;
    }
    float out[3 * 10 * 10];
    cr_assert_eq(clasp_image_preprocess(&img, &cfg, out), CLASP_OK, "%s", clasp_last_error());
    /* The crop spans the source columns 10..30: left half 50, right half 200. */
    for (int c = 0; c < 3; c++) {
        cr_assert_float_eq(out[c * 100 + 5 * 10 + 0], 50.0f / 255.0f, 1e-6);
        cr_assert_float_eq(out[c * 100 + 5 * 10 + 9], 200.0f / 255.0f, 1e-6);
    }
    cfg.mode = CLASP_IMAGE_RESIZE_SQUASH;
    cr_assert_eq(clasp_image_preprocess(&img, &cfg, out), CLASP_OK);
    cr_assert_float_eq(out[0], 50.0f / 255.0f, 1e-6);
    cr_assert_float_eq(out[9], 200.0f / 255.0f, 1e-6);
    /* Constant images stay constant under any resize. */
    memset(px, 77, (size_t)w * h * 3);
    cfg.size = 33;
    float big[3 * 33 * 33];
    cr_assert_eq(clasp_image_preprocess(&img, &cfg, big), CLASP_OK);
    for (int i = 0; i < 3 * 33 * 33; i++) cr_assert_float_eq(big[i], 77.0f / 255.0f, 1e-6);
    free(px);
}

Test(image, center_crop_equals_resize_then_crop) {
    /* Resampling the crop's region must equal resizing the whole image and then cropping. */
    const int w = 30, h = 20, S = 12; /* resize to 18x12, crop columns 3..15 */
    uint8_t *px = pattern(w, h, 1, 3);
    clasp_image img = {px, w, h, 1, 0, 0};
    uint8_t full[18 * 12], crop[12 * 12];
    cr_assert_eq(clasp_image_resample_region(&img, 0, 0, w, h, full, 18, 12), CLASP_OK);
    cr_assert_eq(clasp_image_resample_region(&img, 3.0 * w / 18, 0, 15.0 * w / 18, h, crop, S, S),
                 CLASP_OK);
    int maxdiff = 0;
    for (int y = 0; y < 12; y++)
        for (int x = 0; x < 12; x++) {
            int d = abs((int)crop[y * 12 + x] - (int)full[y * 18 + x + 3]);
            if (d > maxdiff) maxdiff = d;
        }
    cr_assert_leq(maxdiff, 1, "max difference %d", maxdiff);
    free(px);
}

Test(image, config_json_roundtrip_and_errors) {
    /* a model config's "image" object: encoder fields are ignored */
    cJSON *o = cJSON_Parse("{\"type\":\"cnn\",\"channels\":1,\"size\":28,\"mean\":[0.286],"
                           "\"std\":[0.353],\"resize\":\"squash\",\"max_pixels\":1000}");
    clasp_image_config c;
    cr_assert_eq(clasp_image_config_from_json(o, "m.json", "image", &c), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert_eq(c.channels, 1);
    cr_assert_eq(c.size, 28);
    cr_assert_eq(c.mode, CLASP_IMAGE_RESIZE_SQUASH);
    cr_assert_eq(c.mean[0], 0.286f);
    cr_assert_eq(c.max_pixels, 1000);
    cJSON *back = clasp_image_config_to_json(&c);
    clasp_image_config c2;
    cr_assert_eq(clasp_image_config_from_json(back, "back", NULL, &c2), CLASP_OK);
    /* field by field: a config's padding bytes are unspecified */
    cr_assert(c2.channels == c.channels && c2.size == c.size && c2.mode == c.mode &&
              !memcmp(c2.mean, c.mean, sizeof c.mean) && !memcmp(c2.std, c.std, sizeof c.std) &&
              c2.max_pixels == c.max_pixels);
    cJSON_Delete(back);
    cJSON_Delete(o);
    /* defaults: shortest, mean 0, std 1 */
    o = cJSON_Parse("{\"channels\":3,\"size\":8}");
    cr_assert_eq(clasp_image_config_from_json(o, "m.json", "image", &c), CLASP_OK);
    cr_assert_eq(c.mode, CLASP_IMAGE_RESIZE_SHORTEST);
    cr_assert_eq(c.mean[2], 0.0f);
    cr_assert_eq(c.std[2], 1.0f);
    cJSON_Delete(o);
    static const struct {
        const char *doc, *field;
    } bad[] = {{"{\"channels\":3,\"size\":8,\"std\":[1,0,1]}", "'image.std'"},
               {"{\"channels\":1,\"size\":8,\"mean\":[0.1,0.2]}", "'image.mean'"},
               {"{\"channels\":3,\"size\":8,\"resize\":\"stretch\"}", "'image.resize'"},
               {"{\"channels\":2,\"size\":8}", "'image.channels'"},
               {"{\"channels\":1}", "'image.size'"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        o = cJSON_Parse(bad[i].doc);
        cr_assert_eq(clasp_image_config_from_json(o, "m.json", "image", &c), CLASP_ERR_CONFIG, "%s",
                     bad[i].doc);
        cr_assert(strstr(clasp_last_error(), bad[i].field), "%s", clasp_last_error());
        cr_assert(strstr(clasp_last_error(), "m.json"), "%s", clasp_last_error());
        cJSON_Delete(o);
    }
    cr_assert_str_eq(clasp_image_resize_name(CLASP_IMAGE_RESIZE_LONGEST), "longest");
    cr_assert_eq(clasp_image_resize_from_name("longest"), CLASP_IMAGE_RESIZE_LONGEST);
    cr_assert_eq(clasp_image_resize_from_name("center_crop"), -1);
}

/* "longest" keeps the aspect ratio and pads with pixel 0: a 30x12 and a 12x30 constant image to
 * 10x10 scale to 10x4 / 4x10 (ratio 3) and sit at row / column 3, zeros around them. */
Test(image, resize_longest_pads_exact_geometry) {
    for (int tall = 0; tall < 2; tall++) {
        const int w = tall ? 12 : 30, h = tall ? 30 : 12, S = 10;
        uint8_t *px = malloc((size_t)w * h);
        memset(px, 200, (size_t)w * h);
        clasp_image img = {px, w, h, 1, 0, 0};
        clasp_image_config cfg = clasp_image_default_config();
        cfg.channels = 1;
        cfg.size = S;
        cfg.mode = CLASP_IMAGE_RESIZE_LONGEST;
        cfg.mean[0] = 0.0f;
        cfg.std[0] = 1.0f;
        float out[10 * 10];
        cr_assert_eq(clasp_image_preprocess(&img, &cfg, out), CLASP_OK, "%s", clasp_last_error());
        int nw, nh, left, top;
        clasp_image_longest_geometry(w, h, S, &nw, &nh, &left, &top);
        cr_assert_eq(tall ? nw : nh, 4);
        cr_assert_eq(tall ? nh : nw, 10);
        cr_assert_eq(tall ? left : top, 3);
        cr_assert_eq(tall ? top : left, 0);
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                const int k = tall ? x : y; /* the padded axis */
                const float want = (k >= 3 && k < 7) ? 200.0f / 255.0f : 0.0f;
                cr_assert_float_eq(out[y * S + x], want, 1e-6, "%s: (%d, %d) = %g",
                                   tall ? "tall" : "wide", y, x, (double)out[y * S + x]);
            }
        free(px);
    }
    /* odd leftover: 40x22 to 16 gives 16x9 at row 3 (3 rows above, 4 below), as OpenCLIP */
    int nw, nh, left, top;
    clasp_image_longest_geometry(40, 22, 16, &nw, &nh, &left, &top);
    cr_assert(nw == 16 && nh == 9 && left == 0 && top == 3, "%d %d %d %d", nw, nh, left, top);
}

/* "longest" against OpenCLIP's ResizeKeepRatio(longest=1) + CenterCropOrPad(fill=0) with PIL's
 * bicubic (tests/reference/make_image.py): the geometry exactly, the padded pixels exactly, and
 * the resized pixels within 1/255 (stb's Catmull-Rom and PIL's bicubic differ by rounding, as
 * in center_crop_equals_resize_then_crop's tolerance of one level per resampling). */
Test(image, resize_longest_matches_open_clip) {
    static const char *const files[] = {"image/resize_longest_40x22.safetensors",
                                        "image/resize_longest_18x40.safetensors"};
    const float mean[3] = {0.5f, 0.25f, 0.125f}, sd[3] = {0.5f, 0.25f, 2.0f};
    for (int f = 0; f < 2; f++) {
        char path[1024];
        clasp_safetensors *st;
        cr_assert_eq(clasp_st_open(clasp_test_ref_path(files[f], path, sizeof path), &st), CLASP_OK,
                     "%s", clasp_last_error());
        const clasp_st_tensor *tp = clasp_st_find(st, "pixels");
        const clasp_st_tensor *tr = clasp_st_find(st, "preprocessed");
        const clasp_st_tensor *tg = clasp_st_find(st, "geometry");
        cr_assert(tp && tr && tg && tp->ndim == 3 && tp->shape[2] == 3);
        const int h = (int)tp->shape[0], w = (int)tp->shape[1], S = 16;
        cr_assert_eq(tr->numel, (size_t)3 * S * S);
        const float *ref = clasp_st_f32(st, tr);
        cr_assert(tg->dtype == CLASP_DTYPE_I32 && tg->numel == 4 && tp->dtype == CLASP_DTYPE_U8);
        int32_t geo[4];
        memcpy(geo, tg->data, sizeof geo); /* the file buffer may be unaligned */
        int nw, nh, left, top;
        clasp_image_longest_geometry(w, h, S, &nw, &nh, &left, &top);
        cr_assert(nw == geo[0] && nh == geo[1] && left == geo[2] && top == geo[3],
                  "%s: geometry %d %d %d %d, OpenCLIP %d %d %d %d", files[f], nw, nh, left, top,
                  geo[0], geo[1], geo[2], geo[3]);
        clasp_image img = {(uint8_t *)tp->data, w, h, 3, 0, 0};
        clasp_image_config cfg = clasp_image_default_config();
        cfg.size = S;
        cfg.mode = CLASP_IMAGE_RESIZE_LONGEST;
        memcpy(cfg.mean, mean, sizeof mean);
        memcpy(cfg.std, sd, sizeof sd);
        float out[3 * 16 * 16];
        cr_assert_eq(clasp_image_preprocess(&img, &cfg, out), CLASP_OK, "%s", clasp_last_error());
        double maxdiff = 0.0;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++) {
                    const size_t i = ((size_t)c * S + (size_t)y) * S + (size_t)x;
                    const bool pad = x < left || x >= left + nw || y < top || y >= top + nh;
                    if (pad) {
                        cr_assert_eq(out[i], ref[i], "%s: pad (%d, %d, %d): %g vs %g", files[f], c,
                                     y, x, (double)out[i], (double)ref[i]);
                        continue;
                    }
                    /* back to [0, 255] levels */
                    const double d = fabs((double)out[i] - (double)ref[i]) * (double)sd[c] * 255.0;
                    if (d > maxdiff) maxdiff = d;
                }
        cr_assert_leq(maxdiff, 1.0 + 1e-3, "%s: max difference %.3f levels", files[f], maxdiff);
        clasp_st_free(st);
    }
}

/* ---- bad input ---- */

Test(image, empty_buffer) {
    clasp_image img;
    cr_assert_eq(clasp_image_decode("", 0, 3, 1000, &img), CLASP_ERR_FORMAT);
    cr_assert_null(img.pixels);
    cr_assert(strstr(clasp_last_error(), "empty"), "%s", clasp_last_error());
}

Test(image, garbage_bytes) {
    const char junk[] = "this is not an image at all, just text";
    clasp_image img;
    cr_assert_eq(clasp_image_decode(junk, sizeof junk, 3, 1000, &img), CLASP_ERR_FORMAT);
    cr_assert(strstr(clasp_last_error(), "image"), "%s", clasp_last_error());
}

Test(image, corrupt_and_truncated_png) {
    uint8_t *px = pattern(32, 32, 3, 5), *png;
    size_t n;
    encode_png(px, 32, 32, 3, &png, &n);
    clasp_image img;
    /* Truncated: header intact, data cut. */
    cr_assert_eq(clasp_image_decode(png, n / 2, 3, 1000000, &img), CLASP_ERR_FORMAT);
    cr_assert_null(img.pixels);
    cr_assert(strlen(clasp_last_error()) > 10);
    /* Only the signature. */
    cr_assert_eq(clasp_image_decode(png, 8, 3, 1000000, &img), CLASP_ERR_FORMAT);
    /* Corrupted compressed data (the IDAT payload): never a crash. */
    for (size_t i = 60; i < n - 12; i += 7) png[i] ^= 0xA5;
    clasp_status s = clasp_image_decode(png, n, 3, 1000000, &img);
    cr_assert(s == CLASP_ERR_FORMAT || s == CLASP_OK);
    if (s == CLASP_OK)
        clasp_image_free(&img);
    else
        cr_assert(strstr(clasp_last_error(), "cannot decode"), "%s", clasp_last_error());
    free(px);
    free(png);
}

typedef struct jpg_buf {
    uint8_t data[65536];
    size_t n;
} jpg_buf;

static void jpg_cb(void *ctx, void *data, int size) {
    jpg_buf *b = ctx;
    cr_assert(b->n + (size_t)size <= sizeof b->data);
    memcpy(b->data + b->n, data, (size_t)size);
    b->n += (size_t)size;
}

/* A JPEG made by the system libstb (not clasp's static copy, which compiles no JPEG writer). */
static int encode_jpg(const uint8_t *px, int w, int h, int c, uint8_t **out, size_t *n) {
    jpg_buf *b = calloc(1, sizeof *b);
    int ok = stbi_write_jpg_to_func(jpg_cb, b, w, h, c, px, 90);
    *out = malloc(b->n);
    memcpy(*out, b->data, b->n);
    *n = b->n;
    free(b);
    return ok;
}

Test(image, corrupt_and_truncated_jpeg) {
    uint8_t *px = pattern(32, 24, 3, 9), *jpg;
    size_t n;
    cr_assert_eq(encode_jpg(px, 32, 24, 3, &jpg, &n), 1);
    clasp_image img;
    cr_assert_eq(clasp_image_decode(jpg, n, 3, 1000000, &img), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(img.w, 32);
    cr_assert_eq(img.h, 24);
    clasp_image_free(&img);
    /* Cut inside the header segments. */
    cr_assert_eq(clasp_image_decode(jpg, 40, 3, 1000000, &img), CLASP_ERR_FORMAT);
    cr_assert_null(img.pixels);
    /* Corrupt every byte after the headers: decodes to garbage or fails, never crashes. */
    for (size_t i = n / 2; i < n; i++) jpg[i] = (uint8_t)(jpg[i] * 31u + 7u);
    clasp_status s = clasp_image_decode(jpg, n, 3, 1000000, &img);
    cr_assert(s == CLASP_ERR_FORMAT || s == CLASP_OK);
    clasp_image_free(&img);
    free(px);
    free(jpg);
}

/* Writes a PNG signature + IHDR chunk declaring w x h (CRC left zero: stb does not check it). */
static size_t png_header(uint8_t *b, uint32_t w, uint32_t h, uint8_t color_type) {
    const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(b, sig, 8);
    const uint8_t ihdr[8] = {0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    memcpy(b + 8, ihdr, 8);
    uint8_t *d = b + 16;
    d[0] = (uint8_t)(w >> 24), d[1] = (uint8_t)(w >> 16), d[2] = (uint8_t)(w >> 8),
    d[3] = (uint8_t)w;
    d[4] = (uint8_t)(h >> 24), d[5] = (uint8_t)(h >> 16), d[6] = (uint8_t)(h >> 8),
    d[7] = (uint8_t)h;
    d[8] = 8;          /* bit depth */
    d[9] = color_type; /* 0 gray, 2 RGB */
    d[10] = d[11] = d[12] = 0;
    memset(b + 29, 0, 4); /* CRC */
    /* An empty IDAT and IEND so the file looks complete. */
    const uint8_t tail[24] = {0, 0, 0, 0, 'I', 'D', 'A', 'T', 0, 0, 0, 0,
                              0, 0, 0, 0, 'I', 'E', 'N', 'D', 0, 0, 0, 0};
    memcpy(b + 33, tail, sizeof tail);
    return 33 + sizeof tail;
}

Test(image, huge_png_header_rejected_before_decoding) {
    uint8_t b[64];
    clasp_image img;
    /* 100000 x 100000: rejected from the header alone by the pixel limit, nothing allocated. */
    size_t n = png_header(b, 100000, 100000, 2);
    cr_assert_eq(clasp_image_decode(b, n, 3, CLASP_IMAGE_DEFAULT_MAX_PIXELS, &img),
                 CLASP_ERR_OVERFLOW, "%s", clasp_last_error());
    cr_assert_null(img.pixels);
    cr_assert(strstr(clasp_last_error(), "100000x100000"), "%s", clasp_last_error());
    cr_assert(strstr(clasp_last_error(), "limit of 25000000"), "%s", clasp_last_error());
    /* 10000 x 10000 gray passes stb's check: our 25-megapixel limit rejects it. */
    n = png_header(b, 10000, 10000, 0);
    cr_assert_eq(clasp_image_decode(b, n, 1, CLASP_IMAGE_DEFAULT_MAX_PIXELS, &img),
                 CLASP_ERR_OVERFLOW, "%s", clasp_last_error());
    cr_assert(strstr(clasp_last_error(), "100000000 pixels"), "%s", clasp_last_error());
    cr_assert(strstr(clasp_last_error(), "limit of 25000000"), "%s", clasp_last_error());
}

Test(image, huge_pnm_header_rejected_by_pixel_limit) {
    /* A binary PPM claiming 100000 x 100000 with 12 bytes of data. */
    const char ppm[] = "P6\n100000 100000\n255\n012345678901";
    clasp_image img;
    cr_assert_eq(clasp_image_decode(ppm, sizeof ppm - 1, 3, CLASP_IMAGE_DEFAULT_MAX_PIXELS, &img),
                 CLASP_ERR_OVERFLOW, "%s", clasp_last_error());
    cr_assert(strstr(clasp_last_error(), "100000x100000"), "%s", clasp_last_error());
    /* A small limit applies too. */
    uint8_t *px = pattern(10, 10, 3, 2), *png;
    size_t n;
    encode_png(px, 10, 10, 3, &png, &n);
    cr_assert_eq(clasp_image_decode(png, n, 3, 99, &img), CLASP_ERR_OVERFLOW);
    cr_assert_eq(clasp_image_decode(png, n, 3, 100, &img), CLASP_OK);
    clasp_image_free(&img);
    free(px);
    free(png);
}

Test(image, bad_arguments) {
    clasp_image img;
    uint8_t b[4] = {0};
    cr_assert_eq(clasp_image_decode(b, 4, 2, 100, &img), CLASP_ERR_ARG);
    cr_assert_eq(clasp_image_decode(NULL, 4, 3, 100, &img), CLASP_ERR_ARG);
    cr_assert_eq(clasp_image_encode_png(b, 0, 1, 1, &(uint8_t *){NULL}, &(size_t){0}),
                 CLASP_ERR_ARG);
    clasp_image_config cfg = clasp_image_default_config();
    cfg.channels = 1;
    clasp_image rgb = {b, 1, 1, 3, 0, 0};
    float out[224 * 224];
    cr_assert_eq(clasp_image_preprocess(&rgb, &cfg, out), CLASP_ERR_ARG);
}

/* stb_image's PNM reader overruns on 16-bit data and overflows on huge header numbers
 * (found by fuzzing tests/fuzz_tar.c): both must be refused before stb sees them. */
Test(image, pnm_16bit_and_huge_header_numbers_are_refused) {
    const char *cases[] = {
        "P5\n2 2\n65535\n\x01\x02",        /* 16-bit, data cut */
        "P6 4 4 4096 abc",                 /* 16-bit RGB */
        "P5 99999999999999 1 255\n\x00",   /* width overflows int */
        "P5 # comment\n 3 # more\n 2 0\n", /* maxval 0 */
        "P5 3",                            /* header cut */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        clasp_image img;
        size_t n = strlen(cases[i]) + (i == 0 ? 0 : 0);
        clasp_status s = clasp_image_decode(cases[i], n, 1, CLASP_IMAGE_DEFAULT_MAX_PIXELS, &img);
        cr_assert_neq(s, CLASP_OK, "case %zu decoded", i);
        cr_assert_null(img.pixels);
    }
    /* a valid 8-bit PGM with a comment still decodes */
    const char ok[] = "P5 # c\n2 1\n255\n\x10\x20";
    clasp_image img;
    cr_assert_eq(clasp_image_decode(ok, sizeof ok - 1, 1, CLASP_IMAGE_DEFAULT_MAX_PIXELS, &img),
                 CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(img.w, 2);
    cr_assert_eq(img.pixels[1], 0x20);
    clasp_image_free(&img);
}
