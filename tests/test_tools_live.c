/*
 * test_tools_live.c — the "tools_live" suite: the tools on a store a writer process
 * holds, on what a killed writer left, and the locks (issue 14).
 *
 * A writer in a forked child (it opens the store afresh: a handle never crosses a
 * fork) applies operations that are a pure function of (seed, n): a put, a delete,
 * or an atomic batch of 2..12 of them, values "KEY=N.J;" and up to 1,500 bytes of
 * padding, so whoever knows the seed knows what operation n wrote. Its segments are
 * 4..64 KiB (a new size at each of its reopens), compaction runs in the background
 * at a dead ratio of 0.1, unpaced, and it calls kv_compact now and then: it rolls
 * every few operations and compacts all the time. After each call returns it
 * appends "A n" to a log file, so the log names every acknowledged operation. Pinned
 * keys, written before the writer starts, are never touched by it.
 *
 *   - Beside that writer, kvcheck (plain, --json, --verbose), kvdump (plain, -p,
 *     --all, --all --json) and kv keys, scan, stats, stats --json and get run in a
 *     loop, each exiting 0 and reporting no damage (stderr empty, or notes only),
 *     every value they print belonging to its key, every pinned key there.
 *   - Killed at random moments (SIGKILL), the writer leaves what its step was doing:
 *     kvcheck exits 0 after every kill (its leftovers are notes), and the store, read
 *     through a read-only handle, holds every acknowledged operation; the one in
 *     flight is there whole or not at all.
 *   - Held by that writer, kv put, del and load and kvcheck --repair exit 3 naming
 *     its pid, and change nothing.
 *   - The locks: two writer opens in one process (through three paths to the
 *     directory) conflict; a read-only handle, in this process or another, holds the
 *     reader lock, so kvcheck --repair refuses (exit 3) until it is closed; while a
 *     repair holds the reader lock exclusively a read-only open is KV_ELOCKED; a store
 *     without LOCK opens read-only and the reader creates nothing.
 *   - Leftovers of interrupted steps (MANIFEST.tmp, a .hint.tmp, the hint of a segment
 *     that is not sealed, unnamed segment and WAL files, COMPACT.req/.res and their
 *     .tmp) are notes: kvcheck exits 0 and names each; --repair removes kv's own.
 * About 25 s in all (14 s of tools beside the writer, 10 s of kills); KV_TEST_QUICK
 * halves both.
 *
 * Sections: the operations; the writer child; running a tool; what a tool's output
 * must be; the tools beside the writer; a killed writer; a held store; the locks;
 * leftovers.
 */
#include "kvtest.h"

#include "format/format.h"
#include "io/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define TL_KEYS 256       /* keys the writer writes, "k0000".."k0255" */
#define TL_PINS 16        /* pinned keys "pin000".."pin015", written before it starts */
#define TL_BATCH_MAX 12   /* operations in a batch, at most */
#define TL_PAD_MAX 1500   /* padding of a value, at most */
#define TL_VAL_MAX (TL_PAD_MAX + 64)
#define TL_MAX_S 90       /* a writer stops by itself after this long */

/* ---- the operations --------------------------------------------------------------------- */

/* One put or delete of an operation. */
typedef struct tl_sub {
    unsigned key; /* k%04u */
    int del;      /* a delete, else a put */
    unsigned pad; /* bytes of padding after "KEY=N.J;" */
} tl_sub;

/* Operation n of a seed: one put or delete, or an atomic batch of them. */
typedef struct tl_op {
    int batch;                  /* kv_write of a batch, else kv_put or kv_delete */
    unsigned nsub;              /* its operations (1 when not a batch) */
    tl_sub sub[TL_BATCH_MAX];
} tl_op;

static void tl_op_make(uint64_t seed, uint64_t n, tl_op *op)
{
    kvt_rng r;
    kvt_rng_seed(&r, kvt_mix64(seed ^ kvt_mix64(n)));
    unsigned pick = (unsigned)kvt_rng_below(&r, 100);
    op->batch = pick >= 75;
    op->nsub = op->batch ? (unsigned)kvt_rng_range(&r, 2, TL_BATCH_MAX) : 1;
    for (unsigned j = 0; j < op->nsub; j++) {
        tl_sub *s = &op->sub[j];
        s->key = (unsigned)kvt_rng_below(&r, TL_KEYS);
        s->del = op->batch ? kvt_rng_chance(&r, 20) : pick < 15;
        s->pad = (unsigned)kvt_rng_below(&r, TL_PAD_MAX + 1);
    }
}

static int tl_key(char *buf, size_t n, unsigned key)
{
    return snprintf(buf, n, "k%04u", key);
}

/* The value operation n puts as its j-th part: "KEY=N.J;" and pad letters. */
static size_t tl_value(char *buf, size_t cap, unsigned key, uint64_t n, unsigned j, unsigned pad)
{
    int len = snprintf(buf, cap, "k%04u=%llu.%u;", key, (unsigned long long)n, j);
    size_t at = (size_t)len;
    for (unsigned i = 0; i < pad && at + 1 < cap; i++)
        buf[at++] = (char)('a' + (n + j) % 26);
    buf[at] = '\0';
    return at;
}

/* Applies operation n to db (b: a batch to reuse). A delete of an absent key is
 * acknowledged too (it writes nothing). */
static int tl_apply(kv_db *db, kv_batch *b, uint64_t n, const tl_op *op)
{
    char k[16], v[TL_VAL_MAX];
    kv_batch_clear(b);
    for (unsigned j = 0; j < op->nsub; j++) {
        const tl_sub *s = &op->sub[j];
        int kl = tl_key(k, sizeof k, s->key), rc;
        size_t vl = tl_value(v, sizeof v, s->key, n, j, s->pad);
        if (!op->batch && s->del)
            return (rc = kv_delete(db, k, (size_t)kl)) == KV_NOTFOUND ? KV_OK : rc;
        if (!op->batch)
            return kv_put(db, k, (size_t)kl, v, vl);
        rc = s->del ? kv_batch_delete(b, k, (size_t)kl) : kv_batch_put(b, k, (size_t)kl, v, vl);
        if (rc != KV_OK)
            return rc;
    }
    return kv_write(db, b);
}

/* What a key holds: absent, or the j-th part of operation n with pad bytes. */
typedef struct tl_state {
    int present;
    uint64_t n;
    unsigned j, pad;
} tl_state;

/* The states operation n leaves its keys in (a later part of a batch wins). */
static void tl_effect(const tl_op *op, uint64_t n, tl_state *model)
{
    for (unsigned j = 0; j < op->nsub; j++) {
        const tl_sub *s = &op->sub[j];
        model[s->key] = (tl_state){!s->del, n, j, s->pad};
    }
}

/* 1 when key holds state st in db; else 0 with what it holds in why. */
static int tl_holds(kv_db *db, unsigned key, const tl_state *st, char *why, size_t wn)
{
    char k[16], want[TL_VAL_MAX];
    int kl = tl_key(k, sizeof k, key);
    size_t wl = st->present ? tl_value(want, sizeof want, key, st->n, st->j, st->pad) : 0;
    return kvt_value_cmp(db, k, (size_t)kl, st->present ? want : NULL, wl, why, wn) == 0;
}

/* The value of pinned key i. */
static size_t tl_pin(char *k, size_t kn, char *v, size_t vn, unsigned i)
{
    snprintf(k, kn, "pin%03u", i);
    return (size_t)snprintf(v, vn, "pin%03u=pinned;%0*u", i, (int)(20 + i * 37), i);
}

/* A value belongs to its key: it starts with "KEY=". */
static int tl_belongs(const char *k, size_t kl, const char *v, size_t vl)
{
    return vl > kl && memcmp(v, k, kl) == 0 && v[kl] == '=';
}

/* ---- the writer child ------------------------------------------------------------------- */

/* read, write and waitpid, made again after a signal. */
static ssize_t tl_read(int fd, void *buf, size_t n)
{
    ssize_t r;
    do
        r = read(fd, buf, n);
    while (r < 0 && errno == EINTR);
    return r;
}

static ssize_t tl_write(int fd, const void *buf, size_t n)
{
    ssize_t r;
    do
        r = write(fd, buf, n);
    while (r < 0 && errno == EINTR);
    return r;
}

static pid_t tl_waitpid(pid_t pid, int *st)
{
    pid_t r;
    do
        r = waitpid(pid, st, 0);
    while (r < 0 && errno == EINTR);
    return r;
}

/* What the writer child is to do. */
typedef struct tl_cfg {
    const char *dir;
    uint64_t seed;       /* operations are tl_op_make(seed, n) */
    uint64_t first_n;    /* the first operation's n */
    unsigned reopen;     /* close and reopen (a new segment size) every this many
                            operations; 0: never */
    int log_fd;          /* "A n\n" after each acknowledged operation; -1: none */
    int stop_fd;         /* readable (closed) when the writer is to stop; -1: never */
    int res_fd;          /* the writer's figures when it stops; -1: none */
} tl_cfg;

/* The writer's figures, told when it stops. */
typedef struct tl_result {
    int status;           /* 0, or the step that failed */
    char msg[256];        /* kv_errmsg of that failure */
    unsigned long long ops, bytes, compactions, kv_compacts, opens;
} tl_result;

/* Opens the store with segments of 4..64 KiB, a sync mode and a compression drawn
 * from r, compaction in the background at a dead ratio of 0.1, unpaced.
 * KV_SYNC_ALWAYS writes through io_uring where there is one, so the kill test also
 * kills writers with a write and its fdatasync in flight in the ring. */
static int tl_open(const tl_cfg *c, kvt_rng *r, kv_db **db)
{
    kv_options o;
    kv_options_init(&o);
    o.segment_bytes = kvt_rng_range(r, 4, 64) << 10;
    o.sync = (int)kvt_rng_below(r, 3); /* ALWAYS, INTERVAL or NONE */
    o.sync_interval_ms = 5;
    o.compression = kvt_rng_chance(r, 50) ? KV_COMPRESS_LZ4 : KV_COMPRESS_NONE;
    o.auto_compact = 1;
    o.compact_dead_ratio = 0.1;
    o.compact_bytes_per_sec = 0;
    return kv_open(c->dir, &o, db);
}

static int tl_stop_asked(const tl_cfg *c)
{
    char b;
    return c->stop_fd >= 0 && !(tl_read(c->stop_fd, &b, 1) < 0 && errno == EAGAIN);
}

/* The child: writes until told to stop (or killed, or TL_MAX_S pass, or the parent
 * dies). Never returns. */
static void tl_writer_main(const tl_cfg *c)
{
    tl_result res;
    kvt_rng r;
    kv_db *db = NULL;
    kv_batch *b = kv_batch_new();
    uint64_t end = kvt_now_ms() + TL_MAX_S * 1000u;
    memset(&res, 0, sizeof res);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    kvt_rng_seed(&r, c->seed ^ (uint64_t)getpid());
    res.status = b != NULL && tl_open(c, &r, &db) == KV_OK ? 0 : 1;
    res.opens = res.status == 0;
    for (uint64_t n = c->first_n; res.status == 0 && !tl_stop_asked(c) && kvt_now_ms() < end;
         n++) {
        tl_op op;
        tl_op_make(c->seed, n, &op);
        if (tl_apply(db, b, n, &op) != KV_OK) {
            res.status = 2;
            break;
        }
        if (c->log_fd >= 0) {
            char line[32];
            int len = snprintf(line, sizeof line, "A %llu\n", (unsigned long long)n);
            if (tl_write(c->log_fd, line, (size_t)len) != len)
                res.status = 3;
        }
        for (unsigned j = 0; j < op.nsub; j++)
            res.bytes += op.sub[j].pad + 24;
        if (++res.ops % 1500 == 0) {
            res.status = kv_compact(db) == KV_OK ? res.status : 4;
            res.kv_compacts++;
        }
        if (c->reopen != 0 && res.ops % c->reopen == 0 && res.status == 0) {
            kv_stats st;
            kv_stat(db, &st);
            res.compactions += st.compactions;
            res.status = kv_close(db) == KV_OK ? 0 : 5;
            db = NULL;
            if (res.status == 0)
                res.status = tl_open(c, &r, &db) == KV_OK ? 0 : 6;
            res.opens++;
        }
    }
    if (res.status != 0)
        snprintf(res.msg, sizeof res.msg, "%s", kv_errmsg());
    if (db != NULL) {
        kv_stats st;
        kv_stat(db, &st);
        res.compactions += st.compactions;
        if (kv_close(db) != KV_OK && res.status == 0) {
            res.status = 7;
            snprintf(res.msg, sizeof res.msg, "%s", kv_errmsg());
        }
    }
    kv_batch_free(b);
    ssize_t w = c->res_fd >= 0 ? tl_write(c->res_fd, &res, sizeof res) : (ssize_t)sizeof res;
    _exit(w == (ssize_t)sizeof res ? 0 : 8);
}

/* A running writer child. */
typedef struct tl_writer {
    pid_t pid;
    int stop_fd;   /* write end: closing it stops the writer (-1: kill it instead) */
    int res_fd;    /* read end of its figures */
} tl_writer;

/* Starts the writer child on c (stop and result pipes are made here unless
 * killable). */
static void tl_writer_start(tl_writer *w, tl_cfg c, int killable)
{
    int stop[2] = {-1, -1}, res[2] = {-1, -1};
    if (!killable) {
        KVT_CHECK_FATAL(pipe(stop) == 0 && pipe(res) == 0, "pipe: %s", strerror(errno));
        KVT_CHECK_FATAL(fcntl(stop[0], F_SETFL, O_NONBLOCK) == 0, "fcntl: %s", strerror(errno));
    }
    fflush(NULL);
    w->pid = fork();
    KVT_CHECK_FATAL(w->pid >= 0, "fork: %s", strerror(errno));
    if (w->pid == 0) {
        if (!killable) {
            close(stop[1]);
            close(res[0]);
        }
        c.stop_fd = stop[0];
        c.res_fd = res[1];
        tl_writer_main(&c);
    }
    if (!killable) {
        close(stop[0]);
        close(res[1]);
    }
    w->stop_fd = stop[1];
    w->res_fd = res[0];
}

/* Stops the writer and checks that it worked, and rolled and compacted at least
 * min_rolls and min_compactions times. Not fatal: the child is always reaped. */
static void tl_writer_stop(tl_writer *w, unsigned min_rolls, unsigned min_compactions)
{
    tl_result res;
    int st = 0;
    memset(&res, 0, sizeof res);
    close(w->stop_fd);
    ssize_t got = tl_read(w->res_fd, &res, sizeof res);
    close(w->res_fd);
    KVT_CHECK(tl_waitpid(w->pid, &st) == w->pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the writer child ended with status 0x%x", st);
    KVT_CHECK(got == (ssize_t)sizeof res && res.status == 0, "the writer failed (step %d): %s",
              res.status, res.msg);
    unsigned long long rolls = res.bytes / (34u << 10); /* segments of 34 KiB on average */
    kvt_note("writer: %llu operations, %llu opens, ~%llu rolls, %llu compactions (%llu "
             "kv_compact)", res.ops, res.opens, rolls, res.compactions, res.kv_compacts);
    KVT_CHECK(rolls >= min_rolls && res.compactions >= min_compactions, "the writer rolled "
              "~%llu times and compacted %llu times: too few to test anything", rolls,
              res.compactions);
}

/* Creates the store in dir with the pinned keys. */
static void tl_seed_store(const char *dir)
{
    kv_db *db;
    kv_options o;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 16u << 10);
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    for (unsigned i = 0; i < TL_PINS; i++) {
        char k[16], v[700];
        size_t vl = tl_pin(k, sizeof k, v, sizeof v, i);
        KVT_RC_FATAL(kv_put(db, k, strlen(k), v, vl), KV_OK);
    }
    KVT_RC_FATAL(kvt_close(db), KV_OK);
}

/* ---- running a tool --------------------------------------------------------------------- */

/* One tool run: its exit status, stdout and stderr apart. */
typedef struct tl_run {
    int rc;
    char *out;        /* stdout (static buffer of the suite) */
    size_t out_cap;
    int out_full;     /* stdout filled the buffer: cut */
    char err[8192];   /* stderr (cut at 8 KiB) */
    char cmd[4200];   /* the command, for messages */
} tl_run;

static char g_out[8u << 20]; /* the tools' stdout */

/* Runs the printf-style command with stdin from /dev/null, stdout into r->out and
 * stderr into errfile (outside the store), then read into r->err. */
static void tl_runf(tl_run *r, const char *errfile, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void tl_runf(tl_run *r, const char *errfile, const char *fmt, ...)
{
    char cmd[8400];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(r->cmd, sizeof r->cmd, fmt, ap);
    va_end(ap);
    KVT_CHECK_FATAL(len > 0 && (size_t)len < sizeof r->cmd, "command too long");
    snprintf(cmd, sizeof cmd, "%s </dev/null 2>'%s'", r->cmd, errfile);
    r->out = g_out;
    r->out_cap = sizeof g_out;
    r->rc = kvt_run(cmd, r->out, r->out_cap);
    r->out_full = strlen(r->out) + 1 >= r->out_cap;
    size_t n;
    uint8_t *e = kvt_slurp(errfile, &n);
    snprintf(r->err, sizeof r->err, "%.*s", (int)(n < sizeof r->err ? n : sizeof r->err - 1),
             (const char *)e);
    free(e);
}

/* 1 when every line of text holds ": note: " (empty text too). */
static int only_notes(const char *text)
{
    const char *l = text;
    while (*l != '\0') {
        const char *nl = strchr(l, '\n');
        size_t len = nl != NULL ? (size_t)(nl - l) : strlen(l);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), l);
        if (strstr(line, ": note: ") == NULL)
            return 0;
        l += len + (nl != NULL);
    }
    return 1;
}

/* Splits text into lines in place; calls fn on each non-empty one until it returns
 * non-zero, which is returned. */
static int each_line(char *text, int (*fn)(void *arg, char *line), void *arg)
{
    char *save;
    for (char *l = strtok_r(text, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        int rc = fn(arg, l);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- what a tool's output must be -------------------------------------------------------- */

/* What the lines of a dump or a scan showed. */
typedef struct tl_seen {
    unsigned pins;          /* pinned keys with their exact value */
    unsigned long pairs;    /* key-value pairs */
    int header, end;        /* dump: past HEADER=END; DATA=END seen */
    char key[256];          /* dump: the key line waiting for its value */
    int have_key;
    char bad[300];          /* the first thing wrong */
} tl_seen;

/* A pair read back: it must belong to its key, and a pinned key hold its value. */
static void tl_pair(tl_seen *s, const char *k, const char *v)
{
    size_t kl = strlen(k), vl = strlen(v);
    s->pairs++;
    if (!tl_belongs(k, kl, v, vl)) {
        if (s->bad[0] == '\0')
            snprintf(s->bad, sizeof s->bad, "key %.40s has value \"%.60s\"", k, v);
        return;
    }
    unsigned i;
    char pk[16], pv[700];
    if (sscanf(k, "pin%3u", &i) == 1 && i < TL_PINS) {
        tl_pin(pk, sizeof pk, pv, sizeof pv, i);
        if (strcmp(v, pv) == 0)
            s->pins++;
        else if (s->bad[0] == '\0')
            snprintf(s->bad, sizeof s->bad, "pinned key %s has value \"%.60s\"", k, v);
    }
}

/* kvdump -p: the header, pairs of " key" and " value" lines, DATA=END. */
static int dump_line(void *arg, char *l)
{
    tl_seen *s = arg;
    if (!s->header) {
        s->header = strcmp(l, "HEADER=END") == 0;
        return 0;
    }
    if (strcmp(l, "DATA=END") == 0) {
        s->end = 1;
        return 0;
    }
    if (l[0] != ' ' || s->end) {
        snprintf(s->bad, sizeof s->bad, "unexpected line \"%.60s\"", l);
        return 1;
    }
    if (!s->have_key) {
        snprintf(s->key, sizeof s->key, "%s", l + 1);
        s->have_key = 1;
    } else {
        tl_pair(s, s->key, l + 1);
        s->have_key = 0;
    }
    return 0;
}

/* kv scan: "key<TAB>value" lines. */
static int scan_line(void *arg, char *l)
{
    tl_seen *s = arg;
    char *tab = strchr(l, '\t');
    if (tab == NULL) {
        snprintf(s->bad, sizeof s->bad, "no tab in \"%.60s\"", l);
        return 1;
    }
    *tab = '\0';
    tl_pair(s, l, tab + 1);
    return 0;
}

/* kv keys: count the pinned keys. */
static int keys_line(void *arg, char *l)
{
    tl_seen *s = arg;
    unsigned i;
    char rest;
    s->pairs++;
    if (sscanf(l, "pin%3u%c", &i, &rest) == 1 && i < TL_PINS)
        s->pins++;
    return 0;
}

/* kvdump --all --json: every line one JSON object with a "what". */
static int json_line(void *arg, char *l)
{
    tl_seen *s = arg;
    json_error_t e;
    json_t *j = json_loads(l, 0, &e);
    if (j == NULL || json_string_value(json_object_get(j, "what")) == NULL) {
        snprintf(s->bad, sizeof s->bad, "not a JSON object with \"what\": %s: \"%.80s\"",
                 j == NULL ? e.text : "", l);
        json_decref(j);
        return 1;
    }
    s->pairs++;
    if (strcmp(json_string_value(json_object_get(j, "what")), "damage") == 0)
        s->pins++; /* damaged stretches listed */
    json_decref(j);
    return 0;
}

/* kvdump --all in text: count the damage lines ("FILE damage ..."). */
static int all_line(void *arg, char *l)
{
    tl_seen *s = arg;
    s->pairs++;
    const char *sp = strchr(l, ' ');
    if (sp != NULL && strncmp(sp, " damage ", 8) == 0)
        s->pins++;
    return 0;
}

/* ---- the tools beside the writer ---------------------------------------------------------- */

enum {
    T_CHECK, T_CHECK_JSON, T_CHECK_VERBOSE, T_DUMP_P, T_DUMP_HEX, T_DUMP_ALL, T_DUMP_ALL_JSON,
    T_KEYS, T_SCAN, T_STATS, T_STATS_JSON, T_GET, T_COUNT
};

static const char *const tool_names[T_COUNT] = {
    "kvcheck", "kvcheck --json", "kvcheck --verbose", "kvdump -p", "kvdump",
    "kvdump --all", "kvdump --all --json", "kv keys", "kv scan", "kv stats",
    "kv stats --json", "kv get"};

/* Runs tool t on dir (round i); returns 0 when it reported a healthy store, else
 * -1 with why. *damage_lines gets the damaged stretches kvdump --all listed. */
static int tl_tool(int t, unsigned i, const char *dir, const char *errfile, char *why, size_t wn,
                   unsigned *damage_lines)
{
    static tl_run r;
    tl_seen s;
    const char *b = kvt_bin();
    int ok = 1;
    memset(&s, 0, sizeof s);
    *damage_lines = 0;
    switch (t) {
    case T_CHECK:
        tl_runf(&r, errfile, "'%s/kvcheck' '%s'", b, dir);
        ok = r.rc == 0 && r.err[0] == '\0' && strstr(r.out, "damaged=0 ") != NULL;
        break;
    case T_CHECK_JSON: {
        tl_runf(&r, errfile, "'%s/kvcheck' --json '%s'", b, dir);
        json_t *j = r.rc == 0 ? kvt_json_parse(r.out) : NULL;
        ok = j != NULL && r.err[0] == '\0' && json_is_true(json_object_get(j, "clean"))
             && kvt_json_int(j, "damaged") == 0;
        json_decref(j);
        break;
    }
    case T_CHECK_VERBOSE:
        tl_runf(&r, errfile, "'%s/kvcheck' --verbose '%s'", b, dir);
        ok = r.rc == 0 && only_notes(r.err) && strstr(r.out, "damaged=0 ") != NULL;
        break;
    case T_DUMP_P:
        tl_runf(&r, errfile, "'%s/kvdump' -p '%s'", b, dir);
        ok = r.rc == 0 && r.err[0] == '\0' && !r.out_full;
        each_line(r.out, dump_line, &s);
        ok = ok && s.bad[0] == '\0' && s.end && !s.have_key && s.pins == TL_PINS;
        break;
    case T_DUMP_HEX: {
        tl_runf(&r, errfile, "'%s/kvdump' '%s'", b, dir);
        size_t n = strlen(r.out);
        ok = r.rc == 0 && r.err[0] == '\0' && !r.out_full && n > 9
             && strcmp(r.out + n - 9, "DATA=END\n") == 0;
        break;
    }
    case T_DUMP_ALL:
        tl_runf(&r, errfile, "'%s/kvdump' --all '%s'", b, dir);
        ok = r.rc == 0 && only_notes(r.err) && !r.out_full;
        each_line(r.out, all_line, &s);
        *damage_lines = s.pins;
        break;
    case T_DUMP_ALL_JSON:
        tl_runf(&r, errfile, "'%s/kvdump' --all --json '%s'", b, dir);
        ok = r.rc == 0 && only_notes(r.err) && !r.out_full;
        ok = ok && each_line(r.out, json_line, &s) == 0 && s.pairs > 0;
        *damage_lines = s.pins;
        break;
    case T_KEYS:
        tl_runf(&r, errfile, "'%s/kv' -d '%s' keys", b, dir);
        ok = r.rc == 0 && r.err[0] == '\0';
        each_line(r.out, keys_line, &s);
        ok = ok && s.pins == TL_PINS;
        break;
    case T_SCAN:
        tl_runf(&r, errfile, "'%s/kv' -d '%s' scan", b, dir);
        ok = r.rc == 0 && r.err[0] == '\0' && !r.out_full;
        each_line(r.out, scan_line, &s);
        ok = ok && s.bad[0] == '\0' && s.pins == TL_PINS;
        break;
    case T_STATS:
        tl_runf(&r, errfile, "'%s/kv' -d '%s' stats", b, dir);
        ok = r.rc == 0 && r.err[0] == '\0' && strstr(r.out, "\nread_only 1\n") != NULL;
        break;
    case T_STATS_JSON: {
        tl_runf(&r, errfile, "'%s/kv' -d '%s' stats --json", b, dir);
        json_t *j = r.rc == 0 ? kvt_json_parse(r.out) : NULL;
        ok = j != NULL && r.err[0] == '\0' && kvt_json_int(j, "read_only") == 1
             && kvt_json_int(j, "keys") >= TL_PINS;
        json_decref(j);
        break;
    }
    default: {
        char k[16], v[700];
        unsigned p = (unsigned)(kvt_mix64(i) % TL_PINS);
        tl_pin(k, sizeof k, v, sizeof v, p);
        tl_runf(&r, errfile, "'%s/kv' -d '%s' get %s", b, dir, k);
        ok = r.rc == 0 && r.err[0] == '\0' && strcmp(r.out, v) == 0;
        break;
    }
    }
    if (!ok)
        snprintf(why, wn, "%s: exit %d%s; %s; stderr \"%.600s\"; stdout \"%.300s\"", r.cmd, r.rc,
                 r.out_full ? " (stdout cut)" : "", s.bad, r.err, r.out);
    return ok ? 0 : -1;
}

/* Every tool in turn, again and again, beside the writer. */
static void test_tools_beside_writer(void)
{
    char *dir = kvt_dir_new("tl-live");
    char *aux = kvt_dir_new("tl-aux");
    char *errfile = kvt_path(aux, "stderr");
    unsigned runs[T_COUNT] = {0}, failed[T_COUNT] = {0}, damage_listed = 0;
    static char first[T_COUNT][1200];
    static char why[6000];
    uint64_t cap = kvt_scaled(14000, 7000);
    tl_writer w;
    tl_seed_store(dir);
    tl_cfg c = {.dir = dir, .seed = kvt_now_us(), .first_n = 1, .reopen = 2500, .log_fd = -1};
    kvt_note("seed %llu", (unsigned long long)c.seed);
    tl_writer_start(&w, c, 0);
    kvt_sleep_ms(300);
    uint64_t t0 = kvt_now_ms();
    unsigned i = 0;
    for (; kvt_now_ms() - t0 < cap || (runs[T_GET] < 3 && kvt_now_ms() - t0 < 4 * cap); i++) {
        int t = (int)(i % T_COUNT);
        unsigned dl;
        runs[t]++;
        if (tl_tool(t, i, dir, errfile, why, sizeof why, &dl) != 0 && failed[t]++ == 0)
            snprintf(first[t], sizeof first[t], "%.1100s", why);
        damage_listed += dl;
    }
    tl_writer_stop(&w, 100, 20);
    kvt_note("%u tool runs in %.1f s (%u rounds); kvdump --all listed %u damaged stretches",
             i, (double)(kvt_now_ms() - t0) / 1000.0, runs[T_GET], damage_listed);
    for (int t = 0; t < T_COUNT; t++)
        KVT_CHECK(failed[t] == 0, "%s: %u of %u runs beside the writer reported a problem; the "
                  "first: %s", tool_names[t], failed[t], runs[t], first[t]);
    KVT_CHECK(runs[T_GET] >= 3, "only %u rounds of the tools in %llu ms", runs[T_GET],
              (unsigned long long)cap);
}

/* ---- a killed writer ---------------------------------------------------------------------- */

/* Writes the printf-style text into why and returns -1. */
static int tl_fail(char *why, size_t wn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int tl_fail(char *why, size_t wn, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, wn, fmt, ap);
    va_end(ap);
    return -1;
}

/* Reads the writer's log: the acknowledged operations must be first, first + 1, ...
 * Returns how many there were, or -1 (a gap) with why. */
static long tl_read_log(const char *path, uint64_t first, char *why, size_t wn)
{
    size_t n;
    char *text = (char *)kvt_slurp(path, &n), *save;
    long count = 0;
    text[n] = '\0'; /* kvt_slurp leaves room for it */
    for (char *l = strtok_r(text, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        unsigned long long v;
        if (sscanf(l, "A %llu", &v) != 1 || v != first + (uint64_t)count) {
            snprintf(why, wn, "log line %ld is \"%.40s\", expected A %llu", count + 1, l,
                     (unsigned long long)(first + (uint64_t)count));
            count = -1;
            break;
        }
        count++;
    }
    free(text);
    return count;
}

/* The leftovers kvcheck notes, by what its note says. */
static const char *const leftover_kinds[][2] = {
    {"MANIFEST being written", "MANIFEST.tmp"},
    {"hint being written", ".hint.tmp"},
    {"hint of a segment that is not sealed", "hint of an unsealed segment"},
    {"segment the MANIFEST does not name", "unnamed segment"},
    {"WAL file the MANIFEST does not name", "unnamed WAL file"},
    {"WAL file of a sealed segment", "WAL file of a sealed segment"},
    {"its records are in the WAL file", "unfinished segment append"},
    {"holds nothing after the records", "unfinished WAL write"},
};
#define TL_LEFTOVER_KINDS (sizeof leftover_kinds / sizeof leftover_kinds[0])

/* Figures of the kill loop. */
typedef struct tl_kills {
    unsigned kinds[TL_LEFTOVER_KINDS]; /* notes of each leftover kind */
    unsigned rounds, inflight_applied, notes, checks_failed, state_failed;
    unsigned long long acked;
    char first_check[1200], first_state[600];
} tl_kills;

/* The store after a kill, through a read-only handle: every key holds what the
 * acknowledged operations left (model), except the keys of operation n, the one
 * that may have been in flight: all of them as it leaves them, or all as before.
 * The model takes what is found. Returns 0, or -1 with why. */
static int tl_verify(const char *dir, uint64_t seed, uint64_t n, tl_state *model, int *applied,
                     char *why, size_t wn)
{
    kv_options o;
    kv_db *db;
    tl_op op;
    tl_state after[TL_KEYS];
    int touched[TL_KEYS] = {0}, seen_new = 0, seen_old = 0, rc = 0;
    char w[300] = "";
    kv_options_init(&o);
    o.read_only = 1;
    o.create = 0;
    if (kv_open(dir, &o, &db) != KV_OK)
        return tl_fail(why, wn, "read-only open after the kill: %s", kv_errmsg());
    tl_op_make(seed, n, &op);
    memcpy(after, model, sizeof after);
    tl_effect(&op, n, after);
    for (unsigned j = 0; j < op.nsub; j++)
        touched[op.sub[j].key] = 1;
    for (unsigned k = 0; k < TL_KEYS && rc == 0; k++) {
        if (!touched[k]) {
            if (!tl_holds(db, k, &model[k], w, sizeof w))
                rc = tl_fail(why, wn, "k%04u: %s", k, w);
            continue;
        }
        int is_old = tl_holds(db, k, &model[k], w, sizeof w);
        int is_new = tl_holds(db, k, &after[k], w, sizeof w);
        seen_old += is_old && !is_new;
        seen_new += is_new && !is_old;
        if (!is_old && !is_new)
            rc = tl_fail(why, wn, "k%04u of operation %llu (the one in flight): %s", k,
                         (unsigned long long)n, w);
    }
    if (rc == 0 && seen_new > 0 && seen_old > 0)
        rc = tl_fail(why, wn, "the batch of operation %llu (in flight) is there in part: %d "
                     "keys new, %d old", (unsigned long long)n, seen_new, seen_old);
    for (unsigned i = 0; i < TL_PINS && rc == 0; i++) {
        char k[16], v[700];
        size_t vl = tl_pin(k, sizeof k, v, sizeof v, i);
        if (kvt_value_cmp(db, k, strlen(k), v, vl, w, sizeof w) != 0)
            rc = tl_fail(why, wn, "pinned %s: %s", k, w);
    }
    kv_close(db);
    *applied = seen_new > 0;
    if (*applied)
        memcpy(model, after, sizeof after);
    return rc;
}

/* One round: a writer from operation *next, killed after a random pause; then
 * kvcheck and the store's state. */
static void tl_kill_round(const char *dir, const char *aux, uint64_t seed, kvt_rng *r,
                          uint64_t *next, tl_state *model, tl_kills *k)
{
    char *log = kvt_path(aux, "acked"), *errfile = kvt_path(aux, "stderr");
    static char why[6000];
    static tl_run run;
    tl_writer w;
    int st = 0, applied = 0;
    int log_fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    KVT_CHECK_FATAL(log_fd >= 0, "%s: %s", log, strerror(errno));
    tl_cfg c = {.dir = dir, .seed = seed, .first_n = *next, .reopen = 0, .log_fd = log_fd};
    tl_writer_start(&w, c, 1);
    close(log_fd);
    kvt_sleep_ms((unsigned)kvt_rng_range(r, 2, 120));
    kill(w.pid, SIGKILL);
    KVT_CHECK_FATAL(tl_waitpid(w.pid, &st) == w.pid, "waitpid: %s", strerror(errno));
    KVT_CHECK_FATAL(WIFSIGNALED(st), "the writer child ended before the kill (status 0x%x)", st);
    long acked = tl_read_log(log, *next, why, sizeof why);
    KVT_CHECK_FATAL(acked >= 0, "%s", why);
    for (long i = 0; i < acked; i++) {
        tl_op op;
        tl_op_make(seed, *next + (uint64_t)i, &op);
        tl_effect(&op, *next + (uint64_t)i, model);
    }
    k->acked += (unsigned long long)acked;
    *next += (uint64_t)acked; /* the operation that may have been in flight */
    int verbose = k->rounds % 2;
    tl_runf(&run, errfile, "'%s/kvcheck' %s'%s'", kvt_bin(), verbose ? "--verbose " : "", dir);
    if ((run.rc != 0 || !only_notes(run.err) || strstr(run.out, "damaged=0 ") == NULL)
        && k->checks_failed++ == 0)
        snprintf(k->first_check, sizeof k->first_check, "round %u: %.200s: exit %d: %.600s %.300s",
                 k->rounds, run.cmd, run.rc, run.err, run.out);
    for (const char *p = run.err; (p = strstr(p, ": note: ")) != NULL; p++)
        k->notes++;
    for (size_t i = 0; i < TL_LEFTOVER_KINDS; i++)
        for (const char *p = run.err; (p = strstr(p, leftover_kinds[i][0])) != NULL; p++)
            k->kinds[i]++;
    if (tl_verify(dir, seed, *next, model, &applied, why, sizeof why) != 0
        && k->state_failed++ == 0)
        snprintf(k->first_state, sizeof k->first_state, "round %u (%ld acknowledged): %.500s",
                 k->rounds, acked, why);
    k->inflight_applied += applied;
    *next += 1;
    k->rounds++;
}

/* A writer killed at random moments, again and again: kvcheck exits 0 after every
 * kill, and the store holds every acknowledged write. */
static void test_killed_writer(void)
{
    char *dir = kvt_dir_new("tl-kill");
    char *aux = kvt_dir_new("tl-kaux");
    static tl_state model[TL_KEYS];
    tl_kills k;
    kvt_rng r;
    uint64_t seed = kvt_now_us(), next = 1, cap = kvt_scaled(10000, 5000);
    memset(model, 0, sizeof model);
    memset(&k, 0, sizeof k);
    kvt_rng_seed(&r, seed);
    kvt_note("seed %llu", (unsigned long long)seed);
    tl_seed_store(dir);
    uint64_t t0 = kvt_now_ms();
    /* The time, and then (a slow machine: ASan, a loaded CI runner) until enough was
     * done to test anything, up to four times as long. */
    while (k.rounds < 400 && (kvt_now_ms() - t0 < cap
                              || ((k.rounds < 10 || k.acked < 1000) && kvt_now_ms() - t0 < 4 * cap)))
        tl_kill_round(dir, aux, seed, &r, &next, model, &k);
    kvt_note("%u kills in %.1f s, %llu operations acknowledged, the one in flight found "
             "applied %u times; kvcheck told %u notes", k.rounds,
             (double)(kvt_now_ms() - t0) / 1000.0, k.acked, k.inflight_applied, k.notes);
    char kinds[600] = "";
    for (size_t i = 0; i < TL_LEFTOVER_KINDS; i++)
        snprintf(kinds + strlen(kinds), sizeof kinds - strlen(kinds), "%s%s %u", i ? ", " : "",
                 leftover_kinds[i][1], k.kinds[i]);
    kvt_note("leftovers noted: %s", kinds);
    KVT_CHECK(k.checks_failed == 0, "kvcheck after a kill reported a problem %u times of %u; "
              "the first: %s", k.checks_failed, k.rounds, k.first_check);
    KVT_CHECK(k.state_failed == 0, "the store after a kill lost acknowledged writes %u times "
              "of %u; the first: %s", k.state_failed, k.rounds, k.first_state);
    KVT_CHECK(k.rounds >= 10 && k.acked >= 1000, "only %u kills and %llu operations",
              k.rounds, k.acked);
}

/* ---- a held store ------------------------------------------------------------------------ */

/* Waits (up to 5 s) until LOCK names pid: the writer has opened the store. */
static void tl_wait_lock(const char *dir, pid_t pid)
{
    char want[32];
    snprintf(want, sizeof want, "%ld\n", (long)pid);
    for (uint64_t until = kvt_now_ms() + 5000; kvt_now_ms() < until; kvt_sleep_ms(5)) {
        char buf[32] = "";
        int fd = open(kvt_path(dir, "LOCK"), O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? tl_read(fd, buf, sizeof buf - 1) : -1;
        if (fd >= 0)
            close(fd);
        if (n > 0 && strcmp(buf, want) == 0)
            return;
    }
    KVT_CHECK_FATAL(0, "the writer (pid %ld) did not take %s/LOCK in 5 s", (long)pid, dir);
}

/* kv put, del and load and kvcheck --repair on a store a writer process holds: exit
 * 3, naming the writer's pid, and nothing of theirs reaches the store; kvcheck itself
 * reads it (exit 0). */
static void test_held_store_refuses(void)
{
    char *dir = kvt_dir_new("tl-held"), *aux = kvt_dir_new("tl-haux");
    char *src = kvt_path(aux, "src"), *dump = kvt_path(aux, "dump");
    char *errfile = kvt_path(aux, "stderr"), pid[32];
    static tl_run r;
    const char *b = kvt_bin();
    kv_db *db;
    tl_seed_store(dir);
    KVT_RC_FATAL(kvt_open_mode(src, KV_SYNC_NONE, KV_IO_AUTO, 0, &db), KV_OK);
    KVT_RC_FATAL(kvt_put_str(db, "held-load", "loaded while held"), KV_OK);
    KVT_RC_FATAL(kvt_close(db), KV_OK);
    tl_runf(&r, errfile, "'%s/kvdump' '%s' >'%s'", b, src, dump);
    KVT_CHECK_FATAL(r.rc == 0, "kvdump of the source store: exit %d: %s", r.rc, r.err);
    tl_writer w;
    tl_cfg c = {.dir = dir, .seed = kvt_now_us(), .first_n = 1, .reopen = 0, .log_fd = -1};
    tl_writer_start(&w, c, 0);
    tl_wait_lock(dir, w.pid);
    snprintf(pid, sizeof pid, "pid %ld", (long)w.pid);
    static const char *const what[] = {"kv put", "kv del", "kv load", "kvcheck --repair"};
    for (int i = 0; i < 4; i++) {
        if (i == 0)
            tl_runf(&r, errfile, "'%s/kv' -d '%s' put held-put value", b, dir);
        else if (i == 1)
            tl_runf(&r, errfile, "'%s/kv' -d '%s' del pin000", b, dir);
        else if (i == 2)
            tl_runf(&r, errfile, "'%s/kv' -d '%s' load --overwrite -f '%s'", b, dir, dump);
        else
            tl_runf(&r, errfile, "'%s/kvcheck' --repair --yes '%s'", b, dir);
        KVT_CHECK(r.rc == 3 && strstr(r.err, pid) != NULL && strstr(r.err, dir) != NULL,
                  "%s on a store held by %s: exit %d, stderr \"%s\" (want exit 3 naming the "
                  "store and the pid)", what[i], pid, r.rc, r.err);
    }
    KVT_CHECK(strstr(r.out, "will:") == NULL, "kvcheck --repair told a plan for a held store: %s",
              r.out);
    tl_runf(&r, errfile, "'%s/kvcheck' '%s'", b, dir);
    KVT_CHECK(r.rc == 0 && strstr(r.out, "damaged=0 ") != NULL, "kvcheck on a held store: exit %d: "
              "%s %s", r.rc, r.err, r.out);
    tl_writer_stop(&w, 0, 0);
    kv_options o;
    kv_options_init(&o);
    o.read_only = 1;
    o.create = 0;
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    KVT_ASSERT_ABSENT(db, "held-put", 8);
    KVT_ASSERT_ABSENT(db, "held-load", 9);
    char k[16], v[700];
    size_t vl = tl_pin(k, sizeof k, v, sizeof v, 0);
    KVT_ASSERT_VALUE(db, k, strlen(k), v, vl);
    kvt_close(db);
}

/* ---- the locks ---------------------------------------------------------------------------- */

/* A store of a few sealed segments (4 KiB each), closed. */
static void tl_small_store(const char *dir)
{
    kv_db *db;
    KVT_RC_FATAL(kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_AUTO, 4096, &db), KV_OK);
    for (unsigned i = 0; i < 100; i++) {
        char k[16], v[300];
        snprintf(k, sizeof k, "k%04u", i);
        snprintf(v, sizeof v, "k%04u=%u;%0200u", i, i, i);
        KVT_RC_FATAL(kvt_put_str(db, k, v), KV_OK);
    }
    KVT_RC_FATAL(kvt_close(db), KV_OK);
}

static void tl_ro_options(kv_options *o)
{
    kv_options_init(o);
    o->read_only = 1;
    o->create = 0;
}

/* Two writer opens in one process conflict (flock belongs to the open file
 * description), whichever path names the directory; a read-only handle beside the
 * writer takes no writer lock and is no writer's obstacle. */
static void test_two_writers_one_process(void)
{
    char *dir = kvt_dir_new("tl-2w"), *aux = kvt_dir_new("tl-2waux");
    char *link = kvt_path(aux, "link"), *dot = kvt_path(dir, ".");
    char ours[32];
    kv_db *w1, *w2 = NULL, *ro;
    kv_options o;
    tl_small_store(dir);
    KVT_CHECK_FATAL(symlink(dir, link) == 0, "symlink %s: %s", link, strerror(errno));
    snprintf(ours, sizeof ours, "pid %ld", (long)getpid());
    KVT_RC_FATAL(kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_AUTO, 4096, &w1), KV_OK);
    const char *paths[3] = {dir, dot, link};
    for (int i = 0; i < 3; i++) {
        int rc = kvt_open_mode(paths[i], KV_SYNC_NONE, KV_IO_AUTO, 4096, &w2);
        KVT_CHECK(rc == KV_ELOCKED && strstr(kv_errmsg(), ours) != NULL, "a second writer open "
                  "in this process through %s: %s (%s); want KV_ELOCKED naming %s", paths[i],
                  kv_strerror(rc), kv_errmsg(), ours);
        if (rc == KV_OK)
            kvt_close(w2);
    }
    tl_ro_options(&o);
    KVT_RC(kvt_open(dir, &o, &ro), KV_OK);
    KVT_RC(kvt_put_str(w1, "beside", "a reader"), KV_OK);
    KVT_RC(kvt_close(w1), KV_OK);
    KVT_RC(kvt_open_mode(link, KV_SYNC_NONE, KV_IO_AUTO, 4096, &w2), KV_OK);
    KVT_RC(kvt_close(w2), KV_OK);
    KVT_RC(kvt_close(ro), KV_OK);
}

/* The child of test_reader_blocks_repair: a read-only handle held until the parent
 * closes the pipe; exits 0 when it opened and read k0000. */
static void tl_reader_child(const char *dir, int ready_fd, int wait_fd)
{
    kv_options o;
    kv_db *db;
    char b;
    tl_ro_options(&o);
    int ok = kv_open(dir, &o, &db) == KV_OK;
    void *v;
    size_t vl;
    ok = ok && kv_get(db, "k0000", 5, &v, &vl) == KV_OK;
    if (ok)
        kv_free(v);
    ssize_t w = tl_write(ready_fd, ok ? "y" : "n", 1);
    tl_read(wait_fd, &b, 1); /* until the parent closes the pipe */
    if (ok)
        kv_close(db);
    _exit(ok && w == 1 ? 0 : 1);
}

/* kvcheck --repair --yes on dir with a reader open: exit 3 with the message, nothing
 * told, nothing changed. */
static void tl_repair_refused(const char *dir, const char *errfile, const char *reader)
{
    static tl_run r;
    uint64_t before = kvt_dir_fingerprint(dir);
    tl_runf(&r, errfile, "'%s/kvcheck' --repair --yes '%s'", kvt_bin(), dir);
    KVT_CHECK(r.rc == 3 && strstr(r.err, "a read-only process has the store open; close it "
                                         "first") != NULL && strstr(r.err, "/LOCK") != NULL,
              "kvcheck --repair with %s: exit %d, stderr \"%s\" (want 3 and the message)", reader,
              r.rc, r.err);
    KVT_CHECK(strstr(r.out, "will:") == NULL, "kvcheck --repair told a plan: %s", r.out);
    KVT_CHECK(before == kvt_dir_fingerprint(dir), "kvcheck --repair with %s changed the store",
              reader);
}

/* A read-only handle holds the reader lock: kvcheck --repair refuses (exit 3) while
 * one is open, in this process or another, and repairs once it is closed. */
static void test_reader_blocks_repair(void)
{
    char *dir = kvt_dir_new("tl-rlock"), *aux = kvt_dir_new("tl-rlaux");
    char *errfile = kvt_path(aux, "stderr"), *hint = NULL;
    static tl_run r;
    kv_db *ro;
    kv_options o;
    int ready[2], hold[2], st;
    char got = 0;
    tl_small_store(dir);
    const char *names[] = {"000001.hint", "000002.hint", "000003.hint"};
    for (int i = 0; i < 3 && hint == NULL; i++)
        if (access(kvt_path(dir, names[i]), F_OK) == 0)
            hint = kvt_path(dir, names[i]);
    KVT_CHECK_FATAL(hint != NULL, "no hint among the first segments of %s", dir);
    KVT_CHECK_FATAL(unlink(hint) == 0, "unlink %s: %s", hint, strerror(errno));
    tl_ro_options(&o);
    KVT_RC_FATAL(kvt_open(dir, &o, &ro), KV_OK);
    tl_repair_refused(dir, errfile, "a read-only handle open in this process");
    KVT_RC(kvt_close(ro), KV_OK);

    KVT_CHECK_FATAL(pipe(ready) == 0 && pipe(hold) == 0, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    KVT_CHECK_FATAL(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        close(ready[0]);
        close(hold[1]);
        tl_reader_child(dir, ready[1], hold[0]);
    }
    close(ready[1]);
    close(hold[0]);
    KVT_CHECK(tl_read(ready[0], &got, 1) == 1 && got == 'y', "the reader child did not open");
    tl_repair_refused(dir, errfile, "a read-only handle open in another process");
    close(hold[1]);
    close(ready[0]);
    KVT_CHECK(tl_waitpid(pid, &st) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the reader child ended with status 0x%x", st);

    tl_runf(&r, errfile, "'%s/kvcheck' --repair --yes '%s'", kvt_bin(), dir);
    KVT_CHECK(r.rc == 0 && strstr(r.out, "1 hints written") != NULL, "kvcheck --repair with no "
              "reader: exit %d, \"%s\" \"%s\"", r.rc, r.err, r.out);
    KVT_CHECK(access(hint, F_OK) == 0, "the repair did not write %s again", hint);
}

/* While kvcheck --repair holds the reader lock (taken here as it takes it), a
 * read-only open is KV_ELOCKED naming LOCK, and opens again once it is released; a
 * reader open, the repair's lock is refused. */
static void test_repair_holds_readers_out(void)
{
    char *dir = kvt_dir_new("tl-rxlock");
    kv_options o;
    kv_db *ro;
    int fd;
    tl_small_store(dir);
    tl_ro_options(&o);
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    KVT_CHECK_FATAL(dirfd >= 0, "open %s: %s", dir, strerror(errno));
    KVT_RC_FATAL(lock_take(dirfd, dir, &fd), KV_OK);
    KVT_RC(lock_readers_absent(fd, dir), KV_OK);
    int rc = kvt_open(dir, &o, &ro);
    KVT_CHECK(rc == KV_ELOCKED && strstr(kv_errmsg(), "kvcheck --repair") != NULL
              && strstr(kv_errmsg(), "/LOCK") != NULL, "a read-only open during a repair: %s "
              "(%s); want KV_ELOCKED naming the repair", kv_strerror(rc), kv_errmsg());
    if (rc == KV_OK)
        kvt_close(ro);
    lock_release(fd);
    KVT_RC_FATAL(kvt_open(dir, &o, &ro), KV_OK);
    KVT_RC_FATAL(lock_take(dirfd, dir, &fd), KV_OK);
    rc = lock_readers_absent(fd, dir);
    KVT_CHECK(rc == KV_ELOCKED && strstr(kv_errmsg(), "a read-only process has the store open")
              != NULL, "the repair's lock beside a reader: %s (%s)", kv_strerror(rc), kv_errmsg());
    lock_release(fd);
    close(dirfd);
    KVT_RC(kvt_close(ro), KV_OK);
}

/* A store without LOCK (never opened by a writer here: a copy) opens read-only, and
 * the reader creates nothing: no LOCK appears, no byte changes. */
static void test_reader_without_lock_file(void)
{
    char *dir = kvt_dir_new("tl-nolock");
    kv_options o;
    kv_db *ro;
    tl_small_store(dir);
    KVT_CHECK_FATAL(unlink(kvt_path(dir, "LOCK")) == 0, "unlink LOCK: %s", strerror(errno));
    uint64_t before = kvt_dir_fingerprint(dir);
    tl_ro_options(&o);
    KVT_RC_FATAL(kvt_open(dir, &o, &ro), KV_OK);
    char v[300];
    int vl = snprintf(v, sizeof v, "k%04u=%u;%0200u", 42u, 42u, 42u);
    KVT_ASSERT_VALUE(ro, "k0042", 5, v, (size_t)vl);
    KVT_RC(kvt_close(ro), KV_OK);
    KVT_CHECK(access(kvt_path(dir, "LOCK"), F_OK) != 0, "a read-only open created LOCK");
    KVT_CHECK(before == kvt_dir_fingerprint(dir), "a read-only open changed the store");
}

/* ---- leftovers are notes ------------------------------------------------------------------ */

static void tl_copy(const char *dir, const char *from, const char *to)
{
    size_t n;
    uint8_t *b = kvt_slurp(kvt_path(dir, from), &n);
    kvt_spill(kvt_path(dir, to), b, n);
    free(b);
}

/* The files of steps a writer did not finish, made by hand in a closed store: kvcheck
 * exits 0 and notes each one (not with --quiet), counts them as unfinished=; --repair
 * removes kv's own and leaves the COMPACT.* files to the compaction protocol. */
static void test_leftovers_are_notes(void)
{
    char *dir = kvt_dir_new("tl-left"), *aux = kvt_dir_new("tl-laux");
    char *errfile = kvt_path(aux, "stderr"), wal[64] = "", active_hint[64], cmd[4200];
    static tl_run r;
    const char *b = kvt_bin();
    tl_small_store(dir);
    snprintf(cmd, sizeof cmd, "cd '%s' && ls *.wal", dir);
    KVT_CHECK_FATAL(kvt_run(cmd, wal, sizeof wal) == 0 && strlen(wal) == 11, "one WAL file: %s",
                    wal);
    wal[10] = '\0';
    snprintf(active_hint, sizeof active_hint, "%.6s.hint", wal);
    const char *kv_own[5] = {"MANIFEST.tmp", "000900.hint.tmp", active_hint, "000901.seg",
                             "000902.wal"};
    static const char *const compact[4] = {"COMPACT.req", "COMPACT.res", "COMPACT.req.tmp",
                                           "COMPACT.res.tmp"};
    tl_copy(dir, "MANIFEST", kv_own[0]);
    tl_copy(dir, "000001.hint", kv_own[1]);
    tl_copy(dir, "000001.hint", kv_own[2]);
    tl_copy(dir, "000001.seg", kv_own[3]);
    tl_copy(dir, wal, kv_own[4]);
    for (int i = 0; i < 4; i++)
        kvt_spill(kvt_path(dir, compact[i]), "request\n", 8);
    tl_runf(&r, errfile, "'%s/kvcheck' '%s'", b, dir);
    KVT_CHECK(r.rc == 0 && strstr(r.out, " damaged=0 ") != NULL && strstr(r.out, " unfinished=9")
              != NULL && only_notes(r.err), "kvcheck on a store with leftovers: exit %d, \"%s\" "
              "\"%s\"", r.rc, r.err, r.out);
    for (int i = 0; i < 9; i++) {
        const char *name = i < 5 ? kv_own[i] : compact[i - 5];
        char want[300];
        snprintf(want, sizeof want, "%s/%s: note: ", dir, name);
        KVT_CHECK(strstr(r.err, want) != NULL, "kvcheck does not note %s: \"%s\"", name, r.err);
    }
    tl_runf(&r, errfile, "'%s/kvcheck' --quiet '%s'", b, dir);
    KVT_CHECK(r.rc == 0 && r.err[0] == '\0' && r.out[0] == '\0', "kvcheck --quiet: exit %d, \"%s\" "
              "\"%s\"", r.rc, r.err, r.out);
    tl_runf(&r, errfile, "'%s/kvcheck' --json '%s'", b, dir);
    json_t *j = kvt_json_parse(r.out);
    KVT_CHECK(r.rc == 0 && j != NULL && json_is_true(json_object_get(j, "clean"))
              && kvt_json_int(j, "unfinished") == 9, "kvcheck --json: exit %d, %s", r.rc, r.out);
    json_decref(j);
    tl_runf(&r, errfile, "'%s/kvcheck' --repair --yes '%s'", b, dir);
    KVT_CHECK(r.rc == 0 && strstr(r.out, "5 files removed") != NULL, "kvcheck --repair: exit %d, "
              "\"%s\" \"%s\"", r.rc, r.err, r.out);
    for (int i = 0; i < 9; i++) {
        const char *name = i < 5 ? kv_own[i] : compact[i - 5];
        KVT_CHECK((access(kvt_path(dir, name), F_OK) == 0) == (i >= 5), "after the repair %s is %s",
                  name, i >= 5 ? "gone" : "still there");
    }
}

/* ---- an unfinished write, or damage ---------------------------------------------------- */

#define TL_REC (KV_ENTRY_HDR + 5 + 100) /* the size of each record of tl_twin_store */

/* A store whose active segment and WAL file both hold 40 puts of TL_REC bytes, one
 * per group (a 1 MiB segment: no roll), closed. */
static void tl_twin_store(const char *dir)
{
    kv_db *db;
    KVT_RC_FATAL(kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_PSYNC, 1u << 20, &db), KV_OK);
    for (unsigned i = 0; i < 40; i++) {
        char k[16], v[101];
        snprintf(k, sizeof k, "k%04u", i);
        memset(v, 'a' + (int)(i % 26), 100);
        KVT_RC_FATAL(kv_put(db, k, 5, v, 100), KV_OK);
    }
    KVT_RC_FATAL(kvt_close(db), KV_OK);
}

/* Cuts file name of dir to len bytes; with flip, changes the byte at flip - 1. */
static void tl_cut(const char *dir, const char *name, uint64_t len, uint64_t flip)
{
    size_t n;
    uint8_t *b = kvt_slurp(kvt_path(dir, name), &n);
    KVT_CHECK_FATAL(len <= n, "%s has %zu bytes, not %llu", name, n, (unsigned long long)len);
    if (flip != 0)
        b[flip - 1] ^= 0x40;
    kvt_spill(kvt_path(dir, name), b, (size_t)len);
    free(b);
}

/* A tail the end of the file cuts short is an unfinished write — a note, exit 0,
 * unfinished=1 — only where the twin file proves it: the active segment's when its
 * bytes are the WAL's, the WAL file's when the segment holds nothing past it.
 * Otherwise it stays reported (exit 1): a byte that differs from the WAL's copy, a
 * WAL file behind its segment. */
static void test_unfinished_write_or_damage(void)
{
    static const struct {
        const char *file;    /* the file cut */
        uint64_t flip;       /* a byte changed before the cut (1-based; 0: none) */
        int cut_wal_too;     /* the WAL is cut after the same record (segment behind) */
        int unfinished;      /* told as an unfinished write */
        const char *what;
    } cases[] = {
        {"000001.seg", 0, 0, 1, "the segment cut inside record 30, the WAL whole"},
        {"000001.seg", KV_FILE_HDR_SIZE + 30 * TL_REC + 6, 0, 0,
         "the segment cut inside record 30, a byte of its sequence number changed"},
        {"000001.wal", 0, 1, 1, "the WAL cut inside record 30, the segment cut before it"},
        {"000001.wal", 0, 0, 0, "the WAL cut inside record 30, the segment whole"},
        {"000001.seg", 0, 2, 1, "the segment cut inside its header of record 30"},
    };
    char *aux = kvt_dir_new("tl-unfaux"), *errfile = kvt_path(aux, "stderr");
    static tl_run r;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = kvt_dir_new("tl-unf");
        uint64_t at = KV_FILE_HDR_SIZE + 30 * TL_REC;
        tl_twin_store(dir);
        tl_cut(dir, cases[i].file, at + (cases[i].cut_wal_too == 2 ? 7 : 60), cases[i].flip);
        if (cases[i].cut_wal_too == 1)
            tl_cut(dir, "000001.seg", at, 0);
        tl_runf(&r, errfile, "'%s/kvcheck' '%s'", kvt_bin(), dir);
        char want[300];
        snprintf(want, sizeof want, "%s/%s: offset 0x%llx: %s", dir, cases[i].file,
                 (unsigned long long)at, cases[i].unfinished ? "note: an unfinished write"
                                                             : "torn tail");
        if (cases[i].unfinished)
            KVT_CHECK(r.rc == 0 && strstr(r.out, " damaged=0 ") != NULL
                      && strstr(r.out, " unfinished=1") != NULL && strstr(r.err, want) != NULL,
                      "%s: kvcheck exit %d, \"%s\" \"%s\"; want exit 0 and \"%s\"", cases[i].what,
                      r.rc, r.err, r.out, want);
        else
            KVT_CHECK(r.rc == 1 && strstr(r.out, " damaged=1 ") != NULL
                      && strstr(r.err, want) != NULL, "%s: kvcheck exit %d, \"%s\" \"%s\"; want "
                      "exit 1 and \"%s\"", cases[i].what, r.rc, r.err, r.out, want);
        if (!cases[i].unfinished)
            continue;
        tl_runf(&r, errfile, "'%s/kvcheck' --repair --yes '%s'", kvt_bin(), dir);
        KVT_CHECK(r.rc == 0 && strstr(r.out, "cut the torn tail") != NULL, "%s: kvcheck --repair: "
                  "exit %d, \"%s\" \"%s\"", cases[i].what, r.rc, r.err, r.out);
    }
}

static const kvt_test tools_live_tests[] = {
    {"kvcheck, kvdump and kv beside a writer that rolls, compacts and reopens: no false "
     "report", test_tools_beside_writer},
    {"a writer killed at random moments: kvcheck exits 0 (leftovers are notes), every "
     "acknowledged write is there, the one in flight whole or not at all", test_killed_writer},
    {"kv put, del, load and kvcheck --repair on a held store: exit 3 naming the writer's pid",
     test_held_store_refuses},
    {"two writer opens in one process conflict, through any path; a reader is no obstacle",
     test_two_writers_one_process},
    {"a read-only handle (this process or another) makes kvcheck --repair refuse, exit 3",
     test_reader_blocks_repair},
    {"while a repair holds the reader lock, a read-only open is KV_ELOCKED",
     test_repair_holds_readers_out},
    {"a store without LOCK opens read-only and the reader creates nothing",
     test_reader_without_lock_file},
    {"leftovers of interrupted steps are notes: kvcheck exits 0, --repair removes kv's own",
     test_leftovers_are_notes},
    {"a tail cut short is an unfinished write where the twin file proves it, else damage",
     test_unfinished_write_or_damage},
    {NULL, NULL},
};

void kvt_register_tools_live(void)
{
    kvt_add_suite("tools_live", tools_live_tests);
}
