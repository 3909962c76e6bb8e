/* mlp.h - the MLP classifier: Linear layers with ReLU between them and a
 * softmax cross-entropy loss, as nn.Sequential(Linear, ReLU, ..., Linear)
 * with F.cross_entropy in PyTorch. Spec "mlp:784,1024,1024,10" gives layers
 * fc1 [1024,784], fc2 [1024,1024], fc3 [10,1024] (any depth and widths).
 *
 * Forward keeps every activation for backward (sized for max_batch rows);
 * backward accumulates into the gradient arena and, after each layer, tells
 * the caller which tail of the arena is final so that gradient buckets can be
 * reduced while earlier layers still run. */
#ifndef RT_TRAINER_MLP_H
#define RT_TRAINER_MLP_H

#include <stdint.h>

#include "common/status.h"
#include "trainer/params.h"

#define MLP_MAX_LAYERS 16
#define MLP_MAX_WIDTH (1 << 20)

typedef struct {
    int nlayers;                    /* Linear layers */
    int sizes[MLP_MAX_LAYERS + 1];  /* sizes[0] inputs ... sizes[nlayers] classes */
} mlp_spec_t;

/* Parses "mlp:784,1024,1024,10": at least two sizes, each 1..MLP_MAX_WIDTH,
 * at least two classes. RT_ERR_USAGE with the reason otherwise. */
rt_status mlp_spec_parse(const char *text, mlp_spec_t *out);
/* Writes the canonical spec string. */
void mlp_spec_format(const mlp_spec_t *spec, char *buf, size_t size);

typedef struct {
    mlp_spec_t spec;
    param_set_t params;              /* fc<i>.weight, fc<i>.bias for i = 1.. */
    int max_batch;
    const float *input;              /* the last forward's input (not owned) */
    float *acts[MLP_MAX_LAYERS + 1]; /* acts[l+1]: output of layer l (after ReLU
                                        for hidden layers); acts[nlayers] = logits */
    float *probs;                    /* softmax of the logits, saved for backward */
    float *losses;                   /* per-sample loss */
    float *dbuf[2];                  /* activation gradients, ping-pong */
    int batch;                       /* rows of the last forward */
} mlp_t;

/* Called after each layer's backward: gradients at arena offsets
 * [ready_from, params.total) are final for this pass. */
typedef rt_status (*mlp_grad_ready_fn)(void *ctx, int64_t ready_from);

rt_status mlp_create(mlp_t *m, const mlp_spec_t *spec, int max_batch);
void mlp_free(mlp_t *m);

/* nn.Linear's default initialisation of every layer from seed (init.h). */
void mlp_init_params(mlp_t *m, uint64_t seed);

/* Forward over B rows: inputs [B, sizes[0]], labels [B] in [0, classes).
 * *loss_sum receives the sum of per-sample losses (double); *correct (may be
 * NULL) the number of rows whose argmax is the label. */
void mlp_forward(mlp_t *m, const float *inputs, const int32_t *labels, int B,
                 double *loss_sum, int64_t *correct);

/* Backward of the last forward: adds d(loss_scale * sum of losses)/dparams
 * to the gradient arena (loss_scale = 1/B for a mean). ready may be NULL. */
rt_status mlp_backward(mlp_t *m, const int32_t *labels, float loss_scale,
                       mlp_grad_ready_fn ready, void *ready_ctx);

#endif
