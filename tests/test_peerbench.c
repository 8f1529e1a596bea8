/*
 * test_peerbench.c — peerbench (bench/peerbench.c), kv beside LevelDB, RocksDB, LMDB
 * and Tkrzw, at a tiny size: every engine built in runs every workload and every
 * value it reads back is right.
 *
 * What is checked:
 *   - --list names all five engines, each with a version or "not built: <why>";
 *     the engines not built are printed (make test installs their packages through
 *     .ci/deps, so there none is missing);
 *   - --json at 1,000 keys (fillsync at 100) over every engine built in and every
 *     workload: exit 0; an engine line per engine with its version and options;
 *     one result line per workload per engine, each with its engine's version,
 *     latency percentiles in order and CPU seconds; readrandom found every key,
 *     readmissing none, no value wrong or missing; crashopen (a process fills and
 *     is killed with SIGKILL, then the store is opened) finds every key; the fills,
 *     overwrite and compact give disk and logical bytes; a peak RSS everywhere;
 *   - peerbench's kv store and kvbench's after the same fillrandom hold the same
 *     keys and values (kv scan of both): the two share bench/gen.h, so the figures
 *     of peerbench's kv line and kvbench's measure the same work;
 *   - the YCSB workloads read as many keys as their mix says (all of C's), every
 *     value right; readwhilewriting's readers find every key and the line carries
 *     the writer's asked and achieved rates;
 *   - --repeat 2: the engine processes interleave (kv, peer, kv, peer), every
 *     result line says its run, and a median line per engine and workload holds
 *     both runs' ops/s and their middle;
 *   - bench/plot.sh turns a tiny run's JSON (with and without medians) into its
 *     three PNG plots and its Markdown table; when gnuplot is absent the test says so on its output,
 *     and the script's refusal without gnuplot (exit 2) is checked either way;
 *   - usage errors (an unknown engine, an unknown workload, a thread count of 0)
 *     exit 2 and say what was wrong.
 */
#include "kvtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef KV_SOURCE_DIR
#error "KV_SOURCE_DIR (the source tree, for bench/plot.sh) is defined by the Makefile"
#endif

#define ENGINES 5
#define WORKLOADS 18   /* peerbench's default list */

static const char *const engine_names[ENGINES] = { "kv", "leveldb", "rocksdb", "lmdb",
                                                   "tkrzw" };
static const char *const workload_names[WORKLOADS] = {
    "fillseq", "fillrandom", "overwrite", "compact", "readrandom", "readrandom:2",
    "readmissing", "readmissing:2", "ycsb-a", "ycsb-b", "ycsb-c", "ycsb-d", "ycsb-f",
    "readwhilewriting:2", "deleterandom", "fillsync", "fillsync:8", "crashopen"
};

/* Which engines --list says are built in (built[i] for engine_names[i]). */
static void engines_built(int *built)
{
    static char out[4096];
    int rc = kvt_runf(out, sizeof out, KVT_STDOUT, "'%s/peerbench' --list", kvt_bin());
    KVT_CHECK_FATAL(rc == 0, "peerbench --list: exit %d: %s", rc, out);
    for (int i = 0; i < ENGINES; i++) {
        built[i] = 0;
        size_t n = strlen(engine_names[i]);
        for (char *line = out, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
            *nl = '\0';
            if (strncmp(line, engine_names[i], n) == 0 && line[n] == ' ')
                built[i] = strstr(line, "not built") == NULL;
            *nl = '\n';
        }
    }
    KVT_CHECK(built[0], "peerbench --list: kv not built in:\n%s", out);
    for (int i = 1; i < ENGINES; i++)
        if (!built[i])
            printf("\n    peerbench: %s not built in (its -dev package was absent)",
                   engine_names[i]);
}

static int index_of(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

static double num(const json_t *o, const char *name)
{
    const json_t *v = json_object_get(o, name);
    return json_is_number(v) ? json_number_value(v) : -1;
}

/* Checks one result line of engine e; counts it in seen. */
static void check_result(const json_t *o, int e, int seen[ENGINES][WORKLOADS],
                         const char *line)
{
    const char *wl = kvt_json_str(o, "benchmark");
    int w = index_of(workload_names, WORKLOADS, wl);
    KVT_CHECK_FATAL(w >= 0, "peerbench: unknown workload in %.300s", line);
    seen[e][w]++;
    long long ops = kvt_json_int(o, "ops");
    KVT_CHECK(kvt_json_str(o, "version")[0] != '\0', "no version: %.300s", line);
    KVT_CHECK(ops > 0 && num(o, "ops_per_sec") > 0 && num(o, "cpu_seconds") >= 0
                  && num(o, "p50_us") <= num(o, "p99_us")
                  && num(o, "p99_us") <= num(o, "p999_us"),
              "figures out of order: %.300s", line);
    KVT_CHECK(kvt_json_int(o, "wrong") == 0 && kvt_json_int(o, "missing") == 0,
              "a value wrong or missing: %.300s", line);
    KVT_CHECK(kvt_json_int(o, "peak_rss_bytes") > 0, "no peak RSS: %.300s", line);
    if (strncmp(wl, "readrandom", 10) == 0)
        KVT_CHECK(kvt_json_int(o, "found") == ops, "a key not found: %.300s", line);
    if (strcmp(wl, "crashopen") == 0)
        KVT_CHECK(kvt_json_int(o, "found") == 1000 && kvt_json_int(o, "prefilled") == 1000,
                  "crashopen: not every key after the kill: %.300s", line);
    if (strncmp(wl, "ycsb-", 5) == 0) {
        /* reads verified: found is the gets (every operation of C, and of F: a read
           or a read-modify-write; about 95% of B's and D's, 50% of A's), none missing */
        long long found = kvt_json_int(o, "found");
        KVT_CHECK(wl[5] == 'c' || wl[5] == 'f' ? found == ops : found > ops / 3 && found < ops,
                  "ycsb: reads not as the mix says: %.300s", line);
    }
    if (strcmp(wl, "readwhilewriting:2") == 0)
        KVT_CHECK(kvt_json_int(o, "found") == ops && kvt_json_int(o, "threads") == 2
                      && kvt_json_int(o, "write_rate") > 0
                      && num(o, "writer_ops_per_sec") >= 0,
                  "readwhilewriting: readers or writer not reported: %.300s", line);
    if (strncmp(wl, "readmissing", 11) == 0)
        KVT_CHECK(kvt_json_int(o, "found") == 0, "a missing key found: %.300s", line);
    if (strncmp(wl, "fill", 4) == 0 || strcmp(wl, "overwrite") == 0
        || strcmp(wl, "compact") == 0)
        KVT_CHECK(kvt_json_int(o, "disk_bytes") > 0 && kvt_json_int(o, "logical_bytes") > 0
                      && num(o, "space_amp") > 0,
                  "no disk and logical bytes: %.300s", line);
    if (strcmp(wl, "fillsync") == 0 || strcmp(wl, "fillsync:8") == 0)
        KVT_CHECK(json_is_true(json_object_get(o, "sync")), "fillsync not sync: %.300s",
                  line);
}

static void test_every_engine_every_workload(void)
{
    static char out[1 << 17];
    int built[ENGINES], seen[ENGINES][WORKLOADS], headers[ENGINES];
    engines_built(built);
    memset(seen, 0, sizeof seen);
    memset(headers, 0, sizeof headers);
    char *dir = kvt_dir_new("peerbench");
    int rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/peerbench' --json --num 1000 "
                      "--sync-num 100 --repeat 1 --dir '%s'", kvt_bin(), dir);
    KVT_CHECK_FATAL(rc == 0, "peerbench: exit %d:\n%s", rc, out);
    for (char *line = out, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        json_t *o = kvt_json_parse(line);
        KVT_CHECK_FATAL(json_is_object(o), "peerbench --json: not one object: %.300s", line);
        int e = index_of(engine_names, ENGINES, kvt_json_str(o, "engine"));
        KVT_CHECK_FATAL(e >= 0 && built[e], "peerbench: engine not asked for: %.300s", line);
        if (strcmp(kvt_json_str(o, "type"), "engine") == 0) {
            headers[e]++;
            KVT_CHECK(kvt_json_str(o, "options_sync")[0] != '\0'
                          && kvt_json_str(o, "options_nosync")[0] != '\0',
                      "engine line without its options: %.300s", line);
        } else {
            check_result(o, e, seen, line);
        }
        json_decref(o);
    }
    for (int e = 0; e < ENGINES; e++) {
        if (!built[e])
            continue;
        KVT_CHECK(headers[e] == 1, "%s: %d engine lines", engine_names[e], headers[e]);
        for (int w = 0; w < WORKLOADS; w++)
            KVT_CHECK(seen[e][w] == 1, "%s %s: %d result lines", engine_names[e],
                      workload_names[w], seen[e][w]);
    }
}

static void test_same_data_as_kvbench(void)
{
    static char a[1 << 16], b[1 << 16];
    char *pdir = kvt_dir_new("peerbench-same"), *kdir = kvt_dir_new("kvbench-same");
    int rc = kvt_runf(a, sizeof a, KVT_BOTH, "'%s/peerbench' --engines kv --workloads "
                      "fillrandom --num 300 --seed 7 --repeat 1 --dir '%s' --keep", kvt_bin(), pdir);
    KVT_CHECK_FATAL(rc == 0, "peerbench: exit %d: %s", rc, a);
    rc = kvt_runf(b, sizeof b, KVT_BOTH, "'%s/kvbench' --benchmarks fillrandom --num 300 "
                  "--seed 7 --db '%s'", kvt_bin(), kdir);
    KVT_CHECK_FATAL(rc == 0, "kvbench: exit %d: %s", rc, b);
    rc = kvt_runf(a, sizeof a, KVT_STDOUT, "'%s/kv' -d '%s/kv' scan", kvt_bin(), pdir);
    KVT_CHECK_FATAL(rc == 0, "kv scan of peerbench's store: exit %d: %s", rc, a);
    rc = kvt_runf(b, sizeof b, KVT_STDOUT, "'%s/kv' -d '%s' scan", kvt_bin(), kdir);
    KVT_CHECK_FATAL(rc == 0, "kv scan of kvbench's store: exit %d: %s", rc, b);
    size_t lines = 0;
    for (const char *p = a; *p != '\0'; p++)
        lines += *p == '\n';
    KVT_CHECK(lines == 300 && strcmp(a, b) == 0,
              "peerbench and kvbench wrote different data (%zu lines):\n%.400s\n---\n%.400s",
              lines, a, b);
}

/* --repeat 2 over kv and a peer (LMDB when built, else kv alone): the runs
 * interleave (kv 1, peer 1, kv 2, peer 2), each result line says its run, and one
 * median line per engine and workload gives the middle of the two runs. */
static void test_repeat_medians(void)
{
    static char out[1 << 16];
    int built[ENGINES];
    engines_built(built);
    const char *engines = built[3] ? "kv,lmdb" : "kv";
    int n_engines = built[3] ? 2 : 1;
    char order[8][16];
    int n_order = 0, medians = 0;
    char *dir = kvt_dir_new("peerbench-repeat");
    int rc = kvt_runf(out, sizeof out, KVT_STDOUT, "'%s/peerbench' --json --engines %s "
                      "--workloads fillseq,ycsb-c --num 200 --repeat 2 --dir '%s'",
                      kvt_bin(), engines, dir);
    KVT_CHECK_FATAL(rc == 0, "peerbench --repeat 2: exit %d:\n%s", rc, out);
    for (char *line = out, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        json_t *o = kvt_json_parse(line);
        KVT_CHECK_FATAL(json_is_object(o), "not one object: %.300s", line);
        const char *type = kvt_json_str(o, "type");
        if (strcmp(type, "engine") == 0 && n_order < 8)
            snprintf(order[n_order++], sizeof order[0], "%s", kvt_json_str(o, "engine"));
        if (strcmp(type, "result") == 0)
            KVT_CHECK(kvt_json_int(o, "repeat") == 2 && kvt_json_int(o, "run") >= 1
                          && kvt_json_int(o, "run") <= 2,
                      "result line without its run: %.300s", line);
        if (strcmp(type, "median") == 0) {
            medians++;
            const json_t *runs = json_object_get(o, "ops_per_sec_runs");
            KVT_CHECK_FATAL(json_is_array(runs) && json_array_size(runs) == 2
                                && kvt_json_int(o, "runs") == 2,
                            "median line without its 2 runs: %.300s", line);
            double a = json_number_value(json_array_get(runs, 0));
            double b = json_number_value(json_array_get(runs, 1));
            double med = num(o, "ops_per_sec");
            KVT_CHECK(med > 0 && med >= (a + b) / 2 * 0.999 && med <= (a + b) / 2 * 1.001,
                      "median of 2 runs is not their middle (%.1f, %.1f): %.300s", a, b,
                      line);
        }
        json_decref(o);
    }
    KVT_CHECK(n_order == 2 * n_engines, "%d engine processes, wanted %d", n_order,
              2 * n_engines);
    for (int i = 0; i < n_order; i++)
        KVT_CHECK(strcmp(order[i], i % n_engines == 0 ? "kv" : "lmdb") == 0,
                  "engine process %d is %s: not interleaved", i, order[i]);
    KVT_CHECK(medians == 2 * n_engines, "%d median lines, wanted %d", medians,
              2 * n_engines);
}

/* A PNG file of more than a header: its 8-byte signature and some size. */
static int is_png(const char *path)
{
    static const unsigned char sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
    unsigned char head[8];
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    int ok = fread(head, 1, sizeof head, f) == sizeof head && memcmp(head, sig, 8) == 0
             && fseek(f, 0, SEEK_END) == 0 && ftell(f) > 1000;
    fclose(f);
    return ok;
}

/* bench/plot.sh on a tiny run's JSON, with medians (--repeat 2) and without: the
 * three plots are PNG files. Without gnuplot on the machine the drawing is skipped,
 * said on the output; the script's own refusal (exit 2, "gnuplot not installed")
 * is checked either way with a PATH that has no gnuplot. */
static void test_plot(void)
{
    static const char *const pngs[] = { "throughput.png", "p99.png", "space.png" };
    static char out[8192];
    char path[4096];
    char *dir = kvt_dir_new("peerbench-plot");
    int rc = kvt_runf(out, sizeof out, KVT_BOTH, "PATH=/nonexistent /bin/sh "
                      "'%s/bench/plot.sh' /dev/null '%s/none'", KV_SOURCE_DIR, dir);
    KVT_CHECK(rc == 2 && strstr(out, "gnuplot not installed") != NULL,
              "plot.sh without gnuplot: exit %d: %s", rc, out);
    rc = kvt_runf(out, sizeof out, KVT_BOTH, "command -v gnuplot");
    if (rc != 0) {
        printf("\n    plot.sh: drawing skipped: gnuplot not installed (bench/deps "
               "installs gnuplot-nox)");
        return;
    }
    for (int repeat = 1; repeat <= 2; repeat++) {
        rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/peerbench' --json --engines kv "
                      "--workloads fillseq,overwrite,ycsb-a --num 200 --repeat %d "
                      "--dir '%s/run%d' > '%s/r%d.jsonl'", kvt_bin(), repeat, dir,
                      repeat, dir, repeat);
        KVT_CHECK_FATAL(rc == 0, "peerbench --repeat %d: exit %d: %s", repeat, rc, out);
        rc = kvt_runf(out, sizeof out, KVT_BOTH, "/bin/sh '%s/bench/plot.sh' "
                      "'%s/r%d.jsonl' '%s/plots%d'", KV_SOURCE_DIR, dir, repeat, dir,
                      repeat);
        KVT_CHECK_FATAL(rc == 0, "plot.sh on --repeat %d: exit %d: %s", repeat, rc, out);
        for (size_t i = 0; i < sizeof pngs / sizeof pngs[0]; i++) {
            snprintf(path, sizeof path, "%s/plots%d/%s", dir, repeat, pngs[i]);
            KVT_CHECK(is_png(path), "plot.sh: %s is no PNG", path);
        }
        rc = kvt_runf(out, sizeof out, KVT_STDOUT, "cat '%s/plots%d/table.md'", dir, repeat);
        KVT_CHECK(rc == 0 && strstr(out, "| workload | kv |") != NULL
                      && strstr(out, "| ycsb-a | ") != NULL
                      && strstr(out, "disk/logical") != NULL,
                  "plot.sh: table.md: %.400s", out);
    }
    rc = kvt_runf(out, sizeof out, KVT_BOTH, "/bin/sh '%s/bench/plot.sh' /dev/null "
                  "'%s/empty'", KV_SOURCE_DIR, dir);
    KVT_CHECK(rc == 1 && strstr(out, "no ops_per_sec") != NULL,
              "plot.sh on no results: exit %d: %s", rc, out);
}

static void test_usage_errors(void)
{
    static const char *const bad[] = { "--engines nosuch", "--workloads fillseq,nosuch",
                                       "--workloads readrandom:0", "--num x",
                                       "--repeat 0", "--write-rate 0" };
    char out[8192];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = kvt_runf(out, sizeof out, KVT_BOTH, "'%s/peerbench' %s", kvt_bin(), bad[i]);
        KVT_CHECK(rc == 2 && strstr(out, "usage: peerbench") != NULL,
                  "peerbench %s: exit %d: %.300s", bad[i], rc, out);
    }
}

static const kvt_test peerbench_tests[] = {
    {"every engine built in, every workload, 1,000 keys: every read verified, the "
     "figures and versions in each JSON line", test_every_engine_every_workload},
    {"kv's store after fillrandom: the same keys and values as kvbench's",
     test_same_data_as_kvbench},
    {"--repeat 2: the engines interleave, each line says its run, medians per engine "
     "and workload", test_repeat_medians},
    {"bench/plot.sh draws the three PNGs from a tiny run (skipped, said, without "
     "gnuplot)", test_plot},
    {"usage errors exit 2", test_usage_errors},
    {NULL, NULL},
};

void kvt_register_peerbench(void)
{
    kvt_add_suite("peerbench", peerbench_tests);
}
