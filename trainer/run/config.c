/* config.c - defaults, checks and JSON of the session settings (see
 * config.h). */
#include "trainer/run/config.h"

#include <stdio.h>
#include <string.h>

#include "common/check.h"
#include "trainer/model/model.h"
#include "trainer/ops/cpu_threads.h"
#include "trainer/optim/optim.h"
#include "trainer/optim/schedule.h"
#include "trainer/run/grad_sync.h"

void train_config_default(train_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->optimizer = "adamw";
    c->schedule = "constant";
    c->device = "auto";
    c->resume = "auto";
    c->ckpt_write = "async";
    c->lr = 1e-3;
    c->momentum = 0.9;
    c->weight_decay = -1.0;
    c->epochs = 1;
    c->accum = 1;
    c->log_every = 50;
    c->keep = 3;
    c->bucket_mb = 4.0;
    c->overlap = "thread";
    c->shuffle = true;
}

rt_status train_config_check(const train_config_t *c)
{
    if (!c->model)
        return rt_fail(RT_ERR_USAGE, "--model is required");
    if (!c->data)
        return rt_fail(RT_ERR_USAGE, "--data is required");
    model_spec_t spec;
    TRY(model_spec_parse(c->model, &spec));
    model_spec_free(&spec);
    optim_kind kind;
    sched_kind sk;
    TRY(optim_kind_parse(c->optimizer, &kind));
    TRY(sched_kind_parse(c->schedule, &sk));
    if (strcmp(c->device, "auto") && strcmp(c->device, "cpu") && strcmp(c->device, "cuda"))
        return rt_fail(RT_ERR_USAGE, "--device '%s' is not auto, cpu or cuda", c->device);
    if (!c->resume || !*c->resume)
        return rt_fail(RT_ERR_USAGE, "--resume: give auto, never or a checkpoint file");
    if (c->ckpt_dir && !*c->ckpt_dir)
        return rt_fail(RT_ERR_USAGE, "--ckpt-dir: empty directory name");
    if (!c->ckpt_write || (strcmp(c->ckpt_write, "sync") && strcmp(c->ckpt_write, "async")))
        return rt_fail(RT_ERR_USAGE, "--ckpt-write '%s' is not sync or async",
                       c->ckpt_write ? c->ckpt_write : "");
    if (c->ckpt_every < 0)
        return rt_fail(RT_ERR_USAGE, "--ckpt-every must not be negative, got %d", c->ckpt_every);
    if (c->keep < 0)
        return rt_fail(RT_ERR_USAGE, "--keep must not be negative, got %d", c->keep);
    if (c->batch < 0)
        return rt_fail(RT_ERR_USAGE, "--batch must be at least 1, got %d", c->batch);
    if (c->steps < 0)
        return rt_fail(RT_ERR_USAGE, "--steps must be at least 1, got %d", c->steps);
    if (!c->steps && c->epochs < 1)
        return rt_fail(RT_ERR_USAGE, "--epochs must be at least 1, got %d", c->epochs);
    if (c->accum < 1)
        return rt_fail(RT_ERR_USAGE, "--accum must be at least 1, got %d", c->accum);
    if (!(c->lr >= 0.0))
        return rt_fail(RT_ERR_USAGE, "--lr must not be negative, got %g", c->lr);
    if (!(c->momentum >= 0.0 && c->momentum < 1.0))
        return rt_fail(RT_ERR_USAGE, "--momentum must be in [0, 1), got %g", c->momentum);
    if (kind == OPTIM_ADAMW && c->weight_decay * c->lr >= 1.0)
        return rt_fail(RT_ERR_USAGE, "--weight-decay x --lr must be below 1 for AdamW, got %g",
                       c->weight_decay * c->lr);
    if (c->warmup < 0)
        return rt_fail(RT_ERR_USAGE, "--warmup must not be negative, got %d", c->warmup);
    if (!(c->grad_clip >= 0.0))
        return rt_fail(RT_ERR_USAGE, "--grad-clip must not be negative, got %g", c->grad_clip);
    if (c->log_every < 1)
        return rt_fail(RT_ERR_USAGE, "--log-every must be at least 1, got %d", c->log_every);
    if (c->eval_every < 0)
        return rt_fail(RT_ERR_USAGE, "--eval-every must not be negative, got %d", c->eval_every);
    if (c->threads < 0 || c->threads > CPU_MAX_THREADS)
        return rt_fail(RT_ERR_USAGE,
                       "--threads must be in 0..%d (0: cores / ranks on the node), got %d",
                       CPU_MAX_THREADS, c->threads);
    if (c->seed < 0)
        return rt_fail(RT_ERR_USAGE, "--seed must not be negative, got %d", c->seed);
    if (!(c->bucket_mb > 0.0 && c->bucket_mb <= 4096.0))
        return rt_fail(RT_ERR_USAGE, "--bucket-mb must be in (0, 4096], got %g", c->bucket_mb);
    sync_overlap ov;
    TRY(sync_overlap_parse(c->overlap ? c->overlap : "", &ov));
    if (c->zero != 0 && c->zero != 1)
        return rt_fail(RT_ERR_USAGE, "--zero must be 0 or 1, got %d", c->zero);
    if (c->trace && !*c->trace)
        return rt_fail(RT_ERR_USAGE, "--trace: empty file name");
    if (c->tensorboard && !*c->tensorboard)
        return rt_fail(RT_ERR_USAGE, "--tensorboard: empty directory name");
    return RT_OK;
}

void json_append_string(char *buf, size_t size, size_t *len, const char *s)
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

size_t train_config_json(const train_config_t *a, const char *model_spec, int world, char *buf,
                         size_t size)
{
    size_t o = 0;
#define PUT(...) (o += (size_t)snprintf(buf + (o < size ? o : size), o < size ? size - o : 0, __VA_ARGS__))
#define PUT_STR(key, v)                          \
    do {                                         \
        PUT("\"%s\":", key);                     \
        if (v)                                   \
            json_append_string(buf, size, &o, v); \
        else                                     \
            PUT("null");                         \
        PUT(",");                                \
    } while (0)
    PUT("{");
    PUT_STR("model", model_spec);
    PUT_STR("data", a->data);
    PUT_STR("eval", a->eval);
    PUT("\"batch\":%d,\"epochs\":%d,\"steps\":%d,\"accum\":%d,", a->batch,
        a->steps ? 0 : a->epochs, a->steps, a->accum);
    PUT_STR("optimizer", a->optimizer);
    PUT("\"lr\":%.17g,\"momentum\":%.17g,\"weight_decay\":%.17g,\"warmup\":%d,", a->lr, a->momentum,
        a->weight_decay, a->warmup);
    PUT_STR("schedule", a->schedule);
    PUT("\"grad_clip\":%.17g,\"seed\":%d,", a->grad_clip, a->seed);
    PUT_STR("device", a->device);
    PUT("\"threads\":%d,\"log_every\":%d,\"eval_every\":%d,", a->threads, a->log_every, a->eval_every);
    PUT_STR("metrics", a->metrics);
    PUT_STR("export_params", a->export_params);
    PUT_STR("init_params", a->init_params);
    PUT("\"bucket_mb\":%.17g,\"skip_nonfinite\":%s,\"shuffle\":%s,", a->bucket_mb,
        a->skip_nonfinite ? "true" : "false", a->shuffle ? "true" : "false");
    PUT_STR("overlap", a->overlap);
    PUT("\"zero\":%d,", a->zero);
    PUT_STR("trace", a->trace);
    PUT_STR("tensorboard", a->tensorboard);
    PUT_STR("ckpt_dir", a->ckpt_dir);
    PUT("\"ckpt_every\":%d,\"keep\":%d,", a->ckpt_every, a->keep);
    /* --ckpt-write is left out: it changes when the file is written, not
     * what is in it, and the two modes write the same bytes */
    PUT_STR("resume", a->resume);
    PUT("\"world\":%d}", world);
#undef PUT_STR
#undef PUT
    return o;
}
