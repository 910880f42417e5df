/* fuzz_npy.c: libFuzzer target: arbitrary bytes as an embeddings .npy file -> magic, version,
 * header dict (descr, fortran_order, shape), size checks -> the float rows. */
#include "eval/retrieval.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) {
        fuzz_quiet();
        init = 1;
    }
    const char *path = fuzz_file("emb.npy", data, size);
    if (!path) return 0;
    float *x = NULL;
    int64_t rows = 0, cols = 0;
    if (clasp_npy_read_f32(path, &x, &rows, &cols) == CLASP_OK) {
        volatile float sink = 0;
        for (int64_t i = 0; i < rows * cols; i++) sink += x[i];
        (void)sink;
        free(x);
    }
    unlink(path);
    return 0;
}
