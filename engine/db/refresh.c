/*
 * refresh.c — kv_refresh: a read-only handle catching up with the writer.
 *
 * The handle's view is the index it built at kv_open from the MANIFEST then in force
 * (its sealed segments, the active segment's checked bytes, the WAL file's records),
 * and `reached`: the view holds every write up to that sequence number. A refresh
 * moves the view on (docs/MULTIPROCESS.md, "Reader handles and kv_refresh"):
 *
 *   1. the WAL file it follows: the whole batches written past where it stopped,
 *      each record continuing the sequence of the one before (seq + 1); the first
 *      record that does not is where it stops, whatever its checksum says;
 *   2. if the MANIFEST changed (its inode is not the one held open: a MANIFEST is
 *      only ever replaced, never changed in place), the new one:
 *      a. a roll: the old WAL file is read to its end first (it is final once the
 *         MANIFEST names a newer active pair), so `reached` is its last record;
 *      b. segments the handle does not have (sealed by a roll, written by a
 *         compaction) are opened. The one sealed from the WAL file just read to
 *         its end is compared with it first: when it holds the same records at the
 *         same offsets (same_records), keys stay where they are and read through
 *         it. Otherwise their records (hint, or scan) are gone through: one at or
 *         below `reached` is a record the view already has, or had and lost to a
 *         newer write, so it only moves the key to this copy when the key still
 *         points at that very record (same seq); one above `reached` is new to the
 *         view and is staged, to be applied newest-wins;
 *      c. the WAL file as it is now (after a roll the new one, from its start) is
 *         read as in 1 and staged too: it is read after the MANIFEST, so it holds
 *         whatever superseded a record the writer dropped before publishing it;
 *      d. keys still pointing into a file the writer retired are keys whose record
 *         the writer found dead and dropped (a newer record, or a tombstone that
 *         was itself dropped since): they are to be removed;
 *      e. b's and c's records and d's removals are applied in one step; the
 *         retired files leave the file table and are closed.
 *   A file the MANIFEST names that is already gone means the writer moved on again:
 *   the refresh starts over from the MANIFEST as it then is (as kv_open does).
 *
 * What readers of the handle see meanwhile: new records become visible a group of
 * whole batches at a time, every shard they touch write-locked at once (so no get
 * sees part of a batch); 2e's step holds everything new of the MANIFEST followed
 * (a batch may have put one key and deleted another, and no key may vanish for a
 * moment that was only superseded). Moving a key to another copy of the same
 * record changes no value, so moves go shard by shard, a run at a time. Files enter
 * the table before any key points at them and leave it only after no key does; a
 * get that looked a key up before it moved finds the old file gone from the table
 * and looks again (read.c).
 */
#include "db/db.h"

#include "base/grow.h"
#include "format/entry.h"
#include "store/scan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A scan callback's return that stops a WAL scan at a record that does not continue
 * the sequence (not an error: the scan's status codes are all negative). */
#define TAIL_BREAK 2
/* Records applied per step while a WAL file is read (whole batches: a step may be
 * longer by one batch). */
#define TAIL_STEP 4096

/* ---- staged changes ---------------------------------------------------------------- */

/* Records to apply in one step: key bytes back to back, and per record where it is. */
typedef struct staged {
    uint8_t *keys;
    size_t klen, kcap;
    struct stage_rec {
        uint64_t hash;
        size_t koff;
        uint32_t klen;
        kv_file *file;  /* the file it is in (pinned by the table or wal_file/prev) */
        idx_loc loc;
    } *v;
    size_t n, cap;
    uint64_t mask;      /* shards they touch */
    uint64_t max_seq;
} staged;

static void staged_reset(staged *s)
{
    s->klen = s->n = 0;
    s->mask = 0;
}

static void staged_free(staged *s)
{
    free(s->keys);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int stage(staged *s, kv_file *f, const kv_entry *e, uint64_t off, uint64_t hash)
{
    uint8_t *nk = grow(s->keys, &s->kcap, s->klen + e->klen, 1, 4096, 0);
    if (nk == NULL)
        return err_set(KV_ENOMEM, "kv_refresh: staging %s offset %llu", f->name,
                       (unsigned long long)off);
    s->keys = nk;
    if (s->n == s->cap) {
        void *nv = grow(s->v, &s->cap, s->n + 1, sizeof *s->v, 256, 0);
        if (nv == NULL)
            return err_set(KV_ENOMEM, "kv_refresh: staging %s offset %llu", f->name,
                           (unsigned long long)off);
        s->v = nv;
    }
    struct stage_rec *r = &s->v[s->n++];
    memcpy(s->keys + s->klen, e->key, e->klen);
    r->hash = hash;
    r->koff = s->klen;
    r->klen = e->klen;
    r->file = f;
    r->loc = (idx_loc){e->seq, f->number, (uint32_t)off, e->size, 0};
    if (f->kind == KV_FILE_WAL)
        r->loc.flags |= IDX_F_WAL;
    if (e->type == KV_REC_DEL)
        r->loc.flags |= IDX_F_TOMB;
    s->klen += e->klen;
    s->mask |= UINT64_C(1) << idx_shard_of(hash);
    if (e->seq > s->max_seq)
        s->max_seq = e->seq;
    return KV_OK;
}

/* Keys to remove, each if it still has the sequence number it had when found. */
typedef struct doomed {
    uint8_t *keys;
    size_t klen, kcap;
    struct doom_rec {
        uint64_t hash, seq;
        size_t koff;
        uint32_t klen;
    } *v;
    size_t n, cap;
    uint64_t mask;
} doomed;

static int doom(doomed *d, const uint8_t *key, size_t klen, uint64_t hash, uint64_t seq)
{
    uint8_t *nk = grow(d->keys, &d->kcap, d->klen + klen, 1, 4096, 0);
    if (nk == NULL)
        return KV_ENOMEM;
    d->keys = nk;
    if (d->n == d->cap) {
        void *nv = grow(d->v, &d->cap, d->n + 1, sizeof *d->v, 256, 0);
        if (nv == NULL)
            return KV_ENOMEM;
        d->v = nv;
    }
    memcpy(d->keys + d->klen, key, klen);
    d->v[d->n++] = (struct doom_rec){hash, seq, d->klen, (uint32_t)klen};
    d->klen += klen;
    d->mask |= UINT64_C(1) << idx_shard_of(hash);
    return KV_OK;
}

static void doomed_free(doomed *d)
{
    free(d->keys);
    free(d->v);
    memset(d, 0, sizeof *d);
}

/* The file a location is in, for live byte counts (NULL: none the handle holds). */
static kv_file *loc_file(kv_db *db, const idx_loc *loc)
{
    if (loc->flags & IDX_F_WAL) {
        if (db->wal_file != NULL && db->wal_file->number == loc->file)
            return db->wal_file;
        if (db->wal_prev != NULL && db->wal_prev->number == loc->file)
            return db->wal_prev;
        /* else a WAL file rolled past whose segment holds its records at the same
         * offsets (same_records): the key reads there */
    }
    /* Only a refresh (this thread, under refresh_mu) changes a read-only handle's
     * table: it can be searched without its lock. */
    uint32_t lo = 0, hi = db->nfiles;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (db->files[mid]->number < loc->file)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == db->nfiles || db->files[lo]->number != loc->file)
        return NULL;
    return !(loc->flags & IDX_F_WAL) || atomic_load(&db->files[lo]->holds_wal) ? db->files[lo] : NULL;
}

/* A reader's live byte counts change only in the refresh thread (kv_stat reads
 * them): a plain atomic store does, without a locked read-modify-write a record. */
static void live_add(kv_file *f, int64_t delta)
{
    atomic_store_explicit(&f->live_bytes,
                          atomic_load_explicit(&f->live_bytes, memory_order_relaxed) + (uint64_t)delta,
                          memory_order_relaxed);
}

static void lose_live(kv_db *db, const idx_loc *old)
{
    if (old->flags & IDX_F_TOMB)
        return;
    kv_file *f = loc_file(db, old);
    if (f != NULL)
        live_add(f, -(int64_t)old->len);
}

/* Applies s (newest wins; a tombstone hides the key) and removes d's keys that still
 * have their sequence numbers, with every shard either touches write-locked at once:
 * one step, as readers of the handle see it. Then raises `reached`. */
static int apply_step(kv_db *db, staged *s, doomed *d)
{
    uint64_t mask = s->mask | (d != NULL ? d->mask : 0);
    int rc = KV_OK;
    if (mask == 0)
        goto done;
    idx_lock_mask(db->idx, mask);
    for (size_t i = 0; i < s->n && rc == KV_OK; i++) {
        struct stage_rec *r = &s->v[i];
        idx_change ch;
        /* a long run of keys scattered over a large index: each costs two cache
         * misses (slot, node), fetched ahead */
        if (i + 16 < s->n)
            idx_prefetch_locked(db->idx, s->v[i + 16].hash, 0);
        if (i + 8 < s->n)
            idx_prefetch_locked(db->idx, s->v[i + 8].hash, 1);
        if (idx_set_locked(db->idx, s->keys + r->koff, r->klen, r->hash, &r->loc, 1, &ch) != 0) {
            rc = err_set(KV_ENOMEM, "kv_refresh: indexing %s offset %u", r->file->name, r->loc.off);
            break;
        }
        if (!ch.applied)
            continue;
        if (!(r->loc.flags & IDX_F_TOMB))
            live_add(r->file, r->loc.len);
        if (ch.had_old)
            lose_live(db, &ch.old);
    }
    for (size_t i = 0; d != NULL && i < d->n && rc == KV_OK; i++) {
        struct doom_rec *r = &d->v[i];
        idx_loc old;
        if (idx_del_seq_locked(db->idx, d->keys + r->koff, r->klen, r->hash, r->seq, &old))
            lose_live(db, &old);
    }
    /* The tombstones just applied hid their keys; nothing older can come back in a
     * later step (such a record is at or below `reached` and only ever moves a key
     * still pointing at it), so they go now. */
    for (size_t i = 0; i < s->n; i++) {
        struct stage_rec *r = &s->v[i];
        idx_loc old;
        if (r->loc.flags & IDX_F_TOMB)
            idx_del_seq_locked(db->idx, s->keys + r->koff, r->klen, r->hash, r->loc.seq, &old);
    }
    idx_unlock_mask(db->idx, mask);
done:
    if (rc == KV_OK && s->max_seq > atomic_load(&db->reached))
        atomic_store(&db->reached, s->max_seq);
    staged_reset(s);
    s->max_seq = 0;
    return rc;
}

/* ---- 1. the WAL file --------------------------------------------------------------- */

typedef struct tail_ctx {
    kv_db *db;
    kv_file *wal;
    staged *s;
    doomed *d;           /* with them, keys to remove (a MANIFEST followed), or NULL */
    int by_steps;        /* apply every TAIL_STEP records (else the caller applies) */
    uint64_t last_seq;   /* of the last record taken (0: none in this file yet) */
    uint64_t floor;      /* the file's first record must be above it */
    uint64_t taken_end;  /* end of the last whole batch taken */
    int in_batch;        /* the last entry taken said "more of this batch follows" */
} tail_ctx;

/* Makes what is staged visible: the WAL file's checked end moves first (a get may
 * then read the records), then the step is applied. */
static int tail_flush(tail_ctx *t)
{
    atomic_store(&t->wal->woff, t->taken_end);
    atomic_store(&t->wal->size, t->taken_end);
    t->db->wal_last_seq = t->last_seq; /* whole batches only: the last one's last */
    return apply_step(t->db, t->s, t->d);
}

static int tail_entry(void *arg, const kv_entry *e, uint64_t off)
{
    tail_ctx *t = arg;
    if (!t->in_batch) { /* a batch's first entry: does it continue the sequence? */
        int ok = t->last_seq != 0 ? e->seq == t->last_seq + 1 : e->seq > t->floor;
        if (!ok)
            return TAIL_BREAK;
    }
    int rc = stage(t->s, t->wal, e, off, idx_hash(e->key, e->klen));
    if (rc != KV_OK)
        return rc;
    t->last_seq = e->seq;
    t->in_batch = (e->flags & KV_RECF_BATCH) != 0;
    if (!t->in_batch) {
        t->taken_end = off + e->size;
        if (t->by_steps && t->s->n >= TAIL_STEP)
            return tail_flush(t);
    }
    return KV_OK;
}

/* Stages the whole batches written to the WAL file the handle follows past where it
 * stopped, up to the file's end now or the first record that does not continue the
 * sequence, and applies them: by steps with by_steps, else in the one step of t->s
 * and t->d (the caller's, which holds more). A file shorter than what the handle
 * checked was not cut by a writer (it cuts only bytes no reader could have
 * checked): the store was replaced or repaired under the handle. */
static int tail_run(kv_db *db, tail_ctx *t)
{
    kv_file *w = db->wal_file;
    struct stat st;
    if (fstat(w->fd, &st) < 0)
        return err_errno(errno, "kv_refresh: %s: fstat", w->name);
    uint64_t from = atomic_load(&w->size), end = (uint64_t)st.st_size;
    if (end < from)
        return err_set(KV_EIO, "kv_refresh: %s has %llu bytes, fewer than the %llu this handle "
                       "read: the store was replaced or repaired under it; open it again",
                       w->name, (unsigned long long)end, (unsigned long long)from);
    /* The next record continues the file's last one; where the segments the handle
     * read hold more than the WAL file (after a power failure under KV_SYNC_NONE or
     * KV_SYNC_INTERVAL, a segment's page may reach the disk before the WAL file's),
     * the writer's next record continues those. A file with no record yet starts
     * anywhere above what the handle has, staged records included (compaction may
     * have dropped the last records before it). */
    uint64_t reached = atomic_load(&db->reached), last = db->wal_last_seq;
    if (t->s->max_seq > reached)
        reached = t->s->max_seq;
    t->db = db;
    t->wal = w;
    t->last_seq = last != 0 && reached > last ? reached : last;
    t->floor = reached;
    t->taken_end = from;
    t->in_batch = 0;
    int rc = KV_OK;
    if (end > from) {
        kv_scan_result res;
        rc = scan_file(db->io, w->fd, w->name, from, end, tail_entry, t, &res);
        if (rc == TAIL_BREAK)
            rc = KV_OK;
    }
    /* A scan that stopped (a batch still being written, a torn tail, garbage) or
     * broke off takes the batches before the stop (the scanner delivers whole ones
     * only): what follows is read again next time, when the writer may have
     * finished it. */
    if (rc == KV_OK && t->by_steps)
        rc = tail_flush(t);
    return rc;
}

/* 1: the WAL file followed, by steps. */
static int tail_wal(kv_db *db, staged *s)
{
    tail_ctx t = {.s = s, .by_steps = 1};
    int rc = tail_run(db, &t);
    staged_reset(s);
    return rc;
}

/* ---- 2. a new MANIFEST ------------------------------------------------------------- */

int db_open_manifest(kv_db *db)
{
    int fd;
    if (io_open_regular(db->io, db->dirfd, KV_MANIFEST_NAME, O_RDONLY, 0, KV_MANIFEST_NAME, &fd)
        != KV_OK)
        return -1;
    return fd;
}

void db_pin_manifest(kv_db *db, int fd)
{
    struct stat a, b;
    if (db->man_fd >= 0)
        close(db->man_fd);
    db->man_fd = -1;
    if (fd < 0)
        return;
    /* The name must still lead to the file opened before the MANIFEST was read: then
     * that read was of this file (a replaced MANIFEST's inode never comes back while
     * it is held open). Otherwise the pin stays unknown and the next refresh reads
     * the MANIFEST again, which costs a read and changes nothing. */
    if (fstat(fd, &a) == 0 && fstatat(db->dirfd, KV_MANIFEST_NAME, &b, 0) == 0
        && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
        db->man_fd = fd;
        db->man_ino = a.st_ino;
        db->man_dev = a.st_dev;
        return;
    }
    close(fd);
}

/* 1 when the MANIFEST is no longer the one the handle holds. */
static int manifest_changed(kv_db *db)
{
    struct stat st;
    if (db->man_fd < 0)
        return 1;
    if (fstatat(db->dirfd, KV_MANIFEST_NAME, &st, 0) < 0)
        return 1; /* missing for a moment? reading it says */
    return st.st_ino != db->man_ino || st.st_dev != db->man_dev;
}

/* What following a new MANIFEST needs, gathered before anything is changed. */
typedef struct follow {
    kv_manifest man;      /* the new MANIFEST */
    kv_file **add;        /* segments to open into the table (sealed, new to it) */
    uint32_t nadd;
    kv_file *wal;         /* the new WAL file (a roll), or NULL */
    uint32_t *retire;     /* numbers of table files the MANIFEST no longer names */
    uint32_t nretire;
    int rolled;           /* the active pair changed */
    uint32_t alias;       /* the old WAL file's number when its sealed segment holds its
                             records byte for byte at the same offsets (same_records):
                             keys stay where they point, read through the segment */
} follow;

static void follow_free(follow *fw)
{
    for (uint32_t i = 0; i < fw->nadd; i++)
        file_unref(fw->add[i]);
    free(fw->add);
    file_unref(fw->wal);
    free(fw->retire);
    manifest_free(&fw->man);
    memset(fw, 0, sizeof *fw);
}

static int man_names(const kv_manifest *m, uint32_t number)
{
    uint32_t lo = 0, hi = m->nsealed;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (m->sealed[mid].number < number)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->nsealed && m->sealed[lo].number == number;
}

/* Opens what the new MANIFEST has that the handle lacks: each sealed segment not in
 * the table (and the handle's active segment, now sealed, afresh: it is longer now
 * and complete), and the new WAL file. KV_NOTFOUND when one is already gone (the
 * writer moved on again). */
static int follow_open(kv_db *db, follow *fw)
{
    const kv_manifest *m = &fw->man;
    int rc = KV_OK;
    fw->add = calloc(m->nsealed > 0 ? m->nsealed : 1, sizeof *fw->add);
    fw->retire = calloc(db->nfiles > 0 ? db->nfiles : 1, sizeof *fw->retire);
    if (fw->add == NULL || fw->retire == NULL)
        return err_set(KV_ENOMEM, "kv_refresh: %s", db->dir);
    for (uint32_t i = 0; i < m->nsealed && rc == KV_OK; i++) {
        const kv_manifest_seg *ms = &m->sealed[i];
        kv_file *have = ftab_get(db, ms->number, 0), *f;
        int fresh = have == NULL || have == db->active;
        file_unref(have);
        if (!fresh)
            continue;
        int missing;
        rc = file_open(db->io, db->dirfd, KV_FILE_SEG, ms->number, 0, &missing, &f);
        if (rc != KV_OK)
            return missing ? KV_NOTFOUND : rc;
        fw->add[fw->nadd++] = f;
        if (f->size != ms->size)
            return err_set(KV_ECORRUPT, "%s: offset %llu: sealed segment has %llu bytes, "
                           "MANIFEST says %llu", f->name,
                           (unsigned long long)(f->size < ms->size ? f->size : ms->size),
                           (unsigned long long)f->size, (unsigned long long)ms->size);
        if (db->opts.mmap_reads)
            file_map(f, 0);
    }
    /* Files the table has that the MANIFEST no longer names (compacted away), and
     * the old active segment when it is neither sealed nor active any more. */
    for (uint32_t i = 0; i < db->nfiles; i++) {
        uint32_t n = db->files[i]->number;
        if (!man_names(m, n) && n != m->active)
            fw->retire[fw->nretire++] = n;
    }
    fw->rolled = m->active != db->man.active;
    if (fw->rolled) {
        int missing;
        rc = file_open(db->io, db->dirfd, KV_FILE_WAL, m->active, 0, &missing, &fw->wal);
        if (rc != KV_OK)
            return missing ? KV_NOTFOUND : rc;
        if (db->opts.mmap_reads)
            file_map(fw->wal, db_active_map_len(db));
        /* nothing of it is indexed yet: reads start at its header */
        atomic_store(&fw->wal->size, KV_FILE_HDR_SIZE);
        atomic_store(&fw->wal->woff, KV_FILE_HDR_SIZE);
    }
    return rc;
}

/* Puts the opened files in place, under one hold of the table's lock: new segments
 * in (the old active segment's object replaced by its sealed one), and after a roll
 * the new WAL file in front of the old, which stays findable until the end. */
static int follow_install(kv_db *db, follow *fw)
{
    kv_file *old = db->active;
    /* The handle's active segment, now sealed, is replaced by its fresh object, which
     * takes over its live byte count (keys pointing at it are counted there); the
     * table's reference to the old object is dropped (a get that pinned it finishes
     * with it). */
    for (uint32_t i = 0; i < fw->nadd; i++)
        if (old != NULL && fw->add[i]->number == old->number) {
            atomic_store(&fw->add[i]->live_bytes, atomic_load(&old->live_bytes));
            db->active = NULL;
        }
    int rc = ftab_put_n(db, fw->add, fw->nadd, fw->rolled ? fw->wal : NULL);
    if (rc != KV_OK) {
        db->active = old;
        return rc;
    }
    fw->nadd = 0; /* the table holds them now */
    fw->wal = NULL;
    return KV_OK;
}

typedef struct seg_ctx {
    kv_db *db;
    kv_file *f;
    staged *s;
    staged *moves;  /* records the view has: keys to move to this copy if still theirs */
    uint64_t reached;
} seg_ctx;

/* A record of a segment new to the handle: see the file comment, 2b. */
static int seg_entry(void *arg, const kv_entry *e, uint64_t off)
{
    seg_ctx *c = arg;
    uint64_t hash = idx_hash(e->key, e->klen);
    if (e->seq > c->reached)
        return stage(c->s, c->f, e, off, hash);
    return e->type == KV_REC_PUT ? stage(c->moves, c->f, e, off, hash) : KV_OK;
}

/* Moves the keys of m that still point at the records' sequence numbers to the
 * copies m names: shard by shard (a counting sort of m by shard), each shard
 * write-locked for a run of MOVE_RUN moves at most, so a get waits for one run only;
 * slots and nodes fetched ahead as in apply_step. A move changes no value. */
#define MOVE_RUN 512
static int apply_moves(kv_db *db, staged *m)
{
    size_t start[IDX_SHARDS + 1] = {0}, *order = NULL;
    if (m->n == 0)
        return KV_OK;
    if ((order = malloc(m->n * sizeof *order)) == NULL)
        return err_set(KV_ENOMEM, "kv_refresh: %s: moving %zu keys", db->dir, m->n);
    for (size_t i = 0; i < m->n; i++)
        start[idx_shard_of(m->v[i].hash) + 1]++;
    for (unsigned sh = 0; sh < IDX_SHARDS; sh++)
        start[sh + 1] += start[sh];
    size_t fill[IDX_SHARDS];
    memcpy(fill, start, sizeof fill);
    for (size_t i = 0; i < m->n; i++)
        order[fill[idx_shard_of(m->v[i].hash)]++] = i;
    for (unsigned sh = 0; sh < IDX_SHARDS; sh++) {
        for (size_t at = start[sh]; at < start[sh + 1]; at += MOVE_RUN) {
            size_t end = start[sh + 1] - at < MOVE_RUN ? start[sh + 1] : at + MOVE_RUN;
            uint64_t mask = UINT64_C(1) << sh;
            idx_lock_mask(db->idx, mask);
            for (size_t j = at; j < end; j++) {
                struct stage_rec *r = &m->v[order[j]];
                idx_loc old;
                if (j + 16 < end)
                    idx_prefetch_locked(db->idx, m->v[order[j + 16]].hash, 0);
                if (j + 8 < end)
                    idx_prefetch_locked(db->idx, m->v[order[j + 8]].hash, 1);
                if (idx_relocate_locked(db->idx, m->keys + r->koff, r->klen, r->hash, r->loc.seq,
                                        r->loc.file, r->loc.off, &old)) {
                    live_add(r->file, r->loc.len);
                    lose_live(db, &old);
                }
            }
            idx_unlock_mask(db->idx, mask);
        }
    }
    free(order);
    staged_reset(m);
    return KV_OK;
}

static int index_segment(kv_db *db, kv_file *f, staged *s, staged *moves, hint_rbuf *hr)
{
    seg_ctx c = {db, f, s, moves, atomic_load(&db->reached)};
    char why[160];
    kv_scan_result res;
    size_t n0 = s->n, k0 = s->klen;
    uint64_t mask0 = s->mask, max0 = s->max_seq;
    staged_reset(moves);
    int rc = hint_load(db->io, db->dirfd, f->number, f->size, hr, seg_entry, &c, why, sizeof why);
    if (rc != KV_NOTFOUND) {
        if (rc == KV_OK)
            rc = apply_moves(db, moves);
        staged_reset(moves);
        return rc;
    }
    /* No usable hint (none, damaged, gone): the records themselves. Whatever the hint
     * staged before it was refused is dropped: the scan stages it again. */
    s->n = n0;
    s->klen = k0;
    s->mask = mask0;
    s->max_seq = max0;
    staged_reset(moves);
    rc = scan_file(db->io, f->fd, f->name, KV_FILE_HDR_SIZE, f->size, seg_entry, &c, &res);
    if (rc == KV_OK && res.stopped)
        rc = err_set(KV_ECORRUPT, "%s: offset %llu: %s", f->name, (unsigned long long)res.bad_off,
                     res.why);
    if (rc == KV_OK)
        rc = apply_moves(db, moves);
    staged_reset(moves);
    return rc;
}

typedef struct retire_scan {
    const uint32_t *nums;
    uint32_t n;
    uint32_t wal;   /* the retired WAL file's number, or 0 */
    doomed *d;
    int rc;
} retire_scan;

static int in_list(const uint32_t *v, uint32_t n, uint32_t x)
{
    for (uint32_t i = 0; i < n; i++)
        if (v[i] == x)
            return 1;
    return 0;
}

static int find_doomed(void *arg, const uint8_t *key, size_t klen, const idx_loc *loc)
{
    retire_scan *r = arg;
    /* a key in a WAL file read through its segment is in that segment */
    int gone = ((loc->flags & IDX_F_WAL) && loc->file == r->wal) || in_list(r->nums, r->n, loc->file);
    if (gone && doom(r->d, key, klen, idx_hash(key, klen), loc->seq) != KV_OK)
        return r->rc = KV_ENOMEM;
    return 0;
}

/* 2c: the keys still pointing into a retired file, found only when one of them
 * still has live bytes (each key counts in the file its record is in). */
static int collect_doomed(kv_db *db, const follow *fw, doomed *d)
{
    retire_scan r = {fw->retire, fw->nretire, 0, d, KV_OK};
    int any = 0;
    for (uint32_t i = 0; i < fw->nretire; i++) {
        kv_file *f = ftab_get(db, fw->retire[i], 0);
        if (f != NULL) {
            any |= atomic_load(&f->live_bytes) > 0;
            file_unref(f);
        }
    }
    if (db->wal_prev != NULL && db->wal_prev->number != fw->alias) {
        r.wal = db->wal_prev->number;
        any |= atomic_load(&db->wal_prev->live_bytes) > 0;
    }
    for (unsigned s = 0; any && s < IDX_SHARDS && r.rc == KV_OK; s++)
        if (idx_visit_shard(db->idx, s, find_doomed, &r) != 0 && r.rc == KV_OK)
            r.rc = KV_ENOMEM;
    return r.rc == KV_OK ? KV_OK : err_set(KV_ENOMEM, "kv_refresh: %s: retired keys", db->dir);
}

/* 2e: the MANIFEST in force, the retired files out of the table and closed, the old
 * WAL file closed. */
static void follow_finish(kv_db *db, follow *fw)
{
    kv_file *gone[64];
    for (uint32_t at = 0; at < fw->nretire; at += 64) {
        uint32_t k = fw->nretire - at < 64 ? fw->nretire - at : 64;
        ftab_remove_n(db, fw->retire + at, k, gone);
        for (uint32_t i = 0; i < k; i++) {
            if (gone[i] == db->active)
                db->active = NULL;
            file_unref(gone[i]);
        }
    }
    pthread_rwlock_wrlock(&db->ftab_lock);
    kv_file *prev = db->wal_prev;
    db->wal_prev = NULL;
    free(db->man.sealed);
    db->man = fw->man;
    memset(&fw->man, 0, sizeof fw->man);
    pthread_rwlock_unlock(&db->ftab_lock);
    file_unref(prev);
}

/* Whether m can follow the MANIFEST in force in the same store: a writer only moves
 * the generation and the active pair forward, and never puts another file under the
 * name of the WAL file the handle follows (a number the MANIFEST named is never used
 * again). Otherwise the store was replaced (or repaired) under the handle: KV_EIO.
 * KV_NOTFOUND when that WAL file is gone: the store rolled since m was read. */
static int check_same_store(kv_db *db, const kv_manifest *m)
{
    struct stat a, b;
    const char *why = NULL;
    if (m->active < db->man.active)
        why = "names an older active segment";
    else if (m->generation < db->man.generation)
        why = "has an older generation";
    else if (m->active == db->man.active) {
        /* gone: a roll since the MANIFEST was read (start over from the newer one) */
        if (fstatat(db->dirfd, db->wal_file->name, &b, 0) != 0)
            return KV_NOTFOUND;
        if (fstat(db->wal_file->fd, &a) == 0 && (a.st_ino != b.st_ino || a.st_dev != b.st_dev))
            why = "names a WAL file that is not the one the handle follows";
    }
    if (why == NULL)
        return KV_OK;
    return err_set(KV_EIO, "kv_refresh: %s: the MANIFEST (generation %u, active segment %06u) %s "
                   "(generation %u, active %06u before): the store was replaced or repaired "
                   "under the handle; open it again", db->dir, m->generation, m->active, why,
                   db->man.generation, db->man.active);
}

/* Whether segment seg holds, at the same offsets, exactly the records of WAL file wal
 * (final: the handle has read it to its end): then the keys pointing into the WAL
 * file can be read through the segment as they are, and a roll costs a comparison
 * of bytes (both in the page cache) instead of moving every key of the segment. So
 * it is when the writer appended each group to the segment as it wrote it to the WAL
 * file, from the start; a segment that got its records otherwise (the records of a
 * restart's replay at other offsets, a WAL file that lost bytes the segment has)
 * differs, and the keys are moved. Reads only checked bytes: the WAL file's up to
 * its end, the sealed segment's (never cut). */
static int same_records(kv_db *db, kv_file *wal, kv_file *seg)
{
    uint64_t end = atomic_load(&wal->size);
    if (atomic_load(&seg->size) != end)
        return 0;
    if (end <= KV_FILE_HDR_SIZE)
        return 1;
    if (wal->map != NULL && seg->map != NULL && wal->map_len >= end && seg->map_len >= end)
        return memcmp(wal->map + KV_FILE_HDR_SIZE, seg->map + KV_FILE_HDR_SIZE,
                      (size_t)(end - KV_FILE_HDR_SIZE)) == 0;
    size_t chunk = 1u << 20;
    uint8_t *a = malloc(chunk), *b = malloc(chunk);
    int same = a != NULL && b != NULL;
    for (uint64_t off = KV_FILE_HDR_SIZE; same && off < end; off += chunk) {
        size_t n = end - off < chunk ? (size_t)(end - off) : chunk;
        same = io_pread_full(db->io, wal->fd, a, n, off) == (ssize_t)n
               && io_pread_full(db->io, seg->fd, b, n, off) == (ssize_t)n && memcmp(a, b, n) == 0;
    }
    free(a);
    free(b);
    return same;
}

/* Follows the MANIFEST as it is now. KV_NOTFOUND: a file it named was gone (start
 * over); the handle's view is unchanged then, but for files added to the table. */
static int follow_manifest(kv_db *db, staged *s)
{
    follow fw = {0};
    doomed d = {0};
    hint_rbuf hr = {0};
    staged moves = {0};
    int installed = 0;
    int man_fd = db_open_manifest(db);
    int rc = manifest_load(db->io, db->dirfd, &fw.man);
    if (rc == KV_NOTFOUND)
        rc = err_set(KV_EIO, "kv_refresh: %s: MANIFEST is gone: the store was removed or "
                     "replaced under the handle", db->dir);
    if (rc == KV_OK)
        rc = check_same_store(db, &fw.man);
    if (rc == KV_OK && fw.man.generation == db->man.generation && fw.man.active == db->man.active
        && fw.man.nsealed == db->man.nsealed
        && memcmp(fw.man.sealed, db->man.sealed, fw.man.nsealed * sizeof *fw.man.sealed) == 0) {
        db_pin_manifest(db, man_fd); /* the same one after all */
        follow_free(&fw);
        return KV_OK;
    }
    /* a. the WAL file followed so far is final once the active pair moved on */
    if (rc == KV_OK && fw.man.active != db->man.active)
        rc = tail_wal(db, s);
    if (rc == KV_OK)
        rc = follow_open(db, &fw);
    if (rc == KV_OK && (rc = follow_install(db, &fw)) == KV_OK)
        installed = 1;
    /* b. the new segments: moves now, new records staged; the segment of the WAL
     * file just read to its end is compared with it first */
    for (uint32_t i = 0; rc == KV_OK && i < db->nfiles; i++) {
        kv_file *f = db->files[i];
        /* the files just installed are those named sealed that the old MANIFEST did
         * not name sealed */
        if (!man_names(&fw.man, f->number) || man_names(&db->man, f->number))
            continue;
        if (fw.rolled && db->wal_prev != NULL && f->number == db->wal_prev->number
            && same_records(db, db->wal_prev, f)) {
            fw.alias = f->number;
            atomic_store(&f->holds_wal, 1);
            live_add(f, (int64_t)atomic_load(&db->wal_prev->live_bytes));
            atomic_store(&db->wal_prev->live_bytes, 0);
            continue;
        }
        rc = index_segment(db, f, s, &moves, &hr);
    }
    staged_free(&moves);
    /* c, d. The WAL file as it is now (the new one from its start), read after the
     * MANIFEST was: a record the writer dropped as dead was superseded by one it
     * had written before it published the MANIFEST, so that one is in a new
     * segment or here. The keys left in retired files are collected only then, and
     * everything goes in one step: no get sees a key vanish that was only moved on,
     * nor half of a batch whose tombstone the writer dropped. */
    tail_ctx t = {.s = s, .d = &d, .by_steps = 0};
    if (rc == KV_OK && fw.rolled)
        db->wal_last_seq = 0;
    if (rc == KV_OK)
        rc = tail_run(db, &t);
    if (rc == KV_OK)
        rc = collect_doomed(db, &fw, &d);
    if (rc == KV_OK)
        rc = tail_flush(&t);
    if (rc == KV_OK) {
        follow_finish(db, &fw);
        db_pin_manifest(db, man_fd);
        man_fd = -1;
    }
    /* Past the install, the table and the index are half way between two MANIFESTs
     * (every get still answers from the old view: only copies of records moved), and
     * the handle cannot go back: every later refresh fails the same way. */
    if (rc != KV_OK && installed)
        db_fail(db, rc);
    if (man_fd >= 0)
        close(man_fd);
    free(hr.p);
    doomed_free(&d);
    follow_free(&fw);
    return rc;
}

/* ---- kv_refresh -------------------------------------------------------------------- */

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int refresh_run(kv_db *db)
{
    staged s = {0};
    int rc = KV_OK;
    for (unsigned attempt = 1; rc == KV_OK; attempt++) {
        rc = tail_wal(db, &s);
        if (rc != KV_OK || !manifest_changed(db))
            break;
        rc = follow_manifest(db, &s);
        if (rc != KV_NOTFOUND)
            break;
        if (attempt == KV_RO_ATTEMPTS) {
            rc = err_set(KV_EIO, "kv_refresh: %s: the store kept changing under %u attempts",
                         db->dir, attempt);
            break;
        }
        rc = KV_OK;
        sleep_ms(attempt < 6 ? 1u << (attempt - 1) : 32u);
    }
    staged_free(&s);
    return rc;
}

int kv_refresh(kv_db *db)
{
    if (db == NULL)
        return err_set(KV_EINVAL, "kv_refresh: db is NULL");
    if (!db->opts.read_only)
        return KV_OK;
    pthread_mutex_lock(&db->refresh_mu);
    uint64_t t0 = clock_now_us(), before = atomic_load(&db->reached);
    int rc = atomic_load(&db->failed);
    if (rc != KV_OK) {
        pthread_mutex_lock(&db->fail_mu);
        err_set(rc, "kv_refresh: an earlier refresh failed half way and the handle cannot "
                "follow the writer any more (it still answers from the view it had): open "
                "the store again; it failed with: %s", db->failmsg);
        pthread_mutex_unlock(&db->fail_mu);
    } else {
        rc = refresh_run(db);
    }
    if (rc == KV_OK) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        atomic_store(&db->refresh_lag, atomic_load(&db->reached) - before);
        atomic_store(&db->refresh_last_time,
                     (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u);
        atomic_store(&db->refresh_last_us, clock_now_us() - t0);
        atomic_fetch_add(&db->refreshes, 1);
    }
    pthread_mutex_unlock(&db->refresh_mu);
    return rc;
}
