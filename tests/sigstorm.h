/*
 * sigstorm.h — a signal storm for the test suite: DESIGN.md says signals are normal
 * (timers, SIGCHLD, profilers, language runtimes), so the library must give the same
 * results while they arrive.
 *
 * A storm thread sends SIGPROF, at a given rate, to every thread of the process (the
 * library's own included: the group-commit leader, the interval syncer, compaction),
 * as a profiler's setitimer(ITIMER_PROF) or a runtime's preemption timer would, but
 * in real time, so a thread blocked in fdatasync or an io_uring wait is hit too. The
 * handler only counts. With restart 0 it is installed without SA_RESTART, so every
 * interruptible call it hits fails with EINTR instead of restarting.
 *
 * Used by the "signals" suite (test_api.c) directly, and by test_main.c for a whole
 * run when KV_TEST_SIGSTORM=<hz>[,norestart] is set (make test runs the property and
 * concurrency suites so). One storm at a time, started and stopped by one thread.
 */
#ifndef KV_SIGSTORM_H
#define KV_SIGSTORM_H

#include <stdint.h>

/* Starts a storm of hz signals a second to each thread. 0, or -errno. */
int kvt_storm_start(unsigned hz, int restart);
/* Stops it (waits for the thread), restores the old handler, and returns the number
 * of signals handled. */
uint64_t kvt_storm_stop(void);
/* Signals handled so far by the running storm. */
uint64_t kvt_storm_hits(void);
/* KV_TEST_SIGSTORM=<hz>[,norestart]: parses it into *hz and *restart; 0 when unset. */
int kvt_storm_from_env(unsigned *hz, int *restart);

#endif
