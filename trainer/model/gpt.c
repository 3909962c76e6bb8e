/* gpt.c - the GPT-2 language model, written once against the op table:
 * token and learned position embeddings, pre-LayerNorm blocks (eps 1e-5) of
 * causal multi-head self-attention (fused QKV projection, scale
 * 1/sqrt(head_dim)) and an MLP of 4*dim with GELU (tanh approximation),
 * each added to the residual stream, a final LayerNorm and an LM head tied
 * to the token embedding; biases on every linear layer. The loss is the
 * cross-entropy of every position's next token.
 *
 * Parameters carry nanoGPT's state_dict names in its order
 * (transformer.wte.weight, transformer.wpe.weight, transformer.h.<i>.*,
 * transformer.ln_f.*; lm_head.weight is wte itself), so weights move to and
 * from a nanoGPT-style PyTorch module unchanged (tools/ckpt_to_torch.py adds
 * the tied lm_head.weight). Weight decay applies to every 2-D weight
 * (matmuls and embeddings), not to biases and LayerNorm (nanoGPT's rule).
 * Initialisation is GPT-2's: N(0, 0.02) for weights and embeddings, the two
 * residual projections (attn.c_proj, mlp.c_proj) N(0, 0.02/sqrt(2*layers)),
 * biases 0, LayerNorm weight 1 and bias 0.
 *
 * Forward keeps every activation backward needs (sized for max_batch rows
 * of ctx positions). Backward walks the blocks last to first with one
 * residual-gradient buffer: every backward op adds into its input's
 * gradient, so the residual connections need no op of their own. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "trainer/model/init.h"
#include "trainer/model/model.h"

#define F32 RT_DTYPE_F32
#define I32 RT_DTYPE_I32
#define GPT_LN_EPS 1e-5f
#define GPT_MAX_LAYERS 256
#define GPT_MAX_DIM 65536
#define GPT_MAX_CTX 65536
#define GPT_MAX_VOCAB 65536
#define GPT_INIT_STD 0.02f

typedef struct {
    int layers, dim, heads, ctx, vocab;
} gpt_config_t;

/* The parameters of one block, in declaration order. */
enum {
    P_LN1_W, P_LN1_B, P_ATTN_W, P_ATTN_B, P_APROJ_W, P_APROJ_B,
    P_LN2_W, P_LN2_B, P_FC_W, P_FC_B, P_MPROJ_W, P_MPROJ_B,
    P_PER_BLOCK
};
#define P_WTE 0
#define P_WPE 1
#define P_BLOCK(l, j) (2 + (l) * P_PER_BLOCK + (j))
#define P_LNF_W(L) (2 + (L) * P_PER_BLOCK)
#define P_LNF_B(L) (3 + (L) * P_PER_BLOCK)

/* Saved activations of one block, each for N = rows * ctx positions. */
typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd;  /* [N, C], [N], [N] */
    float *qkv;                        /* [N, 3C] */
    float *att;                        /* [B, NH, T, T] */
    float *atty;                       /* [N, C]: attention output, heads side by side */
    float *res_mid;                    /* [N, C]: residual after attention */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu;             /* [N, 4C] */
} gpt_block_buffers_t;

typedef struct {
    gpt_block_buffers_t *blocks;
    float **res;                       /* [L + 1] x [N, C]: res[0] embeddings, res[l+1] block l's output */
    float *tmp;                        /* [N, C]: projections before they join the residual */
    float *lnf, *lnf_mean, *lnf_rstd;
    float *logits, *probs, *losses;    /* [N, V], [N, V], [N] */
    /* backward */
    float *dres, *dc, *dqkv, *dfch, *dfch_gelu, *datt, *dlogits;
    int batch;                         /* rows of the last forward */
} gpt_buffers_t;

/* ---- spec ---------------------------------------------------------------------- */

static rt_status parse_value(const char *text, const char *key, const char *val, long lo, long hi,
                             int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (end == val || (*end != '\0' && *end != ',') || errno || v < lo || v > hi)
        return rt_fail(RT_ERR_USAGE, "model spec '%s': %s must be an integer in %ld..%ld", text,
                       key, lo, hi);
    *out = (int)v;
    return RT_OK;
}

/* "gpt:layers=L,dim=D,heads=H,ctx=T[,vocab=V]", keys in any order. */
static rt_status gpt_parse(const char *text, void **cfg_out)
{
    *cfg_out = NULL;
    if (!text || strncmp(text, "gpt:", 4) != 0)
        return rt_fail(RT_ERR_USAGE, "model spec '%s' is not known (expected %s)",
                       text ? text : "", model_kind_gpt.syntax);
    static const struct {
        const char *key;
        long lo, hi;
    } keys[] = {{"layers", 1, GPT_MAX_LAYERS}, {"dim", 1, GPT_MAX_DIM}, {"heads", 1, GPT_MAX_DIM},
                {"ctx", 1, GPT_MAX_CTX},       {"vocab", 2, GPT_MAX_VOCAB}};
    int vals[5] = {0, 0, 0, 0, 256};
    bool seen[5] = {false};
    const char *p = text + 4;
    while (*p) {
        const char *eq = strchr(p, '=');
        const char *comma = strchr(p, ',');
        if (!eq || (comma && comma < eq))
            return rt_fail(RT_ERR_USAGE, "model spec '%s': expected key=value, got '%.*s'", text,
                           comma ? (int)(comma - p) : (int)strlen(p), p);
        size_t klen = (size_t)(eq - p);
        int k = -1;
        for (int i = 0; i < 5; i++)
            if (strlen(keys[i].key) == klen && !strncmp(p, keys[i].key, klen))
                k = i;
        if (k < 0)
            return rt_fail(RT_ERR_USAGE,
                           "model spec '%s': unknown key '%.*s' (layers, dim, heads, ctx, vocab)",
                           text, (int)klen, p);
        if (seen[k])
            return rt_fail(RT_ERR_USAGE, "model spec '%s': %s given twice", text, keys[k].key);
        seen[k] = true;
        TRY(parse_value(text, keys[k].key, eq + 1, keys[k].lo, keys[k].hi, &vals[k]));
        p = comma ? comma + 1 : eq + strlen(eq);
        if (comma && !*p)
            return rt_fail(RT_ERR_USAGE, "model spec '%s': trailing ','", text);
    }
    if (seen[1] && seen[2] && vals[1] % vals[2] != 0)
        return rt_fail(RT_ERR_USAGE, "model spec '%s': dim %d is not divisible by heads %d", text,
                       vals[1], vals[2]);
    for (int i = 0; i < 4; i++)
        if (!seen[i])
            return rt_fail(RT_ERR_USAGE, "model spec '%s': %s is missing (expected %s)", text,
                           keys[i].key, model_kind_gpt.syntax);
    gpt_config_t *c = malloc(sizeof *c);
    CHECK_ALLOC(c, sizeof *c);
    *c = (gpt_config_t){.layers = vals[0], .dim = vals[1], .heads = vals[2], .ctx = vals[3],
                        .vocab = vals[4]};
    *cfg_out = c;
    return RT_OK;
}

static void gpt_format(const void *cfg, char *buf, size_t size)
{
    const gpt_config_t *c = cfg;
    snprintf(buf, size, "gpt:layers=%d,dim=%d,heads=%d,ctx=%d,vocab=%d", c->layers, c->dim,
             c->heads, c->ctx, c->vocab);
}

static void gpt_describe(const void *cfg, model_io_t *io)
{
    const gpt_config_t *c = cfg;
    memset(io, 0, sizeof *io);
    io->batch = RT_BATCH_TOKENS;
    io->context = c->ctx;
    io->vocab = c->vocab;
}

/* ---- parameters ---------------------------------------------------------------- */

static rt_status add2(param_registry_t *reg, const char *name, int64_t d0, int64_t d1)
{
    const int64_t shape[2] = {d0, d1};
    return param_add(reg, name, 2, shape, true);
}

static rt_status add1(param_registry_t *reg, const char *name, int64_t d0)
{
    const int64_t shape[1] = {d0};
    return param_add(reg, name, 1, shape, false);
}

static rt_status gpt_declare(const void *cfg, param_registry_t *reg)
{
    const gpt_config_t *c = cfg;
    const int64_t C = c->dim;
    TRY(add2(reg, "transformer.wte.weight", c->vocab, C));
    TRY(add2(reg, "transformer.wpe.weight", c->ctx, C));
    for (int l = 0; l < c->layers; l++) {
        char n[RT_PARAM_NAME_MAX];
#define NAME(leaf) (snprintf(n, sizeof n, "transformer.h.%d.%s", l, leaf), n)
        TRY(add1(reg, NAME("ln_1.weight"), C));
        TRY(add1(reg, NAME("ln_1.bias"), C));
        TRY(add2(reg, NAME("attn.c_attn.weight"), 3 * C, C));
        TRY(add1(reg, NAME("attn.c_attn.bias"), 3 * C));
        TRY(add2(reg, NAME("attn.c_proj.weight"), C, C));
        TRY(add1(reg, NAME("attn.c_proj.bias"), C));
        TRY(add1(reg, NAME("ln_2.weight"), C));
        TRY(add1(reg, NAME("ln_2.bias"), C));
        TRY(add2(reg, NAME("mlp.c_fc.weight"), 4 * C, C));
        TRY(add1(reg, NAME("mlp.c_fc.bias"), 4 * C));
        TRY(add2(reg, NAME("mlp.c_proj.weight"), C, 4 * C));
        TRY(add1(reg, NAME("mlp.c_proj.bias"), C));
#undef NAME
    }
    TRY(add1(reg, "transformer.ln_f.weight", C));
    return add1(reg, "transformer.ln_f.bias", C);
}

static bool ends_with(const char *s, const char *suffix)
{
    const size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* GPT-2's initialisation (top of file), drawn in arena order from one
 * stream: every 2-D weight normal, biases zero, LayerNorm weights one. */
static void gpt_init(const void *cfg, const param_registry_t *reg, float *arena, uint64_t seed)
{
    const gpt_config_t *c = cfg;
    rt_rng_t rng;
    rt_rng_seed(&rng, seed);
    const float proj_std = (float)(GPT_INIT_STD / sqrt(2.0 * c->layers));
    for (int i = 0; i < reg->count; i++) {
        const param_entry_t *e = &reg->entries[i];
        float *x = arena + e->offset;
        if (e->ndim == 2) {
            const bool residual_proj = ends_with(e->name, ".c_proj.weight");
            init_normal(x, e->numel, residual_proj ? proj_std : GPT_INIT_STD, &rng);
        } else {
            /* LayerNorm weights 1, every bias 0 */
            const float value = ends_with(e->name, ".weight") ? 1.0f : 0.0f;
            for (int64_t j = 0; j < e->numel; j++)
                x[j] = value;
        }
    }
}

/* ---- buffers ------------------------------------------------------------------- */

static void gpt_close(model_t *m)
{
    const gpt_config_t *c = m->cfg;
    gpt_buffers_t *b = m->impl;
    if (!b)
        return;
    rt_device_t *d = m->dev;
    for (int l = 0; b->blocks && l < c->layers; l++) {
        gpt_block_buffers_t *k = &b->blocks[l];
        float *all[] = {k->ln1, k->ln1_mean, k->ln1_rstd, k->qkv, k->att, k->atty, k->res_mid,
                        k->ln2, k->ln2_mean, k->ln2_rstd, k->fch, k->fch_gelu};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            device_free(d, all[i]);
    }
    for (int l = 0; b->res && l <= c->layers; l++)
        device_free(d, b->res[l]);
    float *all[] = {b->tmp,    b->lnf, b->lnf_mean, b->lnf_rstd,  b->logits,    b->probs,
                    b->losses, b->dres, b->dc,      b->dqkv,      b->dfch,      b->dfch_gelu,
                    b->datt,   b->dlogits};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        device_free(d, all[i]);
    free(b->blocks);
    free(b->res);
    free(b);
    m->impl = NULL;
}

static rt_status alloc_f32(model_t *m, float **p, size_t n, const char *what)
{
    return device_alloc(m->dev, (void **)p, sizeof(float) * n, what);
}

static rt_status gpt_open(model_t *m)
{
    const gpt_config_t *c = m->cfg;
    const rt_ops_t *op = m->dev->ops;
    /* Both devices have the transformer's ops; a device table without them
     * would be refused here, before any allocation. */
    if (!op->embedding_forward || !op->embedding_backward || !op->layernorm_forward ||
        !op->layernorm_backward || !op->attention_forward || !op->attention_backward ||
        !op->gelu_forward || !op->gelu_backward || !op->residual_forward)
        return rt_fail(RT_ERR_USAGE, "model gpt: the %s device has no transformer ops",
                       m->dev->kind == RT_DEVICE_CUDA ? "CUDA" : "CPU");
    gpt_buffers_t *b = calloc(1, sizeof *b);
    CHECK_ALLOC(b, sizeof *b);
    m->impl = b;
    b->blocks = calloc((size_t)c->layers, sizeof *b->blocks);
    CHECK_ALLOC(b->blocks, sizeof *b->blocks * (size_t)c->layers);
    b->res = calloc((size_t)c->layers + 1, sizeof *b->res);
    CHECK_ALLOC(b->res, sizeof *b->res * ((size_t)c->layers + 1));
    const size_t B = (size_t)m->max_batch, T = (size_t)c->ctx, C = (size_t)c->dim;
    const size_t N = B * T, V = (size_t)c->vocab, NH = (size_t)c->heads;
    for (int l = 0; l < c->layers; l++) {
        gpt_block_buffers_t *k = &b->blocks[l];
        TRY(alloc_f32(m, &k->ln1, N * C, "activations"));
        TRY(alloc_f32(m, &k->ln1_mean, N, "activations"));
        TRY(alloc_f32(m, &k->ln1_rstd, N, "activations"));
        TRY(alloc_f32(m, &k->qkv, N * 3 * C, "activations"));
        TRY(alloc_f32(m, &k->att, B * NH * T * T, "attention"));
        TRY(alloc_f32(m, &k->atty, N * C, "activations"));
        TRY(alloc_f32(m, &k->res_mid, N * C, "activations"));
        TRY(alloc_f32(m, &k->ln2, N * C, "activations"));
        TRY(alloc_f32(m, &k->ln2_mean, N, "activations"));
        TRY(alloc_f32(m, &k->ln2_rstd, N, "activations"));
        TRY(alloc_f32(m, &k->fch, N * 4 * C, "activations"));
        TRY(alloc_f32(m, &k->fch_gelu, N * 4 * C, "activations"));
    }
    for (int l = 0; l <= c->layers; l++)
        TRY(alloc_f32(m, &b->res[l], N * C, "activations"));
    TRY(alloc_f32(m, &b->tmp, N * C, "activations"));
    TRY(alloc_f32(m, &b->lnf, N * C, "activations"));
    TRY(alloc_f32(m, &b->lnf_mean, N, "activations"));
    TRY(alloc_f32(m, &b->lnf_rstd, N, "activations"));
    TRY(alloc_f32(m, &b->logits, N * V, "logits"));
    TRY(alloc_f32(m, &b->probs, N * V, "probabilities"));
    TRY(alloc_f32(m, &b->losses, N, "losses"));
    if (m->grads) {
        TRY(alloc_f32(m, &b->dres, N * C, "activation gradients"));
        TRY(alloc_f32(m, &b->dc, N * C, "activation gradients"));
        TRY(alloc_f32(m, &b->dqkv, N * 3 * C, "activation gradients"));
        TRY(alloc_f32(m, &b->dfch, N * 4 * C, "activation gradients"));
        TRY(alloc_f32(m, &b->dfch_gelu, N * 4 * C, "activation gradients"));
        TRY(alloc_f32(m, &b->datt, B * NH * T * T, "attention gradients"));
        TRY(alloc_f32(m, &b->dlogits, N * V, "logit gradients"));
    }
    return RT_OK;
}

/* ---- views --------------------------------------------------------------------- */

static rt_tensor_t mat(float *p, int64_t rows, int64_t cols)
{
    return tensor_2d(p, F32, rows, cols);
}

static rt_tensor_t vec(float *p, int64_t n)
{
    return tensor_1d(p, F32, n);
}

static rt_tensor_t cube(float *p, int64_t d0, int64_t d1, int64_t d2)
{
    const int64_t shape[3] = {d0, d1, d2};
    return tensor_view(p, F32, 3, shape);
}

static rt_tensor_t att_view(float *p, const gpt_config_t *c, int B)
{
    const int64_t shape[4] = {B, c->heads, c->ctx, c->ctx};
    return tensor_view(p, F32, 4, shape);
}

static rt_tensor_t param(const model_t *m, float *arena, int i)
{
    return param_view(m->reg, i, arena);
}

/* ---- forward and backward ------------------------------------------------------ */

static rt_status gpt_forward(model_t *m, const rt_batch_t *batch, rt_tensor_t *losses)
{
    const gpt_config_t *c = m->cfg;
    gpt_buffers_t *b = m->impl;
    const rt_ops_t *op = m->dev->ops;
    rt_device_t *d = m->dev;
    float *P = m->params;
    const int B = batch->rows, T = c->ctx, C = c->dim, L = c->layers, V = c->vocab;
    CHECK_ARG(B >= 1 && B <= m->max_batch, "gpt: micro-batch of %d rows (max %d)", B,
              m->max_batch);
    const int64_t N = (int64_t)B * T;
    rt_tensor_t x = mat(b->res[0], N, C);
    rt_tensor_t wte = param(m, P, P_WTE), wpe = param(m, P, P_WPE);
    TRY(op->embedding_forward(&x, &batch->inputs, &wte, &wpe, d));
    rt_tensor_t tmp = mat(b->tmp, N, C);
    for (int l = 0; l < L; l++) {
        gpt_block_buffers_t *k = &b->blocks[l];
#define W(j) param(m, P, P_BLOCK(l, j))
        rt_tensor_t w, bias, w2, bias2;
        rt_tensor_t ln1 = mat(k->ln1, N, C), mean1 = vec(k->ln1_mean, N), rstd1 = vec(k->ln1_rstd, N);
        w = W(P_LN1_W), bias = W(P_LN1_B);
        TRY(op->layernorm_forward(&ln1, &mean1, &rstd1, &x, &w, &bias, GPT_LN_EPS, d));
        rt_tensor_t qkv = mat(k->qkv, N, 3 * C);
        w = W(P_ATTN_W), bias = W(P_ATTN_B);
        TRY(op->linear_forward(&qkv, &ln1, &w, &bias, d));
        rt_tensor_t qkv3 = cube(k->qkv, B, T, 3 * C), atty3 = cube(k->atty, B, T, C);
        rt_tensor_t att = att_view(k->att, c, B);
        TRY(op->attention_forward(&atty3, &att, &qkv3, d));
        rt_tensor_t atty = mat(k->atty, N, C);
        w = W(P_APROJ_W), bias = W(P_APROJ_B);
        TRY(op->linear_forward(&tmp, &atty, &w, &bias, d));
        rt_tensor_t mid = mat(k->res_mid, N, C);
        TRY(op->residual_forward(&mid, &x, &tmp, d));
        rt_tensor_t ln2 = mat(k->ln2, N, C), mean2 = vec(k->ln2_mean, N), rstd2 = vec(k->ln2_rstd, N);
        w = W(P_LN2_W), bias = W(P_LN2_B);
        TRY(op->layernorm_forward(&ln2, &mean2, &rstd2, &mid, &w, &bias, GPT_LN_EPS, d));
        rt_tensor_t fch = mat(k->fch, N, 4 * C), fcg = mat(k->fch_gelu, N, 4 * C);
        w2 = W(P_FC_W), bias2 = W(P_FC_B);
        TRY(op->linear_forward(&fch, &ln2, &w2, &bias2, d));
        TRY(op->gelu_forward(&fcg, &fch, d));
        w2 = W(P_MPROJ_W), bias2 = W(P_MPROJ_B);
        TRY(op->linear_forward(&tmp, &fcg, &w2, &bias2, d));
        rt_tensor_t out = mat(b->res[l + 1], N, C);
        TRY(op->residual_forward(&out, &mid, &tmp, d));
        x = out;
#undef W
    }
    rt_tensor_t lnf = mat(b->lnf, N, C), meanf = vec(b->lnf_mean, N), rstdf = vec(b->lnf_rstd, N);
    rt_tensor_t wf = param(m, P, P_LNF_W(L)), bf = param(m, P, P_LNF_B(L));
    TRY(op->layernorm_forward(&lnf, &meanf, &rstdf, &x, &wf, &bf, GPT_LN_EPS, d));
    rt_tensor_t logits = mat(b->logits, N, V);
    TRY(op->linear_forward(&logits, &lnf, &wte, NULL, d));
    rt_tensor_t lt = vec(b->losses, N), probs = mat(b->probs, N, V);
    rt_tensor_t targets = tensor_1d(batch->targets.data, I32, N);
    TRY(op->softmax_xent_forward(&lt, &probs, &logits, &targets, d));
    b->batch = B;
    *losses = lt;
    return RT_OK;
}

static rt_status zeroed(model_t *m, const rt_tensor_t *t)
{
    return device_zero(m->dev, t->data, tensor_bytes(t));
}

/* A linear layer's backward in the order that lets communication start
 * early: its weight and bias gradients, then the hook (they are final from
 * `from` on), then the input's gradient (dinp NULL: none). */
static rt_status linear_back(model_t *m, const rt_tensor_t *dinp, const rt_tensor_t *dw,
                             const rt_tensor_t *db, const rt_tensor_t *dout,
                             const rt_tensor_t *inp, const rt_tensor_t *w, grad_ready_fn ready,
                             void *ready_ctx, int64_t from)
{
    const rt_ops_t *op = m->dev->ops;
    TRY(op->linear_backward(NULL, dw, db, dout, inp, w, m->dev));
    if (ready)
        TRY(ready(ready_ctx, from));
    return dinp ? op->linear_backward(dinp, NULL, NULL, dout, inp, w, m->dev) : RT_OK;
}

static rt_status gpt_backward(model_t *m, const rt_batch_t *batch, float loss_scale,
                              grad_ready_fn ready, void *ready_ctx)
{
    const gpt_config_t *c = m->cfg;
    gpt_buffers_t *b = m->impl;
    const rt_ops_t *op = m->dev->ops;
    rt_device_t *d = m->dev;
    float *P = m->params, *G = m->grads;
    const int B = b->batch, T = c->ctx, C = c->dim, L = c->layers, V = c->vocab;
    CHECK_ARG(G && B == batch->rows, "gpt: backward without its forward");
    const int64_t N = (int64_t)B * T;
    const param_registry_t *reg = m->reg;

    /* loss -> logits -> final LayerNorm */
    rt_tensor_t dlogits = mat(b->dlogits, N, V), probs = mat(b->probs, N, V);
    rt_tensor_t targets = tensor_1d(batch->targets.data, I32, N);
    TRY(zeroed(m, &dlogits));
    TRY(op->softmax_xent_backward(&dlogits, &probs, &targets, loss_scale, d));
    rt_tensor_t dc = mat(b->dc, N, C), lnf = mat(b->lnf, N, C);
    rt_tensor_t wte = param(m, P, P_WTE), dwte = param(m, G, P_WTE);
    TRY(zeroed(m, &dc));
    TRY(op->linear_backward(&dc, &dwte, NULL, &dlogits, &lnf, &wte, d));
    rt_tensor_t dres = mat(b->dres, N, C), xL = mat(b->res[L], N, C);
    rt_tensor_t meanf = vec(b->lnf_mean, N), rstdf = vec(b->lnf_rstd, N);
    rt_tensor_t wf = param(m, P, P_LNF_W(L)), dwf = param(m, G, P_LNF_W(L)),
                dbf = param(m, G, P_LNF_B(L));
    TRY(zeroed(m, &dres));
    TRY(op->layernorm_backward(&dres, &dwf, &dbf, &dc, &xL, &wf, &meanf, &rstdf, d));
    if (ready)
        TRY(ready(ready_ctx, reg->entries[P_LNF_W(L)].offset));

    /* the blocks, last to first; dres holds d(loss)/d(the block's output) */
    rt_tensor_t dqkv = mat(b->dqkv, N, 3 * C), dfch = mat(b->dfch, N, 4 * C),
                dfcg = mat(b->dfch_gelu, N, 4 * C);
    for (int l = L - 1; l >= 0; l--) {
        gpt_block_buffers_t *k = &b->blocks[l];
#define W(j) param(m, P, P_BLOCK(l, j))
#define DW(j) param(m, G, P_BLOCK(l, j))
#define FROM(j) (reg->entries[P_BLOCK(l, j)].offset)
        rt_tensor_t w, dw, db;
        rt_tensor_t fch = mat(k->fch, N, 4 * C), fcg = mat(k->fch_gelu, N, 4 * C);
        w = W(P_MPROJ_W), dw = DW(P_MPROJ_W), db = DW(P_MPROJ_B);
        TRY(zeroed(m, &dfcg));
        TRY(linear_back(m, &dfcg, &dw, &db, &dres, &fcg, &w, ready, ready_ctx, FROM(P_MPROJ_W)));
        TRY(zeroed(m, &dfch));
        TRY(op->gelu_backward(&dfch, &fch, &dfcg, d));
        rt_tensor_t ln2 = mat(k->ln2, N, C);
        w = W(P_FC_W), dw = DW(P_FC_W), db = DW(P_FC_B);
        TRY(zeroed(m, &dc));
        TRY(linear_back(m, &dc, &dw, &db, &dfch, &ln2, &w, ready, ready_ctx, FROM(P_FC_W)));
        rt_tensor_t mid = mat(k->res_mid, N, C);
        rt_tensor_t mean2 = vec(k->ln2_mean, N), rstd2 = vec(k->ln2_rstd, N);
        w = W(P_LN2_W), dw = DW(P_LN2_W), db = DW(P_LN2_B);
        TRY(op->layernorm_backward(&dres, &dw, &db, &dc, &mid, &w, &mean2, &rstd2, d));
        if (ready)
            TRY(ready(ready_ctx, FROM(P_LN2_W)));
        /* dres now holds d(loss)/d(res_mid) */
        rt_tensor_t atty = mat(k->atty, N, C);
        w = W(P_APROJ_W), dw = DW(P_APROJ_W), db = DW(P_APROJ_B);
        TRY(zeroed(m, &dc));
        TRY(linear_back(m, &dc, &dw, &db, &dres, &atty, &w, ready, ready_ctx, FROM(P_APROJ_W)));
        rt_tensor_t dqkv3 = cube(b->dqkv, B, T, 3 * C), qkv3 = cube(k->qkv, B, T, 3 * C);
        rt_tensor_t dc3 = cube(b->dc, B, T, C);
        rt_tensor_t att = att_view(k->att, c, B), datt = att_view(b->datt, c, B);
        TRY(zeroed(m, &dqkv));
        TRY(op->attention_backward(&dqkv3, &datt, &dc3, &qkv3, &att, d));
        rt_tensor_t ln1 = mat(k->ln1, N, C);
        w = W(P_ATTN_W), dw = DW(P_ATTN_W), db = DW(P_ATTN_B);
        TRY(zeroed(m, &dc));
        TRY(linear_back(m, &dc, &dw, &db, &dqkv, &ln1, &w, ready, ready_ctx, FROM(P_ATTN_W)));
        rt_tensor_t x = mat(b->res[l], N, C);
        rt_tensor_t mean1 = vec(k->ln1_mean, N), rstd1 = vec(k->ln1_rstd, N);
        w = W(P_LN1_W), dw = DW(P_LN1_W), db = DW(P_LN1_B);
        TRY(op->layernorm_backward(&dres, &dw, &db, &dc, &x, &w, &mean1, &rstd1, d));
        if (ready)
            TRY(ready(ready_ctx, reg->entries[P_BLOCK(l, 0)].offset));
#undef W
#undef DW
#undef FROM
    }
    rt_tensor_t dwpe = param(m, G, P_WPE);
    TRY(op->embedding_backward(&dwte, &dwpe, &dres, &batch->inputs, d));
    return ready ? ready(ready_ctx, 0) : RT_OK;
}

static rt_status gpt_logits(model_t *m, rt_tensor_t *out)
{
    const gpt_config_t *c = m->cfg;
    gpt_buffers_t *b = m->impl;
    *out = mat(b->logits, (int64_t)b->batch * c->ctx, c->vocab);
    return RT_OK;
}

/* Per token, as nanoGPT and the PaLM paper count it: 6 FLOPs per parameter
 * (the position embedding excluded: it is a lookup; the tied head counted
 * through wte) plus the attention's q.k and att.v products, 12 * layers *
 * ctx * dim (forward and backward, the causal mask not subtracted). */
static double gpt_train_flops(const void *cfg)
{
    const gpt_config_t *c = cfg;
    const double C = c->dim, L = c->layers;
    const double params = (double)c->vocab * C + L * (12.0 * C * C + 13.0 * C) + 2.0 * C;
    return 6.0 * params + 12.0 * L * c->ctx * C;
}

const model_kind_t model_kind_gpt = {
    .name = "gpt",
    .syntax = "gpt:layers=L,dim=D,heads=H,ctx=T[,vocab=V]",
    .parse = gpt_parse,
    .format = gpt_format,
    .describe = gpt_describe,
    .declare = gpt_declare,
    .init = gpt_init,
    .open = gpt_open,
    .close = gpt_close,
    .forward = gpt_forward,
    .backward = gpt_backward,
    .count_correct = NULL,
    .logits = gpt_logits,
    .train_flops = gpt_train_flops,
};
