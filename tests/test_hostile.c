/*
 * test_hostile.c — hostile directory contents and the promises around them: what a
 * store does when files that look like its own are not, and what the tools and the
 * API report then.
 *
 * What is checked:
 *   - a FIFO, a directory or a symbolic link to a FIFO named like a store file
 *     (a sealed or active segment, the WAL file, MANIFEST, a hint, LOCK): kv_open,
 *     read-only and writer, returns at once (in a child with a deadline, so a hang
 *     fails the test instead of the run) with KV_ECORRUPT naming the file, or for a
 *     hint, which only costs a scan, opens and leaves it in place; kvdump, kvdump
 *     --all, kv get and kvcheck, run with a timeout, end and name it;
 *   - LOCK as a symbolic link (to a file, dangling) or a FIFO: the writer's open is
 *     refused naming LOCK, and the link's target keeps every byte (or is not
 *     created);
 *   - names kv never writes (7+ digits with a leading zero, such as 0000099.wal or
 *     0000001.seg) are not kv's: a writer's open and kvcheck --repair leave them, a
 *     new store is not created over them, and kvcheck calls them foreign, not
 *     leftovers; non-regular entries with kv's names are not removed either;
 *   - kvcompact's exit codes follow its man page: damage is 1 (not 2), not a store
 *     is 2, a store held by a writer is compacted by it (0), one held by a process
 *     that takes no requests (a bare flock, as a kv too old to serve them) is 3;
 *   - kv_errmsg() after KV_NOTFOUND (kv_get, kv_delete) and after a kv_foreach
 *     stopped by its callback is a message of that call, not the previous one's.
 *
 * Sections:
 *   1. Helpers: a store with sealed segments, opening in a child with a deadline,
 *      running the tools
 *   2. Non-regular files named like store files
 *   3. LOCK
 *   4. Names kv never writes
 *   5. kvcompact exit codes
 *   6. kv_errmsg after KV_NOTFOUND
 */
#include "kvtest.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------
 * 1. Helpers
 * ------------------------------------------------------------------------------ */

/* Deadline of one open or tool run: far above what they take (milliseconds), far
 * below the suite's watchdog. */
#define HOSTILE_DEADLINE_S 10

static const char *bin(void)
{
    const char *b = getenv("KV_BIN");
    return b != NULL && b[0] != '\0' ? b : "build/bin";
}

/* A store in a new directory: 100 keys of 200 bytes in 4 KiB segments, so it has
 * sealed segments 000001..000005 with hints, and the active pair 000006.seg/.wal. */
static char *make_store(const char *tag)
{
    char *dir = kvt_dir_new(tag);
    char key[32], val[200];
    kv_db *db;
    KVT_RC_FATAL(kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_AUTO, 4096, &db), KV_OK);
    memset(val, 'v', sizeof val);
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "key%03d", i);
        KVT_RC_FATAL(kv_put(db, key, strlen(key), val, sizeof val), KV_OK);
    }
    KVT_RC_FATAL(kvt_close(db), KV_OK);
    struct stat st;
    KVT_CHECK_FATAL(stat(kvt_path(dir, "000005.hint"), &st) == 0
                        && stat(kvt_path(dir, "000006.wal"), &st) == 0,
                    "the store in %s does not have the expected files", dir);
    return dir;
}

/* What a kv_open in a child process did. */
typedef struct child_open {
    int hung;       /* 1: no answer before the deadline (the child was killed) */
    int rc;         /* kv_open's status */
    char msg[512];  /* kv_errmsg() after it */
} child_open;

/* kv_open(dir) (read-only or as the writer, create 0) in a forked child, which
 * closes the handle again; a child that does not answer within the deadline is
 * killed and reported as hung. The parent holds no handle while it forks. */
static child_open open_in_child(const char *dir, int read_only)
{
    child_open r = {0};
    int p[2];
    KVT_CHECK_FATAL(pipe(p) == 0, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    KVT_CHECK_FATAL(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        kv_options o;
        kv_db *db = NULL;
        close(p[0]);
        alarm(0);
        kv_options_init(&o);
        o.create = 0;
        o.read_only = read_only;
        child_open c = {0};
        c.rc = kv_open(dir, &o, &db);
        snprintf(c.msg, sizeof c.msg, "%s", kv_errmsg());
        kv_close(db);
        ssize_t w = write(p[1], &c, sizeof c);
        _exit(w == (ssize_t)sizeof c ? 0 : 1);
    }
    close(p[1]);
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    int ready;
    do
        ready = poll(&pfd, 1, HOSTILE_DEADLINE_S * 1000);
    while (ready < 0 && errno == EINTR);
    size_t got = 0;
    while (ready > 0 && got < sizeof r) {
        ssize_t n = read(p[0], (char *)&r + got, sizeof r - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got != sizeof r) {
        memset(&r, 0, sizeof r);
        r.hung = 1;
        kill(pid, SIGKILL);
    }
    close(p[0]);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return r;
}

/* Runs the shell command made from fmt under timeout(1), stderr and stdout into out
 * (stdout only where the command does not redirect it). Returns the exit status:
 * 124 means it was killed at the deadline. */
static int run(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run(char *out, size_t n, const char *fmt, ...)
{
    char cmd[4096], full[4300];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    KVT_CHECK_FATAL(len > 0 && (size_t)len < sizeof cmd, "command too long");
    snprintf(full, sizeof full, "timeout -s KILL %d sh -c '%s' 2>&1", HOSTILE_DEADLINE_S, cmd);
    int st = kvt_run(full, out, n);
    return st == 137 ? 124 : st;
}

/* Replaces dir/name by a FIFO ("fifo"), a directory ("dir") or a symbolic link to
 * a FIFO outside the store ("link"). */
static void replace_with(const char *dir, const char *name, const char *what)
{
    const char *path = kvt_path(dir, name);
    KVT_CHECK_FATAL(unlink(path) == 0 || errno == ENOENT, "unlink %s: %s", path, strerror(errno));
    int r;
    if (strcmp(what, "fifo") == 0) {
        r = mkfifo(path, 0644);
    } else if (strcmp(what, "dir") == 0) {
        r = mkdir(path, 0755);
    } else {
        char *fifo = kvt_path(kvt_dir_new("hostile-target"), "fifo");
        KVT_CHECK_FATAL(mkfifo(fifo, 0644) == 0, "mkfifo %s: %s", fifo, strerror(errno));
        r = symlink(fifo, path);
    }
    KVT_CHECK_FATAL(r == 0, "making %s a %s: %s", path, what, strerror(errno));
}

static int is_kind(const char *path, mode_t kind)
{
    struct stat st;
    return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == kind;
}

/* ---------------------------------------------------------------------------------
 * 2. Non-regular files named like store files
 * ------------------------------------------------------------------------------ */

/* Store files that kv_open cannot do without. */
static const char *const needed[] = {"000002.seg", "000006.seg", "000006.wal", "MANIFEST"};
static const char *const kinds[] = {"fifo", "dir", "link"};

/* kv_open, read-only and writer, returns KV_ECORRUPT at once, naming the file, and
 * leaves the entry as it was. */
static void test_open_refuses_nonregular(void)
{
    for (size_t i = 0; i < sizeof needed / sizeof *needed; i++)
        for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
            char *dir = make_store("hostile-open");
            replace_with(dir, needed[i], kinds[k]);
            for (int ro = 1; ro >= 0; ro--) {
                child_open r = open_in_child(dir, ro);
                KVT_CHECK(!r.hung, "%s open with %s a %s hung", ro ? "read-only" : "writer",
                          needed[i], kinds[k]);
                if (r.hung)
                    continue;
                KVT_CHECK(r.rc == KV_ECORRUPT && strstr(r.msg, needed[i]) != NULL
                              && strstr(r.msg, "not a regular file") != NULL,
                          "%s open with %s a %s: status %d (%s), message \"%s\"; want "
                          "KV_ECORRUPT naming it, not a regular file", ro ? "read-only" : "writer",
                          needed[i], kinds[k], r.rc, kv_strerror(r.rc), r.msg);
            }
            KVT_CHECK(is_kind(kvt_path(dir, needed[i]), strcmp(kinds[k], "fifo") == 0 ? S_IFIFO
                                                        : strcmp(kinds[k], "dir") == 0 ? S_IFDIR
                                                                                       : S_IFLNK),
                      "%s (a %s) was changed by the opens", needed[i], kinds[k]);
        }
}

/* A hint that is not a regular file is a bad hint: it only costs a scan. Both opens
 * succeed at once, every key reads back, and the writer does not replace it. */
static void test_open_nonregular_hint_scans(void)
{
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        char *dir = make_store("hostile-hint");
        replace_with(dir, "000001.hint", kinds[k]);
        int hung = 0;
        for (int ro = 1; ro >= 0; ro--) {
            child_open r = open_in_child(dir, ro);
            hung |= r.hung;
            KVT_CHECK(!r.hung, "%s open with 000001.hint a %s hung",
                      ro ? "read-only" : "writer", kinds[k]);
            KVT_CHECK(r.hung || r.rc == KV_OK, "%s open with 000001.hint a %s: %s: %s",
                      ro ? "read-only" : "writer", kinds[k], kv_strerror(r.rc), r.msg);
        }
        KVT_CHECK(!is_kind(kvt_path(dir, "000001.hint"), S_IFREG),
                  "the writer replaced the %s 000001.hint", kinds[k]);
        if (strcmp(kinds[k], "fifo") != 0 || hung)
            continue; /* (an open in this process would hang the suite) */
        kv_db *db;
        kv_options o;
        kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 4096);
        o.read_only = 1;
        KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
        for (int i = 0; i < 100; i++) {
            char key[32];
            void *v;
            size_t vl;
            snprintf(key, sizeof key, "key%03d", i);
            KVT_RC(kv_get(db, key, strlen(key), &v, &vl), KV_OK);
            kv_free(v);
        }
        kvt_close(db);
    }
}

/* The tools end (no timeout) and name the FIFO: kvdump, kvdump --all, kv get and
 * kvcheck, for each store file. */
static void test_tools_nonregular(void)
{
    static const char *const files[] = {"000001.hint", "000002.seg", "000006.seg",
                                        "000006.wal",  "MANIFEST",   "LOCK"};
    static const char *const cmds[][2] = {
        {"kvdump", ""}, {"kvdump --all", ""}, {"kv -d", "get key001"}, {"kvcheck", ""}};
    char out[8192];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        for (size_t c = 0; c < sizeof cmds / sizeof *cmds; c++) {
            char *dir = make_store("hostile-tools");
            char bn[1024];
            replace_with(dir, files[i], "fifo");
            snprintf(bn, sizeof bn, "%s %s %s", cmds[c][0], dir, cmds[c][1]);
            int st = run(out, sizeof out, "%s/%s >/dev/null", bin(), bn);
            KVT_CHECK(st != 124, "`%s` with %s a FIFO hung (killed after %d s)", bn, files[i],
                      HOSTILE_DEADLINE_S);
            /* The hint and LOCK do not stop a read: those runs may succeed. */
            int needed_file = strcmp(files[i], "000001.hint") != 0 && strcmp(files[i], "LOCK") != 0;
            /* kvdump --all lists what is there whatever the state of the store (exit
             * 0), with a note saying why the store does not open. */
            int listing = strncmp(bn, "kvdump --all", 12) == 0;
            if (st != 124 && needed_file && strncmp(bn, "kvcheck", 7) != 0)
                KVT_CHECK((st != 0 || listing) && strstr(out, files[i]) != NULL,
                          "`%s` with %s a FIFO: exit %d, output \"%s\": want a failure naming it",
                          bn, files[i], st, out);
            KVT_CHECK(is_kind(kvt_path(dir, files[i]), S_IFIFO), "`%s` removed the FIFO %s", bn,
                      files[i]);
        }
}

/* ---------------------------------------------------------------------------------
 * 3. LOCK
 * ------------------------------------------------------------------------------ */

/* LOCK a symbolic link to a file outside the store: the writer's open (the API and
 * kv put) is refused naming LOCK, and the target keeps every byte. A dangling link
 * is refused too, and its target is not created. */
static void test_lock_symlink(void)
{
    static const char precious[] = "precious bytes, not a pid\n";
    char *dir = make_store("hostile-lock");
    char *victim = kvt_path(kvt_dir_new("hostile-victim"), "victim");
    char *lock = kvt_path(dir, "LOCK");
    char out[4096];
    kvt_spill(victim, precious, sizeof precious - 1);
    KVT_CHECK_FATAL(unlink(lock) == 0 && symlink(victim, lock) == 0, "symlink %s: %s", lock,
                    strerror(errno));
    child_open r = open_in_child(dir, 0);
    KVT_CHECK(!r.hung && r.rc == KV_ECORRUPT && strstr(r.msg, "LOCK") != NULL
                  && strstr(r.msg, "symbolic link") != NULL,
              "writer open with LOCK a symlink: hung %d, status %d (%s), \"%s\"; want "
              "KV_ECORRUPT naming LOCK, a symbolic link", r.hung, r.rc, kv_strerror(r.rc), r.msg);
    int st = run(out, sizeof out, "%s/kv -d %s put k v", bin(), dir);
    KVT_CHECK(st != 0 && st != 124 && strstr(out, "LOCK") != NULL,
              "kv put with LOCK a symlink: exit %d, \"%s\"", st, out);
    size_t len;
    uint8_t *now = kvt_slurp(victim, &len);
    KVT_CHECK(len == sizeof precious - 1 && memcmp(now, precious, len) == 0,
              "the target of the LOCK symlink changed: now %zu bytes \"%.*s\"", len, (int)len,
              (const char *)now);
    free(now);
    KVT_CHECK(is_kind(lock, S_IFLNK), "LOCK is no longer the symbolic link");

    /* Read-only opens do not use LOCK: they work beside such a link. */
    r = open_in_child(dir, 1);
    KVT_CHECK(!r.hung && r.rc == KV_OK, "read-only open with LOCK a symlink: %s: %s",
              kv_strerror(r.rc), r.msg);

    /* Dangling: O_CREAT must not create the target. */
    char *ghost = kvt_path(kvt_dir_new("hostile-ghost"), "ghost");
    KVT_CHECK_FATAL(unlink(lock) == 0 && symlink(ghost, lock) == 0, "symlink: %s", strerror(errno));
    r = open_in_child(dir, 0);
    KVT_CHECK(!r.hung && r.rc == KV_ECORRUPT && strstr(r.msg, "LOCK") != NULL,
              "writer open with LOCK a dangling symlink: status %d (%s), \"%s\"", r.rc,
              kv_strerror(r.rc), r.msg);
    KVT_CHECK(access(ghost, F_OK) != 0, "the writer's open created the LOCK link's target %s",
              ghost);
}

/* LOCK a FIFO or a directory: refused at once, naming LOCK, left in place. */
static void test_lock_nonregular(void)
{
    static const char *const what[] = {"fifo", "dir"};
    for (size_t k = 0; k < 2; k++) {
        char *dir = make_store("hostile-lockfifo");
        replace_with(dir, "LOCK", what[k]);
        child_open r = open_in_child(dir, 0);
        KVT_CHECK(!r.hung && r.rc == KV_ECORRUPT && strstr(r.msg, "LOCK") != NULL
                      && strstr(r.msg, "not a regular file") != NULL,
                  "writer open with LOCK a %s: hung %d, status %d (%s), \"%s\"", what[k], r.hung,
                  r.rc, kv_strerror(r.rc), r.msg);
        KVT_CHECK(is_kind(kvt_path(dir, "LOCK"), k == 0 ? S_IFIFO : S_IFDIR),
                  "LOCK (a %s) was changed", what[k]);
    }
}

/* ---------------------------------------------------------------------------------
 * 4. Names kv never writes
 * ------------------------------------------------------------------------------ */

/* Files that look like kv's to a loose parser: kv writes %06u, so 7+ digits start
 * with a non-zero digit, and the number is never 0 nor above UINT32_MAX. */
static const char *const foreign[] = {
    "0000099.wal", "0000009.seg",  "0000001.seg", "0000002.hint", "00000003.hint.tmp",
    "0000000.seg", "000000.wal",   "4294967296.seg", "0001000000.seg", "+00099.wal",
};

static void plant_foreign(const char *dir)
{
    for (size_t i = 0; i < sizeof foreign / sizeof *foreign; i++)
        kvt_spill(kvt_path(dir, foreign[i]), foreign[i], strlen(foreign[i]));
}

static void check_foreign(const char *dir, const char *after)
{
    for (size_t i = 0; i < sizeof foreign / sizeof *foreign; i++) {
        const char *path = kvt_path(dir, foreign[i]);
        struct stat st;
        KVT_CHECK(stat(path, &st) == 0 && (size_t)st.st_size == strlen(foreign[i]),
                  "%s: %s, which kv never writes, was removed or changed", after, foreign[i]);
    }
}

/* A writer's open removes leftovers: only its own. */
static void test_foreign_names_survive_open(void)
{
    char *dir = make_store("hostile-names");
    kv_db *db;
    plant_foreign(dir);
    KVT_RC_FATAL(kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_AUTO, 4096, &db), KV_OK);
    KVT_RC(kv_put(db, "k", 1, "v", 1), KV_OK);
    KVT_RC(kv_compact(db), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);
    check_foreign(dir, "after a writer's open and kv_compact");
}

/* A leftover with kv's name that is not a regular file is not kv's either: it
 * stays, and the writer takes file numbers past it rather than fail to create a
 * file of that name at its next roll (the store has files up to 000006). */
static void test_nonregular_leftover_survives(void)
{
    char *dir = make_store("hostile-leftover");
    char key[32], val[200];
    kv_db *db;
    KVT_CHECK_FATAL(mkfifo(kvt_path(dir, "000099.wal"), 0644) == 0
                        && mkdir(kvt_path(dir, "000098.seg"), 0755) == 0
                        && mkfifo(kvt_path(dir, "000007.seg"), 0644) == 0,
                    "mkfifo/mkdir: %s", strerror(errno));
    KVT_RC_FATAL(kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_AUTO, 4096, &db), KV_OK);
    memset(val, 'w', sizeof val);
    for (int i = 0; i < 100; i++) { /* several rolls */
        snprintf(key, sizeof key, "new%03d", i);
        KVT_RC_FATAL(kv_put(db, key, strlen(key), val, sizeof val), KV_OK);
    }
    KVT_RC(kvt_close(db), KV_OK);
    KVT_RC_FATAL(kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_AUTO, 4096, &db), KV_OK);
    KVT_ASSERT_VALUE(db, "new099", 6, val, sizeof val);
    KVT_RC(kvt_close(db), KV_OK);
    KVT_CHECK(is_kind(kvt_path(dir, "000007.seg"), S_IFIFO),
              "the FIFO 000007.seg was removed or replaced");
    KVT_CHECK(is_kind(kvt_path(dir, "000099.wal"), S_IFIFO),
              "the writer's open removed the FIFO 000099.wal");
    KVT_CHECK(is_kind(kvt_path(dir, "000098.seg"), S_IFDIR),
              "the writer's open removed the directory 000098.seg");
}

/* A store is created only in an empty directory: foreign names are not debris of
 * an interrupted creation to clean up. */
static void test_foreign_names_block_create(void)
{
    static const char *const debris[] = {"0000001.seg", "0000001.wal", "00000001.hint.tmp"};
    for (size_t i = 0; i < sizeof debris / sizeof *debris; i++) {
        char *dir = kvt_dir_new("hostile-create");
        kv_db *db;
        kvt_spill(kvt_path(dir, debris[i]), "", 0);
        int rc = kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_AUTO, 0, &db);
        KVT_CHECK(rc == KV_EINVAL && strstr(kv_errmsg(), debris[i]) != NULL,
                  "kv_open create in a directory holding %s: %s (%s); want KV_EINVAL naming it",
                  debris[i], kv_strerror(rc), kv_errmsg());
        if (rc == KV_OK)
            kvt_close(db);
        KVT_CHECK(access(kvt_path(dir, debris[i]), F_OK) == 0, "kv_open removed %s", debris[i]);
    }
}

/* kvcheck calls them foreign, not leftovers, and --repair leaves them. */
static void test_foreign_names_kvcheck(void)
{
    char *dir = make_store("hostile-check");
    char out[16384];
    plant_foreign(dir);
    int st = run(out, sizeof out, "%s/kvcheck %s", bin(), dir);
    KVT_CHECK(st == 0, "kvcheck of a clean store with foreign files: exit %d\n%s", st, out);
    KVT_CHECK(strstr(out, "removes it") == NULL && strstr(out, "leftover") == NULL,
              "kvcheck calls a foreign file a leftover:\n%s", out);
    st = run(out, sizeof out, "%s/kvcheck --repair --yes %s", bin(), dir);
    KVT_CHECK(st == 0, "kvcheck --repair --yes: exit %d\n%s", st, out);
    check_foreign(dir, "after kvcheck --repair --yes");
}

/* ---------------------------------------------------------------------------------
 * 5. kvcompact exit codes (docs/man/kvcompact.1, EXIT STATUS)
 * ------------------------------------------------------------------------------ */

/* Flips one byte in the middle of a record of sealed segment 000002. */
static void flip_sealed(const char *dir)
{
    const char *path = kvt_path(dir, "000002.seg");
    size_t len;
    uint8_t *b = kvt_slurp(path, &len);
    KVT_CHECK_FATAL(len > 1000, "%s: %zu bytes", path, len);
    b[len / 2] ^= 0x40;
    kvt_spill(path, b, len);
    free(b);
}

static void test_kvcompact_exit_codes(void)
{
    char out[8192];
    /* Damage found by the open (the segment has no hint: the open scans it). */
    char *dir = make_store("hostile-compact");
    KVT_CHECK_FATAL(unlink(kvt_path(dir, "000002.hint")) == 0, "unlink hint");
    flip_sealed(dir);
    size_t blen, alen;
    uint8_t *before = kvt_slurp(kvt_path(dir, "000002.seg"), &blen);
    int st = run(out, sizeof out, "%s/kvcompact %s", bin(), dir);
    KVT_CHECK(st == 1 && strstr(out, "000002.seg") != NULL,
              "kvcompact on a store whose open finds damage: exit %d (want 1, damage), \"%s\"",
              st, out);
    uint8_t *after = kvt_slurp(kvt_path(dir, "000002.seg"), &alen);
    KVT_CHECK(alen == blen && memcmp(before, after, blen) == 0,
              "kvcompact changed the damaged segment");
    free(before);
    free(after);
    st = run(out, sizeof out, "%s/kvcompact --dry-run %s", bin(), dir);
    KVT_CHECK(st == 1, "kvcompact --dry-run on a damaged store: exit %d (want 1), \"%s\"", st, out);

    /* Damage found by compaction itself (the open trusts the hint). */
    dir = make_store("hostile-compact2");
    kv_db *db;
    kv_options o;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 4096);
    o.auto_compact = 0;
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    for (int i = 0; i < 100; i++) { /* everything dead: every segment is compacted */
        char key[32];
        snprintf(key, sizeof key, "key%03d", i);
        KVT_RC(kv_delete(db, key, strlen(key)), KV_OK);
    }
    KVT_RC(kvt_close(db), KV_OK);
    flip_sealed(dir);
    st = run(out, sizeof out, "%s/kvcompact %s", bin(), dir);
    KVT_CHECK(st == 1, "kvcompact meeting a damaged segment: exit %d (want 1), \"%s\"", st, out);

    /* Not a store: 2; held by a writer: it compacts on request, 0; held by a process
     * that takes no request: 3 once --timeout passed, the request withdrawn. */
    st = run(out, sizeof out, "%s/kvcompact %s", bin(), kvt_dir_new("hostile-empty"));
    KVT_CHECK(st == 2, "kvcompact on an empty directory: exit %d (want 2), \"%s\"", st, out);
    dir = make_store("hostile-compact3");
    KVT_RC_FATAL(kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_AUTO, 4096, &db), KV_OK);
    st = run(out, sizeof out, "%s/kvcompact %s", bin(), dir);
    KVT_CHECK(st == 0 && strstr(out, "the writer (pid") != NULL,
              "kvcompact on a store held by a writer: exit %d (want 0), \"%s\"", st, out);
    kvt_close(db);
    int fd = open(kvt_path(dir, "LOCK"), O_RDWR | O_CLOEXEC);
    KVT_CHECK_FATAL(fd >= 0 && flock(fd, LOCK_EX) == 0, "flock LOCK: %s", strerror(errno));
    st = run(out, sizeof out, "%s/kvcompact --timeout 0.3 %s", bin(), dir);
    KVT_CHECK(st == 3 && strstr(out, "did not take the compaction request") != NULL,
              "kvcompact on a store whose holder takes no request: exit %d (want 3), \"%s\"",
              st, out);
    KVT_CHECK(access(kvt_path(dir, "COMPACT.req"), F_OK) != 0, "the request was not withdrawn");
    close(fd);
}

/* ---------------------------------------------------------------------------------
 * 6. kv_errmsg after KV_NOTFOUND
 * ------------------------------------------------------------------------------ */

static int stop_at_first(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
    (void)arg, (void)k, (void)kl, (void)v, (void)vl;
    return 7;
}

/* Leaves a message that is not about KV_NOTFOUND. */
static void provoke_einval(kv_db *db, char *prev, size_t n)
{
    KVT_RC(kv_put(db, "", 0, "v", 1), KV_EINVAL);
    snprintf(prev, n, "%s", kv_errmsg());
}

static void test_errmsg_after_notfound(void)
{
    char *dir = kvt_dir_new("hostile-errmsg");
    char prev[512];
    void *v;
    size_t vl;
    kv_db *db;
    KVT_RC_FATAL(kvt_open_mode(dir, KV_SYNC_NONE, KV_IO_AUTO, 0, &db), KV_OK);
    KVT_RC(kvt_put_str(db, "here", "1"), KV_OK);

    provoke_einval(db, prev, sizeof prev);
    KVT_RC(kv_get(db, "absent", 6, &v, &vl), KV_NOTFOUND);
    KVT_CHECK(strcmp(kv_errmsg(), prev) != 0 && strstr(kv_errmsg(), "kv_get") != NULL
                  && strstr(kv_errmsg(), "not found") != NULL,
              "kv_errmsg after kv_get's KV_NOTFOUND is \"%s\" (the previous was \"%s\")",
              kv_errmsg(), prev);

    provoke_einval(db, prev, sizeof prev);
    KVT_RC(kv_delete(db, "absent", 6), KV_NOTFOUND);
    KVT_CHECK(strcmp(kv_errmsg(), prev) != 0 && strstr(kv_errmsg(), "kv_delete") != NULL,
              "kv_errmsg after kv_delete's KV_NOTFOUND is \"%s\" (the previous was \"%s\")",
              kv_errmsg(), prev);

    /* A deleted key is absent too. */
    KVT_RC(kv_delete(db, "here", 4), KV_OK);
    provoke_einval(db, prev, sizeof prev);
    KVT_RC(kv_get(db, "here", 4, &v, &vl), KV_NOTFOUND);
    KVT_CHECK(strstr(kv_errmsg(), "kv_get") != NULL, "kv_errmsg after kv_get of a deleted key "
              "is \"%s\"", kv_errmsg());

    /* kv_foreach stopped by its callback returns the callback's value. */
    KVT_RC(kvt_put_str(db, "again", "1"), KV_OK);
    provoke_einval(db, prev, sizeof prev);
    int rc = kv_foreach(db, stop_at_first, NULL);
    KVT_CHECK(rc == 7 && strcmp(kv_errmsg(), prev) != 0 && strstr(kv_errmsg(), "kv_foreach") != NULL,
              "kv_foreach stopped with %d: kv_errmsg \"%s\" (the previous was \"%s\")", rc,
              kv_errmsg(), prev);
    kvt_close(db);

    /* And on a read-only handle. */
    kv_options o;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 0);
    o.read_only = 1;
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    KVT_RC(kv_put(db, "x", 1, "y", 1), KV_EREADONLY);
    snprintf(prev, sizeof prev, "%s", kv_errmsg());
    KVT_RC(kv_get(db, "absent", 6, &v, &vl), KV_NOTFOUND);
    KVT_CHECK(strcmp(kv_errmsg(), prev) != 0 && strstr(kv_errmsg(), "kv_get") != NULL,
              "read-only kv_get KV_NOTFOUND: kv_errmsg \"%s\" (the previous was \"%s\")",
              kv_errmsg(), prev);
    kvt_close(db);
}

static const kvt_test hostile_tests[] = {
    {"non-regular store files: kv_open refuses at once", test_open_refuses_nonregular},
    {"non-regular hint: a scan, left in place", test_open_nonregular_hint_scans},
    {"non-regular store files: the tools end", test_tools_nonregular},
    {"LOCK a symlink: refused, target unchanged", test_lock_symlink},
    {"LOCK a FIFO or directory: refused", test_lock_nonregular},
    {"names kv never writes survive an open", test_foreign_names_survive_open},
    {"non-regular leftovers survive an open", test_nonregular_leftover_survives},
    {"names kv never writes block creation", test_foreign_names_block_create},
    {"names kv never writes: kvcheck and --repair", test_foreign_names_kvcheck},
    {"kvcompact exit codes", test_kvcompact_exit_codes},
    {"kv_errmsg after KV_NOTFOUND", test_errmsg_after_notfound},
    {NULL, NULL},
};

void kvt_register_hostile(void)
{
    kvt_add_suite("hostile", hostile_tests);
}
