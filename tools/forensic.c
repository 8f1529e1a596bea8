/*
 * forensic.c — kvdump's forensic listing: every file of a store directory (or one
 * file outside any store) and every record in it, in file order, as it lies on
 * disk: tombstones, overwritten records, WAL copies, leftovers of interrupted steps
 * and damaged stretches included.
 *
 * The reading is engine/fsck/inspect.h's (it walks past damage, resynchronising at the
 * next entry that checks out, and decodes nothing itself); this file only prints.
 * Each thing found is one line: text "FILE WHAT name=value ..." (free text such as
 * a key or a reason last), or with --json one flat JSON object
 * {"what": ..., "file": ..., ...}. docs/man/kvdump.1 lists every field.
 *
 * Live or dead: in a directory, the store is also opened read-only (when it opens),
 * and a put record is "live" when its sequence number is the one the index holds
 * for its key, "dead" when an older one, "newer" when written after that open (a
 * writer beside us). Without a store (a single file, a store that does not open)
 * a put of a whole batch is "whole".
 *
 * Nothing is written to disk: files are opened read-only and no lock is taken
 * (the read-only handle takes its reader lock, io/lock.h). Beside a live writer a
 * file listed in the directory may be gone when its turn comes (a roll removes a
 * WAL file, a compaction segments and hints, a MANIFEST.tmp is renamed): that is
 * the store moving on, told as a note on stderr, never an error.
 *
 * Sections:
 *   1. Output: objects as text lines or JSON
 *   2. Segments and WAL files: records, damage, totals
 *   3. Hint files, the MANIFEST, LOCK
 *   4. One file; a directory; a single file
 */
#include "forensic.h"

#include "fsck/peek.h"
#include "dumpfmt.h"
#include "format/format.h"
#include "fsck/inspect.h"
#include "json.h"
#include "kv.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { F_DONE = 0, F_USAGE = 2, F_STORE = 3 };

/* A callback's return that stops a walk: writing stdout failed. */
#define STOP_STDOUT 1000

/* What the listing of one directory or file needs. */
typedef struct ctx {
    const forensic_opts *o;
    kv_io *io;            /* read-only access (psync) */
    int dirfd;            /* the directory, or AT_FDCWD for a single file */
    const char *dir;      /* the directory listed (NULL for a single file) */
    const char *file;     /* the file being listed, as printed */
    kv_db *db;            /* a read-only handle of the store, or NULL */
    uint64_t next_seq;    /* its next_seq: records at or above it are newer */
} ctx;

/* ---------------------------------------------------------------------------------
 * 1. Output
 * ------------------------------------------------------------------------------ */

static void obj_begin(const ctx *c, const char *what)
{
    if (c->o->json) {
        printf("{\"what\": \"%s\", \"file\": ", what);
        jsonw_cstring(stdout, c->file);
    } else {
        printf("%s %s", c->file, what);
    }
}

static void f_u64(const ctx *c, const char *name, uint64_t v)
{
    printf(c->o->json ? ", \"%s\": %" PRIu64 : " %s=%" PRIu64, name, v);
}

/* An offset: hexadecimal in text (as diagnostics print offsets), a number in JSON. */
static void f_off(const ctx *c, const char *name, uint64_t v)
{
    printf(c->o->json ? ", \"%s\": %" PRIu64 : " %s=0x%" PRIx64, name, v);
}

static void f_str(const ctx *c, const char *name, const char *v)
{
    if (c->o->json) {
        printf(", \"%s\": ", name);
        jsonw_cstring(stdout, v);
    } else {
        printf(" %s=%s", name, v);
    }
}

static void f_bool(const ctx *c, const char *name, int v)
{
    if (c->o->json)
        printf(", \"%s\": %s", name, v ? "true" : "false");
    else
        printf(" %s=%s", name, v ? "yes" : "no");
}

/* The key, print-escaped (kv keys' form); JSON adds key_hex. Last on a text line. */
static void f_key(const ctx *c, const uint8_t *k, size_t n)
{
    if (!c->o->json) {
        fputs(" key=", stdout);
        dump_encode(stdout, DUMP_PRINT, k, n);
        return;
    }
    fputs(", \"key\": ", stdout);
    dump_json_bytes(stdout, k, n);
    fputs(", \"key_hex\": \"", stdout);
    dump_encode(stdout, DUMP_HEX, k, n);
    putc('"', stdout);
}

/* Ends the object; returns STOP_STDOUT when stdout failed. */
static int obj_end(const ctx *c)
{
    fputs(c->o->json ? "}\n" : "\n", stdout);
    return ferror(stdout) ? STOP_STDOUT : 0;
}

/* A file of the directory listing that a writer removed before it was read: a note
 * on stderr, and the listing goes on. Returns F_DONE. */
static int vanished(const ctx *c, const char *name)
{
    fprintf(stderr, "kvdump: %s%s%s: note: removed since the directory was listed (a writer "
            "retired it): not listed\n", c->dir, c->dir[strlen(c->dir) - 1] == '/' ? "" : "/",
            name);
    return F_DONE;
}

static int want_key(const ctx *c, const uint8_t *k, size_t n)
{
    return !c->o->has_prefix || dump_has_prefix(k, n, c->o->prefix, c->o->prefix_len);
}

/* One word per kind and header status, for text fields. */
static const char *kind_word(int kind)
{
    static const char *const w[] = {"unknown", "segment", "wal", "hint", "hint-tmp",
                                    "manifest", "manifest-tmp", "lock"};
    return kind >= 0 && kind <= INSPECT_LOCK ? w[kind] : "unknown";
}

static const char *header_word(int status)
{
    static const char *const w[] = {"ok", "short", "magic", "crc", "newer", "version",
                                    "flags", "number", "none"};
    return status >= 0 && status <= INSPECT_HDR_NONE ? w[status] : "?";
}

static const char *op_word(int type)
{
    return type == KV_REC_PUT ? "put" : type == KV_REC_DEL ? "del" : "?";
}

/* ---------------------------------------------------------------------------------
 * 2. Segments and WAL files
 * ------------------------------------------------------------------------------ */

/* live, dead, newer, tombstone, whole (no store to ask) or damaged. */
static const char *record_state(const ctx *c, const inspect_rec *r)
{
    if (!r->whole)
        return "damaged";
    if (r->e.type == KV_REC_DEL)
        return "tombstone";
    if (c->db == NULL)
        return "whole";
    if (r->e.seq >= c->next_seq)
        return "newer";
    if (peek_is_newest(c->db, r->e.key, r->e.klen, r->e.seq))
        return "live";
    return "dead";
}

static int on_record(void *arg, const inspect_rec *r)
{
    const ctx *c = arg;
    const kv_entry *e = &r->e;
    int lz4 = (e->flags & KV_RECF_LZ4) != 0;
    if (!want_key(c, e->key, e->klen))
        return 0;
    obj_begin(c, "record");
    f_off(c, "off", r->off);
    f_str(c, "op", op_word(e->type));
    f_u64(c, "seq", e->seq);
    f_u64(c, "size", e->size);
    f_u64(c, "vlen", e->vlen);
    if (lz4 && e->vlen >= KV_LZ4_RAW_LEN)
        f_u64(c, "raw", kv_get32(e->val));
    f_str(c, "comp", lz4 ? "lz4" : "none");
    f_str(c, "crc", r->crc_ok ? "ok" : "bad");
    f_off(c, "batch", r->batch_off);
    f_u64(c, "index", r->batch_index);
    f_bool(c, "more", (e->flags & KV_RECF_BATCH) != 0);
    f_bool(c, "fence", (e->flags & KV_RECF_FENCE) != 0);
    f_str(c, "state", record_state(c, r));
    f_key(c, e->key, e->klen);
    return obj_end(c);
}

static int on_damage(void *arg, const inspect_damage *d)
{
    const ctx *c = arg;
    obj_begin(c, "damage");
    f_off(c, "off", d->off);
    f_u64(c, "len", d->len);
    f_off(c, "bad", d->bad_off);
    f_bool(c, "to_eof", d->to_eof);
    f_str(c, "why", d->why != NULL ? d->why : "");
    return obj_end(c);
}

/* Walks the segment or WAL file open as fd, then prints its totals. */
static int list_records(ctx *c, int fd, const char *name, uint64_t size)
{
    inspect_walk_fns fns = {on_record, on_damage, c};
    inspect_walk_result res;
    int rc = inspect_walk(c->io, fd, name, size, &fns, &res);
    if (rc == STOP_STDOUT)
        return rc;
    if (rc != KV_OK) {
        fprintf(stderr, "kvdump: %s: %s: %s\n", c->file, kv_strerror(rc), kv_errmsg());
        return F_STORE;
    }
    obj_begin(c, "summary");
    f_u64(c, "records", res.records);
    f_u64(c, "record_bytes", res.record_bytes);
    f_u64(c, "min_seq", res.min_seq);
    f_u64(c, "max_seq", res.max_seq);
    f_u64(c, "loose", res.loose);
    f_u64(c, "bad_crc", res.bad_crc);
    f_u64(c, "regions", res.regions);
    f_u64(c, "lost_bytes", res.lost_bytes);
    f_off(c, "ok_up_to", res.ok_up_to);
    f_bool(c, "fenced", res.fenced);
    f_bool(c, "torn_tail", res.torn_tail);
    return obj_end(c);
}

/* ---------------------------------------------------------------------------------
 * 3. Hint files, the MANIFEST, LOCK
 * ------------------------------------------------------------------------------ */

/* A hint's verdict, then its records (when usable). seg_size 0 checks the hint
 * against the size its trailer states, else against the segment's. A hint removed
 * since list_file opened it (a compaction beside us) is a note in a directory, and
 * F_USAGE alone, as a file gone before it was opened. */
static int list_hint(const ctx *c, const char *name, uint64_t seg_size)
{
    inspect_hint h;
    int rc = inspect_hint_read(c->io, c->dirfd, name, 0, seg_size, &h);
    if (rc == KV_NOTFOUND && c->dir != NULL) {
        inspect_hint_free(&h);
        return vanished(c, name);
    }
    if (rc != KV_OK) {
        fprintf(stderr, "kvdump: %s: %s: %s\n", c->file, kv_strerror(rc), kv_errmsg());
        inspect_hint_free(&h);
        return rc == KV_NOTFOUND ? F_USAGE : F_STORE;
    }
    obj_begin(c, "hint");
    f_str(c, "status", h.status == KV_OK ? "ok" : h.status == KV_EVERSION ? "newer" : "refused");
    f_u64(c, "records", h.count);
    f_u64(c, "segment", h.number);
    f_u64(c, "segment_bytes", h.seg_size);
    if (h.status != KV_OK) {
        f_off(c, "bad", h.bad_off);
        f_str(c, "why", h.why);
    }
    rc = obj_end(c);
    for (uint32_t i = 0; i < h.count && rc == 0; i++) {
        const inspect_hint_rec *hr = &h.recs[i];
        if (!want_key(c, hr->key, hr->klen))
            continue;
        obj_begin(c, "hint_record");
        f_u64(c, "index", i);
        f_str(c, "op", op_word(hr->type));
        f_u64(c, "seq", hr->seq);
        f_off(c, "entry", hr->off);
        f_u64(c, "size", hr->size);
        f_key(c, hr->key, hr->klen);
        rc = obj_end(c);
    }
    inspect_hint_free(&h);
    return rc;
}

/* A MANIFEST's verdict and what it names. One gone since list_file opened it (a
 * MANIFEST.tmp a writer renamed) is a note or F_USAGE, as for a hint. */
static int list_manifest(const ctx *c, const char *name)
{
    inspect_manifest im;
    int rc = inspect_manifest_read(c->io, c->dirfd, name, &im);
    if (rc == KV_NOTFOUND && c->dir != NULL) {
        inspect_manifest_free(&im);
        return vanished(c, name);
    }
    if (rc != KV_OK) {
        fprintf(stderr, "kvdump: %s: %s: %s\n", c->file, kv_strerror(rc), kv_errmsg());
        inspect_manifest_free(&im);
        return rc == KV_NOTFOUND ? F_USAGE : F_STORE;
    }
    obj_begin(c, "manifest");
    f_str(c, "status", im.status == KV_OK ? "ok" : im.status == KV_EVERSION ? "newer" : "refused");
    if (im.status == KV_OK) {
        f_u64(c, "generation", im.m.generation);
        f_u64(c, "active", im.m.active);
        f_u64(c, "next_file", im.m.next_file);
        f_u64(c, "sealed", im.m.nsealed);
    } else {
        f_off(c, "bad", im.bad_off);
        f_str(c, "why", im.why);
    }
    rc = obj_end(c);
    for (uint32_t i = 0; im.status == KV_OK && i < im.m.nsealed && rc == 0; i++) {
        obj_begin(c, "sealed");
        f_u64(c, "number", im.m.sealed[i].number);
        f_u64(c, "bytes", im.m.sealed[i].size);
        rc = obj_end(c);
    }
    inspect_manifest_free(&im);
    return rc;
}

/* The pid LOCK holds, and (in a directory) who holds the lock now. */
static int list_lock(const ctx *c, int fd, int dirfd_for_holder)
{
    uint8_t buf[64];
    long pid = 0, holder = 0;
    uint64_t bad_off;
    ssize_t n = io_pread_full(c->io, fd, buf, sizeof buf, 0);
    if (n < 0) {
        fprintf(stderr, "kvdump: %s: reading: %s\n", c->file, strerror((int)-n));
        return F_STORE;
    }
    const char *why = inspect_check_lock(buf, (size_t)n, &pid, &bad_off);
    int held = dirfd_for_holder >= 0 ? inspect_lock_holder(dirfd_for_holder, &holder) : -1;
    obj_begin(c, "lock");
    f_u64(c, "pid", (uint64_t)pid);
    f_str(c, "held", held == 1 ? "yes" : held == 0 ? "no" : "unknown");
    if (held == 1)
        f_u64(c, "holder", (uint64_t)holder);
    if (why != NULL) {
        f_off(c, "bad", bad_off);
        f_str(c, "why", why);
    }
    return obj_end(c);
}

/* ---------------------------------------------------------------------------------
 * 4. One file; a directory; a single file
 * ------------------------------------------------------------------------------ */

/* The "file" line: kind, size, header. */
static int list_identity(const ctx *c, const inspect_id *id)
{
    obj_begin(c, "file");
    f_str(c, "kind", kind_word(id->kind));
    f_u64(c, "bytes", id->size);
    if (id->kind != INSPECT_UNKNOWN && id->kind != INSPECT_LOCK)
        f_u64(c, "number", id->number != 0 ? id->number : id->hdr.number);
    if (id->aside)
        f_bool(c, "aside", 1);
    f_str(c, "header", header_word(id->hdr.status));
    if (id->hdr.status != INSPECT_HDR_OK && id->hdr.status != INSPECT_HDR_NONE) {
        f_off(c, "bad", id->hdr.bad_off);
        f_str(c, "why", id->hdr.why);
    }
    return obj_end(c);
}

/* Lists file `name` (relative to c->dirfd): its identity, then what it holds.
 * seg_size: the size of the segment a hint describes (0: unknown). holder_dirfd:
 * the directory to ask who holds LOCK (-1: do not ask). *kind gets the file's
 * kind and *newer whether its header is of a newer version. */
static int list_file(ctx *c, const char *name, uint64_t seg_size, int holder_dirfd,
                     int *kind, int *newer)
{
    inspect_id id;
    int fd;
    int rc = inspect_open(c->io, c->dirfd, name, &id, &fd);
    *kind = INSPECT_UNKNOWN;
    *newer = 0;
    if (rc == KV_NOTFOUND && c->dir != NULL)
        return vanished(c, name);
    if (rc != KV_OK) { /* the message names the file */
        fprintf(stderr, "kvdump: %s\n", kv_errmsg());
        return rc == KV_NOTFOUND || rc == KV_EINVAL ? F_USAGE : F_STORE;
    }
    *kind = id.kind;
    *newer = id.hdr.status == INSPECT_HDR_NEWER;
    rc = list_identity(c, &id);
    if (rc == 0 && !*newer) {
        switch (id.kind) {
        case INSPECT_SEG:
        case INSPECT_WAL: rc = list_records(c, fd, name, id.size); break;
        case INSPECT_HINT:
        case INSPECT_HINT_TMP: rc = list_hint(c, name, seg_size); break;
        case INSPECT_MANIFEST:
        case INSPECT_MANIFEST_TMP: rc = list_manifest(c, name); break;
        case INSPECT_LOCK: rc = list_lock(c, fd, holder_dirfd); break;
        default: break;
        }
    }
    c->io->ops->close(c->io, fd);
    return rc;
}

/* Opens dir read-only as a store, to tell live records from dead ones. A store that
 * does not open is listed all the same, without that (said on stderr). */
static void open_for_state(ctx *c, const char *dir)
{
    kv_options o;
    kv_stats st;
    kv_options_init(&o);
    o.create = 0;
    o.read_only = 1;
    o.auto_compact = 0;
    int rc = kv_open(dir, &o, &c->db);
    if (rc == KV_OK && kv_stat(c->db, &st) == KV_OK) {
        c->next_seq = st.next_seq;
        return;
    }
    fprintf(stderr, "kvdump: %s: note: the store does not open (%s: %s); records are listed "
            "without live or dead state\n", dir, kv_strerror(rc), kv_errmsg());
    kv_close(c->db);
    c->db = NULL;
}

/* The size of segment `number` now (not when the directory was listed: a segment
 * a compaction beside us was writing then may be whole, and its hint written, by
 * the time the hint is read), or 0 when there is none. */
static uint64_t seg_size_of(const ctx *c, const inspect_dirent *v, size_t n, uint32_t number)
{
    struct stat st;
    for (size_t i = 0; i < n; i++)
        if (v[i].kind == INSPECT_SEG && v[i].number == number && !v[i].aside && v[i].regular)
            return fstatat(c->dirfd, v[i].name, &st, 0) == 0 && S_ISREG(st.st_mode)
                       ? (uint64_t)st.st_size : 0;
    return 0;
}

/* Lists every entry of the directory, in inspect_list_dir's order. */
static int list_entries(ctx *c, const inspect_dirent *v, size_t n)
{
    int rc = F_DONE, kind, newer;
    for (size_t i = 0; i < n && rc == F_DONE; i++) {
        c->file = v[i].name;
        if (!v[i].regular) {
            obj_begin(c, "file");
            f_str(c, "kind", "not-a-regular-file");
            rc = obj_end(c);
            continue;
        }
        uint64_t seg = v[i].kind == INSPECT_HINT ? seg_size_of(c, v, n, v[i].number) : 0;
        int r = list_file(c, v[i].name, seg, c->dirfd, &kind, &newer);
        if (r == F_USAGE) /* no longer a regular file: said, go on */
            r = F_DONE;
        rc = r;
    }
    return rc;
}

int forensic_dir(const char *dir, const forensic_opts *o)
{
    ctx c = {.o = o, .dir = dir, .file = dir};
    inspect_dirent *v = NULL;
    size_t n = 0, kv_files = 0;

    c.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (c.dirfd < 0) {
        int e = errno;
        fprintf(stderr, "kvdump: %s: %s\n", dir, e == ENOTDIR ? "not a directory" : strerror(e));
        return e == ENOENT || e == ENOTDIR ? F_USAGE : F_STORE;
    }
    int rc = inspect_list_dir(c.dirfd, &v, &n);
    for (size_t i = 0; rc == KV_OK && i < n; i++)
        kv_files += v[i].kind != INSPECT_UNKNOWN;
    int code = F_DONE;
    if (rc != KV_OK) {
        fprintf(stderr, "kvdump: %s: %s\n", dir, kv_errmsg());
        code = F_STORE;
    } else if (kv_files == 0) {
        fprintf(stderr, "kvdump: %s: holds no kv store (no kv file among its %zu entries)\n",
                dir, n);
        code = F_USAGE;
    } else if (io_new(KV_IO_PSYNC, &c.io) != KV_OK) {
        fprintf(stderr, "kvdump: %s: %s\n", dir, kv_errmsg());
        code = F_STORE;
    } else {
        open_for_state(&c, dir);
        code = list_entries(&c, v, n);
        kv_close(c.db);
        io_free(c.io);
    }
    free(v);
    close(c.dirfd);
    if (code == STOP_STDOUT || (code == F_DONE && (fflush(stdout) != 0 || ferror(stdout)))) {
        fprintf(stderr, "kvdump: stdout: %s\n", strerror(errno ? errno : EIO));
        return F_STORE;
    }
    return code;
}

/* The directory holding path, opened, to ask who holds a LOCK; -1 if it cannot be. */
static int parent_dir(const char *path)
{
    char d[4096];
    const char *s = strrchr(path, '/');
    if (s == NULL)
        return open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    snprintf(d, sizeof d, "%.*s", (int)(s - path) + (s == path), path);
    return open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int forensic_file(const char *path, const forensic_opts *o)
{
    ctx c = {.o = o, .dirfd = AT_FDCWD, .file = path};
    int kind, newer, code;
    if (io_new(KV_IO_PSYNC, &c.io) != KV_OK) {
        fprintf(stderr, "kvdump: %s: %s\n", path, kv_errmsg());
        return F_STORE;
    }
    inspect_id id;
    int rc = inspect_identify(c.io, AT_FDCWD, path, &id);
    if (rc == KV_OK && id.kind == INSPECT_UNKNOWN) {
        fprintf(stderr, "kvdump: %s: not a kv file: neither its name nor its first bytes are "
                "those of a segment, WAL, hint or MANIFEST file\n", path);
        code = F_USAGE;
    } else if (rc != KV_OK) {
        fprintf(stderr, "kvdump: %s: %s\n", path, kv_errmsg());
        code = rc == KV_NOTFOUND || rc == KV_EINVAL ? F_USAGE : F_STORE;
    } else {
        int pdir = id.kind == INSPECT_LOCK ? parent_dir(path) : -1;
        code = list_file(&c, path, 0, pdir, &kind, &newer);
        if (pdir >= 0)
            close(pdir);
        if (code == F_DONE && newer) {
            fprintf(stderr, "kvdump: %s: written by a newer format version (%s); its records "
                    "are not listed\n", path, id.hdr.why);
            code = F_USAGE;
        }
    }
    io_free(c.io);
    if (code == STOP_STDOUT || (code == F_DONE && (fflush(stdout) != 0 || ferror(stdout)))) {
        fprintf(stderr, "kvdump: stdout: %s\n", strerror(errno ? errno : EIO));
        return F_STORE;
    }
    return code;
}
