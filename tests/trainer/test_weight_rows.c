/* test_weight_rows.c - the weight gradient a block of rows at a time:
 *  - the CPU op linear_weight_rows over blocks that tile the outputs adds
 *    up to linear_backward's whole dweight (the oracle), for several
 *    shapes and block sizes, and leaves rows outside its block untouched;
 *    rows outside the outputs are refused with a message;
 *  - the MLP's backward with a gradient-ready hook (which computes large
 *    layers' weight gradients in row blocks, the hook told after each)
 *    gives the gradient of its backward without a hook, and the hook's
 *    offsets fall from the arena's end to 0, each a point from which the
 *    gradient is already final (checked against the finished gradient). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "trainer/model/model.h"
#include "trainer/ops/device.h"

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 65536.0f - 0.5f;
}

static void test_op(rt_device_t *dev, int B, int C, int OC, int rows)
{
    unsigned seed = (unsigned)(B * 7 + C * 13 + OC);
    float *dout = malloc(sizeof(float) * (size_t)B * OC), *inp = malloc(sizeof(float) * (size_t)B * C);
    float *w = calloc((size_t)OC * C, sizeof(float));
    float *want = calloc((size_t)OC * C, sizeof(float)), *got = calloc((size_t)OC * C, sizeof(float));
    for (int i = 0; i < B * OC; i++)
        dout[i] = frand(&seed);
    for (int i = 0; i < B * C; i++)
        inp[i] = frand(&seed);
    for (int i = 0; i < OC * C; i++)
        want[i] = got[i] = frand(&seed);  /* += into the same start */
    const rt_ops_t *op = dev->ops;
    rt_tensor_t td = tensor_2d(dout, RT_DTYPE_F32, B, OC), ti = tensor_2d(inp, RT_DTYPE_F32, B, C);
    rt_tensor_t tw = tensor_2d(w, RT_DTYPE_F32, OC, C), tdw = tensor_2d(want, RT_DTYPE_F32, OC, C);
    EXPECT(op->linear_backward(NULL, &tdw, NULL, &td, &ti, &tw, dev) == RT_OK, "oracle");
    /* blocks from the last rows to the first, as backward runs them */
    for (int r1 = OC; r1 > 0; r1 -= rows) {
        const int r0 = r1 - rows > 0 ? r1 - rows : 0;
        rt_tensor_t blk = tensor_2d(got + (size_t)r0 * C, RT_DTYPE_F32, r1 - r0, C);
        EXPECT(op->linear_weight_rows(&blk, &td, &ti, r0, dev) == RT_OK, "rows [%d, %d): %s", r0,
               r1, rt_last_error());
    }
    double worst = 0, scale = 1e-30;
    for (int i = 0; i < OC * C; i++) {
        worst = fmax(worst, fabs((double)got[i] - want[i]));
        scale = fmax(scale, fabs((double)want[i]));
    }
    EXPECT(worst / scale <= 1e-6, "B=%d C=%d OC=%d blocks of %d rows: %g relative", B, C, OC, rows,
           worst / scale);
    /* a block touches its rows only */
    memcpy(got, want, sizeof(float) * (size_t)OC * C);
    if (OC >= 3) {
        rt_tensor_t mid = tensor_2d(got + (size_t)1 * C, RT_DTYPE_F32, 1, C);
        EXPECT(op->linear_weight_rows(&mid, &td, &ti, 1, dev) == RT_OK, "one row");
        int outside = memcmp(got, want, sizeof(float) * (size_t)C) ||
                      memcmp(got + (size_t)2 * C, want + (size_t)2 * C,
                             sizeof(float) * (size_t)(OC - 2) * C);
        EXPECT(!outside, "B=%d C=%d OC=%d: a one-row block changed other rows", B, C, OC);
    }
    /* rows past the outputs: refused, with the numbers */
    rt_tensor_t over = tensor_2d(got, RT_DTYPE_F32, 2, C);
    rt_status st = op->linear_weight_rows(&over, &td, &ti, OC - 1, dev);
    EXPECT(st == RT_ERR_INVALID && strstr(rt_last_error(), "outside"), "rows past the end: %d %s",
           (int)st, rt_last_error());
    free(dout);
    free(inp);
    free(w);
    free(want);
    free(got);
}

typedef struct {
    int64_t from[256];
    int n;
    const float *got, *want;  /* the gradient being made; the finished one */
    int64_t total;
    double scale;
    int premature;            /* a hook claimed a tail that was not final yet */
} hooks_t;

static rt_status record(void *ctx, int64_t ready_from)
{
    hooks_t *h = ctx;
    if (h->n < 256)
        h->from[h->n] = ready_from;
    h->n++;
    for (int64_t i = ready_from; i < h->total; i++)
        if (fabs((double)h->got[i] - h->want[i]) > 1e-6 * h->scale) {
            h->premature++;
            break;
        }
    return RT_OK;
}

/* mlp:600,1000,40: fc1 holds 600k weights, over twice the 256 Ki block,
 * so its weight gradient is computed in blocks when a hook is given. */
static void test_mlp(rt_device_t *dev)
{
    model_spec_t spec;
    EXPECT(model_spec_parse("mlp:600,1000,40", &spec) == RT_OK, "spec");
    param_registry_t reg;
    memset(&reg, 0, sizeof reg);
    EXPECT(spec.kind->declare(spec.cfg, &reg) == RT_OK, "declare");
    const int B = 8;
    float *params = calloc((size_t)reg.total, sizeof(float));
    float *g0 = calloc((size_t)reg.total, sizeof(float)), *g1 = calloc((size_t)reg.total, sizeof(float));
    spec.kind->init(spec.cfg, &reg, params, 5);
    float *x = malloc(sizeof(float) * B * 600);
    int32_t y[B];
    unsigned seed = 3;
    for (int i = 0; i < B * 600; i++)
        x[i] = frand(&seed);
    for (int i = 0; i < B; i++)
        y[i] = i % 40;
    rt_batch_t batch = {.rows = B, .inputs = tensor_2d(x, RT_DTYPE_F32, B, 600),
                        .targets = tensor_1d(y, RT_DTYPE_I32, B)};
    hooks_t h = {.n = 0, .got = g1, .want = g0, .total = reg.total};
    for (int pass = 0; pass < 2; pass++) {
        for (int64_t i = 0; pass && i < reg.total; i++)
            h.scale = fmax(h.scale, fabs((double)g0[i]));
        model_t m;
        EXPECT(model_open(&m, &spec, &reg, dev, params, pass ? g1 : g0, B) == RT_OK, "open");
        rt_tensor_t losses;
        EXPECT(m.kind->forward(&m, &batch, &losses) == RT_OK, "forward");
        EXPECT(m.kind->backward(&m, &batch, 1.0f, pass ? record : NULL, &h) == RT_OK, "backward");
        model_close(&m);
    }
    double worst = 0, scale = 1e-30;
    for (int64_t i = 0; i < reg.total; i++) {
        worst = fmax(worst, fabs((double)g1[i] - g0[i]));
        scale = fmax(scale, fabs((double)g0[i]));
    }
    EXPECT(worst / scale <= 1e-6, "gradient with the hook differs by %g relative", worst / scale);
    /* falling offsets ending at 0 */
    int falling = h.n > 2 && h.n <= 256 && h.from[h.n - 1] == 0;
    for (int i = 1; falling && i < h.n; i++)
        falling = h.from[i] < h.from[i - 1];
    /* fc2 in one call, fc1 (600k weights) in blocks of 436 rows: 3 */
    EXPECT(falling && h.n == 4, "hook offsets fall to 0 in blocks: %d calls", h.n);
    EXPECT(h.premature == 0, "%d hooks claimed a tail of the gradient before it was final",
           h.premature);
    free(params);
    free(g0);
    free(g1);
    free(x);
    param_registry_free(&reg);
    model_spec_free(&spec);
}

int main(void)
{
    rt_device_t *dev = NULL;
    device_config_t dc = {.kind = RT_DEVICE_CPU};
    if (device_open(&dev, &dc) != RT_OK)
        return 1;
    test_op(dev, 5, 7, 11, 3);
    test_op(dev, 64, 96, 130, 32);
    test_op(dev, 33, 257, 513, 100);
    test_op(dev, 16, 20, 4, 4);
    test_mlp(dev);
    device_close(dev);
    return TEST_EXIT();
}
