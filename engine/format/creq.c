/*
 * creq.c — the compaction request and result files (layout in creq.h): the one
 * encoder and the one parser, used by the writer (db/request.c) and by kvcompact.
 *
 * Sections: fields (numbers, ids, the escaped message), records (a line with its
 * CRC), the request file, the result file. The parser trusts nothing: every length
 * is checked against the bytes given, numbers against overflow, and a file that is
 * not exactly what a writer of this format writes is garbage, never a crash.
 */
#include "format/creq.h"

#include "base/crc.h"
#include "format/format.h"

#include <stdio.h>
#include <string.h>

#define LINE_MAX_BYTES 4096 /* a record line, escaped message included */

/* ---- fields ------------------------------------------------------------------------ */

int creq_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > CREQ_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                 || c == '.' || c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

/* Parses n decimal digits (a leading '-' when neg_ok) into *v. 0, or -1. */
static int parse_num(const char *s, size_t n, int neg_ok, uint64_t *v, int *neg)
{
    uint64_t x = 0;
    size_t i = 0;
    *neg = 0;
    if (neg_ok && n > 0 && s[0] == '-') {
        *neg = 1;
        i = 1;
    }
    if (i == n || n - i > 20)
        return -1;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

/* Appends msg to dst (at *at, below cap) escaped: \\, \n, \xHH for other control
 * bytes. 0, or -1 when it does not fit. */
static int escape(char *dst, size_t cap, size_t *at, const char *msg)
{
    for (const unsigned char *p = (const unsigned char *)msg; *p != '\0'; p++) {
        char tmp[5];
        size_t k;
        if (*p == '\\')
            k = (size_t)snprintf(tmp, sizeof tmp, "\\\\");
        else if (*p == '\n')
            k = (size_t)snprintf(tmp, sizeof tmp, "\\n");
        else if (*p < 0x20 || *p == 0x7f)
            k = (size_t)snprintf(tmp, sizeof tmp, "\\x%02x", *p);
        else
            k = (size_t)snprintf(tmp, sizeof tmp, "%c", *p);
        if (*at + k >= cap)
            return -1;
        memcpy(dst + *at, tmp, k);
        *at += k;
    }
    dst[*at] = '\0';
    return 0;
}


/* Undoes escape: s[0..n) into out (cap bytes, NUL-terminated, cut to fit). 0, or -1
 * on a bad escape. */
static int unescape(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\') {
            if (i + 1 >= n)
                return -1;
            char e = s[++i];
            if (e == '\\') {
                c = '\\';
            } else if (e == 'n') {
                c = '\n';
            } else if (e == 'x' && i + 2 < n && kv_hex_digit(s[i + 1]) >= 0 && kv_hex_digit(s[i + 2]) >= 0) {
                c = (char)(kv_hex_digit(s[i + 1]) * 16 + kv_hex_digit(s[i + 2]));
                i += 2;
            } else {
                return -1;
            }
        }
        if (o + 1 < cap)
            out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* ---- records ----------------------------------------------------------------------- */

/* Finishes a record: body (len bytes) becomes "crc=XXXXXXXX body\n" in buf. Returns
 * the line's length, or 0 when it does not fit. */
static size_t seal_line(const char *body, size_t len, char *buf, size_t cap)
{
    if (len + 14 + 1 > cap)
        return 0;
    int n = snprintf(buf, cap, "crc=%08x ", (unsigned)kv_crc32c(body, len));
    memcpy(buf + n, body, len);
    buf[(size_t)n + len] = '\n';
    buf[(size_t)n + len + 1] = '\0';
    return (size_t)n + len + 1;
}

/* One field of a record, as the parser hands it to a record's reader. */
typedef struct field {
    const char *name, *val;
    size_t nlen, vlen;
} field;

static int is_field(const field *f, const char *name)
{
    return f->nlen == strlen(name) && memcmp(f->name, name, f->nlen) == 0;
}

/* Splits the record line s[0..n) (no newline) into fields after checking its CRC,
 * calling fn for each. 0, or -1 when the line is garbage or fn says so. */
static int parse_line(const char *s, size_t n, int (*fn)(void *arg, const field *f), void *arg)
{
    if (n < 14 || memcmp(s, "crc=", 4) != 0 || s[12] != ' ')
        return -1;
    uint32_t crc = 0;
    for (int i = 4; i < 12; i++) {
        int h = kv_hex_digit(s[i]);
        if (h < 0 || (s[i] >= 'A' && s[i] <= 'F'))
            return -1;
        crc = crc << 4 | (uint32_t)h;
    }
    const char *p = s + 13, *end = s + n;
    if (kv_crc32c(p, (size_t)(end - p)) != crc)
        return -1;
    while (p < end) {
        field f = {.name = p};
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq == NULL || eq == p)
            return -1;
        f.nlen = (size_t)(eq - p);
        f.val = eq + 1;
        const char *sp = is_field(&f, "msg") ? end : memchr(f.val, ' ', (size_t)(end - f.val));
        if (sp == NULL)
            sp = end;
        f.vlen = (size_t)(sp - f.val);
        if (memchr(f.name, ' ', f.nlen) != NULL || fn(arg, &f) != 0)
            return -1;
        p = sp < end ? sp + 1 : end;
        if (sp < end && p == end)
            return -1; /* a trailing space */
    }
    return 0;
}

/* A field's value as an unsigned number into *v. 0, or -1. */
static int field_u64(const field *f, uint64_t *v)
{
    int neg;
    return parse_num(f->val, f->vlen, 0, v, &neg);
}

static int field_id(const field *f, char *id)
{
    if (f->vlen == 0 || f->vlen > CREQ_ID_MAX)
        return -1;
    memcpy(id, f->val, f->vlen);
    id[f->vlen] = '\0';
    return creq_id_valid(id) ? 0 : -1;
}

/* ---- the request file -------------------------------------------------------------- */

size_t creq_request_encode(const creq_request *r, char *buf, size_t cap)
{
    char body[256];
    if (!creq_id_valid(r->id) || r->ratio_ppm > 1000000 || r->pid < 0)
        return 0;
    int n = snprintf(body, sizeof body, "id=%s pid=%ld ratio_ppm=%u", r->id, r->pid,
                     (unsigned)r->ratio_ppm);
    size_t magic = strlen(CREQ_MAGIC_REQ) + 1;
    if (n < 0 || (size_t)n >= sizeof body || cap <= magic)
        return 0;
    memcpy(buf, CREQ_MAGIC_REQ "\n", magic);
    size_t line = seal_line(body, (size_t)n, buf + magic, cap - magic);
    return line == 0 ? 0 : magic + line;
}

static int request_field(void *arg, const field *f)
{
    creq_request *r = arg;
    uint64_t v;
    if (is_field(f, "id"))
        return field_id(f, r->id);
    if (is_field(f, "pid")) {
        if (field_u64(f, &v) != 0 || v > 0x7fffffff)
            return -1;
        r->pid = (long)v;
    } else if (is_field(f, "ratio_ppm")) {
        if (field_u64(f, &v) != 0 || v > 1000000)
            return -1;
        r->ratio_ppm = (uint32_t)v;
    }
    return 0; /* a field this version does not know */
}

int creq_request_parse(const char *buf, size_t n, creq_request *out)
{
    size_t magic = strlen(CREQ_MAGIC_REQ);
    memset(out, 0, sizeof *out);
    if (n > CREQ_REQ_MAX || n < magic + 2 || memcmp(buf, CREQ_MAGIC_REQ, magic) != 0
        || buf[magic] != '\n' || buf[n - 1] != '\n')
        return -1;
    const char *line = buf + magic + 1;
    size_t len = n - magic - 2; /* without its newline */
    if (memchr(line, '\n', len) != NULL || parse_line(line, len, request_field, out) != 0
        || out->id[0] == '\0') {
        memset(out, 0, sizeof *out);
        return -1;
    }
    return 0;
}

/* ---- the result file --------------------------------------------------------------- */

static const char *state_name(int state)
{
    switch (state) {
    case CREQ_RUNNING: return "running";
    case CREQ_DONE: return "done";
    case CREQ_STOPPED: return "stopped";
    default: return NULL;
    }
}

size_t creq_result_encode(const creq_result *r, char *buf, size_t cap)
{
    char body[LINE_MAX_BYTES];
    const char *st = state_name(r->state);
    if (!creq_id_valid(r->id) || st == NULL)
        return 0;
    int n = snprintf(body, sizeof body,
                     "id=%s state=%s status=%d pid=%ld pass=%llu read=%llu total=%llu "
                     "before=%llu after=%llu passes=%llu dropped=%llu tombs=%llu "
                     "bytes_read=%llu bytes_written=%llu us=%llu msg=",
                     r->id, st, r->status, r->pid < 0 ? 0 : r->pid,
                     (unsigned long long)r->pass, (unsigned long long)r->read,
                     (unsigned long long)r->total, (unsigned long long)r->disk_before,
                     (unsigned long long)r->disk_after, (unsigned long long)r->passes,
                     (unsigned long long)r->dropped, (unsigned long long)r->tombs,
                     (unsigned long long)r->bytes_read, (unsigned long long)r->bytes_written,
                     (unsigned long long)r->us);
    if (n < 0 || (size_t)n >= sizeof body)
        return 0;
    size_t at = (size_t)n;
    char msg[CREQ_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", r->msg); /* NUL-terminated, whatever r holds */
    if (escape(body, sizeof body, &at, msg) != 0)
        return 0;
    return seal_line(body, at, buf, cap);
}

/* The result's number fields, by name. */
static uint64_t *result_num(creq_result *r, const field *f)
{
    static const struct {
        const char *name;
        size_t off;
    } nums[] = {
        {"pass", offsetof(creq_result, pass)},
        {"read", offsetof(creq_result, read)},
        {"total", offsetof(creq_result, total)},
        {"before", offsetof(creq_result, disk_before)},
        {"after", offsetof(creq_result, disk_after)},
        {"passes", offsetof(creq_result, passes)},
        {"dropped", offsetof(creq_result, dropped)},
        {"tombs", offsetof(creq_result, tombs)},
        {"bytes_read", offsetof(creq_result, bytes_read)},
        {"bytes_written", offsetof(creq_result, bytes_written)},
        {"us", offsetof(creq_result, us)},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        if (is_field(f, nums[i].name))
            return (uint64_t *)(void *)((char *)r + nums[i].off);
    return NULL;
}

static int result_field(void *arg, const field *f)
{
    creq_result *r = arg;
    uint64_t v, *num;
    int neg;
    if (is_field(f, "id"))
        return field_id(f, r->id);
    if (is_field(f, "state")) {
        for (int s = CREQ_RUNNING; s <= CREQ_STOPPED; s++)
            if (f->vlen == strlen(state_name(s)) && memcmp(f->val, state_name(s), f->vlen) == 0)
                r->state = s;
        return r->state != 0 ? 0 : -1;
    }
    if (is_field(f, "status")) {
        if (parse_num(f->val, f->vlen, 1, &v, &neg) != 0 || v > 0x7fffffff)
            return -1;
        r->status = neg ? -(int)v : (int)v;
    } else if (is_field(f, "pid")) {
        if (field_u64(f, &v) != 0 || v > 0x7fffffff)
            return -1;
        r->pid = (long)v;
    } else if (is_field(f, "msg")) {
        return unescape(f->val, f->vlen, r->msg, sizeof r->msg);
    } else if ((num = result_num(r, f)) != NULL) {
        return field_u64(f, num);
    }
    return 0; /* a field this version does not know */
}

int creq_results_parse(const char *buf, size_t n, creq_result *out, int max)
{
    size_t magic = strlen(CREQ_MAGIC_RES);
    int count = 0;
    if (n < magic + 1 || memcmp(buf, CREQ_MAGIC_RES, magic) != 0 || buf[magic] != '\n')
        return -1;
    const char *p = buf + magic + 1, *end = buf + n;
    while (p < end && count < max) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            break; /* no newline: not a whole record */
        creq_result *r = &out[count];
        memset(r, 0, sizeof *r);
        if (parse_line(p, (size_t)(nl - p), result_field, r) == 0 && r->id[0] != '\0'
            && r->state != 0)
            count++;
        p = nl + 1;
    }
    return count;
}
