/*
 * peek.h — what the tools may see of an open handle beyond kv.h (fsck layer).
 *
 * kvdump lists a store's keys without reading their values, tells whether a value
 * is stored LZ4-compressed, and tells whether a record it lists is the one the index
 * holds. kv.h offers none of that, and the tools must not reach into the handle
 * (struct kv_db, the index, the file table): these three calls do it for them, and
 * are all the tools know of the handle. Not in libkv.so (build/libkvfsck.a).
 */
#ifndef KV_PEEK_H
#define KV_PEEK_H

#include "kv.h"

#include <stddef.h>
#include <stdint.h>

/* Calls fn for every live key (no tombstones), shard by shard, in no order, without
 * reading a value; the key bytes are valid during the call. Stops at fn's first
 * non-zero return and returns it; KV_OK at the end. Not safe beside writes on the
 * same handle (a read-only handle, or a writer's quiet moment). */
int peek_keys(kv_db *db, int (*fn)(void *arg, const uint8_t *key, size_t klen), void *arg);

/* *lz4 = 1 when the record the index holds for key stores its value LZ4-compressed
 * (read from the entry's header; kv_get checks the whole record when the value is
 * read). An absent key gives 0. Returns KV_OK, KV_EIO or KV_ECORRUPT. */
int peek_stored_lz4(kv_db *db, const void *key, size_t klen, int *lz4);

/* 1 when the index holds the put with sequence number seq as key's newest record. */
int peek_is_newest(kv_db *db, const void *key, size_t klen, uint64_t seq);

#endif
