/* bench/loader.c: loader throughput (samples/s) on synthetic WebDataset shards:
 *   fmnist   28x28 gray PNG + caption          -> (1, 28, 28) image, 32 tokens
 *   rgba64   64x64 RGBA PNG + caption          -> (3, 64, 64) image, 32 tokens
 *   wav8k    8 kHz mono 16-bit WAV, 2 s + caption -> (64 mels, n_frames) log-mel, 32 tokens
 * each with 1 and 2 decode threads (training mode: shuffle buffer 1000, batch 64), plus the raw
 * tar read rate of the same shards (libarchive, payloads read, no decoding) as the ceiling.
 * Then JPEG decode + preprocess time per image (clasp_image_load, one thread) for 256x192 and
 * 1000x750 RGB JPEGs (quality 90, 4:2:0) to 224 x 224, full decode vs DCT-scaled decode
 * ("jpeg_dct_scaling"), with each filter ("interp").
 * Usage: bench_loader [n_fmnist] [n_rgba] [n_wav] [n_jpeg]   (defaults 20000 5000 1000 200)
 * Shards are written under $TMPDIR (or /tmp) and removed at the end. */
#include <archive.h>
#include <archive_entry.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "core/rng.h"
#include "pipeline/loader.h"
#include "pipeline/tar_reader.h"

static double now_(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void add_member_(struct archive *a, const char *name, const void *d, size_t n) {
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_mode(e, AE_IFREG | 0644);
    archive_entry_set_size(e, (la_int64_t)n);
    archive_write_header(a, e);
    archive_write_data(a, d, n);
    archive_entry_free(e);
}

static const char *captions_[10] = {"a photo of a t-shirt",  "a photo of trousers",
                                    "a photo of a pullover", "a photo of a dress",
                                    "a photo of a coat",     "a photo of a sandal",
                                    "a photo of a shirt",    "a photo of a sneaker",
                                    "a photo of a bag",      "a photo of an ankle boot"};

/* Encoded WAV of 2 s 8 kHz mono PCM16 (a tone with noise), via a temporary file. */
static uint8_t *wav_(const char *dir, unsigned seed, size_t *n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tmp.wav", dir);
    SF_INFO info = {.samplerate = 8000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
    SNDFILE *f = sf_open(path, SFM_WRITE, &info);
    if (!f) return NULL;
    float x[16000];
    clasp_rng r;
    clasp_rng_init(&r, seed, CLASP_RNG_TEST, 0, 0);
    for (int i = 0; i < 16000; i++)
        x[i] = 0.3f * sinf(2.0f * 3.14159265f * (float)(200 + seed % 800) * (float)i / 8000.0f) +
               0.05f * (clasp_rng_uniform(&r) - 0.5f);
    sf_writef_float(f, x, 16000);
    sf_close(f);
    FILE *fp = fopen(path, "rb");
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz);
    *n = fread(b, 1, (size_t)sz, fp);
    fclose(fp);
    unlink(path);
    return b;
}

/* Writes n samples of a kind into 4 shards dir/kind-{0..3}.tar. */
static void write_shards_(const char *dir, const char *kind, int n) {
    int per = (n + 3) / 4;
    clasp_rng r;
    clasp_rng_init(&r, 7, CLASP_RNG_TEST, 1, 0);
    for (int s = 0; s < 4; s++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s-%d.tar", dir, kind, s);
        struct archive *a = archive_write_new();
        archive_write_set_format_pax_restricted(a);
        archive_write_open_filename(a, path);
        for (int i = s * per; i < n && i < (s + 1) * per; i++) {
            char name[64];
            uint8_t *enc = NULL;
            size_t ne = 0;
            if (!strcmp(kind, "fmnist") || !strcmp(kind, "rgba64")) {
                int w = kind[0] == 'f' ? 28 : 64, c = kind[0] == 'f' ? 1 : 4;
                uint8_t *px = malloc((size_t)(w * w * c));
                for (int k = 0; k < w * w * c; k++) px[k] = (uint8_t)(clasp_rng_u32(&r) >> 24);
                clasp_image_encode_png(px, w, w, c, &enc, &ne);
                free(px);
                snprintf(name, sizeof name, "%06d.png", i);
            } else {
                enc = wav_(dir, (unsigned)i, &ne);
                snprintf(name, sizeof name, "%06d.wav", i);
            }
            add_member_(a, name, enc, ne);
            free(enc);
            snprintf(name, sizeof name, "%06d.txt", i);
            add_member_(a, name, captions_[i % 10], strlen(captions_[i % 10]));
        }
        archive_write_close(a);
        archive_write_free(a);
    }
}

static void raw_rate_(const char *dir, const char *kind) {
    double t0 = now_();
    size_t n = 0, bytes = 0;
    for (int s = 0; s < 4; s++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s-%d.tar", dir, kind, s);
        clasp_tar_reader *r;
        if (clasp_tar_open(path, NULL, 0, &r) != CLASP_OK) continue;
        clasp_sample smp = {0};
        bool got;
        while (clasp_tar_next(r, true, &smp, &got) == CLASP_OK && got) {
            n++;
            for (size_t i = 0; i < smp.n_fields; i++) bytes += smp.fields[i].n;
        }
        clasp_sample_clear(&smp);
        clasp_tar_close(r);
    }
    double dt = now_() - t0;
    printf("%-8s raw tar read       %7zu samples %7.3f s %10.0f samples/s %7.1f MB/s\n", kind, n,
           dt, (double)n / dt, (double)bytes / dt / 1e6);
}

static void loader_rate_(const char *dir, const char *kind, int threads) {
    char spec[600];
    snprintf(spec, sizeof spec, "%s/%s-{0..3}.tar", dir, kind);
    clasp_loader_config c = clasp_loader_default_config();
    c.spec = spec;
    c.seed = 1;
    c.n_threads = threads;
    c.batch_size = 64;
    c.shuffle_buffer = 1000;
    c.drop_last = false;
    c.context_length = 32;
    c.quiet = true;
    if (!strcmp(kind, "fmnist")) {
        c.image.channels = 1;
        c.image.size = 28;
        c.image.mean[0] = 0.5f;
        c.image.std[0] = 0.5f;
    } else if (!strcmp(kind, "rgba64")) {
        c.image.channels = 3;
        c.image.size = 64;
    } else {
        c.required = CLASP_NEED_AUDIO | CLASP_NEED_TEXT;
        c.audio.clip_seconds = 2.0;
        c.audio.mel.sample_rate = 8000;
        c.audio.mel.n_fft = 256;
        c.audio.mel.win_length = 200;
        c.audio.mel.hop_length = 80;
        c.audio.mel.n_mels = 64;
        c.audio.mel.fmax = 4000;
    }
    clasp_loader *L;
    if (clasp_loader_open(&c, NULL, &L) != CLASP_OK) {
        printf("%s: %s\n", kind, clasp_last_error());
        return;
    }
    double t0 = now_();
    size_t n = 0;
    for (;;) {
        const clasp_batch *b;
        bool end;
        if (clasp_loader_next(L, &b, &end) != CLASP_OK) {
            printf("%s: %s\n", kind, clasp_last_error());
            break;
        }
        if (end) break;
        n += b->n;
    }
    double dt = now_() - t0;
    clasp_data_stats *st = clasp_loader_stats(L);
    printf("%-8s loader %d thread%s   %7zu samples %7.3f s %10.0f samples/s (consumer waited "
           "%.0f%%, %llu skipped)\n",
           kind, threads, threads > 1 ? "s" : " ", n, dt, (double)n / dt,
           100.0 * st->wait_seconds / dt, (unsigned long long)clasp_data_stats_total_skipped(st));
    clasp_loader_close(L);
}

/* A w x h RGB JPEG (quality 90, 4:2:0, encoded by libjpeg-turbo) of a photo-like picture:
 * gradients, noise and a few hard-edged discs. malloc'd, *n bytes; NULL on failure. */
static uint8_t *jpeg_(int w, int h, size_t *n) {
    uint8_t *px = malloc((size_t)w * (size_t)h * 3);
    clasp_rng r;
    clasp_rng_init(&r, 11, CLASP_RNG_TEST, (uint64_t)w, 0);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float v[3] = {128.0f + 100.0f * sinf(5.0f * (float)x / (float)w),
                          128.0f + 100.0f * cosf(4.0f * (float)y / (float)h),
                          255.0f * (float)(x + y) / (float)(w + h)};
            for (int k = 0; k < 4; k++) { /* discs of radius h / 8 */
                const float cx = (float)w * (0.2f + 0.2f * (float)k), cy = (float)h * 0.5f;
                const float dx = (float)x - cx, dy = (float)y - cy;
                if (dx * dx + dy * dy < (float)(h * h) / 64.0f) v[k % 3] = 40.0f * (float)k;
            }
            for (int c = 0; c < 3; c++) {
                const float f = v[c] + 8.0f * (clasp_rng_uniform(&r) - 0.5f);
                px[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)c] =
                    (uint8_t)(f < 0.0f     ? 0.0f
                              : f > 255.0f ? 255.0f
                                           : f);
            }
        }
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long size = 0;
    const int ok = tj && tjCompress2(tj, px, w, 0, h, TJPF_RGB, &jpg, &size, TJSAMP_420, 90,
                                     TJFLAG_ACCURATEDCT) == 0;
    free(px);
    if (tj) tjDestroy(tj);
    if (!ok) return NULL;
    uint8_t *out = malloc(size);
    memcpy(out, jpg, size);
    tjFree(jpg);
    *n = size;
    return out;
}

/* Milliseconds per image of clasp_image_load (decode + resize + crop + normalise) to 224. */
static void jpeg_rate_(int w, int h, int n) {
    size_t nb = 0;
    uint8_t *jpg = jpeg_(w, h, &nb);
    if (!jpg) {
        printf("jpeg %dx%d: cannot encode\n", w, h);
        return;
    }
    float *x = malloc((size_t)3 * 224 * 224 * sizeof(float));
    for (int interp = 0; interp < 2; interp++)
        for (int dct = 0; dct < 2; dct++) {
            clasp_image_config cfg = clasp_image_default_config();
            cfg.interp = (clasp_image_interp)interp;
            cfg.jpeg_dct_scaling = dct;
            double t0 = now_();
            int bad = 0;
            for (int i = 0; i < n; i++) bad += clasp_image_load(jpg, nb, &cfg, x) != CLASP_OK;
            double dt = now_() - t0;
            printf("jpeg %4dx%-4d (%6zu B) -> 224, %-10s %-11s %7.3f ms/image (%d failed)\n", w, h,
                   nb, clasp_image_interp_name(cfg.interp), dct ? "DCT-scaled" : "full decode",
                   1e3 * dt / n, bad);
        }
    free(x);
    free(jpg);
}

int main(int argc, char **argv) {
    int counts[4] = {20000, 5000, 1000, 200};
    for (int i = 1; i < argc && i <= 4; i++) counts[i - 1] = atoi(argv[i]);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char dir[512];
    snprintf(dir, sizeof dir, "%s/clasp-bench-loader-%ld", tmp, (long)getpid());
    mkdir(dir, 0755);
    const char *kinds[3] = {"fmnist", "rgba64", "wav8k"};
    printf("bench_loader: %d / %d / %d samples, 4 shards each, shards in %s\n", counts[0],
           counts[1], counts[2], dir);
    for (int k = 0; k < 3; k++) {
        if (counts[k] <= 0) continue;
        write_shards_(dir, kinds[k], counts[k]);
        raw_rate_(dir, kinds[k]);
        loader_rate_(dir, kinds[k], 1);
        loader_rate_(dir, kinds[k], 2);
        for (int s = 0; s < 4; s++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s-%d.tar", dir, kinds[k], s);
            unlink(path);
        }
    }
    rmdir(dir);
    if (counts[3] > 0) {
        jpeg_rate_(256, 192, counts[3]);
        jpeg_rate_(1000, 750, counts[3]);
    }
    return 0;
}
