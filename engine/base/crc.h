/*
 * crc.h — CRC32C (Castagnoli), the one checksum of every kv file.
 *
 * Computed by Intel's ISA-L (crc32_iscsi: SSE4.2 / PCLMUL, with a table fallback on
 * other CPUs). kv_crc32c() is the standard CRC-32C (init ~0, final xor ~0): the check
 * value of "123456789" is 0xE3069283. kv_crc32c_extend() continues a running CRC.
 */
#ifndef KV_CRC_H
#define KV_CRC_H

#include <isa-l/crc.h>
#include <stddef.h>
#include <stdint.h>

static inline uint32_t kv_crc32c_extend(uint32_t crc, const void *p, size_t n)
{
    /* crc32_iscsi takes an int length: feed very large buffers in pieces. */
    uint32_t c = ~crc;
    const unsigned char *b = (const unsigned char *)p;
    while (n > 0) {
        size_t step = n > (1u << 30) ? (1u << 30) : n;
        /* ISA-L's prototype lacks const; it does not write the buffer. */
        c = crc32_iscsi((unsigned char *)(uintptr_t)b, (int)step, c);
        b += step;
        n -= step;
    }
    return ~c;
}

static inline uint32_t kv_crc32c(const void *p, size_t n)
{
    return kv_crc32c_extend(0, p, n);
}

#endif
