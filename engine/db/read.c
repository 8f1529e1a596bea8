/*
 * read.c — the read path: kv_get and kv_foreach.
 *
 * A get finds the location in the index, pins the file, reads the whole entry,
 * and checks it before trusting a byte: CRC, length, key, sequence number and type
 * must all match what the index says, else KV_ECORRUPT naming file and offset. Only
 * then is an LZ4 value decompressed (compress.c), into a buffer of exactly its raw
 * length.
 */
#include "format/compress.h"
#include "db/db.h"
#include "format/entry.h"
#include "base/grow.h"

#include <stdlib.h>
#include <string.h>

/* Checks that the entry at p (loc->len bytes) is the one the index points at. */
static int verify_entry(const kv_file *f, const idx_loc *loc, const void *key, size_t klen,
                        const uint8_t *p, kv_entry *e)
{
    char why[128];
    int pr = entry_parse(p, loc->len, e, why, sizeof why);
    if (pr != ENTRY_OK)
        return err_set(KV_ECORRUPT, "%s: offset %u: %s", f->name, loc->off,
                      pr == ENTRY_SHORT ? "record shorter than its header says" : why);
    if (e->size != loc->len || e->klen != klen || memcmp(e->key, key, klen) != 0
        || e->seq != loc->seq || e->type != KV_REC_PUT)
        return err_set(KV_ECORRUPT, "%s: offset %u: record does not match the index "
                      "(seq %llu, expected %llu)", f->name, loc->off,
                      (unsigned long long)e->seq, (unsigned long long)loc->seq);
    return KV_OK;
}

/* Hands out the value of the checked entry e as a new buffer *val: an LZ4 value is
 * decompressed into a buffer of exactly its raw length (any failure is KV_ECORRUPT
 * naming file and offset); a plain one is moved to the front of rec, the record's
 * own buffer when it was read with pread (then *val == rec), else copied. */
static int take_value(const kv_file *f, const idx_loc *loc, const kv_entry *e, uint8_t *rec,
                      void **val, size_t *vlen)
{
    if (e->flags & KV_RECF_LZ4) {
        char why[128];
        uint8_t *out;
        int rc = compress_value_decode(e, &out, vlen, why, sizeof why);
        if (rc != KV_OK)
            return err_set(rc, "%s: offset %u: %s", f->name, loc->off, why);
        *val = out;
        return KV_OK;
    }
    uint8_t *out = rec != NULL ? rec : malloc(e->vlen > 0 ? e->vlen : 1);
    if (out == NULL)
        return err_set(KV_ENOMEM, "kv_get: %u-byte value", e->vlen);
    memmove(out, e->val, e->vlen);
    *val = out;
    *vlen = e->vlen;
    return KV_OK;
}

/* Reads the value at loc into a new buffer *val. The record is checked in place when
 * the file is mapped (only the value is copied out), else read whole and checked.
 * KV_NOTFOUND when the file is gone (the caller looks again). */
static int read_value_at(kv_db *db, const void *key, size_t klen, const idx_loc *loc,
                         void **val, size_t *vlen)
{
    kv_entry e;
    kv_file *f = ftab_get(db, loc->file, loc->flags & IDX_F_WAL);
    if (f == NULL)
        return KV_NOTFOUND;
    const uint8_t *m = file_peek(f, loc->off, loc->len);
    uint8_t *rec = NULL;
    int rc = KV_OK;
    if (m == NULL) {
        rec = malloc(loc->len);
        rc = rec == NULL ? err_set(KV_ENOMEM, "kv_get: %u-byte record", loc->len)
                         : file_read(f, loc->off, rec, loc->len);
        m = rec;
    }
    if (rc == KV_OK)
        rc = verify_entry(f, loc, key, klen, m, &e);
    if (rc == KV_OK)
        rc = take_value(f, loc, &e, rec, val, vlen);
    if (rc != KV_OK || *val != rec)
        free(rec);
    file_unref(f);
    return rc;
}

static int get_internal(kv_db *db, const void *key, size_t klen, void **val, size_t *vlen)
{
    uint64_t hash = idx_hash(key, klen);
    for (int attempt = 0; attempt < 100; attempt++) {
        idx_loc loc;
        if (!idx_get(db->idx, key, klen, hash, &loc) || (loc.flags & IDX_F_TOMB))
            return KV_NOTFOUND;
        int rc = read_value_at(db, key, klen, &loc, val, vlen);
        if (rc != KV_NOTFOUND)
            return rc;
        /* the file was retired after we looked: look again */
    }
    return err_set(KV_EIO, "kv_get: the key's location kept changing");
}

int kv_get(kv_db *db, const void *key, size_t klen, void **val, size_t *vlen)
{
    if (val != NULL)
        *val = NULL;
    if (vlen != NULL)
        *vlen = 0;
    if (db == NULL || val == NULL || vlen == NULL)
        return err_set(KV_EINVAL, "kv_get: %s is NULL", db == NULL ? "db" : val == NULL ? "val" : "vlen");
    int rc = db_check_key("kv_get", key, klen);
    if (rc != KV_OK)
        return rc;
    db->gets++;
    rc = get_internal(db, key, klen, val, vlen);
    return rc == KV_NOTFOUND ? err_const(rc, "kv_get: key not found") : rc;
}

void kv_free(void *p) { free(p); }

/* ---- foreach ----------------------------------------------------------------------- */

typedef struct keylist {
    uint8_t *bytes;      /* keys back to back */
    size_t len, cap;
    uint32_t *lens;
    size_t n, ncap;
} keylist;

static int collect_key(void *arg, const uint8_t *key, size_t klen, const idx_loc *loc)
{
    keylist *kl = arg;
    if (loc->flags & IDX_F_TOMB)
        return 0;
    uint8_t *nb = grow(kl->bytes, &kl->cap, kl->len + klen, 1, 4096, 0);
    if (nb == NULL)
        return KV_ENOMEM;
    kl->bytes = nb;
    if (kl->n == kl->ncap) {
        uint32_t *nl = grow(kl->lens, &kl->ncap, kl->n + 1, sizeof *nl, 256, 0);
        if (nl == NULL)
            return KV_ENOMEM;
        kl->lens = nl;
    }
    memcpy(kl->bytes + kl->len, key, klen);
    kl->len += klen;
    kl->lens[kl->n++] = (uint32_t)klen;
    return 0;
}

/* Visits the keys of one shard: copied out under its lock, then read one by one
 * without it, so fn may write to the store. */
static int foreach_shard(kv_db *db, unsigned s, keylist *kl,
                         int (*fn)(void *, const void *, size_t, const void *, size_t), void *arg)
{
    kl->len = kl->n = 0;
    if (idx_visit_shard(db->idx, s, collect_key, kl) != 0)
        return err_set(KV_ENOMEM, "kv_foreach: collecting keys");
    size_t pos = 0;
    for (size_t i = 0; i < kl->n; i++) {
        const uint8_t *k = kl->bytes + pos;
        void *v;
        size_t vl;
        pos += kl->lens[i];
        int rc = get_internal(db, k, kl->lens[i], &v, &vl);
        if (rc == KV_NOTFOUND)
            continue; /* deleted since we collected it */
        if (rc != KV_OK)
            return rc;
        err_clear(); /* so that a message fn leaves is told apart from none */
        rc = fn(arg, k, kl->lens[i], v, vl);
        free(v);
        if (rc != 0 && kv_errmsg()[0] == '\0')
            err_set(rc, "kv_foreach: the callback returned %d and stopped the iteration", rc);
        if (rc != 0)
            return rc;
    }
    return KV_OK;
}

int kv_foreach(kv_db *db, int (*fn)(void *, const void *, size_t, const void *, size_t),
               void *arg)
{
    keylist kl = {0};
    int rc = KV_OK;
    if (db == NULL || fn == NULL)
        return err_set(KV_EINVAL, "kv_foreach: %s is NULL", db == NULL ? "db" : "fn");
    for (unsigned s = 0; s < IDX_SHARDS && rc == KV_OK; s++)
        rc = foreach_shard(db, s, &kl, fn, arg);
    free(kl.bytes);
    free(kl.lens);
    return rc;
}
