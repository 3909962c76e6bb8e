/* bench_ops_cuda.c - times the CUDA ops against the device's own ceilings,
 * measured in the same run: a large device-to-device copy (bytes read plus
 * written per second) for the memory-bound kernels, and cuBLAS sgemm (FP32,
 * then TF32) for the matrix products. Each figure is the median of 20 timed
 * calls after 3 warm-ups (CUDA events on the op's stream), on random data.
 * Bytes are the fewest each op must move (every input read once, every
 * output written once). A benchmark, not a test; exits 77 without a GPU. */
#include <cuda_runtime_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/status.h"
#include "trainer/ops/device.h"
#include "trainer/ops/op_cuda.h"
#include "trainer/ops/update_math.h"

#define BCUDA(call) \
    do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { \
         fprintf(stderr, "FATAL %s:%d %s: %s\n", __FILE__, __LINE__, #call, \
                 cudaGetErrorString(e_)); exit(1); } } while (0)
#define BST(call) \
    do { rt_status s_ = (call); if (s_ != RT_OK) { \
         fprintf(stderr, "FATAL %s:%d %s: %s\n", __FILE__, __LINE__, #call, rt_last_error()); \
         exit(1); } } while (0)

enum { WARMUP = 3, ITERS = 20 };

typedef enum { K_COPY, K_LINEAR, K_RELU, K_SOFTMAX, K_ADAMW, K_SUMSQ } kind_t;

typedef struct {
    rt_cuda_ctx_t *ctx;
    float *a, *b, *c, *d;
    int32_t *labels;
    double *acc;
    optim_scalars_t *scalars;  /* device */
    int B, C, OC, V;
    int64_t n;
    int64_t step;
} bench_args;

static void run(kind_t k, bench_args *x)
{
    cudaStream_t s = (cudaStream_t)cuda_ctx_stream(x->ctx);
    switch (k) {
    case K_COPY:
        BCUDA(cudaMemcpyAsync(x->b, x->a, (size_t)x->n * 4, cudaMemcpyDeviceToDevice, s));
        break;
    case K_LINEAR:
        BST(linear_forward_cuda(x->c, x->a, x->b, NULL, x->B, x->C, x->OC, x->ctx));
        break;
    case K_RELU:
        BST(relu_forward_cuda(x->b, x->a, x->n, x->ctx));
        break;
    case K_SOFTMAX:
        BST(softmax_xent_forward_cuda(x->c, x->b, x->a, x->labels, x->B, x->V, x->ctx));
        break;
    case K_ADAMW:
        BST(adamw_update_cuda(x->a, x->b, x->c, x->d, x->n, 0.9f, 0.999f, 1e-8f, 0.01f,
                              x->scalars, x->ctx));
        break;
    case K_SUMSQ:
        BST(sum_squares_cuda(x->acc, x->a, x->n, x->ctx));
        break;
    }
}

static int cmp_float(const void *p, const void *q)
{
    float u = *(const float *)p, v = *(const float *)q;
    return (u > v) - (u < v);
}

/* median milliseconds */
static double time_ms(kind_t k, bench_args *x)
{
    cudaStream_t s = (cudaStream_t)cuda_ctx_stream(x->ctx);
    cudaEvent_t ev[2 * ITERS];
    for (int i = 0; i < 2 * ITERS; i++)
        BCUDA(cudaEventCreate(&ev[i]));
    for (int i = 0; i < WARMUP; i++)
        run(k, x);
    for (int i = 0; i < ITERS; i++) {
        BCUDA(cudaEventRecord(ev[2 * i], s));
        run(k, x);
        BCUDA(cudaEventRecord(ev[2 * i + 1], s));
    }
    BST(cuda_ctx_sync(x->ctx));
    float ms[ITERS];
    for (int i = 0; i < ITERS; i++)
        BCUDA(cudaEventElapsedTime(&ms[i], ev[2 * i], ev[2 * i + 1]));
    for (int i = 0; i < 2 * ITERS; i++)
        BCUDA(cudaEventDestroy(ev[i]));
    qsort(ms, ITERS, sizeof ms[0], cmp_float);
    return 0.5 * (ms[ITERS / 2 - 1] + ms[ITERS / 2]);
}

static float *dev_random(int64_t n, float lo, float hi, uint32_t seed)
{
    float *h = malloc((size_t)n * 4), *d = NULL;
    if (!h) { fprintf(stderr, "FATAL out of host memory\n"); exit(1); }
    uint32_t x = seed | 1u;
    for (int64_t i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        h[i] = lo + (hi - lo) * (float)(x >> 8) * (1.0f / 16777216.0f);
    }
    BCUDA(cudaMalloc((void **)&d, (size_t)n * 4));
    BCUDA(cudaMemcpy(d, h, (size_t)n * 4, cudaMemcpyHostToDevice));
    BCUDA(cudaDeviceSynchronize()); /* legacy-stream copy vs. the op's stream */
    free(h);
    return d;
}

int main(void)
{
    int devices = 0;
    BST(device_count(RT_DEVICE_CUDA, &devices));
    if (devices == 0) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    struct cudaDeviceProp prop;
    BCUDA(cudaGetDeviceProperties(&prop, 0));
    printf("# ops on %s (%d SMs), median of %d calls after %d warm-ups\n", prop.name,
           prop.multiProcessorCount, ITERS, WARMUP);
    printf("%-30s %12s %12s %12s\n", "op", "median_us", "GB/s", "TFLOP/s");

    rt_cuda_ctx_t *fp32 = NULL, *tf32 = NULL;
    BST(cuda_ctx_create(&fp32, 0, false));
    BST(cuda_ctx_create(&tf32, 0, true));
    bench_args x = {0};
    x.ctx = fp32;

    /* memory ceiling: copy 1 GiB */
    x.n = (int64_t)1 << 28;
    x.a = dev_random(x.n, -1, 1, 1);
    BCUDA(cudaMalloc((void **)&x.b, (size_t)x.n * 4));
    double t = time_ms(K_COPY, &x);
    double copy_gbs = 2.0 * x.n * 4 / (t * 1e-3) / 1e9;
    printf("%-30s %12.1f %12.1f %12s\n", "copy 1 GiB (read+write)", t * 1e3, copy_gbs, "-");
    t = time_ms(K_RELU, &x);
    printf("%-30s %12.1f %12.1f %12s\n", "relu_forward 256M", t * 1e3,
           2.0 * x.n * 4 / (t * 1e-3) / 1e9, "-");
    BCUDA(cudaMalloc((void **)&x.acc, sizeof(double)));
    BCUDA(cudaMemset(x.acc, 0, sizeof(double)));
    BCUDA(cudaDeviceSynchronize());
    t = time_ms(K_SUMSQ, &x);
    printf("%-30s %12.1f %12.1f %12s\n", "sum_squares 256M", t * 1e3,
           1.0 * x.n * 4 / (t * 1e-3) / 1e9, "-");
    BCUDA(cudaFree(x.a));
    BCUDA(cudaFree(x.b));

    /* AdamW over 64M parameters: p, m, v, g read; p, m, v written */
    x.n = (int64_t)1 << 26;
    x.a = dev_random(x.n, -1, 1, 2);
    x.b = dev_random(x.n, -0.1f, 0.1f, 3);
    x.c = dev_random(x.n, 0, 0.01f, 4);
    x.d = dev_random(x.n, -1, 1, 5);
    {
        optim_scalars_t sc = {.coef = 1.0f};
        update_adamw_scalars(&sc, 1e-4f, 0.9f, 0.999f, 10);
        BCUDA(cudaMalloc((void **)&x.scalars, sizeof sc));
        BCUDA(cudaMemcpy(x.scalars, &sc, sizeof sc, cudaMemcpyHostToDevice));
        BCUDA(cudaDeviceSynchronize());
    }
    t = time_ms(K_ADAMW, &x);
    printf("%-30s %12.1f %12.1f %12s\n", "adamw_update 64M", t * 1e3,
           7.0 * x.n * 4 / (t * 1e-3) / 1e9, "-");
    BCUDA(cudaFree(x.a)); BCUDA(cudaFree(x.b)); BCUDA(cudaFree(x.c)); BCUDA(cudaFree(x.d));
    BCUDA(cudaFree(x.scalars));

    /* softmax cross-entropy, GPT-2-sized vocabulary: logits read, probs written */
    x.B = 4096;
    x.V = 50257;
    x.n = (int64_t)x.B * x.V;
    x.a = dev_random(x.n, -8, 8, 6);
    BCUDA(cudaMalloc((void **)&x.b, (size_t)x.n * 4));
    BCUDA(cudaMalloc((void **)&x.c, (size_t)x.B * 4));
    {
        int32_t *h = malloc((size_t)x.B * 4);
        for (int i = 0; i < x.B; i++)
            h[i] = (int32_t)((i * 7919) % x.V);
        BCUDA(cudaMalloc((void **)&x.labels, (size_t)x.B * 4));
        BCUDA(cudaMemcpy(x.labels, h, (size_t)x.B * 4, cudaMemcpyHostToDevice));
        BCUDA(cudaDeviceSynchronize());
        free(h);
    }
    t = time_ms(K_SOFTMAX, &x);
    printf("%-30s %12.1f %12.1f %12s\n", "softmax_xent_fwd 4096x50257", t * 1e3,
           2.0 * x.n * 4 / (t * 1e-3) / 1e9, "-");
    BCUDA(cudaFree(x.a)); BCUDA(cudaFree(x.b)); BCUDA(cudaFree(x.c)); BCUDA(cudaFree(x.labels));

    /* matrix ceiling: linear 4096^3 through cuBLAS, FP32 then TF32 */
    x.B = x.C = x.OC = 4096;
    x.a = dev_random((int64_t)x.B * x.C, -1, 1, 7);
    x.b = dev_random((int64_t)x.OC * x.C, -1, 1, 8);
    BCUDA(cudaMalloc((void **)&x.c, (size_t)x.B * x.OC * 4));
    double flop = 2.0 * x.B * x.C * x.OC;
    t = time_ms(K_LINEAR, &x);
    printf("%-30s %12.1f %12s %12.1f\n", "linear 4096^3 fp32", t * 1e3, "-", flop / (t * 1e-3) / 1e12);
    x.ctx = tf32;
    t = time_ms(K_LINEAR, &x);
    printf("%-30s %12.1f %12s %12.1f\n", "linear 4096^3 tf32", t * 1e3, "-", flop / (t * 1e-3) / 1e12);
    BCUDA(cudaFree(x.a)); BCUDA(cudaFree(x.b)); BCUDA(cudaFree(x.c)); BCUDA(cudaFree(x.acc));
    printf("copy ceiling %.0f GB/s (read+write)\n", copy_gbs);
    cuda_ctx_destroy(fp32);
    cuda_ctx_destroy(tf32);
    return 0;
}
