/*
 * compact_req.c — compaction requested from another process: the writer's side
 * (docs/MULTIPROCESS.md, "Compaction from another process"; the files' layout in
 * format/creq.h).
 *
 * kvcompact cannot compact a store a writer holds: only the writer may change it.
 * So it leaves a request in COMPACT.req, and the writer's background thread, which
 * every writer handle runs (auto_compact or not), looks for one every REQ_POLL_MS
 * (compact.c: one fstatat, a few microseconds) and serves it:
 *   1. read     the request (at most CREQ_REQ_MAX bytes; garbage is removed
 *               unanswered; a COMPACT.req that is not a regular file is not kv's and
 *               is left alone, never opened);
 *   2. claim    write the result file with the request's id in state "running",
 *               then remove the request: a kvcompact that sees neither its request
 *               nor its result knows its request was lost (a new writer's open
 *               removed it as a leftover) and asks again;
 *   3. compact  compact_now, kv_compact's code, at the request's ratio, paced to
 *               compact_bytes_per_sec like the background passes (the writer's puts
 *               keep their latency) and given up if the store closes ("stopped");
 *               every half second the result file is rewritten with the progress;
 *   4. answer   the result: status, kv_errmsg's text, kv_stat figures before and
 *               after.
 * Results are written as COMPACT.res.tmp and renamed into place, without fsync:
 * their only reader is a live kvcompact, and after a crash nobody waits for them
 * (the next writer's open removes them). The file keeps the last CREQ_KEEP results,
 * so a kvcompact that looks late still finds its own after the writer moved on.
 * Nothing here prints, fails the handle, or stops the thread: a result that cannot
 * be written costs the asker its answer (it times out or takes over), no more.
 */
#include "db/compact.h"

#include "format/format.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROGRESS_EVERY_US 500000u /* the result file shows progress this often */

void req_server_init(req_server *s, kv_db *db)
{
    memset(s, 0, sizeof *s);
    s->db = db;
}

/* fstatat of a name in the store directory, not following a symbolic link. */
static int stat_name(kv_db *db, const char *name, struct stat *st)
{
    int r;
    do
        r = fstatat(db->dirfd, name, st, AT_SYMLINK_NOFOLLOW);
    while (r < 0 && errno == EINTR);
    return r;
}

int req_waiting(kv_db *db)
{
    struct stat st;
    return stat_name(db, KV_COMPACT_REQ, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- reading the request ---------------------------------------------------------- */

/* Reads COMPACT.req into *r. Returns 1 for a request, 0 for none (or one that cannot
 * be read now), -1 for garbage, which is removed: a regular file under kv's name
 * that no kvcompact wrote. No other request can take its place meanwhile: kvcompact
 * links its request into place, which fails while the name exists. */
static int read_request(kv_db *db, creq_request *r)
{
    struct stat st;
    char buf[CREQ_REQ_MAX + 1];
    int fd;
    if (stat_name(db, KV_COMPACT_REQ, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    ssize_t n = -1;
    if (st.st_size <= CREQ_REQ_MAX
        && io_open_regular(db->io, db->dirfd, KV_COMPACT_REQ, O_RDONLY | O_NOFOLLOW, 0,
                           KV_COMPACT_REQ, &fd) == KV_OK) {
        n = io_pread_full(db->io, fd, buf, sizeof buf, 0);
        db->io->ops->close(db->io, fd);
        if (n < 0)
            return 0;
    }
    if (n >= 0 && creq_request_parse(buf, (size_t)n, r) == 0)
        return 1;
    if (n < 0 && st.st_size <= CREQ_REQ_MAX)
        return 0; /* gone, or no longer a regular file: nothing to remove */
    db->io->ops->unlink(db->io, db->dirfd, KV_COMPACT_REQ);
    return -1;
}

/* ---- writing the results ---------------------------------------------------------- */

/* Writes the result file: the magic line, then the results, newest first (older
 * ones are left out once the file would pass CREQ_RES_MAX). A COMPACT.res that is not
 * a regular file is not kv's and is never replaced (nor is such a .tmp opened):
 * no answer then. KV_OK or a status. */
static int write_results(req_server *s)
{
    kv_db *db = s->db;
    struct stat st;
    char file[CREQ_RES_MAX], line[4096];
    if (stat_name(db, KV_COMPACT_RES, &st) == 0 && !S_ISREG(st.st_mode))
        return err_set(KV_ECORRUPT, "%s: not a regular file: no answer written",
                       KV_COMPACT_RES);
    size_t len = (size_t)snprintf(file, sizeof file, "%s\n", CREQ_MAGIC_RES);
    for (int i = 0; i < s->ndone; i++) {
        size_t n = creq_result_encode(&s->done[i], line, sizeof line);
        if (n == 0 || len + n > sizeof file)
            break;
        memcpy(file + len, line, n);
        len += n;
    }
    int fd, rc = io_open_regular(db->io, db->dirfd, KV_COMPACT_RES_TMP,
                                 O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644,
                                 KV_COMPACT_RES_TMP, &fd);
    if (rc != KV_OK)
        return rc;
    int w = io_pwrite_full(db->io, fd, file, len, 0);
    db->io->ops->close(db->io, fd);
    if (w == 0)
        w = db->io->ops->rename(db->io, db->dirfd, KV_COMPACT_RES_TMP, KV_COMPACT_RES);
    if (w != 0) {
        db->io->ops->unlink(db->io, db->dirfd, KV_COMPACT_RES_TMP);
        return err_errno(-w, "%s: writing the compaction result", KV_COMPACT_RES);
    }
    s->last_write_us = clock_now_us();
    return KV_OK;
}

/* Makes room for a new result at the head of the list and returns it. */
static creq_result *push_result(req_server *s, const char *id)
{
    memmove(&s->done[1], &s->done[0], (CREQ_KEEP - 1) * sizeof s->done[0]);
    s->ndone += s->ndone < CREQ_KEEP;
    creq_result *r = &s->done[0];
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
    r->state = CREQ_RUNNING;
    r->pid = (long)getpid();
    return r;
}

/* compact_how's tick: the result file shows the pass under way, twice a second. */
static void progress_tick(void *arg)
{
    req_server *s = arg;
    kv_db *db = s->db;
    if (s->cur == NULL || clock_now_us() - s->last_write_us < PROGRESS_EVERY_US)
        return;
    s->cur->pass = atomic_load(&db->compactions) - s->cur->passes + 1;
    s->cur->read = atomic_load(&db->compact_pass_read);
    s->cur->total = atomic_load(&db->compact_pass_total);
    write_results(s);
}

/* ---- serving ------------------------------------------------------------------------ */

/* Step 3: the compaction, and the figures of the answer. While it runs, r->passes
 * holds the pass count it started from (progress_tick counts from it). */
static void run_request(req_server *s, creq_result *r, const creq_request *rq)
{
    kv_db *db = s->db;
    kv_stats before, after;
    kv_stat_sized(db, &before, sizeof before);
    compact_how how = {
        .ratio = rq->ratio_ppm != 0 ? (double)rq->ratio_ppm / 1e6 : db->opts.compact_dead_ratio,
        .paced = 1,
        .tick = progress_tick,
        .tick_arg = s,
    };
    r->passes = before.compactions;
    uint64_t t0 = clock_now_us();
    int rc = compact_now(db, &how);
    r->us = clock_now_us() - t0;
    if (rc != KV_OK && rc != COMPACT_STOPPED)
        snprintf(r->msg, sizeof r->msg, "%s", kv_errmsg());
    else if (rc == COMPACT_STOPPED)
        snprintf(r->msg, sizeof r->msg, "%s: the writer closed the store before the "
                 "compaction finished", db->dir);
    kv_stat_sized(db, &after, sizeof after);
    r->state = rc == COMPACT_STOPPED ? CREQ_STOPPED : CREQ_DONE;
    r->status = rc == COMPACT_STOPPED ? KV_OK : rc;
    r->disk_before = before.disk_bytes;
    r->disk_after = after.disk_bytes;
    r->passes = after.compactions - before.compactions;
    r->dropped = after.compact_records_dropped - before.compact_records_dropped;
    r->tombs = after.compact_tombstones_dropped - before.compact_tombstones_dropped;
    r->bytes_read = after.compact_bytes_read - before.compact_bytes_read;
    r->bytes_written = after.compact_bytes_written - before.compact_bytes_written;
    r->pass = r->read = r->total = 0;
}

void req_serve(req_server *s)
{
    kv_db *db = s->db;
    creq_request rq;
    if (!req_waiting(db) || read_request(db, &rq) != 1)
        return;
    creq_result *r = push_result(s, rq.id);
    /* Step 2. A claim that cannot be written (a full disk, say) does not stop the
     * compaction, which may be what frees space; the final answer is tried again. */
    write_results(s);
    db->io->ops->unlink(db->io, db->dirfd, KV_COMPACT_REQ);
    s->cur = r;
    run_request(s, r, &rq);
    s->cur = NULL;
    write_results(s);
    err_clear();
}
