/* cmd_train.c - `ringtrain train`: flags into a training config, then one
 * library call (trainer/run/session.h) on every rank. What stays here is
 * the process's business: flags checked before MPI starts, the SIGTERM /
 * SIGINT handlers (the session is asked to stop between steps), the
 * launcher's fault-test hooks, and ending the whole job when a rank fails
 * alone. Flags and metrics: docs/TRAINING.md. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "collectives/coll.h"
#include "common/args.h"
#include "common/check.h"
#include "common/hdf5_util.h"
#include "launch/commands.h"
#include "launch/train_flags.h"
#include "trainer/model/model.h"
#include "trainer/ops/cpu_env.h"
#include "trainer/run/device_choice.h"
#include "trainer/run/session.h"

/* ---- flags ---------------------------------------------------------------- */

rt_status train_flags_parse(train_config_t *c, int argc, char **argv)
{
    train_config_default(c);
    c->epochs = 0;  /* 0: not given (then 1 unless --steps) */
    char model_help[256];
    snprintf(model_help, sizeof model_help, "model: %s", model_kinds_syntax());
    bool no_shuffle = false;
    arg_spec specs[] = {
        {"model", ARG_STRING, &c->model, "SPEC", model_help, true, false},
        {"data", ARG_STRING, &c->data, "F.h5", "training set: classification records, or tokens for a token model", true, false},
        {"eval", ARG_STRING, &c->eval, "F.h5", "test set, evaluated once across ranks", false, false},
        {"batch", ARG_INT, &c->batch, "N",
         "rows per rank per micro-batch (required unless resuming: then the checkpoint's global batch / ranks)",
         false, false},
        {"epochs", ARG_INT, &c->epochs, "N", "epochs to train (default 1)", false, false},
        {"steps", ARG_INT, &c->steps, "N", "steps to train (instead of --epochs)", false, false},
        {"accum", ARG_INT, &c->accum, "N", "micro-batches accumulated per step (1)", false, false},
        {"optimizer", ARG_STRING, &c->optimizer, "sgd|adamw", "optimizer (adamw)", false, false},
        {"lr", ARG_DOUBLE, &c->lr, "X", "peak learning rate (1e-3)", false, false},
        {"momentum", ARG_DOUBLE, &c->momentum, "X", "SGD momentum (0.9)", false, false},
        {"weight-decay", ARG_DOUBLE, &c->weight_decay, "X",
         "weight decay (adamw 0.01 decoupled, sgd 0 L2)", false, false},
        {"warmup", ARG_INT, &c->warmup, "N", "linear warmup steps (0)", false, false},
        {"schedule", ARG_STRING, &c->schedule, "constant|cosine", "after warmup (constant)", false, false},
        {"grad-clip", ARG_DOUBLE, &c->grad_clip, "X", "clip the global gradient norm (0: off)", false, false},
        {"seed", ARG_INT, &c->seed, "N", "parameter init and sample order (0)", false, false},
        {"device", ARG_STRING, &c->device, "auto|cpu|cuda", "where to train (auto: this rank's node-local GPU if any, else cpu)", false, false},
        {"threads", ARG_INT, &c->threads, "N", "CPU threads per rank (0: cores / ranks on the node)", false, false},
        {"log-every", ARG_INT, &c->log_every, "N", "log every N steps (50)", false, false},
        {"eval-every", ARG_INT, &c->eval_every, "N", "evaluate every N steps (0: each epoch and at the end)", false, false},
        {"metrics", ARG_STRING, &c->metrics, "F.jsonl", "JSON-lines metrics (rank 0)", false, false},
        {"export-params", ARG_STRING, &c->export_params, "F.h5", "write the final parameters (HDF5, state_dict names)", false, false},
        {"init-params", ARG_STRING, &c->init_params, "F.h5",
         "a fresh run starts from these parameters (ringtrain import, --export-params, a checkpoint)", false, false},
        {"bucket-mb", ARG_DOUBLE, &c->bucket_mb, "X", "gradient sync bucket size in MiB (4)", false, false},
        {"overlap", ARG_STRING, &c->overlap, "thread|layers|off",
         "CPU: progress the gradient sync during backward on a thread (default), between layers, or not", false, false},
        {"zero", ARG_INT, &c->zero, "0|1",
         "1: ZeRO-1, each rank holds and updates the optimizer state of its shard only (0)", false, false},
        {"trace", ARG_STRING, &c->trace, "F.json",
         "Chrome-trace timeline per rank (F.rank<R>.json with several ranks; chrome://tracing, Perfetto)", false, false},
        {"tensorboard", ARG_STRING, &c->tensorboard, "DIR",
         "TensorBoard event file in DIR, a new one per run (rank 0; the metrics' scalars at each log step)", false, false},
        {"skip-nonfinite", ARG_FLAG, &c->skip_nonfinite, NULL, "skip steps with a non-finite loss or gradient instead of stopping", false, false},
        {"no-shuffle", ARG_FLAG, &no_shuffle, NULL, "take the records in file order (debugging, tests)", false, false},
        {"tf32", ARG_FLAG, &c->tf32, NULL, "GPU: allow TF32 tensor cores in matrix products (default full fp32)", false, false},
        {"eager", ARG_FLAG, &c->eager, NULL, "GPU: launch kernel by kernel instead of replaying a CUDA graph (debugging)", false, false},
        {"ckpt-dir", ARG_STRING, &c->ckpt_dir, "D",
         "checkpoint directory (rank 0 locks it and writes ckpt-<step>.h5; a final one at the end)", false, false},
        {"ckpt-every", ARG_INT, &c->ckpt_every, "N", "also checkpoint every N steps (0: only at the end)", false, false},
        {"keep", ARG_INT, &c->keep, "N", "keep the N newest checkpoints (0: all; default 3)", false, false},
        {"ckpt-write", ARG_STRING, &c->ckpt_write, "sync|async",
         "async (default): the step loop copies the state and goes on while a thread writes it; "
         "sync: the loop waits for the write", false, false},
        {"resume", ARG_STRING, &c->resume, "auto|never|PATH",
         "auto: newest good checkpoint in --ckpt-dir (default); never; or this file", false, false},
    };
    enum { F_BATCH = 3, F_EPOCHS = 4, F_STEPS = 5, F_WD = 10 };
    const int nspecs = (int)(sizeof specs / sizeof specs[0]);
    arg_command cmd = {.prog = "ringtrain train",
                       .summary = "Train a model data-parallel on the CPU or on GPUs (run under mpirun "
                                  "for several ranks); gradients are averaged with our ring all-reduce."};
    TRY(args_parse(&cmd, specs, nspecs, argc, argv));
    c->shuffle = !no_shuffle;
    /* what only the flags can tell: given or not */
    for (int i = nspecs - 4; !c->ckpt_dir && i < nspecs - 1; i++)  /* --ckpt-every, --keep, --ckpt-write */
        if (specs[i].seen)
            return rt_fail(RT_ERR_USAGE, "--%s needs --ckpt-dir", specs[i].name);
    if (specs[F_BATCH].seen && c->batch < 1)
        return rt_fail(RT_ERR_USAGE, "--batch must be at least 1, got %d", c->batch);
    if (specs[F_EPOCHS].seen && specs[F_STEPS].seen)
        return rt_fail(RT_ERR_USAGE, "give --epochs or --steps, not both");
    if (specs[F_EPOCHS].seen && c->epochs < 1)
        return rt_fail(RT_ERR_USAGE, "--epochs must be at least 1, got %d", c->epochs);
    if (specs[F_STEPS].seen && c->steps < 1)
        return rt_fail(RT_ERR_USAGE, "--steps must be at least 1, got %d", c->steps);
    if (!specs[F_EPOCHS].seen)
        c->epochs = 1;
    if (specs[F_WD].seen && c->weight_decay < 0.0)
        return rt_fail(RT_ERR_USAGE, "--weight-decay must not be negative, got %g", c->weight_decay);
    TRY(train_config_check(c));
    return device_choice_check(c->device);
}

/* ---- signals and the launcher's test hooks ----------------------------------- */

/* SIGTERM/SIGINT only set this; the session polls it between steps and the
 * ranks agree on it, so all stop after the same step. */
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

static int stop_requested(void *ctx)
{
    (void)ctx;
    return g_stop_signal;
}

/* RT_TEST_DIE_AT_STEP / RT_TEST_HANG_AT_STEP (and their _RANK, default 1):
 * the launcher's end-to-end tests kill or hang one rank before a given step
 * (0-based) to check restarts and collective timeouts; they fire only in a
 * run that started from step 0 (docs/LAUNCH.md). Unset: never fire.
 * RT_TEST_STEP_SLEEP_MS: every rank sleeps that long before each step, in
 * every run, so that a test's job outlasts a stop sequence it provokes. */
typedef struct {
    long long die_at, hang_at;
    int die_rank, hang_rank;
    long sleep_ms;
} fault_hooks_t;

static void fault_hooks_read(fault_hooks_t *f)
{
    const char *v;
    f->die_at = (v = getenv("RT_TEST_DIE_AT_STEP")) ? strtoll(v, NULL, 10) : -1;
    f->hang_at = (v = getenv("RT_TEST_HANG_AT_STEP")) ? strtoll(v, NULL, 10) : -1;
    f->die_rank = (v = getenv("RT_TEST_DIE_RANK")) ? atoi(v) : 1;
    f->hang_rank = (v = getenv("RT_TEST_HANG_RANK")) ? atoi(v) : 1;
    f->sleep_ms = (v = getenv("RT_TEST_STEP_SLEEP_MS")) ? strtol(v, NULL, 10) : 0;
    if (f->sleep_ms < 0 || f->sleep_ms > 60000)
        f->sleep_ms = 0;
}

static void fault_before_step(void *ctx, int rank, int64_t step, bool resumed)
{
    const fault_hooks_t *f = ctx;
    if (f->sleep_ms > 0) {
        struct timespec nap = {f->sleep_ms / 1000, (f->sleep_ms % 1000) * 1000000L};
        while (nanosleep(&nap, &nap) != 0 && errno == EINTR && !g_stop_signal)
            ;
    }
    if (resumed)
        return;
    if (step == f->die_at && rank == f->die_rank) {
        fprintf(stderr, "RT_TEST_DIE_AT_STEP: rank %d dies after %lld steps\n", rank, (long long)step);
        fflush(stderr);
        kill(getpid(), SIGKILL);
    }
    if (step == f->hang_at && rank == f->hang_rank) {
        fprintf(stderr, "RT_TEST_HANG_AT_STEP: rank %d hangs in step %lld before its all-reduce\n",
                rank, (long long)step + 1);
        fflush(stderr);
        for (;;)
            sleep(1);
    }
}

/* ---- the command ---------------------------------------------------------------- */

int cmd_train(int argc, char **argv)
{
    /* before OpenBLAS threads, OpenMP or MPI start: may re-execute this process */
    cpu_env_reexec_if_needed();
    train_config_t cfg;
    rt_status st = train_flags_parse(&cfg, argc, argv);
    if (st != RT_OK)
        return cmd_report("train", st);
    rt_hdf5_quiet();
    fault_hooks_t faults;
    fault_hooks_read(&faults);
    session_hooks_t hooks = {.before_step = fault_before_step,
                             .stop_requested = stop_requested,
                             .ctx = &faults};
    session_outcome_t out = {.speak = true, .consistent = true};
    coll_comm_t *comm = NULL;
    TRY_GOTO(st, coll_init(&argc, &argv), report);
    TRY_GOTO(st, coll_comm_world(&comm), finalize);
    stop_signals_install();
    st = session_run(&cfg, comm, &hooks, &out);
    if (st != RT_OK && !out.consistent) {
        /* a failure the other ranks may not share (I/O, a collective): end
         * the whole job so that no peer stays blocked */
        const char *msg = rt_last_error();
        if (!strncmp(msg, "rank ", 5))  /* the collectives name the rank already */
            fprintf(stderr, "ringtrain train: %s\n", msg);
        else
            fprintf(stderr, "ringtrain train: rank %d: %s\n", coll_rank(comm), msg);
        fflush(stderr);
        coll_abort(comm, rt_exit_code(st));
    }
    coll_comm_free(comm);
finalize:
    coll_finalize();
report:
    if (st == RT_OK && out.stop_signal)
        return 128 + out.stop_signal;  /* stopped by SIGTERM/SIGINT, checkpoint written */
    if (!out.speak) {
        cmd_exit_if_out_of_memory(st);
        return rt_exit_code(st);
    }
    return cmd_report("train", st);
}
