/* params.c - layout of the parameter and gradient arenas. */
#include "trainer/params.h"

#include <stdio.h>
#include <string.h>

#include "common/check.h"

rt_status param_set_add(param_set_t *ps, const char *name, int ndim, const int64_t *shape)
{
    CHECK_ARG(ps->data == NULL, "param_set_add after allocation");
    CHECK_ARG(ps->count < RT_PARAMS_MAX, "more than %d parameters", RT_PARAMS_MAX);
    CHECK_ARG(ndim >= 1 && ndim <= RT_TENSOR_MAX_DIMS, "parameter %s: bad rank %d", name, ndim);
    CHECK_ARG(strlen(name) < RT_PARAM_NAME_MAX, "parameter name too long: %s", name);
    param_entry_t *e = &ps->entries[ps->count];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->ndim = ndim;
    e->numel = 1;
    for (int i = 0; i < ndim; i++) {
        CHECK_ARG(shape[i] > 0, "parameter %s: dimension %d is %lld", name, i,
                  (long long)shape[i]);
        e->shape[i] = shape[i];
        e->numel *= shape[i];
    }
    e->offset = (ps->total + RT_PARAM_ALIGN - 1) / RT_PARAM_ALIGN * RT_PARAM_ALIGN;
    ps->total = e->offset + e->numel;
    ps->count++;
    return RT_OK;
}

rt_status param_set_alloc(param_set_t *ps)
{
    TRY(tensor_alloc_floats(&ps->data, ps->total));
    rt_status st = tensor_alloc_floats(&ps->grad, ps->total);
    if (st != RT_OK) {
        tensor_free_floats(ps->data);
        ps->data = NULL;
    }
    return st;
}

void param_set_free(param_set_t *ps)
{
    tensor_free_floats(ps->data);
    tensor_free_floats(ps->grad);
    ps->data = ps->grad = NULL;
}

tensor_t param_set_tensor(const param_set_t *ps, int i)
{
    const param_entry_t *e = &ps->entries[i];
    return tensor_view(ps->data + e->offset, e->ndim, e->shape);
}

tensor_t param_set_grad_tensor(const param_set_t *ps, int i)
{
    const param_entry_t *e = &ps->entries[i];
    return tensor_view(ps->grad + e->offset, e->ndim, e->shape);
}

int param_set_find(const param_set_t *ps, const char *name)
{
    for (int i = 0; i < ps->count; i++)
        if (!strcmp(ps->entries[i].name, name))
            return i;
    return -1;
}

int64_t param_set_numel(const param_set_t *ps)
{
    int64_t n = 0;
    for (int i = 0; i < ps->count; i++)
        n += ps->entries[i].numel;
    return n;
}
