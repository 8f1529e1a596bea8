/*
 * test_debug.c — suite "debug": the checks kv makes of itself and of where it runs.
 *
 *  - Network file systems are refused at kv_open (kv.h, "Caveats"): no NFS mount
 *    here, so the map from statfs f_type to a file-system name (io/fstype.h) is
 *    tested with the magic numbers, and stores open on the file systems kv accepts:
 *    the local one ($TMPDIR) and tmpfs (/dev/shm).
 *  - The writer's pair checks (entry_check_encoded, entry_check_sealed) accept what
 *    the encoder makes and reject a damaged or miscounted buffer.
 *  - Assertions run (make debug, make test-asan: KV_DEBUG): a child that breaks a
 *    precondition through an internal function dies of SIGABRT and says which
 *    assertion failed. A release build compiles them out, so there these tests are
 *    not registered.
 */
#include "kvtest.h"

#include "format/entry.h"
#include "io/fstype.h"
#include "store/index.h"
#include "wal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- network file systems ---------------------------------------------------------- */

static void test_fs_network_names(void)
{
    static const struct {
        uint64_t magic;
        const char *name; /* NULL: accepted */
    } cases[] = {
        {0x6969, "NFS"},
        {0x517B, "SMB"},
        {0xFF534D42, "CIFS"},
        {0xFE534D42, "SMB2"},
        {0x5346414F, "AFS"},
        {0x6B414653, "AFS (kAFS)"},
        {0x73757245, "Coda"},
        {0x564C, "NCP (NetWare)"},
        {0x00C36400, "CephFS"},
        {0xEF53, NULL},       /* ext2/3/4 */
        {0x58465342, NULL},   /* XFS */
        {0x9123683E, NULL},   /* btrfs */
        {0x01021994, NULL},   /* tmpfs */
        {0x794C7630, NULL},   /* overlayfs */
        {0x65735546, NULL},   /* FUSE (sshfs or a local one: cannot tell) */
        {0x01021997, NULL},   /* 9P: WSL 2, QEMU virtfs, gVisor share a local disk */
        {0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = fs_network_name(cases[i].magic);
        if (cases[i].name == NULL)
            KVT_CHECK(got == NULL, "f_type 0x%llx: refused as %s, expected accepted",
                      (unsigned long long)cases[i].magic, got);
        else
            KVT_CHECK(got != NULL && strcmp(got, cases[i].name) == 0,
                      "f_type 0x%llx: %s, expected %s", (unsigned long long)cases[i].magic,
                      got != NULL ? got : "accepted", cases[i].name);
    }
}

/* Opens a store in dir, writes, reopens and reads back. */
static void open_on(const char *dir, const char *what)
{
    kv_db *db;
    kv_options o;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    KVT_CHECK_FATAL(fd >= 0, "%s: open %s: %s", what, dir, strerror(errno));
    KVT_RC(fs_check_local(fd, dir), KV_OK);
    close(fd);
    kvt_options(&o, KV_SYNC_ALWAYS, KV_IO_AUTO, 1 << 20);
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    KVT_RC(kvt_put_str(db, "where", what), KV_OK);
    KVT_RC(kvt_close(db), KV_OK);
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    KVT_ASSERT_VALUE(db, "where", 5, what, strlen(what));
    KVT_RC(kvt_close(db), KV_OK);
}

static void test_fs_local_and_tmpfs_open(void)
{
    open_on(kvt_dir_new("fslocal"), "local");
    char shm[] = "/dev/shm/kvtest-fstmpfs-XXXXXX";
    if (mkdtemp(shm) == NULL) {
        kvt_note("no writable /dev/shm (%s): tmpfs not tried", strerror(errno));
        return;
    }
    open_on(shm, "tmpfs");
    KVT_CHECK(kvt_rmtree(shm) == 0, "removing %s: %s", shm, strerror(errno));
}

/* ---- the writer's own checks ------------------------------------------------------- */

static void test_entry_self_checks(void)
{
    uint8_t buf[256];
    size_t a = entry_encode(buf, KV_REC_PUT, KV_RECF_BATCH, "k1", 2, "value", 5);
    size_t b = entry_encode(buf + a, KV_REC_DEL, 0, "k2", 2, NULL, 0);
    size_t len = a + b;
    KVT_CHECK(entry_check_encoded(buf, len, 2), "a batch of two as encoded");
    KVT_CHECK(!entry_check_encoded(buf, len, 1), "two entries counted as one");
    KVT_CHECK(!entry_check_encoded(buf, len, 3), "two entries counted as three");
    KVT_CHECK(!entry_check_encoded(buf, len - 1, 2), "a buffer one byte short");
    KVT_CHECK(!entry_check_encoded(buf, a, 1), "a lone entry flagged 'more follows'");
    entry_seal(buf, a, 7);
    entry_seal(buf + a, b, 8);
    KVT_CHECK(entry_check_sealed(buf, len, 2, 7), "sealed with 7 and 8");
    KVT_CHECK(!entry_check_sealed(buf, len, 2, 6), "sequence numbers off by one");
    buf[a + KV_ENTRY_HDR] ^= 1; /* the second key */
    KVT_CHECK(!entry_check_sealed(buf, len, 2, 7), "a flipped key bit passes the CRC");
}

/* ---- assertions that run ----------------------------------------------------------- */

#ifdef KV_DEBUG
/* Runs fn in a child with stderr to a pipe; checks that it died of SIGABRT and that
 * what it printed names the assertion `expect`. */
static void expect_abort(void (*fn)(void), const char *expect)
{
    int p[2];
    char out[1024];
    size_t n = 0;
    KVT_CHECK_FATAL(pipe(p) == 0, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    KVT_CHECK_FATAL(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 2);
        signal(SIGABRT, SIG_DFL);
        fn();
        _exit(0); /* the assertion did not fire */
    }
    close(p[1]);
    for (ssize_t r; n < sizeof out - 1 && (r = read(p[0], out + n, sizeof out - 1 - n)) != 0;) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        n += (size_t)r;
    }
    out[n] = '\0';
    close(p[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    KVT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
              "expected death by SIGABRT, got %s %d; stderr: %s",
              WIFSIGNALED(st) ? "signal" : "exit status",
              WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), out);
    KVT_CHECK(strstr(out, "assertion failed") != NULL && strstr(out, expect) != NULL,
              "stderr does not name the assertion %s: %s", expect, out);
}

/* idx_del_locked without the shard's write lock. */
static void del_unlocked(void)
{
    kv_index *ix;
    idx_change ch;
    if (idx_new(&ix) != 0)
        _exit(3);
    idx_del_locked(ix, "k", 1, idx_hash("k", 1), &ch);
}

/* wal_switch from a thread that leads no group. */
static void switch_not_leader(void)
{
    static wal_writer w;
    wal_switch(&w, -1, 2);
}

/* An entry queued with a length that disagrees with its header. */
static void encode_miscounted(void)
{
    uint8_t buf[64];
    wal_writer w;
    wal_req r;
    size_t len = entry_encode(buf, KV_REC_PUT, 0, "k", 1, "v", 1);
    wal_req_init(&r, buf, len + 1, 1, 0);
    wal_commit(&w, &r);
}

static void test_assert_lock_held(void) { expect_abort(del_unlocked, "rwlock_held"); }
static void test_assert_leader_only(void) { expect_abort(switch_not_leader, "wal_is_leader"); }
static void test_assert_encoded(void) { expect_abort(encode_miscounted, "entry_check_encoded"); }
#endif

void kvt_register_debug(void)
{
    static const kvt_test tests[] = {
        {"network file systems: statfs types named and refused", test_fs_network_names},
        {"stores open on the local file system and on tmpfs", test_fs_local_and_tmpfs_open},
        {"entry self-checks accept the encoder's output, reject damage", test_entry_self_checks},
#ifdef KV_DEBUG
        {"assertion: idx_del_locked without the shard lock aborts", test_assert_lock_held},
        {"assertion: wal_switch outside the leader aborts", test_assert_leader_only},
        {"assertion: a miscounted entry is caught before it is queued", test_assert_encoded},
#endif
        {NULL, NULL},
    };
    kvt_add_suite("debug", tests);
}
