/* step.c - one training step of a replica, the same for every device (see
 * replica.h): micro-batches staged on the device, forward/backward through
 * the model, the gradient sync, the step's decisions and the optimizer
 * update; on devices that support it the step's two halves (zero + forward
 * + backward of a full micro-batch per input slot; norm + decisions +
 * update) are captured in CUDA graphs once and replayed. */
/* POSIX: clock_gettime (common/timer.h) */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <string.h>

#include "common/check.h"
#include "common/log.h"
#include "common/timer.h"
#include "trainer/run/replica_internal.h"

/* Device views of a staged batch: the host batch's shapes over the slot's
 * device buffers. */
static rt_status stage(replica_t *r, int slot, const rt_batch_t *host, rt_batch_t *dev)
{
    const size_t in = tensor_bytes(&host->inputs), tg = tensor_bytes(&host->targets);
    void *din = NULL, *dtg = NULL;
    TRY(device_stager_put(r->stager, slot, host->inputs.data, in, host->targets.data, tg, &din,
                          &dtg));
    *dev = *host;
    dev->inputs.data = din;
    dev->targets.data = dtg;
    return RT_OK;
}

/* The batch must be what the model consumes: rows in 1..max_batch and the
 * shapes of model_io_t. */
static rt_status check_batch(const replica_t *r, const rt_batch_t *b)
{
    const int B = b->rows;
    CHECK_ARG(B >= 1 && B <= r->cfg.max_batch, "micro-batch of %d rows (max %d)", B,
              r->cfg.max_batch);
    const char *op = "replica_step";
    if (r->io.batch == RT_BATCH_ROWS) {
        TRY(tensor_expect(&b->inputs, RT_DTYPE_F32, 2, op, "batch inputs"));
        TRY(tensor_expect_dim(&b->inputs, 0, B, op, "batch inputs"));
        TRY(tensor_expect_dim(&b->inputs, 1, r->io.features, op, "batch inputs"));
        TRY(tensor_expect(&b->targets, RT_DTYPE_I32, 1, op, "batch labels"));
        return tensor_expect_dim(&b->targets, 0, B, op, "batch labels");
    }
    TRY(tensor_expect(&b->inputs, RT_DTYPE_I32, 2, op, "batch tokens"));
    TRY(tensor_expect_dim(&b->inputs, 0, B, op, "batch tokens"));
    TRY(tensor_expect_dim(&b->inputs, 1, r->io.context, op, "batch tokens"));
    TRY(tensor_expect(&b->targets, RT_DTYPE_I32, 2, op, "batch targets"));
    TRY(tensor_expect_dim(&b->targets, 0, B, op, "batch targets"));
    return tensor_expect_dim(&b->targets, 1, r->io.context, op, "batch targets");
}

/* Backward's hook while tracing: a span per stretch of backward between
 * two hooks (a layer, or a block), then the gradient sync's own hook. */
typedef struct {
    rt_trace_t *trace;
    grad_ready_fn inner;
    void *inner_ctx;
    double mark;
} traced_hook_t;

static rt_status traced_ready(void *ctx, int64_t ready_from)
{
    traced_hook_t *h = ctx;
    const double now = rt_now();
    rt_trace_span(h->trace, "compute", "backward", h->mark, now, "ready_from", ready_from);
    h->mark = now;
    return h->inner ? h->inner(h->inner_ctx, ready_from) : RT_OK;
}

/* First half of a micro-batch: (zero the gradients,) forward, the loss,
 * backward with loss scale 1/(accum * n); during the last micro-batch's
 * backward the gradient sync starts buckets as they become final, except
 * in a CUDA graph's capture (which holds compute only: the sync then
 * exchanges everything after the graph). */
static rt_status enqueue_micro(replica_t *r, const rt_batch_t *b, bool zero, bool last,
                               bool capture)
{
    const rt_ops_t *op = r->dev->ops;
    const double t0 = rt_now();
    if (zero)
        TRY(device_zero(r->dev, r->grads, sizeof(float) * (size_t)r->reg.total));
    rt_tensor_t losses;
    TRY(r->model.kind->forward(&r->model, b, &losses));
    const double n = (double)tensor_numel(&losses) * r->cfg.accum;
    TRY(op->step_add_loss(r->state, &losses, n, r->dev));
    const double t1 = rt_now();
    rt_trace_span(r->trace, "compute", "forward", t0, t1, NULL, 0);
    grad_ready_fn hook = NULL;
    if (last && r->sync && !capture) {
        grad_sync_begin(r->sync);
        hook = grad_sync_hook(r->sync);
    }
    if (!r->trace)
        return r->model.kind->backward(&r->model, b, (float)(1.0 / n), hook, r->sync);
    traced_hook_t h = {.trace = r->trace, .inner = hook, .inner_ctx = r->sync, .mark = t1};
    TRY(r->model.kind->backward(&r->model, b, (float)(1.0 / n), traced_ready, &h));
    const double t2 = rt_now();
    if (t2 > h.mark)
        rt_trace_span(r->trace, "compute", "backward", h.mark, t2, NULL, 0);
    return RT_OK;
}

/* Second half: the gradient norm, the step's decisions, the update. With
 * ZeRO-1 the gradient is final on this rank's shard only: the norm is the
 * sum over the ranks of their shards' sums of squares, and the updated
 * shards are gathered after the update. */
static rt_status enqueue_update(replica_t *r)
{
    const double t0 = rt_now();
    const bool zero = r->sync && grad_sync_zero(r->sync);
    const int64_t lo = r->opt.lo, hi = r->opt.hi;
    rt_tensor_t g = tensor_1d(r->grads + lo, RT_DTYPE_F32, hi - lo);
    if (hi > lo)
        TRY(r->dev->ops->sum_squares(&r->state->sumsq, &g, r->dev));
    if (zero)
        TRY(grad_sync_sum(r->sync, &r->state->sumsq));
    TRY(optimizer_prepare(&r->opt, r->state, r->cfg.grad_clip));
    TRY(optimizer_update(&r->opt, r->params, r->grads, r->state));
    rt_trace_span(r->trace, "compute", "optimizer", t0, rt_now(), NULL, 0);
    return zero ? grad_sync_gather(r->sync, r->params) : RT_OK;
}

/* The graph of a slot's first half (slot >= 0) or of the second half
 * (slot < 0), captured on first use from what the eager code enqueues.
 * false: run eager (a capture failed once; logged, never retried). */
static bool graph_get(replica_t *r, int slot, const rt_batch_t *b, rt_graph_t **out)
{
    rt_graph_t **g = slot >= 0 ? &r->graph_micro[slot] : &r->graph_update;
    if (*g) {
        *out = *g;
        return true;
    }
    if (r->graphs_failed)
        return false;
    rt_status st = device_capture_begin(r->dev);
    if (st == RT_OK) {
        rt_status body = slot >= 0 ? enqueue_micro(r, b, true, true, true) : enqueue_update(r);
        st = device_capture_end(r->dev, body, g);
    }
    if (st != RT_OK) {
        LOG_WARN("CUDA graph capture failed, running eager from now on: %s", rt_last_error());
        r->graphs_failed = true;
        *g = NULL;
        return false;
    }
    *out = *g;
    return true;
}

rt_status replica_read_result(replica_t *r, step_result_t *res)
{
    const double lr = res->lr;
    memset(res, 0, sizeof *res);
    res->lr = lr;
    TRY(replica_wait(r));
    TRY(device_download(r->dev, r->state_host, r->state, sizeof *r->state));
    const step_state_t h = *r->state_host;  /* before the reset (on the CPU it is the state) */
    TRY(r->dev->ops->step_reset_results(r->state, r->dev));
    res->have = true;
    res->loss_sum = h.loss_acc;
    res->steps = h.loss_steps;
    res->loss = h.loss_steps ? h.loss_acc / (double)h.loss_steps : NAN;
    res->grad_norm = h.last_norm;
    res->clip_coef = h.last_coef;
    res->skipped = h.nonfinite;
    res->opt_steps = h.t;
    res->first_skipped = -1;
    if (h.nonfinite > r->nonfinite_seen) {
        res->new_skipped = h.nonfinite - r->nonfinite_seen;
        res->first_skipped = h.first_nonfinite;
        r->nonfinite_seen = h.nonfinite;
        if (!r->cfg.skip_nonfinite)
            return rt_fail(RT_ERR_NUMERIC,
                           "step %lld: non-finite %s (loss %g, gradient norm %g); the update was "
                           "not applied; --skip-nonfinite skips such steps",
                           h.first_nonfinite + 1, isfinite(h.first_bad_loss) ? "gradient" : "loss",
                           h.first_bad_loss, h.first_bad_norm);
    }
    return RT_OK;
}

rt_status replica_step(replica_t *r, replica_batch_fn next, void *ctx, bool want_result,
                       step_result_t *res)
{
    CHECK_ARG(r && next && res, "replica_step: NULL argument");
    const replica_config_t *c = &r->cfg;
    const rt_ops_t *op = r->dev->ops;
    memset(res, 0, sizeof *res);
    res->lr = schedule_lr(&c->sched, r->step);
    /* The first steps run eager: module loading, cuBLAS's first calls, every
     * kernel's first launch and the scratch buffers' growth then happen
     * outside a capture. */
    const bool graphs = device_graphs_supported(r->dev) && !c->eager && c->accum == 1 &&
                        r->steps_run >= REPLICA_SLOTS;
    const double timeout = r->sync ? grad_sync_timeout(r->sync) : 0.0;
    bool used_graph = true;
    r->steps_run++;
    TRY(op->step_begin(r->state, (float)res->lr, (long long)r->step, r->dev));
    for (int k = 0; k < c->accum; k++) {
        rt_batch_t host, dev;
        TRY(next(ctx, k, &host));
        TRY(check_batch(r, &host));
        const int slot = (int)(r->micro++ % REPLICA_SLOTS);
        TRY(stage(r, slot, &host, &dev));
        rt_graph_t *g = NULL;
        if (graphs && host.rows == c->max_batch && graph_get(r, slot, &dev, &g)) {
            TRY(device_graph_launch(r->dev, g));
        } else {
            used_graph = false;
            TRY(enqueue_micro(r, &dev, k == 0, k == c->accum - 1, false));
        }
        TRY(device_stager_release(r->stager, slot, timeout));
    }
    if (r->sync) {
        TRY(grad_sync_finish(r->sync));
        TRY(op->step_loss_float(r->state, 1, r->dev));
        TRY(grad_sync_scalar(r->sync, &r->state->loss_f));
        TRY(op->step_loss_float(r->state, 0, r->dev));
    }
    rt_graph_t *g = NULL;
    /* ZeRO's update half holds collectives: it stays eager */
    const bool zero = r->sync && grad_sync_zero(r->sync);
    if (graphs && !zero && graph_get(r, -1, NULL, &g)) {
        TRY(device_graph_launch(r->dev, g));
    } else {
        used_graph = false;
        TRY(enqueue_update(r));
    }
    r->mode = used_graph ? "graph" : "eager";
    r->step++;
    return want_result ? replica_read_result(r, res) : RT_OK;
}
