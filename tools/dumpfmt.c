/*
 * dumpfmt.c — the kvdump text format: encoding bytes, writing a dump, reading and
 * checking one, and the sorted key lists that give a dump its order.
 *
 * The writer and the reader live together so the format has one definition in code
 * (dumpfmt.h sketches it; docs/FORMAT.md, "Dump format", is the spec). The reader is
 * strict: it is the gate kv load puts in front of a store, and a dump that is cut,
 * edited wrongly or concatenated with another must be refused with the line that
 * is wrong, before a byte is written. It never holds more than one key, the key
 * before it and one value, so a dump of any size is checked in constant memory.
 *
 * Sections:
 *   1. Encoding
 *   2. Decoding (one character at a time, for strings and for streams)
 *   3. Writing a dump
 *   4. Reading a dump: lines, the header, records
 *   5. Sorted key lists
 */
#include "dumpfmt.h"

#include "format/format.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/grow.h"
#include "json.h"
#include "kv.h"

/* ---------------------------------------------------------------------------------
 * 1. Encoding
 * ------------------------------------------------------------------------------ */
static const char hexdigits[] = "0123456789abcdef";

/* Writes byte c in the print encoding at out (1, 2 or 4 characters); returns how many. */
static size_t print_byte(unsigned c, char *out)
{
    if (c == '\\') {
        out[0] = '\\', out[1] = '\\';
        return 2;
    }
    if (c >= 0x20 && c < 0x7f) {
        out[0] = (char)c;
        return 1;
    }
    out[0] = '\\', out[1] = 'x', out[2] = hexdigits[c >> 4], out[3] = hexdigits[c & 15];
    return 4;
}

/* Encodes the n bytes at p in format into chunks of buf and hands each to emit. */
static void encode_chunks(FILE *f, int format, const void *p, size_t n,
                          void (*emit)(FILE *, const void *, size_t))
{
    const unsigned char *s = p;
    char buf[4096];
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        if (o > sizeof buf - 4) {
            emit(f, buf, o);
            o = 0;
        }
        if (format == DUMP_HEX) {
            buf[o++] = hexdigits[c >> 4];
            buf[o++] = hexdigits[c & 15];
        } else {
            o += print_byte(c, buf + o);
        }
    }
    emit(f, buf, o);
}

static void emit_raw(FILE *f, const void *p, size_t n)
{
    fwrite(p, 1, n, f);
}

void dump_encode(FILE *f, int format, const void *p, size_t n)
{
    encode_chunks(f, format, p, n, emit_raw);
}

/* The print encoding is ASCII: jsonw_chars only has '"' and '\\' to escape in it. */
void dump_json_bytes(FILE *f, const void *p, size_t n)
{
    putc('"', f);
    encode_chunks(f, DUMP_PRINT, p, n, jsonw_chars);
    putc('"', f);
}

/* ---------------------------------------------------------------------------------
 * 2. Decoding
 *
 * A decoder takes one character at a time, so the same code reads a --prefix
 * argument, a header value and a data line of 128 MiB streaming from a pipe.
 * ------------------------------------------------------------------------------ */
typedef struct decoder {
    int format;     /* DUMP_HEX or DUMP_PRINT */
    int state;      /* print: 0 plain, 1 after '\', 2 after '\x', 3 after '\xH';
                       hex: 0 before a pair, 1 after its first digit */
    unsigned hi;    /* the first digit of a pair */
    char why[80];   /* what was wrong, when dec_feed returns -1 */
} decoder;


/* Names the character c for a message: 'q', or 0x09 when it is not printable. */
static void char_name(char *buf, size_t n, int c)
{
    if (c > 0x20 && c < 0x7f && c != '\'')
        snprintf(buf, n, "'%c'", c);
    else
        snprintf(buf, n, "byte 0x%02x", (unsigned)c & 0xff);
}

/* Feeds character c (not the newline). Returns a decoded byte (0..255), -2 when c
 * only started or continued a sequence, or -1 with d->why set. */
static int dec_feed(decoder *d, int c)
{
    char cn[16];
    int v;

    if (d->format == DUMP_HEX) {
        if ((v = kv_hex_digit(c)) < 0) {
            char_name(cn, sizeof cn, c);
            snprintf(d->why, sizeof d->why, "%s is not a hex digit", cn);
            return -1;
        }
        if (d->state == 0) {
            d->hi = (unsigned)v, d->state = 1;
            return -2;
        }
        d->state = 0;
        return (int)(d->hi << 4 | (unsigned)v);
    }
    switch (d->state) {
    case 0:
        if (c == '\\') {
            d->state = 1;
            return -2;
        }
        if (c >= 0x20 && c < 0x7f)
            return c;
        snprintf(d->why, sizeof d->why, "byte 0x%02x must be escaped as \\x%02x",
                 (unsigned)c & 0xff, (unsigned)c & 0xff);
        return -1;
    case 1:
        if (c == '\\') {
            d->state = 0;
            return '\\';
        }
        if (c == 'x') {
            d->state = 2;
            return -2;
        }
        char_name(cn, sizeof cn, c);
        snprintf(d->why, sizeof d->why, "bad escape: backslash followed by %s (only \\\\ "
                 "and \\xHH exist)", cn);
        return -1;
    default:
        if ((v = kv_hex_digit(c)) < 0) {
            char_name(cn, sizeof cn, c);
            snprintf(d->why, sizeof d->why, "bad escape: \\x needs two hex digits, got %s", cn);
            return -1;
        }
        if (d->state == 2) {
            d->hi = (unsigned)v, d->state = 3;
            return -2;
        }
        d->state = 0;
        return (int)(d->hi << 4 | (unsigned)v);
    }
}

/* At the end of the text: returns 0, or -1 with d->why when a sequence is open. */
static int dec_end(decoder *d)
{
    if (d->state == 0)
        return 0;
    snprintf(d->why, sizeof d->why, "%s", d->format == DUMP_HEX
             ? "odd number of hex digits" : "escape cut short by the end of the line");
    return -1;
}

const char *dump_decode(int format, const char *s, size_t len, uint8_t *out, size_t max,
                        size_t *outlen)
{
    static _Thread_local char why[96];
    decoder d = {.format = format};
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        int b = dec_feed(&d, (unsigned char)s[i]);
        if (b == -1) {
            snprintf(why, sizeof why, "%s", d.why);
            return why;
        }
        if (b < 0)
            continue;
        if (n == max) {
            snprintf(why, sizeof why, "longer than %zu bytes", max);
            return why;
        }
        out[n++] = (uint8_t)b;
    }
    if (dec_end(&d) != 0) {
        snprintf(why, sizeof why, "%s", d.why);
        return why;
    }
    *outlen = n;
    return NULL;
}

/* ---------------------------------------------------------------------------------
 * 3. Writing a dump
 * ------------------------------------------------------------------------------ */
void dump_write_header(FILE *f, const dump_header *h)
{
    fprintf(f, "VERSION=%d\n", h->version);
    fprintf(f, "format=%s\n", h->format == DUMP_HEX ? "bytevalue" : "print");
    fprintf(f, "compression=%s\n", h->compression == KV_COMPRESS_LZ4 ? "lz4" : "none");
    fprintf(f, "content=%s\n", h->content == DUMP_KEYS ? "keys" : "pairs");
    if (h->has_keys)
        fprintf(f, "keys=%" PRIu64 "\n", h->keys);
    if (h->has_prefix) {
        fputs("prefix=", f);
        dump_encode(f, h->format, h->prefix, h->prefix_len);
        putc('\n', f);
    }
    fputs("HEADER=END\n", f);
}

void dump_write_line(FILE *f, int format, const void *p, size_t n)
{
    putc(' ', f);
    dump_encode(f, format, p, n);
    putc('\n', f);
}

void dump_write_end(FILE *f) { fputs("DATA=END\n", f); }

/* ---------------------------------------------------------------------------------
 * 4. Reading a dump
 * ------------------------------------------------------------------------------ */

/* Room for a header line: "prefix=" and a KV_MAX_KEY-byte prefix in print format
 * (4 characters a byte at most), with margin. */
#define TEXT_MAX (16 + 4 * (size_t)KV_MAX_KEY)

static int input_error(dump_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int input_error(dump_reader *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
    return DUMP_ERR_INPUT;
}

static int read_error(dump_reader *r)
{
    snprintf(r->err, sizeof r->err, "read failed: %s", strerror(errno ? errno : EIO));
    return DUMP_ERR_SYS;
}

int dump_reader_init(dump_reader *r, FILE *in)
{
    memset(r, 0, sizeof *r);
    r->in = in;
    r->key = malloc(KV_MAX_KEY);
    r->prev = malloc(KV_MAX_KEY);
    r->text = malloc(TEXT_MAX + 1);
    if (r->key == NULL || r->prev == NULL || r->text == NULL) {
        dump_reader_free(r);
        snprintf(r->err, sizeof r->err, "out of memory");
        return DUMP_ERR_SYS;
    }
    return 0;
}

void dump_reader_free(dump_reader *r)
{
    free(r->key);
    free(r->prev);
    free(r->val);
    free(r->text);
    free(r->prefix_buf);
    r->key = r->prev = r->val = r->prefix_buf = NULL;
    r->hdr.prefix = NULL;
    r->text = NULL;
}

/* Reads the rest of a text line (header or marker) into r->text, NUL-terminated,
 * *len its length. Returns 0; 1 at the end of the input before any character;
 * DUMP_ERR_INPUT for a line without its newline or longer than TEXT_MAX; or
 * DUMP_ERR_SYS. */
static int read_text(dump_reader *r, size_t *len)
{
    size_t n = 0;
    int c;

    errno = 0;
    while ((c = getc_unlocked(r->in)) != '\n') {
        if (c == EOF) {
            if (ferror(r->in))
                return read_error(r);
            if (n == 0)
                return 1;
            return input_error(r, "the line has no newline: the input ends inside it "
                               "(truncated dump?)");
        }
        if (n == TEXT_MAX)
            return input_error(r, "line longer than %zu characters where a header or "
                               "end line was expected", TEXT_MAX);
        r->text[n++] = (char)c;
    }
    r->text[n] = '\0';
    *len = n;
    return 0;
}

/* Compares the text line read (n characters) with s. */
static int text_is(const dump_reader *r, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(r->text, s, n) == 0;
}

/* Parses a decimal number of up to 20 digits; returns 0, or -1. */
static int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

/* The first line: VERSION=n, n from 1 to DUMP_VERSION. */
static int read_version(dump_reader *r)
{
    size_t n;
    uint64_t v;
    r->line = 1;
    int rc = read_text(r, &n);
    if (rc == 1)
        return input_error(r, "empty input: not a kvdump dump");
    if (rc != 0)
        return rc;
    if (strncmp(r->text, "VERSION=", 8) != 0 || strlen(r->text) != n)
        return input_error(r, "not a kvdump dump: the first line is not VERSION=n");
    if (parse_u64(r->text + 8, &v) != 0 || v == 0)
        return input_error(r, "bad version \"%.40s\": expected VERSION=%d", r->text + 8,
                           DUMP_VERSION);
    if (v > DUMP_VERSION)
        return input_error(r, "VERSION=%" PRIu64 ": written by a newer kvdump (this kv reads "
                           "VERSION=%d and older)", v, DUMP_VERSION);
    r->hdr.version = (int)v;
    return 0;
}

/* One header line "name=value" (not HEADER=END); seen records the names met. */
static int header_field(dump_reader *r, size_t n, unsigned *seen)
{
    static const char *const names[] = {"format", "compression", "content", "keys", "prefix"};
    char *eq = memchr(r->text, '=', n);
    if (eq == NULL || strlen(r->text) != n)
        return input_error(r, "not a header line (name=value) and not HEADER=END");
    *eq = '\0';
    const char *val = eq + 1;
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(r->text, names[i]) == 0)
            break;
    if (i == sizeof names / sizeof names[0])
        return input_error(r, "unknown header field \"%.40s\" (VERSION=%d knows format, "
                           "compression, content, keys, prefix)", r->text, DUMP_VERSION);
    if (*seen & (1u << i))
        return input_error(r, "%s= given twice", names[i]);
    *seen |= 1u << i;
    dump_header *h = &r->hdr;
    switch (i) {
    case 0:
        if (strcmp(val, "bytevalue") != 0 && strcmp(val, "print") != 0)
            return input_error(r, "format=%.40s: expected bytevalue or print", val);
        h->format = strcmp(val, "print") == 0 ? DUMP_PRINT : DUMP_HEX;
        return 0;
    case 1:
        if (strcmp(val, "none") != 0 && strcmp(val, "lz4") != 0)
            return input_error(r, "compression=%.40s: expected none or lz4", val);
        h->compression = strcmp(val, "lz4") == 0 ? KV_COMPRESS_LZ4 : KV_COMPRESS_NONE;
        return 0;
    case 2:
        if (strcmp(val, "pairs") != 0 && strcmp(val, "keys") != 0)
            return input_error(r, "content=%.40s: expected pairs or keys", val);
        h->content = strcmp(val, "keys") == 0 ? DUMP_KEYS : DUMP_PAIRS;
        return 0;
    case 3:
        if (parse_u64(val, &h->keys) != 0)
            return input_error(r, "keys=%.40s: not a number", val);
        h->has_keys = 1;
        return 0;
    default:
        if (!(*seen & 1u))
            return input_error(r, "prefix= comes before format= (it is written in the format)");
        if ((r->prefix_buf = malloc(KV_MAX_KEY)) == NULL) {
            snprintf(r->err, sizeof r->err, "out of memory");
            return DUMP_ERR_SYS;
        }
        h->prefix = r->prefix_buf;
        const char *why = dump_decode(h->format, val, strlen(val), r->prefix_buf, KV_MAX_KEY,
                                      &h->prefix_len);
        if (why != NULL)
            return input_error(r, "prefix=: %s", why);
        h->has_prefix = 1;
        return 0;
    }
}

int dump_read_header(dump_reader *r)
{
    unsigned seen = 0;
    size_t n;
    int rc = read_version(r);

    r->hdr.format = DUMP_HEX;
    r->hdr.compression = KV_COMPRESS_NONE;
    r->hdr.content = DUMP_PAIRS;
    while (rc == 0) {
        r->line++;
        if ((rc = read_text(r, &n)) == 1)
            return input_error(r, "the input ends in the header, before HEADER=END "
                               "(truncated dump?)");
        if (rc != 0)
            return rc;
        if (text_is(r, n, "HEADER=END"))
            break;
        if (text_is(r, n, "DATA=END") || (n > 0 && r->text[0] == ' '))
            return input_error(r, "data before HEADER=END");
        rc = header_field(r, n, &seen);
    }
    if (rc == 0 && !(seen & 1u))
        return input_error(r, "the header has no format= line");
    return rc;
}

/* A growable output of the decoder: r->key (fixed room) or r->val (grown). */
typedef struct sink {
    uint8_t **buf;   /* where the bytes go */
    size_t *cap;     /* its room; NULL: fixed at max */
    size_t max;      /* the limit: KV_MAX_KEY or KV_MAX_VALUE */
    const char *what; /* "key" or "value", for messages */
} sink;

/* Makes room for one more byte at *len; returns 0 or a DUMP_ERR_*. */
static int sink_room(dump_reader *r, const sink *s, size_t len)
{
    size_t cap = s->cap != NULL ? *s->cap : s->max;
    if (len < cap)
        return 0;
    if (len >= s->max)
        return input_error(r, "%s longer than %zu bytes (the limit of kv)", s->what, s->max);
    uint8_t *nb = grow(*s->buf, s->cap, len + 1, 1, 4096, s->max);
    if (nb == NULL) {
        snprintf(r->err, sizeof r->err, "out of memory for a %s of more than %zu bytes",
                 s->what, len);
        return DUMP_ERR_SYS;
    }
    *s->buf = nb;
    return 0;
}

/* Reads one line that is either a data line (a space, then bytes in the dump's
 * format) or DATA=END. Returns 1 with the bytes in the sink and *len, 0 for
 * DATA=END, or a DUMP_ERR_*. */
static int read_data_line(dump_reader *r, const sink *s, size_t *len)
{
    decoder d = {.format = r->hdr.format};
    size_t n = 0, tn;
    int c, rc;

    r->line++;
    errno = 0;
    if ((c = getc_unlocked(r->in)) != ' ') {
        if (c == EOF && ferror(r->in))
            return read_error(r);
        if (c == EOF)
            return input_error(r, "the input ends before DATA=END (truncated dump?)");
        ungetc(c, r->in);
        if ((rc = read_text(r, &tn)) != 0)
            return rc;
        if (text_is(r, tn, "DATA=END"))
            return 0;
        return input_error(r, "expected a %s line (starting with a space)%s", s->what,
                           strcmp(s->what, "key") == 0 ? " or DATA=END" : "");
    }
    while ((c = getc_unlocked(r->in)) != '\n') {
        if (c == EOF) {
            if (ferror(r->in))
                return read_error(r);
            return input_error(r, "the %s line has no newline: the input ends inside it "
                               "(truncated dump?)", s->what);
        }
        int b = dec_feed(&d, c);
        if (b == -1)
            return input_error(r, "%s: %s", s->what, d.why);
        if (b < 0)
            continue;
        if ((rc = sink_room(r, s, n)) != 0)
            return rc;
        (*s->buf)[n++] = (uint8_t)b;
    }
    if (dec_end(&d) != 0)
        return input_error(r, "%s: %s", s->what, d.why);
    *len = n;
    return 1;
}

/* After DATA=END: the count agrees with keys= and nothing follows. */
static int read_end(dump_reader *r)
{
    errno = 0;
    int c = getc_unlocked(r->in);
    if (c == EOF && ferror(r->in))
        return read_error(r);
    if (c != EOF) {
        r->line++;
        return input_error(r, "text after DATA=END (one dump per input)");
    }
    if (r->hdr.has_keys && r->hdr.keys != r->records)
        return input_error(r, "the header says keys=%" PRIu64 " but %" PRIu64 " key%s "
                           "came before DATA=END", r->hdr.keys, r->records,
                           r->records == 1 ? "" : "s");
    return 0;
}

/* Checks the key just read against the limits, the one before it and the prefix. */
static int check_key(dump_reader *r)
{
    if (r->klen == 0)
        return input_error(r, "empty key (keys are 1 to %u bytes)", KV_MAX_KEY);
    int c = r->records > 0 ? dump_keycmp(r->prev, r->prevlen, r->key, r->klen) : -1;
    if (c >= 0)
        return input_error(r, "key %s the key on line %" PRIu64 " (keys come in ascending "
                           "byte order, each once)", c == 0 ? "repeats" : "sorts before",
                           r->line - (r->hdr.content == DUMP_PAIRS ? 2 : 1));
    if (r->hdr.has_prefix
        && !dump_has_prefix(r->key, r->klen, r->hdr.prefix, r->hdr.prefix_len))
        return input_error(r, "key does not start with the header's prefix=");
    if (r->hdr.has_keys && r->records >= r->hdr.keys)
        return input_error(r, "more keys than the header's keys=%" PRIu64, r->hdr.keys);
    return 0;
}

int dump_read_record(dump_reader *r)
{
    sink ks = {&r->key, NULL, KV_MAX_KEY, "key"};
    sink vs = {&r->val, &r->vcap, KV_MAX_VALUE, "value"};
    int rc;

    if (r->records > 0) { /* the last key becomes the one before */
        uint8_t *t = r->prev;
        r->prev = r->key, r->prevlen = r->klen;
        r->key = t;
    }
    r->klen = r->vlen = 0;
    if ((rc = read_data_line(r, &ks, &r->klen)) == 0)
        return read_end(r);
    if (rc < 0 || (rc = check_key(r)) != 0)
        return rc;
    if (r->hdr.content == DUMP_PAIRS) {
        if ((rc = read_data_line(r, &vs, &r->vlen)) == 0)
            return input_error(r, "DATA=END where the value of the key on line %" PRIu64
                               " was expected", r->line - 1);
        if (rc < 0)
            return rc;
    }
    r->records++;
    return 1;
}

/* ---------------------------------------------------------------------------------
 * 5. Sorted key lists
 * ------------------------------------------------------------------------------ */
int dump_keycmp(const void *a, size_t alen, const void *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

int dump_has_prefix(const void *key, size_t klen, const void *prefix, size_t plen)
{
    return klen >= plen && memcmp(key, prefix, plen) == 0;
}

int dump_keys_add(dump_keys *kl, const void *key, size_t klen)
{
    uint8_t *nb = grow(kl->bytes, &kl->cap, kl->len + klen, 1, 64 * 1024, 0);
    if (nb == NULL)
        return -1;
    kl->bytes = nb;
    dump_keyref *nr = grow(kl->refs, &kl->ncap, kl->n + 1, sizeof *nr, 1024, 0);
    if (nr == NULL)
        return -1;
    kl->refs = nr;
    memcpy(kl->bytes + kl->len, key, klen);
    kl->refs[kl->n].off = kl->len;
    kl->refs[kl->n].klen = (uint32_t)klen;
    kl->n++;
    kl->len += klen;
    return 0;
}

static int ref_cmp(const void *a, const void *b, void *arg)
{
    const dump_keyref *x = a, *y = b;
    const uint8_t *bytes = arg;
    return dump_keycmp(bytes + x->off, x->klen, bytes + y->off, y->klen);
}

void dump_keys_sort(dump_keys *kl)
{
    if (kl->n > 1)
        qsort_r(kl->refs, kl->n, sizeof *kl->refs, ref_cmp, kl->bytes);
}

void dump_keys_free(dump_keys *kl)
{
    free(kl->bytes);
    free(kl->refs);
    memset(kl, 0, sizeof *kl);
}

/* ---------------------------------------------------------------------------------
 * 5. Messages
 * ------------------------------------------------------------------------------ */

void tool_usage_error(const char *prog, const char *usage, const char *msg, const char *arg)
{
    if (msg != NULL)
        fprintf(stderr, "%s: %s%s%s\n", prog, msg, arg ? ": " : "", arg ? arg : "");
    fputs(usage, stderr);
}

void tool_store_error(const char *prog, const char *dir, int rc)
{
    char detail[1024];

    snprintf(detail, sizeof detail, "%s", kv_errmsg());
    if (detail[0] != '\0')
        fprintf(stderr, "%s: %s: %s: %s\n", prog, dir, kv_strerror(rc), detail);
    else
        fprintf(stderr, "%s: %s: %s\n", prog, dir, kv_strerror(rc));
}
