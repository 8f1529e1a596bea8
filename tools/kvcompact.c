/*
 * kvcompact.c — compacts a kv store, on its own or through the writer that holds it.
 *
 *   kvcompact [--dry-run] [--ratio R] [--timeout S] [--quiet] DIR
 *
 * Offline (no process holds the store) it takes the writer lock, runs kv_compact —
 * the same code the background thread runs — and prints a summary: bytes before and
 * after, records and tombstones dropped, passes, time. On a terminal a progress line
 * is redrawn while it works. --dry-run opens the store read-only and prints what
 * compaction would reclaim (a writer may hold the store).
 *
 * Live (a writer holds the lock) it asks the writer to compact
 * (docs/MULTIPROCESS.md, "Compaction from another process"): it links a request
 * into DIR/COMPACT.req, waits for the result with its id in DIR/COMPACT.res (the
 * layout: engine/format/creq.h), and prints the same summary from the writer's
 * figures. A request another kvcompact left pending, not yet taken and asking no
 * less than ours (its ratio at most ours), is shared: its compaction starts after we
 * started waiting, so its result is ours; otherwise we wait for the writer to take
 * it, then submit ours. If the writer goes away (the lock is free), kvcompact opens
 * the store itself and compacts it offline; if a new writer took the store, the
 * request it removed as a leftover is submitted again. Only a writer that does not
 * take the request within --timeout seconds (a kv too old to serve requests) ends
 * the wait: the request is withdrawn and the exit status is 3.
 *
 * Exit status (docs/man/kvcompact.1): 0 done (or nothing to do), 1 the store is
 * damaged or compaction failed (the store is left as it was: a damaged segment, an
 * I/O error), 2 usage error, DIR is not a kv store or of a newer format version,
 * 3 a writer holds the store and no answer could be had from it. exit_of maps every
 * status.
 *
 * Sections: helpers, progress, the offline compaction, the request files, waiting
 * for the writer, main.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "format/creq.h"
#include "format/format.h"
#include "io/lock.h"
#include "kv.h"
#include "progress.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_LOCKED = 3 };

#define POLL_MS 50             /* how often the files are looked at while waiting */
#define LOCK_EVERY 4           /* ... and the lock, every this many looks */
#define STALE_TMP_S 5          /* a COMPACT.req.tmp this old was left by a dead run */
#define TIMEOUT_DEFAULT 30.0   /* seconds the writer has to take a request */

static const char usage_text[] =
    "usage: kvcompact [OPTIONS] DIR\n"
    "Compacts the kv store in DIR: rewrites the live records of segments that are\n"
    "mostly dead and deletes the old segments. When a writer holds the store, asks\n"
    "the writer to compact it and waits for its answer.\n"
    "options:\n"
    "  -n, --dry-run    print what would be reclaimed; change nothing\n"
    "  -r, --ratio R    compact segments at least R dead (0 < R <= 1; default 0.5,\n"
    "                   or the writer's compact_dead_ratio)\n"
    "  -t, --timeout S  give a writer S seconds to take the request (default 30)\n"
    "  -q, --quiet      no progress line, no summary\n"
    "  -h, --help       print this help and exit\n"
    "  -V, --version    print the version and exit\n"
    "exit status: 0 done, 1 the store is damaged or compaction failed (store\n"
    "             unchanged), 2 usage error, not a kv store or a newer format,\n"
    "             3 a writer holds the store and did not take the request\n";

/* ---- helpers ---------------------------------------------------------------------- */

/* Bytes of the regular files in dir (what the store occupies). */
static unsigned long long dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    unsigned long long sum = 0;
    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            sum += (unsigned long long)st.st_size;
    }
    closedir(d);
    return sum;
}

static double mib(unsigned long long b) { return (double)b / (1024.0 * 1024.0); }

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Sleeps ms milliseconds, the whole of them whatever signals arrive. */
static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static double secs_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* The exit status of a library status, as the man page's EXIT STATUS lists them:
 * what the command line named is no store kv can use (KV_EINVAL: missing, not a
 * directory, no kv store; KV_EVERSION: a newer format) is 2, like a usage error;
 * another writer is 3; damage (KV_ECORRUPT) and every failure of the work itself
 * (KV_EIO, KV_ENOSPC, KV_ENOMEM, ...) are 1. */
static int exit_of(int rc)
{
    switch (rc) {
    case KV_OK: return EXIT_OK;
    case KV_EINVAL:
    case KV_EVERSION: return EXIT_USAGE;
    case KV_ELOCKED: return EXIT_LOCKED;
    default: return EXIT_FAILED;
    }
}

/* Reports an open failure with the library's message; returns its exit status. */
static int open_failed(const char *dir, int rc)
{
    fprintf(stderr, "kvcompact: %s: %s: %s\n", dir, kv_strerror(rc), kv_errmsg());
    return exit_of(rc);
}

/* The summary line, the same whoever compacted. */
static void print_summary(const char *dir, unsigned long long before, unsigned long long after,
                          uint64_t passes, uint64_t dropped, uint64_t tombs, double secs)
{
    printf("kvcompact: %s: %llu -> %llu bytes (%.1f -> %.1f MiB, %.1f%% reclaimed), "
           "%llu passes, %llu records dropped (%llu tombstones), %.2f s\n",
           dir, before, after, mib(before), mib(after),
           before ? 100.0 * (double)(before - (after < before ? after : before)) / (double)before
                  : 0.0,
           (unsigned long long)passes, (unsigned long long)dropped, (unsigned long long)tombs,
           secs);
}

/* ---- progress --------------------------------------------------------------------- */

typedef struct watcher {
    kv_db *db;
    _Atomic int done;
} watcher;

/* The thread that draws the progress line while kv_compact works. */
static void *progress_main(void *arg)
{
    watcher *w = arg;
    progress line;
    progress_init(&line, "kvcompact", 1);
    while (!atomic_load(&w->done)) {
        kv_stats st;
        sleep_ms(200);
        if (kv_stat(w->db, &st) != KV_OK || !st.compacting || st.compact_pass_total == 0)
            continue;
        progress_draw(&line, "pass %llu: %.1f of %.1f MiB read (%3.0f%%)",
                      (unsigned long long)st.compactions + 1, mib(st.compact_pass_read),
                      mib(st.compact_pass_total),
                      100.0 * (double)st.compact_pass_read / (double)st.compact_pass_total);
    }
    progress_clear(&line);
    return NULL;
}

/* ---- the offline compaction --------------------------------------------------------- */

static int dry_run(const char *dir, const kv_options *base)
{
    kv_options o = *base;
    kv_db *db;
    kv_stats st;
    o.read_only = 1;
    o.create = 0;
    int rc = kv_open(dir, &o, &db);
    if (rc != KV_OK)
        return open_failed(dir, rc);
    kv_stat(db, &st);
    kv_close(db);
    printf("kvcompact: %s: would reclaim %llu bytes (%.1f MiB) of %llu; %llu live, %llu dead "
           "in %llu segments (dry run: nothing changed)\n", dir,
           (unsigned long long)st.reclaimable_bytes, mib(st.reclaimable_bytes),
           (unsigned long long)st.disk_bytes, (unsigned long long)st.live_bytes,
           (unsigned long long)st.dead_bytes, (unsigned long long)st.segments);
    return EXIT_OK;
}

/* Compacts the store db holds (this process holds its lock), closes it and prints
 * the summary; before and t0 were taken before it was opened. */
static int compact_open(kv_db *db, const char *dir, int quiet, unsigned long long before,
                        const struct timespec *t0)
{
    kv_stats st;
    watcher pr = {db, 0};
    pthread_t th;
    int show = !quiet && isatty(STDERR_FILENO)
               && pthread_create(&th, NULL, progress_main, &pr) == 0;
    int rc = kv_compact(db);
    atomic_store(&pr.done, 1);
    if (show)
        pthread_join(th, NULL);
    if (rc != KV_OK)
        fprintf(stderr, "kvcompact: %s: %s: %s\n", dir, kv_strerror(rc), kv_errmsg());
    kv_stat(db, &st);
    int crc = kv_close(db);
    if (crc != KV_OK && rc == KV_OK) {
        fprintf(stderr, "kvcompact: %s: closing: %s: %s\n", dir, kv_strerror(crc), kv_errmsg());
        rc = crc;
    }
    if (!quiet)
        print_summary(dir, before, dir_bytes(dir), st.compactions, st.compact_records_dropped,
                      st.compact_tombstones_dropped, secs_since(t0));
    return rc == KV_OK ? EXIT_OK : EXIT_FAILED;
}

/* Opens the store as its writer for compacting it: KV_OK with *db, or the status. */
static int open_writer(const char *dir, const kv_options *base, kv_db **db)
{
    kv_options o = *base;
    o.create = 0;
    o.auto_compact = 0;
    return kv_open(dir, &o, db);
}

/* ---- the request files ---------------------------------------------------------------- */

/* The wait for a writer's answer (docs/MULTIPROCESS.md). */
typedef struct live {
    const char *dir;
    int dirfd;
    int quiet;
    const kv_options *opts;      /* for a takeover's kv_open */
    uint32_t ratio_ppm;          /* --ratio in millionths, 0 when not given */
    double timeout_s;            /* --timeout */
    struct timespec t0;          /* when kvcompact started */
    char base_id[48];            /* pid.seconds.nanoseconds.random */
    unsigned tries;              /* requests written (the id's last part) */
    char req_id[CREQ_ID_MAX + 1]; /* the id of the request written last */
    enum { L_SUBMIT, L_QUEUED, L_WAIT } mode;
    char wait_id[CREQ_ID_MAX + 1]; /* L_WAIT: the request answered for us;
                                      L_QUEUED: the one in the way */
    int own;                     /* L_WAIT: it is ours (we may withdraw it) */
    int picked;                  /* L_WAIT: its result says the writer took it */
    uint64_t since_ms;           /* when the current wait began */
    long writer;                 /* the writer's pid, as LOCK or a result says */
    progress line;               /* on a terminal */
} live;

/* Reads a small regular file of the store directory (never a FIFO: opened
 * non-blocking, then checked) into buf. Returns its length, or -1 when it is missing,
 * no regular file, unreadable or cap bytes or longer. */
static ssize_t read_small(int dirfd, const char *name, char *buf, size_t cap)
{
    int fd;
    struct stat st;
    do
        fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -1;
    size_t n = 0;
    int bad = fstat(fd, &st) != 0 || !S_ISREG(st.st_mode);
    while (!bad && n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        bad = r < 0;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    return bad || n == cap ? -1 : (ssize_t)n;
}

/* 1 when name exists in the store directory and is no regular file (a FIFO, a
 * directory, a symbolic link: not kv's, never replaced or removed), said on stderr. */
static int not_regular(const live *l, const char *name)
{
    struct stat st;
    if (fstatat(l->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISREG(st.st_mode))
        return 0;
    fprintf(stderr, "kvcompact: %s/%s: not a regular file (not kv's): no request can be "
            "made or answered while it is there; move it away\n", l->dir, name);
    return 1;
}

/* The pid LOCK names (0 when unreadable). */
static long lock_pid(int dirfd)
{
    char buf[32];
    ssize_t n = read_small(dirfd, "LOCK", buf, sizeof buf - 1);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return strtol(buf, NULL, 10);
}

/* The pending request, if COMPACT.req holds one. 0, or -1. */
static int read_request(const live *l, creq_request *r)
{
    char buf[CREQ_REQ_MAX + 1];
    ssize_t n = read_small(l->dirfd, KV_COMPACT_REQ, buf, sizeof buf);
    return n >= 0 && creq_request_parse(buf, (size_t)n, r) == 0 ? 0 : -1;
}

/* The result for id in COMPACT.res into *out: 1 found, 0 not. */
static int read_result(const live *l, const char *id, creq_result *out)
{
    static char buf[CREQ_RES_MAX + 1];
    creq_result res[CREQ_KEEP];
    ssize_t n = read_small(l->dirfd, KV_COMPACT_RES, buf, sizeof buf);
    int k = n >= 0 ? creq_results_parse(buf, (size_t)n, res, CREQ_KEEP) : -1;
    for (int i = 0; i < k; i++)
        if (strcmp(res[i].id, id) == 0) {
            *out = res[i];
            return 1;
        }
    return 0;
}

static int unlink_name(int dirfd, const char *name)
{
    int r;
    do
        r = unlinkat(dirfd, name, 0);
    while (r < 0 && errno == EINTR);
    return r;
}

/* Puts tmp in place as name unless name exists (EEXIST): link(2), or where the file
 * system has no hard links, rename without replacing. 0, or -1 with errno. */
static int place_exclusive(int dirfd, const char *tmp, const char *name)
{
    int r;
    do
        r = linkat(dirfd, tmp, dirfd, name, 0);
    while (r < 0 && errno == EINTR);
    if (r == 0 || (errno != EPERM && errno != EOPNOTSUPP && errno != ENOSYS))
        return r;
    do
        r = renameat2(dirfd, tmp, dirfd, name, RENAME_NOREPLACE);
    while (r < 0 && errno == EINTR);
    return r;
}

/* Writes our next request as COMPACT.req.tmp, created exclusively: two kvcompacts
 * never write it at once. 0; 1 when another is writing its own (or left one behind:
 * removed once STALE_TMP_S old); -1 on failure, said on stderr. */
static int write_tmp(live *l)
{
    char buf[CREQ_REQ_MAX];
    struct stat st;
    int fd;
    do
        fd = openat(l->dirfd, KV_COMPACT_REQ_TMP, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    0644);
    while (fd < 0 && errno == EINTR);
    if (fd < 0 && errno == EEXIST) {
        if (not_regular(l, KV_COMPACT_REQ_TMP))
            return -1;
        if (fstatat(l->dirfd, KV_COMPACT_REQ_TMP, &st, AT_SYMLINK_NOFOLLOW) == 0
            && time(NULL) - st.st_mtime > STALE_TMP_S)
            unlink_name(l->dirfd, KV_COMPACT_REQ_TMP);
        return 1;
    }
    creq_request rq = {.pid = (long)getpid(), .ratio_ppm = l->ratio_ppm};
    snprintf(rq.id, sizeof rq.id, "%s.%u", l->base_id, ++l->tries);
    size_t len = creq_request_encode(&rq, buf, sizeof buf), off = 0;
    int e = fd < 0 ? errno : 0;
    while (fd >= 0 && e == 0 && off < len) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w <= 0 && !(w < 0 && errno == EINTR))
            e = w < 0 ? errno : EIO;
        off += w > 0 ? (size_t)w : 0;
    }
    if (fd >= 0 && close(fd) != 0 && e == 0 && errno != EINTR)
        e = errno;
    if (e != 0) {
        fprintf(stderr, "kvcompact: %s/%s: cannot write the compaction request: %s\n", l->dir,
                KV_COMPACT_REQ_TMP, strerror(e));
        if (fd >= 0)
            unlink_name(l->dirfd, KV_COMPACT_REQ_TMP);
        return -1;
    }
    snprintf(l->req_id, sizeof l->req_id, "%s", rq.id);
    return 0;
}

/* Another request is pending: share it, or queue behind it. Sharing needs one that
 * no writer has taken yet (its compaction then starts after we started waiting: the
 * claim is written before the request is removed, so reading the request, then
 * finding no result for it, proves it was still untaken) and that asks no less than
 * we do (the same ratio, or both given and its no higher). Returns 0, or -1 when
 * COMPACT.req is no regular file (said on stderr). */
static int pending_other(live *l)
{
    creq_request other;
    creq_result r;
    if (read_request(l, &other) != 0) /* gone already, or garbage: try again */
        return not_regular(l, KV_COMPACT_REQ) ? -1 : 0;
    int taken = read_result(l, other.id, &r);
    int covers = other.ratio_ppm == l->ratio_ppm
                 || (other.ratio_ppm != 0 && l->ratio_ppm != 0 && other.ratio_ppm <= l->ratio_ppm);
    if (!taken && covers) {
        l->mode = L_WAIT;
        l->own = 0;
        l->picked = 0;
        l->since_ms = now_ms();
        snprintf(l->wait_id, sizeof l->wait_id, "%s", other.id);
        if (!l->quiet)
            fprintf(stderr, "kvcompact: %s: another kvcompact (pid %ld) asked already; waiting for "
                    "its compaction (request %s)\n", l->dir, other.pid, other.id);
    } else if (l->mode != L_QUEUED || strcmp(l->wait_id, other.id) != 0) {
        l->mode = L_QUEUED;
        l->since_ms = now_ms();
        snprintf(l->wait_id, sizeof l->wait_id, "%s", other.id);
    }
    return 0;
}

/* Submits a request (L_SUBMIT): links COMPACT.req.tmp into place as COMPACT.req,
 * which fails while another request is pending (then pending_other). 0, or -1 when
 * no request can be made (said on stderr). */
static int submit(live *l)
{
    int r = write_tmp(l);
    if (r != 0)
        return r < 0 ? -1 : 0;
    r = place_exclusive(l->dirfd, KV_COMPACT_REQ_TMP, KV_COMPACT_REQ);
    int e = errno;
    unlink_name(l->dirfd, KV_COMPACT_REQ_TMP);
    if (r == 0) {
        l->mode = L_WAIT;
        l->own = 1;
        l->picked = 0;
        l->since_ms = now_ms();
        snprintf(l->wait_id, sizeof l->wait_id, "%s", l->req_id);
        if (!l->quiet)
            fprintf(stderr, "kvcompact: %s: a writer (pid %ld) holds the store: asked it to "
                    "compact (request %s)\n", l->dir, l->writer, l->wait_id);
        return 0;
    }
    if (e == EEXIST)
        return pending_other(l);
    if (e != ENOENT) { /* ENOENT: our tmp was taken for a dead run's; again */
        fprintf(stderr, "kvcompact: %s/%s: cannot submit the compaction request: %s\n", l->dir,
                KV_COMPACT_REQ, strerror(e));
        return -1;
    }
    return 0;
}

/* ---- waiting for the writer ------------------------------------------------------------ */

/* The answer came: the summary from the writer's figures. Returns the exit status. */
static int finish(live *l, const creq_result *r)
{
    progress_clear(&l->line);
    if (r->status != KV_OK)
        fprintf(stderr, "kvcompact: %s: %s: %s (the writer, pid %ld, compacting on request)\n",
                l->dir, kv_strerror(r->status), r->msg, r->pid);
    if (!l->quiet) {
        if (r->status == KV_OK)
            fprintf(stderr, "kvcompact: %s: the writer (pid %ld) compacted the store in %.2f s\n",
                    l->dir, r->pid, (double)r->us / 1e6);
        print_summary(l->dir, r->disk_before, r->disk_after, r->passes, r->dropped, r->tombs,
                      secs_since(&l->t0));
    }
    return exit_of(r->status);
}

/* L_WAIT: looks for the answer. Returns an exit status when it came, -1 otherwise.
 * COMPACT.req is read before COMPACT.res: the writer claims a request in the
 * result file before it removes the request, so a request gone with no result was
 * lost (a new writer's open removed it, or a takeover did) and is submitted again. */
static int look(live *l)
{
    creq_request rq;
    creq_result r;
    int pending = read_request(l, &rq) == 0 && strcmp(rq.id, l->wait_id) == 0;
    if (read_result(l, l->wait_id, &r)) {
        l->writer = r.pid;
        if (r.state == CREQ_DONE)
            return finish(l, &r);
        if (r.state == CREQ_RUNNING) {
            l->picked = 1;
            if (r.total > 0)
                progress_draw(&l->line, "the writer (pid %ld) compacts: pass %llu: %.1f of %.1f "
                              "MiB read (%3.0f%%)", r.pid, (unsigned long long)r.pass,
                              mib(r.read), mib(r.total), 100.0 * (double)r.read / (double)r.total);
            else
                progress_draw(&l->line, "the writer (pid %ld) compacts", r.pid);
            return -1;
        }
    } else if (pending) {
        progress_draw(&l->line, "waiting for the writer (pid %ld) to take the request: %.0f s",
                      l->writer, (double)(now_ms() - l->since_ms) / 1e3);
        return -1;
    }
    /* stopped (the writer closed the store), or lost: ask again */
    l->mode = L_SUBMIT;
    return -1;
}

/* No writer took the request in time: withdraws it (when it is ours and still
 * untaken) and says why. Returns -1 when the writer took it after all. */
static int give_up(live *l)
{
    creq_request rq;
    creq_result r;
    if (l->mode == L_WAIT && l->own && read_request(l, &rq) == 0 && strcmp(rq.id, l->wait_id) == 0)
        unlink_name(l->dirfd, KV_COMPACT_REQ);
    if (l->mode == L_WAIT && read_result(l, l->wait_id, &r)) {
        l->picked = 1; /* taken meanwhile: wait for it */
        return -1;
    }
    progress_clear(&l->line);
    fprintf(stderr, "kvcompact: %s: the writer (pid %ld) did not take the compaction request "
            "within %.0f s%s: it may run a kv too old to serve requests, or be stopped; nothing "
            "was changed (stop the writer and run kvcompact again, or wait longer with "
            "--timeout)\n", l->dir, l->writer, l->timeout_s,
            l->mode == L_QUEUED ? " (another kvcompact's request is still pending)" : "");
    return EXIT_LOCKED;
}

/* The lock is free: the writer is gone. Compacts the store offline (the open removes
 * the request files left behind). Returns the exit status, or -1 when a new writer
 * took the store first (our request, removed by its open, is then submitted again). */
static int take_over(live *l)
{
    kv_db *db;
    unsigned long long before = dir_bytes(l->dir);
    int rc = open_writer(l->dir, l->opts, &db);
    if (rc == KV_ELOCKED) {
        l->writer = lock_pid(l->dirfd);
        return -1;
    }
    progress_clear(&l->line);
    if (rc != KV_OK)
        return open_failed(l->dir, rc);
    if (!l->quiet)
        fprintf(stderr, "kvcompact: %s: the writer (pid %ld) went away before answering (the "
                "lock is free): compacting the store itself\n", l->dir, l->writer);
    return compact_open(db, l->dir, l->quiet, before, &l->t0);
}

/* 1 when the writer lock is free (it is taken and at once released). */
static int lock_free(live *l)
{
    int fd;
    if (lock_take(l->dirfd, l->dir, &fd) != KV_OK)
        return 0;
    lock_release(fd);
    return 1;
}

static void make_base_id(live *l)
{
    struct timespec ts;
    uint32_t rnd = 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
        rnd = (uint32_t)(ts.tv_nsec ^ (long)getpid() * 2654435761u);
    snprintf(l->base_id, sizeof l->base_id, "%ld.%lld.%09ld.%08x", (long)getpid(),
             (long long)ts.tv_sec, ts.tv_nsec, (unsigned)rnd);
}

/* Compacts through the writer that holds the store (see the top of the file). */
static int compact_live(live *l)
{
    int rc = -1;
    l->dirfd = open(l->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (l->dirfd < 0) {
        fprintf(stderr, "kvcompact: %s: cannot open the directory: %s\n", l->dir, strerror(errno));
        return EXIT_LOCKED;
    }
    const char *names[] = {KV_COMPACT_REQ, KV_COMPACT_REQ_TMP, KV_COMPACT_RES, KV_COMPACT_RES_TMP};
    for (int i = 0; i < 4; i++)
        if (not_regular(l, names[i])) {
            close(l->dirfd);
            return EXIT_LOCKED;
        }
    make_base_id(l);
    l->writer = lock_pid(l->dirfd);
    progress_init(&l->line, "kvcompact", !l->quiet);
    for (unsigned tick = 0; rc < 0; tick++) {
        if (l->mode != L_WAIT && submit(l) != 0) {
            rc = EXIT_LOCKED;
            break;
        }
        if (l->mode == L_WAIT)
            rc = look(l);
        else if (l->mode == L_QUEUED)
            progress_draw(&l->line, "waiting behind another kvcompact's request: %.0f s",
                          (double)(now_ms() - l->since_ms) / 1e3);
        if (rc < 0 && l->mode != L_SUBMIT && !l->picked
            && (double)(now_ms() - l->since_ms) > l->timeout_s * 1e3)
            rc = give_up(l);
        if (rc < 0 && tick % LOCK_EVERY == 0 && lock_free(l))
            rc = take_over(l);
        if (rc < 0)
            sleep_ms(POLL_MS);
    }
    progress_clear(&l->line);
    close(l->dirfd);
    return rc;
}

/* Offline when the lock can be had, else through the writer. */
static int compact(const char *dir, const kv_options *base, uint32_t ratio_ppm, double timeout_s,
                   int quiet)
{
    kv_db *db;
    live l = {.dir = dir, .quiet = quiet, .opts = base, .ratio_ppm = ratio_ppm,
              .timeout_s = timeout_s};
    clock_gettime(CLOCK_MONOTONIC, &l.t0);
    unsigned long long before = dir_bytes(dir);
    int rc = open_writer(dir, base, &db);
    if (rc == KV_ELOCKED)
        return compact_live(&l);
    if (rc != KV_OK)
        return open_failed(dir, rc);
    return compact_open(db, dir, quiet, before, &l.t0);
}

/* ---- main ------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dry-run", no_argument, NULL, 'n'}, {"ratio", required_argument, NULL, 'r'},
        {"timeout", required_argument, NULL, 't'}, {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},    {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    kv_options o;
    int dry = 0, quiet = 0, c;
    uint32_t ratio_ppm = 0;
    double timeout_s = TIMEOUT_DEFAULT;
    kv_options_init(&o);
    while ((c = getopt_long(argc, argv, "nr:t:qhV", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'n':
            dry = 1;
            break;
        case 'r':
            errno = 0;
            o.compact_dead_ratio = strtod(optarg, &end);
            if (errno != 0 || *end != '\0' || !(o.compact_dead_ratio >= 1e-6)
                || o.compact_dead_ratio > 1.0) {
                fprintf(stderr, "kvcompact: --ratio %s: not a number in (0, 1] (at least "
                        "0.000001)\n%s", optarg, usage_text);
                return EXIT_USAGE;
            }
            ratio_ppm = (uint32_t)(o.compact_dead_ratio * 1e6 + 0.5);
            break;
        case 't':
            errno = 0;
            timeout_s = strtod(optarg, &end);
            if (errno != 0 || *end != '\0' || !(timeout_s > 0.0) || timeout_s > 1e6) {
                fprintf(stderr, "kvcompact: --timeout %s: not a number of seconds in (0, "
                        "1000000]\n%s", optarg, usage_text);
                return EXIT_USAGE;
            }
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return EXIT_OK;
        case 'V':
            printf("kvcompact (kv) %s\n", kv_version());
            return EXIT_OK;
        default:
            fputs(usage_text, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "kvcompact: %s\n%s", optind >= argc ? "DIR is missing" : "one DIR only",
                usage_text);
        return EXIT_USAGE;
    }
    return dry ? dry_run(argv[optind], &o)
               : compact(argv[optind], &o, ratio_ppm, timeout_s, quiet);
}
