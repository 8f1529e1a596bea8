/*
 * fuzz.h — what the harnesses in fuzz/ share.
 *
 * Every harness (fuzz/<name>_fuzzer.c) defines LLVMFuzzerTestOneInput and checks one
 * property; it links either with libFuzzer (make fuzz: clang -fsanitize=fuzzer) or
 * with fuzz/standalone.c (make test: a plain program that replays files and
 * directories). Sections:
 *   1. The libFuzzer entry points and FUZZ_CHECK, which reports a broken invariant
 *      and aborts, so libFuzzer keeps the input and the replay program fails.
 *   2. Checksum repair. Nearly every mutation of a stored image breaks a CRC, so a
 *      harness would only ever test the CRC check. Each harness therefore decodes an
 *      input twice: as given, and with its CRCs recomputed by these functions, which
 *      lets mutations reach the checks behind the checksum (lengths, order, batches).
 *      They walk the image the way its reader does and never trust a length either.
 *   3. A reader of structured input (integers and byte strings cut from the input;
 *      zero or empty once it is used up).
 */
#ifndef KV_FUZZ_H
#define KV_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* ---- 1. entry points and checks --------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Reports "file:line: invariant broken: expr: message" on stderr and aborts. */
void fuzz_fail(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));

#define FUZZ_CHECK(cond, ...)                                          \
    do {                                                               \
        if (!(cond))                                                   \
            fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);         \
    } while (0)

/* ---- 2. checksum repair (in place, on the harness's own copy) --------------------- */

/* Recomputes the CRC of a 16-byte file header (bytes 12..15) when len >= 16. */
void fuzz_fix_file_header(uint8_t *p, size_t len);

/* Walks entries from off as the scanner does and recomputes the CRC of every entry
 * whose header is sane and which fits in len; stops at the first that is not.
 * Returns the offset where it stopped. */
size_t fuzz_fix_entries(uint8_t *p, size_t len, size_t off);

/* A record file (segment or WAL): header, then entries. */
void fuzz_fix_record_file(uint8_t *p, size_t len);

/* MANIFEST: header CRC and, when the size matches the segment count, the body CRC. */
void fuzz_fix_manifest(uint8_t *p, size_t len);

/* Hint file: header CRC and trailer CRC. */
void fuzz_fix_hint(uint8_t *p, size_t len);

/* Runs check on an exact-size heap copy of the input (one byte too far is an ASan
 * report), then, when fix changes the copy (checksums recomputed), once more, so
 * mutations also reach the checks behind the checksums. */
void fuzz_check_fixed(const uint8_t *data, size_t size, void (*check)(const uint8_t *, size_t),
                      void (*fix)(uint8_t *, size_t));

/* ---- 3. structured input ---------------------------------------------------------- */

typedef struct fuzz_reader {
    const uint8_t *p; /* next unread byte */
    size_t left;      /* bytes left */
} fuzz_reader;

uint8_t fuzz_u8(fuzz_reader *r);
uint16_t fuzz_u16(fuzz_reader *r);
uint32_t fuzz_u32(fuzz_reader *r);
uint64_t fuzz_u64(fuzz_reader *r);
/* Up to n bytes (fewer when the input ends): returns the pointer, *got the count. */
const uint8_t *fuzz_bytes(fuzz_reader *r, size_t n, size_t *got);

#endif
