/*
 * check.c — checking a store or one file (see check.h).
 *
 * The check never stops at the first problem: it reads everything and collects what
 * it finds, then tells it. Sections: the findings list; one record file (header,
 * the walk with its LZ4 and hint cross-checks, its damaged stretches); hints; the
 * MANIFEST and the directory (is it a store, roles, leftovers, LOCK); the store (a
 * pass: the MANIFEST, then the directory, then each file); a store a writer changes
 * (what a pass may tell, and when to pass again); one file; check_path.
 */
#include "fsck/check.h"

#include "format/compress.h"
#include "store/file.h"
#include "store/hint.h"
#include "base/kv_int.h"
#include "base/grow.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHANGED 2          /* internal: a writer changed the store during a pass */
#define PASSES 16          /* passes before giving up on a store that keeps changing */
#define STRETCHES_TOLD 100 /* damaged stretches told one by one per file */
#define PROGRESS_STEP (4u << 20) /* progress is told every this many bytes */
#define TAIL_COMPARED (8u << 20) /* an active segment's unfinished tail is compared
                                    with the WAL file up to this many bytes */

/* ---- the findings list --------------------------------------------------------------- */

typedef struct finding {
    char file[256];
    int kind;        /* CHECK_*, or 0 for a note */
    int note;        /* a note's CHECK_NOTE_* */
    int has_off;
    uint64_t off, len;
    char what[352];
} finding;

typedef struct ctx {
    const check_fns *fns;
    check_summary *sum;
    finding *v;
    size_t n, cap;
    int nomem;          /* a finding could not be kept */
    uint64_t done;      /* bytes read so far (progress) */
    uint64_t total;     /* bytes to read */
    uint64_t told;      /* done at the last progress call */
} ctx;

static void vadd(ctx *c, const char *file, int kind, int note, int has_off, uint64_t off,
                 uint64_t len, const char *fmt, va_list ap) KV_PRINTF(8, 0);
static void vadd(ctx *c, const char *file, int kind, int note, int has_off, uint64_t off,
                 uint64_t len, const char *fmt, va_list ap)
{
    if (c->n == c->cap) {
        finding *nv = grow(c->v, &c->cap, c->n + 1, sizeof *nv, 32, 0);
        if (nv == NULL) {
            c->nomem = 1;
            return;
        }
        c->v = nv;
    }
    finding *f = &c->v[c->n++];
    snprintf(f->file, sizeof f->file, "%s", file);
    f->kind = kind;
    f->note = note;
    f->has_off = has_off;
    f->off = off;
    f->len = len;
    vsnprintf(f->what, sizeof f->what, fmt, ap);
    if (kind != 0)
        c->sum->damaged++;
}

/* A problem of kind CHECK_*, or with kind 0 a note of kind CHECK_NOTE_INFO. */
static void add(ctx *c, const char *file, int kind, int has_off, uint64_t off, uint64_t len,
                const char *fmt, ...) KV_PRINTF(7, 8);
static void add(ctx *c, const char *file, int kind, int has_off, uint64_t off, uint64_t len,
                const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vadd(c, file, kind, CHECK_NOTE_INFO, has_off, off, len, fmt, ap);
    va_end(ap);
}

/* A file of an interrupted step of a writer no longer running: a note, counted. */
static void add_leftover_note(ctx *c, const char *file, const char *fmt, ...) KV_PRINTF(3, 4);
static void add_leftover_note(ctx *c, const char *file, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vadd(c, file, 0, CHECK_NOTE_LEFTOVER, 0, 0, 0, fmt, ap);
    va_end(ap);
    c->sum->unfinished++;
}

static void progress(ctx *c, uint64_t bytes)
{
    c->done += bytes;
    if (c->fns != NULL && c->fns->progress != NULL && c->done - c->told >= PROGRESS_STEP) {
        c->told = c->done;
        c->fns->progress(c->fns->arg, c->done, c->total);
    }
}

/* Tells the findings: notes and problems in the order they were found. */
static void tell(ctx *c)
{
    for (size_t i = 0; c->fns != NULL && i < c->n; i++) {
        const finding *f = &c->v[i];
        check_problem p = {f->file, f->kind != 0 ? f->kind : f->note, f->has_off, f->off,
                           f->len, f->what};
        if (f->kind == 0 && c->fns->note != NULL)
            c->fns->note(c->fns->arg, &p);
        else if (f->kind != 0 && c->fns->problem != NULL)
            c->fns->problem(c->fns->arg, &p);
    }
}

static void forget(ctx *c)
{
    c->n = 0;
    c->done = c->told = 0;
}

/* ---- one record file ----------------------------------------------------------------- */

typedef struct stretch {
    uint64_t off, len, bad_off;
    char why[160];
} stretch;

typedef struct rf_ctx {
    ctx *c;
    check_file *f;
    const inspect_hint *hint; /* usable hint to compare with, or NULL */
    const char *hint_name;
    uint64_t mismatches;      /* whole entries the hint does not describe */
    uint64_t first_mis;       /* the first one's offset */
    const char *mis_field;    /* and what differs */
    stretch told[STRETCHES_TOLD];
    uint64_t nstretch;
    uint64_t run_end;         /* the stretch being walked: end of its first entries that
                                 check out (0: none yet) ... */
    uint64_t run_bad;         /* ... and its entries with a bad checksum */
    uint64_t tail_from;       /* a stretch to the end of the file: where its entries that
                                 check out end */
    uint64_t tail_bad;        /* and its entries with a bad checksum */
} rf_ctx;

/* A whole entry: its LZ4 value must decompress to its raw length, and the hint
 * must describe it. */
static int rf_record(void *arg, const inspect_rec *r)
{
    rf_ctx *x = arg;
    if (!r->whole && r->crc_ok && x->run_bad == 0)
        x->run_end = r->off + r->e.size;
    x->run_bad += !r->whole && !r->crc_ok;
    if (!r->whole)
        return 0;
    progress(x->c, r->e.size);
    if (r->e.flags & KV_RECF_LZ4) {
        uint8_t *out;
        size_t n;
        char why[128];
        int rc = compress_value_decode(&r->e, &out, &n, why, sizeof why);
        if (rc == KV_ENOMEM)
            return err_set(rc, "%s: offset %llu: decompressing a value", x->f->source,
                          (unsigned long long)r->off);
        if (rc == KV_OK) {
            free(out);
        } else {
            x->f->bad_values++;
            add(x->c, x->f->source, CHECK_VALUE, 1, r->off, r->e.size,
                "LZ4 value does not decompress: %s", why);
        }
    }
    if (x->hint != NULL) {
        const inspect_hint_rec *hr = inspect_hint_at(x->hint, r->off);
        const char *field = hr == NULL ? "presence" : inspect_hint_compare(hr, r);
        if (field != NULL && x->mismatches++ == 0) {
            x->first_mis = r->off;
            x->mis_field = field;
        }
    }
    return 0;
}

static int rf_damage(void *arg, const inspect_damage *d)
{
    rf_ctx *x = arg;
    progress(x->c, d->len);
    if (d->to_eof) {
        x->tail_from = x->run_end != 0 ? x->run_end : d->off;
        x->tail_bad = x->run_bad;
    }
    x->run_end = x->run_bad = 0;
    if (x->nstretch < STRETCHES_TOLD) {
        stretch *s = &x->told[x->nstretch];
        s->off = d->off;
        s->len = d->len;
        s->bad_off = d->bad_off;
        snprintf(s->why, sizeof s->why, "%s", d->why);
    }
    x->nstretch++;
    return 0;
}

/* Tells the damaged stretches of a walked file: a torn tail of the active pair (a
 * note while a writer holds the store: a write in progress), else damage. */
static void tell_stretches(rf_ctx *x, int tail_is_torn, int live, const char *alone)
{
    check_file *f = x->f;
    for (uint64_t i = 0; i < x->nstretch && i < STRETCHES_TOLD; i++) {
        const stretch *s = &x->told[i];
        uint64_t end = s->off + s->len;
        char at[48] = "";
        if (s->bad_off != s->off)
            snprintf(at, sizeof at, " at 0x%llx", (unsigned long long)s->bad_off);
        if (tail_is_torn && live)
            add(x->c, f->source, 0, 1, s->off, s->len, "incomplete last record (%s%s; %llu "
                "bytes): a write in progress", s->why, at, (unsigned long long)s->len);
        else if (tail_is_torn && end >= f->size)
            add(x->c, f->source, CHECK_TORN_TAIL, 1, s->off, s->len, "torn tail: %s%s; %llu "
                "bytes to the end of the file (recovery cuts them at open)", s->why, at,
                (unsigned long long)s->len);
        else if (tail_is_torn)
            add(x->c, f->source, CHECK_TORN_TAIL, 1, s->off, s->len, "torn tail: %s%s; %llu "
                "bytes hold no whole record, and no fence after them proves they were "
                "durable (recovery cuts from here at open; --repair keeps a copy)", s->why, at,
                (unsigned long long)s->len);
        else if (end >= f->size)
            add(x->c, f->source, CHECK_DAMAGE, 1, s->off, s->len, "%s%s; the last %llu bytes "
                "hold no whole record%s", s->why, at, (unsigned long long)s->len, alone);
        else
            add(x->c, f->source, CHECK_DAMAGE, 1, s->off, s->len, "%s%s; %llu bytes hold no "
                "whole record, records resume at 0x%llx", s->why, at,
                (unsigned long long)s->len, (unsigned long long)end);
    }
    if (x->nstretch > STRETCHES_TOLD)
        add(x->c, f->source, CHECK_DAMAGE, 0, 0, 0, "%llu more damaged stretches",
            (unsigned long long)(x->nstretch - STRETCHES_TOLD));
}

/* The offset in a hint file of record hr (records are 19 bytes and the key each). */
static uint64_t hint_rec_off(const inspect_hint *h, const inspect_hint_rec *hr)
{
    uint64_t off = KV_FILE_HDR_SIZE;
    for (const inspect_hint_rec *p = h->recs; p < hr; p++)
        off += KV_HINT_REC + p->klen;
    return off;
}

/* Damage that is nothing but a tail: one stretch, running to the end of the file. */
static int pure_tail(const check_file *f)
{
    return f->walk.regions == 1 && f->walk.tail;
}

/* Whether f's damage is told as a torn tail (f one of the active pair): the active
 * segment's when it is a pure tail; the WAL file's as recovery decides it, unless a
 * fence after the damage proves it was durable (scan.h, "torn tail or damage"), even
 * with whole records after it (a power failure can keep a later page and lose an
 * earlier one of what was never synced). */
static int told_torn(const check_file *f)
{
    return f->role == ROLE_ACTIVE_SEG ? pure_tail(f) : f->walk.torn_tail;
}

/* Whether f's damage (walked, x) is a write the end of the file cut short — what a
 * writer stopped while it wrote leaves, the page cache being coherent: one stretch
 * to the end of the file whose entries check out until the end of the file comes
 * first, either exactly after an entry that said "more follows", or inside a header,
 * or inside an entry whose header is sane but whose length reaches past the end. A
 * checksum mismatch, or a header that is no header, is something else (bytes that
 * changed after they were written, a power failure's garbage). Returns KV_OK or an
 * I/O error. */
static int cut_short(check_store *s, int fd, const check_file *f, const rf_ctx *x, int *out)
{
    uint8_t h[KV_ENTRY_HDR];
    kv_entry e;
    *out = 0;
    if (!pure_tail(f) || x->tail_bad != 0 || f->hdr.status != INSPECT_HDR_OK)
        return KV_OK;
    uint64_t left = f->size - x->tail_from;
    if (left < KV_ENTRY_HDR) {
        *out = 1;
        return KV_OK;
    }
    ssize_t got = io_pread_full(s->io, fd, h, sizeof h, x->tail_from);
    if (got < 0)
        return err_errno((int)-got, "%s: offset %llu: reading", f->source,
                         (unsigned long long)x->tail_from);
    *out = (size_t)got == sizeof h && entry_check_header(h, &e) == NULL && e.size > left;
    return KV_OK;
}

/* Opens f->source, checks its header and walks it, comparing with hint when given.
 * Returns KV_OK, CHANGED (it vanished: a writer removed it), or an error. */
static int check_record_file(ctx *c, check_store *s, check_file *f, const inspect_hint *hint,
                             const char *hint_name, int torn_ok, const char *alone)
{
    inspect_id id;
    int fd;
    int rc = inspect_open(s->io, s->dirfd, f->source, &id, &fd);
    if (rc == KV_NOTFOUND)
        return CHANGED;
    if (rc != KV_OK)
        return rc;
    rf_ctx *x = calloc(1, sizeof *x);
    if (x == NULL) {
        s->io->ops->close(s->io, fd);
        return err_set(KV_ENOMEM, "%s: checking", f->source);
    }
    *x = (rf_ctx){.c = c, .f = f, .hint = hint, .hint_name = hint_name};
    f->size = id.size;
    f->hdr = id.hdr;
    c->sum->files++;
    c->sum->bytes += id.size;
    if (id.hdr.status != INSPECT_HDR_OK)
        add(c, f->source, CHECK_DAMAGE, 1, id.hdr.bad_off, 0, "header: %s", id.hdr.why);
    inspect_walk_fns fns = {rf_record, rf_damage, x};
    rc = inspect_walk(s->io, fd, f->source, id.size, &fns, &f->walk);
    if (rc == KV_OK)
        rc = cut_short(s, fd, f, x, &f->cut_short);
    s->io->ops->close(s->io, fd);
    if (rc == KV_OK) {
        if (f->kind == INSPECT_WAL)
            c->sum->wal_records += f->walk.records;
        else
            c->sum->seg_records += f->walk.records;
        c->sum->records += f->walk.records;
        c->sum->lost_bytes += f->walk.lost_bytes;
        tell_stretches(x, torn_ok && told_torn(f), s->writer_pid != 0, alone);
        if (x->mismatches > 0 && f->walk.regions == 0) {
            const inspect_hint_rec *hr = inspect_hint_at(hint, x->first_mis);
            f->hint = HINT_WRONG;
            add(c, hint_name, CHECK_HINT, hr != NULL, hr ? hint_rec_off(hint, hr) : 0, 0,
                "does not describe %s: %llu entries differ, the first at 0x%llx in its %s (open "
                "scans the segment instead)", f->source, (unsigned long long)x->mismatches,
                (unsigned long long)x->first_mis, x->mis_field);
        }
    }
    free(x);
    return rc;
}

/* ---- hints ----------------------------------------------------------------------------- */

/* A hint's verdict without the "NNNNNN.hint: " the decoder puts first (the problem
 * line names the file already). */
static const char *hint_why(const inspect_hint *h)
{
    const char *colon = strstr(h->why, ".hint: ");
    return colon != NULL ? colon + 7 : h->why;
}

/* Reads the hint of sealed segment f (or its copy set aside), checked against the
 * MANIFEST's size; tells what is wrong. *h is usable when h->status is KV_OK. */
static int check_hint(ctx *c, check_store *s, check_file *f, inspect_hint *h)
{
    char name[64];
    file_name(name, sizeof name, f->number, KV_FILE_HINT);
    snprintf(f->hint_source, sizeof f->hint_source, "%s", name);
    int rc = inspect_hint_read(s->io, s->dirfd, name, f->number, f->expect, h);
    if (rc == KV_NOTFOUND) {
        f->hint = HINT_MISSING;
        if (!check_find_aside(s, name, f->hint_source, sizeof f->hint_source))
            f->hint_source[0] = '\0';
        else if (inspect_hint_read(s->io, s->dirfd, f->hint_source, f->number, f->expect, h)
                 != KV_OK)
            f->hint_source[0] = '\0';
        if (!f->missing)
            add(c, name, CHECK_HINT, 0, 0, 0, "hint of sealed segment %s is missing (open scans "
                "the segment instead and writes it)", f->name);
        return KV_OK;
    }
    if (rc != KV_OK)
        return rc;
    c->sum->files++;
    c->sum->bytes += h->size;
    progress(c, h->size);
    if (h->status == KV_EVERSION)
        return err_set(KV_EVERSION, "%s/%s: %s", s->dir, name, hint_why(h));
    if (h->status != KV_OK) {
        f->hint = HINT_REFUSED;
        add(c, name, CHECK_HINT, 1, h->bad_off, 0, "%s (open scans the segment instead)",
            hint_why(h));
    } else {
        c->sum->hint_records += h->count;
    }
    return KV_OK;
}

/* ---- the MANIFEST and the directory ---------------------------------------------- */

int check_find_aside(const check_store *s, const char *name, char *out, size_t n)
{
    size_t len = strlen(name);
    long best = -1;
    for (size_t i = 0; i < s->nents; i++) {
        const inspect_dirent *d = &s->ents[i];
        const char *rest = d->name + len;
        if (!d->aside || !d->regular || strncmp(d->name, name, len) != 0
            || strncmp(rest, INSPECT_ASIDE, strlen(INSPECT_ASIDE)) != 0)
            continue;
        rest += strlen(INSPECT_ASIDE);
        long k = *rest == '\0' ? 1 : (*rest == '.' ? strtol(rest + 1, NULL, 10) : -1);
        if (k > best) {
            best = k;
            snprintf(out, n, "%s", d->name);
        }
    }
    return best >= 0;
}

static const inspect_dirent *find_ent(const check_store *s, const char *name)
{
    for (size_t i = 0; i < s->nents; i++)
        if (strcmp(s->ents[i].name, name) == 0)
            return &s->ents[i];
    return NULL;
}

/* Refuses a file of a newer format version before anything is told: such a store
 * is not checked (exit 2), since this build cannot tell its damage from its format. */
static int refuse_newer(check_store *s)
{
    for (size_t i = 0; i < s->nents; i++) {
        const inspect_dirent *d = &s->ents[i];
        inspect_id id;
        if (!d->regular || d->kind == INSPECT_UNKNOWN || d->kind == INSPECT_LOCK)
            continue;
        if (inspect_identify(s->io, s->dirfd, d->name, &id) != KV_OK)
            continue; /* unreadable or gone: the pass says so */
        if (id.hdr.status == INSPECT_HDR_NEWER)
            return err_set(KV_EVERSION, "%s/%s: %s", s->dir, d->name, id.hdr.why);
    }
    return KV_OK;
}

/* Is the directory a kv store? A MANIFEST with kv's magic, or kv files under their
 * own names and magics. An interrupted creation (only header-long files of number
 * 1) is not one yet: kv_open with create makes it afresh. */
static int is_store(check_store *s)
{
    int kv_files = 0, real = 0, others = 0;
    for (size_t i = 0; i < s->nents; i++) {
        const inspect_dirent *d = &s->ents[i];
        inspect_id id;
        if (!d->regular || d->aside || d->kind == INSPECT_UNKNOWN) {
            others++;
            continue;
        }
        if (d->kind == INSPECT_LOCK || d->kind == INSPECT_MANIFEST_TMP
            || d->kind == INSPECT_HINT_TMP)
            continue;
        if (inspect_identify(s->io, s->dirfd, d->name, &id) != KV_OK || id.kind_by_magic != d->kind)
            continue;
        if (d->kind == INSPECT_MANIFEST)
            return KV_OK;
        kv_files++;
        real += !(d->number == 1 && d->size <= KV_FILE_HDR_SIZE);
    }
    if (real > 0)
        return KV_OK;
    if (s->nents == 0)
        return err_set(KV_EINVAL, "%s: empty directory: not a kv store", s->dir);
    if (kv_files > 0)
        return err_set(KV_EINVAL, "%s: not a kv store yet: an interrupted creation (kv_open with "
                      "create makes it afresh)", s->dir);
    if (find_ent(s, KV_MANIFEST_NAME) != NULL)
        return err_set(KV_EINVAL, "%s: not a kv store: its MANIFEST is not a kv MANIFEST", s->dir);
    return err_set(KV_EINVAL, "%s: not a kv store: no MANIFEST and no kv files among its %zu "
                  "entries", s->dir, s->nents);
}

static int add_file(check_store *s, int role, int kind, uint32_t number, uint64_t expect)
{
    check_file *nf = realloc(s->files, (s->nfiles + 1) * sizeof *nf);
    if (nf == NULL)
        return err_set(KV_ENOMEM, "%s: list of %zu files", s->dir, s->nfiles + 1);
    s->files = nf;
    check_file *f = &s->files[s->nfiles++];
    memset(f, 0, sizeof *f);
    f->role = role;
    f->kind = kind;
    f->number = number;
    f->expect = expect;
    file_name(f->name, sizeof f->name, number, kind);
    snprintf(f->source, sizeof f->source, "%s", f->name);
    return KV_OK;
}

/* The record files the MANIFEST names, in the order they are checked. */
static int assign_roles(check_store *s)
{
    const kv_manifest *m = &s->man.m;
    int rc = KV_OK;
    for (uint32_t i = 0; i < m->nsealed && rc == KV_OK; i++)
        rc = add_file(s, ROLE_SEALED, INSPECT_SEG, m->sealed[i].number, m->sealed[i].size);
    if (rc == KV_OK)
        rc = add_file(s, ROLE_ACTIVE_SEG, INSPECT_SEG, m->active, 0);
    if (rc == KV_OK)
        rc = add_file(s, ROLE_ACTIVE_WAL, INSPECT_WAL, m->active, 0);
    return rc;
}

static int named_seg(const check_store *s, uint32_t number)
{
    for (size_t i = 0; i < s->nfiles; i++)
        if (s->files[i].number == number && s->files[i].kind == INSPECT_SEG)
            return s->files[i].role;
    return ROLE_NONE;
}

static int add_leftover(check_store *s, const char *name, const char *why)
{
    check_leftover *nl = realloc(s->left, (s->nleft + 1) * sizeof *nl);
    if (nl == NULL)
        return err_set(KV_ENOMEM, "%s: list of leftovers", s->dir);
    s->left = nl;
    snprintf(nl[s->nleft].name, sizeof nl->name, "%s", name);
    snprintf(nl[s->nleft].why, sizeof nl->why, "%s", why);
    s->nleft++;
    return KV_OK;
}

/* Why a file the MANIFEST does not name is there, or NULL when it is named. */
static const char *leftover_why(const check_store *s, const inspect_dirent *d)
{
    int role = d->number != 0 ? named_seg(s, d->number) : ROLE_NONE;
    switch (d->kind) {
    case INSPECT_SEG:
        return role != ROLE_NONE ? NULL : "segment the MANIFEST does not name (an interrupted "
               "roll, compaction or repair)";
    case INSPECT_WAL:
        return role == ROLE_ACTIVE_SEG ? NULL
               : role == ROLE_SEALED ? "WAL file of a sealed segment (its records are in the "
                                       "segment)"
                                     : "WAL file the MANIFEST does not name (an interrupted roll)";
    case INSPECT_HINT:
        return role == ROLE_SEALED ? NULL : "hint of a segment that is not sealed";
    case INSPECT_HINT_TMP: return "hint being written (an interrupted seal or compaction)";
    case INSPECT_MANIFEST_TMP: return "MANIFEST being written (an interrupted update)";
    default: return NULL;
    }
}

/* A LOCK file (name, relative to dirfd) holds a pid and a newline, or nothing yet.
 * Returns KV_OK (*bad set when it does not; told under label), or an I/O error. A
 * missing file is no problem. */
static int check_lock_file(ctx *c, kv_io *io, int dirfd, const char *name, const char *label,
                           int *bad)
{
    uint8_t buf[64];
    long pid;
    uint64_t at;
    *bad = 0;
    int fd;
    int rc = io_open_regular(io, dirfd, name, O_RDONLY | O_NOFOLLOW, 0, label, &fd);
    if (rc != KV_OK)
        return rc == KV_NOTFOUND ? KV_OK : rc;
    ssize_t got = io_pread_full(io, fd, buf, sizeof buf, 0);
    io->ops->close(io, fd);
    if (got < 0)
        return err_errno((int)-got, "%s: read", label);
    c->sum->files++;
    c->sum->bytes += (uint64_t)got;
    const char *why = inspect_check_lock(buf, (size_t)got, &pid, &at);
    if (why != NULL && (size_t)got == sizeof buf)
        why = "LOCK is longer than a pid and a newline";
    if (why != NULL) {
        *bad = 1;
        add(c, label, CHECK_DAMAGE, 1, at, 0, "%s (the next writer writes it again)", why);
    }
    return KV_OK;
}

static int check_lock(ctx *c, check_store *s)
{
    return check_lock_file(c, s->io, s->dirfd, "LOCK", "LOCK", &s->lock_bad);
}

/* A hint checked on its own (no MANIFEST to say which segment size it must describe:
 * the size its trailer states). Returns KV_OK (problems told under label), or an
 * error; a newer format version is KV_EVERSION. */
static int check_hint_alone(ctx *c, kv_io *io, int dirfd, const char *name, uint32_t number,
                            const char *label)
{
    inspect_hint h;
    int rc = inspect_hint_read(io, dirfd, name, number, 0, &h);
    if (rc == KV_OK) {
        c->sum->files++;
        c->sum->bytes += h.size;
        progress(c, h.size);
        if (h.status == KV_EVERSION)
            rc = err_set(KV_EVERSION, "%s: %s", label, hint_why(&h));
        else if (h.status == KV_OK)
            c->sum->hint_records += h.count;
        else
            add(c, label, CHECK_HINT, 1, h.bad_off, 0, "%s", hint_why(&h));
    }
    inspect_hint_free(&h);
    return rc;
}

/* Why a file of the compaction protocol (format.h: kvcompact's request, the
 * writer's result, each written as a .tmp and renamed) is there, or NULL for any
 * other name. */
static const char *compact_file_why(const char *name)
{
    if (strcmp(name, KV_COMPACT_REQ) == 0)
        return "compaction request of kvcompact that no writer answered";
    if (strcmp(name, KV_COMPACT_RES) == 0)
        return "compaction result of a writer that no kvcompact collected";
    if (strcmp(name, KV_COMPACT_REQ_TMP) == 0)
        return "compaction request being written (an interrupted kvcompact)";
    if (strcmp(name, KV_COMPACT_RES_TMP) == 0)
        return "compaction result being written (an interrupted writer)";
    return NULL;
}

/* Notes a file of an interrupted step: one a writer at work may be making, or, with
 * no writer, a leftover the next writer's open removes. Neither is damage. */
static void note_leftover(ctx *c, const check_store *s, const char *name, const char *why)
{
    if (s->writer_pid != 0)
        add(c, name, 0, 0, 0, 0, "%s; a writer holds the store: it may be one it is making",
            why);
    else
        add_leftover_note(c, name, "%s: no damage, the next writer's open removes it", why);
}

/* Every directory entry the MANIFEST does not account for: leftovers, copies set
 * aside, files that are not kv's. */
static int check_others(ctx *c, check_store *s)
{
    int rc = KV_OK;
    for (size_t i = 0; i < s->nents && rc == KV_OK; i++) {
        const inspect_dirent *d = &s->ents[i];
        const char *why;
        if (!d->regular)
            add(c, d->name, 0, 0, 0, 0, "not a regular file (not kv's: ignored)");
        else if (d->aside)
            add(c, d->name, 0, 0, 0, 0, "set aside by kvcheck --repair (not part of the store)");
        else if ((why = compact_file_why(d->name)) != NULL)
            note_leftover(c, s, d->name, why); /* the protocol's: the repair leaves it */
        else if (d->kind == INSPECT_UNKNOWN)
            add(c, d->name, 0, 0, 0, 0, "not a kv file (ignored)");
        else if ((why = leftover_why(s, d)) != NULL) {
            note_leftover(c, s, d->name, why);
            rc = add_leftover(s, d->name, why);
        }
    }
    return rc;
}

/* ---- the store ---------------------------------------------------------------------- */

/* Whether the repair must salvage (a sealed segment) or rebuild (the active pair)
 * f: missing (an active file with no copy is merely created again, empty: its twin
 * holds its records), a bad header, a value that does not decompress, damage — but
 * not a torn tail of an active file, which is cut. */
static int needs_salvage(const check_file *f)
{
    if (f->missing)
        return f->role == ROLE_SEALED || f->source[0] != '\0';
    if (f->hdr.status != INSPECT_HDR_OK || f->bad_values > 0)
        return 1;
    if (f->role == ROLE_SEALED)
        return f->walk.regions > 0 || f->size != f->expect;
    return f->walk.regions > 0 && !pure_tail(f);
}

static const char *role_name(int role)
{
    return role == ROLE_SEALED ? "sealed segment"
           : role == ROLE_ACTIVE_SEG ? "active segment" : "active WAL file";
}

/* Checks one record file the MANIFEST names: missing (perhaps with a copy set aside),
 * size, header, records, and a sealed segment's hint. */
static int check_named(ctx *c, check_store *s, check_file *f)
{
    inspect_hint h;
    memset(&h, 0, sizeof h);
    const inspect_dirent *d = find_ent(s, f->name);
    int rc = KV_OK;
    if (d == NULL || !d->regular) {
        f->missing = 1;
        if (check_find_aside(s, f->name, f->source, sizeof f->source)) {
            add(c, f->name, CHECK_MISSING, 0, 0, 0, "%s named by the MANIFEST is missing; its "
                "copy %s, set aside by an interrupted repair, is checked instead",
                role_name(f->role), f->source);
        } else {
            f->source[0] = '\0';
            add(c, f->name, CHECK_MISSING, 0, 0, 0, "%s named by the MANIFEST is missing",
                role_name(f->role));
        }
    }
    if (f->role == ROLE_SEALED)
        rc = check_hint(c, s, f, &h);
    if (rc == KV_OK && f->source[0] != '\0')
        rc = check_record_file(c, s, f, h.status == KV_OK && h.buf != NULL ? &h : NULL,
                               f->hint_source, f->role != ROLE_SEALED, "");
    if (rc == CHANGED) { /* removed since the directory was listed */
        rc = KV_OK;
        f->missing = 1;
        add(c, f->name, CHECK_MISSING, 0, 0, 0, "%s named by the MANIFEST vanished while it "
            "was read", role_name(f->role));
    }
    if (rc == KV_OK && f->role == ROLE_SEALED && !f->missing && f->size != f->expect)
        add(c, f->name, CHECK_SIZE, 1, f->size < f->expect ? f->size : f->expect, 0,
            "sealed segment has %llu bytes, the MANIFEST says %llu", (unsigned long long)f->size,
            (unsigned long long)f->expect);
    f->damaged = needs_salvage(f);
    inspect_hint_free(&h);
    return rc;
}

/* ---- the active pair's unfinished last write ------------------------------------------ */

#define FOUND 3 /* internal: find_next stopped the walk at what it looked for */

/* The WAL entry that follows the active segment's whole records: the first whole
 * one with sequence number after + 1 (any first whole one when the segment has
 * none). */
typedef struct next_rec {
    uint64_t after;
    int any;
    uint64_t off; /* its offset, when found */
} next_rec;

static int find_next(void *arg, const inspect_rec *r)
{
    next_rec *q = arg;
    if (!r->whole || !(q->any || r->e.seq == q->after + 1))
        return 0;
    q->off = r->off;
    return FOUND;
}

/* Compares n bytes of two open files at their offsets: *same 1 when equal (a read
 * that fails or comes short: 0). name is the first file's, for messages. */
static int same_bytes(kv_io *io, const char *name, int fa, uint64_t a, int fb, uint64_t b,
                      uint64_t n, int *same)
{
    enum { CHUNK = 64 * 1024 };
    uint8_t *x = malloc(2 * CHUNK);
    *same = x != NULL;
    for (uint64_t done = 0; x != NULL && *same && done < n;) {
        size_t k = n - done < CHUNK ? (size_t)(n - done) : CHUNK;
        *same = io_pread_full(io, fa, x, k, a + done) == (ssize_t)k
                && io_pread_full(io, fb, x + CHUNK, k, b + done) == (ssize_t)k
                && memcmp(x, x + CHUNK, k) == 0;
        done += k;
    }
    free(x);
    return x != NULL ? KV_OK : err_set(KV_ENOMEM, "%s: offset %llu: comparing %llu bytes with "
                                       "the WAL file", name, (unsigned long long)a,
                                       (unsigned long long)n);
}

/* Whether the active segment's tail, cut short (seg->cut_short), is an append a
 * writer stopped half-way: its bytes are the first bytes of the records the WAL file
 * holds after the segment's last whole one. The leader appends to the segment what
 * it has written to the WAL, the same bytes in the same order, so then nothing is
 * lost: recovery cuts the tail and replays those records from the WAL file. A tail
 * whose bytes differ from the WAL's (a changed length, say) is not proven so. */
static int seg_tail_in_wal(check_store *s, const check_file *seg, const check_file *wal,
                           int *proven)
{
    inspect_id sid, wid;
    int sfd = -1, wfd = -1, rc;
    uint64_t from = seg->walk.ok_up_to, n = seg->size - from;
    next_rec q = {seg->walk.max_seq, seg->walk.records == 0, 0};
    *proven = 0;
    if (!seg->cut_short || wal->missing || wal->source[0] == '\0' || n > TAIL_COMPARED
        || wal->hdr.status != INSPECT_HDR_OK)
        return KV_OK;
    if ((rc = inspect_open(s->io, s->dirfd, wal->source, &wid, &wfd)) != KV_OK)
        return rc == KV_NOTFOUND ? KV_OK : rc;
    inspect_walk_result res;
    inspect_walk_fns fns = {find_next, NULL, &q};
    rc = inspect_walk(s->io, wfd, wal->source, wid.size, &fns, &res);
    if (rc == FOUND && q.off + n <= wid.size
        && (rc = inspect_open(s->io, s->dirfd, seg->source, &sid, &sfd)) == KV_OK)
        rc = same_bytes(s->io, seg->source, sfd, from, wfd, q.off, n, proven);
    if (sfd >= 0)
        s->io->ops->close(s->io, sfd);
    s->io->ops->close(s->io, wfd);
    return rc == FOUND || rc == KV_NOTFOUND ? KV_OK : rc;
}

/* Whether the WAL file's tail, cut short, is a write a writer stopped half-way: the
 * active segment, which gets a group only once the WAL file has all of it, holds
 * nothing past the WAL's whole records. A segment ahead of it means the WAL file
 * lost bytes it had: damage. */
static int wal_tail_unwritten(const check_file *seg, const check_file *wal)
{
    return wal->cut_short && !seg->missing && seg->hdr.status == INSPECT_HDR_OK
           && (seg->walk.regions == 0 || pure_tail(seg)) && seg->walk.max_seq <= wal->walk.max_seq;
}

/* Turns the torn-tail problem told of f into a leftover note: an unfinished write,
 * which the next writer's open cuts. */
static void tail_to_note(ctx *c, const check_file *f, const char *records)
{
    for (size_t i = 0; i < c->n; i++) {
        finding *g = &c->v[i];
        if (g->kind != CHECK_TORN_TAIL || strcmp(g->file, f->source) != 0
            || g->off != f->walk.ok_up_to)
            continue;
        g->kind = 0;
        g->note = CHECK_NOTE_LEFTOVER;
        snprintf(g->what, sizeof g->what, "an unfinished write: its last %llu bytes end inside a "
                 "record (a writer stopped while it wrote); %s; no damage, the next writer's open "
                 "cuts them", (unsigned long long)(f->size - f->walk.ok_up_to), records);
        c->sum->damaged--;
        c->sum->unfinished++;
        return;
    }
}

/* The active pair of a store no writer holds: a tail cut short that is an
 * unfinished write (seg_tail_in_wal, wal_tail_unwritten) is a leftover, not a torn
 * tail to report. */
static int judge_unfinished(ctx *c, check_store *s)
{
    int proven;
    if (s->writer_pid != 0 || s->nfiles < 2)
        return KV_OK;
    check_file *seg = &s->files[s->nfiles - 2], *wal = &s->files[s->nfiles - 1];
    int rc = seg_tail_in_wal(s, seg, wal, &proven);
    if (rc == KV_OK && proven)
        tail_to_note(c, seg, "its records are in the WAL file, which open replays: nothing is "
                     "lost");
    if (rc == KV_OK && wal_tail_unwritten(seg, wal))
        tail_to_note(c, wal, "the active segment holds nothing after the records before it");
    return rc;
}

/* Record files and hints of a store without a usable MANIFEST: each on its own. */
static int check_unnamed(ctx *c, check_store *s)
{
    int rc = KV_OK;
    for (size_t i = 0; i < s->nents && rc == KV_OK; i++) {
        const inspect_dirent *d = &s->ents[i];
        if (!d->regular || d->aside)
            continue;
        if (d->kind == INSPECT_SEG || d->kind == INSPECT_WAL) {
            rc = add_file(s, ROLE_NONE, d->kind, d->number, 0);
            if (rc == KV_OK)
                rc = check_record_file(c, s, &s->files[s->nfiles - 1], NULL, NULL, 0,
                                       " (a torn tail, if it is the newest segment or WAL file)");
        } else if (d->kind == INSPECT_HINT) {
            rc = check_hint_alone(c, s->io, s->dirfd, d->name, d->number, d->name);
        } else if (d->kind == INSPECT_LOCK) {
            rc = check_lock(c, s);
        } else if (d->kind == INSPECT_UNKNOWN) {
            add(c, d->name, 0, 0, 0, 0, "not a kv file (ignored)");
        }
    }
    return rc;
}

static uint64_t bytes_to_read(const check_store *s)
{
    uint64_t t = 0;
    for (size_t i = 0; i < s->nents; i++)
        if (s->ents[i].regular && s->ents[i].kind != INSPECT_UNKNOWN)
            t += s->ents[i].size;
    return t;
}

/* Tells what is wrong with the MANIFEST, read (rc: inspect_manifest_read's return)
 * before the directory was listed. */
static int check_manifest(ctx *c, check_store *s, int rc)
{
    if (rc == KV_NOTFOUND) {
        s->man_state = KV_NOTFOUND;
        add(c, KV_MANIFEST_NAME, CHECK_MISSING, 0, 0, 0, "MANIFEST is missing: which segments "
            "make up the store is unknown (each file is checked on its own)");
        return KV_OK;
    }
    if (rc != KV_OK)
        return rc;
    c->sum->files++;
    c->sum->bytes += s->man.size;
    progress(c, s->man.size);
    if (s->man.status == KV_EVERSION)
        return err_set(KV_EVERSION, "%s/MANIFEST: %s", s->dir, s->man.why);
    s->man_state = s->man.status;
    if (s->man.status != KV_OK)
        add(c, KV_MANIFEST_NAME, CHECK_DAMAGE, 1, s->man.bad_off, 0, "%s (each file is checked "
            "on its own)", s->man.why);
    else
        c->sum->generation = s->man.m.generation;
    return KV_OK;
}

static void store_reset(check_store *s)
{
    inspect_manifest_free(&s->man);
    memset(&s->man, 0, sizeof s->man);
    free(s->ents);
    free(s->files);
    free(s->left);
    s->ents = NULL;
    s->files = NULL;
    s->left = NULL;
    s->nents = s->nfiles = s->nleft = 0;
    s->lock_bad = 0;
}

/* One pass over the store: the MANIFEST first, then the directory (so every file it
 * names that a writer has not removed since is listed), then each file. *now gets
 * the MANIFEST as it is once the pass ended. Returns KV_OK, CHANGED (a file without
 * a usable MANIFEST vanished: pass again), or an error. */
static int store_pass(ctx *c, check_store *s, int locked, inspect_manifest *now)
{
    long pid = 0;
    store_reset(s);
    int man_rc = inspect_manifest_read(s->io, s->dirfd, KV_MANIFEST_NAME, &s->man);
    int rc = inspect_list_dir(s->dirfd, &s->ents, &s->nents);
    if (rc == KV_OK)
        rc = is_store(s);
    if (rc == KV_OK)
        rc = refuse_newer(s);
    if (rc == KV_OK && man_rc != KV_NOTFOUND)
        rc = man_rc;
    if (rc != KV_OK)
        return rc;
    c->total = bytes_to_read(s);
    /* a writer other than us: kvcheck --repair checks under its own writer lock */
    if (!locked && inspect_lock_holder(s->dirfd, &pid) == 1 && pid != (long)getpid())
        s->writer_pid = pid > 0 ? pid : -1;
    else
        s->writer_pid = 0;
    c->sum->writer_pid = s->writer_pid;
    if (s->writer_pid != 0)
        add(c, "", 0, 0, 0, 0, "a writer (pid %ld) holds the store: its active "
            "segment and WAL file are read up to their size when the check began",
            s->writer_pid);
    rc = check_manifest(c, s, man_rc);
    if (rc == KV_OK && s->man_state != KV_OK)
        rc = check_unnamed(c, s);
    else if (rc == KV_OK)
        rc = assign_roles(s);
    for (size_t i = 0; i < s->nfiles && rc == KV_OK && s->man_state == KV_OK; i++)
        rc = check_named(c, s, &s->files[i]);
    if (rc == KV_OK && s->man_state == KV_OK)
        rc = judge_unfinished(c, s);
    if (rc == KV_OK && s->man_state == KV_OK)
        rc = check_others(c, s);
    if (rc == KV_OK && s->man_state == KV_OK && find_ent(s, "LOCK") != NULL)
        rc = check_lock(c, s);
    if (rc == KV_OK && inspect_manifest_read(s->io, s->dirfd, KV_MANIFEST_NAME, now) != KV_OK)
        now->status = KV_NOTFOUND; /* unreadable now: not usable */
    return rc;
}

/* ---- a store a writer changes -------------------------------------------------------- */

/* Whether the MANIFEST a pass began with (s) and the one in force after it (now)
 * differ: a writer published a new one meanwhile. */
static int manifest_moved(const check_store *s, const inspect_manifest *now)
{
    int was = s->man_state == KV_OK, is = now->status == KV_OK;
    return was != is || (was && now->m.generation != s->man.m.generation);
}

/* Whether m names file `name` (a segment, its WAL file or its hint) as part of the
 * store: sealed (segment, hint), or the active pair (segment, WAL file). */
static int manifest_names(const kv_manifest *m, const char *name)
{
    uint32_t num;
    int kind = file_parse_name(name, &num);
    int sealed = 0;
    for (uint32_t i = 0; i < m->nsealed && !sealed; i++)
        sealed = m->sealed[i].number == num;
    if (kind == KV_FILE_SEG)
        return sealed || m->active == num;
    if (kind == KV_FILE_WAL)
        return m->active == num;
    return kind == KV_FILE_HINT && sealed;
}

/* After a pass during which a writer published a new MANIFEST: a problem of a file
 * the pass's MANIFEST named and the new one does not (a WAL file a roll removed, a
 * segment or hint a compaction removed, missing or vanished while read) is no
 * damage — the store moved on — and becomes a note. */
static void drop_moved_on(ctx *c, const check_store *s, const inspect_manifest *now)
{
    for (size_t i = 0; i < c->n; i++) {
        finding *f = &c->v[i];
        char what[sizeof f->what];
        if (f->kind == 0 || !manifest_names(&s->man.m, f->file)
            || (now->status == KV_OK && manifest_names(&now->m, f->file)))
            continue;
        snprintf(what, sizeof what, "%s", f->what);
        snprintf(f->what, sizeof f->what, "%.200s; a writer has since replaced the MANIFEST, "
                 "which no longer names it: not part of the store any more", what);
        f->kind = 0;
        c->sum->damaged--;
    }
}

/* Whether the problems of this pass are those of the one before it (prev, np): the
 * same files, kinds and offsets, in the same order. */
static int same_problems(const ctx *c, const finding *prev, size_t np)
{
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++) {
        const finding *f = &c->v[i];
        if (f->kind == 0)
            continue;
        if (k == np || strcmp(f->file, prev[k].file) != 0 || f->kind != prev[k].kind
            || f->has_off != prev[k].has_off || f->off != prev[k].off)
            return 0;
        k++;
    }
    return k == np;
}

/* Keeps the problems of this pass in *prev (*np of them) for the next one. */
static int keep_problems(const ctx *c, finding **prev, size_t *np)
{
    *np = 0;
    free(*prev);
    *prev = malloc((c->n ? c->n : 1) * sizeof **prev);
    if (*prev == NULL)
        return KV_ENOMEM;
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].kind != 0)
            (*prev)[(*np)++] = c->v[i];
    return KV_OK;
}

/* One pass and its verdict: KV_OK when what it found can be told, CHANGED when it
 * must pass again, or an error. A pass is told when it found no problem (after
 * drop_moved_on), when nothing can have changed the store under it (no writer held
 * it and the MANIFEST stayed the same), or when the pass before it found the same
 * problems: damage is only reported once two passes in a row saw it. */
static int judged_pass(ctx *c, check_store *st, int locked, finding **prev, size_t *np,
                       int pass)
{
    inspect_manifest now;
    memset(&now, 0, sizeof now);
    forget(c);
    memset(c->sum, 0, sizeof *c->sum);
    int rc = store_pass(c, st, locked, &now);
    int moved = rc == KV_OK && manifest_moved(st, &now);
    if (moved)
        drop_moved_on(c, st, &now);
    inspect_manifest_free(&now);
    if (rc != KV_OK && rc != CHANGED)
        return rc;
    if (rc == KV_OK && (c->sum->damaged == 0 || (!moved && st->writer_pid == 0)
                        || (pass > 0 && same_problems(c, *prev, *np))))
        return KV_OK;
    if (keep_problems(c, prev, np) != KV_OK)
        return err_set(KV_ENOMEM, "%s: keeping the problems found", st->dir);
    return CHANGED;
}

/* Pauses before pass `pass` + 1 (1, 2, 4 ... 32 ms), whatever signals arrive. */
static void pass_backoff(int pass)
{
    unsigned ms = pass < 5 ? 1u << pass : 32u;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)ms * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int check_store_run(const char *dir, int dirfd, kv_io *io, const check_fns *fns,
                    check_summary *sum, check_store *st, int locked)
{
    ctx c = {.fns = fns, .sum = sum};
    finding *prev = NULL;
    size_t np = 0;
    memset(st, 0, sizeof *st);
    st->dir = dir;
    st->dirfd = dirfd;
    st->io = io;
    int rc = CHANGED;
    for (int pass = 0; pass < PASSES && rc == CHANGED; pass++) {
        if (pass > 0)
            pass_backoff(pass - 1);
        rc = judged_pass(&c, st, locked, &prev, &np, pass);
    }
    free(prev);
    if (rc == CHANGED)
        rc = err_set(KV_EIO, "%s: the store kept changing while it was read (%d passes)", dir,
                    PASSES);
    if (rc == KV_OK && c.nomem)
        rc = err_set(KV_ENOMEM, "%s: keeping the problems found", dir);
    if (rc == KV_OK)
        tell(&c);
    free(c.v);
    return rc;
}

void check_store_free(check_store *s) { store_reset(s); }

/* ---- one file ---------------------------------------------------------------------- */

/* Checks one file outside a store: what its kind allows. */
static int check_one(ctx *c, check_store *s, const char *path)
{
    inspect_id id;
    int rc = inspect_identify(s->io, AT_FDCWD, path, &id);
    if (rc == KV_NOTFOUND)
        return err_set(KV_EINVAL, "%s: no such file or directory", path);
    if (rc != KV_OK)
        return rc;
    c->sum->single = 1;
    c->sum->kind = id.kind;
    c->total = id.size;
    if (id.kind == INSPECT_UNKNOWN)
        return err_set(KV_EINVAL, "%s: not a kv file (neither its name nor its first bytes are "
                      "a kv file's)", path);
    if (id.hdr.status == INSPECT_HDR_NEWER)
        return err_set(KV_EVERSION, "%s: %s", path, id.hdr.why);
    s->dirfd = AT_FDCWD;
    if (id.kind == INSPECT_SEG || id.kind == INSPECT_WAL) {
        if (add_file(s, ROLE_NONE, id.kind, id.number, 0) != KV_OK)
            return KV_ENOMEM;
        check_file *f = &s->files[0];
        snprintf(f->source, sizeof f->source, "%s", path);
        rc = check_record_file(c, s, f, NULL, NULL, 0,
                               " (a torn tail, if this is the newest segment or WAL file)");
        c->sum->ok_up_to = f->hdr.status == INSPECT_HDR_OK ? f->walk.ok_up_to : 0;
        return rc == CHANGED ? err_set(KV_EIO, "%s: vanished while read", path) : rc;
    }
    if (id.kind == INSPECT_HINT || id.kind == INSPECT_HINT_TMP)
        return check_hint_alone(c, s->io, AT_FDCWD, path, id.number, path);
    if (id.kind == INSPECT_LOCK) {
        int bad;
        return check_lock_file(c, s->io, AT_FDCWD, path, path, &bad);
    }
    inspect_manifest m; /* INSPECT_MANIFEST or _TMP */
    rc = inspect_manifest_read(s->io, AT_FDCWD, path, &m);
    if (rc == KV_OK) {
        c->sum->files++;
        c->sum->bytes += m.size;
        if (m.status == KV_EVERSION)
            rc = err_set(KV_EVERSION, "%s: %s", path, m.why);
        else if (m.status != KV_OK)
            add(c, path, CHECK_DAMAGE, 1, m.bad_off, 0, "%s", m.why);
    }
    inspect_manifest_free(&m);
    return rc;
}

/* ---- check_path -------------------------------------------------------------------- */

int check_path(const char *path, const check_fns *fns, check_summary *sum)
{
    struct stat st;
    kv_io *io;
    memset(sum, 0, sizeof *sum);
    err_clear();
    if (path == NULL || path[0] == '\0')
        return err_set(KV_EINVAL, "no path given");
    if (stat(path, &st) != 0)
        return errno == ENOENT || errno == ENOTDIR
                   ? err_set(KV_EINVAL, "%s: no such file or directory", path)
                   : err_errno(errno, "%s", path);
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
        return err_set(KV_EINVAL, "%s: not a directory or a regular file", path);
    int rc = io_new(KV_IO_PSYNC, &io);
    if (rc != KV_OK)
        return rc;
    check_store s;
    memset(&s, 0, sizeof s);
    s.dir = path;
    s.io = io;
    if (S_ISREG(st.st_mode)) {
        ctx c = {.fns = fns, .sum = sum};
        rc = check_one(&c, &s, path);
        if (rc == KV_OK && c.nomem)
            rc = err_set(KV_ENOMEM, "%s: keeping the problems found", path);
        if (rc == KV_OK)
            tell(&c);
        free(c.v);
    } else {
        int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
            rc = err_errno(errno, "%s: opening the directory", path);
        else
            rc = check_store_run(path, dirfd, io, fns, sum, &s, 0);
        if (dirfd >= 0)
            close(dirfd);
    }
    check_store_free(&s);
    io_free(io);
    return rc;
}
