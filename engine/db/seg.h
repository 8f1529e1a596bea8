/*
 * seg.h — the life of a data segment, written once for the write path (roll),
 * compaction and repair:
 *
 *   create   a new NNNNNN.seg with its header (fdatasynced) and a write buffer;
 *   append   file_append (store/file.h), by its one writer;
 *   seal     flush and fdatasync, then its hint file (tmp, fdatasync, rename), then
 *            what compaction keeps of it (sequence range, Bloom filter);
 *   publish  a MANIFEST naming it sealed (a roll: with the next active pair; a
 *            compaction: instead of its inputs) — the commit point;
 *   open     a sealed segment the MANIFEST names, at recovery;
 *   retire   out of the file table, then its name and its hint's removed (a reader
 *            that pinned it finishes reading: an unlinked file stays readable).
 *
 * The order of the steps, and what a crash between two of them leaves, is in
 * docs/FORMAT.md ("How the files change"). Repair has no handle: it uses the steps
 * that take the I/O layer and the directory (seg_create, seg_sync).
 */
#ifndef KV_SEG_H
#define KV_SEG_H

#include "kv.h"
#include "io/io.h"
#include "store/file.h"
#include "store/hint.h"
#include "store/manifest.h"

#include <stdint.h>

#define KV_SEG_WBUF (256u << 10) /* write buffer of a segment being written */

/* Creates segment number (header fdatasynced) with a write buffer. On failure
 * nothing is left open and a file that was created is removed. */
int seg_create(kv_io *io, int dirfd, uint32_t number, kv_file **out);
/* Flushes the write buffer (and drops it) and fdatasyncs the segment: its bytes are
 * durable and it takes no more appends. */
int seg_sync(kv_io *io, kv_file *f);
/* Seals f, whose records h lists: seg_sync, then its hint file (a hint that cannot
 * be written only costs the next open a scan), then its sequence range and Bloom
 * filter for compaction. */
int seg_seal(kv_db *db, kv_file *f, const hint_buf *h);

/* Publishes a roll: a MANIFEST naming the active segment sealed (at its size) and
 * number as the active pair; then seg enters the file table and seg and wal become
 * the active pair (*old_wal: the WAL file replaced; the caller deletes it). Takes
 * man_mu. On KV_ENOMEM after the MANIFEST was stored the caller fails the store. */
int seg_publish_roll(kv_db *db, uint32_t number, kv_file *seg, kv_file *wal, kv_file **old_wal);
/* Publishes a compaction: a MANIFEST naming the n sealed segments add (already in
 * the file table) instead of the nretire segments retire. Takes man_mu. *renamed
 * as manifest_store: set when the new MANIFEST may be the one a crash leaves. */
int seg_publish(kv_db *db, kv_file *const *retire, uint32_t nretire, kv_file *const *add,
                uint32_t nadd, int *renamed);

/* Opens the sealed segment ms of the MANIFEST and adds it to the file table (which
 * keeps it alive: *out is not a reference of the caller's). KV_ECORRUPT when it is
 * missing or its size is not the MANIFEST's. */
int seg_open_sealed(kv_db *db, const kv_manifest_seg *ms, kv_file **out);

/* Retires the n segments fs (pinned by the caller): each leaves the file table if
 * it is there, then its name and its hint's are removed (a failed unlink leaves a
 * leftover that open removes). */
void seg_retire(kv_db *db, kv_file *const *fs, uint32_t n);

#endif
