/* test_trainer_fd.c - every op's and the whole MLP's analytic gradients
 * (float32, the CPU oracle: op_cpu.c and the transformer's ops in
 * op_cpu_transformer.c and op_cpu_attention.c, and the MLP through the model
 * interface on the CPU device) against central finite differences of
 * independent float64 reference forwards written here, and the float32
 * forwards against the same references. Also checks that backward
 * accumulates (+=) and takes NULL gradients where op_cpu.h allows them, that
 * attention's weights are causal rows summing to 1, that the op table
 * refuses mismatched views, and that backward reports each layer's gradient
 * as final, last layer first. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "trainer/model/model.h"
#include "trainer/ops/device.h"
#include "trainer/ops/op_cpu.h"

#define FD_H 1e-5
#define GRAD_RTOL 1e-4

static uint64_t lcg = 12345;
static double rnd(void)  /* uniform in [-1, 1) */
{
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* max|a - b| / max|b| over n values; infinite if a holds a NaN or inf */
static double rel_err_fd(const float *a, const double *b, int64_t n)
{
    double num = 0, den = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i]))  /* fmax would skip a NaN */
            return INFINITY;
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs(b[i]));
    }
    return num / den;
}

/* ---- float64 references ---- */
static void ref_linear(double *out, const double *inp, const double *w, const double *b, int B,
                       int C, int OC)
{
    for (int r = 0; r < B; r++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0;
            for (int c = 0; c < C; c++)
                s += inp[r * C + c] * w[o * C + c];
            out[r * OC + o] = s;
        }
}

static double ref_xent_mean(const double *logits, const int32_t *labels, int B, int V)
{
    double total = 0;
    for (int r = 0; r < B; r++) {
        double mx = logits[r * V];
        for (int i = 1; i < V; i++)
            mx = fmax(mx, logits[r * V + i]);
        double s = 0;
        for (int i = 0; i < V; i++)
            s += exp(logits[r * V + i] - mx);
        total += log(s) + mx - logits[r * V + labels[r]];
    }
    return total / B;
}

/* Objective for linear: sum(out * coef). */
static double linear_obj(const double *inp, const double *w, const double *b, const double *coef,
                         int B, int C, int OC)
{
    double *out = malloc(sizeof(double) * B * OC), s = 0;
    ref_linear(out, inp, w, b, B, C, OC);
    for (int i = 0; i < B * OC; i++)
        s += out[i] * coef[i];
    free(out);
    return s;
}

/* Central differences of f over every entry of x (double). */
typedef double (*obj_fn)(void *ctx);
static void fd_grad(double *x, int64_t n, obj_fn f, void *ctx, double *grad)
{
    for (int64_t i = 0; i < n; i++) {
        double keep = x[i];
        x[i] = keep + FD_H;
        double hi = f(ctx);
        x[i] = keep - FD_H;
        double lo = f(ctx);
        x[i] = keep;
        grad[i] = (hi - lo) / (2 * FD_H);
    }
}

typedef struct { double *inp, *w, *b, *coef; int B, C, OC; } lin_ctx;
static double lin_f(void *p)
{
    lin_ctx *c = p;
    return linear_obj(c->inp, c->w, c->b, c->coef, c->B, c->C, c->OC);
}

static void to_f32(float *dst, const double *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = (float)src[i];
}

static void test_linear(void)
{
    enum { B = 5, C = 7, OC = 4 };
    double inp[B * C], w[OC * C], b[OC], coef[B * OC], ref_out[B * OC];
    double g_inp[B * C], g_w[OC * C], g_b[OC];
    for (int i = 0; i < B * C; i++) inp[i] = rnd();
    for (int i = 0; i < OC * C; i++) w[i] = rnd();
    for (int i = 0; i < OC; i++) b[i] = rnd();
    for (int i = 0; i < B * OC; i++) coef[i] = rnd();
    lin_ctx ctx = {inp, w, b, coef, B, C, OC};
    fd_grad(inp, B * C, lin_f, &ctx, g_inp);
    fd_grad(w, OC * C, lin_f, &ctx, g_w);
    fd_grad(b, OC, lin_f, &ctx, g_b);
    ref_linear(ref_out, inp, w, b, B, C, OC);

    float finp[B * C], fw[OC * C], fb[OC], fcoef[B * OC], out[B * OC];
    float dinp[B * C], dw[OC * C], db[OC];
    to_f32(finp, inp, B * C); to_f32(fw, w, OC * C); to_f32(fb, b, OC); to_f32(fcoef, coef, B * OC);
    linear_forward_cpu(out, finp, fw, fb, B, C, OC);
    EXPECT(rel_err_fd(out, ref_out, B * OC) < 1e-6, "linear forward off by %g",
           rel_err_fd(out, ref_out, B * OC));
    /* backward accumulates: start from 1 and subtract it afterwards */
    for (int i = 0; i < B * C; i++) dinp[i] = 1.0f;
    for (int i = 0; i < OC * C; i++) dw[i] = 1.0f;
    for (int i = 0; i < OC; i++) db[i] = 1.0f;
    linear_backward_cpu(dinp, dw, db, fcoef, finp, fw, B, C, OC);
    for (int i = 0; i < B * C; i++) dinp[i] -= 1.0f;
    for (int i = 0; i < OC * C; i++) dw[i] -= 1.0f;
    for (int i = 0; i < OC; i++) db[i] -= 1.0f;
    EXPECT(rel_err_fd(dinp, g_inp, B * C) < GRAD_RTOL, "linear dinp vs FD: %g",
           rel_err_fd(dinp, g_inp, B * C));
    EXPECT(rel_err_fd(dw, g_w, OC * C) < GRAD_RTOL, "linear dweight vs FD: %g",
           rel_err_fd(dw, g_w, OC * C));
    EXPECT(rel_err_fd(db, g_b, OC) < GRAD_RTOL, "linear dbias vs FD: %g",
           rel_err_fd(db, g_b, OC));
    /* a wide bias (several 64-column blocks) over many rows */
    enum { B2 = 300, OC2 = 150 };
    float *dout2 = malloc(sizeof(float) * B2 * OC2), db2[OC2];
    double want[OC2] = {0};
    for (int i = 0; i < B2 * OC2; i++) {
        dout2[i] = (float)rnd();
        want[i % OC2] += dout2[i];
    }
    memset(db2, 0, sizeof db2);
    linear_backward_cpu(NULL, NULL, db2, dout2, NULL, NULL, B2, 1, OC2);
    EXPECT(rel_err_fd(db2, want, OC2) < 1e-5, "dbias column sums off by %g", rel_err_fd(db2, want, OC2));
    free(dout2);
}

typedef struct { double *x, *coef; int n; } relu_ctx;
static double relu_f(void *p)
{
    relu_ctx *c = p;
    double s = 0;
    for (int i = 0; i < c->n; i++)
        s += (c->x[i] > 0 ? c->x[i] : 0) * c->coef[i];
    return s;
}

static void test_relu(void)
{
    enum { N = 64 };
    double x[N], coef[N], g[N];
    for (int i = 0; i < N; i++) {
        x[i] = rnd();
        if (fabs(x[i]) < 10 * FD_H)  /* keep FD away from the kink */
            x[i] = 0.5;
        coef[i] = rnd();
    }
    relu_ctx ctx = {x, coef, N};
    fd_grad(x, N, relu_f, &ctx, g);
    float fx[N], out[N], dout[N], dinp[N];
    to_f32(fx, x, N);
    to_f32(dout, coef, N);
    relu_forward_cpu(out, fx, N);
    int fwd_ok = 1;
    for (int i = 0; i < N; i++)
        fwd_ok &= out[i] == (x[i] > 0 ? fx[i] : 0.0f);
    EXPECT(fwd_ok, "relu forward");
    for (int i = 0; i < N; i++) dinp[i] = 2.0f;
    relu_backward_cpu(dinp, dout, out, N);
    for (int i = 0; i < N; i++) dinp[i] -= 2.0f;
    EXPECT(rel_err_fd(dinp, g, N) < GRAD_RTOL, "relu dinp vs FD: %g", rel_err_fd(dinp, g, N));
    /* in place: dinp == dout is masked, not added */
    float inplace[N];
    memcpy(inplace, dout, sizeof inplace);
    relu_backward_cpu(inplace, inplace, out, N);
    EXPECT(rel_err_fd(inplace, g, N) < GRAD_RTOL, "relu in-place backward vs FD: %g",
           rel_err_fd(inplace, g, N));
}

typedef struct { double *logits; const int32_t *labels; int B, V; } xent_ctx;
static double xent_f(void *p)
{
    xent_ctx *c = p;
    return ref_xent_mean(c->logits, c->labels, c->B, c->V);
}

static void test_xent(void)
{
    enum { B = 6, V = 9 };
    double logits[B * V], g[B * V];
    int32_t labels[B];
    for (int i = 0; i < B * V; i++) logits[i] = 3 * rnd();
    logits[2 * V + 1] = 60;  /* large logit: stable softmax */
    for (int r = 0; r < B; r++) labels[r] = (r * 5) % V;
    xent_ctx ctx = {logits, labels, B, V};
    fd_grad(logits, B * V, xent_f, &ctx, g);
    float fl[B * V], probs[B * V], losses[B], dl[B * V];
    to_f32(fl, logits, B * V);
    softmax_xent_forward_cpu(losses, probs, fl, labels, B, V);
    double mean = 0;
    for (int r = 0; r < B; r++) mean += losses[r] / B;
    double want = ref_xent_mean(logits, labels, B, V);
    EXPECT(fabs(mean - want) <= 1e-6 * fabs(want), "xent loss %g vs %g", mean, want);
    for (int i = 0; i < B * V; i++) dl[i] = 0.5f;
    softmax_xent_backward_cpu(dl, probs, labels, 1.0f / B, B, V);
    for (int i = 0; i < B * V; i++) dl[i] -= 0.5f;
    EXPECT(rel_err_fd(dl, g, B * V) < GRAD_RTOL, "xent dlogits vs FD: %g", rel_err_fd(dl, g, B * V));
    /* accuracy: first maximum; row 0 ties between 2 and 4 */
    float acc_logits[3 * 5] = {0, 1, 5, 0, 5, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    int32_t acc_labels[3] = {2, 0, 3};
    EXPECT(accuracy_count_cpu(acc_logits, acc_labels, 3, 5) == 2, "accuracy count");
    float sq[3] = {1, 2, -2};
    EXPECT(sum_squares_cpu(sq, 3) == 9.0, "sum of squares");
}

/* ---- the transformer's ops ----
 * Each op's float32 forward against a float64 reference written here from
 * the math, and its backward against central differences of that reference
 * for L = sum(R * out) with a fixed random R (so dout = R).
 *
 * Tolerances, as max|ours - ref| / max|ref| per tensor (or per row, where
 * rows differ in scale): the float64 differences are good to ~1e-9 (h =
 * 1e-5: truncation h^2 f''' ~ 1e-10, cancellation 1e-16 |L| / h ~ 1e-10), so
 * what is measured is the float32 op's rounding: a few operations or a sum of
 * at most ~100 terms at unit roundoff 6e-8, about 1e-6 (1e-7 to 3e-6
 * measured). FWD_RTOL = 1e-5 and GRAD_RTOL = 1e-4 leave 10x and 100x margin
 * over that, and stay below the modelling slips worth catching: erf instead
 * of tanh GELU (8e-5 in the forward, 8e-4 in the gradient), unbiased
 * variance (a factor C/(C-1)), eps outside the square root (rows whose
 * variance is below eps are included), 1/sqrt(C) instead of 1/sqrt(hs), a
 * missing mask or softmax term (O(1)).
 *
 * Inputs are floats held exactly in doubles, so both sides evaluate the same
 * point. Outputs start as NaN (an entry an op forgets to write shows), and
 * gradient buffers start random (backward must add). The small, odd shapes
 * get differences for every entry; the larger ones, there to reach the ops'
 * threaded paths (32768 elements and up, gradient columns in blocks of 64),
 * get them for a few whole rows. */
#define FWD_RTOL 1e-5

static double *dalloc(int64_t n)
{
    double *p = calloc((size_t)(n ? n : 1), sizeof(double));
    if (!p)
        abort();
    return p;
}

static float *falloc(int64_t n)
{
    float *p = calloc((size_t)(n ? n : 1), sizeof(float));
    if (!p)
        abort();
    return p;
}

/* uniform in [-scale, scale), rounded to float so both sides see one value */
static void fill_rnd(double *x, int64_t n, double scale)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (double)(float)(scale * rnd());
}

static void fill_nan(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = NAN;
}

static float *f32_copy(const double *src, int64_t n)
{
    float *p = falloc(n);
    to_f32(p, src, n);
    return p;
}

static float *f_dup(const float *src, int64_t n)
{
    float *p = falloc(n);
    memcpy(p, src, sizeof(float) * (size_t)n);
    return p;
}

/* a gradient buffer's contents before backward adds into it */
static float *f_rnd(int64_t n)
{
    float *p = falloc(n);
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)rnd();
    return p;
}

static double dot_d(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static double max_abs_d(const double *x, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

/* The worst, over groups of `block` consecutive entries, of
 * max|(got - pre) - want| / max(max|want|, lo), with got - pre taken in
 * double (pre: the buffer before backward added into it, or NULL).
 * Infinite if got holds a NaN or infinity (fmax would skip a NaN). */
static double err_blocks(const float *got, const float *pre, const double *want, int64_t n,
                         int64_t block, double lo)
{
    double worst = 0;
    for (int64_t b0 = 0; b0 < n; b0 += block) {
        double num = 0, den = fmax(lo, 1e-30);
        for (int64_t i = b0; i < b0 + block && i < n; i++) {
            if (!isfinite(got[i]))
                return INFINITY;
            double g = (double)got[i] - (pre ? (double)pre[i] : 0.0);
            num = fmax(num, fabs(g - want[i]));
            den = fmax(den, fabs(want[i]));
        }
        worst = fmax(worst, num / den);
    }
    return worst;
}

/* Rows that get finite differences: all n when n <= k; else 0, 1, 2 (where
 * the tests plant their special rows), n - 1 and k - 4 spread between. */
static int64_t pick_rows(int64_t n, int64_t k, int64_t *rows)
{
    int64_t m = 0;
    if (n <= k) {
        for (; m < n; m++)
            rows[m] = m;
        return m;
    }
    rows[m++] = 0;
    rows[m++] = 1;
    rows[m++] = 2;
    for (int64_t i = 0; i < k - 4; i++)
        rows[m++] = 3 + (i + 1) * (n - 4) / (k - 3);
    rows[m++] = n - 1;
    return m;
}
#define PICK_MAX 8

/* Central differences for the entries of the picked rows (width w) of x,
 * into grad[nr * w], row after row. */
static void fd_grad_rows(double *x, const int64_t *rows, int64_t nr, int64_t w, obj_fn f,
                         void *ctx, double *grad)
{
    for (int64_t r = 0; r < nr; r++)
        fd_grad(x + rows[r] * w, w, f, ctx, grad + r * w);
}

static float *gather_rows(const float *src, const int64_t *rows, int64_t nr, int64_t w)
{
    float *p = falloc(nr * w);
    for (int64_t r = 0; r < nr; r++)
        memcpy(p + r * w, src + rows[r] * w, sizeof(float) * (size_t)w);
    return p;
}

/* err_blocks over the picked rows of got and pre; want holds just those. */
static double err_rows(const float *got, const float *pre, const double *want,
                       const int64_t *rows, int64_t nr, int64_t w, int64_t block, double lo)
{
    float *g = gather_rows(got, rows, nr, w), *p = pre ? gather_rows(pre, rows, nr, w) : NULL;
    double e = err_blocks(g, p, want, nr * w, block, lo);
    free(g);
    free(p);
    return e;
}

/* RT_FD_VERBOSE=1 prints every measured error (to size tolerances). */
static void note_err(double err, double tol, const char *what)
{
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("RT_FD_VERBOSE") != NULL;
    if (verbose)
        printf("  %-9.2e (tol %.0e) %s\n", err, tol, what);
}
#define EXPECT_ERR(err, tol, ...)                                           \
    do {                                                                    \
        double e_ = (err), t_ = (tol);                                      \
        char m_[200];                                                       \
        snprintf(m_, sizeof m_, __VA_ARGS__);                               \
        note_err(e_, t_, m_);                                               \
        EXPECT(e_ <= t_, "%s: error %g > %g", m_, e_, t_);                  \
    } while (0)

/* -- embedding -- */
static void ref_embedding(double *out, const int32_t *tok, const double *wte, const double *wpe,
                          int B, int T, int C)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int64_t r = (int64_t)b * T + t;
            for (int c = 0; c < C; c++)
                out[r * C + c] = wte[(int64_t)tok[r] * C + c] + wpe[(int64_t)t * C + c];
        }
}

typedef struct { const int32_t *tok; double *wte, *wpe; const double *R; int B, T, C; } emb_ctx;
static double emb_f(void *p)
{
    emb_ctx *c = p;
    int64_t n = (int64_t)c->B * c->T * c->C;
    double *out = dalloc(n);
    ref_embedding(out, c->tok, c->wte, c->wpe, c->B, c->T, c->C);
    double s = dot_d(out, c->R, n);
    free(out);
    return s;
}

/* wpe has maxT >= T rows: those past T must get no gradient; tokens repeat,
 * so a dwte row collects several positions, and an unused row none. */
static void test_embedding(int B, int T, int C, int V, int maxT, const int32_t *tok)
{
    int64_t nout = (int64_t)B * T * C, nte = (int64_t)V * C, npe = (int64_t)maxT * C;
    int64_t te_rows[PICK_MAX], pe_rows[PICK_MAX];
    int64_t nte_r = pick_rows(V, PICK_MAX, te_rows), npe_r = pick_rows(maxT, PICK_MAX, pe_rows);
    double *wte = dalloc(nte), *wpe = dalloc(npe), *R = dalloc(nout), *ref = dalloc(nout);
    double *g_te = dalloc(nte_r * C), *g_pe = dalloc(npe_r * C);
    fill_rnd(wte, nte, 1.0);
    fill_rnd(wpe, npe, 1.0);
    fill_rnd(R, nout, 1.0);
    emb_ctx ctx = {tok, wte, wpe, R, B, T, C};
    fd_grad_rows(wte, te_rows, nte_r, C, emb_f, &ctx, g_te);
    fd_grad_rows(wpe, pe_rows, npe_r, C, emb_f, &ctx, g_pe);
    ref_embedding(ref, tok, wte, wpe, B, T, C);

    float *fte = f32_copy(wte, nte), *fpe = f32_copy(wpe, npe), *fR = f32_copy(R, nout);
    float *out = falloc(nout);
    fill_nan(out, nout);
    embedding_forward_cpu(out, tok, fte, fpe, B, T, C);
    /* one float addition is correctly rounded: exactly the rounded sum */
    int exact = 1;
    for (int64_t i = 0; i < nout; i++)
        exact &= out[i] == (float)ref[i];
    EXPECT(exact, "embedding forward B=%d T=%d C=%d: not wte[tok] + wpe[t]", B, T, C);

    float *pre_te = f_rnd(nte), *pre_pe = f_rnd(npe);
    float *dte = f_dup(pre_te, nte), *dpe = f_dup(pre_pe, npe);
    embedding_backward_cpu(dte, dpe, fR, tok, B, T, C);
    /* per row: a row nothing came from must stay exactly as it was */
    EXPECT_ERR(err_rows(dte, pre_te, g_te, te_rows, nte_r, C, C, 0), GRAD_RTOL,
               "embedding B=%d T=%d C=%d V=%d dwte vs FD", B, T, C, V);
    EXPECT_ERR(err_rows(dpe, pre_pe, g_pe, pe_rows, npe_r, C, C, 0), GRAD_RTOL,
               "embedding B=%d T=%d C=%d maxT=%d dwpe vs FD", B, T, C, maxT);
    /* either gradient may be NULL */
    memcpy(dte, pre_te, sizeof(float) * nte);
    embedding_backward_cpu(dte, NULL, fR, tok, B, T, C);
    EXPECT_ERR(err_rows(dte, pre_te, g_te, te_rows, nte_r, C, C, 0), GRAD_RTOL,
               "embedding B=%d T=%d C=%d dwte vs FD (dwpe NULL)", B, T, C);
    memcpy(dpe, pre_pe, sizeof(float) * npe);
    embedding_backward_cpu(NULL, dpe, fR, tok, B, T, C);
    EXPECT_ERR(err_rows(dpe, pre_pe, g_pe, pe_rows, npe_r, C, C, 0), GRAD_RTOL,
               "embedding B=%d T=%d C=%d dwpe vs FD (dwte NULL)", B, T, C);
    free(wte); free(wpe); free(R); free(ref); free(g_te); free(g_pe);
    free(fte); free(fpe); free(fR); free(out); free(pre_te); free(pre_pe); free(dte); free(dpe);
}

static void test_embeddings(void)
{
    /* token 3 four times (twice in one sequence, and across the batch),
     * 0 and 1 twice each; 2, 4 and 5 unused */
    static const int32_t tok1[2 * 5] = {3, 3, 0, 6, 1, 6, 1, 3, 0, 3};
    test_embedding(2, 5, 12, 7, 8, tok1);
    static const int32_t tok2[3] = {1, 1, 1};  /* T = 1, one token everywhere */
    test_embedding(3, 1, 7, 2, 1, tok2);
    static const int32_t tok3[4] = {4, 0, 4, 2};
    test_embedding(1, 4, 33, 5, 4, tok3);
    /* threaded: 4 x 100 x 100 values, columns in blocks of 64 and a tail;
     * token V - 1 and positions T.. unused */
    enum { B = 4, T = 100, V = 50 };
    static int32_t tok4[B * T];
    for (int i = 0; i < B * T; i++)
        tok4[i] = (int32_t)((i * 7 + i / 13) % (V - 1));
    test_embedding(B, T, 100, V, 128, tok4);
}

/* -- layernorm -- */
static void ref_layernorm(double *out, double *mean, double *rstd, const double *x,
                          const double *w, const double *b, int64_t N, int C, double eps)
{
    for (int64_t r = 0; r < N; r++) {
        const double *xr = x + r * C;
        double m = 0, v = 0;
        for (int c = 0; c < C; c++)
            m += xr[c];
        m /= C;
        for (int c = 0; c < C; c++)
            v += (xr[c] - m) * (xr[c] - m);
        v /= C;  /* biased, as nn.LayerNorm */
        double s = 1.0 / sqrt(v + eps);
        for (int c = 0; c < C; c++)
            out[r * C + c] = (xr[c] - m) * s * w[c] + b[c];
        if (mean)
            mean[r] = m;
        if (rstd)
            rstd[r] = s;
    }
}

typedef struct { double *x, *w, *b; const double *R; int64_t N; int C; double eps; } ln_ctx;
static double ln_f(void *p)
{
    ln_ctx *c = p;
    double *out = dalloc(c->N * c->C);
    ref_layernorm(out, NULL, NULL, c->x, c->w, c->b, c->N, c->C, c->eps);
    double s = dot_d(out, c->R, c->N * c->C);
    free(out);
    return s;
}

static void test_layernorm(int64_t N, int C)
{
    const float eps = 1e-5f;
    int64_t n = N * C, rows[PICK_MAX], nr = pick_rows(N, PICK_MAX, rows);
    double *x = dalloc(n), *w = dalloc(C), *b = dalloc(C), *R = dalloc(n), *ref = dalloc(n);
    double *rmean = dalloc(N), *rrstd = dalloc(N), *g_x = dalloc(nr * C), *g_w = dalloc(C),
           *g_b = dalloc(C);
    fill_rnd(x, n, 1.5);
    /* row 1's variance (~3e-6) is below eps: where eps goes matters; row 2
     * sits at mean ~8: the variance must not be E[x^2] - mean^2 in float */
    if (N > 1)
        for (int c = 0; c < C; c++)
            x[C + c] = (double)(float)(3e-3 * rnd());
    if (N > 2)
        for (int c = 0; c < C; c++)
            x[2 * C + c] = (double)(float)(8.0 + rnd());
    for (int c = 0; c < C; c++)
        w[c] = (double)(float)(1.0 + 0.5 * rnd());
    fill_rnd(b, C, 1.0);
    fill_rnd(R, n, 1.0);
    ln_ctx ctx = {x, w, b, R, N, C, (double)eps};
    fd_grad_rows(x, rows, nr, C, ln_f, &ctx, g_x);
    fd_grad(w, C, ln_f, &ctx, g_w);
    fd_grad(b, C, ln_f, &ctx, g_b);
    ref_layernorm(ref, rmean, rrstd, x, w, b, N, C, (double)eps);

    float *fx = f32_copy(x, n), *fw = f32_copy(w, C), *fb = f32_copy(b, C), *fR = f32_copy(R, n);
    float *out = falloc(n), *mean = falloc(N), *rstd = falloc(N);
    fill_nan(out, n);
    fill_nan(mean, N);
    fill_nan(rstd, N);
    layernorm_forward_cpu(out, mean, rstd, fx, fw, fb, N, C, eps);
    EXPECT_ERR(err_blocks(out, NULL, ref, n, C, 0), FWD_RTOL,
               "layernorm N=%lld C=%d out vs float64", (long long)N, C);
    EXPECT_ERR(err_blocks(rstd, NULL, rrstd, N, 1, 0), FWD_RTOL,
               "layernorm N=%lld C=%d rstd vs float64", (long long)N, C);
    /* the mean against its row's scale: a mean near 0 has no relative
     * accuracy to speak of */
    double mean_err = 0;
    for (int64_t r = 0; r < N; r++) {
        if (!isfinite(mean[r])) {
            mean_err = INFINITY;
            break;
        }
        mean_err = fmax(mean_err, fabs(mean[r] - rmean[r]) / max_abs_d(x + r * C, C));
    }
    EXPECT_ERR(mean_err, FWD_RTOL, "layernorm N=%lld C=%d mean vs float64", (long long)N, C);

    float *pre_x = f_rnd(n), *pre_w = f_rnd(C), *pre_b = f_rnd(C);
    float *dx = f_dup(pre_x, n), *dw = f_dup(pre_w, C), *db = f_dup(pre_b, C);
    layernorm_backward_cpu(dx, dw, db, fR, fx, fw, mean, rstd, N, C);
    /* dinp per row: the small-variance row's gradients are ~100x the others' */
    EXPECT_ERR(err_rows(dx, pre_x, g_x, rows, nr, C, C, 0), GRAD_RTOL,
               "layernorm N=%lld C=%d dinp vs FD", (long long)N, C);
    EXPECT_ERR(err_blocks(dw, pre_w, g_w, C, C, 0), GRAD_RTOL,
               "layernorm N=%lld C=%d dweight vs FD", (long long)N, C);
    EXPECT_ERR(err_blocks(db, pre_b, g_b, C, C, 0), GRAD_RTOL,
               "layernorm N=%lld C=%d dbias vs FD", (long long)N, C);
    /* each gradient alone, the other two NULL */
    memcpy(dx, pre_x, sizeof(float) * n);
    layernorm_backward_cpu(dx, NULL, NULL, fR, fx, fw, mean, rstd, N, C);
    EXPECT_ERR(err_rows(dx, pre_x, g_x, rows, nr, C, C, 0), GRAD_RTOL,
               "layernorm N=%lld C=%d dinp alone vs FD", (long long)N, C);
    memcpy(dw, pre_w, sizeof(float) * C);
    layernorm_backward_cpu(NULL, dw, NULL, fR, fx, fw, mean, rstd, N, C);
    EXPECT_ERR(err_blocks(dw, pre_w, g_w, C, C, 0), GRAD_RTOL,
               "layernorm N=%lld C=%d dweight alone vs FD", (long long)N, C);
    memcpy(db, pre_b, sizeof(float) * C);
    layernorm_backward_cpu(NULL, NULL, db, fR, fx, fw, mean, rstd, N, C);
    EXPECT_ERR(err_blocks(db, pre_b, g_b, C, C, 0), GRAD_RTOL,
               "layernorm N=%lld C=%d dbias alone vs FD", (long long)N, C);
    free(x); free(w); free(b); free(R); free(ref); free(rmean); free(rrstd);
    free(g_x); free(g_w); free(g_b); free(fx); free(fw); free(fb); free(fR);
    free(out); free(mean); free(rstd); free(pre_x); free(pre_w); free(pre_b);
    free(dx); free(dw); free(db);
}

static void test_layernorms(void)
{
    test_layernorm(2 * 5, 12);
    test_layernorm(3, 7);
    test_layernorm(4, 33);
    test_layernorm(1, 53);
    test_layernorm(600, 67);  /* threaded; dweight's columns in a block of 64 and a tail */
}

/* -- GELU, tanh approximation -- */
static double ref_gelu(double x)
{
    const double k = 0.79788456080286535588;  /* sqrt(2/pi) */
    return 0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x)));
}

/* The worst |got - pre - want| - (atol + rtol |want|); > 0 fails. */
static double excess(const float *got, const float *pre, const double *want, int64_t n,
                     double atol, double rtol)
{
    double worst = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(got[i]))
            return INFINITY;
        double g = (double)got[i] - (pre ? (double)pre[i] : 0.0);
        worst = fmax(worst, fabs(g - want[i]) - (atol + rtol * fabs(want[i])));
    }
    return worst;
}

static void gelu_case(const double *x, int64_t n, int wide)
{
    double *R = dalloc(n), *ref = dalloc(n), *g = dalloc(n);
    fill_rnd(R, n, 1.0);
    for (int64_t i = 0; i < n; i++) {
        ref[i] = ref_gelu(x[i]);
        /* L's central difference in x[i]: x[i] enters one term only */
        g[i] = R[i] * (ref_gelu(x[i] + FD_H) - ref_gelu(x[i] - FD_H)) / (2 * FD_H);
    }
    float *fx = f32_copy(x, n), *fR = f32_copy(R, n), *out = falloc(n);
    fill_nan(out, n);
    gelu_forward_cpu(out, fx, n);
    float *pre = f_rnd(n), *dx = f_dup(pre, n);
    gelu_backward_cpu(dx, fx, fR, n);
    if (!wide) {
        EXPECT_ERR(err_blocks(out, NULL, ref, n, n, 0), FWD_RTOL, "gelu N=%lld out vs float64",
                   (long long)n);
        EXPECT_ERR(err_blocks(dx, pre, g, n, n, 0), GRAD_RTOL, "gelu N=%lld dinp vs FD",
                   (long long)n);
    } else {
        /* |x| up to 100: tanh saturates, x^3 reaches 1e6; each entry must be
         * finite and close by itself (a per-tensor scale of 100 would hide
         * the small ones) */
        EXPECT(excess(out, NULL, ref, n, 1e-6, FWD_RTOL) <= 0, "gelu large |x| out: excess %g",
               excess(out, NULL, ref, n, 1e-6, FWD_RTOL));
        EXPECT(excess(dx, pre, g, n, 1e-6, GRAD_RTOL) <= 0, "gelu large |x| dinp: excess %g",
               excess(dx, pre, g, n, 1e-6, GRAD_RTOL));
    }
    free(R); free(ref); free(g); free(fx); free(fR); free(out); free(pre); free(dx);
}

static void test_gelu(void)
{
    enum { N = 1001, NBIG = 40001 };  /* odd: vector loops' tails; NBIG threaded */
    double x[N], *big = dalloc(NBIG);
    fill_rnd(x, N, 6.0);
    x[0] = 0.0;
    gelu_case(x, N, 0);
    fill_rnd(big, NBIG, 6.0);
    gelu_case(big, NBIG, 0);
    static const double wide[] = {-100, -50, -30, -15, -10, -7, 7, 10, 15, 30, 50, 100, 3.5};
    gelu_case(wide, (int64_t)(sizeof wide / sizeof wide[0]), 1);
    free(big);
}

static void test_residual(int64_t N)
{
    float *a = falloc(N), *b = falloc(N), *out = falloc(N), *x = falloc(N);
    for (int64_t i = 0; i < N; i++) {
        a[i] = (float)rnd();
        b[i] = (float)rnd();
    }
    /* one float addition: exact agreement */
    fill_nan(out, N);
    residual_forward_cpu(out, a, b, N);
    int ok = 1;
    for (int64_t i = 0; i < N; i++)
        ok &= out[i] == a[i] + b[i];
    EXPECT(ok, "residual N=%lld: out != a + b", (long long)N);
    memcpy(x, a, sizeof(float) * N);
    residual_forward_cpu(x, x, b, N);  /* out aliases a */
    ok = 1;
    for (int64_t i = 0; i < N; i++)
        ok &= x[i] == a[i] + b[i];
    EXPECT(ok, "residual N=%lld with out == a", (long long)N);
    memcpy(x, b, sizeof(float) * N);
    residual_forward_cpu(x, a, x, N);  /* out aliases b */
    ok = 1;
    for (int64_t i = 0; i < N; i++)
        ok &= x[i] == a[i] + b[i];
    EXPECT(ok, "residual N=%lld with out == b", (long long)N);
    free(a); free(b); free(out); free(x);
}

/* -- causal self-attention, as explicit loops -- */
static void ref_attention(double *out, double *att, const double *qkv, int B, int T, int C,
                          int NH)
{
    int hs = C / NH;
    double scale = 1.0 / sqrt((double)hs);
    double *a = dalloc(T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const double *q = qkv + ((int64_t)b * T + t) * 3 * C + h * hs;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= t; j++) {  /* j > t is the future: masked */
                    const double *k = qkv + ((int64_t)b * T + j) * 3 * C + C + h * hs;
                    a[j] = dot_d(q, k, hs) * scale;
                    mx = fmax(mx, a[j]);
                }
                for (int j = 0; j <= t; j++) {
                    a[j] = exp(a[j] - mx);
                    sum += a[j];
                }
                for (int j = 0; j < T; j++)
                    a[j] = j <= t ? a[j] / sum : 0.0;
                if (att)
                    memcpy(att + (((int64_t)b * NH + h) * T + t) * T, a, sizeof(double) * T);
                for (int d = 0; d < hs; d++) {
                    double s = 0;
                    for (int j = 0; j <= t; j++)
                        s += a[j] * qkv[((int64_t)b * T + j) * 3 * C + 2 * C + h * hs + d];
                    out[((int64_t)b * T + t) * C + h * hs + d] = s;
                }
            }
    free(a);
}

typedef struct { double *qkv; const double *R; int B, T, C, NH; } att_ctx;
static double att_f(void *p)
{
    att_ctx *c = p;
    int64_t n = (int64_t)c->B * c->T * c->C;
    double *out = dalloc(n);
    ref_attention(out, NULL, c->qkv, c->B, c->T, c->C, c->NH);
    double s = dot_d(out, c->R, n);
    free(out);
    return s;
}

/* Columns [col0, col0 + ncols) of a [rows, width] gradient: max|got - pre -
 * want| / max(max|want| there, lo). */
static double err_cols(const float *got, const float *pre, const double *want, int64_t rows,
                       int width, int col0, int ncols, double lo)
{
    double num = 0, den = fmax(lo, 1e-30);
    for (int64_t r = 0; r < rows; r++)
        for (int c = col0; c < col0 + ncols; c++) {
            int64_t i = r * width + c;
            if (!isfinite(got[i]))
                return INFINITY;
            num = fmax(num, fabs((double)got[i] - (double)pre[i] - want[i]));
            den = fmax(den, fabs(want[i]));
        }
    return num / den;
}

/* qk_scale multiplies q and k: large values test a stable softmax. fwd_tol
 * and grad_tol are FWD_RTOL and GRAD_RTOL except there (see the caller). */
static void test_attention(int B, int T, int C, int NH, double qk_scale, double fwd_tol,
                           double grad_tol)
{
    int64_t nrows = (int64_t)B * T, nqkv = nrows * 3 * C, nout = nrows * C,
            natt = (int64_t)B * NH * T * T, rows[PICK_MAX];
    int64_t nr = pick_rows(nrows, PICK_MAX, rows);
    double *qkv = dalloc(nqkv), *R = dalloc(nout), *ref = dalloc(nout), *ratt = dalloc(natt),
           *g = dalloc(nr * 3 * C);
    fill_rnd(qkv, nqkv, 1.0);
    for (int64_t r = 0; r < nrows; r++)
        for (int c = 0; c < 2 * C; c++)
            qkv[r * 3 * C + c] = (double)(float)(qkv[r * 3 * C + c] * qk_scale);
    fill_rnd(R, nout, 1.0);
    att_ctx ctx = {qkv, R, B, T, C, NH};
    fd_grad_rows(qkv, rows, nr, 3 * C, att_f, &ctx, g);
    ref_attention(ref, ratt, qkv, B, T, C, NH);

    float *fqkv = f32_copy(qkv, nqkv), *fR = f32_copy(R, nout);
    float *out = falloc(nout), *att = falloc(natt);
    fill_nan(out, nout);
    fill_nan(att, natt);  /* the masked entries must be written as zeros */
    attention_forward_cpu(out, att, fqkv, B, T, C, NH);
    EXPECT_ERR(err_blocks(out, NULL, ref, nout, nout, 0), fwd_tol,
               "attention B=%d T=%d C=%d NH=%d x%g out vs float64", B, T, C, NH, qk_scale);
    EXPECT_ERR(err_blocks(att, NULL, ratt, natt, natt, 0), fwd_tol,
               "attention B=%d T=%d C=%d NH=%d x%g att vs float64", B, T, C, NH, qk_scale);
    int masked_zero = 1;
    double row_err = 0;
    for (int64_t r = 0; r < natt / T; r++) {  /* rows of att: (b, h, t) */
        int t = (int)(r % T);
        double s = 0;
        for (int j = 0; j < T; j++) {
            float v = att[r * T + j];
            if (j > t)
                masked_zero &= v == 0.0f;
            s += v;
        }
        row_err = isfinite(s) ? fmax(row_err, fabs(s - 1.0)) : INFINITY;
    }
    EXPECT(masked_zero, "attention B=%d T=%d C=%d NH=%d: att not 0 above the diagonal", B, T, C,
           NH);
    /* T terms rounded at 6e-8 each */
    EXPECT_ERR(row_err, 1e-6 * (T + 1), "attention B=%d T=%d C=%d NH=%d: |att row sum - 1|", B,
               T, C, NH);

    float *pre = f_rnd(nqkv), *dqkv = f_dup(pre, nqkv), *scratch = falloc(natt);
    fill_nan(scratch, natt);  /* overwritten, never read first */
    attention_backward_cpu(dqkv, scratch, fR, fqkv, att, B, T, C, NH);
    /* q, k and v each against their own scale, floored at 1e-3 of the whole
     * (at T = 1 dq and dk are exactly 0: rounding there is relative to
     * nothing) */
    float *gd = gather_rows(dqkv, rows, nr, 3 * C), *gp = gather_rows(pre, rows, nr, 3 * C);
    double lo = 1e-3 * max_abs_d(g, nr * 3 * C);
    static const char *part[3] = {"dq", "dk", "dv"};
    for (int s = 0; s < 3; s++)
        EXPECT_ERR(err_cols(gd, gp, g, nr, 3 * C, s * C, C, lo), grad_tol,
                   "attention B=%d T=%d C=%d NH=%d x%g %s vs FD", B, T, C, NH, qk_scale,
                   part[s]);
    free(qkv); free(R); free(ref); free(ratt); free(g); free(fqkv); free(fR);
    free(out); free(att); free(pre); free(dqkv); free(scratch); free(gd); free(gp);
}

static void test_attentions(void)
{
    test_attention(2, 5, 12, 3, 1.0, FWD_RTOL, GRAD_RTOL);  /* hs 4 */
    test_attention(2, 1, 6, 2, 1.0, FWD_RTOL, GRAD_RTOL);   /* T = 1: att = 1, out = v */
    test_attention(2, 4, 7, 1, 1.0, FWD_RTOL, GRAD_RTOL);   /* one head, hs 7 */
    test_attention(1, 9, 15, 3, 1.0, FWD_RTOL, GRAD_RTOL);  /* hs 5 */
    test_attention(2, 17, 20, 4, 2.0, FWD_RTOL, GRAD_RTOL); /* longer, sharper */
    test_attention(3, 40, 48, 3, 1.0, FWD_RTOL, GRAD_RTOL); /* hs 16, differences on 8 rows */
    /* Scores up to ~|12 * 12 * 4| / 2 = 288: exp without the row maximum
     * overflows float (88.7). Rounding a score of size S costs ~S * 6e-8 in
     * exp's argument, so att is good to ~1e-5 here, not 1e-6: 1e-4 for the
     * forward; the saturated softmax's dq and dk are near-cancellations (1 -
     * att with att ~ 1), so the gradient is held to 1e-3 of its scale. */
    test_attention(1, 6, 8, 2, 12.0, 1e-4, 1e-3);
}

/* Whole MLP: float64 forward of the mean loss from the arena's values. */
typedef struct {
    const param_registry_t *reg;
    const int *sizes;
    int nlayers;
    double *params;
    const double *x;
    const int32_t *y;
    int B;
} mlp_ctx;
static double mlp_f(void *p)
{
    mlp_ctx *c = p;
    const int *sizes = c->sizes;
    int B = c->B;
    double *a = malloc(sizeof(double) * B * sizes[0]);
    memcpy(a, c->x, sizeof(double) * B * sizes[0]);
    for (int l = 0; l < c->nlayers; l++) {
        const param_entry_t *we = &c->reg->entries[2 * l], *be = &c->reg->entries[2 * l + 1];
        double *out = malloc(sizeof(double) * B * sizes[l + 1]);
        ref_linear(out, a, c->params + we->offset, c->params + be->offset, B, sizes[l],
                   sizes[l + 1]);
        if (l + 1 < c->nlayers)
            for (int i = 0; i < B * sizes[l + 1]; i++)
                out[i] = out[i] > 0 ? out[i] : 0;
        free(a);
        a = out;
    }
    double loss = ref_xent_mean(a, c->y, B, sizes[c->nlayers]);
    free(a);
    return loss;
}

/* Records the offsets backward reports as final. */
typedef struct {
    int64_t from[16];
    int calls;
} ready_rec_t;
static rt_status record_ready(void *ctx, int64_t ready_from)
{
    ready_rec_t *r = ctx;
    if (r->calls < 16)
        r->from[r->calls] = ready_from;
    r->calls++;
    return RT_OK;
}

static void test_mlp(void)
{
    model_spec_t spec;
    EXPECT(model_spec_parse("mlp:6,8,5,3", &spec) == RT_OK, "parse");
    static const int sizes[] = {6, 8, 5, 3};
    enum { B = 4, L = 3 };
    param_registry_t reg = {0};
    EXPECT(spec.kind->declare(spec.cfg, &reg) == RT_OK && reg.count == 2 * L, "declare");
    rt_device_t *dev = NULL;
    device_config_t cpu = {.kind = RT_DEVICE_CPU};
    EXPECT(device_open(&dev, &cpu) == RT_OK, "cpu device");
    float *params = NULL, *grads = NULL;
    EXPECT(host_alloc((void **)&params, sizeof(float) * reg.total) == RT_OK &&
           host_alloc((void **)&grads, sizeof(float) * reg.total) == RT_OK, "arenas");
    spec.kind->init(spec.cfg, &reg, params, 3);
    model_t m;
    EXPECT(model_open(&m, &spec, &reg, dev, params, grads, B) == RT_OK, "open");
    int64_t n = reg.total;
    double *p = calloc(n, sizeof(double)), *g = calloc(n, sizeof(double));
    for (int64_t i = 0; i < n; i++) p[i] = params[i];
    double x[B * 6];
    float fx[B * 6];
    int32_t y[B] = {0, 2, 1, 2};
    for (int i = 0; i < B * 6; i++) { x[i] = rnd(); fx[i] = (float)x[i]; }
    mlp_ctx ctx = {&reg, sizes, L, p, x, y, B};
    fd_grad(p, n, mlp_f, &ctx, g);
    rt_batch_t batch = {.rows = B, .inputs = tensor_2d(fx, RT_DTYPE_F32, B, 6),
                        .targets = tensor_1d(y, RT_DTYPE_I32, B)};
    rt_tensor_t losses;
    EXPECT(m.kind->forward(&m, &batch, &losses) == RT_OK && tensor_numel(&losses) == B, "forward");
    double loss_sum = 0;
    for (int i = 0; i < B; i++)
        loss_sum += ((const float *)losses.data)[i];
    double want = mlp_f(&ctx);
    EXPECT(fabs(loss_sum / B - want) <= 1e-6 * want, "mlp loss %g vs %g", loss_sum / B, want);
    ready_rec_t rec = {.calls = 0};
    EXPECT(m.kind->backward(&m, &batch, 1.0f / B, record_ready, &rec) == RT_OK, "backward");
    for (int i = 0; i < reg.count; i++) {
        const param_entry_t *e = &reg.entries[i];
        double err = rel_err_fd(grads + e->offset, g + e->offset, e->numel);
        EXPECT(err < GRAD_RTOL, "mlp %s grad vs FD: %g", e->name, err);
    }
    /* one report per layer, the last layer's first, each at its weight */
    int order_ok = rec.calls == L;
    for (int l = 0; order_ok && l < L; l++)
        order_ok = rec.from[l] == reg.entries[2 * (L - 1 - l)].offset;
    EXPECT(order_ok, "backward's ready reports: %d calls", rec.calls);
    /* the op table refuses a batch of the wrong width, naming the op */
    rt_batch_t wide = batch;
    wide.inputs = tensor_2d(fx, RT_DTYPE_F32, B / 2, 12);
    wide.targets = tensor_1d(y, RT_DTYPE_I32, B / 2);
    wide.rows = B / 2;
    rt_status st = m.kind->forward(&m, &wide, &losses);
    EXPECT(st == RT_ERR_INVALID && strstr(rt_last_error(), "linear_forward"),
           "a 12-wide batch for 6 inputs: %d %s", st, rt_last_error());
    model_close(&m);
    host_free(params);
    host_free(grads);
    device_close(dev);
    param_registry_free(&reg);
    model_spec_free(&spec);
    free(p);
    free(g);
}

static void test_spec(void)
{
    model_spec_t s;
    EXPECT(model_spec_parse("mlp:784,1024,1024,10", &s) == RT_OK && s.kind == &model_kind_mlp,
           "good spec");
    EXPECT(!strcmp(s.text, "mlp:784,1024,1024,10"), "format %s", s.text);
    model_io_t io;
    s.kind->describe(s.cfg, &io);
    EXPECT(io.batch == RT_BATCH_ROWS && io.features == 784 && io.classes == 10, "io");
    model_spec_free(&s);
    const char *bad[] = {"", "mlp", "mlp:", "mlp:10", "mlp:10,1", "mlp:10,,5", "mlp:10,5,",
                         "mlp:10,-5", "mlp:10,x", "mlp:10,5 ", "gpt:10,5", "MLP:10,5",
                         "mlp:10,99999999999", "mlp:1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        EXPECT(model_spec_parse(bad[i], &s) == RT_ERR_USAGE, "'%s' accepted", bad[i]);
}

int main(void)
{
    test_linear();
    test_relu();
    test_xent();
    test_embeddings();
    test_layernorms();
    test_gelu();
    test_residual(37);
    test_residual(40001);  /* threaded */
    test_attentions();
    test_mlp();
    test_spec();
    return TEST_EXIT();
}
