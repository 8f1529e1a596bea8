/*
 * io.c — the default I/O layer: POSIX calls, and io_uring for the WAL's group writes.
 *
 * Sections: POSIX operations (shared by both backends), the psync write_group
 * (pwritev + fdatasync), the io_uring write_group (one submission: writev linked to
 * fsync), and construction, which falls back to psync when the kernel refuses a
 * ring (old kernel, kernel.io_uring_disabled, a seccomp profile) and says why, and
 * the test hook that lets the crash-simulation suite supply its own layer.
 */
#include "io/io.h"

#include "base/kv_int.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- POSIX operations -------------------------------------------------------------- */

/* Signals are normal in a host program (timers, SIGCHLD, profilers): a call that a
 * signal interrupted before it did anything is made again, never reported. pread and
 * pwrite on a regular file are not interrupted once they have moved a byte (they then
 * return the short count, which the callers' loops finish). close is the exception:
 * on Linux the descriptor is gone even when close reports EINTR, so it is not retried. */
#define KV_RESTART(call) ({                                                               \
    __typeof__(call) r_;                                                                 \
    do                                                                                   \
        r_ = (call);                                                                     \
    while (r_ < 0 && errno == EINTR);                                                    \
    r_;                                                                                  \
})

static int px_open(kv_io *io, int dirfd, const char *name, int flags, int mode)
{
    int fd = KV_RESTART(openat(dirfd, name, flags | O_CLOEXEC, mode));
    return fd < 0 ? -errno : fd;
}

static int px_close(kv_io *io, int fd)
{
    return close(fd) < 0 && errno != EINTR ? -errno : 0;
}

static ssize_t px_pread(kv_io *io, int fd, void *buf, size_t n, uint64_t off)
{
    ssize_t r = KV_RESTART(pread(fd, buf, n, (off_t)off));
    return r < 0 ? -errno : r;
}

static ssize_t px_pwrite(kv_io *io, int fd, const void *buf, size_t n, uint64_t off)
{
    ssize_t r = KV_RESTART(pwrite(fd, buf, n, (off_t)off));
    return r < 0 ? -errno : r;
}

/* EINTR from fdatasync means it was interrupted before it finished, not that
 * writeback failed: a real write-back error is still reported by the next call on
 * this descriptor, so calling again is not the retry invariant 6 forbids. */
static int px_fdatasync(kv_io *io, int fd)
{
    return KV_RESTART(fdatasync(fd)) < 0 ? -errno : 0;
}

static int px_ftruncate(kv_io *io, int fd, uint64_t size)
{
    return KV_RESTART(ftruncate(fd, (off_t)size)) < 0 ? -errno : 0;
}

static int px_fsize(kv_io *io, int fd, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    *size = (uint64_t)st.st_size;
    return 0;
}

static int px_rename(kv_io *io, int dirfd, const char *from, const char *to)
{
    return KV_RESTART(renameat(dirfd, from, dirfd, to)) < 0 ? -errno : 0;
}

static int px_unlink(kv_io *io, int dirfd, const char *name)
{
    return KV_RESTART(unlinkat(dirfd, name, 0)) < 0 ? -errno : 0;
}

static int px_syncdir(kv_io *io, int dirfd) { return KV_RESTART(fsync(dirfd)) < 0 ? -errno : 0; }

static int px_map(kv_io *io, int fd, size_t len, const void **out)
{
    void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    *out = p;
    return 0;
}

static void px_unmap(kv_io *io, const void *p, size_t len) { munmap((void *)(uintptr_t)p, len); }

/* ---- opening any store file -------------------------------------------------------- */

static const char *type_name(mode_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFIFO: return "a FIFO";
    case S_IFDIR: return "a directory";
    case S_IFSOCK: return "a socket";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFLNK: return "a symbolic link (kv does not follow it)";
    default: return "of an unknown type";
    }
}

static int not_regular(const char *label, mode_t mode)
{
    return err_set(KV_ECORRUPT, "%s: not a regular file but %s; kv reads and writes only "
                  "regular files", label, type_name(mode));
}

/* Closes fd (through io when there is one), keeping errno's meaning for the caller. */
static void close_any(kv_io *io, int fd)
{
    if (io != NULL)
        io->ops->close(io, fd);
    else
        close(fd);
}

/* The open itself, restarted after signals; -errno on failure. */
static int open_retry(kv_io *io, int dirfd, const char *name, int flags, int mode)
{
    int fd;
    do {
        if (io != NULL) {
            fd = io->ops->open(io, dirfd, name, flags, mode);
        } else {
            fd = openat(dirfd, name, flags | O_CLOEXEC, mode);
            fd = fd < 0 ? -errno : fd;
        }
    } while (fd == -EINTR);
    return fd;
}

int io_open_regular(kv_io *io, int dirfd, const char *name, int flags, int mode,
                      const char *label, int *fd_out)
{
    struct stat st;
    int nofollow = (flags & O_NOFOLLOW) != 0;
    *fd_out = -1;
    if (fstatat(dirfd, name, &st, nofollow ? AT_SYMLINK_NOFOLLOW : 0) == 0 && !S_ISREG(st.st_mode))
        return not_regular(label, st.st_mode);
    int fd = open_retry(io, dirfd, name, flags | O_NONBLOCK | O_NOCTTY, mode);
    if (fd == -ENOENT)
        return err_set(KV_NOTFOUND, "%s: no such file", label);
    if (fd == -ELOOP && nofollow)
        return not_regular(label, S_IFLNK);
    if (fd == -EISDIR) /* it changed since fstatat */
        return not_regular(label, S_IFDIR);
    if (fd < 0)
        return err_errno(-fd, "%s: open", label);
    int fl = -1, e = 0;
    if (fstat(fd, &st) < 0)
        e = errno;
    else if (S_ISREG(st.st_mode) && ((fl = fcntl(fd, F_GETFL)) < 0
                                     || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0))
        e = errno;
    if (e != 0 || !S_ISREG(st.st_mode)) {
        close_any(io, fd);
        return e != 0 ? err_errno(e, "%s: fstat/fcntl", label) : not_regular(label, st.st_mode);
    }
    *fd_out = fd;
    return KV_OK;
}

/* ---- psync write_group ------------------------------------------------------------- */

/* Writes the rest of an iovec array after `done` bytes went out, one pwrite each. */
static int write_rest(kv_io *io, int fd, const struct iovec *iov, int iovcnt, uint64_t off,
                      size_t done)
{
    for (int i = 0; i < iovcnt; i++) {
        size_t len = iov[i].iov_len;
        if (done >= len) {
            done -= len;
            off += len;
            continue;
        }
        int r = io_pwrite_full(io, fd, (const char *)iov[i].iov_base + done, len - done,
                               off + done);
        if (r < 0)
            return r;
        off += len;
        done = 0;
    }
    return 0;
}

static int px_write_group(kv_io *io, int fd, const struct iovec *iov, int iovcnt,
                          uint64_t off, int sync)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    ssize_t w = KV_RESTART(pwritev(fd, iov, iovcnt, (off_t)off));
    if (w < 0)
        return -errno;
    if ((size_t)w < total) {
        int r = write_rest(io, fd, iov, iovcnt, off, (size_t)w);
        if (r < 0)
            return r;
    }
    return sync ? io->ops->fdatasync(io, fd) : 0;
}

/* ---- io_uring write_group ---------------------------------------------------------- */

/* Submits the queued entries and waits until `want` completions are there, whatever
 * signals arrive. io_uring_submit_and_wait reports -EINTR when a signal interrupts
 * its wait, and the entries may then be in flight already: what is still queued is
 * read off the ring (io_uring_sq_ready), submitted again if anything is, and the
 * wait made again. Returning early would let the kernel read iovecs and buffers
 * from stack frames that are gone, and report as failed a write that lands. */
static int ur_submit_wait(struct io_uring *ring, unsigned want)
{
    for (;;) {
        int r = io_uring_submit_and_wait(ring, want);
        if (r >= 0 || (r != -EINTR && r != -EAGAIN))
            return r < 0 ? r : 0;
        if (io_uring_sq_ready(ring) == 0)
            return 0; /* submitted; only the wait was cut short */
    }
}

/* A completion that says the request was interrupted or cancelled, not that it
 * failed: it is done again synchronously. */
static int ur_interrupted(int res)
{
    return res == -EINTR || res == -EAGAIN || res == -ECANCELED;
}

/* Takes one completion, waiting again after a signal. */
static int ur_wait_one(struct io_uring *ring, struct io_uring_cqe **cqe)
{
    int r;
    do
        r = io_uring_wait_cqe(ring, cqe);
    while (r == -EINTR || r == -EAGAIN);
    return r;
}

/* With sync: one submission, writev and a linked fdatasync that runs only after the
 * write completed in full. A short write cancels the link; the remainder then goes
 * out by pwrite and the sync by fdatasync, so the result is the same.
 * Without sync the group goes out by pwritev: on ext4 (kernel 6.x) a buffered
 * io_uring write cannot complete inline and is punted to an io-wq worker, which
 * measured 43k vs 343k single-thread puts/s here (kvbench fillrandom), and the
 * promise of an unsynced write (in the kernel on return) is the same either way. */
static int ur_write_group(kv_io *io, int fd, const struct iovec *iov, int iovcnt,
                          uint64_t off, int sync)
{
    if (!sync)
        return px_write_group(io, fd, iov, iovcnt, off, 0);
    struct io_uring *ring = io->ctx;
    struct io_uring_sqe *sqe;
    struct io_uring_cqe *cqe;
    size_t total = 0;
    int wres = 0, sres = 0;

    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    sqe = io_uring_get_sqe(ring);
    if (sqe == NULL)
        return -EBUSY;
    io_uring_prep_writev(sqe, fd, iov, (unsigned)iovcnt, off);
    sqe->user_data = 1;
    sqe->flags |= IOSQE_IO_LINK;
    sqe = io_uring_get_sqe(ring);
    io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
    sqe->user_data = 2;
    int r = ur_submit_wait(ring, 2);
    if (r < 0)
        return r;
    for (int got = 0; got < 2; got++) {
        r = ur_wait_one(ring, &cqe);
        if (r < 0)
            return r;
        if (cqe->user_data == 1)
            wres = cqe->res;
        else
            sres = cqe->res;
        io_uring_cqe_seen(ring, cqe);
    }
    /* A signal can cut a request short without any I/O failing: the write or the
     * sync then completes with -EINTR, -EAGAIN or -ECANCELED (a link broken by the
     * other), seen under a 10 kHz signal storm. That is not an error: what is left
     * is done here by pwrite and fdatasync, which restart after a signal. */
    if (ur_interrupted(wres))
        wres = 0;
    if (wres < 0)
        return wres;
    if ((size_t)wres < total) {
        r = write_rest(io, fd, iov, iovcnt, off, (size_t)wres);
        return r < 0 ? r : io->ops->fdatasync(io, fd);
    }
    if (ur_interrupted(sres))
        return io->ops->fdatasync(io, fd);
    return sres < 0 ? sres : 0;
}

/* ---- construction ------------------------------------------------------------------ */

static const kv_io_ops psync_ops = {
    px_open, px_close, px_pread, px_pwrite, px_fdatasync, px_ftruncate, px_fsize,
    px_rename, px_unlink, px_syncdir, px_write_group, px_map, px_unmap,
};

static const kv_io_ops uring_ops = {
    px_open, px_close, px_pread, px_pwrite, px_fdatasync, px_ftruncate, px_fsize,
    px_rename, px_unlink, px_syncdir, ur_write_group, px_map, px_unmap,
};

int io_new(int want, kv_io **out)
{
    kv_io *io = calloc(1, sizeof *io);
    *out = NULL;
    if (io == NULL)
        return err_set(KV_ENOMEM, "allocating the I/O layer");
    io->ops = &psync_ops;
    io->backend = KV_IO_PSYNC;
    if (want == KV_IO_PSYNC) {
        snprintf(io->note, sizeof io->note, "psync requested");
    } else {
        struct io_uring *ring = calloc(1, sizeof *ring);
        int r = ring ? io_uring_queue_init(8, ring, 0) : -ENOMEM;
        if (r == 0) {
            io->ctx = ring;
            io->ops = &uring_ops;
            io->backend = KV_IO_URING;
        } else {
            free(ring);
            snprintf(io->note, sizeof io->note, "io_uring unavailable: %s", strerror(-r));
            if (want == KV_IO_URING) {
                free(io);
                return err_set(KV_EIO, "io_uring requested but unavailable: io_uring_queue_init: %s",
                              strerror(-r));
            }
        }
    }
    *out = io;
    return KV_OK;
}

static kv_io_factory factory_fn; /* test hook (io.h), NULL in normal use */
static void *factory_arg;

void io_set_factory(kv_io_factory fn, void *arg)
{
    factory_fn = fn;
    factory_arg = arg;
}

int io_for(const char *dir, int want, kv_io **out)
{
    return factory_fn != NULL ? factory_fn(factory_arg, dir, want, out) : io_new(want, out);
}

void io_free(kv_io *io)
{
    if (io == NULL)
        return;
    if (io->destroy != NULL) {
        io->destroy(io);
        return;
    }
    if (io->ctx != NULL) {
        io_uring_queue_exit(io->ctx);
        free(io->ctx);
    }
    free(io);
}

ssize_t io_pread_full(kv_io *io, int fd, void *buf, size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = io->ops->pread(io, fd, (char *)buf + done, n - done, off + done);
        if (r == -EINTR)
            continue;
        if (r < 0)
            return r;
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

int io_pwrite_full(kv_io *io, int fd, const void *buf, size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = io->ops->pwrite(io, fd, (const char *)buf + done, n - done, off + done);
        if (r == -EINTR)
            continue;
        if (r < 0)
            return (int)r;
        if (r == 0)
            return -EIO;
        done += (size_t)r;
    }
    return 0;
}
