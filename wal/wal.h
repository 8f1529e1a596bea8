/*
 * wal.h — the write-ahead log writer: a queue of writers and group commit.
 *
 * Every write (a put, a delete, a batch) is a wal_req holding its encoded entries.
 * wal_commit assigns the request its sequence numbers and seals its entries (CRC)
 * under the queue lock, then waits. The writer at the head of the queue becomes the
 * leader: it takes the requests queued behind it as one group, writes them to the
 * WAL in one write_group call (one io_uring submission: writev linked to fdatasync
 * under KV_SYNC_ALWAYS), applies them through the store's hook (segment append and
 * index update) in sequence order, then wakes everyone in the group. While it does
 * I/O the lock is free, so the next group forms behind it.
 *
 * Commit delay: the writers a group releases come straight back with their next
 * write, a few microseconds too late for the group already formed behind it, so
 * groups would alternate in size. Under KV_SYNC_ALWAYS a new leader therefore waits
 * (at most a quarter of a typical fdatasync) until as many requests have arrived as
 * the last group released. A lone writer never waits: it is the one that returns.
 *
 * Fences: when every byte before a group is durable (KV_SYNC_ALWAYS: always, since
 * the previous group's fdatasync completed first; KV_SYNC_INTERVAL: the first group
 * after a sync), the leader marks the group's first entry KV_RECF_FENCE (format.h),
 * which lets recovery tell damage to durable records from a torn tail.
 *
 * A failed write or fsync is final (invariant 6): the writer reports it to the
 * store (hooks.fail), and every later commit fails with the status the store
 * remembers (hooks.check) until it is reopened.
 */
#ifndef KV_WAL_H
#define KV_WAL_H

#include "io/io.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct wal_req {
    uint8_t *buf;          /* encoded entries; wal_commit fills seq and CRC */
    size_t len;            /* bytes in buf */
    uint32_t nent;         /* entries in buf */
    uint64_t first_seq;    /* set by wal_commit */
    uint64_t shard_mask;   /* index shards the request touches (batches) */
    int roll;              /* no entries: asks the leader to seal the active segment */
    int status;            /* result, set by the leader */
    int done;
    pthread_cond_t cv;
    struct wal_req *next;
} wal_req;

typedef struct wal_hooks {
    void *arg;
    /* Leader, before writing a group of `bytes` bytes (may roll the segment and
     * call wal_switch; force_roll: a request of the group asked for a roll). A non-OK
     * status fails the group and the writer. */
    int (*before_group)(void *arg, size_t bytes, int force_roll);
    /* Leader, after the WAL write succeeded: make r durable in the segment and
     * visible in the index. A non-OK status fails the writer. */
    int (*apply)(void *arg, wal_req *r);
    /* The store's sticky failure state (invariant 6), which belongs to the handle:
     * fail marks it failed with status (the calling thread's kv_errmsg is kept) and
     * returns status; check returns the status it failed with (0 if none), setting
     * this thread's message. Any thread. */
    int (*fail)(void *arg, int status);
    int (*check)(void *arg);
} wal_hooks;

typedef struct wal_writer {
    kv_io *io;
    int sync_mode;            /* KV_SYNC_* */
    wal_hooks hooks;
    pthread_mutex_t mu;       /* queue and next_seq */
    wal_req *head, *tail;
    uint64_t next_seq;
    pthread_mutex_t fd_mu;    /* the current file, for syncs from other threads */
    int fd;
    uint32_t number;
    _Atomic uint64_t off;     /* end of the WAL file: every byte below it is written
                                 (only the leader changes it, after its write) */
    _Atomic uint64_t synced;  /* every byte below it is durable (fdatasync returned
                                 after it was captured); synced <= off. A sync
                                 covers the offset read before it starts, never a
                                 flag cleared after it, so a write that lands
                                 during an fdatasync stays owed a sync */
    _Atomic uint64_t groups, syncs;
    /* adaptive commit delay (KV_SYNC_ALWAYS), guarded by mu */
    uint32_t released;        /* requests the last group released */
    uint32_t arrivals;        /* requests enqueued since then */
    uint64_t sync_ewma_us;    /* typical duration of a group write+fdatasync */
    /* KV_SYNC_INTERVAL thread */
    pthread_t syncer;
    int syncer_running;
    int stop;
    unsigned interval_ms;
    pthread_cond_t stop_cv;
} wal_writer;

/* Sets up w over the open WAL file fd (number, end offset off). */
int wal_init(wal_writer *w, kv_io *io, int sync_mode, unsigned interval_ms, int fd,
             uint32_t number, uint64_t off, uint64_t next_seq, const wal_hooks *hooks);
/* Stops the interval thread; does not close the fd (the caller owns it). */
void wal_shutdown(wal_writer *w);
/* The sequence number the next write will get (kv_stat), read under the queue's
 * lock. Any thread. */
uint64_t wal_next_seq(wal_writer *w);

/* Prepares r over buf (len bytes, nent entries) for wal_commit. */
void wal_req_init(wal_req *r, uint8_t *buf, size_t len, uint32_t nent, uint64_t shard_mask);
void wal_req_destroy(wal_req *r);

/* Commits r: returns once it is durable as the sync mode promises and visible, or
 * with an error (the message is set in the calling thread). */
int wal_commit(wal_writer *w, wal_req *r);

/* Has the leader seal the active segment (through before_group, in order with the
 * writes around it), as kv_compact does before compacting. */
int wal_roll(wal_writer *w);

/* Makes every byte written to the current WAL file before the call durable
 * (kv_sync, compaction, the KV_SYNC_INTERVAL thread): an fdatasync, unless an earlier
 * one already covered them. */
int wal_sync(wal_writer *w);

/* For KV_ASSERT: 1 when the calling thread leads w's current group (it is in
 * write_group or the hooks). Debug builds track the leader; other builds return 1. */
int wal_is_leader(const wal_writer *w);

/* Leader only (from before_group): makes fd the current WAL file. Returns the old fd. */
int wal_switch(wal_writer *w, int fd, uint32_t number);

#endif
