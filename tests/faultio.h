/*
 * faultio.h — a fault-injecting kv_io for the crash-simulation suite.
 *
 * The layer keeps the real files in a directory: that is the kernel's view (the
 * page cache), which the engine reads and writes as usual. Beside it, the layer
 * logs every call that changes a file or a name, with the bytes written. Replaying
 * that log up to call k rebuilds what a power failure right after call k could
 * leave on disk (docs/CRASH_MODEL.md):
 *   - a file's data is durable as of its last successful fdatasync (write_group
 *     with sync counts as a write call followed by an fdatasync call);
 *   - names (create, rename, unlink) are durable as of the last successful fsync of
 *     the directory; the directory operations made since then survive as a prefix
 *     (journaled metadata is committed in order);
 *   - everything else may be lost, kept, kept in part, torn, or garbled: the
 *     variants below choose which.
 * The layer can also fail call k with EIO (ENOSPC for writes, after writing half
 * of the bytes, as a disk that fills up mid-write does).
 *
 * Sections: 1. the live layer (what kv_open gets through the io factory hook),
 * 2. replay and crash images.
 *
 * Threads: every call of the live layer takes the layer's mutex, so the
 * KV_SYNC_INTERVAL syncer thread and the writer are logged in one order. The rest
 * of the API belongs to the test thread, used while no store is open on the layer
 * (or, for fio_calls, between API calls).
 */
#ifndef KV_FAULTIO_H
#define KV_FAULTIO_H

#include <stddef.h>
#include <stdint.h>

#include "io/io.h"

/* ---------------------------------------------------------------------------------
 * 1. The live layer
 * ------------------------------------------------------------------------------ */
typedef struct fio fio;

/* The kinds of call, as counted and logged. */
enum {
    FIO_OPEN = 1, FIO_CLOSE, FIO_PREAD, FIO_PWRITE, FIO_FDATASYNC, FIO_FTRUNCATE,
    FIO_FSIZE, FIO_RENAME, FIO_UNLINK, FIO_SYNCDIR,
    FIO_WG_WRITE, /* the write half of write_group */
    FIO_WG_SYNC,  /* its fdatasync half (sync set) */
    FIO_MAP
};

typedef struct fio_call {
    uint8_t op;        /* FIO_* */
    uint8_t injected;  /* this call was made to fail */
    int rc;            /* what it returned: 0/bytes, or -errno */
    char name[40];     /* the file it concerns ("." for the directory) */
} fio_call;

/* A layer over the existing directory dir (kept as a copy of the path). Files
 * already there are taken as durable, with durable names (a crash image being
 * reopened). Returns NULL when out of memory. */
fio *fio_new(const char *dir);
void fio_free(fio *f);
const char *fio_dir(const fio *f);

/* A kv_io over the layer, for the io factory hook; freed by io_free. Any number
 * may exist in turn (one per kv_open); they share the layer's state. */
int fio_make_io(fio *f, int want, kv_io **out);

/* Calls counted so far (calls are numbered from 1). */
uint64_t fio_calls(fio *f);
/* Call k (1..fio_calls), or NULL. */
const fio_call *fio_call_at(fio *f, uint64_t k);
/* Makes call k fail (0: none). EIO, or ENOSPC after half the bytes for a write. */
void fio_fail_at(fio *f, uint64_t k);
/* Makes the nth call (from 1) of kind op on a file whose name ends in suffix
 * (NULL: any) fail as fio_fail_at does. */
void fio_fail_nth(fio *f, int op, const char *suffix, unsigned nth);
/* 1 once a call was made to fail (thread-safe). */
int fio_injected(fio *f);
/* Makes every later call of kind op (FIO_FDATASYNC, FIO_WG_SYNC or FIO_SYNCDIR)
 * on a file whose name ends in suffix (NULL: any) succeed without effect, as if
 * the engine never made it: the suite's self-test that its checks catch an engine
 * that skips a sync. */
void fio_drop(fio *f, int op, const char *suffix);
/* Something the layer could not model (a file it did not see created, too many
 * descriptors): the message, or NULL. A test treats it as a failure. */
const char *fio_model_error(fio *f);

/* Removes a file as an operator would (logged like an unlink made through the
 * layer, durable after the next directory fsync). Returns 0 or -errno. */
int fio_remove(fio *f, const char *name);

/* Writes a one-line description of call k ("37 fdatasync 000002.wal") into buf. */
const char *fio_describe(fio *f, uint64_t k, char *buf, size_t n);

/* ---------------------------------------------------------------------------------
 * 2. Replay and crash images
 * ------------------------------------------------------------------------------ */
typedef struct fio_replay fio_replay;

/* What a power failure keeps of the writes and names not yet durable. */
typedef enum fio_variant {
    FIO_V_DURABLE,    /* nothing: the durable state only */
    FIO_V_KERNEL,     /* everything (the page cache made it: a process crash) */
    FIO_V_TEAR_LAST,  /* everything, but the last write torn at a random byte */
    FIO_V_SUBSET,     /* each 4 KiB piece of each pending write, and each pending
                         truncation, kept or lost at random; a random prefix of the
                         pending directory operations */
    FIO_V_PREFIX,     /* pending operations of all files kept in the order they
                         were made, up to a random one, which is torn if a write */
    FIO_V_FLIP,       /* everything, with one bit flipped in a random pending write */
    FIO_V_COUNT
} fio_variant;

extern const char *const fio_variant_name[FIO_V_COUNT];

/* A replay of f's log from the beginning (call 0: the files fio_new found). */
fio_replay *fio_replay_new(fio *f);
void fio_replay_free(fio_replay *r);
/* Applies the log up to and including call k (k only grows). */
void fio_replay_to(fio_replay *r, uint64_t k);
/* Operations not yet durable: data (writes, truncations) and directory ones. */
size_t fio_replay_pending(const fio_replay *r, size_t *dir_ops);

typedef struct fio_file {
    char name[40];
    uint8_t *data;
    size_t len;
} fio_file;

typedef struct fio_image {
    fio_file *files; /* sorted by name */
    size_t n;
    uint64_t hash[2]; /* XXH3-128 of names and contents */
} fio_image;

/* Builds the image variant v (random choices from seed) leaves at the replay's
 * call. Returns 0, or 1 when v cannot differ from FIO_V_DURABLE or FIO_V_KERNEL
 * (nothing pending to choose from; *img is then empty), or -ENOMEM. */
int fio_image_build(fio_replay *r, fio_variant v, uint64_t seed, fio_image *img);
void fio_image_free(fio_image *img);
/* Writes the image's files into the existing empty directory dir. 0 or -errno. */
int fio_image_write(const fio_image *img, const char *dir);

#endif
