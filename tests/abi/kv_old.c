/*
 * kv_old.c — build/bin/kv-abi-old: a program built against an older kv.h
 * (tests/abi/kv_v0.h: a smaller kv_options and kv_stats) and linked to today's
 * libkv.so. The abi suite (tests/test_abi.c) runs it as `kv-abi-old DIR`.
 *
 * It opens a store in DIR with its old-sized options, puts, gets and deletes, and
 * reads the statistics into its old-sized kv_stats, then checks that the library
 *   - wrote no byte past either struct (guard bytes after each stay as they were;
 *     under ASan the options kv_open reads sit in an allocation of exactly their
 *     size, so a read past them is caught too),
 *   - read the fields it has (sync, io, segment_bytes, read_only show in the stats),
 *   - filled the statistics it has with the right values,
 *   - refuses options whose struct_size is 0 or too large, and a kv_stat size of 0,
 *     with KV_EINVAL, a message naming the size, and nothing written.
 * Prints "kv-abi-old: ok ..." and exits 0, or prints each failure and exits 1.
 */
#include "kv_v0.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NKEYS 200
#define GUARD 0xa5

static int failures;

#define CHECK(cond, ...)                                       \
    do {                                                       \
        if (!(cond)) {                                         \
            printf("kv-abi-old: FAIL line %d: ", __LINE__);    \
            printf(__VA_ARGS__);                               \
            printf(" [kv_errmsg: %s]\n", kv_errmsg());         \
            failures++;                                        \
        }                                                      \
    } while (0)

/* A struct followed by guard bytes the library must never write. */
struct guarded_options {
    kv_options o;
    unsigned char guard[64];
};
struct guarded_stats {
    kv_stats st;
    unsigned char guard[256];
};

static int untouched(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != GUARD)
            return 0;
    return 1;
}

static void key_of(unsigned i, char *key, size_t n) { snprintf(key, n, "old-key-%04u", i); }

static void value_of(unsigned i, char *val, size_t n)
{
    for (size_t j = 0; j < n; j++)
        val[j] = (char)('a' + (i * 7 + j) % 26);
}

/* Options in an allocation of exactly sizeof(kv_options) as this program knows it. */
static kv_options *exact_options(const kv_options *o)
{
    kv_options *e = malloc(sizeof *e);
    if (e == NULL) {
        printf("kv-abi-old: out of memory\n");
        exit(1);
    }
    memcpy(e, o, sizeof *e);
    return e;
}

static void check_refusals(const char *dir, kv_db *db)
{
    struct guarded_options g;
    kv_db *other = (kv_db *)&g; /* must be set to NULL on failure */
    memset(&g, GUARD, sizeof g);
    kv_options_init(&g.o);
    CHECK(untouched(g.guard, sizeof g.guard), "kv_options_init wrote past a kv_options of "
          "%zu bytes", sizeof g.o);
    CHECK(g.o.struct_size == sizeof(kv_options), "kv_options_init set struct_size %zu, "
          "not %zu", g.o.struct_size, sizeof(kv_options));

    g.o.struct_size = 0; /* options kv_options_init did not fill */
    kv_options *e = exact_options(&g.o);
    int rc = kv_open(dir, e, &other);
    CHECK(rc == KV_EINVAL && other == NULL, "kv_open with struct_size 0: %d (%s)", rc,
          kv_strerror(rc));
    CHECK(strstr(kv_errmsg(), "struct_size 0") != NULL, "kv_open with struct_size 0: "
          "message does not name it");
    e->struct_size = 1 << 20; /* more than any kv_options: a garbage size */
    rc = kv_open(dir, e, &other);
    CHECK(rc == KV_EINVAL && other == NULL, "kv_open with struct_size 1 MiB: %d (%s)", rc,
          kv_strerror(rc));
    CHECK(strstr(kv_errmsg(), "struct_size 1048576") != NULL, "kv_open with struct_size "
          "1 MiB: message does not name it");
    free(e);

    struct guarded_stats s;
    memset(&s, GUARD, sizeof s);
    rc = kv_stat_sized(db, &s.st, 0);
    CHECK(rc == KV_EINVAL, "kv_stat with size 0: %d (%s)", rc, kv_strerror(rc));
    CHECK(untouched((const unsigned char *)&s, sizeof s), "kv_stat with size 0 wrote");
}

static void check_stats(kv_db *db, int read_only)
{
    struct guarded_stats s;
    memset(&s, GUARD, sizeof s);
    int rc = kv_stat(db, &s.st);
    CHECK(rc == KV_OK, "kv_stat: %d (%s)", rc, kv_strerror(rc));
    CHECK(untouched(s.guard, sizeof s.guard), "kv_stat wrote past a kv_stats of %zu bytes",
          sizeof s.st);
    const kv_stats *st = &s.st;
    CHECK(st->keys == NKEYS - 1, "keys %llu, want %u", (unsigned long long)st->keys,
          NKEYS - 1);
    CHECK(st->puts == (read_only ? 0 : NKEYS), "puts %llu", (unsigned long long)st->puts);
    CHECK(st->gets == NKEYS + 1, "gets %llu, want %u", (unsigned long long)st->gets,
          NKEYS + 1);
    CHECK(st->deletes == (read_only ? 0 : 1), "deletes %llu",
          (unsigned long long)st->deletes);
    CHECK(st->segments >= 2, "segments %llu: segment_bytes 16 KiB was not read",
          (unsigned long long)st->segments);
    CHECK(st->live_bytes > 0 && st->disk_bytes >= st->live_bytes, "live %llu disk %llu",
          (unsigned long long)st->live_bytes, (unsigned long long)st->disk_bytes);
    CHECK(st->next_seq > NKEYS, "next_seq %llu", (unsigned long long)st->next_seq);
    CHECK(st->sync == KV_SYNC_INTERVAL, "sync %d, want KV_SYNC_INTERVAL", st->sync);
    CHECK(st->io_backend == KV_IO_PSYNC, "io_backend %d, want KV_IO_PSYNC", st->io_backend);
    CHECK(st->read_only == read_only, "read_only %d, want %d", st->read_only, read_only);
    CHECK(st->failed == 0, "failed %d", st->failed);
    CHECK(st->compacting == 0, "compacting %d", st->compacting);
    CHECK(memchr(st->io_backend_note, '\0', sizeof st->io_backend_note) != NULL,
          "io_backend_note is not a string");
}

/* Gets every key back (the deleted one absent) and one key never written. */
static void check_values(kv_db *db)
{
    char key[32], want[200];
    for (unsigned i = 0; i < NKEYS; i++) {
        void *v = NULL;
        size_t vl = 0;
        key_of(i, key, sizeof key);
        value_of(i, want, sizeof want);
        int rc = kv_get(db, key, strlen(key), &v, &vl);
        if (i == 7)
            CHECK(rc == KV_NOTFOUND, "get of deleted %s: %d", key, rc);
        else
            CHECK(rc == KV_OK && vl == sizeof want && memcmp(v, want, vl) == 0,
                  "get %s: %d, %zu bytes", key, rc, vl);
        kv_free(v);
    }
    void *v = NULL;
    size_t vl = 0;
    int rc = kv_get(db, "never", 5, &v, &vl);
    CHECK(rc == KV_NOTFOUND && v == NULL, "get of a key never written: %d", rc);
}

static kv_db *open_old(const char *dir, int read_only)
{
    struct guarded_options g;
    kv_db *db = NULL;
    memset(&g, GUARD, sizeof g);
    kv_options_init(&g.o);
    g.o.sync = KV_SYNC_INTERVAL;
    g.o.sync_interval_ms = 200;
    g.o.segment_bytes = 16384;
    g.o.io = KV_IO_PSYNC;
    g.o.auto_compact = 0;
    g.o.mmap_reads = 0;
    g.o.read_only = read_only;
    kv_options *e = exact_options(&g.o);
    int rc = kv_open(dir, e, &db);
    free(e);
    if (rc != KV_OK) {
        printf("kv-abi-old: FAIL: kv_open(%s) with a %zu-byte kv_options: %d (%s): %s\n",
               dir, sizeof(kv_options), rc, kv_strerror(rc), kv_errmsg());
        exit(1);
    }
    return db;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: kv-abi-old DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    kv_db *db = open_old(dir, 0);
    char key[32], val[200];
    for (unsigned i = 0; i < NKEYS; i++) {
        key_of(i, key, sizeof key);
        value_of(i, val, sizeof val);
        int rc = kv_put(db, key, strlen(key), val, sizeof val);
        CHECK(rc == KV_OK, "put %s: %d (%s)", key, rc, kv_strerror(rc));
    }
    key_of(7, key, sizeof key);
    CHECK(kv_delete(db, key, strlen(key)) == KV_OK, "delete %s", key);
    check_values(db);
    check_stats(db, 0);
    check_refusals(dir, db);
    CHECK(kv_close(db) == KV_OK, "kv_close");

    db = open_old(dir, 1); /* read-only: read_only and the rest read again */
    check_values(db);
    check_stats(db, 1);
    CHECK(kv_close(db) == KV_OK, "kv_close (read-only)");

    if (failures != 0)
        return 1;
    printf("kv-abi-old: ok: kv_options %zu bytes, kv_stats %zu bytes\n", sizeof(kv_options),
           sizeof(kv_stats));
    return 0;
}
