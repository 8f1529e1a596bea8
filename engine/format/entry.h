/*
 * entry.h — encoding and decoding of entries and file headers (layouts in format.h).
 *
 * entry_parse is the single decoder of stored records: it never reads past the bytes
 * it is given and trusts no length before checking it against them.
 */
#ifndef KV_ENTRY_H
#define KV_ENTRY_H

#include "format/format.h"

#include <stddef.h>
#include <stdint.h>

typedef struct kv_entry {
    uint64_t seq;       /* sequence number */
    int type;           /* KV_REC_PUT or KV_REC_DEL */
    int flags;          /* KV_RECF_* */
    const uint8_t *key; /* points into the parsed buffer */
    uint32_t klen;
    const uint8_t *val; /* stored value bytes (compressed if KV_RECF_LZ4) */
    uint32_t vlen;
    uint32_t size;      /* whole entry: KV_ENTRY_HDR + klen + vlen */
} kv_entry;

enum { ENTRY_OK = 0, ENTRY_SHORT = 1, ENTRY_BAD = 2 };

/* Size of an entry with these lengths. */
static inline size_t entry_size(size_t klen, size_t vlen) { return KV_ENTRY_HDR + klen + vlen; }

/* Writes an entry without sequence number and CRC (entry_seal adds them) into dst,
 * which has room for entry_size(klen, vlen) bytes. Returns that size. */
size_t entry_encode(uint8_t *dst, int type, int flags, const void *key, size_t klen,
                    const void *val, size_t vlen);

/* Stores seq and computes the CRC of an encoded entry of total size `size`. */
void entry_seal(uint8_t *p, size_t size, uint64_t seq);

/* Checks a header's fixed fields; returns NULL when sane, else why not. Fills
 * e->size and the lengths. Needs KV_ENTRY_HDR readable bytes. */
const char *entry_check_header(const uint8_t *p, kv_entry *e);

/* Parses the entry at p with `avail` readable bytes.
 *   ENTRY_OK    e is filled (pointers into p), e->size bytes make the entry;
 *   ENTRY_SHORT fewer bytes than the header or than e->size (e->size set when the
 *               header was sane), so the caller may read more;
 *   ENTRY_BAD   not a valid entry: *why says which check failed (checksum message
 *               written into why_buf of why_len bytes). */
int entry_parse(const uint8_t *p, size_t avail, kv_entry *e, char *why_buf, size_t why_len);

/* The writer's checks of its own work, for KV_ASSERT (kv_int.h): 1 when buf's len
 * bytes are exactly nent entries whose headers are sane, every entry but the last
 * flagged KV_RECF_BATCH (encoded, not yet sealed); entry_check_sealed: 1 when they
 * are exactly nent entries that parse (CRC included) with sequence numbers
 * first_seq, first_seq + 1, ... */
int entry_check_encoded(const uint8_t *buf, size_t len, uint32_t nent);
int entry_check_sealed(const uint8_t *buf, size_t len, uint32_t nent, uint64_t first_seq);

/* File headers. */
void file_header_encode(uint8_t *dst, const char *magic, uint32_t number);
/* Returns NULL when the header has this magic and version; else why not.
 * *version_too_new is set when only the version is unknown and newer. */
const char *file_header_check(const uint8_t *p, const char *magic, uint32_t *number,
                              int *version_too_new);

#endif
