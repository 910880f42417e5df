/* bench/audio.c: audio front-end throughput on one thread: clips/s through decode (libsndfile,
 * from memory) + resample (libsamplerate) + log-mel (kissfft), for ~2 s clips:
 *   wav8k->8k     8 kHz PCM16 WAV -> 8 kHz model, 64 mels (no resampling)
 *   wav8k->16k    8 kHz PCM16 WAV -> 16 kHz model, 64 mels (SINC_FASTEST upsampling)
 *   flac44k->16k  44.1 kHz stereo FLAC -> 16 kHz model, 64 mels
 *   mel only      the log-mel of a 2 s 8 kHz clip (no decoding)
 * Usage: bench_audio [seconds_per_case]   (default 2)
 * Prints one line per case: name, clips, seconds, clips/s, and audio seconds per wall second.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sndfile.h>

#include "modalities/audio.h"
#include "tests/fixtures.h"

/* A speech-like test signal (harmonics with a wandering pitch + noise), encoded. */
static unsigned char *make_clip(int format, int rate, int channels, double seconds, size_t *n) {
    sf_count_t frames = (sf_count_t)(rate * seconds);
    float *x = malloc(sizeof(float) * (size_t)(frames * channels));
    if (!x) return NULL;
    unsigned s = 12345;
    double phase = 0.0;
    for (sf_count_t i = 0; i < frames; i++) {
        double t = (double)i / rate, f0 = 120.0 + 40.0 * sin(2 * 3.14159265 * 3.0 * t);
        phase += 2 * 3.14159265 * f0 / rate;
        double v = 0.0;
        for (int h = 1; h <= 8; h++) v += sin(h * phase) / h;
        s = s * 1103515245u + 12345u;
        v = 0.2 * v + 0.01 * ((double)(s >> 16) / 32768.0 - 1.0);
        for (int c = 0; c < channels; c++) x[i * channels + c] = (float)v;
    }
    unsigned char *b = fx_encode_audio(format, rate, channels, x, frames, n);
    free(x);
    return b;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static clasp_audio_config config_for(int rate) {
    clasp_audio_config c = clasp_audio_default_config();
    c.clip_seconds = 2.0;
    c.crop_mode = CLASP_AUDIO_CROP_HEAD;
    c.mel.sample_rate = rate;
    c.mel.n_mels = 64;
    c.mel.fmax = rate / 2.0;
    if (rate == 8000) {
        c.mel.n_fft = 256;
        c.mel.win_length = 200;
        c.mel.hop_length = 80;
    }
    return c;
}

static int run_case(const char *name, const unsigned char *bytes, size_t nb, int model_rate,
                    double budget) {
    clasp_audio_config c = config_for(model_rate);
    clasp_audio_frontend *fe;
    if (clasp_audio_frontend_new(&c, &fe)) {
        fprintf(stderr, "%s: %s\n", name, clasp_last_error());
        return 1;
    }
    float *mel = malloc(sizeof(float) * clasp_audio_frontend_numel(fe));
    float *clip = malloc(sizeof(float) * clasp_audio_clip_samples(&c));
    clasp_melspec *ms = NULL;
    if (!mel || !clip || clasp_melspec_new(&c.mel, &ms)) return 1;
    memset(clip, 0, sizeof(float) * clasp_audio_clip_samples(&c));
    for (size_t i = 0; i < clasp_audio_clip_samples(&c); i++) clip[i] = (float)sin(0.1 * (double)i);
    long n = 0;
    double t0 = now(), t;
    do {
        clasp_audio_skip why;
        clasp_status s =
            bytes ? clasp_audio_frontend_run(fe, bytes, nb, NULL, 0, 0, name, mel, NULL, &why)
                  : clasp_melspec_compute(ms, clip, clasp_audio_clip_samples(&c), mel);
        if (s) {
            fprintf(stderr, "%s: %s\n", name, clasp_last_error());
            return 1;
        }
        n++;
        t = now() - t0;
    } while (t < budget);
    printf("%-14s clips %6ld  %.2f s  %9.1f clips/s  %7.1fx realtime\n", name, n, t, n / t,
           n * c.clip_seconds / t);
    clasp_melspec_free(ms);
    free(clip);
    free(mel);
    clasp_audio_frontend_free(fe);
    return 0;
}

int main(int argc, char **argv) {
    double budget = argc > 1 ? atof(argv[1]) : 2.0;
    size_t n1, n2;
    unsigned char *wav = make_clip(SF_FORMAT_WAV | SF_FORMAT_PCM_16, 8000, 1, 2.0, &n1);
    unsigned char *flac = make_clip(SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 44100, 2, 2.0, &n2);
    if (!wav || !flac) return 1;
    printf("audio front-end, 1 thread, 2 s clips, 64 mels (decode + resample + log-mel)\n");
    int rc = run_case("wav8k->8k", wav, n1, 8000, budget);
    rc |= run_case("wav8k->16k", wav, n1, 16000, budget);
    rc |= run_case("flac44k->16k", flac, n2, 16000, budget);
    rc |= run_case("mel only 8k", NULL, 0, 8000, budget);
    free(wav);
    free(flac);
    return rc;
}
