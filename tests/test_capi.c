/* test_capi.c: the C API added for users of an installed libclasp (include/clasp.h): raw pixels
 * and float samples embed as the same image or audio file does, the version and format
 * queries, and bad input (not an export, a truncated model, a foreign tokenizer.json, an empty
 * image, NaN audio, NULL arguments) is an error with a message, never a crash. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sndfile.h>

#include "include/clasp.h"
#include "export/export.h"
#include "train/checkpoint.h"
#include "train/runstate.h"
#include "tests/fixtures.h"

static void export_(const char *config, const char *dir, uint64_t seed) {
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/configs/%s", CLASP_SOURCE_DIR, config);
    cr_assert(fx_export_model(cfg, NULL, dir, seed), "%s", clasp_last_error());
}

static void expect_error_(int rc, const char *what, const char *must) {
    cr_assert_neq(rc, 0, "%s should fail", what);
    cr_assert(strstr(clasp_last_error(), must), "%s: message '%s' does not say '%s'", what,
              clasp_last_error(), must);
}

Test(capi, version_and_format_queries) {
    char cm[4200];
    snprintf(cm, sizeof cm, "%s/CMakeLists.txt", CLASP_SOURCE_DIR);
    char *text = fx_read_text(cm);
    const char *p = strstr(text, "project(clasp VERSION ");
    cr_assert(p);
    char version[32];
    cr_assert_eq(sscanf(p, "project(clasp VERSION %31[0-9.]", version), 1);
    free(text);
    cr_expect_str_eq(clasp_version(), version);
    cr_expect_str_eq(clasp_backend(), CLASP_BACKEND_NAME);
    cr_expect(!strncmp(clasp_precisions(), "fp32", 4), "%s", clasp_precisions());
    cr_expect_eq(clasp_format_version("export"), CLASP_EXPORT_FORMAT_VERSION);
    cr_expect_eq(clasp_format_version("checkpoint"), CLASP_CKPT_FORMAT_VERSION);
    cr_expect_eq(clasp_format_version("run"), CLASP_RUN_FORMAT_VERSION);
    cr_expect_eq(clasp_format_version("manifest.json"), -1);
    cr_expect(strstr(clasp_last_error(), "'manifest.json'"), "%s", clasp_last_error());
    cr_expect_eq(clasp_format_version(NULL), -1);
}

Test(capi, pixels_embed_as_the_same_png_file) {
    char tmp[1024], dir[1100], f[3][1200];
    fx_scratch("capi_pixels", tmp, dir, "export", NULL);
    export_("fmnist-small.json", dir, 3);
    clasp_handle *h = clasp_model_open(dir, 1);
    cr_assert(h, "%s", clasp_last_error());
    const int shape[9] = {28, 28, 1, 23, 37, 3, 30, 20, 4}; /* gray, RGB, RGBA */
    uint8_t *px[3];
    const char *files[3];
    for (int i = 0; i < 3; i++) {
        int H = shape[3 * i], W = shape[3 * i + 1], C = shape[3 * i + 2];
        px[i] = fx_random_pixels(W, H, C, 40 + (uint64_t)i);
        snprintf(f[i], sizeof f[i], "%s/p%d.png", tmp, i);
        cr_assert(fx_write_png(f[i], px[i], W, H, C));
        files[i] = f[i];
    }
    int D = clasp_model_dim(h);
    float *a = malloc(sizeof(float) * 3 * (size_t)D), *b = malloc(sizeof(float) * 3 * (size_t)D);
    cr_assert_eq(clasp_model_embed_image_files(h, files, 3, a), 0, "%s", clasp_last_error());
    cr_assert_eq(clasp_model_embed_pixels(h, (const unsigned char *const *)px, shape, 3, b), 0,
                 "%s", clasp_last_error());
    cr_expect_eq(fx_max_abs_diff(a, b, 3 * (size_t)D), 0.0, "pixels differ from the PNG files");

    int bad[3] = {28, 28, 2};
    expect_error_(clasp_model_embed_pixels(h, (const unsigned char *const *)px, bad, 1, b),
                  "2 channels", "(28, 28, 2)");
    bad[0] = 0, bad[2] = 1;
    expect_error_(clasp_model_embed_pixels(h, (const unsigned char *const *)px, bad, 1, b),
                  "height 0", "image 0");
    const unsigned char *null_px[1] = {NULL};
    expect_error_(clasp_model_embed_pixels(h, null_px, shape, 1, b), "NULL pixels", "NULL");
    expect_error_(clasp_model_embed_pixels(h, NULL, shape, 1, b), "NULL list", "bad arguments");
    expect_error_(clasp_model_embed_pixels(NULL, (const unsigned char *const *)px, shape, 1, b),
                  "NULL handle", "handle NULL");
    /* the audio functions on an image-text model */
    const float *s[1] = {a};
    size_t ns[1] = {100};
    expect_error_(clasp_model_embed_audio_samples(h, s, ns, 8000, 1, b), "no audio tower",
                  "audio tower");
    for (int i = 0; i < 3; i++) free(px[i]);
    free(a), free(b);
    clasp_model_close(h);
}

Test(capi, float_samples_embed_as_the_same_wav_file) {
    char tmp[1024], dir[1100], f[2][1200];
    fx_scratch("capi_samples", tmp, dir, "export", NULL);
    export_("speech-small.json", dir, 5);
    clasp_handle *h = clasp_model_open(dir, 1);
    cr_assert(h, "%s", clasp_last_error());
    const int rate = 16000; /* the model's is 8000: both paths resample */
    const size_t len[2] = {(size_t)(1.1 * rate), (size_t)(4.3 * rate)};
    float *x[2];
    const char *files[2];
    for (int i = 0; i < 2; i++) {
        x[i] = malloc(len[i] * sizeof(float));
        for (size_t k = 0; k < len[i]; k++)
            x[i][k] = (float)(0.4 * sin(0.03 * (double)k * (1 + i)) + 0.05 * cos(0.7 * (double)k));
        snprintf(f[i], sizeof f[i], "%s/s%d.wav", tmp, i);
        cr_assert(
            fx_write_audio(f[i], SF_FORMAT_WAV | SF_FORMAT_FLOAT, rate, 1, x[i], (int64_t)len[i]));
        files[i] = f[i];
    }
    int D = clasp_model_dim(h);
    float *a = malloc(sizeof(float) * 2 * (size_t)D), *b = malloc(sizeof(float) * 2 * (size_t)D);
    cr_assert_eq(clasp_model_embed_audio_files(h, files, 2, a), 0, "%s", clasp_last_error());
    cr_assert_eq(clasp_model_embed_audio_samples(h, (const float *const *)x, len, rate, 2, b), 0,
                 "%s", clasp_last_error());
    cr_expect_eq(fx_max_abs_diff(a, b, 2 * (size_t)D), 0.0, "samples differ from the WAV files");

    x[1][1000] = NAN;
    expect_error_(clasp_model_embed_audio_samples(h, (const float *const *)x, len, rate, 2, b),
                  "NaN sample", "audio 1");
    size_t zero[1] = {0};
    expect_error_(clasp_model_embed_audio_samples(h, (const float *const *)x, zero, rate, 1, b),
                  "empty clip", "audio 0");
    expect_error_(clasp_model_embed_audio_samples(h, (const float *const *)x, len, 0, 1, b),
                  "rate 0", "sample rate 0");
    expect_error_(clasp_model_embed_audio_samples(h, NULL, len, rate, 1, b), "NULL list",
                  "bad arguments");
    const char *texts[1] = {"hello"};
    cr_assert_eq(clasp_model_embed_texts(h, texts, 1, b), 0, "%s", clasp_last_error());
    expect_error_(clasp_model_embed_image_files(h, texts, 1, b), "no image tower", "image tower");
    for (int i = 0; i < 2; i++) free(x[i]);
    free(a), free(b);
    clasp_model_close(h);
}

static void copy_export_(const char *from, const char *to) {
    static const char *const names[] = {"model.safetensors", "config.json", "tokenizer.json",
                                        "preprocess.json"};
    mkdir(to, 0777);
    for (size_t i = 0; i < 4; i++) {
        char a[1300], b[1300];
        snprintf(a, sizeof a, "%s/%s", from, names[i]);
        snprintf(b, sizeof b, "%s/%s", to, names[i]);
        size_t n;
        uint8_t *data = fx_read(a, &n);
        cr_assert(data && fx_write(b, data, n));
        free(data);
    }
}

Test(capi, bad_exports_and_inputs_are_errors) {
    char tmp[1024], dir[1100], bad[1100], p[1300];
    fx_scratch("capi_bad", tmp, dir, "export", bad, "bad", NULL);
    export_("fmnist-small.json", dir, 3);

    /* a folder that is not an export */
    mkdir(bad, 0777);
    cr_assert_null(clasp_model_open(bad, 1));
    cr_assert(strstr(clasp_last_error(), bad), "%s", clasp_last_error());
    cr_assert_null(clasp_model_open(NULL, 1));
    cr_assert_neq(clasp_last_error()[0], 0);

    /* a truncated model.safetensors */
    copy_export_(dir, bad);
    snprintf(p, sizeof p, "%s/model.safetensors", bad);
    size_t n;
    uint8_t *st = fx_read(p, &n);
    cr_assert(st && fx_write(p, st, n / 2));
    free(st);
    cr_assert_null(clasp_model_open(bad, 1));
    cr_assert(strstr(clasp_last_error(), "model.safetensors"), "%s", clasp_last_error());

    /* a tokenizer.json of another format (a Hugging Face tokenizers file) */
    copy_export_(dir, bad);
    snprintf(p, sizeof p, "%s/tokenizer.json", bad);
    cr_assert(fx_write_str(p, "{\"version\": \"1.0\", \"truncation\": null, \"model\": {\"type\": "
                              "\"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}"));
    cr_assert_null(clasp_model_open(bad, 1));
    cr_assert(strstr(clasp_last_error(), "tokenizer.json"), "%s", clasp_last_error());

    /* an image of 0 bytes, in memory and as a file */
    clasp_handle *h = clasp_model_open(dir, 1);
    cr_assert(h, "%s", clasp_last_error());
    float out[1024];
    cr_assert(clasp_model_dim(h) <= 1024);
    const char empty[1] = {0};
    const void *data[1] = {empty};
    size_t nb[1] = {0};
    expect_error_(clasp_model_embed_images(h, data, nb, 1, out), "an empty image", "image 0");
    snprintf(p, sizeof p, "%s/empty.png", tmp);
    cr_assert(fx_write(p, "", 0));
    const char *files[1] = {p};
    expect_error_(clasp_model_embed_image_files(h, files, 1, out), "an empty image file", p);

    /* a NULL handle everywhere */
    expect_error_(clasp_model_dim(NULL) == 0, "dim of NULL", "NULL handle");
    cr_assert_eq(clasp_model_dim(NULL), 0);
    expect_error_(clasp_model_set_precision(NULL, "fp32"), "precision of NULL", "NULL handle");
    cr_assert_str_eq(clasp_model_trained_precision(NULL), "");
    cr_assert_eq(clasp_model_has_modality(NULL, 0), 0);
    expect_error_(clasp_model_set_precision(h, NULL), "precision NULL", "precision");
    clasp_model_close(h);
    clasp_model_close(NULL);
}
