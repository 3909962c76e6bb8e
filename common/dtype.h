/* dtype.h - the one element-type enum every module uses (collectives,
 * dataset files, checkpoints, the NCCL path), its sizes and short names, and
 * the bfloat16 <-> float32 conversions.
 *
 * Each module supports a subset and says which (collectives: F32, F64, BF16,
 * U8, I32, I64; checkpoints: all but BF16 and U16; dataset files: see
 * docs/FORMATS.md). The numeric values are fixed: they travel in the
 * collectives' call header and in the digests ranks compare, so new types
 * only ever go at the end. */
#ifndef RT_COMMON_DTYPE_H
#define RT_COMMON_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    RT_DTYPE_F32 = 0,
    RT_DTYPE_F64 = 1,
    RT_DTYPE_BF16 = 2,   /* 2-byte storage: the top half of a float32 */
    RT_DTYPE_U8 = 3,
    RT_DTYPE_I32 = 4,
    RT_DTYPE_I64 = 5,
    RT_DTYPE_U16 = 6,
    RT_DTYPE_U32 = 7,
    RT_DTYPE_U64 = 8,
    RT_DTYPE_COUNT       /* end marker; also "no such type" where a function says so */
} rt_dtype;

/* Bytes per element; 0 for a value that is not a type (RT_DTYPE_COUNT or
 * anything out of range), so callers can validate with it. */
size_t rt_dtype_size(rt_dtype dt);

/* Short name: "f32", "f64", "bf16", "u8", "i32", "i64", "u16", "u32",
 * "u64"; "unknown" for a value that is not a type. */
const char *rt_dtype_name(rt_dtype dt);

/* float32 -> bfloat16, rounded to nearest, ties to even; a NaN stays a
 * (quiet) NaN. Inline so that reduction loops over bf16 vectorise. */
static inline uint16_t rt_bf16_from_float(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)      /* NaN: keep it a (quiet) NaN */
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);          /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

/* bfloat16 -> float32, exact. */
static inline float rt_bf16_to_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#ifdef __cplusplus
}
#endif

#endif
