/* test_preprocess_pil.c: clasp's image preprocessing against PIL + torchvision (OpenAI CLIP's
 * Resize(S, BICUBIC) + CenterCrop(S) + ToTensor + Normalize, and crop-then-resize), from
 * tests/reference/make_preprocess.py; the "interp" and "jpeg_dct_scaling" config keys; JPEG
 * DCT-domain scaled decoding (modalities/image.h clasp_image_decode_scaled).
 *
 * Tolerances (in 0..255 pixel levels, measured on these inputs; docs/data.md):
 *   "bicubic" (PIL's arithmetic):                    0 (bit for bit), tensors bit for bit;
 *   "catmullrom" (stb, the default):                 max <= CATMULLROM_MAX, mean <= 0.5;
 *   DCT-scaled decode + "bicubic" vs PIL full decode: max <= DCT_MAX, mean <= DCT_MEAN;
 *   random crops on a DCT-scaled decode vs on the full decode: AUG_DCT_MAX, AUG_DCT_MEAN. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"
#include "encoders/model.h"
#include "export/export.h"
#include "modalities/augment.h"
#include "modalities/image.h"
#include "pipeline/loader.h"
#include "fixtures.h"

#define CATMULLROM_MAX 6
#define DCT_MAX        20
#define DCT_MEAN       1.0
/* a random crop decoded at 1/8 (block means) and resized by ~1.2: coarser */
#define AUG_DCT_MAX  40
#define AUG_DCT_MEAN 1.0

static const char *const small_cases[] = {"upscale",  "down2_3",  "odd_aspect",
                                          "gray_png", "rgb_jpeg", "crop_jpeg"};

/* One reference case: the encoded input, PIL's pixels, the normalised tensor (or NULL). */
typedef struct ref_case {
    clasp_safetensors *st;
    const uint8_t *input;
    size_t n_input;
    const uint8_t *pil;  /* (S, S, 3) */
    const float *tensor; /* (3, S, S) or NULL */
    int S, crop[4], jpeg;
} ref_case;

static ref_case open_case(const char *name) {
    ref_case c = {0};
    c.st = fx_ref_open("preprocess/case_%s.safetensors", name);
    cr_assert(c.st, "case %s: %s", name, clasp_last_error());
    const clasp_st_tensor *in = clasp_st_find(c.st, "input"), *u8 = clasp_st_find(c.st, "pil_u8");
    const clasp_st_tensor *p = clasp_st_find(c.st, "params"), *t = clasp_st_find(c.st, "tensor");
    cr_assert(in && u8 && p && p->dtype == CLASP_DTYPE_I32 && p->numel == 6, "case %s", name);
    int32_t par[6];
    memcpy(par, p->data, sizeof par);
    c.S = par[0];
    memcpy(c.crop, par + 1, sizeof c.crop);
    c.jpeg = par[5];
    c.input = in->data;
    c.n_input = in->numel;
    c.pil = u8->data;
    cr_assert_eq(u8->numel, (size_t)c.S * c.S * 3, "case %s", name);
    c.tensor = t ? clasp_st_f32(c.st, t) : NULL;
    return c;
}

static clasp_image_config openai_config(int S, clasp_image_interp interp) {
    clasp_image_config cfg = clasp_image_default_config(); /* OpenAI's mean / std */
    cfg.size = S;
    cfg.interp = interp;
    return cfg;
}

/* clasp's uint8 pixels for a case (the center crop, or the case's crop box), malloc'd. */
static uint8_t *clasp_pixels(const ref_case *c, const clasp_image *img, clasp_image_interp interp) {
    uint8_t *px = malloc((size_t)c->S * c->S * 3);
    cr_assert(px);
    clasp_status s =
        c->crop[0] < 0
            ? clasp_image_resize_interp(img, CLASP_IMAGE_RESIZE_SHORTEST, interp, c->S, px)
            : clasp_image_crop_resize(img, interp, c->crop[0], c->crop[1], c->crop[2], c->crop[3],
                                      px, c->S, c->S);
    cr_assert_eq(s, CLASP_OK, "%s", clasp_last_error());
    return px;
}

static void pixel_diff(const uint8_t *a, const uint8_t *b, size_t n, int *max, double *mean) {
    long sum = 0;
    *max = 0;
    for (size_t i = 0; i < n; i++) {
        const int d = abs((int)a[i] - (int)b[i]);
        sum += d;
        if (d > *max) *max = d;
    }
    *mean = (double)sum / (double)n;
}

/* Decodes case `name`, resizes it with `interp` and measures the distance to PIL's pixels. */
static void measure_case(const char *name, clasp_image_interp interp, int *max, double *mean) {
    ref_case c = open_case(name);
    clasp_image img;
    cr_assert_eq(clasp_image_decode(c.input, c.n_input, 3, CLASP_IMAGE_DEFAULT_MAX_PIXELS, &img),
                 CLASP_OK, "%s", clasp_last_error());
    uint8_t *px = clasp_pixels(&c, &img, interp);
    pixel_diff(px, c.pil, (size_t)c.S * c.S * 3, max, mean);
    printf("%s vs PIL, %-10s: max %d, mean %.4f levels\n", clasp_image_interp_name(interp), name,
           *max, *mean);
    free(px);
    clasp_image_free(&img);
    clasp_st_free(c.st);
}

/* "bicubic" is PIL's resize bit for bit, on PNG and JPEG (libjpeg-turbo decodes both sides), for
 * center crops and crop boxes; the normalised tensors equal torchvision's bit for bit. */
Test(preprocess_pil, bicubic_equals_pil_bit_for_bit) {
    for (size_t k = 0; k < sizeof small_cases / sizeof *small_cases; k++) {
        int max;
        double mean;
        measure_case(small_cases[k], CLASP_IMAGE_INTERP_BICUBIC, &max, &mean);
        cr_assert_eq(max, 0, "%s: max pixel difference %d (mean %.4f)", small_cases[k], max, mean);
        ref_case c = open_case(small_cases[k]);
        if (c.crop[0] < 0) {
            const clasp_image_config cfg = openai_config(c.S, CLASP_IMAGE_INTERP_BICUBIC);
            const size_t n = clasp_image_tensor_numel(&cfg);
            float *x = malloc(n * sizeof(float));
            cr_assert_eq(clasp_image_load(c.input, c.n_input, &cfg, x), CLASP_OK, "%s",
                         clasp_last_error());
            cr_assert(c.tensor);
            cr_assert(fx_max_abs_diff(x, c.tensor, n) == 0.0,
                      "%s: tensor differs from torchvision's by %g", small_cases[k],
                      fx_max_abs_diff(x, c.tensor, n));
            free(x);
        }
        clasp_st_free(c.st);
    }
}

/* The default "catmullrom" (stb) stays within the stated distance of PIL. */
Test(preprocess_pil, catmullrom_within_tolerance_of_pil) {
    int worst = 0;
    for (size_t k = 0; k < sizeof small_cases / sizeof *small_cases; k++) {
        int max;
        double mean;
        measure_case(small_cases[k], CLASP_IMAGE_INTERP_CATMULLROM, &max, &mean);
        cr_assert(max <= CATMULLROM_MAX && mean <= 0.5, "%s: max %d, mean %.4f", small_cases[k],
                  max, mean);
        worst = max > worst ? max : worst;
    }
    cr_assert(worst > 0, "stb's filter is not PIL's: some difference expected");
}

/* A 1000x750 JPEG to 224: the DCT-scaled decode (1/2 here: 375 >= 224 but 188 < 224) then
 * "bicubic" stays within DCT_MAX / DCT_MEAN of PIL's full decode + resize, is deterministic,
 * and the full decode still equals PIL bit for bit. */
Test(preprocess_pil, dct_scaled_jpeg_close_to_full_decode) {
    ref_case c = open_case("large_jpeg");
    cr_assert_eq(c.S, 224);
    int w, h;
    cr_assert(clasp_image_jpeg_size(c.input, c.n_input, &w, &h));
    cr_assert(w == 1000 && h == 750);
    clasp_image_config cfg = openai_config(224, CLASP_IMAGE_INTERP_BICUBIC);
    cr_assert_eq(clasp_image_resize_region_px(&cfg, w, h), 750);
    clasp_image full, scaled, again;
    cr_assert_eq(clasp_image_decode(c.input, c.n_input, 3, cfg.max_pixels, &full), CLASP_OK);
    cr_assert_eq(
        clasp_image_decode_scaled(c.input, c.n_input, 3, cfg.max_pixels, 224, 750, &scaled),
        CLASP_OK, "%s", clasp_last_error());
    cr_assert(scaled.w == 500 && scaled.h == 375 && scaled.full_w == 1000 && scaled.full_h == 750,
              "scaled %dx%d of %dx%d", scaled.w, scaled.h, scaled.full_w, scaled.full_h);
    uint8_t *pf = clasp_pixels(&c, &full, CLASP_IMAGE_INTERP_BICUBIC);
    uint8_t *ps = clasp_pixels(&c, &scaled, CLASP_IMAGE_INTERP_BICUBIC);
    int max;
    double mean;
    pixel_diff(pf, c.pil, (size_t)224 * 224 * 3, &max, &mean);
    cr_assert_eq(max, 0, "full decode + bicubic vs PIL: max %d", max);
    pixel_diff(ps, c.pil, (size_t)224 * 224 * 3, &max, &mean);
    printf("DCT-scaled (1/2) + bicubic vs PIL full decode: max %d, mean %.4f levels\n", max, mean);
    cr_assert(max <= DCT_MAX && mean <= DCT_MEAN, "max %d, mean %.4f", max, mean);
    cr_assert(max > 0, "a scaled decode cannot be PIL's pixels exactly");
    /* deterministic: a second decode and resize give the same bytes */
    cr_assert_eq(clasp_image_decode_scaled(c.input, c.n_input, 3, cfg.max_pixels, 224, 750, &again),
                 CLASP_OK);
    uint8_t *pa = clasp_pixels(&c, &again, CLASP_IMAGE_INTERP_BICUBIC);
    cr_assert(!memcmp(ps, pa, (size_t)224 * 224 * 3));
    /* clasp_image_load with the key on gives the same tensor as the scaled pixels */
    cfg.jpeg_dct_scaling = true;
    float *x = malloc(clasp_image_tensor_numel(&cfg) * sizeof(float));
    float *y = malloc(clasp_image_tensor_numel(&cfg) * sizeof(float));
    cr_assert_eq(clasp_image_load(c.input, c.n_input, &cfg, x), CLASP_OK, "%s", clasp_last_error());
    clasp_image_normalize(ps, 224, 224, 3, cfg.mean, cfg.std, y);
    cr_assert(!memcmp(x, y, clasp_image_tensor_numel(&cfg) * sizeof(float)));
    /* "catmullrom" on the scaled decode: within the same bound of PIL */
    uint8_t *pc = clasp_pixels(&c, &scaled, CLASP_IMAGE_INTERP_CATMULLROM);
    pixel_diff(pc, c.pil, (size_t)224 * 224 * 3, &max, &mean);
    printf("DCT-scaled (1/2) + catmullrom vs PIL full decode: max %d, mean %.4f levels\n", max,
           mean);
    cr_assert(max <= DCT_MAX && mean <= DCT_MEAN, "max %d, mean %.4f", max, mean);
    free(x), free(y), free(pf), free(ps), free(pa), free(pc);
    clasp_image_free(&full);
    clasp_image_free(&scaled);
    clasp_image_free(&again);
    clasp_st_free(c.st);
}

/* The scale rule: the largest 1/denom (8, 4, 2) keeping region / denom >= need. */
Test(preprocess_pil, dct_scale_rule) {
    ref_case c = open_case("large_jpeg");
    static const struct {
        int need, region, w, h;
    } rule[] = {{224, 750, 500, 375}, {100, 750, 250, 188},  {93, 750, 125, 94},
                {10, 750, 125, 94},   {400, 750, 1000, 750}, {0, 750, 1000, 750}};
    for (size_t k = 0; k < sizeof rule / sizeof *rule; k++) {
        clasp_image img;
        cr_assert_eq(clasp_image_decode_scaled(c.input, c.n_input, 3,
                                               CLASP_IMAGE_DEFAULT_MAX_PIXELS, rule[k].need,
                                               rule[k].region, &img),
                     CLASP_OK, "%s", clasp_last_error());
        cr_assert(img.w == rule[k].w && img.h == rule[k].h, "need %d: %dx%d, expected %dx%d",
                  rule[k].need, img.w, img.h, rule[k].w, rule[k].h);
        clasp_image_free(&img);
    }
    /* the pixel budget is the header's: 750000 pixels refused even when 1/8 would fit */
    clasp_image img;
    cr_assert_eq(clasp_image_decode_scaled(c.input, c.n_input, 3, 700000, 10, 750, &img),
                 CLASP_ERR_OVERFLOW);
    /* truncated and corrupt JPEGs still fail cleanly when scaled */
    cr_assert_eq(clasp_image_decode_scaled(c.input, c.n_input / 2, 3,
                                           CLASP_IMAGE_DEFAULT_MAX_PIXELS, 10, 750, &img),
                 CLASP_ERR_FORMAT);
    cr_assert(img.pixels == NULL);
    uint8_t *bad = malloc(c.n_input);
    memcpy(bad, c.input, c.n_input);
    for (size_t i = c.n_input / 3; i < c.n_input / 3 + 64; i++) bad[i] ^= 0x5a;
    clasp_status s =
        clasp_image_decode_scaled(bad, c.n_input, 3, CLASP_IMAGE_DEFAULT_MAX_PIXELS, 10, 750, &img);
    if (s == CLASP_OK) clasp_image_free(&img); /* a flipped entropy byte may still decode */
    cr_assert(s == CLASP_OK || s == CLASP_ERR_FORMAT, "status %d", s);
    free(bad);
    clasp_st_free(c.st);
}

/* Augmentation with a DCT-scaled decode: the crop is drawn on the header's size (same draws),
 * the scale is chosen from it, and the result is close to the full decode's. */
Test(preprocess_pil, augment_on_scaled_decode_matches_full) {
    ref_case c = open_case("large_jpeg");
    clasp_image_config pre = openai_config(64, CLASP_IMAGE_INTERP_BICUBIC);
    clasp_image_augment_config aug = clasp_image_augment_default_config();
    aug.scale_min = 0.5f; /* crops of >= 530 px a side: scaled at least 1/2 for S = 64 */
    const size_t n = clasp_image_tensor_numel(&pre);
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    clasp_image full;
    cr_assert_eq(clasp_image_decode(c.input, c.n_input, 3, pre.max_pixels, &full), CLASP_OK);
    int n_scaled = 0;
    for (int key = 0; key < 8; key++) {
        char k[16];
        snprintf(k, sizeof k, "s%04d", key);
        const int region = clasp_image_augment_region_px(&pre, &aug, 7, 3, k, 1000, 750);
        cr_assert(region >= 64 && region <= 750, "region %d", region);
        clasp_image scaled;
        cr_assert_eq(
            clasp_image_decode_scaled(c.input, c.n_input, 3, pre.max_pixels, 64, region, &scaled),
            CLASP_OK);
        n_scaled += scaled.w < 1000;
        cr_assert_eq(clasp_image_augment(&full, &pre, &aug, 7, 3, k, a), CLASP_OK);
        cr_assert_eq(clasp_image_augment(&scaled, &pre, &aug, 7, 3, k, b), CLASP_OK, "%s",
                     clasp_last_error());
        double sum = 0, max = 0;
        size_t at = 0;
        for (size_t i = 0; i < n; i++) {
            const double d = fabs((double)a[i] - (double)b[i]) * 255.0 * 0.27577711;
            sum += d;
            if (d > max) max = d, at = i;
        }
        printf("augment key %s, crop side %d, decoded %dx%d: max %.2f (at c%zu y%zu x%zu), mean "
               "%.3f levels\n",
               k, region, scaled.w, scaled.h, max, at / 4096, at / 64 % 64, at % 64,
               sum / (double)n);
        cr_assert(max <= AUG_DCT_MAX + 0.5 && sum / (double)n <= AUG_DCT_MEAN,
                  "key %s: max %.2f mean %.3f", k, max, sum / (double)n);
        clasp_image_free(&scaled);
    }
    cr_assert(n_scaled == 8, "every crop should have been decoded scaled, %d were", n_scaled);
    free(a), free(b);
    clasp_image_free(&full);
    clasp_st_free(c.st);
}

/* "interp" and "jpeg_dct_scaling": parsed, refused when invalid, written back only when not
 * the defaults, accepted by the model config's "image" object. */
Test(preprocess_pil, config_keys_round_trip_and_refusals) {
    cJSON *o = cJSON_Parse("{\"channels\":3,\"size\":224,\"interp\":\"bicubic\","
                           "\"jpeg_dct_scaling\":true}");
    clasp_image_config cfg;
    cr_assert_eq(clasp_image_config_from_json(o, "m.json", "image", &cfg), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert(cfg.interp == CLASP_IMAGE_INTERP_BICUBIC && cfg.jpeg_dct_scaling);
    cJSON *back = clasp_image_config_to_json(&cfg);
    clasp_image_config cfg2;
    cr_assert_eq(clasp_image_config_from_json(back, "back", "image", &cfg2), CLASP_OK);
    cr_assert(cfg2.interp == CLASP_IMAGE_INTERP_BICUBIC && cfg2.jpeg_dct_scaling);
    cJSON_Delete(back);
    cJSON_Delete(o);
    /* defaults are not written (older configs round-trip to the same bytes) */
    cfg = clasp_image_default_config();
    back = clasp_image_config_to_json(&cfg);
    cr_assert(!cJSON_GetObjectItem(back, "interp") &&
              !cJSON_GetObjectItem(back, "jpeg_dct_scaling"));
    cJSON_Delete(back);
    static const char *const bad[] = {"{\"channels\":3,\"size\":8,\"interp\":\"lanczos\"}",
                                      "{\"channels\":3,\"size\":8,\"interp\":3}",
                                      "{\"channels\":3,\"size\":8,\"jpeg_dct_scaling\":\"yes\"}"};
    for (size_t k = 0; k < 3; k++) {
        o = cJSON_Parse(bad[k]);
        cr_assert_eq(clasp_image_config_from_json(o, "m.json", "image", &cfg), CLASP_ERR_CONFIG,
                     "%s", bad[k]);
        const char *msg = clasp_last_error();
        cr_assert(strstr(msg, "m.json") && (strstr(msg, "interp") || strstr(msg, "jpeg_dct")), "%s",
                  msg);
        cJSON_Delete(o);
    }
    cr_assert_str_eq(clasp_image_interp_name(CLASP_IMAGE_INTERP_BICUBIC), "bicubic");
    cr_assert_eq(clasp_image_interp_from_name("catmullrom"), CLASP_IMAGE_INTERP_CATMULLROM);
    cr_assert_eq(clasp_image_interp_from_name("nearest"), -1);
    /* the model config's "image" object takes the keys; a misspelt one is refused */
    const char *model = "{\"embed_dim\":8,\"image\":{\"type\":\"cnn\",\"channels\":3,\"size\":8,"
                        "\"conv\":[{\"channels\":4,\"kernel\":1}],\"fc\":[8],\"interp\":"
                        "\"bicubic\",\"jpeg_dct_scaling\":false}}";
    o = cJSON_Parse(model);
    cr_assert(o);
    clasp_model_config mc;
    cr_assert_eq(clasp_model_config_parse(o, "model.json", &mc), CLASP_OK, "%s",
                 clasp_last_error());
    cJSON_Delete(o);
    o = cJSON_Parse(
        "{\"embed_dim\":8,\"image\":{\"type\":\"cnn\",\"channels\":3,\"size\":8,"
        "\"conv\":[{\"channels\":4,\"kernel\":1}],\"fc\":[8],\"interpolation\":\"bicubic\"}}");
    cr_assert_eq(clasp_model_config_parse(o, "model.json", &mc), CLASP_ERR_CONFIG);
    cr_assert(strstr(clasp_last_error(), "interpolation"), "%s", clasp_last_error());
    cJSON_Delete(o);
}

/* An export keeps "interp" and "jpeg_dct_scaling": config.json and preprocess.json carry them,
 * the embedder reads them back, and a preprocess.json that disagrees is refused naming the
 * field. */
Test(preprocess_pil, export_round_trips_the_keys) {
    char tmp[FX_PATH], cfgp[FX_PATH], dir[FX_PATH], src[FX_PATH], pp[FX_PATH];
    fx_scratch("pp_export", tmp, cfgp, "model.json", dir, "export", pp, "export/preprocess.json",
               NULL);
    snprintf(src, sizeof src, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    char *text = fx_read_text(src);
    cJSON *root = cJSON_Parse(text);
    free(text);
    cJSON *im = cJSON_GetObjectItem(root, "image");
    cr_assert(im);
    cJSON_AddStringToObject(im, "interp", "bicubic");
    cJSON_AddTrueToObject(im, "jpeg_dct_scaling");
    char *out = cJSON_Print(root);
    cr_assert(fx_write_str(cfgp, out));
    free(out);
    cJSON_Delete(root);
    cr_assert(fx_export_model(cfgp, NULL, dir, 3), "%s", clasp_last_error());
    clasp_embedder em;
    cr_assert_eq(clasp_embedder_open(dir, 1, 1, &em), CLASP_OK, "%s", clasp_last_error());
    cr_assert(em.lc.image.interp == CLASP_IMAGE_INTERP_BICUBIC && em.lc.image.jpeg_dct_scaling);
    clasp_embedder_close(&em);
    char *pj = fx_read_text(pp);
    cr_assert(strstr(pj, "\"interp\"") && strstr(pj, "\"bicubic\"") && strstr(pj, "pil-bicubic"),
              "%s", pj);
    /* preprocess.json without the key disagrees with config.json */
    root = cJSON_Parse(pj);
    free(pj);
    cJSON_DeleteItemFromObject(cJSON_GetObjectItem(root, "image"), "interp");
    out = cJSON_Print(root);
    cr_assert(fx_write_str(pp, out));
    free(out);
    cJSON_Delete(root);
    cr_assert_neq(clasp_embedder_open(dir, 1, 1, &em), CLASP_OK);
    cr_assert(strstr(clasp_last_error(), "interp"), "%s", clasp_last_error());
}

/* The loader's decoder with "jpeg_dct_scaling" in training: both views' crops are drawn on the
 * header's size, the JPEG is decoded once at the scale the smaller crop allows, and each view
 * equals clasp_image_augment of that decode; off, it equals the full decode's augmentation. The
 * sample key is one whose two views' crops want different scales (1/4 vs 1/2 at S = 100). */
Test(preprocess_pil, decoder_scales_for_both_views) {
    ref_case c = open_case("large_jpeg");
    clasp_loader_config cfg = clasp_loader_default_config();
    cfg.required = CLASP_NEED_IMAGE;
    cfg.seed = 11;
    cfg.views = 2;
    cfg.image = openai_config(100, CLASP_IMAGE_INTERP_BICUBIC);
    cfg.image_augment.enabled = true;
    char ext[] = "jpg", key[32] = "";
    for (int k = 0; k < 200 && !key[0]; k++) {
        char cand[32];
        snprintf(cand, sizeof cand, "sample-%04d", k);
        int r[2];
        for (int v = 0; v < 2; v++)
            r[v] = clasp_image_augment_region_px(&cfg.image, &cfg.image_augment,
                                                 clasp_augment_view_seed(cfg.seed, v), 5, cand,
                                                 1000, 750);
        if ((r[0] >= 400) != (r[1] >= 400) && r[0] >= 200 && r[1] >= 200)
            snprintf(key, sizeof key, "%s", cand);
    }
    cr_assert(key[0], "no key with views on both sides of the 1/4 threshold");
    clasp_field f = {.ext = ext, .data = (uint8_t *)c.input, .n = c.n_input};
    clasp_sample s = {.key = key, .fields = &f, .n_fields = 1, .has_payload = true};
    const size_t n = clasp_image_tensor_numel(&cfg.image);
    float *got[2], *want[2];
    for (int dct = 0; dct < 2; dct++) {
        cfg.image.jpeg_dct_scaling = dct;
        clasp_decoder *d;
        cr_assert_eq(clasp_decoder_new(&cfg, NULL, &d), CLASP_OK, "%s", clasp_last_error());
        for (int v = 0; v < 2; v++)
            got[v] = malloc(n * sizeof(float)), want[v] = malloc(n * sizeof(float));
        clasp_decoded out = {.image = got[0], .image2 = got[1]};
        bool ok;
        clasp_skip_reason why;
        cr_assert_eq(clasp_decoder_run(d, &s, 5, NULL, &out, &ok, &why), CLASP_OK);
        cr_assert(ok, "skipped: %d", (int)why);
        int region = 0;
        for (int v = 0; v < 2; v++) {
            const int r = clasp_image_augment_region_px(&cfg.image, &cfg.image_augment,
                                                        clasp_augment_view_seed(cfg.seed, v), 5,
                                                        key, 1000, 750);
            region = v == 0 || r < region ? r : region;
        }
        clasp_image img;
        cr_assert_eq(clasp_image_decode_scaled(c.input, c.n_input, 3, cfg.image.max_pixels, 100,
                                               dct ? region : 0, &img),
                     CLASP_OK);
        cr_assert(dct ? img.w == 500 : img.w == 1000, "decoded %dx%d", img.w, img.h);
        for (int v = 0; v < 2; v++) {
            cr_assert_eq(clasp_image_augment(&img, &cfg.image, &cfg.image_augment,
                                             clasp_augment_view_seed(cfg.seed, v), 5, key, want[v]),
                         CLASP_OK);
            cr_assert(!memcmp(got[v], want[v], n * sizeof(float)), "dct %d view %d differs", dct,
                      v);
            free(got[v]);
            free(want[v]);
        }
        clasp_image_free(&img);
        clasp_decoder_free(d);
    }
    clasp_st_free(c.st);
}
