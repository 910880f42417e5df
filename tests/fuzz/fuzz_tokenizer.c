/* fuzz_tokenizer.c: libFuzzer target: arbitrary bytes as a tokenizer.json -> JSON parsing ->
 * tokenizer construction (type, ids, merges, vocabulary size checks) -> encoding a fixed text. */
#include "core/json.h"
#include "fuzz.h"
#include "modalities/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) {
        fuzz_quiet();
        init = 1;
    }
    cJSON *root = NULL;
    if (clasp_json_parse((const char *)data, size, "tokenizer.json", &root) != CLASP_OK) return 0;
    clasp_tokenizer *tok = NULL;
    if (clasp_tokenizer_from_json(root, "tokenizer.json", &tok) == CLASP_OK) {
        int32_t ids[32];
        (void)clasp_tokenizer_encode(tok, "a photo of a bag, \xc3\xa9t\xc3\xa9", ids, 32);
        clasp_tokenizer_free(tok);
    }
    cJSON_Delete(root);
    return 0;
}
