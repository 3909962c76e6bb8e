/* train_ckpt.c - the named arrays of a training checkpoint over the live
 * state (see train_ckpt.h for the names). */
#include "launch/train_ckpt.h"

#include <stdio.h>
#include <string.h>

static void add(train_ckpt_list_t *l, const char *name, rt_dtype type, void *data, int rank,
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

void train_ckpt_scalars(train_ckpt_list_t *l, train_scalars_t *sc)
{
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
}

/* One group of per-parameter arrays over an arena with the params' layout. */
static void add_arena(train_ckpt_list_t *l, int *names, const char *prefix, const param_set_t *ps,
                      float *arena)
{
    for (int i = 0; i < ps->count; i++) {
        const param_entry_t *e = &ps->entries[i];
        char *name = l->names[(*names)++];
        snprintf(name, sizeof l->names[0], "%s%s", prefix, e->name);
        add(l, name, RT_DTYPE_F32, arena + e->offset, e->ndim, e->shape);
    }
}

void train_ckpt_all(train_ckpt_list_t *l, param_set_t *ps, optimizer_t *opt, train_scalars_t *sc)
{
    int names = 0;
    l->n = 0;
    add_arena(l, &names, "params/", ps, ps->data);
    if (opt->cfg.kind == OPTIM_ADAMW) {
        add_arena(l, &names, "optimizer/m/", ps, opt->state0);
        add_arena(l, &names, "optimizer/v/", ps, opt->state1);
    } else if (opt->state0) {
        add_arena(l, &names, "optimizer/momentum/", ps, opt->state0);
    }
    train_ckpt_scalars(l, sc);
}

void train_json_string(char *buf, size_t size, size_t *len, const char *s)
{
    size_t o = *len;
#define PUT(...) (o += (size_t)snprintf(buf + (o < size ? o : size), o < size ? size - o : 0, __VA_ARGS__))
    PUT("\"");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            PUT("\\%c", *p);
        else if (*p < 0x20)
            PUT("\\u%04x", *p);
        else
            PUT("%c", *p);
    }
    PUT("\"");
#undef PUT
    *len = o;
}
