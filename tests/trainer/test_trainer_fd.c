/* test_trainer_fd.c - every op's and the whole MLP's analytic gradients
 * (float32, the CPU oracle op_cpu.c, and the MLP through the model
 * interface on the CPU device) against central finite differences of
 * independent float64 reference forwards written here, and the float32
 * forwards against the same references. Also checks that backward
 * accumulates (+=), that the op table refuses mismatched views, and that
 * backward reports each layer's gradient as final, last layer first. */
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

/* max|a - b| / max|b| over n values */
static double rel_err_fd(const float *a, const double *b, int64_t n)
{
    double num = 0, den = 1e-30;
    for (int64_t i = 0; i < n; i++) {
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
    test_mlp();
    test_spec();
    return TEST_EXIT();
}
