/* train_cuda.cu - the training step on a CUDA device (see train_cuda.h):
 * device arenas with the host param_set's layout, forward/backward through
 * op_cuda.h, the loss, norm, clip factor, non-finite check and optimizer
 * scalars computed on the device from a small state block, so that a step
 * can be captured in a CUDA graph once and replayed with only the learning
 * rate (a kernel argument) changing between steps. */
extern "C" {
#include "common/check.h"
#include "common/log.h"
#include "common/status.h"
#include "trainer/mlp.h"
#include "trainer/optim.h"
#include "trainer/params.h"
#include "trainer/schedule.h"
#include "trainer/train_step.h"
}
#include "trainer/op_cuda.h"
#include "trainer/train_cuda.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/check_cuda.h"

/* The per-step values the device decides by itself. Mirrored on the host
 * (pinned) when a result is read. */
struct dev_state {
    double step_loss;          /* this step: sum over micro-batches of loss_sum / (accum*B) */
    double sumsq;              /* this step: gradient sum of squares */
    double loss_acc;           /* applied steps' losses since the last read */
    double last_norm;          /* last step's gradient norm */
    long long loss_steps;      /* applied steps since the last read */
    long long t;               /* optimizer updates applied */
    long long nonfinite;       /* steps never applied (non-finite) */
    long long first_nonfinite; /* 0-based index of the first one, -1: none */
    long long step_index;      /* this step's 0-based index */
    float lr;                  /* this step's learning rate */
    float loss_f;              /* step_loss as float, for the all-reduce */
    float coef;                /* clip factor applied (1: none) */
    float decay, neg_step, bc2_sqrt; /* AdamW scalars of this step */
    int skip;                  /* this step is not applied */
};

enum { SLOTS = 2, THREADS = 256, DB_ROWS = 64 };

struct gpu_train {
    gpu_train_config_t cfg;
    rt_cuda_ctx_t *ctx;
    cudaStream_t stream, copy_stream;
    mlp_spec_t spec;
    param_set_t layout;         /* entries/total of the host arena (data/grad unused) */
    optim_config_t ocfg;
    int max_batch, in_dim, widest;
    int64_t total;
    float *params, *grads, *m, *v;      /* arenas, one cudaMalloc each */
    float *acts[MLP_MAX_LAYERS + 1];    /* acts[1..L] */
    float *probs, *losses, *dbuf[2];
    float *dbias_part;                  /* [ceil(max_batch / DB_ROWS), widest] */
    float *xin[SLOTS];
    int32_t *yin[SLOTS];
    cudaEvent_t copy_done[SLOTS], slot_free[SLOTS];
    bool events_ready;
    struct dev_state *state;            /* device */
    struct dev_state *host_state;       /* pinned */
    cudaGraphExec_t graph_a[SLOTS];     /* zero + forward + backward of a full batch */
    cudaGraphExec_t graph_b;            /* norm, finalize, update */
    bool graphs_failed;
    const char *mode;
    int64_t micro;                      /* micro-batches so far (slot = micro % SLOTS) */
    int64_t steps_run;                  /* steps enqueued by this object */
    gpu_reduce_fn reduce;
    gpu_wait_fn wait;
    void *reduce_ctx;
    double timeout_s;
    int64_t nonfinite_seen;             /* host's count of reported non-finite steps */
};

/* ---- kernels ---------------------------------------------------------------- */

__global__ void step_begin_kernel(struct dev_state *s, float lr, long long step_index)
{
    s->lr = lr;
    s->step_index = step_index;
    s->step_loss = 0.0;
    s->sumsq = 0.0;
}

/* s->step_loss += (sum of losses[0..B)) / denom, the sum in double in a fixed
 * order (one block: deterministic). */
__global__ void loss_sum_kernel(struct dev_state *s, const float *losses, int B, double denom)
{
    __shared__ double part[THREADS];
    double acc = 0.0;
    for (int i = threadIdx.x; i < B; i += THREADS)
        acc += (double)losses[i];
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int w = THREADS / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w)
            part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        s->step_loss += part[0] / denom;
}

__global__ void loss_to_float_kernel(struct dev_state *s)
{
    s->loss_f = (float)s->step_loss;
}

__global__ void loss_from_float_kernel(struct dev_state *s)
{
    s->step_loss = (double)s->loss_f;
}

/* The host train_step's decisions, on the device: non-finite -> skip; clip
 * factor as clip_grad_norm_; AdamW scalars as adamw_step_cpu forms them. */
__global__ void finalize_kernel(struct dev_state *s, double clip, int adamw, float beta1,
                                float beta2, float weight_decay)
{
    double norm = sqrt(s->sumsq);
    double loss = s->step_loss;
    s->last_norm = norm;
    if (!isfinite(loss) || !isfinite(norm)) {
        s->skip = 1;
        if (s->nonfinite == 0)
            s->first_nonfinite = s->step_index;
        s->nonfinite++;
        s->coef = 1.0f;
        return;
    }
    s->skip = 0;
    float coef = 1.0f;
    if (clip > 0.0) {
        float c = (float)(clip / (norm + 1e-6));
        if (c < 1.0f)
            coef = c;
    }
    s->coef = coef;
    s->t++;
    s->loss_acc += loss;
    s->loss_steps++;
    if (adamw) {
        float lr = s->lr;
        double t = (double)s->t;
        s->decay = (float)(1.0 - (double)lr * (double)weight_decay);
        double bc1 = 1.0 - pow((double)beta1, t);
        double bc2 = 1.0 - pow((double)beta2, t);
        s->neg_step = (float)(-((double)lr / bc1));
        s->bc2_sqrt = (float)sqrt(bc2);
    }
}

/* adamw_kernel of op_cuda.cu with the clip factor and the step's scalars
 * read from the device state (so a graph replay picks up each step's). */
__global__ void adamw_state_kernel(float *params, float *m, float *v, const float *grads,
                                   int64_t n, const struct dev_state *s, float beta1, float beta2,
                                   float eps, float one_m_b1, float one_m_b2)
{
    if (s->skip)
        return;
    const float coef = s->coef, decay = s->decay, neg_step = s->neg_step,
                bc2_sqrt = s->bc2_sqrt;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float g = grads[i];
        if (coef < 1.0f)
            g *= coef;
        float p = params[i] * decay;
        float mi = m[i] * beta1 + one_m_b1 * g;
        float vi = v[i] * beta2 + one_m_b2 * (g * g);
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        m[i] = mi;
        v[i] = vi;
        params[i] = p + neg_step * (mi / denom);
    }
}

__global__ void sgd_state_kernel(float *params, float *buf, const float *grads, int64_t n,
                                 const struct dev_state *s, float momentum, float wd)
{
    if (s->skip)
        return;
    const float coef = s->coef, lr = s->lr;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float gi = grads[i];
        if (coef < 1.0f)
            gi *= coef;
        float p = params[i];
        float g = gi + wd * p;
        if (momentum != 0.0f) {
            float b = momentum * buf[i] + g;
            buf[i] = b;
            g = b;
        }
        params[i] = p - lr * g;
    }
}

/* The bias gradient in two deterministic passes, so that a large batch is
 * spread over many blocks (op_cuda's one-pass kernel has one block per 32
 * columns, each walking the whole batch): partial[c, o] = sum over the
 * DB_ROWS rows of chunk c of dout[r, o]; then dbias[o] += the chunks' sums in
 * chunk order. Block (32, 8): x walks 32 adjacent columns (coalesced). */
__global__ void dbias_partial_kernel(float *partial, const float *dout, int B, int OC)
{
    __shared__ float part[8][33];
    const int o = blockIdx.x * 32 + threadIdx.x;
    const int r0 = blockIdx.y * DB_ROWS;
    const int r1 = r0 + DB_ROWS < B ? r0 + DB_ROWS : B;
    float sum = 0.0f;
    if (o < OC)
        for (int r = r0 + (int)threadIdx.y; r < r1; r += 8)
            sum += dout[(int64_t)r * OC + o];
    part[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && o < OC) {
        float t = 0.0f;
        for (int y = 0; y < 8; y++)
            t += part[y][threadIdx.x];
        partial[(int64_t)blockIdx.y * OC + o] = t;
    }
}

__global__ void dbias_finish_kernel(float *dbias, const float *partial, int nchunks, int OC)
{
    const int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= OC)
        return;
    float t = 0.0f;
#pragma unroll 8
    for (int c = 0; c < nchunks; c++)
        t += partial[(int64_t)c * OC + o];
    dbias[o] += t;
}

__global__ void result_reset_kernel(struct dev_state *s)
{
    s->loss_acc = 0.0;
    s->loss_steps = 0;
}

static unsigned grid_for(int64_t n)
{
    int64_t blocks = (n + THREADS - 1) / THREADS;
    return (unsigned)(blocks < 132 * 16 ? blocks : 132 * 16);
}

/* ---- create / destroy ----------------------------------------------------------- */

static rt_status dmalloc(void **p, size_t bytes, const char *what)
{
    cudaError_t e = cudaMalloc(p, bytes);
    if (e != cudaSuccess)
        return rt_fail(RT_ERR_CUDA, "train_cuda: cudaMalloc of %zu bytes for %s failed: %s", bytes,
                       what, cudaGetErrorString(e));
    return RT_OK;
}

static rt_status train_cuda_init(gpu_train_t *g, const mlp_t *model, const optimizer_t *opt)
{
    g->spec = model->spec;
    g->layout = model->params;
    g->layout.data = g->layout.grad = NULL;
    g->ocfg = opt->cfg;
    g->max_batch = model->max_batch;
    g->total = model->params.total;
    g->in_dim = model->spec.sizes[0];
    g->nonfinite_seen = 0;
    g->mode = "none";
    g->timeout_s = 300.0;
    for (int l = 0; l <= g->spec.nlayers; l++)
        g->widest = g->spec.sizes[l] > g->widest ? g->spec.sizes[l] : g->widest;
    TRY(cuda_ctx_create(&g->ctx, g->cfg.device, g->cfg.tf32));
    g->stream = (cudaStream_t)cuda_ctx_stream(g->ctx);
    CHECK_CUDA(cudaStreamCreateWithFlags(&g->copy_stream, cudaStreamNonBlocking));
    for (int k = 0; k < SLOTS; k++) {
        CHECK_CUDA(cudaEventCreateWithFlags(&g->copy_done[k], cudaEventDisableTiming));
        CHECK_CUDA(cudaEventCreateWithFlags(&g->slot_free[k], cudaEventDisableTiming));
    }
    g->events_ready = true;
    const size_t arena = sizeof(float) * (size_t)g->total;
    const size_t B = (size_t)g->max_batch;
    TRY(dmalloc((void **)&g->params, arena, "parameters"));
    TRY(dmalloc((void **)&g->grads, arena, "gradients"));
    if (g->ocfg.kind == OPTIM_ADAMW || g->ocfg.momentum != 0.0f)
        TRY(dmalloc((void **)&g->m, arena, "optimizer state 0"));
    if (g->ocfg.kind == OPTIM_ADAMW)
        TRY(dmalloc((void **)&g->v, arena, "optimizer state 1"));
    for (int l = 1; l <= g->spec.nlayers; l++)
        TRY(dmalloc((void **)&g->acts[l], sizeof(float) * B * (size_t)g->spec.sizes[l], "activations"));
    const int V = g->spec.sizes[g->spec.nlayers];
    TRY(dmalloc((void **)&g->probs, sizeof(float) * B * (size_t)V, "probabilities"));
    TRY(dmalloc((void **)&g->losses, sizeof(float) * B, "losses"));
    TRY(dmalloc((void **)&g->dbias_part,
                sizeof(float) * ((B + DB_ROWS - 1) / DB_ROWS) * (size_t)g->widest,
                "bias gradient partial sums"));
    for (int i = 0; i < 2; i++)
        TRY(dmalloc((void **)&g->dbuf[i], sizeof(float) * B * (size_t)g->widest, "activation gradients"));
    for (int k = 0; k < SLOTS; k++) {
        TRY(dmalloc((void **)&g->xin[k], sizeof(float) * B * (size_t)g->in_dim, "input slot"));
        TRY(dmalloc((void **)&g->yin[k], sizeof(int32_t) * B, "label slot"));
    }
    TRY(dmalloc((void **)&g->state, sizeof(struct dev_state), "step state"));
    CHECK_CUDA(cudaMallocHost((void **)&g->host_state, sizeof(struct dev_state)));
    /* zero everything that is read before it is written: gradient arena gaps
     * stay zero forever; the state starts clean */
    CHECK_CUDA(cudaMemsetAsync(g->grads, 0, arena, g->stream));
    memset(g->host_state, 0, sizeof *g->host_state);
    g->host_state->first_nonfinite = -1;
    CHECK_CUDA(cudaMemcpyAsync(g->state, g->host_state, sizeof *g->host_state,
                               cudaMemcpyHostToDevice, g->stream));
    CHECK_CUDA(cudaStreamSynchronize(g->stream));
    return RT_OK;
}

extern "C" rt_status gpu_train_create(gpu_train_t **out, const mlp_t *model,
                                      const optimizer_t *opt, const gpu_train_config_t *cfg)
{
    CHECK_ARG(out && model && opt && cfg, "gpu_train_create: NULL argument");
    *out = NULL;
    CHECK_ARG(model->max_batch >= 1 && model->params.total > 0, "gpu_train_create: empty model");
    gpu_train_t *g = (gpu_train_t *)calloc(1, sizeof *g);
    CHECK_ALLOC(g, sizeof *g);
    g->cfg = *cfg;
    rt_status st = train_cuda_init(g, model, opt);
    if (st != RT_OK) {
        gpu_train_destroy(g);
        return st;
    }
    *out = g;
    return RT_OK;
}

extern "C" void gpu_train_destroy(gpu_train_t *g)
{
    if (!g)
        return;
    /* teardown errors cannot be acted on: free what there is */
    if (g->stream)
        (void)cudaStreamSynchronize(g->stream);
    if (g->copy_stream)
        (void)cudaStreamSynchronize(g->copy_stream);
    for (int k = 0; k < SLOTS; k++)
        if (g->graph_a[k])
            (void)cudaGraphExecDestroy(g->graph_a[k]);
    if (g->graph_b)
        (void)cudaGraphExecDestroy(g->graph_b);
    void *bufs[] = {g->params, g->grads, g->m, g->v, g->probs, g->losses, g->dbuf[0], g->dbuf[1],
                    g->dbias_part, g->state};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            (void)cudaFree(bufs[i]);
    for (int l = 0; l <= MLP_MAX_LAYERS; l++)
        if (g->acts[l])
            (void)cudaFree(g->acts[l]);
    for (int k = 0; k < SLOTS; k++) {
        if (g->xin[k])
            (void)cudaFree(g->xin[k]);
        if (g->yin[k])
            (void)cudaFree(g->yin[k]);
        if (g->events_ready) {
            (void)cudaEventDestroy(g->copy_done[k]);
            (void)cudaEventDestroy(g->slot_free[k]);
        }
    }
    if (g->host_state)
        (void)cudaFreeHost(g->host_state);
    if (g->copy_stream)
        (void)cudaStreamDestroy(g->copy_stream);
    cuda_ctx_destroy(g->ctx);
    free(g);
}

extern "C" void gpu_train_set_reduce(gpu_train_t *g, gpu_reduce_fn reduce, gpu_wait_fn wait,
                                     void *ctx, double timeout_s)
{
    g->reduce = reduce;
    g->wait = wait;
    g->reduce_ctx = ctx;
    g->timeout_s = timeout_s > 0 ? timeout_s : 300.0;
}

extern "C" void *gpu_train_stream(gpu_train_t *g)
{
    return g ? (void *)g->stream : NULL;
}

extern "C" const char *gpu_train_mode(const gpu_train_t *g)
{
    return g ? g->mode : "none";
}

/* ---- waiting ------------------------------------------------------------------- */

static rt_status stream_wait(gpu_train_t *g)
{
    if (g->wait)
        return g->wait(g->reduce_ctx, (void *)g->stream);
    CHECK_CUDA(cudaStreamSynchronize(g->stream));
    return RT_OK;
}

/* With peers in the picture a copy can wait behind a collective that never
 * completes: poll with a deadline instead of blocking for ever. */
static rt_status event_wait(gpu_train_t *g, cudaEvent_t ev, const char *what)
{
    if (!g->reduce) {
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
            return rt_fail(RT_ERR_CUDA, "train_cuda: waiting for %s: %s", what, cudaGetErrorString(e));
        clock_gettime(CLOCK_MONOTONIC, &now);
        double s = (double)(now.tv_sec - t0.tv_sec) + 1e-9 * (double)(now.tv_nsec - t0.tv_nsec);
        if (s > g->timeout_s)
            return rt_fail(RT_ERR_TIMEOUT, "train_cuda: %s not done after %.0f s (a peer stuck in "
                           "the gradient all-reduce?)", what, g->timeout_s);
        nanosleep(&nap, NULL);
    }
}

/* ---- upload / download ----------------------------------------------------------- */

extern "C" rt_status gpu_train_upload(gpu_train_t *g, const mlp_t *model, const optimizer_t *opt)
{
    CHECK_ARG(g && model, "gpu_train_upload: NULL argument");
    CHECK_ARG(model->params.total == g->total, "gpu_train_upload: arena of %lld floats, device has %lld",
              (long long)model->params.total, (long long)g->total);
    const size_t arena = sizeof(float) * (size_t)g->total;
    TRY(stream_wait(g));
    CHECK_CUDA(cudaMemcpyAsync(g->params, model->params.data, arena, cudaMemcpyHostToDevice, g->stream));
    if (g->m) {
        if (opt && opt->state0)
            CHECK_CUDA(cudaMemcpyAsync(g->m, opt->state0, arena, cudaMemcpyHostToDevice, g->stream));
        else
            CHECK_CUDA(cudaMemsetAsync(g->m, 0, arena, g->stream));
    }
    if (g->v) {
        if (opt && opt->state1)
            CHECK_CUDA(cudaMemcpyAsync(g->v, opt->state1, arena, cudaMemcpyHostToDevice, g->stream));
        else
            CHECK_CUDA(cudaMemsetAsync(g->v, 0, arena, g->stream));
    }
    CHECK_CUDA(cudaMemcpyAsync(g->host_state, g->state, sizeof *g->host_state,
                               cudaMemcpyDeviceToHost, g->stream));
    CHECK_CUDA(cudaStreamSynchronize(g->stream));
    g->host_state->t = opt ? (long long)opt->step : 0;
    CHECK_CUDA(cudaMemcpyAsync(g->state, g->host_state, sizeof *g->host_state,
                               cudaMemcpyHostToDevice, g->stream));
    CHECK_CUDA(cudaStreamSynchronize(g->stream));
    return RT_OK;
}

extern "C" rt_status gpu_train_download(gpu_train_t *g, mlp_t *model, optimizer_t *opt)
{
    CHECK_ARG(g && model, "gpu_train_download: NULL argument");
    CHECK_ARG(model->params.total == g->total, "gpu_train_download: arena of %lld floats, device has %lld",
              (long long)model->params.total, (long long)g->total);
    const size_t arena = sizeof(float) * (size_t)g->total;
    TRY(stream_wait(g));
    CHECK_CUDA(cudaMemcpyAsync(model->params.data, g->params, arena, cudaMemcpyDeviceToHost, g->stream));
    if (opt) {
        if (g->m && opt->state0)
            CHECK_CUDA(cudaMemcpyAsync(opt->state0, g->m, arena, cudaMemcpyDeviceToHost, g->stream));
        if (g->v && opt->state1)
            CHECK_CUDA(cudaMemcpyAsync(opt->state1, g->v, arena, cudaMemcpyDeviceToHost, g->stream));
        CHECK_CUDA(cudaMemcpyAsync(g->host_state, g->state, sizeof *g->host_state,
                                   cudaMemcpyDeviceToHost, g->stream));
    }
    CHECK_CUDA(cudaStreamSynchronize(g->stream));
    if (opt)
        opt->step = (int64_t)g->host_state->t;
    return RT_OK;
}

/* ---- the step's pieces ------------------------------------------------------------ */

static float *dev_weight(gpu_train_t *g, float *arena, int l)
{
    return arena + g->layout.entries[2 * l].offset;
}

static float *dev_bias(gpu_train_t *g, float *arena, int l)
{
    return arena + g->layout.entries[2 * l + 1].offset;
}

/* Part A of one micro-batch: (zero the gradients,) forward, loss sum,
 * backward with loss scale 1/(accum*B); mirrors mlp_forward/mlp_backward. */
static rt_status enqueue_micro(gpu_train_t *g, int slot, int B, int accum, bool zero)
{
    const int L = g->spec.nlayers, V = g->spec.sizes[L];
    rt_cuda_ctx_t *ctx = g->ctx;
    const float *x = g->xin[slot];
    const int32_t *y = g->yin[slot];
    if (zero)
        CHECK_CUDA(cudaMemsetAsync(g->grads, 0, sizeof(float) * (size_t)g->total, g->stream));
    const float *in = x;
    for (int l = 0; l < L; l++) {
        int C = g->spec.sizes[l], OC = g->spec.sizes[l + 1];
        TRY(linear_forward_cuda(g->acts[l + 1], in, dev_weight(g, g->params, l),
                                dev_bias(g, g->params, l), B, C, OC, ctx));
        if (l + 1 < L)
            TRY(relu_forward_cuda(g->acts[l + 1], g->acts[l + 1], (int64_t)B * OC, ctx));
        in = g->acts[l + 1];
    }
    TRY(softmax_xent_forward_cuda(g->losses, g->probs, g->acts[L], y, B, V, ctx));
    loss_sum_kernel<<<1, THREADS, 0, g->stream>>>(g->state, g->losses, B, (double)B * accum);
    CHECK_LAUNCH();

    float *dout = g->dbuf[0];
    CHECK_CUDA(cudaMemsetAsync(dout, 0, sizeof(float) * (size_t)B * V, g->stream));
    TRY(softmax_xent_backward_cuda(dout, g->probs, y, (float)(1.0 / ((double)B * accum)), B, V, ctx));
    for (int l = L - 1; l >= 0; l--) {
        int C = g->spec.sizes[l], OC = g->spec.sizes[l + 1];
        float *dinp = NULL;
        if (l > 0) {
            dinp = g->dbuf[(L - l) & 1];
            CHECK_CUDA(cudaMemsetAsync(dinp, 0, sizeof(float) * (size_t)B * C, g->stream));
        }
        const float *inp = l > 0 ? g->acts[l] : x;
        /* the bias gradient by the two-pass kernels above, not op_cuda's */
        TRY(linear_backward_cuda(dinp, dev_weight(g, g->grads, l), NULL, dout, inp,
                                 dev_weight(g, g->params, l), B, C, OC, ctx));
        const int nchunks = (B + DB_ROWS - 1) / DB_ROWS;
        dbias_partial_kernel<<<dim3((unsigned)((OC + 31) / 32), (unsigned)nchunks), dim3(32, 8), 0,
                               g->stream>>>(g->dbias_part, dout, B, OC);
        CHECK_LAUNCH();
        dbias_finish_kernel<<<(unsigned)((OC + THREADS - 1) / THREADS), THREADS, 0, g->stream>>>(
            dev_bias(g, g->grads, l), g->dbias_part, nchunks, OC);
        CHECK_LAUNCH();
        if (dinp) {
            TRY(relu_backward_cuda(dinp, dinp, g->acts[l], (int64_t)B * C, ctx));
            dout = dinp;
        }
    }
    return RT_OK;
}

/* Part B: norm, the device's decisions, the update. */
static rt_status enqueue_update(gpu_train_t *g, double clip)
{
    const optim_config_t *c = &g->ocfg;
    TRY(sum_squares_cuda(&g->state->sumsq, g->grads, g->total, g->ctx));
    finalize_kernel<<<1, 1, 0, g->stream>>>(g->state, clip, c->kind == OPTIM_ADAMW, c->beta1,
                                            c->beta2, c->weight_decay);
    CHECK_LAUNCH();
    if (c->kind == OPTIM_ADAMW) {
        adamw_state_kernel<<<grid_for(g->total), THREADS, 0, g->stream>>>(
            g->params, g->m, g->v, g->grads, g->total, g->state, c->beta1, c->beta2, c->eps,
            (float)(1.0 - (double)c->beta1), (float)(1.0 - (double)c->beta2));
    } else {
        sgd_state_kernel<<<grid_for(g->total), THREADS, 0, g->stream>>>(
            g->params, g->m, g->grads, g->total, g->state, c->momentum, c->weight_decay);
    }
    CHECK_LAUNCH();
    return RT_OK;
}

/* Captures what `which` enqueues (0/1: part A for that slot, 2: part B) into
 * an executable graph. On failure the stream leaves capture mode. */
static rt_status graph_capture(gpu_train_t *g, int which, double clip, cudaGraphExec_t *out)
{
    CHECK_CUDA(cudaStreamBeginCapture(g->stream, cudaStreamCaptureModeThreadLocal));
    rt_status st = which < SLOTS ? enqueue_micro(g, which, g->max_batch, 1, true)
                                 : enqueue_update(g, clip);
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(g->stream, &graph);
    if (st != RT_OK) {
        if (graph)
            (void)cudaGraphDestroy(graph);
        return st;
    }
    if (e != cudaSuccess)
        return rt_fail(RT_ERR_CUDA, "train_cuda: cudaStreamEndCapture: %s", cudaGetErrorString(e));
    e = cudaGraphInstantiate(out, graph, 0);
    (void)cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
        *out = NULL;
        return rt_fail(RT_ERR_CUDA, "train_cuda: cudaGraphInstantiate: %s", cudaGetErrorString(e));
    }
    return RT_OK;
}

/* Graph of `which`, captured on first use. false: run eager (capture failed
 * once; logged, never retried). */
static bool graph_get(gpu_train_t *g, int which, double clip, cudaGraphExec_t *out)
{
    cudaGraphExec_t *slot = which < SLOTS ? &g->graph_a[which] : &g->graph_b;
    if (*slot) {
        *out = *slot;
        return true;
    }
    if (g->graphs_failed)
        return false;
    if (graph_capture(g, which, clip, slot) != RT_OK) {
        LOG_WARN("CUDA graph capture failed, running eager from now on: %s", rt_last_error());
        (void)cudaGetLastError();
        g->graphs_failed = true;
        *slot = NULL;
        return false;
    }
    *out = *slot;
    return true;
}

static rt_status read_result(gpu_train_t *g, train_step_t *t, gpu_step_result_t *res, double lr)
{
    CHECK_CUDA(cudaMemcpyAsync(g->host_state, g->state, sizeof *g->host_state,
                               cudaMemcpyDeviceToHost, g->stream));
    result_reset_kernel<<<1, 1, 0, g->stream>>>(g->state);
    CHECK_LAUNCH();
    TRY(stream_wait(g));
    const struct dev_state *h = g->host_state;
    res->have = true;
    res->steps = h->loss_steps;
    res->loss = h->loss_steps ? h->loss_acc / (double)h->loss_steps : NAN;
    res->grad_norm = h->last_norm;
    res->clip_coef = h->coef;
    res->lr = lr;
    res->skipped = h->nonfinite;
    res->opt_steps = h->t;
    t->skipped = h->nonfinite;
    if (h->nonfinite > g->nonfinite_seen) {
        long long first = h->first_nonfinite;
        g->nonfinite_seen = h->nonfinite;
        if (!t->skip_nonfinite)
            return rt_fail(RT_ERR_NUMERIC,
                           "step %lld: non-finite loss or gradient (found on the device, the update "
                           "was not applied; %lld such steps so far); --skip-nonfinite skips such steps",
                           first + 1, (long long)h->nonfinite);
    }
    return RT_OK;
}

extern "C" rt_status gpu_train_step(gpu_train_t *g, train_step_t *t, batch_fn next,
                                    void *next_ctx, bool want_result, gpu_step_result_t *res)
{
    CHECK_ARG(g && t && next && res, "gpu_train_step: NULL argument");
    CHECK_ARG(t->accum >= 1, "gpu_train_step: accum %d", t->accum);
    memset(res, 0, sizeof *res);
    const double lr = schedule_lr(&t->sched, t->step);
    /* The first SLOTS steps run eager: module loading, cuBLAS's first calls
     * and every kernel's first launch then happen outside a capture. */
    const bool graphs = !g->cfg.eager && t->accum == 1 && g->steps_run >= SLOTS;
    g->steps_run++;
    bool used_graph = true;

    step_begin_kernel<<<1, 1, 0, g->stream>>>(g->state, (float)lr, (long long)t->step);
    CHECK_LAUNCH();
    for (int k = 0; k < t->accum; k++) {
        const float *x;
        const int32_t *y;
        int B;
        TRY(next(next_ctx, k, &x, &y, &B));
        CHECK_ARG(B >= 1 && B <= g->max_batch, "gpu_train_step: micro-batch of %d rows (max %d)", B,
                  g->max_batch);
        const int slot = (int)(g->micro++ % SLOTS);
        /* the slot's previous reader must be done before the copy lands */
        CHECK_CUDA(cudaStreamWaitEvent(g->copy_stream, g->slot_free[slot], 0));
        CHECK_CUDA(cudaMemcpyAsync(g->xin[slot], x, sizeof(float) * (size_t)B * g->in_dim,
                                   cudaMemcpyHostToDevice, g->copy_stream));
        CHECK_CUDA(cudaMemcpyAsync(g->yin[slot], y, sizeof(int32_t) * (size_t)B,
                                   cudaMemcpyHostToDevice, g->copy_stream));
        CHECK_CUDA(cudaEventRecord(g->copy_done[slot], g->copy_stream));
        CHECK_CUDA(cudaStreamWaitEvent(g->stream, g->copy_done[slot], 0));
        cudaGraphExec_t ga;
        if (graphs && B == g->max_batch && graph_get(g, slot, t->grad_clip, &ga)) {
            CHECK_CUDA(cudaGraphLaunch(ga, g->stream));
        } else {
            used_graph = false;
            TRY(enqueue_micro(g, slot, B, t->accum, k == 0));
        }
        CHECK_CUDA(cudaEventRecord(g->slot_free[slot], g->stream));
        /* the caller's host buffer is free once its copy is done */
        TRY(event_wait(g, g->copy_done[slot], "the input copy"));
    }
    if (g->reduce) {
        loss_to_float_kernel<<<1, 1, 0, g->stream>>>(g->state);
        CHECK_LAUNCH();
        TRY(g->reduce(g->reduce_ctx, g->grads, g->total, (void *)g->stream));
        TRY(g->reduce(g->reduce_ctx, &g->state->loss_f, 1, (void *)g->stream));
        loss_from_float_kernel<<<1, 1, 0, g->stream>>>(g->state);
        CHECK_LAUNCH();
    }
    cudaGraphExec_t gb;
    if (graphs && graph_get(g, SLOTS, t->grad_clip, &gb)) {
        CHECK_CUDA(cudaGraphLaunch(gb, g->stream));
    } else {
        used_graph = false;
        TRY(enqueue_update(g, t->grad_clip));
    }
    g->mode = used_graph ? "graph" : "eager";
    t->step++;
    if (want_result)
        TRY(read_result(g, t, res, lr));
    else
        res->lr = lr;
    return RT_OK;
}

/* ---- pinned host buffers ------------------------------------------------------------ */

extern "C" void *gpu_train_host_alloc(size_t bytes, void *ctx)
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

extern "C" void gpu_train_host_free(void *ptr, void *ctx)
{
    (void)ctx;
    if (ptr)
        (void)cudaFreeHost(ptr);
}
