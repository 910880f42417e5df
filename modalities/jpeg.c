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

/* Decodes into a malloc'd buffer of pixel format pf (w * h * tjPixelSize[pf] bytes); w x h is
 * the header's size or a scaled one (TJSCALED), from which TurboJPEG picks its DCT scale. */
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

int clasp__jpeg_size(const uint8_t *d, size_t n, int *w, int *h) {
    if (n > (size_t)ULONG_MAX) return 0;
    tjhandle tj = tjInitDecompress();
    if (!tj) return 0;
    int sub = 0, cs = 0;
    const int ok = tjDecompressHeader3(tj, d, (unsigned long)n, w, h, &sub, &cs) == 0;
    tjDestroy(tj);
    return ok && *w > 0 && *h > 0;
}

/* The DCT scale 1/denom: the largest denom in {8, 4, 2} with region >= need * denom (a span of
 * `region` header pixels, decoded at 1/denom, still has >= need pixels; TJSCALED rounds up),
 * else 1. Only 1/2, 1/4 and 1/8 are used: libjpeg-turbo has SIMD inverse DCTs for those (and
 * for 1/1), while the other M/8 factors run plain C and gain little over a full decode. */
static int dct_denom_(int need, int region) {
    if (need <= 0 || region <= 0) return 1;
    for (int denom = 8; denom > 1; denom /= 2)
        if ((int64_t)region >= (int64_t)need * denom) return denom;
    return 1;
}

clasp_status clasp__jpeg_decode(const uint8_t *d, size_t n, int channels, uint64_t max_pixels,
                                clasp_image *out) {
    return clasp__jpeg_decode_scaled(d, n, channels, max_pixels, 0, 0, out);
}

clasp_status clasp__jpeg_decode_scaled(const uint8_t *d, size_t n, int channels,
                                       uint64_t max_pixels, int need, int region,
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
    const int denom = dct_denom_(need, region);
    const tjscalingfactor sf = {1, denom};
    const int fw = w, fh = h; /* the header's size; the pixel limit applied to it above */
    if (s == CLASP_OK && denom > 1) {
        w = TJSCALED(w, sf);
        h = TJSCALED(h, sf);
    }
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
    if (s == CLASP_OK)
        *out = (clasp_image){.pixels = p,
                             .w = w,
                             .h = h,
                             .channels = channels,
                             .full_w = denom > 1 ? fw : 0,
                             .full_h = denom > 1 ? fh : 0};
    return s;
}
