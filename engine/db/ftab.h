/*
 * ftab.h — the file table: the open segments of a store, sorted by number, and the
 * active pair (segment and WAL file), which readers pin while they read.
 *
 * The table lives in struct kv_db (files, nfiles, fcap, active, wal_file, man),
 * guarded by ftab_lock (db.h says who owns what). Segments enter it when they are
 * opened at recovery, created by a roll or written by compaction, and leave it when
 * they are retired (seg.h).
 */
#ifndef KV_FTAB_H
#define KV_FTAB_H

#include "kv.h"
#include "store/file.h"
#include "store/manifest.h"

#include <stdint.h>

/* Returns a pinned file (file_unref when done) or NULL: segment number, or with wal
 * the WAL file of that number. */
kv_file *ftab_get(kv_db *db, uint32_t number, int wal);
/* Takes a segment out of the table and returns the table's reference (or NULL). */
kv_file *ftab_remove(kv_db *db, uint32_t number);
int ftab_add(kv_db *db, kv_file *f);
/* The same for n files under one hold of the lock: ftab_add_n adds all or none
 * (KV_ENOMEM); ftab_remove_n sets out[i] to the table's reference of file nums[i],
 * or NULL. */
int ftab_add_n(kv_db *db, kv_file *const *fs, uint32_t n);
void ftab_remove_n(kv_db *db, const uint32_t *nums, uint32_t n, kv_file **out);
/* A read-only handle following a new MANIFEST (refresh.c), under one hold of the
 * lock: puts the n files fs in the table, each in place of the one of its number if
 * there is one (whose reference the table then drops), and with wal != NULL makes
 * it the WAL file, the one it replaces staying findable as wal_prev. All or nothing
 * (KV_ENOMEM). */
int ftab_put_n(kv_db *db, kv_file *const *fs, uint32_t n, kv_file *wal);
/* Drops the table's reference to every file (the active segment's included) and
 * empties the table; the array stays allocated (kv_close frees it). */
void ftab_clear(kv_db *db);

/* Under one hold of the write lock, makes m (already stored as the MANIFEST, owned
 * by the table from now on) the one in force and, for a roll (seg != NULL), adds
 * seg to the table and makes seg and wal the active pair (*old_wal: the WAL file
 * they replace). KV_ENOMEM when seg cannot enter the table: m is in force all the
 * same, and the caller fails the store. */
int ftab_install(kv_db *db, kv_manifest *m, kv_file *seg, kv_file *wal, kv_file **old_wal);

#endif
