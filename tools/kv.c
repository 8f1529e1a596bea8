/*
 * kv.c — the kv command-line tool: put, get, delete and list keys of a store, and
 * print its statistics, through the public API in kv.h only.
 *
 * The tool talks to people and scripts; the library never does. Data (values, keys,
 * statistics) goes to stdout, diagnostics to stderr, and the exit status says what
 * happened: 0 done, 1 key not found (get, del), 2 usage error or input out of limits,
 * 3 store or I/O error. A store error is printed as "kv: DIR: <kv_strerror>:
 * <kv_errmsg>". Every handle is closed and a failing kv_close is reported (exit 3).
 *
 * Sections:
 *   1. Exit codes, command table, usage text
 *   2. Diagnostics
 *   3. Input and output helpers (reading stdin, escaping keys)
 *   4. Opening and closing the store
 *   5. Commands: put, get, del, keys, stats
 *   6. Argument parsing and main
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv.h"

/* ---------------------------------------------------------------------------------
 * 1. Exit codes, command table, usage text
 * ------------------------------------------------------------------------------ */
enum {
    EXIT_DONE = 0,      /* the command did what was asked */
    EXIT_NOTFOUND = 1,  /* get or del of an absent key */
    EXIT_USAGE = 2,     /* bad command line, or a key or value out of limits */
    EXIT_STORE = 3      /* the store or an I/O call failed */
};

/* What the command line asked for, after option parsing. */
struct cli {
    const char *dir;     /* store directory: -d, else $KV_DIR, else ./kv.db */
    kv_options opts;     /* sync and io from the options; create/read_only per command */
    char **args;         /* operands after the command name */
    const char *value;   /* put: the value, from argv or read from stdin */
    size_t vlen;         /* put: its length */
    char *stdin_buf;     /* put KEY -: the malloc'd stdin bytes (value points here) */
};

typedef int (*cmd_fn)(struct cli *cli, kv_db *db);

/* One sub-command: how many operands it takes and how it opens the store. */
struct command {
    const char *name;    /* word on the command line */
    int nargs;           /* operands after the name */
    const char *operands; /* how they read in a usage message */
    int create;          /* create the store if missing (only put) */
    int read_only;       /* open without the writer lock */
    cmd_fn run;          /* does the work on an open handle, returns an exit code */
};

static const char usage_text[] =
    "usage: kv [OPTIONS] COMMAND [ARGS]\n"
    "commands:\n"
    "  put KEY VALUE    store VALUE under KEY (creates the store if missing)\n"
    "  put KEY -        store standard input under KEY (binary, up to 64 MiB)\n"
    "  get KEY          write the value of KEY to stdout, as is\n"
    "  del KEY          delete KEY\n"
    "  keys             list every key, one a line (\\\\ and \\xHH escapes)\n"
    "  stats            print the store's statistics as 'name value' lines\n"
    "options (before the command):\n"
    "  -d, --dir DIR    store directory (default: $KV_DIR, else ./kv.db)\n"
    "      --sync MODE  always (default), interval or none\n"
    "      --io MODE    auto (default), uring or psync\n"
    "  -h, --help       print this help and exit\n"
    "  -V, --version    print the version and exit\n"
    "exit status: 0 ok, 1 key not found (get, del), 2 usage error,\n"
    "             3 store or I/O error (message on stderr)\n";

/* ---------------------------------------------------------------------------------
 * 2. Diagnostics
 * ------------------------------------------------------------------------------ */

/* Prints a usage error (if msg is given) and the usage text on stderr; returns the
 * usage exit code so callers can `return usage_error(...)`. */
static int usage_error(const char *msg, const char *arg)
{
    if (msg != NULL)
        fprintf(stderr, "kv: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    fputs(usage_text, stderr);
    return EXIT_USAGE;
}

/* Prints "kv: DIR: <kv_strerror>: <kv_errmsg>" for status rc. kv_errmsg is copied
 * before kv_strerror is called, since its text is only promised until the next
 * kv_* call. Returns the store exit code. */
static int store_error(const char *dir, int rc)
{
    char detail[1024];

    snprintf(detail, sizeof detail, "%s", kv_errmsg());
    if (detail[0] != '\0')
        fprintf(stderr, "kv: %s: %s: %s\n", dir, kv_strerror(rc), detail);
    else
        fprintf(stderr, "kv: %s: %s\n", dir, kv_strerror(rc));
    return EXIT_STORE;
}

/* Prints "kv: what: <errno text>" for a failed I/O call outside the store. */
static int io_error(const char *what, int err)
{
    fprintf(stderr, "kv: %s: %s\n", what, strerror(err));
    return EXIT_STORE;
}

/* ---------------------------------------------------------------------------------
 * 3. Input and output helpers
 * ------------------------------------------------------------------------------ */

/* Reads all of stdin into a malloc'd buffer. Reads at most KV_MAX_VALUE + 1 bytes,
 * so an oversized value is detected without swallowing the whole stream.
 * Returns EXIT_DONE with *buf and *len set, EXIT_USAGE when the input exceeds
 * KV_MAX_VALUE, or EXIT_STORE on a read or allocation failure (message printed). */
static int read_stdin(char **buf, size_t *len)
{
    size_t cap = 64 * 1024, n = 0, limit = (size_t)KV_MAX_VALUE + 1;
    char *p = malloc(cap), *np;
    ssize_t r;

    while (p != NULL && n < limit) {
        if (n == cap) {
            size_t ncap = cap * 2 < limit ? cap * 2 : limit;
            if ((np = realloc(p, ncap)) == NULL)
                break; /* n == cap < limit tells the failure below */
            p = np, cap = ncap;
            continue;
        }
        if ((r = read(STDIN_FILENO, p + n, cap - n)) > 0)
            n += (size_t)r;
        else if (r == 0)
            break;
        else if (errno != EINTR) {
            free(p);
            return io_error("stdin", errno);
        }
    }
    if (p == NULL || (n == cap && n < limit)) { /* malloc or realloc failed */
        free(p);
        return io_error("stdin", ENOMEM);
    }
    if (n > KV_MAX_VALUE) {
        free(p);
        fprintf(stderr, "kv: stdin: value longer than %u bytes (KV_MAX_VALUE)\n",
                KV_MAX_VALUE);
        return EXIT_USAGE;
    }
    *buf = p, *len = n;
    return EXIT_DONE;
}

/* Writes key to f so that any key reads back unambiguously: printable ASCII as is,
 * backslash as "\\", every other byte (newline, NUL, >= 0x80) as "\xHH". */
static void put_escaped(FILE *f, const void *key, size_t len)
{
    const unsigned char *k = key;

    for (size_t i = 0; i < len; i++) {
        if (k[i] == '\\')
            fputs("\\\\", f);
        else if (k[i] >= 0x20 && k[i] < 0x7f)
            putc(k[i], f);
        else
            fprintf(f, "\\x%02x", k[i]);
    }
}

/* Flushes stdout and reports a write error on it (a full disk, a closed pipe). */
static int finish_stdout(void)
{
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout))
        return io_error("stdout", errno ? errno : EIO);
    return EXIT_DONE;
}

/* ---------------------------------------------------------------------------------
 * 4. Opening and closing the store
 * ------------------------------------------------------------------------------ */

/* Opens cli->dir as cmd asks (create for put; read-only for get, keys, stats). */
static int open_store(struct cli *cli, const struct command *cmd, kv_db **db)
{
    cli->opts.create = cmd->create;
    cli->opts.read_only = cmd->read_only;
    int rc = kv_open(cli->dir, &cli->opts, db);
    if (rc != KV_OK)
        return store_error(cli->dir, rc);
    return EXIT_DONE;
}

/* Closes db; a failed close turns any result into a store error. */
static int close_store(const struct cli *cli, kv_db *db, int code)
{
    int rc = kv_close(db);
    if (rc != KV_OK)
        return store_error(cli->dir, rc);
    return code;
}

/* ---------------------------------------------------------------------------------
 * 5. Commands
 *
 * Each runs on an open handle and returns an exit code, having printed any
 * diagnostic itself. Keys are the bytes of argv, so they cannot hold NUL.
 * ------------------------------------------------------------------------------ */

/* Prints "kv: DIR: key not found: KEY" with the key escaped as `keys` does. */
static int not_found(const struct cli *cli, const char *key)
{
    fprintf(stderr, "kv: %s: key not found: ", cli->dir);
    put_escaped(stderr, key, strlen(key));
    putc('\n', stderr);
    return EXIT_NOTFOUND;
}

static int cmd_put(struct cli *cli, kv_db *db)
{
    const char *key = cli->args[0];
    int rc = kv_put(db, key, strlen(key), cli->value, cli->vlen);

    return rc == KV_OK ? EXIT_DONE : store_error(cli->dir, rc);
}

static int cmd_get(struct cli *cli, kv_db *db)
{
    const char *key = cli->args[0];
    void *val = NULL;
    size_t vlen = 0;
    int rc = kv_get(db, key, strlen(key), &val, &vlen);

    if (rc == KV_NOTFOUND)
        return not_found(cli, key);
    if (rc != KV_OK)
        return store_error(cli->dir, rc);
    errno = 0;
    size_t w = fwrite(val, 1, vlen, stdout);
    int err = errno ? errno : EIO;
    kv_free(val);
    return w == vlen ? finish_stdout() : io_error("stdout", err);
}

static int cmd_del(struct cli *cli, kv_db *db)
{
    const char *key = cli->args[0];
    int rc = kv_delete(db, key, strlen(key));

    if (rc == KV_NOTFOUND)
        return not_found(cli, key);
    return rc == KV_OK ? EXIT_DONE : store_error(cli->dir, rc);
}

/* kv_foreach returns this (positive, not KV_NOTFOUND) when stdout failed. */
#define KEYS_STDOUT_FAILED 100

/* kv_foreach callback: prints one escaped key; on a write error it keeps errno in
 * *arg (before library calls can change it) and stops the iteration. */
static int print_key(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
    errno = 0;
    put_escaped(stdout, k, kl);
    putc('\n', stdout);
    if (!ferror(stdout))
        return 0;
    *(int *)arg = errno ? errno : EIO;
    return KEYS_STDOUT_FAILED;
}

static int cmd_keys(struct cli *cli, kv_db *db)
{
    int err = 0;
    int rc = kv_foreach(db, print_key, &err);

    if (rc == KEYS_STDOUT_FAILED)
        return io_error("stdout", err);
    if (rc != KV_OK)
        return store_error(cli->dir, rc);
    return finish_stdout();
}

static const char *io_name(int io)
{
    return io == KV_IO_URING ? "uring" : io == KV_IO_PSYNC ? "psync" : "unknown";
}

static const char *sync_name(int sync)
{
    return sync == KV_SYNC_ALWAYS ? "always"
         : sync == KV_SYNC_INTERVAL ? "interval"
         : sync == KV_SYNC_NONE ? "none" : "unknown";
}

/* Prints every kv_stats field as "name value", in the struct's order. */
static int cmd_stats(struct cli *cli, kv_db *db)
{
    kv_stats st;
    int rc = kv_stat(db, &st);

    if (rc != KV_OK)
        return store_error(cli->dir, rc);
    const struct { const char *name; uint64_t v; } u[] = {
        {"keys", st.keys}, {"live_bytes", st.live_bytes},
        {"dead_bytes", st.dead_bytes}, {"disk_bytes", st.disk_bytes},
        {"segments", st.segments}, {"wal_bytes", st.wal_bytes},
        {"wal_files", st.wal_files}, {"index_bytes", st.index_bytes},
        {"puts", st.puts}, {"gets", st.gets}, {"deletes", st.deletes},
        {"batches", st.batches}, {"wal_syncs", st.wal_syncs},
        {"wal_groups", st.wal_groups}, {"next_seq", st.next_seq},
        {"recovery_us", st.recovery_us}, {"recovery_records", st.recovery_records},
        {"recovery_wal_replayed", st.recovery_wal_replayed},
        {"recovery_cut_bytes", st.recovery_cut_bytes},
        {"recovery_hints", st.recovery_hints},
        {"recovery_hints_rewritten", st.recovery_hints_rewritten},
        {"reclaimable_bytes", st.reclaimable_bytes},
    };
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
        printf("%s %" PRIu64 "\n", u[i].name, u[i].v);
    printf("io_backend %s\n", io_name(st.io_backend));
    printf("sync %s\n", sync_name(st.sync));
    printf("read_only %d\n", st.read_only);
    printf("failed %d\n", st.failed);
    printf("io_backend_note %.*s\n", (int)sizeof st.io_backend_note,
           st.io_backend_note[0] != '\0' ? st.io_backend_note : "-");
    return finish_stdout();
}

static const struct command commands[] = {
    {"put", 2, "KEY VALUE or KEY -", 1, 0, cmd_put},
    {"get", 1, "KEY", 0, 1, cmd_get},
    {"del", 1, "KEY", 0, 0, cmd_del},
    {"keys", 0, "nothing", 0, 1, cmd_keys},
    {"stats", 0, "nothing", 0, 1, cmd_stats},
};

/* ---------------------------------------------------------------------------------
 * 6. Argument parsing and main
 * ------------------------------------------------------------------------------ */

/* Maps word to its index in names (NULL-terminated); -1 if it is none of them. */
static int choose(const char *word, const char *const *names)
{
    for (int i = 0; names[i] != NULL; i++)
        if (strcmp(word, names[i]) == 0)
            return i;
    return -1;
}

/* Parses the options. Returns -1 to go on with the command at argv[optind], else
 * the exit code to leave with (help, version, usage error). The leading '+' stops
 * at the command, so values like "-5" after it are operands, never options. */
static int parse_options(int argc, char **argv, struct cli *cli)
{
    static const char *const syncs[] = {"always", "interval", "none", NULL};
    static const char *const ios[] = {"auto", "uring", "psync", NULL};
    static const int io_codes[] = {KV_IO_AUTO, KV_IO_URING, KV_IO_PSYNC};
    static const int sync_codes[] = {KV_SYNC_ALWAYS, KV_SYNC_INTERVAL, KV_SYNC_NONE};
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'}, {"sync", required_argument, NULL, 's'},
        {"io", required_argument, NULL, 'i'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0},
    };
    int c, i;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:d:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': cli->dir = optarg; break;
        case 's':
            if ((i = choose(optarg, syncs)) < 0)
                return usage_error("--sync expects always, interval or none", optarg);
            cli->opts.sync = sync_codes[i];
            break;
        case 'i':
            if ((i = choose(optarg, ios)) < 0)
                return usage_error("--io expects auto, uring or psync", optarg);
            cli->opts.io = io_codes[i];
            break;
        case 'h': fputs(usage_text, stdout); return finish_stdout();
        case 'V': printf("kv %s\n", KV_VERSION_STRING); return finish_stdout();
        case ':': return usage_error("option needs an argument", argv[optind - 1]);
        default: return usage_error("unknown option", argv[optind - 1]);
        }
    }
    return -1;
}

/* Finds the command at argv[optind] and checks its operands. Returns NULL after
 * printing a usage error. */
static const struct command *find_command(int argc, char **argv, struct cli *cli)
{
    if (optind >= argc) {
        usage_error("no command given", NULL);
        return NULL;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const struct command *cmd = &commands[i];
        if (strcmp(argv[optind], cmd->name) != 0)
            continue;
        if (argc - optind - 1 != cmd->nargs) {
            fprintf(stderr, "kv: %s takes %s\n", cmd->name, cmd->operands);
            usage_error(NULL, NULL);
            return NULL;
        }
        cli->args = argv + optind + 1;
        return cmd;
    }
    usage_error("unknown command", argv[optind]);
    return NULL;
}

/* Checks the key (1..KV_MAX_KEY bytes) and, for put, gets the value from argv or
 * stdin, all before the store is opened: bad input is a usage error and never
 * leaves a newly created, empty store behind. */
static int check_input(const struct command *cmd, struct cli *cli)
{
    size_t klen = cmd->nargs > 0 ? strlen(cli->args[0]) : 1;

    if (klen == 0)
        return usage_error("a key cannot be empty", NULL);
    if (klen > KV_MAX_KEY) {
        fprintf(stderr, "kv: key longer than %u bytes (KV_MAX_KEY)\n", KV_MAX_KEY);
        return EXIT_USAGE;
    }
    if (cmd->run != cmd_put)
        return EXIT_DONE;
    if (strcmp(cli->args[1], "-") != 0) {
        cli->value = cli->args[1], cli->vlen = strlen(cli->args[1]);
        return EXIT_DONE;
    }
    int code = read_stdin(&cli->stdin_buf, &cli->vlen);
    cli->value = cli->stdin_buf;
    return code;
}

int main(int argc, char **argv)
{
    struct cli cli = {0};
    const struct command *cmd;
    kv_db *db = NULL;
    int code;

    kv_options_init(&cli.opts);
    cli.dir = getenv("KV_DIR");
    if (cli.dir == NULL || cli.dir[0] == '\0')
        cli.dir = "./kv.db";
    if ((code = parse_options(argc, argv, &cli)) >= 0)
        return code;
    if ((cmd = find_command(argc, argv, &cli)) == NULL)
        return EXIT_USAGE;
    if ((code = check_input(cmd, &cli)) == EXIT_DONE
        && (code = open_store(&cli, cmd, &db)) == EXIT_DONE)
        code = close_store(&cli, db, cmd->run(&cli, db));
    free(cli.stdin_buf);
    return code;
}
