/*
 * open_fuzzer.c — whole-store recovery (kv_open) on a directory of damaged files.
 *
 * Invariant: whatever a store directory holds, recovery ends cleanly and keeps its
 * promises (DESIGN.md, invariants 4 and 8):
 *   - kv_open returns KV_OK, KV_ECORRUPT or KV_EVERSION (KV_EINVAL only for a
 *     read-only open of a directory with no MANIFEST, which holds no store), never
 *     crashes, hangs or leaks (make fuzz runs with ASan's leak checker and a timeout);
 *   - a refused open leaves the MANIFEST, segment and WAL files as they were:
 *     nothing is cut on the way to an error (a writer may have rewritten the bad
 *     hint of a sealed segment it checked whole: derived data, it only spares the
 *     next open a scan); a read-only open changes no file at all;
 *   - after KV_OK, kv_foreach ends in KV_OK or KV_ECORRUPT (a hint may point at
 *     damage; every get checks what it reads), and kv_close in KV_OK;
 *   - a writer that opened a store can write to it: a put succeeds, and the next
 *     open finds the store clean (nothing to cut), the put in it, and exactly the
 *     same other keys and values as the first open did;
 *   - a read-only open changes nothing, so opening again gives the same result.
 *
 * Input layout: byte 0 holds options (bit 0 read-only, bit 1 pread instead of
 * mmap, bit 2 recompute every CRC of every file, as fuzz.h explains), then up to
 * 8 files, each [u8 name][u16 length, little-endian][bytes]. The name byte selects
 * the kind (bits 0-1: MANIFEST, NNNNNN.seg, NNNNNN.wal, NNNNNN.hint) and the number
 * (bits 2-4: 1..8); a later file of the same name replaces an earlier one. The
 * files go to a fresh directory under $KV_FUZZ_TMPDIR, else /dev/shm (tmpfs: fsync
 * costs nothing), else $TMPDIR or /tmp, removed after each input. With
 * KV_FUZZ_KEEP=1 it is kept, and a copy as written is made beside it (…-input): to
 * look at what one input does, run the replay program on it with that set.
 */
#include "fuzz.h"

#include "base/crc.h"
#include "kv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OPEN_MAX_FILES 8
#define OPT_READ_ONLY 0x01
#define OPT_PREAD 0x02
#define OPT_FIX_CRC 0x04

static const char PROBE_KEY[] = "\x01kv-fuzz-probe";
static const char PROBE_VAL[] = "written after recovery";

typedef struct store_file {
    char name[24];
    int kind;       /* 0 MANIFEST, 1 segment, 2 WAL, 3 hint */
    uint8_t *bytes; /* owned copy */
    size_t len;
} store_file;

typedef struct store_input {
    int opts;
    int nfiles;
    store_file f[OPEN_MAX_FILES];
} store_input;

/* ---- the input and the directory --------------------------------------------------- */

static void input_read(store_input *in, const uint8_t *data, size_t size)
{
    static const char *const ext[] = {"", ".seg", ".wal", ".hint"};
    fuzz_reader r = {data, size};
    memset(in, 0, sizeof *in);
    in->opts = fuzz_u8(&r);
    while (r.left > 0 && in->nfiles < OPEN_MAX_FILES) {
        uint8_t sel = fuzz_u8(&r);
        size_t len, got;
        len = fuzz_u16(&r);
        const uint8_t *p = fuzz_bytes(&r, len, &got);
        char name[24];
        int kind = sel & 3;
        if (kind == 0)
            snprintf(name, sizeof name, "MANIFEST");
        else
            snprintf(name, sizeof name, "%06u%s", 1u + ((sel >> 2) & 7u), ext[kind]);
        int i = 0;
        while (i < in->nfiles && strcmp(in->f[i].name, name) != 0)
            i++;
        if (i == in->nfiles)
            in->nfiles++;
        else
            free(in->f[i].bytes);
        store_file *f = &in->f[i];
        snprintf(f->name, sizeof f->name, "%s", name);
        f->kind = kind;
        f->len = got;
        f->bytes = malloc(got ? got : 1);
        FUZZ_CHECK(f->bytes != NULL, "out of memory");
        if (got > 0)
            memcpy(f->bytes, p, got);
        if (in->opts & OPT_FIX_CRC) {
            if (kind == 0)
                fuzz_fix_manifest(f->bytes, got);
            else if (kind == 3)
                fuzz_fix_hint(f->bytes, got);
            else
                fuzz_fix_record_file(f->bytes, got);
        }
    }
}

static void input_free(store_input *in)
{
    for (int i = 0; i < in->nfiles; i++)
        free(in->f[i].bytes);
}

static const char *tmp_base(void)
{
    const char *b = getenv("KV_FUZZ_TMPDIR");
    if (b != NULL && b[0] != '\0')
        return b;
    if (access("/dev/shm", W_OK) == 0)
        return "/dev/shm";
    b = getenv("TMPDIR");
    return b != NULL && b[0] != '\0' ? b : "/tmp";
}

static void join(char *path, size_t n, const char *dir, const char *name)
{
    int r = snprintf(path, n, "%s/%s", dir, name);
    FUZZ_CHECK(r > 0 && (size_t)r < n, "path %s/%s too long", dir, name);
}

static void write_file(const char *dir, const store_file *f)
{
    char path[512];
    join(path, sizeof path, dir, f->name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    FUZZ_CHECK(fd >= 0, "creating %s: %s", path, strerror(errno));
    FUZZ_CHECK(f->len == 0 || write(fd, f->bytes, f->len) == (ssize_t)f->len, "writing %s", path);
    close(fd);
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    if (d != NULL) {
        while ((de = readdir(d)) != NULL) {
            char path[512];
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            join(path, sizeof path, dir, de->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Sum over the directory's files but LOCK (and hints, with skip_hints) of a hash of
 * name, size and content: equal before and after means nothing was changed. */
static uint64_t dir_digest(const char *dir, int skip_hints)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    uint64_t sum = 0;
    FUZZ_CHECK(d != NULL, "opendir %s", dir);
    while ((de = readdir(d)) != NULL) {
        char path[512];
        struct stat st;
        size_t nl = strlen(de->d_name);
        if (de->d_name[0] == '.' || strcmp(de->d_name, "LOCK") == 0
            || (skip_hints && nl > 5 && strcmp(de->d_name + nl - 5, ".hint") == 0))
            continue;
        join(path, sizeof path, dir, de->d_name);
        FUZZ_CHECK(stat(path, &st) == 0, "stat %s", path);
        uint32_t crc = kv_crc32c(de->d_name, strlen(de->d_name));
        uint8_t *buf = malloc((size_t)st.st_size + 1);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        FUZZ_CHECK(buf != NULL && fd >= 0, "reading %s", path);
        ssize_t n = read(fd, buf, (size_t)st.st_size);
        close(fd);
        crc = kv_crc32c_extend(crc, buf, n > 0 ? (size_t)n : 0);
        free(buf);
        sum += ((uint64_t)crc << 32 | (uint64_t)st.st_size) * 0x9e3779b97f4a7c15ull;
    }
    closedir(d);
    return sum;
}

/* ---- what a store holds -------------------------------------------------------------- */

typedef struct contents {
    uint64_t keys;   /* pairs visited, the probe aside */
    uint64_t digest; /* order-independent sum of their hashes */
    int probe_check; /* the probe key must hold PROBE_VAL (after our put) */
} contents;

static int visit(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
    contents *c = arg;
    if (kl == sizeof PROBE_KEY - 1 && memcmp(k, PROBE_KEY, kl) == 0) {
        FUZZ_CHECK(!c->probe_check || (vl == sizeof PROBE_VAL - 1
                                       && memcmp(v, PROBE_VAL, vl) == 0),
                   "the probe key holds another value");
        return 0;
    }
    uint32_t h = kv_crc32c_extend(kv_crc32c(k, kl), v, vl);
    c->keys++;
    c->digest += ((uint64_t)h << 32 | (uint64_t)(kl * 65599u + vl)) * 0xbf58476d1ce4e5b9ull;
    return 0;
}

static int read_all(kv_db *db, contents *c, int probe_check)
{
    memset(c, 0, sizeof *c);
    c->probe_check = probe_check;
    int rc = kv_foreach(db, visit, c);
    FUZZ_CHECK(rc == KV_OK || rc == KV_ECORRUPT, "kv_foreach: %d (%s): %s", rc,
               kv_strerror(rc), kv_errmsg());
    return rc;
}

/* ---- the property ---------------------------------------------------------------- */

static int open_store(const char *dir, int opts, kv_db **db)
{
    kv_options o;
    kv_options_init(&o);
    o.read_only = (opts & OPT_READ_ONLY) != 0;
    o.create = !o.read_only;
    o.mmap_reads = !(opts & OPT_PREAD);
    o.sync = KV_SYNC_NONE;
    o.io = KV_IO_PSYNC;
    o.segment_bytes = 4096; /* the probe put may roll the segment */
    return kv_open(dir, &o, db);
}

static void check_store(const char *dir, const store_input *in)
{
    kv_db *db = NULL;
    int has_manifest = 0, ro = (in->opts & OPT_READ_ONLY) != 0;
    for (int i = 0; i < in->nfiles; i++)
        has_manifest |= in->f[i].kind == 0;
    uint64_t before = dir_digest(dir, 0), before_nohint = dir_digest(dir, 1);
    int rc = open_store(dir, in->opts, &db);
    FUZZ_CHECK(rc == KV_OK || rc == KV_ECORRUPT || rc == KV_EVERSION
                   || (rc == KV_EINVAL && ro && !has_manifest),
               "kv_open: %d (%s): %s", rc, kv_strerror(rc), kv_errmsg());
    if (rc != KV_OK) {
        FUZZ_CHECK(db == NULL, "a failed kv_open set *out");
        FUZZ_CHECK(ro ? dir_digest(dir, 0) == before : dir_digest(dir, 1) == before_nohint,
                   "kv_open failed (%s) but changed files", kv_errmsg());
        return;
    }
    contents first, second;
    kv_stats st;
    int frc = read_all(db, &first, 0);
    FUZZ_CHECK(kv_stat(db, &st) == KV_OK, "kv_stat");
    if (!ro)
        FUZZ_CHECK(kv_put(db, PROBE_KEY, sizeof PROBE_KEY - 1, PROBE_VAL, sizeof PROBE_VAL - 1)
                       == KV_OK, "a put after recovery: %s", kv_errmsg());
    rc = kv_close(db);
    FUZZ_CHECK(rc == KV_OK, "kv_close: %d: %s", rc, kv_errmsg());
    if (ro)
        FUZZ_CHECK(dir_digest(dir, 0) == before, "a read-only open changed files");

    rc = open_store(dir, in->opts, &db);
    FUZZ_CHECK(rc == KV_OK, "reopening a store that opened: %d (%s): %s", rc, kv_strerror(rc),
               kv_errmsg());
    FUZZ_CHECK(kv_stat(db, &st) == KV_OK, "kv_stat");
    if (!ro)
        FUZZ_CHECK(st.recovery_cut_bytes == 0, "the store was closed cleanly, yet reopening cut "
                   "%llu bytes", (unsigned long long)st.recovery_cut_bytes);
    int frc2 = read_all(db, &second, !ro);
    if (frc == KV_OK) {
        FUZZ_CHECK(frc2 == KV_OK, "read everything, then after reopening: %s", kv_errmsg());
        FUZZ_CHECK(second.keys == first.keys && second.digest == first.digest,
                   "reopening changed the contents: %llu keys, then %llu",
                   (unsigned long long)first.keys, (unsigned long long)second.keys);
    }
    if (!ro) {
        void *v = NULL;
        size_t vl = 0;
        rc = kv_get(db, PROBE_KEY, sizeof PROBE_KEY - 1, &v, &vl);
        FUZZ_CHECK(rc == KV_OK && vl == sizeof PROBE_VAL - 1 && memcmp(v, PROBE_VAL, vl) == 0,
                   "the put after recovery is lost: %d (%s): %s", rc, kv_strerror(rc),
                   kv_errmsg());
        kv_free(v);
    }
    FUZZ_CHECK(kv_close(db) == KV_OK, "kv_close: %s", kv_errmsg());
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    store_input in;
    char dir[512];
    input_read(&in, data, size);
    snprintf(dir, sizeof dir, "%s/kv-open-fuzz-XXXXXX", tmp_base());
    FUZZ_CHECK(mkdtemp(dir) != NULL, "mkdtemp %s: %s", dir, strerror(errno));
    for (int i = 0; i < in.nfiles; i++)
        write_file(dir, &in.f[i]);
    const char *keep = getenv("KV_FUZZ_KEEP");
    if (keep != NULL && strcmp(keep, "1") == 0) {
        char copy[600];
        snprintf(copy, sizeof copy, "%s-input", dir);
        FUZZ_CHECK(mkdir(copy, 0755) == 0, "mkdir %s", copy);
        for (int i = 0; i < in.nfiles; i++)
            write_file(copy, &in.f[i]);
        fprintf(stderr, "open_fuzzer: store in %s, as written in %s\n", dir, copy);
    }
    check_store(dir, &in);
    if (keep == NULL || strcmp(keep, "1") != 0)
        remove_dir(dir);
    input_free(&in);
    return 0;
}
