/*
 * gen_corpus.c — seeds for the fuzz corpora, cut from real stores.
 *
 * Usage: kv-fuzz-seeds OUTDIR. Makes a few stores with the library itself (segments
 * of 4 KiB so that some are sealed and have hints; puts, overwrites, deletes, a
 * batch, binary keys, empty and large values; one store with torn tails; one just
 * created), then writes the input each harness takes to OUTDIR/<harness>/:
 *   entry            every entry of every segment and WAL file, one per file, and a
 *                    few headers the encoder never writes (huge lengths, LZ4 flag)
 *   entry_roundtrip  structured batches in the harness's layout
 *   wal              whole segment and WAL files
 *   inspect          the same, and copies damaged in the middle (a flipped byte,
 *                    zeros, inserted bytes, a cut)
 *   hint, manifest   whole hint files and MANIFESTs
 *   open             each store directory packed in open_fuzzer's layout, with
 *                    each of its option bits
 * `make fuzz-corpus` then merges these into fuzz/corpus/<harness>/ with
 * libFuzzer's -merge=1, which keeps only inputs that add coverage. Deterministic:
 * the same library writes the same seeds.
 */
#include "format/compress.h"
#include "format/entry.h"
#include "kv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *g_out;
static unsigned g_seq;

static void die(const char *what)
{
    fprintf(stderr, "kv-fuzz-seeds: %s: %s\n", what, errno ? strerror(errno) : kv_errmsg());
    exit(1);
}

/* snprintf into a path buffer; a path that does not fit ends the program. */
static void fmt_path(char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt_path(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    if (r < 0 || (size_t)r >= n) {
        errno = ENAMETOOLONG;
        die(fmt);
    }
}

static void emit(const char *harness, const char *tag, const void *p, size_t n)
{
    char path[1024];
    fmt_path(path, sizeof path, "%s/%s", g_out, harness);
    mkdir(path, 0755);
    fmt_path(path, sizeof path, "%s/%s/%04u-%s", g_out, harness, g_seq++, tag);
    FILE *f = fopen(path, "wb");
    if (f == NULL || (n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) != 0)
        die(path);
}

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (f == NULL || fstat(fileno(f), &st) != 0)
        die(path);
    *n = (size_t)st.st_size;
    uint8_t *b = malloc(*n + 1);
    if (b == NULL || fread(b, 1, *n, f) != *n)
        die(path);
    fclose(f);
    return b;
}

/* ---- the stores -------------------------------------------------------------------- */

static kv_db *open_store(const char *dir)
{
    kv_options o;
    kv_db *db;
    kv_options_init(&o);
    o.sync = KV_SYNC_NONE;
    o.io = KV_IO_PSYNC;
    o.segment_bytes = 4096;
    if (kv_open(dir, &o, &db) != KV_OK)
        die(dir);
    return db;
}

static void put(kv_db *db, const char *k, size_t kl, size_t vl, unsigned salt)
{
    char v[6000];
    for (size_t i = 0; i < vl; i++)
        v[i] = (char)('a' + (i * 7 + salt) % 26);
    if (kv_put(db, k, kl, v, vl) != KV_OK)
        die("kv_put");
}

static void fill_basic(kv_db *db, int rounds)
{
    static const size_t sizes[] = {0, 1, 17, 100, 300};
    char k[32];
    for (int i = 0; i < rounds; i++) {
        int n = snprintf(k, sizeof k, "key-%03d", i);
        put(db, k, (size_t)n, sizes[i % 5], (unsigned)i);
    }
    for (int i = 0; i < rounds; i += 3) { /* overwrites */
        int n = snprintf(k, sizeof k, "key-%03d", i);
        put(db, k, (size_t)n, 40, (unsigned)i + 1);
    }
    for (int i = 1; i < rounds; i += 5) {
        int n = snprintf(k, sizeof k, "key-%03d", i);
        if (kv_delete(db, k, (size_t)n) != KV_OK)
            die("kv_delete");
    }
    put(db, "bin\0key\xff", 8, 9, 3);
    kv_batch *b = kv_batch_new();
    if (b == NULL || kv_batch_put(b, "batch-a", 7, "1", 1) != KV_OK
        || kv_batch_delete(b, "key-000", 7) != KV_OK
        || kv_batch_put(b, "batch-b", 7, "", 0) != KV_OK
        || kv_write(db, b) != KV_OK)
        die("batch");
    kv_batch_free(b);
}

static void make_stores(const char *base)
{
    char dir[1024];
    kv_db *db;

    fmt_path(dir, sizeof dir, "%s/%s", base, "fresh");
    db = open_store(dir);
    kv_close(db);

    fmt_path(dir, sizeof dir, "%s/%s", base, "basic");
    db = open_store(dir);
    fill_basic(db, 40);
    kv_close(db);

    fmt_path(dir, sizeof dir, "%s/%s", base, "reopened"); /* hints rewritten, WAL replayed */
    db = open_store(dir);
    fill_basic(db, 12);
    kv_close(db);
    db = open_store(dir);
    put(db, "after-reopen", 12, 5000, 9);
    put(db, "tail", 4, 10, 1);
    kv_close(db);

    fmt_path(dir, sizeof dir, "%s/%s", base, "torn");
    db = open_store(dir);
    fill_basic(db, 8);
    kv_close(db);
}

/* Cuts the last bytes of the active segment and WAL of the torn store. */
static void tear(const char *base)
{
    static const char *const names[] = {"000001.seg", "000001.wal"};
    static const off_t cut[] = {3, 11};
    for (int i = 0; i < 2; i++) {
        char path[1024];
        struct stat st;
        fmt_path(path, sizeof path, "%s/torn/%s", base, names[i]);
        if (stat(path, &st) != 0 || truncate(path, st.st_size - cut[i]) != 0)
            die(path);
    }
}

/* ---- cutting the stores into inputs ------------------------------------------------ */

typedef struct file_list {
    char names[32][64];
    int n;
} file_list;

static int by_name(const void *a, const void *b) { return strcmp(a, b); }

static void list_store(const char *dir, file_list *l)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    l->n = 0;
    if (d == NULL)
        die(dir);
    while ((de = readdir(d)) != NULL && l->n < 32)
        if (de->d_name[0] != '.' && strcmp(de->d_name, "LOCK") != 0
            && strlen(de->d_name) < sizeof l->names[0])
            memcpy(l->names[l->n++], de->d_name, strlen(de->d_name) + 1);
    closedir(d);
    qsort(l->names, (size_t)l->n, sizeof l->names[0], by_name);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void emit_entries(const uint8_t *p, size_t n, const char *tag)
{
    size_t off = KV_FILE_HDR_SIZE;
    while (off < n) {
        kv_entry e;
        char why[128];
        if (entry_parse(p + off, n - off, &e, why, sizeof why) != ENTRY_OK)
            break;
        emit("entry", tag, p + off, e.size);
        off += e.size;
    }
    if (n >= KV_FILE_HDR_SIZE)
        emit("entry", "file-header", p, KV_FILE_HDR_SIZE);
}

/* open_fuzzer's layout: options byte, then [name byte][u16 length][bytes] per file. */
static void emit_open(const char *dir, const file_list *l, const char *tag)
{
    static uint8_t pack[8][1 << 17];
    size_t len = 1;
    for (int i = 0; i < l->n; i++) {
        unsigned num = (unsigned)atoi(l->names[i]);
        int kind = strcmp(l->names[i], "MANIFEST") == 0 ? 0 : ends_with(l->names[i], ".seg") ? 1
                   : ends_with(l->names[i], ".wal") ? 2 : ends_with(l->names[i], ".hint") ? 3 : -1;
        if (kind < 0 || (kind > 0 && (num < 1 || num > 8)))
            continue;
        char path[1024];
        size_t n;
        fmt_path(path, sizeof path, "%s/%s", dir, l->names[i]);
        uint8_t *b = slurp(path, &n);
        if (n > 0xffff || len + 3 + n > sizeof pack[0]) {
            free(b);
            continue;
        }
        pack[0][len] = (uint8_t)(kind | (kind ? (num - 1) << 2 : 0));
        pack[0][len + 1] = (uint8_t)n;
        pack[0][len + 2] = (uint8_t)(n >> 8);
        memcpy(pack[0] + len + 3, b, n);
        len += 3 + n;
        free(b);
    }
    for (int opts = 0; opts < 8; opts++) {
        char t[96];
        memcpy(pack[opts], pack[0], len);
        pack[opts][0] = (uint8_t)opts;
        fmt_path(t, sizeof t, "%s-opts%d", tag, opts);
        emit("open", t, pack[opts], len);
    }
}

/* A record file as given and damaged in the middle, the walk past damage's input:
 * a byte flipped a third of the way in, a stretch of zeros, 7 bytes inserted, and
 * the file cut mid-way. */
static void emit_damaged(const uint8_t *b, size_t n, const char *tag)
{
    char t[160];
    emit("inspect", tag, b, n);
    if (n <= KV_FILE_HDR_SIZE + 8)
        return;
    uint8_t *c = malloc(n + 7);
    if (c == NULL)
        die("malloc");
    memcpy(c, b, n);
    c[KV_FILE_HDR_SIZE + (n - KV_FILE_HDR_SIZE) / 3] ^= 0xff;
    fmt_path(t, sizeof t, "%s-flip", tag);
    emit("inspect", t, c, n);
    memcpy(c, b, n);
    memset(c + KV_FILE_HDR_SIZE + (n - KV_FILE_HDR_SIZE) / 4, 0, (n - KV_FILE_HDR_SIZE) / 4);
    fmt_path(t, sizeof t, "%s-zeros", tag);
    emit("inspect", t, c, n);
    size_t at = KV_FILE_HDR_SIZE + (n - KV_FILE_HDR_SIZE) / 2;
    memcpy(c, b, at);
    memcpy(c + at, "garbage", 7);
    memcpy(c + at + 7, b + at, n - at);
    fmt_path(t, sizeof t, "%s-inserted", tag);
    emit("inspect", t, c, n + 7);
    fmt_path(t, sizeof t, "%s-cut", tag);
    emit("inspect", t, b, at + 3);
    free(c);
}

static void cut_store(const char *base, const char *name)
{
    char dir[1024];
    file_list l;
    fmt_path(dir, sizeof dir, "%s/%s", base, name);
    list_store(dir, &l);
    for (int i = 0; i < l.n; i++) {
        char path[1024], tag[128];
        size_t n;
        fmt_path(path, sizeof path, "%s/%s", dir, l.names[i]);
        fmt_path(tag, sizeof tag, "%s-%s", name, l.names[i]);
        uint8_t *b = slurp(path, &n);
        if (strcmp(l.names[i], "MANIFEST") == 0) {
            emit("manifest", tag, b, n);
        } else if (ends_with(l.names[i], ".hint")) {
            emit("hint", tag, b, n);
        } else if (ends_with(l.names[i], ".seg") || ends_with(l.names[i], ".wal")) {
            emit("wal", tag, b, n);
            emit_entries(b, n, tag);
            emit_damaged(b, n, tag);
        }
        free(b);
    }
    emit_open(dir, &l, name);
}

/* Headers the encoder never writes, each with a right CRC. */
static void emit_odd_entries(void)
{
    uint8_t e[256];
    size_t n;
    n = entry_encode(e, KV_REC_PUT, 0, "k", 1, "v", 1);
    kv_put32(e + KV_ENTRY_OFF_VLEN, 0xffffffffu); /* 4 GiB value in 22 bytes */
    entry_seal(e, n, 7);
    emit("entry", "huge-vlen", e, n);
    n = entry_encode(e, KV_REC_PUT, KV_RECF_LZ4, "k", 1, "\x05\x00\x00\x00\x50hello", 9);
    entry_seal(e, n, 8);
    emit("entry", "lz4-flag", e, n);
    {
        static const char text[] = "{\"name\":\"kv\",\"kind\":\"store\",\"name\":\"kv\","
                                   "\"kind\":\"store\",\"name\":\"kv\",\"kind\":\"store\"}";
        n = compress_entry_encode(e, KV_REC_PUT, 0, "json", 4, text, sizeof text - 1, 16);
        entry_seal(e, n, 11);
        emit("entry", "lz4-compressed", e, n);
        kv_put32(e + KV_ENTRY_HDR + 4, 0x7fffffffu); /* raw length far above KV_MAX_VALUE */
        entry_seal(e, n, 12);
        emit("entry", "lz4-raw-length-too-big", e, n);
    }
    n = entry_encode(e, KV_REC_DEL, 0, "k", 1, "v", 1);
    entry_seal(e, n, 9);
    emit("entry", "delete-with-value", e, n);
    n = entry_encode(e, KV_REC_PUT, KV_RECF_BATCH, "batched", 7, "", 0);
    entry_seal(e, n, 10);
    emit("entry", "batch-flag", e, n);
}

/* entry_roundtrip_fuzzer's layout: u8 count-1, u64 seq, then per op u8 control,
 * u16 klen, u24 vlen, key, value. */
static void emit_roundtrips(void)
{
    static const struct { uint8_t ctl; uint16_t kl; uint32_t vl; } ops[][3] = {
        {{0, 4, 5}, {0, 0, 0}, {0, 0, 0}},
        {{1, 2, 0}, {0, 0, 0}, {0, 0, 0}},
        {{0, 3, 0}, {1, 3, 0}, {0, 8, 300}},
        {{2, 5, 64}, {0, 0, 0}, {0, 0, 0}},
        {{4, 65534, 70000}, {0, 0, 0}, {0, 0, 0}},
    };
    static const int counts[] = {1, 1, 3, 1, 1};
    static const uint64_t seqs[] = {1, 42, 1ull << 40, 7, UINT64_MAX - 1};
    for (size_t c = 0; c < sizeof counts / sizeof *counts; c++) {
        uint8_t buf[512];
        size_t n = 0;
        buf[n++] = (uint8_t)(counts[c] - 1);
        for (int i = 0; i < 8; i++)
            buf[n++] = (uint8_t)(seqs[c] >> (8 * i));
        for (int i = 0; i < counts[c]; i++) {
            uint16_t kl = ops[c][i].kl > 0 ? (uint16_t)(ops[c][i].kl - 1) : 0;
            buf[n++] = ops[c][i].ctl;
            buf[n++] = (uint8_t)kl;
            buf[n++] = (uint8_t)(kl >> 8);
            buf[n++] = (uint8_t)ops[c][i].vl;
            buf[n++] = (uint8_t)(ops[c][i].vl >> 8);
            buf[n++] = (uint8_t)(ops[c][i].vl >> 16);
            for (unsigned j = 0; j < ops[c][i].kl && j < 16; j++)
                buf[n++] = (uint8_t)('k' + j);
            for (unsigned j = 0; j < ops[c][i].vl && j < 16; j++)
                buf[n++] = (uint8_t)('0' + j);
        }
        emit("entry_roundtrip", "case", buf, n);
    }
}

int main(int argc, char **argv)
{
    char base[1024];
    if (argc != 2) {
        fprintf(stderr, "usage: kv-fuzz-seeds OUTDIR\n");
        return 2;
    }
    g_out = argv[1];
    if (mkdir(g_out, 0755) != 0 && errno != EEXIST)
        die(g_out);
    fmt_path(base, sizeof base, "%s/%s", g_out, "stores");
    mkdir(base, 0755);
    make_stores(base);
    tear(base);
    cut_store(base, "fresh");
    cut_store(base, "basic");
    cut_store(base, "reopened");
    cut_store(base, "torn");
    emit_odd_entries();
    emit_roundtrips();
    printf("kv-fuzz-seeds: %u seeds in %s\n", g_seq, g_out);
    return 0;
}
