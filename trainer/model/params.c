/* params.c - the parameter registry's layout (see params.h). */
#include "trainer/model/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"

rt_status param_add(param_registry_t *reg, const char *name, int ndim, const int64_t *shape,
                    bool decay)
{
    CHECK_ARG(ndim >= 1 && ndim <= RT_TENSOR_MAX_DIMS, "parameter %s: bad rank %d", name, ndim);
    CHECK_ARG(strlen(name) < RT_PARAM_NAME_MAX, "parameter name too long: %s", name);
    CHECK_ARG(param_find(reg, name) < 0, "parameter %s declared twice", name);
    if (reg->count == reg->capacity) {
        int cap = reg->capacity ? 2 * reg->capacity : 16;
        param_entry_t *grown = realloc(reg->entries, sizeof *grown * (size_t)cap);
        CHECK_ALLOC(grown, sizeof *grown * (size_t)cap);
        reg->entries = grown;
        reg->capacity = cap;
    }
    param_entry_t *e = &reg->entries[reg->count];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->ndim = ndim;
    e->numel = 1;
    e->decay = decay;
    for (int i = 0; i < ndim; i++) {
        CHECK_ARG(shape[i] > 0, "parameter %s: dimension %d is %lld", name, i,
                  (long long)shape[i]);
        CHECK_ARG(e->numel <= INT64_MAX / shape[i], "parameter %s: too many elements", name);
        e->shape[i] = shape[i];
        e->numel *= shape[i];
    }
    e->offset = (reg->total + RT_PARAM_ALIGN - 1) / RT_PARAM_ALIGN * RT_PARAM_ALIGN;
    reg->total = e->offset + e->numel;
    reg->count++;
    return RT_OK;
}

void param_registry_free(param_registry_t *reg)
{
    free(reg->entries);
    memset(reg, 0, sizeof *reg);
}

int param_find(const param_registry_t *reg, const char *name)
{
    for (int i = 0; i < reg->count; i++)
        if (!strcmp(reg->entries[i].name, name))
            return i;
    return -1;
}

int64_t param_numel(const param_registry_t *reg)
{
    int64_t n = 0;
    for (int i = 0; i < reg->count; i++)
        n += reg->entries[i].numel;
    return n;
}

rt_tensor_t param_view(const param_registry_t *reg, int i, float *arena)
{
    const param_entry_t *e = &reg->entries[i];
    return tensor_view(arena + e->offset, RT_DTYPE_F32, e->ndim, e->shape);
}
