/* export.h - writes a model's final parameters to an HDF5 file, one float32
 * dataset per parameter under /params/<state_dict name> ([out, in] weights),
 * with root attributes format="ringtrain-params" and model_spec. It is an
 * export for h5py/PyTorch users and tests, not a checkpoint: no optimizer
 * state, no sample position, no CRCs. The import reads the same layout,
 * which checkpoints share (/params/<name>, model_spec). */
#ifndef RT_TRAINER_CKPT_EXPORT_H
#define RT_TRAINER_CKPT_EXPORT_H

#include <stddef.h>

#include "common/status.h"
#include "trainer/model/params.h"

/* Writes every parameter of reg from arena (host memory). */
rt_status params_export_h5(const param_registry_t *reg, const float *arena,
                           const char *model_spec, const char *path);

/* RT_OK when params_export_h5 will be able to create path: an existing
 * file must open for writing (it is not truncated here), otherwise the file
 * is created and removed again. RT_ERR_IO naming path and the cause (a
 * missing directory, a path below a regular file, a directory, no
 * permission). For checking before training rather than after it. */
rt_status params_export_check(const char *path);

/* Reads the root attribute model_spec of an export (or of a checkpoint,
 * which has the same attribute and /params group) into buf. */
rt_status params_read_spec_h5(const char *path, char *buf, size_t size);
/* Fills every parameter of reg in arena (host memory) from
 * /params/<name>, checking each shape. */
rt_status params_import_h5(const param_registry_t *reg, float *arena, const char *path);

#endif
