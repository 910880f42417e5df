/* test_text.c: UTF-8 validation (with byte offsets) and normalisation (modalities/text.h). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "modalities/text.h"

static void check_invalid(const char *s, size_t n, size_t want_offset) {
    size_t off = 12345;
    cr_assert_eq(clasp_text_validate_utf8(s, n, &off), CLASP_ERR_FORMAT, "accepted invalid input");
    cr_assert_eq(off, want_offset, "offset %zu, want %zu", off, want_offset);
    char want[64];
    snprintf(want, sizeof want, "invalid UTF-8 at byte %zu", want_offset);
    cr_assert(strstr(clasp_last_error(), want), "%s", clasp_last_error());
    clasp_text_config cfg = clasp_text_default_config();
    char *out = (char *)1;
    size_t n_out;
    cr_assert_eq(clasp_text_normalize(s, n, &cfg, &out, &n_out), CLASP_ERR_FORMAT);
    cr_assert_null(out);
}

Test(text, valid_utf8) {
    const char *ok[] = {"",
                        "plain ascii",
                        "caf\xc3\xa9",
                        "\xe2\x82\xac 5",
                        "\xf0\x9f\x98\x80",
                        "\xef\xbf\xbf",
                        "\xf4\x8f\xbf\xbf"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_assert_eq(clasp_text_validate_utf8(ok[i], strlen(ok[i]), NULL), CLASP_OK, "case %zu: %s",
                     i, clasp_last_error());
    /* NUL bytes are valid UTF-8. */
    cr_assert_eq(clasp_text_validate_utf8("a\0b", 3, NULL), CLASP_OK);
}

Test(text, invalid_utf8_sequences) {
    check_invalid("ab\xc0\xaf", 4, 2);        /* overlong '/' */
    check_invalid("\xe0\x80\xaf", 3, 0);      /* overlong, 3 bytes */
    check_invalid("x\xf0\x80\x80\xaf", 5, 1); /* overlong, 4 bytes */
    check_invalid("abc\xed\xa0\x80", 6, 3);   /* surrogate U+D800 */
    check_invalid("\xed\xbf\xbf", 3, 0);      /* surrogate U+DFFF */
    check_invalid("hello \xe2\x82", 8, 6);    /* truncated 3-byte sequence */
    check_invalid("\xf0\x9f\x98", 3, 0);      /* truncated 4-byte sequence */
    check_invalid("a\x80z", 3, 1);            /* lone continuation byte */
    check_invalid("\xf4\x90\x80\x80", 4, 0);  /* above U+10FFFF */
    check_invalid("ok \xff", 4, 3);           /* 0xFF never appears */
    check_invalid("\xc3(", 2, 0);             /* bad continuation */
}

static char *norm(const char *s, size_t n, clasp_text_config cfg) {
    char *out;
    size_t n_out;
    cr_assert_eq(clasp_text_normalize(s, n, &cfg, &out, &n_out), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert_eq(strlen(out), n_out);
    return out;
}

Test(text, normalisation) {
    clasp_text_config cfg = clasp_text_default_config();
    char *o = norm("a photo of a bag", 16, cfg);
    cr_assert_str_eq(o, "a photo of a bag");
    free(o);
    /* NFKC: ligature fi, fullwidth A, e + combining acute -> é (U+00E9). */
    const char nf[] = "\xef\xac\x81ne \xef\xbc\xa1 e\xcc\x81";
    o = norm(nf, sizeof nf - 1, cfg);
    cr_assert_str_eq(o, "fine A \xc3\xa9");
    free(o);
    /* Control characters: tab/newline become spaces, collapsed; ESC, NUL, DEL dropped; trimmed. */
    const char in[] = "  a\tb\r\n\nc\x1b[0m\x7f d\0e  ";
    o = norm(in, sizeof in - 1, cfg);
    cr_assert_str_eq(o, "a b c[0m de");
    free(o);
    /* Case fold only when asked. */
    o = norm("Stra\xc3\x9f"
             "e",
             7, cfg);
    cr_assert_str_eq(o, "Stra\xc3\x9f"
                        "e");
    free(o);
    cfg.casefold = true;
    o = norm("Stra\xc3\x9f"
             "e",
             7, cfg);
    cr_assert_str_eq(o, "strasse");
    free(o);
    /* Everything off: bytes come back unchanged. */
    clasp_text_config raw = {0};
    o = norm(" a\tb ", 5, raw);
    cr_assert_str_eq(o, " a\tb ");
    free(o);
}

Test(text, empty_caption) {
    clasp_text_config cfg = clasp_text_default_config();
    char *out = (char *)1;
    size_t n;
    cr_assert_eq(clasp_text_normalize("", 0, &cfg, &out, &n), CLASP_ERR_FORMAT);
    cr_assert_null(out);
    cr_assert(strstr(clasp_last_error(), "empty caption"), "%s", clasp_last_error());
    /* Only whitespace and control characters: empty after normalisation. */
    cr_assert_eq(clasp_text_normalize(" \t\x01\n ", 5, &cfg, &out, &n), CLASP_ERR_FORMAT);
    cr_assert(strstr(clasp_last_error(), "empty caption"), "%s", clasp_last_error());
    cfg.reject_empty = false;
    cr_assert_eq(clasp_text_normalize("", 0, &cfg, &out, &n), CLASP_OK);
    cr_assert_eq(n, 0);
    cr_assert_str_eq(out, "");
    free(out);
}

Test(text, config_from_json) {
    cJSON *o = cJSON_Parse("{\"casefold\": true, \"trim\": false}");
    clasp_text_config c;
    cr_assert_eq(clasp_text_config_from_json(o, "t.json", "normalizer", &c), CLASP_OK);
    cr_assert(c.casefold);
    cr_assert(!c.trim);
    cr_assert(c.nfkc);
    cJSON_Delete(o);
    o = cJSON_Parse("{\"nfkc\": 3}");
    cr_assert_eq(clasp_text_config_from_json(o, "t.json", "normalizer", &c), CLASP_ERR_CONFIG);
    cJSON_Delete(o);
}
