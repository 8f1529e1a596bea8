/*
 * inspect.h — reading kv files as they are, damage included: the tools' view of a
 * store (kvcheck, kvdump --all, kvdump FILE).
 *
 * The library's own readers stop at the first damage: recovery cuts a torn tail or
 * refuses the store. A tool must see past it. This module identifies a file by its
 * name and magic and checks its header; walks every record of a segment or WAL file
 * in file order, going on after damage at the next offset where a whole entry checks
 * out; reads a hint file and compares it with its segment; reads the MANIFEST; and
 * lists a store directory.
 *
 * It decodes nothing itself: entries go through entry_parse (by way of the scanner's
 * walk, scan.h), headers through file_header_check, hints through hint_check,
 * MANIFESTs through manifest_check — the decoders recovery uses and the fuzzers
 * test. It only reads: files are opened O_RDONLY through the I/O layer and no lock
 * is taken, so it is safe on a store a writer has open (whose active segment and WAL
 * may then grow while they are read). Memory is bounded: record files are read
 * through a window as large as the largest entry (1 MiB at least); hint files and
 * MANIFESTs are read whole, as recovery reads them.
 *
 * Sections:
 *   1. What a file is: kinds, names, headers, LOCK
 *   2. Walking a segment or WAL file
 *   3. Hint files
 *   4. The MANIFEST
 *   5. A store directory: listing it, and who holds its writer lock
 *
 * Nothing here prints, exits or aborts. Functions return KV_OK or a status with a
 * message for kv_errmsg() naming the file; what is found wrong with a file's bytes is
 * not an error but a result (a header status, a damaged stretch, a refused hint).
 */
#ifndef KV_INSPECT_H
#define KV_INSPECT_H

#include "format/entry.h"
#include "io/io.h"
#include "store/manifest.h"

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------------------
 * 1. What a file is
 * ------------------------------------------------------------------------------ */

/* File kinds. The first four equal file.h's KV_FILE_* values. */
enum {
    INSPECT_UNKNOWN = 0,      /* not a kv file */
    INSPECT_SEG = 1,          /* NNNNNN.seg, magic "KVSG": a data segment */
    INSPECT_WAL = 2,          /* NNNNNN.wal, magic "KVWL": a write-ahead log file */
    INSPECT_HINT = 3,         /* NNNNNN.hint, magic "KVHT": a sealed segment's hint */
    INSPECT_HINT_TMP = 4,     /* NNNNNN.hint.tmp: a hint being written (a leftover) */
    INSPECT_MANIFEST = 5,     /* MANIFEST, magic "KVMF" */
    INSPECT_MANIFEST_TMP = 6, /* MANIFEST.tmp: a MANIFEST being written (a leftover) */
    INSPECT_LOCK = 7          /* LOCK: the writer's pid */
};

/* The suffix kvcheck --repair gives a file it sets aside instead of deleting it
 * ("000012.seg.damaged"; ".damaged.2", ... when that name is taken). */
#define INSPECT_ASIDE ".damaged"

/* The kind a file name stands for (only its last path component counts) and its
 * number (the NNNNNN, at least 6 digits; 0 for names without one). A name ending in
 * INSPECT_ASIDE or INSPECT_ASIDE".N" is named by what precedes the suffix, and
 * *aside (when not NULL) is set. */
int inspect_kind_of_name(const char *name, uint32_t *number, int *aside);

/* The kind whose magic the first 4 of len bytes at p hold: INSPECT_SEG, _WAL,
 * _HINT or _MANIFEST; INSPECT_UNKNOWN for anything else or fewer than 4 bytes. */
int inspect_kind_of_magic(const uint8_t *p, size_t len);

/* A short constant name of a kind: "segment", "WAL file", "hint file", ... */
const char *inspect_kind_name(int kind);

/* Header statuses (the 16-byte file header of docs/FORMAT.md). */
enum {
    INSPECT_HDR_OK = 0,  /* magic, checksum, version, flags and number as expected */
    INSPECT_HDR_SHORT,   /* the file has fewer than 16 bytes */
    INSPECT_HDR_MAGIC,   /* not the magic of its kind */
    INSPECT_HDR_CRC,     /* header checksum mismatch */
    INSPECT_HDR_NEWER,   /* a sound header of a newer format version: not damage, but
                            this build cannot read the file (version says which) */
    INSPECT_HDR_VERSION, /* a sound header of a version that never existed (0) */
    INSPECT_HDR_FLAGS,   /* header flags this version does not know */
    INSPECT_HDR_NUMBER,  /* the number differs from the one in the file name */
    INSPECT_HDR_NONE     /* the kind has no header (LOCK, unknown files) */
};

typedef struct inspect_header {
    int status;       /* INSPECT_HDR_* */
    uint16_t version; /* the version field as stored (0 when the file is shorter) */
    uint32_t number;  /* the number field: segment number, or MANIFEST generation */
    uint64_t bad_off; /* offset of what failed: 0 magic or short, 12 checksum,
                         4 version, 6 flags, 8 number */
    char why[128];    /* what failed; "" when INSPECT_HDR_OK */
} inspect_header;

/* Checks the header of a file of `kind` at p, len readable bytes (16 are needed).
 * number is what the file's name says (0: not compared; a MANIFEST's generation never
 * is). The checks are file_header_check's, in its order: magic, checksum, version,
 * flags; then the number. Fills *h and returns h->status. */
int inspect_check_header(const uint8_t *p, size_t len, int kind, uint32_t number,
                         inspect_header *h);

typedef struct inspect_id {
    char name[256];      /* the last component of the path */
    int kind;            /* by name; by magic when the name says nothing */
    int kind_by_name;    /* inspect_kind_of_name */
    int kind_by_magic;   /* inspect_kind_of_magic */
    int aside;           /* set aside by kvcheck --repair (INSPECT_ASIDE) */
    uint32_t number;     /* from the name (0 when it has none) */
    uint64_t size;       /* bytes */
    inspect_header hdr;  /* checked as `kind` (INSPECT_HDR_NONE when it has none) */
} inspect_id;

/* Opens `name` (relative to dirfd; a path with AT_FDCWD) read-only and identifies
 * it: kind, size, header. Returns KV_OK with *fd open (close it through
 * io->ops->close); KV_NOTFOUND (no such file); KV_EINVAL (not a regular file);
 * KV_EIO (cannot be opened or read); every failure names the file in kv_errmsg(). */
int inspect_open(kv_io *io, int dirfd, const char *name, inspect_id *id, int *fd);
/* inspect_open, closing the file again. */
int inspect_identify(kv_io *io, int dirfd, const char *name, inspect_id *id);

/* Checks the text of a LOCK file (len bytes at p): empty (a writer between creating
 * and writing it) or a decimal pid and a newline. Returns NULL with *pid (0 when
 * empty), or what is wrong with *bad_off the offset of the first wrong byte. */
const char *inspect_check_lock(const uint8_t *p, size_t len, long *pid, uint64_t *bad_off);

/* ---------------------------------------------------------------------------------
 * 2. Walking a segment or WAL file
 *
 * Every entry from offset 16 to the end, in file order (the header is section 1's).
 * The bytes divide into whole batches — what recovery would read — and damaged
 * stretches: from the end of the last whole batch to the next offset where a whole
 * entry checks out (header, length, CRC; found by trying every offset), or to the
 * end. A stretch begins with the entries of the batch the damage cut short (they
 * check out; recovery would drop them, as the batch is not whole), then the entry
 * that failed. Whole-batch bytes + damaged bytes + 16 = the file's size.
 *
 * What a stretch means depends on the file (docs/FORMAT.md): in the newest segment
 * or WAL file, one stretch running to the end is a torn tail, which recovery cuts at
 * ok_up_to; anywhere else, and in a sealed segment always, it is damage.
 *
 * Limits of resynchronising (docs/FORMAT.md, "Reading past damage"): a value that
 * itself holds an encoded entry with a valid CRC can be taken for one; the batch flag
 * says "more follows", so the rest of a batch whose first entry lies in a damaged
 * stretch looks like a whole batch of its own.
 * ------------------------------------------------------------------------------ */

typedef struct inspect_rec {
    uint64_t off;         /* offset of the entry in the file */
    kv_entry e;           /* its fields; e.key and e.val point into the read window and
                             are valid during the callback only */
    int crc_ok;           /* 1: the entry checks out; 0: its header passed its checks
                             and it lies inside the file, but its CRC (or an LZ4 raw
                             length) failed: every field is untrusted */
    int whole;            /* 1: of a whole batch; 0: inside a damaged stretch */
    uint64_t batch_off;   /* offset of the first entry of its batch, as far as the walk
                             saw (a stretch starts a new batch) */
    uint32_t batch_index; /* its position in that batch, 0 for the first; its batch
                             ends with it when e.flags lacks KV_RECF_BATCH */
} inspect_rec;

typedef struct inspect_damage {
    uint64_t off;        /* first byte of the damaged stretch */
    uint64_t len;        /* its length: bytes [off, off + len) hold no whole batch */
    uint64_t bad_off;    /* the first entry that failed, off <= bad_off < off + len */
    int to_eof;          /* the stretch runs to the end of the file */
    const char *why;     /* the check that failed there */
} inspect_damage;

typedef struct inspect_walk_fns {
    /* Every entry in file order (may be NULL). Entries inside a stretch come before
     * the stretch's damage call. A non-zero return stops the walk and is returned. */
    int (*record)(void *arg, const inspect_rec *r);
    /* Every damaged stretch (may be NULL); a non-zero return stops the walk. */
    int (*damage)(void *arg, const inspect_damage *d);
    void *arg;
} inspect_walk_fns;

typedef struct inspect_walk_result {
    uint64_t records;      /* entries of whole batches */
    uint64_t record_bytes; /* their bytes */
    uint64_t loose;        /* entries inside damaged stretches that check out */
    uint64_t bad_crc;      /* entries inside them with a sane header and a bad CRC */
    uint64_t min_seq;      /* lowest and highest sequence number of the whole-batch */
    uint64_t max_seq;      /* entries (0 and 0 when there are none) */
    uint64_t ok_up_to;     /* where the first damaged stretch starts; the size when
                              there is none */
    uint64_t regions;      /* damaged stretches */
    uint64_t lost_bytes;   /* their bytes */
    int tail;              /* the last stretch runs to the end of the file */
    int fenced;            /* a whole batch after the first damaged stretch starts
                              with a fence and continues the sequence (scan.h) */
    uint64_t fence_off;    /* the offset of the first such fence */
    int torn_tail;         /* damage, and no fence after it: in the newest WAL file a
                              torn tail that recovery cuts at ok_up_to (scan.h: torn
                              tail or damage); with a fence it is damage */
} inspect_walk_result;

/* Walks the record file open as fd (named `name` in messages) up to `size` bytes.
 * Returns KV_OK (what was found is in *res), a callback's non-zero return, KV_EIO
 * or KV_ENOMEM. */
int inspect_walk(kv_io *io, int fd, const char *name, uint64_t size,
                 const inspect_walk_fns *fns, inspect_walk_result *res);
/* The same over a whole file image in memory (fuzzers, tests). */
int inspect_walk_buffer(const uint8_t *buf, size_t len, const inspect_walk_fns *fns,
                        inspect_walk_result *res);

/* ---------------------------------------------------------------------------------
 * 3. Hint files
 *
 * A hint is read whole and checked by the engine's decoder (hint_check): header,
 * number, CRC, the segment size it describes, every record, and that its records
 * tile the segment. Recovery uses a hint only when all of that holds, and so does
 * this section: a refused hint has no records, only where and why it was refused.
 * ------------------------------------------------------------------------------ */

typedef struct inspect_hint_rec {
    uint64_t seq;        /* sequence number */
    uint64_t off;        /* offset of the entry in the segment */
    uint32_t size;       /* size of the entry */
    int type;            /* KV_REC_PUT or KV_REC_DEL */
    uint32_t klen;       /* key length */
    const uint8_t *key;  /* points into inspect_hint.buf */
} inspect_hint_rec;

typedef struct inspect_hint {
    int status;             /* KV_OK: usable; KV_NOTFOUND: refused (bad_off, why);
                               KV_EVERSION: a newer format version (why) */
    uint64_t bad_off;       /* offset in the hint file of the check that failed */
    char why[192];          /* which check ("" when usable) */
    uint64_t size;          /* bytes of the hint file */
    uint32_t number;        /* the segment number it was checked against */
    uint64_t seg_size;      /* the segment size it was checked against */
    uint32_t count;         /* records, when usable */
    inspect_hint_rec *recs; /* in file order, tiling the segment from offset 16 */
    uint8_t *buf;           /* the file's bytes (keys point into them) */
} inspect_hint;

/* Reads hint file `name` (relative to dirfd; a path with AT_FDCWD) and checks it as
 * the hint of segment `number` of seg_size bytes. number 0 takes the file name's
 * number, else the header's; seg_size 0 takes the size its trailer states (a hint
 * checked alone, outside a store: then only its own consistency is checked).
 * Returns KV_OK, the verdict in h->status; KV_NOTFOUND (no such file); KV_EIO;
 * KV_ENOMEM. Free *h with inspect_hint_free whatever the return. */
int inspect_hint_read(kv_io *io, int dirfd, const char *name, uint32_t number,
                      uint64_t seg_size, inspect_hint *h);
/* The same over an image in memory (copied). Returns KV_OK or KV_ENOMEM. */
int inspect_hint_decode(const uint8_t *buf, size_t len, uint32_t number, uint64_t seg_size,
                        inspect_hint *h);
void inspect_hint_free(inspect_hint *h);

/* The record of a usable hint that describes the entry at offset off of its
 * segment, or NULL (binary search). */
const inspect_hint_rec *inspect_hint_at(const inspect_hint *h, uint64_t off);

/* NULL when hint record hr describes the entry r (offset, sequence number, size,
 * type, key), else the first field that differs ("sequence number", "key", ...). */
const char *inspect_hint_compare(const inspect_hint_rec *hr, const inspect_rec *r);

/* ---------------------------------------------------------------------------------
 * 4. The MANIFEST
 * ------------------------------------------------------------------------------ */

typedef struct inspect_manifest {
    int status;         /* KV_OK: usable (m holds it); KV_ECORRUPT: refused (bad_off,
                           why); KV_EVERSION: a newer format version (why) */
    uint64_t bad_off;   /* offset of the check that failed */
    char why[160];      /* which check ("" when usable) */
    uint64_t size;      /* bytes of the file */
    kv_manifest m;      /* the decoded MANIFEST when usable */
} inspect_manifest;

/* Reads and checks MANIFEST file `name` (relative to dirfd; a path with AT_FDCWD)
 * with the engine's decoder. Returns KV_OK with the verdict in im->status;
 * KV_NOTFOUND (no such file); KV_EIO; KV_ENOMEM. Free with inspect_manifest_free
 * whatever the return. */
int inspect_manifest_read(kv_io *io, int dirfd, const char *name, inspect_manifest *im);
void inspect_manifest_free(inspect_manifest *im);

/* ---------------------------------------------------------------------------------
 * 5. A store directory
 * ------------------------------------------------------------------------------ */

typedef struct inspect_dirent {
    char name[256];  /* the entry's name */
    int kind;        /* by name (inspect_kind_of_name) */
    uint32_t number; /* from the name, 0 when it has none */
    int aside;       /* set aside by kvcheck --repair */
    int regular;     /* 1 for a regular file (directories, links to them, devices: 0) */
    uint64_t size;   /* its size (regular files) */
} inspect_dirent;

/* Lists directory dirfd: every entry but "." and "..", less those removed between
 * readdir and their fstatat (a writer beside us retired them), sorted so a store reads in a
 * sensible order: MANIFEST, MANIFEST.tmp, LOCK; then numbered files by number, and
 * for one number segment, WAL, hint, hint.tmp, then set-aside copies; then every
 * other name in byte order. *out is malloc'd (free it; NULL when n is 0). Returns
 * KV_OK, KV_EIO (the directory cannot be read), KV_ENOMEM. */
int inspect_list_dir(int dirfd, inspect_dirent **out, size_t *n);

/* Who holds the writer lock of the store in dirfd, without taking it (a writer
 * takes flock(LOCK_EX) on LOCK): 1 with *pid when a process holds it, 0 when none
 * does or there is no LOCK, -1 when this cannot be told (no /proc/locks). *pid is
 * the holder's pid from /proc/locks. */
int inspect_lock_holder(int dirfd, long *pid);

#endif
