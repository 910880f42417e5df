/* test_config.c: model config parsing (encoders/config.c): configs/fmnist-small.json loads with
 * the expected values; every kind of bad config is CLASP_ERR_CONFIG naming the file and the
 * field; serialisation round-trips. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "encoders/model.h"
#include "testutil.h"

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
    cr_assert_float_eq(c.image.mean[0], 0.2860f, 1e-7f);
    cr_assert_float_eq(c.image.std[0], 0.3530f, 1e-7f);
    cr_assert_eq(c.image.resize, CLASP_RESIZE_SQUASH);
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
    cr_assert(!c.text.gelu_tanh);
    cr_assert_float_eq(c.text.ln_eps, 1e-5f, 1e-12f);
    cr_assert_str_eq(c.text.tokenizer.type, "bytes");
    cr_assert_eq(c.text.tokenizer.bos, 256);
    cr_assert_eq(c.text.tokenizer.eos, 257);
    cr_assert_eq(c.text.tokenizer.pad, 258);
}

/* A valid config to mutate: CNN + text. */
static const char *BASE =
    "{\"embed_dim\": 8,"
    " \"image\": {\"type\": \"cnn\", \"channels\": 1, \"size\": 8,"
    "   \"conv\": [{\"channels\": 4, \"kernel\": 3, \"padding\": 1, \"pool\": 2}], \"fc\": [16]},"
    " \"text\": {\"type\": \"transformer\", \"vocab_size\": 20, \"context_length\": 6,"
    "   \"width\": 8, \"layers\": 1, \"heads\": 2, \"mlp_width\": 16, \"eos_id\": 1}}";

/* Parses text (a whole document) as file name `what`; returns the status. */
static clasp_status parse(const char *text, const char *what, clasp_model_config *c) {
    cJSON *root;
    clasp_status s = clasp_json_parse(text, strlen(text), what, &root);
    if (s != CLASP_OK) return s;
    s = clasp_model_config_parse(root, what, c);
    cJSON_Delete(root);
    return s;
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
    cr_assert_eq(parse(BASE, "base.json", &c), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(c.text.pool, CLASP_POOL_EOS);
    cr_assert_eq(c.text.pad_id, -1);
    cr_assert_eq(c.image.resize, CLASP_RESIZE_SHORTEST);
    cr_assert_float_eq(c.image.std[0], 1.0f, 0.0f);
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

Test(config, audio_is_not_implemented_yet) {
    char doc[2048];
    clasp_model_config c;
    mutate(doc, sizeof doc, "\"embed_dim\": 8", "\"embed_dim\": 8, \"audio\": {}");
    cr_assert_eq(parse(doc, "a.json", &c), CLASP_ERR_UNSUPPORTED);
    cr_assert(strstr(clasp_last_error(), "audio"));
}

Test(config, no_tower_and_not_json) {
    clasp_model_config c;
    cr_assert_eq(parse("{\"embed_dim\": 8}", "empty.json", &c), CLASP_ERR_CONFIG);
    cr_assert(strstr(clasp_last_error(), "empty.json"));
    cr_assert_eq(parse("[1, 2]", "arr.json", &c), CLASP_ERR_CONFIG);
    cr_assert_eq(clasp_model_config_load("/nonexistent/x.json", &c), CLASP_ERR_IO);
    cr_assert(strstr(clasp_last_error(), "/nonexistent/x.json"));
}

/* to_json then parse gives the same config, and serialising again gives the same text. */
static void roundtrip(const clasp_model_config *c) {
    cJSON *j1, *j2;
    clasp_model_config back;
    cr_assert_eq(clasp_model_config_to_json(c, &j1), CLASP_OK);
    cr_assert_eq(clasp_model_config_parse(j1, "roundtrip", &back), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert_eq(clasp_model_config_to_json(&back, &j2), CLASP_OK);
    char *s1 = cJSON_PrintUnformatted(j1), *s2 = cJSON_PrintUnformatted(j2);
    cr_assert_str_eq(s1, s2);
    cr_assert_eq(back.embed_dim, c->embed_dim);
    cr_assert_eq(back.init_logit_scale, c->init_logit_scale);
    cr_assert_eq(back.image.type, c->image.type);
    cr_assert_eq(back.image.n_conv, c->image.n_conv);
    cr_assert_eq(back.image.mean[0], c->image.mean[0]);
    cr_assert_eq(back.text.ln_eps, c->text.ln_eps);
    cr_assert_eq(back.text.eos_id, c->text.eos_id);
    cr_assert_eq(back.text.pad_id, c->text.pad_id);
    cr_assert_str_eq(back.text.tokenizer.type, c->text.tokenizer.type);
    cr_assert_eq(back.has_logit_bias, c->has_logit_bias);
    cJSON_free(s1);
    cJSON_free(s2);
    cJSON_Delete(j1);
    cJSON_Delete(j2);
}

Test(config, to_json_roundtrip) {
    char path[4096];
    clasp_model_config c;
    cr_assert_eq(clasp_model_config_load(fmnist_path(path, sizeof path), &c), CLASP_OK);
    roundtrip(&c);
    char doc[2048];
    mutate(doc, sizeof doc, "\"embed_dim\": 8", "\"embed_dim\": 8, \"init_logit_bias\": -10");
    cr_assert_eq(parse(doc, "b.json", &c), CLASP_OK, "%s", clasp_last_error());
    cr_assert(c.has_logit_bias);
    cr_assert_eq(c.init_logit_bias, -10.0);
    roundtrip(&c);
}
