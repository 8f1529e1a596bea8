/*
 * compress.h — LZ4 value compression (kv_options.compression = KV_COMPRESS_LZ4).
 *
 * A put whose value is at least compress_min_bytes long is compressed into one LZ4
 * block (lz4's block format, the system liblz4) on the writer's own thread, before it
 * joins the group-commit queue, and is stored compressed only when that saves at
 * least one byte. A compressed value is stored as
 *
 *     u32 raw length (little-endian) | LZ4 block
 *
 * and its entry carries KV_RECF_LZ4; the entry's vlen is the stored length (4 + the
 * block), so the CRC, the scanner, hints and compaction deal in stored bytes and
 * never look inside. The same encoded entry goes to the WAL and to the segment.
 *
 * Reading checks the CRC first (entry_parse), then compress_value_decode
 * decompresses into a buffer of exactly the raw length: a raw length above
 * KV_MAX_VALUE, or a block that does not decode to exactly that many bytes, is
 * damage, never an overflow.
 */
#ifndef KV_COMPRESS_H
#define KV_COMPRESS_H

#include "format/entry.h"

#include <stddef.h>
#include <stdint.h>

/* Encodes an entry like entry_encode (no sequence number or CRC yet). A put value of
 * at least min_bytes is LZ4-compressed, and kept compressed when 4 + the block is
 * shorter than the value; the entry then has KV_RECF_LZ4. dst has room for
 * entry_size(klen, vlen) bytes (a compressed entry is always shorter). Returns the
 * entry's size. */
size_t compress_entry_encode(uint8_t *dst, int type, int flags, const void *key, size_t klen,
                             const void *val, size_t vlen, size_t min_bytes);

/* Encodes the unsealed entries src[0..len) (a kv_batch's buffer, none compressed)
 * again into dst, which has room for len bytes, compressing values as
 * compress_entry_encode does. Returns the new length; *last_off gets the offset of
 * the last entry in dst. */
size_t compress_entries(uint8_t *dst, const uint8_t *src, size_t len, size_t min_bytes,
                        size_t *last_off);

/* The raw (uncompressed) length of a parsed entry's value. */
static inline uint32_t compress_raw_len(const kv_entry *e)
{
    return (e->flags & KV_RECF_LZ4) ? kv_get32(e->val) : e->vlen;
}

/* Decompresses the value of a parsed, CRC-checked entry with KV_RECF_LZ4 into a new
 * malloc'd buffer of exactly its raw length (1 byte allocated for an empty value).
 * Returns KV_OK with *out and *outlen; KV_ENOMEM; or KV_ECORRUPT with *why naming the
 * check that failed (raw length above KV_MAX_VALUE, malformed block, wrong decoded
 * length). Records no error message itself: the caller names the file and offset. */
int compress_value_decode(const kv_entry *e, uint8_t **out, size_t *outlen, char *why,
                          size_t why_len);

#endif
