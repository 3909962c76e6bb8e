/* session_ckpt.c - writing a session's checkpoint: rank 0 writes the state
 * of `done` steps from the host copies (atomically, then prunes what the run
 * may delete, keeping --keep of its own); every rank then learns whether it
 * worked, so that a failed write stops the whole job rather than training on without checkpoints. Called only
 * between steps, after the parameters, optimizer state and step results
 * have been brought to the host. */
/* POSIX: clock_gettime (common/timer.h) */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "common/timer.h"
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

rt_status session_checkpoint(session_t *s, int64_t done)
{
    const train_config_t *a = &s->cfg;
    const double t0 = rt_now();
    int32_t failed = 0;
    char path[4096] = "";
    /* with ZeRO-1 the shards come together first, on every rank */
    float *state[2] = {NULL, NULL};
    TRY(session_full_state(s, true, state));
    if (s->rank == 0) {
        sampler_state_t ls = loader_state(s->loader);
        if (ls.position >= s->steps_per_epoch * a->accum)
            ls = (sampler_state_t){.seed = ls.seed, .epoch = ls.epoch + 1, .position = 0};
        ckpt_scalars_t *sc = &s->sc;
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
        rt_status st = ckpt_state_all(&s->list, replica_registry(s->rep),
                                      replica_host_params(s->rep), &s->optim, state, sc);
        char probe[1];
        size_t need = train_config_json(a, s->spec.text, s->world, probe, sizeof probe) + 1;
        char *config = st == RT_OK ? malloc(need) : NULL;
        if (st == RT_OK && !config)
            st = rt_fail(RT_ERR_NOMEM, "cannot allocate %zu bytes", need);
        if (st == RT_OK) {
            train_config_json(a, s->spec.text, s->world, config, need);
            ckpt_meta_t meta = {.step = done, .epoch = ls.epoch, .model_spec = s->spec.text,
                                .config_json = config, .world_size = s->world};
            st = ckpt_save(a->ckpt_dir, &s->ckpt_run, &meta, s->list.arrays, s->list.n, path,
                           sizeof path);
        }
        free(config);
        failed = st != RT_OK;
        if (!failed) {
            printf("checkpoint %s (step %lld)\n", path, (long long)done);
            fflush(stdout);
        }
    }
    session_full_state_free(s, state);
    TRY(session_bcast(s, &failed, 1, RT_DTYPE_I32));
    rt_trace_span(s->trace, "checkpoint", "checkpoint", t0, rt_now(), "step", done);
    s->consistent = true;
    if (failed && s->rank == 0)
        return rt_fail_context(RT_ERR_IO, "checkpoint at step %lld (training stops rather than go on without it)",
                               (long long)done);
    if (failed)
        return rt_fail(RT_ERR_IO, "rank 0 could not write the checkpoint at step %lld", (long long)done);
    s->consistent = false;
    return RT_OK;
}
