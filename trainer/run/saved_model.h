/* saved_model.h - a model from saved parameters, for the commands that use
 * a trained model on the CPU (`ringtrain eval`, `ringtrain sample`): the
 * spec and the parameters from a checkpoint (every dataset's CRC-32C
 * checked as it is read) or a `train --export-params` file, then a
 * forward-only CPU instance. */
#ifndef RT_TRAINER_RUN_SAVED_MODEL_H
#define RT_TRAINER_RUN_SAVED_MODEL_H

#include <stdbool.h>

#include "common/status.h"
#include "trainer/model/model.h"
#include "trainer/ops/device.h"

typedef struct {
    model_spec_t spec;
    param_registry_t reg;
    model_io_t io;
    float *params;        /* host arena with reg's layout */
    rt_device_t *dev;     /* the CPU */
    model_t model;
    bool model_open;
} saved_model_t;

/* Reads the spec and the parameters of path (flag names the option in
 * messages); a file that is neither kind, or a corrupt one, is RT_ERR_USAGE
 * naming the flag and the cause. */
rt_status saved_model_load(saved_model_t *sm, const char *path, const char *flag);
/* The forward-only CPU instance for max_batch rows (after load). */
rt_status saved_model_open(saved_model_t *sm, int max_batch);
void saved_model_free(saved_model_t *sm);

#endif
