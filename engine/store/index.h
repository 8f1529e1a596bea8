/*
 * index.h — the in-memory hash index: key → where its newest record lives.
 *
 * 64 shards, each an open-addressing table (linear probing, backward-shift delete)
 * under its own rwlock, so gets in different shards never contend and a get waits
 * only for a writer of its own shard. A slot is 8 bytes: a node pointer with 19 bits
 * of the key's hash in its top bits, so most probes never touch a node, and a table
 * grows without rehashing a key (up to 2^19 slots per shard). A node holds the
 * location and the key bytes inline (24 bytes + key), carved from per-shard arena
 * chunks. Recovery fills the index through the bulk loader below.
 *
 * Locking: idx_get and idx_set lock one shard themselves. A batch takes every shard
 * it touches at once (idx_lock_mask, in shard order), applies with the *_locked calls
 * and unlocks, so no reader sees part of it.
 */
#ifndef KV_INDEX_H
#define KV_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define IDX_SHARDS 64

#define IDX_F_WAL 0x01  /* the location is in a WAL file (read-only handles) */
#define IDX_F_TOMB 0x02 /* a tombstone kept during recovery, never visible to gets */

typedef struct idx_loc {
    uint64_t seq;  /* sequence number of the record */
    uint32_t file; /* file number */
    uint32_t off;  /* offset of the entry in the file */
    uint32_t len;  /* size of the whole entry */
    uint8_t flags; /* IDX_F_* */
} idx_loc;

typedef struct kv_index kv_index;

int idx_new(kv_index **out);
void idx_free(kv_index *ix);

uint64_t idx_hash(const void *key, size_t klen);
static inline unsigned idx_shard_of(uint64_t hash) { return (unsigned)(hash >> 58); }

/* Finds key. Returns 1 and *out when present (tombstones included), else 0. */
int idx_get(kv_index *ix, const void *key, size_t klen, uint64_t hash, idx_loc *out);

/* Result of idx_set_locked: what the update replaced. */
typedef struct idx_change {
    int applied;  /* 1 if loc is now the key's location */
    int had_old;  /* 1 if the key had a location before */
    idx_loc old;  /* that location (when applied), or the rejected loc itself */
} idx_change;

/* Sets key → loc. With newest_wins, an existing location with a higher sequence
 * number is kept (and loc reported as rejected). tomb_remove: when loc is a
 * tombstone outside recovery, the key is removed instead of stored.
 * Returns 0 or -ENOMEM. The caller holds the shard's write lock. */
int idx_set_locked(kv_index *ix, const void *key, size_t klen, uint64_t hash,
                   const idx_loc *loc, int newest_wins, idx_change *ch);
/* Removes key; fills ch->old/had_old. The caller holds the shard's write lock. */
void idx_del_locked(kv_index *ix, const void *key, size_t klen, uint64_t hash,
                    idx_change *ch);

/* Compaction, and a read-only handle following one: when key's location still has
 * sequence number seq (the record that was copied: every write has its own seq) and
 * is no tombstone, moves it to segment (file, off) (a location in a WAL file too),
 * fills *old and returns 1; else (a newer write won) returns 0. Locks the shard
 * itself. */
int idx_relocate(kv_index *ix, const void *key, size_t klen, uint64_t hash, uint64_t seq,
                 uint32_t file, uint32_t off, idx_loc *old);
/* The same, the caller holding the shard's write lock (many moves under one hold). */
int idx_relocate_locked(kv_index *ix, const void *key, size_t klen, uint64_t hash, uint64_t seq,
                        uint32_t file, uint32_t off, idx_loc *old);

/* Removes key when its location (tombstone or not) has sequence number seq, filling
 * *old, and returns 1; else 0. The caller holds the shard's write lock. */
int idx_del_seq_locked(kv_index *ix, const void *key, size_t klen, uint64_t hash, uint64_t seq,
                       idx_loc *old);

/* A hint to the CPU that key hash is looked up soon (a long run of updates): with
 * node 0 the line of its home slot is fetched, with node 1 the node that slot points
 * at, when its tag matches (call with 0 some updates earlier). Changes nothing. The
 * caller holds the shard's lock. */
void idx_prefetch_locked(kv_index *ix, uint64_t hash, int node);

/* Locks (write) every shard whose bit is set in mask, in shard order; unlocks them. */
void idx_lock_mask(kv_index *ix, uint64_t mask);
void idx_unlock_mask(kv_index *ix, uint64_t mask);
/* For KV_ASSERT: 1 when the shard of hash is locked (by some thread, kv_int.h). */
int idx_shard_held(kv_index *ix, uint64_t hash);

/* Bulk loading, for recovery only (nothing else may use the index meanwhile).
 * Up to IDX_BULK_THREADS producers (numbered 0..producers-1, each used by one thread
 * at a time) queue records with idx_bulk_add: key → loc as idx_set_locked(...,
 * newest_wins = 1) would set it. idx_bulk_flush, called while no producer runs,
 * applies everything queued, shard by shard on up to IDX_BULK_THREADS threads.
 * Records stay queued (8 bytes each, plus their node) until a flush: the caller
 * flushes when idx_bulk_queued passes IDX_BULK_FLUSH or so. A record that loses to
 * a newer one of its key, unless a tombstone, is passed to dead, from the worker
 * numbered `worker` (0..IDX_BULK_THREADS-1; one call at a time per worker).
 * idx_bulk_new returns 0, -EINVAL (producers out of range) or -ENOMEM; idx_bulk_add
 * and idx_bulk_flush 0 or -ENOMEM, after which the index holds part of what was
 * queued. */
#define IDX_BULK_THREADS 4
#define IDX_BULK_FLUSH (UINT64_C(1) << 21)
typedef struct idx_bulk idx_bulk;
typedef void (*idx_dead_fn)(void *arg, unsigned worker, const idx_loc *loc);
int idx_bulk_new(kv_index *ix, unsigned producers, idx_dead_fn dead, void *arg, idx_bulk **out);
int idx_bulk_add(idx_bulk *b, unsigned producer, const void *key, size_t klen, uint64_t hash,
                 const idx_loc *loc);
uint64_t idx_bulk_queued(const idx_bulk *b);
int idx_bulk_flush(idx_bulk *b);
void idx_bulk_free(idx_bulk *b);

/* Removes every tombstone (end of recovery). */
void idx_purge_tombstones(kv_index *ix);

/* Number of live keys and memory held. */
uint64_t idx_count(kv_index *ix);
uint64_t idx_bytes(kv_index *ix);

/* Calls fn for every entry of shard s (under its read lock; fn must not call back
 * into the index). */
typedef int (*idx_visit_fn)(void *arg, const uint8_t *key, size_t klen, const idx_loc *loc);
int idx_visit_shard(kv_index *ix, unsigned s, idx_visit_fn fn, void *arg);

#endif
