/*
 * entry_roundtrip_fuzzer.c — structured batches encode, then decode, to the same
 * entries.
 *
 * Invariant: for any batch of 1..8 operations (type, key of 1..65,535 bytes, value of
 * 0..128 KiB, first sequence number, compression wish), the encoder (entry_encode, or
 * compress_entry_encode for a put that asks for LZ4, then entry_seal, as the writers
 * use them) writes entries that
 *   - entry_parse decodes one by one to exactly the fields that went in (type, flags,
 *     sequence number, key and value bytes, size); a value the encoder kept in LZ4
 *     (only ever for a put that asked, and only when shorter) decompresses with
 *     compress_value_decode to exactly the value that went in; and
 *   - the record-file scanner (scan_buffer) delivers, after a file header, as one
 *     whole batch in order with nothing left over; with the last byte missing it
 *     delivers none of it (a batch is all or nothing).
 * Any difference aborts.
 *
 * Input layout (fuzz_reader, little-endian, zero once the input runs out):
 *   u8 count-1 (mod 8), u64 first sequence number, then per operation:
 *   u8 control (bit 0 delete, bit 1 compress: puts only, bit 2 long lengths),
 *   u16 key length, u24 value length, then the key and value bytes. Lengths are
 *   taken modulo 64 and 1024, or with bit 2 modulo 65,535 and 128 KiB; bytes the
 *   input lacks are filled with a pattern, so long keys and values cost no input.
 *
 * Compression: a put with the control bit is encoded with compress_entry_encode at
 * a minimum of 0 bytes, so every such value is tried; the encoder keeps the block
 * only when it is shorter, and the entry's flag says which it did.
 */
#include "fuzz.h"

#include "format/compress.h"
#include "format/entry.h"
#include "kv.h"
#include "store/scan.h"

#include <stdlib.h>
#include <string.h>

#define RT_MAX_OPS 8
#define RT_MAX_VALUE (1u << 17) /* past every length boundary (u16), cheap to run */
#define RT_SMALL_KEY 64         /* lengths without the "long" control bit */
#define RT_SMALL_VALUE 1024

typedef struct rt_op {
    int type;           /* KV_REC_PUT or KV_REC_DEL */
    int compress;       /* the operation asks for an LZ4 value (KV_RECF_LZ4) */
    uint8_t *key;       /* owned */
    size_t klen;        /* 1..KV_MAX_KEY */
    uint8_t *val;       /* owned; NULL for a delete */
    size_t vlen;        /* 0 for a delete */
    size_t enc_size;    /* the encoded entry's size (shorter when kept compressed) */
    int lz4;            /* the encoder kept the value LZ4-compressed */
} rt_op;

typedef struct rt_case {
    uint64_t first_seq; /* sequence number of op[0]; the rest follow by one */
    size_t n;           /* operations, 1..RT_MAX_OPS */
    rt_op op[RT_MAX_OPS];
} rt_case;

/* ---- building a case from the input ------------------------------------------------ */

/* n bytes from the input, then what was taken repeated (or a counter when nothing
 * was), so long keys and values cost neither input nor time. */
static uint8_t *take_filled(fuzz_reader *r, size_t n)
{
    size_t got;
    uint8_t *b = malloc(n ? n : 1);
    FUZZ_CHECK(b != NULL, "out of memory");
    const uint8_t *src = fuzz_bytes(r, n, &got);
    if (got > 0)
        memcpy(b, src, got);
    else
        for (; got < n && got < 256; got++)
            b[got] = (uint8_t)got;
    for (size_t have = got; have < n; have *= 2)
        memcpy(b + have, b, have < n - have ? have : n - have);
    return b;
}

static void rt_case_read(rt_case *c, fuzz_reader *r)
{
    memset(c, 0, sizeof *c);
    c->n = 1 + fuzz_u8(r) % RT_MAX_OPS;
    c->first_seq = fuzz_u64(r);
    for (size_t i = 0; i < c->n; i++) {
        rt_op *op = &c->op[i];
        uint8_t ctl = fuzz_u8(r);
        op->type = (ctl & 1) ? KV_REC_DEL : KV_REC_PUT;
        op->compress = op->type == KV_REC_PUT && (ctl & 2);
        int big = (ctl & 4) != 0;
        op->klen = 1 + fuzz_u16(r) % (big ? KV_MAX_KEY : RT_SMALL_KEY);
        uint32_t vl = fuzz_u16(r) | (uint32_t)fuzz_u8(r) << 16;
        op->vlen = op->type == KV_REC_DEL ? 0 : vl % ((big ? RT_MAX_VALUE : RT_SMALL_VALUE) + 1);
        op->key = take_filled(r, op->klen);
        op->val = op->type == KV_REC_DEL ? NULL : take_filled(r, op->vlen);
    }
}

static void rt_case_free(rt_case *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->op[i].key);
        free(c->op[i].val);
    }
}

/* ---- encoding ---------------------------------------------------------------------- */

static int rt_flags(const rt_case *c, size_t i)
{
    return (i + 1 < c->n ? KV_RECF_BATCH : 0) | (c->op[i].lz4 ? KV_RECF_LZ4 : 0);
}

/* File header, then the batch. Returns the buffer (owned) and its length; fills each
 * op's enc_size and lz4. */
static uint8_t *rt_encode(rt_case *c, size_t *len)
{
    size_t total = KV_FILE_HDR_SIZE;
    for (size_t i = 0; i < c->n; i++)
        total += entry_size(c->op[i].klen, c->op[i].vlen);
    uint8_t *buf = malloc(total);
    FUZZ_CHECK(buf != NULL, "out of memory");
    file_header_encode(buf, KV_MAGIC_WAL, 1);
    size_t off = KV_FILE_HDR_SIZE;
    for (size_t i = 0; i < c->n; i++) {
        rt_op *op = &c->op[i];
        int batch = i + 1 < c->n ? KV_RECF_BATCH : 0;
        size_t n;
        if (op->compress) {
            n = compress_entry_encode(buf + off, op->type, batch, op->key, op->klen, op->val,
                                      op->vlen, 0);
            kv_entry h;
            FUZZ_CHECK(entry_check_header(buf + off, &h) == NULL, "op %zu: bad header", i);
            op->lz4 = (h.flags & KV_RECF_LZ4) != 0;
            FUZZ_CHECK(op->lz4 ? n < entry_size(op->klen, op->vlen) : n == entry_size(op->klen, op->vlen),
                       "op %zu: %zu bytes encoded, lz4 %d", i, n, op->lz4);
        } else {
            n = entry_encode(buf + off, op->type, batch, op->key, op->klen, op->val, op->vlen);
            FUZZ_CHECK(n == entry_size(op->klen, op->vlen), "entry_encode wrote %zu bytes", n);
        }
        op->enc_size = n;
        entry_seal(buf + off, n, c->first_seq + i);
        off += n;
    }
    *len = off;
    return buf;
}

/* ---- decoding and comparing -------------------------------------------------------- */

/* Checks the entry at p against op i. */
static void rt_check_entry(const rt_case *c, size_t i, const uint8_t *p, size_t avail,
                           const kv_entry *e, int pr, const char *why)
{
    const rt_op *op = &c->op[i];
    FUZZ_CHECK(pr == ENTRY_OK, "op %zu: entry_parse gave %d (%s)", i, pr, why);
    FUZZ_CHECK(e->size == op->enc_size && e->size <= avail, "op %zu: size %u", i, e->size);
    FUZZ_CHECK(e->seq == c->first_seq + i, "op %zu: seq %llu, encoded %llu", i,
               (unsigned long long)e->seq, (unsigned long long)(c->first_seq + i));
    FUZZ_CHECK(e->type == op->type, "op %zu: type %d, encoded %d", i, e->type, op->type);
    FUZZ_CHECK(e->flags == rt_flags(c, i), "op %zu: flags 0x%x, encoded 0x%x", i,
               (unsigned)e->flags, (unsigned)rt_flags(c, i));
    FUZZ_CHECK(e->klen == op->klen && memcmp(e->key, op->key, op->klen) == 0,
               "op %zu: key differs (%u vs %zu bytes)", i, e->klen, op->klen);
    FUZZ_CHECK(e->key == p + KV_ENTRY_HDR, "op %zu: key pointer", i);
    if (op->lz4) {
        uint8_t *out = NULL;
        size_t outlen = 0;
        char dwhy[128] = "";
        int rc = compress_value_decode(e, &out, &outlen, dwhy, sizeof dwhy);
        FUZZ_CHECK(rc == KV_OK, "op %zu: compressed value does not decode: %s", i, dwhy);
        FUZZ_CHECK(outlen == op->vlen && (outlen == 0 || memcmp(out, op->val, outlen) == 0),
                   "op %zu: decompressed value differs (%zu vs %zu bytes)", i, outlen, op->vlen);
        FUZZ_CHECK(compress_raw_len(e) == op->vlen, "op %zu: raw length", i);
        free(out);
    } else {
        FUZZ_CHECK(e->vlen == op->vlen && (op->vlen == 0 || memcmp(e->val, op->val, op->vlen) == 0),
                   "op %zu: value differs (%u vs %zu bytes)", i, e->vlen, op->vlen);
    }
}

typedef struct rt_scan {
    const rt_case *c;
    const uint8_t *buf;
    size_t next;        /* index of the op the scanner must deliver next */
    uint64_t next_off;  /* and its offset */
} rt_scan;

static int rt_scan_entry(void *arg, const kv_entry *e, uint64_t off)
{
    rt_scan *s = arg;
    FUZZ_CHECK(s->next < s->c->n, "scanner delivered %zu entries of %zu", s->next + 1, s->c->n);
    FUZZ_CHECK(off == s->next_off, "op %zu at offset %llu, expected %llu", s->next,
               (unsigned long long)off, (unsigned long long)s->next_off);
    rt_check_entry(s->c, s->next, s->buf + off, e->size, e, ENTRY_OK, "");
    s->next++;
    s->next_off += e->size;
    return 0;
}

static void rt_check(const rt_case *c, const uint8_t *buf, size_t len)
{
    size_t off = KV_FILE_HDR_SIZE;
    for (size_t i = 0; i < c->n; i++) {
        kv_entry e;
        char why[128] = "";
        int pr = entry_parse(buf + off, len - off, &e, why, sizeof why);
        rt_check_entry(c, i, buf + off, len - off, &e, pr, why);
        off += c->op[i].enc_size;
    }
    FUZZ_CHECK(off == len, "entries end at %zu of %zu", off, len);

    kv_scan_result res;
    rt_scan s = {c, buf, 0, KV_FILE_HDR_SIZE};
    int rc = scan_buffer(buf, len, KV_FILE_HDR_SIZE, rt_scan_entry, &s, &res);
    FUZZ_CHECK(rc == 0, "scan_buffer returned %d", rc);
    FUZZ_CHECK(!res.stopped && res.valid_end == len && res.records == c->n && s.next == c->n,
               "whole batch: stopped %d (%s), valid_end %llu of %zu, %llu records of %zu",
               res.stopped, res.why, (unsigned long long)res.valid_end, len,
               (unsigned long long)res.records, c->n);
    FUZZ_CHECK(res.max_seq >= c->first_seq, "max_seq %llu", (unsigned long long)res.max_seq);
    /* One byte short: the batch is incomplete, none of it is delivered. */
    rt_scan t = {c, buf, 0, KV_FILE_HDR_SIZE};
    rc = scan_buffer(buf, len - 1, KV_FILE_HDR_SIZE, rt_scan_entry, &t, &res);
    FUZZ_CHECK(rc == 0 && res.stopped && res.records == 0 && t.next == 0
                   && res.valid_end == KV_FILE_HDR_SIZE,
               "torn batch: rc %d, stopped %d, %llu records delivered", rc, res.stopped,
               (unsigned long long)res.records);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_reader r = {data, size};
    rt_case c;
    size_t len;
    rt_case_read(&c, &r);
    uint8_t *buf = rt_encode(&c, &len);
    rt_check(&c, buf, len);
    free(buf);
    rt_case_free(&c);
    return 0;
}
