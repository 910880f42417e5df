/* test_config.c: model config parsing: the towers (encoders/config.c) and the preprocessing
 * (modalities/preprocess.c) of one file. configs/fmnist-small.json and configs/speech-small.json
 * load with the expected values; every kind of bad config is CLASP_ERR_CONFIG naming the file
 * and the field; the audio tower's input size agrees with the front-end's (modalities/audio.h)
 * for the same fields; serialisation round-trips. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "encoders/model.h"
#include "modalities/audio.h"
#include "fixtures.h"
#include "modalities/preprocess.h"

static const char *fmnist_path(char *buf, size_t cap) {
    snprintf(buf, cap, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    return buf;
}

Test(config, fmnist_small_loads) {
    char path[4096];
    clasp_model_config c;
    cr_assert_eq(clasp_model_config_load(fmnist_path(path, sizeof path), &c), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert_eq(c.embed_dim, 128);
    cr_assert(fabs(c.init_logit_scale - log(1.0 / 0.07)) < 1e-12);
    cr_assert(fabs(c.max_logit_scale - log(100.0)) < 1e-12);
    cr_assert(!c.has_logit_bias);
    cr_assert_eq(c.image.type, CLASP_IMAGE_CNN);
    cr_assert_eq(c.image.channels, 1);
    cr_assert_eq(c.image.size, 28);
    cr_assert_eq(c.image.n_conv, 2);
    cr_assert_eq(c.image.conv[0].channels, 32);
    cr_assert_eq(c.image.conv[1].channels, 64);
    cr_assert_eq(c.image.conv[1].kernel, 3);
    cr_assert_eq(c.image.conv[1].padding, 1);
    cr_assert_eq(c.image.conv[1].pool, 2);
    cr_assert_eq(c.image.n_fc, 1);
    cr_assert_eq(c.image.fc[0], 256);
    cr_assert_eq(c.text.type, CLASP_TEXT_TRANSFORMER);
    cr_assert_eq(c.text.vocab_size, 259);
    cr_assert_eq(c.text.context_length, 32);
    cr_assert_eq(c.text.width, 128);
    cr_assert_eq(c.text.layers, 2);
    cr_assert_eq(c.text.heads, 4);
    cr_assert_eq(c.text.mlp_width, 512);
    cr_assert(c.text.causal);
    cr_assert_eq(c.text.pool, CLASP_POOL_EOS);
    cr_assert_eq(c.text.eos_id, 257);
    cr_assert_eq(c.text.pad_id, 258);
    cr_assert(c.text.act == CLASP_ACT_GELU);
    cr_assert_float_eq(c.text.ln_eps, 1e-5f, 1e-12f);
    clasp_preprocess pre;
    cr_assert_eq(clasp_preprocess_load(path, &pre), CLASP_OK, "%s", clasp_last_error());
    cr_assert(pre.has_image && pre.has_text && !pre.has_audio);
    cr_assert_eq(pre.image.channels, 1);
    cr_assert_eq(pre.image.size, 28);
    cr_assert_float_eq(pre.image.mean[0], 0.2860f, 1e-7f);
    cr_assert_float_eq(pre.image.std[0], 0.3530f, 1e-7f);
    cr_assert_eq(pre.image.mode, CLASP_IMAGE_RESIZE_SQUASH);
    cr_assert_eq(pre.context_length, 32);
    cr_assert_str_eq(pre.tokenizer_spec.type, "bytes");
    cr_assert_eq(pre.tokenizer_spec.bos, 256);
    cr_assert_eq(pre.tokenizer_spec.eos, 257);
    cr_assert_eq(pre.tokenizer_spec.pad, 258);
    cr_assert_eq(clasp_tokenizer_kind(pre.tokenizer), CLASP_TOKENIZER_BYTES);
    clasp_preprocess_free(&pre);
    clasp_preprocess_free(&pre); /* twice is fine */
}

/* A valid config to mutate: CNN + text. */
static const char *BASE =
    "{\"embed_dim\": 8,"
    " \"image\": {\"type\": \"cnn\", \"channels\": 1, \"size\": 8,"
    "   \"conv\": [{\"channels\": 4, \"kernel\": 3, \"padding\": 1, \"pool\": 2}], \"fc\": [16]},"
    " \"text\": {\"type\": \"transformer\", \"vocab_size\": 20, \"context_length\": 6,"
    "   \"width\": 8, \"layers\": 1, \"heads\": 2, \"mlp_width\": 16, \"eos_id\": 1}}";

/* Parses text (a whole document) as file name `what`: its towers into *c, its preprocessing
 * into *pre (freed by the caller; NULL: composed and freed here), as every reader of a model
 * config does. Returns the first error. */
static clasp_status parse_pre(const char *text, const char *what, clasp_model_config *c,
                              clasp_preprocess *pre) {
    cJSON *root;
    clasp_preprocess own;
    if (!pre) pre = &own;
    memset(pre, 0, sizeof *pre);
    clasp_status s = clasp_json_parse(text, strlen(text), what, &root);
    if (s != CLASP_OK) return s;
    s = clasp_model_config_parse(root, what, c);
    if (s == CLASP_OK) s = clasp_preprocess_parse(root, what, pre);
    cJSON_Delete(root);
    if (pre == &own) clasp_preprocess_free(&own);
    return s;
}

static clasp_status parse(const char *text, const char *what, clasp_model_config *c) {
    return parse_pre(text, what, c, NULL);
}

/* Replaces the first occurrence of `from` in BASE with `to`. */
static void mutate(char *out, size_t cap, const char *from, const char *to) {
    const char *p = strstr(BASE, from);
    cr_assert(p, "fixture: '%s' not in BASE", from);
    snprintf(out, cap, "%.*s%s%s", (int)(p - BASE), BASE, to, p + strlen(from));
}

static void expect_bad(const char *from, const char *to, clasp_status code, const char *field) {
    char doc[2048];
    clasp_model_config c;
    mutate(doc, sizeof doc, from, to);
    clasp_status s = parse(doc, "bad.json", &c);
    cr_assert_eq(s, code, "replacing '%s' by '%s': status %s (%s)", from, to, clasp_status_name(s),
                 clasp_last_error());
    const char *msg = clasp_last_error();
    cr_assert(strstr(msg, "bad.json"), "message lacks the file: %s", msg);
    cr_assert(strstr(msg, field), "message lacks '%s': %s", field, msg);
}

Test(config, base_fixture_is_valid) {
    clasp_model_config c;
    clasp_preprocess pre;
    cr_assert_eq(parse_pre(BASE, "base.json", &c, &pre), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(c.text.pool, CLASP_POOL_EOS);
    cr_assert_eq(c.text.pad_id, -1);
    cr_assert_eq(pre.image.mode, CLASP_IMAGE_RESIZE_SHORTEST);
    cr_assert_float_eq(pre.image.std[0], 1.0f, 0.0f);
    cr_assert_float_eq(pre.image.mean[0], 0.0f, 0.0f);
    cr_assert_str_eq(pre.tokenizer_spec.type, ""); /* no tokenizer object: byte-level */
    cr_assert_eq(clasp_tokenizer_kind(pre.tokenizer), CLASP_TOKENIZER_BYTES);
    clasp_preprocess_free(&pre);
}

Test(config, unknown_tower_type) {
    expect_bad("\"type\": \"cnn\"", "\"type\": \"resnet\"", CLASP_ERR_CONFIG, "image.type");
    expect_bad("\"type\": \"transformer\"", "\"type\": \"lstm\"", CLASP_ERR_CONFIG, "text.type");
}

Test(config, missing_fields) {
    expect_bad("\"embed_dim\": 8,", "", CLASP_ERR_CONFIG, "embed_dim");
    expect_bad("\"width\": 8, ", "", CLASP_ERR_CONFIG, "text.width");
    expect_bad("\"kernel\": 3, ", "", CLASP_ERR_CONFIG, "image.conv[0].kernel");
    expect_bad("\"size\": 8,", "", CLASP_ERR_CONFIG, "image.size");
    expect_bad(", \"eos_id\": 1", "", CLASP_ERR_CONFIG, "text.eos_id");
}

Test(config, non_positive_sizes) {
    expect_bad("\"embed_dim\": 8", "\"embed_dim\": 0", CLASP_ERR_CONFIG, "embed_dim");
    expect_bad("\"vocab_size\": 20", "\"vocab_size\": -3", CLASP_ERR_CONFIG, "text.vocab_size");
    expect_bad("\"heads\": 2", "\"heads\": 0", CLASP_ERR_CONFIG, "text.heads");
    expect_bad("\"channels\": 4", "\"channels\": -4", CLASP_ERR_CONFIG, "image.conv[0].channels");
    expect_bad("\"fc\": [16]", "\"fc\": [0]", CLASP_ERR_CONFIG, "image.fc");
    expect_bad("\"size\": 8", "\"size\": 2.5", CLASP_ERR_CONFIG, "image.size");
}

Test(config, heads_must_divide_width) {
    expect_bad("\"heads\": 2", "\"heads\": 3", CLASP_ERR_CONFIG, "text.heads");
}

Test(config, spatial_size_must_survive) {
    expect_bad("\"pool\": 2", "\"pool\": 16", CLASP_ERR_CONFIG, "image.conv[0].pool");
    expect_bad("\"kernel\": 3", "\"kernel\": 20", CLASP_ERR_CONFIG, "image.conv[0].kernel");
}

Test(config, embed_dim_mismatch) {
    expect_bad("\"fc\": [16]", "\"fc\": [16], \"output_dim\": 9", CLASP_ERR_CONFIG,
               "image.output_dim");
    expect_bad("\"mlp_width\": 16", "\"mlp_width\": 16, \"output_dim\": 4", CLASP_ERR_CONFIG,
               "text.output_dim");
}

Test(config, unknown_key_is_a_typo) {
    expect_bad("\"mlp_width\": 16", "\"mlp_widht\": 16", CLASP_ERR_CONFIG, "text.mlp_widht");
    expect_bad("\"embed_dim\": 8", "\"embed_dim\": 8, \"embed_dims\": 8", CLASP_ERR_CONFIG,
               "embed_dims");
    expect_bad("\"pool\": 2", "\"pool\": 2, \"dilation\": 2", CLASP_ERR_CONFIG,
               "image.conv[0].dilation");
    /* keys starting with '_' are comments */
    char doc[2048];
    clasp_model_config c;
    mutate(doc, sizeof doc, "\"embed_dim\": 8", "\"_note\": \"hi\", \"embed_dim\": 8");
    cr_assert_eq(parse(doc, "ok.json", &c), CLASP_OK, "%s", clasp_last_error());
}

Test(config, bad_enums_and_ids) {
    expect_bad("\"eos_id\": 1", "\"eos_id\": 1, \"pool\": \"max\"", CLASP_ERR_CONFIG, "text.pool");
    expect_bad("\"eos_id\": 1", "\"eos_id\": 20", CLASP_ERR_CONFIG, "text.eos_id");
    expect_bad("\"eos_id\": 1", "\"eos_id\": 1, \"act\": \"relu\"", CLASP_ERR_CONFIG, "text.act");
    expect_bad("\"eos_id\": 1", "\"eos_id\": 1, \"causal\": 1", CLASP_ERR_CONFIG, "text.causal");
    expect_bad("\"fc\": [16]", "\"fc\": [16], \"mean\": [0.1, 0.2]", CLASP_ERR_CONFIG,
               "image.mean");
    expect_bad("\"fc\": [16]", "\"fc\": [16], \"std\": [0]", CLASP_ERR_CONFIG, "image.std");
    expect_bad("\"fc\": [16]", "\"fc\": [16], \"resize\": \"stretch\"", CLASP_ERR_CONFIG,
               "image.resize");
    expect_bad("\"fc\": [16]", "\"fc\": [16], \"resize\": 3", CLASP_ERR_CONFIG, "image.resize");
    expect_bad("\"eos_id\": 1", "\"eos_id\": 1, \"tokenizer\": {\"type\": \"bytes\", \"bpe\": 1}",
               CLASP_ERR_CONFIG, "text.tokenizer.bpe");
    expect_bad("\"eos_id\": 1", "\"eos_id\": 1, \"tokenizer\": {\"type\": \"wordpiece\"}",
               CLASP_ERR_CONFIG, "text.tokenizer.type");
    expect_bad("\"eos_id\": 1", "\"eos_id\": 1, \"tokenizer\": {\"type\": \"bytes\", \"bos\": 30}",
               CLASP_ERR_CONFIG, "text.tokenizer.bos");
    expect_bad("\"embed_dim\": 8", "\"embed_dim\": 8, \"init_logit_scale\": 9", CLASP_ERR_CONFIG,
               "init_logit_scale");
}

Test(config, vit_checks) {
    const char *vit = "{\"embed_dim\": 8, \"image\": {\"type\": \"vit\", \"channels\": 3, "
                      "\"size\": 8, \"patch_size\": 3, \"width\": 8, \"layers\": 1, "
                      "\"heads\": 2, \"mlp_width\": 16}}";
    clasp_model_config c;
    cr_assert_eq(parse(vit, "vit.json", &c), CLASP_ERR_CONFIG);
    cr_assert(strstr(clasp_last_error(), "image.patch_size"), "%s", clasp_last_error());
    const char *ok = "{\"embed_dim\": 8, \"image\": {\"type\": \"vit\", \"channels\": 3, "
                     "\"size\": 8, \"patch_size\": 4, \"width\": 8, \"layers\": 1, "
                     "\"heads\": 2, \"mlp_width\": 16, \"pool\": \"mean\"}}";
    cr_assert_eq(parse(ok, "vit.json", &c), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(c.image.type, CLASP_IMAGE_VIT);
    cr_assert_eq(c.image.pool, CLASP_POOL_MEAN);
    cr_assert_eq(c.text.type, CLASP_TEXT_NONE);
}

static void roundtrip(const clasp_model_config *c, const clasp_preprocess *pre);

/* A valid audio CNN + text config to mutate. */
static const char *ABASE =
    "{\"embed_dim\": 8,"
    " \"audio\": {\"type\": \"audio_cnn\", \"sample_rate\": 8000, \"clip_seconds\": 0.5,"
    "   \"hop_length\": 80, \"n_fft\": 256, \"n_mels\": 16, \"window\": \"hann\","
    "   \"conv\": [{\"channels\": 4, \"kernel\": 3, \"padding\": 1, \"pool\": 2}], \"fc\": [16],"
    "   \"norm_mean\": -5.5, \"norm_std\": 6},"
    " \"text\": {\"type\": \"transformer\", \"vocab_size\": 20, \"context_length\": 6,"
    "   \"width\": 8, \"layers\": 1, \"heads\": 2, \"mlp_width\": 16, \"eos_id\": 1}}";

/* ABASE with an AST instead of the CNN. */
static const char *ASTBASE =
    "{\"embed_dim\": 8,"
    " \"audio\": {\"type\": \"ast\", \"sample_rate\": 8000, \"clip_seconds\": 0.5,"
    "   \"hop_length\": 80, \"n_mels\": 16, \"patch_freq\": 4, \"patch_time\": 8,"
    "   \"width\": 8, \"layers\": 1, \"heads\": 2, \"mlp_width\": 16}}";

static void expect_bad_in(const char *base, const char *from, const char *to, const char *field) {
    char doc[4096];
    clasp_model_config c;
    const char *p = strstr(base, from);
    cr_assert(p, "fixture: '%s' not in the base", from);
    snprintf(doc, sizeof doc, "%.*s%s%s", (int)(p - base), base, to, p + strlen(from));
    clasp_status s = parse(doc, "badaudio.json", &c);
    cr_assert_eq(s, CLASP_ERR_CONFIG, "replacing '%s' by '%s': status %s (%s)", from, to,
                 clasp_status_name(s), clasp_last_error());
    const char *msg = clasp_last_error();
    cr_assert(strstr(msg, "badaudio.json"), "message lacks the file: %s", msg);
    cr_assert(strstr(msg, field), "message lacks '%s': %s", field, msg);
}

Test(config, audio_cnn_parses) {
    clasp_model_config c;
    clasp_preprocess pre;
    cr_assert_eq(parse_pre(ABASE, "a.json", &c, &pre), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(c.audio.type, CLASP_AUDIO_TYPE_CNN);
    cr_assert_eq(c.image.type, CLASP_IMAGE_NONE);
    cr_assert_eq(c.audio.n_mels, 16);
    cr_assert_eq(c.audio.n_frames, 1 + 4000 / 80);
    cr_assert_eq(c.audio.sample_rate, 8000);
    cr_assert(c.audio.center);
    cr_assert_eq(c.audio.n_conv, 1);
    cr_assert_eq(c.audio.conv[0].pool, 2);
    cr_assert_eq(c.audio.n_fc, 1);
    cr_assert(clasp_model_config_has(&c, CLASP_TOWER_AUDIO));
    cr_assert(!clasp_model_config_has(&c, CLASP_TOWER_IMAGE));
    cr_assert_eq(clasp_model_input_elems(&c, CLASP_TOWER_AUDIO), (size_t)16 * 51);
    cr_assert_eq(clasp_model_input_elems(&c, CLASP_TOWER_TEXT), (size_t)6);
    cr_assert_eq(clasp_model_input_elems(&c, CLASP_TOWER_IMAGE), (size_t)0);
    /* conv1 16x51 -> 16x51 x 4 channels x 9 taps; gap -> fc 4->16 -> 16->8 */
    double want = 16.0 * 51 * 4 * 9 + 4.0 * 16 + 16.0 * 8;
    cr_assert_float_eq(clasp_model_forward_macs(&c, CLASP_TOWER_AUDIO), want, 1e-9);
    /* the front-end of the same object, composed by modalities/preprocess.c */
    cr_assert(pre.has_audio && pre.has_text && !pre.has_image);
    const clasp_audio_config ac = pre.audio;
    cr_assert_eq(ac.mel.window, CLASP_WINDOW_HANN);
    cr_assert_eq(ac.mel.n_mels, 16);
    cr_assert_eq(ac.mel.n_fft, 256);
    cr_assert_eq(ac.mel.norm_mean, -5.5);
    cr_assert_eq(clasp_audio_clip_frames(&ac), (size_t)c.audio.n_frames);
    clasp_preprocess_free(&pre);
}

/* The tower's n_frames equals clasp_audio_clip_frames for the same fields, over rates, clip
 * lengths (including ones that round), hops, center on and off. */
Test(config, audio_frames_agree_with_frontend) {
    static const int rates[] = {8000, 16000, 22050, 44100};
    static const double secs[] = {0.25, 1.0, 2.9999, 3.00004, 10.0};
    static const int hops[] = {80, 128, 160, 441};
    int n = 0;
    for (int r = 0; r < 4; r++)
        for (int k = 0; k < 5; k++)
            for (int h = 0; h < 4; h++)
                for (int center = 0; center < 2; center++) {
                    char doc[1024];
                    snprintf(doc, sizeof doc,
                             "{\"embed_dim\": 4, \"audio\": {\"type\": \"audio_cnn\","
                             " \"sample_rate\": %d, \"clip_seconds\": %.6f, \"hop_length\": %d,"
                             " \"n_fft\": 512, \"win_length\": 400, \"n_mels\": 8,"
                             " \"center\": %s, \"conv\": [{\"channels\": 2, \"kernel\": 1}]}}",
                             rates[r], secs[k], hops[h], center ? "true" : "false");
                    clasp_model_config c;
                    clasp_preprocess pre;
                    cr_assert_eq(parse_pre(doc, "f.json", &c, &pre), CLASP_OK, "%s",
                                 clasp_last_error());
                    const clasp_audio_config ac = pre.audio;
                    clasp_preprocess_free(&pre);
                    cr_assert_eq((size_t)c.audio.n_frames, clasp_audio_clip_frames(&ac),
                                 "rate %d, %g s, hop %d, center %d", rates[r], secs[k], hops[h],
                                 center);
                    n++;
                }
    cr_assert_eq(n, 160);
}

Test(config, ast_parses) {
    clasp_model_config c;
    cr_assert_eq(parse(ASTBASE, "ast.json", &c), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(c.audio.type, CLASP_AUDIO_TYPE_AST);
    cr_assert_eq(c.text.type, CLASP_TEXT_NONE);
    cr_assert_eq(c.audio.patch_freq, 4);
    cr_assert_eq(c.audio.patch_time, 8);
    cr_assert_eq(c.audio.pool, CLASP_POOL_CLS);
    cr_assert_float_eq(c.audio.ln_eps, 1e-5f, 0.0f);
    cr_assert(c.audio.act == CLASP_ACT_GELU);
    cr_assert_eq(c.audio.n_frames, 51);
    cr_assert_eq(c.audio.n_fft, 0); /* not given, not needed with center */
}

Test(config, bad_audio_configs_name_the_field) {
    expect_bad_in(ABASE, "\"audio_cnn\"", "\"wav2vec\"", "audio.type");
    expect_bad_in(ABASE, "\"sample_rate\": 8000, ", "", "audio.sample_rate");
    expect_bad_in(ABASE, "\"sample_rate\": 8000", "\"sample_rate\": 0", "audio.sample_rate");
    expect_bad_in(ABASE, "\"clip_seconds\": 0.5,", "", "audio.clip_seconds");
    expect_bad_in(ABASE, "\"clip_seconds\": 0.5", "\"clip_seconds\": -1", "audio.clip_seconds");
    expect_bad_in(ABASE, "\"hop_length\": 80,", "", "audio.hop_length");
    expect_bad_in(ABASE, "\"n_mels\": 16,", "", "audio.n_mels");
    expect_bad_in(ABASE, "\"n_mels\": 16", "\"n_mels\": 16, \"n_mel\": 8", "audio.n_mel");
    expect_bad_in(ABASE, "\"window\": \"hann\"", "\"window\": 3", "audio.window");
    expect_bad_in(ABASE, "\"norm_std\": 6", "\"norm_std\": \"six\"", "audio.norm_std");
    expect_bad_in(ABASE, "\"norm_std\": 6", "\"norm_std\": 6, \"center\": 1", "audio.center");
    /* center false needs n_fft, and a clip shorter than n_fft has no frame */
    expect_bad_in(ABASE, "\"n_fft\": 256,", "\"center\": false,", "audio.n_fft");
    expect_bad_in(ABASE, "\"clip_seconds\": 0.5", "\"clip_seconds\": 0.01, \"center\": false",
                  "audio.clip_seconds");
    expect_bad_in(ABASE, "\"pool\": 2", "\"pool\": 32", "audio.conv[0].pool");
    expect_bad_in(ABASE, "\"kernel\": 3", "\"kernel\": 40", "audio.conv[0].kernel");
    expect_bad_in(ABASE, "[{\"channels\": 4, \"kernel\": 3, \"padding\": 1, \"pool\": 2}]", "[]",
                  "audio.conv");
    expect_bad_in(ABASE, "\"fc\": [16]", "\"fc\": [16], \"width\": 8", "audio.width");
    expect_bad_in(ABASE, "\"fc\": [16]", "\"fc\": [16], \"output_dim\": 9", "audio.output_dim");
    expect_bad_in(ASTBASE, "\"patch_time\": 8", "\"patch_time\": 52", "audio.patch_time");
    expect_bad_in(ASTBASE, "\"patch_freq\": 4", "\"patch_freq\": 17", "audio.patch_freq");
    expect_bad_in(ASTBASE, "\"patch_freq\": 4, ", "", "audio.patch_freq");
    expect_bad_in(ASTBASE, "\"heads\": 2", "\"heads\": 3", "audio.heads");
    expect_bad_in(ASTBASE, "\"mlp_width\": 16", "\"mlp_width\": 16, \"pool\": \"max\"",
                  "audio.pool");
    expect_bad_in(ASTBASE, "\"mlp_width\": 16", "\"mlp_width\": 16, \"conv\": []", "audio.conv");
    expect_bad_in(ASTBASE, "\"mlp_width\": 16", "\"mlp_width\": 16, \"act\": \"relu\"",
                  "audio.act");
    /* not an object */
    clasp_model_config c;
    cr_assert_eq(parse("{\"embed_dim\": 8, \"audio\": 3}", "badaudio.json", &c), CLASP_ERR_CONFIG);
    cr_assert(strstr(clasp_last_error(), "audio"), "%s", clasp_last_error());
}

Test(config, image_audio_text_binding) {
    /* all three towers in one config (ImageBind-style binding through text) */
    char doc[4096];
    const char *img = "\"image\": {\"type\": \"cnn\", \"channels\": 1, \"size\": 8,"
                      " \"conv\": [{\"channels\": 4, \"kernel\": 3}]}, ";
    const char *p = strstr(ABASE, "\"audio\"");
    snprintf(doc, sizeof doc, "%.*s%s%s", (int)(p - ABASE), ABASE, img, p);
    clasp_model_config c;
    cr_assert_eq(parse(doc, "three.json", &c), CLASP_OK, "%s", clasp_last_error());
    cr_assert(clasp_model_config_has(&c, CLASP_TOWER_IMAGE));
    cr_assert(clasp_model_config_has(&c, CLASP_TOWER_TEXT));
    cr_assert(clasp_model_config_has(&c, CLASP_TOWER_AUDIO));
}

Test(config, speech_small_loads) {
    char path[4096];
    snprintf(path, sizeof path, "%s/configs/speech-small.json", CLASP_SOURCE_DIR);
    clasp_model_config c;
    cr_assert_eq(clasp_model_config_load(path, &c), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(c.embed_dim, 128);
    cr_assert_eq(c.audio.type, CLASP_AUDIO_TYPE_CNN);
    cr_assert_eq(c.audio.sample_rate, 8000);
    cr_assert_eq(c.audio.n_mels, 64);
    cr_assert_eq(c.audio.n_frames, 301);
    cr_assert_eq(c.audio.n_conv, 4);
    cr_assert_eq(c.text.context_length, 64);
    cr_assert_eq(c.image.type, CLASP_IMAGE_NONE);
    clasp_preprocess pre;
    cr_assert_eq(clasp_preprocess_load(path, &pre), CLASP_OK, "%s", clasp_last_error());
    const clasp_audio_config ac = pre.audio;
    cr_assert_eq(clasp_audio_clip_frames(&ac), (size_t)301);
    cr_assert_eq(ac.pad_mode, CLASP_AUDIO_PAD_ZERO);
    cr_assert_eq(ac.mel.win_length, 200);
    roundtrip(&c, &pre);
    clasp_preprocess_free(&pre);
}

Test(config, speech_ast_loads) {
    char path[4096];
    snprintf(path, sizeof path, "%s/configs/speech-ast.json", CLASP_SOURCE_DIR);
    clasp_model_config c;
    cr_assert_eq(clasp_model_config_load(path, &c), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(c.audio.type, CLASP_AUDIO_TYPE_AST);
    cr_assert_eq(c.audio.n_frames, 301);
    clasp_preprocess pre;
    cr_assert_eq(clasp_preprocess_load(path, &pre), CLASP_OK, "%s", clasp_last_error());
    roundtrip(&c, &pre);
    clasp_preprocess_free(&pre);
}

Test(config, no_tower_and_not_json) {
    clasp_model_config c;
    cr_assert_eq(parse("{\"embed_dim\": 8}", "empty.json", &c), CLASP_ERR_CONFIG);
    cr_assert(strstr(clasp_last_error(), "empty.json"));
    cr_assert_eq(parse("[1, 2]", "arr.json", &c), CLASP_ERR_CONFIG);
    cr_assert_eq(clasp_model_config_load("/nonexistent/x.json", &c), CLASP_ERR_IO);
    cr_assert(strstr(clasp_last_error(), "/nonexistent/x.json"));
}

/* Field by field: a config's padding bytes are unspecified, so memcmp cannot compare two. */
static bool same_audio_config(const clasp_audio_config *a, const clasp_audio_config *b) {
    const clasp_melspec_config *x = &a->mel, *y = &b->mel;
    return a->clip_seconds == b->clip_seconds && a->pad_mode == b->pad_mode &&
           a->crop_mode == b->crop_mode && a->resample_quality == b->resample_quality &&
           a->min_seconds == b->min_seconds && a->max_channels == b->max_channels &&
           a->max_source_rate == b->max_source_rate && a->min_source_rate == b->min_source_rate &&
           a->nonfinite_to_zero == b->nonfinite_to_zero && x->sample_rate == y->sample_rate &&
           x->n_fft == y->n_fft && x->win_length == y->win_length &&
           x->hop_length == y->hop_length && x->window == y->window && x->center == y->center &&
           x->pad_mode == y->pad_mode && x->n_mels == y->n_mels && x->fmin == y->fmin &&
           x->fmax == y->fmax && x->mel_scale == y->mel_scale && x->mel_norm == y->mel_norm &&
           x->power == y->power && x->log == y->log && x->log_floor == y->log_floor &&
           x->norm_mean == y->norm_mean && x->norm_std == y->norm_std;
}

/* to_json (towers, then the preprocessing) then parse gives the same config, and serialising
 * again gives the same text. The towers alone also parse back. */
static void roundtrip(const clasp_model_config *c, const clasp_preprocess *pre) {
    cJSON *j1, *j2;
    clasp_model_config back;
    clasp_preprocess pback;
    cr_assert_eq(clasp_model_config_to_json(c, &j1), CLASP_OK);
    cr_assert_eq(clasp_model_config_parse(j1, "towers", &back), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_preprocess_add_json(pre, j1), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_model_config_parse(j1, "roundtrip", &back), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert_eq(clasp_preprocess_parse(j1, "roundtrip", &pback), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert_eq(clasp_model_config_to_json(&back, &j2), CLASP_OK);
    cr_assert_eq(clasp_preprocess_add_json(&pback, j2), CLASP_OK);
    char *s1 = cJSON_PrintUnformatted(j1), *s2 = cJSON_PrintUnformatted(j2);
    cr_assert_str_eq(s1, s2);
    cr_assert_eq(back.embed_dim, c->embed_dim);
    cr_assert_eq(back.init_logit_scale, c->init_logit_scale);
    cr_assert_eq(back.image.type, c->image.type);
    cr_assert_eq(back.image.n_conv, c->image.n_conv);
    cr_assert_eq(pback.image.mean[0], pre->image.mean[0]);
    cr_assert_eq(pback.image.mode, pre->image.mode);
    cr_assert_eq(back.text.ln_eps, c->text.ln_eps);
    cr_assert_eq(back.text.eos_id, c->text.eos_id);
    cr_assert_eq(back.text.pad_id, c->text.pad_id);
    cr_assert_str_eq(pback.tokenizer_spec.type, pre->tokenizer_spec.type);
    cr_assert_eq(back.has_logit_bias, c->has_logit_bias);
    cr_assert_eq(back.audio.type, c->audio.type);
    cr_assert_eq(back.audio.n_frames, c->audio.n_frames);
    cr_assert_eq(back.audio.n_conv, c->audio.n_conv);
    cr_assert_eq(back.audio.patch_time, c->audio.patch_time);
    cr_assert(same_audio_config(&pback.audio, &pre->audio));
    cr_assert_eq(pback.n_audio_fields, pre->n_audio_fields);
    cJSON_free(s1);
    cJSON_free(s2);
    cJSON_Delete(j1);
    cJSON_Delete(j2);
    clasp_preprocess_free(&pback);
}

/* parse + roundtrip of a document */
static void roundtrip_doc(const char *doc, const char *what) {
    clasp_model_config c;
    clasp_preprocess pre;
    cr_assert_eq(parse_pre(doc, what, &c, &pre), CLASP_OK, "%s", clasp_last_error());
    roundtrip(&c, &pre);
    clasp_preprocess_free(&pre);
}

Test(config, to_json_roundtrip) {
    char path[4096];
    clasp_model_config c;
    clasp_preprocess pre;
    cr_assert_eq(clasp_model_config_load(fmnist_path(path, sizeof path), &c), CLASP_OK);
    cr_assert_eq(clasp_preprocess_load(path, &pre), CLASP_OK, "%s", clasp_last_error());
    roundtrip(&c, &pre);
    /* the serialised fmnist-small config is the file's fields in the file's order, defaults
     * made explicit (a run's config.json, an export's, its model.safetensors metadata) */
    cJSON *j;
    cr_assert_eq(clasp_model_config_to_json(&c, &j), CLASP_OK);
    cr_assert_eq(clasp_preprocess_add_json(&pre, j), CLASP_OK);
    char *txt = cJSON_PrintUnformatted(j);
    cr_assert_str_eq(
        txt,
        "{\"embed_dim\":128,\"init_logit_scale\":2.6592600369327779,\"max_logit_scale\":"
        "4.6051701859880918,\"image\":{\"type\":\"cnn\",\"channels\":1,\"size\":28,\"conv\":"
        "[{\"channels\":32,\"kernel\":3,\"stride\":1,\"padding\":1,\"pool\":2},{\"channels\":"
        "64,\"kernel\":3,\"stride\":1,\"padding\":1,\"pool\":2}],\"fc\":[256],\"mean\":[0.286],"
        "\"std\":[0.353],\"resize\":\"squash\"},\"text\":{\"type\":\"transformer\",\"vocab_size\":"
        "259,\"context_length\":32,\"width\":128,\"layers\":2,\"heads\":4,\"mlp_width\":512,"
        "\"causal\":true,\"pool\":\"eos\",\"eos_id\":257,\"pad_id\":258,\"ln_eps\":1e-05,"
        "\"act\":\"gelu\",\"tokenizer\":{\"type\":\"bytes\",\"bos\":256,\"eos\":257,\"pad\":258}}"
        "}");
    cJSON_free(txt);
    cJSON_Delete(j);
    clasp_preprocess_free(&pre);
    char doc[2048];
    mutate(doc, sizeof doc, "\"embed_dim\": 8", "\"embed_dim\": 8, \"init_logit_bias\": -10");
    cr_assert_eq(parse(doc, "b.json", &c), CLASP_OK, "%s", clasp_last_error());
    cr_assert(c.has_logit_bias);
    cr_assert_eq(c.init_logit_bias, -10.0);
    roundtrip_doc(doc, "b.json");
    roundtrip_doc(ABASE, "a.json");
    roundtrip_doc(ASTBASE, "ast.json");
}

/* Every front-end field clasp_audio_config_to_json knows (what modalities/preprocess.c reads)
 * is a key the tower parser accepts, and comes back in the order given. */
Test(config, every_frontend_field_is_accepted) {
    clasp_audio_config def = clasp_audio_default_config();
    def.mel.sample_rate = 8000;
    def.clip_seconds = 0.5;
    def.mel.hop_length = 80;
    def.mel.n_mels = 16;
    def.mel.fmax = 4000;
    cJSON *all = clasp_audio_config_to_json(&def);
    cr_assert(all);
    cJSON *root = cJSON_Parse("{\"embed_dim\": 8, \"audio\": {\"type\": \"audio_cnn\","
                              " \"conv\": [{\"channels\": 2, \"kernel\": 1}]}}");
    cJSON *au = cJSON_GetObjectItem(root, "audio");
    /* in reverse order, to see the order kept */
    int n = cJSON_GetArraySize(all);
    for (int i = n - 1; i >= 0; i--) {
        cJSON *f = cJSON_GetArrayItem(all, i);
        cJSON_AddItemToObject(au, f->string, cJSON_Duplicate(f, true));
    }
    char *doc = cJSON_PrintUnformatted(root);
    clasp_model_config c;
    clasp_preprocess pre;
    cr_assert_eq(parse_pre(doc, "all.json", &c, &pre), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(pre.n_audio_fields, n);
    cJSON *j;
    cr_assert_eq(clasp_model_config_to_json(&c, &j), CLASP_OK);
    cr_assert_eq(clasp_preprocess_add_json(&pre, j), CLASP_OK);
    const cJSON *ja = cJSON_GetObjectItem(j, "audio");
    const cJSON *it = cJSON_GetObjectItem(ja, "fc")->next; /* after the tower's fields */
    for (int i = n - 1; i >= 0; i--, it = it ? it->next : NULL) {
        cr_assert(it, "field %d missing", i);
        cr_assert_str_eq(it->string, cJSON_GetArrayItem(all, i)->string);
        cr_assert(cJSON_Compare(it, cJSON_GetArrayItem(all, i), true), "%s differs", it->string);
    }
    cr_assert_null(it);
    cJSON_Delete(j);
    clasp_preprocess_free(&pre);
    cJSON_free(doc);
    cJSON_Delete(root);
    cJSON_Delete(all);
}

Test(config, quick_gelu_act) {
    /* "act": "quick_gelu" (OpenAI CLIP) parses, reaches the config and round-trips */
    char doc[2048];
    clasp_model_config c;
    mutate(doc, sizeof doc, "\"eos_id\": 1", "\"eos_id\": 1, \"act\": \"quick_gelu\"");
    cr_assert_eq(parse(doc, "q.json", &c), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(c.text.act, CLASP_ACT_QUICK_GELU);
    roundtrip_doc(doc, "q.json");
    mutate(doc, sizeof doc, "\"eos_id\": 1", "\"eos_id\": 1, \"act\": \"gelu_tanh\"");
    cr_assert_eq(parse(doc, "t.json", &c), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(c.text.act, CLASP_ACT_GELU_TANH);
}

static const char *VBASE =
    "{\"embed_dim\": 8, \"image\": {\"type\": \"vit\", \"channels\": 3, \"size\": 8, "
    "\"patch_size\": 4, \"width\": 8, \"layers\": 1, \"heads\": 2, \"mlp_width\": 16}}";

Test(config, vit_ln_pre) {
    /* image "ln_pre" (OpenCLIP): off by default and not serialised then; true round-trips */
    clasp_model_config c;
    cr_assert_eq(parse(VBASE, "v.json", &c), CLASP_OK, "%s", clasp_last_error());
    cr_assert(!c.image.ln_pre);
    cJSON *j;
    cr_assert_eq(clasp_model_config_to_json(&c, &j), CLASP_OK);
    cr_assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "image"), "ln_pre"));
    cJSON_Delete(j);
    char doc[2048];
    snprintf(doc, sizeof doc, "%s", VBASE);
    char *at = strstr(doc, "\"patch_size\"");
    cr_assert_not_null(at);
    memmove(at + 16, at, strlen(at) + 1);
    memcpy(at, "\"ln_pre\": true, ", 16);
    cr_assert_eq(parse(doc, "v.json", &c), CLASP_OK, "%s", clasp_last_error());
    cr_assert(c.image.ln_pre);
    cr_assert(!c.image.no_proj_bias);
    roundtrip_doc(doc, "v.json");
    /* "proj_bias": false (OpenCLIP's bias-free projection) parses and round-trips too */
    at = strstr(doc, "\"ln_pre\"");
    memmove(at + 20, at, strlen(at) + 1);
    memcpy(at, "\"proj_bias\": false, ", 20);
    cr_assert_eq(parse(doc, "v.json", &c), CLASP_OK, "%s", clasp_last_error());
    cr_assert(c.image.no_proj_bias);
    cr_assert(!c.image.no_patch_bias);
    roundtrip_doc(doc, "v.json");
    /* "patch_bias": false (OpenCLIP's conv1) too; a non-boolean is refused naming the field */
    at = strstr(doc, "\"ln_pre\"");
    memmove(at + 21, at, strlen(at) + 1);
    memcpy(at, "\"patch_bias\": false, ", 21);
    cr_assert_eq(parse(doc, "v.json", &c), CLASP_OK, "%s", clasp_last_error());
    cr_assert(c.image.no_patch_bias);
    roundtrip_doc(doc, "v.json");
    memcpy(at + 14, "0    ", 5);
    cr_expect_eq(parse(doc, "v.json", &c), CLASP_ERR_CONFIG);
    cr_expect(strstr(clasp_last_error(), "image.patch_bias"), "%s", clasp_last_error());
}
