/* cuda_probe.h - how many CUDA devices this process can use. The CPU-only
 * build links a stub that reports none, so callers need no #ifdef. */
#ifndef RT_COMMON_CUDA_PROBE_H
#define RT_COMMON_CUDA_PROBE_H

#include <stdbool.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* True when this binary was built with the CUDA path. */
bool rt_cuda_compiled(void);

/* Number of visible CUDA devices; 0 (and RT_OK) when there is no driver or
 * no device, so "no GPU" is an answer rather than an error. */
rt_status rt_cuda_device_count(int *count);

#ifdef __cplusplus
}
#endif

#endif
