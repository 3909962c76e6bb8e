/* train_step.c - forward/backward over micro-batches, bucketed gradient
 * averaging, clipping and the update (see train_step.h). */
#include "trainer/train_step.h"

#include <math.h>
#include <string.h>

#include "common/check.h"
#include "trainer/clip.h"

void train_step_init(train_step_t *t, mlp_t *model, optimizer_t *opt)
{
    memset(t, 0, sizeof *t);
    t->model = model;
    t->opt = opt;
    t->accum = 1;
    t->bucket_floats = 1 << 20;  /* 4 MiB */
    t->sched.kind = SCHED_CONSTANT;
    t->sched.base_lr = 1e-3;
}

/* Buckets are the fixed slices [k*S, (k+1)*S) of the gradient arena; backward
 * finishes the arena from the end (last layer first), so bucket k can be
 * reduced once everything from k*S on is final. */
static rt_status reduce_ready(void *ctx, int64_t ready_from)
{
    train_step_t *t = ctx;
    const int64_t S = t->bucket_floats, total = t->model->params.total;
    float *g = t->model->params.grad;
    while (t->next_bucket >= 0 && t->next_bucket * S >= ready_from) {
        int64_t lo = t->next_bucket * S;
        int64_t hi = lo + S < total ? lo + S : total;
        TRY(t->reduce(t->reduce_ctx, g + lo, hi - lo));
        t->next_bucket--;
    }
    return RT_OK;
}

rt_status train_step_run(train_step_t *t, batch_fn next, void *next_ctx, step_result_t *result)
{
    mlp_t *m = t->model;
    param_set_t *ps = &m->params;
    memset(result, 0, sizeof *result);
    CHECK_ARG(t->accum >= 1 && t->bucket_floats >= 1, "bad step configuration");
    memset(ps->grad, 0, sizeof(float) * (size_t)ps->total);

    double loss_mean = 0.0;
    for (int k = 0; k < t->accum; k++) {
        const float *x;
        const int32_t *y;
        int B;
        TRY(next(next_ctx, k, &x, &y, &B));
        CHECK_ARG(B >= 1 && B <= m->max_batch, "micro-batch of %d rows (max %d)", B, m->max_batch);
        double loss_sum;
        mlp_forward(m, x, y, B, &loss_sum, NULL);
        loss_mean += loss_sum / ((double)B * t->accum);
        bool last = k == t->accum - 1;
        t->next_bucket = (ps->total + t->bucket_floats - 1) / t->bucket_floats - 1;
        TRY(mlp_backward(m, y, (float)(1.0 / ((double)B * t->accum)),
                         last && t->reduce ? reduce_ready : NULL, t));
    }
    if (t->reduce) {
        TRY(reduce_ready(t, 0));  /* whatever the last layer callback left */
        if (t->wait)
            TRY(t->wait(t->reduce_ctx));
        float l = (float)loss_mean;
        TRY(t->reduce(t->reduce_ctx, &l, 1));
        if (t->wait)
            TRY(t->wait(t->reduce_ctx));
        loss_mean = l;
    }
    result->loss = loss_mean;
    result->grad_norm = grad_global_norm(ps->grad, ps->total);
    result->lr = schedule_lr(&t->sched, t->step);
    if (!isfinite(result->loss) || !isfinite(result->grad_norm)) {
        if (!t->skip_nonfinite)
            return rt_fail(RT_ERR_NUMERIC,
                           "step %lld: non-finite %s (loss %g, gradient norm %g); "
                           "--skip-nonfinite skips such steps",
                           (long long)t->step + 1, isfinite(result->loss) ? "gradient" : "loss",
                           result->loss, result->grad_norm);
        result->skipped = true;
        t->skipped++;
        t->step++;
        return RT_OK;
    }
    result->clip_coef = 1.0f;
    if (t->grad_clip > 0.0)
        result->clip_coef = grad_clip_by_norm(ps->grad, ps->total, result->grad_norm, t->grad_clip);
    optimizer_step(t->opt, ps->data, ps->grad, (float)result->lr);
    t->step++;
    return RT_OK;
}
