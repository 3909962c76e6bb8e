/* mlp.c - the MLP's spec, parameters, forward and backward over op.h. */
#include "trainer/mlp.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "trainer/init.h"
#include "trainer/op.h"

rt_status mlp_spec_parse(const char *text, mlp_spec_t *out)
{
    memset(out, 0, sizeof *out);
    if (!text || strncmp(text, "mlp:", 4) != 0)
        return rt_fail(RT_ERR_USAGE, "model spec '%s' is not known (expected mlp:IN,HIDDEN...,CLASSES)",
                       text ? text : "");
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
        out->sizes[n++] = (int)v;
        if (*end == '\0')
            break;
        if (*end != ',')
            return rt_fail(RT_ERR_USAGE, "model spec '%s': unexpected '%c'", text, *end);
        p = end + 1;
    }
    if (n < 2)
        return rt_fail(RT_ERR_USAGE, "model spec '%s': needs at least inputs and classes", text);
    if (out->sizes[n - 1] < 2)
        return rt_fail(RT_ERR_USAGE, "model spec '%s': needs at least 2 classes", text);
    out->nlayers = n - 1;
    return RT_OK;
}

void mlp_spec_format(const mlp_spec_t *spec, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "mlp:");
    for (int i = 0; i <= spec->nlayers && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ",%d" : "%d", spec->sizes[i]);
}

rt_status mlp_create(mlp_t *m, const mlp_spec_t *spec, int max_batch)
{
    memset(m, 0, sizeof *m);
    CHECK_ARG(spec->nlayers >= 1 && spec->nlayers <= MLP_MAX_LAYERS, "bad MLP depth %d",
              spec->nlayers);
    CHECK_ARG(max_batch >= 1, "batch must be positive, got %d", max_batch);
    m->spec = *spec;
    m->max_batch = max_batch;
    rt_status st = RT_OK;
    int widest = 0;
    for (int l = 0; l < spec->nlayers; l++) {
        char name[RT_PARAM_NAME_MAX];
        int64_t wshape[2] = {spec->sizes[l + 1], spec->sizes[l]};
        int64_t bshape[1] = {spec->sizes[l + 1]};
        snprintf(name, sizeof name, "fc%d.weight", l + 1);
        TRY_GOTO(st, param_set_add(&m->params, name, 2, wshape), fail);
        snprintf(name, sizeof name, "fc%d.bias", l + 1);
        TRY_GOTO(st, param_set_add(&m->params, name, 1, bshape), fail);
    }
    for (int l = 0; l <= spec->nlayers; l++)
        widest = spec->sizes[l] > widest ? spec->sizes[l] : widest;
    TRY_GOTO(st, param_set_alloc(&m->params), fail);
    for (int l = 1; l <= spec->nlayers; l++)
        TRY_GOTO(st, tensor_alloc_floats(&m->acts[l], (int64_t)max_batch * spec->sizes[l]), fail);
    int V = spec->sizes[spec->nlayers];
    TRY_GOTO(st, tensor_alloc_floats(&m->probs, (int64_t)max_batch * V), fail);
    TRY_GOTO(st, tensor_alloc_floats(&m->losses, max_batch), fail);
    for (int i = 0; i < 2; i++)
        TRY_GOTO(st, tensor_alloc_floats(&m->dbuf[i], (int64_t)max_batch * widest), fail);
    return RT_OK;
fail:
    mlp_free(m);
    return st;
}

void mlp_free(mlp_t *m)
{
    param_set_free(&m->params);
    for (int l = 0; l <= MLP_MAX_LAYERS; l++)
        tensor_free_floats(m->acts[l]);
    tensor_free_floats(m->probs);
    tensor_free_floats(m->losses);
    tensor_free_floats(m->dbuf[0]);
    tensor_free_floats(m->dbuf[1]);
    memset(m, 0, sizeof *m);
}

void mlp_init_params(mlp_t *m, uint64_t seed)
{
    rt_rng_t rng;
    rt_rng_seed(&rng, seed);
    for (int i = 0; i < m->params.count; i++) {
        const param_entry_t *e = &m->params.entries[i];
        int layer = i / 2;
        float bound = (float)(1.0 / sqrt((double)m->spec.sizes[layer]));
        init_uniform(m->params.data + e->offset, e->numel, bound, &rng);
    }
}

static float *layer_weight(mlp_t *m, int l, float **grad)
{
    const param_entry_t *e = &m->params.entries[2 * l];
    if (grad)
        *grad = m->params.grad + e->offset;
    return m->params.data + e->offset;
}

static float *layer_bias(mlp_t *m, int l, float **grad)
{
    const param_entry_t *e = &m->params.entries[2 * l + 1];
    if (grad)
        *grad = m->params.grad + e->offset;
    return m->params.data + e->offset;
}

void mlp_forward(mlp_t *m, const float *inputs, const int32_t *labels, int B,
                 double *loss_sum, int64_t *correct)
{
    const int L = m->spec.nlayers;
    m->input = inputs;
    m->batch = B;
    const float *x = inputs;
    for (int l = 0; l < L; l++) {
        int C = m->spec.sizes[l], OC = m->spec.sizes[l + 1];
        linear_forward_cpu(m->acts[l + 1], x, layer_weight(m, l, NULL), layer_bias(m, l, NULL),
                           B, C, OC);
        if (l + 1 < L)
            relu_forward_cpu(m->acts[l + 1], m->acts[l + 1], (int64_t)B * OC);
        x = m->acts[l + 1];
    }
    const int V = m->spec.sizes[L];
    softmax_xent_forward_cpu(m->losses, m->probs, m->acts[L], labels, B, V);
    double sum = 0.0;
    for (int b = 0; b < B; b++)
        sum += m->losses[b];
    *loss_sum = sum;
    if (correct)
        *correct = accuracy_count_cpu(m->acts[L], labels, B, V);
}

rt_status mlp_backward(mlp_t *m, const int32_t *labels, float loss_scale,
                       mlp_grad_ready_fn ready, void *ready_ctx)
{
    const int L = m->spec.nlayers, B = m->batch;
    const int V = m->spec.sizes[L];
    float *dout = m->dbuf[0];
    memset(dout, 0, sizeof(float) * (size_t)B * V);
    softmax_xent_backward_cpu(dout, m->probs, labels, loss_scale, B, V);
    for (int l = L - 1; l >= 0; l--) {
        int C = m->spec.sizes[l], OC = m->spec.sizes[l + 1];
        float *dinp = NULL;
        if (l > 0) {
            dinp = m->dbuf[(L - l) & 1];
            memset(dinp, 0, sizeof(float) * (size_t)B * C);
        }
        const float *inp = l > 0 ? m->acts[l] : m->input;
        float *dw, *db;
        const float *w = layer_weight(m, l, &dw);
        layer_bias(m, l, &db);
        linear_backward_cpu(dinp, dw, db, dout, inp, w, B, C, OC);
        if (ready)
            TRY(ready(ready_ctx, m->params.entries[2 * l].offset));
        if (dinp) {
            /* acts[l] is the ReLU output of layer l-1: mask in place */
            relu_backward_cpu(dinp, dinp, m->acts[l], (int64_t)B * C);
            dout = dinp;
        }
    }
    return RT_OK;
}
