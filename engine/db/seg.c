/*
 * seg.c — the life of a data segment (seg.h): creating, sealing, publishing in the
 * MANIFEST, opening at recovery, retiring.
 *
 * Sections: creating and sealing, what compaction keeps of a sealed segment,
 * publishing, opening and retiring.
 */
#include "db/seg.h"

#include "db/db.h"

#include <stdlib.h>
#include <string.h>

#define RETIRE_CHUNK 16 /* segments retired under one hold of the file table's lock */

/* ---- creating and sealing ---------------------------------------------------------- */

int seg_create(kv_io *io, int dirfd, uint32_t number, kv_file **out)
{
    kv_file *f = NULL;
    int rc = file_create(io, dirfd, KV_FILE_SEG, number, &f);
    if (rc == KV_OK && (rc = file_enable_buffer(f, KV_SEG_WBUF)) != KV_OK) {
        io->ops->unlink(io, dirfd, f->name);
        file_unref(f);
        f = NULL;
    }
    *out = f;
    return rc;
}

int seg_sync(kv_io *io, kv_file *f)
{
    int rc = file_seal_buffer(f);
    if (rc == KV_OK) {
        int r = io->ops->fdatasync(io, f->fd);
        if (r < 0)
            rc = err_errno(-r, "%s: fdatasync while sealing", f->name);
    }
    return rc;
}

/* ---- what compaction keeps of a sealed segment ------------------------------------- */

/* A summary being built from a segment's hint records. */
struct summary {
    kv_file *f;       /* the segment, whose sequence range widens record by record */
    hash_list hashes; /* its keys' hashes: the Bloom filter's input */
};

static int summarize_entry(void *arg, const kv_entry *e, uint64_t off)
{
    struct summary *s = arg;
    file_note_seq(s->f, e->seq);
    hash_list_add(&s->hashes, idx_hash(e->key, e->klen));
    return KV_OK;
}

/* The sequence range and Bloom filter of f, from its hint records. */
static void summarize(kv_file *f, const hint_buf *h)
{
    struct summary s = {f, {0}};
    f->min_seq = f->max_seq = 0;
    if (hint_buf_walk(h, f->number, f->size, summarize_entry, &s) == KV_OK) {
        f->bloom = hash_list_bloom(&s.hashes);
    } else { /* unknown contents: may hold any key of any age */
        f->min_seq = 1;
        f->max_seq = UINT64_MAX;
    }
    hash_list_free(&s.hashes);
    err_clear();
}

int seg_seal(kv_db *db, kv_file *f, const hint_buf *h)
{
    int rc = seg_sync(db->io, f);
    if (rc != KV_OK)
        return rc;
    /* Without its hint the segment is still whole: the next open scans it. */
    hint_write(db->io, db->dirfd, f->number, h, f->size);
    summarize(f, h);
    return KV_OK;
}

/* ---- publishing -------------------------------------------------------------------- */

static int is_retired(kv_file *const *retire, uint32_t n, uint32_t number)
{
    for (uint32_t i = 0; i < n; i++)
        if (retire[i]->number == number)
            return 1;
    return 0;
}

static int cmp_seg(const void *a, const void *b)
{
    const kv_manifest_seg *x = a, *y = b;
    return x->number < y->number ? -1 : x->number > y->number;
}

/* Into m (a copy of the MANIFEST in force): its sealed list without retire, with
 * add, by number. The caller holds man_mu. */
static int sealed_list(kv_db *db, kv_manifest *m, kv_file *const *retire, uint32_t nretire,
                       kv_file *const *add, uint32_t nadd)
{
    KV_ASSERT(mutex_held(&db->man_mu));
    *m = db->man;
    kv_manifest_seg *ns = malloc((m->nsealed + nadd + 1) * sizeof *ns);
    uint32_t n = 0;
    if (ns == NULL)
        return err_set(KV_ENOMEM, "MANIFEST of %u segments", m->nsealed + nadd);
    for (uint32_t i = 0; i < m->nsealed; i++)
        if (!is_retired(retire, nretire, m->sealed[i].number))
            ns[n++] = m->sealed[i];
    for (uint32_t i = 0; i < nadd; i++)
        ns[n++] = (kv_manifest_seg){add[i]->number, 0, add[i]->size};
    /* Compaction outputs are numbered after the active segment of their time. */
    qsort(ns, n, sizeof *ns, cmp_seg);
    m->sealed = ns;
    m->nsealed = n;
    return KV_OK;
}

/* Stores m (which it owns from now on: freed on failure), then has the file table
 * put it in force; for a roll with seg and wal as the new active pair. */
static int publish(kv_db *db, kv_manifest *m, int *renamed, kv_file *seg, kv_file *wal,
                   kv_file **old_wal)
{
    m->next_file = atomic_load(&db->next_file);
    int rc = manifest_store(db->io, db->dirfd, m, renamed);
    if (rc != KV_OK) {
        free(m->sealed);
        return rc;
    }
    return ftab_install(db, m, seg, wal, old_wal);
}

int seg_publish_roll(kv_db *db, uint32_t number, kv_file *seg, kv_file *wal, kv_file **old_wal)
{
    kv_manifest m;
    pthread_mutex_lock(&db->man_mu);
    int rc = sealed_list(db, &m, NULL, 0, &db->active, 1);
    if (rc == KV_OK) {
        m.active = number;
        rc = publish(db, &m, NULL, seg, wal, old_wal);
    }
    pthread_mutex_unlock(&db->man_mu);
    return rc;
}

int seg_publish(kv_db *db, kv_file *const *retire, uint32_t nretire, kv_file *const *add,
                uint32_t nadd, int *renamed)
{
    kv_manifest m;
    *renamed = 0;
    pthread_mutex_lock(&db->man_mu);
    int rc = sealed_list(db, &m, retire, nretire, add, nadd);
    if (rc == KV_OK)
        rc = publish(db, &m, renamed, NULL, NULL, NULL);
    pthread_mutex_unlock(&db->man_mu);
    return rc;
}

/* ---- opening and retiring ---------------------------------------------------------- */

int seg_open_sealed(kv_db *db, const kv_manifest_seg *ms, kv_file **out)
{
    kv_file *f;
    int missing;
    int rc = file_open(db->io, db->dirfd, KV_FILE_SEG, ms->number, 0, &missing, &f);
    if (rc != KV_OK)
        return missing ? err_set(KV_ECORRUPT, "%s: segment %06u named by MANIFEST is missing",
                                db->dir, ms->number) : rc;
    rc = ftab_add(db, f);
    if (rc != KV_OK) {
        file_unref(f);
        return rc;
    }
    if (f->size != ms->size)
        return err_set(KV_ECORRUPT, "%s: offset %llu: sealed segment has %llu bytes, MANIFEST "
                      "says %llu", f->name, (unsigned long long)(f->size < ms->size ? f->size : ms->size),
                      (unsigned long long)f->size, (unsigned long long)ms->size);
    if (db->opts.mmap_reads)
        file_map(f, 0);
    *out = f; /* the file table keeps it alive */
    return KV_OK;
}

void seg_retire(kv_db *db, kv_file *const *fs, uint32_t n)
{
    for (uint32_t at = 0; at < n; at += RETIRE_CHUNK) {
        uint32_t k = n - at < RETIRE_CHUNK ? n - at : RETIRE_CHUNK, nums[RETIRE_CHUNK];
        kv_file *gone[RETIRE_CHUNK];
        for (uint32_t i = 0; i < k; i++)
            nums[i] = fs[at + i]->number;
        ftab_remove_n(db, nums, k, gone); /* one hold of the lock for them all */
        for (uint32_t i = 0; i < k; i++) {
            char hint[24];
            file_name(hint, sizeof hint, nums[i], KV_FILE_HINT);
            db->io->ops->unlink(db->io, db->dirfd, fs[at + i]->name);
            db->io->ops->unlink(db->io, db->dirfd, hint);
            file_unref(gone[i]);
        }
    }
}
