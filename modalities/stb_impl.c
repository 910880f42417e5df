/* stb_impl.c: the one translation unit that compiles the stb implementations clasp uses:
 * stb_image (decoding), stb_image_resize (resizing) and stb_image_write (PNG encoding only: its
 * JPEG writer has a signed-shift overflow that UBSan builds abort on).
 *
 * Everything from stb is compiled `static` (STB_*_STATIC), so these symbols never clash with
 * Debian's libstb.so or any other copy; the rest of clasp reaches them only through the small
 * clasp__stb_* wrappers below (declared in the private section of modalities/image.h), so no
 * stb type or macro appears in any clasp header.
 *
 * stb_image keeps its failure reason in a thread-local string (STBI_THREAD_LOCAL, defined by
 * the header for C11), so decoding from several loader threads at once is safe. The global
 * switches of stb_image (vertical flip, iPhone PNG conversion) are never touched.
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "modalities/image.h"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmisleading-indentation"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#endif

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO
#define STBI_NO_HDR
#define STBI_NO_LINEAR
#define STBI_NO_JPEG /* modalities/jpeg.c decodes JPEG with libjpeg-turbo */
#include <stb/stb_image.h>

#define STB_IMAGE_RESIZE_STATIC
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb/stb_image_resize.h>

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb/stb_image_write.h>

#if defined(__GNUC__)
#pragma GCC diagnostic pop
/* Unused static stb functions are reported at the end of the file, after the pop. */
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

int clasp__stb_info(const uint8_t *data, size_t n, int *w, int *h, int *comp) {
    if (n > (size_t)INT_MAX) return 0;
    return stbi_info_from_memory(data, (int)n, w, h, comp);
}

uint8_t *clasp__stb_load(const uint8_t *data, size_t n, int *w, int *h, int *comp, int req) {
    if (n > (size_t)INT_MAX) return NULL;
    return stbi_load_from_memory(data, (int)n, w, h, comp, req);
}

void clasp__stb_free(void *p) {
    stbi_image_free(p);
}

const char *clasp__stb_failure_reason(void) {
    const char *r = stbi_failure_reason();
    return r ? r : "unknown reason";
}

int clasp__stb_resize_region(const uint8_t *in, int in_w, int in_h, int channels, uint8_t *out,
                             int out_w, int out_h, float s0, float t0, float s1, float t1) {
    return stbir_resize_region(in, in_w, in_h, 0, out, out_w, out_h, 0, STBIR_TYPE_UINT8, channels,
                               STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP, STBIR_EDGE_CLAMP,
                               STBIR_FILTER_CATMULLROM, STBIR_FILTER_CATMULLROM,
                               STBIR_COLORSPACE_LINEAR, NULL, s0, t0, s1, t1);
}

/* Growable output buffer for stb_image_write's callback. */
typedef struct write_buf {
    uint8_t *data;
    size_t n, cap;
    int failed;
} write_buf;

static void write_cb(void *ctx, void *data, int size) {
    write_buf *b = ctx;
    if (b->failed || size <= 0) return;
    size_t need = b->n + (size_t)size;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < need) cap *= 2;
        uint8_t *p = realloc(b->data, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->n, data, (size_t)size);
    b->n = need;
}

int clasp__stb_write_png(const uint8_t *pixels, int w, int h, int channels, uint8_t **out,
                         size_t *n) {
    write_buf b = {0};
    int ok = stbi_write_png_to_func(write_cb, &b, w, h, channels, pixels, 0);
    if (!ok || b.failed || b.n == 0) {
        free(b.data);
        return 0;
    }
    *out = b.data;
    *n = b.n;
    return 1;
}
