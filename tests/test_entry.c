/*
 * test_entry.c — the on-disk codecs and what recovery does with damage.
 *
 * Sections: entry encode/decode round trips; every single-byte corruption of an
 * entry is detected; the scanner (torn tails at every length, batches all or
 * nothing); file headers and the MANIFEST (every byte flip detected); recovery of
 * real stores with damage injected at named places (a sealed segment → KV_ECORRUPT
 * naming file and offset; a torn active segment or WAL tail → cut, nothing lost).
 */
#include "kvtest.h"

#include "base/crc.h"
#include "format/entry.h"
#include "store/index.h"
#include "io/io.h"
#include "store/manifest.h"
#include "store/scan.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- entry round trips ------------------------------------------------------------- */

static size_t make_entry(uint8_t *buf, int type, int flags, const void *k, size_t kl,
                         const void *v, size_t vl, uint64_t seq)
{
    size_t n = entry_encode(buf, type, flags, k, kl, v, vl);
    entry_seal(buf, n, seq);
    return n;
}

static void test_entry_roundtrip(void)
{
    static const size_t klens[] = {1, 2, 16, 255, 65535};
    static const size_t vlens[] = {0, 1, 100, 4096, 70000};
    kvt_rng rng;
    kvt_rng_seed(&rng, 7);
    for (size_t a = 0; a < sizeof klens / sizeof *klens; a++) {
        for (size_t b = 0; b < sizeof vlens / sizeof *vlens; b++) {
            size_t kl = klens[a], vl = vlens[b];
            uint8_t *k = malloc(kl), *v = malloc(vl + 1), *buf = malloc(entry_size(kl, vl));
            kvt_rng_fill(&rng, k, kl);
            kvt_rng_fill(&rng, v, vl);
            uint64_t seq = kvt_rng_next(&rng);
            size_t n = make_entry(buf, KV_REC_PUT, 0, k, kl, v, vl, seq);
            kv_entry e;
            char why[128];
            KVT_CHECK(n == KV_ENTRY_HDR + kl + vl, "size %zu for klen %zu vlen %zu", n, kl, vl);
            KVT_CHECK(entry_parse(buf, n, &e, why, sizeof why) == ENTRY_OK, "parse klen %zu vlen %zu",
                      kl, vl);
            KVT_CHECK(e.seq == seq && e.type == KV_REC_PUT && e.klen == kl && e.vlen == vl
                          && memcmp(e.key, k, kl) == 0 && memcmp(e.val, v, vl) == 0,
                      "fields differ after round trip (klen %zu vlen %zu)", kl, vl);
            KVT_CHECK(entry_parse(buf, n - 1, &e, why, sizeof why) == ENTRY_SHORT,
                      "one byte short must be ENTRY_SHORT");
            free(k);
            free(v);
            free(buf);
        }
    }
    uint8_t del[64];
    size_t n = make_entry(del, KV_REC_DEL, KV_RECF_BATCH, "gone", 4, NULL, 0, 42);
    kv_entry e;
    char why[128];
    KVT_CHECK(entry_parse(del, n, &e, why, sizeof why) == ENTRY_OK && e.type == KV_REC_DEL
                  && e.flags == KV_RECF_BATCH && e.seq == 42, "delete entry round trip");
}

/* Flipping any bit pattern in any byte of an entry must never parse as valid. */
static void test_entry_every_byte_corruption(void)
{
    static const uint8_t masks[] = {0x01, 0x02, 0x10, 0x80, 0xff, 0x5a};
    uint8_t buf[128], bad[128];
    size_t n = make_entry(buf, KV_REC_PUT, 0, "key\0x", 5, "a value of twenty b", 19, 123456);
    unsigned tried = 0, detected = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t m = 0; m < sizeof masks; m++) {
            kv_entry e;
            char why[128];
            memcpy(bad, buf, n);
            bad[i] ^= masks[m];
            tried++;
            if (entry_parse(bad, n, &e, why, sizeof why) != ENTRY_OK)
                detected++;
            else
                KVT_CHECK(0, "flip 0x%02x at byte %zu was not detected", masks[m], i);
        }
    }
    KVT_CHECK(detected == tried, "%u of %u corruptions detected", detected, tried);
}

/* A length field the bytes cannot back fails without reading past them. */
static void test_entry_huge_length(void)
{
    uint8_t buf[64];
    size_t n = make_entry(buf, KV_REC_PUT, 0, "k", 1, "v", 1, 1);
    kv_entry e;
    char why[128];
    kv_put32(buf + KV_ENTRY_OFF_VLEN, 0xFFFFFFF0u);
    KVT_CHECK(entry_parse(buf, n, &e, why, sizeof why) == ENTRY_BAD, "4 GiB value length");
    kv_put32(buf + KV_ENTRY_OFF_VLEN, KV_MAX_VALUE);
    KVT_CHECK(entry_parse(buf, n, &e, why, sizeof why) == ENTRY_SHORT, "64 MiB in 22 bytes");
    buf[KV_ENTRY_OFF_TYPE] = 9;
    KVT_CHECK(entry_parse(buf, n, &e, why, sizeof why) == ENTRY_BAD
                  && strstr(why, "type") != NULL, "unknown type: %s", why);
}

/* ---- the scanner ------------------------------------------------------------------- */

typedef struct scanned {
    uint64_t seqs[64];
    int n;
} scanned;

static int collect(void *arg, const kv_entry *e, uint64_t off)
{
    scanned *s = arg;
    if (s->n < 64)
        s->seqs[s->n++] = e->seq;
    return 0;
}

/* File: header, put(1), batch(2,3,4), del(5), put(6). Returns the size; ends[] gets
 * the offset after each unit (single entry or whole batch). */
static size_t build_file(uint8_t *f, size_t ends[4])
{
    size_t off = KV_FILE_HDR_SIZE;
    file_header_encode(f, KV_MAGIC_SEG, 1);
    off += make_entry(f + off, KV_REC_PUT, 0, "a", 1, "one", 3, 1);
    ends[0] = off;
    off += make_entry(f + off, KV_REC_PUT, KV_RECF_BATCH, "b", 1, "two", 3, 2);
    off += make_entry(f + off, KV_REC_DEL, KV_RECF_BATCH, "a", 1, NULL, 0, 3);
    off += make_entry(f + off, KV_REC_PUT, 0, "c", 1, "three", 5, 4);
    ends[1] = off;
    off += make_entry(f + off, KV_REC_DEL, 0, "b", 1, NULL, 0, 5);
    ends[2] = off;
    off += make_entry(f + off, KV_REC_PUT, 0, "d", 1, "", 0, 6);
    ends[3] = off;
    return off;
}

static void test_scan_every_truncation(void)
{
    uint8_t f[512];
    size_t ends[4];
    size_t size = build_file(f, ends);
    static const int units[] = {1, 3, 1, 1};
    for (size_t cut = KV_FILE_HDR_SIZE; cut <= size; cut++) {
        scanned s = {.n = 0};
        kv_scan_result res;
        int want = 0;
        size_t want_end = KV_FILE_HDR_SIZE;
        for (int u = 0; u < 4; u++)
            if (ends[u] <= cut) {
                want += units[u];
                want_end = ends[u];
            }
        KVT_CHECK(scan_buffer(f, cut, KV_FILE_HDR_SIZE, collect, &s, &res) == KV_OK, "scan");
        KVT_CHECK(s.n == want && res.valid_end == want_end && res.stopped == (cut != want_end),
                  "cut at %zu: %d entries (want %d), valid_end %llu (want %zu)", cut, s.n, want,
                  (unsigned long long)res.valid_end, want_end);
    }
}

static void test_scan_damage_stops_batch(void)
{
    uint8_t f[512];
    size_t ends[4];
    size_t size = build_file(f, ends);
    /* Damage the last entry of the batch: none of the batch may be delivered. */
    f[ends[1] - 1] ^= 0x40;
    scanned s = {.n = 0};
    kv_scan_result res;
    KVT_CHECK(scan_buffer(f, size, KV_FILE_HDR_SIZE, collect, &s, &res) == KV_OK, "scan");
    KVT_CHECK(s.n == 1 && s.seqs[0] == 1, "only the entry before the batch: got %d", s.n);
    KVT_CHECK(res.stopped && res.valid_end == ends[0] && strstr(res.why, "checksum") != NULL,
              "stopped at %llu (%s)", (unsigned long long)res.valid_end, res.why);
}

/* ---- file headers and MANIFEST ----------------------------------------------------- */

/* A header with a newer version, checksummed as its writer would. */
static void newer_header(uint8_t *h, const char *magic, uint32_t number)
{
    file_header_encode(h, magic, number);
    kv_put16(h + 4, KV_FORMAT_VERSION + 1);
    kv_put32(h + 12, kv_crc32c(h, 12));
}

static void test_file_header(void)
{
    uint8_t h[KV_FILE_HDR_SIZE];
    uint32_t num;
    int too_new;
    file_header_encode(h, KV_MAGIC_WAL, 77);
    KVT_CHECK(file_header_check(h, KV_MAGIC_WAL, &num, &too_new) == NULL && num == 77, "valid");
    KVT_CHECK(file_header_check(h, KV_MAGIC_SEG, &num, &too_new) != NULL, "wrong magic");
    kv_put16(h + 4, KV_FORMAT_VERSION + 1); /* stale CRC: rejected as damage */
    KVT_CHECK(file_header_check(h, KV_MAGIC_WAL, &num, &too_new) != NULL && !too_new, "stale crc");
    newer_header(h, KV_MAGIC_WAL, 77);
    KVT_CHECK(file_header_check(h, KV_MAGIC_WAL, &num, &too_new) != NULL && too_new,
              "newer version recognised as such");
}

static void test_manifest_every_byte(void)
{
    char *dir = kvt_dir_new("manifest");
    kv_io *io;
    KVT_RC_FATAL(io_new(KV_IO_PSYNC, &io), KV_OK);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    kv_manifest_seg segs[3] = {{1, 0, 4096}, {2, 0, 5000}, {4, 0, 16}};
    kv_manifest m = {.active = 5, .next_file = 6, .nsealed = 3, .sealed = segs}, back;
    KVT_RC_FATAL(manifest_store(io, dfd, &m, NULL), KV_OK);
    KVT_RC_FATAL(manifest_load(io, dfd, &back), KV_OK);
    KVT_CHECK(back.active == 5 && back.next_file == 6 && back.nsealed == 3
                  && back.sealed[1].number == 2 && back.sealed[1].size == 5000
                  && back.generation == m.generation, "MANIFEST round trip");
    manifest_free(&back);
    char *path = kvt_path(dir, "MANIFEST");
    FILE *fp = fopen(path, "rb");
    uint8_t img[256];
    size_t n = fread(img, 1, sizeof img, fp);
    fclose(fp);
    unsigned detected = 0;
    for (size_t i = 0; i < n; i++) {
        img[i] ^= 0x20;
        int rc = manifest_decode(img, n, &back);
        if (rc != KV_OK)
            detected++;
        else
            manifest_free(&back);
        img[i] ^= 0x20;
    }
    KVT_CHECK(detected == n, "%u of %zu MANIFEST byte flips detected", detected, n);
    KVT_CHECK(manifest_decode(img, n - 1, &back) == KV_ECORRUPT, "truncated MANIFEST");
    close(dfd);
    io_free(io);
}

/* ---- recovery of damaged stores ---------------------------------------------------- */

static void fill_store(const char *dir, int n, uint64_t seg_bytes)
{
    kv_db *db;
    char k[32], v[64];
    KVT_RC_FATAL(kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_AUTO, seg_bytes, &db), KV_OK);
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "key%05d", i);
        snprintf(v, sizeof v, "value-%05d-padding-padding", i);
        KVT_RC_FATAL(kv_put(db, k, strlen(k), v, strlen(v)), KV_OK);
    }
    KVT_RC_FATAL(kvt_close(db), KV_OK);
}

static void check_store(const char *dir, int n)
{
    kv_db *db;
    char k[32], v[64];
    KVT_RC_FATAL(kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_AUTO, 4096, &db), KV_OK);
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "key%05d", i);
        snprintf(v, sizeof v, "value-%05d-padding-padding", i);
        KVT_ASSERT_VALUE(db, k, strlen(k), v, strlen(v));
    }
    kvt_close(db);
}

static void flip_byte(const char *dir, const char *name, off_t off)
{
    char *p = kvt_path(dir, name);
    int fd = open(p, O_RDWR);
    uint8_t b;
    KVT_CHECK_FATAL(fd >= 0 && pread(fd, &b, 1, off) == 1, "open %s", p);
    b ^= 0x08;
    KVT_CHECK_FATAL(pwrite(fd, &b, 1, off) == 1, "write %s", p);
    close(fd);
}

/* Damage inside a sealed segment: with its hint, kv_open does not read the records,
 * and the get that reads the damaged one reports it; without the hint, kv_open scans
 * the segment and refuses it. Either way: KV_ECORRUPT naming file and offset. */
static void test_recover_sealed_damage(void)
{
    char *dir = kvt_dir_new("sealed");
    kv_db *db;
    void *v;
    size_t vl;
    fill_store(dir, 300, 4096);
    /* key00000 is the first record of 000001.seg: flip a byte of its value. */
    flip_byte(dir, "000001.seg", KV_FILE_HDR_SIZE + KV_ENTRY_HDR + 8 + 3);
    KVT_RC_FATAL(kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_AUTO, 4096, &db), KV_OK);
    KVT_RC(kv_get(db, "key00000", 8, &v, &vl), KV_ECORRUPT);
    KVT_CHECK(strstr(kv_errmsg(), "000001.seg") && strstr(kv_errmsg(), "offset 16"),
              "get names file and offset: %s", kv_errmsg());
    kvt_close(db);
    KVT_CHECK_FATAL(unlink(kvt_path(dir, "000001.hint")) == 0, "remove the hint");
    KVT_RC(kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_AUTO, 4096, &db), KV_ECORRUPT);
    KVT_CHECK(strstr(kv_errmsg(), "000001.seg") && strstr(kv_errmsg(), "offset 16"),
              "open names file and offset: %s", kv_errmsg());
}

static void test_recover_segment_version(void)
{
    char *dir = kvt_dir_new("version");
    kv_db *db;
    uint8_t h[KV_FILE_HDR_SIZE];
    fill_store(dir, 300, 4096);
    char *p = kvt_path(dir, "000002.seg");
    int fd = open(p, O_RDWR);
    newer_header(h, KV_MAGIC_SEG, 2);
    KVT_CHECK_FATAL(fd >= 0 && pwrite(fd, h, sizeof h, 0) == (ssize_t)sizeof h, "write header");
    close(fd);
    KVT_RC(kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_AUTO, 4096, &db), KV_EVERSION);
    KVT_CHECK(strstr(kv_errmsg(), "000002.seg") != NULL, "names the file: %s", kv_errmsg());
}

static void truncate_by(const char *dir, const char *name, off_t by)
{
    char *p = kvt_path(dir, name);
    struct stat st;
    KVT_CHECK_FATAL(stat(p, &st) == 0 && truncate(p, st.st_size - by) == 0, "truncate %s", p);
}

static const char *newest(const char *dir, const char *ext, char *buf, size_t n)
{
    /* The active file has the highest number; probe downwards. */
    for (int i = 999; i > 0; i--) {
        snprintf(buf, n, "%06d.%s", i, ext);
        char *p = kvt_path(dir, buf);
        if (access(p, F_OK) == 0)
            return buf;
    }
    return NULL;
}

static void test_recover_torn_active_segment(void)
{
    char *dir = kvt_dir_new("tornseg");
    char name[32];
    fill_store(dir, 300, 4096);
    KVT_CHECK_FATAL(newest(dir, "seg", name, sizeof name) != NULL, "active segment");
    truncate_by(dir, name, 7); /* the WAL still has everything */
    check_store(dir, 300);
}

static void test_recover_torn_wal(void)
{
    char *dir = kvt_dir_new("tornwal");
    char name[32];
    kv_db *db;
    kv_stats st;
    fill_store(dir, 300, 1 << 20);
    KVT_CHECK_FATAL(newest(dir, "wal", name, sizeof name) != NULL, "WAL");
    /* Garbage after the last record, as a torn append leaves it. */
    char *p = kvt_path(dir, name);
    int fd = open(p, O_WRONLY | O_APPEND);
    KVT_CHECK_FATAL(fd >= 0 && write(fd, "\x55\x13\x00\x99garbage", 11) == 11, "append");
    close(fd);
    KVT_RC_FATAL(kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_AUTO, 1 << 20, &db), KV_OK);
    KVT_CHECK(kv_stat(db, &st) == KV_OK && st.recovery_cut_bytes == 11 && st.keys == 300,
              "cut %llu bytes, %llu keys", (unsigned long long)st.recovery_cut_bytes,
              (unsigned long long)st.keys);
    kvt_close(db);
    check_store(dir, 300);
}

/* A record damaged on disk after open is caught by the get that reads it, through
 * the mapping and through pread alike: KV_ECORRUPT naming file and offset. */
static void get_after_damage(int mmap_reads)
{
    char *dir = kvt_dir_new(mmap_reads ? "getmmap" : "getpread");
    kv_options o;
    kv_db *db;
    void *v;
    size_t vl;
    fill_store(dir, 300, 4096);
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 4096);
    o.mmap_reads = mmap_reads;
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    KVT_ASSERT_VALUE(db, "key00000", 8, "value-00000-padding-padding", 27);
    /* key00000 is the first record of 000001.seg: its value starts at 16+20+8. */
    flip_byte(dir, "000001.seg", KV_FILE_HDR_SIZE + KV_ENTRY_HDR + 8 + 3);
    KVT_RC(kv_get(db, "key00000", 8, &v, &vl), KV_ECORRUPT);
    KVT_CHECK(v == NULL && strstr(kv_errmsg(), "000001.seg") && strstr(kv_errmsg(), "offset 16"),
              "message names file and offset: %s", kv_errmsg());
    KVT_ASSERT_VALUE(db, "key00001", 8, "value-00001-padding-padding", 27);
    kvt_close(db);
}

static void test_get_damage_mmap(void) { get_after_damage(1); }
static void test_get_damage_pread(void) { get_after_damage(0); }

/* ---- hint files -------------------------------------------------------------------- */

static void open_stats(const char *dir, int n, kv_stats *st)
{
    kv_db *db;
    KVT_RC_FATAL(kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_AUTO, 4096, &db), KV_OK);
    KVT_RC_FATAL(kv_stat(db, st), KV_OK);
    KVT_CHECK(st->keys == (uint64_t)n, "%llu keys after reopen, want %d",
              (unsigned long long)st->keys, n);
    kvt_close(db);
}

static void test_hints_used_on_reopen(void)
{
    char *dir = kvt_dir_new("hints");
    kv_stats st;
    fill_store(dir, 600, 4096);
    open_stats(dir, 600, &st);
    KVT_CHECK(st.segments > 5 && st.recovery_hints == st.segments - 1
                  && st.recovery_hints_rewritten == 0,
              "%llu segments, %llu from hints, %llu rewritten", (unsigned long long)st.segments,
              (unsigned long long)st.recovery_hints, (unsigned long long)st.recovery_hints_rewritten);
    check_store(dir, 600);
}

static void copy_file(const char *from, const char *to)
{
    uint8_t buf[1 << 16];
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    KVT_CHECK_FATAL(in != NULL && out != NULL, "copy %s -> %s", from, to);
    size_t n = fread(buf, 1, sizeof buf, in);
    KVT_CHECK_FATAL(fwrite(buf, 1, n, out) == n, "write %s", to);
    fclose(in);
    fclose(out);
}

/* A missing hint, a damaged one and one of another segment are each rewritten, and
 * the next open uses them again. */
static void test_bad_hints_rewritten(void)
{
    char *dir = kvt_dir_new("badhints");
    kv_stats st;
    fill_store(dir, 600, 4096);
    KVT_CHECK_FATAL(unlink(kvt_path(dir, "000001.hint")) == 0, "remove 000001.hint");
    flip_byte(dir, "000002.hint", 40);
    copy_file(kvt_path(dir, "000004.hint"), kvt_path(dir, "000003.hint"));
    open_stats(dir, 600, &st);
    KVT_CHECK(st.recovery_hints_rewritten == 3, "%llu hints rewritten, want 3",
              (unsigned long long)st.recovery_hints_rewritten);
    check_store(dir, 600);
    open_stats(dir, 600, &st);
    KVT_CHECK(st.recovery_hints_rewritten == 0 && st.recovery_hints == st.segments - 1,
              "after the rewrite every hint is used (%llu rewritten)",
              (unsigned long long)st.recovery_hints_rewritten);
}

/* Every byte of a hint flipped in turn: the store always opens to exactly its data. */
static void test_hint_every_byte(void)
{
    char *dir = kvt_dir_new("hintbytes");
    char *hint = NULL;
    struct stat sb;
    fill_store(dir, 200, 4096);
    hint = kvt_path(dir, "000001.hint");
    KVT_CHECK_FATAL(stat(hint, &sb) == 0 && sb.st_size > 64, "hint exists");
    FILE *fp = fopen(hint, "rb");
    uint8_t *orig = malloc((size_t)sb.st_size);
    KVT_CHECK_FATAL(fread(orig, 1, (size_t)sb.st_size, fp) == (size_t)sb.st_size, "read hint");
    fclose(fp);
    unsigned step = kvt_quick() ? 7 : 1, opened = 0;
    for (off_t i = 0; i < sb.st_size; i += step) {
        fp = fopen(hint, "wb");
        orig[i] ^= 0x04;
        fwrite(orig, 1, (size_t)sb.st_size, fp);
        fclose(fp);
        orig[i] ^= 0x04;
        kv_db *db;
        kv_stats st;
        if (kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_AUTO, 4096, &db) != KV_OK) {
            KVT_CHECK(0, "open failed with byte %lld of the hint flipped: %s", (long long)i,
                      kv_errmsg());
            break;
        }
        kv_stat(db, &st);
        KVT_CHECK(st.keys == 200 && st.recovery_hints_rewritten == 1,
                  "byte %lld: %llu keys, %llu rewritten", (long long)i,
                  (unsigned long long)st.keys, (unsigned long long)st.recovery_hints_rewritten);
        kvt_close(db);
        opened++;
    }
    free(orig);
    check_store(dir, 200);
    KVT_CHECK(opened > 0, "opened %u times", opened);
}

/* The index keeps nodes in per-shard arenas; deleting most keys must give the
 * memory back (the shard's live nodes are copied into fresh chunks) and leave every
 * surviving key with its exact location. */
static void test_index_arena_repack(void)
{
    kv_index *ix;
    unsigned char key[200];
    const unsigned n = 200000;
    KVT_CHECK_FATAL(idx_new(&ix) == 0, "idx_new");
    memset(key, 'k', sizeof key);
    for (unsigned i = 0; i < n; i++) {
        idx_change ch;
        memcpy(key, &i, sizeof i);
        idx_loc loc = {i + 1, i % 7, i, 300 + i % 5, 0};
        uint64_t h = idx_hash(key, sizeof key);
        KVT_CHECK_FATAL(idx_set_locked(ix, key, sizeof key, h, &loc, 0, &ch) == 0, "insert %u", i);
    }
    uint64_t full = idx_bytes(ix);
    for (unsigned i = 0; i < n; i++) {
        idx_change ch;
        if (i % 4 == 0)
            continue;
        memcpy(key, &i, sizeof i);
        uint64_t h = idx_hash(key, sizeof key), shard = UINT64_C(1) << idx_shard_of(h);
        idx_lock_mask(ix, shard); /* idx_del_locked's precondition (KV_ASSERT) */
        idx_del_locked(ix, key, sizeof key, h, &ch);
        idx_unlock_mask(ix, shard);
        KVT_CHECK(ch.had_old && ch.old.seq == i + 1, "delete %u: had %d seq %llu", i, ch.had_old,
                  (unsigned long long)ch.old.seq);
    }
    uint64_t after = idx_bytes(ix);
    /* repacked once garbage passed half: at most ~2x the live nodes remain */
    KVT_CHECK(after * 10 < full * 7, "index holds %llu bytes after deleting 3/4 of %u keys, "
              "%llu before: the arena kept the garbage", (unsigned long long)after, n,
              (unsigned long long)full);
    KVT_CHECK(idx_count(ix) == n / 4, "%llu keys left", (unsigned long long)idx_count(ix));
    unsigned bad = 0;
    for (unsigned i = 0; i < n; i++) {
        idx_loc loc;
        memcpy(key, &i, sizeof i);
        int found = idx_get(ix, key, sizeof key, idx_hash(key, sizeof key), &loc);
        int ok = i % 4 == 0 ? found && loc.seq == i + 1 && loc.file == i % 7 && loc.off == i
                                  && loc.len == 300 + i % 5
                            : !found;
        bad += !ok;
    }
    KVT_CHECK(bad == 0, "%u keys wrong after the repack", bad);
    kvt_note("index: %llu bytes for %u keys of 200 bytes, %llu after deleting 3/4",
             (unsigned long long)full, n, (unsigned long long)after);
    idx_free(ix);
}

/* ---- the bulk loader ---------------------------------------------------------------- */

typedef struct bulk_dead_sum {
    uint64_t bytes[8]; /* per file number */
} bulk_dead_sum;

static void bulk_dead_add(void *arg, unsigned worker, const idx_loc *loc)
{
    bulk_dead_sum *d = arg;
    /* workers run in parallel: one sum per worker would do, atomics are simpler */
    __atomic_fetch_add(&d->bytes[loc->file % 8], loc->len, __ATOMIC_RELAXED);
    (void)worker;
}

static int loc_eq(const idx_loc *a, const idx_loc *b)
{
    return a->seq == b->seq && a->file == b->file && a->off == b->off && a->len == b->len
           && a->flags == b->flags;
}

/* Recovery builds the index with the bulk loader: records queued per shard by several
 * producers, applied shard by shard on several threads, newest wins by sequence
 * number. Fed the same
 * records in a random order (keys seen many times, tombstones, keys of every length
 * up to KV_MAX_KEY), it must build exactly the index that idx_set_locked builds one
 * record at a time, and report exactly the records that lost. */
static void test_index_bulk_matches(void)
{
    const unsigned nkeys = kvt_scaled(40000, 8000), nrec = nkeys * 4;
    const uint64_t flushes[] = {1, 997, 50000, UINT64_C(1) << 40};
    kvt_rng r;
    uint8_t *key = malloc(KV_MAX_KEY);
    KVT_CHECK_FATAL(key != NULL, "malloc");
    for (unsigned f = 0; f < sizeof flushes / sizeof flushes[0]; f++) {
        kv_index *ref, *ix;
        idx_bulk *b;
        bulk_dead_sum dead = {{0}};
        uint64_t want_dead[8] = {0};
        KVT_CHECK_FATAL(idx_new(&ref) == 0 && idx_new(&ix) == 0, "idx_new");
        KVT_CHECK_FATAL(idx_bulk_new(ix, 3, bulk_dead_add, &dead, &b) == 0, "idx_bulk_new");
        kvt_rng_seed(&r, 77 + f);
        /* sequence numbers 1..nrec, handed out in a random order */
        uint64_t *seqs = malloc(nrec * sizeof *seqs);
        KVT_CHECK_FATAL(seqs != NULL, "malloc");
        for (unsigned i = 0; i < nrec; i++)
            seqs[i] = i + 1;
        for (unsigned i = nrec - 1; i > 0; i--) {
            unsigned j = (unsigned)kvt_rng_below(&r, i + 1);
            uint64_t t = seqs[i];
            seqs[i] = seqs[j];
            seqs[j] = t;
        }
        for (unsigned i = 0; i < nrec; i++) {
            unsigned k = (unsigned)kvt_rng_below(&r, nkeys);
            size_t klen = k % 97 == 0 ? KV_MAX_KEY - k % 3 : 1 + k % 40;
            memset(key, 0x5a, klen);
            memcpy(key, &k, klen < sizeof k ? klen : sizeof k);
            if (klen < sizeof k && k >= (1u << (8 * klen)))
                continue; /* too short to tell the key apart */
            idx_loc loc = {seqs[i], i % 8, i, 30 + (uint32_t)kvt_rng_below(&r, 500),
                           kvt_rng_chance(&r, 10) ? IDX_F_TOMB : 0};
            uint64_t h = idx_hash(key, klen);
            idx_change ch;
            KVT_CHECK_FATAL(idx_set_locked(ref, key, klen, h, &loc, 1, &ch) == 0, "reference");
            if (!ch.applied && !(loc.flags & IDX_F_TOMB))
                want_dead[loc.file] += loc.len;
            if (ch.applied && ch.had_old && !(ch.old.flags & IDX_F_TOMB))
                want_dead[ch.old.file] += ch.old.len;
            KVT_CHECK_FATAL(idx_bulk_add(b, i % 3, key, klen, h, &loc) == 0, "bulk add");
            if (idx_bulk_queued(b) >= flushes[f])
                KVT_CHECK_FATAL(idx_bulk_flush(b) == 0, "bulk flush");
        }
        KVT_CHECK_FATAL(idx_bulk_flush(b) == 0, "bulk flush");
        idx_bulk_free(b);
        KVT_CHECK(idx_count(ix) == idx_count(ref), "flush every %llu: %llu keys, want %llu",
                  (unsigned long long)flushes[f], (unsigned long long)idx_count(ix),
                  (unsigned long long)idx_count(ref));
        unsigned wrong = 0;
        for (unsigned k = 0; k < nkeys; k++) {
            size_t klen = k % 97 == 0 ? KV_MAX_KEY - k % 3 : 1 + k % 40;
            idx_loc a, c;
            memset(key, 0x5a, klen);
            memcpy(key, &k, klen < sizeof k ? klen : sizeof k);
            uint64_t h = idx_hash(key, klen);
            int fa = idx_get(ref, key, klen, h, &a), fb = idx_get(ix, key, klen, h, &c);
            wrong += fa != fb || (fa && !loc_eq(&a, &c));
        }
        KVT_CHECK(wrong == 0, "flush every %llu: %u keys differ from the reference",
                  (unsigned long long)flushes[f], wrong);
        for (unsigned i = 0; i < 8; i++)
            KVT_CHECK(dead.bytes[i] == want_dead[i], "flush every %llu: file %u: %llu dead bytes "
                      "reported, want %llu", (unsigned long long)flushes[f], i,
                      (unsigned long long)dead.bytes[i], (unsigned long long)want_dead[i]);
        /* both purge to the same live set */
        idx_purge_tombstones(ref);
        idx_purge_tombstones(ix);
        KVT_CHECK(idx_count(ix) == idx_count(ref), "after purging tombstones: %llu keys, want %llu",
                  (unsigned long long)idx_count(ix), (unsigned long long)idx_count(ref));
        free(seqs);
        idx_free(ref);
        idx_free(ix);
    }
    free(key);
}

/* A store that overwrote a few keys many times hands recovery many records of the
 * same keys: the index it builds must be sized for its keys, not its records. */
static void test_index_bulk_few_keys(void)
{
    kv_index *ref, *ix;
    idx_bulk *b;
    const unsigned nkeys = 200, per_key = kvt_scaled(500, 100);
    KVT_CHECK_FATAL(idx_new(&ref) == 0 && idx_new(&ix) == 0, "idx_new");
    KVT_CHECK_FATAL(idx_bulk_new(ix, 2, NULL, NULL, &b) == 0, "idx_bulk_new");
    uint64_t seq = 0;
    for (unsigned r = 0; r < per_key; r++)
        for (unsigned k = 0; k < nkeys; k++) {
            char key[16];
            int n = snprintf(key, sizeof key, "key%u", k);
            seq++;
            idx_loc loc = {seq, 1, (uint32_t)seq, 100, 0};
            uint64_t h = idx_hash(key, (size_t)n);
            idx_change ch;
            KVT_CHECK_FATAL(idx_set_locked(ref, key, (size_t)n, h, &loc, 1, &ch) == 0, "reference");
            KVT_CHECK_FATAL(idx_bulk_add(b, k % 2, key, (size_t)n, h, &loc) == 0, "bulk add");
        }
    KVT_CHECK_FATAL(idx_bulk_flush(b) == 0, "bulk flush");
    idx_bulk_free(b);
    KVT_CHECK(idx_count(ix) == nkeys, "%llu keys, want %u", (unsigned long long)idx_count(ix), nkeys);
    KVT_CHECK(idx_bytes(ix) <= 2 * idx_bytes(ref), "%u records of %u keys: the bulk-built index "
              "holds %llu bytes, one built key by key %llu", nkeys * per_key, nkeys,
              (unsigned long long)idx_bytes(ix), (unsigned long long)idx_bytes(ref));
    idx_free(ref);
    idx_free(ix);
}

/* Live and dead bytes are rebuilt at open: from hints, from a scan of the segments,
 * they must equal what the running store counted before it was closed. */
static void test_live_bytes_after_reopen(void)
{
    char *dir = kvt_dir_new("livebytes");
    kv_db *db;
    kv_stats before, st;
    char key[32], val[300];
    kvt_rng r;
    kv_options o;
    kvt_rng_seed(&r, 5);
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 8192);
    o.auto_compact = 0; /* a compaction finishing at close would change the dead bytes */
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    for (unsigned i = 0; i < 3000; i++) {
        unsigned k = (unsigned)kvt_rng_below(&r, 400);
        int n = snprintf(key, sizeof key, "key%u", k);
        if (kvt_rng_chance(&r, 15)) {
            int rc = kv_delete(db, key, (size_t)n);
            KVT_CHECK_FATAL(rc == KV_OK || rc == KV_NOTFOUND, "del: %s", kv_strerror(rc));
        } else {
            size_t vlen = (size_t)kvt_rng_below(&r, sizeof val);
            kvt_rng_fill(&r, val, vlen);
            KVT_RC_FATAL(kv_put(db, key, (size_t)n, val, vlen), KV_OK);
        }
    }
    KVT_RC_FATAL(kv_stat(db, &before), KV_OK);
    KVT_RC_FATAL(kvt_close(db), KV_OK);
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 2) { /* no hints: every sealed segment is scanned */
            DIR *d = opendir(dir);
            struct dirent *de;
            KVT_CHECK_FATAL(d != NULL, "opendir");
            while ((de = readdir(d)) != NULL)
                if (strstr(de->d_name, ".hint") != NULL)
                    unlink(kvt_path(dir, de->d_name));
            closedir(d);
        }
        KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
        KVT_RC_FATAL(kv_stat(db, &st), KV_OK);
        KVT_CHECK(st.keys == before.keys && st.live_bytes == before.live_bytes
                      && st.dead_bytes == before.dead_bytes,
                  "open %d: %llu keys, %llu live, %llu dead; before close %llu, %llu, %llu", pass,
                  (unsigned long long)st.keys, (unsigned long long)st.live_bytes,
                  (unsigned long long)st.dead_bytes, (unsigned long long)before.keys,
                  (unsigned long long)before.live_bytes, (unsigned long long)before.dead_bytes);
        KVT_CHECK(pass == 2 ? st.recovery_hints == 0 : st.recovery_hints + 1 == st.segments,
                  "open %d: %llu of %llu segments from hints", pass,
                  (unsigned long long)st.recovery_hints, (unsigned long long)st.segments);
        KVT_RC_FATAL(kvt_close(db), KV_OK);
    }
}

void kvt_register_entry(void)
{
    static const kvt_test tests[] = {
        {"entry round trip at boundary sizes", test_entry_roundtrip},
        {"every single-byte corruption of an entry detected", test_entry_every_byte_corruption},
        {"huge length fields fail fast", test_entry_huge_length},
        {"scanner: every truncation ends at a unit boundary", test_scan_every_truncation},
        {"scanner: damaged batch delivered not at all", test_scan_damage_stops_batch},
        {"file header checks", test_file_header},
        {"MANIFEST round trip, every byte flip detected", test_manifest_every_byte},
        {"damaged sealed segment -> KV_ECORRUPT naming file+offset", test_recover_sealed_damage},
        {"segment of a newer version does not open", test_recover_segment_version},
        {"torn active segment tail: WAL fills it in", test_recover_torn_active_segment},
        {"torn WAL tail cut, nothing acknowledged lost", test_recover_torn_wal},
        {"hint files index sealed segments on reopen", test_hints_used_on_reopen},
        {"missing, damaged, foreign hints are rewritten", test_bad_hints_rewritten},
        {"every byte flip of a hint: store opens to its data", test_hint_every_byte},
        {"get of a record damaged after open: KV_ECORRUPT (mmap)", test_get_damage_mmap},
        {"get of a record damaged after open: KV_ECORRUPT (pread)", test_get_damage_pread},
        {"index: deleting most keys gives the arena memory back", test_index_arena_repack},
        {"index: bulk loading builds the same index as one by one", test_index_bulk_matches},
        {"index: bulk loading many records of few keys stays small", test_index_bulk_few_keys},
        {"live and dead bytes after reopen, with and without hints", test_live_bytes_after_reopen},
        {NULL, NULL},
    };
    kvt_add_suite("entry and recovery", tests);
}
