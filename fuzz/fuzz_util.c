/*
 * fuzz_util.c — the helpers declared in fuzz.h: failure reports, checksum repair,
 * the structured-input reader.
 *
 * Checksum repair follows docs/FORMAT.md byte for byte and uses the engine's own
 * header checks (entry_check_header) to decide how far an image can be walked, so a
 * repaired image differs from the input only in CRC fields.
 */
#include "fuzz.h"

#include "base/crc.h"
#include "format/entry.h"
#include "store/hint.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- failures ---------------------------------------------------------------------- */

void fuzz_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%d: invariant broken: %s: ", file, line, expr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* ---- checksum repair --------------------------------------------------------------- */

void fuzz_fix_file_header(uint8_t *p, size_t len)
{
    if (len >= KV_FILE_HDR_SIZE)
        kv_put32(p + 12, kv_crc32c(p, 12));
}

size_t fuzz_fix_entries(uint8_t *p, size_t len, size_t off)
{
    while (off < len && len - off >= KV_ENTRY_HDR) {
        kv_entry e;
        if (entry_check_header(p + off, &e) != NULL || e.size > len - off)
            break;
        kv_put32(p + off + KV_ENTRY_OFF_CRC, kv_crc32c(p + off + 4, e.size - 4));
        off += e.size;
    }
    return off;
}

void fuzz_fix_record_file(uint8_t *p, size_t len)
{
    fuzz_fix_file_header(p, len);
    if (len > KV_FILE_HDR_SIZE)
        fuzz_fix_entries(p, len, KV_FILE_HDR_SIZE);
}

void fuzz_fix_manifest(uint8_t *p, size_t len)
{
    fuzz_fix_file_header(p, len);
    if (len < KV_FILE_HDR_SIZE + KV_MANIFEST_FIXED + 4)
        return;
    uint64_t n = kv_get32(p + KV_FILE_HDR_SIZE);
    if (KV_FILE_HDR_SIZE + KV_MANIFEST_FIXED + n * KV_MANIFEST_SEG + 4 != len)
        return;
    kv_put32(p + len - 4, kv_crc32c(p + KV_FILE_HDR_SIZE, len - 4 - KV_FILE_HDR_SIZE));
}

void fuzz_fix_hint(uint8_t *p, size_t len)
{
    fuzz_fix_file_header(p, len);
    if (len < KV_FILE_HDR_SIZE + KV_HINT_TRAILER)
        return;
    kv_put32(p + len - 4, kv_crc32c(p + KV_FILE_HDR_SIZE, len - KV_FILE_HDR_SIZE - 4));
}

/* ---- structured input -------------------------------------------------------------- */

static uint64_t take_le(fuzz_reader *r, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n && r->left > 0; i++) {
        v |= (uint64_t)r->p[0] << (8 * i);
        r->p++;
        r->left--;
    }
    return v;
}

uint8_t fuzz_u8(fuzz_reader *r) { return (uint8_t)take_le(r, 1); }
uint16_t fuzz_u16(fuzz_reader *r) { return (uint16_t)take_le(r, 2); }
uint32_t fuzz_u32(fuzz_reader *r) { return (uint32_t)take_le(r, 4); }
uint64_t fuzz_u64(fuzz_reader *r) { return take_le(r, 8); }

const uint8_t *fuzz_bytes(fuzz_reader *r, size_t n, size_t *got)
{
    const uint8_t *p = r->p;
    *got = n < r->left ? n : r->left;
    r->p += *got;
    r->left -= *got;
    return p;
}

void fuzz_check_fixed(const uint8_t *data, size_t size, void (*check)(const uint8_t *, size_t),
                      void (*fix)(uint8_t *, size_t))
{
    uint8_t *copy = malloc(size ? size : 1);
    if (copy == NULL)
        return;
    memcpy(copy, data, size);
    check(copy, size);
    fix(copy, size);
    if (memcmp(copy, data, size) != 0)
        check(copy, size);
    free(copy);
}
