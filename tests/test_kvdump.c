/*
 * test_kvdump.c — kvdump, kv load, kv scan and kv stats --json, run as programs
 * (KV_BIN names their directory, as for the kvcompact tests).
 *
 * What is checked:
 *   - dump -> load -> dump gives the same text, in both formats, with binary keys and
 *     values (NUL, newline, tab, CR, backslash, '=', bytes 0x80..0xff, an empty value,
 *     a KV_MAX_KEY-byte key, keys that read like the dump's own markers, a large
 *     value, LZ4-compressed values), and the loaded store holds exactly those values;
 *   - the dump is the store's live state and nothing else, in one order whatever the
 *     store's history (overwrites, deletes, compaction, insertion order);
 *   - kv load of bad input (truncated, bad escapes, odd hex, missing markers, a newer
 *     VERSION, a key without its value, a key too long, keys out of order, ...):
 *     exit 2, the line named, and no store created or changed (every file's bytes
 *     compared before and after); kv load into a store holding keys, with and
 *     without --overwrite / --no-overwrite;
 *   - kvdump on paths that are no store: exit 2 naming the path, nothing created;
 *     on a store a writer of this process holds: it works and changes nothing; on a
 *     damaged record: exit 3 naming file and offset, and a dump kv load refuses;
 *   - --keys-only, --prefix, kv scan --prefix, kv stats --json (parsed: every field,
 *     values equal to kv_stat's);
 *   - kvdump --all and kvdump FILE: every record of every file (each sequence number
 *     once across the segments), tombstones and dead records, live ones agreeing
 *     with the store, hint and MANIFEST contents, damage (a flipped byte) listed
 *     with its offset, --json lines that jansson parses strictly, the writer lock's holder; files that
 *     are no kv file or of a newer version refused (exit 2); nothing modified.
 *
 * Sections:
 *   1. Helpers: running a tool, files
 *   2. Round trips
 *   3. Bad input to kv load
 *   4. kvdump on bad paths and beside a writer
 *   5. Keys only, prefixes, scan, stats --json
 *   6. The forensic listing: --all and FILE
 */
#include "kvtest.h"

#include "base/crc.h"
#include "format/format.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------
 * 1. Helpers
 * ------------------------------------------------------------------------------ */

/* The whole file at path (malloc'd; *len its size), or NULL when it cannot be read. */
static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0, r;
    if (f == NULL)
        return NULL;
    do {
        uint8_t *nb = grow(buf, &cap, n + 1, 1, 65536, 0);
        if (nb == NULL)
            free(buf);
        KVT_CHECK_FATAL(nb != NULL, "out of memory reading %s", path);
        buf = nb;
        r = fread(buf + n, 1, cap - n, f);
        n += r;
    } while (r > 0);
    fclose(f);
    *len = n;
    return buf;
}

/* Writes n bytes to path (replacing it). */
static void spit(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    KVT_CHECK_FATAL(f != NULL, "cannot create %s", path);
    KVT_CHECK_FATAL(fwrite(p, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

/* 1 when the two files hold the same bytes. */
static int same_file(const char *a, const char *b)
{
    size_t la, lb;
    uint8_t *pa = slurp(a, &la), *pb = slurp(b, &lb);
    int same = pa != NULL && pb != NULL && la == lb && memcmp(pa, pb, la) == 0;
    free(pa);
    free(pb);
    return same;
}

/* 1 when the file at path contains the text s. */
static int file_has(const char *path, const char *s)
{
    size_t n;
    uint8_t *p = slurp(path, &n);
    int has = p != NULL && memmem(p, n, s, strlen(s)) != NULL;
    free(p);
    return has;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---------------------------------------------------------------------------------
 * 2. Round trips
 * ------------------------------------------------------------------------------ */

/* One key and value of a test store. */
typedef struct pair {
    uint8_t *k, *v;  /* malloc'd */
    size_t kl, vl;
} pair;

typedef struct pairs {
    pair p[64];
    int n;
} pairs;

static void add_pair(pairs *ps, const void *k, size_t kl, const void *v, size_t vl)
{
    KVT_CHECK_FATAL(ps->n < 64, "too many pairs");
    pair *p = &ps->p[ps->n++];
    p->k = malloc(kl);
    p->v = malloc(vl ? vl : 1);
    KVT_CHECK_FATAL(p->k != NULL && p->v != NULL, "out of memory");
    memcpy(p->k, k, kl);
    if (vl)
        memcpy(p->v, v, vl);
    p->kl = kl, p->vl = vl;
}

#define ADD_LIT(ps, k, v) add_pair((ps), (k), sizeof(k) - 1, (v), sizeof(v) - 1)

static void free_pairs(pairs *ps)
{
    for (int i = 0; i < ps->n; i++) {
        free(ps->p[i].k);
        free(ps->p[i].v);
    }
    ps->n = 0;
}

/* The binary pairs every round trip stores: keys and values made of the bytes a
 * text format finds hard, a KV_MAX_KEY-byte key, a large incompressible value and
 * compressible ones (stored LZ4-compressed when the store compresses). */
static void binary_pairs(pairs *ps)
{
    uint8_t all[256], maxkey[KV_MAX_KEY];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    for (size_t i = 0; i < sizeof maxkey; i++)
        maxkey[i] = (uint8_t)(i * 7 + 1);
    ADD_LIT(ps, "a", "1");
    ADD_LIT(ps, "\0", "nul key");
    ADD_LIT(ps, "k\0ey", "v\0al\0");
    ADD_LIT(ps, "line\nbreak", "val\nue\n");
    ADD_LIT(ps, "back\\slash", "\\\\");
    ADD_LIT(ps, "\\x41", "\\x");
    ADD_LIT(ps, "eq=uals", "==");
    ADD_LIT(ps, "DATA=END", "HEADER=END");
    ADD_LIT(ps, "VERSION=1", "DATA=END");
    ADD_LIT(ps, " ", " lead and trail ");
    ADD_LIT(ps, "tab\tkey", "\t");
    ADD_LIT(ps, "cr\r", "\r\n");
    ADD_LIT(ps, "\x80\xff\xfe", "\x7f\x80");
    add_pair(ps, "all bytes", 9, all, sizeof all);
    add_pair(ps, all + 128, 128, all, 128);
    ADD_LIT(ps, "empty", "");
    add_pair(ps, maxkey, sizeof maxkey, "max", 3);
    size_t big = 3u << 20;
    uint8_t *v = malloc(big);
    KVT_CHECK_FATAL(v != NULL, "out of memory");
    kvt_rng rng;
    kvt_rng_seed(&rng, 42);
    kvt_rng_fill(&rng, v, big);
    add_pair(ps, "large", 5, v, big);
    for (size_t i = 0; i < 100000; i++)
        v[i] = (uint8_t)"compressible text, "[i % 19];
    add_pair(ps, "lz4-a", 5, v, 100000);
    memset(v, 'z', 200);
    add_pair(ps, "lz4-b", 5, v, 200);
    add_pair(ps, "lz4-c\n\0", 7, v, 64);
    free(v);
}

/* Opens dir for writing (created), with or without compression. */
static kv_db *open_store(const char *dir, int compression, uint64_t segment_bytes)
{
    kv_options o;
    kv_db *db = NULL;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, segment_bytes);
    o.compression = compression;
    int rc = kvt_open(dir, &o, &db);
    KVT_CHECK_FATAL(rc == KV_OK, "kv_open %s: %s: %s", dir, kv_strerror(rc), kv_errmsg());
    return db;
}

static kv_db *open_read_only(const char *dir)
{
    kv_options o;
    kv_db *db = NULL;
    kv_options_init(&o);
    o.create = 0;
    o.read_only = 1;
    int rc = kvt_open(dir, &o, &db);
    KVT_CHECK_FATAL(rc == KV_OK, "kv_open %s read-only: %s: %s", dir, kv_strerror(rc),
                    kv_errmsg());
    return db;
}

static void put_pairs(const char *dir, const pairs *ps, int compression)
{
    kv_db *db = open_store(dir, compression, 0);
    for (int i = 0; i < ps->n; i++)
        KVT_RC_FATAL(kv_put(db, ps->p[i].k, ps->p[i].kl, ps->p[i].v, ps->p[i].vl), KV_OK);
    KVT_RC_FATAL(kvt_close(db), KV_OK);
}

/* The store in dir holds exactly the pairs of ps. */
static void check_pairs(const char *dir, const pairs *ps)
{
    kv_db *db = open_read_only(dir);
    kv_stats st;
    KVT_RC(kv_stat(db, &st), KV_OK);
    KVT_CHECK(st.keys == (uint64_t)ps->n, "%s holds %llu keys, expected %d", dir,
              (unsigned long long)st.keys, ps->n);
    for (int i = 0; i < ps->n; i++)
        KVT_ASSERT_VALUE(db, ps->p[i].k, ps->p[i].kl, ps->p[i].v, ps->p[i].vl);
    KVT_RC(kvt_close(db), KV_OK);
}

/* kvdump [opt] src > out; exit 0 expected. */
static void dump_to(const char *opt, const char *src, const char *out)
{
    char msg[2048];
    int rc = kvt_runf(msg, sizeof msg, KVT_BOTH, "'%s/kvdump' %s '%s' > '%s'", kvt_bin(), opt, src, out);
    KVT_CHECK_FATAL(rc == 0, "kvdump %s %s: exit %d: %s", opt, src, rc, msg);
}

/* kv -d dst load < in; exit 0 expected. */
static void load_from(const char *dst, const char *in)
{
    char msg[2048];
    int rc = kvt_runf(msg, sizeof msg, KVT_BOTH, "'%s/kv' -d '%s' load < '%s'", kvt_bin(), dst, in);
    KVT_CHECK_FATAL(rc == 0, "kv -d %s load < %s: exit %d: %s", dst, in, rc, msg);
}

/* dump src, load it into a new store, dump that: the two dumps are the same bytes,
 * and the new store holds the pairs. Both formats. */
static void roundtrip(const char *src, const pairs *ps, const char *expect_header)
{
    char *work = kvt_dir_new("dump-work");
    const char *opts[] = {"", "-p"};
    for (int f = 0; f < 2; f++) {
        char *d1 = kvt_path(work, f ? "d1-print" : "d1-hex");
        char *d2 = kvt_path(work, f ? "d2-print" : "d2-hex");
        char *dst = kvt_path(work, f ? "store-print" : "store-hex");
        dump_to(opts[f], src, d1);
        KVT_CHECK(file_has(d1, f ? "VERSION=1\nformat=print\n" : "VERSION=1\nformat=bytevalue\n")
                  && file_has(d1, expect_header), "dump %s lacks \"%s\"", d1, expect_header);
        load_from(dst, d1);
        dump_to(opts[f], dst, d2);
        KVT_CHECK(same_file(d1, d2), "dump -> load -> dump differs (%s vs %s)", d1, d2);
        check_pairs(dst, ps);
    }
}

static void test_roundtrip_binary(void)
{
    static pairs ps;
    binary_pairs(&ps);
    char *plain = kvt_dir_new("dump-plain");
    put_pairs(plain, &ps, KV_COMPRESS_NONE);
    roundtrip(plain, &ps, "\ncompression=none\ncontent=pairs\nkeys=21\nHEADER=END\n");
    char *lz4 = kvt_dir_new("dump-lz4");
    put_pairs(lz4, &ps, KV_COMPRESS_LZ4);
    roundtrip(lz4, &ps, "compression=lz4\n");
    free_pairs(&ps);
}

/* The same contents reached two ways: one store with a history (overwrites,
 * deletes, keys deleted and put again, segments rolled and compacted, a reopen),
 * one written straight in reverse order. Their dumps are the same text, holding the
 * live state only. */
static void test_roundtrip_history(void)
{
    char *a = kvt_dir_new("dump-history"), *b = kvt_dir_new("dump-straight");
    char *work = kvt_dir_new("dump-history-work");
    unsigned n = kvt_scaled(600, 200);
    char k[32], v[64];

    kv_db *db = open_store(a, KV_COMPRESS_NONE, 4096);
    for (unsigned round = 0; round < 3; round++)
        for (unsigned i = 0; i < n; i++) {
            snprintf(k, sizeof k, "key%05u", i);
            snprintf(v, sizeof v, "value %u of %u", round, i);
            KVT_RC_FATAL(kv_put(db, k, strlen(k), v, strlen(v)), KV_OK);
        }
    for (unsigned i = 0; i < n; i += 3) {
        snprintf(k, sizeof k, "key%05u", i);
        KVT_RC_FATAL(kv_delete(db, k, strlen(k)), KV_OK);
    }
    KVT_RC_FATAL(kv_compact(db), KV_OK);
    for (unsigned i = 0; i < n; i += 9) { /* deleted, now back */
        snprintf(k, sizeof k, "key%05u", i);
        KVT_RC_FATAL(kv_put(db, k, strlen(k), "again", 5), KV_OK);
    }
    KVT_RC_FATAL(kvt_close(db), KV_OK);

    db = open_store(b, KV_COMPRESS_NONE, 0);
    unsigned live = 0;
    for (unsigned j = n; j-- > 0;) {
        snprintf(k, sizeof k, "key%05u", j);
        if (j % 9 == 0)
            KVT_RC_FATAL(kv_put(db, k, strlen(k), "again", 5), KV_OK);
        else if (j % 3 != 0) {
            snprintf(v, sizeof v, "value 2 of %u", j);
            KVT_RC_FATAL(kv_put(db, k, strlen(k), v, strlen(v)), KV_OK);
        } else
            continue;
        live++;
    }
    KVT_RC_FATAL(kvt_close(db), KV_OK);

    const char *opts[] = {"", "-p"};
    for (int f = 0; f < 2; f++) {
        char *da = kvt_path(work, f ? "a-print" : "a-hex");
        char *db_ = kvt_path(work, f ? "b-print" : "b-hex");
        dump_to(opts[f], a, da);
        dump_to(opts[f], b, db_);
        KVT_CHECK(same_file(da, db_), "the same contents dump differently (%s, %s)", da, db_);
        char want[64];
        snprintf(want, sizeof want, "keys=%u\n", live);
        KVT_CHECK(file_has(da, want), "%s lacks %s", da, want);
    }
    char *again = kvt_path(work, "a-print-again"), *first = kvt_path(work, "a-print");
    dump_to("-p", a, again);
    KVT_CHECK(same_file(first, again), "two dumps of one store differ");
    KVT_CHECK(!file_has(first, "value 0 of") && !file_has(first, "value 1 of"),
              "the dump holds overwritten values");
    kvt_note("%u live keys of %u after 3 rounds, deletes and a compaction", live, n);
}

/* kv load reads from a pipe (spooled) and from -f FILE as from a redirected file;
 * --compression beats the dump's compression= line. */
static void test_load_inputs(void)
{
    char *work = kvt_dir_new("dump-inputs");
    char *src = kvt_path(work, "src"), *d = kvt_path(work, "dump");
    char out[2048];
    static pairs ps;
    binary_pairs(&ps);
    put_pairs(src, &ps, KV_COMPRESS_LZ4);
    dump_to("-p", src, d);

    char *piped = kvt_path(work, "piped"), *dp = kvt_path(work, "dump-piped");
    int rc = kvt_runf(out, sizeof out, KVT_BOTH, "cat '%s' | '%s/kv' -d '%s' load", d, kvt_bin(), piped);
    KVT_CHECK(rc == 0, "load from a pipe: exit %d: %s", rc, out);
    dump_to("-p", piped, dp);
    KVT_CHECK(same_file(d, dp), "load from a pipe: the dumps differ");

    char *fromf = kvt_path(work, "fromf"), *df = kvt_path(work, "dump-f");
    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kv' -d '%s' load -f '%s' < /dev/null", kvt_bin(), fromf, d);
    KVT_CHECK(rc == 0 && strstr(out, "21 written") != NULL, "load -f: exit %d: %s", rc, out);
    dump_to("-p", fromf, df);
    KVT_CHECK(same_file(d, df), "load -f: the dumps differ");

    char *plain = kvt_path(work, "plain"), *dn = kvt_path(work, "dump-plain");
    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kv' -d '%s' --compression none load < '%s'", kvt_bin(), plain, d);
    KVT_CHECK(rc == 0, "load --compression none: exit %d: %s", rc, out);
    dump_to("-p", plain, dn);
    KVT_CHECK(file_has(dn, "compression=none\n") && file_has(d, "compression=lz4\n"),
              "--compression none did not beat compression=lz4");
    check_pairs(plain, &ps);

    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kv' -d '%s' load -f '%s/missing'", kvt_bin(),
             kvt_path(work, "never"), work);
    KVT_CHECK(rc == 3 && strstr(out, "missing") != NULL, "load -f missing: exit %d: %s", rc, out);
    KVT_CHECK(!exists(kvt_path(work, "never")), "load of a missing file created the store");
    free_pairs(&ps);
}

/* Loading into a store that holds keys: refused without an option (nothing
 * changed); --overwrite lets the dump win; --no-overwrite keeps the store's. */
static void test_load_into_nonempty(void)
{
    char *work = kvt_dir_new("dump-nonempty");
    char *src = kvt_path(work, "src"), *dst = kvt_path(work, "dst"), *d = kvt_path(work, "d");
    char out[2048];

    kv_db *db = open_store(src, KV_COMPRESS_NONE, 0);
    KVT_RC(kvt_put_str(db, "a", "from dump"), KV_OK);
    KVT_RC(kvt_put_str(db, "b", "from dump"), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);
    dump_to("-p", src, d);
    db = open_store(dst, KV_COMPRESS_NONE, 0);
    KVT_RC(kvt_put_str(db, "a", "from store"), KV_OK);
    KVT_RC(kvt_put_str(db, "c", "from store"), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);

    uint64_t fp = kvt_dir_fingerprint(dst);
    int rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kv' -d '%s' load < '%s'", kvt_bin(), dst, d);
    KVT_CHECK(rc == 2 && strstr(out, "already holds 2 keys") != NULL
              && strstr(out, "--overwrite") != NULL, "load into a non-empty store: exit %d: %s",
              rc, out);
    KVT_CHECK(kvt_dir_fingerprint(dst) == fp, "a refused load changed the store");

    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kv' -d '%s' load --no-overwrite < '%s'", kvt_bin(), dst, d);
    KVT_CHECK(rc == 0 && strstr(out, "1 written, 1 kept") != NULL, "--no-overwrite: exit %d: %s",
              rc, out);
    db = open_read_only(dst);
    KVT_ASSERT_VALUE(db, "a", 1, "from store", 10);
    KVT_ASSERT_VALUE(db, "b", 1, "from dump", 9);
    KVT_ASSERT_VALUE(db, "c", 1, "from store", 10);
    KVT_RC(kvt_close(db), KV_OK);

    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kv' -d '%s' load --overwrite < '%s'", kvt_bin(), dst, d);
    KVT_CHECK(rc == 0 && strstr(out, "2 written, 0 kept") != NULL, "--overwrite: exit %d: %s",
              rc, out);
    db = open_read_only(dst);
    KVT_ASSERT_VALUE(db, "a", 1, "from dump", 9);
    KVT_ASSERT_VALUE(db, "b", 1, "from dump", 9);
    KVT_ASSERT_VALUE(db, "c", 1, "from store", 10);
    KVT_RC(kvt_close(db), KV_OK);

    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kv' -d '%s' load --overwrite --no-overwrite < '%s'", kvt_bin(),
             dst, d);
    KVT_CHECK(rc == 2, "--overwrite with --no-overwrite: exit %d: %s", rc, out);
}

/* ---------------------------------------------------------------------------------
 * 3. Bad input to kv load
 * ------------------------------------------------------------------------------ */

/* One bad dump: its text, the line kv load must name and a word of its message. */
typedef struct bad_input {
    const char *what;
    const char *text;
    int line;          /* 0: the message names no line (the dump is valid but unloadable) */
    const char *msg;
} bad_input;

#define HDR_P "VERSION=1\nformat=print\nHEADER=END\n"
#define HDR_X "VERSION=1\nformat=bytevalue\nHEADER=END\n"

static const bad_input bad_inputs[] = {
    {"empty input", "", 1, "empty input"},
    {"not a dump", "hello\n", 1, "not a kvdump dump"},
    {"newer VERSION", "VERSION=2\nformat=print\nHEADER=END\nDATA=END\n", 1, "newer kvdump"},
    {"VERSION=0", "VERSION=0\nformat=print\nHEADER=END\nDATA=END\n", 1, "bad version"},
    {"no format= line", "VERSION=1\nHEADER=END\nDATA=END\n", 2, "no format= line"},
    {"unknown header field", "VERSION=1\nformat=print\ncolour=blue\nHEADER=END\nDATA=END\n", 3,
     "unknown header field"},
    {"bad format", "VERSION=1\nformat=base64\nHEADER=END\nDATA=END\n", 2, "bytevalue or print"},
    {"format twice", "VERSION=1\nformat=print\nformat=print\nHEADER=END\nDATA=END\n", 3, "twice"},
    {"missing HEADER=END", "VERSION=1\nformat=print\n a\n 1\nDATA=END\n", 3,
     "data before HEADER=END"},
    {"header cut short", "VERSION=1\nformat=print\n", 3, "before HEADER=END"},
    {"missing DATA=END", HDR_P " a\n 1\n", 6, "ends before DATA=END"},
    {"cut inside a value line", HDR_P " a\n 1", 5, "no newline"},
    {"cut inside a key line", HDR_P " a\n 1\n b", 6, "no newline"},
    {"key line without its value line", HDR_P " a\nDATA=END\n", 5, "value of the key on line 4"},
    {"bad escape", HDR_P " a\\q\n 1\nDATA=END\n", 4, "bad escape"},
    {"escape cut short", HDR_P " a\\x4\n 1\nDATA=END\n", 4, "cut short"},
    {"bad hex in an escape", HDR_P " a\\x4g\n 1\nDATA=END\n", 4, "two hex digits"},
    {"unescaped tab", HDR_P " a\tb\n 1\nDATA=END\n", 4, "must be escaped"},
    {"unescaped byte 0xff", HDR_P " a\n \xff\nDATA=END\n", 5, "must be escaped"},
    {"CR line ending", HDR_P " a\r\n 1\r\nDATA=END\n", 4, "must be escaped"},
    {"odd hex", HDR_X " 616\n 31\nDATA=END\n", 4, "odd number of hex digits"},
    {"not hex", HDR_X " 61\n 3z\nDATA=END\n", 5, "not a hex digit"},
    {"empty key", HDR_P " \n 1\nDATA=END\n", 4, "empty key"},
    {"no leading space", HDR_P "a\n 1\nDATA=END\n", 4, "starting with a space"},
    {"keys out of order", HDR_P " b\n 1\n a\n 2\nDATA=END\n", 6, "sorts before the key on line 4"},
    {"key repeated", HDR_P " a\n 1\n a\n 2\nDATA=END\n", 6, "repeats the key on line 4"},
    {"fewer keys than keys=", "VERSION=1\nformat=print\nkeys=2\nHEADER=END\n a\n 1\nDATA=END\n", 7,
     "keys=2 but 1"},
    {"more keys than keys=", "VERSION=1\nformat=print\nkeys=1\nHEADER=END\n a\n 1\n b\n 2\n"
     "DATA=END\n", 7, "more keys than"},
    {"text after DATA=END", HDR_P " a\n 1\nDATA=END\n a\n", 7, "after DATA=END"},
    {"key outside prefix=", "VERSION=1\nformat=print\nprefix=p\nHEADER=END\n a\n 1\nDATA=END\n", 5,
     "prefix"},
    {"a --keys-only dump", "VERSION=1\nformat=print\ncontent=keys\nHEADER=END\n a\nDATA=END\n", 0,
     "holds no values"},
};

/* A dump whose one key is KV_MAX_KEY + 1 bytes (malloc'd text). */
static char *key_too_long(void)
{
    size_t n = strlen(HDR_X) + 2 + 2 * ((size_t)KV_MAX_KEY + 1) + 32;
    char *t = malloc(n);
    KVT_CHECK_FATAL(t != NULL, "out of memory");
    char *p = t + sprintf(t, "%s ", HDR_X);
    for (size_t i = 0; i <= KV_MAX_KEY; i++)
        p += sprintf(p, "6b");
    strcpy(p, "\n 31\nDATA=END\n");
    return t;
}

/* Loads text into a new store (it must not be created) and into one holding keys
 * with --overwrite (it must not change): exit 2, "line N:" and the message. */
static void check_bad_load(const char *work, const char *held, const char *what,
                           const char *text, size_t len, int line, const char *msg, int pipe)
{
    char *in = kvt_path(work, "bad-input"), *fresh = kvt_path(work, "fresh");
    char out[4096], want[64];
    spit(in, text, len);
    snprintf(want, sizeof want, "line %d: ", line);
    uint64_t fp = kvt_dir_fingerprint(held);
    for (int i = 0; i < 2; i++) {
        const char *dir = i ? held : fresh;
        int rc = pipe ? kvt_runf(out, sizeof out, KVT_BOTH, "cat '%s' | '%s/kv' -d '%s' load --overwrite", in,
                            kvt_bin(), dir)
                      : kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kv' -d '%s' load --overwrite < '%s'", kvt_bin(), dir,
                            in);
        KVT_CHECK(rc == 2, "%s: exit %d, expected 2: %s", what, rc, out);
        KVT_CHECK(strstr(out, msg) != NULL && (line == 0 || strstr(out, want) != NULL)
                  && strncmp(out, "kv: <stdin>: ", 13) == 0,
                  "%s: message \"%s\" lacks \"kv: <stdin>: %s%s\"", what, out, line ? want : "",
                  msg);
    }
    KVT_CHECK(!exists(fresh), "%s: a refused load created the store", what);
    KVT_CHECK(kvt_dir_fingerprint(held) == fp, "%s: a refused load changed the store", what);
}

static void test_load_bad_input(void)
{
    char *work = kvt_dir_new("dump-bad");
    char *held = kvt_path(work, "held");
    kv_db *db = open_store(held, KV_COMPRESS_NONE, 0);
    KVT_RC(kvt_put_str(db, "a", "kept"), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);

    for (size_t i = 0; i < sizeof bad_inputs / sizeof bad_inputs[0]; i++) {
        const bad_input *b = &bad_inputs[i];
        check_bad_load(work, held, b->what, b->text, strlen(b->text), b->line, b->msg,
                       i % 4 == 0);
    }
    /* a NUL in a header line */
    static const char nul[] = "VERSION=1\nformat=pr\0int\nHEADER=END\nDATA=END\n";
    check_bad_load(work, held, "NUL in the header", nul, sizeof nul - 1, 2, "not a header line",
                   0);
    char *t = key_too_long();
    check_bad_load(work, held, "key too long", t, strlen(t), 4, "key longer than 65535", 0);
    check_bad_load(work, held, "key too long (pipe)", t, strlen(t), 4, "key longer than", 1);
    free(t);
    db = open_read_only(held);
    KVT_ASSERT_VALUE(db, "a", 1, "kept", 4);
    KVT_RC(kvt_close(db), KV_OK);
    kvt_note("%zu bad inputs: exit 2, the line named, no store changed or created",
             sizeof bad_inputs / sizeof bad_inputs[0] + 3);
}

/* ---------------------------------------------------------------------------------
 * 4. kvdump on bad paths and beside a writer
 * ------------------------------------------------------------------------------ */
static void test_kvdump_bad_paths(void)
{
    char *work = kvt_dir_new("dump-paths");
    char *plain = kvt_path(work, "plain"), *empty = kvt_path(work, "empty");
    char *other = kvt_path(work, "other");
    char out[4096];
    spit(plain, "not a store\n", 12);
    KVT_CHECK_FATAL(mkdir(empty, 0755) == 0 && mkdir(other, 0755) == 0, "mkdir");
    spit(kvt_path(other, "notes.txt"), "someone else's\n", 15);
    spit(kvt_path(other, "MANIFEST.bak"), "x", 1);
    const char *paths[] = {"/nonexistent/kvdump-store", plain, empty, other};
    uint64_t fp = kvt_dir_fingerprint(work), fo = kvt_dir_fingerprint(other);
    int n = kvt_dir_count(work);
    for (int i = 0; i < 4; i++) {
        int rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump' '%s'", kvt_bin(), paths[i]);
        KVT_CHECK(rc == 2 && strstr(out, paths[i]) != NULL && strncmp(out, "kvdump: ", 8) == 0,
                  "kvdump %s: exit %d: %s", paths[i], rc, out);
        rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump' -p -d '%s'", kvt_bin(), paths[i]);
        KVT_CHECK(rc == 2, "kvdump -d %s: exit %d: %s", paths[i], rc, out);
    }
    KVT_CHECK(kvt_dir_fingerprint(work) == fp && kvt_dir_fingerprint(other) == fo && kvt_dir_count(work) == n
              && kvt_dir_count(empty) == 0 && kvt_dir_count(other) == 2,
              "kvdump changed or created files");
    KVT_CHECK(!exists("/nonexistent"), "kvdump created /nonexistent");

    /* usage: no DIR, DIR twice, an unknown option, a bad --prefix; --help, --version */
    KVT_CHECK(kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump'", kvt_bin()) == 2, "no DIR: %s", out);
    KVT_CHECK(kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump' -d '%s' '%s'", kvt_bin(), empty, empty) == 2,
              "-d and DIR: %s", out);
    KVT_CHECK(kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump' --bogus '%s'", kvt_bin(), empty) == 2, "--bogus: %s",
              out);
    KVT_CHECK(kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump' --prefix 'a\\q' '%s'", kvt_bin(), empty) == 2
              && strstr(out, "bad escape") != NULL, "bad --prefix: %s", out);
    KVT_CHECK(kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump' --help", kvt_bin()) == 0
              && strstr(out, "usage: kvdump") != NULL, "--help: %s", out);
    KVT_CHECK(kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump' --version", kvt_bin()) == 0
              && strstr(out, KV_VERSION_STRING) != NULL, "--version: %s", out);
}

/* A writer of this process holds the store (its lock, unflushed segment buffer,
 * records only in the WAL): kvdump reads every acknowledged write and changes no
 * byte. */
static void test_kvdump_beside_writer(void)
{
    char *dir = kvt_dir_new("dump-held"), *work = kvt_dir_new("dump-held-work");
    char *d = kvt_path(work, "dump");
    char k[32], want[32];
    kv_db *db = open_store(dir, KV_COMPRESS_NONE, 0);
    for (unsigned i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "held%03u", i);
        KVT_RC_FATAL(kv_put(db, k, strlen(k), k, strlen(k)), KV_OK);
    }
    uint64_t fp = kvt_dir_fingerprint(dir);
    dump_to("-p", dir, d);
    KVT_CHECK(kvt_dir_fingerprint(dir) == fp, "kvdump changed a store a writer holds");
    KVT_CHECK(file_has(d, "keys=100\n") && file_has(d, " held099\n held099\nDATA=END\n"),
              "the dump of a held store lacks acknowledged writes");
    KVT_RC(kv_put(db, "after", 5, "x", 1), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);
    dump_to("-p", dir, d);
    snprintf(want, sizeof want, "keys=%u\n", 101);
    KVT_CHECK(file_has(d, want), "the writer's later put is missing");
}

/* A record that fails its checksum stops the dump: exit 3 naming the segment and
 * offset, and the output has no DATA=END, so kv load refuses it. kv scan too. A
 * store another process holds for writing is refused by kv load (exit 3) with
 * nothing changed. */
static void test_kvdump_damaged_and_locked(void)
{
    char *dir = kvt_dir_new("dump-damaged"), *work = kvt_dir_new("dump-damaged-work");
    char *d = kvt_path(work, "dump");
    char out[4096], k[16], v[100];
    kv_db *db = open_store(dir, KV_COMPRESS_NONE, 4096);
    memset(v, 'v', sizeof v);
    for (unsigned i = 0; i < 200; i++) {
        snprintf(k, sizeof k, "k%04u", i);
        KVT_RC_FATAL(kv_put(db, k, strlen(k), v, sizeof v), KV_OK);
    }
    KVT_RC_FATAL(kvt_close(db), KV_OK);

    /* the first value byte of the first entry of sealed segment 000001.seg */
    char *seg = kvt_path(dir, "000001.seg");
    FILE *f = fopen(seg, "r+b");
    KVT_CHECK_FATAL(f != NULL && fseek(f, 16 + 20 + 5, SEEK_SET) == 0 && fputc('V', f) == 'V'
                    && fclose(f) == 0, "cannot damage %s", seg);
    int rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump' -p '%s' > '%s'", kvt_bin(), dir, d);
    KVT_CHECK(rc == 3 && strstr(out, "000001.seg") != NULL && strstr(out, "offset 16") != NULL,
              "kvdump of a damaged record: exit %d: %s", rc, out);
    KVT_CHECK(file_has(d, "HEADER=END\n") && !file_has(d, "DATA=END"),
              "the dump of a damaged store ends with DATA=END");
    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kv' -d '%s' load < '%s'", kvt_bin(), kvt_path(work, "new"), d);
    KVT_CHECK(rc == 2 && strstr(out, "before DATA=END") != NULL, "load of a cut dump: %d %s", rc,
              out);
    KVT_CHECK(!exists(kvt_path(work, "new")), "load of a cut dump created the store");
    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kv' -d '%s' scan > /dev/null", kvt_bin(), dir);
    KVT_CHECK(rc == 3 && strstr(out, "000001.seg") != NULL, "kv scan of a damaged record: %d %s",
              rc, out);

    /* load into a store a writer of this process holds */
    char *held = kvt_path(work, "held"), *good = kvt_path(work, "good");
    static const char text[] = "VERSION=1\nformat=print\nHEADER=END\n a\n 1\nDATA=END\n";
    spit(good, text, sizeof text - 1);
    db = open_store(held, KV_COMPRESS_NONE, 0);
    KVT_RC(kvt_put_str(db, "b", "2"), KV_OK);
    uint64_t fp = kvt_dir_fingerprint(held);
    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kv' -d '%s' load --overwrite < '%s'", kvt_bin(), held, good);
    KVT_CHECK(rc == 3 && strstr(out, "locked") != NULL, "load into a held store: %d %s", rc, out);
    KVT_CHECK(kvt_dir_fingerprint(held) == fp, "a refused load changed a held store");
    KVT_ASSERT_ABSENT(db, "a", 1);
    KVT_RC(kvt_close(db), KV_OK);
}

/* ---------------------------------------------------------------------------------
 * 5. Keys only, prefixes, scan, stats --json
 * ------------------------------------------------------------------------------ */
static void test_keys_only_and_prefix(void)
{
    char *dir = kvt_dir_new("dump-prefix"), *work = kvt_dir_new("dump-prefix-work");
    char *d = kvt_path(work, "dump");
    char out[4096];
    kv_db *db = open_store(dir, KV_COMPRESS_NONE, 0);
    KVT_RC(kvt_put_str(db, "user/2", "bob"), KV_OK);
    KVT_RC(kvt_put_str(db, "user/1", "alice"), KV_OK);
    KVT_RC(kvt_put_str(db, "users", "x"), KV_OK);
    KVT_RC(kvt_put_str(db, "zz", "last"), KV_OK);
    KVT_RC(kv_put(db, "p\0q", 3, "tab\there", 8), KV_OK);
    KVT_RC(kv_put(db, "p\0r", 3, "", 0), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);

    dump_to("-p --keys-only", dir, d);
    static const char keys_only[] = "VERSION=1\nformat=print\ncompression=none\ncontent=keys\n"
        "keys=6\nHEADER=END\n p\\x00q\n p\\x00r\n user/1\n user/2\n users\n zz\nDATA=END\n";
    size_t n;
    uint8_t *got = slurp(d, &n);
    KVT_CHECK(got != NULL && n == sizeof keys_only - 1 && memcmp(got, keys_only, n) == 0,
              "--keys-only dump:\n%.*s", (int)n, got ? (char *)got : "");
    free(got);
    int rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kv' -d '%s' load < '%s'", kvt_bin(), kvt_path(work, "new"), d);
    KVT_CHECK(rc == 2 && strstr(out, "no values") != NULL, "load of --keys-only: %d %s", rc, out);

    dump_to("-p --prefix user/", dir, d);
    static const char user[] = "VERSION=1\nformat=print\ncompression=none\ncontent=pairs\n"
        "keys=2\nprefix=user/\nHEADER=END\n user/1\n alice\n user/2\n bob\nDATA=END\n";
    got = slurp(d, &n);
    KVT_CHECK(got != NULL && n == sizeof user - 1 && memcmp(got, user, n) == 0,
              "--prefix user/ dump:\n%.*s", (int)n, got ? (char *)got : "");
    free(got);
    char *sub = kvt_path(work, "sub"), *d2 = kvt_path(work, "dump2");
    load_from(sub, d);
    dump_to("-p --prefix user/", sub, d2);
    KVT_CHECK(same_file(d, d2), "a --prefix dump does not round-trip");

    dump_to("--prefix 'p\\x00'", dir, d); /* hex format, escaped prefix */
    KVT_CHECK(file_has(d, "keys=2\nprefix=7000\nHEADER=END\n 700071\n 74616209686572"
                       "65\n 700072\n \nDATA=END\n"), "--prefix p\\x00 (hex) is wrong");
    dump_to("--prefix nothing", dir, d);
    KVT_CHECK(file_has(d, "keys=0\n"), "--prefix nothing matched something");

    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kv' -d '%s' scan", kvt_bin(), dir);
    KVT_CHECK(rc == 0 && strcmp(out, "p\\x00q\ttab\\x09here\np\\x00r\t\nuser/1\talice\n"
                                "user/2\tbob\nusers\tx\nzz\tlast\n") == 0, "kv scan: %d\n%s", rc,
              out);
    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kv' -d '%s' scan --prefix user", kvt_bin(), dir);
    KVT_CHECK(rc == 0 && strcmp(out, "user/1\talice\nuser/2\tbob\nusers\tx\n") == 0,
              "kv scan --prefix user: %d\n%s", rc, out);
    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kv' -d '%s' scan --prefix 'p\\x00'", kvt_bin(), dir);
    KVT_CHECK(rc == 0 && strcmp(out, "p\\x00q\ttab\\x09here\np\\x00r\t\n") == 0,
              "kv scan --prefix p\\x00: %d\n%s", rc, out);
    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kv' -d '%s' scan extra", kvt_bin(), dir);
    KVT_CHECK(rc == 2, "kv scan with an operand: %d %s", rc, out);
    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kv' -d '%s' scan --prefix 'x\\' ", kvt_bin(), dir);
    KVT_CHECK(rc == 2 && strstr(out, "cut short") != NULL, "kv scan bad --prefix: %d %s", rc, out);
}

/* Every kv_stats field, as kv stats --json must name it. */
static const char *const stat_names[] = {
    "keys", "live_bytes", "dead_bytes", "disk_bytes", "segments", "wal_bytes", "wal_files",
    "index_bytes", "puts", "gets", "deletes", "batches", "wal_syncs", "wal_groups", "next_seq",
    "recovery_us", "recovery_records", "recovery_wal_replayed", "recovery_cut_bytes",
    "recovery_hints", "recovery_hints_rewritten", "compactions", "compact_bytes_read",
    "compact_bytes_written", "compact_bytes_reclaimed", "compact_records_dropped",
    "compact_tombstones_dropped", "compact_errors", "compact_last_time", "compact_last_us",
    "compact_pass_read", "compact_pass_total", "reclaimable_bytes", "compacting", "io_backend",
    "sync", "read_only", "failed", "io_backend_note", "value_bytes_raw", "value_bytes_stored",
    "values_compressed", "compression",
};

static void check_u64(const json_t *o, const char *name, uint64_t want)
{
    long long v = kvt_json_int(o, name);
    KVT_CHECK(v >= 0 && (uint64_t)v == want, "stats --json %s: %lld, kv_stat says %llu", name,
              v, (unsigned long long)want);
}

static void test_stats_json(void)
{
    char *dir = kvt_dir_new("dump-stats");
    static char out[16384];
    kv_db *db = open_store(dir, KV_COMPRESS_NONE, 4096);
    char k[16];
    for (unsigned i = 0; i < 300; i++) {
        snprintf(k, sizeof k, "k%u", i % 200);
        KVT_RC(kv_put(db, k, strlen(k), "some value bytes", 16), KV_OK);
    }
    KVT_RC(kv_delete(db, "k7", 2), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);

    int rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kv' -d '%s' stats --json", kvt_bin(), dir);
    KVT_CHECK_FATAL(rc == 0, "kv stats --json: exit %d:\n%s", rc, out);
    json_t *o = kvt_json_parse(out);
    KVT_CHECK_FATAL(json_is_object(o), "kv stats --json: not one object:\n%s", out);
    KVT_CHECK(json_object_size(o) == sizeof stat_names / sizeof stat_names[0],
              "%zu members, kv_stats has %zu", json_object_size(o),
              sizeof stat_names / sizeof stat_names[0]);
    for (size_t i = 0; i < sizeof stat_names / sizeof stat_names[0]; i++)
        KVT_CHECK(json_object_get(o, stat_names[i]) != NULL, "stats --json lacks %s",
                  stat_names[i]);

    db = open_read_only(dir);
    kv_stats st;
    KVT_RC(kv_stat(db, &st), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);
    check_u64(o, "keys", st.keys);
    check_u64(o, "live_bytes", st.live_bytes);
    check_u64(o, "dead_bytes", st.dead_bytes);
    check_u64(o, "disk_bytes", st.disk_bytes);
    check_u64(o, "segments", st.segments);
    check_u64(o, "wal_files", st.wal_files);
    check_u64(o, "next_seq", st.next_seq);
    check_u64(o, "recovery_records", st.recovery_records);
    check_u64(o, "read_only", 1);
    check_u64(o, "puts", 0);
    const char *v = kvt_json_str(o, "compression");
    KVT_CHECK(strcmp(v, "none") == 0, "compression: %s", v);
    v = kvt_json_str(o, "sync");
    KVT_CHECK(strcmp(v, "always") == 0, "sync: %s", v);
    v = kvt_json_str(o, "io_backend");
    KVT_CHECK(strcmp(v, "uring") == 0 || strcmp(v, "psync") == 0, "io_backend: %s", v);
    KVT_CHECK(json_is_string(json_object_get(o, "io_backend_note")), "io_backend_note: no string");
    json_decref(o);
    KVT_CHECK(st.keys == 199, "kv_stat keys %llu", (unsigned long long)st.keys);

    /* the text output walks the same list: one line per field, same names in order */
    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kv' -d '%s' stats", kvt_bin(), dir);
    const char *p = out;
    for (size_t i = 0; i < sizeof stat_names / sizeof stat_names[0] && rc == 0; i++) {
        size_t l = strlen(stat_names[i]);
        KVT_CHECK_FATAL(strncmp(p, stat_names[i], l) == 0 && p[l] == ' ',
                        "stats line %zu is not %s: %.40s", i + 1, stat_names[i], p);
        p = strchr(p, '\n');
        KVT_CHECK_FATAL(p != NULL, "stats output cut short");
        p++;
    }
    KVT_CHECK(rc == 0 && *p == '\0', "kv stats: exit %d, extra text: %s", rc, p);
    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kv' -d '%s' stats --jsn", kvt_bin(), dir);
    KVT_CHECK(rc == 2, "stats --jsn: exit %d", rc);
}

/* ---------------------------------------------------------------------------------
 * 6. The forensic listing: --all and FILE
 * ------------------------------------------------------------------------------ */

/* What a listing held, counted from its JSON lines. */
typedef struct listing {
    int objects, files, records, seg_records, damage, bad_crc, hints, hint_records;
    int manifests, sealed, locks, live, dead, tombstones, lz4, more;
    int damage_at_16;        /* a damage object whose bad offset is 16 */
    int lock_held_by_us;     /* a lock object naming this process as the holder */
    uint8_t *seen;           /* seq -> times seen in .seg files */
    uint64_t max_seq;
} listing;

/* Counts one JSON object of a listing. */
static void count_object(listing *l, const json_t *o)
{
    const char *what = kvt_json_str(o, "what"), *file = kvt_json_str(o, "file");
    size_t fl = strlen(file);
    l->objects++;
    if (strcmp(what, "file") == 0)
        l->files++;
    else if (strcmp(what, "damage") == 0) {
        l->damage++;
        l->damage_at_16 |= kvt_json_int(o, "bad") == 16;
    } else if (strcmp(what, "hint") == 0)
        l->hints += strcmp(kvt_json_str(o, "status"), "ok") == 0;
    else if (strcmp(what, "hint_record") == 0)
        l->hint_records++;
    else if (strcmp(what, "manifest") == 0)
        l->manifests += strcmp(kvt_json_str(o, "status"), "ok") == 0;
    else if (strcmp(what, "sealed") == 0)
        l->sealed++;
    else if (strcmp(what, "lock") == 0) {
        l->locks++;
        l->lock_held_by_us |= strcmp(kvt_json_str(o, "held"), "yes") == 0
                              && kvt_json_int(o, "holder") == (long long)getpid();
    }
    if (strcmp(what, "record") != 0)
        return;
    l->records++;
    l->bad_crc += strcmp(kvt_json_str(o, "crc"), "bad") == 0;
    l->lz4 += strcmp(kvt_json_str(o, "comp"), "lz4") == 0 && json_object_get(o, "raw") != NULL;
    l->more += json_is_true(json_object_get(o, "more"));
    KVT_CHECK(json_is_string(json_object_get(o, "key"))
                  && json_is_string(json_object_get(o, "key_hex")) && kvt_json_int(o, "off") >= 0
                  && kvt_json_int(o, "vlen") >= 0 && *kvt_json_str(o, "state") != '\0',
              "a record lacks a field");
    if (fl < 4 || strcmp(file + fl - 4, ".seg") != 0)
        return;
    long long seq = kvt_json_int(o, "seq");
    l->seg_records++;
    if (seq >= 0 && (uint64_t)seq <= l->max_seq && strcmp(kvt_json_str(o, "crc"), "ok") == 0)
        l->seen[seq]++;
    const char *st = kvt_json_str(o, "state");
    l->live += strcmp(st, "live") == 0;
    l->dead += strcmp(st, "dead") == 0;
    l->tombstones += strcmp(st, "tombstone") == 0;
}

/* Parses the file of JSON lines at path into *l: every line must be one JSON object,
 * parsed by jansson on its own (flags 0: nothing else on the line). */
static void count_listing(const char *path, listing *l)
{
    size_t len;
    uint8_t *p = slurp(path, &len);
    KVT_CHECK_FATAL(p != NULL, "no listing at %s", path);
    char *line = (char *)p, *end = (char *)p + len;
    while (line < end) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        KVT_CHECK_FATAL(nl != NULL, "the listing's last line has no newline");
        *nl = '\0';
        json_t *o = kvt_json_parse(line);
        KVT_CHECK_FATAL(json_is_object(o), "not one JSON object: %.200s", line);
        count_object(l, o);
        json_decref(o);
        line = nl + 1;
    }
    free(p);
}

/* Opens dir for writing without background compaction (so what is on disk is what
 * the test wrote). */
static kv_db *open_quiet(const char *dir, int compression, uint64_t segment_bytes)
{
    kv_options o;
    kv_db *db = NULL;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, segment_bytes);
    o.compression = compression;
    o.auto_compact = 0;
    int rc = kvt_open(dir, &o, &db);
    KVT_CHECK_FATAL(rc == KV_OK, "kv_open %s: %s: %s", dir, kv_strerror(rc), kv_errmsg());
    return db;
}

/* Writes a history: puts and overwrites (empty, compressible and plain values),
 * deletes, a batch of three. Returns the number of entries (= the last seq). */
static uint64_t write_history(kv_db *db, unsigned n)
{
    char k[16], v[300];
    uint64_t entries = 0;
    for (size_t i = 0; i < sizeof v; i++)
        v[i] = (char)('a' + i % 3);
    for (unsigned i = 0; i < n; i++, entries++) {
        snprintf(k, sizeof k, "k%03u", i % 50);
        KVT_RC_FATAL(kv_put(db, k, strlen(k), v, (i % 3) * 100 + (i % 7)), KV_OK);
    }
    for (unsigned i = 0; i < 5; i++, entries++) {
        snprintf(k, sizeof k, "k%03u", i * 7);
        KVT_RC_FATAL(kv_delete(db, k, strlen(k)), KV_OK);
    }
    kv_batch *b = kv_batch_new();
    KVT_CHECK_FATAL(b != NULL, "out of memory");
    KVT_RC(kv_batch_put(b, "batch-a", 7, "1", 1), KV_OK);
    KVT_RC(kv_batch_put(b, "batch-b", 7, "2", 1), KV_OK);
    KVT_RC(kv_batch_delete(b, "k001", 4), KV_OK);
    KVT_RC_FATAL(kv_write(db, b), KV_OK);
    kv_batch_free(b);
    return entries + 3;
}

static void test_all_every_record(void)
{
    char *dir = kvt_dir_new("dump-all"), *work = kvt_dir_new("dump-all-work");
    char *js = kvt_path(work, "all.json"), *txt = kvt_path(work, "all.txt");
    char out[4096];
    unsigned n = kvt_scaled(400, 150);
    kv_db *db = open_quiet(dir, KV_COMPRESS_LZ4, 4096);
    uint64_t entries = write_history(db, n);
    KVT_RC_FATAL(kvt_close(db), KV_OK);
    db = open_read_only(dir);
    kv_stats st;
    KVT_RC(kv_stat(db, &st), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);
    uint64_t fp = kvt_dir_fingerprint(dir);

    int rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump' --all --json '%s' > '%s'", kvt_bin(), dir, js);
    KVT_CHECK_FATAL(rc == 0, "kvdump --all --json: exit %d: %s", rc, out);
    listing l = {.max_seq = entries};
    l.seen = calloc(entries + 1, 1);
    KVT_CHECK_FATAL(l.seen != NULL, "out of memory");
    count_listing(js, &l);
    int missing = 0;
    for (uint64_t s = 1; s <= entries; s++)
        missing += l.seen[s] != 1;
    free(l.seen);
    KVT_CHECK(missing == 0 && l.seg_records == (int)entries, "%d of %llu sequence numbers are "
              "not listed exactly once in the segments (%d segment records)", missing,
              (unsigned long long)entries, l.seg_records);
    KVT_CHECK(l.files == kvt_dir_count(dir), "%d file objects for %d files", l.files,
              kvt_dir_count(dir));
    KVT_CHECK(l.live == (int)st.keys, "%d live records, kv_stat says %llu keys", l.live,
              (unsigned long long)st.keys);
    KVT_CHECK(l.tombstones == 6 && l.dead == l.seg_records - l.live - l.tombstones && l.dead > 0,
              "tombstones %d (6 written), dead %d", l.tombstones, l.dead);
    KVT_CHECK(l.lz4 > 0 && l.more >= 2 && l.damage == 0 && l.bad_crc == 0,
              "lz4 %d, batch members %d, damage %d, bad crc %d", l.lz4, l.more, l.damage,
              l.bad_crc);
    KVT_CHECK(l.manifests == 1 && l.sealed > 0 && l.hints == l.sealed && l.locks == 1,
              "manifest %d, sealed %d, usable hints %d, lock %d", l.manifests, l.sealed, l.hints,
              l.locks);
    KVT_CHECK(l.hint_records > 0 && l.hint_records < l.seg_records, "%d hint records",
              l.hint_records);

    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump' --all '%s' > '%s'", kvt_bin(), dir, txt);
    KVT_CHECK(rc == 0, "kvdump --all: exit %d: %s", rc, out);
    size_t len;
    uint8_t *t = slurp(txt, &len);
    int lines = 0, recs = 0;
    for (char *p = (char *)t, *e = p + len; t != NULL && p < e; lines++) {
        char *nl = memchr(p, '\n', (size_t)(e - p));
        if (nl == NULL)
            break;
        recs += memmem(p, (size_t)(nl - p), " record off=0x", 14) != NULL;
        p = nl + 1;
    }
    free(t);
    KVT_CHECK(lines == l.objects && recs == l.records, "text: %d lines, %d records; json: %d "
              "objects, %d records", lines, recs, l.objects, l.records);

    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump' --all --json --prefix batch- '%s' > '%s'", kvt_bin(),
             dir, js);
    listing p = {0};
    count_listing(js, &p);
    KVT_CHECK(rc == 0 && p.records == 4 && p.files == l.files, "--all --prefix batch-: exit %d, "
              "%d records (2 in the segment, 2 in the WAL)", rc, p.records);
    KVT_CHECK(kvt_dir_fingerprint(dir) == fp, "kvdump --all changed the store");
    kvt_note("%llu entries: %d live, %d dead, %d tombstones; %d hint records, %d objects",
             (unsigned long long)entries, l.live, l.dead, l.tombstones, l.hint_records,
             l.objects);
}

/* Writes a copy of the file src at dst with its header's version set to v (and its
 * header CRC computed again): a file of a newer format. */
static void copy_with_version(const char *src, const char *dst, uint16_t v)
{
    size_t len;
    uint8_t *p = slurp(src, &len);
    KVT_CHECK_FATAL(p != NULL && len >= 16, "cannot read %s", src);
    p[4] = (uint8_t)v, p[5] = (uint8_t)(v >> 8);
    uint32_t crc = kv_crc32c(p, 12);
    for (int i = 0; i < 4; i++)
        p[12 + i] = (uint8_t)(crc >> (8 * i));
    spit(dst, p, len);
    free(p);
}

/* A store of sealed segments with hints (and the active one), closed. */
static void forensic_store(const char *dir)
{
    kv_db *db = open_quiet(dir, KV_COMPRESS_NONE, 4096);
    write_history(db, kvt_scaled(300, 150));
    KVT_RC_FATAL(kvt_close(db), KV_OK);
}

/* A flipped byte in a sealed segment: --all and FILE list the damage at its offset
 * and go on; a hint, the MANIFEST, LOCK and a WAL file alone. */
static void test_all_damage_and_files(void)
{
    char *dir = kvt_dir_new("dump-forensic"), *work = kvt_dir_new("dump-forensic-work");
    char *js = kvt_path(work, "out.json");
    char out[4096];
    forensic_store(dir);

    char *seg = kvt_path(dir, "000001.seg");
    FILE *f = fopen(seg, "r+b");
    KVT_CHECK_FATAL(f != NULL && fseek(f, 16 + 21, SEEK_SET) == 0 && fputc(0xee, f) == 0xee
                    && fclose(f) == 0, "cannot damage %s", seg);
    uint64_t fp = kvt_dir_fingerprint(dir);

    int rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump' --all --json '%s' > '%s'", kvt_bin(), dir, js);
    listing l = {0};
    count_listing(js, &l);
    KVT_CHECK(rc == 0 && l.damage == 1 && l.damage_at_16 && l.bad_crc == 1,
              "--all on a damaged segment: exit %d, %d damage (at 16: %d), %d bad crc: %s", rc,
              l.damage, l.damage_at_16, l.bad_crc, out);

    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump' --json '%s' > '%s'", kvt_bin(), seg, js);
    listing s = {0};
    count_listing(js, &s);
    KVT_CHECK(rc == 0 && s.files == 1 && s.damage == 1 && s.damage_at_16 && s.records > 10,
              "kvdump FILE on the damaged segment: exit %d, %d damage, %d records: %s", rc,
              s.damage, s.records, out);

    const char *files[] = {"000002.hint", "MANIFEST", "LOCK"};
    for (int i = 0; i < 3; i++) {
        char *p = kvt_path(dir, files[i]);
        rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump' --json '%s' > '%s'", kvt_bin(), p, js);
        listing h = {0};
        count_listing(js, &h);
        KVT_CHECK(rc == 0 && h.files == 1 && h.objects > 1 && (i != 0 || (h.hints == 1
                  && h.hint_records > 10)) && (i != 1 || h.manifests == 1) && (i != 2
                  || h.locks == 1), "kvdump %s: exit %d, %d objects: %s", files[i], rc,
                  h.objects, out);
    }
    /* the active segment's WAL file, outside the store, under another name */
    listing w = {0};
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL)
        if (strstr(de->d_name, ".wal") != NULL) {
            size_t len;
            uint8_t *b = slurp(kvt_path(dir, de->d_name), &len);
            spit(kvt_path(work, "copy-of-a-wal"), b, len);
            free(b);
        }
    if (d != NULL)
        closedir(d);
    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump' --json '%s' > '%s'", kvt_bin(),
             kvt_path(work, "copy-of-a-wal"), js);
    count_listing(js, &w);
    KVT_CHECK(rc == 0 && w.records > 0, "kvdump on a WAL file known by its magic: exit %d: %s",
              rc, out);
    KVT_CHECK(kvt_dir_fingerprint(dir) == fp, "kvdump changed the store");
}

/* Refused with exit 2 and nothing created: a file that is no kv file, a missing
 * one, one of a newer format version; an empty directory, one of other files;
 * -p with --all, --json without it. Beside a writer, --all names it as the holder
 * of the lock. */
static void test_all_refusals_and_writer(void)
{
    char *dir = kvt_dir_new("dump-refusals"), *work = kvt_dir_new("dump-refusals-work");
    char *js = kvt_path(work, "out.json");
    char out[4096];
    forensic_store(dir);
    uint64_t fp = kvt_dir_fingerprint(dir);
    int rc;

    char *other = kvt_path(work, "notes.txt"), *newer = kvt_path(work, "000009.seg");
    spit(other, "KVS? no\n", 8);
    copy_with_version(kvt_path(dir, "000002.seg"), newer, KV_FORMAT_VERSION + 1);
    const char *bad[] = {other, "/nonexistent/000001.seg", newer};
    const char *why[] = {"not a kv file", "does not exist", "newer"};
    for (int i = 0; i < 3; i++) {
        rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump' '%s' > /dev/null", kvt_bin(), bad[i]);
        KVT_CHECK(rc == 2 && strstr(out, why[i]) != NULL && strstr(out, bad[i]) != NULL,
                  "kvdump %s: exit %d: %s", bad[i], rc, out);
    }
    char *empty = kvt_path(work, "empty"), *foreign = kvt_path(work, "foreign");
    KVT_CHECK_FATAL(mkdir(empty, 0755) == 0 && mkdir(foreign, 0755) == 0, "mkdir");
    spit(kvt_path(foreign, "a.txt"), "x", 1);
    const char *dirs[] = {empty, foreign, "/nonexistent/kv-store"};
    for (int i = 0; i < 3; i++) {
        rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump' --all '%s'", kvt_bin(), dirs[i]);
        KVT_CHECK(rc == 2 && strstr(out, dirs[i]) != NULL, "kvdump --all %s: exit %d: %s",
                  dirs[i], rc, out);
    }
    KVT_CHECK(kvt_dir_count(empty) == 0 && kvt_dir_count(foreign) == 1,
              "kvdump --all created files");
    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump' --all -p '%s'", kvt_bin(), dir);
    KVT_CHECK(rc == 2, "--all -p: exit %d", rc);
    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump' --json '%s'", kvt_bin(), dir);
    KVT_CHECK(rc == 2, "--json without --all: exit %d", rc);
    KVT_CHECK(kvt_dir_fingerprint(dir) == fp, "kvdump changed the store");

    /* beside a writer of this process: the lock's holder is named */
    kv_db *db = open_quiet(dir, KV_COMPRESS_NONE, 4096);
    KVT_RC(kvt_put_str(db, "while held", "yes"), KV_OK);
    rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/kvdump' --all --json '%s' > '%s'", kvt_bin(), dir, js);
    listing h = {0};
    count_listing(js, &h);
    KVT_CHECK(rc == 0 && h.lock_held_by_us, "--all beside a writer: exit %d, lock holder %s "
              "named: %s", rc, h.lock_held_by_us ? "" : "not", out);
    KVT_RC(kvt_close(db), KV_OK);
}

static const kvt_test kvdump_tests[] = {
    {"dump -> load -> dump identical, both formats, binary keys and values, LZ4",
     test_roundtrip_binary},
    {"the same contents dump the same whatever the history; live state only",
     test_roundtrip_history},
    {"kv load from a pipe, -f FILE; --compression beats compression=", test_load_inputs},
    {"kv load into a store holding keys: refused, --overwrite, --no-overwrite",
     test_load_into_nonempty},
    {"kv load of bad input: exit 2, line named, no store created or changed",
     test_load_bad_input},
    {"kvdump on no store: exit 2, nothing created; usage", test_kvdump_bad_paths},
    {"kvdump beside a writer of this process: works, changes nothing",
     test_kvdump_beside_writer},
    {"a damaged record stops kvdump and kv scan (exit 3); kv load into a held store",
     test_kvdump_damaged_and_locked},
    {"--keys-only, --prefix, kv scan [--prefix]", test_keys_only_and_prefix},
    {"kv stats --json: one object, every kv_stat field, values agree", test_stats_json},
    {"kvdump --all: every record of every file, states agree with the store",
     test_all_every_record},
    {"kvdump --all and FILE: damage listed; hint, MANIFEST, LOCK and WAL files alone",
     test_all_damage_and_files},
    {"kvdump --all and FILE: bad files and dirs refused; the writer named as lock holder",
     test_all_refusals_and_writer},
    {NULL, NULL},
};

void kvt_register_kvdump(void)
{
    kvt_add_suite("kvdump", kvdump_tests);
}
