/*
 * test_crash.c — the "crash" suite: a writer process is killed with SIGKILL at a
 * random moment, and the store must recover to exactly what was acknowledged.
 *
 * Each round forks a child that opens the store and writes: puts, deletes and
 * batches of 2..6 keys whose values all carry the batch's id. Before each operation
 * the child sends an INTENT record through a pipe and after the call returns an ACK
 * record (every record is smaller than PIPE_BUF, so it arrives whole or not at all).
 * The parent kills the child 0..60 ms after its kv_open returned (one round in five:
 * 0..15 ms after the fork, during kv_open), reads what the pipe delivered,
 * reopens the store and checks (invariants 1 and 2 of DESIGN.md):
 *   - every acknowledged write is present with its value, unless a newer
 *     acknowledged write of that key replaced it;
 *   - no acknowledged delete is undone, and no key appears that was never written;
 *   - the one operation in flight at the kill (an INTENT without ACK) is wholly
 *     present or wholly absent; for a batch, all its keys agree.
 * The parent then knows the store's exact state and the next round continues on
 * the same store, so recovery runs over what earlier recoveries left behind. Some
 * rounds use 4 KiB or 64 KiB segments, so kills land during segment rolls; some
 * kills land while the child is still recovering in kv_open.
 *
 * Values are derived from (key, id) so a value read back identifies the write that
 * stored it: 8 bytes id, 2 bytes key, then filler derived from both.
 */
#include "kvtest.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CR_KEYS 48         /* the key space */
#define CR_BATCH_MAX 6     /* keys per batch */
#define CR_VALUE_MAX 700   /* filler bytes per value, at most */
#define CR_HEADER 10       /* id (8) + key (2) */
#define CR_KILL_MS 60      /* the kill comes 0..CR_KILL_MS ms after kv_open returned */

enum { REC_OPENED = 1, REC_INTENT, REC_ACK, REC_ERROR, REC_IDLE };
enum { OP_PUT = 1, OP_DELETE, OP_BATCH };

/* One pipe record; sizeof < PIPE_BUF, so a write(2) of it is atomic. */
typedef struct cr_rec {
    uint32_t kind;                 /* REC_* */
    uint32_t op;                   /* OP_* (INTENT, ACK) */
    uint64_t id;                   /* value id of a put, batch id of a batch */
    int32_t rc;                    /* ACK, ERROR: the status returned */
    uint32_t n;                    /* operations: 1 for put/delete */
    uint16_t key[CR_BATCH_MAX];    /* the keys, in order */
    uint8_t del[CR_BATCH_MAX];     /* 1 where the operation is a delete */
    char msg[160];                 /* ERROR: kv_errmsg() */
} cr_rec;

_Static_assert(sizeof(cr_rec) <= PIPE_BUF, "records must be written atomically");

/* ---------------------------------------------------------------------------------
 * Values
 * ------------------------------------------------------------------------------ */

static size_t cr_value(unsigned key, uint64_t id, unsigned char *buf)
{
    uint64_t h = kvt_mix64(id * 1000003u + key);
    size_t filler = (size_t)(h % (CR_VALUE_MAX + 1));
    if (h % 7 == 0)
        filler = 0; /* header-only values are common */
    memcpy(buf, &id, 8);
    buf[8] = (unsigned char)(key & 0xff);
    buf[9] = (unsigned char)(key >> 8);
    for (size_t i = 0; i < filler; i++) {
        if (i % 8 == 0)
            h = kvt_mix64(h);
        buf[CR_HEADER + i] = (unsigned char)(h >> (8 * (i % 8)));
    }
    return CR_HEADER + filler;
}

/* The id of the write that stored v under key, or 0 when v is not such a value. */
static uint64_t cr_parse(unsigned key, const void *v, size_t vl)
{
    unsigned char want[CR_HEADER + CR_VALUE_MAX];
    uint64_t id;
    if (vl < CR_HEADER)
        return 0;
    memcpy(&id, v, 8);
    if (id == 0 || cr_value(key, id, want) != vl || memcmp(want, v, vl) != 0)
        return 0;
    return id;
}

static void cr_key(unsigned k, char *buf, size_t n)
{
    snprintf(buf, n, "crash-key-%02u", k);
}

static int cr_key_index(const void *k, size_t kl)
{
    char buf[32];
    for (unsigned i = 0; i < CR_KEYS; i++) {
        cr_key(i, buf, sizeof buf);
        if (strlen(buf) == kl && memcmp(buf, k, kl) == 0)
            return (int)i;
    }
    return -1;
}

/* ---------------------------------------------------------------------------------
 * The child: writes until killed. Never returns; never touches CUnit or stdio.
 * ------------------------------------------------------------------------------ */

static void send_rec(int fd, const cr_rec *r)
{
    if (write(fd, r, sizeof *r) != (ssize_t)sizeof *r)
        _exit(5); /* the parent went away */
}

static void child_fail(int fd, int rc, int code)
{
    cr_rec r;
    memset(&r, 0, sizeof r);
    r.kind = REC_ERROR;
    r.rc = rc;
    snprintf(r.msg, sizeof r.msg, "%s", kv_errmsg());
    send_rec(fd, &r);
    _exit(code);
}

static int child_op(kv_db *db, const cr_rec *r)
{
    unsigned char v[CR_HEADER + CR_VALUE_MAX];
    char k[32];
    kv_batch *b;
    int rc = KV_OK;

    if (r->op != OP_BATCH) {
        cr_key(r->key[0], k, sizeof k);
        if (r->op == OP_DELETE)
            return kv_delete(db, k, strlen(k));
        return kv_put(db, k, strlen(k), v, cr_value(r->key[0], r->id, v));
    }
    b = kv_batch_new();
    if (b == NULL)
        return KV_ENOMEM;
    for (uint32_t i = 0; i < r->n && rc == KV_OK; i++) {
        cr_key(r->key[i], k, sizeof k);
        if (r->del[i])
            rc = kv_batch_delete(b, k, strlen(k));
        else
            rc = kv_batch_put(b, k, strlen(k), v, cr_value(r->key[i], r->id, v));
    }
    if (rc == KV_OK)
        rc = kv_write(db, b);
    kv_batch_free(b);
    return rc;
}

static void child_plan(kvt_rng *rng, cr_rec *r, uint64_t id)
{
    uint64_t p = kvt_rng_below(rng, 100);
    memset(r, 0, sizeof *r);
    r->kind = REC_INTENT;
    r->id = id;
    r->n = 1;
    r->key[0] = (uint16_t)kvt_rng_below(rng, CR_KEYS);
    if (p < 50) {
        r->op = OP_PUT;
    } else if (p < 65) {
        r->op = OP_DELETE;
        r->del[0] = 1;
    } else {
        r->op = OP_BATCH;
        r->n = (uint32_t)kvt_rng_range(rng, 2, CR_BATCH_MAX);
        for (uint32_t i = 0; i < r->n; i++) {
            int dup;
            do { /* distinct keys, so a partial batch shows */
                r->key[i] = (uint16_t)kvt_rng_below(rng, CR_KEYS);
                dup = 0;
                for (uint32_t j = 0; j < i; j++)
                    dup |= r->key[j] == r->key[i];
            } while (dup);
            r->del[i] = kvt_rng_chance(rng, 20) ? 1 : 0;
        }
    }
}

static void crash_child(const char *dir, const kv_options *o, uint64_t seed,
                        uint64_t first_id, unsigned max_ops, int fd)
{
    kvt_rng rng;
    kv_db *db = NULL;
    cr_rec r;
    int rc;

    kvt_rng_seed(&rng, seed);
    rc = kv_open(dir, o, &db);
    if (rc != KV_OK)
        child_fail(fd, rc, 3);
    memset(&r, 0, sizeof r);
    r.kind = REC_OPENED;
    send_rec(fd, &r);
    for (unsigned i = 0; i < max_ops; i++) {
        child_plan(&rng, &r, first_id + i);
        send_rec(fd, &r);
        rc = child_op(db, &r);
        if (rc != KV_OK && !(rc == KV_NOTFOUND && r.op == OP_DELETE))
            child_fail(fd, rc, 4);
        r.kind = REC_ACK;
        r.rc = rc;
        send_rec(fd, &r);
    }
    memset(&r, 0, sizeof r);
    r.kind = REC_IDLE;
    send_rec(fd, &r);
    for (;;)
        pause(); /* wait for the kill: the handle stays open, as in a live process */
}

/* ---------------------------------------------------------------------------------
 * The parent
 * ------------------------------------------------------------------------------ */
typedef struct cr_ctx {
    const char *name;          /* test name for messages */
    char *dir;                 /* the store, reused across rounds */
    uint64_t state[CR_KEYS];   /* exact state: id stored under each key, 0 = absent */
    kvt_rng rng;               /* round choices */
    uint64_t next_id;          /* first id of the next round (ids never repeat) */
    int round;
    kv_options opts;           /* this round's options */
    unsigned max_ops;          /* this round's operation cap */
    uint64_t kill_max_us;      /* the kill comes 0..kill_max_us after kv_open */
    int fresh;                 /* a new store each round: kill during creation */
    /* tallies, for the summary line */
    unsigned kills, in_flight, in_flight_applied, acked, lock_retries, early_kills;
    unsigned killed_in_open;   /* kills before the child's kv_open returned */
    unsigned killed_idle;      /* kills after the child finished its max_ops */
    uint64_t max_recovery_us;  /* slowest recovery seen by the parent's kv_open */
    char why[1024];            /* the first failure */
} cr_ctx;

static int cr_fail(cr_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int cr_fail(cr_ctx *c, const char *fmt, ...)
{
    char msg[800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->why, sizeof c->why, "%s: round %d (sync %d, io %d, segment_bytes %llu, "
             "store %s): %s", c->name, c->round, c->opts.sync, c->opts.io,
             (unsigned long long)c->opts.segment_bytes, c->dir, msg);
    return -1;
}

/* Reads records from fd into *buf until deadline_us, EOF, or (with stop_opened)
 * until the child's OPENED record has arrived. Returns 0 at the deadline, 1 at EOF
 * (or out of memory), 2 at OPENED. */
static int drain(int fd, unsigned char **buf, size_t *len, size_t *cap, uint64_t deadline_us,
                 int stop_opened)
{
    for (;;) {
        uint64_t now = kvt_now_us();
        struct pollfd p = { .fd = fd, .events = POLLIN };
        struct timespec ts;
        ssize_t n;
        int pr;
        if (stop_opened && *len >= sizeof(cr_rec) &&
            ((const cr_rec *)(const void *)*buf)->kind == REC_OPENED)
            return 2;
        if (deadline_us != UINT64_MAX && now >= deadline_us)
            return 0;
        if (deadline_us != UINT64_MAX) {
            uint64_t left = deadline_us - now;
            ts.tv_sec = (time_t)(left / 1000000u);
            ts.tv_nsec = (long)(left % 1000000u) * 1000;
        }
        pr = ppoll(&p, 1, deadline_us == UINT64_MAX ? NULL : &ts, NULL);
        if (pr <= 0)
            continue; /* EINTR or the deadline: checked above */
        unsigned char *grown = grow(*buf, cap, *len + 65536, 1, 65536, 0);
        if (grown == NULL)
            return 1;
        *buf = grown;
        n = read(fd, *buf + *len, *cap - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 1;
        *len += (size_t)n;
    }
}

/* Applies one operation to a state array. */
static void apply(uint64_t *state, const cr_rec *r)
{
    for (uint32_t i = 0; i < r->n; i++)
        state[r->key[i]] = r->del[i] ? 0 : r->id;
}

static const char *op_name(uint32_t op)
{
    return op == OP_PUT ? "put" : op == OP_DELETE ? "delete" : "batch";
}

/* Walks the records: applies acknowledged operations to c->state, returns the
 * operation in flight (INTENT without ACK) in *pending. */
static int replay(cr_ctx *c, const cr_rec *recs, size_t n, cr_rec *pending, int *has_pending)
{
    int opened = 0;
    *has_pending = 0;
    for (size_t i = 0; i < n; i++)
        opened |= recs[i].kind == REC_OPENED;
    c->killed_in_open += !opened;
    c->killed_idle += n > 0 && recs[n - 1].kind == REC_IDLE;
    for (size_t i = 0; i < n; i++) {
        const cr_rec *r = &recs[i];
        switch (r->kind) {
        case REC_OPENED:
        case REC_IDLE:
            break;
        case REC_INTENT:
            if (*has_pending)
                return cr_fail(c, "record %zu: INTENT while id %llu is unacknowledged", i,
                               (unsigned long long)pending->id);
            *pending = *r;
            *has_pending = 1;
            break;
        case REC_ACK:
            if (!*has_pending || pending->id != r->id)
                return cr_fail(c, "record %zu: ACK of id %llu without its INTENT", i,
                               (unsigned long long)r->id);
            if (r->op == OP_DELETE && r->rc == KV_NOTFOUND && c->state[r->key[0]] != 0)
                return cr_fail(c, "kv_delete of crash-key-%02u returned KV_NOTFOUND, but "
                               "the key holds id %llu", r->key[0],
                               (unsigned long long)c->state[r->key[0]]);
            if (r->op == OP_DELETE && r->rc == KV_OK && c->state[r->key[0]] == 0)
                return cr_fail(c, "kv_delete of crash-key-%02u returned KV_OK, but the "
                               "key was absent", r->key[0]);
            apply(c->state, r);
            *has_pending = 0;
            c->acked++;
            break;
        case REC_ERROR:
            return cr_fail(c, "the child failed: %d (%s): %s", r->rc, kv_strerror(r->rc),
                           r->msg);
        default:
            return cr_fail(c, "record %zu: unknown kind %u", i, r->kind);
        }
    }
    return 0;
}

struct cr_visit {
    int seen[CR_KEYS];
    int bad;
    char first[256];
};

static int cr_visit_fn(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
    struct cr_visit *s = arg;
    int i = cr_key_index(k, kl);
    char kb[64];
    if (i < 0 || cr_parse((unsigned)i, v, vl) == 0) {
        if (s->bad++ == 0)
            snprintf(s->first, sizeof s->first, "%s key \"%s\" (%zu-byte value)",
                     i < 0 ? "unknown" : "malformed value under", kvt_fmt(kb, sizeof kb, k, kl),
                     vl);
        return 0;
    }
    s->seen[i]++;
    return 0;
}

/* Opens the store after a kill, retrying briefly on KV_ELOCKED (the dead child's
 * lock may be released asynchronously). */
static int open_after_kill(cr_ctx *c, kv_db **db)
{
    uint64_t until = kvt_now_ms() + 2000;
    int rc;
    for (;;) {
        rc = kv_open(c->dir, &c->opts, db);
        if (rc != KV_ELOCKED || kvt_now_ms() > until)
            break;
        c->lock_retries++;
        kvt_sleep_ms(2);
    }
    if (rc != KV_OK)
        return cr_fail(c, "kv_open after the kill: %d (%s): %s", rc, kv_strerror(rc),
                       kv_errmsg());
    return 0;
}

/* Reads every key of the recovered store into got[]; checks kv_foreach agrees. */
static int read_store(cr_ctx *c, kv_db *db, uint64_t *got)
{
    static struct cr_visit s;
    char k[32];
    int rc;
    for (unsigned i = 0; i < CR_KEYS; i++) {
        void *v = NULL;
        size_t vl = 0;
        cr_key(i, k, sizeof k);
        rc = kv_get(db, k, strlen(k), &v, &vl);
        if (rc == KV_NOTFOUND) {
            got[i] = 0;
            continue;
        }
        if (rc != KV_OK)
            return cr_fail(c, "kv_get crash-key-%02u after recovery: %d (%s): %s", i, rc,
                           kv_strerror(rc), kv_errmsg());
        got[i] = cr_parse(i, v, vl);
        kv_free(v);
        if (got[i] == 0)
            return cr_fail(c, "crash-key-%02u holds a %zu-byte value no write stored "
                           "(torn or mixed record)", i, vl);
    }
    memset(&s, 0, sizeof s);
    rc = kv_foreach(db, cr_visit_fn, &s);
    if (rc != KV_OK)
        return cr_fail(c, "kv_foreach after recovery: %d (%s): %s", rc, kv_strerror(rc),
                       kv_errmsg());
    if (s.bad != 0)
        return cr_fail(c, "kv_foreach after recovery: %d bad entries, first: %s", s.bad,
                       s.first);
    for (unsigned i = 0; i < CR_KEYS; i++) {
        if (s.seen[i] != (got[i] != 0))
            return cr_fail(c, "kv_foreach visited crash-key-%02u %d times, kv_get says %s",
                           i, s.seen[i], got[i] ? "present" : "absent");
    }
    return 0;
}

static int describe_mismatch(cr_ctx *c, unsigned k, uint64_t got, const uint64_t *with,
                             const cr_rec *pending, int has_pending)
{
    char extra[160] = "";
    if (has_pending)
        snprintf(extra, sizeof extra, "; in flight: %s id %llu of %u key(s), with it the "
                 "key would hold %llu", op_name(pending->op),
                 (unsigned long long)pending->id, pending->n, (unsigned long long)with[k]);
    if (got == 0)
        return cr_fail(c, "crash-key-%02u is absent, but acknowledged id %llu wrote it%s", k,
                       (unsigned long long)c->state[k], extra);
    if (c->state[k] == 0)
        return cr_fail(c, "crash-key-%02u holds id %llu, but its acknowledged state is "
                       "absent (an acknowledged delete undone, or a write never made)%s", k,
                       (unsigned long long)got, extra);
    return cr_fail(c, "crash-key-%02u holds id %llu, acknowledged newest is id %llu%s", k,
                   (unsigned long long)got, (unsigned long long)c->state[k], extra);
}

/* Compares the recovered store with the acknowledged state, allowing the operation
 * in flight to be wholly present or wholly absent; then adopts what was found. */
static int verify(cr_ctx *c, const uint64_t *got, const cr_rec *pending, int has_pending)
{
    uint64_t with[CR_KEYS];
    int all_without = 1, all_with = 1;

    memcpy(with, c->state, sizeof with);
    if (has_pending)
        apply(with, pending);
    for (unsigned k = 0; k < CR_KEYS; k++) {
        all_without &= got[k] == c->state[k];
        all_with &= got[k] == with[k];
    }
    if (all_without)
        return 0;
    if (all_with) {
        memcpy(c->state, with, sizeof with);
        c->in_flight_applied++;
        return 0;
    }
    /* Neither: name the first key that explains why. */
    for (unsigned k = 0; k < CR_KEYS; k++) {
        int in_op = 0;
        for (uint32_t i = 0; has_pending && i < pending->n; i++)
            in_op |= pending->key[i] == k;
        if (!in_op && got[k] != c->state[k])
            return describe_mismatch(c, k, got[k], with, pending, has_pending);
    }
    {
        char list[400];
        size_t o = 0;
        for (uint32_t i = 0; i < pending->n && o < sizeof list - 80; i++) {
            unsigned k = pending->key[i];
            o += (size_t)snprintf(list + o, sizeof list - o,
                                  " crash-key-%02u: before %llu, with %llu, found %llu;", k,
                                  (unsigned long long)c->state[k],
                                  (unsigned long long)with[k], (unsigned long long)got[k]);
        }
        return cr_fail(c, "the %s (id %llu) in flight at the kill is partly applied:%s",
                       op_name(pending->op), (unsigned long long)pending->id, list);
    }
}

/* Forks the writer and kills it delay_us after the fork (in_open) or after its
 * kv_open returned; returns its records (malloc'd). */
static int run_child(cr_ctx *c, int in_open, uint64_t delay_us, cr_rec **recs,
                     size_t *nrecs)
{
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    int fds[2], status = 0;
    uint64_t seed = kvt_rng_next(&c->rng), t0;
    pid_t pid;
    int dr;

    *recs = NULL;
    *nrecs = 0;
    if (pipe(fds) != 0)
        return cr_fail(c, "pipe: %s", strerror(errno));
    (void)fcntl(fds[0], F_SETPIPE_SZ, 1 << 20); /* best effort: fewer blocked writes */
    fflush(NULL);
    t0 = kvt_now_us();
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return cr_fail(c, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(fds[0]);
        crash_child(c->dir, &c->opts, seed, c->next_id, c->max_ops, fds[1]);
    }
    close(fds[1]);
    if (in_open) {
        dr = drain(fds[0], &buf, &len, &cap, t0 + delay_us, 0);
    } else {
        dr = drain(fds[0], &buf, &len, &cap, t0 + 60u * 1000000u, 1);
        if (dr == 2)
            dr = drain(fds[0], &buf, &len, &cap, kvt_now_us() + delay_us, 0);
    }
    if (dr == 1)
        c->early_kills++; /* the child ended on its own (an error record follows) */
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    drain(fds[0], &buf, &len, &cap, UINT64_MAX, 0);
    close(fds[0]);
    c->kills++;
    c->next_id += c->max_ops + 1;
    if (buf == NULL && len > 0)
        return cr_fail(c, "out of memory reading the pipe");
    *recs = (cr_rec *)(void *)buf;
    *nrecs = len / sizeof(cr_rec);
    if (WIFEXITED(status) && WEXITSTATUS(status) != 3 && WEXITSTATUS(status) != 4)
        return cr_fail(c, "the child exited with status %d", WEXITSTATUS(status));
    return 0;
}

/* One kill and recovery. */
static int crash_round(cr_ctx *c)
{
    cr_rec *recs = NULL, pending = { 0 };
    size_t nrecs = 0;
    int has_pending = 0, rc, in_open;
    uint64_t delay_us, got[CR_KEYS];
    kv_db *db = NULL;

    /* Mostly 0..kill_max_us after the child's kv_open returned, while it writes; one
     * round in five 0..kill_max_us/4 after the fork, so kills land during kv_open's
     * recovery too (always, for a fresh store: during its creation). */
    in_open = c->fresh || kvt_rng_chance(&c->rng, 20);
    delay_us = kvt_rng_below(&c->rng, in_open && !c->fresh ? c->kill_max_us / 4 + 1
                                                           : c->kill_max_us);
    rc = run_child(c, in_open, delay_us, &recs, &nrecs);
    if (rc == 0)
        rc = replay(c, recs, nrecs, &pending, &has_pending);
    free(recs);
    if (rc != 0)
        return rc;
    c->in_flight += (unsigned)has_pending;
    if (open_after_kill(c, &db) != 0)
        return -1;
    rc = read_store(c, db, got);
    if (rc == 0)
        rc = verify(c, got, &pending, has_pending);
    if (rc == 0) {
        kv_stats st;
        uint64_t live = 0;
        for (unsigned k = 0; k < CR_KEYS; k++)
            live += got[k] != 0;
        if (kv_stat(db, &st) == KV_OK && st.recovery_us > c->max_recovery_us)
            c->max_recovery_us = st.recovery_us;
        if (kv_stat(db, &st) == KV_OK && st.keys != live)
            rc = cr_fail(c, "kv_stat says %llu keys after recovery, the store holds %llu",
                         (unsigned long long)st.keys, (unsigned long long)live);
    }
    {
        int crc = kv_close(db);
        if (rc == 0 && crc != KV_OK)
            rc = cr_fail(c, "kv_close after recovery: %d (%s)", crc, kv_strerror(crc));
    }
    return rc;
}

/* Per-round options: the configured sync mode and backend (or random ones), and a
 * segment size cycling through 4 KiB, 64 KiB and the default. */
static void choose_options(cr_ctx *c, int sync, int io)
{
    static const int syncs[] = { KV_SYNC_NONE, KV_SYNC_ALWAYS, KV_SYNC_INTERVAL };
    uint64_t seg;
    if (sync < 0)
        sync = syncs[kvt_rng_below(&c->rng, 3)];
    if (io < 0)
        io = kvt_rng_chance(&c->rng, 50) ? KV_IO_AUTO : KV_IO_PSYNC;
    switch (c->round % 3) {
    case 0: seg = 4096; c->max_ops = 400; break;
    case 1: seg = 65536; c->max_ops = 3000; break;
    default: seg = 0; c->max_ops = 3000; break;
    }
    kvt_options(&c->opts, sync, io, seg);
    c->opts.sync_interval_ms = 5;
}

/* Runs rounds kills against one store (or, with fresh, a new store each round, so
 * kills land during store creation). sync/io < 0 pick randomly per round. */
static void crash_case(const char *name, int sync, int io, unsigned rounds, int fresh,
                       uint64_t kill_max_us, uint64_t seed)
{
    static cr_ctx c;
    char *base = kvt_dir_new("crash");
    uint64_t t0 = kvt_now_ms();

    memset(&c, 0, sizeof c);
    c.name = name;
    c.next_id = 1;
    c.kill_max_us = kill_max_us;
    c.fresh = fresh;
    kvt_rng_seed(&c.rng, seed);
    c.dir = kvt_path(base, "store");
    for (c.round = 0; c.round < (int)rounds; c.round++) {
        if (fresh) {
            kvt_rmtree(c.dir);
            memset(c.state, 0, sizeof c.state);
        }
        choose_options(&c, sync, io);
        if (crash_round(&c) != 0) {
            KVT_CHECK(0, "%s", c.why);
            return; /* the store is kept until teardown; KV_TEST_KEEP=1 keeps it */
        }
    }
    KVT_CHECK(c.kills == rounds, "%s: %u kills, expected %u", name, c.kills, rounds);
    kvt_note("%u kills (%u during kv_open, %u idle), %u acknowledged ops, %u in flight at "
             "the kill (%u of them found applied), %u KV_ELOCKED retries, slowest recovery "
             "%.1f ms, %.1f s", c.kills, c.killed_in_open, c.killed_idle, c.acked, c.in_flight,
             c.in_flight_applied, c.lock_retries, (double)c.max_recovery_us / 1000.0,
             (double)(kvt_now_ms() - t0) / 1000.0);
    KVT_CHECK(fresh || c.acked > 0, "%s: no operation was acknowledged in %u rounds", name,
              rounds);
}

/* ---------------------------------------------------------------------------------
 * Tests: 60 kills each plus 40 at creation, 340 in all (quick mode too: kills are
 * cheap).
 * ------------------------------------------------------------------------------ */
#define CR_ROUNDS 60

static void test_kill_sync_none_psync(void)
{
    crash_case("kill, KV_SYNC_NONE, KV_IO_PSYNC", KV_SYNC_NONE, KV_IO_PSYNC, CR_ROUNDS, 0,
               CR_KILL_MS * 1000u, 11);
}

static void test_kill_sync_none_auto(void)
{
    crash_case("kill, KV_SYNC_NONE, KV_IO_AUTO", KV_SYNC_NONE, KV_IO_AUTO, CR_ROUNDS, 0,
               CR_KILL_MS * 1000u, 12);
}

static void test_kill_sync_always_psync(void)
{
    crash_case("kill, KV_SYNC_ALWAYS, KV_IO_PSYNC", KV_SYNC_ALWAYS, KV_IO_PSYNC, CR_ROUNDS,
               0, CR_KILL_MS * 1000u, 13);
}

static void test_kill_sync_always_auto(void)
{
    crash_case("kill, KV_SYNC_ALWAYS, KV_IO_AUTO", KV_SYNC_ALWAYS, KV_IO_AUTO, CR_ROUNDS, 0,
               CR_KILL_MS * 1000u, 14);
}

static void test_kill_mixed_modes(void)
{
    crash_case("kill, random sync mode and backend per round", -1, -1, CR_ROUNDS, 0,
               CR_KILL_MS * 1000u, 15);
}

static void test_kill_during_store_creation(void)
{
    /* Under ASan (quick mode) fork and kv_open are slower: a wider window. */
    crash_case("kill during store creation (fresh store each round)", -1, -1, 40, 1,
               kvt_scaled(15000, 40000), 16);
}

static const kvt_test crash_tests[] = {
    { "kill -9 under KV_SYNC_NONE, KV_IO_PSYNC", test_kill_sync_none_psync },
    { "kill -9 under KV_SYNC_NONE, KV_IO_AUTO", test_kill_sync_none_auto },
    { "kill -9 under KV_SYNC_ALWAYS, KV_IO_PSYNC", test_kill_sync_always_psync },
    { "kill -9 under KV_SYNC_ALWAYS, KV_IO_AUTO", test_kill_sync_always_auto },
    { "kill -9 with mixed sync modes and backends", test_kill_mixed_modes },
    { "kill -9 during store creation leaves an openable store",
      test_kill_during_store_creation },
    { NULL, NULL },
};

void kvt_register_crash(void)
{
    kvt_add_suite("crash", crash_tests);
}
