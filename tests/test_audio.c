/* test_audio.c: the audio front-end (modalities/audio.h): log-mel and mel filterbank against
 * the numpy reference (tests/reference/make_logmel.py), decoding of every codec libsndfile
 * writes here, resampling, crop/pad, bad input (each a counted skip or a clean decode), bounded
 * memory on a long file, deterministic augmentation, and the JSON config.
 *
 * Fixtures are encoded with fx_encode_audio (an anonymous temporary file read back), so no
 * file names are shared between Criterion's parallel test processes.
 *
 * Tolerances: log-mel 1e-4 absolute on ln(mel energy) (log_tol converts it to the output's
 * units: x 10/ln(10) for dB, / norm_std after normalisation). kissfft runs in float32 and the
 * reference in float64, so low-energy bands far below a frame's loudest carry the FFT's
 * rounding relative to the whole frame: the worst case measured here is 4.4e-5 in ln units.
 * Filterbank: 1e-6 absolute.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sndfile.h>

#include "core/rng.h"
#include "core/safetensors.h"
#include "modalities/audio.h"
#include "fixtures.h"

static const double PI_ = 3.14159265358979323846;

/* Encodes frames (interleaved, channels) with `format`; returns malloc'd bytes in *n. */
static unsigned char *encode(int format, int rate, int channels, const float *x, sf_count_t frames,
                             size_t *n) {
    unsigned char *b = fx_encode_audio(format, rate, channels, x, frames, n);
    cr_assert(b, "encoding format %x failed", format);
    return b;
}

/* (frames, channels) interleaved sine of `hz` with amplitude amp * (1 + c) / channels. */
static float *sine(int rate, int channels, sf_count_t frames, double hz, double amp) {
    float *x = malloc(sizeof(float) * (size_t)(frames * channels));
    cr_assert(x);
    for (sf_count_t i = 0; i < frames; i++)
        for (int c = 0; c < channels; c++)
            x[i * channels + c] = (float)(amp * sin(2 * PI_ * hz * (double)i / rate));
    return x;
}

static clasp_audio_config small_config(int rate, double seconds) {
    clasp_audio_config c = clasp_audio_default_config();
    c.mel.sample_rate = rate;
    c.mel.n_fft = rate >= 16000 ? 512 : 256;
    c.mel.win_length = rate >= 16000 ? 400 : 200;
    c.mel.hop_length = rate / 100;
    c.mel.fmax = rate / 2.0;
    c.clip_seconds = seconds;
    c.crop_mode = CLASP_AUDIO_CROP_HEAD;
    return c;
}

/* RMS error between got[lo..hi) and a sine of hz at amplitude amp, best over a few lags
 * (codecs and resamplers may delay by a handful of samples). */
static double sine_rms_err(const float *got, size_t lo, size_t hi, int rate, double hz, double amp,
                           int max_lag) {
    double best = 1e30;
    for (int lag = -max_lag; lag <= max_lag; lag++) {
        double e = 0.0;
        for (size_t i = lo; i < hi; i++) {
            double w = amp * sin(2 * PI_ * hz * ((double)i + lag) / rate);
            e += ((double)got[i] - w) * ((double)got[i] - w);
        }
        e = sqrt(e / (double)(hi - lo));
        if (e < best) best = e;
    }
    return best;
}

/* The clip of encoded bytes b (crop position -1: the config's eval crop) as *n malloc'd
 * samples; the load must succeed. */
static float *load_head_(const unsigned char *b, size_t nb, const clasp_audio_config *c,
                         const char *key, size_t *n, clasp_audio_info *info,
                         clasp_audio_skip *why) {
    *n = clasp_audio_clip_samples(c);
    float *out = malloc(sizeof(float) * *n);
    cr_assert_eq(clasp_audio_load_clip(b, nb, c, -1.0, key, out, info, why), CLASP_OK, "%s",
                 clasp_last_error());
    return out;
}

static bool all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

/* ---- reference log-mel -------------------------------------------------------------------- */

static const char *meta(clasp_safetensors *st, const char *k) {
    const char *v = clasp_st_meta(st, k);
    cr_assert(v, "%s: metadata %s missing", st->path, k);
    return v;
}

static clasp_melspec_config ref_config(clasp_safetensors *st) {
    clasp_melspec_config c = clasp_melspec_default_config();
    c.sample_rate = atoi(meta(st, "sample_rate"));
    c.n_fft = atoi(meta(st, "n_fft"));
    c.win_length = atoi(meta(st, "win_length"));
    c.hop_length = atoi(meta(st, "hop_length"));
    const char *w = meta(st, "window");
    c.window = strcmp(w, "hann") == 0             ? CLASP_WINDOW_HANN
               : strcmp(w, "hann_symmetric") == 0 ? CLASP_WINDOW_HANN_SYM
               : strcmp(w, "hamming") == 0        ? CLASP_WINDOW_HAMMING
                                                  : CLASP_WINDOW_RECT;
    c.center = atoi(meta(st, "center")) != 0;
    c.pad_mode =
        strcmp(meta(st, "pad_mode"), "reflect") == 0 ? CLASP_PAD_REFLECT : CLASP_PAD_CONSTANT;
    c.n_mels = atoi(meta(st, "n_mels"));
    c.fmin = atof(meta(st, "fmin"));
    c.fmax = atof(meta(st, "fmax"));
    c.mel_scale = strcmp(meta(st, "mel_scale"), "htk") == 0 ? CLASP_MEL_HTK : CLASP_MEL_SLANEY;
    c.mel_norm =
        strcmp(meta(st, "mel_norm"), "slaney") == 0 ? CLASP_MEL_NORM_SLANEY : CLASP_MEL_NORM_NONE;
    c.power = atof(meta(st, "power"));
    const char *lg = meta(st, "log");
    c.log = strcmp(lg, "ln") == 0   ? CLASP_MEL_LOG_LN
            : strcmp(lg, "db") == 0 ? CLASP_MEL_LOG_DB
                                    : CLASP_MEL_LOG_NONE;
    c.log_floor = atof(meta(st, "log_floor"));
    c.norm_mean = atof(meta(st, "norm_mean"));
    c.norm_std = atof(meta(st, "norm_std"));
    return c;
}

/* 1e-4 on the natural log of the mel energy, in the output's units: dB is 10/ln(10) times
 * ln, and normalisation divides by norm_std. */
static double log_tol(const clasp_melspec_config *c) {
    double unit = c->log == CLASP_MEL_LOG_DB ? 10.0 / log(10.0) : 1.0;
    return 1e-4 * unit / c->norm_std;
}

static const char *const ref_names[] = {"htk16k", "slaney16k", "slaney8k", "htk8k"};

static clasp_safetensors *open_ref(const char *name) {
    clasp_safetensors *st = fx_ref_open("audio/logmel_%s.safetensors", name);
    cr_assert(st, "%s", clasp_last_error());
    return st;
}

Test(audio, mel_filterbank_matches_reference) {
    for (size_t r = 0; r < sizeof ref_names / sizeof ref_names[0]; r++) {
        clasp_safetensors *st = open_ref(ref_names[r]);
        clasp_melspec_config c = ref_config(st);
        const clasp_st_tensor *t = clasp_st_find(st, "fb");
        cr_assert(t && t->ndim == 2);
        int n_freqs = c.n_fft / 2 + 1;
        cr_assert_eq(t->shape[0], c.n_mels);
        cr_assert_eq(t->shape[1], n_freqs);
        float *fb = malloc(sizeof(float) * t->numel);
        double fmax = c.fmax > 0 ? c.fmax : c.sample_rate / 2.0;
        cr_assert_eq(clasp_mel_filterbank(fb, n_freqs, c.fmin, fmax, c.n_mels, c.sample_rate,
                                          c.mel_scale, c.mel_norm),
                     CLASP_OK);
        cr_expect(
            clasp_test_check_tensor(ref_names[r], fb, clasp_st_f32(st, t), t->numel, 1e-6, 1e-5));
        free(fb);
        clasp_st_free(st);
    }
}

Test(audio, logmel_matches_reference) {
    for (size_t r = 0; r < sizeof ref_names / sizeof ref_names[0]; r++) {
        clasp_safetensors *st = open_ref(ref_names[r]);
        clasp_melspec_config c = ref_config(st);
        const clasp_st_tensor *xs = clasp_st_find(st, "signal");
        const clasp_st_tensor *ys = clasp_st_find(st, "logmel");
        cr_assert(xs && ys);
        size_t n = xs->numel, n_frames = clasp_melspec_n_frames(&c, n);
        cr_assert_eq((int64_t)n_frames, ys->shape[1], "%s: n_frames %zu vs %lld", ref_names[r],
                     n_frames, (long long)ys->shape[1]);
        clasp_melspec *m = NULL;
        cr_assert_eq(clasp_melspec_new(&c, &m), CLASP_OK, "%s", clasp_last_error());
        float *out = malloc(sizeof(float) * ys->numel);
        cr_assert_eq(clasp_melspec_compute(m, clasp_st_f32(st, xs), n, out), CLASP_OK, "%s",
                     clasp_last_error());
        cr_expect(clasp_test_check_tensor(ref_names[r], out, clasp_st_f32(st, ys), ys->numel,
                                          log_tol(&c), 0.0));
        free(out);
        clasp_melspec_free(m);
        clasp_st_free(st);
    }
}

/* Decode + log-mel end to end: the reference signal as a float WAV at the model's rate. */
Test(audio, logmel_from_float_wav_matches_reference) {
    clasp_safetensors *st = open_ref("htk16k");
    clasp_audio_config c = clasp_audio_default_config();
    c.mel = ref_config(st);
    const clasp_st_tensor *xs = clasp_st_find(st, "signal");
    const clasp_st_tensor *ys = clasp_st_find(st, "logmel");
    c.clip_seconds = (double)xs->numel / c.mel.sample_rate;
    cr_assert_eq(clasp_audio_clip_samples(&c), xs->numel);
    size_t nb;
    unsigned char *bytes = encode(SF_FORMAT_WAV | SF_FORMAT_FLOAT, c.mel.sample_rate, 1,
                                  clasp_st_f32(st, xs), (sf_count_t)xs->numel, &nb);
    clasp_audio_frontend *fe = NULL;
    cr_assert_eq(clasp_audio_frontend_new(&c, &fe), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_audio_frontend_numel(fe), ys->numel);
    float *out = malloc(sizeof(float) * ys->numel);
    clasp_audio_skip why;
    clasp_audio_info info;
    cr_assert_eq(clasp_audio_frontend_run(fe, bytes, nb, NULL, 0, 0, "ref", out, &info, &why),
                 CLASP_OK, "%s", clasp_last_error());
    cr_expect_eq(info.padded, false);
    cr_expect(clasp_test_check_tensor("wav->logmel", out, clasp_st_f32(st, ys), ys->numel,
                                      log_tol(&c.mel), 0.0));
    free(out);
    free(bytes);
    clasp_audio_frontend_free(fe);
    clasp_st_free(st);
}

Test(audio, n_frames_and_mel_scale) {
    clasp_melspec_config c = clasp_melspec_default_config();
    c.hop_length = 160;
    c.n_fft = 512;
    c.center = true;
    cr_expect_eq(clasp_melspec_n_frames(&c, 16000), 101);
    cr_expect_eq(clasp_melspec_n_frames(&c, 159), 1);
    c.center = false;
    cr_expect_eq(clasp_melspec_n_frames(&c, 16000), 1 + (16000 - 512) / 160);
    cr_expect_eq(clasp_melspec_n_frames(&c, 511), 0);
    for (double hz = 0; hz <= 24000; hz += 937.5) {
        cr_expect(fabs(clasp_mel_to_hz(clasp_hz_to_mel(hz, CLASP_MEL_HTK), CLASP_MEL_HTK) - hz) <
                  1e-6);
        cr_expect(fabs(clasp_mel_to_hz(clasp_hz_to_mel(hz, CLASP_MEL_SLANEY), CLASP_MEL_SLANEY) -
                       hz) < 1e-6);
    }
    cr_expect(fabs(clasp_hz_to_mel(1000.0, CLASP_MEL_SLANEY) - 15.0) < 1e-12);
    cr_expect(fabs(clasp_hz_to_mel(700.0, CLASP_MEL_HTK) - 2595.0 * log10(2.0)) < 1e-9);
    clasp_melspec_config bad = clasp_melspec_default_config();
    bad.n_fft = 511;
    cr_expect_eq(clasp_melspec_config_check(&bad), CLASP_ERR_CONFIG);
    bad = clasp_melspec_default_config();
    bad.fmax = 9000.0;
    cr_expect_eq(clasp_melspec_config_check(&bad), CLASP_ERR_CONFIG);
}

/* ---- decoding ---------------------------------------------------------------------------- */

/* Each PCM width and float WAV decodes to the sine it was written from (no resampling). */
Test(audio, wav_pcm_widths_decode_exactly) {
    const int fmts[] = {SF_FORMAT_PCM_U8, SF_FORMAT_PCM_16, SF_FORMAT_PCM_24,
                        SF_FORMAT_PCM_32, SF_FORMAT_FLOAT,  SF_FORMAT_DOUBLE};
    const double tol[] = {1.5 / 128, 1.5 / 32768, 1e-6, 1e-6, 1e-7, 1e-7};
    const int rate = 8000;
    const sf_count_t frames = 8000;
    float *x = sine(rate, 1, frames, 440.0, 0.5);
    clasp_audio_config c = small_config(rate, 1.0);
    float *out = malloc(sizeof(float) * clasp_audio_clip_samples(&c));
    for (size_t f = 0; f < sizeof fmts / sizeof fmts[0]; f++) {
        size_t nb;
        unsigned char *b = encode(SF_FORMAT_WAV | fmts[f], rate, 1, x, frames, &nb);
        clasp_audio_skip why;
        clasp_audio_info info;
        cr_assert_eq(clasp_audio_load_clip(b, nb, &c, -1.0, "w", out, &info, &why), CLASP_OK,
                     "fmt %x: %s", fmts[f], clasp_last_error());
        cr_expect_eq(info.frames_read, frames);
        double maxd = 0;
        for (sf_count_t i = 0; i < frames; i++)
            if (fabs(out[i] - x[i]) > maxd) maxd = fabs(out[i] - x[i]);
        cr_expect(maxd <= tol[f], "fmt %x: max diff %g > %g", fmts[f], maxd, tol[f]);
        free(b);
    }
    free(out);
    free(x);
}

/* A stereo 44.1 kHz FLAC must decode and resample, not skip (issue 4's bad-input list). */
Test(audio, stereo_flac_44k_resamples_to_16k) {
    const sf_count_t frames = 44100;
    float *x = sine(44100, 2, frames, 1000.0, 0.5);
    for (sf_count_t i = 0; i < frames; i++) x[2 * i + 1] *= 0.5f; /* right = half: mean 0.375 */
    size_t nb;
    unsigned char *b = encode(SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 44100, 2, x, frames, &nb);
    clasp_audio_config c = small_config(16000, 1.0);
    c.resample_quality = 1; /* SINC_MEDIUM_QUALITY */
    size_t n;
    clasp_audio_skip why;
    clasp_audio_info info;
    float *out = load_head_(b, nb, &c, "flac", &n, &info, &why);
    cr_expect_eq(why, CLASP_AUDIO_OK);
    cr_expect_eq(info.source_rate, 44100);
    cr_expect_eq(info.channels, 2);
    cr_expect((info.sf_format & SF_FORMAT_TYPEMASK) == SF_FORMAT_FLAC);
    double e = sine_rms_err(out, 200, n - 200, 16000, 1000.0, 0.375, 0);
    cr_expect(e < 2e-3, "resampled sine rms error %g", e);
    free(out);
    free(b);
    free(x);
}

/* Lossy codecs libsndfile writes here: decoded and resampled, roughly the same sine. */
Test(audio, lossy_codecs_decode) {
    const struct {
        int format, rate;
        const char *name;
    } cs[] = {{SF_FORMAT_OGG | SF_FORMAT_VORBIS, 22050, "vorbis"},
              {SF_FORMAT_OGG | SF_FORMAT_OPUS, 48000, "opus"},
              {SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, 44100, "mp3"}};
    clasp_audio_config c = small_config(16000, 1.0);
    size_t n = clasp_audio_clip_samples(&c);
    float *out = malloc(sizeof(float) * n);
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        sf_count_t frames = cs[k].rate * 3 / 2;
        float *x = sine(cs[k].rate, 1, frames, 500.0, 0.5);
        size_t nb;
        unsigned char *b = encode(cs[k].format, cs[k].rate, 1, x, frames, &nb);
        clasp_audio_skip why;
        clasp_audio_info info;
        cr_assert_eq(clasp_audio_load_clip(b, nb, &c, -1.0, cs[k].name, out, &info, &why), CLASP_OK,
                     "%s: %s", cs[k].name, clasp_last_error());
        cr_expect_eq(info.source_rate, cs[k].rate, "%s", cs[k].name);
        double rms = 0;
        for (size_t i = n / 4; i < 3 * n / 4; i++) rms += (double)out[i] * (double)out[i];
        rms = sqrt(rms / (double)(n / 2));
        cr_expect(fabs(rms - 0.5 / sqrt(2.0)) < 0.05, "%s: rms %g", cs[k].name, rms);
        cr_expect(all_finite(out, n));
        free(b);
        free(x);
    }
    free(out);
}

Test(audio, six_channels_mix_to_mean) {
    const sf_count_t frames = 4000;
    float *x = malloc(sizeof(float) * 6 * frames);
    for (sf_count_t i = 0; i < frames; i++)
        for (int ch = 0; ch < 6; ch++) x[i * 6 + ch] = 0.1f * (float)(ch + 1); /* mean 0.35 */
    size_t nb;
    unsigned char *b = encode(SF_FORMAT_WAV | SF_FORMAT_FLOAT, 8000, 6, x, frames, &nb);
    clasp_audio_config c = small_config(8000, 0.5);
    size_t n;
    clasp_audio_info info;
    clasp_audio_skip why;
    float *out = load_head_(b, nb, &c, "6ch", &n, &info, &why);
    cr_expect_eq(info.channels, 6);
    cr_assert_eq(n, 4000);
    for (size_t i = 0; i < n; i++)
        cr_assert(fabsf(out[i] - 0.35f) < 1e-6f, "out[%zu]=%g", i, (double)out[i]);
    /* More channels than allowed is a counted skip. */
    c.max_channels = 4;
    cr_expect_eq(clasp_audio_load_clip(b, nb, &c, -1.0, "6ch", out, &info, &why), CLASP_ERR_FORMAT);
    cr_expect_eq(why, CLASP_AUDIO_FORMAT);
    free(out);
    free(b);
    free(x);
}

Test(audio, rate_192k_resamples) {
    const sf_count_t frames = 192000 / 2;
    float *x = sine(192000, 1, frames, 300.0, 0.25);
    size_t nb;
    unsigned char *b = encode(SF_FORMAT_WAV | SF_FORMAT_PCM_24, 192000, 1, x, frames, &nb);
    clasp_audio_config c = small_config(8000, 0.5);
    size_t n;
    clasp_audio_skip why;
    float *out = load_head_(b, nb, &c, "192k", &n, NULL, &why);
    double e = sine_rms_err(out, 100, n - 100, 8000, 300.0, 0.25, 0);
    cr_expect(e < 2e-3, "rms error %g", e);
    /* The log-mel of it is finite. */
    clasp_audio_frontend *fe;
    cr_assert_eq(clasp_audio_frontend_new(&c, &fe), CLASP_OK, "%s", clasp_last_error());
    float *mel = malloc(sizeof(float) * clasp_audio_frontend_numel(fe));
    cr_assert_eq(clasp_audio_frontend_run(fe, b, nb, NULL, 0, 0, "192k", mel, NULL, &why),
                 CLASP_OK);
    cr_expect(all_finite(mel, clasp_audio_frontend_numel(fe)));
    clasp_audio_frontend_free(fe);
    free(mel);
    free(out);
    free(b);
    free(x);
}

/* ---- crop and pad ------------------------------------------------------------------------- */

Test(audio, pad_modes) {
    const sf_count_t frames = 3000; /* 0.375 s at 8 kHz into a 1 s clip: 2 whole copies + 2000 */
    float *x = malloc(sizeof(float) * frames);
    for (sf_count_t i = 0; i < frames; i++) x[i] = (float)(i + 1) / 4096.0f; /* exact in PCM_16 */
    size_t nb;
    unsigned char *b = encode(SF_FORMAT_WAV | SF_FORMAT_FLOAT, 8000, 1, x, frames, &nb);
    clasp_audio_config c = small_config(8000, 1.0);
    float out[8000];
    clasp_audio_info info;
    clasp_audio_skip why;
    c.pad_mode = CLASP_AUDIO_PAD_REPEAT;
    cr_assert_eq(clasp_audio_load_clip(b, nb, &c, -1.0, "p", out, &info, &why), CLASP_OK);
    cr_expect(info.padded);
    cr_expect_eq(info.valid_samples, 3000);
    for (int i = 0; i < 8000; i++) cr_assert_eq(out[i], x[i % 3000], "repeat at %d", i);
    c.pad_mode = CLASP_AUDIO_PAD_ZERO;
    cr_assert_eq(clasp_audio_load_clip(b, nb, &c, -1.0, "p", out, &info, &why), CLASP_OK);
    for (int i = 0; i < 8000; i++) cr_assert_eq(out[i], i < 3000 ? x[i] : 0.0f, "zero at %d", i);
    c.pad_mode = CLASP_AUDIO_PAD_REPEATPAD;
    cr_assert_eq(clasp_audio_load_clip(b, nb, &c, -1.0, "p", out, &info, &why), CLASP_OK);
    for (int i = 0; i < 8000; i++)
        cr_assert_eq(out[i], i < 6000 ? x[i % 3000] : 0.0f, "repeatpad at %d", i);
    free(b);
    free(x);
}

/* A 10-minute 8 kHz file: a 2 s random crop reads only about 2 s of frames, allocates only
 * chunk-sized buffers, and returns exactly the source frames at the chosen offset. */
Test(audio, long_file_crop_reads_only_needed_frames) {
    const int rate = 8000;
    const sf_count_t frames = (sf_count_t)rate * 600;
    float *x = malloc(sizeof(float) * (size_t)frames);
    cr_assert(x);
    /* A position-dependent pattern of 16-bit values v: written as v / 32767 (libsndfile scales
     * float by 32767 when writing integers) and read back as v / 32768. */
    float *want = malloc(sizeof(float) * (size_t)frames);
    cr_assert(want);
    for (sf_count_t i = 0; i < frames; i++) {
        int v = (int)((i * 7919) % 65521) - 32760;
        x[i] = (float)v / 32767.0f;
        want[i] = (float)v / 32768.0f;
    }
    size_t nb;
    unsigned char *b = encode(SF_FORMAT_WAV | SF_FORMAT_PCM_16, rate, 1, x, frames, &nb);
    clasp_audio_config c = small_config(rate, 2.0);
    c.crop_mode = CLASP_AUDIO_CROP_RANDOM;
    size_t n = clasp_audio_clip_samples(&c);
    float *out = malloc(sizeof(float) * n);
    clasp_audio_info info;
    clasp_audio_skip why;
    const double us[] = {-1.0, 0.0, 0.37, 0.999999};
    for (size_t k = 0; k < 4; k++) {
        cr_assert_eq(clasp_audio_load_clip(b, nb, &c, us[k], "long", out, &info, &why), CLASP_OK,
                     "%s", clasp_last_error());
        cr_expect_eq(info.source_frames, frames);
        cr_expect(info.frames_read <= (int64_t)n, "read %lld frames for a %zu clip",
                  (long long)info.frames_read, n);
        cr_expect(info.peak_alloc_bytes <= sizeof(float) * 2 * CLASP_AUDIO_CHUNK_FRAMES,
                  "allocated %zu bytes", info.peak_alloc_bytes);
        if (us[k] <= 0.0) cr_expect_eq(info.crop_offset, 0);
        if (us[k] > 0.3) cr_expect(info.crop_offset > frames / 4);
        cr_assert(info.crop_offset + (int64_t)n <= frames);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(out[i], want[info.crop_offset + (int64_t)i], "u=%g offset %lld i=%zu",
                         us[k], (long long)info.crop_offset, i);
    }
    /* Same through FLAC, at another rate (seek + resample). */
    free(b);
    const sf_count_t fl_frames = 16000 * 120;
    float *y = sine(16000, 1, fl_frames, 250.0, 0.5);
    b = encode(SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, 1, y, fl_frames, &nb);
    cr_assert_eq(clasp_audio_load_clip(b, nb, &c, 0.5, "longflac", out, &info, &why), CLASP_OK,
                 "%s", clasp_last_error());
    cr_expect(info.frames_read <= 2 * (int64_t)n + 64 + 128 + CLASP_AUDIO_CHUNK_FRAMES, "read %lld",
              (long long)info.frames_read);
    cr_expect(info.crop_offset > fl_frames / 3);
    double e = sine_rms_err(out, 100, n - 100, 8000, 250.0, 0.5, 8000 / 250);
    cr_expect(e < 3e-3, "cropped resampled sine rms error %g", e);
    free(y);
    free(out);
    free(b);
    free(want);
    free(x);
}

/* ---- bad input ---------------------------------------------------------------------------- */

static clasp_audio_skip load_why(const void *b, size_t nb, const clasp_audio_config *c, float *out,
                                 clasp_status *st) {
    clasp_audio_skip why = CLASP_AUDIO_N_SKIPS;
    clasp_audio_info info;
    *st = clasp_audio_load_clip(b, nb, c, -1.0, "bad", out, &info, &why);
    return why;
}

Test(audio, bad_input_is_a_counted_skip) {
    clasp_audio_config c = small_config(8000, 0.5);
    float out[4000];
    clasp_status st;
    /* Empty bytes. */
    cr_expect_eq(load_why("", 0, &c, out, &st), CLASP_AUDIO_EMPTY);
    cr_expect_neq(st, CLASP_OK);
    /* A valid WAV with 0 frames. */
    size_t nb;
    unsigned char *b = encode(SF_FORMAT_WAV | SF_FORMAT_PCM_16, 8000, 1, NULL, 0, &nb);
    cr_expect_eq(load_why(b, nb, &c, out, &st), CLASP_AUDIO_EMPTY, "%s", clasp_last_error());
    cr_expect_eq(st, CLASP_ERR_FORMAT);
    free(b);
    /* Not audio. */
    const char *text = "this is a caption, not a wav file; it has no RIFF header at all.\n";
    cr_expect_eq(load_why(text, strlen(text), &c, out, &st), CLASP_AUDIO_DECODE);
    cr_expect_eq(st, CLASP_ERR_FORMAT);
    unsigned char junk[4096];
    clasp_rng r;
    clasp_rng_init(&r, 1, CLASP_RNG_TEST, 8, 0);
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)clasp_rng_u32(&r);
    clasp_audio_skip w = load_why(junk, sizeof junk, &c, out, &st);
    cr_expect(w != CLASP_AUDIO_OK || st == CLASP_OK, "random bytes: status %d reason %d", st, w);
    if (st == CLASP_OK) cr_expect(all_finite(out, 4000));
    /* Only a RIFF header. */
    cr_expect_eq(load_why("RIFF", 4, &c, out, &st), CLASP_AUDIO_DECODE);
}

Test(audio, truncated_files_decode_prefix_or_skip) {
    const sf_count_t frames = 8000;
    float *x = sine(8000, 1, frames, 440.0, 0.5);
    clasp_audio_config c = small_config(8000, 1.0);
    float out[8000];
    const int fmts[] = {SF_FORMAT_WAV | SF_FORMAT_PCM_16, SF_FORMAT_FLAC | SF_FORMAT_PCM_16,
                        SF_FORMAT_OGG | SF_FORMAT_VORBIS};
    for (size_t f = 0; f < 3; f++) {
        size_t nb;
        unsigned char *b = encode(fmts[f], 8000, 1, x, frames, &nb);
        const size_t cuts[] = {nb / 2, nb / 8, 60, 20, 1};
        for (size_t k = 0; k < 5; k++) {
            clasp_status st;
            clasp_audio_skip why = load_why(b, cuts[k], &c, out, &st);
            /* Either decoded (finite, with the prefix) or a counted skip; never a crash. */
            if (st == CLASP_OK) {
                cr_expect_eq(why, CLASP_AUDIO_OK);
                cr_expect(all_finite(out, 8000));
            } else {
                cr_expect(why > CLASP_AUDIO_OK && why < CLASP_AUDIO_N_SKIPS,
                          "fmt %x cut %zu: status %d without a reason", fmts[f], cuts[k], st);
            }
        }
        /* Half a WAV keeps its first half exactly. */
        if (f == 0) {
            clasp_audio_info info;
            clasp_audio_skip why;
            c.pad_mode = CLASP_AUDIO_PAD_ZERO;
            cr_assert_eq(clasp_audio_load_clip(b, nb / 2, &c, -1.0, "half", out, &info, &why),
                         CLASP_OK, "%s", clasp_last_error());
            cr_expect(info.valid_samples > 3000 && info.valid_samples < 4100, "valid %zu",
                      info.valid_samples);
            cr_expect(fabs(out[100] - x[100]) < 1e-4);
            c.pad_mode = CLASP_AUDIO_PAD_REPEAT;
        }
        free(b);
    }
    free(x);
}

Test(audio, nan_samples_rejected_or_zeroed) {
    const sf_count_t frames = 4000;
    float *x = sine(8000, 1, frames, 440.0, 0.5);
    x[1234] = NAN;
    x[2000] = INFINITY;
    size_t nb;
    unsigned char *b = encode(SF_FORMAT_WAV | SF_FORMAT_FLOAT, 8000, 1, x, frames, &nb);
    clasp_audio_config c = small_config(8000, 0.5);
    float out[4000];
    clasp_status st;
    cr_expect_eq(load_why(b, nb, &c, out, &st), CLASP_AUDIO_NAN);
    cr_expect_eq(st, CLASP_ERR_NUMERIC);
    c.nonfinite_to_zero = true;
    cr_expect_eq(load_why(b, nb, &c, out, &st), CLASP_AUDIO_OK);
    cr_expect_eq(st, CLASP_OK);
    cr_expect(all_finite(out, 4000));
    cr_expect_eq(out[1234], 0.0f);
    cr_expect_eq(out[2000], 0.0f);
    cr_expect(fabsf(out[1000] - x[1000]) < 1e-7f);
    /* Through the front-end too: no NaN in the log-mel. */
    clasp_audio_frontend *fe;
    cr_assert_eq(clasp_audio_frontend_new(&c, &fe), CLASP_OK);
    float *mel = malloc(sizeof(float) * clasp_audio_frontend_numel(fe));
    clasp_audio_skip why;
    cr_expect_eq(clasp_audio_frontend_run(fe, b, nb, NULL, 0, 0, "nan", mel, NULL, &why), CLASP_OK);
    cr_expect(all_finite(mel, clasp_audio_frontend_numel(fe)));
    clasp_audio_frontend_free(fe);
    free(mel);
    free(b);
    free(x);
}

Test(audio, silent_and_shorter_than_one_frame) {
    clasp_audio_config c = small_config(8000, 0.5);
    c.mel.log_floor = 1e-10;
    c.mel.norm_mean = -5.0;
    c.mel.norm_std = 2.0;
    clasp_audio_frontend *fe;
    cr_assert_eq(clasp_audio_frontend_new(&c, &fe), CLASP_OK);
    size_t numel = clasp_audio_frontend_numel(fe);
    float *mel = malloc(sizeof(float) * numel);
    clasp_audio_skip why;
    /* Silence: every cell is exactly the floor, no -inf. */
    float zeros[4000] = {0};
    size_t nb;
    unsigned char *b = encode(SF_FORMAT_WAV | SF_FORMAT_PCM_16, 8000, 1, zeros, 4000, &nb);
    cr_assert_eq(clasp_audio_frontend_run(fe, b, nb, NULL, 0, 0, "silent", mel, NULL, &why),
                 CLASP_OK, "%s", clasp_last_error());
    float floor_v = (float)((log(1e-10) + 5.0) / 2.0);
    for (size_t i = 0; i < numel; i++)
        cr_assert_eq(mel[i], floor_v, "mel[%zu]=%g", i, (double)mel[i]);
    free(b);
    /* 10 samples (shorter than one 256-sample FFT frame): padded, finite. */
    float tiny[10];
    for (int i = 0; i < 10; i++) tiny[i] = 0.1f * (float)(i - 5);
    b = encode(SF_FORMAT_WAV | SF_FORMAT_FLOAT, 8000, 1, tiny, 10, &nb);
    clasp_audio_info info;
    cr_assert_eq(clasp_audio_frontend_run(fe, b, nb, NULL, 0, 0, "tiny", mel, &info, &why),
                 CLASP_OK, "%s", clasp_last_error());
    cr_expect(info.padded);
    cr_expect_eq(info.valid_samples, 10);
    cr_expect(all_finite(mel, numel));
    /* One frame at 48 kHz into 8 kHz: still something, padded. */
    free(b);
    b = encode(SF_FORMAT_WAV | SF_FORMAT_FLOAT, 48000, 1, tiny, 1, &nb);
    cr_assert_eq(clasp_audio_frontend_run(fe, b, nb, NULL, 0, 0, "one", mel, &info, &why), CLASP_OK,
                 "%s", clasp_last_error());
    cr_expect(all_finite(mel, numel));
    /* min_seconds turns short input into a counted skip. */
    free(b);
    b = encode(SF_FORMAT_WAV | SF_FORMAT_FLOAT, 8000, 1, tiny, 10, &nb);
    c.min_seconds = 0.1;
    float clip[4000];
    cr_expect_eq(clasp_audio_load_clip(b, nb, &c, -1.0, "short", clip, &info, &why),
                 CLASP_ERR_FORMAT);
    cr_expect_eq(why, CLASP_AUDIO_TOO_SHORT);
    free(b);
    free(mel);
    clasp_audio_frontend_free(fe);
}

/* ---- augmentation ------------------------------------------------------------------------- */

static clasp_audio_augment_config busy_augment(void) {
    clasp_audio_augment_config a = clasp_audio_augment_default_config();
    a.random_crop = true;
    a.gain_prob = 1.0, a.gain_db_min = -6.0, a.gain_db_max = 6.0;
    a.shift_prob = 1.0, a.shift_max_seconds = 0.2;
    a.noise_prob = 1.0, a.snr_db_min = 10.0, a.snr_db_max = 30.0;
    a.time_masks = 2, a.time_mask_max = 10;
    a.freq_masks = 2, a.freq_mask_max = 8, a.mask_value = -123.0;
    return a;
}

Test(audio, augmentation_is_deterministic_per_key_and_epoch) {
    const sf_count_t frames = 8000 * 3;
    float *x = sine(8000, 1, frames, 440.0, 0.5);
    for (sf_count_t i = 0; i < frames; i++) x[i] *= (float)(1.0 + (double)i / frames);
    size_t nb;
    unsigned char *b = encode(SF_FORMAT_WAV | SF_FORMAT_PCM_16, 8000, 1, x, frames, &nb);
    clasp_audio_config c = small_config(8000, 1.0);
    c.crop_mode = CLASP_AUDIO_CROP_RANDOM;
    clasp_audio_frontend *fe;
    cr_assert_eq(clasp_audio_frontend_new(&c, &fe), CLASP_OK);
    size_t n = clasp_audio_frontend_numel(fe);
    float *m1 = malloc(sizeof(float) * n), *m2 = malloc(sizeof(float) * n);
    float *m3 = malloc(sizeof(float) * n), *m4 = malloc(sizeof(float) * n);
    clasp_audio_augment_config a = busy_augment();
    clasp_audio_skip why;
    clasp_audio_info i1, i2;
    cr_assert_eq(clasp_audio_frontend_run(fe, b, nb, &a, 42, 3, "key-a", m1, &i1, &why), CLASP_OK);
    cr_assert_eq(clasp_audio_frontend_run(fe, b, nb, &a, 42, 3, "key-a", m2, &i2, &why), CLASP_OK);
    cr_expect_eq(memcmp(m1, m2, sizeof(float) * n), 0, "same key, same epoch must be identical");
    cr_expect_eq(i1.crop_offset, i2.crop_offset);
    cr_assert_eq(clasp_audio_frontend_run(fe, b, nb, &a, 42, 4, "key-a", m3, NULL, &why), CLASP_OK);
    cr_expect_neq(memcmp(m1, m3, sizeof(float) * n), 0, "another epoch must differ");
    cr_assert_eq(clasp_audio_frontend_run(fe, b, nb, &a, 42, 3, "key-b", m4, NULL, &why), CLASP_OK);
    cr_expect_neq(memcmp(m1, m4, sizeof(float) * n), 0, "another key must differ");
    /* A fresh front-end (another loader thread) gives the same bytes. */
    clasp_audio_frontend *fe2;
    cr_assert_eq(clasp_audio_frontend_new(&c, &fe2), CLASP_OK);
    cr_assert_eq(clasp_audio_frontend_run(fe2, b, nb, &a, 42, 3, "key-a", m2, NULL, &why),
                 CLASP_OK);
    cr_expect_eq(memcmp(m1, m2, sizeof(float) * n), 0);
    /* Masks happened and the rest is finite. */
    size_t masked = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert(isfinite(m1[i]));
        masked += m1[i] == -123.0f;
    }
    size_t n_frames = clasp_audio_clip_frames(&c);
    cr_expect(masked <= 2 * 10 * (size_t)c.mel.n_mels + 2 * 8 * n_frames);
    /* Evaluation (no augmentation) is the head crop, no change: equal to load + melspec. */
    cr_assert_eq(clasp_audio_frontend_run(fe, b, nb, NULL, 42, 3, "key-a", m3, NULL, &why),
                 CLASP_OK);
    float *clip = malloc(sizeof(float) * clasp_audio_clip_samples(&c));
    cr_assert_eq(clasp_audio_load_clip(b, nb, &c, -1.0, "key-a", clip, NULL, &why), CLASP_OK);
    clasp_melspec *ms;
    cr_assert_eq(clasp_melspec_new(&c.mel, &ms), CLASP_OK);
    cr_assert_eq(clasp_melspec_compute(ms, clip, clasp_audio_clip_samples(&c), m4), CLASP_OK);
    cr_expect_eq(memcmp(m3, m4, sizeof(float) * n), 0);
    clasp_melspec_free(ms);
    free(clip);
    clasp_audio_frontend_free(fe2);
    clasp_audio_frontend_free(fe);
    free(m1);
    free(m2);
    free(m3);
    free(m4);
    free(b);
    free(x);
}

Test(audio, wave_augment_effects) {
    const size_t n = 16000;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) x[i] = (float)sin(0.05 * (double)i) * 0.5f;
    /* Gain only: a constant factor within the range. */
    clasp_audio_augment_config a = clasp_audio_augment_default_config();
    a.gain_prob = 1.0;
    a.gain_db_min = 3.0;
    a.gain_db_max = 6.0;
    memcpy(y, x, sizeof(float) * n);
    cr_assert_eq(clasp_audio_augment_wave(y, n, 8000, &a, 1, 0, "g"), CLASP_OK);
    double g = y[10] / x[10];
    cr_expect(g >= pow(10, 3.0 / 20) - 1e-6 && g <= pow(10, 6.0 / 20) + 1e-6, "gain %g", g);
    for (size_t i = 1; i < n; i += 97) cr_expect(fabs((double)y[i] - g * (double)x[i]) < 1e-5);
    /* Circular shift: a rotation (find it). */
    a = clasp_audio_augment_default_config();
    a.shift_prob = 1.0;
    a.shift_max_seconds = 0.5;
    memcpy(y, x, sizeof(float) * n);
    cr_assert_eq(clasp_audio_augment_wave(y, n, 8000, &a, 1, 0, "s"), CLASP_OK);
    long s = -1;
    for (long k = 0; k < (long)n && s < 0; k++) {
        bool ok = true;
        for (size_t i = 0; i < n && ok; i += 7) ok = y[(i + (size_t)k) % n] == x[i];
        if (ok) s = k;
    }
    cr_expect(s >= 0, "circular shift is not a rotation");
    /* Zero shift: same shift amount (same stream), vacated part zero. */
    a.shift_mode = CLASP_AUDIO_SHIFT_ZERO;
    memcpy(y, x, sizeof(float) * n);
    cr_assert_eq(clasp_audio_augment_wave(y, n, 8000, &a, 1, 0, "s"), CLASP_OK);
    if (s > 0 && s < (long)n / 2) { /* delayed by s */
        for (long i = 0; i < s; i++) cr_assert_eq(y[i], 0.0f);
        cr_expect_eq(y[s + 5], x[5]);
    } else if (s >= (long)n / 2) { /* advanced by n - s */
        size_t k = n - (size_t)s;
        for (size_t i = n - k; i < n; i++) cr_assert_eq(y[i], 0.0f);
        cr_expect_eq(y[5], x[5 + k]);
    }
    /* Noise at an SNR: measured SNR within the range (+-0.5 dB sampling slack). */
    a = clasp_audio_augment_default_config();
    a.noise_prob = 1.0;
    a.snr_db_min = 10.0;
    a.snr_db_max = 20.0;
    memcpy(y, x, sizeof(float) * n);
    cr_assert_eq(clasp_audio_augment_wave(y, n, 8000, &a, 1, 0, "n"), CLASP_OK);
    double ps = 0, pn = 0;
    for (size_t i = 0; i < n; i++) {
        ps += (double)x[i] * (double)x[i];
        pn += ((double)y[i] - (double)x[i]) * ((double)y[i] - (double)x[i]);
    }
    double snr = 10 * log10(ps / pn);
    cr_expect(snr > 9.5 && snr < 20.5, "snr %g", snr);
    /* Silence gets no noise (no division by zero). */
    memset(y, 0, sizeof(float) * n);
    cr_assert_eq(clasp_audio_augment_wave(y, n, 8000, &a, 1, 0, "n"), CLASP_OK);
    for (size_t i = 0; i < n; i++) cr_assert_eq(y[i], 0.0f);
    /* Probability 0 changes nothing. */
    a.noise_prob = 0.0;
    memcpy(y, x, sizeof(float) * n);
    cr_assert_eq(clasp_audio_augment_wave(y, n, 8000, &a, 1, 0, "n"), CLASP_OK);
    cr_expect_eq(memcmp(x, y, sizeof(float) * n), 0);
    free(x);
    free(y);
}

Test(audio, spec_augment_masks_bands_and_frames) {
    const int n_mels = 32;
    const size_t n_frames = 50;
    float *m = malloc(sizeof(float) * n_mels * n_frames);
    for (size_t i = 0; i < n_mels * n_frames; i++) m[i] = 1.0f;
    clasp_audio_augment_config a = clasp_audio_augment_default_config();
    a.freq_masks = 1;
    a.freq_mask_max = 8;
    a.mask_value = 0.0;
    /* Find a key whose mask is not empty, then check it is whole rows. */
    int rows = 0;
    for (int k = 0; k < 20 && rows == 0; k++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        for (size_t i = 0; i < n_mels * n_frames; i++) m[i] = 1.0f;
        cr_assert_eq(clasp_audio_augment_spec(m, n_mels, n_frames, &a, 7, 0, key), CLASP_OK);
        for (int f = 0; f < n_mels; f++) {
            size_t z = 0;
            for (size_t t = 0; t < n_frames; t++) z += m[f * n_frames + t] == 0.0f;
            cr_assert(z == 0 || z == n_frames, "partial frequency row");
            rows += z == n_frames;
        }
    }
    cr_expect(rows >= 1 && rows <= 8, "rows masked %d", rows);
    a.freq_masks = 0;
    a.time_masks = 1;
    a.time_mask_max = 200; /* wider than the clip: clamped */
    for (size_t i = 0; i < n_mels * n_frames; i++) m[i] = 1.0f;
    cr_assert_eq(clasp_audio_augment_spec(m, n_mels, n_frames, &a, 7, 0, "t"), CLASP_OK);
    for (size_t t = 0; t < n_frames; t++) {
        size_t z = 0;
        for (int f = 0; f < n_mels; f++) z += m[f * n_frames + t] == 0.0f;
        cr_assert(z == 0 || z == (size_t)n_mels, "partial time column");
    }
    free(m);
}

/* ---- config ------------------------------------------------------------------------------- */

Test(audio, config_json_round_trip_and_errors) {
    clasp_audio_config c = small_config(8000, 2.0);
    c.mel.mel_scale = CLASP_MEL_SLANEY;
    c.mel.mel_norm = CLASP_MEL_NORM_SLANEY;
    c.mel.log = CLASP_MEL_LOG_DB;
    c.mel.n_mels = 40;
    c.pad_mode = CLASP_AUDIO_PAD_REPEATPAD;
    c.nonfinite_to_zero = true;
    c.mel.norm_mean = -4.25;
    c.mel.norm_std = 4.5;
    cJSON *j = clasp_audio_config_to_json(&c);
    cr_assert(j);
    clasp_audio_config d;
    cr_assert_eq(clasp_audio_config_from_json(j, "x.json", "audio", &d), CLASP_OK, "%s",
                 clasp_last_error());
    cr_expect_eq(d.mel.sample_rate, 8000);
    cr_expect_eq(d.mel.n_fft, c.mel.n_fft);
    cr_expect_eq(d.mel.win_length, c.mel.win_length);
    cr_expect_eq(d.mel.hop_length, c.mel.hop_length);
    cr_expect_eq(d.mel.n_mels, 40);
    cr_expect_eq(d.mel.mel_scale, CLASP_MEL_SLANEY);
    cr_expect_eq(d.mel.mel_norm, CLASP_MEL_NORM_SLANEY);
    cr_expect_eq(d.mel.log, CLASP_MEL_LOG_DB);
    cr_expect_eq(d.pad_mode, CLASP_AUDIO_PAD_REPEATPAD);
    cr_expect_eq(d.nonfinite_to_zero, true);
    cr_expect_eq(d.mel.norm_mean, -4.25);
    cr_expect_eq(d.clip_seconds, 2.0);
    cr_expect_eq(clasp_audio_clip_frames(&d), clasp_audio_clip_frames(&c));
    cJSON_ReplaceItemInObject(j, "mel_scale", cJSON_CreateString("bark"));
    cr_expect_eq(clasp_audio_config_from_json(j, "x.json", "audio", &d), CLASP_ERR_CONFIG);
    cr_expect(strstr(clasp_last_error(), "mel_scale"), "%s", clasp_last_error());
    cJSON_Delete(j);
    /* A sparse object: defaults fill in, fmax follows a lower sample rate. */
    cJSON *s = cJSON_Parse("{\"sample_rate\": 8000, \"n_fft\": 256, \"hop_length\": 80}");
    cr_assert_eq(clasp_audio_config_from_json(s, "y.json", "audio", &d), CLASP_OK, "%s",
                 clasp_last_error());
    cr_expect_eq(d.mel.win_length, 256);
    cr_expect_eq(d.mel.fmax, 4000.0);
    cJSON_Delete(s);
    /* Configs that cannot work are refused up front, naming the field. */
    clasp_audio_config bad = small_config(8000, 0.01); /* 80 samples < n_fft/2 for reflect */
    cr_expect_eq(clasp_audio_config_check(&bad), CLASP_ERR_CONFIG);
    cr_expect(strstr(clasp_last_error(), "reflect"), "%s", clasp_last_error());
    bad = small_config(8000, 1.0);
    bad.resample_quality = 99;
    cr_expect_eq(clasp_audio_config_check(&bad), CLASP_ERR_CONFIG);
    clasp_audio_frontend *fe = NULL;
    cr_expect_eq(clasp_audio_frontend_new(&bad, &fe), CLASP_ERR_CONFIG);
    cr_expect_null(fe);
    cr_expect_eq(strcmp(clasp_audio_skip_name(CLASP_AUDIO_NAN), "nan"), 0);
    cr_expect_eq(strcmp(clasp_audio_skip_name(CLASP_AUDIO_N_SKIPS), "?"), 0);
}
