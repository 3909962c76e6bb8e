/* bench_train_step.c - times one training step (forward, backward,
 * optimizer) of the MLP on the CPU, single process, with random inputs, the
 * way ../shared/bench/torch_peer.py times PyTorch: median of --iters steps
 * after 2 warm-up steps. Prints one JSON object like the peer's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/timer.h"
#include "trainer/cpu_env.h"
#include "trainer/init.h"
#include "trainer/mlp.h"
#include "trainer/optim.h"
#include "trainer/threads.h"
#include "trainer/train_step.h"

typedef struct { const float *x; const int32_t *y; int B; } bench_batch_t;

static rt_status bench_next(void *ctx, int k, const float **x, const int32_t **y, int *B)
{
    bench_batch_t *b = ctx;
    *x = b->x, *y = b->y, *B = b->B;
    return RT_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double d = *(const double *)a - *(const double *)b;
    return (d > 0) - (d < 0);
}

int main(int argc, char **argv)
{
    cpu_env_reexec_if_needed();
    const char *spec_text = "mlp:784,1024,1024,10", *opt_name = "adamw";
    int batch = 512, threads = 0, iters = 10;
    arg_spec specs[] = {
        {"model", ARG_STRING, &spec_text, "SPEC", "model spec", false, false},
        {"batch", ARG_INT, &batch, "N", "rows per step (512)", false, false},
        {"threads", ARG_INT, &threads, "N", "CPU threads (0: all cores)", false, false},
        {"optimizer", ARG_STRING, &opt_name, "sgd|adamw", "optimizer (adamw)", false, false},
        {"iters", ARG_INT, &iters, "N", "timed steps (10)", false, false},
    };
    arg_command cmd = {.prog = "bench_train_step", .summary = "time one MLP training step on the CPU"};
    rt_status st = args_parse(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc - 1, argv + 1);
    mlp_spec_t spec;
    optim_kind kind;
    if (st == RT_OK)
        st = mlp_spec_parse(spec_text, &spec);
    if (st == RT_OK)
        st = optim_kind_parse(opt_name, &kind);
    if (st == RT_OK && (batch < 1 || iters < 1))
        st = rt_fail(RT_ERR_USAGE, "--batch and --iters must be positive");
    if (st != RT_OK) {
        if (st != RT_HELP)
            fprintf(stderr, "bench_train_step: %s\n", rt_last_error());
        return rt_exit_code(st);
    }
    if (threads <= 0)
        threads = trainer_cores();
    trainer_set_threads(threads);

    mlp_t m;
    optimizer_t opt;
    optim_config_t oc = optim_config_default(kind);
    if (kind == OPTIM_SGD)
        oc.momentum = 0.9f;
    if (mlp_create(&m, &spec, batch) != RT_OK || optimizer_create(&opt, &oc, m.params.total) != RT_OK) {
        fprintf(stderr, "bench_train_step: %s\n", rt_last_error());
        return 1;
    }
    mlp_init_params(&m, 0);
    int in = spec.sizes[0], V = spec.sizes[spec.nlayers];
    float *x = malloc(sizeof(float) * (size_t)batch * in);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)batch);
    rt_rng_t rng;
    rt_rng_seed(&rng, 1);
    for (size_t i = 0; i < (size_t)batch * in; i++)
        x[i] = rt_rng_uniform(&rng);
    for (int i = 0; i < batch; i++)
        y[i] = (int32_t)(rt_rng_next(&rng) % (uint64_t)V);
    train_step_t t;
    train_step_init(&t, &m, &opt);
    t.sched.base_lr = kind == OPTIM_ADAMW ? 1e-3 : 1e-2;
    bench_batch_t b = {x, y, batch};
    double *times = malloc(sizeof(double) * (size_t)iters);
    step_result_t r;
    for (int i = 0; i < 2 + iters; i++) {
        double t0 = rt_now();
        if (train_step_run(&t, bench_next, &b, &r) != RT_OK) {
            fprintf(stderr, "bench_train_step: %s\n", rt_last_error());
            return 1;
        }
        if (i >= 2)
            times[i - 2] = rt_now() - t0;
    }
    qsort(times, (size_t)iters, sizeof(double), cmp_double);
    double sec = times[iters / 2];
    char spec_buf[256];
    mlp_spec_format(&spec, spec_buf, sizeof spec_buf);
    printf("{\"peer\": \"ringtrain\", \"model\": \"%s\", \"device\": \"cpu\", \"threads\": %d, "
           "\"batch\": %d, \"params\": %lld, \"optimizer\": \"%s\", \"step_ms\": %.3f, "
           "\"samples_per_s\": %.1f, \"blas_core\": \"%s\"}\n",
           spec_buf, threads, batch, (long long)param_set_numel(&m.params), opt_name, sec * 1e3,
           batch / sec, cpu_env_blas_core());
    free(times);
    free(x);
    free(y);
    optimizer_free(&opt);
    mlp_free(&m);
    return 0;
}
