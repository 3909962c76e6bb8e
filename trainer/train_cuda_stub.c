/* train_cuda_stub.c - the CPU-only build's GPU training step: every call
 * reports that the CUDA path is not compiled in, so callers need no #ifdef. */
#include "trainer/train_cuda.h"

static rt_status train_cuda_unsupported(const char *who)
{
    return rt_fail(RT_ERR_UNSUPPORTED, "%s: this build has no CUDA path (configured with RT_CUDA=OFF or without nvcc)", who);
}

rt_status gpu_train_create(gpu_train_t **out, const mlp_t *model, const optimizer_t *opt,
                           const gpu_train_config_t *cfg)
{
    (void)model, (void)opt, (void)cfg;
    if (out)
        *out = NULL;
    return train_cuda_unsupported("gpu_train_create");
}

void gpu_train_destroy(gpu_train_t *g)
{
    (void)g;
}

void gpu_train_set_reduce(gpu_train_t *g, gpu_reduce_fn reduce, gpu_wait_fn wait, void *ctx,
                          double timeout_s)
{
    (void)g, (void)reduce, (void)wait, (void)ctx, (void)timeout_s;
}

void *gpu_train_stream(gpu_train_t *g)
{
    (void)g;
    return NULL;
}

const char *gpu_train_mode(const gpu_train_t *g)
{
    (void)g;
    return "none";
}

rt_status gpu_train_upload(gpu_train_t *g, const mlp_t *model, const optimizer_t *opt)
{
    (void)g, (void)model, (void)opt;
    return train_cuda_unsupported("gpu_train_upload");
}

rt_status gpu_train_download(gpu_train_t *g, mlp_t *model, optimizer_t *opt)
{
    (void)g, (void)model, (void)opt;
    return train_cuda_unsupported("gpu_train_download");
}

rt_status gpu_train_step(gpu_train_t *g, train_step_t *t, batch_fn next, void *next_ctx,
                         bool want_result, gpu_step_result_t *res)
{
    (void)g, (void)t, (void)next, (void)next_ctx, (void)want_result, (void)res;
    return train_cuda_unsupported("gpu_train_step");
}

void *gpu_train_host_alloc(size_t bytes, void *ctx)
{
    (void)bytes, (void)ctx;
    return NULL;
}

void gpu_train_host_free(void *ptr, void *ctx)
{
    (void)ptr, (void)ctx;
}
