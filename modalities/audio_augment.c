/* audio_augment.c: deterministic audio augmentations (random crop draw, gain, time shift,
 * additive Gaussian noise at an SNR, SpecAugment time/frequency masks) and the front-end that
 * chains decode -> wave augmentation -> log-mel -> spec augmentation.
 *
 * Every random choice comes from the counter-based RNG keyed by (seed, CLASP_RNG_AUGMENT,
 * epoch, sample key), one sub-stream per stage (clasp_audio_aug_rng), so the result is a pure
 * function of (seed, epoch, key, config): the thread that decodes it and the order of decoding
 * do not matter. Evaluation passes no augmentation config and gets none.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/rng.h"
#include "core/sizes.h"
#include "modalities/audio.h"

clasp_audio_augment_config clasp_audio_augment_default_config(void) {
    return (clasp_audio_augment_config){
        .random_crop = false,
        .shift_mode = CLASP_AUDIO_SHIFT_CIRCULAR,
        .snr_db_min = 10.0,
        .snr_db_max = 40.0,
        .mask_value = 0.0,
    };
}

static bool prob_ok(double p) {
    return p >= 0.0 && p <= 1.0;
}

clasp_status clasp_audio_augment_config_check(const clasp_audio_augment_config *a) {
    if (!a) return clasp_set_error(CLASP_ERR_ARG, "audio augment config: NULL");
    if (!prob_ok(a->gain_prob) || !prob_ok(a->shift_prob) || !prob_ok(a->noise_prob))
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "audio augment: probabilities must be in [0, 1] (gain %g, shift %g, "
                               "noise %g)",
                               a->gain_prob, a->shift_prob, a->noise_prob);
    if (!(a->gain_db_min <= a->gain_db_max) || !(fabs(a->gain_db_min) <= 100.0) ||
        !(fabs(a->gain_db_max) <= 100.0))
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "audio augment: gain_db range [%g, %g] must be ordered within "
                               "+-100 dB",
                               a->gain_db_min, a->gain_db_max);
    if (!(a->shift_max_seconds >= 0.0) || !isfinite(a->shift_max_seconds))
        return clasp_set_error(CLASP_ERR_CONFIG, "audio augment: shift_max_seconds %g must be >= 0",
                               a->shift_max_seconds);
    if ((unsigned)a->shift_mode > CLASP_AUDIO_SHIFT_ZERO)
        return clasp_set_error(CLASP_ERR_CONFIG, "audio augment: unknown shift mode %d",
                               (int)a->shift_mode);
    if (!(a->snr_db_min <= a->snr_db_max) || !isfinite(a->snr_db_min) || !isfinite(a->snr_db_max))
        return clasp_set_error(CLASP_ERR_CONFIG, "audio augment: snr_db range [%g, %g] not ordered",
                               a->snr_db_min, a->snr_db_max);
    if (a->time_masks < 0 || a->time_mask_max < 0 || a->freq_masks < 0 || a->freq_mask_max < 0 ||
        a->time_masks > 1000 || a->freq_masks > 1000)
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "audio augment: mask counts/widths must be >= 0 (counts <= 1000)");
    if (!isfinite(a->mask_value))
        return clasp_set_error(CLASP_ERR_CONFIG, "audio augment: mask_value must be finite");
    return CLASP_OK;
}

void clasp_audio_aug_rng(struct clasp_rng *r, uint64_t seed, uint64_t epoch, const char *key,
                         int stage) {
    uint64_t b = clasp_hash_str(key ? key : "", 0) ^ clasp_splitmix64(0xA0D10ull + (uint64_t)stage);
    clasp_rng_init(r, seed, CLASP_RNG_AUGMENT, epoch, b);
}

double clasp_audio_crop_u(uint64_t seed, uint64_t epoch, const char *key) {
    clasp_rng r;
    clasp_audio_aug_rng(&r, seed, epoch, key, CLASP_AUDIO_AUG_CROP);
    return clasp_rng_uniform_f64(&r);
}

static double uniform_in(clasp_rng *r, double lo, double hi) {
    return lo + (hi - lo) * clasp_rng_uniform_f64(r);
}

/* Reverses x[lo..hi). */
static void reverse(float *x, size_t lo, size_t hi) {
    while (lo + 1 < hi) {
        float t = x[lo];
        x[lo++] = x[--hi];
        x[hi] = t;
    }
}

clasp_status clasp_audio_augment_wave(float *x, size_t n, int sample_rate,
                                      const clasp_audio_augment_config *a, uint64_t seed,
                                      uint64_t epoch, const char *key) {
    if (!a) return CLASP_OK;
    if (!x && n > 0) return clasp_set_error(CLASP_ERR_ARG, "audio augment: NULL signal");
    CLASP_TRY(clasp_audio_augment_config_check(a));
    if (n == 0) return CLASP_OK;
    clasp_rng r;

    /* Gain: x *= 10^(g/20), g uniform in [gain_db_min, gain_db_max]. */
    clasp_audio_aug_rng(&r, seed, epoch, key, CLASP_AUDIO_AUG_GAIN);
    if (a->gain_prob > 0.0 && clasp_rng_uniform_f64(&r) < a->gain_prob) {
        double g = pow(10.0, uniform_in(&r, a->gain_db_min, a->gain_db_max) / 20.0);
        for (size_t i = 0; i < n; i++) x[i] = (float)((double)x[i] * g);
    }

    /* Shift by s samples, s uniform integer in [-max, max]: positive delays the signal. */
    clasp_audio_aug_rng(&r, seed, epoch, key, CLASP_AUDIO_AUG_SHIFT);
    if (a->shift_prob > 0.0 && clasp_rng_uniform_f64(&r) < a->shift_prob) {
        double maxs = floor(a->shift_max_seconds * sample_rate);
        if (maxs > (double)(n - 1)) maxs = (double)(n - 1);
        uint64_t m = (uint64_t)maxs;
        int64_t s = (int64_t)clasp_rng_below(&r, 2 * m + 1) - (int64_t)m;
        if (s != 0) {
            size_t k = (size_t)(s > 0 ? s : -s);
            if (a->shift_mode == CLASP_AUDIO_SHIFT_CIRCULAR) {
                /* rotate right by k (s > 0) or left by k, with three reversals */
                size_t rot = s > 0 ? n - k : k; /* left-rotation amount */
                reverse(x, 0, rot);
                reverse(x, rot, n);
                reverse(x, 0, n);
            } else if (s > 0) {
                memmove(x + k, x, sizeof(float) * (n - k));
                memset(x, 0, sizeof(float) * k);
            } else {
                memmove(x, x + k, sizeof(float) * (n - k));
                memset(x + (n - k), 0, sizeof(float) * k);
            }
        }
    }

    /* Noise: white Gaussian with power P_signal / 10^(snr/10). A silent clip stays silent. */
    clasp_audio_aug_rng(&r, seed, epoch, key, CLASP_AUDIO_AUG_NOISE);
    if (a->noise_prob > 0.0 && clasp_rng_uniform_f64(&r) < a->noise_prob) {
        double snr = uniform_in(&r, a->snr_db_min, a->snr_db_max);
        double pw = 0.0;
        for (size_t i = 0; i < n; i++) pw += (double)x[i] * (double)x[i];
        pw /= (double)n;
        double sd = sqrt(pw / pow(10.0, snr / 10.0));
        if (sd > 0.0 && isfinite(sd))
            for (size_t i = 0; i < n; i++) x[i] = (float)((double)x[i] + sd * clasp_rng_normal(&r));
    }
    return CLASP_OK;
}

clasp_status clasp_audio_augment_spec(float *mel, int n_mels, size_t n_frames,
                                      const clasp_audio_augment_config *a, uint64_t seed,
                                      uint64_t epoch, const char *key) {
    if (!a) return CLASP_OK;
    if (!mel || n_mels < 1) return clasp_set_error(CLASP_ERR_ARG, "audio spec augment: bad mel");
    CLASP_TRY(clasp_audio_augment_config_check(a));
    clasp_rng r;
    clasp_audio_aug_rng(&r, seed, epoch, key, CLASP_AUDIO_AUG_SPEC);
    const float v = (float)a->mask_value;
    /* Frequency masks: width w uniform in [0, min(max, n_mels)], start in [0, n_mels - w]. */
    for (int m = 0; m < a->freq_masks; m++) {
        uint64_t wmax = (uint64_t)(a->freq_mask_max < n_mels ? a->freq_mask_max : n_mels);
        uint64_t w = clasp_rng_below(&r, wmax + 1);
        uint64_t f0 = clasp_rng_below(&r, (uint64_t)n_mels - w + 1);
        for (uint64_t f = f0; f < f0 + w; f++)
            for (size_t t = 0; t < n_frames; t++) mel[f * n_frames + t] = v;
    }
    /* Time masks: width uniform in [0, min(max, n_frames)], start in [0, n_frames - w]. */
    for (int m = 0; m < a->time_masks && n_frames > 0; m++) {
        uint64_t wmax =
            (uint64_t)a->time_mask_max < n_frames ? (uint64_t)a->time_mask_max : (uint64_t)n_frames;
        uint64_t w = clasp_rng_below(&r, wmax + 1);
        uint64_t t0 = clasp_rng_below(&r, (uint64_t)n_frames - w + 1);
        for (int f = 0; f < n_mels; f++)
            for (uint64_t t = t0; t < t0 + w; t++) mel[(size_t)f * n_frames + t] = v;
    }
    return CLASP_OK;
}

/* ---- front-end -------------------------------------------------------------------------- */

struct clasp_audio_frontend {
    clasp_audio_config cfg;
    clasp_melspec *mel;
    float *clip; /* (clip_samples) */
    size_t clip_samples, n_frames;
};

void clasp_audio_frontend_free(clasp_audio_frontend *fe) {
    if (!fe) return;
    clasp_melspec_free(fe->mel);
    free(fe->clip);
    free(fe);
}

clasp_status clasp_audio_frontend_new(const clasp_audio_config *c, clasp_audio_frontend **out) {
    if (!out) return clasp_set_error(CLASP_ERR_ARG, "audio_frontend_new: out is NULL");
    *out = NULL;
    CLASP_TRY(clasp_audio_config_check(c));
    clasp_audio_frontend *fe = calloc(1, sizeof *fe);
    if (!fe) return clasp_set_error(CLASP_ERR_NOMEM, "audio_frontend_new: out of memory");
    fe->cfg = *c;
    fe->clip_samples = clasp_audio_clip_samples(c);
    fe->n_frames = clasp_audio_clip_frames(c);
    fe->clip = malloc(sizeof(float) * fe->clip_samples);
    clasp_status s = fe->clip
                         ? clasp_melspec_new(&c->mel, &fe->mel)
                         : clasp_set_error(CLASP_ERR_NOMEM, "audio_frontend_new: out of memory");
    if (s != CLASP_OK) {
        clasp_audio_frontend_free(fe);
        return s;
    }
    *out = fe;
    return CLASP_OK;
}

const clasp_audio_config *clasp_audio_frontend_config(const clasp_audio_frontend *fe) {
    return fe ? &fe->cfg : NULL;
}

size_t clasp_audio_frontend_numel(const clasp_audio_frontend *fe) {
    return fe ? (size_t)fe->cfg.mel.n_mels * fe->n_frames : 0;
}

clasp_status clasp_audio_frontend_run(clasp_audio_frontend *fe, const void *data, size_t nbytes,
                                      const clasp_audio_augment_config *aug, uint64_t seed,
                                      uint64_t epoch, const char *key, float *out,
                                      clasp_audio_info *info, clasp_audio_skip *why) {
    clasp_audio_skip dummy;
    if (!why) why = &dummy;
    *why = CLASP_AUDIO_OK;
    if (!fe || !out) return clasp_set_error(CLASP_ERR_ARG, "audio_frontend_run: NULL argument");
    if (aug) CLASP_TRY(clasp_audio_augment_config_check(aug));
    double crop_u = aug && aug->random_crop ? clasp_audio_crop_u(seed, epoch, key) : -1.0;
    CLASP_TRY(clasp_audio_load_clip(data, nbytes, &fe->cfg, crop_u, key, fe->clip, info, why));
    if (aug)
        CLASP_TRY(clasp_audio_augment_wave(fe->clip, fe->clip_samples, fe->cfg.mel.sample_rate, aug,
                                           seed, epoch, key));
    clasp_status s = clasp_melspec_compute(fe->mel, fe->clip, fe->clip_samples, out);
    if (s == CLASP_ERR_NUMERIC) { /* e.g. a huge float sample times a gain overflowed */
        *why = CLASP_AUDIO_NAN;
        return clasp_wrap_error(s, "%s", key ? key : "audio");
    }
    if (s != CLASP_OK) return s;
    if (aug)
        CLASP_TRY(
            clasp_audio_augment_spec(out, fe->cfg.mel.n_mels, fe->n_frames, aug, seed, epoch, key));
    return CLASP_OK;
}
