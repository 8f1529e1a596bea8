/*
 * test_readers.c — the "readers" suite: read-only handles that follow a live writer
 * with kv_refresh (issue 14; kv.h, kv_refresh; docs/MULTIPROCESS.md).
 *
 * What kv.h promises a read-only handle, and how each promise is checked here:
 *   - a value read is one the writer wrote: every value names its key and a version
 *     and is derived from both byte for byte, so garbage, a value of another key and
 *     a version never attempted are told apart;
 *   - a key never goes back to an older value: each reader process keeps, per key, the
 *     lowest version it may still see, loaded before each read and raised after it;
 *   - after kv_refresh it sees every write acknowledged before the refresh began: the
 *     writer logs each write's version before the call (attempted) and after it
 *     returns (acked), in memory shared by every process; a reader snapshots acked
 *     before calling kv_refresh and checks each key against it afterwards;
 *   - a batch is seen whole or not at all: some keys are written only by batches
 *     that give a whole group the same version; between two refreshes the view of the
 *     thread that refreshes does not move, so the group must show one version (or be
 *     absent as a whole), and a second reading of keys must give the same answer;
 *     a second thread reads during the refreshes, and once it saw a group's version
 *     no key of that group may show an older one;
 *   - it stays correct, and alive (no SIGBUS: it maps the active segment), while the
 *     writer rolls every few KiB, deletes WAL files, compacts, is SIGKILLed and
 *     restarts, and while readers are killed and restarted; the store then holds
 *     every acknowledged write;
 *   - files the writer retired are closed and unmapped by the next refresh (nothing
 *     " (deleted)" of the store in /proc/self/fd or /proc/self/maps), and kv_stat's
 *     pinned_files and pinned_bytes count them until then;
 *   - the API: kv_refresh(NULL) is KV_EINVAL, KV_OK on a writer, writes on a reader
 *     are KV_EREADONLY, kv_stat's reader fields move as documented, concurrent
 *     refreshes are safe, damage leaves the handle's view usable (KV_ECORRUPT), a
 *     store replaced under the handle is KV_EIO.
 *
 * Deletes are versions too: whether version v of a key is a put or a delete is a pure
 * function of (seed, key, v), so a reader that finds a key absent can tell whether a
 * delete was possible (a delete version between what it must see and what was
 * attempted). Version 0 is "never written", which reads as absent.
 *
 * Seeds: each test prints its seed; KV_READERS_SEED=<n> reruns with it (the writer's
 * choices, the readers' and the kill schedule follow it; the interleaving does not).
 * A failure names the first violation of each reader; KV_READERS_VERBOSE=1 prints
 * every one on stderr as it happens.
 * Durations: KV_TEST_QUICK scales them down; under valgrind (KV_TEST_VALGRIND) the
 * processes do too little in that time for the checks that enough happened. Forked
 * children never call CUnit: they report through the shared memory and their exit
 * status.
 *
 * Sections:
 *   1. Keys, versions and values
 *   2. The memory the processes share, and child processes
 *   3. The writer process
 *   4. Judging what a reader saw
 *   5. The reader process
 *   6. Deleted files a process holds (/proc/self/fd, /proc/self/maps)
 *   7. The tests: live, kill loop, fds and maps, API, concurrent refreshes, damage,
 *      a store replaced
 */
#include "kvtest.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------
 * 1. Keys, versions and values
 * ------------------------------------------------------------------------------ */
#define RD_SINGLES 400    /* keys 0..399: written alone and in mixed batches */
#define RD_GROUPS 10      /* keys 400..499: 10 groups of 10, written only by batches */
#define RD_GSIZE 10       /* ... that give the whole group one version */
#define RD_KEYS (RD_SINGLES + RD_GROUPS * RD_GSIZE)
#define RD_READERS 4      /* reader processes */
#define RD_DEL_PCT 12     /* share of versions that are deletes */
#define RD_VAL_MAX 2048   /* longest value */
#define RD_NONE UINT64_MAX

static int rd_is_group(unsigned k) { return k >= RD_SINGLES; }
static unsigned rd_group(unsigned k) { return (k - RD_SINGLES) / RD_GSIZE; }
static unsigned rd_group_key(unsigned g, unsigned i) { return RD_SINGLES + g * RD_GSIZE + i; }

/* Versions of a group follow one rule for the whole group, those of a single key
 * their own. */
static unsigned rd_rule(unsigned k)
{
    return rd_is_group(k) ? RD_KEYS + rd_group(k) : k;
}

/* 1 when version v of key k is a delete (version 0, "never written", counts as one). */
static int rd_is_delete(uint64_t seed, unsigned k, uint64_t v)
{
    return v == 0 || kvt_mix64(seed * 31u + ((uint64_t)rd_rule(k) << 32) + v) % 100 < RD_DEL_PCT;
}

/* The smallest delete version of key k in [lo, hi], or RD_NONE. */
static uint64_t rd_next_delete(uint64_t seed, unsigned k, uint64_t lo, uint64_t hi)
{
    for (uint64_t v = lo; v <= hi; v++) {
        if (rd_is_delete(seed, k, v))
            return v;
    }
    return RD_NONE;
}

static size_t rd_key(unsigned k, char *buf)
{
    return (size_t)snprintf(buf, 8, "r%03u", k);
}

/* The value of version v of key k: "rKKK vV;" and 0..159 letters derived from
 * (seed, k, v), one value in 32 with 1,800 more (so some records are large). */
static size_t rd_value(uint64_t seed, unsigned k, uint64_t v, char *buf)
{
    uint64_t h = kvt_mix64(seed ^ ((uint64_t)k << 40) ^ (v * 0x9e3779b97f4a7c15ull));
    size_t n = (size_t)snprintf(buf, 40, "r%03u v%llu;", k, (unsigned long long)v);
    size_t pad = (size_t)(h % 160) + ((h >> 20) % 32 == 0 ? 1800 : 0);
    uint64_t x = h;
    for (size_t i = 0; i < pad; i++) {
        if (i % 8 == 0)
            x = kvt_mix64(x);
        buf[n + i] = (char)('a' + ((x >> (i % 8 * 8)) & 0xff) % 26);
    }
    return n + pad;
}

/* The version a value of key k claims, or RD_NONE when it is not exactly the value
 * rd_value makes for that version. */
static uint64_t rd_parse(uint64_t seed, unsigned k, const void *val, size_t n)
{
    const char *s = val;
    char pre[16], want[RD_VAL_MAX];
    size_t pl = (size_t)snprintf(pre, sizeof pre, "r%03u v", k), i = pl;
    uint64_t v = 0;
    if (n < pl + 2 || memcmp(s, pre, pl) != 0)
        return RD_NONE;
    while (i < n && i < pl + 19 && s[i] >= '0' && s[i] <= '9')
        v = v * 10 + (uint64_t)(s[i++] - '0');
    if (i == pl || i >= n || s[i] != ';')
        return RD_NONE;
    size_t wl = rd_value(seed, k, v, want);
    return wl == n && memcmp(want, s, n) == 0 ? v : RD_NONE;
}

/* Highest of a and b. */
static uint64_t rd_max2(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* Raises *a to v unless it is already higher. */
static void rd_raise(_Atomic uint64_t *a, uint64_t v)
{
    uint64_t cur = atomic_load(a);
    while (cur < v && !atomic_compare_exchange_weak(a, &cur, v)) {
    }
}

/* ---------------------------------------------------------------------------------
 * 2. The memory the processes share, and child processes
 * ------------------------------------------------------------------------------ */

/* One reader process's report (a restarted reader adds to its slot). */
typedef struct rd_slot {
    _Atomic uint64_t opens;      /* kv_opens that succeeded */
    _Atomic uint64_t refreshes;  /* kv_refresh calls that returned KV_OK */
    _Atomic uint64_t reads;      /* observations judged (gets and foreach keys) */
    _Atomic uint64_t side_reads; /* of which by the thread reading during refreshes */
    _Atomic uint64_t max_lag;    /* highest kv_stat reader_lag seen */
    _Atomic uint64_t refresh_us; /* total time in kv_refresh */
    _Atomic uint64_t bad;        /* violations */
    _Atomic int has_msg;         /* msg holds the first violation */
    _Atomic int final_ok;        /* the final check ran and passed (live test) */
    char msg[1000];
} rd_slot;

typedef struct rd_shared {
    uint64_t seed;
    _Atomic uint64_t attempted[RD_KEYS]; /* per key: highest version the writer began */
    _Atomic uint64_t acked[RD_KEYS];     /* ... and highest whose call returned */
    _Atomic uint64_t seen[RD_KEYS];      /* lowest version any reader may still see */
    _Atomic int stop_writer;             /* the writer closes the store and exits */
    _Atomic int final;                   /* readers: the writer is gone, check all */
    _Atomic int stop_readers;            /* readers: exit without the final check */
    _Atomic uint64_t w_opens, w_ops, w_bytes, w_deletes, w_batches, w_groups;
    _Atomic uint64_t w_compactions;      /* passes, summed over the writer's lives */
    _Atomic uint64_t w_final_seq;        /* next_seq - 1 at the clean close, or 0 */
    _Atomic int w_failed;                /* w_msg holds the writer's failure */
    char w_msg[600];
    rd_slot slot[RD_READERS];
} rd_shared;

/* What a writer process is told. */
typedef struct rd_conf {
    int sync;           /* KV_SYNC_* */
    uint64_t seg;       /* segment_bytes */
    unsigned life;      /* incarnation, for the writer's random choices */
} rd_conf;

static rd_shared *rd_shared_new(uint64_t seed)
{
    void *p = mmap(NULL, sizeof(rd_shared), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    KVT_CHECK_FATAL(p != MAP_FAILED, "mmap of the shared log: %s", strerror(errno));
    rd_shared *sh = p;
    memset(sh, 0, sizeof *sh); /* atomics of zero bytes are zero (lock-free here) */
    sh->seed = seed;
    return sh;
}

static void rd_shared_free(rd_shared *sh)
{
    munmap(sh, sizeof *sh);
}

/* The test seed: KV_READERS_SEED, else the clock. */
static uint64_t rd_seed(void)
{
    const char *s = getenv("KV_READERS_SEED");
    if (s != NULL && s[0] != '\0')
        return strtoull(s, NULL, 0);
    return kvt_mix64(kvt_now_us() ^ ((uint64_t)getpid() << 32)) % 1000000000u;
}

/* A forked child: its pid, and a pidfd to wait for it with a timeout (-1 if the
 * kernel has none: the waits then block). */
typedef struct rd_child {
    pid_t pid;
    int pidfd;
} rd_child;

static void rd_child_track(rd_child *c, pid_t pid)
{
    c->pid = pid;
    c->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Waits up to ms for c to end, and reaps it. Returns 1 with its status, or 0 when it
 * still runs. */
static int rd_reap(rd_child *c, int ms, int *status)
{
    if (c->pidfd >= 0) {
        struct pollfd p = { .fd = c->pidfd, .events = POLLIN };
        int n;
        while ((n = poll(&p, 1, ms)) < 0 && errno == EINTR) {
        }
        if (n == 0)
            return 0;
    }
    while (waitpid(c->pid, status, 0) < 0 && errno == EINTR) {
    }
    if (c->pidfd >= 0)
        close(c->pidfd);
    c->pid = 0;
    c->pidfd = -1;
    return 1;
}

/* Kills c with SIGKILL and reaps it; a child that cannot be reaped in 30 s is a
 * failure of the test. Returns its status. */
static int rd_kill(rd_child *c)
{
    int st = 0;
    kill(c->pid, SIGKILL);
    KVT_CHECK_FATAL(rd_reap(c, 30000, &st), "child %d does not die of SIGKILL", (int)c->pid);
    return st;
}

/* Waits up to ms for any of the n children to end: returns the index of one that
 * ended (not yet reaped), or -1 when the time passed. */
static int rd_wait_any(const rd_child *cs, int n, int ms)
{
    struct pollfd p[1 + RD_READERS];
    KVT_CHECK_FATAL(n <= 1 + RD_READERS, "rd_wait_any: %d children", n);
    for (int i = 0; i < n; i++) {
        if (cs[i].pidfd < 0) {
            kvt_sleep_ms((unsigned)ms); /* no pidfd: nothing to wait on but the time */
            return -1;
        }
        p[i].fd = cs[i].pidfd;
        p[i].events = POLLIN;
        p[i].revents = 0;
    }
    int got;
    uint64_t end = kvt_now_ms() + (uint64_t)ms;
    while ((got = poll(p, (nfds_t)n, ms)) < 0 && errno == EINTR) {
        uint64_t now = kvt_now_ms();
        ms = now >= end ? 0 : (int)(end - now);
    }
    for (int i = 0; got > 0 && i < n; i++) {
        if (p[i].revents != 0)
            return i;
    }
    return -1;
}

/* "exit 0", "killed by SIGBUS (7)" ... */
static const char *rd_status(int st, char *buf, size_t n)
{
    if (WIFEXITED(st))
        snprintf(buf, n, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, n, "killed by %s (%d)", strsignal(WTERMSIG(st)), WTERMSIG(st));
    else
        snprintf(buf, n, "status 0x%x", st);
    return buf;
}

/* ---------------------------------------------------------------------------------
 * 3. The writer process
 *
 * One operation in three is a batch: mixed batches of 2..8 single keys, each with its
 * own next version, and group batches that put (or delete) all ten keys of a group
 * with the group's next version. Each version is logged in attempted before the call
 * and in acked after it returned. The store rolls every few KiB and compacts in the
 * background (dead ratio 0.25, unpaced), and with kv_compact every 3,000 operations.
 * ------------------------------------------------------------------------------ */

__attribute__((noreturn, format(printf, 2, 3)))
static void rd_writer_fail(rd_shared *sh, const char *fmt, ...)
{
    va_list ap;
    if (atomic_exchange(&sh->w_failed, 1) == 0) {
        va_start(ap, fmt);
        vsnprintf(sh->w_msg, sizeof sh->w_msg, fmt, ap);
        va_end(ap);
    }
    _exit(1);
}

/* Logs the intent of key k's next version and returns it. */
static uint64_t rd_intent(rd_shared *sh, unsigned k)
{
    uint64_t v = atomic_load(&sh->attempted[k]) + 1;
    atomic_store(&sh->attempted[k], v);
    return v;
}

static int rd_write_single(rd_shared *sh, kv_db *db, kvt_rng *r)
{
    char key[8], val[RD_VAL_MAX];
    unsigned k = (unsigned)kvt_rng_below(r, RD_SINGLES);
    size_t kl = rd_key(k, key);
    uint64_t v = rd_intent(sh, k);
    int rc;
    if (rd_is_delete(sh->seed, k, v)) {
        rc = kv_delete(db, key, kl);
        rc = rc == KV_NOTFOUND ? KV_OK : rc; /* absent already: the delete holds */
        atomic_fetch_add(&sh->w_deletes, 1);
    } else {
        size_t vl = rd_value(sh->seed, k, v, val);
        rc = kv_put(db, key, kl, val, vl);
        atomic_fetch_add(&sh->w_bytes, kl + vl + 20);
    }
    if (rc == KV_OK)
        atomic_store(&sh->acked[k], v);
    return rc;
}

/* Adds version v of key k to the batch. */
static int rd_batch_add(rd_shared *sh, kv_batch *b, unsigned k, uint64_t v)
{
    char key[8], val[RD_VAL_MAX];
    size_t kl = rd_key(k, key);
    if (rd_is_delete(sh->seed, k, v))
        return kv_batch_delete(b, key, kl);
    size_t vl = rd_value(sh->seed, k, v, val);
    atomic_fetch_add(&sh->w_bytes, kl + vl + 20);
    return kv_batch_put(b, key, kl, val, vl);
}

/* A batch of 2..8 distinct single keys, each at its next version. */
static int rd_write_mixed(rd_shared *sh, kv_db *db, kv_batch *b, kvt_rng *r)
{
    unsigned ks[8], n = (unsigned)kvt_rng_range(r, 2, 8);
    uint64_t vs[8];
    int rc = KV_OK;
    kv_batch_clear(b);
    for (unsigned i = 0; i < n; i++) {
        unsigned k;
        int dup;
        do {
            k = (unsigned)kvt_rng_below(r, RD_SINGLES);
            dup = 0;
            for (unsigned j = 0; j < i; j++)
                dup |= ks[j] == k;
        } while (dup);
        ks[i] = k;
    }
    for (unsigned i = 0; i < n; i++)
        vs[i] = rd_intent(sh, ks[i]);
    for (unsigned i = 0; i < n && rc == KV_OK; i++)
        rc = rd_batch_add(sh, b, ks[i], vs[i]);
    if (rc == KV_OK)
        rc = kv_write(db, b);
    for (unsigned i = 0; i < n && rc == KV_OK; i++)
        atomic_store(&sh->acked[ks[i]], vs[i]);
    atomic_fetch_add(&sh->w_batches, 1);
    return rc;
}

/* All keys of a random group at the group's next version (the highest attempted of
 * its keys plus one: a writer killed while logging intents leaves them uneven). */
static int rd_write_group(rd_shared *sh, kv_db *db, kv_batch *b, kvt_rng *r)
{
    unsigned g = (unsigned)kvt_rng_below(r, RD_GROUPS);
    uint64_t v = 0;
    int rc = KV_OK;
    kv_batch_clear(b);
    for (unsigned i = 0; i < RD_GSIZE; i++)
        v = rd_max2(v, atomic_load(&sh->attempted[rd_group_key(g, i)]));
    v++;
    for (unsigned i = 0; i < RD_GSIZE; i++)
        atomic_store(&sh->attempted[rd_group_key(g, i)], v);
    for (unsigned i = 0; i < RD_GSIZE && rc == KV_OK; i++)
        rc = rd_batch_add(sh, b, rd_group_key(g, i), v);
    if (rc == KV_OK)
        rc = kv_write(db, b);
    for (unsigned i = 0; i < RD_GSIZE && rc == KV_OK; i++)
        atomic_store(&sh->acked[rd_group_key(g, i)], v);
    atomic_fetch_add(&sh->w_groups, 1);
    return rc;
}

/* The writer child: opens the store afresh and writes until told to stop (or
 * killed). Never returns. */
__attribute__((noreturn))
static void rd_writer_main(rd_shared *sh, const char *dir, const rd_conf *c, int ready_fd)
{
    kv_options o;
    kv_db *db;
    kvt_rng r;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    kv_options_init(&o);
    o.sync = c->sync;
    o.sync_interval_ms = 20;
    o.segment_bytes = c->seg;
    o.auto_compact = 1;
    o.compact_dead_ratio = 0.25;
    o.compact_bytes_per_sec = 0;
    int rc = kv_open(dir, &o, &db);
    if (rc != KV_OK)
        rd_writer_fail(sh, "writer life %u: kv_open: %s: %s", c->life, kv_strerror(rc),
                       kv_errmsg());
    atomic_fetch_add(&sh->w_opens, 1);
    uint64_t base = atomic_load(&sh->w_compactions), ops = 0;
    if (ready_fd >= 0) {
        ssize_t w = write(ready_fd, "r", 1);
        (void)w;
        close(ready_fd);
    }
    kvt_rng_seed(&r, kvt_mix64(sh->seed ^ (0x77ull << 40) ^ c->life));
    kv_batch *b = kv_batch_new();
    if (b == NULL)
        rd_writer_fail(sh, "kv_batch_new: out of memory");
    while (!atomic_load(&sh->stop_writer)) {
        unsigned pick = (unsigned)kvt_rng_below(&r, 100);
        const char *what = pick < 65 ? "put/delete" : pick < 85 ? "mixed batch" : "group batch";
        rc = pick < 65 ? rd_write_single(sh, db, &r)
             : pick < 85 ? rd_write_mixed(sh, db, b, &r) : rd_write_group(sh, db, b, &r);
        if (rc != KV_OK)
            rd_writer_fail(sh, "writer life %u, operation %llu (%s): %s: %s", c->life,
                           (unsigned long long)ops, what, kv_strerror(rc), kv_errmsg());
        atomic_fetch_add(&sh->w_ops, 1);
        if (++ops % 3000 == 0 && (rc = kv_compact(db)) != KV_OK)
            rd_writer_fail(sh, "writer life %u: kv_compact: %s: %s", c->life,
                           kv_strerror(rc), kv_errmsg());
        if (ops % 128 == 0) {
            kv_stats st;
            if (kv_stat(db, &st) == KV_OK)
                atomic_store(&sh->w_compactions, base + st.compactions);
        }
    }
    kv_stats st;
    rc = kv_stat(db, &st);
    if (rc == KV_OK) {
        atomic_store(&sh->w_compactions, base + st.compactions);
        atomic_store(&sh->w_final_seq, st.next_seq - 1);
    }
    kv_batch_free(b);
    if ((rc = kv_close(db)) != KV_OK)
        rd_writer_fail(sh, "writer life %u: kv_close: %s: %s", c->life, kv_strerror(rc),
                       kv_errmsg());
    _exit(0);
}

/* Forks a writer; with ready_fd >= 0 (a pipe's write end) it writes a byte there once
 * its kv_open succeeded. */
static void rd_spawn_writer(rd_child *c, rd_shared *sh, const char *dir, const rd_conf *conf,
                            int ready_fd)
{
    fflush(NULL);
    pid_t pid = fork();
    KVT_CHECK_FATAL(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0)
        rd_writer_main(sh, dir, conf, ready_fd);
    rd_child_track(c, pid);
}

/* ---------------------------------------------------------------------------------
 * 4. Judging what a reader saw
 * ------------------------------------------------------------------------------ */
enum { OBS_ABSENT = 0, OBS_PRESENT, OBS_GARBAGE, OBS_ERROR };

typedef struct rd_obs {
    int kind;          /* OBS_* */
    uint64_t v;        /* OBS_PRESENT: the version read */
    char text[200];    /* OBS_GARBAGE: the value; OBS_ERROR: status and kv_errmsg */
} rd_obs;

/* Classifies what kv_get (or kv_foreach) gave for key k. */
static void rd_obs_set(uint64_t seed, unsigned k, int rc, const void *val, size_t vl, rd_obs *o)
{
    o->v = 0;
    o->text[0] = '\0';
    if (rc == KV_NOTFOUND) {
        o->kind = OBS_ABSENT;
    } else if (rc != KV_OK) {
        o->kind = OBS_ERROR;
        snprintf(o->text, sizeof o->text, "%s: %s", kv_strerror(rc), kv_errmsg());
    } else if ((o->v = rd_parse(seed, k, val, vl)) == RD_NONE) {
        o->kind = OBS_GARBAGE;
        kvt_fmt(o->text, sizeof o->text, val, vl);
    } else {
        o->kind = OBS_PRESENT;
    }
}

static void rd_observe(kv_db *db, uint64_t seed, unsigned k, rd_obs *o)
{
    char key[8];
    void *val = NULL;
    size_t vl = 0;
    int rc = kv_get(db, key, rd_key(k, key), &val, &vl);
    rd_obs_set(seed, k, rc, val, vl, o);
    kv_free(val);
}

/* Judges observation o of key k. lo_seen: the version the observer had already seen
 * (or that an earlier handle saw) before the read began; lo_acked: the version
 * acknowledged before the refresh the read follows (0: none applies); hi: the
 * highest version attempted, loaded after the read. Returns 0 and in *bound the
 * lowest version the key may show from now on, or -1 with why. */
static int rd_judge(uint64_t seed, unsigned k, const rd_obs *o, uint64_t lo_seen,
                    uint64_t lo_acked, uint64_t hi, uint64_t *bound, char *why, size_t n)
{
    char key[8];
    rd_key(k, key);
    switch (o->kind) {
    case OBS_ERROR:
        snprintf(why, n, "key %s: kv_get failed: %s", key, o->text);
        return -1;
    case OBS_GARBAGE:
        snprintf(why, n, "key %s: a value the writer never wrote for it: \"%s\"", key, o->text);
        return -1;
    case OBS_PRESENT:
        if (rd_is_delete(seed, k, o->v))
            snprintf(why, n, "key %s: shows version %llu, which the writer wrote as a delete",
                     key, (unsigned long long)o->v);
        else if (o->v > hi)
            snprintf(why, n, "key %s: shows version %llu, never attempted (highest attempted "
                     "%llu)", key, (unsigned long long)o->v, (unsigned long long)hi);
        else if (o->v < lo_acked)
            snprintf(why, n, "key %s: shows version %llu, but version %llu was acknowledged "
                     "before the refresh began", key, (unsigned long long)o->v,
                     (unsigned long long)lo_acked);
        else if (o->v < lo_seen)
            snprintf(why, n, "key %s: went back from version %llu to %llu", key,
                     (unsigned long long)lo_seen, (unsigned long long)o->v);
        else {
            *bound = o->v;
            return 0;
        }
        return -1;
    default: {
        uint64_t lo = rd_max2(lo_seen, lo_acked);
        uint64_t d = rd_next_delete(seed, k, lo, hi);
        if (d != RD_NONE) {
            *bound = d;
            return 0;
        }
        if (lo_acked >= lo_seen)
            snprintf(why, n, "key %s: absent, but version %llu (a put) was acknowledged "
                     "before the refresh began, and no delete was attempted since (highest "
                     "attempted %llu)", key, (unsigned long long)lo_acked,
                     (unsigned long long)hi);
        else
            snprintf(why, n, "key %s: absent after version %llu (a put) was seen, and no "
                     "delete was attempted since (highest attempted %llu)", key,
                     (unsigned long long)lo_seen, (unsigned long long)hi);
        return -1;
    }
    }
}

/* Checks that the observations of every group agree: all present with one version,
 * or all absent. Returns 0, or -1 with why. */
static int rd_groups_whole(const rd_obs *obs, char *why, size_t n)
{
    for (unsigned g = 0; g < RD_GROUPS; g++) {
        const rd_obs *a = &obs[rd_group_key(g, 0)];
        for (unsigned i = 1; i < RD_GSIZE; i++) {
            const rd_obs *b = &obs[rd_group_key(g, i)];
            if (a->kind == b->kind && (a->kind != OBS_PRESENT || a->v == b->v))
                continue;
            char o1[32], o2[32];
            snprintf(o1, sizeof o1, a->kind == OBS_PRESENT ? "version %llu" : "absent",
                     (unsigned long long)a->v);
            snprintf(o2, sizeof o2, b->kind == OBS_PRESENT ? "version %llu" : "absent",
                     (unsigned long long)b->v);
            snprintf(why, n, "batch seen in part: between two refreshes key r%03u shows %s, "
                     "key r%03u of the same batch group shows %s", rd_group_key(g, 0), o1,
                     rd_group_key(g, i), o2);
            return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------
 * 5. The reader process
 *
 * The main thread loops: snapshot acked, kv_refresh, read every key (kv_get, or one
 * kv_foreach in three cycles), judge each against the snapshot and against what the
 * process saw before, check the groups, read 16 keys again (same answers). A second
 * thread reads random keys and whole groups meanwhile, during the refreshes too.
 * Both publish what they saw in seen[], which a restarted reader and the final check
 * of the kill loop start from.
 * ------------------------------------------------------------------------------ */
typedef struct rd_reader {
    rd_shared *sh;
    rd_slot *slot;
    unsigned idx;
    kv_db *db;
    uint64_t cycle;           /* refreshes of the main thread */
    uint64_t last_seq;        /* kv_stat reader_seq after the last refresh */
    atomic_int side_stop;
    int bad;                  /* violations of this process */
} rd_reader;

/* Per process (each reader is its own process): the lowest version each key, and
 * each group, may still show, shared by the reader's two threads. */
static _Atomic uint64_t g_lb[RD_KEYS];
static _Atomic uint64_t g_glb[RD_GROUPS];
/* ... and, for the messages, the highest such bound that came from reading the key
 * (or a key of the group) absent: the lowest delete version that explains it. */
static _Atomic uint64_t g_absent_at[RD_KEYS + RD_GROUPS];
static int g_verbose; /* KV_READERS_VERBOSE: every violation on stderr, not only the first */

__attribute__((format(printf, 3, 4)))
static void rd_violation(rd_reader *r, const char *where, const char *fmt, ...)
{
    va_list ap;
    char msg[900];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    atomic_fetch_add(&r->slot->bad, 1);
    r->bad++;
    if (g_verbose)
        fprintf(stderr, "kvtest: readers: reader %u (pid %d), refresh %llu, %s: %s\n", r->idx,
                (int)getpid(), (unsigned long long)r->cycle, where, msg);
    if (atomic_exchange(&r->slot->has_msg, 1) == 0)
        snprintf(r->slot->msg, sizeof r->slot->msg, "reader %u (pid %d), refresh %llu, %s: %s",
                 r->idx, (int)getpid(), (unsigned long long)r->cycle, where, msg);
}

/* The lowest version key k may show, from what this process saw. */
static uint64_t rd_lo(unsigned k)
{
    uint64_t lo = atomic_load(&g_lb[k]);
    return rd_is_group(k) ? rd_max2(lo, atomic_load(&g_glb[rd_group(k)])) : lo;
}

/* Records what an observation of key k proved: the bounds of this process and the
 * store-wide seen[]. */
static void rd_learn(rd_reader *r, unsigned k, uint64_t bound, int absent)
{
    rd_raise(&g_lb[k], bound);
    if (absent)
        rd_raise(&g_absent_at[k], bound);
    if (rd_is_group(k)) {
        rd_raise(&g_glb[rd_group(k)], bound);
        if (absent)
            rd_raise(&g_absent_at[RD_KEYS + rd_group(k)], bound);
    }
    rd_raise(&r->sh->seen[k], bound);
}

/* Judges one observation made after lo_seen was loaded; attempted is loaded now,
 * after the read. Returns 0, or -1 with the violation recorded. */
static int rd_check(rd_reader *r, const char *where, unsigned k, const rd_obs *o,
                    uint64_t lo_seen, uint64_t lo_acked)
{
    uint64_t hi = atomic_load(&r->sh->attempted[k]), bound = 0;
    char why[400];
    atomic_fetch_add(&r->slot->reads, 1);
    if (rd_judge(r->sh->seed, k, o, lo_seen, lo_acked, hi, &bound, why, sizeof why) != 0) {
        /* What a second read shows at once tells a passing state from a lost write. */
        rd_obs again;
        rd_observe(r->db, r->sh->seed, k, &again);
        uint64_t abs = atomic_load(&g_absent_at[k]);
        if (rd_is_group(k))
            abs = rd_max2(abs, atomic_load(&g_absent_at[RD_KEYS + rd_group(k)]));
        rd_violation(r, where, "%s [read again at once: %s %llu%s%s]%s", why,
                     again.kind == OBS_PRESENT ? "version" : again.kind == OBS_ABSENT
                     ? "absent" : "error", (unsigned long long)again.v,
                     again.text[0] ? " " : "", again.text, abs != 0 && abs == lo_seen
                     ? " (the version it went back from was inferred: the key, or a key of "
                     "its group, read absent before, which only a delete at that version "
                     "or later explains)" : "");
        return -1;
    }
    rd_learn(r, k, bound, o->kind == OBS_ABSENT);
    return 0;
}

/* The second thread: random keys and whole groups, read while the main thread
 * refreshes; every read is judged against what the process saw before it. */
static void *rd_side_main(void *arg)
{
    rd_reader *r = arg;
    kvt_rng rng;
    kvt_rng_seed(&rng, kvt_mix64(r->sh->seed ^ ((uint64_t)getpid() << 24) ^ 0x51de));
    while (!atomic_load(&r->side_stop)) {
        unsigned first, n;
        if (kvt_rng_chance(&rng, 30)) {
            first = rd_group_key((unsigned)kvt_rng_below(&rng, RD_GROUPS), 0);
            n = RD_GSIZE;
        } else {
            first = (unsigned)kvt_rng_below(&rng, RD_KEYS);
            n = 1;
        }
        for (unsigned k = first; k < first + n; k++) {
            rd_obs o;
            uint64_t lo = rd_lo(k);
            rd_observe(r->db, r->sh->seed, k, &o);
            rd_check(r, "a get during refreshes", k, &o, lo, 0);
            atomic_fetch_add(&r->slot->side_reads, 1);
        }
    }
    return NULL;
}

/* The main thread's view of one cycle (per process). */
static rd_obs g_obs[RD_KEYS];
static uint64_t g_acked0[RD_KEYS], g_lo0[RD_KEYS];
static unsigned char g_visited[RD_KEYS];

typedef struct rd_fe {
    uint64_t seed;
    unsigned dup, foreign;  /* keys visited twice; keys the writer never wrote */
    char first[120];        /* the first of those */
} rd_fe;

static int rd_foreach_fn(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
    rd_fe *fe = arg;
    const char *s = k;
    unsigned key = 0;
    int ok = kl == 4 && s[0] == 'r';
    for (size_t i = 1; ok && i < 4; i++) {
        ok = s[i] >= '0' && s[i] <= '9';
        key = key * 10 + (unsigned)(s[i] - '0');
    }
    if (!ok || key >= RD_KEYS) {
        if (fe->foreign++ == 0)
            kvt_fmt(fe->first, sizeof fe->first, k, kl);
        return 0;
    }
    if (g_visited[key]++ != 0) {
        if (fe->dup++ == 0 && fe->foreign == 0)
            snprintf(fe->first, sizeof fe->first, "r%03u", key);
        return 0;
    }
    rd_obs_set(fe->seed, key, KV_OK, v, vl, &g_obs[key]);
    return 0;
}

/* Reads every key after a refresh into g_obs, with kv_get or one kv_foreach.
 * Returns 0, or -1 with the violation recorded. */
static int rd_read_all(rd_reader *r, int use_foreach, const char *where)
{
    if (!use_foreach) {
        for (unsigned k = 0; k < RD_KEYS; k++)
            rd_observe(r->db, r->sh->seed, k, &g_obs[k]);
        return 0;
    }
    rd_fe fe = { .seed = r->sh->seed };
    memset(g_visited, 0, sizeof g_visited);
    for (unsigned k = 0; k < RD_KEYS; k++)
        g_obs[k] = (rd_obs){ .kind = OBS_ABSENT };
    int rc = kv_foreach(r->db, rd_foreach_fn, &fe);
    if (rc != KV_OK) {
        rd_violation(r, where, "kv_foreach: %s: %s", kv_strerror(rc), kv_errmsg());
        return -1;
    }
    if (fe.dup != 0 || fe.foreign != 0) {
        rd_violation(r, where, "%u keys visited twice, %u keys never written (first \"%s\")",
                     fe.dup, fe.foreign, fe.first);
        return -1;
    }
    return 0;
}

/* kv_stat after a refresh: refreshes counts them, reader_seq never goes back. */
static void rd_check_stats(rd_reader *r, uint64_t refreshed)
{
    kv_stats st;
    int rc = kv_stat(r->db, &st);
    if (rc != KV_OK) {
        rd_violation(r, "kv_stat", "%s: %s", kv_strerror(rc), kv_errmsg());
        return;
    }
    if (st.read_only != 1 || st.refreshes != refreshed)
        rd_violation(r, "kv_stat", "read_only %d, refreshes %llu after %llu refreshes",
                     st.read_only, (unsigned long long)st.refreshes,
                     (unsigned long long)refreshed);
    if (st.reader_seq < r->last_seq)
        rd_violation(r, "kv_stat", "reader_seq went back from %llu to %llu",
                     (unsigned long long)r->last_seq, (unsigned long long)st.reader_seq);
    r->last_seq = st.reader_seq;
    rd_raise(&r->slot->max_lag, st.reader_lag);
}

/* One cycle of the main thread: snapshot acked, refresh, read and judge every key,
 * check the groups, read 16 keys again. */
static void rd_cycle(rd_reader *r, kvt_rng *rng, int use_foreach)
{
    static uint64_t refreshed; /* per process: this handle's successful refreshes */
    rd_shared *sh = r->sh;
    const char *where = use_foreach ? "kv_foreach after kv_refresh" : "kv_get after kv_refresh";
    char why[400];
    for (unsigned k = 0; k < RD_KEYS; k++)
        g_acked0[k] = atomic_load(&sh->acked[k]);
    uint64_t t0 = kvt_now_us();
    int rc = kv_refresh(r->db);
    uint64_t us = kvt_now_us() - t0;
    r->cycle++;
    if (rc != KV_OK) {
        rd_violation(r, "kv_refresh", "%s: %s", kv_strerror(rc), kv_errmsg());
        return;
    }
    atomic_fetch_add(&r->slot->refreshes, 1);
    atomic_fetch_add(&r->slot->refresh_us, us);
    rd_check_stats(r, ++refreshed);
    for (unsigned k = 0; k < RD_KEYS; k++)
        g_lo0[k] = rd_lo(k);
    if (rd_read_all(r, use_foreach, where) != 0)
        return;
    for (unsigned k = 0; k < RD_KEYS; k++)
        rd_check(r, where, k, &g_obs[k], g_lo0[k], g_acked0[k]);
    if (rd_groups_whole(g_obs, why, sizeof why) != 0)
        rd_violation(r, where, "%s", why);
    for (unsigned i = 0; i < 16; i++) {
        unsigned k = (unsigned)kvt_rng_below(rng, RD_KEYS);
        rd_obs o;
        rd_observe(r->db, sh->seed, k, &o);
        if (o.kind != g_obs[k].kind || o.v != g_obs[k].v)
            rd_violation(r, where, "key r%03u read again without a refresh: kind %d version "
                         "%llu, first kind %d version %llu (the view moved between refreshes)",
                         k, o.kind, (unsigned long long)o.v, g_obs[k].kind,
                         (unsigned long long)g_obs[k].v);
    }
}

/* ---------------------------------------------------------------------------------
 * 6. Deleted files a process holds
 * ------------------------------------------------------------------------------ */
typedef struct rd_held {
    unsigned fds;        /* descriptors of deleted files under the store directory */
    unsigned maps;       /* mappings of such files */
    unsigned files;      /* distinct files (inodes) among them */
    uint64_t fd_bytes;   /* st_size summed over the distinct files a descriptor holds */
    char first[320];     /* the first one found */
} rd_held;

/* 1 when path is "DIR/<name> (deleted)". */
static int rd_deleted_under(const char *path, const char *dir)
{
    static const char tail[] = " (deleted)";
    size_t pl = strlen(path), dl = strlen(dir), tl = sizeof tail - 1;
    return pl > dl + 1 + tl && strncmp(path, dir, dl) == 0 && path[dl] == '/'
           && strcmp(path + pl - tl, tail) == 0;
}

/* Adds ino to the set; returns 1 when it was not there. */
static int rd_ino_add(uint64_t *set, unsigned *n, unsigned cap, uint64_t ino)
{
    for (unsigned i = 0; i < *n; i++) {
        if (set[i] == ino)
            return 0;
    }
    if (*n < cap)
        set[(*n)++] = ino;
    return 1;
}

/* What this process holds of the deleted files under dir (a canonical path), from
 * /proc/self/fd (readlink) and /proc/self/maps. */
static void rd_deleted_held(const char *dir, rd_held *h)
{
    uint64_t inos[1024];
    unsigned ni = 0;
    char line[PATH_MAX + 256];
    memset(h, 0, sizeof *h);
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char link[300], target[PATH_MAX + 32];
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (!rd_deleted_under(target, dir))
            continue;
        if (h->fds++ == 0 && h->first[0] == '\0')
            snprintf(h->first, sizeof h->first, "descriptor %.20s -> %.280s", e->d_name, target);
        if (stat(link, &st) == 0 && rd_ino_add(inos, &ni, 1024, (uint64_t)st.st_ino))
            h->fd_bytes += (uint64_t)st.st_size;
    }
    if (d != NULL)
        closedir(d);
    FILE *f = fopen("/proc/self/maps", "r");
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        unsigned long long ino = 0;
        int at = 0;
        line[strcspn(line, "\n")] = '\0';
        if (sscanf(line, "%*s %*s %*s %*s %llu %n", &ino, &at) < 1 || at == 0)
            continue;
        if (!rd_deleted_under(line + at, dir))
            continue;
        if (h->maps++ == 0 && h->fds == 0)
            snprintf(h->first, sizeof h->first, "mapping %.300s", line);
        rd_ino_add(inos, &ni, 1024, ino);
    }
    if (f != NULL)
        fclose(f);
    h->files = ni;
}

/* The reader's last check in the live test, the writer closed: one more cycle, then
 * every key exactly as last acknowledged, reader_seq at the writer's last sequence
 * number, and no deleted store file held (kv_stat and /proc agree). */
static void rd_final(rd_reader *r, kvt_rng *rng, const char *dir)
{
    rd_shared *sh = r->sh;
    int before = r->bad;
    uint64_t fin = atomic_load(&sh->w_final_seq);
    rd_cycle(r, rng, 0);
    if (r->bad != before)
        return;
    for (unsigned k = 0; k < RD_KEYS; k++) {
        uint64_t a = atomic_load(&sh->acked[k]);
        int want_absent = rd_is_delete(sh->seed, k, a);
        const rd_obs *o = &g_obs[k];
        if (want_absent ? o->kind != OBS_ABSENT : o->kind != OBS_PRESENT || o->v != a)
            rd_violation(r, "final check", "key r%03u: kind %d version %llu, but the writer "
                         "closed with version %llu (%s) its last", k, o->kind,
                         (unsigned long long)o->v, (unsigned long long)a,
                         want_absent ? "a delete" : "a put");
    }
    kv_stats st;
    if (kv_stat(r->db, &st) != KV_OK || st.reader_seq != fin || st.pinned_files != 0
        || st.pinned_bytes != 0)
        rd_violation(r, "final check", "kv_stat after the writer closed and one refresh: "
                     "reader_seq %llu (the writer's last: %llu), pinned_files %llu, "
                     "pinned_bytes %llu (expected 0 and 0)", (unsigned long long)st.reader_seq,
                     (unsigned long long)fin, (unsigned long long)st.pinned_files,
                     (unsigned long long)st.pinned_bytes);
    rd_held h;
    rd_deleted_held(dir, &h);
    if (h.fds != 0 || h.maps != 0)
        rd_violation(r, "final check", "after the last refresh the reader still holds %u "
                     "descriptors and %u mappings of deleted store files: %s", h.fds, h.maps,
                     h.first);
    if (r->bad == before)
        atomic_store(&r->slot->final_ok, 1);
}

/* The reader child: opens read-only and cycles until told to stop; in the live test
 * (final set) it checks the final state. Exits 0, or 1 after violations (recorded in
 * its slot). Never returns. */
__attribute__((noreturn))
static void rd_reader_main(rd_shared *sh, unsigned idx, const char *dir, int mmap_reads)
{
    rd_reader r;
    kv_options o;
    kvt_rng rng;
    pthread_t side;
    memset(&r, 0, sizeof r);
    r.sh = sh;
    r.slot = &sh->slot[idx];
    r.idx = idx;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    g_verbose = getenv("KV_READERS_VERBOSE") != NULL;
    /* A new handle sees at least what any reader saw before it opened. */
    for (unsigned g = 0; g < RD_GROUPS; g++)
        atomic_store(&g_glb[g], 0);
    for (unsigned i = 0; i < RD_KEYS + RD_GROUPS; i++)
        atomic_store(&g_absent_at[i], 0);
    for (unsigned k = 0; k < RD_KEYS; k++) {
        atomic_store(&g_lb[k], atomic_load(&sh->seen[k]));
        if (rd_is_group(k))
            rd_raise(&g_glb[rd_group(k)], atomic_load(&g_lb[k]));
    }
    kvt_rng_seed(&rng, kvt_mix64(sh->seed ^ ((uint64_t)getpid() << 16) ^ idx));
    kv_options_init(&o);
    o.read_only = 1;
    o.create = 0;
    o.mmap_reads = mmap_reads;
    int rc = kv_open(dir, &o, &r.db);
    if (rc != KV_OK) {
        rd_violation(&r, "kv_open (read-only)", "%s: %s", kv_strerror(rc), kv_errmsg());
        _exit(1);
    }
    atomic_fetch_add(&r.slot->opens, 1);
    atomic_init(&r.side_stop, 0);
    if (pthread_create(&side, NULL, rd_side_main, &r) != 0) {
        rd_violation(&r, "pthread_create", "%s", strerror(errno));
        _exit(1);
    }
    while (!atomic_load(&sh->stop_readers) && !atomic_load(&sh->final))
        rd_cycle(&r, &rng, r.cycle % 3 == 2);
    atomic_store(&r.side_stop, 1);
    pthread_join(side, NULL);
    if (atomic_load(&sh->final) && !atomic_load(&sh->stop_readers))
        rd_final(&r, &rng, dir);
    if ((rc = kv_close(r.db)) != KV_OK)
        rd_violation(&r, "kv_close", "%s: %s", kv_strerror(rc), kv_errmsg());
    _exit(r.bad != 0 ? 1 : 0);
}

static void rd_spawn_reader(rd_child *c, rd_shared *sh, unsigned idx, const char *dir,
                            int mmap_reads)
{
    fflush(NULL);
    pid_t pid = fork();
    KVT_CHECK_FATAL(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0)
        rd_reader_main(sh, idx, dir, mmap_reads);
    rd_child_track(c, pid);
}

/* ---------------------------------------------------------------------------------
 * 7. The tests
 * ------------------------------------------------------------------------------ */
static const char *rd_sync_name(int sync)
{
    return sync == KV_SYNC_ALWAYS ? "always" : sync == KV_SYNC_INTERVAL ? "interval" : "none";
}

/* A fresh store directory, by its canonical path (as /proc shows it), in out. */
static void rd_dir(const char *tag, char *out)
{
    char *d = kvt_dir_new(tag);
    KVT_CHECK_FATAL(realpath(d, out) != NULL, "realpath %s: %s", d, strerror(errno));
}

/* Creates an empty store in dir (the processes then open it afresh). */
static void rd_create(const char *dir, uint64_t seg)
{
    kv_db *db;
    KVT_RC_FATAL(kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_AUTO, seg, &db), KV_OK);
    KVT_RC_FATAL(kvt_close(db), KV_OK);
}

/* Checks the readers' slots: no violation, and each refreshed at least min times.
 * Returns the total of refreshes. */
static uint64_t rd_check_slots(rd_shared *sh, uint64_t min_refreshes, int want_final,
                               const char *run)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < RD_READERS; i++) {
        rd_slot *s = &sh->slot[i];
        uint64_t bad = atomic_load(&s->bad), n = atomic_load(&s->refreshes);
        total += n;
        KVT_CHECK(bad == 0, "%s: reader %u: %llu violations; the first: %s (seed %llu)", run, i,
                  (unsigned long long)bad, s->msg, (unsigned long long)sh->seed);
        KVT_CHECK(bad != 0 || n >= min_refreshes, "%s: reader %u refreshed only %llu times "
                  "(at least %llu expected): too few to test anything", run, i,
                  (unsigned long long)n, (unsigned long long)min_refreshes);
        KVT_CHECK(bad != 0 || !want_final || atomic_load(&s->final_ok),
                  "%s: reader %u did not run its final check", run, i);
    }
    return total;
}

/* Sums of the readers' figures for the notes. */
static void rd_reader_sums(rd_shared *sh, uint64_t *reads, uint64_t *side, uint64_t *us,
                           uint64_t *lag)
{
    *reads = *side = *us = *lag = 0;
    for (unsigned i = 0; i < RD_READERS; i++) {
        *reads += atomic_load(&sh->slot[i].reads);
        *side += atomic_load(&sh->slot[i].side_reads);
        *us += atomic_load(&sh->slot[i].refresh_us);
        *lag = rd_max2(*lag, atomic_load(&sh->slot[i].max_lag));
    }
}

/* One live run: the writer under sync mode `sync` with segments of seg bytes and 4
 * readers (the fourth reads with pread, the others through mappings) for ms. */
static void rd_live_run(int sync, uint64_t seg, unsigned ms, uint64_t seed)
{
    char dir[PATH_MAX], run[96], st_text[64];
    rd_child cs[1 + RD_READERS];
    int ready[2], st = 0;
    snprintf(run, sizeof run, "live run (sync %s, segment %llu KiB)", rd_sync_name(sync),
             (unsigned long long)seg / 1024);
    rd_dir("readers-live", dir);
    rd_create(dir, seg);
    rd_shared *sh = rd_shared_new(seed);
    rd_conf conf = { .sync = sync, .seg = seg, .life = 0 };
    KVT_CHECK_FATAL(pipe(ready) == 0, "pipe: %s", strerror(errno));
    rd_spawn_writer(&cs[0], sh, dir, &conf, ready[1]);
    close(ready[1]);
    char b;
    ssize_t got;
    while ((got = read(ready[0], &b, 1)) < 0 && errno == EINTR) {
    }
    close(ready[0]);
    if (got != 1) {
        rd_reap(&cs[0], 30000, &st);
        KVT_CHECK(0, "%s: the writer did not open the store (%s): %s", run,
                  rd_status(st, st_text, sizeof st_text), sh->w_msg);
        rd_shared_free(sh);
        return;
    }
    for (unsigned i = 0; i < RD_READERS; i++)
        rd_spawn_reader(&cs[1 + i], sh, i, dir, i != RD_READERS - 1);
    /* The time, and then (a slow machine: ASan, a loaded CI runner) until the writer
     * has done enough to test anything, up to four times as long. */
    uint64_t t0 = kvt_now_ms(), end = t0 + ms, cap = t0 + 4 * ms;
    int early = -1;
    for (uint64_t now = t0; early < 0; now = kvt_now_ms()) {
        int enough = atomic_load(&sh->w_bytes) / seg >= 5 && atomic_load(&sh->w_compactions) >= 1
                     && atomic_load(&sh->w_groups) >= 5;
        if (now >= cap || (now >= end && (enough || kvt_valgrind())))
            break;
        uint64_t until = now < end ? end : now + 100;
        early = rd_wait_any(cs, 1 + RD_READERS, (int)(until - now));
    }
    double secs = (double)(kvt_now_ms() - t0) / 1000.0;
    atomic_store(&sh->stop_writer, 1);
    if (!rd_reap(&cs[0], 60000, &st))
        st = rd_kill(&cs[0]);
    KVT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && !atomic_load(&sh->w_failed),
              "%s: the writer ended with %s: %s (seed %llu)", run,
              rd_status(st, st_text, sizeof st_text), sh->w_msg, (unsigned long long)seed);
    atomic_store(&sh->final, 1);
    for (unsigned i = 0; i < RD_READERS; i++) {
        rd_child *c = &cs[1 + i];
        int hung = !rd_reap(c, 60000, &st);
        if (hung)
            st = rd_kill(c);
        KVT_CHECK(!hung && WIFEXITED(st) && WEXITSTATUS(st) <= 1, "%s: reader %u %s%s "
                  "(seed %llu)", run, i, hung ? "hung, then was " : "ended with ",
                  rd_status(st, st_text, sizeof st_text), (unsigned long long)seed);
    }
    uint64_t refreshes = rd_check_slots(sh, kvt_valgrind() ? 1 : 10, 1, run), reads, side, us,
             lag;
    rd_reader_sums(sh, &reads, &side, &us, &lag);
    unsigned long long rolls = atomic_load(&sh->w_bytes) / seg;
    kvt_note("%s, %.1f s, seed %llu: writer %llu ops (%llu mixed and %llu group batches, "
             "%llu deletes), ~%llu rolls, %llu compactions; readers %llu refreshes (mean "
             "%.0f us), %llu keys judged (%llu read during refreshes), max reader_lag %llu",
             run, secs, (unsigned long long)seed, (unsigned long long)atomic_load(&sh->w_ops),
             (unsigned long long)atomic_load(&sh->w_batches),
             (unsigned long long)atomic_load(&sh->w_groups),
             (unsigned long long)atomic_load(&sh->w_deletes), rolls,
             (unsigned long long)atomic_load(&sh->w_compactions), (unsigned long long)refreshes,
             refreshes ? (double)us / (double)refreshes : 0.0, (unsigned long long)reads,
             (unsigned long long)side, (unsigned long long)lag);
    KVT_CHECK(kvt_valgrind() || (rolls >= 5 && atomic_load(&sh->w_compactions) >= 1
              && atomic_load(&sh->w_groups) >= 5), "%s: the writer rolled ~%llu times, "
              "compacted %llu times, wrote %llu group batches: too few to test anything", run,
              rolls, (unsigned long long)atomic_load(&sh->w_compactions),
              (unsigned long long)atomic_load(&sh->w_groups));
    rd_shared_free(sh);
}

/* A writer process (random puts, deletes, mixed and group batches; rolls every
 * 8-64 KiB; compacts in the background and with kv_compact) and 4 reader processes
 * that kv_refresh in a loop, under each sync mode. */
static void test_live(void)
{
    uint64_t seed = rd_seed();
    unsigned ms = kvt_scaled(4000, 2500);
    kvt_note("seed %llu (KV_READERS_SEED=%llu reruns with it)", (unsigned long long)seed,
             (unsigned long long)seed);
    rd_live_run(KV_SYNC_NONE, 32 * 1024, ms, seed);
    rd_live_run(KV_SYNC_INTERVAL, 64 * 1024, ms, kvt_mix64(seed + 1) % 1000000000u);
    /* fdatasync per write: a few hundred writes in the run, so small segments */
    rd_live_run(KV_SYNC_ALWAYS, 8 * 1024, ms, kvt_mix64(seed + 2) % 1000000000u);
}

/* The store reopened as writer after the kill loop: every key at or past both its
 * last acknowledged version and what any reader saw, and no further than attempted;
 * the groups whole. */
static void rd_check_reopened(rd_shared *sh, const char *dir, uint64_t seg)
{
    static rd_obs obs[RD_KEYS];
    kv_options o;
    kv_db *db;
    unsigned bad = 0;
    char first[500] = "", why[400];
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, seg);
    o.create = 0;
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    for (unsigned k = 0; k < RD_KEYS; k++) {
        uint64_t bound;
        rd_observe(db, sh->seed, k, &obs[k]);
        if (rd_judge(sh->seed, k, &obs[k], atomic_load(&sh->seen[k]),
                     atomic_load(&sh->acked[k]), atomic_load(&sh->attempted[k]), &bound, why,
                     sizeof why) != 0 && bad++ == 0)
            snprintf(first, sizeof first, "%s", why);
    }
    if (rd_groups_whole(obs, why, sizeof why) != 0 && bad++ == 0)
        snprintf(first, sizeof first, "%s", why);
    KVT_CHECK(bad == 0, "the store reopened as writer after the kill loop: %u keys wrong; "
              "the first: %s (\"acknowledged before the refresh\" reads \"before the last "
              "kill\" here; seed %llu)", bad, first, (unsigned long long)sh->seed);
    KVT_RC(kvt_close(db), KV_OK);
}

/* What the kill loop counts. */
typedef struct rd_kills {
    unsigned writer, reader;   /* SIGKILLs sent */
    unsigned unexpected;       /* children that ended otherwise (SIGBUS, an error) */
    char first[800];           /* the first of those */
} rd_kills;

/* Notes how child i (0: the writer) ended, when it was not our SIGKILL. */
static void rd_note_end(rd_kills *ks, rd_shared *sh, int i, int st, int killed)
{
    char st_text[64];
    if (killed && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
        return;
    if (ks->unexpected++ != 0)
        return;
    if (i == 0)
        snprintf(ks->first, sizeof ks->first, "the writer ended by itself (%s): %s",
                 rd_status(st, st_text, sizeof st_text), sh->w_msg);
    else
        snprintf(ks->first, sizeof ks->first, "reader %d ended by itself (%s): %s", i - 1,
                 rd_status(st, st_text, sizeof st_text), sh->slot[i - 1].msg);
}

/* Writer and readers SIGKILLed at random moments and restarted at once for several
 * seconds (each writer life with another sync mode); readers map the active
 * segment. No reader dies, none sees anything wrong, and the store then holds every
 * acknowledged write. */
static void test_kill_loop(void)
{
    uint64_t seed = rd_seed(), seg = 16 * 1024;
    char dir[PATH_MAX];
    rd_child cs[1 + RD_READERS];
    rd_kills ks;
    kvt_rng rng;
    static const int syncs[] = { KV_SYNC_NONE, KV_SYNC_INTERVAL, KV_SYNC_ALWAYS };
    memset(&ks, 0, sizeof ks);
    kvt_note("seed %llu (KV_READERS_SEED=%llu reruns with it)", (unsigned long long)seed,
             (unsigned long long)seed);
    rd_dir("readers-kill", dir);
    rd_create(dir, seg);
    rd_shared *sh = rd_shared_new(seed);
    rd_conf conf = { .sync = KV_SYNC_NONE, .seg = seg, .life = 0 };
    kvt_rng_seed(&rng, kvt_mix64(seed ^ 0x6b111));
    rd_spawn_writer(&cs[0], sh, dir, &conf, -1);
    for (unsigned i = 0; i < RD_READERS; i++)
        rd_spawn_reader(&cs[1 + i], sh, i, dir, 1);
    /* The time, and then (a slow machine: ASan, a loaded CI runner) until enough
     * kills were made to test anything, up to four times as long. */
    uint64_t t0 = kvt_now_ms(), end = t0 + kvt_scaled(10000, 6000), cap = t0 + 4 * (end - t0);
    while (kvt_now_ms() < end
           || ((ks.writer < 10 || ks.reader < 5 || atomic_load(&sh->w_opens) < 5)
               && kvt_now_ms() < cap)) {
        int st = 0, i = rd_wait_any(cs, 1 + RD_READERS, (int)kvt_rng_range(&rng, 10, 200));
        int killed = i < 0;
        if (killed) {
            i = kvt_rng_chance(&rng, 55) ? 0 : 1 + (int)kvt_rng_below(&rng, RD_READERS);
            st = rd_kill(&cs[i]);
            if (i == 0)
                ks.writer++;
            else
                ks.reader++;
        } else {
            rd_reap(&cs[i], 30000, &st);
        }
        rd_note_end(&ks, sh, i, st, killed);
        if (i == 0) {
            conf.life++;
            conf.sync = syncs[conf.life % 3];
            rd_spawn_writer(&cs[0], sh, dir, &conf, -1);
        } else {
            rd_spawn_reader(&cs[i], sh, (unsigned)i - 1, dir, 1);
        }
    }
    atomic_store(&sh->stop_readers, 1);
    int st = rd_kill(&cs[0]);
    rd_note_end(&ks, sh, 0, st, 1);
    for (int i = 1; i <= RD_READERS; i++) {
        int hung = !rd_reap(&cs[i], 60000, &st);
        if (hung)
            st = rd_kill(&cs[i]);
        if (hung && ks.unexpected++ == 0)
            snprintf(ks.first, sizeof ks.first, "reader %d hung at the end", i - 1);
        else if (!hung && !(WIFEXITED(st) && WEXITSTATUS(st) <= 1))
            rd_note_end(&ks, sh, i, st, 0);
    }
    double secs = (double)(kvt_now_ms() - t0) / 1000.0;
    KVT_CHECK(ks.unexpected == 0, "kill loop: %u children ended otherwise than by our "
              "SIGKILL; the first: %s (seed %llu)", ks.unexpected, ks.first,
              (unsigned long long)seed);
    uint64_t refreshes = rd_check_slots(sh, kvt_valgrind() ? 0 : 5, 0, "kill loop"), reads,
             side, us, lag;
    rd_check_reopened(sh, dir, seg);
    rd_reader_sums(sh, &reads, &side, &us, &lag);
    uint64_t acked = 0;
    for (unsigned k = 0; k < RD_KEYS; k++)
        acked += atomic_load(&sh->acked[k]);
    kvt_note("kill loop, %.1f s, seed %llu: %u writer kills (%llu opens), %u reader kills; "
             "writer %llu ops, ~%llu rolls, %llu compactions; readers %llu refreshes (mean "
             "%.0f us), %llu keys judged, max reader_lag %llu", secs, (unsigned long long)seed,
             ks.writer, (unsigned long long)atomic_load(&sh->w_opens), ks.reader,
             (unsigned long long)atomic_load(&sh->w_ops),
             (unsigned long long)(atomic_load(&sh->w_bytes) / seg),
             (unsigned long long)atomic_load(&sh->w_compactions), (unsigned long long)refreshes,
             refreshes ? (double)us / (double)refreshes : 0.0, (unsigned long long)reads,
             (unsigned long long)lag);
    KVT_CHECK(kvt_valgrind() || (ks.writer >= 10 && ks.reader >= 5 && atomic_load(&sh->w_opens)
              >= 5 && acked >= 2000 && atomic_load(&sh->w_compactions) >= 1),
              "kill loop: %u writer kills, %u reader kills, %llu writer opens, %llu versions "
              "acknowledged, %llu compactions: too few to test anything", ks.writer, ks.reader,
              (unsigned long long)atomic_load(&sh->w_opens), (unsigned long long)acked,
              (unsigned long long)atomic_load(&sh->w_compactions));
    rd_shared_free(sh);
}

/* ---- fds and maps ------------------------------------------------------------------ */
#define FD_KEYS 300
#define FD_ROUNDS 4

static size_t rd_fd_value(unsigned k, unsigned round, char *buf)
{
    int n = snprintf(buf, 64, "r%03u=round%u;", k, round);
    memset(buf + n, 'a' + (int)(k % 26), 120);
    return (size_t)n + 120;
}

/* Checks that every key of the reader holds round's value. */
static void rd_fd_expect(kv_db *r, unsigned round, const char *when)
{
    unsigned bad = 0;
    char why[300] = "";
    for (unsigned k = 0; k < FD_KEYS; k++) {
        char key[8], val[200], w[300];
        size_t vl = rd_fd_value(k, round, val);
        if (kvt_value_cmp(r, key, rd_key(k, key), val, vl, w, sizeof w) != 0 && bad++ == 0)
            snprintf(why, sizeof why, "%s", w);
    }
    KVT_CHECK(bad == 0, "%s: %u keys not at round %u; the first: %s", when, bad, round, why);
}

/* The writer child of the fds test: waits for the parent's go, overwrites every key
 * FD_ROUNDS times (rolling every 16 KiB, so WAL files go), compacts (so the segments
 * the reader mapped go), closes the store or not, says so, and waits for the pipe to
 * close. Exit status 0, or the step that failed. */
__attribute__((noreturn))
static void rd_fd_writer(const char *dir, int closes, int go_fd, int ready_fd)
{
    kv_options o;
    kv_db *db;
    char b;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (read(go_fd, &b, 1) != 1)
        _exit(10);
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 16 * 1024);
    o.auto_compact = 0;
    if (kv_open(dir, &o, &db) != KV_OK)
        _exit(11);
    for (unsigned round = 1; round <= FD_ROUNDS; round++) {
        for (unsigned k = 0; k < FD_KEYS; k++) {
            char key[8], val[200];
            size_t vl = rd_fd_value(k, round, val);
            if (kv_put(db, key, rd_key(k, key), val, vl) != KV_OK)
                _exit(12);
        }
    }
    if (kv_compact(db) != KV_OK)
        _exit(13);
    if (closes && kv_close(db) != KV_OK)
        _exit(14);
    if (write(ready_fd, "r", 1) != 1)
        _exit(15);
    while (read(go_fd, &b, 1) != 0 && errno == EINTR) {
    }
    if (!closes && kv_close(db) != KV_OK)
        _exit(16);
    _exit(0);
}

/* One case of the fds test, with the writer closed or open (quiet) at the refresh. */
static void rd_fds_case(int closes)
{
    char dir[PATH_MAX], st_text[64];
    int go[2], ready[2], st = 0;
    kv_options o;
    kv_db *w, *r;
    kv_stats before, after;
    rd_held hb, ha;
    const char *how = closes ? "the writer closed" : "the writer open and quiet";
    rd_dir("readers-fds", dir);
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 16 * 1024);
    o.auto_compact = 0;
    KVT_RC_FATAL(kvt_open(dir, &o, &w), KV_OK);
    for (unsigned k = 0; k < FD_KEYS; k++) {
        char key[8], val[200];
        size_t vl = rd_fd_value(k, 0, val);
        KVT_RC_FATAL(kv_put(w, key, rd_key(k, key), val, vl), KV_OK);
    }
    KVT_RC_FATAL(kvt_close(w), KV_OK);
    KVT_CHECK_FATAL(pipe(go) == 0 && pipe(ready) == 0, "pipe: %s", strerror(errno));
    fflush(NULL);
    rd_child c;
    pid_t pid = fork(); /* before the reader opens: the child holds none of its files */
    KVT_CHECK_FATAL(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        close(go[1]);
        close(ready[0]);
        rd_fd_writer(dir, closes, go[0], ready[1]);
    }
    rd_child_track(&c, pid);
    close(go[0]);
    close(ready[1]);
    kv_options_init(&o);
    o.read_only = 1;
    o.create = 0;
    int rc = kvt_open(dir, &o, &r);
    KVT_RC(rc, KV_OK);
    if (rc == KV_OK) {
        rd_fd_expect(r, 0, "the reader just opened");
        KVT_RC(kv_stat(r, &before), KV_OK);
        KVT_CHECK(before.pinned_files == 0 && before.pinned_bytes == 0, "nothing retired yet, "
                  "but pinned_files %llu, pinned_bytes %llu",
                  (unsigned long long)before.pinned_files,
                  (unsigned long long)before.pinned_bytes);
    }
    char b = 'g';
    ssize_t got;
    while ((got = write(go[1], &b, 1)) < 0 && errno == EINTR) {
    }
    if (got == 1)
        while ((got = read(ready[0], &b, 1)) < 0 && errno == EINTR) {
        }
    if (rc != KV_OK || got != 1) {
        close(go[1]);
        rd_reap(&c, 30000, &st);
        int e = errno;
        KVT_CHECK(0, "fds (%s): the writer child failed: %s (open %d, pipe read %zd: %s)", how,
                  rd_status(st, st_text, sizeof st_text), rc, got, got < 0 ? strerror(e) : "-");
        close(ready[0]);
        return;
    }
    KVT_RC(kv_stat(r, &before), KV_OK);
    rd_deleted_held(dir, &hb);
    KVT_CHECK(before.pinned_files > 0 && before.pinned_bytes > 0, "fds (%s): the writer "
              "retired files the reader holds (/proc: %u descriptors, %u mappings of %u files), "
              "but kv_stat says pinned_files %llu, pinned_bytes %llu", how, hb.fds, hb.maps,
              hb.files, (unsigned long long)before.pinned_files,
              (unsigned long long)before.pinned_bytes);
    KVT_CHECK(hb.fds + hb.maps > 0, "fds (%s): before the refresh the reader holds no deleted "
              "store file, so this test cannot see one held after it", how);
    rd_fd_expect(r, 0, "before the refresh (the view has not moved)");
    KVT_RC(kv_refresh(r), KV_OK);
    KVT_RC(kv_stat(r, &after), KV_OK);
    rd_deleted_held(dir, &ha);
    KVT_CHECK(after.pinned_files == 0 && after.pinned_bytes == 0, "fds (%s): after the refresh "
              "pinned_files %llu, pinned_bytes %llu (expected 0 and 0)", how,
              (unsigned long long)after.pinned_files, (unsigned long long)after.pinned_bytes);
    KVT_CHECK(ha.fds == 0, "fds (%s): after the refresh %u descriptors of deleted store files "
              "are still open: %s", how, ha.fds, ha.first);
    KVT_CHECK(ha.maps == 0, "fds (%s): after the refresh %u mappings of deleted store files "
              "remain: %s", how, ha.maps, ha.first);
    rd_fd_expect(r, FD_ROUNDS, "after the refresh");
    KVT_CHECK(after.keys == FD_KEYS, "after the refresh the reader counts %llu keys",
              (unsigned long long)after.keys);
    close(go[1]);
    close(ready[0]);
    KVT_CHECK(rd_reap(&c, 30000, &st) && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "fds (%s): the writer child ended with %s", how,
              rd_status(st, st_text, sizeof st_text));
    kvt_note("%s: before the refresh kv_stat pinned %llu files, %llu bytes; /proc showed %u "
             "descriptors and %u mappings of %u deleted files (%llu bytes held by descriptors); "
             "after it: %u and %u", how, (unsigned long long)before.pinned_files,
             (unsigned long long)before.pinned_bytes, hb.fds, hb.maps, hb.files,
             (unsigned long long)hb.fd_bytes, ha.fds, ha.maps);
    KVT_RC(kvt_close(r), KV_OK);
}

/* After the writer rolled and compacted and went quiet (or closed), one kv_refresh
 * leaves no deleted store file open or mapped, and pinned_* go from > 0 to 0. */
static void test_fds_maps(void)
{
    rd_fds_case(0);
    rd_fds_case(1);
}

/* ---- the API ----------------------------------------------------------------------- */
static uint64_t rd_realtime_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void rd_api_put(kv_db *db, unsigned k, unsigned round)
{
    char key[16], val[32];
    snprintf(key, sizeof key, "api%03u", k);
    snprintf(val, sizeof val, "v%u-%u", round, k);
    KVT_RC_FATAL(kvt_put_str(db, key, val), KV_OK);
}

static void rd_api_expect(kv_db *db, unsigned k, unsigned round)
{
    char key[16], val[32];
    snprintf(key, sizeof key, "api%03u", k);
    snprintf(val, sizeof val, "v%u-%u", round, k);
    if (round == 0)
        KVT_ASSERT_ABSENT(db, key, strlen(key));
    else
        KVT_ASSERT_VALUE(db, key, strlen(key), val, strlen(val));
}

/* Writes on a reader are KV_EREADONLY and change nothing. */
static void rd_api_readonly(kv_db *r)
{
    kv_batch *b = kv_batch_new();
    KVT_CHECK_FATAL(b != NULL, "kv_batch_new");
    KVT_RC(kv_put(r, "api000", 6, "x", 1), KV_EREADONLY);
    KVT_RC(kv_put(r, "new", 3, "x", 1), KV_EREADONLY);
    KVT_RC(kv_delete(r, "api000", 6), KV_EREADONLY);
    KVT_RC(kv_batch_put(b, "api001", 6, "x", 1), KV_OK);
    KVT_RC(kv_batch_delete(b, "api002", 6), KV_OK);
    KVT_RC(kv_write(r, b), KV_EREADONLY);
    KVT_RC(kv_sync(r), KV_EREADONLY);
    KVT_RC(kv_compact(r), KV_EREADONLY);
    kv_batch_free(b);
    rd_api_expect(r, 0, 1);
    rd_api_expect(r, 1, 1);
    rd_api_expect(r, 2, 1);
    KVT_ASSERT_ABSENT(r, "new", 3);
}

/* kv_stat of a writer: the reader fields are 0, whatever kv_refresh it got. */
static void rd_api_writer_fields(kv_db *w)
{
    kv_stats ws;
    KVT_RC_FATAL(kv_stat(w, &ws), KV_OK);
    KVT_CHECK(ws.read_only == 0 && ws.reader_seq == 0 && ws.reader_lag == 0
              && ws.refreshes == 0 && ws.refresh_last_time == 0 && ws.refresh_last_us == 0
              && ws.pinned_files == 0 && ws.pinned_bytes == 0,
              "writer: read_only %d reader_seq %llu reader_lag %llu refreshes %llu "
              "refresh_last_time %llu refresh_last_us %llu pinned %llu/%llu (all 0 expected)",
              ws.read_only, (unsigned long long)ws.reader_seq,
              (unsigned long long)ws.reader_lag, (unsigned long long)ws.refreshes,
              (unsigned long long)ws.refresh_last_time, (unsigned long long)ws.refresh_last_us,
              (unsigned long long)ws.pinned_files, (unsigned long long)ws.pinned_bytes);
}

/* Refreshes r and checks the stats: one more refresh, reader_seq at the writer's
 * newest, reader_lag the distance caught up, the time of the refresh. */
static void rd_api_refresh(kv_db *r, kv_db *w, uint64_t want_refreshes, const char *when)
{
    kv_stats rs0, rs, ws;
    KVT_RC_FATAL(kv_stat(r, &rs0), KV_OK);
    KVT_RC_FATAL(kv_stat(w, &ws), KV_OK);
    uint64_t t0 = rd_realtime_us(), m0 = kvt_now_us();
    KVT_RC(kv_refresh(r), KV_OK);
    uint64_t m1 = kvt_now_us(), t1 = rd_realtime_us();
    KVT_RC_FATAL(kv_stat(r, &rs), KV_OK);
    KVT_CHECK(rs.refreshes == want_refreshes, "%s: refreshes %llu, expected %llu", when,
              (unsigned long long)rs.refreshes, (unsigned long long)want_refreshes);
    KVT_CHECK(rs.reader_seq == ws.next_seq - 1, "%s: reader_seq %llu, the writer (quiet) is "
              "at %llu", when, (unsigned long long)rs.reader_seq,
              (unsigned long long)ws.next_seq - 1);
    KVT_CHECK(rs.reader_lag == ws.next_seq - 1 - rs0.reader_seq, "%s: reader_lag %llu, but "
              "the refresh caught up from %llu to %llu", when, (unsigned long long)rs.reader_lag,
              (unsigned long long)rs0.reader_seq, (unsigned long long)ws.next_seq - 1);
    KVT_CHECK(rs.refresh_last_time >= t0 && rs.refresh_last_time <= t1, "%s: "
              "refresh_last_time %llu is not within the call [%llu, %llu] (us since 1970)",
              when, (unsigned long long)rs.refresh_last_time, (unsigned long long)t0,
              (unsigned long long)t1);
    KVT_CHECK(rs.refresh_last_us <= m1 - m0 + 1, "%s: refresh_last_us %llu, but the call "
              "took %llu us", when, (unsigned long long)rs.refresh_last_us,
              (unsigned long long)(m1 - m0));
}

/* kv_refresh(NULL), a writer's kv_refresh, KV_EREADONLY, and the reader's kv_stat
 * fields through opens, refreshes, and a refresh with nothing new. */
static void test_api(void)
{
    char *dir = kvt_dir_new("readers-api");
    kv_options o;
    kv_db *w, *r;
    kv_stats ws, rs;
    KVT_RC(kv_refresh(NULL), KV_EINVAL);
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 16 * 1024);
    o.auto_compact = 0;
    KVT_RC_FATAL(kvt_open(dir, &o, &w), KV_OK);
    KVT_RC(kv_refresh(w), KV_OK);
    rd_api_writer_fields(w);
    for (unsigned k = 0; k < 100; k++)
        rd_api_put(w, k, 1);
    kv_options ro;
    kv_options_init(&ro);
    ro.read_only = 1;
    ro.create = 0;
    KVT_RC_FATAL(kvt_open(dir, &ro, &r), KV_OK);
    KVT_RC_FATAL(kv_stat(w, &ws), KV_OK);
    KVT_RC_FATAL(kv_stat(r, &rs), KV_OK);
    KVT_CHECK(rs.read_only == 1 && rs.keys == 100 && rs.refreshes == 0
              && rs.refresh_last_time == 0 && rs.reader_lag == 0 && rs.pinned_files == 0,
              "a reader just opened: read_only %d keys %llu refreshes %llu refresh_last_time "
              "%llu reader_lag %llu pinned_files %llu", rs.read_only,
              (unsigned long long)rs.keys, (unsigned long long)rs.refreshes,
              (unsigned long long)rs.refresh_last_time, (unsigned long long)rs.reader_lag,
              (unsigned long long)rs.pinned_files);
    KVT_CHECK(rs.reader_seq == ws.next_seq - 1, "a reader just opened: reader_seq %llu, the "
              "writer's newest is %llu", (unsigned long long)rs.reader_seq,
              (unsigned long long)ws.next_seq - 1);
    rd_api_readonly(r);

    /* 30 overwrites, 10 deletes, a batch of 5 new keys: none seen before the refresh. */
    for (unsigned k = 0; k < 30; k++)
        rd_api_put(w, k, 2);
    for (unsigned k = 90; k < 100; k++) {
        char key[16];
        snprintf(key, sizeof key, "api%03u", k);
        KVT_RC(kv_delete(w, key, strlen(key)), KV_OK);
    }
    kv_batch *b = kv_batch_new();
    KVT_CHECK_FATAL(b != NULL, "kv_batch_new");
    for (unsigned k = 100; k < 105; k++) {
        char key[16], val[32];
        snprintf(key, sizeof key, "api%03u", k);
        snprintf(val, sizeof val, "v1-%u", k);
        KVT_RC(kv_batch_put(b, key, strlen(key), val, strlen(val)), KV_OK);
    }
    KVT_RC(kv_write(w, b), KV_OK);
    kv_batch_free(b);
    rd_api_expect(r, 0, 1);
    rd_api_expect(r, 95, 1);
    rd_api_expect(r, 100, 0);
    rd_api_refresh(r, w, 1, "the first refresh");
    for (unsigned k = 0; k < 105; k++)
        rd_api_expect(r, k, k < 30 ? 2 : k < 90 ? 1 : k < 100 ? 0 : 1);
    KVT_RC(kv_stat(r, &rs), KV_OK);
    KVT_CHECK(rs.keys == 95, "after the refresh the reader counts %llu keys, expected 95",
              (unsigned long long)rs.keys);
    rd_api_refresh(r, w, 2, "a refresh with nothing new");
    KVT_RC(kv_stat(r, &rs), KV_OK);
    KVT_CHECK(rs.reader_lag == 0, "a refresh with nothing new: reader_lag %llu",
              (unsigned long long)rs.reader_lag);
    KVT_RC(kv_refresh(w), KV_OK);
    rd_api_writer_fields(w);

    /* The writer closes: a refresh still works and the view stays. */
    rd_api_put(w, 0, 3);
    KVT_RC_FATAL(kv_stat(w, &ws), KV_OK);
    KVT_RC(kvt_close(w), KV_OK);
    KVT_RC(kv_refresh(r), KV_OK);
    KVT_RC(kv_stat(r, &rs), KV_OK);
    KVT_CHECK(rs.refreshes == 3 && rs.reader_seq == ws.next_seq - 1, "a refresh after the "
              "writer closed: refreshes %llu, reader_seq %llu (the writer's last %llu)",
              (unsigned long long)rs.refreshes, (unsigned long long)rs.reader_seq,
              (unsigned long long)ws.next_seq - 1);
    rd_api_expect(r, 0, 3);
    rd_api_expect(r, 1, 2);
    rd_api_expect(r, 99, 0);
    KVT_RC(kvt_close(r), KV_OK);
}

/* ---- concurrent refreshes ------------------------------------------------------------- */
#define CR_KEYS 200
#define CR_THREADS 4

typedef struct cr_shared {
    kv_db *r;                          /* the reader all threads refresh and read */
    _Atomic uint64_t attempted[CR_KEYS]; /* the writer's versions, logged before the put */
    atomic_int stop;
    unsigned refreshes;                /* per thread */
    _Atomic unsigned bad;
    char first[400];                   /* first problem (written by whoever counted 1) */
} cr_shared;

__attribute__((format(printf, 2, 3)))
static void cr_bad(cr_shared *s, const char *fmt, ...)
{
    va_list ap;
    if (atomic_fetch_add(&s->bad, 1) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(s->first, sizeof s->first, fmt, ap);
    va_end(ap);
}

static void *cr_thread(void *arg)
{
    cr_shared *s = arg;
    uint64_t last[CR_KEYS] = {0};
    kvt_rng rng;
    kvt_rng_seed(&rng, (uint64_t)(uintptr_t)&last);
    for (unsigned i = 0; i < s->refreshes; i++) {
        int rc = kv_refresh(s->r);
        if (rc != KV_OK) {
            cr_bad(s, "kv_refresh: %s: %s", kv_strerror(rc), kv_errmsg());
            break;
        }
        for (unsigned j = 0; j < 20; j++) {
            unsigned k = (unsigned)kvt_rng_below(&rng, CR_KEYS);
            char key[16];
            void *v = NULL;
            size_t vl = 0;
            unsigned kk = 0;
            unsigned long long ver = 0;
            snprintf(key, sizeof key, "c%03u", k);
            rc = kv_get(s->r, key, strlen(key), &v, &vl);
            uint64_t hi = atomic_load(&s->attempted[k]);
            char text[64];
            kvt_fmt(text, sizeof text, v, rc == KV_OK ? vl : 0);
            if (rc == KV_OK && (sscanf(text, "c%u v%llu", &kk, &ver) != 2 || kk != k
                                || ver > hi || ver < last[k]))
                cr_bad(s, "key %s: value \"%s\" (highest attempted %llu, seen %llu)", key,
                       text, (unsigned long long)hi, (unsigned long long)last[k]);
            else if (rc != KV_OK && (rc != KV_NOTFOUND || last[k] != 0))
                cr_bad(s, "key %s: kv_get %s after version %llu: %s", key, kv_strerror(rc),
                       (unsigned long long)last[k], kv_errmsg());
            if (rc == KV_OK)
                last[k] = ver;
            kv_free(v);
        }
    }
    return NULL;
}

/* Four threads call kv_refresh on one reader and read, while the writer (in this
 * process) puts: every refresh succeeds, each is counted, no thread sees a key go
 * back, and the last refresh reaches the writer. */
static void test_concurrent_refreshes(void)
{
    char *dir = kvt_dir_new("readers-conc");
    kv_options o;
    kv_db *w;
    pthread_t t[CR_THREADS];
    static cr_shared s;
    memset(&s, 0, sizeof s);
    s.refreshes = kvt_scaled(100, 40);
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 16 * 1024);
    o.compact_dead_ratio = 0.3;
    o.compact_bytes_per_sec = 0;
    KVT_RC_FATAL(kvt_open(dir, &o, &w), KV_OK);
    kv_options ro;
    kv_options_init(&ro);
    ro.read_only = 1;
    ro.create = 0;
    KVT_RC_FATAL(kvt_open(dir, &ro, &s.r), KV_OK);
    for (int i = 0; i < CR_THREADS; i++)
        KVT_CHECK_FATAL(pthread_create(&t[i], NULL, cr_thread, &s) == 0, "pthread_create");
    unsigned puts = 0;
    kvt_rng rng;
    kvt_rng_seed(&rng, 0xc0c0);
    for (; puts < 3000; puts++) {
        unsigned k = (unsigned)kvt_rng_below(&rng, CR_KEYS);
        char key[16], val[200];
        uint64_t v = atomic_load(&s.attempted[k]) + 1;
        atomic_store(&s.attempted[k], v);
        snprintf(key, sizeof key, "c%03u", k);
        int n = snprintf(val, sizeof val, "c%u v%llu;", k, (unsigned long long)v);
        memset(val + n, 'p', 100);
        KVT_RC_FATAL(kv_put(w, key, strlen(key), val, (size_t)n + 100), KV_OK);
    }
    for (int i = 0; i < CR_THREADS; i++)
        pthread_join(t[i], NULL);
    KVT_CHECK(atomic_load(&s.bad) == 0, "%u problems; the first: %s", atomic_load(&s.bad),
              s.first);
    kv_stats ws, rs;
    KVT_RC(kv_refresh(s.r), KV_OK);
    KVT_RC_FATAL(kv_stat(w, &ws), KV_OK);
    KVT_RC_FATAL(kv_stat(s.r, &rs), KV_OK);
    KVT_CHECK(rs.refreshes == (uint64_t)CR_THREADS * s.refreshes + 1, "refreshes %llu after "
              "%u", (unsigned long long)rs.refreshes, CR_THREADS * s.refreshes + 1);
    KVT_CHECK(rs.reader_seq == ws.next_seq - 1 && rs.keys == ws.keys, "after the writer "
              "stopped: reader_seq %llu keys %llu, the writer's %llu and %llu",
              (unsigned long long)rs.reader_seq, (unsigned long long)rs.keys,
              (unsigned long long)ws.next_seq - 1, (unsigned long long)ws.keys);
    kvt_note("%u refreshes from %d threads beside %u puts (%llu compactions)",
             CR_THREADS * s.refreshes, CR_THREADS, puts, (unsigned long long)ws.compactions);
}

/* ---- damage, and a store replaced ---------------------------------------------------- */

/* The segments in dir that have a hint (sealed), newest number first, in names
 * (up to n of them); returns how many. */
static unsigned rd_sealed(const char *dir, char names[][32], unsigned n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    unsigned got = 0;
    KVT_CHECK_FATAL(d != NULL, "opendir %s: %s", dir, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        char hint[300];
        struct stat st;
        if (l < 5 || l > 24 || strcmp(e->d_name + l - 4, ".seg") != 0)
            continue;
        snprintf(hint, sizeof hint, "%s/%.*s.hint", dir, (int)(l - 4), e->d_name);
        if (stat(hint, &st) != 0 || got == n)
            continue;
        unsigned at = got++;
        while (at > 0 && strcmp(names[at - 1], e->d_name) < 0) {
            memcpy(names[at], names[at - 1], 32);
            at--;
        }
        snprintf(names[at], 32, "%.31s", e->d_name);
    }
    closedir(d);
    return got;
}

/* The round each key of the fds store holds, in rounds[]; checks that they form a
 * state the writer passed through (it wrote round 1 to every key in key order, then
 * round 2): rounds never rise with the key number and differ by at most one. */
static void rd_fd_prefix(kv_db *r, unsigned *rounds, const char *when)
{
    unsigned bad = 0;
    char why[300] = "";
    for (unsigned k = 0; k < FD_KEYS; k++) {
        char key[8], val[200], w[300];
        rounds[k] = UINT32_MAX;
        for (unsigned round = 0; round <= 2 && rounds[k] == UINT32_MAX; round++) {
            size_t vl = rd_fd_value(k, round, val);
            if (kvt_value_cmp(r, key, rd_key(k, key), val, vl, w, sizeof w) == 0)
                rounds[k] = round;
        }
        if (rounds[k] == UINT32_MAX && bad++ == 0)
            snprintf(why, sizeof why, "key %u holds no round's value: %.200s", k, w);
        else if (k > 0 && rounds[k - 1] != UINT32_MAX
                 && (rounds[k] > rounds[k - 1] || rounds[k - 1] - rounds[k] > 1) && bad++ == 0)
            snprintf(why, sizeof why, "key %u at round %u after key %u at round %u", k,
                     rounds[k], k - 1, rounds[k - 1]);
    }
    KVT_CHECK(bad == 0, "%s: not a state the writer passed through (%u problems); the "
              "first: %s", when, bad, why);
}

/* Damage in a segment sealed after the reader's view (its hint removed, so the
 * refresh must scan it): kv_refresh is KV_ECORRUPT naming it, every time, and the
 * handle keeps a consistent view, usable: what it had, or further along where the
 * refresh took part of what is new before it met the damage (kv.h). */
static void test_damage_keeps_view(void)
{
    char *dir = kvt_dir_new("readers-damage");
    kv_options o;
    kv_db *w, *r;
    char names[64][32];
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 16 * 1024);
    o.auto_compact = 0;
    KVT_RC_FATAL(kvt_open(dir, &o, &w), KV_OK);
    for (unsigned k = 0; k < FD_KEYS; k++) {
        char key[8], val[200];
        size_t vl = rd_fd_value(k, 0, val);
        KVT_RC_FATAL(kv_put(w, key, rd_key(k, key), val, vl), KV_OK);
    }
    kv_options ro;
    kv_options_init(&ro);
    ro.read_only = 1;
    ro.create = 0;
    KVT_RC_FATAL(kvt_open(dir, &ro, &r), KV_OK);
    for (unsigned round = 1; round <= 2; round++) {
        for (unsigned k = 0; k < FD_KEYS; k++) {
            char key[8], val[200];
            size_t vl = rd_fd_value(k, round, val);
            KVT_RC_FATAL(kv_put(w, key, rd_key(k, key), val, vl), KV_OK);
        }
    }
    KVT_RC_FATAL(kvt_close(w), KV_OK);
    unsigned n = rd_sealed(dir, names, 64);
    KVT_CHECK_FATAL(n >= 3, "only %u sealed segments", n);
    /* The newest sealed segment holds round 2 only: the reader never saw it. */
    char *seg = kvt_path(dir, names[0]), hint[300];
    snprintf(hint, sizeof hint, "%s/%.*s.hint", dir, (int)(strlen(names[0]) - 4), names[0]);
    KVT_CHECK_FATAL(unlink(hint) == 0, "unlink %s: %s", hint, strerror(errno));
    size_t len;
    uint8_t *bytes = kvt_slurp(seg, &len);
    bytes[len / 2] ^= 0x5a;
    kvt_spill(seg, bytes, len);
    free(bytes);
    unsigned first[FD_KEYS], now[FD_KEYS];
    for (int attempt = 0; attempt < 2; attempt++) {
        KVT_RC(kv_refresh(r), KV_ECORRUPT);
        char num[8];
        snprintf(num, sizeof num, "%.6s", names[0]);
        KVT_CHECK(strstr(kv_errmsg(), num) != NULL, "the message does not name %s: %s",
                  names[0], kv_errmsg());
        rd_fd_prefix(r, attempt == 0 ? first : now, "after a refresh that found damage");
        KVT_CHECK(attempt == 0 || memcmp(first, now, sizeof now) == 0,
                  "the view moved between two refreshes that both found damage");
        kv_stats rs;
        KVT_RC(kv_stat(r, &rs), KV_OK);
        KVT_CHECK(rs.refreshes == 0 && rs.keys == FD_KEYS, "after a failed refresh: refreshes "
                  "%llu keys %llu", (unsigned long long)rs.refreshes,
                  (unsigned long long)rs.keys);
    }
    kvt_note("damage in %s (byte %zu of %zu): \"%s\"", names[0], len / 2, len, kv_errmsg());
    KVT_RC(kvt_close(r), KV_OK);
}

/* One case of the replaced-store test: the old store had rolled (its active segment
 * is newer than the new store's) or not (both are at the first segment). */
static void rd_replaced_case(int old_rolled)
{
    char *dir = kvt_dir_new("readers-replaced");
    kv_options o;
    kv_db *w, *r;
    kv_stats st;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 16 * 1024);
    o.auto_compact = 0;
    KVT_RC_FATAL(kvt_open(dir, &o, &w), KV_OK);
    for (unsigned k = 0; k < 50; k++) {
        char key[16], val[2100];
        size_t vl = old_rolled ? 2000 : 10;
        snprintf(key, sizeof key, "old%03u", k);
        memset(val, 'o', vl);
        KVT_RC_FATAL(kv_put(w, key, strlen(key), val, vl), KV_OK);
    }
    KVT_RC_FATAL(kv_stat(w, &st), KV_OK);
    KVT_RC_FATAL(kvt_close(w), KV_OK);
    kv_options ro;
    kv_options_init(&ro);
    ro.read_only = 1;
    ro.create = 0;
    KVT_RC_FATAL(kvt_open(dir, &ro, &r), KV_OK);
    DIR *d = opendir(dir);
    struct dirent *e;
    KVT_CHECK_FATAL(d != NULL, "opendir %s", dir);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            KVT_CHECK(unlink(kvt_path(dir, e->d_name)) == 0, "unlink %s: %s", e->d_name,
                      strerror(errno));
    }
    closedir(d);
    KVT_RC_FATAL(kvt_open(dir, &o, &w), KV_OK);
    for (unsigned k = 0; k < 10; k++)
        rd_api_put(w, k, 7);
    KVT_RC_FATAL(kvt_close(w), KV_OK);
    int rc = kv_refresh(r);
    char msg[400];
    snprintf(msg, sizeof msg, "%s", kv_errmsg());
    KVT_CHECK(rc == KV_EIO, "store replaced under the reader (the old one had %llu segments):"
              " kv_refresh returned %d (%s), expected KV_EIO; kv_errmsg \"%s\"; the reader now "
              "counts %llu keys", (unsigned long long)st.segments, rc, kv_strerror(rc), msg,
              (unsigned long long)(kv_stat(r, &st) == KV_OK ? st.keys : 0));
    kvt_note("refresh of a replaced store (old store %s): \"%s\"",
             old_rolled ? "rolled" : "at its first segment", msg);
    KVT_RC(kvt_close(r), KV_OK);
}

/* The store removed and a new one created in its directory under an open reader:
 * kv_refresh is KV_EIO (open it again), never a mix of the two stores. */
static void test_replaced_store(void)
{
    rd_replaced_case(1);
    rd_replaced_case(0);
}

static const kvt_test readers_tests[] = {
    {"live", test_live},
    {"kill loop", test_kill_loop},
    {"fds and maps", test_fds_maps},
    {"api", test_api},
    {"concurrent refreshes", test_concurrent_refreshes},
    {"damage keeps the view", test_damage_keeps_view},
    {"replaced store", test_replaced_store},
    {NULL, NULL},
};

void kvt_register_readers(void)
{
    kvt_add_suite("readers", readers_tests);
}
