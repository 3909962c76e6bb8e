/* optim.c - optimizer state and the fused update loops of op_cpu.c. */
#include "trainer/optim.h"

#include <string.h>

#include "common/check.h"
#include "trainer/op.h"
#include "trainer/tensor.h"

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

rt_status optimizer_create(optimizer_t *o, const optim_config_t *cfg, int64_t n)
{
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->n = n;
    bool need0 = cfg->kind == OPTIM_ADAMW || cfg->momentum != 0.0f;
    if (need0)
        TRY(tensor_alloc_floats(&o->state0, n));
    if (cfg->kind == OPTIM_ADAMW) {
        rt_status st = tensor_alloc_floats(&o->state1, n);
        if (st != RT_OK) {
            optimizer_free(o);
            return st;
        }
    }
    return RT_OK;
}

void optimizer_free(optimizer_t *o)
{
    tensor_free_floats(o->state0);
    tensor_free_floats(o->state1);
    o->state0 = o->state1 = NULL;
}

void optimizer_step(optimizer_t *o, float *params, const float *grads, float lr)
{
    o->step++;
    const optim_config_t *c = &o->cfg;
    if (c->kind == OPTIM_ADAMW)
        adamw_step_cpu(params, o->state0, o->state1, grads, o->n, lr, c->beta1, c->beta2, c->eps,
                       c->weight_decay, o->step);
    else
        sgd_step_cpu(params, o->state0, grads, o->n, lr, c->momentum, c->weight_decay);
}
