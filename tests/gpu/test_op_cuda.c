/* test_op_cuda.c - every CUDA op (trainer/ops/op_cuda.h) against its CPU
 * oracle (op_cpu.h) on fresh random inputs, at sizes that are and are not
 * multiples of the block sizes: the ops the training step uses, including
 * the two-pass bias gradient, the fused updates with a clip factor and a
 * skip flag read from device memory, and the step-state ops (compared with
 * the CPU device's table field by field); then the CUDA device's op table
 * itself (views checked, a mismatch refused, the kernel run). Forward outputs are poisoned with NaN before each run, so an element
 * the kernel does not write fails; backward gradients are pre-filled with the
 * same random values on both sides, so accumulation (+=) is checked.
 *
 * Pass: |gpu - cpu| <= atol + rtol*|cpu| for every element, never NaN.
 * Tolerances: float32 products reduce over K terms in a different order in
 * cuBLAS and OpenBLAS, so linear uses atol = 1e-5*sqrt(K), rtol = 1e-5
 * (TF32 is off: it would miss this by ~100x); elementwise ops atol 1e-6,
 * rtol 1e-5; softmax forward rtol 2e-5 + 1e-6*sqrt(V) (a row's sum of V
 * exponentials in another order); relu and accuracy exact; sum of squares
 * rtol 1e-9 (double).
 * Exits 77 (skipped) when there is no CUDA device. Seed: RT_TEST_SEED or the
 * clock; printed so that a failure can be replayed. */
/* Host-to-device copies and memsets run on the legacy default stream, which
 * does not order with the non-blocking streams the library uses: each one is
 * followed by cudaDeviceSynchronize(). */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/status.h"
#include "gpu_compare.h"
#include "test_util.h"
#include "trainer/ops/device.h"
#include "trainer/ops/op_cpu.h"
#include "trainer/ops/op_cuda.h"
#include "trainer/ops/update_math.h"

#define TCUDA(call) \
    do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { \
         fprintf(stderr, "FATAL %s:%d %s: %s\n", __FILE__, __LINE__, #call, \
                 cudaGetErrorString(e_)); exit(1); } } while (0)
#define TST(call) \
    do { rt_status s_ = (call); if (s_ != RT_OK) { \
         fprintf(stderr, "FATAL %s:%d %s: %s\n", __FILE__, __LINE__, #call, \
                 rt_last_error()); exit(1); } } while (0)

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [lo, hi) */
static float rng_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)((rng_next() >> 40) * (1.0 / 16777216.0));
}

static float *host_random(int64_t n, float lo, float hi)
{
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    if (!p) { fprintf(stderr, "FATAL out of host memory\n"); exit(1); }
    for (int64_t i = 0; i < n; i++)
        p[i] = rng_uniform(lo, hi);
    return p;
}

static void *dev_alloc(size_t bytes)
{
    void *p = NULL;
    TCUDA(cudaMalloc(&p, bytes ? bytes : 4));
    return p;
}

static float *dev_upload(const float *h, int64_t n)
{
    float *d = dev_alloc((size_t)n * sizeof *d);
    TCUDA(cudaMemcpy(d, h, (size_t)n * sizeof *d, cudaMemcpyHostToDevice));
    TCUDA(cudaDeviceSynchronize());
    return d;
}

/* Every byte 0xFF: a float NaN, so unwritten outputs cannot pass. */
static float *dev_poisoned(int64_t n)
{
    float *d = dev_alloc((size_t)n * sizeof *d);
    TCUDA(cudaMemset(d, 0xFF, (size_t)(n ? n : 1) * sizeof *d));
    TCUDA(cudaDeviceSynchronize());
    return d;
}

static float *dev_download(const float *d, int64_t n, rt_cuda_ctx_t *ctx)
{
    float *h = malloc((size_t)(n ? n : 1) * sizeof *h);
    if (!h) { fprintf(stderr, "FATAL out of host memory\n"); exit(1); }
    TST(cuda_ctx_sync(ctx));
    TCUDA(cudaMemcpy(h, d, (size_t)n * sizeof *h, cudaMemcpyDeviceToHost));
    return h;
}

static int32_t *labels_random(int B, int V)
{
    int32_t *l = malloc((size_t)(B ? B : 1) * sizeof *l);
    if (!l) { fprintf(stderr, "FATAL out of host memory\n"); exit(1); }
    for (int b = 0; b < B; b++)
        l[b] = (int32_t)(rng_next() % (uint64_t)V);
    return l;
}

static int32_t *dev_labels(const int32_t *h, int B)
{
    int32_t *d = dev_alloc((size_t)B * sizeof *d);
    TCUDA(cudaMemcpy(d, h, (size_t)B * sizeof *d, cudaMemcpyHostToDevice));
    TCUDA(cudaDeviceSynchronize());
    return d;
}

/* Compares n values; returns the worst |got-ref|/(atol+rtol|ref|), infinite
 * for NaN, and the number of elements out of tolerance in *bad. */
static double worst_ratio(const float *got, const float *ref, int64_t n, double atol, double rtol,
                          int64_t *bad)
{
    double worst = 0.0;
    *bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        double tol = atol + rtol * fabs((double)ref[i]);
        double ratio = tol > 0 ? d / tol : (d > 0 ? INFINITY : 0.0);
        if (isnan(ratio) || !test_close(got[i], ref[i], atol, rtol)) {
            (*bad)++;
            ratio = isnan(ratio) ? INFINITY : ratio;
        }
        if (ratio > worst)
            worst = ratio;
    }
    return worst;
}

static void check_linear(rt_cuda_ctx_t *ctx, int B, int C, int OC, int with_bias, int with_dinp)
{
    char what[64];
    snprintf(what, sizeof what, "B=%d C=%d OC=%d%s%s", B, C, OC, with_bias ? "" : " nobias",
             with_dinp ? "" : " nodinp");
    int64_t ni = (int64_t)B * C, nw = (int64_t)OC * C, no = (int64_t)B * OC;
    float *inp = host_random(ni, -1, 1), *w = host_random(nw, -1, 1);
    float *bias = host_random(OC, -1, 1);
    float *out = malloc((size_t)no * sizeof *out);
    linear_forward_cpu(out, inp, w, with_bias ? bias : NULL, B, C, OC);
    float *d_inp = dev_upload(inp, ni), *d_w = dev_upload(w, nw), *d_bias = dev_upload(bias, OC);
    float *d_out = dev_poisoned(no);
    TST(linear_forward_cuda(d_out, d_inp, d_w, with_bias ? d_bias : NULL, B, C, OC, ctx));
    float *g_out = dev_download(d_out, no, ctx);
    compare("linear_forward", what, g_out, out, no, 1e-5 * sqrt((double)C), 1e-5);

    /* backward: random dout, gradients pre-filled with the same random values */
    float *dout = host_random(no, -1, 1);
    float *dinp = host_random(ni, -1, 1), *dw = host_random(nw, -1, 1), *db = host_random(OC, -1, 1);
    float *d_dout = dev_upload(dout, no), *d_dinp = dev_upload(dinp, ni);
    float *d_dw = dev_upload(dw, nw), *d_db = dev_upload(db, OC);
    linear_backward_cpu(with_dinp ? dinp : NULL, dw, with_bias ? db : NULL, dout, inp, w, B, C, OC);
    TST(linear_backward_cuda(with_dinp ? d_dinp : NULL, d_dw, with_bias ? d_db : NULL, d_dout,
                             d_inp, d_w, B, C, OC, ctx));
    float *g_dinp = dev_download(d_dinp, ni, ctx), *g_dw = dev_download(d_dw, nw, ctx);
    float *g_db = dev_download(d_db, OC, ctx);
    compare("linear_backward.dinp", what, g_dinp, dinp, ni, 1e-5 * sqrt((double)OC), 1e-5);
    compare("linear_backward.dweight", what, g_dw, dw, nw, 1e-5 * sqrt((double)B), 1e-5);
    compare("linear_backward.dbias", what, g_db, db, OC, 1e-5 * sqrt((double)B), 1e-5);

    /* the weight gradient of a block of rows [r0, r0 + R) (backward's
     * blocks): the CPU op is the oracle; rows outside stay as they were */
    const int r0 = OC / 3, R = OC - r0 > 1 ? (OC - r0) / 2 : OC - r0;
    if (R > 0) {
        float *d_rows = dev_upload(dw, nw);  /* the gradient so far, on both sides */
        linear_weight_rows_cpu(dw + (size_t)r0 * C, dout, inp, B, C, OC, r0, R);
        TST(linear_weight_rows_cuda(d_rows + (size_t)r0 * C, d_dout, d_inp, B, C, OC, r0, R, ctx));
        float *g_rows = dev_download(d_rows, nw, ctx);
        compare("linear_weight_rows", what, g_rows, dw, nw, 1e-5 * sqrt((double)B), 1e-5);
        free(g_rows);
        cudaFree(d_rows);
    }

    free(inp); free(w); free(bias); free(out); free(g_out); free(dout); free(dinp); free(dw);
    free(db); free(g_dinp); free(g_dw); free(g_db);
    cudaFree(d_inp); cudaFree(d_w); cudaFree(d_bias); cudaFree(d_out); cudaFree(d_dout);
    cudaFree(d_dinp); cudaFree(d_dw); cudaFree(d_db);
}

static void check_relu(rt_cuda_ctx_t *ctx, int64_t n)
{
    char what[64];
    snprintf(what, sizeof what, "N=%lld", (long long)n);
    float *inp = host_random(n, -1, 1);
    for (int64_t i = 0; i < n; i += 7)
        inp[i] = 0.0f; /* exact zeros: the boundary of the mask */
    float *out = malloc((size_t)n * sizeof *out);
    relu_forward_cpu(out, inp, n);
    float *d_inp = dev_upload(inp, n), *d_out = dev_poisoned(n);
    TST(relu_forward_cuda(d_out, d_inp, n, ctx));
    float *g_out = dev_download(d_out, n, ctx);
    compare("relu_forward", what, g_out, out, n, 0, 0);

    /* in place: out == inp */
    TST(relu_forward_cuda(d_inp, d_inp, n, ctx));
    float *g_inplace = dev_download(d_inp, n, ctx);
    compare("relu_forward", "in place", g_inplace, out, n, 0, 0);

    float *dout = host_random(n, -1, 1), *dinp = host_random(n, -1, 1);
    float *d_dout = dev_upload(dout, n), *d_dinp = dev_upload(dinp, n);
    relu_backward_cpu(dinp, dout, out, n);
    TST(relu_backward_cuda(d_dinp, d_dout, d_out, n, ctx));
    float *g_dinp = dev_download(d_dinp, n, ctx);
    compare("relu_backward", what, g_dinp, dinp, n, 0, 0);

    free(inp); free(out); free(g_out); free(g_inplace); free(dout); free(dinp); free(g_dinp);
    cudaFree(d_inp); cudaFree(d_out); cudaFree(d_dout); cudaFree(d_dinp);
}

static void check_softmax_xent(rt_cuda_ctx_t *ctx, int B, int V)
{
    char what[64];
    snprintf(what, sizeof what, "B=%d V=%d", B, V);
    int64_t n = (int64_t)B * V;
    float *logits = host_random(n, -8, 8);
    int32_t *labels = labels_random(B, V);
    float *losses = malloc((size_t)B * sizeof *losses), *probs = malloc((size_t)n * sizeof *probs);
    softmax_xent_forward_cpu(losses, probs, logits, labels, B, V);
    float *d_logits = dev_upload(logits, n);
    int32_t *d_labels = dev_labels(labels, B);
    float *d_losses = dev_poisoned(B), *d_probs = dev_poisoned(n);
    TST(softmax_xent_forward_cuda(d_losses, d_probs, d_logits, d_labels, B, V, ctx));
    float *g_losses = dev_download(d_losses, B, ctx), *g_probs = dev_download(d_probs, n, ctx);
    /* the row's sum of V exponentials is rounded differently by each
     * summation order, by about eps*sqrt(V) relative: that scales rtol */
    double rtol_v = 2e-5 + 1e-6 * sqrt((double)V);
    compare("softmax_xent_forward.loss", what, g_losses, losses, B, 1e-5, rtol_v);
    compare("softmax_xent_forward.probs", what, g_probs, probs, n, 1e-6, rtol_v);

    float *dlogits = host_random(n, -1, 1);
    float *d_dlogits = dev_upload(dlogits, n);
    float scale = 1.0f / (float)B;
    softmax_xent_backward_cpu(dlogits, probs, labels, scale, B, V);
    /* the GPU uses the CPU's probs, so that only the backward kernel is tested */
    TCUDA(cudaMemcpy(d_probs, probs, (size_t)n * sizeof *probs, cudaMemcpyHostToDevice));
    TCUDA(cudaDeviceSynchronize());
    TST(softmax_xent_backward_cuda(d_dlogits, d_probs, d_labels, scale, B, V, ctx));
    float *g_dlogits = dev_download(d_dlogits, n, ctx);
    compare("softmax_xent_backward", what, g_dlogits, dlogits, n, 1e-6, 1e-5);

    free(logits); free(labels); free(losses); free(probs); free(g_losses); free(g_probs);
    free(dlogits); free(g_dlogits);
    cudaFree(d_logits); cudaFree(d_labels); cudaFree(d_losses); cudaFree(d_probs);
    cudaFree(d_dlogits);
}

static void check_accuracy(rt_cuda_ctx_t *ctx, int B, int V)
{
    int64_t n = (int64_t)B * V;
    /* small integers: many ties, so "first maximum" is really exercised */
    float *logits = malloc((size_t)n * sizeof *logits);
    for (int64_t i = 0; i < n; i++)
        logits[i] = (float)(rng_next() % 4);
    int32_t *labels = labels_random(B, V);
    /* aim half the labels at the first maximum, so the count is far from 0 */
    for (int b = 0; b < B; b += 2) {
        int arg = 0;
        for (int v = 1; v < V; v++)
            if (logits[(int64_t)b * V + v] > logits[(int64_t)b * V + arg])
                arg = v;
        labels[b] = arg;
    }
    int64_t want = accuracy_count_cpu(logits, labels, B, V);
    float *d_logits = dev_upload(logits, n);
    int32_t *d_labels = dev_labels(labels, B);
    int64_t *d_count = dev_alloc(sizeof(int64_t));
    TCUDA(cudaMemset(d_count, 0xFF, sizeof(int64_t)));
    TCUDA(cudaDeviceSynchronize());
    TST(accuracy_count_cuda(d_count, d_logits, d_labels, B, V, ctx));
    TST(cuda_ctx_sync(ctx));
    int64_t got = -1;
    TCUDA(cudaMemcpy(&got, d_count, sizeof got, cudaMemcpyDeviceToHost));
    printf("op %-22s B=%-6d V=%-19d cpu=%lld gpu=%lld %s\n", "accuracy_count", B, V,
           (long long)want, (long long)got, got == want ? "ok" : "FAIL");
    EXPECT(got == want, "accuracy_count B=%d V=%d: gpu %lld cpu %lld", B, V, (long long)got,
           (long long)want);
    free(logits); free(labels);
    cudaFree(d_logits); cudaFree(d_labels); cudaFree(d_count);
}

static void check_sum_squares(rt_cuda_ctx_t *ctx, int64_t n)
{
    float *x = host_random(n, -2, 2);
    double start = rng_uniform(0, 10); /* it adds into the accumulator */
    double want = start + sum_squares_cpu(x, n);
    float *d_x = dev_upload(x, n);
    double *d_acc = dev_alloc(sizeof(double));
    TCUDA(cudaMemcpy(d_acc, &start, sizeof start, cudaMemcpyHostToDevice));
    TCUDA(cudaDeviceSynchronize());
    TST(sum_squares_cuda(d_acc, d_x, n, ctx));
    TST(cuda_ctx_sync(ctx));
    double got = NAN;
    TCUDA(cudaMemcpy(&got, d_acc, sizeof got, cudaMemcpyDeviceToHost));
    double rel = fabs(got - want) / fabs(want);
    int ok = test_close(got, want, 0, 1e-9);
    printf("op %-22s N=%-34lld rel_err=%.3e %s\n", "sum_squares", (long long)n, rel,
           ok ? "ok" : "FAIL");
    EXPECT(ok, "sum_squares N=%lld: gpu %.17g cpu %.17g", (long long)n, got, want);
    free(x);
    cudaFree(d_x); cudaFree(d_acc);
}

enum { OPT_STEPS = 5 };

/* The scalars of update t as a step would have them, with a clip factor. */
static optim_scalars_t *dev_scalars(const optim_scalars_t *h)
{
    optim_scalars_t *d = dev_alloc(sizeof *d);
    TCUDA(cudaMemcpy(d, h, sizeof *h, cudaMemcpyHostToDevice));
    TCUDA(cudaDeviceSynchronize());
    return d;
}

static void check_adamw(rt_cuda_ctx_t *ctx, int64_t n, float wd, float coef)
{
    char what[96];
    snprintf(what, sizeof what, "N=%lld wd=%g coef=%g %d steps", (long long)n, wd, coef, OPT_STEPS);
    float *p = host_random(n, -1, 1), *m = host_random(n, -0.1f, 0.1f), *v = host_random(n, 0, 0.01f);
    float *d_p = dev_upload(p, n), *d_m = dev_upload(m, n), *d_v = dev_upload(v, n);
    float *d_g = dev_alloc((size_t)n * sizeof(float));
    for (int64_t t = 1; t <= OPT_STEPS; t++) {
        float *g = host_random(n, -1, 1);
        TCUDA(cudaMemcpy(d_g, g, (size_t)n * sizeof *g, cudaMemcpyHostToDevice));
        TCUDA(cudaDeviceSynchronize());
        optim_scalars_t sc = {.coef = coef};
        update_adamw_scalars(&sc, 1e-3f, 0.9f, 0.999f, t);
        optim_scalars_t *d_sc = dev_scalars(&sc);
        adamw_update_cpu(p, m, v, g, n, 0.9f, 0.999f, 1e-8f, wd, &sc);
        TST(adamw_update_cuda(d_p, d_m, d_v, d_g, n, 0.9f, 0.999f, 1e-8f, wd, d_sc, ctx));
        TST(cuda_ctx_sync(ctx)); /* g is reused by the next step's upload */
        cudaFree(d_sc);
        free(g);
    }
    float *g_p = dev_download(d_p, n, ctx), *g_m = dev_download(d_m, n, ctx);
    float *g_v = dev_download(d_v, n, ctx);
    compare("adamw_update.param", what, g_p, p, n, 1e-6, 1e-5);
    compare("adamw_update.m", what, g_m, m, n, 1e-7, 1e-5);
    compare("adamw_update.v", what, g_v, v, n, 1e-9, 1e-5);
    free(p); free(m); free(v); free(g_p); free(g_m); free(g_v);
    cudaFree(d_p); cudaFree(d_m); cudaFree(d_v); cudaFree(d_g);
}

static void check_sgd(rt_cuda_ctx_t *ctx, int64_t n, float momentum, float wd, float coef)
{
    char what[96];
    snprintf(what, sizeof what, "N=%lld mom=%g wd=%g coef=%g %d steps", (long long)n, momentum, wd,
             coef, OPT_STEPS);
    float *p = host_random(n, -1, 1);
    float *buf = calloc((size_t)(n ? n : 1), sizeof *buf); /* starts at zero, as documented */
    float *d_p = dev_upload(p, n), *d_buf = NULL;
    if (momentum != 0.0f) {
        d_buf = dev_alloc((size_t)n * sizeof(float));
        TCUDA(cudaMemset(d_buf, 0, (size_t)n * sizeof(float)));
        TCUDA(cudaDeviceSynchronize());
    }
    float *d_g = dev_alloc((size_t)n * sizeof(float));
    optim_scalars_t sc = {.lr = 0.05f, .coef = coef};
    optim_scalars_t *d_sc = dev_scalars(&sc);
    for (int t = 1; t <= OPT_STEPS; t++) {
        float *g = host_random(n, -1, 1);
        TCUDA(cudaMemcpy(d_g, g, (size_t)n * sizeof *g, cudaMemcpyHostToDevice));
        TCUDA(cudaDeviceSynchronize());
        sgd_update_cpu(p, momentum != 0.0f ? buf : NULL, g, n, momentum, wd, &sc);
        TST(sgd_update_cuda(d_p, d_buf, d_g, n, momentum, wd, d_sc, ctx));
        TST(cuda_ctx_sync(ctx));
        free(g);
    }
    float *g_p = dev_download(d_p, n, ctx);
    compare("sgd_update.param", what, g_p, p, n, 1e-6, 1e-5);
    if (d_buf) {
        float *g_buf = dev_download(d_buf, n, ctx);
        compare("sgd_update.momentum_buf", what, g_buf, buf, n, 1e-6, 1e-5);
        free(g_buf);
        cudaFree(d_buf);
    }
    free(p); free(buf); free(g_p);
    cudaFree(d_p); cudaFree(d_g); cudaFree(d_sc);
}

/* A step flagged skip leaves parameters and moments exactly as they were. */
static void check_update_skip(rt_cuda_ctx_t *ctx, int64_t n)
{
    float *p = host_random(n, -1, 1), *m = host_random(n, -1, 1), *v = host_random(n, 0, 1);
    float *g = host_random(n, -1, 1);
    float *d_p = dev_upload(p, n), *d_m = dev_upload(m, n), *d_v = dev_upload(v, n);
    float *d_g = dev_upload(g, n);
    optim_scalars_t sc = {.coef = 1.0f, .skip = 1};
    update_adamw_scalars(&sc, 1e-2f, 0.9f, 0.999f, 3);
    optim_scalars_t *d_sc = dev_scalars(&sc);
    TST(adamw_update_cuda(d_p, d_m, d_v, d_g, n, 0.9f, 0.999f, 1e-8f, 0.1f, d_sc, ctx));
    TST(sgd_update_cuda(d_p, d_m, d_g, n, 0.9f, 0.1f, d_sc, ctx));
    float *g_p = dev_download(d_p, n, ctx), *g_m = dev_download(d_m, n, ctx);
    compare("update.skip", "param unchanged", g_p, p, n, 0, 0);
    compare("update.skip", "moment unchanged", g_m, m, n, 0, 0);
    free(p); free(m); free(v); free(g); free(g_p); free(g_m);
    cudaFree(d_p); cudaFree(d_m); cudaFree(d_v); cudaFree(d_g); cudaFree(d_sc);
}

/* The step-state ops: the same sequence on the CPU device's table (host
 * state) and on the CUDA kernels (device state), every field compared. */
/* Both NaN, or within rtol. */
static int same_value(double got, double want, double rtol)
{
    return isnan(want) ? isnan(got) : test_close(got, want, 0, rtol);
}

static void compare_state(const char *what, const step_state_t *g, const step_state_t *c)
{
    int ok = same_value(g->step_loss, c->step_loss, 1e-12) &&
             test_close(g->sumsq, c->sumsq, 0, 1e-9) && g->step_index == c->step_index &&
             same_value(g->loss_f, c->loss_f, 0) && g->opt.lr == c->opt.lr &&
             test_close(g->opt.coef, c->opt.coef, 0, 1e-6) &&
             test_close(g->opt.neg_step, c->opt.neg_step, 0, 1e-7) &&
             test_close(g->opt.bc2_sqrt, c->opt.bc2_sqrt, 0, 1e-7) && g->opt.skip == c->opt.skip &&
             same_value(g->loss_acc, c->loss_acc, 1e-12) &&
             same_value(g->first_bad_loss, c->first_bad_loss, 1e-12) &&
             g->loss_steps == c->loss_steps && g->t == c->t && g->nonfinite == c->nonfinite &&
             g->first_nonfinite == c->first_nonfinite;
    printf("op %-22s %-50s %s\n", "step_state", what, ok ? "ok" : "FAIL");
    EXPECT(ok, "step state %s: gpu loss %.17g t %lld skip %d coef %g; cpu loss %.17g t %lld skip %d "
           "coef %g", what, g->step_loss, g->t, g->opt.skip, g->opt.coef, c->step_loss, c->t,
           c->opt.skip, c->opt.coef);
}

static void check_step_state(rt_cuda_ctx_t *ctx)
{
    rt_device_t *cpu = NULL;
    device_config_t dc = {.kind = RT_DEVICE_CPU};
    TST(device_open(&cpu, &dc));
    step_state_t h, got, *d = dev_alloc(sizeof *d);
    memset(&h, 0, sizeof h);
    h.first_nonfinite = -1;
    TCUDA(cudaMemcpy(d, &h, sizeof h, cudaMemcpyHostToDevice));
    TCUDA(cudaDeviceSynchronize());
    const int sizes[3] = {1, 300, 4099};
    for (int k = 0; k < 4; k++) {
        int n = sizes[k % 3];
        float *losses = host_random(n, 0, 5);
        if (k == 3)
            losses[n / 2] = NAN; /* the non-finite step: counted, never applied */
        float *d_losses = dev_upload(losses, n);
        rt_tensor_t lt = tensor_1d(losses, RT_DTYPE_F32, n);
        const float lr = 1e-3f * (float)(k + 1);
        const double clip = k == 1 ? 0.5 : 0.0;
        TST(cpu->ops->step_begin(&h, lr, k, cpu));
        TST(step_begin_cuda(d, lr, k, ctx));
        TST(cpu->ops->step_add_loss(&h, &lt, 3.0 * n, cpu));
        TST(step_add_loss_cuda(d, d_losses, n, 3.0 * n, ctx));
        TST(cpu->ops->step_loss_float(&h, 1, cpu));
        TST(step_loss_float_cuda(d, 1, ctx));
        TST(cpu->ops->step_loss_float(&h, 0, cpu));
        TST(step_loss_float_cuda(d, 0, ctx));
        float *g = host_random(n, -1, 1), *d_g = dev_upload(g, n);
        rt_tensor_t gt = tensor_1d(g, RT_DTYPE_F32, n);
        TST(cpu->ops->sum_squares(&h.sumsq, &gt, cpu));
        TST(sum_squares_cuda(&d->sumsq, d_g, n, ctx));
        TST(cpu->ops->step_finalize(&h, clip, 1, 0.9f, 0.999f, cpu));
        TST(step_finalize_cuda(d, clip, 1, 0.9f, 0.999f, ctx));
        TST(cuda_ctx_sync(ctx));
        TCUDA(cudaMemcpy(&got, d, sizeof got, cudaMemcpyDeviceToHost));
        char what[64];
        snprintf(what, sizeof what, "step %d: n=%d clip=%g%s", k, n, clip, k == 3 ? " non-finite" : "");
        compare_state(what, &got, &h);
        free(losses); free(g);
        cudaFree(d_losses); cudaFree(d_g);
    }
    TST(cpu->ops->step_reset_results(&h, cpu));
    TST(step_reset_results_cuda(d, ctx));
    TST(cuda_ctx_sync(ctx));
    TCUDA(cudaMemcpy(&got, d, sizeof got, cudaMemcpyDeviceToHost));
    compare_state("results reset", &got, &h);
    EXPECT(h.t == 3 && h.nonfinite == 1 && h.first_nonfinite == -1 && h.loss_steps == 0,
           "cpu state after the sequence: t %lld nonfinite %lld", h.t, h.nonfinite);
    cudaFree(d);
    device_close(cpu);
}

/* The CUDA device's table: views checked before the kernel (a mismatch is
 * refused naming the op), and the kernel run on the device's stream. */
static void check_table(void)
{
    rt_device_t *dev = NULL;
    device_config_t dc = {.kind = RT_DEVICE_CUDA, .ordinal = 0};
    TST(device_open(&dev, &dc));
    enum { B = 33, C = 70, OC = 9 };
    float *inp = host_random(B * C, -1, 1), *w = host_random(OC * C, -1, 1), *b = host_random(OC, -1, 1);
    float out[B * OC], got[B * OC];
    linear_forward_cpu(out, inp, w, b, B, C, OC);
    void *d_inp, *d_w, *d_b, *d_out;
    TST(device_alloc(dev, &d_inp, sizeof(float) * B * C, "inp"));
    TST(device_alloc(dev, &d_w, sizeof(float) * OC * C, "w"));
    TST(device_alloc(dev, &d_b, sizeof(float) * OC, "b"));
    TST(device_alloc(dev, &d_out, sizeof(float) * B * OC, "out"));
    TST(device_upload(dev, d_inp, inp, sizeof(float) * B * C));
    TST(device_upload(dev, d_w, w, sizeof(float) * OC * C));
    TST(device_upload(dev, d_b, b, sizeof(float) * OC));
    rt_tensor_t ti = tensor_2d(d_inp, RT_DTYPE_F32, B, C), tw = tensor_2d(d_w, RT_DTYPE_F32, OC, C);
    rt_tensor_t tb = tensor_1d(d_b, RT_DTYPE_F32, OC), to = tensor_2d(d_out, RT_DTYPE_F32, B, OC);
    TST(dev->ops->linear_forward(&to, &ti, &tw, &tb, dev));
    TST(device_download(dev, got, d_out, sizeof got));
    compare("table.linear_forward", "B=33 C=70 OC=9", got, out, B * OC, 1e-5 * sqrt((double)C), 1e-5);
    rt_tensor_t wrong = tensor_2d(d_out, RT_DTYPE_F32, B, OC + 1);
    rt_status st = dev->ops->linear_forward(&wrong, &ti, &tw, &tb, dev);
    printf("op %-22s %-50s %s\n", "table.check", "out [33, 10] for OC 9 refused",
           st == RT_ERR_INVALID ? "ok" : "FAIL");
    EXPECT(st == RT_ERR_INVALID && strstr(rt_last_error(), "linear_forward"), "mismatch: %s",
           rt_last_error());
    device_free(dev, d_inp); device_free(dev, d_w); device_free(dev, d_b); device_free(dev, d_out);
    device_close(dev);
    free(inp); free(w); free(b);
}

/* Controls of the harness itself: an output the op never writes must fail
 * the comparison (the NaN poison), and a product computed with TF32 allowed
 * shows how far outside the FP32 tolerance TF32 lands (informational: cuBLAS
 * may pick a non-tensor-core kernel even when TF32 is allowed). */
static void check_controls(rt_cuda_ctx_t *ctx)
{
    const int B = 512, C = 1024, OC = 512;
    int64_t ni = (int64_t)B * C, nw = (int64_t)OC * C, no = (int64_t)B * OC;
    float *inp = host_random(ni, -1, 1), *w = host_random(nw, -1, 1);
    float *out = malloc((size_t)no * sizeof *out);
    linear_forward_cpu(out, inp, w, NULL, B, C, OC);
    float *d_inp = dev_upload(inp, ni), *d_w = dev_upload(w, nw), *d_out = dev_poisoned(no);
    float *unwritten = dev_download(d_out, no, ctx);
    int64_t bad = 0;
    double r = worst_ratio(unwritten, out, no, 1e-5 * sqrt((double)C), 1e-5, &bad);
    printf("control unwritten output: %lld of %lld elements fail, err/tol=%g %s\n", (long long)bad,
           (long long)no, r, bad == no ? "ok" : "FAIL");
    EXPECT(bad == no, "control: a never-written (NaN) output passed the comparison");

    rt_cuda_ctx_t *tf32 = NULL;
    TST(cuda_ctx_create(&tf32, 0, true));
    TST(linear_forward_cuda(d_out, d_inp, d_w, NULL, B, C, OC, tf32));
    float *g = dev_download(d_out, no, tf32);
    r = worst_ratio(g, out, no, 1e-5 * sqrt((double)C), 1e-5, &bad);
    printf("control tf32 linear B=%d C=%d OC=%d: err/tol=%.3g, %lld of %lld outside the fp32 "
           "tolerance (info)\n", B, C, OC, r, (long long)bad, (long long)no);
    cuda_ctx_destroy(tf32);
    free(inp); free(w); free(out); free(unwritten); free(g);
    cudaFree(d_inp); cudaFree(d_w); cudaFree(d_out);
}

int main(void)
{
    int devices = 0;
    TST(device_count(RT_DEVICE_CUDA, &devices));
    if (devices == 0) {
        printf("SKIP: no CUDA device (compiled with CUDA: %s)\n", device_cuda_compiled() ? "yes" : "no");
        return 77;
    }
    const char *seed_env = getenv("RT_TEST_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL);
    rng_state = seed;
    printf("test_op_cuda: seed %llu (set RT_TEST_SEED to replay), TF32 off\n",
           (unsigned long long)seed);

    /* RT_TEST_QUICK=1: only the small sizes (for compute-sanitizer runs) */
    const int full = getenv("RT_TEST_QUICK") == NULL;
    rt_cuda_ctx_t *ctx = NULL;
    TST(cuda_ctx_create(&ctx, 0, false));

    check_controls(ctx);
    check_linear(ctx, 1, 1, 1, 1, 1);
    check_linear(ctx, 7, 13, 5, 1, 1);
    check_linear(ctx, 64, 784, 128, 1, 1);
    check_linear(ctx, 129, 257, 33, 0, 1);
    if (full)
        check_linear(ctx, 512, 1024, 10, 1, 0);
    if (full)
        check_linear(ctx, 1000, 300, 517, 1, 1);
    if (full)
        check_linear(ctx, 4096, 1024, 1024, 1, 1); /* 64 row chunks of the bias gradient */

    check_relu(ctx, 1);
    check_relu(ctx, 1000);
    if (full)
        check_relu(ctx, (1 << 20) + 3);

    check_softmax_xent(ctx, 1, 1);
    check_softmax_xent(ctx, 3, 10);
    check_softmax_xent(ctx, 33, 10);
    check_softmax_xent(ctx, 257, 1000);
    if (full)
        check_softmax_xent(ctx, 64, 50257);

    check_accuracy(ctx, 1, 1);
    check_accuracy(ctx, 37, 10);
    check_accuracy(ctx, 1000, 3);
    if (full)
        check_accuracy(ctx, 513, 1000);

    check_sum_squares(ctx, 1);
    check_sum_squares(ctx, 1000);
    if (full)
        check_sum_squares(ctx, (1 << 22) + 1);

    check_adamw(ctx, 1, 0.0f, 1.0f);
    if (full)
        check_adamw(ctx, 1000003, 0.01f, 1.0f);
    if (full)
        check_sgd(ctx, 1000003, 0.9f, 1e-4f, 1.0f);
    check_sgd(ctx, 4097, 0.0f, 0.0f, 1.0f);
    check_adamw(ctx, 4099, 0.01f, 0.37f);
    check_sgd(ctx, 4099, 0.9f, 1e-4f, 0.37f);
    check_update_skip(ctx, 4099);
    check_step_state(ctx);
    check_table();

    cuda_ctx_destroy(ctx);
    return TEST_EXIT();
}
