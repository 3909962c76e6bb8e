/* crc32c.c - CRC-32C: SSE4.2 crc32 instruction (three streams) when available, slice-by-8
 * tables otherwise. Checkpoints checksum every byte they write and read, so
 * this must run well above disk speed (several GB/s). */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "crc32c.c reads 8-byte words as little-endian; port load_le64 first"
#endif

#define CRC32C_POLY 0x82F63B78u /* Castagnoli, bit-reflected */

static uint32_t crc_table[8][256];
static pthread_once_t crc_table_once = PTHREAD_ONCE_INIT;

/* table[0] is the classic byte-at-a-time table; table[k][b] is the CRC of
 * byte b followed by k zero bytes, so eight bytes fold in one step. */
static void crc_table_build(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1u)));
        crc_table[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++)
        for (int k = 1; k < 8; k++)
            crc_table[k][b] = (crc_table[k - 1][b] >> 8) ^ crc_table[0][crc_table[k - 1][b] & 0xFFu];
}

static inline uint64_t load_le64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

uint32_t crc32c_update_sw(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&crc_table_once, crc_table_build);
    const unsigned char *p = data;
    uint32_t c = ~crc;
    while (n > 0 && ((uintptr_t)p & 7u)) {
        c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xFFu];
        n--;
    }
    while (n >= 8) {
        uint64_t w = load_le64(p) ^ c;
        c = crc_table[7][w & 0xFF] ^ crc_table[6][(w >> 8) & 0xFF] ^
            crc_table[5][(w >> 16) & 0xFF] ^ crc_table[4][(w >> 24) & 0xFF] ^
            crc_table[3][(w >> 32) & 0xFF] ^ crc_table[2][(w >> 40) & 0xFF] ^
            crc_table[1][(w >> 48) & 0xFF] ^ crc_table[0][(w >> 56) & 0xFF];
        p += 8;
        n -= 8;
    }
    while (n-- > 0)
        c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xFFu];
    return ~c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CRC32C_HAVE_X86 1
#include <nmmintrin.h>

/* Three interleaved streams. The crc32 instruction has a latency of three
 * cycles but a throughput of one per cycle, so one serial stream uses a
 * third of it. The buffer is cut into blocks of 3 x STREAM_LEN bytes; each
 * third is summed independently and the three are joined with the rule
 * crc(A B) = shift(crc(A), |B|) ^ crc0(B), where shift appends |B| zero
 * bytes. Shifting is linear in the 32-bit state, so it is four table
 * lookups (shift_table), built once from the 32 basis states. */
#define STREAM_LEN 4096

static uint32_t shift_table[4][256];
static pthread_once_t shift_table_once = PTHREAD_ONCE_INIT;

__attribute__((target("sse4.2")))
static uint32_t raw_zeros_hw(uint32_t state, size_t n)
{
    uint64_t c = state;
    for (size_t i = 0; i < n; i += 8)
        c = _mm_crc32_u64(c, 0);
    return (uint32_t)c;
}

static void shift_table_build(void)
{
    uint32_t basis[32];
    for (int b = 0; b < 32; b++)
        basis[b] = raw_zeros_hw(1u << b, STREAM_LEN);
    for (int k = 0; k < 4; k++)
        for (uint32_t v = 0; v < 256; v++) {
            uint32_t r = 0;
            for (int bit = 0; bit < 8; bit++)
                if (v & (1u << bit))
                    r ^= basis[8 * k + bit];
            shift_table[k][v] = r;
        }
}

static inline uint32_t shift_stream(uint32_t c)
{
    return shift_table[0][c & 0xFF] ^ shift_table[1][(c >> 8) & 0xFF] ^
           shift_table[2][(c >> 16) & 0xFF] ^ shift_table[3][c >> 24];
}

/* Compiled for SSE4.2 only in this function; called only after the CPU
 * reported the feature, so the binary still runs on older CPUs. */
__attribute__((target("sse4.2")))
static uint32_t crc32c_update_hw(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t c = (uint32_t)~crc;
    while (n > 0 && ((uintptr_t)p & 7u)) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        n--;
    }
    if (n >= 3 * STREAM_LEN) {
        pthread_once(&shift_table_once, shift_table_build);
        while (n >= 3 * STREAM_LEN) {
            uint64_t c1 = 0, c2 = 0;
            for (size_t i = 0; i < STREAM_LEN; i += 8) {
                c = _mm_crc32_u64(c, load_le64(p + i));
                c1 = _mm_crc32_u64(c1, load_le64(p + STREAM_LEN + i));
                c2 = _mm_crc32_u64(c2, load_le64(p + 2 * STREAM_LEN + i));
            }
            c = shift_stream(shift_stream((uint32_t)c) ^ (uint32_t)c1) ^ (uint32_t)c2;
            p += 3 * STREAM_LEN;
            n -= 3 * STREAM_LEN;
        }
    }
    while (n >= 8) {
        c = _mm_crc32_u64(c, load_le64(p));
        p += 8;
        n -= 8;
    }
    while (n-- > 0)
        c = _mm_crc32_u8((uint32_t)c, *p++);
    return ~(uint32_t)c;
}
#endif

int crc32c_hw_available(void)
{
#ifdef CRC32C_HAVE_X86
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
#else
    return 0;
#endif
}

uint32_t crc32c_update(uint32_t crc, const void *data, size_t n)
{
#ifdef CRC32C_HAVE_X86
    if (crc32c_hw_available())
        return crc32c_update_hw(crc, data, n);
#endif
    return crc32c_update_sw(crc, data, n);
}
