/*
 * test_kvcheck.c — kvcheck (issue 7): the check and the repair, in process
 * (engine/fsck/check.h: check_path, check_repair) and through the real binary
 * ($KV_BIN/kvcheck).
 *
 * Every store here is built from a model: a list of operations, each with the
 * sequence number it gets (one per put or delete, a batch one per operation), so a
 * test knows which record sits where and what the store must hold afterwards — every
 * operation, less the ones a test damaged, replayed in sequence order (newest wins,
 * whatever file a record ends up in).
 *
 * Sections: helpers (the model, directory fingerprints, running the tool); clean
 * stores and exact counts; every single-byte flip; truncations and damage, each
 * repaired; hints and leftovers; bad input; a store held by a writer; single files
 * and usage.
 */
#include "kvtest.h"

#include "fsck/check.h"
#include "base/crc.h"
#include "db/db.h"
#include "format/entry.h"
#include "faultio.h"
#include "store/scan.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the model ------------------------------------------------------------------------ */

#define NKEYS 64            /* key-000 .. key-063, and three batch keys after them */
#define NALL (NKEYS + 3)
#define MAXOPS 400

typedef struct op {
    uint64_t seq;
    int key;
    int del;
    char val[260];
    size_t vlen;
} op;

typedef struct model {
    op ops[MAXOPS];
    int n;
    uint64_t seq;           /* the last sequence number given */
} model;

static void key_name(char *buf, size_t n, int k) { snprintf(buf, n, "key-%03d", k); }

static op *m_add(model *m, int k, int del, const char *val, size_t vlen)
{
    if (m->n >= MAXOPS)
        abort(); /* the workload is fixed: a bigger one needs a bigger model */
    op *o = &m->ops[m->n++];
    o->seq = ++m->seq;
    o->key = k;
    o->del = del;
    o->vlen = vlen;
    if (vlen > 0)
        memcpy(o->val, val, vlen);
    return o;
}

/* m_put and m_del apply to db (when not NULL) and record; they return the status,
 * and call no CUnit function (a forked child runs them). */
static int m_put(kv_db *db, model *m, int k, const char *val, size_t vlen)
{
    char key[32];
    key_name(key, sizeof key, k);
    int rc = db != NULL ? kv_put(db, key, strlen(key), val, vlen) : KV_OK;
    m_add(m, k, 0, val, vlen);
    return rc;
}

static int m_del(kv_db *db, model *m, int k)
{
    char key[32];
    key_name(key, sizeof key, k);
    int rc = db != NULL ? kv_delete(db, key, strlen(key)) : KV_OK;
    m_add(m, k, 1, NULL, 0);
    return rc;
}

/* A value for key k in round r; every fifth of round 1 is long and repetitive, so
 * that LZ4 (when on) compresses it. */
static size_t value_of(char *buf, size_t n, int k, int r)
{
    if (r == 1 && k % 5 == 0) {
        size_t len = 0;
        while (len + 16 < n && len < 200)
            len += (size_t)snprintf(buf + len, n - len, "k%03d-r%d-repeat|", k, r);
        return len;
    }
    return (size_t)snprintf(buf, n, "round%d-value-of-key-%03d-with-some-padding-to-fill-"
                            "segments", r, k);
}

/* The workload, applied to db (NULL: the model only). Single puts over all keys,
 * overwrites of every third, deletes of every seventh, a batch (put, delete, put),
 * and a few puts more. With 4 KiB segments it leaves two sealed segments with hints
 * and an active segment with its WAL. */
static int workload(kv_db *db, model *m)
{
    char v[260];
    int rc = KV_OK;
    for (int k = 0; k < NKEYS; k++)
        rc |= m_put(db, m, k, v, value_of(v, sizeof v, k, 1));
    for (int k = 0; k < NKEYS; k += 3)
        rc |= m_put(db, m, k, v, value_of(v, sizeof v, k, 2));
    for (int k = 1; k < NKEYS; k += 7)
        rc |= m_del(db, m, k);
    for (int k = 2; k < NKEYS; k += 4)
        rc |= m_put(db, m, k, v, value_of(v, sizeof v, k, 3));
    if (db != NULL) {
        kv_batch *b = kv_batch_new();
        if (b == NULL)
            return KV_ENOMEM;
        rc |= kv_batch_put(b, "key-064", 7, "batch-put-1", 11);
        rc |= kv_batch_delete(b, "key-000", 7);
        rc |= kv_batch_put(b, "key-065", 7, "batch-put-2", 11);
        rc |= kv_write(db, b);
        kv_batch_free(b);
    }
    m_add(m, 64, 0, "batch-put-1", 11);
    m_add(m, 0, 1, NULL, 0);
    m_add(m, 65, 0, "batch-put-2", 11);
    for (int k = 3; k < 12; k += 2)
        rc |= m_put(db, m, k, v, value_of(v, sizeof v, k, 4));
    return rc;
}

static void store_options(kv_options *o, int lz4)
{
    kvt_options(o, KV_SYNC_NONE, KV_IO_AUTO, 4096);
    o->auto_compact = 0;
    if (lz4) {
        o->compression = KV_COMPRESS_LZ4;
        o->compress_min_bytes = 16;
    }
}

/* A closed store holding the workload. */
static void build_store(const char *dir, model *m, int lz4)
{
    kv_options o;
    kv_db *db;
    memset(m, 0, sizeof *m);
    store_options(&o, lz4);
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    KVT_CHECK_FATAL(workload(db, m) == KV_OK, "the workload failed: %s", kv_errmsg());
    KVT_RC_FATAL(kvt_close(db), KV_OK);
}

static int is_lost(uint64_t seq, const uint64_t *lost, int nlost)
{
    for (int i = 0; i < nlost; i++)
        if (lost[i] == seq)
            return 1;
    return 0;
}

/* The store must hold the model's operations, less the lost ones, replayed in
 * sequence order. */
static void check_contents(const char *dir, const model *m, const uint64_t *lost, int nlost)
{
    kv_options o;
    kv_db *db;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 0);
    o.read_only = 1;
    o.create = 0;
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    for (int k = 0; k < NALL; k++) {
        const op *last = NULL;
        char key[32];
        for (int i = 0; i < m->n; i++)
            if (m->ops[i].key == k && !is_lost(m->ops[i].seq, lost, nlost)
                && (last == NULL || m->ops[i].seq > last->seq))
                last = &m->ops[i];
        key_name(key, sizeof key, k);
        if (last == NULL || last->del)
            KVT_ASSERT_ABSENT(db, key, strlen(key));
        else
            KVT_ASSERT_VALUE(db, key, strlen(key), last->val, last->vlen);
    }
    KVT_RC(kvt_close(db), KV_OK);
}

/* ---- files, fingerprints, entries ------------------------------------------------------ */

static void poke(const char *path, uint64_t off, uint8_t xor_with)
{
    uint8_t c;
    int fd = open(path, O_RDWR);
    KVT_CHECK_FATAL(fd >= 0 && pread(fd, &c, 1, (off_t)off) == 1, "read %s at %llu", path,
                    (unsigned long long)off);
    c ^= xor_with;
    KVT_CHECK_FATAL(pwrite(fd, &c, 1, (off_t)off) == 1, "write %s", path);
    close(fd);
}

static void cut_at(const char *path, uint64_t size)
{
    KVT_CHECK_FATAL(truncate(path, (off_t)size) == 0, "truncate %s", path);
}

/* Entries of a record file (the engine's scanner over its bytes). */
typedef struct ent {
    uint64_t off, seq;
    uint32_t size;
    int type, flags;
    char key[32];
} ent;

typedef struct ent_list {
    ent v[256];
    int n;
} ent_list;

static int ent_collect(void *arg, const kv_entry *e, uint64_t off)
{
    ent_list *l = arg;
    if (l->n < 256) {
        ent *x = &l->v[l->n++];
        x->off = off;
        x->seq = e->seq;
        x->size = e->size;
        x->type = e->type;
        x->flags = e->flags;
        snprintf(x->key, sizeof x->key, "%.*s", (int)e->klen, (const char *)e->key);
    }
    return 0;
}

static void entries_of(const char *path, ent_list *l)
{
    size_t len;
    kv_scan_result res;
    uint8_t *b = kvt_slurp(path, &len);
    l->n = 0;
    KVT_RC_FATAL(scan_buffer(b, len, KV_FILE_HDR_SIZE, ent_collect, l, &res), KV_OK);
    KVT_CHECK_FATAL(!res.stopped, "%s does not scan clean: %s", path, res.why);
    free(b);
}

/* The MANIFEST's active number and its sealed numbers. */
static uint32_t active_of(const char *dir, uint32_t *sealed, int *nsealed)
{
    char path[4096];
    size_t len;
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    uint8_t *b = kvt_slurp(path, &len);
    uint32_t n = kv_get32(b + 16), active = kv_get32(b + 20);
    *nsealed = 0;
    for (uint32_t i = 0; i < n && i < 16; i++)
        sealed[(*nsealed)++] = kv_get32(b + 32 + 16 * i);
    free(b);
    return active;
}

/* A single put (not part of a batch) in the second half of record file path. */
static ent middle_put_in(const char *path)
{
    ent_list l;
    entries_of(path, &l);
    for (int i = l.n / 2; i < l.n; i++)
        if (l.v[i].type == KV_REC_PUT && !(l.v[i].flags & KV_RECF_BATCH)
            && (i == 0 || !(l.v[i - 1].flags & KV_RECF_BATCH)))
            return l.v[i];
    KVT_CHECK_FATAL(0, "no single put in the second half of %s", path);
    return l.v[0];
}

/* The same in sealed segment `number`. */
static ent middle_put(const char *dir, uint32_t number)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%06u.seg", dir, number);
    return middle_put_in(path);
}

/* ---- running the tool ---------------------------------------------------------------- */

static const char *bin(void)
{
    const char *b = getenv("KV_BIN");
    return b != NULL && b[0] != '\0' ? b : "build/bin";
}

/* Runs `kvcheck ARGS` (stdin /dev/null, stderr into the output) and returns its exit
 * status and output. */
static int kvcheck(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int kvcheck(char *out, size_t n, const char *fmt, ...)
{
    char args[8192], cmd[9000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s/kvcheck' %s </dev/null 2>&1", bin(), args);
    return kvt_run(cmd, out, n);
}

/* The value of name=... in the summary line of out, or -1. */
static long long field(const char *out, const char *name)
{
    size_t n = strlen(name);
    for (const char *s = strstr(out, name); s != NULL; s = strstr(s + 1, name))
        if ((s == out || s[-1] == ' ' || s[-1] == '\n') && s[n] == '=')
            return atoll(s + n + 1);
    return -1;
}

/* ---- in-process checks ----------------------------------------------------------------- */

typedef struct seen {
    const char *want;   /* a file a problem must name */
    int named;          /* a problem named it */
    int problems;
    char first[512];
} seen;

static void seen_problem(void *arg, const check_problem *p)
{
    seen *s = arg;
    if (s->problems++ == 0)
        snprintf(s->first, sizeof s->first, "%s: %s", p->file, p->what);
    if (s->want != NULL && strcmp(p->file, s->want) == 0)
        s->named = 1;
}

static int check_in_process(const char *path, const char *want, check_summary *sum, seen *s)
{
    check_fns fns = {seen_problem, NULL, NULL, s};
    memset(s, 0, sizeof *s);
    s->want = want;
    return check_path(path, &fns, sum);
}

/* ---- clean stores ------------------------------------------------------------------- */

static void test_clean_fresh(void)
{
    char *dir = kvt_dir_new("check-fresh");
    char out[8192];
    kv_db *db;
    check_summary sum;
    seen sn;
    KVT_RC_FATAL(kvt_open_mode(dir, KV_SYNC_ALWAYS, KV_IO_AUTO, 0, &db), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);
    uint64_t before = kvt_dir_fingerprint(dir);
    KVT_RC(check_in_process(dir, NULL, &sum, &sn), KV_OK);
    struct stat st;
    KVT_CHECK_FATAL(stat(kvt_path(dir, "LOCK"), &st) == 0, "no LOCK in a fresh store");
    KVT_CHECK(sum.damaged == 0 && sum.files == 4 && sum.records == 0
                  && sum.bytes == 16 + 16 + 36 + (uint64_t)st.st_size,
              "fresh store: damaged %llu files %llu records %llu bytes %llu (%s)",
              (unsigned long long)sum.damaged, (unsigned long long)sum.files,
              (unsigned long long)sum.records, (unsigned long long)sum.bytes, sn.first);
    int rc = kvcheck(out, sizeof out, "'%s'", dir);
    KVT_CHECK(rc == 0 && field(out, "files") == 4 && field(out, "records") == 0
                  && field(out, "damaged") == 0 && field(out, "lost_bytes") == 0,
              "kvcheck on a fresh store: exit %d, \"%s\"", rc, out);
    KVT_CHECK(before == kvt_dir_fingerprint(dir), "kvcheck changed a fresh store");
}

/* Sealed segments with hints, a WAL, LZ4 values, tombstones and a batch: the
 * summary's counts are exact. Every operation is one entry in exactly one segment
 * (no compaction ran); the WAL file repeats the active segment's entries. */
static void test_clean_counts(void)
{
    char *dir = kvt_dir_new("check-counts");
    char out[8192], path[4096];
    model m;
    check_summary sum;
    seen sn;
    uint32_t sealed[16];
    int nsealed;
    build_store(dir, &m, 1);
    uint32_t active = active_of(dir, sealed, &nsealed);
    ent_list act;
    snprintf(path, sizeof path, "%s/%06u.seg", dir, active);
    entries_of(path, &act);
    KVT_CHECK_FATAL(nsealed >= 2, "the workload sealed %d segments, 2 wanted", nsealed);
    uint64_t bytes = 0;
    DIR *d = opendir(dir);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (de->d_name[0] != '.' && stat(path, &st) == 0) {
            bytes += (uint64_t)st.st_size;
            files++;
        }
    }
    closedir(d);
    uint64_t before = kvt_dir_fingerprint(dir);
    KVT_RC(check_in_process(dir, NULL, &sum, &sn), KV_OK);
    KVT_CHECK(sum.damaged == 0, "clean store: %llu problems, the first: %s",
              (unsigned long long)sum.damaged, sn.first);
    KVT_CHECK(sum.seg_records == (uint64_t)m.n && sum.wal_records == (uint64_t)act.n
                  && sum.records == (uint64_t)(m.n + act.n)
                  && sum.hint_records == (uint64_t)(m.n - act.n),
              "records: segments %llu (want %d), WAL %llu (want %d), hints %llu (want %d)",
              (unsigned long long)sum.seg_records, m.n, (unsigned long long)sum.wal_records,
              act.n, (unsigned long long)sum.hint_records, m.n - act.n);
    KVT_CHECK(sum.files == (uint64_t)files && sum.bytes == bytes && sum.lost_bytes == 0,
              "files %llu (want %d), bytes %llu (want %llu)", (unsigned long long)sum.files,
              files, (unsigned long long)sum.bytes, (unsigned long long)bytes);
    int rc = kvcheck(out, sizeof out, "'%s'", dir);
    KVT_CHECK(rc == 0 && field(out, "records") == m.n + act.n && field(out, "files") == files
                  && field(out, "bytes") == (long long)bytes && field(out, "damaged") == 0,
              "kvcheck: exit %d, \"%s\"", rc, out);
    rc = kvcheck(out, sizeof out, "--json '%s'", dir);
    json_t *j = kvt_json_parse(out);
    KVT_CHECK(rc == 0 && json_is_object(j) && json_is_true(json_object_get(j, "clean"))
                  && kvt_json_int(j, "damaged") == 0
                  && kvt_json_int(j, "records") == m.n + act.n
                  && kvt_json_int(j, "files") == files && strcmp(kvt_json_str(j, "path"), dir) == 0,
              "kvcheck --json: exit %d, \"%s\"", rc, out);
    json_decref(j);
    rc = kvcheck(out, sizeof out, "--quiet '%s'", dir);
    KVT_CHECK(rc == 0 && out[0] == '\0', "kvcheck --quiet on a clean store: exit %d, \"%s\"", rc,
              out);
    KVT_CHECK(before == kvt_dir_fingerprint(dir), "a clean check changed the store");
    rc = kvcheck(out, sizeof out, "--repair --yes '%s'", dir);
    KVT_CHECK(rc == 0 && strstr(out, "nothing to repair") != NULL,
              "--repair on a clean store: exit %d, \"%s\"", rc, out);
    KVT_CHECK(before == kvt_dir_fingerprint(dir), "--repair changed a clean store (LOCK included)");
    kvt_note("clean store: %d files, %llu bytes, %d segment records, %d WAL records",
             files, (unsigned long long)bytes, m.n, act.n);
}

/* ---- every single-byte flip ----------------------------------------------------------- */

/* Kinds of file, for the count. */
static int kind_index(const char *name)
{
    if (strstr(name, ".seg") != NULL)
        return 0;
    if (strstr(name, ".wal") != NULL)
        return 1;
    if (strstr(name, ".hint") != NULL)
        return 2;
    if (strcmp(name, "MANIFEST") == 0)
        return 3;
    return 4; /* LOCK */
}

/* Every byte of every file of a small store (segments, WAL, hints, MANIFEST, LOCK),
 * flipped (xor 0xFF) one at a time: the check must find damage (exit 1, not 2) and
 * name that file, each time. The store's files are complete, so a flip near the end
 * of the WAL or the active segment — which looks like a torn tail — is a problem too.
 * No byte is exempt: the format has no padding, reserved fields must be 0 and are
 * covered by a CRC, and LOCK must hold a pid and a newline. Under KV_TEST_QUICK (the
 * ASan run) every header byte and every 11th byte after it is flipped. */
static void test_every_byte_flip(void)
{
    static const char *const kinds[] = {"segments", "WAL", "hints", "MANIFEST", "LOCK"};
    char *dir = kvt_dir_new("check-flip");
    char out[8192], detail[1024] = "";
    model m;
    uint64_t tried[5] = {0}, found[5] = {0};
    build_store(dir, &m, 1);
    uint64_t clean = kvt_dir_fingerprint(dir);
    struct dirent **list;
    int n = scandir(dir, &list, NULL, alphasort);
    KVT_CHECK_FATAL(n > 0, "scandir %s", dir);
    uint64_t t0 = kvt_now_ms();
    for (int i = 0; i < n; i++) {
        char path[4096];
        const char *name = list[i]->d_name;
        size_t len;
        if (name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, name);
        uint8_t *orig = kvt_slurp(path, &len);
        int fd = open(path, O_RDWR);
        KVT_CHECK_FATAL(fd >= 0, "open %s", path);
        int k = kind_index(name);
        uint64_t t = 0, f = 0;
        for (size_t pos = 0; pos < len; pos++) {
            check_summary sum;
            seen sn;
            if (kvt_quick() && pos >= KV_FILE_HDR_SIZE && pos % 11 != 0 && pos != len - 1)
                continue;
            uint8_t b = orig[pos] ^ 0xff;
            KVT_CHECK_FATAL(pwrite(fd, &b, 1, (off_t)pos) == 1, "flip %s", path);
            int rc = check_in_process(dir, name, &sum, &sn);
            t++;
            if (rc == KV_OK && sum.damaged > 0 && sn.named)
                f++;
            else
                KVT_CHECK(0, "%s: flip at offset %zu not detected: rc %d (%s), %llu problems, the "
                          "first: %s", name, pos, rc, kv_errmsg(), (unsigned long long)sum.damaged,
                          sn.first);
            KVT_CHECK_FATAL(pwrite(fd, &orig[pos], 1, (off_t)pos) == 1, "restore %s", path);
        }
        /* and once through the real binary, in the middle of the file */
        poke(path, len / 2, 0xff);
        int rc = kvcheck(out, sizeof out, "'%s'", dir);
        KVT_CHECK(rc == 1 && strstr(out, path) != NULL, "kvcheck with %s flipped at %zu: exit "
                  "%d, \"%s\"", name, len / 2, rc, out);
        poke(path, len / 2, 0xff);
        close(fd);
        free(orig);
        tried[k] += t;
        found[k] += f;
        snprintf(detail + strlen(detail), sizeof detail - strlen(detail), "%s%s %llu/%llu",
                 detail[0] ? ", " : "", name, (unsigned long long)f, (unsigned long long)t);
    }
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
    KVT_CHECK(clean == kvt_dir_fingerprint(dir), "the store is not as it was after the flips");
    uint64_t all = 0, hit = 0;
    char by_kind[256] = "";
    for (int k = 0; k < 5; k++) {
        all += tried[k];
        hit += found[k];
        snprintf(by_kind + strlen(by_kind), sizeof by_kind - strlen(by_kind), "%s%s %llu/%llu",
                 k ? ", " : "", kinds[k], (unsigned long long)found[k], (unsigned long long)tried[k]);
    }
    kvt_note("single-byte flips detected: %llu of %llu%s (%s); %.1f s", (unsigned long long)hit,
             (unsigned long long)all, kvt_quick() ? ", sampled (KV_TEST_QUICK)" : "", by_kind,
             (double)(kvt_now_ms() - t0) / 1000.0);
    kvt_note("per file: %s", detail);
    KVT_CHECK(hit == all && tried[0] && tried[1] && tried[2] && tried[3] && tried[4],
              "flips detected %llu of %llu", (unsigned long long)hit, (unsigned long long)all);
}

/* ---- truncations and damage, each repaired ------------------------------------------ */

/* A writer that dies without closing: its records are in its WAL file only (the
 * active segment's buffer never reached the file: 1 MiB segments, no roll). */
static void killed_writer(const char *dir, model *m)
{
    pid_t pid = fork();
    KVT_CHECK_FATAL(pid >= 0, "fork");
    if (pid == 0) {
        kv_options o;
        kv_db *db;
        model *tmp = calloc(1, sizeof *tmp);
        store_options(&o, 0);
        o.segment_bytes = 1u << 20;
        if (tmp == NULL || kv_open(dir, &o, &db) != KV_OK)
            _exit(2);
        _exit(workload(db, tmp) == KV_OK ? 0 : 3);
    }
    int st;
    KVT_CHECK_FATAL(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                    "the writer child failed (status %d)", st);
    memset(m, 0, sizeof *m);
    workload(NULL, m);
}

static int has_text(const char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int has_text(const char *out, const char *fmt, ...)
{
    char want[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(want, sizeof want, fmt, ap);
    va_end(ap);
    return strstr(out, want) != NULL;
}

/* The WAL of a killed writer, cut in the middle of a record (its active segment
 * holds none of the records: the write stopped half-way): told at that record's
 * offset as an unfinished write, a note, no damage (exit 0); --repair cuts it and the
 * store opens holding every record before the cut. */
static void test_truncated_wal(void)
{
    char *dir = kvt_dir_new("check-cutwal");
    char out[16384], wal[4096];
    model m;
    ent_list l;
    uint64_t lost[MAXOPS];
    int nlost = 0;
    killed_writer(dir, &m);
    snprintf(wal, sizeof wal, "%s/000001.wal", dir);
    entries_of(wal, &l);
    KVT_CHECK_FATAL(l.n == m.n, "the WAL holds %d records, the model %d", l.n, m.n);
    const ent *r = &l.v[l.n / 2];
    cut_at(wal, r->off + 9);
    for (int i = l.n / 2; i < l.n; i++)
        lost[nlost++] = l.v[i].seq;
    int rc = kvcheck(out, sizeof out, "'%s'", dir);
    KVT_CHECK(rc == 0 && has_text(out, "%s: offset 0x%llx: note: an unfinished write", wal,
                                  (unsigned long long)r->off)
              && strstr(out, " damaged=0 ") != NULL && strstr(out, " unfinished=1") != NULL,
              "kvcheck on a cut WAL: exit %d, \"%s\" (expected the cut at 0x%llx)", rc, out,
              (unsigned long long)r->off);
    rc = kvcheck(out, sizeof out, "--repair --yes '%s'", dir);
    KVT_CHECK(rc == 0 && has_text(out, "%s: offset 0x%llx..0x%llx: cut the torn tail", wal,
                                  (unsigned long long)r->off, (unsigned long long)r->off + 9),
              "kvcheck --repair: exit %d, \"%s\"", rc, out);
    check_contents(dir, &m, lost, nlost);
    rc = kvcheck(out, sizeof out, "'%s'", dir);
    KVT_CHECK(rc == 0, "after the repair: exit %d, \"%s\"", rc, out);
}

/* A sealed segment cut in the middle of a record: the size and the cut are reported;
 * --repair sets the segment aside, keeps every record before the cut, and names the
 * keys it lost (from the hint). */
static void test_truncated_sealed(void)
{
    char *dir = kvt_dir_new("check-cutseg");
    char out[32768], seg[4096];
    model m;
    ent_list l;
    uint32_t sealed[16];
    int nsealed, nlost = 0;
    uint64_t lost[MAXOPS];
    build_store(dir, &m, 0);
    active_of(dir, sealed, &nsealed);
    snprintf(seg, sizeof seg, "%s/%06u.seg", dir, sealed[1]);
    entries_of(seg, &l);
    const ent *r = &l.v[l.n / 2];
    cut_at(seg, r->off + 5);
    for (int i = l.n / 2; i < l.n; i++) /* tombstones come back from the hint */
        if (l.v[i].type == KV_REC_PUT)
            lost[nlost++] = l.v[i].seq;
    int rc = kvcheck(out, sizeof out, "'%s'", dir);
    KVT_CHECK(rc == 1 && has_text(out, "%s: offset 0x%llx: ", seg, (unsigned long long)r->off)
                  && strstr(out, "the MANIFEST says") != NULL,
              "kvcheck on a cut segment: exit %d, \"%s\" (expected the cut at 0x%llx)", rc, out,
              (unsigned long long)r->off);
    rc = kvcheck(out, sizeof out, "--repair --yes '%s'", dir);
    KVT_CHECK(rc == 0, "kvcheck --repair: exit %d, \"%s\"", rc, out);
    for (int i = l.n / 2; i < l.n; i++)
        KVT_CHECK(l.v[i].type != KV_REC_PUT
                      || has_text(out, "\"%s\" (seq %llu", l.v[i].key, (unsigned long long)l.v[i].seq),
                  "the repair did not name lost key %s (seq %llu): \"%s\"", l.v[i].key,
                  (unsigned long long)l.v[i].seq, out);
    char aside[4200];
    snprintf(aside, sizeof aside, "%s.damaged", seg);
    KVT_CHECK(access(aside, F_OK) == 0 && access(seg, F_OK) != 0, "%s was not set aside", seg);
    check_contents(dir, &m, lost, nlost);
    rc = kvcheck(out, sizeof out, "'%s'", dir);
    KVT_CHECK(rc == 0, "after the repair: exit %d, \"%s\"", rc, out);
}

/* One byte flipped in a record in the middle of a sealed segment: the segment is set
 * aside (still there), the records after the damage are salvaged, the damaged
 * record's key is named, and every other key has its newest value — the salvaged
 * copies (in a segment numbered after every other) never shadow a newer record. */
static void test_damaged_sealed(void)
{
    char *dir = kvt_dir_new("check-damseg");
    char out[16384], seg[4096];
    model m;
    uint32_t sealed[16], after[16];
    int nsealed, nafter;
    build_store(dir, &m, 1);
    active_of(dir, sealed, &nsealed);
    snprintf(seg, sizeof seg, "%s/%06u.seg", dir, sealed[1]);
    ent r = middle_put(dir, sealed[1]);
    poke(seg, r.off + r.size - 2, 0xff);
    int rc = kvcheck(out, sizeof out, "'%s'", dir);
    KVT_CHECK(rc == 1 && has_text(out, "%s: offset 0x%llx: checksum mismatch", seg,
                                  (unsigned long long)r.off),
              "kvcheck: exit %d, \"%s\" (expected damage at 0x%llx)", rc, out,
              (unsigned long long)r.off);
    rc = kvcheck(out, sizeof out, "--repair --yes '%s'", dir);
    KVT_CHECK(rc == 0 && has_text(out, "will lose: %s: offset 0x%llx: put of \"%s\" (seq %llu",
                                  seg, (unsigned long long)r.off, r.key,
                                  (unsigned long long)r.seq),
              "kvcheck --repair: exit %d, \"%s\"", rc, out);
    char aside[4200];
    snprintf(aside, sizeof aside, "%s.damaged", seg);
    KVT_CHECK(access(aside, F_OK) == 0, "%s was not set aside", seg);
    uint32_t active = active_of(dir, after, &nafter);
    int salvaged = 0;
    for (int i = 0; i < nafter; i++)
        salvaged |= after[i] > active;
    KVT_CHECK(nafter == nsealed && salvaged, "the MANIFEST does not name a salvaged segment");
    check_contents(dir, &m, &r.seq, 1);
    rc = kvcheck(out, sizeof out, "'%s'", dir);
    KVT_CHECK(rc == 0, "after the repair: exit %d, \"%s\"", rc, out);
}

/* A tombstone damaged in a sealed segment: the hint knows its key and sequence
 * number, so the repair writes it again and the deleted key stays deleted (its older
 * value, in an earlier segment, must not come back). */
static void test_damaged_tombstone(void)
{
    char *dir = kvt_dir_new("check-damtomb");
    char out[16384], seg[4096];
    model m;
    uint32_t sealed[16];
    int nsealed;
    ent tomb = {0};
    char v[260];
    kv_options o;
    kv_db *db;
    build_store(dir, &m, 0);
    /* more puts, of keys that were not deleted, until the segment holding the
     * tombstones is sealed */
    store_options(&o, 0);
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    for (int k = 2; k < NKEYS; k++)
        if (k % 7 != 1)
            KVT_RC(m_put(db, &m, k, v, value_of(v, sizeof v, k, 5)), KV_OK);
    KVT_RC_FATAL(kvt_close(db), KV_OK);
    active_of(dir, sealed, &nsealed);
    for (int i = 0; i < nsealed && tomb.seq == 0; i++) {
        ent_list l;
        snprintf(seg, sizeof seg, "%s/%06u.seg", dir, sealed[i]);
        entries_of(seg, &l);
        for (int j = 0; j < l.n && tomb.seq == 0; j++)
            if (l.v[j].type == KV_REC_DEL && !(l.v[j].flags & KV_RECF_BATCH))
                tomb = l.v[j];
    }
    KVT_CHECK_FATAL(tomb.seq != 0, "no tombstone in a sealed segment");
    poke(seg, tomb.off + KV_ENTRY_HDR, 0xff); /* its key */
    int rc = kvcheck(out, sizeof out, "--repair --yes '%s'", dir);
    KVT_CHECK(rc == 0 && strstr(out, "1 tombstones rebuilt") != NULL,
              "kvcheck --repair: exit %d, \"%s\"", rc, out);
    check_contents(dir, &m, NULL, 0);
}

/* A byte flipped in the middle of the active segment of a closed store: its WAL file
 * holds the same records, so the repair (a new active pair) loses nothing. */
static void test_damaged_active(void)
{
    char *dir = kvt_dir_new("check-damact");
    char out[16384], seg[4096];
    model m;
    uint32_t sealed[16];
    int nsealed;
    build_store(dir, &m, 1);
    uint32_t active = active_of(dir, sealed, &nsealed);
    snprintf(seg, sizeof seg, "%s/%06u.seg", dir, active);
    ent r = middle_put_in(seg);
    poke(seg, r.off + 4, 0x01);
    int rc = kvcheck(out, sizeof out, "'%s'", dir);
    KVT_CHECK(rc == 1 && has_text(out, "%s: offset 0x%llx: checksum mismatch", seg,
                                  (unsigned long long)r.off),
              "kvcheck: exit %d, \"%s\"", rc, out);
    rc = kvcheck(out, sizeof out, "--repair --yes '%s'", dir);
    KVT_CHECK(rc == 0 && strstr(out, "new active segment") != NULL
                  && strstr(out, "; 0 records lost") != NULL,
              "kvcheck --repair: exit %d, \"%s\"", rc, out);
    check_contents(dir, &m, NULL, 0);
    rc = kvcheck(out, sizeof out, "'%s'", dir);
    KVT_CHECK(rc == 0, "after the repair: exit %d, \"%s\"", rc, out);
    /* the new active pair works: a writer appends, rolls, and the store checks clean */
    kv_options o;
    kv_db *db;
    char v[260];
    store_options(&o, 1);
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    for (int k = 0; k < NKEYS; k++)
        KVT_RC(m_put(db, &m, k, v, value_of(v, sizeof v, k, 6)), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);
    check_contents(dir, &m, NULL, 0);
    rc = kvcheck(out, sizeof out, "'%s'", dir);
    KVT_CHECK(rc == 0, "after writing to the repaired store: exit %d, \"%s\"", rc, out);
}

/* A killed writer's WAL (its records nowhere else) damaged in the middle: like
 * recovery, the repair keeps the records before the damage and none after it (a
 * later write must not outlive an earlier one; see the regression test below), names
 * every record it loses, and sets the WAL aside with all its bytes. */
static void test_damaged_wal(void)
{
    char *dir = kvt_dir_new("check-damwal");
    char out[65536], wal[4096], aside[4200];
    model m;
    ent_list l;
    uint64_t lost[MAXOPS];
    int nlost = 0;
    killed_writer(dir, &m);
    snprintf(wal, sizeof wal, "%s/000001.wal", dir);
    entries_of(wal, &l);
    int at = l.n / 3;
    ent r = l.v[at];
    KVT_CHECK_FATAL(!(r.flags & KV_RECF_BATCH) && !(l.v[at - 1].flags & KV_RECF_BATCH),
                    "picked a batch entry");
    poke(wal, r.off + r.size - 1, 0xff);
    for (int i = at; i < l.n; i++)
        lost[nlost++] = l.v[i].seq;
    int rc = kvcheck(out, sizeof out, "--repair --yes '%s'", dir);
    KVT_CHECK(rc == 0 && strstr(out, "new active segment") != NULL,
              "kvcheck --repair: exit %d, \"%s\"", rc, out);
    for (int i = at + 1; i < l.n; i++)
        KVT_CHECK(has_text(out, "\"%s\" (seq %llu", l.v[i].key, (unsigned long long)l.v[i].seq),
                  "lost record %s (seq %llu) not named", l.v[i].key, (unsigned long long)l.v[i].seq);
    snprintf(aside, sizeof aside, "%s.damaged", wal);
    KVT_CHECK(access(aside, F_OK) == 0, "%s was not set aside", wal);
    check_contents(dir, &m, lost, nlost);
    rc = kvcheck(out, sizeof out, "'%s'", dir);
    KVT_CHECK(rc == 0, "after the repair: exit %d, \"%s\"", rc, out);
}

/* A repair interrupted after it set a damaged segment aside and before the MANIFEST
 * named its salvage (as a crash there leaves it): the check reports the segment
 * missing and checks its copy; the next repair finishes the job from the copy. */
static void test_interrupted_repair(void)
{
    char *dir = kvt_dir_new("check-resume");
    char out[16384], seg[4096], aside[4200];
    model m;
    uint32_t sealed[16];
    int nsealed;
    build_store(dir, &m, 0);
    active_of(dir, sealed, &nsealed);
    snprintf(seg, sizeof seg, "%s/%06u.seg", dir, sealed[0]);
    ent r = middle_put(dir, sealed[0]);
    poke(seg, r.off + KV_ENTRY_HDR + 1, 0xff);
    snprintf(aside, sizeof aside, "%s.damaged", seg);
    KVT_CHECK_FATAL(rename(seg, aside) == 0, "rename %s", seg);
    int rc = kvcheck(out, sizeof out, "'%s'", dir);
    KVT_CHECK(rc == 1 && strstr(out, "is missing; its copy") != NULL
                  && has_text(out, "%s: offset 0x%llx: checksum mismatch", aside,
                              (unsigned long long)r.off),
              "kvcheck: exit %d, \"%s\"", rc, out);
    rc = kvcheck(out, sizeof out, "--repair --yes '%s'", dir);
    KVT_CHECK(rc == 0, "kvcheck --repair: exit %d, \"%s\"", rc, out);
    KVT_CHECK(access(aside, F_OK) == 0, "the copy %s is gone", aside);
    check_contents(dir, &m, &r.seq, 1);
    rc = kvcheck(out, sizeof out, "'%s'", dir);
    KVT_CHECK(rc == 0, "after the repair: exit %d, \"%s\"", rc, out);
}

/* ---- hints and leftovers ----------------------------------------------------------- */

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    kvt_spill(path, p, n);
}

static void copy_file(const char *dir, const char *from, const char *to)
{
    char path[4096];
    size_t n;
    snprintf(path, sizeof path, "%s/%s", dir, from);
    uint8_t *b = kvt_slurp(path, &n);
    write_file(dir, to, b, n);
    free(b);
}

/* A damaged hint is reported and written again, byte for byte as it was; leftovers
 * of interrupted steps are reported and removed; a file that is not kv's is ignored
 * and kept. */
static void test_hint_and_leftovers(void)
{
    char *dir = kvt_dir_new("check-hint");
    char out[16384], hint[64], path[4096], name[64];
    model m;
    uint32_t sealed[16];
    int nsealed;
    size_t n0, n1;
    build_store(dir, &m, 0);
    uint32_t active = active_of(dir, sealed, &nsealed);
    snprintf(hint, sizeof hint, "%06u.hint", sealed[0]);
    snprintf(path, sizeof path, "%s/%s", dir, hint);
    uint8_t *orig = kvt_slurp(path, &n0);
    poke(path, 40, 0x10);
    const char *left[4] = {"000090.seg", "MANIFEST.tmp", name, "000091.hint.tmp"};
    snprintf(name, sizeof name, "%06u.wal", sealed[1]);
    copy_file(dir, "000001.seg", "000090.seg");
    copy_file(dir, "MANIFEST", "MANIFEST.tmp");
    char wal[64];
    snprintf(wal, sizeof wal, "%06u.wal", active);
    copy_file(dir, wal, name);
    copy_file(dir, hint, "000091.hint.tmp");
    write_file(dir, "notes.txt", "not kv's\n", 9);
    int rc = kvcheck(out, sizeof out, "'%s'", dir);
    KVT_CHECK(rc == 1 && has_text(out, "%s/%s: offset 0x", dir, hint), "kvcheck with a damaged "
              "hint: exit %d, \"%s\"", rc, out);
    for (int i = 0; i < 4; i++)
        KVT_CHECK(has_text(out, "%s/%s: ", dir, left[i]), "leftover %s not reported: \"%s\"",
                  left[i], out);
    KVT_CHECK(strstr(out, "notes.txt") == NULL, "a file that is not kv's was reported: \"%s\"", out);
    rc = kvcheck(out, sizeof out, "--verbose '%s'", dir);
    KVT_CHECK(rc == 1 && has_text(out, "%s/notes.txt: note: not a kv file", dir),
              "kvcheck --verbose does not note notes.txt: \"%s\"", out);
    rc = kvcheck(out, sizeof out, "--repair --yes '%s'", dir);
    KVT_CHECK(rc == 0 && strstr(out, "1 hints written, 4 files removed") != NULL,
              "kvcheck --repair: exit %d, \"%s\"", rc, out);
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, left[i]);
        KVT_CHECK(access(path, F_OK) != 0, "leftover %s was not removed", left[i]);
    }
    KVT_CHECK(access(kvt_path(dir, "notes.txt"), F_OK) == 0, "notes.txt was removed");
    snprintf(path, sizeof path, "%s/%s", dir, hint);
    uint8_t *again = kvt_slurp(path, &n1);
    KVT_CHECK(n0 == n1 && memcmp(orig, again, n0) == 0, "the rewritten hint differs from the "
              "original (%zu and %zu bytes)", n0, n1);
    free(orig);
    free(again);
    check_contents(dir, &m, NULL, 0);
    rc = kvcheck(out, sizeof out, "'%s'", dir);
    KVT_CHECK(rc == 0, "after the repair: exit %d, \"%s\"", rc, out);
}

/* ---- bad input ---------------------------------------------------------------------- */

/* Rewrites the version of file name's header and its header CRC. */
static void set_version(const char *dir, const char *name, uint16_t version)
{
    char path[4096];
    size_t n;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint8_t *b = kvt_slurp(path, &n);
    kv_put16(b + 4, version);
    kv_put32(b + 12, kv_crc32c(b, 12));
    write_file(dir, name, b, n);
    free(b);
}

/* kvcheck and kvcheck --repair --yes on what is not a store it can check: exit 2
 * with a message naming the path and why, and not a file created or changed. */
static void bad_input(const char *label, const char *path, const char *fpdir, const char *why)
{
    char out[8192];
    uint64_t before = kvt_dir_fingerprint(fpdir);
    struct stat st;
    int is_file = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    for (int repair = 0; repair < 2; repair++) {
        int rc = kvcheck(out, sizeof out, "%s'%s'", repair ? "--repair --yes " : "", path);
        const char *want = repair && is_file ? "store directory" : why;
        KVT_CHECK(rc == 2 && strstr(out, path) != NULL && strstr(out, want) != NULL,
                  "%s: kvcheck%s: exit %d, \"%s\" (expected exit 2 saying \"%s\")", label,
                  repair ? " --repair" : "", rc, out, want);
        KVT_CHECK(before == kvt_dir_fingerprint(fpdir), "%s: kvcheck%s changed or created a file",
                  label, repair ? " --repair" : "");
    }
}

static void test_bad_input(void)
{
    char *dir = kvt_dir_new("check-bad");
    char *empty = kvt_dir_new("check-empty");
    char *other = kvt_dir_new("check-other");
    char *newer = kvt_dir_new("check-newer");
    char *newseg = kvt_dir_new("check-newseg");
    model m;
    bad_input("a missing path", "/nonexistent/kvcheck-store", dir, "no such file");
    write_file(dir, "plain.txt", "hello, world\n", 13);
    bad_input("a plain file", kvt_path(dir, "plain.txt"), dir, "not a kv file");
    bad_input("an empty directory", empty, empty, "empty directory");
    KVT_CHECK(kvt_dir_count(empty) == 0, "files appeared in an empty directory");
    write_file(other, "MANIFEST", "include *.py\n", 13);
    write_file(other, "README", "someone else's\n", 15);
    write_file(other, "data.bin", "\x01\x02\x03", 3);
    bad_input("someone else's files", other, other, "not a kv store");
    build_store(newer, &m, 0);
    set_version(newer, "MANIFEST", KV_FORMAT_VERSION + 1);
    char want[96];
    snprintf(want, sizeof want, "newer format version %d, this build reads %d",
             KV_FORMAT_VERSION + 1, KV_FORMAT_VERSION);
    bad_input("a newer MANIFEST", newer, newer, want);
    build_store(newseg, &m, 0);
    set_version(newseg, "000001.seg", KV_FORMAT_VERSION + 2);
    snprintf(want, sizeof want, "000001.seg: newer format version %d", KV_FORMAT_VERSION + 2);
    bad_input("a newer segment", newseg, newseg, want);
}

/* ---- a store held by a writer -------------------------------------------------------- */

/* kvcheck reads a store a writer holds (exit 0: its WAL is ahead of its active
 * segment, which is no damage); --repair refuses with exit 3 naming the writer's pid,
 * and nothing changes. */
static void test_held_by_writer(void)
{
    char *dir = kvt_dir_new("check-held");
    char out[16384], pid[32];
    model m;
    kv_options o;
    kv_db *db;
    build_store(dir, &m, 0);
    store_options(&o, 0);
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    for (int i = 0; i < 10; i++)
        KVT_RC(kvt_put_str(db, "held-key", "a value written while held"), KV_OK);
    uint64_t before = kvt_dir_fingerprint(dir);
    int rc = kvcheck(out, sizeof out, "--verbose '%s'", dir);
    snprintf(pid, sizeof pid, "pid %d", (int)getpid());
    KVT_CHECK(rc == 0 && field(out, "damaged") == 0 && strstr(out, pid) != NULL,
              "kvcheck on a held store: exit %d, \"%s\"", rc, out);
    rc = kvcheck(out, sizeof out, "--repair --yes '%s'", dir);
    KVT_CHECK(rc == 3 && strstr(out, pid) != NULL, "kvcheck --repair on a held store: exit %d, "
              "\"%s\" (expected 3 naming %s)", rc, out, pid);
    KVT_CHECK(before == kvt_dir_fingerprint(dir), "kvcheck changed a store a writer holds");
    KVT_RC(kvt_close(db), KV_OK);
}

/* ---- single files and usage -------------------------------------------------------- */

static void test_single_files(void)
{
    char *dir = kvt_dir_new("check-files");
    char *copies = kvt_dir_new("check-copies");
    char out[8192], path[4096];
    model m;
    ent_list l;
    build_store(dir, &m, 0);
    snprintf(path, sizeof path, "%s/000001.seg", dir);
    struct stat st;
    KVT_CHECK_FATAL(stat(path, &st) == 0, "stat %s", path);
    int rc = kvcheck(out, sizeof out, "'%s'", path);
    KVT_CHECK(rc == 0 && field(out, "ok_up_to") == st.st_size && field(out, "files") == 1,
              "kvcheck on a segment: exit %d, \"%s\"", rc, out);
    entries_of(path, &l);
    size_t n;
    uint8_t *b = kvt_slurp(path, &n);
    const ent *r = &l.v[l.n / 2];
    write_file(copies, "a-copy", b, (size_t)r->off + 3);
    free(b);
    snprintf(path, sizeof path, "%s/a-copy", copies);
    rc = kvcheck(out, sizeof out, "'%s'", path);
    KVT_CHECK(rc == 1 && field(out, "ok_up_to") == (long long)r->off
                  && has_text(out, "%s: offset 0x%llx: ", path, (unsigned long long)r->off),
              "kvcheck on a segment cut at 0x%llx: exit %d, \"%s\"", (unsigned long long)r->off + 3,
              rc, out);
    const char *fine[] = {"000001.hint", "MANIFEST", "LOCK", "000001.seg"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, fine[i]);
        rc = kvcheck(out, sizeof out, "'%s'", path);
        KVT_CHECK(rc == 0, "kvcheck %s: exit %d, \"%s\"", fine[i], rc, out);
    }
    rc = kvcheck(out, sizeof out, "--repair --yes '%s'", path);
    KVT_CHECK(rc == 2 && strstr(out, "store directory") != NULL, "--repair on a file: exit %d, "
              "\"%s\"", rc, out);
}

static void test_usage(void)
{
    char *dir = kvt_dir_new("check-usage");
    char out[8192];
    model m;
    build_store(dir, &m, 0);
    int rc = kvcheck(out, sizeof out, "--help");
    KVT_CHECK(rc == 0 && strncmp(out, "usage: kvcheck", 14) == 0, "--help: %d \"%s\"", rc, out);
    rc = kvcheck(out, sizeof out, "--version");
    KVT_CHECK(rc == 0 && strstr(out, kv_version()) != NULL, "--version: %d \"%s\"", rc, out);
    rc = kvcheck(out, sizeof out, "%s", "");
    KVT_CHECK(rc == 2 && strstr(out, "usage:") != NULL, "no argument: %d \"%s\"", rc, out);
    rc = kvcheck(out, sizeof out, "--bogus '%s'", dir);
    KVT_CHECK(rc == 2, "an unknown option: exit %d", rc);
    rc = kvcheck(out, sizeof out, "'%s' '%s'", dir, dir);
    KVT_CHECK(rc == 2, "two paths: exit %d", rc);
    poke(kvt_path(dir, "000001.seg"), 100, 0xff);
    uint64_t before = kvt_dir_fingerprint(dir);
    rc = kvcheck(out, sizeof out, "--repair '%s'", dir);
    KVT_CHECK(rc == 2 && strstr(out, "--yes") != NULL, "--repair without a terminal or --yes: "
              "exit %d, \"%s\"", rc, out);
    KVT_CHECK(before == kvt_dir_fingerprint(dir), "--repair without --yes changed the store");
    /* diagnostics on stderr, the summary on stdout */
    char cmd[8192], so[8192];
    snprintf(cmd, sizeof cmd, "'%s/kvcheck' '%s' 2>/dev/null", bin(), dir);
    rc = kvt_run(cmd, so, sizeof so);
    KVT_CHECK(rc == 1 && strncmp(so, "files=", 6) == 0
                  && strstr(so, "kvcheck:") == NULL,
              "stdout holds the summary only: \"%s\"", so);
}

/* ---- a crash at every I/O call of a repair --------------------------------------- */

static fio *g_fio;           /* the layer the repair of g_fio_dir runs on */
static const char *g_fio_dir;

static int repair_factory(void *arg, const char *dir, int want, kv_io **out)
{
    (void)arg;
    if (g_fio != NULL && strcmp(dir, g_fio_dir) == 0)
        return fio_make_io(g_fio, want, out);
    return io_new(want, out);
}

/* kvcheck --repair --yes, in process. */
static int repair_in_process(const char *dir, check_repair_result *res)
{
    int lock_fd;
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
    KVT_CHECK_FATAL(dirfd >= 0, "open %s", dir);
    int rc = lock_take(dirfd, dir, &lock_fd);
    if (rc == KV_NOTFOUND) /* a crash image: LOCK is not written through the I/O layer */
        rc = lock_acquire(dirfd, dir, &lock_fd);
    close(dirfd);
    if (rc == KV_OK) {
        rc = check_repair(dir, lock_fd, NULL, res);
        lock_release(lock_fd);
    }
    return rc;
}

/* A damaged store for the crash test: a sealed segment damaged in a record (its
 * seq in *lost), a damaged hint, a leftover; and either the active segment damaged
 * in the middle (a new active pair) or the WAL cut (a torn tail). */
static void damaged_store(const char *dir, model *m, int active_damage, uint64_t *lost,
                          char *seg, size_t seglen)
{
    uint32_t sealed[16];
    int nsealed;
    char path[4096];
    build_store(dir, m, 1);
    uint32_t active = active_of(dir, sealed, &nsealed);
    snprintf(seg, seglen, "%06u.seg", sealed[1]);
    ent r = middle_put(dir, sealed[1]);
    snprintf(path, sizeof path, "%s/%s", dir, seg);
    poke(path, r.off + r.size - 1, 0xff);
    *lost = r.seq;
    snprintf(path, sizeof path, "%s/%06u.hint", dir, sealed[0]);
    poke(path, 20, 0x01);
    copy_file(dir, "MANIFEST", "MANIFEST.tmp");
    if (active_damage) {
        snprintf(path, sizeof path, "%s/%06u.seg", dir, active);
        ent a = middle_put_in(path);
        poke(path, a.off + 8, 0x01);
    } else {
        struct stat st;
        snprintf(path, sizeof path, "%s/%06u.wal", dir, active);
        KVT_CHECK_FATAL(stat(path, &st) == 0, "stat %s", path);
        cut_at(path, (uint64_t)st.st_size - 5);
    }
}

/* No byte of the damaged segment is gone: it is there under its name or as a copy. */
static int damaged_bytes_kept(const char *dir, const char *seg, const uint8_t *want, size_t n)
{
    char path[4096];
    const char *names[] = {"", ".damaged", ".damaged.2"};
    for (int i = 0; i < 3; i++) {
        size_t len;
        snprintf(path, sizeof path, "%s/%s%s", dir, seg, names[i]);
        if (access(path, F_OK) != 0)
            continue;
        uint8_t *b = kvt_slurp(path, &len);
        int same = len == n && memcmp(b, want, n) == 0;
        free(b);
        if (same)
            return 1;
    }
    return 0;
}

/* What one crash image must show (the image is in img_dir; call names the crash). */
typedef struct crash_case {
    const char *seg;         /* the damaged segment's name */
    const uint8_t *segbytes; /* its bytes when damaged */
    size_t seglen;
    const model *m;
    uint64_t lost;           /* the record its damage took */
} crash_case;

static void check_crash_image(const crash_case *cc, const char *img_dir, const char *call,
                              const char *variant)
{
    check_repair_result r2;
    check_summary sum;
    seen sn;
    KVT_CHECK_FATAL(damaged_bytes_kept(img_dir, cc->seg, cc->segbytes, cc->seglen),
                    "crash after call %s (%s): the damaged segment's bytes are gone", call, variant);
    int rc = repair_in_process(img_dir, &r2);
    KVT_CHECK_FATAL(rc == KV_OK && (r2.steps == 0 || r2.done),
                    "crash after call %s (%s): the next repair: rc %d (%s)", call, variant, rc,
                    kv_errmsg());
    KVT_CHECK_FATAL(check_in_process(img_dir, NULL, &sum, &sn) == KV_OK && sum.damaged == 0,
                    "crash after call %s (%s), then a repair: %llu problems, the first: %s", call,
                    variant, (unsigned long long)sum.damaged, sn.first);
    check_contents(img_dir, cc->m, &cc->lost, 1);
    KVT_CHECK_FATAL(damaged_bytes_kept(img_dir, cc->seg, cc->segbytes, cc->seglen),
                    "crash after call %s (%s), then a repair: the damaged segment's bytes are "
                    "gone", call, variant);
}

/* Repairs dir through the fault-injecting layer; returns the layer (its log). */
static fio *repair_through_layer(const char *dir)
{
    check_repair_result res;
    g_fio = fio_new(dir);
    g_fio_dir = dir;
    KVT_CHECK_FATAL(g_fio != NULL, "fio_new");
    io_set_factory(repair_factory, NULL);
    int rc = repair_in_process(dir, &res);
    io_set_factory(NULL, NULL);
    KVT_CHECK_FATAL(rc == KV_OK && res.done && fio_model_error(g_fio) == NULL,
                    "the repair through the layer: rc %d (%s), done %d, model %s", rc, kv_errmsg(),
                    res.done, fio_model_error(g_fio) ? fio_model_error(g_fio) : "ok");
    return g_fio;
}

/* A repair crashed at every I/O call it makes, each crash image taken as the crash
 * model allows (durable state, page cache, a torn last write, random subsets and
 * prefixes of what was pending): the damaged segment's bytes always survive (under
 * its name or as its copy), and one more repair of the image leaves a store that
 * checks clean, opens, and holds what the uninterrupted repair keeps. */
static void test_repair_crash_at_every_call(void)
{
    static const fio_variant variants[] = {FIO_V_DURABLE, FIO_V_KERNEL, FIO_V_TEAR_LAST,
                                           FIO_V_SUBSET, FIO_V_PREFIX};
    char *img_dir = kvt_dir_new("check-crash-img");
    unsigned images = 0, points = 0;
    for (int active_damage = 0; active_damage < 2; active_damage++) {
        char *dir = kvt_dir_new(active_damage ? "check-crash-act" : "check-crash-wal");
        char seg[64], segpath[4096];
        model m;
        crash_case cc = {.seg = seg, .m = &m};
        damaged_store(dir, &m, active_damage, &cc.lost, seg, sizeof seg);
        snprintf(segpath, sizeof segpath, "%s/%s", dir, seg);
        uint8_t *segbytes = kvt_slurp(segpath, &cc.seglen);
        cc.segbytes = segbytes;
        fio *f = repair_through_layer(dir);
        uint64_t calls = fio_calls(f), last[FIO_V_COUNT][2] = {{0}};
        fio_replay *rp = fio_replay_new(f);
        for (uint64_t k = 0; k <= calls; k++, points++) {
            fio_replay_to(rp, k);
            for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
                fio_variant var = variants[v];
                for (uint64_t seed = 1; seed <= (var >= FIO_V_TEAR_LAST ? 2u : 1u); seed++) {
                    fio_image img;
                    char call[96];
                    int b = fio_image_build(rp, var, k * 131 + seed, &img);
                    KVT_CHECK_FATAL(b >= 0, "fio_image_build");
                    int same = b == 0 && seed == 1 && img.hash[0] == last[var][0]
                               && img.hash[1] == last[var][1];
                    if (b == 0 && !same) {
                        last[var][0] = img.hash[0];
                        last[var][1] = img.hash[1];
                        KVT_CHECK_FATAL(kvt_rmtree(img_dir) == 0 && mkdir(img_dir, 0700) == 0
                                            && fio_image_write(&img, img_dir) == 0,
                                        "writing an image");
                    }
                    if (b == 0)
                        fio_image_free(&img);
                    if (b != 0 || same)
                        continue;
                    images++;
                    check_crash_image(&cc, img_dir, fio_describe(f, k, call, sizeof call),
                                      fio_variant_name[var]);
                }
            }
        }
        fio_replay_free(rp);
        fio_free(f);
        g_fio = NULL;
        free(segbytes);
    }
    kvt_note("repair crashed at %u points (every I/O call of two repairs): %u distinct crash "
             "images, each repaired again to the same store", points, images);
}

/* ---- repair agrees with recovery on the newest files --------------------------------- */

typedef struct contents {
    uint64_t sum;  /* of a hash of each key and value */
    uint64_t keys;
} contents;

static int sum_kv(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
    contents *c = arg;
    c->sum += kvt_hash(v, vl, kvt_hash(k, kl, 0)); /* the key's hash seeds the value's */
    c->keys++;
    return 0;
}

/* Opens dir as a writer (recovery runs) and reads what it holds. */
static int contents_of(const char *dir, contents *c)
{
    kv_options o;
    kv_db *db;
    memset(c, 0, sizeof *c);
    store_options(&o, 0);
    o.create = 0;
    int rc = kvt_open(dir, &o, &db);
    if (rc == KV_OK)
        rc = kv_foreach(db, sum_kv, c);
    if (db != NULL)
        kvt_close(db);
    return rc;
}

/* Regression (found by running kvcheck --repair on every crash image of the crash
 * simulation): a power failure may keep a later page of the WAL and lose an earlier
 * one, or flip a bit in it, leaving valid records after a damaged one. Recovery cuts
 * the newest files at their first damage (point in time: the store holds what the
 * writes up to some point left). The repair salvaged the records after the damage
 * instead, so a later write outlived an earlier one the crash took — a state no
 * crash leaves. Now, for the active segment and WAL, it keeps what recovery reads.
 * Here, on every crash image of a writer's puts and rolls: a copy repaired first
 * opens to the same contents as the image opened directly. */
static void test_repair_agrees_with_recovery(void)
{
    static const fio_variant variants[] = {FIO_V_SUBSET, FIO_V_FLIP, FIO_V_TEAR_LAST,
                                           FIO_V_PREFIX};
    char *dir = kvt_dir_new("check-agree");
    char *a = kvt_dir_new("check-agree-a"), *b = kvt_dir_new("check-agree-b");
    kv_options o;
    kv_db *db;
    char key[32], val[128];
    unsigned images = 0, differ = 0;
    g_fio = fio_new(dir);
    g_fio_dir = dir;
    KVT_CHECK_FATAL(g_fio != NULL, "fio_new");
    io_set_factory(repair_factory, NULL);
    store_options(&o, 0);
    o.io = KV_IO_PSYNC;
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    for (int i = 0; i < 70; i++) {
        snprintf(key, sizeof key, "agree-%03d", i % 50);
        int n = snprintf(val, sizeof val, "value %d of a put that fills a 4 KiB segment soon", i);
        KVT_RC(kv_put(db, key, strlen(key), val, (size_t)n), KV_OK);
    }
    KVT_RC(kvt_close(db), KV_OK);
    io_set_factory(NULL, NULL);
    uint64_t calls = fio_calls(g_fio);
    fio_replay *rp = fio_replay_new(g_fio);
    uint64_t last[FIO_V_COUNT][2] = {{0}};
    for (uint64_t k = 1; k <= calls; k++) {
        const fio_call *call = fio_call_at(g_fio, k);
        fio_replay_to(rp, k);
        if (call->op != FIO_WG_WRITE && call->op != FIO_PWRITE)
            continue; /* pending writes are what the variants play with */
        for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
            fio_image img;
            char what[96];
            contents ca, cb;
            check_repair_result res;
            int rc = fio_image_build(rp, variants[v], k * 7919 + v, &img);
            if (rc != 0 || (img.hash[0] == last[v][0] && img.hash[1] == last[v][1])) {
                if (rc == 0)
                    fio_image_free(&img);
                continue;
            }
            last[v][0] = img.hash[0];
            last[v][1] = img.hash[1];
            KVT_CHECK_FATAL(kvt_rmtree(a) == 0 && mkdir(a, 0700) == 0 && fio_image_write(&img, a) == 0
                                && kvt_rmtree(b) == 0 && mkdir(b, 0700) == 0
                                && fio_image_write(&img, b) == 0, "writing an image");
            fio_image_free(&img);
            fio_describe(g_fio, k, what, sizeof what);
            if (contents_of(a, &ca) != KV_OK)
                continue; /* recovery refused it: nothing to agree with */
            images++;
            rc = repair_in_process(b, &res);
            KVT_CHECK_FATAL(rc == KV_OK, "crash after %s (%s): the repair failed: %s", what,
                            fio_variant_name[variants[v]], kv_errmsg());
            rc = contents_of(b, &cb);
            if (rc != KV_OK || ca.sum != cb.sum || ca.keys != cb.keys) {
                if (differ++ == 0)
                    KVT_CHECK(0, "crash after %s (%s): recovery gives %llu keys, the repaired copy "
                              "%llu (rc %d): the repair kept what recovery does not", what,
                              fio_variant_name[variants[v]], (unsigned long long)ca.keys,
                              (unsigned long long)cb.keys, rc);
            }
        }
    }
    fio_replay_free(rp);
    fio_free(g_fio);
    g_fio = NULL;
    KVT_CHECK(differ == 0, "%u of %u crash images repair to other contents than recovery gives",
              differ, images);
    kvt_note("%u crash images with pending WAL and segment writes: %u repaired copies hold "
             "other contents than recovery gives", images, differ);
}

static const kvt_test kvcheck_tests[] = {
    {"clean: a fresh store, exit 0, nothing changed", test_clean_fresh},
    {"clean: segments, hints, WAL, LZ4, tombstones, a batch: exact counts", test_clean_counts},
    {"every single-byte flip of every file is detected", test_every_byte_flip},
    {"a killed writer's WAL cut mid-record: reported at its offset, repaired", test_truncated_wal},
    {"a sealed segment cut mid-record: set aside, records before the cut kept, lost keys named",
     test_truncated_sealed},
    {"a damaged sealed segment: set aside, the rest salvaged, newest values win",
     test_damaged_sealed},
    {"a damaged tombstone is written again from the hint", test_damaged_tombstone},
    {"a damaged active segment: rebuilt from it and its WAL, nothing lost", test_damaged_active},
    {"a damaged WAL of a killed writer: cut at the damage as recovery would, the rest named",
     test_damaged_wal},
    {"an interrupted repair is finished by the next one", test_interrupted_repair},
    {"a damaged hint is rewritten, leftovers removed, other files kept", test_hint_and_leftovers},
    {"bad input: exit 2, a clear message, no file created or changed", test_bad_input},
    {"a store held by a writer: checked (exit 0), --repair exits 3 naming the pid",
     test_held_by_writer},
    {"single files: segment, hint, MANIFEST, LOCK, a cut copy", test_single_files},
    {"usage, --help, --version, --repair without --yes", test_usage},
    {"a crash at every I/O call of a repair: the next repair finishes it",
     test_repair_crash_at_every_call},
    {"regression: on crash images, a repaired copy holds what recovery gives",
     test_repair_agrees_with_recovery},
    {NULL, NULL},
};

void kvt_register_kvcheck(void)
{
    kvt_add_suite("kvcheck", kvcheck_tests);
}
