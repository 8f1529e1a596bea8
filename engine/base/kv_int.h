/*
 * kv_int.h — internal declarations shared by the library's modules: error recording,
 * assertions and small utilities. Not installed; programs use kv.h only.
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

/* Read-locks l on the read path (kv_get's index shard and file table), spinning a
 * moment before it sleeps. A writer holds these locks for microseconds; a reader
 * that slept on the futex instead is woken with the scheduler's credit for sleepers
 * and preempts the writer it waited for, which on a busy machine starved writes (a
 * roll's fdatasyncs each wait for the CPU again). Spinning keeps readers running
 * like any busy thread. */
static inline void rwlock_rdlock_spin(pthread_rwlock_t *l)
{
    for (int i = 0; i < 2000; i++) {
        if (pthread_rwlock_tryrdlock(l) == 0)
            return;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    pthread_rwlock_rdlock(l);
}

/* Monotonic clock in microseconds. */
uint64_t clock_now_us(void);

/* Assertions (STYLE.md, "pair assertions"): the code checking its own work, never
 * an operating error (bad input, I/O failure, a corrupt file: those stay statuses).
 * With KV_DEBUG (make debug, make test-asan) a false assertion prints where and what
 * on stderr and aborts, whatever NDEBUG says; without it KV_ASSERT compiles to
 * nothing and its expression is not evaluated, so it must have no side effect.
 * KV_DEBUG_ONLY(...) keeps statements (the bookkeeping an assertion needs, such as
 * who leads the WAL group) in debug builds only. */
#ifdef KV_DEBUG
#include <stdio.h>
#include <stdlib.h>
__attribute__((noreturn, cold)) static inline void
assert_failed(const char *expr, const char *file, int line, const char *func)
{
    fprintf(stderr, "kv: %s:%d: %s: assertion failed: %s\n", file, line, func, expr);
    fflush(stderr);
    abort();
}
#define KV_ASSERT(x) ((x) ? (void)0 : assert_failed(#x, __FILE__, __LINE__, __func__))
#define KV_DEBUG_ONLY(...) __VA_ARGS__
#else
#define KV_ASSERT(x) ((void)0)
#define KV_DEBUG_ONLY(...)
#endif

/* Lock-holder preconditions, for KV_ASSERT only: 1 when the lock is held by some
 * thread. They cannot tell which thread holds it, so they never fail when the
 * caller does hold it and catch the caller that forgot to take it unless another
 * thread happens to hold it at that moment. A free lock is taken and released at
 * once: debug builds only. */
static inline int mutex_held(pthread_mutex_t *m)
{
    if (pthread_mutex_trylock(m) != 0)
        return 1;
    pthread_mutex_unlock(m);
    return 0;
}

static inline int rwlock_held(pthread_rwlock_t *l)
{
    if (pthread_rwlock_trywrlock(l) != 0)
        return 1;
    pthread_rwlock_unlock(l);
    return 0;
}

#endif
