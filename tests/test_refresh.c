/*
 * test_refresh.c — kv_refresh, seen from one process that holds the writer and a
 * read-only handle of the same store (the reader processes beside a writer process
 * are tests/test_readers.c's):
 *   - a model: after every refresh the reader holds exactly the writer's state,
 *     through rolls, compactions, deleted hints, batches, both read paths, LZ4;
 *   - threads reading the reader while it refreshes never see part of a batch or a
 *     key going back;
 *   - the WAL tail: records after the end that do not continue the sequence (a
 *     recycled file's old bytes, a jump) are not taken, however good their CRC; a
 *     torn tail a restarted writer cuts was never used;
 *   - files the writer retired are closed by the next refresh (kv_stat pinned_*,
 *     /proc/self/fd);
 *   - the API's edges.
 */
#include "kvtest.h"

#include "format/entry.h"
#include "format/format.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the model --------------------------------------------------------------------- */

#define NKEYS 400

typedef struct model {
    uint64_t ver[NKEYS]; /* 0: absent */
    uint64_t v;          /* last version written */
} model;

static void key_of(unsigned k, char *buf, size_t n) { snprintf(buf, n, "key-%05u", k); }

/* A value that names its key and version, with a compressible run when long. */
static size_t value_of(unsigned k, uint64_t v, char *buf, size_t n)
{
    int len = snprintf(buf, n, "v%u-%llu", k, (unsigned long long)v);
    size_t want = 8 + (size_t)(kvt_mix64(v) % 120);
    while ((size_t)len < want && (size_t)len < n - 1) {
        buf[len] = (char)('a' + len % 3);
        len++;
    }
    return (size_t)len;
}

/* One round of random writes on w, mirrored in m. */
static void write_round(kv_db *w, model *m, kvt_rng *r, unsigned n)
{
    char key[32], val[160];
    for (unsigned i = 0; i < n; i++) {
        unsigned k = (unsigned)kvt_rng_below(r, NKEYS), op = (unsigned)kvt_rng_below(r, 10);
        key_of(k, key, sizeof key);
        if (op < 6) {
            size_t vl = value_of(k, ++m->v, val, sizeof val);
            KVT_RC_FATAL(kv_put(w, key, strlen(key), val, vl), KV_OK);
            m->ver[k] = m->v;
        } else if (op < 8) {
            int rc = kv_delete(w, key, strlen(key));
            KVT_CHECK_FATAL(rc == KV_OK || rc == KV_NOTFOUND, "delete: %d %s", rc, kv_errmsg());
            m->ver[k] = 0;
        } else {
            kv_batch *b = kv_batch_new();
            KVT_CHECK_FATAL(b != NULL, "kv_batch_new");
            for (int j = 0; j < 4; j++) {
                unsigned bk = (unsigned)kvt_rng_below(r, NKEYS);
                key_of(bk, key, sizeof key);
                if (j == 3 && kvt_rng_chance(r, 50)) {
                    KVT_RC_FATAL(kv_batch_delete(b, key, strlen(key)), KV_OK);
                    m->ver[bk] = 0;
                } else {
                    size_t vl = value_of(bk, ++m->v, val, sizeof val);
                    KVT_RC_FATAL(kv_batch_put(b, key, strlen(key), val, vl), KV_OK);
                    m->ver[bk] = m->v;
                }
            }
            KVT_RC_FATAL(kv_write(w, b), KV_OK);
            kv_batch_free(b);
        }
    }
}

/* The reader must hold exactly the model. */
static void check_model(kv_db *rd, const model *m, const char *what, unsigned round)
{
    char key[32], val[160], why[256];
    for (unsigned k = 0; k < NKEYS; k++) {
        key_of(k, key, sizeof key);
        size_t vl = m->ver[k] ? value_of(k, m->ver[k], val, sizeof val) : 0;
        int bad = kvt_value_cmp(rd, key, strlen(key), m->ver[k] ? val : NULL, vl, why, sizeof why);
        KVT_CHECK_FATAL(!bad, "%s, round %u, %s: %s", what, round, key, why);
    }
}

/* Removes one hint file of dir at random (the reader must scan its segment). */
static void drop_a_hint(const char *dir, kvt_rng *r)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char names[64][256];
    unsigned n = 0;
    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL && n < 64)
        if (strstr(de->d_name, ".hint") != NULL && strstr(de->d_name, ".tmp") == NULL)
            snprintf(names[n++], sizeof names[0], "%.200s", de->d_name);
    closedir(d);
    if (n > 0) {
        char path[4096];
        snprintf(path, sizeof path, "%.3000s/%.200s", dir, names[kvt_rng_below(r, n)]);
        unlink(path);
    }
}

static void run_model(const char *tag, int sync, int mmap, int lz4, uint64_t seed)
{
    char *dir = kvt_dir_new(tag);
    kv_options o;
    kv_db *w, *rd;
    model m;
    kvt_rng r;
    memset(&m, 0, sizeof m);
    kvt_rng_seed(&r, seed);
    kvt_options(&o, sync, KV_IO_AUTO, 8192);
    o.compact_dead_ratio = 0.3;
    o.auto_compact = seed == 1; /* else only kv_compact: no file retired behind our back */
    o.mmap_reads = mmap;
    o.compression = lz4 ? KV_COMPRESS_LZ4 : KV_COMPRESS_NONE;
    o.compress_min_bytes = 16;
    KVT_RC_FATAL(kvt_open(dir, &o, &w), KV_OK);
    write_round(w, &m, &r, 50);
    o.read_only = 1;
    KVT_RC_FATAL(kvt_open(dir, &o, &rd), KV_OK);
    check_model(rd, &m, tag, 0);
    unsigned rounds = kvt_scaled(300, 80);
    for (unsigned round = 1; round <= rounds; round++) {
        write_round(w, &m, &r, (unsigned)kvt_rng_below(&r, 150));
        if (kvt_rng_chance(&r, 12))
            KVT_RC_FATAL(kv_compact(w), KV_OK);
        if (kvt_rng_chance(&r, 10))
            drop_a_hint(dir, &r);
        if (kvt_rng_chance(&r, 30))
            continue; /* the reader falls behind by several rolls */
        KVT_RC_FATAL(kv_refresh(rd), KV_OK);
        check_model(rd, &m, tag, round);
        kv_stats st;
        KVT_RC_FATAL(kv_stat(rd, &st), KV_OK);
        KVT_CHECK_FATAL(o.auto_compact || st.pinned_files == 0, "%s round %u: %llu files pinned right after a "
                        "refresh", tag, round, (unsigned long long)st.pinned_files);
    }
    kv_stats sw, sr;
    KVT_RC_FATAL(kv_stat(w, &sw), KV_OK);
    KVT_RC_FATAL(kv_refresh(rd), KV_OK);
    KVT_RC_FATAL(kv_stat(rd, &sr), KV_OK);
    KVT_CHECK(sw.compactions > 0, "%s: the writer never compacted", tag);
    KVT_CHECK(sr.reader_seq == sw.next_seq - 1, "%s: reader_seq %llu, writer's next_seq %llu",
              tag, (unsigned long long)sr.reader_seq, (unsigned long long)sw.next_seq);
    KVT_CHECK(sr.keys == sw.keys, "%s: reader has %llu keys, writer %llu", tag,
              (unsigned long long)sr.keys, (unsigned long long)sw.keys);
    kvt_close(rd);
    kvt_close(w);
}

static void test_model_mmap(void) { run_model("refresh-mmap", KV_SYNC_NONE, 1, 0, 1); }
static void test_model_pread(void) { run_model("refresh-pread", KV_SYNC_ALWAYS, 0, 0, 2); }
static void test_model_lz4(void) { run_model("refresh-lz4", KV_SYNC_INTERVAL, 1, 1, 3); }

/* ---- threads reading while the handle refreshes ------------------------------------ */

#define GROUP 8

typedef struct rd_thread {
    kv_db *rd;
    _Atomic int *stop;
    unsigned id;
    char fail[256];
    uint64_t reads;
} rd_thread;

static uint64_t group_version(kv_db *rd, unsigned g, char *fail, size_t n)
{
    char key[32];
    void *v;
    size_t vl;
    snprintf(key, sizeof key, "group-%u", g);
    int rc = kv_get(rd, key, strlen(key), &v, &vl);
    if (rc == KV_NOTFOUND)
        return 0;
    if (rc != KV_OK) {
        snprintf(fail, n, "get %s: %s", key, kv_errmsg());
        return UINT64_MAX;
    }
    unsigned long long ver = 0;
    char text[64];
    snprintf(text, sizeof text, "%.*s", (int)(vl < 63 ? vl : 63), (char *)v);
    kv_free(v);
    if (sscanf(text, "g%*u-%llu", &ver) != 1) {
        snprintf(fail, n, "%s holds \"%s\"", key, text);
        return UINT64_MAX;
    }
    return ver;
}

/* Reads the group's keys, forwards then backwards: in any state a refresh exposes
 * they have one version, and states only move forward, so each key read must have
 * a version at least that of the key read before it. */
static void *reader_main(void *arg)
{
    rd_thread *t = arg;
    uint64_t seen[GROUP] = {0};
    for (unsigned round = 0; !atomic_load(t->stop) && t->fail[0] == '\0'; round++) {
        uint64_t prev = 0;
        for (unsigned i = 0; i < GROUP && t->fail[0] == '\0'; i++) {
            unsigned g = round % 2 ? GROUP - 1 - i : i;
            uint64_t v = group_version(t->rd, g, t->fail, sizeof t->fail);
            if (v == UINT64_MAX)
                break;
            if (v < prev)
                snprintf(t->fail, sizeof t->fail, "group-%u at version %llu after a key at %llu: "
                         "part of a batch was seen", g, (unsigned long long)v,
                         (unsigned long long)prev);
            else if (v < seen[g])
                snprintf(t->fail, sizeof t->fail, "group-%u went back from version %llu to %llu",
                         g, (unsigned long long)seen[g], (unsigned long long)v);
            prev = v;
            seen[g] = v;
            t->reads++;
        }
    }
    return NULL;
}

static void test_threads_during_refresh(void)
{
    char *dir = kvt_dir_new("refresh-threads");
    kv_options o;
    kv_db *w, *rd;
    kvt_rng r;
    kvt_rng_seed(&r, 7);
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 16384);
    o.compact_dead_ratio = 0.3;
    KVT_RC_FATAL(kvt_open(dir, &o, &w), KV_OK);
    o.read_only = 1;
    KVT_RC_FATAL(kvt_open(dir, &o, &rd), KV_OK);
    _Atomic int stop = 0;
    rd_thread t[2];
    pthread_t th[2];
    for (unsigned i = 0; i < 2; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].rd = rd;
        t[i].stop = &stop;
        t[i].id = i;
        KVT_CHECK_FATAL(pthread_create(&th[i], NULL, reader_main, &t[i]) == 0, "pthread_create");
    }
    unsigned rounds = kvt_scaled(1500, 300);
    char key[32], val[64], noise[200];
    memset(noise, 'n', sizeof noise);
    for (unsigned v = 1; v <= rounds; v++) {
        kv_batch *b = kv_batch_new();
        for (unsigned g = 0; g < GROUP; g++) {
            snprintf(key, sizeof key, "group-%u", g);
            int n = snprintf(val, sizeof val, "g%u-%u", g, v);
            kv_batch_put(b, key, strlen(key), val, (size_t)n);
        }
        KVT_RC_FATAL(kv_write(w, b), KV_OK);
        kv_batch_free(b);
        for (unsigned i = 0; i < 8; i++) { /* rolls come often */
            snprintf(key, sizeof key, "noise-%llu", (unsigned long long)kvt_rng_below(&r, 300));
            KVT_RC_FATAL(kv_put(w, key, strlen(key), noise, sizeof noise), KV_OK);
        }
        if (v % 97 == 0)
            KVT_RC_FATAL(kv_compact(w), KV_OK);
        if (kvt_rng_chance(&r, 40))
            KVT_RC_FATAL(kv_refresh(rd), KV_OK);
    }
    atomic_store(&stop, 1);
    for (unsigned i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        KVT_CHECK(t[i].fail[0] == '\0', "reader thread %u: %s", i, t[i].fail);
        KVT_CHECK(t[i].reads > 0, "reader thread %u read nothing", i);
    }
    KVT_RC_FATAL(kv_refresh(rd), KV_OK);
    char fail[256] = "";
    for (unsigned g = 0; g < GROUP; g++)
        KVT_CHECK(group_version(rd, g, fail, sizeof fail) == rounds, "group-%u not at the last "
                  "version after the last refresh %s", g, fail);
    kvt_close(rd);
    kvt_close(w);
}

/* ---- the WAL tail ------------------------------------------------------------------ */

static char *wal_path(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char *p = NULL;
    while (d != NULL && (de = readdir(d)) != NULL)
        if (strstr(de->d_name, ".wal") != NULL)
            p = kvt_path(dir, de->d_name);
    if (d != NULL)
        closedir(d);
    KVT_CHECK_FATAL(p != NULL, "%s holds no WAL file", dir);
    return p;
}

static void append_file(const char *path, const void *buf, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    KVT_CHECK_FATAL(fd >= 0, "open %s: %s", path, strerror(errno));
    KVT_CHECK_FATAL(write(fd, buf, n) == (ssize_t)n, "append to %s", path);
    close(fd);
}

static void put_str(kv_db *db, const char *k, const char *v)
{
    KVT_RC_FATAL(kv_put(db, k, strlen(k), v, strlen(v)), KV_OK);
}

/* Records after the WAL file's end that do not continue its sequence are not taken,
 * though their CRCs are good: copies of older records (what a recycled WAL file holds
 * past its valid end) and a record that jumps ahead. */
static void test_tail_sequence(void)
{
    char *dir = kvt_dir_new("refresh-seq");
    kv_db *w, *rd;
    kv_options o;
    kvt_options(&o, KV_SYNC_ALWAYS, KV_IO_AUTO, 0);
    KVT_RC_FATAL(kvt_open(dir, &o, &w), KV_OK);
    put_str(w, "a", "a1"); /* seq 1 */
    put_str(w, "b", "b1"); /* seq 2 */
    put_str(w, "a", "a2"); /* seq 3 */
    KVT_RC_FATAL(kvt_close(w), KV_OK);
    o.read_only = 1;
    KVT_RC_FATAL(kvt_open(dir, &o, &rd), KV_OK);
    KVT_ASSERT_VALUE(rd, "a", 1, "a2", 2);
    /* an older record of a (seq 1) and a record of a new key, seq 9 instead of 4 */
    uint8_t rec[256];
    size_t n1 = entry_encode(rec, KV_REC_PUT, 0, "a", 1, "a1", 2);
    entry_seal(rec, n1, 1);
    size_t n2 = entry_encode(rec + n1, KV_REC_PUT, 0, "c", 1, "c9", 2);
    entry_seal(rec + n1, n2, 9);
    char *wal = wal_path(dir);
    append_file(wal, rec + n1, n2);
    KVT_RC_FATAL(kv_refresh(rd), KV_OK);
    KVT_ASSERT_ABSENT(rd, "c", 1);
    kv_stats st;
    KVT_RC_FATAL(kv_stat(rd, &st), KV_OK);
    KVT_CHECK(st.reader_seq == 3, "reader_seq %llu after a jump, want 3",
              (unsigned long long)st.reader_seq);
    /* a fresh store whose WAL then holds a stale copy right after its end */
    char *dir2 = kvt_dir_new("refresh-stale");
    kv_db *w2, *rd2;
    kv_options o2;
    kvt_options(&o2, KV_SYNC_ALWAYS, KV_IO_AUTO, 0);
    KVT_RC_FATAL(kvt_open(dir2, &o2, &w2), KV_OK);
    put_str(w2, "a", "a1");
    put_str(w2, "a", "a2");
    KVT_RC_FATAL(kvt_close(w2), KV_OK);
    o2.read_only = 1;
    KVT_RC_FATAL(kvt_open(dir2, &o2, &rd2), KV_OK);
    append_file(wal_path(dir2), rec, n1);
    KVT_RC_FATAL(kv_refresh(rd2), KV_OK);
    KVT_ASSERT_VALUE(rd2, "a", 1, "a2", 2);
    /* the real next record (seq 3) after the stale one is not reached either: the
     * reader stops at the first record that does not continue, and stays there */
    KVT_RC_FATAL(kv_stat(rd2, &st), KV_OK);
    KVT_CHECK(st.reader_seq == 2, "reader_seq %llu, want 2", (unsigned long long)st.reader_seq);
    kvt_close(rd2);
    kvt_close(rd);
}

/* A writer killed mid-group leaves a torn tail; the reader stops before it, the
 * restarted writer cuts it and writes on, and the reader follows. */
static void test_tail_torn_then_cut(void)
{
    char *dir = kvt_dir_new("refresh-torn");
    kv_options o;
    kv_db *w, *rd;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 0);
    pid_t pid = fork();
    KVT_CHECK_FATAL(pid >= 0, "fork");
    if (pid == 0) { /* a writer that dies without closing */
        kv_db *cw;
        if (kv_open(dir, &o, &cw) != KV_OK)
            _exit(1);
        for (int i = 0; i < 100; i++) {
            char k[16], v[16];
            snprintf(k, sizeof k, "k%d", i);
            snprintf(v, sizeof v, "v%d", i);
            if (kv_put(cw, k, strlen(k), v, strlen(v)) != KV_OK)
                _exit(2);
        }
        _exit(0);
    }
    int status = 0;
    pid_t got;
    while ((got = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
    }
    KVT_CHECK_FATAL(got == pid, "waitpid: %s", strerror(errno));
    KVT_CHECK_FATAL(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child writer: %d", status);
    /* the start of one more record: a torn tail */
    uint8_t rec[64];
    size_t n = entry_encode(rec, KV_REC_PUT, 0, "torn", 4, "xxxxxxxx", 8);
    entry_seal(rec, n, 101);
    char *wal = wal_path(dir);
    append_file(wal, rec, n - 3);
    o.read_only = 1;
    KVT_RC_FATAL(kvt_open(dir, &o, &rd), KV_OK);
    KVT_ASSERT_VALUE(rd, "k99", 3, "v99", 3);
    KVT_ASSERT_ABSENT(rd, "torn", 4);
    append_file(wal, "\0\0\0", 3); /* still not a record: its CRC fails */
    KVT_RC_FATAL(kv_refresh(rd), KV_OK);
    KVT_ASSERT_ABSENT(rd, "torn", 4);
    o.read_only = 0;
    KVT_RC_FATAL(kvt_open(dir, &o, &w), KV_OK); /* cuts the tail */
    put_str(w, "after", "cut");
    KVT_RC_FATAL(kv_refresh(rd), KV_OK);
    KVT_ASSERT_VALUE(rd, "after", 5, "cut", 3);
    KVT_ASSERT_VALUE(rd, "k0", 2, "v0", 2);
    KVT_ASSERT_ABSENT(rd, "torn", 4);
    kvt_close(w);
    kvt_close(rd);
}

/* ---- files the writer retired ------------------------------------------------------ */

/* Descriptors and mappings of this process on deleted files under dir. */
static unsigned deleted_under(const char *dir)
{
    char real[4096], link[4096], path[320];
    unsigned n = 0;
    KVT_CHECK_FATAL(realpath(dir, real) != NULL, "realpath %s", dir);
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        snprintf(path, sizeof path, "/proc/self/fd/%.256s", de->d_name);
        ssize_t l = readlink(path, link, sizeof link - 1);
        if (l <= 0)
            continue;
        link[l] = '\0';
        if (strncmp(link, real, strlen(real)) == 0 && strstr(link, "(deleted)") != NULL)
            n++;
    }
    if (d != NULL)
        closedir(d);
    FILE *f = fopen("/proc/self/maps", "r");
    char line[8192];
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strstr(line, real) != NULL && strstr(line, "(deleted)") != NULL)
            n++;
    if (f != NULL)
        fclose(f);
    return n;
}

static void test_retired_files_closed(void)
{
    char *dir = kvt_dir_new("refresh-pins");
    kv_options o;
    kv_db *w, *rd;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 8192);
    o.auto_compact = 0;
    KVT_RC_FATAL(kvt_open(dir, &o, &w), KV_OK);
    char val[100];
    memset(val, 'x', sizeof val);
    for (int i = 0; i < 600; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i % 50);
        KVT_RC_FATAL(kv_put(w, k, strlen(k), val, sizeof val), KV_OK);
    }
    o.read_only = 1;
    KVT_RC_FATAL(kvt_open(dir, &o, &rd), KV_OK);
    KVT_RC_FATAL(kv_compact(w), KV_OK); /* retires most segments and the WAL file */
    kv_stats st;
    KVT_RC_FATAL(kv_stat(rd, &st), KV_OK);
    KVT_CHECK(st.pinned_files > 0 && st.pinned_bytes > 0, "pinned %llu files, %llu bytes "
              "before the refresh", (unsigned long long)st.pinned_files,
              (unsigned long long)st.pinned_bytes);
    KVT_CHECK(deleted_under(dir) > 0, "no deleted file held before the refresh");
    KVT_RC_FATAL(kv_refresh(rd), KV_OK);
    KVT_RC_FATAL(kv_stat(rd, &st), KV_OK);
    KVT_CHECK(st.pinned_files == 0 && st.pinned_bytes == 0, "pinned %llu files, %llu bytes "
              "after the refresh", (unsigned long long)st.pinned_files,
              (unsigned long long)st.pinned_bytes);
    KVT_CHECK(deleted_under(dir) == 0, "%u deleted files still open or mapped after the refresh",
              deleted_under(dir));
    KVT_CHECK(st.refreshes == 1, "refreshes %llu", (unsigned long long)st.refreshes);
    KVT_CHECK(st.refresh_last_time > 0, "refresh_last_time not set");
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        KVT_ASSERT_VALUE(rd, k, strlen(k), val, sizeof val);
    }
    kvt_close(rd);
    kvt_close(w);
}

/* ---- the API ----------------------------------------------------------------------- */

static void test_api_edges(void)
{
    char *dir = kvt_dir_new("refresh-api");
    kv_options o;
    kv_db *w, *rd;
    KVT_RC(kv_refresh(NULL), KV_EINVAL);
    kvt_options(&o, KV_SYNC_ALWAYS, KV_IO_AUTO, 0);
    KVT_RC_FATAL(kvt_open(dir, &o, &w), KV_OK);
    KVT_RC(kv_refresh(w), KV_OK);
    put_str(w, "k", "v1");
    o.read_only = 1;
    KVT_RC_FATAL(kvt_open(dir, &o, &rd), KV_OK);
    KVT_RC(kv_put(rd, "k", 1, "x", 1), KV_EREADONLY);
    KVT_RC(kv_delete(rd, "k", 1), KV_EREADONLY);
    KVT_RC(kv_sync(rd), KV_EREADONLY);
    KVT_RC(kv_compact(rd), KV_EREADONLY);
    kv_stats st;
    KVT_RC_FATAL(kv_refresh(rd), KV_OK); /* nothing new */
    KVT_RC_FATAL(kv_stat(rd, &st), KV_OK);
    KVT_CHECK(st.reader_lag == 0 && st.reader_seq == 1, "lag %llu seq %llu",
              (unsigned long long)st.reader_lag, (unsigned long long)st.reader_seq);
    for (int i = 0; i < 10; i++)
        put_str(w, "k", "v2");
    KVT_RC_FATAL(kv_refresh(rd), KV_OK);
    KVT_RC_FATAL(kv_stat(rd, &st), KV_OK);
    KVT_CHECK(st.reader_lag == 10 && st.reader_seq == 11 && st.refreshes == 2,
              "lag %llu seq %llu refreshes %llu", (unsigned long long)st.reader_lag,
              (unsigned long long)st.reader_seq, (unsigned long long)st.refreshes);
    KVT_ASSERT_VALUE(rd, "k", 1, "v2", 2);
    kvt_close(rd);
    kvt_close(w);
}

void kvt_register_refresh(void)
{
    static const kvt_test tests[] = {
        {"model: mmap reads, rolls, compactions, lost hints", test_model_mmap},
        {"model: pread reads, KV_SYNC_ALWAYS", test_model_pread},
        {"model: LZ4 values, KV_SYNC_INTERVAL", test_model_lz4},
        {"threads reading during refreshes: whole batches, never back", test_threads_during_refresh},
        {"WAL tail: records that do not continue the sequence are not taken", test_tail_sequence},
        {"WAL tail: torn, then cut by a restarted writer", test_tail_torn_then_cut},
        {"retired files are closed by the next refresh", test_retired_files_closed},
        {"kv_refresh: NULL, writer handle, writes refused, stats", test_api_edges},
        {NULL, NULL}};
    kvt_add_suite("refresh", tests);
}
