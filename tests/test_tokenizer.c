/* test_tokenizer.c: byte tokenizer (fmnist-small), byte-level BPE training/encoding/decoding and
 * tokenizer.json (modalities/tokenizer.h). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "modalities/tokenizer.h"
#include "fixtures.h"

static clasp_tokenizer *bytes_tok(void) {
    clasp_tokenizer *t;
    cr_assert_eq(clasp_tokenizer_new_bytes(&t), CLASP_OK);
    return t;
}

Test(tokenizer, bytes_fmnist_example) {
    /* ../shared/bench/README.md section 3. */
    const int32_t want[19] = {256, 97, 32, 112, 104, 111, 116, 111, 32, 111,
                              102, 32, 97, 32,  98,  97,  103, 257, 258};
    clasp_tokenizer *t = bytes_tok();
    cr_assert_eq(clasp_tokenizer_vocab_size(t), 259);
    int32_t out[32];
    cr_assert_eq(clasp_tokenizer_encode(t, "a photo of a bag", out, 32), CLASP_OK);
    for (int i = 0; i < 19; i++) cr_assert_eq(out[i], want[i], "index %d: %d", i, out[i]);
    for (int i = 19; i < 32; i++) cr_assert_eq(out[i], 258);
    clasp_tokenizer_free(t);
}

Test(tokenizer, bytes_truncation_keeps_eos_last) {
    clasp_tokenizer *t = bytes_tok();
    const char *s = "a low resolution photo of a t-shirt/top"; /* 39 bytes */
    int32_t out[32];
    int used;
    cr_assert_eq(clasp_tokenizer_encode_n(t, s, strlen(s), out, 32, &used), CLASP_OK);
    cr_assert_eq(used, 30);
    cr_assert_eq(out[0], 256);
    cr_assert_eq(out[31], 257);
    char *dec;
    size_t n;
    cr_assert_eq(clasp_tokenizer_decode(t, out, 32, &dec, &n), CLASP_OK);
    cr_assert_str_eq(dec, "a low resolution photo of a t-");
    free(dec);
    /* Exactly T-2 bytes: EOS at T-1, no PAD; the empty string: BOS EOS PAD... */
    cr_assert_eq(clasp_tokenizer_encode_n(t, s, 30, out, 32, &used), CLASP_OK);
    cr_assert_eq(out[31], 257);
    cr_assert_eq(clasp_tokenizer_encode(t, "", out, 4), CLASP_OK);
    cr_assert(out[0] == 256 && out[1] == 257 && out[2] == 258 && out[3] == 258);
    cr_assert_eq(clasp_tokenizer_encode(t, "abc", out, 2), CLASP_OK);
    cr_assert(out[0] == 256 && out[1] == 257);
    cr_assert_eq(clasp_tokenizer_encode(t, "abc", out, 1), CLASP_ERR_ARG);
    /* Non-ASCII bytes are ids >= 128. */
    cr_assert_eq(clasp_tokenizer_encode(t, "\xc3\xa9", out, 8), CLASP_OK);
    cr_assert(out[1] == 0xc3 && out[2] == 0xa9 && out[3] == 257);
    clasp_tokenizer_free(t);
}

static const char *corpus[] = {"a photo of a bag",
                               "a photo of a dress",
                               "a picture of a bag",
                               "a photo of a coat",
                               "a photo of a shirt",
                               "an image showing a bag",
                               "a bag on a white background",
                               "a photo of a sneaker",
                               "a grayscale photo of a bag",
                               "a low resolution photo of a coat"};
#define N_CORPUS (sizeof corpus / sizeof corpus[0])

Test(tokenizer, bpe_known_small_example) {
    /* "aaab aaab aab": words "aaab", " aaab", " aab". Pair counts: (a,a) 5, (a,b) 3, (' ',a) 2.
     * Merge 0 = (a,a) -> 259. Words: [259 a b], [' ' 259 a b], [' ' 259 b]: (259,a) 2, (a,b) 2,
     * (' ',259) 2, (259,b) 1. Tie at 2: lowest pair is (32, 259). */
    const char *texts[] = {"aaab aaab aab"};
    clasp_tokenizer *t;
    cr_assert_eq(clasp_tokenizer_train_bpe(texts, 1, 261, 1, &t), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert_eq(clasp_tokenizer_n_merges(t), 2);
    cJSON *j = clasp_tokenizer_to_json(t);
    cJSON *m = cJSON_GetObjectItem(j, "merges");
    cr_assert_eq(cJSON_GetArrayItem(cJSON_GetArrayItem(m, 0), 0)->valueint, 'a');
    cr_assert_eq(cJSON_GetArrayItem(cJSON_GetArrayItem(m, 0), 1)->valueint, 'a');
    cr_assert_eq(cJSON_GetArrayItem(cJSON_GetArrayItem(m, 1), 0)->valueint, ' ');
    cr_assert_eq(cJSON_GetArrayItem(cJSON_GetArrayItem(m, 1), 1)->valueint, 259);
    cJSON_Delete(j);
    int32_t *ids;
    size_t n;
    cr_assert_eq(clasp_tokenizer_encode_raw(t, "aaab aab", 8, &ids, &n), CLASP_OK);
    const int32_t want[] = {259, 'a', 'b', 260, 'b'};
    cr_assert_eq(n, 5);
    for (size_t i = 0; i < n; i++) cr_assert_eq(ids[i], want[i], "index %zu: %d", i, ids[i]);
    free(ids);
    clasp_tokenizer_free(t);
}

Test(tokenizer, bpe_roundtrip_and_compression) {
    clasp_tokenizer *t;
    cr_assert_eq(clasp_tokenizer_train_bpe(corpus, N_CORPUS, 320, 2, &t), CLASP_OK);
    cr_assert_gt(clasp_tokenizer_n_merges(t), 10);
    cr_assert_leq(clasp_tokenizer_vocab_size(t), 320);
    const char *tests[] = {
        "a photo of a bag", "zebra crossing at night",      "",
        "  two  spaces ",   "caf\xc3\xa9 \xf0\x9f\x98\x80", "a photo of a photo of a photo"};
    for (size_t k = 0; k < sizeof tests / sizeof tests[0]; k++) {
        int32_t *ids;
        size_t n, nd;
        cr_assert_eq(clasp_tokenizer_encode_raw(t, tests[k], strlen(tests[k]), &ids, &n), CLASP_OK);
        char *dec;
        cr_assert_eq(clasp_tokenizer_decode(t, ids, n, &dec, &nd), CLASP_OK);
        cr_assert_eq(nd, strlen(tests[k]));
        cr_assert_str_eq(dec, tests[k]);
        if (k == 0) cr_assert_lt(n, 8, "a training caption compresses (%zu tokens)", n);
        free(dec);
        free(ids);
    }
    /* Fixed-context encoding agrees with the raw ids and keeps EOS last. */
    int32_t *ids;
    size_t n;
    const char *s =
        "a grayscale photo of a bag a low resolution photo of a coat a photo of a dress";
    cr_assert_eq(clasp_tokenizer_encode_raw(t, s, strlen(s), &ids, &n), CLASP_OK);
    int32_t out[8];
    int used;
    cr_assert_eq(clasp_tokenizer_encode_n(t, s, strlen(s), out, 8, &used), CLASP_OK);
    cr_assert_eq(used, 6);
    cr_assert_eq(out[0], 256);
    for (int i = 0; i < 6; i++) cr_assert_eq(out[1 + i], ids[i]);
    cr_assert_eq(out[7], 257);
    free(ids);
    clasp_tokenizer_free(t);
}

Test(tokenizer, bpe_training_is_deterministic) {
    clasp_tokenizer *a, *b;
    cr_assert_eq(clasp_tokenizer_train_bpe(corpus, N_CORPUS, 300, 1, &a), CLASP_OK);
    cr_assert_eq(clasp_tokenizer_train_bpe(corpus, N_CORPUS, 300, 1, &b), CLASP_OK);
    cJSON *ja_o = clasp_tokenizer_to_json(a);
    char *ja = cJSON_PrintUnformatted(ja_o);
    cJSON_Delete(ja_o);
    cJSON *jb_o = clasp_tokenizer_to_json(b);
    char *jb = cJSON_PrintUnformatted(jb_o);
    cr_assert_str_eq(ja, jb);
    free(ja);
    free(jb);
    cJSON_Delete(jb_o);
    clasp_tokenizer_free(a);
    clasp_tokenizer_free(b);
}

Test(tokenizer, save_load_equality) {
    clasp_tokenizer *t, *u;
    cr_assert_eq(clasp_tokenizer_train_bpe(corpus, N_CORPUS, 300, 2, &t), CLASP_OK);
    char dir[1024], path[1100];
    fx_scratch("tokenizer_saveload", dir, path, "tokenizer.json", NULL);
    cr_assert_eq(clasp_tokenizer_save(t, path), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_tokenizer_load(path, &u), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_tokenizer_kind(u), CLASP_TOKENIZER_BPE);
    cr_assert_eq(clasp_tokenizer_vocab_size(u), clasp_tokenizer_vocab_size(t));
    for (size_t k = 0; k < N_CORPUS; k++) {
        int32_t x[24], y[24];
        cr_assert_eq(clasp_tokenizer_encode(t, corpus[k], x, 24), CLASP_OK);
        cr_assert_eq(clasp_tokenizer_encode(u, corpus[k], y, 24), CLASP_OK);
        cr_assert(memcmp(x, y, sizeof x) == 0, "caption %zu differs", k);
    }
    clasp_tokenizer_free(u);
    /* A model config's text.tokenizer object pointing at the file (relative path). */
    char cfgpath[1100];
    snprintf(cfgpath, sizeof cfgpath, "%s/model.json", dir);
    cJSON *o = cJSON_Parse("{\"type\": \"bpe\", \"path\": \"tokenizer.json\"}");
    cr_assert_eq(clasp_tokenizer_from_json(o, cfgpath, &u), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_tokenizer_n_merges(u), clasp_tokenizer_n_merges(t));
    clasp_tokenizer_free(u);
    cJSON_Delete(o);
    clasp_tokenizer_free(t);
}

Test(tokenizer, from_json_bytes_and_errors) {
    clasp_tokenizer *t;
    cJSON *o = cJSON_Parse("{\"type\": \"bytes\"}");
    cr_assert_eq(clasp_tokenizer_from_json(o, "m.json", &t), CLASP_OK);
    cr_assert_eq(clasp_tokenizer_kind(t), CLASP_TOKENIZER_BYTES);
    clasp_tokenizer_free(t);
    cJSON_Delete(o);
    const char *bad[] = {
        "{\"type\": \"wordpiece\"}",
        "{\"type\": \"bytes\", \"bos_id\": 0}",
        "{\"type\": \"bpe\"}",
        "{\"type\": \"bpe\", \"merges\": [[97, 259]]}",          /* refers to itself */
        "{\"type\": \"bpe\", \"merges\": [[97, 256]]}",          /* BOS inside a merge */
        "{\"type\": \"bpe\", \"merges\": [[97, 98], [97, 98]]}", /* duplicate */
        "{\"type\": \"bpe\", \"merges\": [[97]]}",
        "{\"type\": \"bpe\", \"merges\": [[97, 98]], \"vocab_size\": 300}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o = cJSON_Parse(bad[i]);
        cr_assert(o);
        t = (clasp_tokenizer *)1;
        clasp_status s = clasp_tokenizer_from_json(o, "m.json", &t);
        cr_assert(s == CLASP_ERR_CONFIG || s == CLASP_ERR_FORMAT, "case %zu accepted", i);
        cr_assert_null(t);
        cr_assert(strstr(clasp_last_error(), "m.json"), "%s", clasp_last_error());
        cJSON_Delete(o);
    }
    /* Doubling merges would make huge tokens: refused, not allocated. */
    cJSON *m = cJSON_CreateArray();
    cJSON_AddItemToArray(m, cJSON_CreateIntArray((const int[]){97, 97}, 2));
    for (int i = 0; i < 40; i++)
        cJSON_AddItemToArray(m, cJSON_CreateIntArray((const int[]){259 + i, 259 + i}, 2));
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "bpe");
    cJSON_AddItemToObject(o, "merges", m);
    cr_assert_eq(clasp_tokenizer_from_json(o, "m.json", &t), CLASP_ERR_FORMAT);
    cJSON_Delete(o);
}

Test(tokenizer, long_input_without_spaces) {
    clasp_tokenizer *t;
    cr_assert_eq(clasp_tokenizer_train_bpe(corpus, N_CORPUS, 300, 2, &t), CLASP_OK);
    size_t n = 200000;
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++) s[i] = "photobag"[i % 8];
    s[n] = '\0';
    int32_t out[77];
    cr_assert_eq(clasp_tokenizer_encode(t, s, out, 77), CLASP_OK);
    cr_assert_eq(out[76], 257);
    int32_t *ids;
    size_t n_ids;
    cr_assert_eq(clasp_tokenizer_encode_raw(t, s, n, &ids, &n_ids), CLASP_OK);
    char *dec;
    size_t nd;
    cr_assert_eq(clasp_tokenizer_decode(t, ids, n_ids, &dec, &nd), CLASP_OK);
    cr_assert_eq(nd, n);
    cr_assert(memcmp(dec, s, n) == 0);
    free(dec);
    free(ids);
    free(s);
    clasp_tokenizer_free(t);
}
