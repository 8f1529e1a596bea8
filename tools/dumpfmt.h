/*
 * dumpfmt.h — the kvdump text format, shared by its writer (kvdump) and its reader
 * (kv load), and the escaping every kv tool uses to print keys and values.
 *
 * docs/FORMAT.md ("Dump format") is the prose spec; this header is the same thing as
 * code. A dump is text:
 *
 *   VERSION=1                  first line, always
 *   format=bytevalue           or print
 *   compression=none           or lz4
 *   content=pairs              or keys (kvdump --keys-only: no value lines)
 *   keys=2                     number of keys that follow
 *   prefix=...                 only with kvdump --prefix (encoded as the data lines)
 *   HEADER=END
 *    6b6579                    one line per key, then one per value, each starting
 *    76616c7565                with a space; keys in ascending byte order, each once
 *   DATA=END                   last line; nothing may follow it
 *
 * Encodings: bytevalue writes every byte as two lowercase hex digits; print writes
 * bytes 0x20..0x7e as themselves except the backslash, which is "\\", and every
 * other byte as "\xHH" (lowercase). A reader also takes uppercase hex digits.
 *
 * Sections: 1. encoding and decoding bytes, 2. writing a dump, 3. reading a dump,
 * 4. sorted key lists (the dump order), 5. the tools' error messages.
 */
#ifndef KV_DUMPFMT_H
#define KV_DUMPFMT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DUMP_VERSION 1 /* the VERSION= this code writes and the highest it reads */

enum { DUMP_HEX = 0, DUMP_PRINT = 1 };  /* format=bytevalue, format=print */
enum { DUMP_PAIRS = 0, DUMP_KEYS = 1 }; /* content=pairs, content=keys */

/* ---------------------------------------------------------------------------------
 * 1. Encoding and decoding bytes
 * ------------------------------------------------------------------------------ */

/* Writes the n bytes at p to f in format (DUMP_HEX or DUMP_PRINT), with nothing
 * around them. DUMP_PRINT is also how kv prints keys and values (kv keys, kv scan). */
void dump_encode(FILE *f, int format, const void *p, size_t n);

/* Decodes the text s (len bytes) written in format into out (at most max bytes),
 * *outlen its length. Returns NULL, or what is wrong with the text ("bad escape
 * \q", "odd number of hex digits", "longer than 65535 bytes", ...). */
const char *dump_decode(int format, const char *s, size_t len, uint8_t *out, size_t max,
                        size_t *outlen);

/* Writes the n bytes at p as a JSON string holding their print encoding (so a
 * backslash in the key is "\\\\" in the JSON text and a NUL byte "\\x00"); any
 * other text goes through tools/json.h. */
void dump_json_bytes(FILE *f, const void *p, size_t n);

/* ---------------------------------------------------------------------------------
 * 2. Writing a dump
 * ------------------------------------------------------------------------------ */
typedef struct dump_header {
    int version;          /* VERSION= */
    int format;           /* DUMP_HEX or DUMP_PRINT */
    int compression;      /* KV_COMPRESS_NONE or KV_COMPRESS_LZ4 */
    int content;          /* DUMP_PAIRS or DUMP_KEYS */
    int has_keys;         /* a keys= line is present (kvdump always writes one) */
    uint64_t keys;        /* its count */
    int has_prefix;       /* a prefix= line is present */
    const uint8_t *prefix; /* its bytes (the reader's point into prefix_buf) */
    size_t prefix_len;
} dump_header;

/* Writes the header, HEADER=END included. */
void dump_write_header(FILE *f, const dump_header *h);
/* Writes one data line: a space, the bytes encoded, a newline. */
void dump_write_line(FILE *f, int format, const void *p, size_t n);
/* Writes the DATA=END line. */
void dump_write_end(FILE *f);

/* ---------------------------------------------------------------------------------
 * 3. Reading a dump
 *
 * The reader checks every line as it goes: the header's names and values, each data
 * line's encoding, key lengths (1..KV_MAX_KEY) and value lengths (up to
 * KV_MAX_VALUE), the key order, a value line after every key line (content=pairs),
 * the count against keys=, DATA=END and nothing after it. It holds one key, the key
 * before it and one value in memory, whatever the size of the dump.
 * ------------------------------------------------------------------------------ */
enum {
    DUMP_ERR_INPUT = -1, /* the input is not a valid dump: err says why, line where */
    DUMP_ERR_SYS = -2    /* reading failed or memory ran out: err says which */
};

typedef struct dump_reader {
    FILE *in;             /* the dump, read from where it stands */
    uint64_t line;        /* number of the line that failed or was read last */
    dump_header hdr;      /* filled by dump_read_header */
    uint8_t *key;         /* the record just read: key (KV_MAX_KEY bytes of room) */
    size_t klen;
    uint8_t *val;         /* ... and its value (grown on demand up to KV_MAX_VALUE) */
    size_t vlen, vcap;
    uint8_t *prev;        /* the key before it, for the order check */
    size_t prevlen;
    uint64_t records;     /* records read so far */
    char *text;           /* a header or marker line being read */
    uint8_t *prefix_buf;  /* the bytes of the header's prefix= */
    char err[320];        /* what failed, without the name or line number */
} dump_reader;

/* Sets r up to read in. Returns 0, or DUMP_ERR_SYS (out of memory). */
int dump_reader_init(dump_reader *r, FILE *in);
void dump_reader_free(dump_reader *r);

/* Reads and checks the header, up to HEADER=END. Returns 0 or a DUMP_ERR_*. A
 * VERSION above DUMP_VERSION is DUMP_ERR_INPUT ("written by a newer kvdump"). */
int dump_read_header(dump_reader *r);

/* Reads the next record into r->key and (content=pairs) r->val. Returns 1 for a
 * record, 0 at DATA=END (the count checked, nothing after it), or a DUMP_ERR_*. */
int dump_read_record(dump_reader *r);

/* ---------------------------------------------------------------------------------
 * 4. Sorted key lists
 *
 * The dump order is ascending byte order (memcmp, a shorter key before every key it
 * is a prefix of), so a dump of the same contents is the same text whatever the
 * store's history: the index's own order depends on the order keys were inserted.
 * A list copies the keys into one growing block and sorts 16-byte references to
 * them: memory of the order of the index, never of the values.
 * ------------------------------------------------------------------------------ */
typedef struct dump_keyref {
    size_t off;    /* where the key starts in bytes */
    uint32_t klen; /* its length */
} dump_keyref;

typedef struct dump_keys {
    uint8_t *bytes;      /* the keys back to back */
    size_t len, cap;
    dump_keyref *refs;   /* one per key; sorted by dump_keys_sort */
    size_t n, ncap;
} dump_keys;

/* Appends a copy of key. Returns 0, or -1 when out of memory. */
int dump_keys_add(dump_keys *kl, const void *key, size_t klen);
/* Sorts the list into dump order. */
void dump_keys_sort(dump_keys *kl);
/* The i-th key (after sorting: the i-th in dump order). */
static inline const uint8_t *dump_keys_at(const dump_keys *kl, size_t i)
{
    return kl->bytes + kl->refs[i].off;
}
void dump_keys_free(dump_keys *kl);

/* 1 when key (klen bytes) starts with prefix (plen bytes). */
int dump_has_prefix(const void *key, size_t klen, const void *prefix, size_t plen);

/* Byte-order comparison used for the dump order (memcmp, then length). */
int dump_keycmp(const void *a, size_t alen, const void *b, size_t blen);

/* ---------------------------------------------------------------------------------
 * 5. Messages of the tools that link this file (kv, kvdump)
 * ------------------------------------------------------------------------------ */

/* "PROG: MSG: ARG" (when msg is given), then the usage text, on stderr. */
void tool_usage_error(const char *prog, const char *usage, const char *msg, const char *arg);
/* "PROG: DIR: <kv_strerror(rc)>: <kv_errmsg>" on stderr. kv_errmsg is copied first,
 * since its text is only promised until the next kv_* call. */
void tool_store_error(const char *prog, const char *dir, int rc);

#endif
