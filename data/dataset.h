/* dataset.h - ringtrain dataset files (HDF5): open and validate them, read
 * their metadata, and read records for the loader.
 *
 * The file layout is specified in docs/FORMATS.md. Classification files hold
 * /inputs [N, ...] (uint8 or float32) and /labels [N]; token files hold
 * /tokens [T] (uint8 or uint16). Every error names the file and the problem.
 *
 * After dataset_open() no function here calls HDF5: records come from memory
 * (sets up to max_memory_bytes) or from pread() at the raw offset of the
 * contiguous dataset. So the loader's background thread may read while the
 * main thread uses HDF5 for checkpoints (the Debian HDF5 is not thread-safe).
 *
 * Checksums (docs/FORMATS.md, "Checksums"): an array held in memory is
 * checked against its crc32c at open; one read by offset is checked block
 * by block (1 MiB) the first time a record in the block is read, before the
 * record is handed out, or whole at open when the file has no block table.
 * A mismatch is RT_ERR_CORRUPT naming the array. Arrays without checksums
 * load unverified and are listed in dataset_info()->unchecked.
 */
#ifndef RT_DATA_DATASET_H
#define RT_DATA_DATASET_H

#include <stdbool.h>
#include <stdint.h>

#include "common/dtype.h"
#include "common/status.h"

#define DATASET_FORMAT "ringtrain-dataset"
#define DATASET_FORMAT_VERSION 1     /* the newest version this build reads and writes */
#define DATASET_MAX_DIMS 8           /* per-record dimensions */

typedef enum { DATASET_CLASSIFICATION = 1, DATASET_TOKENS = 2 } dataset_kind;

typedef struct {
    dataset_kind kind;
    int format_version;
    int64_t count;                     /* records (classification) or tokens */
    int64_t features;                  /* elements per record (784); 1 for tokens */
    int record_dims;                   /* per-record rank: 2 for [28,28]; 0 for tokens */
    int64_t record_shape[DATASET_MAX_DIMS];
    rt_dtype input_type;               /* /inputs or /tokens, as stored */
    rt_dtype label_type;               /* /labels as stored (classification); RT_DTYPE_COUNT
                                          for an integer type rt_dtype has no name for (int8,
                                          int16): labels of any integer type are read as int32 */
    int num_classes;                   /* classification */
    int vocab_size;                    /* tokens */
    bool in_memory;                    /* false: records are read by offset */
    char unchecked[48];                /* arrays without a checksum ("/inputs, /labels"):
                                          loaded unverified; "" when every one has one */
} dataset_info_t;

typedef struct {
    /* Inputs (or tokens) up to this many bytes are read whole at open; larger
     * ones are read per record by offset. Negative: the default, 1 GiB. */
    int64_t max_memory_bytes;
    /* Leave the checksums unchecked (dataset_verify has checked them). */
    bool skip_checksums;
} dataset_options_t;

typedef struct dataset dataset_t;

rt_status dataset_open(const char *path, dataset_t **out);
rt_status dataset_open_opts(const char *path, const dataset_options_t *opt, dataset_t **out);
void dataset_close(dataset_t *d);

const dataset_info_t *dataset_info(const dataset_t *d);
const char *dataset_path(const dataset_t *d);
const char *dataset_kind_name(dataset_kind kind);
/* A stored element type as the dataset format spells it ("uint8", "uint16",
 * "int32", "float32", ...); "integer" for RT_DTYPE_COUNT as label_type. */
const char *dataset_dtype_name(rt_dtype type);

/* Fails naming the file when it is of another kind ("is a tokens dataset,
 * expected classification"). */
rt_status dataset_expect_kind(const dataset_t *d, dataset_kind kind);

/* All labels as int32 [count] (classification), validated in [0, num_classes). */
const int32_t *dataset_labels(const dataset_t *d);

/* Classification: rows indices[0..n) into inputs [n, features] as float32
 * (uint8 x becomes x / 255.0f; float32 is copied) and labels [n] as int32.
 * Either output may be NULL. Thread-safe. */
rt_status dataset_gather(const dataset_t *d, const int64_t *indices, int64_t n,
                         float *inputs, int32_t *labels);

/* Tokens: tokens [offset, offset + n) as int32, checked < vocab_size.
 * Thread-safe. */
rt_status dataset_read_tokens(const dataset_t *d, int64_t offset, int64_t n, int32_t *out);

/* `ringtrain data verify`: every array's checksums (whole and per block)
 * against the data, all of them, then the checks of dataset_open. */
typedef struct {
    int arrays;           /* /inputs, /labels, /tokens found */
    int checked;          /* of them with a checksum, all matching */
    int64_t bytes;        /* data bytes read and checked */
    char unchecked[48];   /* arrays without a checksum, "" when none */
} dataset_verify_report_t;

/* RT_ERR_CORRUPT naming every array that fails its checksum (and which of
 * its blocks), the file's other faults as dataset_open reports them. */
rt_status dataset_verify(const char *path, dataset_verify_report_t *report);

#endif
