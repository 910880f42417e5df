/* sizes.h: overflow-checked size arithmetic. Every allocation size that is a product or
 * sum of values from a file, a config or a user goes through these. */
#ifndef CLASP_CORE_SIZES_H
#define CLASP_CORE_SIZES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* *out = a * b; returns false (and leaves *out unchanged) on overflow. */
static inline bool clasp_size_mul(size_t a, size_t b, size_t *out) {
    size_t r;
    if (__builtin_mul_overflow(a, b, &r)) return false;
    *out = r;
    return true;
}
/* *out = a + b; returns false on overflow. */
static inline bool clasp_size_add(size_t a, size_t b, size_t *out) {
    size_t r;
    if (__builtin_add_overflow(a, b, &r)) return false;
    *out = r;
    return true;
}
/* *out = a * b * c; returns false on overflow. */
static inline bool clasp_size_mul3(size_t a, size_t b, size_t c, size_t *out) {
    size_t t;
    return clasp_size_mul(a, b, &t) && clasp_size_mul(t, c, out);
}
/* *out = a * b * c * d; returns false on overflow. */
static inline bool clasp_size_mul4(size_t a, size_t b, size_t c, size_t d, size_t *out) {
    size_t t;
    return clasp_size_mul3(a, b, c, &t) && clasp_size_mul(t, d, out);
}
/* Round n up to a multiple of `align` (a power of two); false on overflow. */
static inline bool clasp_size_align(size_t n, size_t align, size_t *out) {
    size_t r;
    if (!clasp_size_add(n, align - 1, &r)) return false;
    *out = r & ~(align - 1);
    return true;
}

#endif
