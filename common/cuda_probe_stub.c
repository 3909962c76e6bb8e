/* cuda_probe_stub.c - the CPU-only build: no CUDA devices, ever. */
#include "cuda_probe.h"

bool rt_cuda_compiled(void)
{
    return false;
}

rt_status rt_cuda_device_count(int *count)
{
    *count = 0;
    return RT_OK;
}
