/*
 * kvdump.c — writes the live keys and values of a kv store as text that kv load
 * reads back (docs/FORMAT.md, "Dump format"; tools/dumpfmt.h); with --all, or given
 * a single file, lists every record on disk instead (tools/forensic.c).
 *
 *   kvdump [-p] [--keys-only] [--prefix P] DIR     (or -d DIR)
 *   kvdump --all [--json] [--prefix P] DIR
 *   kvdump [--json] [--prefix P] FILE              (a segment, WAL, hint, MANIFEST)
 *
 * The store is opened read-only: no lock is taken and no byte on disk is written,
 * so kvdump runs beside a live writer and dumps the state the store had when it
 * opened. The order is ascending byte order of the keys, so the same contents give
 * the same text whatever the store's history (which decides the index's own order).
 * Memory: the index, plus a copy of the keys to sort (the key and a 16-byte
 * reference each, and qsort's copy of the references: about the index's size
 * again); values are read one at a time, so a store of any size dumps without its
 * values being loaded.
 *
 * kvdump asks the tools' view of the handle (engine/fsck/peek.h) for two things the
 * public API does not offer: listing the keys without reading their values
 * (kv_foreach reads every value), and telling whether a value is stored
 * LZ4-compressed (for the compression= header line). Values themselves are read with kv_get, so every one
 * is checked (CRC, then LZ4 decoding) exactly as an application's read would be.
 *
 * Exit status: 0 done, 2 usage error or DIR is not a kv store (or of a newer
 * format; FILE is no kv file), 3 the store is damaged (the live dump reads only
 * what checks out) or an I/O call failed (reading it, writing stdout). Damage the
 * listing of --all shows is not an error: kvcheck judges it.
 *
 * Sections:
 *   1. Exit codes, usage, diagnostics
 *   2. The live dump: listing keys, compression, writing
 *   3. Argument parsing and main (which mode)
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/kv_int.h"
#include "fsck/peek.h"
#include "dumpfmt.h"
#include "forensic.h"
#include "format/format.h"
#include "kv.h"
#include "progress.h"

#include <sys/stat.h>

/* ---------------------------------------------------------------------------------
 * 1. Exit codes, usage, diagnostics
 * ------------------------------------------------------------------------------ */
enum {
    EXIT_DONE = 0,  /* the dump is complete on stdout */
    EXIT_USAGE = 2, /* bad command line, or not a kv store / newer format */
    EXIT_STORE = 3  /* the store is damaged, or reading it or writing stdout failed */
};

static const char usage_text[] =
    "usage: kvdump [OPTIONS] DIR\n"
    "       kvdump --all [--json] [--prefix P] DIR\n"
    "       kvdump [--json] [--prefix P] FILE\n"
    "Writes every live key and value of the kv store in DIR to stdout as text that\n"
    "'kv load' reads back. With --all, or given one FILE (a segment, WAL, hint or\n"
    "MANIFEST file), lists every record on disk instead: file, offset, sequence\n"
    "number, type, key, lengths, compression, checksum, live or dead, damage.\n"
    "Nothing on disk changes: files are opened read-only, no lock is taken.\n"
    "options:\n"
    "  -d, --dir DIR     the store (instead of the DIR operand)\n"
    "  -p, --printable   format=print: printable bytes as themselves, the rest as\n"
    "                    \\xHH (default: format=bytevalue, two hex digits a byte)\n"
    "  -k, --keys-only   keys only, no value lines (kv load refuses such a dump)\n"
    "  -P, --prefix P    only keys starting with P (\\\\ and \\xHH escapes allowed)\n"
    "  -a, --all         list every record of every file, in file order\n"
    "  -j, --json        with --all or FILE: one JSON object per line\n"
    "  -h, --help        print this help and exit\n"
    "  -V, --version     print the version and exit\n"
    "exit status: 0 done, 2 usage error or not a kv store,\n"
    "             3 store damaged or I/O error (message on stderr)\n";

/* What the command line asked for. */
struct args {
    const char *dir;      /* the store (or with a regular file, FILE) */
    int all;              /* --all */
    int json;             /* --json */
    int format;           /* DUMP_HEX or DUMP_PRINT */
    int keys_only;        /* --keys-only */
    int has_prefix;       /* --prefix given */
    uint8_t prefix[KV_MAX_KEY]; /* its bytes, unescaped */
    size_t prefix_len;
};

static int usage_error(const char *msg, const char *arg)
{
    tool_usage_error("kvdump", usage_text, msg, arg);
    return EXIT_USAGE;
}

/* Prints "kvdump: DIR: <kv_strerror>: <kv_errmsg>" and returns the exit code for rc:
 * a directory that is no kv store (KV_EINVAL) or a newer one (KV_EVERSION) is 2,
 * anything else 3. */
static int store_error(const char *dir, int rc)
{
    tool_store_error("kvdump", dir, rc);
    return rc == KV_EINVAL || rc == KV_EVERSION ? EXIT_USAGE : EXIT_STORE;
}

static int io_error(const char *what, int err)
{
    fprintf(stderr, "kvdump: %s: %s\n", what, strerror(err));
    return EXIT_STORE;
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
 * 2. The live dump
 * ------------------------------------------------------------------------------ */

/* peek_keys callback: copies each live key that has the prefix. */
struct collect {
    dump_keys *kl;
    const struct args *a;
};

static int collect_key(void *arg, const uint8_t *key, size_t klen)
{
    struct collect *c = arg;
    if (c->a->has_prefix && !dump_has_prefix(key, klen, c->a->prefix, c->a->prefix_len))
        return 0;
    return dump_keys_add(c->kl, key, klen) == 0 ? 0 : KV_ENOMEM;
}

/* Lists the live keys (with the prefix) in dump order, without reading a value. */
static int list_keys(kv_db *db, const struct args *a, dump_keys *kl)
{
    struct collect c = {kl, a};
    if (peek_keys(db, collect_key, &c) != 0)
        return err_set(KV_ENOMEM, "listing the keys: out of memory after %zu keys", kl->n);
    dump_keys_sort(kl);
    return KV_OK;
}

/* compression= of the header: lz4 when any dumped value is stored compressed. kv
 * keeps no options in the store (each kv_open chooses), so this is the fact a load
 * needs to store the values the same way. Stops at the first compressed value. */
static int dump_compression(kv_db *db, const dump_keys *kl, int *compression)
{
    int lz4 = 0, rc = KV_OK;
    for (size_t i = 0; i < kl->n && !lz4 && rc == KV_OK; i++)
        rc = peek_stored_lz4(db, dump_keys_at(kl, i), kl->refs[i].klen, &lz4);
    *compression = lz4 ? KV_COMPRESS_LZ4 : KV_COMPRESS_NONE;
    return rc;
}

/* Writes one record: the key line and (unless --keys-only) the value line. Returns
 * KV_OK, kv_get's status, or WRITE_FAILED when stdout failed. */
#define WRITE_FAILED 1000
static int write_record(kv_db *db, const struct args *a, const uint8_t *k, size_t klen)
{
    void *v;
    size_t vlen;
    dump_write_line(stdout, a->format, k, klen);
    if (!a->keys_only) {
        int rc = kv_get(db, k, klen, &v, &vlen);
        if (rc == KV_NOTFOUND)
            rc = err_set(KV_EIO, "a listed key vanished from a read-only handle");
        if (rc != KV_OK)
            return rc;
        dump_write_line(stdout, a->format, v, vlen);
        kv_free(v);
    }
    return ferror(stdout) ? WRITE_FAILED : KV_OK;
}

/* Writes the header, every record of kl, and DATA=END. A failure stops the dump
 * before DATA=END, so kv load refuses what was written. */
static int write_dump(kv_db *db, const struct args *a, const dump_keys *kl, int compression)
{
    dump_header h = {.version = DUMP_VERSION, .format = a->format,
                     .compression = compression,
                     .content = a->keys_only ? DUMP_KEYS : DUMP_PAIRS,
                     .has_keys = 1, .keys = kl->n, .has_prefix = a->has_prefix,
                     .prefix = a->prefix, .prefix_len = a->prefix_len};
    progress line; /* on a terminal, while stdout goes elsewhere */
    int rc = KV_OK;

    progress_init(&line, "kvdump", !isatty(STDOUT_FILENO));
    dump_write_header(stdout, &h);
    for (size_t i = 0; i < kl->n && rc == KV_OK; i++) {
        if ((i & 1023) == 0)
            progress_draw(&line, "%zu of %zu keys (%3.0f%%)", i, kl->n,
                          100.0 * (double)i / (double)kl->n);
        rc = write_record(db, a, dump_keys_at(kl, i), kl->refs[i].klen);
    }
    progress_clear(&line);
    if (rc == WRITE_FAILED)
        return finish_stdout();
    if (rc != KV_OK)
        return store_error(a->dir, rc);
    dump_write_end(stdout);
    return finish_stdout();
}

static int dump_store(const struct args *a)
{
    kv_options o;
    kv_db *db;
    dump_keys kl = {0};
    int compression = KV_COMPRESS_NONE;

    kv_options_init(&o);
    o.create = 0;
    o.read_only = 1;
    o.auto_compact = 0;
    int rc = kv_open(a->dir, &o, &db);
    if (rc != KV_OK)
        return store_error(a->dir, rc);
    rc = list_keys(db, a, &kl);
    if (rc == KV_OK)
        rc = dump_compression(db, &kl, &compression);
    int code = rc == KV_OK ? write_dump(db, a, &kl, compression) : store_error(a->dir, rc);
    dump_keys_free(&kl);
    rc = kv_close(db);
    if (rc != KV_OK && code == EXIT_DONE)
        code = store_error(a->dir, rc);
    return code;
}

/* ---------------------------------------------------------------------------------
 * 3. Argument parsing and main
 * ------------------------------------------------------------------------------ */

/* Parses the command line into *a. Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'},    {"printable", no_argument, NULL, 'p'},
        {"keys-only", no_argument, NULL, 'k'},    {"prefix", required_argument, NULL, 'P'},
        {"all", no_argument, NULL, 'a'},          {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *why;
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":d:pkP:ajhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': a->dir = optarg; break;
        case 'p': a->format = DUMP_PRINT; break;
        case 'k': a->keys_only = 1; break;
        case 'a': a->all = 1; break;
        case 'j': a->json = 1; break;
        case 'P':
            why = dump_decode(DUMP_PRINT, optarg, strlen(optarg), a->prefix, KV_MAX_KEY,
                              &a->prefix_len);
            if (why != NULL) {
                fprintf(stderr, "kvdump: --prefix %s: %s\n", optarg, why);
                return EXIT_USAGE;
            }
            a->has_prefix = 1;
            break;
        case 'h': fputs(usage_text, stdout); return finish_stdout();
        case 'V': printf("kvdump (kv) %s\n", kv_version()); return finish_stdout();
        case ':': return usage_error("option needs an argument", argv[optind - 1]);
        default: return usage_error("unknown option", argv[optind - 1]);
        }
    }
    if (a->dir != NULL && optind < argc)
        return usage_error("give the store with -d or as DIR, not both", argv[optind]);
    if (a->dir == NULL && optind < argc)
        a->dir = argv[optind++];
    if (a->dir == NULL)
        return usage_error("no store given (DIR)", NULL);
    if (optind < argc)
        return usage_error("one DIR only", argv[optind]);
    return -1;
}

/* The forensic listing: --all DIR, or a single FILE. -p and --keys-only shape the
 * live dump only. */
static int list_all(const struct args *a, int is_file)
{
    forensic_opts fo = {a->json, a->has_prefix, a->prefix, a->prefix_len};
    if (a->format == DUMP_PRINT || a->keys_only)
        return usage_error("-p and --keys-only shape the live dump, not the listing of "
                           "--all or of a FILE", NULL);
    return is_file ? forensic_file(a->dir, &fo) : forensic_dir(a->dir, &fo);
}

int main(int argc, char **argv)
{
    static struct args a; /* holds a KV_MAX_KEY prefix: not on the stack */
    struct stat st;
    int code;

    a.format = DUMP_HEX;
    if ((code = parse_args(argc, argv, &a)) >= 0)
        return code;
    int is_file = stat(a.dir, &st) == 0 && S_ISREG(st.st_mode);
    if (is_file || a.all)
        return list_all(&a, is_file);
    if (a.json)
        return usage_error("--json goes with --all or a FILE", NULL);
    return dump_store(&a);
}
