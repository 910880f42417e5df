/* jpeg.c: JPEG decoding with libjpeg-turbo's TurboJPEG API (Debian libturbojpeg0-dev) in place of
 * stb_image, which no longer sees JPEG data at all (STBI_NO_JPEG in stb_impl.c).
 *
 * Why: fuzzing (tests/fuzz/fuzz_image.c) found within seconds that stb_image v2.27 (Debian's)
 * writes past its Huffman size table on a DHT segment whose code counts sum above 256; its JPEG
 * reader also lacks arithmetic coding and has no scan limit for progressive files. libjpeg-turbo
 * is maintained, fuzzed under OSS-Fuzz, reads arithmetic-coded and every progressive JPEG, and
 * limits progressive scans (TJFLAG_LIMITSCANS). Warnings (truncated or corrupt data) are errors
 * (TJFLAG_STOPONWARNING): such a file is skipped, never decoded to a half-gray picture.
 *
 * Output matches clasp_image_decode's contract (image.h): gray images keep their luma; colour
 * images asked for as gray use stb's luma (77 R + 150 G + 29 B) >> 8, as PNG does; CMYK and
 * YCCK files (Adobe, stored inverted) become RGB as R = C K / 255. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "modalities/image.h"

int clasp__is_jpeg(const uint8_t *d, size_t n) {
    return n >= 2 && d[0] == 0xFF && d[1] == 0xD8; /* SOI, as stb_image tested */
}

/* Decodes into a malloc'd buffer of pixel format pf (w * h * tjPixelSize[pf] bytes). */
static clasp_status decode_(tjhandle tj, const uint8_t *d, size_t n, int w, int h, int pf,
                            uint8_t **out) {
    const size_t px = (size_t)tjPixelSize[pf];
    uint8_t *p = malloc((size_t)w * (size_t)h * px);
    if (!p) return clasp_set_error(CLASP_ERR_NOMEM, "image: JPEG %dx%d: out of memory", w, h);
    if (tjDecompress2(tj, d, (unsigned long)n, p, w, 0, h, pf,
                      TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS) != 0) {
        free(p);
        return clasp_set_error(CLASP_ERR_FORMAT,
                               "image: cannot decode %dx%d JPEG of %zu bytes (%s)", w, h, n,
                               tjGetErrorStr2(tj));
    }
    *out = p;
    return CLASP_OK;
}

/* In place: (C, M, Y, K) per pixel -> (R, G, B), compacting 4 -> 3 values. */
static void cmyk_to_rgb_(uint8_t *p, size_t n_px) {
    for (size_t i = 0; i < n_px; i++) {
        const unsigned k = p[4 * i + 3];
        uint8_t rgb[3];
        for (int c = 0; c < 3; c++) rgb[c] = (uint8_t)((p[4 * i + (size_t)c] * k + 127u) / 255u);
        memcpy(p + 3 * i, rgb, 3);
    }
}

/* In place: RGB -> gray with stb's luma, compacting 3 -> 1. */
static void rgb_to_gray_(uint8_t *p, size_t n_px) {
    for (size_t i = 0; i < n_px; i++)
        p[i] = (uint8_t)((p[3 * i] * 77u + p[3 * i + 1] * 150u + p[3 * i + 2] * 29u) >> 8);
}

clasp_status clasp__jpeg_decode(const uint8_t *d, size_t n, int channels, uint64_t max_pixels,
                                clasp_image *out) {
    if (n > (size_t)ULONG_MAX)
        return clasp_set_error(CLASP_ERR_OVERFLOW, "image: JPEG of %zu bytes", n);
    tjhandle tj = tjInitDecompress();
    if (!tj) return clasp_set_error(CLASP_ERR_NOMEM, "image: cannot start a JPEG decoder");
    int w = 0, h = 0, sub = 0, cs = 0;
    clasp_status s = CLASP_OK;
    if (tjDecompressHeader3(tj, d, (unsigned long)n, &w, &h, &sub, &cs) != 0)
        s = clasp_set_error(CLASP_ERR_FORMAT, "image: cannot read header of %zu bytes (JPEG: %s)",
                            n, tjGetErrorStr2(tj));
    else if (w <= 0 || h <= 0)
        s = clasp_set_error(CLASP_ERR_FORMAT, "image: header declares %dx%d pixels", w, h);
    else if ((uint64_t)w * (uint64_t)h > max_pixels)
        s = clasp_set_error(
            CLASP_ERR_OVERFLOW, "image: %dx%d = %llu pixels is above the limit of %llu pixels", w,
            h, (unsigned long long)w * (unsigned long long)h, (unsigned long long)max_pixels);
    uint8_t *p = NULL;
    const size_t n_px = (size_t)w * (size_t)h;
    if (s == CLASP_OK) {
        const int cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
        const int gray = cs == TJCS_GRAY;
        int pf = cmyk ? TJPF_CMYK : channels == 1 && gray ? TJPF_GRAY : TJPF_RGB;
        s = decode_(tj, d, n, w, h, pf, &p);
        if (s == CLASP_OK && cmyk) cmyk_to_rgb_(p, n_px);
        if (s == CLASP_OK && channels == 1 && pf != TJPF_GRAY) rgb_to_gray_(p, n_px);
    }
    tjDestroy(tj);
    if (s == CLASP_OK) *out = (clasp_image){.pixels = p, .w = w, .h = h, .channels = channels};
    return s;
}
