/*
 * io.h — the I/O layer: every file operation of the library goes through a kv_io.
 *
 * Like LevelDB's Env and SQLite's VFS, this table exists so that tests can put a
 * fault-injecting implementation in its place (drop unsynced writes, tear a write,
 * fail the n-th call). The contract of every operation:
 *   - paths are names relative to a directory descriptor (dirfd);
 *   - a negative return is -errno; nothing is retried after an error, but EINTR is
 *     not an error: the default layer restarts a call a signal interrupted (and waits
 *     again for an io_uring completion it already submitted), so it never returns
 *     -EINTR, and the io_* helpers below restart it should another layer return it;
 *   - pread/pwrite may transfer fewer bytes than asked (the io_* helpers below loop);
 *   - write_group writes iov at off and, when sync is set, then fdatasyncs the file,
 *     as one io_uring submission (write linked to fsync) when the ring is in use;
 *     it returns 0 only when every byte was written (and synced).
 * A kv_io belongs to one store handle. write_group is called by one thread at a time
 * (the group-commit leader); every other operation may run from any thread.
 */
#ifndef KV_IO_H
#define KV_IO_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct kv_io kv_io;

typedef struct kv_io_ops {
    int (*open)(kv_io *io, int dirfd, const char *name, int flags, int mode);
    int (*close)(kv_io *io, int fd);
    ssize_t (*pread)(kv_io *io, int fd, void *buf, size_t n, uint64_t off);
    ssize_t (*pwrite)(kv_io *io, int fd, const void *buf, size_t n, uint64_t off);
    int (*fdatasync)(kv_io *io, int fd);
    int (*ftruncate)(kv_io *io, int fd, uint64_t size);
    int (*fsize)(kv_io *io, int fd, uint64_t *size);
    int (*rename)(kv_io *io, int dirfd, const char *from, const char *to);
    int (*unlink)(kv_io *io, int dirfd, const char *name);
    int (*syncdir)(kv_io *io, int dirfd);
    int (*write_group)(kv_io *io, int fd, const struct iovec *iov, int iovcnt, uint64_t off,
                       int sync);
    /* A read-only shared mapping of len bytes from offset 0 (may reach past the end of
     * the file; only bytes below the end may be touched). -errno when unsupported:
     * readers then pread. */
    int (*map)(kv_io *io, int fd, size_t len, const void **out);
    void (*unmap)(kv_io *io, const void *p, size_t len);
} kv_io_ops;

struct kv_io {
    const kv_io_ops *ops; /* the implementation */
    void *ctx;            /* implementation state (the ring for io_uring) */
    int backend;          /* KV_IO_URING or KV_IO_PSYNC */
    char note[96];        /* why io_uring is not in use, when it is not */
    void (*destroy)(kv_io *io); /* frees a layer made by a factory (NULL: the default) */
};

/* Creates the default I/O layer for a store. want is KV_IO_AUTO, KV_IO_URING or
 * KV_IO_PSYNC. Returns KV_OK, KV_EIO (KV_IO_URING asked but unavailable, with the
 * reason in kv_errmsg) or KV_ENOMEM. */
int io_new(int want, kv_io **out);
/* Frees io: the default layer, or one a factory made (through its destroy). */
void io_free(kv_io *io);

/* Internal test hook, not part of kv.h: while a factory is set, kv_open asks it for
 * the I/O layer of every store it opens (dir as given to kv_open, want the options'
 * io choice). It returns KV_OK with *out, or a status; it may hand dirs it does not
 * care about to io_new. The crash-simulation suite puts its fault-injecting layer
 * in place this way. Set it only while no kv_open runs; NULL restores the default. */
typedef int (*kv_io_factory)(void *arg, const char *dir, int want, kv_io **out);
void io_set_factory(kv_io_factory fn, void *arg);
/* The I/O layer for a store in dir: the factory's when one is set, else io_new. */
int io_for(const char *dir, int want, kv_io **out);

/* Opens name (relative to dirfd) for any store file — segment, WAL, hint, MANIFEST,
 * LOCK, their temporaries — so that opening cannot block and only a regular file is
 * taken. A FIFO, socket, device or directory under a store file's name is never
 * kv's: it is refused before it is opened (opening a device can act on it) and
 * again, race-free, by fstat of what was opened, which is opened O_NONBLOCK (a FIFO
 * would wait for a writer for ever) and O_NOCTTY; O_NONBLOCK is then cleared (an
 * io_uring write on such a descriptor returns EAGAIN instead of waiting). A symbolic
 * link is followed to what it names, unless flags hold O_NOFOLLOW: then the link
 * itself is refused (LOCK, the temporary files kv writes). io NULL opens with
 * openat (the writer lock is not part of the I/O layer); else through io, whose
 * open must return a real descriptor (fstat and fcntl are used on it). label names
 * the file in messages. Returns KV_OK with *fd; KV_NOTFOUND when name does not
 * exist (message "label: no such file"); KV_ECORRUPT when it is not a regular file
 * (message "label: not a regular file but a FIFO ..."); or the errno's status. */
int io_open_regular(kv_io *io, int dirfd, const char *name, int flags, int mode,
                    const char *label, int *fd);

/* Loop over short transfers. io_pread_full returns the bytes read (fewer than n only
 * at end of file) or -errno; io_pwrite_full returns 0 or -errno. */
ssize_t io_pread_full(kv_io *io, int fd, void *buf, size_t n, uint64_t off);
int io_pwrite_full(kv_io *io, int fd, const void *buf, size_t n, uint64_t off);

#endif
