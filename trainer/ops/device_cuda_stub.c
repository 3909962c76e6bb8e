/* device_cuda_stub.c - the CUDA device in a build without CUDA: it cannot
 * be opened, none is visible, and pinned memory is not available, so no
 * caller needs an #ifdef (the one stub of the trainer's device layer). */
#include "trainer/ops/device.h"

rt_status device_cuda_open(rt_device_t *d, const device_config_t *cfg)
{
    return rt_fail(RT_ERR_UNSUPPORTED,
                   "this build has no CUDA path (configured with RT_CUDA=OFF or without nvcc)");
}

rt_status device_cuda_count(int *count)
{
    *count = 0;
    return RT_OK;
}

bool device_cuda_compiled(void)
{
    return false;
}

void *device_pinned_alloc(size_t bytes, void *ctx)
{
    return NULL;
}

void device_pinned_free(void *ptr, void *ctx)
{
}
