/*
 * json.h — the one JSON string writer of the tools and kvbench (kv stats --json,
 * kvdump --all --json and kvdump --json FILE, kvcheck --json, kvbench --json).
 *
 * The output is always valid JSON (RFC 8259) in valid UTF-8, whatever the bytes
 * given: a path, a key or a note may hold any byte but NUL.
 *
 *   - valid UTF-8 passes through as it is, except the characters below;
 *   - '"' and '\' are escaped as \" and \\; \b \f \n \r \t have their short escapes;
 *     every other control character (U+0000..U+001F, U+007F) is \u00XX;
 *   - every byte that is not part of a valid UTF-8 character (a lone continuation
 *     byte, a cut or overlong sequence, an encoded surrogate, 0xC0, 0xC1, 0xF5..0xFF)
 *     becomes \uf7XX, XX being the byte's value (0x80..0xFF): a character of the
 *     Private Use Area that no byte of valid text turns into, because every byte of
 *     a character U+F780..U+F7FF in the input is written the same way.
 *
 * So the mapping is reversible: a reader gets the exact bytes back by turning each
 * character U+F780..U+F7FF of the decoded string into the one byte 0x80..0xFF and
 * every other character into its UTF-8 encoding (decode_bytes in
 * tests/test_json.c). Two different byte strings never give the same JSON string.
 * docs/man/kvcheck.1 (and kvdump.1, kv.1, kvbench.1) say the same for users.
 */
#ifndef KV_TOOLS_JSON_H
#define KV_TOOLS_JSON_H

#include <stddef.h>
#include <stdio.h>

/* The first character of the block that stands for bytes that are not UTF-8:
 * byte 0xXX becomes U+F700 + 0xXX. */
#define JSONW_RAW_BYTE_BASE 0xf700u

/* Writes the n bytes at p as the characters of a JSON string, without quotes. */
void jsonw_chars(FILE *f, const void *p, size_t n);

/* Writes the n bytes at p as a JSON string, quotes included (a NUL is \u0000). */
void jsonw_string(FILE *f, const void *p, size_t n);

/* Writes the NUL-terminated text s as a JSON string, quotes included. */
void jsonw_cstring(FILE *f, const char *s);

/* Returns the length (1..4) of the valid UTF-8 character at p (n bytes left), or 0
 * when the byte at p does not start one. Characters U+F780..U+F7FF count as not
 * valid here (see above). */
size_t jsonw_utf8_len(const unsigned char *p, size_t n);

#endif /* KV_TOOLS_JSON_H */
