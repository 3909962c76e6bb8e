/* op_cpu_attention.c - the CPU oracle of causal multi-head self-attention
 * (op_cpu.h), as PyTorch computes it without a fused kernel: scores =
 * q.k^T / sqrt(hs), the future masked, softmax, att.v.
 *
 * Each (batch row, head) pair is independent, so the pairs are shared out
 * over the rank's OpenMP threads and each pair's products are single-
 * threaded sgemm calls on strided views of qkv (OpenBLAS is told to use one
 * thread for the duration, and its count is restored afterwards). The
 * products cover the whole T x T square, masked entries included: twice the
 * arithmetic of the triangle, but sgemm's speed, where hand loops over the
 * triangle are several times slower. */
#include "trainer/ops/op_cpu.h"
#include "trainer/ops/cpu_vecmath.h"

#include <cblas.h>

/* A row of scores -> the causal softmax in place: entries j <= t become
 * probabilities (the maximum subtracted first, the sum in double), j > t zero. */
static void causal_softmax_row(float *row, int t, int T)
{
    float maxv = row[0];
    for (int j = 1; j <= t; j++)
        maxv = row[j] > maxv ? row[j] : maxv;
#pragma omp simd
    for (int j = 0; j <= t; j++)
        row[j] = expf(row[j] - maxv);
    double sum = 0.0;
    for (int j = 0; j <= t; j++)
        sum += row[j];
    const float inv = (float)(1.0 / sum);
    for (int j = 0; j <= t; j++)
        row[j] *= inv;
    for (int j = t + 1; j < T; j++)
        row[j] = 0.0f;
}

/* OpenBLAS runs single-threaded while the OpenMP threads share out the
 * (batch row, head) pairs; the caller's count comes back afterwards. */
static int blas_single_begin(void)
{
    const int threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    return threads;
}

void attention_forward_cpu(float *out, float *att, const float *qkv, int B, int T, int C,
                           int NH)
{
    const int hs = C / NH, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)hs);
    const int blas_threads = blas_single_begin();
#pragma omp parallel for schedule(dynamic, 1)
    for (int pair = 0; pair < B * NH; pair++) {
        const int b = pair / NH, h = pair % NH;
        const float *q = qkv + (size_t)b * T * C3 + (size_t)h * hs;
        const float *k = q + C, *v = q + 2 * C;
        float *a = att + ((size_t)b * NH + h) * T * T;
        /* scores[t, j] = scale * q_t . k_j */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, q, C3, k, C3,
                    0.0f, a, T);
        for (int t = 0; t < T; t++)
            causal_softmax_row(a + (size_t)t * T, t, T);
        /* out_t = sum_j att[t, j] v_j (masked entries are zero) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, a, T, v, C3,
                    0.0f, out + (size_t)b * T * C + (size_t)h * hs, C);
    }
    openblas_set_num_threads(blas_threads);
}

void attention_backward_cpu(float *dqkv, float *scratch, const float *dout,
                            const float *qkv, const float *att, int B, int T, int C, int NH)
{
    const int hs = C / NH, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)hs);
    const int blas_threads = blas_single_begin();
#pragma omp parallel for schedule(dynamic, 1)
    for (int pair = 0; pair < B * NH; pair++) {
        const int b = pair / NH, h = pair % NH;
        const float *q = qkv + (size_t)b * T * C3 + (size_t)h * hs;
        const float *k = q + C, *v = q + 2 * C;
        float *dq = dqkv + (size_t)b * T * C3 + (size_t)h * hs;
        float *dk = dq + C, *dv = dq + 2 * C;
        const float *a = att + ((size_t)b * NH + h) * T * T;
        const float *dO = dout + (size_t)b * T * C + (size_t)h * hs;
        float *ds = scratch + ((size_t)b * NH + h) * T * T;
        /* datt[t, j] = dout_t . v_j */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, dO, C, v, C3, 0.0f,
                    ds, T);
        /* softmax backward, the scale folded in:
         * dscores[t, j] = scale * att[t, j] (datt[t, j] - sum_j' att[t, j'] datt[t, j']) */
        for (int t = 0; t < T; t++) {
            const float *ar = a + (size_t)t * T;
            float *dr = ds + (size_t)t * T;
            double dot = 0.0;
            for (int j = 0; j <= t; j++)
                dot += (double)ar[j] * dr[j];
            const float fdot = (float)dot;
            for (int j = 0; j <= t; j++)
                dr[j] = scale * ar[j] * (dr[j] - fdot);
            for (int j = t + 1; j < T; j++)
                dr[j] = 0.0f;
        }
        /* dq += dscores . k; dk += dscores^T . q; dv += att^T . dout */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, ds, T, k, C3, 1.0f,
                    dq, C3);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, ds, T, q, C3, 1.0f,
                    dk, C3);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, a, T, dO, C, 1.0f,
                    dv, C3);
    }
    openblas_set_num_threads(blas_threads);
}
