/* bench_gpu_train.c - benchmark, not a test: samples/s of the GPU training
 * step of an MLP (replica_step of trainer/run/replica.h on the CUDA device,
 * the call the session makes for each step), for bench/gpu_train_vs_torch.sh
 * to set against PyTorch on the same GPU.
 *
 *   bench_gpu_train [--sizes 784,1024,1024,10] [--batch 512] [--optimizer adamw|sgd]
 *                   [--iters 200] [--eager] [--tf32]
 *
 * Two figures, each the median over repeats after a warm-up (which also
 * captures the graphs):
 *   pipelined: blocks of `iters` steps with a result read only at the end of
 *     the block (how `ringtrain train` runs between log steps), block time /
 *     iters, host clock after the device is idle at both ends;
 *   synced: every step reads its result (waits for the device), per step.
 * Every step copies its batch from a pinned host buffer to the device (the
 * training loop's path; PyTorch's peer keeps its batch on the device).
 * Prints one JSON object on the last line. */
/* POSIX: clock_gettime (common/timer.h) */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "common/timer.h"
#include "trainer/model/model.h"
#include "trainer/ops/device.h"
#include "trainer/run/replica.h"

#define TST(call) \
    do { rt_status s_ = (call); if (s_ != RT_OK) { \
         fprintf(stderr, "FATAL %s:%d %s: %s\n", __FILE__, __LINE__, #call, \
                 rt_last_error()); exit(1); } } while (0)

typedef struct {
    const float *x;
    const int32_t *y;
    int B, in;
} fixed_batch_t;

static rt_status batch_fixed(void *ctx, int k, rt_batch_t *b)
{
    (void)k;
    fixed_batch_t *f = ctx;
    b->rows = f->B;
    b->inputs = tensor_2d((void *)f->x, RT_DTYPE_F32, f->B, f->in);
    b->targets = tensor_1d((void *)f->y, RT_DTYPE_I32, f->B);
    return RT_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *sizes = "784,1024,1024,10", *optname = "adamw";
    int batch = 512, iters = 200;
    bool eager = false, tf32 = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--sizes") && i + 1 < argc) sizes = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--optimizer") && i + 1 < argc) optname = argv[++i];
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--eager")) eager = true;
        else if (!strcmp(argv[i], "--tf32")) tf32 = true;
        else { fprintf(stderr, "usage: %s [--sizes S] [--batch B] [--optimizer adamw|sgd] "
                               "[--iters N] [--eager] [--tf32]\n", argv[0]); return 2; }
    }
    int devices = 0;
    if (device_count(RT_DEVICE_CUDA, &devices) != RT_OK || devices == 0) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    if (batch < 1 || iters < 1) { fprintf(stderr, "bad --batch or --iters\n"); return 2; }
    char spec_text[256];
    snprintf(spec_text, sizeof spec_text, "mlp:%s", sizes);
    model_spec_t spec;
    optim_kind kind;
    TST(model_spec_parse(spec_text, &spec));
    TST(optim_kind_parse(optname, &kind));
    model_io_t io;
    spec.kind->describe(spec.cfg, &io);
    optim_config_t oc = optim_config_default(kind);
    if (kind == OPTIM_SGD)
        oc.momentum = 0.9f;
    rt_device_t *dev = NULL;
    device_config_t dc = {.kind = RT_DEVICE_CUDA, .ordinal = 0, .tf32 = tf32};
    TST(device_open(&dev, &dc));
    replica_config_t rc = {
        .spec = &spec, .dev = dev, .max_batch = batch, .optim = oc,
        .sched = {.kind = SCHED_CONSTANT, .base_lr = kind == OPTIM_SGD ? 1e-2 : 1e-3},
        .accum = 1, .eager = eager, .compute_dtype = RT_DTYPE_F32};
    replica_t *g = NULL;
    TST(replica_create(&g, &rc));
    replica_init_params(g, 1);
    TST(replica_upload(g, 0, 0));

    const int in = (int)io.features, classes = io.classes;
    float *x = device_pinned_alloc(sizeof(float) * (size_t)batch * in, NULL);
    int32_t *y = device_pinned_alloc(sizeof(int32_t) * (size_t)batch, NULL);
    if (!x || !y) { fprintf(stderr, "FATAL cudaHostAlloc failed\n"); return 1; }
    uint64_t r = 12345;
    for (size_t i = 0; i < (size_t)batch * in; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((r >> 40) * (1.0 / 16777216.0));
    }
    for (int i = 0; i < batch; i++)
        y[i] = (int32_t)(i * 7 % classes);
    fixed_batch_t fb = {x, y, batch, in};

    step_result_t res;
    for (int i = 0; i < 30; i++)  /* warm-up: cuBLAS heuristics, graph capture */
        TST(replica_step(g, batch_fixed, &fb, i == 29, &res));

    enum { REPEATS = 7 };
    double blocks[REPEATS];
    for (int rep = 0; rep < REPEATS; rep++) {
        double t0 = rt_now();
        for (int i = 0; i < iters; i++)
            TST(replica_step(g, batch_fixed, &fb, i == iters - 1, &res));
        blocks[rep] = (rt_now() - t0) / iters;
    }
    qsort(blocks, REPEATS, sizeof blocks[0], cmp_double);
    double piped = blocks[REPEATS / 2];
    double last_loss = res.loss;

    int nsync = iters < 400 ? iters : 400;
    double *per = malloc(sizeof(double) * (size_t)nsync);
    if (!per) { fprintf(stderr, "FATAL out of memory\n"); return 1; }
    for (int i = 0; i < nsync; i++) {
        double t0 = rt_now();
        TST(replica_step(g, batch_fixed, &fb, true, &res));
        per[i] = rt_now() - t0;
    }
    qsort(per, (size_t)nsync, sizeof per[0], cmp_double);
    double synced = per[nsync / 2];
    /* 6 flops per weight and row: forward, and the two products of backward */
    double flops = 0;
    const param_registry_t *reg = replica_registry(g);
    for (int i = 0; i < reg->count; i++)
        if (reg->entries[i].ndim == 2)
            flops += 6.0 * batch * (double)reg->entries[i].numel;
    const char *mode = replica_mode(g);
    printf("ours mlp:%s batch %d %s %s%s: pipelined %.4f ms/step = %.0f samples/s (%.1f TFLOP/s); "
           "synced %.4f ms/step = %.0f samples/s; loss %.4f\n",
           sizes, batch, optname, mode, tf32 ? " tf32" : " fp32", piped * 1e3, batch / piped,
           flops / piped * 1e-12, synced * 1e3, batch / synced, last_loss);
    printf("{\"peer\":\"ringtrain\",\"model\":\"mlp:%s\",\"batch\":%d,\"optimizer\":\"%s\","
           "\"mode\":\"%s\",\"tf32\":%s,\"step_ms\":%.5f,\"samples_per_s\":%.1f,"
           "\"synced_step_ms\":%.5f,\"synced_samples_per_s\":%.1f}\n",
           sizes, batch, optname, mode, tf32 ? "true" : "false", piped * 1e3, batch / piped,
           synced * 1e3, batch / synced);
    free(per);
    replica_destroy(g);
    device_close(dev);
    device_pinned_free(x, NULL);
    device_pinned_free(y, NULL);
    model_spec_free(&spec);
    return 0;
}
