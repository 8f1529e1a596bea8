/*
 * kv_int.h — internal declarations shared by the library's modules: error recording
 * and small utilities. Not installed; programs use kv.h only.
 */
#ifndef KV_INT_H
#define KV_INT_H

#include "kv.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define KV_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define KV_PRINTF(a, b)
#endif

/* Records a message for kv_errmsg() and returns status. */
int err_set(int status, const char *fmt, ...) KV_PRINTF(2, 3);
/* Records msg as it is (no formatting: cheap enough for a hot path, such as the
 * KV_NOTFOUND of a get that misses) and returns status. */
int err_const(int status, const char *msg);
/* Records "message: strerror(err)" and returns the status errno maps to
 * (KV_ENOSPC for ENOSPC/EDQUOT, KV_ENOMEM for ENOMEM, else KV_EIO). */
int err_errno(int err, const char *fmt, ...) KV_PRINTF(2, 3);
int status_from_errno(int err);
void err_clear(void);


/* Initialises a reader-writer lock that prefers writers. glibc's default prefers
 * readers: under a steady stream of kv_get calls a put (or a roll, or compaction)
 * waiting for the lock never got it (one put a second with 32 getters). With writer
 * preference a new reader waits behind a waiting writer, so no reader may take the
 * same lock twice (nested read locks deadlock once a writer queues between them):
 * the library never does. */
static inline void rwlock_init_writers_first(pthread_rwlock_t *l)
{
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(l, &a);
    pthread_rwlockattr_destroy(&a);
}

/* Monotonic clock in microseconds. */
uint64_t clock_now_us(void);

#ifdef KV_DEBUG
#include <assert.h>
#define KV_ASSERT(x) assert(x)
#else
#define KV_ASSERT(x) ((void)0)
#endif

#endif
