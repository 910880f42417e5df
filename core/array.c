/* array.c: growing a malloc'd array by doubling (see array.h). */
#include "core/array.h"

#include <stdlib.h>

#include "core/sizes.h"

void *clasp_grow(void *v, size_t n, size_t *cap, size_t elem, size_t first) {
    if (n < *cap) return v;
    size_t ncap, nbytes;
    if (*cap == 0)
        ncap = first ? first : 1;
    else if (!clasp_size_mul(*cap, 2, &ncap))
        return NULL;
    if (ncap <= n || !clasp_size_mul(ncap, elem, &nbytes)) return NULL;
    void *p = realloc(v, nbytes);
    if (p) *cap = ncap;
    return p;
}
