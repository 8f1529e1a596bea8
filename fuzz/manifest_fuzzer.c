/*
 * manifest_fuzzer.c — the MANIFEST decoder (engine/store/manifest.c) on any image.
 *
 * Invariant: manifest_decode, the one decoder manifest_load uses, turns any image
 * into a valid segment list or a clean error:
 *   - it returns KV_OK, KV_ECORRUPT, or KV_EVERSION (the latter only for a header
 *     that is intact but of a newer version); an error names the MANIFEST in
 *     kv_errmsg and leaves nothing allocated;
 *   - it reads only the image and allocates in proportion to it, never by a count
 *     field the file size does not back (n segments need exactly 36 + 16n bytes);
 *   - KV_OK only for a list kv could have written (FORMAT.md): sealed numbers
 *     strictly ascending, below next_file and never the active one (compaction outputs
 *     are numbered after it), flags 0, an active segment and
 *     a next file number above it; and manifest_encode of what was decoded gives
 *     back the very bytes of the image: no byte is accepted unchecked.
 * Each input is decoded as given and again with its header and body CRCs recomputed
 * (fuzz.h), so mutations get past the checksums to the checks behind them.
 */
#include "fuzz.h"

#include "base/crc.h"
#include "format/entry.h"
#include "kv.h"
#include "store/manifest.h"

#include <stdlib.h>
#include <string.h>

static void check_image(const uint8_t *buf, size_t len)
{
    kv_manifest m;
    int rc = manifest_decode(buf, len, &m);
    FUZZ_CHECK(rc == KV_OK || rc == KV_ECORRUPT || rc == KV_EVERSION, "returned %d", rc);
    if (rc != KV_OK) {
        FUZZ_CHECK(m.sealed == NULL && m.nsealed == 0, "an error left a segment list behind");
        FUZZ_CHECK(strncmp(kv_errmsg(), "MANIFEST", 8) == 0, "message \"%s\"", kv_errmsg());
        if (rc == KV_EVERSION)
            FUZZ_CHECK(len >= KV_FILE_HDR_SIZE && memcmp(buf, KV_MAGIC_MANIFEST, 4) == 0
                           && kv_get32(buf + 12) == kv_crc32c(buf, 12)
                           && kv_get16(buf + 4) > KV_FORMAT_VERSION,
                       "KV_EVERSION for a header that is not intact and newer");
        return;
    }
    size_t want = KV_FILE_HDR_SIZE + KV_MANIFEST_FIXED + (size_t)m.nsealed * KV_MANIFEST_SEG + 4;
    FUZZ_CHECK(len == want, "%u segments in %zu bytes", m.nsealed, len);
    FUZZ_CHECK(m.active != 0 && m.next_file > m.active, "active %u, next %u", m.active,
               m.next_file);
    for (uint32_t i = 0; i < m.nsealed; i++) {
        FUZZ_CHECK(m.sealed[i].number != m.active && m.sealed[i].number < m.next_file
                       && m.sealed[i].flags == 0,
                   "segment %u: number %u (active %u), flags %u", i, m.sealed[i].number,
                   m.active, m.sealed[i].flags);
        FUZZ_CHECK(i == 0 || m.sealed[i].number > m.sealed[i - 1].number,
                   "segment %u out of order", i);
    }
    size_t n;
    uint8_t *again = manifest_encode(&m, &n);
    FUZZ_CHECK(again != NULL, "out of memory");
    /* An older version's MANIFEST is written again as the current version: the
     * header's version and CRC differ, and nothing else. */
    int older = kv_get16(buf + 4) < KV_FORMAT_VERSION;
    FUZZ_CHECK(n == len && (older ? memcmp(again, buf, 4) == 0 && memcmp(again + 6, buf + 6, 6) == 0
                                        && memcmp(again + 16, buf + 16, len - 16) == 0
                                  : memcmp(again, buf, len) == 0),
               "accepted, but encoding what was decoded gives other bytes (%zu vs %zu)", n, len);
    free(again);
    manifest_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_check_fixed(data, size, check_image, fuzz_fix_manifest);
    return 0;
}
