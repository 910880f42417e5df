/* arena.c: bump allocator for activations. */
#include "core/arena.h"

#include <stdlib.h>
#include <string.h>

#include "core/sizes.h"

static unsigned char g_measure_dummy[CLASP_ARENA_ALIGN] __attribute__((aligned(CLASP_ARENA_ALIGN)));

clasp_status clasp_arena_init(clasp_arena *a, size_t cap) {
    memset(a, 0, sizeof *a);
    size_t c;
    if (!clasp_size_align(cap ? cap : CLASP_ARENA_ALIGN, CLASP_ARENA_ALIGN, &c))
        return clasp_set_error(CLASP_ERR_OVERFLOW, "arena: size %zu overflows", cap);
    a->base = aligned_alloc(CLASP_ARENA_ALIGN, c);
    if (!a->base) return clasp_set_error(CLASP_ERR_NOMEM, "arena: cannot allocate %zu bytes", c);
    a->cap = c;
    return CLASP_OK;
}

void clasp_arena_init_measure(clasp_arena *a) {
    memset(a, 0, sizeof *a);
    a->measure = true;
}

void *clasp_arena_alloc(clasp_arena *a, size_t nbytes) {
    size_t n, end;
    if (!clasp_size_align(nbytes ? nbytes : 1, CLASP_ARENA_ALIGN, &n) ||
        !clasp_size_add(a->used, n, &end)) {
        clasp_set_error(CLASP_ERR_OVERFLOW, "arena: request of %zu bytes overflows", nbytes);
        return NULL;
    }
    if (a->measure) {
        a->used = end;
        if (end > a->high) a->high = end;
        return g_measure_dummy;
    }
    if (end > a->cap) {
        clasp_set_error(CLASP_ERR_OVERFLOW, "arena: full (%zu of %zu bytes used, %zu requested)",
                        a->used, a->cap, nbytes);
        return NULL;
    }
    void *p = a->base + a->used;
    a->used = end;
    if (end > a->high) a->high = end;
    return p;
}

float *clasp_arena_floats(clasp_arena *a, size_t n) {
    size_t nb;
    if (!clasp_size_mul(n, sizeof(float), &nb)) {
        clasp_set_error(CLASP_ERR_OVERFLOW, "arena: %zu floats overflow", n);
        return NULL;
    }
    return clasp_arena_alloc(a, nb);
}

float *clasp_arena_zeros(clasp_arena *a, size_t n) {
    float *p = clasp_arena_floats(a, n);
    if (p && !a->measure) memset(p, 0, n * sizeof(float));
    return p;
}

void clasp_arena_reset(clasp_arena *a) {
    a->used = 0;
}

void clasp_arena_free(clasp_arena *a) {
    if (!a) return;
    free(a->base);
    memset(a, 0, sizeof *a);
}
