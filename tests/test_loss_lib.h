/* test_loss_lib.h: helpers for the loss tests (test_loss*.c): random features, reference
 * files from tests/reference/make_loss.py, and a central finite-difference checker.
 * Everything is static inline so each test binary takes what it uses. */
#ifndef CLASP_TESTS_TEST_LOSS_LIB_H
#define CLASP_TESTS_TEST_LOSS_LIB_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/safetensors.h"
#include "fixtures.h"

/* Zeroed float buffer (at least one element); the caller frees. */
static inline float *lt_alloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof *p);
    cr_assert(p != NULL, "out of memory");
    return p;
}

/* n standard-normal floats from Philox keyed by (seed, stream). */
static inline float *lt_randn(size_t n, uint64_t seed, uint64_t stream) {
    float *p = lt_alloc(n);
    clasp_rng r;
    clasp_rng_init(&r, seed, 77, stream, 0);
    for (size_t i = 0; i < n; i++) p[i] = (float)clasp_rng_normal(&r);
    return p;
}

static inline void lt_normalize_rows(float *x, size_t N, size_t D) {
    for (size_t i = 0; i < N; i++) {
        double s = 0.0;
        for (size_t k = 0; k < D; k++) s += (double)x[i * D + k] * (double)x[i * D + k];
        float r = s > 0.0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (size_t k = 0; k < D; k++) x[i * D + k] *= r;
    }
}

static inline bool lt_all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

static inline float lt_max_abs(const float *x, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

/* Central finite differences of eval(ctx) w.r.t. each x[i] (perturbed in place and restored),
 * computed in double from the float forward: fd = (f(x+h) - f(x-h)) / (x+h - (x-h)), the step
 * measured after rounding to float. Passes when |fd - g| <= 3e-4 * scale + 3e-3 * |fd| for
 * every element, scale = max(max|fd|, 1e-2): loose enough for float forward noise and the
 * O(h^2) truncation, tight enough that a wrong term (even a factor 2 or a sign) fails. */
static inline bool lt_fd_check(const char *name, double (*eval)(void *), void *ctx, float *x,
                               const float *g, size_t n, double h) {
    double *fd = malloc(n * sizeof *fd), *gd = malloc(n * sizeof *gd), scale = 1e-2;
    cr_assert(fd && gd);
    for (size_t i = 0; i < n; i++) {
        float x0 = x[i];
        float xp = (float)((double)x0 + h), xm = (float)((double)x0 - h);
        x[i] = xp;
        double fp = eval(ctx);
        x[i] = xm;
        double fm = eval(ctx);
        x[i] = x0;
        fd[i] = (fp - fm) / ((double)xp - (double)xm);
        gd[i] = (double)g[i];
        if (fabs(fd[i]) > scale) scale = fabs(fd[i]);
    }
    bool ok = clasp_test_check_tensor_f64(name, gd, fd, n, 3e-4 * scale, 3e-3);
    free(fd), free(gd);
    return ok;
}

/* ---- reference files ---- */

typedef struct lt_ref {
    clasp_safetensors *st;
} lt_ref;

static inline lt_ref lt_ref_open(const char *rel) {
    lt_ref r = {fx_ref_open("%s", rel)};
    cr_assert(r.st, "%s: %s", rel, clasp_last_error());
    return r;
}

static inline void lt_ref_close(lt_ref *r) {
    clasp_st_free(r->st);
    r->st = NULL;
}

static inline const clasp_st_tensor *lt_t(lt_ref *r, const char *name) {
    const clasp_st_tensor *t = clasp_st_find(r->st, name);
    cr_assert(t != NULL, "reference tensor %s missing", name);
    return t;
}

static inline size_t lt_dim(lt_ref *r, const char *name, int d) {
    const clasp_st_tensor *t = lt_t(r, name);
    cr_assert(d < t->ndim);
    return (size_t)t->shape[d];
}

/* F32 tensor data (owned by the reference). */
static inline const float *lt_f(lt_ref *r, const char *name) {
    const float *p = clasp_st_f32(r->st, lt_t(r, name));
    cr_assert(p != NULL, "%s", clasp_last_error());
    return p;
}

/* I32 tensor as a malloc'ed int array (caller frees), or NULL when absent. */
static inline int *lt_ints_opt(lt_ref *r, const char *name) {
    const clasp_st_tensor *t = clasp_st_find(r->st, name);
    if (!t) return NULL;
    cr_assert_eq(t->dtype, CLASP_DTYPE_I32, "%s is not I32", name);
    int *p = malloc(t->numel * sizeof *p);
    cr_assert(p != NULL);
    for (size_t i = 0; i < t->numel; i++) {
        int32_t v;
        memcpy(&v, t->data + 4 * i, 4);
        p[i] = (int)v;
    }
    return p;
}

#endif
