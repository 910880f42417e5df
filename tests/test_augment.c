/* test_augment.c: deterministic image augmentation and caption choice (modalities/augment.h). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "modalities/augment.h"

#define S 16
#define N (3 * S * S)

static clasp_image make_image(int w, int h) {
    clasp_image img = {malloc((size_t)w * h * 3), w, h, 3, 0, 0};
    cr_assert(img.pixels);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                img.pixels[(y * w + x) * 3 + c] = (uint8_t)((x * 9 + y * 5 + c * 70) & 255);
    return img;
}

static clasp_image_config pre16(void) {
    clasp_image_config c = clasp_image_default_config();
    c.size = S;
    return c;
}

static clasp_image_augment_config full_aug(void) {
    clasp_image_augment_config a = clasp_image_augment_default_config();
    a.brightness = 0.4f;
    a.contrast = 0.4f;
    a.saturation = 0.4f;
    a.grayscale = 0.2f;
    return a;
}

/* The default augmentation without the random resized crop, flipping with probability hflip. */
static clasp_image_augment_config fixed_crop_aug(float hflip) {
    clasp_image_augment_config a = clasp_image_augment_default_config();
    a.random_resized_crop = false;
    a.hflip = hflip;
    return a;
}

Test(augment, same_key_same_output_other_epoch_or_key_differs) {
    clasp_image img = make_image(40, 30);
    clasp_image_config pre = pre16();
    clasp_image_augment_config aug = full_aug();
    float a[N], b[N], c[N], d[N];
    cr_assert_eq(clasp_image_augment(&img, &pre, &aug, 42, 3, "shard-0/key-17", a), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert_eq(clasp_image_augment(&img, &pre, &aug, 42, 3, "shard-0/key-17", b), CLASP_OK);
    cr_assert(memcmp(a, b, sizeof a) == 0, "same (seed, epoch, key) must give identical bytes");
    cr_assert_eq(clasp_image_augment(&img, &pre, &aug, 42, 4, "shard-0/key-17", c), CLASP_OK);
    cr_assert(memcmp(a, c, sizeof a) != 0, "another epoch must give another augmentation");
    cr_assert_eq(clasp_image_augment(&img, &pre, &aug, 42, 3, "shard-0/key-18", d), CLASP_OK);
    cr_assert(memcmp(a, d, sizeof a) != 0, "another key must give another augmentation");
    cr_assert_eq(clasp_image_augment(&img, &pre, &aug, 43, 3, "shard-0/key-17", d), CLASP_OK);
    cr_assert(memcmp(a, d, sizeof a) != 0, "another seed must give another augmentation");
    clasp_image_free(&img);
}

Test(augment, eval_mode_is_preprocessing) {
    clasp_image img = make_image(40, 30);
    clasp_image_config pre = pre16();
    clasp_image_augment_config aug = full_aug();
    aug.enabled = false;
    float a[N], b[N];
    cr_assert_eq(clasp_image_preprocess(&img, &pre, a), CLASP_OK);
    cr_assert_eq(clasp_image_augment(&img, &pre, &aug, 1, 0, "k", b), CLASP_OK);
    cr_assert(memcmp(a, b, sizeof a) == 0);
    cr_assert_eq(clasp_image_augment(&img, &pre, NULL, 1, 0, "k", b), CLASP_OK);
    cr_assert(memcmp(a, b, sizeof a) == 0);
    /* Enabled with every augmentation off: still bit-identical to preprocessing. */
    aug = fixed_crop_aug(0.0f);
    for (int e = 0; e < 5; e++) {
        cr_assert_eq(clasp_image_augment(&img, &pre, &aug, 1, (uint64_t)e, "k", b), CLASP_OK);
        cr_assert(memcmp(a, b, sizeof a) == 0, "epoch %d", e);
    }
    clasp_image_free(&img);
}

Test(augment, flip_and_grayscale) {
    clasp_image img = make_image(16, 16);
    clasp_image_config pre = pre16();
    clasp_image_augment_config aug = fixed_crop_aug(1.0f);
    float a[N], b[N];
    cr_assert_eq(clasp_image_preprocess(&img, &pre, a), CLASP_OK);
    cr_assert_eq(clasp_image_augment(&img, &pre, &aug, 7, 0, "k", b), CLASP_OK);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++)
                cr_assert_eq(b[(c * S + y) * S + x], a[(c * S + y) * S + (S - 1 - x)]);
    aug.hflip = 0.0f;
    aug.grayscale = 1.0f;
    cr_assert_eq(clasp_image_augment(&img, &pre, &aug, 7, 0, "k", b), CLASP_OK);
    for (int i = 0; i < S * S; i++) {
        /* Undo the per-channel normalisation: the three channels hold the same value. */
        float v0 = b[i] * pre.std[0] + pre.mean[0];
        float v1 = b[S * S + i] * pre.std[1] + pre.mean[1];
        float v2 = b[2 * S * S + i] * pre.std[2] + pre.mean[2];
        cr_assert(fabsf(v0 - v1) < 1e-5f && fabsf(v0 - v2) < 1e-5f, "pixel %d: %g %g %g", i,
                  (double)v0, (double)v1, (double)v2);
    }
    clasp_image_free(&img);
}

Test(augment, jitter_stays_in_range) {
    clasp_image img = make_image(20, 20);
    clasp_image_config pre = pre16();
    clasp_image_augment_config aug = full_aug();
    aug.brightness = 0.9f;
    aug.contrast = 0.9f;
    aug.saturation = 0.9f;
    float b[N];
    for (int k = 0; k < 20; k++) {
        char key[16];
        snprintf(key, sizeof key, "s%d", k);
        cr_assert_eq(clasp_image_augment(&img, &pre, &aug, 5, 0, key, b), CLASP_OK);
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < S * S; i++) {
                float v = b[c * S * S + i] * pre.std[c] + pre.mean[c];
                cr_assert(v > -1e-5f && v < 1.0f + 1e-5f, "value %g", (double)v);
            }
    }
    clasp_image_free(&img);
}

Test(augment, random_resized_crop_bounds) {
    int hist_fallback = 0;
    for (int k = 0; k < 2000; k++) {
        clasp_rng r;
        clasp_rng_init(&r, 9, CLASP_RNG_TEST, 0, (uint64_t)k);
        const int w = 20 + k % 97, h = 10 + (k * 7) % 131;
        int x, y, cw, ch;
        clasp_image_random_resized_crop(w, h, 0.08f, 1.0f, 0.75f, 4.0f / 3.0f, &r, &x, &y, &cw,
                                        &ch);
        cr_assert(x >= 0 && y >= 0 && cw >= 1 && ch >= 1 && x + cw <= w && y + ch <= h,
                  "%dx%d: crop %d,%d %dx%d", w, h, x, y, cw, ch);
        double frac = (double)cw * ch / ((double)w * h);
        if (frac > 1.0 + 1e-9 || frac < 0.05) hist_fallback++;
    }
    cr_assert_lt(hist_fallback, 40, "%d crops outside the scale range", hist_fallback);
    /* A 1000x10 strip: no try fits the ratio range, so the clamped central crop. */
    clasp_rng r;
    clasp_rng_init(&r, 1, CLASP_RNG_TEST, 0, 0);
    int x, y, cw, ch;
    clasp_image_random_resized_crop(1000, 10, 0.08f, 1.0f, 0.75f, 4.0f / 3.0f, &r, &x, &y, &cw,
                                    &ch);
    cr_assert(ch <= 10 && cw <= 14 && x + cw <= 1000, "crop %d,%d %dx%d", x, y, cw, ch);
}

Test(augment, caption_choice) {
    int seen[5] = {0};
    int changed = 0;
    for (int k = 0; k < 200; k++) {
        char key[16];
        snprintf(key, sizeof key, "key%03d", k);
        size_t a = clasp_caption_choose(11, 0, key, 5);
        cr_assert_lt(a, 5);
        cr_assert_eq(a, clasp_caption_choose(11, 0, key, 5), "deterministic");
        seen[a]++;
        if (clasp_caption_choose(11, 1, key, 5) != a) changed++;
    }
    for (int i = 0; i < 5; i++) cr_assert_gt(seen[i], 15, "caption %d chosen %d times", i, seen[i]);
    cr_assert_gt(changed, 100, "epoch changes the choice for most keys (%d)", changed);
    cr_assert_eq(clasp_caption_choose(11, 0, "x", 1), 0);
    cr_assert_eq(clasp_caption_choose(11, 0, "x", 0), 0);
}

Test(augment, config_json) {
    cJSON *o = cJSON_Parse("{\"scale\": [0.5, 1.0], \"hflip\": 0, \"brightness\": 0.2}");
    clasp_image_augment_config c;
    cr_assert_eq(clasp_image_augment_config_from_json(o, "t.json", "augment", &c), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert_eq(c.scale_min, 0.5f);
    cr_assert_eq(c.hflip, 0.0f);
    cr_assert_eq(c.brightness, 0.2f);
    cJSON_Delete(o);
    o = cJSON_Parse("{\"hflip\": 1.5}");
    cr_assert_eq(clasp_image_augment_config_from_json(o, "t.json", "augment", &c),
                 CLASP_ERR_CONFIG);
    cr_assert(strstr(clasp_last_error(), "hflip"), "%s", clasp_last_error());
    cJSON_Delete(o);
    o = cJSON_Parse("{\"scale\": [0.5]}");
    cr_assert_eq(clasp_image_augment_config_from_json(o, "t.json", "augment", &c),
                 CLASP_ERR_CONFIG);
    cJSON_Delete(o);
}
