/*
 * inspect_fuzzer.c — the walk past damage (engine/fsck/inspect.c over the scanner's walk
 * in engine/store/scan.c) on any segment or WAL image.
 *
 * Invariant: the tools' reader (kvcheck, kvdump --all) sees the whole file, damage
 * included, and never anything that is not there. On any image the walk ends, and
 *   - whole-batch entries and damaged stretches tile [16, end) in file order, with
 *     no gap and no overlap: record_bytes + lost_bytes + 16 == the file's size;
 *   - every whole-batch entry checks out (entry_parse at its offset gives the same
 *     fields and bytes), and the batches are whole: consecutive sequence numbers, the
 *     last one without the batch flag, none cut by a stretch;
 *   - up to ok_up_to the walk delivers exactly what the scanner recovery uses
 *     (scan_buffer) delivers, and ok_up_to is its valid_end: the walk is the scan,
 *     continued;
 *   - a stretch ends at the end of the file or at an offset where an entry checks
 *     out, and between the entry that failed and that end no offset holds one: the
 *     walk resynchronises at the first chance, so no whole batch is skipped;
 *   - loose entries (inside a stretch) come before their stretch's report and lie in
 *     it; those said to check out do, and chain on as one unfinished batch;
 *   - the file walk (inspect_walk through the I/O layer over a memfd, with the fuzz
 *     build's 64-byte read window) and the buffer walk report the same events;
 *   - inspect_check_header agrees with file_header_check on the first 16 bytes;
 *   - nothing is read out of bounds, no allocation follows an unchecked length.
 * Each input is walked as given and again with its header and entry CRCs recomputed
 * (fuzz.h), so that mutations reach the batch and sequence checks and the stretches
 * between valid entries.
 */
#include "fuzz.h"

#include "format/entry.h"
#include "fsck/inspect.h"
#include "io/io.h"
#include "kv.h"
#include "store/scan.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum { EV_WHOLE, EV_LOOSE, EV_DAMAGE };

typedef struct event {
    int type;
    uint64_t off, len;   /* entry size, or stretch length */
    uint64_t seq, bad_off;
    int flags, crc_ok, to_eof;
} event;

typedef struct event_list {
    event *v;
    size_t n, cap;
    const uint8_t *buf; /* the image, to check delivered bytes against */
    size_t len;
} event_list;

static void push(event_list *l, event ev)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        FUZZ_CHECK(l->v != NULL, "out of memory");
    }
    l->v[l->n++] = ev;
}

/* ---- what the walk reports ----------------------------------------------------------- */

static int on_record(void *arg, const inspect_rec *r)
{
    event_list *l = arg;
    const kv_entry *e = &r->e;
    FUZZ_CHECK(r->off >= KV_FILE_HDR_SIZE && r->off < l->len, "entry at %llu of a %zu-byte file",
               (unsigned long long)r->off, l->len);
    if (r->crc_ok || e->size <= l->len - r->off) {
        /* its bytes must be the image's: the window handed out the right ones */
        FUZZ_CHECK(e->size <= l->len - r->off, "entry at %llu of %u bytes runs past %zu",
                   (unsigned long long)r->off, e->size, l->len);
        FUZZ_CHECK(memcmp(e->key, l->buf + r->off + KV_ENTRY_HDR, e->klen) == 0
                       && (e->vlen == 0 || memcmp(e->val, l->buf + r->off + KV_ENTRY_HDR + e->klen,
                                                  e->vlen) == 0),
                   "key or value of the entry at %llu are not the file's bytes",
                   (unsigned long long)r->off);
    }
    if (r->crc_ok) {
        kv_entry again;
        char why[128];
        FUZZ_CHECK(entry_parse(l->buf + r->off, l->len - r->off, &again, why, sizeof why)
                       == ENTRY_OK,
                   "entry at %llu said to check out does not: %s", (unsigned long long)r->off, why);
        FUZZ_CHECK(again.seq == e->seq && again.size == e->size && again.flags == e->flags
                       && again.type == e->type && again.klen == e->klen,
                   "fields of the entry at %llu differ from its bytes", (unsigned long long)r->off);
    }
    FUZZ_CHECK(r->batch_off <= r->off, "batch starts at %llu after its entry at %llu",
               (unsigned long long)r->batch_off, (unsigned long long)r->off);
    push(l, (event){r->whole ? EV_WHOLE : EV_LOOSE, r->off, e->size, e->seq, 0, e->flags,
                    r->crc_ok, 0});
    return 0;
}

static int on_damage(void *arg, const inspect_damage *d)
{
    event_list *l = arg;
    FUZZ_CHECK(d->why != NULL && d->why[0] != '\0', "a stretch at %llu without a reason",
               (unsigned long long)d->off);
    push(l, (event){EV_DAMAGE, d->off, d->len, 0, d->bad_off, 0, 0, d->to_eof});
    return 0;
}

static const inspect_walk_fns g_fns_proto = {on_record, on_damage, NULL};

/* ---- the checks -------------------------------------------------------------------- */

static int checks_out(const uint8_t *buf, size_t len, uint64_t off)
{
    kv_entry e;
    char why[128];
    return off < len && entry_parse(buf + off, len - off, &e, why, sizeof why) == ENTRY_OK;
}

/* Whole entries and stretches tile [16, len); loose entries sit in their stretch. */
static void check_tiling(const event_list *l, const inspect_walk_result *res)
{
    uint64_t cur = KV_FILE_HDR_SIZE, whole_bytes = 0, lost = 0, prev_seq = 0;
    uint64_t loose_end = 0; /* end of the unfinished batch's entries in this stretch */
    int more = 0, in_loose = 0, loose_ok_run = 1;
    size_t first_loose = 0;
    for (size_t i = 0; i < l->n; i++) {
        const event *ev = &l->v[i];
        if (ev->type == EV_WHOLE) {
            FUZZ_CHECK(!in_loose, "a whole entry at %llu among loose ones",
                       (unsigned long long)ev->off);
            FUZZ_CHECK(ev->off == cur, "whole entry at %llu, expected %llu",
                       (unsigned long long)ev->off, (unsigned long long)cur);
            FUZZ_CHECK(ev->crc_ok, "whole entry at %llu with a bad CRC", (unsigned long long)ev->off);
            if (more)
                FUZZ_CHECK(ev->seq == prev_seq + 1, "batch with a gap at %llu",
                           (unsigned long long)ev->off);
            more = ev->flags & KV_RECF_BATCH;
            prev_seq = ev->seq;
            cur += ev->len;
            whole_bytes += ev->len;
        } else if (ev->type == EV_LOOSE) {
            if (!in_loose) {
                first_loose = i;
                loose_end = cur;
                loose_ok_run = 1;
            }
            in_loose = 1;
            FUZZ_CHECK(ev->off >= cur, "loose entry at %llu before the stretch at %llu",
                       (unsigned long long)ev->off, (unsigned long long)cur);
            if (ev->crc_ok) {
                FUZZ_CHECK(loose_ok_run && ev->off == loose_end,
                           "loose entries that check out do not chain from the stretch's start");
                FUZZ_CHECK(ev->flags & KV_RECF_BATCH, "loose entry at %llu ends its batch",
                           (unsigned long long)ev->off);
                if (i > first_loose)
                    FUZZ_CHECK(ev->seq == l->v[i - 1].seq + 1, "loose chain with a gap at %llu",
                               (unsigned long long)ev->off);
                loose_end += ev->len;
            } else {
                FUZZ_CHECK(ev->off == loose_end, "bad entry at %llu, not where the chain ends",
                           (unsigned long long)ev->off);
                loose_ok_run = 0;
            }
        } else {
            FUZZ_CHECK(!more, "a stretch at %llu cuts a whole batch", (unsigned long long)ev->off);
            FUZZ_CHECK(ev->off == cur && ev->len > 0, "stretch at %llu+%llu, expected at %llu",
                       (unsigned long long)ev->off, (unsigned long long)ev->len,
                       (unsigned long long)cur);
            FUZZ_CHECK(ev->bad_off >= ev->off && ev->bad_off < ev->off + ev->len,
                       "failed entry %llu outside its stretch", (unsigned long long)ev->bad_off);
            if (!in_loose)
                loose_end = cur;
            for (size_t j = first_loose; in_loose && j < i; j++)
                FUZZ_CHECK(l->v[j].off < ev->off + ev->len, "loose entry past its stretch");
            uint64_t end = ev->off + ev->len;
            FUZZ_CHECK(end <= l->len, "stretch runs past the file");
            FUZZ_CHECK(ev->to_eof == (end == l->len), "to_eof %d for a stretch ending at %llu",
                       ev->to_eof, (unsigned long long)end);
            FUZZ_CHECK(end == l->len || checks_out(l->buf, l->len, end),
                       "walk resumes at %llu where no entry checks out", (unsigned long long)end);
            for (uint64_t o = loose_end + 1; o < end; o++)
                FUZZ_CHECK(!checks_out(l->buf, l->len, o),
                           "an entry checks out at %llu inside the stretch %llu..%llu",
                           (unsigned long long)o, (unsigned long long)ev->off,
                           (unsigned long long)end);
            lost += ev->len;
            cur = end;
            in_loose = 0;
        }
    }
    FUZZ_CHECK(!in_loose, "loose entries without their stretch");
    FUZZ_CHECK(!more, "the file ends inside a whole batch");
    if (l->len > KV_FILE_HDR_SIZE)
        FUZZ_CHECK(cur == l->len, "walk covered %llu of %zu bytes", (unsigned long long)cur, l->len);
    FUZZ_CHECK(res->record_bytes == whole_bytes && res->lost_bytes == lost,
               "totals %llu + %llu, events %llu + %llu", (unsigned long long)res->record_bytes,
               (unsigned long long)res->lost_bytes, (unsigned long long)whole_bytes,
               (unsigned long long)lost);
    if (l->len > KV_FILE_HDR_SIZE)
        FUZZ_CHECK(res->record_bytes + res->lost_bytes + KV_FILE_HDR_SIZE == l->len,
                   "bytes do not add up");
}

typedef struct scan_list {
    uint64_t *off;
    size_t n, cap;
} scan_list;

static int scan_collect(void *arg, const kv_entry *e, uint64_t off)
{
    scan_list *s = arg;
    (void)e;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 32;
        s->off = realloc(s->off, s->cap * sizeof *s->off);
        FUZZ_CHECK(s->off != NULL, "out of memory");
    }
    s->off[s->n++] = off;
    return 0;
}

/* Up to ok_up_to the walk is the scan. */
static void check_against_scan(const uint8_t *buf, size_t len, const event_list *l,
                               const inspect_walk_result *res)
{
    scan_list s = {0};
    kv_scan_result sr;
    if (len <= KV_FILE_HDR_SIZE)
        return;
    FUZZ_CHECK(scan_buffer(buf, len, KV_FILE_HDR_SIZE, scan_collect, &s, &sr) == 0, "scan");
    FUZZ_CHECK(sr.valid_end == res->ok_up_to, "scan valid_end %llu, walk ok_up_to %llu",
               (unsigned long long)sr.valid_end, (unsigned long long)res->ok_up_to);
    size_t k = 0;
    for (size_t i = 0; i < l->n && l->v[i].off < res->ok_up_to; i++) {
        FUZZ_CHECK(l->v[i].type == EV_WHOLE, "a non-whole event before ok_up_to");
        FUZZ_CHECK(k < s.n && s.off[k] == l->v[i].off, "walk entry %zu at %llu, scan's at %llu", i,
                   (unsigned long long)l->v[i].off, k < s.n ? (unsigned long long)s.off[k] : 0ull);
        k++;
    }
    FUZZ_CHECK(k == s.n, "scan delivered %zu entries, the walk %zu before ok_up_to", s.n, k);
    /* Torn tail or damage: the tools' verdict is recovery's (scan.h). */
    kv_scan_fence fence;
    FUZZ_CHECK(scan_find_fence_buffer(buf, len, &sr, &fence) == 0, "fence search");
    FUZZ_CHECK(res->fenced == fence.found && (!fence.found || res->fence_off == fence.off),
               "the walk's fence (%d at %llu) is not recovery's (%d at %llu)", res->fenced,
               (unsigned long long)res->fence_off, fence.found, (unsigned long long)fence.off);
    FUZZ_CHECK(res->torn_tail == (res->regions > 0 && !res->fenced), "torn_tail flag");
    FUZZ_CHECK((res->regions == 0) == !sr.stopped, "regions %llu, scan stopped %d",
               (unsigned long long)res->regions, sr.stopped);
    free(s.off);
}

/* The file walk reads through the I/O layer from a memfd holding the image. */
static kv_io *g_io;
static int g_fd = -1;

static void walk_as_file(const uint8_t *buf, size_t len, event_list *l, inspect_walk_result *res)
{
    inspect_walk_fns fns = g_fns_proto;
    if (g_io == NULL) {
        FUZZ_CHECK(io_new(KV_IO_PSYNC, &g_io) == 0, "io_new");
        g_fd = memfd_create("kv-inspect-fuzz", MFD_CLOEXEC);
        FUZZ_CHECK(g_fd >= 0, "memfd_create");
    }
    FUZZ_CHECK(ftruncate(g_fd, 0) == 0 && io_pwrite_full(g_io, g_fd, buf, len, 0) == 0,
               "writing the memfd");
    fns.arg = l;
    int rc = inspect_walk(g_io, g_fd, "fuzz.seg", len, &fns, res);
    FUZZ_CHECK(rc == 0, "inspect_walk returned %d", rc);
}

static void same_events(const event_list *a, const event_list *b)
{
    FUZZ_CHECK(a->n == b->n, "buffer walk %zu events, file walk %zu", a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const event *x = &a->v[i], *y = &b->v[i];
        FUZZ_CHECK(x->type == y->type && x->off == y->off && x->len == y->len && x->seq == y->seq
                       && x->bad_off == y->bad_off && x->flags == y->flags
                       && x->crc_ok == y->crc_ok && x->to_eof == y->to_eof,
                   "event %zu differs: type %d/%d at %llu/%llu", i, x->type, y->type,
                   (unsigned long long)x->off, (unsigned long long)y->off);
    }
}

static void check_header(const uint8_t *buf, size_t len)
{
    inspect_header h;
    uint32_t num;
    int too_new;
    int st = inspect_check_header(buf, len, INSPECT_SEG, 0, &h);
    if (len < KV_FILE_HDR_SIZE) {
        FUZZ_CHECK(st == INSPECT_HDR_SHORT, "short header status %d", st);
        return;
    }
    const char *why = file_header_check(buf, KV_MAGIC_SEG, &num, &too_new);
    FUZZ_CHECK((st == INSPECT_HDR_OK) == (why == NULL), "header status %d, file_header_check %s",
               st, why ? why : "ok");
    FUZZ_CHECK((st == INSPECT_HDR_NEWER) == (why != NULL && too_new), "newer version status %d", st);
}

static void check_image(const uint8_t *buf, size_t len)
{
    event_list l = {.buf = buf, .len = len}, fl = {.buf = buf, .len = len};
    inspect_walk_result res, fres;
    inspect_walk_fns fns = g_fns_proto;
    fns.arg = &l;
    check_header(buf, len);
    FUZZ_CHECK(inspect_walk_buffer(buf, len, &fns, &res) == 0, "inspect_walk_buffer");
    check_tiling(&l, &res);
    check_against_scan(buf, len, &l, &res);
    walk_as_file(buf, len, &fl, &fres);
    same_events(&l, &fl);
    FUZZ_CHECK(memcmp(&res, &fres, sizeof res) == 0, "buffer and file walk totals differ");
    free(l.v);
    free(fl.v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_check_fixed(data, size, check_image, fuzz_fix_record_file);
    return 0;
}
