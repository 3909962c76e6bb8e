/* ckpt_snapshot.h - the copy of the training state an asynchronous
 * checkpoint writes (`--ckpt-write async`): host buffers for the parameter
 * arena and the optimizer's state arrays, allocated once per run and reused
 * by every checkpoint (page-locked memory when the state comes from a GPU,
 * so the copy runs at the bus's speed), plus the scalars, metadata and
 * named-array list over them that the writer thread reads. The training
 * thread fills it only while no write is pending (ckpt_writer.h). */
#ifndef RT_TRAINER_RUN_CKPT_SNAPSHOT_H
#define RT_TRAINER_RUN_CKPT_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "trainer/ckpt/ckpt_file.h"
#include "trainer/ckpt/ckpt_state.h"
#include "trainer/ops/device.h"

typedef struct {
    float *params;          /* the whole parameter arena */
    float *state[2];        /* the optimizer's state arrays, whole arena each; NULL past nstate */
    int nstate;
    int64_t total;          /* floats per buffer */
    bool pinned;            /* page-locked (device_pinned_alloc) */
    int ordinal;            /* the CUDA device of pinned memory */
    ckpt_scalars_t sc;
    ckpt_state_t list;      /* the named arrays over the buffers and sc */
    char *config;           /* the config JSON (owned) */
    char *model_spec;       /* owned */
    ckpt_meta_t meta;       /* over config and model_spec */
} ckpt_snapshot_t;

/* Buffers for `total` floats each: one for the parameters and one per
 * optimizer state array (nstate 0..2). With dev a CUDA device, page-locked
 * memory where it can be had (plain host memory otherwise, logged). The
 * pages are touched here, so a run that cannot hold the copy fails before
 * its first step and no checkpoint pays for the page faults. RT_ERR_NOMEM
 * names the size and the way out (--ckpt-write sync). */
rt_status ckpt_snapshot_alloc(ckpt_snapshot_t *s, const rt_device_t *dev, int ordinal,
                              int64_t total, int nstate);
void ckpt_snapshot_free(ckpt_snapshot_t *s);

/* Owned copies of the metadata's strings (the config JSON, the model spec)
 * into s->meta, with step, epoch and world size. */
rt_status ckpt_snapshot_set_meta(ckpt_snapshot_t *s, int64_t step, int64_t epoch,
                                 const char *model_spec, const char *config_json, int64_t world);

#endif
