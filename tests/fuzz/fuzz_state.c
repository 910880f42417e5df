/* fuzz_state.c: libFuzzer target: arbitrary bytes as a checkpoint's state.json -> JSON parsing
 * -> the fields resume reads from it (format version, counters, the loader positions of every
 * source and rank). Checksums guard the tensor files, so the tensors are fuzz_safetensors'. */
#include "core/json.h"
#include "fuzz.h"
#include "pipeline/loader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) {
        fuzz_quiet();
        init = 1;
    }
    cJSON *st = NULL;
    if (clasp_json_parse((const char *)data, size, "state.json", &st) != CLASP_OK) return 0;
    int v;
    (void)clasp_json_format_version(st, "state.json", 1, &v);
    int64_t x;
    (void)clasp_json_int(st, "step", "state.json", "", 0, INT64_MAX / 2, &x);
    (void)clasp_json_int(st, "samples", "state.json", "", 0, INT64_MAX / 2, &x);
    clasp_loader_position pos;
    (void)clasp_loader_position_from_json(cJSON_GetObjectItemCaseSensitive(st, "loader"), &pos);
    const cJSON *l, *src;
    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(st, "loaders")) {
        (void)clasp_loader_position_from_json(l, &pos);
    }
    cJSON_ArrayForEach(src, cJSON_GetObjectItemCaseSensitive(st, "sources")) {
        cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(src, "loaders")) {
            (void)clasp_loader_position_from_json(l, &pos);
        }
    }
    cJSON_Delete(st);
    return 0;
}
