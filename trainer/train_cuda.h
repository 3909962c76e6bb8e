/* train_cuda.h - the training step on a CUDA device: the same step as
 * train_step.h (zero gradients; forward/backward over `accum` micro-batches
 * with loss scale 1/(accum*B); gradient and loss averaged across ranks;
 * global norm, non-finite check, clipping; the optimizer update), with the
 * parameters, gradients and optimizer moments in device arenas that have
 * the host param_set's layout (one cudaMalloc each), so a checkpoint or an
 * export is the arena copied back to the host (gpu_train_download).
 *
 * Nothing in a step waits for the device unless a result is asked for: the
 * learning rate goes to the device as a kernel argument, the clip factor,
 * the non-finite check and the optimizer's step count t live on the device,
 * and the loss is summed there between the steps whose result the caller
 * reads. With accum == 1 and a full batch the whole step (forward, backward,
 * clip, update; the all-reduce stays outside) is captured once in a CUDA
 * graph per input slot and replayed (after two eager warm-up steps); `eager`
 * launches kernel by kernel.
 *
 * Non-finite values: a step whose loss or gradient norm is not finite is
 * never applied (decided on the device). The host learns of it when it next
 * reads a result: without skip_nonfinite that read fails with RT_ERR_NUMERIC
 * naming the first such step.
 *
 * Batches: `next` returns host pointers; they are copied on a separate copy
 * stream into one of two device input slots while the previous step still
 * computes. Pointers from gpu_train_host_alloc (pinned) make the copy truly
 * asynchronous; `next`'s buffer is only read until the call that asks for the
 * following micro-batch (or until gpu_train_step returns).
 *
 * In the CPU-only build every function returns RT_ERR_UNSUPPORTED. */
#ifndef RT_TRAINER_TRAIN_CUDA_H
#define RT_TRAINER_TRAIN_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "trainer/mlp.h"
#include "trainer/optim.h"
#include "trainer/train_step.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gpu_train gpu_train_t;

typedef struct {
    int device;   /* CUDA device ordinal */
    bool tf32;    /* allow TF32 tensor cores in the matrix products */
    bool eager;   /* never use CUDA graphs (debugging) */
} gpu_train_config_t;

/* Averages dev_buf[0..count) (device floats) across ranks, enqueued on
 * `stream` (a cudaStream_t); same count, same order on every rank. */
typedef rt_status (*gpu_reduce_fn)(void *ctx, float *dev_buf, int64_t count, void *stream);
/* Waits for everything on `stream`, with a deadline (a dead peer must not
 * hang the rank): used instead of cudaStreamSynchronize once reduce is set. */
typedef rt_status (*gpu_wait_fn)(void *ctx, void *stream);

typedef struct {
    bool have;          /* false: no result was asked for this step */
    double loss;        /* mean loss of the applied steps since the last result */
    int64_t steps;      /* applied steps that loss averages */
    double grad_norm;   /* last step, before clipping */
    float clip_coef;    /* last step */
    double lr;          /* this step */
    int64_t skipped;    /* non-finite steps so far (never applied) */
    int64_t opt_steps;  /* optimizer updates applied so far (AdamW's t) */
} gpu_step_result_t;

/* Device arenas for `model`'s layout and batch size and `opt`'s kind and
 * hyperparameters; the host structures are only read. */
rt_status gpu_train_create(gpu_train_t **out, const mlp_t *model, const optimizer_t *opt,
                           const gpu_train_config_t *cfg);
void gpu_train_destroy(gpu_train_t *g);

/* Gradient averaging across ranks (NULL: single process); wait may be NULL
 * (cudaStreamSynchronize). Input-slot waits then poll with a deadline of
 * timeout_s seconds (RT_ERR_TIMEOUT). */
void gpu_train_set_reduce(gpu_train_t *g, gpu_reduce_fn reduce, gpu_wait_fn wait, void *ctx,
                          double timeout_s);

/* The cudaStream_t the steps run on, as void*. */
void *gpu_train_stream(gpu_train_t *g);
/* "graph" or "eager": how the last step ran. */
const char *gpu_train_mode(const gpu_train_t *g);

/* Host -> device: parameters, optimizer state and step count (opt may be
 * NULL: zero state, t = 0). Waits for the copies. */
rt_status gpu_train_upload(gpu_train_t *g, const mlp_t *model, const optimizer_t *opt);
/* Device -> host: parameters, and optimizer state and step count when opt is
 * not NULL. Waits for every queued step first. */
rt_status gpu_train_download(gpu_train_t *g, mlp_t *model, optimizer_t *opt);

/* One step with t's schedule, grad_clip, accum and skip_nonfinite; t->step
 * advances (t->skipped is updated when a result is read). want_result waits
 * for the step and fills *res; otherwise res->have is false and nothing
 * waits except the input copies. */
rt_status gpu_train_step(gpu_train_t *g, train_step_t *t, batch_fn next, void *next_ctx,
                         bool want_result, gpu_step_result_t *res);

/* Pinned host memory (cudaHostAlloc) for the loader's batch buffers:
 * signatures of loader_alloc_fn / loader_free_fn. ctx: NULL, or a pointer to
 * the int device ordinal to select first. NULL on failure. */
void *gpu_train_host_alloc(size_t bytes, void *ctx);
void gpu_train_host_free(void *ptr, void *ctx);

#ifdef __cplusplus
}
#endif

#endif
