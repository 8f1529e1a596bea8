/*
 * peek.c — the tools' view of an open handle (peek.h): the index and the file table
 * read on their behalf, so tools/ includes no layer of the library below kv.h but
 * fsck/.
 */
#include "fsck/peek.h"

#include "db/db.h"
#include "db/ftab.h"
#include "format/entry.h"

typedef struct peek_visit {
    int (*fn)(void *arg, const uint8_t *key, size_t klen);
    void *arg;
} peek_visit;

static int visit_live(void *arg, const uint8_t *key, size_t klen, const idx_loc *loc)
{
    peek_visit *v = arg;
    return (loc->flags & IDX_F_TOMB) ? 0 : v->fn(v->arg, key, klen);
}

int peek_keys(kv_db *db, int (*fn)(void *arg, const uint8_t *key, size_t klen), void *arg)
{
    peek_visit v = {fn, arg};
    int rc = KV_OK;
    for (unsigned s = 0; s < IDX_SHARDS && rc == KV_OK; s++)
        rc = idx_visit_shard(db->idx, s, visit_live, &v);
    return rc;
}

int peek_stored_lz4(kv_db *db, const void *key, size_t klen, int *lz4)
{
    idx_loc loc;
    uint8_t hdr[KV_ENTRY_HDR];
    int rc = KV_OK;
    *lz4 = 0;
    if (!idx_get(db->idx, key, klen, idx_hash(key, klen), &loc) || (loc.flags & IDX_F_TOMB))
        return KV_OK;
    kv_file *f = ftab_get(db, loc.file, loc.flags & IDX_F_WAL);
    if (f == NULL)
        return err_set(KV_EIO, "file %u of a key's record is not open", loc.file);
    const uint8_t *p = file_peek(f, loc.off, sizeof hdr);
    if (p == NULL) {
        rc = file_read(f, loc.off, hdr, sizeof hdr);
        p = hdr;
    }
    if (rc == KV_OK)
        *lz4 = (p[KV_ENTRY_OFF_FLAGS] & KV_RECF_LZ4) != 0;
    file_unref(f);
    return rc;
}

int peek_is_newest(kv_db *db, const void *key, size_t klen, uint64_t seq)
{
    idx_loc loc;
    return idx_get(db->idx, key, klen, idx_hash(key, klen), &loc) && !(loc.flags & IDX_F_TOMB)
           && loc.seq == seq;
}
