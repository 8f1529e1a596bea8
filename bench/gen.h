/*
 * gen.h — what kvbench and peerbench share so that they measure the same work: the
 * keys, the values, the seeded orders, and the latency histogram.
 *
 * Both programs include it; every function is static inline, so each keeps its own
 * copy and neither links the other. A change here changes both benchmarks at once,
 * which is the point: peerbench's figures for kv and for its peers are comparable
 * with kvbench's only while they write the same bytes in the same order.
 *
 * Sections:
 *   1. Random numbers, keys, the value pool, the seeds derived from --seed
 *   2. The random permutation of fillrandom and fillsync
 *   3. Latency histogram
 *   4. YCSB's key choosers: scrambled zipfian and "latest"
 */
#ifndef KV_BENCH_GEN_H
#define KV_BENCH_GEN_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL_SPREAD (1u << 20)   /* values start in the pool's first 1 MiB */
#define POOL_PIECE 100u          /* ... at a piece boundary (see pool_make) */

/* ---------------------------------------------------------------------------------
 * 1. Random numbers, keys, the value pool, the seeds derived from --seed
 * ------------------------------------------------------------------------------ */
/* splitmix64: each thread's generator, and a good 64-bit mixing function. */
static inline uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t mix64(uint64_t x)
{
    return splitmix64(&x);
}

/* Decimal digits of n (1 for 0). */
static inline unsigned digits(uint64_t n)
{
    unsigned d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

/* Writes k as width zero-padded decimal digits (the caller checked it fits). */
static inline void key_format(unsigned char *dst, size_t width, uint64_t k)
{
    size_t i = width;
    while (i > 0 && k > 0) {
        dst[--i] = (unsigned char)('0' + k % 10);
        k /= 10;
    }
    memset(dst, '0', i);
}

/* A key no benchmark ever writes: the digits of k, one shorter, then a '.'. */
static inline void key_format_missing(unsigned char *dst, size_t width, uint64_t k)
{
    key_format(dst, width - 1, k);
    dst[width - 1] = '.';
}


/* Fills the pool like db_bench's RandomGenerator (CompressibleString): in pieces of
 * 100 bytes, R x 100 random printable bytes, repeated to fill the piece, so values
 * compress to about R of their size (R = 0.5: 50 random bytes, then the same 50). */
static inline unsigned char *pool_make(size_t len, uint64_t seed, double ratio)
{
    unsigned char *p = malloc(len);
    uint64_t rng = seed;
    if (p == NULL)
        return NULL;
    for (size_t off = 0; off < len; off += POOL_PIECE) {
        size_t n = len - off < POOL_PIECE ? len - off : POOL_PIECE;
        size_t raw = (size_t)((double)n * ratio + 0.5);
        raw = raw < 1 ? 1 : raw > n ? n : raw;
        for (size_t i = 0; i < raw; i++)
            p[off + i] = (unsigned char)(' ' + splitmix64(&rng) % 95);
        for (size_t i = raw; i < n; i++)
            p[off + i] = p[off + i - raw];
    }
    return p;
}

/* The value of key k: a slice of the pool that depends only on the key and
 * value_seed, so readers can check every byte, and overwrite writes what fill wrote.
 * Slices start at a piece boundary, as db_bench's do for sizes that are multiples of
 * 100, so a value holds whole pieces and compresses to about the pool's ratio (a
 * slice starting mid-piece splits the first piece from its repeat: 1000-byte values
 * at 0.5 then LZ4-compress to 0.578 instead of 0.556). */
static inline const unsigned char *gen_value(const unsigned char *pool, uint64_t value_seed,
                                             uint64_t k)
{
    return pool + mix64(k ^ value_seed) % (POOL_SPREAD / POOL_PIECE + 1) * POOL_PIECE;
}

/* The seeds both programs derive from --seed: the pool is pool_make(..., seed, ...). */
static inline uint64_t gen_value_seed(uint64_t seed) { return mix64(seed ^ 0x7a1e); }
static inline uint64_t gen_perm_seed(uint64_t seed) { return seed ^ 0x5eed; }
/* Thread tid's generator state (overwrite's keys, the reads' keys). */
static inline uint64_t gen_thread_rng(uint64_t seed, unsigned tid)
{
    return seed ^ mix64(tid + 1);
}

/* ---------------------------------------------------------------------------------
 * 2. The random permutation of fillrandom and fillsync
 * ------------------------------------------------------------------------------ */
/* A random permutation of 0..n-1 that needs no memory: a 4-round Feistel network on
 * the smallest even number of bits covering n, walking the cycle until the result
 * falls below n (under 4 steps on average). fillrandom and fillsync write every key
 * once, in this order, so that afterwards every key of the range exists. */
struct perm {
    uint64_t n;            /* domain size */
    unsigned half;         /* bits per Feistel half */
    uint64_t mask;         /* (1 << half) - 1 */
    uint64_t round_key[4]; /* one per round, from the seed */
};

static inline void perm_init(struct perm *p, uint64_t n, uint64_t seed)
{
    p->n = n;
    p->half = 0;
    while ((1ull << (2 * p->half)) < n)
        p->half++;
    p->mask = (1ull << p->half) - 1;
    for (int i = 0; i < 4; i++)
        p->round_key[i] = splitmix64(&seed);
}

static inline uint64_t perm_apply(const struct perm *p, uint64_t x)
{
    do {
        uint64_t l = x >> p->half, r = x & p->mask;
        for (int i = 0; i < 4; i++) {
            uint64_t t = l ^ (mix64(r ^ p->round_key[i]) & p->mask);
            l = r;
            r = t;
        }
        x = (l << p->half) | r;
    } while (x >= p->n);
    return x;
}

/* ---------------------------------------------------------------------------------
 * 3. Latency histogram
 *
 * Nanoseconds, log-bucketed like HdrHistogram: values under 16 have a bucket each,
 * every power of two above is cut in 16 equal buckets, so a bucket is at most 1/16
 * of its value wide and percentiles interpolated inside it are within a few percent.
 * ------------------------------------------------------------------------------ */
#define HIST_SUB_BITS 4
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS (HIST_SUB + (64 - HIST_SUB_BITS) * HIST_SUB)

struct hist {
    uint64_t count;               /* samples */
    uint64_t min, max;            /* extreme samples, ns */
    double sum, sum_sq;           /* for mean and standard deviation */
    uint64_t b[HIST_BUCKETS];     /* samples per bucket */
};

static inline void hist_init(struct hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

static inline unsigned hist_index(uint64_t v)
{
    if (v < HIST_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    unsigned sub = (unsigned)(v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1);
    return HIST_SUB + (e - HIST_SUB_BITS) * HIST_SUB + sub;
}

/* Lower bound and width of bucket i, ns. */
static inline void hist_bounds(unsigned i, double *lo, double *width)
{
    if (i < HIST_SUB) {
        *lo = i;
        *width = 1;
        return;
    }
    unsigned shift = (i - HIST_SUB) / HIST_SUB;
    unsigned sub = (i - HIST_SUB) % HIST_SUB;
    *lo = ldexp((double)(HIST_SUB + sub), (int)shift);
    *width = ldexp(1.0, (int)shift);
}

static inline void hist_add(struct hist *h, uint64_t v)
{
    h->count++;
    h->sum += (double)v;
    h->sum_sq += (double)v * (double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->b[hist_index(v)]++;
}

static inline void hist_merge(struct hist *dst, const struct hist *src)
{
    dst->count += src->count;
    dst->sum += src->sum;
    dst->sum_sq += src->sum_sq;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
}

/* The p-th percentile (0..100) in microseconds, interpolated inside its bucket. */
static inline double hist_pct_us(const struct hist *h, double p)
{
    if (h->count == 0)
        return 0;
    double target = p / 100.0 * (double)h->count, cum = 0, lo = 0, w = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        if (h->b[i] == 0)
            continue;
        hist_bounds(i, &lo, &w);
        if (cum + (double)h->b[i] >= target) {
            double v = lo + w * (target - cum) / (double)h->b[i];
            v = v < (double)h->min ? (double)h->min : v;
            v = v > (double)h->max ? (double)h->max : v;
            return v / 1000.0;
        }
        cum += (double)h->b[i];
    }
    return (double)h->max / 1000.0;
}

static inline double hist_mean_us(const struct hist *h)
{
    return h->count ? h->sum / (double)h->count / 1000.0 : 0;
}

static inline double hist_stddev_us(const struct hist *h)
{
    if (h->count == 0)
        return 0;
    double mean = h->sum / (double)h->count;
    double var = h->sum_sq / (double)h->count - mean * mean;
    return var > 0 ? sqrt(var) / 1000.0 : 0;
}

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------------------------
 * 4. YCSB's key choosers: scrambled zipfian and "latest"
 *
 * As YCSB's core package (site.ycsb.generator): ZipfianGenerator draws a rank by
 * Gray et al.'s method ("Quickly generating billion-record synthetic databases",
 * SIGMOD 1994), rank 0 the most popular. ScrambledZipfianGenerator draws the rank
 * over 10^10 items with zeta precomputed for the constant 0.99, then spreads it over
 * the key space with FNV-1a 64 modulo the key count, so the popular keys are not
 * neighbours. SkewedLatestGenerator ("latest", workload D) draws a rank over the
 * keys inserted so far and reads the newest minus that rank; its zeta grows with
 * the key count, incrementally, as YCSB's does.
 * ------------------------------------------------------------------------------ */
#define ZIPF_THETA 0.99                   /* YCSB's ZIPFIAN_CONSTANT */
#define ZIPF_SCRAMBLED_ITEMS 10000000000ull /* ScrambledZipfianGenerator.ITEM_COUNT */
#define ZIPF_SCRAMBLED_ZETAN 26.46902820178302 /* ... its zeta(ITEM_COUNT, 0.99) */

struct zipf {
    uint64_t n;                    /* items: ranks are 0..n-1 */
    double theta, alpha;           /* skew; 1 / (1 - theta) */
    double zetan, zeta2, eta;      /* zeta(n), zeta(2), Gray's eta for n */
};

static inline double zeta_add(uint64_t from, uint64_t to, double theta, double sum)
{
    for (uint64_t i = from; i < to; i++)
        sum += 1.0 / pow((double)(i + 1), theta);
    return sum;
}

static inline void zipf_eta(struct zipf *z)
{
    z->eta = (1 - pow(2.0 / (double)z->n, 1 - z->theta)) / (1 - z->zeta2 / z->zetan);
}

/* zetan: zeta(n, theta) when known (0: computed, O(n)). */
static inline void zipf_init(struct zipf *z, uint64_t n, double zetan)
{
    z->n = n;
    z->theta = ZIPF_THETA;
    z->alpha = 1 / (1 - z->theta);
    z->zeta2 = zeta_add(0, 2, z->theta, 0);
    z->zetan = zetan > 0 ? zetan : zeta_add(0, n, z->theta, 0);
    zipf_eta(z);
}

/* Grows the item count to n (YCSB's nextLong(itemcount) when the count grew). */
static inline void zipf_grow(struct zipf *z, uint64_t n)
{
    if (n <= z->n)
        return;
    z->zetan = zeta_add(z->n, n, z->theta, z->zetan);
    z->n = n;
    zipf_eta(z);
}

/* A rank in 0..n-1, from the thread's generator. */
static inline uint64_t zipf_next(const struct zipf *z, uint64_t *rng)
{
    double u = (double)(splitmix64(rng) >> 11) * 0x1.0p-53;
    double uz = u * z->zetan;
    if (uz < 1)
        return 0;
    if (uz < 1 + pow(0.5, z->theta))
        return 1;
    uint64_t r = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1, z->alpha));
    return r < z->n ? r : z->n - 1;
}

/* YCSB's Utils.fnvhash64: FNV-1a over the 8 bytes, low byte first, made positive. */
static inline uint64_t fnvhash64(uint64_t v)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < 8; i++) {
        h ^= v & 0xff;
        h *= 1099511628211ull;
        v >>= 8;
    }
    int64_t s = (int64_t)h;
    return s < 0 ? (uint64_t)0 - h : h;
}

/* ScrambledZipfianGenerator: z from zipf_init(z, ZIPF_SCRAMBLED_ITEMS,
 * ZIPF_SCRAMBLED_ZETAN); a key in 0..keys-1. */
static inline uint64_t zipf_scrambled(const struct zipf *z, uint64_t *rng, uint64_t keys)
{
    return fnvhash64(zipf_next(z, rng)) % keys;
}

/* SkewedLatestGenerator: the newest of keys 0..keys-1 less a zipfian rank over them
 * (z grows to keys first). */
static inline uint64_t zipf_latest(struct zipf *z, uint64_t *rng, uint64_t keys)
{
    zipf_grow(z, keys);
    return keys - 1 - zipf_next(z, rng);
}

#endif /* KV_BENCH_GEN_H */
