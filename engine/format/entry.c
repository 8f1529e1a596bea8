/*
 * entry.c — the entry codec and file headers.
 *
 * Sections: encoding (writer side), decoding (entry_parse, used by recovery, reads,
 * the WAL reader and the tools), file headers. The CRC covers every byte of the
 * entry after the CRC field, so a damaged length field is caught like damaged data.
 */
#include "format/entry.h"

#include "base/crc.h"
#include "base/kv_int.h"

#include <stdio.h>
#include <string.h>

/* ---- encoding -------------------------------------------------------------------- */

size_t entry_encode(uint8_t *dst, int type, int flags, const void *key, size_t klen,
                    const void *val, size_t vlen)
{
    kv_put32(dst + KV_ENTRY_OFF_CRC, 0);
    kv_put64(dst + KV_ENTRY_OFF_SEQ, 0);
    dst[KV_ENTRY_OFF_TYPE] = (uint8_t)type;
    dst[KV_ENTRY_OFF_FLAGS] = (uint8_t)flags;
    kv_put16(dst + KV_ENTRY_OFF_KLEN, (uint16_t)klen);
    kv_put32(dst + KV_ENTRY_OFF_VLEN, (uint32_t)vlen);
    memcpy(dst + KV_ENTRY_HDR, key, klen);
    if (vlen > 0)
        memcpy(dst + KV_ENTRY_HDR + klen, val, vlen);
#ifdef KV_DEBUG
    kv_entry e; /* the caller checked the arguments: the header must decode back */
    KV_ASSERT(entry_check_header(dst, &e) == NULL && e.size == entry_size(klen, vlen));
#endif
    return entry_size(klen, vlen);
}

void entry_seal(uint8_t *p, size_t size, uint64_t seq)
{
    kv_put64(p + KV_ENTRY_OFF_SEQ, seq);
    kv_put32(p + KV_ENTRY_OFF_CRC, kv_crc32c(p + 4, size - 4));
}

/* ---- decoding -------------------------------------------------------------------- */

const char *entry_check_header(const uint8_t *p, kv_entry *e)
{
    e->seq = kv_get64(p + KV_ENTRY_OFF_SEQ);
    e->type = p[KV_ENTRY_OFF_TYPE];
    e->flags = p[KV_ENTRY_OFF_FLAGS];
    e->klen = kv_get16(p + KV_ENTRY_OFF_KLEN);
    e->vlen = kv_get32(p + KV_ENTRY_OFF_VLEN);
    e->size = 0;
    if (e->type != KV_REC_PUT && e->type != KV_REC_DEL)
        return "unknown entry type";
    if (e->flags & ~KV_RECF_KNOWN)
        return "unknown entry flags";
    if ((e->flags & KV_RECF_LZ4) && e->type != KV_REC_PUT)
        return "LZ4 flag on a delete entry";
    if ((e->flags & KV_RECF_LZ4) && e->vlen <= KV_LZ4_RAW_LEN)
        return "LZ4 value too short for its raw length and a block";
    if (e->klen == 0)
        return "empty key";
    if (e->vlen > KV_MAX_VALUE)
        return "value length above the 64 MiB limit";
    if (e->type == KV_REC_DEL && e->vlen != 0)
        return "delete entry with a value";
    e->size = (uint32_t)entry_size(e->klen, e->vlen);
    return NULL;
}

int entry_parse(const uint8_t *p, size_t avail, kv_entry *e, char *why_buf, size_t why_len)
{
    const char *why;
    uint32_t stored, computed;

    e->size = 0;
    if (avail < KV_ENTRY_HDR)
        return ENTRY_SHORT;
    why = entry_check_header(p, e);
    if (why != NULL) {
        snprintf(why_buf, why_len, "%s", why);
        return ENTRY_BAD;
    }
    if (avail < e->size)
        return ENTRY_SHORT;
    stored = kv_get32(p + KV_ENTRY_OFF_CRC);
    computed = kv_crc32c(p + 4, e->size - 4);
    if (stored != computed) {
        snprintf(why_buf, why_len, "checksum mismatch (stored 0x%08x, computed 0x%08x)",
                 stored, computed);
        return ENTRY_BAD;
    }
    e->key = p + KV_ENTRY_HDR;
    e->val = p + KV_ENTRY_HDR + e->klen;
    if ((e->flags & KV_RECF_LZ4) && kv_get32(e->val) > KV_MAX_VALUE) {
        snprintf(why_buf, why_len, "LZ4 value: raw length %u is above the 64 MiB limit",
                 kv_get32(e->val));
        return ENTRY_BAD;
    }
    return ENTRY_OK;
}

/* ---- the writer's own checks (KV_ASSERT) ------------------------------------------ */

int entry_check_encoded(const uint8_t *buf, size_t len, uint32_t nent)
{
    size_t pos = 0;
    for (uint32_t i = 0; i < nent; i++) {
        kv_entry e;
        if (len - pos < KV_ENTRY_HDR || entry_check_header(buf + pos, &e) != NULL
            || e.size > len - pos)
            return 0;
        if ((e.flags & KV_RECF_LZ4) && kv_get32(buf + pos + KV_ENTRY_HDR + e.klen) > KV_MAX_VALUE)
            return 0;
        if (!(e.flags & KV_RECF_BATCH) != (i == nent - 1))
            return 0; /* every entry but the last says "more of this batch follows" */
        pos += e.size;
    }
    return nent > 0 && pos == len;
}

int entry_check_sealed(const uint8_t *buf, size_t len, uint32_t nent, uint64_t first_seq)
{
    size_t pos = 0;
    char why[128];
    for (uint32_t i = 0; i < nent; i++) {
        kv_entry e;
        if (entry_parse(buf + pos, len - pos, &e, why, sizeof why) != ENTRY_OK
            || e.seq != first_seq + i)
            return 0;
        pos += e.size;
    }
    return pos == len;
}

/* ---- file headers ---------------------------------------------------------------- */

void file_header_encode(uint8_t *dst, const char *magic, uint32_t number)
{
    memcpy(dst, magic, 4);
    kv_put16(dst + 4, KV_FORMAT_VERSION);
    kv_put16(dst + 6, 0);
    kv_put32(dst + 8, number);
    kv_put32(dst + 12, kv_crc32c(dst, 12));
}

const char *file_header_check(const uint8_t *p, const char *magic, uint32_t *number,
                              int *version_too_new)
{
    *version_too_new = 0;
    if (memcmp(p, magic, 4) != 0)
        return "bad magic (not a kv file of this kind)";
    if (kv_get32(p + 12) != kv_crc32c(p, 12))
        return "file header checksum mismatch";
    if (kv_get16(p + 4) < KV_FORMAT_VERSION_MIN || kv_get16(p + 4) > KV_FORMAT_VERSION) {
        *version_too_new = kv_get16(p + 4) > KV_FORMAT_VERSION;
        return "unsupported format version";
    }
    if (kv_get16(p + 6) != 0)
        return "unknown file header flags";
    *number = kv_get32(p + 8);
    return NULL;
}
