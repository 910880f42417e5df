/* fuzz_openclip_arch.c: libFuzzer target: arbitrary bytes as an OpenCLIP model config (the
 * --arch-config of `clasp import openclip`) -> JSON parsing -> clasp_openclip_arch_parse, then
 * the clasp model config it implies, parsed back by encoders/ (export/openclip.c). */
#include "core/json.h"
#include "encoders/model.h"
#include "export/openclip.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) {
        fuzz_quiet();
        init = 1;
    }
    cJSON *root = NULL;
    if (clasp_json_parse((const char *)data, size, "arch.json", &root) != CLASP_OK) return 0;
    clasp_openclip_arch a;
    if (clasp_openclip_arch_parse(root, "arch.json", &a) == CLASP_OK) {
        cJSON *doc = NULL;
        if (clasp_openclip_model_config(&a, "bpe_simple_vocab_16e6.txt.gz", 4.6, &doc) ==
            CLASP_OK) {
            clasp_model_config cfg;
            (void)clasp_model_config_parse(doc, "openclip import", &cfg);
            cJSON_Delete(doc);
        }
    }
    cJSON_Delete(root);
    return 0;
}
