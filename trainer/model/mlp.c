/* mlp.c - the MLP classifier, written once against the op table so that it
 * runs on every device: Linear layers with ReLU between them and a softmax
 * cross-entropy loss, as nn.Sequential(Linear, ReLU, ..., Linear) with
 * F.cross_entropy in PyTorch. Spec "mlp:784,1024,1024,10" gives layers fc1
 * [1024,784], fc2 [1024,1024], fc3 [10,1024] (any depth and widths); the
 * parameters are fc<i>.weight and fc<i>.bias, all with weight decay (as
 * torch.optim applies it over model.parameters()).
 *
 * Forward keeps every activation for backward (sized for max_batch rows);
 * backward accumulates into the gradient arena and, after each layer, tells
 * the caller which tail of the arena is final. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "trainer/model/init.h"
#include "trainer/model/model.h"

#define MLP_MAX_LAYERS 16
#define MLP_MAX_WIDTH (1 << 20)
/* With a gradient-ready hook, a layer of at least twice this many weights
 * has its weight gradient computed in row blocks of about this many (256 Ki
 * floats, 1 MiB: a quarter of the default bucket, and no smaller than the
 * plan's smallest bucket of the default size), the hook told after each,
 * so that the exchange of a large layer starts before the layer is done
 * and the part of the first layer left after backward stays small. */
#define MLP_READY_BLOCK ((int64_t)1 << 18)
#define F32 RT_DTYPE_F32

typedef struct {
    int nlayers;                    /* Linear layers */
    int sizes[MLP_MAX_LAYERS + 1];  /* sizes[0] inputs ... sizes[nlayers] classes */
} mlp_config_t;

typedef struct {
    float *acts[MLP_MAX_LAYERS + 1]; /* acts[l+1]: output of layer l (after ReLU for
                                        hidden layers); acts[nlayers] = logits */
    float *probs;                    /* softmax of the logits, saved for backward */
    float *losses;                   /* per-sample loss */
    float *dbuf[2];                  /* activation gradients, ping-pong */
    int64_t *correct;                /* accuracy count (device) */
    int batch;                       /* rows of the last forward */
} mlp_buffers_t;

/* "mlp:784,1024,1024,10": at least two sizes, each 1..MLP_MAX_WIDTH, at
 * least two classes. */
static rt_status mlp_parse(const char *text, void **cfg_out)
{
    *cfg_out = NULL;
    if (!text || strncmp(text, "mlp:", 4) != 0)
        return rt_fail(RT_ERR_USAGE, "model spec '%s' is not known (expected %s)",
                       text ? text : "", model_kind_mlp.syntax);
    mlp_config_t c;
    memset(&c, 0, sizeof c);
    const char *p = text + 4;
    int n = 0;
    while (1) {
        char *end = NULL;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > MLP_MAX_WIDTH)
            return rt_fail(RT_ERR_USAGE, "model spec '%s': size %d is not an integer in 1..%d",
                           text, n + 1, MLP_MAX_WIDTH);
        if (n > MLP_MAX_LAYERS)
            return rt_fail(RT_ERR_USAGE, "model spec '%s': more than %d layers", text,
                           MLP_MAX_LAYERS);
        c.sizes[n++] = (int)v;
        if (*end == '\0')
            break;
        if (*end != ',')
            return rt_fail(RT_ERR_USAGE, "model spec '%s': unexpected '%c'", text, *end);
        p = end + 1;
    }
    if (n < 2)
        return rt_fail(RT_ERR_USAGE, "model spec '%s': needs at least inputs and classes", text);
    if (c.sizes[n - 1] < 2)
        return rt_fail(RT_ERR_USAGE, "model spec '%s': needs at least 2 classes", text);
    c.nlayers = n - 1;
    mlp_config_t *out = malloc(sizeof *out);
    CHECK_ALLOC(out, sizeof *out);
    *out = c;
    *cfg_out = out;
    return RT_OK;
}

static void mlp_format(const void *cfg, char *buf, size_t size)
{
    const mlp_config_t *c = cfg;
    size_t used = (size_t)snprintf(buf, size, "mlp:");
    for (int i = 0; i <= c->nlayers && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ",%d" : "%d", c->sizes[i]);
}

static void mlp_describe(const void *cfg, model_io_t *io)
{
    const mlp_config_t *c = cfg;
    memset(io, 0, sizeof *io);
    io->batch = RT_BATCH_ROWS;
    io->features = c->sizes[0];
    io->classes = c->sizes[c->nlayers];
}

static rt_status mlp_declare(const void *cfg, param_registry_t *reg)
{
    const mlp_config_t *c = cfg;
    for (int l = 0; l < c->nlayers; l++) {
        char name[RT_PARAM_NAME_MAX];
        int64_t wshape[2] = {c->sizes[l + 1], c->sizes[l]};
        int64_t bshape[1] = {c->sizes[l + 1]};
        snprintf(name, sizeof name, "fc%d.weight", l + 1);
        TRY(param_add(reg, name, 2, wshape, true));
        snprintf(name, sizeof name, "fc%d.bias", l + 1);
        TRY(param_add(reg, name, 1, bshape, true));
    }
    return RT_OK;
}

/* nn.Linear's default: weight and bias of layer l ~ U(-1/sqrt(in), 1/sqrt(in)),
 * drawn in arena order from one stream (init.h). */
static void mlp_init(const void *cfg, const param_registry_t *reg, float *arena, uint64_t seed)
{
    const mlp_config_t *c = cfg;
    rt_rng_t rng;
    rt_rng_seed(&rng, seed);
    for (int i = 0; i < reg->count; i++) {
        const param_entry_t *e = &reg->entries[i];
        float bound = (float)(1.0 / sqrt((double)c->sizes[i / 2]));
        init_uniform(arena + e->offset, e->numel, bound, &rng);
    }
}

static void mlp_close(model_t *m)
{
    mlp_buffers_t *b = m->impl;
    if (!b)
        return;
    for (int l = 0; l <= MLP_MAX_LAYERS; l++)
        device_free(m->dev, b->acts[l]);
    device_free(m->dev, b->probs);
    device_free(m->dev, b->losses);
    device_free(m->dev, b->dbuf[0]);
    device_free(m->dev, b->dbuf[1]);
    device_free(m->dev, b->correct);
    free(b);
    m->impl = NULL;
}

static rt_status mlp_open(model_t *m)
{
    const mlp_config_t *c = m->cfg;
    mlp_buffers_t *b = calloc(1, sizeof *b);
    CHECK_ALLOC(b, sizeof *b);
    m->impl = b;
    const size_t rows = (size_t)m->max_batch;
    int widest = 0;
    for (int l = 0; l <= c->nlayers; l++)
        widest = c->sizes[l] > widest ? c->sizes[l] : widest;
    for (int l = 1; l <= c->nlayers; l++)
        TRY(device_alloc(m->dev, (void **)&b->acts[l], sizeof(float) * rows * (size_t)c->sizes[l],
                         "activations"));
    const size_t V = (size_t)c->sizes[c->nlayers];
    TRY(device_alloc(m->dev, (void **)&b->probs, sizeof(float) * rows * V, "probabilities"));
    TRY(device_alloc(m->dev, (void **)&b->losses, sizeof(float) * rows, "losses"));
    if (m->grads)
        for (int i = 0; i < 2; i++)
            TRY(device_alloc(m->dev, (void **)&b->dbuf[i], sizeof(float) * rows * (size_t)widest,
                             "activation gradients"));
    TRY(device_alloc(m->dev, (void **)&b->correct, sizeof(int64_t), "accuracy count"));
    return RT_OK;
}

static rt_tensor_t weight(const model_t *m, float *arena, int l)
{
    return param_view(m->reg, 2 * l, arena);
}

static rt_tensor_t bias(const model_t *m, float *arena, int l)
{
    return param_view(m->reg, 2 * l + 1, arena);
}

static rt_status mlp_forward(model_t *m, const rt_batch_t *batch, rt_tensor_t *losses)
{
    const mlp_config_t *c = m->cfg;
    mlp_buffers_t *b = m->impl;
    const rt_ops_t *op = m->dev->ops;
    const int L = c->nlayers, B = batch->rows;
    CHECK_ARG(B >= 1 && B <= m->max_batch, "mlp: micro-batch of %d rows (max %d)", B,
              m->max_batch);
    rt_tensor_t x = batch->inputs;
    for (int l = 0; l < L; l++) {
        rt_tensor_t out = tensor_2d(b->acts[l + 1], F32, B, c->sizes[l + 1]);
        rt_tensor_t w = weight(m, m->params, l), bv = bias(m, m->params, l);
        TRY(op->linear_forward(&out, &x, &w, &bv, m->dev));
        if (l + 1 < L)
            TRY(op->relu_forward(&out, &out, m->dev));
        x = out;
    }
    rt_tensor_t lt = tensor_1d(b->losses, F32, B);
    rt_tensor_t probs = tensor_2d(b->probs, F32, B, c->sizes[L]);
    TRY(op->softmax_xent_forward(&lt, &probs, &x, &batch->targets, m->dev));
    b->batch = B;
    *losses = lt;
    return RT_OK;
}

static rt_status mlp_backward(model_t *m, const rt_batch_t *batch, float loss_scale,
                              grad_ready_fn ready, void *ready_ctx)
{
    const mlp_config_t *c = m->cfg;
    mlp_buffers_t *b = m->impl;
    const rt_ops_t *op = m->dev->ops;
    const int L = c->nlayers, B = b->batch, V = c->sizes[L];
    CHECK_ARG(m->grads && B == batch->rows, "mlp: backward without its forward");
    rt_tensor_t dout = tensor_2d(b->dbuf[0], F32, B, V);
    rt_tensor_t probs = tensor_2d(b->probs, F32, B, V);
    TRY(device_zero(m->dev, dout.data, tensor_bytes(&dout)));
    TRY(op->softmax_xent_backward(&dout, &probs, &batch->targets, loss_scale, m->dev));
    for (int l = L - 1; l >= 0; l--) {
        const int C = c->sizes[l];
        rt_tensor_t dinp = tensor_2d(b->dbuf[(L - l) & 1], F32, B, C);
        if (l > 0)
            TRY(device_zero(m->dev, dinp.data, tensor_bytes(&dinp)));
        rt_tensor_t inp = l > 0 ? tensor_2d(b->acts[l], F32, B, C) : batch->inputs;
        rt_tensor_t w = weight(m, m->params, l);
        rt_tensor_t dw = weight(m, m->grads, l), db = bias(m, m->grads, l);
        /* the layer's parameter gradients first, so that their exchange
         * (the hook) runs while the input's gradient computes */
        const int OC = c->sizes[l + 1];
        const int64_t w_off = m->reg->entries[2 * l].offset;
        if (ready && (int64_t)OC * C >= 2 * MLP_READY_BLOCK) {
            /* a large layer a block of rows at a time, the last first (the
             * bias, after the weight in the arena, before them all) */
            TRY(op->linear_backward(NULL, NULL, &db, &dout, &inp, &w, m->dev));
            const int rows = MLP_READY_BLOCK / C > 0 ? (int)(MLP_READY_BLOCK / C) : 1;
            for (int r1 = OC; r1 > 0; r1 -= rows) {
                const int r0 = r1 - rows > 0 ? r1 - rows : 0;
                rt_tensor_t dwr = tensor_2d((float *)dw.data + (int64_t)r0 * C, F32, r1 - r0, C);
                TRY(op->linear_weight_rows(&dwr, &dout, &inp, r0, m->dev));
                TRY(ready(ready_ctx, w_off + (int64_t)r0 * C));
            }
        } else {
            TRY(op->linear_backward(NULL, &dw, &db, &dout, &inp, &w, m->dev));
            if (ready)
                TRY(ready(ready_ctx, w_off));
        }
        if (l > 0)
            TRY(op->linear_backward(&dinp, NULL, NULL, &dout, &inp, &w, m->dev));
        if (l > 0) {
            /* acts[l] is the ReLU output of layer l-1: mask in place */
            TRY(op->relu_backward(&dinp, &dinp, &inp, m->dev));
            dout = dinp;
        }
    }
    return RT_OK;
}

static rt_status mlp_count_correct(model_t *m, const rt_batch_t *batch, int64_t *count)
{
    const mlp_config_t *c = m->cfg;
    mlp_buffers_t *b = m->impl;
    rt_tensor_t logits = tensor_2d(b->acts[c->nlayers], F32, b->batch, c->sizes[c->nlayers]);
    TRY(m->dev->ops->accuracy_count(b->correct, &logits, &batch->targets, m->dev));
    return device_download(m->dev, count, b->correct, sizeof *count);
}

static rt_status mlp_logits(model_t *m, rt_tensor_t *out)
{
    const mlp_config_t *c = m->cfg;
    mlp_buffers_t *b = m->impl;
    *out = tensor_2d(b->acts[c->nlayers], F32, b->batch, c->sizes[c->nlayers]);
    return RT_OK;
}

/* 2 FLOPs per weight per row forward, twice that backward (dinp, dweight). */
static double mlp_train_flops(const void *cfg)
{
    const mlp_config_t *c = cfg;
    double weights = 0;
    for (int l = 0; l < c->nlayers; l++)
        weights += (double)c->sizes[l] * c->sizes[l + 1];
    return 6.0 * weights;
}

const model_kind_t model_kind_mlp = {
    .name = "mlp",
    .syntax = "mlp:IN,HIDDEN...,CLASSES",
    .parse = mlp_parse,
    .format = mlp_format,
    .describe = mlp_describe,
    .declare = mlp_declare,
    .init = mlp_init,
    .open = mlp_open,
    .close = mlp_close,
    .forward = mlp_forward,
    .backward = mlp_backward,
    .count_correct = mlp_count_correct,
    .logits = mlp_logits,
    .train_flops = mlp_train_flops,
};
