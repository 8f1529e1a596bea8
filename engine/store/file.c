/*
 * file.c — record files: naming, opening any store file safely (regular files
 * only, never blocking), create/open with header checks, the write buffer of the
 * active segment, reads, reference counting.
 */
#include "store/file.h"

#include "format/entry.h"
#include "base/kv_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- naming ------------------------------------------------------------------------ */

static const char *const kind_ext[] = {"", ".seg", ".wal", ".hint", ".hint.tmp"};

void file_name(char *buf, size_t n, uint32_t number, int kind)
{
    snprintf(buf, n, "%06u%s", number, kind_ext[kind]);
}

/* Exact: the name must be what file_name writes for the number it holds, so a
 * file of someone else's (0000099.wal) is never taken for a leftover and removed. */
int file_parse_name(const char *name, uint32_t *number)
{
    char again[24];
    size_t digits = strspn(name, "0123456789");
    if (digits < 6 || digits > 10 || name[digits] != '.')
        return 0;
    unsigned long long v = strtoull(name, NULL, 10);
    if (v == 0 || v > UINT32_MAX)
        return 0;
    for (int kind = KV_FILE_SEG; kind <= KV_FILE_HINT_TMP; kind++) {
        if (strcmp(name + digits, kind_ext[kind]) != 0)
            continue;
        file_name(again, sizeof again, (uint32_t)v, kind);
        if (strcmp(again, name) != 0)
            return 0;
        *number = (uint32_t)v;
        return kind;
    }
    return 0;
}


/* ---- create and open --------------------------------------------------------------- */

static kv_file *file_alloc(kv_io *io, int kind, uint32_t number, int fd)
{
    kv_file *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->io = io;
    f->kind = kind;
    f->number = number;
    f->fd = fd;
    f->refs = 1;
    file_name(f->name, sizeof f->name, number, kind);
    pthread_mutex_init(&f->mu, NULL);
    return f;
}

int file_create(kv_io *io, int dirfd, int kind, uint32_t number, kv_file **out)
{
    char name[24];
    uint8_t hdr[KV_FILE_HDR_SIZE];
    file_name(name, sizeof name, number, kind);
    int fd = io->ops->open(io, dirfd, name, O_RDWR | O_CREAT | O_EXCL, 0644);
    if (fd < 0)
        return err_errno(-fd, "creating %s", name);
    file_header_encode(hdr, kind == KV_FILE_SEG ? KV_MAGIC_SEG : KV_MAGIC_WAL, number);
    int r = io_pwrite_full(io, fd, hdr, sizeof hdr, 0);
    if (r == 0)
        r = io->ops->fdatasync(io, fd);
    if (r < 0) {
        io->ops->close(io, fd);
        return err_errno(-r, "writing the header of %s", name);
    }
    kv_file *f = file_alloc(io, kind, number, fd);
    if (f == NULL) {
        io->ops->close(io, fd);
        return err_set(KV_ENOMEM, "opening %s", name);
    }
    f->size = KV_FILE_HDR_SIZE;
    f->woff = KV_FILE_HDR_SIZE;
    *out = f;
    return KV_OK;
}

static int check_header(kv_io *io, int fd, const char *name, int kind, uint32_t number,
                        uint64_t size)
{
    uint8_t hdr[KV_FILE_HDR_SIZE];
    uint32_t got;
    int too_new;
    if (size < KV_FILE_HDR_SIZE)
        return err_set(KV_ECORRUPT, "%s: offset 0: file of %llu bytes is shorter than its header",
                      name, (unsigned long long)size);
    ssize_t r = io_pread_full(io, fd, hdr, sizeof hdr, 0);
    if (r < 0)
        return err_errno((int)-r, "%s: reading the header", name);
    const char *why = file_header_check(hdr, kind == KV_FILE_SEG ? KV_MAGIC_SEG : KV_MAGIC_WAL,
                                        &got, &too_new);
    if (why != NULL)
        return err_set(too_new ? KV_EVERSION : KV_ECORRUPT, "%s: offset 0: %s (version %u, this "
                      "library reads %u)", name, why, kv_get16(hdr + 4), KV_FORMAT_VERSION);
    if (got != number)
        return err_set(KV_ECORRUPT, "%s: offset 8: header names file %u", name, got);
    return KV_OK;
}

int file_open(kv_io *io, int dirfd, int kind, uint32_t number, int writable, int *missing,
              kv_file **out)
{
    char name[24];
    uint64_t size;
    file_name(name, sizeof name, number, kind);
    int fd;
    *missing = 0;
    int rc = io_open_regular(io, dirfd, name, writable ? O_RDWR : O_RDONLY, 0, name, &fd);
    if (rc == KV_NOTFOUND) {
        *missing = 1;
        return err_set(KV_EIO, "opening %s: %s", name, strerror(ENOENT));
    }
    if (rc != KV_OK)
        return rc;
    int r = io->ops->fsize(io, fd, &size);
    rc = r < 0 ? err_errno(-r, "%s: fstat", name)
               : check_header(io, fd, name, kind, number, size);
    kv_file *f = rc == KV_OK ? file_alloc(io, kind, number, fd) : NULL;
    if (rc == KV_OK && f == NULL)
        rc = err_set(KV_ENOMEM, "opening %s", name);
    if (rc != KV_OK) {
        io->ops->close(io, fd);
        return rc;
    }
    f->size = size;
    f->woff = size;
    *out = f;
    return KV_OK;
}

/* ---- the write buffer -------------------------------------------------------------- */

int file_enable_buffer(kv_file *f, size_t cap)
{
    f->wbuf = malloc(cap);
    if (f->wbuf == NULL)
        return err_set(KV_ENOMEM, "%s: allocating the write buffer", f->name);
    f->wcap = cap;
    f->wlen = 0;
    f->woff = f->size;
    return KV_OK;
}

static int flush_locked(kv_file *f)
{
    KV_ASSERT(mutex_held(&f->mu) && f->wlen <= f->wcap);
    if (f->wlen == 0)
        return KV_OK;
    int r = io_pwrite_full(f->io, f->fd, f->wbuf, f->wlen, f->woff);
    if (r < 0)
        return err_errno(-r, "%s: write of %zu bytes at offset %llu", f->name, f->wlen,
                            (unsigned long long)f->woff);
    f->woff += f->wlen;
    f->wlen = 0;
    return KV_OK;
}

int file_flush(kv_file *f)
{
    pthread_mutex_lock(&f->mu);
    int rc = flush_locked(f);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

int file_seal_buffer(kv_file *f)
{
    pthread_mutex_lock(&f->mu);
    int rc = flush_locked(f);
    if (rc == KV_OK) {
        free(f->wbuf);
        f->wbuf = NULL;
        f->wcap = 0;
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

int file_append(kv_file *f, const void *buf, size_t len, uint64_t *off)
{
    int rc = KV_OK;
    pthread_mutex_lock(&f->mu);
    *off = f->woff + f->wlen;
    if (f->wlen + len > f->wcap)
        rc = flush_locked(f);
    if (rc == KV_OK && len > f->wcap) {
        int r = io_pwrite_full(f->io, f->fd, buf, len, f->woff);
        if (r < 0)
            rc = err_errno(-r, "%s: write of %zu bytes at offset %llu", f->name, len,
                              (unsigned long long)f->woff);
        else
            f->woff += len;
    } else if (rc == KV_OK) {
        memcpy(f->wbuf + f->wlen, buf, len);
        f->wlen += len;
    }
    if (rc == KV_OK)
        f->size = *off + len;
    /* appended bytes are contiguous: the returned offset is the old end */
    KV_ASSERT(rc != KV_OK || (f->size == f->woff + f->wlen && f->wlen <= f->wcap));
    pthread_mutex_unlock(&f->mu);
    return rc;
}

/* ---- reads ------------------------------------------------------------------------- */

static int pread_exact(kv_file *f, uint64_t off, void *dst, size_t len)
{
    ssize_t r = io_pread_full(f->io, f->fd, dst, len, off);
    if (r < 0)
        return err_errno((int)-r, "%s: read of %zu bytes at offset %llu", f->name, len,
                            (unsigned long long)off);
    if ((size_t)r < len)
        return err_set(KV_ECORRUPT, "%s: offset %llu: file ends %zu bytes into a %zu-byte "
                      "record", f->name, (unsigned long long)off, (size_t)r, len);
    return KV_OK;
}

int file_read(kv_file *f, uint64_t off, void *dst, size_t len)
{
    const uint8_t *m = file_peek(f, off, len);
    if (m != NULL) {
        memcpy(dst, m, len);
        return KV_OK;
    }
    if (off + len <= atomic_load(&f->woff))
        return pread_exact(f, off, dst, len);
    pthread_mutex_lock(&f->mu);
    uint64_t woff = f->woff;
    if (off + len <= woff || f->wbuf == NULL) {
        pthread_mutex_unlock(&f->mu);
        return pread_exact(f, off, dst, len);
    }
    /* The record is (partly) in the buffer: copy that part while holding the lock
     * so a flush cannot move it. */
    size_t head = off < woff ? (size_t)(woff - off) : 0;
    size_t boff = off < woff ? 0 : (size_t)(off - woff);
    int rc = KV_OK;
    if (boff + (len - head) > f->wlen)
        rc = err_set(KV_ECORRUPT, "%s: offset %llu: record beyond the end of the file",
                    f->name, (unsigned long long)off);
    else
        memcpy((uint8_t *)dst + head, f->wbuf + boff, len - head);
    pthread_mutex_unlock(&f->mu);
    if (rc == KV_OK && head > 0)
        rc = pread_exact(f, off, dst, head);
    return rc;
}

/* ---- mapping ----------------------------------------------------------------------- */

void file_map(kv_file *f, size_t len)
{
    const void *p;
    if (len == 0)
        len = (size_t)f->size;
    if (len == 0 || f->map != NULL)
        return;
    if (f->io->ops->map(f->io, f->fd, len, &p) == 0) {
        f->map = p;
        f->map_len = len;
    }
}

/* ---- references -------------------------------------------------------------------- */

void file_ref(kv_file *f) { atomic_fetch_add(&f->refs, 1); }

void file_unref(kv_file *f)
{
    if (f == NULL || atomic_fetch_sub(&f->refs, 1) != 1)
        return;
    if (f->map != NULL)
        f->io->ops->unmap(f->io, f->map, f->map_len);
    f->io->ops->close(f->io, f->fd);
    pthread_mutex_destroy(&f->mu);
    free(f->wbuf);
    bloom_free(f->bloom);
    free(f);
}
