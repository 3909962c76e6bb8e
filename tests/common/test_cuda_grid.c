/* test_cuda_grid.c - the launch-grid helper (CUDA build only): ceil(n /
 * threads) capped at SMs * blocks_per_sm, never 0, against the SM count
 * the runtime reports, or RT_CUDA_GRID_FALLBACK_SMS (with the error left
 * for the caller's launch check) where there is no device. Runs with or
 * without a GPU. */
#include <cuda_runtime_api.h>
#include <stdint.h>

#include "common/cuda_grid.h"
#include "test_util.h"

int main(void)
{
    int dev = 0, sms = 0;
    int have = cudaGetDevice(&dev) == cudaSuccess &&
               cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess;
    cudaGetLastError();
    int64_t want_sms = have ? sms : RT_CUDA_GRID_FALLBACK_SMS;
    printf("%s: %lld SMs\n", have ? "device" : "no device, fallback", (long long)want_sms);

    EXPECT(rt_cuda_grid(0, 256, 16) == 1 && rt_cuda_grid(-5, 256, 16) == 1, "n <= 0 gives 1 block");
    if (!have) {
        /* the failed query stays recorded for the caller's CHECK_LAUNCH */
        EXPECT(cudaGetLastError() != cudaSuccess, "no device but no error recorded");
    }
    EXPECT(rt_cuda_grid(1, 256, 16) == 1, "1 element");
    EXPECT(rt_cuda_grid(256, 256, 16) == 1, "one full block");
    EXPECT(rt_cuda_grid(257, 256, 16) == 2, "one more element, one more block");
    EXPECT(rt_cuda_grid(256 * 100, 256, 16) == 100, "100 blocks (below any cap)");
    int64_t cap = want_sms * 16;
    EXPECT(rt_cuda_grid(256 * cap, 256, 16) == (unsigned)cap, "exactly the cap");
    EXPECT(rt_cuda_grid(256 * cap + 1, 256, 16) == (unsigned)cap, "capped at SMs * 16");
    EXPECT(rt_cuda_grid(INT64_MAX, 256, 32) == (unsigned)(want_sms * 32), "huge n, no overflow");
    EXPECT(rt_cuda_grid(INT64_MAX, 1, 1 << 30) == 2147483647u, "capped at the grid limit");
    EXPECT(rt_cuda_grid(10, 0, 16) == 10 && rt_cuda_grid(10, -3, 16) == 10,
           "threads below 1 count as 1");
    EXPECT(rt_cuda_grid(1 << 30, 256, 0) == (unsigned)want_sms, "blocks_per_sm below 1 counts as 1");
    cudaGetLastError();
    return TEST_EXIT();
}
