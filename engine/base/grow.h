/*
 * grow.h — the one grow-by-doubling helper of the library, the tools, kvbench and
 * the tests (base layer: it needs nothing but realloc).
 *
 * An array that is appended to doubles its capacity when full, so n appends cost
 * O(n) copying in all. Such arrays grow through grow(), which also refuses a size
 * that would overflow.
 */
#ifndef KV_GROW_H
#define KV_GROW_H

#include <stdint.h>
#include <stdlib.h>

/* Makes room for need elements of elem bytes in the array p, which has room for
 * *cap: the capacity doubles, from at least min (> 0), until it holds need, and stops
 * at max when max is not 0. Returns the array, moved or not, with *cap updated; or
 * NULL when need is over max, the size overflows or realloc fails, and then p and
 * *cap are as they were (p is still the caller's to free). */
static inline void *grow(void *p, size_t *cap, size_t need, size_t elem, size_t min, size_t max)
{
    if (p != NULL && need <= *cap)
        return p;
    if (max != 0 && need > max)
        return NULL;
    size_t ncap = *cap > min ? *cap : min > 0 ? min : 1;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return NULL;
        ncap *= 2;
    }
    if (max != 0 && ncap > max)
        ncap = max;
    if (elem != 0 && ncap > SIZE_MAX / elem)
        return NULL;
    void *np = realloc(p, ncap * elem);
    if (np != NULL)
        *cap = ncap;
    return np;
}

#endif /* KV_GROW_H */
