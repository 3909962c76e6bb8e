/* cmd_train.c - `ringtrain train`: data-parallel training of the MLP on the
 * CPU or a CUDA device (launch/train_device.h). Every rank runs this: flags are checked before MPI starts; datasets,
 * model dimensions and batch sizes are checked on every rank and the ranks
 * agree on the outcome before any training (so a bad input ends every rank
 * with exit 2, never a hang); rank 0 initialises the parameters and
 * broadcasts them; each step averages gradients with our ring all-reduce in
 * buckets started during backward; rank 0 logs and writes the metrics.
 * Flags and metrics: docs/TRAINING.md. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/coll.h"
#include "common/args.h"
#include "common/check.h"
#include "common/hdf5_util.h"
#include "common/log.h"
#include "common/status.h"
#include "common/timer.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "launch/commands.h"
#include "launch/eval_set.h"
#include "launch/train_device.h"
#include "launch/train_ckpt.h"
#include "cluster/ckpt_lock.h"
#include "trainer/ckpt_file.h"
#include "trainer/cpu_env.h"
#include "trainer/export.h"
#include "trainer/mlp.h"
#include "trainer/optim.h"
#include "trainer/schedule.h"
#include "trainer/threads.h"
#include "trainer/train_step.h"

/* Nonblocking all-reduces in flight at once: the collectives keep a few
 * scratch buffers per communicator (8), each request holding one or two. */
#define TRAIN_MAX_INFLIGHT 4

typedef struct {
    const char *model, *data, *eval, *optimizer, *schedule, *device, *metrics, *export_params;
    const char *ckpt_dir, *resume;
    int batch, epochs, steps, warmup, seed, log_every, accum, threads, eval_every, ckpt_every, keep;
    double lr, momentum, weight_decay, grad_clip, bucket_mb;
    bool skip_nonfinite, tf32, eager;
    /* derived */
    mlp_spec_t spec;
    optim_kind opt_kind;
    sched_kind sched;
} train_args_t;

/* ---- flags ---------------------------------------------------------------- */

static rt_status train_args_parse(train_args_t *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->optimizer = "adamw";
    a->schedule = "constant";
    a->device = "auto";
    a->lr = 1e-3;
    a->momentum = 0.9;
    a->weight_decay = -1.0;  /* per optimizer: PyTorch's default */
    a->log_every = 50;
    a->accum = 1;
    a->bucket_mb = 4.0;
    arg_spec specs[] = {
        {"model", ARG_STRING, &a->model, "SPEC", "model, e.g. mlp:784,1024,1024,10", true, false},
        {"data", ARG_STRING, &a->data, "F.h5", "training set (classification)", true, false},
        {"eval", ARG_STRING, &a->eval, "F.h5", "test set, evaluated once across ranks", false, false},
        {"batch", ARG_INT, &a->batch, "N",
         "rows per rank per micro-batch (required unless resuming: then the checkpoint's global batch / ranks)",
         false, false},
        {"epochs", ARG_INT, &a->epochs, "N", "epochs to train (default 1)", false, false},
        {"steps", ARG_INT, &a->steps, "N", "steps to train (instead of --epochs)", false, false},
        {"accum", ARG_INT, &a->accum, "N", "micro-batches accumulated per step (1)", false, false},
        {"optimizer", ARG_STRING, &a->optimizer, "sgd|adamw", "optimizer (adamw)", false, false},
        {"lr", ARG_DOUBLE, &a->lr, "X", "peak learning rate (1e-3)", false, false},
        {"momentum", ARG_DOUBLE, &a->momentum, "X", "SGD momentum (0.9)", false, false},
        {"weight-decay", ARG_DOUBLE, &a->weight_decay, "X",
         "weight decay (adamw 0.01 decoupled, sgd 0 L2)", false, false},
        {"warmup", ARG_INT, &a->warmup, "N", "linear warmup steps (0)", false, false},
        {"schedule", ARG_STRING, &a->schedule, "constant|cosine", "after warmup (constant)", false, false},
        {"grad-clip", ARG_DOUBLE, &a->grad_clip, "X", "clip the global gradient norm (0: off)", false, false},
        {"seed", ARG_INT, &a->seed, "N", "parameter init and sample order (0)", false, false},
        {"device", ARG_STRING, &a->device, "auto|cpu|cuda", "where to train (auto: this rank's node-local GPU if any, else cpu)", false, false},
        {"threads", ARG_INT, &a->threads, "N", "CPU threads per rank (0: cores / ranks on the node)", false, false},
        {"log-every", ARG_INT, &a->log_every, "N", "log every N steps (50)", false, false},
        {"eval-every", ARG_INT, &a->eval_every, "N", "evaluate every N steps (0: each epoch and at the end)", false, false},
        {"metrics", ARG_STRING, &a->metrics, "F.jsonl", "JSON-lines metrics (rank 0)", false, false},
        {"export-params", ARG_STRING, &a->export_params, "F.h5", "write the final parameters (HDF5, state_dict names)", false, false},
        {"bucket-mb", ARG_DOUBLE, &a->bucket_mb, "X", "gradient all-reduce bucket size in MiB (4)", false, false},
        {"skip-nonfinite", ARG_FLAG, &a->skip_nonfinite, NULL, "skip steps with a non-finite loss or gradient instead of stopping", false, false},
        {"tf32", ARG_FLAG, &a->tf32, NULL, "GPU: allow TF32 tensor cores in matrix products (default full fp32)", false, false},
        {"eager", ARG_FLAG, &a->eager, NULL, "GPU: launch kernel by kernel instead of replaying a CUDA graph (debugging)", false, false},
        {"ckpt-dir", ARG_STRING, &a->ckpt_dir, "D",
         "checkpoint directory (rank 0 locks it and writes ckpt-<step>.h5; a final one at the end)", false, false},
        {"ckpt-every", ARG_INT, &a->ckpt_every, "N", "also checkpoint every N steps (0: only at the end)", false, false},
        {"keep", ARG_INT, &a->keep, "N", "keep the N newest checkpoints (0: all; default 3)", false, false},
        {"resume", ARG_STRING, &a->resume, "auto|never|PATH",
         "auto: newest good checkpoint in --ckpt-dir (default); never; or this file", false, false},
    };
    const int nspecs = (int)(sizeof specs / sizeof specs[0]);
    arg_command cmd = {.prog = "ringtrain train",
                       .summary = "Train a model data-parallel on the CPU (run under mpirun for several "
                                  "ranks); gradients are averaged with the ring all-reduce."};
    a->keep = 3;
    TRY(args_parse(&cmd, specs, nspecs, argc, argv));
    if (!a->resume)
        a->resume = "auto";
    if (!*a->resume)
        return rt_fail(RT_ERR_USAGE, "--resume: give auto, never or a checkpoint file");
    if (a->ckpt_dir && !*a->ckpt_dir)
        return rt_fail(RT_ERR_USAGE, "--ckpt-dir: empty directory name");
    if (a->ckpt_every < 0)
        return rt_fail(RT_ERR_USAGE, "--ckpt-every must not be negative, got %d", a->ckpt_every);
    if (a->keep < 0)
        return rt_fail(RT_ERR_USAGE, "--keep must not be negative, got %d", a->keep);
    if (!a->ckpt_dir && (specs[nspecs - 3].seen || specs[nspecs - 2].seen))
        return rt_fail(RT_ERR_USAGE, "--%s needs --ckpt-dir", specs[nspecs - 3].seen ? "ckpt-every" : "keep");

    TRY(mlp_spec_parse(a->model, &a->spec));
    TRY(optim_kind_parse(a->optimizer, &a->opt_kind));
    TRY(sched_kind_parse(a->schedule, &a->sched));
    if (strcmp(a->device, "auto") && strcmp(a->device, "cpu") && strcmp(a->device, "cuda"))
        return rt_fail(RT_ERR_USAGE, "--device '%s' is not auto, cpu or cuda", a->device);
    TRY(train_device_check_flag(a->device));
    if (specs[3].seen && a->batch < 1)
        return rt_fail(RT_ERR_USAGE, "--batch must be at least 1, got %d", a->batch);
    if (specs[4].seen && specs[5].seen)
        return rt_fail(RT_ERR_USAGE, "give --epochs or --steps, not both");
    if (specs[4].seen && a->epochs < 1)
        return rt_fail(RT_ERR_USAGE, "--epochs must be at least 1, got %d", a->epochs);
    if (specs[5].seen && a->steps < 1)
        return rt_fail(RT_ERR_USAGE, "--steps must be at least 1, got %d", a->steps);
    if (!specs[4].seen && !specs[5].seen)
        a->epochs = 1;
    if (a->accum < 1)
        return rt_fail(RT_ERR_USAGE, "--accum must be at least 1, got %d", a->accum);
    if (!(a->lr >= 0.0))
        return rt_fail(RT_ERR_USAGE, "--lr must not be negative, got %g", a->lr);
    if (!(a->momentum >= 0.0 && a->momentum < 1.0))
        return rt_fail(RT_ERR_USAGE, "--momentum must be in [0, 1), got %g", a->momentum);
    if (a->weight_decay < 0.0 && specs[10].seen)
        return rt_fail(RT_ERR_USAGE, "--weight-decay must not be negative, got %g", a->weight_decay);
    if (a->opt_kind == OPTIM_ADAMW && a->weight_decay * a->lr >= 1.0)
        return rt_fail(RT_ERR_USAGE, "--weight-decay x --lr must be below 1 for AdamW, got %g",
                       a->weight_decay * a->lr);
    if (a->warmup < 0)
        return rt_fail(RT_ERR_USAGE, "--warmup must not be negative, got %d", a->warmup);
    if (!(a->grad_clip >= 0.0))
        return rt_fail(RT_ERR_USAGE, "--grad-clip must not be negative, got %g", a->grad_clip);
    if (a->log_every < 1)
        return rt_fail(RT_ERR_USAGE, "--log-every must be at least 1, got %d", a->log_every);
    if (a->eval_every < 0)
        return rt_fail(RT_ERR_USAGE, "--eval-every must not be negative, got %d", a->eval_every);
    if (a->threads < 0)
        return rt_fail(RT_ERR_USAGE, "--threads must not be negative, got %d", a->threads);
    if (a->seed < 0)
        return rt_fail(RT_ERR_USAGE, "--seed must not be negative, got %d", a->seed);
    if (!(a->bucket_mb > 0.0 && a->bucket_mb <= 4096.0))
        return rt_fail(RT_ERR_USAGE, "--bucket-mb must be in (0, 4096], got %g", a->bucket_mb);
    return RT_OK;
}

/* ---- per-rank state --------------------------------------------------------- */

typedef struct {
    train_args_t *a;
    coll_comm_t *comm;
    int rank, world, threads;
    dataset_t *train_ds, *eval_ds;
    loader_t *loader;
    mlp_t model;
    bool model_ready;
    optimizer_t opt;
    train_step_t step;
    FILE *metrics;
    int64_t steps_per_epoch;   /* optimizer steps */
    int64_t loader_spe;        /* loader batches per epoch */
    int64_t total_steps;
    /* micro-batch supply */
    int64_t micro_in_epoch;
    bool holding;
    /* in-flight bucket all-reduces */
    coll_request_t *reqs[TRAIN_MAX_INFLIGHT];
    int nreqs;
    bool consistent;           /* the failure, if any, is the same on every rank */
    int64_t step_index;        /* the step being run (0-based) */
    train_device_t dev;        /* dev.device < 0: the CPU */
    /* test hooks for the launcher's fault tests (docs/LAUNCH.md) */
    int64_t die_at, hang_at;   /* -1: off */
    int die_rank, hang_rank;
    /* checkpoints */
    int lock_fd;               /* rank 0 with --ckpt-dir: holds DIR/.lock */
    char resume_path[4096];    /* "" : a fresh run */
    train_scalars_t sc;        /* the checkpoint's scalars (read, then written) */
    uint64_t digest;           /* of what this rank loaded */
    int64_t start_step;
    char spec_str[512];
    int stop_signal;
    train_ckpt_list_t list;           /* SIGTERM/SIGINT agreed by all ranks */
} train_run_t;

/* SIGTERM/SIGINT only set this; the loop checks it between steps, and the
 * ranks agree on it (a sum over ranks), so all stop after the same step. */
static volatile sig_atomic_t g_stop_signal = 0;

static void on_stop_signal(int sig)
{
    if (!g_stop_signal)
        g_stop_signal = sig;
}

static void stop_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* a file-size limit makes a checkpoint write fail with EFBIG (reported,
     * training stops) instead of killing the rank mid-write */
    signal(SIGXFSZ, SIG_IGN);
}

/* RT_TEST_DIE_AT_STEP / RT_TEST_HANG_AT_STEP (and their _RANK, default 1):
 * the launcher's end-to-end tests kill or hang one rank at a given step to
 * check restarts and collective timeouts. Unset: never fire. */
static void test_hooks_read(train_run_t *r)
{
    const char *v;
    r->die_at = (v = getenv("RT_TEST_DIE_AT_STEP")) ? strtoll(v, NULL, 10) : -1;
    r->hang_at = (v = getenv("RT_TEST_HANG_AT_STEP")) ? strtoll(v, NULL, 10) : -1;
    r->die_rank = (v = getenv("RT_TEST_DIE_RANK")) ? atoi(v) : 1;
    r->hang_rank = (v = getenv("RT_TEST_HANG_RANK")) ? atoi(v) : 1;
}

/* The metrics file: a fresh run truncates it; a resumed run keeps the lines
 * up to the checkpoint's step (those after it were written by the run that
 * was interrupted and are about to be redone) and appends. NULL and errno
 * on failure. */
static FILE *metrics_open(const char *path, int64_t keep_upto)
{
    if (keep_upto < 0)
        return fopen(path, "w");
    FILE *old = fopen(path, "r");
    if (!old)
        return errno == ENOENT ? fopen(path, "w") : NULL;
    char *kept = NULL;
    size_t kept_len = 0;
    FILE *mem = open_memstream(&kept, &kept_len);
    if (!mem) {
        fclose(old);
        return NULL;
    }
    char line[4096];
    bool drop = false;
    while (fgets(line, sizeof line, old)) {
        long long step;
        bool whole = strchr(line, '\n') != NULL;
        if (!drop && sscanf(line, "{\"step\":%lld", &step) == 1 && step > keep_upto)
            drop = true;  /* the interrupted run's lines past the checkpoint */
        if (!drop && whole)
            fputs(line, mem);
        if (!whole)
            break;  /* a cut-off last line (killed mid-write) */
    }
    fclose(old);
    fclose(mem);
    FILE *f = fopen(path, "w");
    if (f && kept_len)
        fwrite(kept, 1, kept_len, f);
    free(kept);
    return f;
}

/* ---- resume: choose, open, size the run from the checkpoint ------------------- */

static void resume_skip_report(void *ctx, const char *path, const char *reason)
{
    (void)ctx;
    fprintf(stderr, "ringtrain train: resume: skip %s: %s\n", path, reason);
    fflush(stderr);
}

/* Rank 0 locks the checkpoint directory (before anything is written into
 * it, held to the end) and picks the checkpoint to resume; every rank then
 * learns the choice by a broadcast. */
static rt_status run_resume_choose(train_run_t *r)
{
    train_args_t *a = r->a;
    if (r->rank != 0)
        return RT_OK;
    /* in use: a usage error already; unwritable: also one (exit 2, the
     * launcher does not retry what a restart cannot fix) */
    if (a->ckpt_dir && ckpt_dir_lock(a->ckpt_dir, &r->lock_fd) != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "--ckpt-dir");
    if (!strcmp(a->resume, "never"))
        return RT_OK;
    if (!strcmp(a->resume, "auto")) {
        if (!a->ckpt_dir)
            return RT_OK;
        int64_t step = 0;
        TRY(ckpt_find_latest(a->ckpt_dir, r->resume_path, sizeof r->resume_path, &step,
                             resume_skip_report, NULL));
        if (!r->resume_path[0])
            printf("resume: no complete checkpoint in %s, starting at step 0\n", a->ckpt_dir);
        fflush(stdout);
        return RT_OK;
    }
    if (strlen(a->resume) >= sizeof r->resume_path)
        return rt_fail(RT_ERR_USAGE, "--resume: path too long");
    if (access(a->resume, R_OK) != 0)
        return rt_fail(RT_ERR_USAGE, "--resume %s: %s", a->resume, strerror(errno));
    snprintf(r->resume_path, sizeof r->resume_path, "%s", a->resume);
    return RT_OK;
}

/* Opens the chosen checkpoint, checks the model and reads its scalars, and
 * sizes this run from them: the global batch (per-rank batch x accum x ranks)
 * of the checkpoint is kept, whatever the rank count (ckpt_resume_batch). */
static rt_status run_resume_open(train_run_t *r, ckpt_reader_t **rd)
{
    train_args_t *a = r->a;
    const char *path = r->resume_path;
    if (ckpt_open(path, rd) != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "--resume");
    if (ckpt_expect_spec(*rd, r->spec_str) != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "--model");
    r->list.n = 0;
    train_ckpt_scalars(&r->list, &r->sc);
    if (ckpt_read_arrays(*rd, r->list.arrays, r->list.n) != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "resuming from %s", path);
    if (r->sc.accum != a->accum)
        return rt_fail(RT_ERR_USAGE,
                       "checkpoint %s was written with --accum %lld; this run has --accum %d "
                       "(keep --accum: the global batch must stay the same)",
                       path, (long long)r->sc.accum, a->accum);
    int64_t batch = 0;
    if (ckpt_resume_batch(r->sc.world, r->sc.batch, r->world, a->batch, &batch) != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "cannot resume from %s on %d ranks", path, r->world);
    if (batch > 1 << 24)
        return rt_fail(RT_ERR_USAGE, "resuming from %s: batch %lld per rank is too large", path,
                       (long long)batch);
    a->batch = (int)batch;
    /* the stored position counts samples of the global order, a whole number of steps */
    int64_t per_batch = (int64_t)a->batch * r->world;
    if (r->sc.data_position % per_batch != 0 || r->sc.data_position < 0 || r->sc.data_epoch < 0)
        return rt_fail(RT_ERR_FORMAT, "checkpoint %s: sample position %lld is not a whole number of "
                       "batches of %lld", path, (long long)r->sc.data_position, (long long)per_batch);
    const char *kind = optim_kind_name(a->opt_kind);
    bool has_m = ckpt_has_array(*rd, "optimizer/m/fc1.weight") == 1;
    if ((a->opt_kind == OPTIM_ADAMW) != has_m)
        return rt_fail(RT_ERR_USAGE, "checkpoint %s holds %s optimizer state; this run has --optimizer %s",
                       path, has_m ? "adamw" : "sgd", kind);
    return RT_OK;
}

/* Reads parameters, optimizer state and counters of the opened checkpoint
 * into the allocated model (every array's CRC-32C is checked), and digests
 * what was loaded for the cross-rank comparison. */
static rt_status run_resume_load(train_run_t *r, ckpt_reader_t *rd)
{
    train_ckpt_all(&r->list, &r->model.params, &r->opt, &r->sc);
    if (ckpt_read_arrays(rd, r->list.arrays, r->list.n) != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "resuming from %s", r->resume_path);
    r->opt.step = r->sc.opt_step;
    r->start_step = r->sc.step;
    r->digest = ckpt_digest(ckpt_reader_meta(rd), r->list.arrays, r->list.n);
    return RT_OK;
}

static rt_status run_setup_inner(train_run_t *r, ckpt_reader_t **rd)
{
    train_args_t *a = r->a;
    if (r->resume_path[0])
        TRY(run_resume_open(r, rd));
    else if (a->batch < 1)
        return rt_fail(RT_ERR_USAGE, "--batch is required when not resuming from a checkpoint");
    TRY(eval_set_open(a->data, "data", &a->spec, &r->train_ds));
    if (a->eval)
        TRY(eval_set_open(a->eval, "eval", &a->spec, &r->eval_ds));
    int64_t n = dataset_info(r->train_ds)->count;
    int64_t shard = n / r->world;
    int64_t per_step = (int64_t)a->batch * a->accum;
    if (shard < per_step)
        return rt_fail(RT_ERR_USAGE,
                       "--batch %d x --accum %d = %lld rows per step is larger than a rank's shard "
                       "of %s (%lld records / %d ranks = %lld)",
                       a->batch, a->accum, (long long)per_step, a->data, (long long)n, r->world,
                       (long long)shard);
    loader_config_t lc;
    loader_config_default(&lc);
    lc.batch = a->batch;
    lc.rank = r->rank;
    lc.world = r->world;
    lc.shuffle = true;
    lc.remainder = SAMPLER_DROP;
    lc.prefetch = 4;
    lc.start = (sampler_state_t){.seed = (uint64_t)a->seed, .epoch = 0, .position = 0};
    if (r->dev.device >= 0) {  /* pinned: the copies to the device run asynchronously */
        lc.alloc = gpu_train_host_alloc;
        lc.free = gpu_train_host_free;
        lc.alloc_ctx = &r->dev.device;
    }
    if (r->resume_path[0]) {
        lc.start = (sampler_state_t){.seed = r->sc.data_seed, .epoch = r->sc.data_epoch,
                                     .position = r->sc.data_position / ((int64_t)a->batch * r->world)};
        r->micro_in_epoch = lc.start.position;
    }
    if (loader_open(&r->loader, r->train_ds, &lc) != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "--data");
    r->loader_spe = loader_steps_per_epoch(r->loader);
    r->steps_per_epoch = r->loader_spe / a->accum;
    if (r->steps_per_epoch < 1)
        return rt_fail(RT_ERR_USAGE, "--batch %d x --accum %d leaves no full step per epoch", a->batch,
                       a->accum);
    r->total_steps = a->steps ? a->steps : (int64_t)a->epochs * r->steps_per_epoch;

    if (r->rank == 0 && a->metrics) {
        r->metrics = metrics_open(a->metrics, r->resume_path[0] ? r->sc.step : -1);
        if (!r->metrics)
            return rt_fail(RT_ERR_USAGE, "--metrics %s: %s", a->metrics, strerror(errno));
    }
    TRY(mlp_create(&r->model, &a->spec, a->batch));
    r->model_ready = true;
    optim_config_t oc = optim_config_default(a->opt_kind);
    oc.momentum = a->opt_kind == OPTIM_SGD ? (float)a->momentum : 0.0f;
    if (a->weight_decay >= 0.0)
        oc.weight_decay = (float)a->weight_decay;
    TRY(optimizer_create(&r->opt, &oc, r->model.params.total));
    if (r->resume_path[0]) {
        if (r->micro_in_epoch >= r->steps_per_epoch * a->accum)
            return rt_fail(RT_ERR_FORMAT, "checkpoint %s: position %lld batches is past the epoch's %lld steps",
                           r->resume_path, (long long)r->micro_in_epoch, (long long)r->steps_per_epoch);
        TRY(run_resume_load(r, *rd));
    }
    if (r->dev.device >= 0)
        TRY(train_device_open(&r->dev, r->dev.device, a->tf32, a->eager, &r->model, &r->opt));
    return RT_OK;
}

static rt_status run_setup(train_run_t *r)
{
    ckpt_reader_t *rd = NULL;
    rt_status st = run_setup_inner(r, &rd);
    ckpt_close(rd);
    return st;
}

/* ---- gradient buckets: nonblocking ring all-reduce -------------------------- */

static rt_status bucket_progress(train_run_t *r)
{
    int kept = 0;
    for (int i = 0; i < r->nreqs; i++) {
        int done = 0;
        TRY(coll_test(r->reqs[i], &done));
        if (!done)
            r->reqs[kept++] = r->reqs[i];
    }
    r->nreqs = kept;
    return RT_OK;
}

static rt_status bucket_start(void *ctx, float *buf, int64_t count)
{
    train_run_t *r = ctx;
    TRY(bucket_progress(r));
    if (r->nreqs == TRAIN_MAX_INFLIGHT) {
        /* small buckets: finish the oldest before starting another */
        rt_status st = coll_wait(r->reqs[0]);
        memmove(r->reqs, r->reqs + 1, sizeof r->reqs[0] * (size_t)--r->nreqs);
        TRY(st);
    }
    TRY(coll_allreduce_start(r->comm, buf, buf, (size_t)count, RT_DTYPE_F32, COLL_AVG,
                             &r->reqs[r->nreqs]));
    r->nreqs++;
    return RT_OK;
}

static rt_status bucket_wait(void *ctx)
{
    train_run_t *r = ctx;
    rt_status st = RT_OK;
    for (int i = 0; i < r->nreqs; i++) {
        rt_status w = coll_wait(r->reqs[i]);
        if (st == RT_OK)
            st = w;
    }
    r->nreqs = 0;
    return st;
}

/* ---- batches ---------------------------------------------------------------- */

static rt_status next_micro(void *ctx, int k, const float **x, const int32_t **y, int *B)
{
    train_run_t *r = ctx;
    loader_batch_t b;
    if (r->holding) {
        loader_release(r->loader);
        r->holding = false;
    }
    /* Batches past the last whole step of an epoch are skipped, so that every
     * step's micro-batches come from one epoch (np=1 with accumulation then
     * sees the same samples per step as np=accum without). */
    if (r->micro_in_epoch == r->steps_per_epoch * r->a->accum) {
        for (int64_t i = r->micro_in_epoch; i < r->loader_spe; i++) {
            TRY(loader_acquire(r->loader, &b));
            loader_release(r->loader);
        }
        r->micro_in_epoch = 0;
    }
    if (k == 0 && r->step_index == r->hang_at && r->rank == r->hang_rank) {
        fprintf(stderr, "RT_TEST_HANG_AT_STEP: rank %d hangs in step %lld before its all-reduce\n",
                r->rank, (long long)r->step_index + 1);
        fflush(stderr);
        for (;;)
            sleep(1);
    }
    TRY(loader_acquire(r->loader, &b));
    r->holding = true;
    r->micro_in_epoch++;
    *x = b.inputs;
    *y = b.labels;
    *B = b.rows;
    return RT_OK;
}

/* ---- logging ------------------------------------------------------------------ */

static void format_duration(double s, char *buf, size_t size)
{
    if (!(s >= 0) || s > 1e7)
        snprintf(buf, size, "?");
    else if (s >= 3600)
        snprintf(buf, size, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else if (s >= 60)
        snprintf(buf, size, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(buf, size, "%.1fs", s);
}

/* FNV-1a over the parameter bytes: every rank must end with the same value. */
static uint64_t params_hash(const param_set_t *ps)
{
    const unsigned char *p = (const unsigned char *)ps->data;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < (size_t)ps->total * sizeof(float); i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static rt_status run_eval_and_log(train_run_t *r, int64_t step)
{
    double loss, acc;
    int64_t count;
    TRY(eval_set_run(&r->model, r->eval_ds, r->a->batch, r->comm, &loss, &acc, &count));
    if (r->rank == 0) {
        printf("eval  step %lld | loss %.4f | accuracy %.4f (%lld records)\n", (long long)step, loss,
               acc, (long long)count);
        fflush(stdout);
        if (r->metrics) {
            fprintf(r->metrics, "{\"step\":%lld,\"eval_loss\":%.7g,\"eval_accuracy\":%.7g}\n",
                    (long long)step, loss, acc);
            fflush(r->metrics);
        }
    }
    return RT_OK;
}

/* ---- checkpoints ------------------------------------------------------------- */

/* The training flags as a JSON object (the checkpoint's config attribute).
 * Returns the length it needs (as snprintf); the text is cut at size. */
static size_t config_json(const train_run_t *r, char *buf, size_t size)
{
    const train_args_t *a = r->a;
    size_t o = 0;
#define PUT(...) (o += (size_t)snprintf(buf + (o < size ? o : size), o < size ? size - o : 0, __VA_ARGS__))
#define PUT_STR(key, v)                                  \
    do {                                                 \
        PUT("\"%s\":", key);                            \
        if (v)                                           \
            train_json_string(buf, size, &o, v);         \
        else                                             \
            PUT("null");                                 \
        PUT(",");                                        \
    } while (0)
    PUT("{");
    PUT_STR("model", r->spec_str);
    PUT_STR("data", a->data);
    PUT_STR("eval", a->eval);
    PUT("\"batch\":%d,\"epochs\":%d,\"steps\":%d,\"accum\":%d,", a->batch, a->epochs, a->steps, a->accum);
    PUT_STR("optimizer", a->optimizer);
    PUT("\"lr\":%.17g,\"momentum\":%.17g,\"weight_decay\":%.17g,\"warmup\":%d,", a->lr, a->momentum,
        a->weight_decay, a->warmup);
    PUT_STR("schedule", a->schedule);
    PUT("\"grad_clip\":%.17g,\"seed\":%d,", a->grad_clip, a->seed);
    PUT_STR("device", a->device);
    PUT("\"threads\":%d,\"log_every\":%d,\"eval_every\":%d,", a->threads, a->log_every, a->eval_every);
    PUT_STR("metrics", a->metrics);
    PUT_STR("export_params", a->export_params);
    PUT("\"bucket_mb\":%.17g,\"skip_nonfinite\":%s,", a->bucket_mb, a->skip_nonfinite ? "true" : "false");
    PUT_STR("ckpt_dir", a->ckpt_dir);
    PUT("\"ckpt_every\":%d,\"keep\":%d,", a->ckpt_every, a->keep);
    PUT_STR("resume", a->resume);
    PUT("\"world\":%d}", r->world);
#undef PUT_STR
#undef PUT
    return o;
}

/* Rank 0 writes the checkpoint of `done` steps (atomically, then prunes to
 * --keep); all ranks then learn whether it worked, so that a failed write
 * stops the whole job (never training on without checkpoints). Called only
 * between steps, so every micro-batch of the last step is consumed. */
static rt_status run_checkpoint(train_run_t *r, int64_t done, double loss_sum, int64_t loss_count)
{
    train_args_t *a = r->a;
    int32_t failed = 0;
    char path[4096] = "";
    if (r->rank == 0) {
        sampler_state_t ls = loader_state(r->loader);
        if (ls.position >= r->steps_per_epoch * a->accum)
            ls = (sampler_state_t){.seed = ls.seed, .epoch = ls.epoch + 1, .position = 0};
        train_scalars_t *sc = &r->sc;
        sc->step = r->step.step;
        sc->opt_step = r->opt.step;
        sc->skipped = r->step.skipped;
        sc->loss_sum = loss_sum;
        sc->loss_count = loss_count;
        sc->data_seed = ls.seed;
        sc->data_epoch = ls.epoch;
        sc->data_position = ls.position * a->batch * r->world;
        sc->batch = a->batch;
        sc->accum = a->accum;
        sc->world = r->world;
        if (!r->resume_path[0])
            sc->init_seed = (uint64_t)a->seed;
        train_ckpt_all(&r->list, &r->model.params, &r->opt, sc);
        char probe[1];
        size_t need = config_json(r, probe, sizeof probe) + 1;
        char *config = malloc(need);
        CHECK_ALLOC(config, need);
        config_json(r, config, need);
        ckpt_meta_t meta = {.step = done, .epoch = ls.epoch, .model_spec = r->spec_str,
                            .config_json = config, .world_size = r->world};
        failed = ckpt_save(a->ckpt_dir, a->keep, &meta, r->list.arrays, r->list.n, path, sizeof path) != RT_OK;
        free(config);
        if (!failed) {
            printf("checkpoint %s (step %lld)\n", path, (long long)done);
            fflush(stdout);
        }
    }
    if (r->world > 1) {
        rt_status st = coll_broadcast(r->comm, &failed, 1, RT_DTYPE_I32, 0);
        if (st != RT_OK)
            return st;
    }
    r->consistent = true;
    if (failed && r->rank == 0)
        return rt_fail_context(RT_ERR_IO, "checkpoint at step %lld (training stops rather than go on without it)",
                               (long long)done);
    if (failed)
        return rt_fail(RT_ERR_IO, "rank 0 could not write the checkpoint at step %lld", (long long)done);
    r->consistent = false;
    return RT_OK;
}

/* All ranks learn whether any got SIGTERM/SIGINT (one 4-byte all-reduce a
 * step), so that they stop after the same step. */
static rt_status run_stop_agree(train_run_t *r, bool *stop)
{
    int32_t mine = g_stop_signal, sum = mine;
    if (r->world > 1)
        TRY(coll_allreduce(r->comm, &mine, &sum, 1, RT_DTYPE_I32, COLL_SUM));
    *stop = sum != 0;
    if (*stop)
        r->stop_signal = mine ? mine : SIGTERM;
    return RT_OK;
}

/* ---- the loop ----------------------------------------------------------------- */

static rt_status run_train(train_run_t *r)
{
    train_args_t *a = r->a;
    param_set_t *ps = &r->model.params;
    if (r->resume_path[0]) {
        /* every rank loaded the checkpoint itself: compare what they loaded */
        int64_t mine = (int64_t)r->digest;
        int64_t *all = calloc((size_t)r->world, sizeof *all);
        CHECK_ALLOC(all, sizeof *all * (size_t)r->world);
        rt_status st = coll_allgather(r->comm, &mine, all, 1, RT_DTYPE_I64);
        char list[1024];
        size_t o = 0;
        bool agree = true;
        for (int i = 0; st == RT_OK && i < r->world; i++) {
            agree = agree && all[i] == all[0];
            if (o < sizeof list)
                o += (size_t)snprintf(list + o, sizeof list - o, "%s rank %d 0x%016llx", i ? "," : "", i,
                                      (unsigned long long)all[i]);
        }
        free(all);
        TRY(st);
        r->consistent = true;
        if (!agree)
            return rt_fail(RT_ERR_MISMATCH, "ranks loaded different state from %s (digests:%s)",
                           r->resume_path, list);
        r->consistent = false;
        if (r->rank == 0) {
            /* on stderr, next to the launcher's own lines (docs/LAUNCH.md) */
            fprintf(stderr, "ringtrain train: resumed from %s (step %lld, epoch %lld, written by %lld ranks x batch %lld; "
                   "digest 0x%016llx)\n",
                   r->resume_path, (long long)r->sc.step, (long long)r->sc.data_epoch,
                   (long long)r->sc.world, (long long)r->sc.batch, (unsigned long long)r->digest);
            fflush(stderr);
        }
    } else {
        if (r->rank == 0)
            mlp_init_params(&r->model, (uint64_t)a->seed);
        TRY(coll_broadcast(r->comm, ps->data, (size_t)ps->total, RT_DTYPE_F32, 0));
    }
    const bool gpu = r->dev.device >= 0;
    if (gpu)
        TRY(train_device_start(&r->dev, r->world, &r->model, &r->opt));

    train_step_init(&r->step, &r->model, &r->opt);
    train_step_t *t = &r->step;
    t->accum = a->accum;
    t->grad_clip = a->grad_clip;
    t->skip_nonfinite = a->skip_nonfinite;
    t->sched = (schedule_t){.kind = a->sched, .base_lr = a->lr, .warmup = a->warmup,
                            .total = r->total_steps};
    t->bucket_floats = (int64_t)(a->bucket_mb * 1048576.0 / sizeof(float));
    if (t->bucket_floats < 1)
        t->bucket_floats = 1;
    if (r->world > 1 && !gpu) {
        t->reduce = bucket_start;
        t->wait = bucket_wait;
        t->reduce_ctx = r;
    }
    const int64_t global_batch = (int64_t)a->batch * a->accum * r->world;
    if (r->rank == 0) {
        printf("train %s | %d ranks x %d threads | batch %d x %d accum x %d ranks = %lld | "
               "%lld steps (%lld per epoch) | %s lr %g %s warmup %d | %s%s\n",
               a->model, r->world, r->threads, a->batch, a->accum, r->world,
               (long long)global_batch, (long long)r->total_steps, (long long)r->steps_per_epoch,
               a->optimizer, a->lr, a->schedule, a->warmup,
               gpu ? "" : "blas ", gpu ? (a->tf32 ? "cuda tf32" : "cuda fp32") : cpu_env_blas_core());
        fflush(stdout);
    }
    double t_start = rt_now(), t_log = t_start, loss_acc = 0.0;
    int64_t steps_since_log = 0;
    test_hooks_read(r);
    if (r->start_step > 0) {
        /* the hooks fire only in a run that started from step 0 (docs/LAUNCH.md) */
        r->die_at = r->hang_at = -1;
        t->step = r->sc.step;
        t->skipped = r->sc.skipped;
        loss_acc = r->sc.loss_sum;
        steps_since_log = r->sc.loss_count;
    }
    if (r->start_step >= r->total_steps && r->rank == 0) {
        printf("resume: the checkpoint's step %lld already reaches the %lld steps of this run; nothing to train\n",
               (long long)r->start_step, (long long)r->total_steps);
        fflush(stdout);
    }
    for (int64_t s = r->start_step; s < r->total_steps; s++) {
        step_result_t res;
        r->step_index = s;
        if (s == r->die_at && r->rank == r->die_rank) {
            fprintf(stderr, "RT_TEST_DIE_AT_STEP: rank %d dies after %lld steps\n", r->rank,
                    (long long)s);
            fflush(stderr);
            kill(getpid(), SIGKILL);
        }
        int64_t done = s + 1;
        bool log_step = done % a->log_every == 0 || done == r->total_steps;
        int64_t gpu_steps = 0;  /* the GPU reports its losses on log steps only */
        rt_status st = gpu ? train_device_step(&r->dev, t, next_micro, r, log_step, &res, &gpu_steps)
                           : train_step_run(t, next_micro, r, &res);
        if (r->holding) {
            loader_release(r->loader);
            r->holding = false;
        }
        r->consistent = st == RT_ERR_NUMERIC;
        TRY(st);
        if (res.skipped && r->rank == 0)
            LOG_WARN("step %lld: non-finite loss or gradient, update skipped (--skip-nonfinite)",
                     (long long)s + 1);
        if (gpu && gpu_steps) {
            loss_acc = res.loss * (double)gpu_steps;
            steps_since_log = gpu_steps;
        } else if (!gpu && !res.skipped) {
            loss_acc += res.loss;
            steps_since_log++;
        }
        double now = rt_now();
        if (r->rank == 0 && (done % a->log_every == 0 || done == r->total_steps)) {
            int64_t n_since = done - (done - 1) / a->log_every * a->log_every;
            double rate = (double)global_batch * (double)n_since / (now - t_log);
            double loss = steps_since_log ? loss_acc / (double)steps_since_log : NAN;
            double epoch = (double)done / (double)r->steps_per_epoch;
            char eta[32];
            format_duration((now - t_start) / (double)done * (double)(r->total_steps - done), eta,
                            sizeof eta);
            printf("step %lld/%lld | epoch %.2f | loss %.4f | lr %.3e | %.0f samples/s | ETA %s\n",
                   (long long)done, (long long)r->total_steps, epoch, loss, res.lr, rate, eta);
            fflush(stdout);
            if (r->metrics) {
                fprintf(r->metrics,
                        "{\"step\":%lld,\"epoch\":%.4f,\"loss\":%.7g,\"lr\":%.7g,"
                        "\"samples_per_s\":%.1f,\"grad_norm\":%.7g}\n",
                        (long long)done, epoch, loss, res.lr, rate, res.grad_norm);
                fflush(r->metrics);
            }
        }
        if (done % a->log_every == 0 || done == r->total_steps) {
            t_log = now;
            loss_acc = 0.0;
            steps_since_log = 0;
        }
        bool eval_now = r->eval_ds &&
                        (a->eval_every ? done % a->eval_every == 0
                                       : done % r->steps_per_epoch == 0 && !a->steps);
        if (r->eval_ds && done == r->total_steps)
            eval_now = true;
        if (eval_now && gpu)
            TRY(train_device_download(&r->dev, &r->model, NULL));
        if (eval_now)
            TRY(run_eval_and_log(r, done));
        bool stop = false;
        TRY(run_stop_agree(r, &stop));
        if (a->ckpt_dir && (stop || done == r->total_steps || (a->ckpt_every && done % a->ckpt_every == 0))) {
            if (gpu) /* the checkpoint is written from the host copies */
                TRY(train_device_download(&r->dev, &r->model, &r->opt));
            TRY(run_checkpoint(r, done, loss_acc, steps_since_log));
        }
        if (stop) {
            if (r->rank == 0) {
                printf("stopped by signal %d after step %lld%s\n", r->stop_signal, (long long)done,
                       a->ckpt_dir ? "; final checkpoint written" : " (no --ckpt-dir: no checkpoint)");
                fflush(stdout);
            }
            return RT_OK;
        }
    }
    if (gpu)
        TRY(train_device_download(&r->dev, &r->model, &r->opt));
    double seconds = rt_now() - t_start;

    /* every replica must hold the same parameters */
    int64_t mine = (int64_t)params_hash(ps);
    int64_t *all = calloc((size_t)r->world, sizeof *all);
    CHECK_ALLOC(all, sizeof *all * (size_t)r->world);
    rt_status st = coll_allgather(r->comm, &mine, all, 1, RT_DTYPE_I64);
    bool same = true;
    for (int i = 0; st == RT_OK && i < r->world; i++)
        same = same && all[i] == all[0];
    free(all);
    TRY(st);
    r->consistent = true;
    if (!same)
        return rt_fail(RT_ERR_INTERNAL, "replicas diverged: parameter hashes differ across ranks");
    if (r->rank == 0) {
        printf("done  %lld steps in %.1f s | %.0f samples/s | replicas identical (%016llx)%s\n",
               (long long)r->total_steps, seconds,
               (double)global_batch * (double)(r->total_steps - r->start_step) / seconds,
               (unsigned long long)mine, t->skipped ? " | some steps skipped" : "");
        if (r->metrics)
            fprintf(r->metrics, "{\"step\":%lld,\"train_seconds\":%.3f,\"skipped_steps\":%lld,"
                                "\"params_hash\":\"%016llx\"}\n",
                    (long long)r->total_steps, seconds, (long long)t->skipped,
                    (unsigned long long)mine);
        if (a->export_params) {
            char spec[512];
            mlp_spec_format(&a->spec, spec, sizeof spec);
            TRY(params_export_h5(ps, spec, a->export_params));
        }
    }
    return RT_OK;
}

static void run_free(train_run_t *r)
{
    if (r->holding)
        loader_release(r->loader);
    loader_close(r->loader);
    train_device_close(&r->dev);
    if (r->model_ready) {
        optimizer_free(&r->opt);
        mlp_free(&r->model);
    }
    dataset_close(r->eval_ds);
    dataset_close(r->train_ds);
    if (r->metrics)
        fclose(r->metrics);
    ckpt_dir_unlock(r->lock_fd);
}

int cmd_train(int argc, char **argv)
{
    /* before OpenBLAS threads, OpenMP or MPI start: may re-execute this process */
    cpu_env_reexec_if_needed();
    train_args_t args;
    rt_status st = train_args_parse(&args, argc, argv);
    if (st != RT_OK)
        return cmd_report("train", st);

    rt_hdf5_quiet();
    train_run_t run;
    memset(&run, 0, sizeof run);
    run.a = &args;
    run.lock_fd = -1;
    mlp_spec_format(&args.spec, run.spec_str, sizeof run.spec_str);
    bool speak = true;
    TRY_GOTO(st, coll_init(&argc, &argv), report);
    TRY_GOTO(st, coll_comm_world(&run.comm), finalize);
    stop_signals_install();
    run.rank = coll_rank(run.comm);
    run.world = coll_size(run.comm);
    run.threads = args.threads ? args.threads : trainer_default_threads(coll_local_size(run.comm));
    trainer_set_threads(run.threads);
    {
        char why[256];
        TRY_GOTO(st, train_device_choose(args.device, coll_local_rank(run.comm),
                                         coll_local_size(run.comm), &run.dev.device, why,
                                         sizeof why), free_comm);
        LOG_INFO("%s", why);
    }

    st = eval_set_agree(run.comm, run_resume_choose(&run), &speak);
    if (st == RT_OK && run.world > 1)
        st = coll_broadcast(run.comm, run.resume_path, sizeof run.resume_path, RT_DTYPE_U8, 0);
    if (st == RT_OK)
        st = eval_set_agree(run.comm, run_setup(&run), &speak);
    if (st == RT_OK) {
        st = run_train(&run);
        /* a non-finite step and diverged replicas are seen by every rank alike
         * (they come from all-reduced values); rank 0 reports them */
        speak = run.rank == 0;
        if (st != RT_OK && !run.consistent) {
            /* a failure the other ranks may not share (I/O, a collective):
             * end the whole job so that no peer stays blocked */
            const char *msg = rt_last_error();
            if (!strncmp(msg, "rank ", 5))  /* the collectives name the rank already */
                fprintf(stderr, "ringtrain train: %s\n", msg);
            else
                fprintf(stderr, "ringtrain train: rank %d: %s\n", run.rank, msg);
            fflush(stderr);
            train_device_abort(&run.dev);
            coll_abort(run.comm, rt_exit_code(st));
        }
    }
    run_free(&run);
free_comm:
    coll_comm_free(run.comm);
finalize:
    coll_finalize();
report:
    if (st == RT_OK && run.stop_signal)
        return 128 + run.stop_signal;  /* stopped by SIGTERM/SIGINT, checkpoint written */
    if (!speak)
        return rt_exit_code(st);
    return cmd_report("train", st);
}
