/* optim.h - optimizers over a whole parameter arena with PyTorch's
 * semantics: SGD with momentum (torch.optim.SGD, dampening 0, no nesterov)
 * and AdamW (torch.optim.AdamW, amsgrad off). The state (momentum buffer, or
 * first and second moments, and the step count) has the arena's layout, so a
 * checkpoint can store it by parameter name. */
#ifndef RT_TRAINER_OPTIM_H
#define RT_TRAINER_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "common/status.h"

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

typedef struct {
    optim_config_t cfg;
    int64_t n;
    float *state0;   /* SGD momentum buffer, AdamW first moment */
    float *state1;   /* AdamW second moment */
    int64_t step;    /* updates applied so far */
} optimizer_t;

rt_status optimizer_create(optimizer_t *o, const optim_config_t *cfg, int64_t n);
void optimizer_free(optimizer_t *o);

/* One update of params[0..n) with grads and learning rate lr. */
void optimizer_step(optimizer_t *o, float *params, const float *grads, float lr);

#endif
