/*
 * file.h — an open record file: a data segment or a WAL file.
 *
 * Both kinds share one layout (file header, then entries), so one object serves
 * both. The active segment has a write buffer: the group-commit leader appends to
 * it, and it goes to the kernel when full, when the segment is sealed, and at close.
 * (Records in it are already in the WAL, so a crash loses nothing.) Reads that reach
 * into the buffered tail copy from it under the file's mutex; all other reads pread.
 *
 * Lifetime: the store's file table holds one reference; each reader pins a file
 * for the length of its read (file_ref/file_unref), so compaction can retire a file
 * while a get is still reading it.
 */
#ifndef KV_FILE_H
#define KV_FILE_H

#include "store/bloom.h"
#include "io/io.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* File kinds, by name: NNNNNN.seg, NNNNNN.wal, NNNNNN.hint, NNNNNN.hint.tmp. Only
 * segments and WAL files are opened as kv_file; hints are handled by hint.c. */
enum { KV_FILE_SEG = 1, KV_FILE_WAL = 2, KV_FILE_HINT = 3, KV_FILE_HINT_TMP = 4 };

typedef struct kv_file {
    uint32_t number;            /* file number (NNNNNN in the name) */
    int kind;                   /* KV_FILE_SEG or KV_FILE_WAL */
    int fd;                     /* open descriptor */
    kv_io *io;                  /* the store's I/O layer */
    char name[24];              /* "000012.seg" */
    _Atomic uint64_t size;      /* logical size: bytes on disk + buffered */
    _Atomic uint64_t live_bytes; /* bytes of entries the index points at */
    _Atomic int refs;           /* table reference + readers in flight */
    pthread_mutex_t mu;         /* guards the write buffer */
    uint8_t *wbuf;              /* write buffer (active segment only) */
    size_t wcap;                /* its capacity */
    size_t wlen;                /* bytes buffered */
    _Atomic uint64_t woff;      /* file offset of wbuf[0]: bytes below it are on disk */
    const uint8_t *map;         /* read-only mapping from offset 0, or NULL */
    size_t map_len;             /* its length (may exceed the file: only bytes below
                                   woff are ever touched) */
    /* What compaction knows of a sealed segment (set when it is sealed or indexed at
     * open, then immutable; guarded by the compaction lock where it changes): */
    uint64_t min_seq, max_seq;  /* range of sequence numbers it holds (0, 0: empty) */
    kv_bloom *bloom;            /* its keys; NULL: it may hold any key */
    _Atomic uint64_t dead_floor; /* dead bytes compaction could not drop when it wrote
                                   this file (tombstones still needed): compacting
                                   it again reclaims only dead bytes above this */
    uint32_t blockers[8];       /* segments holding older records of those tombstones;
                                   when they are gone, dead_floor drops to 0 */
    uint32_t nblockers;         /* entries used; > 8: too many to list (any retired
                                   segment resets dead_floor) */
    _Atomic int compact_skip;   /* damage found while compacting: left alone */
    _Atomic int holds_wal;      /* a read-only handle's sealed segment that holds the
                                   records of its WAL file byte for byte at the same
                                   offsets: keys that pointed into that WAL file read
                                   here (db/refresh.c) */
} kv_file;

/* "000012.seg", "000012.wal", "000012.hint", "000012.hint.tmp" into buf (at least
 * 24 bytes). */
void file_name(char *buf, size_t n, uint32_t number, int kind);
/* Parses a file name; returns the kind (or 0) and *number. A name is kv's only when
 * file_name gives it back exactly: 0000099.wal (a leading zero in 7+ digits),
 * 000000.seg (file 0) or 4294967296.seg are not, and kv never deletes them. */
int file_parse_name(const char *name, uint32_t *number);


/* Creates a new file with its header, fdatasynced. Returns KV_OK or an error
 * naming the file. */
int file_create(kv_io *io, int dirfd, int kind, uint32_t number, kv_file **out);
/* Opens an existing file (io_open_regular) and checks its header. writable opens
 * O_RDWR. Returns KV_OK, KV_ECORRUPT (not a regular file, or a bad header: names the
 * file), KV_EVERSION, KV_EIO,
 * KV_ENOMEM; *missing is set (and KV_EIO returned) when the file does not exist. */
int file_open(kv_io *io, int dirfd, int kind, uint32_t number, int writable, int *missing,
              kv_file **out);

/* Gives the file a write buffer of cap bytes (active segment). */
int file_enable_buffer(kv_file *f, size_t cap);
/* Appends len bytes; returns KV_OK and the offset they start at. A write failure is
 * returned as a status (the caller fails the store). */
int file_append(kv_file *f, const void *buf, size_t len, uint64_t *off);
/* Sends buffered bytes to the kernel. */
int file_flush(kv_file *f);
/* Flushes and drops the write buffer (the segment is being sealed). */
int file_seal_buffer(kv_file *f);
/* Reads len bytes at off (buffer included). Returns KV_OK, KV_EIO, or KV_ECORRUPT
 * when the file is shorter than the index says. */
int file_read(kv_file *f, uint64_t off, void *dst, size_t len);

/* Maps the file for reads (len bytes of address space; 0 = its current size).
 * Failure is not an error: reads then use pread. */
void file_map(kv_file *f, size_t len);
/* Returns a pointer to [off, off+len) in the mapping when those bytes are on disk
 * and mapped, else NULL (use file_read). Valid while the caller holds a reference. */
static inline const uint8_t *file_peek(kv_file *f, uint64_t off, size_t len)
{
    if (f->map != NULL && off + len <= f->map_len && off + len <= atomic_load(&f->woff))
        return f->map + off;
    return NULL;
}

/* Widens [min_seq, max_seq] to include seq. */
static inline void file_note_seq(kv_file *f, uint64_t seq)
{
    if (f->min_seq == 0 || seq < f->min_seq)
        f->min_seq = seq;
    if (seq > f->max_seq)
        f->max_seq = seq;
}

void file_ref(kv_file *f);
/* Drops a reference; the last one closes and frees the file. */
void file_unref(kv_file *f);

#endif
