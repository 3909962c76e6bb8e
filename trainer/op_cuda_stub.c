/* op_cuda_stub.c - the CPU-only build's CUDA ops: every call reports that the
 * CUDA path is not compiled in, so callers need no #ifdef. */
#include "trainer/op_cuda.h"

#include <stddef.h>

static rt_status op_cuda_unsupported(const char *who)
{
    return rt_fail(RT_ERR_UNSUPPORTED, "%s: this build has no CUDA path (configured with RT_CUDA=OFF or without nvcc)", who);
}

rt_status cuda_ctx_create(rt_cuda_ctx_t **out, int device, bool tf32)
{
    if (out != NULL)
        *out = NULL;
    return op_cuda_unsupported("cuda_ctx_create");
}

void cuda_ctx_destroy(rt_cuda_ctx_t *ctx)
{
}

void *cuda_ctx_stream(rt_cuda_ctx_t *ctx)
{
    return NULL;
}

rt_status cuda_ctx_sync(rt_cuda_ctx_t *ctx)
{
    return op_cuda_unsupported("cuda_ctx_sync");
}

rt_status linear_forward_cuda(float *out, const float *inp, const float *weight,
                              const float *bias, int B, int C, int OC, rt_cuda_ctx_t *ctx)
{
    return op_cuda_unsupported("linear_forward_cuda");
}

rt_status linear_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, int B, int C, int OC,
                               rt_cuda_ctx_t *ctx)
{
    return op_cuda_unsupported("linear_backward_cuda");
}

rt_status relu_forward_cuda(float *out, const float *inp, int64_t N, rt_cuda_ctx_t *ctx)
{
    return op_cuda_unsupported("relu_forward_cuda");
}

rt_status relu_backward_cuda(float *dinp, const float *dout, const float *out, int64_t N,
                             rt_cuda_ctx_t *ctx)
{
    return op_cuda_unsupported("relu_backward_cuda");
}

rt_status softmax_xent_forward_cuda(float *losses, float *probs, const float *logits,
                                    const int32_t *labels, int B, int V, rt_cuda_ctx_t *ctx)
{
    return op_cuda_unsupported("softmax_xent_forward_cuda");
}

rt_status softmax_xent_backward_cuda(float *dlogits, const float *probs, const int32_t *labels,
                                     float dloss_scale, int B, int V, rt_cuda_ctx_t *ctx)
{
    return op_cuda_unsupported("softmax_xent_backward_cuda");
}

rt_status accuracy_count_cuda(int64_t *count_dev, const float *logits, const int32_t *labels,
                              int B, int V, rt_cuda_ctx_t *ctx)
{
    return op_cuda_unsupported("accuracy_count_cuda");
}

rt_status sum_squares_cuda(double *acc_dev, const float *x, int64_t N, rt_cuda_ctx_t *ctx)
{
    return op_cuda_unsupported("sum_squares_cuda");
}

rt_status adamw_step_cuda(float *params, float *m, float *v, const float *grads, int64_t N,
                          float lr, float beta1, float beta2, float eps, float weight_decay,
                          int64_t t, rt_cuda_ctx_t *ctx)
{
    return op_cuda_unsupported("adamw_step_cuda");
}

rt_status sgd_step_cuda(float *params, float *momentum_buf, const float *grads, int64_t N,
                        float lr, float momentum, float weight_decay, rt_cuda_ctx_t *ctx)
{
    return op_cuda_unsupported("sgd_step_cuda");
}
