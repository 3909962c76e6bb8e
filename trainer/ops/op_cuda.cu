/* op_cuda.cu - CUDA versions of the ops in op_cuda.h: cuBLAS for the matrix
 * products, small kernels for the rest. Same arguments and semantics as the
 * CPU oracle (op_cpu.c); backward passes accumulate (+=) into gradients;
 * the optimizer and step-state rules are update_math.h's, shared with the
 * CPU. Every call into CUDA or cuBLAS and every launch is checked.
 *
 * All work goes on the context's stream; nothing here synchronizes except
 * cuda_ctx_sync() (and the growth of the scratch buffer, outside captures).
 * Kernels that reduce (bias gradient, loss sum, accuracy count) are
 * deterministic except sum_squares, which adds per-block double partials
 * with atomicAdd (order-dependent only in the last bits of a double). */
extern "C" {
#include "common/status.h"
#include "common/check.h"
}
#include "trainer/ops/op_cuda.h"
#include "trainer/ops/op_cuda_internal.h"
#include "trainer/ops/update_math.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>

#include "common/check_cuda.h"

/* cuBLAS workspace owned by the context: the same buffer in eager calls and
 * under CUDA graph capture, so cuBLAS never allocates inside a capture and
 * picks its algorithms alike in both (32 MiB, what PyTorch gives Hopper). */
enum { RT_BLAS_WORKSPACE_BYTES = 32 << 20 };

static unsigned grid_for(int64_t n)
{
    return rt_grid_for(n);
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
    TRY(cublas_api_get(&ctx->blas_api));
    CHECK_CUBLAS(ctx->blas_api->Create(&ctx->blas));
    CHECK_CUBLAS(ctx->blas_api->SetStream(ctx->blas, ctx->stream));
    /* after cublasSetStream, which resets the workspace to the default pool */
    CHECK_CUDA(cudaMalloc(&ctx->blas_workspace, RT_BLAS_WORKSPACE_BYTES));
    CHECK_CUBLAS(ctx->blas_api->SetWorkspace(ctx->blas, ctx->blas_workspace, RT_BLAS_WORKSPACE_BYTES));
    /* DEFAULT_MATH keeps fp32 products in fp32 (no TF32 unless asked). */
    CHECK_CUBLAS(ctx->blas_api->SetMathMode(ctx->blas, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
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
        (void)ctx->blas_api->Destroy(ctx->blas);
    if (ctx->stream)
        (void)cudaStreamSynchronize(ctx->stream);
    if (ctx->blas_workspace)
        (void)cudaFree(ctx->blas_workspace);
    if (ctx->scratch)
        (void)cudaFree(ctx->scratch);
    for (int i = 0; i < ctx->nretired; i++)
        (void)cudaFree(ctx->retired[i]);
    if (ctx->stream)
        (void)cudaStreamDestroy(ctx->stream);
    free(ctx);
}

extern "C" void *cuda_ctx_stream(rt_cuda_ctx_t *ctx)
{
    return ctx ? (void *)ctx->stream : NULL;
}

extern "C" int cuda_ctx_device(const rt_cuda_ctx_t *ctx)
{
    return ctx ? ctx->device : -1;
}

/* op_cuda_internal.h */
rt_status cuda_ctx_scratch(rt_cuda_ctx_t *ctx, size_t bytes, void **out)
{
    if (bytes > ctx->scratch_bytes) {
        cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
        CHECK_CUDA(cudaStreamIsCapturing(ctx->stream, &cs));
        if (cs != cudaStreamCaptureStatusNone)
            return rt_fail(RT_ERR_CUDA, "op_cuda: %zu bytes of scratch needed during a graph "
                           "capture (%zu allocated): the largest batch must run eagerly first",
                           bytes, ctx->scratch_bytes);
        size_t want = bytes > 2 * ctx->scratch_bytes ? bytes : 2 * ctx->scratch_bytes;
        if (ctx->scratch) {
            if (ctx->nretired == RT_SCRATCH_RETIRED_MAX)
                return rt_fail(RT_ERR_CUDA, "op_cuda: scratch grew %d times", ctx->nretired);
            ctx->retired[ctx->nretired++] = ctx->scratch;
            ctx->scratch = NULL;
            ctx->scratch_bytes = 0;
        }
        CHECK_CUDA(cudaMalloc(&ctx->scratch, want));
        ctx->scratch_bytes = want;
    }
    *out = ctx->scratch;
    return RT_OK;
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

/* The bias gradient in two deterministic passes, so that a large batch is
 * spread over many blocks: partial[c, o] = sum over the DB_ROWS rows of
 * chunk c of dout[r, o]; then dbias[o] += the chunks' sums in chunk order.
 * Block (32, 8): x walks 32 adjacent columns (coalesced rows), y strides
 * over the chunk's rows; the 8 partial sums of a column meet in shared
 * memory in a fixed order. */
enum { DB_ROWS = 64 };

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

rt_status cuda_ctx_check(const rt_cuda_ctx_t *ctx, const char *who)
{
    if (ctx == NULL)
        return rt_fail(RT_ERR_INVALID, "%s: ctx is NULL", who);
    return RT_OK;
}

extern "C" rt_status linear_forward_cuda(float *out, const float *inp, const float *weight,
                                         const float *bias, int B, int C, int OC,
                                         rt_cuda_ctx_t *ctx)
{
    TRY(cuda_ctx_check(ctx, "linear_forward_cuda"));
    CHECK_ARG(B >= 0 && C > 0 && OC > 0, "linear_forward_cuda: bad sizes B=%d C=%d OC=%d", B, C, OC);
    if (B == 0)
        return RT_OK;
    const float one = 1.0f, zero = 0.0f;
    /* Row-major out[B,OC] is column-major out^T (OC x B) = W (OC x C, stored
     * as C x OC column-major, hence op T) times inp^T (C x B). */
    CHECK_CUBLAS(ctx->blas_api->Sgemm(ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, B, C, &one, weight, C,
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
    TRY(cuda_ctx_check(ctx, "linear_backward_cuda"));
    CHECK_ARG(B >= 0 && C > 0 && OC > 0, "linear_backward_cuda: bad sizes B=%d C=%d OC=%d", B, C, OC);
    if (B == 0)
        return RT_OK;
    const float one = 1.0f;
    if (dinp != NULL) {
        /* dinp[B,C] += dout[B,OC] . W[OC,C]; column-major: dinp^T (C x B) =
         * W^T (C x OC, as stored) . dout^T (OC x B, as stored). */
        CHECK_CUBLAS(ctx->blas_api->Sgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, C, B, OC, &one, weight, C,
                                          dout, OC, &one, dinp, C));
    }
    if (dweight != NULL) {
        /* dW[OC,C] += dout^T . inp; column-major: dW^T (C x OC) = inp^T
         * (C x B, as stored) . dout (B x OC: op T of the stored OC x B). */
        CHECK_CUBLAS(ctx->blas_api->Sgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, B, &one, inp, C,
                                          dout, OC, &one, dweight, C));
    }
    if (dbias != NULL) {
        const int nchunks = (B + DB_ROWS - 1) / DB_ROWS;
        void *partial = NULL;
        TRY(cuda_ctx_scratch(ctx, sizeof(float) * (size_t)nchunks * (size_t)OC, &partial));
        dbias_partial_kernel<<<dim3((unsigned)((OC + 31) / 32), (unsigned)nchunks), dim3(32, 8), 0,
                               ctx->stream>>>((float *)partial, dout, B, OC);
        CHECK_LAUNCH();
        dbias_finish_kernel<<<(unsigned)((OC + RT_THREADS - 1) / RT_THREADS), RT_THREADS, 0,
                              ctx->stream>>>(dbias, (const float *)partial, nchunks, OC);
        CHECK_LAUNCH();
    }
    return RT_OK;
}

extern "C" rt_status linear_weight_rows_cuda(float *dweight, const float *dout, const float *inp,
                                             int B, int C, int OC, int row0, int R,
                                             rt_cuda_ctx_t *ctx)
{
    TRY(cuda_ctx_check(ctx, "linear_weight_rows_cuda"));
    CHECK_ARG(B >= 0 && C >= 0 && OC >= 0 && row0 >= 0 && R >= 0 && row0 + R <= OC,
              "linear_weight_rows_cuda: B=%d C=%d OC=%d rows [%d, %d)", B, C, OC, row0, row0 + R);
    if (R == 0 || C == 0)
        return RT_OK;
    const float one = 1.0f;
    /* as linear_backward's dW, over the R columns of dout from row0 (its
     * leading dimension stays OC): column-major dW^T (C x R) = inp^T (C x
     * B) . (dout + row0 viewed as R x B, ld OC)^T */
    CHECK_CUBLAS(ctx->blas_api->Sgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_T, C, R, B, &one, inp, C,
                                      dout + row0, OC, &one, dweight, C));
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
    TRY(cuda_ctx_check(ctx, "relu_forward_cuda"));
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
    TRY(cuda_ctx_check(ctx, "relu_backward_cuda"));
    CHECK_ARG(N >= 0, "relu_backward_cuda: N=%lld", (long long)N);
    if (N == 0 || dinp == NULL)
        return RT_OK;
    relu_backward_kernel<<<grid_for(N), RT_THREADS, 0, ctx->stream>>>(dinp, dout, out, N);
    CHECK_LAUNCH();
    return RT_OK;
}

/* ---- softmax cross-entropy ---------------------------------------------- */

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
    TRY(cuda_ctx_check(ctx, "softmax_xent_forward_cuda"));
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
    TRY(cuda_ctx_check(ctx, "softmax_xent_backward_cuda"));
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
    TRY(cuda_ctx_check(ctx, "accuracy_count_cuda"));
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
    TRY(cuda_ctx_check(ctx, "sum_squares_cuda"));
    CHECK_ARG(N >= 0, "sum_squares_cuda: N=%lld", (long long)N);
    if (N == 0)
        return RT_OK;
    sum_squares_kernel<<<grid_for(N), RT_THREADS, 0, ctx->stream>>>(acc_dev, x, N);
    CHECK_LAUNCH();
    return RT_OK;
}

/* ---- optimizers ---------------------------------------------------------- */

/* The rules are update_math.h's; the step's scalars are read once per
 * thread from device memory (graph replays pick up each step's). */
__global__ void adamw_kernel(float *params, float *m, float *v, const float *grads, int64_t n,
                             float beta1, float beta2, float eps, float one_m_b1, float one_m_b2,
                             float weight_decay, const optim_scalars_t *scalars)
{
    const optim_scalars_t s = *scalars;
    if (s.skip)
        return;
    const float decay = update_adamw_decay(s.lr, weight_decay);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float mi = m[i], vi = v[i];
        params[i] = update_adamw_element(params[i], &mi, &vi, grads[i], beta1, beta2, eps,
                                         one_m_b1, one_m_b2, decay, &s);
        m[i] = mi;
        v[i] = vi;
    }
}

__global__ void sgd_kernel(float *params, float *buf, const float *grads, int64_t n,
                           float momentum, float wd, const optim_scalars_t *scalars)
{
    const optim_scalars_t s = *scalars;
    if (s.skip)
        return;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        if (buf) {
            float b = buf[i];
            params[i] = update_sgd_element(params[i], &b, grads[i], momentum, wd, &s);
            buf[i] = b;
        } else {
            params[i] = update_sgd_element(params[i], NULL, grads[i], momentum, wd, &s);
        }
    }
}

extern "C" rt_status adamw_update_cuda(float *params, float *m, float *v, const float *grads,
                                       int64_t n, float beta1, float beta2, float eps,
                                       float weight_decay, const optim_scalars_t *scalars_dev,
                                       rt_cuda_ctx_t *ctx)
{
    TRY(cuda_ctx_check(ctx, "adamw_update_cuda"));
    CHECK_ARG(n >= 0 && scalars_dev, "adamw_update_cuda: n=%lld scalars=%p", (long long)n,
              (const void *)scalars_dev);
    if (n == 0)
        return RT_OK;
    adamw_kernel<<<grid_for(n), RT_THREADS, 0, ctx->stream>>>(
        params, m, v, grads, n, beta1, beta2, eps, (float)(1.0 - (double)beta1),
        (float)(1.0 - (double)beta2), weight_decay, scalars_dev);
    CHECK_LAUNCH();
    return RT_OK;
}

extern "C" rt_status sgd_update_cuda(float *params, float *momentum_buf, const float *grads,
                                     int64_t n, float momentum, float weight_decay,
                                     const optim_scalars_t *scalars_dev, rt_cuda_ctx_t *ctx)
{
    TRY(cuda_ctx_check(ctx, "sgd_update_cuda"));
    CHECK_ARG(n >= 0 && scalars_dev, "sgd_update_cuda: n=%lld scalars=%p", (long long)n,
              (const void *)scalars_dev);
    if (n == 0)
        return RT_OK;
    sgd_kernel<<<grid_for(n), RT_THREADS, 0, ctx->stream>>>(params, momentum_buf, grads, n,
                                                           momentum, weight_decay, scalars_dev);
    CHECK_LAUNCH();
    return RT_OK;
}

/* ---- the step state ----------------------------------------------------- */

__global__ void step_begin_kernel(step_state_t *s, float lr, long long step_index)
{
    s->opt.lr = lr;
    s->step_index = step_index;
    s->step_loss = 0.0;
    s->sumsq = 0.0;
}

/* s->step_loss += (sum of losses[0..n)) / denom, the sum in double in a
 * fixed order (one block: deterministic). */
__global__ void step_add_loss_kernel(step_state_t *s, const float *losses, int64_t n,
                                     double denom)
{
    __shared__ double part[RT_THREADS];
    double acc = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += RT_THREADS)
        acc += (double)losses[i];
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int w = RT_THREADS / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w)
            part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        s->step_loss += part[0] / denom;
}

__global__ void step_loss_float_kernel(step_state_t *s, int to_float)
{
    if (to_float)
        s->loss_f = (float)s->step_loss;
    else
        s->step_loss = (double)s->loss_f;
}

__global__ void step_finalize_kernel(step_state_t *s, double max_norm, int adamw, float beta1,
                                     float beta2)
{
    update_finalize(s, max_norm, adamw, beta1, beta2);
}

__global__ void step_reset_results_kernel(step_state_t *s)
{
    s->loss_acc = 0.0;
    s->loss_steps = 0;
    s->first_nonfinite = -1;
}

extern "C" rt_status step_begin_cuda(step_state_t *s, float lr, long long step_index,
                                     rt_cuda_ctx_t *ctx)
{
    TRY(cuda_ctx_check(ctx, "step_begin_cuda"));
    step_begin_kernel<<<1, 1, 0, ctx->stream>>>(s, lr, step_index);
    CHECK_LAUNCH();
    return RT_OK;
}

extern "C" rt_status step_add_loss_cuda(step_state_t *s, const float *losses, int64_t n,
                                        double denom, rt_cuda_ctx_t *ctx)
{
    TRY(cuda_ctx_check(ctx, "step_add_loss_cuda"));
    CHECK_ARG(n >= 0, "step_add_loss_cuda: n=%lld", (long long)n);
    step_add_loss_kernel<<<1, RT_THREADS, 0, ctx->stream>>>(s, losses, n, denom);
    CHECK_LAUNCH();
    return RT_OK;
}

extern "C" rt_status step_loss_float_cuda(step_state_t *s, int to_float, rt_cuda_ctx_t *ctx)
{
    TRY(cuda_ctx_check(ctx, "step_loss_float_cuda"));
    step_loss_float_kernel<<<1, 1, 0, ctx->stream>>>(s, to_float);
    CHECK_LAUNCH();
    return RT_OK;
}

extern "C" rt_status step_finalize_cuda(step_state_t *s, double max_norm, int adamw, float beta1,
                                        float beta2, rt_cuda_ctx_t *ctx)
{
    TRY(cuda_ctx_check(ctx, "step_finalize_cuda"));
    step_finalize_kernel<<<1, 1, 0, ctx->stream>>>(s, max_norm, adamw, beta1, beta2);
    CHECK_LAUNCH();
    return RT_OK;
}

extern "C" rt_status step_reset_results_cuda(step_state_t *s, rt_cuda_ctx_t *ctx)
{
    TRY(cuda_ctx_check(ctx, "step_reset_results_cuda"));
    step_reset_results_kernel<<<1, 1, 0, ctx->stream>>>(s);
    CHECK_LAUNCH();
    return RT_OK;
}
