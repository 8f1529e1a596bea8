/*
 * compact.h — what compact.c (compaction, its background thread) and compact_req.c
 * (compaction requested from another process) share. The rest of the library sees
 * compaction through db.h (compact_start, compact_stop, compact_kick) and kv.h
 * (kv_compact).
 */
#ifndef KV_COMPACT_H
#define KV_COMPACT_H

#include "db/db.h"
#include "format/creq.h"

#include <stdint.h>

#define COMPACT_STOPPED 2 /* internal status: a paced run gave up for kv_close */

/* How one compaction runs (compact_now). */
typedef struct compact_how {
    double ratio;              /* compact_dead_ratio of this compaction, in (0, 1] */
    int paced;                 /* keep to compact_bytes_per_sec, and give up with
                                  COMPACT_STOPPED when the store closes */
    void (*tick)(void *arg);   /* progress: called as each pass starts and about
                                  every MiB it reads; NULL for none */
    void *tick_arg;
} compact_how;

/* kv_compact's work, as `how` says: seals the active segment unless it is empty,
 * then runs passes until nothing is left to do. Takes compact_mu (one compaction at
 * a time). Returns as kv_compact, or COMPACT_STOPPED. Any thread. */
int compact_now(kv_db *db, const compact_how *how);

/* ---- compaction requested from another process (compact_req.c) -------------------- */

/* The background thread's memory of the requests it answered: a result file keeps
 * the last CREQ_KEEP answers, so a kvcompact that looks late still finds its own. */
typedef struct req_server {
    kv_db *db;
    creq_result done[CREQ_KEEP]; /* results written, newest first */
    int ndone;
    creq_result *cur;            /* the request being served (progress), or NULL */
    uint64_t last_write_us;      /* when the result file was last written */
} req_server;

void req_server_init(req_server *s, kv_db *db);

/* 1 when a request may be waiting: COMPACT.req exists (one fstatat). */
int req_waiting(kv_db *db);

/* Serves the request in COMPACT.req, if there is one: claims it (result "running",
 * then the request is removed), runs compact_now paced with its ratio, and writes
 * the result. A request that is garbage or too long is removed unanswered; one that
 * is not a regular file is left alone (not kv's). Never prints or fails the
 * handle; the background thread calls it between passes. */
void req_serve(req_server *s);

#endif
