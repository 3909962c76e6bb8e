/* ckpt_state.h - what a training checkpoint holds, as the list of named
 * arrays (ckpt_file.h) over the live training state: the parameters and
 * optimizer state (host copies, the registry's layout) and the scalars of
 * the session. The same list writes and reads, so a checkpoint can only
 * hold what a resume restores.
 *
 * Names (docs/FORMATS.md, "Checkpoint file"):
 *   params/<name>             float32, PyTorch state_dict names
 *   optimizer/m/<name>, optimizer/v/<name>   AdamW moments
 *   optimizer/momentum/<name> SGD momentum buffer (when momentum > 0)
 *   optimizer/step            int64, updates applied
 *   train/step                int64, steps run (skipped ones included)
 *   train/skipped             int64, steps skipped as non-finite
 *   train/loss_sum, train/loss_count   f64/int64, the loss accumulated since
 *                             the last metrics line (so the next line after a
 *                             resume equals the uninterrupted run's)
 *   data/seed, data/epoch     uint64/int64, the sampler's seed and epoch
 *   data/position             int64, samples of the global order consumed in
 *                             data/epoch (always a whole number of steps)
 *   data/batch, data/accum, data/world   int64, per-rank micro-batch rows,
 *                             micro-batches per step and ranks of the writer
 *   rng/init_seed             uint64, the seed of the parameter init (the
 *                             trainer draws no other random numbers) */
#ifndef RT_TRAINER_CKPT_CKPT_STATE_H
#define RT_TRAINER_CKPT_CKPT_STATE_H

#include <stdint.h>

#include "common/status.h"
#include "trainer/ckpt/ckpt_file.h"
#include "trainer/model/params.h"
#include "trainer/optim/optim.h"

/* The scalars of a checkpoint, read and written in place. */
typedef struct {
    int64_t step, opt_step, skipped;
    double loss_sum;
    int64_t loss_count;
    uint64_t data_seed;
    int64_t data_epoch, data_position;
    int64_t batch, accum, world;
    uint64_t init_seed;
} ckpt_scalars_t;

typedef struct {
    ckpt_array_t *arrays;
    char **names;       /* owned names of the per-parameter arrays */
    int n, capacity, nnames;
} ckpt_state_t;

/* The scalars only (what a run needs before it can size its model). */
rt_status ckpt_state_scalars(ckpt_state_t *l, ckpt_scalars_t *sc);
/* Everything: the parameters (params, host memory), the optimizer's state
 * arrays for its kind (state[i], host memory, the registry's layout) and
 * the scalars. The arrays point into those buffers. */
rt_status ckpt_state_all(ckpt_state_t *l, const param_registry_t *reg, float *params,
                         const optim_config_t *optim, float *const state[2], ckpt_scalars_t *sc);
/* Name of the first array of optimizer state array i for this optimizer
 * ("optimizer/m/<first parameter>"), to tell which optimizer wrote a file. */
void ckpt_state_optimizer_probe(const param_registry_t *reg, optim_kind kind, char *buf,
                                size_t size);
void ckpt_state_free(ckpt_state_t *l);

#endif
