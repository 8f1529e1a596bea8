/*
 * creq_fuzzer.c — the compaction request and result parsers (engine/format/creq.c) on
 * any bytes: a writer reads COMPACT.req from a directory anyone may write to, and
 * kvcompact reads COMPACT.res.
 *
 * Invariants:
 *   - creq_request_parse returns 0 or -1; on 0 the request is one a kvcompact could
 *     have written: a valid id (creq_id_valid), a ratio of at most 1,000,000 parts
 *     per million, an input of at most CREQ_REQ_MAX bytes; and encoding it again
 *     and parsing that gives the same request (no field is accepted unchecked);
 *   - creq_results_parse returns -1 or 0..max; every record it returns has a valid
 *     id, a known state, a NUL-terminated message within CREQ_MSG_MAX, and encodes
 *     to a line that parses back to the same record;
 *   - neither reads past the n bytes given (the input is an exact-size heap copy,
 *     not NUL-terminated) nor allocates.
 * Each input is parsed as given and again with every line's CRC recomputed, so
 * mutations reach the checks behind the checksums.
 */
#include "fuzz.h"

#include "base/crc.h"
#include "format/creq.h"

#include <stdio.h>
#include <string.h>

static int same_result(const creq_result *a, const creq_result *b)
{
    return strcmp(a->id, b->id) == 0 && a->state == b->state && a->status == b->status
           && a->pid == b->pid && a->pass == b->pass && a->read == b->read && a->total == b->total
           && a->disk_before == b->disk_before && a->disk_after == b->disk_after
           && a->passes == b->passes && a->dropped == b->dropped && a->tombs == b->tombs
           && a->bytes_read == b->bytes_read && a->bytes_written == b->bytes_written
           && a->us == b->us && strcmp(a->msg, b->msg) == 0;
}

static void check_request(const char *buf, size_t n)
{
    creq_request r, again;
    char enc[CREQ_REQ_MAX + 1];
    int rc = creq_request_parse(buf, n, &r);
    FUZZ_CHECK(rc == 0 || rc == -1, "creq_request_parse returned %d", rc);
    if (rc != 0)
        return;
    FUZZ_CHECK(n <= CREQ_REQ_MAX, "a request of %zu bytes accepted", n);
    FUZZ_CHECK(creq_id_valid(r.id), "accepted id \"%.80s\"", r.id);
    FUZZ_CHECK(r.ratio_ppm <= 1000000u, "ratio %u ppm", r.ratio_ppm);
    size_t len = creq_request_encode(&r, enc, sizeof enc);
    FUZZ_CHECK(len > 0, "an accepted request does not encode");
    FUZZ_CHECK(creq_request_parse(enc, len, &again) == 0, "its encoding is refused");
    FUZZ_CHECK(strcmp(again.id, r.id) == 0 && again.pid == r.pid && again.ratio_ppm == r.ratio_ppm,
               "encoding and parsing again changed the request");
}

static void check_results(const char *buf, size_t n)
{
    creq_result res[CREQ_KEEP + 1], back;
    char line[CREQ_RES_MAX];
    int got = creq_results_parse(buf, n, res, CREQ_KEEP + 1);
    FUZZ_CHECK(got >= -1 && got <= CREQ_KEEP + 1, "creq_results_parse returned %d", got);
    for (int i = 0; i < got; i++) {
        const creq_result *r = &res[i];
        FUZZ_CHECK(creq_id_valid(r->id), "result %d: id \"%.80s\"", i, r->id);
        FUZZ_CHECK(r->state == CREQ_RUNNING || r->state == CREQ_DONE || r->state == CREQ_STOPPED,
                   "result %d: state %d", i, r->state);
        FUZZ_CHECK(memchr(r->msg, '\0', sizeof r->msg) != NULL, "result %d: message not ended", i);
        int hdr = snprintf(line, sizeof line, "%s\n", CREQ_MAGIC_RES);
        size_t len = creq_result_encode(r, line + hdr, sizeof line - (size_t)hdr);
        FUZZ_CHECK(len > 0, "result %d does not encode", i);
        FUZZ_CHECK(creq_results_parse(line, (size_t)hdr + len, &back, 1) == 1 && same_result(r, &back),
                   "result %d: encoding and parsing again changed it", i);
    }
}

static void check_image(const uint8_t *data, size_t size)
{
    check_request((const char *)data, size);
    check_results((const char *)data, size);
}

/* Recomputes the CRC of every line that starts "crc=XXXXXXXX ". */
static void fix_lines(uint8_t *p, size_t len)
{
    size_t at = 0;
    while (at < len) {
        uint8_t *nl = memchr(p + at, '\n', len - at);
        size_t end = nl != NULL ? (size_t)(nl - p) : len;
        if (end - at >= 13 && memcmp(p + at, "crc=", 4) == 0 && p[at + 12] == ' ') {
            char hex[9];
            snprintf(hex, sizeof hex, "%08x",
                     (unsigned)kv_crc32c(p + at + 13, end - at - 13));
            memcpy(p + at + 4, hex, 8);
        }
        at = end + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_check_fixed(data, size, check_image, fix_lines);
    return 0;
}
