/* check_cuda.h - CUDA, cuBLAS and NCCL error codes to rt_status.
 * Only CUDA-build sources include this (the CPU-only build has none). */
#ifndef RT_COMMON_CHECK_CUDA_H
#define RT_COMMON_CHECK_CUDA_H

#include <cuda_runtime.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

static inline const char *rt_basename_(const char *f)
{
    const char *b = f;
    for (; *f; f++)
        if (*f == '/')
            b = f + 1;
    return b;
}

#define CHECK_CUDA(call) \
    do { cudaError_t cu_rc_ = (call); \
         if (cu_rc_ != cudaSuccess) \
             return rt_fail(RT_ERR_CUDA, "%s:%d %s failed: %s", rt_basename_(__FILE__), \
                            __LINE__, #call, cudaGetErrorString(cu_rc_)); } while (0)

/* After every kernel launch: catches bad launch configurations at once. */
#define CHECK_LAUNCH() CHECK_CUDA(cudaGetLastError())

#define CHECK_CUBLAS(call) \
    do { int cb_rc_ = (int)(call); \
         if (cb_rc_ != 0) \
             return rt_fail(RT_ERR_CUDA, "%s:%d %s failed: cuBLAS status %d", \
                            rt_basename_(__FILE__), __LINE__, #call, cb_rc_); } while (0)

/* Requires <nccl.h> in the including file. */
#define CHECK_NCCL(call) \
    do { ncclResult_t nc_rc_ = (call); \
         if (nc_rc_ != ncclSuccess) \
             return rt_fail(RT_ERR_NCCL, "%s:%d %s failed: %s", rt_basename_(__FILE__), \
                            __LINE__, #call, ncclGetErrorString(nc_rc_)); } while (0)

#ifdef __cplusplus
}
#endif

#endif
