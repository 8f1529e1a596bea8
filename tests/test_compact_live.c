/*
 * test_compact_live.c — the "compact_live" suite: kvcompact on a store a writer holds
 * (issue 14; docs/MULTIPROCESS.md, "Compaction from another process").
 *
 * The writer compacts on request: kvcompact links a request into COMPACT.req, the
 * writer's background thread answers in COMPACT.res (format/creq.h). Checked:
 *   - the protocol without the tool: a request written by the test is served by an
 *     in-process writer with auto_compact 0 (result, figures, its ratio obeyed, the
 *     request removed); garbage (random bytes, a bad CRC, a file too long) is removed
 *     unanswered; a FIFO, a directory or a symbolic link named COMPACT.req is left
 *     alone and never blocks the writer (nor does kvcompact wait on it: exit 3 at
 *     once); a read-only handle serves nothing; all of it under a 10 kHz signal
 *     storm without SA_RESTART too;
 *   - a compaction that fails in the writer (a damaged segment): kvcompact exits 1
 *     with the writer's message naming the file, and the writer goes on;
 *   - leftovers: a writer's open removes regular COMPACT.* files, not others;
 *   - the tool against a writer process: exit 0 with the writer's figures and space
 *     reclaimed; two kvcompacts at once both answered; beside a stopped writer
 *     (SIGSTOP), a second request queues behind a first that may ask less, a third
 *     shares it (it asks more), and all three are answered once it runs again; a
 *     writer stopped, then killed while kvcompact waits: kvcompact compacts the
 *     store itself;
 *   - nothing is lost, whoever is killed when: rounds of a writer process doing
 *     random puts and deletes (16 KiB segments) and logging each acknowledged write
 *     in a shared mapping, kvcompact run against it, a read-only reader process
 *     checking what it reads, and SIGKILL at random moments of each of the three;
 *     then the store is reopened and every acknowledged write must be there with its
 *     newest value (deleted keys absent), no COMPACT.* file may survive the open, and
 *     a kvcompact that finished with the writer alive must have dropped records.
 *
 * Sections: the acknowledged-write log and the writer process, the reader process,
 * running kvcompact, checking the store, requests by hand, the tests.
 */
#include "kvtest.h"

#include "format/creq.h"
#include "format/format.h"
#include "sigstorm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CL_KEYS 400            /* keys "k0000".."k0399" */
#define CL_SEG 16384           /* segment size of the writer process */
#define CL_BURST 1500          /* writes before the writer slows down */
#define CL_WAIT_MS 20000       /* the longest any child is waited for */

/* ---- the acknowledged-write log and the writer process -------------------------------- */

/* Shared between the test and its writer process (MAP_SHARED, made before fork).
 * Each key's last acknowledged write is one word, op << 1 | deleted, so a kill
 * between two stores cannot tear it; the write in flight is noted before the call
 * and cleared after the acknowledgement. op numbers grow across writer processes. */
typedef struct ack_log {
    _Atomic uint64_t acked[CL_KEYS]; /* (op << 1) | deleted; 0: never written */
    _Atomic uint64_t pending;        /* (key << 41) | (op << 1) | deleted, of the call
                                        in flight; 0: none */
    _Atomic uint64_t next_op;        /* the next op number (starts at 1) */
    _Atomic int ready;               /* the writer process has opened the store */
    _Atomic int failed;              /* its kv call failed: msg says how */
    _Atomic uint64_t reads;          /* gets the reader processes checked */
    char msg[512];
} ack_log;

static ack_log *log_new(void)
{
    ack_log *l = mmap(NULL, sizeof *l, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    KVT_CHECK_FATAL(l != MAP_FAILED, "mmap of the log: %s", strerror(errno));
    memset(l, 0, sizeof *l);
    atomic_store(&l->next_op, 1);
    return l;
}

/* The value of op on key: "kNNNN=OP;" and 0..299 letters that depend on op. */
static size_t value_of(unsigned key, uint64_t op, char *v, size_t cap)
{
    int n = snprintf(v, cap, "k%04u=%llu;", key, (unsigned long long)op);
    size_t pad = (size_t)(kvt_mix64(op) % 300);
    if ((size_t)n + pad > cap)
        pad = cap - (size_t)n;
    memset(v + n, 'a' + (int)(op % 26), pad);
    return (size_t)n + pad;
}

/* The op number a stored value was written by, or 0 when it is no value of key. */
static uint64_t op_of(unsigned key, const void *v, size_t vl)
{
    char want[400], head[16];
    unsigned long long op = 0;
    int hl = snprintf(head, sizeof head, "k%04u=", key);
    if (vl < (size_t)hl + 2 || vl > sizeof want || memcmp(v, head, (size_t)hl) != 0)
        return 0;
    const char *d = (const char *)v + hl, *end = (const char *)v + vl; /* no NUL */
    for (; d < end && *d >= '0' && *d <= '9' && op < UINT64_MAX / 10; d++)
        op = op * 10 + (unsigned long long)(*d - '0');
    if (d == end || *d != ';' || op == 0)
        return 0;
    size_t wl = value_of(key, op, want, sizeof want);
    return wl == vl && memcmp(want, v, vl) == 0 ? op : 0;
}

static int fail_log(ack_log *log, const char *what, int rc)
{
    snprintf(log->msg, sizeof log->msg, "%s: %s: %s", what, kv_strerror(rc), kv_errmsg());
    atomic_store(&log->failed, 1);
    return rc;
}

/* One put (9 in 10) or delete of a random key, noted in the log around the call. */
static int write_one(kv_db *db, ack_log *log, kvt_rng *r)
{
    char k[16], v[400];
    unsigned key = (unsigned)kvt_rng_below(r, CL_KEYS);
    uint64_t op = atomic_load(&log->next_op);
    int del = kvt_rng_chance(r, 10), kl = snprintf(k, sizeof k, "k%04u", key), rc;
    atomic_store(&log->pending, (uint64_t)key << 41 | op << 1 | (uint64_t)del);
    if (del) {
        rc = kv_delete(db, k, (size_t)kl);
        rc = rc == KV_NOTFOUND ? KV_OK : rc;
    } else {
        rc = kv_put(db, k, (size_t)kl, v, value_of(key, op, v, sizeof v));
    }
    if (rc != KV_OK)
        return fail_log(log, del ? "kv_delete" : "kv_put", rc);
    atomic_store(&log->acked[key], op << 1 | (uint64_t)del);
    atomic_store(&log->next_op, op + 1);
    atomic_store(&log->pending, 0);
    return KV_OK;
}

/* The writer process: opens the store afresh (after fork), writes CL_BURST times,
 * then on at about 10,000 writes a second (pause < 0: as fast as it can), until
 * killed. Never returns. */
static void writer_main(const char *dir, ack_log *log, uint64_t seed, int auto_compact, int pause)
{
    kv_options o;
    kv_db *db;
    kvt_rng r;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    kvt_rng_seed(&r, seed);
    kv_options_init(&o);
    o.segment_bytes = CL_SEG;
    o.sync = KV_SYNC_NONE; /* an acknowledged write is in the kernel: it survives a kill */
    o.auto_compact = auto_compact;
    int rc = kv_open(dir, &o, &db);
    if (rc != KV_OK)
        _exit(fail_log(log, "kv_open", rc) ? 1 : 1);
    atomic_store(&log->ready, 1);
    for (unsigned long i = 0;; i++) {
        if (write_one(db, log, &r) != KV_OK)
            _exit(2);
        if (i >= CL_BURST && pause > 0 && i % 10 == 0)
            kvt_sleep_ms((unsigned)pause);
    }
}

/* Starts a writer process and waits until it has opened the store. */
static pid_t writer_start(const char *dir, ack_log *log, uint64_t seed, int auto_compact,
                          int pause)
{
    atomic_store(&log->ready, 0);
    fflush(NULL);
    pid_t pid = fork();
    KVT_CHECK_FATAL(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0)
        writer_main(dir, log, seed, auto_compact, pause);
    uint64_t t0 = kvt_now_ms();
    while (!atomic_load(&log->ready) && !atomic_load(&log->failed)
           && kvt_now_ms() - t0 < CL_WAIT_MS)
        kvt_sleep_ms(1);
    KVT_CHECK_FATAL(atomic_load(&log->ready), "the writer process did not open the store: %s",
                    log->msg);
    return pid;
}

/* Waits until the writer process has made at least n more writes. */
static void writer_wait_ops(ack_log *log, uint64_t n)
{
    uint64_t want = atomic_load(&log->next_op) + n, t0 = kvt_now_ms();
    while (atomic_load(&log->next_op) < want && !atomic_load(&log->failed)
           && kvt_now_ms() - t0 < CL_WAIT_MS)
        kvt_sleep_ms(1);
    KVT_CHECK_FATAL(!atomic_load(&log->failed), "the writer process failed: %s", log->msg);
}

/* SIGKILLs pid (if it still runs) and reaps it; returns its wait status. */
static int kill_reap(pid_t pid)
{
    int st = 0;
    if (pid <= 0)
        return 0;
    kill(pid, SIGKILL);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return st;
}

/* Waits up to ms for pid to end by itself: 1 with its status in *st, 0 if it runs. */
static int wait_exit(pid_t pid, unsigned ms, int *st)
{
    uint64_t t0 = kvt_now_ms();
    for (;;) {
        pid_t r = waitpid(pid, st, WNOHANG);
        if (r == pid)
            return 1;
        if (kvt_now_ms() - t0 >= ms)
            return 0;
        kvt_sleep_ms(2);
    }
}

/* ---- the reader process ----------------------------------------------------------------- */

/* The reader process: read-only opens, refreshes and gets, every value checked
 * against its key (op_of), until killed. A wrong value or a failed call ends it with
 * exit 1 and the reason in errfile. */
static void reader_main(const char *dir, ack_log *log, const char *errfile, uint64_t seed)
{
    kvt_rng r;
    char why[600] = "";
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    kvt_rng_seed(&r, seed);
    for (;;) {
        kv_options o;
        kv_db *db;
        kv_options_init(&o);
        o.read_only = 1;
        o.create = 0;
        int rc = kv_open(dir, &o, &db);
        if (rc == KV_EIO) /* "kept changing" under 16 attempts: allowed, try again */
            continue;
        if (rc != KV_OK) {
            snprintf(why, sizeof why, "read-only kv_open: %s: %s", kv_strerror(rc), kv_errmsg());
            break;
        }
        for (int i = 0; i < 20 && why[0] == '\0'; i++) {
            if (i > 0 && (rc = kv_refresh(db)) != KV_OK) {
                if (rc != KV_EIO) /* KV_EIO: "open it again" (also where it is missing) */
                    snprintf(why, sizeof why, "kv_refresh: %s: %s", kv_strerror(rc), kv_errmsg());
                break;
            }
            for (int j = 0; j < 50; j++) {
                char k[16];
                void *v;
                size_t vl;
                unsigned key = (unsigned)kvt_rng_below(&r, CL_KEYS);
                int kl = snprintf(k, sizeof k, "k%04u", key);
                rc = kv_get(db, k, (size_t)kl, &v, &vl);
                atomic_fetch_add(&log->reads, 1);
                if (rc == KV_OK && op_of(key, v, vl) == 0)
                    snprintf(why, sizeof why, "kv_get %s: a value of no write: \"%.40s\"", k,
                             (const char *)v);
                else if (rc != KV_OK && rc != KV_NOTFOUND)
                    snprintf(why, sizeof why, "kv_get %s: %s: %s", k, kv_strerror(rc), kv_errmsg());
                kv_free(rc == KV_OK ? v : NULL);
                if (why[0] != '\0')
                    break;
            }
        }
        kv_close(db);
        if (why[0] != '\0')
            break;
    }
    int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0 && write(fd, why, strlen(why)) < 0)
        why[0] = '\0';
    _exit(1);
}

static pid_t reader_start(const char *dir, ack_log *log, const char *errfile, uint64_t seed)
{
    fflush(NULL);
    pid_t pid = fork();
    KVT_CHECK_FATAL(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0)
        reader_main(dir, log, errfile, seed);
    return pid;
}

/* ---- running kvcompact ---------------------------------------------------------------------- */

/* Starts kvcompact [args] dir, its stdout and stderr to outfile. */
static pid_t kvcompact_start(const char *dir, const char *outfile, const char *arg)
{
    char prog[4096];
    snprintf(prog, sizeof prog, "%s/kvcompact", kvt_bin());
    fflush(NULL);
    pid_t pid = fork();
    KVT_CHECK_FATAL(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(outfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(120);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (arg != NULL)
            execl(prog, "kvcompact", arg, dir, (char *)NULL);
        else
            execl(prog, "kvcompact", dir, (char *)NULL);
        _exit(121);
    }
    return pid;
}

/* What kvcompact's summary line says. 0 when there is none. */
typedef struct summary {
    unsigned long long before, after, passes, dropped, tombs;
} summary;

static int parse_summary(const char *out, summary *s)
{
    for (const char *p = strstr(out, "kvcompact: "); p != NULL; p = strstr(p + 1, "kvcompact: ")) {
        const char *colon = strstr(p, ": ");
        colon = colon != NULL ? strstr(colon + 2, ": ") : NULL;
        if (colon != NULL && sscanf(colon + 2, "%llu -> %llu bytes", &s->before, &s->after) == 2) {
            const char *q = strstr(colon, "reclaimed), ");
            if (q != NULL && sscanf(q + 12, "%llu passes, %llu records dropped (%llu tombstones)",
                                    &s->passes, &s->dropped, &s->tombs) == 3)
                return 1;
        }
    }
    return 0;
}

/* ---- checking the store ---------------------------------------------------------------------- */

/* Whether a stored value (NULL: absent) is what word (op << 1 | deleted; 0: never
 * written) says. */
static int matches(unsigned key, const void *v, size_t vl, uint64_t word)
{
    if (v == NULL)
        return word == 0 || (word & 1);
    return !(word & 1) && word != 0 && op_of(key, v, vl) == word >> 1;
}

/* Opens the store (every other process dead) and checks every key against the log:
 * the acknowledged write, or the one in flight at the kill; a write in flight that
 * made it becomes acknowledged. No COMPACT.* file may survive the open. Returns the
 * number of keys that were wrong (each reported). */
static unsigned check_store(const char *dir, ack_log *log, const char *when)
{
    kv_db *db;
    kv_options o;
    unsigned bad = 0;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, CL_SEG);
    o.auto_compact = 0;
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    uint64_t pend = atomic_load(&log->pending);
    unsigned pkey = (unsigned)(pend >> 41);
    uint64_t pword = pend & ((1ull << 41) - 1);
    for (unsigned key = 0; key < CL_KEYS; key++) {
        char k[16], show[64];
        void *v = NULL;
        size_t vl = 0;
        int kl = snprintf(k, sizeof k, "k%04u", key);
        int rc = kv_get(db, k, (size_t)kl, &v, &vl);
        KVT_CHECK_FATAL(rc == KV_OK || rc == KV_NOTFOUND, "%s: kv_get %s: %s", when, k, kv_errmsg());
        uint64_t word = atomic_load(&log->acked[key]);
        int ok = matches(key, v, vl, word);
        if (!ok && pend != 0 && pkey == key && matches(key, v, vl, pword)) {
            atomic_store(&log->acked[key], pword); /* in flight at the kill, and made it */
            ok = 1;
        }
        if (!ok && bad++ < 5)
            KVT_CHECK(0, "%s: key %s holds %s; the last acknowledged write was op %llu (%s)%s",
                      when, k, v ? kvt_fmt(show, sizeof show, v, vl) : "nothing",
                      (unsigned long long)(word >> 1), word & 1 ? "a delete" : "a put",
                      pend != 0 && pkey == key ? ", another was in flight" : "");
        kv_free(v);
    }
    atomic_store(&log->pending, 0);
    atomic_store(&log->next_op, atomic_load(&log->next_op) + 1); /* the in-flight op's number
                                                                     is never used again */
    const char *names[] = {KV_COMPACT_REQ, KV_COMPACT_REQ_TMP, KV_COMPACT_RES, KV_COMPACT_RES_TMP};
    for (int i = 0; i < 4; i++)
        KVT_CHECK(access(kvt_path(dir, names[i]), F_OK) != 0, "%s: %s survived a writer's open",
                  when, names[i]);
    KVT_RC(kvt_close(db), KV_OK);
    return bad;
}

/* ---- requests by hand ------------------------------------------------------------------------ */

/* Places a request (id, ratio in millionths) as kvcompact does: .tmp, then link. */
static void put_request(const char *dir, const char *id, uint32_t ratio_ppm)
{
    creq_request rq = {.pid = (long)getpid(), .ratio_ppm = ratio_ppm};
    char buf[CREQ_REQ_MAX];
    snprintf(rq.id, sizeof rq.id, "%s", id);
    size_t n = creq_request_encode(&rq, buf, sizeof buf);
    KVT_CHECK_FATAL(n > 0, "encoding request %s", id);
    kvt_spill(kvt_path(dir, KV_COMPACT_REQ_TMP), buf, n);
    KVT_CHECK_FATAL(rename(kvt_path(dir, KV_COMPACT_REQ_TMP), kvt_path(dir, KV_COMPACT_REQ)) == 0,
                    "rename: %s", strerror(errno));
}

/* Waits up to ms for the result of id in state (CREQ_DONE...); 1 with it in *r. */
static int wait_result(const char *dir, const char *id, int state, unsigned ms, creq_result *r)
{
    uint64_t t0 = kvt_now_ms();
    const char *path = kvt_path(dir, KV_COMPACT_RES);
    do {
        creq_result res[CREQ_KEEP];
        struct stat st;
        if (stat(path, &st) == 0) {
            size_t n;
            uint8_t *b = kvt_slurp(path, &n);
            int k = creq_results_parse((const char *)b, n, res, CREQ_KEEP);
            free(b);
            for (int i = 0; i < k; i++)
                if (strcmp(res[i].id, id) == 0 && res[i].state == state) {
                    *r = res[i];
                    return 1;
                }
        }
        kvt_sleep_ms(10);
    } while (kvt_now_ms() - t0 < ms);
    return 0;
}

/* Waits up to ms for name to be gone from dir: 1 when it is. */
static int wait_gone(const char *dir, const char *name, unsigned ms)
{
    uint64_t t0 = kvt_now_ms();
    while (access(kvt_path(dir, name), F_OK) == 0) {
        if (kvt_now_ms() - t0 >= ms)
            return 0;
        kvt_sleep_ms(10);
    }
    return 1;
}

/* Waits up to ms for name to appear in dir: 1 when it is there. */
static int wait_appears(const char *dir, const char *name, unsigned ms)
{
    uint64_t t0 = kvt_now_ms();
    while (access(kvt_path(dir, name), F_OK) != 0) {
        if (kvt_now_ms() - t0 >= ms)
            return 0;
        kvt_sleep_ms(5);
    }
    return 1;
}

/* A store with plenty of garbage, held by an in-process writer with auto_compact 0. */
static kv_db *garbage_store(const char *dir)
{
    kv_options o;
    kv_db *db;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 8192);
    o.auto_compact = 0;
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    for (unsigned i = 0; i < 3000; i++) {
        char k[16], v[400];
        snprintf(k, sizeof k, "k%04u", i % 100);
        KVT_RC_FATAL(kv_put(db, k, strlen(k), v, value_of(i % 100, i + 1, v, sizeof v)), KV_OK);
    }
    return db;
}

static kv_stats stat_of(kv_db *db)
{
    kv_stats st;
    KVT_RC_FATAL(kv_stat(db, &st), KV_OK);
    return st;
}

/* ---- the tests ------------------------------------------------------------------------------- */

/* A request written by hand is served by a writer with auto_compact 0; its ratio is
 * obeyed (1.0: only wholly dead segments; 0.000001: every one with garbage). */
static void test_request_served(void)
{
    char *dir = kvt_dir_new("clive-req");
    kv_db *db = garbage_store(dir);
    creq_result r;
    /* a segment that is partly live: ratio 1 leaves it, 0.000001 takes it */
    KVT_RC(kv_put(db, "keep", 4, "1", 1), KV_OK);
    KVT_RC(kv_compact(db), KV_OK);
    KVT_RC(kv_put(db, "keep", 4, "2", 1), KV_OK);
    for (int i = 0; i < 40; i++)
        KVT_RC(kv_put(db, "live", 4, "123456789012345678901234567890", 30), KV_OK);
    kv_stats st0 = stat_of(db);
    put_request(dir, "ratio-one", 1000000);
    KVT_CHECK_FATAL(wait_result(dir, "ratio-one", CREQ_DONE, 10000, &r), "no result for ratio-one");
    KVT_CHECK(r.status == KV_OK && r.pid == (long)getpid(), "ratio-one: status %d, pid %ld",
              r.status, r.pid);
    KVT_CHECK(access(kvt_path(dir, KV_COMPACT_REQ), F_OK) != 0, "the request was not removed");
    kv_stats st1 = stat_of(db);
    KVT_CHECK(st1.reclaimable_bytes > 0, "ratio 1 compacted a partly live segment");
    put_request(dir, "ratio-tiny", 1);
    KVT_CHECK_FATAL(wait_result(dir, "ratio-tiny", CREQ_DONE, 10000, &r), "no result for ratio-tiny");
    kv_stats st2 = stat_of(db);
    KVT_CHECK(r.status == KV_OK && r.passes > 0 && r.dropped > 0 && r.disk_after < r.disk_before,
              "ratio-tiny: status %d, %llu passes, %llu dropped, %llu -> %llu bytes", r.status,
              (unsigned long long)r.passes, (unsigned long long)r.dropped,
              (unsigned long long)r.disk_before, (unsigned long long)r.disk_after);
    KVT_CHECK(st2.compactions == st1.compactions + r.passes, "kv_stat counts %llu passes, the "
              "result %llu", (unsigned long long)(st2.compactions - st1.compactions),
              (unsigned long long)r.passes);
    KVT_CHECK(st1.compactions >= st0.compactions, "compactions went back");
    /* the result file keeps both answers, newest first */
    creq_result older;
    KVT_CHECK(wait_result(dir, "ratio-one", CREQ_DONE, 0, &older), "the older result was dropped");
    KVT_ASSERT_VALUE(db, "keep", 4, "2", 1);
    kvt_note("ratio 1: %llu reclaimable left; ratio 0.000001: %llu passes, %llu -> %llu bytes",
             (unsigned long long)st1.reclaimable_bytes, (unsigned long long)r.passes,
             (unsigned long long)r.disk_before, (unsigned long long)r.disk_after);
    KVT_RC(kvt_close(db), KV_OK);
}

/* Requests are served, and garbage removed, while every thread of the process (the
 * writer's background thread included) gets 10,000 signals a second without
 * SA_RESTART: no call it makes may take EINTR for a failure. */
static void test_request_signal_storm(void)
{
    char *dir = kvt_dir_new("clive-storm");
    kv_db *db = garbage_store(dir);
    creq_result r;
    KVT_CHECK_FATAL(kvt_storm_start(10000, 0) == 0, "cannot start the signal storm");
    int served = 0;
    for (int i = 0; i < 5; i++) {
        char id[32];
        snprintf(id, sizeof id, "storm-%d", i);
        for (unsigned j = 0; j < 500; j++) { /* garbage to compact */
            char k[16], v[400];
            snprintf(k, sizeof k, "k%04u", j % 100);
            kv_put(db, k, strlen(k), v, value_of(j % 100, 10000u * (unsigned)i + j + 1, v, sizeof v));
        }
        kvt_spill(kvt_path(dir, KV_COMPACT_REQ), "garbage\n", 8);
        KVT_CHECK(wait_gone(dir, KV_COMPACT_REQ, 5000), "storm %d: garbage not removed", i);
        put_request(dir, id, 0);
        served += wait_result(dir, id, CREQ_DONE, 10000, &r) && r.status == KV_OK && r.passes > 0;
    }
    uint64_t hits = kvt_storm_stop();
    KVT_CHECK(served == 5, "%d of 5 requests served under the storm", served);
    KVT_CHECK(stat_of(db).failed == 0, "the writer failed under the storm");
    kvt_note("%llu signals during 5 requests", (unsigned long long)hits);
    KVT_RC(kvt_close(db), KV_OK);
}

/* Garbage requests are removed unanswered; what is not a regular file is left alone
 * and never blocks the writer; a read-only handle serves nothing. */
static void test_request_garbage(void)
{
    char *dir = kvt_dir_new("clive-garbage");
    kv_db *db = garbage_store(dir);
    const char *req = kvt_path(dir, KV_COMPACT_REQ);
    kvt_rng r;
    kvt_rng_seed(&r, 14);
    for (int kind = 0; kind < 4; kind++) {
        uint8_t buf[CREQ_REQ_MAX + 2];
        size_t n = sizeof buf;
        kvt_rng_fill(&r, buf, sizeof buf);
        if (kind == 0) {
            n = 200; /* random bytes */
        } else if (kind == 1 || kind == 2) { /* a request with one byte changed, or empty */
            creq_request rq = {.pid = 1};
            snprintf(rq.id, sizeof rq.id, "garbage-%d", kind);
            n = creq_request_encode(&rq, (char *)buf, sizeof buf);
            if (kind == 1)
                buf[n - 3] ^= 1;
            else
                n = 0;
        } /* kind 3: longer than CREQ_REQ_MAX */
        kvt_spill(req, buf, n);
        KVT_CHECK(wait_gone(dir, KV_COMPACT_REQ, 5000), "garbage request %d was not removed", kind);
        KVT_CHECK(access(kvt_path(dir, KV_COMPACT_RES), F_OK) != 0, "garbage %d was answered", kind);
    }
    /* a FIFO, a directory, a symbolic link to a valid request: left as they are */
    for (int kind = 0; kind < 3; kind++) {
        int made = kind == 0 ? mkfifo(req, 0644)
                   : kind == 1 ? mkdir(req, 0755)
                               : symlink("elsewhere", req);
        KVT_CHECK_FATAL(made == 0, "making COMPACT.req kind %d: %s", kind, strerror(errno));
        if (kind == 2) {
            put_request(dir, "via-link", 0);
            rename(req, kvt_path(dir, "elsewhere"));
            KVT_CHECK_FATAL(symlink("elsewhere", req) == 0, "symlink: %s", strerror(errno));
        }
        kvt_sleep_ms(300);
        struct stat st;
        KVT_CHECK(lstat(req, &st) == 0 && !S_ISREG(st.st_mode), "COMPACT.req kind %d was removed "
                  "or replaced", kind);
        char out[4096];
        int rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvcompact' --timeout 20 '%s'", kvt_bin(),
                          dir);
        KVT_CHECK(rc == 3 && strstr(out, "COMPACT.req: not a regular file") != NULL,
                  "kvcompact beside a COMPACT.req of kind %d: exit %d, \"%s\"", kind, rc, out);
        KVT_RC(kvt_put_str(db, "after", "special"), KV_OK); /* the writer goes on */
        KVT_CHECK(stat_of(db).failed == 0, "the writer failed");
        KVT_CHECK(kind == 0 ? unlink(req) == 0 : kind == 1 ? rmdir(req) == 0 : unlink(req) == 0,
                  "removing COMPACT.req: %s", strerror(errno));
    }
    KVT_CHECK(access(kvt_path(dir, KV_COMPACT_RES), F_OK) != 0, "a special file was answered");
    /* a FIFO named COMPACT.res: kvcompact says so at once; a request is served, but
     * the FIFO is never replaced by an answer */
    const char *resp = kvt_path(dir, KV_COMPACT_RES);
    KVT_CHECK_FATAL(mkfifo(resp, 0644) == 0, "mkfifo: %s", strerror(errno));
    char out[4096];
    int rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvcompact' --timeout 20 '%s'", kvt_bin(), dir);
    KVT_CHECK(rc == 3 && strstr(out, "COMPACT.res: not a regular file") != NULL,
              "kvcompact beside a FIFO named COMPACT.res: exit %d, \"%s\"", rc, out);
    put_request(dir, "to-fifo", 0);
    KVT_CHECK(wait_gone(dir, KV_COMPACT_REQ, 5000), "the request was not taken");
    kvt_sleep_ms(100);
    struct stat fst;
    KVT_CHECK(lstat(resp, &fst) == 0 && S_ISFIFO(fst.st_mode), "the FIFO COMPACT.res was replaced");
    KVT_CHECK(unlink(resp) == 0, "unlink: %s", strerror(errno));
    /* the writer still serves a good request */
    creq_result res;
    put_request(dir, "good", 0);
    KVT_CHECK(wait_result(dir, "good", CREQ_DONE, 10000, &res) && res.status == KV_OK,
              "a good request after the garbage was not served");
    KVT_RC(kvt_close(db), KV_OK);
    unlink(kvt_path(dir, "elsewhere"));

    /* a read-only handle (no writer) never serves */
    kv_options o;
    kv_options_init(&o);
    o.read_only = 1;
    o.create = 0;
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    put_request(dir, "to-nobody", 0);
    kvt_sleep_ms(400);
    KVT_CHECK(access(req, F_OK) == 0 && !wait_result(dir, "to-nobody", CREQ_RUNNING, 0, &res),
              "a read-only handle took a request");
    KVT_RC(kvt_close(db), KV_OK);
}

/* The writer's compaction meets a damaged segment: kvcompact exits 1 with the
 * writer's message, which names the file; the writer goes on. */
static void test_failure_answered(void)
{
    char *dir = kvt_dir_new("clive-damage");
    kv_db *db = garbage_store(dir);
    const char *path = kvt_path(dir, "000002.seg");
    size_t len;
    uint8_t *b = kvt_slurp(path, &len);
    KVT_CHECK_FATAL(len > 1000, "%s: %zu bytes", path, len);
    b[len / 2] ^= 0x40; /* a record of a wholly dead segment: compaction reads it */
    kvt_spill(path, b, len);
    free(b);
    char out[4096];
    int rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvcompact' '%s'", kvt_bin(), dir);
    char pid[48];
    snprintf(pid, sizeof pid, "the writer, pid %d", (int)getpid());
    KVT_CHECK(rc == 1 && strstr(out, "000002.seg") != NULL && strstr(out, pid) != NULL,
              "kvcompact meeting damage through the writer: exit %d (want 1), \"%s\"", rc, out);
    KVT_RC(kvt_put_str(db, "after", "damage"), KV_OK);
    KVT_CHECK(stat_of(db).failed == 0, "the writer failed");
    KVT_RC(kvt_close(db), KV_OK);
}

/* A writer's open removes regular COMPACT.* files; a FIFO under such a name stays;
 * a read-only open removes nothing. */
static void test_leftovers(void)
{
    char *dir = kvt_dir_new("clive-leftovers");
    kv_db *db = garbage_store(dir);
    KVT_RC(kvt_close(db), KV_OK);
    const char *names[] = {KV_COMPACT_REQ, KV_COMPACT_REQ_TMP, KV_COMPACT_RES, KV_COMPACT_RES_TMP};
    for (int i = 0; i < 4; i++)
        kvt_spill(kvt_path(dir, names[i]), "stale\n", 6);
    kv_options o;
    kv_options_init(&o);
    o.read_only = 1;
    o.create = 0;
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);
    for (int i = 0; i < 4; i++)
        KVT_CHECK(access(kvt_path(dir, names[i]), F_OK) == 0, "a read-only open removed %s",
                  names[i]);
    unlink(kvt_path(dir, KV_COMPACT_RES));
    KVT_CHECK_FATAL(mkfifo(kvt_path(dir, KV_COMPACT_RES), 0644) == 0, "mkfifo");
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 8192);
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    for (int i = 0; i < 4; i++) {
        struct stat st;
        int there = lstat(kvt_path(dir, names[i]), &st) == 0;
        KVT_CHECK(i == 2 ? there && S_ISFIFO(st.st_mode) : !there, "%s after a writer's open: %s",
                  names[i], there ? "there" : "gone");
    }
    KVT_RC(kvt_close(db), KV_OK);
}

/* kvcompact against a writer process: the writer's figures, space reclaimed; two at
 * once; and when the writer is stopped and then killed, kvcompact compacts itself. */
static void test_tool_live(void)
{
    char *dir = kvt_dir_new("clive-tool"), *logs = kvt_dir_new("clive-tool-logs");
    char out[8192], want[64];
    summary s = {0};
    ack_log *log = log_new();
    pid_t w = writer_start(dir, log, 1401, 0, 5);
    writer_wait_ops(log, CL_BURST + 100);
    int rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvcompact' '%s'", kvt_bin(), dir);
    snprintf(want, sizeof want, "the writer (pid %d)", (int)w);
    KVT_CHECK(rc == 0 && strstr(out, want) != NULL && parse_summary(out, &s),
              "kvcompact beside writer %d: exit %d, \"%s\"", (int)w, rc, out);
    KVT_CHECK(s.dropped > 0 && s.after < s.before && s.passes > 0, "kvcompact through the "
              "writer: %llu -> %llu bytes, %llu passes, %llu records dropped", s.before, s.after,
              s.passes, s.dropped);
    kvt_note("through the writer: %llu -> %llu bytes, %llu passes, %llu records dropped", s.before,
             s.after, s.passes, s.dropped);

    /* two at once: both answered */
    writer_wait_ops(log, 2000);
    rc = kvt_runf(out, sizeof out, KVT_BOTH, "k='%s/kvcompact'; \"$k\" '%s' & p=$!; \"$k\" '%s'; "
                  "b=$?; wait $p; echo \"exits $? $b\"", kvt_bin(), dir, dir);
    KVT_CHECK(rc == 0 && strstr(out, "exits 0 0") != NULL, "two kvcompacts: \"%s\"", out);

    /* a stopped writer: A's request (ratio 0.5) waits; B (the writer's ratio: A's
     * may ask less) queues behind it; C (ratio 0.9: A's asks more) shares it */
    writer_wait_ops(log, 2000);
    KVT_CHECK_FATAL(kill(w, SIGSTOP) == 0, "SIGSTOP: %s", strerror(errno));
    const char *outs[3] = {kvt_path(logs, "a.out"), kvt_path(logs, "b.out"),
                           kvt_path(logs, "c.out")};
    pid_t abc[3];
    abc[0] = kvcompact_start(dir, outs[0], "--ratio=0.5");
    KVT_CHECK_FATAL(wait_appears(dir, KV_COMPACT_REQ, 10000), "kvcompact A made no request");
    abc[1] = kvcompact_start(dir, outs[1], NULL);
    abc[2] = kvcompact_start(dir, outs[2], "--ratio=0.9");
    kvt_sleep_ms(400);
    KVT_CHECK_FATAL(kill(w, SIGCONT) == 0, "SIGCONT: %s", strerror(errno));
    for (int i = 0; i < 3; i++) {
        int st = 0, ended = wait_exit(abc[i], CL_WAIT_MS, &st);
        size_t n;
        char *text = (char *)kvt_slurp(outs[i], &n);
        text[n] = '\0';
        int shared = strstr(text, "asked already") != NULL;
        KVT_CHECK(ended && WIFEXITED(st) && WEXITSTATUS(st) == 0 && shared == (i == 2)
                      && parse_summary(text, &s),
                  "kvcompact %c: %s 0x%x, %s, \"%s\"", 'A' + i, ended ? "status" : "still running",
                  st, shared ? "shared" : "did not share", text);
        free(text);
        if (!ended)
            kill_reap(abc[i]);
    }

    /* stopped again: the request waits; killed: kvcompact takes over */
    writer_wait_ops(log, 2000);
    KVT_CHECK_FATAL(kill(w, SIGSTOP) == 0, "SIGSTOP: %s", strerror(errno));
    const char *kout = kvt_path(logs, "kvcompact.out");
    pid_t k = kvcompact_start(dir, kout, NULL);
    KVT_CHECK(wait_appears(dir, KV_COMPACT_REQ, 10000), "kvcompact made no request");
    kvt_sleep_ms(200);
    kill_reap(w);
    int st = 0, ended = wait_exit(k, CL_WAIT_MS, &st);
    size_t n;
    char *text = (char *)kvt_slurp(kout, &n);
    text[n] = '\0';
    KVT_CHECK(ended && WIFEXITED(st) && WEXITSTATUS(st) == 0
                  && strstr(text, "compacting the store itself") != NULL,
              "kvcompact after the writer died: %s 0x%x, \"%s\"", ended ? "status" : "still running",
              st, text);
    free(text);
    if (!ended)
        kill_reap(k);
    KVT_CHECK(check_store(dir, log, "after the takeover") == 0, "acknowledged writes lost");
    munmap(log, sizeof *log);
}

/* Rounds of a writer process, kvcompact and a reader, each SIGKILLed at random
 * moments; after each round every acknowledged write must be in the store. */
static void test_kill_loop(void)
{
    char *dir = kvt_dir_new("clive-kill"), *logs = kvt_dir_new("clive-kill-logs");
    ack_log *log = log_new();
    kvt_rng r;
    uint64_t seed = 0x14c0ffee, t_end = kvt_now_ms() + kvt_scaled(22000, 30000);
    unsigned rounds = kvt_scaled(40, 12), done = 0, bad = 0;
    unsigned finished = 0, killed_k = 0, takeovers = 0, reclaimed = 0, reader_checks = 0;
    kvt_rng_seed(&r, seed);
    const char *kout = kvt_path(logs, "kvcompact.out"), *rerr = kvt_path(logs, "reader.err");
    for (; done < rounds && kvt_now_ms() < t_end && bad == 0; done++) {
        char when[64];
        snprintf(when, sizeof when, "round %u (seed 0x%llx)", done, (unsigned long long)seed);
        int scenario = (int)kvt_rng_below(&r, 4), st = 0;
        pid_t w = writer_start(dir, log, kvt_rng_next(&r), kvt_rng_chance(&r, 25), 1);
        unlink(rerr);
        pid_t rd = reader_start(dir, log, rerr, kvt_rng_next(&r));
        /* at least 800 writes over the 400 keys before a kvcompact that must reclaim:
         * twice each on average, so every older segment is eligible */
        writer_wait_ops(log, (uint64_t)kvt_rng_range(&r, scenario == 0 ? 800 : 200, CL_BURST));
        pid_t k = kvcompact_start(dir, kout, kvt_rng_chance(&r, 30) ? "--ratio=0.2" : NULL);
        int k_ended = 0, w_alive = 1;
        if (scenario == 0) { /* kvcompact finishes beside the writer */
            k_ended = wait_exit(k, CL_WAIT_MS, &st);
        } else if (scenario == 1) { /* kvcompact killed at a random moment */
            kvt_sleep_ms((unsigned)kvt_rng_below(&r, 250));
            k_ended = wait_exit(k, 0, &st);
        } else if (scenario == 2) { /* the writer killed; kvcompact must still finish */
            kvt_sleep_ms((unsigned)kvt_rng_below(&r, 250));
            kill_reap(w);
            w_alive = 0;
            k_ended = wait_exit(k, CL_WAIT_MS, &st);
        } else { /* both killed at random moments */
            kvt_sleep_ms((unsigned)kvt_rng_below(&r, 150));
            kill_reap(kvt_rng_chance(&r, 50) ? w : k);
            kvt_sleep_ms((unsigned)kvt_rng_below(&r, 150));
        }
        if (!k_ended)
            kill_reap(k);
        if (kvt_rng_chance(&r, 50))
            kvt_sleep_ms((unsigned)kvt_rng_below(&r, 50));
        int rst = kill_reap(rd);
        if (w_alive)
            kill_reap(w);
        KVT_CHECK(!atomic_load(&log->failed), "%s: the writer failed: %s", when, log->msg);
        size_t n;
        char *text = (char *)kvt_slurp(kout, &n);
        text[n] = '\0';
        if (k_ended) {
            summary s = {0};
            finished++;
            int took = strstr(text, "compacting the store itself") != NULL;
            takeovers += took;
            KVT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && parse_summary(text, &s),
                      "%s: kvcompact ended with status 0x%x: \"%s\"", when, st, text);
            if (scenario == 0 && !took)
                KVT_CHECK(s.dropped > 0, "%s: kvcompact reclaimed nothing: \"%s\"", when, text);
            reclaimed += s.dropped > 0;
        } else {
            killed_k++;
        }
        free(text);
        if (WIFEXITED(rst)) {
            char *why = (char *)kvt_slurp(rerr, &n);
            why[n] = '\0';
            KVT_CHECK(0, "%s: the reader stopped: %s", when, why);
            free(why);
        }
        reader_checks += WIFSIGNALED(rst);
        bad += check_store(dir, log, when);
    }
    int rc;
    char out[4096];
    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvcheck' '%s'", kvt_bin(), dir);
    KVT_CHECK(rc == 0, "kvcheck after the rounds: exit %d, \"%s\"", rc, out);
    kvt_note("%u rounds: kvcompact finished %u times (%u takeovers, %u reclaimed), killed %u "
             "times; %llu writes; %llu gets checked by %u reader processes", done, finished,
             takeovers, reclaimed, killed_k, (unsigned long long)atomic_load(&log->next_op),
             (unsigned long long)atomic_load(&log->reads), reader_checks);
    KVT_CHECK(atomic_load(&log->reads) > 0, "the readers read nothing");
    KVT_CHECK(done >= rounds / 2, "only %u of %u rounds ran", done, rounds);
    KVT_CHECK(finished > 0 && reclaimed > 0, "no kvcompact finished and reclaimed anything");
    munmap(log, sizeof *log);
}

static const kvt_test compact_live_tests[] = {
    {"a request is served by a writer with auto_compact 0, at its ratio", test_request_served},
    {"requests served, garbage removed, under a 10 kHz signal storm without SA_RESTART",
     test_request_signal_storm},
    {"garbage requests are removed unanswered; FIFO, directory, link left; read-only serves "
     "nothing", test_request_garbage},
    {"a compaction that fails in the writer: kvcompact exits 1 with its message",
     test_failure_answered},
    {"a writer's open removes stale COMPACT.* files", test_leftovers},
    {"kvcompact through a writer process; two at once; queued and shared requests; takeover "
     "when the writer dies",
     test_tool_live},
    {"SIGKILL of the writer, kvcompact and a reader at random moments: nothing acknowledged "
     "is lost", test_kill_loop},
    {NULL, NULL},
};

void kvt_register_compact_live(void)
{
    kvt_add_suite("compact_live", compact_live_tests);
}
