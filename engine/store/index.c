/*
 * index.c — the sharded hash index (see index.h for the design).
 *
 * Sections: nodes and slots, the node arena, one shard's table (find, insert,
 * backward-shift delete, grow), the public operations, iteration and accounting.
 */
#include "store/index.h"

#include "base/kv_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
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

/* A slot: the node pointer shifted right by 3 (nodes are 8-byte aligned and user
 * addresses fit in 48 bits) in the low 45 bits, and 19 bits of the key's hash on
 * top. Those 19 bits are the low bits of the home position, (hash >> 26) & mask, so
 * while a table has at most 2^19 slots, growing it or shifting a slot back on delete
 * needs no node and no hash: it never touches a key. Bits 58..63 pick the shard. */
#define SLOT_PTR_BITS 45
#define SLOT_PTR_MASK ((UINT64_C(1) << SLOT_PTR_BITS) - 1)
#ifndef KV_IDX_TAG_BITS
#define KV_IDX_TAG_BITS 19 /* builds may lower it: the ASan test run uses 6, so that
                              tables past 2^6 slots take the path that rehashes keys */
#endif
#define TAG_BITS KV_IDX_TAG_BITS
_Static_assert(TAG_BITS >= 1 && TAG_BITS <= 64 - SLOT_PTR_BITS, "tag bits must fit in a slot");
#define TAG_SPAN (UINT32_C(1) << TAG_BITS) /* tables up to this size rehash from tags */

static inline uint32_t hash_pos(uint64_t hash) { return (uint32_t)(hash >> 26); }
static inline uint64_t hash_tag(uint64_t hash) { return hash_pos(hash) & (TAG_SPAN - 1); }

static inline uint64_t slot_make(idx_node *n, uint64_t hash)
{
    return hash_tag(hash) << SLOT_PTR_BITS | (uint64_t)(uintptr_t)n >> 3;
}
static inline idx_node *slot_node(uint64_t s) { return (idx_node *)(uintptr_t)((s & SLOT_PTR_MASK) << 3); }
static inline int slot_tag_eq(uint64_t s, uint64_t hash) { return s >> SLOT_PTR_BITS == hash_tag(hash); }

/* Home position of a stored slot in a table of mask + 1 slots. */
static inline uint32_t slot_home(uint64_t s, uint32_t mask)
{
    if (mask < TAG_SPAN)
        return (uint32_t)(s >> SLOT_PTR_BITS) & mask;
    const idx_node *n = slot_node(s);
    return hash_pos(XXH3_64bits(n->key, n->klen)) & mask;
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
    uint32_t tombs;       /* nodes flagged IDX_F_TOMB (recovery only) */
    arena_chunk *chunks;  /* newest first */
    uint64_t arena_bytes; /* bytes of the chunks, headers included */
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

/* ---- memory ------------------------------------------------------------------------ */

/* Chunks and slot arrays of 64 KiB and more are populated at once when allocated:
 * one system call instead of a page fault per 4 KiB as they fill, which on a virtual
 * machine was a fifth of the time of building an index. They still come from malloc
 * (not one mmap each): unmapping thousands of chunks at close flushed the TLB each
 * time and made closing a 5M-key store take longer than opening it. */
#define BIG_MIN (64u << 10)

static void *big_alloc(size_t size, int zero)
{
    uint8_t *p = malloc(size);
#ifdef MADV_POPULATE_WRITE
    if (p != NULL && size >= BIG_MIN) {
        uintptr_t page = 4096, lo = ((uintptr_t)p + page - 1) & ~(page - 1),
                  hi = ((uintptr_t)p + size) & ~(page - 1);
        if (hi > lo)
            (void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE); /* only a hint */
    }
#endif
    if (p != NULL && zero)
        memset(p, 0, size);
    return p;
}

/* ---- the node arena ---------------------------------------------------------------- */

static size_t node_size(size_t klen) { return (sizeof(idx_node) + klen + 7) & ~(size_t)7; }

/* A chunk of `size` bytes in all, header included (sizes of whole pages map well). */
static arena_chunk *chunk_new(size_t size)
{
    arena_chunk *c = big_alloc(size, 0);
    if (c != NULL && (uint64_t)(uintptr_t)c + size > SLOT_PTR_MASK << 3) {
        free(c); /* beyond what a slot can address (57-bit addresses) */
        return NULL;
    }
    if (c != NULL) {
        c->next = NULL;
        c->cap = size - sizeof *c;
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
        size_t size = c == NULL ? CHUNK_MIN : sizeof *c + c->cap;
        size = size < CHUNK_MAX ? size * 2 : CHUNK_MAX;
        if (size < sizeof *c + need)
            size = sizeof *c + need;
        if ((c = chunk_new(size)) == NULL)
            return NULL;
        c->next = *head;
        *head = c;
        *bytes += size;
    }
    idx_node *n = (idx_node *)(void *)((uint8_t *)c->data + c->used);
    c->used += need;
    KV_ASSERT(c->used <= c->cap && need % 8 == 0 && need >= sizeof *n + klen);
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
    arena_chunk *c = chunk_new(live > 0 ? sizeof *c + live : CHUNK_MIN);
    if (c == NULL)
        return;
    for (uint32_t i = 0; i < sh->cap; i++) {
        if (sh->slots[i] == 0)
            continue;
        idx_node *n = slot_node(sh->slots[i]);
        idx_node *m = (idx_node *)(void *)((uint8_t *)c->data + c->used);
        c->used += node_size(n->klen);
        memcpy(m, n, sizeof *n + n->klen);
        sh->slots[i] = (sh->slots[i] & ~SLOT_PTR_MASK) | (uint64_t)(uintptr_t)m >> 3;
    }
    KV_ASSERT(c->used == live && c->used <= c->cap);
    chunks_free(sh->chunks);
    sh->chunks = c;
    sh->arena_bytes = sizeof *c + c->cap;
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
    for (uint32_t i = hash_pos(hash) & mask;; i = (i + 1) & mask) {
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

static void shard_place(uint64_t *slots, uint32_t cap, uint64_t s)
{
    uint32_t mask = cap - 1, i = slot_home(s, mask);
    KV_ASSERT(s != 0 && cap > 0 && (cap & mask) == 0);
    while (slots[i] != 0)
        i = (i + 1) & mask;
    slots[i] = s;
}

/* Rehashes into a table of ncap slots (a power of two, large enough). */
static int shard_resize(idx_shard *sh, uint32_t ncap)
{
    uint64_t *ns = big_alloc((size_t)ncap * sizeof *ns, 1);
    if (ns == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < sh->cap; i++)
        if (sh->slots[i] != 0)
            shard_place(ns, ncap, sh->slots[i]);
    free(sh->slots);
    sh->slots = ns;
    sh->cap = ncap;
    return 0;
}

/* Makes room for n more keys at a load of at most 3/4. */
static int shard_reserve(idx_shard *sh, uint64_t n)
{
    uint64_t need = sh->count + n, ncap = sh->cap;
    while (need * 4 > ncap * 3)
        ncap *= 2;
    if (ncap > (UINT64_C(1) << 31))
        return -ENOMEM;
    return ncap == sh->cap ? 0 : shard_resize(sh, (uint32_t)ncap);
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
        uint32_t home = slot_home(s, mask);
        /* Move s back to i unless its home lies cyclically in (i, j]. */
        int in_range = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            sh->slots[i] = s;
            i = j;
        }
    }
    KV_ASSERT(sh->count > 0);
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
        rwlock_init_writers_first(&sh->lock);
        sh->cap = 64;
        sh->slots = big_alloc((size_t)sh->cap * sizeof *sh->slots, 1);
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
    rwlock_rdlock_spin(&sh->lock);
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
    if (shard_reserve(sh, 1) != 0)
        return -ENOMEM;
    idx_node *n = arena_alloc(&sh->chunks, &sh->arena_bytes, klen);
    if (n == NULL)
        return -ENOMEM;
    sh->used += node_size(klen);
    n->klen = (uint16_t)klen;
    memcpy(n->key, key, klen);
    node_fill(n, loc);
    KV_ASSERT(n->klen == klen && slot_node(slot_make(n, hash)) == n && slot_tag_eq(slot_make(n, hash), hash));
    KV_ASSERT(sh->count < sh->cap); /* shard_reserve made room: a free slot ends every probe */
    shard_place(sh->slots, sh->cap, slot_make(n, hash));
    sh->count++;
    sh->tombs += (loc->flags & IDX_F_TOMB) != 0;
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
    sh->tombs += ((loc->flags & IDX_F_TOMB) != 0) - ((n->flags & IDX_F_TOMB) != 0);
    node_fill(n, loc);
    return 0;
}

void idx_del_locked(kv_index *ix, const void *key, size_t klen, uint64_t hash,
                    idx_change *ch)
{
    idx_shard *sh = &ix->shards[idx_shard_of(hash)];
    KV_ASSERT(rwlock_held(&sh->lock));
    long i = shard_find(sh, key, klen, hash);
    ch->applied = 1;
    ch->had_old = i >= 0;
    if (i < 0)
        return;
    idx_node *n = slot_node(sh->slots[i]);
    node_loc(n, &ch->old);
    sh->tombs -= (n->flags & IDX_F_TOMB) != 0;
    node_release(sh, n);
    shard_remove_at(sh, (uint32_t)i);
    maybe_repack(sh);
}

int idx_relocate(kv_index *ix, const void *key, size_t klen, uint64_t hash, uint64_t seq,
                 uint32_t file, uint32_t off, idx_loc *old)
{
    idx_shard *sh = &ix->shards[idx_shard_of(hash)];
    pthread_rwlock_wrlock(&sh->lock);
    int moved = idx_relocate_locked(ix, key, klen, hash, seq, file, off, old);
    pthread_rwlock_unlock(&sh->lock);
    return moved;
}

int idx_relocate_locked(kv_index *ix, const void *key, size_t klen, uint64_t hash, uint64_t seq,
                        uint32_t file, uint32_t off, idx_loc *old)
{
    idx_shard *sh = &ix->shards[idx_shard_of(hash)];
    int moved = 0;
    KV_ASSERT(rwlock_held(&sh->lock));
    long i = shard_find(sh, key, klen, hash);
    if (i >= 0) {
        idx_node *n = slot_node(sh->slots[i]);
        if (n->seq == seq && !(n->flags & IDX_F_TOMB)) {
            node_loc(n, old);
            n->file = file;
            n->off = off;
            n->flags = 0; /* in a segment now (a read-only handle's was in a WAL file) */
            moved = 1;
        }
    }
    return moved;
}

int idx_del_seq_locked(kv_index *ix, const void *key, size_t klen, uint64_t hash, uint64_t seq,
                       idx_loc *old)
{
    idx_shard *sh = &ix->shards[idx_shard_of(hash)];
    KV_ASSERT(rwlock_held(&sh->lock));
    long i = shard_find(sh, key, klen, hash);
    if (i < 0 || slot_node(sh->slots[i])->seq != seq)
        return 0;
    idx_node *n = slot_node(sh->slots[i]);
    node_loc(n, old);
    sh->tombs -= (n->flags & IDX_F_TOMB) != 0;
    node_release(sh, n);
    shard_remove_at(sh, (uint32_t)i);
    maybe_repack(sh);
    return 1;
}

void idx_prefetch_locked(kv_index *ix, uint64_t hash, int node)
{
    const idx_shard *sh = &ix->shards[idx_shard_of(hash)];
    const uint64_t *slot = &sh->slots[hash_pos(hash) & (sh->cap - 1)];
    if (sh->cap == 0)
        return;
    if (!node) {
        __builtin_prefetch(slot);
        return;
    }
    if (*slot != 0 && slot_tag_eq(*slot, hash))
        __builtin_prefetch(slot_node(*slot));
}

int idx_shard_held(kv_index *ix, uint64_t hash)
{
    return rwlock_held(&ix->shards[idx_shard_of(hash)].lock);
}

/* The shards of mask, lowest first (every holder of several shard locks takes them
 * in ascending order, so two batches cannot deadlock), one set bit at a time: a put
 * names one shard, and a loop over all 64 cost ~400 instructions a put. */
_Static_assert(IDX_SHARDS <= 64, "a shard mask is a uint64_t");

void idx_lock_mask(kv_index *ix, uint64_t mask)
{
    for (; mask != 0; mask &= mask - 1)
        pthread_rwlock_wrlock(&ix->shards[__builtin_ctzll(mask)].lock);
}

void idx_unlock_mask(kv_index *ix, uint64_t mask)
{
    for (; mask != 0; mask &= mask - 1)
        pthread_rwlock_unlock(&ix->shards[__builtin_ctzll(mask)].lock);
}

void idx_purge_tombstones(kv_index *ix)
{
    for (unsigned s = 0; s < IDX_SHARDS; s++) {
        idx_shard *sh = &ix->shards[s];
        pthread_rwlock_wrlock(&sh->lock);
        for (uint32_t i = 0; i < sh->cap && sh->tombs > 0;) {
            uint64_t slot = sh->slots[i];
            idx_node *n = slot_node(slot);
            if (slot != 0 && (n->flags & IDX_F_TOMB)) {
                node_release(sh, n);
                sh->tombs--;
                shard_remove_at(sh, i); /* re-examine i: a later slot moved in */
            } else {
                i++;
            }
        }
        maybe_repack(sh);
        pthread_rwlock_unlock(&sh->lock);
    }
}

/* ---- bulk loading ------------------------------------------------------------------ */

/* Recovery indexes millions of records whose keys land all over the table: inserting
 * them one by one costs a cache miss per record in slot arrays far larger than the
 * caches. The bulk loader instead has each producer (a thread reading segments)
 * allocate a record's node at once, in the producer's own per-shard chunks, filled
 * front to back, and queue its slot under its shard. A flush hands each shard the
 * producers' chunks and places the queued slots shard by shard, each shard's table
 * small enough to stay in cache, with the shards shared among threads. Newest wins
 * by sequence number, so the order in which records arrive does not matter. */

#define BULK_PARALLEL 65536 /* fewer queued records are applied by one thread */

typedef struct bulk_queue {
    uint64_t *v;          /* slots to place, in arrival order */
    size_t n, cap;
    arena_chunk *chunks;  /* the nodes they point at, newest chunk first */
    uint64_t bytes, used; /* as the shard's arena_bytes and used */
} bulk_queue;

typedef struct bulk_producer {
    bulk_queue q[IDX_SHARDS];
    uint64_t queued;
} bulk_producer;

struct idx_bulk {
    kv_index *ix;
    unsigned nprod;
    idx_dead_fn dead;
    void *arg;
    _Atomic unsigned next_shard; /* a flush's next shard to take */
    _Atomic int err;             /* first error of a flush */
    bulk_producer prod[];
};

int idx_bulk_new(kv_index *ix, unsigned producers, idx_dead_fn dead, void *arg, idx_bulk **out)
{
    if (producers < 1 || producers > IDX_BULK_THREADS)
        return -EINVAL;
    idx_bulk *b = calloc(1, sizeof *b + producers * sizeof b->prod[0]);
    if (b == NULL)
        return -ENOMEM;
    b->ix = ix;
    b->nprod = producers;
    b->dead = dead;
    b->arg = arg;
    *out = b;
    return 0;
}

void idx_bulk_free(idx_bulk *b)
{
    if (b == NULL)
        return;
    for (unsigned p = 0; p < b->nprod; p++)
        for (unsigned s = 0; s < IDX_SHARDS; s++) {
            free(b->prod[p].q[s].v);
            chunks_free(b->prod[p].q[s].chunks); /* nodes never handed to a shard */
        }
    free(b);
}

uint64_t idx_bulk_queued(const idx_bulk *b)
{
    uint64_t n = 0;
    for (unsigned p = 0; p < b->nprod; p++)
        n += b->prod[p].queued;
    return n;
}

/* Gives the queue's chunks to the shard and places its slots; a record that loses (an
 * older record of a key seen twice) is reported to dead and its node becomes
 * garbage. */
static int bulk_apply_queue(idx_bulk *b, idx_shard *sh, bulk_queue *q, unsigned worker)
{
    if (q->chunks != NULL) {
        arena_chunk *tail = q->chunks;
        while (tail->next != NULL)
            tail = tail->next;
        tail->next = sh->chunks;
        sh->chunks = q->chunks;
        sh->arena_bytes += q->bytes;
        sh->used += q->used;
        q->chunks = NULL;
        q->bytes = q->used = 0;
    }
    if (q->n == 0)
        return 0;
    /* Room for every queued record as a new key; bulk_work gives back what the keys
     * seen more than once did not take. */
    if (shard_reserve(sh, q->n) != 0)
        return -ENOMEM;
    uint32_t mask = sh->cap - 1;
    for (size_t k = 0; k < q->n; k++) {
        uint64_t s = q->v[k], tag = s >> SLOT_PTR_BITS;
        idx_node *n = slot_node(s), *loser = NULL;
        uint32_t i = slot_home(s, mask);
        for (;; i = (i + 1) & mask) {
            uint64_t t = sh->slots[i];
            if (t == 0) {
                sh->slots[i] = s;
                sh->count++;
                sh->tombs += (n->flags & IDX_F_TOMB) != 0;
                break;
            }
            idx_node *m = slot_node(t);
            if (t >> SLOT_PTR_BITS == tag && m->klen == n->klen
                && memcmp(m->key, n->key, n->klen) == 0) {
                if (m->seq > n->seq) {
                    loser = n;
                } else {
                    loser = m;
                    sh->slots[i] = s;
                    sh->tombs += ((n->flags & IDX_F_TOMB) != 0) - ((m->flags & IDX_F_TOMB) != 0);
                }
                break;
            }
        }
        if (loser != NULL) {
            if (b->dead != NULL && !(loser->flags & IDX_F_TOMB)) {
                idx_loc loc;
                node_loc(loser, &loc);
                b->dead(b->arg, worker, &loc);
            }
            node_release(sh, loser);
        }
    }
    q->n = 0;
    return 0;
}

typedef struct bulk_worker {
    idx_bulk *b;
    unsigned id;
    pthread_t thread;
} bulk_worker;

static void *bulk_work(void *arg)
{
    bulk_worker *w = arg;
    idx_bulk *b = w->b;
    unsigned s;
    while ((s = atomic_fetch_add(&b->next_shard, 1)) < IDX_SHARDS) {
        idx_shard *sh = &b->ix->shards[s];
        int rc = 0;
        for (unsigned p = 0; p < b->nprod && rc == 0; p++)
            rc = bulk_apply_queue(b, sh, &b->prod[p].q[s], w->id);
        /* Records that lost left their nodes behind: once garbage is over half, copy
         * the live ones out now, whatever the amount (REPACK_MIN spares a running
         * store frequent copies; a flush happens once per 2M records). */
        if (sh->garbage > 0 && sh->garbage * 2 > sh->used)
            shard_repack(sh);
        /* and the table shrinks to what an insert of its keys one by one gives */
        uint64_t fit = 64;
        while ((uint64_t)sh->count * 4 > fit * 3)
            fit *= 2;
        if (rc == 0 && fit < sh->cap)
            (void)shard_resize(sh, (uint32_t)fit); /* out of memory: stays larger */
        if (rc != 0) {
            int zero = 0;
            atomic_compare_exchange_strong(&b->err, &zero, rc);
        }
    }
    return NULL;
}

int idx_bulk_flush(idx_bulk *b)
{
    bulk_worker w[IDX_BULK_THREADS];
    unsigned nw = 1, started = 0;
    uint64_t queued = idx_bulk_queued(b);
    if (queued >= BULK_PARALLEL) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        nw = cpus < 1 ? 1 : cpus > IDX_BULK_THREADS ? IDX_BULK_THREADS : (unsigned)cpus;
    }
    atomic_store(&b->next_shard, 0);
    atomic_store(&b->err, 0);
    for (unsigned i = 0; i < nw; i++) {
        w[i].b = b;
        w[i].id = i;
    }
    /* Workers 1.. run in threads, worker 0 here; a thread that cannot start only
     * leaves more shards to the others. Every shard is visited even after an error,
     * so every producer's chunks end up owned by a shard. */
    for (unsigned i = 1; i < nw; i++)
        if (pthread_create(&w[i].thread, NULL, bulk_work, &w[i]) == 0)
            started |= 1u << i;
    bulk_work(&w[0]);
    for (unsigned i = 1; i < nw; i++)
        if (started & (1u << i))
            pthread_join(w[i].thread, NULL);
    for (unsigned p = 0; p < b->nprod; p++)
        b->prod[p].queued = 0;
    return atomic_load(&b->err);
}

int idx_bulk_add(idx_bulk *b, unsigned producer, const void *key, size_t klen, uint64_t hash,
                 const idx_loc *loc)
{
    bulk_producer *pr = &b->prod[producer];
    bulk_queue *q = &pr->q[idx_shard_of(hash)];
    if (q->n == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 1024;
        uint64_t *nv = big_alloc(ncap * sizeof *nv, 0);
        if (nv == NULL)
            return -ENOMEM;
        if (q->n > 0)
            memcpy(nv, q->v, q->n * sizeof *nv);
        free(q->v);
        q->v = nv;
        q->cap = ncap;
    }
    idx_node *n = arena_alloc(&q->chunks, &q->bytes, klen);
    if (n == NULL)
        return -ENOMEM;
    q->used += node_size(klen);
    n->klen = (uint16_t)klen;
    memcpy(n->key, key, klen);
    node_fill(n, loc);
    KV_ASSERT(n->klen == klen && slot_node(slot_make(n, hash)) == n);
    q->v[q->n++] = slot_make(n, hash);
    pr->queued++;
    return 0;
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
