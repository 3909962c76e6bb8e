/* train_ckpt.h - what `ringtrain train` puts in a checkpoint and takes back:
 * the list of named arrays (parameters, optimizer state, step counters,
 * sampler position, RNG seed, the metrics accumulator) over the live
 * training state, the training configuration as JSON, and the sampler
 * position converted between this run's per-rank batches and the
 * rank-count-independent form stored in the file.
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
#ifndef RT_LAUNCH_TRAIN_CKPT_H
#define RT_LAUNCH_TRAIN_CKPT_H

#include <stdint.h>

#include "common/status.h"
#include "trainer/ckpt_file.h"
#include "trainer/optim.h"
#include "trainer/params.h"

/* The scalars of a checkpoint, read and written in place. */
typedef struct {
    int64_t step, opt_step, skipped;
    double loss_sum;
    int64_t loss_count;
    uint64_t data_seed;
    int64_t data_epoch, data_position;
    int64_t batch, accum, world;
    uint64_t init_seed;
} train_scalars_t;

#define TRAIN_CKPT_MAX_ARRAYS (3 * RT_PARAMS_MAX + 16)

typedef struct {
    ckpt_array_t arrays[TRAIN_CKPT_MAX_ARRAYS];
    char names[3 * RT_PARAMS_MAX][RT_PARAM_NAME_MAX + 24];
    int n;
} train_ckpt_list_t;

/* The scalars only (what a run needs before it can size its model). */
void train_ckpt_scalars(train_ckpt_list_t *l, train_scalars_t *sc);
/* Everything: parameters, optimizer state (per opt's kind), scalars. The
 * arrays point into ps, opt and sc, so one list writes and reads. */
void train_ckpt_all(train_ckpt_list_t *l, param_set_t *ps, optimizer_t *opt, train_scalars_t *sc);

/* Appends s to buf as a JSON string literal (quotes and escapes). */
void train_json_string(char *buf, size_t size, size_t *len, const char *s);

#endif
