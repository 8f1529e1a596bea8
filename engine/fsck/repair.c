/*
 * repair.c — repairing a store under its writer lock (check.h lists the steps and
 * why a crash at any point leaves a store that opens or that the next repair
 * finishes).
 *
 * A repair is a plan carried out: the store is checked again (check_store_run),
 * every step is decided and told before the first byte changes, then the steps run
 * in their order. Sections: the plan; what a salvage keeps (each damaged file walked,
 * whole batches kept, and the hint's word on what was lost); planning; carrying out
 * each kind of step; check_repair.
 */
#include "fsck/check.h"

#include "format/compress.h"
#include "db/db.h"
#include "db/seg.h"
#include "format/entry.h"
#include "store/file.h"
#include "store/hint.h"
#include "base/kv_int.h"
#include "base/grow.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

/* ---- the plan ------------------------------------------------------------------------ */

/* Kinds of step, in the order they run. */
enum {
    ST_LOCK = 1, /* LOCK gets our pid */
    ST_REMOVE,   /* a leftover goes */
    ST_CUT,      /* a torn tail of the active pair is cut */
    ST_CREATE,   /* a missing active segment or WAL file is created empty */
    ST_HINT,     /* a sealed segment's hint is written again from the segment */
    ST_WRITE,    /* a salvage's output is written and made durable */
    ST_ASIDE,    /* a damaged file is renamed NAME.damaged */
    ST_MANIFEST, /* the MANIFEST names the outputs: the commit point */
    ST_TWIN      /* the clean twin of a rebuilt active pair goes */
};

#define SRC_HINT 0xff /* a kept record rebuilt from the hint (a tombstone) */
#define SRC_TOMB 0xfe /* a lost delete written again from its damaged entry (tomb) */

typedef struct kept {
    uint64_t seq;
    uint64_t off;      /* in its source file */
    uint32_t size;
    uint8_t src;       /* 0 or 1: the salvage's input; SRC_HINT: rebuilt from the hint;
                          SRC_TOMB: a delete written again (salvage.tomb) */
    uint32_t hint_idx; /* SRC_HINT: the hint record; SRC_TOMB: the tomb */
} kept;

/* A lost delete the repair writes again: its key and sequence number. */
typedef struct tomb {
    uint8_t *key;
    uint32_t klen;
    uint64_t seq;
} tomb;

/* What a walk found that is not kept: a candidate for the lost list. */
typedef struct cand {
    uint64_t off, seq;
    uint32_t size, klen;
    int type, source;  /* CHECK_FROM_* */
    uint8_t *key;      /* a copy, or NULL */
    uint8_t src;       /* the input it was found in */
    uint64_t lo, hi;   /* sequence numbers of the whole records around it in its input:
                          the last before, the first after (0: none) */
} cand;

typedef struct salvage {
    int active;        /* rebuilds the active pair; else salvages one sealed segment */
    check_file *in[2]; /* inputs that have bytes (sealed: in[0]; active: segment, WAL) */
    const char *name;  /* the file lost records are told under */
    inspect_hint hint; /* sealed: its hint (used when status is KV_OK) */
    kept *recs;        /* records to copy: by sequence number once planned */
    size_t n, cap;
    cand *cands;
    size_t ncand, capcand;
    uint32_t out;      /* the output's number (0: nothing to write) */
    uint64_t out_size;
    uint64_t tombs;    /* tombstones rebuilt from the hint */
    check_file *f;     /* sealed: the damaged segment */
    tomb *tk;          /* lost deletes written again (kept as SRC_TOMB) */
    size_t ntk;
    int unordered[2];  /* an input's whole records do not rise in sequence order (a
                          compaction output): lo and hi bound nothing */
} salvage;

typedef struct step {
    int type;
    size_t idx;        /* planning order, to keep it within a kind */
    char file[256];
    char to[256];      /* ST_ASIDE: the new name */
    int has_off;
    uint64_t off, len;
    check_file *f;     /* ST_CUT, ST_CREATE, ST_HINT */
    salvage *sv;       /* ST_WRITE */
    char what[400];
} step;

/* A key the plan tells about (check_revert), with its own copies. */
typedef struct revert {
    check_revert r;
    uint8_t *key;
    char why[320];
    uint64_t count;    /* keys it stands for (1; more for "and N more keys") */
} revert;

typedef struct plan {
    check_store *s;
    int lock_fd;
    step *v;
    size_t n, cap;
    salvage **sv;
    size_t nsv;
    uint32_t next_file; /* next unused number */
    kv_manifest man;    /* the MANIFEST to publish (when man_change) */
    int man_change;
    check_repair_result *res;
    revert *rv;         /* keys whose state the plan changes */
    size_t nrv;
} plan;

static int plan_reverts(plan *p);

static int add_step(plan *p, int type, const char *file, int has_off, uint64_t off, uint64_t len,
                    const char *fmt, ...) KV_PRINTF(7, 8);
static int add_step(plan *p, int type, const char *file, int has_off, uint64_t off, uint64_t len,
                    const char *fmt, ...)
{
    va_list ap;
    if (p->n == p->cap) {
        step *nv = grow(p->v, &p->cap, p->n + 1, sizeof *nv, 16, 0);
        if (nv == NULL)
            return err_set(KV_ENOMEM, "repair: a plan of %zu steps", (p->n + 1));
        p->v = nv;
    }
    step *st = &p->v[p->n];
    memset(st, 0, sizeof *st);
    st->type = type;
    st->idx = p->n++;
    snprintf(st->file, sizeof st->file, "%s", file);
    st->has_off = has_off;
    st->off = off;
    st->len = len;
    va_start(ap, fmt);
    vsnprintf(st->what, sizeof st->what, fmt, ap);
    va_end(ap);
    return KV_OK;
}

static void salvage_free(salvage *sv)
{
    inspect_hint_free(&sv->hint);
    for (size_t i = 0; i < sv->ncand; i++)
        free(sv->cands[i].key);
    for (size_t i = 0; i < sv->ntk; i++)
        free(sv->tk[i].key);
    free(sv->tk);
    free(sv->cands);
    free(sv->recs);
    free(sv);
}

static void plan_free(plan *p)
{
    for (size_t i = 0; i < p->nsv; i++)
        salvage_free(p->sv[i]);
    free(p->sv);
    free(p->v);
    for (size_t i = 0; i < p->nrv; i++)
        free(p->rv[i].key);
    free(p->rv);
    manifest_free(&p->man);
}

static int cmp_step(const void *a, const void *b)
{
    const step *x = a, *y = b;
    if (x->type != y->type)
        return x->type < y->type ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* ---- what a salvage keeps -------------------------------------------------------------- */

static int push_kept(salvage *sv, const kept *k)
{
    if (sv->n == sv->cap) {
        kept *nr = grow(sv->recs, &sv->cap, sv->n + 1, sizeof *nr, 64, 0);
        if (nr == NULL)
            return err_set(KV_ENOMEM, "repair: %zu records to salvage", (sv->n + 1));
        sv->recs = nr;
    }
    sv->recs[sv->n++] = *k;
    return KV_OK;
}

static int push_cand(salvage *sv, uint8_t src, uint64_t off, uint32_t size, uint64_t seq,
                     int type, const uint8_t *key, uint32_t klen, int source)
{
    if (sv->ncand == sv->capcand) {
        cand *nc = grow(sv->cands, &sv->capcand, sv->ncand + 1, sizeof *nc, 16, 0);
        if (nc == NULL)
            return err_set(KV_ENOMEM, "repair: a list of %zu lost records", (sv->ncand + 1));
        sv->cands = nc;
    }
    cand *c = &sv->cands[sv->ncand];
    *c = (cand){off, seq, size, key != NULL ? klen : 0, type, source, NULL, src, 0, 0};
    if (key != NULL && (c->key = malloc(klen ? klen : 1)) == NULL)
        return err_set(KV_ENOMEM, "repair: a lost key of %u bytes", klen);
    if (key != NULL)
        memcpy(c->key, key, klen);
    sv->ncand++;
    return KV_OK;
}

typedef struct keep_ctx {
    salvage *sv;
    uint8_t src;
    int past_damage;    /* the active pair: a damaged stretch was seen; what follows is
                           not kept (the point-in-time rule, keep_record) */
    kept *batch;        /* the whole batch being read */
    size_t nbatch, capbatch;
    int batch_bad;      /* one of its values does not decompress */
    uint64_t loose_end; /* end of the last loose entry that checks out */
    uint64_t last_seq;  /* sequence number of the last whole record (0: none yet) */
    size_t open_from;   /* cands from here on wait for their hi */
    check_repair_result *res;
} keep_ctx;

/* The bounds of what a stretch lost: the candidate just pushed lies after the last
 * whole record; every candidate still open gets the next whole record's seq. */
static int keep_bounds(keep_ctx *k, const inspect_rec *r, int rc)
{
    salvage *sv = k->sv;
    if (rc == KV_OK && !r->whole)
        sv->cands[sv->ncand - 1].lo = k->last_seq;
    if (!r->whole)
        return rc;
    if (r->e.seq <= k->last_seq)
        sv->unordered[k->src] = 1;
    k->last_seq = r->e.seq;
    for (size_t i = k->open_from; i < sv->ncand; i++)
        if (sv->cands[i].src == k->src && sv->cands[i].hi == 0)
            sv->cands[i].hi = r->e.seq;
    k->open_from = sv->ncand;
    return rc;
}

/* A whole batch is kept when every value in it decompresses; a loose entry (inside a
 * damaged stretch) is a candidate for the lost list, told by what it says of itself.
 * In the active segment and WAL file — the newest files — nothing after the first
 * damaged stretch is kept: recovery treats everything from there on as a torn tail
 * (docs/FORMAT.md), and so must the repair, or a later write could outlive an earlier
 * one the damage took, a state no crash leaves (a power failure can keep a later
 * page of the WAL and lose an earlier one). Such records stay in the set-aside copy. */
static int keep_record_in(keep_ctx *k, const inspect_rec *r);

static int keep_record(void *arg, const inspect_rec *r)
{
    keep_ctx *k = arg;
    return keep_bounds(k, r, keep_record_in(k, r));
}

static int keep_record_in(keep_ctx *k, const inspect_rec *r)
{
    if (r->whole && k->past_damage)
        return push_cand(k->sv, k->src, r->off, r->e.size, r->e.seq, r->e.type, r->e.key,
                         r->e.klen, CHECK_FROM_AFTER);
    if (!r->whole) {
        /* A damaged entry with a sane header accounts for its bytes as far as its
         * size says (keep_damage clamps that to the stretch). */
        k->loose_end = r->off + r->e.size;
        return push_cand(k->sv, k->src, r->off, r->e.size, r->e.seq, r->e.type, r->e.key, r->e.klen,
                         r->crc_ok ? CHECK_FROM_ENTRY : CHECK_FROM_DAMAGED);
    }
    if (r->e.flags & KV_RECF_LZ4) {
        uint8_t *out;
        size_t n;
        char why[128];
        int rc = compress_value_decode(&r->e, &out, &n, why, sizeof why);
        if (rc == KV_ENOMEM)
            return err_set(rc, "repair: decompressing a value at offset %llu",
                          (unsigned long long)r->off);
        if (rc == KV_OK)
            free(out);
        else
            k->batch_bad = 1;
    }
    if (k->nbatch == k->capbatch) {
        kept *nb = grow(k->batch, &k->capbatch, k->nbatch + 1, sizeof *nb, 16, 0);
        if (nb == NULL)
            return err_set(KV_ENOMEM, "repair: a batch of %zu entries", (k->nbatch + 1));
        k->batch = nb;
    }
    k->batch[k->nbatch++] = (kept){r->e.seq, r->off, r->e.size, k->src, 0};
    if (r->e.flags & KV_RECF_BATCH)
        return KV_OK;
    int rc = KV_OK;
    for (size_t i = 0; i < k->nbatch && rc == KV_OK; i++)
        rc = k->batch_bad ? push_cand(k->sv, k->src, k->batch[i].off, k->batch[i].size, k->batch[i].seq,
                                      0, NULL, 0, CHECK_FROM_ENTRY)
                          : push_kept(k->sv, &k->batch[i]);
    k->nbatch = 0;
    k->batch_bad = 0;
    return rc;
}

/* The bytes of a stretch that no loose entry accounts for hold records nothing can
 * be told of. */
static int keep_damage(void *arg, const inspect_damage *d)
{
    keep_ctx *k = arg;
    k->past_damage = k->sv->active;
    uint64_t end = d->off + d->len;
    uint64_t from = k->loose_end > d->off ? (k->loose_end < end ? k->loose_end : end) : d->off;
    k->res->lost_bytes += d->len;
    if (from >= end)
        return KV_OK;
    int rc = push_cand(k->sv, k->src, from, end - from > UINT32_MAX ? UINT32_MAX
                                                                      : (uint32_t)(end - from),
                       0, 0, NULL, 0, CHECK_FROM_NONE);
    if (rc == KV_OK)
        k->sv->cands[k->sv->ncand - 1].lo = k->last_seq;
    return rc;
}

/* Walks input src of sv. */
static int keep_walk(plan *p, salvage *sv, uint8_t src)
{
    check_file *f = sv->in[src];
    inspect_id id;
    inspect_walk_result res;
    int fd;
    keep_ctx k = {.sv = sv, .src = src, .res = p->res};
    int rc = inspect_open(p->s->io, p->s->dirfd, f->source, &id, &fd);
    if (rc != KV_OK)
        return rc;
    inspect_walk_fns fns = {keep_record, keep_damage, &k};
    rc = inspect_walk(p->s->io, fd, f->source, id.size, &fns, &res);
    p->s->io->ops->close(p->s->io, fd);
    free(k.batch);
    return rc;
}

static int cmp_kept_seq(const void *a, const void *b)
{
    const kept *x = a, *y = b;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    if (x->src != y->src)
        return x->src < y->src ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Whether recs[0..n), in file order, holds a record at off. */
static int kept_at(const kept *recs, size_t n, uint64_t off)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (recs[mid].off == off)
            return 1;
        if (recs[mid].off < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* A sealed segment with a usable hint: the hint knows every record it held, so what
 * was lost is told from it, exactly, rather than from the damaged bytes; the
 * tombstones among them are kept, rebuilt from key and sequence number, so that a
 * delete does not come undone. */
static int keep_from_hint(salvage *sv)
{
    const inspect_hint *h = &sv->hint;
    size_t from_file = sv->n; /* the file's records, in file order */
    int rc = KV_OK;
    for (size_t i = 0; i < sv->ncand; i++)
        free(sv->cands[i].key);
    sv->ncand = 0;
    for (uint32_t i = 0; i < h->count && rc == KV_OK; i++) {
        const inspect_hint_rec *hr = &h->recs[i];
        if (kept_at(sv->recs, from_file, hr->off))
            continue;
        if (hr->type == KV_REC_DEL) {
            kept k = {hr->seq, hr->off, (uint32_t)entry_size(hr->klen, 0), SRC_HINT, i};
            rc = push_kept(sv, &k);
            sv->tombs++;
        } else {
            rc = push_cand(sv, 0, hr->off, hr->size, hr->seq, hr->type, hr->key, hr->klen,
                           CHECK_FROM_HINT);
        }
    }
    return rc;
}

/* Sorts the records by sequence number and keeps one copy of each (an active
 * segment and its WAL file hold the same records; the segment's stays); the
 * candidates that some input still holds are not lost. */
static void keep_finish(salvage *sv)
{
    size_t w = 0;
    if (sv->n > 1) /* recs is NULL when nothing is kept */
        qsort(sv->recs, sv->n, sizeof *sv->recs, cmp_kept_seq);
    for (size_t i = 0; i < sv->n; i++)
        if (w == 0 || sv->recs[i].seq != sv->recs[w - 1].seq)
            sv->recs[w++] = sv->recs[i];
    sv->n = w;
    sv->out_size = KV_FILE_HDR_SIZE;
    for (size_t i = 0; i < sv->n; i++)
        sv->out_size += sv->recs[i].size;
    w = 0;
    for (size_t i = 0; i < sv->ncand; i++) {
        cand *c = &sv->cands[i];
        int found = (c->source == CHECK_FROM_ENTRY || c->source == CHECK_FROM_DAMAGED
                     || c->source == CHECK_FROM_AFTER) && c->seq != 0;
        if (found) {
            size_t lo = 0, hi = sv->n;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (sv->recs[mid].seq < c->seq)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            found = lo < sv->n && sv->recs[lo].seq == c->seq;
        }
        if (found)
            free(c->key);
        else
            sv->cands[w++] = *c;
    }
    sv->ncand = w;
}

/* ---- planning ---------------------------------------------------------------------- */

static int name_exists(const check_store *s, const char *name)
{
    return name[0] != '\0' && faccessat(s->dirfd, name, F_OK, 0) == 0;
}

/* NAME.damaged, or NAME.damaged.N for the lowest N >= 2 that is free. */
static void aside_name(const check_store *s, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s%s", name, INSPECT_ASIDE);
    for (int k = 2; name_exists(s, out) && k < 10000; k++)
        snprintf(out, n, "%s%s.%d", name, INSPECT_ASIDE, k);
}

static int plan_aside(plan *p, const char *name, const char *why)
{
    char to[256];
    aside_name(p->s, name, to, sizeof to);
    int rc = add_step(p, ST_ASIDE, name, 0, 0, 0, "rename it %s (%s: set aside, never deleted)",
                      to, why);
    if (rc == KV_OK)
        snprintf(p->v[p->n - 1].to, sizeof p->v[p->n - 1].to, "%s", to);
    return rc;
}

static salvage *new_salvage(plan *p)
{
    salvage **nv = realloc(p->sv, (p->nsv + 1) * sizeof *nv);
    if (nv == NULL)
        return NULL;
    p->sv = nv;
    salvage *sv = calloc(1, sizeof *sv);
    if (sv != NULL)
        p->sv[p->nsv++] = sv;
    return sv;
}

/* A damaged or missing sealed segment, read: the records of it that check out (and
 * the tombstones its hint knows the damage took) are kept, what is lost is listed. */
static int read_sealed(plan *p, check_file *f)
{
    salvage *sv = new_salvage(p);
    if (sv == NULL)
        return err_set(KV_ENOMEM, "repair: planning %s", f->name);
    sv->name = f->name;
    sv->f = f;
    int rc = KV_OK;
    if (f->source[0] != '\0') {
        sv->in[0] = f;
        rc = keep_walk(p, sv, 0);
    }
    if (rc == KV_OK && f->hint_source[0] != '\0'
        && inspect_hint_read(p->s->io, p->s->dirfd, f->hint_source, f->number, f->expect,
                             &sv->hint) == KV_OK
        && sv->hint.status == KV_OK)
        rc = keep_from_hint(sv);
    else if (rc == KV_OK && f->source[0] == '\0')
        rc = push_cand(sv, 0, KV_FILE_HDR_SIZE, (uint32_t)(f->expect > UINT32_MAX ? UINT32_MAX
                                                                                 : f->expect),
                       0, 0, NULL, 0, CHECK_FROM_NONE);
    return rc;
}

/* The steps of a sealed salvage (read_sealed, then plan_reverts): the kept records go
 * to a new segment; ms becomes that segment, or number 0 when there is nothing to
 * keep (dropped). */
static int plan_sealed(plan *p, salvage *sv, kv_manifest_seg *ms)
{
    char hint[64];
    check_file *f = sv->f;
    int rc = KV_OK;
    keep_finish(sv);
    sv->out = sv->n > 0 ? p->next_file++ : 0;
    ms->number = sv->out;
    ms->size = sv->out_size;
    p->man_change = 1;
    if (sv->out != 0) {
        char out[64];
        file_name(out, sizeof out, sv->out, KV_FILE_SEG);
        char tombs[96] = "", kepts[128] = "";
        if (sv->tombs > 0)
            snprintf(tombs, sizeof tombs, ", and the %llu tombstones the damage took, rebuilt "
                     "from its hint", (unsigned long long)sv->tombs);
        if (sv->ntk > 0)
            snprintf(kepts, sizeof kepts, ", and %zu lost deletes written again from their "
                     "damaged entries (keys listed below)", sv->ntk);
        rc = add_step(p, ST_WRITE, out, 0, 0, sv->out_size, "new sealed segment of %llu bytes, "
                      "and its hint: the %llu records of %s that check out (whole batches)%s%s; "
                      "in sequence order, bytes unchanged", (unsigned long long)sv->out_size,
                      (unsigned long long)(sv->n - sv->tombs - sv->ntk),
                      f->source[0] ? f->source : f->name, tombs, kepts);
        if (rc == KV_OK)
            p->v[p->n - 1].sv = sv;
        p->res->records_salvaged += sv->n - sv->tombs - sv->ntk;
        p->res->tombstones_rewritten += sv->tombs;
        p->res->tombstones_kept += sv->ntk;
    }
    if (rc == KV_OK && !f->missing)
        rc = plan_aside(p, f->name, "damaged");
    file_name(hint, sizeof hint, f->number, KV_FILE_HINT);
    if (rc == KV_OK && name_exists(p->s, hint))
        rc = plan_aside(p, hint, "the hint of a damaged segment");
    return rc;
}

/* The active pair has only torn tails, or a file missing with no copy: cut the
 * tails as recovery would, create the missing file empty. */
static int plan_tails(plan *p, check_file *f, const char *missing_why)
{
    if (f->missing) {
        int rc = add_step(p, ST_CREATE, f->name, 0, 0, 0, "create it empty, a header only: %s",
                          missing_why);
        if (rc == KV_OK)
            p->v[p->n - 1].f = f;
        return rc;
    }
    if (f->walk.regions == 0)
        return KV_OK;
    uint64_t cut = f->size - f->walk.ok_up_to;
    int rc = add_step(p, ST_CUT, f->name, 1, f->walk.ok_up_to, cut, "cut the torn tail: the last "
                      "%llu bytes, from 0x%llx (what recovery cuts at open)",
                      (unsigned long long)cut, (unsigned long long)f->walk.ok_up_to);
    if (rc == KV_OK) {
        p->v[p->n - 1].f = f;
        p->res->cut_bytes += cut;
    }
    return rc;
}

/* A damaged active segment or WAL file (or one missing with a copy set aside): a
 * new active pair, whose segment holds one copy of every record either file still
 * holds in whole batches, by sequence number, and whose WAL file is empty. */
static int read_active(plan *p, check_file *seg, check_file *wal)
{
    salvage *sv = new_salvage(p);
    if (sv == NULL)
        return err_set(KV_ENOMEM, "repair: planning %s", seg->name);
    sv->active = 1;
    sv->name = seg->name;
    int rc = KV_OK, nin = 0;
    check_file *both[2] = {seg, wal};
    for (int i = 0; i < 2 && rc == KV_OK; i++)
        if (both[i]->source[0] != '\0') {
            sv->in[nin] = both[i];
            rc = keep_walk(p, sv, (uint8_t)nin++);
        }
    return rc;
}

static int plan_active(plan *p, check_file *seg, check_file *wal)
{
    if (!seg->damaged && !wal->damaged) {
        int rc = plan_tails(p, seg, "open replays its records from the WAL file");
        return rc == KV_OK ? plan_tails(p, wal, "what it held beyond the segment is lost with it")
                           : rc;
    }
    salvage *sv = p->sv[p->nsv - 1]; /* read_active's, read last */
    int nin = sv->in[1] != NULL ? 2 : sv->in[0] != NULL, rc;
    check_file *both[2] = {seg, wal};
    keep_finish(sv);
    sv->out = p->next_file++;
    char out[64];
    file_name(out, sizeof out, sv->out, KV_FILE_SEG);
    rc = add_step(p, ST_WRITE, out, 0, 0, sv->out_size, "new active segment of %llu bytes: the "
                  "%llu records of %s%s%s up to their first damage, as recovery reads them (whole "
                  "batches, one copy each, in sequence order, bytes unchanged); and %06u.wal, "
                  "empty",
                  (unsigned long long)sv->out_size, (unsigned long long)sv->n,
                  nin > 0 ? sv->in[0]->source : "neither file", nin > 1 ? " and " : "",
                  nin > 1 ? sv->in[1]->source : "", sv->out);
    if (rc == KV_OK)
        p->v[p->n - 1].sv = sv;
    p->res->records_salvaged += sv->n;
    for (int i = 0; i < 2 && rc == KV_OK; i++) {
        if (both[i]->missing)
            continue;
        if (both[i]->damaged)
            rc = plan_aside(p, both[i]->name, "damaged");
        else
            rc = add_step(p, ST_TWIN, both[i]->name, 0, 0, 0, "remove it: its records are in %s",
                          out);
    }
    p->man.active = sv->out;
    p->man_change = 1;
    return rc;
}

static int cmp_man_seg(const void *a, const void *b)
{
    const kv_manifest_seg *x = a, *y = b;
    return x->number < y->number ? -1 : x->number > y->number;
}

/* The MANIFEST after the salvages: outputs for inputs, dropped ones gone. */
static int plan_manifest(plan *p)
{
    kv_manifest *m = &p->man;
    uint32_t w = 0;
    char list[200] = "";
    for (uint32_t i = 0; i < m->nsealed; i++)
        if (m->sealed[i].number != 0)
            m->sealed[w++] = m->sealed[i];
    m->nsealed = w;
    if (m->nsealed > 1)
        qsort(m->sealed, m->nsealed, sizeof *m->sealed, cmp_man_seg);
    m->next_file = p->next_file;
    for (uint32_t i = 0; i < m->nsealed && strlen(list) < sizeof list - 16; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%06u", i ? ", " : "",
                 m->sealed[i].number);
    return add_step(p, ST_MANIFEST, KV_MANIFEST_NAME, 0, 0, 0, "write generation %u naming "
                    "sealed segments %s%s, active %06u, next file number %u (tmp, fdatasync, "
                    "rename, directory fsync: the commit point)", m->generation + 1,
                    m->nsealed ? list : "(none)", strlen(list) >= sizeof list - 16 ? ", ..." : "",
                    m->active, m->next_file);
}

static int make_plan(plan *p)
{
    check_store *s = p->s;
    const kv_manifest *old = &s->man.m;
    int rc = KV_OK;
    p->next_file = old->next_file;
    p->man = *old;
    p->man.sealed = malloc((old->nsealed ? old->nsealed : 1) * sizeof *p->man.sealed);
    if (p->man.sealed == NULL)
        return err_set(KV_ENOMEM, "repair: a MANIFEST of %u segments", old->nsealed);
    memcpy(p->man.sealed, old->sealed, old->nsealed * sizeof *old->sealed);
    for (size_t i = 0; i < s->nleft && rc == KV_OK; i++)
        rc = add_step(p, ST_REMOVE, s->left[i].name, 0, 0, 0, "remove it: %s (as a writer's open "
                      "would)", s->left[i].why);
    for (size_t i = 0; i + 2 < s->nfiles && rc == KV_OK; i++)
        if (s->files[i].damaged)
            rc = read_sealed(p, &s->files[i]);
    if (rc == KV_OK && s->nfiles >= 2
        && (s->files[s->nfiles - 2].damaged || s->files[s->nfiles - 1].damaged))
        rc = read_active(p, &s->files[s->nfiles - 2], &s->files[s->nfiles - 1]);
    if (rc == KV_OK)
        rc = plan_reverts(p);
    for (size_t i = 0, k = 0; i + 2 < s->nfiles && rc == KV_OK; i++) {
        check_file *f = &s->files[i];
        if (f->damaged)
            rc = plan_sealed(p, p->sv[k++], &p->man.sealed[i]);
        else if (f->hint != HINT_OK && (rc = add_step(p, ST_HINT, f->hint_source, 0, 0, 0,
                 "write it again from %s (%llu records): tmp, fdatasync, rename", f->name,
                 (unsigned long long)f->walk.records)) == KV_OK)
            p->v[p->n - 1].f = f;
    }
    if (rc == KV_OK && s->nfiles >= 2)
        rc = plan_active(p, &s->files[s->nfiles - 2], &s->files[s->nfiles - 1]);
    if (rc == KV_OK && p->man_change)
        rc = plan_manifest(p);
    if (rc == KV_OK && (p->n > 0 || s->lock_bad))
        rc = add_step(p, ST_LOCK, "LOCK", 0, 0, 0, "write this process's pid (%ld) into it: the "
                      "repair holds the writer lock", (long)getpid());
    if (rc == KV_OK && p->n > 1)
        qsort(p->v, p->n, sizeof *p->v, cmp_step);
    return rc;
}

/* ---- carrying out the steps -------------------------------------------------------- */

/* What a file that is not regular is, for messages. */
static const char *file_type_name(mode_t m)
{
    return S_ISFIFO(m) ? "a FIFO" : S_ISDIR(m) ? "a directory" : S_ISSOCK(m) ? "a socket"
         : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device"
         : S_ISLNK(m) ? "a dangling symbolic link" : "not a file";
}

/* Opens name (relative to the store) for the repair's own reads and cuts. O_NONBLOCK
 * and the S_ISREG check: something put in a file's place since the check (a FIFO)
 * is refused rather than waited on. Returns the fd or a negative errno (-EINVAL for a
 * file that is not regular, with the message set). */
static int open_regular(plan *p, const char *name, int flags)
{
    kv_io *io = p->s->io;
    struct stat st;
    int fd = io->ops->open(io, p->s->dirfd, name, flags | O_NONBLOCK, 0);
    if (fd < 0)
        return fd;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        return fd;
    io->ops->close(io, fd);
    err_set(KV_EINVAL, "%s: not a regular file (%s)", name, file_type_name(st.st_mode));
    return -EINVAL;
}

static int do_cut(plan *p, const step *st)
{
    kv_io *io = p->s->io;
    int fd = open_regular(p, st->file, O_RDWR);
    if (fd == -EINVAL)
        return KV_EINVAL;
    int r = fd < 0 ? fd : io->ops->ftruncate(io, fd, st->off);
    if (r == 0)
        r = io->ops->fdatasync(io, fd);
    if (fd >= 0)
        io->ops->close(io, fd);
    return r < 0 ? err_errno(-r, "%s: cutting at offset %llu", st->file,
                                (unsigned long long)st->off)
                 : KV_OK;
}

static int do_create(plan *p, const step *st)
{
    kv_file *f;
    int rc = file_create(p->s->io, p->s->dirfd, st->f->kind, st->f->number, &f);
    if (rc == KV_OK)
        file_unref(f);
    return rc;
}

typedef struct hint_ctx {
    hint_buf hb;
} hint_ctx;

static int hint_entry(void *arg, const inspect_rec *r)
{
    hint_ctx *h = arg;
    if (r->whole)
        hint_add(&h->hb, &r->e, r->off);
    return 0;
}

/* A clean sealed segment's hint, written again from the segment. */
static int do_hint(plan *p, const step *st)
{
    check_store *s = p->s;
    inspect_id id;
    inspect_walk_result res;
    hint_ctx h;
    int fd;
    memset(&h, 0, sizeof h);
    int rc = inspect_open(s->io, s->dirfd, st->f->name, &id, &fd);
    if (rc != KV_OK)
        return rc;
    inspect_walk_fns fns = {hint_entry, NULL, &h};
    rc = inspect_walk(s->io, fd, st->f->name, id.size, &fns, &res);
    s->io->ops->close(s->io, fd);
    if (rc == KV_OK && (res.regions > 0 || id.size != st->f->expect))
        rc = err_set(KV_EIO, "%s: changed since it was checked", st->f->name);
    if (rc == KV_OK)
        rc = hint_write(s->io, s->dirfd, st->f->number, &h.hb, id.size);
    hint_free(&h.hb);
    return rc;
}

/* Reads (or, from the hint, rebuilds) kept record k into *buf and checks it again
 * right before it is written. */
static int fetch_kept(plan *p, const salvage *sv, const kept *k, const int *fds, uint8_t **buf,
                      size_t *cap, kv_entry *e)
{
    char why[128];
    if (k->size > *cap) {
        uint8_t *nb = realloc(*buf, k->size);
        if (nb == NULL)
            return err_set(KV_ENOMEM, "repair: a record of %u bytes", k->size);
        *buf = nb;
        *cap = k->size;
    }
    if (k->src == SRC_HINT) {
        const inspect_hint_rec *hr = &sv->hint.recs[k->hint_idx];
        entry_encode(*buf, KV_REC_DEL, 0, hr->key, hr->klen, NULL, 0);
        entry_seal(*buf, k->size, hr->seq);
    } else if (k->src == SRC_TOMB) {
        const tomb *t = &sv->tk[k->hint_idx];
        entry_encode(*buf, KV_REC_DEL, 0, t->key, t->klen, NULL, 0);
        entry_seal(*buf, k->size, t->seq);
    } else {
        ssize_t got = io_pread_full(p->s->io, fds[k->src], *buf, k->size, k->off);
        if (got != (ssize_t)k->size)
            return got < 0 ? err_errno((int)-got, "%s: reading offset %llu",
                                          sv->in[k->src]->source, (unsigned long long)k->off)
                           : err_set(KV_EIO, "%s: shorter than when it was checked",
                                    sv->in[k->src]->source);
    }
    if (entry_parse(*buf, k->size, e, why, sizeof why) != ENTRY_OK || e->seq != k->seq
        || e->size != k->size)
        return err_set(KV_EIO, "%s: offset %llu: changed since it was checked (%s)",
                      k->src >= SRC_TOMB ? sv->name : sv->in[k->src]->source,
                      (unsigned long long)k->off, why);
    return KV_OK;
}

static int open_inputs(plan *p, const salvage *sv, int *fds)
{
    for (int i = 0; i < 2; i++) {
        fds[i] = -1;
        if (sv->in[i] == NULL)
            continue;
        fds[i] = open_regular(p, sv->in[i]->source, O_RDONLY);
        if (fds[i] == -EINVAL)
            return KV_EINVAL;
        if (fds[i] < 0)
            return err_errno(-fds[i], "%s: open", sv->in[i]->source);
    }
    return KV_OK;
}

/* A salvage's output: the kept records, each read and checked again, appended to a
 * new segment, fdatasynced; then its hint (sealed) or an empty WAL file (active). */
static int do_write(plan *p, const salvage *sv)
{
    check_store *s = p->s;
    kv_file *out = NULL;
    hint_buf hb = {0};
    uint8_t *buf = NULL;
    size_t cap = 0;
    int fds[2] = {-1, -1};
    int rc = open_inputs(p, sv, fds);
    if (rc == KV_OK)
        rc = seg_create(s->io, s->dirfd, sv->out, &out);
    for (size_t i = 0; i < sv->n && rc == KV_OK; i++) {
        kv_entry e;
        uint64_t at;
        rc = fetch_kept(p, sv, &sv->recs[i], fds, &buf, &cap, &e);
        if (rc == KV_OK)
            rc = file_append(out, buf, e.size, &at);
        if (rc == KV_OK && !sv->active)
            hint_add(&hb, &e, at);
    }
    if (rc == KV_OK)
        rc = seg_sync(s->io, out);
    if (rc == KV_OK && out->size != sv->out_size)
        rc = err_set(KV_EIO, "%s: %llu bytes written, %llu planned", out->name,
                    (unsigned long long)out->size, (unsigned long long)sv->out_size);
    if (rc == KV_OK && !sv->active)
        rc = hint_write(s->io, s->dirfd, sv->out, &hb, out->size);
    if (rc == KV_OK && sv->active) {
        kv_file *wal;
        rc = file_create(s->io, s->dirfd, KV_FILE_WAL, sv->out, &wal);
        if (rc == KV_OK)
            file_unref(wal);
    }
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            s->io->ops->close(s->io, fds[i]);
    file_unref(out);
    hint_free(&hb);
    free(buf);
    if (rc == KV_OK)
        p->res->segments_written++;
    return rc;
}

static int do_step(plan *p, const step *st)
{
    kv_io *io = p->s->io;
    int r = 0, rc = KV_OK;
    switch (st->type) {
    case ST_LOCK: return lock_write_pid(p->lock_fd, p->s->dir);
    case ST_REMOVE:
    case ST_TWIN:
        r = io->ops->unlink(io, p->s->dirfd, st->file);
        if (r == 0)
            p->res->files_removed++;
        return r < 0 && r != -ENOENT ? err_errno(-r, "%s: removing", st->file) : KV_OK;
    case ST_CUT: return do_cut(p, st);
    case ST_CREATE: return do_create(p, st);
    case ST_HINT:
        rc = do_hint(p, st);
        p->res->hints_written += rc == KV_OK;
        return rc;
    case ST_WRITE: return do_write(p, st->sv);
    case ST_ASIDE:
        r = io->ops->rename(io, p->s->dirfd, st->file, st->to);
        if (r == 0)
            p->res->files_set_aside++;
        return r < 0 ? err_errno(-r, "renaming %s to %s", st->file, st->to) : KV_OK;
    case ST_MANIFEST: return manifest_store(io, p->s->dirfd, &p->man, NULL);
    default: return err_set(KV_EINVAL, "repair: step %d", st->type);
    }
}

static int run_steps(plan *p)
{
    int rc = KV_OK;
    for (size_t i = 0; i < p->n && rc == KV_OK; i++) {
        rc = do_step(p, &p->v[i]);
        if (rc != KV_OK) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", kv_errmsg());
            rc = err_set(rc, "repair stopped at step %zu of %zu (%s): %s", i + 1, p->n,
                        p->v[i].file, msg);
        }
    }
    if (rc == KV_OK) {
        int r = p->s->io->ops->syncdir(p->s->io, p->s->dirfd);
        if (r < 0)
            rc = err_errno(-r, "%s: fsync of the directory", p->s->dir);
    }
    return rc;
}

/* ---- the keys of lost records ---------------------------------------------------------
 *
 * Salvage loses every record of a damaged stretch. When one of them was the newest
 * record of its key — a delete, or a put over an older put — the key's older record
 * comes back: a deleted key lives again, an overwritten one reverts. The rule (docs/
 * FORMAT.md, "Repair and the keys of lost records"): the repair never brings back an
 * older record of a key in silence. It builds a table of every key the repaired store
 * will hold, with its newest surviving record (clean sealed segments through their
 * hints, the salvaged records, the active pair as recovery reads it), then looks at
 * each lost record:
 *   - what it was is known exactly (the hint, an entry that checks out whose batch was
 *     cut), or confirmed: a damaged entry whose checksum checks out once its key is
 *     replaced by a key the store holds that differs in at most two bytes, or its
 *     sequence number by the only one its neighbours leave, or its type (a record
 *     with no value) by the other one; or its key bytes are intact — they name a key
 *     the store holds — and its sequence number lies between its neighbours';
 *   - a lost delete so known, newer than the key's newest surviving put, in a sealed
 *     segment, is written again (key, sequence number) into the salvage's output: the
 *     key stays deleted (CHECK_KEPT_DELETED). In the active pair it is not (a later
 *     write must not outlive an earlier one there): the plan says it un-deletes;
 *   - a lost put so known, newer than the key's surviving put: the plan says the key
 *     reverts (its value is gone; a confirmed entry is not rewritten, since its batch
 *     may be cut);
 *   - anything less known — a damaged entry whose key is not in the store (the keys
 *     that differ from it in at most two bytes are named), bytes nothing can be told
 *     of — may have been the newest record of any key whose newest surviving record
 *     is a put older than the stretch's upper bound (the next whole record's sequence
 *     number in a file written in sequence order): the plan names them (the first
 *     REVERT_LIST, and how many more) as keys that may come back or revert.
 * The table costs memory for every key, as an open does. */

#define NEAR_BYTES 2     /* a damaged key "near" a stored key: at most this many bytes differ */
#define NEAR_MAX 16      /* near keys tried or named per damaged entry */
#define REVERT_LIST 16   /* keys named per stretch that nothing can be told of */

typedef struct kslot {
    uint8_t *key;        /* NULL: empty slot */
    uint32_t klen;
    int type;            /* of the newest surviving record */
    uint64_t seq;        /* its sequence number */
    uint64_t hash;
} kslot;

typedef struct ktab {
    kslot *v;
    size_t cap, n;       /* cap: a power of two */
    uint64_t max_seq;    /* the highest sequence number that survives */
} ktab;

static kslot *ktab_find(const ktab *t, const uint8_t *k, uint32_t n)
{
    uint64_t h = XXH3_64bits(k, n);
    for (size_t i = t->cap ? h & (t->cap - 1) : 0; t->cap > 0; i = (i + 1) & (t->cap - 1)) {
        kslot *s = &t->v[i];
        if (s->key == NULL)
            return NULL;
        if (s->hash == h && s->klen == n && memcmp(s->key, k, n) == 0)
            return s;
    }
    return NULL;
}

static int ktab_grow(ktab *t)
{
    size_t ncap = t->cap ? t->cap * 2 : 1024;
    kslot *nv = calloc(ncap, sizeof *nv);
    if (nv == NULL)
        return err_set(KV_ENOMEM, "repair: a table of %zu keys", ncap);
    for (size_t i = 0; i < t->cap; i++) {
        if (t->v[i].key == NULL)
            continue;
        size_t j = t->v[i].hash & (ncap - 1);
        while (nv[j].key != NULL)
            j = (j + 1) & (ncap - 1);
        nv[j] = t->v[i];
    }
    free(t->v);
    t->v = nv;
    t->cap = ncap;
    return KV_OK;
}

/* A surviving record of key k: the newest per key stays. */
static int ktab_note(ktab *t, const uint8_t *k, uint32_t n, uint64_t seq, int type)
{
    kslot *s = ktab_find(t, k, n);
    if (seq > t->max_seq)
        t->max_seq = seq;
    if (s != NULL) {
        if (seq > s->seq) {
            s->seq = seq;
            s->type = type;
        }
        return KV_OK;
    }
    if ((t->n + 1) * 2 > t->cap && ktab_grow(t) != KV_OK)
        return KV_ENOMEM;
    uint64_t h = XXH3_64bits(k, n);
    size_t i = h & (t->cap - 1);
    while (t->v[i].key != NULL)
        i = (i + 1) & (t->cap - 1);
    if ((t->v[i].key = malloc(n ? n : 1)) == NULL)
        return err_set(KV_ENOMEM, "repair: a key of %u bytes", n);
    memcpy(t->v[i].key, k, n);
    t->v[i].klen = n;
    t->v[i].seq = seq;
    t->v[i].type = type;
    t->v[i].hash = h;
    t->n++;
    return KV_OK;
}

static void ktab_free(ktab *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->v[i].key);
    free(t->v);
}

typedef struct note_ctx {
    ktab *t;
    uint64_t below;      /* only records before this offset (0: all) */
} note_ctx;

static int note_rec(void *arg, const inspect_rec *r)
{
    note_ctx *c = arg;
    if (!r->whole || (c->below != 0 && r->off >= c->below))
        return 0;
    return ktab_note(c->t, r->e.key, r->e.klen, r->e.seq, r->e.type);
}

/* The whole records of f (before offset below, when not 0). */
static int note_walk(plan *p, ktab *t, const check_file *f, uint64_t below)
{
    inspect_id id;
    inspect_walk_result res;
    note_ctx c = {t, below};
    int fd;
    if (f->source[0] == '\0')
        return KV_OK;
    int rc = inspect_open(p->s->io, p->s->dirfd, f->source, &id, &fd);
    if (rc != KV_OK)
        return rc;
    inspect_walk_fns fns = {note_rec, NULL, &c};
    rc = inspect_walk(p->s->io, fd, f->source, id.size, &fns, &res);
    p->s->io->ops->close(p->s->io, fd);
    return rc;
}

/* A clean sealed segment: its hint when usable, else its records. */
static int note_sealed(plan *p, ktab *t, const check_file *f)
{
    inspect_hint h;
    int rc = KV_NOTFOUND;
    memset(&h, 0, sizeof h);
    if (f->hint == HINT_OK && f->hint_source[0] != '\0'
        && inspect_hint_read(p->s->io, p->s->dirfd, f->hint_source, f->number, f->expect, &h)
               == KV_OK
        && h.status == KV_OK) {
        rc = KV_OK;
        for (uint32_t i = 0; i < h.count && rc == KV_OK; i++)
            rc = ktab_note(t, h.recs[i].key, h.recs[i].klen, h.recs[i].seq, h.recs[i].type);
    }
    inspect_hint_free(&h);
    return rc == KV_NOTFOUND ? note_walk(p, t, f, 0) : rc;
}

/* The records a salvage keeps, read (or rebuilt) as they will be written. */
static int note_kept(plan *p, ktab *t, const salvage *sv)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    int fds[2] = {-1, -1};
    int rc = open_inputs(p, sv, fds);
    for (size_t i = 0; i < sv->n && rc == KV_OK; i++) {
        kv_entry e;
        rc = fetch_kept(p, sv, &sv->recs[i], fds, &buf, &cap, &e);
        if (rc == KV_OK)
            rc = ktab_note(t, e.key, e.klen, e.seq, e.type);
    }
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            p->s->io->ops->close(p->s->io, fds[i]);
    free(buf);
    return rc;
}

/* Every key the repaired store holds, with its newest record. */
static int note_survivors(plan *p, ktab *t)
{
    check_store *s = p->s;
    int rc = KV_OK, active = 0;
    for (size_t i = 0; i + 2 < s->nfiles && rc == KV_OK; i++)
        if (!s->files[i].damaged)
            rc = note_sealed(p, t, &s->files[i]);
    for (size_t i = 0; i < p->nsv && rc == KV_OK; i++) {
        active |= p->sv[i]->active;
        rc = note_kept(p, t, p->sv[i]);
    }
    for (size_t i = s->nfiles >= 2 ? s->nfiles - 2 : s->nfiles; i < s->nfiles && rc == KV_OK
         && !active; i++)
        rc = note_walk(p, t, &s->files[i], s->files[i].walk.ok_up_to);
    return rc;
}

/* What a lost record is taken for. */
enum {
    HOW_NONE = 0,   /* nothing to say (no key) */
    HOW_EXACT,      /* the hint, or an entry that checks out */
    HOW_CONFIRMED,  /* a damaged entry whose checksum checks out with a near key etc. */
    HOW_KEY,        /* a damaged entry whose key bytes name a key the store holds */
    HOW_NEAR,       /* a damaged entry whose key is near keys the store holds */
    HOW_UNKNOWN     /* nothing can be told of it */
};

typedef struct lost_view {
    int how;
    const uint8_t *key;
    uint32_t klen;
    uint64_t seq;
    int type;
    uint64_t lo, hi;    /* what its sequence number can be: lo < seq < hi */
    int plausible;      /* HOW_KEY: seq lies in (lo, hi) */
    const kslot *near[NEAR_MAX];
    int nnear;
} lost_view;

static int push_revert(plan *p, int kind, const salvage *sv, const cand *c, const uint8_t *key,
                       uint32_t klen, uint64_t seq, uint64_t old_seq, uint64_t count,
                       const char *fmt, ...) KV_PRINTF(10, 11);
static int push_revert(plan *p, int kind, const salvage *sv, const cand *c, const uint8_t *key,
                       uint32_t klen, uint64_t seq, uint64_t old_seq, uint64_t count,
                       const char *fmt, ...)
{
    revert *nv = realloc(p->rv, (p->nrv + 1) * sizeof *nv);
    if (nv == NULL)
        return err_set(KV_ENOMEM, "repair: %zu keys to tell", p->nrv + 1);
    p->rv = nv;
    revert *r = &p->rv[p->nrv];
    memset(r, 0, sizeof *r);
    if (key != NULL && (r->key = malloc(klen ? klen : 1)) == NULL)
        return err_set(KV_ENOMEM, "repair: a key of %u bytes", klen);
    if (key != NULL)
        memcpy(r->key, key, klen);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
    const char *file = sv->in[c->src] != NULL ? sv->in[c->src]->source : sv->name;
    r->r = (check_revert){kind, file, c->off, r->key, key != NULL ? klen : 0, seq, old_seq,
                          NULL}; /* why: set when told (rv moves as it grows) */
    r->count = count;
    p->nrv++;
    if (kind != CHECK_KEPT_DELETED)
        p->res->keys_reverted += count;
    return KV_OK;
}

/* The keys the store holds that differ from k in at most NEAR_BYTES bytes. */
static void find_near(const ktab *t, const uint8_t *k, uint32_t n, lost_view *v)
{
    for (size_t i = 0; i < t->cap && v->nnear < NEAR_MAX; i++) {
        const kslot *s = &t->v[i];
        int diff = 0;
        if (s->key == NULL || s->klen != n)
            continue;
        for (uint32_t j = 0; j < n && diff <= NEAR_BYTES; j++)
            diff += s->key[j] != k[j];
        if (diff <= NEAR_BYTES)
            v->near[v->nnear++] = s;
    }
}

/* Tries the damaged entry at bytes b (c->size of them) with each near key, each
 * sequence number it can have, each type it can have: 1 when one checks out (*v
 * then holds it). */
static int try_confirm(const cand *c, const uint8_t *b, uint8_t *w, lost_view *v)
{
    uint64_t seqs[2] = {c->seq, v->lo + 1};
    int nseq = v->hi != 0 && v->hi == v->lo + 2 && v->lo + 1 != c->seq ? 2 : 1;
    int types[2] = {c->type, c->type == KV_REC_DEL ? KV_REC_PUT : KV_REC_DEL};
    int ntype = c->size == entry_size(c->klen, 0) ? 2 : 1;
    for (int k = 0; k < v->nnear; k++)
        for (int i = 0; i < nseq; i++)
            for (int j = 0; j < ntype; j++) {
                kv_entry e;
                char why[64];
                memcpy(w, b, c->size);
                memcpy(w + KV_ENTRY_HDR, v->near[k]->key, c->klen);
                kv_put64(w + 4, seqs[i]);
                w[12] = (uint8_t)types[j];
                if (entry_parse(w, c->size, &e, why, sizeof why) == ENTRY_OK) {
                    *v = (lost_view){HOW_CONFIRMED, v->near[k]->key, c->klen, seqs[i], types[j],
                                     v->lo, v->hi, 1, {NULL}, 0};
                    return 1;
                }
            }
    return 0;
}

/* A damaged entry (header sane, checksum failed): what it can be taken for. */
static int view_damaged(plan *p, const ktab *t, const salvage *sv, const cand *c, lost_view *v)
{
    const kslot *own = ktab_find(t, c->key, c->klen);
    if (own != NULL)
        v->near[v->nnear++] = own;
    find_near(t, c->key, c->klen, v);
    if (own != NULL && v->nnear > 1) /* find_near found it again */
        for (int i = 1; i < v->nnear; i++)
            if (v->near[i] == own)
                v->near[i] = v->near[--v->nnear];
    if (v->nnear > 0 && c->size > 0) {
        uint8_t *b = malloc(2 * (size_t)c->size);
        int fd = b == NULL ? -ENOMEM : open_regular(p, sv->in[c->src]->source, O_RDONLY);
        if (fd >= 0) {
            ssize_t got = io_pread_full(p->s->io, fd, b, c->size, c->off);
            p->s->io->ops->close(p->s->io, fd);
            if (got == (ssize_t)c->size && try_confirm(c, b, b + c->size, v)) {
                free(b);
                return KV_OK;
            }
        }
        free(b);
        if (fd == -ENOMEM)
            return err_set(KV_ENOMEM, "repair: a damaged entry of %u bytes", c->size);
    }
    if (own != NULL) {
        v->how = HOW_KEY;
        v->key = own->key;
        v->klen = own->klen;
        v->seq = c->seq;
        v->type = c->type;
        v->plausible = c->seq > v->lo && c->seq < v->hi;
    } else {
        v->how = v->nnear > 0 ? HOW_NEAR : HOW_UNKNOWN;
    }
    return KV_OK;
}

/* What lost record c of sv is taken for. */
static int view_lost(plan *p, const ktab *t, const salvage *sv, const cand *c, lost_view *v)
{
    memset(v, 0, sizeof *v);
    int ordered = !sv->unordered[c->src] && !sv->active;
    v->lo = ordered ? c->lo : 0;
    v->hi = ordered && c->hi != 0 ? c->hi : t->max_seq + 2;
    if ((c->source == CHECK_FROM_HINT || c->source == CHECK_FROM_ENTRY
         || c->source == CHECK_FROM_AFTER) && c->key != NULL) {
        *v = (lost_view){HOW_EXACT, c->key, c->klen, c->seq, c->type, v->lo, v->hi, 1, {NULL}, 0};
        return KV_OK;
    }
    if (c->source == CHECK_FROM_DAMAGED && c->key != NULL)
        return view_damaged(p, t, sv, c, v);
    if (c->seq != 0) { /* an entry that checks out, of a batch with a bad value */
        v->lo = c->seq - 1;
        v->hi = c->seq + 1;
    }
    v->how = HOW_UNKNOWN;
    return KV_OK;
}

static const char *how_text(const lost_view *v)
{
    switch (v->how) {
    case HOW_EXACT: return "known exactly";
    case HOW_CONFIRMED: return "a damaged entry whose checksum checks out once corrected";
    case HOW_KEY: return "a damaged entry whose key bytes name this key (unverified)";
    default: return "unknown";
    }
}

/* Keeps a lost delete: key and sequence number go to sv's output as a tombstone. */
static int keep_delete(plan *p, salvage *sv, const cand *c, const lost_view *v, kslot *ks)
{
    for (size_t i = 0; i < sv->n; i++) /* a copy of that seq is kept already: done */
        if (sv->recs[i].seq == v->seq)
            return KV_OK;
    tomb *nt = realloc(sv->tk, (sv->ntk + 1) * sizeof *nt);
    if (nt == NULL)
        return err_set(KV_ENOMEM, "repair: %zu deletes to keep", sv->ntk + 1);
    sv->tk = nt;
    tomb *tb = &sv->tk[sv->ntk];
    if ((tb->key = malloc(v->klen)) == NULL)
        return err_set(KV_ENOMEM, "repair: a key of %u bytes", v->klen);
    memcpy(tb->key, v->key, v->klen);
    tb->klen = v->klen;
    tb->seq = v->seq;
    kept k = {v->seq, c->off, (uint32_t)entry_size(v->klen, 0), SRC_TOMB, (uint32_t)sv->ntk++};
    int rc = push_kept(sv, &k);
    uint64_t old = ks->seq;
    ks->seq = v->seq;
    ks->type = KV_REC_DEL;
    return rc != KV_OK ? rc : push_revert(p, CHECK_KEPT_DELETED, sv, c, v->key, v->klen, v->seq,
                                          old, 1, "its lost delete (seq %llu; %s) is newer than "
                                          "its put of seq %llu: written again, the key stays "
                                          "deleted", (unsigned long long)v->seq, how_text(v),
                                          (unsigned long long)old);
}

/* Pass 1: lost deletes of sealed segments whose key and sequence number are known
 * and that hid an older put are kept. */
static int decide_keep(plan *p, ktab *t, salvage *sv, const cand *c, const lost_view *v)
{
    int known = v->how == HOW_EXACT || v->how == HOW_CONFIRMED
             || (v->how == HOW_KEY && v->plausible);
    if (sv->active || !known || v->type != KV_REC_DEL || c->source == CHECK_FROM_HINT)
        return KV_OK;
    kslot *ks = ktab_find(t, v->key, v->klen);
    if (ks == NULL || ks->type != KV_REC_PUT || ks->seq >= v->seq)
        return KV_OK;
    return keep_delete(p, sv, c, v, ks);
}

/* The keys that may have been hidden by a lost record nothing names: every key whose
 * newest surviving record is a put older than v->hi (the first REVERT_LIST named, the
 * rest counted). */
static int tell_unknown(plan *p, const ktab *t, const salvage *sv, const cand *c,
                        const lost_view *v)
{
    uint64_t more = 0;
    int rc = KV_OK, told = 0;
    char what[96];
    if (c->source == CHECK_FROM_NONE)
        snprintf(what, sizeof what, "%u damaged bytes whose records cannot be told", c->size);
    else
        snprintf(what, sizeof what, "a lost record whose key cannot be told");
    for (size_t i = 0; i < t->cap && rc == KV_OK; i++) {
        const kslot *s = &t->v[i];
        if (s->key == NULL || s->type != KV_REC_PUT || s->seq >= v->hi)
            continue;
        if (told++ < REVERT_LIST)
            rc = push_revert(p, CHECK_MAY_REVERT, sv, c, s->key, s->klen, 0, s->seq, 1, "%s "
                             "(sequence numbers above %llu and below %llu) may have held a newer "
                             "record of it", what, (unsigned long long)v->lo,
                             (unsigned long long)v->hi);
        else
            more++;
    }
    if (rc == KV_OK && more > 0)
        rc = push_revert(p, CHECK_MAY_REVERT, sv, c, NULL, 0, 0, 0, more, "and %llu more keys "
                         "whose newest surviving record is a put older than seq %llu",
                         (unsigned long long)more, (unsigned long long)v->hi);
    return rc;
}

/* Pass 2: every lost record that brings an older put of its key back is told. */
static int decide_tell(plan *p, const ktab *t, const salvage *sv, const cand *c,
                       const lost_view *v)
{
    if (v->how == HOW_UNKNOWN)
        return tell_unknown(p, t, sv, c, v);
    if (v->how == HOW_NEAR) {
        int rc = KV_OK;
        for (int i = 0; i < v->nnear && rc == KV_OK; i++)
            if (v->near[i]->type == KV_REC_PUT && v->near[i]->seq < v->hi)
                rc = push_revert(p, CHECK_MAY_REVERT, sv, c, v->near[i]->key, v->klen, c->seq,
                                 v->near[i]->seq, 1, "a damaged entry (%s, seq %llu, unverified) "
                                 "whose key differs from this one in at most %d bytes",
                                 c->type == KV_REC_DEL ? "delete" : "put",
                                 (unsigned long long)c->seq, NEAR_BYTES);
        return rc;
    }
    if (v->how == HOW_NONE)
        return KV_OK;
    const kslot *ks = ktab_find(t, v->key, v->klen);
    if (ks == NULL || ks->type != KV_REC_PUT || ks->seq >= v->seq)
        return KV_OK;
    if (v->how == HOW_KEY && !v->plausible)
        return push_revert(p, CHECK_MAY_REVERT, sv, c, v->key, v->klen, 0, ks->seq, 1, "a "
                           "damaged entry (%s) names it, with a sequence number (%llu) that "
                           "cannot be right: it may have been newer",
                           v->type == KV_REC_DEL ? "delete" : "put", (unsigned long long)v->seq);
    if (v->type == KV_REC_DEL)
        return push_revert(p, CHECK_UNDELETES, sv, c, v->key, v->klen, v->seq, ks->seq, 1,
                           "its lost delete (seq %llu; %s) %s: its put of seq %llu comes back",
                           (unsigned long long)v->seq, how_text(v), sv->active
                           ? "lies past the first damage of the newest files, which recovery "
                             "does not read" : "cannot be written again",
                           (unsigned long long)ks->seq);
    return push_revert(p, CHECK_REVERTS, sv, c, v->key, v->klen, v->seq, ks->seq, 1, "its lost "
                       "put (seq %llu; %s) is newer than its put of seq %llu, which comes back",
                       (unsigned long long)v->seq, how_text(v), (unsigned long long)ks->seq);
}

/* The rule above, for every lost record of every salvage. */
static int plan_reverts(plan *p)
{
    ktab t;
    memset(&t, 0, sizeof t);
    size_t total = 0;
    for (size_t i = 0; i < p->nsv; i++)
        total += p->sv[i]->ncand;
    if (total == 0)
        return KV_OK;
    lost_view *views = calloc(total, sizeof *views);
    int rc = views == NULL ? err_set(KV_ENOMEM, "repair: %zu lost records", total)
                           : note_survivors(p, &t);
    for (int pass = 0; pass < 2 && rc == KV_OK; pass++)
        for (size_t i = 0, k = 0; i < p->nsv && rc == KV_OK; i++) {
            salvage *sv = p->sv[i];
            size_t ncand = sv->ncand;
            for (size_t j = 0; j < ncand && rc == KV_OK; j++, k++) {
                if (pass == 0 && (rc = view_lost(p, &t, sv, &sv->cands[j], &views[k])) == KV_OK)
                    rc = decide_keep(p, &t, sv, &sv->cands[j], &views[k]);
                else if (pass == 1)
                    rc = decide_tell(p, &t, sv, &sv->cands[j], &views[k]);
            }
        }
    free(views);
    ktab_free(&t);
    return rc;
}

/* ---- files that are not regular ------------------------------------------------------ */

/* Policy: every name kv gives its files (segments, WAL files, hints and their temp
 * files, MANIFEST and MANIFEST.tmp, LOCK, copies set aside) is the store's, and the
 * repair reads, creates, renames or removes any of them. Something other than a
 * regular file under such a name — a FIFO, a device, a directory, a dangling link —
 * is not kv's doing: opening it can block for ever, creating its name fails with
 * EEXIST on every run, and taking a FIFO in place of a segment for a missing file
 * would drop the segment's records. So the repair refuses the store, naming it,
 * before it changes anything; the operator moves it away. Only fstatat and lstat
 * look at it: nothing is opened. */
int check_repair_special(int dirfd)
{
    inspect_dirent *ents = NULL;
    size_t n = 0;
    int rc = inspect_list_dir(dirfd, &ents, &n);
    for (size_t i = 0; i < n && rc == KV_OK; i++) {
        struct stat st;
        const inspect_dirent *d = &ents[i];
        if (d->regular || d->kind == INSPECT_UNKNOWN)
            continue;
        if (fstatat(dirfd, d->name, &st, 0) != 0 && fstatat(dirfd, d->name, &st,
                                                              AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT)
                continue; /* gone since it was listed (a writer beside us): nothing there */
            st.st_mode = 0;
        }
        rc = err_set(KV_EINVAL, "%s: not a regular file (%s), under a name kv uses for the "
                    "store's own files: kvcheck --repair refuses to work beside it; nothing "
                    "was changed (move it out of the store, then repair)", d->name,
                    file_type_name(st.st_mode));
    }
    free(ents);
    return rc;
}

/* ---- check_repair ------------------------------------------------------------------ */

static void tell_plan(const plan *p, const check_repair_fns *fns)
{
    for (size_t i = 0; fns != NULL && fns->step != NULL && i < p->n; i++) {
        const step *st = &p->v[i];
        fns->step(fns->arg, st->file, st->has_off, st->off, st->len, st->what);
    }
    for (size_t i = 0; i < p->nsv; i++) {
        const salvage *sv = p->sv[i];
        for (size_t j = 0; j < sv->ncand; j++) {
            const cand *c = &sv->cands[j];
            const char *file = sv->in[c->src] != NULL ? sv->in[c->src]->source : sv->name;
            check_lost l = {file, c->off, c->size, c->seq, c->type, c->key, c->klen, c->source};
            if (c->source != CHECK_FROM_NONE)
                p->res->records_lost++;
            if (fns != NULL && fns->lost != NULL)
                fns->lost(fns->arg, &l);
        }
    }
    for (size_t i = 0; fns != NULL && fns->revert != NULL && i < p->nrv; i++) {
        p->rv[i].r.why = p->rv[i].why; /* rv moved as it grew */
        fns->revert(fns->arg, &p->rv[i].r);
    }
}

int check_repair(const char *dir, int lock_fd, const check_repair_fns *fns,
                 check_repair_result *res)
{
    check_store s;
    check_summary sum;
    kv_io *io = NULL;
    plan p;
    memset(res, 0, sizeof *res);
    memset(&p, 0, sizeof p);
    memset(&s, 0, sizeof s);
    err_clear();
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return err_set(errno == ENOENT || errno == ENOTDIR ? KV_EINVAL : KV_EIO,
                      "not a store directory: %s", strerror(errno));
    /* the I/O layer a store in dir gets (the crash tests put theirs in its place) */
    int rc = check_repair_special(dirfd);
    if (rc == KV_OK)
        rc = io_for(dir, KV_IO_PSYNC, &io);
    if (rc == KV_OK)
        rc = check_store_run(dir, dirfd, io, NULL, &sum, &s, 1);
    if (rc == KV_OK && sum.damaged > 0 && s.man_state != KV_OK)
        rc = err_set(KV_ECORRUPT, "the MANIFEST is %s: kvcheck --repair cannot rebuild it, so "
                    "which segments make up the store is unknown; nothing was changed",
                    s.man_state == KV_NOTFOUND ? "missing" : "damaged");
    if (rc == KV_OK && (sum.damaged > 0 || sum.unfinished > 0)) {
        p.s = &s;
        p.lock_fd = lock_fd;
        p.res = res;
        rc = make_plan(&p);
        res->steps = (uint32_t)p.n;
    }
    if (rc == KV_OK && p.n > 0) /* no reader while files it may map change (lock.h) */
        rc = lock_readers_absent(lock_fd, dir);
    if (rc == KV_OK && p.n > 0) {
        tell_plan(&p, fns);
        if (fns != NULL && fns->confirm != NULL && !fns->confirm(fns->arg))
            res->declined = 1;
        else if ((rc = run_steps(&p)) == KV_OK)
            res->done = 1;
    }
    plan_free(&p);
    check_store_free(&s);
    if (io != NULL)
        io_free(io);
    close(dirfd);
    return rc;
}
