/* ckpt_digest.c - a 64-bit digest of loaded checkpoint state, so that
 * ranks can check with one small collective that they all loaded the same
 * thing. Arrays enter through their CRC-32C; the rest (names, shapes,
 * metadata) through FNV-1a, which mixes every byte into all 64 bits. */
#include <string.h>

#include "common/crc32c.h"
#include "trainer/ckpt/ckpt_file.h"

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv_bytes(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

static uint64_t fnv_i64(uint64_t h, int64_t v)
{
    return fnv_bytes(h, &v, sizeof v);
}

/* Strings go in with their length so that ("ab","c") != ("a","bc"). */
static uint64_t fnv_str(uint64_t h, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    h = fnv_i64(h, (int64_t)n);
    return fnv_bytes(h, s ? s : "", n);
}

uint64_t ckpt_digest(const ckpt_meta_t *meta, const ckpt_array_t *arrays, int n)
{
    uint64_t h = FNV_OFFSET;
    if (meta) {
        h = fnv_i64(h, meta->step);
        h = fnv_i64(h, meta->epoch);
        h = fnv_i64(h, meta->world_size);
        h = fnv_str(h, meta->model_spec);
    }
    h = fnv_i64(h, n);
    for (int i = 0; i < n; i++) {
        const ckpt_array_t *a = &arrays[i];
        h = fnv_str(h, a->name);
        h = fnv_i64(h, a->type);
        h = fnv_i64(h, a->rank);
        for (int d = 0; d < a->rank; d++)
            h = fnv_i64(h, a->dims[d]);
        int64_t count = ckpt_array_count(a);
        uint32_t crc = count > 0 && a->data ? crc32c(a->data, (size_t)count * rt_dtype_size(a->type)) : 0;
        h = fnv_i64(h, crc);
    }
    return h;
}
