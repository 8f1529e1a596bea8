/*
 * db.h — the store handle and the pieces the engine's modules share.
 *
 * Modules: db.c (options, open, close, sync, stats), ftab.c (the file table),
 * seg.c (the life of a segment: create, seal, publish, open, retire), apply.c (an
 * entry into the index), recover.c (rebuilding the index at open), write.c (put,
 * delete, batches, segment roll, the group-commit hooks), read.c (get, foreach),
 * batch.c (kv_batch), compact.c (compaction and its background thread).
 *
 * Ownership and locking:
 *   - files[] (the file table, sorted by number) is guarded by ftab_lock; readers
 *     pin a file with a reference while they read it.
 *   - active and wal_file belong to the group-commit leader once the store is open
 *     (only one leader runs at a time); roll swaps them under ftab_lock.
 *   - man changes only under man_mu (a roll or a compaction publishing a MANIFEST)
 *     and is swapped under ftab_lock as well, so either lock suffices to read it.
 *   - compact_mu: one compaction at a time (background thread or kv_compact).
 *   - the index locks itself per shard.
 */
#ifndef KV_DB_H
#define KV_DB_H

#include "db/ftab.h"
#include "db/seg.h"
#include "store/file.h"
#include "store/hint.h"
#include "store/index.h"
#include "io/io.h"
#include "base/kv_int.h"
#include "store/manifest.h"
#include "wal.h"
#include "io/lock.h"

#include <pthread.h>
#include <stdatomic.h>

#define KV_RO_ATTEMPTS 16        /* read-only recoveries kv_open tries on a store a
                                    writer keeps changing (db.c, recover_read_only) */

struct kv_db {
    char *dir;                 /* path as given, for messages */
    int dirfd;                 /* the store directory */
    kv_options opts;           /* options in force */
    kv_io *io;                 /* I/O layer */
    int lock_fd;               /* LOCK (writer), -1 for read-only */
    kv_index *idx;             /* key -> location */
    pthread_rwlock_t ftab_lock; /* guards files/nfiles */
    kv_file **files;           /* open segments, sorted by number */
    uint32_t nfiles;           /* files in the table */
    size_t fcap;               /* its capacity (grow.h) */
    kv_file *active;           /* the active segment */
    kv_file *wal_file;         /* the WAL file (writer: being appended; read-only:
                                  indexed for records not yet in the segment) */
    kv_manifest man;           /* the MANIFEST in force */
    hint_buf active_hint;      /* hint records of the active segment (writer), written
                                  as its hint file when it is sealed */
    wal_writer wal;            /* group commit (writer only) */
    int wal_started;
    _Atomic int failed;        /* sticky status after a write or fsync error (db_fail) */
    pthread_mutex_t fail_mu;   /* guards failmsg */
    char failmsg[256];         /* that error's message, for every later caller */
    _Atomic uint64_t puts, gets, deletes, batches;
    uint64_t recovery_us, recovery_records, recovery_replayed, recovery_cut;
    uint64_t recovery_hints, recovery_hints_rewritten;
    uint64_t next_seq_at_open;
    pthread_mutex_t man_mu;    /* serialises MANIFEST updates */
    _Atomic uint32_t next_file; /* next unused file number (rolls and compaction) */
    /* compaction (compact.c) */
    pthread_mutex_t compact_mu; /* one compaction at a time */
    pthread_mutex_t bg_mu;     /* guards the fields below it */
    pthread_cond_t bg_cv;      /* wakes the background thread */
    pthread_t bg_thread;
    int bg_running, bg_kick;
    _Atomic int bg_stop;
    _Atomic int compacting;    /* a compaction is running */
    _Atomic uint64_t compactions, compact_bytes_in, compact_bytes_out, compact_dropped,
        compact_tombs_dropped, compact_errors, compact_last_unix, compact_last_us,
        compact_pass_read, compact_pass_total;
    /* a read-only handle following the writer (refresh.c; docs/MULTIPROCESS.md) */
    pthread_mutex_t refresh_mu; /* one kv_refresh at a time; held while it changes the
                                   fields below, the file table and the index */
    int man_fd;                /* the MANIFEST in force, held open so that its inode
                                  number names it (no other file can get that number
                                  while it is held): -1 when unknown */
    uint64_t man_ino, man_dev;
    kv_file *wal_prev;         /* the WAL file a refresh is moving away from: gets may
                                  still find records in it until the refresh ends */
    uint64_t wal_last_seq;     /* sequence number of the last record indexed from
                                  wal_file (0: none yet); the next must be one more */
    _Atomic uint64_t reached;  /* the handle's view holds every write up to this seq */
    _Atomic uint64_t refreshes, refresh_lag, refresh_last_time, refresh_last_us;
    /* value compression (kv_stat), added to by the group-commit leader */
    _Atomic uint64_t value_bytes_raw;    /* put values as given */
    _Atomic uint64_t value_bytes_stored; /* the same, as stored */
    _Atomic uint64_t values_compressed;  /* puts stored LZ4-compressed */
};

/* Address space mapped for the active segment: it can outgrow segment_bytes by one
 * group (at most a whole batch). */
static inline size_t db_active_map_len(const kv_db *db)
{
    return (size_t)db->opts.segment_bytes + KV_MAX_BATCH + (2u << 20);
}

/* Argument checks shared by the API functions (fn names the caller in messages):
 * a key of 1..KV_MAX_KEY bytes; with it a value of 0..KV_MAX_VALUE bytes, non-NULL
 * unless empty. Return KV_OK or KV_EINVAL with a message. */
int db_check_key(const char *fn, const void *key, size_t klen);
int db_check_kv(const char *fn, const void *key, size_t klen, const void *val, size_t vlen);

/* The handle's sticky failure state (invariant 6; db.c). db_fail marks the store
 * failed with status, keeping the calling thread's kv_errmsg (the first failure
 * wins), and returns status: every later write, sync and compaction fails with it
 * until the store is reopened, and kv_close reports it. db_check_failed returns that
 * status (KV_OK if none), setting this thread's message. The WAL writer reports
 * through its hooks (write.c). Any thread. */
int db_fail(kv_db *db, int status);
int db_check_failed(kv_db *db);

/* Recovery (recover.c): rebuilds the index from the MANIFEST's segments and the WAL.
 * Leaves db->active and db->wal_file open and next_seq_at_open set. */
int db_recover(kv_db *db);

/* Read-only handles (refresh.c): pins the MANIFEST just loaded into db->man (at open
 * and by every refresh that read one); the pin is left unknown (-1) when a writer
 * replaced it meanwhile, and the next refresh reads it again. */
void db_pin_manifest(kv_db *db, int fd);
/* Opens the MANIFEST for db_pin_manifest: its descriptor, or -1. Before it is read. */
int db_open_manifest(kv_db *db);

/* Write-side set-up (write.c): starts group commit over db->wal_file. */
int db_start_writer(kv_db *db);

/* Index bookkeeping shared by recovery and the write path (apply.c): applies one
 * entry found at (file, off) to the index, keeping per-file live byte counts.
 * recovery selects newest-wins by sequence number and keeps tombstones. */
struct kv_entry;
int db_index_entry(kv_db *db, kv_file *f, const struct kv_entry *e, uint64_t off, uint64_t hash,
                   int recovery);

/* Compaction (compact.c). compact_start runs the background thread (auto_compact),
 * compact_stop ends it (kv_close, before the writer stops); compact_kick wakes it
 * (a segment was sealed). */
int compact_start(kv_db *db);
void compact_stop(kv_db *db);
void compact_kick(kv_db *db);
/* Dead bytes kv_compact would reclaim now (kv_stat). The caller holds ftab_lock. */
uint64_t compact_reclaimable_locked(kv_db *db);


#endif
