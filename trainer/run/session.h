/* session.h - a training session as one library call: what `ringtrain
 * train` runs on every rank, and what the benchmarks and the tests' drivers
 * run too. session_run sets up and agrees across ranks (flags, datasets,
 * model and batch sizes are checked on every rank, and the ranks agree on
 * the outcome before any training, so a bad input ends every rank with a
 * usage error, never a hang), resumes from the newest good checkpoint or
 * initialises on rank 0 and broadcasts, runs the step loop (replica.h) with
 * logging, metrics, evaluation, checkpoints and the stop agreement, and
 * ends with the check that every replica holds the same parameters.
 *
 * The library never exits and installs no signal handlers: a stop request
 * comes through the hooks, and after a failure that the other ranks may not
 * share (outcome.consistent false) the caller ends the whole job
 * (coll_abort) so that no peer stays blocked. Flags, metrics and the path
 * of a batch: docs/TRAINING.md and docs/ARCHITECTURE.md. */
#ifndef RT_TRAINER_RUN_SESSION_H
#define RT_TRAINER_RUN_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "collectives/coll.h"
#include "common/status.h"
#include "trainer/model/params.h"
#include "trainer/run/config.h"
#include "trainer/run/replica.h"

typedef struct {
    int64_t step;                 /* steps done (1-based index of the step just run) */
    int64_t total_steps;
    bool log_step;                /* a metrics line was due */
    const step_result_t *result;  /* result->have: read this step */
    double step_seconds;          /* wall time of this step, host side */
} session_step_report_t;

/* Optional callbacks (any may be NULL). */
typedef struct {
    /* A fresh run, rank 0, after the model's initialisation and before the
     * broadcast: may overwrite the parameters (host arena). */
    rt_status (*on_init)(void *ctx, const param_registry_t *reg, float *params);
    /* Before each step, every rank; resumed: the run started from a
     * checkpoint. */
    void (*before_step)(void *ctx, int rank, int64_t step, bool resumed);
    /* After each step, rank 0. */
    void (*after_step)(void *ctx, const session_step_report_t *r);
    /* After a run that trained to its end, every rank: the final parameters. */
    rt_status (*on_end)(void *ctx, const param_registry_t *reg, const float *params);
    /* Polled between steps, every rank: a signal number asks to stop (the
     * ranks agree, write a final checkpoint and return), 0 goes on. */
    int (*stop_requested)(void *ctx);
    void *ctx;
} session_hooks_t;

typedef struct {
    bool speak;        /* this rank prints the failure (once per job) */
    bool consistent;   /* every rank failed alike (no abort needed) */
    int stop_signal;   /* stopped on request: the signal (0: ran to its end) */
} session_outcome_t;

/* Runs a session over comm (NULL: this process alone, no MPI) with the
 * settings cfg (checked again here). On a failure that the other ranks may
 * not share, device collectives are aborted before it returns, and
 * outcome->consistent is false: the caller then ends the job. */
rt_status session_run(const train_config_t *cfg, coll_comm_t *comm, const session_hooks_t *hooks,
                      session_outcome_t *outcome);

#endif
