/*
 * batch.c — kv_batch: building an atomic batch.
 */
#include "db/batch.h"

#include "format/entry.h"
#include "store/index.h"
#include "db/db.h"
#include "base/kv_int.h"
#include "base/grow.h"

#include <stdlib.h>
#include <string.h>

kv_batch *kv_batch_new(void) { return calloc(1, sizeof(kv_batch)); }

void kv_batch_clear(kv_batch *b)
{
    if (b == NULL)
        return;
    b->len = 0;
    b->last_off = 0;
    b->count = b->nput = b->ndel = 0;
    b->shard_mask = 0;
}

void kv_batch_free(kv_batch *b)
{
    if (b == NULL)
        return;
    free(b->buf);
    free(b);
}

size_t kv_batch_count(const kv_batch *b) { return b == NULL ? 0 : b->count; }

static int batch_add(kv_batch *b, int type, const void *key, size_t klen, const void *val,
                     size_t vlen)
{
    size_t need = entry_size(klen, vlen);
    if (b->len + need > KV_MAX_BATCH)
        return err_set(KV_EINVAL, "kv_batch: adding %zu bytes would exceed KV_MAX_BATCH (%u)",
                      need, KV_MAX_BATCH);
    uint8_t *nb = grow(b->buf, &b->cap, b->len + need, 1, 256, 0);
    if (nb == NULL)
        return err_set(KV_ENOMEM, "kv_batch: growing to %zu bytes", b->len + need);
    b->buf = nb;
    b->last_off = b->len;
    b->len += entry_encode(b->buf + b->len, type, KV_RECF_BATCH, key, klen, val, vlen);
    b->count++;
    b->shard_mask |= UINT64_C(1) << idx_shard_of(idx_hash(key, klen));
    return KV_OK;
}

int kv_batch_put(kv_batch *b, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (b == NULL)
        return err_set(KV_EINVAL, "kv_batch_put: batch is NULL");
    int rc = db_check_kv("kv_batch_put", key, klen, val, vlen);
    if (rc == KV_OK)
        rc = batch_add(b, KV_REC_PUT, key, klen, val, vlen);
    if (rc == KV_OK)
        b->nput++;
    return rc;
}

int kv_batch_delete(kv_batch *b, const void *key, size_t klen)
{
    if (b == NULL)
        return err_set(KV_EINVAL, "kv_batch_delete: batch is NULL");
    int rc = db_check_key("kv_batch_delete", key, klen);
    if (rc == KV_OK)
        rc = batch_add(b, KV_REC_DEL, key, klen, NULL, 0);
    if (rc == KV_OK)
        b->ndel++;
    return rc;
}
