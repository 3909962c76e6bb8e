/* replica.h - this rank's replica of the model and one training step for
 * every device: the model instance on its device, the parameter and
 * gradient arenas (the registry's layout; fp32 master weights, with room
 * for a compute-precision copy), the optimizer, the step state on the
 * device, and host copies of what checkpoints and exports read (on the CPU
 * device the host copies are the device arrays themselves).
 *
 * One step (replica_step): zero the gradients; for each of `accum`
 * micro-batches: stage the batch on the device, forward, add the loss,
 * backward with loss scale 1/(accum * n) (n = examples of the micro-batch);
 * during the last backward each gradient bucket is averaged across ranks
 * as soon as it is final (the gradient sync, when there are peers); then
 * the loss is averaged, the global gradient norm taken, the step's
 * decisions made (non-finite -> skipped, clip factor, AdamW scalars) and
 * the optimizer update applied. The final gradient is the mean over all
 * accum * world * B examples and every rank applies the same update.
 *
 * Nothing in a step waits for the device unless a result is asked for: on a
 * GPU the whole step (with accum 1 and a full batch; the all-reduce stays
 * outside) is captured once in CUDA graphs per input slot and replayed
 * after two eager warm-up steps, unless `eager`. Non-finite values: a step
 * whose loss or gradient norm is not finite is never applied (decided on
 * the device); the host learns of it when it next reads a result, which
 * then fails with RT_ERR_NUMERIC naming the step, unless skip_nonfinite. */
#ifndef RT_TRAINER_RUN_REPLICA_H
#define RT_TRAINER_RUN_REPLICA_H

#include <stdbool.h>
#include <stdint.h>

#include "common/status.h"
#include "trainer/model/model.h"
#include "trainer/optim/optim.h"
#include "trainer/optim/schedule.h"
#include "trainer/ops/device.h"
#include "trainer/run/grad_sync.h"

typedef struct {
    const model_spec_t *spec;  /* kept by pointer: must outlive the replica */
    rt_device_t *dev;          /* kept by pointer */
    int max_batch;             /* rows per micro-batch */
    optim_config_t optim;
    schedule_t sched;
    double grad_clip;          /* 0: off */
    int accum;                 /* micro-batches per step, >= 1 */
    bool skip_nonfinite;       /* skip such steps instead of failing */
    bool eager;                /* never capture CUDA graphs */
    rt_dtype compute_dtype;    /* the precision of the model's arithmetic: F32 */
    /* ZeRO-1: the optimizer holds state for (and updates) shard `shard` of
     * `shards` only (grad_plan_shard), the gradient sync bringing the other
     * shards' parameters; shards 0 or 1: the whole arena */
    int shards, shard;
} replica_config_t;

typedef struct {
    bool have;          /* false: no result was read this step */
    double loss_sum;    /* sum of the losses of the applied steps since the last read */
    int64_t steps;      /* applied steps in loss_sum */
    double loss;        /* loss_sum / steps (NaN when none) */
    double grad_norm;   /* the last step's, before clipping */
    float clip_coef;    /* the last step's */
    double lr;          /* this step's learning rate (always set) */
    int64_t skipped;    /* non-finite steps so far (never applied) */
    int64_t new_skipped;     /* of which since the last read */
    int64_t first_skipped;   /* the first of those (0-based), -1: none */
    int64_t opt_steps;  /* optimizer updates applied so far */
} step_result_t;

/* Supplies micro-batch k (0..accum) of the current step in host memory,
 * with the shapes and types the model consumes (model.h); the buffers must
 * stay valid until the next call (or the end of the step). */
typedef rt_status (*replica_batch_fn)(void *ctx, int k, rt_batch_t *batch);

typedef struct replica replica_t;

rt_status replica_create(replica_t **out, const replica_config_t *cfg);
void replica_destroy(replica_t *r);  /* NULL is ignored */

const param_registry_t *replica_registry(const replica_t *r);
model_t *replica_model(replica_t *r);
const model_io_t *replica_io(const replica_t *r);
rt_device_t *replica_device(const replica_t *r);
optimizer_t *replica_optimizer(replica_t *r);

/* Host copies, with the registry's layout: parameters, and optimizer state
 * array i (NULL when the optimizer has none), which covers only the
 * optimizer's shard [lo, hi) of the arena (replica_shard; index 0 is
 * element lo). */
float *replica_host_params(replica_t *r);
float *replica_host_state(replica_t *r, int i);
/* The arena range the optimizer updates: [0, total) without ZeRO. */
void replica_shard(const replica_t *r, int64_t *lo, int64_t *hi);
/* Bytes of optimizer state this replica holds (on its device). */
int64_t replica_optimizer_bytes(const replica_t *r);

/* The model's initialisation into the host parameters. */
void replica_init_params(replica_t *r, uint64_t seed);
/* Host -> device: parameters, optimizer state and the counters (updates
 * applied, steps skipped as non-finite). */
rt_status replica_upload(replica_t *r, int64_t opt_steps, int64_t skipped);
/* Device -> host: parameters, and the optimizer state when `optimizer`;
 * waits for every queued step first. */
rt_status replica_download(replica_t *r, bool optimizer);
/* Device -> the caller's host buffers (an asynchronous checkpoint's copy):
 * the parameters into params (the whole arena) and optimizer state array i
 * into state[i] (the shard [lo, hi), replica_shard, from state[i][0]);
 * waits for every queued step first. The replica's own host copies are
 * not touched. */
rt_status replica_copy_out(replica_t *r, float *params, float *const state[2]);

/* Gradient averaging across ranks (NULL: a single process). Not owned. */
void replica_set_sync(replica_t *r, grad_sync_t *sync);
/* The timeline the step's phases go to (NULL: none). Not owned. On a GPU
 * the spans time the enqueueing on the host, not the kernels. */
void replica_set_trace(replica_t *r, rt_trace_t *trace);

/* The 0-based index of the next step (the schedule's position). */
int64_t replica_step_index(const replica_t *r);
void replica_set_step_index(replica_t *r, int64_t step);

/* One step. want_result waits for it and fills *res (and fails on an
 * unreported non-finite step, see above); otherwise only res->lr is set. */
rt_status replica_step(replica_t *r, replica_batch_fn next, void *ctx, bool want_result,
                       step_result_t *res);
/* Waits for the queued steps and reads their results. */
rt_status replica_read_result(replica_t *r, step_result_t *res);
/* True where reading a result costs nothing (host memory): then a caller
 * reads every step, and a non-finite step fails at once. */
bool replica_results_cheap(const replica_t *r);
/* "graph" or "eager": how the last step ran. */
const char *replica_mode(const replica_t *r);

/* Waits for the device's queued work (through the gradient sync's deadline
 * when there are peers). */
rt_status replica_wait(replica_t *r);

#endif
