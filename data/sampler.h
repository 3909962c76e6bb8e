/* sampler.h - the distributed sampler: which records each rank reads, in
 * which order, for every epoch (PyTorch DistributedSampler semantics).
 *
 * Epoch e uses order = a permutation of [0, n) drawn from (seed, e) (the
 * identity without shuffle). Remainders (docs/FORMATS.md, "Sample order"):
 *   SAMPLER_PAD     the order is extended to ceil(n/world)*world positions by
 *                   repeating it from its start (position p reads order[p % n]);
 *   SAMPLER_DROP    it is cut to floor(n/world)*world positions;
 *   SAMPLER_PARTIAL no padding, no cut (evaluation): ranks may get one record
 *                   fewer than others, and last batches may be partial.
 * Rank r takes positions r, r+world, r+2*world, ... (strided, as torch does);
 * batch s of a rank is its positions [s*B, s*B+B). So global step s covers
 * positions [s*B*world, (s+1)*B*world): np=4 with batch 64 sees the same
 * records per step as np=1 with batch 256.
 * Steps per epoch: PAD/DROP floor(per_rank/B) (an incomplete last batch is
 * dropped); PARTIAL ceil(ceil(n/world)/B), equal on every rank, where a
 * rank's last batch may hold fewer rows, even none.
 */
#ifndef RT_DATA_SAMPLER_H
#define RT_DATA_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/status.h"

typedef enum { SAMPLER_PAD = 0, SAMPLER_DROP, SAMPLER_PARTIAL } sampler_remainder;

/* Where a run stands in the sample order: what a checkpoint saves. position
 * counts batches already consumed in `epoch` on this rank (and, because all
 * ranks step together, on every rank). */
typedef struct {
    uint64_t seed;
    int64_t epoch;
    int64_t position;
} sampler_state_t;

typedef struct {
    int64_t n;            /* records (or token windows) in the dataset */
    int rank, world;
    int64_t batch;        /* rows per batch on this rank */
    bool shuffle;
    sampler_remainder remainder;
} sampler_config_t;

rt_status sampler_check(const sampler_config_t *c);

/* Positions this rank reads per epoch. */
int64_t sampler_rank_len(const sampler_config_t *c);
int64_t sampler_steps_per_epoch(const sampler_config_t *c);
/* Rows in this rank's batch `step` (batch, or fewer in PARTIAL mode). */
int64_t sampler_batch_rows(const sampler_config_t *c, int64_t step);

/* Fisher-Yates permutation of [0, n) from xoshiro256** seeded by (seed,
 * epoch) through splitmix64 (exact recipe in docs/FORMATS.md). */
void sampler_permutation(uint64_t seed, int64_t epoch, int64_t n, int64_t *perm);

/* The epoch's order: the permutation, or the identity without shuffle. */
void sampler_epoch_order(const sampler_config_t *c, uint64_t seed, int64_t epoch, int64_t *order);

/* This rank's records for batch `step` given the epoch's order;
 * writes sampler_batch_rows() indices. */
void sampler_batch_indices(const sampler_config_t *c, const int64_t *order, int64_t step,
                           int64_t *out);

/* A 64-bit value from (seed, epoch, stream) for other per-epoch choices
 * (the token window shift). */
uint64_t sampler_hash(uint64_t seed, int64_t epoch, uint64_t stream);

#endif
