/*
 * test_json.c — the JSON the tools print is valid JSON whatever the bytes of a path,
 * a file name or a key, and its strings give those bytes back (tools/json.h says how:
 * valid UTF-8 passes, a byte that is not UTF-8 becomes U+F700 + the byte).
 *
 * Every document is parsed by jansson with no leniency (json_loads, flags 0: valid
 * UTF-8, one document, nothing after it); the listings of kvdump, one object per
 * line, are parsed line by line.
 *
 * What is checked:
 *   - the writer itself (tools/json.c, linked into kvtest): ASCII, controls, quotes,
 *     valid UTF-8 of 2, 3 and 4 bytes, a lone 0xff, a lone 0xc3, an overlong 0xc0 0xaf,
 *     a cut 4-byte sequence, an encoded surrogate, the reserved block U+F780..U+F7FF
 *     itself, a NUL, and random byte strings: each parses and decodes back to the
 *     exact bytes, and two different byte strings never give the same string;
 *   - kvcheck --json, kvdump --all --json, kvdump --json FILE, kv stats --json and
 *     kvbench --json on a store whose directory's name holds those bytes, with keys
 *     and a foreign file name holding them too: every document parses, the path and
 *     file names decode back to their bytes, every key is listed (key_hex) exactly.
 *
 * Sections:
 *   1. Helpers: decoding a string back to bytes, running a tool
 *   2. The writer
 *   3. The tools
 */
#include "kvtest.h"

#include "../tools/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>

/* ---------------------------------------------------------------------------------
 * 1. Helpers
 * ------------------------------------------------------------------------------ */

/* The bytes a JSON string stands for (tools/json.h): each character U+F780..U+F7FF
 * is the byte 0x80..0xFF, every other character its UTF-8 bytes. s is jansson's
 * decoded string (UTF-8, n bytes); out gets at most n bytes. Returns their number. */
static size_t decode_bytes(const char *s, size_t n, uint8_t *out)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == 0xef && i + 2 < n && (p[i + 1] == 0x9e || p[i + 1] == 0x9f)) {
            unsigned cp = 0xf000u | ((p[i + 1] & 0x3fu) << 6) | (p[i + 2] & 0x3fu);
            out[o++] = (uint8_t)(cp - JSONW_RAW_BYTE_BASE);
            i += 2;
        } else {
            out[o++] = p[i];
        }
    }
    return o;
}

/* 1 when the JSON string v decodes back to the n bytes at want. */
static int decodes_to(const json_t *v, const void *want, size_t n)
{
    if (!json_is_string(v))
        return 0;
    size_t len = json_string_length(v);
    uint8_t *b = malloc(len + 1);
    KVT_CHECK_FATAL(b != NULL, "out of memory");
    size_t got = decode_bytes(json_string_value(v), len, b);
    int same = got == n && memcmp(b, want, n) == 0;
    free(b);
    return same;
}

/* Writes the n bytes at p with jsonw_string into a malloc'd, NUL-terminated text. */
static char *write_string(const void *p, size_t n)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    KVT_CHECK_FATAL(f != NULL, "open_memstream");
    jsonw_string(f, p, n);
    KVT_CHECK_FATAL(fclose(f) == 0, "open_memstream: write failed");
    return text;
}

/* Parses text, a JSON string, strictly (a NUL allowed only when asked). */
static json_t *parse_string(const char *text, int allow_nul)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_DECODE_ANY | (allow_nul ? JSON_ALLOW_NUL : 0), &err);
    KVT_CHECK(j != NULL && json_is_string(j), "not a valid JSON string: %s: %.200s", err.text,
              text);
    return j;
}


/* ---------------------------------------------------------------------------------
 * 2. The writer
 * ------------------------------------------------------------------------------ */

/* Byte strings that are no UTF-8, or nearly, and what they must look like. */
static const struct sample {
    const char *what;  /* for messages */
    const char *bytes; /* the input */
    size_t n;          /* its length */
    const char *json;  /* the exact JSON text written, quotes included */
} samples[] = {
    {"ascii", "plain/path-1.seg", 16, "\"plain/path-1.seg\""},
    {"quote, backslash, slash", "a\"b\\c/d", 7, "\"a\\\"b\\\\c/d\""},
    {"controls", "\n\t\r\b\f\x01\x1f\x7f", 8, "\"\\n\\t\\r\\b\\f\\u0001\\u001f\\u007f\""},
    {"a NUL", "a\0b", 3, "\"a\\u0000b\""},
    {"valid 2, 3, 4 bytes", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9,
     "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""},
    {"0xff", "a\xff" "b", 3, "\"a\\uf7ffb\""},
    {"a lone 0xc3", "\xc3", 1, "\"\\uf7c3\""},
    {"0xc3 then ASCII", "\xc3z", 2, "\"\\uf7c3z\""},
    {"overlong 0xc0 0xaf", "\xc0\xaf", 2, "\"\\uf7c0\\uf7af\""},
    {"a cut 4-byte sequence", "\xf0\x9f\x98", 3, "\"\\uf7f0\\uf79f\\uf798\""},
    {"a cut 4-byte sequence, then ASCII", "\xf0\x9f\x98x", 4, "\"\\uf7f0\\uf79f\\uf798x\""},
    {"an encoded surrogate", "\xed\xa0\x80", 3, "\"\\uf7ed\\uf7a0\\uf780\""},
    {"past U+10FFFF", "\xf4\x90\x80\x80", 4, "\"\\uf7f4\\uf790\\uf780\\uf780\""},
    {"a lone continuation byte", "\x80", 1, "\"\\uf780\""},
    {"U+F7FF itself (the reserved block)", "\xef\x9f\xbf", 3, "\"\\uf7ef\\uf79f\\uf7bf\""},
    {"U+F780 itself", "\xef\x9e\x80", 3, "\"\\uf7ef\\uf79e\\uf780\""},
    {"U+F77F, just below the block", "\xef\x9d\xbf", 3, "\"\xef\x9d\xbf\""},
    {"U+F800, just above", "\xef\xa0\x80", 3, "\"\xef\xa0\x80\""},
};

static void check_round_trip(const char *what, const void *p, size_t n)
{
    char *text = write_string(p, n);
    json_t *j = parse_string(text, memchr(p, 0, n) != NULL);
    KVT_CHECK(j != NULL && decodes_to(j, p, n), "%s: %s does not decode back", what, text);
    json_decref(j);
    free(text);
}

static void test_writer_samples(void)
{
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        const struct sample *s = &samples[i];
        char *text = write_string(s->bytes, s->n);
        KVT_CHECK(strcmp(text, s->json) == 0, "%s: wrote %s, want %s", s->what, text, s->json);
        free(text);
        check_round_trip(s->what, s->bytes, s->n);
    }
    /* jsonw_cstring stops at the NUL; jsonw_chars writes no quotes */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    KVT_CHECK_FATAL(f != NULL, "open_memstream");
    jsonw_cstring(f, "x\xffy");
    jsonw_chars(f, "\xc3", 1);
    fclose(f);
    KVT_CHECK(strcmp(text, "\"x\\uf7ffy\"\\uf7c3") == 0, "jsonw_cstring, jsonw_chars: %s", text);
    free(text);
}

/* Random byte strings, biased towards bytes >= 0x80 and the reserved block: each
 * round-trips, and the strings of different inputs differ once decoded. */
static void test_writer_random(void)
{
    kvt_rng rng;
    kvt_rng_seed(&rng, 0x6a736f6e);
    unsigned rounds = kvt_scaled(20000, 2000);
    static const uint8_t pieces[][4] = {
        {0xef, 0x9e, 0x80}, {0xef, 0x9f, 0xbf}, {0xc3, 0xa9}, {0xf0, 0x9f, 0x98, 0x80},
        {0xed, 0xa0, 0x80}, {0xc0, 0xaf}, {0xe2, 0x82}, {0xf4, 0x8f, 0xbf, 0xbf},
    };
    for (unsigned r = 0; r < rounds; r++) {
        uint8_t b[48];
        size_t n = 0, want = kvt_rng_below(&rng, 40);
        while (n < want) {
            uint64_t x = kvt_rng_below(&rng, 4);
            if (x == 0) {
                const uint8_t *pc = pieces[kvt_rng_below(&rng, 8)];
                size_t pl = pc[3] ? 4 : pc[2] ? 3 : 2;
                memcpy(b + n, pc, pl);
                n += pl;
            } else {
                b[n++] = (uint8_t)(x == 1 ? kvt_rng_below(&rng, 128) : 0x80 + kvt_rng_below(&rng, 128));
            }
        }
        char what[32];
        snprintf(what, sizeof what, "random string %u", r);
        check_round_trip(what, b, n);
    }
    /* injective where a lossy mapping would not be: 0xe9 (Latin-1 e-acute) against
     * its UTF-8 encoding, and 0xff against the character U+F7FF */
    char *a = write_string("caf\xe9", 4), *b = write_string("caf\xc3\xa9", 5);
    char *c = write_string("\xff", 1), *d = write_string("\xef\x9f\xbf", 3);
    json_t *ja = parse_string(a, 0), *jb = parse_string(b, 0);
    json_t *jc = parse_string(c, 0), *jd = parse_string(d, 0);
    KVT_CHECK(!json_equal(ja, jb) && !json_equal(jc, jd), "distinct inputs gave equal strings: "
              "%s %s, %s %s", a, b, c, d);
    json_decref(ja), json_decref(jb), json_decref(jc), json_decref(jd);
    free(a), free(b), free(c), free(d);
}

/* ---------------------------------------------------------------------------------
 * 3. The tools
 * ------------------------------------------------------------------------------ */

/* The bytes the tests put into names and keys: none of them is UTF-8 as a whole. */
static const char bad_name[] = "st\xff-\xc3-\xc0\xaf-\xf0\x9f\x98";
static const char *const bad_keys[] = {"k\xff", "k\xc3", "k\xc0\xaf", "k\xf0\x9f\x98",
                                       "k\xef\x9f\xbf", "k\xc3\xa9"};
#define NKEYS (sizeof bad_keys / sizeof bad_keys[0])
static const char foreign[] = "notes\xff\xc3.txt";

/* The path of a sealed segment of dir (tracked), or NULL. */
static char *a_segment(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char *p = NULL;
    while (d != NULL && p == NULL && (de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".seg") == 0)
            p = kvt_path(dir, de->d_name);
    }
    if (d != NULL)
        closedir(d);
    KVT_CHECK_FATAL(p != NULL, "no segment in %s", dir);
    return p;
}

/* A store under a directory named with bad_name, its keys bad_keys, one segment
 * sealed, and a foreign file whose name is no UTF-8. Returns its path. */
static char *bad_store(void)
{
    char *top = kvt_dir_new("json");
    char *dir = kvt_path(top, bad_name);
    kv_options o;
    kv_db *db;
    kvt_options(&o, KV_SYNC_NONE, KV_IO_AUTO, 4096);
    o.auto_compact = 0; /* every record stays listed */
    KVT_RC_FATAL(kvt_open(dir, &o, &db), KV_OK);
    char v[200];
    memset(v, 'v', sizeof v);
    for (int round = 0; round < 20; round++)
        for (size_t i = 0; i < NKEYS; i++)
            KVT_RC_FATAL(kv_put(db, bad_keys[i], strlen(bad_keys[i]), v, sizeof v), KV_OK);
    KVT_RC_FATAL(kvt_close(db), KV_OK);
    kvt_spill(kvt_path(dir, foreign), "x", 1);
    return dir;
}

static void test_kvcheck_json(void)
{
    char *dir = bad_store();
    static char out[65536];
    int rc = kvt_runf(out, sizeof out, KVT_STDOUT, "'%s/kvcheck' --json '%s' 2>/dev/null", kvt_bin(), dir);
    KVT_CHECK_FATAL(rc == 0, "kvcheck --json: exit %d: %s", rc, out);
    json_t *j = kvt_json_parse(out);
    KVT_CHECK_FATAL(json_is_object(j), "kvcheck --json: not one object: %s", out);
    KVT_CHECK(decodes_to(json_object_get(j, "path"), dir, strlen(dir)),
              "kvcheck --json: path %s is not %s", kvt_json_str(j, "path"), dir);
    KVT_CHECK(json_is_true(json_object_get(j, "clean")) && kvt_json_int(j, "records") > 0,
              "kvcheck --json: %s", out);
    json_decref(j);

    /* a single file under that directory, as kvcheck FILE */
    char *seg = a_segment(dir);
    rc = kvt_runf(out, sizeof out, KVT_STDOUT, "'%s/kvcheck' --json '%s' 2>/dev/null", kvt_bin(), seg);
    j = kvt_json_parse(out);
    KVT_CHECK(rc == 0 && json_is_object(j) && decodes_to(json_object_get(j, "path"), seg,
                                                          strlen(seg)),
              "kvcheck --json FILE: exit %d: %s", rc, out);
    json_decref(j);
}

static void test_kvdump_json(void)
{
    char *dir = bad_store();
    char *js = kvt_path(kvt_dir_new("json-out"), "all.json");
    char out[4096];
    int rc = kvt_runf(out, sizeof out, KVT_STDOUT, "'%s/kvdump' --all --json '%s' > '%s' 2>/dev/null", kvt_bin(),
                 dir, js);
    KVT_CHECK_FATAL(rc == 0, "kvdump --all --json: exit %d: %s", rc, out);
    size_t len;
    uint8_t *p = kvt_slurp(js, &len);
    int seen[NKEYS] = {0}, foreign_seen = 0, lines = 0;
    for (char *line = (char *)p, *end = (char *)p + len; line < end; lines++) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        KVT_CHECK_FATAL(nl != NULL, "the listing's last line has no newline");
        *nl = '\0';
        json_t *o = kvt_json_parse(line);
        KVT_CHECK_FATAL(json_is_object(o), "not one JSON object: %.200s", line);
        foreign_seen += decodes_to(json_object_get(o, "file"), foreign, strlen(foreign));
        const char *hex = kvt_json_str(o, "key_hex");
        for (size_t i = 0; i < NKEYS && strcmp(kvt_json_str(o, "what"), "record") == 0; i++) {
            char want[32] = "";
            for (const char *k = bad_keys[i]; *k; k++)
                snprintf(want + strlen(want), sizeof want - strlen(want), "%02x", (uint8_t)*k);
            seen[i] += strcmp(hex, want) == 0;
        }
        json_decref(o);
        line = nl + 1;
    }
    free(p);
    KVT_CHECK(foreign_seen == 1, "the foreign file named %d times (decoded), want 1",
              foreign_seen);
    for (size_t i = 0; i < NKEYS; i++)
        KVT_CHECK(seen[i] >= 20, "key %zu listed %d times by key_hex, want >= 20", i, seen[i]);

    /* kvdump --json FILE prints the file's whole path: it decodes back */
    char *seg = a_segment(dir);
    rc = kvt_runf(out, sizeof out, KVT_STDOUT, "'%s/kvdump' --json '%s' 2>/dev/null", kvt_bin(), seg);
    char *nl = strchr(out, '\n'); /* its first line: the file object */
    if (nl != NULL)
        *nl = '\0';
    json_t *o = kvt_json_parse(out);
    KVT_CHECK(rc == 0 && json_is_object(o) && decodes_to(json_object_get(o, "file"), seg,
                                                         strlen(seg)),
              "kvdump --json FILE: exit %d: %s", rc, out);
    json_decref(o);
}

static void test_stats_and_bench_json(void)
{
    char *dir = bad_store();
    static char out[65536];
    int rc = kvt_runf(out, sizeof out, KVT_STDOUT, "'%s/kv' -d '%s' stats --json 2>/dev/null", kvt_bin(), dir);
    json_t *j = kvt_json_parse(out);
    KVT_CHECK(rc == 0 && json_is_object(j) && kvt_json_int(j, "keys") == (long long)NKEYS
                  && json_is_string(json_object_get(j, "io_backend_note")),
              "kv stats --json: exit %d: %s", rc, out);
    json_decref(j);

    /* kvbench --json names its directory in the header; every line parses */
    char *bdir = kvt_path(kvt_dir_new("json-bench"), bad_name);
    rc = kvt_runf(out, sizeof out, KVT_STDOUT, "'%s/kvbench' --json --num 200 --benchmarks fillseq --db '%s' "
             "2>/dev/null", kvt_bin(), bdir);
    KVT_CHECK_FATAL(rc == 0, "kvbench --json: exit %d: %s", rc, out);
    int lines = 0, dir_ok = 0;
    for (char *line = out, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1, lines++) {
        *nl = '\0';
        json_t *o = kvt_json_parse(line);
        KVT_CHECK(json_is_object(o), "kvbench --json: not one object: %.200s", line);
        dir_ok += decodes_to(json_object_get(o, "db"), bdir, strlen(bdir));
        json_decref(o);
    }
    KVT_CHECK(lines == 2 && dir_ok == 1, "kvbench --json: %d lines, db decoded %d times:\n%s",
              lines, dir_ok, out);
}

static const kvt_test json_tests[] = {
    {"writer: controls, quotes, bytes that are no UTF-8, the reserved block: exact text, "
     "decodes back", test_writer_samples},
    {"writer: random byte strings round-trip; distinct inputs stay distinct",
     test_writer_random},
    {"kvcheck --json on a path that is no UTF-8: strict JSON, the path decodes back",
     test_kvcheck_json},
    {"kvdump --all --json and FILE: strict JSON lines, file names and keys identified",
     test_kvdump_json},
    {"kv stats --json and kvbench --json beside a path that is no UTF-8: strict JSON",
     test_stats_and_bench_json},
    {NULL, NULL},
};

void kvt_register_json(void)
{
    kvt_add_suite("json", json_tests);
}
