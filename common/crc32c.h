/* crc32c.h - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum stored with every checkpoint dataset.
 *
 * crc32c() uses the SSE4.2 crc32 instruction when the CPU has it and a
 * slice-by-8 table otherwise; both give the same values. The standard check
 * value is crc32c("123456789", 9) == 0xE3069283.
 *
 * Incremental use: crc = crc32c_update(0, a, na); crc = crc32c_update(crc, b, nb)
 * equals crc32c of a followed by b. The pre- and post-inversion is handled
 * inside, so 0 is the starting value and the result is the finished CRC.
 */
#ifndef RT_COMMON_CRC32C_H
#define RT_COMMON_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CRC-32C of n bytes, continuing from a previous result crc (0 to start). */
uint32_t crc32c_update(uint32_t crc, const void *data, size_t n);

static inline uint32_t crc32c(const void *data, size_t n)
{
    return crc32c_update(0, data, n);
}

/* The portable slice-by-8 path, whatever the CPU (for tests and benches). */
uint32_t crc32c_update_sw(uint32_t crc, const void *data, size_t n);

/* 1 when crc32c_update uses the SSE4.2 instruction on this machine. */
int crc32c_hw_available(void);

#ifdef __cplusplus
}
#endif

#endif
