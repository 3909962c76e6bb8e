/* op_cpu_transformer.c - the CPU oracle of the transformer's per-position
 * ops (op_cpu.h): token and position embeddings, LayerNorm, GELU and the
 * residual sum. Each follows PyTorch's formula step by step (nn.Embedding,
 * nn.LayerNorm, F.gelu(approximate="tanh")) so that float32 results agree
 * to rounding; row statistics are accumulated in double. Loops run on the
 * rank's OpenMP threads; where several rows add into one gradient row, each
 * thread owns a range of columns instead, so no two threads write the same
 * element and the sums do not depend on the thread count. */
#include "trainer/ops/op_cpu.h"
#include "trainer/ops/cpu_vecmath.h"

#include <string.h>

/* Loops shorter than this run on one thread (a parallel region costs a few
 * microseconds). */
#define OP_PARALLEL_MIN 32768
/* Columns per task in the column-owned gradient sums. */
#define COLUMN_BLOCK 64

void embedding_forward_cpu(float *out, const int32_t *tokens, const float *wte,
                           const float *wpe, int B, int T, int C)
{
    const int64_t N = (int64_t)B * T;
#pragma omp parallel for schedule(static) if (N * C >= OP_PARALLEL_MIN)
    for (int64_t n = 0; n < N; n++) {
        const float *te = wte + (size_t)tokens[n] * C;
        const float *pe = wpe + (size_t)(n % T) * C;
        float *o = out + (size_t)n * C;
#pragma omp simd
        for (int c = 0; c < C; c++)
            o[c] = te[c] + pe[c];
    }
}

void embedding_backward_cpu(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                            int B, int T, int C)
{
    const int64_t N = (int64_t)B * T;
    /* Rows of one token (or one position) add into the same gradient row:
     * each task owns a block of columns and walks every position in order. */
#pragma omp parallel for schedule(static) if (N * C >= OP_PARALLEL_MIN)
    for (int c0 = 0; c0 < C; c0 += COLUMN_BLOCK) {
        const int c1 = c0 + COLUMN_BLOCK < C ? c0 + COLUMN_BLOCK : C;
        for (int64_t n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * C;
            if (dwte) {
                float *g = dwte + (size_t)tokens[n] * C;
                for (int c = c0; c < c1; c++)
                    g[c] += d[c];
            }
            if (dwpe) {
                float *g = dwpe + (size_t)(n % T) * C;
                for (int c = c0; c < c1; c++)
                    g[c] += d[c];
            }
        }
    }
}

void layernorm_forward_cpu(float *out, float *mean, float *rstd, const float *inp,
                           const float *weight, const float *bias, int64_t N, int C, float eps)
{
#pragma omp parallel for schedule(static) if (N * C >= OP_PARALLEL_MIN)
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        double sum = 0.0;
        for (int c = 0; c < C; c++)
            sum += x[c];
        const double mu = sum / C;
        double var = 0.0;
        for (int c = 0; c < C; c++) {
            const double d = x[c] - mu;
            var += d * d;
        }
        const float m = (float)mu;
        const float rs = (float)(1.0 / sqrt(var / C + (double)eps));
#pragma omp simd
        for (int c = 0; c < C; c++)
            o[c] = (x[c] - m) * rs * weight[c] + bias[c];
        mean[n] = m;
        rstd[n] = rs;
    }
}

void layernorm_backward_cpu(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, const float *mean,
                            const float *rstd, int64_t N, int C)
{
    /* dinp = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * weight,
     * xhat = (x - mean) * rstd: rows are independent. */
    if (dinp) {
#pragma omp parallel for schedule(static) if (N * C >= OP_PARALLEL_MIN)
        for (int64_t n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
            float *di = dinp + (size_t)n * C;
            const float m = mean[n], rs = rstd[n];
            double gsum = 0.0, gxsum = 0.0;
            for (int c = 0; c < C; c++) {
                const float g = d[c] * weight[c];
                gsum += g;
                gxsum += (double)g * ((x[c] - m) * rs);
            }
            const float gmean = (float)(gsum / C), gxmean = (float)(gxsum / C);
#pragma omp simd
            for (int c = 0; c < C; c++) {
                const float xhat = (x[c] - m) * rs;
                di[c] += rs * (d[c] * weight[c] - gmean - xhat * gxmean);
            }
        }
    }
    /* dweight = sum over rows of dout * xhat, dbias = sum of dout: columns
     * owned by tasks, rows walked in order. */
    if (dweight || dbias) {
#pragma omp parallel for schedule(static) if (N * C >= OP_PARALLEL_MIN)
        for (int c0 = 0; c0 < C; c0 += COLUMN_BLOCK) {
            const int c1 = c0 + COLUMN_BLOCK < C ? c0 + COLUMN_BLOCK : C;
            float wacc[COLUMN_BLOCK] = {0}, bacc[COLUMN_BLOCK] = {0};
            for (int64_t n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
                const float m = mean[n], rs = rstd[n];
                for (int c = c0; c < c1; c++) {
                    wacc[c - c0] += d[c] * ((x[c] - m) * rs);
                    bacc[c - c0] += d[c];
                }
            }
            for (int c = c0; c < c1; c++) {
                if (dweight)
                    dweight[c] += wacc[c - c0];
                if (dbias)
                    dbias[c] += bacc[c - c0];
            }
        }
    }
}

/* PyTorch's constants for the tanh approximation: sqrt(2/pi) and 0.044715. */
#define GELU_BETA 0.7978845608028654f
#define GELU_KAPPA 0.044715f

void gelu_forward_cpu(float *out, const float *inp, int64_t N)
{
#pragma omp parallel for simd schedule(static) if (N >= OP_PARALLEL_MIN)
    for (int64_t i = 0; i < N; i++) {
        const float x = inp[i];
        const float inner = GELU_BETA * (x + GELU_KAPPA * x * x * x);
        out[i] = 0.5f * x * (1.0f + tanhf(inner));
    }
}

void gelu_backward_cpu(float *dinp, const float *inp, const float *dout, int64_t N)
{
    /* d/dx of 0.5 x (1 + tanh(u)), u = beta (x + kappa x^3):
     * 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) beta (1 + 3 kappa x^2) */
#pragma omp parallel for simd schedule(static) if (N >= OP_PARALLEL_MIN)
    for (int64_t i = 0; i < N; i++) {
        const float x = inp[i], x2 = x * x;
        const float th = tanhf(GELU_BETA * (x + GELU_KAPPA * x2 * x));
        const float left = 0.5f * x, right = 1.0f + th;
        const float dleft = 0.5f * right;
        const float dright = left * (1.0f - th * th) * GELU_BETA * (1.0f + 3.0f * GELU_KAPPA * x2);
        dinp[i] += dout[i] * (dleft + dright);
    }
}

void residual_forward_cpu(float *out, const float *a, const float *b, int64_t N)
{
#pragma omp parallel for simd schedule(static) if (N >= OP_PARALLEL_MIN)
    for (int64_t i = 0; i < N; i++)
        out[i] = a[i] + b[i];
}
