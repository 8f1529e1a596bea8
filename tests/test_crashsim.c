/*
 * test_crashsim.c — the "crashsim" suite: power failures and I/O errors at every
 * I/O call of small workloads, through the fault-injecting layer of faultio.c.
 *
 * Power failure. A workload runs once over the live layer, which logs every call.
 * For every call k (not a sample), the log is replayed up to k and turned into
 * crash images — the durable state only, the whole page cache (a process crash),
 * the last write torn, random subsets of the pending writes, random in-order
 * prefixes of them with a torn end, a flipped bit in a pending write — each written
 * to a fresh directory and opened with the normal kv_open and the default I/O
 * layer. The store must open (never KV_ECORRUPT: a torn tail is not damage) and
 * hold exactly the state after some prefix of the workload's operations that
 *   - includes every operation acknowledged as durable by call k: under
 *     KV_SYNC_ALWAYS every acknowledged one; under KV_SYNC_NONE and
 *     KV_SYNC_INTERVAL those acknowledged before a successful fdatasync of the WAL
 *     (kv_sync, or the interval thread) that completed by call k; for the
 *     page-cache image, every acknowledged one;
 *   - includes no operation that had not started by call k.
 * Being a prefix means batches are all or nothing, no deleted key returns and no
 * key returns a value older than one acknowledged. Values name the operation that
 * wrote them, so a value read back identifies its write exactly. Identical images
 * are opened once (a hash of names and bytes); the count of distinct images is the
 * number of crash states explored.
 *
 * I/O errors. For every call k of a workload, the workload runs again with call k
 * failing (EIO; ENOSPC after half the bytes for a write). Whatever failed must be
 * reported by an API call (hint files, unlink, close and map excepted: the engine
 * may ignore those by design), a handle whose write or fsync failed must refuse
 * every later write and kv_sync with that status until reopened (kv_compact may
 * fail without failing the handle), reopening must work, and at the end the store
 * (reopened as it is, and after a power failure) must hold every acknowledged
 * operation, failed ones wholly or not at all.
 *
 * Workloads are a function and a table row (cs_workloads). A row may start from
 * the crash images of another workload (two lives: the second recovers a crashed
 * store, writes, and is crashed at every call in turn, recovery included).
 *
 * Unlike the other suites, this one includes the internal engine/io/io.h: the layer
 * reaches kv_open through the io factory hook declared there.
 *
 * Sections: values and keys, the run (history and workload steps), the
 * workloads, checking a state against the history, statistics and scratch
 * directories, opening images, power failures, I/O errors, the uring/psync
 * comparison, self-tests of the layer, regressions (engine bugs this suite found),
 * the tests.
 */
#include "kvtest.h"

#include "faultio.h"
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define CS_KEYS 16          /* keys cs00..cs15 at most */
#define CS_BATCH_MAX 6      /* operations per batch */
#define CS_HDR 10           /* value header: op id (8), key (1), 0xa5 */
#define CS_VALUE_MAX 2048   /* filler bytes at most */
#define CS_MAX_FAILURES 3   /* reported per run, then the run stops */
#define CS_TARGET 100000u   /* distinct crash states per normal run of the suite */
#define CS_LIVES 24         /* second lives per mode, from as many crash images */

/* ---------------------------------------------------------------------------------
 * Values and keys
 * ------------------------------------------------------------------------------ */

static void cs_key(unsigned k, char out[5])
{
    snprintf(out, 5, "cs%02u", k % 100u);
}

/* The value operation id writes under key: header, then filler of a length in
 * [vmin, vmax] derived from both. Random filler, or for a workload that compresses
 * (lz4) runs of 16 bytes from the same 8, which LZ4 keeps compressed. */
static size_t cs_value(unsigned key, uint64_t id, unsigned vmin, unsigned vmax, int lz4,
                       uint8_t *buf)
{
    uint64_t h = kvt_mix64(id * 1000003u + key);
    size_t filler = vmin + (size_t)(h % (vmax - vmin + 1));
    memcpy(buf, &id, 8);
    buf[8] = (uint8_t)key;
    buf[9] = 0xa5;
    for (size_t i = 0; i < filler; i++) {
        if (i % (lz4 ? 64 : 8) == 0)
            h = kvt_mix64(h);
        buf[CS_HDR + i] = (uint8_t)(h >> (8 * (i % 8)));
    }
    return CS_HDR + filler;
}

/* ---------------------------------------------------------------------------------
 * The run: one life of a workload over one I/O layer
 * ------------------------------------------------------------------------------ */
enum { OP_PUT = 1, OP_DEL, OP_BATCH, OP_NOOP };

typedef struct cs_op {
    uint8_t type;                /* OP_* (NOOP: a delete of an absent key) */
    uint8_t n;                   /* entries */
    uint8_t key[CS_BATCH_MAX];
    uint8_t del[CS_BATCH_MAX];   /* 1: delete */
    uint64_t id;                 /* names the values it wrote */
    uint64_t before, after;      /* calls counted before the API call, after it */
    int rc;                      /* what it returned */
} cs_op;

typedef struct cs_run cs_run;

typedef struct cs_workload {
    const char *name;
    void (*fn)(cs_run *r);       /* the steps, between the runner's open and close */
    uint64_t segment_bytes;      /* 0: the default */
    unsigned keys;               /* key space, <= CS_KEYS */
    unsigned vmin, vmax;         /* value filler sizes */
    int mmap_reads;              /* options.mmap_reads */
    const char *from;            /* start from crash images of this workload, or NULL */
    int lz4;                     /* options.compression = LZ4, compressible values */
} cs_workload;

struct cs_run {
    const cs_workload *wl;
    int mode;                    /* KV_SYNC_* */
    int error_run;               /* an I/O error is injected: errors are expected */
    fio *fio;                    /* the live layer (NULL: rec_io below) */
    struct rec_io *rec;          /* the recording layer of the uring/psync test */
    char *dir;                   /* the live directory */
    kv_db *db;                   /* open handle, or NULL */
    kv_options opts;
    kvt_rng rng;                 /* the workload's choices (same in every run) */
    cs_op *ops;                  /* the history: nbase recovered ops, then this life's */
    size_t nops, cap, nbase;
    uint64_t next_id;
    int saw_error;               /* an API call returned an error */
    uint64_t compacted;          /* records kv_compact dropped */
    int failures;                /* problems found while running */
    char why[512];               /* the first of them */
};

/* Where the engine's I/O goes: the directory of the running workload gets the
 * test layer (copies, so a test ended early by a fatal check leaves nothing
 * dangling: no other directory ever matches). */
static char g_route_dir[4096];
static fio *g_route_fio;
static struct rec_io *g_route_rec;

static void route_set(const char *dir, fio *f, struct rec_io *rec)
{
    snprintf(g_route_dir, sizeof g_route_dir, "%s", dir != NULL ? dir : "");
    g_route_fio = f;
    g_route_rec = rec;
}

static void cs_route(const cs_run *r)
{
    if (r == NULL)
        route_set(NULL, NULL, NULL);
    else
        route_set(r->dir, r->fio, r->rec);
}

static const char *mode_name(int mode)
{
    return mode == KV_SYNC_ALWAYS ? "ALWAYS" : mode == KV_SYNC_NONE ? "NONE" : "INTERVAL";
}

__attribute__((format(printf, 2, 3))) static void run_fail(cs_run *r, const char *fmt, ...)
{
    va_list ap;
    if (r->failures++ > 0)
        return;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
}

static uint64_t run_calls(cs_run *r);

static cs_op *op_new(cs_run *r, int type)
{
    cs_op *n = grow(r->ops, &r->cap, r->nops + 1, sizeof *n, 64, 0);
    KVT_CHECK_FATAL(n != NULL, "out of memory for the history");
    r->ops = n;
    cs_op *op = &r->ops[r->nops++];
    memset(op, 0, sizeof *op);
    op->type = (uint8_t)type;
    op->id = r->next_id++;
    op->before = run_calls(r);
    return op;
}

/* The factory the engine asks for an I/O layer: ours for the run's directory. */
static int rec_make_io(struct rec_io *rec, int want, kv_io **out);

static int cs_factory(void *arg, const char *dir, int want, kv_io **out)
{
    (void)arg;
    if (g_route_dir[0] != '\0' && strcmp(dir, g_route_dir) == 0)
        return g_route_fio != NULL ? fio_make_io(g_route_fio, want, out)
                                   : rec_make_io(g_route_rec, want, out);
    return io_new(want, out);
}

static void run_open(cs_run *r);
static void after_write(cs_run *r, cs_op *op, const char *what);

static int wl_db_ready(cs_run *r)
{
    return r->db != NULL && r->failures < CS_MAX_FAILURES;
}

/* ---- workload steps ---------------------------------------------------------------- */

static void cs_put(cs_run *r, unsigned key)
{
    uint8_t v[CS_HDR + CS_VALUE_MAX];
    char k[5];
    if (!wl_db_ready(r))
        return;
    cs_op *op = op_new(r, OP_PUT);
    op->n = 1;
    op->key[0] = (uint8_t)key;
    cs_key(key, k);
    size_t vl = cs_value(key, op->id, r->wl->vmin, r->wl->vmax, r->wl->lz4, v);
    op->rc = kv_put(r->db, k, 4, v, vl);
    op->after = run_calls(r);
    after_write(r, op, "kv_put");
}

static void cs_put_rnd(cs_run *r)
{
    cs_put(r, (unsigned)kvt_rng_below(&r->rng, r->wl->keys));
}

static void cs_del(cs_run *r, unsigned key)
{
    char k[5];
    if (!wl_db_ready(r))
        return;
    cs_op *op = op_new(r, OP_DEL);
    op->n = 1;
    op->key[0] = (uint8_t)key;
    op->del[0] = 1;
    cs_key(key, k);
    op->rc = kv_delete(r->db, k, 4);
    op->after = run_calls(r);
    if (op->rc == KV_NOTFOUND) {
        op->type = OP_NOOP;
        op->rc = KV_OK;
    }
    after_write(r, op, "kv_delete");
}

/* A batch of n operations on random keys, pct_del percent of them deletes. */
static void cs_batch(cs_run *r, unsigned n, unsigned pct_del)
{
    uint8_t v[CS_HDR + CS_VALUE_MAX];
    char k[5];
    if (!wl_db_ready(r))
        return;
    kv_batch *b = kv_batch_new();
    KVT_CHECK_FATAL(b != NULL, "kv_batch_new: out of memory");
    cs_op *op = op_new(r, OP_BATCH);
    op->n = (uint8_t)(n > CS_BATCH_MAX ? CS_BATCH_MAX : n);
    for (unsigned i = 0; i < op->n; i++) {
        op->key[i] = (uint8_t)kvt_rng_below(&r->rng, r->wl->keys);
        op->del[i] = (uint8_t)kvt_rng_chance(&r->rng, pct_del);
        cs_key(op->key[i], k);
        int rc = op->del[i] ? kv_batch_delete(b, k, 4)
                            : kv_batch_put(b, k, 4, v,
                                           cs_value(op->key[i], op->id, r->wl->vmin, r->wl->vmax,
                                                    r->wl->lz4, v));
        KVT_CHECK_FATAL(rc == KV_OK, "building a batch: %s", kv_strerror(rc));
    }
    op->before = run_calls(r);
    op->rc = kv_write(r->db, b);
    op->after = run_calls(r);
    kv_batch_free(b);
    after_write(r, op, "kv_write");
}

/* A get of key, checked against the history (the newest operation on the key). */
static void cs_get(cs_run *r, unsigned key)
{
    char k[5];
    void *v = NULL;
    size_t vl = 0;
    uint8_t want[CS_HDR + CS_VALUE_MAX];
    if (!wl_db_ready(r))
        return;
    cs_key(key, k);
    int rc = kv_get(r->db, k, 4, &v, &vl);
    uint64_t id = 0;
    int known = 1;
    for (size_t i = 0; i < r->nops; i++) {
        const cs_op *op = &r->ops[i];
        for (unsigned j = 0; j < op->n && op->type != OP_NOOP; j++)
            if (op->key[j] == key) {
                if (op->rc != KV_OK)
                    known = 0; /* a failed write may or may not have landed */
                else
                    id = op->del[j] ? 0 : op->id;
            }
    }
    if (rc < 0 && r->error_run) {
        r->saw_error = 1;
    } else if (rc == KV_OK && known
               && (id == 0 || cs_value(key, id, r->wl->vmin, r->wl->vmax, r->wl->lz4, want) != vl
                   || memcmp(want, v, vl) != 0)) {
        run_fail(r, "kv_get(%s) returned a value other than the last write's (op id %llu)", k,
                 (unsigned long long)id);
    } else if (rc == KV_NOTFOUND && known && id != 0) {
        run_fail(r, "kv_get(%s) returned KV_NOTFOUND; op id %llu wrote it", k,
                 (unsigned long long)id);
    } else if (rc < 0) {
        run_fail(r, "kv_get(%s) returned %s: %s", k, kv_strerror(rc), kv_errmsg());
    }
    kv_free(v);
}

static void cs_sync(cs_run *r)
{
    if (!wl_db_ready(r))
        return;
    int rc = kv_sync(r->db);
    if (rc != KV_OK && !r->error_run)
        run_fail(r, "kv_sync returned %s: %s", kv_strerror(rc), kv_errmsg());
    if (rc != KV_OK && r->error_run) {
        cs_op probe = {.type = OP_NOOP, .rc = rc};
        r->saw_error = 1;
        after_write(r, &probe, "kv_sync");
    }
}

static void cs_close(cs_run *r)
{
    if (r->db == NULL)
        return;
    int rc = kv_close(r->db);
    r->db = NULL;
    if (rc != KV_OK && !r->error_run)
        run_fail(r, "kv_close returned %s: %s", kv_strerror(rc), kv_errmsg());
    if (rc != KV_OK)
        r->saw_error = 1;
}

static void cs_reopen(cs_run *r)
{
    cs_close(r);
    run_open(r);
}

/* kv_compact. A failure need not fail the handle (only an uncertain MANIFEST
 * does), so none is probed for; the store is reopened all the same. */
static void cs_compact(cs_run *r)
{
    if (!wl_db_ready(r))
        return;
    kv_stats st;
    uint64_t before = kv_stat(r->db, &st) == KV_OK ? st.compact_records_dropped : 0;
    int rc = kv_compact(r->db);
    if (rc == KV_OK && kv_stat(r->db, &st) == KV_OK)
        r->compacted += st.compact_records_dropped - before;
    if (rc == KV_OK)
        return;
    if (!r->error_run) {
        run_fail(r, "kv_compact returned %s: %s", kv_strerror(rc), kv_errmsg());
        return;
    }
    r->saw_error = 1;
    if (rc != KV_EIO && rc != KV_ENOSPC)
        run_fail(r, "kv_compact returned %s (expected KV_EIO or KV_ENOSPC): %s",
                 kv_strerror(rc), kv_errmsg());
    cs_reopen(r);
}

/* Under KV_SYNC_INTERVAL, long enough for the interval thread (1 ms) to sync. */
static void cs_pause(cs_run *r)
{
    if (r->mode == KV_SYNC_INTERVAL && r->db != NULL)
        kvt_sleep_ms(3);
}

/* An operator removes a file (a hint): the next open must do without it. */
static void cs_remove(cs_run *r, const char *name)
{
    if (r->fio != NULL)
        fio_remove(r->fio, name);
}

static uint64_t cs_segments(cs_run *r)
{
    kv_stats st;
    if (r->db == NULL || kv_stat(r->db, &st) != KV_OK)
        return 0;
    return st.segments;
}

/* Puts until the active segment rolls (at most 40 puts). */
static void cs_put_until_roll(cs_run *r)
{
    uint64_t segs = cs_segments(r);
    for (int i = 0; i < 40 && wl_db_ready(r) && cs_segments(r) == segs; i++)
        cs_put_rnd(r);
}

/* After a write op: in a run without injected errors every call must succeed; in
 * an error run a failed write or sync must leave the handle refusing writes and
 * kv_sync with the same status (invariant 6), and the store reopens. */
static void after_write(cs_run *r, cs_op *op, const char *what)
{
    if (op->rc == KV_OK)
        return;
    if (!r->error_run) {
        run_fail(r, "%s returned %s: %s", what, kv_strerror(op->rc), kv_errmsg());
        return;
    }
    r->saw_error = 1;
    if (op->rc != KV_EIO && op->rc != KV_ENOSPC) {
        run_fail(r, "%s returned %s (expected KV_EIO or KV_ENOSPC): %s", what,
                 kv_strerror(op->rc), kv_errmsg());
        return;
    }
    int failed_rc = op->rc;
    uint8_t v[CS_HDR + CS_VALUE_MAX];
    cs_op *probe = op_new(r, OP_PUT);
    probe->n = 1;
    probe->key[0] = 0;
    size_t vl = cs_value(0, probe->id, r->wl->vmin, r->wl->vmax, r->wl->lz4, v);
    probe->rc = kv_put(r->db, "cs00", 4, v, vl);
    probe->after = run_calls(r);
    if (probe->rc != failed_rc)
        run_fail(r, "after %s failed with %s, kv_put returned %s (the handle must refuse "
                 "writes with the same status until reopened)", what, kv_strerror(failed_rc),
                 kv_strerror(probe->rc));
    int src = kv_sync(r->db);
    if (src != failed_rc)
        run_fail(r, "after %s failed with %s, kv_sync returned %s", what,
                 kv_strerror(failed_rc), kv_strerror(src));
    cs_reopen(r);
}

static uint64_t run_calls(cs_run *r)
{
    return r->fio != NULL ? fio_calls(r->fio) : 0;
}

/* Opens the store through the run's layer. In an error run a failed open is
 * tried once more: the injected error is spent, so reopening must work. */
static void run_open(cs_run *r)
{
    int rc = kv_open(r->dir, &r->opts, &r->db);
    if (rc != KV_OK && r->error_run) {
        r->saw_error = 1;
        rc = kv_open(r->dir, &r->opts, &r->db);
        if (rc != KV_OK)
            run_fail(r, "reopening after an I/O error failed: %s: %s", kv_strerror(rc),
                     kv_errmsg());
    } else if (rc != KV_OK) {
        run_fail(r, "kv_open returned %s: %s", kv_strerror(rc), kv_errmsg());
    }
    if (rc != KV_OK)
        r->db = NULL;
}

/* ---------------------------------------------------------------------------------
 * The workloads
 * ------------------------------------------------------------------------------ */

/* Single puts, overwriting a few keys; reads by pread; a kv_sync; a reopen. */
static void wl_puts(cs_run *r)
{
    for (int i = 0; i < 8; i++)
        cs_put_rnd(r);
    cs_get(r, 1);
    cs_get(r, 2);
    cs_sync(r);
    for (int i = 0; i < 4; i++)
        cs_put_rnd(r);
    cs_pause(r);
    cs_reopen(r);
    for (int i = 0; i < 3; i++)
        cs_put_rnd(r);
    cs_get(r, 3);
    cs_pause(r);
}

/* Deletes of present keys, a delete of an absent key, deleted keys written again. */
static void wl_deletes(cs_run *r)
{
    for (unsigned k = 0; k < 6; k++)
        cs_put(r, k);
    cs_del(r, 1);
    cs_del(r, 3);
    cs_del(r, 7); /* absent: nothing is written */
    cs_sync(r);
    cs_put(r, 3);
    cs_del(r, 0);
    cs_del(r, 3);
    cs_pause(r);
    cs_reopen(r);
    cs_del(r, 2);
    cs_put(r, 1);
    cs_del(r, 4);
    cs_pause(r);
}

/* Batches of 2..5 puts and deletes (deletes of absent keys too), among puts. */
static void wl_batches(cs_run *r)
{
    for (int i = 0; i < 3; i++) {
        cs_batch(r, 2 + (unsigned)kvt_rng_below(&r->rng, 4), 30);
        cs_put_rnd(r);
    }
    cs_sync(r);
    cs_batch(r, 5, 40);
    cs_batch(r, 3, 0);
    cs_pause(r);
    cs_reopen(r);
    cs_batch(r, 4, 50);
    cs_put_rnd(r);
    cs_batch(r, 2, 20);
    cs_pause(r);
}

/* Segment rolls (4 KiB segments): seal, hint, new files, MANIFEST, WAL deletion. */
static void wl_rolls(cs_run *r)
{
    for (int i = 0; i < 20; i++) {
        if (i % 5 == 4)
            cs_batch(r, 3, 30);
        else
            cs_put_rnd(r);
        if (i % 8 == 7)
            cs_sync(r);
    }
    cs_pause(r);
    cs_reopen(r);
    for (int i = 0; i < 6; i++)
        cs_put_rnd(r);
    cs_pause(r);
}

/* Hint files: written at rolls, loaded at open, rewritten at open when missing. */
static void wl_hints(cs_run *r)
{
    for (int i = 0; i < 14; i++)
        cs_put_rnd(r);
    cs_sync(r);
    cs_reopen(r);                 /* sealed segments indexed from their hints */
    cs_remove(r, "000001.hint");  /* an operator deletes one */
    cs_reopen(r);                 /* scanned, and its hint written again */
    for (int i = 0; i < 3; i++)
        cs_put_rnd(r);
    cs_pause(r);
    cs_reopen(r);
}

/* Large values in 4 KiB segments: a roll every two or three puts, so a MANIFEST
 * replacement (write, fdatasync, rename, directory fsync) every few calls. */
static void wl_manifest(cs_run *r)
{
    for (int i = 0; i < 10; i++) {
        cs_put_rnd(r);
        if (i % 4 == 3)
            cs_sync(r);
    }
    cs_pause(r);
    cs_reopen(r);
    for (int i = 0; i < 3; i++)
        cs_put_rnd(r);
    cs_pause(r);
}

/* Each roll deletes the old WAL file (not fsynced: the unlink may be undone by a
 * crash); a reopen right after the roll finds and removes it as a leftover. */
static void wl_wal_delete(cs_run *r)
{
    for (int i = 0; i < 3; i++) {
        cs_put_until_roll(r);
        cs_reopen(r);
    }
    cs_del(r, 1);
    cs_put_rnd(r);
    cs_pause(r);
}

/* A second life from a crashed store: recovery (torn tails cut, WAL replayed,
 * leftovers removed), then writes, a reopen and more writes. */
static void wl_recovery(cs_run *r)
{
    cs_put_rnd(r);
    cs_batch(r, 3, 30);
    cs_sync(r);
    cs_put_rnd(r);
    cs_del(r, (unsigned)kvt_rng_below(&r->rng, r->wl->keys));
    cs_pause(r);
    cs_reopen(r);
    cs_put_rnd(r);
    cs_pause(r);
}

/* Compaction: overwrites and deletes leave sealed segments dead-heavy; kv_compact
 * seals the active segment, copies the live records into new segments (sealed,
 * with hints), syncs the WAL, publishes a MANIFEST and deletes its inputs. */
static void wl_compact(cs_run *r)
{
    for (int i = 0; i < 14; i++)
        cs_put_rnd(r);
    cs_del(r, 1);
    cs_del(r, 2);
    cs_compact(r);
    for (int i = 0; i < 8; i++)
        cs_put_rnd(r);
    cs_del(r, 3);
    cs_compact(r);
    cs_pause(r);
    cs_reopen(r);
    cs_put_rnd(r);
    cs_compact(r);
    cs_pause(r);
    if (!r->error_run && r->compacted == 0)
        run_fail(r, "kv_compact dropped no record: the workload does not compact");
}

/* LZ4 values through every path that moves them: single puts, batches, rolls (the
 * WAL's and the segment's copies are the same compressed bytes), compaction (which
 * copies them verbatim) and recovery. */
static void wl_lz4(cs_run *r)
{
    for (int i = 0; i < 12; i++) {
        if (i % 4 == 3)
            cs_batch(r, 3, 20);
        else
            cs_put_rnd(r);
    }
    kv_stats st;
    if (!r->error_run && r->db != NULL && kv_stat(r->db, &st) == KV_OK && st.values_compressed == 0)
        run_fail(r, "no value was stored compressed: the workload does not exercise LZ4");
    cs_del(r, 1);
    cs_sync(r);
    cs_compact(r);
    for (int i = 0; i < 4; i++)
        cs_put_rnd(r);
    cs_pause(r);
    cs_reopen(r);
    cs_put_rnd(r);
    cs_pause(r);
}

static const cs_workload cs_workloads[] = {
    {"puts", wl_puts, 0, 6, 0, 120, 0, NULL, 0},
    {"deletes", wl_deletes, 0, 8, 0, 60, 1, NULL, 0},
    {"batches", wl_batches, 0, 10, 0, 90, 1, NULL, 0},
    {"rolls", wl_rolls, 4096, 12, 150, 400, 1, NULL, 0},
    {"hints", wl_hints, 4096, 10, 200, 500, 1, NULL, 0},
    {"manifest", wl_manifest, 4096, 6, 1200, 1800, 1, NULL, 0},
    {"wal_delete", wl_wal_delete, 4096, 8, 300, 600, 1, NULL, 0},
    {"recovery_batches", wl_recovery, 0, 10, 0, 90, 1, "batches", 0},
    {"recovery_rolls", wl_recovery, 4096, 12, 150, 400, 0, "rolls", 0},
    {"compaction", wl_compact, 4096, 6, 150, 400, 1, NULL, 0},
    {"recovery_compaction", wl_recovery, 4096, 6, 150, 400, 1, "compaction", 0},
    {"lz4", wl_lz4, 4096, 6, 150, 700, 1, NULL, 1},
    {NULL, NULL, 0, 0, 0, 0, 0, NULL, 0},
};

static const cs_workload *wl_find(const char *name)
{
    for (const cs_workload *w = cs_workloads; w->name != NULL; w++)
        if (strcmp(w->name, name) == 0)
            return w;
    return NULL;
}

/* ---------------------------------------------------------------------------------
 * Checking a state against the history
 * ------------------------------------------------------------------------------ */

typedef struct cs_obs {
    uint64_t id[CS_KEYS];   /* op id of each key's value, 0 when absent */
    int bad;                /* a key or value that no operation wrote */
    char why[160];
} cs_obs;

typedef struct obs_ctx {
    const cs_workload *wl;
    cs_obs *o;
} obs_ctx;

static int obs_cb(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
    obs_ctx *c = arg;
    char kb[5];
    uint8_t want[CS_HDR + CS_VALUE_MAX];
    uint64_t id;
    unsigned key = 0;
    int ok = kl == 4 && memcmp(k, "cs", 2) == 0 && sscanf((const char *)k + 2, "%2u", &key) == 1
             && key < c->wl->keys;
    if (ok) {
        cs_key(key, kb);
        ok = memcmp(kb, k, 4) == 0 && vl >= CS_HDR;
    }
    if (ok) {
        memcpy(&id, v, 8);
        ok = id != 0 && cs_value(key, id, c->wl->vmin, c->wl->vmax, c->wl->lz4, want) == vl
             && memcmp(want, v, vl) == 0;
    }
    if (ok && c->o->id[key] == 0) {
        c->o->id[key] = id;
    } else if (!c->o->bad) {
        char buf[64];
        c->o->bad = 1;
        snprintf(c->o->why, sizeof c->o->why, "key \"%s\" holds a %zu-byte value no "
                 "operation wrote", kvt_fmt(buf, sizeof buf, k, kl), vl);
    }
    return 0;
}

/* Reads every key of the open store into o. Returns kv_foreach's status. */
static int observe(const cs_workload *wl, kv_db *db, cs_obs *o)
{
    obs_ctx c = {wl, o};
    memset(o, 0, sizeof *o);
    return kv_foreach(db, obs_cb, &c);
}

/* The state after ops[0..P): match[P] = 1 for every P whose state equals o, where
 * each failed operation (rc != KV_OK) may or may not have been applied. */
static void match_prefixes(const cs_run *r, const cs_obs *o, uint8_t *match)
{
    size_t failed[10], nf = 0;
    memset(match, 0, r->nops + 1);
    for (size_t i = 0; i < r->nops; i++)
        if (r->ops[i].rc != KV_OK && r->ops[i].type != OP_NOOP && nf < 10)
            failed[nf++] = i;
    for (unsigned mask = 0; mask < (1u << nf); mask++) {
        uint64_t exp[CS_KEYS] = {0};
        unsigned diff = 0;
        for (unsigned k = 0; k < CS_KEYS; k++)
            diff += o->id[k] != 0;
        if (diff == 0)
            match[0] = 1;
        for (size_t i = 0, fi = 0; i < r->nops; i++) {
            const cs_op *op = &r->ops[i];
            int apply = op->type != OP_NOOP;
            if (fi < nf && failed[fi] == i)
                apply = (mask >> fi++) & 1;
            for (unsigned j = 0; apply && j < op->n; j++) {
                unsigned k = op->key[j];
                uint64_t nv = op->del[j] ? 0 : op->id;
                diff -= exp[k] != o->id[k];
                exp[k] = nv;
                diff += exp[k] != o->id[k];
            }
            if (diff == 0)
                match[i + 1] = 1;
        }
    }
}

/* Call numbers of the successful fdatasyncs of WAL files, ascending. */
typedef struct cs_syncs {
    uint64_t *at;
    size_t n;
} cs_syncs;

static void wal_syncs(fio *f, cs_syncs *s)
{
    uint64_t n = fio_calls(f);
    s->at = calloc(n + 1, sizeof *s->at);
    s->n = 0;
    KVT_CHECK_FATAL(s->at != NULL, "out of memory");
    for (uint64_t k = 1; k <= n; k++) {
        const fio_call *c = fio_call_at(f, k);
        size_t nl = strlen(c->name);
        if ((c->op == FIO_FDATASYNC || c->op == FIO_WG_SYNC) && c->rc == 0 && nl > 4
            && strcmp(c->name + nl - 4, ".wal") == 0)
            s->at[s->n++] = k;
    }
}

/* The prefix every state at crash point k must include: the recovered ops of an
 * earlier life, and every op acknowledged as durable by call k (kernel: every op
 * acknowledged, as a process crash loses nothing acknowledged). */
static size_t required_prefix(const cs_run *r, const cs_syncs *s, uint64_t k, int kernel)
{
    size_t req = r->nbase;
    for (size_t i = r->nbase; i < r->nops; i++) {
        const cs_op *op = &r->ops[i];
        if (op->rc != KV_OK || op->type == OP_NOOP || op->after > k)
            continue;
        int durable = kernel || r->mode == KV_SYNC_ALWAYS;
        for (size_t j = 0; j < s->n && !durable && s->at[j] <= k; j++)
            durable = s->at[j] > op->after;
        if (durable)
            req = i + 1;
    }
    return req;
}

/* The longest prefix that can be present at call k: ops that had started. */
static size_t started_prefix(const cs_run *r, uint64_t k)
{
    size_t n = r->nbase;
    while (n < r->nops && r->ops[n].before < k)
        n++;
    return n;
}

/* Describes how o differs from the state after ops[0..p). */
static void describe_diff(const cs_run *r, const cs_obs *o, size_t p, char *buf, size_t n)
{
    uint64_t exp[CS_KEYS] = {0};
    size_t at = 0;
    for (size_t i = 0; i < p; i++)
        for (unsigned j = 0; r->ops[i].type != OP_NOOP && j < r->ops[i].n; j++)
            exp[r->ops[i].key[j]] = r->ops[i].del[j] ? 0 : r->ops[i].id;
    buf[0] = '\0';
    for (unsigned k = 0; k < CS_KEYS && at + 64 < n; k++)
        if (exp[k] != o->id[k])
            at += (size_t)snprintf(buf + at, n - at, " cs%02u: op %llu, expected %s%llu;", k,
                                   (unsigned long long)o->id[k], exp[k] ? "op " : "absent ",
                                   (unsigned long long)exp[k]);
}

/* ---------------------------------------------------------------------------------
 * Statistics, scratch directories
 * ------------------------------------------------------------------------------ */

typedef struct cs_stats {
    uint64_t points;       /* crash points (calls) replayed */
    uint64_t images;       /* images built */
    uint64_t distinct;     /* images never seen before in this process */
    uint64_t opened;       /* kv_open calls on images */
    uint64_t error_points; /* runs with an injected I/O error */
} cs_stats;

static cs_stats g_total;
static unsigned g_power_tests, g_error_tests;

/* The set of image hashes seen by the whole suite (open addressing). */
static uint64_t (*g_seen)[2];
static size_t g_seen_n, g_seen_cap;

static int seen_add(const uint64_t hash[2])
{
    uint64_t h[2] = {hash[0], hash[1]};
    if ((h[0] | h[1]) == 0)
        h[0] = 1; /* all zero marks a free slot */
    if (g_seen_n * 2 >= g_seen_cap) {
        size_t ncap = g_seen_cap ? g_seen_cap * 2 : 1u << 16;
        uint64_t (*n)[2] = calloc(ncap, sizeof *n);
        KVT_CHECK_FATAL(n != NULL, "out of memory for the image set");
        for (size_t i = 0; i < g_seen_cap; i++) {
            if ((g_seen[i][0] | g_seen[i][1]) == 0)
                continue;
            size_t j = g_seen[i][0] & (ncap - 1);
            while ((n[j][0] | n[j][1]) != 0)
                j = (j + 1) & (ncap - 1);
            n[j][0] = g_seen[i][0];
            n[j][1] = g_seen[i][1];
        }
        free(g_seen);
        g_seen = n;
        g_seen_cap = ncap;
    }
    for (size_t j = h[0] & (g_seen_cap - 1);; j = (j + 1) & (g_seen_cap - 1)) {
        if (g_seen[j][0] == h[0] && g_seen[j][1] == h[1])
            return 0;
        if ((g_seen[j][0] | g_seen[j][1]) == 0) {
            g_seen[j][0] = h[0];
            g_seen[j][1] = h[1];
            g_seen_n++;
            return 1;
        }
    }
}

/* A scratch directory for the test, on tmpfs when there is one: images are many
 * and small, and kv_open fdatasyncs. Removed at teardown by the fixture. */
static char *cs_scratch(void)
{
    const char *old = getenv("TMPDIR");
    char *save = old != NULL ? strdup(old) : NULL;
    if (access("/dev/shm", W_OK) == 0)
        setenv("TMPDIR", "/dev/shm", 1);
    char *d = kvt_dir_new("crashsim");
    if (save != NULL)
        setenv("TMPDIR", save, 1);
    else
        unsetenv("TMPDIR");
    free(save);
    return d;
}

/* scratch/name, made empty. The returned path is freed at teardown. */
static char *cs_subdir(const char *scratch, const char *name)
{
    char *p = kvt_path(scratch, name);
    kvt_rmtree(p);
    KVT_CHECK_FATAL(mkdir(p, 0755) == 0, "mkdir %s: %s", p, strerror(errno));
    return p;
}

/* The self-tests' broken engine: a kind of sync every live layer ignores. */
static int g_mutant_op;
static const char *g_mutant_suffix;

/* Keeps a copy of an image that failed a check, for a person to look at. */
static void keep_image(const fio_image *img, char *out, size_t n)
{
    const char *base = getenv("TMPDIR");
    snprintf(out, n, "%s/kvtest-crashsim-failed-XXXXXX", base && base[0] ? base : "/tmp");
    if (mkdtemp(out) == NULL || fio_image_write(img, out) != 0)
        snprintf(out, n, "(could not keep the image)");
}

/* ---------------------------------------------------------------------------------
 * Opening images
 * ------------------------------------------------------------------------------ */

/* Opens dir with the default I/O layer and reads its state. A store that opens
 * is also written to and reopened now and then (every 8th image), so a recovery
 * that leaves a store unfit for writing is caught too. Returns 0, or -1 with the
 * problem in why. */
static int open_observe(const cs_workload *wl, const char *dir, int variant_io, cs_obs *o,
                        char *why, size_t n)
{
    kv_options opts;
    kv_db *db = NULL;
    kvt_options(&opts, KV_SYNC_NONE, KV_IO_PSYNC, wl->segment_bytes);
    opts.mmap_reads = variant_io % 4 == 0;
    opts.auto_compact = 0;
    int rc = kv_open(dir, &opts, &db);
    if (rc != KV_OK) {
        snprintf(why, n, "kv_open returned %s: %s", kv_strerror(rc), kv_errmsg());
        return -1;
    }
    rc = observe(wl, db, o);
    if (rc == KV_OK && !o->bad && variant_io % 8 == 3) {
        cs_obs again;
        void *v = NULL;
        size_t vl = 0;
        rc = kv_put(db, "after-crash", 11, "x", 1);
        if (rc == KV_OK)
            rc = kv_close(db);
        db = NULL;
        if (rc == KV_OK)
            rc = kv_open(dir, &opts, &db);
        if (rc == KV_OK && (rc = kv_get(db, "after-crash", 11, &v, &vl)) == KV_OK) {
            kv_free(v);
            kv_delete(db, "after-crash", 11);
            rc = observe(wl, db, &again);
            if (rc == KV_OK && memcmp(again.id, o->id, sizeof o->id) != 0) {
                snprintf(why, n, "the state changed after a write and a reopen");
                kv_close(db);
                return -1;
            }
        }
    }
    if (rc != KV_OK) {
        snprintf(why, n, "after a successful open: %s: %s", kv_strerror(rc), kv_errmsg());
        kv_close(db);
        return -1;
    }
    rc = kv_close(db);
    if (o->bad) {
        snprintf(why, n, "%s", o->why);
        return -1;
    }
    if (rc != KV_OK) {
        snprintf(why, n, "kv_close returned %s: %s", kv_strerror(rc), kv_errmsg());
        return -1;
    }
    return 0;
}

/* What opening one distinct image gave, cached by its hash within a run. */
typedef struct cs_seen {
    uint64_t hash[2];
    int failed;          /* open_observe failed */
    uint8_t *match;      /* nops + 1 entries */
    cs_obs obs;
    char why[200];
} cs_seen;

typedef struct cs_check {
    cs_run *r;
    cs_syncs syncs;
    const char *imgdir;
    cs_seen *seen;       /* open addressing on hash[0] */
    size_t nseen, cap;
    cs_stats *st;
    unsigned violations;
    char first[1024];    /* the first violation */
} cs_check;

__attribute__((format(printf, 2, 3))) static void violation(cs_check *c, const char *fmt, ...)
{
    va_list ap;
    if (c->violations++ > 0)
        return;
    va_start(ap, fmt);
    vsnprintf(c->first, sizeof c->first, fmt, ap);
    va_end(ap);
}

static cs_seen *seen_find(cs_check *c, const uint64_t h[2], int *fresh)
{
    if (c->nseen * 2 >= c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 1024;
        cs_seen *n = calloc(ncap, sizeof *n);
        KVT_CHECK_FATAL(n != NULL, "out of memory for the image cache");
        for (size_t i = 0; i < c->cap; i++)
            if (c->seen[i].match != NULL || c->seen[i].failed) {
                size_t j = c->seen[i].hash[0] & (ncap - 1);
                while (n[j].match != NULL || n[j].failed)
                    j = (j + 1) & (ncap - 1);
                n[j] = c->seen[i];
            }
        free(c->seen);
        c->seen = n;
        c->cap = ncap;
    }
    size_t j = h[0] & (c->cap - 1);
    for (;; j = (j + 1) & (c->cap - 1)) {
        cs_seen *s = &c->seen[j];
        if (s->match == NULL && !s->failed) {
            *fresh = 1;
            s->hash[0] = h[0];
            s->hash[1] = h[1];
            c->nseen++;
            return s;
        }
        if (s->hash[0] == h[0] && s->hash[1] == h[1]) {
            *fresh = 0;
            return s;
        }
    }
}

static void check_free(cs_check *c)
{
    for (size_t i = 0; i < c->cap; i++)
        free(c->seen[i].match);
    free(c->seen);
    free(c->syncs.at);
}

/* Opens the image (once per distinct image) and checks the state it holds is a
 * valid prefix for crash point k. */
static void check_image(cs_check *c, uint64_t k, fio_variant v, uint64_t seed, const fio_image *img)
{
    cs_run *r = c->r;
    int fresh;
    cs_seen *s = seen_find(c, img->hash, &fresh);
    if (fresh) {
        c->st->distinct += (uint64_t)seen_add(img->hash);
        c->st->opened++;
        s->match = calloc(r->nops + 1, 1);
        KVT_CHECK_FATAL(s->match != NULL, "out of memory");
        kvt_rmtree(c->imgdir);
        KVT_CHECK_FATAL(mkdir(c->imgdir, 0755) == 0 && fio_image_write(img, c->imgdir) == 0,
                        "writing an image into %s", c->imgdir);
        if (open_observe(r->wl, c->imgdir, (int)c->st->opened, &s->obs, s->why, sizeof s->why) != 0)
            s->failed = 1;
        else
            match_prefixes(r, &s->obs, s->match);
    }
    size_t req = required_prefix(r, &c->syncs, k, v == FIO_V_KERNEL);
    size_t top = started_prefix(r, k);
    int ok = !s->failed;
    if (ok) {
        ok = 0;
        for (size_t p = req; p <= top && !ok; p++)
            ok = s->match[p];
    }
    if (!ok) {
        char call[160], kept[256], diff[400] = "";
        if (c->violations == 0 && g_mutant_op == 0)
            keep_image(img, kept, sizeof kept);
        else
            snprintf(kept, sizeof kept, "not kept");
        if (!s->failed)
            describe_diff(r, &s->obs, req, diff, sizeof diff);
        violation(c, "%s, %s: power failure after call %s, image %s seed %llu (%s%s): %s%s"
                  " (must hold ops 1..%zu, may hold up to %zu of %zu)",
                  r->wl->name, mode_name(r->mode), fio_describe(r->fio, k, call, sizeof call),
                  fio_variant_name[v], (unsigned long long)seed,
                  kept[0] == '/' ? "kept in " : "", kept,
                  s->failed ? s->why : "the state is no valid prefix of the history:", diff,
                  req, top, r->nops);
    }
}

/* ---------------------------------------------------------------------------------
 * Power failures at every call
 * ------------------------------------------------------------------------------ */

typedef struct cs_plan {
    fio_variant v;
    unsigned normal, quick; /* images of this variant per crash point */
} cs_plan;

static const cs_plan cs_variants[] = {
    {FIO_V_DURABLE, 1, 1}, {FIO_V_KERNEL, 1, 1}, {FIO_V_TEAR_LAST, 3, 1},
    {FIO_V_SUBSET, 8, 1},  {FIO_V_PREFIX, 10, 2}, {FIO_V_FLIP, 4, 1},
};

static void run_init(cs_run *r, const cs_workload *wl, int mode, const char *dir, fio *f)
{
    memset(r, 0, sizeof *r);
    r->wl = wl;
    r->mode = mode;
    r->fio = f;
    r->dir = strdup(dir);
    KVT_CHECK_FATAL(r->dir != NULL, "out of memory");
    kvt_options(&r->opts, mode, KV_IO_AUTO, wl->segment_bytes);
    r->opts.sync_interval_ms = 1;
    r->opts.mmap_reads = wl->mmap_reads;
    r->opts.auto_compact = 0; /* compaction runs where a workload calls kv_compact */
    if (wl->lz4) {
        r->opts.compression = KV_COMPRESS_LZ4;
        r->opts.compress_min_bytes = 16;
    }
    kvt_rng_seed(&r->rng, kvt_mix64(wl->name[0] * 131u + strlen(wl->name)));
    r->next_id = 1;
}

static void run_free(cs_run *r)
{
    cs_route(NULL);
    if (r->db != NULL)
        kv_close(r->db);
    fio_free(r->fio);
    free(r->ops);
    free(r->dir);
    memset(r, 0, sizeof *r);
}

/* The workload's steps and the final close (the runner opened the store). */
static void run_body(cs_run *r)
{
    r->wl->fn(r);
    cs_close(r);
}

/* Replays the run's log and checks the images of every crash point. */
static void verify_crash_points(cs_check *c, const char *imgdir)
{
    cs_run *r = c->r;
    fio_replay *rp = fio_replay_new(r->fio);
    uint64_t n = fio_calls(r->fio);
    KVT_CHECK_FATAL(rp != NULL, "out of memory for the replay");
    c->imgdir = imgdir;
    wal_syncs(r->fio, &c->syncs);
    for (uint64_t k = 0; k <= n && c->violations < CS_MAX_FAILURES; k++) {
        fio_replay_to(rp, k);
        c->st->points++;
        for (size_t pi = 0; pi < sizeof cs_variants / sizeof *cs_variants; pi++) {
            unsigned reps = kvt_quick() ? cs_variants[pi].quick : cs_variants[pi].normal;
            for (unsigned s = 0; s < reps; s++) {
                fio_image img;
                uint64_t seed = kvt_mix64((k << 16) ^ (pi << 8) ^ s ^ (uint64_t)r->mode << 40);
                int rc = fio_image_build(rp, cs_variants[pi].v, seed, &img);
                KVT_CHECK_FATAL(rc >= 0, "building an image: %s", strerror(-rc));
                if (rc == 1)
                    break;
                c->st->images++;
                check_image(c, k, cs_variants[pi].v, seed, &img);
                fio_image_free(&img);
            }
        }
    }
    const char *me = fio_model_error(r->fio);
    if (me != NULL)
        violation(c, "%s, %s: the layer could not model a call: %s", r->wl->name,
                  mode_name(r->mode), me);
    fio_replay_free(rp);
}

/* One life over the live layer in dir (already holding an image or empty). */
static void live_run(cs_run *r, const cs_workload *wl, int mode, const char *dir)
{
    fio *f = fio_new(dir);
    KVT_CHECK_FATAL(f != NULL, "fio_new(%s) failed", dir);
    run_init(r, wl, mode, dir, f);
    if (g_mutant_op != 0)
        fio_drop(f, g_mutant_op, g_mutant_suffix);
    cs_route(r);
    run_open(r);
}

static void add_stats(cs_stats *into, const cs_stats *s)
{
    into->points += s->points;
    into->images += s->images;
    into->distinct += s->distinct;
    into->opened += s->opened;
    into->error_points += s->error_points;
}

/* Crash images of a source workload to start second lives from: up to n, at
 * evenly spaced calls, with something pending (torn tails, leftovers). */
typedef struct cs_seed {
    fio_image img;
    uint64_t k;            /* the crash point */
    fio_variant v;
} cs_seed;

static size_t pick_seeds(cs_run *src, cs_seed *out, size_t n)
{
    fio_replay *rp = fio_replay_new(src->fio);
    uint64_t calls = fio_calls(src->fio);
    size_t got = 0;
    KVT_CHECK_FATAL(rp != NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        uint64_t k = calls * (i + 1) / (n + 1);
        fio_variant v = i % 3 == 0 ? FIO_V_SUBSET : i % 3 == 1 ? FIO_V_PREFIX : FIO_V_TEAR_LAST;
        fio_replay_to(rp, k);
        int rc = fio_image_build(rp, v, kvt_mix64(k * 7 + i), &out[got].img);
        if (rc == 1) {
            v = FIO_V_DURABLE;
            rc = fio_image_build(rp, v, 0, &out[got].img);
        }
        KVT_CHECK_FATAL(rc == 0, "building a seed image");
        out[got].k = k;
        out[got].v = v;
        got++;
    }
    fio_replay_free(rp);
    return got;
}

/* The ops of the source history a second life starts from: the prefix its first
 * open recovered. Returns the prefix length, or -1 (a violation is recorded). */
static long recovered_prefix(cs_check *c, cs_run *src, const cs_syncs *ss, const cs_seed *sd,
                             kv_db *db)
{
    cs_obs o;
    uint8_t *match = calloc(src->nops + 1, 1);
    KVT_CHECK_FATAL(match != NULL, "out of memory");
    int rc = observe(src->wl, db, &o);
    long p = -1;
    if (rc == KV_OK && !o.bad) {
        match_prefixes(src, &o, match);
        size_t req = required_prefix(src, ss, sd->k, sd->v == FIO_V_KERNEL);
        for (size_t q = started_prefix(src, sd->k) + 1; q-- > req;)
            if (match[q]) {
                p = (long)q;
                break;
            }
    }
    if (p < 0)
        violation(c, "%s, %s: the store recovered from a crash after call %llu (%s) holds no "
                  "valid prefix: %s", src->wl->name, mode_name(src->mode),
                  (unsigned long long)sd->k, fio_variant_name[sd->v],
                  rc != KV_OK ? kv_errmsg() : o.bad ? o.why : "state mismatch");
    free(match);
    return p;
}

/* Power failures at every call of workload wl under mode; returns violations
 * (the first described in first). */
static unsigned power_workload(const cs_workload *wl, int mode, const char *scratch,
                               cs_stats *st, char *first, size_t n)
{
    cs_check c = {0};
    cs_run r;
    c.st = st;
    c.r = &r;
    char *imgdir = kvt_path(scratch, "img");
    if (wl->from == NULL) {
        live_run(&r, wl, mode, cs_subdir(scratch, "live"));
        run_body(&r);
        if (r.failures > 0)
            violation(&c, "%s, %s: while running: %s", wl->name, mode_name(mode), r.why);
        verify_crash_points(&c, imgdir);
        run_free(&r);
    } else {
        cs_run src;
        cs_syncs ss;
        cs_seed seeds[CS_LIVES];
        live_run(&src, wl_find(wl->from), mode, cs_subdir(scratch, "source"));
        run_body(&src);
        wal_syncs(src.fio, &ss);
        size_t ns = pick_seeds(&src, seeds, kvt_quick() ? 3 : CS_LIVES);
        for (size_t i = 0; i < ns && c.violations == 0; i++) {
            char name[32];
            cs_check life = {.st = st, .r = &r};
            snprintf(name, sizeof name, "life2-%zu", i);
            char *dir = cs_subdir(scratch, name);
            KVT_CHECK_FATAL(fio_image_write(&seeds[i].img, dir) == 0, "writing a seed image");
            live_run(&r, wl, mode, dir);
            r.next_id = src.next_id + 1000 * (i + 1);
            kvt_rng_seed(&r.rng, kvt_mix64(i + 77));
            long p = r.db != NULL ? recovered_prefix(&life, &src, &ss, &seeds[i], r.db) : -1;
            if (r.db == NULL)
                violation(&life, "%s, %s: opening a crashed store: %s", wl->name, mode_name(mode),
                          r.why);
            if (p >= 0) {
                /* this life's history starts with what the first open recovered */
                r.cap = src.nops + 64;
                r.ops = malloc(r.cap * sizeof *r.ops);
                KVT_CHECK_FATAL(r.ops != NULL, "out of memory");
                memcpy(r.ops, src.ops, (size_t)p * sizeof *r.ops);
                r.nops = r.nbase = (size_t)p;
                run_body(&r);
                if (r.failures > 0)
                    violation(&life, "%s, %s: while running: %s", wl->name, mode_name(mode), r.why);
                verify_crash_points(&life, imgdir);
            }
            if (life.violations > 0 && c.violations++ == 0)
                snprintf(c.first, sizeof c.first, "second life from image %zu: %.900s", i, life.first);
            check_free(&life);
            run_free(&r);
            kvt_rmtree(dir);
        }
        for (size_t i = 0; i < ns; i++)
            fio_image_free(&seeds[i].img);
        free(ss.at);
        run_free(&src);
    }
    snprintf(first, n, "%s", c.first);
    unsigned v = c.violations;
    check_free(&c);
    return v;
}

/* ---------------------------------------------------------------------------------
 * I/O errors at every call
 * ------------------------------------------------------------------------------ */

/* Must an API call report that call c failed? A hint file only costs speed, and
 * unlink (a leftover is removed at the next open), close and map (reads fall back
 * to pread) may fail in silence; everything else is reported. */
static int must_report(const fio_call *c)
{
    if (strstr(c->name, ".hint") != NULL)
        return 0;
    return c->op != FIO_CLOSE && c->op != FIO_UNLINK && c->op != FIO_MAP;
}

/* Checks the state o holds a prefix of r's history in [req, nops]. */
static void check_obs(cs_check *c, cs_run *r, const cs_obs *o, size_t req, const char *what)
{
    uint8_t *match = calloc(r->nops + 1, 1);
    char diff[400];
    KVT_CHECK_FATAL(match != NULL, "out of memory");
    match_prefixes(r, o, match);
    int ok = 0;
    for (size_t p = req; p <= r->nops && !ok; p++)
        ok = match[p];
    if (!ok) {
        describe_diff(r, o, req, diff, sizeof diff);
        violation(c, "%s: the state is no valid prefix (must hold ops 1..%zu of %zu):%s", what,
                  req, r->nops, diff);
    }
    free(match);
}

typedef struct cs_start {
    const fio_image *img;  /* the store the run starts from, or NULL (none) */
    const cs_op *base;     /* the history it holds */
    size_t nbase;
    uint64_t next_id;
    uint64_t rng_seed;     /* 0: the workload's own */
} cs_start;

/* One run of wl with call k failing. Returns 0 when the run made fewer calls. */
static int error_run(cs_check *c, const cs_workload *wl, int mode, const char *scratch,
                     const cs_start *from, uint64_t k)
{
    cs_run r;
    char desc[160], what[300], why[200];
    char *dir = cs_subdir(scratch, "err");
    char *imgdir = kvt_path(scratch, "img");
    if (from->img != NULL)
        KVT_CHECK_FATAL(fio_image_write(from->img, dir) == 0, "writing the start image");
    fio *f = fio_new(dir);
    KVT_CHECK_FATAL(f != NULL, "fio_new failed");
    run_init(&r, wl, mode, dir, f);
    r.error_run = 1;
    if (from->rng_seed != 0)
        kvt_rng_seed(&r.rng, from->rng_seed);
    if (from->nbase > 0) {
        r.cap = from->nbase + 64;
        r.ops = malloc(r.cap * sizeof *r.ops);
        KVT_CHECK_FATAL(r.ops != NULL, "out of memory");
        memcpy(r.ops, from->base, from->nbase * sizeof *r.ops);
        r.nops = r.nbase = from->nbase;
        r.next_id = from->next_id;
    }
    fio_fail_at(f, k);
    cs_route(&r);
    run_open(&r);
    run_body(&r);
    cs_route(NULL);
    const fio_call *call = fio_call_at(f, k);
    if (call == NULL) {
        run_free(&r);
        return 0;
    }
    c->st->error_points++;
    snprintf(what, sizeof what, "%s, %s: I/O error at call %s", wl->name, mode_name(mode),
             fio_describe(f, k, desc, sizeof desc));
    if (r.failures > 0)
        violation(c, "%s: %s", what, r.why);
    if (must_report(call) && !r.saw_error)
        violation(c, "%s: no API call reported the failure", what);

    /* a power failure now: what is durable must hold every durable acknowledgement */
    fio_replay *rp = fio_replay_new(f);
    fio_image img;
    cs_obs o;
    cs_syncs ss;
    KVT_CHECK_FATAL(rp != NULL, "out of memory");
    fio_replay_to(rp, fio_calls(f));
    KVT_CHECK_FATAL(fio_image_build(rp, FIO_V_DURABLE, 0, &img) == 0, "building an image");
    wal_syncs(f, &ss);
    kvt_rmtree(imgdir);
    KVT_CHECK_FATAL(mkdir(imgdir, 0755) == 0 && fio_image_write(&img, imgdir) == 0,
                    "writing an image");
    char then[400];
    snprintf(then, sizeof then, "%s, then a power failure", what);
    if (open_observe(wl, imgdir, (int)k, &o, why, sizeof why) != 0)
        violation(c, "%s: %s", then, why);
    else
        check_obs(c, &r, &o, required_prefix(&r, &ss, fio_calls(f), 0), then);

    /* the store as it is, reopened with the default layer: nothing acknowledged lost */
    snprintf(then, sizeof then, "%s, then reopening", what);
    if (open_observe(wl, dir, (int)k, &o, why, sizeof why) != 0)
        violation(c, "%s: %s", then, why);
    else
        check_obs(c, &r, &o, required_prefix(&r, &ss, fio_calls(f), 1), then);
    fio_image_free(&img);
    fio_replay_free(rp);
    free(ss.at);
    run_free(&r);
    kvt_rmtree(dir);
    return 1;
}

/* The calls of a clean run from `from`: the error points. */
static uint64_t count_calls(const cs_workload *wl, int mode, const char *scratch,
                            const cs_start *from)
{
    cs_run r;
    char *dir = cs_subdir(scratch, "count");
    if (from->img != NULL)
        KVT_CHECK_FATAL(fio_image_write(from->img, dir) == 0, "writing the start image");
    live_run(&r, wl, mode, dir);
    if (from->rng_seed != 0)
        kvt_rng_seed(&r.rng, from->rng_seed);
    run_body(&r);
    uint64_t n = fio_calls(r.fio);
    run_free(&r);
    return n;
}

/* An I/O error at every call of workload wl under mode (for a second-life
 * workload: of the second life, from a few crash images of the source). */
static unsigned error_workload(const cs_workload *wl, int mode, const char *scratch,
                               cs_stats *st, char *first, size_t n)
{
    cs_check c = {.st = st};
    if (wl->from == NULL) {
        cs_start from = {0};
        uint64_t calls = count_calls(wl, mode, scratch, &from);
        /* KV_SYNC_INTERVAL runs vary a little: a few more points in case */
        uint64_t last = calls + (mode == KV_SYNC_INTERVAL ? 4 : 0);
        for (uint64_t k = 1; k <= last && c.violations < CS_MAX_FAILURES; k++)
            error_run(&c, wl, mode, scratch, &from, k);
    } else {
        cs_run src;
        cs_syncs ss;
        cs_seed seeds[4];
        live_run(&src, wl_find(wl->from), mode, cs_subdir(scratch, "source"));
        run_body(&src);
        wal_syncs(src.fio, &ss);
        size_t ns = pick_seeds(&src, seeds, kvt_quick() ? 1 : 2);
        for (size_t i = 0; i < ns && c.violations == 0; i++) {
            /* what the first open of this image recovers: the base history */
            cs_run probe;
            char *dir = cs_subdir(scratch, "probe");
            KVT_CHECK_FATAL(fio_image_write(&seeds[i].img, dir) == 0, "writing a seed image");
            live_run(&probe, wl, mode, dir);
            long p = probe.db != NULL ? recovered_prefix(&c, &src, &ss, &seeds[i], probe.db) : -1;
            run_free(&probe);
            if (p < 0)
                break;
            cs_start from = {&seeds[i].img, src.ops, (size_t)p, src.next_id + 1000,
                             kvt_mix64(i + 77)};
            uint64_t calls = count_calls(wl, mode, scratch, &from);
            uint64_t last = calls + (mode == KV_SYNC_INTERVAL ? 4 : 0);
            for (uint64_t k = 1; k <= last && c.violations < CS_MAX_FAILURES; k++)
                error_run(&c, wl, mode, scratch, &from, k);
        }
        for (size_t i = 0; i < ns; i++)
            fio_image_free(&seeds[i].img);
        free(ss.at);
        run_free(&src);
    }
    snprintf(first, n, "%s", c.first);
    unsigned v = c.violations;
    check_free(&c);
    return v;
}

/* ---------------------------------------------------------------------------------
 * The uring and psync backends make the same durable calls
 *
 * A recording layer wraps a default layer (io_uring or psync) and writes down
 * every call that changes a file or a name, with offsets, lengths and a hash of the
 * bytes; after each write_group it reads the bytes back to see that the ring put
 * them where they belong. The same workload over both must give the same record.
 * ------------------------------------------------------------------------------ */

typedef struct rec_io {
    char *trace;           /* one line per durable call */
    size_t len, cap;
    struct { int fd; char name[40]; } fds[64];
    int nfds;
    int backend;           /* of the wrapped layers */
    unsigned groups;       /* write_group calls */
    unsigned bad_landing;  /* ... whose bytes did not read back */
} rec_io;

typedef struct rec_kvio {
    kv_io io;              /* first: what the engine holds */
    rec_io *rec;
    kv_io *inner;          /* the default layer */
} rec_kvio;

__attribute__((format(printf, 2, 3))) static void rec_log(rec_io *rec, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        n = (int)strlen(line);
    char *t = grow(rec->trace, &rec->cap, rec->len + (size_t)n + 2, 1, 65536, 0);
    if (t == NULL)
        return;
    rec->trace = t;
    memcpy(rec->trace + rec->len, line, (size_t)n);
    rec->len += (size_t)n;
    rec->trace[rec->len++] = '\n';
    rec->trace[rec->len] = '\0';
}

static const char *rec_name(rec_io *rec, int fd)
{
    for (int i = 0; i < rec->nfds; i++)
        if (rec->fds[i].fd == fd)
            return rec->fds[i].name;
    return "?";
}

#define REC_INNER(io) (((rec_kvio *)(io))->inner)
#define REC(io) (((rec_kvio *)(io))->rec)

static int rw_open(kv_io *io, int dirfd, const char *name, int flags, int mode)
{
    kv_io *in = REC_INNER(io);
    rec_io *rec = REC(io);
    int fd = in->ops->open(in, dirfd, name, flags, mode);
    if (fd >= 0) {
        int i = 0;
        while (i < rec->nfds && rec->fds[i].fd != fd)
            i++;
        if (i < 64) {
            rec->fds[i].fd = fd;
            snprintf(rec->fds[i].name, sizeof rec->fds[i].name, "%s", name);
            if (i == rec->nfds)
                rec->nfds++;
        }
    }
    if (flags & (O_CREAT | O_TRUNC))
        rec_log(rec, "open %s%s%s%s -> %s", name, flags & O_CREAT ? " creat" : "",
                flags & O_EXCL ? " excl" : "", flags & O_TRUNC ? " trunc" : "",
                fd >= 0 ? "ok" : strerror(-fd));
    return fd;
}

static int rw_close(kv_io *io, int fd)
{
    return REC_INNER(io)->ops->close(REC_INNER(io), fd);
}

static ssize_t rw_pread(kv_io *io, int fd, void *buf, size_t n, uint64_t off)
{
    return REC_INNER(io)->ops->pread(REC_INNER(io), fd, buf, n, off);
}

static ssize_t rw_pwrite(kv_io *io, int fd, const void *buf, size_t n, uint64_t off)
{
    ssize_t r = REC_INNER(io)->ops->pwrite(REC_INNER(io), fd, buf, n, off);
    rec_log(REC(io), "pwrite %s off %llu len %zu hash %016llx -> %zd", rec_name(REC(io), fd),
            (unsigned long long)off, n, (unsigned long long)XXH3_64bits(buf, n), r);
    return r;
}

static int rw_fdatasync(kv_io *io, int fd)
{
    int r = REC_INNER(io)->ops->fdatasync(REC_INNER(io), fd);
    rec_log(REC(io), "fdatasync %s -> %d", rec_name(REC(io), fd), r);
    return r;
}

static int rw_ftruncate(kv_io *io, int fd, uint64_t size)
{
    int r = REC_INNER(io)->ops->ftruncate(REC_INNER(io), fd, size);
    rec_log(REC(io), "ftruncate %s %llu -> %d", rec_name(REC(io), fd), (unsigned long long)size, r);
    return r;
}

static int rw_fsize(kv_io *io, int fd, uint64_t *size)
{
    return REC_INNER(io)->ops->fsize(REC_INNER(io), fd, size);
}

static int rw_rename(kv_io *io, int dirfd, const char *from, const char *to)
{
    int r = REC_INNER(io)->ops->rename(REC_INNER(io), dirfd, from, to);
    rec_log(REC(io), "rename %s %s -> %d", from, to, r);
    return r;
}

static int rw_unlink(kv_io *io, int dirfd, const char *name)
{
    int r = REC_INNER(io)->ops->unlink(REC_INNER(io), dirfd, name);
    rec_log(REC(io), "unlink %s -> %d", name, r);
    return r;
}

static int rw_syncdir(kv_io *io, int dirfd)
{
    int r = REC_INNER(io)->ops->syncdir(REC_INNER(io), dirfd);
    rec_log(REC(io), "syncdir -> %d", r);
    return r;
}

static int rw_write_group(kv_io *io, int fd, const struct iovec *iov, int iovcnt, uint64_t off,
                          int sync)
{
    kv_io *in = REC_INNER(io);
    rec_io *rec = REC(io);
    size_t total = 0, at = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    uint8_t *all = malloc(total + 1), *back = malloc(total + 1);
    KVT_CHECK_FATAL(all != NULL && back != NULL, "out of memory");
    for (int i = 0; i < iovcnt; i++) {
        memcpy(all + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    int r = in->ops->write_group(in, fd, iov, iovcnt, off, sync);
    rec->groups++;
    if (r == 0 && (io_pread_full(in, fd, back, total, off) != (ssize_t)total
                   || memcmp(all, back, total) != 0))
        rec->bad_landing++;
    rec_log(rec, "write_group %s off %llu len %zu hash %016llx sync %d -> %d", rec_name(rec, fd),
            (unsigned long long)off, total, (unsigned long long)XXH3_64bits(all, total), sync, r);
    free(all);
    free(back);
    return r;
}

static int rw_map(kv_io *io, int fd, size_t len, const void **out)
{
    return REC_INNER(io)->ops->map(REC_INNER(io), fd, len, out);
}

static void rw_unmap(kv_io *io, const void *p, size_t len)
{
    REC_INNER(io)->ops->unmap(REC_INNER(io), p, len);
}

static const kv_io_ops rec_ops = {
    rw_open, rw_close, rw_pread, rw_pwrite, rw_fdatasync, rw_ftruncate, rw_fsize,
    rw_rename, rw_unlink, rw_syncdir, rw_write_group, rw_map, rw_unmap,
};

static void rec_destroy(kv_io *io)
{
    io_free(REC_INNER(io));
    free(io);
}

static int rec_make_io(rec_io *rec, int want, kv_io **out)
{
    kv_io *inner;
    int rc = io_new(want, &inner);
    if (rc != KV_OK)
        return rc;
    rec_kvio *w = calloc(1, sizeof *w);
    if (w == NULL) {
        io_free(inner);
        return KV_ENOMEM;
    }
    w->io.ops = &rec_ops;
    w->io.backend = inner->backend;
    w->io.destroy = rec_destroy;
    snprintf(w->io.note, sizeof w->io.note, "%s", inner->note);
    w->rec = rec;
    w->inner = inner;
    rec->backend = inner->backend;
    *out = &w->io;
    return KV_OK;
}

/* Runs wl under KV_SYNC_ALWAYS with backend want, recording into rec. */
static void rec_run(const cs_workload *wl, int want, const char *dir, rec_io *rec)
{
    cs_run r;
    run_init(&r, wl, KV_SYNC_ALWAYS, dir, NULL);
    r.rec = rec;
    r.opts.io = want;
    cs_route(&r);
    run_open(&r);
    run_body(&r);
    KVT_CHECK(r.failures == 0, "%s over %s: %s", wl->name, want == KV_IO_URING ? "io_uring" : "psync",
              r.why);
    run_free(&r);
}

/* Compares the files (LOCK aside) of two directories byte for byte. Returns 1 when
 * they hold the same names and bytes, else 0 with the first difference in why. */
static int same_files(const char *a, const char *b, char *why, size_t n)
{
    int same = 1;
    for (int side = 0; side < 2 && same; side++) {
        const char *x = side ? b : a, *y = side ? a : b;
        fio *fx = fio_new(x), *fy = fio_new(y);
        fio_replay *rx = fx ? fio_replay_new(fx) : NULL, *ry = fy ? fio_replay_new(fy) : NULL;
        fio_image ix = {0}, iy = {0};
        KVT_CHECK_FATAL(rx != NULL && ry != NULL && fio_image_build(rx, FIO_V_DURABLE, 0, &ix) == 0
                        && fio_image_build(ry, FIO_V_DURABLE, 0, &iy) == 0,
                        "reading %s and %s", x, y);
        for (size_t i = 0, j = 0; i < ix.n && same; i++) {
            if (strcmp(ix.files[i].name, "LOCK") == 0)
                continue;
            while (j < iy.n && strcmp(iy.files[j].name, ix.files[i].name) < 0)
                j++;
            if (j == iy.n || strcmp(iy.files[j].name, ix.files[i].name) != 0) {
                snprintf(why, n, "%s is in %s only", ix.files[i].name, x);
                same = 0;
            } else if (iy.files[j].len != ix.files[i].len
                       || memcmp(iy.files[j].data, ix.files[i].data, ix.files[i].len) != 0) {
                snprintf(why, n, "%s differs between %s and %s", ix.files[i].name, x, y);
                same = 0;
            }
        }
        fio_image_free(&ix);
        fio_image_free(&iy);
        fio_replay_free(rx);
        fio_replay_free(ry);
        fio_free(fx);
        fio_free(fy);
    }
    return same;
}

static void test_uring_psync(void)
{
    const char *names[] = {"rolls", "batches", "hints"};
    char *scratch = cs_scratch();
    io_set_factory(cs_factory, NULL);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        rec_io ru = {0}, rp = {0};
        char why[300];
        const cs_workload *wl = wl_find(names[i]);
        char *du = cs_subdir(scratch, "uring"), *dp = cs_subdir(scratch, "psync");
        rec_run(wl, KV_IO_URING, du, &ru);
        rec_run(wl, KV_IO_PSYNC, dp, &rp);
        KVT_CHECK(ru.backend == KV_IO_URING, "%s: the io_uring run used backend %d", wl->name,
                  ru.backend);
        KVT_CHECK(rp.backend == KV_IO_PSYNC, "%s: the psync run used backend %d", wl->name,
                  rp.backend);
        KVT_CHECK(ru.groups > 10 && ru.groups == rp.groups, "%s: %u and %u write groups",
                  wl->name, ru.groups, rp.groups);
        KVT_CHECK(ru.bad_landing == 0 && rp.bad_landing == 0, "%s: write groups whose bytes "
                  "did not read back: io_uring %u, psync %u", wl->name, ru.bad_landing,
                  rp.bad_landing);
        const char *a = ru.trace ? ru.trace : "", *b = rp.trace ? rp.trace : "";
        size_t at = 0, line = 1;
        while (a[at] != '\0' && a[at] == b[at]) {
            line += a[at] == '\n';
            at++;
        }
        KVT_CHECK(a[at] == b[at], "%s: the durable calls differ from line %zu: io_uring \"%.80s\" "
                  "psync \"%.80s\"", wl->name, line, a + at, b + at);
        KVT_CHECK(same_files(du, dp, why, sizeof why), "%s: %s", wl->name, why);
        if (i == 0)
            kvt_note("%s: %u write groups, %zu bytes of durable-call record, identical on both "
                     "backends", wl->name, ru.groups, ru.len);
        free(ru.trace);
        free(rp.trace);
    }
    io_set_factory(NULL, NULL);
}

/* ---------------------------------------------------------------------------------
 * Self-tests of the layer
 * ------------------------------------------------------------------------------ */

/* The image of variant v (seed) at call k holds file name with content want
 * (want NULL: the file is absent). */
static int image_has(fio *f, uint64_t k, fio_variant v, uint64_t seed, const char *name,
                     const char *want, size_t wlen, fio_image *keep)
{
    fio_replay *rp = fio_replay_new(f);
    fio_image img;
    fio_replay_to(rp, k);
    int rc = fio_image_build(rp, v, seed, &img), ok = 0;
    fio_replay_free(rp);
    if (rc != 0)
        return 0;
    const fio_file *ff = NULL;
    for (size_t i = 0; i < img.n; i++)
        if (strcmp(img.files[i].name, name) == 0)
            ff = &img.files[i];
    if (want == NULL)
        ok = ff == NULL;
    else
        ok = ff != NULL && ff->len == wlen && memcmp(ff->data, want, wlen) == 0;
    if (keep != NULL)
        *keep = img;
    else
        fio_image_free(&img);
    return ok;
}

static void test_layer_model(void)
{
    char *dir = cs_subdir(cs_scratch(), "model");
    fio *f = fio_new(dir);
    kv_io *io;
    KVT_CHECK_FATAL(f != NULL && fio_make_io(f, KV_IO_PSYNC, &io) == KV_OK, "fio_new");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    int fd = io->ops->open(io, dfd, "a", O_RDWR | O_CREAT | O_EXCL, 0644);   /* call 1 */
    KVT_CHECK_FATAL(fd >= 0, "open: %s", strerror(-fd));
    KVT_RC(io_pwrite_full(io, fd, "hello", 5, 0), 0);                        /* 2 */
    KVT_RC(io->ops->fdatasync(io, fd), 0);                                    /* 3 */
    KVT_RC(io->ops->syncdir(io, dfd), 0);                                     /* 4 */
    struct iovec iov = {(void *)(uintptr_t)"world!", 6};
    KVT_RC(io->ops->write_group(io, fd, &iov, 1, 5, 0), 0);                   /* 5 */
    int t = io->ops->open(io, dfd, "t", O_RDWR | O_CREAT | O_EXCL, 0644);    /* 6 */
    KVT_RC(io_pwrite_full(io, t, "T1", 2, 0), 0);                             /* 7 */
    KVT_RC(io->ops->fdatasync(io, t), 0);                                     /* 8 */
    KVT_RC(io->ops->rename(io, dfd, "t", "a"), 0);                            /* 9 */
    KVT_CHECK(fio_calls(f) == 9, "9 calls counted, not %llu", (unsigned long long)fio_calls(f));

    /* a new name is not durable before the directory fsync; data not before fdatasync */
    KVT_CHECK(image_has(f, 1, FIO_V_DURABLE, 0, "a", NULL, 0, NULL), "call 1, durable: no a");
    KVT_CHECK(image_has(f, 1, FIO_V_KERNEL, 0, "a", "", 0, NULL), "call 1, kernel: empty a");
    KVT_CHECK(image_has(f, 3, FIO_V_DURABLE, 0, "a", NULL, 0, NULL), "call 3, durable: no a");
    KVT_CHECK(image_has(f, 2, FIO_V_KERNEL, 0, "a", "hello", 5, NULL), "call 2, kernel: hello");
    KVT_CHECK(image_has(f, 4, FIO_V_DURABLE, 0, "a", "hello", 5, NULL), "call 4, durable: hello");
    /* an unsynced write: lost, kept, torn, kept in part, flipped */
    KVT_CHECK(image_has(f, 5, FIO_V_DURABLE, 0, "a", "hello", 5, NULL), "call 5, durable: hello");
    KVT_CHECK(image_has(f, 5, FIO_V_KERNEL, 0, "a", "helloworld!", 11, NULL), "call 5, kernel");
    int torn = 0, zero = 0, whole = 0, lost = 0, flips = 0;
    for (uint64_t seed = 1; seed <= 64; seed++) {
        fio_image img;
        for (size_t len = 6; len <= 10; len++)
            torn += image_has(f, 5, FIO_V_TEAR_LAST, seed, "a", "helloworld!", len, NULL);
        image_has(f, 5, FIO_V_TEAR_LAST, seed, "a", "", 0, &img);
        for (size_t i = 0; i < img.n; i++)
            zero += img.files[i].len == 11 && memcmp(img.files[i].data, "hello", 5) == 0
                    && img.files[i].data[10] == 0;
        fio_image_free(&img);
        whole += image_has(f, 5, FIO_V_SUBSET, seed, "a", "helloworld!", 11, NULL);
        lost += image_has(f, 5, FIO_V_SUBSET, seed, "a", "hello", 5, NULL);
        image_has(f, 5, FIO_V_FLIP, seed, "a", "", 0, &img);
        for (size_t i = 0; i < img.n; i++) {
            unsigned bits = 0;
            for (size_t b = 0; b < 11 && img.files[i].len == 11; b++)
                bits += (unsigned)__builtin_popcount(img.files[i].data[b] ^ (uint8_t)"helloworld!"[b]);
            flips += bits == 1 && memcmp(img.files[i].data, "hello", 5) == 0;
        }
        fio_image_free(&img);
    }
    KVT_CHECK(torn > 0 && zero > 0, "tear-last: %d cut and %d zero-filled tears in 64 seeds",
              torn, zero);
    KVT_CHECK(whole > 0 && lost > 0 && whole + lost == 64, "subset: kept %d, lost %d of 64",
              whole, lost);
    KVT_CHECK(flips == 64, "flip: %d of 64 images differ by one bit in the pending write", flips);
    /* rename: the old file until the directory fsync */
    KVT_CHECK(image_has(f, 9, FIO_V_DURABLE, 0, "a", "hello", 5, NULL), "call 9, durable: old a");
    KVT_CHECK(image_has(f, 9, FIO_V_KERNEL, 0, "a", "T1", 2, NULL), "call 9, kernel: renamed");
    KVT_CHECK(image_has(f, 9, FIO_V_KERNEL, 0, "t", NULL, 0, NULL), "call 9, kernel: no t");
    /* injected errors: EIO; ENOSPC after half the bytes for a write */
    fio_fail_at(f, 10);
    KVT_RC(io->ops->pwrite(io, fd, "abcdef", 6, 0), -ENOSPC);
    char back[8] = {0};
    KVT_CHECK(pread(fd, back, 6, 0) == 6 && memcmp(back, "abclo", 5) == 0,
              "ENOSPC left \"%.6s\", expected the first half written", back);
    fio_fail_at(f, 11);
    KVT_RC(io->ops->fdatasync(io, fd), -EIO);
    KVT_CHECK(fio_call_at(f, 11)->injected && fio_call_at(f, 11)->op == FIO_FDATASYNC,
              "call 11 recorded as an injected fdatasync failure");
    KVT_CHECK(fio_model_error(f) == NULL, "model error: %s", fio_model_error(f));
    io->ops->close(io, fd);
    io->ops->close(io, t);
    close(dfd);
    io_free(io);
    fio_free(f);
}


/* ---------------------------------------------------------------------------------
 * Regressions: engine bugs this suite found, each pinned by a direct test
 * ------------------------------------------------------------------------------ */

/* A power failure now: writes the durable state of f's directory into img and
 * opens it with the default layer. */
static kv_db *power_fail_open(fio *f, const char *img)
{
    fio_replay *rp = fio_replay_new(f);
    fio_image im;
    kv_db *db = NULL;
    KVT_CHECK_FATAL(rp != NULL, "out of memory");
    fio_replay_to(rp, fio_calls(f));
    KVT_CHECK_FATAL(fio_image_build(rp, FIO_V_DURABLE, 0, &im) == 0, "building an image");
    KVT_CHECK_FATAL(fio_image_write(&im, img) == 0, "writing an image");
    fio_image_free(&im);
    fio_replay_free(rp);
    KVT_RC_FATAL(kvt_open_mode(img, KV_SYNC_ALWAYS, KV_IO_PSYNC, 0, &db), KV_OK);
    return db;
}

/* Calls of kind op made so far (no store open: no other thread adds any). */
static unsigned calls_of(fio *f, int op)
{
    unsigned n = 0;
    for (uint64_t k = 1; k <= fio_calls(f); k++)
        n += fio_call_at(f, k)->op == op;
    return n;
}

/* A layer over a fresh directory that kv_open will use. */
static fio *reg_layer(char **dir, char **img)
{
    char *scratch = cs_scratch();
    *dir = cs_subdir(scratch, "store");
    *img = cs_subdir(scratch, "img");
    fio *f = fio_new(*dir);
    KVT_CHECK_FATAL(f != NULL, "fio_new");
    route_set(*dir, f, NULL);
    io_set_factory(cs_factory, NULL);
    return f;
}

static void reg_done(fio *f)
{
    io_set_factory(NULL, NULL);
    route_set(NULL, NULL, NULL);
    fio_free(f);
}

/* Found by "I/O error at every call: puts" (call 13, the creation's directory
 * fsync): kv_open failed, the retry found the MANIFEST in place and never fsynced
 * the directory, so writes acknowledged under KV_SYNC_ALWAYS lived in files whose
 * names were not durable, and a power failure lost the whole store. */
static void test_reg_syncdir_create(void)
{
    char *dir, *img;
    kv_db *db = NULL;
    kv_options o;
    fio *f = reg_layer(&dir, &img);
    kvt_options(&o, KV_SYNC_ALWAYS, KV_IO_AUTO, 0);
    fio_fail_nth(f, FIO_SYNCDIR, NULL, 1);
    KVT_RC(kv_open(dir, &o, &db), KV_EIO);
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    KVT_RC(kvt_put_str(db, "k", "acknowledged"), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);
    db = power_fail_open(f, img);
    KVT_ASSERT_VALUE(db, "k", 1, "acknowledged", 12);
    kvt_close(db);
    reg_done(f);
}

/* Found by "I/O error at every call: segment rolls" (the roll's directory fsync
 * after the MANIFEST rename): the write failed as it should, but the reopened
 * store wrote to the new segment and WAL, whose names stayed undurable. */
static void test_reg_syncdir_roll(void)
{
    char *dir, *img, val[1000];
    kv_db *db = NULL;
    kv_options o;
    int rc = KV_OK, acked = 0;
    fio *f = reg_layer(&dir, &img);
    kvt_options(&o, KV_SYNC_ALWAYS, KV_IO_AUTO, 4096);
    memset(val, 'v', sizeof val - 1);
    val[sizeof val - 1] = '\0';
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    fio_fail_nth(f, FIO_SYNCDIR, NULL, calls_of(f, FIO_SYNCDIR) + 1); /* the first roll's */
    for (int i = 0; i < 20 && rc == KV_OK; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        rc = kvt_put_str(db, k, val);
        acked += rc == KV_OK;
    }
    KVT_RC(rc, KV_EIO);
    kvt_close(db);
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    KVT_RC(kvt_put_str(db, "after", "reopened"), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);
    db = power_fail_open(f, img);
    for (int i = 0; i < acked; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        KVT_ASSERT_VALUE(db, k, strlen(k), val, strlen(val));
    }
    KVT_ASSERT_VALUE(db, "after", 5, "reopened", 8);
    kvt_close(db);
    reg_done(f);
}

/* Found by "I/O error at every call: MANIFEST updates" (KV_SYNC_INTERVAL): the
 * interval thread's fdatasync failed after the last write, and kv_close returned
 * KV_OK, so no call ever told the application that the writes of the last
 * interval were not durable. */
static void test_reg_close_reports_background_failure(void)
{
    char *dir, *img;
    kv_db *db = NULL;
    kv_options o;
    fio *f = reg_layer(&dir, &img);
    kvt_options(&o, KV_SYNC_INTERVAL, KV_IO_AUTO, 0);
    o.sync_interval_ms = 1;
    fio_fail_nth(f, FIO_FDATASYNC, ".wal", 2); /* 1: the WAL header at creation */
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    KVT_RC(kvt_put_str(db, "k", "v"), KV_OK);
    for (int i = 0; i < 2000 && !fio_injected(f); i++)
        kvt_sleep_ms(1);
    KVT_CHECK(fio_injected(f), "the interval thread never synced the WAL");
    KVT_RC(kvt_close(db), KV_EIO);
    reg_done(f);
}

/* Found by "power failure at every call: recovery of crashed batches" (KV_SYNC_NONE,
 * a second life): open cut a torn batch off the WAL with an ftruncate it never
 * made durable, then gave new writes the cut sequence numbers. After a power
 * failure the cut bytes were back, and the first entry of the torn batch ("more
 * follows", seq 1) chained with a new write (seq 2) into a valid-looking batch: a
 * piece of a batch that never completed became visible, and a later write
 * without the one before it. */
static void test_reg_cut_tail_durable(void)
{
    char *dir, *img, va[51];
    kv_db *db = NULL;
    kv_options o;
    kv_batch *b = kv_batch_new();
    memset(va, 'a', 50);
    va[50] = '\0';
    char *scratch = cs_scratch();
    dir = cs_subdir(scratch, "store");
    /* a store whose WAL ends in a torn batch that never reached the segment */
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 0);
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    KVT_RC(kv_batch_put(b, "a", 1, va, 50), KV_OK);
    KVT_RC(kv_batch_put(b, "b", 1, va, 50), KV_OK);
    KVT_RC(kv_write(db, b), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);
    kv_batch_free(b);
    KVT_CHECK_FATAL(truncate(kvt_path(dir, "000001.wal"), 16 + 71 + 10) == 0
                    && truncate(kvt_path(dir, "000001.seg"), 16) == 0, "tearing the batch");
    /* the second life: recovery cuts the torn batch; two puts follow, the first
     * as long as the cut entry */
    fio *f = fio_new(dir);
    KVT_CHECK_FATAL(f != NULL, "fio_new");
    route_set(dir, f, NULL);
    io_set_factory(cs_factory, NULL);
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    KVT_ASSERT_ABSENT(db, "a", 1);
    KVT_RC(kv_put(db, "p", 1, va, 50), KV_OK);
    KVT_RC(kv_put(db, "q", 1, "q", 1), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);
    io_set_factory(NULL, NULL);
    route_set(NULL, NULL, NULL);
    /* power failures keeping any subset of what was not durable */
    fio_replay *rp = fio_replay_new(f);
    fio_replay_to(rp, fio_calls(f));
    int bad = 0;
    for (uint64_t seed = 1; seed <= 64 && !bad; seed++) {
        fio_image im;
        void *v = NULL;
        size_t vl;
        KVT_CHECK_FATAL(fio_image_build(rp, FIO_V_SUBSET, seed, &im) == 0, "building an image");
        img = cs_subdir(scratch, "img");
        KVT_CHECK_FATAL(fio_image_write(&im, img) == 0, "writing an image");
        fio_image_free(&im);
        KVT_RC_FATAL(kvt_open_mode(img, KV_SYNC_NONE, KV_IO_PSYNC, 0, &db), KV_OK);
        int has_a = kv_get(db, "a", 1, &v, &vl) == KV_OK;
        kv_free(v);
        int has_p = kv_get(db, "p", 1, &v, &vl) == KV_OK;
        kv_free(v);
        int has_q = kv_get(db, "q", 1, &v, &vl) == KV_OK;
        kv_free(v);
        kvt_close(db);
        bad = has_a || (has_q && !has_p);
        KVT_CHECK(!bad, "seed %llu: %s", (unsigned long long)seed,
                  has_a ? "a piece of the torn batch came back" : "q is there without p");
    }
    fio_replay_free(rp);
    fio_free(f);
}

/* ---------------------------------------------------------------------------------
 * The tests
 * ------------------------------------------------------------------------------ */

static const int cs_modes[] = {KV_SYNC_ALWAYS, KV_SYNC_NONE, KV_SYNC_INTERVAL};

typedef unsigned (*cs_workload_fn)(const cs_workload *wl, int mode, const char *scratch,
                                   cs_stats *st, char *first, size_t n);

/* Runs workload name under every sync mode through run (power failures or I/O
 * errors at every call); the figures go to the summary. */
static void workload_test(const char *name, cs_workload_fn run, cs_stats *st)
{
    const cs_workload *wl = wl_find(name);
    char *scratch = cs_scratch();
    io_set_factory(cs_factory, NULL);
    for (size_t m = 0; m < sizeof cs_modes / sizeof *cs_modes; m++) {
        char first[1024];
        unsigned v = run(wl, cs_modes[m], scratch, st, first, sizeof first);
        KVT_CHECK(v == 0, "%u violations; the first: %s", v, first);
    }
    io_set_factory(NULL, NULL);
    add_stats(&g_total, st);
}

static void power_test(const char *name)
{
    uint64_t t0 = kvt_now_ms();
    cs_stats st = {0};
    workload_test(name, power_workload, &st);
    g_power_tests++;
    kvt_note("%s: %llu crash points, %llu images, %llu distinct states opened, %.1f s", name,
             (unsigned long long)st.points, (unsigned long long)st.images,
             (unsigned long long)st.distinct, (double)(kvt_now_ms() - t0) / 1000.0);
}

static void error_test(const char *name)
{
    uint64_t t0 = kvt_now_ms();
    cs_stats st = {0};
    workload_test(name, error_workload, &st);
    g_error_tests++;
    kvt_note("%s: %llu I/O error points, %.1f s", name, (unsigned long long)st.error_points,
             (double)(kvt_now_ms() - t0) / 1000.0);
}

/* The checks must fail on a broken engine: an engine that skips a sync is
 * simulated by a layer that ignores it. */
static void mutant_test(const char *name, int op, const char *suffix, const char *what)
{
    char first[1024];
    cs_stats st = {0};
    char *scratch = cs_scratch();
    g_mutant_op = op;
    g_mutant_suffix = suffix;
    io_set_factory(cs_factory, NULL);
    unsigned v = power_workload(wl_find(name), KV_SYNC_ALWAYS, scratch, &st, first, sizeof first);
    io_set_factory(NULL, NULL);
    g_mutant_op = 0;
    KVT_CHECK(v > 0, "an engine that %s passed every check of workload %s", what, name);
    if (v > 0)
        kvt_note("caught (%u violations), e.g.: %.300s", v, first);
}

static void test_mutant_syncdir(void)
{
    mutant_test("manifest", FIO_SYNCDIR, NULL, "skips the directory fsync after a MANIFEST rename");
}

static void test_mutant_seal(void)
{
    mutant_test("rolls", FIO_FDATASYNC, ".seg", "skips the fdatasync of a sealed segment");
}

static void test_mutant_wal_sync(void)
{
    mutant_test("puts", FIO_WG_SYNC, ".wal", "acknowledges KV_SYNC_ALWAYS writes before the "
                "WAL fdatasync");
}

#define CS_WORKLOAD_TESTS(n)                               \
    static void test_power_##n(void) { power_test(#n); }  \
    static void test_errors_##n(void) { error_test(#n); }
CS_WORKLOAD_TESTS(puts)
CS_WORKLOAD_TESTS(deletes)
CS_WORKLOAD_TESTS(batches)
CS_WORKLOAD_TESTS(rolls)
CS_WORKLOAD_TESTS(hints)
CS_WORKLOAD_TESTS(manifest)
CS_WORKLOAD_TESTS(wal_delete)
CS_WORKLOAD_TESTS(recovery_batches)
CS_WORKLOAD_TESTS(recovery_rolls)
CS_WORKLOAD_TESTS(compaction)
CS_WORKLOAD_TESTS(recovery_compaction)
CS_WORKLOAD_TESTS(lz4)

static void test_summary(void)
{
    size_t nwl = 0;
    while (cs_workloads[nwl].name != NULL)
        nwl++;
    kvt_note("crash states: %llu distinct images opened (%llu built) over %llu crash points; "
             "I/O error points: %llu", (unsigned long long)g_seen_n,
             (unsigned long long)g_total.images, (unsigned long long)g_total.points,
             (unsigned long long)g_total.error_points);
    if (g_power_tests == nwl && !kvt_quick())
        KVT_CHECK(g_seen_n >= CS_TARGET, "%llu distinct crash states, the target is %u",
                  (unsigned long long)g_seen_n, CS_TARGET);
    free(g_seen);
    g_seen = NULL;
    g_seen_n = g_seen_cap = 0;
}

static const kvt_test crashsim_tests[] = {
    {"layer: page cache model, variants, injected errors", test_layer_model},
    {"layer: io_uring and psync make the same durable calls", test_uring_psync},
    {"power failure at every call: puts", test_power_puts},
    {"power failure at every call: deletes", test_power_deletes},
    {"power failure at every call: batches", test_power_batches},
    {"power failure at every call: segment rolls", test_power_rolls},
    {"power failure at every call: hint files", test_power_hints},
    {"power failure at every call: MANIFEST updates", test_power_manifest},
    {"power failure at every call: WAL deletion after a seal", test_power_wal_delete},
    {"power failure at every call: recovery of crashed batches", test_power_recovery_batches},
    {"power failure at every call: recovery of crashed rolls", test_power_recovery_rolls},
    {"power failure at every call: compaction", test_power_compaction},
    {"power failure at every call: recovery of crashed compactions",
     test_power_recovery_compaction},
    {"power failure at every call: LZ4 values", test_power_lz4},
    {"I/O error at every call: puts", test_errors_puts},
    {"I/O error at every call: deletes", test_errors_deletes},
    {"I/O error at every call: batches", test_errors_batches},
    {"I/O error at every call: segment rolls", test_errors_rolls},
    {"I/O error at every call: hint files", test_errors_hints},
    {"I/O error at every call: MANIFEST updates", test_errors_manifest},
    {"I/O error at every call: WAL deletion after a seal", test_errors_wal_delete},
    {"I/O error at every call: recovery of crashed batches", test_errors_recovery_batches},
    {"I/O error at every call: recovery of crashed rolls", test_errors_recovery_rolls},
    {"I/O error at every call: compaction", test_errors_compaction},
    {"I/O error at every call: recovery of crashed compactions",
     test_errors_recovery_compaction},
    {"I/O error at every call: LZ4 values", test_errors_lz4},
    {"self-test: catches skipping the directory fsync", test_mutant_syncdir},
    {"self-test: catches skipping the seal fdatasync", test_mutant_seal},
    {"self-test: catches acknowledging before the WAL fdatasync", test_mutant_wal_sync},
    {"regression: a failed directory fsync at creation, then a reopen", test_reg_syncdir_create},
    {"regression: a failed directory fsync in a roll, then a reopen", test_reg_syncdir_roll},
    {"regression: kv_close reports a failed interval fdatasync",
     test_reg_close_reports_background_failure},
    {"regression: a torn WAL tail cut at open stays cut after a power failure",
     test_reg_cut_tail_durable},
    {"summary: crash states and I/O error points", test_summary},
    {NULL, NULL},
};

void kvt_register_crashsim(void)
{
    kvt_add_suite("crashsim", crashsim_tests);
}
