/* replica_internal.h - the replica's fields, shared by replica.c (creation,
 * host copies) and step.c (the step). Not for use elsewhere. */
#ifndef RT_TRAINER_RUN_REPLICA_INTERNAL_H
#define RT_TRAINER_RUN_REPLICA_INTERNAL_H

#include "trainer/ops/step_state.h"
#include "trainer/run/replica.h"

/* Input slots: batch k+1 is copied while batch k computes. */
#define REPLICA_SLOTS 2

struct replica {
    replica_config_t cfg;
    rt_device_t *dev;
    param_registry_t reg;
    model_io_t io;
    model_t model;
    bool model_open;
    float *params, *grads;       /* device arenas */
    float *compute;              /* compute-precision copy of params (NULL: fp32 reads params) */
    optimizer_t opt;
    step_state_t *state;         /* device */
    step_state_t *state_host;    /* host mirror (the CPU: == state) */
    float *host_params;          /* the CPU: == params */
    float *host_state[2];        /* the CPU: == opt.state[i] */
    device_stager_t *stager;
    size_t input_bytes, target_bytes;  /* per full micro-batch */
    int64_t micro;               /* micro-batches so far (slot = micro % SLOTS) */
    rt_graph_t *graph_micro[REPLICA_SLOTS];
    rt_graph_t *graph_update;
    bool graphs_failed;
    const char *mode;
    int64_t steps_run;           /* steps enqueued by this replica */
    int64_t step;                /* the next step's 0-based index */
    int64_t nonfinite_seen;      /* non-finite steps already reported */
    grad_sync_t *sync;
    rt_trace_t *trace;           /* spans of forward, backward, optimizer; NULL: none */
};

#endif
