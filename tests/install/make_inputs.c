/* make_inputs.c: the models and inputs of the install tests (tests/install_test.sh, the Python
 * tests): random-weight exports and a few input files, all made with tests/fixtures.
 *
 *     make_inputs DIR
 *
 * DIR/image   fmnist-small export (image-text; seed 3)
 * DIR/audio   speech-small export (audio-text; seed 5)
 * DIR/in/     a.pgm (28 x 28 gray), b.ppm (37 x 23 RGB): PNM so a numpy-only reader gets the
 *             pixels; c.png (RGBA, 20 x 30); a.wav (8 kHz, 1.3 s), b.wav (16 kHz, 4.2 s): 16-bit
 *             mono; texts.txt (one text per line)
 * Exit 0, or 1 with the reason on stderr. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <sndfile.h>

#include "core/status.h"
#include "tests/fixtures.h"

static bool pnm_(const char *dir, const char *name, int w, int h, int c, unsigned seed) {
    size_t n;
    uint8_t *b = fx_pnm(w, h, c, seed, &n);
    bool ok = b && fx_put(dir, name, b, n);
    free(b);
    return ok;
}

static bool wav_(const char *dir, const char *name, int rate, double seconds, double hz) {
    int64_t frames = (int64_t)(seconds * rate);
    float *x = malloc((size_t)frames * sizeof *x);
    if (!x) return false;
    for (int64_t i = 0; i < frames; i++) /* a chirp with a little of a second tone */
        x[i] = (float)(0.5 * sin(2 * M_PI * hz * (double)i / rate * (1 + (double)i / frames)) +
                       0.1 * sin(2 * M_PI * 3.1 * hz * (double)i / rate));
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    bool ok = fx_write_audio(path, SF_FORMAT_WAV | SF_FORMAT_PCM_16, rate, 1, x, frames);
    free(x);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_inputs DIR\n");
        return 2;
    }
    char img[4200], aud[4200], in[4200], cfg[4200], cfg2[4200];
    snprintf(img, sizeof img, "%s/image", argv[1]);
    snprintf(aud, sizeof aud, "%s/audio", argv[1]);
    snprintf(in, sizeof in, "%s/in", argv[1]);
    snprintf(cfg, sizeof cfg, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    snprintf(cfg2, sizeof cfg2, "%s/configs/speech-small.json", CLASP_SOURCE_DIR);
    mkdir(argv[1], 0777);
    if (mkdir(in, 0777) != 0) {
        fprintf(stderr, "make_inputs: cannot create %s (it must not exist)\n", in);
        return 1;
    }
    uint8_t *rgba = fx_random_pixels(20, 30, 4, 7);
    char png[4300];
    snprintf(png, sizeof png, "%s/c.png", in);
    bool ok =
        fx_export_model(cfg, NULL, img, 3) && fx_export_model(cfg2, NULL, aud, 5) &&
        pnm_(in, "a.pgm", 28, 28, 1, 11) && pnm_(in, "b.ppm", 37, 23, 3, 12) && rgba &&
        fx_write_png(png, rgba, 20, 30, 4) && wav_(in, "a.wav", 8000, 1.3, 440) &&
        wav_(in, "b.wav", 16000, 4.2, 300) &&
        fx_put(in, "texts.txt", "a photo of a bag\nan ankle boot\n\xc3\xa9t\xc3\xa9 sandal\n", 44);
    free(rgba);
    if (!ok) fprintf(stderr, "make_inputs: %s\n", clasp_last_error());
    return ok ? 0 : 1;
}
