/* fuzz_text.c: libFuzzer target: arbitrary bytes as a caption -> UTF-8 validation and
 * normalisation (utf8proc NFKC, control stripping, whitespace) -> the byte tokenizer and a small
 * BPE, to a fixed context and raw. Checks, besides the sanitizers, that a raw encoding decodes
 * back to exactly the normalised bytes, embedded NUL bytes included (no path may cut a caption
 * at a NUL). */
#include "fuzz.h"
#include "modalities/text.h"
#include "modalities/tokenizer.h"

static clasp_tokenizer *tok_[2];

static void init_(void) {
    fuzz_quiet();
    static const char *const texts[] = {"a photo of a bag", "a photo of a sandal", "an ankle boot",
                                        "une photo d'une botte",
                                        "\xe7\x8c\xab \xf0\x9f\x98\x80 caf\xc3\xa9"};
    if (clasp_tokenizer_new_bytes(&tok_[0]) != CLASP_OK ||
        clasp_tokenizer_train_bpe(texts, sizeof texts / sizeof texts[0], 300, 1, &tok_[1]) !=
            CLASP_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tok_[0]) init_();
    size_t bad;
    (void)clasp_text_validate_utf8((const char *)data, size, &bad);
    clasp_text_config cfg = clasp_text_default_config();
    cfg.casefold = size > 0 && data[0] & 1;
    char *norm = NULL;
    size_t n = 0;
    if (clasp_text_normalize((const char *)data, size, &cfg, &norm, &n) != CLASP_OK) return 0;
    for (int k = 0; k < 2; k++) {
        int32_t ids[77];
        int used;
        (void)clasp_tokenizer_encode_n(tok_[k], norm, n, ids, 77, &used);
        int32_t *raw = NULL;
        size_t n_raw = 0;
        if (clasp_tokenizer_encode_raw(tok_[k], norm, n, &raw, &n_raw) != CLASP_OK) continue;
        char *back = NULL;
        size_t n_back = 0;
        if (clasp_tokenizer_decode(tok_[k], raw, n_raw, &back, &n_back) == CLASP_OK &&
            (n_back != n || memcmp(back, norm, n) != 0))
            abort(); /* the round trip lost or changed bytes */
        free(back);
        free(raw);
    }
    free(norm);
    return 0;
}
