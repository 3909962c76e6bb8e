/* tensor.h - dtype-tagged tensor views: a pointer into memory owned
 * elsewhere (a parameter arena, an activation buffer, a batch), its element
 * type and its shape. The ops take views, so a shape or type mismatch is an
 * error with a message instead of a wrong answer, and a second precision (a
 * bf16 compute copy) is a new dtype tag on the same op, not a new function.
 * Views say nothing about where the memory is: the device an op runs on does. */
#ifndef RT_TRAINER_OPS_TENSOR_H
#define RT_TRAINER_OPS_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "common/dtype.h"
#include "common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RT_TENSOR_MAX_DIMS 4

typedef struct {
    void *data;
    rt_dtype dtype;
    int ndim;
    int64_t shape[RT_TENSOR_MAX_DIMS];
} rt_tensor_t;

/* A view of data with the given shape (ndim 1..RT_TENSOR_MAX_DIMS). */
rt_tensor_t tensor_view(void *data, rt_dtype dtype, int ndim, const int64_t *shape);
rt_tensor_t tensor_1d(void *data, rt_dtype dtype, int64_t n);
rt_tensor_t tensor_2d(void *data, rt_dtype dtype, int64_t rows, int64_t cols);

int64_t tensor_numel(const rt_tensor_t *t);
size_t tensor_bytes(const rt_tensor_t *t);
/* Writes the shape as "[784, 1024]" into buf; returns buf. */
const char *tensor_shape_str(const rt_tensor_t *t, char *buf, size_t size);

/* RT_ERR_INVALID, naming the op and the argument, unless t is non-NULL, of
 * type dtype and of rank ndim (ndim 0: any rank). */
rt_status tensor_expect(const rt_tensor_t *t, rt_dtype dtype, int ndim, const char *op,
                        const char *arg);
/* RT_ERR_INVALID unless dimension dim of t is n. */
rt_status tensor_expect_dim(const rt_tensor_t *t, int dim, int64_t n, const char *op,
                            const char *arg);

/* Zeroed host memory of `bytes`, 64-byte aligned (a cache line, an AVX-512
 * vector). Free with host_free. */
rt_status host_alloc(void **out, size_t bytes);
void host_free(void *p);

#ifdef __cplusplus
}
#endif

#endif
