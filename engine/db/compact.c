/*
 * compact.c — compaction: the live records of dead-heavy sealed segments are
 * rewritten into new segments, and the space of everything else is given back.
 *
 * A pass, in order (each step's crash outcome is in docs/FORMAT.md):
 *   1. pick   sealed segments whose reclaimable bytes reach compact_dead_ratio of
 *             their payload, plus small segments to merge when there are several;
 *             every other sealed segment is a survivor;
 *   2. copy   scan each input (every record checked); keep a put only while the
 *             index still holds its sequence number, keep a tombstone only while a
 *             survivor may hold an older record of its key (invariant 3: no
 *             resurrection); append the kept records to new segments, whose numbers
 *             come after every file in use;
 *   3. seal   flush and fdatasync the outputs, write their hint files (seg.h);
 *   4. sync   fdatasync the WAL: the newer records that made input records dead
 *             must be as durable as what they replace;
 *   5. publish one MANIFEST naming the outputs instead of the inputs — the commit
 *             point: before it, open removes the outputs as leftovers; after it,
 *             the inputs;
 *   6. relocate index entries still at the copied sequence numbers move to the
 *             outputs; a write that raced the pass keeps its newer location;
 *   7. retire the inputs leave the file table and their names are removed; a get
 *             that pinned one finishes reading it (an unlinked file stays readable
 *             while open).
 * A failure before 5 removes the outputs and leaves the store as it was. If the
 * MANIFEST was renamed but the directory fsync failed, which MANIFEST a crash leaves
 * is unknown: the handle fails (invariant 6) and keeps every file.
 *
 * Three kinds of run share this code (compact_how): the background thread's, paced
 * to compact_bytes_per_sec and waiting for enough garbage; kv_compact's, unpaced,
 * taking whatever is eligible; and a request of another process's kvcompact
 * (compact_req.c), which the background thread serves like kv_compact but paced.
 *
 * Sections: bookkeeping of sealed segments, picking, copying, publishing and
 * retiring, the pass, the background thread and kv_compact.
 */
#include "db/compact.h"

#include "base/crc.h"
#include "format/entry.h"
#include "store/scan.h"
#include "base/grow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PASS_SEGMENTS 4           /* a pass reads at most this many segments' bytes */
#define PACE_CHUNK (1u << 20)     /* pacing and progress granularity */
#define BG_PERIOD_MS 1000         /* the background thread looks for garbage this often */
#define REQ_POLL_MS 100           /* ... and for a request of another process this often */

typedef struct compact_out {
    kv_file *f;           /* the new segment */
    hint_buf hint;        /* its hint records */
    uint64_t put_bytes;   /* bytes of puts copied */
    uint64_t tomb_bytes;  /* bytes of tombstones kept */
    uint32_t blockers[8]; /* survivors that kept those tombstones (see kv_file) */
    uint32_t nblockers;
} compact_out;

typedef struct compact_pass {
    kv_db *db;
    const compact_how *how;   /* ratio, pacing, progress */
    int background;           /* an automatic pass: only when garbage is plenty */
    kv_file **in;             /* inputs, pinned, by number */
    uint32_t nin;
    kv_file **surv;           /* survivors, pinned */
    uint32_t nsurv;
    compact_out *out;         /* outputs, the last one open for appending */
    uint32_t nout;
    size_t outcap;
    uint64_t bytes_in, dropped, tombs_dropped;
    uint64_t t0, paced;       /* pacing: start time and bytes processed */
} compact_pass;

/* ---- bookkeeping of sealed segments ------------------------------------------------ */

/* Dead bytes compacting f would give back (those above its floor). */
static uint64_t reclaimable(const kv_file *f)
{
    uint64_t payload = f->size - KV_FILE_HDR_SIZE, live = atomic_load(&f->live_bytes);
    uint64_t dead = payload > live ? payload - live : 0;
    return dead > f->dead_floor ? dead - f->dead_floor : 0;
}

static int is_eligible(const kv_file *f, double ratio)
{
    uint64_t payload = f->size - KV_FILE_HDR_SIZE;
    return !f->compact_skip && payload > 0 && (double)reclaimable(f) >= ratio * (double)payload;
}

uint64_t compact_reclaimable_locked(kv_db *db)
{
    uint64_t sum = 0;
    for (uint32_t i = 0; i < db->nfiles; i++)
        if (is_eligible(db->files[i], db->opts.compact_dead_ratio))
            sum += reclaimable(db->files[i]);
    return sum;
}

static int is_small(const kv_db *db, const kv_file *f)
{
    return !f->compact_skip && f->size < db->opts.segment_bytes / 4;
}

/* ---- picking ----------------------------------------------------------------------- */

static int push_file(kv_file ***v, uint32_t *n, kv_file *f)
{
    kv_file **nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (nv == NULL)
        return err_set(KV_ENOMEM, "compaction: list of %u segments", *n + 1);
    nv[(*n)++] = f;
    *v = nv;
    return KV_OK;
}

static void release_files(kv_file **v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        file_unref(v[i]);
    free(v);
}

/* Splits the sealed segments into inputs and survivors (all pinned). Returns KV_OK
 * with p->nin == 0 when there is nothing worth doing. */
static int pick(compact_pass *p)
{
    kv_db *db = p->db;
    kv_file **cand = NULL;
    uint32_t ncand = 0, nsmall = 0, nelig = 0;
    uint64_t reclaim = 0, budget = PASS_SEGMENTS * db->opts.segment_bytes;
    int rc = KV_OK;
    pthread_mutex_lock(&db->man_mu);
    for (uint32_t i = 0; i < db->man.nsealed && rc == KV_OK; i++) {
        kv_file *f = ftab_get(db, db->man.sealed[i].number, 0);
        if (f != NULL && (rc = push_file(&cand, &ncand, f)) != KV_OK)
            file_unref(f);
    }
    pthread_mutex_unlock(&db->man_mu);
    for (uint32_t i = 0; i < ncand; i++) {
        if (is_eligible(cand[i], p->how->ratio)) {
            nelig++;
            reclaim += reclaimable(cand[i]);
        } else if (is_small(db, cand[i])) {
            nsmall++;
        }
    }
    /* The background pass waits for a quarter segment of garbage (or a crowd of
     * small segments); kv_compact takes whatever is eligible. */
    int worth = p->background ? reclaim >= db->opts.segment_bytes / 4 || nsmall >= 8
                              : nelig > 0 || nsmall >= 2;
    for (uint32_t i = 0; i < ncand; i++) {
        kv_file *f = cand[i];
        int want = worth && (is_eligible(f, p->how->ratio) || (nsmall >= 2 && is_small(db, f)));
        int fits = p->nin == 0 || p->bytes_in + f->size <= budget;
        if (rc == KV_OK && want && fits) {
            p->bytes_in += f->size;
            rc = push_file(&p->in, &p->nin, f);
        } else if (rc == KV_OK) {
            rc = push_file(&p->surv, &p->nsurv, f);
        } else {
            rc = KV_ENOMEM; /* an earlier push failed: just unpin */
        }
        if (rc != KV_OK)
            file_unref(f);
    }
    free(cand);
    if (rc == KV_OK && p->nin == 1 && !is_eligible(p->in[0], p->how->ratio)) {
        /* a lone small segment: merging it with nothing gains nothing */
        rc = push_file(&p->surv, &p->nsurv, p->in[0]);
        if (rc != KV_OK)
            file_unref(p->in[0]);
        p->nin = 0;
        p->bytes_in = 0;
    }
    return rc;
}

/* ---- copying ----------------------------------------------------------------------- */

/* Counts bytes processed, ticks the progress about every MiB, and makes a paced run
 * keep to compact_bytes_per_sec and stop when the store closes. */
static int pace(compact_pass *p, uint64_t bytes)
{
    kv_db *db = p->db;
    atomic_fetch_add(&db->compact_pass_read, bytes);
    p->paced += bytes;
    int chunk = p->paced % PACE_CHUNK < bytes; /* a MiB boundary was crossed */
    if (chunk && p->how->tick != NULL)
        p->how->tick(p->how->tick_arg);
    if (!p->how->paced)
        return KV_OK;
    if (atomic_load(&db->bg_stop))
        return COMPACT_STOPPED;
    /* The clock is looked at, and a nap taken, once a MiB: napping whenever the pass
     * ran a record ahead woke the thread ~20,000 times a second, and each wakeup
     * preempted a writer (put p99 x8 while a pass ran; bench/compact_live.sh). */
    if (db->opts.compact_bytes_per_sec == 0 || !chunk)
        return KV_OK;
    uint64_t due_us = p->paced * 1000000u / db->opts.compact_bytes_per_sec;
    uint64_t spent = clock_now_us() - p->t0;
    while (due_us > spent && !atomic_load(&db->bg_stop)) {
        uint64_t nap = due_us - spent > 50000 ? 50000 : due_us - spent;
        struct timespec ts = {0, (long)nap * 1000L};
        nanosleep(&ts, NULL);
        spent = clock_now_us() - p->t0;
    }
    return atomic_load(&db->bg_stop) ? COMPACT_STOPPED : KV_OK;
}

/* Blockers: the survivors that keep tombstones alive (see kv_file.blockers). */
typedef struct blockers {
    uint32_t v[8];
    uint32_t n;       /* > 8: more than could be listed */
} blockers;

static void blockers_add(uint32_t *v, uint32_t *n, uint32_t number)
{
    for (uint32_t j = 0; j < *n && j < 8; j++)
        if (v[j] == number)
            return;
    if (*n < 8)
        v[*n] = number;
    (*n)++;
}

/* A tombstone must stay while a survivor may hold an older record of its key (the
 * Bloom filters answer without I/O; a false positive only keeps it longer). It may
 * go when a newer put of the key is live: step 4 makes that put durable. */
static int tomb_needed(compact_pass *p, const kv_entry *e, uint64_t hash, blockers *b)
{
    idx_loc loc;
    if (idx_get(p->db->idx, e->key, e->klen, hash, &loc) && !(loc.flags & IDX_F_TOMB)
        && loc.seq > e->seq)
        return 0;
    for (uint32_t i = 0; i < p->nsurv; i++) {
        kv_file *s = p->surv[i];
        if (s->min_seq != 0 && s->min_seq < e->seq && bloom_may_contain(s->bloom, hash))
            blockers_add(b->v, &b->n, s->number);
    }
    return b->n > 0;
}

/* Seals an output (seg_seal), then notes what compaction keeps of it. */
static int seal_output(compact_pass *p, compact_out *o)
{
    kv_db *db = p->db;
    int rc = seg_seal(db, o->f, &o->hint);
    if (rc != KV_OK)
        return rc;
    o->f->dead_floor = o->tomb_bytes;
    o->f->nblockers = o->nblockers;
    memcpy(o->f->blockers, o->blockers, sizeof o->blockers);
    if (db->opts.mmap_reads)
        file_map(o->f, 0);
    return KV_OK;
}

/* The output a record of `size` bytes goes to: the open one, or a new segment. */
static int output_for(compact_pass *p, uint32_t size, compact_out **out)
{
    kv_db *db = p->db;
    compact_out *o = p->nout > 0 ? &p->out[p->nout - 1] : NULL;
    if (o != NULL && !(o->f->size > KV_FILE_HDR_SIZE && o->f->size + size > db->opts.segment_bytes)) {
        *out = o;
        return KV_OK;
    }
    int rc = o != NULL ? seal_output(p, o) : KV_OK;
    if (rc == KV_OK && p->nout == p->outcap) {
        compact_out *no = grow(p->out, &p->outcap, (size_t)p->nout + 1, sizeof *no, 4, 0);
        if (no == NULL)
            return err_set(KV_ENOMEM, "compaction: %u outputs", p->nout + 1);
        p->out = no;
    }
    if (rc != KV_OK)
        return rc;
    o = &p->out[p->nout];
    memset(o, 0, sizeof *o);
    rc = seg_create(db->io, db->dirfd, atomic_fetch_add(&db->next_file, 1), &o->f);
    if (rc == KV_OK)
        p->nout++;
    *out = o;
    return rc;
}

/* Appends e to o at *at. A record of a batch loses its "more follows" flag (the
 * batch's atomicity was settled when its segment was sealed, and the output holds
 * only some of it), so its CRC is computed again over the changed header. */
static int append_record(compact_out *o, const kv_entry *e, uint64_t *at)
{
    const uint8_t *raw = e->key - KV_ENTRY_HDR;
    uint64_t off;
    if (!(e->flags & KV_RECF_BATCH))
        return file_append(o->f, raw, e->size, at);
    uint8_t hdr[KV_ENTRY_HDR];
    memcpy(hdr, raw, sizeof hdr);
    hdr[KV_ENTRY_OFF_FLAGS] &= (uint8_t)~KV_RECF_BATCH;
    uint32_t crc = kv_crc32c_extend(kv_crc32c(hdr + 4, sizeof hdr - 4), e->key,
                                    e->size - KV_ENTRY_HDR);
    kv_put32(hdr, crc);
    int rc = file_append(o->f, hdr, sizeof hdr, at);
    return rc == KV_OK ? file_append(o->f, e->key, e->size - KV_ENTRY_HDR, &off) : rc;
}

static int copy_entry(void *arg, const kv_entry *e, uint64_t off)
{
    compact_pass *p = arg;
    uint64_t hash = idx_hash(e->key, e->klen), at;
    blockers b = {{0}, 0};
    compact_out *o = NULL;
    idx_loc loc;
    int keep;
    (void)off;
    if (e->type == KV_REC_PUT)
        keep = idx_get(p->db->idx, e->key, e->klen, hash, &loc) && !(loc.flags & IDX_F_TOMB)
               && loc.seq == e->seq;
    else
        keep = tomb_needed(p, e, hash, &b);
    if (!keep) {
        p->dropped++;
        p->tombs_dropped += e->type == KV_REC_DEL;
        return pace(p, e->size);
    }
    int rc = output_for(p, e->size, &o);
    if (rc == KV_OK)
        rc = append_record(o, e, &at);
    if (rc != KV_OK)
        return rc;
    hint_add(&o->hint, e, at);
    if (e->type == KV_REC_PUT) {
        o->put_bytes += e->size;
    } else {
        o->tomb_bytes += e->size;
        for (uint32_t j = 0; j < b.n && j < 8; j++)
            blockers_add(o->blockers, &o->nblockers, b.v[j]);
        if (b.n > 8)
            o->nblockers = 9;
    }
    return pace(p, e->size);
}

static int copy_input(compact_pass *p, kv_file *f)
{
    kv_scan_result res;
    int rc = scan_file(p->db->io, f->fd, f->name, KV_FILE_HDR_SIZE, f->size, copy_entry, p, &res);
    if (rc == KV_OK && res.stopped) {
        f->compact_skip = 1; /* damaged: reported now, left for kvcheck */
        rc = err_set(KV_ECORRUPT, "%s: offset %llu: %s (compaction leaves this segment alone)",
                    f->name, (unsigned long long)res.bad_off, res.why);
    }
    return rc;
}

/* ---- publishing and retiring ------------------------------------------------------- */

typedef struct reloc_ctx {
    compact_pass *p;
    compact_out *o;
} reloc_ctx;

static int relocate_entry(void *arg, const kv_entry *e, uint64_t off)
{
    reloc_ctx *c = arg;
    kv_db *db = c->p->db;
    idx_loc old;
    if (e->type != KV_REC_PUT)
        return KV_OK;
    if (idx_relocate(db->idx, e->key, e->klen, idx_hash(e->key, e->klen), e->seq,
                     c->o->f->number, (uint32_t)off, &old)) {
        kv_file *from = ftab_get(db, old.file, 0);
        if (from != NULL) {
            atomic_fetch_sub(&from->live_bytes, old.len);
            file_unref(from);
        }
    } else {
        atomic_fetch_sub(&c->o->f->live_bytes, e->size); /* a newer write won */
    }
    return KV_OK;
}

/* Steps 6 and 7. */
static void relocate_and_retire(compact_pass *p)
{
    kv_db *db = p->db;
    for (uint32_t i = 0; i < p->nout; i++) {
        reloc_ctx c = {p, &p->out[i]};
        hint_buf_walk(&p->out[i].hint, p->out[i].f->number, p->out[i].f->size, relocate_entry, &c);
    }
    seg_retire(db, p->in, p->nin);
    /* Tombstones kept because of a segment now gone may go at the next pass. */
    pthread_rwlock_rdlock(&db->ftab_lock);
    for (uint32_t i = 0; i < db->nfiles; i++) {
        kv_file *f = db->files[i];
        for (uint32_t j = 0; f->dead_floor > 0 && j < p->nin; j++) {
            int hit = f->nblockers > 8;
            for (uint32_t k = 0; k < f->nblockers && k < 8 && !hit; k++)
                hit = f->blockers[k] == p->in[j]->number;
            if (hit)
                f->dead_floor = 0;
        }
    }
    pthread_rwlock_unlock(&db->ftab_lock);
}

/* Removes the outputs of an abandoned pass (from the file table too, if they are
 * there). */
static void discard_outputs(compact_pass *p)
{
    for (uint32_t i = 0; i < p->nout; i++)
        seg_retire(p->db, &p->out[i].f, 1);
}

/* ---- the pass ---------------------------------------------------------------------- */

/* Steps 3 to 7, once every input is copied. */
static int finish_pass(compact_pass *p)
{
    kv_db *db = p->db;
    int rc = p->nout > 0 ? seal_output(p, &p->out[p->nout - 1]) : KV_OK;
    if (rc == KV_OK && db->opts.sync != KV_SYNC_ALWAYS)
        rc = wal_sync(&db->wal);
    /* Outputs enter the file table first (nothing points at them yet), credited
     * with every put they hold; relocation takes back what a newer write won. */
    kv_file **outs = NULL;
    if (rc == KV_OK && p->nout > 0 && (outs = malloc(p->nout * sizeof *outs)) == NULL)
        rc = err_set(KV_ENOMEM, "compaction: %u outputs", p->nout);
    for (uint32_t i = 0; rc == KV_OK && i < p->nout; i++) {
        p->out[i].f->live_bytes = p->out[i].put_bytes;
        outs[i] = p->out[i].f;
    }
    if (rc == KV_OK && (rc = ftab_add_n(db, outs, p->nout)) == KV_OK)
        for (uint32_t i = 0; i < p->nout; i++)
            file_ref(outs[i]);
    int renamed = 0;
    if (rc == KV_OK)
        rc = seg_publish(db, p->in, p->nin, outs, p->nout, &renamed);
    free(outs);
    if (rc != KV_OK && renamed)
        return db_fail(db, rc);
    if (rc != KV_OK) {
        discard_outputs(p);
        return rc;
    }
    relocate_and_retire(p);
    return KV_OK;
}

static void pass_free(compact_pass *p)
{
    for (uint32_t i = 0; i < p->nout; i++) {
        hint_free(&p->out[i].hint);
        file_unref(p->out[i].f);
    }
    free(p->out);
    release_files(p->in, p->nin);
    release_files(p->surv, p->nsurv);
}

/* One pass. *did is set when it compacted something. The caller holds compact_mu. */
static int run_pass(kv_db *db, const compact_how *how, int background, int *did)
{
    compact_pass p = {.db = db, .how = how, .background = background, .t0 = clock_now_us()};
    *did = 0;
    int rc = db_check_failed(db);
    if (rc == KV_OK)
        rc = pick(&p);
    if (rc != KV_OK || p.nin == 0) {
        pass_free(&p);
        return rc;
    }
    atomic_store(&db->compact_pass_read, 0);
    atomic_store(&db->compact_pass_total, p.bytes_in);
    atomic_store(&db->compacting, 1);
    if (how->tick != NULL)
        how->tick(how->tick_arg);
    for (uint32_t i = 0; i < p.nin && rc == KV_OK; i++)
        rc = copy_input(&p, p.in[i]);
    if (rc == KV_OK)
        rc = finish_pass(&p);
    else
        discard_outputs(&p);
    if (rc == KV_OK) {
        uint64_t out = 0;
        for (uint32_t i = 0; i < p.nout; i++)
            out += p.out[i].f->size;
        atomic_fetch_add(&db->compactions, 1);
        atomic_fetch_add(&db->compact_bytes_in, p.bytes_in);
        atomic_fetch_add(&db->compact_bytes_out, out);
        atomic_fetch_add(&db->compact_dropped, p.dropped);
        atomic_fetch_add(&db->compact_tombs_dropped, p.tombs_dropped);
        atomic_store(&db->compact_last_unix, (uint64_t)time(NULL));
        atomic_store(&db->compact_last_us, clock_now_us() - p.t0);
        *did = 1;
    } else if (rc != COMPACT_STOPPED) {
        atomic_fetch_add(&db->compact_errors, 1);
    }
    atomic_store(&db->compacting, 0);
    atomic_store(&db->compact_pass_total, 0);
    pass_free(&p);
    return rc;
}

/* ---- the background thread and kv_compact ------------------------------------------ */

/* Waits on bg_cv (bg_mu held) for at most ms milliseconds, or until kicked. */
static void bg_wait(kv_db *db, unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)(ms % 1000u) * 1000000L;
    ts.tv_sec += ms / 1000u + ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&db->bg_cv, &db->bg_mu, &ts);
}

/* Automatic passes, while there is enough garbage; a request of another process
 * waiting is served first (the loop ends, the thread comes back to it). */
static void auto_passes(kv_db *db)
{
    compact_how how = {.ratio = db->opts.compact_dead_ratio, .paced = 1};
    int did = 1;
    pthread_mutex_lock(&db->compact_mu);
    while (did && !atomic_load(&db->bg_stop) && !req_waiting(db)
           && run_pass(db, &how, 1, &did) == KV_OK) /* errors are counted in stats */
        ;
    pthread_mutex_unlock(&db->compact_mu);
}

/* The background thread of every writer handle. Every REQ_POLL_MS it looks for a
 * compaction request of another process (one fstatat: compact_req.c) and serves it;
 * with auto_compact, every BG_PERIOD_MS and whenever a segment is sealed
 * (compact_kick) it also runs automatic passes. */
static void *bg_main(void *arg)
{
    kv_db *db = arg;
    req_server srv;
    req_server_init(&srv, db);
    uint64_t next_auto = clock_now_us() + BG_PERIOD_MS * 1000u;
    pthread_mutex_lock(&db->bg_mu);
    while (!atomic_load(&db->bg_stop)) {
        if (!db->bg_kick)
            bg_wait(db, REQ_POLL_MS);
        int kick = db->bg_kick;
        db->bg_kick = 0;
        if (atomic_load(&db->bg_stop))
            break;
        pthread_mutex_unlock(&db->bg_mu);
        req_serve(&srv);
        if (db->opts.auto_compact && (kick || clock_now_us() >= next_auto)) {
            auto_passes(db);
            next_auto = clock_now_us() + BG_PERIOD_MS * 1000u;
        }
        err_clear();
        pthread_mutex_lock(&db->bg_mu);
    }
    pthread_mutex_unlock(&db->bg_mu);
    return NULL;
}

/* Every writer handle runs the thread, auto_compact or not: it answers compaction
 * requests (kvcompact on a live store). A read-only handle never does. */
int compact_start(kv_db *db)
{
    if (db->opts.read_only)
        return KV_OK;
    db->bg_running = 1; /* before the thread starts: it reads it (compact_kick) */
    int e = pthread_create(&db->bg_thread, NULL, bg_main, db);
    if (e != 0) {
        db->bg_running = 0;
        return err_errno(e, "starting the compaction thread");
    }
    return KV_OK;
}

void compact_stop(kv_db *db)
{
    if (!db->bg_running)
        return;
    pthread_mutex_lock(&db->bg_mu);
    atomic_store(&db->bg_stop, 1);
    pthread_cond_signal(&db->bg_cv);
    pthread_mutex_unlock(&db->bg_mu);
    pthread_join(db->bg_thread, NULL);
    db->bg_running = 0;
}

void compact_kick(kv_db *db)
{
    if (!db->bg_running)
        return;
    pthread_mutex_lock(&db->bg_mu);
    db->bg_kick = 1;
    pthread_cond_signal(&db->bg_cv);
    pthread_mutex_unlock(&db->bg_mu);
}

int compact_now(kv_db *db, const compact_how *how)
{
    int rc = db_check_failed(db);
    if (rc != KV_OK)
        return rc;
    /* Seal the active segment first: its garbage becomes reclaimable, and its WAL
     * file (a second copy of its records) is deleted. */
    pthread_rwlock_rdlock(&db->ftab_lock);
    int seal = db->active->size > KV_FILE_HDR_SIZE;
    pthread_rwlock_unlock(&db->ftab_lock);
    if (seal && (rc = wal_roll(&db->wal)) != KV_OK)
        return rc;
    pthread_mutex_lock(&db->compact_mu);
    pthread_mutex_lock(&db->man_mu);
    uint32_t limit = db->man.nsealed + 1; /* each pass retires at least one segment */
    pthread_mutex_unlock(&db->man_mu);
    int did = 1;
    for (uint32_t n = 0; did && n < limit && rc == KV_OK; n++)
        rc = run_pass(db, how, 0, &did);
    pthread_mutex_unlock(&db->compact_mu);
    return rc;
}

int kv_compact(kv_db *db)
{
    if (db == NULL)
        return err_set(KV_EINVAL, "kv_compact: db is NULL");
    if (db->opts.read_only)
        return err_set(KV_EREADONLY, "kv_compact: %s is open read-only", db->dir);
    compact_how how = {.ratio = db->opts.compact_dead_ratio};
    return compact_now(db, &how);
}
