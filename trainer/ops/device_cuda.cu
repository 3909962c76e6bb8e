/* device_cuda.cu - the CUDA device (device.h): its runtime (memory, the one
 * compute stream, copies, CUDA graphs, batch staging on a second stream
 * with events) and its op table, which checks each call's views
 * (op_checks.h) and enqueues the kernels of op_cuda.cu,
 * op_cuda_transformer.cu and op_cuda_attention.cu on the stream. */
extern "C" {
#include "common/check.h"
#include "trainer/ops/op_checks.h"
}
#include "trainer/ops/device.h"
#include "trainer/ops/op_cuda.h"

#include <cuda_runtime.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/check_cuda.h"

static rt_cuda_ctx_t *ctx_of(rt_device_t *d)
{
    return (rt_cuda_ctx_t *)d->backend;
}

static cudaStream_t stream_of(const rt_device_t *d)
{
    return (cudaStream_t)cuda_ctx_stream((rt_cuda_ctx_t *)d->backend);
}

#define F32P(t) ((float *)(t)->data)
#define OPTF32P(t) ((t) ? (float *)(t)->data : NULL)

/* ---- ops -------------------------------------------------------------------- */

static rt_status cu_linear_forward(const rt_tensor_t *out, const rt_tensor_t *inp,
                                   const rt_tensor_t *weight, const rt_tensor_t *bias,
                                   rt_device_t *dev)
{
    int B, C, OC;
    TRY(op_check_linear_forward(out, inp, weight, bias, &B, &C, &OC));
    return linear_forward_cuda(F32P(out), F32P(inp), F32P(weight), OPTF32P(bias), B, C, OC,
                               ctx_of(dev));
}

static rt_status cu_linear_backward(const rt_tensor_t *dinp, const rt_tensor_t *dweight,
                                    const rt_tensor_t *dbias, const rt_tensor_t *dout,
                                    const rt_tensor_t *inp, const rt_tensor_t *weight,
                                    rt_device_t *dev)
{
    int B, C, OC;
    TRY(op_check_linear_backward(dinp, dweight, dbias, dout, inp, weight, &B, &C, &OC));
    return linear_backward_cuda(OPTF32P(dinp), OPTF32P(dweight), OPTF32P(dbias), F32P(dout),
                                F32P(inp), F32P(weight), B, C, OC, ctx_of(dev));
}

static rt_status cu_linear_weight_rows(const rt_tensor_t *dweight, const rt_tensor_t *dout,
                                       const rt_tensor_t *inp, int64_t row0, rt_device_t *dev)
{
    int B, C, OC, R;
    TRY(op_check_linear_weight_rows(dweight, dout, inp, row0, &B, &C, &OC, &R));
    return linear_weight_rows_cuda(F32P(dweight), F32P(dout), F32P(inp), B, C, OC, (int)row0, R,
                                   ctx_of(dev));
}

static rt_status cu_relu_forward(const rt_tensor_t *out, const rt_tensor_t *inp, rt_device_t *dev)
{
    int64_t n;
    TRY(op_check_same_f32("relu_forward", out, "out", inp, "inp", &n));
    return relu_forward_cuda(F32P(out), F32P(inp), n, ctx_of(dev));
}

static rt_status cu_relu_backward(const rt_tensor_t *dinp, const rt_tensor_t *dout,
                                  const rt_tensor_t *out, rt_device_t *dev)
{
    int64_t n;
    if (!dinp)
        return RT_OK;
    TRY(op_check_same_f32("relu_backward", dinp, "dinp", dout, "dout", &n));
    TRY(op_check_same_f32("relu_backward", dinp, "dinp", out, "out", &n));
    return relu_backward_cuda(F32P(dinp), F32P(dout), F32P(out), n, ctx_of(dev));
}

static rt_status cu_xent_forward(const rt_tensor_t *losses, const rt_tensor_t *probs,
                                 const rt_tensor_t *logits, const rt_tensor_t *labels,
                                 rt_device_t *dev)
{
    int B, V;
    TRY(op_check_xent("softmax_xent_forward", logits, "logits", labels, losses, "losses", probs,
                      "probs", &B, &V));
    return softmax_xent_forward_cuda(F32P(losses), F32P(probs), F32P(logits),
                                     (const int32_t *)labels->data, B, V, ctx_of(dev));
}

static rt_status cu_xent_backward(const rt_tensor_t *dlogits, const rt_tensor_t *probs,
                                  const rt_tensor_t *labels, float scale, rt_device_t *dev)
{
    int B, V;
    TRY(op_check_xent("softmax_xent_backward", probs, "probs", labels, NULL, NULL, dlogits,
                      "dlogits", &B, &V));
    return softmax_xent_backward_cuda(F32P(dlogits), F32P(probs), (const int32_t *)labels->data,
                                      scale, B, V, ctx_of(dev));
}

static rt_status cu_accuracy_count(int64_t *count, const rt_tensor_t *logits,
                                   const rt_tensor_t *labels, rt_device_t *dev)
{
    int B, V;
    TRY(op_check_xent("accuracy_count", logits, "logits", labels, NULL, NULL, NULL, NULL, &B, &V));
    return accuracy_count_cuda(count, F32P(logits), (const int32_t *)labels->data, B, V,
                               ctx_of(dev));
}

static rt_status cu_sum_squares(double *acc, const rt_tensor_t *x, rt_device_t *dev)
{
    TRY(tensor_expect(x, RT_DTYPE_F32, 0, "sum_squares", "x"));
    return sum_squares_cuda(acc, F32P(x), tensor_numel(x), ctx_of(dev));
}

static rt_status cu_adamw_update(const rt_tensor_t *params, const rt_tensor_t *m,
                                 const rt_tensor_t *v, const rt_tensor_t *grads, float beta1,
                                 float beta2, float eps, float weight_decay,
                                 const optim_scalars_t *scalars, rt_device_t *dev)
{
    int64_t n;
    TRY(op_check_update("adamw_update", params, grads, m, "m", v, "v", &n));
    CHECK_ARG(m && v && scalars, "adamw_update: needs both moments and the scalars");
    return adamw_update_cuda(F32P(params), F32P(m), F32P(v), F32P(grads), n, beta1, beta2, eps,
                             weight_decay, scalars, ctx_of(dev));
}

static rt_status cu_sgd_update(const rt_tensor_t *params, const rt_tensor_t *momentum_buf,
                               const rt_tensor_t *grads, float momentum, float weight_decay,
                               const optim_scalars_t *scalars, rt_device_t *dev)
{
    int64_t n;
    TRY(op_check_update("sgd_update", params, grads, momentum_buf, "momentum_buf", NULL, NULL, &n));
    CHECK_ARG(scalars, "sgd_update: no scalars");
    return sgd_update_cuda(F32P(params), OPTF32P(momentum_buf), F32P(grads), n, momentum,
                           weight_decay, scalars, ctx_of(dev));
}

static rt_status cu_step_begin(step_state_t *s, float lr, long long step_index, rt_device_t *dev)
{
    return step_begin_cuda(s, lr, step_index, ctx_of(dev));
}

static rt_status cu_step_add_loss(step_state_t *s, const rt_tensor_t *losses, double denom,
                                  rt_device_t *dev)
{
    TRY(tensor_expect(losses, RT_DTYPE_F32, 0, "step_add_loss", "losses"));
    return step_add_loss_cuda(s, F32P(losses), tensor_numel(losses), denom, ctx_of(dev));
}

static rt_status cu_step_loss_float(step_state_t *s, int to_float, rt_device_t *dev)
{
    return step_loss_float_cuda(s, to_float, ctx_of(dev));
}

static rt_status cu_step_finalize(step_state_t *s, double max_norm, int adamw, float beta1,
                                  float beta2, rt_device_t *dev)
{
    return step_finalize_cuda(s, max_norm, adamw, beta1, beta2, ctx_of(dev));
}

static rt_status cu_step_reset_results(step_state_t *s, rt_device_t *dev)
{
    return step_reset_results_cuda(s, ctx_of(dev));
}

/* ---- the transformer's ops: the CPU table's checks (device_cpu.c), then
 * the kernels of op_cuda_transformer.cu and op_cuda_attention.cu ---- */

static rt_status cu_embedding_forward(const rt_tensor_t *out, const rt_tensor_t *tokens,
                                      const rt_tensor_t *wte, const rt_tensor_t *wpe,
                                      rt_device_t *dev)
{
    int B, T, C;
    TRY(op_check_embedding("embedding_forward", out, tokens, wte, wpe, &B, &T, &C));
    CHECK_ARG(wte && wpe, "embedding_forward: wte and wpe are required");
    CHECK_ARG(wte->shape[0] >= 1 && wte->shape[0] <= INT32_MAX,
              "embedding_forward: wte has %lld rows", (long long)wte->shape[0]);
    return embedding_forward_cuda(F32P(out), (const int32_t *)tokens->data, F32P(wte), F32P(wpe),
                                  B, T, C, (int)wte->shape[0], ctx_of(dev));
}

static rt_status cu_embedding_backward(const rt_tensor_t *dwte, const rt_tensor_t *dwpe,
                                       const rt_tensor_t *dout, const rt_tensor_t *tokens,
                                       rt_device_t *dev)
{
    int B, T, C;
    TRY(op_check_embedding("embedding_backward", dout, tokens, dwte, dwpe, &B, &T, &C));
    int V = 0;
    if (dwte) {
        CHECK_ARG(dwte->shape[0] >= 1 && dwte->shape[0] <= INT32_MAX,
                  "embedding_backward: dwte has %lld rows", (long long)dwte->shape[0]);
        V = (int)dwte->shape[0];
    }
    return embedding_backward_cuda(OPTF32P(dwte), OPTF32P(dwpe), F32P(dout),
                                   (const int32_t *)tokens->data, B, T, C, V, ctx_of(dev));
}

static rt_status cu_layernorm_forward(const rt_tensor_t *out, const rt_tensor_t *mean,
                                      const rt_tensor_t *rstd, const rt_tensor_t *inp,
                                      const rt_tensor_t *weight, const rt_tensor_t *bias,
                                      float eps, rt_device_t *dev)
{
    int64_t N;
    int C;
    TRY(op_check_layernorm("layernorm_forward", out, mean, rstd, inp, weight, bias, &N, &C));
    CHECK_ARG(out && bias, "layernorm_forward: out and bias are required");
    return layernorm_forward_cuda(F32P(out), F32P(mean), F32P(rstd), F32P(inp), F32P(weight),
                                  F32P(bias), N, C, eps, ctx_of(dev));
}

static rt_status cu_layernorm_backward(const rt_tensor_t *dinp, const rt_tensor_t *dweight,
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
    return layernorm_backward_cuda(OPTF32P(dinp), OPTF32P(dweight), OPTF32P(dbias), F32P(dout),
                                   F32P(inp), F32P(weight), F32P(mean), F32P(rstd),
                                   inp->shape[0], C, ctx_of(dev));
}

static rt_status cu_gelu_forward(const rt_tensor_t *out, const rt_tensor_t *inp, rt_device_t *dev)
{
    int64_t n;
    TRY(op_check_same_f32("gelu_forward", out, "out", inp, "inp", &n));
    return gelu_forward_cuda(F32P(out), F32P(inp), n, ctx_of(dev));
}

static rt_status cu_gelu_backward(const rt_tensor_t *dinp, const rt_tensor_t *inp,
                                  const rt_tensor_t *dout, rt_device_t *dev)
{
    int64_t n;
    TRY(op_check_same_f32("gelu_backward", dinp, "dinp", inp, "inp", &n));
    TRY(op_check_same_f32("gelu_backward", dinp, "dinp", dout, "dout", &n));
    return gelu_backward_cuda(F32P(dinp), F32P(inp), F32P(dout), n, ctx_of(dev));
}

static rt_status cu_residual_forward(const rt_tensor_t *out, const rt_tensor_t *a,
                                     const rt_tensor_t *b, rt_device_t *dev)
{
    int64_t n;
    TRY(op_check_same_f32("residual_forward", out, "out", a, "a", &n));
    TRY(op_check_same_f32("residual_forward", out, "out", b, "b", &n));
    return residual_forward_cuda(F32P(out), F32P(a), F32P(b), n, ctx_of(dev));
}

static rt_status cu_attention_forward(const rt_tensor_t *out, const rt_tensor_t *att,
                                      const rt_tensor_t *qkv, rt_device_t *dev)
{
    int B, T, C, NH;
    TRY(op_check_attention("attention_forward", out, att, NULL, qkv, &B, &T, &C, &NH));
    CHECK_ARG(out, "attention_forward: out is required");
    return attention_forward_cuda(F32P(out), F32P(att), F32P(qkv), B, T, C, NH, ctx_of(dev));
}

static rt_status cu_attention_backward(const rt_tensor_t *dqkv, const rt_tensor_t *scratch,
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
    return attention_backward_cuda(F32P(dqkv), F32P(scratch), F32P(dout), F32P(qkv), F32P(att), B,
                                   T, C, NH, ctx_of(dev));
}

static rt_ops_t make_cuda_ops(void)
{
    rt_ops_t o;
    memset(&o, 0, sizeof o);
    o.linear_forward = cu_linear_forward;
    o.linear_backward = cu_linear_backward;
    o.linear_weight_rows = cu_linear_weight_rows;
    o.relu_forward = cu_relu_forward;
    o.relu_backward = cu_relu_backward;
    o.softmax_xent_forward = cu_xent_forward;
    o.softmax_xent_backward = cu_xent_backward;
    o.accuracy_count = cu_accuracy_count;
    o.sum_squares = cu_sum_squares;
    o.adamw_update = cu_adamw_update;
    o.sgd_update = cu_sgd_update;
    o.embedding_forward = cu_embedding_forward;
    o.embedding_backward = cu_embedding_backward;
    o.layernorm_forward = cu_layernorm_forward;
    o.layernorm_backward = cu_layernorm_backward;
    o.gelu_forward = cu_gelu_forward;
    o.gelu_backward = cu_gelu_backward;
    o.residual_forward = cu_residual_forward;
    o.attention_forward = cu_attention_forward;
    o.attention_backward = cu_attention_backward;
    o.step_begin = cu_step_begin;
    o.step_add_loss = cu_step_add_loss;
    o.step_loss_float = cu_step_loss_float;
    o.step_finalize = cu_step_finalize;
    o.step_reset_results = cu_step_reset_results;
    return o;
}

static const rt_ops_t rt_ops_cuda = make_cuda_ops();

/* ---- memory and ordering ------------------------------------------------------ */

static rt_status cu_alloc(rt_device_t *d, void **ptr, size_t bytes)
{
    *ptr = NULL;
    if (bytes == 0)
        return RT_OK;
    cudaError_t e = cudaMalloc(ptr, bytes);
    if (e != cudaSuccess) {
        *ptr = NULL;
        return rt_fail(RT_ERR_CUDA, "cudaMalloc: %s", cudaGetErrorString(e));
    }
    /* zeroed, like host_alloc: arena gaps are read (norm, updates) and must be 0 */
    CHECK_CUDA(cudaMemsetAsync(*ptr, 0, bytes, stream_of(d)));
    CHECK_CUDA(cudaStreamSynchronize(stream_of(d)));
    return RT_OK;
}

static void cu_free(rt_device_t *d, void *ptr)
{
    /* teardown: an error cannot be acted on; the stream's work must be done */
    (void)cudaStreamSynchronize(stream_of(d));
    (void)cudaFree(ptr);
}

static rt_status cu_fill(rt_device_t *d, void *ptr, int byte, size_t bytes)
{
    CHECK_CUDA(cudaMemsetAsync(ptr, byte, bytes, stream_of(d)));
    return RT_OK;
}

static rt_status cu_to_device(rt_device_t *d, void *dst, const void *src, size_t bytes)
{
    CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_of(d)));
    CHECK_CUDA(cudaStreamSynchronize(stream_of(d)));
    return RT_OK;
}

static rt_status cu_to_host(rt_device_t *d, void *dst, const void *src, size_t bytes)
{
    CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_of(d)));
    CHECK_CUDA(cudaStreamSynchronize(stream_of(d)));
    return RT_OK;
}

static rt_status cu_sync(rt_device_t *d)
{
    CHECK_CUDA(cudaStreamSynchronize(stream_of(d)));
    return RT_OK;
}

static void *cu_stream(const rt_device_t *d)
{
    return (void *)stream_of(d);
}

/* ---- graphs --------------------------------------------------------------------- */

struct rt_graph {
    cudaGraphExec_t exec;
};

static rt_status cu_capture_begin(rt_device_t *d)
{
    CHECK_CUDA(cudaStreamBeginCapture(stream_of(d), cudaStreamCaptureModeThreadLocal));
    return RT_OK;
}

static rt_status cu_capture_end(rt_device_t *d, rt_status body, rt_graph_t **out)
{
    *out = NULL;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(stream_of(d), &graph);
    if (body != RT_OK) {
        if (graph)
            (void)cudaGraphDestroy(graph);
        (void)cudaGetLastError();
        return body;
    }
    if (e != cudaSuccess)
        return rt_fail(RT_ERR_CUDA, "cudaStreamEndCapture: %s", cudaGetErrorString(e));
    rt_graph_t *g = (rt_graph_t *)calloc(1, sizeof *g);
    if (!g) {
        (void)cudaGraphDestroy(graph);
        return rt_fail(RT_ERR_NOMEM, "cannot allocate a graph handle");
    }
    e = cudaGraphInstantiate(&g->exec, graph, 0);
    (void)cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
        free(g);
        return rt_fail(RT_ERR_CUDA, "cudaGraphInstantiate: %s", cudaGetErrorString(e));
    }
    *out = g;
    return RT_OK;
}

static rt_status cu_graph_launch(rt_device_t *d, rt_graph_t *g)
{
    CHECK_CUDA(cudaGraphLaunch(g->exec, stream_of(d)));
    return RT_OK;
}

static void cu_graph_free(rt_device_t *d, rt_graph_t *g)
{
    (void)cudaStreamSynchronize(stream_of(d));
    (void)cudaGraphExecDestroy(g->exec);
    free(g);
}

/* ---- batch staging ---------------------------------------------------------------- */

/* Device input slots filled on their own stream: a slot's copy waits until
 * the work that read its previous batch is done (slot_free), and the
 * compute stream waits for the copy (copy_done). */
typedef struct {
    int slots;
    size_t input_bytes, target_bytes;
    void **input, **target;
    cudaEvent_t *copy_done, *slot_free;
    int events;  /* created so far */
    cudaStream_t copy_stream;
} cuda_stager_t;

static void cu_stager_destroy(rt_device_t *d, void *state)
{
    cuda_stager_t *s = (cuda_stager_t *)state;
    if (!s)
        return;
    (void)cudaStreamSynchronize(stream_of(d));
    if (s->copy_stream) {
        (void)cudaStreamSynchronize(s->copy_stream);
        (void)cudaStreamDestroy(s->copy_stream);
    }
    for (int k = 0; k < s->slots; k++) {
        if (s->input && s->input[k])
            (void)cudaFree(s->input[k]);
        if (s->target && s->target[k])
            (void)cudaFree(s->target[k]);
    }
    for (int k = 0; k < s->events; k++) {
        (void)cudaEventDestroy(s->copy_done[k]);
        (void)cudaEventDestroy(s->slot_free[k]);
    }
    free(s->input);
    free(s->target);
    free(s->copy_done);
    free(s->slot_free);
    free(s);
}

static rt_status stager_init(cuda_stager_t *s)
{
    CHECK_CUDA(cudaStreamCreateWithFlags(&s->copy_stream, cudaStreamNonBlocking));
    for (int k = 0; k < s->slots; k++) {
        CHECK_CUDA(cudaMalloc(&s->input[k], s->input_bytes ? s->input_bytes : 1));
        CHECK_CUDA(cudaMalloc(&s->target[k], s->target_bytes ? s->target_bytes : 1));
    }
    for (; s->events < s->slots; s->events++) {
        CHECK_CUDA(cudaEventCreateWithFlags(&s->copy_done[s->events], cudaEventDisableTiming));
        if (cudaEventCreateWithFlags(&s->slot_free[s->events], cudaEventDisableTiming) !=
            cudaSuccess) {
            (void)cudaEventDestroy(s->copy_done[s->events]);
            return rt_fail(RT_ERR_CUDA, "cudaEventCreate failed");
        }
    }
    return RT_OK;
}

static rt_status cu_stager_create(rt_device_t *d, int slots, size_t input_bytes,
                                  size_t target_bytes, void **state)
{
    *state = NULL;
    cuda_stager_t *s = (cuda_stager_t *)calloc(1, sizeof *s);
    CHECK_ALLOC(s, sizeof *s);
    s->slots = slots;
    s->input_bytes = input_bytes;
    s->target_bytes = target_bytes;
    s->input = (void **)calloc((size_t)slots, sizeof(void *));
    s->target = (void **)calloc((size_t)slots, sizeof(void *));
    s->copy_done = (cudaEvent_t *)calloc((size_t)slots, sizeof(cudaEvent_t));
    s->slot_free = (cudaEvent_t *)calloc((size_t)slots, sizeof(cudaEvent_t));
    rt_status st = (s->input && s->target && s->copy_done && s->slot_free)
                       ? stager_init(s)
                       : rt_fail(RT_ERR_NOMEM, "cannot allocate the stager's tables");
    if (st != RT_OK) {
        cu_stager_destroy(d, s);
        return st;
    }
    *state = s;
    return RT_OK;
}

static rt_status cu_stager_put(rt_device_t *d, void *state, int slot, const void *input,
                               size_t input_bytes, const void *target, size_t target_bytes,
                               void **dev_input, void **dev_target)
{
    cuda_stager_t *s = (cuda_stager_t *)state;
    CHECK_ARG(input_bytes <= s->input_bytes && target_bytes <= s->target_bytes,
              "stager: a batch of %zu + %zu bytes does not fit the slots (%zu + %zu)", input_bytes,
              target_bytes, s->input_bytes, s->target_bytes);
    /* the slot's previous reader must be done before the copy lands */
    CHECK_CUDA(cudaStreamWaitEvent(s->copy_stream, s->slot_free[slot], 0));
    CHECK_CUDA(cudaMemcpyAsync(s->input[slot], input, input_bytes, cudaMemcpyHostToDevice,
                               s->copy_stream));
    CHECK_CUDA(cudaMemcpyAsync(s->target[slot], target, target_bytes, cudaMemcpyHostToDevice,
                               s->copy_stream));
    CHECK_CUDA(cudaEventRecord(s->copy_done[slot], s->copy_stream));
    CHECK_CUDA(cudaStreamWaitEvent(stream_of(d), s->copy_done[slot], 0));
    *dev_input = s->input[slot];
    *dev_target = s->target[slot];
    return RT_OK;
}

/* With peers in the picture a copy can wait behind a collective that never
 * completes: poll with a deadline instead of blocking for ever. */
static rt_status event_wait(cudaEvent_t ev, double timeout_s, const char *what)
{
    if (timeout_s <= 0) {
        CHECK_CUDA(cudaEventSynchronize(ev));
        return RT_OK;
    }
    struct timespec t0, now, nap = {0, 20000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        cudaError_t e = cudaEventQuery(ev);
        if (e == cudaSuccess)
            return RT_OK;
        if (e != cudaErrorNotReady)
            return rt_fail(RT_ERR_CUDA, "waiting for %s: %s", what, cudaGetErrorString(e));
        clock_gettime(CLOCK_MONOTONIC, &now);
        double s = (double)(now.tv_sec - t0.tv_sec) + 1e-9 * (double)(now.tv_nsec - t0.tv_nsec);
        if (s > timeout_s)
            return rt_fail(RT_ERR_TIMEOUT, "%s not done after %.0f s (a peer stuck in the "
                           "gradient all-reduce?)", what, timeout_s);
        nanosleep(&nap, NULL);
    }
}

static rt_status cu_stager_release(rt_device_t *d, void *state, int slot, double timeout_s)
{
    cuda_stager_t *s = (cuda_stager_t *)state;
    CHECK_CUDA(cudaEventRecord(s->slot_free[slot], stream_of(d)));
    /* the caller's host buffer is free once its copy is done */
    return event_wait(s->copy_done[slot], timeout_s, "the input copy");
}

/* ---- timers ------------------------------------------------------------------------ */

typedef struct {
    cudaEvent_t ev[2];
    int created;
} cuda_timer_t;

static void cu_timer_destroy(rt_device_t *d, void *state)
{
    cuda_timer_t *t = (cuda_timer_t *)state;
    for (int i = 0; t && i < t->created; i++)
        (void)cudaEventDestroy(t->ev[i]);
    free(t);
}

static rt_status cu_timer_create(rt_device_t *d, void **state)
{
    *state = NULL;
    cuda_timer_t *t = (cuda_timer_t *)calloc(1, sizeof *t);
    CHECK_ALLOC(t, sizeof *t);
    for (; t->created < 2; t->created++) {
        cudaError_t e = cudaEventCreate(&t->ev[t->created]);
        if (e != cudaSuccess) {
            cu_timer_destroy(d, t);
            return rt_fail(RT_ERR_CUDA, "cudaEventCreate: %s", cudaGetErrorString(e));
        }
    }
    *state = t;
    return RT_OK;
}

static rt_status cu_timer_record(rt_device_t *d, void *state, int stop)
{
    CHECK_CUDA(cudaEventRecord(((cuda_timer_t *)state)->ev[stop ? 1 : 0], stream_of(d)));
    return RT_OK;
}

static rt_status cu_timer_elapsed(rt_device_t *d, void *state, double *seconds)
{
    cuda_timer_t *t = (cuda_timer_t *)state;
    float ms = 0.0f;
    CHECK_CUDA(cudaEventSynchronize(t->ev[1]));
    CHECK_CUDA(cudaEventElapsedTime(&ms, t->ev[0], t->ev[1]));
    *seconds = 1e-3 * (double)ms;
    return RT_OK;
}

/* ---- the side stream --------------------------------------------------------------- */

/* A non-blocking stream and two events: fork records on the device's
 * stream and makes the side stream wait, join the other way round. One
 * event per direction suffices: cudaStreamWaitEvent waits for the event's
 * most recent record at the time of the call. */
typedef struct {
    cudaStream_t stream;
    cudaEvent_t fork, join;
    int made;  /* how many of the three exist, in that order */
} cuda_side_t;

static void cu_side_destroy(rt_device_t *d, void *state)
{
    (void)d;
    cuda_side_t *s = (cuda_side_t *)state;
    if (!s)
        return;
    if (s->made > 2)
        (void)cudaEventDestroy(s->join);
    if (s->made > 1)
        (void)cudaEventDestroy(s->fork);
    if (s->made > 0)
        (void)cudaStreamDestroy(s->stream);
    free(s);
}

static rt_status cu_side_create(rt_device_t *d, void **state)
{
    *state = NULL;
    cuda_side_t *s = (cuda_side_t *)calloc(1, sizeof *s);
    CHECK_ALLOC(s, sizeof *s);
    cudaError_t e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) {
        s->made = 1;
        e = cudaEventCreateWithFlags(&s->fork, cudaEventDisableTiming);
    }
    if (e == cudaSuccess) {
        s->made = 2;
        e = cudaEventCreateWithFlags(&s->join, cudaEventDisableTiming);
    }
    if (e != cudaSuccess) {
        cu_side_destroy(d, s);
        return rt_fail(RT_ERR_CUDA, "side stream: %s", cudaGetErrorString(e));
    }
    s->made = 3;
    *state = s;
    return RT_OK;
}

static void *cu_side_stream(void *state)
{
    return (void *)((cuda_side_t *)state)->stream;
}

static rt_status cu_side_order(rt_device_t *d, void *state, int join)
{
    cuda_side_t *s = (cuda_side_t *)state;
    if (join) {
        CHECK_CUDA(cudaEventRecord(s->join, s->stream));
        CHECK_CUDA(cudaStreamWaitEvent(stream_of(d), s->join, 0));
    } else {
        CHECK_CUDA(cudaEventRecord(s->fork, stream_of(d)));
        CHECK_CUDA(cudaStreamWaitEvent(s->stream, s->fork, 0));
    }
    return RT_OK;
}

/* ---- the device -------------------------------------------------------------------- */

static void cu_close(rt_device_t *d)
{
    cuda_ctx_destroy(ctx_of(d));
    d->backend = NULL;
}

static device_impl_t make_cuda_impl(void)
{
    device_impl_t i;
    memset(&i, 0, sizeof i);
    i.name = "cuda";
    i.host_memory = false;
    i.graphs = true;
    i.alloc = cu_alloc;
    i.free = cu_free;
    i.fill = cu_fill;
    i.to_device = cu_to_device;
    i.to_host = cu_to_host;
    i.sync = cu_sync;
    i.stream = cu_stream;
    i.capture_begin = cu_capture_begin;
    i.capture_end = cu_capture_end;
    i.graph_launch = cu_graph_launch;
    i.graph_free = cu_graph_free;
    i.stager_create = cu_stager_create;
    i.stager_put = cu_stager_put;
    i.stager_release = cu_stager_release;
    i.stager_destroy = cu_stager_destroy;
    i.timer_create = cu_timer_create;
    i.timer_record = cu_timer_record;
    i.timer_elapsed = cu_timer_elapsed;
    i.timer_destroy = cu_timer_destroy;
    i.side_create = cu_side_create;
    i.side_stream = cu_side_stream;
    i.side_order = cu_side_order;
    i.side_destroy = cu_side_destroy;
    i.close = cu_close;
    return i;
}

static const device_impl_t device_impl_cuda = make_cuda_impl();

extern "C" rt_status device_cuda_open(rt_device_t *d, const device_config_t *cfg)
{
    rt_cuda_ctx_t *ctx = NULL;
    TRY(cuda_ctx_create(&ctx, cfg->ordinal, cfg->tf32));
    d->backend = ctx;
    d->ops = &rt_ops_cuda;
    d->impl = &device_impl_cuda;
    return RT_OK;
}

extern "C" rt_status device_cuda_count(int *count)
{
    int n = 0;
    /* no driver or no device is "none", not an error; the sticky error is
     * cleared so that later calls do not see it */
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        n = 0;
    }
    *count = n;
    return RT_OK;
}

extern "C" bool device_cuda_compiled(void)
{
    return true;
}

extern "C" void *device_pinned_alloc(size_t bytes, void *ctx)
{
    /* select the rank's device first, so that the context (and its memory)
     * is not created on device 0 by every rank */
    if (ctx && cudaSetDevice(*(const int *)ctx) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    void *p = NULL;
    if (cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    return p;
}

extern "C" void device_pinned_free(void *ptr, void *ctx)
{
    (void)ctx;
    if (ptr)
        (void)cudaFreeHost(ptr);
}
