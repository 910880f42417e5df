/* arena.h: a bump allocator for activations (ggml-style context).
 *
 * Sized once per batch shape, reset per step, never freed piecemeal. A "measuring" arena
 * (created with clasp_arena_init_measure) hands out no memory and only records how many
 * bytes a sequence of allocations would need, so a model can size its real arena by running
 * its allocation plan once.
 *
 *     clasp_arena a;
 *     clasp_arena_init(&a, nbytes);          // one malloc
 *     float *x = clasp_arena_floats(&a, n);  // NULL if full (and an error is set)
 *     clasp_arena_reset(&a);                 // next step
 *     clasp_arena_free(&a);
 */
#ifndef CLASP_CORE_ARENA_H
#define CLASP_CORE_ARENA_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"

#define CLASP_ARENA_ALIGN 64

typedef struct clasp_arena {
    unsigned char *base; /* NULL for a measuring arena */
    size_t cap;          /* bytes available (0 for a measuring arena) */
    size_t used;         /* bytes handed out so far, including alignment */
    size_t high;         /* high-water mark of `used` */
    bool measure;        /* true: count only */
} clasp_arena;

/* Allocates `cap` bytes (64-byte aligned). Returns CLASP_ERR_NOMEM on failure. */
clasp_status clasp_arena_init(clasp_arena *a, size_t cap);
/* A measuring arena: allocations return a non-NULL dummy pointer that must not be used. */
void clasp_arena_init_measure(clasp_arena *a);
/* Returns `nbytes` of 64-byte aligned memory, or NULL with CLASP_ERR_OVERFLOW set when full. */
void *clasp_arena_alloc(clasp_arena *a, size_t nbytes);
/* Same as alloc for n floats, zero-filled when `zero` is true (not in measuring mode). */
float *clasp_arena_floats(clasp_arena *a, size_t n);
float *clasp_arena_zeros(clasp_arena *a, size_t n);
void clasp_arena_reset(clasp_arena *a);
void clasp_arena_free(clasp_arena *a); /* accepts NULL and zeroed structs */

#endif
