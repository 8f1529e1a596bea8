/*
 * ftab.c — the file table (ftab.h): look-ups that pin a file, adding and removing
 * segments, and swapping in a new MANIFEST and active pair.
 *
 * One hold of the write lock per change, however many files it concerns: a writer
 * waiting for the lock stops every new reader, so each hold costs the wait for the
 * readers already inside, one of which may be preempted.
 */
#include "db/ftab.h"

#include "db/db.h"
#include "base/grow.h"

#include <stdlib.h>
#include <string.h>

/* ---- looking up -------------------------------------------------------------------- */

static long ftab_find_locked(kv_db *db, uint32_t number)
{
    long lo = 0, hi = (long)db->nfiles - 1;
    while (lo <= hi) {
        long mid = (lo + hi) / 2;
        uint32_t n = db->files[mid]->number;
        if (n == number)
            return mid;
        if (n < number)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

kv_file *ftab_get(kv_db *db, uint32_t number, int wal)
{
    kv_file *f = NULL;
    rwlock_rdlock_spin(&db->ftab_lock);
    if (wal && db->wal_file != NULL && db->wal_file->number == number)
        f = db->wal_file;
    else if (wal && db->wal_prev != NULL && db->wal_prev->number == number)
        f = db->wal_prev;
    else {
        /* A read-only handle's key in a WAL file it rolled past reads through that
         * file's segment, which holds the same bytes at the same offsets (checked by
         * refresh.c before the WAL file was let go). */
        long i = ftab_find_locked(db, number);
        if (i >= 0 && (!wal || atomic_load(&db->files[i]->holds_wal)))
            f = db->files[i];
    }
    if (f != NULL)
        file_ref(f);
    pthread_rwlock_unlock(&db->ftab_lock);
    return f;
}

/* ---- adding and removing ----------------------------------------------------------- */

/* Makes room in the table for n more files. The caller holds the write lock. */
static int ftab_reserve_locked(kv_db *db, uint32_t n)
{
    kv_file **nf = grow(db->files, &db->fcap, (size_t)db->nfiles + n, sizeof *nf, 16, 0);
    if (nf == NULL)
        return err_set(KV_ENOMEM, "file table of %u files", db->nfiles + n);
    db->files = nf;
    return KV_OK;
}

/* Inserts f in number order. The caller holds the write lock. */
static int ftab_insert_locked(kv_db *db, kv_file *f)
{
    int rc = ftab_reserve_locked(db, 1);
    if (rc == KV_OK) {
        uint32_t i = db->nfiles;
        while (i > 0 && db->files[i - 1]->number > f->number) {
            db->files[i] = db->files[i - 1];
            i--;
        }
        db->files[i] = f;
        db->nfiles++;
    }
    return rc;
}

int ftab_add_n(kv_db *db, kv_file *const *fs, uint32_t n)
{
    pthread_rwlock_wrlock(&db->ftab_lock);
    int rc = ftab_reserve_locked(db, n);
    for (uint32_t i = 0; i < n && rc == KV_OK; i++)
        rc = ftab_insert_locked(db, fs[i]); /* room was made: cannot fail */
    pthread_rwlock_unlock(&db->ftab_lock);
    return rc;
}

int ftab_add(kv_db *db, kv_file *f) { return ftab_add_n(db, &f, 1); }

int ftab_put_n(kv_db *db, kv_file *const *fs, uint32_t n, kv_file *wal)
{
    kv_file *replaced[64], **rep = n <= 64 ? replaced : calloc(n, sizeof *rep);
    uint32_t nrep = 0;
    if (rep == NULL)
        return err_set(KV_ENOMEM, "file table of %u files", db->nfiles + n);
    pthread_rwlock_wrlock(&db->ftab_lock);
    int rc = ftab_reserve_locked(db, n);
    for (uint32_t i = 0; i < n && rc == KV_OK; i++) {
        long at = ftab_find_locked(db, fs[i]->number);
        if (at >= 0) {
            rep[nrep++] = db->files[at];
            db->files[at] = fs[i];
        } else {
            rc = ftab_insert_locked(db, fs[i]); /* room was made: cannot fail */
        }
    }
    if (rc == KV_OK && wal != NULL) {
        KV_ASSERT(db->wal_prev == NULL);
        db->wal_prev = db->wal_file;
        db->wal_file = wal;
    }
    pthread_rwlock_unlock(&db->ftab_lock);
    for (uint32_t i = 0; i < nrep; i++)
        file_unref(rep[i]);
    if (rep != replaced)
        free(rep);
    return rc;
}

void ftab_remove_n(kv_db *db, const uint32_t *nums, uint32_t n, kv_file **out)
{
    pthread_rwlock_wrlock(&db->ftab_lock);
    for (uint32_t k = 0; k < n; k++) {
        long i = ftab_find_locked(db, nums[k]);
        out[k] = NULL;
        if (i >= 0) {
            out[k] = db->files[i];
            memmove(&db->files[i], &db->files[i + 1],
                    (db->nfiles - (uint32_t)i - 1) * sizeof *db->files);
            db->nfiles--;
        }
    }
    pthread_rwlock_unlock(&db->ftab_lock);
}

kv_file *ftab_remove(kv_db *db, uint32_t number)
{
    kv_file *f;
    ftab_remove_n(db, &number, 1, &f);
    return f;
}

void ftab_clear(kv_db *db)
{
    for (uint32_t i = 0; i < db->nfiles; i++)
        file_unref(db->files[i]);
    db->nfiles = 0;
    db->active = NULL; /* the table's reference, just dropped, was its only one */
}

/* ---- a new MANIFEST in force ------------------------------------------------------- */

int ftab_install(kv_db *db, kv_manifest *m, kv_file *seg, kv_file *wal, kv_file **old_wal)
{
    int rc = KV_OK;
    pthread_rwlock_wrlock(&db->ftab_lock);
    free(db->man.sealed);
    db->man = *m;
    if (seg != NULL && (rc = ftab_insert_locked(db, seg)) == KV_OK) {
        db->active = seg;
        *old_wal = db->wal_file;
        db->wal_file = wal;
    }
    pthread_rwlock_unlock(&db->ftab_lock);
    return rc;
}
