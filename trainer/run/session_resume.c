/* session_resume.c - which checkpoint a session resumes from and how it is
 * loaded: rank 0 locks the checkpoint directory and picks the newest
 * complete one that verifies (or the file given), every rank learns the
 * choice and reads the checkpoint itself (every array's CRC-32C checked),
 * and the ranks compare digests of what they loaded. The run keeps the
 * checkpoint's global batch (per-rank batch x accum x ranks) whatever the
 * rank count. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/ckpt_lock.h"
#include "common/check.h"
#include "trainer/ckpt/export.h"
#include "trainer/run/session_internal.h"

static void resume_skip_report(void *ctx, const char *path, const char *reason)
{
    (void)ctx;
    fprintf(stderr, "ringtrain train: resume: skip %s: %s\n", path, reason);
    fflush(stderr);
}

static void prune_note(void *ctx, const char *line)
{
    (void)ctx;
    fprintf(stderr, "ringtrain train: %s\n", line);
    fflush(stderr);
}

/* A fresh start with --init-params: the file names this run's model, found
 * before any step (session_start reads the parameters). A resumed run takes
 * its parameters from the checkpoint and does not read the file. */
static rt_status init_params_check(session_t *s)
{
    const char *path = s->cfg.init_params;
    if (!path)
        return RT_OK;
    char spec[512];
    if (params_read_spec_h5(path, spec, sizeof spec) != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "--init-params");
    model_spec_t m;
    rt_status st = model_spec_parse(spec, &m);
    if (st != RT_OK)
        return rt_fail(RT_ERR_USAGE, "--init-params %s: model_spec '%s' is not a model spec", path, spec);
    bool same = !strcmp(m.text, s->spec.text);
    model_spec_free(&m);
    if (!same)
        return rt_fail(RT_ERR_USAGE, "--init-params %s is for model '%s' but this run's model is '%s'",
                       path, spec, s->spec.text);
    return RT_OK;
}

rt_status session_resume_choose(session_t *s)
{
    const train_config_t *a = &s->cfg;
    if (s->rank != 0)
        return RT_OK;
    /* in use: a usage error already; unwritable: also one (exit 2, the
     * launcher does not retry what a restart cannot fix) */
    if (a->ckpt_dir && ckpt_dir_lock(a->ckpt_dir, &s->lock_fd) != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "--ckpt-dir");
    /* The lock opens an existing .lock in a directory the user cannot
     * write to; the first checkpoint would fail only after training. The
     * export likewise: both are found now (exit 2). */
    if (a->ckpt_dir && ckpt_dir_writable(a->ckpt_dir) != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "--ckpt-dir");
    if (a->export_params && params_export_check(a->export_params) != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "--export-params");
    /* the history is known once the checkpoint is loaded */
    ckpt_run_init(&s->ckpt_run, a->keep, -1, prune_note, NULL);
    if (!strcmp(a->resume, "never"))
        return init_params_check(s);
    if (!strcmp(a->resume, "auto")) {
        if (!a->ckpt_dir)
            return init_params_check(s);
        int64_t step = 0;
        TRY(ckpt_find_latest(a->ckpt_dir, s->resume_path, sizeof s->resume_path, &step,
                             resume_skip_report, NULL));
        if (!s->resume_path[0])
            printf("resume: no complete checkpoint in %s, starting at step 0\n", a->ckpt_dir);
        fflush(stdout);
        return s->resume_path[0] ? RT_OK : init_params_check(s);
    }
    if (strlen(a->resume) >= sizeof s->resume_path)
        return rt_fail(RT_ERR_USAGE, "--resume: path too long");
    if (access(a->resume, R_OK) != 0)
        return rt_fail(RT_ERR_USAGE, "--resume %s: %s", a->resume, strerror(errno));
    snprintf(s->resume_path, sizeof s->resume_path, "%s", a->resume);
    return RT_OK;
}

rt_status session_resume_open(session_t *s, ckpt_reader_t **rd)
{
    train_config_t *a = &s->cfg;
    const char *path = s->resume_path;
    rt_status st = ckpt_open(path, rd);
    if (st != RT_OK)
        return rt_fail_context(rt_input_status(st), "--resume");
    if (ckpt_expect_spec(*rd, s->spec.text) != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "--model");
    TRY(ckpt_state_scalars(&s->list, &s->sc));
    st = ckpt_read_arrays(*rd, s->list.arrays, s->list.n);
    if (st != RT_OK)
        return rt_fail_context(rt_input_status(st), "resuming from %s", path);
    if (s->sc.accum != a->accum)
        return rt_fail(RT_ERR_USAGE,
                       "checkpoint %s was written with --accum %lld; this run has --accum %d "
                       "(keep --accum: the global batch must stay the same)",
                       path, (long long)s->sc.accum, a->accum);
    int64_t batch = 0;
    if (ckpt_resume_batch(s->sc.world, s->sc.batch, s->world, a->batch, &batch) != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "cannot resume from %s on %d ranks", path, s->world);
    if (batch > 1 << 24)
        return rt_fail(RT_ERR_USAGE, "resuming from %s: batch %lld per rank is too large", path,
                       (long long)batch);
    a->batch = (int)batch;
    /* the stored position counts samples of the global order, a whole number of steps */
    int64_t per_batch = (int64_t)a->batch * s->world;
    if (s->sc.data_position % per_batch != 0 || s->sc.data_position < 0 || s->sc.data_epoch < 0)
        return rt_fail(RT_ERR_FORMAT, "checkpoint %s: sample position %lld is not a whole number of "
                       "batches of %lld", path, (long long)s->sc.data_position, (long long)per_batch);
    return RT_OK;
}

/* Whether the run resumed from its own --ckpt-dir's checkpoint of that
 * step: then the checkpoints up to it are the history the run continues,
 * and pruning may treat them as its own (docs/CHECKPOINTS.md). */
static bool resumed_from_dir(const session_t *s)
{
    char path[4096];
    struct stat a, b;
    return s->cfg.ckpt_dir &&
           ckpt_path_for_step(s->cfg.ckpt_dir, s->sc.step, path, sizeof path) == RT_OK &&
           stat(path, &a) == 0 && stat(s->resume_path, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

rt_status session_resume_load(session_t *s, ckpt_reader_t *rd)
{
    const param_registry_t *reg = replica_registry(s->rep);
    char probe[RT_PARAM_NAME_MAX + 32];
    ckpt_state_optimizer_probe(reg, OPTIM_ADAMW, probe, sizeof probe);
    bool has_m = ckpt_has_array(rd, probe) == 1;
    if ((s->optim.kind == OPTIM_ADAMW) != has_m)
        return rt_fail(RT_ERR_USAGE, "checkpoint %s holds %s optimizer state; this run has --optimizer %s",
                       s->resume_path, has_m ? "adamw" : "sgd", optim_kind_name(s->optim.kind));
    /* whole-arena state as the file holds it; with ZeRO-1 each rank keeps
     * its shard of it */
    float *state[2] = {NULL, NULL};
    TRY(session_full_state(s, false, state));
    rt_status st = ckpt_state_all(&s->list, reg, replica_host_params(s->rep), &s->optim, state,
                                  &s->sc);
    if (st == RT_OK) {
        st = ckpt_read_arrays(rd, s->list.arrays, s->list.n);
        if (st != RT_OK)
            st = rt_fail_context(rt_input_status(st), "resuming from %s", s->resume_path);
    }
    if (st == RT_OK) {
        s->digest = ckpt_digest(ckpt_reader_meta(rd), s->list.arrays, s->list.n);
        session_full_state_scatter(s, state);
    }
    session_full_state_free(s, state);
    TRY(st);
    s->start_step = s->sc.step;
    if (s->rank == 0 && resumed_from_dir(s))
        s->ckpt_run.history_step = s->start_step;
    return RT_OK;
}

/* Every rank loaded the checkpoint itself: compare what they loaded. */
rt_status session_resume_agree(session_t *s)
{
    int64_t mine = (int64_t)s->digest;
    if (s->comm) {
        int64_t *all = calloc((size_t)s->world, sizeof *all);
        CHECK_ALLOC(all, sizeof *all * (size_t)s->world);
        rt_status st = coll_allgather(s->comm, &mine, all, 1, RT_DTYPE_I64);
        char list[1024];
        size_t o = 0;
        bool agree = true;
        for (int i = 0; st == RT_OK && i < s->world; i++) {
            agree = agree && all[i] == all[0];
            if (o < sizeof list)
                o += (size_t)snprintf(list + o, sizeof list - o, "%s rank %d 0x%016llx", i ? "," : "",
                                      i, (unsigned long long)all[i]);
        }
        free(all);
        TRY(st);
        s->consistent = true;
        if (!agree)
            return rt_fail(RT_ERR_MISMATCH, "ranks loaded different state from %s (digests:%s)",
                           s->resume_path, list);
        s->consistent = false;
    }
    if (s->rank == 0) {
        /* on stderr, next to the launcher's own lines (docs/LAUNCH.md) */
        fprintf(stderr, "ringtrain train: resumed from %s (step %lld, epoch %lld, written by %lld ranks x batch %lld; "
                "digest 0x%016llx)\n",
                s->resume_path, (long long)s->sc.step, (long long)s->sc.data_epoch,
                (long long)s->sc.world, (long long)s->sc.batch, (unsigned long long)s->digest);
        fflush(stderr);
    }
    return RT_OK;
}
