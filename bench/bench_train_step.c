/* bench_train_step.c - times training steps on the CPU, single process,
 * through the same library call that `ringtrain train` makes
 * (trainer/run/session.h): a session over a dataset of random inputs
 * written to a temporary file, its steps timed by the session's after-step
 * hook, the way bench/torch_peer.py times PyTorch: the median of --iters
 * steps after 2 warm-up steps. Prints one JSON object like the peer's (on a
 * line of its own, after the session's log lines). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/args.h"
#include "common/check.h"
#include "data/dataset_write.h"
#include "trainer/model/init.h"
#include "trainer/model/model.h"
#include "trainer/ops/cpu_env.h"
#include "trainer/ops/cpu_threads.h"
#include "trainer/run/session.h"

typedef struct {
    double *times;
    int n, warmup;
    int64_t params;
} timing_t;

static void time_step(void *ctx, const session_step_report_t *r)
{
    timing_t *t = ctx;
    int i = (int)r->step - 1 - t->warmup;
    if (i >= 0 && i < t->n)
        t->times[i] = r->step_seconds;
}

static rt_status count_params(void *ctx, const param_registry_t *reg, const float *params)
{
    ((timing_t *)ctx)->params = param_numel(reg);
    return RT_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double d = *(const double *)a - *(const double *)b;
    return (d > 0) - (d < 0);
}

/* rows x in random floats in [0, 1) and labels in [0, classes). */
static rt_status write_random_dataset(const char *path, int64_t rows, int64_t in, int classes)
{
    float *x = malloc(sizeof(float) * (size_t)(rows * in));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)rows);
    if (!x || !y) {
        free(x);
        free(y);
        return rt_fail(RT_ERR_NOMEM, "cannot allocate a dataset of %lld rows", (long long)rows);
    }
    rt_rng_t rng;
    rt_rng_seed(&rng, 1);
    for (int64_t i = 0; i < rows * in; i++)
        x[i] = rt_rng_uniform(&rng);
    for (int64_t i = 0; i < rows; i++)
        y[i] = (int32_t)(rt_rng_next(&rng) % (uint64_t)classes);
    rt_status st = dataset_write_f32_classification(path, x, y, rows, in, classes);
    free(x);
    free(y);
    return st;
}

int main(int argc, char **argv)
{
    cpu_env_reexec_if_needed();
    const char *spec_text = NULL, *opt_name = "adamw";
    int batch = 512, threads = 0, iters = 10;
    arg_spec specs[] = {
        {"model", ARG_STRING, &spec_text, "SPEC", "model spec", true, false},
        {"batch", ARG_INT, &batch, "N", "rows per step (512)", false, false},
        {"threads", ARG_INT, &threads, "N", "CPU threads (0: all cores)", false, false},
        {"optimizer", ARG_STRING, &opt_name, "sgd|adamw", "optimizer (adamw)", false, false},
        {"iters", ARG_INT, &iters, "N", "timed steps (10)", false, false},
    };
    arg_command cmd = {.prog = "bench_train_step", .summary = "time training steps on the CPU"};
    rt_status st = args_parse(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc - 1, argv + 1);
    model_spec_t spec;
    memset(&spec, 0, sizeof spec);
    if (st == RT_OK)
        st = model_spec_parse(spec_text, &spec);
    if (st == RT_OK && (batch < 1 || iters < 1))
        st = rt_fail(RT_ERR_USAGE, "--batch and --iters must be positive");
    if (st != RT_OK) {
        if (st != RT_HELP)
            fprintf(stderr, "bench_train_step: %s\n", rt_last_error());
        return rt_exit_code(st);
    }
    if (threads <= 0)
        threads = cpu_cores();
    model_io_t io;
    spec.kind->describe(spec.cfg, &io);

    const int warmup = 2;
    char dir[] = "/tmp/bench_train_step.XXXXXX", path[64];
    if (!mkdtemp(dir)) {
        perror("bench_train_step: mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/data.h5", dir);
    timing_t t = {.times = calloc((size_t)iters, sizeof(double)), .n = iters, .warmup = warmup};
    st = write_random_dataset(path, (int64_t)batch * (warmup + iters), io.features, io.classes);
    train_config_t cfg;
    train_config_default(&cfg);
    cfg.model = spec_text;
    cfg.data = path;
    cfg.batch = batch;
    cfg.steps = warmup + iters;
    cfg.optimizer = opt_name;
    cfg.lr = strcmp(opt_name, "adamw") ? 1e-2 : 1e-3;
    cfg.momentum = 0.9;
    cfg.device = "cpu";
    cfg.threads = threads;
    cfg.log_every = 1000000;
    cfg.resume = "never";
    session_hooks_t hooks = {.after_step = time_step, .on_end = count_params, .ctx = &t};
    session_outcome_t out;
    if (st == RT_OK)
        st = session_run(&cfg, NULL, &hooks, &out);
    unlink(path);
    rmdir(dir);
    if (st != RT_OK) {
        fprintf(stderr, "bench_train_step: %s\n", rt_last_error());
        return rt_exit_code(st);
    }
    qsort(t.times, (size_t)iters, sizeof(double), cmp_double);
    double sec = t.times[iters / 2];
    printf("{\"peer\": \"ringtrain\", \"model\": \"%s\", \"device\": \"cpu\", \"threads\": %d, "
           "\"batch\": %d, \"params\": %lld, \"optimizer\": \"%s\", \"step_ms\": %.3f, "
           "\"samples_per_s\": %.1f, \"blas_core\": \"%s\"}\n",
           spec.text, threads, batch, (long long)t.params, opt_name, sec * 1e3, batch / sec,
           cpu_env_blas_core());
    free(t.times);
    model_spec_free(&spec);
    return 0;
}
