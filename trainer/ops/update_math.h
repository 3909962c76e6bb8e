/* update_math.h - the arithmetic of one optimizer update, written once for
 * both devices (each function is host code in C and __host__ __device__
 * code under nvcc): the clip factor, the decision to skip a non-finite
 * step, AdamW's per-step scalars and the per-element SGD and AdamW rules.
 * The CPU loops (op_cpu.c) and the CUDA kernels (op_cuda.cu) call these, so
 * the formulas cannot drift apart.
 *
 * Semantics are PyTorch's, in its order of operations, with the scalars
 * formed in double as Python does and used as float32 by the tensor ops:
 *   clip (torch.nn.utils.clip_grad_norm_): coef = max_norm / (norm + 1e-6),
 *     the gradient scaled by coef when coef < 1;
 *   AdamW (torch.optim.AdamW, single-tensor path, amsgrad off):
 *     p *= 1 - lr*wd; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g;
 *     p += -(lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps), bcN = 1 - bN^t,
 *     t = 1-based count of applied updates;
 *   SGD (torch.optim.SGD, dampening 0, no nesterov): g += wd*p;
 *     buf = momentum*buf + g (buf starts at zero, which equals PyTorch's
 *     buf = g on the first step); p -= lr*buf; momentum 0 uses no buffer. */
#ifndef RT_TRAINER_OPS_UPDATE_MATH_H
#define RT_TRAINER_OPS_UPDATE_MATH_H

#include <math.h>

#include "trainer/ops/step_state.h"

#ifdef __CUDACC__
#define RT_HD __host__ __device__ __forceinline__
#else
#define RT_HD static inline
#endif

/* Clip factor for a gradient of this norm (1 when clipping is off or not
 * needed). */
RT_HD float update_clip_coef(double norm, double max_norm)
{
    if (max_norm > 0.0) {
        float c = (float)(max_norm / (norm + 1e-6));
        if (c < 1.0f)
            return c;
    }
    return 1.0f;
}

/* The scalars of AdamW's update number t (1-based) at learning rate lr. */
RT_HD void update_adamw_scalars(optim_scalars_t *s, float lr, float beta1, float beta2,
                                long long t)
{
    s->lr = lr;
    double bc1 = 1.0 - pow((double)beta1, (double)t);
    double bc2 = 1.0 - pow((double)beta2, (double)t);
    s->neg_step = (float)(-((double)lr / bc1));
    s->bc2_sqrt = (float)sqrt(bc2);
}

/* AdamW's decoupled weight-decay factor at learning rate lr: 1 - lr*wd
 * (per call, so that parameters without decay pass wd = 0). */
RT_HD float update_adamw_decay(float lr, float weight_decay)
{
    return (float)(1.0 - (double)lr * (double)weight_decay);
}

/* The decisions after the gradient is final (its sum of squares in
 * s->sumsq, the loss in s->step_loss): a non-finite step is counted and
 * skipped; otherwise the clip factor, the update count, the loss
 * accumulation and (adamw != 0) AdamW's scalars. */
RT_HD void update_finalize(step_state_t *s, double max_norm, int adamw, float beta1, float beta2)
{
    double norm = sqrt(s->sumsq);
    double loss = s->step_loss;
    s->last_norm = norm;
    if (!isfinite(loss) || !isfinite(norm)) {
        s->opt.skip = 1;
        if (s->first_nonfinite < 0) {
            s->first_nonfinite = s->step_index;
            s->first_bad_loss = loss;
            s->first_bad_norm = norm;
        }
        s->nonfinite++;
        s->opt.coef = 1.0f;
        s->last_coef = 1.0f;
        return;
    }
    s->opt.skip = 0;
    s->opt.coef = update_clip_coef(norm, max_norm);
    s->last_coef = s->opt.coef;
    s->t++;
    s->loss_acc += loss;
    s->loss_steps++;
    if (adamw)
        update_adamw_scalars(&s->opt, s->opt.lr, beta1, beta2, s->t);
}

/* One element of AdamW: returns the new parameter, updates *m and *v. */
RT_HD float update_adamw_element(float p, float *m, float *v, float g, float beta1, float beta2,
                                 float eps, float one_m_b1, float one_m_b2, float decay,
                                 const optim_scalars_t *s)
{
    g *= s->coef;  /* exact when coef is 1; no branch, so the CPU loop vectorises */
    float pd = p * decay;
    float mi = *m * beta1 + one_m_b1 * g;
    float vi = *v * beta2 + one_m_b2 * (g * g);
    float denom = sqrtf(vi) / s->bc2_sqrt + eps;
    *m = mi;
    *v = vi;
    return pd + s->neg_step * (mi / denom);
}

/* One element of SGD: returns the new parameter; buf is NULL without
 * momentum. */
RT_HD float update_sgd_element(float p, float *buf, float g, float momentum, float weight_decay,
                               const optim_scalars_t *s)
{
    g *= s->coef;
    float d = g + weight_decay * p;
    if (buf) {
        float b = *buf * momentum + d;
        *buf = b;
        d = b;
    }
    return p + -s->lr * d;
}

#endif
