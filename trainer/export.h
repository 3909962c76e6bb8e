/* export.h - writes a model's final parameters to an HDF5 file, one float32
 * dataset per parameter under /params/<state_dict name> ([out, in] weights),
 * with root attributes format="ringtrain-params" and model_spec. It is an
 * export for h5py/PyTorch users and tests, not a checkpoint: no optimizer
 * state, no sample position, no CRCs. */
#ifndef RT_TRAINER_EXPORT_H
#define RT_TRAINER_EXPORT_H

#include "common/status.h"
#include "trainer/params.h"

rt_status params_export_h5(const param_set_t *ps, const char *model_spec, const char *path);

#endif
