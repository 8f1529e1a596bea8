/*
 * hint.h — hint files: the index of a sealed segment without its values.
 *
 * For every entry of segment NNNNNN.seg, NNNNNN.hint holds its sequence number,
 * offset, size, type and key, so kv_open can index the segment without reading it.
 * The whole file is checksummed and is read whole: a hint that is missing, short,
 * damaged or describes a segment of another size is never an error, only slower —
 * the segment is scanned instead and its hint written again. Hints are written with
 * invariant 5: NNNNNN.hint.tmp, fdatasync, rename (the MANIFEST's directory fsync
 * that follows makes the name durable).
 *
 *   header (16 bytes, magic "KVHT", number = the segment's number)
 *   records: u64 seq, u32 offset, u32 size, u8 type, u16 klen, key
 *   trailer: u32 record count, u64 segment size, u32 CRC-32C of bytes 16..here
 */
#ifndef KV_HINT_H
#define KV_HINT_H

#include "format/entry.h"
#include "io/io.h"

#include <stddef.h>
#include <stdint.h>

#define KV_MAGIC_HINT "KVHT"
#define KV_HINT_REC 19     /* fixed part of a hint record */
#define KV_HINT_TRAILER 16

typedef struct hint_buf {
    uint8_t *buf;   /* records, encoded */
    size_t len, cap;
    uint32_t count;
    int failed;     /* out of memory once: no hint for this segment */
} hint_buf;

/* Adds the record of entry e found at off. Out of memory only drops the hint. */
void hint_add(hint_buf *h, const kv_entry *e, uint64_t off);
void hint_free(hint_buf *h);

/* Writes NNNNNN.hint for segment `number` of seg_size bytes. Returns KV_OK or an
 * error (the caller may go on without the hint); KV_ECORRUPT, writing nothing, when
 * NNNNNN.hint or NNNNNN.hint.tmp exists and is not a regular file (not kv's: left
 * as it is). */
int hint_write(kv_io *io, int dirfd, uint32_t number, const hint_buf *h, uint64_t seg_size);

/* Reads and checks NNNNNN.hint and calls fn for each record, with e->key, klen,
 * seq, type and size filled (no value). The file is read into rb, which grows as
 * needed and is reused from one hint to the next (free(rb->p) when done; start
 * from {0}). Returns KV_OK, or KV_NOTFOUND when the hint cannot be used (missing,
 * damaged, another size, no memory: *why says which); fn's error. */
typedef int (*hint_fn)(void *arg, const kv_entry *e, uint64_t off);
typedef struct hint_rbuf {
    uint8_t *p;
    size_t cap;
} hint_rbuf;
int hint_load(kv_io *io, int dirfd, uint32_t number, uint64_t seg_size, hint_rbuf *rb, hint_fn fn,
              void *arg, char *why, size_t why_len);

/* Calls fn for each record of a hint being built (h describes segment `number` of
 * seg_size bytes). KV_NOTFOUND when h failed (out of memory), KV_ECORRUPT should a
 * record not fit (a bug), or fn's error. */
int hint_buf_walk(const hint_buf *h, uint32_t number, uint64_t seg_size, hint_fn fn, void *arg);

/* Checks a hint image in memory (the fuzzer's entry point); same returns. */
int hint_decode(const uint8_t *buf, size_t len, uint32_t number, uint64_t seg_size, hint_fn fn,
                void *arg, char *why, size_t why_len);
/* hint_decode for the tools: the same checks, and on a refusal *bad_off (when not
 * NULL) gets the offset in the hint file of the check that failed (0 magic or a
 * short file, 8 number, end-4 checksum, end-12 segment size, a record's first byte,
 * end-16 records that do not cover the segment). Returns KV_EVERSION where
 * hint_decode returns KV_NOTFOUND for a header of a newer format version. */
int hint_check(const uint8_t *buf, size_t len, uint32_t number, uint64_t seg_size, hint_fn fn,
               void *arg, char *why, size_t why_len, uint64_t *bad_off);
/* Reads hint file `name` (relative to dirfd; a path with AT_FDCWD) whole into a new
 * buffer (*buf of *len bytes, which the caller frees), opened by io_open_regular.
 * Returns KV_OK; KV_NOTFOUND (missing, or larger than any hint), KV_ECORRUPT (not a
 * regular file) or KV_EIO (unreadable, or out of memory), with *why naming the file;
 * *buf is then NULL. */
int hint_read(kv_io *io, int dirfd, const char *name, uint8_t **buf, size_t *len, char *why,
              size_t why_len);

#endif
