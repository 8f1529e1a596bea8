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

int lock_acquire(int dirfd, const char *dir, int *out_fd)
{
    char pid[32];
    int fd = openat(dirfd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return kv_err_errno(errno, "%s/LOCK: open", dir);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        long holder = lock_holder(fd);
        close(fd);
        if (e == EWOULDBLOCK)
            return kv_err(KV_ELOCKED, "%s/LOCK: store is locked by another writer (pid %ld)",
                          dir, holder);
        return kv_err_errno(e, "%s/LOCK: flock", dir);
    }
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        int e = errno;
        close(fd);
        return kv_err_errno(e, "%s/LOCK: writing our pid", dir);
    }
    *out_fd = fd;
    return KV_OK;
}

void lock_release(int fd)
{
    if (fd >= 0)
        close(fd); /* closing the description releases the flock */
}
