/* augment.h: deterministic training augmentations for images, and caption choice.
 *
 * Every random choice comes from the counter-based RNG keyed by the run seed, a purpose, the
 * epoch and the hash of the sample key (core/rng.h):
 *     images:   clasp_rng_init(&r, seed, CLASP_RNG_AUGMENT, epoch, clasp_hash_str(key, 0))
 *     captions: clasp_rng_init(&r, seed, CLASP_RNG_CAPTION, epoch, clasp_hash_str(key, 0))
 * so a sample sees the same augmentation whatever thread decodes it, in whatever order, after
 * any resume; and a different one in the next epoch.
 *
 * Two views of one sample (SimCLR's pairing, `--pair image-image`): view v is augmented with
 * the seed clasp_augment_view_seed(seed, v) in place of the run seed, so the view index is part
 * of every key of the sample's streams (image and audio augmentation alike): view 0 is the
 * one-view stream itself, view 1 an independent stream, both pure functions of (seed, view,
 * epoch, key).
 *
 * Image augmentation, in this order (torchvision's semantics, ref: torchvision.transforms):
 *   1. RandomResizedCrop: up to 10 tries of area fraction ~ U(scale) and log aspect ratio
 *      ~ U(log ratio); w = round(sqrt(area * ratio)), h = round(sqrt(area / ratio)); accept when
 *      it fits, with its top-left corner uniform; else the central crop clamped to the ratio
 *      range. The crop is resampled to size x size (clasp_image_crop_resize with the
 *      preprocessing's "interp"; "bicubic" is torchvision's crop-then-resize on a PIL image).
 *   2. Horizontal flip with probability hflip.
 *   3. ColorJitter on values in [0, 1], the three factors in a random order: brightness
 *      (x * f), contrast (blend with the mean of the gray image), saturation (blend with the gray
 *      image; RGB only), each f ~ U(max(0, 1 - v), 1 + v), results clamped to [0, 1]. A zero
 *      range gives f = 1 and leaves the values untouched.
 *   4. RandomGrayscale with probability grayscale (RGB only): ITU-R 601 luma 0.299 R + 0.587 G
 *      + 0.114 B, copied to the three channels.
 *   5. Normalisation with the preprocessing config's mean/std.
 * In evaluation mode (enabled = false) nothing is drawn and the output equals
 * clasp_image_preprocess exactly.
 *
 * The draws of one sample are made in a fixed order whatever the config: flip, jitter order,
 * the three jitter factors, grayscale, then the crop (whose number of tries varies last), so
 * turning one augmentation on or off does not change the others' choices.
 */
#ifndef CLASP_MODALITIES_AUGMENT_H
#define CLASP_MODALITIES_AUGMENT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "core/status.h"
#include "modalities/image.h"

typedef struct clasp_image_augment_config {
    bool enabled;               /* false: evaluation mode, no augmentation */
    bool random_resized_crop;   /* else the preprocessing config's resize / center crop */
    float scale_min, scale_max; /* crop area fraction range, default 0.08 .. 1 */
    float ratio_min, ratio_max; /* crop aspect ratio (w / h) range, default 3/4 .. 4/3 */
    float hflip;                /* probability, default 0.5 */
    float brightness;           /* jitter ranges, default 0 (off) */
    float contrast;
    float saturation;
    float grayscale; /* probability, default 0 */
} clasp_image_augment_config;

/* Defaults: enabled, random-resized-crop (0.08..1, 3/4..4/3), hflip 0.5, no jitter, no gray. */
clasp_image_augment_config clasp_image_augment_default_config(void);

/* Optional fields of a JSON object (a model or training config's "augment"), over the defaults:
 * "enabled" (bool), "random_resized_crop" (bool), "scale" ([min, max] in (0, 1]), "ratio"
 * ([min, max] > 0), "hflip", "grayscale" (probabilities in [0, 1]), "brightness", "contrast",
 * "saturation" (>= 0). Returns CLASP_ERR_CONFIG naming the field. */
clasp_status clasp_image_augment_config_from_json(const cJSON *obj, const char *file,
                                                  const char *prefix,
                                                  clasp_image_augment_config *out);
clasp_status clasp_image_augment_config_check(const clasp_image_augment_config *cfg);

/* Preprocesses `img` with augmentation into out (pre->channels, S, S) float32, S = pre->size
 * (or the image's own size when pre->size is 0 and no random crop; a random crop needs
 * pre->size > 0). `key` is the sample key (NUL-terminated), `seed` the run seed.
 * With aug == NULL or aug->enabled false this is clasp_image_preprocess.
 * Returns CLASP_ERR_ARG / CLASP_ERR_CONFIG / CLASP_ERR_NOMEM. Thread-safe. */
clasp_status clasp_image_augment(const clasp_image *img, const clasp_image_config *pre,
                                 const clasp_image_augment_config *aug, uint64_t seed,
                                 uint64_t epoch, const char *key, float *out);

/* The `region` (header pixels) that clasp_image_augment's pre->size output pixels come from for
 * this sample of a w x h image, for clasp_image_decode_scaled(..., pre->size, region): the
 * shorter side of the random crop (the same draws as clasp_image_augment), else
 * clasp_image_resize_region_px. 0 (never scale) when pre->size is 0. */
int clasp_image_augment_region_px(const clasp_image_config *pre,
                                  const clasp_image_augment_config *aug, uint64_t seed,
                                  uint64_t epoch, const char *key, int w, int h);

/* The crop RandomResizedCrop picks for a w x h image with the given RNG (exposed for tests and
 * tools): top-left (*x, *y) and size (*cw, *ch) in pixels, inside the image. */
void clasp_image_random_resized_crop(int w, int h, float scale_min, float scale_max,
                                     float ratio_min, float ratio_max, clasp_rng *rng, int *x,
                                     int *y, int *cw, int *ch);

/* The seed that keys view `view` of a sample's augmentation: `seed` itself for view 0 (a
 * one-view run is unchanged), else clasp_splitmix64(seed ^ clasp_splitmix64(0x56494557 ("VIEW")
 * + view)). */
uint64_t clasp_augment_view_seed(uint64_t seed, int view);

/* Index in [0, n_captions) of the caption a training sample uses in this epoch:
 * clasp_rng_below of the (seed, CLASP_RNG_CAPTION, epoch, hash(key)) stream. Returns 0 when
 * n_captions <= 1. Evaluation should use caption 0 (or all captions) instead. */
size_t clasp_caption_choose(uint64_t seed, uint64_t epoch, const char *key, size_t n_captions);

#endif
