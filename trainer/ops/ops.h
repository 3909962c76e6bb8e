/* ops.h - the op table: one table of functions per device (the CPU fp32
 * oracle in device_cpu.c, CUDA in device_cuda.cu), in the style of NCCL's
 * transports, so that a model, the optimizer and the training step are
 * written once and run on either. Every op returns rt_status, works on
 * dtype-tagged views (tensor.h) of memory on the op's device, and checks
 * the views' types and shapes before it touches them. Today every op takes
 * float32 (int32 for labels); another dtype is refused with a message.
 *
 * Argument order, for every op: outputs, saved buffers, inputs, weights,
 * then the device. Gradients are d-prefixed; backward ACCUMULATES into them
 * (+=), so callers zero gradient buffers once per step. A NULL gradient
 * means "not needed" (dinp of the first layer, for example).
 *
 * Each op has exactly one CPU implementation, the oracle (op_cpu.h), which
 * the CUDA implementation (op_cuda.h) is tested against
 * (tests/gpu/test_op_cuda.c). Ops on the step state (step_state.h) keep a
 * GPU step free of host round trips. */
#ifndef RT_TRAINER_OPS_OPS_H
#define RT_TRAINER_OPS_OPS_H

#include <stdint.h>

#include "common/status.h"
#include "trainer/ops/step_state.h"
#include "trainer/ops/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rt_device rt_device_t;

typedef struct rt_ops {
    /* linear: out[B,OC] = inp[B,C] . weight[OC,C]^T + bias[OC] (bias may be
     * NULL); weight is stored [out, in] like nn.Linear's. */
    rt_status (*linear_forward)(const rt_tensor_t *out, const rt_tensor_t *inp,
                                const rt_tensor_t *weight, const rt_tensor_t *bias,
                                rt_device_t *dev);
    rt_status (*linear_backward)(const rt_tensor_t *dinp, const rt_tensor_t *dweight,
                                 const rt_tensor_t *dbias, const rt_tensor_t *dout,
                                 const rt_tensor_t *inp, const rt_tensor_t *weight,
                                 rt_device_t *dev);
    /* The weight gradient of output rows [row0, row0 + R) only:
     * dweight[R,C] += dout[:, row0:row0+R]^T . inp[B,C], dweight being the
     * rows' block of the full gradient. Lets backward finish a large
     * layer's gradient a block at a time, so that the gradient sync can
     * start on each block while the next computes. */
    rt_status (*linear_weight_rows)(const rt_tensor_t *dweight, const rt_tensor_t *dout,
                                    const rt_tensor_t *inp, int64_t row0, rt_device_t *dev);
    /* relu: out = max(inp, 0); backward masks by the saved output. In place
     * (out == inp; dinp == dout: the gradient is replaced, not added). */
    rt_status (*relu_forward)(const rt_tensor_t *out, const rt_tensor_t *inp, rt_device_t *dev);
    rt_status (*relu_backward)(const rt_tensor_t *dinp, const rt_tensor_t *dout,
                               const rt_tensor_t *out, rt_device_t *dev);
    /* softmax cross-entropy, fused: losses[B] and probs[B,V] (saved) from
     * logits[B,V] and int32 labels[B]; backward adds scale*(probs - onehot). */
    rt_status (*softmax_xent_forward)(const rt_tensor_t *losses, const rt_tensor_t *probs,
                                      const rt_tensor_t *logits, const rt_tensor_t *labels,
                                      rt_device_t *dev);
    rt_status (*softmax_xent_backward)(const rt_tensor_t *dlogits, const rt_tensor_t *probs,
                                       const rt_tensor_t *labels, float scale, rt_device_t *dev);
    /* *count (an int64 in the device's memory) = rows whose argmax (the
     * first maximum) is the label. */
    rt_status (*accuracy_count)(int64_t *count, const rt_tensor_t *logits,
                                const rt_tensor_t *labels, rt_device_t *dev);
    /* *acc (a double in the device's memory) += sum of x^2, in double. */
    rt_status (*sum_squares)(double *acc, const rt_tensor_t *x, rt_device_t *dev);

    /* ---- the transformer's ops (the exact definitions: op_cpu.h). A device
     * that lacks them leaves them NULL; a model that needs them refuses to
     * open there. B rows of T positions, C channels, NH heads. */
    /* out [B*T, C] = wte[tokens] + wpe[position]; tokens int32 [B, T],
     * wte [V, C], wpe [ctx >= T, C]. Backward adds into dwte and dwpe. */
    rt_status (*embedding_forward)(const rt_tensor_t *out, const rt_tensor_t *tokens,
                                   const rt_tensor_t *wte, const rt_tensor_t *wpe,
                                   rt_device_t *dev);
    rt_status (*embedding_backward)(const rt_tensor_t *dwte, const rt_tensor_t *dwpe,
                                    const rt_tensor_t *dout, const rt_tensor_t *tokens,
                                    rt_device_t *dev);
    /* LayerNorm of the rows of inp [N, C] with weight, bias [C]; mean and
     * rstd [N] saved. */
    rt_status (*layernorm_forward)(const rt_tensor_t *out, const rt_tensor_t *mean,
                                   const rt_tensor_t *rstd, const rt_tensor_t *inp,
                                   const rt_tensor_t *weight, const rt_tensor_t *bias, float eps,
                                   rt_device_t *dev);
    rt_status (*layernorm_backward)(const rt_tensor_t *dinp, const rt_tensor_t *dweight,
                                    const rt_tensor_t *dbias, const rt_tensor_t *dout,
                                    const rt_tensor_t *inp, const rt_tensor_t *weight,
                                    const rt_tensor_t *mean, const rt_tensor_t *rstd,
                                    rt_device_t *dev);
    /* GELU (tanh approximation); backward adds dout * gelu'(inp) into dinp. */
    rt_status (*gelu_forward)(const rt_tensor_t *out, const rt_tensor_t *inp, rt_device_t *dev);
    rt_status (*gelu_backward)(const rt_tensor_t *dinp, const rt_tensor_t *inp,
                               const rt_tensor_t *dout, rt_device_t *dev);
    /* out = a + b, elementwise (out may alias a or b). */
    rt_status (*residual_forward)(const rt_tensor_t *out, const rt_tensor_t *a,
                                  const rt_tensor_t *b, rt_device_t *dev);
    /* Causal self-attention: qkv [B, T, 3C] -> out [B, T, C], att [B, NH, T,
     * T] saved (NH from att's shape). Backward adds into dqkv; scratch has
     * att's shape and is overwritten. */
    rt_status (*attention_forward)(const rt_tensor_t *out, const rt_tensor_t *att,
                                   const rt_tensor_t *qkv, rt_device_t *dev);
    rt_status (*attention_backward)(const rt_tensor_t *dqkv, const rt_tensor_t *scratch,
                                    const rt_tensor_t *dout, const rt_tensor_t *qkv,
                                    const rt_tensor_t *att, rt_device_t *dev);

    /* Fused optimizer updates over whole views (any slice of an arena), with
     * the clip factor, skip flag and scalars of this step read from the
     * device's memory (update_math.h has the rules). m/v and momentum_buf
     * have the parameters' length; momentum_buf is NULL without momentum. */
    rt_status (*adamw_update)(const rt_tensor_t *params, const rt_tensor_t *m,
                              const rt_tensor_t *v, const rt_tensor_t *grads, float beta1,
                              float beta2, float eps, float weight_decay,
                              const optim_scalars_t *scalars, rt_device_t *dev);
    rt_status (*sgd_update)(const rt_tensor_t *params, const rt_tensor_t *momentum_buf,
                            const rt_tensor_t *grads, float momentum, float weight_decay,
                            const optim_scalars_t *scalars, rt_device_t *dev);

    /* The step state (in the device's memory). */
    /* A new step: lr, index; the step's loss and sum of squares zeroed. */
    rt_status (*step_begin)(step_state_t *s, float lr, long long step_index, rt_device_t *dev);
    /* s->step_loss += (sum of losses, in double) / denom. */
    rt_status (*step_add_loss)(step_state_t *s, const rt_tensor_t *losses, double denom,
                               rt_device_t *dev);
    /* to_float: s->loss_f = (float)s->step_loss (before the ranks average
     * it); otherwise s->step_loss = s->loss_f (after). */
    rt_status (*step_loss_float)(step_state_t *s, int to_float, rt_device_t *dev);
    /* update_finalize() of update_math.h. */
    rt_status (*step_finalize)(step_state_t *s, double max_norm, int adamw, float beta1,
                               float beta2, rt_device_t *dev);
    /* The accumulators "since the last read" back to zero (and no
     * non-finite step since then). */
    rt_status (*step_reset_results)(step_state_t *s, rt_device_t *dev);
} rt_ops_t;

#ifdef __cplusplus
}
#endif

#endif
