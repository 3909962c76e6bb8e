/* test_trainer_optim.c - optimizers, schedules and clipping against closed
 * forms; the training step's gradient buckets (each slice reduced exactly
 * once, the last layer's before the first layer's backward has run) and its
 * non-finite handling. */
#include <math.h>
#include <string.h>

#include "test_util.h"
#include "trainer/clip.h"
#include "trainer/optim.h"
#include "trainer/schedule.h"
#include "trainer/train_step.h"

static void test_sgd(void)
{
    /* constant gradient g, momentum mu, no decay: after 3 steps the buffer
     * sums were g, (1+mu)g, (1+mu+mu^2)g */
    const float g = 0.5f, lr = 0.1f, mu = 0.9f;
    float p = 2.0f, grad = g;
    optim_config_t c = optim_config_default(OPTIM_SGD);
    c.momentum = mu;
    optimizer_t o;
    EXPECT(optimizer_create(&o, &c, 1) == RT_OK, "create");
    for (int t = 0; t < 3; t++)
        optimizer_step(&o, &p, &grad, lr);
    double want = 2.0 - lr * g * (3 + 2 * mu + mu * mu);
    EXPECT(test_close(p, want, 0, 1e-6), "sgd momentum %g vs %g", p, want);
    optimizer_free(&o);
    /* plain SGD with weight decay: p - lr (g + wd p) */
    c = optim_config_default(OPTIM_SGD);
    c.weight_decay = 0.1f;
    EXPECT(optimizer_create(&o, &c, 1) == RT_OK && o.state0 == NULL, "no buffer without momentum");
    p = 2.0f;
    optimizer_step(&o, &p, &grad, lr);
    EXPECT(test_close(p, 2.0 - 0.1 * (0.5 + 0.1 * 2.0), 0, 1e-6), "sgd wd %g", p);
    optimizer_free(&o);
}

static void test_adamw(void)
{
    /* constant gradient: bias-corrected moments are g and g^2, so each step
     * is p <- p (1 - lr wd) - lr g / (|g| + eps) */
    optim_config_t c = optim_config_default(OPTIM_ADAMW);
    c.weight_decay = 0.2f;
    optimizer_t o;
    EXPECT(optimizer_create(&o, &c, 2) == RT_OK, "create");
    float p[2] = {1.0f, -3.0f}, g[2] = {0.25f, -4.0f};
    double want[2] = {1.0, -3.0};
    const double lr = 0.01;
    for (int t = 0; t < 5; t++) {
        optimizer_step(&o, p, g, (float)lr);
        for (int i = 0; i < 2; i++)
            want[i] = want[i] * (1 - lr * 0.2) - lr * g[i] / (fabs(g[i]) + 1e-8);
    }
    for (int i = 0; i < 2; i++)
        EXPECT(test_close(p[i], want[i], 0, 1e-6), "adamw p[%d] %g vs %g", i, p[i], want[i]);
    EXPECT(o.step == 5, "step count %lld", (long long)o.step);
    optimizer_free(&o);
    optim_kind k;
    EXPECT(optim_kind_parse("adam", &k) == RT_ERR_USAGE, "unknown optimizer rejected");
}

static void test_schedule(void)
{
    schedule_t s = {.kind = SCHED_COSINE, .base_lr = 1.0, .warmup = 4, .total = 14};
    EXPECT(test_close(schedule_lr(&s, 0), 0.25, 0, 1e-12), "warmup 0");
    EXPECT(test_close(schedule_lr(&s, 3), 1.0, 0, 1e-12), "warmup end");
    EXPECT(test_close(schedule_lr(&s, 4), 1.0, 0, 1e-12), "cosine start");
    EXPECT(test_close(schedule_lr(&s, 9), 0.5, 0, 1e-12), "cosine middle");
    EXPECT(test_close(schedule_lr(&s, 14), 0.0, 1e-15, 0), "cosine end");
    EXPECT(test_close(schedule_lr(&s, 20), 0.0, 1e-15, 0), "after the end");
    s.kind = SCHED_CONSTANT;
    EXPECT(test_close(schedule_lr(&s, 1), 0.5, 0, 1e-12) && schedule_lr(&s, 100) == 1.0, "constant");
}

static void test_clip(void)
{
    float g[2] = {3, 4};
    double n = grad_global_norm(g, 2);
    EXPECT(n == 5.0, "norm %g", n);
    float coef = grad_clip_by_norm(g, 2, n, 1.0);
    EXPECT(test_close(coef, 1.0 / (5 + 1e-6), 0, 1e-7) && test_close(g[0], 0.6, 0, 1e-6) &&
           test_close(g[1], 0.8, 0, 1e-6), "clipped to %g %g", g[0], g[1]);
    float h[2] = {3, 4};
    EXPECT(grad_clip_by_norm(h, 2, 5.0, 10.0) == 1.0f && h[0] == 3 && h[1] == 4, "not clipped");
}

/* Bucket bookkeeping: a reduce callback that records which slices it saw. */
typedef struct {
    int64_t lo[64], count[64];
    int calls;
    mlp_t *m;
    int first_layer_done_at;  /* the call index when fc1's weight grad was non-zero */
} rec_t;

static rt_status rec_reduce(void *ctx, float *buf, int64_t count)
{
    rec_t *r = ctx;
    if (r->calls < 64 && count != 1) {
        r->lo[r->calls] = buf - r->m->params.grad;
        r->count[r->calls] = count;
        if (r->first_layer_done_at < 0 && r->m->params.grad[0] != 0.0f)
            r->first_layer_done_at = r->calls;
    }
    r->calls++;
    return RT_OK;
}

static const float *batch_x;
static const int32_t *batch_y;
static int batch_b;
static rt_status fixed_batch(void *ctx, int k, const float **x, const int32_t **y, int *B)
{
    *x = batch_x;
    *y = batch_y;
    *B = batch_b;
    return RT_OK;
}

static void test_step(void)
{
    mlp_spec_t spec;
    mlp_spec_parse("mlp:8,16,16,4", &spec);
    mlp_t m;
    EXPECT(mlp_create(&m, &spec, 4) == RT_OK, "create");
    mlp_init_params(&m, 1);
    float x[32];
    int32_t y[4] = {0, 1, 2, 3};
    for (int i = 0; i < 32; i++)
        x[i] = (float)((i * 7) % 11) / 11.0f;
    batch_x = x, batch_y = y, batch_b = 4;
    optim_config_t c = optim_config_default(OPTIM_SGD);
    optimizer_t o;
    optimizer_create(&o, &c, m.params.total);
    train_step_t t;
    train_step_init(&t, &m, &o);
    rec_t rec = {.m = &m, .first_layer_done_at = -1};
    t.bucket_floats = 50;
    t.reduce = rec_reduce;
    t.reduce_ctx = &rec;
    step_result_t r;
    EXPECT(train_step_run(&t, fixed_batch, NULL, &r) == RT_OK, "step");
    /* slices tile the arena from the end down, each exactly once */
    int nb = rec.calls - 1;  /* minus the loss reduce */
    int64_t expect_hi = m.params.total;
    int tiled = nb == (int)((m.params.total + 49) / 50);
    for (int i = 0; i < nb && i < 64; i++) {
        tiled &= rec.lo[i] + rec.count[i] == expect_hi && rec.lo[i] == (expect_hi - 1) / 50 * 50;
        expect_hi = rec.lo[i];
    }
    EXPECT(tiled && expect_hi == 0, "buckets do not tile the arena (%d buckets)", nb);
    /* overlap: buckets were reduced before the first layer's gradient existed */
    EXPECT(rec.first_layer_done_at > 0, "no bucket reduced during backward (%d)",
           rec.first_layer_done_at);

    /* non-finite: fails naming the step, or skips without touching params */
    float bad[32];
    memcpy(bad, x, sizeof bad);
    bad[5] = NAN;
    batch_x = bad;
    float before = m.params.data[0];
    rt_status st = train_step_run(&t, fixed_batch, NULL, &r);
    EXPECT(st == RT_ERR_NUMERIC && strstr(rt_last_error(), "step 2"), "non-finite: %s",
           rt_last_error());
    t.skip_nonfinite = true;
    st = train_step_run(&t, fixed_batch, NULL, &r);
    EXPECT(st == RT_OK && r.skipped && t.skipped == 1 && m.params.data[0] == before,
           "skip-nonfinite");
    optimizer_free(&o);
    mlp_free(&m);
}

int main(void)
{
    test_sgd();
    test_adamw();
    test_schedule();
    test_clip();
    test_step();
    return TEST_EXIT();
}
