/*
 * test_signals.c — the "signals" suite: writes keep their promises while signals
 * arrive and while fdatasync is slow (invariant 1).
 *
 * Sections: 1. writes under a signal storm (every backend and sync mode, SA_RESTART
 * on and off): no write fails, the handle never fails, and everything acknowledged
 * is there after a reopen; 2. KV_SYNC_INTERVAL with a slow fdatasync: a write that
 * lands while an fdatasync runs is synced by a later tick, never owed for ever.
 */
#include "kvtest.h"

#include "io/io.h"
#include "sigstorm.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* =================================================================================
 * 1. Writes under a signal storm
 * ============================================================================== */

#define ST_WRITERS 4

typedef struct st_arg {
    kv_db *db;
    int id;
    unsigned n;       /* writes to make */
    unsigned done;    /* acknowledged */
    int rc;           /* the first failure */
    char msg[256];
} st_arg;

static void st_key(char *k, size_t n, int id, unsigned i) { snprintf(k, n, "w%d-%06u", id, i); }

/* Puts, and every 16th write a batch of two puts and a delete of an older key. */
static void *st_writer(void *p)
{
    st_arg *a = p;
    char k[32], k2[32], v[64];
    for (unsigned i = 0; i < a->n && a->rc == KV_OK; i++) {
        st_key(k, sizeof k, a->id, i);
        int vl = snprintf(v, sizeof v, "value-of-%s", k);
        if (i % 16 == 15) {
            kv_batch *b = kv_batch_new();
            st_key(k2, sizeof k2, a->id, i - 15);
            kv_batch_put(b, k, strlen(k), v, (size_t)vl);
            kv_batch_delete(b, k2, strlen(k2));
            a->rc = kv_write(a->db, b);
            kv_batch_free(b);
        } else {
            a->rc = kv_put(a->db, k, strlen(k), v, (size_t)vl);
        }
        if (a->rc == KV_OK)
            a->done = i + 1;
        else
            snprintf(a->msg, sizeof a->msg, "%s", kv_errmsg());
    }
    return NULL;
}

/* Every acknowledged write of the writers is there (deleted keys absent). */
static void st_verify(kv_db *db, const st_arg *args, int nw)
{
    char k[32], v[64];
    unsigned bad = 0;
    for (int w = 0; w < nw; w++) {
        for (unsigned i = 0; i < args[w].done; i++) {
            st_key(k, sizeof k, w, i);
            int vl = snprintf(v, sizeof v, "value-of-%s", k);
            int deleted = i % 16 == 0 && i + 15 < args[w].done;
            char why[256];
            if (kvt_value_cmp(db, k, strlen(k), deleted ? NULL : v, deleted ? 0 : (size_t)vl,
                              why, sizeof why) != 0 && bad++ < 3)
                KVT_CHECK(0, "writer %d write %u: %s", w, i, why);
        }
    }
    KVT_CHECK(bad == 0, "%u acknowledged writes wrong after reopen", bad);
}

static void storm_writes(int sync, int io, unsigned hz, int restart)
{
    char *dir = kvt_dir_new("storm");
    kv_db *db;
    kv_options o;
    st_arg args[ST_WRITERS];
    pthread_t th[ST_WRITERS];
    kvt_options(&o, sync, io, 64 << 10); /* rolls every few hundred writes */
    o.sync_interval_ms = 2;
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    KVT_CHECK_FATAL(kvt_storm_start(hz, restart) == 0, "starting the storm");
    unsigned n = kvt_scaled(sync == KV_SYNC_ALWAYS ? 600 : 3000, 200);
    for (int w = 0; w < ST_WRITERS; w++) {
        args[w] = (st_arg){.db = db, .id = w, .n = n};
        KVT_CHECK_FATAL(pthread_create(&th[w], NULL, st_writer, &args[w]) == 0, "thread");
    }
    for (int w = 0; w < ST_WRITERS; w++)
        pthread_join(th[w], NULL);
    int sync_rc = kv_sync(db), compact_rc = kv_compact(db);
    uint64_t hits = kvt_storm_stop();
    kv_stats st;
    kv_stat(db, &st);
    for (int w = 0; w < ST_WRITERS; w++)
        KVT_CHECK(args[w].rc == KV_OK, "writer %d: write %u failed under the storm: %s (%s)", w,
                  args[w].done, kv_strerror(args[w].rc), args[w].msg);
    KVT_RC(sync_rc, KV_OK);
    KVT_RC(compact_rc, KV_OK);
    KVT_CHECK(st.failed == 0, "the handle failed: %s", kv_strerror(st.failed));
    KVT_CHECK(hits > 0, "no signal was delivered");
    kvt_note("%s, %s, %u Hz, SA_RESTART %s: %llu signals, %llu groups, %llu fdatasyncs",
             sync == KV_SYNC_ALWAYS ? "always" : sync == KV_SYNC_INTERVAL ? "interval" : "none",
             st.io_backend == KV_IO_URING ? "io_uring" : "psync", hz, restart ? "on" : "off",
             (unsigned long long)hits, (unsigned long long)st.wal_groups,
             (unsigned long long)st.wal_syncs);
    KVT_RC_FATAL(kvt_close(db), KV_OK);
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    st_verify(db, args, ST_WRITERS);
    KVT_RC(kvt_close(db), KV_OK);
}

static void test_storm_always_uring_norestart(void)
{
    storm_writes(KV_SYNC_ALWAYS, KV_IO_AUTO, 5000, 0);
}
static void test_storm_always_uring_restart(void)
{
    storm_writes(KV_SYNC_ALWAYS, KV_IO_AUTO, 5000, 1);
}
static void test_storm_always_psync(void) { storm_writes(KV_SYNC_ALWAYS, KV_IO_PSYNC, 5000, 0); }
static void test_storm_interval(void) { storm_writes(KV_SYNC_INTERVAL, KV_IO_AUTO, 5000, 0); }
static void test_storm_none(void) { storm_writes(KV_SYNC_NONE, KV_IO_AUTO, 10000, 0); }

/* =================================================================================
 * 2. KV_SYNC_INTERVAL with a slow fdatasync
 *
 * An I/O layer over the default one records, for the WAL file, the end of what was
 * written and the end of what a finished fdatasync covered (what was written before
 * it began), and makes every fdatasync take 20 ms, as a slow disk does. Writes land
 * while the syncer's fdatasync runs; afterwards nothing may stay unsynced for longer
 * than a few intervals.
 * ============================================================================== */

static const kv_io_ops *g_inner_ops;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_wal_fd = -1;
static uint64_t g_written, g_synced; /* ends, in the WAL file g_wal_fd */

static void slow_io_note_write(int fd, uint64_t end)
{
    pthread_mutex_lock(&g_mu);
    if (fd == g_wal_fd && end > g_written)
        g_written = end;
    pthread_mutex_unlock(&g_mu);
}

static int s_open(kv_io *io, int dirfd, const char *name, int flags, int mode)
{
    int fd = g_inner_ops->open(io, dirfd, name, flags, mode);
    size_t n = strlen(name);
    if (fd >= 0 && n > 4 && strcmp(name + n - 4, ".wal") == 0) {
        pthread_mutex_lock(&g_mu);
        g_wal_fd = fd;
        g_written = g_synced = 0;
        pthread_mutex_unlock(&g_mu);
    }
    return fd;
}
static int s_close(kv_io *io, int fd) { return g_inner_ops->close(io, fd); }
static ssize_t s_pread(kv_io *io, int fd, void *b, size_t n, uint64_t off)
{
    return g_inner_ops->pread(io, fd, b, n, off);
}
static ssize_t s_pwrite(kv_io *io, int fd, const void *b, size_t n, uint64_t off)
{
    ssize_t r = g_inner_ops->pwrite(io, fd, b, n, off);
    if (r > 0)
        slow_io_note_write(fd, off + (uint64_t)r);
    return r;
}
static int s_fdatasync(kv_io *io, int fd)
{
    pthread_mutex_lock(&g_mu);
    uint64_t cover = g_written;
    pthread_mutex_unlock(&g_mu);
    int r = g_inner_ops->fdatasync(io, fd);
    struct timespec ts = {0, 20000000L}; /* a slow disk: it returns late */
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&g_mu);
    if (r == 0 && fd == g_wal_fd && cover > g_synced)
        g_synced = cover;
    pthread_mutex_unlock(&g_mu);
    return r;
}
static int s_ftruncate(kv_io *io, int fd, uint64_t size) { return g_inner_ops->ftruncate(io, fd, size); }
static int s_fsize(kv_io *io, int fd, uint64_t *size) { return g_inner_ops->fsize(io, fd, size); }
static int s_rename(kv_io *io, int d, const char *a, const char *b)
{
    return g_inner_ops->rename(io, d, a, b);
}
static int s_unlink(kv_io *io, int d, const char *name) { return g_inner_ops->unlink(io, d, name); }
static int s_syncdir(kv_io *io, int d) { return g_inner_ops->syncdir(io, d); }
static int s_write_group(kv_io *io, int fd, const struct iovec *iov, int iovcnt, uint64_t off,
                         int sync)
{
    uint64_t len = 0;
    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    int r = g_inner_ops->write_group(io, fd, iov, iovcnt, off, sync);
    if (r == 0)
        slow_io_note_write(fd, off + len);
    return r;
}
static int s_map(kv_io *io, int fd, size_t len, const void **out)
{
    return g_inner_ops->map(io, fd, len, out);
}
static void s_unmap(kv_io *io, const void *p, size_t len) { g_inner_ops->unmap(io, p, len); }

static const kv_io_ops g_slow_ops = {
    .open = s_open, .close = s_close, .pread = s_pread, .pwrite = s_pwrite,
    .fdatasync = s_fdatasync, .ftruncate = s_ftruncate, .fsize = s_fsize,
    .rename = s_rename, .unlink = s_unlink, .syncdir = s_syncdir,
    .write_group = s_write_group, .map = s_map, .unmap = s_unmap,
};

static int slow_factory(void *arg, const char *dir, int want, kv_io **out)
{
    (void)arg;
    (void)dir;
    int rc = io_new(want, out);
    if (rc == KV_OK) {
        g_inner_ops = (*out)->ops;
        (*out)->ops = &g_slow_ops;
    }
    return rc;
}

/* One trial: bursts of writes timed to land while an fdatasync runs, then quiet.
 * Returns 1 when the WAL was wholly synced within 50 intervals of the last write. */
static int interval_trial(const char *dir, unsigned trial)
{
    kv_db *db;
    kv_options o;
    char k[32];
    kvt_options(&o, KV_SYNC_INTERVAL, KV_IO_AUTO, 0);
    o.sync_interval_ms = 10;
    io_set_factory(slow_factory, NULL);
    int rc = kvt_open(dir, &o, &db);
    io_set_factory(NULL, NULL);
    KVT_RC_FATAL(rc, KV_OK);
    for (unsigned i = 0; i < 40; i++) {
        snprintf(k, sizeof k, "t%u-%u", trial, i);
        KVT_RC_FATAL(kv_put(db, k, strlen(k), "v", 1), KV_OK);
        kvt_sleep_ms(1 + (i * 7 + trial) % 13);
    }
    uint64_t written = 0, synced = 0;
    for (unsigned waited = 0; waited < 50; waited++) {
        kvt_sleep_ms(10);
        pthread_mutex_lock(&g_mu);
        written = g_written;
        synced = g_synced;
        pthread_mutex_unlock(&g_mu);
        if (synced >= written)
            break;
    }
    KVT_RC(kvt_close(db), KV_OK);
    if (synced < written)
        kvt_note("trial %u: %llu WAL bytes written, only %llu synced 50 intervals later",
                 trial, (unsigned long long)written, (unsigned long long)synced);
    return synced >= written;
}

static void test_interval_write_during_fdatasync(void)
{
    char *dir = kvt_dir_new("interval");
    unsigned trials = kvt_scaled(10, 4), ok = 0;
    for (unsigned t = 0; t < trials; t++)
        ok += (unsigned)interval_trial(dir, t);
    KVT_CHECK(ok == trials, "%u of %u trials left acknowledged writes unsynced", trials - ok,
              trials);
}

/* =================================================================================
 * Registration
 * ============================================================================== */
static const kvt_test signals_tests[] = {
    { "KV_SYNC_ALWAYS, io_uring, 5 kHz storm without SA_RESTART: no write fails",
      test_storm_always_uring_norestart },
    { "KV_SYNC_ALWAYS, io_uring, 5 kHz storm with SA_RESTART: no write fails",
      test_storm_always_uring_restart },
    { "KV_SYNC_ALWAYS, psync, 5 kHz storm: no write fails", test_storm_always_psync },
    { "KV_SYNC_INTERVAL, 5 kHz storm: no write fails", test_storm_interval },
    { "KV_SYNC_NONE, 10 kHz storm: no write fails", test_storm_none },
    { "KV_SYNC_INTERVAL: a write during a slow fdatasync is synced by a later tick",
      test_interval_write_during_fdatasync },
    { NULL, NULL },
};

void kvt_register_signals(void)
{
    kvt_add_suite("signals", signals_tests);
}
