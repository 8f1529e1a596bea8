/*
 * test_property.c — the "property" suite: random operation sequences checked against
 * an in-memory model.
 *
 * For each seed, a fresh store receives a random sequence of puts (keys from a small
 * binary key space, values of 0..300 bytes with occasional large ones), deletes,
 * gets, batches of 1..10 mixed operations, kv_sync calls, kv_compact calls and reopens
 * (sometimes with another sync mode, io backend, tiny segment size, dead ratio or
 * background compaction setting, so segments roll, compaction runs on its own and
 * recovery runs over many files). After every step the touched keys and the key count are
 * compared with the model; after every reopen the whole store is (kv_foreach plus a
 * kv_get of every model key).
 *
 * A failure names the seed and step. To reproduce one seed alone:
 *   KV_PROPERTY_SEED=<seed> build/bin/kvtest
 * KV_PROPERTY_SEEDS=<n> overrides the number of seeds.
 */
#include "kvtest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PK_KEYS 40        /* size of the key space: small, so keys are rewritten */
#define PK_MAX_KEY 32     /* longest generated key */
#define PK_BATCH_MAX 10   /* operations per batch */

/* ---------------------------------------------------------------------------------
 * The model
 * ------------------------------------------------------------------------------ */
typedef struct pk_model {
    int present[PK_KEYS];          /* 1 when the key holds a value */
    unsigned char *val[PK_KEYS];   /* malloc'd value (non-NULL when present) */
    size_t len[PK_KEYS];           /* its length */
} pk_model;

static void model_set(pk_model *m, int k, const void *v, size_t len)
{
    free(m->val[k]);
    m->val[k] = malloc(len > 0 ? len : 1);
    if (len > 0)
        memcpy(m->val[k], v, len);
    m->len[k] = len;
    m->present[k] = 1;
}

static void model_del(pk_model *m, int k)
{
    free(m->val[k]);
    m->val[k] = NULL;
    m->len[k] = 0;
    m->present[k] = 0;
}

static void model_free(pk_model *m)
{
    for (int k = 0; k < PK_KEYS; k++)
        model_del(m, k);
}

static uint64_t model_count(const pk_model *m)
{
    uint64_t n = 0;
    for (int k = 0; k < PK_KEYS; k++)
        n += (uint64_t)m->present[k];
    return n;
}

/* Key k: its first byte is k (so keys are distinct), then 0..PK_MAX_KEY-1 bytes
 * derived from k, NULs and high bytes included. */
static size_t pk_key(int k, unsigned char *buf)
{
    uint64_t h = kvt_mix64((uint64_t)k * 977u + 5u);
    size_t len = 1 + (size_t)(h % PK_MAX_KEY);
    buf[0] = (unsigned char)k;
    for (size_t i = 1; i < len; i++) {
        h = kvt_mix64(h);
        buf[i] = (h & 3) == 0 ? 0 : (unsigned char)(h >> 8);
    }
    return len;
}

static int pk_key_index(const void *key, size_t klen)
{
    unsigned char buf[PK_MAX_KEY];
    int k;
    if (klen == 0)
        return -1;
    k = ((const unsigned char *)key)[0];
    if (k >= PK_KEYS || pk_key(k, buf) != klen || memcmp(buf, key, klen) != 0)
        return -1;
    return k;
}

/* ---------------------------------------------------------------------------------
 * One seed's run
 * ------------------------------------------------------------------------------ */
typedef struct pk_run {
    kvt_rng rng;        /* drives every choice */
    uint64_t seed;
    int step;           /* current step, for messages */
    const char *op;     /* current operation, for messages */
    char dir[4096];     /* the store directory */
    kv_db *db;
    kv_options opts;    /* the options of the current handle */
    pk_model m;
    unsigned char *vbuf; /* scratch value buffer */
    char why[1024];     /* the first mismatch */
    unsigned long long n_put, n_delete, n_batch, n_reopen, n_reopen_changed; /* tallies */
    unsigned long long n_compact, n_passes; /* kv_compact calls, passes run (all kinds) */
} pk_run;

#define PK_VBUF (100u * 1024)

static int fail(pk_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(pk_run *r, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(r->why, sizeof r->why,
             "property: seed %llu step %d (%s, sync %d, io %d, segment_bytes %llu): %s "
             "[reproduce: KV_PROPERTY_SEED=%llu]",
             (unsigned long long)r->seed, r->step, r->op, r->opts.sync, r->opts.io,
             (unsigned long long)r->opts.segment_bytes, msg, (unsigned long long)r->seed);
    return -1;
}

static size_t random_value(pk_run *r)
{
    uint64_t p = kvt_rng_below(&r->rng, 100);
    size_t len;
    if (p < 8)
        len = 0;
    else if (p < 90)
        len = (size_t)kvt_rng_range(&r->rng, 1, 300);
    else if (p < 98)
        len = (size_t)kvt_rng_range(&r->rng, 301, 5000);
    else
        len = (size_t)kvt_rng_range(&r->rng, 5001, PK_VBUF);
    kvt_rng_fill(&r->rng, r->vbuf, len);
    return len;
}

static int check_key(pk_run *r, int k)
{
    unsigned char key[PK_MAX_KEY];
    size_t kl = pk_key(k, key);
    char why[512];
    if (kvt_value_cmp(r->db, key, kl, r->m.present[k] ? r->m.val[k] : NULL, r->m.len[k],
                      why, sizeof why) != 0)
        return fail(r, "key #%d: %s", k, why);
    return 0;
}

static int check_count(pk_run *r)
{
    kv_stats st;
    int rc = kv_stat(r->db, &st);
    if (rc != KV_OK)
        return fail(r, "kv_stat: %d (%s)", rc, kv_strerror(rc));
    if (st.keys != model_count(&r->m))
        return fail(r, "kv_stat keys %llu, model has %llu", (unsigned long long)st.keys,
                    (unsigned long long)model_count(&r->m));
    return 0;
}

struct pk_visit {
    pk_run *r;
    int seen[PK_KEYS];
    int bad;
    char first[512];
};

static int visit(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
    struct pk_visit *s = arg;
    int i = pk_key_index(k, kl);
    char kb[96];
    if (i < 0) {
        if (s->bad++ == 0)
            snprintf(s->first, sizeof s->first, "unknown key \"%s\"",
                     kvt_fmt(kb, sizeof kb, k, kl));
        return 0;
    }
    s->seen[i]++;
    if (!s->r->m.present[i]) {
        if (s->bad++ == 0)
            snprintf(s->first, sizeof s->first, "key #%d visited but absent in the model", i);
    } else if (vl != s->r->m.len[i] || (vl > 0 && memcmp(v, s->r->m.val[i], vl) != 0)) {
        if (s->bad++ == 0)
            snprintf(s->first, sizeof s->first, "key #%d visited with %zu bytes, model "
                     "has %zu (or the bytes differ)", i, vl, s->r->m.len[i]);
    }
    return 0;
}

static int check_all(pk_run *r)
{
    static struct pk_visit s;
    int rc;
    memset(&s, 0, sizeof s);
    s.r = r;
    rc = kv_foreach(r->db, visit, &s);
    if (rc != KV_OK)
        return fail(r, "kv_foreach: %d (%s): %s", rc, kv_strerror(rc), kv_errmsg());
    if (s.bad != 0)
        return fail(r, "kv_foreach: %d bad visits, first: %s", s.bad, s.first);
    for (int k = 0; k < PK_KEYS; k++) {
        if (s.seen[k] != r->m.present[k])
            return fail(r, "kv_foreach visited key #%d %d times, model says %s", k,
                        s.seen[k], r->m.present[k] ? "present" : "absent");
        if (check_key(r, k) != 0)
            return -1;
    }
    return check_count(r);
}

/* ---------------------------------------------------------------------------------
 * Operations
 * ------------------------------------------------------------------------------ */

static int op_put(pk_run *r)
{
    unsigned char key[PK_MAX_KEY];
    int k = (int)kvt_rng_below(&r->rng, PK_KEYS);
    size_t kl = pk_key(k, key);
    size_t vl = random_value(r);
    int rc = kv_put(r->db, key, kl, r->vbuf, vl);
    r->op = "put";
    r->n_put++;
    if (rc != KV_OK)
        return fail(r, "kv_put key #%d (%zu bytes): %d (%s): %s", k, vl, rc,
                    kv_strerror(rc), kv_errmsg());
    model_set(&r->m, k, r->vbuf, vl);
    return check_key(r, k);
}

static int op_delete(pk_run *r)
{
    unsigned char key[PK_MAX_KEY];
    int k = (int)kvt_rng_below(&r->rng, PK_KEYS);
    size_t kl = pk_key(k, key);
    int want = r->m.present[k] ? KV_OK : KV_NOTFOUND;
    int rc = kv_delete(r->db, key, kl);
    r->op = "delete";
    r->n_delete++;
    if (rc != want)
        return fail(r, "kv_delete key #%d (%s in the model): %d (%s), expected %d", k,
                    r->m.present[k] ? "present" : "absent", rc, kv_strerror(rc), want);
    model_del(&r->m, k);
    return check_key(r, k);
}

static int op_get(pk_run *r)
{
    r->op = "get";
    return check_key(r, (int)kvt_rng_below(&r->rng, PK_KEYS));
}

static int op_batch(pk_run *r)
{
    unsigned char key[PK_MAX_KEY];
    int touched[PK_BATCH_MAX];
    int n = (int)kvt_rng_range(&r->rng, 1, PK_BATCH_MAX);
    kv_batch *b = kv_batch_new();
    pk_model next;
    int rc;

    r->op = "batch";
    r->n_batch++;
    if (b == NULL)
        return fail(r, "kv_batch_new returned NULL");
    /* Apply to a copy of the model as the batch is built; commit it on success. */
    memset(&next, 0, sizeof next);
    for (int k = 0; k < PK_KEYS; k++) {
        if (r->m.present[k])
            model_set(&next, k, r->m.val[k], r->m.len[k]);
    }
    for (int i = 0; i < n; i++) {
        int k = (int)kvt_rng_below(&r->rng, PK_KEYS);
        size_t kl = pk_key(k, key);
        touched[i] = k;
        if (kvt_rng_chance(&r->rng, 70)) {
            size_t vl = random_value(r);
            rc = kv_batch_put(b, key, kl, r->vbuf, vl);
            model_set(&next, k, r->vbuf, vl);
        } else {
            rc = kv_batch_delete(b, key, kl);
            model_del(&next, k);
        }
        if (rc != KV_OK) {
            kv_batch_free(b);
            model_free(&next);
            return fail(r, "building a batch, op %d: %d (%s)", i, rc, kv_strerror(rc));
        }
    }
    rc = kv_write(r->db, b);
    kv_batch_free(b);
    if (rc != KV_OK) {
        model_free(&next);
        return fail(r, "kv_write of %d ops: %d (%s): %s", n, rc, kv_strerror(rc),
                    kv_errmsg());
    }
    model_free(&r->m);
    r->m = next;
    for (int i = 0; i < n; i++) {
        if (check_key(r, touched[i]) != 0)
            return -1;
    }
    return 0;
}

static int op_reopen(pk_run *r, int change)
{
    int rc;
    r->op = change ? "reopen with new options" : "reopen";
    r->n_reopen++;
    r->n_reopen_changed += (unsigned long long)change;
    rc = kv_close(r->db);
    r->db = NULL;
    if (rc != KV_OK)
        return fail(r, "kv_close: %d (%s): %s", rc, kv_strerror(rc), kv_errmsg());
    if (change) {
        static const int syncs[] = { KV_SYNC_NONE, KV_SYNC_ALWAYS, KV_SYNC_INTERVAL };
        static const uint64_t segs[] = { 4096, 8192, 65536, 64u * 1024 * 1024 };
        r->opts.sync = syncs[kvt_rng_below(&r->rng, 3)];
        r->opts.io = kvt_rng_chance(&r->rng, 50) ? KV_IO_AUTO : KV_IO_PSYNC;
        r->opts.segment_bytes = segs[kvt_rng_below(&r->rng, 4)];
        r->opts.sync_interval_ms = (unsigned)kvt_rng_range(&r->rng, 1, 50);
        r->opts.auto_compact = kvt_rng_chance(&r->rng, 50);
        r->opts.compact_dead_ratio = kvt_rng_chance(&r->rng, 50) ? 0.5 : 0.1;
    }
    rc = kv_open(r->dir, &r->opts, &r->db);
    if (rc != KV_OK)
        return fail(r, "kv_open: %d (%s): %s", rc, kv_strerror(rc), kv_errmsg());
    return check_all(r);
}

/* Compaction changes no contents: the whole store must still match the model. */
static int op_compact(pk_run *r)
{
    kv_stats st;
    r->op = "compact";
    r->n_compact++;
    int rc = kv_compact(r->db);
    if (rc != KV_OK)
        return fail(r, "kv_compact: %d (%s): %s", rc, kv_strerror(rc), kv_errmsg());
    if (kv_stat(r->db, &st) == KV_OK && st.compact_errors != 0)
        return fail(r, "%llu compaction passes failed", (unsigned long long)st.compact_errors);
    r->n_passes += st.compactions;
    return check_all(r);
}

static int op_sync(pk_run *r)
{
    int rc = kv_sync(r->db);
    r->op = "sync";
    if (rc != KV_OK)
        return fail(r, "kv_sync: %d (%s): %s", rc, kv_strerror(rc), kv_errmsg());
    return 0;
}

static int one_step(pk_run *r)
{
    uint64_t p = kvt_rng_below(&r->rng, 100);
    int rc;
    if (p < 42)
        rc = op_put(r);
    else if (p < 57)
        rc = op_delete(r);
    else if (p < 70)
        rc = op_get(r);
    else if (p < 89)
        rc = op_batch(r);
    else if (p < 92)
        rc = op_compact(r);
    else if (p < 95)
        rc = op_reopen(r, 0);
    else if (p < 97)
        rc = op_reopen(r, 1);
    else
        rc = op_sync(r);
    return rc != 0 ? rc : check_count(r);
}

/* Runs one seed in a fresh store under base; returns 0, or -1 with r->why set. */
static int run_seed(pk_run *r, const char *base, uint64_t seed, int steps)
{
    int rc;

    memset(&r->m, 0, sizeof r->m);
    r->seed = seed;
    r->step = 0;
    r->op = "open";
    r->why[0] = '\0';
    kvt_rng_seed(&r->rng, seed * 0x9e3779b97f4a7c15ull + 1);
    snprintf(r->dir, sizeof r->dir, "%s/seed-%llu", base, (unsigned long long)seed);

    /* Most seeds run under KV_SYNC_NONE, so the suite stays fast. */
    kvt_options(&r->opts, KV_SYNC_NONE, KV_IO_AUTO, 0);
    {
        uint64_t p = kvt_rng_below(&r->rng, 10);
        r->opts.sync = p < 6 ? KV_SYNC_NONE : p < 8 ? KV_SYNC_ALWAYS : KV_SYNC_INTERVAL;
        r->opts.io = kvt_rng_chance(&r->rng, 50) ? KV_IO_AUTO : KV_IO_PSYNC;
        r->opts.segment_bytes = kvt_rng_chance(&r->rng, 30) ? 4096 : 64u * 1024 * 1024;
        r->opts.sync_interval_ms = 5;
        r->opts.auto_compact = kvt_rng_chance(&r->rng, 50);
    }
    rc = kv_open(r->dir, &r->opts, &r->db);
    if (rc != KV_OK) {
        r->db = NULL;
        return fail(r, "kv_open: %d (%s): %s", rc, kv_strerror(rc), kv_errmsg());
    }
    for (r->step = 1; rc == 0 && r->step <= steps; r->step++)
        rc = one_step(r);
    if (rc == 0) {
        r->step = steps + 1;
        rc = op_reopen(r, 0); /* the final state survives a reopen */
    }
    if (r->db != NULL) {
        int crc = kv_close(r->db);
        r->db = NULL;
        if (rc == 0 && crc != KV_OK)
            rc = fail(r, "final kv_close: %d (%s)", crc, kv_strerror(crc));
    }
    model_free(&r->m);
    if (rc == 0)
        kvt_rmtree(r->dir);
    return rc;
}

static void test_random_operations_match_model(void)
{
    const char *one = getenv("KV_PROPERTY_SEED");
    const char *count = getenv("KV_PROPERTY_SEEDS");
    unsigned seeds = kvt_scaled(200, 40);
    int steps = (int)kvt_scaled(150, 100);
    uint64_t first = 1;
    char *base = kvt_dir_new("property");
    static pk_run r;
    int failed = 0;

    if (count != NULL && atoi(count) > 0)
        seeds = (unsigned)atoi(count);
    if (one != NULL && one[0] != '\0') {
        first = strtoull(one, NULL, 10);
        seeds = 1;
    }
    memset(&r, 0, sizeof r);
    r.vbuf = malloc(PK_VBUF);
    KVT_CHECK_FATAL(r.vbuf != NULL, "out of memory");
    for (uint64_t s = first; s < first + seeds; s++) {
        KVT_CHECK(1, "%s", "");
        if (run_seed(&r, base, s, steps) != 0) {
            KVT_CHECK(0, "%s", r.why);
            if (++failed >= 3)
                break; /* enough to go on; the rest would repeat the story */
        }
    }
    KVT_CHECK(failed == 0, "%d of the seeds failed (first messages above)", failed);
    kvt_note("%u seeds x %d steps: %llu puts, %llu deletes, %llu batches, %llu reopens "
             "(%llu with new options), %llu kv_compact calls (%llu passes counted at them)",
             seeds, steps, r.n_put, r.n_delete, r.n_batch, r.n_reopen, r.n_reopen_changed,
             r.n_compact, r.n_passes);
    free(r.vbuf);
}

static const kvt_test property_tests[] = {
    { "random operations match the model (seeds, reopens)",
      test_random_operations_match_model },
    { NULL, NULL },
};

void kvt_register_property(void)
{
    kvt_add_suite("property", property_tests);
}
