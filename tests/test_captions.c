/* test_captions.c: the caption rule (pipeline/captions.h) pinned by a table of sample field
 * combinations -> captions; training's decoder draws exactly those captions; and
 * `clasp tokenizer train` on shards reads exactly the captions training reads (it used to read
 * every text and json field, "captions" only as a list, "text" only without "captions", and no
 * 64-caption limit). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/json.h"
#include "modalities/text.h"
#include "modalities/tokenizer.h"
#include "pipeline/captions.h"
#include "pipeline/loader.h"
#include "fixtures.h"

#define MAX_FIELDS 3
#define MAX_WANT   5

/* One sample of the table: its fields and the captions the rule gives (raw bytes). */
typedef struct row {
    const char *key;
    const char *ext[MAX_FIELDS];
    const char *data[MAX_FIELDS];
    const char *want[MAX_WANT]; /* NULL-terminated; NULL first = no caption */
    clasp_skip_reason skip;     /* CLASP_SKIP_N when want[0] */
} row;

static const row rows_[] = {
    {"s00",
     {"txt", "json"},
     {"a red shirt", "{\"captions\":[\"x one\",\"y two\"],\"text\":\"z three\"}"},
     {"a red shirt", "x one", "y two", "z three"},
     CLASP_SKIP_N},
    {"s01",
     {"json"},
     {"{\"captions\":\"single string caption\"}"},
     {"single string caption"},
     CLASP_SKIP_N},
    {"s02",
     {"json"},
     {"{\"text\":[\"p first\",\"q second\"]}"},
     {"p first", "q second"},
     CLASP_SKIP_N},
    /* only the first text field is a caption; "txt" (exact) before "en.txt" (by last dot) */
    {"s03", {"en.txt", "txt"}, {"other language", "plain"}, {"plain"}, CLASP_SKIP_N},
    {"s04", {"txt", "json"}, {"kept", "{not json"}, {"kept"}, CLASP_SKIP_N},
    {"s05", {"json"}, {"{broken"}, {NULL}, CLASP_SKIP_BAD_JSON},
    {"s06",
     {"json", "cls"},
     {"{\"captions\":[1,\"num ok\",null,[\"nested\"]],\"text\":{\"a\":\"b\"}}", "3"},
     {"num ok"},
     CLASP_SKIP_N},
    {"s07", {"json"}, {"{\"other\":\"x\"}"}, {NULL}, CLASP_SKIP_MISSING_FIELD},
    {"s08", {"cls"}, {"1"}, {NULL}, CLASP_SKIP_MISSING_FIELD},
    {"s09",
     {"txt", "json"},
     {"\xff\xfe bad", "{\"captions\":[\"valid after bad\"]}"},
     {"\xff\xfe bad", "valid after bad"},
     CLASP_SKIP_N},
    /* only the first json field; "json" (exact) before "meta.json" */
    {"s10",
     {"meta.json", "json"},
     {"{\"text\":\"second json\"}", "{\"text\":\"from json\"}"},
     {"from json"},
     CLASP_SKIP_N},
    /* the text field's bytes are taken as they are (normalisation trims later); an empty json
     * caption is a caption (that normalisation refuses) */
    {"s11",
     {"txt", "json"},
     {"  spaced   out  ", "{\"captions\":[\"\"]}"},
     {"  spaced   out  ", ""},
     CLASP_SKIP_N},
    /* a NUL escape in the json: cJSON would cut the caption there, so the sample is skipped;
     * an escaped backslash before "u0000" is text, not a NUL */
    {"s14", {"txt", "json"}, {"ok", "{\"captions\":[\"a\\u0000b\"]}"}, {NULL}, CLASP_SKIP_BAD_TEXT},
    {"s15", {"json"}, {"{\"text\":\"back\\\\u0000slash\"}"}, {"back\\u0000slash"}, CLASP_SKIP_N},
};
#define N_ROWS (sizeof rows_ / sizeof rows_[0])

/* The sample with 70 captions: the rule keeps the first 64. */
static char *many_json_(void) {
    char *j = malloc(70 * 8 + 32);
    strcpy(j, "{\"captions\":[");
    for (int i = 0; i < 70; i++) sprintf(j + strlen(j), "%s\"c%02d\"", i ? "," : "", i);
    strcat(j, "]}");
    return j;
}

/* A sample in memory (fields point at the table's strings; never cleared). */
static clasp_sample sample_of_(const row *r, clasp_field *f) {
    clasp_sample s;
    memset(&s, 0, sizeof s);
    s.key = (char *)r->key;
    s.has_payload = true;
    for (int i = 0; i < MAX_FIELDS && r->ext[i]; i++) {
        f[i].ext = (char *)r->ext[i];
        f[i].data = (uint8_t *)r->data[i];
        f[i].n = strlen(r->data[i]);
        s.n_fields++;
    }
    s.fields = f;
    return s;
}

Test(captions, rule_table) {
    clasp_field_map fm = clasp_field_map_default();
    for (size_t k = 0; k < N_ROWS; k++) {
        const row *r = &rows_[k];
        clasp_field f[MAX_FIELDS];
        clasp_sample s = sample_of_(r, f);
        clasp_captions c;
        bool got = clasp_captions_of(&s, &fm, &c);
        size_t nw = 0;
        while (nw < MAX_WANT && r->want[nw]) nw++;
        cr_assert_eq(got, nw > 0, "%s", r->key);
        cr_assert_eq(c.n, nw, "%s: %zu captions, want %zu", r->key, c.n, nw);
        cr_assert_eq(c.skip, r->skip, "%s: skip %d", r->key, (int)c.skip);
        cr_assert_eq(c.detail == NULL, nw > 0, "%s", r->key);
        for (size_t i = 0; i < nw; i++) {
            cr_assert_eq(c.c[i].n, strlen(r->want[i]), "%s[%zu]", r->key, i);
            cr_assert(!memcmp(c.c[i].p, r->want[i], c.c[i].n), "%s[%zu]: %.*s", r->key, i,
                      (int)c.c[i].n, c.c[i].p);
        }
        clasp_captions_free(&c);
        cr_assert_null(c.json_);
    }
    /* 70 captions: the first 64 */
    char *j = many_json_();
    row big = {"s12", {"json"}, {j}, {NULL}, CLASP_SKIP_N};
    clasp_field f[MAX_FIELDS];
    clasp_sample s = sample_of_(&big, f);
    clasp_captions c;
    cr_assert(clasp_captions_of(&s, &fm, &c));
    cr_assert_eq(c.n, CLASP_MAX_CAPTIONS);
    cr_assert(c.c[63].n == 3 && !memcmp(c.c[63].p, "c63", 3));
    /* pick: evaluation takes the first, training the keyed draw */
    cr_assert_eq(clasp_captions_pick(&c, true, 5, 9, "s12"), 0);
    cr_assert_eq(clasp_captions_pick(&c, false, 5, 9, "s12"),
                 clasp_caption_choose(5, 9, "s12", 64));
    clasp_captions_free(&c);
    free(j);
    /* a field map with other extensions */
    clasp_field_map m2 = fm;
    snprintf(m2.text, sizeof m2.text, "caption");
    const row alt = {"s13", {"txt", "caption"}, {"not this", "this one"}, {"this one"}, 0};
    s = sample_of_(&alt, f);
    cr_assert(clasp_captions_of(&s, &m2, &c));
    cr_assert(c.n == 1 && c.c[0].n == 8 && !memcmp(c.c[0].p, "this one", 8));
    clasp_captions_free(&c);
}

/* Training's decoder draws, over epochs, exactly the rule's captions that normalise, and skips
 * the samples without captions with the rule's reasons. */
Test(captions, decoder_draws_the_rule_captions) {
    clasp_tokenizer *tok;
    cr_assert_eq(clasp_tokenizer_new_bytes(&tok), CLASP_OK);
    clasp_loader_config cfg = clasp_loader_default_config();
    cfg.required = CLASP_NEED_TEXT;
    cfg.seed = 7;
    cfg.tokenizer = tok;
    clasp_decoder *d;
    cr_assert_eq(clasp_decoder_new(&cfg, tok, &d), CLASP_OK, "%s", clasp_last_error());
    const int T = cfg.context_length;
    int32_t tokens[64];
    cr_assert(T <= 64);
    for (size_t k = 0; k < N_ROWS; k++) {
        const row *r = &rows_[k];
        clasp_field f[MAX_FIELDS];
        clasp_sample s = sample_of_(r, f);
        uint64_t want_ids[MAX_WANT];
        size_t nw = 0;
        bool seen[MAX_WANT] = {false}, any_invalid = false;
        for (; nw < MAX_WANT && r->want[nw]; nw++) {
            char *norm;
            size_t nn;
            want_ids[nw] = 0;
            if (clasp_text_normalize(r->want[nw], strlen(r->want[nw]), &cfg.text, &norm, &nn) !=
                CLASP_OK) {
                seen[nw] = any_invalid = true; /* refused whenever drawn */
                continue;
            }
            cr_assert_eq(clasp_tokenizer_encode_n(tok, norm, nn, tokens, T, NULL), CLASP_OK);
            free(norm);
            want_ids[nw] = clasp_hash64(tokens, (size_t)T * sizeof(int32_t), 0);
        }
        for (uint64_t epoch = 0; epoch < 64; epoch++) {
            clasp_decoded out = {.tokens = tokens};
            bool ok;
            clasp_skip_reason why;
            cr_assert_eq(clasp_decoder_run(d, &s, epoch, NULL, &out, &ok, &why), CLASP_OK);
            if (nw == 0) {
                cr_assert(!ok && why == r->skip, "%s: why %d", r->key, (int)why);
                continue;
            }
            if (!ok) {
                cr_assert(why == CLASP_SKIP_BAD_TEXT && any_invalid, "%s: why %d", r->key,
                          (int)why);
                continue;
            }
            size_t i = 0;
            while (i < nw && (want_ids[i] != out.group_id || !want_ids[i])) i++;
            cr_assert(i < nw, "%s epoch %llu: a caption outside the rule", r->key,
                      (unsigned long long)epoch);
            seen[i] = true;
        }
        for (size_t i = 0; i < nw; i++)
            cr_assert(seen[i], "%s: caption %zu never drawn in 64 epochs", r->key, i);
    }
    clasp_decoder_free(d);
    clasp_tokenizer_free(tok);
}

/* Runs cmd and returns the "captions"/"rejected" of its --json line. */
static void tokenizer_run_(const char *cmd, const char *json_path, long *captions, long *rejected) {
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    cJSON *j;
    cr_assert_eq(clasp_json_load(json_path, &j), CLASP_OK, "%s", clasp_last_error());
    *captions = (long)cJSON_GetObjectItem(j, "captions")->valuedouble;
    *rejected = (long)cJSON_GetObjectItem(j, "rejected")->valuedouble;
    cJSON_Delete(j);
}

Test(captions, tokenizer_train_reads_the_training_captions) {
    char tmp[1024], shard[1100], lines[1100], a[1100], b[1100], ja[1100], jb[1100], cmd[8192];
    clasp_test_tmpdir("captions_tok", tmp, sizeof tmp);
    snprintf(shard, sizeof shard, "%s/s.tar", tmp);
    snprintf(lines, sizeof lines, "%s/expected.txt", tmp);
    snprintf(a, sizeof a, "%s/from_shards.json", tmp);
    snprintf(b, sizeof b, "%s/from_lines.json", tmp);
    snprintf(ja, sizeof ja, "%s/a.out", tmp);
    snprintf(jb, sizeof jb, "%s/b.out", tmp);
    /* the table's samples plus the 70-caption one, each with an image */
    fx_member m[4 * (N_ROWS + 1)];
    char names[4 * (N_ROWS + 1)][64];
    size_t nm = 0, npix;
    uint8_t *pix = fx_pnm(4, 4, 1, 1, &npix);
    char *many = many_json_();
    FILE *f = fopen(lines, "w");
    cr_assert(f);
    long want = 0;
    for (size_t k = 0; k <= N_ROWS; k++) {
        const row big = {"s12", {"json"}, {many}, {NULL}, CLASP_SKIP_N};
        const row *r = k < N_ROWS ? &rows_[k] : &big;
        snprintf(names[nm], 64, "%s.png", r->key);
        m[nm] = (fx_member){names[nm], pix, npix, 0}, nm++;
        for (int i = 0; i < MAX_FIELDS && r->ext[i]; i++) {
            snprintf(names[nm], 64, "%s.%s", r->key, r->ext[i]);
            m[nm] = (fx_member){names[nm], r->data[i], strlen(r->data[i]), 0}, nm++;
        }
        /* the expected captions, normalised, one per line, in sample order */
        for (size_t i = 0; k < N_ROWS && i < MAX_WANT && r->want[i]; i++) {
            char *norm;
            size_t nn;
            clasp_text_config tc = clasp_text_default_config();
            if (clasp_text_normalize(r->want[i], strlen(r->want[i]), &tc, &norm, &nn) != CLASP_OK)
                continue;
            fprintf(f, "%s\n", norm);
            free(norm);
            want++;
        }
        for (int i = 0; k == N_ROWS && i < CLASP_MAX_CAPTIONS; i++, want++)
            fprintf(f, "c%02d\n", i);
    }
    fclose(f);
    cr_assert(fx_write_tar(shard, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, m, nm));
    free(pix);
    free(many);
    long ca, ra, cb, rb;
    snprintf(cmd, sizeof cmd, "%s tokenizer train %s -o %s --vocab 300 --json > %s 2>/dev/null",
             clasp_test_bin(), shard, a, ja);
    tokenizer_run_(cmd, ja, &ca, &ra);
    snprintf(cmd, sizeof cmd,
             "%s tokenizer train --lines %s -o %s --vocab 300 --json > %s 2>/dev/null",
             clasp_test_bin(), lines, b, jb);
    tokenizer_run_(cmd, jb, &cb, &rb);
    /* 4+1+2+1+1+1+2(one invalid)+1+2(one empty)+0(NUL escape)+1+64 captions, 2 refused by
     * normalisation */
    cr_assert_eq(want, 14 + 64);
    cr_assert_eq(cb, want);
    cr_assert_eq(ca, want, "tokenizer read %ld captions from the shards, training reads %ld", ca,
                 want);
    cr_assert_eq(ra, 2, "rejected %ld, want 2 (the invalid UTF-8 and the empty caption)", ra);
    /* same captions in the same order: the same tokenizer, byte for byte */
    size_t na, nb;
    uint8_t *ta = fx_read(a, &na), *tb = fx_read(b, &nb);
    cr_assert(ta && tb);
    cr_assert(na == nb && !memcmp(ta, tb, na), "tokenizers differ");
    free(ta);
    free(tb);
}

/* A caption with a NUL byte in a .txt field is never cut at the NUL: the rule keeps every byte,
 * the default normalisation drops the NUL as a control character, and without strip_control
 * the NUL reaches the tokenizer as byte 0 and decodes back. */
Test(captions, nul_in_text_field_is_kept_not_truncated) {
    static const char cap[] = "a photo\0 of a bag";
    const size_t n = sizeof cap - 1;
    clasp_field f = {.ext = (char *)"txt", .data = (uint8_t *)cap, .n = n};
    clasp_sample s;
    memset(&s, 0, sizeof s);
    s.key = (char *)"k";
    s.has_payload = true;
    s.fields = &f;
    s.n_fields = 1;
    clasp_field_map fm = clasp_field_map_default();
    clasp_captions c;
    cr_assert(clasp_captions_of(&s, &fm, &c));
    cr_assert_eq(c.c[0].n, n);
    clasp_text_config tc = clasp_text_default_config();
    char *norm = NULL;
    size_t nn = 0;
    cr_assert_eq(clasp_text_normalize(c.c[0].p, c.c[0].n, &tc, &norm, &nn), CLASP_OK);
    cr_assert(nn == 16 && !memcmp(norm, "a photo of a bag", 16), "%.*s", (int)nn, norm);
    free(norm);
    tc.strip_control = false;
    cr_assert_eq(clasp_text_normalize(c.c[0].p, c.c[0].n, &tc, &norm, &nn), CLASP_OK);
    cr_assert_eq(nn, n);
    clasp_tokenizer *tok = NULL;
    cr_assert_eq(clasp_tokenizer_new_bytes(&tok), CLASP_OK);
    int32_t ids[32];
    int used = 0;
    cr_assert_eq(clasp_tokenizer_encode_n(tok, norm, nn, ids, 32, &used), CLASP_OK);
    cr_assert_eq(used, (int)n);
    cr_assert_eq(ids[1 + 7], 0, "the NUL is token 0");
    char *back = NULL;
    size_t nb = 0;
    cr_assert_eq(clasp_tokenizer_decode(tok, ids, 32, &back, &nb), CLASP_OK);
    cr_assert(nb == n && !memcmp(back, cap, n));
    free(back);
    free(norm);
    clasp_tokenizer_free(tok);
    clasp_captions_free(&c);
}
