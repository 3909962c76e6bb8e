/* device_choice.c - the --device choice of a rank (see device_choice.h). */
#include "trainer/run/device_choice.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"

rt_status device_choice_check(const char *flag)
{
    if (strcmp(flag, "cuda") != 0)
        return RT_OK;
    if (!device_cuda_compiled())
        return rt_fail(RT_ERR_USAGE, "--device cuda: this build has no CUDA path (use cpu or auto)");
    int n = 0;
    TRY(device_count(RT_DEVICE_CUDA, &n));
    if (n == 0) {
        const char *vis = getenv("CUDA_VISIBLE_DEVICES");
        return rt_fail(RT_ERR_USAGE, "--device cuda: no CUDA device is visible%s%s%s (use cpu or auto)",
                       vis ? " (CUDA_VISIBLE_DEVICES=\"" : "", vis ? vis : "", vis ? "\")" : "");
    }
    return RT_OK;
}

rt_status device_choice(const char *flag, int local_rank, int local_size, device_config_t *out,
                        char *why, size_t why_size)
{
    memset(out, 0, sizeof *out);
    out->kind = RT_DEVICE_CPU;
    if (!strcmp(flag, "cpu")) {
        snprintf(why, why_size, "device cpu (--device cpu)");
        return RT_OK;
    }
    int n = 0;
    TRY(device_count(RT_DEVICE_CUDA, &n));
    if (n == 0) {
        if (!strcmp(flag, "cuda"))
            return rt_fail(RT_ERR_USAGE, "--device cuda: no CUDA device is visible");
        snprintf(why, why_size, "device cpu (--device auto: %s)",
                 device_cuda_compiled() ? "no CUDA device visible" : "built without CUDA");
        return RT_OK;
    }
    out->kind = RT_DEVICE_CUDA;
    out->ordinal = local_rank % n;
    snprintf(why, why_size, "device cuda:%d (--device %s: node-local rank %d of %d, %d GPU%s visible%s)",
             out->ordinal, flag, local_rank, local_size, n, n == 1 ? "" : "s",
             local_size > n ? "; ranks share a GPU, which NCCL refuses with several ranks" : "");
    return RT_OK;
}
