/* fuzz_config.c: libFuzzer target: arbitrary bytes as a model config.json -> JSON parsing ->
 * the towers' config (encoders/, which refuses unknown keys) and the preprocessing it implies
 * (image, audio, text, tokenizer objects), then back to JSON. */
#include "core/json.h"
#include "encoders/model.h"
#include "fuzz.h"
#include "modalities/preprocess.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) {
        fuzz_quiet();
        init = 1;
    }
    cJSON *root = NULL;
    if (clasp_json_parse((const char *)data, size, "config.json", &root) != CLASP_OK) return 0;
    clasp_model_config cfg;
    if (clasp_model_config_parse(root, "config.json", &cfg) == CLASP_OK) {
        cJSON *back = NULL;
        if (clasp_model_config_to_json(&cfg, &back) == CLASP_OK) cJSON_Delete(back);
    }
    clasp_preprocess pre;
    if (clasp_preprocess_parse(root, "config.json", &pre) == CLASP_OK) clasp_preprocess_free(&pre);
    cJSON_Delete(root);
    return 0;
}
