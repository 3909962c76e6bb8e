/* ckpt_state.c - the named arrays of a training checkpoint over the live
 * state (see ckpt_state.h for the names). */
#include "trainer/ckpt/ckpt_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"

static rt_status grow(ckpt_state_t *l, int more)
{
    if (l->n + more <= l->capacity)
        return RT_OK;
    int cap = l->capacity ? l->capacity : 32;
    while (cap < l->n + more)
        cap *= 2;
    ckpt_array_t *a = realloc(l->arrays, sizeof *a * (size_t)cap);
    CHECK_ALLOC(a, sizeof *a * (size_t)cap);
    l->arrays = a;
    char **names = realloc(l->names, sizeof *names * (size_t)cap);
    CHECK_ALLOC(names, sizeof *names * (size_t)cap);
    l->names = names;
    l->capacity = cap;
    return RT_OK;
}

static void add(ckpt_state_t *l, const char *name, rt_dtype type, void *data, int rank,
                const int64_t *dims)
{
    ckpt_array_t *a = &l->arrays[l->n++];
    memset(a, 0, sizeof *a);
    a->name = name;
    a->type = type;
    a->data = data;
    a->rank = rank;
    for (int i = 0; i < rank; i++)
        a->dims[i] = dims[i];
}

rt_status ckpt_state_scalars(ckpt_state_t *l, ckpt_scalars_t *sc)
{
    TRY(grow(l, 12));
    add(l, "train/step", RT_DTYPE_I64, &sc->step, 0, NULL);
    add(l, "train/skipped", RT_DTYPE_I64, &sc->skipped, 0, NULL);
    add(l, "train/loss_sum", RT_DTYPE_F64, &sc->loss_sum, 0, NULL);
    add(l, "train/loss_count", RT_DTYPE_I64, &sc->loss_count, 0, NULL);
    add(l, "optimizer/step", RT_DTYPE_I64, &sc->opt_step, 0, NULL);
    add(l, "data/seed", RT_DTYPE_U64, &sc->data_seed, 0, NULL);
    add(l, "data/epoch", RT_DTYPE_I64, &sc->data_epoch, 0, NULL);
    add(l, "data/position", RT_DTYPE_I64, &sc->data_position, 0, NULL);
    add(l, "data/batch", RT_DTYPE_I64, &sc->batch, 0, NULL);
    add(l, "data/accum", RT_DTYPE_I64, &sc->accum, 0, NULL);
    add(l, "data/world", RT_DTYPE_I64, &sc->world, 0, NULL);
    add(l, "rng/init_seed", RT_DTYPE_U64, &sc->init_seed, 0, NULL);
    return RT_OK;
}

/* One group of per-parameter arrays over an arena with the registry's layout. */
static rt_status add_arena(ckpt_state_t *l, const char *prefix, const param_registry_t *reg,
                           float *arena)
{
    TRY(grow(l, reg->count));
    for (int i = 0; i < reg->count; i++) {
        const param_entry_t *e = &reg->entries[i];
        size_t len = strlen(prefix) + strlen(e->name) + 1;
        char *name = malloc(len);
        CHECK_ALLOC(name, len);
        snprintf(name, len, "%s%s", prefix, e->name);
        l->names[l->nnames++] = name;
        add(l, name, RT_DTYPE_F32, arena + e->offset, e->ndim, e->shape);
    }
    return RT_OK;
}

static const char *state_prefix(optim_kind kind, int i)
{
    if (kind == OPTIM_ADAMW)
        return i == 0 ? "optimizer/m/" : "optimizer/v/";
    return "optimizer/momentum/";
}

rt_status ckpt_state_all(ckpt_state_t *l, const param_registry_t *reg, float *params,
                         const optim_config_t *optim, float *const state[2], ckpt_scalars_t *sc)
{
    ckpt_state_free(l);
    TRY(add_arena(l, "params/", reg, params));
    for (int i = 0; i < optim_state_count(optim); i++)
        TRY(add_arena(l, state_prefix(optim->kind, i), reg, state[i]));
    return ckpt_state_scalars(l, sc);
}

void ckpt_state_optimizer_probe(const param_registry_t *reg, optim_kind kind, char *buf,
                                size_t size)
{
    snprintf(buf, size, "%s%s", state_prefix(kind, 0), reg->count ? reg->entries[0].name : "");
}

void ckpt_state_free(ckpt_state_t *l)
{
    for (int i = 0; i < l->nnames; i++)
        free(l->names[i]);
    free(l->names);
    free(l->arrays);
    memset(l, 0, sizeof *l);
}
