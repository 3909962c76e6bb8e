/* test_crc32c.c - CRC-32C against published check values (the standard
 * "123456789" and RFC 3720 B.4 vectors) and against a bit-at-a-time
 * implementation written here from the polynomial, for many lengths and
 * alignments, on both the hardware and the table path. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "test_util.h"

/* The definition: reflected CRC, polynomial 0x82F63B78, init and xorout
 * all ones, one bit at a time. */
static uint32_t crc_bitwise(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

int main(void)
{
    EXPECT(crc32c("123456789", 9) == 0xE3069283u, "check value 0x%08x", crc32c("123456789", 9));
    EXPECT(crc32c_update_sw(0, "123456789", 9) == 0xE3069283u, "sw check value");
    EXPECT(crc32c("", 0) == 0, "empty");

    /* RFC 3720 appendix B.4 */
    unsigned char v[48];
    memset(v, 0, 32);
    EXPECT(crc32c(v, 32) == 0x8A9136AAu, "32 zeros: 0x%08x", crc32c(v, 32));
    memset(v, 0xFF, 32);
    EXPECT(crc32c(v, 32) == 0x62A8AB43u, "32 ones: 0x%08x", crc32c(v, 32));
    for (int i = 0; i < 32; i++)
        v[i] = (unsigned char)i;
    EXPECT(crc32c(v, 32) == 0x46DD794Eu, "incrementing: 0x%08x", crc32c(v, 32));
    for (int i = 0; i < 32; i++)
        v[i] = (unsigned char)(31 - i);
    EXPECT(crc32c(v, 32) == 0x113FDB5Cu, "decrementing: 0x%08x", crc32c(v, 32));

    /* Random data: every length 0..600 at every alignment 0..7, both paths,
     * and split at an arbitrary point (incremental use). */
    size_t cap = 4096;
    unsigned char *buf = malloc(cap + 8);
    srand(12345);
    for (size_t i = 0; i < cap + 8; i++)
        buf[i] = (unsigned char)(rand() >> 7);
    int bad_hw = 0, bad_sw = 0, bad_split = 0;
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n <= 600; n++) {
            uint32_t want = crc_bitwise(buf + off, n);
            bad_hw += crc32c(buf + off, n) != want;
            bad_sw += crc32c_update_sw(0, buf + off, n) != want;
            size_t cut = n / 3;
            bad_split += crc32c_update(crc32c(buf + off, cut), buf + off + cut, n - cut) != want;
        }
    EXPECT(bad_hw == 0, "%d mismatches (dispatching path, hw=%d)", bad_hw, crc32c_hw_available());
    EXPECT(bad_sw == 0, "%d mismatches (slice-by-8)", bad_sw);
    EXPECT(bad_split == 0, "%d mismatches (incremental)", bad_split);
    EXPECT(crc32c(buf, cap) == crc_bitwise(buf, cap), "4 KiB buffer");
    free(buf);

    /* Long buffers take the three-stream path (blocks of 3 x 4096 bytes):
     * lengths around one and several blocks, at odd alignments. */
    size_t big = 100013;
    buf = malloc(big + 8);
    for (size_t i = 0; i < big + 8; i++)
        buf[i] = (unsigned char)(rand() >> 5);
    static const size_t lens[] = {12287, 12288, 12289, 24576 + 13, 36864 - 1, 100005};
    int bad_long = 0, bad_long_sw = 0;
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
        for (size_t off = 0; off < 8; off += 3) {
            uint32_t want = crc_bitwise(buf + off, lens[li]);
            bad_long += crc32c(buf + off, lens[li]) != want;
            bad_long_sw += crc32c_update_sw(0, buf + off, lens[li]) != want;
        }
    EXPECT(bad_long == 0, "%d mismatches on long buffers", bad_long);
    EXPECT(bad_long_sw == 0, "%d mismatches on long buffers (slice-by-8)", bad_long_sw);
    EXPECT(crc32c_update(crc32c(buf, 50000), buf + 50000, 50013) == crc_bitwise(buf, 100013), "long incremental");
    free(buf);
    printf("sse4.2 path: %s\n", crc32c_hw_available() ? "yes" : "no");
    return TEST_EXIT();
}
