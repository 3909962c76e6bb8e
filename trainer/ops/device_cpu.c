/* device_cpu.c - the CPU device: host memory, work that is done when the
 * call returns, no graphs, batches used where they lie; and its op table:
 * the checks of op_checks.h in front of the CPU kernels of op_cpu.h. */
/* POSIX: clock_gettime (common/timer.h) */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "common/timer.h"
#include "trainer/ops/device.h"
#include "trainer/ops/op_checks.h"
#include "trainer/ops/op_cpu.h"
#include "trainer/ops/update_math.h"

#define F32P(t) ((float *)(t)->data)
#define OPTF32P(t) ((t) ? (float *)(t)->data : NULL)

/* ---- ops -------------------------------------------------------------------- */

static rt_status cpu_linear_forward(const rt_tensor_t *out, const rt_tensor_t *inp,
                                    const rt_tensor_t *weight, const rt_tensor_t *bias,
                                    rt_device_t *dev)
{
    int B, C, OC;
    TRY(op_check_linear_forward(out, inp, weight, bias, &B, &C, &OC));
    linear_forward_cpu(F32P(out), F32P(inp), F32P(weight), OPTF32P(bias), B, C, OC);
    return RT_OK;
}

static rt_status cpu_linear_backward(const rt_tensor_t *dinp, const rt_tensor_t *dweight,
                                     const rt_tensor_t *dbias, const rt_tensor_t *dout,
                                     const rt_tensor_t *inp, const rt_tensor_t *weight,
                                     rt_device_t *dev)
{
    int B, C, OC;
    TRY(op_check_linear_backward(dinp, dweight, dbias, dout, inp, weight, &B, &C, &OC));
    linear_backward_cpu(OPTF32P(dinp), OPTF32P(dweight), OPTF32P(dbias), F32P(dout), F32P(inp),
                        F32P(weight), B, C, OC);
    return RT_OK;
}

static rt_status cpu_linear_weight_rows(const rt_tensor_t *dweight, const rt_tensor_t *dout,
                                        const rt_tensor_t *inp, int64_t row0, rt_device_t *dev)
{
    (void)dev;
    int B, C, OC, R;
    TRY(op_check_linear_weight_rows(dweight, dout, inp, row0, &B, &C, &OC, &R));
    linear_weight_rows_cpu(F32P(dweight), F32P(dout), F32P(inp), B, C, OC, (int)row0, R);
    return RT_OK;
}

static rt_status cpu_relu_forward(const rt_tensor_t *out, const rt_tensor_t *inp, rt_device_t *dev)
{
    int64_t n;
    TRY(op_check_same_f32("relu_forward", out, "out", inp, "inp", &n));
    relu_forward_cpu(F32P(out), F32P(inp), n);
    return RT_OK;
}

static rt_status cpu_relu_backward(const rt_tensor_t *dinp, const rt_tensor_t *dout,
                                   const rt_tensor_t *out, rt_device_t *dev)
{
    int64_t n;
    if (!dinp)
        return RT_OK;
    TRY(op_check_same_f32("relu_backward", dinp, "dinp", dout, "dout", &n));
    TRY(op_check_same_f32("relu_backward", dinp, "dinp", out, "out", &n));
    relu_backward_cpu(F32P(dinp), F32P(dout), F32P(out), n);
    return RT_OK;
}

static rt_status cpu_xent_forward(const rt_tensor_t *losses, const rt_tensor_t *probs,
                                  const rt_tensor_t *logits, const rt_tensor_t *labels,
                                  rt_device_t *dev)
{
    int B, V;
    TRY(op_check_xent("softmax_xent_forward", logits, "logits", labels, losses, "losses", probs,
                      "probs", &B, &V));
    softmax_xent_forward_cpu(F32P(losses), F32P(probs), F32P(logits), labels->data, B, V);
    return RT_OK;
}

static rt_status cpu_xent_backward(const rt_tensor_t *dlogits, const rt_tensor_t *probs,
                                   const rt_tensor_t *labels, float scale, rt_device_t *dev)
{
    int B, V;
    TRY(op_check_xent("softmax_xent_backward", probs, "probs", labels, NULL, NULL, dlogits,
                      "dlogits", &B, &V));
    softmax_xent_backward_cpu(F32P(dlogits), F32P(probs), labels->data, scale, B, V);
    return RT_OK;
}

static rt_status cpu_accuracy_count(int64_t *count, const rt_tensor_t *logits,
                                    const rt_tensor_t *labels, rt_device_t *dev)
{
    int B, V;
    TRY(op_check_xent("accuracy_count", logits, "logits", labels, NULL, NULL, NULL, NULL, &B, &V));
    *count = accuracy_count_cpu(F32P(logits), labels->data, B, V);
    return RT_OK;
}

static rt_status cpu_sum_squares(double *acc, const rt_tensor_t *x, rt_device_t *dev)
{
    TRY(tensor_expect(x, RT_DTYPE_F32, 0, "sum_squares", "x"));
    *acc += sum_squares_cpu(F32P(x), tensor_numel(x));
    return RT_OK;
}

static rt_status cpu_adamw_update(const rt_tensor_t *params, const rt_tensor_t *m,
                                  const rt_tensor_t *v, const rt_tensor_t *grads, float beta1,
                                  float beta2, float eps, float weight_decay,
                                  const optim_scalars_t *scalars, rt_device_t *dev)
{
    int64_t n;
    TRY(op_check_update("adamw_update", params, grads, m, "m", v, "v", &n));
    CHECK_ARG(m && v && scalars, "adamw_update: needs both moments and the scalars");
    adamw_update_cpu(F32P(params), F32P(m), F32P(v), F32P(grads), n, beta1, beta2, eps,
                     weight_decay, scalars);
    return RT_OK;
}

static rt_status cpu_sgd_update(const rt_tensor_t *params, const rt_tensor_t *momentum_buf,
                                const rt_tensor_t *grads, float momentum, float weight_decay,
                                const optim_scalars_t *scalars, rt_device_t *dev)
{
    int64_t n;
    TRY(op_check_update("sgd_update", params, grads, momentum_buf, "momentum_buf", NULL, NULL, &n));
    CHECK_ARG(scalars, "sgd_update: no scalars");
    sgd_update_cpu(F32P(params), OPTF32P(momentum_buf), F32P(grads), n, momentum, weight_decay,
                   scalars);
    return RT_OK;
}

static rt_status cpu_step_begin(step_state_t *s, float lr, long long step_index, rt_device_t *dev)
{
    s->opt.lr = lr;
    s->step_index = step_index;
    s->step_loss = 0.0;
    s->sumsq = 0.0;
    return RT_OK;
}

static rt_status cpu_step_add_loss(step_state_t *s, const rt_tensor_t *losses, double denom,
                                   rt_device_t *dev)
{
    TRY(tensor_expect(losses, RT_DTYPE_F32, 0, "step_add_loss", "losses"));
    const float *l = losses->data;
    double sum = 0.0;
    for (int64_t i = 0, n = tensor_numel(losses); i < n; i++)
        sum += l[i];
    s->step_loss += sum / denom;
    return RT_OK;
}

static rt_status cpu_step_loss_float(step_state_t *s, int to_float, rt_device_t *dev)
{
    if (to_float)
        s->loss_f = (float)s->step_loss;
    else
        s->step_loss = (double)s->loss_f;
    return RT_OK;
}

static rt_status cpu_step_finalize(step_state_t *s, double max_norm, int adamw, float beta1,
                                   float beta2, rt_device_t *dev)
{
    update_finalize(s, max_norm, adamw, beta1, beta2);
    return RT_OK;
}

static rt_status cpu_step_reset_results(step_state_t *s, rt_device_t *dev)
{
    s->loss_acc = 0.0;
    s->loss_steps = 0;
    s->first_nonfinite = -1;
    return RT_OK;
}

/* ---- the transformer's ops ---- */

static rt_status cpu_embedding_forward(const rt_tensor_t *out, const rt_tensor_t *tokens,
                                       const rt_tensor_t *wte, const rt_tensor_t *wpe,
                                       rt_device_t *dev)
{
    int B, T, C;
    TRY(op_check_embedding("embedding_forward", out, tokens, wte, wpe, &B, &T, &C));
    CHECK_ARG(wte && wpe, "embedding_forward: wte and wpe are required");
    embedding_forward_cpu(F32P(out), tokens->data, F32P(wte), F32P(wpe), B, T, C);
    return RT_OK;
}

static rt_status cpu_embedding_backward(const rt_tensor_t *dwte, const rt_tensor_t *dwpe,
                                        const rt_tensor_t *dout, const rt_tensor_t *tokens,
                                        rt_device_t *dev)
{
    int B, T, C;
    TRY(op_check_embedding("embedding_backward", dout, tokens, dwte, dwpe, &B, &T, &C));
    embedding_backward_cpu(OPTF32P(dwte), OPTF32P(dwpe), F32P(dout), tokens->data, B, T, C);
    return RT_OK;
}

static rt_status cpu_layernorm_forward(const rt_tensor_t *out, const rt_tensor_t *mean,
                                       const rt_tensor_t *rstd, const rt_tensor_t *inp,
                                       const rt_tensor_t *weight, const rt_tensor_t *bias,
                                       float eps, rt_device_t *dev)
{
    int64_t N;
    int C;
    TRY(op_check_layernorm("layernorm_forward", out, mean, rstd, inp, weight, bias, &N, &C));
    CHECK_ARG(out && bias, "layernorm_forward: out and bias are required");
    layernorm_forward_cpu(F32P(out), F32P(mean), F32P(rstd), F32P(inp), F32P(weight),
                          F32P(bias), N, C, eps);
    return RT_OK;
}

static rt_status cpu_layernorm_backward(const rt_tensor_t *dinp, const rt_tensor_t *dweight,
                                        const rt_tensor_t *dbias, const rt_tensor_t *dout,
                                        const rt_tensor_t *inp, const rt_tensor_t *weight,
                                        const rt_tensor_t *mean, const rt_tensor_t *rstd,
                                        rt_device_t *dev)
{
    int64_t N;
    int C;
    TRY(op_check_layernorm("layernorm_backward", dout, mean, rstd, inp, weight, dbias, &N, &C));
    if (dinp)
        TRY(op_check_same_f32("layernorm_backward", dinp, "dinp", inp, "inp", &N));
    if (dweight)
        TRY(op_check_same_f32("layernorm_backward", dweight, "dweight", weight, "weight", &N));
    layernorm_backward_cpu(OPTF32P(dinp), OPTF32P(dweight), OPTF32P(dbias), F32P(dout),
                           F32P(inp), F32P(weight), F32P(mean), F32P(rstd), inp->shape[0], C);
    return RT_OK;
}

static rt_status cpu_gelu_forward(const rt_tensor_t *out, const rt_tensor_t *inp, rt_device_t *dev)
{
    int64_t n;
    TRY(op_check_same_f32("gelu_forward", out, "out", inp, "inp", &n));
    gelu_forward_cpu(F32P(out), F32P(inp), n);
    return RT_OK;
}

static rt_status cpu_gelu_backward(const rt_tensor_t *dinp, const rt_tensor_t *inp,
                                   const rt_tensor_t *dout, rt_device_t *dev)
{
    int64_t n;
    TRY(op_check_same_f32("gelu_backward", dinp, "dinp", inp, "inp", &n));
    TRY(op_check_same_f32("gelu_backward", dinp, "dinp", dout, "dout", &n));
    gelu_backward_cpu(F32P(dinp), F32P(inp), F32P(dout), n);
    return RT_OK;
}

static rt_status cpu_residual_forward(const rt_tensor_t *out, const rt_tensor_t *a,
                                      const rt_tensor_t *b, rt_device_t *dev)
{
    int64_t n;
    TRY(op_check_same_f32("residual_forward", out, "out", a, "a", &n));
    TRY(op_check_same_f32("residual_forward", out, "out", b, "b", &n));
    residual_forward_cpu(F32P(out), F32P(a), F32P(b), n);
    return RT_OK;
}

static rt_status cpu_attention_forward(const rt_tensor_t *out, const rt_tensor_t *att,
                                       const rt_tensor_t *qkv, rt_device_t *dev)
{
    int B, T, C, NH;
    TRY(op_check_attention("attention_forward", out, att, NULL, qkv, &B, &T, &C, &NH));
    CHECK_ARG(out, "attention_forward: out is required");
    attention_forward_cpu(F32P(out), F32P(att), F32P(qkv), B, T, C, NH);
    return RT_OK;
}

static rt_status cpu_attention_backward(const rt_tensor_t *dqkv, const rt_tensor_t *scratch,
                                        const rt_tensor_t *dout, const rt_tensor_t *qkv,
                                        const rt_tensor_t *att, rt_device_t *dev)
{
    int B, T, C, NH;
    TRY(op_check_attention("attention_backward", dout, att, scratch, qkv, &B, &T, &C, &NH));
    CHECK_ARG(scratch, "attention_backward: scratch is required");
    if (!dqkv)
        return RT_OK;
    int64_t n;
    TRY(op_check_same_f32("attention_backward", dqkv, "dqkv", qkv, "qkv", &n));
    attention_backward_cpu(F32P(dqkv), F32P(scratch), F32P(dout), F32P(qkv), F32P(att), B, T, C,
                           NH);
    return RT_OK;
}

const rt_ops_t rt_ops_cpu = {
    .linear_forward = cpu_linear_forward,
    .linear_backward = cpu_linear_backward,
    .linear_weight_rows = cpu_linear_weight_rows,
    .embedding_forward = cpu_embedding_forward,
    .embedding_backward = cpu_embedding_backward,
    .layernorm_forward = cpu_layernorm_forward,
    .layernorm_backward = cpu_layernorm_backward,
    .gelu_forward = cpu_gelu_forward,
    .gelu_backward = cpu_gelu_backward,
    .residual_forward = cpu_residual_forward,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .relu_forward = cpu_relu_forward,
    .relu_backward = cpu_relu_backward,
    .softmax_xent_forward = cpu_xent_forward,
    .softmax_xent_backward = cpu_xent_backward,
    .accuracy_count = cpu_accuracy_count,
    .sum_squares = cpu_sum_squares,
    .adamw_update = cpu_adamw_update,
    .sgd_update = cpu_sgd_update,
    .step_begin = cpu_step_begin,
    .step_add_loss = cpu_step_add_loss,
    .step_loss_float = cpu_step_loss_float,
    .step_finalize = cpu_step_finalize,
    .step_reset_results = cpu_step_reset_results,
};

/* ---- runtime ----------------------------------------------------------------- */

static rt_status cpu_alloc(rt_device_t *d, void **ptr, size_t bytes)
{
    return host_alloc(ptr, bytes);
}

static void cpu_free(rt_device_t *d, void *ptr)
{
    host_free(ptr);
}

static rt_status cpu_fill(rt_device_t *d, void *ptr, int byte, size_t bytes)
{
    memset(ptr, byte, bytes);
    return RT_OK;
}

static rt_status cpu_copy(rt_device_t *d, void *dst, const void *src, size_t bytes)
{
    if (dst != src)
        memmove(dst, src, bytes);
    return RT_OK;
}

static rt_status cpu_sync(rt_device_t *d)
{
    return RT_OK;
}

static void *cpu_stream(const rt_device_t *d)
{
    return NULL;
}

static rt_status cpu_stager_create(rt_device_t *d, int slots, size_t input_bytes,
                                   size_t target_bytes, void **state)
{
    *state = NULL;
    return RT_OK;
}

/* The CPU computes on the batch where it lies: no copy. */
static rt_status cpu_stager_put(rt_device_t *d, void *state, int slot, const void *input,
                                size_t input_bytes, const void *target, size_t target_bytes,
                                void **dev_input, void **dev_target)
{
    *dev_input = (void *)input;
    *dev_target = (void *)target;
    return RT_OK;
}

static rt_status cpu_stager_release(rt_device_t *d, void *state, int slot, double timeout_s)
{
    return RT_OK;
}

static void cpu_stager_destroy(rt_device_t *d, void *state)
{
}

/* Work on the CPU is done when its call returns: the host clock times it. */
static rt_status cpu_timer_create(rt_device_t *d, void **state)
{
    *state = calloc(2, sizeof(double));
    CHECK_ALLOC(*state, 2 * sizeof(double));
    return RT_OK;
}

static rt_status cpu_timer_record(rt_device_t *d, void *state, int stop)
{
    ((double *)state)[stop ? 1 : 0] = rt_now();
    return RT_OK;
}

static rt_status cpu_timer_elapsed(rt_device_t *d, void *state, double *seconds)
{
    const double *t = state;
    *seconds = t[1] - t[0];
    return RT_OK;
}

static void cpu_timer_destroy(rt_device_t *d, void *state)
{
    free(state);
}

const device_impl_t device_impl_cpu = {
    .name = "cpu",
    .host_memory = true,
    .graphs = false,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .fill = cpu_fill,
    .to_device = cpu_copy,
    .to_host = cpu_copy,
    .sync = cpu_sync,
    .stream = cpu_stream,
    .stager_create = cpu_stager_create,
    .stager_put = cpu_stager_put,
    .stager_release = cpu_stager_release,
    .stager_destroy = cpu_stager_destroy,
    .timer_create = cpu_timer_create,
    .timer_record = cpu_timer_record,
    .timer_elapsed = cpu_timer_elapsed,
    .timer_destroy = cpu_timer_destroy,
};
