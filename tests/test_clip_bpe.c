/* test_clip_bpe.c: the clip_bpe tokenizer (modalities/clip_bpe.c) against the Python reference
 * tests/reference/clip_bpe_ref.py on its committed corpus (>= 10,000 strings), hand-checked
 * OpenAI CLIP encodings, context truncation, JSON, and bad merges files. */
#include <archive.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "export/export.h"
#include "modalities/tokenizer.h"

#define MERGES CLASP_SOURCE_DIR "/../shared/data/openclip/bpe_simple_vocab_16e6.txt.gz"
#define CTX    77

static clasp_tokenizer *load_clip(const char *path) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"type\": \"clip_bpe\", \"path\": \"%s\", \"context_length\": 77}", path);
    cJSON *o = cJSON_Parse(json);
    clasp_tokenizer *t = NULL;
    clasp_status s = clasp_tokenizer_from_json(o, "test.json", &t);
    cJSON_Delete(o);
    cr_assert_eq(s, CLASP_OK, "%s", clasp_last_error());
    return t;
}

/* Encodes text to CTX ids and checks them against want[n] followed by zeros. */
static void check_ids(const clasp_tokenizer *t, const char *text, const int32_t *want, int n) {
    int32_t got[CTX];
    cr_assert_eq(clasp_tokenizer_encode(t, text, got, CTX), CLASP_OK, "%s", clasp_last_error());
    for (int i = 0; i < CTX; i++)
        cr_expect_eq(got[i], i < n ? want[i] : 0, "'%s': id %d is %d, expected %d", text, i,
                     (int)got[i], i < n ? (int)want[i] : 0);
}

Test(clip_bpe, known_encodings) {
    clasp_tokenizer *t = load_clip(MERGES);
    cr_assert_eq(clasp_tokenizer_kind(t), CLASP_TOKENIZER_CLIP_BPE);
    cr_assert_eq(clasp_tokenizer_vocab_size(t), 49408);
    cr_assert_eq(clasp_tokenizer_bos_id(t), 49406);
    cr_assert_eq(clasp_tokenizer_eos_id(t), 49407);
    cr_assert_eq(clasp_tokenizer_pad_id(t), 0);
    /* OpenAI CLIP's published encodings */
    check_ids(t, "a photo of a cat", (const int32_t[]){49406, 320, 1125, 539, 320, 2368, 49407}, 7);
    check_ids(t, "Hello World!", (const int32_t[]){49406, 3306, 1002, 256, 49407}, 5);
    /* cleaning: HTML entities, whitespace, case */
    check_ids(t, "  A&amp;nbsp;PHOTO\t\nof a  CAT ",
              (const int32_t[]){49406, 320, 1125, 539, 320, 2368, 49407}, 7);
    check_ids(t, "", (const int32_t[]){49406, 49407}, 2);
    check_ids(t, " \t ", (const int32_t[]){49406, 49407}, 2);
    char *s = NULL;
    size_t n = 0;
    const int32_t ids[] = {49406, 320, 1125, 539, 320, 2368, 49407, 0, 0};
    cr_assert_eq(clasp_tokenizer_decode(t, ids, 9, &s, &n), CLASP_OK);
    cr_expect_str_eq(s, "a photo of a cat ");
    free(s);
    clasp_tokenizer_free(t);
}

Test(clip_bpe, truncation_keeps_eot_last) {
    clasp_tokenizer *t = load_clip(MERGES);
    char text[4096] = "";
    for (int i = 0; i < 200; i++) strcat(text, "cat ");
    int32_t got[CTX];
    int used = -1;
    cr_assert_eq(clasp_tokenizer_encode_n(t, text, strlen(text), got, CTX, &used), CLASP_OK);
    cr_expect_eq(used, CTX - 2);
    cr_expect_eq(got[0], 49406);
    for (int i = 1; i < CTX - 1; i++) cr_expect_eq(got[i], 2368, "id %d: %d", i, (int)got[i]);
    cr_expect_eq(got[CTX - 1], 49407);
    int32_t *raw = NULL;
    size_t n_raw = 0;
    cr_assert_eq(clasp_tokenizer_encode_raw(t, text, strlen(text), &raw, &n_raw), CLASP_OK);
    cr_expect_eq(n_raw, 200);
    free(raw);
    int32_t small[4];
    cr_assert_eq(clasp_tokenizer_encode(t, "a photo of a cat", small, 4), CLASP_OK);
    cr_expect(small[0] == 49406 && small[1] == 320 && small[2] == 1125 && small[3] == 49407);
    clasp_tokenizer_free(t);
}

Test(clip_bpe, invalid_utf8_is_rejected) {
    clasp_tokenizer *t = load_clip(MERGES);
    int32_t got[CTX];
    cr_expect_eq(clasp_tokenizer_encode(t, "ok \xe2\x82", got, CTX), CLASP_ERR_FORMAT);
    cr_expect(strstr(clasp_last_error(), "invalid UTF-8 at byte 3"), "%s", clasp_last_error());
    clasp_tokenizer_free(t);
}

Test(clip_bpe, json_round_trip) {
    clasp_tokenizer *t = load_clip(MERGES);
    cJSON *o = clasp_tokenizer_to_json(t);
    cr_assert(o);
    cr_expect_str_eq(cJSON_GetObjectItem(o, "type")->valuestring, "clip_bpe");
    cr_expect_str_eq(cJSON_GetObjectItem(o, "path")->valuestring, "bpe_simple_vocab_16e6.txt.gz");
    cr_expect_eq(cJSON_GetObjectItem(o, "context_length")->valueint, 77);
    cr_expect_str_eq(clasp_tokenizer_merges_path(t), MERGES);
    cJSON_Delete(o);
    clasp_tokenizer_free(t);
}

/* Status and message of loading the merges file at path. */
static clasp_status load_status(const char *path) {
    char json[1024];
    snprintf(json, sizeof json, "{\"type\": \"clip_bpe\", \"path\": \"%s\"}", path);
    cJSON *o = cJSON_Parse(json);
    clasp_tokenizer *t = NULL;
    clasp_status s = clasp_tokenizer_from_json(o, "test.json", &t);
    cJSON_Delete(o);
    cr_expect_null(t);
    cr_expect(strstr(clasp_last_error(), path), "message names the file: %s", clasp_last_error());
    return s;
}

Test(clip_bpe, bad_merges_files) {
    char dir[FX_PATH], missing[FX_PATH], trunc[FX_PATH], corrupt[FX_PATH], shortf[FX_PATH],
        badline[FX_PATH];
    fx_scratch("clip_bpe_bad", dir, missing, "missing.txt.gz", trunc, "trunc.txt.gz", corrupt,
               "corrupt.txt.gz", shortf, "short.txt", badline, "badline.txt", NULL);
    cr_expect_eq(load_status(missing), CLASP_ERR_IO);
    size_t n = 0;
    uint8_t *gz = fx_read(MERGES, &n);
    cr_assert(gz && n > 1000);
    cr_assert(fx_write(trunc, gz, n / 2));
    cr_expect_eq(load_status(trunc), CLASP_ERR_FORMAT);
    for (size_t i = 100; i < n; i += 7) gz[i] ^= 0x5a;
    cr_assert(fx_write(corrupt, gz, n));
    clasp_status cs = load_status(corrupt);
    cr_expect_eq(cs, CLASP_ERR_FORMAT, "%d: %s", (int)cs, clasp_last_error());
    free(gz);
    cr_assert(fx_write_str(shortf, "#version: 0.2\ni n\nt h\n"));
    cr_expect_eq(load_status(shortf), CLASP_ERR_FORMAT);
    cr_expect(strstr(clasp_last_error(), "2 merges"), "%s", clasp_last_error());
    cr_assert(fx_write_str(badline, "#version: 0.2\ni n\nthree parts here\n"));
    cr_expect_eq(load_status(badline), CLASP_ERR_FORMAT);
    cr_expect(strstr(clasp_last_error(), "line 3"), "%s", clasp_last_error());
}

/* The gzip'd corpus file into a malloc'd NUL-terminated string. */
static char *read_gz(const char *path) {
    struct archive *a = archive_read_new();
    archive_read_support_filter_gzip(a);
    archive_read_support_format_raw(a);
    struct archive_entry *e;
    cr_assert_eq(archive_read_open_filename(a, path, 1 << 16), ARCHIVE_OK, "%s", path);
    cr_assert_eq(archive_read_next_header(a, &e), ARCHIVE_OK);
    size_t n = 0, cap = 1 << 20;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (cap - n < (1 << 16)) buf = realloc(buf, (cap *= 2) + 1);
        cr_assert(buf);
        la_ssize_t r = archive_read_data(a, buf + n, cap - n);
        cr_assert_geq(r, 0);
        if (r == 0) break;
        n += (size_t)r;
    }
    archive_read_free(a);
    buf[n] = '\0';
    return buf;
}

static int hexval(char c) {
    return c >= 'a' ? c - 'a' + 10 : c - '0';
}

Test(clip_bpe, parity_with_reference_corpus, .timeout = 120) {
    clasp_tokenizer *t = load_clip(MERGES);
    char path[1024];
    char *text = read_gz(clasp_test_ref_path("clip_bpe/corpus.tsv.gz", path, sizeof path));
    size_t lines = 0, errors = 0, bad = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *tab = strchr(line, '\t');
        cr_assert(tab);
        const size_t nb = (size_t)(tab - line) / 2;
        char *bytes = malloc(nb + 1);
        for (size_t i = 0; i < nb; i++)
            bytes[i] = (char)(hexval(line[2 * i]) * 16 + hexval(line[2 * i + 1]));
        int32_t got[CTX];
        clasp_status s = clasp_tokenizer_encode_n(t, bytes, nb, got, CTX, NULL);
        lines++;
        if (!strcmp(tab + 1, "ERR")) {
            errors++;
            if (s != CLASP_ERR_FORMAT && bad++ < 10)
                cr_log_error("line %zu: expected invalid UTF-8 to be rejected", lines);
        } else {
            int32_t want[CTX] = {0};
            char *p = tab + 1;
            for (int i = 0; *p && i < CTX; i++) want[i] = (int32_t)strtol(p, &p, 10);
            bool same = s == CLASP_OK && !memcmp(got, want, sizeof want);
            if (!same && bad++ < 10) {
                char g[1024] = "";
                for (int i = 0; i < CTX && (i == 0 || got[i - 1] != 49407); i++)
                    snprintf(g + strlen(g), sizeof g - strlen(g), " %d", (int)got[i]);
                cr_log_error("line %zu '%.*s': got%s, want %s (%s)", lines, (int)nb, bytes, g,
                             tab + 1, s == CLASP_OK ? "ok" : clasp_last_error());
            }
        }
        free(bytes);
    }
    cr_expect_geq(lines, 10000);
    cr_expect_gt(errors, 0);
    cr_expect_eq(bad, 0, "%zu of %zu corpus strings differ from the reference", bad, lines);
    free(text);
    clasp_tokenizer_free(t);
}

Test(clip_bpe, cli_encode) {
    char dir[FX_PATH], json[FX_PATH], lines[FX_PATH], merges[FX_PATH], bad[FX_PATH];
    fx_scratch("clip_bpe_cli", dir, json, "clip.json", lines, "lines.txt", merges, "m.txt.gz", bad,
               "bad.json", NULL);
    size_t n = 0;
    uint8_t *gz = fx_read(MERGES, &n);
    cr_assert(gz && fx_write(merges, gz, n));
    free(gz);
    cr_assert(fx_write_str(json, "{\"type\": \"clip_bpe\", \"path\": \"m.txt.gz\"}"));
    char *out = NULL;
    cr_expect_eq(fx_clasp(&out, "tokenizer encode %s 'A photo of a CAT' --context 9", json), 0);
    cr_expect_str_eq(out, "49406 320 1125 539 320 2368 49407 0 0\n");
    free(out);
    cr_assert(fx_write_str(lines, "Hello World!\nit's\n"));
    cr_expect_eq(fx_clasp(&out, "tokenizer encode %s --lines %s --raw", json, lines), 0);
    cr_expect_str_eq(out, "3306 1002 256\n585 568\n");
    free(out);
    cr_assert(fx_write(lines, "ok\n\xff\n", 5));
    cr_expect_eq(fx_clasp(&out, "tokenizer encode %s --lines %s --raw 2>/dev/null", json, lines),
                 1);
    free(out);
    /* a tokenizer file names only files beside it (an export's tokenizer.json) */
    char text[1024];
    snprintf(text, sizeof text, "{\"type\": \"clip_bpe\", \"path\": \"%s\"}", MERGES);
    cr_assert(fx_write_str(bad, text));
    clasp_tokenizer *t = NULL;
    cr_expect_eq(clasp_tokenizer_load(bad, &t), CLASP_ERR_CONFIG);
    cr_expect(strstr(clasp_last_error(), "outside"), "%s", clasp_last_error());
    cr_assert(fx_write_str(bad, "{\"type\": \"clip_bpe\", \"path\": \"../x/m.txt.gz\"}"));
    cr_expect_eq(clasp_tokenizer_load(bad, &t), CLASP_ERR_CONFIG);
}

/* An export of a model with a clip_bpe tokenizer carries the merges file, names it by file name
 * only (the export stays self-contained) and embeds texts after reopening. */
Test(clip_bpe, export_carries_merges, .timeout = 120) {
    char dir[FX_PATH], cfgp[FX_PATH], exp[FX_PATH], copied[FX_PATH], cfgout[FX_PATH];
    fx_scratch("clip_bpe_export", dir, cfgp, "clip.json", exp, "export", copied,
               "export/bpe_simple_vocab_16e6.txt.gz", cfgout, "export/config.json", NULL);
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\"embed_dim\": 16,"
             " \"image\": {\"type\": \"cnn\", \"channels\": 1, \"size\": 28, \"conv\": "
             "[{\"channels\": 4, \"kernel\": 3, \"stride\": 2,"
             "  \"padding\": 1, \"pool\": 2}], \"fc\": [8],"
             "  \"mean\": [0.5], \"std\": [0.5]},"
             " \"text\": {\"type\": \"transformer\", \"vocab_size\": 49408, \"context_length\": 77,"
             "  \"width\": 16, \"layers\": 1, \"heads\": 2, \"mlp_width\": 32, \"causal\": true,"
             "  \"pool\": \"eos\", \"tokenizer\": {\"type\": \"clip_bpe\", \"bos\": 49406,"
             "  \"eos\": 49407, \"pad\": 0, \"path\": \"%s\"}}}",
             MERGES);
    cr_assert(fx_write_str(cfgp, cfg));
    cr_assert(fx_export_model(cfgp, NULL, exp, 3), "%s", clasp_last_error());
    cr_expect(fx_same_file(copied, MERGES), "the export has a copy of the merges file");
    char *c = fx_read_text(cfgout);
    cr_assert(c);
    cr_expect(strstr(c, "\"bpe_simple_vocab_16e6.txt.gz\"") && !strstr(c, "shared/data"), "%s", c);
    free(c);
    clasp_embedder em;
    cr_assert_eq(clasp_embedder_open(exp, 1, 4, &em), CLASP_OK, "%s", clasp_last_error());
    const char *texts[2] = {"a photo of a cat", "  A PHOTO of a &amp; cat"};
    float out[32];
    cr_expect_eq(clasp_embedder_texts(&em, texts, 2, out), CLASP_OK, "%s", clasp_last_error());
    clasp_embedder_close(&em);
}
