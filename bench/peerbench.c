/*
 * peerbench.c — kv side by side with LevelDB, RocksDB, LMDB and Tkrzw (HashDBM): the
 * same workloads, keys, values and seeded orders as kvbench, through each engine's
 * C API (leveldb/c.h, rocksdb/c.h, lmdb.h, tkrzw_langc.h; kv.h for kv).
 *
 * Each engine is a table of functions (struct engine: open, put, get, delete,
 * compact, close, its version and the options it runs with). An engine whose header
 * was absent at build time is compiled out (the Makefile defines PEER_HAVE_<NAME>
 * for those it found) and --list says so. The parent process forks one child per
 * engine asked for, one after the other: an engine runs alone in its process (its
 * peak RSS is its own) and in a directory of its own under the run's directory.
 *
 * Keys, values, the seeded orders and the latency histogram come from bench/gen.h,
 * which kvbench includes too: keys are zero-padded decimals, values are slices of a
 * half-compressible pool chosen by a hash of the key, so every value read back is
 * checked byte for byte against the value written. Durability is set per workload
 * when the store is opened: "nosync" hands each write to the kernel without an fsync
 * (kv KV_SYNC_NONE, LevelDB and RocksDB sync=0, LMDB MDB_NOSYNC, Tkrzw no
 * synchronize), "sync" makes each acknowledged write durable (kv KV_SYNC_ALWAYS,
 * sync=1, one LMDB commit per write, Tkrzw synchronize(hard) after each write).
 *
 * Each result line carries the engine's version, ops/s, p50/p99/p99.9 latency, the
 * process's CPU seconds, its peak RSS, the CPU the rest of the machine used during
 * the row (so a disturbed row shows), disk bytes over logical bytes after writes,
 * and before a sync workload the disk's write+fdatasync latency measured right then.
 * crashopen runs a fill in a new process (peerbench --crash-child, exec'd: the
 * peers' background threads would not survive a fork) that dies of SIGKILL, then
 * times the open of what it left and reads every key back.
 *
 * The YCSB workloads (ycsb-a, -b, -c, -d, -f) pick keys as YCSB does (bench/gen.h
 * section 4: scrambled zipfian 0.99, "latest" for D); readwhilewriting runs readers
 * beside one writer paced at --write-rate. --repeat runs the whole round of engines
 * N times, so the engines interleave; each child sends its results to the parent
 * down a pipe, and the parent prints the median of each figure at the end.
 *
 * Sections:
 *   1. Configuration, usage text, errors
 *   2. The engines: kv, LevelDB, RocksDB, LMDB, Tkrzw, and the table of them
 *   3. The store: directory, opening in a durability, space on disk
 *   4. Running operations on threads
 *   5. Workloads
 *   6. Report: text table or JSON lines; medians of --repeat runs
 *   7. Command line and main
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kv.h"
#include "gen.h"
#include "../tools/json.h"

#ifdef PEER_HAVE_LEVELDB
#include <leveldb/c.h>
#endif
#ifdef PEER_HAVE_ROCKSDB
#include <rocksdb/c.h>
#endif
#ifdef PEER_HAVE_LMDB
#include <lmdb.h>
#endif
#ifdef PEER_HAVE_TKRZW
#include <tkrzw_langc.h>
#endif

/* ---------------------------------------------------------------------------------
 * 1. Configuration, usage text, errors
 * ------------------------------------------------------------------------------ */
enum {
    EXIT_DONE = 0,     /* every workload ran and every value read back was right */
    EXIT_FAILED = 1,   /* an engine call failed, or a value was wrong or missing */
    EXIT_USAGE = 2     /* bad command line, or an engine asked for is not built */
};

#define DEFAULT_ENGINES "kv,leveldb,rocksdb,lmdb,tkrzw"
#define DEFAULT_WORKLOADS                                                                  \
    "fillseq,fillrandom,overwrite,compact,readrandom,readrandom:2,readmissing,"           \
    "readmissing:2,ycsb-a,ycsb-b,ycsb-c,ycsb-d,ycsb-f,readwhilewriting:2,"             \
    "deleterandom,fillsync,fillsync:8,crashopen"
#define MAX_THREADS 64u
#define MIB 1048576.0
#define VALUE_CAP 65536u   /* largest --value-size (gets copy into a buffer this big) */

struct config {
    const char *engines;     /* comma-separated engine names, or "all" */
    const char *workloads;   /* comma-separated NAME[:THREADS] */
    uint64_t num;            /* keys of a full store; writes of a fill */
    uint64_t reads;          /* operations of readrandom and readmissing */
    uint64_t sync_num;       /* writes of fillsync, across its threads */
    uint64_t write_rate;     /* readwhilewriting: the writer's puts a second */
    size_t key_size;         /* bytes per key */
    size_t value_size;       /* bytes per value */
    double compressible;     /* values compress to about this share of their size */
    uint64_t seed;           /* seeds key order, values and each thread's generator */
    const char *dir;         /* run directory; NULL: a fresh temporary one */
    int keep;                /* keep the stores at the end */
    int json;                /* JSON lines instead of the table */
    int crash_child;         /* the hidden --crash-child: fill --dir, then SIGKILL */
    const char *self;        /* argv[0], run again for --crash-child */
    unsigned repeat;         /* runs of every engine, interleaved */
    unsigned run_no;         /* this engine process's run, 1..repeat */
    int summary_fd;          /* the child's pipe to the parent's medians, or -1 */
};

static const char usage_text[] =
    "usage: peerbench [OPTIONS]\n"
    "Runs the same workloads against kv and, where built in, LevelDB, RocksDB, LMDB\n"
    "and Tkrzw (HashDBM), one engine per process.\n"
    "  --engines LIST      comma-separated, from kv, leveldb, rocksdb, lmdb, tkrzw,\n"
    "                      or all (default: every engine built in)\n"
    "  --workloads LIST    comma-separated NAME[:THREADS], NAME from fillseq,\n"
    "                      fillrandom, overwrite, compact, readrandom, readmissing,\n"
    "                      deleterandom, fillsync, crashopen (a process fills a\n"
    "                      store and is killed with SIGKILL; the open after it is\n"
    "                      timed, then every key read), ycsb-a (50% read, 50%\n"
    "                      update), ycsb-b (95/5), ycsb-c (reads), ycsb-d (95% read\n"
    "                      of the latest, 5% insert), ycsb-f (50% read, 50% read-\n"
    "                      modify-write), keys scrambled zipfian 0.99 as YCSB's;\n"
    "                      readwhilewriting:T (T-1 readers, 1 paced writer)\n"
    "                      (default:\n"
    "                      " DEFAULT_WORKLOADS ")\n"
    "  --num N             keys in the store, writes per fill (1000000)\n"
    "  --reads N           operations of readrandom, readmissing, ycsb-*,\n"
    "                      readwhilewriting's readers (--num)\n"
    "  --sync-num N        writes of fillsync (20000)\n"
    "  --write-rate N      readwhilewriting: the writer's puts a second (10000)\n"
    "  --key-size N        bytes per key (16)\n"
    "  --value-size N      bytes per value (100)\n"
    "  --compressible R    values compress to about R of their size (0.5)\n"
    "  --seed N            key order, values and thread generators (301)\n"
    "  --dir DIR           run in DIR/<engine> (default: a temporary directory,\n"
    "                      removed at the end)\n"
    "  --keep              keep the stores (with --repeat, in DIR/<engine>.<run>)\n"
    "  --repeat N          runs of every engine, interleaved (kv, peer, ..., kv,\n"
    "                      peer, ...), then the median of each figure per engine\n"
    "                      and workload (3)\n"
    "  --json              one JSON object per line\n"
    "  --list              the engines built in, with their versions, and those not\n"
    "  --help, --version\n"
    "exit status: 0 ok, 1 an engine call failed or a value read back was wrong,\n"
    "             2 usage error or an engine asked for is not built in\n";

/* The message of the last failing engine call of this thread. */
static _Thread_local char peer_err[512];

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(peer_err, sizeof peer_err, fmt, ap);
    va_end(ap);
    return -1;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("peerbench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(EXIT_FAILED);
}

/* ---------------------------------------------------------------------------------
 * 2. The engines
 *
 * Every function returns 0 on success and -1 on failure with peer_err set; get
 * returns 1 when the key is absent and copies a found value into buf (cap bytes),
 * del returns 1 when the engine says the key was absent (LevelDB and RocksDB never
 * say). Durability is chosen at open, because kv's is a property of the handle; for
 * the others it picks the write options. Each handle is shared by the threads of a
 * workload: all five engines allow that (LMDB with MDB_NOTLS and a transaction per
 * operation).
 * ------------------------------------------------------------------------------ */
struct engine {
    const char *name;                               /* --engines name */
    const char *missing;                            /* NULL, or why it is not built */
    void (*version)(char *buf, size_t n);           /* the library's version */
    const char *(*options)(int sync);               /* the options it runs with */
    int (*open)(const char *dir, int sync, void **h); /* create or open the store */
    int (*put)(void *h, const void *k, size_t kl, const void *v, size_t vl);
    int (*get)(void *h, const void *k, size_t kl, void *buf, size_t cap, size_t *vl);
    int (*del)(void *h, const void *k, size_t kl);
    int (*compact)(void *h);                        /* the engine's own compaction */
    int (*close)(void *h);
    double (*index_per_key)(void *h);               /* bytes of in-memory index per
                                                       key; NULL: not known (peers) */
};

/* ---- kv ---- */
static void kv_e_version(char *buf, size_t n)
{
    snprintf(buf, n, "%s", kv_version());
}

static const char *kv_e_options(int sync)
{
    return sync ? "kv_options defaults, sync=KV_SYNC_ALWAYS"
                : "kv_options defaults, sync=KV_SYNC_NONE";
}

static int kv_e_open(const char *dir, int sync, void **h)
{
    kv_options o;
    kv_db *db = NULL;
    kv_options_init(&o);
    o.create = 1;
    o.sync = sync ? KV_SYNC_ALWAYS : KV_SYNC_NONE;
    int rc = kv_open(dir, &o, &db);
    if (rc != KV_OK)
        return fail("kv_open %s: %s: %s", dir, kv_strerror(rc), kv_errmsg());
    *h = db;
    return 0;
}

static int kv_e_put(void *h, const void *k, size_t kl, const void *v, size_t vl)
{
    int rc = kv_put(h, k, kl, v, vl);
    return rc == KV_OK ? 0 : fail("kv_put: %s: %s", kv_strerror(rc), kv_errmsg());
}

static int kv_e_get(void *h, const void *k, size_t kl, void *buf, size_t cap, size_t *vl)
{
    void *v = NULL;
    int rc = kv_get(h, k, kl, &v, vl);
    if (rc == KV_NOTFOUND)
        return 1;
    if (rc != KV_OK)
        return fail("kv_get: %s: %s", kv_strerror(rc), kv_errmsg());
    memcpy(buf, v, *vl < cap ? *vl : cap);
    kv_free(v);
    return 0;
}

static int kv_e_del(void *h, const void *k, size_t kl)
{
    int rc = kv_delete(h, k, kl);
    if (rc == KV_NOTFOUND)
        return 1;
    return rc == KV_OK ? 0 : fail("kv_delete: %s: %s", kv_strerror(rc), kv_errmsg());
}

static int kv_e_compact(void *h)
{
    int rc = kv_compact(h);
    return rc == KV_OK ? 0 : fail("kv_compact: %s: %s", kv_strerror(rc), kv_errmsg());
}

/* kv_stat's index_bytes over its keys (as kvbench's "index … B/key"). */
static double kv_e_index_per_key(void *h)
{
    kv_stats st;
    if (kv_stat(h, &st) != KV_OK || st.keys == 0)
        return 0;
    return (double)st.index_bytes / (double)st.keys;
}

static int kv_e_close(void *h)
{
    int rc = kv_close(h);
    return rc == KV_OK ? 0 : fail("kv_close: %s: %s", kv_strerror(rc), kv_errmsg());
}

/* ---- LevelDB and RocksDB: the same C API under two prefixes ---- */
#if defined(PEER_HAVE_LEVELDB) || defined(PEER_HAVE_ROCKSDB)
/* An error string from the library: copied to peer_err, then freed by free_fn. */
static int fail_lsm(const char *what, char *err, void (*free_fn)(void *))
{
    fail("%s: %s", what, err);
    free_fn(err);
    return -1;
}
#endif

#ifdef PEER_HAVE_LEVELDB
struct ldb {
    leveldb_t *db;                 /* the store */
    leveldb_options_t *opt;        /* create_if_missing, the rest default */
    leveldb_writeoptions_t *wo;    /* sync = the workload's durability */
    leveldb_readoptions_t *ro;     /* defaults */
};

static void ldb_version(char *buf, size_t n)
{
    snprintf(buf, n, "%d.%d", leveldb_major_version(), leveldb_minor_version());
}

static const char *ldb_options(int sync)
{
    return sync ? "Options defaults + create_if_missing=1; WriteOptions sync=1"
                : "Options defaults + create_if_missing=1; WriteOptions sync=0";
}

static int ldb_open(const char *dir, int sync, void **h)
{
    struct ldb *l = calloc(1, sizeof *l);
    char *err = NULL;
    if (l == NULL)
        return fail("out of memory");
    l->opt = leveldb_options_create();
    leveldb_options_set_create_if_missing(l->opt, 1);
    l->wo = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(l->wo, (unsigned char)(sync != 0));
    l->ro = leveldb_readoptions_create();
    l->db = leveldb_open(l->opt, dir, &err);
    if (err != NULL) {
        leveldb_options_destroy(l->opt);
        leveldb_writeoptions_destroy(l->wo);
        leveldb_readoptions_destroy(l->ro);
        free(l);
        return fail_lsm("leveldb_open", err, leveldb_free);
    }
    *h = l;
    return 0;
}

static int ldb_put(void *h, const void *k, size_t kl, const void *v, size_t vl)
{
    struct ldb *l = h;
    char *err = NULL;
    leveldb_put(l->db, l->wo, k, kl, v, vl, &err);
    return err == NULL ? 0 : fail_lsm("leveldb_put", err, leveldb_free);
}

static int ldb_get(void *h, const void *k, size_t kl, void *buf, size_t cap, size_t *vl)
{
    struct ldb *l = h;
    char *err = NULL;
    char *v = leveldb_get(l->db, l->ro, k, kl, vl, &err);
    if (err != NULL)
        return fail_lsm("leveldb_get", err, leveldb_free);
    if (v == NULL)
        return 1;
    memcpy(buf, v, *vl < cap ? *vl : cap);
    leveldb_free(v);
    return 0;
}

static int ldb_del(void *h, const void *k, size_t kl)
{
    struct ldb *l = h;
    char *err = NULL;
    leveldb_delete(l->db, l->wo, k, kl, &err);
    return err == NULL ? 0 : fail_lsm("leveldb_delete", err, leveldb_free);
}

static int ldb_compact(void *h)
{
    struct ldb *l = h;
    leveldb_compact_range(l->db, NULL, 0, NULL, 0);
    return 0;
}

static int ldb_close(void *h)
{
    struct ldb *l = h;
    leveldb_close(l->db);
    leveldb_options_destroy(l->opt);
    leveldb_writeoptions_destroy(l->wo);
    leveldb_readoptions_destroy(l->ro);
    free(l);
    return 0;
}
#endif

#ifdef PEER_HAVE_ROCKSDB
struct rdb {
    rocksdb_t *db;                 /* the store */
    rocksdb_options_t *opt;        /* create_if_missing, the rest default */
    rocksdb_writeoptions_t *wo;    /* sync = the workload's durability */
    rocksdb_readoptions_t *ro;     /* defaults */
};

/* rocksdb/c.h has no version call (rocksdb/version.h is C++): the Makefile passes
 * the version pkg-config gave at build time. */
static void rdb_version(char *buf, size_t n)
{
#ifdef PEER_ROCKSDB_VERSION
    snprintf(buf, n, "%s", PEER_ROCKSDB_VERSION);
#else
    snprintf(buf, n, "unknown");
#endif
}

static const char *rdb_options(int sync)
{
    return sync ? "Options defaults + create_if_missing=1; WriteOptions sync=1"
                : "Options defaults + create_if_missing=1; WriteOptions sync=0";
}

static void rdb_free(void *p)
{
    rocksdb_free(p);
}

static int rdb_open(const char *dir, int sync, void **h)
{
    struct rdb *r = calloc(1, sizeof *r);
    char *err = NULL;
    if (r == NULL)
        return fail("out of memory");
    r->opt = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(r->opt, 1);
    r->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(r->wo, (unsigned char)(sync != 0));
    r->ro = rocksdb_readoptions_create();
    r->db = rocksdb_open(r->opt, dir, &err);
    if (err != NULL) {
        rocksdb_options_destroy(r->opt);
        rocksdb_writeoptions_destroy(r->wo);
        rocksdb_readoptions_destroy(r->ro);
        free(r);
        return fail_lsm("rocksdb_open", err, rdb_free);
    }
    *h = r;
    return 0;
}

static int rdb_put(void *h, const void *k, size_t kl, const void *v, size_t vl)
{
    struct rdb *r = h;
    char *err = NULL;
    rocksdb_put(r->db, r->wo, k, kl, v, vl, &err);
    return err == NULL ? 0 : fail_lsm("rocksdb_put", err, rdb_free);
}

static int rdb_get(void *h, const void *k, size_t kl, void *buf, size_t cap, size_t *vl)
{
    struct rdb *r = h;
    char *err = NULL;
    char *v = rocksdb_get(r->db, r->ro, k, kl, vl, &err);
    if (err != NULL)
        return fail_lsm("rocksdb_get", err, rdb_free);
    if (v == NULL)
        return 1;
    memcpy(buf, v, *vl < cap ? *vl : cap);
    rocksdb_free(v);
    return 0;
}

static int rdb_del(void *h, const void *k, size_t kl)
{
    struct rdb *r = h;
    char *err = NULL;
    rocksdb_delete(r->db, r->wo, k, kl, &err);
    return err == NULL ? 0 : fail_lsm("rocksdb_delete", err, rdb_free);
}

static int rdb_compact(void *h)
{
    struct rdb *r = h;
    rocksdb_compact_range(r->db, NULL, 0, NULL, 0);
    return 0;
}

static int rdb_close(void *h)
{
    struct rdb *r = h;
    rocksdb_close(r->db);
    rocksdb_options_destroy(r->opt);
    rocksdb_writeoptions_destroy(r->wo);
    rocksdb_readoptions_destroy(r->ro);
    free(r);
    return 0;
}
#endif

#ifdef PEER_HAVE_LMDB
/* LMDB needs a map size; the default (10 MiB) holds no benchmark. The map is
 * address space, not memory: the file grows with the data. */
#define LMDB_MAP_SIZE (64ull << 30)

struct mdb {
    MDB_env *env;                  /* the environment, the store's directory */
    MDB_dbi dbi;                   /* its main database */
};

static void mdb_e_version(char *buf, size_t n)
{
    int maj, min, patch;
    mdb_version(&maj, &min, &patch);
    snprintf(buf, n, "%d.%d.%d", maj, min, patch);
}

static const char *mdb_e_options(int sync)
{
    return sync ? "mapsize=64GiB, MDB_NOTLS, one commit per write (synced)"
                : "mapsize=64GiB, MDB_NOTLS|MDB_NOSYNC, one commit per write";
}

static int mdb_e_open(const char *dir, int sync, void **h)
{
    struct mdb *m = calloc(1, sizeof *m);
    MDB_txn *txn = NULL;
    int rc;
    if (m == NULL)
        return fail("out of memory");
    rc = mdb_env_create(&m->env);
    if (rc == 0)
        rc = mdb_env_set_mapsize(m->env, LMDB_MAP_SIZE);
    if (rc == 0)
        rc = mdb_env_open(m->env, dir, MDB_NOTLS | (sync ? 0 : MDB_NOSYNC), 0644);
    if (rc == 0)
        rc = mdb_txn_begin(m->env, NULL, 0, &txn);
    if (rc == 0)
        rc = mdb_dbi_open(txn, NULL, 0, &m->dbi);
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (rc != 0) {
        if (txn != NULL)
            mdb_txn_abort(txn);
        if (m->env != NULL)
            mdb_env_close(m->env);
        free(m);
        return fail("mdb_env_open %s: %s", dir, mdb_strerror(rc));
    }
    *h = m;
    return 0;
}

static int mdb_e_put(void *h, const void *k, size_t kl, const void *v, size_t vl)
{
    struct mdb *m = h;
    MDB_txn *txn;
    MDB_val key = { kl, (void *)(uintptr_t)k }, val = { vl, (void *)(uintptr_t)v };
    int rc = mdb_txn_begin(m->env, NULL, 0, &txn);
    if (rc != 0)
        return fail("mdb_txn_begin: %s", mdb_strerror(rc));
    rc = mdb_put(txn, m->dbi, &key, &val, 0);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return fail("mdb_put: %s", mdb_strerror(rc));
    }
    rc = mdb_txn_commit(txn);
    return rc == 0 ? 0 : fail("mdb_txn_commit: %s", mdb_strerror(rc));
}

static int mdb_e_get(void *h, const void *k, size_t kl, void *buf, size_t cap, size_t *vl)
{
    struct mdb *m = h;
    MDB_txn *txn;
    MDB_val key = { kl, (void *)(uintptr_t)k }, val;
    int rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return fail("mdb_txn_begin: %s", mdb_strerror(rc));
    rc = mdb_get(txn, m->dbi, &key, &val);
    if (rc == 0) {
        *vl = val.mv_size;
        memcpy(buf, val.mv_data, *vl < cap ? *vl : cap);
    }
    mdb_txn_abort(txn);
    if (rc == MDB_NOTFOUND)
        return 1;
    return rc == 0 ? 0 : fail("mdb_get: %s", mdb_strerror(rc));
}

static int mdb_e_del(void *h, const void *k, size_t kl)
{
    struct mdb *m = h;
    MDB_txn *txn;
    MDB_val key = { kl, (void *)(uintptr_t)k };
    int rc = mdb_txn_begin(m->env, NULL, 0, &txn);
    if (rc != 0)
        return fail("mdb_txn_begin: %s", mdb_strerror(rc));
    rc = mdb_del(txn, m->dbi, &key, NULL);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc == MDB_NOTFOUND ? 1 : fail("mdb_del: %s", mdb_strerror(rc));
    }
    rc = mdb_txn_commit(txn);
    return rc == 0 ? 0 : fail("mdb_txn_commit: %s", mdb_strerror(rc));
}

/* LMDB reuses freed pages in place and has no compaction of its own file
 * (mdb_env_copy2 with MDB_CP_COMPACT writes a compact copy elsewhere): a no-op. */
static int mdb_e_compact(void *h)
{
    return 0;
}

static int mdb_e_close(void *h)
{
    struct mdb *m = h;
    int rc = mdb_env_sync(m->env, 1);
    mdb_env_close(m->env);
    free(m);
    return rc == 0 ? 0 : fail("mdb_env_sync: %s", mdb_strerror(rc));
}
#endif

#ifdef PEER_HAVE_TKRZW
struct tkh {
    TkrzwDBM *dbm;                 /* a HashDBM file, DIR/casket.tkh */
    int sync;                      /* synchronize(hard) after each write */
};

static void tkh_version(char *buf, size_t n)
{
    snprintf(buf, n, "%s", TKRZW_PACKAGE_VERSION);
}

static const char *tkh_options(int sync)
{
    return sync ? "HashDBM (casket.tkh) defaults; synchronize(hard) after each write"
                : "HashDBM (casket.tkh) defaults; no synchronize";
}

static int fail_tkrzw(const char *what)
{
    return fail("%s: %s", what, tkrzw_get_last_status_message());
}

static int tkh_open(const char *dir, int sync, void **h)
{
    char path[PATH_MAX];
    struct tkh *t = calloc(1, sizeof *t);
    if (t == NULL)
        return fail("out of memory");
    snprintf(path, sizeof path, "%s/casket.tkh", dir);
    t->dbm = tkrzw_dbm_open(path, true, "");
    if (t->dbm == NULL) {
        free(t);
        return fail_tkrzw("tkrzw_dbm_open");
    }
    t->sync = sync;
    *h = t;
    return 0;
}

static int tkh_sync(struct tkh *t)
{
    if (t->sync && !tkrzw_dbm_synchronize(t->dbm, true, NULL, NULL, ""))
        return fail_tkrzw("tkrzw_dbm_synchronize");
    return 0;
}

static int tkh_put(void *h, const void *k, size_t kl, const void *v, size_t vl)
{
    struct tkh *t = h;
    if (!tkrzw_dbm_set(t->dbm, k, (int32_t)kl, v, (int32_t)vl, true))
        return fail_tkrzw("tkrzw_dbm_set");
    return tkh_sync(t);
}

static int tkh_get(void *h, const void *k, size_t kl, void *buf, size_t cap, size_t *vl)
{
    struct tkh *t = h;
    int32_t n = 0;
    char *v = tkrzw_dbm_get(t->dbm, k, (int32_t)kl, &n);
    if (v == NULL)
        return tkrzw_get_last_status_code() == TKRZW_STATUS_NOT_FOUND_ERROR
                   ? 1 : fail_tkrzw("tkrzw_dbm_get");
    *vl = (size_t)n;
    memcpy(buf, v, *vl < cap ? *vl : cap);
    free(v);
    return 0;
}

static int tkh_del(void *h, const void *k, size_t kl)
{
    struct tkh *t = h;
    if (!tkrzw_dbm_remove(t->dbm, k, (int32_t)kl))
        return tkrzw_get_last_status_code() == TKRZW_STATUS_NOT_FOUND_ERROR
                   ? 1 : fail_tkrzw("tkrzw_dbm_remove");
    return tkh_sync(t);
}

static int tkh_compact(void *h)
{
    struct tkh *t = h;
    return tkrzw_dbm_rebuild(t->dbm, "") ? 0 : fail_tkrzw("tkrzw_dbm_rebuild");
}

static int tkh_close(void *h)
{
    struct tkh *t = h;
    bool ok = tkrzw_dbm_close(t->dbm);
    free(t);
    return ok ? 0 : fail_tkrzw("tkrzw_dbm_close");
}
#endif

static const struct engine engines[] = {
    { .name = "kv", .version = kv_e_version, .options = kv_e_options, .open = kv_e_open,
      .put = kv_e_put, .get = kv_e_get, .del = kv_e_del, .compact = kv_e_compact,
      .close = kv_e_close, .index_per_key = kv_e_index_per_key },
#ifdef PEER_HAVE_LEVELDB
    { .name = "leveldb", .version = ldb_version, .options = ldb_options, .open = ldb_open,
      .put = ldb_put, .get = ldb_get, .del = ldb_del, .compact = ldb_compact,
      .close = ldb_close },
#else
    { .name = "leveldb", .missing = "no leveldb/c.h at build time (libleveldb-dev)" },
#endif
#ifdef PEER_HAVE_ROCKSDB
    { .name = "rocksdb", .version = rdb_version, .options = rdb_options, .open = rdb_open,
      .put = rdb_put, .get = rdb_get, .del = rdb_del, .compact = rdb_compact,
      .close = rdb_close },
#else
    { .name = "rocksdb", .missing = "no rocksdb/c.h at build time (librocksdb-dev)" },
#endif
#ifdef PEER_HAVE_LMDB
    { .name = "lmdb", .version = mdb_e_version, .options = mdb_e_options,
      .open = mdb_e_open, .put = mdb_e_put, .get = mdb_e_get, .del = mdb_e_del,
      .compact = mdb_e_compact, .close = mdb_e_close },
#else
    { .name = "lmdb", .missing = "no lmdb.h at build time (liblmdb-dev)" },
#endif
#ifdef PEER_HAVE_TKRZW
    { .name = "tkrzw", .version = tkh_version, .options = tkh_options, .open = tkh_open,
      .put = tkh_put, .get = tkh_get, .del = tkh_del, .compact = tkh_compact,
      .close = tkh_close },
#else
    { .name = "tkrzw", .missing = "no tkrzw_langc.h at build time (libtkrzw-dev)" },
#endif
};
#define N_ENGINES (sizeof engines / sizeof engines[0])

static const struct engine *engine_find(const char *name, size_t len)
{
    for (size_t i = 0; i < N_ENGINES; i++)
        if (strlen(engines[i].name) == len && memcmp(engines[i].name, name, len) == 0)
            return &engines[i];
    return NULL;
}

/* ---------------------------------------------------------------------------------
 * 3. The store: directory, opening in a durability, space on disk
 * ------------------------------------------------------------------------------ */

/* One engine's run (a child process's whole state). */
struct bench {
    struct config cfg;             /* the command line */
    const struct engine *e;        /* the engine under test */
    char version[64];              /* its version */
    char dir[PATH_MAX];            /* its store directory */
    void *h;                       /* the open handle, or NULL */
    int h_sync;                    /* the durability h was opened with */
    uint64_t have;                 /* the store holds exactly the keys 0..have-1 */
    unsigned char *pool;           /* value bytes (bench/gen.h) */
    uint64_t value_seed;           /* picks each key's slice of the pool */
    int failed;                    /* a value read back was wrong or missing */
};

static void store_close(struct bench *b)
{
    if (b->h == NULL)
        return;
    if (b->e->close(b->h) != 0)
        die("%s: close: %s", b->e->name, peer_err);
    b->h = NULL;
}

static void store_open(struct bench *b, int sync)
{
    if (b->e->open(b->dir, sync, &b->h) != 0)
        die("%s: open: %s", b->e->name, peer_err);
    b->h_sync = sync;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    if (f->level > 0 && remove(path) != 0)
        die("%s: cannot remove: %s", path, strerror(errno));
    return 0;
}

/* Closes and empties the store, then opens a new one. */
static void store_fresh(struct bench *b, int sync)
{
    store_close(b);
    if (nftw(b->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        die("%s: cannot empty: %s", b->dir, strerror(errno));
    b->have = 0;
    store_open(b, sync);
}

/* Reopens the store in durability sync if it is not open so. */
static void store_mode(struct bench *b, int sync)
{
    if (b->h != NULL && b->h_sync == sync)
        return;
    store_close(b);
    store_open(b, sync);
}

static _Thread_local uint64_t du_sum;

static int du_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    if (flag == FTW_F)
        du_sum += (uint64_t)st->st_blocks * 512u;
    return 0;
}

/* Bytes the store's files take on disk (allocated blocks, so sparse files count
 * for what they hold). */
static uint64_t disk_bytes(const struct bench *b)
{
    du_sum = 0;
    nftw(b->dir, du_entry, 16, FTW_PHYS);
    return du_sum;
}

/* Peak resident set of this process (one engine) so far, bytes. */
static uint64_t peak_rss(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (uint64_t)ru.ru_maxrss * 1024u : 0;
}

static double cpu_secs(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6
           + (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Busy and total CPU time of the whole machine so far, in clock ticks (the first
 * line of /proc/stat). Returns 0, or -1 when it cannot be read. */
static int machine_cpu(uint64_t *busy, uint64_t *total)
{
    unsigned long long v[8] = { 0 };
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return -1;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 4)
        return -1;
    /* user nice system idle iowait irq softirq steal */
    *busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    *total = *busy + v[3] + v[4];
    return 0;
}

/* The machine's CPU use beside a workload, measured from its start to its end. */
struct load {
    uint64_t busy0;                /* machine busy ticks at the start */
    double cpu0;                   /* this process's CPU seconds at the start */
    uint64_t t0;                   /* wall clock at the start, ns */
    int ok;                        /* /proc/stat could be read */
};

static void load_start(struct load *l)
{
    uint64_t total;
    l->ok = machine_cpu(&l->busy0, &total) == 0;
    l->cpu0 = cpu_secs();
    l->t0 = now_ns();
}

/* Cores the other processes kept busy (machine busy time less ours, over the wall
 * time); -1 when unknown. Tick granularity (10 ms) makes it rough for short rows. */
static double load_end(const struct load *l)
{
    uint64_t busy, total;
    double wall = (double)(now_ns() - l->t0) / 1e9;
    long hz = sysconf(_SC_CLK_TCK);
    if (!l->ok || machine_cpu(&busy, &total) != 0 || hz <= 0 || wall <= 0)
        return -1;
    double others = (double)(busy - l->busy0) / (double)hz - (cpu_secs() - l->cpu0);
    return others > 0 ? others / wall : 0;
}

#define PROBE_WRITES 32u

/* The disk's write+fdatasync latency in dir right now (it drifts within minutes on
 * shared machines): PROBE_WRITES writes of 4 KiB to a file of its own, each
 * followed by fdatasync; its p50 and p99 in microseconds. */
static void probe_disk(const char *dir, double *p50_us, double *p99_us)
{
    char path[PATH_MAX];
    static const char block[4096];
    struct hist h;
    hist_init(&h);
    *p50_us = *p99_us = 0;
    if ((size_t)snprintf(path, sizeof path, "%s/peerbench.probe", dir) >= sizeof path)
        return;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("%s: cannot create: %s", path, strerror(errno));
    for (unsigned i = 0; i < PROBE_WRITES; i++) {
        uint64_t t0 = now_ns();
        if (pwrite(fd, block, sizeof block, (off_t)i * (off_t)sizeof block)
                != (ssize_t)sizeof block || fdatasync(fd) != 0)
            die("%s: write+fdatasync: %s", path, strerror(errno));
        hist_add(&h, now_ns() - t0);
    }
    close(fd);
    unlink(path);
    *p50_us = hist_pct_us(&h, 50);
    *p99_us = hist_pct_us(&h, 99);
}

/* ---------------------------------------------------------------------------------
 * 4. Running operations on threads
 *
 * As in kvbench: a workload's operations are split in contiguous ranges, one per
 * thread; the threads and the clock start at one barrier; each operation times only
 * the engine call into its thread's histogram. The first failing thread stops all.
 * ------------------------------------------------------------------------------ */
struct worker;
typedef int (*op_fn)(struct worker *w, uint64_t i);

/* YCSB's core workloads (workloads/workload[abcdf] of YCSB 0.17): reads against one
 * other kind of operation, keys chosen by a scrambled zipfian, or by "latest" in D.
 * Updates write a key's own value again, so every read still checks its bytes. */
enum ycsb_other { YCSB_UPDATE, YCSB_INSERT, YCSB_RMW };

struct ycsb_mix {
    const char *name;              /* workload name */
    unsigned read_pct;             /* reads in 100 operations; the rest are other */
    enum ycsb_other other;         /* update, insert (a new key) or read-modify-write */
    int latest;                    /* reads pick by "latest" instead of zipfian */
};

struct run {
    struct bench *b;               /* the engine and its store */
    op_fn op;                      /* one operation, numbered i */
    struct perm perm;              /* key order of fillrandom, fillsync, deleterandom */
    const struct ycsb_mix *mix;    /* YCSB workloads: the operation mix, else NULL */
    struct zipf zscr;              /* ... scrambled zipfian over the 10^10 ranks */
    struct zipf zlat;              /* ... "latest" over --num keys (workers copy it) */
    _Atomic uint64_t ins_next;     /* ... D: the next key to insert */
    _Atomic uint64_t ins_done;     /* ... D: keys below it are all inserted */
    pthread_barrier_t start;       /* releases the threads and the clock together */
    atomic_int stop;               /* set by a failing thread */
};

struct worker {
    struct run *run;               /* what to do */
    uint64_t begin, end;           /* operation numbers [begin, end) */
    uint64_t rng;                  /* splitmix64 state (bench/gen.h) */
    struct zipf zlat;              /* YCSB D: its own "latest" (it grows) */
    unsigned char key[64];         /* key buffer */
    unsigned char *val;            /* get's buffer, VALUE_CAP bytes */
    struct hist hist;              /* latency of each operation */
    uint64_t found, missing, wrong; /* reads: found; existing keys absent; values not
                                       as written, or missing keys found */
    uint64_t first_bad;            /* the smallest key missing or wrong */
    uint64_t t0, t1;               /* when it left the barrier, when it ended, ns */
    int rc;                        /* 0, or -1 when a call failed */
    char msg[512];                 /* ... its peer_err */
    pthread_t thread;
};

/* What a workload measured. */
struct result {
    char name[32];                 /* workload name, :threads included */
    uint64_t ops;                  /* operations timed */
    unsigned threads;
    int sync;                      /* durability it ran with */
    double secs, cpu_secs;         /* wall time; process CPU time (user + system) */
    struct hist hist;              /* merged latency */
    uint64_t prefilled;            /* keys written first, untimed */
    uint64_t found, missing, wrong, first_bad;
    int space;                     /* disk and logical bytes were measured after it */
    uint64_t disk, logical;        /* ... bytes on disk; keys x (key + value) bytes */
    double index_per_key;          /* ... kv: index bytes per key (0: not known) */
    uint64_t rss;                  /* peak RSS of the process after it, bytes */
    double bg_cores;               /* CPU the rest of the machine used meanwhile, in
                                      cores (-1: unknown): a disturbed row shows */
    double probe_p50_us, probe_p99_us; /* sync workloads: write+fdatasync of 4 KiB in
                                          the store's directory just before (0: none) */
    int paced;                     /* readwhilewriting: a paced writer ran beside */
    uint64_t writer_ops;           /* ... its puts */
    double writer_ops_s;           /* ... their rate over the writer's time */
    double writer_p99_us;          /* ... their p99 latency */
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct run *run = w->run;
    pthread_barrier_wait(&run->start);
    w->t0 = now_ns();
    for (uint64_t i = w->begin; i < w->end; i++) {
        if (atomic_load_explicit(&run->stop, memory_order_relaxed))
            break;
        if (run->op(w, i) != 0) {
            w->rc = -1;
            snprintf(w->msg, sizeof w->msg, "%s", peer_err);
            atomic_store(&run->stop, 1);
            break;
        }
    }
    w->t1 = now_ns();
    return NULL;
}

/* Runs ops operations of op on threads threads; the wall time runs from the first
 * thread's start to the last one's end, as the threads see them (on 2 cores the
 * main thread may run only after short workers are done, so its own clock would
 * not do). perm_n > 0 sets up the permutation
 * of 0..perm_n-1 (perm_salt tells deleterandom's order from the fills'). */
static void run_ops_mix(struct bench *b, struct result *r, op_fn op, uint64_t ops,
                        unsigned threads, uint64_t perm_n, uint64_t perm_salt,
                        const struct ycsb_mix *mix);

static void run_ops(struct bench *b, struct result *r, op_fn op, uint64_t ops,
                    unsigned threads, uint64_t perm_n, uint64_t perm_salt)
{
    run_ops_mix(b, r, op, ops, threads, perm_n, perm_salt, NULL);
}

/* run_ops with a YCSB mix: its generators are set up before the clock starts. */
static void run_ops_mix(struct bench *b, struct result *r, op_fn op, uint64_t ops,
                        unsigned threads, uint64_t perm_n, uint64_t perm_salt,
                        const struct ycsb_mix *mix)
{
    struct run run = { .b = b, .op = op, .mix = mix };
    struct worker *ws = calloc(threads, sizeof *ws);
    if (ws == NULL)
        die("out of memory");
    if (perm_n > 0)
        perm_init(&run.perm, perm_n, gen_perm_seed(b->cfg.seed) ^ perm_salt);
    atomic_init(&run.stop, 0);
    atomic_init(&run.ins_next, b->have);
    atomic_init(&run.ins_done, b->have);
    if (mix != NULL)
        zipf_init(&run.zscr, ZIPF_SCRAMBLED_ITEMS, ZIPF_SCRAMBLED_ZETAN);
    if (mix != NULL && mix->latest)
        zipf_init(&run.zlat, b->have, 0);   /* O(--num), before the clock */
    pthread_barrier_init(&run.start, NULL, threads + 1);
    for (unsigned t = 0; t < threads; t++) {
        struct worker *w = &ws[t];
        w->run = &run;
        w->begin = ops * t / threads;
        w->end = ops * (t + 1) / threads;
        w->rng = gen_thread_rng(b->cfg.seed, t);
        w->first_bad = UINT64_MAX;
        w->zlat = run.zlat;
        w->val = malloc(VALUE_CAP);
        if (w->val == NULL)
            die("out of memory");
        hist_init(&w->hist);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            die("%s: cannot start a thread", r->name);
    }
    double c0 = cpu_secs();
    struct load load;
    load_start(&load);
    pthread_barrier_wait(&run.start);
    uint64_t t0 = UINT64_MAX, t1 = 0;
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(ws[t].thread, NULL);
        t0 = ws[t].t0 < t0 ? ws[t].t0 : t0;
        t1 = ws[t].t1 > t1 ? ws[t].t1 : t1;
    }
    r->secs = (double)(t1 - t0) / 1e9;
    r->cpu_secs = cpu_secs() - c0;
    r->bg_cores = load_end(&load);
    pthread_barrier_destroy(&run.start);
    r->ops = ops;
    r->threads = threads;
    r->sync = b->h_sync;
    for (unsigned t = 0; t < threads; t++) {
        struct worker *w = &ws[t];
        if (w->rc != 0)
            die("%s: %s: %s", b->e->name, r->name, w->msg);
        hist_merge(&r->hist, &w->hist);
        r->found += w->found;
        r->missing += w->missing;
        r->wrong += w->wrong;
        if (w->first_bad < r->first_bad)
            r->first_bad = w->first_bad;
        free(w->val);
    }
    free(ws);
    if (mix != NULL)
        b->have = atomic_load(&run.ins_done);
}

static void note_bad(struct worker *w, uint64_t k, uint64_t *counter)
{
    (*counter)++;
    if (k < w->first_bad)
        w->first_bad = k;
}

/* Writes key k with its value (the same bytes every time, so reads can check
 * them); *ns: the put's time. */
static int put_timed(struct worker *w, uint64_t k, uint64_t *ns)
{
    const struct bench *b = w->run->b;
    key_format(w->key, b->cfg.key_size, k);
    const unsigned char *v = gen_value(b->pool, b->value_seed, k);
    uint64_t t0 = now_ns();
    int rc = b->e->put(b->h, w->key, b->cfg.key_size, v, b->cfg.value_size);
    *ns = now_ns() - t0;
    return rc;
}

static int put_key(struct worker *w, uint64_t k)
{
    uint64_t ns = 0;
    int rc = put_timed(w, k, &ns);
    hist_add(&w->hist, ns);
    return rc;
}

static int op_fill_seq(struct worker *w, uint64_t i)
{
    return put_key(w, i);
}

static int op_fill_perm(struct worker *w, uint64_t i)
{
    return put_key(w, perm_apply(&w->run->perm, i));
}

static int op_overwrite(struct worker *w, uint64_t i)
{
    return put_key(w, splitmix64(&w->rng) % w->run->b->cfg.num);
}

/* Reads key k and checks its value byte for byte; *ns: the get's time. */
static int get_verify(struct worker *w, uint64_t k, uint64_t *ns)
{
    const struct bench *b = w->run->b;
    size_t vlen = 0;
    key_format(w->key, b->cfg.key_size, k);
    uint64_t t0 = now_ns();
    int rc = b->e->get(b->h, w->key, b->cfg.key_size, w->val, VALUE_CAP, &vlen);
    *ns = now_ns() - t0;
    if (rc < 0)
        return rc;
    if (rc == 1) {
        note_bad(w, k, &w->missing);
        return 0;
    }
    w->found++;
    if (vlen != b->cfg.value_size
        || memcmp(w->val, gen_value(b->pool, b->value_seed, k), vlen) != 0)
        note_bad(w, k, &w->wrong);
    return 0;
}

/* Reads a random existing key and checks its value byte for byte. */
static int op_read(struct worker *w, uint64_t i)
{
    uint64_t ns = 0;
    int rc = get_verify(w, splitmix64(&w->rng) % w->run->b->cfg.num, &ns);
    hist_add(&w->hist, ns);
    return rc;
}

/* Reads a key never written (it sorts between two written ones: kvbench's
 * key_format_missing); finding it is counted as wrong. */
static int op_read_missing(struct worker *w, uint64_t i)
{
    const struct bench *b = w->run->b;
    uint64_t k = splitmix64(&w->rng) % b->cfg.num;
    size_t vlen = 0;
    key_format_missing(w->key, b->cfg.key_size, k);
    uint64_t t0 = now_ns();
    int rc = b->e->get(b->h, w->key, b->cfg.key_size, w->val, VALUE_CAP, &vlen);
    hist_add(&w->hist, now_ns() - t0);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        w->found++;
        note_bad(w, k, &w->wrong);
    }
    return 0;
}

/* Deletes every key once, in a seeded order of its own; an engine that says a key
 * was absent (kv, LMDB, Tkrzw can) has it counted as missing. */
static int op_delete(struct worker *w, uint64_t i)
{
    const struct bench *b = w->run->b;
    uint64_t k = perm_apply(&w->run->perm, i);
    key_format(w->key, b->cfg.key_size, k);
    uint64_t t0 = now_ns();
    int rc = b->e->del(b->h, w->key, b->cfg.key_size);
    hist_add(&w->hist, now_ns() - t0);
    if (rc == 1)
        note_bad(w, k, &w->missing);
    return rc < 0 ? rc : 0;
}

static const struct ycsb_mix ycsb_mixes[] = {
    { .name = "ycsb-a", .read_pct = 50, .other = YCSB_UPDATE, .latest = 0 },
    { .name = "ycsb-b", .read_pct = 95, .other = YCSB_UPDATE, .latest = 0 },
    { .name = "ycsb-c", .read_pct = 100, .other = YCSB_UPDATE, .latest = 0 },
    { .name = "ycsb-d", .read_pct = 95, .other = YCSB_INSERT, .latest = 1 },
    { .name = "ycsb-f", .read_pct = 50, .other = YCSB_RMW, .latest = 0 },
};

/* D's insert: takes the next new key, writes it, then acknowledges it once every
 * key below is acknowledged too (YCSB's AcknowledgedCounterGenerator), so a read
 * of "latest" never asks for a key whose put has not returned. */
static int ycsb_insert(struct worker *w, uint64_t *ns)
{
    struct run *run = w->run;
    uint64_t k = atomic_fetch_add(&run->ins_next, 1);
    int rc = put_timed(w, k, ns);
    uint64_t expect = k;
    while (!atomic_compare_exchange_weak(&run->ins_done, &expect, k + 1)) {
        if (atomic_load_explicit(&run->stop, memory_order_relaxed))
            break;
        expect = k;
        sched_yield();
    }
    return rc;
}

/* One YCSB operation; a read-modify-write is timed as one (its get and its put). */
static int op_ycsb(struct worker *w, uint64_t i)
{
    struct run *run = w->run;
    const struct ycsb_mix *m = run->mix;
    uint64_t keys = run->b->cfg.num, ns = 0, ns2 = 0;
    int rc;
    if (splitmix64(&w->rng) % 100 < m->read_pct) {
        uint64_t k = m->latest
                         ? zipf_latest(&w->zlat, &w->rng, atomic_load(&run->ins_done))
                         : zipf_scrambled(&run->zscr, &w->rng, keys);
        rc = get_verify(w, k, &ns);
    } else if (m->other == YCSB_INSERT) {
        rc = ycsb_insert(w, &ns);
    } else {
        uint64_t k = zipf_scrambled(&run->zscr, &w->rng, keys);
        rc = m->other == YCSB_RMW ? get_verify(w, k, &ns2) : 0;
        if (rc == 0)
            rc = put_timed(w, k, &ns);
    }
    hist_add(&w->hist, ns + ns2);
    return rc;
}

/* readwhilewriting's writer: overwrites random keys at --write-rate puts a second
 * (by the clock: after a stall it catches up) until the readers are done. */
struct pacer {
    struct worker w;               /* its key buffer, generator, histogram */
    uint64_t rate;                 /* puts a second */
    atomic_int done;               /* set when the readers are done */
    uint64_t puts;                 /* puts done */
    uint64_t t0, t1;               /* its first put, its end, ns */
};

static void *pacer_main(void *arg)
{
    struct pacer *p = arg;
    uint64_t keys = p->w.run->b->cfg.num;
    p->t0 = now_ns();
    while (!atomic_load_explicit(&p->done, memory_order_relaxed)) {
        uint64_t due = p->t0 + p->puts * 1000000000ull / p->rate;
        if (now_ns() < due) {
            struct timespec ts = { .tv_sec = (time_t)(due / 1000000000ull),
                                   .tv_nsec = (long)(due % 1000000000ull) };
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
            continue;
        }
        if (put_key(&p->w, splitmix64(&p->w.rng) % keys) != 0) {
            p->w.rc = -1;
            snprintf(p->w.msg, sizeof p->w.msg, "%s", peer_err);
            break;
        }
        p->puts++;
    }
    p->t1 = now_ns();
    return NULL;
}

/* ---------------------------------------------------------------------------------
 * 5. Workloads
 *
 * As kvbench's: the fills start from an empty store; overwrite, compact, the reads
 * and deleterandom use what the previous workloads left, and fill it first (untimed,
 * said in the line) when it does not hold the --num keys. Every workload but
 * fillsync runs "nosync".
 * ------------------------------------------------------------------------------ */
static void space_after(struct bench *b, struct result *r)
{
    r->space = 1;
    r->disk = disk_bytes(b);
    r->logical = b->have * (b->cfg.key_size + b->cfg.value_size);
    if (b->e->index_per_key != NULL && b->h != NULL)
        r->index_per_key = b->e->index_per_key(b->h);
}

static void need_full(struct bench *b, struct result *r)
{
    if (b->have >= b->cfg.num) {
        store_mode(b, 0);
        return;
    }
    struct result *fill = calloc(1, sizeof *fill);
    if (fill == NULL)
        die("out of memory");
    hist_init(&fill->hist);
    snprintf(fill->name, sizeof fill->name, "%s", r->name);
    store_fresh(b, 0);
    run_ops(b, fill, op_fill_seq, b->cfg.num, 1, 0, 0);
    free(fill);
    b->have = b->cfg.num;
    r->prefilled = b->cfg.num;
}

static void wl_fillseq(struct bench *b, struct result *r, unsigned threads)
{
    store_fresh(b, 0);
    run_ops(b, r, op_fill_seq, b->cfg.num, 1, 0, 0);
    b->have = b->cfg.num;
    space_after(b, r);
}

static void wl_fillrandom(struct bench *b, struct result *r, unsigned threads)
{
    store_fresh(b, 0);
    run_ops(b, r, op_fill_perm, b->cfg.num, threads, b->cfg.num, 0);
    b->have = b->cfg.num;
    space_after(b, r);
}

static void wl_overwrite(struct bench *b, struct result *r, unsigned threads)
{
    need_full(b, r);
    run_ops(b, r, op_overwrite, b->cfg.num, threads, 0, 0);
    space_after(b, r);
}

/* One call of the engine's own compaction, timed; then the space it left. */
static void wl_compact(struct bench *b, struct result *r, unsigned threads)
{
    need_full(b, r);
    struct load load;
    load_start(&load);
    uint64_t t0 = now_ns();
    double c0 = cpu_secs();
    if (b->e->compact(b->h) != 0)
        die("%s: compact: %s", b->e->name, peer_err);
    uint64_t ns = now_ns() - t0;
    r->secs = (double)ns / 1e9;
    r->cpu_secs = cpu_secs() - c0;
    r->bg_cores = load_end(&load);
    hist_add(&r->hist, ns);
    r->ops = 1;
    r->threads = 1;
    space_after(b, r);
}

static void report_bad(struct bench *b, const struct result *r)
{
    if (r->missing == 0 && r->wrong == 0)
        return;
    fprintf(stderr, "peerbench: %s: %s: %" PRIu64 " keys missing, %" PRIu64
            " values wrong (first at key number %" PRIu64 ")\n", b->e->name, r->name,
            r->missing, r->wrong, r->first_bad);
    b->failed = 1;
}

static void wl_readrandom(struct bench *b, struct result *r, unsigned threads)
{
    need_full(b, r);
    run_ops(b, r, op_read, b->cfg.reads, threads, 0, 0);
    report_bad(b, r);
}

static void wl_readmissing(struct bench *b, struct result *r, unsigned threads)
{
    need_full(b, r);
    run_ops(b, r, op_read_missing, b->cfg.reads, threads, 0, 0);
    report_bad(b, r);
}

static void wl_deleterandom(struct bench *b, struct result *r, unsigned threads)
{
    need_full(b, r);
    run_ops(b, r, op_delete, b->cfg.num, threads, b->cfg.num, 0xde1e7e);
    b->have = 0;
    report_bad(b, r);
    space_after(b, r);
}

/* YCSB A, B, C, D, F over the --num keys: --reads operations. */
static void wl_ycsb(struct bench *b, struct result *r, unsigned threads)
{
    const struct ycsb_mix *m = NULL;
    for (size_t i = 0; i < sizeof ycsb_mixes / sizeof ycsb_mixes[0]; i++)
        if (strncmp(r->name, ycsb_mixes[i].name, strlen(ycsb_mixes[i].name)) == 0)
            m = &ycsb_mixes[i];
    need_full(b, r);
    run_ops_mix(b, r, op_ycsb, b->cfg.reads, threads, 0, 0, m);
    report_bad(b, r);
}

/* threads-1 readers (at least one) do --reads reads at full speed while one writer
 * overwrites at --write-rate; the line's figures are the readers', the writer's
 * achieved rate and p99 are beside them. */
static void wl_readwhilewriting(struct bench *b, struct result *r, unsigned threads)
{
    struct run wrun = { .b = b };
    struct pacer *p = calloc(1, sizeof *p);
    unsigned readers = threads > 1 ? threads - 1 : 1;
    if (p == NULL)
        die("out of memory");
    need_full(b, r);
    p->w.run = &wrun;
    p->w.rng = gen_thread_rng(b->cfg.seed, 1000);
    p->rate = b->cfg.write_rate;
    hist_init(&p->w.hist);
    atomic_init(&p->done, 0);
    pthread_t t;
    if (pthread_create(&t, NULL, pacer_main, p) != 0)
        die("%s: cannot start a thread", r->name);
    run_ops(b, r, op_read, b->cfg.reads, readers, 0, 0);
    atomic_store(&p->done, 1);
    pthread_join(t, NULL);
    if (p->w.rc != 0)
        die("%s: %s: writer: %s", b->e->name, r->name, p->w.msg);
    r->threads = readers + 1;
    r->paced = 1;
    r->writer_ops = p->puts;
    r->writer_ops_s = p->t1 > p->t0 ? (double)p->puts / ((double)(p->t1 - p->t0) / 1e9) : 0;
    r->writer_p99_us = hist_pct_us(&p->w.hist, 99);
    free(p);
    report_bad(b, r);
}

static void wl_fillsync(struct bench *b, struct result *r, unsigned threads)
{
    store_fresh(b, 1);
    probe_disk(b->dir, &r->probe_p50_us, &r->probe_p99_us);
    run_ops(b, r, op_fill_perm, b->cfg.sync_num, threads, b->cfg.sync_num, 0);
    b->have = b->cfg.sync_num;
    space_after(b, r);
}

/* --crash-child: fills a fresh store in dir with keys 0..num-1 (nosync, in order)
 * and dies of SIGKILL without closing it. A new process, not a fork: the peers'
 * background threads do not survive a fork. */
static void crash_child(const struct config *cfg, const struct engine *e, const char *dir)
{
    void *h = NULL;
    unsigned char key[64];
    unsigned char *pool = pool_make(cfg->value_size + POOL_SPREAD, cfg->seed,
                                    cfg->compressible);
    uint64_t value_seed = gen_value_seed(cfg->seed);
    if (pool == NULL)
        die("out of memory");
    if (e->open(dir, 0, &h) != 0)
        die("%s: crash child: open: %s", e->name, peer_err);
    for (uint64_t k = 0; k < cfg->num; k++) {
        key_format(key, cfg->key_size, k);
        if (e->put(h, key, cfg->key_size, gen_value(pool, value_seed, k),
                   cfg->value_size) != 0)
            die("%s: crash child: put: %s", e->name, peer_err);
    }
    fflush(NULL);
    kill(getpid(), SIGKILL);
    _exit(EXIT_FAILED);
}

/* Reads every key 0..num-1 once, untimed, and checks its value. */
static void verify_all(struct bench *b, struct result *r)
{
    unsigned char key[64];
    unsigned char *val = malloc(VALUE_CAP);
    if (val == NULL)
        die("out of memory");
    for (uint64_t k = 0; k < b->cfg.num; k++) {
        size_t vlen = 0;
        key_format(key, b->cfg.key_size, k);
        int rc = b->e->get(b->h, key, b->cfg.key_size, val, VALUE_CAP, &vlen);
        if (rc < 0)
            die("%s: %s: %s", b->e->name, r->name, peer_err);
        int bad = rc == 1 || vlen != b->cfg.value_size
                  || memcmp(val, gen_value(b->pool, b->value_seed, k), vlen) != 0;
        if (rc == 0)
            r->found++;
        if (bad) {
            if (rc == 1)
                r->missing++;
            else
                r->wrong++;
            r->first_bad = k < r->first_bad ? k : r->first_bad;
        }
    }
    free(val);
}

/* A process fills a fresh store (nosync) and is killed; the open of what it left
 * is timed (one operation), then every key is read back. */
static void wl_crashopen(struct bench *b, struct result *r, unsigned threads)
{
    char num[32], ks[32], vs[32], seed[32], comp[32];
    store_close(b);
    if (nftw(b->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        die("%s: cannot empty: %s", b->dir, strerror(errno));
    b->have = 0;
    snprintf(num, sizeof num, "%" PRIu64, b->cfg.num);
    snprintf(ks, sizeof ks, "%zu", b->cfg.key_size);
    snprintf(vs, sizeof vs, "%zu", b->cfg.value_size);
    snprintf(seed, sizeof seed, "%" PRIu64, b->cfg.seed);
    snprintf(comp, sizeof comp, "%.17g", b->cfg.compressible);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        execl("/proc/self/exe", b->cfg.self, "--crash-child", "--engines", b->e->name,
              "--dir", b->dir, "--num", num, "--key-size", ks, "--value-size", vs,
              "--seed", seed, "--compressible", comp, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
        die("%s: %s: the filling process did not die of SIGKILL (status 0x%x)",
            b->e->name, r->name, (unsigned)st);
    struct load load;
    load_start(&load);
    double c0 = cpu_secs();
    uint64_t t0 = now_ns();
    store_open(b, 0);
    uint64_t ns = now_ns() - t0;
    r->secs = (double)ns / 1e9;
    r->cpu_secs = cpu_secs() - c0;
    r->bg_cores = load_end(&load);
    hist_add(&r->hist, ns);
    r->ops = 1;
    r->threads = 1;
    r->prefilled = b->cfg.num;
    verify_all(b, r);
    b->have = b->cfg.num;
    report_bad(b, r);
    space_after(b, r);
}

typedef void (*workload_fn)(struct bench *b, struct result *r, unsigned threads);

static const struct {
    const char *name;
    workload_fn fn;
} workloads[] = {
    { "fillseq", wl_fillseq },         { "fillrandom", wl_fillrandom },
    { "overwrite", wl_overwrite },     { "compact", wl_compact },
    { "readrandom", wl_readrandom },   { "readmissing", wl_readmissing },
    { "deleterandom", wl_deleterandom }, { "fillsync", wl_fillsync },
    { "crashopen", wl_crashopen },     { "ycsb-a", wl_ycsb },
    { "ycsb-b", wl_ycsb },             { "ycsb-c", wl_ycsb },
    { "ycsb-d", wl_ycsb },             { "ycsb-f", wl_ycsb },
    { "readwhilewriting", wl_readwhilewriting },
};

/* Parses NAME[:THREADS] (len bytes at s); returns the workload or NULL. */
static workload_fn workload_find(const char *s, size_t len, unsigned *threads)
{
    const char *colon = memchr(s, ':', len);
    size_t nlen = colon ? (size_t)(colon - s) : len;
    *threads = 1;
    if (colon != NULL) {
        char num[16];
        size_t tlen = len - nlen - 1;
        char *end;
        if (tlen == 0 || tlen >= sizeof num)
            return NULL;
        memcpy(num, colon + 1, tlen);
        num[tlen] = '\0';
        unsigned long t = strtoul(num, &end, 10);
        if (*end != '\0' || t < 1 || t > MAX_THREADS)
            return NULL;
        *threads = (unsigned)t;
    }
    for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++)
        if (strlen(workloads[i].name) == nlen && memcmp(workloads[i].name, s, nlen) == 0)
            return workloads[i].fn;
    return NULL;
}

/* ---------------------------------------------------------------------------------
 * 6. Report: text table or JSON lines
 * ------------------------------------------------------------------------------ */
static void header_text(const struct bench *b)
{
    printf("# %s %s: nosync: %s\n", b->e->name, b->version, b->e->options(0));
    printf("# %s %s:   sync: %s\n", b->e->name, b->version, b->e->options(1));
}

static void header_json(const struct bench *b)
{
    printf("{\"type\":\"engine\",\"engine\":\"%s\",\"version\":", b->e->name);
    jsonw_cstring(stdout, b->version);
    printf(",\"options_nosync\":");
    jsonw_cstring(stdout, b->e->options(0));
    printf(",\"options_sync\":");
    jsonw_cstring(stdout, b->e->options(1));
    printf(",\"dir\":");
    jsonw_cstring(stdout, b->dir);
    printf("}\n");
}

static void result_text(const struct bench *b, const struct result *r)
{
    const struct hist *h = &r->hist;
    double ops_s = r->secs > 0 ? (double)r->ops / r->secs : 0;
    char notes[256];
    int n = snprintf(notes, sizeof notes, "rss %.0f MiB", (double)r->rss / MIB);
    if (r->bg_cores >= 0)
        n += snprintf(notes + n, sizeof notes - (size_t)n, ", bg %.2f cores", r->bg_cores);
    if (r->ops == 1)
        n += snprintf(notes + n, sizeof notes - (size_t)n, ", took %.3f s", r->secs);
    if (r->probe_p50_us > 0)
        n += snprintf(notes + n, sizeof notes - (size_t)n,
                      ", disk fdatasync p50 %.0f us p99 %.0f us", r->probe_p50_us,
                      r->probe_p99_us);
    if (r->space && r->logical > 0)
        n += snprintf(notes + n, sizeof notes - (size_t)n, ", disk/logical %.2f",
                      (double)r->disk / (double)r->logical);
    else if (r->space)
        n += snprintf(notes + n, sizeof notes - (size_t)n, ", disk %.1f MiB",
                      (double)r->disk / MIB);
    if (r->index_per_key > 0)
        n += snprintf(notes + n, sizeof notes - (size_t)n, ", index %.1f B/key",
                      r->index_per_key);
    if (r->found + r->missing > 0 || r->wrong > 0)
        n += snprintf(notes + n, sizeof notes - (size_t)n, ", found %" PRIu64, r->found);
    if (r->paced)
        n += snprintf(notes + n, sizeof notes - (size_t)n,
                      ", writer %.0f/s of %" PRIu64 " asked, p99 %.1f us", r->writer_ops_s,
                      b->cfg.write_rate, r->writer_p99_us);
    if (r->prefilled > 0)
        n += snprintf(notes + n, sizeof notes - (size_t)n, ", prefilled %" PRIu64,
                      r->prefilled);
    if (b->cfg.repeat > 1)
        snprintf(notes + n, sizeof notes - (size_t)n, ", run %u/%u", b->cfg.run_no,
                 b->cfg.repeat);
    printf("%-8s %-8s %-18s %-6s %9" PRIu64 " %10.0f %9.2f %9.2f %9.2f %8.3f  %s\n",
           b->e->name, b->version, r->name, r->sync ? "sync" : "nosync", r->ops, ops_s,
           hist_pct_us(h, 50), hist_pct_us(h, 99), hist_pct_us(h, 99.9), r->cpu_secs,
           notes);
}

static void result_json(const struct bench *b, const struct result *r)
{
    const struct hist *h = &r->hist;
    double ops_s = r->secs > 0 ? (double)r->ops / r->secs : 0;
    printf("{\"type\":\"result\",\"engine\":\"%s\",\"version\":", b->e->name);
    jsonw_cstring(stdout, b->version);
    printf(",\"benchmark\":\"%s\",\"sync\":%s,\"ops\":%" PRIu64 ",\"threads\":%u,"
           "\"seconds\":%.6f,\"ops_per_sec\":%.1f,\"p50_us\":%.3f,\"p99_us\":%.3f,"
           "\"p999_us\":%.3f,\"mean_us\":%.3f,\"max_us\":%.3f,\"cpu_seconds\":%.6f,"
           "\"prefilled\":%" PRIu64 ",\"found\":%" PRIu64 ",\"missing\":%" PRIu64
           ",\"wrong\":%" PRIu64 ",\"peak_rss_bytes\":%" PRIu64, r->name,
           r->sync ? "true" : "false", r->ops, r->threads, r->secs, ops_s,
           hist_pct_us(h, 50), hist_pct_us(h, 99), hist_pct_us(h, 99.9), hist_mean_us(h),
           (double)h->max / 1000.0, r->cpu_secs, r->prefilled, r->found, r->missing,
           r->wrong, r->rss);
    printf(",\"bg_cores\":%.3f,\"run\":%u,\"repeat\":%u", r->bg_cores, b->cfg.run_no,
           b->cfg.repeat);
    if (r->probe_p50_us > 0)
        printf(",\"disk_probe_p50_us\":%.1f,\"disk_probe_p99_us\":%.1f", r->probe_p50_us,
               r->probe_p99_us);
    if (r->space)
        printf(",\"disk_bytes\":%" PRIu64 ",\"logical_bytes\":%" PRIu64
               ",\"space_amp\":%.4f", r->disk, r->logical,
               r->logical ? (double)r->disk / (double)r->logical : 0);
    if (r->index_per_key > 0)
        printf(",\"index_bytes_per_key\":%.2f", r->index_per_key);
    if (r->paced)
        printf(",\"write_rate\":%" PRIu64 ",\"writer_ops\":%" PRIu64
               ",\"writer_ops_per_sec\":%.1f,\"writer_p99_us\":%.3f", b->cfg.write_rate,
               r->writer_ops, r->writer_ops_s, r->writer_p99_us);
    printf("}\n");
}

/* ---------------------------------------------------------------------------------
 * 6b. Medians of --repeat runs. Each engine process sends the parent one fixed-size
 * record per result down a pipe (a write under PIPE_BUF is atomic); the parent
 * keeps them all and, after the last run, prints per engine and workload the
 * median of each figure taken alone, with every run's ops/s and p99 beside it.
 * ------------------------------------------------------------------------------ */
struct summary {
    char engine[16];               /* engine name */
    char version[64];              /* its version */
    char name[32];                 /* workload, :threads included */
    int sync;                      /* durability */
    unsigned threads;
    double ops_s, p50, p99, p999, cpu; /* the line's figures */
    double space_amp;              /* disk / logical, or -1 when not measured */
    double probe_p50;              /* the disk probe's p50 before it, or -1: none */
    double writer_ops_s;           /* readwhilewriting's writer rate, or -1: none */
    uint64_t rss;                  /* peak RSS after it */
};

static void summary_send(const struct bench *b, const struct result *r)
{
    struct summary m;
    if (b->cfg.summary_fd < 0)
        return;
    memset(&m, 0, sizeof m);
    snprintf(m.engine, sizeof m.engine, "%s", b->e->name);
    snprintf(m.version, sizeof m.version, "%s", b->version);
    snprintf(m.name, sizeof m.name, "%s", r->name);
    m.sync = r->sync;
    m.threads = r->threads;
    m.ops_s = r->secs > 0 ? (double)r->ops / r->secs : 0;
    m.p50 = hist_pct_us(&r->hist, 50);
    m.p99 = hist_pct_us(&r->hist, 99);
    m.p999 = hist_pct_us(&r->hist, 99.9);
    m.cpu = r->cpu_secs;
    m.space_amp = r->space && r->logical > 0 ? (double)r->disk / (double)r->logical : -1;
    m.probe_p50 = r->probe_p50_us > 0 ? r->probe_p50_us : -1;
    m.writer_ops_s = r->paced ? r->writer_ops_s : -1;
    m.rss = r->rss;
    if (write(b->cfg.summary_fd, &m, sizeof m) != (ssize_t)sizeof m)
        die("medians: write to the parent: %s", strerror(errno));
}

struct summaries {
    struct summary *v;             /* every run's records, in arrival order */
    size_t n, cap;
};

/* Reads a child's records until it closes the pipe. */
static void summaries_read(struct summaries *all, int fd)
{
    for (;;) {
        if (all->n == all->cap) {
            all->cap = all->cap ? 2 * all->cap : 64;
            all->v = realloc(all->v, all->cap * sizeof *all->v);
            if (all->v == NULL)
                die("out of memory");
        }
        size_t got = 0;
        while (got < sizeof *all->v) {
            ssize_t k = read(fd, (char *)&all->v[all->n] + got, sizeof *all->v - got);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                return;
            got += (size_t)k;
        }
        all->n++;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of n values (sorted in place); the mean of the middle two for even n. */
static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The median of one figure over the runs of the records picked (idx, n of them). */
static double median_of(const struct summaries *all, const size_t *idx, size_t n,
                        size_t field)
{
    double *v = malloc(n * sizeof *v), med;
    if (v == NULL)
        die("out of memory");
    for (size_t i = 0; i < n; i++) {
        if (field == SIZE_MAX)
            v[i] = (double)all->v[idx[i]].rss;
        else
            memcpy(&v[i], (const char *)&all->v[idx[i]] + field, sizeof v[i]);
    }
    med = median(v, n);
    free(v);
    return med;
}

static void median_print(const struct config *cfg, const struct summaries *all,
                         const size_t *idx, size_t n)
{
    const struct summary *m = &all->v[idx[0]];
    double ops_s = median_of(all, idx, n, offsetof(struct summary, ops_s));
    double p50 = median_of(all, idx, n, offsetof(struct summary, p50));
    double p99 = median_of(all, idx, n, offsetof(struct summary, p99));
    double p999 = median_of(all, idx, n, offsetof(struct summary, p999));
    double cpu = median_of(all, idx, n, offsetof(struct summary, cpu));
    double amp = median_of(all, idx, n, offsetof(struct summary, space_amp));
    double rss_med = median_of(all, idx, n, SIZE_MAX);
    double probe = median_of(all, idx, n, offsetof(struct summary, probe_p50));
    double writer = median_of(all, idx, n, offsetof(struct summary, writer_ops_s));
    if (!cfg->json) {
        printf("%-8s %-8s %-18s %-6s %9zu %10.0f %9.2f %9.2f %9.2f %8.3f  rss %.0f MiB",
               m->engine, m->version, m->name, m->sync ? "sync" : "nosync", n, ops_s, p50,
               p99, p999, cpu, rss_med / MIB);
        if (amp >= 0)
            printf(", disk/logical %.2f", amp);
        if (probe >= 0)
            printf(", disk fdatasync p50 %.0f us", probe);
        if (writer >= 0)
            printf(", writer %.0f/s of %" PRIu64 " asked", writer, cfg->write_rate);
        printf(", ops/s of each run:");
        for (size_t i = 0; i < n; i++)
            printf(" %.0f", all->v[idx[i]].ops_s);
        printf("\n");
        return;
    }
    printf("{\"type\":\"median\",\"engine\":\"%s\",\"version\":", m->engine);
    jsonw_cstring(stdout, m->version);
    printf(",\"benchmark\":\"%s\",\"sync\":%s,\"threads\":%u,\"runs\":%zu,"
           "\"ops_per_sec\":%.1f,\"p50_us\":%.3f,\"p99_us\":%.3f,\"p999_us\":%.3f,"
           "\"cpu_seconds\":%.6f,\"peak_rss_bytes\":%.0f", m->name,
           m->sync ? "true" : "false", m->threads, n, ops_s, p50, p99, p999, cpu, rss_med);
    if (amp >= 0)
        printf(",\"space_amp\":%.4f", amp);
    if (probe >= 0)
        printf(",\"disk_probe_p50_us\":%.1f", probe);
    if (writer >= 0)
        printf(",\"write_rate\":%" PRIu64 ",\"writer_ops_per_sec\":%.1f", cfg->write_rate,
               writer);
    printf(",\"ops_per_sec_runs\":[");
    for (size_t i = 0; i < n; i++)
        printf("%s%.1f", i ? "," : "", all->v[idx[i]].ops_s);
    printf("],\"p99_us_runs\":[");
    for (size_t i = 0; i < n; i++)
        printf("%s%.3f", i ? "," : "", all->v[idx[i]].p99);
    printf("]}\n");
}

/* One median line per engine and workload, in the order of the first run. */
static void medians_print(const struct config *cfg, const struct summaries *all)
{
    size_t *idx = malloc((all->n ? all->n : 1) * sizeof *idx);
    char *done = calloc(all->n ? all->n : 1, 1);
    if (idx == NULL || done == NULL)
        die("out of memory");
    if (!cfg->json)
        printf("# medians of %u interleaved runs (ops: the runs)\n", cfg->repeat);
    for (size_t i = 0; i < all->n; i++) {
        if (done[i])
            continue;
        size_t n = 0;
        for (size_t j = i; j < all->n; j++)
            if (!done[j] && strcmp(all->v[j].engine, all->v[i].engine) == 0
                && strcmp(all->v[j].name, all->v[i].name) == 0) {
                done[j] = 1;
                idx[n++] = j;
            }
        median_print(cfg, all, idx, n);
    }
    free(idx);
    free(done);
}

/* ---------------------------------------------------------------------------------
 * 7. Command line and main
 * ------------------------------------------------------------------------------ */

/* Runs every workload against engine e in its own store dir; the child's body. */
static int run_engine(const struct config *cfg, const struct engine *e, const char *dir)
{
    struct bench b = { .cfg = *cfg, .e = e };
    snprintf(b.dir, sizeof b.dir, "%s", dir);
    e->version(b.version, sizeof b.version);
    b.value_seed = gen_value_seed(cfg->seed);
    b.pool = pool_make(cfg->value_size + POOL_SPREAD, cfg->seed, cfg->compressible);
    if (b.pool == NULL)
        die("out of memory");
    if (mkdir(b.dir, 0755) != 0 && errno != EEXIST)
        die("%s: cannot create: %s", b.dir, strerror(errno));
    if (cfg->json)
        header_json(&b);
    else
        header_text(&b);
    const char *s = cfg->workloads;
    while (*s != '\0') {
        size_t len = strcspn(s, ",");
        unsigned threads;
        workload_fn fn = workload_find(s, len, &threads);
        struct result r;
        memset(&r, 0, sizeof r);
        hist_init(&r.hist);
        r.first_bad = UINT64_MAX;
        snprintf(r.name, sizeof r.name, "%.*s", (int)len, s);
        fn(&b, &r, threads);
        r.rss = peak_rss();
        if (cfg->json)
            result_json(&b, &r);
        else
            result_text(&b, &r);
        summary_send(&b, &r);
        fflush(stdout);
        s += len + (s[len] == ',');
    }
    store_close(&b);
    free(b.pool);
    return b.failed ? EXIT_FAILED : EXIT_DONE;
}

static void usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "peerbench: %s%s%s\n%s", msg, arg ? ": " : "", arg ? arg : "",
            usage_text);
    exit(EXIT_USAGE);
}

static uint64_t parse_num(const char *opt, const char *s, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max)
        usage_error(opt, s);
    return v;
}

static void list_engines(void)
{
    for (size_t i = 0; i < N_ENGINES; i++) {
        char v[64];
        if (engines[i].missing != NULL) {
            printf("%-8s not built: %s\n", engines[i].name, engines[i].missing);
            continue;
        }
        engines[i].version(v, sizeof v);
        printf("%-8s %s\n", engines[i].name, v);
    }
}

/* Checks every name of the lists before anything runs. */
static void config_check(struct config *c)
{
    static char all[128];
    if (strcmp(c->engines, "all") == 0) {
        size_t n = 0;
        for (size_t i = 0; i < N_ENGINES; i++)
            if (engines[i].missing == NULL)
                n += (size_t)snprintf(all + n, sizeof all - n, "%s%s", n ? "," : "",
                                      engines[i].name);
        c->engines = all;
    }
    for (const char *s = c->engines; *s != '\0';) {
        size_t len = strcspn(s, ",");
        const struct engine *e = engine_find(s, len);
        if (e == NULL)
            usage_error("no such engine", s);
        if (e->missing != NULL) {
            fprintf(stderr, "peerbench: %s: %s\n", e->name, e->missing);
            exit(EXIT_USAGE);
        }
        s += len + (s[len] == ',');
    }
    for (const char *s = c->workloads; *s != '\0';) {
        size_t len = strcspn(s, ",");
        unsigned t;
        if (workload_find(s, len, &t) == NULL)
            usage_error("no such workload", s);
        s += len + (s[len] == ',');
    }
    if (c->key_size < 8 || c->key_size > 64)
        usage_error("--key-size must be 8..64", NULL);
    /* ycsb-d inserts up to --reads keys after the --num */
    uint64_t most = c->num + c->reads > c->sync_num ? c->num + c->reads : c->sync_num;
    if (digits(most) >= c->key_size)
        usage_error("--key-size too small for --num and --sync-num", NULL);
}

enum { OPT_ENGINES = 256, OPT_WORKLOADS, OPT_NUM, OPT_READS, OPT_SYNC_NUM, OPT_KEY_SIZE,
       OPT_VALUE_SIZE, OPT_COMPRESSIBLE, OPT_SEED, OPT_DIR, OPT_KEEP, OPT_JSON, OPT_LIST,
       OPT_CRASH_CHILD, OPT_WRITE_RATE, OPT_REPEAT };

static const struct option long_options[] = {
    { "engines", required_argument, NULL, OPT_ENGINES },
    { "workloads", required_argument, NULL, OPT_WORKLOADS },
    { "num", required_argument, NULL, OPT_NUM },
    { "reads", required_argument, NULL, OPT_READS },
    { "sync-num", required_argument, NULL, OPT_SYNC_NUM },
    { "write-rate", required_argument, NULL, OPT_WRITE_RATE },
    { "repeat", required_argument, NULL, OPT_REPEAT },
    { "key-size", required_argument, NULL, OPT_KEY_SIZE },
    { "value-size", required_argument, NULL, OPT_VALUE_SIZE },
    { "compressible", required_argument, NULL, OPT_COMPRESSIBLE },
    { "seed", required_argument, NULL, OPT_SEED },
    { "dir", required_argument, NULL, OPT_DIR },
    { "keep", no_argument, NULL, OPT_KEEP },
    { "json", no_argument, NULL, OPT_JSON },
    { "list", no_argument, NULL, OPT_LIST },
    { "crash-child", no_argument, NULL, OPT_CRASH_CHILD },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 }
};

static void parse_args(int argc, char **argv, struct config *c)
{
    int opt, reads_set = 0;
    *c = (struct config){ .engines = "all", .workloads = DEFAULT_WORKLOADS, .num = 1000000,
                          .sync_num = 20000, .write_rate = 10000, .repeat = 3,
                          .run_no = 1, .summary_fd = -1, .key_size = 16, .value_size = 100,
                          .compressible = 0.5, .seed = 301, .self = argv[0] };
    while ((opt = getopt_long(argc, argv, "hV", long_options, NULL)) != -1) {
        switch (opt) {
        case OPT_ENGINES: c->engines = optarg; break;
        case OPT_WORKLOADS: c->workloads = optarg; break;
        case OPT_NUM: c->num = parse_num("--num", optarg, 1, 1ull << 40); break;
        case OPT_READS:
            c->reads = parse_num("--reads", optarg, 1, 1ull << 40);
            reads_set = 1;
            break;
        case OPT_SYNC_NUM: c->sync_num = parse_num("--sync-num", optarg, 1, 1ull << 40); break;
        case OPT_REPEAT: c->repeat = (unsigned)parse_num("--repeat", optarg, 1, 1000); break;
        case OPT_WRITE_RATE:
            c->write_rate = parse_num("--write-rate", optarg, 1, 100000000);
            break;
        case OPT_KEY_SIZE: c->key_size = parse_num("--key-size", optarg, 8, 64); break;
        case OPT_VALUE_SIZE:
            c->value_size = parse_num("--value-size", optarg, 1, VALUE_CAP);
            break;
        case OPT_COMPRESSIBLE: {
            char *end;
            c->compressible = strtod(optarg, &end);
            if (*end != '\0' || !(c->compressible > 0 && c->compressible <= 1))
                usage_error("--compressible must be in (0, 1]", optarg);
            break;
        }
        case OPT_SEED: c->seed = parse_num("--seed", optarg, 0, UINT64_MAX); break;
        case OPT_DIR: c->dir = optarg; break;
        case OPT_KEEP: c->keep = 1; break;
        case OPT_JSON: c->json = 1; break;
        case OPT_LIST: list_engines(); exit(EXIT_DONE);
        case OPT_CRASH_CHILD: c->crash_child = 1; break;
        case 'h': fputs(usage_text, stdout); exit(EXIT_DONE);
        case 'V': printf("peerbench (kv) %s\n", kv_version()); exit(EXIT_DONE);
        default: fputs(usage_text, stderr); exit(EXIT_USAGE);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument", argv[optind]);
    if (!reads_set)
        c->reads = c->num;
    config_check(c);
}

static int remove_tree(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    remove(path);
    return 0;
}

/* Runs engine e in a child process on dir, its records to all; 0 or EXIT_FAILED. */
static int run_child(struct config *cfg, const struct engine *e, const char *dir,
                     struct summaries *all)
{
    int fds[2], st = 0;
    if (pipe2(fds, O_CLOEXEC) != 0)
        die("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        cfg->summary_fd = fds[1];
        exit(run_engine(cfg, e, dir));
    }
    close(fds[1]);
    summaries_read(all, fds[0]);
    close(fds[0]);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) == EXIT_DONE)
        return EXIT_DONE;
    if (WIFSIGNALED(st))
        fprintf(stderr, "peerbench: %s: killed by signal %d\n", e->name, WTERMSIG(st));
    return EXIT_FAILED;
}

/* --repeat rounds; in each, one child per engine, one after the other (so the
 * engines interleave: kv, peer, ..., kv, peer, ...); then the medians. The run's
 * status is the worst. */
int main(int argc, char **argv)
{
    struct config cfg;
    struct summaries all = { 0 };
    char base[PATH_MAX];
    int status = EXIT_DONE;
    parse_args(argc, argv, &cfg);
    if (cfg.crash_child) {
        if (cfg.dir == NULL)
            usage_error("--crash-child needs --dir", NULL);
        crash_child(&cfg, engine_find(cfg.engines, strcspn(cfg.engines, ",")), cfg.dir);
    }
    if (cfg.dir != NULL) {
        snprintf(base, sizeof base, "%s", cfg.dir);
        if (mkdir(base, 0755) != 0 && errno != EEXIST)
            die("%s: cannot create: %s", base, strerror(errno));
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(base, sizeof base, "%s/peerbench.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(base) == NULL)
            die("%s: cannot create: %s", base, strerror(errno));
    }
    if (!cfg.json)
        printf("%-8s %-8s %-18s %-6s %9s %10s %9s %9s %9s %8s  %s\n", "engine", "version",
               "workload", "sync", "ops", "ops/s", "p50 us", "p99 us", "p99.9 us",
               "cpu s", "notes");
    for (cfg.run_no = 1; cfg.run_no <= cfg.repeat; cfg.run_no++) {
        for (const char *s = cfg.engines; *s != '\0';) {
            size_t len = strcspn(s, ",");
            const struct engine *e = engine_find(s, len);
            char dir[PATH_MAX];
            /* --keep with --repeat: each run's stores stay, as <engine>.<run> */
            int n = cfg.repeat > 1 && cfg.keep
                        ? snprintf(dir, sizeof dir, "%s/%s.%u", base, e->name, cfg.run_no)
                        : snprintf(dir, sizeof dir, "%s/%s", base, e->name);
            if ((size_t)n >= sizeof dir)
                die("%s: path too long", base);
            if (run_child(&cfg, e, dir, &all) != EXIT_DONE)
                status = EXIT_FAILED;
            if (!cfg.keep)
                nftw(dir, remove_tree, 16, FTW_DEPTH | FTW_PHYS);
            s += len + (s[len] == ',');
        }
    }
    if (cfg.repeat > 1)
        medians_print(&cfg, &all);
    free(all.v);
    if (!cfg.keep && cfg.dir == NULL)
        rmdir(base);
    else if (cfg.keep)
        fprintf(stderr, "peerbench: stores kept in %s\n", base);
    return status;
}
