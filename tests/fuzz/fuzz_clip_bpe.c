/* fuzz_clip_bpe.c: libFuzzer target: arbitrary bytes as a caption -> the clip_bpe tokenizer
 * (modalities/clip_bpe.c: UTF-8 check, HTML unescaping, whitespace, lower case, the
 * pre-tokeniser, merges) on the raw bytes and on clasp's normalised text (modalities/text.h),
 * to OpenCLIP's context of 77 and raw, then decoding. Checks, besides the sanitizers, the
 * layout: start token first, the end token present, zero padding after it, ids in the
 * vocabulary. Reads the merges file of ../shared/data/openclip once. */
#include "fuzz.h"
#include "modalities/text.h"
#include "modalities/tokenizer.h"

#define MERGES CLASP_SOURCE_DIR "/../shared/data/openclip/bpe_simple_vocab_16e6.txt.gz"

static clasp_tokenizer *tok_;

static void init_(void) {
    fuzz_quiet();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "clip_bpe");
    cJSON_AddStringToObject(o, "path", MERGES);
    if (clasp_tokenizer_from_json(o, "fuzz.json", &tok_) != CLASP_OK) {
        fprintf(stderr, "fuzz_clip_bpe: %s\n", clasp_last_error());
        abort();
    }
    cJSON_Delete(o);
}

static void check_(const char *s, size_t n) {
    int32_t ids[77];
    int used = -1;
    if (clasp_tokenizer_encode_n(tok_, s, n, ids, 77, &used) != CLASP_OK) return;
    if (ids[0] != 49406 || used < 0 || used > 75 || ids[used + 1] != 49407) abort();
    for (int i = 0; i < 77; i++) {
        if (ids[i] < 0 || ids[i] >= 49408) abort();
        if (i > used + 1 && ids[i] != 0) abort();
    }
    int32_t *raw = NULL;
    size_t n_raw = 0;
    if (clasp_tokenizer_encode_raw(tok_, s, n, &raw, &n_raw) != CLASP_OK) abort();
    for (int i = 0; i < used; i++)
        if ((size_t)i >= n_raw || raw[i] != ids[i + 1]) abort(); /* 77 ids = the raw prefix */
    char *back = NULL;
    size_t n_back = 0;
    if (clasp_tokenizer_decode(tok_, raw, n_raw, &back, &n_back) != CLASP_OK) abort();
    free(back);
    free(raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tok_) init_();
    check_((const char *)data, size);
    clasp_text_config cfg = clasp_text_default_config();
    char *norm = NULL;
    size_t n = 0;
    if (clasp_text_normalize((const char *)data, size, &cfg, &norm, &n) != CLASP_OK) return 0;
    check_(norm, n);
    free(norm);
    return 0;
}
