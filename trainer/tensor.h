/* tensor.h - float32 tensors with shapes: a view (pointer + shape) into
 * memory owned elsewhere, usually a parameter or gradient arena, plus the
 * aligned allocation those arenas use. */
#ifndef RT_TRAINER_TENSOR_H
#define RT_TRAINER_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define RT_TENSOR_MAX_DIMS 4

typedef struct {
    float *data;
    int ndim;
    int64_t shape[RT_TENSOR_MAX_DIMS];
} tensor_t;

/* A view of data with the given shape (ndim <= RT_TENSOR_MAX_DIMS). */
tensor_t tensor_view(float *data, int ndim, const int64_t *shape);
int64_t tensor_numel(const tensor_t *t);
/* Writes the shape as "[784, 1024]" into buf; returns buf. */
const char *tensor_shape_str(const tensor_t *t, char *buf, size_t size);

/* Zeroed float32 array of n values, 64-byte aligned (a cache line, an
 * AVX-512 vector). Free with tensor_free_floats. */
rt_status tensor_alloc_floats(float **out, int64_t n);
void tensor_free_floats(float *p);

#endif
