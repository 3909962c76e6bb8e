/* session_internal.h - the state of a training session, shared by its
 * files: session.c (the run and its loop), session_setup.c (datasets,
 * loader, device, replica, batches), session_resume.c (choosing and loading
 * a checkpoint) and session_ckpt.c (writing them). Not for use elsewhere. */
#ifndef RT_TRAINER_RUN_SESSION_INTERNAL_H
#define RT_TRAINER_RUN_SESSION_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "data/dataset.h"
#include "data/loader.h"
#include "trainer/ckpt/ckpt_state.h"
#include "trainer/ckpt/ckpt_file.h"
#include "trainer/model/model.h"
#include "trainer/optim/grad_plan.h"
#include "trainer/optim/optim.h"
#include "trainer/optim/schedule.h"
#include "trainer/run/ckpt_snapshot.h"
#include "trainer/run/ckpt_writer.h"
#include "trainer/run/grad_sync.h"
#include "trainer/run/replica.h"
#include "trainer/run/session.h"
#include "trainer/tensorboard/tb_writer.h"

typedef struct {
    train_config_t cfg;          /* a copy: the batch may come from the checkpoint */
    const session_hooks_t *hooks;
    coll_comm_t *comm;           /* NULL: this process alone */
    int rank, world, local_rank, local_size, threads;
    model_spec_t spec;
    model_io_t io;               /* what the model consumes */
    int32_t *split;              /* token batches: inputs and targets split from the windows */
    bool byte_level;             /* tokens are bytes (uint8, vocabulary 256): bits per byte */
    double example_flops;        /* model FLOPs of one training example (token) */
    double peak_flops;           /* this rank's measured peak; 0: unknown (no MFU) */
    optim_config_t optim;
    sched_kind sched;
    device_config_t devcfg;
    char device_why[256];        /* why this device: logged once the inputs are checked */
    rt_device_t *dev;
    dataset_t *train_ds, *eval_ds;
    loader_t *loader;
    bool holding;                /* a loader batch is held */
    int64_t micro_in_epoch;      /* loader batches taken in this epoch */
    replica_t *rep;
    grad_plan_t plan;
    grad_sync_t *sync;
    rt_trace_t *trace;           /* --trace: this rank's timeline; NULL: none */
    FILE *metrics;
    tb_writer_t *tb;             /* --tensorboard (rank 0); NULL: none, or after a write failed */
    int64_t steps_per_epoch;     /* optimizer steps */
    int64_t loader_spe;          /* loader batches per epoch */
    int64_t total_steps;
    int64_t start_step;
    bool consistent;             /* the failure, if any, is the same on every rank */
    /* checkpoints */
    int lock_fd;                 /* rank 0 with a checkpoint directory: holds DIR/.lock */
    char resume_path[4096];      /* "": a fresh run */
    ckpt_scalars_t sc;           /* the checkpoint's scalars (read, then written) */
    ckpt_state_t list;
    ckpt_run_t ckpt_run;         /* rank 0: what pruning may delete (its own, its history) */
    uint64_t digest;             /* of what this rank loaded */
    ckpt_writer_t *writer;       /* rank 0, --ckpt-write async: the writer thread; NULL otherwise */
    ckpt_snapshot_t snap;        /* its copy of the state (reused by every checkpoint) */
    double ckpt_stall;           /* seconds the step loop was held by the latest checkpoint */
    int64_t ckpt_failed;         /* rank 0: step + 1 of a write that failed (0: none) */
    char ckpt_error[1024];       /* its message */
    char ckpt_path[4096];        /* the latest synchronous write's file */
    int stop_signal;
    /* the loss since the last metrics line */
    double loss_acc;
    int64_t loss_count;
    int64_t skipped;             /* non-finite steps so far (the last result read) */
    int64_t opt_steps;           /* optimizer updates so far (the last result read) */
    /* evaluation runs on the host, over the host copy of the parameters */
    rt_device_t *eval_dev;
    model_t eval_model;
    bool eval_open;
} session_t;

/* session_setup.c */
/* The datasets, checked against the model (before any file is created). */
rt_status session_open_data(session_t *s);
rt_status session_setup(session_t *s);
void session_setup_free(session_t *s);
rt_status session_next_batch(void *ctx, int k, rt_batch_t *batch);
void session_release_batch(session_t *s);
rt_status session_eval_model(session_t *s, model_t **out);

/* session_resume.c */
rt_status session_resume_choose(session_t *s);
rt_status session_resume_open(session_t *s, ckpt_reader_t **rd);
rt_status session_resume_load(session_t *s, ckpt_reader_t *rd);
rt_status session_resume_agree(session_t *s);

/* session_ckpt.c */
/* --ckpt-dir with --ckpt-write async (every rank knows). */
bool session_ckpt_async(const session_t *s);
/* Rank 0 with async checkpoints: the writer and its snapshot buffers
 * (before the first step, so that a run that cannot hold them fails early). */
rt_status session_ckpt_setup(session_t *s);
/* Every rank: the checkpoint of `done` steps (t0: when the step loop
 * turned to it, for the stall it reports), written here (sync) or started
 * on the writer thread once the previous write has ended (async); fails on
 * every rank alike when this write (sync) or an earlier one (async)
 * failed. */
rt_status session_checkpoint(session_t *s, int64_t done, double t0);
/* Rank 0, between steps, without blocking: takes the report of an ended
 * write; returns step + 1 of a failed write not yet shared (0: none), for
 * the per-step agreement to share. */
int64_t session_ckpt_poll(session_t *s);
/* Every rank, once they all know that a write failed (step + 1 as
 * session_ckpt_poll gives it): the error the job stops with. */
rt_status session_ckpt_failed(session_t *s, int64_t failed);
/* Every rank, at the end of a run (its last step, or a stop): waits for the
 * write in flight and fails on every rank alike when it failed. */
rt_status session_ckpt_drain(session_t *s);
/* Rank 0, when the session ends whatever happened: waits for a write still
 * in flight (says how it ended), then frees the writer and its buffers. */
void session_ckpt_end(session_t *s);
/* The optimizer state as whole-arena host arrays, as checkpoints hold it:
 * the replica's own host copies, or with ZeRO-1 (the replica holds its
 * shard only) arrays allocated here, which session_full_state_free frees.
 * gather: fill them with every rank's shard (collective); otherwise they
 * are for reading a checkpoint into, then session_full_state_scatter. */
rt_status session_full_state(session_t *s, bool gather, float *full[2]);
/* After a checkpoint was read into full: this rank's shard to the replica. */
void session_full_state_scatter(session_t *s, float *const full[2]);
void session_full_state_free(session_t *s, float *full[2]);

/* Broadcast from rank 0 / all-reduce over the session's ranks; no-ops
 * (RT_OK) for a process alone. */
rt_status session_bcast(session_t *s, void *buf, size_t count, rt_dtype dt);

#endif
