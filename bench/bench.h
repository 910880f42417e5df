/* bench/bench.h: what the precision benchmarks (bench_matmul_peak, bench_layers) share: their
 * command line, clocks, aligned pseudo-random buffers and the machine's load average. Header-only
 * (static inline): every bench/<name>.c is its own program (bench/CMakeLists.txt). */
#ifndef CLASP_BENCH_BENCH_H
#define CLASP_BENCH_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/compute.h"

/* Seconds on clock c (CLOCK_MONOTONIC for wall time). */
static inline double bench_now(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* qsort comparator for doubles, ascending */
static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The flags: --quick, --cpu-time (only where cpu_time_ok) and --precision fp32|bf16. */
typedef struct bench_args {
    int quick, cpu_time;
    int only; /* -1: every precision this build computes; else the clasp_precision asked for */
} bench_args;

/* Parses argv into *a; on a bad or unknown flag prints the usage and returns 0. */
static inline int bench_parse_args(bench_args *a, const char *prog, int cpu_time_ok, int argc,
                                   char **argv) {
    *a = (bench_args){.only = -1};
    for (int i = 1; i < argc; i++) {
        clasp_precision p;
        if (strcmp(argv[i], "--quick") == 0) {
            a->quick = 1;
        } else if (cpu_time_ok && strcmp(argv[i], "--cpu-time") == 0) {
            a->cpu_time = 1;
        } else if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc) {
            if (clasp_precision_parse(argv[++i], &p) != CLASP_OK) {
                fprintf(stderr, "%s: %s\n", prog, clasp_last_error());
                return 0;
            }
            a->only = (int)p;
        } else {
            fprintf(stderr, "usage: %s [--quick]%s [--precision fp32|bf16]\n", prog,
                    cpu_time_ok ? " [--cpu-time]" : "");
            return 0;
        }
    }
    return 1;
}

/* n floats, 64-byte aligned, uniform in scale * [-0.5, 0.5) from an LCG seeded with seed;
 * exits on out of memory (a benchmark's main owns the process). Release with free(). */
static inline float *bench_buf(size_t n, unsigned seed, float scale) {
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, (n ? n : 1) * sizeof(float)) != 0 || !p) {
        fprintf(stderr, "bench: out of memory (%zu floats)\n", n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = scale * ((float)((seed >> 8) & 0xFFFF) / 65536.0f - 0.5f);
    }
    return p;
}

/* Prints "# load average <when>: 1 5 15" from /proc/loadavg: the machine may be shared. */
static inline void bench_print_load(const char *when) {
    char line[128] = "unknown";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(line, sizeof line, f)) strcpy(line, "unknown");
        fclose(f);
    }
    char *sp = strchr(line, ' ');
    for (int i = 0; sp && i < 2; i++) sp = strchr(sp + 1, ' ');
    if (sp) *sp = '\0';
    line[strcspn(line, "\n")] = '\0';
    printf("# load average %s: %s\n", when, line);
}

#endif
