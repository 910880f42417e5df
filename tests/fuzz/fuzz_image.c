/* fuzz_image.c: libFuzzer target: arbitrary bytes -> clasp's image decoding (header checks in
 * front of stb_image: PNG, JPEG, BMP, GIF, TGA, PNM, PSD, PIC) -> preprocessing with both
 * filters, in gray and RGB, with a pixel limit like the loader's; JPEGs also through the
 * DCT-scaled decode. Seeds: tests/fuzz/corpus/image (make_seeds.py). */
#include "fuzz.h"
#include "modalities/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) {
        fuzz_quiet();
        init = 1;
    }
    for (int channels = 1; channels <= 3; channels += 2) {
        clasp_image_config cfg = clasp_image_default_config();
        cfg.channels = channels;
        cfg.size = 16;
        cfg.max_pixels = (uint64_t)1 << 20;
        clasp_image img;
        if (clasp_image_decode(data, size, channels, cfg.max_pixels, &img) != CLASP_OK) continue;
        float out[3 * 16 * 16];
        (void)clasp_image_preprocess(&img, &cfg, out);
        cfg.interp = CLASP_IMAGE_INTERP_BICUBIC;
        (void)clasp_image_preprocess(&img, &cfg, out);
        clasp_image_free(&img);
        int w, h;
        if (clasp_image_jpeg_size(data, size, &w, &h)) {
            cfg.jpeg_dct_scaling = true;
            (void)clasp_image_load(data, size, &cfg, out);
        }
    }
    return 0;
}
