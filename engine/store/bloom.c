/*
 * bloom.c — Bloom filters over key hashes (see bloom.h).
 *
 * Probes use double hashing (Kirsch and Mitzenmacher): probe i is h1 + i*h2 over
 * the two halves of the key's 64-bit XXH3 hash, already computed for the index.
 */
#include "store/bloom.h"
#include "base/grow.h"

#include <stdlib.h>
#include <string.h>

#define BLOOM_BITS_PER_KEY 10
#define BLOOM_PROBES 7

kv_bloom *bloom_build(const uint64_t *hashes, size_t n)
{
    uint64_t want = (uint64_t)n * BLOOM_BITS_PER_KEY, nbits = 512;
    while (nbits < want)
        nbits <<= 1;
    kv_bloom *b = malloc(sizeof *b);
    if (b == NULL)
        return NULL;
    b->mask = nbits - 1;
    b->bits = calloc(nbits / 64, sizeof *b->bits);
    if (b->bits == NULL) {
        free(b);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t h1 = (uint32_t)hashes[i], h2 = (uint32_t)(hashes[i] >> 32) | 1u;
        for (uint32_t p = 0; p < BLOOM_PROBES; p++) {
            uint64_t bit = (h1 + (uint64_t)p * h2) & b->mask;
            b->bits[bit >> 6] |= UINT64_C(1) << (bit & 63);
        }
    }
    return b;
}

void bloom_free(kv_bloom *b)
{
    if (b != NULL)
        free(b->bits);
    free(b);
}

int bloom_may_contain(const kv_bloom *b, uint64_t hash)
{
    if (b == NULL)
        return 1;
    uint32_t h1 = (uint32_t)hash, h2 = (uint32_t)(hash >> 32) | 1u;
    for (uint32_t p = 0; p < BLOOM_PROBES; p++) {
        uint64_t bit = (h1 + (uint64_t)p * h2) & b->mask;
        if (!(b->bits[bit >> 6] & (UINT64_C(1) << (bit & 63))))
            return 0;
    }
    return 1;
}

size_t bloom_bytes(const kv_bloom *b)
{
    return b == NULL ? 0 : sizeof *b + (size_t)(b->mask + 1) / 8;
}

void hash_list_add(hash_list *l, uint64_t hash)
{
    if (l->failed)
        return;
    if (l->n == l->cap) {
        uint64_t *nv = grow(l->v, &l->cap, l->n + 1, sizeof *nv, 1024, 0);
        if (nv == NULL) {
            l->failed = 1;
            return;
        }
        l->v = nv;
    }
    l->v[l->n++] = hash;
}

kv_bloom *hash_list_bloom(hash_list *l)
{
    kv_bloom *b = l->failed ? NULL : bloom_build(l->v, l->n);
    l->n = 0;
    l->failed = 0;
    return b;
}

void hash_list_free(hash_list *l)
{
    free(l->v);
    memset(l, 0, sizeof *l);
}
