/*
 * test_repair2.c — kvcheck --repair against the two ways it could hurt a store that
 * issue 12 found (items 6 and 7), through the real binary ($KV_BIN/kvcheck).
 *
 * 1. A damaged record in a sealed segment is lost by salvage. When it was the newest
 *    record of its key — a tombstone, or a put over an older put — the older record
 *    comes back. The repair must keep the key deleted when any source says it was
 *    (the hint, the damaged entry's own key bytes) or name the key in its plan
 *    ("un-deletes", "reverts"); never bring an older value back in silence.
 * 2. A FIFO (or any file that is not a regular file) named like a store file: the
 *    repair must refuse at once, naming it, with exit status 2 — never block on it,
 *    never loop on "File exists". Every tool runs under timeout(1), so a hang fails
 *    the test instead of hanging the suite.
 *
 * The store of every test is the reproducer's (../shared/repro/tombrepair.c): a put
 * of "victim" sealed in segment 1, twenty fillers, then the newer record of victim
 * (a delete, or a put of a new value) sealed in segment 2, twenty fillers more.
 * Sections: helpers; damaged tombstones; damaged newer puts; FIFOs.
 */
#include "kvtest.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------------- */

#define OLD_VALUE "OLD-VALUE"
#define NEW_VALUE "NEW-VALUE-OF-VICTIM"

/* The reproducer's store in dir; del: victim's newer record is a delete, else a put
 * of NEW_VALUE. */
static void build_victim(const char *dir, int del)
{
    kv_options o;
    kv_db *db;
    char v[300], k[16];
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 4096);
    o.auto_compact = 0;
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    memset(v, 'o', sizeof v);
    KVT_RC_FATAL(kv_put(db, "victim", 6, OLD_VALUE, strlen(OLD_VALUE)), KV_OK);
    for (int i = 0; i < 20; i++)
        KVT_RC_FATAL(kv_put(db, k, (size_t)snprintf(k, sizeof k, "fill%02d", i), v, sizeof v),
                     KV_OK);
    if (del)
        KVT_RC_FATAL(kv_delete(db, "victim", 6), KV_OK);
    else
        KVT_RC_FATAL(kv_put(db, "victim", 6, NEW_VALUE, strlen(NEW_VALUE)), KV_OK);
    for (int i = 20; i < 40; i++)
        KVT_RC_FATAL(kv_put(db, k, (size_t)snprintf(k, sizeof k, "fill%02d", i), v, sizeof v),
                     KV_OK);
    KVT_RC_FATAL(kvt_close(db), KV_OK);
}

/* Offset of the entry of key "victim" with the given type in segment file path. */
static uint64_t victim_at(const char *path, int type)
{
    size_t len;
    uint8_t *b = kvt_slurp(path, &len);
    uint64_t at = 0;
    for (size_t i = 20; i + 6 <= len && at == 0; i++)
        if (memcmp(b + i, "victim", 6) == 0 && b[i - 20 + 12] == type && b[i - 20 + 14] == 6
            && b[i - 20 + 15] == 0)
            at = i - 20;
    free(b);
    KVT_CHECK_FATAL(at != 0, "no %s of victim in %s", type == 2 ? "delete" : "put", path);
    return at;
}

/* Sets the byte at off of path to xor'd with x. */
static void poke(const char *path, uint64_t off, uint8_t x)
{
    uint8_t c;
    int fd = open(path, O_RDWR);
    KVT_CHECK_FATAL(fd >= 0 && pread(fd, &c, 1, (off_t)off) == 1, "read %s", path);
    c ^= x;
    KVT_CHECK_FATAL(pwrite(fd, &c, 1, (off_t)off) == 1, "write %s", path);
    close(fd);
}


/* Victim's value after the repair: 0 absent, 1 OLD_VALUE, 2 NEW_VALUE, -1 other. */
static int victim_state(const char *dir)
{
    kv_options o;
    kv_db *db;
    void *v = NULL;
    size_t vlen = 0;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 0);
    o.read_only = 1;
    o.create = 0;
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    int rc = kv_get(db, "victim", 6, &v, &vlen);
    int st = rc == KV_NOTFOUND ? 0 : -1;
    if (rc == KV_OK && vlen == strlen(OLD_VALUE) && memcmp(v, OLD_VALUE, vlen) == 0)
        st = 1;
    else if (rc == KV_OK && vlen == strlen(NEW_VALUE) && memcmp(v, NEW_VALUE, vlen) == 0)
        st = 2;
    free(v);
    KVT_RC(kvt_close(db), KV_OK);
    return st;
}

/* Whether a line of out holds both a and b. */
static int line_has(const char *out, const char *a, const char *b)
{
    for (const char *l = out; l != NULL && *l; ) {
        const char *e = strchr(l, '\n');
        size_t n = e != NULL ? (size_t)(e - l) : strlen(l);
        char line[2048];
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), l);
        if (strstr(line, a) != NULL && strstr(line, b) != NULL)
            return 1;
        l = e != NULL ? e + 1 : NULL;
    }
    return 0;
}

/* ---- damaged tombstones -------------------------------------------------------------- */

/* Damages the tombstone of victim (byte rel of its entry, xor x), drops the hint of
 * its segment unless keep_hint, repairs, and returns victim's state (out: the plan). */
static int repair_tombstone(const char *dir, int keep_hint, uint64_t rel, uint8_t x, char *out,
                            size_t n)
{
    char *seg = kvt_path(dir, "000002.seg");
    build_victim(dir, 1);
    KVT_CHECK_FATAL(victim_state(dir) == 0, "victim is not deleted before the damage");
    if (!keep_hint)
        KVT_CHECK_FATAL(unlink(kvt_path(dir, "000002.hint")) == 0, "rm 000002.hint");
    poke(seg, victim_at(seg, 2) + rel, x);
    int ex = kvt_runf(out, n, KVT_STDOUT, "timeout -k 5 30 '%s/kvcheck' --repair --yes '%s' 2>&1",
                      kvt_bin(), dir);
    KVT_CHECK_FATAL(ex == 0, "kvcheck --repair exited %d:\n%s", ex, out);
    return victim_state(dir);
}

/* The rule: deleted still, or the plan says it un-deletes victim. */
static void deleted_or_told(const char *dir, int keep_hint, uint64_t rel, uint8_t x)
{
    char out[65536];
    int st = repair_tombstone(dir, keep_hint, rel, x, out, sizeof out);
    KVT_CHECK(st == 0 || (st == 1 && line_has(out, "un-delete", "\"victim\"")),
              "byte %llu of the tombstone ^0x%02x%s: victim came back (state %d) without the "
              "plan naming it:\n%s", (unsigned long long)rel, x, keep_hint ? "" : ", no hint",
              st, out);
}

/* The reproducer: one key byte flipped, no hint. */
static void test_tomb_key_byte(void)
{
    deleted_or_told(kvt_dir_new("rep-tk"), 0, 22, 0x63);
}

/* The CRC flipped, no hint: the key bytes are intact and name a key that exists, the
 * type says delete: the key stays deleted. */
static void test_tomb_crc_byte(void)
{
    char out[65536];
    int st = repair_tombstone(kvt_dir_new("rep-tc"), 0, 1, 0x40, out, sizeof out);
    KVT_CHECK(st == 0, "victim came back (state %d):\n%s", st, out);
}

/* The sequence number flipped (high byte), no hint. */
static void test_tomb_seq_byte(void)
{
    deleted_or_told(kvt_dir_new("rep-ts"), 0, 10, 0x10);
}

/* The type flipped to put, no hint (a put with no value is a sane header). */
static void test_tomb_type_byte(void)
{
    deleted_or_told(kvt_dir_new("rep-tt"), 0, 12, 0x03);
}

/* The key length zeroed, no hint: the header is not sane, nothing of the record can
 * be told; the plan must name victim among the keys that may come back. */
static void test_tomb_header(void)
{
    deleted_or_told(kvt_dir_new("rep-th"), 0, 14, 0x06);
}

/* With its hint, the tombstone is rebuilt from it whatever byte is hit. */
static void test_tomb_with_hint(void)
{
    static const uint64_t rels[] = {1, 10, 12, 14, 22};
    for (size_t i = 0; i < sizeof rels / sizeof *rels; i++) {
        char out[65536];
        char tag[32];
        snprintf(tag, sizeof tag, "rep-th%zu", i);
        int st = repair_tombstone(kvt_dir_new(tag), 1, rels[i], 0x21, out, sizeof out);
        KVT_CHECK(st == 0, "byte %llu: victim came back (state %d) though the hint holds "
                  "the tombstone:\n%s", (unsigned long long)rels[i], st, out);
    }
}

/* ---- damaged newer puts -------------------------------------------------------------- */

/* Damages the newer put of victim (byte rel of its entry), with or without its hint:
 * victim either keeps its new value or the plan says it reverts. */
static void put_reverts_told(const char *tag, int keep_hint, uint64_t rel)
{
    char out[65536];
    const char *dir = kvt_dir_new(tag);
    char *seg = kvt_path(dir, "000002.seg");
    build_victim(dir, 0);
    KVT_CHECK_FATAL(victim_state(dir) == 2, "victim does not hold its new value");
    if (!keep_hint)
        KVT_CHECK_FATAL(unlink(kvt_path(dir, "000002.hint")) == 0, "rm 000002.hint");
    poke(seg, victim_at(seg, 1) + rel, 0x5a);
    int ex = kvt_runf(out, sizeof out, KVT_STDOUT, "timeout -k 5 30 '%s/kvcheck' --repair --yes '%s' 2>&1",
                      kvt_bin(), dir);
    KVT_CHECK_FATAL(ex == 0, "kvcheck --repair exited %d:\n%s", ex, out);
    int st = victim_state(dir);
    KVT_CHECK(st == 2 || (st == 1 && line_has(out, "revert", "\"victim\"")),
              "byte %llu of the newer put%s: victim went back to its old value (state %d) "
              "without the plan naming it:\n%s", (unsigned long long)rel,
              keep_hint ? "" : ", no hint", st, out);
}

static void test_put_value_byte(void) { put_reverts_told("rep-pv", 0, 30); }
static void test_put_value_byte_hint(void) { put_reverts_told("rep-pvh", 1, 30); }
static void test_put_key_byte(void) { put_reverts_told("rep-pk", 0, 21); }
static void test_put_header(void) { put_reverts_told("rep-ph", 0, 14); }

/* ---- FIFOs --------------------------------------------------------------------------- */

/* A FIFO named `name` in a store whose segment 2 is damaged (its hint gone): the
 * repair exits 2 at once naming it, and changes nothing. */
static void fifo_refused(const char *tag, const char *name, int replace)
{
    char out[65536];
    const char *dir = kvt_dir_new(tag);
    char *seg = kvt_path(dir, "000002.seg");
    char *fifo = kvt_path(dir, name);
    build_victim(dir, 1);
    KVT_CHECK_FATAL(unlink(kvt_path(dir, "000002.hint")) == 0, "rm 000002.hint");
    poke(seg, victim_at(seg, 2) + 1, 0x40);
    if (replace)
        KVT_CHECK_FATAL(unlink(fifo) == 0, "rm %s", fifo);
    KVT_CHECK_FATAL(mkfifo(fifo, 0644) == 0, "mkfifo %s", fifo);
    uint64_t before = kvt_dir_fingerprint(dir);
    uint64_t t0 = kvt_now_ms();
    int ex = kvt_runf(out, sizeof out, KVT_STDOUT, "timeout -k 5 30 '%s/kvcheck' --repair --yes '%s' 2>&1",
                      kvt_bin(), dir);
    uint64_t ms = kvt_now_ms() - t0;
    KVT_CHECK(ex == 2, "FIFO %s: kvcheck --repair exited %d (124: hung) after %llu ms:\n%s",
              name, ex, (unsigned long long)ms, out);
    KVT_CHECK(line_has(out, name, "not a regular file"), "FIFO %s: not named:\n%s", name, out);
    KVT_CHECK(kvt_dir_fingerprint(dir) == before, "FIFO %s: the store changed", name);
    struct stat st;
    KVT_CHECK(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode), "FIFO %s: gone", name);
}

static void test_fifo_output_seg(void) { fifo_refused("rep-f1", "000005.seg", 0); }
static void test_fifo_hint_tmp(void) { fifo_refused("rep-f2", "000005.hint.tmp", 0); }
static void test_fifo_manifest_tmp(void) { fifo_refused("rep-f3", "MANIFEST.tmp", 0); }
static void test_fifo_aside(void) { fifo_refused("rep-f4", "000002.seg.damaged", 0); }
static void test_fifo_sealed(void) { fifo_refused("rep-f5", "000001.seg", 1); }
static void test_fifo_leftover(void) { fifo_refused("rep-f6", "000009.wal", 0); }

void kvt_register_repair(void)
{
    static const kvt_test tests[] = {
        {"tombstone: a key byte flipped, no hint (the reproducer)", test_tomb_key_byte},
        {"tombstone: its CRC flipped, no hint: stays deleted", test_tomb_crc_byte},
        {"tombstone: its sequence number flipped, no hint", test_tomb_seq_byte},
        {"tombstone: its type flipped to put, no hint", test_tomb_type_byte},
        {"tombstone: its header insane, no hint", test_tomb_header},
        {"tombstone: any byte, with its hint: stays deleted", test_tomb_with_hint},
        {"newer put: a value byte, no hint", test_put_value_byte},
        {"newer put: a value byte, with its hint", test_put_value_byte_hint},
        {"newer put: a key byte, no hint", test_put_key_byte},
        {"newer put: its header insane, no hint", test_put_header},
        {"FIFO named like a repair output segment", test_fifo_output_seg},
        {"FIFO named like a hint temp file", test_fifo_hint_tmp},
        {"FIFO named MANIFEST.tmp", test_fifo_manifest_tmp},
        {"FIFO named like a set-aside copy", test_fifo_aside},
        {"FIFO in place of a sealed segment", test_fifo_sealed},
        {"FIFO named like a leftover WAL file", test_fifo_leftover},
        {NULL, NULL}};
    kvt_add_suite("repair", tests);
}
