/*
 * faultio.c — the fault-injecting I/O layer of the crash-simulation suite (see
 * faultio.h for the model; docs/CRASH_MODEL.md for why it is the right one).
 *
 * The live layer performs every call on the real files (the kernel's view) and
 * appends what changed to an event log: a file created, renamed or unlinked, the
 * directory fsynced, bytes written (with a copy of them), a file truncated or
 * fdatasynced. A replay walks that log call by call with two views per file, the
 * durable bytes and the writes pending since its last fdatasync, and two views of
 * the directory, the durable names and the directory operations pending since its
 * last fsync. A crash image is the durable view plus some choice of what was
 * pending, chosen by a variant and a seed.
 *
 * Sections: small buffers and name maps, the live layer (call accounting, the
 * kv_io operations, construction), replay, images.
 */
#include "faultio.h"

#include "kvtest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define FIO_NAME 40    /* longest name kept (kv's names are at most 16 bytes) */
#define FIO_PAGE 4096u /* granularity of FIO_V_SUBSET */

enum { EV_CREATE = 1, EV_RENAME, EV_UNLINK, EV_SYNCDIR, EV_WRITE, EV_TRUNC, EV_SYNC };

typedef struct fio_ev {
    uint64_t call;           /* the call it belongs to */
    uint8_t kind;            /* EV_* */
    int ino;                 /* the file (CREATE, RENAME, WRITE, TRUNC, SYNC) */
    uint64_t off;            /* WRITE: offset; TRUNC: new size */
    size_t len;              /* WRITE: bytes */
    uint8_t *data;           /* WRITE: a copy of them */
    char name[FIO_NAME];     /* CREATE, UNLINK: the name; RENAME: from */
    char name2[FIO_NAME];    /* RENAME: to */
} fio_ev;

typedef struct fio_name {
    char name[FIO_NAME];
    int ino;
} fio_name;

typedef struct fio_map {
    fio_name *v;
    size_t n, cap;
} fio_map;

typedef struct fio_fd {
    int fd;
    int ino;
} fio_fd;

typedef struct fio_ino {
    uint8_t *init;   /* content found by fio_new (durable at call 0), or NULL */
    size_t init_len;
    char name[FIO_NAME]; /* latest name, for messages */
} fio_ino;

struct fio {
    pthread_mutex_t mu;      /* every live call */
    char *dir;               /* the real directory */
    fio_ino *inos;           /* every file the layer has seen, by id */
    size_t ninos, inocap;
    fio_map names;           /* the kernel's directory now */
    fio_map init_names;      /* the directory fio_new found */
    fio_fd *fds;             /* open descriptors -> file ids */
    size_t nfds, fdcap;
    fio_ev *ev;              /* the event log */
    size_t nev, evcap;
    fio_call *calls;         /* calls[k - 1] is call k */
    size_t ncalls, callcap;
    uint64_t fail_at;        /* call to fail, 0 for none */
    int fail_op;             /* fio_fail_nth: kind of call to fail, or 0 */
    char fail_suffix[16];    /* ... on names ending so */
    unsigned fail_nth, fail_seen; /* ... the nth of them; how many were seen */
    int drop_op;             /* fio_drop: kind of call made ineffective, or 0 */
    char drop_suffix[16];    /* ... on names ending so */
    char model_err[200];     /* first thing the layer could not model */
};

const char *const fio_variant_name[FIO_V_COUNT] = {
    "durable", "kernel", "tear-last", "subset", "prefix", "flip",
};

/* ---- small buffers and name maps --------------------------------------------------- */

/* grow() (tools/grow.h) for the tables below: -ENOMEM, as a file system would say. */
static int fio_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    void *np = grow(*p, cap, need, elem, 16, 0);
    if (np == NULL)
        return -ENOMEM;
    *p = np;
    return 0;
}

typedef struct fio_buf {
    uint8_t *p;
    size_t len, cap;
} fio_buf;

static int buf_resize(fio_buf *b, size_t len)
{
    if (fio_grow((void **)&b->p, &b->cap, len ? len : 1, 1) != 0)
        return -ENOMEM;
    if (len > b->len)
        memset(b->p + b->len, 0, len - b->len);
    b->len = len;
    return 0;
}

static int buf_write(fio_buf *b, uint64_t off, const uint8_t *data, size_t len)
{
    if (off + len > b->len && buf_resize(b, (size_t)off + len) != 0)
        return -ENOMEM;
    if (len > 0)
        memcpy(b->p + off, data, len);
    return 0;
}

/* Sets the bytes (an empty buffer still gets memory: data is never NULL). */
static int buf_set(fio_buf *b, const uint8_t *data, size_t len)
{
    b->len = 0;
    if (buf_resize(b, len) != 0)
        return -ENOMEM;
    if (len > 0)
        memcpy(b->p, data, len);
    return 0;
}

static long map_find(const fio_map *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->v[i].name, name) == 0)
            return (long)i;
    return -1;
}

static int map_set(fio_map *m, const char *name, int ino)
{
    long i = map_find(m, name);
    if (i >= 0) {
        m->v[i].ino = ino;
        return 0;
    }
    if (fio_grow((void **)&m->v, &m->cap, m->n + 1, sizeof *m->v) != 0)
        return -ENOMEM;
    snprintf(m->v[m->n].name, FIO_NAME, "%s", name);
    m->v[m->n].ino = ino;
    m->n++;
    return 0;
}

static void map_del(fio_map *m, const char *name)
{
    long i = map_find(m, name);
    if (i >= 0)
        m->v[i] = m->v[--m->n];
}

static int map_get(const fio_map *m, const char *name)
{
    long i = map_find(m, name);
    return i >= 0 ? m->v[i].ino : -1;
}

/* rename(2) on a map: from's file now has the name to (replacing what had it). */
static int map_rename(fio_map *m, const char *from, const char *to)
{
    int ino = map_get(m, from);
    if (ino < 0)
        return 0;
    map_del(m, from);
    return map_set(m, to, ino);
}

static int map_copy(fio_map *dst, const fio_map *src)
{
    if (fio_grow((void **)&dst->v, &dst->cap, src->n ? src->n : 1, sizeof *dst->v) != 0)
        return -ENOMEM;
    if (src->n > 0)
        memcpy(dst->v, src->v, src->n * sizeof *src->v);
    dst->n = src->n;
    return 0;
}

/* ---- the live layer: call accounting ----------------------------------------------- */

__attribute__((format(printf, 2, 3))) static void model_error(fio *f, const char *fmt, ...)
{
    va_list ap;
    if (f->model_err[0] != '\0')
        return;
    va_start(ap, fmt);
    vsnprintf(f->model_err, sizeof f->model_err, fmt, ap);
    va_end(ap);
}

/* Counts a call (the layer's mutex held) and says whether it is the one to fail. */
static uint64_t begin_call(fio *f, int op, const char *name, int *fail)
{
    if (fio_grow((void **)&f->calls, &f->callcap, f->ncalls + 1, sizeof *f->calls) != 0) {
        model_error(f, "%s", "out of memory for the call log");
        *fail = 0;
        return f->ncalls;
    }
    fio_call *c = &f->calls[f->ncalls++];
    memset(c, 0, sizeof *c);
    c->op = (uint8_t)op;
    snprintf(c->name, sizeof c->name, "%s", name);
    *fail = f->ncalls == f->fail_at;
    if (f->fail_op == op) {
        size_t nl = strlen(name), sl = strlen(f->fail_suffix);
        if (nl >= sl && strcmp(name + nl - sl, f->fail_suffix) == 0 && ++f->fail_seen == f->fail_nth)
            *fail = 1;
    }
    c->injected = (uint8_t)*fail;
    return f->ncalls;
}

static long end_call(fio *f, uint64_t k, long rc)
{
    if (k >= 1 && k <= f->ncalls)
        f->calls[k - 1].rc = (int)rc;
    return rc;
}

static int log_ev(fio *f, uint64_t call, int kind, int ino, const char *name,
                  const char *name2, uint64_t off, const void *data, size_t len)
{
    if (fio_grow((void **)&f->ev, &f->evcap, f->nev + 1, sizeof *f->ev) != 0) {
        model_error(f, "%s", "out of memory for the event log");
        return -ENOMEM;
    }
    fio_ev *e = &f->ev[f->nev];
    memset(e, 0, sizeof *e);
    e->call = call;
    e->kind = (uint8_t)kind;
    e->ino = ino;
    e->off = off;
    if (name != NULL)
        snprintf(e->name, sizeof e->name, "%s", name);
    if (name2 != NULL)
        snprintf(e->name2, sizeof e->name2, "%s", name2);
    if (kind == EV_WRITE) {
        e->data = malloc(len ? len : 1);
        if (e->data == NULL) {
            model_error(f, "%s", "out of memory for a logged write");
            return -ENOMEM;
        }
        memcpy(e->data, data, len);
        e->len = len;
    }
    f->nev++;
    return 0;
}

static int new_ino(fio *f, const char *name, const uint8_t *init, size_t init_len)
{
    if (fio_grow((void **)&f->inos, &f->inocap, f->ninos + 1, sizeof *f->inos) != 0)
        return -1;
    fio_ino *in = &f->inos[f->ninos];
    memset(in, 0, sizeof *in);
    snprintf(in->name, sizeof in->name, "%s", name);
    if (init_len > 0) {
        in->init = malloc(init_len);
        if (in->init == NULL)
            return -1;
        memcpy(in->init, init, init_len);
        in->init_len = init_len;
    }
    return (int)f->ninos++;
}

static int fd_ino(fio *f, int fd)
{
    for (size_t i = 0; i < f->nfds; i++)
        if (f->fds[i].fd == fd)
            return f->fds[i].ino;
    return -1;
}

static const char *fd_name(fio *f, int fd)
{
    int ino = fd_ino(f, fd);
    return ino >= 0 ? f->inos[ino].name : "?";
}

/* ---- the live layer: the kv_io operations ------------------------------------------ */

static int fo_open(kv_io *io, int dirfd, const char *name, int flags, int mode)
{
    fio *f = io->ctx;
    struct stat st;
    int fail;
    pthread_mutex_lock(&f->mu);
    uint64_t k = begin_call(f, FIO_OPEN, name, &fail);
    int rc = -EIO;
    if (!fail) {
        int existed = fstatat(dirfd, name, &st, 0) == 0;
        rc = openat(dirfd, name, flags | O_CLOEXEC, mode);
        if (rc < 0) {
            rc = -errno;
        } else {
            int ino = existed ? map_get(&f->names, name) : new_ino(f, name, NULL, 0);
            if (ino < 0)
                model_error(f, "open: %s is a file the layer did not see created", name);
            else if (!existed)
                log_ev(f, k, EV_CREATE, ino, name, NULL, 0, NULL, 0);
            else if ((flags & O_TRUNC) && st.st_size > 0)
                log_ev(f, k, EV_TRUNC, ino, NULL, NULL, 0, NULL, 0);
            if (!existed && map_set(&f->names, name, ino) != 0)
                model_error(f, "%s", "out of memory for a name");
            if (fio_grow((void **)&f->fds, &f->fdcap, f->nfds + 1, sizeof *f->fds) != 0)
                model_error(f, "%s", "out of memory for a descriptor");
            else
                f->fds[f->nfds++] = (fio_fd){rc, ino};
        }
    }
    end_call(f, k, rc);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int fo_close(kv_io *io, int fd)
{
    fio *f = io->ctx;
    int fail;
    pthread_mutex_lock(&f->mu);
    uint64_t k = begin_call(f, FIO_CLOSE, fd_name(f, fd), &fail);
    for (size_t i = 0; i < f->nfds; i++)
        if (f->fds[i].fd == fd) {
            f->fds[i] = f->fds[--f->nfds];
            break;
        }
    int rc = close(fd) < 0 ? -errno : 0; /* closed even when "failing", as Linux does */
    if (fail)
        rc = -EIO;
    end_call(f, k, rc);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static ssize_t fo_pread(kv_io *io, int fd, void *buf, size_t n, uint64_t off)
{
    fio *f = io->ctx;
    int fail;
    pthread_mutex_lock(&f->mu);
    uint64_t k = begin_call(f, FIO_PREAD, fd_name(f, fd), &fail);
    ssize_t r = -EIO;
    if (!fail) {
        r = pread(fd, buf, n, (off_t)off);
        if (r < 0)
            r = -errno;
    }
    end_call(f, k, r);
    pthread_mutex_unlock(&f->mu);
    return r;
}

/* Writes len bytes at off (all of them, or half when failing: a disk filling up)
 * and logs what reached the file. Returns 0 or -errno. */
static int write_logged(fio *f, uint64_t k, int fd, const uint8_t *data, size_t len,
                        uint64_t off, int fail)
{
    size_t want = fail ? len / 2 : len, done = 0;
    int rc = 0;
    while (done < want) {
        ssize_t w = pwrite(fd, data + done, want - done, (off_t)(off + done));
        if (w <= 0) {
            rc = w < 0 ? -errno : -EIO;
            break;
        }
        done += (size_t)w;
    }
    if (done > 0)
        log_ev(f, k, EV_WRITE, fd_ino(f, fd), NULL, NULL, off, data, done);
    return fail ? -ENOSPC : rc;
}

static ssize_t fo_pwrite(kv_io *io, int fd, const void *buf, size_t n, uint64_t off)
{
    fio *f = io->ctx;
    int fail;
    pthread_mutex_lock(&f->mu);
    uint64_t k = begin_call(f, FIO_PWRITE, fd_name(f, fd), &fail);
    int rc = write_logged(f, k, fd, buf, n, off, fail);
    ssize_t r = rc < 0 ? rc : (ssize_t)n;
    end_call(f, k, r);
    pthread_mutex_unlock(&f->mu);
    return r;
}

/* An fdatasync: the file's bytes are now durable (the event says so; the real
 * files live in the kernel's view only, so no real fdatasync is needed). */
static int dropped(fio *f, int op, const char *name)
{
    size_t nl = strlen(name), sl = strlen(f->drop_suffix);
    return f->drop_op == op && nl >= sl && strcmp(name + nl - sl, f->drop_suffix) == 0;
}

static int sync_logged(fio *f, int op, int fd)
{
    int fail;
    uint64_t k = begin_call(f, op, fd_name(f, fd), &fail);
    int rc = fail ? -EIO : 0;
    if (!fail && !dropped(f, op, fd_name(f, fd)))
        log_ev(f, k, EV_SYNC, fd_ino(f, fd), NULL, NULL, 0, NULL, 0);
    return (int)end_call(f, k, rc);
}

static int fo_fdatasync(kv_io *io, int fd)
{
    fio *f = io->ctx;
    pthread_mutex_lock(&f->mu);
    int rc = sync_logged(f, FIO_FDATASYNC, fd);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int fo_ftruncate(kv_io *io, int fd, uint64_t size)
{
    fio *f = io->ctx;
    int fail;
    pthread_mutex_lock(&f->mu);
    uint64_t k = begin_call(f, FIO_FTRUNCATE, fd_name(f, fd), &fail);
    int rc = -EIO;
    if (!fail) {
        rc = ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
        if (rc == 0)
            log_ev(f, k, EV_TRUNC, fd_ino(f, fd), NULL, NULL, size, NULL, 0);
    }
    end_call(f, k, rc);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int fo_fsize(kv_io *io, int fd, uint64_t *size)
{
    fio *f = io->ctx;
    struct stat st;
    int fail;
    pthread_mutex_lock(&f->mu);
    uint64_t k = begin_call(f, FIO_FSIZE, fd_name(f, fd), &fail);
    int rc = -EIO;
    if (!fail) {
        rc = fstat(fd, &st) < 0 ? -errno : 0;
        if (rc == 0)
            *size = (uint64_t)st.st_size;
    }
    end_call(f, k, rc);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int fo_rename(kv_io *io, int dirfd, const char *from, const char *to)
{
    fio *f = io->ctx;
    int fail;
    pthread_mutex_lock(&f->mu);
    uint64_t k = begin_call(f, FIO_RENAME, from, &fail);
    int rc = -EIO;
    if (!fail) {
        rc = renameat(dirfd, from, dirfd, to) < 0 ? -errno : 0;
        int ino = map_get(&f->names, from);
        if (rc == 0 && ino < 0)
            model_error(f, "rename: %s is a file the layer did not see created", from);
        if (rc == 0 && ino >= 0) {
            log_ev(f, k, EV_RENAME, ino, from, to, 0, NULL, 0);
            map_rename(&f->names, from, to);
            snprintf(f->inos[ino].name, FIO_NAME, "%s", to);
        }
    }
    end_call(f, k, rc);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int unlink_logged(fio *f, uint64_t k, int dirfd, const char *name)
{
    int rc = unlinkat(dirfd, name, 0) < 0 ? -errno : 0;
    if (rc == 0) {
        log_ev(f, k, EV_UNLINK, map_get(&f->names, name), name, NULL, 0, NULL, 0);
        map_del(&f->names, name);
    }
    return rc;
}

static int fo_unlink(kv_io *io, int dirfd, const char *name)
{
    fio *f = io->ctx;
    int fail;
    pthread_mutex_lock(&f->mu);
    uint64_t k = begin_call(f, FIO_UNLINK, name, &fail);
    int rc = fail ? -EIO : unlink_logged(f, k, dirfd, name);
    end_call(f, k, rc);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int fo_syncdir(kv_io *io, int dirfd)
{
    fio *f = io->ctx;
    int fail;
    pthread_mutex_lock(&f->mu);
    uint64_t k = begin_call(f, FIO_SYNCDIR, ".", &fail);
    if (!fail && !dropped(f, FIO_SYNCDIR, "."))
        log_ev(f, k, EV_SYNCDIR, -1, NULL, NULL, 0, NULL, 0);
    int rc = (int)end_call(f, k, fail ? -EIO : 0);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

/* The ring's submission, modelled: the write (one call), then, when sync is set and
 * the write completed, the linked fdatasync (a second call). A failed write cancels
 * the fdatasync, as IOSQE_IO_LINK does. */
static int fo_write_group(kv_io *io, int fd, const struct iovec *iov, int iovcnt,
                          uint64_t off, int sync)
{
    fio *f = io->ctx;
    size_t total = 0, at = 0;
    int fail;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    uint8_t *all = malloc(total ? total : 1);
    if (all == NULL)
        return -ENOMEM;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(all + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    pthread_mutex_lock(&f->mu);
    uint64_t k = begin_call(f, FIO_WG_WRITE, fd_name(f, fd), &fail);
    int rc = (int)end_call(f, k, write_logged(f, k, fd, all, total, off, fail));
    if (rc == 0 && sync)
        rc = sync_logged(f, FIO_WG_SYNC, fd);
    pthread_mutex_unlock(&f->mu);
    free(all);
    return rc;
}

/* Reads through mappings see the real file, which is the kernel's view. */
static int fo_map(kv_io *io, int fd, size_t len, const void **out)
{
    fio *f = io->ctx;
    int fail;
    pthread_mutex_lock(&f->mu);
    uint64_t k = begin_call(f, FIO_MAP, fd_name(f, fd), &fail);
    int rc = -EIO;
    if (!fail) {
        void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
        rc = p == MAP_FAILED ? -errno : 0;
        if (rc == 0)
            *out = p;
    }
    end_call(f, k, rc);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static void fo_unmap(kv_io *io, const void *p, size_t len)
{
    munmap((void *)(uintptr_t)p, len);
}

static const kv_io_ops fio_ops = {
    fo_open, fo_close, fo_pread, fo_pwrite, fo_fdatasync, fo_ftruncate, fo_fsize,
    fo_rename, fo_unlink, fo_syncdir, fo_write_group, fo_map, fo_unmap,
};

/* ---- the live layer: construction -------------------------------------------------- */

static void fio_io_destroy(kv_io *io) { free(io); }

int fio_make_io(fio *f, int want, kv_io **out)
{
    kv_io *io = calloc(1, sizeof *io);
    *out = NULL;
    if (io == NULL)
        return KV_ENOMEM;
    io->ops = &fio_ops;
    io->ctx = f;
    io->backend = want == KV_IO_PSYNC ? KV_IO_PSYNC : KV_IO_URING;
    io->destroy = fio_io_destroy;
    snprintf(io->note, sizeof io->note, "faultio: simulated page cache and disk");
    *out = io;
    return KV_OK;
}

static int read_whole(int dirfd, const char *name, uint8_t **out, size_t *len)
{
    struct stat st;
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fstat(fd, &st) < 0 ? -errno : 0;
    uint8_t *b = rc == 0 ? malloc((size_t)st.st_size + 1) : NULL;
    if (rc == 0 && b == NULL)
        rc = -ENOMEM;
    if (rc == 0 && pread(fd, b, (size_t)st.st_size, 0) != st.st_size)
        rc = -EIO;
    close(fd);
    if (rc != 0) {
        free(b);
        return rc;
    }
    *out = b;
    *len = (size_t)st.st_size;
    return 0;
}

/* Takes the regular files of the directory as durable files with durable names. */
static int adopt_files(fio *f)
{
    int dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    struct dirent *de;
    int rc = 0;
    if (d == NULL) {
        if (dfd >= 0)
            close(dfd);
        return -errno;
    }
    while (rc == 0 && (de = readdir(d)) != NULL) {
        uint8_t *b = NULL;
        size_t len = 0;
        struct stat st;
        if (fstatat(dfd, de->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode)
            || strlen(de->d_name) >= FIO_NAME)
            continue;
        rc = read_whole(dfd, de->d_name, &b, &len);
        int ino = rc == 0 ? new_ino(f, de->d_name, b, len) : -1;
        if (rc == 0 && (ino < 0 || map_set(&f->names, de->d_name, ino) != 0))
            rc = -ENOMEM;
        free(b);
    }
    closedir(d);
    return rc == 0 ? map_copy(&f->init_names, &f->names) : rc;
}

fio *fio_new(const char *dir)
{
    fio *f = calloc(1, sizeof *f);
    if (f == NULL || (f->dir = strdup(dir)) == NULL) {
        free(f);
        return NULL;
    }
    pthread_mutex_init(&f->mu, NULL);
    if (adopt_files(f) != 0) {
        fio_free(f);
        return NULL;
    }
    return f;
}

void fio_free(fio *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->nev; i++)
        free(f->ev[i].data);
    for (size_t i = 0; i < f->ninos; i++)
        free(f->inos[i].init);
    free(f->ev);
    free(f->inos);
    free(f->names.v);
    free(f->init_names.v);
    free(f->fds);
    free(f->calls);
    pthread_mutex_destroy(&f->mu);
    free(f->dir);
    free(f);
}

const char *fio_dir(const fio *f) { return f->dir; }

uint64_t fio_calls(fio *f)
{
    pthread_mutex_lock(&f->mu);
    uint64_t n = f->ncalls;
    pthread_mutex_unlock(&f->mu);
    return n;
}

const fio_call *fio_call_at(fio *f, uint64_t k)
{
    return k >= 1 && k <= f->ncalls ? &f->calls[k - 1] : NULL;
}

void fio_fail_at(fio *f, uint64_t k) { f->fail_at = k; }

int fio_injected(fio *f)
{
    int any = 0;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->ncalls && !any; i++)
        any = f->calls[i].injected;
    pthread_mutex_unlock(&f->mu);
    return any;
}

void fio_fail_nth(fio *f, int op, const char *suffix, unsigned nth)
{
    f->fail_op = op;
    snprintf(f->fail_suffix, sizeof f->fail_suffix, "%s", suffix != NULL ? suffix : "");
    f->fail_nth = nth;
    f->fail_seen = 0;
}

void fio_drop(fio *f, int op, const char *suffix)
{
    f->drop_op = op;
    snprintf(f->drop_suffix, sizeof f->drop_suffix, "%s", suffix != NULL ? suffix : "");
}

const char *fio_model_error(fio *f) { return f->model_err[0] ? f->model_err : NULL; }

int fio_remove(fio *f, const char *name)
{
    pthread_mutex_lock(&f->mu);
    int dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = dfd < 0 ? -errno : unlink_logged(f, f->ncalls, dfd, name);
    if (dfd >= 0)
        close(dfd);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

const char *fio_describe(fio *f, uint64_t k, char *buf, size_t n)
{
    static const char *const opname[] = {
        "?", "open", "close", "pread", "pwrite", "fdatasync", "ftruncate", "fsize",
        "rename", "unlink", "syncdir", "write_group(write)", "write_group(fdatasync)", "map",
    };
    const fio_call *c = fio_call_at(f, k);
    if (c == NULL)
        snprintf(buf, n, "%llu (before any call)", (unsigned long long)k);
    else
        snprintf(buf, n, "%llu %s %s -> %d%s", (unsigned long long)k,
                 c->op < sizeof opname / sizeof *opname ? opname[c->op] : "?", c->name, c->rc,
                 c->injected ? " (injected)" : "");
    return buf;
}

/* ---- replay ------------------------------------------------------------------------ */

typedef struct rp_ino {
    fio_buf dur;   /* durable bytes */
    size_t *pend;  /* events (WRITE, TRUNC) since the last fdatasync */
    size_t npend, pcap;
} rp_ino;

struct fio_replay {
    fio *f;
    size_t next;   /* next event to apply */
    rp_ino *inos;
    size_t ninos;
    fio_map vol;   /* the directory as the kernel sees it */
    fio_map dur;   /* the durable directory */
    size_t *pdir;  /* directory events since the last directory fsync */
    size_t npdir, pdircap;
};

fio_replay *fio_replay_new(fio *f)
{
    fio_replay *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->f = f;
    r->ninos = f->ninos;
    r->inos = calloc(f->ninos ? f->ninos : 1, sizeof *r->inos);
    if (r->inos == NULL || map_copy(&r->vol, &f->init_names) != 0
        || map_copy(&r->dur, &f->init_names) != 0) {
        fio_replay_free(r);
        return NULL;
    }
    for (size_t i = 0; i < f->ninos; i++)
        if (f->inos[i].init_len > 0 && buf_set(&r->inos[i].dur, f->inos[i].init,
                                                f->inos[i].init_len) != 0) {
            fio_replay_free(r);
            return NULL;
        }
    return r;
}

void fio_replay_free(fio_replay *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; r->inos != NULL && i < r->ninos; i++) {
        free(r->inos[i].dur.p);
        free(r->inos[i].pend);
    }
    free(r->inos);
    free(r->vol.v);
    free(r->dur.v);
    free(r->pdir);
    free(r);
}

/* Applies event e to a file's bytes; a torn write keeps `keep` bytes (and with
 * zero_rest the file still grows to the write's end, the rest reading as zeros). */
static int apply_data(fio_buf *b, const fio_ev *e, size_t keep, int zero_rest)
{
    if (e->kind == EV_TRUNC)
        return buf_resize(b, (size_t)e->off);
    if (keep > e->len)
        keep = e->len;
    if (zero_rest && e->off + e->len > b->len && buf_resize(b, (size_t)(e->off + e->len)) != 0)
        return -ENOMEM;
    if (zero_rest && keep < e->len) {
        size_t from = (size_t)e->off + keep;
        memset(b->p + from, 0, e->len - keep);
    }
    return buf_write(b, e->off, e->data, keep);
}

static void rp_apply(fio_replay *r, size_t i)
{
    fio_ev *e = &r->f->ev[i];
    rp_ino *in = e->ino >= 0 && (size_t)e->ino < r->ninos ? &r->inos[e->ino] : NULL;
    int err = 0;
    switch (e->kind) {
    case EV_CREATE:
    case EV_RENAME:
    case EV_UNLINK:
        if (e->kind == EV_CREATE)
            err = map_set(&r->vol, e->name, e->ino);
        else if (e->kind == EV_RENAME)
            err = map_rename(&r->vol, e->name, e->name2);
        else
            map_del(&r->vol, e->name);
        if (err == 0)
            err = fio_grow((void **)&r->pdir, &r->pdircap, r->npdir + 1, sizeof *r->pdir);
        if (err == 0)
            r->pdir[r->npdir++] = i;
        break;
    case EV_SYNCDIR:
        err = map_copy(&r->dur, &r->vol);
        r->npdir = 0;
        break;
    case EV_WRITE:
    case EV_TRUNC:
        if (in != NULL && (err = fio_grow((void **)&in->pend, &in->pcap, in->npend + 1,
                                      sizeof *in->pend)) == 0)
            in->pend[in->npend++] = i;
        break;
    case EV_SYNC:
        for (size_t j = 0; in != NULL && j < in->npend && err == 0; j++)
            err = apply_data(&in->dur, &r->f->ev[in->pend[j]], SIZE_MAX, 0);
        if (in != NULL)
            in->npend = 0;
        break;
    }
    if (err != 0)
        model_error(r->f, "%s", "out of memory during replay");
}

void fio_replay_to(fio_replay *r, uint64_t k)
{
    while (r->next < r->f->nev && r->f->ev[r->next].call <= k)
        rp_apply(r, r->next++);
}

size_t fio_replay_pending(const fio_replay *r, size_t *dir_ops)
{
    size_t n = 0;
    for (size_t i = 0; i < r->ninos; i++)
        n += r->inos[i].npend;
    if (dir_ops != NULL)
        *dir_ops = r->npdir;
    return n;
}

/* ---- images ------------------------------------------------------------------------ */

/* The choices a variant makes, applied per file. */
typedef struct choice {
    fio_variant v;
    kvt_rng rng;
    size_t cut;        /* PREFIX: events below this index are kept */
    size_t torn;       /* PREFIX, TEAR_LAST: the event torn, or SIZE_MAX */
    size_t torn_keep;  /* bytes of it kept */
    int torn_zero;     /* the rest of it reads as zeros (the size made it) */
} choice;

/* The bytes of file ino under the choice. */
static int file_bytes(fio_replay *r, int ino, choice *c, fio_buf *out)
{
    rp_ino *in = &r->inos[ino];
    int err = buf_set(out, in->dur.p, in->dur.len);
    for (size_t j = 0; j < in->npend && err == 0 && c->v != FIO_V_DURABLE; j++) {
        size_t ei = in->pend[j];
        const fio_ev *e = &r->f->ev[ei];
        if (ei == c->torn) {
            err = apply_data(out, e, c->torn_keep, c->torn_zero);
        } else if (c->v == FIO_V_PREFIX) {
            if (ei < c->cut)
                err = apply_data(out, e, SIZE_MAX, 0);
        } else if (c->v == FIO_V_SUBSET && e->kind == EV_TRUNC) {
            if (kvt_rng_chance(&c->rng, 50))
                err = apply_data(out, e, SIZE_MAX, 0);
        } else if (c->v == FIO_V_SUBSET) {
            /* each piece within one 4 KiB page of the file is kept or lost alone */
            for (size_t at = 0; at < e->len && err == 0;) {
                uint64_t pos = e->off + at;
                size_t piece = FIO_PAGE - (size_t)(pos % FIO_PAGE);
                if (piece > e->len - at)
                    piece = e->len - at;
                if (kvt_rng_chance(&c->rng, 50))
                    err = buf_write(out, pos, e->data + at, piece);
                at += piece;
            }
        } else {
            err = apply_data(out, e, SIZE_MAX, 0);
        }
    }
    return err;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Sets up the choice for the variant: the cut and the torn write. Returns 1 when
 * the variant has nothing to choose from. */
static int plan(fio_replay *r, choice *c)
{
    size_t last_write = SIZE_MAX, ndata = 0, total;
    size_t *all = NULL;
    c->cut = SIZE_MAX;
    c->torn = SIZE_MAX;
    for (size_t i = 0; i < r->ninos; i++)
        for (size_t j = 0; j < r->inos[i].npend; j++) {
            size_t ei = r->inos[i].pend[j];
            ndata++;
            if (r->f->ev[ei].kind == EV_WRITE && (last_write == SIZE_MAX || ei > last_write))
                last_write = ei;
        }
    total = ndata + r->npdir;
    switch (c->v) {
    case FIO_V_DURABLE:
    case FIO_V_KERNEL:
        return 0;
    case FIO_V_SUBSET:
        return total == 0;
    case FIO_V_TEAR_LAST:
    case FIO_V_FLIP:
        if (last_write == SIZE_MAX)
            return 1;
        c->torn = c->v == FIO_V_TEAR_LAST ? last_write : SIZE_MAX;
        break;
    case FIO_V_PREFIX:
        if (total == 0)
            return 1;
        /* the pending events of all files and the directory, in the order made */
        all = malloc(total * sizeof *all);
        if (all == NULL)
            return -ENOMEM;
        size_t n = 0;
        for (size_t i = 0; i < r->ninos; i++)
            for (size_t j = 0; j < r->inos[i].npend; j++)
                all[n++] = r->inos[i].pend[j];
        for (size_t j = 0; j < r->npdir; j++)
            all[n++] = r->pdir[j];
        qsort(all, n, sizeof *all, cmp_size);
        c->cut = all[kvt_rng_below(&c->rng, total)];
        free(all);
        if (r->f->ev[c->cut].kind == EV_WRITE)
            c->torn = c->cut;
        break;
    default:
        return 1;
    }
    if (c->torn != SIZE_MAX) {
        size_t len = r->f->ev[c->torn].len;
        c->torn_keep = len >= 2 ? (size_t)kvt_rng_range(&c->rng, 1, len - 1) : 0;
        c->torn_zero = kvt_rng_chance(&c->rng, 50);
    }
    return 0;
}

/* The directory the image has: the durable names plus the pending operations the
 * variant keeps (always a prefix of them). */
static int image_names(fio_replay *r, choice *c, fio_map *names)
{
    size_t keep = 0;
    int err = map_copy(names, &r->dur);
    if (c->v == FIO_V_KERNEL || c->v == FIO_V_TEAR_LAST || c->v == FIO_V_FLIP)
        keep = r->npdir;
    else if (c->v == FIO_V_SUBSET)
        keep = (size_t)kvt_rng_below(&c->rng, r->npdir + 1);
    else if (c->v == FIO_V_PREFIX)
        while (keep < r->npdir && r->pdir[keep] < c->cut)
            keep++;
    for (size_t j = 0; j < keep && err == 0; j++) {
        const fio_ev *e = &r->f->ev[r->pdir[j]];
        if (e->kind == EV_CREATE)
            err = map_set(names, e->name, e->ino);
        else if (e->kind == EV_RENAME)
            err = map_rename(names, e->name, e->name2);
        else
            map_del(names, e->name);
    }
    return err;
}

/* Flips one bit of a pending write in the image, at a byte the image still has
 * (inos[i] is the file of img->files[i]). Returns 1 when there is none. */
static int flip_bit(fio_replay *r, choice *c, fio_image *img, const int *inos)
{
    size_t ncand = 0;
    for (int pass = 0; pass < 2; pass++) {
        size_t want = pass == 1 ? (size_t)kvt_rng_below(&c->rng, ncand) : 0, seen = 0;
        for (size_t fi = 0; fi < img->n; fi++) {
            rp_ino *in = &r->inos[inos[fi]];
            fio_file *ff = &img->files[fi];
            for (size_t j = 0; j < in->npend; j++) {
                const fio_ev *e = &r->f->ev[in->pend[j]];
                if (e->kind != EV_WRITE || e->len == 0 || e->off >= ff->len)
                    continue;
                if (pass == 0) {
                    ncand++;
                } else if (seen++ == want) {
                    uint64_t end = e->off + e->len < ff->len ? e->off + e->len : ff->len;
                    uint64_t pos = kvt_rng_range(&c->rng, e->off, end - 1);
                    ff->data[pos] ^= (uint8_t)(1u << kvt_rng_below(&c->rng, 8));
                    return 0;
                }
            }
        }
        if (ncand == 0)
            return 1;
    }
    return 1;
}

static int cmp_file(const void *a, const void *b)
{
    return strcmp(((const fio_file *)a)->name, ((const fio_file *)b)->name);
}

int fio_image_build(fio_replay *r, fio_variant v, uint64_t seed, fio_image *img)
{
    choice c = {.v = v};
    fio_map names = {0};
    memset(img, 0, sizeof *img);
    kvt_rng_seed(&c.rng, seed);
    int rc = plan(r, &c);
    if (rc != 0)
        return rc;
    rc = image_names(r, &c, &names);
    if (rc == 0 && names.n > 0 && (img->files = calloc(names.n, sizeof *img->files)) == NULL)
        rc = -ENOMEM;
    int *inos = rc == 0 ? calloc(names.n ? names.n : 1, sizeof *inos) : NULL;
    if (rc == 0 && inos == NULL)
        rc = -ENOMEM;
    for (size_t i = 0; i < names.n && rc == 0; i++) {
        fio_buf b = {0};
        fio_file *ff = &img->files[img->n];
        rc = file_bytes(r, names.v[i].ino, &c, &b);
        if (rc != 0) {
            free(b.p);
            break;
        }
        snprintf(ff->name, sizeof ff->name, "%s", names.v[i].name);
        ff->data = b.p;
        ff->len = b.len;
        inos[img->n++] = names.v[i].ino;
    }
    if (rc == 0 && v == FIO_V_FLIP)
        rc = flip_bit(r, &c, img, inos);
    free(inos);
    free(names.v);
    if (rc != 0) {
        fio_image_free(img);
        return rc;
    }
    if (img->n > 1)
        qsort(img->files, img->n, sizeof *img->files, cmp_file);
    XXH3_state_t *st = XXH3_createState();
    if (st == NULL) {
        fio_image_free(img);
        return -ENOMEM;
    }
    XXH3_128bits_reset(st);
    for (size_t i = 0; i < img->n; i++) {
        uint64_t len = img->files[i].len;
        XXH3_128bits_update(st, img->files[i].name, strlen(img->files[i].name) + 1);
        XXH3_128bits_update(st, &len, sizeof len);
        XXH3_128bits_update(st, img->files[i].data, img->files[i].len);
    }
    XXH128_hash_t h = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    img->hash[0] = h.low64;
    img->hash[1] = h.high64;
    return 0;
}

void fio_image_free(fio_image *img)
{
    for (size_t i = 0; i < img->n; i++)
        free(img->files[i].data);
    free(img->files);
    memset(img, 0, sizeof *img);
}

int fio_image_write(const fio_image *img, const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    int rc = 0;
    for (size_t i = 0; i < img->n && rc == 0; i++) {
        int fd = openat(dfd, img->files[i].name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            rc = -errno;
            break;
        }
        if (img->files[i].len > 0
            && write(fd, img->files[i].data, img->files[i].len) != (ssize_t)img->files[i].len)
            rc = -EIO;
        close(fd);
    }
    close(dfd);
    return rc;
}
