/*
 * kvcheck.c — checks a kv store (or one of its files) and, when asked, repairs it.
 *
 *   kvcheck [--quiet] [--json] [--verbose] DIR|FILE
 *   kvcheck --repair [--yes] DIR
 *
 * The work is the library's (engine/fsck/check.h: check_path, check_repair); this file
 * talks to people. A check reads every byte the store holds and changes nothing:
 * one line per problem on stderr ("kvcheck: FILE: offset 0x...: what"), then a
 * summary on stdout a script can parse (files= records= bytes= damaged= lost_bytes=,
 * and ok_up_to= for one record file), or one JSON object with --json. It runs beside
 * a live writer (docs/MULTIPROCESS.md, "Tools on a live store"). The files of a step
 * a stopped writer was taking are no damage: one note each on stderr
 * ("kvcheck: FILE: note: ..."), counted by unfinished=; --verbose adds the other
 * notes. On a terminal a progress line is redrawn on stderr while it reads; piped,
 * it stays quiet. --repair takes the writer lock, tells every step and every record
 * it will lose on stdout, asks on a terminal (--yes answers for it, and is required
 * when stdin is not a terminal), repairs, then checks again and opens the store to
 * prove it; it refuses while a writer holds the store or a read-only handle has it
 * open (the reader lock, io/lock.h).
 *
 * Exit status: 0 clean (or repaired clean; leftovers are no damage), 1 damage found
 * (or left), 2 could not check (usage, not a kv store or file, unreadable, a newer
 * format version), 3 --repair: the store is held by a writer or open in a read-only
 * process.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsck/check.h"
#include "io/lock.h"
#include "json.h"
#include "progress.h"
#include "kv.h"

enum { EXIT_CLEAN = 0, EXIT_DAMAGE = 1, EXIT_USAGE = 2, EXIT_LOCKED = 3 };

static const char usage_text[] =
    "usage: kvcheck [OPTIONS] DIR|FILE\n"
    "Checks a kv store, or one of its files: reads every byte, verifies every checksum\n"
    "and length, compares hints with their segments and the MANIFEST with the\n"
    "directory. Changes nothing unless --repair is given.\n"
    "options:\n"
    "  -r, --repair     repair the store in DIR: tells what it will do, asks, does it\n"
    "  -y, --yes        with --repair, do not ask (needed when stdin is not a terminal)\n"
    "  -j, --json       print the summary as one JSON object\n"
    "  -v, --verbose    also print the other notes (files that are not kv's, copies set\n"
    "                   aside, a writer at work)\n"
    "  -q, --quiet      no progress line, no summary, no notes: problems only\n"
    "  -h, --help       print this help and exit\n"
    "  -V, --version    print the version and exit\n"
    "exit status: 0 clean (leftovers of a stopped writer are notes, not damage),\n"
    "             1 damage found, 2 could not check (usage, not a kv store or file,\n"
    "             unreadable, newer format version), 3 --repair: the store is held by\n"
    "             a writer, or open in a read-only process\n";

typedef struct opts {
    const char *path;
    int repair, yes, json, verbose, quiet;
    progress line;       /* the progress line (a terminal, not quiet) */
} opts;

/* ---- output ------------------------------------------------------------------------ */

/* The path of a store's file as the user named the store. */
static void path_of(const opts *o, const char *file, char *buf, size_t n)
{
    if (file == NULL || file[0] == '\0' || strcmp(file, o->path) == 0)
        snprintf(buf, n, "%s", o->path);
    else
        snprintf(buf, n, "%s%s%s", o->path, o->path[strlen(o->path) - 1] == '/' ? "" : "/", file);
}

static void on_problem(void *arg, const check_problem *p)
{
    opts *o = arg;
    char path[4400];
    progress_clear(&o->line);
    path_of(o, p->file, path, sizeof path);
    if (p->has_off)
        fprintf(stderr, "kvcheck: %s: offset 0x%llx: %s\n", path, (unsigned long long)p->off, p->what);
    else
        fprintf(stderr, "kvcheck: %s: %s\n", path, p->what);
}

/* Leftovers are told unless --quiet; the other notes with --verbose. */
static void on_note(void *arg, const check_problem *n)
{
    opts *o = arg;
    char path[4400];
    if (o->quiet || (n->kind != CHECK_NOTE_LEFTOVER && !o->verbose))
        return;
    progress_clear(&o->line);
    path_of(o, n->file, path, sizeof path);
    if (n->has_off)
        fprintf(stderr, "kvcheck: %s: offset 0x%llx: note: %s\n", path,
                (unsigned long long)n->off, n->what);
    else
        fprintf(stderr, "kvcheck: %s: note: %s\n", path, n->what);
}

static double mib(uint64_t b) { return (double)b / (1024.0 * 1024.0); }

static void on_progress(void *arg, uint64_t done, uint64_t total)
{
    opts *o = arg;
    progress_draw(&o->line, "%.1f of %.1f MiB read (%3.0f%%)", mib(done), mib(total),
                  total ? 100.0 * (double)(done < total ? done : total) / (double)total : 100.0);
}

/* A key as C-style escaped text between quotes; long keys are cut. */
static void print_key(FILE *f, const uint8_t *k, uint32_t n)
{
    fputc('"', f);
    for (uint32_t i = 0; i < n && i < 200; i++) {
        uint8_t c = k[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
    if (n > 200)
        fprintf(f, "... (%u bytes)", n);
}

static void print_summary(const opts *o, const check_summary *s, const check_repair_result *r)
{
    int record_file = s->single && (s->kind == INSPECT_SEG || s->kind == INSPECT_WAL);
    if (o->quiet)
        return;
    if (!o->json) {
        printf("files=%llu records=%llu bytes=%llu damaged=%llu lost_bytes=%llu",
               (unsigned long long)s->files, (unsigned long long)s->records,
               (unsigned long long)s->bytes, (unsigned long long)s->damaged,
               (unsigned long long)s->lost_bytes);
        if (record_file)
            printf(" ok_up_to=%llu", (unsigned long long)s->ok_up_to);
        printf(" segment_records=%llu wal_records=%llu hint_records=%llu unfinished=%llu\n",
               (unsigned long long)s->seg_records, (unsigned long long)s->wal_records,
               (unsigned long long)s->hint_records, (unsigned long long)s->unfinished);
        return;
    }
    printf("{\"path\":");
    jsonw_cstring(stdout, o->path);
    printf(",\"clean\":%s,\"files\":%llu,\"records\":%llu,\"bytes\":%llu,\"damaged\":%llu,"
           "\"lost_bytes\":%llu", s->damaged == 0 ? "true" : "false",
           (unsigned long long)s->files, (unsigned long long)s->records,
           (unsigned long long)s->bytes, (unsigned long long)s->damaged,
           (unsigned long long)s->lost_bytes);
    if (record_file)
        printf(",\"ok_up_to\":%llu", (unsigned long long)s->ok_up_to);
    printf(",\"segment_records\":%llu,\"wal_records\":%llu,\"hint_records\":%llu,"
           "\"unfinished\":%llu,\"writer_pid\":%ld", (unsigned long long)s->seg_records,
           (unsigned long long)s->wal_records, (unsigned long long)s->hint_records,
           (unsigned long long)s->unfinished, s->writer_pid);
    if (r != NULL)
        printf(",\"repair\":{\"steps\":%u,\"cut_bytes\":%llu,\"hints_written\":%u,"
               "\"files_removed\":%u,\"files_set_aside\":%u,\"segments_written\":%u,"
               "\"records_salvaged\":%llu,\"tombstones_rewritten\":%llu,\"tombstones_kept\":%llu,"
               "\"records_lost\":%llu,\"lost_bytes\":%llu,\"keys_reverted\":%llu}", r->steps, (unsigned long long)r->cut_bytes,
               r->hints_written, r->files_removed, r->files_set_aside, r->segments_written,
               (unsigned long long)r->records_salvaged,
               (unsigned long long)r->tombstones_rewritten,
               (unsigned long long)r->tombstones_kept, (unsigned long long)r->records_lost,
               (unsigned long long)r->lost_bytes, (unsigned long long)r->keys_reverted);
    printf("}\n");
}

/* ---- checking ---------------------------------------------------------------------- */

static int run_check(opts *o, check_summary *sum, int tell_summary)
{
    check_fns fns = {on_problem, on_note, on_progress, o};
    progress_init(&o->line, "kvcheck", !o->quiet); /* silent for its first 200 ms */
    int rc = check_path(o->path, &fns, sum);
    progress_clear(&o->line);
    if (rc != KV_OK) {
        fprintf(stderr, "kvcheck: %s\n", kv_errmsg());
        return EXIT_USAGE;
    }
    if (tell_summary)
        print_summary(o, sum, NULL);
    return sum->damaged > 0 ? EXIT_DAMAGE : EXIT_CLEAN;
}

/* ---- repairing --------------------------------------------------------------------- */

static void on_step(void *arg, const char *file, int has_off, uint64_t off, uint64_t len,
                    const char *what)
{
    opts *o = arg;
    char path[4400];
    path_of(o, file, path, sizeof path);
    if (has_off)
        printf("kvcheck: will: %s: offset 0x%llx..0x%llx: %s\n", path, (unsigned long long)off,
               (unsigned long long)(off + len), what);
    else
        printf("kvcheck: will: %s: %s\n", path, what);
}

static void on_lost(void *arg, const check_lost *l)
{
    opts *o = arg;
    char path[4400];
    static const char *const from[] = {"", "from the hint",
                                       ("the entry checks out; its batch was cut"),
                                       "a damaged entry: unverified", "",
                                       ("after the first damage of the newest files, which "
                                        "recovery does not read either; kept in the copy")};
    path_of(o, l->file, path, sizeof path);
    printf("kvcheck: will lose: %s: offset 0x%llx: ", path, (unsigned long long)l->off);
    if (l->source == CHECK_FROM_NONE) {
        printf("%u bytes whose records cannot be told\n", l->size);
        return;
    }
    printf("%s ", l->type == KV_REC_DEL ? "delete of" : l->type == KV_REC_PUT ? "put of" : "record");
    if (l->key != NULL)
        print_key(stdout, l->key, l->klen);
    printf(" (seq %llu, %u bytes; %s)\n", (unsigned long long)l->seq, l->size,
           from[l->source > 0 && l->source <= CHECK_FROM_AFTER ? l->source : 0]);
}

/* A key whose state the plan changes: kept deleted, un-deleted, reverted, or that may
 * be (one line each, on stdout with the plan, before the question). */
static void on_revert(void *arg, const check_revert *r)
{
    opts *o = arg;
    char path[4400];
    static const char *const verb[] = {"", "will keep deleted", "will un-delete",
                                       "will revert to an older value",
                                       "may un-delete or revert"};
    path_of(o, r->file, path, sizeof path);
    printf("kvcheck: %s: ", verb[r->kind >= CHECK_KEPT_DELETED && r->kind <= CHECK_MAY_REVERT
                                 ? r->kind : 0]);
    if (r->key != NULL) {
        print_key(stdout, r->key, r->klen);
        printf(" (its newest surviving record: seq %llu): ", (unsigned long long)r->old_seq);
    }
    printf("%s: offset 0x%llx: %s\n", path, (unsigned long long)r->off, r->why);
}

static int on_confirm(void *arg)
{
    opts *o = arg;
    char line[64];
    fflush(stdout);
    if (o->yes)
        return 1;
    fprintf(stderr, "kvcheck: repair %s as above? [y/N] ", o->path);
    if (fgets(line, sizeof line, stdin) == NULL)
        return 0;
    return line[0] == 'y' || line[0] == 'Y';
}

/* Takes the writer lock: on an existing LOCK without changing it (none: *lock_fd
 * stays -1), or with create, making LOCK (a store with no LOCK gets one only when
 * there is something to repair). A store a writer holds is refused (exit 3). */
static int take_lock(const opts *o, int create, int *lock_fd)
{
    int dirfd = open(o->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0 && !create)
        return EXIT_CLEAN; /* no store to lock: the check says what the path is */
    if (dirfd < 0) {
        fprintf(stderr, "kvcheck: %s: %s\n", o->path, strerror(errno));
        return EXIT_USAGE;
    }
    int rc = create ? lock_acquire(dirfd, o->path, lock_fd) : lock_take(dirfd, o->path, lock_fd);
    if (rc == KV_NOTFOUND)
        rc = KV_OK;
    close(dirfd);
    if (rc == KV_ELOCKED) {
        fprintf(stderr, "kvcheck: %s: %s: not repaired\n", o->path, kv_errmsg());
        return EXIT_LOCKED;
    }
    if (rc != KV_OK) {
        fprintf(stderr, "kvcheck: %s: %s\n", o->path, kv_errmsg());
        return EXIT_USAGE;
    }
    return EXIT_CLEAN;
}

/* The repaired store must check clean and open. */
static int verify(opts *o, const check_repair_result *r)
{
    check_summary sum;
    check_fns fns = {on_problem, on_note, NULL, o};
    kv_options ko;
    kv_db *db;
    int rc = check_path(o->path, &fns, &sum);
    if (rc != KV_OK) {
        fprintf(stderr, "kvcheck: after the repair: %s\n", kv_errmsg());
        return EXIT_DAMAGE;
    }
    print_summary(o, &sum, r);
    kv_options_init(&ko);
    ko.read_only = 1;
    ko.create = 0;
    rc = kv_open(o->path, &ko, &db);
    if (rc != KV_OK) {
        fprintf(stderr, "kvcheck: %s: the repaired store does not open: %s: %s\n", o->path,
                kv_strerror(rc), kv_errmsg());
        return EXIT_DAMAGE;
    }
    kv_close(db);
    return sum.damaged > 0 ? EXIT_DAMAGE : EXIT_CLEAN;
}

static int repair(opts *o)
{
    check_summary sum;
    check_repair_result r;
    struct stat st;
    int lock_fd = -1;
    if (stat(o->path, &st) == 0 && !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "kvcheck: %s: --repair works on a store directory, not on one file\n",
                o->path);
        return EXIT_USAGE;
    }
    /* the writer lock first: a store a writer holds is refused before it is read, and
     * no writer changes it under the checks that follow */
    int ex = take_lock(o, 0, &lock_fd);
    int dirfd = ex == EXIT_CLEAN ? open(o->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dirfd >= 0) { /* a FIFO under a store file's name: refused before any read */
        int rc = check_repair_special(dirfd);
        close(dirfd);
        if (rc != KV_OK) {
            fprintf(stderr, "kvcheck: %s: %s\n", o->path, kv_errmsg());
            ex = EXIT_USAGE;
        }
    }
    if (ex == EXIT_CLEAN)
        ex = run_check(o, &sum, 0);
    if (ex == EXIT_USAGE)
        lock_release(lock_fd);
    if (ex == EXIT_USAGE || ex == EXIT_LOCKED)
        return ex;
    if (lock_fd < 0 && (sum.damaged > 0 || sum.unfinished > 0)
        && (ex = take_lock(o, 1, &lock_fd)) != EXIT_CLEAN)
        return ex;
    if (lock_fd < 0) {
        if (!o->quiet)
            printf("kvcheck: %s: nothing to repair\n", o->path);
        return EXIT_CLEAN;
    }
    check_repair_fns fns = {.step = on_step, .lost = on_lost, .confirm = on_confirm,
                            .revert = on_revert, .arg = o};
    int rc = check_repair(o->path, lock_fd, &fns, &r);
    lock_release(lock_fd);
    if (rc == KV_ELOCKED) { /* a read-only handle has the store open: nothing changed */
        fprintf(stderr, "kvcheck: %s: not repaired\n", kv_errmsg());
        return EXIT_LOCKED;
    }
    if (rc != KV_OK) {
        const char *msg = kv_errmsg();
        int named = strncmp(msg, o->path, strlen(o->path)) == 0;
        fprintf(stderr, "kvcheck: %s%s%s%s\n", named ? "" : o->path, named ? "" : ": ", msg,
                r.steps > 0 && !r.done ? " (run kvcheck --repair again to finish)" : "");
        return rc == KV_EINVAL || rc == KV_EVERSION ? EXIT_USAGE : EXIT_DAMAGE;
    }
    if (r.steps == 0) {
        if (!o->quiet)
            printf("kvcheck: %s: nothing to repair\n", o->path);
        return EXIT_CLEAN;
    }
    if (r.declined) {
        fprintf(stderr, "kvcheck: %s: not repaired: nothing was changed\n", o->path);
        return EXIT_DAMAGE;
    }
    if (!o->quiet && !o->json)
        printf("kvcheck: %s: repaired: %u steps; %llu bytes cut, %u hints written, %u files "
               "removed, %u set aside, %u segments written with %llu records salvaged and "
               "%llu tombstones rebuilt, %llu lost deletes kept; %llu records lost (%llu damaged "
               "bytes not carried over); %llu keys un-deleted, reverted, or that may be\n",
               o->path, r.steps, (unsigned long long)r.cut_bytes, r.hints_written,
               r.files_removed, r.files_set_aside, r.segments_written,
               (unsigned long long)r.records_salvaged, (unsigned long long)r.tombstones_rewritten,
               (unsigned long long)r.tombstones_kept, (unsigned long long)r.records_lost,
               (unsigned long long)r.lost_bytes, (unsigned long long)r.keys_reverted);
    return verify(o, &r);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"repair", no_argument, NULL, 'r'}, {"yes", no_argument, NULL, 'y'},
        {"json", no_argument, NULL, 'j'},   {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},  {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0}};
    opts o;
    int c;
    memset(&o, 0, sizeof o);
    while ((c = getopt_long(argc, argv, "ryjvqhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'r': o.repair = 1; break;
        case 'y': o.yes = 1; break;
        case 'j': o.json = 1; break;
        case 'v': o.verbose = 1; break;
        case 'q': o.quiet = 1; break;
        case 'h': fputs(usage_text, stdout); return EXIT_CLEAN;
        case 'V': printf("kvcheck (kv) %s\n", kv_version()); return EXIT_CLEAN;
        default: fputs(usage_text, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "kvcheck: %s\n%s", optind >= argc ? "DIR or FILE is missing"
                                                          : "one DIR or FILE only", usage_text);
        return EXIT_USAGE;
    }
    o.path = argv[optind];
    if (o.yes && !o.repair) {
        fprintf(stderr, "kvcheck: --yes goes with --repair\n%s", usage_text);
        return EXIT_USAGE;
    }
    if (o.repair && !o.yes && !isatty(STDIN_FILENO)) {
        fprintf(stderr, "kvcheck: --repair asks before it changes anything, and standard input "
                "is not a terminal: give --yes to repair without asking\n");
        return EXIT_USAGE;
    }
    /* A reader that goes away (kvcheck --repair ... | head) must not kill a repair
     * half-way: writes to the pipe fail instead. */
    signal(SIGPIPE, SIG_IGN);
    return o.repair ? repair(&o) : run_check(&o, &(check_summary){0}, 1);
}
