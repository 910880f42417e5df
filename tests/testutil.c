/* testutil.c: tensor comparison and paths for tests. */
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef CLASP_SOURCE_DIR
#define CLASP_SOURCE_DIR "."
#endif
#ifndef CLASP_BINARY_DIR
#define CLASP_BINARY_DIR "."
#endif

static bool check_(const char *name, size_t n, double atol, double rtol, const float *gf,
                   const float *wf, const double *gd, const double *wd) {
    size_t first_bad = (size_t)-1, nbad = 0;
    double max_abs = 0.0, max_rel = 0.0;
    for (size_t i = 0; i < n; i++) {
        double g = gf ? (double)gf[i] : gd[i];
        double w = wf ? (double)wf[i] : wd[i];
        double d = fabs(g - w);
        if (!(d <= atol + rtol * fabs(w))) { /* also catches NaN */
            if (first_bad == (size_t)-1) first_bad = i;
            nbad++;
        }
        if (d > max_abs || isnan(d)) max_abs = d;
        double rel = d / (fabs(w) > 1e-12 ? fabs(w) : 1e-12);
        if (fabs(w) > atol && rel > max_rel) max_rel = rel;
    }
    bool ok = nbad == 0;
    if (!ok || getenv("CLASP_TEST_VERBOSE")) {
        fprintf(stderr, "%s %-40s n=%zu max_abs=%.3e max_rel=%.3e", ok ? "OK  " : "FAIL", name, n,
                max_abs, max_rel);
        if (!ok) {
            double g = gf ? (double)gf[first_bad] : gd[first_bad];
            double w = wf ? (double)wf[first_bad] : wd[first_bad];
            fprintf(stderr, " bad=%zu first_bad[%zu]: got %.8g want %.8g", nbad, first_bad, g, w);
        }
        fprintf(stderr, "\n");
    }
    return ok;
}

bool clasp_test_check_tensor(const char *name, const float *got, const float *want, size_t n,
                             double atol, double rtol) {
    return check_(name, n, atol, rtol, got, want, NULL, NULL);
}

bool clasp_test_check_tensor_f64(const char *name, const double *got, const double *want, size_t n,
                                 double atol, double rtol) {
    return check_(name, n, atol, rtol, NULL, NULL, got, want);
}

const char *clasp_test_ref_path(const char *rel, char *out, size_t cap) {
    snprintf(out, cap, "%s/tests/reference/%s", CLASP_SOURCE_DIR, rel);
    return out;
}

const char *clasp_test_tmpdir(const char *name, char *out, size_t cap) {
    char base[4096];
    snprintf(base, sizeof base, "%s/tests/tmp", CLASP_BINARY_DIR);
    mkdir(base, 0755);
    snprintf(out, cap, "%s/%s-%ld", base, name, (long)getpid());
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "cannot create %s: %s\n", out, strerror(errno));
    }
    return out;
}

const char *clasp_test_bin(void) {
    const char *b = getenv("CLASP_BIN");
    return b ? b : CLASP_BINARY_DIR "/cli/clasp";
}
