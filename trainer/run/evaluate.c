/* evaluate.c - saved parameters over a dataset (see evaluate.h). */
#include "trainer/run/evaluate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "trainer/ckpt/ckpt_state.h"
#include "trainer/ckpt/export.h"
#include "trainer/ckpt/ckpt_file.h"
#include "trainer/ops/cpu_threads.h"
#include "trainer/run/agree.h"
#include "trainer/run/eval.h"
#include "trainer/run/host_batch.h"

typedef struct {
    model_spec_t spec;
    param_registry_t reg;
    float *params;
    rt_device_t *dev;
    model_t model;
    bool model_open;
    dataset_t *ds;
} evaluation_t;

/* Spec -> registry, host arena, dataset check, CPU model. */
static rt_status open_model(evaluation_t *e, const eval_config_t *cfg, const char *spec)
{
    TRY(model_spec_parse(spec, &e->spec));
    TRY(e->spec.kind->declare(e->spec.cfg, &e->reg));
    model_io_t io;
    e->spec.kind->describe(e->spec.cfg, &io);
    TRY(host_batch_dataset_open(cfg->data, "data", &io, &e->ds));
    TRY(host_alloc((void **)&e->params, sizeof(float) * (size_t)e->reg.total));
    device_config_t cpu = {.kind = RT_DEVICE_CPU};
    TRY(device_open(&e->dev, &cpu));
    TRY(model_open(&e->model, &e->spec, &e->reg, e->dev, e->params, NULL, cfg->batch));
    e->model_open = true;
    return RT_OK;
}

/* A checkpoint: the spec from its metadata, and every /params dataset read
 * with its CRC-32C checked (a corrupt checkpoint is refused, naming the
 * dataset). */
static rt_status setup_from_ckpt(evaluation_t *e, const eval_config_t *cfg, ckpt_reader_t *rd)
{
    TRY(open_model(e, cfg, ckpt_reader_meta(rd)->model_spec));
    ckpt_state_t list;
    memset(&list, 0, sizeof list);
    ckpt_scalars_t unused;
    optim_config_t none = optim_config_default(OPTIM_SGD);
    float *state[2] = {NULL, NULL};
    rt_status st = ckpt_state_all(&list, &e->reg, e->params, &none, state, &unused);
    /* the parameters only: the scalars come last in the list */
    if (st == RT_OK && ckpt_read_arrays(rd, list.arrays, e->reg.count) != RT_OK)
        st = rt_fail_context(RT_ERR_USAGE, "--ckpt");
    ckpt_state_free(&list);
    return st;
}

static rt_status setup(evaluation_t *e, const eval_config_t *cfg)
{
    ckpt_reader_t *rd = NULL;
    if (ckpt_open(cfg->ckpt, &rd) == RT_OK) {
        rt_status st = setup_from_ckpt(e, cfg, rd);
        ckpt_close(rd);
        return st;
    }
    /* not a readable checkpoint: a `train --export-params` file? */
    char why[512], spec[512];
    snprintf(why, sizeof why, "%s", rt_last_error());
    if (params_read_spec_h5(cfg->ckpt, spec, sizeof spec) != RT_OK) {
        char why_export[512];
        snprintf(why_export, sizeof why_export, "%s", rt_last_error());
        return rt_fail(RT_ERR_USAGE, "--ckpt: neither a checkpoint (%s) nor a parameter export (%s)",
                       why, why_export);
    }
    TRY(open_model(e, cfg, spec));
    if (params_import_h5(&e->reg, e->params, cfg->ckpt) != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "--ckpt");
    return RT_OK;
}

static void evaluation_free(evaluation_t *e)
{
    if (e->model_open)
        model_close(&e->model);
    device_close(e->dev);
    host_free(e->params);
    dataset_close(e->ds);
    param_registry_free(&e->reg);
    model_spec_free(&e->spec);
}

rt_status evaluate_run(const eval_config_t *cfg, coll_comm_t *comm, eval_result_t *res,
                       session_outcome_t *outcome)
{
    memset(res, 0, sizeof *res);
    memset(outcome, 0, sizeof *outcome);
    outcome->speak = true;
    outcome->consistent = true;
    CHECK_ARG(cfg->batch >= 1, "evaluate_run: batch %d", cfg->batch);
    cpu_set_threads(cfg->threads ? cfg->threads
                                 : cpu_default_threads(comm ? coll_local_size(comm) : 1));
    evaluation_t e;
    memset(&e, 0, sizeof e);
    bool speak = true;
    rt_status st = ranks_agree(comm, setup(&e, cfg), &speak);
    if (st == RT_OK) {
        speak = !comm || coll_rank(comm) == 0;
        snprintf(res->model_spec, sizeof res->model_spec, "%s", e.spec.text);
        st = eval_dataset(&e.model, e.ds, cfg->batch, comm, &res->loss, &res->accuracy,
                          &res->records);
        if (st != RT_OK) {
            /* one rank's read error: the others may wait in the all-reduce */
            outcome->consistent = false;
            speak = true;
        }
    }
    outcome->speak = speak;
    evaluation_free(&e);
    return st;
}
