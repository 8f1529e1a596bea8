/*
 * scan.c — the record-file scanner (see scan.h).
 *
 * Sections: the read window (a buffer over the file, refilled on demand and grown
 * only to the size of an entry whose length the file can back), batch checking, and
 * the scan loop.
 */
#include "scan.h"

#include "kv_int.h"

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
    const uint8_t *mem; /* whole file in memory (kv_scan_buffer), else NULL */
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
            *rc = kv_err(KV_ENOMEM, "%s: reading %zu bytes at offset %llu", w->name, want,
                         (unsigned long long)off);
            return NULL;
        }
        w->buf = nb;
        w->cap = want;
    }
    ssize_t r = io_pread_full(w->io, w->fd, w->buf, want, off);
    if (r < 0) {
        *rc = kv_err_errno((int)-r, "%s: read at offset %llu", w->name, (unsigned long long)off);
        return NULL;
    }
    w->boff = off;
    w->blen = (size_t)r;
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

/* Reads and checks the entry at off. Returns its pointer (and *e), or NULL with
 * res stopped (or *rc set on an I/O error). */
static const uint8_t *read_entry(window *w, uint64_t off, kv_entry *e, kv_scan_result *res,
                                 int *rc)
{
    char why[128];
    const uint8_t *p = win_get(w, off, KV_ENTRY_HDR, rc);
    if (p == NULL) {
        if (*rc == KV_OK)
            stop_at(res, off, "truncated entry header at end of file");
        return NULL;
    }
    const char *bad = entry_check_header(p, e);
    if (bad != NULL) {
        stop_at(res, off, bad);
        return NULL;
    }
    p = win_get(w, off, e->size, rc);
    if (p == NULL) {
        if (*rc == KV_OK)
            stop_at(res, off, "entry extends past end of file");
        return NULL;
    }
    if (entry_parse(p, e->size, e, why, sizeof why) != ENTRY_OK) {
        stop_at(res, off, why);
        return NULL;
    }
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
            return rc != KV_OK ? rc : kv_err(KV_EIO, "%s: offset %llu changed while reading",
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
        rc = deliver_batch(w, off, count, &last, fn, arg, res);
        if (rc != KV_OK)
            break;
        off = next;
        res->valid_end = off;
    }
    return rc;
}

int kv_scan_file(kv_io *io, int fd, const char *name, uint64_t start, uint64_t end,
                 kv_scan_fn fn, void *arg, kv_scan_result *res)
{
    window w = {.io = io, .fd = fd, .name = name, .end = end};
    int rc = scan_loop(&w, start, fn, arg, res);
    free(w.buf);
    return rc;
}

int kv_scan_buffer(const uint8_t *buf, size_t len, uint64_t start, kv_scan_fn fn,
                   void *arg, kv_scan_result *res)
{
    window w = {.name = "buffer", .mem = buf, .end = len};
    return scan_loop(&w, start, fn, arg, res);
}
