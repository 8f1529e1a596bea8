/*
 * kvdemo.c — a guided tour of the kv library API for a new user: run it as
 * `kvdemo DIR` and it says in plain words what it does to a store in DIR and what
 * it sees, and checks every result on the way.
 *
 * It creates the store, puts a few keys (one holding a NUL byte, one with an empty
 * value), reads them back, deletes one, applies an atomic batch, prints the
 * highlights of kv_stat, closes the store, reopens it and shows that the data
 * survived and the deleted key stayed deleted. The exit status is 0 only if every
 * check held; each failed check is printed, and the exit status is then 1 (2 for a
 * usage error).
 *
 * Sections:
 *   1. Checks and reporting
 *   2. The sample data and the steps of the tour
 *   3. main
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kv.h"

/* ---------------------------------------------------------------------------------
 * 1. Checks and reporting
 * ------------------------------------------------------------------------------ */
static int failures; /* checks that did not hold so far */

/* Records the outcome of one check, printing it only when it failed. */
static int check(int ok, const char *what)
{
    if (!ok) {
        failures++;
        printf("  FAILED: %s\n", what);
    }
    return ok;
}

/* Checks a library status; on failure prints the status and kv_errmsg. */
static int check_rc(int rc, int want, const char *what)
{
    if (rc == want)
        return 1;
    char detail[512];
    snprintf(detail, sizeof detail, "%s", kv_errmsg());
    failures++;
    printf("  FAILED: %s: got %d (%s)%s%s\n", what, rc, kv_strerror(rc),
           detail[0] ? ": " : "", detail);
    return 0;
}

/* Prints a key or value readably: printable ASCII as is, other bytes as \xHH. */
static void show(const void *p, size_t len)
{
    const unsigned char *b = p;

    putchar('"');
    for (size_t i = 0; i < len; i++) {
        if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '"' && b[i] != '\\')
            putchar(b[i]);
        else
            printf("\\x%02x", b[i]);
    }
    putchar('"');
}

/* ---------------------------------------------------------------------------------
 * 2. The sample data and the steps of the tour
 * ------------------------------------------------------------------------------ */

/* A key-value pair of the tour; lengths are explicit because of the NUL key. */
struct pair {
    const char *key;   /* key bytes */
    size_t klen;       /* key length, NUL bytes included */
    const char *val;   /* value bytes */
    size_t vlen;       /* value length; 0 for the empty value */
};

#define PAIR(k, v) {k, sizeof k - 1, v, sizeof v - 1}

static const struct pair singles[] = {
    PAIR("fruit", "apple"),
    PAIR("colour", "green"),
    PAIR("nul\0key", "a key with a NUL byte inside"),
    PAIR("empty", ""),
    PAIR("scratch", "this one will be deleted"),
};
static const struct pair deleted = PAIR("scratch", "");

/* What the store holds after the batch: the batch overwrites "fruit", adds
 * "vegetable" and "grain", and deletes "grain" again (later operations win). */
static const struct pair final_state[] = {
    PAIR("fruit", "pear"),
    PAIR("colour", "green"),
    PAIR("nul\0key", "a key with a NUL byte inside"),
    PAIR("empty", ""),
    PAIR("vegetable", "leek"),
};
static const struct pair batch_deleted = PAIR("grain", "");

/* Gets p->key and checks that the value is p->val, byte for byte. */
static void expect_value(kv_db *db, const struct pair *p)
{
    void *val = NULL;
    size_t vlen = 0;
    int rc = kv_get(db, p->key, p->klen, &val, &vlen);

    printf("  get ");
    show(p->key, p->klen);
    if (rc == KV_OK) {
        printf(" -> ");
        show(val, vlen);
        printf(" (%zu bytes)\n", vlen);
        if (!check(val != NULL && vlen == p->vlen && memcmp(val, p->val, vlen) == 0,
                   "the value read back differs from the value expected")) {
            printf("          expected ");
            show(p->val, p->vlen);
            printf("\n");
        }
    } else {
        printf("\n");
        check_rc(rc, KV_OK, "kv_get");
    }
    kv_free(val);
}

/* Gets p->key and checks that it is absent. */
static void expect_absent(kv_db *db, const struct pair *p)
{
    void *val = NULL;
    size_t vlen = 0;
    int rc = kv_get(db, p->key, p->klen, &val, &vlen);

    printf("  get ");
    show(p->key, p->klen);
    printf(" -> %s\n", rc == KV_NOTFOUND ? "not found, as expected" : "present!");
    check_rc(rc, KV_NOTFOUND, "a deleted key must stay deleted");
    kv_free(val);
}

/* Puts every single pair, reads each back, then deletes "scratch". */
static void step_singles(kv_db *db)
{
    printf("Putting %zu keys, one of them with a NUL byte, one with an empty value:\n",
           sizeof singles / sizeof singles[0]);
    for (size_t i = 0; i < sizeof singles / sizeof singles[0]; i++) {
        const struct pair *p = &singles[i];
        printf("  put ");
        show(p->key, p->klen);
        printf(" = ");
        show(p->val, p->vlen);
        printf("\n");
        check_rc(kv_put(db, p->key, p->klen, p->val, p->vlen), KV_OK, "kv_put");
    }
    printf("Reading them back:\n");
    for (size_t i = 0; i < sizeof singles / sizeof singles[0]; i++)
        expect_value(db, &singles[i]);
    printf("Deleting \"scratch\", then deleting it again (the second time finds "
           "nothing):\n");
    check_rc(kv_delete(db, deleted.key, deleted.klen), KV_OK, "kv_delete");
    check_rc(kv_delete(db, deleted.key, deleted.klen), KV_NOTFOUND,
             "a second kv_delete of the same key");
    expect_absent(db, &deleted);
}

/* Applies one batch: overwrite, add, add-then-delete, all or nothing. */
static void step_batch(kv_db *db)
{
    kv_batch *b = kv_batch_new();

    printf("Applying an atomic batch: fruit = \"pear\", vegetable = \"leek\", "
           "grain = \"rye\", then delete grain:\n");
    if (!check(b != NULL, "kv_batch_new returned NULL (out of memory)"))
        return;
    check_rc(kv_batch_put(b, "fruit", 5, "pear", 4), KV_OK, "kv_batch_put");
    check_rc(kv_batch_put(b, "vegetable", 9, "leek", 4), KV_OK, "kv_batch_put");
    check_rc(kv_batch_put(b, "grain", 5, "rye", 3), KV_OK, "kv_batch_put");
    check_rc(kv_batch_delete(b, "grain", 5), KV_OK, "kv_batch_delete");
    printf("  the batch holds %zu operations\n", kv_batch_count(b));
    check(kv_batch_count(b) == 4, "kv_batch_count should be 4");
    check_rc(kv_write(db, b), KV_OK, "kv_write");
    kv_batch_free(b);
}

/* Reads every key of the final state and checks the deleted ones are gone. */
static void step_verify(kv_db *db)
{
    for (size_t i = 0; i < sizeof final_state / sizeof final_state[0]; i++)
        expect_value(db, &final_state[i]);
    expect_absent(db, &deleted);
    expect_absent(db, &batch_deleted);
}

/* Prints the highlights of kv_stat and checks the key count. */
static void step_stats(kv_db *db)
{
    kv_stats st;
    uint64_t want = sizeof final_state / sizeof final_state[0];

    if (!check_rc(kv_stat(db, &st), KV_OK, "kv_stat"))
        return;
    printf("Statistics: %" PRIu64 " live keys, io backend %s%s%s%s, "
           "sync mode %s\n", st.keys,
           st.io_backend == KV_IO_URING ? "io_uring" : "pwrite/fdatasync",
           st.io_backend_note[0] ? " (" : "", st.io_backend_note,
           st.io_backend_note[0] ? ")" : "",
           st.sync == KV_SYNC_ALWAYS ? "always" : "not always");
    printf("  last recovery: %" PRIu64 " us, %" PRIu64 " records read, %" PRIu64
           " WAL records replayed, %" PRIu64 " torn bytes cut\n", st.recovery_us,
           st.recovery_records, st.recovery_wal_replayed, st.recovery_cut_bytes);
    printf("  %" PRIu64 " bytes on disk in %" PRIu64 " segment(s), %" PRIu64
           " WAL syncs so far\n", st.disk_bytes, st.segments, st.wal_syncs);
    check(st.keys == want, "kv_stat should count exactly the live keys");
    check(st.failed == 0, "the handle should not be failed");
}

/* Opens dir (creating the store when create is set); NULL after a failed check. */
static kv_db *open_store(const char *dir, int create)
{
    kv_options opts;
    kv_db *db = NULL;

    kv_options_init(&opts);
    opts.create = create;
    printf("%s the store in %s\n", create ? "Creating" : "Reopening", dir);
    if (!check_rc(kv_open(dir, &opts, &db), KV_OK, "kv_open"))
        return NULL;
    return db;
}

/* ---------------------------------------------------------------------------------
 * 3. main
 * ------------------------------------------------------------------------------ */
int main(int argc, char **argv)
{
    kv_db *db;

    if (argc != 2) {
        fprintf(stderr, "usage: kvdemo DIR   (DIR: an empty or missing directory)\n");
        return 2;
    }
    printf("kvdemo: library version %s\n", kv_version());
    if ((db = open_store(argv[1], 1)) != NULL) {
        step_singles(db);
        step_batch(db);
        printf("After the batch:\n");
        step_verify(db);
        step_stats(db);
        printf("Closing the store.\n");
        check_rc(kv_close(db), KV_OK, "kv_close");
    }
    if (failures == 0 && (db = open_store(argv[1], 0)) != NULL) {
        printf("After reopening, the data is still there:\n");
        step_verify(db);
        step_stats(db);
        check_rc(kv_close(db), KV_OK, "kv_close");
    }
    if (failures != 0) {
        printf("kvdemo: %d check(s) failed\n", failures);
        return 1;
    }
    printf("kvdemo: every check held\n");
    return 0;
}
