/* tb_reader.h - reads back a TensorBoard event file as tb_writer.h writes
 * it, checking both CRCs of every record. For tests and diagnosis: a
 * cut-off last record (a process killed mid-write, or a full disk), which
 * TensorBoard silently ignores, is reported here. */
#ifndef RT_TRAINER_TENSORBOARD_TB_READER_H
#define RT_TRAINER_TENSORBOARD_TB_READER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/status.h"

typedef struct {
    int64_t records;       /* whole, good records */
    int64_t scalars;       /* simple_values among them */
    int64_t good_bytes;    /* the offset after the last good record */
    char file_version[32]; /* the file_version record's text ("" if none) */
    bool truncated;        /* the file ends inside a record */
} tb_read_info_t;

/* Called for every Summary.Value holding a simple_value. */
typedef void (*tb_scalar_fn)(void *ctx, int64_t step, double wall_time, const char *tag,
                             float value);

/* Walks the file's records in order, calling fn (may be NULL) for each
 * scalar. RT_OK when the file ends after a whole good record. Otherwise
 * the records before the bad one were delivered, info says how far they
 * reach, and: RT_ERR_CORRUPT "PATH: truncated last record at byte N ..."
 * when the file ends inside a record (info->truncated); RT_ERR_CORRUPT
 * naming the byte offset for a length or data CRC mismatch; RT_ERR_FORMAT
 * for a record that is not an Event; RT_ERR_IO when the file cannot be
 * read. */
rt_status tb_read_file(const char *path, tb_scalar_fn fn, void *ctx, tb_read_info_t *info);

#endif
