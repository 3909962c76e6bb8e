/* onnx_export.c - the MLP's and the GPT's forward as ONNX graphs (see
 * onnx_export.h; the graphs are drawn in docs/EXPORT.md). Each graph
 * follows the model's CPU forward op by op (trainer/model/mlp.c, gpt.c and
 * the CPU ops they call), in the same order of floating-point operations
 * where ONNX lets it, so that a runtime's logits differ from ringtrain's by
 * rounding only. */
#define _POSIX_C_SOURCE 200809L
#include "trainer/export/onnx/onnx_export.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "trainer/export/onnx/onnx_builder.h"

/* The CPU ops' constants (trainer/model/gpt.c GPT_LN_EPS,
 * trainer/ops/op_cpu_transformer.c GELU_BETA and GELU_KAPPA). */
#define GPT_LN_EPS 1e-5f
#define GELU_BETA 0.7978845608028654f
#define GELU_KAPPA 0.044715f

/* Every parameter as an initializer under its state_dict name, in the
 * registry's order, its data referenced in the arena. */
static void add_params(onnx_builder_t *b, const saved_model_t *sm)
{
    for (int i = 0; i < sm->reg.count; i++) {
        const param_entry_t *e = &sm->reg.entries[i];
        onnx_param(b, e->name, e->ndim, e->shape, sm->params + e->offset);
    }
}

/* The exporter names parameters itself; one the registry lacks means the
 * model changed under it. */
static rt_status need(const saved_model_t *sm, const char *name, int ndim, int64_t d0, int64_t d1)
{
    const int i = param_find(&sm->reg, name);
    const param_entry_t *e = i >= 0 ? &sm->reg.entries[i] : NULL;
    if (!e || e->ndim != ndim || e->shape[0] != d0 || (ndim == 2 && e->shape[1] != d1))
        return rt_fail(RT_ERR_USAGE,
                       "export onnx: model %s: parameter %s is missing or not of the expected "
                       "shape; this exporter does not support it",
                       sm->spec.text, name);
    return RT_OK;
}

/* ---- MLP ----------------------------------------------------------------------- */

/* input [B, F] -> (Gemm transB=1 -> Relu) per hidden layer -> Gemm -> logits
 * [B, classes]: mlp.c's Linear layers (x . W^T + b) with ReLU between. */
static rt_status graph_mlp(onnx_builder_t *b, const saved_model_t *sm, int64_t batch)
{
    const int layers = sm->reg.count / 2;
    int64_t width = sm->io.features;
    char w[RT_PARAM_NAME_MAX], bias[RT_PARAM_NAME_MAX];
    for (int l = 0; l < layers; l++) {
        snprintf(w, sizeof w, "fc%d.weight", l + 1);
        snprintf(bias, sizeof bias, "fc%d.bias", l + 1);
        const int i = param_find(&sm->reg, w);
        const int64_t out = i >= 0 ? sm->reg.entries[i].shape[0] : 0;
        TRY(need(sm, w, 2, out, width));
        TRY(need(sm, bias, 1, out, 0));
        width = out;
    }
    if (sm->reg.count != 2 * layers || width != sm->io.classes)
        return rt_fail(RT_ERR_USAGE, "export onnx: model %s: unexpected parameters",
                       sm->spec.text);
    add_params(b, sm);
    const int64_t in_dims[2] = {batch ? batch : -1, sm->io.features};
    const int64_t out_dims[2] = {batch ? batch : -1, sm->io.classes};
    onnx_input(b, "input", ONNX_FLOAT, 2, in_dims, "batch");
    const char *x = "input";
    for (int l = 0; l < layers; l++) {
        const bool last = l == layers - 1;
        snprintf(w, sizeof w, "fc%d.weight", l + 1);
        snprintf(bias, sizeof bias, "fc%d.bias", l + 1);
        onnx_scope(b, "fc%d", l + 1);
        x = onnx_node(b, "Gemm", last ? "logits" : NULL, x, w, bias,
                      onnx_attr_int(b, "transB", 1), NULL);
        if (!last)
            x = onnx_node(b, "Relu", NULL, x, NULL, NULL, NULL, NULL);
    }
    onnx_output(b, "logits", ONNX_FLOAT, 2, out_dims, "batch");
    return RT_OK;
}

/* ---- GPT ----------------------------------------------------------------------- */

typedef struct {
    int layers, dim, heads, ctx, vocab;
} gpt_shape_t;

/* The shape from the canonical spec (gpt.c's format: every key, in this
 * order), checked against the parameters. */
static rt_status gpt_shape(const saved_model_t *sm, gpt_shape_t *s)
{
    int used = 0;
    if (sscanf(sm->spec.text, "gpt:layers=%d,dim=%d,heads=%d,ctx=%d,vocab=%d%n", &s->layers,
               &s->dim, &s->heads, &s->ctx, &s->vocab, &used) != 5 ||
        sm->spec.text[used] != '\0' || s->heads < 1 || s->dim % s->heads != 0)
        return rt_fail(RT_ERR_USAGE, "export onnx: model spec '%s' is not a GPT spec it knows",
                       sm->spec.text);
    const int64_t C = s->dim;
    TRY(need(sm, "transformer.wte.weight", 2, s->vocab, C));
    TRY(need(sm, "transformer.wpe.weight", 2, s->ctx, C));
    for (int l = 0; l < s->layers; l++) {
        static const struct {
            const char *leaf;
            int ndim;
            int64_t d0, d1;  /* in units of C */
        } block[] = {{"ln_1.weight", 1, 1, 0},        {"ln_1.bias", 1, 1, 0},
                     {"attn.c_attn.weight", 2, 3, 1}, {"attn.c_attn.bias", 1, 3, 0},
                     {"attn.c_proj.weight", 2, 1, 1}, {"attn.c_proj.bias", 1, 1, 0},
                     {"ln_2.weight", 1, 1, 0},        {"ln_2.bias", 1, 1, 0},
                     {"mlp.c_fc.weight", 2, 4, 1},    {"mlp.c_fc.bias", 1, 4, 0},
                     {"mlp.c_proj.weight", 2, 1, 4},  {"mlp.c_proj.bias", 1, 1, 0}};
        for (size_t j = 0; j < sizeof block / sizeof block[0]; j++) {
            char n[RT_PARAM_NAME_MAX];
            snprintf(n, sizeof n, "transformer.h.%d.%s", l, block[j].leaf);
            TRY(need(sm, n, block[j].ndim, block[j].d0 * C, block[j].d1 * C));
        }
    }
    TRY(need(sm, "transformer.ln_f.weight", 1, C, 0));
    TRY(need(sm, "transformer.ln_f.bias", 1, C, 0));
    if (sm->reg.count != 4 + 12 * s->layers)
        return rt_fail(RT_ERR_USAGE, "export onnx: model %s: unexpected parameters",
                       sm->spec.text);
    return RT_OK;
}

/* The block's parameter name ("transformer.h.<l>.<leaf>") in buf. */
static const char *blk(char *buf, size_t size, int l, const char *leaf)
{
    snprintf(buf, size, "transformer.h.%d.%s", l, leaf);
    return buf;
}

/* gpt.c's LayerNorm (over the last axis, eps 1e-5). */
static const char *layernorm(onnx_builder_t *b, const char *x, const char *w, const char *bias)
{
    return onnx_node(b, "LayerNormalization", NULL, x, w, bias, onnx_attr_int(b, "axis", -1),
                     onnx_attr_float(b, "epsilon", GPT_LN_EPS));
}

static const char *linear(onnx_builder_t *b, const char *x, const char *w, const char *bias)
{
    return onnx_node(b, "Gemm", NULL, x, w, bias, onnx_attr_int(b, "transB", 1), NULL);
}

/* GELU's tanh approximation in gelu_forward_cpu's order of operations:
 * 0.5 x (1 + tanh(beta (x + ((kappa x) x) x))). Opset 17 has no Gelu. */
static const char *gelu_tanh(onnx_builder_t *b, const char *x, const char *c_kappa,
                             const char *c_beta, const char *c_half, const char *c_one)
{
    const char *k = onnx_node(b, "Mul", NULL, c_kappa, x, NULL, NULL, NULL);
    k = onnx_node(b, "Mul", NULL, k, x, NULL, NULL, NULL);
    k = onnx_node(b, "Mul", NULL, k, x, NULL, NULL, NULL);
    const char *inner = onnx_node(b, "Add", NULL, x, k, NULL, NULL, NULL);
    inner = onnx_node(b, "Mul", NULL, c_beta, inner, NULL, NULL, NULL);
    const char *th = onnx_node(b, "Tanh", NULL, inner, NULL, NULL, NULL, NULL);
    const char *left = onnx_node(b, "Mul", NULL, c_half, x, NULL, NULL, NULL);
    const char *right = onnx_node(b, "Add", NULL, c_one, th, NULL, NULL, NULL);
    return onnx_node(b, "Mul", NULL, left, right, NULL, NULL, NULL);
}

/* tokens int64 [B, T] -> logits [B, T, V]. The residual stream is [B*T, C]
 * as in gpt.c, so every linear layer is a Gemm over the checkpoint's
 * [out, in] weight (transB=1) and every LayerNorm is over its last axis;
 * only attention reshapes to heads: qkv [B*T, 3C] -> [B, T, 3, NH, hs] ->
 * [3, B, NH, T, hs], q, k, v gathered from the first axis, scores
 * q . k^T scaled by 1/sqrt(hs), the future set to -inf (a constant
 * lower-triangular mask through Where; softmax then gives it exactly the
 * zero the CPU's causal softmax writes), Softmax, . v, heads merged back to
 * [B*T, C]. The LM head is a Gemm with the token embedding (tied). */
static rt_status graph_gpt(onnx_builder_t *b, const saved_model_t *sm, int64_t batch)
{
    gpt_shape_t s;
    TRY(gpt_shape(sm, &s));
    const int64_t T = s.ctx, C = s.dim, NH = s.heads, hs = s.dim / s.heads, V = s.vocab;
    add_params(b, sm);

    /* constants shared by every block */
    const char *shape_nc = onnx_const_int64s(b, "const.shape_nc", 2, (int64_t[]){-1, C});
    const char *shape_qkv =
        onnx_const_int64s(b, "const.shape_qkv", 5, (int64_t[]){-1, T, 3, NH, hs});
    const char *shape_logits = onnx_const_int64s(b, "const.shape_logits", 3, (int64_t[]){-1, T, V});
    const char *idx[3] = {onnx_const_int64(b, "const.q", 0), onnx_const_int64(b, "const.k", 1),
                          onnx_const_int64(b, "const.v", 2)};
    const char *scale = onnx_const_float(b, "const.attn_scale", 1.0f / sqrtf((float)hs));
    const char *neg_inf = onnx_const_float(b, "const.neg_inf", -INFINITY);
    const char *c_kappa = onnx_const_float(b, "const.gelu_kappa", GELU_KAPPA);
    const char *c_beta = onnx_const_float(b, "const.gelu_beta", GELU_BETA);
    const char *c_half = onnx_const_float(b, "const.half", 0.5f);
    const char *c_one = onnx_const_float(b, "const.one", 1.0f);
    bool *causal = calloc((size_t)(T * T), sizeof *causal);
    CHECK_ALLOC(causal, (size_t)(T * T));
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j <= t; j++)
            causal[t * T + j] = true;
    const char *mask = onnx_const_bool(b, "const.causal_mask", 2, (int64_t[]){T, T}, causal);
    free(causal);

    const int64_t in_dims[2] = {batch ? batch : -1, T};
    const int64_t out_dims[3] = {batch ? batch : -1, T, V};
    onnx_input(b, "tokens", ONNX_INT64, 2, in_dims, "batch");

    /* embeddings: wte[token] + wpe[position], [B, T, C] -> [B*T, C] */
    onnx_scope(b, "embed");
    const char *tok = onnx_node(b, "Gather", NULL, "transformer.wte.weight", "tokens", NULL,
                                onnx_attr_int(b, "axis", 0), NULL);
    const char *x = onnx_node(b, "Add", NULL, tok, "transformer.wpe.weight", NULL, NULL, NULL);
    x = onnx_node(b, "Reshape", NULL, x, shape_nc, NULL, NULL, NULL);

    char p0[RT_PARAM_NAME_MAX], p1[RT_PARAM_NAME_MAX];
    for (int l = 0; l < s.layers; l++) {
        onnx_scope(b, "h.%d.attn", l);
        const char *h = layernorm(b, x, blk(p0, sizeof p0, l, "ln_1.weight"),
                                  blk(p1, sizeof p1, l, "ln_1.bias"));
        const char *qkv = linear(b, h, blk(p0, sizeof p0, l, "attn.c_attn.weight"),
                                 blk(p1, sizeof p1, l, "attn.c_attn.bias"));
        qkv = onnx_node(b, "Reshape", NULL, qkv, shape_qkv, NULL, NULL, NULL);
        qkv = onnx_node(b, "Transpose", NULL, qkv, NULL, NULL,
                        onnx_attr_ints(b, "perm", 5, (int64_t[]){2, 0, 3, 1, 4}), NULL);
        const char *q = onnx_node(b, "Gather", NULL, qkv, idx[0], NULL,
                                  onnx_attr_int(b, "axis", 0), NULL);
        const char *k = onnx_node(b, "Gather", NULL, qkv, idx[1], NULL,
                                  onnx_attr_int(b, "axis", 0), NULL);
        const char *v = onnx_node(b, "Gather", NULL, qkv, idx[2], NULL,
                                  onnx_attr_int(b, "axis", 0), NULL);
        const char *kt = onnx_node(b, "Transpose", NULL, k, NULL, NULL,
                                   onnx_attr_ints(b, "perm", 4, (int64_t[]){0, 1, 3, 2}), NULL);
        const char *att = onnx_node(b, "MatMul", NULL, q, kt, NULL, NULL, NULL);
        att = onnx_node(b, "Mul", NULL, att, scale, NULL, NULL, NULL);
        att = onnx_node(b, "Where", NULL, mask, att, neg_inf, NULL, NULL);
        att = onnx_node(b, "Softmax", NULL, att, NULL, NULL, onnx_attr_int(b, "axis", -1), NULL);
        const char *y = onnx_node(b, "MatMul", NULL, att, v, NULL, NULL, NULL);
        y = onnx_node(b, "Transpose", NULL, y, NULL, NULL,
                      onnx_attr_ints(b, "perm", 4, (int64_t[]){0, 2, 1, 3}), NULL);
        y = onnx_node(b, "Reshape", NULL, y, shape_nc, NULL, NULL, NULL);
        y = linear(b, y, blk(p0, sizeof p0, l, "attn.c_proj.weight"),
                   blk(p1, sizeof p1, l, "attn.c_proj.bias"));
        x = onnx_node(b, "Add", NULL, x, y, NULL, NULL, NULL);

        onnx_scope(b, "h.%d.mlp", l);
        h = layernorm(b, x, blk(p0, sizeof p0, l, "ln_2.weight"), blk(p1, sizeof p1, l, "ln_2.bias"));
        h = linear(b, h, blk(p0, sizeof p0, l, "mlp.c_fc.weight"),
                   blk(p1, sizeof p1, l, "mlp.c_fc.bias"));
        h = gelu_tanh(b, h, c_kappa, c_beta, c_half, c_one);
        h = linear(b, h, blk(p0, sizeof p0, l, "mlp.c_proj.weight"),
                   blk(p1, sizeof p1, l, "mlp.c_proj.bias"));
        x = onnx_node(b, "Add", NULL, x, h, NULL, NULL, NULL);
    }
    onnx_scope(b, "head");
    x = layernorm(b, x, "transformer.ln_f.weight", "transformer.ln_f.bias");
    x = onnx_node(b, "Gemm", NULL, x, "transformer.wte.weight", NULL,
                  onnx_attr_int(b, "transB", 1), NULL);
    onnx_node(b, "Reshape", "logits", x, shape_logits, NULL, NULL, NULL);
    onnx_output(b, "logits", ONNX_FLOAT, 3, out_dims, "batch");
    return RT_OK;
}

/* ---- entry points -------------------------------------------------------------- */

rt_status onnx_export_saved(const saved_model_t *sm, int64_t batch, const char *out)
{
    CHECK_ARG(batch >= 0, "onnx export: batch %lld", (long long)batch);
    const bool mlp = sm->spec.kind == &model_kind_mlp, gpt = sm->spec.kind == &model_kind_gpt;
    if (!mlp && !gpt)
        return rt_fail(RT_ERR_USAGE, "export onnx: model %s: only mlp and gpt models can be "
                                     "exported", sm->spec.text);
    onnx_builder_t *b = NULL;
    TRY(onnx_builder_new(&b));
    char doc[1024];
    if (mlp)
        snprintf(doc, sizeof doc,
                 "ringtrain %s: input float32 [batch, %lld] (a uint8 record / 255, as the "
                 "loader feeds it) -> logits float32 [batch, %d]",
                 sm->spec.text, (long long)sm->io.features, sm->io.classes);
    else
        snprintf(doc, sizeof doc,
                 "ringtrain %s: tokens int64 [batch, %lld] (ids < %d) -> logits float32 "
                 "[batch, %lld, %d] (position t predicts token t+1)",
                 sm->spec.text, (long long)sm->io.context, sm->io.vocab,
                 (long long)sm->io.context, sm->io.vocab);
    rt_status st = mlp ? graph_mlp(b, sm, batch) : graph_gpt(b, sm, batch);
    if (st == RT_OK)
        st = onnx_write(b, mlp ? "ringtrain_mlp" : "ringtrain_gpt", doc, sm->spec.text, out);
    onnx_builder_free(b);
    return st;
}

rt_status onnx_export_run(const onnx_export_config_t *cfg)
{
    saved_model_t sm;
    rt_status st = saved_model_load(&sm, cfg->ckpt, "ckpt");
    if (st == RT_OK)
        st = onnx_export_saved(&sm, cfg->batch, cfg->out);
    saved_model_free(&sm);
    return st;
}
