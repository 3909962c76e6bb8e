/* test_trainer_optim.c - the optimizers, the weight-decay rule, schedules
 * and clipping against closed forms, applied the way a training step
 * applies them on the CPU device (step begin, the gradient's sum of
 * squares, the step's decisions, the fused update); the gradient plan's
 * buckets; and a replica's non-finite handling. */
#include <math.h>
#include <string.h>

#include "test_util.h"
#include "trainer/model/model.h"
#include "trainer/optim/grad_plan.h"
#include "trainer/optim/optim.h"
#include "trainer/optim/schedule.h"
#include "trainer/run/replica.h"

static rt_device_t *cpu;

/* A registry of parameters of n[i] elements, decay[i] each. */
static void make_registry(param_registry_t *reg, int count, const int64_t *n, const bool *decay)
{
    memset(reg, 0, sizeof *reg);
    for (int i = 0; i < count; i++) {
        char name[16];
        snprintf(name, sizeof name, "p%d", i);
        EXPECT(param_add(reg, name, 1, &n[i], decay[i]) == RT_OK, "param_add");
    }
}

/* One update as a step makes it: lr, the norm, the decisions (clip), the update. */
static void apply(optimizer_t *o, step_state_t *s, float *p, float *g, float lr, double clip)
{
    const rt_ops_t *op = cpu->ops;
    rt_tensor_t gt = tensor_1d(g, RT_DTYPE_F32, o->hi);
    EXPECT(op->step_begin(s, lr, 0, cpu) == RT_OK && op->sum_squares(&s->sumsq, &gt, cpu) == RT_OK &&
           optimizer_prepare(o, s, clip) == RT_OK && optimizer_update(o, p, g, s) == RT_OK,
           "update: %s", rt_last_error());
}

static void fresh_state(step_state_t *s)
{
    memset(s, 0, sizeof *s);
    s->first_nonfinite = -1;
}

static void test_sgd(void)
{
    /* constant gradient g, momentum mu, no decay: after 3 steps the buffer
     * sums were g, (1+mu)g, (1+mu+mu^2)g */
    const float g = 0.5f, lr = 0.1f, mu = 0.9f;
    float p = 2.0f, grad = g;
    param_registry_t reg;
    make_registry(&reg, 1, (int64_t[]){1}, (bool[]){true});
    step_state_t s;
    fresh_state(&s);
    optim_config_t c = optim_config_default(OPTIM_SGD);
    c.momentum = mu;
    optimizer_t o;
    EXPECT(optimizer_create(&o, &c, cpu, &reg, 0, 1) == RT_OK, "create");
    for (int t = 0; t < 3; t++)
        apply(&o, &s, &p, &grad, lr, 0.0);
    double want = 2.0 - lr * g * (3 + 2 * mu + mu * mu);
    EXPECT(test_close(p, want, 0, 1e-6), "sgd momentum %g vs %g", p, want);
    optimizer_free(&o);
    /* plain SGD with weight decay: p - lr (g + wd p) */
    c = optim_config_default(OPTIM_SGD);
    c.weight_decay = 0.1f;
    EXPECT(optimizer_create(&o, &c, cpu, &reg, 0, 1) == RT_OK && o.state[0] == NULL,
           "no buffer without momentum");
    p = 2.0f;
    apply(&o, &s, &p, &grad, lr, 0.0);
    EXPECT(test_close(p, 2.0 - 0.1 * (0.5 + 0.1 * 2.0), 0, 1e-6), "sgd wd %g", p);
    optimizer_free(&o);
    param_registry_free(&reg);
}

static void test_adamw(void)
{
    /* constant gradient: bias-corrected moments are g and g^2, so each step
     * is p <- p (1 - lr wd) - lr g / (|g| + eps) */
    param_registry_t reg;
    make_registry(&reg, 1, (int64_t[]){2}, (bool[]){true});
    step_state_t s;
    fresh_state(&s);
    optim_config_t c = optim_config_default(OPTIM_ADAMW);
    c.weight_decay = 0.2f;
    optimizer_t o;
    EXPECT(optimizer_create(&o, &c, cpu, &reg, 0, 2) == RT_OK, "create");
    float p[2] = {1.0f, -3.0f}, g[2] = {0.25f, -4.0f};
    double want[2] = {1.0, -3.0};
    const double lr = 0.01;
    for (int t = 0; t < 5; t++) {
        apply(&o, &s, p, g, (float)lr, 0.0);
        for (int i = 0; i < 2; i++)
            want[i] = want[i] * (1 - lr * 0.2) - lr * g[i] / (fabs(g[i]) + 1e-8);
    }
    for (int i = 0; i < 2; i++)
        EXPECT(test_close(p[i], want[i], 0, 1e-6), "adamw p[%d] %g vs %g", i, p[i], want[i]);
    EXPECT(s.t == 5, "step count %lld", (long long)s.t);
    optimizer_free(&o);
    param_registry_free(&reg);
    optim_kind k;
    EXPECT(optim_kind_parse("adam", &k) == RT_ERR_USAGE, "unknown optimizer rejected");
}

/* Weight decay only where the registry says so: a 3-element parameter with
 * decay, one of 20 without (after a gap), one with; AdamW's constant-
 * gradient closed form with wd or with 0. */
static void test_decay_rule(void)
{
    param_registry_t reg;
    const bool decay[3] = {true, false, true};
    make_registry(&reg, 3, (int64_t[]){3, 20, 5}, decay);
    float p[64] = {0}, g[64] = {0};
    double want[64] = {0};
    for (int i = 0; i < reg.count; i++)
        for (int64_t k = 0; k < reg.entries[i].numel; k++) {
            int64_t x = reg.entries[i].offset + k;
            p[x] = 1.0f + 0.1f * (float)x;
            g[x] = (x % 2 ? -0.5f : 0.25f);
            want[x] = p[x];
        }
    step_state_t s;
    fresh_state(&s);
    optim_config_t c = optim_config_default(OPTIM_ADAMW);
    c.weight_decay = 0.3f;
    optimizer_t o;
    EXPECT(optimizer_create(&o, &c, cpu, &reg, 0, reg.total) == RT_OK, "create");
    const double lr = 0.01;
    for (int t = 0; t < 3; t++) {
        apply(&o, &s, p, g, (float)lr, 0.0);
        for (int i = 0; i < reg.count; i++)
            for (int64_t k = 0; k < reg.entries[i].numel; k++) {
                int64_t x = reg.entries[i].offset + k;
                double wd = decay[i] ? 0.3 : 0.0;
                want[x] = want[x] * (1 - lr * wd) - lr * g[x] / (fabs(g[x]) + 1e-8);
            }
    }
    double worst = 0;
    int gaps_zero = 1;
    for (int64_t x = 0; x < reg.total; x++) {
        worst = fmax(worst, fabs(p[x] - want[x]) / fmax(fabs(want[x]), 1e-30));
        if (want[x] == 0.0)
            gaps_zero &= p[x] == 0.0f;
    }
    EXPECT(worst <= 1e-6, "decay rule: worst relative error %g", worst);
    EXPECT(gaps_zero, "arena gaps changed");
    optimizer_free(&o);
    param_registry_free(&reg);
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

/* clip_grad_norm_: the norm of (3, 4) is 5; with max_norm 1 the gradient
 * is scaled by 1/(5 + 1e-6), seen through plain SGD with lr 1 from 0. */
static void test_clip(void)
{
    param_registry_t reg;
    make_registry(&reg, 1, (int64_t[]){2}, (bool[]){true});
    optim_config_t c = optim_config_default(OPTIM_SGD);
    optimizer_t o;
    EXPECT(optimizer_create(&o, &c, cpu, &reg, 0, 2) == RT_OK, "create");
    step_state_t s;
    fresh_state(&s);
    float p[2] = {0, 0}, g[2] = {3, 4};
    apply(&o, &s, p, g, 1.0f, 1.0);
    EXPECT(s.last_norm == 5.0, "norm %g", s.last_norm);
    EXPECT(test_close(s.opt.coef, 1.0 / (5 + 1e-6), 0, 1e-7) && test_close(-p[0], 0.6, 0, 1e-6) &&
           test_close(-p[1], 0.8, 0, 1e-6), "clipped to %g %g", -p[0], -p[1]);
    EXPECT(g[0] == 3 && g[1] == 4, "the gradient itself is left as it is");
    p[0] = p[1] = 0;
    apply(&o, &s, p, g, 1.0f, 10.0);
    EXPECT(s.opt.coef == 1.0f && p[0] == -3 && p[1] == -4, "not clipped");
    optimizer_free(&o);
    param_registry_free(&reg);
}

/* Buckets tile the arena from the end down, each exactly once. */
static void test_plan(void)
{
    param_registry_t reg, reg2;
    make_registry(&reg, 3, (int64_t[]){100, 7, 30}, (bool[]){true, true, true});
    grad_plan_t plan;
    EXPECT(grad_plan_make(&plan, &reg, 50.0 * sizeof(float) / 1048576.0) == RT_OK && plan.bucket == 50,
           "plan of 50-element buckets: %lld", (long long)plan.bucket);
    /* [0,6) [6,12) [12,25) [25,50), then [50,100) [100,150) ... up to the
     * total: the first slice halved down to an eighth */
    int64_t want[64] = {0, 6, 12, 25};
    int nb = 4;
    for (int64_t b = 50; b < reg.total && nb < 62; b += 50)
        want[nb++] = b;
    want[nb] = reg.total;
    int64_t expect_hi = reg.total;
    int tiled = reg.total > 100 && plan.count == nb;
    for (int64_t k = plan.count - 1; tiled && k >= 0; k--) {
        int64_t lo, hi;
        grad_plan_bucket(&plan, k, &lo, &hi);
        tiled &= hi == expect_hi && lo == want[k] && hi == want[k + 1];
        expect_hi = lo;
    }
    EXPECT(tiled && expect_hi == 0, "buckets do not tile the arena (%lld buckets)",
           (long long)plan.count);
    /* an arena smaller than a bucket: the halvings inside it only */
    make_registry(&reg2, 1, (int64_t[]){20}, (bool[]){true});
    EXPECT(grad_plan_make(&plan, &reg2, 50.0 * sizeof(float) / 1048576.0) == RT_OK, "plan");
    int64_t lo, hi, lo1, hi1;
    grad_plan_bucket(&plan, 0, &lo, &hi);
    grad_plan_bucket(&plan, plan.count - 1, &lo1, &hi1);
    EXPECT(plan.count == 3 && lo == 0 && hi == 6 && lo1 == 12 && hi1 == 20,
           "20 elements in 50-element buckets: %lld buckets, [%lld, %lld) .. [%lld, %lld)",
           (long long)plan.count, (long long)lo, (long long)hi, (long long)lo1, (long long)hi1);
    param_registry_free(&reg2);
    param_registry_free(&reg);
}

/* Batches of a fixed array; a NaN in `bad` when set. */
typedef struct {
    float *x;
    int32_t *y;
    int B, in;
} fixed_batch_t;

static rt_status fixed_batch(void *ctx, int k, rt_batch_t *b)
{
    fixed_batch_t *f = ctx;
    b->rows = f->B;
    b->inputs = tensor_2d(f->x, RT_DTYPE_F32, f->B, f->in);
    b->targets = tensor_1d(f->y, RT_DTYPE_I32, f->B);
    return RT_OK;
}

static replica_t *make_replica(const model_spec_t *spec, bool skip)
{
    replica_config_t rc = {.spec = spec, .dev = cpu, .max_batch = 4, .accum = 1,
                           .optim = optim_config_default(OPTIM_SGD), .skip_nonfinite = skip,
                           .sched = {.kind = SCHED_CONSTANT, .base_lr = 1e-2},
                           .compute_dtype = RT_DTYPE_F32};
    replica_t *r = NULL;
    EXPECT(replica_create(&r, &rc) == RT_OK, "replica: %s", rt_last_error());
    if (r) {
        replica_init_params(r, 1);
        EXPECT(replica_upload(r, 0, 0) == RT_OK, "upload");
    }
    return r;
}

/* A non-finite loss fails the step naming it, or (skip_nonfinite) is
 * skipped without touching the parameters. */
static void test_nonfinite(void)
{
    model_spec_t spec;
    EXPECT(model_spec_parse("mlp:8,16,16,4", &spec) == RT_OK, "spec");
    float x[32];
    int32_t y[4] = {0, 1, 2, 3};
    for (int i = 0; i < 32; i++)
        x[i] = (float)((i * 7) % 11) / 11.0f;
    fixed_batch_t fb = {x, y, 4, 8};
    replica_t *r = make_replica(&spec, false);
    step_result_t res;
    EXPECT(r && replica_step(r, fixed_batch, &fb, true, &res) == RT_OK && res.steps == 1,
           "a finite step");
    x[5] = NAN;
    rt_status st = r ? replica_step(r, fixed_batch, &fb, true, &res) : RT_ERR_INTERNAL;
    EXPECT(st == RT_ERR_NUMERIC && strstr(rt_last_error(), "step 2"), "non-finite: %s",
           rt_last_error());
    replica_destroy(r);
    r = make_replica(&spec, true);
    float before = r ? replica_host_params(r)[0] : 0;
    st = r ? replica_step(r, fixed_batch, &fb, true, &res) : RT_ERR_INTERNAL;
    EXPECT(st == RT_OK && res.new_skipped == 1 && res.skipped == 1 && res.first_skipped == 0 &&
           res.steps == 0 && r && replica_host_params(r)[0] == before,
           "skip-nonfinite: %s", rt_last_error());
    replica_destroy(r);
    model_spec_free(&spec);
}

int main(void)
{
    device_config_t dc = {.kind = RT_DEVICE_CPU};
    if (device_open(&cpu, &dc) != RT_OK)
        return 1;
    test_sgd();
    test_adamw();
    test_decay_rule();
    test_schedule();
    test_clip();
    test_plan();
    test_nonfinite();
    device_close(cpu);
    return TEST_EXIT();
}
