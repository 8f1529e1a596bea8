/*
 * bloom.h — per-segment Bloom filters of keys, for compaction's tombstone rule.
 *
 * A tombstone may be dropped only when no segment that survives the compaction can
 * still hold an older record of its key (invariant 3). Each sealed segment keeps a
 * Bloom filter of the keys it holds (about 10 bits and 7 probes per record: ~1%
 * false positives), built from the 64-bit index hash of each key, so the question
 * costs no I/O. A false positive only keeps a tombstone that could have gone; a
 * segment without a filter (out of memory) is treated as holding every key.
 */
#ifndef KV_BLOOM_H
#define KV_BLOOM_H

#include <stddef.h>
#include <stdint.h>

typedef struct kv_bloom {
    uint64_t mask;    /* number of bits - 1 (a power of two) */
    uint64_t *bits;
} kv_bloom;

/* Builds a filter over n key hashes. Returns NULL when out of memory. */
kv_bloom *bloom_build(const uint64_t *hashes, size_t n);
void bloom_free(kv_bloom *b);
/* 1 when the key with this hash may be in the set, 0 when it is certainly not.
 * A NULL filter may hold anything. */
int bloom_may_contain(const kv_bloom *b, uint64_t hash);
/* Memory held. */
size_t bloom_bytes(const kv_bloom *b);

/* A growable list of key hashes (the input of bloom_build). */
typedef struct hash_list {
    uint64_t *v;
    size_t n, cap;
    int failed;       /* out of memory once: no filter can be built */
} hash_list;

void hash_list_add(hash_list *l, uint64_t hash);
/* Builds the filter (NULL if the list failed) and empties the list. */
kv_bloom *hash_list_bloom(hash_list *l);
void hash_list_free(hash_list *l);

#endif
