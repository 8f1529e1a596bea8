/*
 * creq.h — the compaction request and result files, shared by their writer and
 * their reader (docs/FORMAT.md, "Compaction request and result";
 * docs/MULTIPROCESS.md, "Compaction from another process").
 *
 * kvcompact, finding the store held by a writer, leaves a request in COMPACT.req;
 * the writer answers in COMPACT.res (names in format.h). Both are short text files,
 * so an operator can read them with cat: a first line naming the file and its
 * version, then records, one a line, each guarded by its own CRC-32C:
 *
 *   kv-compact-request 1
 *   crc=1a2b3c4d id=4242.1732449012.123456789.9f3c pid=4242 ratio_ppm=500000
 *
 *   kv-compact-result 1
 *   crc=5e6f7a8b id=4242.1732449012.123456789.9f3c state=done status=0 pid=77 ...
 *   crc=...      (the previous requests' results, newest first, up to CREQ_KEEP)
 *
 * A record is "crc=" and 8 lowercase hex digits, a space, then fields "name=value"
 * separated by one space; the CRC covers the bytes after that space up to the line's
 * end (not the newline). Values are decimal digits, except id (1..CREQ_ID_MAX bytes
 * of [A-Za-z0-9._-]), state (a word), and msg, which comes last and runs to the end
 * of the line, escaped (\\, \n, \xHH for other control bytes) so it holds no
 * newline. Fields a reader does not know are skipped (a later version may add some);
 * a record with a bad CRC, a missing id, a bad value or no newline is garbage. The
 * ratio travels as parts per million, so no locale can change its decimal point.
 *
 * This header is the layout; creq.c the one encoder and parser both sides use.
 */
#ifndef KV_CREQ_H
#define KV_CREQ_H

#include <stddef.h>
#include <stdint.h>

#define CREQ_MAGIC_REQ "kv-compact-request 1"
#define CREQ_MAGIC_RES "kv-compact-result 1"
#define CREQ_ID_MAX 64          /* bytes of a request id */
#define CREQ_MSG_MAX 512        /* bytes of a result's message, unescaped */
#define CREQ_REQ_MAX 1024       /* a longer COMPACT.req is garbage */
#define CREQ_RES_MAX 16384      /* a result file is never longer */
#define CREQ_KEEP 8             /* results a result file keeps, newest first */

/* A request: what kvcompact asks of the writer. */
typedef struct creq_request {
    char id[CREQ_ID_MAX + 1]; /* unique to one kvcompact run (pid, time, random) */
    long pid;                 /* the requester's pid (for messages), 0 unknown */
    uint32_t ratio_ppm;       /* compact_dead_ratio in millionths, 1..1000000;
                                 0: the writer's own */
} creq_request;

/* What a request has come to. */
enum {
    CREQ_RUNNING = 1, /* picked up: the writer works on it (progress below) */
    CREQ_DONE = 2,    /* finished: status, message and figures below */
    CREQ_STOPPED = 3  /* abandoned: the writer closed the store first */
};

/* A result: the writer's answer to one request. */
typedef struct creq_result {
    char id[CREQ_ID_MAX + 1]; /* the request's */
    int state;                /* CREQ_RUNNING, CREQ_DONE, CREQ_STOPPED */
    int status;               /* done: the kv status (KV_OK or a KV_E* code) */
    long pid;                 /* the writer's pid */
    uint64_t pass;            /* running: the pass under way (1, 2, ...) ... */
    uint64_t read, total;     /* ... and the bytes of its inputs read, of total */
    uint64_t disk_before;     /* done: kv_stats.disk_bytes before the compaction */
    uint64_t disk_after;      /* ... and after it */
    uint64_t passes;          /* passes that completed */
    uint64_t dropped;         /* records dropped (compact_records_dropped) */
    uint64_t tombs;           /* of which tombstones */
    uint64_t bytes_read;      /* bytes of the segments replaced */
    uint64_t bytes_written;   /* bytes of the segments written */
    uint64_t us;              /* duration of the compaction, microseconds */
    char msg[CREQ_MSG_MAX];   /* done with an error: kv_errmsg's text */
} creq_result;

/* 1 when id is 1..CREQ_ID_MAX bytes of [A-Za-z0-9._-]. */
int creq_id_valid(const char *id);

/* Writes a request file's whole content (magic line and record) into buf.
 * Returns its length, or 0 when it does not fit or the request is invalid. */
size_t creq_request_encode(const creq_request *r, char *buf, size_t cap);

/* Parses a request file's content (n bytes, not NUL-terminated). Returns 0 with
 * *out filled, or -1 when it is no request (garbage: wrong magic, bad CRC, no id,
 * a ratio outside 0..1000000, more than CREQ_REQ_MAX bytes, not one record). */
int creq_request_parse(const char *buf, size_t n, creq_request *out);

/* Writes one result record (its line, newline included) into buf. Returns its
 * length, or 0 when it does not fit. */
size_t creq_result_encode(const creq_result *r, char *buf, size_t cap);

/* Parses a result file's content: fills out[0..max) with its records in file order
 * (newest first) and returns how many; garbage records are skipped. -1 when the
 * file is no result file (wrong magic line). */
int creq_results_parse(const char *buf, size_t n, creq_result *out, int max);

#endif
