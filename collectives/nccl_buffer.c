/* nccl_buffer.c - CUDA build: streams, device buffers, copies and event
 * timers for C callers of the device all-reduce (see nccl_buffer.h). */
#include <stdlib.h>

#include <cuda_runtime_api.h>

#include "collectives/nccl_buffer.h"
#include "common/check.h"

/* check_cuda.h pulls in cuda_runtime.h, which is meant for nvcc; this C file
 * needs only the runtime API, so it has its own one-line check. */
#define CHECK_CUDA(call) \
    do { cudaError_t cu_rc_ = (call); \
         if (cu_rc_ != cudaSuccess) \
             return rt_fail(RT_ERR_CUDA, "nccl_buffer.c:%d %s failed: %s", __LINE__, #call, \
                            cudaGetErrorString(cu_rc_)); } while (0)

struct nccl_timer {
    cudaEvent_t start, stop;
};

rt_status nccl_stream_create(void **stream, int device)
{
    CHECK_ARG(stream != NULL, "nccl_stream_create: stream is NULL");
    *stream = NULL;
    CHECK_CUDA(cudaSetDevice(device));
    cudaStream_t s = NULL;
    CHECK_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    *stream = s;
    return RT_OK;
}

void nccl_stream_destroy(void *stream)
{
    if (stream != NULL)
        cudaStreamDestroy((cudaStream_t)stream);
}

rt_status nccl_buffer_alloc(void **ptr, size_t bytes)
{
    CHECK_ARG(ptr != NULL, "nccl_buffer_alloc: ptr is NULL");
    *ptr = NULL;
    CHECK_CUDA(cudaMalloc(ptr, bytes));
    return RT_OK;
}

void nccl_buffer_free(void *ptr)
{
    if (ptr != NULL)
        cudaFree(ptr);
}

rt_status nccl_buffer_upload(void *dst, const void *src, size_t bytes, void *stream)
{
    CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, (cudaStream_t)stream));
    CHECK_CUDA(cudaStreamSynchronize((cudaStream_t)stream));
    return RT_OK;
}

rt_status nccl_buffer_download(void *dst, const void *src, size_t bytes, void *stream)
{
    CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, (cudaStream_t)stream));
    CHECK_CUDA(cudaStreamSynchronize((cudaStream_t)stream));
    return RT_OK;
}

rt_status nccl_buffer_fill(void *ptr, int byte, size_t bytes, void *stream)
{
    CHECK_CUDA(cudaMemsetAsync(ptr, byte, bytes, (cudaStream_t)stream));
    CHECK_CUDA(cudaStreamSynchronize((cudaStream_t)stream));
    return RT_OK;
}

rt_status nccl_timer_create(nccl_timer_t **out)
{
    CHECK_ARG(out != NULL, "nccl_timer_create: out is NULL");
    *out = NULL;
    nccl_timer_t *t = calloc(1, sizeof *t);
    CHECK_ALLOC(t, sizeof *t);
    cudaError_t e = cudaEventCreate(&t->start);
    if (e != cudaSuccess) {
        free(t);
        return rt_fail(RT_ERR_CUDA, "nccl_timer_create: cudaEventCreate: %s", cudaGetErrorString(e));
    }
    e = cudaEventCreate(&t->stop);
    if (e != cudaSuccess) {
        cudaEventDestroy(t->start);
        free(t);
        return rt_fail(RT_ERR_CUDA, "nccl_timer_create: cudaEventCreate: %s", cudaGetErrorString(e));
    }
    *out = t;
    return RT_OK;
}

void nccl_timer_destroy(nccl_timer_t *t)
{
    if (t == NULL)
        return;
    cudaEventDestroy(t->start);
    cudaEventDestroy(t->stop);
    free(t);
}

rt_status nccl_timer_start(nccl_timer_t *t, void *stream)
{
    CHECK_CUDA(cudaEventRecord(t->start, (cudaStream_t)stream));
    return RT_OK;
}

rt_status nccl_timer_stop(nccl_timer_t *t, void *stream)
{
    CHECK_CUDA(cudaEventRecord(t->stop, (cudaStream_t)stream));
    return RT_OK;
}

rt_status nccl_timer_elapsed(const nccl_timer_t *t, double *seconds)
{
    float ms = 0.0f;
    CHECK_CUDA(cudaEventElapsedTime(&ms, t->start, t->stop));
    *seconds = 1e-3 * (double)ms;
    return RT_OK;
}
