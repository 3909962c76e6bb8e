/* replica.c - a replica's arenas, model, optimizer and step state on its
 * device, and the copies between them and the host (see replica.h). */
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "trainer/run/replica_internal.h"

static bool on_host(const replica_t *r)
{
    return device_is_host(r->dev);
}

/* Bytes of one full micro-batch's inputs and targets, from the model's io. */
static rt_status batch_bytes(replica_t *r)
{
    const size_t B = (size_t)r->cfg.max_batch;
    switch (r->io.batch) {
    case RT_BATCH_ROWS:
        r->input_bytes = B * (size_t)r->io.features * sizeof(float);
        r->target_bytes = B * sizeof(int32_t);
        return RT_OK;
    case RT_BATCH_TOKENS:
        r->input_bytes = B * (size_t)r->io.context * sizeof(int32_t);
        r->target_bytes = r->input_bytes;
        return RT_OK;
    }
    return rt_fail(RT_ERR_INVALID, "model %s: unknown batch kind %d", r->cfg.spec->text,
                   (int)r->io.batch);
}

static rt_status replica_init(replica_t *r)
{
    const replica_config_t *c = &r->cfg;
    CHECK_ARG(c->compute_dtype == RT_DTYPE_F32, "compute precision %s is not supported yet (f32)",
              rt_dtype_name(c->compute_dtype));
    const model_kind_t *k = c->spec->kind;
    k->describe(c->spec->cfg, &r->io);
    TRY(k->declare(c->spec->cfg, &r->reg));
    CHECK_ARG(r->reg.total > 0, "model %s has no parameters", c->spec->text);
    TRY(batch_bytes(r));
    const size_t arena = sizeof(float) * (size_t)r->reg.total;
    TRY(device_alloc(r->dev, (void **)&r->params, arena, "parameters"));
    TRY(device_alloc(r->dev, (void **)&r->grads, arena, "gradients"));
    int64_t lo = 0, hi = r->reg.total;
    if (c->shards > 1) {
        CHECK_ARG(c->shard >= 0 && c->shard < c->shards, "replica: shard %d of %d", c->shard,
                  c->shards);
        grad_plan_shard(r->reg.total, c->shards, c->shard, &lo, &hi);
    }
    TRY(optimizer_create(&r->opt, &c->optim, r->dev, &r->reg, lo, hi));
    const size_t state_bytes = sizeof(float) * (size_t)(hi - lo);
    TRY(device_alloc(r->dev, (void **)&r->state, sizeof *r->state, "step state"));
    if (on_host(r)) {
        r->state_host = r->state;
        r->host_params = r->params;
        for (int i = 0; i < 2; i++)
            r->host_state[i] = r->opt.state[i];
    } else {
        TRY(host_alloc((void **)&r->state_host, sizeof *r->state_host));
        TRY(host_alloc((void **)&r->host_params, arena));
        for (int i = 0; i < optim_state_count(&c->optim); i++)
            TRY(host_alloc((void **)&r->host_state[i], state_bytes ? state_bytes : 1));
    }
    /* the step state starts clean: no step, nothing non-finite */
    memset(r->state_host, 0, sizeof *r->state_host);
    r->state_host->first_nonfinite = -1;
    TRY(device_upload(r->dev, r->state, r->state_host, sizeof *r->state));
    TRY(model_open(&r->model, c->spec, &r->reg, r->dev, r->compute ? r->compute : r->params,
                   r->grads, c->max_batch));
    r->model_open = true;
    TRY(device_stager_create(r->dev, REPLICA_SLOTS, r->input_bytes, r->target_bytes,
                             &r->stager));
    r->mode = "none";
    return RT_OK;
}

rt_status replica_create(replica_t **out, const replica_config_t *cfg)
{
    CHECK_ARG(out && cfg && cfg->spec && cfg->spec->kind && cfg->dev, "replica_create: NULL argument");
    CHECK_ARG(cfg->max_batch >= 1 && cfg->accum >= 1, "replica_create: batch %d, accum %d",
              cfg->max_batch, cfg->accum);
    *out = NULL;
    replica_t *r = calloc(1, sizeof *r);
    CHECK_ALLOC(r, sizeof *r);
    r->cfg = *cfg;
    r->dev = cfg->dev;
    rt_status st = replica_init(r);
    if (st != RT_OK) {
        replica_destroy(r);
        return st;
    }
    *out = r;
    return RT_OK;
}

void replica_destroy(replica_t *r)
{
    if (!r)
        return;
    for (int k = 0; k < REPLICA_SLOTS; k++)
        device_graph_free(r->dev, r->graph_micro[k]);
    device_graph_free(r->dev, r->graph_update);
    device_stager_destroy(r->stager);
    if (r->model_open)
        model_close(&r->model);
    if (!on_host(r)) {
        host_free(r->state_host);
        host_free(r->host_params);
        for (int i = 0; i < 2; i++)
            host_free(r->host_state[i]);
    }
    device_free(r->dev, r->state);
    optimizer_free(&r->opt);
    device_free(r->dev, r->grads);
    device_free(r->dev, r->params);
    device_free(r->dev, r->compute);
    param_registry_free(&r->reg);
    free(r);
}

const param_registry_t *replica_registry(const replica_t *r)
{
    return &r->reg;
}

model_t *replica_model(replica_t *r)
{
    return &r->model;
}

const model_io_t *replica_io(const replica_t *r)
{
    return &r->io;
}

rt_device_t *replica_device(const replica_t *r)
{
    return r->dev;
}

optimizer_t *replica_optimizer(replica_t *r)
{
    return &r->opt;
}

float *replica_host_params(replica_t *r)
{
    return r->host_params;
}

float *replica_host_state(replica_t *r, int i)
{
    return i >= 0 && i < 2 ? r->host_state[i] : NULL;
}

void replica_shard(const replica_t *r, int64_t *lo, int64_t *hi)
{
    *lo = r->opt.lo;
    *hi = r->opt.hi;
}

int64_t replica_optimizer_bytes(const replica_t *r)
{
    return (int64_t)optim_state_count(&r->cfg.optim) * (r->opt.hi - r->opt.lo) *
           (int64_t)sizeof(float);
}

void replica_init_params(replica_t *r, uint64_t seed)
{
    r->cfg.spec->kind->init(r->cfg.spec->cfg, &r->reg, r->host_params, seed);
}

void replica_set_sync(replica_t *r, grad_sync_t *sync)
{
    r->sync = sync;
}

void replica_set_trace(replica_t *r, rt_trace_t *trace)
{
    r->trace = trace;
}

int64_t replica_step_index(const replica_t *r)
{
    return r->step;
}

void replica_set_step_index(replica_t *r, int64_t step)
{
    r->step = step;
}

bool replica_results_cheap(const replica_t *r)
{
    return on_host(r);
}

const char *replica_mode(const replica_t *r)
{
    return r->mode;
}

rt_status replica_wait(replica_t *r)
{
    if (r->sync)
        return grad_sync_wait(r->sync);
    return device_sync(r->dev);
}

rt_status replica_upload(replica_t *r, int64_t opt_steps, int64_t skipped)
{
    const size_t arena = sizeof(float) * (size_t)r->reg.total;
    TRY(replica_wait(r));
    TRY(device_upload(r->dev, r->params, r->host_params, arena));
    const size_t state = sizeof(float) * (size_t)(r->opt.hi - r->opt.lo);
    for (int i = 0; state && i < optim_state_count(&r->cfg.optim); i++)
        TRY(device_upload(r->dev, r->opt.state[i], r->host_state[i], state));
    TRY(device_download(r->dev, r->state_host, r->state, sizeof *r->state));
    r->state_host->t = opt_steps;
    r->state_host->nonfinite = skipped;
    r->state_host->first_nonfinite = -1;
    r->state_host->loss_acc = 0.0;
    r->state_host->loss_steps = 0;
    r->nonfinite_seen = skipped;
    return device_upload(r->dev, r->state, r->state_host, sizeof *r->state);
}

rt_status replica_copy_out(replica_t *r, float *params, float *const state[2])
{
    TRY(replica_wait(r));
    TRY(device_download(r->dev, params, r->params, sizeof(float) * (size_t)r->reg.total));
    const size_t bytes = sizeof(float) * (size_t)(r->opt.hi - r->opt.lo);
    for (int i = 0; bytes && i < optim_state_count(&r->cfg.optim); i++)
        TRY(device_download(r->dev, state[i], r->opt.state[i], bytes));
    return RT_OK;
}

rt_status replica_download(replica_t *r, bool optimizer)
{
    const size_t arena = sizeof(float) * (size_t)r->reg.total;
    TRY(replica_wait(r));
    TRY(device_download(r->dev, r->host_params, r->params, arena));
    const size_t state = sizeof(float) * (size_t)(r->opt.hi - r->opt.lo);
    for (int i = 0; optimizer && state && i < optim_state_count(&r->cfg.optim); i++)
        TRY(device_download(r->dev, r->host_state[i], r->opt.state[i], state));
    return RT_OK;
}
