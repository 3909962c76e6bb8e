/* sample.c - generation from saved parameters (see sample.h). Each step
 * runs the whole forward over a window of ctx tokens: the context so far
 * (its last ctx tokens), padded with token 0 after its end, which the
 * causal mask keeps from affecting the positions before it; the next token
 * comes from the logits at the context's last position. Without a key-value
 * cache this costs a full forward per token, which the small CPU models
 * this serves afford. */
#include "trainer/run/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "trainer/model/init.h"
#include "trainer/ops/cpu_threads.h"
#include "trainer/run/saved_model.h"

#define SAMPLE_MAX_TOKENS 1000000

static int cmp_desc(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

int sample_choose(const float *logits, int vocab, double temperature, int top_k, double u)
{
    int best = 0;
    for (int i = 1; i < vocab; i++)
        if (logits[i] > logits[best])
            best = i;
    if (temperature <= 0.0)
        return best;
    float cut = -INFINITY;
    if (top_k > 0 && top_k < vocab) {
        float *sorted = malloc(sizeof(float) * (size_t)vocab);
        if (!sorted)
            return best;
        memcpy(sorted, logits, sizeof(float) * (size_t)vocab);
        qsort(sorted, (size_t)vocab, sizeof(float), cmp_desc);
        cut = sorted[top_k - 1];
        free(sorted);
    }
    const double maxv = logits[best] / temperature;
    double total = 0.0;
    for (int i = 0; i < vocab; i++)
        if (logits[i] >= cut)
            total += exp(logits[i] / temperature - maxv);
    double acc = 0.0;
    int last = best;
    for (int i = 0; i < vocab; i++) {
        if (logits[i] < cut)
            continue;
        acc += exp(logits[i] / temperature - maxv) / total;
        last = i;
        if (u < acc)
            return i;
    }
    return last;  /* u beyond the rounding of the cumulative sum */
}

static rt_status check_config(const sample_config_t *c)
{
    if (c->tokens < 1 || c->tokens > SAMPLE_MAX_TOKENS)
        return rt_fail(RT_ERR_USAGE, "--tokens must be in 1..%d, got %d", SAMPLE_MAX_TOKENS,
                       c->tokens);
    if (!(c->temperature >= 0.0) || !isfinite(c->temperature))
        return rt_fail(RT_ERR_USAGE, "--temperature must be a finite number >= 0, got %g",
                       c->temperature);
    if (c->top_k < 0)
        return rt_fail(RT_ERR_USAGE, "--top-k must not be negative, got %d", c->top_k);
    if (c->threads < 0 || c->threads > CPU_MAX_THREADS)
        return rt_fail(RT_ERR_USAGE, "--threads must be in 0..%d (0: all cores), got %d",
                       CPU_MAX_THREADS, c->threads);
    return RT_OK;
}

static rt_status generate(saved_model_t *sm, const sample_config_t *c, sample_emit_fn emit,
                          void *ctx)
{
    const int T = (int)sm->io.context, V = sm->io.vocab;
    const size_t plen = strlen(c->prompt);
    const size_t cap = (plen ? plen : 1) + (size_t)c->tokens;
    int32_t *seq = calloc(cap, sizeof *seq);
    int32_t *window = calloc(2 * (size_t)T, sizeof *window);
    if (!seq || !window) {
        free(seq);
        free(window);
        return rt_fail(RT_ERR_NOMEM, "sample: out of memory for %zu tokens", cap);
    }
    size_t len = 0;
    if (plen == 0)
        seq[len++] = '\n';
    for (size_t i = 0; i < plen; i++)
        seq[len++] = (unsigned char)c->prompt[i];
    rt_rng_t rng;
    rt_rng_seed(&rng, c->seed);
    rt_status st = RT_OK;
    for (size_t i = 0; c->echo_prompt && i < plen && st == RT_OK; i++)
        st = emit(ctx, (unsigned char)c->prompt[i]);
    model_t *m = &sm->model;
    for (int n = 0; n < c->tokens && st == RT_OK; n++) {
        const size_t start = len > (size_t)T ? len - (size_t)T : 0, used = len - start;
        memset(window, 0, sizeof *window * 2 * (size_t)T);
        memcpy(window, seq + start, sizeof *window * used);
        rt_batch_t b = {.rows = 1,
                        .inputs = tensor_2d(window, RT_DTYPE_I32, 1, T),
                        .targets = tensor_2d(window + T, RT_DTYPE_I32, 1, T)};
        rt_tensor_t losses, logits;
        TRY_GOTO(st, m->kind->forward(m, &b, &losses), out);
        TRY_GOTO(st, m->kind->logits(m, &logits), out);
        const float *row = (const float *)logits.data + (used - 1) * (size_t)V;
        const double u = (double)(rt_rng_next(&rng) >> 11) * (1.0 / 9007199254740992.0);
        const int tok = sample_choose(row, V, c->temperature, c->top_k, u);
        seq[len++] = tok;
        st = emit(ctx, tok);
    }
out:
    free(seq);
    free(window);
    return st;
}

rt_status sample_run(const sample_config_t *cfg, sample_emit_fn emit, void *ctx)
{
    TRY(check_config(cfg));
    saved_model_t sm;
    rt_status st = saved_model_load(&sm, cfg->ckpt, "ckpt");
    if (st == RT_OK && (sm.io.batch != RT_BATCH_TOKENS || sm.io.vocab != 256 || !sm.spec.kind->logits))
        st = rt_fail(RT_ERR_USAGE,
                     "--ckpt %s holds %s; sampling text needs a byte-level language model "
                     "(vocab=256)",
                     cfg->ckpt, sm.spec.text[0] ? sm.spec.text : "no model");
    if (st == RT_OK)
        st = saved_model_open(&sm, 1);
    /* after the model is in memory, before the first product (cpu_threads.h) */
    if (st == RT_OK)
        st = cpu_set_threads(cfg->threads ? cfg->threads : cpu_default_threads(1));
    if (st == RT_OK)
        st = generate(&sm, cfg, emit, ctx);
    saved_model_free(&sm);
    return st;
}
