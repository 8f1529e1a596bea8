/*
 * kvtest.h — shared helpers of the kv CUnit suite (build/bin/kvtest).
 *
 * Every test file (tests/test_*.c) includes this header and uses only the public API (kv.h).
 * Sections:
 *   1. Suites: the register function of each suite file, and kvt_add_suite
 *   2. Run mode: KV_TEST_QUICK scales iteration counts down (ASan runs)
 *   3. Deterministic random numbers (splitmix64), so a seed reproduces a failure
 *   4. The per-test fixture: temporary store directories and open handles made
 *      through it are released by the suite teardown, even when a _FATAL assertion
 *      ends a test early, so one failure does not leak into the next test
 *   5. Checks: formatted assertion messages (key, seed, step) and value helpers
 *   6. Files and tools: whole files in and out, a checksum of bytes and a fingerprint
 *      of a directory (XXH3), a command's exit status and output, JSON read back
 *      by jansson
 *
 * Threads: sections 2, 3 and the kvt_fmt/kvt_value_* helpers may be used from any
 * thread or from a forked child; the fixture and the assertion helpers belong to the
 * thread running the CUnit test (CUnit is not thread-safe).
 */
#ifndef KVTEST_H
#define KVTEST_H

#include <stddef.h>
#include <stdint.h>

#include <CUnit/CUnit.h>
#include <jansson.h>

#include "kv.h"
#include "base/grow.h" /* grow(): the one grow-by-doubling helper */

/* ---------------------------------------------------------------------------------
 * 1. Suites
 * ------------------------------------------------------------------------------ */
void kvt_register_api(void);         /* tests/test_api.c */
void kvt_register_property(void);    /* tests/test_property.c */
void kvt_register_crash(void);       /* tests/test_crash.c */
void kvt_register_concurrency(void); /* tests/test_concurrency.c */
void kvt_register_entry(void);       /* tests/test_entry.c (the lead engineer's) */
void kvt_register_compact(void);     /* tests/test_compact.c */
void kvt_register_crashsim(void);    /* tests/test_crashsim.c (with tests/faultio.c) */
void kvt_register_lz4(void);         /* tests/test_lz4.c */
void kvt_register_fuzz_regress(void); /* tests/test_fuzz_regress.c: bugs the fuzzers found */
void kvt_register_kvdump(void);      /* tests/test_kvdump.c: kvdump, kv load/scan/stats --json */
void kvt_register_kvcheck(void);     /* tests/test_kvcheck.c: kvcheck, check and repair */
void kvt_register_signals(void);     /* tests/test_signals.c: signal storms, slow fdatasync */
void kvt_register_tail(void);        /* tests/test_tail.c: torn tail or damage in the WAL */
void kvt_register_repair(void);      /* tests/test_repair2.c: repair never un-deletes in
                                        silence; FIFOs in the store */
void kvt_register_live(void);        /* tests/test_live.c: readers and tools beside a live writer */
void kvt_register_hostile(void);     /* tests/test_hostile.c: foreign files, LOCK, exit codes */
void kvt_register_json(void);        /* tests/test_json.c: --json of every tool on bytes that
                                        are no UTF-8, parsed by jansson */
void kvt_register_abi(void);         /* tests/test_abi.c: libkv.so's exports, struct sizes */
void kvt_register_refresh(void);     /* tests/test_refresh.c: kv_refresh in one process */
void kvt_register_debug(void);       /* tests/test_debug.c: network file systems refused,
                                        assertions that run (KV_DEBUG) */
void kvt_register_tools_live(void);  /* tests/test_tools_live.c: the tools on a store a
                                        writer process holds or left killed; the locks */
void kvt_register_readers(void);     /* tests/test_readers.c: read-only handles following a
                                        writer with kv_refresh (live, kill loop, fds) */
void kvt_register_compact_live(void); /* tests/test_compact_live.c: kvcompact on a store a
                                         writer holds (the writer compacts on request) */
void kvt_register_peerbench(void);   /* tests/test_peerbench.c: peerbench, every engine
                                        built in, at 1,000 keys */

typedef struct kvt_test {
    const char *name; /* test name shown by CUnit */
    CU_TestFunc fn;   /* the test; NULL ends a table */
} kvt_test;

/* Adds suite name with the tests of table (ended by a {NULL, NULL} entry); every
 * test runs between kvt_fixture_setup and kvt_fixture_teardown. A registration
 * failure is left in CU_get_error() for main to report. */
void kvt_add_suite(const char *name, const kvt_test *table);

/* ---------------------------------------------------------------------------------
 * 2. Run mode
 * ------------------------------------------------------------------------------ */

/* 1 when KV_TEST_QUICK is set to anything but "" or "0" (make test-asan sets it). */
int kvt_quick(void);

/* normal, or quick in quick mode. */
unsigned kvt_scaled(unsigned normal, unsigned quick);

/* 1 when KV_TEST_VALGRIND is set to anything but "" or "0" (make test-valgrind sets
 * it). valgrind runs one thread at a time and, unlike for fsync or futex waits, keeps
 * that lock while a thread waits in io_uring_enter; a test that needs a second
 * writer to queue during an io_uring commit uses the psync backend then. */
int kvt_valgrind(void);

/* Monotonic clock in milliseconds / microseconds. */
uint64_t kvt_now_ms(void);
uint64_t kvt_now_us(void);

/* Sleeps ms milliseconds (restarts after signals). */
void kvt_sleep_ms(unsigned ms);

/* ---------------------------------------------------------------------------------
 * 3. Deterministic random numbers: splitmix64 (Steele, Lea, Flood 2014)
 * ------------------------------------------------------------------------------ */
typedef struct kvt_rng {
    uint64_t state; /* advanced by a fixed odd constant per draw */
} kvt_rng;

void kvt_rng_seed(kvt_rng *r, uint64_t seed);
uint64_t kvt_rng_next(kvt_rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t kvt_rng_below(kvt_rng *r, uint64_t n);
/* Uniform in [lo, hi]. */
uint64_t kvt_rng_range(kvt_rng *r, uint64_t lo, uint64_t hi);
/* 1 with probability pct/100. */
int kvt_rng_chance(kvt_rng *r, unsigned pct);
void kvt_rng_fill(kvt_rng *r, void *buf, size_t n);

/* One splitmix64 mixing step of x (a stateless hash for deriving test data). */
uint64_t kvt_mix64(uint64_t x);

/* ---------------------------------------------------------------------------------
 * 4. The per-test fixture
 * ------------------------------------------------------------------------------ */

/* Installed by kvt_add_suite around every test: a watchdog (a hung test ends the
 * run with its name rather than hanging make), and release of what the fixture
 * tracks. */
void kvt_fixture_setup(void);
void kvt_fixture_teardown(void);

/* Makes a fresh empty directory $TMPDIR/kvtest-<tag>-XXXXXX (or /tmp/...) and
 * returns its malloc'd path; it is removed (recursively) and freed at teardown,
 * unless KV_TEST_KEEP=1, which keeps it and prints its path. FATAL on failure. */
char *kvt_dir_new(const char *tag);

/* Returns malloc'd "dir/name" (tracked: freed at teardown). */
char *kvt_path(const char *dir, const char *name);

/* Removes path and everything below it. Returns 0 or -1 (errno set). */
int kvt_rmtree(const char *path);

/* Fills *o with kv_options_init's defaults, then create = 1 and the given sync
 * mode, io backend and segment size (0 keeps the default size). */
void kvt_options(kv_options *o, int sync, int io, uint64_t segment_bytes);

/* kv_open, and on success the handle is tracked (closed at teardown if the test
 * did not close it). Returns kv_open's status. */
int kvt_open(const char *dir, const kv_options *o, kv_db **out);

/* kvt_options + kvt_open. */
int kvt_open_mode(const char *dir, int sync, int io, uint64_t segment_bytes,
                  kv_db **out);

/* Closes a handle opened with kvt_open and stops tracking it; returns kv_close's
 * status. NULL is accepted. */
int kvt_close(kv_db *db);

/* Stops tracking db without closing it (a test that gave up on a hung handle). */
void kvt_forget(kv_db *db);

/* Counts the directory entries of dir other than "." and "..", or -1. */
int kvt_dir_count(const char *dir);

/* ---------------------------------------------------------------------------------
 * 5. Checks
 * ------------------------------------------------------------------------------ */

/* Records a CUnit assertion whose failure message is the printf-style text (so a
 * failure names the key, seed and step); with fatal, a failure ends the test.
 * Returns ok. */
int kvt_check(int ok, unsigned line, const char *file, const char *func, int fatal,
              const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Records a fatal failure with the printf-style text and ends the test (CUnit
 * longjmps out); declared noreturn so compilers know a failed _FATAL check does not
 * fall through. */
void kvt_fatal(unsigned line, const char *file, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));

#define KVT_CHECK(cond, ...) \
    kvt_check(!!(cond), __LINE__, __FILE__, __func__, 0, __VA_ARGS__)
#define KVT_CHECK_FATAL(cond, ...)                                           \
    ((cond) ? (void)kvt_check(1, __LINE__, __FILE__, __func__, 1, "%s", "") \
            : kvt_fatal(__LINE__, __FILE__, __func__, __VA_ARGS__))

/* Asserts a status: prints both codes' names and kv_errmsg() on a mismatch. */
#define KVT_RC(got, want) \
    kvt_check_rc((got), (want), #got, __LINE__, __FILE__, __func__, 0)
#define KVT_RC_FATAL(got, want) \
    kvt_check_rc((got), (want), #got, __LINE__, __FILE__, __func__, 1)
int kvt_check_rc(int got, int want, const char *expr, unsigned line, const char *file,
                 const char *func, int fatal);

/* Writes a printable form of the bytes p[0..n) into buf (C escapes, "..." when cut)
 * and returns buf. Thread-safe. */
const char *kvt_fmt(char *buf, size_t size, const void *p, size_t n);

/* Compares key's stored value with want (wlen bytes; want NULL means "must be
 * absent"). Returns 0 when they agree, else -1 with a description in why. Does not
 * touch CUnit, so threads may use it. Frees what kv_get returned. */
int kvt_value_cmp(kv_db *db, const void *key, size_t klen, const void *want,
                  size_t wlen, char *why, size_t whylen);

/* CUnit wrappers of kvt_value_cmp. */
#define KVT_ASSERT_VALUE(db, k, kl, v, vl) \
    kvt_assert_value((db), (k), (kl), (v), (vl), __LINE__, __FILE__, __func__)
#define KVT_ASSERT_ABSENT(db, k, kl) \
    kvt_assert_value((db), (k), (kl), NULL, 0, __LINE__, __FILE__, __func__)
int kvt_assert_value(kv_db *db, const void *key, size_t klen, const void *want,
                     size_t wlen, unsigned line, const char *file, const char *func);

/* Prints an informational line under the running test's name (stdout, the stream
 * CUnit reports on, so the two stay in order). */
void kvt_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Short helpers for NUL-terminated text keys and values. */
int kvt_put_str(kv_db *db, const char *key, const char *val);

/* ---------------------------------------------------------------------------------
 * 6. Files and tools (the test thread; FATAL on failure)
 * ------------------------------------------------------------------------------ */

/* Reads the whole file at path into a malloc'd buffer (one byte more than *len, so
 * an empty file gives a valid pointer); the caller frees it. */
uint8_t *kvt_slurp(const char *path, size_t *len);

/* Writes len bytes as the whole content of path (created or truncated). */
void kvt_spill(const char *path, const void *buf, size_t len);

/* The tests' one checksum: XXH3 (64 bits) of the n bytes at p, continued from seed
 * (0 to start; the previous result to chain several pieces). */
uint64_t kvt_hash(const void *p, size_t n, uint64_t seed);

/* A fingerprint of every entry of dir: names, and the bytes of regular files
 * (kvt_hash per file, summed, so the order of readdir does not count). A file
 * created, removed, renamed or changed changes it. 0 when dir cannot be read. */
uint64_t kvt_dir_fingerprint(const char *dir);

/* Runs cmd with popen and returns its exit status (-1 if it did not exit), and up to
 * n - 1 bytes of its output in out (the rest is read and dropped, so the command
 * never dies of SIGPIPE). */
int kvt_run(const char *cmd, char *out, size_t n);

/* The directory of the tools under test: $KV_BIN, else build/bin. */
const char *kvt_bin(void);

/* kvt_run of the printf-style command. KVT_STDOUT: stdin from /dev/null, out gets its
 * stdout; KVT_BOTH: run as "{ command; } 2>&1", out gets stderr too and what stdout
 * the command does not redirect itself. FATAL when the command is too long. */
enum { KVT_STDOUT = 0, KVT_BOTH = 1 };
int kvt_runf(char *out, size_t n, int mode, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Parses text, which must be exactly one JSON document, with jansson and no
 * leniency (flags 0: valid UTF-8, nothing after the document); a failure is a test
 * failure naming what is wrong, and returns NULL. The caller json_decref's it. */
json_t *kvt_json_parse(const char *text);

/* The member name of object o as a string, or "" when it is missing or no string. */
const char *kvt_json_str(const json_t *o, const char *name);

/* The member name of object o as an integer, or -1 when it is missing or no integer. */
long long kvt_json_int(const json_t *o, const char *name);

#endif /* KVTEST_H */
