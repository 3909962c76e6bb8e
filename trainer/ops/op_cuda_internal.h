/* op_cuda_internal.h - what the CUDA op sources (op_cuda.cu,
 * op_cuda_transformer.cu, op_cuda_attention.cu) share and nothing else
 * sees: the context's layout, its scratch buffer, the launch shape of the
 * grid-stride kernels and the warp reductions. CUDA (C++) sources only. */
#ifndef RT_TRAINER_OPS_OP_CUDA_INTERNAL_H
#define RT_TRAINER_OPS_OP_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cuda_grid.h"
#include "common/status.h"
#include "trainer/ops/cublas_loader.h"
#include "trainer/ops/op_cuda.h"

enum { RT_SCRATCH_RETIRED_MAX = 16 };

struct rt_cuda_ctx {
    int device;
    bool tf32;
    cudaStream_t stream;
    const rt_cublas_api *blas_api; /* cuBLAS, loaded with the first context */
    cublasHandle_t blas;
    void *blas_workspace;
    /* scratch for two-pass reductions; buffers it outgrew stay allocated
     * until the context goes, since a captured graph may still use them */
    void *scratch;
    size_t scratch_bytes;
    void *retired[RT_SCRATCH_RETIRED_MAX];
    int nretired;
};

enum { RT_THREADS = 256, RT_WARPS_PER_BLOCK = RT_THREADS / 32 };

/* Blocks for a grid-stride loop over n elements: enough to fill the chip
 * (32 resident blocks per SM is plenty), never more than the elements need. */
static inline unsigned rt_grid_for(int64_t n)
{
    return rt_cuda_grid(n, RT_THREADS, 32);
}

/* RT_ERR_INVALID naming `who` when ctx is NULL. */
rt_status cuda_ctx_check(const rt_cuda_ctx_t *ctx, const char *who);

/* At least `bytes` of the context's scratch, valid until the next call on
 * the context's stream that asks for scratch (ops on one stream run in
 * order, so each op may use it from its first kernel to its last). Growth
 * allocates, which a stream capture cannot do: then it fails, and the
 * caller's capture falls back to eager. */
rt_status cuda_ctx_scratch(rt_cuda_ctx_t *ctx, size_t bytes, void **out);

/* Butterfly reductions over a full warp: every lane ends with the result,
 * and the order of the additions is fixed (deterministic). */
static __device__ __forceinline__ float warp_max(float x)
{
    for (int off = 16; off > 0; off >>= 1)
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, off));
    return x;
}

static __device__ __forceinline__ float warp_sum(float x)
{
    for (int off = 16; off > 0; off >>= 1)
        x += __shfl_xor_sync(0xffffffffu, x, off);
    return x;
}

static __device__ __forceinline__ double warp_sum_double(double x)
{
    for (int off = 16; off > 0; off >>= 1)
        x += __shfl_xor_sync(0xffffffffu, x, off);
    return x;
}

#endif
