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

#include "entry.h"
#include "io.h"

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
int kv_scan_file(kv_io *io, int fd, const char *name, uint64_t start, uint64_t end,
                 kv_scan_fn fn, void *arg, kv_scan_result *res);

/* The same over a buffer in memory (fuzzers, tests): buf holds the whole file. */
int kv_scan_buffer(const uint8_t *buf, size_t len, uint64_t start, kv_scan_fn fn,
                   void *arg, kv_scan_result *res);

#endif
