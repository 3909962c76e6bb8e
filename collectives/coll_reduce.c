/* coll_reduce.c - the element types the collectives take and the reduction
 * kernels: sums for each type (bf16 added in float32 and rounded to nearest
 * even), and the average (sum divided by the number of ranks). Built with -O3 so the loops vectorise:
 * the reduction runs once per received segment and must keep up with the
 * transfer. */
#include <stdint.h>

#include "collectives/coll_internal.h"

bool coll_dtype_supported(rt_dtype dt)
{
    switch (dt) {
    case RT_DTYPE_F32: case RT_DTYPE_F64: case RT_DTYPE_BF16:
    case RT_DTYPE_U8: case RT_DTYPE_I32: case RT_DTYPE_I64:
        return true;
    default:
        return false;
    }
}

/* The kernels read a and b before writing dst[i], so dst == a is fine. */
#define SUM_LOOP(T, UT)                                                   \
    do {                                                                  \
        T *d = dst; const T *x = a; const T *y = b;                       \
        for (size_t i = 0; i < n; i++)                                    \
            d[i] = (T)((UT)x[i] + (UT)y[i]);                              \
    } while (0)

void coll_reduce(rt_dtype dt, void *dst, const void *a, const void *b, size_t n)
{
    switch (dt) {
    case RT_DTYPE_F32: SUM_LOOP(float, float); break;
    case RT_DTYPE_F64: SUM_LOOP(double, double); break;
    case RT_DTYPE_I32: SUM_LOOP(int32_t, uint32_t); break; /* wraps, no UB */
    case RT_DTYPE_I64: SUM_LOOP(int64_t, uint64_t); break;
    case RT_DTYPE_U8: SUM_LOOP(uint8_t, uint32_t); break;
    case RT_DTYPE_BF16: {
        uint16_t *d = dst; const uint16_t *x = a; const uint16_t *y = b;
        for (size_t i = 0; i < n; i++)
            d[i] = rt_bf16_from_float(rt_bf16_to_float(x[i]) + rt_bf16_to_float(y[i]));
        break;
    }
    default: break; /* refused by the argument checks (coll_dtype_supported) */
    }
}

#define AVG_LOOP(T, UT)                                                   \
    do {                                                                  \
        T *d = dst; const T *x = a; const T *y = b;                       \
        for (size_t i = 0; i < n; i++)                                    \
            d[i] = (T)((T)((UT)x[i] + (UT)y[i]) / ranks);              \
    } while (0)

void coll_reduce_avg(rt_dtype dt, void *dst, const void *a, const void *b, size_t n, int ranks)
{
    switch (dt) {
    case RT_DTYPE_F32: AVG_LOOP(float, float); break;
    case RT_DTYPE_F64: AVG_LOOP(double, double); break;
    case RT_DTYPE_I32: AVG_LOOP(int32_t, uint32_t); break;
    case RT_DTYPE_I64: AVG_LOOP(int64_t, uint64_t); break;
    case RT_DTYPE_U8: {
        uint8_t *d = dst; const uint8_t *x = a; const uint8_t *y = b;
        for (size_t i = 0; i < n; i++)
            d[i] = (uint8_t)((uint8_t)(x[i] + y[i]) / ranks);
        break;
    }
    case RT_DTYPE_BF16: {
        uint16_t *d = dst; const uint16_t *x = a; const uint16_t *y = b;
        for (size_t i = 0; i < n; i++)
            d[i] = rt_bf16_from_float((rt_bf16_to_float(x[i]) + rt_bf16_to_float(y[i])) / (float)ranks);
        break;
    }
    default: break; /* refused by the argument checks */
    }
}

void coll_scale_avg(rt_dtype dt, void *dst, const void *src, size_t n, int ranks)
{
#define SCALE_LOOP(T) \
    do { T *d = dst; const T *s = src; \
         for (size_t i = 0; i < n; i++) \
             d[i] = (T)(s[i] / ranks); \
    } while (0)
    switch (dt) {
    case RT_DTYPE_F32: SCALE_LOOP(float); break;
    case RT_DTYPE_F64: SCALE_LOOP(double); break;
    case RT_DTYPE_I32: SCALE_LOOP(int32_t); break;
    case RT_DTYPE_I64: SCALE_LOOP(int64_t); break;
    case RT_DTYPE_U8: SCALE_LOOP(uint8_t); break;
    case RT_DTYPE_BF16: {
        uint16_t *d = dst; const uint16_t *s = src;
        for (size_t i = 0; i < n; i++)
            d[i] = rt_bf16_from_float(rt_bf16_to_float(s[i]) / (float)ranks);
        break;
    }
    default: break; /* refused by the argument checks */
    }
#undef SCALE_LOOP
}
