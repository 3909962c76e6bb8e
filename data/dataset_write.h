/* dataset_write.h - writing ringtrain dataset files (importers, tests).
 *
 * A writer creates "<path>.tmp.<pid>" next to the target, so a failure never
 * leaves a partial file under the real name: dataset_writer_commit() closes,
 * fsyncs and renames it into place (then fsyncs the directory);
 * dataset_writer_abort() removes it. Datasets are contiguous (no chunking),
 * so readers can address records by offset. Commit stores each array's
 * CRC-32C checksums (dataset_crc.h), computed as rows are put in order.
 */
#ifndef RT_DATA_DATASET_WRITE_H
#define RT_DATA_DATASET_WRITE_H

#include <stdint.h>

#include "common/status.h"
#include "data/dataset.h"

typedef struct dataset_writer dataset_writer_t;

rt_status dataset_writer_create(const char *path, dataset_writer_t **out);

/* Declares a classification file: /inputs [n, shape...] of input_type (U8 or
 * F32), /labels [n] of label_type (U8 or I32), and the root attributes. */
rt_status dataset_writer_classification(dataset_writer_t *w, int64_t n, int dims,
                                        const int64_t *shape, rt_dtype input_type,
                                        rt_dtype label_type, int num_classes);

/* Declares a tokens file: /tokens [n] of type (U8 or U16). */
rt_status dataset_writer_tokens(dataset_writer_t *w, int64_t n, rt_dtype type,
                                int vocab_size);

/* Writes rows [start, start + count) of dataset "inputs", "labels" or
 * "tokens"; data is in the declared element type. */
rt_status dataset_writer_put(dataset_writer_t *w, const char *name, int64_t start,
                             int64_t count, const void *data);

/* An extra string attribute on the root (for example "source"). */
rt_status dataset_writer_set_string(dataset_writer_t *w, const char *name, const char *value);

/* Finishes the file and renames it into place; frees w in every case (on
 * failure the temporary file is removed). */
rt_status dataset_writer_commit(dataset_writer_t *w);

/* Removes the temporary file and frees w. NULL is ignored. */
void dataset_writer_abort(dataset_writer_t *w);

/* A whole classification file in one call, from memory: inputs float32
 * [rows, features] and labels int32 [rows] in [0, num_classes) (test
 * drivers and benchmarks that make their data). */
rt_status dataset_write_f32_classification(const char *path, const float *inputs,
                                           const int32_t *labels, int64_t rows, int64_t features,
                                           int num_classes);

#endif
