/*
 * wal_fuzzer.c — the record-file reader (engine/store/scan.c) on an arbitrary WAL file.
 *
 * Invariant: on any file image, the scanner that recovery and the tools use to read
 * WAL files and segments returns a prefix of valid records and a clean end:
 *   - every entry it delivers decodes (entry_parse), lies inside the file, starts
 *     where the one before ended (the first at offset 16), and the batches it
 *     delivers are whole: consecutive sequence numbers, the last without the batch
 *     flag;
 *   - it delivers exactly what a plain reading of docs/FORMAT.md delivers (a small
 *     model scanner below, built on entry_parse alone): the same records, the same
 *     valid_end, and it stops (torn tail or damage, with a reason and an offset in
 *     [valid_end, end)) exactly when the model does;
 *   - scanning only the bytes [0, valid_end) delivers the same records and ends
 *     clean: what it kept is self-contained;
 *   - the file scanner (scan_file through the I/O layer, over a memfd, with the
 *     small read window make fuzz compiles in: KV_SCAN_WINDOW) and the buffer
 *     scanner (scan_buffer) agree on everything;
 *   - nothing is read out of bounds, no allocation follows an unchecked length.
 * Each input is scanned as given and again with its header and entry CRCs
 * recomputed (fuzz.h), so mutations also reach the batch and sequence checks.
 */
#include "fuzz.h"

#include "format/entry.h"
#include "io/io.h"
#include "kv.h"
#include "store/scan.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct rec {
    uint64_t off, seq;
    uint32_t size;
    int flags;
} rec;

typedef struct rec_list {
    rec *r;
    size_t n, cap;
    const uint8_t *buf; /* the image, to check delivered entries against */
    size_t len;
} rec_list;

static void list_add(rec_list *l, uint64_t off, const kv_entry *e)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->r = realloc(l->r, l->cap * sizeof *l->r);
        FUZZ_CHECK(l->r != NULL, "out of memory");
    }
    l->r[l->n++] = (rec){off, e->seq, e->size, e->flags};
}

/* ---- the model: docs/FORMAT.md read plainly, one entry_parse per entry ------------ */

typedef struct model_result {
    rec_list recs;
    uint64_t valid_end;
    int stopped;
} model_result;

static void model_scan(const uint8_t *buf, size_t len, model_result *m)
{
    size_t off = KV_FILE_HDR_SIZE;
    m->valid_end = off;
    m->stopped = 0;
    while (off < len) {
        size_t first = m->recs.n;
        uint64_t prev = 0;
        int complete = 0;
        for (size_t k = 0; !complete; k++) {
            kv_entry e;
            char why[128];
            if (entry_parse(buf + off, len - off, &e, why, sizeof why) != ENTRY_OK
                || (k > 0 && e.seq != prev + 1))
                break;
            list_add(&m->recs, off, &e);
            prev = e.seq;
            off += e.size;
            complete = !(e.flags & KV_RECF_BATCH);
            if (!complete && off >= len)
                break;
        }
        if (!complete) {
            m->recs.n = first; /* none of an unfinished batch */
            m->stopped = 1;
            return;
        }
        m->valid_end = off;
    }
}

/* ---- what the engine's scanner delivers -------------------------------------------- */

static int collect(void *arg, const kv_entry *e, uint64_t off)
{
    rec_list *l = arg;
    kv_entry again;
    char why[128];
    FUZZ_CHECK(off >= KV_FILE_HDR_SIZE && off < l->len && e->size <= l->len - off,
               "entry at %llu of %u bytes outside a %zu-byte file", (unsigned long long)off,
               e->size, l->len);
    FUZZ_CHECK(entry_parse(l->buf + off, l->len - off, &again, why, sizeof why) == ENTRY_OK,
               "delivered an entry at %llu that does not decode: %s", (unsigned long long)off,
               why);
    FUZZ_CHECK(again.seq == e->seq && again.size == e->size && again.klen == e->klen
                   && again.vlen == e->vlen && again.type == e->type && again.flags == e->flags,
               "delivered fields differ from the bytes at %llu", (unsigned long long)off);
    FUZZ_CHECK(memcmp(e->key, again.key, e->klen) == 0
                   && (e->vlen == 0 || memcmp(e->val, again.val, e->vlen) == 0),
               "delivered key or value differs from the bytes at %llu", (unsigned long long)off);
    list_add(l, off, e);
    return 0;
}

static void same_records(const rec_list *a, const rec_list *b, const char *what)
{
    FUZZ_CHECK(a->n == b->n, "%s: %zu records vs %zu", what, a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        FUZZ_CHECK(a->r[i].off == b->r[i].off && a->r[i].seq == b->r[i].seq
                       && a->r[i].size == b->r[i].size && a->r[i].flags == b->r[i].flags,
                   "%s: record %zu differs (offset %llu vs %llu)", what, i,
                   (unsigned long long)a->r[i].off, (unsigned long long)b->r[i].off);
}

static void same_result(const kv_scan_result *a, const kv_scan_result *b, const char *what)
{
    FUZZ_CHECK(a->valid_end == b->valid_end && a->records == b->records
                   && a->max_seq == b->max_seq && a->stopped == b->stopped
                   && a->bad_off == b->bad_off && strcmp(a->why, b->why) == 0,
               "%s: valid_end %llu/%llu, records %llu/%llu, stopped %d/%d at %llu/%llu (%s/%s)",
               what, (unsigned long long)a->valid_end, (unsigned long long)b->valid_end,
               (unsigned long long)a->records, (unsigned long long)b->records, a->stopped,
               b->stopped, (unsigned long long)a->bad_off, (unsigned long long)b->bad_off,
               a->why, b->why);
}

/* The file scanner reads through the I/O layer from a memfd holding the image. */
static kv_io *g_io;
static int g_fd = -1;

static void scan_as_file(const uint8_t *buf, size_t len, rec_list *l, kv_scan_result *res)
{
    if (g_io == NULL) {
        FUZZ_CHECK(io_new(KV_IO_PSYNC, &g_io) == 0, "io_new");
        g_fd = memfd_create("kv-wal-fuzz", MFD_CLOEXEC);
        FUZZ_CHECK(g_fd >= 0, "memfd_create");
    }
    FUZZ_CHECK(ftruncate(g_fd, 0) == 0 && io_pwrite_full(g_io, g_fd, buf, len, 0) == 0,
               "writing the memfd");
    int rc = scan_file(g_io, g_fd, "fuzz.wal", KV_FILE_HDR_SIZE, len, collect, l, res);
    FUZZ_CHECK(rc == 0, "scan_file returned %d", rc);
}

static void check_image(const uint8_t *buf, size_t len)
{
    kv_scan_result res, fres, pres;
    rec_list got = {.buf = buf, .len = len}, fgot = {.buf = buf, .len = len};
    rec_list pgot = {.buf = buf, .len = len};
    model_result m = {.recs = {.buf = buf, .len = len}};

    int rc = scan_buffer(buf, len, KV_FILE_HDR_SIZE, collect, &got, &res);
    FUZZ_CHECK(rc == 0, "scan_buffer returned %d", rc);
    FUZZ_CHECK(res.records == got.n, "records %llu, delivered %zu",
               (unsigned long long)res.records, got.n);
    FUZZ_CHECK(res.valid_end >= KV_FILE_HDR_SIZE && res.valid_end <= len, "valid_end %llu of %zu",
               (unsigned long long)res.valid_end, len);
    FUZZ_CHECK(res.stopped == (res.valid_end < len), "stopped %d with valid_end %llu of %zu",
               res.stopped, (unsigned long long)res.valid_end, len);
    if (res.stopped)
        FUZZ_CHECK(res.bad_off >= res.valid_end && res.bad_off < len && res.why[0] != '\0',
                   "stop at %llu (valid_end %llu, %zu bytes): \"%s\"",
                   (unsigned long long)res.bad_off, (unsigned long long)res.valid_end, len,
                   res.why);
    uint64_t end = KV_FILE_HDR_SIZE, max_seq = 0;
    for (size_t i = 0; i < got.n; i++) {
        const rec *r = &got.r[i];
        FUZZ_CHECK(r->off == end, "record %zu at %llu, previous ended at %llu", i,
                   (unsigned long long)r->off, (unsigned long long)end);
        if (i > 0 && (got.r[i - 1].flags & KV_RECF_BATCH))
            FUZZ_CHECK(r->seq == got.r[i - 1].seq + 1, "batch with a gap in seq at record %zu",
                       i);
        end += r->size;
        max_seq = r->seq > max_seq ? r->seq : max_seq;
    }
    FUZZ_CHECK(got.n == 0 || !(got.r[got.n - 1].flags & KV_RECF_BATCH),
               "delivered a batch without its last entry");
    FUZZ_CHECK(end == res.valid_end && max_seq == res.max_seq, "valid_end %llu, records end %llu",
               (unsigned long long)res.valid_end, (unsigned long long)end);

    model_scan(buf, len, &m);
    same_records(&m.recs, &got, "model vs scanner");
    FUZZ_CHECK(m.valid_end == res.valid_end && m.stopped == res.stopped,
               "model: valid_end %llu stopped %d; scanner: %llu %d (%s)",
               (unsigned long long)m.valid_end, m.stopped, (unsigned long long)res.valid_end,
               res.stopped, res.why);

    scan_as_file(buf, len, &fgot, &fres);
    same_result(&res, &fres, "buffer vs file");
    same_records(&got, &fgot, "buffer vs file");

    rc = scan_buffer(buf, (size_t)res.valid_end, KV_FILE_HDR_SIZE, collect, &pgot, &pres);
    FUZZ_CHECK(rc == 0 && !pres.stopped && pres.valid_end == res.valid_end,
               "the kept prefix does not scan clean: stopped %d at %llu (%s)", pres.stopped,
               (unsigned long long)pres.bad_off, pres.why);
    same_records(&got, &pgot, "whole vs kept prefix");

    free(got.r);
    free(fgot.r);
    free(pgot.r);
    free(m.recs.r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < KV_FILE_HDR_SIZE)
        return 0; /* recovery refuses a file shorter than its header before scanning */
    uint32_t num;
    int too_new;
    (void)file_header_check(data, KV_MAGIC_WAL, &num, &too_new);
    fuzz_check_fixed(data, size, check_image, fuzz_fix_record_file);
    return 0;
}
