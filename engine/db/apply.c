/*
 * apply.c — the index bookkeeping of one entry, shared by the write path (write.c's
 * hook_apply, for every entry of every group, under the shard locks) and recovery
 * (recover.c, for the active segment and the WAL records it replays).
 *
 * An entry at (file, offset) becomes the key's location in the index when it wins
 * (newest by sequence number at recovery; always on the write path), and each
 * segment's live byte count follows: the file the entry is in gains its bytes, the
 * file of the location it replaced loses those. A delete on the write path removes
 * the key; at recovery it stays as a tombstone until the end (it may hide an older
 * record still to be read).
 */
#include "db/db.h"

#include "format/entry.h"

static kv_file *owner_of(kv_db *db, const idx_loc *loc)
{
    if (loc->flags & IDX_F_WAL)
        return db->wal_file;
    if (db->active != NULL && loc->file == db->active->number)
        return db->active;
    kv_file *f = ftab_get(db, loc->file, 0);
    if (f != NULL)
        file_unref(f); /* the table keeps it alive; we only need the pointer */
    return f;
}

int db_index_entry(kv_db *db, kv_file *f, const kv_entry *e, uint64_t off, uint64_t hash,
                   int recovery)
{
    idx_change ch;
    idx_loc loc = {e->seq, f->number, (uint32_t)off, e->size, 0};
    KV_ASSERT(recovery || idx_shard_held(db->idx, hash)); /* a writer holds the shard */
    if (f->kind == KV_FILE_WAL)
        loc.flags |= IDX_F_WAL;
    if (e->type == KV_REC_DEL && !recovery) {
        idx_del_locked(db->idx, e->key, e->klen, hash, &ch);
    } else {
        if (e->type == KV_REC_DEL)
            loc.flags |= IDX_F_TOMB;
        if (idx_set_locked(db->idx, e->key, e->klen, hash, &loc, recovery, &ch) != 0)
            return err_set(KV_ENOMEM, "indexing %s offset %llu", f->name, (unsigned long long)off);
        if (ch.applied && e->type == KV_REC_PUT)
            f->live_bytes += e->size;
    }
    if (ch.applied && ch.had_old && !(ch.old.flags & IDX_F_TOMB)) {
        kv_file *old = owner_of(db, &ch.old);
        if (old != NULL)
            old->live_bytes -= ch.old.len;
    }
    return KV_OK;
}

