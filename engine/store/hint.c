/*
 * hint.c — building, writing and reading hint files (format in hint.h).
 */
#include "store/hint.h"

#include "base/crc.h"
#include "store/file.h"
#include "base/kv_int.h"
#include "base/grow.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HINT_MAX (1u << 30)

void hint_add(hint_buf *h, const kv_entry *e, uint64_t off)
{
    size_t need = KV_HINT_REC + e->klen;
    if (h->failed)
        return;
    uint8_t *nb = grow(h->buf, &h->cap, h->len + need, 1, 64 * 1024, 0);
    if (nb == NULL) {
        h->failed = 1;
        return;
    }
    h->buf = nb;
    uint8_t *p = h->buf + h->len;
    kv_put64(p, e->seq);
    kv_put32(p + 8, (uint32_t)off);
    kv_put32(p + 12, e->size);
    p[16] = (uint8_t)e->type;
    kv_put16(p + 17, (uint16_t)e->klen);
    memcpy(p + KV_HINT_REC, e->key, e->klen);
    h->len += need;
    h->count++;
}

void hint_free(hint_buf *h)
{
    free(h->buf);
    memset(h, 0, sizeof *h);
}

/* A hint is replaced only when it is absent or a regular file: whatever else bears
 * its name (a FIFO, a directory, a symbolic link) is not kv's, and kv never removes
 * what is not its own. The segment is then scanned at every open instead. */
static int hint_replaceable(int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISREG(st.st_mode))
        return KV_OK;
    return err_set(KV_ECORRUPT, "%s: not a regular file: not replaced by a new hint", name);
}

int hint_write(kv_io *io, int dirfd, uint32_t number, const hint_buf *h, uint64_t seg_size)
{
    char name[24], tmp[24];
    uint8_t hdr[KV_FILE_HDR_SIZE], tr[KV_HINT_TRAILER];
    if (h->failed)
        return err_set(KV_ENOMEM, "hint for segment %06u: out of memory while building", number);
    file_name(name, sizeof name, number, KV_FILE_HINT);
    file_name(tmp, sizeof tmp, number, KV_FILE_HINT_TMP);
    file_header_encode(hdr, KV_MAGIC_HINT, number);
    kv_put32(tr, h->count);
    kv_put64(tr + 4, seg_size);
    uint32_t crc = kv_crc32c_extend(kv_crc32c(h->buf, h->len), tr, 12);
    kv_put32(tr + 12, crc);
    int fd, rc = hint_replaceable(dirfd, name);
    if (rc == KV_OK)
        rc = io_open_regular(io, dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644,
                               tmp, &fd);
    if (rc != KV_OK)
        return rc;
    int r = io_pwrite_full(io, fd, hdr, sizeof hdr, 0);
    if (r == 0 && h->len > 0)
        r = io_pwrite_full(io, fd, h->buf, h->len, sizeof hdr);
    if (r == 0)
        r = io_pwrite_full(io, fd, tr, sizeof tr, sizeof hdr + h->len);
    if (r == 0)
        r = io->ops->fdatasync(io, fd);
    io->ops->close(io, fd);
    if (r == 0)
        r = io->ops->rename(io, dirfd, tmp, name);
    if (r < 0) {
        io->ops->unlink(io, dirfd, tmp);
        return err_errno(-r, "writing %s", name);
    }
    return KV_OK;
}

/* Checks the record at p (end: the trailer) that must describe the entry at offset
 * *off of a segment of seg_size bytes; fills e and advances *off past the entry.
 * Returns NULL, or why the record is inconsistent. The rules are entry_check_header's
 * and the layout's: records tile the segment from its header on, in file order. */
static const char *hint_record(const uint8_t *p, const uint8_t *end, uint64_t *off,
                               uint64_t seg_size, kv_entry *e)
{
    size_t room = (size_t)(end - p);
    if (room < KV_HINT_REC || room < (size_t)KV_HINT_REC + kv_get16(p + 17))
        return "runs past the end";
    e->seq = kv_get64(p);
    e->size = kv_get32(p + 12);
    e->type = p[16];
    e->flags = 0;
    e->klen = kv_get16(p + 17);
    e->key = p + KV_HINT_REC;
    e->val = NULL;
    e->vlen = e->size >= KV_ENTRY_HDR + e->klen ? e->size - KV_ENTRY_HDR - e->klen : 0;
    if ((e->type != KV_REC_PUT && e->type != KV_REC_DEL) || e->klen == 0
        || e->size < KV_ENTRY_HDR + e->klen || e->vlen > KV_MAX_VALUE
        || (e->type == KV_REC_DEL && e->vlen != 0))
        return "is inconsistent";
    if (kv_get32(p + 8) != *off || e->size > seg_size - *off)
        return "does not follow the one before it in the segment";
    *off += e->size;
    return NULL;
}

/* The failed check's offset in the hint file, when the caller asked for it. */
static void hint_at(uint64_t *bad_off, uint64_t off)
{
    if (bad_off != NULL)
        *bad_off = off;
}

int hint_check(const uint8_t *buf, size_t len, uint32_t number, uint64_t seg_size, hint_fn fn,
               void *arg, char *why, size_t why_len, uint64_t *bad_off)
{
    uint32_t num;
    int too_new;
    const char *bad = NULL;
    hint_at(bad_off, 0);
    if (len < KV_FILE_HDR_SIZE + KV_HINT_TRAILER) {
        snprintf(why, why_len, "%06u.hint: shorter than header and trailer", number);
        return KV_NOTFOUND;
    }
    if ((bad = file_header_check(buf, KV_MAGIC_HINT, &num, &too_new)) == NULL && num != number) {
        bad = "header names another segment";
        hint_at(bad_off, 8);
    }
    const uint8_t *tr = buf + len - KV_HINT_TRAILER;
    if (bad == NULL && kv_get32(tr + 12) != kv_crc32c(buf + KV_FILE_HDR_SIZE, len - KV_FILE_HDR_SIZE - 4)) {
        bad = "checksum mismatch";
        hint_at(bad_off, len - 4);
    }
    if (bad == NULL && (kv_get64(tr + 4) != seg_size || seg_size < KV_FILE_HDR_SIZE)) {
        bad = "describes a segment of another size";
        hint_at(bad_off, len - 12);
    }
    if (bad != NULL) {
        snprintf(why, why_len, "%06u.hint: %s", number, bad);
        return too_new ? KV_EVERSION : KV_NOTFOUND;
    }
    /* The CRC matched, so the records are as written; still every record is checked
     * before the first one reaches the index: a writer bug must not become an
     * overflow, and a hint that is refused must leave nothing behind (the segment is
     * then scanned). The records must describe the whole segment and fill the file. */
    uint32_t count = kv_get32(tr);
    const uint8_t *p = buf + KV_FILE_HDR_SIZE;
    uint64_t off = KV_FILE_HDR_SIZE;
    for (uint32_t i = 0; i < count; i++) {
        kv_entry e;
        if ((bad = hint_record(p, tr, &off, seg_size, &e)) != NULL) {
            snprintf(why, why_len, "%06u.hint: record %u %s", number, i, bad);
            hint_at(bad_off, (uint64_t)(p - buf));
            return KV_NOTFOUND;
        }
        p += KV_HINT_REC + e.klen;
    }
    if (p != tr || off != seg_size) {
        snprintf(why, why_len, "%06u.hint: %u records %s", number, count,
                 p != tr ? "do not fill the file" : "do not cover the segment");
        hint_at(bad_off, p != tr ? (uint64_t)(p - buf) : len - KV_HINT_TRAILER);
        return KV_NOTFOUND;
    }
    p = buf + KV_FILE_HDR_SIZE;
    off = KV_FILE_HDR_SIZE;
    for (uint32_t i = 0; i < count; i++) {
        kv_entry e;
        uint64_t at = off;
        hint_record(p, tr, &off, seg_size, &e);
        int rc = fn(arg, &e, at);
        if (rc != KV_OK)
            return rc;
        p += KV_HINT_REC + e.klen;
    }
    return KV_OK;
}

int hint_decode(const uint8_t *buf, size_t len, uint32_t number, uint64_t seg_size, hint_fn fn,
                void *arg, char *why, size_t why_len)
{
    int rc = hint_check(buf, len, number, seg_size, fn, arg, why, why_len, NULL);
    return rc == KV_EVERSION ? KV_NOTFOUND : rc;
}

int hint_buf_walk(const hint_buf *h, uint32_t number, uint64_t seg_size, hint_fn fn, void *arg)
{
    const uint8_t *p = h->buf, *end = h->buf + h->len;
    uint64_t off = KV_FILE_HDR_SIZE;
    if (h->failed)
        return KV_NOTFOUND;
    for (uint32_t i = 0; i < h->count; i++) {
        kv_entry e;
        uint64_t at = off;
        const char *bad = hint_record(p, end, &off, seg_size, &e);
        if (bad != NULL)
            return err_set(KV_ECORRUPT, "%06u.hint being built: record %u %s", number, i, bad);
        int rc = fn(arg, &e, at);
        if (rc != KV_OK)
            return rc;
        p += KV_HINT_REC + e.klen;
    }
    return KV_OK;
}

/* Reads hint file `name` whole into rb (grown as needed). */
static int hint_read_into(kv_io *io, int dirfd, const char *name, hint_rbuf *rb, size_t *len,
                          char *why, size_t why_len)
{
    uint64_t size;
    int fd;
    *len = 0;
    int rc = io_open_regular(io, dirfd, name, O_RDONLY, 0, name, &fd);
    if (rc != KV_OK) {
        snprintf(why, why_len, "%s", kv_errmsg());
        return rc == KV_NOTFOUND || rc == KV_ECORRUPT ? rc : KV_EIO;
    }
    rc = KV_EIO;
    int r = io->ops->fsize(io, fd, &size);
    ssize_t got = 0;
    if (r == 0 && size <= HINT_MAX && (size > rb->cap || rb->p == NULL)) {
        free(rb->p);
        rb->cap = 0;
        if ((rb->p = malloc(size ? size : 1)) != NULL)
            rb->cap = size;
    }
    if (r < 0)
        snprintf(why, why_len, "%s: fstat: %s", name, strerror(-r));
    else if (size > HINT_MAX)
        snprintf(why, why_len, "%s: %llu bytes is larger than any hint", name,
                 (unsigned long long)size);
    else if (rb->p == NULL)
        snprintf(why, why_len, "%s: out of memory for %llu bytes", name, (unsigned long long)size);
    else if ((got = io_pread_full(io, fd, rb->p, size, 0)) != (ssize_t)size)
        snprintf(why, why_len, "%s: %s", name, got < 0 ? strerror((int)-got) : "shrank while read");
    else
        rc = KV_OK;
    io->ops->close(io, fd);
    if (rc != KV_OK)
        return r == 0 && size > HINT_MAX ? KV_NOTFOUND : rc;
    *len = (size_t)size;
    return KV_OK;
}

int hint_read(kv_io *io, int dirfd, const char *name, uint8_t **buf, size_t *len, char *why,
              size_t why_len)
{
    hint_rbuf rb = {0};
    int rc = hint_read_into(io, dirfd, name, &rb, len, why, why_len);
    if (rc != KV_OK) {
        free(rb.p);
        rb.p = NULL;
    }
    *buf = rb.p;
    return rc;
}

int hint_load(kv_io *io, int dirfd, uint32_t number, uint64_t seg_size, hint_rbuf *rb, hint_fn fn,
              void *arg, char *why, size_t why_len)
{
    char name[24];
    size_t len;
    file_name(name, sizeof name, number, KV_FILE_HINT);
    int rc = hint_read_into(io, dirfd, name, rb, &len, why, why_len);
    if (rc == KV_OK)
        rc = hint_decode(rb->p, len, number, seg_size, fn, arg, why, why_len);
    else
        rc = KV_NOTFOUND;
    return rc;
}
