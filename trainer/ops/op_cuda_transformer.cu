/* op_cuda_transformer.cu - the CUDA versions of the transformer's
 * per-position ops (op_cuda.h): token and position embeddings, LayerNorm,
 * GELU and the residual sum, in fp32 with the oracle's formulas
 * (op_cpu_transformer.c) written the same way, row statistics in double as
 * there, compiled without FMA contraction (trainer/CMakeLists.txt) so that
 * each expression rounds as the CPU's does. Simple kernels, correctness
 * before speed.
 *
 * Determinism: no reduction uses atomics. Warp reductions are butterflies
 * in a fixed order; where many rows add into one gradient row (the
 * embeddings, LayerNorm's weight and bias) each output element is owned by
 * one thread that adds in a fixed order: the embeddings' in position order,
 * which is the CPU's order (the same float additions, so the same bits);
 * LayerNorm's in chunks of rows, then the chunks in order. */
extern "C" {
#include "common/check.h"
#include "common/status.h"
}
#include "trainer/ops/op_cuda.h"
#include "trainer/ops/op_cuda_internal.h"

#include <cuda_runtime.h>
#include <math.h>

#include "common/check_cuda.h"

/* ---- embeddings ---------------------------------------------------------- */

/* out[n, c] = wte[tokens[n], c] + wpe[n % T, c], grid-stride over N*C. */
__global__ void embedding_forward_kernel(float *out, const int32_t *tokens, const float *wte,
                                         const float *wpe, int64_t total, int T, int C, int V)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t n = i / C;
        const int c = (int)(i - n * C);
        const int t = (int)(n % T);
        const int32_t tok = tokens[n];
        out[i] = (tok >= 0 && tok < V) ? wte[(int64_t)tok * C + c] + wpe[(int64_t)t * C + c]
                                       : NAN;
    }
}

/* Tokens staged in shared memory per tile of positions; vocabulary rows
 * per block. */
enum { EMB_TILE = 1024, EMB_ROWS = 16 };

/* dwte[v, c] += dout[n, c] for every position n with tokens[n] == v, in
 * increasing n. Block (group of EMB_ROWS vocabulary rows v0.., chunk of
 * RT_THREADS columns), one thread per column: the thread keeps its column
 * of the group's rows in shared memory (acc[r][thread], touched by no other
 * thread, so it needs no barrier), starting from the gradient's values, and
 * walks the staged tokens in order, adding dout's row into acc[token - v0]
 * when the token is in the group. So each element gets the CPU's additions
 * in the CPU's order (the same bits), and no two threads write one element
 * (no atomics). The match depends only on the token, the same for every
 * thread of the block (no divergence). The cost is a scan of all N tokens
 * per (row group, column chunk): 16 times fewer scans than a block per
 * row. Rows that no position holds are read, not written. The loops over g
 * and c0 are uniform in the block, so every thread reaches both barriers.
 * Launched with RT_THREADS threads (acc's size). */
__global__ void __launch_bounds__(RT_THREADS)
embedding_dwte_kernel(float *dwte, const float *dout, const int32_t *tokens, int64_t N, int C,
                      int V)
{
    __shared__ int32_t tok[EMB_TILE];
    __shared__ float acc[EMB_ROWS][RT_THREADS];
    const int groups = (int)(((int64_t)V + EMB_ROWS - 1) / EMB_ROWS);
    for (int g = blockIdx.x; g < groups; g += gridDim.x) {
        const int v0 = g * EMB_ROWS;
        const int nrows = V - v0 < EMB_ROWS ? V - v0 : EMB_ROWS;
        for (int64_t c0 = (int64_t)blockIdx.y * blockDim.x; c0 < C;
             c0 += (int64_t)gridDim.y * blockDim.x) {
            const int64_t c = c0 + threadIdx.x;
            if (c < C)
                for (int r = 0; r < nrows; r++)
                    acc[r][threadIdx.x] = dwte[(int64_t)(v0 + r) * C + c];
            unsigned hit = 0; /* bit r: row v0 + r was added to */
            for (int64_t n0 = 0; n0 < N; n0 += EMB_TILE) {
                const int len = (int)(N - n0 < EMB_TILE ? N - n0 : EMB_TILE);
                __syncthreads(); /* the previous tile is consumed */
                for (int i = threadIdx.x; i < len; i += blockDim.x)
                    tok[i] = tokens[n0 + i];
                __syncthreads();
                if (c < C) {
                    for (int i = 0; i < len; i++) {
                        /* unsigned: a token below v0 (or negative) wraps
                         * to a large value, so one compare bounds both ends */
                        const unsigned r = (unsigned)tok[i] - (unsigned)v0;
                        if (r >= (unsigned)nrows)
                            continue;
                        acc[r][threadIdx.x] += dout[(n0 + i) * C + c];
                        hit |= 1u << r;
                    }
                }
            }
            if (c < C)
                for (int r = 0; r < nrows; r++)
                    if (hit >> r & 1u)
                        dwte[(int64_t)(v0 + r) * C + c] = acc[r][threadIdx.x];
        }
    }
}

/* dwpe[t, c] += dout[b*T + t, c] for b = 0..B-1 in order (the CPU's order):
 * one thread per (t, c), grid-stride over T*C. */
__global__ void embedding_dwpe_kernel(float *dwpe, const float *dout, int B, int T, int C)
{
    const int64_t total = (int64_t)T * C;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        float acc = dwpe[i];
        for (int b = 0; b < B; b++)
            acc += dout[(int64_t)b * total + i];
        dwpe[i] = acc;
    }
}

extern "C" rt_status embedding_forward_cuda(float *out, const int32_t *tokens, const float *wte,
                                            const float *wpe, int B, int T, int C, int V,
                                            rt_cuda_ctx_t *ctx)
{
    TRY(cuda_ctx_check(ctx, "embedding_forward_cuda"));
    CHECK_ARG(B >= 0 && T >= 0 && C > 0 && V > 0,
              "embedding_forward_cuda: bad sizes B=%d T=%d C=%d V=%d", B, T, C, V);
    const int64_t total = (int64_t)B * T * C;
    if (total == 0)
        return RT_OK;
    embedding_forward_kernel<<<rt_grid_for(total), RT_THREADS, 0, ctx->stream>>>(
        out, tokens, wte, wpe, total, T, C, V);
    CHECK_LAUNCH();
    return RT_OK;
}

extern "C" rt_status embedding_backward_cuda(float *dwte, float *dwpe, const float *dout,
                                             const int32_t *tokens, int B, int T, int C, int V,
                                             rt_cuda_ctx_t *ctx)
{
    TRY(cuda_ctx_check(ctx, "embedding_backward_cuda"));
    CHECK_ARG(B >= 0 && T >= 0 && C > 0 && (V > 0 || !dwte),
              "embedding_backward_cuda: bad sizes B=%d T=%d C=%d V=%d", B, T, C, V);
    const int64_t N = (int64_t)B * T;
    if (N == 0)
        return RT_OK;
    if (dwte) {
        /* grid.y is capped at CUDA's 65535, the kernel's column loop covers
         * the rest; grid.x (V / 16 groups) is far inside CUDA's 2^31 - 1. */
        const int64_t chunks = ((int64_t)C + RT_THREADS - 1) / RT_THREADS;
        const int groups = (int)(((int64_t)V + EMB_ROWS - 1) / EMB_ROWS);
        const dim3 grid((unsigned)groups, (unsigned)(chunks < 65535 ? chunks : 65535));
        embedding_dwte_kernel<<<grid, RT_THREADS, 0, ctx->stream>>>(dwte, dout, tokens, N, C, V);
        CHECK_LAUNCH();
    }
    if (dwpe) {
        const int64_t total = (int64_t)T * C;
        embedding_dwpe_kernel<<<rt_grid_for(total), RT_THREADS, 0, ctx->stream>>>(dwpe, dout, B,
                                                                                 T, C);
        CHECK_LAUNCH();
    }
    return RT_OK;
}

/* ---- LayerNorm ------------------------------------------------------------- */

/* Blocks for a loop of one warp per row over n rows. */
static unsigned rows_grid(int64_t n)
{
    return rt_cuda_grid(n, RT_WARPS_PER_BLOCK, 32);
}

/* One warp per row (the warp loop is uniform in a warp, so the shuffles
 * see all 32 lanes): mean and biased variance in double, as the CPU does
 * (there in one sequential sum, here in 32 strided sums and a butterfly:
 * the double results agree to ~1e-16, so the floats almost always to the
 * bit, and the output expression rounds as the CPU's: no FMA). */
__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp,
                                         const float *weight, const float *bias, int64_t N, int C,
                                         float eps)
{
    const int lane = (int)(threadIdx.x % 32);
    const int64_t warps = (int64_t)gridDim.x * RT_WARPS_PER_BLOCK;
    for (int64_t row = blockIdx.x * (int64_t)RT_WARPS_PER_BLOCK + threadIdx.x / 32; row < N;
         row += warps) {
        const float *x = inp + row * C;
        double sum = 0.0;
        for (int c = lane; c < C; c += 32)
            sum += x[c];
        sum = warp_sum_double(sum);
        const double mu = sum / C;
        double var = 0.0;
        for (int c = lane; c < C; c += 32) {
            const double d = x[c] - mu;
            var += d * d;
        }
        var = warp_sum_double(var);
        const float m = (float)mu;
        const float rs = (float)(1.0 / sqrt(var / C + (double)eps));
        float *o = out + row * C;
        for (int c = lane; c < C; c += 32)
            o[c] = (x[c] - m) * rs * weight[c] + bias[c];
        if (lane == 0) {
            mean[row] = m;
            rstd[row] = rs;
        }
    }
}

/* dinp += rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * weight,
 * one warp per row, the two means in double (the CPU's formula). Each lane
 * reads its own elements before it writes them, so dinp may alias dout. */
__global__ void layernorm_dinp_kernel(float *dinp, const float *dout, const float *inp,
                                      const float *weight, const float *mean, const float *rstd,
                                      int64_t N, int C)
{
    const int lane = (int)(threadIdx.x % 32);
    const int64_t warps = (int64_t)gridDim.x * RT_WARPS_PER_BLOCK;
    for (int64_t row = blockIdx.x * (int64_t)RT_WARPS_PER_BLOCK + threadIdx.x / 32; row < N;
         row += warps) {
        const float *x = inp + row * C, *d = dout + row * C;
        float *di = dinp + row * C;
        const float m = mean[row], rs = rstd[row];
        double gsum = 0.0, gxsum = 0.0;
        for (int c = lane; c < C; c += 32) {
            const float g = d[c] * weight[c];
            gsum += g;
            gxsum += (double)g * ((x[c] - m) * rs);
        }
        gsum = warp_sum_double(gsum);
        gxsum = warp_sum_double(gxsum);
        const float gmean = (float)(gsum / C), gxmean = (float)(gxsum / C);
        for (int c = lane; c < C; c += 32) {
            const float xhat = (x[c] - m) * rs;
            di[c] += rs * (d[c] * weight[c] - gmean - xhat * gxmean);
        }
    }
}

/* First pass of dweight/dbias: block (32, 8), column o = blockIdx.x*32 + x,
 * rows [chunk*rows, (chunk+1)*rows) of chunk = blockIdx.y, y striding by 8;
 * the 8 partial sums of a column meet in shared memory in order and go to
 * partial[chunk][0][o] (weight) and partial[chunk][1][o] (bias). */
__global__ void layernorm_dwb_partial_kernel(float *partial, const float *dout, const float *inp,
                                             const float *mean, const float *rstd, int64_t N,
                                             int C, int rows)
{
    __shared__ float pw[8][33], pb[8][33];
    const int64_t o = (int64_t)blockIdx.x * 32 + threadIdx.x;
    const int64_t r0 = (int64_t)blockIdx.y * rows;
    const int64_t r1 = r0 + rows < N ? r0 + rows : N;
    float sw = 0.0f, sb = 0.0f;
    if (o < C) {
        for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) {
            const float d = dout[r * C + o];
            sw += d * ((inp[r * C + o] - mean[r]) * rstd[r]);
            sb += d;
        }
    }
    pw[threadIdx.y][threadIdx.x] = sw;
    pb[threadIdx.y][threadIdx.x] = sb;
    __syncthreads();
    if (threadIdx.y == 0 && o < C) {
        float tw = 0.0f, tb = 0.0f;
        for (int y = 0; y < 8; y++) {
            tw += pw[y][threadIdx.x];
            tb += pb[y][threadIdx.x];
        }
        float *p = partial + (int64_t)blockIdx.y * 2 * C;
        p[o] = tw;
        p[C + o] = tb;
    }
}

/* Second pass: dweight[o] += the chunks' weight sums in chunk order, dbias
 * likewise (either may be NULL). */
__global__ void layernorm_dwb_finish_kernel(float *dweight, float *dbias, const float *partial,
                                            int nchunks, int C)
{
    const int64_t o = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (o >= C)
        return;
    float tw = 0.0f, tb = 0.0f;
    for (int k = 0; k < nchunks; k++) {
        tw += partial[(int64_t)k * 2 * C + o];
        tb += partial[(int64_t)k * 2 * C + C + o];
    }
    if (dweight)
        dweight[o] += tw;
    if (dbias)
        dbias[o] += tb;
}

extern "C" rt_status layernorm_forward_cuda(float *out, float *mean, float *rstd,
                                            const float *inp, const float *weight,
                                            const float *bias, int64_t N, int C, float eps,
                                            rt_cuda_ctx_t *ctx)
{
    TRY(cuda_ctx_check(ctx, "layernorm_forward_cuda"));
    CHECK_ARG(N >= 0 && C > 0, "layernorm_forward_cuda: bad sizes N=%lld C=%d", (long long)N, C);
    if (N == 0)
        return RT_OK;
    layernorm_forward_kernel<<<rows_grid(N), RT_THREADS, 0, ctx->stream>>>(
        out, mean, rstd, inp, weight, bias, N, C, eps);
    CHECK_LAUNCH();
    return RT_OK;
}

/* Rows per chunk of the two-pass sums: 64, doubled until the chunks fit
 * CUDA's 65535 limit on grid.y. */
enum { LN_CHUNK_ROWS = 64 };

extern "C" rt_status layernorm_backward_cuda(float *dinp, float *dweight, float *dbias,
                                             const float *dout, const float *inp,
                                             const float *weight, const float *mean,
                                             const float *rstd, int64_t N, int C,
                                             rt_cuda_ctx_t *ctx)
{
    TRY(cuda_ctx_check(ctx, "layernorm_backward_cuda"));
    CHECK_ARG(N >= 0 && C > 0, "layernorm_backward_cuda: bad sizes N=%lld C=%d", (long long)N, C);
    if (N == 0)
        return RT_OK;
    if (dinp) {
        layernorm_dinp_kernel<<<rows_grid(N), RT_THREADS, 0, ctx->stream>>>(
            dinp, dout, inp, weight, mean, rstd, N, C);
        CHECK_LAUNCH();
    }
    if (dweight || dbias) {
        int64_t rows = LN_CHUNK_ROWS;
        while ((N + rows - 1) / rows > 65535)
            rows *= 2;
        CHECK_ARG(rows <= INT32_MAX, "layernorm_backward_cuda: %lld rows", (long long)N);
        const int nchunks = (int)((N + rows - 1) / rows);
        void *partial = NULL;
        TRY(cuda_ctx_scratch(ctx, sizeof(float) * 2 * (size_t)nchunks * (size_t)C, &partial));
        const dim3 grid((unsigned)(((int64_t)C + 31) / 32), (unsigned)nchunks);
        layernorm_dwb_partial_kernel<<<grid, dim3(32, 8), 0, ctx->stream>>>(
            (float *)partial, dout, inp, mean, rstd, N, C, (int)rows);
        CHECK_LAUNCH();
        layernorm_dwb_finish_kernel<<<(unsigned)(((int64_t)C + RT_THREADS - 1) / RT_THREADS),
                                      RT_THREADS, 0, ctx->stream>>>(
            dweight, dbias, (const float *)partial, nchunks, C);
        CHECK_LAUNCH();
    }
    return RT_OK;
}

/* ---- GELU and the residual sum ---------------------------------------------- */

/* PyTorch's constants for the tanh approximation: sqrt(2/pi) and 0.044715
 * (the oracle's, op_cpu_transformer.c). */
#define GELU_BETA 0.7978845608028654f
#define GELU_KAPPA 0.044715f

__global__ void gelu_forward_kernel(float *out, const float *inp, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float x = inp[i];
        const float inner = GELU_BETA * (x + GELU_KAPPA * x * x * x);
        out[i] = 0.5f * x * (1.0f + tanhf(inner));
    }
}

/* d/dx of 0.5 x (1 + tanh(u)), u = beta (x + kappa x^3), as the oracle
 * writes it. */
__global__ void gelu_backward_kernel(float *dinp, const float *inp, const float *dout, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float x = inp[i], x2 = x * x;
        const float th = tanhf(GELU_BETA * (x + GELU_KAPPA * x2 * x));
        const float left = 0.5f * x, right = 1.0f + th;
        const float dleft = 0.5f * right;
        const float dright = left * (1.0f - th * th) * GELU_BETA * (1.0f + 3.0f * GELU_KAPPA * x2);
        dinp[i] += dout[i] * (dleft + dright);
    }
}

/* Elementwise, each element read before it is written: out may alias a or b. */
__global__ void residual_forward_kernel(float *out, const float *a, const float *b, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

extern "C" rt_status gelu_forward_cuda(float *out, const float *inp, int64_t N, rt_cuda_ctx_t *ctx)
{
    TRY(cuda_ctx_check(ctx, "gelu_forward_cuda"));
    CHECK_ARG(N >= 0, "gelu_forward_cuda: N=%lld", (long long)N);
    if (N == 0)
        return RT_OK;
    gelu_forward_kernel<<<rt_grid_for(N), RT_THREADS, 0, ctx->stream>>>(out, inp, N);
    CHECK_LAUNCH();
    return RT_OK;
}

extern "C" rt_status gelu_backward_cuda(float *dinp, const float *inp, const float *dout,
                                        int64_t N, rt_cuda_ctx_t *ctx)
{
    TRY(cuda_ctx_check(ctx, "gelu_backward_cuda"));
    CHECK_ARG(N >= 0, "gelu_backward_cuda: N=%lld", (long long)N);
    if (N == 0)
        return RT_OK;
    gelu_backward_kernel<<<rt_grid_for(N), RT_THREADS, 0, ctx->stream>>>(dinp, inp, dout, N);
    CHECK_LAUNCH();
    return RT_OK;
}

extern "C" rt_status residual_forward_cuda(float *out, const float *a, const float *b, int64_t N,
                                           rt_cuda_ctx_t *ctx)
{
    TRY(cuda_ctx_check(ctx, "residual_forward_cuda"));
    CHECK_ARG(N >= 0, "residual_forward_cuda: N=%lld", (long long)N);
    if (N == 0)
        return RT_OK;
    residual_forward_kernel<<<rt_grid_for(N), RT_THREADS, 0, ctx->stream>>>(out, a, b, N);
    CHECK_LAUNCH();
    return RT_OK;
}
