/*
 * format.h — the on-disk layouts of kv, shared by every writer and reader.
 *
 * docs/FORMAT.md is the prose spec with byte tables; this header is the same thing
 * as constants. All integers are little-endian. Every file starts with a 16-byte
 * file header; segments and WAL files then hold a sequence of entries in one
 * encoding, so one decoder (entry_parse) serves both and is the one that is fuzzed.
 *
 *   file header (16 bytes)
 *     0  magic[4]   "KVSG" segment, "KVWL" WAL, "KVMF" MANIFEST
 *     4  u16        format version (KV_FORMAT_VERSION)
 *     6  u16        flags, 0
 *     8  u32        file number (segment/WAL) or generation (MANIFEST)
 *     12 u32        CRC32C of bytes 0..11
 *
 *   entry (20-byte header, then key, then value)
 *     0  u32  CRC32C of bytes 4..end of entry
 *     4  u64  sequence number
 *     12 u8   type: 1 put, 2 delete
 *     13 u8   flags: 0x01 batch (more entries of this batch follow), 0x02 LZ4 value,
 *             0x04 fence (WAL: every byte before this entry was durable when it was
 *             written; see KV_RECF_FENCE)
 *     14 u16  key length, 1..65535
 *     16 u32  stored value length (0 for a delete)
 *     20      key, then value (with flag 0x02: u32 raw length, then an LZ4 block)
 */
#ifndef KV_FORMAT_H
#define KV_FORMAT_H

#include <stdint.h>
#include <string.h>

/* Files are written with KV_FORMAT_VERSION and read from KV_FORMAT_VERSION_MIN up.
 * Version 2 added the fence flag: a version-1 library would take a fenced entry for
 * damage (unknown flag), so it must refuse the file by its version instead. */
#define KV_FORMAT_VERSION 2
#define KV_FORMAT_VERSION_MIN 1

#define KV_FILE_HDR_SIZE 16
#define KV_MAGIC_SEG "KVSG"
#define KV_MAGIC_WAL "KVWL"
#define KV_MAGIC_MANIFEST "KVMF"

#define KV_ENTRY_HDR 20
#define KV_ENTRY_OFF_CRC 0
#define KV_ENTRY_OFF_SEQ 4
#define KV_ENTRY_OFF_TYPE 12
#define KV_ENTRY_OFF_FLAGS 13
#define KV_ENTRY_OFF_KLEN 14
#define KV_ENTRY_OFF_VLEN 16

#define KV_REC_PUT 1
#define KV_REC_DEL 2

#define KV_RECF_BATCH 0x01 /* another entry of the same batch follows this one */
#define KV_RECF_LZ4 0x02   /* value is [u32 raw length][LZ4 block] (compress.h) */
/* The first entry of a WAL group written when every earlier byte of the WAL file had
 * been made durable (fdatasync) is a fence. Recovery uses it to tell a torn tail from
 * damage: bytes before a fence were durable, so damage followed by a whole entry that
 * continues the sequence and is a fence is damage to durable data (KV_ECORRUPT),
 * never a crash artefact to cut. The group-commit leader sets it; seal_req clears it
 * on every entry it seals. Segments hold the same bytes, where it means nothing. */
#define KV_RECF_FENCE 0x04
#define KV_RECF_KNOWN (KV_RECF_BATCH | KV_RECF_LZ4 | KV_RECF_FENCE)

/* An LZ4 value (puts only): u32 raw length (0..KV_MAX_VALUE), then one LZ4 block
 * (lz4 block format) that decodes to exactly that many bytes. The entry's vlen is
 * the stored length, 4 + the block (at least 1 byte), and is below the raw length:
 * a writer stores a value compressed only when that saves space. */
#define KV_LZ4_RAW_LEN 4

/* MANIFEST body after the file header: u32 nsealed, u32 active, u32 next_file,
 * u32 reserved, then nsealed x {u32 number, u32 flags, u64 size}, then u32 CRC32C of
 * the body (from byte 16 up to the CRC). */
#define KV_MANIFEST_FIXED 16
#define KV_MANIFEST_SEG 16

/* ---- little-endian helpers ---- */
static inline void kv_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void kv_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void kv_put64(uint8_t *p, uint64_t v)
{
    kv_put32(p, (uint32_t)v);
    kv_put32(p + 4, (uint32_t)(v >> 32));
}
/* The value of hexadecimal digit c (either case), or -1: the one parser of the hex
 * that kvdump's dumps and the compaction request files carry. */
static inline int kv_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
static inline uint16_t kv_get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t kv_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t kv_get64(const uint8_t *p)
{
    return (uint64_t)kv_get32(p) | ((uint64_t)kv_get32(p + 4) << 32);
}

/* Compaction requested from another process (docs/MULTIPROCESS.md, "Compaction from
 * another process"): kvcompact leaves a request, the writer that holds the store
 * answers it with a result. Each is written as its .tmp and renamed into place. */
#define KV_COMPACT_REQ "COMPACT.req"
#define KV_COMPACT_REQ_TMP "COMPACT.req.tmp"
#define KV_COMPACT_RES "COMPACT.res"
#define KV_COMPACT_RES_TMP "COMPACT.res.tmp"

#endif
