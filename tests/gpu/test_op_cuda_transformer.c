/* test_op_cuda_transformer.c - the transformer's CUDA ops
 * (op_cuda_transformer.cu, op_cuda_attention.cu) against their CPU oracle
 * (op_cpu_transformer.c, op_cpu_attention.c) on fresh random inputs, at
 * sizes that are and are not multiples of the block sizes: odd batches, T
 * not a multiple of 32 or of the embedding's token tile, head sizes 16, 32,
 * 64 and 128. Forward outputs are poisoned with NaN before each run, so an
 * element a kernel does not write fails; backward gradients are pre-filled
 * with the same random values on both sides, so accumulation (+=) is
 * checked. Every backward runs twice from the same gradients and must give
 * the same bits (no order-dependent reduction); the attention forward too.
 * Then the CUDA device's table: each new op runs through it, and a view of
 * the wrong shape is refused naming the op.
 *
 * Pass: |gpu - cpu| <= atol + rtol*|cpu| for every element, never NaN.
 * Tolerances (TF32 off):
 *   embedding forward and backward, residual: exact (the same float
 *     additions in the same order as the CPU);
 *   LayerNorm forward: atol 1e-6, rtol 1e-5 (the statistics in double both
 *     sides, summed in another order; the kernels are compiled without FMA
 *     contraction, as the CPU's code has none); mean, rstd rtol 1e-6;
 *   LayerNorm dinp: atol 1e-5, rtol 1e-5; dweight, dbias: atol
 *     1e-5*sqrt(N), rtol 1e-5 (float sums over N rows in another order, as
 *     linear's bias gradient in test_op_cuda.c);
 *   GELU forward atol 1e-6, backward atol 1e-5 (CUDA's and glibc's tanhf
 *     differ by an ulp or two, and 1 - tanh^2 cancels near |x| = 5), rtol
 *     1e-5;
 *   attention: att atol 1e-6, rtol 1e-5 (scores rounded differently by
 *     ~1e-7 relative over hs terms); out atol 1e-6*sqrt(T), rtol 1e-5 (T
 *     terms); backward from the CPU's att: the score gradient (scratch) atol
 *     1e-6*sqrt(hs), rtol 1e-5; dqkv atol 1e-6*sqrt(T*hs), rtol 1e-5.
 *   Entries above the diagonal of att and scratch must be exactly 0.
 * Exits 77 (skipped) when there is no CUDA device. Seed: RT_TEST_SEED or
 * the clock, printed so that a failure can be replayed. RT_TEST_QUICK=1:
 * only the small sizes (for compute-sanitizer). */
/* Host-to-device copies and memsets run on the legacy default stream, which
 * does not order with the non-blocking stream of the library: each is
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

#define TCUDA(call) \
    do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { \
         fprintf(stderr, "FATAL %s:%d %s: %s\n", __FILE__, __LINE__, #call, \
                 cudaGetErrorString(e_)); exit(1); } } while (0)
#define TST(call) \
    do { rt_status s_ = (call); if (s_ != RT_OK) { \
         fprintf(stderr, "FATAL %s:%d %s: %s\n", __FILE__, __LINE__, #call, \
                 rt_last_error()); exit(1); } } while (0)

/* ---- helpers (as in test_op_cuda.c) ---- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float rng_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)((rng_next() >> 40) * (1.0 / 16777216.0));
}

static void *host_alloc_or_die(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 4);
    if (!p) { fprintf(stderr, "FATAL out of host memory\n"); exit(1); }
    return p;
}

static float *host_random(int64_t n, float lo, float hi)
{
    float *p = host_alloc_or_die((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++)
        p[i] = rng_uniform(lo, hi);
    return p;
}

static float *host_copy(const float *src, int64_t n)
{
    float *p = host_alloc_or_die((size_t)n * sizeof *p);
    memcpy(p, src, (size_t)n * sizeof *p);
    return p;
}

static int32_t *tokens_random(int64_t n, int V)
{
    int32_t *t = host_alloc_or_die((size_t)n * sizeof *t);
    for (int64_t i = 0; i < n; i++)
        t[i] = (int32_t)(rng_next() % (uint64_t)V);
    return t;
}

static void *dev_alloc(size_t bytes)
{
    void *p = NULL;
    TCUDA(cudaMalloc(&p, bytes ? bytes : 4));
    return p;
}

static void *dev_upload_bytes(const void *h, size_t bytes)
{
    void *d = dev_alloc(bytes);
    TCUDA(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    TCUDA(cudaDeviceSynchronize());
    return d;
}

static float *dev_upload(const float *h, int64_t n)
{
    return dev_upload_bytes(h, (size_t)n * sizeof *h);
}

/* overwrite device memory with host values */
static void dev_set(float *d, const float *h, int64_t n)
{
    TCUDA(cudaMemcpy(d, h, (size_t)n * sizeof *h, cudaMemcpyHostToDevice));
    TCUDA(cudaDeviceSynchronize());
}

/* Every byte 0xFF: a float NaN, so unwritten outputs cannot pass. */
static float *dev_poisoned(int64_t n)
{
    float *d = dev_alloc((size_t)n * sizeof *d);
    TCUDA(cudaMemset(d, 0xFF, (size_t)(n ? n : 1) * sizeof *d));
    TCUDA(cudaDeviceSynchronize());
    return d;
}

static void dev_poison(float *d, int64_t n)
{
    TCUDA(cudaMemset(d, 0xFF, (size_t)n * sizeof *d));
    TCUDA(cudaDeviceSynchronize());
}

static float *dev_download(const float *d, int64_t n, rt_cuda_ctx_t *ctx)
{
    float *h = host_alloc_or_die((size_t)n * sizeof *h);
    TST(cuda_ctx_sync(ctx));
    TCUDA(cudaMemcpy(h, d, (size_t)n * sizeof *h, cudaMemcpyDeviceToHost));
    return h;
}

/* Two GPU results of the same call must be the same bits. */
static void same_bits(const char *op, const char *what, const float *a, const float *b, int64_t n)
{
    int64_t diff = 0;
    for (int64_t i = 0; i < n; i++)
        diff += memcmp(&a[i], &b[i], sizeof *a) != 0;
    printf("op %-26s %-32s n=%-9lld repeat: %lld elements differ %s\n", op, what, (long long)n,
           (long long)diff, diff ? "FAIL" : "ok");
    EXPECT(diff == 0, "%s %s: two runs differ in %lld of %lld elements (not deterministic)", op,
           what, (long long)diff, (long long)n);
}

/* ---- embeddings ---- */

static void check_embedding(rt_cuda_ctx_t *ctx, int B, int T, int C, int V, int ctxlen)
{
    char what[96];
    snprintf(what, sizeof what, "B=%d T=%d C=%d V=%d ctx=%d", B, T, C, V, ctxlen);
    const int64_t N = (int64_t)B * T, no = N * C, nte = (int64_t)V * C, npe = (int64_t)ctxlen * C;
    int32_t *tok = tokens_random(N, V);
    float *wte = host_random(nte, -1, 1), *wpe = host_random(npe, -1, 1);
    float *out = host_alloc_or_die((size_t)no * sizeof *out);
    embedding_forward_cpu(out, tok, wte, wpe, B, T, C);
    int32_t *d_tok = dev_upload_bytes(tok, (size_t)N * sizeof *tok);
    float *d_wte = dev_upload(wte, nte), *d_wpe = dev_upload(wpe, npe), *d_out = dev_poisoned(no);
    TST(embedding_forward_cuda(d_out, d_tok, d_wte, d_wpe, B, T, C, V, ctx));
    float *g_out = dev_download(d_out, no, ctx);
    compare("embedding_forward", what, g_out, out, no, 0, 0);

    /* backward: both gradients pre-filled with the same random values */
    float *dout = host_random(no, -1, 1);
    float *dwte = host_random(nte, -1, 1), *dwpe = host_random(npe, -1, 1);
    float *dwte0 = host_copy(dwte, nte), *dwpe0 = host_copy(dwpe, npe);
    float *d_dout = dev_upload(dout, no), *d_dwte = dev_upload(dwte, nte);
    float *d_dwpe = dev_upload(dwpe, npe);
    embedding_backward_cpu(dwte, dwpe, dout, tok, B, T, C);
    TST(embedding_backward_cuda(d_dwte, d_dwpe, d_dout, d_tok, B, T, C, V, ctx));
    float *g_dwte = dev_download(d_dwte, nte, ctx), *g_dwpe = dev_download(d_dwpe, npe, ctx);
    compare("embedding_backward.dwte", what, g_dwte, dwte, nte, 0, 0);
    compare("embedding_backward.dwpe", what, g_dwpe, dwpe, npe, 0, 0);
    /* again from the same starting gradients: the same bits */
    dev_set(d_dwte, dwte0, nte);
    dev_set(d_dwpe, dwpe0, npe);
    TST(embedding_backward_cuda(d_dwte, d_dwpe, d_dout, d_tok, B, T, C, V, ctx));
    float *r_dwte = dev_download(d_dwte, nte, ctx), *r_dwpe = dev_download(d_dwpe, npe, ctx);
    same_bits("embedding_backward.dwte", what, r_dwte, g_dwte, nte);
    same_bits("embedding_backward.dwpe", what, r_dwpe, g_dwpe, npe);
    /* one gradient at a time (the other NULL) */
    dev_set(d_dwte, dwte0, nte);
    TST(embedding_backward_cuda(d_dwte, NULL, d_dout, d_tok, B, T, C, V, ctx));
    float *o_dwte = dev_download(d_dwte, nte, ctx);
    compare("embedding_backward.dwte", "dwpe NULL", o_dwte, dwte, nte, 0, 0);
    dev_set(d_dwpe, dwpe0, npe);
    TST(embedding_backward_cuda(NULL, d_dwpe, d_dout, d_tok, B, T, C, 0, ctx));
    float *o_dwpe = dev_download(d_dwpe, npe, ctx);
    compare("embedding_backward.dwpe", "dwte NULL", o_dwpe, dwpe, npe, 0, 0);

    free(tok); free(wte); free(wpe); free(out); free(g_out); free(dout); free(dwte); free(dwpe);
    free(dwte0); free(dwpe0); free(g_dwte); free(g_dwpe); free(r_dwte); free(r_dwpe);
    free(o_dwte); free(o_dwpe);
    cudaFree(d_tok); cudaFree(d_wte); cudaFree(d_wpe); cudaFree(d_out); cudaFree(d_dout);
    cudaFree(d_dwte); cudaFree(d_dwpe);
}

/* A token outside [0, V) (the CPU would read out of bounds): forward gives
 * its row NaN and the others exact; backward adds nothing to dwte for it
 * and its row to dwpe as usual. */
static void check_embedding_bad_token(rt_cuda_ctx_t *ctx)
{
    enum { B = 2, T = 5, C = 33, V = 7 };
    const int64_t N = B * T, no = N * C, nte = V * C, npe = T * C;
    int32_t *tok = tokens_random(N, V);
    const int bad_pos = 6;
    float *wte = host_random(nte, -1, 1), *wpe = host_random(npe, -1, 1);
    float *dout = host_random(no, -1, 1);
    float *dwte = host_random(nte, -1, 1), *dwpe = host_random(npe, -1, 1);
    /* the oracle: the bad position as token 0 for dwpe, its row of dout
     * zeroed for dwte */
    float *out = host_alloc_or_die((size_t)no * sizeof *out);
    embedding_forward_cpu(out, tok, wte, wpe, B, T, C);
    float *dout_z = host_copy(dout, no);
    memset(dout_z + (int64_t)bad_pos * C, 0, sizeof(float) * C);
    tok[bad_pos] = 0;
    float *want_dwte = host_copy(dwte, nte), *want_dwpe = host_copy(dwpe, npe);
    embedding_backward_cpu(want_dwte, NULL, dout_z, tok, B, T, C);
    embedding_backward_cpu(NULL, want_dwpe, dout, tok, B, T, C);
    int ok = 1;
    for (int k = 0; k < 2; k++) {
        tok[bad_pos] = k == 0 ? V : -1;
        int32_t *d_tok = dev_upload_bytes(tok, sizeof(int32_t) * N);
        float *d_wte = dev_upload(wte, nte), *d_wpe = dev_upload(wpe, npe);
        float *d_out = dev_poisoned(no);
        TST(embedding_forward_cuda(d_out, d_tok, d_wte, d_wpe, B, T, C, V, ctx));
        float *g = dev_download(d_out, no, ctx);
        for (int64_t n = 0; n < N; n++)
            for (int c = 0; c < C; c++) {
                const float gv = g[n * C + c];
                ok &= n == bad_pos ? isnan(gv) : gv == out[n * C + c];
            }
        float *d_dout = dev_upload(dout, no), *d_dwte = dev_upload(dwte, nte);
        float *d_dwpe = dev_upload(dwpe, npe);
        TST(embedding_backward_cuda(d_dwte, d_dwpe, d_dout, d_tok, B, T, C, V, ctx));
        float *gte = dev_download(d_dwte, nte, ctx), *gpe = dev_download(d_dwpe, npe, ctx);
        ok &= memcmp(gte, want_dwte, sizeof(float) * nte) == 0 &&
              memcmp(gpe, want_dwpe, sizeof(float) * npe) == 0;
        free(g); free(gte); free(gpe);
        cudaFree(d_tok); cudaFree(d_wte); cudaFree(d_wpe); cudaFree(d_out); cudaFree(d_dout);
        cudaFree(d_dwte); cudaFree(d_dwpe);
    }
    printf("op %-26s %-32s %s\n", "embedding.bad_token", "token V and -1: NaN row, no dwte",
           ok ? "ok" : "FAIL");
    EXPECT(ok, "embedding with a token outside [0, V): want a NaN row forward and no dwte update");
    free(tok); free(wte); free(wpe); free(dout); free(dwte); free(dwpe); free(out); free(dout_z);
    free(want_dwte); free(want_dwpe);
}

/* ---- LayerNorm ---- */

static void check_layernorm(rt_cuda_ctx_t *ctx, int64_t N, int C, int with_dinp, int with_dweight,
                            int with_dbias)
{
    char what[96];
    snprintf(what, sizeof what, "N=%lld C=%d%s%s%s", (long long)N, C, with_dinp ? "" : " nodinp",
             with_dweight ? "" : " nodweight", with_dbias ? "" : " nodbias");
    const int64_t n = N * C;
    /* an offset, so that the mean matters */
    float *x = host_random(n, -1, 3), *w = host_random(C, 0.5f, 1.5f), *b = host_random(C, -1, 1);
    float *out = host_alloc_or_die((size_t)n * sizeof *out);
    float *mean = host_alloc_or_die((size_t)N * sizeof *mean);
    float *rstd = host_alloc_or_die((size_t)N * sizeof *rstd);
    layernorm_forward_cpu(out, mean, rstd, x, w, b, N, C, 1e-5f);
    float *d_x = dev_upload(x, n), *d_w = dev_upload(w, C), *d_b = dev_upload(b, C);
    float *d_out = dev_poisoned(n), *d_mean = dev_poisoned(N), *d_rstd = dev_poisoned(N);
    TST(layernorm_forward_cuda(d_out, d_mean, d_rstd, d_x, d_w, d_b, N, C, 1e-5f, ctx));
    float *g_out = dev_download(d_out, n, ctx), *g_mean = dev_download(d_mean, N, ctx);
    float *g_rstd = dev_download(d_rstd, N, ctx);
    compare("layernorm_forward.out", what, g_out, out, n, 1e-6, 1e-5);
    compare("layernorm_forward.mean", what, g_mean, mean, N, 1e-7, 1e-6);
    compare("layernorm_forward.rstd", what, g_rstd, rstd, N, 0, 1e-6);

    /* backward from the CPU's mean and rstd (only the backward is tested) */
    dev_set(d_mean, mean, N);
    dev_set(d_rstd, rstd, N);
    float *dout = host_random(n, -1, 1);
    float *dinp = host_random(n, -1, 1), *dw = host_random(C, -1, 1), *db = host_random(C, -1, 1);
    float *dinp0 = host_copy(dinp, n), *dw0 = host_copy(dw, C), *db0 = host_copy(db, C);
    float *d_dout = dev_upload(dout, n), *d_dinp = dev_upload(dinp, n);
    float *d_dw = dev_upload(dw, C), *d_db = dev_upload(db, C);
    layernorm_backward_cpu(with_dinp ? dinp : NULL, with_dweight ? dw : NULL,
                           with_dbias ? db : NULL, dout, x, w, mean, rstd, N, C);
    float *gd[3] = {NULL, NULL, NULL};
    for (int rep = 0; rep < 2; rep++) {
        if (rep) {
            dev_set(d_dinp, dinp0, n);
            dev_set(d_dw, dw0, C);
            dev_set(d_db, db0, C);
        }
        TST(layernorm_backward_cuda(with_dinp ? d_dinp : NULL, with_dweight ? d_dw : NULL,
                                    with_dbias ? d_db : NULL, d_dout, d_x, d_w, d_mean, d_rstd, N,
                                    C, ctx));
        float *g_dinp = dev_download(d_dinp, n, ctx), *g_dw = dev_download(d_dw, C, ctx);
        float *g_db = dev_download(d_db, C, ctx);
        if (rep == 0) {
            compare("layernorm_backward.dinp", what, g_dinp, dinp, n, 1e-5, 1e-5);
            compare("layernorm_backward.dweight", what, g_dw, dw, C, 1e-5 * sqrt((double)N), 1e-5);
            compare("layernorm_backward.dbias", what, g_db, db, C, 1e-5 * sqrt((double)N), 1e-5);
            gd[0] = g_dinp, gd[1] = g_dw, gd[2] = g_db;
        } else {
            same_bits("layernorm_backward.dinp", what, g_dinp, gd[0], n);
            same_bits("layernorm_backward.dweight", what, g_dw, gd[1], C);
            same_bits("layernorm_backward.dbias", what, g_db, gd[2], C);
            free(g_dinp); free(g_dw); free(g_db);
        }
    }
    free(x); free(w); free(b); free(out); free(mean); free(rstd); free(g_out); free(g_mean);
    free(g_rstd); free(dout); free(dinp); free(dw); free(db); free(dinp0); free(dw0); free(db0);
    free(gd[0]); free(gd[1]); free(gd[2]);
    cudaFree(d_x); cudaFree(d_w); cudaFree(d_b); cudaFree(d_out); cudaFree(d_mean);
    cudaFree(d_rstd); cudaFree(d_dout); cudaFree(d_dinp); cudaFree(d_dw); cudaFree(d_db);
}

/* ---- GELU, residual ---- */

static void check_gelu(rt_cuda_ctx_t *ctx, int64_t n)
{
    char what[64];
    snprintf(what, sizeof what, "N=%lld", (long long)n);
    float *x = host_random(n, -5, 5);
    if (n > 2)
        x[0] = 0.0f, x[1] = -0.0f;
    float *out = host_alloc_or_die((size_t)n * sizeof *out);
    gelu_forward_cpu(out, x, n);
    float *d_x = dev_upload(x, n), *d_out = dev_poisoned(n);
    TST(gelu_forward_cuda(d_out, d_x, n, ctx));
    float *g_out = dev_download(d_out, n, ctx);
    compare("gelu_forward", what, g_out, out, n, 1e-6, 1e-5);

    float *dout = host_random(n, -1, 1), *dinp = host_random(n, -1, 1);
    float *d_dout = dev_upload(dout, n), *d_dinp = dev_upload(dinp, n);
    gelu_backward_cpu(dinp, x, dout, n);
    TST(gelu_backward_cuda(d_dinp, d_x, d_dout, n, ctx));
    float *g_dinp = dev_download(d_dinp, n, ctx);
    compare("gelu_backward", what, g_dinp, dinp, n, 1e-5, 1e-5);
    free(x); free(out); free(g_out); free(dout); free(dinp); free(g_dinp);
    cudaFree(d_x); cudaFree(d_out); cudaFree(d_dout); cudaFree(d_dinp);
}

static void check_residual(rt_cuda_ctx_t *ctx, int64_t n)
{
    char what[64];
    snprintf(what, sizeof what, "N=%lld", (long long)n);
    float *a = host_random(n, -1, 1), *b = host_random(n, -1, 1);
    float *out = host_alloc_or_die((size_t)n * sizeof *out);
    residual_forward_cpu(out, a, b, n);
    float *d_a = dev_upload(a, n), *d_b = dev_upload(b, n), *d_out = dev_poisoned(n);
    TST(residual_forward_cuda(d_out, d_a, d_b, n, ctx));
    float *g_out = dev_download(d_out, n, ctx);
    compare("residual_forward", what, g_out, out, n, 0, 0);
    /* in place: out == a, then out == b */
    TST(residual_forward_cuda(d_a, d_a, d_b, n, ctx));
    float *g_a = dev_download(d_a, n, ctx);
    compare("residual_forward", "in place (out = a)", g_a, out, n, 0, 0);
    dev_set(d_a, a, n);
    TST(residual_forward_cuda(d_b, d_a, d_b, n, ctx));
    float *g_b = dev_download(d_b, n, ctx);
    compare("residual_forward", "in place (out = b)", g_b, out, n, 0, 0);
    free(a); free(b); free(out); free(g_out); free(g_a); free(g_b);
    cudaFree(d_a); cudaFree(d_b); cudaFree(d_out);
}

/* ---- attention ---- */

/* Entries above the diagonal of each T x T square: exactly zero. */
static int64_t upper_nonzero(const float *a, int64_t squares, int T)
{
    int64_t bad = 0;
    for (int64_t s = 0; s < squares; s++)
        for (int t = 0; t < T; t++)
            for (int j = t + 1; j < T; j++)
                bad += a[(s * T + t) * T + j] != 0.0f;
    return bad;
}

static void check_attention(rt_cuda_ctx_t *ctx, int B, int T, int C, int NH)
{
    char what[96];
    const int hs = C / NH;
    snprintf(what, sizeof what, "B=%d T=%d C=%d NH=%d hs=%d", B, T, C, NH, hs);
    const int64_t nqkv = (int64_t)B * T * 3 * C, nout = (int64_t)B * T * C;
    const int64_t natt = (int64_t)B * NH * T * T;
    float *qkv = host_random(nqkv, -1, 1);
    float *out = host_alloc_or_die((size_t)nout * sizeof *out);
    float *att = host_alloc_or_die((size_t)natt * sizeof *att);
    attention_forward_cpu(out, att, qkv, B, T, C, NH);
    float *d_qkv = dev_upload(qkv, nqkv), *d_out = dev_poisoned(nout), *d_att = dev_poisoned(natt);
    TST(attention_forward_cuda(d_out, d_att, d_qkv, B, T, C, NH, ctx));
    float *g_out = dev_download(d_out, nout, ctx), *g_att = dev_download(d_att, natt, ctx);
    compare("attention_forward.att", what, g_att, att, natt, 1e-6, 1e-5);
    compare("attention_forward.out", what, g_out, out, nout, 1e-6 * sqrt((double)T), 1e-5);
    int64_t up = upper_nonzero(g_att, (int64_t)B * NH, T);
    EXPECT(up == 0, "attention_forward %s: %lld entries above the diagonal are not 0", what,
           (long long)up);
    /* again: the same bits */
    dev_poison(d_out, nout);
    dev_poison(d_att, natt);
    TST(attention_forward_cuda(d_out, d_att, d_qkv, B, T, C, NH, ctx));
    float *r_out = dev_download(d_out, nout, ctx), *r_att = dev_download(d_att, natt, ctx);
    same_bits("attention_forward.att", what, r_att, g_att, natt);
    same_bits("attention_forward.out", what, r_out, g_out, nout);

    /* backward from the CPU's att; dqkv pre-filled, scratch poisoned */
    dev_set(d_att, att, natt);
    float *dout = host_random(nout, -1, 1), *dqkv = host_random(nqkv, -1, 1);
    float *dqkv0 = host_copy(dqkv, nqkv);
    float *scratch = host_alloc_or_die((size_t)natt * sizeof *scratch);
    attention_backward_cpu(dqkv, scratch, dout, qkv, att, B, T, C, NH);
    float *d_dout = dev_upload(dout, nout), *d_dqkv = dev_upload(dqkv0, nqkv);
    float *d_scr = dev_poisoned(natt);
    TST(attention_backward_cuda(d_dqkv, d_scr, d_dout, d_qkv, d_att, B, T, C, NH, ctx));
    float *g_dqkv = dev_download(d_dqkv, nqkv, ctx), *g_scr = dev_download(d_scr, natt, ctx);
    compare("attention_backward.scratch", what, g_scr, scratch, natt, 1e-6 * sqrt((double)hs),
            1e-5);
    compare("attention_backward.dqkv", what, g_dqkv, dqkv, nqkv,
            1e-6 * sqrt((double)T * (double)hs), 1e-5);
    up = upper_nonzero(g_scr, (int64_t)B * NH, T);
    EXPECT(up == 0, "attention_backward %s: %lld scratch entries above the diagonal are not 0",
           what, (long long)up);
    dev_set(d_dqkv, dqkv0, nqkv);
    dev_poison(d_scr, natt);
    TST(attention_backward_cuda(d_dqkv, d_scr, d_dout, d_qkv, d_att, B, T, C, NH, ctx));
    float *r_dqkv = dev_download(d_dqkv, nqkv, ctx);
    same_bits("attention_backward.dqkv", what, r_dqkv, g_dqkv, nqkv);
    /* dqkv NULL: nothing to do, and no error */
    TST(attention_backward_cuda(NULL, d_scr, d_dout, d_qkv, d_att, B, T, C, NH, ctx));

    free(qkv); free(out); free(att); free(g_out); free(g_att); free(r_out); free(r_att);
    free(dout); free(dqkv); free(dqkv0); free(scratch); free(g_dqkv); free(g_scr); free(r_dqkv);
    cudaFree(d_qkv); cudaFree(d_out); cudaFree(d_att); cudaFree(d_dout); cudaFree(d_dqkv);
    cudaFree(d_scr);
}

/* ---- the CUDA device's table ---- */

static void check_table(void)
{
    rt_device_t *dev = NULL;
    device_config_t dc = {.kind = RT_DEVICE_CUDA, .ordinal = 0};
    TST(device_open(&dev, &dc));
    const rt_ops_t *op = dev->ops;
    int all = op->embedding_forward && op->embedding_backward && op->layernorm_forward &&
              op->layernorm_backward && op->gelu_forward && op->gelu_backward &&
              op->residual_forward && op->attention_forward && op->attention_backward;
    printf("op %-26s %-32s %s\n", "table", "every transformer op present", all ? "ok" : "FAIL");
    EXPECT(all, "the CUDA table lacks a transformer op");
    if (!all) {
        device_close(dev);
        return;
    }
    /* attention through the table, against the CPU */
    enum { B = 3, T = 19, C = 64, NH = 2 };
    const int64_t nqkv = B * T * 3 * C, nout = B * T * C, natt = (int64_t)B * NH * T * T;
    float *qkv = host_random(nqkv, -1, 1);
    float *out = host_alloc_or_die(sizeof(float) * nout), *att = host_alloc_or_die(sizeof(float) * natt);
    float *got = host_alloc_or_die(sizeof(float) * nout);
    attention_forward_cpu(out, att, qkv, B, T, C, NH);
    void *d_qkv, *d_out, *d_att;
    TST(device_alloc(dev, &d_qkv, sizeof(float) * nqkv, "qkv"));
    TST(device_alloc(dev, &d_out, sizeof(float) * nout, "out"));
    TST(device_alloc(dev, &d_att, sizeof(float) * natt, "att"));
    TST(device_upload(dev, d_qkv, qkv, sizeof(float) * nqkv));
    const int64_t sq[3] = {B, T, 3 * C}, so[3] = {B, T, C}, sa[4] = {B, NH, T, T};
    rt_tensor_t tq = tensor_view(d_qkv, RT_DTYPE_F32, 3, sq), to = tensor_view(d_out, RT_DTYPE_F32, 3, so);
    rt_tensor_t ta = tensor_view(d_att, RT_DTYPE_F32, 4, sa);
    TST(op->attention_forward(&to, &ta, &tq, dev));
    TST(device_download(dev, got, d_out, sizeof(float) * nout));
    compare("table.attention_forward", "B=3 T=19 C=64 NH=2", got, out, nout,
            1e-6 * sqrt((double)T), 1e-5);
    /* refusals, naming the op: att of the wrong T, C not split by the heads,
     * LayerNorm's mean of the wrong length, tokens of the wrong dtype */
    const int64_t sa_bad[4] = {B, NH, T, T + 1}, sa_3[4] = {B, 3, T, T};
    rt_tensor_t ta_bad = tensor_view(d_att, RT_DTYPE_F32, 4, sa_bad);
    rt_tensor_t ta_3 = tensor_view(d_att, RT_DTYPE_F32, 4, sa_3);
    rt_status st1 = op->attention_forward(&to, &ta_bad, &tq, dev);
    int ok1 = st1 == RT_ERR_INVALID && strstr(rt_last_error(), "attention_forward");
    rt_status st2 = op->attention_forward(&to, &ta_3, &tq, dev);
    int ok2 = st2 == RT_ERR_INVALID && strstr(rt_last_error(), "heads");
    rt_tensor_t x = tensor_2d(d_out, RT_DTYPE_F32, B * T, C), w = tensor_1d(d_qkv, RT_DTYPE_F32, C);
    rt_tensor_t mean_bad = tensor_1d(d_att, RT_DTYPE_F32, B * T - 1);
    rt_tensor_t rstd = tensor_1d(d_att, RT_DTYPE_F32, B * T);
    rt_status st3 = op->layernorm_forward(&x, &mean_bad, &rstd, &x, &w, &w, 1e-5f, dev);
    int ok3 = st3 == RT_ERR_INVALID && strstr(rt_last_error(), "layernorm_forward");
    rt_tensor_t tok_f32 = tensor_2d(d_qkv, RT_DTYPE_F32, B, T);
    rt_tensor_t wte = tensor_2d(d_qkv, RT_DTYPE_F32, 5, C), wpe = tensor_2d(d_att, RT_DTYPE_F32, T, C);
    rt_status st4 = op->embedding_forward(&x, &tok_f32, &wte, &wpe, dev);
    int ok4 = st4 == RT_ERR_INVALID && strstr(rt_last_error(), "embedding_forward");
    printf("op %-26s %-32s %s\n", "table.check", "bad att, heads, mean, tokens",
           ok1 && ok2 && ok3 && ok4 ? "ok" : "FAIL");
    EXPECT(ok1 && ok2 && ok3 && ok4, "table refusals: att %d heads %d mean %d tokens %d", st1, st2,
           st3, st4);
    device_free(dev, d_qkv); device_free(dev, d_out); device_free(dev, d_att);
    device_close(dev);
    free(qkv); free(out); free(att); free(got);
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
    printf("test_op_cuda_transformer: seed %llu (set RT_TEST_SEED to replay), TF32 off\n",
           (unsigned long long)seed);
    const int full = getenv("RT_TEST_QUICK") == NULL;
    rt_cuda_ctx_t *ctx = NULL;
    TST(cuda_ctx_create(&ctx, 0, false));

    /* B, T, C, V, wpe rows (>= T) */
    check_embedding(ctx, 1, 1, 1, 1, 1);
    check_embedding(ctx, 3, 37, 64, 50, 40);       /* odd B, T not a multiple of 32 */
    check_embedding(ctx, 5, 33, 300, 257, 33);     /* C over one 256-column chunk */
    if (full)
        check_embedding(ctx, 3, 1031, 96, 1000, 1100); /* N over two token tiles */
    if (full)
        check_embedding(ctx, 8, 1024, 768, 4096, 1024);
    check_embedding_bad_token(ctx);

    /* N, C, with dinp, dweight, dbias */
    check_layernorm(ctx, 1, 1, 1, 1, 1);
    check_layernorm(ctx, 7, 32, 1, 1, 1);
    check_layernorm(ctx, 37, 64, 1, 1, 1);
    check_layernorm(ctx, 129, 128, 1, 1, 1);        /* three row chunks */
    check_layernorm(ctx, 65, 100, 0, 1, 1);
    check_layernorm(ctx, 65, 100, 1, 0, 1);
    check_layernorm(ctx, 65, 100, 1, 1, 0);
    if (full)
        check_layernorm(ctx, 4101, 768, 1, 1, 1);
    if (full)
        check_layernorm(ctx, 1000, 1027, 1, 1, 1); /* C not a multiple of 32 */

    check_gelu(ctx, 1);
    check_gelu(ctx, 1000);
    if (full)
        check_gelu(ctx, (1 << 20) + 3);
    check_residual(ctx, 1);
    check_residual(ctx, 1000);
    if (full)
        check_residual(ctx, (1 << 20) + 3);

    /* B, T, C, NH: head sizes 16 (the GPT test's), 32, 64, 128 */
    check_attention(ctx, 1, 1, 32, 1);
    check_attention(ctx, 1, 2, 64, 4);
    check_attention(ctx, 3, 37, 64, 2);            /* hs 32 */
    check_attention(ctx, 2, 32, 64, 4);            /* hs 16, the GPT test's shape */
    check_attention(ctx, 5, 33, 128, 1);           /* hs 128 */
    check_attention(ctx, 1, 129, 256, 4);          /* hs 64 */
    if (full)
        check_attention(ctx, 3, 100, 384, 3);      /* hs 128 */
    if (full)
        check_attention(ctx, 4, 257, 768, 12);     /* hs 64, GPT-2 small's heads */

    check_table();
    cuda_ctx_destroy(ctx);
    return TEST_EXIT();
}
