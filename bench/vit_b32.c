/* bench/vit_b32.c: the CPU cost of clasp's training data path alone, for bench/vit_b32.sh: the
 * loader of `clasp train --image-augment default` (tar read, shuffle buffer, libjpeg-turbo
 * decode, random-resized-crop + flip to the model's size, normalisation, tokenizer) over the
 * given shards, with one decode thread and no model. Prints the process CPU seconds (user +
 * system, every thread) per sample; bench/vit_b32.sh multiplies it by the training run's
 * samples/s to give the share of a core that decoding takes during training.
 *
 * Usage: bench_vit_b32 CONFIG SPEC [SAMPLES] [BATCH]     (defaults 2048, 64)
 * Prints one JSON line: {"samples", "cpu_s", "wall_s", "cpu_ms_per_sample", "samples_per_s"}.
 * The first batch (thread start, first shard open) is left out of the figures. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "bench/bench.h"
#include "modalities/augment.h"
#include "modalities/preprocess.h"
#include "pipeline/data.h"

static double cpu_seconds_(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + 1e-6 * (double)u.ru_utime.tv_usec +
           (double)u.ru_stime.tv_sec + 1e-6 * (double)u.ru_stime.tv_usec;
}

static int fail_(const char *what) {
    fprintf(stderr, "bench_vit_b32: %s: %s\n", what, clasp_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: %s CONFIG SPEC [SAMPLES] [BATCH]\n", argv[0]);
        return 2;
    }
    const long samples = argc > 3 ? atol(argv[3]) : 2048;
    const int batch = argc > 4 ? atoi(argv[4]) : 64;
    if (samples < 1 || batch < 1) {
        fprintf(stderr, "bench_vit_b32: SAMPLES and BATCH must be positive\n");
        return 2;
    }
    clasp_preprocess pre;
    if (clasp_preprocess_load(argv[1], &pre) != CLASP_OK) return fail_(argv[1]);
    clasp_image_augment_config aug = clasp_image_augment_default_config();
    clasp_data_options o = clasp_data_default_options();
    o.spec = argv[2];
    o.batch_size = batch;
    o.workers = 1;
    o.train = true;
    o.image_augment = &aug;
    clasp_data *d = NULL;
    if (clasp_data_open(&o, &pre, &d) != CLASP_OK) {
        clasp_preprocess_free(&pre);
        return fail_(argv[2]);
    }
    const clasp_batch *b = NULL;
    int rc = 0;
    if (clasp_data_next(d, &b) != CLASP_OK) rc = fail_("first batch");
    const double c0 = cpu_seconds_(), t0 = bench_now(CLOCK_MONOTONIC);
    long n = 0;
    while (rc == 0 && n < samples) {
        if (clasp_data_next(d, &b) != CLASP_OK) rc = fail_("batch");
        n += batch;
    }
    const double cpu = cpu_seconds_() - c0, wall = bench_now(CLOCK_MONOTONIC) - t0;
    if (rc == 0)
        printf("{\"samples\": %ld, \"cpu_s\": %.4f, \"wall_s\": %.4f, \"cpu_ms_per_sample\": %.4f, "
               "\"samples_per_s\": %.2f}\n",
               n, cpu, wall, 1e3 * cpu / (double)n, (double)n / wall);
    clasp_data_close(d);
    clasp_preprocess_free(&pre);
    return rc;
}
