/*
 * batch.h — the inside of kv_batch: its operations already encoded as entries, so
 * kv_write hands the buffer to the WAL without copying it again.
 */
#ifndef KV_BATCH_H
#define KV_BATCH_H

#include <stddef.h>
#include <stdint.h>

struct kv_batch {
    uint8_t *buf;        /* encoded entries, each with KV_RECF_BATCH until kv_write */
    size_t len, cap;
    size_t last_off;     /* offset of the last entry */
    uint32_t count;      /* operations */
    uint32_t nput, ndel;
    uint64_t shard_mask; /* index shards the keys fall in */
};

#endif
