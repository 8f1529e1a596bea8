/*
 * kvtest.c — the shared helpers declared in kvtest.h: suite registration, run mode,
 * the splitmix64 generator, the per-test fixture (temporary directories, tracked
 * handles, a watchdog) and the formatted checks.
 */
#include "kvtest.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

/* ---------------------------------------------------------------------------------
 * Suites
 * ------------------------------------------------------------------------------ */

void kvt_add_suite(const char *name, const kvt_test *table)
{
    CU_pSuite suite = CU_add_suite_with_setup_and_teardown(
        name, NULL, NULL, kvt_fixture_setup, kvt_fixture_teardown);
    if (suite == NULL)
        return;
    for (const kvt_test *t = table; t->name != NULL; t++) {
        if (CU_add_test(suite, t->name, t->fn) == NULL)
            return;
    }
}

/* ---------------------------------------------------------------------------------
 * Run mode and clocks
 * ------------------------------------------------------------------------------ */

int kvt_quick(void)
{
    const char *q = getenv("KV_TEST_QUICK");
    return q != NULL && q[0] != '\0' && strcmp(q, "0") != 0;
}

unsigned kvt_scaled(unsigned normal, unsigned quick)
{
    return kvt_quick() ? quick : normal;
}

int kvt_valgrind(void)
{
    const char *v = getenv("KV_TEST_VALGRIND");
    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

uint64_t kvt_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t kvt_now_ms(void)
{
    return kvt_now_us() / 1000u;
}

void kvt_sleep_ms(unsigned ms)
{
    struct timespec ts = { .tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---------------------------------------------------------------------------------
 * splitmix64
 * ------------------------------------------------------------------------------ */

uint64_t kvt_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void kvt_rng_seed(kvt_rng *r, uint64_t seed)
{
    r->state = seed;
}

uint64_t kvt_rng_next(kvt_rng *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t kvt_rng_below(kvt_rng *r, uint64_t n)
{
    return n == 0 ? 0 : kvt_rng_next(r) % n;
}

uint64_t kvt_rng_range(kvt_rng *r, uint64_t lo, uint64_t hi)
{
    return lo + kvt_rng_below(r, hi - lo + 1);
}

int kvt_rng_chance(kvt_rng *r, unsigned pct)
{
    return kvt_rng_below(r, 100) < pct;
}

void kvt_rng_fill(kvt_rng *r, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        uint64_t x = kvt_rng_next(r);
        size_t k = n < 8 ? n : 8;
        memcpy(p, &x, k);
        p += k;
        n -= k;
    }
}

/* ---------------------------------------------------------------------------------
 * The per-test fixture
 *
 * Tracked directories and handles live in fixed tables (a test that needs more is
 * a test bug and fails loudly); kvt_path strings in a list that grows.
 * ------------------------------------------------------------------------------ */
#define KVT_MAX_DIRS 64
#define KVT_MAX_DBS 64

static char *g_dirs[KVT_MAX_DIRS];   /* directories removed at teardown */
static kv_db *g_dbs[KVT_MAX_DBS];    /* handles closed at teardown */
static char **g_paths;               /* strings freed at teardown */
static size_t g_npaths, g_cap_paths;  /* used and allocated slots of g_paths */
static char g_test_name[128];        /* for the watchdog message */

static void watchdog_fired(int sig)
{
    static const char a[] = "\nkvtest: watchdog: test '";
    static const char b[] = "' did not finish in time; aborting the run\n";
    ssize_t w;
    (void)sig;
    w = write(2, a, sizeof a - 1);
    w = write(2, g_test_name, strnlen(g_test_name, sizeof g_test_name));
    w = write(2, b, sizeof b - 1);
    (void)w;
    _exit(3);
}

static unsigned watchdog_seconds(void)
{
    const char *s = getenv("KV_TEST_TIMEOUT");
    if (s != NULL && atoi(s) > 0)
        return (unsigned)atoi(s);
    return kvt_quick() ? 900 : 300;
}

void kvt_fixture_setup(void)
{
    CU_pTest t = CU_get_current_test();
    snprintf(g_test_name, sizeof g_test_name, "%s", t != NULL ? t->pName : "?");
    signal(SIGALRM, watchdog_fired);
    alarm(watchdog_seconds());
}

void kvt_fixture_teardown(void)
{
    const char *keep = getenv("KV_TEST_KEEP");
    alarm(0);
    for (int i = 0; i < KVT_MAX_DBS; i++) {
        if (g_dbs[i] != NULL) {
            kv_close(g_dbs[i]);
            g_dbs[i] = NULL;
        }
    }
    for (int i = 0; i < KVT_MAX_DIRS; i++) {
        if (g_dirs[i] == NULL)
            continue;
        if (keep != NULL && strcmp(keep, "1") == 0)
            fprintf(stderr, "kvtest: kept %s\n", g_dirs[i]);
        else if (kvt_rmtree(g_dirs[i]) != 0)
            fprintf(stderr, "kvtest: cannot remove %s: %s\n", g_dirs[i], strerror(errno));
        free(g_dirs[i]);
        g_dirs[i] = NULL;
    }
    for (size_t i = 0; i < g_npaths; i++)
        free(g_paths[i]);
    free(g_paths);
    g_paths = NULL;
    g_npaths = g_cap_paths = 0;
}

static void track(void **table, int n, void *p, const char *what)
{
    for (int i = 0; i < n; i++) {
        if (table[i] == NULL) {
            table[i] = p;
            return;
        }
    }
    KVT_CHECK_FATAL(0, "kvtest fixture: too many tracked %s (limit %d)", what, n);
}

char *kvt_dir_new(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *path;
    size_t n;

    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    n = strlen(base) + strlen(tag) + 32;
    path = malloc(n);
    KVT_CHECK_FATAL(path != NULL, "kvt_dir_new: out of memory");
    snprintf(path, n, "%s/kvtest-%s-XXXXXX", base, tag);
    if (mkdtemp(path) == NULL) {
        int e = errno;
        free(path);
        KVT_CHECK_FATAL(0, "mkdtemp under %s: %s", base, strerror(e));
    }
    track((void **)g_dirs, KVT_MAX_DIRS, path, "directories");
    return path;
}

char *kvt_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    KVT_CHECK_FATAL(p != NULL, "kvt_path: out of memory");
    snprintf(p, n, "%s/%s", dir, name);
    char **grown = grow(g_paths, &g_cap_paths, g_npaths + 1, sizeof *grown, 16, 0);
    if (grown == NULL)
        free(p);
    KVT_CHECK_FATAL(grown != NULL, "kvt_path: out of memory");
    g_paths = grown;
    g_paths[g_npaths++] = p;
    return p;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int kvt_rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    return nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}

int kvt_dir_count(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

void kvt_options(kv_options *o, int sync, int io, uint64_t segment_bytes)
{
    kv_options_init(o);
    o->create = 1;
    o->sync = sync;
    o->io = io;
    if (segment_bytes != 0)
        o->segment_bytes = segment_bytes;
}

int kvt_open(const char *dir, const kv_options *o, kv_db **out)
{
    int rc = kv_open(dir, o, out);
    if (rc == KV_OK && *out != NULL)
        track((void **)g_dbs, KVT_MAX_DBS, *out, "handles");
    return rc;
}

int kvt_open_mode(const char *dir, int sync, int io, uint64_t segment_bytes,
                  kv_db **out)
{
    kv_options o;
    kvt_options(&o, sync, io, segment_bytes);
    return kvt_open(dir, &o, out);
}

void kvt_forget(kv_db *db)
{
    for (int i = 0; i < KVT_MAX_DBS; i++) {
        if (g_dbs[i] == db)
            g_dbs[i] = NULL;
    }
}

int kvt_close(kv_db *db)
{
    kvt_forget(db);
    return kv_close(db);
}

/* ---------------------------------------------------------------------------------
 * Checks
 * ------------------------------------------------------------------------------ */

int kvt_check(int ok, unsigned line, const char *file, const char *func, int fatal,
              const char *fmt, ...)
{
    char msg[1024];
    if (ok) {
        CU_assertImplementation(CU_TRUE, line, "", file, func, CU_FALSE);
        return 1;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* CUnit copies the condition text into its failure record. */
    CU_assertImplementation(CU_FALSE, line, msg, file, func, fatal ? CU_TRUE : CU_FALSE);
    return 0;
}

void kvt_fatal(unsigned line, const char *file, const char *func, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    CU_assertImplementation(CU_FALSE, line, msg, file, func, CU_TRUE);
    /* Only reached outside a running test, where CUnit does not longjmp. */
    fprintf(stderr, "%s:%u: %s\n", file, line, msg);
    abort();
}

int kvt_check_rc(int got, int want, const char *expr, unsigned line, const char *file,
                 const char *func, int fatal)
{
    return kvt_check(got == want, line, file, func, fatal,
                     "%s returned %d (%s), expected %d (%s); kv_errmsg: \"%s\"", expr,
                     got, kv_strerror(got), want, kv_strerror(want), kv_errmsg());
}

const char *kvt_fmt(char *buf, size_t size, const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t o = 0;
    if (size == 0)
        return buf;
    for (size_t i = 0; i < n; i++) {
        char tmp[8];
        int w;
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\' && s[i] != '"')
            w = snprintf(tmp, sizeof tmp, "%c", s[i]);
        else
            w = snprintf(tmp, sizeof tmp, "\\x%02x", s[i]);
        if (o + (size_t)w + 4 >= size) {
            snprintf(buf + o, size - o, "...");
            return buf;
        }
        memcpy(buf + o, tmp, (size_t)w);
        o += (size_t)w;
    }
    buf[o] = '\0';
    return buf;
}

int kvt_value_cmp(kv_db *db, const void *key, size_t klen, const void *want,
                  size_t wlen, char *why, size_t whylen)
{
    static char sentinel;            /* kv_get must overwrite *val in every case */
    void *v = &sentinel;
    size_t vl = 12345;
    char kb[96], gb[96], wb[96];
    int rc = kv_get(db, key, klen, &v, &vl);
    int bad = 0;

    kvt_fmt(kb, sizeof kb, key, klen);
    if (want == NULL) {
        if (rc == KV_NOTFOUND && v == NULL && vl == 0)
            return 0;
        if (rc == KV_NOTFOUND)
            snprintf(why, whylen, "key \"%s\": KV_NOTFOUND but *val=%p *vlen=%zu "
                     "(expected NULL, 0)", kb, v, vl);
        else if (rc == KV_OK && (v == NULL || v == &sentinel))
            snprintf(why, whylen, "key \"%s\": expected absent, got KV_OK with *val %s",
                     kb, v == NULL ? "NULL" : "unchanged");
        else if (rc == KV_OK)
            snprintf(why, whylen, "key \"%s\": expected absent, got value \"%s\" (%zu bytes)",
                     kb, kvt_fmt(gb, sizeof gb, v, vl), vl);
        else
            snprintf(why, whylen, "key \"%s\": kv_get returned %d (%s): %s", kb, rc,
                     kv_strerror(rc), kv_errmsg());
        if (rc == KV_OK && v != &sentinel)
            kv_free(v); /* NULL is accepted */
        return -1;
    }
    if (rc != KV_OK) {
        snprintf(why, whylen, "key \"%s\": expected %zu-byte value \"%s\", kv_get returned "
                 "%d (%s): %s", kb, wlen, kvt_fmt(wb, sizeof wb, want, wlen), rc,
                 kv_strerror(rc), kv_errmsg());
        return -1;
    }
    if (v == NULL || v == &sentinel) {
        snprintf(why, whylen, "key \"%s\": KV_OK but *val is %s (vlen %zu)", kb,
                 v == NULL ? "NULL" : "unchanged", vl);
        return -1;
    }
    if (vl != wlen || (wlen > 0 && memcmp(v, want, wlen) != 0)) {
        size_t at = 0;
        while (at < vl && at < wlen && ((const unsigned char *)v)[at] ==
                                           ((const unsigned char *)want)[at])
            at++;
        snprintf(why, whylen, "key \"%s\": got %zu bytes \"%s\", expected %zu bytes \"%s\" "
                 "(first difference at byte %zu)", kb, vl, kvt_fmt(gb, sizeof gb, v, vl),
                 wlen, kvt_fmt(wb, sizeof wb, want, wlen), at);
        bad = 1;
    }
    kv_free(v);
    return bad ? -1 : 0;
}

int kvt_assert_value(kv_db *db, const void *key, size_t klen, const void *want,
                     size_t wlen, unsigned line, const char *file, const char *func)
{
    char why[512];
    int ok = kvt_value_cmp(db, key, klen, want, wlen, why, sizeof why) == 0;
    return kvt_check(ok, line, file, func, 0, "%s", ok ? "" : why);
}

void kvt_note(const char *fmt, ...)
{
    va_list ap;
    printf("\n      ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n    ");
    fflush(stdout);
}

int kvt_put_str(kv_db *db, const char *key, const char *val)
{
    return kv_put(db, key, strlen(key), val, strlen(val));
}

/* ---------------------------------------------------------------------------------
 * 6. Files and tools
 * ------------------------------------------------------------------------------ */

uint8_t *kvt_slurp(const char *path, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY);
    KVT_CHECK_FATAL(fd >= 0 && fstat(fd, &st) == 0, "open %s: %s", path, strerror(errno));
    uint8_t *b = malloc((size_t)st.st_size + 1);
    KVT_CHECK_FATAL(b != NULL && pread(fd, b, (size_t)st.st_size, 0) == st.st_size, "read %s",
                    path);
    close(fd);
    *len = (size_t)st.st_size;
    return b;
}

void kvt_spill(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    KVT_CHECK_FATAL(fd >= 0 && (len == 0 || pwrite(fd, buf, len, 0) == (ssize_t)len),
                    "write %s: %s", path, strerror(errno));
    close(fd);
}

uint64_t kvt_hash(const void *p, size_t n, uint64_t seed)
{
    return XXH3_64bits_withSeed(p, n, seed);
}

uint64_t kvt_dir_fingerprint(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    uint64_t sum = 0x6b76u; /* so an empty directory is not 0, a missing one's value */
    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        char path[4096], buf[65536];
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        uint64_t h = kvt_hash(de->d_name, strlen(de->d_name), 0);
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *f = stat(path, &st) == 0 && S_ISREG(st.st_mode) ? fopen(path, "rb") : NULL;
        size_t got;
        while (f != NULL && (got = fread(buf, 1, sizeof buf, f)) > 0)
            h = kvt_hash(buf, got, h);
        if (f != NULL)
            fclose(f);
        sum += h;
    }
    closedir(d);
    return sum;
}

int kvt_run(const char *cmd, char *out, size_t n)
{
    FILE *p = popen(cmd, "r");
    size_t len = 0;
    char rest[4096];
    KVT_CHECK_FATAL(p != NULL, "popen %s", cmd);
    /* A signal (the signal-storm runs) interrupts a read without ending the output:
     * read on, or the tool would die of SIGPIPE writing to a pipe closed early. */
    while (len + 1 < n) {
        size_t got = fread(out + len, 1, n - 1 - len, p);
        len += got;
        if (got == 0 && !(ferror(p) && errno == EINTR))
            break;
        clearerr(p);
    }
    out[len] = '\0';
    for (;;) {
        size_t got = fread(rest, 1, sizeof rest, p);
        if (got == 0 && !(ferror(p) && errno == EINTR))
            break;
        clearerr(p);
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

const char *kvt_bin(void)
{
    const char *b = getenv("KV_BIN");
    return b != NULL && b[0] != '\0' ? b : "build/bin";
}

int kvt_runf(char *out, size_t n, int mode, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    size_t at = mode == KVT_BOTH ? 2 : 0;
    memcpy(cmd, "{ ", at);
    va_start(ap, fmt);
    int len = vsnprintf(cmd + at, sizeof cmd - 32, fmt, ap);
    va_end(ap);
    KVT_CHECK_FATAL(len > 0 && (size_t)len < sizeof cmd - 32, "command too long");
    strcat(cmd, mode == KVT_BOTH ? "; } 2>&1" : " </dev/null");
    return kvt_run(cmd, out, n);
}

/* ---- JSON, read back by jansson ------------------------------------------------------ */

json_t *kvt_json_parse(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    KVT_CHECK(j != NULL, "not one valid JSON document: %s (line %d, column %d): %.300s",
              err.text, err.line, err.column, text);
    return j;
}

const char *kvt_json_str(const json_t *o, const char *name)
{
    const char *s = json_string_value(json_object_get(o, name));
    return s != NULL ? s : "";
}

long long kvt_json_int(const json_t *o, const char *name)
{
    const json_t *v = json_object_get(o, name);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}
