/*
 * refresh.c — kv_refresh: a read-only handle catching up with the writer.
 * (Being written: this first version only answers for writer handles.)
 */
#include "db/db.h"

int kv_refresh(kv_db *db)
{
    if (db == NULL)
        return err_set(KV_EINVAL, "kv_refresh: db is NULL");
    if (!db->opts.read_only)
        return KV_OK;
    return err_set(KV_EIO, "kv_refresh: %s: not yet implemented for read-only handles", db->dir);
}
