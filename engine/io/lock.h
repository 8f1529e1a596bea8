/*
 * lock.h — the locks on DIR/LOCK (lock.c): the writer lock, an flock(2) that one
 * process holds (LOCK holds its pid), and the reader lock, a shared OFD lock
 * (fcntl F_OFD_SETLK) on one byte of LOCK far past the pid, which every read-only
 * handle holds and which kvcheck --repair takes exclusively while it repairs. The two
 * kinds of lock do not interact: a writer never waits for readers, nor they for it.
 * Both belong to an open file description, so two opens in one process conflict as
 * two processes do, and the kernel drops them when the holder dies.
 * docs/MULTIPROCESS.md, "Locks". Part of the I/O layer: it uses the base layer and
 * io_open_regular only.
 */
#ifndef KV_LOCK_H
#define KV_LOCK_H

/* Lock file (lock.c). lock_acquire creates LOCK if needed, takes the lock and writes
 * our pid (kv_open). lock_take takes the lock on an existing LOCK and changes
 * nothing on disk (KV_NOTFOUND without one), so a tool can find that there is
 * nothing to do and leave the store byte for byte as it was; lock_write_pid records
 * the holder once it is about to change the store. KV_ELOCKED names the holder. */
int lock_acquire(int dirfd, const char *dir, int *out_fd);
int lock_take(int dirfd, const char *dir, int *out_fd);
int lock_write_pid(int fd, const char *dir);
void lock_release(int fd);

/* The byte of LOCK the reader lock covers: far past the pid, so it never overlaps
 * what a writer writes there (the byte need not exist). */
#define LOCK_READER_BYTE ((long long)1 << 30)

/* A read-only handle's reader lock (kv_open): opens LOCK read-only (O_NOFOLLOW,
 * close-on-exec, never created) and takes a shared lock on LOCK_READER_BYTE, held
 * until lock_release(*out_fd). A LOCK that is missing or cannot be opened, or a file
 * system without OFD locks, is no error: *out_fd is -1 and nothing is held (the
 * reader modifies nothing and creates nothing). Returns KV_OK, or KV_ELOCKED when
 * kvcheck --repair holds the byte (the message names LOCK and the pid LOCK holds). */
int lock_reader_hold(int dirfd, const char *dir, int *out_fd);

/* kvcheck --repair: takes LOCK_READER_BYTE exclusively on the writer-lock
 * descriptor fd (lock_take or lock_acquire; it is released with it), so no
 * read-only handle is open while the repair changes files it may have mapped, and
 * none opens until the repair ends. Returns KV_OK; KV_ELOCKED when a read-only
 * handle holds it ("a read-only process has the store open; close it first");
 * KV_EIO. */
int lock_readers_absent(int fd, const char *dir);

#endif
