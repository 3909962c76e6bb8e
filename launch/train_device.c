/* train_device.c - the --device choice and the GPU step for `ringtrain
 * train` (see train_device.h). */
#include "launch/train_device.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "common/cuda_probe.h"
#include "common/log.h"

rt_status train_device_check_flag(const char *flag)
{
    if (strcmp(flag, "cuda") != 0)
        return RT_OK;
    if (!rt_cuda_compiled())
        return rt_fail(RT_ERR_USAGE, "--device cuda: this build has no CUDA path (use cpu or auto)");
    int n = 0;
    TRY(rt_cuda_device_count(&n));
    if (n == 0) {
        const char *vis = getenv("CUDA_VISIBLE_DEVICES");
        return rt_fail(RT_ERR_USAGE, "--device cuda: no CUDA device is visible%s%s%s (use cpu or auto)",
                       vis ? " (CUDA_VISIBLE_DEVICES=\"" : "", vis ? vis : "", vis ? "\")" : "");
    }
    return RT_OK;
}

rt_status train_device_choose(const char *flag, int local_rank, int local_size, int *device,
                              char *why, size_t why_size)
{
    *device = -1;
    if (!strcmp(flag, "cpu")) {
        snprintf(why, why_size, "device cpu (--device cpu)");
        return RT_OK;
    }
    int n = 0;
    TRY(rt_cuda_device_count(&n));
    if (n == 0) {
        if (!strcmp(flag, "cuda"))
            return rt_fail(RT_ERR_USAGE, "--device cuda: no CUDA device is visible");
        snprintf(why, why_size, "device cpu (--device auto: %s)",
                 rt_cuda_compiled() ? "no CUDA device visible" : "built without CUDA");
        return RT_OK;
    }
    *device = local_rank % n;
    snprintf(why, why_size, "device cuda:%d (--device %s: node-local rank %d of %d, %d GPU%s visible%s)",
             *device, flag, local_rank, local_size, n, n == 1 ? "" : "s",
             local_size > n ? "; ranks share a GPU, which NCCL refuses with several ranks" : "");
    return RT_OK;
}

rt_status train_device_open(train_device_t *d, int device, bool tf32, bool eager,
                            const mlp_t *model, const optimizer_t *opt)
{
    memset(d, 0, sizeof *d);
    d->device = device;
    const char *tv = getenv("RT_COLL_TIMEOUT");
    d->timeout_s = tv && atof(tv) > 0 ? atof(tv) : 300.0;
    gpu_train_config_t cfg = {.device = device, .tf32 = tf32, .eager = eager};
    return gpu_train_create(&d->gpu, model, opt, &cfg);
}

/* gpu_reduce_fn: average across ranks with our ring on the device. */
static rt_status device_reduce(void *ctx, float *buf, int64_t count, void *stream)
{
    train_device_t *d = ctx;
    return nccl_allreduce_ring(d->nccl, buf, buf, (size_t)count, 0 /* f32 */, 1 /* average */,
                               stream);
}

/* gpu_wait_fn: NCCL's own wait, which aborts on an error or the deadline. */
static rt_status device_wait(void *ctx, void *stream)
{
    train_device_t *d = ctx;
    return nccl_comm_wait(d->nccl, stream, d->timeout_s);
}

rt_status train_device_start(train_device_t *d, int world, const mlp_t *model,
                             const optimizer_t *opt)
{
    if (world > 1) {
        TRY(nccl_comm_create(&d->nccl, MPI_COMM_WORLD, d->device));
        gpu_train_set_reduce(d->gpu, device_reduce, device_wait, d, d->timeout_s);
    }
    return gpu_train_upload(d->gpu, model, opt);
}

rt_status train_device_step(train_device_t *d, train_step_t *t, batch_fn next, void *next_ctx,
                            bool want_result, step_result_t *res, int64_t *steps)
{
    gpu_step_result_t g;
    memset(res, 0, sizeof *res);
    *steps = 0;
    TRY(gpu_train_step(d->gpu, t, next, next_ctx, want_result, &g));
    res->lr = g.lr;
    res->loss = NAN;
    if (!g.have)
        return RT_OK;
    res->loss = g.loss;
    res->grad_norm = g.grad_norm;
    res->clip_coef = g.clip_coef;
    *steps = g.steps;
    if (g.skipped > d->skipped_seen) {
        LOG_WARN("%lld non-finite step%s skipped on the device so far (--skip-nonfinite)",
                 (long long)g.skipped, g.skipped == 1 ? "" : "s");
        d->skipped_seen = g.skipped;
    }
    return RT_OK;
}

rt_status train_device_download(train_device_t *d, mlp_t *model, optimizer_t *opt)
{
    return gpu_train_download(d->gpu, model, opt);
}

void train_device_abort(train_device_t *d)
{
    if (d->nccl)
        nccl_comm_abort(d->nccl);
}

void train_device_close(train_device_t *d)
{
    nccl_comm_destroy(d->nccl);
    gpu_train_destroy(d->gpu);
    d->nccl = NULL;
    d->gpu = NULL;
}
