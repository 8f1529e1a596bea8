/*
 * inspect.c — reading kv files as they are (see inspect.h).
 *
 * Sections follow the header: kinds, names and headers; the record walk (an adapter
 * over the scanner's walk, scan.c, adding batch positions and totals); hint files
 * (hint_read + hint_check, records kept for lookups by offset); the MANIFEST
 * (manifest_read + manifest_check); the directory listing and the lock holder.
 */
#include "fsck/inspect.h"

#include "base/crc.h"
#include "store/file.h"
#include "store/hint.h"
#include "base/kv_int.h"
#include "store/scan.h"
#include "base/grow.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

_Static_assert((int)INSPECT_SEG == (int)KV_FILE_SEG && (int)INSPECT_WAL == (int)KV_FILE_WAL
                   && (int)INSPECT_HINT == (int)KV_FILE_HINT
                   && (int)INSPECT_HINT_TMP == (int)KV_FILE_HINT_TMP,
               "inspect kinds follow file.h");

/* ---- kinds, names and headers ------------------------------------------------------ */

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s != NULL ? s + 1 : path;
}

/* Length of name without a trailing INSPECT_ASIDE or INSPECT_ASIDE".N" (N digits),
 * or 0 when it has neither. */
static size_t aside_stem(const char *name)
{
    const char *s = strstr(name, INSPECT_ASIDE);
    while (s != NULL) {
        const char *t = s + strlen(INSPECT_ASIDE);
        if (*t == '\0')
            return (size_t)(s - name);
        if (*t == '.' && t[1] != '\0' && strspn(t + 1, "0123456789") == strlen(t + 1))
            return (size_t)(s - name);
        s = strstr(s + 1, INSPECT_ASIDE);
    }
    return 0;
}

int inspect_kind_of_name(const char *name, uint32_t *number, int *aside)
{
    char stem[256];
    const char *b = base_name(name);
    size_t n = aside_stem(b);
    uint32_t num = 0;
    if (aside != NULL)
        *aside = n > 0;
    if (n > 0 && n < sizeof stem) {
        memcpy(stem, b, n);
        stem[n] = '\0';
        b = stem;
    }
    int kind = INSPECT_UNKNOWN;
    if (strcmp(b, KV_MANIFEST_NAME) == 0)
        kind = INSPECT_MANIFEST;
    else if (strcmp(b, KV_MANIFEST_TMP) == 0)
        kind = INSPECT_MANIFEST_TMP;
    else if (strcmp(b, "LOCK") == 0)
        kind = INSPECT_LOCK;
    else
        kind = file_parse_name(b, &num);
    *number = kind >= INSPECT_SEG && kind <= INSPECT_HINT_TMP ? num : 0;
    return kind;
}

int inspect_kind_of_magic(const uint8_t *p, size_t len)
{
    if (len < 4)
        return INSPECT_UNKNOWN;
    if (memcmp(p, KV_MAGIC_SEG, 4) == 0)
        return INSPECT_SEG;
    if (memcmp(p, KV_MAGIC_WAL, 4) == 0)
        return INSPECT_WAL;
    if (memcmp(p, KV_MAGIC_HINT, 4) == 0)
        return INSPECT_HINT;
    if (memcmp(p, KV_MAGIC_MANIFEST, 4) == 0)
        return INSPECT_MANIFEST;
    return INSPECT_UNKNOWN;
}

const char *inspect_kind_name(int kind)
{
    switch (kind) {
    case INSPECT_SEG: return "segment";
    case INSPECT_WAL: return "WAL file";
    case INSPECT_HINT: return "hint file";
    case INSPECT_HINT_TMP: return "hint being written";
    case INSPECT_MANIFEST: return "MANIFEST";
    case INSPECT_MANIFEST_TMP: return "MANIFEST being written";
    case INSPECT_LOCK: return "lock file";
    default: return "not a kv file";
    }
}

/* The magic a kind's header carries (the temporary files carry their final kind's),
 * or NULL for kinds without a header. */
static const char *magic_of(int kind)
{
    switch (kind) {
    case INSPECT_SEG: return KV_MAGIC_SEG;
    case INSPECT_WAL: return KV_MAGIC_WAL;
    case INSPECT_HINT:
    case INSPECT_HINT_TMP: return KV_MAGIC_HINT;
    case INSPECT_MANIFEST:
    case INSPECT_MANIFEST_TMP: return KV_MAGIC_MANIFEST;
    default: return NULL;
    }
}

static int hdr_set(inspect_header *h, int status, uint64_t off, const char *why)
{
    h->status = status;
    h->bad_off = off;
    snprintf(h->why, sizeof h->why, "%s", why);
    return status;
}

int inspect_check_header(const uint8_t *p, size_t len, int kind, uint32_t number,
                         inspect_header *h)
{
    const char *magic = magic_of(kind);
    uint32_t got = 0;
    int too_new;
    memset(h, 0, sizeof *h);
    if (magic == NULL)
        return hdr_set(h, INSPECT_HDR_NONE, 0, "");
    if (len >= 6)
        h->version = kv_get16(p + 4);
    if (len >= 12)
        h->number = kv_get32(p + 8);
    if (len < KV_FILE_HDR_SIZE)
        return hdr_set(h, INSPECT_HDR_SHORT, 0, "file is shorter than its 16-byte header");
    const char *why = file_header_check(p, magic, &got, &too_new);
    if (why == NULL) {
        if (number != 0 && kind != INSPECT_MANIFEST && kind != INSPECT_MANIFEST_TMP
            && got != number) {
            char msg[96];
            snprintf(msg, sizeof msg, "header names file %u, not %u", got, number);
            return hdr_set(h, INSPECT_HDR_NUMBER, 8, msg);
        }
        return hdr_set(h, INSPECT_HDR_OK, 0, "");
    }
    /* file_header_check's order: magic, checksum, version, flags. */
    if (memcmp(p, magic, 4) != 0)
        return hdr_set(h, INSPECT_HDR_MAGIC, 0, why);
    if (kv_get32(p + 12) != kv_crc32c(p, 12))
        return hdr_set(h, INSPECT_HDR_CRC, 12, why);
    if (too_new) {
        char msg[96];
        snprintf(msg, sizeof msg, "newer format version %u, this build reads %u", h->version,
                 KV_FORMAT_VERSION);
        return hdr_set(h, INSPECT_HDR_NEWER, 4, msg);
    }
    if (h->version < KV_FORMAT_VERSION_MIN || h->version > KV_FORMAT_VERSION)
        return hdr_set(h, INSPECT_HDR_VERSION, 4, why);
    return hdr_set(h, INSPECT_HDR_FLAGS, 6, why);
}

int inspect_open(kv_io *io, int dirfd, const char *name, inspect_id *id, int *fd_out)
{
    uint8_t hdr[KV_FILE_HDR_SIZE];
    struct stat st;
    memset(id, 0, sizeof *id);
    snprintf(id->name, sizeof id->name, "%s", base_name(name));
    id->kind_by_name = inspect_kind_of_name(name, &id->number, &id->aside);
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below). */
    int fd = io->ops->open(io, dirfd, name, O_RDONLY | O_NONBLOCK, 0);
    if (fd < 0)
        return fd == -ENOENT ? err_set(KV_NOTFOUND, "%s: no such file", name)
                             : err_errno(-fd, "%s: open", name);
    /* fstat directly: the I/O layer's fsize does not say what kind of file it is. */
    if (fstat(fd, &st) < 0) {
        int e = errno;
        io->ops->close(io, fd);
        return err_errno(e, "%s: fstat", name);
    }
    if (!S_ISREG(st.st_mode)) {
        io->ops->close(io, fd);
        return err_set(KV_EINVAL, "%s: not a regular file", name);
    }
    id->size = (uint64_t)st.st_size;
    ssize_t got = io_pread_full(io, fd, hdr, sizeof hdr, 0);
    if (got < 0) {
        io->ops->close(io, fd);
        return err_errno((int)-got, "%s: reading the header", name);
    }
    id->kind_by_magic = inspect_kind_of_magic(hdr, (size_t)got);
    id->kind = id->kind_by_name != INSPECT_UNKNOWN ? id->kind_by_name : id->kind_by_magic;
    if (id->kind == INSPECT_LOCK)
        hdr_set(&id->hdr, INSPECT_HDR_NONE, 0, "");
    else
        inspect_check_header(hdr, (size_t)got, id->kind, id->number, &id->hdr);
    *fd_out = fd;
    return KV_OK;
}

int inspect_identify(kv_io *io, int dirfd, const char *name, inspect_id *id)
{
    int fd;
    int rc = inspect_open(io, dirfd, name, id, &fd);
    if (rc == KV_OK)
        io->ops->close(io, fd);
    return rc;
}

const char *inspect_check_lock(const uint8_t *p, size_t len, long *pid, uint64_t *bad_off)
{
    size_t digits = 0;
    long v = 0;
    *pid = 0;
    *bad_off = 0;
    if (len == 0)
        return NULL;
    while (digits < len && p[digits] >= '0' && p[digits] <= '9' && digits < 18)
        v = v * 10 + (p[digits++] - '0');
    *bad_off = digits;
    if (digits == 0 || digits >= len || p[digits] != '\n')
        return "LOCK does not hold a pid and a newline";
    if (digits + 1 != len) {
        *bad_off = digits + 1;
        return "LOCK holds more than a pid and a newline";
    }
    *pid = v;
    return NULL;
}

/* ---- the record walk --------------------------------------------------------------- */

typedef struct walk_ctx {
    const inspect_walk_fns *fns;
    inspect_walk_result *res;
    uint64_t end;         /* the file's size: a stretch reaching it runs to the end */
    uint64_t batch_off;   /* first entry of the batch being delivered */
    uint32_t batch_index; /* position of the next entry in it */
    int more;             /* the last entry delivered said "more follows" */
    int damaged;          /* a damaged stretch was reported */
    uint64_t seq_before;  /* the highest sequence number before the first one */
} walk_ctx;

static int walk_deliver(walk_ctx *c, const kv_entry *e, uint64_t off, int crc_ok, int whole)
{
    inspect_rec r = {.off = off, .e = *e, .crc_ok = crc_ok, .whole = whole};
    if (!c->more) {
        c->batch_off = off;
        c->batch_index = 0;
    }
    r.batch_off = c->batch_off;
    r.batch_index = c->batch_index++;
    c->more = crc_ok && (e->flags & KV_RECF_BATCH);
    if (whole && !c->damaged && e->seq > c->seq_before)
        c->seq_before = e->seq;
    if (whole && c->damaged && !c->res->fenced && (e->flags & KV_RECF_FENCE)
        && e->seq > c->seq_before) {
        c->res->fenced = 1; /* the rule of scan.h: proof the damage was durable */
        c->res->fence_off = off;
    }
    if (whole) {
        c->res->record_bytes += e->size;
        if (c->res->min_seq == 0 || e->seq < c->res->min_seq)
            c->res->min_seq = e->seq;
    } else if (crc_ok) {
        c->res->loose++;
    } else {
        c->res->bad_crc++;
    }
    return c->fns->record != NULL ? c->fns->record(c->fns->arg, &r) : 0;
}

static int walk_batch(void *arg, const kv_entry *e, uint64_t off)
{
    return walk_deliver(arg, e, off, 1, 1);
}

static int walk_loose(void *arg, const kv_entry *e, uint64_t off, int crc_ok)
{
    return walk_deliver(arg, e, off, crc_ok, 0);
}

static int walk_damage(void *arg, uint64_t off, uint64_t len, uint64_t bad_off, const char *why)
{
    walk_ctx *c = arg;
    inspect_damage d = {off, len, bad_off, off + len >= c->end, why};
    c->more = 0; /* whatever follows a stretch starts a batch of its own */
    c->damaged = 1;
    return c->fns->damage != NULL ? c->fns->damage(c->fns->arg, &d) : 0;
}

static void walk_totals(inspect_walk_result *res, const kv_scan_walk_result *sw, uint64_t end)
{
    res->records = sw->records;
    res->max_seq = sw->max_seq;
    res->ok_up_to = end < KV_FILE_HDR_SIZE ? end : sw->ok_up_to;
    res->regions = sw->regions;
    res->lost_bytes = sw->lost_bytes;
    res->tail = sw->tail;
    res->torn_tail = sw->regions > 0 && !res->fenced;
}

static int walk_common(kv_io *io, int fd, const char *name, const uint8_t *buf, uint64_t end,
                       const inspect_walk_fns *fns, inspect_walk_result *res)
{
    static const inspect_walk_fns none = {NULL, NULL, NULL};
    walk_ctx c = {.fns = fns != NULL ? fns : &none, .res = res, .end = end};
    kv_scan_walk_fns sf = {walk_batch, walk_loose, walk_damage, &c};
    kv_scan_walk_result sw;
    memset(res, 0, sizeof *res);
    memset(&sw, 0, sizeof sw);
    int rc = KV_OK;
    if (end > KV_FILE_HDR_SIZE)
        rc = buf != NULL ? scan_walk_buffer(buf, (size_t)end, KV_FILE_HDR_SIZE, &sf, &sw)
                         : scan_walk_file(io, fd, name, KV_FILE_HDR_SIZE, end, &sf, &sw);
    else
        sw.ok_up_to = end;
    walk_totals(res, &sw, end);
    return rc;
}

int inspect_walk(kv_io *io, int fd, const char *name, uint64_t size,
                 const inspect_walk_fns *fns, inspect_walk_result *res)
{
    return walk_common(io, fd, name, NULL, size, fns, res);
}

int inspect_walk_buffer(const uint8_t *buf, size_t len, const inspect_walk_fns *fns,
                        inspect_walk_result *res)
{
    return walk_common(NULL, -1, "buffer", buf, len, fns, res);
}

/* ---- hint files -------------------------------------------------------------------- */

typedef struct hint_collect {
    inspect_hint *h;
    size_t cap;
} hint_collect;

static int hint_keep(void *arg, const kv_entry *e, uint64_t off)
{
    hint_collect *c = arg;
    inspect_hint *h = c->h;
    if (h->count == c->cap) {
        inspect_hint_rec *nr = grow(h->recs, &c->cap, (size_t)h->count + 1, sizeof *nr, 64, 0);
        if (nr == NULL)
            return err_set(KV_ENOMEM, "%06u.hint: %u records", h->number, h->count + 1);
        h->recs = nr;
    }
    h->recs[h->count++] = (inspect_hint_rec){e->seq, off, e->size, e->type, e->klen, e->key};
    return KV_OK;
}

/* Checks h->buf (h->size bytes) as the hint of h->number, h->seg_size (0: taken from
 * the trailer). */
static int hint_verdict(inspect_hint *h)
{
    hint_collect c = {h, 0};
    if (h->seg_size == 0 && h->size >= KV_FILE_HDR_SIZE + KV_HINT_TRAILER)
        h->seg_size = kv_get64(h->buf + h->size - 12);
    int rc = hint_check(h->buf, (size_t)h->size, h->number, h->seg_size, hint_keep, &c, h->why,
                        sizeof h->why, &h->bad_off);
    if (rc == KV_ENOMEM)
        return rc;
    h->status = rc;
    if (rc != KV_OK) {
        free(h->recs);
        h->recs = NULL;
        h->count = 0;
    }
    return KV_OK;
}

int inspect_hint_read(kv_io *io, int dirfd, const char *name, uint32_t number,
                      uint64_t seg_size, inspect_hint *h)
{
    size_t len;
    char why[192];
    memset(h, 0, sizeof *h);
    h->status = KV_NOTFOUND;
    int rc = hint_read(io, dirfd, name, &h->buf, &len, why, sizeof why);
    if (rc != KV_OK)
        return err_set(rc, "%s", why);
    h->size = len;
    if (number == 0)
        inspect_kind_of_name(name, &number, NULL);
    if (number == 0 && len >= KV_FILE_HDR_SIZE)
        number = kv_get32(h->buf + 8);
    h->number = number;
    h->seg_size = seg_size;
    return hint_verdict(h);
}

int inspect_hint_decode(const uint8_t *buf, size_t len, uint32_t number, uint64_t seg_size,
                        inspect_hint *h)
{
    memset(h, 0, sizeof *h);
    h->status = KV_NOTFOUND;
    if ((h->buf = malloc(len ? len : 1)) == NULL)
        return err_set(KV_ENOMEM, "hint image of %zu bytes", len);
    memcpy(h->buf, buf, len);
    h->size = len;
    h->number = number;
    h->seg_size = seg_size;
    return hint_verdict(h);
}

void inspect_hint_free(inspect_hint *h)
{
    free(h->recs);
    free(h->buf);
    h->recs = NULL;
    h->buf = NULL;
    h->count = 0;
}

const inspect_hint_rec *inspect_hint_at(const inspect_hint *h, uint64_t off)
{
    uint32_t lo = 0, hi = h->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (h->recs[mid].off == off)
            return &h->recs[mid];
        if (h->recs[mid].off < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *inspect_hint_compare(const inspect_hint_rec *hr, const inspect_rec *r)
{
    if (hr->off != r->off)
        return "offset";
    if (hr->seq != r->e.seq)
        return "sequence number";
    if (hr->size != r->e.size)
        return "entry size";
    if (hr->type != r->e.type)
        return "type";
    if (hr->klen != r->e.klen || memcmp(hr->key, r->e.key, hr->klen) != 0)
        return "key";
    return NULL;
}

/* ---- the MANIFEST ------------------------------------------------------------------ */

int inspect_manifest_read(kv_io *io, int dirfd, const char *name, inspect_manifest *im)
{
    uint8_t *buf;
    size_t len;
    memset(im, 0, sizeof *im);
    im->status = KV_ECORRUPT;
    int rc = manifest_read(io, dirfd, name, &buf, &len);
    if (rc == KV_ECORRUPT) { /* too large to be one */
        snprintf(im->why, sizeof im->why, "%s", kv_errmsg());
        return KV_OK;
    }
    if (rc != KV_OK)
        return rc == KV_NOTFOUND ? err_set(rc, "%s: no such file", name) : rc;
    im->size = len;
    rc = manifest_check(buf, len, &im->m, &im->bad_off, im->why, sizeof im->why);
    free(buf);
    if (rc == KV_ENOMEM)
        return err_set(rc, "%s: %s", name, im->why);
    im->status = rc;
    return KV_OK;
}

void inspect_manifest_free(inspect_manifest *im) { manifest_free(&im->m); }

/* ---- a store directory ------------------------------------------------------------- */

/* Sort rank of a kind within one number; set-aside copies after the originals. */
static int rank_of(const inspect_dirent *d)
{
    switch (d->kind) {
    case INSPECT_MANIFEST: return d->aside ? 3 : 0;
    case INSPECT_MANIFEST_TMP: return 1;
    case INSPECT_LOCK: return 2;
    default: return d->number != 0 ? 10 + d->kind + (d->aside ? 10 : 0) : 100;
    }
}

static int cmp_dirent(const void *a, const void *b)
{
    const inspect_dirent *x = a, *y = b;
    int rx = rank_of(x), ry = rank_of(y);
    int gx = rx >= 10 && rx < 100, gy = ry >= 10 && ry < 100;
    if (gx && gy && x->number != y->number)
        return x->number < y->number ? -1 : 1;
    if ((gx && gy) || rx != ry)
        return rx != ry ? (rx < ry ? -1 : 1) : strcmp(x->name, y->name);
    return strcmp(x->name, y->name);
}

int inspect_list_dir(int dirfd, inspect_dirent **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return err_errno(e, "reading the directory");
    }
    rewinddir(d); /* a dup shares the offset an earlier pass left at the end */
    inspect_dirent *v = NULL;
    size_t cap = 0, cnt = 0;
    struct dirent *de;
    int rc = KV_OK;
    while (rc == KV_OK && (de = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (cnt == cap) {
            inspect_dirent *nv = grow(v, &cap, cnt + 1, sizeof *nv, 32, 0);
            if (nv == NULL) {
                rc = err_set(KV_ENOMEM, "listing the directory: %zu entries", (cnt + 1));
                break;
            }
            v = nv;
        }
        inspect_dirent *e = &v[cnt++];
        memset(e, 0, sizeof *e);
        snprintf(e->name, sizeof e->name, "%s", de->d_name);
        e->kind = inspect_kind_of_name(e->name, &e->number, &e->aside);
        if (fstatat(dirfd, e->name, &st, 0) == 0) {
            e->regular = S_ISREG(st.st_mode);
            e->size = e->regular ? (uint64_t)st.st_size : 0;
        } else if (errno == ENOENT && fstatat(dirfd, e->name, &st, AT_SYMLINK_NOFOLLOW) != 0
                   && errno == ENOENT) {
            cnt--; /* removed since readdir saw it (a writer beside us): not listed */
        }
    }
    closedir(d);
    if (rc != KV_OK) {
        free(v);
        return rc;
    }
    if (cnt > 1)
        qsort(v, cnt, sizeof *v, cmp_dirent);
    *out = v;
    *n = cnt;
    return KV_OK;
}

int inspect_lock_holder(int dirfd, long *pid)
{
    struct stat st;
    char line[256];
    *pid = 0;
    if (fstatat(dirfd, "LOCK", &st, 0) != 0)
        return 0;
    FILE *f = fopen("/proc/locks", "re");
    if (f == NULL)
        return -1;
    int held = 0;
    /* "1: FLOCK  ADVISORY  WRITE 4242 08:01:1234567 0 EOF": kind, mode, pid, then the
     * device (major and minor in hex) and inode of the locked file. */
    while (!held && fgets(line, sizeof line, f) != NULL) {
        char type[16], adv[16], mode[16];
        long p;
        unsigned maj, min;
        unsigned long long ino;
        if (sscanf(line, "%*s %15s %15s %15s %ld %x:%x:%llu", type, adv, mode, &p, &maj, &min,
                   &ino) == 7
            && strcmp(type, "FLOCK") == 0 && ino == (unsigned long long)st.st_ino
            && maj == major(st.st_dev) && min == minor(st.st_dev)) {
            held = 1;
            *pid = p;
        }
    }
    fclose(f);
    return held;
}
