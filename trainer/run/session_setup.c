/* session_setup.c - what a session needs before its first step, on every
 * rank: the datasets (checked against the model), the loader over this
 * rank's shard (resuming at the checkpoint's sample position), the device,
 * the replica and its gradient sync, the metrics file; and the supply of
 * micro-batches to the step. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/check.h"
#include "common/log.h"
#include "common/timer.h"
#include "trainer/ops/cpu_peak.h"
#include "trainer/ops/cpu_threads.h"
#include "trainer/run/eval.h"
#include "trainer/run/host_batch.h"
#include "trainer/run/metrics.h"
#include "trainer/run/session_internal.h"

rt_status session_bcast(session_t *s, void *buf, size_t count, rt_dtype dt)
{
    return s->comm && s->world > 1 ? coll_broadcast(s->comm, buf, count, dt, 0) : RT_OK;
}

static rt_status open_loader(session_t *s)
{
    const train_config_t *a = &s->cfg;
    loader_config_t lc;
    loader_config_default(&lc);
    lc.batch = a->batch;
    lc.rank = s->rank;
    lc.world = s->world;
    lc.shuffle = a->shuffle;
    lc.remainder = SAMPLER_DROP;
    lc.prefetch = 4;
    lc.ctx = s->io.context;
    lc.start = (sampler_state_t){.seed = (uint64_t)a->seed, .epoch = 0, .position = 0};
    if (s->devcfg.kind == RT_DEVICE_CUDA) {  /* pinned: the copies to the device run asynchronously */
        lc.alloc = device_pinned_alloc;
        lc.free = device_pinned_free;
        lc.alloc_ctx = &s->devcfg.ordinal;
    }
    if (s->resume_path[0]) {
        lc.start = (sampler_state_t){.seed = s->sc.data_seed, .epoch = s->sc.data_epoch,
                                     .position = s->sc.data_position / ((int64_t)a->batch * s->world)};
        s->micro_in_epoch = lc.start.position;
    }
    rt_status st = loader_open(&s->loader, s->train_ds, &lc);
    if (st != RT_OK)  /* too few records is a usage error; no thread or memory is not */
        return rt_fail_context(rt_input_status(st), "--data");
    s->loader_spe = loader_steps_per_epoch(s->loader);
    s->steps_per_epoch = s->loader_spe / a->accum;
    if (s->steps_per_epoch < 1)
        return rt_fail(RT_ERR_USAGE, "--batch %d x --accum %d leaves no full step per epoch", a->batch,
                       a->accum);
    s->total_steps = a->steps ? a->steps : (int64_t)a->epochs * s->steps_per_epoch;
    return RT_OK;
}

static rt_status open_replica(session_t *s)
{
    const train_config_t *a = &s->cfg;
    TRY(device_open(&s->dev, &s->devcfg));
    replica_config_t rc = {
        .spec = &s->spec,
        .dev = s->dev,
        .max_batch = a->batch,
        .optim = s->optim,
        .sched = {.kind = s->sched, .base_lr = a->lr, .warmup = a->warmup, .total = s->total_steps},
        .grad_clip = a->grad_clip,
        .accum = a->accum,
        .skip_nonfinite = a->skip_nonfinite,
        .eager = a->eager,
        .compute_dtype = RT_DTYPE_F32,
        .shards = a->zero ? s->world : 1,
        .shard = a->zero ? s->rank : 0,
    };
    return replica_create(&s->rep, &rc);
}

rt_status session_open_data(session_t *s)
{
    s->spec.kind->describe(s->spec.cfg, &s->io);
    TRY(host_batch_dataset_open(s->cfg.data, "data", &s->io, &s->train_ds));
    if (s->cfg.eval)
        TRY(host_batch_dataset_open(s->cfg.eval, "eval", &s->io, &s->eval_ds));
    if (s->rank == 0) {
        host_batch_note_unchecked(s->train_ds);
        if (s->eval_ds)
            host_batch_note_unchecked(s->eval_ds);
    }
    return RT_OK;
}

static rt_status setup_inner(session_t *s, ckpt_reader_t **rd)
{
    train_config_t *a = &s->cfg;
    if (s->resume_path[0])
        TRY(session_resume_open(s, rd));
    else if (a->batch < 1)
        return rt_fail(RT_ERR_USAGE, "--batch is required when not resuming from a checkpoint");
    LOG_INFO("%s", s->device_why);
    /* records, or token windows */
    const int64_t count = dataset_info(s->train_ds)->count;
    const bool tokens = s->io.batch == RT_BATCH_TOKENS;
    const int64_t n = tokens ? loader_token_windows(count, s->io.context, a->shuffle) : count;
    const int64_t shard = n / s->world, per_step = (int64_t)a->batch * a->accum;
    if (shard < per_step)
        return rt_fail(RT_ERR_USAGE,
                       "--batch %d x --accum %d = %lld rows per step is larger than a rank's shard "
                       "of %s (%lld %s / %d ranks = %lld)",
                       a->batch, a->accum, (long long)per_step, a->data, (long long)n,
                       tokens ? "windows" : "records", s->world, (long long)shard);
    if (tokens) {
        const dataset_info_t *info = dataset_info(s->train_ds);
        s->byte_level = info->input_type == RT_DTYPE_U8 && info->vocab_size == 256;
    }
    s->example_flops = s->spec.kind->train_flops ? s->spec.kind->train_flops(s->spec.cfg) : 0.0;
    /* the thread pools only now, after the datasets are in memory and
     * before the first product: OpenBLAS maps a buffer per thread as each
     * starts, so the check sees what the large allocations left */
    TRY(cpu_set_threads(s->threads));
    /* every rank measures at once, as they will compute: the peak they share */
    if (s->devcfg.kind == RT_DEVICE_CPU)
        s->peak_flops = cpu_sgemm_peak_flops();
    TRY(open_loader(s));
    TRY(host_alloc((void **)&s->split,
                   sizeof(int32_t) * (host_batch_split_len(&s->io, a->batch) + 1)));
    if (a->trace) {
        char path[4096];
        TRY(rt_trace_rank_path(a->trace, s->rank, s->world, path, sizeof path));
        rt_status st = rt_trace_open(&s->trace, path, s->rank);
        if (st != RT_OK)
            return rt_fail_context(RT_ERR_USAGE, "--trace");
        rt_trace_thread_name(s->trace, "training");
    }
    if (s->rank == 0 && a->metrics) {
        s->metrics = metrics_open(a->metrics, s->resume_path[0] ? s->sc.step : -1);
        if (!s->metrics)
            return rt_fail(RT_ERR_USAGE, "--metrics %s: %s", a->metrics, strerror(errno));
    }
    /* a new event file even when resuming: TensorBoard merges a directory's files */
    if (s->rank == 0 && a->tensorboard && tb_writer_open(&s->tb, a->tensorboard) != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "--tensorboard");
    if (s->tb && s->resume_path[0]) {
        /* TensorBoard drops what a killed run logged past the checkpoint */
        char msg[160];
        snprintf(msg, sizeof msg, "resumed from step %lld", (long long)s->sc.step);
        if (tb_writer_session_start(s->tb, s->sc.step + 1, msg) != RT_OK ||
            tb_writer_flush(s->tb) != RT_OK)
            return rt_fail_context(RT_ERR_USAGE, "--tensorboard");
    }
    TRY(open_replica(s));
    TRY(session_ckpt_setup(s));
    if (s->resume_path[0]) {
        if (s->micro_in_epoch >= s->steps_per_epoch * a->accum)
            return rt_fail(RT_ERR_FORMAT, "checkpoint %s: position %lld batches is past the epoch's %lld steps",
                           s->resume_path, (long long)s->micro_in_epoch, (long long)s->steps_per_epoch);
        TRY(session_resume_load(s, *rd));
    }
    return grad_plan_make(&s->plan, replica_registry(s->rep), a->bucket_mb);
}

rt_status session_setup(session_t *s)
{
    ckpt_reader_t *rd = NULL;
    rt_status st = setup_inner(s, &rd);
    ckpt_close(rd);
    return st;
}

void session_setup_free(session_t *s)
{
    session_ckpt_end(s);  /* the writer reads the snapshot, whose pinned memory needs the device */
    session_release_batch(s);
    loader_close(s->loader);
    if (s->eval_open)
        model_close(&s->eval_model);
    device_close(s->eval_dev);
    grad_sync_destroy(s->sync);
    replica_destroy(s->rep);
    rt_status st = rt_trace_close(s->trace);
    s->trace = NULL;
    if (st != RT_OK)
        LOG_WARN("--trace: %s", rt_last_error());
    device_close(s->dev);
    dataset_close(s->eval_ds);
    dataset_close(s->train_ds);
    host_free(s->split);
    if (s->metrics)
        fclose(s->metrics);
    if (tb_writer_close(s->tb) != RT_OK)
        LOG_WARN("--tensorboard: %s", rt_last_error());
    s->tb = NULL;
}

void session_release_batch(session_t *s)
{
    if (s->holding) {
        loader_release(s->loader);
        s->holding = false;
    }
}

rt_status session_next_batch(void *ctx, int k, rt_batch_t *batch)
{
    session_t *s = ctx;
    loader_batch_t b;
    session_release_batch(s);
    /* Batches past the last whole step of an epoch are skipped, so that every
     * step's micro-batches come from one epoch (np=1 with accumulation then
     * sees the same samples per step as np=accum without). */
    if (s->micro_in_epoch == s->steps_per_epoch * s->cfg.accum) {
        for (int64_t i = s->micro_in_epoch; i < s->loader_spe; i++) {
            TRY(loader_acquire(s->loader, &b));
            loader_release(s->loader);
        }
        s->micro_in_epoch = 0;
    }
    const double t0 = rt_now();
    TRY(loader_acquire(s->loader, &b));
    rt_trace_span(s->trace, "data", "data wait", t0, rt_now(), NULL, 0);
    s->holding = true;
    s->micro_in_epoch++;
    host_batch_from_loader(&s->io, &b, s->split, batch);
    return RT_OK;
}

/* Evaluation on the host: the replica's own model where the device is the
 * CPU; for a GPU, a forward-only CPU model over the host copy of the
 * parameters (downloaded before each evaluation). */
rt_status session_eval_model(session_t *s, model_t **out)
{
    if (device_is_host(s->dev)) {
        *out = replica_model(s->rep);
        return RT_OK;
    }
    if (!s->eval_open) {
        device_config_t cpu = {.kind = RT_DEVICE_CPU};
        TRY(device_open(&s->eval_dev, &cpu));
        TRY(model_open(&s->eval_model, &s->spec, replica_registry(s->rep), s->eval_dev,
                       replica_host_params(s->rep), NULL, s->cfg.batch));
        s->eval_open = true;
    }
    *out = &s->eval_model;
    return RT_OK;
}
