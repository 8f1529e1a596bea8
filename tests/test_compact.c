/*
 * test_compact.c — the "compact" suite: compaction gives space back and changes
 * nothing else.
 *
 *   - the seed's test: 1,000 overwrites of one key, then kv_compact: the store
 *     shrinks below a tenth and keeps the newest value;
 *   - tombstones: a compaction of the segment holding a tombstone, but not of the
 *     one holding the value it deletes, must keep the tombstone (else the value
 *     resurrects at the next open); once the old value is gone the tombstone goes;
 *   - compaction beside two writer and two reader threads: every value read is one
 *     that was written for that key, never older than one the reader saw before;
 *   - a crash at every I/O call of a compaction (a child process killed before the
 *     call, or in the middle of a write): the store reopens to exactly the same
 *     contents, and a later compaction finishes the job;
 *   - damage in a compaction output's hint: reopen is correct, the hint rewritten.
 * The property suite adds kv_compact to its random operations.
 */
#include "kvtest.h"

#include "db/db.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------------ */

static uint64_t dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    uint64_t sum = 0;
    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        char *p = kvt_path(dir, de->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
            sum += (uint64_t)st.st_size;
    }
    closedir(d);
    return sum;
}

static kv_stats stats(kv_db *db)
{
    kv_stats st;
    memset(&st, 0, sizeof st);
    KVT_RC(kv_stat(db, &st), KV_OK);
    return st;
}

static kv_db *open_opts(const char *dir, uint64_t seg, int auto_compact)
{
    kv_options o;
    kv_db *db = NULL;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, seg);
    o.auto_compact = auto_compact;
    int rc = kvt_open(dir, &o, &db);
    KVT_CHECK_FATAL(rc == KV_OK, "kv_open %s: %d (%s): %s", dir, rc, kv_strerror(rc), kv_errmsg());
    return db;
}

/* Seals the active segment now (what kv_compact does first when it is dead-heavy). */
static void roll_now(kv_db *db) { KVT_RC_FATAL(wal_roll(&db->wal), KV_OK); }

/* A value that names its key and version: 24..(24+max_extra) bytes. */
static size_t make_value(uint8_t *buf, unsigned key, unsigned ver, unsigned max_extra)
{
    uint64_t x = kvt_mix64(((uint64_t)key << 32) | ver);
    size_t len = 24 + (size_t)(x % (max_extra + 1));
    memset(buf, '.', 24);
    snprintf((char *)buf, 24, "k%06u v%08u ", key, ver);
    for (size_t i = 23; i < len; i++)
        buf[i] = (uint8_t)(x >> ((i % 8) * 8)) ^ (uint8_t)i;
    return len;
}

/* Parses a value made by make_value; returns 1 when it is well formed for key. */
static int parse_value(const uint8_t *v, size_t len, unsigned key, unsigned *ver)
{
    uint8_t want[1024];
    unsigned k;
    if (len < 24 || sscanf((const char *)v, "k%06u v%08u ", &k, ver) != 2 || k != key)
        return 0;
    size_t wl = make_value(want, key, *ver, 900);
    return wl <= sizeof want && wl == len && memcmp(want, v, len) == 0;
}

static void put_kv(kv_db *db, const char *k, const void *v, size_t vl)
{
    KVT_RC_FATAL(kv_put(db, k, strlen(k), v, vl), KV_OK);
}

static void expect_value(kv_db *db, const char *k, const void *v, size_t vl)
{
    void *got = NULL;
    size_t gl = 0;
    int rc = kv_get(db, k, strlen(k), &got, &gl);
    KVT_CHECK(rc == KV_OK && gl == vl && memcmp(got, v, vl) == 0,
              "get %s: rc %d (%s), %zu bytes, expected %zu: %s", k, rc, kv_strerror(rc), gl, vl,
              kv_errmsg());
    kv_free(got);
}

static void expect_absent(kv_db *db, const char *k, const char *when)
{
    void *got = NULL;
    size_t gl = 0;
    int rc = kv_get(db, k, strlen(k), &got, &gl);
    KVT_CHECK(rc == KV_NOTFOUND, "%s: deleted key %s came back (rc %d, %zu bytes)", when, k, rc,
              gl);
    kv_free(got);
}

/* ---- the seed's test ------------------------------------------------------------------ */

static void test_overwrites_of_one_key(void)
{
    char *dir = kvt_dir_new("compact-one");
    kv_db *db = open_opts(dir, 0, 1);
    uint8_t v[256];
    size_t vl = 0;
    for (unsigned i = 0; i < 1000; i++) {
        vl = make_value(v, 1, i, 100);
        put_kv(db, "the-key", v, vl);
    }
    uint64_t before = dir_bytes(dir);
    KVT_RC_FATAL(kv_compact(db), KV_OK);
    uint64_t after = dir_bytes(dir);
    kv_stats st = stats(db);
    KVT_CHECK(after * 10 < before, "store is %llu bytes after compaction, %llu before: not "
              "below a tenth", (unsigned long long)after, (unsigned long long)before);
    KVT_CHECK(st.compactions >= 1 && st.compact_bytes_reclaimed > 0 && st.compact_last_time > 0
              && st.compact_records_dropped >= 999,
              "stats: %llu compactions, %llu bytes reclaimed, %llu dropped, last at %llu",
              (unsigned long long)st.compactions, (unsigned long long)st.compact_bytes_reclaimed,
              (unsigned long long)st.compact_records_dropped,
              (unsigned long long)st.compact_last_time);
    KVT_CHECK(st.keys == 1 && st.dead_bytes == 0, "after compaction: %llu keys, %llu dead bytes",
              (unsigned long long)st.keys, (unsigned long long)st.dead_bytes);
    expect_value(db, "the-key", v, vl);
    KVT_RC(kvt_close(db), KV_OK);
    db = open_opts(dir, 0, 1);
    expect_value(db, "the-key", v, vl);
    KVT_CHECK(stats(db).keys == 1, "reopened store has %llu keys", (unsigned long long)stats(db).keys);
    kvt_note("%llu bytes before, %llu after compaction (%.1f%%)", (unsigned long long)before,
             (unsigned long long)after, 100.0 * (double)after / (double)before);
    KVT_RC(kvt_close(db), KV_OK);
}

/* ---- tombstones ------------------------------------------------------------------------ */

static void test_tombstone_not_resurrected(void)
{
    char *dir = kvt_dir_new("compact-tomb");
    /* 64 KiB segments: A (~25 KB) is not "small", so it is not merged away */
    kv_db *db = open_opts(dir, 64 * 1024, 0);
    uint8_t v[512];
    char k[32];
    /* segment A: the victim's value and 100 live fillers */
    put_kv(db, "victim", "old value", 9);
    for (unsigned i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "filler%03u", i);
        put_kv(db, k, v, make_value(v, i, 0, 400));
    }
    roll_now(db);
    /* segment B: only the tombstone */
    KVT_RC_FATAL(kv_delete(db, "victim", 6), KV_OK);
    roll_now(db);
    /* B is all dead and is compacted; A is almost all live and stays */
    KVT_RC_FATAL(kv_compact(db), KV_OK);
    kv_stats st = stats(db);
    KVT_CHECK(st.compactions >= 1, "no compaction ran (%llu)", (unsigned long long)st.compactions);
    KVT_CHECK(st.compact_tombstones_dropped == 0, "the tombstone was dropped while segment A "
              "still holds the old value (%llu dropped)",
              (unsigned long long)st.compact_tombstones_dropped);
    expect_absent(db, "victim", "after compacting the tombstone's segment");
    KVT_RC(kvt_close(db), KV_OK);
    db = open_opts(dir, 64 * 1024, 0);
    expect_absent(db, "victim", "reopened after compacting the tombstone's segment");
    KVT_CHECK(stats(db).keys == 100, "%llu keys", (unsigned long long)stats(db).keys);

    /* Overwrite the fillers: A becomes dead, is compacted, and then the tombstone
     * has nothing left to hide and goes too. */
    for (unsigned i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "filler%03u", i);
        put_kv(db, k, v, make_value(v, i, 1, 400));
    }
    roll_now(db);
    KVT_RC_FATAL(kv_compact(db), KV_OK);
    KVT_RC_FATAL(kv_compact(db), KV_OK);
    st = stats(db);
    KVT_CHECK(st.compact_tombstones_dropped >= 1, "the tombstone was never dropped after the "
              "old value's segment was compacted");
    expect_absent(db, "victim", "after compacting everything");
    KVT_RC(kvt_close(db), KV_OK);
    db = open_opts(dir, 64 * 1024, 0);
    expect_absent(db, "victim", "reopened after compacting everything");
    for (unsigned i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "filler%03u", i);
        expect_value(db, k, v, make_value(v, i, 1, 400));
    }
    KVT_CHECK(stats(db).keys == 100, "%llu keys", (unsigned long long)stats(db).keys);
    KVT_RC(kvt_close(db), KV_OK);
}

/* ---- compaction beside writers and readers --------------------------------------------- */

#define CC_KEYS 400 /* per writer */

typedef struct cc_shared {
    kv_db *db;
    _Atomic int stop;
    _Atomic unsigned long reads, bad, writes, compacts;
    unsigned last[2][CC_KEYS];  /* writer w's last version of its key i (0: deleted) */
    char why[512];
    pthread_mutex_t mu;
} cc_shared;

typedef struct cc_arg {
    cc_shared *sh;
    int id;
} cc_arg;

static void cc_fail(cc_shared *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void cc_fail(cc_shared *sh, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&sh->mu);
    if (sh->why[0] == '\0') {
        va_start(ap, fmt);
        vsnprintf(sh->why, sizeof sh->why, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&sh->mu);
    sh->bad++;
}

static void *cc_writer(void *p)
{
    cc_arg *a = p;
    cc_shared *sh = a->sh;
    uint8_t v[1024];
    char k[32];
    kvt_rng rng;
    kvt_rng_seed(&rng, 77 + (uint64_t)a->id);
    unsigned rounds = kvt_scaled(30, 8);
    for (unsigned r = 1; r <= rounds; r++) {
        for (unsigned i = 0; i < CC_KEYS; i++) {
            unsigned key = (unsigned)a->id * CC_KEYS + i, ver = r;
            snprintf(k, sizeof k, "cc%06u", key);
            int rc;
            if (kvt_rng_chance(&rng, 10)) {
                rc = kv_delete(sh->db, k, strlen(k));
                ver = 0;
                if (rc == KV_NOTFOUND)
                    rc = KV_OK;
            } else {
                rc = kv_put(sh->db, k, strlen(k), v, make_value(v, key, ver, 900));
            }
            if (rc != KV_OK)
                cc_fail(sh, "writer: key %u version %u: rc %d: %s", key, ver, rc, kv_errmsg());
            sh->last[a->id][i] = ver;
            sh->writes++;
        }
    }
    return NULL;
}

static void *cc_reader(void *p)
{
    cc_arg *a = p;
    cc_shared *sh = a->sh;
    static _Thread_local unsigned seen[2 * CC_KEYS];
    kvt_rng rng;
    char k[32];
    memset(seen, 0, sizeof seen);
    kvt_rng_seed(&rng, 991 + (uint64_t)a->id);
    while (!sh->stop) {
        unsigned key = (unsigned)kvt_rng_below(&rng, 2 * CC_KEYS), ver = 0;
        void *v = NULL;
        size_t vl = 0;
        snprintf(k, sizeof k, "cc%06u", key);
        int rc = kv_get(sh->db, k, strlen(k), &v, &vl);
        if (rc == KV_OK && !parse_value(v, vl, key, &ver))
            cc_fail(sh, "reader: key %u: a value that is not this key's (%zu bytes)", key, vl);
        else if (rc == KV_OK && ver < seen[key])
            cc_fail(sh, "reader: key %u went back from version %u to %u", key, seen[key], ver);
        else if (rc != KV_OK && rc != KV_NOTFOUND)
            cc_fail(sh, "reader: key %u: rc %d: %s", key, rc, kv_errmsg());
        if (rc == KV_OK)
            seen[key] = ver;
        kv_free(v);
        sh->reads++;
    }
    return NULL;
}

static void *cc_compactor(void *p)
{
    cc_shared *sh = p;
    while (!sh->stop) {
        int rc = kv_compact(sh->db);
        if (rc != KV_OK)
            cc_fail(sh, "kv_compact: rc %d: %s", rc, kv_errmsg());
        sh->compacts++;
        kvt_sleep_ms(5);
    }
    return NULL;
}

static void cc_check_final(cc_shared *sh, const char *when)
{
    uint8_t want[1024];
    char k[32];
    unsigned bad = 0, keys = 0;
    for (int w = 0; w < 2; w++) {
        for (unsigned i = 0; i < CC_KEYS; i++) {
            unsigned key = (unsigned)w * CC_KEYS + i, ver = sh->last[w][i];
            void *v = NULL;
            size_t vl = 0;
            snprintf(k, sizeof k, "cc%06u", key);
            int rc = kv_get(sh->db, k, strlen(k), &v, &vl);
            size_t wl = ver ? make_value(want, key, ver, 900) : 0;
            int ok = ver ? rc == KV_OK && vl == wl && memcmp(v, want, wl) == 0 : rc == KV_NOTFOUND;
            keys += ver != 0;
            if (!ok && bad++ == 0)
                KVT_CHECK(0, "%s: key %u: rc %d, %zu bytes, expected version %u", when, key, rc, vl,
                          ver);
            kv_free(v);
        }
    }
    KVT_CHECK(bad == 0, "%s: %u keys wrong", when, bad);
    KVT_CHECK(stats(sh->db).keys == keys, "%s: %llu keys, expected %u", when,
              (unsigned long long)stats(sh->db).keys, keys);
}

static void test_compaction_beside_readers_and_writers(void)
{
    char *dir = kvt_dir_new("compact-cc");
    static cc_shared sh;
    cc_arg wa[2], ra[2];
    pthread_t w[2], r[2], c;
    memset(&sh, 0, sizeof sh);
    pthread_mutex_init(&sh.mu, NULL);
    sh.db = open_opts(dir, 64 * 1024, 1);
    for (int i = 0; i < 2; i++) {
        wa[i] = (cc_arg){&sh, i};
        ra[i] = (cc_arg){&sh, i};
        pthread_create(&w[i], NULL, cc_writer, &wa[i]);
        pthread_create(&r[i], NULL, cc_reader, &ra[i]);
    }
    pthread_create(&c, NULL, cc_compactor, &sh);
    for (int i = 0; i < 2; i++)
        pthread_join(w[i], NULL);
    sh.stop = 1;
    for (int i = 0; i < 2; i++)
        pthread_join(r[i], NULL);
    pthread_join(c, NULL);
    KVT_CHECK(sh.bad == 0, "%lu bad results, first: %s", (unsigned long)sh.bad, sh.why);
    kv_stats st = stats(sh.db);
    KVT_CHECK(st.compactions >= 3, "only %llu compaction passes ran", (unsigned long long)st.compactions);
    KVT_CHECK(st.compact_errors == 0, "%llu compaction passes failed",
              (unsigned long long)st.compact_errors);
    cc_check_final(&sh, "after the threads");
    kvt_note("%lu writes, %lu reads, %lu kv_compact calls, %llu passes, %llu bytes reclaimed",
             (unsigned long)sh.writes, (unsigned long)sh.reads, (unsigned long)sh.compacts,
             (unsigned long long)st.compactions, (unsigned long long)st.compact_bytes_reclaimed);
    KVT_RC(kvt_close(sh.db), KV_OK);
    sh.db = open_opts(dir, 64 * 1024, 1);
    cc_check_final(&sh, "after reopening");
    KVT_RC(kvt_close(sh.db), KV_OK);
    pthread_mutex_destroy(&sh.mu);
}

/* ---- a crash at every I/O call of a compaction ----------------------------------------- */

/* The child's I/O layer: the original, except that mutating call number g_kill_at
 * (counted from when it is installed) kills the process — before the call, or, in
 * torn mode, after writing half of a write. */
static const kv_io_ops *g_orig;
static long g_calls, g_kill_at;
static int g_torn;

static void maybe_die(void)
{
    if (++g_calls == g_kill_at)
        raise(SIGKILL);
}

static int w_open(kv_io *io, int dirfd, const char *name, int flags, int mode)
{
    if (flags & (O_CREAT | O_WRONLY | O_RDWR))
        maybe_die();
    return g_orig->open(io, dirfd, name, flags, mode);
}
static int w_close(kv_io *io, int fd) { return g_orig->close(io, fd); }
static ssize_t w_pread(kv_io *io, int fd, void *buf, size_t n, uint64_t off)
{
    return g_orig->pread(io, fd, buf, n, off);
}
static ssize_t w_pwrite(kv_io *io, int fd, const void *buf, size_t n, uint64_t off)
{
    if (g_torn && g_calls + 1 == g_kill_at && n > 1) {
        g_orig->pwrite(io, fd, buf, n / 2, off);
        raise(SIGKILL);
    }
    maybe_die();
    return g_orig->pwrite(io, fd, buf, n, off);
}
static int w_fdatasync(kv_io *io, int fd)
{
    maybe_die();
    return g_orig->fdatasync(io, fd);
}
static int w_ftruncate(kv_io *io, int fd, uint64_t size)
{
    maybe_die();
    return g_orig->ftruncate(io, fd, size);
}
static int w_fsize(kv_io *io, int fd, uint64_t *size) { return g_orig->fsize(io, fd, size); }
static int w_rename(kv_io *io, int dirfd, const char *from, const char *to)
{
    maybe_die();
    return g_orig->rename(io, dirfd, from, to);
}
static int w_unlink(kv_io *io, int dirfd, const char *name)
{
    maybe_die();
    return g_orig->unlink(io, dirfd, name);
}
static int w_syncdir(kv_io *io, int dirfd)
{
    maybe_die();
    return g_orig->syncdir(io, dirfd);
}
static int w_write_group(kv_io *io, int fd, const struct iovec *iov, int iovcnt, uint64_t off,
                         int sync)
{
    maybe_die();
    return g_orig->write_group(io, fd, iov, iovcnt, off, sync);
}
static int w_map(kv_io *io, int fd, size_t len, const void **out)
{
    return g_orig->map(io, fd, len, out);
}
static void w_unmap(kv_io *io, const void *p, size_t len) { g_orig->unmap(io, p, len); }

static const kv_io_ops g_wrap = {w_open, w_close, w_pread, w_pwrite, w_fdatasync, w_ftruncate,
                                 w_fsize, w_rename, w_unlink, w_syncdir, w_write_group, w_map,
                                 w_unmap};

/* The store every crash starts from, and its contents. */
#define CR_KEYS 120
typedef struct cr_model {
    unsigned ver[CR_KEYS]; /* 0: absent */
} cr_model;

static void cr_build(const char *dir, cr_model *m)
{
    kv_db *db = open_opts(dir, 8192, 0);
    uint8_t v[1024];
    char k[32];
    kvt_rng rng;
    kvt_rng_seed(&rng, 4242);
    memset(m, 0, sizeof *m);
    for (unsigned round = 1; round <= 4; round++) {
        for (unsigned i = 0; i < CR_KEYS; i++) {
            snprintf(k, sizeof k, "cr%04u", i);
            if (round > 1 && kvt_rng_chance(&rng, 15)) {
                if (m->ver[i] != 0)
                    KVT_RC_FATAL(kv_delete(db, k, strlen(k)), KV_OK);
                m->ver[i] = 0;
            } else if (round == 1 || kvt_rng_chance(&rng, 40)) {
                put_kv(db, k, v, make_value(v, i, round, 200));
                m->ver[i] = round;
            }
        }
        /* a batch across keys, so batch records reach the compaction */
        kv_batch *b = kv_batch_new();
        for (unsigned i = round; i < CR_KEYS; i += 7) {
            snprintf(k, sizeof k, "cr%04u", i);
            KVT_RC_FATAL(kv_batch_put(b, k, strlen(k), v, make_value(v, i, 100 + round, 200)), KV_OK);
            m->ver[i] = 100 + round;
        }
        KVT_RC_FATAL(kv_write(db, b), KV_OK);
        kv_batch_free(b);
    }
    KVT_RC(kvt_close(db), KV_OK);
}

/* Exactly the model: every key with its value, nothing else. Returns 1 when so. */
static int cr_matches(kv_db *db, const cr_model *m, char *why, size_t why_len)
{
    uint8_t want[1024];
    char k[32];
    uint64_t keys = 0;
    for (unsigned i = 0; i < CR_KEYS; i++) {
        void *v = NULL;
        size_t vl = 0;
        snprintf(k, sizeof k, "cr%04u", i);
        int rc = kv_get(db, k, strlen(k), &v, &vl);
        size_t wl = m->ver[i] ? make_value(want, i, m->ver[i], 200) : 0;
        int ok = m->ver[i] ? rc == KV_OK && vl == wl && memcmp(v, want, wl) == 0 : rc == KV_NOTFOUND;
        keys += m->ver[i] != 0;
        if (!ok)
            snprintf(why, why_len, "key %s: rc %d (%s), %zu bytes; expected %s (version %u)", k,
                     rc, kv_strerror(rc), vl, m->ver[i] ? "its value" : "absent (resurrected)",
                     m->ver[i]);
        kv_free(v);
        if (!ok)
            return 0;
    }
    kv_stats st;
    kv_stat(db, &st);
    if (st.keys != keys) {
        snprintf(why, why_len, "%llu keys, expected %llu", (unsigned long long)st.keys,
                 (unsigned long long)keys);
        return 0;
    }
    return 1;
}

static void copy_dir(const char *from, const char *to)
{
    char cmd[8400];
    kvt_rmtree(to);
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", from, to);
    KVT_CHECK_FATAL(system(cmd) == 0, "%s failed", cmd);
}

/* Runs kv_compact in a child killed at call k. Returns 1 when the child finished
 * without reaching call k (the enumeration is over). */
static int cr_child(const char *dir, long k, int torn)
{
    pid_t pid = fork();
    KVT_CHECK_FATAL(pid >= 0, "fork failed");
    if (pid == 0) {
        kv_options o;
        kv_db *db;
        kvt_options(&o, KV_SYNC_NONE, KV_IO_PSYNC, 8192);
        o.auto_compact = 0;
        if (kv_open(dir, &o, &db) != KV_OK)
            _exit(3);
        g_orig = db->io->ops;
        g_calls = 0;
        g_kill_at = k;
        g_torn = torn;
        db->io->ops = &g_wrap;
        int rc = kv_compact(db);
        kv_close(db);
        _exit(rc == KV_OK ? 0 : 4);
    }
    int status;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        return 0;
    KVT_CHECK_FATAL(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                    "child compaction (kill at %ld) ended with status 0x%x", k, status);
    return 1;
}

static void test_crash_at_every_compaction_step(void)
{
    char *base = kvt_dir_new("compact-crash");
    char *clean = kvt_path(base, "clean"), *work = kvt_path(base, "work");
    static cr_model m;
    char why[512];
    long points = 0, failures = 0;
    cr_build(clean, &m);
    {
        kv_db *db0 = open_opts(clean, 8192, 0);
        KVT_CHECK_FATAL(cr_matches(db0, &m, why, sizeof why), "the store before compaction: %s", why);
        KVT_RC(kvt_close(db0), KV_OK);
    }
    for (int torn = 0; torn <= 1; torn++) {
        for (long k = 1; k < 100000; k++) {
            copy_dir(clean, work);
            int finished = cr_child(work, k, torn);
            kv_db *db = NULL;
            kv_options o;
            kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 8192);
            o.auto_compact = 0;
            int rc = kvt_open(work, &o, &db);
            int ok = rc == KV_OK && cr_matches(db, &m, why, sizeof why);
            if (rc != KV_OK)
                snprintf(why, sizeof why, "kv_open: %d (%s): %s", rc, kv_strerror(rc), kv_errmsg());
            /* a later compaction completes the job, and changes nothing either */
            if (ok && (rc = kv_compact(db)) != KV_OK) {
                ok = 0;
                snprintf(why, sizeof why, "kv_compact after the crash: %d: %s", rc, kv_errmsg());
            }
            if (ok)
                ok = cr_matches(db, &m, why, sizeof why);
            if (db != NULL)
                kvt_close(db);
            if (ok) {
                db = NULL;
                rc = kvt_open(work, &o, &db);
                ok = rc == KV_OK && cr_matches(db, &m, why, sizeof why);
                if (db != NULL)
                    kvt_close(db);
            }
            if (!ok && failures++ < 3)
                KVT_CHECK(0, "crash %s I/O call %ld of the compaction: %s",
                          torn ? "in the middle of" : "before", k, why);
            if (finished)
                break;
            points++;
        }
    }
    KVT_CHECK(points > 40, "only %ld crash points: the compaction did too little I/O", points);
    KVT_CHECK(failures == 0, "%ld crash points left a wrong store", failures);
    kvt_note("%ld crash points (before each mutating I/O call and in the middle of each "
             "write), each reopened, compacted again and reopened", points);
}

/* ---- hints of compaction outputs -------------------------------------------------------- */

static void test_damaged_output_hint(void)
{
    char *dir = kvt_dir_new("compact-hint");
    static cr_model m;
    cr_build(dir, &m);
    kv_db *db = open_opts(dir, 8192, 0);
    KVT_RC_FATAL(kv_compact(db), KV_OK);
    uint32_t out = 0;
    pthread_rwlock_rdlock(&db->ftab_lock);
    for (uint32_t i = 0; i < db->man.nsealed; i++)
        if (db->man.sealed[i].number > db->man.active)
            out = db->man.sealed[i].number; /* numbered after the active: an output */
    pthread_rwlock_unlock(&db->ftab_lock);
    KVT_RC(kvt_close(db), KV_OK);
    KVT_CHECK_FATAL(out != 0, "compaction wrote no output segment");
    char name[32];
    snprintf(name, sizeof name, "%06u.hint", out);
    char *path = kvt_path(dir, name);
    int fd = open(path, O_RDWR);
    KVT_CHECK_FATAL(fd >= 0, "no hint file %s for the compaction output", path);
    uint8_t byte;
    KVT_CHECK_FATAL(pread(fd, &byte, 1, 40) == 1, "hint %s is too short", path);
    byte ^= 0x10;
    KVT_CHECK_FATAL(pwrite(fd, &byte, 1, 40) == 1, "cannot damage %s", path);
    close(fd);
    db = open_opts(dir, 8192, 0);
    char why[512];
    KVT_CHECK(cr_matches(db, &m, why, sizeof why), "after a damaged output hint: %s", why);
    KVT_CHECK(stats(db).recovery_hints_rewritten >= 1, "the damaged hint was not rewritten");
    KVT_RC(kvt_close(db), KV_OK);
}

/* ---- the kvcompact tool --------------------------------------------------------------- */

static void test_kvcompact_tool(void)
{
    const char *bin = getenv("KV_BIN");
    char *dir = kvt_dir_new("compact-tool");
    char cmd[9000], out[4096];
    static cr_model m;
    if (bin == NULL || bin[0] == '\0')
        bin = "build/bin";
    cr_build(dir, &m);
    uint64_t before = dir_bytes(dir);

    /* held by a writer (auto_compact 0): --dry-run changes nothing */
    kv_db *db = open_opts(dir, 8192, 0);
    uint64_t fp = kvt_dir_fingerprint(dir);
    snprintf(cmd, sizeof cmd, "'%s/kvcompact' --dry-run '%s' 2>&1", bin, dir);
    int rc = kvt_run(cmd, out, sizeof out);
    KVT_CHECK(rc == 0 && strstr(out, "would reclaim") != NULL, "--dry-run beside a writer: "
              "exit %d, \"%s\"", rc, out);
    KVT_CHECK(kvt_dir_fingerprint(dir) == fp, "kvcompact --dry-run changed a held store");
    /* ... and kvcompact asks the writer, which compacts, naming its pid */
    snprintf(cmd, sizeof cmd, "'%s/kvcompact' '%s' 2>&1", bin, dir);
    rc = kvt_run(cmd, out, sizeof out);
    char pid[32];
    snprintf(pid, sizeof pid, "(pid %d)", (int)getpid());
    KVT_CHECK(rc == 0 && strstr(out, pid) != NULL && strstr(out, "reclaimed") != NULL,
              "kvcompact on a held store: exit %d, output \"%s\" (expected exit 0, the writer "
              "%s compacting)", rc, out, pid);
    const char *passes = strstr(out, "reclaimed), ");
    KVT_CHECK(passes != NULL && atoi(passes + 12) > 0, "the writer ran no compaction for "
              "kvcompact: \"%s\"", out);
    char why0[512];
    KVT_CHECK(cr_matches(db, &m, why0, sizeof why0), "after kvcompact through the writer: %s",
              why0);
    KVT_RC(kvt_close(db), KV_OK);
    cr_build(dir, &m); /* garbage again, for the offline run */
    before = dir_bytes(dir);

    /* --dry-run changes nothing and says what it would reclaim */
    fp = kvt_dir_fingerprint(dir);
    snprintf(cmd, sizeof cmd, "'%s/kvcompact' --dry-run '%s' 2>&1", bin, dir);
    rc = kvt_run(cmd, out, sizeof out);
    KVT_CHECK(rc == 0 && strstr(out, "would reclaim") != NULL, "--dry-run: exit %d, \"%s\"", rc,
              out);
    KVT_CHECK(kvt_dir_fingerprint(dir) == fp, "kvcompact --dry-run changed the store");

    /* closed: compacted, smaller, same contents */
    snprintf(cmd, sizeof cmd, "'%s/kvcompact' '%s' 2>&1", bin, dir);
    rc = kvt_run(cmd, out, sizeof out);
    KVT_CHECK(rc == 0 && strstr(out, "reclaimed") != NULL, "kvcompact: exit %d, \"%s\"", rc, out);
    uint64_t after = dir_bytes(dir);
    KVT_CHECK(after < before, "kvcompact left %llu bytes of %llu", (unsigned long long)after,
              (unsigned long long)before);
    db = open_opts(dir, 8192, 0);
    char why[512];
    KVT_CHECK(cr_matches(db, &m, why, sizeof why), "after kvcompact: %s", why);
    KVT_RC(kvt_close(db), KV_OK);

    /* not a store, a missing directory, a bad option: exit 2 */
    char *empty = kvt_dir_new("compact-tool-empty");
    const char *bad[] = {empty, "/nonexistent/kv-store"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "'%s/kvcompact' '%s' 2>&1", bin, bad[i]);
        rc = kvt_run(cmd, out, sizeof out);
        KVT_CHECK(rc == 2 && strstr(out, bad[i]) != NULL, "kvcompact %s: exit %d, \"%s\"", bad[i],
                  rc, out);
    }
    KVT_CHECK(kvt_dir_count(empty) == 0, "kvcompact left files in an empty directory");
    snprintf(cmd, sizeof cmd, "'%s/kvcompact' --ratio 2 '%s' 2>&1", bin, dir);
    KVT_CHECK(kvt_run(cmd, out, sizeof out) == 2, "--ratio 2 was accepted: \"%s\"", out);
    kvt_note("kvcompact: %llu -> %llu bytes", (unsigned long long)before, (unsigned long long)after);
}

static const kvt_test compact_tests[] = {
    { "1,000 overwrites of one key: compaction shrinks the store below a tenth",
      test_overwrites_of_one_key },
    { "a tombstone stays while an older value survives, then goes", test_tombstone_not_resurrected },
    { "compaction beside 2 writers and 2 readers", test_compaction_beside_readers_and_writers },
    { "a crash at every I/O call of a compaction", test_crash_at_every_compaction_step },
    { "a damaged hint of a compaction output is rewritten", test_damaged_output_hint },
    { "kvcompact: through the writer when held, compacts when not, exit 2 on bad input",
      test_kvcompact_tool },
    { NULL, NULL },
};

void kvt_register_compact(void)
{
    kvt_add_suite("compact", compact_tests);
}
