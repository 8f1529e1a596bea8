/*
 * json.c — the one JSON string writer of the tools and kvbench: valid UTF-8 passes,
 * control characters and every byte that is not valid UTF-8 are escaped (json.h says
 * how, and why the mapping can be reversed).
 *
 * Only strings need a writer: numbers, true and false are printed by the callers.
 */
#include "json.h"

#include <string.h>

static const char hexdigits[] = "0123456789abcdef";

size_t jsonw_utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xbf; /* the range of the second byte (Unicode table 3-7) */

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        return 0; /* a continuation byte, 0xc0, 0xc1 (overlong), 0xf5..0xff */
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    /* U+F780..U+F7FF (ef 9e 80 .. ef 9f bf) stand for raw bytes: escape their own. */
    if (c == 0xef && (p[1] == 0x9e || p[1] == 0x9f))
        return 0;
    return len;
}

void jsonw_chars(FILE *f, const void *p, size_t n)
{
    const unsigned char *s = p;
    char buf[4096];
    size_t o = 0;

    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = jsonw_utf8_len(s + i, n - i);
        if (o > sizeof buf - 8) {
            fwrite(buf, 1, o, f);
            o = 0;
        }
        if (len > 1) { /* a valid character beyond ASCII */
            memcpy(buf + o, s + i, len);
            o += len, i += len;
            continue;
        }
        i++;
        const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b"
                        : c == '\f' ? "\\f" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                        : c == '\t' ? "\\t" : NULL;
        if (esc != NULL) {
            buf[o++] = esc[0], buf[o++] = esc[1];
        } else if (len == 1 && c >= 0x20 && c != 0x7f) {
            buf[o++] = (char)c;
        } else { /* a control character (\u00XX) or a raw byte (\uf7XX) */
            memcpy(buf + o, len == 1 ? "\\u00" : "\\uf7", 4);
            o += 4;
            buf[o++] = hexdigits[c >> 4];
            buf[o++] = hexdigits[c & 15];
        }
    }
    fwrite(buf, 1, o, f);
}

void jsonw_string(FILE *f, const void *p, size_t n)
{
    putc('"', f);
    jsonw_chars(f, p, n);
    putc('"', f);
}

void jsonw_cstring(FILE *f, const char *s)
{
    jsonw_string(f, s, strlen(s));
}
