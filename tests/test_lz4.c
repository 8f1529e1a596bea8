/*
 * test_lz4.c — LZ4 value compression (kv_options.compression = KV_COMPRESS_LZ4).
 *
 * Sections:
 *   1. Data and file helpers: value patterns, reading a file, patching a record
 *   2. The codec: round trips at boundary sizes, "only when it saves space", batch
 *      re-encoding, and damage to a compressed value caught by the CRC or, with the
 *      CRC sealed again, by the decoder itself (raw length, truncated block, bit
 *      flips): KV_ECORRUPT, never an overflow
 *   3. Stores: round trips through kv_put/kv_get at the boundary sizes (empty,
 *      compress_min_bytes +- 1, incompressible, highly compressible, KV_MAX_VALUE) on
 *      both read paths; batches; reopening with compression switched both ways (a
 *      mixed store, checked record by record on disk); read-only handles; threads
 *   4. Recovery and compaction: WAL replay of compressed entries after a killed
 *      writer; compaction keeps each record's form; damaged compressed records in a
 *      sealed segment and in the WAL (KV_ECORRUPT naming the file and offset)
 *   5. kv_stat's byte counters
 *
 * Engine headers (compress.h, entry.h, scan.h) are used to build and inspect records;
 * the store is exercised through kv.h only.
 */
#include "kvtest.h"

#include "format/compress.h"
#include "format/entry.h"
#include "store/scan.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------
 * 1. Data and file helpers
 * ------------------------------------------------------------------------------ */

enum { PAT_ZERO, PAT_TEXT, PAT_RANDOM, PAT_HALF };

/* Fills v with n bytes of a pattern: zeros, repeating text (highly compressible),
 * random bytes (incompressible), or kvbench's half-compressible pieces. */
static void fill(uint8_t *v, size_t n, int pat, uint64_t seed)
{
    static const char text[] = "{\"user\":\"alice\",\"active\":true,\"tags\":[\"a\",\"b\"]} ";
    kvt_rng rng;
    kvt_rng_seed(&rng, seed);
    if (pat == PAT_ZERO)
        memset(v, 0, n);
    else if (pat == PAT_TEXT)
        for (size_t i = 0; i < n; i++)
            v[i] = (uint8_t)text[(i + seed) % (sizeof text - 1)];
    else if (pat == PAT_RANDOM)
        kvt_rng_fill(&rng, v, n);
    else
        for (size_t off = 0; off < n; off += 100) {
            size_t piece = n - off < 100 ? n - off : 100, half = (piece + 1) / 2;
            for (size_t i = 0; i < half; i++)
                v[off + i] = (uint8_t)(' ' + kvt_rng_below(&rng, 95));
            memcpy(v + off + half, v + off, piece - half);
        }
}

/* A malloc'd value of n bytes (at least 1 allocated) of a pattern. */
static uint8_t *make_value(size_t n, int pat, uint64_t seed)
{
    uint8_t *v = malloc(n > 0 ? n : 1);
    KVT_CHECK_FATAL(v != NULL, "allocating %zu bytes", n);
    fill(v, n, pat, seed);
    return v;
}

/* Counts the records of a segment or WAL file, and those with KV_RECF_LZ4; every
 * record must scan clean. */
typedef struct flag_count {
    unsigned records, lz4;
    unsigned lz4_prefix; /* LZ4 records whose key starts with prefix */
    unsigned plain_prefix;
    const char *prefix;
} flag_count;

static int count_flags(void *arg, const kv_entry *e, uint64_t off)
{
    flag_count *c = arg;
    size_t pl = c->prefix ? strlen(c->prefix) : 0;
    int match = c->prefix && e->klen >= pl && memcmp(e->key, c->prefix, pl) == 0;
    c->records++;
    if (e->flags & KV_RECF_LZ4) {
        c->lz4++;
        c->lz4_prefix += match;
    } else if (e->type == KV_REC_PUT) {
        c->plain_prefix += match;
    }
    return 0;
}

static void scan_file_flags(const char *dir, const char *name, flag_count *c)
{
    size_t len;
    kv_scan_result res;
    uint8_t *buf = kvt_slurp(kvt_path(dir, name), &len);
    KVT_CHECK(scan_buffer(buf, len, KV_FILE_HDR_SIZE, count_flags, c, &res) == KV_OK
                  && !res.stopped, "%s scans clean (stopped at %llu: %s)", name,
              (unsigned long long)res.bad_off, res.why);
    free(buf);
}

/* Scans every segment of a store (numbers 1..999). */
static void scan_store_flags(const char *dir, flag_count *c)
{
    char name[32];
    for (int i = 1; i < 1000; i++) {
        snprintf(name, sizeof name, "%06d.seg", i);
        if (access(kvt_path(dir, name), F_OK) == 0)
            scan_file_flags(dir, name, c);
    }
}

/* The newest file with extension ext ("seg", "wal"). */
static const char *newest(const char *dir, const char *ext, char *buf, size_t n)
{
    for (int i = 999; i > 0; i--) {
        snprintf(buf, n, "%06d.%s", i, ext);
        if (access(kvt_path(dir, buf), F_OK) == 0)
            return buf;
    }
    KVT_CHECK_FATAL(0, "no .%s file in %s", ext, dir);
    return NULL;
}

/* Changes the record at off in a file: mutate edits its bytes (the whole entry,
 * size bytes, in memory); with reseal the CRC is computed again, as a writer would
 * have, so that only the decoder can notice. */
typedef void (*mutate_fn)(uint8_t *rec, size_t klen, size_t size, void *arg);

static void patch_record(const char *dir, const char *name, off_t off, mutate_fn mutate,
                         void *arg, int reseal)
{
    char *p = kvt_path(dir, name);
    uint8_t hdr[KV_ENTRY_HDR];
    kv_entry e;
    int fd = open(p, O_RDWR);
    KVT_CHECK_FATAL(fd >= 0 && pread(fd, hdr, sizeof hdr, off) == (ssize_t)sizeof hdr,
                    "read %s", p);
    KVT_CHECK_FATAL(entry_check_header(hdr, &e) == NULL, "%s: no entry at %lld", name,
                    (long long)off);
    uint8_t *rec = malloc(e.size);
    KVT_CHECK_FATAL(pread(fd, rec, e.size, off) == (ssize_t)e.size, "read record");
    mutate(rec, e.klen, e.size, arg);
    if (reseal)
        entry_seal(rec, e.size, kv_get64(rec + KV_ENTRY_OFF_SEQ));
    KVT_CHECK_FATAL(pwrite(fd, rec, e.size, off) == (ssize_t)e.size, "write %s", p);
    free(rec);
    close(fd);
}

/* ---------------------------------------------------------------------------------
 * 2. The codec
 * ------------------------------------------------------------------------------ */

/* Encodes key/val as kv_put does with LZ4 and min_bytes, seals and parses it. */
static size_t encode_parse(uint8_t *buf, const void *val, size_t vlen, size_t min_bytes,
                           kv_entry *e)
{
    char why[128];
    size_t n = compress_entry_encode(buf, KV_REC_PUT, 0, "key", 3, val, vlen, min_bytes);
    entry_seal(buf, n, 77);
    KVT_CHECK_FATAL(entry_parse(buf, n, e, why, sizeof why) == ENTRY_OK,
                    "encoded %zu-byte value does not parse: %s", vlen, why);
    return n;
}

/* Decodes e and compares with want. */
static int decodes_to(const kv_entry *e, const uint8_t *want, size_t wlen)
{
    uint8_t *out;
    size_t outlen;
    char why[128];
    if (!(e->flags & KV_RECF_LZ4))
        return e->vlen == wlen && memcmp(e->val, want, wlen) == 0;
    if (compress_value_decode(e, &out, &outlen, why, sizeof why) != KV_OK)
        return 0;
    int same = outlen == wlen && memcmp(out, want, wlen) == 0;
    free(out);
    return same;
}

static void test_codec_boundaries(void)
{
    const size_t min = 64;
    const size_t sizes[] = {0, 1, 5, 6, min - 1, min, min + 1, 100, 4096, 70000};
    const int pats[] = {PAT_ZERO, PAT_TEXT, PAT_RANDOM, PAT_HALF};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        for (size_t p = 0; p < sizeof pats / sizeof *pats; p++) {
            size_t vl = sizes[s];
            uint8_t *v = make_value(vl, pats[p], vl), *buf = malloc(entry_size(3, vl));
            kv_entry e;
            size_t n = encode_parse(buf, v, vl, min, &e);
            int lz4 = (e.flags & KV_RECF_LZ4) != 0;
            /* Compressible data from min on is compressed; below min never; random
             * data never (it would grow). */
            int want = vl >= min && pats[p] != PAT_RANDOM;
            KVT_CHECK(lz4 == want, "pattern %d, %zu bytes: compressed %d, expected %d",
                      pats[p], vl, lz4, want);
            KVT_CHECK(lz4 ? n < entry_size(3, vl) : n == entry_size(3, vl),
                      "pattern %d, %zu bytes: entry of %zu bytes (plain %zu)", pats[p], vl,
                      n, entry_size(3, vl));
            KVT_CHECK(compress_raw_len(&e) == vl, "raw length %u, want %zu",
                      compress_raw_len(&e), vl);
            KVT_CHECK(decodes_to(&e, v, vl), "pattern %d, %zu bytes: round trip", pats[p], vl);
            free(v);
            free(buf);
        }
    }
}

/* A value that would not shrink is stored as given, and min_bytes is honoured. */
static void test_codec_only_when_smaller(void)
{
    uint8_t v[300], buf[400];
    kv_entry e;
    fill(v, sizeof v, PAT_ZERO, 0);
    encode_parse(buf, v, sizeof v, sizeof v + 1, &e);
    KVT_CHECK(!(e.flags & KV_RECF_LZ4) && e.vlen == sizeof v, "below min_bytes: plain");
    encode_parse(buf, v, sizeof v, 0, &e);
    KVT_CHECK((e.flags & KV_RECF_LZ4) && e.vlen < 20, "300 zeros: %u stored bytes", e.vlen);
    /* min_bytes 0: even tiny values are tried; 6 zeros cannot shrink below 6. */
    encode_parse(buf, v, 6, 0, &e);
    KVT_CHECK(!(e.flags & KV_RECF_LZ4) && e.vlen == 6, "6 bytes stay plain");
    /* Deletes are never touched. */
    size_t n = compress_entry_encode(buf, KV_REC_DEL, KV_RECF_BATCH, "k", 1, NULL, 0, 0);
    KVT_CHECK(n == entry_size(1, 0) && buf[KV_ENTRY_OFF_FLAGS] == KV_RECF_BATCH, "delete");
}

/* compress_entries keeps types, keys, batch flags and order. */
static void test_codec_batch(void)
{
    uint8_t src[4096], dst[4096], v[500];
    size_t len = 0, last = 0, last_src = 0;
    fill(v, sizeof v, PAT_TEXT, 3);
    for (int i = 0; i < 6; i++) {
        char k[16];
        snprintf(k, sizeof k, "b%d", i);
        last_src = len;
        if (i % 3 == 2)
            len += entry_encode(src + len, KV_REC_DEL, KV_RECF_BATCH, k, strlen(k), NULL, 0);
        else
            len += entry_encode(src + len, KV_REC_PUT, KV_RECF_BATCH, k, strlen(k), v,
                                i == 4 ? 10 : sizeof v);
    }
    size_t out = compress_entries(dst, src, len, 64, &last);
    KVT_CHECK(out < len, "batch shrank: %zu -> %zu", len, out);
    size_t pos = 0;
    for (int i = 0; i < 6; i++) {
        kv_entry e;
        char k[16], why[128];
        snprintf(k, sizeof k, "b%d", i);
        if (i == 5)
            KVT_CHECK(pos == last && last_src > 0, "last entry at %zu, reported %zu", pos, last);
        entry_seal(dst + pos, entry_size(kv_get16(dst + pos + KV_ENTRY_OFF_KLEN),
                                         kv_get32(dst + pos + KV_ENTRY_OFF_VLEN)), (uint64_t)i + 1);
        KVT_CHECK_FATAL(entry_parse(dst + pos, out - pos, &e, why, sizeof why) == ENTRY_OK,
                        "entry %d: %s", i, why);
        KVT_CHECK(e.klen == strlen(k) && memcmp(e.key, k, e.klen) == 0
                      && (e.flags & KV_RECF_BATCH), "entry %d: key and batch flag", i);
        if (i % 3 == 2)
            KVT_CHECK(e.type == KV_REC_DEL && e.vlen == 0, "entry %d is a delete", i);
        else
            KVT_CHECK(e.type == KV_REC_PUT && ((e.flags & KV_RECF_LZ4) != 0) == (i != 4)
                          && decodes_to(&e, v, i == 4 ? 10 : sizeof v),
                      "entry %d: value (flags 0x%02x)", i, (unsigned)e.flags);
        pos += e.size;
    }
    KVT_CHECK(pos == out, "entries end at %zu of %zu", pos, out);
}

/* A compressed entry of the text pattern, sealed, in buf; returns its size. */
static size_t lz4_entry(uint8_t *buf, uint8_t *v, size_t vl)
{
    kv_entry e;
    fill(v, vl, PAT_TEXT, 9);
    size_t n = encode_parse(buf, v, vl, 0, &e);
    KVT_CHECK_FATAL(e.flags & KV_RECF_LZ4, "text value compressed");
    return n;
}

/* Parses buf and decodes it: returns the decoder's status (ENTRY_BAD from parse is
 * reported as -1), with its message in why. */
static int parse_decode(uint8_t *buf, size_t n, char *why, size_t wl, size_t *outlen)
{
    kv_entry e;
    uint8_t *out = NULL;
    *outlen = 0;
    if (entry_parse(buf, n, &e, why, wl) != ENTRY_OK)
        return -1;
    int rc = compress_value_decode(&e, &out, outlen, why, wl);
    free(out);
    return rc;
}

static void test_codec_damage(void)
{
    uint8_t v[2000], buf[2100], bad[2100];
    char why[160];
    size_t outlen, n = lz4_entry(buf, v, sizeof v);
    size_t voff = KV_ENTRY_HDR + 3, block = n - voff - KV_LZ4_RAW_LEN;
    int rc;

    /* Not resealed: the CRC catches any change first. */
    memcpy(bad, buf, n);
    bad[n - 3] ^= 0x10;
    KVT_CHECK(parse_decode(bad, n, why, sizeof why, &outlen) == -1 && strstr(why, "checksum"),
              "flip without reseal: %s", why);

    /* Raw length above KV_MAX_VALUE, resealed: refused by entry_parse. */
    memcpy(bad, buf, n);
    kv_put32(bad + voff, KV_MAX_VALUE + 1);
    entry_seal(bad, n, 77);
    KVT_CHECK(parse_decode(bad, n, why, sizeof why, &outlen) == -1
                  && strstr(why, "raw length"), "raw length 64 MiB + 1: %s", why);
    kv_put32(bad + voff, 0xFFFFFFFFu);
    entry_seal(bad, n, 77);
    KVT_CHECK(parse_decode(bad, n, why, sizeof why, &outlen) == -1, "raw length 4 GiB");

    /* A raw length no block of this size can produce (64 MiB from a few bytes),
     * resealed: refused before anything is allocated for it (the fuzzer's malloc
     * limit found this). */
    memcpy(bad, buf, n);
    kv_put32(bad + voff, KV_MAX_VALUE);
    entry_seal(bad, n, 77);
    rc = parse_decode(bad, n, why, sizeof why, &outlen);
    KVT_CHECK(rc == KV_ECORRUPT && strstr(why, "cannot come from"),
              "raw length 64 MiB from a %zu-byte block: rc %d (%s)", block, rc, why);

    /* Raw length one too large or too small, resealed: the decoder refuses. */
    static const int64_t deltas[] = {1, -1, 1000, -1000, -2000};
    for (size_t i = 0; i < sizeof deltas / sizeof *deltas; i++) {
        memcpy(bad, buf, n);
        kv_put32(bad + voff, (uint32_t)((int64_t)sizeof v + deltas[i]));
        entry_seal(bad, n, 77);
        rc = parse_decode(bad, n, why, sizeof why, &outlen);
        KVT_CHECK(rc == KV_ECORRUPT && strstr(why, "LZ4"), "raw length %+lld: rc %d (%s)",
                  (long long)deltas[i], rc, why);
    }

    /* Truncated block: the entry is cut short and resealed at its new length. */
    for (size_t cut = 1; cut < block; cut++) {
        memcpy(bad, buf, n);
        kv_put32(bad + KV_ENTRY_OFF_VLEN, (uint32_t)(n - voff - cut));
        entry_seal(bad, n - cut, 77);
        rc = parse_decode(bad, n - cut, why, sizeof why, &outlen);
        KVT_CHECK(rc == KV_ECORRUPT,
                  "block cut by %zu of %zu bytes: rc %d, %zu bytes out (%s)", cut, block, rc,
                  outlen, why);
    }

    /* Every bit of the block flipped in turn, resealed. The block carries no checksum
     * of its own: a flipped literal still decodes, to other bytes of the right length,
     * which is why the CRC is checked first. What the decoder must do is refuse every
     * flip that breaks the block's structure, and never write past the raw length. */
    unsigned refused = 0, same_len = 0;
    for (size_t i = voff + KV_LZ4_RAW_LEN; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(bad, buf, n);
            bad[i] ^= (uint8_t)(1u << bit);
            entry_seal(bad, n, 77);
            rc = parse_decode(bad, n, why, sizeof why, &outlen);
            if (rc == KV_ECORRUPT)
                refused++;
            else if (rc == KV_OK && outlen == sizeof v)
                same_len++;
            else
                KVT_CHECK(0, "flip of bit %d of byte %zu: rc %d, %zu bytes", bit, i, rc, outlen);
        }
    }
    /* The first token holds the literal run length: changing it shifts everything. */
    memcpy(bad, buf, n);
    bad[voff + KV_LZ4_RAW_LEN] ^= 0x80;
    entry_seal(bad, n, 77);
    KVT_CHECK(parse_decode(bad, n, why, sizeof why, &outlen) == KV_ECORRUPT,
              "flipped literal length of the first token refused");
    KVT_CHECK(refused > 0 && refused + same_len == block * 8,
              "%u of %zu bit flips refused by the decoder, %u decoded to %zu bytes", refused,
              block * 8, same_len, sizeof v);
    kvt_note("block of %zu bytes: %u of %zu bit flips refused by LZ4_decompress_safe alone",
             block, refused, block * 8);
}

/* ---------------------------------------------------------------------------------
 * 3. Stores
 * ------------------------------------------------------------------------------ */

static int open_lz4(const char *dir, int compression, size_t min_bytes, int mmap_reads,
                    uint64_t seg_bytes, kv_db **db)
{
    kv_options o;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, seg_bytes);
    o.compression = compression;
    o.compress_min_bytes = min_bytes;
    o.mmap_reads = mmap_reads;
    o.auto_compact = 0; /* files stay where the tests look for them */
    return kvt_open(dir, &o, db);
}

static uint64_t compressed_count(kv_db *db)
{
    kv_stats st;
    KVT_RC_FATAL(kv_stat(db, &st), KV_OK);
    return st.values_compressed;
}

/* Puts one value and says whether it was stored compressed. */
static int put_counts(kv_db *db, const char *key, const uint8_t *v, size_t vl)
{
    uint64_t before = compressed_count(db);
    KVT_RC_FATAL(kv_put(db, key, strlen(key), v, vl), KV_OK);
    return compressed_count(db) > before;
}

struct sized {
    const char *key;
    size_t len;
    int pat;
    int compressed; /* expected */
};

static void store_boundaries(int mmap_reads)
{
    char *dir = kvt_dir_new(mmap_reads ? "lz4mmap" : "lz4pread");
    const size_t min = 200;
    struct sized vals[] = {
        {"empty", 0, PAT_ZERO, 0},         {"one", 1, PAT_ZERO, 0},
        {"min-1", min - 1, PAT_TEXT, 0},   {"min", min, PAT_TEXT, 1},
        {"min+1", min + 1, PAT_TEXT, 1},   {"random", 5000, PAT_RANDOM, 0},
        {"zeros", 1u << 20, PAT_ZERO, 1},  {"half", 1000, PAT_HALF, 1},
        {"max", KV_MAX_VALUE, PAT_TEXT, 1},
    };
    size_t nvals = sizeof vals / sizeof *vals;
    kv_db *db;
    KVT_RC_FATAL(open_lz4(dir, KV_COMPRESS_LZ4, min, mmap_reads, 0, &db), KV_OK);
    for (size_t i = 0; i < nvals; i++) {
        uint8_t *v = make_value(vals[i].len, vals[i].pat, i);
        KVT_CHECK(put_counts(db, vals[i].key, v, vals[i].len) == vals[i].compressed,
                  "%s (%zu bytes): compressed should be %d", vals[i].key, vals[i].len,
                  vals[i].compressed);
        KVT_ASSERT_VALUE(db, vals[i].key, strlen(vals[i].key), v, vals[i].len);
        free(v);
    }
    /* Reopened without compression: every value reads back the same, from disk. */
    kvt_close(db);
    KVT_RC_FATAL(open_lz4(dir, KV_COMPRESS_NONE, 0, mmap_reads, 0, &db), KV_OK);
    for (size_t i = 0; i < nvals; i++) {
        uint8_t *v = make_value(vals[i].len, vals[i].pat, i);
        KVT_ASSERT_VALUE(db, vals[i].key, strlen(vals[i].key), v, vals[i].len);
        free(v);
    }
    kvt_close(db);
}

static void test_store_boundaries_mmap(void) { store_boundaries(1); }
static void test_store_boundaries_pread(void) { store_boundaries(0); }

/* The default compress_min_bytes, and the limits either side of it. */
static void test_store_default_min(void)
{
    char *dir = kvt_dir_new("lz4min");
    kv_options o;
    kv_db *db;
    kv_options_init(&o);
    KVT_CHECK(o.compress_min_bytes == KV_COMPRESS_MIN_DEFAULT && KV_COMPRESS_MIN_DEFAULT == 64,
              "default compress_min_bytes %zu", o.compress_min_bytes);
    KVT_RC_FATAL(open_lz4(dir, KV_COMPRESS_LZ4, KV_COMPRESS_MIN_DEFAULT, 1, 0, &db), KV_OK);
    uint8_t v[KV_COMPRESS_MIN_DEFAULT + 1];
    fill(v, sizeof v, PAT_ZERO, 0);
    KVT_CHECK(!put_counts(db, "a", v, KV_COMPRESS_MIN_DEFAULT - 1), "63 zeros stay plain");
    KVT_CHECK(put_counts(db, "b", v, KV_COMPRESS_MIN_DEFAULT), "64 zeros compressed");
    KVT_CHECK(put_counts(db, "c", v, KV_COMPRESS_MIN_DEFAULT + 1), "65 zeros compressed");
    KVT_ASSERT_VALUE(db, "a", 1, v, KV_COMPRESS_MIN_DEFAULT - 1);
    KVT_ASSERT_VALUE(db, "b", 1, v, KV_COMPRESS_MIN_DEFAULT);
    KVT_ASSERT_VALUE(db, "c", 1, v, KV_COMPRESS_MIN_DEFAULT + 1);
    kvt_close(db);
}

/* A random 64 MiB value is stored as given (LZ4 would grow it). */
static void test_store_max_random(void)
{
    char *dir = kvt_dir_new("lz4maxr");
    kv_db *db;
    uint8_t *v = make_value(KV_MAX_VALUE, PAT_RANDOM, 5);
    KVT_RC_FATAL(open_lz4(dir, KV_COMPRESS_LZ4, 0, 1, 0, &db), KV_OK);
    KVT_CHECK(!put_counts(db, "max", v, KV_MAX_VALUE), "random 64 MiB not compressed");
    KVT_ASSERT_VALUE(db, "max", 3, v, KV_MAX_VALUE);
    kvt_close(db);
    free(v);
}

/* Batches are compressed on kv_write, and the batch itself is left as it was: the
 * same batch then applies to a store without compression. */
static void test_store_batch(void)
{
    char *d1 = kvt_dir_new("lz4batch1"), *d2 = kvt_dir_new("lz4batch2");
    kv_db *a, *b;
    uint8_t *v = make_value(3000, PAT_TEXT, 1), *r = make_value(3000, PAT_RANDOM, 2);
    kv_batch *bt = kv_batch_new();
    KVT_CHECK_FATAL(bt != NULL, "kv_batch_new");
    KVT_RC_FATAL(open_lz4(d1, KV_COMPRESS_LZ4, 64, 1, 0, &a), KV_OK);
    KVT_RC_FATAL(open_lz4(d2, KV_COMPRESS_NONE, 64, 1, 0, &b), KV_OK);
    KVT_RC(kv_put(a, "gone", 4, "x", 1), KV_OK);
    KVT_RC(kv_put(b, "gone", 4, "x", 1), KV_OK);
    KVT_RC(kv_batch_put(bt, "text", 4, v, 3000), KV_OK);
    KVT_RC(kv_batch_put(bt, "random", 6, r, 3000), KV_OK);
    KVT_RC(kv_batch_delete(bt, "gone", 4), KV_OK);
    KVT_RC(kv_batch_put(bt, "small", 5, v, 10), KV_OK);
    KVT_RC(kv_batch_put(bt, "last", 4, v, 2000), KV_OK);
    KVT_RC(kv_write(a, bt), KV_OK);
    KVT_CHECK(compressed_count(a) == 2, "%llu values compressed, want 2",
              (unsigned long long)compressed_count(a));
    KVT_RC(kv_write(b, bt), KV_OK);
    KVT_CHECK(compressed_count(b) == 0, "no compression on the second store");
    kv_db *dbs[2] = {a, b};
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 2; i++) {
            kv_db *db = dbs[i];
            KVT_ASSERT_VALUE(db, "text", 4, v, 3000);
            KVT_ASSERT_VALUE(db, "random", 6, r, 3000);
            KVT_ASSERT_ABSENT(db, "gone", 4);
            KVT_ASSERT_VALUE(db, "small", 5, v, 10);
            KVT_ASSERT_VALUE(db, "last", 4, v, 2000);
        }
        kvt_close(a);
        kvt_close(b);
        KVT_RC_FATAL(open_lz4(d1, KV_COMPRESS_NONE, 64, 1, 0, &a), KV_OK);
        KVT_RC_FATAL(open_lz4(d2, KV_COMPRESS_LZ4, 64, 1, 0, &b), KV_OK);
        dbs[0] = a;
        dbs[1] = b;
    }
    kv_batch_free(bt);
    free(v);
    free(r);
}

/* Values of three sessions: none, lz4, none; small segments so some are sealed. */
static void session_value(char prefix, int i, uint8_t *v, size_t *vl)
{
    *vl = 300 + (size_t)(i % 7) * 50;
    fill(v, *vl, i % 5 == 0 ? PAT_RANDOM : PAT_TEXT, (uint64_t)prefix * 1000 + (uint64_t)i);
}

static void session_write(kv_db *db, char prefix, int n)
{
    uint8_t v[1000];
    size_t vl;
    char k[16];
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "%c%04d", prefix, i);
        session_value(prefix, i, v, &vl);
        KVT_RC_FATAL(kv_put(db, k, strlen(k), v, vl), KV_OK);
    }
}

static void session_check(kv_db *db, char prefix, int n)
{
    uint8_t v[1000];
    size_t vl;
    char k[16];
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "%c%04d", prefix, i);
        session_value(prefix, i, v, &vl);
        if (!KVT_ASSERT_VALUE(db, k, strlen(k), v, vl))
            break;
    }
}

static int foreach_count(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
    uint8_t want[1000];
    size_t wl;
    char key[16];
    snprintf(key, sizeof key, "%.*s", (int)kl, (const char *)k);
    session_value(key[0], atoi(key + 1), want, &wl);
    if (wl != vl || memcmp(want, v, vl) != 0)
        return 2; /* a wrong value stops the iteration */
    (*(int *)arg)++;
    return 0;
}

static void test_store_switch_both_ways(void)
{
    char *dir = kvt_dir_new("lz4switch");
    const int n = 200;
    kv_db *db;
    flag_count c = {.prefix = "A"};
    KVT_RC_FATAL(open_lz4(dir, KV_COMPRESS_NONE, 64, 1, 16384, &db), KV_OK);
    session_write(db, 'A', n);
    kvt_close(db);
    KVT_RC_FATAL(open_lz4(dir, KV_COMPRESS_LZ4, 64, 1, 16384, &db), KV_OK);
    session_check(db, 'A', n);
    session_write(db, 'B', n);
    KVT_CHECK(compressed_count(db) == (uint64_t)n * 4 / 5, "%llu of %d compressed in B",
              (unsigned long long)compressed_count(db), n);
    kvt_close(db);
    KVT_RC_FATAL(open_lz4(dir, KV_COMPRESS_NONE, 64, 0, 16384, &db), KV_OK);
    session_check(db, 'A', n);
    session_check(db, 'B', n);
    session_write(db, 'C', n);
    KVT_CHECK(compressed_count(db) == 0, "nothing compressed with KV_COMPRESS_NONE");
    kvt_close(db);
    /* On disk: A and C plain, B compressed except the random values. */
    scan_store_flags(dir, &c);
    KVT_CHECK(c.lz4_prefix == 0 && c.plain_prefix == (unsigned)n, "A: %u lz4, %u plain",
              c.lz4_prefix, c.plain_prefix);
    flag_count cb = {.prefix = "B"}, cc = {.prefix = "C"};
    scan_store_flags(dir, &cb);
    scan_store_flags(dir, &cc);
    KVT_CHECK(cb.lz4_prefix == (unsigned)n * 4 / 5 && cb.plain_prefix == (unsigned)n / 5,
              "B: %u lz4, %u plain", cb.lz4_prefix, cb.plain_prefix);
    KVT_CHECK(cc.lz4_prefix == 0 && cc.plain_prefix == (unsigned)n, "C: %u lz4", cc.lz4_prefix);
    /* Read-only, and through kv_foreach. */
    kv_options o;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 16384);
    o.read_only = 1;
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    session_check(db, 'B', n);
    int seen = 0;
    KVT_RC(kv_foreach(db, foreach_count, &seen), KV_OK);
    KVT_CHECK(seen == 3 * n, "kv_foreach saw %d values, want %d", seen, 3 * n);
    kvt_close(db);
}

/* A read-only handle indexes the writer's WAL and decompresses from it. */
static void test_store_readonly_wal(void)
{
    char *dir = kvt_dir_new("lz4ro");
    kv_db *w, *r;
    kv_options o;
    KVT_RC_FATAL(open_lz4(dir, KV_COMPRESS_LZ4, 64, 1, 0, &w), KV_OK);
    session_write(w, 'W', 50);
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 0);
    o.read_only = 1;
    KVT_RC_FATAL(kvt_open(dir, &o, &r), KV_OK);
    session_check(r, 'W', 50);
    kvt_close(r);
    kvt_close(w);
}

/* Writers on several threads compress in parallel, each with its own LZ4 state. */
struct thread_arg {
    kv_db *db;
    int id;
    int rc;
};

static void *writer_thread(void *p)
{
    struct thread_arg *a = p;
    uint8_t v[1000];
    size_t vl;
    char k[16];
    for (int i = 0; i < 300 && a->rc == KV_OK; i++) {
        snprintf(k, sizeof k, "%c%04d", 'a' + a->id, i);
        session_value((char)('a' + a->id), i, v, &vl);
        a->rc = kv_put(a->db, k, strlen(k), v, vl);
    }
    return NULL;
}

static void test_store_threads(void)
{
    char *dir = kvt_dir_new("lz4threads");
    kv_db *db;
    pthread_t t[4];
    struct thread_arg args[4];
    KVT_RC_FATAL(open_lz4(dir, KV_COMPRESS_LZ4, 64, 1, 65536, &db), KV_OK);
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){db, i, KV_OK};
        KVT_CHECK_FATAL(pthread_create(&t[i], NULL, writer_thread, &args[i]) == 0, "thread");
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        KVT_RC(args[i].rc, KV_OK);
    }
    KVT_CHECK(compressed_count(db) == 4 * 300 * 4 / 5, "%llu compressed",
              (unsigned long long)compressed_count(db));
    for (int i = 0; i < 4; i++)
        session_check(db, (char)('a' + i), 300);
    kvt_close(db);
}

/* ---------------------------------------------------------------------------------
 * 4. Recovery
 * ------------------------------------------------------------------------------ */

/* A writer killed after its puts were acknowledged (KV_SYNC_NONE: in the kernel),
 * before the segment buffer reached the file: reopening replays the compressed
 * entries from the WAL, under either compression setting. */
static void test_recovery_wal_replay(void)
{
    char *dir = kvt_dir_new("lz4replay");
    const int n = 120; /* ~40 KiB compressed: stays in the 256 KiB segment buffer */
    char wal[32];
    kv_db *db;
    kv_stats st;
    fflush(NULL);
    pid_t pid = fork();
    KVT_CHECK_FATAL(pid >= 0, "fork");
    if (pid == 0) {
        kv_options o;
        kv_db *c;
        uint8_t v[1000];
        size_t vl;
        char k[16];
        kv_options_init(&o);
        o.sync = KV_SYNC_NONE;
        o.compression = KV_COMPRESS_LZ4;
        if (kv_open(dir, &o, &c) != KV_OK)
            _exit(3);
        for (int i = 0; i < n; i++) {
            snprintf(k, sizeof k, "R%04d", i);
            session_value('R', i, v, &vl);
            if (kv_put(c, k, strlen(k), v, vl) != KV_OK)
                _exit(4);
        }
        raise(SIGKILL); /* killed, no kv_close: the segment buffer is lost (and
                           valgrind, which counts an unclosed handle as a leak at
                           exit, has nothing to report) */
    }
    int status;
    KVT_CHECK_FATAL(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status)
                        && WTERMSIG(status) == SIGKILL, "child status 0x%x", status);
    flag_count c = {.prefix = "R"};
    scan_file_flags(dir, newest(dir, "wal", wal, sizeof wal), &c);
    KVT_CHECK(c.records == (unsigned)n && c.lz4 == (unsigned)n * 4 / 5,
              "WAL holds %u records, %u compressed", c.records, c.lz4);
    for (int pass = 0; pass < 2; pass++) {
        KVT_RC_FATAL(open_lz4(dir, pass ? KV_COMPRESS_NONE : KV_COMPRESS_LZ4, 64, 1, 0, &db),
                     KV_OK);
        KVT_RC(kv_stat(db, &st), KV_OK);
        KVT_CHECK(st.keys == (uint64_t)n, "%llu keys", (unsigned long long)st.keys);
        if (pass == 0)
            KVT_CHECK(st.recovery_wal_replayed == (uint64_t)n, "replayed %llu, want %d",
                      (unsigned long long)st.recovery_wal_replayed, n);
        session_check(db, 'R', n);
        kvt_close(db);
    }
    /* After the replay, the segment holds the same compressed records. */
    char seg[32];
    flag_count s = {.prefix = "R"};
    scan_file_flags(dir, newest(dir, "seg", seg, sizeof seg), &s);
    KVT_CHECK(s.lz4_prefix == (unsigned)n * 4 / 5, "segment: %u compressed", s.lz4_prefix);
}

/* Compaction copies records as they are: in a store written half without and half
 * with compression, where some keys were rewritten under the other setting, the
 * records that survive compaction have the form their writer gave them. */
static void test_compaction_keeps_form(void)
{
    char *dir = kvt_dir_new("lz4compact");
    const int n = 200;
    kv_db *db;
    kv_stats st;
    kv_options o;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 16384);
    o.auto_compact = 0;
    o.compact_dead_ratio = 0.01; /* every segment with a dead record is rewritten */
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    session_write(db, 'A', n);
    kvt_close(db);
    o.compression = KV_COMPRESS_LZ4;
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    session_write(db, 'B', n);
    /* A0000..A0099 again, now compressed (the text ones). */
    uint8_t v[1000];
    size_t vl;
    char k[16];
    for (int i = 0; i < n / 2; i++) {
        snprintf(k, sizeof k, "A%04d", i);
        session_value('A', i, v, &vl);
        KVT_RC_FATAL(kv_put(db, k, strlen(k), v, vl), KV_OK);
    }
    kvt_close(db);
    o.compression = KV_COMPRESS_NONE; /* compaction under the other setting */
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    KVT_RC_FATAL(kv_compact(db), KV_OK);
    KVT_RC(kv_stat(db, &st), KV_OK);
    KVT_CHECK(st.compactions >= 1 && st.compact_records_dropped >= (uint64_t)n / 2,
              "%llu passes dropped %llu records", (unsigned long long)st.compactions,
              (unsigned long long)st.compact_records_dropped);
    session_check(db, 'A', n);
    session_check(db, 'B', n);
    kvt_close(db);
    /* Only live records are left: A's first half compressed as rewritten (but the
     * random fifth), its second half plain as first written; B as written. */
    flag_count ca = {.prefix = "A"}, cb = {.prefix = "B"};
    scan_store_flags(dir, &ca);
    scan_store_flags(dir, &cb);
    KVT_CHECK(ca.lz4_prefix == (unsigned)n / 2 * 4 / 5
                  && ca.plain_prefix == (unsigned)n / 2 + (unsigned)n / 2 / 5,
              "A: %u compressed (want %d), %u plain (want %d)", ca.lz4_prefix, n / 2 * 4 / 5,
              ca.plain_prefix, n / 2 + n / 2 / 5);
    KVT_CHECK(cb.lz4_prefix == (unsigned)n * 4 / 5 && cb.plain_prefix == (unsigned)n / 5,
              "B: %u compressed, %u plain", cb.lz4_prefix, cb.plain_prefix);
}

/* ---- damaged compressed records in a store ----------------------------------------- */

/* Writes the compressed record "victim" first (offset 16 of 000001.seg), then enough
 * to seal that segment (so it is read through its hint, not scanned at open). */
static void damaged_store(const char *dir, uint8_t *v, size_t vl)
{
    kv_db *db;
    fill(v, vl, PAT_TEXT, 4);
    KVT_RC_FATAL(open_lz4(dir, KV_COMPRESS_LZ4, 64, 1, 4096, &db), KV_OK);
    KVT_CHECK_FATAL(put_counts(db, "victim", v, vl), "victim compressed");
    session_write(db, 'F', 40);
    kvt_close(db);
    KVT_CHECK_FATAL(access(kvt_path(dir, "000002.seg"), F_OK) == 0, "000001.seg sealed");
}

struct patch {
    int what;     /* 0 raw length, 1 flip a bit of the block, 2 first token */
    uint32_t raw; /* raw length to store */
    size_t byte;  /* byte of the block to flip */
};

static void mutate(uint8_t *rec, size_t klen, size_t size, void *arg)
{
    struct patch *p = arg;
    uint8_t *val = rec + KV_ENTRY_HDR + klen;
    if (p->what == 0)
        kv_put32(val, p->raw);
    else if (p->what == 1)
        val[KV_LZ4_RAW_LEN + p->byte] ^= 0x04;
    else
        val[KV_LZ4_RAW_LEN] ^= 0x80;
}

/* Damages the victim, then: get with the hint (open does not read the record), and
 * open without the hint (the segment is scanned): each KV_ECORRUPT or, where the CRC
 * is intact and only the decoder can tell, a get KV_ECORRUPT. Messages name
 * 000001.seg and offset 16, plus what failed. */
static void damaged_case(const char *tag, struct patch p, int reseal, const char *expect,
                         int open_fails)
{
    char *dir = kvt_dir_new(tag);
    uint8_t v[3000];
    void *out = (void *)1;
    size_t ol;
    kv_db *db;
    damaged_store(dir, v, sizeof v);
    patch_record(dir, "000001.seg", KV_FILE_HDR_SIZE, mutate, &p, reseal);
    for (int mm = 0; mm < 2; mm++) {
        KVT_RC_FATAL(open_lz4(dir, KV_COMPRESS_LZ4, 64, mm, 4096, &db), KV_OK);
        KVT_RC(kv_get(db, "victim", 6, &out, &ol), KV_ECORRUPT);
        KVT_CHECK(out == NULL && strstr(kv_errmsg(), "000001.seg") != NULL
                      && strstr(kv_errmsg(), "offset 16") != NULL
                      && strstr(kv_errmsg(), expect) != NULL,
                  "%s (mmap %d): message names file, offset and \"%s\": %s", tag, mm, expect,
                  kv_errmsg());
        session_check(db, 'F', 40); /* the rest is intact */
        kvt_close(db);
    }
    KVT_CHECK_FATAL(unlink(kvt_path(dir, "000001.hint")) == 0, "remove the hint");
    int rc = open_lz4(dir, KV_COMPRESS_LZ4, 64, 1, 4096, &db);
    if (open_fails) {
        KVT_RC(rc, KV_ECORRUPT);
        KVT_CHECK(strstr(kv_errmsg(), "000001.seg") && strstr(kv_errmsg(), "offset 16"),
                  "%s: open names file and offset: %s", tag, kv_errmsg());
    } else {
        KVT_RC_FATAL(rc, KV_OK);
        KVT_RC(kv_get(db, "victim", 6, &out, &ol), KV_ECORRUPT);
        kvt_close(db);
    }
}

static void test_damage_flip_unsealed(void)
{
    damaged_case("lz4flip", (struct patch){1, 0, 7}, 0, "checksum mismatch", 1);
}

static void test_damage_raw_too_big(void)
{
    damaged_case("lz4rawbig", (struct patch){0, KV_MAX_VALUE + 1, 0}, 1, "raw length", 1);
}

static void test_damage_raw_off_by_one(void)
{
    damaged_case("lz4rawplus", (struct patch){0, 3001, 0}, 1, "raw length says 3001", 0);
    damaged_case("lz4rawminus", (struct patch){0, 2999, 0}, 1, "malformed block", 0);
}

static void test_damage_token_resealed(void)
{
    damaged_case("lz4token", (struct patch){2, 0, 0}, 1, "LZ4 value", 0);
}

/* A truncated block can only come with a shorter record: one is crafted (CRC valid)
 * and appended to the WAL of a closed store; kv_open replays it into the active
 * segment, and the get that reads it reports KV_ECORRUPT there. */
static void test_damage_truncated_via_wal(void)
{
    char *dir = kvt_dir_new("lz4trunc");
    char wal[32], seg[32];
    kv_db *db;
    kv_stats st;
    uint8_t v[2000], rec[2100];
    void *out;
    size_t ol;
    KVT_RC_FATAL(open_lz4(dir, KV_COMPRESS_LZ4, 64, 1, 0, &db), KV_OK);
    session_write(db, 'T', 10);
    KVT_RC(kv_stat(db, &st), KV_OK);
    kvt_close(db);
    fill(v, sizeof v, PAT_TEXT, 8);
    size_t n = compress_entry_encode(rec, KV_REC_PUT, 0, "trunc", 5, v, sizeof v, 0);
    KVT_CHECK_FATAL(rec[KV_ENTRY_OFF_FLAGS] & KV_RECF_LZ4, "compressed");
    n -= 9; /* cut the block's last 9 bytes */
    kv_put32(rec + KV_ENTRY_OFF_VLEN, (uint32_t)(n - KV_ENTRY_HDR - 5));
    entry_seal(rec, n, st.next_seq);
    newest(dir, "wal", wal, sizeof wal);
    int fd = open(kvt_path(dir, wal), O_WRONLY | O_APPEND);
    KVT_CHECK_FATAL(fd >= 0 && write(fd, rec, n) == (ssize_t)n, "append to %s", wal);
    close(fd);
    KVT_RC_FATAL(open_lz4(dir, KV_COMPRESS_NONE, 64, 1, 0, &db), KV_OK);
    KVT_RC(kv_stat(db, &st), KV_OK);
    KVT_CHECK(st.recovery_wal_replayed == 1 && st.keys == 11, "replayed %llu, %llu keys",
              (unsigned long long)st.recovery_wal_replayed, (unsigned long long)st.keys);
    KVT_RC(kv_get(db, "trunc", 5, &out, &ol), KV_ECORRUPT);
    newest(dir, "seg", seg, sizeof seg);
    KVT_CHECK(strstr(kv_errmsg(), seg) && strstr(kv_errmsg(), "offset")
                  && strstr(kv_errmsg(), "LZ4"), "names %s, the offset and LZ4: %s", seg,
              kv_errmsg());
    session_check(db, 'T', 10);
    kvt_close(db);
}

/* ---------------------------------------------------------------------------------
 * 5. kv_stat's byte counters
 * ------------------------------------------------------------------------------ */

static void test_stat_counters(void)
{
    char *dir = kvt_dir_new("lz4stat");
    kv_db *db;
    kv_stats st;
    uint8_t *z = make_value(1000, PAT_ZERO, 0), *r = make_value(1000, PAT_RANDOM, 1);
    uint8_t enc[1100];
    size_t zstored = compress_entry_encode(enc, KV_REC_PUT, 0, "z", 1, z, 1000, 64)
                     - entry_size(1, 0);
    KVT_RC_FATAL(open_lz4(dir, KV_COMPRESS_LZ4, 64, 1, 0, &db), KV_OK);
    KVT_RC(kv_stat(db, &st), KV_OK);
    KVT_CHECK(st.compression == KV_COMPRESS_LZ4 && st.value_bytes_raw == 0
                  && st.value_bytes_stored == 0 && st.values_compressed == 0, "fresh store");
    KVT_RC(kv_put(db, "z", 1, z, 1000), KV_OK);   /* compressed */
    KVT_RC(kv_put(db, "r", 1, r, 1000), KV_OK);   /* random: plain */
    KVT_RC(kv_put(db, "s", 1, z, 10), KV_OK);     /* below min: plain */
    KVT_RC(kv_delete(db, "s", 1), KV_OK);         /* not a value */
    kv_batch *b = kv_batch_new();
    KVT_RC(kv_batch_put(b, "bz", 2, z, 1000), KV_OK);
    KVT_RC(kv_batch_delete(b, "r", 1), KV_OK);
    KVT_RC(kv_write(db, b), KV_OK);
    kv_batch_free(b);
    KVT_RC(kv_stat(db, &st), KV_OK);
    KVT_CHECK(st.value_bytes_raw == 3010 && st.value_bytes_stored == 2 * zstored + 1010
                  && st.values_compressed == 2,
              "raw %llu (want 3010), stored %llu (want %zu), compressed %llu (want 2)",
              (unsigned long long)st.value_bytes_raw, (unsigned long long)st.value_bytes_stored,
              2 * zstored + 1010, (unsigned long long)st.values_compressed);
    kvt_close(db);
    /* Counters are per open; without compression stored equals raw. */
    KVT_RC_FATAL(open_lz4(dir, KV_COMPRESS_NONE, 64, 1, 0, &db), KV_OK);
    KVT_RC(kv_put(db, "z2", 2, z, 1000), KV_OK);
    KVT_RC(kv_stat(db, &st), KV_OK);
    KVT_CHECK(st.compression == KV_COMPRESS_NONE && st.value_bytes_raw == 1000
                  && st.value_bytes_stored == 1000 && st.values_compressed == 0,
              "none: raw %llu stored %llu compressed %llu",
              (unsigned long long)st.value_bytes_raw,
              (unsigned long long)st.value_bytes_stored,
              (unsigned long long)st.values_compressed);
    kvt_close(db);
    free(z);
    free(r);
}

void kvt_register_lz4(void)
{
    static const kvt_test tests[] = {
        {"codec: round trips at boundary sizes", test_codec_boundaries},
        {"codec: compressed only when it saves space", test_codec_only_when_smaller},
        {"codec: batch re-encoding keeps order and flags", test_codec_batch},
        {"codec: damaged values refused, never overflow", test_codec_damage},
        {"store: boundary sizes round trip (mmap)", test_store_boundaries_mmap},
        {"store: boundary sizes round trip (pread)", test_store_boundaries_pread},
        {"store: default compress_min_bytes +-1", test_store_default_min},
        {"store: random KV_MAX_VALUE stored plain", test_store_max_random},
        {"store: batches compressed, batch left unchanged", test_store_batch},
        {"store: compression switched both ways between opens", test_store_switch_both_ways},
        {"store: read-only handle decompresses from the WAL", test_store_readonly_wal},
        {"store: concurrent writers compress in parallel", test_store_threads},
        {"recovery: WAL replay of compressed entries", test_recovery_wal_replay},
        {"compaction keeps each record's compression", test_compaction_keeps_form},
        {"damage: flipped block byte, CRC not resealed", test_damage_flip_unsealed},
        {"damage: raw length above KV_MAX_VALUE", test_damage_raw_too_big},
        {"damage: raw length off by one, CRC resealed", test_damage_raw_off_by_one},
        {"damage: first token flipped, CRC resealed", test_damage_token_resealed},
        {"damage: truncated block replayed from the WAL", test_damage_truncated_via_wal},
        {"kv_stat: value bytes before and after compression", test_stat_counters},
        {NULL, NULL},
    };
    kvt_add_suite("lz4", tests);
}
