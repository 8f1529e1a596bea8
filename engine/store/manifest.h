/*
 * manifest.h — the MANIFEST: which segments make up the store.
 *
 * It lists the sealed segments (number and exact size), the active segment (whose
 * WAL file has the same number) and the next file number. It is replaced whole and
 * atomically (MANIFEST.tmp written, fdatasynced, renamed over MANIFEST, directory
 * fsynced), so a crash leaves the old or the new list, never a mix. Segment or WAL
 * files it does not name are leftovers of an interrupted step; the writer removes them.
 */
#ifndef KV_MANIFEST_H
#define KV_MANIFEST_H

#include "io/io.h"

#include <stddef.h>
#include <stdint.h>

#define KV_MANIFEST_NAME "MANIFEST"
#define KV_MANIFEST_TMP "MANIFEST.tmp"

typedef struct kv_manifest_seg {
    uint32_t number; /* segment file number */
    uint32_t flags;  /* 0 */
    uint64_t size;   /* exact size of the sealed file */
} kv_manifest_seg;

typedef struct kv_manifest {
    uint32_t generation;  /* incremented by every write */
    uint32_t active;      /* number of the active segment and WAL */
    uint32_t next_file;   /* next unused file number */
    uint32_t nsealed;
    kv_manifest_seg *sealed; /* sorted by number */
} kv_manifest;

/* Reads and checks MANIFEST. Returns KV_OK, KV_NOTFOUND (no MANIFEST), KV_ECORRUPT /
 * KV_EVERSION (naming offset and check), KV_EIO, KV_ENOMEM. */
int manifest_load(kv_io *io, int dirfd, kv_manifest *m);
/* Reads file `name` (relative to dirfd) whole, as manifest_load does, into a new
 * buffer (*buf of *len bytes; the caller frees), opened by io_open_regular.
 * Returns KV_OK, KV_NOTFOUND (no such file), KV_ECORRUPT (not a regular file, or
 * larger than any MANIFEST), KV_EIO, KV_ENOMEM. */
int manifest_read(kv_io *io, int dirfd, const char *name, uint8_t **buf, size_t *len);
/* Writes m atomically (generation is incremented first). *renamed (when not NULL)
 * tells a failure before the rename (the old MANIFEST stands) from one after it
 * (the directory fsync failed: which one a crash leaves is unknown). A MANIFEST.tmp
 * that is not a regular file (a FIFO, a symbolic link...) is not kv's: KV_ECORRUPT,
 * and it is left as it is. */
int manifest_store(kv_io *io, int dirfd, kv_manifest *m, int *renamed);
/* Decodes a MANIFEST image in memory: manifest_load's decoder, and the fuzzer's
 * entry point. Same returns as manifest_load but KV_NOTFOUND and KV_EIO. */
int manifest_decode(const uint8_t *buf, size_t len, kv_manifest *m);
/* Encodes m as is (generation unchanged) into a new buffer of *len bytes, which the
 * caller frees; NULL when out of memory. manifest_store writes what this returns. */
uint8_t *manifest_encode(const kv_manifest *m, size_t *len);
/* manifest_decode for the tools: the same checks and returns, but no message is
 * recorded; on a refusal *bad_off gets the offset of the check that failed and why
 * (why_len bytes) the check. */
int manifest_check(const uint8_t *buf, size_t len, kv_manifest *m, uint64_t *bad_off, char *why,
                   size_t why_len);
void manifest_free(kv_manifest *m);

#endif
