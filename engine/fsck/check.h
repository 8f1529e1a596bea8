/*
 * check.h — checking a whole store or one file, and repairing a store: the engine
 * side of kvcheck (tools/kvcheck.c only talks to people).
 *
 * The check reads every byte the store holds through inspect.h — the MANIFEST, every
 * segment and WAL file (every entry's CRC and lengths, every LZ4 value decompressed
 * to its raw length), every hint (checked whole, then record by record against its
 * segment), the LOCK file — and compares the MANIFEST with the directory: files it
 * names that are missing, sealed sizes that differ, files it does not name. It opens
 * nothing for writing and takes no lock: it is safe on a store a writer has open.
 * Each problem goes to a callback; the caller prints. Files of a step a writer was
 * taking when it stopped (killed, or a crash) — a MANIFEST.tmp, a hint being written,
 * the hint of a segment that is not sealed, segment and WAL files the MANIFEST does
 * not name, COMPACT.req, COMPACT.res and their .tmp — are no damage: the next writer's
 * open removes them. They are notes (CHECK_NOTE_LEFTOVER), counted apart.
 *
 * The repair (repair.c) runs under the writer lock. It checks again, makes a plan,
 * takes the reader lock exclusively (io/lock.h: no read-only handle may have the
 * store open while files it maps are cut or replaced), tells every step (file, byte
 * range, reason) and every record it will lose, asks, and only then acts, in an
 * order that a crash at any point leaves a store that either opens or that the next
 * repair finishes:
 *   1. LOCK gets the repairing process's pid;
 *   2. leftovers are removed, as any writer's open removes them (kv's own files: the
 *      COMPACT.* files belong to the compaction protocol, which removes them);
 *   3. torn tails of the active segment and WAL are cut (ftruncate, fdatasync), and a
 *      missing active segment or WAL file is created empty (its twin has its records);
 *   4. hints that are missing, refused or wrong are written again from their segment;
 *   5. salvage: the records that check out (whole batches) of a damaged sealed
 *      segment are written to a new segment numbered from the MANIFEST's next file
 *      number, with its hint (fdatasync, then the hint's own tmp/fdatasync/rename);
 *      tombstones that the damage took are written again from the segment's hint,
 *      which holds their key and sequence number; a damaged active segment or WAL
 *      file becomes a new active pair whose segment holds one copy of each record
 *      the two files hold before their first damage — what recovery would read: in
 *      the newest files a damaged stretch is a torn tail, whatever follows it, so
 *      that a later write never outlives an earlier one — and whose WAL is empty;
 *   6. each damaged file (and its hint) is set aside: renamed NAME.damaged, never
 *      deleted;
 *   7. one MANIFEST names the outputs instead of the damaged files (tmp, fdatasync,
 *      rename, directory fsync): the commit point. A crash before it leaves a
 *      MANIFEST naming set-aside files: the next check sees the copies and the next
 *      repair salvages from them; the outputs are leftovers it removes first;
 *   8. the clean twin of a rebuilt active pair goes (its records are in the new
 *      segment), and the directory is fsynced.
 * Before it asks, the repair also decides the keys of the records it loses (repair.c,
 * "the keys of lost records"): a lost delete it knows, newer than its key's surviving
 * put, is written again into the salvage's segment; every other lost record that may
 * bring back an older put of its key is told (check_revert). Never in silence.
 * A name kv uses held by something not a regular file (a FIFO) is refused first.
 * Copies keep their sequence numbers and bytes, so newest-wins still decides by
 * sequence number (invariant 3): a salvaged record never shadows a newer one, and a
 * tombstone written again hides exactly what it hid.
 *
 * Nothing here prints, exits or aborts.
 */
#ifndef KV_CHECK_H
#define KV_CHECK_H

#include "fsck/inspect.h"

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------------------
 * Checking
 * ------------------------------------------------------------------------------ */

/* Problem kinds. */
enum {
    CHECK_DAMAGE = 1, /* bytes that fail their checks: a damaged stretch of a record
                         file, a bad header, a refused MANIFEST, a LOCK without a pid */
    CHECK_TORN_TAIL,  /* the active segment or WAL file ends in a damaged stretch:
                         what a crash leaves; recovery cuts it at open */
    CHECK_HINT,       /* a sealed segment's hint is missing, refused, or does not
                         describe its segment: open scans the segment instead */
    CHECK_MISSING,    /* a file the MANIFEST names is missing */
    CHECK_SIZE,       /* a sealed segment's size differs from the MANIFEST's */
    CHECK_VALUE       /* an LZ4 value that does not decompress to its raw length */
};

typedef struct check_problem {
    const char *file; /* the file's name in the store, or the path checked ("": the
                         store as a whole) */
    int kind;         /* CHECK_* (a note: CHECK_NOTE_*) */
    int has_off;      /* off says where */
    uint64_t off;     /* offset in the file */
    uint64_t len;     /* bytes concerned (0: a point, or the whole file) */
    const char *what; /* one line, without file and offset */
} check_problem;

/* Note kinds: what is not a problem. */
enum {
    CHECK_NOTE_INFO = 0, /* worth knowing: files that are not kv's, copies set aside by
                            a repair, a writer holding the store and what it is making,
                            files a writer removed while they were read */
    CHECK_NOTE_LEFTOVER  /* a file of a step a writer was taking when it stopped (no
                            writer holds the store): no damage, the next writer's open
                            removes it */
};

typedef struct check_fns {
    /* Each problem, after the check ended (may be NULL). */
    void (*problem)(void *arg, const check_problem *p);
    /* Something worth knowing that is not a problem (may be NULL): n->kind is a
     * CHECK_NOTE_* (n->file "": the store as a whole). */
    void (*note)(void *arg, const check_problem *n);
    /* Bytes read so far of the total, now and then during the check (may be NULL). */
    void (*progress)(void *arg, uint64_t done, uint64_t total);
    void *arg;
} check_fns;

typedef struct check_summary {
    uint64_t files;        /* kv files read */
    uint64_t bytes;        /* their bytes */
    uint64_t records;      /* entries of whole batches in segments and WAL files (a
                              WAL file repeats its active segment's) */
    uint64_t seg_records;  /* of which in segments */
    uint64_t wal_records;  /* of which in WAL files */
    uint64_t hint_records; /* records of usable hints */
    uint64_t damaged;      /* problems found */
    uint64_t unfinished;   /* leftovers of interrupted steps (CHECK_NOTE_LEFTOVER notes) */
    uint64_t lost_bytes;   /* bytes of segment and WAL files in damaged stretches (torn
                              tails included) */
    uint64_t ok_up_to;     /* one record file checked: where its first damage starts
                              (its size when none); else 0 */
    int single;            /* one file was checked, not a store */
    int kind;              /* that file's kind (INSPECT_*) */
    long writer_pid;       /* a writer held the store while it was checked (0: none) */
    uint32_t generation;   /* the MANIFEST's generation (0: none usable) */
} check_summary;

/* Checks path: a store directory, or one kv file (segment, WAL, hint, MANIFEST,
 * LOCK, or a copy set aside). Problems go to fns after the check. A store a writer
 * changes while it is read (a roll, a compaction) is no damage: a problem of a file
 * the MANIFEST named and a newer MANIFEST no longer names is a note, and the other
 * problems are told only when nothing can have changed the store (no writer, the
 * same MANIFEST throughout) or two passes in a row found them (16 passes at most;
 * see check.c, "a store a writer changes"). A writer is a process other than the
 * caller holding the writer lock (kvcheck --repair checks under its own).
 * Returns:
 *   KV_OK        the check ran; sum->damaged problems were found;
 *   KV_EINVAL    path is missing, not a directory or regular file, an empty
 *                directory, a directory without a kv store, or not a kv file;
 *   KV_EVERSION  a file of a newer format version (message names it): not checked;
 *   KV_EIO       a file or the directory cannot be read, or a writer changed the
 *                store under every pass;
 *   KV_ENOMEM.
 * The message (kv_errmsg) names the path and what was wrong with it. */
int check_path(const char *path, const check_fns *fns, check_summary *sum);

/* ---------------------------------------------------------------------------------
 * Repairing (repair.c)
 * ------------------------------------------------------------------------------ */

/* A record the repair will lose. */
typedef struct check_lost {
    const char *file;   /* the damaged file it was in */
    uint64_t off;       /* its offset there */
    uint32_t size;      /* its size (0: unknown) */
    uint64_t seq;       /* its sequence number (0: unknown) */
    int type;           /* KV_REC_PUT, KV_REC_DEL, or 0: unknown */
    const uint8_t *key; /* its key, or NULL when unknown */
    uint32_t klen;
    int source;         /* where key and seq come from: CHECK_FROM_* */
} check_lost;

enum {
    CHECK_FROM_HINT = 1,  /* the segment's hint (checked whole): exact */
    CHECK_FROM_ENTRY,     /* the entry itself, which checks out (its batch is cut) */
    CHECK_FROM_DAMAGED,   /* a damaged entry whose header is sane: likely, unverified */
    CHECK_FROM_NONE,      /* bytes nothing can be told of: key unknown */
    CHECK_FROM_AFTER      /* a sound entry after the first damage of the active segment
                             or WAL file: recovery would not read it either (it stays in
                             the set-aside copy) */
};

/* A key whose state the repair changes because a record of it is lost: the lost
 * record was (or may have been) newer than the key's newest record that survives
 * (docs/FORMAT.md, "Repair and the keys of lost records"). */
enum {
    CHECK_KEPT_DELETED = 1, /* a lost delete is written again (its key and sequence number
                               are known): the key stays deleted */
    CHECK_UNDELETES,        /* a lost delete cannot be written again: the older put
                               (old_seq) comes back */
    CHECK_REVERTS,          /* a lost put: the key goes back to its older value (old_seq) */
    CHECK_MAY_REVERT        /* a lost record whose key or sequence number cannot be known:
                               the key may come back or go back to its value of old_seq */
};

typedef struct check_revert {
    int kind;           /* CHECK_KEPT_DELETED .. CHECK_MAY_REVERT */
    const char *file;   /* the damaged file the lost record was in */
    uint64_t off;       /* its offset there */
    const uint8_t *key; /* the key concerned */
    uint32_t klen;
    uint64_t seq;       /* the lost record's sequence number (0: unknown) */
    uint64_t old_seq;   /* the key's newest record that survives (0: none) */
    const char *why;    /* how the key was found and what decides it, one line */
} check_revert;

typedef struct check_repair_fns {
    /* One step of the plan, before anything is done: the file, the byte range (when
     * has_off) and what will be done to it and why. */
    void (*step)(void *arg, const char *file, int has_off, uint64_t off, uint64_t len,
                 const char *what);
    /* A record the plan loses (told after the steps). */
    void (*lost)(void *arg, const check_lost *l);
    /* Asked once the plan is told and there is something to do: non-zero to go on.
     * NULL goes on. */
    int (*confirm)(void *arg);
    void *arg;
    /* A key whose state the plan changes (told after the lost records, before
     * confirm; may be NULL). */
    void (*revert)(void *arg, const check_revert *r);
} check_repair_fns;

typedef struct check_repair_result {
    uint32_t steps;            /* steps in the plan (0: nothing to repair) */
    int declined;              /* confirm said no: nothing was done */
    int done;                  /* every step was carried out */
    uint64_t cut_bytes;        /* torn-tail bytes cut */
    uint32_t hints_written;    /* hints written again */
    uint32_t files_removed;    /* leftovers removed */
    uint32_t files_set_aside;  /* damaged files renamed NAME.damaged */
    uint32_t segments_written; /* new segments holding salvaged records */
    uint64_t records_salvaged; /* records copied from damaged files */
    uint64_t tombstones_rewritten; /* tombstones written again from hints */
    uint64_t tombstones_kept;  /* lost deletes written again from their damaged entry */
    uint64_t keys_reverted;    /* keys told as un-deleted, reverted, or that may be */
    uint64_t records_lost;     /* records known to be lost */
    uint64_t lost_bytes;       /* bytes of damaged files not carried over */
} check_repair_result;

/* Repairs the store in dir, whose writer lock the caller holds (lock_fd, from
 * lock_take or lock_acquire; its pid is written into LOCK before the first change).
 * A store with nothing to repair is left byte for byte as it is (res->steps 0).
 * Damage and leftovers are repaired. Before the plan is told, the reader lock is
 * taken exclusively on lock_fd (lock_readers_absent), and kept until lock_fd is
 * released.
 * Returns:
 *   KV_OK        see res: steps 0 (nothing to do), declined, or done;
 *   KV_ELOCKED   a read-only handle has the store open (nothing told, nothing
 *                changed);
 *   KV_ECORRUPT  damage the repair cannot mend (a damaged or missing MANIFEST):
 *                nothing was changed, the message says what;
 *   KV_EINVAL, KV_EVERSION as check_path (nothing changed);
 *   KV_EIO, KV_ENOSPC, KV_ENOMEM: a step failed; the message names it, res says
 *                what was done before, and the store is as a crash there leaves it. */
int check_repair(const char *dir, int lock_fd, const check_repair_fns *fns,
                 check_repair_result *res);

/* Refuses a store directory (open as dirfd) in which a name kv gives its files (a
 * segment, WAL, hint or temp file, MANIFEST, LOCK, a copy set aside) is not a
 * regular file (a FIFO, a device, a directory, a dangling link): the repair would
 * block on it or fail on its name at every run. Nothing is opened (fstatat only).
 * Returns KV_OK, KV_EINVAL (the message names the first such file and what it is),
 * KV_EIO or KV_ENOMEM (the directory cannot be listed). check_repair calls it first;
 * kvcheck calls it before its first check too. */
int check_repair_special(int dirfd);

/* ---------------------------------------------------------------------------------
 * Internals shared by check.c and repair.c
 * ------------------------------------------------------------------------------ */

/* Roles of the files of a store with a usable MANIFEST. */
enum {
    ROLE_NONE = 0,
    ROLE_SEALED,     /* a sealed segment the MANIFEST names */
    ROLE_ACTIVE_SEG, /* the active segment */
    ROLE_ACTIVE_WAL  /* its WAL file */
};

enum { HINT_OK = 0, HINT_MISSING, HINT_REFUSED, HINT_WRONG };

/* A record file of the store as the check found it. */
typedef struct check_file {
    char name[64];            /* NNNNNN.seg / NNNNNN.wal */
    char source[256];         /* where its bytes are: name, or a copy set aside by an
                                 interrupted repair when name is missing; "" if none */
    int role;                 /* ROLE_* */
    int kind;                 /* INSPECT_SEG or INSPECT_WAL */
    uint32_t number;
    uint64_t size;            /* bytes of source */
    uint64_t expect;          /* sealed: the MANIFEST's size */
    int missing;              /* name is missing (source may be a copy) */
    inspect_header hdr;       /* of source */
    inspect_walk_result walk; /* of source */
    uint64_t bad_values;      /* LZ4 values that do not decompress */
    int hint;                 /* sealed: HINT_* */
    char hint_source[256];    /* sealed: its hint, or a copy set aside ("" if none) */
    int damaged;              /* needs salvage (sealed) or a rebuild (active pair) */
    int cut_short;            /* its one damaged stretch runs to the end of the file and
                                 is entries that check out, then one the end of the
                                 file cuts short: a write stopped half-way */
} check_file;

/* A file the MANIFEST does not name, to be removed. */
typedef struct check_leftover {
    char name[256];
    char why[128];
} check_leftover;

/* What the check found, kept for the repair. */
typedef struct check_store {
    const char *dir;          /* as given */
    int dirfd;
    kv_io *io;
    inspect_dirent *ents;     /* the directory listing */
    size_t nents;
    int man_state;            /* KV_OK, KV_NOTFOUND (missing), KV_ECORRUPT */
    inspect_manifest man;     /* when man_state is KV_OK */
    check_file *files;        /* sealed segments in MANIFEST order, then the active
                                 segment and the WAL file (when man_state is KV_OK) */
    size_t nfiles;
    check_leftover *left;
    size_t nleft;
    int lock_bad;             /* LOCK exists and does not hold a pid */
    long writer_pid;          /* a writer held the store during the check */
} check_store;

/* Checks the store in dir (opened as dirfd by the caller, io its I/O layer) into *s,
 * telling fns (may be NULL: silent). locked: the caller holds the writer lock (the
 * repair), so no writer can be at work. Returns as check_path. Free with
 * check_store_free whatever the return. */
int check_store_run(const char *dir, int dirfd, kv_io *io, const check_fns *fns,
                    check_summary *sum, check_store *s, int locked);
void check_store_free(check_store *s);

/* Finds the copy of `name` a repair set aside (NAME.damaged or NAME.damaged.N, the
 * highest N), or returns 0. */
int check_find_aside(const check_store *s, const char *name, char *out, size_t n);

#endif
