/* op_cuda_attention.cu - causal multi-head self-attention on CUDA
 * (op_cuda.h), the oracle's computation (op_cpu_attention.c) step by step:
 * scores = q.k^T / sqrt(hs) over the whole T x T square, the causal softmax
 * in place (zeros above the diagonal), out = att.v; backward through the
 * same products. att [B,NH,T,T] is the CPU's saved buffer, layout
 * included, so the model (gpt.c) runs unchanged on either device.
 *
 * The products are cuBLAS strided-batched sgemms over the NH heads of one
 * batch row (head h of q, k, v, out sits hs columns after head h-1, so one
 * stride covers the heads; batch rows are T*3C apart, which no single
 * stride across (row, head) pairs can express): B calls per product. The
 * softmax and its backward are one warp per row of att, sums in double as
 * on the CPU. fp32 throughout (TF32 only when the context allows it for
 * every product). Nothing uses atomics; cuBLAS repeats its results on one
 * GPU model with the context's fixed workspace. */
extern "C" {
#include "common/check.h"
#include "common/status.h"
}
#include "trainer/ops/op_cuda.h"
#include "trainer/ops/op_cuda_internal.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>

#include "common/check_cuda.h"

/* Blocks for a loop of one warp per row over n rows. */
static unsigned rows_grid(int64_t n)
{
    return rt_cuda_grid(n, RT_WARPS_PER_BLOCK, 32);
}

/* The causal softmax of each row of scores in place: row r is position
 * t = r % T of its (batch row, head); entries j <= t become probabilities
 * (the maximum subtracted first, the sum of exponentials in double), j > t
 * zero. One warp per row; each lane reads back only what it wrote. */
__global__ void causal_softmax_kernel(float *att, int64_t rows, int T)
{
    const int lane = (int)(threadIdx.x % 32);
    const int64_t warps = (int64_t)gridDim.x * RT_WARPS_PER_BLOCK;
    for (int64_t row = blockIdx.x * (int64_t)RT_WARPS_PER_BLOCK + threadIdx.x / 32; row < rows;
         row += warps) {
        const int t = (int)(row % T);
        float *r = att + row * T;
        float maxv = -INFINITY;
        for (int j = lane; j <= t; j += 32)
            maxv = fmaxf(maxv, r[j]);
        maxv = warp_max(maxv);
        double sum = 0.0;
        for (int j = lane; j <= t; j += 32) {
            const float e = expf(r[j] - maxv);
            r[j] = e;
            sum += e;
        }
        sum = warp_sum_double(sum);
        const float inv = (float)(1.0 / sum);
        for (int j = lane; j <= t; j += 32)
            r[j] *= inv;
        for (int j = t + 1 + lane; j < T; j += 32)
            r[j] = 0.0f;
    }
}

/* The softmax backward in place on ds (which holds datt = dout.v^T), the
 * scale folded in: ds[t, j] = scale * att[t, j] * (datt[t, j] - sum_j'
 * att[t, j'] datt[t, j']) for j <= t, zero above (the oracle's order of
 * operations). One warp per row, the dot product in double. */
__global__ void causal_softmax_backward_kernel(float *ds, const float *att, int64_t rows, int T,
                                               float scale)
{
    const int lane = (int)(threadIdx.x % 32);
    const int64_t warps = (int64_t)gridDim.x * RT_WARPS_PER_BLOCK;
    for (int64_t row = blockIdx.x * (int64_t)RT_WARPS_PER_BLOCK + threadIdx.x / 32; row < rows;
         row += warps) {
        const int t = (int)(row % T);
        const float *a = att + row * T;
        float *d = ds + row * T;
        double dot = 0.0;
        for (int j = lane; j <= t; j += 32)
            dot += (double)a[j] * d[j];
        dot = warp_sum_double(dot);
        const float fdot = (float)dot;
        for (int j = lane; j <= t; j += 32)
            d[j] = scale * a[j] * (d[j] - fdot);
        for (int j = t + 1 + lane; j < T; j += 32)
            d[j] = 0.0f;
    }
}

/* Row-major products through column-major cuBLAS: a row-major matrix M
 * (rows x cols, leading dimension ld) is the column-major M^T with the same
 * ld, so row-major C = A.B is column-major C^T = B^T.A^T. Below, for one
 * batch row b and the NH heads (stride hs along the channels, T*T along
 * att), with q, k, v row-major [T, hs] at leading dimension 3C, out and
 * dout at C, att and ds at T:
 *   scores = q.k^T     ->  col-major S^T = k(op T) . q(op N)
 *   out    = att.v     ->  col-major out^T = v(op N) . att(op N)
 *   datt   = dout.v^T  ->  col-major = v(op T) . dout(op N)
 *   dq    += ds.k      ->  col-major dq^T = k(op N) . ds(op N)
 *   dk    += ds^T.q    ->  col-major dk^T = q(op N) . ds(op T)
 *   dv    += att^T.dout->  col-major dv^T = dout(op N) . att(op T) */
static rt_status sgemm_heads(rt_cuda_ctx_t *ctx, cublasOperation_t ta, cublasOperation_t tb,
                             int m, int n, int k, float alpha, const float *A, int lda,
                             long long sa, const float *Bm, int ldb, long long sb, float beta,
                             float *Cm, int ldc, long long sc, int heads)
{
    CHECK_CUBLAS(ctx->blas_api->SgemmStridedBatched(ctx->blas, ta, tb, m, n, k, &alpha, A, lda, sa, Bm, ldb,
                                                    sb, &beta, Cm, ldc, sc, heads));
    return RT_OK;
}

static rt_status attention_sizes(const char *who, int B, int T, int C, int NH)
{
    CHECK_ARG(B >= 0 && T >= 0 && C > 0 && NH > 0 && C % NH == 0,
              "%s: bad sizes B=%d T=%d C=%d NH=%d", who, B, T, C, NH);
    /* cuBLAS takes the leading dimension 3C as an int */
    CHECK_ARG(C <= INT32_MAX / 3, "%s: C=%d is too large", who, C);
    return RT_OK;
}

extern "C" rt_status attention_forward_cuda(float *out, float *att, const float *qkv, int B,
                                            int T, int C, int NH, rt_cuda_ctx_t *ctx)
{
    TRY(cuda_ctx_check(ctx, "attention_forward_cuda"));
    TRY(attention_sizes("attention_forward_cuda", B, T, C, NH));
    if (B == 0 || T == 0)
        return RT_OK;
    const int hs = C / NH, C3 = 3 * C;
    /* the oracle's scale, computed the same way */
    const float scale = 1.0f / sqrtf((float)hs);
    const long long TT = (long long)T * T;
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (int64_t)b * T * C3, *k = q + C, *v = q + 2 * C;
        float *a = att + (int64_t)b * NH * TT;
        float *o = out + (int64_t)b * T * C;
        TRY(sgemm_heads(ctx, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hs, scale, k, C3, hs, q, C3, hs, 0.0f,
                        a, T, TT, NH));
        /* this row's softmax before its att.v (the products of later rows
         * do not touch these rows of att) */
        const int64_t rows = (int64_t)NH * T;
        causal_softmax_kernel<<<rows_grid(rows), RT_THREADS, 0, ctx->stream>>>(a, rows, T);
        CHECK_LAUNCH();
        TRY(sgemm_heads(ctx, CUBLAS_OP_N, CUBLAS_OP_N, hs, T, T, 1.0f, v, C3, hs, a, T, TT, 0.0f,
                        o, C, hs, NH));
    }
    return RT_OK;
}

extern "C" rt_status attention_backward_cuda(float *dqkv, float *scratch, const float *dout,
                                             const float *qkv, const float *att, int B, int T,
                                             int C, int NH, rt_cuda_ctx_t *ctx)
{
    TRY(cuda_ctx_check(ctx, "attention_backward_cuda"));
    TRY(attention_sizes("attention_backward_cuda", B, T, C, NH));
    if (dqkv == NULL || B == 0 || T == 0)
        return RT_OK;
    const int hs = C / NH, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)hs);
    const long long TT = (long long)T * T;
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (int64_t)b * T * C3, *k = q + C, *v = q + 2 * C;
        float *dq = dqkv + (int64_t)b * T * C3, *dk = dq + C, *dv = dq + 2 * C;
        const float *a = att + (int64_t)b * NH * TT;
        const float *dO = dout + (int64_t)b * T * C;
        float *ds = scratch + (int64_t)b * NH * TT;
        /* datt = dout . v^T */
        TRY(sgemm_heads(ctx, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hs, 1.0f, v, C3, hs, dO, C, hs, 0.0f,
                        ds, T, TT, NH));
        const int64_t rows = (int64_t)NH * T;
        causal_softmax_backward_kernel<<<rows_grid(rows), RT_THREADS, 0, ctx->stream>>>(
            ds, a, rows, T, scale);
        CHECK_LAUNCH();
        /* dq += ds . k; dk += ds^T . q; dv += att^T . dout */
        TRY(sgemm_heads(ctx, CUBLAS_OP_N, CUBLAS_OP_N, hs, T, T, 1.0f, k, C3, hs, ds, T, TT, 1.0f,
                        dq, C3, hs, NH));
        TRY(sgemm_heads(ctx, CUBLAS_OP_N, CUBLAS_OP_T, hs, T, T, 1.0f, q, C3, hs, ds, T, TT, 1.0f,
                        dk, C3, hs, NH));
        TRY(sgemm_heads(ctx, CUBLAS_OP_N, CUBLAS_OP_T, hs, T, T, 1.0f, dO, C, hs, a, T, TT, 1.0f,
                        dv, C3, hs, NH));
    }
    return RT_OK;
}
