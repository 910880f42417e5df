/* test_emoji_config.c: configs/emoji-small.json (the emoji workload of scripts/emoji.sh) loads,
 * its BPE tokenizer (configs/emoji-bpe.json) resolves from any working directory and covers the
 * emoji labels within the context; and the rule behind it (modalities/preprocess.c): a relative
 * text.tokenizer "path" (or "file") is relative to the folder of the config file that names it,
 * never to the working directory. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/json.h"
#include "encoders/model.h"
#include "modalities/preprocess.h"
#include "modalities/tokenizer.h"
#include "pipeline/data.h"
#include "fixtures.h"

static void write_text_(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s", path);
    cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    cr_assert_eq(fclose(f), 0);
}

/* realpath of `p`, which must exist, into out[PATH_MAX]. */
static const char *real_(const char *p, char *out) {
    cr_assert(realpath(p, out), "realpath %s", p);
    return out;
}

/* Checks configs/emoji-small.json as loaded from `path` (absolute or relative to the cwd). */
static void check_emoji_small_(const char *path) {
    clasp_model_config c;
    cr_assert_eq(clasp_model_config_load(path, &c), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(c.embed_dim, 128);
    cr_assert_eq(c.image.type, CLASP_IMAGE_VIT);
    cr_assert_eq(c.image.channels, 3);
    cr_assert_eq(c.image.size, 64);
    cr_assert_eq(c.image.patch_size, 8);
    cr_assert_eq(c.text.type, CLASP_TEXT_TRANSFORMER);
    clasp_preprocess pre;
    cr_assert_eq(clasp_preprocess_load(path, &pre), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(pre.image.mode, CLASP_IMAGE_RESIZE_SQUASH);
    cr_assert_str_eq(pre.tokenizer_spec.type, "bpe");
    char want[PATH_MAX], src[PATH_MAX + 64];
    snprintf(src, sizeof src, "%s/configs/emoji-bpe.json", CLASP_SOURCE_DIR);
    real_(src, want);
    cr_assert_str_eq(pre.tokenizer_spec.path, want);

    clasp_loader_config lc;
    cr_assert_eq(clasp_data_loader_config(&pre, CLASP_NEED_IMAGE | CLASP_NEED_TEXT, &lc), CLASP_OK,
                 "%s", clasp_last_error());
    const clasp_tokenizer *tok = lc.tokenizer;
    cr_assert_eq(tok, pre.tokenizer);
    cr_assert_eq(clasp_tokenizer_kind(tok), CLASP_TOKENIZER_BPE);
    cr_assert(clasp_tokenizer_n_merges(tok) > 1000, "%d merges", clasp_tokenizer_n_merges(tok));
    cr_assert(clasp_tokenizer_vocab_size(tok) <= c.text.vocab_size);
    cr_assert_eq(lc.image.size, 64);
    cr_assert_eq(lc.image.channels, 3);
    cr_assert_eq(lc.context_length, c.text.context_length);
    /* the longest English labels fit untruncated; common words are single tokens */
    static const char *labels[] = {"flag: São Tomé & Príncipe",
                                   "face with open eyes and hand over mouth",
                                   "woman in motorized wheelchair: facing right", "grinning face"};
    for (size_t i = 0; i < sizeof labels / sizeof *labels; i++) {
        int32_t ids[64], *raw;
        size_t n_raw;
        int used;
        cr_assert_eq(clasp_tokenizer_encode_raw(tok, labels[i], strlen(labels[i]), &raw, &n_raw),
                     CLASP_OK);
        cr_assert_eq(clasp_tokenizer_encode_n(tok, labels[i], strlen(labels[i]), ids,
                                              c.text.context_length, &used),
                     CLASP_OK);
        cr_assert_eq((size_t)used, n_raw, "'%s' truncated: %zu tokens, context %d", labels[i],
                     n_raw, c.text.context_length);
        if (i > 0) /* words of the labels, not rare place names */
            cr_assert(n_raw <= strlen(labels[i]) / 3, "'%s': %zu tokens (merges barely used)",
                      labels[i], n_raw);
        free(raw);
    }
    clasp_preprocess_free(&pre);

    clasp_model m;
    cr_assert_eq(clasp_model_init(&m, &c), CLASP_OK, "%s", clasp_last_error());
    clasp_model_free(&m);
}

Test(emoji_config, loads_and_tokenizer_resolves) {
    char path[PATH_MAX + 64], tmp[1024];
    snprintf(path, sizeof path, "%s/configs/emoji-small.json", CLASP_SOURCE_DIR);
    /* from a working directory that holds no emoji-bpe.json */
    clasp_test_tmpdir("emoji_config_cwd", tmp, sizeof tmp);
    cr_assert_eq(chdir(tmp), 0);
    check_emoji_small_(path);
    /* a relative config path, from the source tree */
    cr_assert_eq(chdir(CLASP_SOURCE_DIR), 0);
    check_emoji_small_("configs/emoji-small.json");
    cr_assert_eq(chdir("configs"), 0);
    check_emoji_small_("emoji-small.json");
}

static const char *CORPUS[] = {"red heart",    "blue heart",       "grinning face",
                               "smiling face", "heart with arrow", "face with tears of joy"};

/* A config whose text.tokenizer is `tok_json` (a JSON object text). */
static void write_config_(const char *path, const char *tok_json) {
    char cfg[8192];
    snprintf(cfg, sizeof cfg,
             "{\"embed_dim\": 16,"
             " \"image\": {\"type\": \"vit\", \"channels\": 3, \"size\": 8, \"patch_size\": 4,"
             "  \"width\": 16, \"layers\": 1, \"heads\": 2, \"mlp_width\": 32},"
             " \"text\": {\"type\": \"transformer\", \"vocab_size\": 400, \"context_length\": 8,"
             "  \"width\": 16, \"layers\": 1, \"heads\": 2, \"mlp_width\": 32,"
             "  \"eos_id\": 257, \"pad_id\": 258, \"tokenizer\": %s}}",
             tok_json);
    write_text_(path, cfg);
}

static void expect_config_error_(const char *path, const char *field) {
    clasp_preprocess pre;
    cr_assert_eq(clasp_preprocess_load(path, &pre), CLASP_ERR_CONFIG);
    cr_assert(strstr(clasp_last_error(), field), "'%s' not in: %s", field, clasp_last_error());
    cr_assert(strstr(clasp_last_error(), path), "'%s' not in: %s", path, clasp_last_error());
}

Test(emoji_config, tokenizer_path_relative_to_config_folder) {
    char tmp[1024], sub[1100], p[PATH_MAX + 64], cfgp[1200], want[PATH_MAX + 16],
        real_sub[PATH_MAX];
    fx_scratch("emoji_config_rule", tmp, sub, "cfg", NULL);
    mkdir(sub, 0755);
    real_(sub, real_sub);
    /* sub/tok.json: a BPE; tmp/tok.json (the working directory): a different, larger one */
    clasp_tokenizer *small, *big;
    cr_assert_eq(clasp_tokenizer_train_bpe(CORPUS, 6, 270, 2, &small), CLASP_OK);
    cr_assert_eq(clasp_tokenizer_train_bpe(CORPUS, 6, 300, 1, &big), CLASP_OK);
    cr_assert_neq(clasp_tokenizer_vocab_size(small), clasp_tokenizer_vocab_size(big));
    snprintf(p, sizeof p, "%s/tok.json", sub);
    cr_assert_eq(clasp_tokenizer_save(small, p), CLASP_OK);
    snprintf(p, sizeof p, "%s/tok.json", tmp);
    cr_assert_eq(clasp_tokenizer_save(big, p), CLASP_OK);
    cr_assert_eq(chdir(tmp), 0);
    snprintf(want, sizeof want, "%s/tok.json", real_sub);

    static const char *spellings[] = {"{\"type\": \"bpe\", \"path\": \"tok.json\"}",
                                      "{\"type\": \"bpe\", \"file\": \"tok.json\"}",
                                      "{\"type\": \"bpe\", \"path\": \"./tok.json\"}"};
    for (int i = 0; i < 3; i++) {
        snprintf(cfgp, sizeof cfgp, "cfg/model%d.json", i); /* relative to the cwd (tmp) */
        write_config_(cfgp, spellings[i]);
        clasp_model_config c;
        cr_assert_eq(clasp_model_config_load(cfgp, &c), CLASP_OK, "%s", clasp_last_error());
        clasp_preprocess pre;
        cr_assert_eq(clasp_preprocess_load(cfgp, &pre), CLASP_OK, "%s", clasp_last_error());
        cr_assert_eq(pre.tokenizer_spec.path[0], '/', "%s", pre.tokenizer_spec.path);
        char got[PATH_MAX];
        cr_assert_str_eq(real_(pre.tokenizer_spec.path, got), want);
        cr_assert_eq(clasp_tokenizer_vocab_size(pre.tokenizer), clasp_tokenizer_vocab_size(small),
                     "spelling %d loaded the working directory's tok.json", i);
        /* serialised and parsed back (a run's config.json, a checkpoint's state.json): the
         * absolute path survives, whatever the document's own name */
        cJSON *j;
        cr_assert_eq(clasp_model_config_to_json(&c, &j), CLASP_OK);
        cr_assert_eq(clasp_preprocess_add_json(&pre, j), CLASP_OK);
        clasp_preprocess back;
        cr_assert_eq(clasp_preprocess_parse(j, "/elsewhere/state.json", &back), CLASP_OK, "%s",
                     clasp_last_error());
        cr_assert_str_eq(back.tokenizer_spec.path, pre.tokenizer_spec.path);
        cr_assert_eq(clasp_tokenizer_vocab_size(back.tokenizer), clasp_tokenizer_vocab_size(small));
        clasp_preprocess_free(&back);
        clasp_preprocess_free(&pre);
        cJSON_Delete(j);
    }
    /* an absolute path is kept as written */
    snprintf(p, sizeof p, "{\"type\": \"bpe\", \"path\": \"%s/tok.json\"}", tmp);
    write_config_("cfg/abs.json", p);
    clasp_preprocess pre;
    cr_assert_eq(clasp_preprocess_load("cfg/abs.json", &pre), CLASP_OK, "%s", clasp_last_error());
    snprintf(p, sizeof p, "%s/tok.json", tmp);
    cr_assert_str_eq(pre.tokenizer_spec.path, p);
    cr_assert_eq(clasp_tokenizer_vocab_size(pre.tokenizer), clasp_tokenizer_vocab_size(big));
    clasp_preprocess_free(&pre);
    /* parse alone keeps a relative path verbatim and loads it from the folder of the document
     * (an export's config.json and its tokenizer.json) */
    cJSON *o = cJSON_Parse(
        "{\"embed_dim\": 8, \"text\": {\"type\": \"transformer\","
        " \"vocab_size\": 300, \"context_length\": 4, \"width\": 8,"
        " \"layers\": 1, \"heads\": 1, \"mlp_width\": 8, \"eos_id\": 257, \"tokenizer\":"
        " {\"type\": \"bpe\", \"path\": \"tok.json\"}}}");
    cr_assert_eq(clasp_preprocess_parse(o, "cfg/config.json", &pre), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert_str_eq(pre.tokenizer_spec.path, "tok.json");
    cr_assert_eq(clasp_tokenizer_vocab_size(pre.tokenizer), clasp_tokenizer_vocab_size(small));
    clasp_preprocess_free(&pre);
    cJSON_Delete(o);
    /* a missing tokenizer file is named with its resolved path; the model config itself
     * (towers) is fine */
    write_config_("cfg/missing.json", "{\"type\": \"bpe\", \"path\": \"nope.json\"}");
    clasp_model_config c;
    cr_assert_eq(clasp_model_config_load("cfg/missing.json", &c), CLASP_OK);
    cr_assert_neq(clasp_preprocess_load("cfg/missing.json", &pre), CLASP_OK);
    snprintf(p, sizeof p, "%s/nope.json", real_sub);
    cr_assert(strstr(clasp_last_error(), p), "'%s' not in: %s", p, clasp_last_error());
    /* both spellings, or a BPE without a path: config errors naming the field */
    write_config_("cfg/both.json", "{\"type\": \"bpe\", \"path\": \"a\", \"file\": \"a\"}");
    expect_config_error_("cfg/both.json", "text.tokenizer.file");
    write_config_("cfg/nopath.json", "{\"type\": \"bpe\"}");
    expect_config_error_("cfg/nopath.json", "text.tokenizer.path");
    clasp_tokenizer_free(small);
    clasp_tokenizer_free(big);
}
