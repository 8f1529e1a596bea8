/*
 * db.c — the store handle: options, kv_open (directory, lock, MANIFEST or a new
 * store, recovery, leftovers, writer start), kv_close, kv_sync, kv_stat. The file
 * table is ftab.c's.
 */
#include "db/db.h"

#include "format/entry.h"
#include "io/fstype.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- options ----------------------------------------------------------------------- */

/* The sizes of kv_options and kv_stats the library accepts from a caller (kv.h,
 * sections 3 and 7): from those of the first layouts, the fields kv 0.1's first
 * release had (the options through compact_dead_ratio, the counters through
 * recovery_cut_bytes), up to this library's own. */
#define OPTIONS_SIZE_MIN offsetof(kv_options, mmap_reads)
#define STATS_SIZE_MIN offsetof(kv_stats, recovery_hints)

static void options_defaults(kv_options *o)
{
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->create = 1;
    o->sync = KV_SYNC_ALWAYS;
    o->sync_interval_ms = 1000;
    o->compression = KV_COMPRESS_NONE;
    o->segment_bytes = 64u << 20;
    o->io = KV_IO_AUTO;
    o->auto_compact = 1;
    o->compact_dead_ratio = 0.5;
    o->mmap_reads = 1;
    o->compact_bytes_per_sec = 64u << 20;
    o->compress_min_bytes = KV_COMPRESS_MIN_DEFAULT;
}

/* Writes at most size bytes: a program built against an older kv.h passes the size
 * of its smaller kv_options. */
void kv_options_init_sized(kv_options *o, size_t size)
{
    kv_options d;
    if (o == NULL || size < sizeof o->struct_size)
        return;
    options_defaults(&d);
    d.struct_size = size;
    memcpy(o, &d, size < sizeof d ? size : sizeof d);
}

/* Copies the caller's options into *dst: only the src->struct_size bytes its struct
 * has are read, over the defaults, so the fields an older, smaller kv_options lacks
 * keep them. A struct_size no kv_options has had is refused before anything past it
 * is read: 0 (options kv_options_init did not fill), below the first layout's, or
 * above ours (a program built against a newer kv.h than this library). */
static int options_copy(kv_options *dst, const kv_options *src)
{
    size_t size = src->struct_size;
    if (size < OPTIONS_SIZE_MIN || size > sizeof *dst)
        return err_set(KV_EINVAL, "kv_open: options.struct_size %zu is not the size of a "
                       "kv_options (%zu..%zu bytes): fill the options with kv_options_init%s",
                       size, (size_t)OPTIONS_SIZE_MIN, sizeof *dst,
                       size > sizeof *dst ? ", and run with a libkv as new as the kv.h "
                                            "the program was built with" : "");
    options_defaults(dst);
    memcpy(dst, src, size);
    dst->struct_size = sizeof *dst;
    return KV_OK;
}

static int check_options(const kv_options *o)
{
    if (o->sync != KV_SYNC_ALWAYS && o->sync != KV_SYNC_INTERVAL && o->sync != KV_SYNC_NONE)
        return err_set(KV_EINVAL, "kv_open: options.sync %d is not KV_SYNC_ALWAYS, "
                      "KV_SYNC_INTERVAL or KV_SYNC_NONE", o->sync);
    if (o->sync_interval_ms < 1 || o->sync_interval_ms > 3600000u)
        return err_set(KV_EINVAL, "kv_open: options.sync_interval_ms %u is outside 1..3600000",
                      o->sync_interval_ms);
    if (o->compression != KV_COMPRESS_NONE && o->compression != KV_COMPRESS_LZ4)
        return err_set(KV_EINVAL, "kv_open: options.compression %d is not KV_COMPRESS_NONE "
                      "or KV_COMPRESS_LZ4", o->compression);
    if (o->segment_bytes < 4096 || o->segment_bytes > (1u << 30))
        return err_set(KV_EINVAL, "kv_open: options.segment_bytes %llu is outside 4 KiB..1 GiB",
                      (unsigned long long)o->segment_bytes);
    if (o->io != KV_IO_AUTO && o->io != KV_IO_URING && o->io != KV_IO_PSYNC)
        return err_set(KV_EINVAL, "kv_open: options.io %d is unknown", o->io);
    if (!(o->compact_dead_ratio > 0.0 && o->compact_dead_ratio <= 1.0))
        return err_set(KV_EINVAL, "kv_open: options.compact_dead_ratio %g is outside (0, 1]",
                      o->compact_dead_ratio);
    return KV_OK;
}

int db_check_key(const char *fn, const void *key, size_t klen)
{
    if (key == NULL)
        return err_set(KV_EINVAL, "%s: key is NULL", fn);
    if (klen == 0 || klen > KV_MAX_KEY)
        return err_set(KV_EINVAL, "%s: key length %zu is outside 1..%u", fn, klen, KV_MAX_KEY);
    return KV_OK;
}

int db_check_kv(const char *fn, const void *key, size_t klen, const void *val, size_t vlen)
{
    int rc = db_check_key(fn, key, klen);
    if (rc != KV_OK)
        return rc;
    if (vlen > KV_MAX_VALUE)
        return err_set(KV_EINVAL, "%s: value length %zu is above KV_MAX_VALUE (%u)", fn, vlen,
                      KV_MAX_VALUE);
    if (val == NULL && vlen > 0)
        return err_set(KV_EINVAL, "%s: value is NULL with length %zu", fn, vlen);
    return KV_OK;
}

/* ---- the failure state ------------------------------------------------------------ */

int db_fail(kv_db *db, int status)
{
    int expected = 0;
    if (atomic_compare_exchange_strong(&db->failed, &expected, status)) {
        pthread_mutex_lock(&db->fail_mu);
        strncpy(db->failmsg, kv_errmsg(), sizeof db->failmsg - 1);
        pthread_mutex_unlock(&db->fail_mu);
    }
    return status;
}

int db_check_failed(kv_db *db)
{
    int st = atomic_load(&db->failed);
    if (st == 0)
        return KV_OK;
    pthread_mutex_lock(&db->fail_mu);
    err_set(st, "store failed earlier and refuses writes until reopened: %s", db->failmsg);
    pthread_mutex_unlock(&db->fail_mu);
    return st;
}

/* ---- creating a store -------------------------------------------------------------- */

/* What the directory holds when it has no MANIFEST: only our own debris of an
 * interrupted creation (LOCK, MANIFEST.tmp, empty 000001 files) may be there.
 * With cleanup (the writer lock held) that debris is removed. */
static int check_empty_dir(kv_db *db, int cleanup)
{
    DIR *d = fdopendir(dup(db->dirfd));
    struct dirent *de;
    int rc = KV_OK;
    if (d == NULL)
        return err_errno(errno, "%s: reading the directory", db->dir);
    rewinddir(d); /* a dup shares the offset an earlier pass left at the end */
    while (rc == KV_OK && (de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        uint32_t num;
        struct stat st;
        if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "LOCK") || !strcmp(n, KV_MANIFEST_TMP))
            continue;
        if (file_parse_name(n, &num) && num == 1
            && fstatat(db->dirfd, n, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)
            && st.st_size <= KV_FILE_HDR_SIZE) {
            if (cleanup)
                unlinkat(db->dirfd, n, 0);
            continue;
        }
        if (file_parse_name(n, &num))
            rc = err_set(KV_ECORRUPT, "%s: MANIFEST is missing but %s exists", db->dir, n);
        else
            rc = err_set(KV_EINVAL, "%s: directory holds no kv store and is not empty (%s); "
                        "a store is only created in an empty directory", db->dir, n);
    }
    closedir(d);
    return rc;
}

static int create_store(kv_db *db)
{
    kv_file *seg = NULL, *wal = NULL;
    int rc = check_empty_dir(db, 1);
    if (rc == KV_OK)
        rc = file_create(db->io, db->dirfd, KV_FILE_SEG, 1, &seg);
    if (rc == KV_OK)
        rc = file_create(db->io, db->dirfd, KV_FILE_WAL, 1, &wal);
    if (rc == KV_OK) {
        memset(&db->man, 0, sizeof db->man);
        db->man.active = 1;
        db->man.next_file = 2;
        rc = manifest_store(db->io, db->dirfd, &db->man, NULL);
    }
    file_unref(seg);
    file_unref(wal);
    return rc;
}

/* ---- opening ----------------------------------------------------------------------- */

static int open_dir(kv_db *db, const char *dir, int create)
{
    struct stat st;
    if (stat(dir, &st) < 0) {
        if (errno != ENOENT)
            return err_errno(errno, "kv_open: %s", dir);
        if (!create)
            return err_set(KV_EINVAL, "kv_open: %s does not exist (and create is 0)", dir);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            return err_errno(errno, "kv_open: creating directory %s", dir);
    } else if (!S_ISDIR(st.st_mode)) {
        return err_set(KV_EINVAL, "kv_open: %s is not a directory", dir);
    }
    db->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (db->dirfd < 0)
        return err_errno(errno, "kv_open: opening directory %s", dir);
    return fs_check_local(db->dirfd, dir); /* no network file system (kv.h, "Caveats") */
}

/* Removes files the MANIFEST does not name: segments and WAL files of interrupted
 * rolls, WAL files already sealed into segments, hints of segments that are not
 * sealed, temporary hint files, a stale MANIFEST.tmp, and the compaction request and
 * result files (COMPACT.*) of an earlier writer: its kvcompact waiting asks this
 * writer again when its request vanishes (compact_req.c). Only kv's own: names exactly
 * as kv writes them (file_parse_name), of regular files (kv makes no other kind).
 * Anything else under such a name stays, and file numbers are taken past it: a roll
 * must not fail to create a file of that name. */
static void remove_leftovers(kv_db *db)
{
    struct stat st;
    DIR *d = fdopendir(dup(db->dirfd));
    struct dirent *de;
    if (d == NULL)
        return;
    rewinddir(d);
    while ((de = readdir(d)) != NULL) {
        uint32_t num;
        int kind = file_parse_name(de->d_name, &num), keep = 1;
        if (kind == KV_FILE_WAL)
            keep = num == db->man.active;
        else if (kind == KV_FILE_SEG || kind == KV_FILE_HINT) {
            keep = kind == KV_FILE_SEG && num == db->man.active;
            for (uint32_t i = 0; i < db->man.nsealed && !keep; i++)
                keep = db->man.sealed[i].number == num;
        } else if (kind == KV_FILE_HINT_TMP || strcmp(de->d_name, KV_MANIFEST_TMP) == 0
                   || strcmp(de->d_name, KV_COMPACT_REQ) == 0
                   || strcmp(de->d_name, KV_COMPACT_REQ_TMP) == 0
                   || strcmp(de->d_name, KV_COMPACT_RES) == 0
                   || strcmp(de->d_name, KV_COMPACT_RES_TMP) == 0)
            keep = 0;
        if (keep || fstatat(db->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISREG(st.st_mode))
            db->io->ops->unlink(db->io, db->dirfd, de->d_name);
        else if (kind != 0 && num >= db->next_file && num < UINT32_MAX)
            db->next_file = num + 1;
    }
    closedir(d);
}

/* Makes the directory's names durable before this handle acknowledges anything:
 * a previous handle may have created, renamed or removed files without a
 * successful directory fsync (it failed, or a crash came first), and writes
 * acknowledged now would live in files whose names a power failure could undo. */
static int sync_dir(kv_db *db)
{
    int r = db->io->ops->syncdir(db->io, db->dirfd);
    return r < 0 ? err_errno(-r, "%s: fsync of the directory", db->dir) : KV_OK;
}

/* Before anything is written (even LOCK): a directory without a MANIFEST must be
 * one we may create a store in, so a refused open leaves no trace. */
static int precheck_dir(kv_db *db, const char *dir)
{
    if (faccessat(db->dirfd, KV_MANIFEST_NAME, F_OK, 0) == 0)
        return KV_OK;
    if (db->opts.read_only || !db->opts.create)
        return err_set(KV_EINVAL, "kv_open: %s holds no kv store (no MANIFEST)%s", dir,
                      db->opts.read_only ? "" : " and create is 0");
    return check_empty_dir(db, 0);
}

/* Reads the MANIFEST (or creates the store) and rebuilds the index from the files
 * it names. */
static int load_store(kv_db *db, const char *dir)
{
    int rc = manifest_load(db->io, db->dirfd, &db->man);
    if (rc == KV_NOTFOUND) {
        if (db->opts.read_only || !db->opts.create)
            rc = err_set(KV_EINVAL, "kv_open: %s holds no kv store (no MANIFEST)%s", dir,
                        db->opts.read_only ? "" : " and create is 0");
        else
            rc = create_store(db);
    }
    db->next_file = db->man.next_file;
    if (rc == KV_OK)
        rc = db_recover(db);
    return rc;
}

/* ---- opening read-only beside a writer --------------------------------------------- */

/* Forgets what a refused recovery built — the file table and the active pair (each
 * file closed and unmapped), the index, the MANIFEST, the recovery figures — so it
 * can run again on this handle as on a new one. */
static int recovery_reset(kv_db *db)
{
    ftab_clear(db);
    file_unref(db->wal_file);
    db->wal_file = NULL;
    idx_free(db->idx);
    db->idx = NULL;
    hint_free(&db->active_hint);
    manifest_free(&db->man);
    memset(&db->man, 0, sizeof db->man);
    db->recovery_records = db->recovery_replayed = db->recovery_cut = 0;
    db->recovery_hints = db->recovery_hints_rewritten = 0;
    db->next_seq_at_open = 0;
    if (idx_new(&db->idx) != 0)
        return err_set(KV_ENOMEM, "kv_open: allocating the index");
    return KV_OK;
}

/* Sleeps ms milliseconds, the whole of them whatever signals arrive. */
static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Recovery of a read-only handle, which a writer may change the store under: a
 * roll publishes a new MANIFEST and then removes the old WAL file, a compaction
 * publishes one and then removes its inputs and their hints. So a file the MANIFEST
 * read named may be gone (or anything else may look wrong) because the store moved
 * on, not because it is damaged. The rule: a refusal (KV_ECORRUPT) is only reported
 * once two attempts in a row, each from the MANIFEST as it then is, were refused
 * the same way (same status and message: same file, same offset) — a file a writer
 * removed is never named again by a MANIFEST read after its removal, so it cannot be
 * missing twice. Otherwise the handle is reset and recovery runs again, after a
 * short backoff, at most KV_RO_ATTEMPTS times; a store that changes under every
 * attempt is KV_EIO. A missing hint never gets here: the segment is scanned. */
static int recover_read_only(kv_db *db, const char *dir)
{
    char last[512] = "";
    for (unsigned attempt = 1;; attempt++) {
        int man_fd = db_open_manifest(db);
        int rc = load_store(db, dir);
        if (rc == KV_OK)
            db_pin_manifest(db, man_fd); /* what kv_refresh compares with */
        else if (man_fd >= 0)
            close(man_fd);
        if (rc != KV_ECORRUPT || strcmp(last, kv_errmsg()) == 0)
            return rc; /* done, not damage, or the same damage twice in a row */
        snprintf(last, sizeof last, "%s", kv_errmsg());
        if (attempt == KV_RO_ATTEMPTS)
            return err_set(KV_EIO, "%s: the store kept changing while it was opened (%u "
                          "attempts); the last: %s", dir, attempt, last);
        rc = recovery_reset(db);
        if (rc != KV_OK)
            return rc;
        sleep_ms(attempt < 6 ? 1u << (attempt - 1) : 32u);
    }
}

static int open_store(kv_db *db, const char *dir)
{
    int rc = open_dir(db, dir, db->opts.create && !db->opts.read_only);
    if (rc == KV_OK)
        rc = precheck_dir(db, dir);
    if (rc == KV_OK)
        rc = io_for(dir, db->opts.io, &db->io);
    if (rc == KV_OK && idx_new(&db->idx) != 0)
        rc = err_set(KV_ENOMEM, "kv_open: allocating the index");
    if (rc == KV_OK && db->opts.read_only) /* no repair while we read (io/lock.h) */
        rc = lock_reader_hold(db->dirfd, dir, &db->reader_lock_fd);
    /* The lock is taken now, but LOCK gets our pid only once recovery has passed
     * its checks (db_recover): an open refused for damage changes no byte. */
    if (rc == KV_OK && !db->opts.read_only) {
        rc = lock_take(db->dirfd, dir, &db->lock_fd);
        if (rc == KV_NOTFOUND)
            rc = lock_acquire(db->dirfd, dir, &db->lock_fd);
    }
    uint64_t t0 = clock_now_us();
    if (rc == KV_OK)
        rc = db->opts.read_only ? recover_read_only(db, dir) : load_store(db, dir);
    db->recovery_us = clock_now_us() - t0;
    if (rc == KV_OK && !db->opts.read_only) {
        remove_leftovers(db);
        rc = sync_dir(db);
    }
    if (rc == KV_OK && !db->opts.read_only)
        rc = db_start_writer(db);
    if (rc == KV_OK)
        rc = compact_start(db);
    return rc;
}

int kv_open(const char *dir, const kv_options *opts, kv_db **out)
{
    err_clear();
    if (out == NULL)
        return err_set(KV_EINVAL, "kv_open: out is NULL");
    *out = NULL;
    if (dir == NULL || dir[0] == '\0')
        return err_set(KV_EINVAL, "kv_open: dir is NULL or empty");
    kv_db *db = calloc(1, sizeof *db);
    if (db == NULL || (db->dir = strdup(dir)) == NULL) {
        free(db);
        return err_set(KV_ENOMEM, "kv_open: allocating the handle");
    }
    db->dirfd = -1;
    db->lock_fd = -1;
    db->man_fd = -1;
    pthread_mutex_init(&db->refresh_mu, NULL);
    db->reader_lock_fd = -1;
    rwlock_init_writers_first(&db->ftab_lock);
    pthread_mutex_init(&db->man_mu, NULL);
    pthread_mutex_init(&db->fail_mu, NULL);
    pthread_mutex_init(&db->compact_mu, NULL);
    pthread_mutex_init(&db->bg_mu, NULL);
    pthread_cond_init(&db->bg_cv, NULL);
    int rc = KV_OK;
    if (opts != NULL)
        rc = options_copy(&db->opts, opts);
    else
        options_defaults(&db->opts);
    if (rc == KV_OK)
        rc = check_options(&db->opts);
    if (rc == KV_OK)
        rc = open_store(db, dir);
    if (rc != KV_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", kv_errmsg());
        kv_close(db);
        return err_set(rc, "%s", msg);
    }
    *out = db;
    return KV_OK;
}

/* ---- closing, syncing, statistics -------------------------------------------------- */

int kv_close(kv_db *db)
{
    int rc = KV_OK;
    if (db == NULL)
        return KV_OK;
    compact_stop(db);
    if (db->wal_started) {
        wal_shutdown(&db->wal);
        /* a failure nobody was told of yet (the interval thread's) is told now */
        int failed = atomic_load(&db->failed);
        if (failed != 0)
            rc = err_set(failed, "kv_close: a write or fsync failed earlier: %s", db->failmsg);
        else if (db->active != NULL)
            rc = file_flush(db->active);
    }
    ftab_clear(db);
    free(db->files);
    file_unref(db->wal_file);
    file_unref(db->wal_prev);
    if (db->man_fd >= 0)
        close(db->man_fd);
    idx_free(db->idx);
    hint_free(&db->active_hint);
    manifest_free(&db->man);
    io_free(db->io);
    lock_release(db->lock_fd);
    lock_release(db->reader_lock_fd);
    if (db->dirfd >= 0)
        close(db->dirfd);
    pthread_rwlock_destroy(&db->ftab_lock);
    pthread_mutex_destroy(&db->man_mu);
    pthread_mutex_destroy(&db->refresh_mu);
    pthread_mutex_destroy(&db->fail_mu);
    pthread_mutex_destroy(&db->compact_mu);
    pthread_mutex_destroy(&db->bg_mu);
    pthread_cond_destroy(&db->bg_cv);
    free(db->dir);
    free(db);
    return rc;
}

int kv_sync(kv_db *db)
{
    if (db == NULL)
        return err_set(KV_EINVAL, "kv_sync: db is NULL");
    if (db->opts.read_only)
        return err_set(KV_EREADONLY, "kv_sync: %s is open read-only", db->dir);
    return wal_sync(&db->wal);
}

/* Whether the writer deleted a file a read-only handle still holds. */
static void count_pinned(kv_file *f, kv_stats *st)
{
    struct stat s;
    if (f != NULL && fstat(f->fd, &s) == 0 && s.st_nlink == 0) {
        st->pinned_files++;
        st->pinned_bytes += (uint64_t)s.st_blocks * 512u;
    }
}

/* The fields of a read-only handle following the writer (kv_refresh): how far it has
 * come, and the files it keeps that the writer has deleted (its MANIFEST included). */
static void reader_stats(kv_db *db, kv_stats *st)
{
    struct stat s;
    st->reader_seq = atomic_load(&db->reached);
    st->reader_lag = atomic_load(&db->refresh_lag);
    st->refreshes = atomic_load(&db->refreshes);
    st->refresh_last_time = atomic_load(&db->refresh_last_time);
    st->refresh_last_us = atomic_load(&db->refresh_last_us);
    pthread_mutex_lock(&db->refresh_mu); /* the table and the pins stay as they are */
    pthread_rwlock_rdlock(&db->ftab_lock);
    for (uint32_t i = 0; i < db->nfiles; i++)
        count_pinned(db->files[i], st);
    count_pinned(db->wal_file, st);
    count_pinned(db->wal_prev, st);
    pthread_rwlock_unlock(&db->ftab_lock);
    if (db->man_fd >= 0 && fstat(db->man_fd, &s) == 0 && s.st_nlink == 0) {
        st->pinned_files++;
        st->pinned_bytes += (uint64_t)s.st_blocks * 512u;
    }
    pthread_mutex_unlock(&db->refresh_mu);
}

/* Fills a kv_stats of the library's size, then copies out the size bytes the
 * caller's has (kv.h): never a byte past them. */
int kv_stat_sized(kv_db *db, kv_stats *out, size_t size)
{
    kv_stats full, *st = &full;
    if (db == NULL || out == NULL)
        return err_set(KV_EINVAL, "kv_stat: %s is NULL", db == NULL ? "db" : "st");
    if (size < STATS_SIZE_MIN || size > sizeof full)
        return err_set(KV_EINVAL, "kv_stat: the size of st, %zu, is not the size of a "
                       "kv_stats (%zu..%zu bytes)%s", size, (size_t)STATS_SIZE_MIN,
                       sizeof full, size > sizeof full ? ": run with a libkv as new as "
                       "the kv.h the program was built with" : "");
    memset(st, 0, sizeof *st);
    st->keys = idx_count(db->idx);
    st->index_bytes = idx_bytes(db->idx); /* + the segments' Bloom filters, below */
    pthread_rwlock_rdlock(&db->ftab_lock);
    for (uint32_t i = 0; i < db->nfiles; i++) {
        kv_file *f = db->files[i];
        uint64_t payload = f->size - KV_FILE_HDR_SIZE, live = f->live_bytes;
        st->segments++;
        st->live_bytes += live;
        st->dead_bytes += payload > live ? payload - live : 0;
        st->disk_bytes += f->size;
        st->index_bytes += bloom_bytes(f->bloom);
    }
    if (db->wal_file != NULL) {
        uint64_t wb = db->opts.read_only ? db->wal_file->size : db->wal.off;
        st->wal_bytes = wb;
        st->wal_files = 1;
        st->disk_bytes += wb;
    }
    st->disk_bytes += KV_FILE_HDR_SIZE + KV_MANIFEST_FIXED + 4 + (uint64_t)db->man.nsealed * KV_MANIFEST_SEG;
    st->reclaimable_bytes = compact_reclaimable_locked(db);
    pthread_rwlock_unlock(&db->ftab_lock);
    st->puts = db->puts;
    st->gets = db->gets;
    st->deletes = db->deletes;
    st->batches = db->batches;
    st->wal_syncs = db->wal_started ? db->wal.syncs : 0;
    st->wal_groups = db->wal_started ? db->wal.groups : 0;
    st->next_seq = db->wal_started ? wal_next_seq(&db->wal) : atomic_load(&db->reached) + 1;
    if (db->opts.read_only)
        reader_stats(db, st);
    st->recovery_us = db->recovery_us;
    st->recovery_records = db->recovery_records;
    st->recovery_wal_replayed = db->recovery_replayed;
    st->recovery_cut_bytes = db->recovery_cut;
    st->recovery_hints = db->recovery_hints;
    st->recovery_hints_rewritten = db->recovery_hints_rewritten;
    st->compactions = db->compactions;
    st->compact_bytes_read = db->compact_bytes_in;
    st->compact_bytes_written = db->compact_bytes_out;
    st->compact_bytes_reclaimed = db->compact_bytes_in - db->compact_bytes_out;
    st->compact_records_dropped = db->compact_dropped;
    st->compact_tombstones_dropped = db->compact_tombs_dropped;
    st->compact_errors = db->compact_errors;
    st->compact_last_time = db->compact_last_unix;
    st->compact_last_us = db->compact_last_us;
    st->compacting = db->compacting;
    st->compact_pass_read = db->compact_pass_read;
    st->compact_pass_total = db->compact_pass_total;
    st->io_backend = db->io->backend;
    st->sync = db->opts.sync;
    st->read_only = db->opts.read_only;
    st->failed = db->failed;
    snprintf(st->io_backend_note, sizeof st->io_backend_note, "%s", db->io->note);
    st->value_bytes_raw = db->value_bytes_raw;
    st->value_bytes_stored = db->value_bytes_stored;
    st->values_compressed = db->values_compressed;
    st->compression = db->opts.compression;
    memcpy(out, st, size);
    return KV_OK;
}
