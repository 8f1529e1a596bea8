/*
 * kv_v0.h — kv.h as an older build of libkv.so.1 would have had it: the part of the
 * header tests/abi/kv_old.c uses, with a smaller kv_options and kv_stats. Never
 * include it beside engine/kv.h.
 *
 * The two structs are today's (engine/kv.h) cut where kv grew last:
 *   kv_options ends at mmap_reads, before compact_bytes_per_sec (compaction's pace)
 *              and compress_min_bytes (LZ4);
 *   kv_stats   ends at io_backend_note, before the value compression counters
 *              (value_bytes_raw .. compression).
 * A program built against this header passes those smaller sizes (kv_options_init
 * and kv_stat pass sizeof as compiled), and today's library must read and write
 * only that many bytes: tests/test_abi.c runs kv_old.c's program to check it.
 * Keep these layouts as they are: they stand for a build already in the field.
 */
#ifndef KV_V0_H
#define KV_V0_H

#include <stddef.h>
#include <stdint.h>

#define KV_OK 0
#define KV_NOTFOUND 1
#define KV_EINVAL (-30800)

#define KV_SYNC_ALWAYS 0
#define KV_SYNC_INTERVAL 1
#define KV_SYNC_NONE 2
#define KV_COMPRESS_NONE 0
#define KV_IO_AUTO 0
#define KV_IO_URING 1
#define KV_IO_PSYNC 2

typedef struct kv_db kv_db;

typedef struct kv_options {
    size_t struct_size;         /* sizeof(kv_options) as compiled: kv_options_init */
    int create;                 /* create the store if the directory has none (1) */
    int read_only;              /* open without the writer lock (0) */
    int sync;                   /* KV_SYNC_* */
    unsigned sync_interval_ms;  /* period of KV_SYNC_INTERVAL (1000) */
    int compression;            /* KV_COMPRESS_NONE */
    uint64_t segment_bytes;     /* roll the active segment past this size (64 MiB) */
    int io;                     /* KV_IO_* */
    int auto_compact;           /* compact in a background thread (1) */
    double compact_dead_ratio;  /* dead share that makes a segment eligible (0.5) */
    int mmap_reads;             /* read through read-only mappings (1) */
} kv_options;

typedef struct kv_stats {
    uint64_t keys;
    uint64_t live_bytes;
    uint64_t dead_bytes;
    uint64_t disk_bytes;
    uint64_t segments;
    uint64_t wal_bytes;
    uint64_t wal_files;
    uint64_t index_bytes;
    uint64_t puts;
    uint64_t gets;
    uint64_t deletes;
    uint64_t batches;
    uint64_t wal_syncs;
    uint64_t wal_groups;
    uint64_t next_seq;
    uint64_t recovery_us;
    uint64_t recovery_records;
    uint64_t recovery_wal_replayed;
    uint64_t recovery_cut_bytes;
    uint64_t recovery_hints;
    uint64_t recovery_hints_rewritten;
    uint64_t compactions;
    uint64_t compact_bytes_read;
    uint64_t compact_bytes_written;
    uint64_t compact_bytes_reclaimed;
    uint64_t compact_records_dropped;
    uint64_t compact_tombstones_dropped;
    uint64_t compact_errors;
    uint64_t compact_last_time;
    uint64_t compact_last_us;
    uint64_t compact_pass_read;
    uint64_t compact_pass_total;
    uint64_t reclaimable_bytes;
    int compacting;
    int io_backend;
    int sync;
    int read_only;
    int failed;
    char io_backend_note[96];
} kv_stats;

const char *kv_strerror(int status);
const char *kv_errmsg(void);
void kv_options_init_sized(kv_options *opts, size_t size);
#define kv_options_init(opts) kv_options_init_sized((opts), sizeof(kv_options))
int kv_open(const char *dir, const kv_options *opts, kv_db **out);
int kv_close(kv_db *db);
int kv_put(kv_db *db, const void *key, size_t klen, const void *val, size_t vlen);
int kv_get(kv_db *db, const void *key, size_t klen, void **val, size_t *vlen);
void kv_free(void *p);
int kv_delete(kv_db *db, const void *key, size_t klen);
int kv_stat_sized(kv_db *db, kv_stats *st, size_t size);
#define kv_stat(db, st) kv_stat_sized((db), (st), sizeof(kv_stats))

#endif /* KV_V0_H */
