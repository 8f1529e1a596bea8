/*
 * kv.h — the one public header of kv, an embedded log-structured key-value store.
 *
 * This header is the manual. Every function documents what it does, each status it
 * returns and when, and its thread-safety. Sections:
 *   1. Status codes and error reporting
 *   2. Limits
 *   3. Options
 *   4. Opening and closing a store
 *   5. Single-key operations
 *   6. Atomic batches
 *   7. Durability, iteration and statistics
 * and, below, the caveats every program should read (as LMDB's lmdb.h has them).
 *
 * Conventions. Functions return KV_OK (0) on success, KV_NOTFOUND (1, not an error)
 * where a key may be absent, or a negative KV_E* code. Results go through
 * out-parameters. After any non-zero status, KV_NOTFOUND included ("kv_get: key not
 * found"), kv_errmsg() returns a message for the calling thread naming the call and
 * what failed: the file, the offset and the errno text where they apply. No function
 * prints, exits or aborts on bad input or I/O failure.
 *
 * Threads. One kv_db handle may be shared by any number of threads without external
 * locking: gets run in parallel with each other and with writes; concurrent writers
 * are committed together (group commit), so N threads writing with KV_SYNC_ALWAYS
 * share fdatasync calls. A kv_batch belongs to one thread at a time.
 *
 * Processes. One process at a time holds a store for writing (the LOCK file). A
 * second writer, in this process or another, gets KV_ELOCKED naming the holder's pid.
 * Read-only handles, any number, in any process, beside the writer or not, follow
 * it with kv_refresh; each holds the reader lock, which keeps kvcheck --repair away
 * while it is open (docs/MULTIPROCESS.md, "Locks").
 * Other processes compact a held store through its writer: kvcompact leaves a
 * request in the store directory and the writer's background thread compacts and
 * answers (kv_open, "A writer answers"; docs/MULTIPROCESS.md).
 *
 * Signals. A program's signals (timers, SIGCHLD, profilers, a runtime's preemption),
 * with SA_RESTART or without, never make a call fail: every blocking call the
 * library makes restarts after EINTR, or waits again for the I/O it already
 * submitted (an io_uring write and fdatasync in particular), so EINTR is never
 * reported as an I/O error and never fails the handle. The test suite runs under
 * storms of 1 kHz and 10 kHz to every thread.
 *
 * Caveats.
 *  - fork(). A handle must not be used after fork() in the child, not even to close
 *    it: the io_uring ring, the library's threads (group commit's interval syncer,
 *    background compaction) and the writer lock do not survive into the child, and
 *    its copy of the handle's mutexes may be held by threads that no longer exist.
 *    The child may open the store afresh (read-only, or as the writer once the
 *    parent has closed it). Until the child execs or exits it also shares the
 *    writer's LOCK descriptor, and with it the flock: the lock is not free for a new
 *    writer while such a child lives. A read-only handle's child likewise shares its
 *    reader lock, so kvcheck --repair refuses the store while such a child lives.
 *    The descriptors kv keeps are close-on-exec.
 *  - Network file systems are not supported: NFS, SMB/CIFS (SMB2/3 included), AFS,
 *    Coda, NCP and CephFS are refused by kv_open with KV_EINVAL naming the file
 *    system (one fstatfs of the directory). kv relies on fdatasync reaching the
 *    disk, rename and directory fsync being atomic and durable, flock excluding a
 *    second writer, the pid in LOCK naming a process of this host, and mappings
 *    seeing what the writer wrote, none of which a network file system keeps for
 *    sure, least of all between hosts. Local file systems, tmpfs, overlayfs, FUSE
 *    and 9P (the host's disk as virtual machines and sandboxes present it) are
 *    accepted; FUSE and 9P give kv's guarantees only as far as what serves them
 *    does.
 *  - Address space. With mmap_reads (the default), a writer maps its active segment
 *    with segment_bytes + KV_MAX_BATCH + 2 MiB of address space (322 MiB with the
 *    defaults) and each sealed segment whole; a read-only handle maps every segment
 *    it read, whole. Mappings take address space, not memory: pages come from the
 *    page cache as they are read. A process with a limit on its address space
 *    (ulimit -v, RLIMIT_AS) should count them, or open with mmap_reads 0.
 *  - Read-only handles see a snapshot: the store as it was when kv_open (or their
 *    last kv_refresh) read it, whole batches only. kv_refresh catches up with the
 *    writer (section 7).
 *  - Disk space of removed files. A read-only handle keeps every file it read open,
 *    so the segments a writer compacts away and the WAL files it rolls past stay on
 *    disk, unlinked but holding their space, until that handle's next kv_refresh
 *    (or kv_close): refresh long-lived read-only handles now and then; kv_stat's
 *    pinned_files and pinned_bytes say what one holds. A writer gives a file's space
 *    back once no get in flight still reads it.
 */
#ifndef KV_H
#define KV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KV_VERSION_MAJOR 0
#define KV_VERSION_MINOR 1
#define KV_VERSION_PATCH 0
#define KV_VERSION_STRING "0.1.0"
/* The version as one number that compares in order: major * 10000 + minor * 100 +
 * patch (0.1.0 is 100), for #if KV_VERSION_NUMBER >= ... in a program. */
#define KV_VERSION_NUMBER \
    (KV_VERSION_MAJOR * 10000 + KV_VERSION_MINOR * 100 + KV_VERSION_PATCH)

/* The ABI. libkv.so exports exactly the functions this header declares, each marked
 * KV_API; the library is built with -fvisibility=hidden, so none of its internal
 * functions can be interposed by, or clash with, a host program's own (the abi
 * suite of tests/test_abi.c compares nm -D with this header). Its soname is
 * libkv.so.1: kv_options gained its struct_size field and kv_stat and
 * kv_options_init their size argument (libkv.so.0 had neither). From libkv.so.1 on,
 * the two public structs may grow, fields appended only, without a new soname: a
 * program passes the size of the struct it was compiled with (kv_options_init
 * records it in struct_size; kv_stat passes it), and the library reads or writes
 * only that many bytes (sections 3 and 7). */
#ifndef KV_API
#if defined(__GNUC__) && __GNUC__ >= 4
#define KV_API __attribute__((visibility("default")))
#else
#define KV_API
#endif
#endif

/* ---------------------------------------------------------------------------------
 * 1. Status codes and error reporting
 *
 * Codes are pinned: they never change meaning between releases. Errors live in
 * -30800..-30899 so they never clash with errno values a caller may mix them with.
 * ------------------------------------------------------------------------------ */
#define KV_OK 0        /* success */
#define KV_NOTFOUND 1  /* the key is absent; not an error */
#define KV_EINVAL (-30800)    /* bad argument: NULL pointer, size out of limits, bad option,
                                 a path that is not a directory or not a kv store */
#define KV_ENOMEM (-30801)    /* out of memory */
#define KV_EIO (-30802)       /* an I/O call failed (errno in kv_errmsg); after a failed
                                 write or fsync the handle refuses writes until reopened */
#define KV_ECORRUPT (-30803)  /* stored data failed a check (checksum, length, magic),
                                 or a store file is not a regular file (a FIFO, a
                                 directory, a device; LOCK a symbolic link);
                                 kv_errmsg names the file and offset */
#define KV_ELOCKED (-30804)   /* another handle (this process or another) holds the
                                 writer lock; or, read-only, kvcheck --repair is
                                 repairing the store; kv_errmsg names the pid */
#define KV_EREADONLY (-30805) /* a write on a handle opened with read_only */
#define KV_ENOSPC (-30806)    /* the file system is full; like KV_EIO, the handle
                                 then refuses writes until reopened */
#define KV_EVERSION (-30807)  /* a file written by a newer, unknown format version */

/* Returns a short constant text naming a status ("checksum or format error", ...),
 * never NULL; unknown codes give a generic text. Thread-safe. */
KV_API const char *kv_strerror(int status);

/* Returns the calling thread's last detailed error message, e.g.
 * "segment 000012.seg offset 4096: checksum mismatch (stored 0x1a2b3c4d, computed
 * 0x5e6f7a8b)". Empty string if no error was recorded. The text stays valid until
 * the next kv_* call in the same thread that can fail (kv_strerror, kv_errmsg,
 * kv_free, kv_version, kv_options_init and kv_batch_count never change it).
 * Thread-safe (per-thread storage). */
KV_API const char *kv_errmsg(void);

/* ---------------------------------------------------------------------------------
 * 2. Limits
 * ------------------------------------------------------------------------------ */
#define KV_MAX_KEY 65535u              /* keys are 1..65,535 bytes, binary, NUL allowed */
#define KV_MAX_VALUE (64u * 1024 * 1024) /* values are 0..64 MiB; empty is not a delete */
#define KV_MAX_BATCH (256u * 1024 * 1024) /* a batch's encoded size (keys, values and
                                             20 bytes per operation) */

/* ---------------------------------------------------------------------------------
 * 3. Options
 * ------------------------------------------------------------------------------ */
enum {
    KV_SYNC_ALWAYS = 0,   /* a write returns once it is on stable storage (fdatasync of
                             the WAL, shared by a group of concurrent writers) */
    KV_SYNC_INTERVAL = 1, /* a write returns once it is in the kernel; a background
                             thread fdatasyncs every sync_interval_ms whatever was
                             written before that sync began (a write that lands
                             while an fdatasync runs is synced by the next tick): a
                             power failure loses at most the last interval, plus
                             the length of a slow fdatasync */
    KV_SYNC_NONE = 2      /* a write returns once it is in the kernel: it survives the
                             process being killed, not a power failure */
};

/* Value compression. With KV_COMPRESS_LZ4, kv_put and kv_write (batch puts) compress
 * every value of at least compress_min_bytes with LZ4 (the system liblz4), in the
 * calling thread, and store it compressed only when that saves space; the rest is
 * stored as given. Keys are never compressed. Reads need no option: every record
 * says whether its value is compressed, kv_get decompresses it (after checking its
 * CRC) and hands out the value exactly as it was put, in a kv_free'd buffer as
 * always. So one store may hold both kinds: compression can be turned on or off at
 * any kv_open, and applies to what is written from then on. Records already on disk
 * keep the form they were written in, through compaction too, which copies each
 * record's stored bytes as they are whatever the store's current setting:
 * recompressing would cost CPU on every compaction for data already written, and
 * value bytes that are never decoded and re-encoded keep the CRC they were checked
 * against. A compressed value whose raw length is above KV_MAX_VALUE, or that does
 * not decompress to exactly its raw length, is KV_ECORRUPT. */
enum {
    KV_COMPRESS_NONE = 0, /* values stored as given */
    KV_COMPRESS_LZ4 = 1   /* values of at least compress_min_bytes LZ4-compressed when
                             that saves space */
};

/* Default of compress_min_bytes: below 64 bytes LZ4 almost never saves a byte (on
 * under 0.005% of the values we measured: bench/lz4probe.c; README, "Value
 * compression"), so trying would only cost CPU. */
#define KV_COMPRESS_MIN_DEFAULT 64

enum {
    KV_IO_AUTO = 0,  /* io_uring when the kernel allows it, else pwrite/fdatasync */
    KV_IO_URING = 1, /* io_uring or fail: kv_open returns KV_EIO when it is unavailable */
    KV_IO_PSYNC = 2  /* portable pwrite/fdatasync, never io_uring */
};

/* Options. Fill them with kv_options_init, then change the fields you need; kv_open
 * refuses options that kv_options_init did not fill (struct_size 0).
 * Growth: struct_size is what lets a program built against an older, smaller
 * kv_options run against a newer library. kv_open reads only the struct_size bytes
 * the caller's struct has, and every field beyond them keeps its default; it
 * refuses (KV_EINVAL) a struct_size below that of the first kv_options (the fields
 * through compact_dead_ratio) or above the library's own sizeof(kv_options) (a
 * program built against a newer kv.h than the library it runs with). New fields
 * are only ever appended, each starting at or past the previous sizeof(kv_options),
 * so a struct_size always names exactly the fields its caller has. */
typedef struct kv_options {
    size_t struct_size;         /* sizeof(kv_options) as the caller was compiled: set by
                                   kv_options_init; do not change it */
    int create;                 /* create the store if the directory has none (1) */
    int read_only;              /* open without the writer lock; writes fail (0).
                                   Safe beside a writer in any process: see kv_open */
    int sync;                   /* KV_SYNC_ALWAYS (default), KV_SYNC_INTERVAL, KV_SYNC_NONE */
    unsigned sync_interval_ms;  /* period of KV_SYNC_INTERVAL (1000); 1..3,600,000 */
    int compression;            /* KV_COMPRESS_NONE (default) or KV_COMPRESS_LZ4 */
    uint64_t segment_bytes;     /* roll the active segment past this size (64 MiB);
                                   4 KiB..1 GiB */
    int io;                     /* KV_IO_AUTO (default), KV_IO_URING or KV_IO_PSYNC */
    int auto_compact;           /* compact in a background thread (1); kv_compact works
                                   either way, and so do kvcompact's requests (a
                                   writer answers them even with 0: see kv_open) */
    double compact_dead_ratio;  /* a sealed segment is compacted once this share of its
                                   bytes is dead (0.5); in (0, 1] */
    int mmap_reads;             /* read records through read-only shared mappings of the
                                   segments (1): ~25x cheaper than a pread syscall on a
                                   VM. An I/O error while reading a mapped page raises
                                   SIGBUS, as with LMDB; 0 reads with pread, so such an
                                   error comes back as KV_EIO. */
    uint64_t compact_bytes_per_sec; /* pace of background compaction and of kvcompact's
                                   requests: segment bytes read per second (64 MiB/s),
                                   napping once a MiB; 0 = unpaced. kv_compact is
                                   never paced. */
    size_t compress_min_bytes;  /* with KV_COMPRESS_LZ4, the shortest value that is
                                   compressed (KV_COMPRESS_MIN_DEFAULT, 64); any value
                                   is accepted, 0 tries every value */
} kv_options;

/* Fills *opts with the defaults shown above, and opts->struct_size with size.
 * Call it through the kv_options_init macro, which passes sizeof(kv_options) as the
 * program was compiled: at most size bytes of *opts are written. NULL, or a size
 * too small to hold struct_size, writes nothing (kv_open then refuses the options).
 * Thread-safe. */
KV_API void kv_options_init_sized(kv_options *opts, size_t size);
#define kv_options_init(opts) kv_options_init_sized((opts), sizeof(kv_options))

/* ---------------------------------------------------------------------------------
 * 4. Opening and closing a store
 * ------------------------------------------------------------------------------ */
typedef struct kv_db kv_db;

/* Opens (or, with opts->create, creates) the store in directory dir. With create,
 * a missing dir is made (one level, mode 0755); a store is created only in an empty
 * directory, never among other files. opts may be NULL for the defaults. Recovery
 * runs here: the index is rebuilt from the segments, a torn tail of the newest
 * segment and WAL (left by a crash) is cut after the last valid record, and WAL
 * records beyond the segments are replayed.
 * Locks (docs/MULTIPROCESS.md, "Locks"). A writer takes the writer lock, an flock
 * on DIR/LOCK (created if missing; it then holds the writer's pid), and keeps it
 * until kv_close. A read-only handle takes no writer lock and never waits for the
 * writer; it holds the reader lock until kv_close: a shared OFD lock (fcntl
 * F_OFD_SETLK, F_RDLCK) on one byte of LOCK at offset 1 GiB, far past the pid, so
 * that kvcheck --repair, which takes that byte exclusively before it changes
 * anything (it may cut or replace files a reader has mapped), refuses the store
 * while a reader has it open. A LOCK that is missing or cannot be opened read-only
 * is no error: the handle then holds no reader lock (and creates nothing). During a
 * repair a read-only open is KV_ELOCKED. Both locks belong to the open file
 * description: two handles in one process are two holders, and the kernel drops a
 * lock when its holder dies.
 * A writer (read_only 0) takes the LOCK file and removes leftover temporary files
 * (and the compaction request and result files of an earlier writer); a read-only
 * handle modifies nothing on disk.
 * A writer answers compaction requests from other processes (kvcompact on a store
 * it holds; docs/MULTIPROCESS.md, "Compaction from another process"), whatever
 * auto_compact says: its background thread, which every writer handle runs, looks
 * for DIR/COMPACT.req every 100 ms (one fstatat), compacts as kv_compact does (at the
 * request's ratio, paced to compact_bytes_per_sec so the handle's writes keep their
 * latency, given up if the handle is closed meanwhile) and writes the outcome to
 * DIR/COMPACT.res: the status, the kv_errmsg text, kv_stat figures before and after.
 * The handle's own callers see the compaction only in kv_stat (compactions,
 * compacting, the compact_* counters); a failure there fails the handle only as a
 * kv_compact would. A request that is not kvcompact's (garbage, or longer than 1
 * KiB) is removed unanswered; one that is not a regular file is left alone. A
 * read-only handle never answers.
 * Read-only beside a writer: the handle sees the store as one MANIFEST generation
 * names it, with the writes that had reached its active segment and WAL file when
 * the open read them (whole batches only). A writer moves the store on under the
 * open (a roll removes the old WAL file, a compaction its input segments and their
 * hints, each once a new MANIFEST is published), so a file the MANIFEST named may be
 * gone when the open reaches it: that is no damage. Recovery then runs again from
 * the MANIFEST as it then is, after a short backoff; KV_ECORRUPT is returned only
 * when two attempts in a row fail the same way (same file, same offset), and KV_EIO
 * when the store changed under each of 16 attempts. Once open, the handle keeps
 * every file it reads open (and mapped), so later rolls and compactions do not
 * affect it; kv_refresh catches it up (section 7). It touches only bytes it has
 * checked, and a writer cuts only bytes no reader could have checked (a torn tail),
 * so a writer that is killed and restarts beside it never makes it fault (SIGBUS):
 * docs/MULTIPROCESS.md. A hint that is missing, or vanishes while read, is never an
 * error: the segment is scanned.
 * Files. Opening a store file never blocks, and only regular files are store files:
 * a segment, WAL file or MANIFEST that is a FIFO, socket, device or directory is
 * KV_ECORRUPT naming it, returned at once (never a wait for a FIFO's writer); a hint
 * that is not a regular file is a bad hint (the segment is scanned) and is left as it
 * is. These may be symbolic links to regular files; LOCK may not: a LOCK that is a
 * symbolic link or not a regular file is KV_ECORRUPT for a writer, and whatever the
 * link names is never opened, let alone truncated. kv removes only its own files:
 * regular files whose names are exactly those kv writes (docs/FORMAT.md, "File
 * names"); 0000099.wal, a FIFO named 000099.wal and the like are left alone.
 * Options: only the opts->struct_size bytes of *opts are read (section 3).
 * Returns:
 *   KV_OK        *out is a new handle;
 *   KV_EINVAL    NULL dir or out, bad option (a struct_size that is 0, i.e. options
 *                kv_options_init did not fill, or that no kv_options has: the
 *                message gives the sizes accepted), dir missing or not a directory,
 *                no store there and create is 0 (or the directory holds other files),
 *                dir on a network file system (see "Caveats" above);
 *   KV_ELOCKED   another handle holds the writer lock (message names its pid); or,
 *                read-only, kvcheck --repair is repairing the store (message names
 *                LOCK and the pid it holds);
 *   KV_ECORRUPT  damage outside a torn tail (message names file and offset): in a
 *                sealed segment anywhere, in the newest WAL file when records that
 *                were durable follow it (docs/FORMAT.md, "Torn tail or damage");
 *                such a refused open changes no file, LOCK included; or a store
 *                file (LOCK for a writer) that is not a regular file;
 *   KV_EVERSION  a file of a newer format version;
 *   KV_EIO       an I/O call failed (e.g. the parent of a missing dir does not
 *                exist, permission denied), or KV_IO_URING without io_uring; or,
 *                read-only, a writer changed the store under every attempt;
 *   KV_ENOSPC, KV_ENOMEM.
 * On error *out is set to NULL. Thread-safe. */
KV_API int kv_open(const char *dir, const kv_options *opts, kv_db **out);

/* Flushes buffered segment data, stops background threads, releases the lock and
 * frees the handle. Every write acknowledged before kv_close survives as its sync
 * mode promised; kv_close does not fsync (call kv_sync for that). NULL is accepted.
 * Returns KV_OK; KV_EIO when flushing failed (the handle is freed anyway; data
 * acknowledged is still in the WAL); or the handle's sticky KV_EIO/KV_ENOSPC when a
 * write or fsync failed earlier, e.g. in the KV_SYNC_INTERVAL thread, where no
 * other call may have reported it. No other thread may use db during or after. */
KV_API int kv_close(kv_db *db);

/* ---------------------------------------------------------------------------------
 * 5. Single-key operations
 * ------------------------------------------------------------------------------ */

/* Stores val under key, replacing any previous value. Returns when the write is
 * acknowledged as the sync mode promises.
 * Returns KV_OK; KV_EINVAL (NULL db/key, klen 0 or > KV_MAX_KEY, vlen > KV_MAX_VALUE,
 * NULL val with vlen > 0); KV_EREADONLY; KV_EIO/KV_ENOSPC (the handle is then failed);
 * KV_ENOMEM. Thread-safe. */
KV_API int kv_put(kv_db *db, const void *key, size_t klen, const void *val, size_t vlen);

/* Looks key up. On KV_OK, *val is a malloc'd copy of the value (free it with kv_free;
 * for an empty value it is a valid non-NULL pointer) and *vlen its length.
 * Returns KV_OK; KV_NOTFOUND (*val = NULL, *vlen = 0; kv_errmsg "kv_get: key not
 * found"); KV_EINVAL; KV_ECORRUPT (the
 * record failed its checksum: message names file and offset; never a wrong value);
 * KV_EIO; KV_ENOMEM. Thread-safe, runs in parallel with other gets and writes. */
KV_API int kv_get(kv_db *db, const void *key, size_t klen, void **val, size_t *vlen);

/* Frees a value returned by kv_get. NULL is accepted. */
KV_API void kv_free(void *p);

/* Deletes key by writing a tombstone. Returns KV_OK; KV_NOTFOUND when the key was
 * absent (nothing is written; kv_errmsg "kv_delete: key not found ..."); KV_EINVAL; KV_EREADONLY; KV_EIO; KV_ENOSPC; KV_ENOMEM.
 * Thread-safe. (Two threads deleting the same key at once may both see KV_OK.) */
KV_API int kv_delete(kv_db *db, const void *key, size_t klen);

/* ---------------------------------------------------------------------------------
 * 6. Atomic batches
 *
 * A batch collects puts and deletes and applies them with kv_write all at once:
 * after any crash the whole batch is present or none of it, and no reader sees part
 * of it: once a kv_get returns one of its writes, every later kv_get (in any thread)
 * returns the batch's writes or newer ones. Operations apply in order, so a later
 * put of the same key in one batch wins.
 * ------------------------------------------------------------------------------ */
typedef struct kv_batch kv_batch;

/* Returns a new empty batch, or NULL when out of memory. */
KV_API kv_batch *kv_batch_new(void);

/* Adds a put (copies key and value). Returns KV_OK; KV_EINVAL (NULL batch/key, sizes
 * out of limits, or the batch would exceed KV_MAX_BATCH); KV_ENOMEM. */
KV_API int kv_batch_put(kv_batch *b, const void *key, size_t klen, const void *val, size_t vlen);

/* Adds a delete (a tombstone is written even if the key is absent). Returns KV_OK,
 * KV_EINVAL, KV_ENOMEM. */
KV_API int kv_batch_delete(kv_batch *b, const void *key, size_t klen);

/* Empties the batch for reuse, keeping its memory. NULL is accepted. */
KV_API void kv_batch_clear(kv_batch *b);

/* Frees the batch. NULL is accepted. */
KV_API void kv_batch_free(kv_batch *b);

/* Returns the number of operations in the batch (0 for NULL). */
KV_API size_t kv_batch_count(const kv_batch *b);

/* Applies the batch atomically; the batch is left unchanged (clear it to reuse).
 * An empty batch is a no-op returning KV_OK. Returns as kv_put. Thread-safe with
 * respect to db; the batch itself must not be changed during the call. */
KV_API int kv_write(kv_db *db, kv_batch *b);

/* ---------------------------------------------------------------------------------
 * 7. Durability, iteration and statistics
 * ------------------------------------------------------------------------------ */

/* Makes every write acknowledged so far durable (fdatasync of the WAL). Useful under
 * KV_SYNC_NONE and KV_SYNC_INTERVAL; cheap under KV_SYNC_ALWAYS. Returns KV_OK,
 * KV_EINVAL (NULL db), KV_EREADONLY, KV_EIO (the handle is then failed). Thread-safe. */
KV_API int kv_sync(kv_db *db);

/* Catches a read-only handle up with the writer: afterwards it sees every write
 * whose call had returned before kv_refresh was called (whatever the writer's sync
 * mode: an acknowledged write is in the kernel), and the files the writer retired
 * since (compacted segments, WAL files rolled past) are closed and unmapped. It reads
 * only what is new: the MANIFEST when it changed, the WAL past where the handle
 * stopped, the hints (or records) of segments sealed or written by compaction since.
 * Guarantees to the handle's readers (kv_get, kv_foreach, in any thread, during the
 * refresh too): a batch is seen whole or not at all; a key never goes back to an
 * older value; a value read is one the writer wrote. The handle modifies nothing on
 * disk, and it is safe beside a writer that rolls, compacts, is killed and restarts
 * (a torn tail it cuts at recovery holds nothing a reader used). One refresh runs
 * at a time (a second caller waits). Returns KV_OK (also on a writer handle:
 * nothing to do); KV_EINVAL (NULL db); KV_ECORRUPT (damage, as kv_open reports it);
 * KV_EIO (an I/O error, or the store was replaced or repaired under the handle: open
 * it again); KV_ENOMEM. After a failure the handle still answers, from a view that
 * holds every write up to some point, at or past the one it had (a refresh may take
 * part of what is new before it fails); once a refresh failed while moving the
 * handle to a newer MANIFEST, every later one fails the same way (open it again).
 * Thread-safe. */
KV_API int kv_refresh(kv_db *db);

/* Calls fn once for every live key with its value, in no particular order. Keys
 * written during the iteration may or may not be visited; none is visited twice.
 * A non-zero return from fn stops the iteration and is returned: use a positive
 * value other than KV_NOTFOUND (1) so it cannot be mistaken for a status. The k and v
 * pointers are valid only during the call. fn may call kv_get and kv_put on db.
 * Returns KV_OK, fn's non-zero value, KV_EINVAL, KV_ECORRUPT, KV_EIO, KV_ENOMEM.
 * After fn's non-zero value kv_errmsg is the message fn left (a kv call of its own
 * that failed), or else "kv_foreach: the callback returned N ...". */
KV_API int kv_foreach(kv_db *db,
               int (*fn)(void *arg, const void *k, size_t kl, const void *v, size_t vl),
               void *arg);

typedef struct kv_stats {
    uint64_t keys;             /* live keys */
    uint64_t live_bytes;       /* bytes of segment records the index points at */
    uint64_t dead_bytes;       /* segment bytes held by overwritten, deleted or
                                  tombstone records (what compaction can reclaim) */
    uint64_t disk_bytes;       /* all files of the store: segments + WAL + metadata */
    uint64_t segments;         /* segment files, sealed and active */
    uint64_t wal_bytes;        /* bytes in WAL files; bounded: a WAL file is deleted
                                  once its segment is sealed (about segment_bytes) */
    uint64_t wal_files;        /* WAL files on disk (1 in steady state) */
    uint64_t index_bytes;      /* memory held by the in-memory index, with the sealed
                                  segments' Bloom filters (~1.25 bytes per record) */
    uint64_t puts;             /* put operations since open (batch puts included) */
    uint64_t gets;             /* get calls since open, misses included */
    uint64_t deletes;          /* tombstones written since open (batch deletes included;
                                  a kv_delete of an absent key writes none) */
    uint64_t batches;          /* kv_write calls since open */
    uint64_t wal_syncs;        /* fdatasync calls on the WAL since open */
    uint64_t wal_groups;       /* group commits since open (writes per group =
                                  (puts + deletes) / wal_groups) */
    uint64_t next_seq;         /* sequence number of the next write */
    uint64_t recovery_us;      /* duration of the last kv_open's recovery, microseconds */
    uint64_t recovery_records; /* records read during that recovery */
    uint64_t recovery_wal_replayed; /* WAL records replayed into the active segment */
    uint64_t recovery_cut_bytes;    /* bytes cut from torn tails during that recovery */
    uint64_t recovery_hints;        /* sealed segments indexed from their hint file */
    uint64_t recovery_hints_rewritten; /* sealed segments scanned because their hint was
                                          missing or bad, and whose hint was rewritten */
    uint64_t compactions;      /* compaction passes completed since open */
    uint64_t compact_bytes_read;    /* bytes of the segments they replaced */
    uint64_t compact_bytes_written; /* bytes of the segments they wrote */
    uint64_t compact_bytes_reclaimed; /* read - written: disk space given back */
    uint64_t compact_records_dropped; /* dead records and tombstones not copied */
    uint64_t compact_tombstones_dropped; /* of which tombstones */
    uint64_t compact_errors;   /* passes that failed (the store was left as it was;
                                  the message went to the thread that ran them) */
    uint64_t compact_last_time; /* end of the last pass, seconds since 1970 (0: none) */
    uint64_t compact_last_us;  /* its duration, microseconds */
    uint64_t compact_pass_read;  /* progress of the pass running: bytes of its inputs
                                    read so far ... */
    uint64_t compact_pass_total; /* ... of this many (0 when no pass runs) */
    uint64_t reclaimable_bytes; /* dead bytes kv_compact would give back now: those of
                                  the segments (the active one included) whose dead
                                  share reaches compact_dead_ratio */
    int compacting;            /* 1 while a pass runs */
    int io_backend;            /* KV_IO_URING or KV_IO_PSYNC: the backend in use */
    int sync;                  /* the sync mode in use */
    int read_only;             /* 1 for a read-only handle */
    int failed;                /* non-zero (the status) once a write or fsync failed */
    char io_backend_note[96];  /* why io_uring is not used, when it is not */
    /* Value compression, over the puts written since open (batch puts included):
     * stored/raw is the compression ratio of the values. Equal, and
     * values_compressed 0, under KV_COMPRESS_NONE. */
    uint64_t value_bytes_raw;    /* bytes of those values as given to kv_put */
    uint64_t value_bytes_stored; /* bytes they take in their records: a compressed
                                    value's LZ4 block plus its 4-byte raw length,
                                    else the value itself */
    uint64_t values_compressed;  /* how many of them were stored compressed */
    int compression;             /* the compression in use (KV_COMPRESS_*) */
    /* A read-only handle following a writer (kv_refresh); 0 for a writer. */
    uint64_t reader_seq;         /* the sequence number the handle has reached: it sees
                                    every write up to it */
    uint64_t reader_lag;         /* how far behind the writer's newest acknowledged write
                                    it was when its last refresh began (the sequence
                                    numbers that refresh caught up) */
    uint64_t refreshes;          /* kv_refresh calls that completed */
    uint64_t refresh_last_time;  /* end of the last one, microseconds since 1970 (0: none) */
    uint64_t refresh_last_us;    /* its duration, microseconds */
    uint64_t pinned_files;       /* files the writer has deleted that the handle still
                                    holds open (a refresh releases them) ... */
    uint64_t pinned_bytes;       /* ... and the disk space they keep */
} kv_stats;

/* Compacts now: seals the active segment unless it is empty (so its WAL file, a
 * second copy of its records, goes), then rewrites every sealed segment whose dead
 * share reaches compact_dead_ratio (and merges small ones) into new segments holding
 * only the live records and the tombstones still needed, and deletes the old ones. Runs
 * beside reads and writes (a write that races it wins); waits for a background pass
 * or a compaction another process requested (kv_open, "A writer answers") in
 * progress. The same code answers those requests, paced; kv_compact itself is not.
 * A crash at any moment leaves the store as before or as after.
 * Returns KV_OK; KV_EINVAL (NULL db); KV_EREADONLY; KV_ECORRUPT (a segment to compact
 * is damaged: named in the message, left in place, nothing lost); KV_EIO/KV_ENOSPC
 * (nothing lost; the handle fails only if the MANIFEST's state became uncertain);
 * KV_ENOMEM. Thread-safe. */
KV_API int kv_compact(kv_db *db);

/* Fills *st with the handle's current statistics, writing exactly size bytes: the
 * caller's kv_stats may be an older, smaller one (fields are only ever appended, each
 * starting at or past the previous sizeof(kv_stats)), and the fields it lacks are
 * not written. Call it through the kv_stat macro, which passes sizeof(kv_stats) as
 * the program was compiled. Returns KV_OK; KV_EINVAL for a NULL db or st, or a size
 * below that of the first kv_stats (the counters through recovery_cut_bytes) or
 * above the library's sizeof(kv_stats) (a program built against a newer kv.h): then
 * nothing is written, and the message gives the sizes accepted. Thread-safe. */
KV_API int kv_stat_sized(kv_db *db, kv_stats *st, size_t size);
#define kv_stat(db, st) kv_stat_sized((db), (st), sizeof(kv_stats))

/* Returns the library version, "0.1.0". */
KV_API const char *kv_version(void);

#ifdef __cplusplus
}
#endif
#endif /* KV_H */
