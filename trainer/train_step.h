/* train_step.h - one optimisation step of data-parallel training:
 *   zero gradients; for each of `accum` micro-batches: forward, backward with
 *   loss scale 1/(accum * B); during the last backward, each gradient bucket
 *   is averaged across ranks (the reduce callback) as soon as backward has
 *   finished it; then the global gradient norm, the non-finite check,
 *   clipping, the learning rate of this step, and the optimizer update.
 * The final gradient is therefore the mean over all accum * world * B
 * samples, and every rank applies the same update to the same parameters.
 *
 * The reduce callback is the only link to the other ranks (the trainer does
 * not depend on MPI): it must replace buf[0..count) with the average of that
 * buffer across ranks, the same count in the same order on every rank. A
 * NULL callback means a single process. The reduce may only start the
 * average (a nonblocking all-reduce): then `wait` must complete every
 * started one; it is called once after the last bucket. */
#ifndef RT_TRAINER_TRAIN_STEP_H
#define RT_TRAINER_TRAIN_STEP_H

#include <stdbool.h>
#include <stdint.h>

#include "common/status.h"
#include "trainer/mlp.h"
#include "trainer/optim.h"
#include "trainer/schedule.h"

typedef rt_status (*grad_reduce_fn)(void *ctx, float *buf, int64_t count);
typedef rt_status (*grad_wait_fn)(void *ctx);

typedef struct {
    mlp_t *model;
    optimizer_t *opt;
    schedule_t sched;
    double grad_clip;         /* 0: off */
    int accum;                /* micro-batches per step, >= 1 */
    bool skip_nonfinite;      /* skip the update instead of failing */
    int64_t bucket_floats;    /* gradient bucket size for the reduce */
    grad_reduce_fn reduce;
    grad_wait_fn wait;        /* NULL: reduce is synchronous */
    void *reduce_ctx;
    int64_t step;             /* steps taken (the next step's 0-based index) */
    int64_t skipped;          /* steps skipped for non-finite values */
    /* internal: the next bucket to reduce during this backward */
    int64_t next_bucket;
} train_step_t;

typedef struct {
    double loss;       /* mean loss over the global batch (all ranks) */
    double grad_norm;  /* before clipping */
    double lr;
    float clip_coef;
    bool skipped;      /* non-finite, update skipped (skip_nonfinite) */
} step_result_t;

/* Supplies micro-batch k (0..accum) of the current step: *inputs [B, in],
 * *labels [B], *B rows (the same B on every rank and micro-batch). */
typedef rt_status (*batch_fn)(void *ctx, int k, const float **inputs,
                              const int32_t **labels, int *B);

void train_step_init(train_step_t *t, mlp_t *model, optimizer_t *opt);

/* Runs one step; on a non-finite loss or gradient fails with RT_ERR_NUMERIC
 * naming the step, or with skip_nonfinite leaves the parameters unchanged
 * and sets result->skipped. */
rt_status train_step_run(train_step_t *t, batch_fn next, void *next_ctx, step_result_t *result);

#endif
