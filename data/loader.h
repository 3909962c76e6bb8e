/* loader.h - the prefetching loader: background threads fill a ring of
 * batch buffers in sample order (sampler.h) while the trainer computes.
 * Batches are delivered strictly in order, whatever the number of workers.
 *
 * Classification batches are inputs float32 [rows, features] (uint8 x
 * becomes x / 255.0f) and labels int32 [rows]. Token batches are int32
 * [rows, ctx+1] windows: inputs are columns 0..ctx-1, targets 1..ctx.
 *
 * Two ways to take a batch:
 *   loader_next / loader_next_tokens copy it into the caller's arrays;
 *   loader_acquire hands out pointers into the loader's own buffer, valid
 *   until loader_release. Buffers come from cfg.alloc (default: aligned
 *   malloc), so a CUDA path can pass cudaHostAlloc and copy pinned memory
 *   to the device asynchronously.
 *
 * The loader crosses epochs by itself (epoch+1, new permutation) unless
 * cfg.one_epoch, where it stops after the epoch it started in (evaluation).
 * An error in a background thread (a failed read) is returned by the call
 * that would have received the failed batch, with its message; batches
 * prepared before it are still delivered.
 */
#ifndef RT_DATA_LOADER_H
#define RT_DATA_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "data/dataset.h"
#include "data/sampler.h"

typedef void *(*loader_alloc_fn)(size_t bytes, void *ctx);
typedef void (*loader_free_fn)(void *ptr, void *ctx);

typedef struct {
    int64_t batch;                /* rows per batch on this rank */
    int rank, world;
    bool shuffle;
    sampler_remainder remainder;
    bool one_epoch;               /* stop after start.epoch (evaluation) */
    int prefetch;                 /* ring slots: batches prepared ahead, >= 1 */
    int workers;                  /* threads filling slots, 1..64 (they take CPU from
                                     the CPU trainer; 1 is plenty for small models) */
    int64_t ctx;                  /* tokens: window length (rows hold ctx+1 tokens) */
    sampler_state_t start;        /* {seed, 0, 0} for a fresh run; a saved state to resume */
    loader_alloc_fn alloc;        /* NULL: aligned malloc */
    loader_free_fn free;
    void *alloc_ctx;
} loader_config_t;

typedef struct {
    const float *inputs;          /* classification: [rows, features] */
    const int32_t *labels;        /* classification: [rows] */
    const int32_t *tokens;        /* tokens: [rows, ctx+1] */
    int rows;
    int64_t epoch, step;          /* this batch's place in the order */
} loader_batch_t;

typedef struct loader loader_t;

/* batch 1, rank 0, world 1, shuffle, PAD, prefetch 4, workers 1, seed 0. */
void loader_config_default(loader_config_t *cfg);

/* Starts the background thread. d must stay open until loader_close. */
rt_status loader_open(loader_t **out, dataset_t *d, const loader_config_t *cfg);

/* Copies the next classification batch: inputs [batch, features], labels
 * [batch]; *count = rows delivered (batch, or fewer in PARTIAL mode).
 * After the last batch of a one-epoch loader it fails (see loader_done). */
rt_status loader_next(loader_t *l, float *inputs, int32_t *labels, int *count);

/* Copies the next token batch: tokens [batch, ctx+1]. */
rt_status loader_next_tokens(loader_t *l, int32_t *tokens, int *count);

/* Zero-copy: the next batch, valid until loader_release(l). */
rt_status loader_acquire(loader_t *l, loader_batch_t *batch);
void loader_release(loader_t *l);

/* The state to resume from exactly: the next batch to be handed out. A batch
 * counts as consumed as soon as loader_next or loader_acquire returns it
 * (also while it is still held), so a checkpoint taken after the step that
 * used it resumes with the batch after it. After an epoch's last batch it
 * reads {seed, epoch+1, 0}. */
sampler_state_t loader_state(const loader_t *l);

int64_t loader_steps_per_epoch(const loader_t *l);
/* Rows this rank delivers in one full epoch (the sum of the counts). */
int64_t loader_epoch_rows(const loader_t *l);
/* Records (classification) or windows (tokens) the sampler draws from. */
int64_t loader_num_samples(const loader_t *l);
/* Windows of ctx+1 tokens that a stream of `tokens` tokens yields
 * (docs/FORMATS.md, "Token streams"): (tokens - ctx) / ctx shuffled (room
 * for the per-epoch shift), (tokens - 1) / ctx unshuffled; 0 if none. */
int64_t loader_token_windows(int64_t tokens, int64_t ctx, bool shuffle);

/* True once a one-epoch loader has handed out its last batch. */
bool loader_done(const loader_t *l);

/* Stops the thread and frees the buffers. NULL is ignored. */
void loader_close(loader_t *l);

#endif
