/*
 * lock.h — the writer lock: an flock(2) on DIR/LOCK, which holds the owner's pid
 * (lock.c). Part of the I/O layer: it uses the base layer and io_open_regular only.
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

#endif
