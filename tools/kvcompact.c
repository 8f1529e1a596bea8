/*
 * kvcompact.c — compacts a kv store that no other process has open.
 *
 *   kvcompact [--dry-run] [--ratio R] [--quiet] DIR
 *
 * It takes the writer lock (so a store held by a writer is refused with exit 3 and
 * the holder's pid), runs kv_compact — the same code the background thread runs —
 * and prints a summary: bytes before and after, records and tombstones dropped,
 * passes, time. On a terminal a progress line is redrawn while it works.
 * --dry-run opens the store read-only and prints what compaction would reclaim.
 *
 * Exit status (docs/man/kvcompact.1): 0 done (or nothing to do), 1 the store is
 * damaged or compaction failed (the store is left as it was: a damaged segment, an
 * I/O error), 2 usage error, DIR is not a kv store or of a newer format version,
 * 3 the store is locked by another process. exit_of maps every status.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kv.h"
#include "progress.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_LOCKED = 3 };

static const char usage_text[] =
    "usage: kvcompact [OPTIONS] DIR\n"
    "Compacts the kv store in DIR: rewrites the live records of segments that are\n"
    "mostly dead and deletes the old segments. No other process may have it open.\n"
    "options:\n"
    "  -n, --dry-run    print what would be reclaimed; change nothing\n"
    "  -r, --ratio R    compact segments at least R dead (0 < R <= 1; default 0.5)\n"
    "  -q, --quiet      no progress line, no summary\n"
    "  -h, --help       print this help and exit\n"
    "  -V, --version    print the version and exit\n"
    "exit status: 0 done, 1 the store is damaged or compaction failed (store\n"
    "             unchanged), 2 usage error, not a kv store or a newer format,\n"
    "             3 the store is held by another process\n";

/* Bytes of the regular files in dir (what the store occupies). */
static unsigned long long dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    unsigned long long sum = 0;
    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            sum += (unsigned long long)st.st_size;
    }
    closedir(d);
    return sum;
}

static double mib(unsigned long long b) { return (double)b / (1024.0 * 1024.0); }

/* The exit status of a library status, as the man page's EXIT STATUS lists them:
 * what the command line named is no store kv can use (KV_EINVAL: missing, not a
 * directory, no kv store; KV_EVERSION: a newer format) is 2, like a usage error;
 * another writer is 3; damage (KV_ECORRUPT) and every failure of the work itself
 * (KV_EIO, KV_ENOSPC, KV_ENOMEM, ...) are 1. */
static int exit_of(int rc)
{
    switch (rc) {
    case KV_OK: return EXIT_OK;
    case KV_EINVAL:
    case KV_EVERSION: return EXIT_USAGE;
    case KV_ELOCKED: return EXIT_LOCKED;
    default: return EXIT_FAILED;
    }
}

/* Reports an open failure with the library's message; returns its exit status. */
static int open_failed(const char *dir, int rc)
{
    fprintf(stderr, "kvcompact: %s: %s: %s\n", dir, kv_strerror(rc), kv_errmsg());
    return exit_of(rc);
}

/* ---- progress --------------------------------------------------------------------- */

typedef struct watcher {
    kv_db *db;
    _Atomic int done;
} watcher;

/* The thread that draws the progress line while kv_compact works. */
static void *progress_main(void *arg)
{
    watcher *w = arg;
    progress line;
    progress_init(&line, "kvcompact", 1);
    while (!atomic_load(&w->done)) {
        kv_stats st;
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (kv_stat(w->db, &st) != KV_OK || !st.compacting || st.compact_pass_total == 0)
            continue;
        progress_draw(&line, "pass %llu: %.1f of %.1f MiB read (%3.0f%%)",
                      (unsigned long long)st.compactions + 1, mib(st.compact_pass_read),
                      mib(st.compact_pass_total),
                      100.0 * (double)st.compact_pass_read / (double)st.compact_pass_total);
    }
    progress_clear(&line);
    return NULL;
}

/* ---- the two modes ---------------------------------------------------------------- */

static int dry_run(const char *dir, const kv_options *base)
{
    kv_options o = *base;
    kv_db *db;
    kv_stats st;
    o.read_only = 1;
    o.create = 0;
    int rc = kv_open(dir, &o, &db);
    if (rc != KV_OK)
        return open_failed(dir, rc);
    kv_stat(db, &st);
    kv_close(db);
    printf("kvcompact: %s: would reclaim %llu bytes (%.1f MiB) of %llu; %llu live, %llu dead "
           "in %llu segments (dry run: nothing changed)\n", dir,
           (unsigned long long)st.reclaimable_bytes, mib(st.reclaimable_bytes),
           (unsigned long long)st.disk_bytes, (unsigned long long)st.live_bytes,
           (unsigned long long)st.dead_bytes, (unsigned long long)st.segments);
    return EXIT_OK;
}

static int compact(const char *dir, const kv_options *base, int quiet)
{
    kv_options o = *base;
    kv_db *db;
    kv_stats st;
    o.create = 0;
    o.auto_compact = 0;
    unsigned long long before = dir_bytes(dir);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = kv_open(dir, &o, &db);
    if (rc != KV_OK)
        return open_failed(dir, rc);
    watcher pr = {db, 0};
    pthread_t th;
    int show = !quiet && isatty(STDERR_FILENO)
               && pthread_create(&th, NULL, progress_main, &pr) == 0;
    rc = kv_compact(db);
    atomic_store(&pr.done, 1);
    if (show)
        pthread_join(th, NULL);
    if (rc != KV_OK)
        fprintf(stderr, "kvcompact: %s: %s: %s\n", dir, kv_strerror(rc), kv_errmsg());
    kv_stat(db, &st);
    int crc = kv_close(db);
    if (crc != KV_OK && rc == KV_OK) {
        fprintf(stderr, "kvcompact: %s: closing: %s: %s\n", dir, kv_strerror(crc), kv_errmsg());
        rc = crc;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    unsigned long long after = dir_bytes(dir);
    if (!quiet)
        printf("kvcompact: %s: %llu -> %llu bytes (%.1f -> %.1f MiB, %.1f%% reclaimed), "
               "%llu passes, %llu records dropped (%llu tombstones), %.2f s\n",
               dir, before, after, mib(before), mib(after),
               before ? 100.0 * (double)(before - (after < before ? after : before)) / (double)before
                      : 0.0,
               (unsigned long long)st.compactions, (unsigned long long)st.compact_records_dropped,
               (unsigned long long)st.compact_tombstones_dropped,
               (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return rc == KV_OK ? EXIT_OK : EXIT_FAILED;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dry-run", no_argument, NULL, 'n'}, {"ratio", required_argument, NULL, 'r'},
        {"quiet", no_argument, NULL, 'q'},   {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0}};
    kv_options o;
    int dry = 0, quiet = 0, c;
    kv_options_init(&o);
    while ((c = getopt_long(argc, argv, "nr:qhV", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'n':
            dry = 1;
            break;
        case 'r':
            errno = 0;
            o.compact_dead_ratio = strtod(optarg, &end);
            if (errno != 0 || *end != '\0' || !(o.compact_dead_ratio > 0.0)
                || o.compact_dead_ratio > 1.0) {
                fprintf(stderr, "kvcompact: --ratio %s: not a number in (0, 1]\n%s", optarg,
                        usage_text);
                return EXIT_USAGE;
            }
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return EXIT_OK;
        case 'V':
            printf("kvcompact (kv) %s\n", kv_version());
            return EXIT_OK;
        default:
            fputs(usage_text, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "kvcompact: %s\n%s", optind >= argc ? "DIR is missing" : "one DIR only",
                usage_text);
        return EXIT_USAGE;
    }
    return dry ? dry_run(argv[optind], &o) : compact(argv[optind], &o, quiet);
}
