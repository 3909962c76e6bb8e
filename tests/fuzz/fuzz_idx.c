/* fuzz_idx.c - libFuzzer target: the IDX reader (data/idx.h) on arbitrary
 * file bytes, plain or (when they start with the gzip magic) compressed,
 * asking for 1 or 3 dimensions as the importer does. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include "data/idx.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    fuzz_file("input.idx", data, size, path, sizeof path);
    for (int dims = 1; dims <= 3; dims += 2) {
        idx_array_t a;
        memset(&a, 0, sizeof a);
        if (idx_read(path, dims, &a) == RT_OK)
            idx_free(&a);
    }
    return 0;
}
