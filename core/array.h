/* array.h: growing a malloc'd array by doubling, the pattern of every list the builders,
 * loaders and the CLI collect:
 *
 *     if (l->n == l->cap) {  // or unconditionally: clasp_grow returns l->v while there is room
 *         item *p = clasp_grow(l->v, l->n, &l->cap, sizeof *p, 256);
 *         if (!p) return clasp_set_error(CLASP_ERR_NOMEM, "items: out of memory");
 *         l->v = p;
 *     }
 *     l->v[l->n++] = x;
 */
#ifndef CLASP_CORE_ARRAY_H
#define CLASP_CORE_ARRAY_H

#include <stddef.h>

/* Returns an array with room for at least n + 1 elements of `elem` bytes: `v` itself while
 * n < *cap, else `v` reallocated to twice *cap elements (`first` when *cap is 0) with *cap
 * updated. NULL when the allocation fails or the byte count overflows: `v` and *cap are then
 * unchanged and `v` is still the caller's to free. */
void *clasp_grow(void *v, size_t n, size_t *cap, size_t elem, size_t first);

#endif
