/* pil_resample.c: PIL's Image.resize(size, Image.BICUBIC) for 8-bit images, reproduced so that
 * clasp's "interp": "bicubic" gives Pillow's pixels bit for bit (and so torchvision's Resize +
 * CenterCrop on a PIL image, the preprocessing OpenAI CLIP and OpenCLIP models were trained
 * with).
 *
 * ref: Pillow src/libImaging/Resample.c (9.x): bicubic_filter (Keys, a = -0.5, support 2),
 * precompute_coeffs (support widened by the scale when shrinking, pixel centres at +0.5, taps
 * outside the image dropped and the rest renormalised), normalize_coeffs_8bpc (weights as
 * 22-bit fixed point rounded away from zero), ImagingResampleHorizontal_8bpc / _Vertical_8bpc
 * (accumulate in int from 1 << 21, shift and clip to 0..255) and ImagingResampleInner
 * (horizontal pass first, over the rows the vertical pass reads only, then vertical).
 *
 * Why not stb_image_resize: it computes both axes in float and clamps the border, so it cannot
 * give PIL's rounding between the passes nor its renormalised edges (docs/data.md gives the
 * difference it leaves); no library in the build does PIL's arithmetic.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/sizes.h"
#include "modalities/image.h"

#define PIL_PRECISION_BITS (32 - 8 - 2)

static double bicubic_(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Fixed-point weights of `n` output pixels: k (n, ksize), bounds (n, 2) = first tap (relative
 * to ax->lo) and tap count. */
typedef struct coeffs_ {
    int32_t *k;
    int *bounds;
    int ksize;
} coeffs_;

static void coeffs_free_(coeffs_ *c) {
    free(c->k);
    free(c->bounds);
}

static clasp_status coeffs_init_(const clasp__pil_axis *ax, int n, coeffs_ *c) {
    memset(c, 0, sizeof *c);
    /* ref: precompute_coeffs; in0/in1 are floats there and their difference is a float. */
    const double scale = (double)(ax->in1 - ax->in0) / ax->out_size;
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = 2.0 * filterscale;
    const int in_size = ax->hi - ax->lo;
    if (!(support < 1e6))
        return clasp_set_error(CLASP_ERR_ARG, "image resample: scale %g too large", scale);
    c->ksize = (int)ceil(support) * 2 + 1;
    size_t nk;
    if (!clasp_size_mul((size_t)n, (size_t)c->ksize, &nk))
        return clasp_set_error(CLASP_ERR_OVERFLOW, "image resample: %d x %d weights", n, c->ksize);
    double *kk = malloc(nk * sizeof *kk);
    c->k = malloc(nk * sizeof *c->k);
    c->bounds = malloc((size_t)n * 2 * sizeof *c->bounds);
    if (!kk || !c->k || !c->bounds) {
        free(kk);
        coeffs_free_(c);
        return clasp_set_error(CLASP_ERR_NOMEM, "image resample: %zu weights", nk);
    }
    const double ss = 1.0 / filterscale;
    for (int i = 0; i < n; i++) {
        const int xx = ax->first + i;
        const double center = (double)ax->in0 + (xx + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        if (xmax < 0) xmax = 0;
        double *k = kk + (size_t)i * (size_t)c->ksize, ww = 0.0;
        int x = 0;
        for (; x < xmax; x++) {
            k[x] = bicubic_((x + xmin - center + 0.5) * ss);
            ww += k[x];
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < c->ksize; x++) k[x] = 0;
        c->bounds[2 * i] = xmin;
        c->bounds[2 * i + 1] = xmax;
    }
    /* ref: normalize_coeffs_8bpc */
    for (size_t i = 0; i < nk; i++)
        c->k[i] = kk[i] < 0 ? (int32_t)(-0.5 + kk[i] * (1 << PIL_PRECISION_BITS))
                            : (int32_t)(0.5 + kk[i] * (1 << PIL_PRECISION_BITS));
    free(kk);
    return CLASP_OK;
}

static inline uint8_t clip8_(int32_t v) {
    if (v >= (1 << PIL_PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PIL_PRECISION_BITS);
}

/* True when the axis maps its source one to one (PIL skips that pass). */
static int identity_(const clasp__pil_axis *a, int n) {
    const int in_size = a->hi - a->lo;
    return a->in0 == 0.0f && a->in1 == (float)in_size && a->out_size == in_size && a->first == 0 &&
           n == in_size;
}

clasp_status clasp__pil_resample(const clasp_image *img, const clasp__pil_axis *ax,
                                 const clasp__pil_axis *ay, uint8_t *dst, int dw, int dh) {
    if (!img || !img->pixels || !ax || !ay || !dst || dw <= 0 || dh <= 0)
        return clasp_set_error(CLASP_ERR_ARG, "image resample: bad argument");
    if (ax->lo < 0 || ax->hi > img->w || ax->lo >= ax->hi || ay->lo < 0 || ay->hi > img->h ||
        ay->lo >= ay->hi || ax->out_size <= 0 || ay->out_size <= 0 || !(ax->in1 > ax->in0) ||
        !(ay->in1 > ay->in0))
        return clasp_set_error(CLASP_ERR_ARG,
                               "image resample: window [%d,%d)x[%d,%d) outside the %dx%d image",
                               ax->lo, ax->hi, ay->lo, ay->hi, img->w, img->h);
    const int C = img->channels;
    const size_t in_row = (size_t)img->w * (size_t)C, out_row = (size_t)dw * (size_t)C;
    coeffs_ cx = {0}, cy = {0};
    uint8_t *tmp = NULL;
    clasp_status s = coeffs_init_(ax, dw, &cx);
    if (s == CLASP_OK) s = coeffs_init_(ay, dh, &cy);
    if (s != CLASP_OK) goto done;
    /* Source rows the vertical pass reads (relative to ay->lo): [y_first, y_last). */
    const int y_first = cy.bounds[0];
    const int y_last = cy.bounds[2 * (dh - 1)] + cy.bounds[2 * (dh - 1) + 1];
    const int n_rows = y_last > y_first ? y_last - y_first : 0;
    const uint8_t *rows; /* (n_rows, row_w, C), row stride `stride` */
    size_t stride;
    if (identity_(ax, dw)) {
        rows = img->pixels + (size_t)(ay->lo + y_first) * in_row + (size_t)ax->lo * (size_t)C;
        stride = in_row;
    } else {
        size_t nb = 0;
        if (!clasp_size_mul3((size_t)(n_rows > 0 ? n_rows : 1), (size_t)dw, (size_t)C, &nb))
            s = clasp_set_error(CLASP_ERR_OVERFLOW, "image resample: %d x %d", n_rows, dw);
        tmp = s == CLASP_OK ? malloc(nb) : NULL;
        if (s == CLASP_OK && !tmp)
            s = clasp_set_error(CLASP_ERR_NOMEM, "image resample: %zu bytes", nb);
        if (s != CLASP_OK) goto done;
        /* ref: ImagingResampleHorizontal_8bpc */
        for (int y = 0; y < n_rows; y++) {
            const uint8_t *src =
                img->pixels + (size_t)(ay->lo + y_first + y) * in_row + (size_t)ax->lo * (size_t)C;
            uint8_t *o = tmp + (size_t)y * out_row;
            for (int xx = 0; xx < dw; xx++) {
                const int xmin = cx.bounds[2 * xx], xn = cx.bounds[2 * xx + 1];
                const int32_t *k = cx.k + (size_t)xx * (size_t)cx.ksize;
                for (int c = 0; c < C; c++) {
                    int32_t acc = 1 << (PIL_PRECISION_BITS - 1);
                    for (int x = 0; x < xn; x++)
                        acc += src[(size_t)(xmin + x) * (size_t)C + (size_t)c] * k[x];
                    o[(size_t)xx * (size_t)C + (size_t)c] = clip8_(acc);
                }
            }
        }
        rows = tmp;
        stride = out_row;
    }
    if (identity_(ay, dh)) {
        for (int y = 0; y < dh; y++)
            memcpy(dst + (size_t)y * out_row, rows + (size_t)y * stride, out_row);
        goto done;
    }
    /* ref: ImagingResampleVertical_8bpc, bounds shifted by the first row read. */
    for (int yy = 0; yy < dh; yy++) {
        const int ymin = cy.bounds[2 * yy] - y_first, yn = cy.bounds[2 * yy + 1];
        const int32_t *k = cy.k + (size_t)yy * (size_t)cy.ksize;
        uint8_t *o = dst + (size_t)yy * out_row;
        for (size_t i = 0; i < out_row; i++) {
            int32_t acc = 1 << (PIL_PRECISION_BITS - 1);
            for (int y = 0; y < yn; y++) acc += rows[(size_t)(ymin + y) * stride + i] * k[y];
            o[i] = clip8_(acc);
        }
    }
done:
    free(tmp);
    coeffs_free_(&cx);
    coeffs_free_(&cy);
    return s;
}
