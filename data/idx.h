/* idx.h - reading IDX files (the MNIST family), gzip'ed or plain. */
#ifndef RT_DATA_IDX_H
#define RT_DATA_IDX_H

#include <stdint.h>

#include "common/status.h"

#define IDX_MAX_DIMS 8

typedef struct {
    int dims;                    /* number of dimensions (1 for labels, 3 for images) */
    int64_t shape[IDX_MAX_DIMS];
    int64_t count;               /* shape[0] */
    uint8_t *data;               /* shape[0] * ... bytes, row-major */
} idx_array_t;

/* Reads an unsigned-byte IDX file (magic 0x00 0x00 0x08 <dims>), through
 * zlib's inflate when it starts with the gzip magic, else as it is. Fails, naming the file, on a
 * missing or empty file, a wrong magic, a type other than unsigned byte,
 * a dimension count other than want_dims (0: any), truncation, corrupt gzip
 * data or trailing bytes. */
rt_status idx_read(const char *path, int want_dims, idx_array_t *out);
void idx_free(idx_array_t *a);

#endif
