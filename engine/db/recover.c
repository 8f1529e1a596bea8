/*
 * recover.c — rebuilding the index at kv_open.
 *
 * Steps, in order (after every file the MANIFEST names has been opened, the active
 * segment and WAL file first: see db_recover):
 *   1. every sealed segment the MANIFEST names: its size must match the MANIFEST
 *      and every record must be valid — any damage is KV_ECORRUPT (invariant 4);
 *   2. the active segment: records up to the first invalid one are kept; the rest is
 *      a torn tail (a crash while its buffer was being written) and is cut;
 *   3. the active WAL file: records past the highest sequence number the segments
 *      hold are replayed — appended to the active segment by a writer, indexed in
 *      place by a read-only handle; where its scan stops early, a fence after the
 *      stop makes it damage (KV_ECORRUPT, scan.h), else it is a torn tail and is cut;
 *   4. tombstones kept to hide older records are dropped from the index.
 * Newest wins by sequence number (invariant 3), never by file order. "Cut" means
 * ftruncate for a writer and only a shorter logical end for a read-only handle,
 * which never modifies a byte. Nothing is written (LOCK's pid included) before the
 * WAL file has been judged: a writer indexes the replayed records where they will
 * be in the active segment and copies them there afterwards, so an open refused for
 * damage leaves every file as it found it.
 */
#include "db/db.h"

#include "format/entry.h"
#include "store/scan.h"
#include "base/grow.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Stretches of the WAL file whose records a writer replays into the active segment,
 * in file order (one, unless sequence numbers jumped about). */
typedef struct replay_runs {
    uint64_t (*v)[2]; /* {offset, length} */
    size_t n, cap;
} replay_runs;

typedef struct rec_ctx {
    kv_db *db;
    kv_file *file;    /* the file being scanned */
    uint64_t min_seq; /* WAL replay: skip records at or below this */
    uint64_t max_seq; /* highest seq seen anywhere */
    uint64_t replayed;
    hint_buf *hint;   /* collects hint records of the file being scanned, or NULL */
    uint64_t seg_base;     /* WAL replay (writer): where the active segment ends once
                              its torn tail is cut, the first replayed record's place */
    uint64_t replay_bytes; /* bytes of records replayed so far */
    replay_runs runs;      /* the WAL bytes they come from */
} rec_ctx;

/* One thread's state while it indexes sealed segments (see recover_sealed). */
typedef struct seal_ctx {
    kv_db *db;
    idx_bulk *bulk;      /* sealed segments are indexed through the bulk loader */
    unsigned producer;   /* this thread's producer number in it */
    kv_file *file;       /* the segment being indexed */
    hint_buf *hint;      /* collects the records of a segment whose hint is rewritten */
    hash_list hashes;    /* key hashes of the segment (its Bloom filter; writer only) */
    int want_hashes;
    hint_rbuf hint_read; /* hint files are read into it, one after the other */
    uint64_t max_seq;    /* highest sequence number seen */
    uint64_t live;       /* bytes of puts queued from the segment */
    uint64_t records, hints, rewritten; /* for kv_stat's recovery_* figures */
    int rc;              /* the segment's status, and kv_errmsg's text for it */
    char msg[512];
    pthread_t thread;
} seal_ctx;

/* Bytes that lost to newer records while the bulk loader applied them, per worker
 * and sealed segment: dead[worker * nsealed + position in the MANIFEST]. */
typedef struct dead_acc {
    const kv_manifest *man;
    uint64_t *dead;
} dead_acc;

/* ---- applying entries to the index (db_index_entry: apply.c) ---------------------- */

static int recover_entry(void *arg, const kv_entry *e, uint64_t off)
{
    rec_ctx *c = arg;
    uint64_t hash = idx_hash(e->key, e->klen);
    if (e->seq > c->max_seq)
        c->max_seq = e->seq;
    if (c->hint != NULL)
        hint_add(c->hint, e, off);
    return db_index_entry(c->db, c->file, e, off, hash, 1);
}

/* A record of a sealed segment: queued in the bulk loader. Its bytes count as live
 * now; should it lose to a newer record, bulk_dead takes them back. */
static int sealed_entry(void *arg, const kv_entry *e, uint64_t off)
{
    seal_ctx *c = arg;
    uint64_t hash = idx_hash(e->key, e->klen);
    idx_loc loc = {e->seq, c->file->number, (uint32_t)off, e->size,
                   e->type == KV_REC_DEL ? IDX_F_TOMB : 0};
    if (e->seq > c->max_seq)
        c->max_seq = e->seq;
    if (c->hint != NULL)
        hint_add(c->hint, e, off);
    if (c->want_hashes) {
        hash_list_add(&c->hashes, hash);
        file_note_seq(c->file, e->seq);
    }
    if (e->type == KV_REC_PUT)
        c->live += e->size;
    if (idx_bulk_add(c->bulk, c->producer, e->key, e->klen, hash, &loc) != 0)
        return err_set(KV_ENOMEM, "indexing %s offset %llu", c->file->name, (unsigned long long)off);
    return KV_OK;
}

static void bulk_dead(void *arg, unsigned worker, const idx_loc *loc)
{
    dead_acc *d = arg;
    const kv_manifest *m = d->man;
    uint32_t lo = 0, hi = m->nsealed;
    while (lo < hi) { /* the MANIFEST lists sealed segments by ascending number */
        uint32_t mid = lo + (hi - lo) / 2;
        if (m->sealed[mid].number < loc->file)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < m->nsealed && m->sealed[lo].number == loc->file)
        d->dead[(size_t)worker * m->nsealed + lo] += loc->len;
}

static int runs_add(replay_runs *r, uint64_t off, uint64_t len)
{
    if (r->n > 0 && r->v[r->n - 1][0] + r->v[r->n - 1][1] == off) {
        r->v[r->n - 1][1] += len;
        return KV_OK;
    }
    if (r->n == r->cap) {
        void *nv = grow(r->v, &r->cap, r->n + 1, sizeof *r->v, 4, 0);
        if (nv == NULL)
            return err_set(KV_ENOMEM, "recovery: replaying the WAL");
        r->v = nv;
    }
    r->v[r->n][0] = off;
    r->v[r->n][1] = len;
    r->n++;
    return KV_OK;
}

/* WAL records past the segments. A writer indexes each where it is going to be in
 * the active segment and notes the bytes to copy there: nothing is written before
 * the WAL file has passed the torn-tail-or-damage check (copy_replayed does it). A
 * read-only handle indexes them in place. */
static int replay_entry(void *arg, const kv_entry *e, uint64_t off)
{
    rec_ctx *c = arg;
    kv_db *db = c->db;
    if (e->seq <= c->min_seq)
        return 0;
    c->replayed++;
    if (db->opts.read_only)
        return recover_entry(arg, e, off);
    uint64_t seg_off = c->seg_base + c->replay_bytes;
    int rc = runs_add(&c->runs, off, e->size);
    if (rc != KV_OK)
        return rc;
    c->replay_bytes += e->size;
    if (e->seq > c->max_seq)
        c->max_seq = e->seq;
    hint_add(&db->active_hint, e, seg_off);
    return db_index_entry(db, db->active, e, seg_off, idx_hash(e->key, e->klen), 1);
}

/* ---- the steps --------------------------------------------------------------------- */

/* Indexes a sealed segment from its hint file; when the hint cannot be used, scans
 * the segment (every record checked) and, as the writer, writes the hint again. */
static int index_sealed(seal_ctx *c, kv_file *f)
{
    kv_db *db = c->db;
    char why[160];
    kv_scan_result res;
    hint_buf hb = {0};
    c->file = f;
    c->live = 0;
    c->hashes.n = 0;
    int rc = hint_load(db->io, db->dirfd, f->number, f->size, &c->hint_read, sealed_entry, c,
                       why, sizeof why);
    if (rc == KV_OK) {
        c->hints++;
        f->live_bytes += c->live;
        return KV_OK;
    }
    if (rc != KV_NOTFOUND)
        return rc;
    /* A hint is checked whole before any of its records is used; should a later
     * record still fail, indexing the same entries again from the scan is harmless
     * (same sequence numbers, same locations, and the live bytes start again). */
    c->live = 0;
    c->hashes.n = 0;
    f->min_seq = f->max_seq = 0;
    c->hint = db->opts.read_only ? NULL : &hb;
    rc = scan_file(db->io, f->fd, f->name, KV_FILE_HDR_SIZE, f->size, sealed_entry, c, &res);
    c->hint = NULL;
    f->live_bytes += c->live;
    c->records += res.records;
    if (rc == KV_OK && res.stopped)
        rc = err_set(KV_ECORRUPT, "%s: offset %llu: %s", f->name,
                    (unsigned long long)res.bad_off, res.why);
    if (rc == KV_OK && !db->opts.read_only
        && hint_write(db->io, db->dirfd, f->number, &hb, f->size) == KV_OK)
        c->rewritten++;
    hint_free(&hb);
    return rc;
}

/* A thread's work: index its segment and build its Bloom filter. kv_errmsg is per
 * thread, so its text travels back in c->msg. */
static void *seal_work(void *arg)
{
    seal_ctx *c = arg;
    kv_file *f = c->file;
    c->rc = index_sealed(c, f);
    if (c->rc == KV_OK && c->want_hashes)
        f->bloom = hash_list_bloom(&c->hashes);
    if (c->rc != KV_OK)
        snprintf(c->msg, sizeof c->msg, "%s", kv_errmsg());
    return NULL;
}

/* Cuts a torn tail: the writer truncates the file, a reader only stops there. The
 * cut is made durable before anything is written after it: new records reuse the
 * cut records' sequence numbers, and should the cut bytes come back after a power
 * failure, a cut entry saying "more of this batch follows" would chain with them. */
static int cut_tail(kv_db *db, kv_file *f, const kv_scan_result *res)
{
    if (!res->stopped)
        return KV_OK;
    db->recovery_cut += f->size - res->valid_end;
    if (!db->opts.read_only) {
        int r = db->io->ops->ftruncate(db->io, f->fd, res->valid_end);
        if (r == 0)
            r = db->io->ops->fdatasync(db->io, f->fd);
        if (r < 0)
            return err_errno(-r, "%s: cutting torn tail at offset %llu", f->name,
                                (unsigned long long)res->valid_end);
    }
    f->size = res->valid_end;
    f->woff = res->valid_end;
    return KV_OK;
}

static int open_tail_file(kv_db *db, int kind, kv_file **out)
{
    int missing;
    int rc = file_open(db->io, db->dirfd, kind, db->man.active, !db->opts.read_only, &missing, out);
    if (rc != KV_OK && missing)
        return err_set(KV_ECORRUPT, "%s: %s %06u named by MANIFEST is missing", db->dir,
                      kind == KV_FILE_SEG ? "active segment" : "WAL file", db->man.active);
    return rc;
}

/* Opens the active segment (into the file table) and its WAL file. */
static int open_active_pair(kv_db *db)
{
    int rc = open_tail_file(db, KV_FILE_SEG, &db->active);
    if (rc == KV_OK) {
        rc = ftab_add(db, db->active);
        if (rc != KV_OK) {
            file_unref(db->active);
            db->active = NULL;
        }
    }
    if (rc == KV_OK)
        rc = open_tail_file(db, KV_FILE_WAL, &db->wal_file);
    return rc;
}

/* Scans the active segment; its torn tail, if any, is left for the caller to cut
 * (res) once the WAL file has passed its checks too. */
static int scan_active(kv_db *db, rec_ctx *c, kv_scan_result *res)
{
    c->file = db->active;
    c->hint = db->opts.read_only ? NULL : &db->active_hint;
    int rc = scan_file(db->io, db->active->fd, db->active->name, KV_FILE_HDR_SIZE,
                          db->active->size, recover_entry, c, res);
    c->hint = NULL;
    db->recovery_records += res->records;
    return rc;
}

/* Scans the WAL file: indexes the records past the segments (replay_entry) and
 * leaves in *res where a torn tail, if any, starts. Changes no file. */
static int replay_wal(kv_db *db, rec_ctx *c, kv_scan_result *res)
{
    memset(res, 0, sizeof *res);
    c->file = db->wal_file;
    c->min_seq = c->max_seq;
    int rc = scan_file(db->io, db->wal_file->fd, db->wal_file->name, KV_FILE_HDR_SIZE,
                          db->wal_file->size, replay_entry, c, res);
    db->recovery_records += res->records;
    db->recovery_replayed = c->replayed;
    return rc;
}

/* Where the WAL scan stopped before the end: a torn tail, or damage to records that
 * were durable (the rule is in scan.h). Damage refuses the open before any file is
 * changed, so kvcheck and kvcheck --repair see the store as it was. */
static int wal_verdict(kv_db *db, const kv_scan_result *res)
{
    kv_file *w = db->wal_file;
    kv_scan_fence fence;
    int rc = scan_find_fence(db->io, w->fd, w->name, w->size, res, &fence);
    if (rc != KV_OK || !fence.found)
        return rc;
    return err_set(KV_ECORRUPT, "%s: offset %llu: %s; whole records written after it was durable "
                  "follow (a fence, seq %llu, at offset %llu): this is damage, not a torn tail, "
                  "and nothing was cut (kvcheck reports it, kvcheck --repair decides)", w->name,
                  (unsigned long long)res->bad_off, res->why, (unsigned long long)fence.seq,
                  (unsigned long long)fence.off);
}

/* Writer: appends the replayed records to the active segment, where replay_entry
 * indexed them (its end once the torn tail was cut). */
static int copy_replayed(kv_db *db, const rec_ctx *c)
{
    size_t cap = 1u << 20;
    uint8_t *buf = NULL;
    int rc = file_enable_buffer(db->active, KV_SEG_WBUF);
    if (rc == KV_OK && c->runs.n > 0 && (buf = malloc(cap)) == NULL)
        rc = err_set(KV_ENOMEM, "%s: replaying the WAL", db->dir);
    KV_ASSERT(rc != KV_OK || db->active->size == c->seg_base);
    for (size_t i = 0; i < c->runs.n && rc == KV_OK; i++) {
        uint64_t off = c->runs.v[i][0], left = c->runs.v[i][1], at;
        while (left > 0 && rc == KV_OK) {
            size_t n = left < cap ? (size_t)left : cap;
            ssize_t r = io_pread_full(db->io, db->wal_file->fd, buf, n, off);
            if (r != (ssize_t)n)
                rc = r < 0 ? err_errno((int)-r, "%s: reading %zu bytes at offset %llu",
                                          db->wal_file->name, n, (unsigned long long)off)
                           : err_set(KV_EIO, "%s: offset %llu: file shrank while replayed",
                                    db->wal_file->name, (unsigned long long)off);
            else
                rc = file_append(db->active, buf, n, &at);
            off += n;
            left -= n;
        }
    }
    KV_ASSERT(rc != KV_OK || db->active->size == c->seg_base + c->replay_bytes);
    free(buf);
    return rc;
}

/* The writer makes the recovered active segment durable before anything is
 * appended, so WAL and segment agree on what is stored whatever happens next. */
static int settle_active(kv_db *db)
{
    int rc = file_flush(db->active);
    if (rc == KV_OK) {
        int r = db->io->ops->fdatasync(db->io, db->active->fd);
        if (r < 0)
            rc = err_errno(-r, "%s: fdatasync after recovery", db->active->name);
    }
    return rc;
}

/* Indexes every sealed segment the MANIFEST names, through the bulk loader, on up
 * to IDX_BULK_THREADS threads: in rounds of one segment per thread, the queued
 * records applied to the index between rounds once there are enough of them.
 * Newest wins by sequence number, so the order of segments does not matter; an
 * error is reported for the lowest-numbered segment that had one. */
static int recover_sealed(kv_db *db, rec_ctx *rc_ctx)
{
    uint32_t n = db->man.nsealed;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned nt = cpus < 1 ? 1 : cpus > IDX_BULK_THREADS ? IDX_BULK_THREADS : (unsigned)cpus;
    seal_ctx ctx[IDX_BULK_THREADS];
    kv_file **files = NULL;
    idx_bulk *bulk = NULL;
    dead_acc acc = {&db->man, NULL};
    int rc = KV_OK;
    if (n == 0)
        return KV_OK;
    if (nt > n)
        nt = n;
    memset(ctx, 0, sizeof ctx);
    files = calloc(n, sizeof *files);
    acc.dead = calloc((size_t)IDX_BULK_THREADS * n, sizeof *acc.dead);
    if (files == NULL || acc.dead == NULL || idx_bulk_new(db->idx, nt, bulk_dead, &acc, &bulk) != 0)
        rc = err_set(KV_ENOMEM, "%s: recovery", db->dir);
    for (uint32_t i = 0; i < n && rc == KV_OK; i++)
        rc = seg_open_sealed(db, &db->man.sealed[i], &files[i]);
    for (unsigned t = 0; t < nt; t++) {
        ctx[t].db = db;
        ctx[t].bulk = bulk;
        ctx[t].producer = t;
        ctx[t].want_hashes = !db->opts.read_only;
    }
    for (uint32_t i = 0; i < n && rc == KV_OK; i += nt) {
        unsigned round = n - i < nt ? n - i : nt, started = 0;
        for (unsigned t = 0; t < round; t++)
            ctx[t].file = files[i + t];
        for (unsigned t = 1; t < round; t++)
            if (pthread_create(&ctx[t].thread, NULL, seal_work, &ctx[t]) == 0)
                started |= 1u << t;
        seal_work(&ctx[0]);
        for (unsigned t = 1; t < round; t++) {
            if (started & (1u << t))
                pthread_join(ctx[t].thread, NULL);
            else
                seal_work(&ctx[t]); /* no thread: do it here */
        }
        for (unsigned t = 0; t < round && rc == KV_OK; t++)
            if (ctx[t].rc != KV_OK)
                rc = err_set(ctx[t].rc, "%s", ctx[t].msg);
        if (rc == KV_OK && idx_bulk_queued(bulk) >= IDX_BULK_FLUSH && idx_bulk_flush(bulk) != 0)
            rc = err_set(KV_ENOMEM, "%s: building the index", db->dir);
    }
    if (rc == KV_OK && idx_bulk_flush(bulk) != 0)
        rc = err_set(KV_ENOMEM, "%s: building the index", db->dir);
    for (uint32_t i = 0; i < n && rc == KV_OK; i++) {
        uint64_t dead = 0;
        for (unsigned w = 0; w < IDX_BULK_THREADS; w++)
            dead += acc.dead[(size_t)w * n + i];
        files[i]->live_bytes -= dead;
    }
    for (unsigned t = 0; t < nt; t++) {
        if (ctx[t].max_seq > rc_ctx->max_seq)
            rc_ctx->max_seq = ctx[t].max_seq;
        db->recovery_records += ctx[t].records;
        db->recovery_hints += ctx[t].hints;
        db->recovery_hints_rewritten += ctx[t].rewritten;
        free(ctx[t].hint_read.p);
        hash_list_free(&ctx[t].hashes);
    }
    idx_bulk_free(bulk);
    free(acc.dead);
    free(files);
    return rc;
}

int db_recover(kv_db *db)
{
    rec_ctx c = {.db = db};
    kv_scan_result active_res, wal_res;
    /* Every file the MANIFEST names is opened before any is read, the active pair
     * first (each roll removes a WAL file; compaction removes sealed segments): an
     * open file stays readable whatever a writer beside a read-only handle removes,
     * so the store can move on under this recovery only in that short window, and
     * kv_open tries again when it did. */
    int rc = open_active_pair(db);
    if (rc == KV_OK)
        rc = recover_sealed(db, &c);
    if (rc == KV_OK)
        rc = scan_active(db, &c, &active_res);
    /* Nothing is changed before the last check has passed (every sealed segment,
     * then the WAL file's records): a refused open leaves every file as it found
     * it, LOCK included. */
    if (rc == KV_OK) {
        c.seg_base = active_res.valid_end;
        rc = replay_wal(db, &c, &wal_res);
    }
    if (rc == KV_OK)
        rc = wal_verdict(db, &wal_res);
    if (rc == KV_OK && !db->opts.read_only)
        rc = lock_write_pid(db->lock_fd, db->dir); /* the first change to the store */
    if (rc == KV_OK)
        rc = cut_tail(db, db->active, &active_res);
    if (rc == KV_OK && !db->opts.read_only)
        rc = copy_replayed(db, &c);
    if (rc == KV_OK)
        rc = cut_tail(db, db->wal_file, &wal_res);
    free(c.runs.v);
    if (rc == KV_OK && !db->opts.read_only)
        rc = settle_active(db);
    /* A read-only handle maps the active segment up to the end it checked, and its
     * WAL file with room to grow: it touches only bytes it has checked (refresh.c
     * moves the WAL file's end as it indexes more), so a byte a restarted writer
     * cuts, which no reader ever checked, is never touched (docs/MULTIPROCESS.md,
     * "The truncation rule"). */
    if (rc == KV_OK && db->opts.mmap_reads) {
        file_map(db->active, db->opts.read_only ? 0 : db_active_map_len(db));
        if (db->opts.read_only)
            file_map(db->wal_file, db_active_map_len(db));
    }
    if (rc == KV_OK)
        idx_purge_tombstones(db->idx);
    db->next_seq_at_open = c.max_seq + 1;
    db->reached = c.max_seq;
    db->wal_last_seq = wal_res.max_seq;
    return rc;
}
