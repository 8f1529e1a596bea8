/*
 * kv.c — the kv command-line tool: put, get, delete, list and scan keys of a store,
 * load a kvdump dump into it, and print its statistics, through the public API in
 * kv.h only (and tools/dumpfmt.c, the dump format and the escaping of bytes).
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
 *   5. Commands: put, get, del, keys, scan, stats
 *   6. Loading a dump: checking the whole input first, then writing it
 *   7. Argument parsing and main
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dumpfmt.h"
#include "base/grow.h"
#include "json.h"
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

/* How kv load treats a store that already holds keys. */
enum {
    LOAD_EMPTY = 0,     /* refuse it: load into a new or empty store only */
    LOAD_OVERWRITE = 1, /* --overwrite: the dump's value replaces the store's */
    LOAD_KEEP = 2       /* --no-overwrite: a key already in the store is left alone */
};

/* What the command line asked for, after option parsing. */
struct cli {
    const char *dir;     /* store directory: -d, else $KV_DIR, else ./kv.db */
    kv_options opts;     /* sync, io and compression from the options; create/read_only
                            per command */
    int compression_set; /* --compression was given (load: it beats the dump's) */
    char **args;         /* operands after the command name */
    const char *value;   /* put: the value, from argv or read from stdin */
    size_t vlen;         /* put: its length */
    char *stdin_buf;     /* put KEY -: the malloc'd stdin bytes (value points here) */
    int json;            /* stats --json */
    int has_prefix;      /* scan --prefix given */
    uint8_t *prefix;     /* its bytes, unescaped (malloc'd, KV_MAX_KEY of room) */
    size_t prefix_len;
    const char *load_path; /* load -f FILE; NULL: stdin */
    const char *load_name; /* the input as messages name it: FILE or "<stdin>" */
    int load_mode;       /* LOAD_EMPTY, LOAD_OVERWRITE or LOAD_KEEP */
    FILE *load_in;       /* the checked input, positioned at its start again */
    off_t load_start;    /* where the dump starts in load_in */
};

typedef int (*cmd_fn)(struct cli *cli, kv_db *db);

/* Parses the options after a command's name (argv[0] is the name); returns -1 to go
 * on with optind at the first operand, else the exit code to leave with. */
typedef int (*opt_fn)(struct cli *cli, int argc, char **argv);

/* One sub-command: how many operands it takes and how it opens the store. */
struct command {
    const char *name;    /* word on the command line */
    int nargs;           /* operands after the name (and after its options) */
    const char *operands; /* how they read in a usage message */
    int create;          /* create the store if missing (put, load) */
    int read_only;       /* open without the writer lock */
    cmd_fn run;          /* does the work on an open handle, returns an exit code */
    opt_fn options;      /* parses the command's own options; NULL: it has none */
};

static const char usage_text[] =
    "usage: kv [OPTIONS] COMMAND [ARGS]\n"
    "commands:\n"
    "  put KEY VALUE    store VALUE under KEY (creates the store if missing)\n"
    "  put KEY -        store standard input under KEY (binary, up to 64 MiB)\n"
    "  get KEY          write the value of KEY to stdout, as is\n"
    "  del KEY          delete KEY\n"
    "  keys             list every key, one a line (\\\\ and \\xHH escapes)\n"
    "  scan [--prefix P]  print every key (starting with P) and its value, escaped,\n"
    "                   a tab between them, one pair a line, in key order\n"
    "  load [-f FILE] [-o, --overwrite | -n, --no-overwrite]\n"
    "                   load a kvdump dump from stdin or FILE (creates the store if\n"
    "                   missing); the whole input is checked before a byte is\n"
    "                   written; a store that holds keys needs one of the two options\n"
    "  stats [--json]   print the store's statistics as 'name value' lines, or as\n"
    "                   one JSON object\n"
    "options (before the command):\n"
    "  -d, --dir DIR    store directory (default: $KV_DIR, else ./kv.db)\n"
    "      --sync MODE  always (default), interval or none\n"
    "      --io MODE    auto (default), uring or psync\n"
    "      --compression MODE  none (default) or lz4: how put and load store values\n"
    "                   (load: default the dump's compression= line)\n"
    "  -h, --help       print this help and exit\n"
    "  -V, --version    print the version and exit\n"
    "exit status: 0 ok, 1 key not found (get, del), 2 usage error or bad input,\n"
    "             3 store or I/O error (message on stderr)\n";

/* ---------------------------------------------------------------------------------
 * 2. Diagnostics
 * ------------------------------------------------------------------------------ */

/* Prints a usage error (if msg is given) and the usage text on stderr; returns the
 * usage exit code so callers can `return usage_error(...)`. */
static int usage_error(const char *msg, const char *arg)
{
    tool_usage_error("kv", usage_text, msg, arg);
    return EXIT_USAGE;
}

/* Prints "kv: DIR: <kv_strerror>: <kv_errmsg>" for status rc. Returns the store
 * exit code. */
static int store_error(const char *dir, int rc)
{
    tool_store_error("kv", dir, rc);
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
    size_t cap = 0, n = 0, limit = (size_t)KV_MAX_VALUE + 1;
    char *p = NULL, *np;
    ssize_t r;

    while (n < limit) {
        if ((np = grow(p, &cap, n + 1, 1, 64 * 1024, limit)) == NULL) {
            free(p);
            return io_error("stdin", ENOMEM);
        }
        p = np;
        if ((r = read(STDIN_FILENO, p + n, cap - n)) > 0)
            n += (size_t)r;
        else if (r == 0)
            break;
        else if (errno != EINTR) {
            free(p);
            return io_error("stdin", errno);
        }
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
 * backslash as "\\", every other byte (newline, tab, NUL, >= 0x80) as "\xHH": the
 * print format of a dump (dumpfmt.h), so keys from kv keys can be given to
 * --prefix and compared with kvdump -p. */
static void put_escaped(FILE *f, const void *key, size_t len)
{
    dump_encode(f, DUMP_PRINT, key, len);
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

/* Opens cli->dir as cmd asks (create for put and load; read-only for get, keys,
 * scan, stats). */
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

/* kv_foreach returns these (positive, not KV_NOTFOUND) when stdout failed, or when
 * memory ran out listing keys. */
#define KEYS_STDOUT_FAILED 100
#define KEYS_NO_MEMORY 101

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

/* ---- scan ------------------------------------------------------------------------ */

/* What scan's kv_foreach callback fills. */
struct scan_keys {
    const struct cli *cli; /* the prefix */
    dump_keys keys;        /* the keys that have it */
};

/* kv_foreach callback of scan: copies each key with the prefix (the value, which
 * kv_foreach has read, is dropped: the public API has no keys-only iteration). */
static int collect_key(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
    struct scan_keys *sk = arg;
    const struct cli *cli = sk->cli;
    if (cli->has_prefix && !dump_has_prefix(k, kl, cli->prefix, cli->prefix_len))
        return 0;
    return dump_keys_add(&sk->keys, k, kl) == 0 ? 0 : KEYS_NO_MEMORY;
}

/* Prints "key<TAB>value" lines, both escaped as by keys, in ascending byte order of
 * the keys (the kvdump order, whatever the store's history). The keys are listed
 * first (kv_foreach), sorted, then each value is read again with kv_get: memory
 * holds the keys, never the values. */
static int cmd_scan(struct cli *cli, kv_db *db)
{
    struct scan_keys sk = {cli, {0}};
    dump_keys *keys = &sk.keys;
    int code = EXIT_DONE, rc = kv_foreach(db, collect_key, &sk);

    if (rc == KEYS_NO_MEMORY)
        code = io_error("listing the keys", ENOMEM);
    else if (rc != KV_OK)
        code = store_error(cli->dir, rc);
    dump_keys_sort(keys);
    for (size_t i = 0; i < keys->n && code == EXIT_DONE; i++) {
        const uint8_t *k = dump_keys_at(keys, i);
        void *v;
        size_t vl;
        rc = kv_get(db, k, keys->refs[i].klen, &v, &vl);
        if (rc == KV_NOTFOUND)
            continue; /* cannot happen on a read-only handle, which never changes */
        if (rc != KV_OK) {
            code = store_error(cli->dir, rc);
            break;
        }
        errno = 0;
        put_escaped(stdout, k, keys->refs[i].klen);
        putc('\t', stdout);
        put_escaped(stdout, v, vl);
        putc('\n', stdout);
        kv_free(v);
        if (ferror(stdout))
            code = io_error("stdout", errno ? errno : EIO);
    }
    dump_keys_free(keys);
    return code == EXIT_DONE ? finish_stdout() : code;
}

/* ---- stats ----------------------------------------------------------------------- */

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

/* How a kv_stats field is printed. */
enum {
    ST_U64,         /* uint64_t, a decimal number */
    ST_INT,         /* int, a decimal number */
    ST_IO,          /* int KV_IO_*: "uring" or "psync" */
    ST_SYNC,        /* int KV_SYNC_*: "always", "interval" or "none" */
    ST_COMPRESSION, /* int KV_COMPRESS_*: "none" or "lz4" */
    ST_TEXT         /* char[]: text ("-" when empty in the text output) */
};

/* The one list of kv_stats fields, in the struct's order: both the text and the
 * JSON output walk it, so a field added here appears in both. */
#define STAT(field, kind) {#field, kind, offsetof(kv_stats, field)}
static const struct stat_field {
    const char *name; /* the field's name in kv.h, and in the output */
    int kind;         /* ST_* */
    size_t off;       /* offsetof(kv_stats, field) */
} stat_fields[] = {
    STAT(keys, ST_U64), STAT(live_bytes, ST_U64), STAT(dead_bytes, ST_U64),
    STAT(disk_bytes, ST_U64), STAT(segments, ST_U64), STAT(wal_bytes, ST_U64),
    STAT(wal_files, ST_U64), STAT(index_bytes, ST_U64), STAT(puts, ST_U64),
    STAT(gets, ST_U64), STAT(deletes, ST_U64), STAT(batches, ST_U64),
    STAT(wal_syncs, ST_U64), STAT(wal_groups, ST_U64), STAT(next_seq, ST_U64),
    STAT(recovery_us, ST_U64), STAT(recovery_records, ST_U64),
    STAT(recovery_wal_replayed, ST_U64), STAT(recovery_cut_bytes, ST_U64),
    STAT(recovery_hints, ST_U64), STAT(recovery_hints_rewritten, ST_U64),
    STAT(compactions, ST_U64), STAT(compact_bytes_read, ST_U64),
    STAT(compact_bytes_written, ST_U64), STAT(compact_bytes_reclaimed, ST_U64),
    STAT(compact_records_dropped, ST_U64), STAT(compact_tombstones_dropped, ST_U64),
    STAT(compact_errors, ST_U64), STAT(compact_last_time, ST_U64),
    STAT(compact_last_us, ST_U64), STAT(compact_pass_read, ST_U64),
    STAT(compact_pass_total, ST_U64), STAT(reclaimable_bytes, ST_U64),
    STAT(compacting, ST_INT), STAT(io_backend, ST_IO), STAT(sync, ST_SYNC),
    STAT(read_only, ST_INT), STAT(failed, ST_INT), STAT(io_backend_note, ST_TEXT),
    STAT(value_bytes_raw, ST_U64), STAT(value_bytes_stored, ST_U64),
    STAT(values_compressed, ST_U64), STAT(compression, ST_COMPRESSION),
};
#undef STAT

/* Prints the value of field f of st: a number, or a name (quoted in JSON). */
static void print_stat(const struct stat_field *f, const kv_stats *st, int json)
{
    const char *p = (const char *)st + f->off;
    const char *name = NULL;
    int iv = 0;

    if (f->kind != ST_U64 && f->kind != ST_TEXT)
        memcpy(&iv, p, sizeof iv);
    switch (f->kind) {
    case ST_U64: {
        uint64_t v;
        memcpy(&v, p, sizeof v);
        printf("%" PRIu64, v);
        return;
    }
    case ST_INT: printf("%d", iv); return;
    case ST_IO: name = io_name(iv); break;
    case ST_SYNC: name = sync_name(iv); break;
    case ST_COMPRESSION: name = iv == KV_COMPRESS_LZ4 ? "lz4" : "none"; break;
    default:
        if (json)
            jsonw_string(stdout, p, strnlen(p, sizeof st->io_backend_note));
        else
            printf("%.*s", (int)sizeof st->io_backend_note, p[0] != '\0' ? p : "-");
        return;
    }
    if (json)
        jsonw_cstring(stdout, name);
    else
        fputs(name, stdout);
}

/* Prints every kv_stats field as "name value" lines, or with --json as one JSON
 * object on one line, in the struct's order. */
static int cmd_stats(struct cli *cli, kv_db *db)
{
    kv_stats st;
    int rc = kv_stat(db, &st);

    if (rc != KV_OK)
        return store_error(cli->dir, rc);
    for (size_t i = 0; i < sizeof stat_fields / sizeof stat_fields[0]; i++) {
        const struct stat_field *f = &stat_fields[i];
        if (cli->json)
            printf("%s\"%s\": ", i == 0 ? "{" : ", ", f->name);
        else
            printf("%s ", f->name);
        print_stat(f, &st, cli->json);
        if (!cli->json)
            putc('\n', stdout);
    }
    if (cli->json)
        puts("}");
    return finish_stdout();
}

/* Options of stats: --json. */
static int stats_options(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "+:j", longopts, NULL)) != -1) {
        if (c != 'j')
            return usage_error("stats: unknown option", argv[optind - 1]);
        cli->json = 1;
    }
    return -1;
}

/* Options of scan: --prefix P, P escaped as keys prints keys (a P without
 * backslashes is taken as it is). */
static int scan_options(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"prefix", required_argument, NULL, 'P'}, {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "+:P:", longopts, NULL)) != -1) {
        if (c == ':')
            return usage_error("scan: option needs an argument", argv[optind - 1]);
        if (c != 'P')
            return usage_error("scan: unknown option", argv[optind - 1]);
        if (cli->prefix == NULL && (cli->prefix = malloc(KV_MAX_KEY)) == NULL)
            return io_error("--prefix", ENOMEM);
        const char *why = dump_decode(DUMP_PRINT, optarg, strlen(optarg), cli->prefix,
                                      KV_MAX_KEY, &cli->prefix_len);
        if (why != NULL) {
            fprintf(stderr, "kv: --prefix %s: %s\n", optarg, why);
            return EXIT_USAGE;
        }
        cli->has_prefix = 1;
    }
    return -1;
}

/* ---------------------------------------------------------------------------------
 * 6. Loading a dump
 *
 * A demanding operator expects a bad dump to change nothing, so kv load reads the
 * whole input twice: first it checks every line (dumpfmt.c), before the store is
 * even opened, so a bad input neither writes to a store nor creates one; then it
 * reads it again and writes. Input that cannot be read twice (a pipe) is first
 * copied to an unlinked temporary file in $TMPDIR (else /tmp). The writes go in
 * batches of about LOAD_BATCH_BYTES, each atomic (kv_write), then kv_sync makes
 * them durable before kv load reports success. Only a crash or an I/O error
 * during the writing can leave part of a dump loaded: whole batches, a prefix of
 * the dump in key order; loading it again with --overwrite completes it.
 * ------------------------------------------------------------------------------ */
#define LOAD_BATCH_BYTES (8u << 20)

/* Options of load: -f FILE, --overwrite, --no-overwrite. */
static int load_options(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"file", required_argument, NULL, 'f'}, {"overwrite", no_argument, NULL, 'o'},
        {"no-overwrite", no_argument, NULL, 'n'}, {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "+:f:on", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': cli->load_path = optarg; break;
        case 'o':
        case 'n':
            if (cli->load_mode != LOAD_EMPTY)
                return usage_error("load: give --overwrite or --no-overwrite, not both", NULL);
            cli->load_mode = c == 'o' ? LOAD_OVERWRITE : LOAD_KEEP;
            break;
        case ':': return usage_error("load: option needs an argument", argv[optind - 1]);
        default: return usage_error("load: unknown option", argv[optind - 1]);
        }
    }
    return -1;
}

/* Prints a dump_reader failure: "kv: NAME: line N: what" (exit 2) for bad input,
 * "kv: NAME: what" (exit 3) when reading failed. */
static int load_error(const struct cli *cli, const dump_reader *r, int rc)
{
    if (rc == DUMP_ERR_INPUT) {
        fprintf(stderr, "kv: %s: line %" PRIu64 ": %s\n", cli->load_name, r->line, r->err);
        return EXIT_USAGE;
    }
    fprintf(stderr, "kv: %s: %s\n", cli->load_name, r->err);
    return EXIT_STORE;
}

/* Copies in to an unlinked temporary file and returns it rewound (NULL after a
 * message). */
static FILE *spool(const struct cli *cli, FILE *in)
{
    const char *tmp = getenv("TMPDIR");
    char path[4096], buf[64 * 1024];
    size_t n;
    snprintf(path, sizeof path, "%s/kv-load-XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    int fd = mkstemp(path);
    FILE *out = fd >= 0 ? fdopen(fd, "w+") : NULL;
    if (out == NULL) {
        fprintf(stderr, "kv: %s: making a temporary copy in %s: %s\n", cli->load_name, path,
                strerror(errno));
        if (fd >= 0)
            close(fd), unlink(path);
        return NULL;
    }
    unlink(path);
    errno = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            break;
    if (ferror(in) || ferror(out) || fflush(out) != 0 || fseeko(out, 0, SEEK_SET) != 0) {
        fprintf(stderr, "kv: %s: making a temporary copy in %s: %s\n", cli->load_name,
                ferror(in) ? "(reading)" : path, strerror(errno ? errno : EIO));
        fclose(out);
        return NULL;
    }
    return out;
}

/* Opens the input (-f FILE or stdin) so that it can be read twice: a regular file
 * is read where it stands and sought back; anything else is spooled first. */
static int open_input(struct cli *cli)
{
    struct stat st;
    FILE *in = stdin;
    cli->load_name = cli->load_path != NULL ? cli->load_path : "<stdin>";
    if (cli->load_path != NULL && (in = fopen(cli->load_path, "r")) == NULL)
        return io_error(cli->load_path, errno);
    if (fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode)
        && (cli->load_start = ftello(in)) >= 0) {
        cli->load_in = in;
        return EXIT_DONE;
    }
    cli->load_start = 0;
    cli->load_in = spool(cli, in);
    if (in != stdin)
        fclose(in);
    return cli->load_in != NULL ? EXIT_DONE : EXIT_STORE;
}

/* The first reading: every line checked, nothing kept. Takes the dump's
 * compression= unless --compression was given, and refuses a --keys-only dump. */
static int check_dump(struct cli *cli)
{
    dump_reader r;
    int rc = dump_reader_init(&r, cli->load_in);

    if (rc == 0)
        rc = dump_read_header(&r);
    while (rc == 0 && (rc = dump_read_record(&r)) == 1)
        rc = 0;
    int code = rc == 0 ? EXIT_DONE : load_error(cli, &r, rc);
    if (code == EXIT_DONE && r.hdr.content == DUMP_KEYS) {
        fprintf(stderr, "kv: %s: content=keys: a --keys-only dump holds no values; there is "
                "nothing to load\n", cli->load_name);
        code = EXIT_USAGE;
    }
    if (code == EXIT_DONE && !cli->compression_set)
        cli->opts.compression = r.hdr.compression;
    dump_reader_free(&r);
    if (code == EXIT_DONE && fseeko(cli->load_in, cli->load_start, SEEK_SET) != 0)
        code = io_error(cli->load_name, errno);
    return code;
}

/* What the second reading did. */
struct load_count {
    uint64_t written; /* keys put */
    uint64_t kept;    /* keys left as they were (--no-overwrite) */
};

/* Adds the record r holds to b unless --no-overwrite finds the key in the store.
 * Returns EXIT_DONE or a printed error's exit code. */
static int load_record(struct cli *cli, kv_db *db, const dump_reader *r, kv_batch *b,
                       struct load_count *n)
{
    int rc;
    if (cli->load_mode == LOAD_KEEP) {
        void *v;
        size_t vl;
        rc = kv_get(db, r->key, r->klen, &v, &vl);
        kv_free(v);
        if (rc == KV_OK) {
            n->kept++;
            return EXIT_DONE;
        }
        if (rc != KV_NOTFOUND)
            return store_error(cli->dir, rc);
    }
    if ((rc = kv_batch_put(b, r->key, r->klen, r->val, r->vlen)) != KV_OK)
        return store_error(cli->dir, rc);
    n->written++;
    return EXIT_DONE;
}

/* The second reading: the checked input again, written in batches. */
static int write_dump(struct cli *cli, kv_db *db, kv_batch *b, struct load_count *n)
{
    dump_reader r;
    size_t bytes = 0;
    int code = EXIT_DONE, rc = dump_reader_init(&r, cli->load_in);

    if (rc == 0)
        rc = dump_read_header(&r);
    while (rc == 0 && code == EXIT_DONE && (rc = dump_read_record(&r)) == 1) {
        rc = 0;
        code = load_record(cli, db, &r, b, n);
        bytes += 20 + r.klen + r.vlen;
        if (code == EXIT_DONE && bytes >= LOAD_BATCH_BYTES) {
            int wrc = kv_write(db, b);
            code = wrc == KV_OK ? EXIT_DONE : store_error(cli->dir, wrc);
            kv_batch_clear(b);
            bytes = 0;
        }
    }
    if (rc < 0) { /* it passed the first reading: the input changed under us */
        load_error(cli, &r, rc);
        fprintf(stderr, "kv: %s: the input changed after it was checked; %" PRIu64 " keys "
                "were written before this line\n", cli->load_name, n->written);
        code = EXIT_STORE;
    }
    dump_reader_free(&r);
    return code;
}

/* Without --overwrite or --no-overwrite, a store that holds keys is refused. */
static int refuse_nonempty(const struct cli *cli, uint64_t keys)
{
    fprintf(stderr, "kv: %s: the store already holds %" PRIu64 " keys; nothing loaded: "
            "give --overwrite (the dump's values replace the store's) or --no-overwrite "
            "(keys already in the store are kept)\n", cli->dir, keys);
    return EXIT_USAGE;
}

/* Before the writer's open (which writes its pid to LOCK, and may cut a torn tail):
 * a store that holds keys is refused through a read-only handle, which changes no
 * byte. A directory that holds no store is left to the writer's open. */
static int precheck_store(const struct cli *cli)
{
    kv_options o = cli->opts;
    kv_db *db;
    kv_stats st;
    o.create = 0;
    o.read_only = 1;
    if (cli->load_mode != LOAD_EMPTY || kv_open(cli->dir, &o, &db) != KV_OK)
        return EXIT_DONE;
    int rc = kv_stat(db, &st);
    kv_close(db);
    return rc == KV_OK && st.keys > 0 ? refuse_nonempty(cli, st.keys) : EXIT_DONE;
}

/* load: the input was checked by check_input (before the store was opened). */
static int cmd_load(struct cli *cli, kv_db *db)
{
    struct load_count n = {0, 0};
    kv_stats st;
    int rc = kv_stat(db, &st);

    if (rc != KV_OK)
        return store_error(cli->dir, rc);
    if (st.keys > 0 && cli->load_mode == LOAD_EMPTY) /* written since precheck_store */
        return refuse_nonempty(cli, st.keys);
    kv_batch *b = kv_batch_new();
    if (b == NULL)
        return io_error("load", ENOMEM);
    int code = write_dump(cli, db, b, &n);
    if (code == EXIT_DONE && (rc = kv_write(db, b)) == KV_OK)
        rc = kv_sync(db);
    if (code == EXIT_DONE && rc != KV_OK)
        code = store_error(cli->dir, rc);
    kv_batch_free(b);
    if (code == EXIT_DONE)
        printf("kv: %s: loaded %" PRIu64 " keys from %s: %" PRIu64 " written, %" PRIu64
               " kept as they were\n", cli->dir, n.written + n.kept, cli->load_name, n.written,
               n.kept);
    return code == EXIT_DONE ? finish_stdout() : code;
}

static const struct command commands[] = {
    {"put", 2, "KEY VALUE or KEY -", 1, 0, cmd_put, NULL},
    {"get", 1, "KEY", 0, 1, cmd_get, NULL},
    {"del", 1, "KEY", 0, 0, cmd_del, NULL},
    {"keys", 0, "nothing", 0, 1, cmd_keys, NULL},
    {"scan", 0, "no operand (--prefix P is an option)", 0, 1, cmd_scan, scan_options},
    {"load", 0, "no operand (the dump is read from stdin or -f FILE)", 1, 0, cmd_load,
     load_options},
    {"stats", 0, "nothing", 0, 1, cmd_stats, stats_options},
};

/* ---------------------------------------------------------------------------------
 * 7. Argument parsing and main
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
    static const char *const compressions[] = {"none", "lz4", NULL};
    static const int compression_codes[] = {KV_COMPRESS_NONE, KV_COMPRESS_LZ4};
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'}, {"sync", required_argument, NULL, 's'},
        {"io", required_argument, NULL, 'i'}, {"help", no_argument, NULL, 'h'},
        {"compression", required_argument, NULL, 'z'},
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
        case 'z':
            if ((i = choose(optarg, compressions)) < 0)
                return usage_error("--compression expects none or lz4", optarg);
            cli->opts.compression = compression_codes[i];
            cli->compression_set = 1;
            break;
        case 'h': fputs(usage_text, stdout); return finish_stdout();
        case 'V': printf("kv %s\n", KV_VERSION_STRING); return finish_stdout();
        case ':': return usage_error("option needs an argument", argv[optind - 1]);
        default: return usage_error("unknown option", argv[optind - 1]);
        }
    }
    return -1;
}

/* Finds the command at argv[optind], parses its own options (scan, load, stats)
 * and checks its operands. Returns -1 with *out set, or the exit code to leave with
 * (a usage error has been printed). */
static int find_command(int argc, char **argv, struct cli *cli, const struct command **out)
{
    if (optind >= argc)
        return usage_error("no command given", NULL);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const struct command *cmd = &commands[i];
        if (strcmp(argv[optind], cmd->name) != 0)
            continue;
        int nops = argc - optind - 1;
        char **ops = argv + optind + 1;
        if (cmd->options != NULL) {
            int sub_argc = argc - optind;
            char **sub_argv = argv + optind;
            optind = 0; /* glibc: start a fresh scan, of the command's arguments */
            int code = cmd->options(cli, sub_argc, sub_argv);
            if (code >= 0)
                return code;
            nops = sub_argc - optind;
            ops = sub_argv + optind;
        }
        if (nops != cmd->nargs) {
            fprintf(stderr, "kv: %s takes %s\n", cmd->name, cmd->operands);
            return usage_error(NULL, NULL);
        }
        cli->args = ops;
        *out = cmd;
        return -1;
    }
    return usage_error("unknown command", argv[optind]);
}

/* Checks the key (1..KV_MAX_KEY bytes) and, for put, gets the value from argv or
 * stdin; for load, checks the whole dump. All of it before the store is opened: bad
 * input is a usage error and never leaves a newly created, empty store behind. */
static int check_input(const struct command *cmd, struct cli *cli)
{
    size_t klen = cmd->nargs > 0 ? strlen(cli->args[0]) : 1;

    if (klen == 0)
        return usage_error("a key cannot be empty", NULL);
    if (klen > KV_MAX_KEY) {
        fprintf(stderr, "kv: key longer than %u bytes (KV_MAX_KEY)\n", KV_MAX_KEY);
        return EXIT_USAGE;
    }
    if (cmd->run == cmd_load) {
        int code = open_input(cli);
        if (code == EXIT_DONE)
            code = check_dump(cli);
        return code == EXIT_DONE ? precheck_store(cli) : code;
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
    const struct command *cmd = NULL;
    kv_db *db = NULL;
    int code;

    kv_options_init(&cli.opts);
    cli.dir = getenv("KV_DIR");
    if (cli.dir == NULL || cli.dir[0] == '\0')
        cli.dir = "./kv.db";
    if ((code = parse_options(argc, argv, &cli)) >= 0)
        return code;
    if ((code = find_command(argc, argv, &cli, &cmd)) < 0
        && (code = check_input(cmd, &cli)) == EXIT_DONE
        && (code = open_store(&cli, cmd, &db)) == EXIT_DONE)
        code = close_store(&cli, db, cmd->run(&cli, db));
    free(cli.stdin_buf);
    free(cli.prefix);
    if (cli.load_in != NULL && cli.load_in != stdin)
        fclose(cli.load_in);
    return code;
}
