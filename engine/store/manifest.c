/*
 * manifest.c — MANIFEST encoding, decoding, and atomic replacement.
 */
#include "store/manifest.h"

#include "base/crc.h"
#include "format/entry.h"
#include "store/file.h"
#include "base/kv_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MANIFEST_MAX (64u << 20)

/* Records why a MANIFEST image was refused: the offset and the check, for the tools
 * (manifest_check) and as the message of manifest_decode. */
static int bad_at(int status, uint64_t *bad_off, char *why, size_t why_len, uint64_t off,
                  const char *fmt, ...) KV_PRINTF(6, 7);
static int bad_at(int status, uint64_t *bad_off, char *why, size_t why_len, uint64_t off,
                  const char *fmt, ...)
{
    va_list ap;
    *bad_off = off;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    return status;
}

int manifest_check(const uint8_t *buf, size_t len, kv_manifest *m, uint64_t *bad_off, char *why,
                   size_t why_len)
{
    uint32_t gen;
    int too_new;
    memset(m, 0, sizeof *m);
    *bad_off = 0;
    why[0] = '\0';
    if (len < KV_FILE_HDR_SIZE + KV_MANIFEST_FIXED + 4)
        return bad_at(KV_ECORRUPT, bad_off, why, why_len, 0, "%zu bytes is too short", len);
    const char *bad = file_header_check(buf, KV_MAGIC_MANIFEST, &gen, &too_new);
    if (bad != NULL)
        return bad_at(too_new ? KV_EVERSION : KV_ECORRUPT, bad_off, why, why_len, 0, "%s", bad);
    const uint8_t *b = buf + KV_FILE_HDR_SIZE;
    uint32_t n = kv_get32(b);
    if ((uint64_t)KV_FILE_HDR_SIZE + KV_MANIFEST_FIXED + (uint64_t)n * KV_MANIFEST_SEG + 4 != len)
        return bad_at(KV_ECORRUPT, bad_off, why, why_len, 16, "%u segments do not fit %zu bytes",
                      n, len);
    uint32_t stored = kv_get32(buf + len - 4);
    uint32_t computed = kv_crc32c(b, len - 4 - KV_FILE_HDR_SIZE);
    if (stored != computed)
        return bad_at(KV_ECORRUPT, bad_off, why, why_len, len - 4,
                      "checksum mismatch (stored 0x%08x, computed 0x%08x)", stored, computed);
    /* Like the header's flags, the reserved field must be 0: a value this version
     * does not know is refused, never ignored. */
    if (kv_get32(b + 12) != 0)
        return bad_at(KV_ECORRUPT, bad_off, why, why_len, 28, "reserved field is 0x%08x, not 0",
                      kv_get32(b + 12));
    m->generation = gen;
    m->nsealed = n;
    m->active = kv_get32(b + 4);
    m->next_file = kv_get32(b + 8);
    m->sealed = calloc(n ? n : 1, sizeof *m->sealed);
    if (m->sealed == NULL)
        return bad_at(KV_ENOMEM, bad_off, why, why_len, 0, "%u segments: out of memory", n);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *s = b + KV_MANIFEST_FIXED + (size_t)i * KV_MANIFEST_SEG;
        m->sealed[i].number = kv_get32(s);
        m->sealed[i].flags = kv_get32(s + 4);
        m->sealed[i].size = kv_get64(s + 8);
        /* Compaction outputs are numbered after the active segment, so a sealed
         * number is only below next_file and never the active one. */
        if (m->sealed[i].number == m->active || m->sealed[i].number >= m->next_file
            || (i > 0 && m->sealed[i].number <= m->sealed[i - 1].number) || m->sealed[i].flags != 0) {
            manifest_free(m);
            return bad_at(KV_ECORRUPT, bad_off, why, why_len, (uint64_t)(s - buf),
                          "segment entry %u out of order or invalid", i);
        }
    }
    if (m->active == 0 || m->next_file <= m->active) {
        manifest_free(m);
        return bad_at(KV_ECORRUPT, bad_off, why, why_len, 20,
                      "active segment %u / next file %u invalid", kv_get32(b + 4), kv_get32(b + 8));
    }
    return KV_OK;
}

int manifest_decode(const uint8_t *buf, size_t len, kv_manifest *m)
{
    uint64_t off;
    char why[160];
    int rc = manifest_check(buf, len, m, &off, why, sizeof why);
    if (rc == KV_ENOMEM)
        return err_set(rc, "MANIFEST: %s", why);
    if (rc != KV_OK)
        return err_set(rc, "MANIFEST: offset %llu: %s", (unsigned long long)off, why);
    return KV_OK;
}

int manifest_read(kv_io *io, int dirfd, const char *name, uint8_t **buf, size_t *len)
{
    uint64_t size;
    *buf = NULL;
    int fd;
    *len = 0;
    int rc = io_open_regular(io, dirfd, name, O_RDONLY, 0, name, &fd);
    if (rc != KV_OK)
        return rc;
    int r = io->ops->fsize(io, fd, &size);
    if (r < 0)
        rc = err_errno(-r, "%s: fstat", name);
    else if (size > MANIFEST_MAX)
        rc = err_set(KV_ECORRUPT, "%s: %llu bytes is larger than any MANIFEST", name,
                    (unsigned long long)size);
    else if ((*buf = malloc(size ? size : 1)) == NULL)
        rc = err_set(KV_ENOMEM, "reading %s", name);
    if (rc == KV_OK) {
        ssize_t got = io_pread_full(io, fd, *buf, size, 0);
        if (got < 0)
            rc = err_errno((int)-got, "reading %s", name);
        else
            *len = (size_t)got;
    }
    if (rc != KV_OK) {
        free(*buf);
        *buf = NULL;
    }
    io->ops->close(io, fd);
    return rc;
}

int manifest_load(kv_io *io, int dirfd, kv_manifest *m)
{
    uint8_t *buf;
    size_t len;
    memset(m, 0, sizeof *m);
    int rc = manifest_read(io, dirfd, KV_MANIFEST_NAME, &buf, &len);
    if (rc == KV_OK)
        rc = manifest_decode(buf, len, m);
    free(buf);
    return rc;
}

uint8_t *manifest_encode(const kv_manifest *m, size_t *len)
{
    size_t n = KV_FILE_HDR_SIZE + KV_MANIFEST_FIXED + (size_t)m->nsealed * KV_MANIFEST_SEG + 4;
    uint8_t *buf = calloc(1, n);
    if (buf == NULL)
        return NULL;
    file_header_encode(buf, KV_MAGIC_MANIFEST, m->generation);
    uint8_t *b = buf + KV_FILE_HDR_SIZE;
    kv_put32(b, m->nsealed);
    kv_put32(b + 4, m->active);
    kv_put32(b + 8, m->next_file);
    for (uint32_t i = 0; i < m->nsealed; i++) {
        uint8_t *s = b + KV_MANIFEST_FIXED + (size_t)i * KV_MANIFEST_SEG;
        kv_put32(s, m->sealed[i].number);
        kv_put32(s + 4, m->sealed[i].flags);
        kv_put64(s + 8, m->sealed[i].size);
    }
    kv_put32(buf + n - 4, kv_crc32c(b, n - 4 - KV_FILE_HDR_SIZE));
    *len = n;
    return buf;
}

int manifest_store(kv_io *io, int dirfd, kv_manifest *m, int *renamed)
{
    size_t len;
    if (renamed != NULL)
        *renamed = 0;
    m->generation++;
    uint8_t *buf = manifest_encode(m, &len);
    if (buf == NULL)
        return err_set(KV_ENOMEM, "encoding MANIFEST");
    int fd;
    int rc = io_open_regular(io, dirfd, KV_MANIFEST_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW,
                               0644, KV_MANIFEST_TMP, &fd);
    if (rc != KV_OK) {
        free(buf);
        return rc;
    }
    int r = io_pwrite_full(io, fd, buf, len, 0);
    const char *step = "writing";
    if (r == 0) {
        r = io->ops->fdatasync(io, fd);
        step = "syncing";
    }
    io->ops->close(io, fd);
    if (r == 0) {
        r = io->ops->rename(io, dirfd, KV_MANIFEST_TMP, KV_MANIFEST_NAME);
        step = "renaming";
    }
    if (r == 0 && renamed != NULL)
        *renamed = 1;
    if (r == 0) {
        r = io->ops->syncdir(io, dirfd);
        step = "syncing the directory after renaming";
    }
    free(buf);
    return r < 0 ? err_errno(-r, "%s %s", step, KV_MANIFEST_TMP) : KV_OK;
}

void manifest_free(kv_manifest *m)
{
    free(m->sealed);
    m->sealed = NULL;
    m->nsealed = 0;
}
