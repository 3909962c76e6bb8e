/* eval.h - evaluation of a model over a whole dataset, every record exactly
 * once across the ranks of comm (rank r takes records r, r+world, ...;
 * unshuffled; the last batches may be partial), the sums all-reduced so
 * that every rank gets the same mean loss and accuracy. Shared by `train
 * --eval` and `ringtrain eval` (evaluate.h). */
#ifndef RT_TRAINER_RUN_EVAL_H
#define RT_TRAINER_RUN_EVAL_H

#include <stdint.h>

#include "collectives/coll.h"
#include "common/status.h"
#include "data/dataset.h"
#include "trainer/model/model.h"

/* Opens a dataset for a model that consumes io: a missing file, another
 * kind, or inputs/classes that do not match fail with RT_ERR_USAGE (exit
 * 2) and a message naming the flag and the file. */
rt_status eval_dataset_open(const char *path, const char *flag, const model_io_t *io,
                            dataset_t **out);

/* Mean loss and accuracy (NaN when the model has none) over ds, batch <=
 * m->max_batch rows per forward; comm NULL: this process alone. */
rt_status eval_dataset(model_t *m, dataset_t *ds, int batch, coll_comm_t *comm, double *loss,
                       double *accuracy, int64_t *count);

#endif
