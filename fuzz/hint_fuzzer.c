/*
 * hint_fuzzer.c — the hint-file decoder (engine/store/hint.c, hint_decode) on any image.
 *
 * Invariant: a hint file only ever costs speed (DESIGN.md, invariant 4). On any image
 * hint_decode returns KV_OK or KV_NOTFOUND (with a reason), never reads out of
 * bounds or allocates, and
 *   - KV_NOTFOUND hands no record to the index: a hint is checked whole (header,
 *     CRC, segment size, every record) before the first record is delivered, since
 *     recovery then scans the segment and must not find stale locations left behind;
 *   - KV_OK delivers exactly the trailer's count of records, each sane (type, key
 *     length, size covering the key, inside the segment, after its header), in file
 *     order and tiling the segment from offset 16 to its end, as FORMAT.md says a
 *     hint does ("one record per entry of the segment, in file order"); and
 *     re-encoding them with hint_add gives back the very bytes of the image: nothing
 *     in the file goes unchecked;
 *   - a hint is only accepted for its own segment: another number or another size
 *     is KV_NOTFOUND; an error from the callback stops decoding and is returned.
 * Each input is decoded as given and again with its header and trailer CRCs
 * recomputed (fuzz.h); the segment number and size are taken from the image itself
 * so that mutations get past those checks too.
 */
#include "fuzz.h"

#include "format/entry.h"
#include "store/hint.h"
#include "kv.h"

#include <stdlib.h>
#include <string.h>

typedef struct hint_ctx {
    const uint8_t *buf;  /* the image */
    size_t len;
    uint64_t seg_size;   /* the size hint_decode was given */
    hint_buf again;      /* delivered records, encoded again */
    uint32_t delivered;
    uint64_t next_off;   /* where the next record must start */
    uint32_t fail_at;    /* return KV_ENOMEM for this record (UINT32_MAX: never) */
} hint_ctx;

static int deliver(void *arg, const kv_entry *e, uint64_t off)
{
    hint_ctx *c = arg;
    FUZZ_CHECK(e->type == KV_REC_PUT || e->type == KV_REC_DEL, "type %d", e->type);
    FUZZ_CHECK(e->klen >= 1 && e->size >= KV_ENTRY_HDR + e->klen
                   && e->vlen == e->size - KV_ENTRY_HDR - e->klen,
               "klen %u, size %u, vlen %u", e->klen, e->size, e->vlen);
    FUZZ_CHECK(e->type == KV_REC_PUT || e->vlen == 0, "delete of %u bytes", e->size);
    FUZZ_CHECK(e->vlen <= KV_MAX_VALUE, "vlen %u", e->vlen);
    FUZZ_CHECK(e->key >= c->buf + KV_FILE_HDR_SIZE
                   && e->key + e->klen <= c->buf + c->len - KV_HINT_TRAILER,
               "key outside the records");
    FUZZ_CHECK(off >= KV_FILE_HDR_SIZE && off + e->size <= c->seg_size,
               "entry at %llu of %u bytes in a %llu-byte segment", (unsigned long long)off,
               e->size, (unsigned long long)c->seg_size);
    FUZZ_CHECK(off == c->next_off, "record at %llu, the one before ended at %llu",
               (unsigned long long)off, (unsigned long long)c->next_off);
    if (c->delivered == c->fail_at)
        return KV_ENOMEM;
    hint_add(&c->again, e, off);
    c->delivered++;
    c->next_off = off + e->size;
    return KV_OK;
}

static int decode(const uint8_t *buf, size_t len, uint32_t number, uint64_t seg_size,
                  uint32_t fail_at, hint_ctx *c)
{
    char why[160] = "";
    memset(c, 0, sizeof *c);
    c->buf = buf;
    c->len = len;
    c->seg_size = seg_size;
    c->next_off = KV_FILE_HDR_SIZE;
    c->fail_at = fail_at;
    int rc = hint_decode(buf, len, number, seg_size, deliver, c, why, sizeof why);
    FUZZ_CHECK(rc == KV_OK || rc == KV_NOTFOUND || (rc == KV_ENOMEM && fail_at != UINT32_MAX),
               "hint_decode returned %d", rc);
    if (rc == KV_NOTFOUND) {
        FUZZ_CHECK(why[0] != '\0', "KV_NOTFOUND without a reason");
        FUZZ_CHECK(c->delivered == 0, "rejected (%s) after %u records reached the index", why,
                   c->delivered);
    }
    return rc;
}

static void check_image(const uint8_t *buf, size_t len)
{
    hint_ctx c;
    uint32_t number = len >= KV_FILE_HDR_SIZE ? kv_get32(buf + 8) : 1;
    uint64_t seg_size = len >= KV_FILE_HDR_SIZE + KV_HINT_TRAILER
                            ? kv_get64(buf + len - KV_HINT_TRAILER + 4) : 0;
    int rc = decode(buf, len, number, seg_size, UINT32_MAX, &c);
    if (rc != KV_OK) {
        hint_free(&c.again);
        return;
    }
    uint32_t count = kv_get32(buf + len - KV_HINT_TRAILER);
    FUZZ_CHECK(c.delivered == count, "%u records delivered, the trailer counts %u", c.delivered,
               count);
    FUZZ_CHECK(c.next_off == seg_size, "records end at %llu in a %llu-byte segment",
               (unsigned long long)c.next_off, (unsigned long long)seg_size);
    FUZZ_CHECK(!c.again.failed && KV_FILE_HDR_SIZE + c.again.len + KV_HINT_TRAILER == len
                   && (c.again.len == 0 || memcmp(c.again.buf, buf + KV_FILE_HDR_SIZE,
                                                  c.again.len) == 0),
               "accepted, but re-encoding its %u records gives %zu bytes of other content "
               "(image holds %zu)", count, c.again.len,
               len - KV_FILE_HDR_SIZE - KV_HINT_TRAILER);
    hint_free(&c.again);

    FUZZ_CHECK(decode(buf, len, number + 1, seg_size, UINT32_MAX, &c) == KV_NOTFOUND,
               "accepted for segment %u, its header names %u", number + 1, number);
    hint_free(&c.again);
    FUZZ_CHECK(decode(buf, len, number, seg_size + 1, UINT32_MAX, &c) == KV_NOTFOUND,
               "accepted for a segment of another size");
    hint_free(&c.again);
    if (count > 0) {
        FUZZ_CHECK(decode(buf, len, number, seg_size, count - 1, &c) == KV_ENOMEM,
                   "the callback's error was not returned");
        hint_free(&c.again);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_check_fixed(data, size, check_image, fuzz_fix_hint);
    return 0;
}
