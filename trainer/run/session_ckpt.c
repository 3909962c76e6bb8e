/* session_ckpt.c - writing a session's checkpoints: rank 0 writes the
 * state of `done` steps (atomically, then prunes what the run may delete,
 * keeping --keep of its own), either itself from the host copies
 * (--ckpt-write sync) or through the writer thread from its own copy of the
 * state (async: ckpt_writer.h, ckpt_snapshot.h), so that the step loop goes
 * on while the file is written. Every rank learns the outcome of each
 * write, so that a failed write stops the whole job rather than training
 * on without checkpoints: a synchronous one at once, an asynchronous one
 * at the first step, checkpoint or end of the run after it ended. Called
 * only between steps, on every rank; the MPI calls (gathering ZeRO shards,
 * sharing the outcome) stay on the training thread. */
/* POSIX: clock_gettime (common/timer.h) */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "common/log.h"
#include "common/timer.h"
#include "trainer/run/metrics.h"
#include "trainer/run/session_internal.h"

static bool sharded(const session_t *s)
{
    int64_t lo, hi;
    replica_shard(s->rep, &lo, &hi);
    return lo != 0 || hi != replica_registry(s->rep)->total;
}

rt_status session_full_state(session_t *s, bool gather, float *full[2])
{
    full[0] = replica_host_state(s->rep, 0);
    full[1] = replica_host_state(s->rep, 1);
    if (!sharded(s))
        return RT_OK;
    const int64_t total = replica_registry(s->rep)->total;
    int64_t lo, hi;
    replica_shard(s->rep, &lo, &hi);
    size_t *counts = calloc((size_t)s->world, sizeof *counts);
    CHECK_ALLOC(counts, sizeof *counts * (size_t)s->world);
    grad_plan_shard_counts(total, s->world, 0, total, counts);
    rt_status st = RT_OK;
    for (int i = 0; i < 2; i++) {
        const float *mine = full[i];
        full[i] = NULL;
        if (!mine)
            continue;
        st = host_alloc((void **)&full[i], sizeof(float) * (size_t)total);
        if (st != RT_OK)
            break;
        if (!gather)
            continue;
        memcpy(full[i] + lo, mine, sizeof(float) * (size_t)(hi - lo));
        st = coll_allgather_v(s->comm, full[i], counts, RT_DTYPE_F32);
        if (st != RT_OK)
            break;
    }
    free(counts);
    if (st != RT_OK)
        session_full_state_free(s, full);
    return st;
}

void session_full_state_scatter(session_t *s, float *const full[2])
{
    int64_t lo, hi;
    replica_shard(s->rep, &lo, &hi);
    for (int i = 0; sharded(s) && i < 2; i++) {
        float *mine = replica_host_state(s->rep, i);
        if (mine && full[i])
            memcpy(mine, full[i] + lo, sizeof(float) * (size_t)(hi - lo));
    }
}

void session_full_state_free(session_t *s, float *full[2])
{
    for (int i = 0; i < 2; i++) {
        if (full[i] && full[i] != replica_host_state(s->rep, i))
            host_free(full[i]);
        full[i] = NULL;
    }
}

bool session_ckpt_async(const session_t *s)
{
    return s->cfg.ckpt_dir && !strcmp(s->cfg.ckpt_write, "async");
}

rt_status session_ckpt_setup(session_t *s)
{
    if (s->rank != 0 || !session_ckpt_async(s))
        return RT_OK;
    TRY(ckpt_writer_create(&s->writer));
    return ckpt_snapshot_alloc(&s->snap, s->dev, s->devcfg.ordinal, replica_registry(s->rep)->total,
                               optim_state_count(&s->optim));
}

/* Rank 0: the scalars of a checkpoint of `done` steps into sc; its epoch. */
static int64_t scalars_fill(session_t *s, ckpt_scalars_t *sc)
{
    const train_config_t *a = &s->cfg;
    sampler_state_t ls = loader_state(s->loader);
    if (ls.position >= s->steps_per_epoch * a->accum)
        ls = (sampler_state_t){.seed = ls.seed, .epoch = ls.epoch + 1, .position = 0};
    sc->step = replica_step_index(s->rep);
    sc->opt_step = s->opt_steps;
    sc->skipped = s->skipped;
    sc->loss_sum = s->loss_acc;
    sc->loss_count = s->loss_count;
    sc->data_seed = ls.seed;
    sc->data_epoch = ls.epoch;
    sc->data_position = ls.position * a->batch * s->world;
    sc->batch = a->batch;
    sc->accum = a->accum;
    sc->world = s->world;
    if (!s->resume_path[0])
        sc->init_seed = (uint64_t)a->seed;
    return ls.epoch;
}

/* The config JSON of this run (malloc'ed), NULL when out of memory. */
static char *config_json(const session_t *s)
{
    char probe[1];
    size_t need = train_config_json(&s->cfg, s->spec.text, s->world, probe, sizeof probe) + 1;
    char *config = malloc(need);
    if (config)
        train_config_json(&s->cfg, s->spec.text, s->world, config, need);
    else
        rt_fail(RT_ERR_NOMEM, "cannot allocate %zu bytes", need);
    return config;
}

/* Rank 0: a write that failed, kept until every rank has learnt it (the
 * first one wins: the job stops at it). */
static void failure_keep(session_t *s, int64_t step, const char *msg)
{
    if (s->ckpt_failed)
        return;
    s->ckpt_failed = step + 1;
    snprintf(s->ckpt_error, sizeof s->ckpt_error, "%s", msg);
}

/* Rank 0: a written checkpoint on stdout and in the metrics file, with the
 * time the step loop was held by it and the time the write took. */
static void written_print(session_t *s, int64_t step, const char *path, double write_s)
{
    printf("checkpoint %s (step %lld) | loop held %.0f ms | written in %.0f ms (%s)\n", path,
           (long long)step, 1e3 * s->ckpt_stall, 1e3 * write_s, s->cfg.ckpt_write);
    fflush(stdout);
    if (s->metrics)
        metrics_write_checkpoint(s->metrics, step, path, 1e3 * s->ckpt_stall, 1e3 * write_s);
}

/* Rank 0: the report of an asynchronous write, printed or kept as a failure. */
static void report_take(session_t *s, const ckpt_write_report_t *r)
{
    if (r->status == RT_OK)
        written_print(s, r->step, r->path, r->seconds);
    else
        failure_keep(s, r->step, r->error);
}

/* Every rank, once all know that the write of `step` failed: the job stops
 * the way it does for a synchronous write. */
static rt_status failure_return(session_t *s, int64_t step)
{
    s->consistent = true;
    if (s->rank == 0) {
        char path[4096];
        if (ckpt_path_for_step(s->cfg.ckpt_dir, step, path, sizeof path) != RT_OK)
            snprintf(path, sizeof path, "%s", s->cfg.ckpt_dir);
        return rt_fail(RT_ERR_IO,
                       "rank 0: checkpoint at step %lld, %s, not written (training stops rather than go on "
                       "without it): %s",
                       (long long)step, path, s->ckpt_error);
    }
    return rt_fail(RT_ERR_IO, "rank 0 could not write the checkpoint at step %lld", (long long)step);
}

/* --ckpt-write sync: rank 0 writes from the host copies, here. */
static rt_status checkpoint_sync(session_t *s, int64_t done, double *write_s)
{
    TRY(replica_download(s->rep, true));
    /* with ZeRO-1 the shards come together first, on every rank */
    float *state[2] = {NULL, NULL};
    TRY(session_full_state(s, true, state));
    if (s->rank == 0) {
        ckpt_scalars_t *sc = &s->sc;
        const int64_t epoch = scalars_fill(s, sc);
        rt_status st = ckpt_state_all(&s->list, replica_registry(s->rep),
                                      replica_host_params(s->rep), &s->optim, state, sc);
        char *config = st == RT_OK ? config_json(s) : NULL;
        if (st == RT_OK && !config)
            st = RT_ERR_NOMEM;
        if (st == RT_OK) {
            ckpt_meta_t meta = {.step = done, .epoch = epoch, .model_spec = s->spec.text,
                                .config_json = config, .world_size = s->world};
            const double t0 = rt_now();
            st = ckpt_save(s->cfg.ckpt_dir, &s->ckpt_run, &meta, s->list.arrays, s->list.n,
                           s->ckpt_path, sizeof s->ckpt_path);
            *write_s = rt_now() - t0;
        }
        free(config);
        if (st != RT_OK)
            failure_keep(s, done, rt_last_error());
    }
    session_full_state_free(s, state);
    return RT_OK;
}

/* --ckpt-write async: rank 0 waits for the previous write, copies the state
 * into its snapshot (device -> host; with ZeRO-1 the shards are gathered
 * into it, every rank taking part) and hands it to the writer thread. */
static rt_status checkpoint_async(session_t *s, int64_t done)
{
    int64_t lo, hi;
    replica_shard(s->rep, &lo, &hi);
    const bool zero = sharded(s);
    if (s->rank != 0) {
        if (!zero)
            return RT_OK;  /* rank 0 holds all it writes */
        TRY(replica_download(s->rep, true));
        float *state[2] = {NULL, NULL};
        rt_status st = session_full_state(s, true, state);
        session_full_state_free(s, state);
        return st;
    }
    ckpt_snapshot_t *sn = &s->snap;
    ckpt_write_report_t rep;
    if (ckpt_writer_wait(s->writer, &rep))  /* at most one write in flight */
        report_take(s, &rep);
    float *mine[2] = {NULL, NULL};
    for (int i = 0; i < sn->nstate; i++)
        mine[i] = sn->state[i] + lo;
    TRY(replica_copy_out(s->rep, sn->params, mine));
    if (zero) {
        const int64_t total = sn->total;
        size_t *counts = calloc((size_t)s->world, sizeof *counts);
        CHECK_ALLOC(counts, sizeof *counts * (size_t)s->world);
        grad_plan_shard_counts(total, s->world, 0, total, counts);
        rt_status st = RT_OK;
        for (int i = 0; st == RT_OK && i < sn->nstate; i++)
            st = coll_allgather_v(s->comm, sn->state[i], counts, RT_DTYPE_F32);
        free(counts);
        TRY(st);
    }
    if (s->ckpt_failed)
        return RT_OK;  /* the previous write failed: no new one; the job stops */
    /* the session's scalars hold what a resume read (the init seed) */
    const int64_t epoch = scalars_fill(s, &s->sc);
    sn->sc = s->sc;
    rt_status st = ckpt_state_all(&sn->list, replica_registry(s->rep), sn->params, &s->optim,
                                  sn->state, &sn->sc);
    char *config = st == RT_OK ? config_json(s) : NULL;
    if (st == RT_OK && !config)
        st = RT_ERR_NOMEM;
    if (st == RT_OK)
        st = ckpt_snapshot_set_meta(sn, done, epoch, s->spec.text, config, s->world);
    free(config);
    if (st == RT_OK)
        st = ckpt_writer_start(s->writer, s->cfg.ckpt_dir, &s->ckpt_run, &sn->meta, sn->list.arrays,
                               sn->list.n);
    if (st != RT_OK)
        failure_keep(s, done, rt_last_error());
    return RT_OK;
}

rt_status session_checkpoint(session_t *s, int64_t done, double t0)
{
    const bool async = session_ckpt_async(s);
    double write_s = 0.0;
    if (async)
        TRY(checkpoint_async(s, done));
    else
        TRY(checkpoint_sync(s, done, &write_s));
    /* the outcome, as step + 1 of a failed write (0: none), to every rank */
    int64_t failed = s->rank == 0 ? s->ckpt_failed : 0;
    TRY(session_bcast(s, &failed, 1, RT_DTYPE_I64));
    const double now = rt_now();
    rt_trace_span(s->trace, "checkpoint", "checkpoint", t0, now, "step", done);
    s->ckpt_stall = now - t0;
    if (failed)
        return failure_return(s, failed - 1);
    if (!async && s->rank == 0)
        written_print(s, done, s->ckpt_path, write_s);
    return RT_OK;
}

int64_t session_ckpt_poll(session_t *s)
{
    ckpt_write_report_t rep;
    if (s->writer && ckpt_writer_poll(s->writer, &rep))
        report_take(s, &rep);
    return s->ckpt_failed;
}

rt_status session_ckpt_failed(session_t *s, int64_t failed)
{
    return failure_return(s, failed - 1);
}

rt_status session_ckpt_drain(session_t *s)
{
    if (!session_ckpt_async(s))
        return RT_OK;
    ckpt_write_report_t rep;
    if (s->writer && ckpt_writer_wait(s->writer, &rep))
        report_take(s, &rep);
    int64_t failed = s->rank == 0 ? s->ckpt_failed : 0;
    TRY(session_bcast(s, &failed, 1, RT_DTYPE_I64));
    return failed ? failure_return(s, failed - 1) : RT_OK;
}

void session_ckpt_end(session_t *s)
{
    ckpt_write_report_t rep;
    if (s->writer && ckpt_writer_wait(s->writer, &rep)) {
        /* the run failed otherwise while this write was in flight: say how
         * it ended (a complete checkpoint is one to resume from) */
        if (rep.status == RT_OK)
            written_print(s, rep.step, rep.path, rep.seconds);
        else
            LOG_WARN("checkpoint at step %lld was not written: %s", (long long)rep.step, rep.error);
    }
    ckpt_writer_destroy(s->writer);
    s->writer = NULL;
    ckpt_snapshot_free(&s->snap);
}
