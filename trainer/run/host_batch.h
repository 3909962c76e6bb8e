/* host_batch.h - a loader's batch as the model's host batch (model.h's
 * rt_batch_t): classification rows are used where they lie; token windows
 * [rows, ctx+1] are split into inputs (columns 0..ctx-1) and targets
 * (columns 1..ctx), each [rows, ctx], in a buffer the caller owns. Shared by
 * training (session_setup.c) and evaluation (eval.c). */
#ifndef RT_TRAINER_RUN_HOST_BATCH_H
#define RT_TRAINER_RUN_HOST_BATCH_H

#include <stddef.h>

#include "common/status.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "trainer/model/model.h"

/* Bytes of the inputs and targets of `rows` rows for a model of this io. */
void host_batch_bytes(const model_io_t *io, int rows, size_t *input_bytes, size_t *target_bytes);

/* Int32 elements the split buffer needs for `rows` token rows (0 for a
 * classification model). */
size_t host_batch_split_len(const model_io_t *io, int rows);

/* The model's view of lb; split is host_batch_split_len() int32s (unused
 * for classification). */
void host_batch_from_loader(const model_io_t *io, const loader_batch_t *lb, int32_t *split,
                            rt_batch_t *out);

/* Opens a dataset for a model that consumes io: a missing file, another
 * kind, or sizes that do not match (features and classes; a context not
 * below the number of tokens, tokens beyond the model's vocabulary) fail
 * with RT_ERR_USAGE (exit 2) and a one-line message naming the flag and the
 * file. Data that fails its checksum (RT_ERR_CORRUPT) and running out of
 * memory keep their codes (exit 1). */
/* Logs the one-line note for a file whose arrays have no checksums (files
 * written before they were stored); nothing for a checksummed one. */
void host_batch_note_unchecked(const dataset_t *d);

rt_status host_batch_dataset_open(const char *path, const char *flag, const model_io_t *io,
                                  dataset_t **out);

#endif
