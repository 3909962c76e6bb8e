/* bench_loader.c - loader throughput: batches per second delivered by the
 * prefetching loader (shuffled, uint8 -> float32), next to the rate of the
 * same gathers done synchronously on the calling thread.
 *
 *   bench_loader --data fmnist-train.h5 [--batch 512] [--seconds 3] [--prefetch 4]
 *                [--workers 1] [--zero-copy] [--world 1] [--json]
 */
/* POSIX: clock_gettime in common/timer.h */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "common/args.h"
#include "common/timer.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/sampler.h"

static int fail(rt_status st)
{
    fprintf(stderr, "bench_loader: %s\n", rt_last_error());
    return rt_exit_code(st);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int batch = 512, prefetch = 4, world = 1, workers = 1;
    double seconds = 3.0;
    bool json = false, zero_copy = false;
    arg_spec specs[] = {
        {"data", ARG_STRING, &path, "F.h5", "classification dataset", true, false},
        {"batch", ARG_INT, &batch, "N", "rows per batch (default 512)", false, false},
        {"prefetch", ARG_INT, &prefetch, "N", "batches prepared ahead (default 4)", false, false},
        {"world", ARG_INT, &world, "N", "simulated ranks; rank 0 is measured (default 1)", false,
         false},
        {"seconds", ARG_DOUBLE, &seconds, "S", "time per measurement (default 3)", false, false},
        {"workers", ARG_INT, &workers, "N", "loader threads (default 1)", false, false},
        {"zero-copy", ARG_FLAG, &zero_copy, NULL,
         "take batches with loader_acquire instead of copying them out", false, false},
        {"json", ARG_FLAG, &json, NULL, "print one JSON object", false, false},
    };
    arg_command cmd = {.prog = "bench_loader", .summary = "Loader throughput in batches per second."};
    rt_status st = args_parse(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc - 1, argv + 1);
    if (st != RT_OK)
        return st == RT_HELP ? 0 : fail(st);

    dataset_t *d = NULL;
    if ((st = dataset_open(path, &d)) != RT_OK)
        return fail(st);
    if ((st = dataset_expect_kind(d, DATASET_CLASSIFICATION)) != RT_OK)
        return fail(st);
    int64_t features = dataset_info(d)->features;
    float *inputs = malloc((size_t)batch * (size_t)features * sizeof(float));
    int32_t *labels = malloc((size_t)batch * sizeof(int32_t));
    int64_t *order = malloc((size_t)dataset_info(d)->count * sizeof(int64_t));
    int64_t *idx = malloc((size_t)batch * sizeof(int64_t));
    if (!inputs || !labels || !order || !idx) {
        fprintf(stderr, "bench_loader: out of memory\n");
        return 1;
    }

    /* synchronous: the same work on this thread, no overlap */
    sampler_config_t sc = {.n = dataset_info(d)->count, .rank = 0, .world = world,
                           .batch = batch, .shuffle = true, .remainder = SAMPLER_PAD};
    if ((st = sampler_check(&sc)) != RT_OK)
        return fail(st);
    int64_t steps = sampler_steps_per_epoch(&sc);
    sampler_epoch_order(&sc, 1, 0, order);
    int64_t sync_batches = 0;
    double t0 = rt_now(), t1 = t0;
    while (t1 - t0 < seconds) {
        sampler_batch_indices(&sc, order, sync_batches % steps, idx);
        if ((st = dataset_gather(d, idx, batch, inputs, labels)) != RT_OK)
            return fail(st);
        sync_batches++;
        t1 = rt_now();
    }
    double sync_rate = (double)sync_batches / (t1 - t0);

    /* the loader, consumed as fast as possible (copying out, as loader_next does) */
    loader_config_t cfg;
    loader_config_default(&cfg);
    cfg.batch = batch;
    cfg.world = world;
    cfg.prefetch = prefetch;
    cfg.workers = workers;
    cfg.start.seed = 1;
    loader_t *l = NULL;
    if ((st = loader_open(&l, d, &cfg)) != RT_OK)
        return fail(st);
    int count = 0;
    int64_t n = 0;
    t0 = rt_now();
    t1 = t0;
    while (t1 - t0 < seconds) {
        if (zero_copy) {
            loader_batch_t b;
            if ((st = loader_acquire(l, &b)) != RT_OK)
                return fail(st);
            count = b.rows;
            loader_release(l);
        } else if ((st = loader_next(l, inputs, labels, &count)) != RT_OK) {
            return fail(st);
        }
        n++;
        t1 = rt_now();
    }
    double rate = (double)n / (t1 - t0);
    sampler_state_t end = loader_state(l);
    loader_close(l);

    double mb = (double)batch * (double)features * 4.0 / 1e6;
    if (json)
        printf("{\"batch\":%d,\"prefetch\":%d,\"workers\":%d,\"zero_copy\":%s,"
               "\"world\":%d,\"features\":%lld,"
               "\"loader_batches_per_s\":%.1f,\"sync_batches_per_s\":%.1f,"
               "\"loader_samples_per_s\":%.0f,\"epochs\":%lld}\n",
               batch, prefetch, workers, zero_copy ? "true" : "false", world,
               (long long)features, rate, sync_rate,
               rate * batch, (long long)end.epoch);
    else
        printf("loader: %.1f batches/s (%.0f samples/s, %.0f MB/s float32) batch %d prefetch %d "
               "workers %d%s world %d; synchronous gather: %.1f batches/s; epochs crossed: %lld\n",
               rate, rate * batch, rate * mb, batch, prefetch, workers,
               zero_copy ? " zero-copy" : "", world, sync_rate,
               (long long)end.epoch);
    free(inputs);
    free(labels);
    free(order);
    free(idx);
    dataset_close(d);
    return 0;
}
