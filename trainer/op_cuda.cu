/* op_cuda.cu - CUDA versions of the ops in op.h: cuBLAS for the matrix
 * products, small kernels for the rest. Same arguments and semantics as the
 * CPU oracle (op_cpu.c); backward passes accumulate (+=) into gradients.
 * Every call into CUDA or cuBLAS and every launch is checked.
 *
 * All work goes on the context's stream; nothing here synchronizes except
 * cuda_ctx_sync(). Kernels that reduce (bias gradient, accuracy count) are
 * deterministic except sum_squares, which adds per-block double partials
 * with atomicAdd (order-dependent only in the last bits of a double). */
extern "C" {
#include "common/status.h"
#include "common/check.h"
}
#include "trainer/op_cuda.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>

#include "common/check_cuda.h"

struct rt_cuda_ctx {
    int device;
    bool tf32;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_workspace;
};

/* cuBLAS workspace owned by the context: the same buffer in eager calls and
 * under CUDA graph capture, so cuBLAS never allocates inside a capture and
 * picks its algorithms alike in both (32 MiB, what PyTorch gives Hopper). */
enum { RT_BLAS_WORKSPACE_BYTES = 32 << 20 };

enum { RT_THREADS = 256, RT_WARPS_PER_BLOCK = RT_THREADS / 32 };

/* Blocks for a grid-stride loop over n elements: enough to fill the chip,
 * never more than the elements need. */
static unsigned grid_for(int64_t n)
{
    int64_t blocks = (n + RT_THREADS - 1) / RT_THREADS;
    const int64_t cap = 132 * 32; /* H100: 132 SMs, 32 resident blocks is plenty */
    return (unsigned)(blocks < cap ? blocks : cap);
}

/* ---- context ------------------------------------------------------------ */

static rt_status ctx_init(rt_cuda_ctx_t *ctx, int device, bool tf32)
{
    int count = 0;
    CHECK_CUDA(cudaGetDeviceCount(&count));
    CHECK_ARG(device >= 0 && device < count, "cuda_ctx_create: device %d of %d", device, count);
    ctx->device = device;
    ctx->tf32 = tf32;
    CHECK_CUDA(cudaSetDevice(device));
    CHECK_CUDA(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking));
    CHECK_CUBLAS(cublasCreate(&ctx->blas));
    CHECK_CUBLAS(cublasSetStream(ctx->blas, ctx->stream));
    /* after cublasSetStream, which resets the workspace to the default pool */
    CHECK_CUDA(cudaMalloc(&ctx->blas_workspace, RT_BLAS_WORKSPACE_BYTES));
    CHECK_CUBLAS(cublasSetWorkspace(ctx->blas, ctx->blas_workspace, RT_BLAS_WORKSPACE_BYTES));
    /* DEFAULT_MATH keeps fp32 products in fp32 (no TF32 unless asked). */
    CHECK_CUBLAS(cublasSetMathMode(ctx->blas, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                   : CUBLAS_DEFAULT_MATH));
    return RT_OK;
}

extern "C" rt_status cuda_ctx_create(rt_cuda_ctx_t **out, int device, bool tf32)
{
    CHECK_ARG(out != NULL, "cuda_ctx_create: out is NULL");
    *out = NULL;
    rt_cuda_ctx_t *ctx = (rt_cuda_ctx_t *)calloc(1, sizeof *ctx);
    CHECK_ALLOC(ctx, sizeof *ctx);
    rt_status st = ctx_init(ctx, device, tf32);
    if (st != RT_OK) {
        cuda_ctx_destroy(ctx);
        return st;
    }
    *out = ctx;
    return RT_OK;
}

extern "C" void cuda_ctx_destroy(rt_cuda_ctx_t *ctx)
{
    if (ctx == NULL)
        return;
    /* Teardown errors cannot be acted on; the handle and stream go anyway. */
    if (ctx->blas)
        (void)cublasDestroy(ctx->blas);
    if (ctx->blas_workspace) {
        (void)cudaStreamSynchronize(ctx->stream);
        (void)cudaFree(ctx->blas_workspace);
    }
    if (ctx->stream)
        (void)cudaStreamDestroy(ctx->stream);
    free(ctx);
}

extern "C" void *cuda_ctx_stream(rt_cuda_ctx_t *ctx)
{
    return ctx ? (void *)ctx->stream : NULL;
}

extern "C" rt_status cuda_ctx_sync(rt_cuda_ctx_t *ctx)
{
    CHECK_ARG(ctx != NULL, "cuda_ctx_sync: ctx is NULL");
    CHECK_CUDA(cudaStreamSynchronize(ctx->stream));
    return RT_OK;
}

/* ---- linear ------------------------------------------------------------- */

/* out[b, o] += bias[o] over B*OC elements. */
__global__ void bias_add_kernel(float *out, const float *bias, int64_t n, int OC)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        out[i] += bias[i % OC];
}

/* dbias[o] += sum over b of dout[b, o]. Block (32, 8): x walks 32 adjacent
 * columns (coalesced rows), y strides over the batch; the 8 partial sums of
 * a column meet in shared memory in a fixed order (deterministic). */
__global__ void bias_backward_kernel(float *dbias, const float *dout, int B, int OC)
{
    __shared__ float part[8][33];
    int o = blockIdx.x * 32 + threadIdx.x;
    float s = 0.0f;
    if (o < OC)
        for (int b = threadIdx.y; b < B; b += 8)
            s += dout[(int64_t)b * OC + o];
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && o < OC) {
        float t = 0.0f;
        for (int y = 0; y < 8; y++)
            t += part[y][threadIdx.x];
        dbias[o] += t;
    }
}

static rt_status check_ctx(const rt_cuda_ctx_t *ctx, const char *who)
{
    if (ctx == NULL)
        return rt_fail(RT_ERR_INVALID, "%s: ctx is NULL", who);
    return RT_OK;
}

extern "C" rt_status linear_forward_cuda(float *out, const float *inp, const float *weight,
                                         const float *bias, int B, int C, int OC,
                                         rt_cuda_ctx_t *ctx)
{
    TRY(check_ctx(ctx, "linear_forward_cuda"));
    CHECK_ARG(B >= 0 && C > 0 && OC > 0, "linear_forward_cuda: bad sizes B=%d C=%d OC=%d", B, C, OC);
    if (B == 0)
        return RT_OK;
    const float one = 1.0f, zero = 0.0f;
    /* Row-major out[B,OC] is column-major out^T (OC x B) = W (OC x C, stored
     * as C x OC column-major, hence op T) times inp^T (C x B). */
    CHECK_CUBLAS(cublasSgemm(ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, B, C, &one, weight, C,
                             inp, C, &zero, out, OC));
    if (bias != NULL) {
        int64_t n = (int64_t)B * OC;
        bias_add_kernel<<<grid_for(n), RT_THREADS, 0, ctx->stream>>>(out, bias, n, OC);
        CHECK_LAUNCH();
    }
    return RT_OK;
}

extern "C" rt_status linear_backward_cuda(float *dinp, float *dweight, float *dbias,
                                          const float *dout, const float *inp,
                                          const float *weight, int B, int C, int OC,
                                          rt_cuda_ctx_t *ctx)
{
    TRY(check_ctx(ctx, "linear_backward_cuda"));
    CHECK_ARG(B >= 0 && C > 0 && OC > 0, "linear_backward_cuda: bad sizes B=%d C=%d OC=%d", B, C, OC);
    if (B == 0)
        return RT_OK;
    const float one = 1.0f;
    if (dinp != NULL) {
        /* dinp[B,C] += dout[B,OC] . W[OC,C]; column-major: dinp^T (C x B) =
         * W^T (C x OC, as stored) . dout^T (OC x B, as stored). */
        CHECK_CUBLAS(cublasSgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, C, B, OC, &one, weight, C,
                                 dout, OC, &one, dinp, C));
    }
    if (dweight != NULL) {
        /* dW[OC,C] += dout^T . inp; column-major: dW^T (C x OC) = inp^T
         * (C x B, as stored) . dout (B x OC: op T of the stored OC x B). */
        CHECK_CUBLAS(cublasSgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, B, &one, inp, C,
                                 dout, OC, &one, dweight, C));
    }
    if (dbias != NULL) {
        dim3 block(32, 8);
        unsigned grid = (unsigned)((OC + 31) / 32);
        bias_backward_kernel<<<grid, block, 0, ctx->stream>>>(dbias, dout, B, OC);
        CHECK_LAUNCH();
    }
    return RT_OK;
}

/* ---- relu --------------------------------------------------------------- */

__global__ void relu_forward_kernel(float *out, const float *inp, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float x = inp[i];
        out[i] = x > 0.0f ? x : 0.0f;
    }
}

/* In place (dinp == dout) the saved gradient is read before it is written,
 * element by element, which is what the CPU loop does too. */
__global__ void relu_backward_kernel(float *dinp, const float *dout, const float *out, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float g = out[i] > 0.0f ? dout[i] : 0.0f;
        if (dinp == dout)
            dinp[i] = g; /* in place: the gradient is replaced, not added to itself */
        else
            dinp[i] += g;
    }
}

extern "C" rt_status relu_forward_cuda(float *out, const float *inp, int64_t N, rt_cuda_ctx_t *ctx)
{
    TRY(check_ctx(ctx, "relu_forward_cuda"));
    CHECK_ARG(N >= 0, "relu_forward_cuda: N=%lld", (long long)N);
    if (N == 0)
        return RT_OK;
    relu_forward_kernel<<<grid_for(N), RT_THREADS, 0, ctx->stream>>>(out, inp, N);
    CHECK_LAUNCH();
    return RT_OK;
}

extern "C" rt_status relu_backward_cuda(float *dinp, const float *dout, const float *out,
                                        int64_t N, rt_cuda_ctx_t *ctx)
{
    TRY(check_ctx(ctx, "relu_backward_cuda"));
    CHECK_ARG(N >= 0, "relu_backward_cuda: N=%lld", (long long)N);
    if (N == 0 || dinp == NULL)
        return RT_OK;
    relu_backward_kernel<<<grid_for(N), RT_THREADS, 0, ctx->stream>>>(dinp, dout, out, N);
    CHECK_LAUNCH();
    return RT_OK;
}

/* ---- softmax cross-entropy ---------------------------------------------- */

__device__ __forceinline__ float warp_max(float x)
{
    for (int off = 16; off > 0; off >>= 1)
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, off));
    return x;
}

__device__ __forceinline__ float warp_sum(float x)
{
    for (int off = 16; off > 0; off >>= 1)
        x += __shfl_xor_sync(0xffffffffu, x, off);
    return x;
}

/* One warp per row: max-subtract, sum of exponentials in float, then
 * probs = e / sum and loss = log(sum) - (logit[label] - max). A label out of
 * [0, V) gives a NaN loss (the CPU oracle rejects such labels before this). */
__global__ void softmax_xent_forward_kernel(float *losses, float *probs, const float *logits,
                                            const int32_t *labels, int B, int V)
{
    int row = blockIdx.x * RT_WARPS_PER_BLOCK + (int)(threadIdx.x / 32);
    int lane = (int)(threadIdx.x % 32);
    if (row >= B)
        return; /* whole warps leave together: row is uniform in a warp */
    const float *x = logits + (int64_t)row * V;
    float *p = probs + (int64_t)row * V;
    float m = -INFINITY;
    for (int v = lane; v < V; v += 32)
        m = fmaxf(m, x[v]);
    m = warp_max(m);
    float s = 0.0f;
    for (int v = lane; v < V; v += 32) {
        float e = expf(x[v] - m);
        p[v] = e;
        s += e;
    }
    s = warp_sum(s);
    float inv = 1.0f / s;
    for (int v = lane; v < V; v += 32)
        p[v] *= inv;
    if (lane == 0) {
        int32_t y = labels[row];
        losses[row] = (y >= 0 && y < V) ? logf(s) - (x[y] - m) : NAN;
    }
}

__global__ void softmax_xent_backward_kernel(float *dlogits, const float *probs,
                                             const int32_t *labels, float scale, int64_t n, int V)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t row = i / V;
        int v = (int)(i - row * V);
        float onehot = (labels[row] == v) ? 1.0f : 0.0f;
        dlogits[i] += scale * (probs[i] - onehot);
    }
}

extern "C" rt_status softmax_xent_forward_cuda(float *losses, float *probs, const float *logits,
                                               const int32_t *labels, int B, int V,
                                               rt_cuda_ctx_t *ctx)
{
    TRY(check_ctx(ctx, "softmax_xent_forward_cuda"));
    CHECK_ARG(B >= 0 && V > 0, "softmax_xent_forward_cuda: bad sizes B=%d V=%d", B, V);
    if (B == 0)
        return RT_OK;
    unsigned grid = (unsigned)((B + RT_WARPS_PER_BLOCK - 1) / RT_WARPS_PER_BLOCK);
    softmax_xent_forward_kernel<<<grid, RT_THREADS, 0, ctx->stream>>>(losses, probs, logits,
                                                                     labels, B, V);
    CHECK_LAUNCH();
    return RT_OK;
}

extern "C" rt_status softmax_xent_backward_cuda(float *dlogits, const float *probs,
                                                const int32_t *labels, float dloss_scale, int B,
                                                int V, rt_cuda_ctx_t *ctx)
{
    TRY(check_ctx(ctx, "softmax_xent_backward_cuda"));
    CHECK_ARG(B >= 0 && V > 0, "softmax_xent_backward_cuda: bad sizes B=%d V=%d", B, V);
    int64_t n = (int64_t)B * V;
    if (n == 0)
        return RT_OK;
    softmax_xent_backward_kernel<<<grid_for(n), RT_THREADS, 0, ctx->stream>>>(
        dlogits, probs, labels, dloss_scale, n, V);
    CHECK_LAUNCH();
    return RT_OK;
}

/* ---- accuracy ----------------------------------------------------------- */

/* One warp per row. Each lane scans its columns in increasing order keeping
 * the first strict maximum; lanes then merge, preferring the larger value and,
 * on a tie, the lower index: the first maximum of the row, as on the CPU. */
__global__ void accuracy_kernel(unsigned long long *count, const float *logits,
                                const int32_t *labels, int B, int V)
{
    __shared__ unsigned hits[RT_WARPS_PER_BLOCK];
    int warp = (int)(threadIdx.x / 32);
    int lane = (int)(threadIdx.x % 32);
    int row = blockIdx.x * RT_WARPS_PER_BLOCK + warp;
    unsigned hit = 0;
    if (row < B) {
        const float *x = logits + (int64_t)row * V;
        float best = -INFINITY;
        int arg = V; /* past the end: loses every tie against a real index */
        for (int v = lane; v < V; v += 32) {
            float val = x[v];
            if (arg == V || val > best) {
                best = val;
                arg = v;
            }
        }
        for (int off = 16; off > 0; off >>= 1) {
            float ob = __shfl_xor_sync(0xffffffffu, best, off);
            int oa = __shfl_xor_sync(0xffffffffu, arg, off);
            if (oa != V && (arg == V || ob > best || (ob == best && oa < arg))) {
                best = ob;
                arg = oa;
            }
        }
        hit = (lane == 0 && arg == labels[row]) ? 1u : 0u;
    }
    if (lane == 0)
        hits[warp] = hit;
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned total = 0;
        for (int w = 0; w < RT_WARPS_PER_BLOCK; w++)
            total += hits[w];
        if (total)
            atomicAdd(count, (unsigned long long)total);
    }
}

extern "C" rt_status accuracy_count_cuda(int64_t *count_dev, const float *logits,
                                         const int32_t *labels, int B, int V, rt_cuda_ctx_t *ctx)
{
    TRY(check_ctx(ctx, "accuracy_count_cuda"));
    CHECK_ARG(B >= 0 && V > 0, "accuracy_count_cuda: bad sizes B=%d V=%d", B, V);
    CHECK_CUDA(cudaMemsetAsync(count_dev, 0, sizeof *count_dev, ctx->stream));
    if (B == 0)
        return RT_OK;
    unsigned grid = (unsigned)((B + RT_WARPS_PER_BLOCK - 1) / RT_WARPS_PER_BLOCK);
    accuracy_kernel<<<grid, RT_THREADS, 0, ctx->stream>>>((unsigned long long *)count_dev,
                                                         logits, labels, B, V);
    CHECK_LAUNCH();
    return RT_OK;
}

/* ---- sum of squares ----------------------------------------------------- */

/* Squares are exact in double (24-bit mantissas), sums are in double; one
 * atomicAdd per block. */
__global__ void sum_squares_kernel(double *acc, const float *x, int64_t n)
{
    __shared__ double part[RT_WARPS_PER_BLOCK];
    double s = 0.0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        double v = (double)x[i];
        s += v * v;
    }
    for (int off = 16; off > 0; off >>= 1)
        s += __shfl_xor_sync(0xffffffffu, s, off);
    if (threadIdx.x % 32 == 0)
        part[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int w = 0; w < RT_WARPS_PER_BLOCK; w++)
            t += part[w];
        atomicAdd(acc, t);
    }
}

extern "C" rt_status sum_squares_cuda(double *acc_dev, const float *x, int64_t N,
                                      rt_cuda_ctx_t *ctx)
{
    TRY(check_ctx(ctx, "sum_squares_cuda"));
    CHECK_ARG(N >= 0, "sum_squares_cuda: N=%lld", (long long)N);
    if (N == 0)
        return RT_OK;
    sum_squares_kernel<<<grid_for(N), RT_THREADS, 0, ctx->stream>>>(acc_dev, x, N);
    CHECK_LAUNCH();
    return RT_OK;
}

/* ---- optimizers --------------------------------------------------------- */

/* torch.optim.AdamW's order of operations (single-tensor path), as the CPU
 * oracle follows it: scalars formed in double on the host, used as float:
 * p *= 1 - lr*wd; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g;
 * p += -(lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps), bcN = 1 - bN^t. */
__global__ void adamw_kernel(float *params, float *m, float *v, const float *grads, int64_t n,
                             float beta1, float beta2, float eps, float decay, float one_m_b1,
                             float one_m_b2, float neg_step, float bc2_sqrt)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float g = grads[i];
        float p = params[i] * decay;
        float mi = m[i] * beta1 + one_m_b1 * g;
        float vi = v[i] * beta2 + one_m_b2 * (g * g);
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        m[i] = mi;
        v[i] = vi;
        params[i] = p + neg_step * (mi / denom);
    }
}

__global__ void sgd_kernel(float *params, float *buf, const float *grads, int64_t n, float lr,
                           float momentum, float wd)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float p = params[i];
        float g = grads[i] + wd * p;
        if (momentum != 0.0f) {
            float b = momentum * buf[i] + g;
            buf[i] = b;
            g = b;
        }
        params[i] = p - lr * g;
    }
}

extern "C" rt_status adamw_step_cuda(float *params, float *m, float *v, const float *grads,
                                     int64_t N, float lr, float beta1, float beta2, float eps,
                                     float weight_decay, int64_t t, rt_cuda_ctx_t *ctx)
{
    TRY(check_ctx(ctx, "adamw_step_cuda"));
    CHECK_ARG(N >= 0 && t >= 1, "adamw_step_cuda: N=%lld t=%lld", (long long)N, (long long)t);
    if (N == 0)
        return RT_OK;
    const float decay = (float)(1.0 - (double)lr * (double)weight_decay);
    const float one_m_b1 = (float)(1.0 - (double)beta1);
    const float one_m_b2 = (float)(1.0 - (double)beta2);
    const double bc1 = 1.0 - pow((double)beta1, (double)t);
    const double bc2 = 1.0 - pow((double)beta2, (double)t);
    const float neg_step = (float)(-((double)lr / bc1));
    const float bc2_sqrt = (float)sqrt(bc2);
    adamw_kernel<<<grid_for(N), RT_THREADS, 0, ctx->stream>>>(params, m, v, grads, N, beta1,
                                                             beta2, eps, decay, one_m_b1,
                                                             one_m_b2, neg_step, bc2_sqrt);
    CHECK_LAUNCH();
    return RT_OK;
}

extern "C" rt_status sgd_step_cuda(float *params, float *momentum_buf, const float *grads,
                                   int64_t N, float lr, float momentum, float weight_decay,
                                   rt_cuda_ctx_t *ctx)
{
    TRY(check_ctx(ctx, "sgd_step_cuda"));
    CHECK_ARG(N >= 0, "sgd_step_cuda: N=%lld", (long long)N);
    CHECK_ARG(momentum == 0.0f || momentum_buf != NULL, "sgd_step_cuda: momentum needs a buffer");
    if (N == 0)
        return RT_OK;
    sgd_kernel<<<grid_for(N), RT_THREADS, 0, ctx->stream>>>(params, momentum_buf, grads, N, lr,
                                                           momentum, weight_decay);
    CHECK_LAUNCH();
    return RT_OK;
}
