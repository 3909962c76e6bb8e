/* train_device.h - where `ringtrain train` runs its steps: the --device
 * choice (auto: this rank's node-local GPU when one is visible, else the
 * CPU), and on a GPU the device step (trainer/train_cuda.h) with gradients
 * averaged by our NCCL ring (collectives/nccl_comm.h). cmd_train.c calls
 * these; with the CPU chosen, none of it is used. */
#ifndef RT_LAUNCH_TRAIN_DEVICE_H
#define RT_LAUNCH_TRAIN_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collectives/nccl_comm.h"
#include "common/status.h"
#include "trainer/mlp.h"
#include "trainer/optim.h"
#include "trainer/train_cuda.h"
#include "trainer/train_step.h"

typedef struct {
    int device;          /* CUDA ordinal, -1: the CPU */
    gpu_train_t *gpu;
    nccl_comm_t *nccl;
    double timeout_s;    /* collective deadline (RT_COLL_TIMEOUT, default 300) */
    int64_t skipped_seen;
} train_device_t;

/* Before MPI: "cuda" needs a visible device (else RT_ERR_USAGE, exit 2);
 * "auto" and "cpu" always pass. */
rt_status train_device_check_flag(const char *flag);

/* The device of this rank: cpu -> -1; cuda/auto -> node-local rank modulo
 * the visible devices (auto without one: -1). Writes a line saying what was
 * chosen and why into why. */
rt_status train_device_choose(const char *flag, int local_rank, int local_size, int *device,
                              char *why, size_t why_size);

/* The device step for this model and optimizer (device >= 0). */
rt_status train_device_open(train_device_t *d, int device, bool tf32, bool eager,
                            const mlp_t *model, const optimizer_t *opt);
/* Collective over MPI_COMM_WORLD when world > 1: the NCCL communicator and
 * the gradient average through nccl_allreduce_ring. Then uploads the
 * (broadcast) host parameters and optimizer state. */
rt_status train_device_start(train_device_t *d, int world, const mlp_t *model,
                             const optimizer_t *opt);

/* One step. On log steps (want_result) fills res (loss = mean of the applied
 * steps since the last log step, whose count goes to *steps) and waits;
 * otherwise res->loss is NaN and *steps 0. */
rt_status train_device_step(train_device_t *d, train_step_t *t, batch_fn next, void *next_ctx,
                            bool want_result, step_result_t *res, int64_t *steps);

/* Parameters (and the optimizer state when opt is not NULL) back to the host. */
rt_status train_device_download(train_device_t *d, mlp_t *model, optimizer_t *opt);

/* After a failure on this rank: aborts NCCL so that peers see an error. */
void train_device_abort(train_device_t *d);
void train_device_close(train_device_t *d);

#endif
