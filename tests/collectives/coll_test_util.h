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

/* FNV-1a over bytes: results must be bit-identical on every rank. */
static inline uint64_t tu_hash(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
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

#endif
