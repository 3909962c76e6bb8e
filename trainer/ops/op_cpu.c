/* op_cpu.c - CPU implementations of the ops in op_cpu.h: matrix products through
 * OpenBLAS sgemm, the elementwise and per-row loops in C with OpenMP. These
 * are the oracle for the CUDA path, so they favour exactness (double
 * accumulators where a sum is long) and follow PyTorch's formulas step by
 * step, in the same order, so that float32 results agree to rounding. */
#include "trainer/ops/op_cpu.h"
#include "trainer/ops/update_math.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Loops shorter than this run on one thread: a parallel region costs a few
 * microseconds, more than a small loop. */
#define OP_PARALLEL_MIN 32768

void linear_forward_cpu(float *out, const float *inp, const float *weight, const float *bias,
                        int B, int C, int OC)
{
    /* Fill out with the bias rows, then let sgemm add inp . weight^T on top
     * (beta = 1): one pass instead of a product followed by a bias pass. */
    float beta = 0.0f;
    if (bias) {
        for (int b = 0; b < B; b++)
            memcpy(out + (size_t)b * OC, bias, sizeof(float) * (size_t)OC);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, OC, C, 1.0f, inp, C, weight, C,
                beta, out, OC);
}

void linear_backward_cpu(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int B, int C, int OC)
{
    /* dinp[B,C] += dout[B,OC] . weight[OC,C] */
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, C, OC, 1.0f, dout, OC, weight,
                    C, 1.0f, dinp, C);
    /* dweight[OC,C] += dout^T[OC,B] . inp[B,C] */
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, B, 1.0f, dout, OC, inp, C,
                    1.0f, dweight, C);
    /* dbias[OC] += column sums of dout; each thread owns a range of columns
     * and walks the rows, so no two threads write the same element. */
    if (dbias) {
#pragma omp parallel for schedule(static) if ((int64_t)B * OC >= OP_PARALLEL_MIN)
        for (int o0 = 0; o0 < OC; o0 += 64) {
            int o1 = o0 + 64 < OC ? o0 + 64 : OC;
            float acc[64] = {0};
            for (int b = 0; b < B; b++) {
                const float *row = dout + (size_t)b * OC;
                for (int o = o0; o < o1; o++)
                    acc[o - o0] += row[o];
            }
            for (int o = o0; o < o1; o++)
                dbias[o] += acc[o - o0];
        }
    }
}

void linear_weight_rows_cpu(float *dweight, const float *dout, const float *inp, int B, int C,
                            int OC, int row0, int R)
{
    /* the rows' columns of dout, read in place with dout's row stride */
    if (R > 0)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, C, B, 1.0f, dout + row0, OC, inp,
                    C, 1.0f, dweight, C);
}

void relu_forward_cpu(float *out, const float *inp, int64_t N)
{
    /* NaN passes through, as torch.relu does, so a bad input is not hidden */
#pragma omp parallel for simd schedule(static) if (N >= OP_PARALLEL_MIN)
    for (int64_t i = 0; i < N; i++)
        out[i] = inp[i] < 0.0f ? 0.0f : inp[i];
}

void relu_backward_cpu(float *dinp, const float *dout, const float *out, int64_t N)
{
    /* In place (dinp == dout) the gradient is masked; otherwise the masked
     * gradient is added, like every other backward. The mask is PyTorch's
     * (zero where out <= 0), so a NaN output passes its gradient on. */
    if (dinp == dout) {
#pragma omp parallel for simd schedule(static) if (N >= OP_PARALLEL_MIN)
        for (int64_t i = 0; i < N; i++)
            dinp[i] = out[i] <= 0.0f ? 0.0f : dinp[i];
    } else {
#pragma omp parallel for simd schedule(static) if (N >= OP_PARALLEL_MIN)
        for (int64_t i = 0; i < N; i++)
            dinp[i] += out[i] <= 0.0f ? 0.0f : dout[i];
    }
}

void softmax_xent_forward_cpu(float *losses, float *probs, const float *logits,
                              const int32_t *labels, int B, int V)
{
    /* Stable log-softmax: subtract the row maximum before exponentiating.
     * loss = log(sum exp(x - max)) - (x[label] - max), the sum in double. */
#pragma omp parallel for schedule(static) if ((int64_t)B * V >= OP_PARALLEL_MIN)
    for (int b = 0; b < B; b++) {
        const float *x = logits + (size_t)b * V;
        float *p = probs + (size_t)b * V;
        float maxv = x[0];
        for (int i = 1; i < V; i++)
            maxv = x[i] > maxv ? x[i] : maxv;
        double sum = 0.0;
        for (int i = 0; i < V; i++) {
            float e = expf(x[i] - maxv);
            p[i] = e;
            sum += e;
        }
        float inv = (float)(1.0 / sum);
        for (int i = 0; i < V; i++)
            p[i] *= inv;
        losses[b] = (float)(log(sum) - (double)(x[labels[b]] - maxv));
    }
}

void softmax_xent_backward_cpu(float *dlogits, const float *probs, const int32_t *labels,
                               float dloss_scale, int B, int V)
{
#pragma omp parallel for schedule(static) if ((int64_t)B * V >= OP_PARALLEL_MIN)
    for (int b = 0; b < B; b++) {
        float *d = dlogits + (size_t)b * V;
        const float *p = probs + (size_t)b * V;
        for (int i = 0; i < V; i++)
            d[i] += dloss_scale * (p[i] - (i == labels[b] ? 1.0f : 0.0f));
    }
}

int64_t accuracy_count_cpu(const float *logits, const int32_t *labels, int B, int V)
{
    int64_t correct = 0;
    for (int b = 0; b < B; b++) {
        const float *x = logits + (size_t)b * V;
        int best = 0;
        for (int i = 1; i < V; i++)
            if (x[i] > x[best])
                best = i;
        correct += best == labels[b];
    }
    return correct;
}

double sum_squares_cpu(const float *x, int64_t N)
{
    double acc = 0.0;
#pragma omp parallel for simd reduction(+ : acc) schedule(static) if (N >= OP_PARALLEL_MIN)
    for (int64_t i = 0; i < N; i++)
        acc += (double)x[i] * (double)x[i];
    return acc;
}

void adamw_update_cpu(float *params, float *m, float *v, const float *grads, int64_t n,
                      float beta1, float beta2, float eps, float weight_decay,
                      const optim_scalars_t *s)
{
    if (s->skip)
        return;
    const float one_m_b1 = (float)(1.0 - (double)beta1);
    const float one_m_b2 = (float)(1.0 - (double)beta2);
    const float decay = update_adamw_decay(s->lr, weight_decay);
    const optim_scalars_t sc = *s;  /* a local copy: the loop sees no aliasing */
    /* moments through locals, so that the loop vectorises */
#pragma omp parallel for simd schedule(static) if (n >= OP_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        float mi = m[i], vi = v[i];
        params[i] = update_adamw_element(params[i], &mi, &vi, grads[i], beta1, beta2, eps,
                                         one_m_b1, one_m_b2, decay, &sc);
        m[i] = mi;
        v[i] = vi;
    }
}

void sgd_update_cpu(float *params, float *momentum_buf, const float *grads, int64_t n,
                    float momentum, float weight_decay, const optim_scalars_t *s)
{
    if (s->skip)
        return;
    const optim_scalars_t sc = *s;
    if (!momentum_buf) {
#pragma omp parallel for simd schedule(static) if (n >= OP_PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++)
            params[i] = update_sgd_element(params[i], NULL, grads[i], momentum, weight_decay, &sc);
        return;
    }
#pragma omp parallel for simd schedule(static) if (n >= OP_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        float b = momentum_buf[i];  /* through a local: the loop vectorises */
        params[i] = update_sgd_element(params[i], &b, grads[i], momentum, weight_decay, &sc);
        momentum_buf[i] = b;
    }
}
