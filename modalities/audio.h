/* audio.h: the audio front-end: decode an encoded audio file held in memory (libsndfile), mix
 * to mono, resample to the model's rate (libsamplerate), crop or pad to the clip length, then
 * compute a log-mel spectrogram (kissfft), plus deterministic audio augmentations.
 *
 * Everything works on memory buffers: the tar loader hands over a member's bytes. Nothing here
 * owns threads or files. Objects are not thread-safe; give each loader thread its own.
 *
 *     clasp_audio_config cfg = clasp_audio_default_config();   // 16 kHz, 10 s, 64 mels
 *     clasp_audio_frontend *fe;
 *     if (clasp_audio_frontend_new(&cfg, &fe)) { ... clasp_last_error() ... }
 *     float *mel = malloc(sizeof(float) * clasp_audio_frontend_numel(fe)); // (n_mels, n_frames)
 *     clasp_audio_skip why;
 *     clasp_status s = clasp_audio_frontend_run(fe, bytes, nbytes, NULL, 0, 0, key, mel, NULL,
 *                                               &why);   // NULL aug: evaluation
 *     if (s != CLASP_OK && why != CLASP_AUDIO_OK) skipped[why]++;   // bad sample: count it
 *     else if (s != CLASP_OK) fatal(clasp_last_error());             // out of memory, misuse
 *     clasp_audio_frontend_free(fe);
 *
 * Stages, each usable alone:
 *   1. clasp_audio_load_clip: bytes -> mono float clip (clip_samples at cfg.sample_rate).
 *      Memory is bounded by the clip length, not the file length: for a long file only the
 *      frames the clip needs are read (after a seek), in chunks of CLASP_AUDIO_CHUNK_FRAMES
 *      frames, and streamed through the resampler into the output.
 *   2. clasp_audio_augment_wave: gain, time shift, additive noise (training only).
 *   3. clasp_melspec_compute: clip -> (n_mels, n_frames) log-mel, normalised.
 *   4. clasp_audio_augment_spec: SpecAugment time and frequency masks (training only).
 *
 * Bad input never crashes: a sample that cannot be used is a skip with a reason from
 * clasp_audio_skip, which callers count. Policies (documented at each config field):
 *   - empty bytes or a file with 0 frames: CLASP_AUDIO_EMPTY;
 *   - bytes libsndfile cannot open (not audio, unsupported codec): CLASP_AUDIO_DECODE;
 *   - a read error or truncated data before any frame decoded: CLASP_AUDIO_TRUNCATED; a file
 *     cut after some frames decoded keeps what was decoded (info.truncated = true);
 *   - NaN or infinite samples: CLASP_AUDIO_NAN by default (nonfinite_to_zero = true zeroes them
 *     instead); no NaN ever reaches the output;
 *   - channels or sample rate outside the configured limits: CLASP_AUDIO_FORMAT;
 *   - shorter than min_seconds (default 0, so never): CLASP_AUDIO_TOO_SHORT; shorter than
 *     the clip is otherwise padded (pad_mode), silence is fine (log floor, no -inf).
 */
#ifndef CLASP_MODALITIES_AUDIO_H
#define CLASP_MODALITIES_AUDIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct cJSON cJSON;

/* Frames read from libsndfile per call: bounds the interleaved read buffer. */
#define CLASP_AUDIO_CHUNK_FRAMES 4096

/* Why an audio sample was skipped. CLASP_AUDIO_OK means it was used. */
typedef enum clasp_audio_skip {
    CLASP_AUDIO_OK = 0,
    CLASP_AUDIO_EMPTY,     /* zero bytes, or a file with zero frames */
    CLASP_AUDIO_DECODE,    /* libsndfile cannot open it: not audio or unsupported codec */
    CLASP_AUDIO_TRUNCATED, /* read error / cut data before any frame could be decoded */
    CLASP_AUDIO_NAN,       /* NaN or infinite samples (policy: reject) */
    CLASP_AUDIO_FORMAT,    /* channels or sample rate outside the configured limits */
    CLASP_AUDIO_TOO_SHORT, /* shorter than min_seconds */
    CLASP_AUDIO_RESAMPLE,  /* libsamplerate refused the conversion */
    CLASP_AUDIO_N_SKIPS
} clasp_audio_skip;

/* Stable short name of a reason ("empty", "decode", ...); "?" for out of range. */
const char *clasp_audio_skip_name(clasp_audio_skip r);

/* ---------------------------------------------------------------------------------------- */
/* Log-mel spectrogram                                                                       */

typedef enum clasp_mel_scale { CLASP_MEL_HTK = 0, CLASP_MEL_SLANEY = 1 } clasp_mel_scale;
typedef enum clasp_mel_norm { CLASP_MEL_NORM_NONE = 0, CLASP_MEL_NORM_SLANEY = 1 } clasp_mel_norm;
typedef enum clasp_mel_window {
    CLASP_WINDOW_HANN = 0,     /* periodic Hann, as torch.hann_window(periodic=True) */
    CLASP_WINDOW_HANN_SYM = 1, /* symmetric Hann, as torch.hann_window(periodic=False) */
    CLASP_WINDOW_HAMMING = 2,  /* periodic Hamming, as torch.hamming_window() */
    CLASP_WINDOW_RECT = 3      /* all ones */
} clasp_mel_window;
typedef enum clasp_mel_pad {
    CLASP_PAD_REFLECT = 0, /* torch.stft(center=True, pad_mode="reflect") */
    CLASP_PAD_CONSTANT = 1 /* zeros, as librosa's default */
} clasp_mel_pad;
typedef enum clasp_mel_log {
    CLASP_MEL_LOG_LN = 0,  /* ln(max(x, log_floor)) */
    CLASP_MEL_LOG_DB = 1,  /* 10 * log10(max(x, log_floor)), as AmplitudeToDB(ref=1, top_db=None) */
    CLASP_MEL_LOG_NONE = 2 /* no log (linear mel energies) */
} clasp_mel_log;

typedef struct clasp_melspec_config {
    int sample_rate; /* Hz of the input signal */
    int n_fft;       /* FFT size; even (kiss_fftr), >= 2 */
    int win_length;  /* window length <= n_fft, centred in the frame (torch.stft) */
    int hop_length;  /* samples between frames, >= 1 */
    clasp_mel_window window;
    bool center; /* pad n_fft/2 on each side first (torch.stft center=True) */
    clasp_mel_pad pad_mode;
    int n_mels;
    double fmin, fmax; /* Hz; fmax <= 0 means sample_rate / 2 */
    clasp_mel_scale mel_scale;
    clasp_mel_norm mel_norm;
    double power; /* 2 = power spectrum, 1 = magnitude */
    clasp_mel_log log;
    double log_floor; /* > 0; clamp before the log */
    double norm_mean; /* output = (log_mel - norm_mean) / norm_std */
    double norm_std;  /* > 0 */
} clasp_melspec_config;

/* 16 kHz, n_fft 512, win 400, hop 160, periodic Hann, center reflect, 64 mels 0..8000 Hz, HTK,
 * no filter norm, power 2, ln with floor 1e-10, mean 0, std 1. */
clasp_melspec_config clasp_melspec_default_config(void);
/* CLASP_ERR_CONFIG naming the first bad field. */
clasp_status clasp_melspec_config_check(const clasp_melspec_config *c);
/* Frames produced for a signal of n_samples: center: 1 + n/hop; else 1 + (n - n_fft)/hop, or 0
 * when n < n_fft. */
size_t clasp_melspec_n_frames(const clasp_melspec_config *c, size_t n_samples);

/* The mel filterbank as torchaudio.functional.melscale_fbanks(n_freqs, fmin, fmax, n_mels,
 * sample_rate, norm, mel_scale) transposed: fb is (n_mels, n_freqs) row-major, n_freqs =
 * n_fft/2 + 1, bin frequencies linspace(0, sample_rate/2, n_freqs). Computed in double. */
clasp_status clasp_mel_filterbank(float *fb, int n_freqs, double fmin, double fmax, int n_mels,
                                  int sample_rate, clasp_mel_scale scale, clasp_mel_norm norm);
/* Hz <-> mel on the given scale (torchaudio's _hz_to_mel / _mel_to_hz). */
double clasp_hz_to_mel(double hz, clasp_mel_scale scale);
double clasp_mel_to_hz(double mel, clasp_mel_scale scale);

typedef struct clasp_melspec clasp_melspec; /* window, filterbank, FFT plan, scratch */

clasp_status clasp_melspec_new(const clasp_melspec_config *c, clasp_melspec **out);
void clasp_melspec_free(clasp_melspec *m);
const clasp_melspec_config *clasp_melspec_get_config(const clasp_melspec *m);
/* x: (n_samples) mono signal at c.sample_rate. out: (n_mels, n_frames) row-major, n_frames =
 * clasp_melspec_n_frames(c, n_samples) (caller allocates). Requirements: center with reflect
 * padding needs n_samples > n_fft/2; no center needs n_samples >= n_fft (else CLASP_ERR_ARG).
 * Non-finite input is CLASP_ERR_NUMERIC. Uses m's scratch: one thread per object. */
clasp_status clasp_melspec_compute(clasp_melspec *m, const float *x, size_t n_samples, float *out);

/* ---------------------------------------------------------------------------------------- */
/* Decoding to a fixed-length mono clip                                                      */

typedef enum clasp_audio_pad {
    CLASP_AUDIO_PAD_REPEAT = 0,   /* tile the clip, then cut (CLAP "repeat") */
    CLASP_AUDIO_PAD_ZERO = 1,     /* append zeros */
    CLASP_AUDIO_PAD_REPEATPAD = 2 /* whole repeats, then zeros (CLAP "repeatpad") */
} clasp_audio_pad;
typedef enum clasp_audio_crop {
    CLASP_AUDIO_CROP_HEAD = 0,  /* the first clip_samples */
    CLASP_AUDIO_CROP_RANDOM = 1 /* offset drawn from the augmentation RNG (head when no RNG) */
} clasp_audio_crop;

typedef struct clasp_audio_config {
    double clip_seconds;        /* clip length; clip_samples = round(clip_seconds * rate) */
    clasp_audio_pad pad_mode;   /* for sources shorter than the clip */
    clasp_audio_crop crop_mode; /* for sources longer than the clip, training only; evaluation
                                   (no RNG) always crops the head */
    int resample_quality;       /* libsamplerate converter: 0 SINC_BEST_QUALITY, 1 SINC_MEDIUM,
                                   2 SINC_FASTEST (default), 3 ZERO_ORDER_HOLD, 4 LINEAR */
    double min_seconds;         /* shorter sources are skipped (CLASP_AUDIO_TOO_SHORT); 0 = never */
    int max_channels;           /* more is CLASP_AUDIO_FORMAT (default 64) */
    int max_source_rate;        /* Hz; higher is CLASP_AUDIO_FORMAT (default 768000) */
    int min_source_rate;        /* Hz; lower is CLASP_AUDIO_FORMAT (default 1000) */
    bool nonfinite_to_zero;   /* false (default): NaN/Inf samples skip the file; true: zero them */
    clasp_melspec_config mel; /* mel.sample_rate is the model's rate */
} clasp_audio_config;

/* 16 kHz, 10 s, repeat-pad, random crop, SINC_FASTEST, limits above, mel defaults. */
clasp_audio_config clasp_audio_default_config(void);
clasp_status clasp_audio_config_check(const clasp_audio_config *c);
/* round(clip_seconds * mel.sample_rate). */
size_t clasp_audio_clip_samples(const clasp_audio_config *c);
/* Mel frames of one clip. */
size_t clasp_audio_clip_frames(const clasp_audio_config *c);

/* What the decoder saw and did. */
typedef struct clasp_audio_info {
    int source_rate; /* Hz */
    int channels;
    int64_t source_frames;   /* frames according to the header (-1 if unknown) */
    int64_t crop_offset;     /* first source frame used */
    int64_t frames_read;     /* source frames actually decoded */
    size_t valid_samples;    /* output samples from the source before padding */
    bool truncated;          /* the data ended before the header said */
    bool padded;             /* the clip was shorter than clip_samples */
    size_t peak_alloc_bytes; /* bytes the decoder allocated (read + mono + resampler buffers,
                                not libsndfile's or libsamplerate's own state) */
    int sf_format;           /* SF_INFO.format */
} clasp_audio_info;

/* Encodes n mono float samples at sample_rate Hz as a float32 WAV file in a malloc'd buffer *out
 * of *nbytes bytes (caller frees), the values kept bit for bit (NaN included: the decoder then
 * refuses or zeroes them). CLASP_ERR_ARG (rate <= 0), CLASP_ERR_OVERFLOW (over 4 GB), NOMEM. */
clasp_status clasp_audio_encode_wav(const float *x, size_t n, int sample_rate, uint8_t **out,
                                    size_t *nbytes);

/* Facts from the header only (no decoding). CLASP_ERR_FORMAT with *why set if unreadable. */
clasp_status clasp_audio_probe(const void *data, size_t nbytes, clasp_audio_info *info,
                               clasp_audio_skip *why);

/* Decodes `data` (a whole encoded file in memory: WAV/FLAC/OGG/Opus/MP3/... as libsndfile
 * reads) into out (clip_samples floats, caller allocated): mono (mean of channels), resampled
 * to c->mel.sample_rate, cropped or padded to the clip. `crop_u` in [0, 1) picks the crop
 * offset for CLASP_AUDIO_CROP_RANDOM as floor(crop_u * (frames - needed + 1)); pass a negative
 * value for the head. `what` names the sample in messages (may be NULL); info may be NULL.
 * Returns CLASP_OK with *why = CLASP_AUDIO_OK, or an error with *why = the skip reason for bad
 * input (count it and go on) or *why = CLASP_AUDIO_OK for CLASP_ERR_NOMEM / CLASP_ERR_ARG. */
clasp_status clasp_audio_load_clip(const void *data, size_t nbytes, const clasp_audio_config *c,
                                   double crop_u, const char *what, float *out,
                                   clasp_audio_info *info, clasp_audio_skip *why);

/* ---------------------------------------------------------------------------------------- */
/* Augmentation (deterministic)                                                               */

typedef enum clasp_audio_shift {
    CLASP_AUDIO_SHIFT_CIRCULAR = 0, /* roll: samples leaving one end re-enter at the other */
    CLASP_AUDIO_SHIFT_ZERO = 1      /* shift and fill the vacated part with zeros */
} clasp_audio_shift;

/* All off by default (clasp_audio_augment_default_config); evaluation passes NULL. */
typedef struct clasp_audio_augment_config {
    bool random_crop;                /* use a random crop offset (with crop_mode RANDOM) */
    double gain_prob;                /* probability of a gain change */
    double gain_db_min, gain_db_max; /* gain uniform in dB */
    double shift_prob;               /* probability of a time shift */
    double shift_max_seconds;        /* shift uniform in [-max, +max] seconds (whole samples) */
    clasp_audio_shift shift_mode;
    double noise_prob;             /* probability of additive white Gaussian noise */
    double snr_db_min, snr_db_max; /* SNR uniform in dB relative to the clip's mean power;
                                      a silent clip gets no noise */
    int time_masks;                /* SpecAugment: number of time masks */
    int time_mask_max;             /* max width in frames (width uniform in [0, max]) */
    int freq_masks;                /* number of frequency masks */
    int freq_mask_max;             /* max width in mel bins */
    double mask_value;             /* value written into masked cells (after normalisation) */
} clasp_audio_augment_config;

clasp_audio_augment_config clasp_audio_augment_default_config(void);
clasp_status clasp_audio_augment_config_check(const clasp_audio_augment_config *a);

/* The random stream of one augmentation stage for one sample: Philox keyed by (seed,
 * CLASP_RNG_AUGMENT, epoch, clasp_hash_str(key, 0) ^ clasp_splitmix64(0xA0D10 + stage)), so
 * each stage's draws do not depend on which other stages are enabled, nor on the image
 * modality's draws for the same key. Stages: */
enum clasp_audio_aug_stage {
    CLASP_AUDIO_AUG_CROP = 0,
    CLASP_AUDIO_AUG_GAIN = 1,
    CLASP_AUDIO_AUG_SHIFT = 2,
    CLASP_AUDIO_AUG_NOISE = 3,
    CLASP_AUDIO_AUG_SPEC = 4
};
struct clasp_rng;
void clasp_audio_aug_rng(struct clasp_rng *r, uint64_t seed, uint64_t epoch, const char *key,
                         int stage);
/* The crop draw in [0, 1) for (seed, epoch, key), to pass to clasp_audio_load_clip. */
double clasp_audio_crop_u(uint64_t seed, uint64_t epoch, const char *key);

/* Gain, shift, noise on x (n samples), in place, in that order. The result stays finite. */
clasp_status clasp_audio_augment_wave(float *x, size_t n, int sample_rate,
                                      const clasp_audio_augment_config *a, uint64_t seed,
                                      uint64_t epoch, const char *key);
/* SpecAugment on mel (n_mels, n_frames) in place: freq masks then time masks. */
clasp_status clasp_audio_augment_spec(float *mel, int n_mels, size_t n_frames,
                                      const clasp_audio_augment_config *a, uint64_t seed,
                                      uint64_t epoch, const char *key);

/* ---------------------------------------------------------------------------------------- */
/* The whole chain                                                                            */

typedef struct clasp_audio_frontend clasp_audio_frontend;

clasp_status clasp_audio_frontend_new(const clasp_audio_config *c, clasp_audio_frontend **out);
void clasp_audio_frontend_free(clasp_audio_frontend *fe);
const clasp_audio_config *clasp_audio_frontend_config(const clasp_audio_frontend *fe);
/* n_mels * n_frames of one clip. */
size_t clasp_audio_frontend_numel(const clasp_audio_frontend *fe);
/* bytes -> clip -> [wave aug] -> log-mel -> [spec aug] into out (n_mels, n_frames). aug NULL
 * means evaluation (head crop, no augmentation). Return convention of clasp_audio_load_clip.
 * info may be NULL. */
clasp_status clasp_audio_frontend_run(clasp_audio_frontend *fe, const void *data, size_t nbytes,
                                      const clasp_audio_augment_config *aug, uint64_t seed,
                                      uint64_t epoch, const char *key, float *out,
                                      clasp_audio_info *info, clasp_audio_skip *why);

/* ---------------------------------------------------------------------------------------- */
/* Config as JSON (the "audio" object of a model config, and preprocess.json)                 */

/* Reads fields of `obj` over the defaults: sample_rate, clip_seconds, pad ("repeat"|"zero"|
 * "repeatpad"), crop ("head"|"random"), resample_quality, min_seconds, n_fft, win_length,
 * hop_length, window ("hann"|"hann_symmetric"|"hamming"|"rect"), center, pad_mode
 * ("reflect"|"constant"), n_mels, fmin, fmax, mel_scale ("htk"|"slaney"), mel_norm
 * ("none"|"slaney"), power, log ("ln"|"db"|"none"), log_floor, norm_mean, norm_std,
 * nonfinite ("reject"|"zero"). Unknown fields are ignored (they belong to the encoder). */
clasp_status clasp_audio_config_from_json(const cJSON *obj, const char *file, const char *prefix,
                                          clasp_audio_config *out);
/* A new cJSON object with every field above (caller deletes); NULL on allocation failure. */
cJSON *clasp_audio_config_to_json(const clasp_audio_config *c);

#endif
