/* grad_sync.h - averaging the gradient (and the step's loss) across ranks,
 * one component for every model and device, following a bucket plan
 * (trainer/optim/grad_plan.h):
 *   host memory: each bucket's nonblocking ring all-reduce
 *     (collectives/coll.h) starts the moment backward has finished it,
 *     during the last micro-batch's backward, and is progressed between
 *     layers; finish starts what is left and waits for all of them;
 *   device memory: our device ring over NCCL send/receive
 *     (collectives/nccl_comm.h) on the device's stream, the whole arena once
 *     after backward (no overlap with backward yet), and waits that poll
 *     with a deadline and abort NCCL on timeout, so a dead peer never hangs
 *     a rank.
 * Every rank must make the same calls in the same order. */
#ifndef RT_TRAINER_RUN_GRAD_SYNC_H
#define RT_TRAINER_RUN_GRAD_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "collectives/coll.h"
#include "common/status.h"
#include "trainer/model/model.h"
#include "trainer/optim/grad_plan.h"
#include "trainer/ops/device.h"

typedef struct grad_sync grad_sync_t;

/* Host buckets over comm for the gradient arena `grads` (host memory). */
rt_status grad_sync_create_host(grad_sync_t **out, coll_comm_t *comm, const grad_plan_t *plan,
                                float *grads);
/* The device ring for `grads` (memory of dev, a CUDA device): collective
 * over MPI_COMM_WORLD (the NCCL id goes out by MPI_Bcast); timeout_s is the
 * deadline of every wait. */
rt_status grad_sync_create_device(grad_sync_t **out, rt_device_t *dev, const grad_plan_t *plan,
                                  float *grads, double timeout_s);
void grad_sync_destroy(grad_sync_t *s);  /* NULL is ignored */
/* After a failure on this rank: aborts outstanding device collectives so
 * that peers see an error instead of waiting. */
void grad_sync_abort(grad_sync_t *s);

/* The hook for backward's grad_ready_fn (NULL when this sync does not
 * overlap with backward). grad_sync_begin must come before the last
 * micro-batch's backward of every step, hook or not. */
grad_ready_fn grad_sync_hook(const grad_sync_t *s);
void grad_sync_begin(grad_sync_t *s);
/* After backward: every bucket reduced (host) or enqueued (device). */
rt_status grad_sync_finish(grad_sync_t *s);
/* Averages one float in the memory the gradient is in. */
rt_status grad_sync_scalar(grad_sync_t *s, float *x);
/* Waits for everything enqueued on the device (with the deadline); nothing
 * to do for host memory. */
rt_status grad_sync_wait(grad_sync_t *s);
/* The deadline of waits, seconds. */
double grad_sync_timeout(const grad_sync_t *s);

/* Called as each bucket's reduction starts (host) or is enqueued (device),
 * with the bucket's arena range: for timelines and tests. NULL: none. */
typedef void (*grad_sync_observer_fn)(void *ctx, int64_t lo, int64_t hi);
void grad_sync_observe(grad_sync_t *s, grad_sync_observer_fn fn, void *ctx);

#endif
