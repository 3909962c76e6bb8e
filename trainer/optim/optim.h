/* optim.h - the optimizers, with PyTorch's semantics: SGD with momentum
 * (torch.optim.SGD, dampening 0, no nesterov) and AdamW (torch.optim.AdamW,
 * amsgrad off), plus gradient clipping by the global norm
 * (clip_grad_norm_). An optimizer updates one contiguous range [lo, hi) of
 * the parameter arena and holds state (momentum buffer, or first and second
 * moments) for that range only, on the device the arena is on; a replica
 * uses one over the whole arena, a sharded optimizer one per shard, with the
 * same code. The arithmetic is update_math.h's, one fused kernel per device
 * (trainer/ops); this layer decides what to call.
 *
 * Per-step scalars (learning rate, clip factor, skip, AdamW's step count
 * and bias corrections) come from the step state on the device
 * (trainer/ops/step_state.h), where the step's finalize op puts them, so
 * that a GPU step never waits for the host. Weight decay applies to the
 * parameters whose registry entry says so (the model's rule); the update
 * runs once per maximal run of entries with the same rule. */
#ifndef RT_TRAINER_OPTIM_OPTIM_H
#define RT_TRAINER_OPTIM_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "common/status.h"
#include "trainer/model/params.h"
#include "trainer/ops/device.h"
#include "trainer/ops/step_state.h"

typedef enum { OPTIM_SGD, OPTIM_ADAMW } optim_kind;

typedef struct {
    optim_kind kind;
    float momentum;      /* SGD */
    float weight_decay;  /* SGD: L2 added to the gradient; AdamW: decoupled */
    float beta1, beta2, eps;  /* AdamW */
} optim_config_t;

/* PyTorch's defaults: SGD momentum 0, wd 0; AdamW betas (0.9, 0.999),
 * eps 1e-8, wd 0.01. */
optim_config_t optim_config_default(optim_kind kind);
/* "sgd" or "adamw" */
rt_status optim_kind_parse(const char *name, optim_kind *out);
const char *optim_kind_name(optim_kind kind);
/* The optimizer's state arrays: 2 for AdamW (m, v), 1 for SGD with
 * momentum, 0 without. */
int optim_state_count(const optim_config_t *cfg);

typedef struct {
    optim_config_t cfg;
    rt_device_t *dev;
    const param_registry_t *reg;
    int64_t lo, hi;       /* the arena range updated */
    float *state[2];      /* device, hi - lo elements each: AdamW m, v; SGD momentum */
} optimizer_t;

/* State for [lo, hi) of reg's arena on dev (zeroed). */
rt_status optimizer_create(optimizer_t *o, const optim_config_t *cfg, rt_device_t *dev,
                           const param_registry_t *reg, int64_t lo, int64_t hi);
void optimizer_free(optimizer_t *o);

/* Enqueues one update of params[lo, hi) from grads[lo, hi) (device arenas
 * with the registry's layout, indexed from their start) with the scalars in
 * state->opt (device memory): skipped as a whole when state->opt.skip. */
rt_status optimizer_update(optimizer_t *o, float *params, const float *grads,
                           const step_state_t *state);

/* The step's decisions, enqueued after the gradient's sum of squares is in
 * state->sumsq: non-finite -> skip; clip factor for max_norm (0: off); the
 * update count and AdamW's scalars (update_math.h). */
rt_status optimizer_prepare(optimizer_t *o, step_state_t *state, double max_norm);

#endif
