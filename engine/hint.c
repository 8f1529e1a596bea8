/*
 * hint.c — building, writing and reading hint files (format in hint.h).
 */
#include "hint.h"

#include "crc.h"
#include "file.h"
#include "kv_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HINT_MAX (1u << 30)

void hint_add(hint_buf *h, const kv_entry *e, uint64_t off)
{
    size_t need = KV_HINT_REC + e->klen;
    if (h->failed)
        return;
    if (h->len + need > h->cap) {
        size_t ncap = h->cap ? h->cap * 2 : 64 * 1024;
        while (ncap < h->len + need)
            ncap *= 2;
        uint8_t *nb = realloc(h->buf, ncap);
        if (nb == NULL) {
            h->failed = 1;
            return;
        }
        h->buf = nb;
        h->cap = ncap;
    }
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

int hint_write(kv_io *io, int dirfd, uint32_t number, const hint_buf *h, uint64_t seg_size)
{
    char name[24], tmp[24];
    uint8_t hdr[KV_FILE_HDR_SIZE], tr[KV_HINT_TRAILER];
    if (h->failed)
        return kv_err(KV_ENOMEM, "hint for segment %06u: out of memory while building", number);
    file_name(name, sizeof name, number, KV_FILE_HINT);
    file_name(tmp, sizeof tmp, number, KV_FILE_HINT_TMP);
    file_header_encode(hdr, KV_MAGIC_HINT, number);
    kv_put32(tr, h->count);
    kv_put64(tr + 4, seg_size);
    uint32_t crc = kv_crc32c_extend(kv_crc32c(h->buf, h->len), tr, 12);
    kv_put32(tr + 12, crc);
    int fd = io->ops->open(io, dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int r = fd < 0 ? fd : io_pwrite_full(io, fd, hdr, sizeof hdr, 0);
    if (r == 0 && h->len > 0)
        r = io_pwrite_full(io, fd, h->buf, h->len, sizeof hdr);
    if (r == 0)
        r = io_pwrite_full(io, fd, tr, sizeof tr, sizeof hdr + h->len);
    if (r == 0)
        r = io->ops->fdatasync(io, fd);
    if (fd >= 0)
        io->ops->close(io, fd);
    if (r == 0)
        r = io->ops->rename(io, dirfd, tmp, name);
    if (r < 0) {
        io->ops->unlink(io, dirfd, tmp);
        return kv_err_errno(-r, "writing %s", name);
    }
    return KV_OK;
}

/* Decodes count records in [p, end), checking each against the segment's size,
 * and calls fn for each. KV_NOTFOUND (with why) when a record does not fit. */
static int walk_records(const uint8_t *p, const uint8_t *end, uint32_t count, uint32_t number,
                        uint64_t seg_size, hint_fn fn, void *arg, char *why, size_t why_len)
{
    for (uint32_t i = 0; i < count; i++) {
        kv_entry e;
        if ((size_t)(end - p) < KV_HINT_REC
            || (size_t)(end - p) < (size_t)KV_HINT_REC + kv_get16(p + 17)) {
            snprintf(why, why_len, "%06u.hint: record %u runs past the end", number, i);
            return KV_NOTFOUND;
        }
        e.seq = kv_get64(p);
        uint64_t off = kv_get32(p + 8);
        e.size = kv_get32(p + 12);
        e.type = p[16];
        e.flags = 0;
        e.klen = kv_get16(p + 17);
        e.key = p + KV_HINT_REC;
        e.val = NULL;
        e.vlen = e.size >= KV_ENTRY_HDR + e.klen ? e.size - KV_ENTRY_HDR - e.klen : 0;
        if ((e.type != KV_REC_PUT && e.type != KV_REC_DEL) || e.klen == 0
            || e.size < KV_ENTRY_HDR + e.klen || off + e.size > seg_size) {
            snprintf(why, why_len, "%06u.hint: record %u is inconsistent", number, i);
            return KV_NOTFOUND;
        }
        int rc = fn(arg, &e, off);
        if (rc != KV_OK)
            return rc;
        p += KV_HINT_REC + e.klen;
    }
    return KV_OK;
}

int hint_decode(const uint8_t *buf, size_t len, uint32_t number, uint64_t seg_size, hint_fn fn,
                void *arg, char *why, size_t why_len)
{
    uint32_t num;
    int too_new;
    const char *bad = NULL;
    if (len < KV_FILE_HDR_SIZE + KV_HINT_TRAILER) {
        snprintf(why, why_len, "%06u.hint: shorter than header and trailer", number);
        return KV_NOTFOUND;
    }
    if ((bad = file_header_check(buf, KV_MAGIC_HINT, &num, &too_new)) == NULL && num != number)
        bad = "header names another segment";
    const uint8_t *tr = buf + len - KV_HINT_TRAILER;
    if (bad == NULL && kv_get32(tr + 12) != kv_crc32c(buf + KV_FILE_HDR_SIZE, len - KV_FILE_HDR_SIZE - 4))
        bad = "checksum mismatch";
    if (bad == NULL && kv_get64(tr + 4) != seg_size)
        bad = "describes a segment of another size";
    if (bad != NULL) {
        snprintf(why, why_len, "%06u.hint: %s", number, bad);
        return KV_NOTFOUND;
    }
    /* The CRC matched, so the records are as written; still check every length
     * against the bytes, as a writer bug must not become an overflow. */
    return walk_records(buf + KV_FILE_HDR_SIZE, tr, kv_get32(tr), number, seg_size, fn, arg,
                        why, why_len);
}

int hint_buf_walk(const hint_buf *h, uint32_t number, uint64_t seg_size, hint_fn fn, void *arg)
{
    char why[128];
    if (h->failed)
        return KV_NOTFOUND;
    int rc = walk_records(h->buf, h->buf + h->len, h->count, number, seg_size, fn, arg, why,
                          sizeof why);
    return rc == KV_NOTFOUND ? kv_err(KV_ECORRUPT, "%s", why) : rc;
}

int hint_load(kv_io *io, int dirfd, uint32_t number, uint64_t seg_size, hint_fn fn, void *arg,
              char *why, size_t why_len)
{
    char name[24];
    uint64_t size;
    file_name(name, sizeof name, number, KV_FILE_HINT);
    int fd = io->ops->open(io, dirfd, name, O_RDONLY, 0);
    if (fd < 0) {
        snprintf(why, why_len, "%s: %s", name, strerror(-fd));
        return KV_NOTFOUND;
    }
    int rc = KV_NOTFOUND;
    uint8_t *buf = NULL;
    if (io->ops->fsize(io, fd, &size) == 0 && size <= HINT_MAX && (buf = malloc(size ? size : 1)) != NULL
        && io_pread_full(io, fd, buf, size, 0) == (ssize_t)size)
        rc = hint_decode(buf, size, number, seg_size, fn, arg, why, why_len);
    else
        snprintf(why, why_len, "%s: unreadable", name);
    free(buf);
    io->ops->close(io, fd);
    return rc;
}
