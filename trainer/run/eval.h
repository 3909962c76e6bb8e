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

/* Mean loss (per record, or per token for a token model: every position
 * of every window, windows as the unshuffled sampler cuts them) and
 * accuracy (NaN when the model has none) over ds, batch <= m->max_batch
 * rows per forward; *count: records or windows. comm NULL: this process
 * alone. Open ds with host_batch_dataset_open (host_batch.h). */
rt_status eval_dataset(model_t *m, dataset_t *ds, int batch, coll_comm_t *comm, double *loss,
                       double *accuracy, int64_t *count);

#endif
