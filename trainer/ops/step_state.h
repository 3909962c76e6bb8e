/* step_state.h - the bookkeeping of training steps that lives on the device
 * the step runs on (host memory on the CPU, device memory on a GPU): this
 * step's loss and gradient sum of squares, the decisions taken from them
 * (skip a non-finite step, the clip factor, the optimizer's scalars), and
 * the running counters. Keeping it on the device means a GPU step never
 * waits for the host unless a result is asked for, and a step captured in a
 * CUDA graph once can be replayed: only the learning rate (a kernel
 * argument of step_begin) changes between steps.
 *
 * One layout for the C and CUDA compilers: plain scalars only. The rules
 * that fill it are in update_math.h, shared by both devices. */
#ifndef RT_TRAINER_OPS_STEP_STATE_H
#define RT_TRAINER_OPS_STEP_STATE_H

#ifdef __cplusplus
extern "C" {
#endif

/* What an optimizer kernel reads for one update (update_math.h fills it). */
typedef struct {
    float lr;        /* this step's learning rate */
    float coef;      /* clip factor applied to the gradient (1: none) */
    float neg_step;  /* AdamW: -lr / (1 - beta1^t) */
    float bc2_sqrt;  /* AdamW: sqrt(1 - beta2^t) */
    int skip;        /* non-finite step: leave everything unchanged */
    int pad_;
} optim_scalars_t;

typedef struct {
    /* this step */
    double step_loss;          /* sum over micro-batches of sum(losses) / (n * accum) */
    double sumsq;              /* gradient sum of squares (after the all-reduce) */
    long long step_index;      /* 0-based */
    float loss_f;              /* step_loss as float, the value the ranks average */
    float pad_;
    optim_scalars_t opt;
    /* since the last read of the results */
    double loss_acc;           /* sum of the applied steps' losses */
    long long loss_steps;      /* applied steps in loss_acc */
    double last_norm;          /* the last step's gradient norm */
    float last_coef;           /* the last step's clip factor */
    float pad2_;
    /* running */
    long long t;               /* optimizer updates applied */
    long long nonfinite;       /* steps never applied (non-finite), in all */
    /* since the last read of the results */
    long long first_nonfinite; /* 0-based index of the first non-finite step, -1: none */
    double first_bad_loss;     /* its loss and gradient norm, for the message */
    double first_bad_norm;
} step_state_t;

#ifdef __cplusplus
}
#endif

#endif
