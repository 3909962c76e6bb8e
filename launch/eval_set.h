/* eval_set.h - evaluation of the MLP over a whole classification dataset,
 * every record exactly once across the ranks of comm (rank r takes records
 * r, r+world, ...; unshuffled; last batches may be partial), summed with an
 * all-reduce: every rank gets the same mean loss and accuracy. Shared by
 * `ringtrain train --eval` and `ringtrain eval`. */
#ifndef RT_LAUNCH_EVAL_SET_H
#define RT_LAUNCH_EVAL_SET_H

#include <stdbool.h>
#include <stdint.h>

#include "collectives/coll.h"
#include "common/status.h"
#include "data/dataset.h"
#include "trainer/mlp.h"

/* Opens a classification dataset for a model: a missing file, another kind,
 * or inputs/classes that do not match the spec fail with RT_ERR_USAGE (exit
 * 2) and a message naming the flag and the file. */
rt_status eval_set_open(const char *path, const char *flag, const mlp_spec_t *spec, dataset_t **out);

/* All ranks learn whether any failed to set up, so that none runs on alone
 * or waits in a collective for a peer that already gave up. Returns the
 * first failing rank's status on every rank; *speak is true on that rank
 * only (it prints the message, once per job). */
rt_status eval_set_agree(coll_comm_t *comm, rt_status local, bool *speak);

/* batch <= m->max_batch rows per forward. */
rt_status eval_set_run(mlp_t *m, dataset_t *ds, int batch, coll_comm_t *comm, double *loss,
                       double *accuracy, int64_t *count);

#endif
