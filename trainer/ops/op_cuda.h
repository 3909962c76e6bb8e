/* op_cuda.h - the CUDA implementations of the ops: the same names as the CPU
 * oracle (op_cpu.h) with _cuda, the same argument order and semantics, on
 * device pointers, plus a context (stream, cuBLAS handle, workspaces) as the
 * last argument. Every function returns a status; launches are checked;
 * work is enqueued on the context's stream and nothing waits except
 * cuda_ctx_sync(). CUDA builds only: the CUDA device (device_cuda.cu) wraps
 * these in its op table, and tests/gpu checks each against its oracle. */
#ifndef RT_TRAINER_OPS_OP_CUDA_H
#define RT_TRAINER_OPS_OP_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "trainer/ops/step_state.h"

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
int cuda_ctx_device(const rt_cuda_ctx_t *ctx);
rt_status cuda_ctx_sync(rt_cuda_ctx_t *ctx);

/* The bias gradient is summed in two deterministic passes (rows in chunks
 * of 64, then the chunks in order) through a scratch buffer the context
 * grows on first use; the first call with the largest batch must come
 * before a CUDA graph capture (a capture cannot allocate). */
rt_status linear_forward_cuda(float *out, const float *inp, const float *weight,
                              const float *bias, int B, int C, int OC, rt_cuda_ctx_t *ctx);
rt_status linear_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, int B, int C, int OC,
                               rt_cuda_ctx_t *ctx);
rt_status linear_weight_rows_cuda(float *dweight, const float *dout, const float *inp, int B,
                                  int C, int OC, int row0, int R, rt_cuda_ctx_t *ctx);
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
/* The fused updates of update_math.h; scalars_dev points to device memory
 * (usually &state->opt of the step state). */
rt_status adamw_update_cuda(float *params, float *m, float *v, const float *grads, int64_t n,
                            float beta1, float beta2, float eps, float weight_decay,
                            const optim_scalars_t *scalars_dev, rt_cuda_ctx_t *ctx);
rt_status sgd_update_cuda(float *params, float *momentum_buf, const float *grads, int64_t n,
                          float momentum, float weight_decay, const optim_scalars_t *scalars_dev,
                          rt_cuda_ctx_t *ctx);

/* ---- the transformer's ops (op_cuda_transformer.cu, op_cuda_attention.cu):
 * the oracle's definitions (op_cpu.h), fp32, every reduction in a fixed
 * order (no float atomics), so that a run repeats itself bit for bit. */

/* V = rows of wte (dwte): the CPU trusts the tokens, the GPU does not read
 * out of bounds for them: a token outside [0, V) gives a NaN row forward
 * and adds nothing backward. The backward needs no scratch and no atomics:
 * a block per 16 vocabulary rows walks the positions in order (dwte), a
 * thread per (position, column) the batch rows in order (dwpe): the CPU's
 * order of additions. */
rt_status embedding_forward_cuda(float *out, const int32_t *tokens, const float *wte,
                                 const float *wpe, int B, int T, int C, int V,
                                 rt_cuda_ctx_t *ctx);
rt_status embedding_backward_cuda(float *dwte, float *dwpe, const float *dout,
                                  const int32_t *tokens, int B, int T, int C, int V,
                                  rt_cuda_ctx_t *ctx);
/* dweight and dbias are summed in two passes (row chunks, then the chunks
 * in order) through the context's scratch, like linear's bias gradient. */
rt_status layernorm_forward_cuda(float *out, float *mean, float *rstd, const float *inp,
                                 const float *weight, const float *bias, int64_t N, int C,
                                 float eps, rt_cuda_ctx_t *ctx);
rt_status layernorm_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout,
                                  const float *inp, const float *weight, const float *mean,
                                  const float *rstd, int64_t N, int C, rt_cuda_ctx_t *ctx);
rt_status gelu_forward_cuda(float *out, const float *inp, int64_t N, rt_cuda_ctx_t *ctx);
rt_status gelu_backward_cuda(float *dinp, const float *inp, const float *dout, int64_t N,
                             rt_cuda_ctx_t *ctx);
rt_status residual_forward_cuda(float *out, const float *a, const float *b, int64_t N,
                                rt_cuda_ctx_t *ctx);
/* The products are cuBLAS strided-batched sgemms over the heads of one
 * batch row at a time (B calls per product); the causal softmax and its
 * backward are one warp per row of att. */
rt_status attention_forward_cuda(float *out, float *att, const float *qkv, int B, int T, int C,
                                 int NH, rt_cuda_ctx_t *ctx);
rt_status attention_backward_cuda(float *dqkv, float *scratch, const float *dout,
                                  const float *qkv, const float *att, int B, int T, int C,
                                  int NH, rt_cuda_ctx_t *ctx);

/* The step state's ops (ops.h), on a step_state_t in device memory. The
 * loss sum is one block, in a fixed order (deterministic). */
rt_status step_begin_cuda(step_state_t *s, float lr, long long step_index, rt_cuda_ctx_t *ctx);
rt_status step_add_loss_cuda(step_state_t *s, const float *losses, int64_t n, double denom,
                             rt_cuda_ctx_t *ctx);
rt_status step_loss_float_cuda(step_state_t *s, int to_float, rt_cuda_ctx_t *ctx);
rt_status step_finalize_cuda(step_state_t *s, double max_norm, int adamw, float beta1,
                             float beta2, rt_cuda_ctx_t *ctx);
rt_status step_reset_results_cuda(step_state_t *s, rt_cuda_ctx_t *ctx);

#ifdef __cplusplus
}
#endif

#endif
