/*
 * kvbench.c — a db_bench-style benchmark driver for kv, through the public API in
 * kv.h only.
 *
 * kvbench runs a list of benchmarks one after the other against one store, like
 * LevelDB's db_bench: the fill benchmarks (fillseq, fillrandom, fillsync) start from
 * a fresh store; overwrite, readrandom, readmissing and reopen use what the previous
 * benchmarks left, and fill the store first (untimed, and said so in their line) when
 * it does not hold the --num keys. Keys are the zero-padded decimal of an integer;
 * values are slices of a pool that compresses to about --compressible of its size,
 * chosen by a hash of the key, so every value read back is checked against the bytes
 * that were written. The reader benchmarks (readonly, readwhileloading, refresh,
 * openreader) measure read-only handles (kv_refresh): readwhileloading forks a writer
 * process that overwrites keys with the values they have, so reads stay checkable.
 * Each benchmark
 * prints one line (text or JSON): operations, seconds, ops/s, MB/s, latency
 * percentiles from a log-bucketed histogram merged across threads, and the engine's
 * own figures from kv_stat. A failing kv_* call ends the run with
 * "kvbench: <bench>: <kv_strerror>: <kv_errmsg>" and exit status 1; a wrong or
 * missing value is counted, reported, and also makes the exit status 1.
 *
 * Sections:
 *   1. Configuration, benchmark state and usage text
 *   2. Values (keys, values, seeds and the permutation: bench/gen.h)
 *   3. Latency histogram rows (the histogram itself: bench/gen.h)
 *   4. The store: its directory, opening, wiping, failure reporting
 *   5. Running operations on threads
 *   6. Report: header and result lines, text or JSON
 *   7. Benchmarks
 *   8. Command line and main
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "kv.h"
#include "gen.h"
#include "../tools/json.h"

/* ---------------------------------------------------------------------------------
 * 1. Configuration, benchmark state and usage text
 * ------------------------------------------------------------------------------ */
enum {
    EXIT_DONE = 0,     /* every benchmark ran and every value read back was right */
    EXIT_FAILED = 1,   /* a kv_* call failed, or a value was wrong or missing */
    EXIT_USAGE = 2     /* bad command line */
};

#define DEFAULT_BENCHMARKS \
    "fillseq,fillrandom,overwrite,readrandom,readmissing,fillsync,reopen"
#define MAX_NUM (1ull << 40)     /* keys and operations per benchmark */
#define MAX_THREADS 1024u
#define MIB 1048576.0            /* the "MB" of MB/s and disk sizes, as db_bench */

/* What the command line asked for. */
struct config {
    const char *benchmarks;  /* comma-separated list of benchmark names */
    uint64_t num;            /* keys of a full store; operations of fills, overwrite */
    uint64_t reads;          /* operations of readrandom and readmissing */
    unsigned threads;        /* threads of the multi-threaded benchmarks */
    size_t key_size;         /* bytes per key */
    size_t value_size;       /* bytes per value */
    int sync;                /* KV_SYNC_* of every benchmark but fillsync */
    int io;                  /* KV_IO_* */
    uint64_t segment_bytes;  /* kv_options.segment_bytes, 0 for the engine's default */
    const char *db;          /* store directory; NULL for a fresh temporary one */
    int keep;                /* keep the temporary directory at the end */
    uint64_t sync_num;       /* operations of fillsync, across all threads */
    uint64_t seed;           /* seeds key order, values and each thread's RNG */
    int histogram;           /* print a latency histogram after each line */
    int json;                /* one JSON object per line instead of text */
    int auto_compact;        /* kv_options.auto_compact: 0, 1, or -1 for the default */
    uint64_t compact_rate;   /* kv_options.compact_bytes_per_sec, UINT64_MAX: default */
    int drop_caches;         /* reopen: drop the page cache first (cold open; root) */
    int compression;         /* KV_COMPRESS_NONE or KV_COMPRESS_LZ4 */
    double compressible;     /* values compress to about this share of their size */
    size_t compress_min;     /* kv_options.compress_min_bytes */
    uint64_t refresh_ops;    /* readonly, readwhileloading: reads between two kv_refresh
                                calls (0: never refresh) */
    uint64_t refreshes;      /* refresh: kv_refresh calls timed */
    uint64_t refresh_writes; /* refresh: writes before each of them */
    const char *during;      /* shell command run beside the last benchmark, or NULL */
};

/* The run's state, shared by every benchmark. */
struct bench {
    struct config cfg;       /* the command line */
    char dir[PATH_MAX];      /* the store's directory */
    int temp_dir;            /* dir was made by kvbench (removed at the end) */
    kv_db *db;               /* the open handle, or NULL */
    int db_sync;             /* the sync mode db was opened with */
    uint64_t have;           /* the store holds exactly the keys 0..have-1 */
    unsigned char *pool;     /* value bytes: value_size + POOL_SPREAD */
    uint64_t value_seed;     /* picks each key's slice of the pool */
    int failed;              /* a value read back was wrong or missing */
    double readonly_ops_s;   /* ops/s of the last readonly run (0: none yet), the
                                baseline readwhileloading compares itself with */
    double readonly_cpu_op;  /* ... and its CPU seconds per read */
    int during_now;          /* the benchmark running is the one --during runs beside */
};

static const char usage_text[] =
    "usage: kvbench [OPTIONS]\n"
    "Runs db_bench-style benchmarks against a kv store.\n"
    "  --benchmarks LIST   comma-separated, from fillseq, fillrandom, overwrite,\n"
    "                      readrandom, readmissing, fillsync, reopen,\n"
    "                      reopen-nohints, compact, and the reader benchmarks:\n"
    "                      readonly (readrandom through a read-only handle, the\n"
    "                      writer closed), readwhileloading (the same while a\n"
    "                      writer process overwrites at full speed; compared with\n"
    "                      the last readonly), refresh (kv_refresh after\n"
    "                      --refresh-writes writes, --refreshes times), openreader\n"
    "                      (a read-only kv_open of the full store, 5 times)\n"
    "                      (default: " DEFAULT_BENCHMARKS ")\n"
    "  --num N             keys in the store, writes per fill (1000000)\n"
    "  --reads N           operations of readrandom, readmissing, readonly and\n"
    "                      readwhileloading (--num)\n"
    "  --threads N         threads of fillrandom, overwrite, readrandom,\n"
    "                      readmissing, fillsync, readonly and readwhileloading (1)\n"
    "  --key-size N        bytes per key (16)\n"
    "  --value-size N      bytes per value (100)\n"
    "  --compression MODE  none or lz4: kv_options.compression (none)\n"
    "  --compressible R    generated values compress to about R of their size,\n"
    "                      0 < R <= 1, as db_bench's compression_ratio (0.5)\n"
    "  --compress-min-bytes N  kv_options.compress_min_bytes (the engine's, 64)\n"
    "  --sync MODE         always, interval or none: every benchmark but fillsync,\n"
    "                      which always uses always (none)\n"
    "  --sync-num N        writes of fillsync, across all threads (20000)\n"
    "  --io MODE           auto, uring or psync (auto)\n"
    "  --segment-bytes N   segment size, K, M or G suffix allowed (engine default)\n"
    "  --auto-compact 0|1  background compaction (engine default: 1)\n"
    "  --compact-rate N    background compaction pace in bytes/s, K/M/G allowed;\n"
    "                      0 = unpaced (engine default: 64M)\n"
    "  --drop-caches       reopen benchmarks and openreader open cold: sync and\n"
    "                      drop the page cache first (needs root)\n"
    "  --refresh-ops N     readonly, readwhileloading: kv_refresh every N reads\n"
    "                      (10000; 0 = never)\n"
    "  --refreshes N       refresh: kv_refresh calls timed (100)\n"
    "  --refresh-writes N  refresh: writes before each kv_refresh (10000)\n"
    "  --db DIR            store directory; its store is erased first\n"
    "                      (default: a fresh directory under /tmp, removed at the end)\n"
    "  --keep              keep that temporary directory\n"
    "  --seed N            random seed (301)\n"
    "  --during CMD        run the shell command CMD beside the last benchmark of the\n"
    "                      list (KVBENCH_DB names the store, its stdout goes to\n"
    "                      stderr); that line adds the latency of the operations\n"
    "                      made while CMD ran, and of the others\n"
    "  --histogram         print a latency histogram after each benchmark\n"
    "  --json              print one JSON object per line\n"
    "  -h, --help          print this help and exit\n"
    "  -V, --version       print the version and exit\n"
    "exit status: 0 ok, 1 a kv call failed or a value read back was wrong,\n"
    "             2 usage error\n";

/* ---------------------------------------------------------------------------------
 * 2. Values
 * ------------------------------------------------------------------------------ */

/* Keys, the value pool, the seeds and the permutation are bench/gen.h's, shared with
 * peerbench. The value of key k: */
static const unsigned char *value_of(const struct bench *b, uint64_t k)
{
    return gen_value(b->pool, b->value_seed, k);
}

/* ---------------------------------------------------------------------------------
 * 3. Latency histogram (bench/gen.h); here, the rows of --histogram
 * ------------------------------------------------------------------------------ */
/* Printed rows group 4 buckets (4 rows per power of two), and the first 16 buckets
 * make one row: row r covers buckets [*first, *last]. Returns 0 past the end. */
static int hist_row(unsigned r, unsigned *first, unsigned *last)
{
    unsigned per = HIST_SUB / 4;
    if (r == 0) {
        *first = 0;
        *last = HIST_SUB - 1;
        return 1;
    }
    *first = HIST_SUB + (r - 1) * per;
    *last = *first + per - 1;
    return *last < HIST_BUCKETS;
}

static uint64_t hist_row_count(const struct hist *h, unsigned first, unsigned last)
{
    uint64_t n = 0;
    for (unsigned i = first; i <= last; i++)
        n += h->b[i];
    return n;
}


/* ---------------------------------------------------------------------------------
 * 4. The store: its directory, opening, wiping, failure reporting
 * ------------------------------------------------------------------------------ */

/* Says where the store was left, so a failure can be inspected (kvdump, kvcheck);
 * a temporary directory still empty is simply removed. */
static void note_kept(const struct bench *b)
{
    if (b->temp_dir && rmdir(b->dir) != 0)
        fprintf(stderr, "kvbench: store kept in %s\n", b->dir);
}

/* Reports a failed kv_* call as "kvbench: <bench>: <kv_strerror>: <kv_errmsg>" and
 * exits 1. msg is the failing thread's kv_errmsg(), copied before any other kv call. */
__attribute__((noreturn))
static void die_kv(const struct bench *b, const char *name, int rc, const char *msg)
{
    fprintf(stderr, "kvbench: %s: %s: %s\n", name, kv_strerror(rc),
            msg[0] != '\0' ? msg : "(no detail)");
    note_kept(b);
    exit(EXIT_FAILED);
}

static void check(const struct bench *b, const char *name, int rc)
{
    if (rc == KV_OK)
        return;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", kv_errmsg());
    die_kv(b, name, rc, msg);
}

/* A failure outside the library (a directory, a thread): errno text, exit 1. */
__attribute__((format(printf, 2, 3), noreturn))
static void die_sys(const struct bench *b, const char *fmt, ...)
{
    va_list ap;
    fputs("kvbench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    note_kept(b);
    exit(EXIT_FAILED);
}

/* The options of the store's writer, as the command line sets them. */
static void store_options(const struct bench *b, kv_options *o, int sync, int create)
{
    kv_options_init(o);
    o->create = create;
    o->sync = sync;
    o->io = b->cfg.io;
    o->compression = b->cfg.compression;
    if (b->cfg.compress_min != SIZE_MAX)
        o->compress_min_bytes = b->cfg.compress_min;
    if (b->cfg.segment_bytes != 0)
        o->segment_bytes = b->cfg.segment_bytes;
    if (b->cfg.auto_compact >= 0)
        o->auto_compact = b->cfg.auto_compact;
    if (b->cfg.compact_rate != UINT64_MAX)
        o->compact_bytes_per_sec = b->cfg.compact_rate;
}

static void store_open(struct bench *b, const char *name, int sync, int create)
{
    kv_options o;
    store_options(b, &o, sync, create);
    check(b, name, kv_open(b->dir, &o, &b->db));
    b->db_sync = sync;
}

static void store_close(struct bench *b, const char *name)
{
    if (b->db == NULL)
        return;
    int rc = kv_close(b->db);
    b->db = NULL;
    check(b, name, rc);
}

/* nftw callback: removes everything below the top directory, depth first. */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    if (f->level == 0)
        return 0;
    return remove(path) == 0 ? 0 : -1;
}

static void dir_empty(const struct bench *b)
{
    if (nftw(b->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
        die_sys(b, "%s: cannot empty the directory: %s", b->dir, strerror(errno));
}

/* Closes the store, erases it and opens a new empty one with the given sync mode. */
static void store_fresh(struct bench *b, const char *name, int sync)
{
    store_close(b, name);
    dir_empty(b);
    store_open(b, name, sync, 1);
    b->have = 0;
}

/* Makes sure the open handle uses the given sync mode, reopening it if not. */
static void store_mode(struct bench *b, const char *name, int sync)
{
    if (b->db != NULL && b->db_sync == sync)
        return;
    store_close(b, name);
    store_open(b, name, sync, 0);
}

/* 1 when dir is missing (kv_open makes it) or holds nothing, else 0. */
static int dir_is_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int empty = 1;
    if (d == NULL)
        return errno == ENOENT;
    while (empty && (e = readdir(d)) != NULL)
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

/* Picks the store directory. A --db directory that holds anything must hold a kv
 * store that a writer can open: kvbench erases it, and never erases anything else. */
static void dir_setup(struct bench *b)
{
    if (b->cfg.db == NULL) {
        snprintf(b->dir, sizeof b->dir, "/tmp/kvbench.XXXXXX");
        if (mkdtemp(b->dir) == NULL)
            die_sys(b, "/tmp: cannot make a directory: %s", strerror(errno));
        b->temp_dir = 1;
        return;
    }
    if (snprintf(b->dir, sizeof b->dir, "%s", b->cfg.db) >= (int)sizeof b->dir)
        die_sys(b, "%s: path too long", b->cfg.db);
    if (dir_is_empty(b->dir))
        return;
    kv_options o;
    kv_options_init(&o);
    o.create = 0;
    kv_db *db = NULL;
    int rc = kv_open(b->dir, &o, &db);
    if (rc != KV_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", kv_errmsg());
        die_sys(b, "%s: not empty and not a kv store kvbench may erase (%s: %s)",
                b->dir, kv_strerror(rc), msg);
    }
    check(b, "open", kv_close(db));
}

/* Removes the temporary directory unless asked to keep it, or a check failed. */
static void dir_finish(struct bench *b)
{
    if (!b->temp_dir)
        return;
    if (b->cfg.keep || b->failed) {
        fprintf(stderr, "kvbench: store kept in %s\n", b->dir);
        return;
    }
    dir_empty(b);
    if (rmdir(b->dir) != 0)
        die_sys(b, "%s: cannot remove: %s", b->dir, strerror(errno));
}

/* ---------------------------------------------------------------------------------
 * 5. Running operations on threads
 *
 * run_ops splits a benchmark's operations into contiguous ranges, one per thread;
 * the threads wait on a barrier that the main thread also joins, and the clock runs
 * from that barrier to the last join. Each operation times only its kv_* call (two
 * clock_gettime around it) into the thread's own histogram; the histograms are
 * merged afterwards. The first failing thread stops the others.
 * ------------------------------------------------------------------------------ */
struct worker;
typedef int (*op_fn)(struct worker *w, uint64_t i);

/* One benchmark's run, shared by its threads. */
struct run {
    struct bench *b;            /* the store and configuration */
    const char *name;           /* benchmark name, for errors */
    op_fn op;                   /* one operation, numbered i */
    kv_db *db;                  /* the handle the operations use */
    uint64_t refresh_every;     /* op_read_follow: thread 0 refreshes every this many
                                   of its reads (0: never) */
    struct perm perm;           /* key order of fillrandom and fillsync */
    pthread_barrier_t start;    /* releases the threads and the clock together */
    atomic_int stop;            /* set by a failing thread */
    atomic_int during_on;       /* --during's command runs */
    pid_t during_pid;           /* ... its process */
    uint64_t during_t0;         /* ... when it started, and how long it ran: */
    uint64_t during_ns;
    int during_status;          /* ... its wait status (-1: not known) */
};

/* One thread of a run. */
struct worker {
    struct run *run;            /* what to do */
    uint64_t begin, end;        /* operation numbers [begin, end) */
    uint64_t rng;               /* splitmix64 state: --seed and the thread id */
    unsigned char *key;         /* key buffer, key_size bytes */
    struct hist hist;           /* latency of each operation */
    struct hist during;         /* ... of those made while --during's command ran */
    struct hist outside;        /* ... and of the others (--during only) */
    uint64_t bytes;             /* key and value bytes written or read */
    uint64_t found;             /* reads that found their key */
    uint64_t missing;           /* readrandom: existing keys not found */
    uint64_t wrong;             /* values not as written; readmissing: keys found */
    uint64_t first_bad;         /* the smallest key missing or wrong, or UINT64_MAX */
    struct hist rhist;          /* op_read_follow: time of each kv_refresh */
    uint64_t max_lag;           /* ... and the highest reader_lag after one */
    int rc;                     /* KV_OK, or the failing call's status */
    char msg[1024];             /* kv_errmsg of that call, copied in this thread */
    pthread_t thread;           /* the thread running worker_main */
};

/* What a benchmark measured, for the report. */
struct result {
    const char *name;           /* benchmark name */
    uint64_t ops;               /* operations timed */
    unsigned threads;           /* threads that ran them */
    double secs;                /* wall time */
    uint64_t bytes;             /* bytes moved (MB/s) */
    struct hist hist;           /* merged latency */
    uint64_t prefilled;         /* keys written first, untimed */
    int kind;                   /* RES_FILL, RES_READ, RES_REOPEN: extra figures */
    kv_stats before, after;     /* kv_stat around the run */
    uint64_t found, missing, wrong, first_bad; /* reads: sums of the workers' */
    double close_us, open_us;   /* reopen: wall time of kv_close and kv_open */
    double cpu_secs;            /* user + system CPU time of the process during the
                                   run: less disturbed than wall time on a shared
                                   machine */
    struct hist rhist;          /* reader benchmarks: time of each kv_refresh */
    uint64_t max_lag;           /* ... highest reader_lag after one */
    uint64_t writer_ops;        /* readwhileloading: writes of the writer process */
    double writer_secs;         /* ... in this many seconds */
    double baseline_ops_s;      /* ... ops/s of the last readonly (0: none) */
    double baseline_cpu_op;     /* ... and its CPU seconds per read */
    uint64_t refresh_writes;    /* refresh: writes before each refresh */
    uint64_t lag_sum;           /* ... sum of reader_lag after each */
    kv_stats reader;            /* refresh, openreader: kv_stat of the reader */
    int during_ran;             /* --during's command ran beside it: */
    struct hist during, outside; /* latency while it ran, and while it did not */
    double during_secs;         /* how long it ran */
    int during_status;          /* its wait status (-1: not known) */
    int during_outlived;        /* it was still running when the benchmark ended */
};
enum { RES_FILL = 1, RES_READ, RES_REOPEN, RES_COMPACT, RES_FOLLOW, RES_REFRESH, RES_OPEN };

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct run *run = w->run;
    pthread_barrier_wait(&run->start);
    for (uint64_t i = w->begin; i < w->end; i++) {
        if (atomic_load_explicit(&run->stop, memory_order_relaxed))
            break;
        int rc = run->op(w, i);
        if (rc != KV_OK) {
            w->rc = rc;
            snprintf(w->msg, sizeof w->msg, "%s", kv_errmsg());
            atomic_store(&run->stop, 1);
            break;
        }
    }
    return NULL;
}

static void worker_init(struct worker *w, struct run *run, unsigned tid,
                        uint64_t ops, unsigned threads)
{
    memset(w, 0, sizeof *w);
    w->run = run;
    w->begin = ops * tid / threads;
    w->end = ops * (tid + 1) / threads;
    w->rng = gen_thread_rng(run->b->cfg.seed, tid);
    w->key = malloc(run->b->cfg.key_size);
    if (w->key == NULL)
        die_sys(run->b, "%s: out of memory", run->name);
    hist_init(&w->hist);
    hist_init(&w->rhist);
    hist_init(&w->during);
    hist_init(&w->outside);
    w->first_bad = UINT64_MAX;
}

/* Adds a thread's counts to the result; a failed thread ends the run. */
static void worker_collect(struct worker *w, struct result *r)
{
    if (w->rc != KV_OK)
        die_kv(w->run->b, w->run->name, w->rc, w->msg);
    hist_merge(&r->hist, &w->hist);
    hist_merge(&r->rhist, &w->rhist);
    if (w->max_lag > r->max_lag)
        r->max_lag = w->max_lag;
    hist_merge(&r->during, &w->during);
    hist_merge(&r->outside, &w->outside);
    r->bytes += w->bytes;
    r->found += w->found;
    r->missing += w->missing;
    r->wrong += w->wrong;
    if (w->first_bad < r->first_bad)
        r->first_bad = w->first_bad;
    free(w->key);
}

/* User + system CPU seconds of the whole process so far. */
static double cpu_secs(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6
           + (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* --during: the thread that waits for the command and marks its end. */
static void *during_wait(void *arg)
{
    struct run *run = arg;
    int st = 0;
    pid_t got;
    do
        got = waitpid(run->during_pid, &st, 0);
    while (got < 0 && errno == EINTR);
    run->during_ns = now_ns() - run->during_t0;
    run->during_status = got == run->during_pid ? st : -1;
    atomic_store(&run->during_on, 0);
    return NULL;
}

/* --during: starts the command (sh -c, KVBENCH_DB set, its stdout to our stderr so
 * ours stays the results) and the thread that waits for it. */
static void during_start(struct run *run, pthread_t *waiter)
{
    struct bench *b = run->b;
    fflush(NULL);
    atomic_store(&run->during_on, 1);
    run->during_t0 = now_ns();
    run->during_pid = fork();
    if (run->during_pid < 0)
        die_sys(b, "%s: --during: fork: %s", run->name, strerror(errno));
    if (run->during_pid == 0) {
        if (setenv("KVBENCH_DB", b->dir, 1) != 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
            _exit(126);
        execl("/bin/sh", "sh", "-c", b->cfg.during, (char *)NULL);
        _exit(127);
    }
    int err = pthread_create(waiter, NULL, during_wait, run);
    if (err != 0)
        die_sys(b, "%s: --during: cannot start a thread: %s", run->name, strerror(err));
}

static void run_threads(struct run *run, struct worker *ws, unsigned threads,
                        struct result *r)
{
    pthread_t waiter;
    for (unsigned t = 0; t < threads; t++) {
        int err = pthread_create(&ws[t].thread, NULL, worker_main, &ws[t]);
        if (err != 0)
            die_sys(run->b, "%s: cannot start a thread: %s", run->name, strerror(err));
    }
    if (r->during_ran)
        during_start(run, &waiter);
    /* The clock starts before the barrier opens: a worker released by it can finish a
     * short run before this thread is scheduled again (2 cores), which would leave
     * the run almost no time and an absurd rate. */
    uint64_t t0 = now_ns();
    double c0 = cpu_secs();
    pthread_barrier_wait(&run->start);
    for (unsigned t = 0; t < threads; t++)
        pthread_join(ws[t].thread, NULL);
    r->secs = (double)(now_ns() - t0) / 1e9;
    r->cpu_secs = cpu_secs() - c0;
    if (r->during_ran) {
        r->during_outlived = atomic_load(&run->during_on);
        pthread_join(waiter, NULL);
        r->during_secs = (double)run->during_ns / 1e9;
        r->during_status = run->during_status;
    }
}

/* Runs ops operations of op on threads threads through handle db and fills r: time,
 * latency, counts and kv_stat of db before and after. perm_n > 0 sets up the
 * permutation of 0..perm_n-1; refresh_every is op_read_follow's. */
static void run_ops_db(struct bench *b, kv_db *db, struct result *r, op_fn op, uint64_t ops,
                       unsigned threads, uint64_t perm_n, uint64_t refresh_every)
{
    struct run run = { .b = b, .name = r->name, .op = op, .db = db,
                       .refresh_every = refresh_every };
    struct worker *ws = calloc(threads, sizeof *ws);
    if (ws == NULL)
        die_sys(b, "%s: out of memory", r->name);
    if (perm_n > 0)
        perm_init(&run.perm, perm_n, gen_perm_seed(b->cfg.seed));
    atomic_init(&run.stop, 0);
    atomic_init(&run.during_on, 0);
    r->during_ran = b->during_now && b->cfg.during != NULL;
    pthread_barrier_init(&run.start, NULL, threads + 1);
    for (unsigned t = 0; t < threads; t++)
        worker_init(&ws[t], &run, t, ops, threads);
    check(b, r->name, kv_stat(db, &r->before));
    run_threads(&run, ws, threads, r);
    pthread_barrier_destroy(&run.start);
    r->ops = ops;
    r->threads = threads;
    for (unsigned t = 0; t < threads; t++)
        worker_collect(&ws[t], r);
    free(ws);
    check(b, r->name, kv_stat(db, &r->after));
}

/* run_ops_db on the store's writer handle. */
static void run_ops(struct bench *b, struct result *r, op_fn op, uint64_t ops,
                    unsigned threads, uint64_t perm_n)
{
    run_ops_db(b, b->db, r, op, ops, threads, perm_n, 0);
}

/* Records the latency of one operation that started at t0; with --during, also in
 * the histogram of the operations made while the command ran, or of the others. */
static void time_op(struct worker *w, uint64_t t0)
{
    uint64_t ns = now_ns() - t0;
    hist_add(&w->hist, ns);
    if (atomic_load_explicit(&w->run->during_on, memory_order_relaxed))
        hist_add(&w->during, ns);
    else
        hist_add(&w->outside, ns);
}

/* Puts key k with its value, timing the call. */
static int put_key(struct worker *w, uint64_t k)
{
    const struct bench *b = w->run->b;
    key_format(w->key, b->cfg.key_size, k);
    const unsigned char *v = value_of(b, k);
    uint64_t t0 = now_ns();
    int rc = kv_put(w->run->db, w->key, b->cfg.key_size, v, b->cfg.value_size);
    time_op(w, t0);
    w->bytes += b->cfg.key_size + b->cfg.value_size;
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

/* Counts a read that did not return what was written. */
static void note_bad(struct worker *w, uint64_t k, uint64_t *counter)
{
    (*counter)++;
    if (k < w->first_bad)
        w->first_bad = k;
}

/* Reads a random existing key and checks its value byte for byte. */
static int op_read(struct worker *w, uint64_t i)
{
    const struct bench *b = w->run->b;
    uint64_t k = splitmix64(&w->rng) % b->cfg.num;
    void *val = NULL;
    size_t vlen = 0;
    key_format(w->key, b->cfg.key_size, k);
    uint64_t t0 = now_ns();
    int rc = kv_get(w->run->db, w->key, b->cfg.key_size, &val, &vlen);
    time_op(w, t0);
    w->bytes += b->cfg.key_size;
    if (rc == KV_NOTFOUND) {
        note_bad(w, k, &w->missing);
        return KV_OK;
    }
    if (rc != KV_OK)
        return rc;
    w->found++;
    w->bytes += vlen;
    if (vlen != b->cfg.value_size || memcmp(val, value_of(b, k), vlen) != 0)
        note_bad(w, k, &w->wrong);
    kv_free(val);
    return KV_OK;
}

/* Reads a key that was never written; finding it is counted as wrong. */
static int op_read_missing(struct worker *w, uint64_t i)
{
    const struct bench *b = w->run->b;
    uint64_t k = splitmix64(&w->rng) % b->cfg.num;
    void *val = NULL;
    size_t vlen = 0;
    key_format_missing(w->key, b->cfg.key_size, k);
    uint64_t t0 = now_ns();
    int rc = kv_get(w->run->db, w->key, b->cfg.key_size, &val, &vlen);
    time_op(w, t0);
    w->bytes += b->cfg.key_size;
    if (rc == KV_NOTFOUND)
        return KV_OK;
    if (rc != KV_OK)
        return rc;
    w->found++;
    note_bad(w, k, &w->wrong);
    kv_free(val);
    return KV_OK;
}

/* op_read on a read-only handle that thread 0 (the one whose range starts at 0) also
 * refreshes every refresh_every of its reads; the refresh is timed apart. */
static int op_read_follow(struct worker *w, uint64_t i)
{
    struct run *run = w->run;
    if (w->begin == 0 && run->refresh_every != 0 && (i + 1) % run->refresh_every == 0) {
        kv_stats st;
        uint64_t t0 = now_ns();
        int rc = kv_refresh(run->db);
        hist_add(&w->rhist, now_ns() - t0);
        if (rc != KV_OK || (rc = kv_stat(run->db, &st)) != KV_OK)
            return rc;
        if (st.reader_lag > w->max_lag)
            w->max_lag = st.reader_lag;
    }
    return op_read(w, i);
}

/* ---------------------------------------------------------------------------------
 * 6. Report: header and result lines, text or JSON
 * ------------------------------------------------------------------------------ */
static const char *sync_name(int sync)
{
    switch (sync) {
    case KV_SYNC_ALWAYS: return "always";
    case KV_SYNC_INTERVAL: return "interval";
    case KV_SYNC_NONE: return "none";
    default: return "unknown";
    }
}

static const char *io_name(int io)
{
    switch (io) {
    case KV_IO_AUTO: return "auto";
    case KV_IO_URING: return "uring";
    case KV_IO_PSYNC: return "psync";
    default: return "unknown";
    }
}

/* Copies the value of the first "field : value" line of /proc/cpuinfo whose name is
 * one of names, tried in order; "unknown" when there is none. */
static void cpuinfo(const char *const *names, char *out, size_t size)
{
    snprintf(out, size, "unknown");
    for (; *names != NULL; names++) {
        FILE *f = fopen("/proc/cpuinfo", "r");
        char line[512];
        size_t n = strlen(*names);
        while (f != NULL && fgets(line, sizeof line, f) != NULL) {
            char *colon = strchr(line, ':');
            if (strncmp(line, *names, n) != 0 || colon == NULL ||
                strspn(line + n, " \t") != (size_t)(colon - line) - n)
                continue;
            colon += strspn(colon + 1, " \t") + 1;
            colon[strcspn(colon, "\n")] = '\0';
            snprintf(out, size, "%s", colon);
            fclose(f);
            return;
        }
        if (f != NULL)
            fclose(f);
    }
}

/* Facts about the run, gathered once for the header. */
struct facts {
    char date[64];              /* local time, ISO 8601 */
    char cpu[256];              /* CPU model */
    char cache[64];             /* cache size, as /proc/cpuinfo says */
    long cores;                 /* online processors */
    kv_stats st;                /* of the freshly opened store: io backend, note */
    size_t compress_min;        /* compress_min_bytes in force */
};

static void facts_gather(struct bench *b, struct facts *f)
{
    static const char *const model[] = { "model name", "Processor", "cpu model",
                                         "cpu", NULL };
    static const char *const cache[] = { "cache size", NULL };
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(f->date, sizeof f->date, "%Y-%m-%dT%H:%M:%S%z", &tm);
    cpuinfo(model, f->cpu, sizeof f->cpu);
    cpuinfo(cache, f->cache, sizeof f->cache);
    f->cores = sysconf(_SC_NPROCESSORS_ONLN);
    kv_options o;
    kv_options_init(&o);
    f->compress_min = b->cfg.compress_min != SIZE_MAX ? b->cfg.compress_min
                                                       : o.compress_min_bytes;
    check(b, "open", kv_stat(b->db, &f->st));
}

static void header_text(const struct bench *b, const struct facts *f)
{
    const struct config *c = &b->cfg;
    printf("kvbench:    %s (libkv %s)\n", KV_VERSION_STRING, kv_version());
    printf("Date:       %s\n", f->date);
    printf("CPU:        %ld * %s\n", f->cores, f->cpu);
    printf("CPUCache:   %s\n", f->cache);
    printf("IO:         %s%s%s%s\n",
           f->st.io_backend == KV_IO_URING ? "io_uring" : io_name(f->st.io_backend),
           f->st.io_backend_note[0] ? " (" : "", f->st.io_backend_note,
           f->st.io_backend_note[0] ? ")" : "");
    printf("Sync:       %s (fillsync: always)\n", sync_name(c->sync));
    printf("Keys:       %zu bytes each\n", c->key_size);
    printf("Values:     %zu bytes each (compressible to %.2f)\n", c->value_size,
           c->compressible);
    if (c->compression == KV_COMPRESS_LZ4)
        printf("Compress:   lz4, values of %zu bytes or more\n", f->compress_min);
    else
        printf("Compress:   none\n");
    printf("Entries:    %" PRIu64 "\n", c->num);
    printf("Reads:      %" PRIu64 "\n", c->reads);
    printf("Threads:    %u\n", c->threads);
    if (c->segment_bytes != 0)
        printf("Segment:    %" PRIu64 " bytes\n", c->segment_bytes);
    else
        printf("Segment:    engine default\n");
    printf("Directory:  %s\n", b->dir);
#ifndef __OPTIMIZE__
    printf("WARNING:    kvbench was built without optimization\n");
#endif
    printf("--------------------------------------------------------------------\n");
    printf("%-12s %10s %8s %11s %8s %8s %8s %8s  %s\n", "benchmark", "ops", "secs",
           "ops/s", "MB/s", "p50 us", "p99 us", "p99.9 us", "notes");
}

static void header_json(const struct bench *b, const struct facts *f)
{
    const struct config *c = &b->cfg;
    printf("{\"type\":\"header\",\"kvbench\":\"%s\",\"libkv\":", KV_VERSION_STRING);
    jsonw_cstring(stdout, kv_version());
    printf(",\"date\":\"%s\",\"cpu\":", f->date);
    jsonw_cstring(stdout, f->cpu);
    printf(",\"cpu_cache\":");
    jsonw_cstring(stdout, f->cache);
    printf(",\"cores\":%ld,\"io_backend\":\"%s\",\"io_backend_note\":", f->cores,
           io_name(f->st.io_backend));
    jsonw_cstring(stdout, f->st.io_backend_note);
    printf(",\"sync\":\"%s\",\"key_size\":%zu,\"value_size\":%zu,\"num\":%" PRIu64
           ",\"reads\":%" PRIu64 ",\"threads\":%u,\"sync_num\":%" PRIu64
           ",\"segment_bytes\":%" PRIu64 ",\"seed\":%" PRIu64 ",\"compression\":\"%s\""
           ",\"compressible\":%.3f,\"compress_min_bytes\":%zu,\"db\":",
           sync_name(c->sync), c->key_size, c->value_size, c->num, c->reads,
           c->threads, c->sync_num, c->segment_bytes, c->seed,
           c->compression == KV_COMPRESS_LZ4 ? "lz4" : "none", c->compressible,
           f->compress_min);
    jsonw_cstring(stdout, b->dir);
    printf("}\n");
}

static void print_header(struct bench *b)
{
    struct facts f;
    facts_gather(b, &f);
    if (b->cfg.json)
        header_json(b, &f);
    else
        header_text(b, &f);
    fflush(stdout);
}

/* Stored over raw value bytes written during the run (1 when none). */
static double value_ratio(const struct result *r)
{
    uint64_t raw = r->after.value_bytes_raw - r->before.value_bytes_raw;
    uint64_t stored = r->after.value_bytes_stored - r->before.value_bytes_stored;
    return raw ? (double)stored / (double)raw : 1;
}

/* Percentage of the run's puts whose value was stored compressed. */
static double value_share(const struct result *r)
{
    uint64_t puts = r->after.puts - r->before.puts;
    uint64_t z = r->after.values_compressed - r->before.values_compressed;
    return puts ? 100.0 * (double)z / (double)puts : 0;
}

/* Writes per group commit and per fdatasync during the run (0 when none). */
static void write_ratios(const struct result *r, double *per_group, double *per_sync)
{
    uint64_t writes = (r->after.puts - r->before.puts) +
                      (r->after.deletes - r->before.deletes);
    uint64_t groups = r->after.wal_groups - r->before.wal_groups;
    uint64_t syncs = r->after.wal_syncs - r->before.wal_syncs;
    *per_group = groups ? (double)writes / (double)groups : 0;
    *per_sync = syncs ? (double)writes / (double)syncs : 0;
}

static double space_amp(const kv_stats *st)
{
    return st->live_bytes ? (double)st->disk_bytes / (double)st->live_bytes : 0;
}

static double index_per_key(const kv_stats *st)
{
    return st->keys ? (double)st->index_bytes / (double)st->keys : 0;
}

/* The notes of readonly and readwhileloading after "found": the refreshes, the
 * writer process, the ratio to the last readonly. */
static void follow_notes(const struct result *r, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, ", %" PRIu64 " refreshes (p50 %.0f us, p99 %.0f "
                                "us, %.3f s in all), max reader_lag %" PRIu64, r->rhist.count,
                                hist_pct_us(&r->rhist, 50), hist_pct_us(&r->rhist, 99),
                                r->rhist.sum / 1e9, r->max_lag);
    if (r->writer_secs > 0 && n < size)
        n += (size_t)snprintf(out + n, size - n, ", writer process %.0f ops/s",
                              (double)r->writer_ops / r->writer_secs);
    if (r->baseline_ops_s > 0 && r->secs > 0 && r->cpu_secs > 0 && n < size)
        snprintf(out + n, size - n, ", %.2fx readonly (by CPU per read %.2fx)",
                 (double)r->ops / r->secs / r->baseline_ops_s,
                 r->baseline_cpu_op / (r->cpu_secs / (double)r->ops));
}

/* The notes column of a text line: the figures of the benchmark's kind. */
static void notes_text(const struct result *r, char *out, size_t size)
{
    double per_group, per_sync;
    size_t n = 0;
    out[0] = '\0';
    if (r->prefilled)
        n += (size_t)snprintf(out, size, "(filled %" PRIu64 " keys first) ",
                              r->prefilled);
    if ((r->kind == RES_FILL || r->kind == RES_READ || r->kind == RES_FOLLOW) && r->ops > 0)
        n += (size_t)snprintf(out + n, size - n, "cpu %.2f us/op, ",
                              r->cpu_secs * 1e6 / (double)r->ops);
    if (r->kind == RES_FILL) {
        write_ratios(r, &per_group, &per_sync);
        n += (size_t)snprintf(out + n, size - n, "keys %" PRIu64 ", index %.1f B/key, "
                              "disk %.1f MB, wal_groups %" PRIu64 " (%.2f writes/group)",
                              r->after.keys, index_per_key(&r->after),
                              (double)r->after.disk_bytes / MIB,
                              r->after.wal_groups - r->before.wal_groups, per_group);
        if (per_sync > 0 && n < size)
            n += (size_t)snprintf(out + n, size - n, ", wal_syncs %" PRIu64
                                  " (%.2f writes/sync)",
                                  r->after.wal_syncs - r->before.wal_syncs, per_sync);
        if (r->after.compactions > r->before.compactions && n < size)
            n += (size_t)snprintf(out + n, size - n, ", %" PRIu64 " compactions during it",
                                  r->after.compactions - r->before.compactions);
        if (r->after.compression == KV_COMPRESS_LZ4 && n < size)
            snprintf(out + n, size - n, ", values stored/raw %.3f (%.1f%% compressed)",
                     value_ratio(r), value_share(r));
    } else if (r->kind == RES_READ || r->kind == RES_FOLLOW) {
        n += (size_t)snprintf(out + n, size - n, "found %" PRIu64 " of %" PRIu64,
                              r->found, r->ops);
        if ((r->missing || r->wrong) && n < size)
            n += (size_t)snprintf(out + n, size - n, ", MISSING %" PRIu64 ", WRONG %" PRIu64,
                                  r->missing, r->wrong);
        if (r->kind == RES_FOLLOW && n < size)
            follow_notes(r, out + n, size - n);
    } else if (r->kind == RES_REOPEN) {
        snprintf(out + n, size - n, "open %.0f us (recovery %" PRIu64 " us, %" PRIu64
                 " records, %" PRIu64 " replayed, %" PRIu64 " B cut), close %.0f us, "
                 "keys %" PRIu64, r->open_us, r->after.recovery_us,
                 r->after.recovery_records, r->after.recovery_wal_replayed,
                 r->after.recovery_cut_bytes, r->close_us, r->after.keys);
    } else if (r->kind == RES_REFRESH) {
        snprintf(out + n, size - n, "%" PRIu64 " writes before each, mean reader_lag %.0f, "
                 "segments %" PRIu64 " -> %" PRIu64 ", %" PRIu64 " compactions during it, "
                 "reader keys %" PRIu64, r->refresh_writes,
                 r->ops ? (double)r->lag_sum / (double)r->ops : 0, r->before.segments,
                 r->after.segments, r->after.compactions - r->before.compactions,
                 r->reader.keys);
    } else if (r->kind == RES_OPEN) {
        snprintf(out + n, size - n, "read-only open: recovery %" PRIu64 " us, %" PRIu64
                 " records, %" PRIu64 " segments from hints, keys %" PRIu64,
                 r->reader.recovery_us, r->reader.recovery_records, r->reader.recovery_hints,
                 r->reader.keys);
    } else if (r->kind == RES_COMPACT) {
        snprintf(out + n, size - n, "disk %.1f -> %.1f MB, space amp %.3f (disk/live), "
                 "%" PRIu64 " passes, %" PRIu64 " records dropped, keys %" PRIu64,
                 (double)r->before.disk_bytes / MIB, (double)r->after.disk_bytes / MIB,
                 space_amp(&r->after), r->after.compactions - r->before.compactions,
                 r->after.compact_records_dropped - r->before.compact_records_dropped,
                 r->after.keys);
    }
}

/* The latency histogram as text, db_bench style, in microseconds. */
static void histogram_text(const struct hist *h)
{
    unsigned first, last;
    uint64_t cum = 0;
    printf("  Microseconds per op: count %" PRIu64 "  mean %.3f  stddev %.3f  min %.3f"
           "  max %.3f\n", h->count, hist_mean_us(h), hist_stddev_us(h),
           h->count ? (double)h->min / 1000.0 : 0, (double)h->max / 1000.0);
    printf("  Percentiles: p50 %.3f  p75 %.3f  p99 %.3f  p99.9 %.3f  p99.99 %.3f\n",
           hist_pct_us(h, 50), hist_pct_us(h, 75), hist_pct_us(h, 99),
           hist_pct_us(h, 99.9), hist_pct_us(h, 99.99));
    for (unsigned r = 0; h->count && hist_row(r, &first, &last); r++) {
        uint64_t n = hist_row_count(h, first, last);
        double lo, hi, w;
        if (n == 0)
            continue;
        cum += n;
        hist_bounds(first, &lo, &w);
        hist_bounds(last, &hi, &w);
        double pct = 100.0 * (double)n / (double)h->count;
        printf("  [ %11.3f, %11.3f ) %10" PRIu64 " %8.3f%% %8.3f%% ", lo / 1000.0,
               (hi + w) / 1000.0, n, pct, 100.0 * (double)cum / (double)h->count);
        for (int m = (int)(pct / 5.0 + 0.5); m > 0; m--)
            putchar('#');
        putchar('\n');
    }
}

/* --during's figures, appended to the notes of a text line. */
static void during_text(const struct result *r, char *out, size_t size)
{
    int st = r->during_status;
    size_t n = strlen(out);
    if (!r->during_ran || n + 1 >= size)
        return;
    snprintf(out + n, size - n, "%sduring the command (%.2f s, %s %d%s): %" PRIu64 " ops, "
             "p50 %.2f p99 %.2f p99.9 %.2f us; outside it: %" PRIu64 " ops, p50 %.2f "
             "p99 %.2f p99.9 %.2f us", n > 0 ? "; " : "", r->during_secs,
             WIFSIGNALED(st) ? "signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st)
             : WIFEXITED(st) ? WEXITSTATUS(st) : -1, r->during_outlived ? ", outlived the "
             "benchmark" : "", r->during.count, hist_pct_us(&r->during, 50),
             hist_pct_us(&r->during, 99), hist_pct_us(&r->during, 99.9), r->outside.count,
             hist_pct_us(&r->outside, 50), hist_pct_us(&r->outside, 99),
             hist_pct_us(&r->outside, 99.9));
}

static void result_text(const struct bench *b, const struct result *r)
{
    char notes[1024];
    double ops_s = r->secs > 0 ? (double)r->ops / r->secs : 0;
    double mb_s = r->secs > 0 ? (double)r->bytes / MIB / r->secs : 0;
    double p50 = hist_pct_us(&r->hist, 50), p99 = hist_pct_us(&r->hist, 99);
    double p999 = hist_pct_us(&r->hist, 99.9);
    notes_text(r, notes, sizeof notes);
    during_text(r, notes, sizeof notes);
    printf("%-12s %10" PRIu64 " %8.3f %11.0f %8.1f %8.*f %8.*f %8.*f  %s\n", r->name,
           r->ops, r->secs, ops_s, mb_s, p50 < 10000 ? 2 : 0, p50, p99 < 10000 ? 2 : 0,
           p99, p999 < 10000 ? 2 : 0, p999, notes);
    if (b->cfg.histogram)
        histogram_text(&r->hist);
}

/* The kind-specific members of a JSON result line. */
static void extras_json(const struct result *r)
{
    double per_group, per_sync;
    const kv_stats *a = &r->after;
    if (r->kind == RES_FILL) {
        write_ratios(r, &per_group, &per_sync);
        printf(",\"keys\":%" PRIu64 ",\"index_bytes\":%" PRIu64
               ",\"index_bytes_per_key\":%.2f,\"disk_bytes\":%" PRIu64
               ",\"wal_groups\":%" PRIu64 ",\"writes_per_group\":%.3f"
               ",\"wal_syncs\":%" PRIu64 ",\"writes_per_sync\":%.3f"
               ",\"value_bytes_raw\":%" PRIu64 ",\"value_bytes_stored\":%" PRIu64
               ",\"values_compressed\":%" PRIu64, a->keys,
               a->index_bytes, index_per_key(a), a->disk_bytes,
               a->wal_groups - r->before.wal_groups, per_group,
               a->wal_syncs - r->before.wal_syncs, per_sync,
               a->value_bytes_raw - r->before.value_bytes_raw,
               a->value_bytes_stored - r->before.value_bytes_stored,
               a->values_compressed - r->before.values_compressed);
    } else if (r->kind == RES_READ || r->kind == RES_FOLLOW) {
        printf(",\"found\":%" PRIu64 ",\"missing\":%" PRIu64 ",\"wrong\":%" PRIu64,
               r->found, r->missing, r->wrong);
        if (r->kind == RES_FOLLOW)
            printf(",\"refreshes\":%" PRIu64 ",\"refresh_p50_us\":%.3f,\"refresh_p99_us\":"
                   "%.3f,\"refresh_seconds\":%.6f,\"max_reader_lag\":%" PRIu64
                   ",\"writer_ops\":%" PRIu64
                   ",\"writer_seconds\":%.6f,\"readonly_ops_per_sec\":%.1f"
                   ",\"readonly_cpu_us_per_op\":%.4f", r->rhist.count,
                   hist_pct_us(&r->rhist, 50), hist_pct_us(&r->rhist, 99), r->rhist.sum / 1e9,
                   r->max_lag, r->writer_ops, r->writer_secs, r->baseline_ops_s,
                   r->baseline_cpu_op * 1e6);
    } else if (r->kind == RES_REFRESH) {
        printf(",\"refresh_writes\":%" PRIu64 ",\"mean_reader_lag\":%.1f,\"segments_before\":"
               "%" PRIu64 ",\"segments\":%" PRIu64 ",\"compactions\":%" PRIu64 ",\"keys\":%"
               PRIu64, r->refresh_writes, r->ops ? (double)r->lag_sum / (double)r->ops : 0,
               r->before.segments, a->segments, a->compactions - r->before.compactions,
               r->reader.keys);
    } else if (r->kind == RES_OPEN) {
        printf(",\"recovery_us\":%" PRIu64 ",\"recovery_records\":%" PRIu64
               ",\"recovery_hints\":%" PRIu64 ",\"keys\":%" PRIu64, r->reader.recovery_us,
               r->reader.recovery_records, r->reader.recovery_hints, r->reader.keys);
    } else if (r->kind == RES_REOPEN) {
        printf(",\"open_us\":%.1f,\"close_us\":%.1f,\"recovery_us\":%" PRIu64
               ",\"recovery_records\":%" PRIu64 ",\"recovery_wal_replayed\":%" PRIu64
               ",\"recovery_cut_bytes\":%" PRIu64 ",\"keys\":%" PRIu64 ",\"disk_bytes\":%"
               PRIu64, r->open_us, r->close_us, a->recovery_us, a->recovery_records,
               a->recovery_wal_replayed, a->recovery_cut_bytes, a->keys, a->disk_bytes);
    } else if (r->kind == RES_COMPACT) {
        printf(",\"disk_bytes_before\":%" PRIu64 ",\"disk_bytes\":%" PRIu64
               ",\"live_bytes\":%" PRIu64 ",\"space_amp\":%.4f,\"passes\":%" PRIu64
               ",\"records_dropped\":%" PRIu64 ",\"keys\":%" PRIu64, r->before.disk_bytes,
               a->disk_bytes, a->live_bytes, space_amp(a), a->compactions - r->before.compactions,
               a->compact_records_dropped - r->before.compact_records_dropped, a->keys);
    }
    if (r->kind == RES_FILL)
        printf(",\"compactions\":%" PRIu64, a->compactions - r->before.compactions);
}

static void histogram_json(const struct hist *h)
{
    unsigned first, last;
    const char *sep = "";
    printf(",\"histogram\":[");
    for (unsigned r = 0; h->count && hist_row(r, &first, &last); r++) {
        uint64_t n = hist_row_count(h, first, last);
        double lo, hi, w;
        if (n == 0)
            continue;
        hist_bounds(first, &lo, &w);
        hist_bounds(last, &hi, &w);
        printf("%s{\"lo_us\":%.3f,\"hi_us\":%.3f,\"count\":%" PRIu64 "}", sep,
               lo / 1000.0, (hi + w) / 1000.0, n);
        sep = ",";
    }
    printf("]");
}

static void result_json(const struct bench *b, const struct result *r)
{
    const struct hist *h = &r->hist;
    double ops_s = r->secs > 0 ? (double)r->ops / r->secs : 0;
    double mb_s = r->secs > 0 ? (double)r->bytes / MIB / r->secs : 0;
    printf("{\"type\":\"result\",\"benchmark\":\"%s\",\"ops\":%" PRIu64 ",\"threads\":%u,"
           "\"seconds\":%.6f,\"ops_per_sec\":%.1f,\"mb_per_sec\":%.3f,\"bytes\":%" PRIu64
           ",\"p50_us\":%.3f,\"p99_us\":%.3f,\"p999_us\":%.3f,\"mean_us\":%.3f,"
           "\"min_us\":%.3f,\"max_us\":%.3f,\"prefilled\":%" PRIu64
           ",\"cpu_seconds\":%.6f", r->name, r->ops,
           r->threads, r->secs, ops_s, mb_s, r->bytes, hist_pct_us(h, 50),
           hist_pct_us(h, 99), hist_pct_us(h, 99.9), hist_mean_us(h),
           h->count ? (double)h->min / 1000.0 : 0, (double)h->max / 1000.0,
           r->prefilled, r->cpu_secs);
    extras_json(r);
    if (r->during_ran) {
        int st = r->during_status;
        printf(",\"during\":{\"seconds\":%.6f,\"exit\":%d,\"signal\":%d,\"outlived\":%d,"
               "\"ops\":%" PRIu64 ",\"p50_us\":%.3f,\"p99_us\":%.3f,\"p999_us\":%.3f},"
               "\"outside\":{\"ops\":%" PRIu64 ",\"p50_us\":%.3f,\"p99_us\":%.3f,"
               "\"p999_us\":%.3f}", r->during_secs, WIFEXITED(st) ? WEXITSTATUS(st) : -1,
               WIFSIGNALED(st) ? WTERMSIG(st) : 0, r->during_outlived, r->during.count,
               hist_pct_us(&r->during, 50), hist_pct_us(&r->during, 99),
               hist_pct_us(&r->during, 99.9), r->outside.count, hist_pct_us(&r->outside, 50),
               hist_pct_us(&r->outside, 99), hist_pct_us(&r->outside, 99.9));
    }
    if (b->cfg.histogram)
        histogram_json(h);
    printf("}\n");
}

/* ---------------------------------------------------------------------------------
 * 7. Benchmarks
 *
 * Each fills a result; main prints it. The store's state between benchmarks is
 * b->have: the keys 0..have-1 are there, each with value_of(key).
 * ------------------------------------------------------------------------------ */
static void result_init(struct result *r, const char *name)
{
    memset(r, 0, sizeof *r);
    r->name = name;
    hist_init(&r->hist);
    hist_init(&r->rhist);
    hist_init(&r->during);
    hist_init(&r->outside);
    r->first_bad = UINT64_MAX;
}

/* Makes sure the store holds the --num keys, filling a fresh one (untimed, under the
 * --sync mode) when it does not: at the start, or after fillsync. */
static void need_full(struct bench *b, struct result *r)
{
    if (b->have >= b->cfg.num) {
        store_mode(b, r->name, b->cfg.sync);
        return;
    }
    struct result *fill = malloc(sizeof *fill);
    if (fill == NULL)
        die_sys(b, "%s: out of memory", r->name);
    result_init(fill, r->name);
    store_fresh(b, r->name, b->cfg.sync);
    int during = b->during_now; /* --during is for the timed part only */
    b->during_now = 0;
    run_ops(b, fill, op_fill_seq, b->cfg.num, 1, 0);
    b->during_now = during;
    free(fill);
    b->have = b->cfg.num;
    r->prefilled = b->cfg.num;
}

static void bench_fillseq(struct bench *b, struct result *r)
{
    store_fresh(b, r->name, b->cfg.sync);
    run_ops(b, r, op_fill_seq, b->cfg.num, 1, 0);
    b->have = b->cfg.num;
    r->kind = RES_FILL;
}

static void bench_fillrandom(struct bench *b, struct result *r)
{
    store_fresh(b, r->name, b->cfg.sync);
    run_ops(b, r, op_fill_perm, b->cfg.num, b->cfg.threads, b->cfg.num);
    b->have = b->cfg.num;
    r->kind = RES_FILL;
}

static void bench_overwrite(struct bench *b, struct result *r)
{
    need_full(b, r);
    run_ops(b, r, op_overwrite, b->cfg.num, b->cfg.threads, 0);
    r->kind = RES_FILL;
}

/* Says what a read benchmark got wrong; the run then exits 1. */
static void report_bad(struct bench *b, const struct result *r)
{
    char key[32];
    if (r->missing == 0 && r->wrong == 0)
        return;
    snprintf(key, sizeof key, "%" PRIu64, r->first_bad);
    fprintf(stderr, "kvbench: %s: %" PRIu64 " keys missing, %" PRIu64 " values wrong "
            "(first at key number %s)\n", r->name, r->missing, r->wrong, key);
    b->failed = 1;
}

static void bench_readrandom(struct bench *b, struct result *r)
{
    need_full(b, r);
    run_ops(b, r, op_read, b->cfg.reads, b->cfg.threads, 0);
    r->kind = RES_READ;
    report_bad(b, r);
}

static void bench_readmissing(struct bench *b, struct result *r)
{
    need_full(b, r);
    run_ops(b, r, op_read_missing, b->cfg.reads, b->cfg.threads, 0);
    r->kind = RES_READ;
    report_bad(b, r);
}

static void bench_fillsync(struct bench *b, struct result *r)
{
    store_fresh(b, r->name, KV_SYNC_ALWAYS);
    run_ops(b, r, op_fill_perm, b->cfg.sync_num, b->cfg.threads, b->cfg.sync_num);
    b->have = b->cfg.sync_num;
    r->kind = RES_FILL;
}

/* Removes the hint files of the closed store (reopen-nohints). */
static void remove_hints(struct bench *b)
{
    DIR *d = opendir(b->dir);
    struct dirent *e;
    if (d == NULL)
        die_sys(b, "%s: %s", b->dir, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        char path[PATH_MAX + 256];
        if (n > 5 && strcmp(e->d_name + n - 5, ".hint") == 0) {
            snprintf(path, sizeof path, "%s/%s", b->dir, e->d_name);
            if (unlink(path) != 0)
                die_sys(b, "%s: %s", path, strerror(errno));
        }
    }
    closedir(d);
}

/* Writes dirty pages back and drops the page cache, so the next open reads the disk. */
static void drop_caches(struct bench *b)
{
    sync();
    FILE *f = fopen("/proc/sys/vm/drop_caches", "w");
    if (f == NULL || fputs("3\n", f) < 0 || fclose(f) != 0)
        die_sys(b, "--drop-caches: /proc/sys/vm/drop_caches: %s (root is needed)", strerror(errno));
}

/* Closes and reopens the store, timing both; recovery must find every key.
 * reopen-nohints deletes the hint files in between, so every segment is scanned. */
static void bench_reopen(struct bench *b, struct result *r)
{
    need_full(b, r);
    check(b, r->name, kv_stat(b->db, &r->before));
    uint64_t t0 = now_ns();
    store_close(b, r->name);
    if (strcmp(r->name, "reopen-nohints") == 0)
        remove_hints(b);
    if (b->cfg.drop_caches)
        drop_caches(b);
    uint64_t t1 = now_ns();
    store_open(b, r->name, b->db_sync, 0);
    uint64_t t2 = now_ns();
    check(b, r->name, kv_stat(b->db, &r->after));
    r->kind = RES_REOPEN;
    r->ops = 1;
    r->threads = 1;
    r->secs = (double)(t2 - t1) / 1e9;
    r->close_us = (double)(t1 - t0) / 1e3;
    r->open_us = (double)(t2 - t1) / 1e3;
    r->bytes = r->after.disk_bytes;
    hist_add(&r->hist, t2 - t1);
    if (r->after.keys != b->have) {
        fprintf(stderr, "kvbench: %s: the store holds %" PRIu64 " keys after reopening, "
                "expected %" PRIu64 "\n", r->name, r->after.keys, b->have);
        b->failed = 1;
    }
}

/* kv_compact on the store as the previous benchmarks left it. */
static void bench_compact(struct bench *b, struct result *r)
{
    need_full(b, r);
    check(b, r->name, kv_stat(b->db, &r->before));
    uint64_t t0 = now_ns();
    check(b, r->name, kv_compact(b->db));
    uint64_t t1 = now_ns();
    check(b, r->name, kv_stat(b->db, &r->after));
    r->kind = RES_COMPACT;
    r->ops = 1;
    r->threads = 1;
    r->secs = (double)(t1 - t0) / 1e9;
    r->bytes = r->after.compact_bytes_read - r->before.compact_bytes_read;
    hist_add(&r->hist, t1 - t0);
}

/* ---- the reader benchmarks ---------------------------------------------------------- */

/* Opens the store read-only in this process. */
static kv_db *reader_open(struct bench *b, const char *name)
{
    kv_options o;
    kv_db *db = NULL;
    kv_options_init(&o);
    o.read_only = 1;
    o.create = 0;
    o.io = b->cfg.io;
    check(b, name, kv_open(b->dir, &o, &db));
    return db;
}

/* The writer process of readwhileloading. */
struct loader {
    pid_t pid;
    int stop_fd;               /* write end: closing it stops the writer */
    int res_fd;                /* read end: "r" once open, then a loader_result */
};

struct loader_result {
    int rc;                    /* KV_OK, or the failing call's status */
    char msg[512];             /* its kv_errmsg */
    uint64_t ops;              /* writes done */
    double secs;               /* from the first to the last */
};

/* The writer child: opens the store as the writer and overwrites random keys of the
 * full store with the values they have, as fast as it can, until the parent closes
 * the pipe. Never returns. */
__attribute__((noreturn))
static void loader_main(struct bench *b, int stop_fd, int res_fd)
{
    struct loader_result lr;
    kv_options o;
    kv_db *db = NULL;
    uint64_t rng = b->cfg.seed ^ 0x10adull;
    unsigned char *key = malloc(b->cfg.key_size);
    char c;
    memset(&lr, 0, sizeof lr);
    store_options(b, &o, b->cfg.sync, 0);
    lr.rc = key == NULL ? KV_ENOMEM : fcntl(stop_fd, F_SETFL, O_NONBLOCK) != 0 ? KV_EIO
                                     : kv_open(b->dir, &o, &db);
    if (lr.rc == KV_OK && write(res_fd, "r", 1) == 1) {
        uint64_t t0 = now_ns();
        while (lr.rc == KV_OK && read(stop_fd, &c, 1) < 0 && errno == EAGAIN) {
            for (int j = 0; j < 256 && lr.rc == KV_OK; j++, lr.ops++) {
                uint64_t k = splitmix64(&rng) % b->have;
                key_format(key, b->cfg.key_size, k);
                lr.rc = kv_put(db, key, b->cfg.key_size, value_of(b, k), b->cfg.value_size);
            }
        }
        lr.secs = (double)(now_ns() - t0) / 1e9;
    }
    if (lr.rc != KV_OK)
        snprintf(lr.msg, sizeof lr.msg, "the writer process: %s", kv_errmsg());
    if (db != NULL) {
        int rc = kv_close(db);
        if (lr.rc == KV_OK && rc != KV_OK) {
            lr.rc = rc;
            snprintf(lr.msg, sizeof lr.msg, "the writer process: %s", kv_errmsg());
        }
    }
    ssize_t w = write(res_fd, &lr, sizeof lr);
    _exit(w == (ssize_t)sizeof lr && lr.rc == KV_OK ? 0 : 1);
}

/* Reads n bytes from fd (restarting after signals); returns the bytes read. */
static size_t read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* Closes this process's writer handle and forks the writer process; returns once it
 * has opened the store. */
static void loader_start(struct bench *b, const char *name, struct loader *l)
{
    int stop[2], res[2];
    char c;
    store_close(b, name);
    if (pipe(stop) != 0 || pipe(res) != 0)
        die_sys(b, "%s: pipe: %s", name, strerror(errno));
    fflush(NULL);
    l->pid = fork();
    if (l->pid < 0)
        die_sys(b, "%s: fork: %s", name, strerror(errno));
    if (l->pid == 0) {
        close(stop[1]);
        close(res[0]);
        loader_main(b, stop[0], res[1]);
    }
    close(stop[0]);
    close(res[1]);
    l->stop_fd = stop[1];
    l->res_fd = res[0];
    if (read_full(l->res_fd, &c, 1) != 1) {
        struct loader_result lr;
        memset(&lr, 0, sizeof lr);
        read_full(l->res_fd, &lr, sizeof lr);
        waitpid(l->pid, NULL, 0);
        die_kv(b, name, lr.rc != KV_OK ? lr.rc : KV_EIO,
               lr.msg[0] ? lr.msg : "the writer process did not start");
    }
}

/* Stops the writer process, takes its figures, and opens this process's writer
 * handle again. */
static void loader_stop(struct bench *b, const char *name, struct loader *l, struct result *r)
{
    struct loader_result lr;
    int st = 0;
    memset(&lr, 0, sizeof lr);
    close(l->stop_fd);
    size_t got = read_full(l->res_fd, &lr, sizeof lr);
    close(l->res_fd);
    while (waitpid(l->pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (got != sizeof lr || lr.rc != KV_OK)
        die_kv(b, name, lr.rc != KV_OK ? lr.rc : KV_EIO,
               lr.msg[0] ? lr.msg : "the writer process ended without its figures");
    r->writer_ops = lr.ops;
    r->writer_secs = lr.secs;
    store_open(b, name, b->db_sync, 0);
}

/* readonly and readwhileloading: --reads random reads, checked, through a read-only
 * handle of this process that the first thread refreshes every --refresh-ops of its
 * reads (split over the threads: one refresh per about --refresh-ops reads). The
 * writer handle is closed meanwhile; with loading, a writer process overwrites keys
 * at full speed. */
static void bench_read_ro(struct bench *b, struct result *r, int loading)
{
    struct loader l;
    need_full(b, r);
    if (loading)
        loader_start(b, r->name, &l);
    else
        store_close(b, r->name);
    kv_db *ro = reader_open(b, r->name);
    uint64_t every = b->cfg.refresh_ops / b->cfg.threads;
    if (b->cfg.refresh_ops != 0 && every == 0)
        every = 1;
    run_ops_db(b, ro, r, op_read_follow, b->cfg.reads, b->cfg.threads, 0, every);
    check(b, r->name, kv_close(ro));
    if (loading)
        loader_stop(b, r->name, &l, r);
    else
        store_open(b, r->name, b->db_sync, 0);
    r->kind = RES_FOLLOW;
    report_bad(b, r);
    if (!loading && r->secs > 0 && r->ops > 0) {
        b->readonly_ops_s = (double)r->ops / r->secs;
        b->readonly_cpu_op = r->cpu_secs / (double)r->ops;
    }
    if (loading) {
        r->baseline_ops_s = b->readonly_ops_s;
        r->baseline_cpu_op = b->readonly_cpu_op;
    }
}

static void bench_readonly(struct bench *b, struct result *r)
{
    bench_read_ro(b, r, 0);
}

static void bench_readwhileloading(struct bench *b, struct result *r)
{
    bench_read_ro(b, r, 1);
}

/* Checks that the reader sees what the writer of this process wrote: the same newest
 * sequence number and key count, and 1000 random keys with their values. */
static void refresh_verify(struct bench *b, struct result *r, kv_db *ro)
{
    kv_stats ws;
    uint64_t rng = b->cfg.seed ^ 0xc4ec, bad = 0;
    unsigned char *key = malloc(b->cfg.key_size);
    check(b, r->name, kv_stat(b->db, &ws));
    check(b, r->name, kv_stat(ro, &r->reader));
    for (int i = 0; key != NULL && i < 1000; i++) {
        uint64_t k = splitmix64(&rng) % b->have;
        void *v = NULL;
        size_t vl = 0;
        key_format(key, b->cfg.key_size, k);
        int rc = kv_get(ro, key, b->cfg.key_size, &v, &vl);
        if (rc != KV_OK && rc != KV_NOTFOUND)
            check(b, r->name, rc);
        bad += rc != KV_OK || vl != b->cfg.value_size || memcmp(v, value_of(b, k), vl) != 0;
        kv_free(v);
    }
    free(key);
    if (bad != 0 || r->reader.reader_seq != ws.next_seq - 1 || r->reader.keys != ws.keys) {
        fprintf(stderr, "kvbench: %s: the reader is at sequence %" PRIu64 " with %" PRIu64
                " keys, the writer at %" PRIu64 " with %" PRIu64 "; %" PRIu64 " of 1000 "
                "values wrong or missing\n", r->name, r->reader.reader_seq, r->reader.keys,
                ws.next_seq - 1, ws.keys, bad);
        b->failed = 1;
    }
}

/* refresh: a read-only handle in this process; --refreshes times, the writer handle
 * writes --refresh-writes random keys (untimed), then kv_refresh is timed. */
static void bench_refresh(struct bench *b, struct result *r)
{
    uint64_t rng = b->cfg.seed ^ 0x7e4eull;
    unsigned char *key = malloc(b->cfg.key_size);
    need_full(b, r);
    if (key == NULL)
        die_sys(b, "%s: out of memory", r->name);
    kv_db *ro = reader_open(b, r->name);
    check(b, r->name, kv_stat(b->db, &r->before));
    for (uint64_t i = 0; i < b->cfg.refreshes; i++) {
        kv_stats st;
        for (uint64_t j = 0; j < b->cfg.refresh_writes; j++) {
            uint64_t k = splitmix64(&rng) % b->have;
            key_format(key, b->cfg.key_size, k);
            check(b, r->name, kv_put(b->db, key, b->cfg.key_size, value_of(b, k),
                                     b->cfg.value_size));
        }
        uint64_t t0 = now_ns();
        check(b, r->name, kv_refresh(ro));
        uint64_t t1 = now_ns();
        hist_add(&r->hist, t1 - t0);
        r->secs += (double)(t1 - t0) / 1e9;
        check(b, r->name, kv_stat(ro, &st));
        r->lag_sum += st.reader_lag;
    }
    free(key);
    check(b, r->name, kv_stat(b->db, &r->after));
    refresh_verify(b, r, ro);
    check(b, r->name, kv_close(ro));
    r->kind = RES_REFRESH;
    r->ops = b->cfg.refreshes;
    r->threads = 1;
    r->refresh_writes = b->cfg.refresh_writes;
    r->bytes = b->cfg.refreshes * b->cfg.refresh_writes * (b->cfg.key_size + b->cfg.value_size);
}

/* openreader: a read-only kv_open of the full store, beside this process's writer
 * handle (open and quiet), 5 times; every key must be there. */
static void bench_openreader(struct bench *b, struct result *r)
{
    need_full(b, r);
    for (int i = 0; i < 5; i++) {
        if (b->cfg.drop_caches)
            drop_caches(b);
        uint64_t t0 = now_ns();
        kv_db *ro = reader_open(b, r->name);
        uint64_t t1 = now_ns();
        hist_add(&r->hist, t1 - t0);
        r->secs += (double)(t1 - t0) / 1e9;
        check(b, r->name, kv_stat(ro, &r->reader));
        check(b, r->name, kv_close(ro));
        if (r->reader.keys != b->have) {
            fprintf(stderr, "kvbench: %s: the reader holds %" PRIu64 " keys, expected %"
                    PRIu64 "\n", r->name, r->reader.keys, b->have);
            b->failed = 1;
        }
    }
    r->kind = RES_OPEN;
    r->ops = 5;
    r->threads = 1;
    r->bytes = r->reader.disk_bytes * 5;
}

typedef void (*bench_fn)(struct bench *b, struct result *r);

static const struct {
    const char *name;
    bench_fn run;
} benchmarks[] = {
    { "fillseq", bench_fillseq },
    { "fillrandom", bench_fillrandom },
    { "overwrite", bench_overwrite },
    { "readrandom", bench_readrandom },
    { "readmissing", bench_readmissing },
    { "fillsync", bench_fillsync },
    { "reopen", bench_reopen },
    { "reopen-nohints", bench_reopen },
    { "compact", bench_compact },
    { "readonly", bench_readonly },
    { "readwhileloading", bench_readwhileloading },
    { "refresh", bench_refresh },
    { "openreader", bench_openreader },
};

static bench_fn bench_find(const char *name)
{
    for (size_t i = 0; i < sizeof benchmarks / sizeof benchmarks[0]; i++)
        if (strcmp(benchmarks[i].name, name) == 0)
            return benchmarks[i].run;
    return NULL;
}

/* ---------------------------------------------------------------------------------
 * 8. Command line and main
 * ------------------------------------------------------------------------------ */

/* Prints a usage error and the usage text on stderr, exits 2. */
__attribute__((noreturn))
static void usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "kvbench: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    fputs(usage_text, stderr);
    exit(EXIT_USAGE);
}

/* Parses a decimal number in [min, max] for option opt; with sizes, a K, M or G
 * suffix multiplies by 1024, 1024^2, 1024^3. */
static uint64_t parse_num(const char *opt, const char *s, uint64_t min, uint64_t max,
                          int sizes)
{
    static const char suffixes[] = "KkMmGg";
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned shift = 0;
    if (sizes && *end != '\0' && end[1] == '\0') {
        const char *suffix = strchr(suffixes, *end);
        shift = suffix ? 10u * (unsigned)((suffix - suffixes) / 2 + 1) : 0;
        end += suffix != NULL;
    }
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' ||
        (v << shift >> shift) != v)
        usage_error("not a number", s);
    v <<= shift;
    if (v < min || v > max) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s must be in %" PRIu64 "..%" PRIu64, opt, min, max);
        usage_error(msg, s);
    }
    return v;
}

/* Parses a ratio in (0, 1] for option opt. */
static double parse_ratio(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0')
        usage_error("not a number", s);
    if (!(v > 0.0 && v <= 1.0)) {
        char msg[64];
        snprintf(msg, sizeof msg, "%s must be in (0, 1]", opt);
        usage_error(msg, s);
    }
    return v;
}

static int parse_mode(const char *opt, const char *s, const char *const *names)
{
    for (int i = 0; names[i] != NULL; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    char msg[64];
    snprintf(msg, sizeof msg, "unknown %s mode", opt);
    usage_error(msg, s);
}

static void config_defaults(struct config *c)
{
    memset(c, 0, sizeof *c);
    c->benchmarks = DEFAULT_BENCHMARKS;
    c->num = 1000000;
    c->threads = 1;
    c->key_size = 16;
    c->value_size = 100;
    c->sync = KV_SYNC_NONE;
    c->io = KV_IO_AUTO;
    c->sync_num = 20000;
    c->seed = 301;
    c->auto_compact = -1;
    c->compact_rate = UINT64_MAX;
    c->compression = KV_COMPRESS_NONE;
    c->compressible = 0.5;
    c->compress_min = SIZE_MAX; /* the engine's default */
    c->refresh_ops = 10000;
    c->refreshes = 100;
    c->refresh_writes = 10000;
}

enum {
    OPT_BENCHMARKS = 256, OPT_NUM, OPT_READS, OPT_THREADS, OPT_KEY_SIZE, OPT_VALUE_SIZE,
    OPT_SYNC, OPT_IO, OPT_SEGMENT_BYTES, OPT_DB, OPT_KEEP, OPT_SYNC_NUM, OPT_SEED,
    OPT_HISTOGRAM, OPT_JSON, OPT_AUTO_COMPACT, OPT_COMPACT_RATE, OPT_DROP_CACHES,
    OPT_COMPRESSION, OPT_COMPRESSIBLE, OPT_COMPRESS_MIN, OPT_REFRESH_OPS, OPT_REFRESHES,
    OPT_REFRESH_WRITES, OPT_DURING
};

static const struct option long_options[] = {
    { "benchmarks", required_argument, NULL, OPT_BENCHMARKS },
    { "num", required_argument, NULL, OPT_NUM },
    { "reads", required_argument, NULL, OPT_READS },
    { "threads", required_argument, NULL, OPT_THREADS },
    { "key-size", required_argument, NULL, OPT_KEY_SIZE },
    { "value-size", required_argument, NULL, OPT_VALUE_SIZE },
    { "sync", required_argument, NULL, OPT_SYNC },
    { "io", required_argument, NULL, OPT_IO },
    { "segment-bytes", required_argument, NULL, OPT_SEGMENT_BYTES },
    { "db", required_argument, NULL, OPT_DB },
    { "keep", no_argument, NULL, OPT_KEEP },
    { "sync-num", required_argument, NULL, OPT_SYNC_NUM },
    { "seed", required_argument, NULL, OPT_SEED },
    { "histogram", no_argument, NULL, OPT_HISTOGRAM },
    { "json", no_argument, NULL, OPT_JSON },
    { "auto-compact", required_argument, NULL, OPT_AUTO_COMPACT },
    { "compact-rate", required_argument, NULL, OPT_COMPACT_RATE },
    { "drop-caches", no_argument, NULL, OPT_DROP_CACHES },
    { "compression", required_argument, NULL, OPT_COMPRESSION },
    { "compressible", required_argument, NULL, OPT_COMPRESSIBLE },
    { "compress-min-bytes", required_argument, NULL, OPT_COMPRESS_MIN },
    { "refresh-ops", required_argument, NULL, OPT_REFRESH_OPS },
    { "refreshes", required_argument, NULL, OPT_REFRESHES },
    { "refresh-writes", required_argument, NULL, OPT_REFRESH_WRITES },
    { "during", required_argument, NULL, OPT_DURING },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 }
};

/* Applies one option; returns 0 when it was not one of the valued options. */
static int parse_option(struct config *c, int opt, const char *arg, int *reads_set)
{
    static const char *const syncs[] = { "always", "interval", "none", NULL };
    static const char *const ios[] = { "auto", "uring", "psync", NULL };
    static const char *const compressions[] = { "none", "lz4", NULL };
    switch (opt) {
    case OPT_BENCHMARKS: c->benchmarks = arg; break;
    case OPT_NUM: c->num = parse_num("--num", arg, 1, MAX_NUM, 0); break;
    case OPT_READS:
        c->reads = parse_num("--reads", arg, 0, MAX_NUM, 0);
        *reads_set = 1;
        break;
    case OPT_THREADS:
        c->threads = (unsigned)parse_num("--threads", arg, 1, MAX_THREADS, 0);
        break;
    case OPT_KEY_SIZE:
        c->key_size = parse_num("--key-size", arg, 2, KV_MAX_KEY, 0);
        break;
    case OPT_VALUE_SIZE:
        c->value_size = parse_num("--value-size", arg, 0, KV_MAX_VALUE, 0);
        break;
    case OPT_SYNC: c->sync = parse_mode("--sync", arg, syncs); break;
    case OPT_IO: c->io = parse_mode("--io", arg, ios); break;
    case OPT_SEGMENT_BYTES:
        c->segment_bytes = parse_num("--segment-bytes", arg, 1, UINT64_MAX, 1);
        break;
    case OPT_DB: c->db = arg; break;
    case OPT_KEEP: c->keep = 1; break;
    case OPT_SYNC_NUM: c->sync_num = parse_num("--sync-num", arg, 1, MAX_NUM, 0); break;
    case OPT_SEED: c->seed = parse_num("--seed", arg, 0, UINT64_MAX, 0); break;
    case OPT_HISTOGRAM: c->histogram = 1; break;
    case OPT_JSON: c->json = 1; break;
    case OPT_AUTO_COMPACT: c->auto_compact = (int)parse_num("--auto-compact", arg, 0, 1, 0); break;
    case OPT_DROP_CACHES: c->drop_caches = 1; break;
    case OPT_COMPACT_RATE:
        c->compact_rate = parse_num("--compact-rate", arg, 0, UINT64_MAX - 1, 1);
        break;
    case OPT_COMPRESSION:
        c->compression = parse_mode("--compression", arg, compressions) == 1
                             ? KV_COMPRESS_LZ4 : KV_COMPRESS_NONE;
        break;
    case OPT_COMPRESSIBLE: c->compressible = parse_ratio("--compressible", arg); break;
    case OPT_COMPRESS_MIN:
        c->compress_min = parse_num("--compress-min-bytes", arg, 0, KV_MAX_VALUE, 0);
        break;
    case OPT_REFRESH_OPS: c->refresh_ops = parse_num("--refresh-ops", arg, 0, MAX_NUM, 0); break;
    case OPT_REFRESHES: c->refreshes = parse_num("--refreshes", arg, 1, MAX_NUM, 0); break;
    case OPT_REFRESH_WRITES:
        c->refresh_writes = parse_num("--refresh-writes", arg, 0, MAX_NUM, 0);
        break;
    case OPT_DURING: c->during = arg; break;
    default: return 0;
    }
    return 1;
}

/* Checks the benchmark names and that keys are wide enough: the widest key number
 * plus the '.' that marks readmissing's keys. */
static void config_check(const struct config *c)
{
    char *list = strdup(c->benchmarks), *save = NULL;
    int count = 0;
    if (list == NULL)
        usage_error("out of memory", NULL);
    for (char *name = strtok_r(list, ",", &save); name != NULL;
         name = strtok_r(NULL, ",", &save), count++)
        if (bench_find(name) == NULL)
            usage_error("unknown benchmark", name);
    free(list);
    if (count == 0)
        usage_error("no benchmark in --benchmarks", NULL);
    uint64_t widest = (c->num > c->sync_num ? c->num : c->sync_num) - 1;
    if (c->key_size < digits(widest) + 1u) {
        char msg[96];
        snprintf(msg, sizeof msg, "--key-size must be at least %u for these --num and "
                 "--sync-num", digits(widest) + 1u);
        usage_error(msg, NULL);
    }
}

static void parse_args(int argc, char **argv, struct config *c)
{
    int opt, reads_set = 0;
    config_defaults(c);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":hV", long_options, NULL)) != -1) {
        if (parse_option(c, opt, optarg, &reads_set))
            continue;
        switch (opt) {
        case 'h': fputs(usage_text, stdout); exit(EXIT_DONE);
        case 'V': printf("kvbench %s (libkv %s)\n", KV_VERSION_STRING, kv_version());
                  exit(EXIT_DONE);
        case ':': usage_error("option needs an argument", argv[optind - 1]);
        default: usage_error("unknown option", argv[optind - 1]);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument", argv[optind]);
    if (!reads_set)
        c->reads = c->num;
    config_check(c);
}

/* Runs every benchmark of the list in order, printing each line as it ends. */
static void run_list(struct bench *b)
{
    char *list = strdup(b->cfg.benchmarks), *save = NULL;
    struct result *r = malloc(sizeof *r);
    if (list == NULL || r == NULL)
        die_sys(b, "out of memory");
    for (char *name = strtok_r(list, ",", &save); name != NULL;
         name = strtok_r(NULL, ",", &save)) {
        result_init(r, name);
        b->during_now = save == NULL || *save == '\0'; /* the last of the list */
        bench_find(name)(b, r);
        if (b->cfg.json)
            result_json(b, r);
        else
            result_text(b, r);
        fflush(stdout);
    }
    free(r);
    free(list);
}

int main(int argc, char **argv)
{
    static struct bench b;
    parse_args(argc, argv, &b.cfg);
    b.value_seed = gen_value_seed(b.cfg.seed);
    b.pool = pool_make(b.cfg.value_size + POOL_SPREAD, b.cfg.seed, b.cfg.compressible);
    if (b.pool == NULL)
        die_sys(&b, "out of memory for %zu value bytes", b.cfg.value_size + POOL_SPREAD);
    dir_setup(&b);
    store_fresh(&b, "open", b.cfg.sync);
    print_header(&b);
    run_list(&b);
    store_close(&b, "close");
    dir_finish(&b);
    free(b.pool);
    return b.failed ? EXIT_FAILED : EXIT_DONE;
}
