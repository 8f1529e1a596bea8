/*
 * test_live.c — the "live" suite: readers beside a live writer (issue 12, item 4).
 *
 * A writer in a forked child puts and deletes self-describing values ("KEY=N;xxx",
 * so any value read verifies against its key) with segments of a few KiB, so it
 * rolls every few puts, and compacts in the background and with kv_compact. A roll
 * publishes a new MANIFEST and then deletes the old WAL file; a compaction publishes
 * one and then deletes its input segments and their hints. A reader that read an
 * older MANIFEST finds files it named gone: the store moved on, which is never
 * damage. Beside that writer:
 *   - read-only kv_opens, again and again (mmap and pread reads): every one opens,
 *     and every value it reads belongs to its key;
 *   - the tools: `kv get`, `kvdump` (its output checked pair by pair), `kvdump --all`
 *     (the store opens for it) and `kvcheck` (exit 0, no problem line);
 *   - damage that stays is still reported: a read-only open of a store whose WAL
 *     file is really missing is KV_ECORRUPT naming it, kvcheck exits 1;
 *   - the read-only open's rule, made deterministic through the io factory hook
 *     (engine/io/io.h) with a layer that makes files look removed: a file gone once is
 *     retried and the open succeeds; gone the same way twice in a row is
 *     KV_ECORRUPT after exactly two attempts; a different file gone at every attempt
 *     is KV_EIO after 16.
 * Counts: 1,000 opens and 360 tool runs (KV_TEST_QUICK: 200 and 90).
 *
 * Sections: the writer child; checks of what a reader sees; an I/O layer whose
 * files vanish; the tests.
 */
#include "kvtest.h"

#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define LIVE_KEYS 500      /* keys the writer writes, "k0000".."k0499" */
#define LIVE_MAX_S 120     /* the writer stops by itself after this long */

/* ---- the writer child ------------------------------------------------------------------ */

typedef struct live_writer {
    pid_t pid;
    int stop_fd;   /* write end: closing it stops the writer */
    int res_fd;    /* read end: the writer's figures when it stops */
} live_writer;

/* What the writer did, told when it stops. */
typedef struct live_result {
    int status;                    /* 0, or the step that failed */
    char msg[256];                 /* kv_errmsg of that failure */
    unsigned long long ops, bytes, compactions, kv_compacts;
} live_result;

/* One put (9 in 10) or delete of a random key; the value is "KEY=N;" and padding.
 * Returns the call's status (a delete of an absent key is KV_NOTFOUND). */
static int live_write_one(kv_db *db, kvt_rng *r, unsigned long long n, live_result *res)
{
    char k[16], v[1100];
    int kl = snprintf(k, sizeof k, "k%04u", (unsigned)kvt_rng_below(r, LIVE_KEYS));
    if (kvt_rng_chance(r, 10))
        return kv_delete(db, k, (size_t)kl);
    int vl = snprintf(v, sizeof v, "%s=%llu;", k, n);
    size_t pad = (size_t)kvt_rng_below(r, 900);
    memset(v + vl, 'x', pad);
    res->bytes += (size_t)vl + pad + (size_t)kl;
    return kv_put(db, k, (size_t)kl, v, (size_t)vl + pad);
}

/* The child's loop: writes until the parent closes stop_fd (or LIVE_MAX_S pass, or
 * the parent dies), compacting every 2,000 operations. Never returns. */
static void live_writer_main(const char *dir, uint64_t seg, int stop_fd, int res_fd)
{
    live_result res;
    kv_options o;
    kv_db *db;
    kvt_rng r;
    char b;
    memset(&res, 0, sizeof res);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    kv_options_init(&o);
    o.segment_bytes = seg;
    o.sync = KV_SYNC_NONE;
    o.compact_bytes_per_sec = 0;
    kvt_rng_seed(&r, (uint64_t)getpid());
    uint64_t end = kvt_now_ms() + LIVE_MAX_S * 1000u;
    int rc = kv_open(dir, &o, &db);
    res.status = rc == KV_OK ? 0 : 1;
    while (res.status == 0 && read(stop_fd, &b, 1) < 0 && errno == EAGAIN && kvt_now_ms() < end) {
        for (int j = 0; j < 100 && res.status == 0; j++, res.ops++) {
            int w = live_write_one(db, &r, res.ops, &res);
            res.status = w == KV_OK || w == KV_NOTFOUND ? 0 : 2;
        }
        if (res.status == 0 && res.ops % 2000 == 0) {
            res.status = kv_compact(db) == KV_OK ? 0 : 3;
            res.kv_compacts++;
        }
    }
    if (res.status != 0)
        snprintf(res.msg, sizeof res.msg, "%s", kv_errmsg());
    if (rc == KV_OK) {
        kv_stats st;
        kv_stat(db, &st);
        res.compactions = st.compactions;
        if (kv_close(db) != KV_OK && res.status == 0) {
            res.status = 4;
            snprintf(res.msg, sizeof res.msg, "%s", kv_errmsg());
        }
    }
    ssize_t w = write(res_fd, &res, sizeof res);
    _exit(w == (ssize_t)sizeof res ? 0 : 5);
}

/* Creates the store in dir with some keys, then starts the writer on it and lets it
 * roll a few times before returning. */
static void live_start(live_writer *w, const char *dir, uint64_t seg)
{
    int stop[2], res[2];
    kv_db *db;
    kv_options o;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, seg);
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    for (unsigned i = 0; i < LIVE_KEYS; i += 3) {
        char k[16], v[64];
        snprintf(k, sizeof k, "k%04u", i);
        snprintf(v, sizeof v, "%s=0;seed", k);
        KVT_RC_FATAL(kvt_put_str(db, k, v), KV_OK);
    }
    KVT_RC_FATAL(kvt_close(db), KV_OK);
    KVT_CHECK_FATAL(pipe(stop) == 0 && pipe(res) == 0, "pipe: %s", strerror(errno));
    KVT_CHECK_FATAL(fcntl(stop[0], F_SETFL, O_NONBLOCK) == 0, "fcntl: %s", strerror(errno));
    fflush(NULL);
    w->pid = fork();
    KVT_CHECK_FATAL(w->pid >= 0, "fork: %s", strerror(errno));
    if (w->pid == 0) {
        close(stop[1]);
        close(res[0]);
        live_writer_main(dir, seg, stop[0], res[1]);
    }
    close(stop[0]);
    close(res[1]);
    w->stop_fd = stop[1];
    w->res_fd = res[0];
    kvt_sleep_ms(300);
}

/* Stops the writer and checks that it worked and did roll and compact while the
 * readers ran (else the test proved nothing). Not fatal: the child is always
 * reaped. */
static void live_stop(live_writer *w, uint64_t seg)
{
    live_result res;
    int st = 0;
    memset(&res, 0, sizeof res);
    close(w->stop_fd);
    ssize_t got = read(w->res_fd, &res, sizeof res);
    close(w->res_fd);
    KVT_CHECK(waitpid(w->pid, &st, 0) == w->pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the writer child ended with status 0x%x", st);
    KVT_CHECK(got == (ssize_t)sizeof res && res.status == 0, "the writer failed (step %d): %s",
              res.status, res.msg);
    unsigned long long rolls = res.bytes / seg;
    kvt_note("writer: %llu operations, ~%llu rolls, %llu compactions (%llu kv_compact)",
             res.ops, rolls, res.compactions, res.kv_compacts);
    KVT_CHECK(rolls >= 20 && res.compactions >= 2, "the writer rolled ~%llu times and compacted "
              "%llu times: too few to test anything", rolls, res.compactions);
}

/* ---- what a reader sees ---------------------------------------------------------------- */

typedef struct seen {
    unsigned long long keys, bad;
    char first_bad[160];
} seen;

/* A value belongs to its key: it starts with "KEY=". */
static int belongs(const void *k, size_t kl, const void *v, size_t vl)
{
    return vl > kl && memcmp(v, k, kl) == 0 && ((const char *)v)[kl] == '=';
}

static int seen_fn(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
    seen *s = arg;
    s->keys++;
    if (!belongs(k, kl, v, vl) && s->bad++ == 0)
        snprintf(s->first_bad, sizeof s->first_bad, "%.*s -> %.*s", (int)(kl > 20 ? 20 : kl),
                 (const char *)k, (int)(vl > 40 ? 40 : vl), (const char *)v);
    return 0;
}

/* Directory of the tools under test. */
static const char *bin(void)
{
    const char *b = getenv("KV_BIN");
    return b != NULL && b[0] != '\0' ? b : "build/bin";
}

/* Checks kvdump -p output: the header, then pairs of " key" / " key=..." lines (the
 * keys are printable), then DATA=END. Returns pairs, or -1 with why. */
static long dump_pairs(char *out, char *why, size_t n)
{
    char *save, *key = NULL;
    long pairs = 0;
    int header = 1, end = 0;
    for (char *l = strtok_r(out, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        if (header) {
            header = strcmp(l, "HEADER=END") != 0;
        } else if (strcmp(l, "DATA=END") == 0) {
            end = 1;
        } else if (l[0] != ' ' || end) {
            snprintf(why, n, "unexpected line \"%.60s\"", l);
            return -1;
        } else if (key == NULL) {
            key = l + 1;
        } else {
            if (!belongs(key, strlen(key), l + 1, strlen(l + 1))) {
                snprintf(why, n, "key %.20s has value \"%.40s\"", key, l + 1);
                return -1;
            }
            key = NULL;
            pairs++;
        }
    }
    if (!end || key != NULL)
        snprintf(why, n, "%s", end ? "a key without its value" : "no DATA=END");
    return end && key == NULL ? pairs : -1;
}

/* ---- an I/O layer whose files vanish ----------------------------------------------------- */

/* The default layer, except that opening a file whose name ends in suffix fails
 * with ENOENT, as after a writer removed it: the first `left` such opens (once),
 * or with alternate set, every such open of a name other than the one that failed
 * last (so each attempt of an open misses another file). */
typedef struct vanish_io {
    kv_io io;           /* first: what kv_open gets */
    kv_io *inner;       /* the default layer everything else goes to */
    char suffix[8];
    unsigned left;
    int alternate;
    char last[64];      /* the name whose open failed last */
    unsigned failed;    /* opens made to fail */
} vanish_io;

static vanish_io g_vanish; /* the one layer in use (the factory hands it out once) */
static const char *g_vanish_dir;

static kv_io *inner_of(kv_io *io) { return ((vanish_io *)io)->inner; }

static int v_open(kv_io *io, int dirfd, const char *name, int flags, int mode)
{
    vanish_io *v = (vanish_io *)io;
    size_t n = strlen(name), sl = strlen(v->suffix);
    if (n >= sl && strcmp(name + n - sl, v->suffix) == 0
        && (v->alternate ? strcmp(name, v->last) != 0 : v->left > 0)) {
        v->left -= v->left > 0;
        v->failed++;
        snprintf(v->last, sizeof v->last, "%s", name);
        return -ENOENT;
    }
    return v->inner->ops->open(v->inner, dirfd, name, flags, mode);
}
static int v_close(kv_io *io, int fd) { return inner_of(io)->ops->close(inner_of(io), fd); }
static ssize_t v_pread(kv_io *io, int fd, void *buf, size_t n, uint64_t off)
{
    return inner_of(io)->ops->pread(inner_of(io), fd, buf, n, off);
}
static ssize_t v_pwrite(kv_io *io, int fd, const void *buf, size_t n, uint64_t off)
{
    return inner_of(io)->ops->pwrite(inner_of(io), fd, buf, n, off);
}
static int v_fdatasync(kv_io *io, int fd) { return inner_of(io)->ops->fdatasync(inner_of(io), fd); }
static int v_ftruncate(kv_io *io, int fd, uint64_t size)
{
    return inner_of(io)->ops->ftruncate(inner_of(io), fd, size);
}
static int v_fsize(kv_io *io, int fd, uint64_t *size)
{
    return inner_of(io)->ops->fsize(inner_of(io), fd, size);
}
static int v_rename(kv_io *io, int dirfd, const char *from, const char *to)
{
    return inner_of(io)->ops->rename(inner_of(io), dirfd, from, to);
}
static int v_unlink(kv_io *io, int dirfd, const char *name)
{
    return inner_of(io)->ops->unlink(inner_of(io), dirfd, name);
}
static int v_syncdir(kv_io *io, int dirfd) { return inner_of(io)->ops->syncdir(inner_of(io), dirfd); }
static int v_write_group(kv_io *io, int fd, const struct iovec *iov, int iovcnt, uint64_t off,
                         int sync)
{
    return inner_of(io)->ops->write_group(inner_of(io), fd, iov, iovcnt, off, sync);
}
static int v_map(kv_io *io, int fd, size_t len, const void **out)
{
    return inner_of(io)->ops->map(inner_of(io), fd, len, out);
}
static void v_unmap(kv_io *io, const void *p, size_t len)
{
    inner_of(io)->ops->unmap(inner_of(io), p, len);
}

static const kv_io_ops vanish_ops = {
    .open = v_open,           .close = v_close,         .pread = v_pread,
    .pwrite = v_pwrite,       .fdatasync = v_fdatasync, .ftruncate = v_ftruncate,
    .fsize = v_fsize,         .rename = v_rename,       .unlink = v_unlink,
    .syncdir = v_syncdir,     .write_group = v_write_group, .map = v_map,
    .unmap = v_unmap,
};

static void v_destroy(kv_io *io)
{
    io_free(inner_of(io));
    ((vanish_io *)io)->inner = NULL;
}

static int vanish_factory(void *arg, const char *dir, int want, kv_io **out)
{
    (void)arg;
    if (strcmp(dir, g_vanish_dir) != 0 || g_vanish.inner != NULL)
        return io_new(want, out);
    int rc = io_new(KV_IO_PSYNC, &g_vanish.inner);
    if (rc != KV_OK)
        return rc;
    g_vanish.io.ops = &vanish_ops;
    g_vanish.io.backend = KV_IO_PSYNC;
    g_vanish.io.destroy = v_destroy;
    *out = &g_vanish.io;
    return KV_OK;
}

/* Opens dir read-only through a vanishing layer (suffix, left, alternate); returns
 * kv_open's status, the opens made to fail in *failed, and the handle's key count
 * (or 0). The message of a failure stays in kv_errmsg. */
static int open_vanishing(const char *dir, const char *suffix, unsigned left, int alternate,
                          unsigned *failed, uint64_t *keys)
{
    kv_options o;
    kv_db *db;
    memset(&g_vanish, 0, sizeof g_vanish);
    snprintf(g_vanish.suffix, sizeof g_vanish.suffix, "%s", suffix);
    g_vanish.left = left;
    g_vanish.alternate = alternate;
    g_vanish_dir = dir;
    kv_options_init(&o);
    o.read_only = 1;
    o.create = 0;
    io_set_factory(vanish_factory, NULL);
    int rc = kvt_open(dir, &o, &db);
    io_set_factory(NULL, NULL);
    *failed = g_vanish.failed;
    *keys = 0;
    if (rc == KV_OK) {
        kv_stats st;
        kv_stat(db, &st);
        *keys = st.keys;
        kvt_close(db);
    }
    return rc;
}

/* ---- the tests --------------------------------------------------------------------------- */

/* Read-only kv_open again and again beside the writer: none fails, every value read
 * belongs to its key. */
static void test_ro_opens_beside_writer(void)
{
    char *dir = kvt_dir_new("live-open");
    live_writer w;
    unsigned n = kvt_scaled(1000, 200), done = 0, failed = 0;
    unsigned long long bad = 0, keys = 0;
    char first[600] = "", first_bad[160] = "";
    uint64_t t0 = kvt_now_ms(), cap = kvt_scaled(40000, 20000);
    live_start(&w, dir, 4096);
    for (; done < n && kvt_now_ms() - t0 < cap; done++) {
        kv_options o;
        kv_db *db;
        kv_options_init(&o);
        o.read_only = 1;
        o.create = 0;
        o.mmap_reads = done % 2;
        int rc = kv_open(dir, &o, &db);
        if (rc != KV_OK) {
            if (failed++ == 0)
                snprintf(first, sizeof first, "%s: %s", kv_strerror(rc), kv_errmsg());
            continue;
        }
        seen s = {0};
        rc = kv_foreach(db, seen_fn, &s);
        if (rc != KV_OK && failed++ == 0)
            snprintf(first, sizeof first, "kv_foreach: %s: %s", kv_strerror(rc), kv_errmsg());
        if (s.bad > 0 && bad == 0)
            snprintf(first_bad, sizeof first_bad, "%s", s.first_bad);
        bad += s.bad;
        keys += s.keys;
        kv_close(db);
    }
    live_stop(&w, 4096);
    kvt_note("%u read-only opens in %.1f s, %u failed, %llu keys read", done,
             (double)(kvt_now_ms() - t0) / 1000.0, failed, keys);
    KVT_CHECK(failed == 0, "%u of %u read-only opens beside the writer failed; the first: %s",
              failed, done, first);
    KVT_CHECK(bad == 0, "%llu values did not belong to their key; the first: %s", bad, first_bad);
    KVT_CHECK(done >= n / 2, "only %u of %u opens in %llu ms", done, n, (unsigned long long)cap);
    KVT_CHECK(keys > 0, "no key was read");
}

/* One tool run of round i; returns 0 when it reported the store as healthy, else
 * describes what it said in why. */
static int tool_run(const char *dir, unsigned i, char *out, size_t n, char *why, size_t wn)
{
    char cmd[9000];
    int kind = (int)(i % 4), rc;
    if (kind == 0) {
        snprintf(cmd, sizeof cmd, "'%s/kv' -d '%s' get k%04u 2>&1", bin(), dir,
                 (unsigned)kvt_mix64(i) % LIVE_KEYS);
        rc = kvt_run(cmd, out, n);
        if ((rc != 0 && rc != 1) || (rc == 0 && strchr(out, '=') == NULL))
            return snprintf(why, wn, "kv get: exit %d: %.300s", rc, out), -1;
        return 0;
    }
    if (kind == 1) {
        snprintf(cmd, sizeof cmd, "'%s/kvdump' -p '%s' 2>&1", bin(), dir);
        rc = kvt_run(cmd, out, n);
        char bad[160] = "";
        if (rc != 0 || dump_pairs(out, bad, sizeof bad) <= 0)
            return snprintf(why, wn, "kvdump: exit %d: %.60s: %.250s", rc, bad, out), -1;
        return 0;
    }
    if (kind == 2) {
        snprintf(cmd, sizeof cmd, "'%s/kvdump' --all '%s' 2>&1 >/dev/null", bin(), dir);
        rc = kvt_run(cmd, out, n);
        if (rc != 0 || strstr(out, "does not open") != NULL)
            return snprintf(why, wn, "kvdump --all: exit %d: %.300s", rc, out), -1;
        return 0;
    }
    snprintf(cmd, sizeof cmd, "'%s/kvcheck' '%s' 2>&1", bin(), dir);
    rc = kvt_run(cmd, out, n);
    if (rc != 0 || strstr(out, "damaged=0 ") == NULL)
        return snprintf(why, wn, "kvcheck: exit %d: %.300s", rc, out), -1;
    return 0;
}

/* kv get, kvdump, kvdump --all and kvcheck beside the writer: every run reports
 * the store healthy. */
static void test_tools_beside_writer(void)
{
    char *dir = kvt_dir_new("live-tools");
    live_writer w;
    static char out[1 << 20];
    unsigned n = kvt_scaled(360, 90), done = 0, failed[4] = {0};
    char first[4][400] = {"", "", "", ""};
    uint64_t t0 = kvt_now_ms(), cap = kvt_scaled(40000, 20000);
    live_start(&w, dir, 4096);
    for (; done < n && kvt_now_ms() - t0 < cap; done++) {
        char why[400];
        if (tool_run(dir, done, out, sizeof out, why, sizeof why) != 0 && failed[done % 4]++ == 0)
            snprintf(first[done % 4], sizeof first[0], "%s", why);
    }
    live_stop(&w, 4096);
    kvt_note("%u tool runs in %.1f s; false reports: kv get %u, kvdump %u, kvdump --all %u, "
             "kvcheck %u", done, (double)(kvt_now_ms() - t0) / 1000.0, failed[0], failed[1],
             failed[2], failed[3]);
    for (int k = 0; k < 4; k++)
        KVT_CHECK(failed[k] == 0, "%u false reports beside the writer; the first: %s", failed[k],
                  first[k]);
    KVT_CHECK(done >= n / 2, "only %u of %u tool runs in %llu ms", done, n,
              (unsigned long long)cap);
}

/* What really is missing stays reported: the WAL file the MANIFEST names, removed by
 * hand (no writer): a read-only open is KV_ECORRUPT naming it, kvcheck exits 1. */
static void test_real_damage_still_reported(void)
{
    char *dir = kvt_dir_new("live-damage");
    char cmd[9000], out[8192];
    kv_db *db;
    kv_options o;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 4096);
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    for (unsigned i = 0; i < 200; i++) {
        char k[16], v[300];
        snprintf(k, sizeof k, "k%04u", i);
        snprintf(v, sizeof v, "%s=%u;%0200u", k, i, i);
        KVT_RC_FATAL(kvt_put_str(db, k, v), KV_OK);
    }
    KVT_RC_FATAL(kvt_close(db), KV_OK);
    /* the active pair is the newest NNNNNN.wal: remove it */
    snprintf(cmd, sizeof cmd, "cd '%s' && ls *.wal | sort | tail -1", dir);
    KVT_CHECK_FATAL(kvt_run(cmd, out, sizeof out) == 0 && strlen(out) > 4, "no WAL file: %s", out);
    out[strcspn(out, "\n")] = '\0';
    char wal[64];
    snprintf(wal, sizeof wal, "%.40s", out);
    KVT_CHECK_FATAL(unlink(kvt_path(dir, wal)) == 0, "unlink %s: %s", wal, strerror(errno));
    o.read_only = 1;
    o.create = 0;
    uint64_t t0 = kvt_now_us();
    KVT_RC(kvt_open(dir, &o, &db), KV_ECORRUPT);
    uint64_t us = kvt_now_us() - t0;
    char num[8];
    snprintf(num, sizeof num, "%.6s", wal);
    KVT_CHECK(strstr(kv_errmsg(), num) != NULL && strstr(kv_errmsg(), "missing") != NULL,
              "the message does not name the missing WAL file %s: %s", wal, kv_errmsg());
    KVT_CHECK(us < 2000000, "the refused open took %llu us", (unsigned long long)us);
    snprintf(cmd, sizeof cmd, "'%s/kvcheck' '%s' 2>&1", bin(), dir);
    int rc = kvt_run(cmd, out, sizeof out);
    KVT_CHECK(rc == 1 && strstr(out, wal) != NULL && strstr(out, "missing") != NULL,
              "kvcheck on a store whose WAL file is missing: exit %d, \"%s\"", rc, out);
}

/* The read-only open's rule, each branch: a file gone once (the store moved on) is
 * retried; the same file gone twice in a row is damage (two attempts, KV_ECORRUPT
 * naming it); another file gone at every attempt is a store that keeps changing
 * (KV_EIO after 16 attempts). Every reset between attempts runs under ASan too. */
static void test_ro_open_rule(void)
{
    char *dir = kvt_dir_new("live-rule");
    kv_db *db;
    kv_options o;
    unsigned failed;
    uint64_t keys;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 4096);
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    for (unsigned i = 0; i < 100; i++) {
        char k[16], v[300];
        snprintf(k, sizeof k, "k%04u", i);
        snprintf(v, sizeof v, "%s=%u;%0200u", k, i, i);
        KVT_RC_FATAL(kvt_put_str(db, k, v), KV_OK);
    }
    KVT_RC_FATAL(kvt_close(db), KV_OK);

    KVT_RC(open_vanishing(dir, ".wal", 1, 0, &failed, &keys), KV_OK);
    KVT_CHECK(failed == 1 && keys == 100, "WAL file gone once: %u opens failed, %llu keys",
              failed, (unsigned long long)keys);

    KVT_RC(open_vanishing(dir, ".seg", 1, 0, &failed, &keys), KV_OK);
    KVT_CHECK(failed == 1 && keys == 100, "a segment gone once: %u opens failed, %llu keys",
              failed, (unsigned long long)keys);

    KVT_RC(open_vanishing(dir, ".wal", 1000, 0, &failed, &keys), KV_ECORRUPT);
    KVT_CHECK(failed == 2 && strstr(kv_errmsg(), "WAL file") != NULL
              && strstr(kv_errmsg(), "missing") != NULL,
              "WAL file gone for good: %u attempts, \"%s\"", failed, kv_errmsg());

    uint64_t t0 = kvt_now_ms();
    KVT_RC(open_vanishing(dir, ".seg", 0, 1, &failed, &keys), KV_EIO);
    KVT_CHECK(failed == 16 && strstr(kv_errmsg(), "kept changing") != NULL,
              "another segment gone at every attempt: %u attempts, \"%s\"", failed, kv_errmsg());
    kvt_note("16 attempts of a store that keeps changing: %llu ms",
             (unsigned long long)(kvt_now_ms() - t0));
}

static const kvt_test live_tests[] = {
    {"read-only opens beside a writer rolling every 4 KiB and compacting: none fails, every "
     "value belongs to its key", test_ro_opens_beside_writer},
    {"kv get, kvdump, kvdump --all, kvcheck beside that writer: no false report",
     test_tools_beside_writer},
    {"damage that stays is still reported: a missing WAL file (open and kvcheck)",
     test_real_damage_still_reported},
    {"the read-only open's rule: a file gone once is retried, twice in a row is "
     "KV_ECORRUPT, a different one each time is KV_EIO after 16 attempts", test_ro_open_rule},
    {NULL, NULL},
};

void kvt_register_live(void)
{
    kvt_add_suite("live", live_tests);
}
