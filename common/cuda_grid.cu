/* cuda_grid.cu - launch grids sized by the current device's SM count
 * (common/cuda_grid.h), so kernels fill any GPU instead of one size. */
#include "common/cuda_grid.h"

#include <atomic>

#include <cuda_runtime.h>

/* Largest grid x dimension CUDA accepts. */
static const int64_t GRID_MAX_BLOCKS = 2147483647;

/* SM counts of devices 0 .. GRID_CACHED_DEVICES-1; 0 means not queried yet.
 * Threads that race to fill an entry store the same value, so relaxed
 * atomics suffice. A device beyond the table is queried on every call. */
enum { GRID_CACHED_DEVICES = 64 };
static std::atomic<int> grid_sms[GRID_CACHED_DEVICES];

static int64_t grid_sm_count(void)
{
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess)
        return RT_CUDA_GRID_FALLBACK_SMS;
    bool cached = dev >= 0 && dev < GRID_CACHED_DEVICES;
    if (cached) {
        int sms = grid_sms[dev].load(std::memory_order_relaxed);
        if (sms > 0)
            return sms;
    }
    int sms = 0;
    if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || sms < 1)
        return RT_CUDA_GRID_FALLBACK_SMS; /* not cached: a later call asks again */
    if (cached)
        grid_sms[dev].store(sms, std::memory_order_relaxed);
    return sms;
}

extern "C" unsigned rt_cuda_grid(int64_t n, int threads, int blocks_per_sm)
{
    if (n <= 0)
        return 1;
    int64_t t = threads > 0 ? threads : 1;
    int64_t per_sm = blocks_per_sm > 0 ? blocks_per_sm : 1;
    int64_t blocks = n / t + (n % t != 0); /* ceil without n + t - 1 overflowing */
    int64_t cap = grid_sm_count() * per_sm;
    if (blocks > cap)
        blocks = cap;
    if (blocks > GRID_MAX_BLOCKS)
        blocks = GRID_MAX_BLOCKS;
    return (unsigned)blocks;
}
