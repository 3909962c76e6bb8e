/* params.h - the parameter registry: a model declares its parameters here
 * (PyTorch state_dict name, shape, whether weight decay applies), and the
 * registry lays them out in one contiguous arena (offsets in elements), so
 * that the gradients, the optimizer state, a device copy and a compute-
 * precision copy are arenas of the same layout: gradient buckets and
 * optimizer shards are contiguous slices, one all-reduce or one fused
 * update covers them, and a checkpoint stores each by name. No fixed cap on
 * the number of parameters. The registry holds the layout only; the arenas
 * belong to whoever allocates them (the replica, trainer/run/replica.h). */
#ifndef RT_TRAINER_MODEL_PARAMS_H
#define RT_TRAINER_MODEL_PARAMS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/status.h"
#include "trainer/ops/tensor.h"

#define RT_PARAM_NAME_MAX 96
/* Each parameter starts on a multiple of this many elements (64 bytes of
 * float32); the gaps are zero in every arena and never change. */
#define RT_PARAM_ALIGN 16

typedef struct {
    char name[RT_PARAM_NAME_MAX];
    int ndim;
    int64_t shape[RT_TENSOR_MAX_DIMS];
    int64_t offset;   /* in elements, from the start of the arena */
    int64_t numel;
    bool decay;       /* weight decay applies (a model's rule: docs/TRAINING.md) */
} param_entry_t;

typedef struct {
    param_entry_t *entries;
    int count, capacity;
    int64_t total;    /* elements in each arena, gaps included */
} param_registry_t;

/* Declares a parameter (names unique, shape dimensions positive). */
rt_status param_add(param_registry_t *reg, const char *name, int ndim, const int64_t *shape,
                    bool decay);
void param_registry_free(param_registry_t *reg);

/* Index of the entry with this name, or -1. */
int param_find(const param_registry_t *reg, const char *name);
/* Sum of numel over entries (the gaps excluded). */
int64_t param_numel(const param_registry_t *reg);
/* Entry i as a float32 view into an arena with the registry's layout. */
rt_tensor_t param_view(const param_registry_t *reg, int i, float *arena);

#endif
