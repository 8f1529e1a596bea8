/*
 * write.c — the write path: kv_put, kv_delete, kv_write, and the two hooks the
 * group-commit leader calls (before_group: roll the segment when full; apply: append
 * to the active segment and update the index).
 *
 * Each write is encoded once, into a buffer the caller's thread owns (the stack for
 * small records), its value LZ4-compressed there when the store compresses; the WAL
 * leader seals it and writes it, then the same bytes go to the segment. A roll, in order: flush and fdatasync the active segment (it is now
 * sealed), create the next segment and WAL file (headers fdatasynced), publish the
 * new MANIFEST (atomic; its directory fsync also makes the new names durable),
 * switch the WAL, delete the old WAL file whose records are all in the sealed
 * segment. A crash between any two steps leaves a store that opens to the same data.
 */
#include "db/batch.h"
#include "format/compress.h"
#include "db/db.h"
#include "format/entry.h"

#include <stdlib.h>
#include <string.h>

#define STACK_REC 512

/* ---- roll -------------------------------------------------------------------------- */

/* Seals the active segment and makes the next pair active (seg.h, in the order
 * above). */
static int roll(kv_db *db)
{
    kv_file *seg = NULL, *wal = NULL, *old = NULL;
    uint32_t num = atomic_fetch_add(&db->next_file, 1);
    int rc = seg_seal(db, db->active, &db->active_hint);
    if (rc == KV_OK)
        hint_free(&db->active_hint);
    if (rc == KV_OK)
        rc = seg_create(db->io, db->dirfd, num, &seg);
    if (rc == KV_OK)
        rc = file_create(db->io, db->dirfd, KV_FILE_WAL, num, &wal);
    if (rc == KV_OK && db->opts.mmap_reads)
        file_map(seg, db_active_map_len(db));
    if (rc == KV_OK)
        rc = seg_publish_roll(db, num, seg, wal, &old);
    if (rc != KV_OK) {
        file_unref(seg);
        file_unref(wal);
        return rc;
    }
    wal_switch(&db->wal, wal->fd, num);
    db->io->ops->unlink(db->io, db->dirfd, old->name); /* leftover if it fails: open removes it */
    file_unref(old);
    compact_kick(db);
    return KV_OK;
}

/* ---- group-commit hooks ------------------------------------------------------------ */

static int hook_before_group(void *arg, size_t bytes, int force_roll)
{
    kv_db *db = arg;
    KV_ASSERT(wal_is_leader(&db->wal));
    uint64_t size = db->active->size;
    if (size > KV_FILE_HDR_SIZE && (force_roll || size + bytes > db->opts.segment_bytes))
        return roll(db);
    return KV_OK;
}

/* Counts what compression did for the puts of one request (kv_stat). Only the
 * leader calls this, so the counters never contend. */
static void count_values(const kv_entry *e, uint64_t c[3])
{
    if (e->type != KV_REC_PUT)
        return;
    c[0] += compress_raw_len(e);
    c[1] += e->vlen;
    c[2] += (e->flags & KV_RECF_LZ4) != 0;
}

static int hook_apply(void *arg, wal_req *r)
{
    kv_db *db = arg;
    uint64_t base, counts[3] = {0, 0, 0};
    if (r->len == 0)
        return KV_OK; /* a roll request */
    KV_ASSERT(wal_is_leader(&db->wal));
    int rc = file_append(db->active, r->buf, r->len, &base);
    if (rc != KV_OK)
        return rc;
    idx_lock_mask(db->idx, r->shard_mask);
    for (size_t pos = 0; pos < r->len && rc == KV_OK;) {
        kv_entry e;
        entry_check_header(r->buf + pos, &e);
        e.key = r->buf + pos + KV_ENTRY_HDR;
        e.val = e.key + e.klen;
        KV_ASSERT(e.size > 0 && r->shard_mask >> idx_shard_of(idx_hash(e.key, e.klen)) & 1);
        rc = db_index_entry(db, db->active, &e, base + pos, idx_hash(e.key, e.klen), 0);
        hint_add(&db->active_hint, &e, base + pos);
        count_values(&e, counts);
        pos += e.size;
    }
    idx_unlock_mask(db->idx, r->shard_mask);
    atomic_fetch_add_explicit(&db->value_bytes_raw, counts[0], memory_order_relaxed);
    atomic_fetch_add_explicit(&db->value_bytes_stored, counts[1], memory_order_relaxed);
    atomic_fetch_add_explicit(&db->values_compressed, counts[2], memory_order_relaxed);
    return rc;
}

static int hook_fail(void *arg, int status) { return db_fail(arg, status); }

static int hook_check(void *arg) { return db_check_failed(arg); }

int db_start_writer(kv_db *db)
{
    wal_hooks hooks = {.arg = db,
                       .before_group = hook_before_group,
                       .apply = hook_apply,
                       .fail = hook_fail,
                       .check = hook_check};
    int rc = wal_init(&db->wal, db->io, db->opts.sync, db->opts.sync_interval_ms,
                      db->wal_file->fd, db->wal_file->number, db->wal_file->size,
                      db->next_seq_at_open, &hooks);
    db->wal_started = 1;
    return rc;
}

/* ---- the API ----------------------------------------------------------------------- */

static int check_writable(kv_db *db, const char *fn)
{
    if (db == NULL)
        return err_set(KV_EINVAL, "%s: db is NULL", fn);
    if (db->opts.read_only)
        return err_set(KV_EREADONLY, "%s: %s is open read-only", fn, db->dir);
    return db_check_failed(db);
}

/* Encodes one entry (stack buffer when small) and commits it. With LZ4 the value is
 * compressed here, on the writer's own thread, so writers compress in parallel and
 * the group-commit leader's critical section stays I/O only (README: measured). */
static int commit_one(kv_db *db, int type, const void *key, size_t klen, const void *val,
                      size_t vlen)
{
    uint8_t stack[STACK_REC];
    size_t size = entry_size(klen, vlen);
    uint8_t *buf = size <= sizeof stack ? stack : malloc(size);
    wal_req r;
    if (buf == NULL)
        return err_set(KV_ENOMEM, "encoding a %zu-byte record", size);
    if (db->opts.compression == KV_COMPRESS_LZ4)
        size = compress_entry_encode(buf, type, 0, key, klen, val, vlen,
                                     db->opts.compress_min_bytes);
    else
        entry_encode(buf, type, 0, key, klen, val, vlen);
    wal_req_init(&r, buf, size, 1, UINT64_C(1) << idx_shard_of(idx_hash(key, klen)));
    int rc = wal_commit(&db->wal, &r);
    wal_req_destroy(&r);
    if (buf != stack)
        free(buf);
    return rc;
}

int kv_put(kv_db *db, const void *key, size_t klen, const void *val, size_t vlen)
{
    int rc = check_writable(db, "kv_put");
    if (rc == KV_OK)
        rc = db_check_kv("kv_put", key, klen, val, vlen);
    if (rc != KV_OK)
        return rc;
    rc = commit_one(db, KV_REC_PUT, key, klen, val, vlen);
    if (rc == KV_OK)
        db->puts++;
    return rc;
}

int kv_delete(kv_db *db, const void *key, size_t klen)
{
    idx_loc loc;
    int rc = check_writable(db, "kv_delete");
    if (rc == KV_OK)
        rc = db_check_key("kv_delete", key, klen);
    if (rc != KV_OK)
        return rc;
    if (!idx_get(db->idx, key, klen, idx_hash(key, klen), &loc))
        return err_const(KV_NOTFOUND, "kv_delete: key not found (nothing written)");
    rc = commit_one(db, KV_REC_DEL, key, klen, NULL, 0);
    if (rc == KV_OK)
        db->deletes++;
    return rc;
}

int kv_write(kv_db *db, kv_batch *b)
{
    wal_req r;
    int rc = check_writable(db, "kv_write");
    if (rc != KV_OK)
        return rc;
    if (b == NULL)
        return err_set(KV_EINVAL, "kv_write: batch is NULL");
    if (b->count == 0)
        return KV_OK;
    /* With LZ4 the batch is encoded again, compressed, into a buffer of its own:
     * kv_write leaves the batch unchanged. */
    uint8_t *buf = b->buf;
    size_t len = b->len, last = b->last_off;
    if (db->opts.compression == KV_COMPRESS_LZ4) {
        if ((buf = malloc(b->len)) == NULL)
            return err_set(KV_ENOMEM, "kv_write: compressing a %zu-byte batch", b->len);
        len = compress_entries(buf, b->buf, b->len, db->opts.compress_min_bytes, &last);
    }
    /* Every entry but the last says "more of this batch follows". */
    buf[last + KV_ENTRY_OFF_FLAGS] &= (uint8_t)~KV_RECF_BATCH;
    wal_req_init(&r, buf, len, b->count, b->shard_mask);
    rc = wal_commit(&db->wal, &r);
    wal_req_destroy(&r);
    if (buf != b->buf)
        free(buf);
    else
        b->buf[b->last_off + KV_ENTRY_OFF_FLAGS] |= KV_RECF_BATCH;
    if (rc == KV_OK) {
        db->puts += b->nput;
        db->deletes += b->ndel;
        db->batches++;
    }
    return rc;
}
