/* coll_test_util.h - shared helpers for the collectives' MPI tests: random
 * inputs from a per-rank seed, MPI types for our dtypes (the oracle calls),
 * and a check that every rank saw the same outcome. */
#ifndef RT_TESTS_COLL_TEST_UTIL_H
#define RT_TESTS_COLL_TEST_UTIL_H

#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/coll.h"
#include "test_util.h"

static inline uint64_t tu_rand(uint64_t *s)
{
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return *s;
}

/* uniform in [-1, 1) */
static inline double tu_uniform(uint64_t *s)
{
    return (double)(tu_rand(s) >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

static inline MPI_Datatype tu_mpi_type(rt_dtype dt)
{
    switch (dt) {
    case RT_DTYPE_F32: return MPI_FLOAT;
    case RT_DTYPE_F64: return MPI_DOUBLE;
    case RT_DTYPE_BF16: return MPI_FLOAT;   /* the oracle reduces the f32 values */
    case RT_DTYPE_U8: return MPI_UINT8_T;
    case RT_DTYPE_I32: return MPI_INT32_T;
    case RT_DTYPE_I64: return MPI_INT64_T;
    default: break; /* not a type the collectives take */
    }
    return MPI_DATATYPE_NULL;
}

/* True on every rank iff ok is true on every rank. */
static inline int tu_all(int ok)
{
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    return all;
}

/* A 64-bit hash over words (bytes for the tail): results must be
 * bit-identical on every rank. */
static inline uint64_t tu_hash(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static inline int tu_same_everywhere(uint64_t h)
{
    uint64_t mn = 0, mx = 0;
    MPI_Allreduce(&h, &mn, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&h, &mx, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    return mn == mx;
}

/* Inputs: integer-valued (exact sums) or uniform random in [-1, 1). */
static inline void tu_fill(void *buf, rt_dtype dt, size_t count, int integer, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 12345;
    for (size_t i = 0; i < count; i++) {
        double v = integer ? (double)((int)(tu_rand(&s) % 11) - 5) : tu_uniform(&s);
        switch (dt) {
        case RT_DTYPE_F32: ((float *)buf)[i] = (float)v; break;
        case RT_DTYPE_F64: ((double *)buf)[i] = v; break;
        case RT_DTYPE_BF16: ((uint16_t *)buf)[i] = rt_bf16_from_float((float)v); break;
        case RT_DTYPE_I32: ((int32_t *)buf)[i] = (int32_t)(tu_rand(&s) % 2000001) - 1000000; break;
        case RT_DTYPE_I64: ((int64_t *)buf)[i] = (int64_t)(tu_rand(&s) >> 4) - (1ll << 58); break;
        case RT_DTYPE_U8: ((uint8_t *)buf)[i] = (uint8_t)tu_rand(&s); break;
        default: break; /* not a type the collectives take */
        }
    }
}

/* The expected value of element i from the oracle's sum o. */
static inline double tu_expect_at(const void *o, rt_dtype dt, size_t i, coll_op op, int n, int64_t *iexp)
{
    switch (dt) {
    case RT_DTYPE_F32: { float v = ((const float *)o)[i]; return op == COLL_AVG ? (double)(v / (float)n) : v; }
    case RT_DTYPE_F64: { double v = ((const double *)o)[i]; return op == COLL_AVG ? v / n : v; }
    case RT_DTYPE_BF16: {
        float v = ((const float *)o)[i];
        return rt_bf16_to_float(rt_bf16_from_float(op == COLL_AVG ? v / (float)n : v));
    }
    case RT_DTYPE_I32: { int32_t v = ((const int32_t *)o)[i]; *iexp = op == COLL_AVG ? v / n : v; return 0; }
    case RT_DTYPE_I64: { int64_t v = ((const int64_t *)o)[i]; *iexp = op == COLL_AVG ? v / n : v; return 0; }
    case RT_DTYPE_U8: break;
    default: break;
    }
    return 0;
}

static inline double tu_got_at(const void *y, rt_dtype dt, size_t i, int64_t *igot)
{
    switch (dt) {
    case RT_DTYPE_F32: return ((const float *)y)[i];
    case RT_DTYPE_F64: return ((const double *)y)[i];
    case RT_DTYPE_BF16: return rt_bf16_to_float(((const uint16_t *)y)[i]);
    case RT_DTYPE_I32: *igot = ((const int32_t *)y)[i]; return 0;
    case RT_DTYPE_I64: *igot = ((const int64_t *)y)[i]; return 0;
    case RT_DTYPE_U8: break;
    default: break;
    }
    return 0;
}

static inline double tu_tolerance(rt_dtype dt, int integer, coll_op op, int n)
{
    if (integer)
        return 0;
    double eps = dt == RT_DTYPE_F32 ? 1.1920929e-7 : dt == RT_DTYPE_F64 ? 2.220446e-16 : 1.0 / 256;
    double tol = dt == RT_DTYPE_BF16 ? (double)n * n * eps : 2.0 * n * n * eps;
    return op == COLL_AVG ? tol / n + eps : tol;
}

/* Compares y with the oracle; returns the number of wrong elements. */
static inline size_t tu_compare(const void *y, const void *o, rt_dtype dt, size_t count, coll_op op,
                                int integer, int n, size_t *first_bad)
{
    double tol = tu_tolerance(dt, integer, op, n);
    size_t wrong = 0;
    for (size_t i = 0; i < count; i++) {
        int64_t ie = 0, ig = 0;
        double e = tu_expect_at(o, dt, i, op, n, &ie);
        double g = tu_got_at(y, dt, i, &ig);
        int ok = (dt == RT_DTYPE_I32 || dt == RT_DTYPE_I64) ? ie == ig
                 : tol == 0 ? g == e : test_close(g, e, tol, 0);
        if (!ok && wrong++ == 0)
            *first_bad = i;
    }
    return wrong;
}

#endif
