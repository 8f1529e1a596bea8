/*
 * index.c — the sharded hash index (see index.h for the design).
 *
 * Sections: nodes and slots, the node arena, one shard's table (find, insert,
 * backward-shift delete, grow), the public operations, iteration and accounting.
 */
#include "index.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* ---- nodes and slots --------------------------------------------------------------- */

typedef struct idx_node {
    uint64_t seq;
    uint32_t file;
    uint32_t off;
    uint32_t len;
    uint16_t klen;
    uint8_t flags;
    uint8_t key[]; /* klen bytes */
} idx_node;

#define SLOT_PTR_MASK ((UINT64_C(1) << 48) - 1)

static inline uint64_t slot_make(idx_node *n, uint64_t hash)
{
    return ((hash >> 32) & UINT64_C(0xFFFF)) << 48 | ((uint64_t)(uintptr_t)n & SLOT_PTR_MASK);
}
static inline idx_node *slot_node(uint64_t s) { return (idx_node *)(uintptr_t)(s & SLOT_PTR_MASK); }
static inline int slot_tag_eq(uint64_t s, uint64_t hash)
{
    return (s >> 48) == ((hash >> 32) & UINT64_C(0xFFFF));
}

/* Nodes live in per-shard arenas: chunks filled front to back, so building the
 * index costs no malloc per key and closing it frees a few chunks instead of every
 * node. A removed node's bytes become garbage; when garbage is over half the bytes
 * handed out, the shard's live nodes are copied into fresh chunks (under its write
 * lock), so the index never holds more than about twice its live nodes. */
typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t cap, used;
    uint64_t data[];  /* nodes, 8-byte aligned */
} arena_chunk;

#define CHUNK_MIN (4u << 10)
#define CHUNK_MAX (64u << 10)
#define REPACK_MIN (256u << 10) /* garbage below this is never worth a copy */

typedef struct idx_shard {
    pthread_rwlock_t lock;
    uint64_t *slots;      /* cap entries, 0 = empty */
    uint32_t cap;         /* power of two */
    uint32_t count;
    arena_chunk *chunks;  /* newest first */
    uint64_t arena_bytes; /* capacity of the chunks */
    uint64_t used;        /* bytes of nodes handed out (live + garbage) */
    uint64_t garbage;     /* bytes of removed nodes still in them */
} idx_shard;

struct kv_index {
    idx_shard shards[IDX_SHARDS];
};

uint64_t idx_hash(const void *key, size_t klen) { return XXH3_64bits(key, klen); }

static void node_fill(idx_node *n, const idx_loc *loc)
{
    n->seq = loc->seq;
    n->file = loc->file;
    n->off = loc->off;
    n->len = loc->len;
    n->flags = loc->flags;
}

static void node_loc(const idx_node *n, idx_loc *loc)
{
    loc->seq = n->seq;
    loc->file = n->file;
    loc->off = n->off;
    loc->len = n->len;
    loc->flags = n->flags;
}

/* ---- the node arena ---------------------------------------------------------------- */

static size_t node_size(size_t klen) { return (sizeof(idx_node) + klen + 7) & ~(size_t)7; }

static arena_chunk *chunk_new(size_t cap)
{
    arena_chunk *c = malloc(sizeof *c + cap);
    if (c != NULL) {
        c->next = NULL;
        c->cap = cap;
        c->used = 0;
    }
    return c;
}

/* A node of node_size(klen) bytes from the chunk list *head (NULL when out of
 * memory); *bytes grows by any chunk added. */
static idx_node *arena_alloc(arena_chunk **head, uint64_t *bytes, size_t klen)
{
    size_t need = node_size(klen);
    arena_chunk *c = *head;
    if (c == NULL || c->cap - c->used < need) {
        size_t cap = c == NULL ? CHUNK_MIN : c->cap < CHUNK_MAX ? c->cap * 2 : CHUNK_MAX;
        if (cap < need)
            cap = need;
        if ((c = chunk_new(cap)) == NULL)
            return NULL;
        c->next = *head;
        *head = c;
        *bytes += cap;
    }
    idx_node *n = (idx_node *)(void *)((uint8_t *)c->data + c->used);
    c->used += need;
    return n;
}

static void chunks_free(arena_chunk *c)
{
    while (c != NULL) {
        arena_chunk *next = c->next;
        free(c);
        c = next;
    }
}

/* Copies the live nodes into one fresh chunk of exactly their size and drops the
 * old chunks. Out of memory only leaves the garbage where it is. */
static void shard_repack(idx_shard *sh)
{
    size_t live = 0;
    for (uint32_t i = 0; i < sh->cap; i++)
        if (sh->slots[i] != 0)
            live += node_size(slot_node(sh->slots[i])->klen);
    arena_chunk *c = chunk_new(live > 0 ? live : CHUNK_MIN);
    if (c == NULL)
        return;
    for (uint32_t i = 0; i < sh->cap; i++) {
        if (sh->slots[i] == 0)
            continue;
        idx_node *n = slot_node(sh->slots[i]);
        idx_node *m = (idx_node *)(void *)((uint8_t *)c->data + c->used);
        c->used += node_size(n->klen);
        memcpy(m, n, sizeof *n + n->klen);
        sh->slots[i] = (sh->slots[i] & ~SLOT_PTR_MASK) | ((uint64_t)(uintptr_t)m & SLOT_PTR_MASK);
    }
    chunks_free(sh->chunks);
    sh->chunks = c;
    sh->arena_bytes = c->cap;
    sh->used = live;
    sh->garbage = 0;
}

static void node_release(idx_shard *sh, idx_node *n)
{
    sh->garbage += node_size(n->klen);
}

static void maybe_repack(idx_shard *sh)
{
    if (sh->garbage >= REPACK_MIN && sh->garbage * 2 > sh->used)
        shard_repack(sh);
}

/* ---- one shard's table ------------------------------------------------------------- */

/* Returns the slot position holding key, or -1. */
static long shard_find(const idx_shard *sh, const void *key, size_t klen, uint64_t hash)
{
    uint32_t mask = sh->cap - 1;
    for (uint32_t i = (uint32_t)hash & mask;; i = (i + 1) & mask) {
        uint64_t s = sh->slots[i];
        if (s == 0)
            return -1;
        if (slot_tag_eq(s, hash)) {
            const idx_node *n = slot_node(s);
            if (n->klen == klen && memcmp(n->key, key, klen) == 0)
                return (long)i;
        }
    }
}

static void shard_place(uint64_t *slots, uint32_t cap, uint64_t s, uint64_t hash)
{
    uint32_t mask = cap - 1, i = (uint32_t)hash & mask;
    while (slots[i] != 0)
        i = (i + 1) & mask;
    slots[i] = s;
}

static int shard_grow(idx_shard *sh)
{
    uint32_t ncap = sh->cap * 2;
    uint64_t *ns = calloc(ncap, sizeof *ns);
    if (ns == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < sh->cap; i++) {
        uint64_t s = sh->slots[i];
        if (s != 0) {
            idx_node *n = slot_node(s);
            shard_place(ns, ncap, s, idx_hash(n->key, n->klen));
        }
    }
    free(sh->slots);
    sh->slots = ns;
    sh->cap = ncap;
    return 0;
}

/* Backward-shift deletion keeps probe chains unbroken without tombstone slots. */
static void shard_remove_at(idx_shard *sh, uint32_t i)
{
    uint32_t mask = sh->cap - 1, j = i;
    for (;;) {
        j = (j + 1) & mask;
        uint64_t s = sh->slots[j];
        if (s == 0)
            break;
        idx_node *n = slot_node(s);
        uint32_t home = (uint32_t)idx_hash(n->key, n->klen) & mask;
        /* Move s back to i unless its home lies cyclically in (i, j]. */
        int in_range = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            sh->slots[i] = s;
            i = j;
        }
    }
    sh->slots[i] = 0;
    sh->count--;
}

/* ---- public operations ------------------------------------------------------------- */

int idx_new(kv_index **out)
{
    kv_index *ix = calloc(1, sizeof *ix);
    if (ix == NULL)
        return -ENOMEM;
    for (int i = 0; i < IDX_SHARDS; i++) {
        idx_shard *sh = &ix->shards[i];
        pthread_rwlock_init(&sh->lock, NULL);
        sh->cap = 64;
        sh->slots = calloc(sh->cap, sizeof *sh->slots);
        if (sh->slots == NULL) {
            idx_free(ix);
            return -ENOMEM;
        }
    }
    *out = ix;
    return 0;
}

void idx_free(kv_index *ix)
{
    if (ix == NULL)
        return;
    for (int i = 0; i < IDX_SHARDS; i++) {
        idx_shard *sh = &ix->shards[i];
        chunks_free(sh->chunks);
        free(sh->slots);
        pthread_rwlock_destroy(&sh->lock);
    }
    free(ix);
}

int idx_get(kv_index *ix, const void *key, size_t klen, uint64_t hash, idx_loc *out)
{
    idx_shard *sh = &ix->shards[idx_shard_of(hash)];
    int found = 0;
    pthread_rwlock_rdlock(&sh->lock);
    long i = shard_find(sh, key, klen, hash);
    if (i >= 0) {
        node_loc(slot_node(sh->slots[i]), out);
        found = 1;
    }
    pthread_rwlock_unlock(&sh->lock);
    return found;
}

static int shard_insert(idx_shard *sh, const void *key, size_t klen, uint64_t hash,
                        const idx_loc *loc)
{
    if ((uint64_t)(sh->count + 1) * 4 > (uint64_t)sh->cap * 3 && shard_grow(sh) != 0)
        return -ENOMEM;
    idx_node *n = arena_alloc(&sh->chunks, &sh->arena_bytes, klen);
    if (n == NULL)
        return -ENOMEM;
    sh->used += node_size(klen);
    n->klen = (uint16_t)klen;
    memcpy(n->key, key, klen);
    node_fill(n, loc);
    shard_place(sh->slots, sh->cap, slot_make(n, hash), hash);
    sh->count++;
    return 0;
}

int idx_set_locked(kv_index *ix, const void *key, size_t klen, uint64_t hash,
                   const idx_loc *loc, int newest_wins, idx_change *ch)
{
    idx_shard *sh = &ix->shards[idx_shard_of(hash)];
    long i = shard_find(sh, key, klen, hash);
    ch->had_old = i >= 0;
    ch->applied = 1;
    if (i < 0)
        return shard_insert(sh, key, klen, hash, loc);
    idx_node *n = slot_node(sh->slots[i]);
    if (newest_wins && n->seq > loc->seq) {
        ch->applied = 0;
        ch->old = *loc;
        return 0;
    }
    node_loc(n, &ch->old);
    node_fill(n, loc);
    return 0;
}

void idx_del_locked(kv_index *ix, const void *key, size_t klen, uint64_t hash,
                    idx_change *ch)
{
    idx_shard *sh = &ix->shards[idx_shard_of(hash)];
    long i = shard_find(sh, key, klen, hash);
    ch->applied = 1;
    ch->had_old = i >= 0;
    if (i < 0)
        return;
    idx_node *n = slot_node(sh->slots[i]);
    node_loc(n, &ch->old);
    node_release(sh, n);
    shard_remove_at(sh, (uint32_t)i);
    maybe_repack(sh);
}

int idx_relocate(kv_index *ix, const void *key, size_t klen, uint64_t hash, uint64_t seq,
                 uint32_t file, uint32_t off, idx_loc *old)
{
    idx_shard *sh = &ix->shards[idx_shard_of(hash)];
    int moved = 0;
    pthread_rwlock_wrlock(&sh->lock);
    long i = shard_find(sh, key, klen, hash);
    if (i >= 0) {
        idx_node *n = slot_node(sh->slots[i]);
        if (n->seq == seq && !(n->flags & (IDX_F_TOMB | IDX_F_WAL))) {
            node_loc(n, old);
            n->file = file;
            n->off = off;
            moved = 1;
        }
    }
    pthread_rwlock_unlock(&sh->lock);
    return moved;
}

void idx_lock_mask(kv_index *ix, uint64_t mask)
{
    for (unsigned s = 0; s < IDX_SHARDS; s++)
        if (mask & (UINT64_C(1) << s))
            pthread_rwlock_wrlock(&ix->shards[s].lock);
}

void idx_unlock_mask(kv_index *ix, uint64_t mask)
{
    for (unsigned s = 0; s < IDX_SHARDS; s++)
        if (mask & (UINT64_C(1) << s))
            pthread_rwlock_unlock(&ix->shards[s].lock);
}

void idx_purge_tombstones(kv_index *ix)
{
    for (unsigned s = 0; s < IDX_SHARDS; s++) {
        idx_shard *sh = &ix->shards[s];
        pthread_rwlock_wrlock(&sh->lock);
        for (uint32_t i = 0; i < sh->cap;) {
            uint64_t slot = sh->slots[i];
            idx_node *n = slot_node(slot);
            if (slot != 0 && (n->flags & IDX_F_TOMB)) {
                node_release(sh, n);
                shard_remove_at(sh, i); /* re-examine i: a later slot moved in */
            } else {
                i++;
            }
        }
        maybe_repack(sh);
        pthread_rwlock_unlock(&sh->lock);
    }
}

/* ---- iteration and accounting ------------------------------------------------------ */

uint64_t idx_count(kv_index *ix)
{
    uint64_t c = 0;
    for (unsigned s = 0; s < IDX_SHARDS; s++) {
        pthread_rwlock_rdlock(&ix->shards[s].lock);
        c += ix->shards[s].count;
        pthread_rwlock_unlock(&ix->shards[s].lock);
    }
    return c;
}

uint64_t idx_bytes(kv_index *ix)
{
    uint64_t b = sizeof *ix;
    for (unsigned s = 0; s < IDX_SHARDS; s++) {
        pthread_rwlock_rdlock(&ix->shards[s].lock);
        b += ix->shards[s].arena_bytes + (uint64_t)ix->shards[s].cap * sizeof(uint64_t);
        pthread_rwlock_unlock(&ix->shards[s].lock);
    }
    return b;
}

int idx_visit_shard(kv_index *ix, unsigned s, idx_visit_fn fn, void *arg)
{
    idx_shard *sh = &ix->shards[s];
    int rc = 0;
    pthread_rwlock_rdlock(&sh->lock);
    for (uint32_t i = 0; i < sh->cap && rc == 0; i++) {
        if (sh->slots[i] == 0)
            continue;
        idx_node *n = slot_node(sh->slots[i]);
        idx_loc loc;
        node_loc(n, &loc);
        rc = fn(arg, n->key, n->klen, &loc);
    }
    pthread_rwlock_unlock(&sh->lock);
    return rc;
}
