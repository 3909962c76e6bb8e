/* tensor.c - tensor views, their checks, and aligned host allocation. */
#include "trainer/ops/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"

rt_tensor_t tensor_view(void *data, rt_dtype dtype, int ndim, const int64_t *shape)
{
    rt_tensor_t t = {.data = data, .dtype = dtype, .ndim = ndim};
    for (int i = 0; i < ndim && i < RT_TENSOR_MAX_DIMS; i++)
        t.shape[i] = shape[i];
    return t;
}

rt_tensor_t tensor_1d(void *data, rt_dtype dtype, int64_t n)
{
    return tensor_view(data, dtype, 1, &n);
}

rt_tensor_t tensor_2d(void *data, rt_dtype dtype, int64_t rows, int64_t cols)
{
    int64_t shape[2] = {rows, cols};
    return tensor_view(data, dtype, 2, shape);
}

int64_t tensor_numel(const rt_tensor_t *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

size_t tensor_bytes(const rt_tensor_t *t)
{
    return (size_t)tensor_numel(t) * rt_dtype_size(t->dtype);
}

const char *tensor_shape_str(const rt_tensor_t *t, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < t->ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %lld" : "%lld",
                                 (long long)t->shape[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
    return buf;
}

rt_status tensor_expect(const rt_tensor_t *t, rt_dtype dtype, int ndim, const char *op,
                        const char *arg)
{
    if (t == NULL)
        return rt_fail(RT_ERR_INVALID, "%s: %s is missing", op, arg);
    if (t->dtype != dtype)
        return rt_fail(RT_ERR_INVALID, "%s: %s is %s, expected %s", op, arg,
                       rt_dtype_name(t->dtype), rt_dtype_name(dtype));
    if (ndim > 0 && t->ndim != ndim) {
        char s[96];
        return rt_fail(RT_ERR_INVALID, "%s: %s has shape %s, expected %d dimensions", op, arg,
                       tensor_shape_str(t, s, sizeof s), ndim);
    }
    return RT_OK;
}

rt_status tensor_expect_dim(const rt_tensor_t *t, int dim, int64_t n, const char *op,
                            const char *arg)
{
    if (dim < t->ndim && t->shape[dim] == n)
        return RT_OK;
    char s[96];
    return rt_fail(RT_ERR_INVALID, "%s: %s has shape %s, expected %lld in dimension %d", op, arg,
                   tensor_shape_str(t, s, sizeof s), (long long)n, dim);
}

rt_status host_alloc(void **out, size_t bytes)
{
    *out = NULL;
    if (bytes == 0)
        return RT_OK;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded);
    CHECK_ALLOC(p, rounded);
    memset(p, 0, rounded);
    *out = p;
    return RT_OK;
}

void host_free(void *p)
{
    free(p);
}
