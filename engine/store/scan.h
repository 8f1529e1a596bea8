/*
 * scan.h — reading a record file (segment or WAL) from front to back.
 *
 * The scanner delivers complete batches only: it first checks every entry of a
 * batch (header, lengths against the file end, CRC, consecutive sequence numbers),
 * then hands them to the callback in order. It stops at the first entry that fails
 * or at a batch the file ends inside of, and reports where and why; the caller
 * decides whether that is a torn tail to cut (the newest file) or damage to report
 * (anything else). No length field is trusted before it is checked against the
 * bytes the file really has, so garbage never causes a large allocation.
 */
#ifndef KV_SCAN_H
#define KV_SCAN_H

#include "format/entry.h"
#include "io/io.h"

typedef int (*kv_scan_fn)(void *arg, const kv_entry *e, uint64_t off);

typedef struct kv_scan_result {
    uint64_t valid_end; /* offset just past the last complete batch */
    uint64_t records;   /* entries delivered */
    uint64_t max_seq;   /* highest sequence number delivered (0 if none) */
    int stopped;        /* 1 if bytes after valid_end were not delivered */
    uint64_t bad_off;   /* offset of the entry that failed (or the incomplete batch) */
    char why[160];      /* what failed */
} kv_scan_result;

/* Scans fd from start to end (exclusive), calling fn for every entry of every
 * complete batch. Returns KV_OK (check res->stopped), fn's non-zero return,
 * KV_EIO (read failed, message names `name`) or KV_ENOMEM. */
int scan_file(kv_io *io, int fd, const char *name, uint64_t start, uint64_t end,
                 kv_scan_fn fn, void *arg, kv_scan_result *res);

/* The same over a buffer in memory (fuzzers, tests): buf holds the whole file. */
int scan_buffer(const uint8_t *buf, size_t len, uint64_t start, kv_scan_fn fn,
                   void *arg, kv_scan_result *res);

/* ---- torn tail or damage --------------------------------------------------------------
 *
 * The rule for the newest WAL file (docs/FORMAT.md, "Torn tail or damage"): where a
 * scan stops before the end, the bytes from there on are a torn tail, and may be cut,
 * unless a whole batch further on is proof that they had been durable: its first
 * entry is a fence (KV_RECF_FENCE: every earlier byte of the file was durable when it
 * was written) and its sequence numbers continue those before the damage (above the
 * scan's max_seq). With such proof it is damage to durable records: KV_ECORRUPT,
 * and nothing is cut. A crash leaves no such proof: the bytes a power failure may
 * lose or garble all lie after the last completed fdatasync, and every fence is
 * written after the fdatasync that covers the bytes before it. */
typedef struct kv_scan_fence {
    int found;          /* 1: proof found */
    uint64_t off;       /* offset of the fence entry */
    uint64_t seq;       /* its sequence number */
} kv_scan_fence;

/* Looks for that proof after a scan of [.., end) of fd stopped (res->stopped).
 * Returns KV_OK (see out->found), KV_EIO or KV_ENOMEM. Reads from res->valid_end to
 * the first fence at most. */
int scan_find_fence(kv_io *io, int fd, const char *name, uint64_t end,
                       const kv_scan_result *res, kv_scan_fence *out);
/* The same over a whole file image in memory. */
int scan_find_fence_buffer(const uint8_t *buf, size_t len, const kv_scan_result *res,
                              kv_scan_fence *out);

/* ---- walking past damage (the tools, through inspect.h) ------------------------------
 *
 * Where the scan stops for good, the walk goes on: it is the scan loop above,
 * restarted after each damaged stretch at the next offset where a whole entry checks
 * out (header, length, CRC), so the whole batches after a damaged one are still found.
 * It reads through the same window, so memory stays bounded by the largest entry.
 *
 * A damaged stretch is [off, off + len): from the end of the last whole batch to the
 * next offset where one may start (or the end of the file). It begins with the
 * entries of the batch the damage cut short (they check out, but the batch is not
 * whole), then the bytes that do not check out. The walk restarts right after the
 * short batch when an entry that checks out breaks its chain (non-consecutive
 * sequence number), else at the first offset past the failed entry's first byte where
 * a whole entry checks out, searching byte by byte. Limits of any resynchronisation:
 * a value that itself holds a valid encoded entry can be taken for one; and since the
 * batch flag means "more follows", the rest of a batch whose first entry lies in the
 * damage looks like a whole batch of its own. */
typedef struct kv_scan_walk_fns {
    kv_scan_fn batch; /* every entry of every whole batch, as scan_file delivers them
                         (may be NULL) */
    /* An entry inside a damaged stretch (may be NULL), called before the stretch's
     * damage call: crc_ok 1, an entry that checks out, of a batch that is not whole;
     * crc_ok 0, an entry whose header passed its checks and whose bytes lie inside
     * the file, but whose checksum (or LZ4 raw length) failed: every field, key and
     * value included, is untrusted. */
    int (*loose)(void *arg, const kv_entry *e, uint64_t off, int crc_ok);
    /* A damaged stretch [off, off + len) (may be NULL); bad_off is the first entry
     * that failed (off <= bad_off < off + len) and why the check it failed. */
    int (*damage)(void *arg, uint64_t off, uint64_t len, uint64_t bad_off, const char *why);
    void *arg;
} kv_scan_walk_fns;

typedef struct kv_scan_walk_result {
    uint64_t records;    /* entries of whole batches delivered */
    uint64_t max_seq;    /* the highest of their sequence numbers (0 if none) */
    uint64_t ok_up_to;   /* end of the leading run of whole batches: where the first
                            damaged stretch starts (the end when there is none) */
    uint64_t regions;    /* damaged stretches */
    uint64_t lost_bytes; /* their bytes */
    int tail;            /* the last stretch runs to the end of the file */
} kv_scan_walk_result;

/* Walks fd from start to end. Returns KV_OK, a callback's non-zero return (the walk
 * stops there), KV_EIO or KV_ENOMEM (message names `name`). Entry pointers are valid
 * during the callback only. */
int scan_walk_file(kv_io *io, int fd, const char *name, uint64_t start, uint64_t end,
                      const kv_scan_walk_fns *fns, kv_scan_walk_result *res);
/* The same over a whole file image in memory. */
int scan_walk_buffer(const uint8_t *buf, size_t len, uint64_t start,
                        const kv_scan_walk_fns *fns, kv_scan_walk_result *res);

#endif
