/* model.h - the model interface: what the trainer needs from a model, as a
 * table of functions (one per model kind, in the style of NCCL's transports
 * or libuv's handles), and a model instance bound to a device. A model is
 * written once against the op table (trainer/ops/ops.h) and so runs on
 * every device; the session, the step, the optimizer and the checkpoints
 * know nothing about a particular model.
 *
 * Lifecycle: parse a spec string ("mlp:784,1024,10") into a config; declare
 * the parameters in a registry (names, shapes, decay rule); initialise them
 * into a host arena; open an instance on a device over arenas with the
 * registry's layout (the instance allocates its activations for max_batch
 * rows); forward (per-example losses), backward (accumulates into the
 * gradient arena, calling `ready` as each parameter's gradient becomes
 * final, last layer first, so that gradient buckets can be synchronised
 * while earlier layers still run). Adding a model: docs/ARCHITECTURE.md. */
#ifndef RT_TRAINER_MODEL_MODEL_H
#define RT_TRAINER_MODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "trainer/model/params.h"
#include "trainer/ops/device.h"
#include "trainer/ops/tensor.h"

/* What a model consumes. */
typedef enum {
    RT_BATCH_ROWS = 1,    /* classification rows: inputs f32 [B, features], targets i32 [B] */
    RT_BATCH_TOKENS = 2,  /* token windows: inputs i32 [B, ctx], targets i32 [B, ctx] */
} rt_batch_kind;

/* One micro-batch in the memory of the device the model runs on. */
typedef struct {
    int rows;
    rt_tensor_t inputs;
    rt_tensor_t targets;
} rt_batch_t;

/* The data a model expects, for checking a dataset before training. */
typedef struct {
    rt_batch_kind batch;
    int64_t features;  /* ROWS: elements per record */
    int classes;       /* ROWS: number of classes */
    int64_t context;   /* TOKENS: window length */
    int vocab;         /* TOKENS: vocabulary size */
} model_io_t;

/* Backward's hook: gradients at arena offsets [ready_from, total) are
 * final for this pass. */
typedef rt_status (*grad_ready_fn)(void *ctx, int64_t ready_from);

typedef struct model model_t;

typedef struct model_kind {
    const char *name;    /* the spec's prefix before ':' */
    const char *syntax;  /* for help and errors: "mlp:IN,HIDDEN...,CLASSES" */
    /* spec -> config (malloc'ed; freed with free()); RT_ERR_USAGE with the
     * reason for a bad spec */
    rt_status (*parse)(const char *spec, void **cfg);
    /* the canonical spec string */
    void (*format)(const void *cfg, char *buf, size_t size);
    void (*describe)(const void *cfg, model_io_t *io);
    rt_status (*declare)(const void *cfg, param_registry_t *reg);
    /* the model's initialisation, drawn from seed into a host arena */
    void (*init)(const void *cfg, const param_registry_t *reg, float *arena, uint64_t seed);
    /* allocate the instance's buffers (m->impl) for m->max_batch rows */
    rt_status (*open)(model_t *m);
    void (*close)(model_t *m);
    /* per-example losses (in the model's buffers, valid until the next
     * forward); the batch stays readable until backward has run */
    rt_status (*forward)(model_t *m, const rt_batch_t *b, rt_tensor_t *losses);
    /* d(loss_scale * sum of losses)/dparams added to the gradient arena */
    rt_status (*backward)(model_t *m, const rt_batch_t *b, float loss_scale, grad_ready_fn ready,
                          void *ready_ctx);
    /* after forward: rows whose prediction is the target (NULL: the model
     * has no accuracy); the count is returned to the host */
    rt_status (*count_correct)(model_t *m, const rt_batch_t *b, int64_t *count);
    /* after forward: a view of its logits, [rows * positions, outputs], in
     * the model's buffers (sampling reads them) */
    rt_status (*logits)(model_t *m, rt_tensor_t *out);
    /* model FLOPs of one training example (one token for token models):
     * forward and backward, the multiply-adds counted as 2 (MFU's numerator) */
    double (*train_flops)(const void *cfg);
} model_kind_t;

struct model {
    const model_kind_t *kind;
    const void *cfg;
    const param_registry_t *reg;
    rt_device_t *dev;
    float *params;   /* device arena of the parameters (read) */
    float *grads;    /* device arena of the gradients; NULL: forward only */
    int max_batch;
    void *impl;      /* the kind's buffers */
};

/* A parsed spec: the kind, its config and the canonical string. */
typedef struct {
    const model_kind_t *kind;
    void *cfg;
    char text[512];
} model_spec_t;

/* Finds the kind by the prefix and parses; RT_ERR_USAGE naming the known
 * kinds' syntax for an unknown one. */
rt_status model_spec_parse(const char *text, model_spec_t *out);
void model_spec_free(model_spec_t *s);
/* "mlp:IN,HIDDEN...,CLASSES" for every registered kind, '|'-separated. */
const char *model_kinds_syntax(void);

/* Opens an instance of spec on dev over the arenas (grads NULL: forward
 * only). */
rt_status model_open(model_t *m, const model_spec_t *spec, const param_registry_t *reg,
                     rt_device_t *dev, float *params, float *grads, int max_batch);
void model_close(model_t *m);

/* The registered kinds (registry.c). */
extern const model_kind_t model_kind_mlp;
extern const model_kind_t model_kind_gpt;

#endif
