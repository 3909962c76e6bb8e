/* tensor.c - shapes of float32 views and aligned arena allocation. */
#include "trainer/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"

tensor_t tensor_view(float *data, int ndim, const int64_t *shape)
{
    tensor_t t = {.data = data, .ndim = ndim};
    for (int i = 0; i < ndim && i < RT_TENSOR_MAX_DIMS; i++)
        t.shape[i] = shape[i];
    return t;
}

int64_t tensor_numel(const tensor_t *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

const char *tensor_shape_str(const tensor_t *t, char *buf, size_t size)
{
    size_t used = 0;
    used += (size_t)snprintf(buf + used, size - used, "[");
    for (int i = 0; i < t->ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %lld" : "%lld",
                                 (long long)t->shape[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
    return buf;
}

rt_status tensor_alloc_floats(float **out, int64_t n)
{
    CHECK_ARG(n >= 0, "negative tensor size %lld", (long long)n);
    size_t bytes = ((size_t)n * sizeof(float) + 63) & ~(size_t)63;
    float *p = NULL;
    if (bytes > 0) {
        p = aligned_alloc(64, bytes);
        CHECK_ALLOC(p, bytes);
        memset(p, 0, bytes);
    }
    *out = p;
    return RT_OK;
}

void tensor_free_floats(float *p)
{
    free(p);
}
