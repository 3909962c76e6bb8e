/* cuda_probe.cu - counts visible CUDA devices; no driver means zero. */
#include "cuda_probe.h"

#include <cuda_runtime.h>

extern "C" bool rt_cuda_compiled(void)
{
    return true;
}

extern "C" rt_status rt_cuda_device_count(int *count)
{
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    if (rc == cudaErrorNoDevice || rc == cudaErrorInsufficientDriver) {
        cudaGetLastError(); /* clear the sticky error */
        *count = 0;
        return RT_OK;
    }
    if (rc != cudaSuccess) {
        *count = 0;
        cudaGetLastError();
        return RT_OK;
    }
    *count = n;
    return RT_OK;
}
