/* op_cuda.h - CUDA versions of the ops in op.h, same names with _cuda and the
 * same argument order, on device pointers, plus a context (stream, cuBLAS
 * handle, TF32 switch) as the last argument. Every function returns a status;
 * launches are checked. In the CPU-only build a stub returns
 * RT_ERR_UNSUPPORTED from every function, so callers need no #ifdef. */
#ifndef RT_TRAINER_OP_CUDA_H
#define RT_TRAINER_OP_CUDA_H

#include <stdbool.h>
#include <stdint.h>

#include "common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rt_cuda_ctx rt_cuda_ctx_t;

/* Selects device `device`, creates a stream and a cuBLAS handle on it.
 * tf32=false keeps full fp32 matrix products. */
rt_status cuda_ctx_create(rt_cuda_ctx_t **out, int device, bool tf32);
void cuda_ctx_destroy(rt_cuda_ctx_t *ctx);
/* The cudaStream_t, as void* so that C callers need no CUDA headers. */
void *cuda_ctx_stream(rt_cuda_ctx_t *ctx);
rt_status cuda_ctx_sync(rt_cuda_ctx_t *ctx);

rt_status linear_forward_cuda(float *out, const float *inp, const float *weight,
                              const float *bias, int B, int C, int OC, rt_cuda_ctx_t *ctx);
rt_status linear_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, int B, int C, int OC,
                               rt_cuda_ctx_t *ctx);
rt_status relu_forward_cuda(float *out, const float *inp, int64_t N, rt_cuda_ctx_t *ctx);
rt_status relu_backward_cuda(float *dinp, const float *dout, const float *out, int64_t N,
                             rt_cuda_ctx_t *ctx);
rt_status softmax_xent_forward_cuda(float *losses, float *probs, const float *logits,
                                    const int32_t *labels, int B, int V, rt_cuda_ctx_t *ctx);
rt_status softmax_xent_backward_cuda(float *dlogits, const float *probs, const int32_t *labels,
                                     float dloss_scale, int B, int V, rt_cuda_ctx_t *ctx);
/* Writes the count into *count_dev (an int64 on the device). */
rt_status accuracy_count_cuda(int64_t *count_dev, const float *logits, const int32_t *labels,
                              int B, int V, rt_cuda_ctx_t *ctx);
/* Adds the sum of squares of x into *acc_dev (a double on the device). */
rt_status sum_squares_cuda(double *acc_dev, const float *x, int64_t N, rt_cuda_ctx_t *ctx);
rt_status adamw_step_cuda(float *params, float *m, float *v, const float *grads, int64_t N,
                          float lr, float beta1, float beta2, float eps, float weight_decay,
                          int64_t t, rt_cuda_ctx_t *ctx);
rt_status sgd_step_cuda(float *params, float *momentum_buf, const float *grads, int64_t N,
                        float lr, float momentum, float weight_decay, rt_cuda_ctx_t *ctx);

#ifdef __cplusplus
}
#endif

#endif
