/*
 * entry_fuzzer.c — the entry decoder on any byte string.
 *
 * Invariant: entry_parse (engine/format/entry.c), the one decoder of stored records, turns
 * any byte string into a valid entry or a clean error, and
 *   - reads only the bytes it is given (the input is an exact-size heap copy, so one
 *     byte too far is an ASan report), allocates nothing and does not loop: a length
 *     field is never trusted beyond the bytes at hand, so a 4 GiB value length in a
 *     30-byte input is ENTRY_BAD or ENTRY_SHORT at once (make fuzz runs with
 *     -malloc_limit_mb, so an allocation sized by such a field would be reported);
 *   - ENTRY_OK only for an entry the encoder writes: its fields are within the
 *     limits of docs/FORMAT.md, its pointers lie inside the input, and
 *     entry_encode + entry_seal of the decoded fields give back exactly its bytes;
 *   - ENTRY_SHORT only when fewer bytes than the header, or than the size a sane
 *     header announces, are present; ENTRY_BAD always with a reason;
 *   - entry_check_header agrees with entry_parse about the header.
 * Each input is decoded as given and again with its CRC recomputed (fuzz.h), so
 * mutations also reach every check behind the checksum. The first 16 bytes also go
 * through file_header_check with each magic: a header check returns a reason or the
 * number, and a newer version is reported as such only for a header that is
 * otherwise intact.
 *
 * Compression (KV_RECF_LZ4): an ENTRY_OK value with that flag also goes through
 * compress_value_decode, which must give exactly the raw length the value announces
 * (never above KV_MAX_VALUE) or a clean KV_ECORRUPT with a reason, never an
 * overflow (the decoded buffer is an exact-size heap block).
 */
#include "fuzz.h"

#include "format/compress.h"
#include "base/crc.h"
#include "format/entry.h"
#include "store/hint.h"
#include "kv.h"

#include <stdlib.h>
#include <string.h>

/* ENTRY_OK: the fields are sane and re-encode to the very same bytes. */
static void check_ok(const uint8_t *p, size_t avail, const kv_entry *e)
{
    FUZZ_CHECK(e->size >= KV_ENTRY_HDR && e->size <= avail, "size %u of %zu", e->size, avail);
    FUZZ_CHECK(e->size == entry_size(e->klen, e->vlen), "size %u, klen %u, vlen %u", e->size,
               e->klen, e->vlen);
    FUZZ_CHECK(e->type == KV_REC_PUT || e->type == KV_REC_DEL, "type %d", e->type);
    FUZZ_CHECK((e->flags & ~KV_RECF_KNOWN) == 0, "flags 0x%x", (unsigned)e->flags);
    FUZZ_CHECK(e->klen >= 1 && e->klen <= KV_MAX_KEY, "klen %u", e->klen);
    FUZZ_CHECK(e->vlen <= KV_MAX_VALUE, "vlen %u", e->vlen);
    FUZZ_CHECK(e->type == KV_REC_PUT || e->vlen == 0, "delete with a %u-byte value", e->vlen);
    FUZZ_CHECK(e->key == p + KV_ENTRY_HDR && e->val == e->key + e->klen, "pointers");

    uint8_t *again = malloc(e->size);
    FUZZ_CHECK(again != NULL, "out of memory");
    size_t n = entry_encode(again, e->type, e->flags, e->key, e->klen, e->val, e->vlen);
    FUZZ_CHECK(n == e->size, "encoded %zu bytes, decoded %u", n, e->size);
    entry_seal(again, n, e->seq);
    FUZZ_CHECK(memcmp(again, p, n) == 0, "re-encoding the decoded entry gives other bytes");
    free(again);
    if (e->flags & KV_RECF_LZ4) {
        uint8_t *raw = NULL;
        size_t rawlen = 0;
        char why[128] = "";
        int rc = compress_value_decode(e, &raw, &rawlen, why, sizeof why);
        FUZZ_CHECK(rc == KV_OK || rc == KV_ECORRUPT || rc == KV_ENOMEM, "decode returned %d", rc);
        if (rc == KV_OK)
            FUZZ_CHECK(rawlen == compress_raw_len(e) && rawlen <= KV_MAX_VALUE,
                       "decoded %zu bytes, the value announces %u", rawlen, compress_raw_len(e));
        else
            FUZZ_CHECK(why[0] != '\0', "decode failed without a reason");
        free(raw);
    }
}

static void check_parse(const uint8_t *p, size_t avail)
{
    kv_entry e, h;
    char why[128] = "";
    int pr = entry_parse(p, avail, &e, why, sizeof why);
    FUZZ_CHECK(pr == ENTRY_OK || pr == ENTRY_SHORT || pr == ENTRY_BAD, "returned %d", pr);
    if (avail < KV_ENTRY_HDR) {
        FUZZ_CHECK(pr == ENTRY_SHORT, "%zu bytes, less than a header, gave %d", avail, pr);
        return;
    }
    const char *bad = entry_check_header(p, &h);
    if (bad != NULL) {
        FUZZ_CHECK(pr == ENTRY_BAD && strcmp(why, bad) == 0,
                   "header rejected (%s) but entry_parse gave %d (%s)", bad, pr, why);
        return;
    }
    FUZZ_CHECK(h.size == entry_size(h.klen, h.vlen), "header size %u", h.size);
    if (pr == ENTRY_SHORT) {
        FUZZ_CHECK(avail < h.size && e.size == h.size,
                   "ENTRY_SHORT with %zu bytes for a %u-byte entry", avail, h.size);
        return;
    }
    FUZZ_CHECK(avail >= h.size, "%d for %zu bytes of a %u-byte entry", pr, avail, h.size);
    if (pr == ENTRY_BAD) {
        uint32_t stored = kv_get32(p + KV_ENTRY_OFF_CRC);
        FUZZ_CHECK(why[0] != '\0', "ENTRY_BAD without a reason");
        /* Behind a matching CRC only one check remains: a compressed value may not
         * announce a raw length above KV_MAX_VALUE. */
        FUZZ_CHECK(stored != kv_crc32c(p + 4, h.size - 4)
                       || ((h.flags & KV_RECF_LZ4) && h.vlen >= 4
                           && kv_get32(p + KV_ENTRY_HDR + h.klen) > KV_MAX_VALUE),
                   "sane header and a matching CRC, yet ENTRY_BAD: %s", why);
        return;
    }
    check_ok(p, avail, &e);
}

static void check_file_headers(const uint8_t *p, size_t size)
{
    static const char *const magics[] = {KV_MAGIC_SEG, KV_MAGIC_WAL, KV_MAGIC_MANIFEST,
                                         KV_MAGIC_HINT};
    if (size < KV_FILE_HDR_SIZE)
        return;
    for (size_t i = 0; i < sizeof magics / sizeof *magics; i++) {
        uint32_t num = 0;
        int too_new = -1;
        const char *why = file_header_check(p, magics[i], &num, &too_new);
        FUZZ_CHECK(too_new == 0 || too_new == 1, "version_too_new %d", too_new);
        if (why == NULL) {
            FUZZ_CHECK(memcmp(p, magics[i], 4) == 0 && kv_get16(p + 4) >= KV_FORMAT_VERSION_MIN
                           && kv_get16(p + 4) <= KV_FORMAT_VERSION && num == kv_get32(p + 8), "accepted a header that is not one");
            FUZZ_CHECK(kv_get32(p + 12) == kv_crc32c(p, 12), "accepted a bad header CRC");
        } else {
            FUZZ_CHECK(!too_new || (memcmp(p, magics[i], 4) == 0
                                    && kv_get32(p + 12) == kv_crc32c(p, 12)
                                    && kv_get16(p + 4) > KV_FORMAT_VERSION),
                       "\"newer version\" for a header that is damaged");
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    check_parse(copy, size);
    check_file_headers(copy, size);

    /* With its CRC put right, a sane header that fits must decode. */
    kv_entry h;
    if (size >= KV_ENTRY_HDR && entry_check_header(copy, &h) == NULL && h.size <= size) {
        kv_put32(copy + KV_ENTRY_OFF_CRC, kv_crc32c(copy + 4, h.size - 4));
        kv_entry e;
        char why[128];
        int too_big = (h.flags & KV_RECF_LZ4) && h.vlen >= 4
                      && kv_get32(copy + KV_ENTRY_HDR + h.klen) > KV_MAX_VALUE;
        FUZZ_CHECK((entry_parse(copy, size, &e, why, sizeof why) == ENTRY_OK) != too_big,
                   "sane header, right CRC, raw length %s, yet: %s",
                   too_big ? "too big" : "fine", too_big ? "decoded" : why);
        check_parse(copy, size);
        check_parse(copy, h.size); /* exactly the entry's bytes */
    }
    fuzz_fix_file_header(copy, size);
    check_file_headers(copy, size);
    free(copy);
    return 0;
}
