/*
 * wal_writer.c — group commit (see wal.h for the protocol).
 *
 * Sections: failure state, the request queue and sealing, the leader's group write,
 * the KV_SYNC_INTERVAL syncer thread, set-up and shutdown.
 */
#include "wal.h"

#include "format/entry.h"
#include "base/kv_int.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define GROUP_MAX_BYTES (1u << 20) /* a group grows to this unless its first is larger */
#define GROUP_MAX_REQS 512         /* and to this many requests (iovec limit) */

/* Debug builds know which writer's group the calling thread leads (wal_is_leader). */
KV_DEBUG_ONLY(static _Thread_local const wal_writer *leading;)

int wal_is_leader(const wal_writer *w)
{
#ifdef KV_DEBUG
    return leading == w;
#else
    (void)w;
    return 1;
#endif
}

/* ---- failure state ----------------------------------------------------------------- */

/* The state is the store's (wal.h, hooks.fail and hooks.check). */
static int wal_fail(wal_writer *w, int status) { return w->hooks.fail(w->hooks.arg, status); }

static int wal_check(wal_writer *w) { return w->hooks.check(w->hooks.arg); }

/* ---- the request queue and sealing ------------------------------------------------- */

void wal_req_init(wal_req *r, uint8_t *buf, size_t len, uint32_t nent, uint64_t shard_mask)
{
    memset(r, 0, sizeof *r);
    r->buf = buf;
    r->len = len;
    r->nent = nent;
    r->shard_mask = shard_mask;
    pthread_cond_init(&r->cv, NULL);
}

void wal_req_destroy(wal_req *r) { pthread_cond_destroy(&r->cv); }

/* Gives r's entries consecutive sequence numbers from first and checksums them. A
 * fence flag left by an earlier commit of the same buffer (a reused batch) is
 * cleared: only the leader may say that a group starts at a fence. */
static void seal_req(wal_req *r, uint64_t first)
{
    uint8_t *p = r->buf, *end = r->buf + r->len;
    r->first_seq = first;
    while (p < end) {
        size_t size = entry_size(kv_get16(p + KV_ENTRY_OFF_KLEN), kv_get32(p + KV_ENTRY_OFF_VLEN));
        p[KV_ENTRY_OFF_FLAGS] &= (uint8_t)~KV_RECF_FENCE;
        entry_seal(p, size, first++);
        p += size;
    }
    KV_ASSERT(first - r->first_seq == r->nent);
    KV_ASSERT(entry_check_sealed(r->buf, r->len, r->nent, r->first_seq));
}

/* Leader, before writing a group that starts with request first: when every byte
 * of the file before the group is durable, its first entry becomes a fence (wal.h),
 * sealed again since the flag is covered by its CRC. */
static void mark_fence(wal_writer *w, wal_req *first, wal_req *last)
{
    KV_ASSERT(wal_is_leader(w));
    if (atomic_load(&w->synced) != atomic_load(&w->off))
        return;
    for (wal_req *q = first;; q = q->next) {
        if (q->len > 0) {
            uint8_t *p = q->buf;
            size_t size = entry_size(kv_get16(p + KV_ENTRY_OFF_KLEN), kv_get32(p + KV_ENTRY_OFF_VLEN));
            p[KV_ENTRY_OFF_FLAGS] |= KV_RECF_FENCE;
            entry_seal(p, size, kv_get64(p + KV_ENTRY_OFF_SEQ));
            KV_ASSERT(entry_check_sealed(p, size, 1, q->first_seq));
            return;
        }
        if (q == last)
            return;
    }
}

/* Raises synced to at least upto (the syncer and the leader both advance it). */
static void note_synced(wal_writer *w, uint64_t upto)
{
    uint64_t cur = atomic_load(&w->synced);
    while (cur < upto && !atomic_compare_exchange_weak(&w->synced, &cur, upto))
        ;
}

/* ---- the leader's group write ------------------------------------------------------ */

/* Picks the group starting at the head: returns its last request. */
static wal_req *pick_group(wal_writer *w, struct iovec *iov, int *iovcnt, size_t *bytes,
                           int *roll)
{
    wal_req *r = w->head, *last = r;
    KV_ASSERT(mutex_held(&w->mu) && r != NULL && wal_is_leader(w));
    size_t limit = r->len > GROUP_MAX_BYTES ? r->len : GROUP_MAX_BYTES;
    *iovcnt = 0;
    *bytes = 0;
    *roll = 0;
    while (r != NULL && *iovcnt < GROUP_MAX_REQS && *bytes + r->len <= limit) {
        iov[*iovcnt].iov_base = r->buf;
        iov[*iovcnt].iov_len = r->len;
        (*iovcnt)++;
        *bytes += r->len;
        *roll |= r->roll;
        last = r;
        r = r->next;
    }
    KV_ASSERT(*iovcnt >= 1 && (*bytes > 0 || *roll)); /* the leader's own request */
    return last;
}

/* Writes the group (and applies it). Runs without the queue lock. */
static int write_group(wal_writer *w, wal_req *first, wal_req *last, struct iovec *iov,
                       int iovcnt, size_t bytes, int roll)
{
    KV_ASSERT(wal_is_leader(w));
    int rc = wal_check(w);
    if (rc == KV_OK && w->hooks.before_group != NULL)
        rc = w->hooks.before_group(w->hooks.arg, bytes, roll);
    if (rc != KV_OK)
        return wal_fail(w, rc);
    if (bytes == 0)
        return KV_OK; /* only roll requests */
    int sync = w->sync_mode == KV_SYNC_ALWAYS;
    uint64_t off = atomic_load(&w->off);
    mark_fence(w, first, last);
    int r = w->io->ops->write_group(w->io, w->fd, iov, iovcnt, off, sync);
    if (r < 0)
        return wal_fail(w, err_errno(-r, "%06u.wal: %s of %zu bytes at offset %llu", w->number,
                                        sync ? "write+fdatasync" : "write", bytes,
                                        (unsigned long long)off));
    atomic_store(&w->off, off + bytes);
    atomic_fetch_add(&w->groups, 1);
    if (sync) {
        note_synced(w, off + bytes);
        atomic_fetch_add(&w->syncs, 1);
    }
    for (wal_req *q = first;; q = q->next) {
        rc = w->hooks.apply(w->hooks.arg, q);
        if (rc != KV_OK)
            return wal_fail(w, rc);
        if (q == last)
            break;
    }
    return KV_OK;
}

/* The commit delay (see wal.h). Called by the new leader with mu held. */
static void await_returning_writers(wal_writer *w, wal_req *r)
{
    if (w->sync_mode != KV_SYNC_ALWAYS || w->released < 2 || w->arrivals >= w->released)
        return;
    uint64_t wait_us = w->sync_ewma_us / 4;
    if (wait_us < 20)
        wait_us = 20;
    if (wait_us > 250)
        wait_us = 250;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)wait_us * 1000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (w->arrivals < w->released)
        if (pthread_cond_timedwait(&r->cv, &w->mu, &ts) != 0)
            break;
}

int wal_commit(wal_writer *w, wal_req *r)
{
    struct iovec iov[GROUP_MAX_REQS];
    int iovcnt, roll;
    size_t bytes;

    KV_ASSERT(r->len > 0 ? entry_check_encoded(r->buf, r->len, r->nent) : r->roll && r->nent == 0);
    pthread_mutex_lock(&w->mu);
    seal_req(r, w->next_seq);
    w->next_seq += r->nent;
    if (w->tail != NULL)
        w->tail->next = r;
    else
        w->head = r;
    w->tail = r;
    if (++w->arrivals >= w->released && w->head != r)
        pthread_cond_signal(&w->head->cv); /* a delaying leader may go now */
    while (!r->done && r != w->head)
        pthread_cond_wait(&r->cv, &w->mu);
    if (r->done) {
        pthread_mutex_unlock(&w->mu);
        return r->status == KV_OK ? KV_OK : wal_check(w);
    }
    /* r leads a group. A leader never commits again before its group is done: its
     * hooks roll the segment themselves, never through wal_roll. */
    KV_ASSERT(leading == NULL);
    KV_DEBUG_ONLY(leading = w;)
    await_returning_writers(w, r);
    wal_req *last = pick_group(w, iov, &iovcnt, &bytes, &roll);
    pthread_mutex_unlock(&w->mu);
    uint64_t t0 = clock_now_us();
    int st = write_group(w, r, last, iov, iovcnt, bytes, roll);
    uint64_t took = clock_now_us() - t0;
    pthread_mutex_lock(&w->mu);
    KV_ASSERT(w->head == r);
    KV_DEBUG_ONLY(leading = NULL;)
    w->sync_ewma_us = (w->sync_ewma_us * 7 + took) / 8;
    w->released = (uint32_t)iovcnt;
    w->arrivals = 0;
    /* Hand leadership on first, so the next group's write starts without waiting
     * for this group's followers to be woken. */
    w->head = last->next;
    if (w->head == NULL)
        w->tail = NULL;
    else
        pthread_cond_signal(&w->head->cv);
    for (wal_req *q = r;; q = q->next) {
        q->status = st;
        q->done = 1;
        if (q != r)
            pthread_cond_signal(&q->cv);
        if (q == last)
            break;
    }
    pthread_mutex_unlock(&w->mu);
    return st;
}

int wal_switch(wal_writer *w, int fd, uint32_t number)
{
    KV_ASSERT(wal_is_leader(w));
    pthread_mutex_lock(&w->fd_mu);
    int old = w->fd;
    w->fd = fd;
    w->number = number;
    atomic_store(&w->off, KV_FILE_HDR_SIZE);
    atomic_store(&w->synced, KV_FILE_HDR_SIZE); /* file_create synced the header */
    pthread_mutex_unlock(&w->fd_mu);
    return old;
}

int wal_roll(wal_writer *w)
{
    wal_req r;
    wal_req_init(&r, NULL, 0, 0, 0);
    r.roll = 1;
    int rc = wal_commit(w, &r);
    wal_req_destroy(&r);
    return rc;
}

int wal_sync(wal_writer *w)
{
    int rc = wal_check(w);
    if (rc != KV_OK)
        return rc;
    /* fd_mu keeps the file from being switched (and closed) under the fdatasync;
     * the target is read before it starts: a group written meanwhile may or may not
     * be covered, so it stays owed. */
    pthread_mutex_lock(&w->fd_mu);
    uint64_t target = atomic_load(&w->off);
    uint32_t number = w->number;
    if (target <= atomic_load(&w->synced)) {
        pthread_mutex_unlock(&w->fd_mu);
        return KV_OK;
    }
    int r = w->io->ops->fdatasync(w->io, w->fd);
    if (r == 0)
        note_synced(w, target);
    pthread_mutex_unlock(&w->fd_mu);
    if (r < 0)
        return wal_fail(w, err_errno(-r, "%06u.wal: fdatasync", number));
    atomic_fetch_add(&w->syncs, 1);
    return KV_OK;
}

/* ---- the KV_SYNC_INTERVAL syncer --------------------------------------------------- */

static void *syncer_main(void *arg)
{
    wal_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += w->interval_ms / 1000;
        ts.tv_nsec += (long)(w->interval_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->stop_cv, &w->mu, &ts);
        if (w->stop || atomic_load(&w->synced) >= atomic_load(&w->off)
            || wal_check(w) != KV_OK)
            continue;
        pthread_mutex_unlock(&w->mu);
        wal_sync(w); /* a failure is recorded in w and returned to the next writer */
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- set-up and shutdown ----------------------------------------------------------- */

int wal_init(wal_writer *w, kv_io *io, int sync_mode, unsigned interval_ms, int fd,
             uint32_t number, uint64_t off, uint64_t next_seq, const wal_hooks *hooks)
{
    memset(w, 0, sizeof *w);
    w->io = io;
    w->sync_mode = sync_mode;
    w->interval_ms = interval_ms;
    w->fd = fd;
    w->number = number;
    w->off = off;
    /* What an earlier process wrote may still be only in the page cache: nothing
     * counts as durable until this writer's first sync, which covers the whole file. */
    w->synced = off > KV_FILE_HDR_SIZE ? KV_FILE_HDR_SIZE : off;
    w->next_seq = next_seq;
    w->hooks = *hooks;
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->fd_mu, NULL);
    pthread_cond_init(&w->stop_cv, NULL);
    if (sync_mode == KV_SYNC_INTERVAL) {
        int e = pthread_create(&w->syncer, NULL, syncer_main, w);
        if (e != 0)
            return err_errno(e, "starting the WAL sync thread");
        w->syncer_running = 1;
    }
    return KV_OK;
}

uint64_t wal_next_seq(wal_writer *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t n = w->next_seq;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void wal_shutdown(wal_writer *w)
{
    if (w->syncer_running) {
        pthread_mutex_lock(&w->mu);
        w->stop = 1;
        pthread_cond_signal(&w->stop_cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->syncer, NULL);
        w->syncer_running = 0;
    }
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->fd_mu);
    pthread_cond_destroy(&w->stop_cv);
}
