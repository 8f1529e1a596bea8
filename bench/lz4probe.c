/*
 * lz4probe.c — the measurement behind kv's compress_min_bytes default.
 *
 * For value sizes from 8 bytes to 4 KiB and three kinds of data, encodes entries
 * exactly as kv_put does with KV_COMPRESS_LZ4 and compress_min_bytes 0
 * (compress_entry_encode), and reports per size: the share of values stored
 * compressed, the entry bytes (20-byte header + 16-byte key + stored value) relative
 * to uncompressed entries, and the CPU cost per value of compressing and of
 * decompressing (compress_value_decode, the read path's decoder). It also times
 * LZ4_compress_default, which clears a 16 KiB table on every call, against the
 * engine's per-thread state (LZ4_resetStream_fast), the choice made in compress.c.
 *
 * Data kinds:
 *   half    slices of kvbench's pool at --compressible 0.5 (db_bench's generator:
 *           in every 100 bytes, 50 random printable bytes, then the same 50 again)
 *   json    JSON records of the kind users store (ids, names, e-mail, timestamps,
 *           flags), cut to the size
 *   random  random bytes (incompressible)
 *
 * Usage: build/bin/lz4probe [values per size (20000)]. Engine-internal (it includes
 * compress.h), built by `make lz4probe`; not installed.
 */
#include "format/compress.h"

#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_BYTES 16

static uint64_t rng_state = 42;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* kvbench's pool at R = 0.5. */
static void fill_half(uint8_t *pool, size_t len)
{
    for (size_t off = 0; off < len; off += 100) {
        size_t n = len - off < 100 ? len - off : 100, half = (n + 1) / 2;
        for (size_t i = 0; i < half; i++)
            pool[off + i] = (uint8_t)(' ' + rnd() % 95);
        memcpy(pool + off + half, pool + off, n - half);
    }
}

/* JSON records one after the other, each a little different. */
static void fill_json(uint8_t *pool, size_t len)
{
    static const char *const names[] = {"alice", "bob", "carol", "dave", "erin", "frank",
                                        "grace", "heidi", "ivan", "judy"};
    static const char *const tags[] = {"alpha", "beta", "prod", "test", "eu-west", "us-east"};
    size_t off = 0;
    char rec[512];
    while (off < len) {
        unsigned id = (unsigned)(rnd() % 10000000);
        const char *nm = names[rnd() % 10];
        int n = snprintf(rec, sizeof rec,
                         "{\"id\":%u,\"user\":\"%s%u\",\"email\":\"%s%u@example.com\","
                         "\"created\":\"2024-%02u-%02uT%02u:%02u:%02uZ\",\"active\":%s,"
                         "\"score\":%u.%u,\"tags\":[\"%s\",\"%s\"]}\n",
                         id, nm, id % 1000, nm, id % 1000, (unsigned)(rnd() % 12 + 1),
                         (unsigned)(rnd() % 28 + 1), (unsigned)(rnd() % 24),
                         (unsigned)(rnd() % 60), (unsigned)(rnd() % 60),
                         rnd() % 2 ? "true" : "false", (unsigned)(rnd() % 100),
                         (unsigned)(rnd() % 10), tags[rnd() % 6], tags[rnd() % 6]);
        size_t take = (size_t)n < len - off ? (size_t)n : len - off;
        memcpy(pool + off, rec, take);
        off += take;
    }
}

static void fill_random(uint8_t *pool, size_t len)
{
    for (size_t i = 0; i < len; i++)
        pool[i] = (uint8_t)rnd();
}

struct row {
    unsigned compressed;      /* values stored compressed */
    double entry_ratio;       /* entry bytes with LZ4 / without */
    double enc_ns, dec_ns;    /* per value: compress_entry_encode, decode */
    double default_ns;        /* per value: LZ4_compress_default */
};

static void probe(const uint8_t *pool, size_t pool_len, size_t vlen, unsigned n, int json,
                  struct row *r)
{
    uint8_t *buf = malloc(entry_size(KEY_BYTES, vlen));
    size_t *offs = malloc(n * sizeof *offs);
    char *scratch = malloc((size_t)LZ4_compressBound((int)vlen) + 1);
    uint64_t plain = 0, stored = 0, t;
    memset(r, 0, sizeof *r);
    for (unsigned i = 0; i < n; i++) /* json: start at a record; else anywhere */
        offs[i] = json ? (rnd() % (pool_len / 4)) : rnd() % (pool_len - vlen);
    if (json)
        for (unsigned i = 0; i < n; i++)
            while (offs[i] > 0 && pool[offs[i] - 1] != '\n')
                offs[i]--;
    t = now_ns();
    for (unsigned i = 0; i < n; i++) {
        size_t sz = compress_entry_encode(buf, KV_REC_PUT, 0, "0000000000000000", KEY_BYTES,
                                          pool + offs[i], vlen, 0);
        plain += entry_size(KEY_BYTES, vlen);
        stored += sz;
        r->compressed += (buf[KV_ENTRY_OFF_FLAGS] & KV_RECF_LZ4) != 0;
    }
    r->enc_ns = (double)(now_ns() - t) / n;
    r->entry_ratio = (double)stored / (double)plain;
    t = now_ns();
    for (unsigned i = 0; i < n; i++)
        LZ4_compress_default((const char *)pool + offs[i], scratch, (int)vlen,
                             LZ4_compressBound((int)vlen));
    r->default_ns = (double)(now_ns() - t) / n;
    /* decode: one compressed entry per offset, timed alone */
    double dec = 0;
    unsigned decoded = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t sz = compress_entry_encode(buf, KV_REC_PUT, 0, "0000000000000000", KEY_BYTES,
                                          pool + offs[i], vlen, 0);
        if (!(buf[KV_ENTRY_OFF_FLAGS] & KV_RECF_LZ4))
            continue;
        kv_entry e;
        char why[128];
        uint8_t *out;
        size_t outlen;
        entry_seal(buf, sz, 1);
        if (entry_parse(buf, sz, &e, why, sizeof why) != ENTRY_OK) {
            fprintf(stderr, "lz4probe: parse: %s\n", why);
            exit(1);
        }
        t = now_ns();
        int rc = compress_value_decode(&e, &out, &outlen, why, sizeof why);
        dec += (double)(now_ns() - t);
        if (rc != 0 || outlen != vlen || memcmp(out, pool + offs[i], vlen) != 0) {
            fprintf(stderr, "lz4probe: round trip failed at %zu bytes: %s\n", vlen, why);
            exit(1);
        }
        free(out);
        decoded++;
    }
    r->dec_ns = decoded ? dec / decoded : 0;
    free(buf);
    free(offs);
    free(scratch);
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = {8, 16, 32, 48, 64, 80, 96, 112, 128, 192, 256, 512, 1024, 4096};
    static const char *const kinds[] = {"half", "json", "random"};
    unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 20000;
    size_t pool_len = 8u << 20;
    uint8_t *pool = malloc(pool_len);
    if (n == 0 || pool == NULL) {
        fprintf(stderr, "usage: lz4probe [values per size]\n");
        return 2;
    }
    printf("liblz4 %s; entries with a %d-byte key; %u values per row\n", LZ4_versionString(),
           KEY_BYTES, n);
    printf("%-7s %6s %11s %12s %10s %10s %14s\n", "data", "vlen", "compressed", "entry ratio",
           "encode ns", "decode ns", "LZ4_default ns");
    for (int k = 0; k < 3; k++) {
        if (k == 0)
            fill_half(pool, pool_len);
        else if (k == 1)
            fill_json(pool, pool_len);
        else
            fill_random(pool, pool_len);
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
            struct row r;
            probe(pool, pool_len, sizes[s], n, k == 1, &r);
            printf("%-7s %6zu %10.2f%% %12.4f %10.0f %10.0f %14.0f\n", kinds[k], sizes[s],
                   100.0 * r.compressed / n, r.entry_ratio, r.enc_ns, r.dec_ns, r.default_ns);
        }
    }
    free(pool);
    return 0;
}
