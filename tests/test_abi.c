/*
 * test_abi.c — the "abi" suite: libkv.so's boundary and the growth guard of the two
 * public structs (kv.h, "The ABI").
 *
 * Sections:
 *   1. Exports: the functions nm -D lists for libkv.so are exactly the functions
 *      kv.h declares, each marked KV_API, and the library exports no data symbol
 *   2. A program built against an older kv.h: build/bin/kv-abi-old (tests/abi/)
 *      with its smaller kv_options and kv_stats, run against today's libkv.so
 *   3. Sizes in this process: kv_options_init and kv_open with a smaller
 *      struct_size (the missing fields keep their defaults, bytes past it are
 *      never read), kv_stat into a smaller kv_stats (never a byte past it), and
 *      the sizes no layout has, refused with KV_EINVAL and nothing written
 *   4. KV_VERSION_NUMBER
 *
 * KV_BIN is build/bin (or build/asan/bin): libkv.so is $KV_BIN/../libkv.so.
 * engine/kv.h is read from KV_SOURCE_DIR, which the Makefile defines for this file.
 */
#include "kvtest.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef KV_SOURCE_DIR
#error "KV_SOURCE_DIR (the source tree, for engine/kv.h) is defined by the Makefile"
#endif

#define MAX_NAMES 128
#define NAME_LEN 64

typedef struct name_set {
    char names[MAX_NAMES][NAME_LEN]; /* sorted by add order; compared as sets */
    int n;                           /* names in use */
} name_set;

static void set_add(name_set *s, const char *name, size_t len)
{
    KVT_CHECK_FATAL(s->n < MAX_NAMES && len < NAME_LEN, "too many or too long names (%.*s)",
                    (int)len, name);
    memcpy(s->names[s->n], name, len);
    s->names[s->n][len] = '\0';
    s->n++;
}

static int set_has(const name_set *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return 1;
    return 0;
}

static const char *kv_bin(void)
{
    const char *bin = getenv("KV_BIN");
    KVT_CHECK_FATAL(bin != NULL && bin[0] != '\0', "KV_BIN is not set (build/bin)");
    return bin;
}

/* ---------------------------------------------------------------------------------
 * 1. Exports
 * ------------------------------------------------------------------------------ */

/* Blanks comments (keeping newlines) so that names in them are not declarations. */
static void strip_comments(char *s)
{
    for (char *p = s; *p != '\0'; p++) {
        if (p[0] == '/' && p[1] == '*') {
            char *end = strstr(p + 2, "*/");
            KVT_CHECK_FATAL(end != NULL, "kv.h: a comment never ends");
            for (; p < end + 2; p++)
                if (*p != '\n')
                    *p = ' ';
            p--;
        } else if (p[0] == '/' && p[1] == '/') {
            for (; *p != '\0' && *p != '\n'; p++)
                *p = ' ';
            p--;
        }
    }
}

/* Blanks preprocessor lines (with their continuations) and whatever lies in an
 * #ifdef __cplusplus block (the extern "C" braces). */
static void strip_preprocessor(char *s)
{
    int in_cplusplus = 0, depth = 0;
    char *line = s;
    while (*line != '\0') {
        char *p = line, *end;
        while (*p == ' ' || *p == '\t')
            p++;
        int directive = *p == '#', cont = 0;
        end = line;
        do { /* a directive runs on across lines ending in a backslash */
            char *nl = strchr(end, '\n');
            char *stop = nl != NULL ? nl : end + strlen(end);
            cont = directive && stop > end && stop[-1] == '\\';
            end = nl != NULL ? nl + 1 : stop;
        } while (cont && *end != '\0');
        if (directive) {
            const char *d = p + 1;
            while (*d == ' ')
                d++;
            if (in_cplusplus) {
                if (strncmp(d, "if", 2) == 0)
                    depth++;
                else if (strncmp(d, "endif", 5) == 0 && depth-- == 0)
                    in_cplusplus = 0;
            } else if (strncmp(d, "ifdef __cplusplus", 17) == 0) {
                in_cplusplus = 1;
                depth = 0;
            }
        }
        if (directive || in_cplusplus)
            for (char *q = line; q < end; q++)
                if (*q != '\n')
                    *q = ' ';
        line = end;
    }
}

/* The functions kv.h declares: every declaration at file scope (outside braces)
 * that is not a typedef and has a parameter list; its name is the identifier
 * before the first '('. Each must carry KV_API. */
static void header_functions(name_set *out)
{
    char path[4096];
    size_t len;
    snprintf(path, sizeof path, "%s/engine/kv.h", KV_SOURCE_DIR);
    char *text = (char *)kvt_slurp(path, &len);
    text[len] = '\0';
    strip_comments(text);
    strip_preprocessor(text);

    int depth = 0;
    char *start = text;
    for (char *p = text; *p != '\0'; p++) {
        if (*p == '{')
            depth++;
        else if (*p == '}')
            depth--;
        if (*p != ';' || depth != 0)
            continue;
        char *decl = start, *paren;
        start = p + 1;
        while (isspace((unsigned char)*decl))
            decl++;
        paren = memchr(decl, '(', (size_t)(p - decl));
        if (strncmp(decl, "typedef", 7) == 0 || paren == NULL)
            continue;
        char *e = paren;
        while (e > decl && isspace((unsigned char)e[-1]))
            e--;
        char *b = e;
        while (b > decl && (isalnum((unsigned char)b[-1]) || b[-1] == '_'))
            b--;
        KVT_CHECK_FATAL(b < e, "kv.h: no name before '(' in \"%.*s\"", (int)(p - decl), decl);
        KVT_CHECK(strncmp(decl, "KV_API ", 7) == 0,
                  "kv.h declares %.*s without KV_API: libkv.so would not export it",
                  (int)(e - b), b);
        set_add(out, b, (size_t)(e - b));
    }
    free(text);
}

/* Runs nm -D --defined-only on libkv.so: its function symbols go to funcs, every
 * other defined symbol to other. */
static void library_exports(const char *lib, name_set *funcs, name_set *other)
{
    char cmd[4200];
    static char out[65536];
    snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s' 2>&1", lib);
    int st = kvt_run(cmd, out, sizeof out);
    KVT_CHECK_FATAL(st == 0, "%s: exit %d: %s", cmd, st, out);
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char addr[64], type[8], name[256];
        if (sscanf(line, "%63s %7s %255s", addr, type, name) != 3) {
            KVT_CHECK(0, "nm: a line that is not \"address type name\": %s", line);
            continue;
        }
        char *at = strchr(name, '@'); /* name@VERSION, if a version script is ever used */
        if (at != NULL)
            *at = '\0';
        int func = strchr("TtWi", type[0]) != NULL && type[1] == '\0';
        set_add(func ? funcs : other, name, strlen(name));
    }
}

static void test_exports(void)
{
    name_set *declared = calloc(1, sizeof *declared), *funcs = calloc(1, sizeof *funcs),
             *other = calloc(1, sizeof *other);
    char lib[4096];
    KVT_CHECK_FATAL(declared != NULL && funcs != NULL && other != NULL, "out of memory");
    snprintf(lib, sizeof lib, "%s/../libkv.so", kv_bin());

    header_functions(declared);
    library_exports(lib, funcs, other);
    KVT_CHECK(declared->n >= 20, "kv.h: found only %d function declarations", declared->n);
    for (int i = 0; i < declared->n; i++)
        KVT_CHECK(set_has(funcs, declared->names[i]),
                  "kv.h declares %s, which %s does not export", declared->names[i], lib);
    for (int i = 0; i < funcs->n; i++)
        KVT_CHECK(set_has(declared, funcs->names[i]),
                  "%s exports %s, which kv.h does not declare", lib, funcs->names[i]);
    for (int i = 0; i < other->n; i++)
        KVT_CHECK(0, "%s exports the data symbol %s", lib, other->names[i]);
    kvt_note("%d functions declared in kv.h, %d exported by libkv.so", declared->n,
             funcs->n);
    free(declared);
    free(funcs);
    free(other);
}

/* ---------------------------------------------------------------------------------
 * 2. A program built against an older kv.h
 * ------------------------------------------------------------------------------ */

static void test_old_program(void)
{
    char *dir = kvt_dir_new("abi-old");
    char cmd[8400], out[8192];
    snprintf(cmd, sizeof cmd, "'%s/kv-abi-old' '%s/store' 2>&1", kv_bin(), dir);
    int st = kvt_run(cmd, out, sizeof out);
    KVT_CHECK(st == 0 && strstr(out, "kv-abi-old: ok") != NULL, "%s: exit %d:\n%s", cmd, st,
              out);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '\n')
        out[--n] = '\0';
    kvt_note("%s", out);
}

/* ---------------------------------------------------------------------------------
 * 3. Sizes in this process
 * ------------------------------------------------------------------------------ */

/* A kv_options as a program built before compress_min_bytes would pass it. */
#define OLD_OPTIONS_SIZE offsetof(kv_options, compress_min_bytes)
/* A size below the first kv_options (which ended at compact_dead_ratio). */
#define TOO_SMALL_OPTIONS offsetof(kv_options, compact_dead_ratio)

static int all_bytes(const unsigned char *p, size_t n, unsigned char b)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != b)
            return 0;
    return 1;
}

static void test_options_init_size(void)
{
    unsigned char buf[sizeof(kv_options) + 64];
    kv_options *o = (kv_options *)(void *)buf;

    memset(buf, 0xa5, sizeof buf);
    kv_options_init(o);
    KVT_CHECK(o->struct_size == sizeof(kv_options), "struct_size %zu, want %zu",
              o->struct_size, sizeof(kv_options));
    KVT_CHECK(all_bytes(buf + sizeof(kv_options), 64, 0xa5),
              "kv_options_init wrote past sizeof(kv_options)");

    memset(buf, 0xa5, sizeof buf);
    kv_options_init_sized(o, OLD_OPTIONS_SIZE);
    KVT_CHECK(o->struct_size == OLD_OPTIONS_SIZE && o->create == 1 &&
              o->compact_bytes_per_sec == 64u << 20,
              "an old-sized kv_options_init: struct_size %zu create %d", o->struct_size,
              o->create);
    KVT_CHECK(all_bytes(buf + OLD_OPTIONS_SIZE, sizeof buf - OLD_OPTIONS_SIZE, 0xa5),
              "kv_options_init_sized(%zu) wrote past %zu bytes", OLD_OPTIONS_SIZE,
              OLD_OPTIONS_SIZE);

    memset(buf, 0xa5, sizeof buf);
    kv_options_init_sized(o, sizeof o->struct_size - 1);
    kv_options_init_sized(NULL, sizeof(kv_options));
    KVT_CHECK(all_bytes(buf, sizeof buf, 0xa5),
              "kv_options_init_sized with a size too small for struct_size wrote");
}

/* kv_open reads only struct_size bytes: a field past them keeps its default even
 * when the bytes there say otherwise. compress_min_bytes is past OLD_OPTIONS_SIZE;
 * its default, 64, leaves a 40-byte value uncompressed, while the 0 stored past
 * the caller's size would compress it. */
static void test_open_old_size(void)
{
    char *dir = kvt_dir_new("abi-opts");
    kv_options *o = malloc(sizeof *o);
    kv_db *db = NULL;
    uint8_t small[40], big[200];
    KVT_CHECK_FATAL(o != NULL, "out of memory");
    kvt_options(o, KV_SYNC_NONE, KV_IO_AUTO, 0);
    o->compression = KV_COMPRESS_LZ4;
    o->compress_min_bytes = 0; /* past the size: must not be read */
    o->struct_size = OLD_OPTIONS_SIZE;
    memset(small, 'x', sizeof small);
    memset(big, 'y', sizeof big);

    KVT_RC_FATAL(kvt_open(dir, o, &db), KV_OK);
    KVT_RC(kv_put(db, "small", 5, small, sizeof small), KV_OK);
    KVT_RC(kv_put(db, "big", 3, big, sizeof big), KV_OK);
    KVT_ASSERT_VALUE(db, "small", 5, small, sizeof small);
    KVT_ASSERT_VALUE(db, "big", 3, big, sizeof big);
    kv_stats st;
    KVT_RC_FATAL(kv_stat(db, &st), KV_OK);
    KVT_CHECK(st.compression == KV_COMPRESS_LZ4 && st.values_compressed == 1,
              "compression %d, values compressed %llu: want LZ4 and 1 (the 200-byte value; "
              "the 40-byte one is under the default compress_min_bytes)", st.compression,
              (unsigned long long)st.values_compressed);
    KVT_RC(kvt_close(db), KV_OK);

    /* The first layout's size is accepted; the options past it are defaults. */
    kvt_options(o, KV_SYNC_INTERVAL, KV_IO_AUTO, 0);
    o->struct_size = offsetof(kv_options, mmap_reads);
    db = NULL;
    KVT_RC_FATAL(kvt_open(dir, o, &db), KV_OK);
    KVT_RC_FATAL(kv_stat(db, &st), KV_OK);
    KVT_CHECK(st.sync == KV_SYNC_INTERVAL && st.keys == 2, "sync %d keys %llu", st.sync,
              (unsigned long long)st.keys);
    KVT_RC(kvt_close(db), KV_OK);
    free(o);
}

/* Sizes no kv_options has: KV_EINVAL naming struct_size, no handle, nothing made. */
static void test_open_bad_size(void)
{
    char *dir = kvt_dir_new("abi-badopts");
    char *store = kvt_path(dir, "store");
    const size_t bad[] = {0, 1, sizeof(size_t), TOO_SMALL_OPTIONS, sizeof(kv_options) + 8,
                          4096, (size_t)-1};
    kv_options o;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kv_db *db = (kv_db *)&o;
        char want[64];
        kv_options_init(&o);
        o.struct_size = bad[i];
        int rc = kv_open(store, &o, &db);
        KVT_CHECK(rc == KV_EINVAL && db == NULL, "struct_size %zu: kv_open %d (%s)", bad[i],
                  rc, kv_strerror(rc));
        snprintf(want, sizeof want, "options.struct_size %zu ", bad[i]);
        KVT_CHECK(strstr(kv_errmsg(), want) != NULL && strstr(kv_errmsg(), "kv_options_init"),
                  "struct_size %zu: message \"%s\"", bad[i], kv_errmsg());
    }
    /* Options a program filled by hand, without kv_options_init. */
    memset(&o, 0, sizeof o);
    o.create = 1;
    kv_db *db = NULL;
    KVT_RC(kv_open(store, &o, &db), KV_EINVAL);
    KVT_CHECK(strstr(kv_errmsg(), "struct_size 0") != NULL, "message \"%s\"", kv_errmsg());
    KVT_CHECK(kvt_dir_count(dir) == 0, "a refused kv_open created %s", store);
}

/* kv_stat writes exactly the size it is given, from the first kv_stats's (the
 * counters through recovery_cut_bytes) to today's; other sizes are refused and
 * nothing is written. */
static void test_stat_size(void)
{
    kv_db *db = NULL;
    kvt_open_mode(kvt_dir_new("abi-stat"), KV_SYNC_NONE, KV_IO_AUTO, 0, &db);
    KVT_CHECK_FATAL(db != NULL, "kv_open: %s", kv_errmsg());
    KVT_RC(kvt_put_str(db, "a", "1"), KV_OK);
    KVT_RC(kvt_put_str(db, "b", "2"), KV_OK);
    KVT_RC(kv_delete(db, "a", 1), KV_OK);

    const size_t good[] = {offsetof(kv_stats, recovery_hints),
                           offsetof(kv_stats, value_bytes_raw), sizeof(kv_stats)};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        size_t size = good[i];
        unsigned char *buf = malloc(size + 64);
        KVT_CHECK_FATAL(buf != NULL, "out of memory");
        memset(buf, 0xa5, size + 64);
        KVT_RC(kv_stat_sized(db, (kv_stats *)(void *)buf, size), KV_OK);
        KVT_CHECK(all_bytes(buf + size, 64, 0xa5), "kv_stat_sized(%zu) wrote past it", size);
        kv_stats st;
        memcpy(&st, buf, offsetof(kv_stats, recovery_hints));
        KVT_CHECK(st.keys == 1 && st.puts == 2 && st.deletes == 1,
                  "size %zu: keys %llu puts %llu deletes %llu", size,
                  (unsigned long long)st.keys, (unsigned long long)st.puts,
                  (unsigned long long)st.deletes);
        free(buf);
    }

    const size_t bad[] = {0, 1, offsetof(kv_stats, recovery_cut_bytes),
                          sizeof(kv_stats) + 8, (size_t)-1};
    unsigned char buf[sizeof(kv_stats) + 64];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(buf, 0xa5, sizeof buf);
        KVT_RC(kv_stat_sized(db, (kv_stats *)(void *)buf, bad[i]), KV_EINVAL);
        KVT_CHECK(all_bytes(buf, sizeof buf, 0xa5), "kv_stat_sized(%zu) wrote", bad[i]);
        KVT_CHECK(strstr(kv_errmsg(), "is not the size of a kv_stats") != NULL,
                  "size %zu: message \"%s\"", bad[i], kv_errmsg());
    }
    KVT_RC(kv_stat(db, (kv_stats *)NULL), KV_EINVAL);
}

/* ---------------------------------------------------------------------------------
 * 4. KV_VERSION_NUMBER
 * ------------------------------------------------------------------------------ */

static void test_version_number(void)
{
    char want[32];
#if KV_VERSION_NUMBER < 100
#error "KV_VERSION_NUMBER is not usable in #if"
#endif
    KVT_CHECK(KV_VERSION_NUMBER ==
                  KV_VERSION_MAJOR * 10000 + KV_VERSION_MINOR * 100 + KV_VERSION_PATCH,
              "KV_VERSION_NUMBER %d", KV_VERSION_NUMBER);
    KVT_CHECK(KV_VERSION_MINOR < 100 && KV_VERSION_PATCH < 100,
              "minor or patch above 99 do not fit KV_VERSION_NUMBER");
    snprintf(want, sizeof want, "%d.%d.%d", KV_VERSION_MAJOR, KV_VERSION_MINOR,
             KV_VERSION_PATCH);
    KVT_CHECK(strcmp(want, KV_VERSION_STRING) == 0 && strcmp(want, kv_version()) == 0,
              "KV_VERSION_STRING %s, kv_version() %s, numbers say %s", KV_VERSION_STRING,
              kv_version(), want);
}

void kvt_register_abi(void)
{
    static const kvt_test tests[] = {
        {"libkv.so exports exactly the functions of kv.h", test_exports},
        {"a program built against an older kv.h runs", test_old_program},
        {"kv_options_init writes only the size it is given", test_options_init_size},
        {"kv_open reads only struct_size bytes of the options", test_open_old_size},
        {"kv_open refuses a struct_size no kv_options has", test_open_bad_size},
        {"kv_stat writes only the size it is given", test_stat_size},
        {"KV_VERSION_NUMBER", test_version_number},
        {NULL, NULL},
    };
    kvt_add_suite("abi", tests);
}
