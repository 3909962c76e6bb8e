/* params.h - a model's parameters as one contiguous float32 arena and its
 * gradients as a second arena with the same layout, so that gradient buckets
 * are contiguous slices and one all-reduce or optimizer loop covers them.
 * Each parameter has a PyTorch state_dict name ("fc1.weight" [out, in],
 * "fc1.bias") that checkpoints and exports use. */
#ifndef RT_TRAINER_PARAMS_H
#define RT_TRAINER_PARAMS_H

#include <stdint.h>

#include "common/status.h"
#include "trainer/tensor.h"

#define RT_PARAM_NAME_MAX 48
#define RT_PARAMS_MAX 64
/* Each parameter starts on a multiple of this many floats (64 bytes); the
 * gaps are zero in both arenas and never change. */
#define RT_PARAM_ALIGN 16

typedef struct {
    char name[RT_PARAM_NAME_MAX];
    int ndim;
    int64_t shape[RT_TENSOR_MAX_DIMS];
    int64_t offset;   /* in floats, from the start of the arena */
    int64_t numel;
} param_entry_t;

typedef struct {
    param_entry_t entries[RT_PARAMS_MAX];
    int count;
    int64_t total;    /* floats in each arena, gaps included */
    float *data;      /* parameters */
    float *grad;      /* gradients, same layout */
} param_set_t;

/* Declares a parameter (before param_set_alloc). */
rt_status param_set_add(param_set_t *ps, const char *name, int ndim, const int64_t *shape);
/* Allocates both arenas (zeroed). */
rt_status param_set_alloc(param_set_t *ps);
void param_set_free(param_set_t *ps);

/* The parameter or gradient of entry i as a tensor view. */
tensor_t param_set_tensor(const param_set_t *ps, int i);
tensor_t param_set_grad_tensor(const param_set_t *ps, int i);
/* Index of the entry with this name, or -1. */
int param_set_find(const param_set_t *ps, const char *name);
/* Sum of numel over entries (the gaps excluded). */
int64_t param_set_numel(const param_set_t *ps);

#endif
