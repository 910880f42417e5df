/* image.h: image decoding (stb_image), resizing (stb_image_resize), center crop and per-channel
 * normalisation into the float CHW tensor an image encoder takes, plus PNG encoding for
 * the dataset builders. Everything works on memory buffers, never on paths.
 *
 * Typical use (one sample, in a loader thread):
 *
 *     clasp_image_config cfg = clasp_image_default_config();   // or _config_from_json
 *     cfg.channels = 1; cfg.size = 28; ...
 *     float *x = malloc(clasp_image_tensor_numel(&cfg) * sizeof(float));  // (C, S, S)
 *     clasp_status s = clasp_image_load(bytes, nbytes, &cfg, x);
 *     if (s != CLASP_OK) skip_sample(shard, key, clasp_last_error());
 *
 * or in two steps (decode once, then preprocess or augment, see modalities/augment.h):
 *
 *     clasp_image img;
 *     CLASP_TRY(clasp_image_decode(bytes, nbytes, cfg.channels, cfg.max_pixels, &img));
 *     clasp_status s = clasp_image_preprocess(&img, &cfg, x);
 *     clasp_image_free(&img);
 *
 * Pixel layout of a clasp_image: 8-bit, interleaved channels (HWC), top-left pixel first, no
 * row padding (stb_image's layout). Tensor layout: float32 (C, H, W), row-major.
 *
 * Errors never name the sample: the caller knows the shard and key and prefixes them with
 * clasp_wrap_error(). Every function here is thread-safe (no shared state).
 */
#ifndef CLASP_MODALITIES_IMAGE_H
#define CLASP_MODALITIES_IMAGE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* Default limit on decoded pixels (width * height): 25 megapixels. */
#define CLASP_IMAGE_DEFAULT_MAX_PIXELS ((uint64_t)25000000)

/* A decoded image: `pixels` is (h, w, channels) uint8, owned, released by clasp_image_free. */
typedef struct clasp_image {
    uint8_t *pixels; /* (h, w, channels) */
    int w, h;
    int channels; /* 1 (gray) or 3 (RGB) */
    /* The size the file's header declares when the image was decoded smaller than that
     * (clasp_image_decode_scaled: JPEG DCT-domain scaling); 0 means "w x h" (every other
     * decode, and images built by hand). Geometry (center crop, random crop boxes) is computed
     * on this size and mapped onto the w x h pixels, so a scaled decode samples the same part
     * of the picture as a full one. */
    int full_w, full_h;
} clasp_image;

/* The resampling filter ("image.interp" in a model config). */
typedef enum clasp_image_interp {
    /* "catmullrom" (default; the filter every clasp model before it was trained with):
     * stb_image_resize's Catmull-Rom, a Keys cubic with a = -0.5 widened by the scale factor
     * when shrinking, computed in float on both axes at once, image borders clamped
     * (replicated). Within a few levels of PIL's BICUBIC (docs/data.md gives the figures). */
    CLASP_IMAGE_INTERP_CATMULLROM = 0,
    /* "bicubic": PIL's Image.resize(size, Image.BICUBIC) reproduced bit for bit (Pillow's
     * Resample.c: the same Keys cubic and support, horizontal pass then vertical, each rounded
     * to 8 bits with 22-bit fixed-point weights; taps outside the image are dropped and the
     * weights renormalised rather than clamped). torchvision's Resize/CenterCrop on a PIL image,
     * and so OpenAI CLIP's and OpenCLIP's preprocessing, give the same uint8 pixels. */
    CLASP_IMAGE_INTERP_BICUBIC = 1
} clasp_image_interp;

/* "catmullrom", "bicubic" (NULL for an unknown value) and back (-1 for an unknown name). */
const char *clasp_image_interp_name(clasp_image_interp interp);
int clasp_image_interp_from_name(const char *name);

/* How an image is brought to size x size; the names are OpenCLIP's resize_mode and the model
 * config's "image.resize" strings (ref: open_clip src/open_clip/transform.py image_transform). */
typedef enum clasp_image_resize_mode {
    /* "shortest": resize so the shorter side equals `size` (the longer side is scaled and
     * truncated to an integer, as torchvision's Resize(int)), then take the centered size x size
     * crop (offsets rounded half-to-even, as torchvision's CenterCrop). No resampling happens
     * when the shorter side already equals `size`, so 28x28 Fashion-MNIST passes through
     * untouched. */
    CLASP_IMAGE_RESIZE_SHORTEST = 0,
    /* "squash": resize to exactly size x size, ignoring the aspect ratio. */
    CLASP_IMAGE_RESIZE_SQUASH = 1,
    /* "longest": resize keeping the aspect ratio so the LONGER side equals `size` (OpenCLIP's
     * ResizeKeepRatio(size, longest=1): ratio = max(h, w) / size, new side = round(side / ratio)
     * with Python's half-to-even rounding), then pad to size x size with pixel value 0 before
     * normalisation (CenterCropOrPad(fill=0): left/top pad = (size - new) / 2 rounded down, the
     * odd pixel goes right/bottom). See clasp_image_longest_geometry. */
    CLASP_IMAGE_RESIZE_LONGEST = 2
} clasp_image_resize_mode;

/* "shortest", "squash", "longest" (NULL for an unknown value) and back (-1 for an unknown
 * name). */
const char *clasp_image_resize_name(clasp_image_resize_mode mode);
int clasp_image_resize_from_name(const char *name);

/* Preprocessing of one image into the model's input tensor. */
typedef struct clasp_image_config {
    int channels;                 /* 1 (grayscale) or 3 (RGB) */
    int size;                     /* output is size x size; 0 = keep the decoded size */
    clasp_image_resize_mode mode; /* how to reach size x size */
    float mean[3];                /* per channel, on values in [0, 1]; only [0] used if gray */
    float std[3];                 /* per channel, > 0 */
    uint64_t max_pixels;          /* reject images with w * h above this before decoding */
    clasp_image_interp interp;    /* resampling filter ("interp", default "catmullrom") */
    /* "jpeg_dct_scaling": decode a JPEG that will be shrunk anyway at the smallest
     * libjpeg-turbo scale 1/2, 1/4 or 1/8 whose result still covers the output
     * (clasp_image_decode_scaled). Faster, but not PIL's pixels: default off. */
    bool jpeg_dct_scaling;
} clasp_image_config;

/* Defaults: 3 channels, size 224, center crop, OpenAI CLIP's mean/std
 * (0.48145466, 0.4578275, 0.40821073) / (0.26862954, 0.26130258, 0.27577711),
 * max_pixels = CLASP_IMAGE_DEFAULT_MAX_PIXELS. */
clasp_image_config clasp_image_default_config(void);

/* Fills `out` from a model config's "image" object (or preprocess.json's "image"): "channels"
 * (1 or 3) and "size" (1..65536) are required; optional "resize" ("shortest" default,
 * "squash", "longest"), "mean" (default 0 per channel), "std" (default 1 per channel, each
 * > 0) as arrays of `channels` numbers, "max_pixels" (default CLASP_IMAGE_DEFAULT_MAX_PIXELS),
 * "interp" ("catmullrom" default, "bicubic"), "jpeg_dct_scaling" (boolean, default false).
 * Other fields are ignored (they belong to the encoder). `file` and `prefix` build messages:
 * CLASP_ERR_CONFIG "FILE: field 'PREFIX.NAME': why". */
clasp_status clasp_image_config_from_json(const cJSON *obj, const char *file, const char *prefix,
                                          clasp_image_config *out);
/* The inverse: a new cJSON object with the fields above, in the order channels, size, resize,
 * mean, std, max_pixels, then interp and jpeg_dct_scaling only when they differ from their
 * defaults (so configs of older models read back unchanged); caller cJSON_Deletes; NULL on
 * OOM. */
cJSON *clasp_image_config_to_json(const clasp_image_config *cfg);

/* Checks a config: channels 1 or 3, size >= 0, finite mean, std > 0, max_pixels >= 1.
 * Returns CLASP_ERR_CONFIG with a message naming the field. */
clasp_status clasp_image_config_check(const clasp_image_config *cfg);

/* Number of floats of the preprocessed tensor, channels * size * size (0 when size is 0: the
 * shape then depends on the image; use channels * img.h * img.w). */
size_t clasp_image_tensor_numel(const clasp_image_config *cfg);

/* Decodes an encoded image (PNG, JPEG, BMP, GIF first frame, TGA, PNM, PSD, PIC; whatever
 * stb_image reads) from data[n] into `out` with `channels` (1 or 3) channels.
 *
 * The header is read first (stbi_info_from_memory); an image with w * h > max_pixels is rejected
 * before any pixel memory is allocated (CLASP_ERR_OVERFLOW), as is a header stb itself finds
 * too large. Colour images are converted to gray with stb's luma (77 R + 150 G + 29 B) / 256;
 * gray images are replicated to RGB. Images with alpha (RGBA, gray+alpha: e.g. emoji PNGs) are
 * composited on a WHITE background: v' = (v * a + 255 * (255 - a) + 127) / 255 (integer), so
 * transparent pixels become white rather than black. 16-bit PNGs are reduced to 8 bits.
 *
 * Returns CLASP_OK and an owned image (release with clasp_image_free), or: CLASP_ERR_ARG (NULL
 * pointer, channels not 1/3), CLASP_ERR_FORMAT (empty buffer, unknown or corrupt data; the
 * message carries stbi_failure_reason()), CLASP_ERR_OVERFLOW (too many pixels),
 * CLASP_ERR_NOMEM. On error *out is zeroed. */
clasp_status clasp_image_decode(const void *data, size_t n, int channels, uint64_t max_pixels,
                                clasp_image *out);

/* As clasp_image_decode, but a JPEG that will be shrunk anyway is decoded smaller in the DCT
 * domain (libjpeg-turbo's scaled inverse DCT, as PIL's Image.draft): at the smallest scale
 * f in {1/8, 1/4, 1/2} with region * f >= need, i.e. a span of `region` header pixels still
 * covers `need` output pixels after scaling (full size when no f qualifies). The scaled size is
 * ceil(w * f) x ceil(h * f); out->full_w/full_h keep the header's size. The max_pixels limit
 * applies to the header's size. need <= 0, region <= 0 or non-JPEG data: clasp_image_decode.
 * Errors as clasp_image_decode. */
clasp_status clasp_image_decode_scaled(const void *data, size_t n, int channels,
                                       uint64_t max_pixels, int need, int region, clasp_image *out);

/* The header's width and height of a JPEG (1), or 0 when data is not a JPEG or its header does
 * not read (clasp_image_decode then reports why). Reads no pixels. */
int clasp_image_jpeg_size(const void *data, size_t n, int *w, int *h);

/* The `region` of a w x h image that cfg's resize maps onto cfg->size output pixels, for
 * clasp_image_decode_scaled(..., cfg->size, region): the shorter side ("shortest", "squash")
 * or the longer one ("longest"). 0 when cfg->size is 0 (no resize: never scale). */
int clasp_image_resize_region_px(const clasp_image_config *cfg, int w, int h);

/* Releases the pixels and zeroes the struct; accepts NULL and already-freed images. */
void clasp_image_free(clasp_image *img);

/* Preprocesses a decoded image into out (cfg->channels, S, S) float32, S = cfg->size (or the
 * image's own h x w when cfg->size is 0): resize per cfg->mode with cfg->interp's filter
 * (default stb_image_resize's Catmull-Rom, a bicubic with a = -0.5, as PIL's BICUBIC;
 * antialiased when shrinking, clamped edges, no sRGB conversion; or "bicubic", PIL's own
 * arithmetic) in 8 bits, then per channel
 *     out = ((float)p / 255.0f - mean[c]) / std[c]
 * evaluated in float32 in exactly that order, which is numpy's
 * (x.astype(float32) / 255.0 - MEAN) / STD bit for bit.
 * img->channels must equal cfg->channels. Returns CLASP_ERR_ARG / CLASP_ERR_CONFIG / NOMEM. */
clasp_status clasp_image_preprocess(const clasp_image *img, const clasp_image_config *cfg,
                                    float *out);

/* Decode + preprocess in one call (cfg->size must be > 0 so the output size is known).
 * out has clasp_image_tensor_numel(cfg) floats. Errors as clasp_image_decode/_preprocess. */
clasp_status clasp_image_load(const void *data, size_t n, const clasp_image_config *cfg,
                              float *out);

/* Resamples the region [x0, x1) x [y0, y1) of img (pixel coordinates, may be fractional, must
 * lie inside the image and be non-empty) to dst (dh, dw, img->channels) uint8 with the filter
 * documented at clasp_image_preprocess. Pixels just outside the region but inside the image
 * feed the filter (so "resize the whole image, then crop" and "resample the crop's region" give
 * the same result without allocating the whole resized image); the image border is clamped.
 * A region of exactly dw x dh pixels at integer offsets is copied, not resampled.
 * Returns CLASP_ERR_ARG for a bad region or size. */
clasp_status clasp_image_resample_region(const clasp_image *img, double x0, double y0, double x1,
                                         double y1, uint8_t *dst, int dw, int dh);

/* The source region [*x0, *x1) x [*y0, *y1) that CLASP_IMAGE_RESIZE_SHORTEST samples for a
 * w x h image and output size S (see clasp_image_resize_mode). */
void clasp_image_center_crop_region(int w, int h, int S, double *x0, double *y0, double *x1,
                                    double *y1);

/* The geometry of CLASP_IMAGE_RESIZE_LONGEST for a w x h image and output size S: the image is
 * resized to *nw x *nh (the longer side S, each side at least 1) and pasted at column *left,
 * row *top of an S x S canvas of zeros. */
void clasp_image_longest_geometry(int w, int h, int S, int *nw, int *nh, int *left, int *top);

/* Brings img to dst (S, S, img->channels) uint8 per `mode` (S > 0) with the filter documented
 * at clasp_image_preprocess; an image already S x S is copied. Returns CLASP_ERR_ARG,
 * CLASP_ERR_NOMEM. */
clasp_status clasp_image_resize(const clasp_image *img, clasp_image_resize_mode mode, int S,
                                uint8_t *dst);

/* As clasp_image_resize with the filter `interp`. With CLASP_IMAGE_INTERP_BICUBIC the result
 * is PIL's: "shortest" = Resize(S) then CenterCrop(S) of torchvision, "squash" =
 * img.resize((S, S)), "longest" = OpenCLIP's ResizeKeepRatio + CenterCropOrPad. Geometry is
 * computed on the header's size (img->full_w/full_h) and mapped onto a scaled decode. */
clasp_status clasp_image_resize_interp(const clasp_image *img, clasp_image_resize_mode mode,
                                       clasp_image_interp interp, int S, uint8_t *dst);

/* Crops the box [cx, cx + cw) x [cy, cy + ch) (header pixel coordinates: of the full_w x full_h
 * image when it was decoded scaled) and resizes it to dst (dh, dw, img->channels) uint8.
 * BICUBIC: PIL's img.crop(box).resize((dw, dh), BICUBIC) (pixels outside the box are not read),
 * bit for bit when the image is not scaled; CATMULLROM: clasp_image_resample_region over the
 * box (pixels just outside it feed the filter). Returns CLASP_ERR_ARG for a box outside the
 * image, CLASP_ERR_NOMEM. */
clasp_status clasp_image_crop_resize(const clasp_image *img, clasp_image_interp interp, int cx,
                                     int cy, int cw, int ch, uint8_t *dst, int dw, int dh);

/* Converts (h, w, C) uint8 to float CHW and normalises as clasp_image_preprocess does. */
void clasp_image_normalize(const uint8_t *pixels, int w, int h, int channels, const float *mean,
                           const float *std, float *out);

/* Encodes (h, w, channels) uint8 pixels (channels 1..4) as PNG into a malloc'd buffer *out of
 * *n bytes (caller frees with free()). Returns CLASP_ERR_ARG for bad sizes, CLASP_ERR_NOMEM. */
clasp_status clasp_image_encode_png(const uint8_t *pixels, int w, int h, int channels,
                                    uint8_t **out, size_t *n);
/* (No JPEG encoder: stb_image_write's JPEG writer shifts signed ints past their range, which
 * UBSan builds abort on; clasp only writes PNG. Tests make JPEG fixtures with the system
 * libstb instead.) */

/* ---- private to modalities/: thin wrappers over stb defined in modalities/stb_impl.c ---- */
int clasp__stb_info(const uint8_t *data, size_t n, int *w, int *h, int *comp);
uint8_t *clasp__stb_load(const uint8_t *data, size_t n, int *w, int *h, int *comp, int req);
void clasp__stb_free(void *p);
/* JPEG goes to libjpeg-turbo (modalities/jpeg.c), never to stb_image. */
int clasp__is_jpeg(const uint8_t *data, size_t n);
clasp_status clasp__jpeg_decode(const uint8_t *data, size_t n, int channels, uint64_t max_pixels,
                                clasp_image *out);
const char *clasp__stb_failure_reason(void);
int clasp__stb_resize_region(const uint8_t *in, int in_w, int in_h, int channels, uint8_t *out,
                             int out_w, int out_h, float s0, float t0, float s1, float t1);
/* One axis of PIL's resample (modalities/pil_resample.c): output pixels [first, first + n) of
 * resizing the span [in0, in1) to out_size pixels, where coordinates count from source pixel
 * `lo` and only source pixels [lo, hi) are read (PIL's image edge). */
typedef struct clasp__pil_axis {
    float in0, in1;
    int out_size, first;
    int lo, hi;
} clasp__pil_axis;
/* PIL's ImagingResample(BICUBIC) for 8-bit (h, w, channels) pixels into dst (ay.n rows = dh,
 * ax.n columns = dw). Returns CLASP_ERR_NOMEM / CLASP_ERR_OVERFLOW / CLASP_ERR_ARG. */
clasp_status clasp__pil_resample(const clasp_image *img, const clasp__pil_axis *ax,
                                 const clasp__pil_axis *ay, uint8_t *dst, int dw, int dh);
/* JPEG at a DCT scale 1/denom (denom 1, 2, 4 or 8) chosen by clasp_image_decode_scaled. */
clasp_status clasp__jpeg_decode_scaled(const uint8_t *data, size_t n, int channels,
                                       uint64_t max_pixels, int need, int region, clasp_image *out);
int clasp__jpeg_size(const uint8_t *data, size_t n, int *w, int *h);
int clasp__stb_write_png(const uint8_t *pixels, int w, int h, int channels, uint8_t **out,
                         size_t *n);

#endif
