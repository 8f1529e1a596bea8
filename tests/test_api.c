/*
 * test_api.c — the "api" suite: the documented semantics of every public function
 * in kv.h, one behaviour per test.
 *
 * Sections:
 *   1. Single-key operations: put/get/overwrite/delete, empty values, binary keys,
 *      size limits
 *   2. Bad arguments: NULL pointers, bad options, paths that are not stores
 *   3. Locking and read-only handles
 *   4. Status texts and the per-thread error message
 *   5. Batches
 *   6. Iteration (kv_foreach)
 *   7. Statistics
 *   8. Persistence: each sync mode, segment rolling, both io backends
 */
#include "kvtest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Opens a fresh store (tracked by the fixture); *dirp receives its directory. */
static kv_db *open_fresh(const char *tag, int sync, int io, uint64_t seg, char **dirp)
{
    char *dir = kvt_dir_new(tag);
    kv_db *db = NULL;
    int rc = kvt_open_mode(dir, sync, io, seg, &db);
    KVT_CHECK_FATAL(rc == KV_OK && db != NULL,
                    "kv_open(%s) of a fresh store: %d (%s): %s", dir, rc, kv_strerror(rc),
                    kv_errmsg());
    if (dirp != NULL)
        *dirp = dir;
    return db;
}

/* Closes db and opens dir again with the given mode. */
static kv_db *reopen(kv_db *db, const char *dir, int sync, int io, uint64_t seg)
{
    kv_db *again = NULL;
    int rc;
    KVT_RC(kvt_close(db), KV_OK);
    rc = kvt_open_mode(dir, sync, io, seg, &again);
    KVT_CHECK_FATAL(rc == KV_OK && again != NULL, "reopening %s: %d (%s): %s", dir, rc,
                    kv_strerror(rc), kv_errmsg());
    return again;
}

static kv_stats stat_of(kv_db *db)
{
    kv_stats st;
    memset(&st, 0xa5, sizeof st);
    KVT_RC_FATAL(kv_stat(db, &st), KV_OK);
    return st;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    KVT_CHECK_FATAL(f != NULL, "cannot create %s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

static char *read_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    size_t n;
    if (f == NULL)
        return NULL;
    n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* 1 if text contains the decimal number n not adjacent to other digits. */
static int contains_number(const char *text, long n)
{
    char num[32];
    size_t len = (size_t)snprintf(num, sizeof num, "%ld", n);
    for (const char *p = strstr(text, num); p != NULL; p = strstr(p + 1, num)) {
        int before = p > text && p[-1] >= '0' && p[-1] <= '9';
        int after = p[len] >= '0' && p[len] <= '9';
        if (!before && !after)
            return 1;
    }
    return 0;
}

/* The names in dir, space-separated, for messages. */
static const char *dir_names(const char *dir, char *buf, size_t n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t o = 0;
    buf[0] = '\0';
    if (d == NULL)
        return buf;
    while ((e = readdir(d)) != NULL && o + 2 < n) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int w = snprintf(buf + o, n - o, "%s%s", o ? " " : "", e->d_name);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    closedir(d);
    return buf;
}

/* =================================================================================
 * 1. Single-key operations
 * ============================================================================== */

static void test_put_then_get_returns_value(void)
{
    kv_db *db = open_fresh("api", KV_SYNC_NONE, KV_IO_AUTO, 0, NULL);
    KVT_RC(kvt_put_str(db, "alpha", "one"), KV_OK);
    KVT_RC(kvt_put_str(db, "beta", "two"), KV_OK);
    KVT_ASSERT_VALUE(db, "alpha", 5, "one", 3);
    KVT_ASSERT_VALUE(db, "beta", 4, "two", 3);
    KVT_ASSERT_ABSENT(db, "gamma", 5);
    KVT_ASSERT_ABSENT(db, "alph", 4);   /* a prefix is another key */
    KVT_ASSERT_ABSENT(db, "alphaa", 6); /* so is an extension */
}

static void test_get_returns_private_copy(void)
{
    kv_db *db = open_fresh("api", KV_SYNC_NONE, KV_IO_AUTO, 0, NULL);
    void *v = NULL;
    size_t vl = 0;
    KVT_RC(kvt_put_str(db, "k", "value"), KV_OK);
    KVT_RC_FATAL(kv_get(db, "k", 1, &v, &vl), KV_OK);
    KVT_CHECK_FATAL(v != NULL && vl == 5, "kv_get: v=%p vl=%zu", v, vl);
    memset(v, 'X', vl); /* scribbling on the copy must not reach the store */
    kv_free(v);
    KVT_ASSERT_VALUE(db, "k", 1, "value", 5);
}

static void test_overwrite_returns_newest(void)
{
    char *dir;
    kv_db *db = open_fresh("api", KV_SYNC_NONE, KV_IO_AUTO, 0, &dir);
    KVT_RC(kvt_put_str(db, "k", "first"), KV_OK);
    KVT_RC(kvt_put_str(db, "k", "second, longer"), KV_OK);
    KVT_ASSERT_VALUE(db, "k", 1, "second, longer", 14);
    KVT_RC(kvt_put_str(db, "k", "3"), KV_OK);
    KVT_ASSERT_VALUE(db, "k", 1, "3", 1);
    db = reopen(db, dir, KV_SYNC_NONE, KV_IO_AUTO, 0);
    KVT_ASSERT_VALUE(db, "k", 1, "3", 1);
}

static void test_delete_then_notfound(void)
{
    char *dir;
    kv_db *db = open_fresh("api", KV_SYNC_NONE, KV_IO_AUTO, 0, &dir);
    kv_stats before, after;

    KVT_RC(kvt_put_str(db, "doomed", "v"), KV_OK);
    KVT_RC(kvt_put_str(db, "kept", "w"), KV_OK);
    KVT_RC(kv_delete(db, "doomed", 6), KV_OK);
    KVT_ASSERT_ABSENT(db, "doomed", 6);
    KVT_ASSERT_VALUE(db, "kept", 4, "w", 1);

    /* A second delete finds nothing and writes nothing. */
    before = stat_of(db);
    KVT_RC(kv_delete(db, "doomed", 6), KV_NOTFOUND);
    KVT_RC(kv_delete(db, "never-existed", 13), KV_NOTFOUND);
    after = stat_of(db);
    KVT_CHECK(after.next_seq == before.next_seq,
              "a KV_NOTFOUND delete wrote something: next_seq %llu -> %llu",
              (unsigned long long)before.next_seq, (unsigned long long)after.next_seq);

    /* The tombstone survives a reopen, and the key can be written again. */
    db = reopen(db, dir, KV_SYNC_NONE, KV_IO_AUTO, 0);
    KVT_ASSERT_ABSENT(db, "doomed", 6);
    KVT_RC(kv_delete(db, "doomed", 6), KV_NOTFOUND);
    KVT_RC(kvt_put_str(db, "doomed", "back"), KV_OK);
    KVT_ASSERT_VALUE(db, "doomed", 6, "back", 4);
    db = reopen(db, dir, KV_SYNC_NONE, KV_IO_AUTO, 0);
    KVT_ASSERT_VALUE(db, "doomed", 6, "back", 4);
}

static void check_empty_value(kv_db *db, const char *key)
{
    void *v = NULL;
    size_t vl = 99;
    int rc = kv_get(db, key, strlen(key), &v, &vl);
    KVT_CHECK(rc == KV_OK, "kv_get(\"%s\") of an empty value: %d (%s), expected KV_OK "
              "(an empty value is not a delete)", key, rc, kv_strerror(rc));
    KVT_CHECK(rc != KV_OK || v != NULL,
              "kv_get(\"%s\") of an empty value gave a NULL pointer", key);
    KVT_CHECK(rc != KV_OK || vl == 0, "kv_get(\"%s\") of an empty value: vlen %zu", key, vl);
    if (rc == KV_OK)
        kv_free(v);
}

static void test_empty_value_is_present(void)
{
    char *dir;
    kv_db *db = open_fresh("api", KV_SYNC_NONE, KV_IO_AUTO, 0, &dir);
    KVT_RC(kv_put(db, "empty", 5, "", 0), KV_OK);
    KVT_RC(kv_put(db, "null-empty", 10, NULL, 0), KV_OK); /* NULL val, vlen 0 is allowed */
    KVT_RC(kvt_put_str(db, "was-full", "full"), KV_OK);
    KVT_RC(kv_put(db, "was-full", 8, "", 0), KV_OK);
    check_empty_value(db, "empty");
    check_empty_value(db, "null-empty");
    check_empty_value(db, "was-full");
    db = reopen(db, dir, KV_SYNC_NONE, KV_IO_AUTO, 0);
    check_empty_value(db, "empty");
    check_empty_value(db, "null-empty");
    check_empty_value(db, "was-full");
    KVT_RC(kv_delete(db, "empty", 5), KV_OK);
    KVT_ASSERT_ABSENT(db, "empty", 5);
}

static void test_keys_with_nul_bytes_are_distinct(void)
{
    static const char k1[] = { 'a', '\0', 'b' };
    static const char k2[] = { 'a', '\0', 'c' };
    static const char k3[] = { 'a' };
    static const char k4[] = { '\0' };
    static const char k5[] = { '\0', '\0' };
    static const unsigned char k6[] = { 0xff, 0x00, 0x80, 0x00 };
    char *dir;
    kv_db *db = open_fresh("api", KV_SYNC_NONE, KV_IO_AUTO, 0, &dir);

    KVT_RC(kv_put(db, k1, sizeof k1, "v1", 2), KV_OK);
    KVT_RC(kv_put(db, k2, sizeof k2, "v2", 2), KV_OK);
    KVT_RC(kv_put(db, k3, sizeof k3, "v3", 2), KV_OK);
    KVT_RC(kv_put(db, k4, sizeof k4, "v4", 2), KV_OK);
    KVT_RC(kv_put(db, k5, sizeof k5, "v5", 2), KV_OK);
    KVT_RC(kv_put(db, k6, sizeof k6, "v6", 2), KV_OK);
    for (int pass = 0; pass < 2; pass++) {
        KVT_ASSERT_VALUE(db, k1, sizeof k1, "v1", 2);
        KVT_ASSERT_VALUE(db, k2, sizeof k2, "v2", 2);
        KVT_ASSERT_VALUE(db, k3, sizeof k3, "v3", 2);
        KVT_ASSERT_VALUE(db, k4, sizeof k4, "v4", 2);
        KVT_ASSERT_VALUE(db, k5, sizeof k5, "v5", 2);
        KVT_ASSERT_VALUE(db, k6, sizeof k6, "v6", 2);
        if (pass == 0)
            db = reopen(db, dir, KV_SYNC_NONE, KV_IO_AUTO, 0);
    }
    KVT_RC(kv_delete(db, k1, sizeof k1), KV_OK);
    KVT_ASSERT_ABSENT(db, k1, sizeof k1);
    KVT_ASSERT_VALUE(db, k2, sizeof k2, "v2", 2);
    KVT_ASSERT_VALUE(db, k3, sizeof k3, "v3", 2);
}

static void test_key_length_limits(void)
{
    char *dir;
    kv_db *db = open_fresh("api", KV_SYNC_NONE, KV_IO_AUTO, 0, &dir);
    size_t n = (size_t)KV_MAX_KEY + 1;
    unsigned char *key = malloc(n);
    kv_batch *b = kv_batch_new();
    void *v = NULL;
    size_t vl = 0;

    KVT_CHECK_FATAL(key != NULL && b != NULL, "out of memory");
    for (size_t i = 0; i < n; i++)
        key[i] = (unsigned char)(i * 7 + 3);

    /* Exactly KV_MAX_KEY bytes: accepted, stored, found again after a reopen. */
    KVT_RC(kv_put(db, key, KV_MAX_KEY, "max", 3), KV_OK);
    KVT_ASSERT_VALUE(db, key, KV_MAX_KEY, "max", 3);
    /* A key one byte shorter is a different key. */
    KVT_ASSERT_ABSENT(db, key, KV_MAX_KEY - 1);

    /* One byte more, and zero bytes: KV_EINVAL everywhere a key is taken. */
    KVT_RC(kv_put(db, key, n, "x", 1), KV_EINVAL);
    KVT_RC(kv_get(db, key, n, &v, &vl), KV_EINVAL);
    KVT_RC(kv_delete(db, key, n), KV_EINVAL);
    KVT_RC(kv_batch_put(b, key, n, "x", 1), KV_EINVAL);
    KVT_RC(kv_batch_delete(b, key, n), KV_EINVAL);
    KVT_RC(kv_put(db, key, 0, "x", 1), KV_EINVAL);
    KVT_RC(kv_get(db, key, 0, &v, &vl), KV_EINVAL);
    KVT_RC(kv_delete(db, key, 0), KV_EINVAL);
    KVT_RC(kv_batch_put(b, key, 0, "x", 1), KV_EINVAL);
    KVT_RC(kv_batch_delete(b, key, 0), KV_EINVAL);
    KVT_CHECK(kv_batch_count(b) == 0, "rejected operations were added to the batch: "
              "count %zu", kv_batch_count(b));

    /* A batch may carry a maximal key too. */
    KVT_RC(kv_batch_put(b, key + 1, KV_MAX_KEY, "batch", 5), KV_OK);
    KVT_RC(kv_write(db, b), KV_OK);

    db = reopen(db, dir, KV_SYNC_NONE, KV_IO_AUTO, 0);
    KVT_ASSERT_VALUE(db, key, KV_MAX_KEY, "max", 3);
    KVT_ASSERT_VALUE(db, key + 1, KV_MAX_KEY, "batch", 5);
    KVT_RC(kv_delete(db, key, KV_MAX_KEY), KV_OK);
    KVT_ASSERT_ABSENT(db, key, KV_MAX_KEY);
    kv_batch_free(b);
    free(key);
}

static void test_value_length_limits(void)
{
    char *dir;
    kv_db *db = open_fresh("api", KV_SYNC_NONE, KV_IO_AUTO, 0, &dir);
    size_t n = (size_t)KV_MAX_VALUE + 1;
    unsigned char *val = malloc(n);
    kv_batch *b = kv_batch_new();
    kvt_rng rng;

    KVT_CHECK_FATAL(val != NULL && b != NULL, "out of memory");
    kvt_rng_seed(&rng, 64);
    kvt_rng_fill(&rng, val, n);

    /* Exactly KV_MAX_VALUE: stored and read back byte for byte, before and after a
     * reopen (the value is larger than any sensible segment). */
    KVT_RC_FATAL(kv_put(db, "big", 3, val, KV_MAX_VALUE), KV_OK);
    KVT_RC(kvt_put_str(db, "after-big", "small"), KV_OK);
    KVT_ASSERT_VALUE(db, "big", 3, val, KV_MAX_VALUE);

    /* One byte more: KV_EINVAL, and the stored value is untouched. */
    KVT_RC(kv_put(db, "big", 3, val, n), KV_EINVAL);
    KVT_RC(kv_put(db, "other", 5, val, n), KV_EINVAL);
    KVT_RC(kv_batch_put(b, "other", 5, val, n), KV_EINVAL);
    KVT_CHECK(kv_batch_count(b) == 0, "a rejected put was added to the batch");
    KVT_ASSERT_ABSENT(db, "other", 5);

    db = reopen(db, dir, KV_SYNC_NONE, KV_IO_AUTO, 0);
    KVT_ASSERT_VALUE(db, "big", 3, val, KV_MAX_VALUE);
    KVT_ASSERT_VALUE(db, "after-big", 9, "small", 5);
    kv_batch_free(b);
    free(val);
}

/* =================================================================================
 * 2. Bad arguments
 * ============================================================================== */

#define CHECK_EINVAL_MSG(expr)                                                        \
    do {                                                                              \
        int rc_ = (expr);                                                             \
        KVT_CHECK(rc_ == KV_EINVAL, "%s returned %d (%s), expected KV_EINVAL", #expr, \
                  rc_, kv_strerror(rc_));                                             \
        KVT_CHECK(kv_errmsg() != NULL && kv_errmsg()[0] != '\0',                      \
                  "%s: kv_errmsg() is empty after KV_EINVAL", #expr);                 \
    } while (0)

static int count_cb(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
    (*(int *)arg)++;
    return 0;
}

static void test_null_arguments_give_einval(void)
{
    kv_db *db = open_fresh("api", KV_SYNC_NONE, KV_IO_AUTO, 0, NULL);
    kv_batch *b = kv_batch_new();
    void *v = NULL;
    size_t vl = 0;
    kv_stats st;
    int calls = 0;

    KVT_CHECK_FATAL(b != NULL, "kv_batch_new returned NULL");
    KVT_RC(kvt_put_str(db, "k", "v"), KV_OK);
    KVT_RC(kv_batch_put(b, "k", 1, "v", 1), KV_OK);

    CHECK_EINVAL_MSG(kv_put(NULL, "k", 1, "v", 1));
    CHECK_EINVAL_MSG(kv_put(db, NULL, 1, "v", 1));
    CHECK_EINVAL_MSG(kv_put(db, "k", 1, NULL, 1));
    CHECK_EINVAL_MSG(kv_get(NULL, "k", 1, &v, &vl));
    CHECK_EINVAL_MSG(kv_get(db, NULL, 1, &v, &vl));
    CHECK_EINVAL_MSG(kv_get(db, "k", 1, NULL, &vl));
    CHECK_EINVAL_MSG(kv_get(db, "k", 1, &v, NULL));
    CHECK_EINVAL_MSG(kv_delete(NULL, "k", 1));
    CHECK_EINVAL_MSG(kv_delete(db, NULL, 1));
    CHECK_EINVAL_MSG(kv_write(NULL, b));
    CHECK_EINVAL_MSG(kv_write(db, NULL));
    CHECK_EINVAL_MSG(kv_foreach(NULL, count_cb, &calls));
    CHECK_EINVAL_MSG(kv_foreach(db, NULL, &calls));
    CHECK_EINVAL_MSG(kv_stat(NULL, &st));
    CHECK_EINVAL_MSG(kv_stat(db, NULL));
    CHECK_EINVAL_MSG(kv_sync(NULL));
    CHECK_EINVAL_MSG(kv_batch_put(NULL, "k", 1, "v", 1));
    CHECK_EINVAL_MSG(kv_batch_put(b, NULL, 1, "v", 1));
    CHECK_EINVAL_MSG(kv_batch_put(b, "k", 1, NULL, 1));
    CHECK_EINVAL_MSG(kv_batch_delete(NULL, "k", 1));
    CHECK_EINVAL_MSG(kv_batch_delete(b, NULL, 1));

    /* None of the rejected calls changed anything. */
    KVT_CHECK(calls == 0, "kv_foreach with a NULL db called fn %d times", calls);
    KVT_CHECK(kv_batch_count(b) == 1, "rejected batch calls changed the batch: count %zu",
              kv_batch_count(b));
    KVT_ASSERT_VALUE(db, "k", 1, "v", 1);

    /* The NULL-accepting functions. */
    KVT_RC(kv_close(NULL), KV_OK);
    kv_free(NULL);
    kv_batch_clear(NULL);
    kv_batch_free(NULL);
    KVT_CHECK(kv_batch_count(NULL) == 0, "kv_batch_count(NULL) != 0");
    kv_batch_free(b);
}

static void test_open_null_arguments(void)
{
    char *dir = kvt_dir_new("api");
    kv_db *db = (kv_db *)&db; /* a sentinel kv_open must reset */
    kv_options o;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 0);

    CHECK_EINVAL_MSG(kv_open(NULL, &o, &db));
    KVT_CHECK(db == NULL, "kv_open(NULL dir) left *out set");
    CHECK_EINVAL_MSG(kv_open(dir, &o, NULL));
    KVT_CHECK(kvt_dir_count(dir) == 0, "kv_open(dir, opts, NULL) wrote %d files into %s",
              kvt_dir_count(dir), dir);
}

static void test_open_null_options_uses_defaults(void)
{
    char *dir = kvt_dir_new("api");
    kv_db *db = NULL;
    kv_options o;
    kv_stats st;

    /* The documented defaults. */
    kv_options_init(&o);
    KVT_CHECK(o.create == 1, "default create %d, documented 1", o.create);
    KVT_CHECK(o.read_only == 0, "default read_only %d, documented 0", o.read_only);
    KVT_CHECK(o.sync_interval_ms == 1000, "default sync_interval_ms %u, documented 1000",
              o.sync_interval_ms);
    KVT_CHECK(o.compression == KV_COMPRESS_NONE, "default compression %d", o.compression);
    KVT_CHECK(o.segment_bytes == 64u * 1024 * 1024, "default segment_bytes %llu, "
              "documented 64 MiB", (unsigned long long)o.segment_bytes);
    KVT_CHECK(o.auto_compact == 1, "default auto_compact %d, documented 1", o.auto_compact);
    KVT_CHECK(o.compact_dead_ratio > 0.49 && o.compact_dead_ratio < 0.51,
              "default compact_dead_ratio %g, documented 0.5", o.compact_dead_ratio);
    KVT_CHECK(o.sync == KV_SYNC_ALWAYS || o.sync == KV_SYNC_INTERVAL ||
              o.sync == KV_SYNC_NONE, "default sync %d is not a sync mode", o.sync);
    KVT_CHECK(o.io == KV_IO_AUTO || o.io == KV_IO_URING || o.io == KV_IO_PSYNC,
              "default io %d is not a backend", o.io);

    /* NULL options mean the defaults, which create. */
    KVT_RC_FATAL(kvt_open(dir, NULL, &db), KV_OK);
    KVT_RC(kvt_put_str(db, "k", "v"), KV_OK);
    KVT_RC(kv_stat(db, &st), KV_OK);
    KVT_CHECK(st.sync == o.sync, "NULL options: sync mode %d, default is %d", st.sync, o.sync);
    KVT_RC(kvt_close(db), KV_OK);
    KVT_RC_FATAL(kvt_open(dir, NULL, &db), KV_OK);
    KVT_ASSERT_VALUE(db, "k", 1, "v", 1);
}

static void test_open_regular_file_is_einval(void)
{
    char *dir = kvt_dir_new("api");
    char *file = kvt_path(dir, "plain.txt");
    char buf[64];
    kv_db *db = (kv_db *)&db;
    kv_options o;

    write_file(file, "not a store\n");
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 0);
    CHECK_EINVAL_MSG(kvt_open(file, &o, &db));
    KVT_CHECK(db == NULL, "kv_open on a regular file left *out set");
    KVT_CHECK(read_file(file, buf, sizeof buf) != NULL && strcmp(buf, "not a store\n") == 0,
              "kv_open changed the regular file %s", file);
    KVT_CHECK(kvt_dir_count(dir) == 1, "kv_open on %s created files beside it", file);
}

static void test_open_missing_dir_without_create_is_einval(void)
{
    char *dir = kvt_dir_new("api");
    char *missing = kvt_path(dir, "missing");
    char *deep = kvt_path(dir, "no/such/parent");
    char names[256];
    struct stat st;
    kv_db *db = (kv_db *)&db;
    kv_options o;
    int rc;

    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 0);
    o.create = 0;
    CHECK_EINVAL_MSG(kvt_open(missing, &o, &db));
    KVT_CHECK(db == NULL, "failed kv_open left *out set");
    KVT_CHECK(stat(missing, &st) != 0 && errno == ENOENT,
              "kv_open with create=0 made the directory %s", missing);

    /* An existing empty directory without a store is not a store either. */
    CHECK_EINVAL_MSG(kvt_open(dir, &o, &db));
    KVT_CHECK(kvt_dir_count(dir) == 0, "kv_open with create=0 on an empty directory that "
              "is no store left files in it: %s", dir_names(dir, names, sizeof names));

    /* create makes one level only. */
    o.create = 1;
    db = (kv_db *)&db;
    rc = kvt_open(deep, &o, &db);
    KVT_CHECK(rc != KV_OK && db == NULL, "kv_open(create) of %s (two missing levels) "
              "returned %d (%s), expected an error", deep, rc, kv_strerror(rc));
    if (rc == KV_OK)
        kvt_close(db);
    KVT_RC_FATAL(kvt_open(missing, &o, &db), KV_OK);
    KVT_CHECK(stat(missing, &st) == 0 && S_ISDIR(st.st_mode),
              "kv_open(create) did not make %s", missing);
    KVT_RC(kvt_put_str(db, "k", "v"), KV_OK);
}

static void test_open_foreign_directory_is_einval_and_untouched(void)
{
    char *dir = kvt_dir_new("api");
    char *file = kvt_path(dir, "notes.txt");
    char buf[64], names[256];
    kv_db *db = (kv_db *)&db;
    kv_options o;

    write_file(file, "precious\n");
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 0);
    CHECK_EINVAL_MSG(kvt_open(dir, &o, &db));
    KVT_CHECK(db == NULL, "failed kv_open left *out set");
    KVT_CHECK(read_file(file, buf, sizeof buf) != NULL && strcmp(buf, "precious\n") == 0,
              "kv_open changed the foreign file %s", file);
    KVT_CHECK(kvt_dir_count(dir) == 1,
              "kv_open on a foreign directory left files in it: %s (expected notes.txt only)",
              dir_names(dir, names, sizeof names));

    /* A read-only open must not write there either (whatever the writer left). */
    {
        int before = kvt_dir_count(dir);
        o.read_only = 1;
        o.create = 0;
        CHECK_EINVAL_MSG(kvt_open(dir, &o, &db));
        KVT_CHECK(kvt_dir_count(dir) == before, "read-only kv_open on a foreign directory "
                  "changed its entry count from %d to %d", before, kvt_dir_count(dir));
    }
}

static void test_open_create_keeps_existing_store(void)
{
    char *dir;
    kv_db *db = open_fresh("api", KV_SYNC_NONE, KV_IO_AUTO, 0, &dir);
    KVT_RC(kvt_put_str(db, "survivor", "yes"), KV_OK);
    db = reopen(db, dir, KV_SYNC_NONE, KV_IO_AUTO, 0); /* create=1 again */
    KVT_ASSERT_VALUE(db, "survivor", 8, "yes", 3);
}

static void test_lz4_compression_not_yet_einval(void)
{
    char *dir = kvt_dir_new("api");
    kv_db *db = (kv_db *)&db;
    kv_options o;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 0);
    o.compression = KV_COMPRESS_LZ4;
    CHECK_EINVAL_MSG(kvt_open(dir, &o, &db));
    KVT_CHECK(db == NULL, "failed kv_open left *out set");
    KVT_CHECK(kvt_dir_count(dir) == 0,
              "kv_open with KV_COMPRESS_LZ4 left %d files behind", kvt_dir_count(dir));
}

struct bad_option {
    const char *what; /* the option named in a failure */
    int field;        /* which option to spoil */
    int64_t value;    /* the bad value */
};

static void apply_bad_option(kv_options *o, const struct bad_option *b)
{
    switch (b->field) {
    case 0: o->sync = (int)b->value; break;
    case 1: o->segment_bytes = (uint64_t)b->value; break;
    case 2: o->io = (int)b->value; break;
    case 3: o->compression = (int)b->value; break;
    case 4: o->sync = KV_SYNC_INTERVAL; o->sync_interval_ms = (unsigned)b->value; break;
    default: break;
    }
}

static void test_bad_options_give_einval(void)
{
    static const struct bad_option bad[] = {
        { "sync 7", 0, 7 },
        { "sync -1", 0, -1 },
        { "segment_bytes 1", 1, 1 },
        { "segment_bytes 4095", 1, 4095 },
        { "segment_bytes 1 GiB + 1", 1, (1ll << 30) + 1 },
        { "io 9", 2, 9 },
        { "io -1", 2, -1 },
        { "compression 7", 3, 7 },
        { "sync_interval_ms 0", 4, 0 },
        { "sync_interval_ms 3600001", 4, 3600001 },
    };
    char *dir = kvt_dir_new("api");
    kv_options o;
    kv_db *db;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc;
        kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 0);
        apply_bad_option(&o, &bad[i]);
        db = (kv_db *)&db;
        rc = kvt_open(dir, &o, &db);
        KVT_CHECK(rc == KV_EINVAL, "kv_open with %s returned %d (%s), expected KV_EINVAL",
                  bad[i].what, rc, kv_strerror(rc));
        KVT_CHECK(db == NULL, "kv_open with %s left *out set", bad[i].what);
        KVT_CHECK(rc == KV_OK || kv_errmsg()[0] != '\0', "kv_open with %s: empty kv_errmsg",
                  bad[i].what);
        if (rc == KV_OK)
            kvt_close(db);
        /* A bad option is found before anything is written. */
        KVT_CHECK(kvt_dir_count(dir) == 0, "kv_open with %s wrote %d files into the empty "
                  "directory", bad[i].what, kvt_dir_count(dir));
        if (kvt_dir_count(dir) != 0) { /* start the next case from an empty directory */
            kvt_rmtree(dir);
            mkdir(dir, 0700);
        }
    }

    /* The bounds themselves are accepted. */
    kvt_options(&o, KV_SYNC_INTERVAL, KV_IO_AUTO, 4096);
    o.sync_interval_ms = 1;
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);
    kvt_options(&o, KV_SYNC_INTERVAL, KV_IO_AUTO, 1ull << 30);
    o.sync_interval_ms = 3600000;
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);
}

/* =================================================================================
 * 3. Locking and read-only handles
 * ============================================================================== */

static void test_second_writer_gets_elocked_with_pid(void)
{
    char *dir;
    kv_db *db = open_fresh("api", KV_SYNC_NONE, KV_IO_PSYNC, 0, &dir);
    kv_db *second = (kv_db *)&second;
    const char *msg;
    int rc;

    KVT_RC(kvt_put_str(db, "k", "v"), KV_OK);
    rc = kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_PSYNC, 0, &second);
    msg = kv_errmsg();
    KVT_CHECK(rc == KV_ELOCKED, "second writer open: %d (%s), expected KV_ELOCKED; "
              "kv_errmsg: \"%s\"", rc, kv_strerror(rc), msg);
    KVT_CHECK(second == NULL, "failed kv_open left *out set");
    KVT_CHECK(contains_number(msg, (long)getpid()),
              "KV_ELOCKED message \"%s\" does not name our pid %ld", msg, (long)getpid());
    if (rc == KV_OK)
        kvt_close(second);

    /* The first handle is unaffected; after it closes the lock is free again. */
    KVT_ASSERT_VALUE(db, "k", 1, "v", 1);
    KVT_RC(kvt_put_str(db, "k2", "v2"), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);
    KVT_RC_FATAL(kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_PSYNC, 0, &db), KV_OK);
    KVT_ASSERT_VALUE(db, "k2", 2, "v2", 2);
}

/* Child of test_writer_lock_holds_across_processes: exit 0 when its open fails with
 * KV_ELOCKED naming holder, 1 when the message lacks the pid, 2 when it opened, 3
 * for another error. */
static void lock_child(const char *dir, long holder)
{
    kv_options o;
    kv_db *db = NULL;
    int rc;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_PSYNC, 0);
    rc = kv_open(dir, &o, &db);
    if (rc == KV_ELOCKED)
        _exit(contains_number(kv_errmsg(), holder) ? 0 : 1);
    if (rc == KV_OK) {
        kv_close(db);
        _exit(2);
    }
    _exit(3);
}

static void test_writer_lock_holds_across_processes(void)
{
    char *dir;
    kv_db *db = open_fresh("api", KV_SYNC_NONE, KV_IO_PSYNC, 0, &dir);
    int status = 0;
    pid_t pid;

    KVT_RC(kvt_put_str(db, "k", "v"), KV_OK);
    fflush(NULL);
    pid = fork();
    KVT_CHECK_FATAL(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0)
        lock_child(dir, (long)getppid());
    KVT_CHECK_FATAL(waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
    KVT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "a writer in another process: %s (exit %d: 1 = KV_ELOCKED without our pid, "
              "2 = it opened the store, 3 = another error)",
              WIFEXITED(status) ? "exited" : "was killed",
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    KVT_ASSERT_VALUE(db, "k", 1, "v", 1);
}

/* A listing of dir's files (name, size, mtime), to prove nothing changed. */
static char g_listing[16384];
static size_t g_listing_len;

static int list_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    int n = snprintf(g_listing + g_listing_len, sizeof g_listing - g_listing_len,
                     "%s %lld %lld.%09ld\n", path, (long long)st->st_size,
                     (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
    if (n > 0 && (size_t)n < sizeof g_listing - g_listing_len)
        g_listing_len += (size_t)n;
    return 0;
}

static char *listing(const char *dir)
{
    g_listing_len = 0;
    g_listing[0] = '\0';
    nftw(dir, list_entry, 16, FTW_PHYS);
    return strdup(g_listing);
}

static void test_read_only_handle_reads_and_refuses_writes(void)
{
    char *dir;
    kv_db *db = open_fresh("api", KV_SYNC_NONE, KV_IO_AUTO, 0, &dir);
    kv_db *ro = NULL;
    kv_batch *b = kv_batch_new();
    kv_options o;
    kv_stats st;
    char *before, *after;

    KVT_RC(kvt_put_str(db, "k", "v"), KV_OK);
    KVT_RC(kvt_put_str(db, "gone", "x"), KV_OK);
    KVT_RC(kv_delete(db, "gone", 4), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);

    before = listing(dir);
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 0);
    o.read_only = 1;
    o.create = 0;
    KVT_RC_FATAL(kvt_open(dir, &o, &ro), KV_OK);
    KVT_ASSERT_VALUE(ro, "k", 1, "v", 1);
    KVT_ASSERT_ABSENT(ro, "gone", 4);
    KVT_RC(kvt_put_str(ro, "k", "new"), KV_EREADONLY);
    KVT_RC(kv_delete(ro, "k", 1), KV_EREADONLY);
    KVT_RC(kv_batch_put(b, "b", 1, "v", 1), KV_OK);
    KVT_RC(kv_write(ro, b), KV_EREADONLY);
    KVT_RC(kv_sync(ro), KV_EREADONLY);
    KVT_CHECK(kv_errmsg()[0] != '\0', "kv_errmsg empty after KV_EREADONLY");
    KVT_ASSERT_VALUE(ro, "k", 1, "v", 1);
    KVT_ASSERT_ABSENT(ro, "b", 1);
    KVT_RC(kv_stat(ro, &st), KV_OK);
    KVT_CHECK(st.read_only == 1, "kv_stat of a read-only handle: read_only %d", st.read_only);
    KVT_CHECK(st.keys == 1, "read-only handle sees %llu keys, expected 1",
              (unsigned long long)st.keys);
    KVT_RC(kvt_close(ro), KV_OK);
    after = listing(dir);
    KVT_CHECK(before != NULL && after != NULL && strcmp(before, after) == 0,
              "a read-only open/close changed the store directory:\nbefore:\n%s\nafter:\n%s",
              before ? before : "?", after ? after : "?");
    free(before);
    free(after);
    kv_batch_free(b);
}

static void test_read_only_handle_beside_writer(void)
{
    char *dir;
    kv_db *db = open_fresh("api", KV_SYNC_ALWAYS, KV_IO_AUTO, 0, &dir);
    kv_db *ro1 = NULL, *ro2 = NULL;
    kv_options o;

    KVT_RC(kvt_put_str(db, "k", "v"), KV_OK);
    kvt_options(&o, KV_SYNC_ALWAYS, KV_IO_AUTO, 0);
    o.read_only = 1;
    o.create = 0;
    KVT_RC_FATAL(kvt_open(dir, &o, &ro1), KV_OK);
    KVT_RC_FATAL(kvt_open(dir, &o, &ro2), KV_OK);
    KVT_ASSERT_VALUE(ro1, "k", 1, "v", 1);
    KVT_ASSERT_VALUE(ro2, "k", 1, "v", 1);
    /* The writer keeps working while readers are open. */
    KVT_RC(kvt_put_str(db, "k2", "v2"), KV_OK);
    KVT_ASSERT_VALUE(db, "k2", 2, "v2", 2);
    KVT_RC(kvt_close(ro1), KV_OK);
    KVT_RC(kvt_close(ro2), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);

    /* A read-only open of a directory without a store fails and creates nothing. */
    {
        char *empty = kvt_dir_new("api");
        kv_db *x = (kv_db *)&x;
        CHECK_EINVAL_MSG(kvt_open(empty, &o, &x));
        KVT_CHECK(kvt_dir_count(empty) == 0, "read-only open wrote into %s", empty);
    }
}

/* =================================================================================
 * 4. Status texts and the per-thread error message
 * ============================================================================== */

static void test_strerror_texts_are_distinct(void)
{
    static const int codes[] = { KV_OK,    KV_NOTFOUND,  KV_EINVAL,   KV_ENOMEM,
                                 KV_EIO,   KV_ECORRUPT,  KV_ELOCKED,  KV_EREADONLY,
                                 KV_ENOSPC, KV_EVERSION };
    static const int unknown[] = { -1, 2, 12345, -30808, -30899, -30900, -2147483647 - 1 };
    const size_t n = sizeof codes / sizeof codes[0];

    for (size_t i = 0; i < n; i++) {
        const char *t = kv_strerror(codes[i]);
        KVT_CHECK(t != NULL && t[0] != '\0', "kv_strerror(%d) is NULL or empty", codes[i]);
        if (t == NULL)
            continue;
        for (size_t j = 0; j < i; j++) {
            const char *u = kv_strerror(codes[j]);
            KVT_CHECK(u == NULL || strcmp(t, u) != 0,
                      "kv_strerror(%d) and kv_strerror(%d) are both \"%s\"", codes[i],
                      codes[j], t);
        }
    }
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *t = kv_strerror(unknown[i]);
        KVT_CHECK(t != NULL && t[0] != '\0', "kv_strerror(%d) (unknown) is NULL or empty",
                  unknown[i]);
        for (size_t j = 0; t != NULL && j < n; j++)
            KVT_CHECK(strcmp(t, kv_strerror(codes[j])) != 0,
                      "kv_strerror(%d) (unknown) gives the text of %d: \"%s\"", unknown[i],
                      codes[j], t);
    }
}

static void test_version_matches_header(void)
{
    KVT_CHECK(kv_version() != NULL && strcmp(kv_version(), KV_VERSION_STRING) == 0,
              "kv_version() \"%s\" != KV_VERSION_STRING \"%s\"",
              kv_version() ? kv_version() : "(null)", KV_VERSION_STRING);
}

struct errmsg_probe {
    char before[256]; /* kv_errmsg in a fresh thread */
    char after[256];  /* after that thread's own error */
};

static void *errmsg_thread(void *arg)
{
    struct errmsg_probe *p = arg;
    snprintf(p->before, sizeof p->before, "%s", kv_errmsg());
    (void)kv_put(NULL, "k", 1, "v", 1);
    snprintf(p->after, sizeof p->after, "%s", kv_errmsg());
    return NULL;
}

static void test_errmsg_is_per_thread(void)
{
    struct errmsg_probe p;
    char mine[256];
    pthread_t t;
    kv_db *db = (kv_db *)&db;
    kv_options o;

    /* An error of our own: a failed open names the path. */
    kv_options_init(&o);
    o.create = 0;
    KVT_RC(kv_open("/nonexistent-kvtest-dir/x", &o, &db), KV_EINVAL);
    snprintf(mine, sizeof mine, "%s", kv_errmsg());
    KVT_CHECK(mine[0] != '\0', "kv_errmsg empty after a failed kv_open");
    KVT_CHECK(strstr(mine, "/nonexistent-kvtest-dir") != NULL,
              "kv_errmsg \"%s\" does not name the path that failed", mine);

    memset(&p, 0, sizeof p);
    KVT_CHECK_FATAL(pthread_create(&t, NULL, errmsg_thread, &p) == 0, "pthread_create");
    pthread_join(t, NULL);
    KVT_CHECK(p.before[0] == '\0', "a fresh thread's kv_errmsg is \"%s\", expected empty "
              "(it leaked from another thread)", p.before);
    KVT_CHECK(p.after[0] != '\0', "kv_errmsg empty in a thread after its own KV_EINVAL");
    KVT_CHECK(strcmp(kv_errmsg(), mine) == 0, "another thread's error changed ours: "
              "\"%s\" became \"%s\"", mine, kv_errmsg());
}

/* =================================================================================
 * 5. Batches
 * ============================================================================== */

static void test_batch_put_delete_count_clear(void)
{
    kv_batch *b = kv_batch_new();
    KVT_CHECK_FATAL(b != NULL, "kv_batch_new returned NULL");
    KVT_CHECK(kv_batch_count(b) == 0, "new batch has %zu operations", kv_batch_count(b));
    KVT_RC(kv_batch_put(b, "a", 1, "1", 1), KV_OK);
    KVT_RC(kv_batch_put(b, "b", 1, "", 0), KV_OK);
    KVT_RC(kv_batch_put(b, "c", 1, NULL, 0), KV_OK);
    KVT_RC(kv_batch_delete(b, "a", 1), KV_OK);
    KVT_CHECK(kv_batch_count(b) == 4, "batch count %zu, expected 4", kv_batch_count(b));
    kv_batch_clear(b);
    KVT_CHECK(kv_batch_count(b) == 0, "cleared batch count %zu", kv_batch_count(b));
    KVT_RC(kv_batch_put(b, "a", 1, "1", 1), KV_OK);
    KVT_CHECK(kv_batch_count(b) == 1, "reused batch count %zu", kv_batch_count(b));
    kv_batch_free(b);
}

static void test_batch_applies_in_order(void)
{
    char *dir;
    kv_db *db = open_fresh("api", KV_SYNC_ALWAYS, KV_IO_AUTO, 0, &dir);
    kv_batch *b = kv_batch_new();
    kv_stats st;

    KVT_CHECK_FATAL(b != NULL, "kv_batch_new returned NULL");
    KVT_RC(kvt_put_str(db, "existing", "old"), KV_OK);
    KVT_RC(kv_batch_put(b, "k", 1, "v1", 2), KV_OK);
    KVT_RC(kv_batch_put(b, "k", 1, "v2", 2), KV_OK);       /* later put wins */
    KVT_RC(kv_batch_delete(b, "existing", 8), KV_OK);
    KVT_RC(kv_batch_put(b, "x", 1, "short-lived", 11), KV_OK);
    KVT_RC(kv_batch_delete(b, "x", 1), KV_OK);            /* put then delete: absent */
    KVT_RC(kv_batch_delete(b, "y", 1), KV_OK);
    KVT_RC(kv_batch_put(b, "y", 1, "v3", 2), KV_OK);       /* delete then put: present */
    KVT_RC(kv_batch_delete(b, "never", 5), KV_OK);        /* absent key: fine */
    KVT_RC(kv_batch_put(b, "e", 1, "", 0), KV_OK);
    KVT_RC_FATAL(kv_write(db, b), KV_OK);
    KVT_CHECK(kv_batch_count(b) == 9, "kv_write changed the batch: count %zu",
              kv_batch_count(b));

    for (int pass = 0; pass < 2; pass++) {
        KVT_ASSERT_VALUE(db, "k", 1, "v2", 2);
        KVT_ASSERT_ABSENT(db, "existing", 8);
        KVT_ASSERT_ABSENT(db, "x", 1);
        KVT_ASSERT_VALUE(db, "y", 1, "v3", 2);
        KVT_ASSERT_ABSENT(db, "never", 5);
        KVT_ASSERT_VALUE(db, "e", 1, "", 0);
        if (pass == 0) {
            KVT_RC(kv_stat(db, &st), KV_OK);
            KVT_CHECK(st.batches == 1, "stats.batches %llu after one kv_write",
                      (unsigned long long)st.batches);
            KVT_CHECK(st.keys == 3, "stats.keys %llu, expected 3 (k, y, e)",
                      (unsigned long long)st.keys);
            db = reopen(db, dir, KV_SYNC_ALWAYS, KV_IO_AUTO, 0);
        }
    }

    /* The unchanged batch can be written again; cleared, it is reusable. */
    KVT_RC(kvt_put_str(db, "k", "changed"), KV_OK);
    KVT_RC(kv_write(db, b), KV_OK);
    KVT_ASSERT_VALUE(db, "k", 1, "v2", 2);
    kv_batch_clear(b);
    KVT_RC(kv_batch_put(b, "z", 1, "zz", 2), KV_OK);
    KVT_RC(kv_write(db, b), KV_OK);
    KVT_ASSERT_VALUE(db, "z", 1, "zz", 2);
    KVT_ASSERT_VALUE(db, "k", 1, "v2", 2);
    kv_batch_free(b);
}

static void test_empty_batch_is_noop(void)
{
    kv_db *db = open_fresh("api", KV_SYNC_ALWAYS, KV_IO_AUTO, 0, NULL);
    kv_batch *b = kv_batch_new();
    kv_stats before, after;

    KVT_CHECK_FATAL(b != NULL, "kv_batch_new returned NULL");
    KVT_RC(kvt_put_str(db, "k", "v"), KV_OK);
    before = stat_of(db);
    KVT_RC(kv_write(db, b), KV_OK);
    kv_batch_put(b, "x", 1, "y", 1);
    kv_batch_clear(b);
    KVT_RC(kv_write(db, b), KV_OK);
    after = stat_of(db);
    KVT_CHECK(after.next_seq == before.next_seq && after.keys == before.keys &&
              after.puts == before.puts,
              "an empty batch wrote something: next_seq %llu -> %llu, keys %llu -> %llu",
              (unsigned long long)before.next_seq, (unsigned long long)after.next_seq,
              (unsigned long long)before.keys, (unsigned long long)after.keys);
    KVT_ASSERT_ABSENT(db, "x", 1);
    KVT_ASSERT_VALUE(db, "k", 1, "v", 1);
    kv_batch_free(b);
}

/* =================================================================================
 * 6. Iteration
 * ============================================================================== */
#define FE_KEYS 600

struct fe_state {
    int seen[FE_KEYS];    /* visits per key index */
    int live[FE_KEYS];    /* 1 when the key should be visited */
    int bad;              /* visits of unknown keys or with wrong values */
    char first_bad[256];  /* the first of those */
    int calls;            /* all calls */
    int stop_after;       /* return stop_value on this call (0: never) */
    int stop_value;
    kv_db *db;            /* for callbacks that use the handle */
    int puts_in_cb;       /* kv_put calls made from the callback */
    int cb_errors;        /* failed kv_get/kv_put calls inside the callback */
};

static void fe_key(char *buf, size_t n, int i)
{
    snprintf(buf, n, "fe-%05d", i);
}

static size_t fe_value(char *buf, size_t n, int i, int gen)
{
    return (size_t)snprintf(buf, n, "value-%d-gen-%d-%.*s", i, gen, i % 50,
                            "..................................................");
}

static int fe_parse(const void *k, size_t kl)
{
    char tmp[16];
    int i;
    if (kl != 8 || memcmp(k, "fe-", 3) != 0)
        return -1;
    memcpy(tmp, k, kl);
    tmp[kl] = '\0';
    i = atoi(tmp + 3);
    return i >= 0 && i < FE_KEYS ? i : -1;
}

static int fe_cb(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
    struct fe_state *s = arg;
    int i = fe_parse(k, kl);
    char want[128], kb[64];
    size_t wl;

    s->calls++;
    if (i < 0) {
        if (kl >= 4 && memcmp(k, "new-", 4) == 0)
            return 0; /* written by the callback itself: may or may not be visited */
        if (s->bad++ == 0)
            snprintf(s->first_bad, sizeof s->first_bad, "unknown key \"%s\"",
                     kvt_fmt(kb, sizeof kb, k, kl));
        return 0;
    }
    s->seen[i]++;
    wl = fe_value(want, sizeof want, i, s->live[i]);
    if (!s->live[i] || vl != wl || memcmp(v, want, wl) != 0) {
        if (s->bad++ == 0)
            snprintf(s->first_bad, sizeof s->first_bad, "key fe-%05d: %s", i,
                     s->live[i] ? "wrong value" : "deleted key visited");
    }
    if (s->db != NULL) { /* the callback may use the handle */
        char nk[32];
        void *gv = NULL;
        size_t gl = 0;
        if (kv_get(s->db, k, kl, &gv, &gl) != KV_OK)
            s->cb_errors++;
        kv_free(gv);
        snprintf(nk, sizeof nk, "new-%05d", i);
        if (kv_put(s->db, nk, strlen(nk), "n", 1) != KV_OK)
            s->cb_errors++;
        else
            s->puts_in_cb++;
    }
    if (s->stop_after != 0 && s->calls == s->stop_after)
        return s->stop_value;
    return 0;
}

/* Writes FE_KEYS keys; overwrites every third (generation 2), deletes every fifth. */
static void fe_fill(kv_db *db, struct fe_state *s)
{
    char k[32], v[128];
    for (int i = 0; i < FE_KEYS; i++) {
        fe_key(k, sizeof k, i);
        size_t vl = fe_value(v, sizeof v, i, 1);
        KVT_RC_FATAL(kv_put(db, k, strlen(k), v, vl), KV_OK);
        s->live[i] = 1;
    }
    for (int i = 0; i < FE_KEYS; i += 3) {
        fe_key(k, sizeof k, i);
        size_t vl = fe_value(v, sizeof v, i, 2);
        KVT_RC_FATAL(kv_put(db, k, strlen(k), v, vl), KV_OK);
        s->live[i] = 2;
    }
    for (int i = 0; i < FE_KEYS; i += 5) {
        fe_key(k, sizeof k, i);
        KVT_RC_FATAL(kv_delete(db, k, strlen(k)), KV_OK);
        s->live[i] = 0;
    }
}

static void fe_check_all(kv_db *db, struct fe_state *s, const char *when)
{
    int rc;
    memset(s->seen, 0, sizeof s->seen);
    s->bad = 0;
    s->calls = 0;
    rc = kv_foreach(db, fe_cb, s);
    KVT_CHECK(rc == KV_OK, "%s: kv_foreach returned %d (%s): %s", when, rc, kv_strerror(rc),
              kv_errmsg());
    KVT_CHECK(s->bad == 0, "%s: kv_foreach: %d bad visits, first: %s", when, s->bad,
              s->first_bad);
    for (int i = 0; i < FE_KEYS; i++) {
        int want = s->live[i] ? 1 : 0;
        if (s->seen[i] != want) {
            KVT_CHECK(0, "%s: kv_foreach visited fe-%05d %d times, expected %d", when, i,
                      s->seen[i], want);
            break;
        }
    }
}

static void test_foreach_visits_each_live_key_once(void)
{
    char *dir;
    kv_db *db = open_fresh("api", KV_SYNC_NONE, KV_IO_AUTO, 4096, &dir);
    static struct fe_state s;

    memset(&s, 0, sizeof s);
    fe_fill(db, &s);
    fe_check_all(db, &s, "before reopen (small segments)");
    db = reopen(db, dir, KV_SYNC_NONE, KV_IO_AUTO, 4096);
    fe_check_all(db, &s, "after reopen (small segments)");
    db = reopen(db, dir, KV_SYNC_NONE, KV_IO_PSYNC, 0);
    fe_check_all(db, &s, "after reopen (default segments)");
}

static void test_foreach_stops_on_nonzero_return(void)
{
    kv_db *db = open_fresh("api", KV_SYNC_NONE, KV_IO_AUTO, 0, NULL);
    static struct fe_state s;
    int rc;

    memset(&s, 0, sizeof s);
    fe_fill(db, &s);
    s.stop_after = 3;
    s.stop_value = 42;
    rc = kv_foreach(db, fe_cb, &s);
    KVT_CHECK(rc == 42, "kv_foreach returned %d, expected the callback's 42", rc);
    KVT_CHECK(s.calls == 3, "kv_foreach called fn %d times after it returned non-zero "
              "on call 3", s.calls);
    s.calls = 0;
    s.stop_after = 1;
    s.stop_value = -7;
    rc = kv_foreach(db, fe_cb, &s);
    KVT_CHECK(rc == -7 && s.calls == 1, "kv_foreach returned %d after %d calls, expected "
              "-7 after 1", rc, s.calls);
}

static void test_foreach_on_empty_store(void)
{
    kv_db *db = open_fresh("api", KV_SYNC_NONE, KV_IO_AUTO, 0, NULL);
    int calls = 0;
    KVT_RC(kv_foreach(db, count_cb, &calls), KV_OK);
    KVT_CHECK(calls == 0, "kv_foreach on an empty store called fn %d times", calls);
    KVT_RC(kvt_put_str(db, "k", "v"), KV_OK);
    KVT_RC(kv_delete(db, "k", 1), KV_OK);
    KVT_RC(kv_foreach(db, count_cb, &calls), KV_OK);
    KVT_CHECK(calls == 0, "kv_foreach visited a deleted key (%d calls)", calls);
}

struct fe_thread_arg {
    kv_db *db;
    struct fe_state *s;
    int rc;
};

static void *fe_thread(void *arg)
{
    struct fe_thread_arg *a = arg;
    a->rc = kv_foreach(a->db, fe_cb, a->s);
    return NULL;
}

static void test_foreach_callback_may_get_and_put(void)
{
    kv_db *db = open_fresh("api", KV_SYNC_NONE, KV_IO_AUTO, 0, NULL);
    static struct fe_state s;
    struct fe_thread_arg a;
    struct timespec deadline;
    pthread_t t;
    int live = 0;

    memset(&s, 0, sizeof s);
    fe_fill(db, &s);
    for (int i = 0; i < FE_KEYS; i++)
        live += s.live[i] ? 1 : 0;
    s.db = db;
    a.db = db;
    a.s = &s;
    a.rc = -1;
    /* In a thread with a deadline, so a deadlock fails this test instead of the run. */
    KVT_CHECK_FATAL(pthread_create(&t, NULL, fe_thread, &a) == 0, "pthread_create");
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 30;
    if (pthread_timedjoin_np(t, NULL, &deadline) != 0) {
        kvt_forget(db); /* the handle is stuck: leave it */
        pthread_detach(t);
        KVT_CHECK_FATAL(0, "kv_foreach whose callback calls kv_get/kv_put did not finish "
                        "in 30 s (deadlock?)");
    }
    KVT_CHECK(a.rc == KV_OK, "kv_foreach returned %d (%s): %s", a.rc, kv_strerror(a.rc),
              kv_errmsg());
    KVT_CHECK(s.cb_errors == 0, "%d kv_get/kv_put calls failed inside the callback",
              s.cb_errors);
    KVT_CHECK(s.bad == 0, "kv_foreach: %d bad visits, first: %s", s.bad, s.first_bad);
    for (int i = 0; i < FE_KEYS; i++) {
        if (s.seen[i] != (s.live[i] ? 1 : 0)) {
            KVT_CHECK(0, "fe-%05d visited %d times while the callback wrote", i, s.seen[i]);
            break;
        }
    }
    KVT_CHECK(s.puts_in_cb == live, "callback made %d puts for %d live keys", s.puts_in_cb,
              live);
    for (int i = 0; i < FE_KEYS; i++) {
        char nk[32];
        snprintf(nk, sizeof nk, "new-%05d", i);
        if (s.live[i])
            KVT_ASSERT_VALUE(db, nk, strlen(nk), "n", 1);
    }
}

/* =================================================================================
 * 7. Statistics
 * ============================================================================== */

static void test_stat_counts_operations(void)
{
    char *dir;
    kv_db *db = open_fresh("api", KV_SYNC_ALWAYS, KV_IO_AUTO, 0, &dir);
    kv_batch *b = kv_batch_new();
    kv_stats st;
    void *v;
    size_t vl;
    char k[16];

    KVT_CHECK_FATAL(b != NULL, "kv_batch_new returned NULL");
    st = stat_of(db);
    KVT_CHECK(st.keys == 0 && st.puts == 0 && st.gets == 0 && st.deletes == 0 &&
              st.batches == 0, "fresh store: keys %llu puts %llu gets %llu deletes %llu",
              (unsigned long long)st.keys, (unsigned long long)st.puts,
              (unsigned long long)st.gets, (unsigned long long)st.deletes);
    KVT_CHECK(st.segments >= 1, "fresh store: %llu segments", (unsigned long long)st.segments);
    KVT_CHECK(st.io_backend == KV_IO_URING || st.io_backend == KV_IO_PSYNC,
              "io_backend %d is neither KV_IO_URING nor KV_IO_PSYNC", st.io_backend);
    KVT_CHECK(st.sync == KV_SYNC_ALWAYS, "stats.sync %d, opened with KV_SYNC_ALWAYS", st.sync);
    KVT_CHECK(st.read_only == 0 && st.failed == 0, "fresh writer: read_only %d failed %d",
              st.read_only, st.failed);

    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof k, "key%d", i);
        KVT_RC(kvt_put_str(db, k, "0123456789"), KV_OK);
    }
    KVT_RC(kvt_put_str(db, "key0", "overwritten"), KV_OK);
    for (int i = 0; i < 3; i++) {
        KVT_RC(kv_get(db, "key1", 4, &v, &vl), KV_OK);
        kv_free(v);
    }
    KVT_RC(kv_get(db, "missing", 7, &v, &vl), KV_NOTFOUND);
    KVT_RC(kv_delete(db, "key2", 4), KV_OK);
    KVT_RC(kv_delete(db, "key3", 4), KV_OK);
    KVT_RC(kv_batch_put(b, "b1", 2, "x", 1), KV_OK);
    KVT_RC(kv_batch_put(b, "b2", 2, "y", 1), KV_OK);
    KVT_RC(kv_batch_delete(b, "key4", 4), KV_OK);
    KVT_RC(kv_write(db, b), KV_OK);

    st = stat_of(db);
    KVT_CHECK(st.keys == 9, "keys %llu, expected 9 (10 + 2 - 3)", (unsigned long long)st.keys);
    KVT_CHECK(st.puts == 13, "puts %llu, expected 13 (11 + 2 in a batch)",
              (unsigned long long)st.puts);
    KVT_CHECK(st.gets == 4, "gets %llu, expected 4", (unsigned long long)st.gets);
    KVT_CHECK(st.deletes == 3, "deletes %llu, expected 3 (2 + 1 in a batch)",
              (unsigned long long)st.deletes);
    KVT_CHECK(st.batches == 1, "batches %llu, expected 1", (unsigned long long)st.batches);
    KVT_CHECK(st.next_seq >= 16, "next_seq %llu after 16 writes",
              (unsigned long long)st.next_seq);
    KVT_CHECK(st.live_bytes > 0 && st.disk_bytes > 0, "live_bytes %llu disk_bytes %llu",
              (unsigned long long)st.live_bytes, (unsigned long long)st.disk_bytes);
    KVT_CHECK(st.dead_bytes > 0, "dead_bytes 0 after an overwrite and deletes");
    KVT_CHECK(st.wal_files >= 1 && st.wal_files <= 2, "wal_files %llu",
              (unsigned long long)st.wal_files);
    KVT_CHECK(st.wal_syncs >= 1 && st.wal_groups >= 1,
              "KV_SYNC_ALWAYS: wal_syncs %llu wal_groups %llu after 14 writes",
              (unsigned long long)st.wal_syncs, (unsigned long long)st.wal_groups);
    KVT_CHECK(st.index_bytes > 0, "index_bytes 0 with 9 keys");

    /* Counters are per handle; keys are the store's. */
    db = reopen(db, dir, KV_SYNC_NONE, KV_IO_AUTO, 0);
    st = stat_of(db);
    KVT_CHECK(st.keys == 9, "keys %llu after reopen, expected 9", (unsigned long long)st.keys);
    KVT_CHECK(st.puts == 0 && st.gets == 0 && st.deletes == 0 && st.batches == 0,
              "operation counters not reset by reopen: puts %llu gets %llu",
              (unsigned long long)st.puts, (unsigned long long)st.gets);
    KVT_CHECK(st.sync == KV_SYNC_NONE, "stats.sync %d after reopening with KV_SYNC_NONE",
              st.sync);
    KVT_CHECK(st.next_seq >= 16, "next_seq %llu went backwards over a reopen",
              (unsigned long long)st.next_seq);
    kv_batch_free(b);
}

/* =================================================================================
 * 8. Persistence
 * ============================================================================== */

static size_t persist_value(char *buf, size_t n, int i, int gen)
{
    return (size_t)snprintf(buf, n, "persist-%d-%d-%0*d", i, gen, (i * 37) % 200, 0);
}

/* Writes, overwrites and deletes under sync mode, reopens under each mode in turn,
 * and checks every key each time. */
static void persistence_case(int sync)
{
    enum { N = 300 };
    char *dir;
    kv_db *db = open_fresh("persist", sync, KV_IO_AUTO, 0, &dir);
    static const int modes[] = { KV_SYNC_ALWAYS, KV_SYNC_INTERVAL, KV_SYNC_NONE };
    char k[32], v[512];
    size_t vl;

    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof k, "p%04d", i);
        vl = persist_value(v, sizeof v, i, 1);
        KVT_RC_FATAL(kv_put(db, k, strlen(k), v, vl), KV_OK);
    }
    for (int i = 0; i < N; i += 4) {
        snprintf(k, sizeof k, "p%04d", i);
        vl = persist_value(v, sizeof v, i, 2);
        KVT_RC_FATAL(kv_put(db, k, strlen(k), v, vl), KV_OK);
    }
    for (int i = 1; i < N; i += 7) {
        snprintf(k, sizeof k, "p%04d", i);
        KVT_RC_FATAL(kv_delete(db, k, strlen(k)), KV_OK);
    }
    KVT_RC(kv_sync(db), KV_OK);
    for (int round = 0; round < 4; round++) {
        db = reopen(db, dir, round == 0 ? sync : modes[round % 3], KV_IO_AUTO, 0);
        for (int i = 0; i < N; i++) {
            snprintf(k, sizeof k, "p%04d", i);
            vl = persist_value(v, sizeof v, i, i % 4 == 0 ? 2 : 1);
            if (i % 7 == 1) {
                if (!KVT_ASSERT_ABSENT(db, k, strlen(k)))
                    return;
            } else if (!KVT_ASSERT_VALUE(db, k, strlen(k), v, vl)) {
                return;
            }
        }
    }
}

static void test_persistence_sync_always(void)
{
    persistence_case(KV_SYNC_ALWAYS);
}

static void test_persistence_sync_interval(void)
{
    persistence_case(KV_SYNC_INTERVAL);
}

static void test_persistence_sync_none(void)
{
    persistence_case(KV_SYNC_NONE);
}

static size_t roll_value(char *buf, size_t n, int i, int gen)
{
    return (size_t)snprintf(buf, n, "roll-%d-gen%d-%0*d", i, gen, 100 + (i * 13) % 150, gen);
}

static int roll_check(kv_db *db, int n, const char *when)
{
    char k[32], v[512];
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "r%05d", i);
        if (i >= 200 && i < 400) {
            if (!KVT_ASSERT_ABSENT(db, k, strlen(k))) {
                KVT_CHECK(0, "(%s)", when);
                return 0;
            }
            continue;
        }
        size_t vl = roll_value(v, sizeof v, i, i < 300 ? 2 : 1);
        if (!KVT_ASSERT_VALUE(db, k, strlen(k), v, vl)) {
            KVT_CHECK(0, "(%s)", when);
            return 0;
        }
    }
    return 1;
}

static void test_segments_roll_and_wal_stays_bounded(void)
{
    const int n = 2000;
    const uint64_t seg = 4096;
    char *dir;
    kv_db *db = open_fresh("roll", KV_SYNC_NONE, KV_IO_AUTO, seg, &dir);
    uint64_t segs0, segs_mid, max_wal_files = 0, max_wal_bytes = 0;
    kv_stats st;
    char k[32], v[512];

    st = stat_of(db);
    segs0 = st.segments;
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "r%05d", i);
        size_t vl = roll_value(v, sizeof v, i, 1);
        KVT_RC_FATAL(kv_put(db, k, strlen(k), v, vl), KV_OK);
        if (i % 50 == 0) {
            st = stat_of(db);
            if (st.wal_files > max_wal_files)
                max_wal_files = st.wal_files;
            if (st.wal_bytes > max_wal_bytes)
                max_wal_bytes = st.wal_bytes;
        }
    }
    st = stat_of(db);
    segs_mid = st.segments;
    KVT_CHECK(segs_mid >= segs0 + 20, "%d puts of ~200 bytes with 4 KiB segments: segments "
              "went from %llu to %llu only", n, (unsigned long long)segs0,
              (unsigned long long)segs_mid);
    /* Overwrites whose old values sit in sealed segments, and tombstones of them. */
    for (int i = 0; i < 300; i++) {
        snprintf(k, sizeof k, "r%05d", i);
        size_t vl = roll_value(v, sizeof v, i, 2);
        KVT_RC_FATAL(kv_put(db, k, strlen(k), v, vl), KV_OK);
    }
    for (int i = 200; i < 400; i++) {
        snprintf(k, sizeof k, "r%05d", i);
        KVT_RC_FATAL(kv_delete(db, k, strlen(k)), KV_OK);
    }
    st = stat_of(db);
    /* (background compaction may have merged the dead-heavy segments meanwhile) */
    KVT_CHECK(st.segments > segs_mid || st.compactions > 0, "segments did not grow further "
              "(%llu) and nothing was compacted", (unsigned long long)st.segments);
    KVT_CHECK(max_wal_files <= 2 && st.wal_files <= 2,
              "the WAL is not bounded: up to %llu WAL files with 4 KiB segments (now %llu)",
              (unsigned long long)max_wal_files, (unsigned long long)st.wal_files);
    KVT_CHECK(max_wal_bytes <= 64 * 1024 && st.wal_bytes <= 64 * 1024,
              "the WAL is not bounded: up to %llu WAL bytes with 4 KiB segments",
              (unsigned long long)max_wal_bytes);
    KVT_CHECK(st.keys == (uint64_t)n - 200, "keys %llu, expected %d",
              (unsigned long long)st.keys, n - 200);
    if (!roll_check(db, n, "before reopen"))
        return;

    db = reopen(db, dir, KV_SYNC_NONE, KV_IO_AUTO, seg);
    st = stat_of(db);
    /* Background compaction may have merged segments since; all must still open. */
    KVT_CHECK(st.segments >= 2, "after reopen %llu segments (had %llu mid-way)",
              (unsigned long long)st.segments, (unsigned long long)segs_mid);
    KVT_CHECK(st.keys == (uint64_t)n - 200, "keys %llu after reopen, expected %d",
              (unsigned long long)st.keys, n - 200);
    KVT_CHECK(st.wal_files <= 2, "after reopen %llu WAL files",
              (unsigned long long)st.wal_files);
    if (!roll_check(db, n, "after reopen"))
        return;
    db = reopen(db, dir, KV_SYNC_ALWAYS, KV_IO_PSYNC, 0);
    roll_check(db, n, "after reopen with default segment size");
}

/* Writes through io backend io and checks the data before and after a reopen;
 * returns the backend the handle reported. */
static int backend_case(int io, const char *name)
{
    char *dir = kvt_dir_new("io");
    kv_db *db = NULL;
    kv_batch *b = kv_batch_new();
    kv_stats st;
    char k[32], v[64];
    int rc;

    KVT_CHECK_FATAL(b != NULL, "kv_batch_new returned NULL");
    rc = kvt_open_mode(dir, KV_SYNC_ALWAYS, io, 0, &db);
    if (rc != KV_OK)
        kv_batch_free(b);
    KVT_CHECK_FATAL(rc == KV_OK, "kv_open with %s: %d (%s): %s", name, rc,
                    kv_strerror(rc), kv_errmsg());
    st = stat_of(db);
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof k, "io%d", i);
        snprintf(v, sizeof v, "%s-value-%d", name, i);
        KVT_RC(kvt_put_str(db, k, v), KV_OK);
    }
    KVT_RC(kv_delete(db, "io7", 3), KV_OK);
    KVT_RC(kv_batch_put(b, "io8", 3, "batched", 7), KV_OK);
    KVT_RC(kv_batch_delete(b, "io9", 3), KV_OK);
    KVT_RC(kv_write(db, b), KV_OK);
    KVT_RC(kv_sync(db), KV_OK);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 200; i++) {
            snprintf(k, sizeof k, "io%d", i);
            snprintf(v, sizeof v, "%s-value-%d", name, i);
            if (i == 7 || i == 9)
                KVT_ASSERT_ABSENT(db, k, strlen(k));
            else if (i == 8)
                KVT_ASSERT_VALUE(db, k, strlen(k), "batched", 7);
            else
                KVT_ASSERT_VALUE(db, k, strlen(k), v, strlen(v));
        }
        if (pass == 0)
            db = reopen(db, dir, KV_SYNC_ALWAYS, io, 0);
    }
    kv_batch_free(b);
    return st.io_backend;
}

static void test_io_psync_backend(void)
{
    int used = backend_case(KV_IO_PSYNC, "KV_IO_PSYNC");
    KVT_CHECK(used == KV_IO_PSYNC, "KV_IO_PSYNC handle reports backend %d", used);
}

static void test_io_uring_backend(void)
{
    /* io_uring is available on the machines this suite runs on; KV_EIO here is a
     * finding to report (kv_errmsg says why), not something to skip. */
    int used = backend_case(KV_IO_URING, "KV_IO_URING");
    KVT_CHECK(used == KV_IO_URING, "KV_IO_URING handle reports backend %d", used);
}

static void test_io_auto_backend_prefers_uring(void)
{
    char *dir = kvt_dir_new("io");
    kv_db *probe = NULL;
    kv_stats st;
    int uring_ok = kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_URING, 0, &probe) == KV_OK;
    int used;
    if (uring_ok) {
        KVT_RC(kv_stat(probe, &st), KV_OK);
        KVT_RC(kvt_close(probe), KV_OK);
    }
    used = backend_case(KV_IO_AUTO, "KV_IO_AUTO");
    KVT_CHECK(used == KV_IO_URING || used == KV_IO_PSYNC, "KV_IO_AUTO backend %d", used);
    KVT_CHECK(!uring_ok || used == KV_IO_URING, "KV_IO_URING opens, yet KV_IO_AUTO chose "
              "backend %d", used);
    if (used == KV_IO_PSYNC) {
        kv_db *db = NULL;
        char *d2 = kvt_dir_new("io");
        KVT_RC_FATAL(kvt_open_mode(d2, KV_SYNC_NONE, KV_IO_AUTO, 0, &db), KV_OK);
        st = stat_of(db);
        KVT_CHECK(st.io_backend_note[0] != '\0',
                  "KV_IO_AUTO fell back to pwrite without saying why (io_backend_note empty)");
        kvt_note("KV_IO_AUTO uses pwrite: %.*s", (int)sizeof st.io_backend_note,
                 st.io_backend_note);
    }
}

/* =================================================================================
 * Registration
 * ============================================================================== */

static const kvt_test api_tests[] = {
    { "put then get returns the value", test_put_then_get_returns_value },
    { "get returns a private copy", test_get_returns_private_copy },
    { "overwrite returns the newest value", test_overwrite_returns_newest },
    { "delete: KV_OK, then KV_NOTFOUND, get KV_NOTFOUND", test_delete_then_notfound },
    { "empty value is present, not a delete", test_empty_value_is_present },
    { "keys with NUL bytes are distinct", test_keys_with_nul_bytes_are_distinct },
    { "key length limits (KV_MAX_KEY, +1, 0)", test_key_length_limits },
    { "value length limits (KV_MAX_VALUE, +1)", test_value_length_limits },
    { "NULL arguments give KV_EINVAL with a message", test_null_arguments_give_einval },
    { "kv_open NULL arguments", test_open_null_arguments },
    { "kv_open NULL options uses the defaults", test_open_null_options_uses_defaults },
    { "kv_open on a regular file is KV_EINVAL", test_open_regular_file_is_einval },
    { "kv_open missing dir without create is KV_EINVAL",
      test_open_missing_dir_without_create_is_einval },
    { "kv_open foreign directory is KV_EINVAL, untouched",
      test_open_foreign_directory_is_einval_and_untouched },
    { "kv_open create keeps an existing store", test_open_create_keeps_existing_store },
    { "KV_COMPRESS_LZ4 is KV_EINVAL for now", test_lz4_compression_not_yet_einval },
    { "bad options give KV_EINVAL and write nothing", test_bad_options_give_einval },
    { "second writer gets KV_ELOCKED naming our pid",
      test_second_writer_gets_elocked_with_pid },
    { "writer lock holds across processes", test_writer_lock_holds_across_processes },
    { "read-only handle reads, refuses writes, changes nothing",
      test_read_only_handle_reads_and_refuses_writes },
    { "read-only handles beside a writer", test_read_only_handle_beside_writer },
    { "kv_strerror texts are distinct", test_strerror_texts_are_distinct },
    { "kv_version matches the header", test_version_matches_header },
    { "kv_errmsg is per thread", test_errmsg_is_per_thread },
    { "batch put/delete/count/clear", test_batch_put_delete_count_clear },
    { "batch applies in order", test_batch_applies_in_order },
    { "empty batch is a no-op", test_empty_batch_is_noop },
    { "foreach visits each live key once", test_foreach_visits_each_live_key_once },
    { "foreach stops on a non-zero return", test_foreach_stops_on_nonzero_return },
    { "foreach on an empty store", test_foreach_on_empty_store },
    { "foreach callback may call kv_get and kv_put", test_foreach_callback_may_get_and_put },
    { "kv_stat counts operations", test_stat_counts_operations },
    { "persistence under KV_SYNC_ALWAYS", test_persistence_sync_always },
    { "persistence under KV_SYNC_INTERVAL", test_persistence_sync_interval },
    { "persistence under KV_SYNC_NONE", test_persistence_sync_none },
    { "segments roll and the WAL stays bounded", test_segments_roll_and_wal_stays_bounded },
    { "io backend KV_IO_PSYNC", test_io_psync_backend },
    { "io backend KV_IO_URING", test_io_uring_backend },
    { "io backend KV_IO_AUTO prefers io_uring", test_io_auto_backend_prefers_uring },
    { NULL, NULL },
};

void kvt_register_api(void)
{
    kvt_add_suite("api", api_tests);
}
