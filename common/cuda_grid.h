/* cuda_grid.h - the launch grid for grid-stride kernels: enough blocks to
 * cover the work, capped at a number of resident blocks per SM of the
 * current device. CUDA build only (common/cuda_grid.cu); plain C
 * prototypes so that .cu and .c files can both call it. */
#ifndef RT_COMMON_CUDA_GRID_H
#define RT_COMMON_CUDA_GRID_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Blocks for n elements at `threads` per block: min(ceil(n / threads),
 * SMs * blocks_per_sm), and at least 1 (n <= 0 gives 1, a valid launch of a
 * grid-stride kernel that does nothing). SMs is the current device's
 * multiprocessor count, queried once per device and cached; the query
 * (cudaGetDevice, cudaDeviceGetAttribute) is allowed during CUDA graph
 * stream capture. If it fails (no device), RT_CUDA_GRID_FALLBACK_SMS is
 * used and the error stays recorded, so the caller's launch check reports
 * it. threads and blocks_per_sm below 1 count as 1. */
unsigned rt_cuda_grid(int64_t n, int threads, int blocks_per_sm);

/* SM count assumed when the device cannot be queried (an H100/H200 has 132). */
#define RT_CUDA_GRID_FALLBACK_SMS 132

#ifdef __cplusplus
}
#endif

#endif
