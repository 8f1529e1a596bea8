/*
 * lock.c — the writer lock: an flock(2) on DIR/LOCK, which holds the owner's pid.
 *
 * flock locks belong to an open file description, so a second kv_open in the same
 * process conflicts just like one in another process, and the kernel drops the lock
 * when its holder dies: a LOCK file left by a crashed process never blocks.
 */
#include "db.h"

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
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
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
            return kv_err(KV_ELOCKED, "%s/LOCK: store is locked by another writer (pid %ld)",
                          dir, holder);
        return kv_err_errno(e, "%s/LOCK: flock", dir);
    }
    return KV_OK;
}

int lock_write_pid(int fd, const char *dir)
{
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        return kv_err_errno(errno, "%s/LOCK: writing our pid", dir);
    return KV_OK;
}

int lock_acquire(int dirfd, const char *dir, int *out_fd)
{
    int fd = openat(dirfd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return kv_err_errno(errno, "%s/LOCK: open", dir);
    int rc = lock_fd_take(fd, dir);
    if (rc == KV_OK && (rc = lock_write_pid(fd, dir)) != KV_OK)
        close(fd);
    if (rc == KV_OK)
        *out_fd = fd;
    return rc;
}

int lock_take(int dirfd, const char *dir, int *out_fd)
{
    int fd = openat(dirfd, "LOCK", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? kv_err(KV_NOTFOUND, "%s/LOCK: no such file", dir)
                               : kv_err_errno(errno, "%s/LOCK: open", dir);
    int rc = lock_fd_take(fd, dir);
    if (rc == KV_OK)
        *out_fd = fd;
    return rc;
}

void lock_release(int fd)
{
    if (fd >= 0)
        close(fd); /* closing the description releases the flock */
}
