/* saved_model.c - saved parameters into a CPU model (see saved_model.h). */
#include "trainer/run/saved_model.h"

#include <stdio.h>
#include <string.h>

#include "common/check.h"
#include "trainer/ckpt/ckpt_file.h"
#include "trainer/ckpt/ckpt_state.h"
#include "trainer/ckpt/export.h"

static rt_status declare(saved_model_t *sm, const char *spec)
{
    TRY(model_spec_parse(spec, &sm->spec));
    TRY(sm->spec.kind->declare(sm->spec.cfg, &sm->reg));
    sm->spec.kind->describe(sm->spec.cfg, &sm->io);
    return host_alloc((void **)&sm->params, sizeof(float) * (size_t)sm->reg.total);
}

/* A checkpoint: the spec from its metadata, then the /params datasets only
 * (the optimizer state and the scalars come after them in the list). */
static rt_status load_ckpt(saved_model_t *sm, ckpt_reader_t *rd, const char *flag)
{
    TRY(declare(sm, ckpt_reader_meta(rd)->model_spec));
    ckpt_state_t list;
    memset(&list, 0, sizeof list);
    ckpt_scalars_t unused;
    optim_config_t none = optim_config_default(OPTIM_SGD);
    float *state[2] = {NULL, NULL};
    rt_status st = ckpt_state_all(&list, &sm->reg, sm->params, &none, state, &unused);
    if (st == RT_OK && (st = ckpt_read_arrays(rd, list.arrays, sm->reg.count)) != RT_OK)
        st = rt_fail_context(rt_input_status(st), "--%s", flag);
    ckpt_state_free(&list);
    return st;
}

rt_status saved_model_load(saved_model_t *sm, const char *path, const char *flag)
{
    memset(sm, 0, sizeof *sm);
    ckpt_reader_t *rd = NULL;
    if (ckpt_open(path, &rd) == RT_OK) {
        rt_status st = load_ckpt(sm, rd, flag);
        ckpt_close(rd);
        return st;
    }
    /* not a readable checkpoint: a `train --export-params` file? */
    char why[512], spec[512];
    snprintf(why, sizeof why, "%s", rt_last_error());
    if (params_read_spec_h5(path, spec, sizeof spec) != RT_OK) {
        char why_export[512];
        snprintf(why_export, sizeof why_export, "%s", rt_last_error());
        return rt_fail(RT_ERR_USAGE, "--%s: neither a checkpoint (%s) nor a parameter export (%s)",
                       flag, why, why_export);
    }
    TRY(declare(sm, spec));
    rt_status st = params_import_h5(&sm->reg, sm->params, path);
    if (st != RT_OK)
        return rt_fail_context(rt_input_status(st), "--%s", flag);
    return RT_OK;
}

rt_status saved_model_open(saved_model_t *sm, int max_batch)
{
    device_config_t cpu = {.kind = RT_DEVICE_CPU};
    TRY(device_open(&sm->dev, &cpu));
    TRY(model_open(&sm->model, &sm->spec, &sm->reg, sm->dev, sm->params, NULL, max_batch));
    sm->model_open = true;
    return RT_OK;
}

void saved_model_free(saved_model_t *sm)
{
    if (sm->model_open)
        model_close(&sm->model);
    device_close(sm->dev);
    host_free(sm->params);
    param_registry_free(&sm->reg);
    model_spec_free(&sm->spec);
    memset(sm, 0, sizeof *sm);
}
