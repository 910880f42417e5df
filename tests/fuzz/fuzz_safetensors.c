/* fuzz_safetensors.c: libFuzzer target: arbitrary bytes as a .safetensors file -> header length,
 * JSON header, dtypes, shapes and offsets checks -> a float view of every F32 tensor (touching
 * every element, so an offset past the buffer is caught by ASan) and the metadata. */
#include "core/safetensors.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) {
        fuzz_quiet();
        init = 1;
    }
    clasp_safetensors *st = NULL;
    if (clasp_st_from_memory(data, size, "fuzz.safetensors", &st) != CLASP_OK) return 0;
    volatile float sink = 0;
    for (int i = 0; i < st->n_tensors; i++) {
        const clasp_st_tensor *t = &st->tensors[i];
        if (clasp_st_find(st, t->name) == NULL) abort(); /* every listed tensor can be found */
        const float *f = clasp_st_f32(st, t);
        if (!f) continue;
        for (size_t k = 0; k < t->numel; k++) sink += f[k];
    }
    (void)clasp_st_meta(st, "format");
    clasp_st_free(st);
    (void)sink;
    return 0;
}
