/* session.c - a training session from start to end (see session.h): the
 * agreement on setup, the start (resume, or init on rank 0 and broadcast),
 * the step loop with its logging, evaluation, checkpoints and stop
 * agreement, and the final check that every replica is the same. */
/* POSIX: clock_gettime (common/timer.h) */
#define _POSIX_C_SOURCE 200809L
#include "trainer/run/session.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/ckpt_lock.h"
#include "common/check.h"
#include "common/log.h"
#include "common/timer.h"
#include "trainer/ckpt/export.h"
#include "trainer/ops/cpu_env.h"
#include "trainer/ops/cpu_threads.h"
#include "trainer/run/agree.h"
#include "trainer/run/device_choice.h"
#include "trainer/run/eval.h"
#include "trainer/run/metrics.h"
#include "trainer/run/saved_model.h"
#include "trainer/run/session_internal.h"
#include "trainer/tensorboard/tb_train.h"

/* ln 2: nats per token over this are bits per token (bits per byte for
 * byte-level tokens) */
#define LN2 0.69314718055994530942

/* FNV-1a over the parameter bytes: every rank must end with the same value. */
static uint64_t params_hash(const float *params, int64_t n)
{
    const unsigned char *p = (const unsigned char *)params;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < (size_t)n * sizeof(float); i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

/* Adds a step result to the session's loss since the last metrics line
 * and reports steps skipped as non-finite. */
static void collect(session_t *s, const step_result_t *res)
{
    if (!res->have)
        return;
    s->loss_acc += res->loss_sum;
    s->loss_count += res->steps;
    s->skipped = res->skipped;
    s->opt_steps = res->opt_steps;
    if (res->new_skipped && s->rank == 0)
        LOG_WARN("step %lld: non-finite loss or gradient, update skipped (--skip-nonfinite)%s",
                 (long long)res->first_skipped + 1,
                 res->new_skipped > 1 ? "; more such steps since the last log line" : "");
}

/* --init-params: a fresh run's parameters from a parameters file or a
 * checkpoint of the same model (rank 0; the broadcast hands them on). */
static rt_status init_params_load(session_t *s, const param_registry_t *reg, float *params)
{
    saved_model_t sm;
    rt_status st = saved_model_load(&sm, s->cfg.init_params, "init-params");
    if (st == RT_OK && (strcmp(sm.spec.text, s->spec.text) != 0 || sm.reg.total != reg->total))
        st = rt_fail(RT_ERR_USAGE, "--init-params %s is for model '%s' but this run's model is '%s'",
                     s->cfg.init_params, sm.spec.text, s->spec.text);
    if (st == RT_OK) {
        memcpy(params, sm.params, sizeof(float) * (size_t)reg->total);
        printf("init: parameters from %s\n", s->cfg.init_params);
        fflush(stdout);
    }
    saved_model_free(&sm);
    return st;
}

/* Resume (the ranks compare what they loaded) or initialise on rank 0 and
 * broadcast; then the gradient sync and the parameters onto the device. */
static rt_status session_start(session_t *s)
{
    const param_registry_t *reg = replica_registry(s->rep);
    float *params = replica_host_params(s->rep);
    if (s->resume_path[0]) {
        TRY(session_resume_agree(s));
        s->loss_acc = s->sc.loss_sum;
        s->loss_count = s->sc.loss_count;
        s->skipped = s->sc.skipped;
        s->opt_steps = s->sc.opt_step;
        replica_set_step_index(s->rep, s->sc.step);
    } else {
        rt_status st = RT_OK;
        if (s->rank == 0) {
            replica_init_params(s->rep, (uint64_t)s->cfg.seed);
            if (s->cfg.init_params)
                st = init_params_load(s, reg, params);
            if (st == RT_OK && s->hooks->on_init)
                st = s->hooks->on_init(s->hooks->ctx, reg, params);
        }
        bool speak;
        /* every rank learns rank 0's outcome: a failure here is shared */
        s->consistent = true;
        TRY(ranks_agree(s->comm, st, &speak));
        s->consistent = false;
        TRY(session_bcast(s, params, (size_t)reg->total, RT_DTYPE_F32));
    }
    if (s->world > 1) {
        float *grads = NULL;
        /* the sync reduces the replica's device gradient arena */
        grads = replica_model(s->rep)->grads;
        grad_sync_config_t gc = {.plan = s->plan, .zero = s->cfg.zero != 0, .trace = s->trace};
        TRY(sync_overlap_parse(s->cfg.overlap, &gc.overlap));
        if (s->devcfg.kind == RT_DEVICE_CUDA)
            TRY(grad_sync_create_device(&s->sync, s->dev, &gc, grads, coll_timeout(s->comm)));
        else
            TRY(grad_sync_create_host(&s->sync, s->comm, &gc, grads));
        replica_set_sync(s->rep, s->sync);
    }
    replica_set_trace(s->rep, s->trace);
    if (s->trace) {  /* the ranks' time axes start together */
        if (s->comm && s->world > 1)
            TRY(coll_barrier(s->comm));
        rt_trace_restart_clock(s->trace);
    }
    return replica_upload(s->rep, s->opt_steps, s->skipped);
}

/* A failed event-file write is reported once and ends the event file; the
 * training goes on (the metrics and checkpoints do not depend on it). */
static void tb_done(session_t *s, rt_status st)
{
    if (st == RT_OK)
        return;
    LOG_WARN("--tensorboard: %s; no more events are written", rt_last_error());
    tb_writer_close(s->tb);
    s->tb = NULL;
}

static rt_status run_eval(session_t *s, int64_t step)
{
    if (!device_is_host(s->dev))
        TRY(replica_download(s->rep, false));
    model_t *m = NULL;
    TRY(session_eval_model(s, &m));
    double loss, acc;
    int64_t count;
    TRY(eval_dataset(m, s->eval_ds, s->cfg.batch, s->comm, &loss, &acc, &count));
    if (s->rank == 0) {
        const double bpb = s->byte_level ? loss / LN2 : NAN;
        if (s->io.batch == RT_BATCH_TOKENS && s->byte_level)
            printf("eval  step %lld | loss %.4f nats/token | %.4f bits/byte (%lld windows)\n",
                   (long long)step, loss, bpb, (long long)count);
        else if (s->io.batch == RT_BATCH_TOKENS)
            printf("eval  step %lld | loss %.4f nats/token (%lld windows)\n", (long long)step, loss,
                   (long long)count);
        else
            printf("eval  step %lld | loss %.4f | accuracy %.4f (%lld records)\n", (long long)step,
                   loss, acc, (long long)count);
        fflush(stdout);
        if (s->metrics)
            metrics_write_eval(s->metrics, step, loss, acc, bpb);
        if (s->tb)
            tb_done(s, tb_write_eval(s->tb, step, loss, acc, bpb));
    }
    return RT_OK;
}

/* All ranks learn whether any was asked to stop, and whether rank 0's
 * asynchronous checkpoint write has failed (one 16-byte all-reduce a step),
 * so that they stop after the same step. */
static rt_status stop_agree(session_t *s, bool *stop)
{
    int64_t mine[2] = {s->hooks->stop_requested ? s->hooks->stop_requested(s->hooks->ctx) : 0,
                       s->rank == 0 ? session_ckpt_poll(s) : 0};
    int64_t sum[2] = {mine[0], mine[1]};
    if (s->comm && s->world > 1)
        TRY(coll_allreduce(s->comm, mine, sum, 2, RT_DTYPE_I64, COLL_SUM));
    if (sum[1])
        return session_ckpt_failed(s, sum[1]);
    *stop = sum[0] != 0;
    if (*stop)
        s->stop_signal = mine[0] ? (int)mine[0] : SIGTERM;
    return RT_OK;
}

static void print_header(const session_t *s, int64_t global_batch)
{
    const train_config_t *a = &s->cfg;
    const bool gpu = s->devcfg.kind == RT_DEVICE_CUDA;
    printf("train %s | %d rank%s x %d thread%s | batch %d x %d accum x %d ranks = %lld | "
           "%lld steps (%lld per epoch) | %s lr %g %s warmup %d | %s%s\n",
           s->spec.text, s->world, s->world == 1 ? "" : "s", s->threads,
           s->threads == 1 ? "" : "s", a->batch, a->accum, s->world, (long long)global_batch,
           (long long)s->total_steps, (long long)s->steps_per_epoch, a->optimizer, a->lr,
           a->schedule, a->warmup, gpu ? "" : "blas ",
           gpu ? (a->tf32 ? "cuda tf32" : "cuda fp32") : cpu_env_blas_core());
    /* the optimizer state a rank holds: with ZeRO-1 its shard, 1/N of it */
    const int64_t bytes = replica_optimizer_bytes(s->rep);
    if (s->sync) {
        printf("sync  %lld buckets of %.3g MiB | overlap %s | %s | optimizer state %lld bytes per "
               "rank (%.1f MiB)\n",
               (long long)s->plan.count, (double)s->plan.bucket * sizeof(float) / 1048576.0,
               grad_sync_overlap_text(s->sync),
               grad_sync_zero(s->sync) ? "ZeRO-1 (reduce-scatter, sharded update, all-gather)"
                                       : "all-reduce",
               (long long)bytes, (double)bytes / 1048576.0);
    } else {
        printf("optimizer state %lld bytes (%.1f MiB)\n", (long long)bytes,
               (double)bytes / 1048576.0);
    }
    fflush(stdout);
}

/* A logged step's figures: per token for a token model (the loss in nats
 * per token, and bits per byte where tokens are bytes), and the model FLOPs
 * utilisation where the peak is known: global FLOP/s over world x rank 0's
 * peak (the ranks are alike). */
static metrics_step_t step_metrics(const session_t *s, int64_t done, double epoch, double loss,
                                   double lr, double samples_per_s, double grad_norm)
{
    const bool tokens = s->io.batch == RT_BATCH_TOKENS;
    const double per_sample = tokens ? (double)s->io.context : 1.0;
    metrics_step_t m = {.step = done, .epoch = epoch, .loss = loss, .lr = lr,
                        .grad_norm = grad_norm, .samples_per_s = samples_per_s,
                        .tokens_per_s = tokens ? samples_per_s * per_sample : NAN,
                        .bits_per_byte = s->byte_level ? loss / LN2 : NAN, .mfu = NAN};
    if (s->peak_flops > 0 && s->example_flops > 0)
        m.mfu = samples_per_s * per_sample * s->example_flops / (s->peak_flops * s->world);
    m.optimizer_bytes = replica_optimizer_bytes(s->rep);
    m.comm_exposed_ms = NAN;
    return m;
}

static void print_step(const session_t *s, const metrics_step_t *m, const char *eta)
{
    char loss[64], rate[64], mfu[32] = "";
    if (!isnan(m->bits_per_byte))
        snprintf(loss, sizeof loss, "loss %.4f (%.3f bits/byte)", m->loss, m->bits_per_byte);
    else
        snprintf(loss, sizeof loss, "loss %.4f", m->loss);
    if (!isnan(m->tokens_per_s))
        snprintf(rate, sizeof rate, "%.0f tokens/s", m->tokens_per_s);
    else
        snprintf(rate, sizeof rate, "%.0f samples/s", m->samples_per_s);
    if (!isnan(m->mfu))
        snprintf(mfu, sizeof mfu, " | MFU %.1f%%", 100.0 * m->mfu);
    char comm[48] = "";
    if (!isnan(m->comm_exposed_ms))
        snprintf(comm, sizeof comm, " | comm %.1f ms exposed", m->comm_exposed_ms);
    printf("step %lld/%lld | epoch %.2f | %s | lr %.3e | %s%s%s | ETA %s\n", (long long)m->step,
           (long long)s->total_steps, m->epoch, loss, m->lr, rate, mfu, comm, eta);
    fflush(stdout);
}

/* The end of a run that trained to its last step (or that resumed at or
 * past it and trained nothing): every replica must hold the same
 * parameters; then the summary, the export and the hook. */
static rt_status session_finish(session_t *s, double seconds, int64_t global_batch)
{
    const param_registry_t *reg = replica_registry(s->rep);
    const float *params = replica_host_params(s->rep);
    int64_t mine = (int64_t)params_hash(params, reg->total);
    if (s->comm && s->world > 1) {
        int64_t *all = calloc((size_t)s->world, sizeof *all);
        CHECK_ALLOC(all, sizeof *all * (size_t)s->world);
        rt_status st = coll_allgather(s->comm, &mine, all, 1, RT_DTYPE_I64);
        bool same = true;
        for (int i = 0; st == RT_OK && i < s->world; i++)
            same = same && all[i] == all[0];
        free(all);
        TRY(st);
        s->consistent = true;
        if (!same)
            return rt_fail(RT_ERR_INTERNAL, "replicas diverged: parameter hashes differ across ranks");
        s->consistent = false;
    }
    if (s->rank == 0 && s->start_step >= s->total_steps) {
        /* Resumed at or past --steps: no rate to report, and no summary
         * line in the metrics file, whose last step is the checkpoint's. */
        printf("done  no steps run (resumed at step %lld, --steps %lld) | replicas identical (%016llx)\n",
               (long long)s->start_step, (long long)s->total_steps, (unsigned long long)mine);
        fflush(stdout);
    } else if (s->rank == 0) {
        const double rate = (double)global_batch * (double)(s->total_steps - s->start_step) / seconds;
        const bool tokens = s->io.batch == RT_BATCH_TOKENS;
        printf("done  %lld steps in %.1f s | %.0f %s/s | replicas identical (%016llx)%s\n",
               (long long)s->total_steps, seconds, tokens ? rate * (double)s->io.context : rate,
               tokens ? "tokens" : "samples", (unsigned long long)mine,
               s->skipped ? " | some steps skipped" : "");
        fflush(stdout);
        if (s->metrics)
            metrics_write_final(s->metrics, s->total_steps, seconds, s->skipped, (uint64_t)mine);
    }
    if (s->rank == 0 && s->cfg.export_params)
        TRY(params_export_h5(reg, params, s->spec.text, s->cfg.export_params));
    if (s->hooks->on_end)
        TRY(s->hooks->on_end(s->hooks->ctx, reg, params));
    return RT_OK;
}

static rt_status session_train(session_t *s)
{
    const train_config_t *a = &s->cfg;
    TRY(session_start(s));
    const int64_t global_batch = (int64_t)a->batch * a->accum * s->world;
    if (s->rank == 0)
        print_header(s, global_batch);
    const bool resumed = s->start_step > 0;
    if (s->start_step >= s->total_steps && s->rank == 0) {
        printf("resume: the checkpoint's step %lld already reaches the %lld steps of this run; nothing to train\n",
               (long long)s->start_step, (long long)s->total_steps);
        fflush(stdout);
    }
    double t_start = rt_now(), t_log = t_start;
    for (int64_t step = s->start_step; step < s->total_steps; step++) {
        if (s->hooks->before_step)
            s->hooks->before_step(s->hooks->ctx, s->rank, step, resumed);
        const int64_t done = step + 1;
        const bool log_step = done % a->log_every == 0 || done == s->total_steps;
        const bool want = log_step || replica_results_cheap(s->rep);
        step_result_t res;
        double t0 = rt_now();
        rt_status st = replica_step(s->rep, session_next_batch, s, want, &res);
        session_release_batch(s);
        /* a non-finite step is seen by every rank alike (the loss and the
         * gradient are all-reduced values) */
        s->consistent = st == RT_ERR_NUMERIC;
        TRY(st);
        collect(s, &res);
        double now = rt_now();
        if (s->rank == 0 && log_step) {
            int64_t n_since = done - (done - 1) / a->log_every * a->log_every;
            double rate = (double)global_batch * (double)n_since / (now - t_log);
            double loss = s->loss_count ? s->loss_acc / (double)s->loss_count : NAN;
            double epoch = (double)done / (double)s->steps_per_epoch;
            char eta[32];
            format_duration((now - t_start) / (double)(done - s->start_step) *
                                (double)(s->total_steps - done),
                            eta, sizeof eta);
            metrics_step_t m = step_metrics(s, done, epoch, loss, res.lr, rate, res.grad_norm);
            if (s->sync) {
                int64_t synced = 0;
                const double exposed = grad_sync_take_exposed(s->sync, &synced);
                m.comm_exposed_ms = synced ? 1e3 * exposed / (double)synced : NAN;
            }
            print_step(s, &m, eta);
            if (s->metrics)
                metrics_write_step(s->metrics, &m);
            if (s->tb)
                tb_done(s, tb_write_train_step(s->tb, &m));
        }
        if (s->rank == 0 && s->hooks->after_step) {
            session_step_report_t rep = {.step = done, .total_steps = s->total_steps,
                                         .log_step = log_step, .result = &res,
                                         .step_seconds = now - t0};
            s->hooks->after_step(s->hooks->ctx, &rep);
        }
        if (log_step) {
            t_log = now;
            s->loss_acc = 0.0;
            s->loss_count = 0;
        }
        bool eval_now = s->eval_ds && (a->eval_every ? done % a->eval_every == 0
                                                     : done % s->steps_per_epoch == 0 && !a->steps);
        if (s->eval_ds && done == s->total_steps)
            eval_now = true;
        if (eval_now)
            TRY(run_eval(s, done));
        bool stop = false;
        TRY(stop_agree(s, &stop));
        if (a->ckpt_dir && (stop || done == s->total_steps || (a->ckpt_every && done % a->ckpt_every == 0))) {
            const double t_ckpt = rt_now();
            if (!res.have) {  /* the loss so far and the counters go into the checkpoint */
                TRY(replica_read_result(s->rep, &res));
                collect(s, &res);
            }
            TRY(session_checkpoint(s, done, t_ckpt));
        }
        if (stop) {
            TRY(session_ckpt_drain(s));
            if (s->rank == 0) {
                printf("stopped by signal %d after step %lld%s\n", s->stop_signal, (long long)done,
                       a->ckpt_dir ? "; final checkpoint written" : " (no --ckpt-dir: no checkpoint)");
                fflush(stdout);
            }
            return RT_OK;
        }
    }
    TRY(session_ckpt_drain(s));
    TRY(replica_download(s->rep, true));
    return session_finish(s, rt_now() - t_start, global_batch);
}

/* The session's fixed settings from the config: model, optimizer, schedule,
 * threads and device. */
static rt_status session_configure(session_t *s)
{
    const train_config_t *a = &s->cfg;
    TRY(model_spec_parse(a->model, &s->spec));
    optim_kind kind;
    TRY(optim_kind_parse(a->optimizer, &kind));
    TRY(sched_kind_parse(a->schedule, &s->sched));
    s->optim = optim_config_default(kind);
    s->optim.momentum = kind == OPTIM_SGD ? (float)a->momentum : 0.0f;
    if (a->weight_decay >= 0.0)
        s->optim.weight_decay = (float)a->weight_decay;
    s->threads = a->threads ? a->threads : cpu_default_threads(s->local_size);
    TRY(device_choice(a->device, s->local_rank, s->local_size, &s->devcfg, s->device_why,
                      sizeof s->device_why));
    s->devcfg.tf32 = a->tf32;
    return RT_OK;
}

rt_status session_run(const train_config_t *cfg, coll_comm_t *comm, const session_hooks_t *hooks,
                      session_outcome_t *outcome)
{
    static const session_hooks_t no_hooks;
    memset(outcome, 0, sizeof *outcome);
    outcome->speak = true;
    outcome->consistent = true;
    TRY(train_config_check(cfg));
    session_t *s = calloc(1, sizeof *s);
    CHECK_ALLOC(s, sizeof *s);
    s->cfg = *cfg;
    s->hooks = hooks ? hooks : &no_hooks;
    s->comm = comm;
    s->lock_fd = -1;
    s->rank = comm ? coll_rank(comm) : 0;
    s->world = comm ? coll_size(comm) : 1;
    s->local_rank = comm ? coll_local_rank(comm) : 0;
    s->local_size = comm ? coll_local_size(comm) : 1;
    bool speak = true;
    rt_status st = ranks_agree(comm, session_configure(s), &speak);
    /* the data against the model before anything is created or locked */
    if (st == RT_OK)
        st = ranks_agree(comm, session_open_data(s), &speak);
    if (st == RT_OK)
        st = ranks_agree(comm, session_resume_choose(s), &speak);
    if (st == RT_OK)
        st = session_bcast(s, s->resume_path, sizeof s->resume_path, RT_DTYPE_U8);
    if (st == RT_OK)
        st = ranks_agree(comm, session_setup(s), &speak);
    bool abandon = false;
    if (st == RT_OK) {
        st = session_train(s);
        session_ckpt_end(s);  /* no write outlives the session, whatever happened */
        /* a non-finite step and diverged replicas are seen by every rank
         * alike (they come from all-reduced values): rank 0 reports them */
        speak = s->rank == 0;
        if (st != RT_OK && !s->consistent) {
            /* a failure the other ranks may not share (I/O, a collective):
             * device collectives are aborted so that peers see an error, and
             * the device is left as it is (its stream may wait on a dead
             * peer); the caller ends the job */
            grad_sync_abort(s->sync);
            speak = true;
            outcome->consistent = false;
            abandon = true;
        }
    }
    outcome->speak = speak;
    outcome->stop_signal = s->stop_signal;
    if (!abandon) {
        session_setup_free(s);
    } else {
        session_release_batch(s);
        loader_close(s->loader);
        rt_trace_close(s->trace);  /* no MPI: what is buffered reaches the file */
    }
    ckpt_state_free(&s->list);
    ckpt_run_free(&s->ckpt_run);
    model_spec_free(&s->spec);
    ckpt_dir_unlock(s->lock_fd);
    free(s);
    return st;
}
