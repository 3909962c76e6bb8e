/* optim.c - optimizer state over an arena range, and the update enqueued
 * run by run of the registry's weight-decay rule (see optim.h). */
#include "trainer/optim/optim.h"

#include <string.h>

#include "common/check.h"

optim_config_t optim_config_default(optim_kind kind)
{
    optim_config_t c = {.kind = kind, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    if (kind == OPTIM_ADAMW)
        c.weight_decay = 0.01f;
    return c;
}

rt_status optim_kind_parse(const char *name, optim_kind *out)
{
    if (!strcmp(name, "sgd"))
        *out = OPTIM_SGD;
    else if (!strcmp(name, "adamw"))
        *out = OPTIM_ADAMW;
    else
        return rt_fail(RT_ERR_USAGE, "unknown optimizer '%s' (sgd or adamw)", name);
    return RT_OK;
}

const char *optim_kind_name(optim_kind kind)
{
    return kind == OPTIM_ADAMW ? "adamw" : "sgd";
}

int optim_state_count(const optim_config_t *cfg)
{
    if (cfg->kind == OPTIM_ADAMW)
        return 2;
    return cfg->momentum != 0.0f ? 1 : 0;
}

rt_status optimizer_create(optimizer_t *o, const optim_config_t *cfg, rt_device_t *dev,
                           const param_registry_t *reg, int64_t lo, int64_t hi)
{
    memset(o, 0, sizeof *o);
    CHECK_ARG(dev && reg, "optimizer_create: NULL argument");
    CHECK_ARG(lo >= 0 && lo <= hi && hi <= reg->total, "optimizer_create: range [%lld, %lld) of %lld",
              (long long)lo, (long long)hi, (long long)reg->total);
    o->cfg = *cfg;
    o->dev = dev;
    o->reg = reg;
    o->lo = lo;
    o->hi = hi;
    for (int i = 0; i < optim_state_count(cfg); i++) {
        /* an empty shard (a tiny arena over many ranks) still gets a buffer */
        const size_t n = hi > lo ? (size_t)(hi - lo) : 1;
        rt_status st = device_alloc(dev, (void **)&o->state[i], sizeof(float) * n,
                                    "optimizer state");
        if (st != RT_OK) {
            optimizer_free(o);
            return st;
        }
    }
    return RT_OK;
}

void optimizer_free(optimizer_t *o)
{
    for (int i = 0; i < 2; i++)
        if (o->dev)
            device_free(o->dev, o->state[i]);
    o->state[0] = o->state[1] = NULL;
}

/* Whether arena element x takes weight decay: the rule of the entry that
 * holds x or, in the gap before an entry, of that entry. Gaps are zero and
 * stay zero under either rule, so a run may include them. */
static bool decays_at(const param_registry_t *reg, int *entry, int64_t x)
{
    while (*entry < reg->count - 1 &&
           reg->entries[*entry].offset + reg->entries[*entry].numel <= x)
        (*entry)++;
    return reg->count == 0 || reg->entries[*entry].decay;
}

/* One kernel call over [a, b) of the arena with decay on or off. */
static rt_status update_run(optimizer_t *o, float *params, const float *grads,
                            const step_state_t *state, int64_t a, int64_t b, bool decay)
{
    const optim_config_t *c = &o->cfg;
    const rt_ops_t *op = o->dev->ops;
    const int64_t n = b - a, s = a - o->lo;
    const float wd = decay ? c->weight_decay : 0.0f;
    rt_tensor_t p = tensor_1d(params + a, RT_DTYPE_F32, n);
    rt_tensor_t g = tensor_1d((float *)grads + a, RT_DTYPE_F32, n);
    if (c->kind == OPTIM_ADAMW) {
        rt_tensor_t m = tensor_1d(o->state[0] + s, RT_DTYPE_F32, n);
        rt_tensor_t v = tensor_1d(o->state[1] + s, RT_DTYPE_F32, n);
        return op->adamw_update(&p, &m, &v, &g, c->beta1, c->beta2, c->eps, wd, &state->opt,
                                o->dev);
    }
    rt_tensor_t buf = tensor_1d(o->state[0] ? o->state[0] + s : NULL, RT_DTYPE_F32, n);
    return op->sgd_update(&p, o->state[0] ? &buf : NULL, &g, c->momentum, wd, &state->opt,
                          o->dev);
}

rt_status optimizer_update(optimizer_t *o, float *params, const float *grads,
                           const step_state_t *state)
{
    int entry = 0;
    int64_t a = o->lo;
    while (a < o->hi) {
        bool decay = decays_at(o->reg, &entry, a);
        /* extend the run over following entries with the same rule */
        int e = entry;
        int64_t b = o->hi;
        while (e + 1 < o->reg->count && o->reg->entries[e + 1].offset < o->hi) {
            if (o->reg->entries[e + 1].decay != decay) {
                b = o->reg->entries[e + 1].offset;
                break;
            }
            e++;
        }
        if (b > o->hi)
            b = o->hi;
        TRY(update_run(o, params, grads, state, a, b, decay));
        a = b;
    }
    return RT_OK;
}

rt_status optimizer_prepare(optimizer_t *o, step_state_t *state, double max_norm)
{
    const optim_config_t *c = &o->cfg;
    return o->dev->ops->step_finalize(state, max_norm, c->kind == OPTIM_ADAMW, c->beta1, c->beta2,
                                      o->dev);
}
