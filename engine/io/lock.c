/*
 * lock.c — the locks on DIR/LOCK: the writer lock, an flock(2) on the file, which
 * holds the owner's pid; the reader lock, a shared OFD lock on one byte of it.
 *
 * flock locks belong to an open file description, so a second kv_open in the same
 * process conflicts just like one in another process, and the kernel drops the lock
 * when its holder dies: a LOCK file left by a crashed process never blocks. OFD
 * locks (fcntl F_OFD_SETLK) belong to the open file description too, unlike the
 * classic POSIX locks, which a process holds as a whole and loses when it closes any
 * descriptor of the file: a second handle in one process, or a tool that opens and
 * closes LOCK, would otherwise drop a reader's lock. On Linux flock and fcntl locks
 * are independent, so the writer's flock and the readers' byte never conflict.
 *
 * LOCK is opened with O_NOFOLLOW and must be a regular file (io_open_regular): a
 * symbolic link named LOCK is refused rather than followed, since taking the lock
 * truncates the file and writes a pid into it, which would overwrite whatever the
 * link names; a FIFO, directory or device named LOCK is refused without waiting.
 */
#include "io/lock.h"

#include "io/io.h"
#include "base/kv_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static long lock_holder(int fd)
{
    char buf[32] = {0};
    ssize_t n;
    do
        n = pread(fd, buf, sizeof buf - 1, 0);
    while (n < 0 && errno == EINTR);
    return n > 0 ? strtol(buf, NULL, 10) : 0;
}

/* flock(LOCK_EX | LOCK_NB) on an open LOCK: KV_OK, or KV_ELOCKED naming the holder's
 * pid, or KV_EIO; fd is closed on failure. */
static int lock_fd_take(int fd, const char *dir)
{
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        long holder = lock_holder(fd);
        close(fd);
        if (e == EWOULDBLOCK)
            return err_set(KV_ELOCKED, "%s/LOCK: store is locked by another writer (pid %ld)",
                          dir, holder);
        return err_errno(e, "%s/LOCK: flock", dir);
    }
    return KV_OK;
}

int lock_write_pid(int fd, const char *dir)
{
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    ssize_t w = -1;
    int r;
    do /* a signal is no failure: both calls are made again after EINTR */
        r = ftruncate(fd, 0);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        do
            w = pwrite(fd, pid, (size_t)n, 0);
        while (w < 0 && errno == EINTR);
    if (w != n)
        return err_errno(w < 0 || r < 0 ? errno : EIO, "%s/LOCK: writing our pid", dir);
    return KV_OK;
}

/* Opens DIR/LOCK (io_open_regular, never through a symbolic link). */
static int lock_open(int dirfd, const char *dir, int flags, int *fd)
{
    char label[512];
    snprintf(label, sizeof label, "%s/LOCK", dir);
    return io_open_regular(NULL, dirfd, "LOCK", flags | O_NOFOLLOW, 0644, label, fd);
}

int lock_acquire(int dirfd, const char *dir, int *out_fd)
{
    int fd;
    int rc = lock_open(dirfd, dir, O_RDWR | O_CREAT, &fd);
    if (rc == KV_OK)
        rc = lock_fd_take(fd, dir);
    if (rc == KV_OK && (rc = lock_write_pid(fd, dir)) != KV_OK)
        close(fd);
    if (rc == KV_OK)
        *out_fd = fd;
    return rc;
}

int lock_take(int dirfd, const char *dir, int *out_fd)
{
    int fd;
    int rc = lock_open(dirfd, dir, O_RDWR, &fd);
    if (rc == KV_OK)
        rc = lock_fd_take(fd, dir);
    if (rc == KV_OK)
        *out_fd = fd;
    return rc;
}

void lock_release(int fd)
{
    if (fd >= 0)
        close(fd); /* closing the description releases the flock and the OFD lock */
}

/* fcntl(F_OFD_SETLK) of type on LOCK_READER_BYTE; 0 or errno. F_OFD_SETLK does not
 * wait, but a signal is no failure all the same: it is made again after EINTR. */
static int reader_byte(int fd, short type)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = LOCK_READER_BYTE,
                       .l_len = 1, .l_pid = 0};
    int r;
    do
        r = fcntl(fd, F_OFD_SETLK, &fl);
    while (r < 0 && errno == EINTR);
    return r < 0 ? errno : 0;
}

int lock_reader_hold(int dirfd, const char *dir, int *out_fd)
{
    int fd, e;
    *out_fd = -1;
    if (lock_open(dirfd, dir, O_RDONLY, &fd) != KV_OK) {
        err_clear(); /* missing or not openable: a reader holds nothing, and that is all */
        return KV_OK;
    }
    if ((e = reader_byte(fd, F_RDLCK)) == 0) {
        *out_fd = fd;
        return KV_OK;
    }
    long holder = lock_holder(fd);
    close(fd);
    if (e == EAGAIN || e == EACCES)
        return err_set(KV_ELOCKED, "%s/LOCK: offset %lld: kvcheck --repair is repairing the "
                       "store (LOCK holds pid %ld); open it once the repair has ended", dir,
                       LOCK_READER_BYTE, holder);
    return KV_OK; /* no OFD locks here (EINVAL, ENOLCK): the reader goes without */
}

int lock_readers_absent(int fd, const char *dir)
{
    int e = reader_byte(fd, F_WRLCK);
    if (e == EAGAIN || e == EACCES)
        return err_set(KV_ELOCKED, "%s/LOCK: offset %lld: a read-only process has the store "
                       "open; close it first", dir, LOCK_READER_BYTE);
    if (e != 0)
        return err_errno(e, "%s/LOCK: offset %lld: locking out read-only handles", dir,
                         LOCK_READER_BYTE);
    return KV_OK;
}
