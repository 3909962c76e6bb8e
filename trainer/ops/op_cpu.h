/* op_cpu.h - the CPU implementations of the ops (float32 row-major arrays,
 * OpenBLAS and C loops): the oracle that the CUDA versions (op_cuda.h) are
 * tested against, and the kernels behind the CPU device's op table
 * (device_cpu.c, which checks the tensor views and calls these).
 *
 * Argument order, for every op and both devices: outputs, saved buffers,
 * inputs, weights, sizes. Gradients are d-prefixed; backward ACCUMULATES into
 * them (+=), so callers zero gradient buffers once per step. A NULL gradient
 * pointer means "not needed" (for example dinp of the first layer).
 */
#ifndef RT_TRAINER_OPS_OP_CPU_H
#define RT_TRAINER_OPS_OP_CPU_H

#include <stdint.h>

#include "trainer/ops/step_state.h"

/* linear: out[B,OC] = inp[B,C] . weight[OC,C]^T + bias[OC] (bias may be NULL).
 * weight is stored [out, in] like PyTorch's nn.Linear. */
void linear_forward_cpu(float *out, const float *inp, const float *weight, const float *bias,
                        int B, int C, int OC);
void linear_backward_cpu(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int B, int C, int OC);
/* dweight[R,C] += dout[:, row0:row0+R]^T . inp (dout [B, OC]). */
void linear_weight_rows_cpu(float *dweight, const float *dout, const float *inp, int B, int C,
                            int OC, int row0, int R);

/* relu: out = max(inp, 0); backward uses the saved output. Works in place
 * (out == inp, dinp == dout). */
void relu_forward_cpu(float *out, const float *inp, int64_t N);
void relu_backward_cpu(float *dinp, const float *dout, const float *out, int64_t N);

/* softmax cross-entropy, fused: losses[B] (per sample) and probs[B,V] (saved)
 * from logits[B,V] and labels[B] in [0, V). Backward adds
 * dloss_scale * (probs - onehot(label)) to dlogits; for a mean over a batch of
 * B pass dloss_scale = 1/B. */
void softmax_xent_forward_cpu(float *losses, float *probs, const float *logits,
                              const int32_t *labels, int B, int V);
void softmax_xent_backward_cpu(float *dlogits, const float *probs, const int32_t *labels,
                               float dloss_scale, int B, int V);

/* Number of rows whose argmax (first maximum) equals the label. */
int64_t accuracy_count_cpu(const float *logits, const int32_t *labels, int B, int V);

/* Sum of squares of N values, accumulated in double. */
double sum_squares_cpu(const float *x, int64_t N);

/* Fused optimizer updates of n elements with this step's scalars (clip
 * factor, skip flag, learning rate, AdamW's bias corrections), by the rules
 * of update_math.h. momentum_buf is NULL for SGD without momentum. */
void adamw_update_cpu(float *params, float *m, float *v, const float *grads, int64_t n,
                      float beta1, float beta2, float eps, float weight_decay,
                      const optim_scalars_t *s);
void sgd_update_cpu(float *params, float *momentum_buf, const float *grads, int64_t n,
                    float momentum, float weight_decay, const optim_scalars_t *s);

/* ---- the transformer's ops (op_cpu_transformer.c, op_cpu_attention.c) ----
 * N = rows (B*T positions), C = channels. */

/* Token and position embeddings: out[b*T+t, :] = wte[tokens[b,t], :] +
 * wpe[t, :]; backward adds dout's rows into the rows of dwte and dwpe that
 * they came from (either may be NULL). Tokens are valid (0 <= tok < V). */
void embedding_forward_cpu(float *out, const int32_t *tokens, const float *wte,
                           const float *wpe, int B, int T, int C);
void embedding_backward_cpu(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                            int B, int T, int C);

/* LayerNorm over the last dimension, as nn.LayerNorm(C, eps): mean and
 * biased variance per row, out = (x - mean) * rstd * weight + bias; mean and
 * rstd [N] are saved for backward, which adds into dinp, dweight, dbias
 * (each may be NULL). */
void layernorm_forward_cpu(float *out, float *mean, float *rstd, const float *inp,
                           const float *weight, const float *bias, int64_t N, int C, float eps);
void layernorm_backward_cpu(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, const float *mean,
                            const float *rstd, int64_t N, int C);

/* GELU, tanh approximation (F.gelu(x, approximate="tanh")); backward adds
 * dout * gelu'(inp) into dinp. */
void gelu_forward_cpu(float *out, const float *inp, int64_t N);
void gelu_backward_cpu(float *dinp, const float *inp, const float *dout, int64_t N);

/* out = a + b (the residual connections; out may alias a or b). */
void residual_forward_cpu(float *out, const float *a, const float *b, int64_t N);

/* Causal multi-head self-attention over a fused projection: qkv [B,T,3C]
 * holds q, k, v side by side, head h at columns h*hs..h*hs+hs-1 of each (hs =
 * C/NH). att [B,NH,T,T] (saved) is softmax(q.k^T / sqrt(hs)) with the
 * future masked (zeros above the diagonal); out [B,T,C] = att . v with the
 * heads side by side again. Backward adds into dqkv [B,T,3C]; scratch
 * [B,NH,T,T] is overwritten (the gradient of the scores). */
void attention_forward_cpu(float *out, float *att, const float *qkv, int B, int T, int C,
                           int NH);
void attention_backward_cpu(float *dqkv, float *scratch, const float *dout,
                            const float *qkv, const float *att, int B, int T, int C, int NH);

#endif
