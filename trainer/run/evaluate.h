/* evaluate.h - `ringtrain eval` as one library call: the loss (and
 * accuracy) of saved parameters, a checkpoint (every dataset's CRC-32C
 * checked as it is read) or a `train --export-params` file, over a whole
 * dataset, every record exactly once across the ranks of comm, on the CPU. */
#ifndef RT_TRAINER_RUN_EVALUATE_H
#define RT_TRAINER_RUN_EVALUATE_H

#include <stdbool.h>
#include <stdint.h>

#include "collectives/coll.h"
#include "common/status.h"
#include "trainer/run/session.h"

typedef struct {
    const char *ckpt;   /* a checkpoint or a parameter export */
    const char *data;   /* the dataset */
    int batch;          /* rows per forward per rank; 0: 500 records or 8 token windows */
    int threads;        /* CPU threads per rank (0: cores / ranks on the node) */
} eval_config_t;

typedef struct {
    char model_spec[512];
    double loss, accuracy;  /* accuracy NaN for a model without one */
    int64_t records;        /* records, or token windows */
    bool tokens;            /* a token model: loss in nats per token */
    bool byte_level;        /* tokens are bytes: loss / ln 2 is bits per byte */
} eval_result_t;

/* Setup failures are agreed across ranks (outcome->speak on the rank that
 * prints); a failure during the evaluation may be one rank's alone
 * (outcome->consistent false): the caller then ends the job. */
rt_status evaluate_run(const eval_config_t *cfg, coll_comm_t *comm, eval_result_t *res,
                       session_outcome_t *outcome);

#endif
