/*
 * sigstorm.c — the signal storm of sigstorm.h: a thread that lists the process's
 * threads (/proc/self/task, again every few ticks, since tests start and end threads)
 * and sends each one SIGPROF with tgkill once a tick.
 */
#include "sigstorm.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define STORM_SIG SIGPROF
#define STORM_MAX_TIDS 256
#define STORM_RELIST 8 /* ticks between two listings of the threads */

static _Atomic uint64_t g_hits;   /* signals handled */
static _Atomic int g_stop;        /* asks the storm thread to end */
static pthread_t g_thread;
static int g_running;
static unsigned g_hz;
static struct sigaction g_old;    /* the handler before the storm */

static void on_signal(int sig)
{
    int saved = errno;
    (void)sig;
    atomic_fetch_add_explicit(&g_hits, 1, memory_order_relaxed);
    errno = saved;
}

static size_t list_threads(pid_t *tids, size_t cap, pid_t self)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    size_t n = 0;
    if (d == NULL)
        return 0;
    while (n < cap && (de = readdir(d)) != NULL) {
        pid_t t = (pid_t)atoi(de->d_name);
        if (t > 0 && t != self)
            tids[n++] = t;
    }
    closedir(d);
    return n;
}

static void *storm_main(void *arg)
{
    pid_t tids[STORM_MAX_TIDS], pid = getpid(), self = (pid_t)syscall(SYS_gettid);
    size_t n = 0;
    long step_ns = 1000000000L / (long)g_hz;
    struct timespec next;
    sigset_t set;
    (void)arg;
    sigemptyset(&set);
    sigaddset(&set, STORM_SIG);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (unsigned tick = 0; !atomic_load(&g_stop); tick++) {
        if (tick % STORM_RELIST == 0)
            n = list_threads(tids, STORM_MAX_TIDS, self);
        for (size_t i = 0; i < n; i++)
            syscall(SYS_tgkill, pid, tids[i], STORM_SIG); /* ESRCH: the thread ended */
        next.tv_nsec += step_ns;
        while (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
        }
    }
    return NULL;
}

int kvt_storm_start(unsigned hz, int restart)
{
    struct sigaction sa;
    if (g_running || hz == 0 || hz > 1000000)
        return -EINVAL;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigemptyset(&sa.sa_mask);
    if (sigaction(STORM_SIG, &sa, &g_old) != 0)
        return -errno;
    g_hz = hz;
    atomic_store(&g_stop, 0);
    atomic_store(&g_hits, 0);
    int e = pthread_create(&g_thread, NULL, storm_main, NULL);
    if (e != 0) {
        sigaction(STORM_SIG, &g_old, NULL);
        return -e;
    }
    g_running = 1;
    return 0;
}

uint64_t kvt_storm_stop(void)
{
    if (!g_running)
        return 0;
    atomic_store(&g_stop, 1);
    pthread_join(g_thread, NULL);
    g_running = 0;
    /* Signals already sent are delivered before the old handler comes back: wait
     * them out with the storm's handler still in place. */
    struct timespec ts = {0, 20000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    sigaction(STORM_SIG, &g_old, NULL);
    return atomic_load(&g_hits);
}

uint64_t kvt_storm_hits(void) { return atomic_load(&g_hits); }

int kvt_storm_from_env(unsigned *hz, int *restart)
{
    const char *s = getenv("KV_TEST_SIGSTORM");
    if (s == NULL || s[0] == '\0' || strcmp(s, "0") == 0)
        return 0;
    *hz = (unsigned)strtoul(s, NULL, 10);
    *restart = strstr(s, "norestart") == NULL;
    return *hz > 0;
}
