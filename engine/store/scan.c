/*
 * scan.c — the record-file scanner (see scan.h).
 *
 * Sections: the read window (a buffer over the file, refilled on demand and grown
 * only to the size of an entry whose length the file can back), batch checking, the
 * scan loop, and the walk past damage (the tools' reader: the scan loop, restarted
 * after each damaged stretch at the next offset where a whole entry checks out).
 */
#include "store/scan.h"

#include "base/kv_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes read at a time. The fuzz builds use a tiny window (-DKV_SCAN_WINDOW=64) so
 * that small inputs exercise refilling and growing it. */
#ifndef KV_SCAN_WINDOW
#define KV_SCAN_WINDOW (1u << 20)
#endif
#define SCAN_BUF ((size_t)KV_SCAN_WINDOW)

/* ---- the read window --------------------------------------------------------------- */

typedef struct window {
    kv_io *io;
    int fd;
    const char *name;
    const uint8_t *mem; /* whole file in memory (scan_buffer), else NULL */
    uint64_t end;
    uint8_t *buf;
    size_t cap;
    uint64_t boff; /* file offset of buf[0] */
    size_t blen;
} window;

/* Makes [off, off+n) readable and returns a pointer to it; NULL with *rc set on a
 * read error, NULL with *rc = KV_OK when the file has fewer bytes. */
static const uint8_t *win_get(window *w, uint64_t off, size_t n, int *rc)
{
    *rc = KV_OK;
    if (off > w->end || n > w->end - off)
        return NULL;
    if (w->mem != NULL)
        return w->mem + off;
    if (off >= w->boff && off + n <= w->boff + w->blen)
        return w->buf + (off - w->boff);
    size_t want = n > SCAN_BUF ? n : SCAN_BUF;
    if (want > w->end - off)
        want = (size_t)(w->end - off);
    if (want > w->cap) {
        uint8_t *nb = realloc(w->buf, want);
        if (nb == NULL) {
            *rc = err_set(KV_ENOMEM, "%s: reading %zu bytes at offset %llu", w->name, want,
                         (unsigned long long)off);
            return NULL;
        }
        w->buf = nb;
        w->cap = want;
    }
    ssize_t r = io_pread_full(w->io, w->fd, w->buf, want, off);
    if (r < 0) {
        *rc = err_errno((int)-r, "%s: read at offset %llu", w->name, (unsigned long long)off);
        return NULL;
    }
    w->boff = off;
    w->blen = (size_t)r;
    KV_ASSERT(w->blen <= w->cap && want <= w->end - off);
    if ((size_t)r < n)
        return NULL; /* the file shrank under us: treat as its end */
    return w->buf;
}

/* ---- batch checking ---------------------------------------------------------------- */

static void stop_at(kv_scan_result *res, uint64_t off, const char *why)
{
    res->stopped = 1;
    res->bad_off = off;
    snprintf(res->why, sizeof res->why, "%s", why);
}

/* Reads and checks the entry at off: the one reader of a single entry, shared by the
 * scan and the walk. Returns its pointer with *e filled, or NULL with *rc set on an
 * I/O error, else with why[] saying which check failed. *bad_p is then the entry's
 * bytes when its header was sane and it lies inside the file (a checksum or LZ4
 * raw-length failure: e has its fields, key and value untrusted), else NULL. */
static const uint8_t *entry_at(window *w, uint64_t off, kv_entry *e, char *why, size_t why_len,
                               const uint8_t **bad_p, int *rc)
{
    *bad_p = NULL;
    const uint8_t *p = win_get(w, off, KV_ENTRY_HDR, rc);
    if (p == NULL) {
        snprintf(why, why_len, "truncated entry header at end of file");
        return NULL;
    }
    const char *bad = entry_check_header(p, e);
    if (bad != NULL) {
        snprintf(why, why_len, "%s", bad);
        return NULL;
    }
    p = win_get(w, off, e->size, rc);
    if (p == NULL) {
        snprintf(why, why_len, "entry extends past end of file");
        return NULL;
    }
    if (entry_parse(p, e->size, e, why, why_len) != ENTRY_OK) {
        e->key = p + KV_ENTRY_HDR;
        e->val = p + KV_ENTRY_HDR + e->klen;
        *bad_p = p;
        return NULL;
    }
    return p;
}

/* Reads and checks the entry at off. Returns its pointer (and *e), or NULL with
 * res stopped (or *rc set on an I/O error). */
static const uint8_t *read_entry(window *w, uint64_t off, kv_entry *e, kv_scan_result *res,
                                 int *rc)
{
    char why[128];
    const uint8_t *bad_p;
    const uint8_t *p = entry_at(w, off, e, why, sizeof why, &bad_p, rc);
    if (p == NULL && *rc == KV_OK)
        stop_at(res, off, why);
    return p;
}

/* Checks the batch starting at off; returns its end offset and entry count, or 0
 * when the scan must stop. */
static uint64_t check_batch(window *w, uint64_t off, uint32_t *count, kv_entry *last,
                            kv_scan_result *res, int *rc)
{
    kv_entry e;
    uint64_t prev_seq = 0, start = off;
    *count = 0;
    for (;;) {
        if (read_entry(w, off, &e, res, rc) == NULL)
            return 0;
        if (*count > 0 && e.seq != prev_seq + 1) {
            stop_at(res, off, "batch entries with non-consecutive sequence numbers");
            return 0;
        }
        prev_seq = e.seq;
        off += e.size;
        (*count)++;
        *last = e;
        if (!(e.flags & KV_RECF_BATCH))
            return off;
        if (off >= w->end) {
            stop_at(res, start, "incomplete batch at end of file");
            return 0;
        }
    }
}

/* ---- the scan loop ----------------------------------------------------------------- */

/* Hands a checked batch to fn. A single entry is still in the window (`only`);
 * a longer batch is read again, entry by entry. */
static int deliver_batch(window *w, uint64_t off, uint32_t count, const kv_entry *only,
                         kv_scan_fn fn, void *arg, kv_scan_result *res)
{
    int rc;
    for (uint32_t i = 0; i < count; i++) {
        kv_entry e;
        if (count == 1)
            e = *only;
        else if (read_entry(w, off, &e, res, &rc) == NULL)
            return rc != KV_OK ? rc : err_set(KV_EIO, "%s: offset %llu changed while reading",
                                             w->name, (unsigned long long)off);
        rc = fn != NULL ? fn(arg, &e, off) : 0;
        if (rc != 0)
            return rc;
        res->records++;
        if (e.seq > res->max_seq)
            res->max_seq = e.seq;
        off += e.size;
    }
    return KV_OK;
}

static int scan_loop(window *w, uint64_t start, kv_scan_fn fn, void *arg, kv_scan_result *res)
{
    int rc = KV_OK;
    uint64_t off = start;
    memset(res, 0, sizeof *res);
    res->valid_end = start;
    while (off < w->end) {
        uint32_t count;
        kv_entry last;
        uint64_t next = check_batch(w, off, &count, &last, res, &rc);
        if (next == 0)
            break;
        KV_ASSERT(next > off && next <= w->end && count > 0);
        rc = deliver_batch(w, off, count, &last, fn, arg, res);
        if (rc != KV_OK)
            break;
        off = next;
        res->valid_end = off;
    }
    return rc;
}

/* ---- the walk past damage ----------------------------------------------------------- */

/* The first offset in [from, end) where a whole entry checks out (header, length,
 * checksum), or end when there is none; 0 with *rc set on an I/O error. It goes byte
 * by byte: a damaged length says nothing about where the next entry starts. Most
 * garbage fails the header checks, so only a sane header costs a checksum. */
static uint64_t find_entry(window *w, uint64_t from, int *rc)
{
    for (uint64_t off = from; off < w->end && w->end - off >= KV_ENTRY_HDR; off++) {
        kv_entry e;
        char why[128];
        const uint8_t *bad_p;
        const uint8_t *p = win_get(w, off, KV_ENTRY_HDR, rc);
        if (p == NULL)
            return *rc != KV_OK ? 0 : w->end;
        if (entry_check_header(p, &e) != NULL || e.size > w->end - off)
            continue;
        if (entry_at(w, off, &e, why, sizeof why, &bad_p, rc) != NULL)
            return off;
        if (*rc != KV_OK)
            return 0;
    }
    return w->end;
}

/* The scan stopped at sr->valid_end: hands the loose entries of the damaged stretch
 * there to fns->loose (first the entries of the unfinished batch, which check out and
 * chain on; then the entry that failed, when its header was sane), reports the
 * stretch, and sets *resume where whole batches may start again: right after the
 * unfinished batch when an entry that checks out breaks its chain, else the next
 * offset where an entry checks out (find_entry), else the end. *resume is always past
 * sr->valid_end, so the walk ends. */
static int walk_damage(window *w, const kv_scan_result *sr, const kv_scan_walk_fns *f,
                       kv_scan_walk_result *res, uint64_t *resume)
{
    uint64_t start = sr->valid_end, q = start, prev = 0, next;
    uint32_t n = 0;
    int rc = KV_OK, cb, chain_broken = 0;
    const uint8_t *p = NULL, *bad_p = NULL;
    kv_entry e;
    char why[128];
    while (q < w->end) {
        p = entry_at(w, q, &e, why, sizeof why, &bad_p, &rc);
        if (rc != KV_OK)
            return rc;
        if (p == NULL)
            break;
        if ((n > 0 && e.seq != prev + 1) || !(e.flags & KV_RECF_BATCH)) {
            chain_broken = n > 0;
            break;
        }
        if (f->loose != NULL && (cb = f->loose(f->arg, &e, q, 1)) != 0)
            return cb;
        n++;
        prev = e.seq;
        q += e.size;
    }
    if (q >= w->end) {
        next = w->end;
    } else if (chain_broken) {
        next = q;
    } else {
        if (bad_p != NULL && f->loose != NULL && (cb = f->loose(f->arg, &e, q, 0)) != 0)
            return cb;
        next = find_entry(w, q + 1, &rc); /* moves the window: e is stale from here */
        if (rc != KV_OK)
            return rc;
    }
    KV_ASSERT(next > start && next <= w->end); /* the walk moves on: it ends */
    res->regions++;
    res->lost_bytes += next - start;
    res->tail = next == w->end;
    *resume = next;
    uint64_t bad_off = sr->bad_off;
    const char *reason = sr->why;
    if (chain_broken) { /* the entry that broke the chain is sound: the batch is cut */
        snprintf(why, sizeof why, "batch of %u entries cut short: the entry at offset %llu does "
                 "not continue it", n, (unsigned long long)q);
        bad_off = start;
        reason = why;
    }
    if (f->damage != NULL && (cb = f->damage(f->arg, start, next - start, bad_off, reason)) != 0)
        return cb;
    return KV_OK;
}

static int walk_loop(window *w, uint64_t start, const kv_scan_walk_fns *f, kv_scan_walk_result *res)
{
    int rc = KV_OK;
    uint64_t off = start;
    memset(res, 0, sizeof *res);
    res->ok_up_to = start < w->end ? start : w->end;
    for (int first = 1; off < w->end; first = 0) {
        kv_scan_result sr;
        rc = scan_loop(w, off, f->batch, f->arg, &sr);
        res->records += sr.records;
        if (sr.max_seq > res->max_seq)
            res->max_seq = sr.max_seq;
        if (rc != KV_OK)
            break;
        if (first)
            res->ok_up_to = sr.valid_end;
        if (!sr.stopped)
            break;
        if ((rc = walk_damage(w, &sr, f, res, &off)) != KV_OK)
            break;
    }
    return rc;
}

int scan_walk_file(kv_io *io, int fd, const char *name, uint64_t start, uint64_t end,
                      const kv_scan_walk_fns *fns, kv_scan_walk_result *res)
{
    window w = {.io = io, .fd = fd, .name = name, .end = end};
    int rc = walk_loop(&w, start, fns, res);
    free(w.buf);
    return rc;
}

int scan_walk_buffer(const uint8_t *buf, size_t len, uint64_t start,
                        const kv_scan_walk_fns *fns, kv_scan_walk_result *res)
{
    window w = {.name = "buffer", .mem = buf, .end = len};
    return walk_loop(&w, start, fns, res);
}

/* ---- torn tail or damage ------------------------------------------------------------ */

#define FENCE_FOUND 0x4643 /* a batch callback's return that stops the walk: found */

typedef struct fence_ctx {
    uint64_t after_seq;
    kv_scan_fence *out;
} fence_ctx;

static int fence_entry(void *arg, const kv_entry *e, uint64_t off)
{
    fence_ctx *c = arg;
    if (!(e->flags & KV_RECF_FENCE) || e->seq <= c->after_seq)
        return 0;
    c->out->found = 1;
    c->out->off = off;
    c->out->seq = e->seq;
    return FENCE_FOUND;
}

static int find_fence(window *w, const kv_scan_result *res, kv_scan_fence *out)
{
    fence_ctx c = {res->max_seq, out};
    kv_scan_walk_fns fns = {.batch = fence_entry, .arg = &c};
    kv_scan_walk_result wr;
    memset(out, 0, sizeof *out);
    if (!res->stopped)
        return KV_OK;
    int rc = walk_loop(w, res->valid_end, &fns, &wr);
    return rc == FENCE_FOUND ? KV_OK : rc;
}

int scan_find_fence(kv_io *io, int fd, const char *name, uint64_t end,
                       const kv_scan_result *res, kv_scan_fence *out)
{
    window w = {.io = io, .fd = fd, .name = name, .end = end};
    int rc = find_fence(&w, res, out);
    free(w.buf);
    return rc;
}

int scan_find_fence_buffer(const uint8_t *buf, size_t len, const kv_scan_result *res,
                              kv_scan_fence *out)
{
    window w = {.name = "buffer", .mem = buf, .end = len};
    return find_fence(&w, res, out);
}

/* ---- entry points ------------------------------------------------------------------ */

int scan_file(kv_io *io, int fd, const char *name, uint64_t start, uint64_t end,
                 kv_scan_fn fn, void *arg, kv_scan_result *res)
{
    window w = {.io = io, .fd = fd, .name = name, .end = end};
    int rc = scan_loop(&w, start, fn, arg, res);
    free(w.buf);
    return rc;
}

int scan_buffer(const uint8_t *buf, size_t len, uint64_t start, kv_scan_fn fn,
                   void *arg, kv_scan_result *res)
{
    window w = {.name = "buffer", .mem = buf, .end = len};
    return scan_loop(&w, start, fn, arg, res);
}
