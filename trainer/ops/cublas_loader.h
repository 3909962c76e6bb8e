/* cublas_loader.h - the cuBLAS functions the CUDA ops call, reached through
 * a table filled when the first CUDA context is created (cublas_loader.c
 * says why the library is not linked). C and CUDA (C++) sources. */
#ifndef RT_TRAINER_OPS_CUBLAS_LOADER_H
#define RT_TRAINER_OPS_CUBLAS_LOADER_H

#include <cublas_v2.h>

#include "common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Each member has the type of the cuBLAS function it names (cublas_v2.h
 * maps cublasCreate to cublasCreate_v2 and so on; the table holds those). */
typedef struct {
    __typeof__(cublasCreate) *Create;
    __typeof__(cublasDestroy) *Destroy;
    __typeof__(cublasSetStream) *SetStream;
    __typeof__(cublasSetWorkspace) *SetWorkspace;
    __typeof__(cublasSetMathMode) *SetMathMode;
    __typeof__(cublasSgemm) *Sgemm;
    __typeof__(cublasSgemmStridedBatched) *SgemmStridedBatched;
} rt_cublas_api;

/* The table, loading libcublas on the first call (thread-safe; later calls
 * return the same table, or the same failure). RT_ERR_CUDA naming the
 * library and the loader's reason when it cannot be loaded. */
rt_status cublas_api_get(const rt_cublas_api **out);

#ifdef __cplusplus
}
#endif

#endif
