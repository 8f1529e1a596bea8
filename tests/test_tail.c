/*
 * test_tail.c — the "tail" suite: torn tail or damage in the newest WAL file
 * (invariant 4; the rule is in engine/store/scan.h and docs/FORMAT.md).
 *
 * A store is written by a child process that is then killed with SIGKILL, so the
 * WAL file is the only copy of its records (the active segment's buffer dies with
 * it). Copies of that store are then damaged in the ways a crash can and cannot
 * damage it:
 *   - a bit flipped in a record that was fdatasync'd, with fenced records after it:
 *     every open (writer and read-only) is refused with KV_ECORRUPT naming the file
 *     and offset, no byte of the store changes, and kvcheck reports damage;
 *   - a tail cut at any byte, garbage appended, a stale copy of an earlier fenced
 *     record appended, a 4 KiB hole (a page a power failure never wrote) followed by
 *     records that were never synced: each is a torn tail, which open cuts, keeping
 *     every record before it.
 *
 * Sections: 1. building the store and its copies, 2. the tests, 3. registration.
 */
#include "kvtest.h"

#include "format/format.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* =================================================================================
 * 1. The store and its copies
 * ============================================================================== */

#define TL_VLEN 100
#define TL_KLEN 7                                /* "key0000" */
#define TL_REC (KV_ENTRY_HDR + TL_KLEN + TL_VLEN) /* 127 bytes a record */

static uint64_t rec_off(unsigned i) { return KV_FILE_HDR_SIZE + (uint64_t)i * TL_REC; }

static void tl_key(char *k, unsigned i) { snprintf(k, 16, "key%04u", i % 10000u); }

static void tl_val(char *v, unsigned i)
{
    for (unsigned j = 0; j < TL_VLEN; j++)
        v[j] = (char)('a' + (i * 7 + j) % 26);
}

/* A child writes n puts with the given sync mode (one thread, so one record a group)
 * and is killed. With pause_at, it waits 60 ms after that many puts (KV_SYNC_INTERVAL:
 * a sync completes, so the next group is a fence). */
static void tl_build(const char *dir, int sync, unsigned n, unsigned pause_at)
{
    pid_t pid = fork();
    KVT_CHECK_FATAL(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        kv_db *db;
        kv_options o;
        char k[16], v[TL_VLEN];
        kv_options_init(&o);
        o.sync = sync;
        o.sync_interval_ms = 5;
        o.auto_compact = 0;
        if (kv_open(dir, &o, &db) != KV_OK)
            _exit(2);
        for (unsigned i = 0; i < n; i++) {
            tl_key(k, i);
            tl_val(v, i);
            if (kv_put(db, k, TL_KLEN, v, TL_VLEN) != KV_OK)
                _exit(3);
            if (pause_at != 0 && i + 1 == pause_at) {
                struct timespec ts = {0, 60000000L};
                while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
                }
            }
        }
        raise(SIGKILL);
        _exit(4);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    KVT_CHECK_FATAL(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the writer did not run (%d)", st);
    struct stat sb;
    KVT_CHECK_FATAL(stat(kvt_path(dir, "000001.wal"), &sb) == 0
                        && (uint64_t)sb.st_size == rec_off(n),
                    "000001.wal holds %lld bytes, %llu expected", (long long)sb.st_size,
                    (unsigned long long)rec_off(n));
}

/* A fresh copy of every file of src. */
static char *tl_copy(const char *src)
{
    char *dst = kvt_dir_new("tailcopy");
    DIR *d = opendir(src);
    struct dirent *de;
    KVT_CHECK_FATAL(d != NULL, "opendir %s", src);
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        size_t len;
        uint8_t *b = kvt_slurp(kvt_path(src, de->d_name), &len);
        kvt_spill(kvt_path(dst, de->d_name), b, len);
        free(b);
    }
    closedir(d);
    return dst;
}

static void tl_flip(const char *dir, const char *name, uint64_t off, uint8_t mask)
{
    size_t len;
    uint8_t *b = kvt_slurp(kvt_path(dir, name), &len);
    KVT_CHECK_FATAL(off < len, "%s has %zu bytes, no offset %llu", name, len,
                    (unsigned long long)off);
    b[off] ^= mask;
    kvt_spill(kvt_path(dir, name), b, len);
    free(b);
}

/* Replaces the WAL with its first `keep` bytes, then `extra` (n bytes). */
static void tl_rewrite_wal(const char *dir, uint64_t keep, const uint8_t *extra, size_t n)
{
    size_t len;
    uint8_t *b = kvt_slurp(kvt_path(dir, "000001.wal"), &len);
    KVT_CHECK_FATAL(keep <= len, "cut at %llu past the end", (unsigned long long)keep);
    uint8_t *nb = malloc((size_t)keep + n + 1);
    KVT_CHECK_FATAL(nb != NULL, "malloc");
    memcpy(nb, b, (size_t)keep);
    if (n > 0)
        memcpy(nb + keep, extra, n);
    kvt_spill(kvt_path(dir, "000001.wal"), nb, (size_t)keep + n);
    free(nb);
    free(b);
}

/* Opens dir (writer), checks that keys [0, upto) are there with their values and
 * keys [upto, n) are not, closes. */
static void tl_expect_prefix(const char *dir, unsigned upto, unsigned n, const char *what)
{
    kv_db *db;
    kv_options o;
    char k[16], v[TL_VLEN];
    kvt_options(&o, KV_SYNC_ALWAYS, KV_IO_AUTO, 0);
    int rc = kvt_open(dir, &o, &db);
    KVT_CHECK_FATAL(rc == KV_OK, "%s: open returned %s: %s", what, kv_strerror(rc), kv_errmsg());
    unsigned bad = 0;
    for (unsigned i = 0; i < n; i++) {
        char why[256];
        tl_key(k, i);
        tl_val(v, i);
        if (kvt_value_cmp(db, k, TL_KLEN, i < upto ? v : NULL, i < upto ? TL_VLEN : 0, why,
                          sizeof why) != 0 && bad++ == 0)
            KVT_CHECK(0, "%s: key %u: %s", what, i, why);
    }
    KVT_CHECK(bad == 0, "%s: %u keys wrong", what, bad);
    KVT_RC(kvt_close(db), KV_OK);
}

/* Both kinds of open are refused with KV_ECORRUPT naming the WAL file and the offset
 * of the damaged record, and the store is left byte for byte as it was. */
static void tl_expect_refused(const char *dir, uint64_t bad_rec_off, const char *what)
{
    uint64_t before = kvt_dir_fingerprint(dir);
    char want[64];
    snprintf(want, sizeof want, "offset %llu", (unsigned long long)bad_rec_off);
    for (int ro = 0; ro < 2; ro++) {
        kv_db *db = NULL;
        kv_options o;
        kvt_options(&o, KV_SYNC_ALWAYS, KV_IO_AUTO, 0);
        o.read_only = ro;
        o.create = 0;
        int rc = kvt_open(dir, &o, &db);
        KVT_CHECK(rc == KV_ECORRUPT, "%s: %s open returned %s (%s), not KV_ECORRUPT", what,
                  ro ? "read-only" : "writer", kv_strerror(rc), kv_errmsg());
        KVT_CHECK(strstr(kv_errmsg(), "000001.wal") != NULL && strstr(kv_errmsg(), want) != NULL,
                  "%s: the message names neither the file nor %s: %s", what, want, kv_errmsg());
        if (db != NULL)
            kvt_close(db);
    }
    KVT_CHECK(kvt_dir_fingerprint(dir) == before, "%s: a refused open changed the store", what);
}

/* kvcheck's exit status on dir, and its output in out. */
static int tl_kvcheck(const char *dir, char *out, size_t n)
{
    char cmd[1024];
    const char *bin = getenv("KV_BIN");
    snprintf(cmd, sizeof cmd, "'%s/kvcheck' '%s' </dev/null 2>&1", bin != NULL ? bin : "bin", dir);
    return kvt_run(cmd, out, n);
}

/* =================================================================================
 * 2. The tests
 * ============================================================================== */

/* The case: 1,000 fdatasync'd puts, one bit flipped in record 300. Then the
 * same at other places: in a key, a value, a header field, a CRC, the first record,
 * the one before the last (each with fenced records after it). */
static void test_flip_before_fences_refused(void)
{
    unsigned n = kvt_scaled(1000, 300);
    char *base = kvt_dir_new("tailbase");
    tl_build(base, KV_SYNC_ALWAYS, n, 0);
    const struct { unsigned rec; unsigned at; const char *where; } flips[] = {
        {n * 3 / 10, 40, "value"}, {n / 2, KV_ENTRY_HDR + 2, "key"},
        {n / 4, KV_ENTRY_OFF_SEQ + 1, "sequence number"}, {n / 5, KV_ENTRY_OFF_VLEN, "length"},
        {n / 3, 1, "CRC"}, {0, 60, "first record"}, {n - 2, 90, "the one before the last"},
        {n / 7, KV_ENTRY_OFF_FLAGS, "flags"},
    };
    for (size_t i = 0; i < sizeof flips / sizeof *flips; i++) {
        char *dir = tl_copy(base), out[4096], what[96];
        snprintf(what, sizeof what, "flip in the %s of record %u", flips[i].where, flips[i].rec);
        tl_flip(dir, "000001.wal", rec_off(flips[i].rec) + flips[i].at, 0x10);
        tl_expect_refused(dir, rec_off(flips[i].rec), what);
        int st = tl_kvcheck(dir, out, sizeof out);
        KVT_CHECK(st == 1 && strstr(out, "000001.wal") != NULL && strstr(out, "torn") == NULL,
                  "%s: kvcheck exited %d and did not report damage: %s", what, st, out);
        if (i == 0) { /* kvdump --all shows the fences and the verdict */
            static char listing[1 << 20];
            char cmd[1024];
            const char *bin = getenv("KV_BIN");
            snprintf(cmd, sizeof cmd, "'%s/kvdump' --all '%s/000001.wal' 2>&1",
                     bin != NULL ? bin : "bin", dir);
            kvt_run(cmd, listing, sizeof listing);
            KVT_CHECK(strstr(listing, "fence=yes") != NULL && strstr(listing, "fenced=yes") != NULL
                          && strstr(listing, "torn_tail=no") != NULL,
                      "kvdump --all: no fence=yes, fenced=yes and torn_tail=no in its listing");
        }
    }
}

/* Under KV_SYNC_INTERVAL, records before a completed sync are durable too: damage
 * there, with the fence of the first group after the sync following it, is refused. */
static void test_interval_flip_before_sync_refused(void)
{
    char *base = kvt_dir_new("tailint");
    tl_build(base, KV_SYNC_INTERVAL, 400, 200);
    char *dir = tl_copy(base);
    tl_flip(dir, "000001.wal", rec_off(50) + 70, 0x01);
    tl_expect_refused(dir, rec_off(50), "KV_SYNC_INTERVAL, flip in record 50");
}

/* A tail cut anywhere in the last records, at every byte of the last one: the open
 * keeps every whole record. */
static void test_cut_anywhere_opens(void)
{
    unsigned n = kvt_scaled(400, 120);
    char *base = kvt_dir_new("tailcut");
    tl_build(base, KV_SYNC_ALWAYS, n, 0);
    kvt_rng rng;
    kvt_rng_seed(&rng, 12);
    unsigned step = kvt_scaled(3, 16);
    for (uint64_t at = rec_off(n - 1); at < rec_off(n); at += step) {
        char *dir = tl_copy(base), what[64];
        snprintf(what, sizeof what, "WAL cut at %llu", (unsigned long long)at);
        tl_rewrite_wal(dir, at, NULL, 0);
        tl_expect_prefix(dir, n - 1, n, what);
    }
    for (unsigned t = 0; t < kvt_scaled(12, 4); t++) {
        unsigned keep = (unsigned)kvt_rng_range(&rng, n / 2, n - 1);
        uint64_t at = rec_off(keep) + kvt_rng_below(&rng, TL_REC);
        char *dir = tl_copy(base), what[64];
        snprintf(what, sizeof what, "WAL cut at %llu", (unsigned long long)at);
        tl_rewrite_wal(dir, at, NULL, 0);
        tl_expect_prefix(dir, keep, n, what);
    }
}

/* Garbage after the last record: zeros, random bytes, a half-written record, and a
 * whole stale copy of an earlier fenced record (valid CRC, but its sequence number
 * does not continue the file's): torn tails, cut at open. */
static void test_garbage_tails_open(void)
{
    unsigned n = kvt_scaled(300, 100);
    char *base = kvt_dir_new("tailjunk");
    tl_build(base, KV_SYNC_ALWAYS, n, 0);
    size_t len;
    uint8_t *wal = kvt_slurp(kvt_path(base, "000001.wal"), &len);
    uint8_t junk[3 * TL_REC];
    kvt_rng rng;
    kvt_rng_seed(&rng, 7);
    for (int kind = 0; kind < 4; kind++) {
        char *dir = tl_copy(base);
        size_t jn = sizeof junk;
        const char *what = "zeros";
        memset(junk, 0, sizeof junk);
        if (kind == 1) {
            kvt_rng_fill(&rng, junk, sizeof junk);
            what = "random bytes";
        } else if (kind == 2) {
            memcpy(junk, wal + rec_off(n - 1), TL_REC / 2);
            jn = TL_REC / 2;
            what = "half a record";
        } else if (kind == 3) {
            memset(junk, 0, TL_REC); /* a zeroed record, then a stale fenced record */
            memcpy(junk + TL_REC, wal + rec_off(n / 2), TL_REC);
            jn = 2 * TL_REC;
            what = "a stale fenced record after a hole";
        }
        tl_rewrite_wal(dir, rec_off(n), junk, jn);
        tl_expect_prefix(dir, n, n, what);
    }
    free(wal);
}

/* KV_SYNC_NONE, the process killed: a power failure may then lose any page of the
 * unsynced WAL and keep later ones. A 4 KiB hole with whole records after it that
 * were never synced (no fence follows) is a torn tail: open cuts at the hole, and
 * kvcheck agrees. */
static void test_unsynced_hole_is_torn(void)
{
    unsigned n = 600;
    char *base = kvt_dir_new("tailhole");
    tl_build(base, KV_SYNC_NONE, n, 0);
    char *dir = tl_copy(base), out[4096];
    size_t len;
    uint8_t *wal = kvt_slurp(kvt_path(dir, "000001.wal"), &len);
    memset(wal + 8192, 0, 4096);
    kvt_spill(kvt_path(dir, "000001.wal"), wal, len);
    free(wal);
    unsigned first_lost = (unsigned)((8192 - KV_FILE_HDR_SIZE) / TL_REC);
    int st = tl_kvcheck(dir, out, sizeof out);
    KVT_CHECK(st == 1 && strstr(out, "torn tail") != NULL && strstr(out, "recovery cuts") != NULL,
              "kvcheck exited %d and did not call the hole a torn tail: %s", st, out);
    tl_expect_prefix(dir, first_lost, n, "a hole in the unsynced WAL");
}

/* =================================================================================
 * 3. Registration
 * ============================================================================== */
static const kvt_test tail_tests[] = {
    { "a flipped bit before fenced WAL records is refused, nothing changed, kvcheck reports it",
      test_flip_before_fences_refused },
    { "KV_SYNC_INTERVAL: damage before a completed sync is refused",
      test_interval_flip_before_sync_refused },
    { "a WAL cut at any byte of its last records opens, keeping every whole record",
      test_cut_anywhere_opens },
    { "garbage after the last record (zeros, random, half a record, a stale fence) is cut",
      test_garbage_tails_open },
    { "KV_SYNC_NONE: a hole with unsynced records after it is a torn tail",
      test_unsynced_hole_is_torn },
    { NULL, NULL },
};

void kvt_register_tail(void)
{
    kvt_add_suite("tail", tail_tests);
}
