/* grad_sync.h - the gradient's exchange across ranks, one component for
 * every model and device, following a bucket plan (trainer/optim/
 * grad_plan.h): buckets over the gradient arena, the last first, each
 * started the moment backward has finished its last gradient and completed
 * before the optimizer reads it.
 *
 *   host memory: each bucket is a nonblocking ring collective
 *     (collectives/coll.h) started from backward's hook and progressed
 *     while backward computes, by one of three overlap modes:
 *       thread  a progress thread owns the communicator from the step's
 *               last backward to its end: backward's hook only publishes
 *               how far the gradient is final, and the thread starts
 *               buckets and polls them (MPI_THREAD_SERIALIZED: the two
 *               threads never call MPI at the same time);
 *       layers  the hook itself starts buckets and polls those in flight,
 *               between layers, on the computing thread;
 *       off     nothing during backward: every bucket starts at finish.
 *   device memory: our device ring over NCCL send/receive
 *     (collectives/nccl_comm.h). With an overlap (any but off) each bucket
 *     is enqueued by backward's hook on a side stream of the device
 *     (device_side_t), ordered after the backward kernels enqueued so far
 *     by an event, and the device's stream waits for the side stream at
 *     finish: the GPU runs the exchange while backward's later kernels
 *     compute. A step replayed from a CUDA graph has no hooks (the capture
 *     holds compute only): its exchange is one call over the whole arena
 *     on the device's stream after the graph, as with overlap off. Waits
 *     poll with a deadline and abort NCCL on timeout, so a dead peer never
 *     hangs a rank.
 *
 * Two kinds of exchange:
 *   all-reduce  every rank ends with the whole averaged gradient;
 *   ZeRO-1      each bucket is reduce-scattered over the ranks' shards
 *               (grad_plan_shard), so a rank ends with the averaged
 *               gradient of its own shard only (the rest of its arena is
 *               scratch); after the update of its shard, gather brings
 *               every rank's updated parameters to every rank.
 *
 * The time the calling thread spends waiting for communication (what was
 * not hidden behind compute) is summed for the step metrics.
 * Every rank must make the same calls in the same order. */
#ifndef RT_TRAINER_RUN_GRAD_SYNC_H
#define RT_TRAINER_RUN_GRAD_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "collectives/coll.h"
#include "common/status.h"
#include "common/trace.h"
#include "trainer/model/model.h"
#include "trainer/optim/grad_plan.h"
#include "trainer/ops/device.h"

typedef enum { SYNC_OVERLAP_THREAD, SYNC_OVERLAP_LAYERS, SYNC_OVERLAP_OFF } sync_overlap;

/* "thread", "layers" or "off" (RT_ERR_USAGE naming them otherwise). */
rt_status sync_overlap_parse(const char *name, sync_overlap *out);
const char *sync_overlap_name(sync_overlap o);

typedef struct {
    grad_plan_t plan;
    sync_overlap overlap;  /* host: thread/layers/off; device: off, or a side stream */
    bool zero;             /* ZeRO-1: reduce-scatter to shards, gather the parameters */
    rt_trace_t *trace;     /* each bucket's communication as a span; NULL: none */
} grad_sync_config_t;

typedef struct grad_sync grad_sync_t;

/* Host buckets over comm for the gradient arena `grads` (host memory). The
 * thread mode falls back to layers, with a warning, where MPI does not
 * provide MPI_THREAD_SERIALIZED. */
rt_status grad_sync_create_host(grad_sync_t **out, coll_comm_t *comm, const grad_sync_config_t *cfg,
                                float *grads);
/* The device ring for `grads` (memory of dev, a CUDA device): collective
 * over MPI_COMM_WORLD (the NCCL id goes out by MPI_Bcast); timeout_s is the
 * deadline of every wait. */
rt_status grad_sync_create_device(grad_sync_t **out, rt_device_t *dev, const grad_sync_config_t *cfg,
                                  float *grads, double timeout_s);
void grad_sync_destroy(grad_sync_t *s);  /* NULL is ignored */
/* After a failure on this rank: aborts outstanding device collectives so
 * that peers see an error instead of waiting. */
void grad_sync_abort(grad_sync_t *s);

/* The overlap actually used (thread may have fallen back to layers), and
 * in words: "thread", "layers", "off", or on a device "side stream". */
sync_overlap grad_sync_overlap(const grad_sync_t *s);
const char *grad_sync_overlap_text(const grad_sync_t *s);
/* ZeRO-1's shard of this rank, [*lo, *hi); the whole arena otherwise. */
bool grad_sync_zero(const grad_sync_t *s);
void grad_sync_shard(const grad_sync_t *s, int64_t *lo, int64_t *hi);

/* The hook for backward's grad_ready_fn (NULL when this sync does not
 * overlap with backward). grad_sync_begin must come before the last
 * micro-batch's backward of every step, hook or not; from begin to finish
 * the calling thread must not use MPI (the progress thread may). */
grad_ready_fn grad_sync_hook(const grad_sync_t *s);
void grad_sync_begin(grad_sync_t *s);
/* After backward: every bucket reduced (host) or enqueued (device). */
rt_status grad_sync_finish(grad_sync_t *s);
/* Averages one float in the memory the gradient is in. */
rt_status grad_sync_scalar(grad_sync_t *s, float *x);
/* ZeRO-1: sums a double (the shards' gradient sums of squares) over the
 * ranks, in the memory the gradient is in. */
rt_status grad_sync_sum(grad_sync_t *s, double *x);
/* ZeRO-1: every rank's shard of `params` (an arena like the gradient's,
 * in the same memory) to every rank. */
rt_status grad_sync_gather(grad_sync_t *s, float *params);
/* Waits for everything enqueued on the device (with the deadline); nothing
 * to do for host memory. */
rt_status grad_sync_wait(grad_sync_t *s);
/* The deadline of waits, seconds. */
double grad_sync_timeout(const grad_sync_t *s);
/* Seconds the calling thread spent in communication since the last call
 * (exposed: not hidden behind compute), and the steps that synced. */
double grad_sync_take_exposed(grad_sync_t *s, int64_t *steps);

/* Called as each bucket's reduction starts (host) or is enqueued (device),
 * with the bucket's arena range: for tests. NULL: none. With the thread
 * overlap it runs on the progress thread. */
typedef void (*grad_sync_observer_fn)(void *ctx, int64_t lo, int64_t hi);
void grad_sync_observe(grad_sync_t *s, grad_sync_observer_fn fn, void *ctx);

#endif
