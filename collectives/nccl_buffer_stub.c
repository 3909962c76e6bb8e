/* nccl_buffer_stub.c - the CPU-only build's device buffers: every call
 * reports that the CUDA path is not compiled in. */
#include "collectives/nccl_buffer.h"

static rt_status buffer_unsupported(const char *who)
{
    return rt_fail(RT_ERR_UNSUPPORTED, "%s: this build has no CUDA path (configured with RT_CUDA=OFF or without nvcc)", who);
}

rt_status nccl_stream_create(void **stream, int device)
{
    if (stream != NULL)
        *stream = NULL;
    return buffer_unsupported("nccl_stream_create");
}

void nccl_stream_destroy(void *stream)
{
}

rt_status nccl_buffer_alloc(void **ptr, size_t bytes)
{
    if (ptr != NULL)
        *ptr = NULL;
    return buffer_unsupported("nccl_buffer_alloc");
}

void nccl_buffer_free(void *ptr)
{
}

rt_status nccl_buffer_upload(void *dst, const void *src, size_t bytes, void *stream)
{
    return buffer_unsupported("nccl_buffer_upload");
}

rt_status nccl_buffer_download(void *dst, const void *src, size_t bytes, void *stream)
{
    return buffer_unsupported("nccl_buffer_download");
}

rt_status nccl_buffer_fill(void *ptr, int byte, size_t bytes, void *stream)
{
    return buffer_unsupported("nccl_buffer_fill");
}

rt_status nccl_timer_create(nccl_timer_t **out)
{
    if (out != NULL)
        *out = NULL;
    return buffer_unsupported("nccl_timer_create");
}

void nccl_timer_destroy(nccl_timer_t *t)
{
}

rt_status nccl_timer_start(nccl_timer_t *t, void *stream)
{
    return buffer_unsupported("nccl_timer_start");
}

rt_status nccl_timer_stop(nccl_timer_t *t, void *stream)
{
    return buffer_unsupported("nccl_timer_stop");
}

rt_status nccl_timer_elapsed(const nccl_timer_t *t, double *seconds)
{
    return buffer_unsupported("nccl_timer_elapsed");
}
