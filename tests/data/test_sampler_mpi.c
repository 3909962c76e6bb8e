/* test_sampler_mpi.c - real ranks (run with np=4): per global step, the
 * records all ranks read together (gathered with MPI_Allgather) equal what
 * one rank reads with a 4x larger batch; the padded epoch covers every
 * record; and the loader on each rank delivers the same global steps as a
 * single loader with the global batch, and evaluation covers each record
 * exactly once across ranks. */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/dataset.h"
#include "data/dataset_write.h"
#include "data/loader.h"
#include "data/sampler.h"
#include "test_util.h"

#define N 997
#define B 8

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void test_sampler(int rank, int world)
{
    sampler_config_t mine = {.n = N, .rank = rank, .world = world, .batch = B, .shuffle = true,
                             .remainder = SAMPLER_PAD};
    sampler_config_t one = {.n = N, .rank = 0, .world = 1, .batch = (int64_t)B * world,
                            .shuffle = true, .remainder = SAMPLER_PAD};
    int64_t *order = malloc(N * sizeof *order);
    int64_t *all = malloc((size_t)B * world * sizeof *all), *ref = malloc((size_t)B * world * sizeof *ref);
    int *hits = calloc(N, sizeof *hits);
    int64_t idx[B];
    sampler_epoch_order(&mine, 9, 4, order);
    int64_t steps = sampler_steps_per_epoch(&mine);
    int same = 1;
    for (int64_t s = 0; s < steps; s++) {
        sampler_batch_indices(&mine, order, s, idx);
        MPI_Allgather(idx, B, MPI_INT64_T, all, B, MPI_INT64_T, MPI_COMM_WORLD);
        for (int i = 0; i < B * world; i++)
            hits[all[i]]++;
        if (s < sampler_steps_per_epoch(&one)) {
            sampler_batch_indices(&one, order, s, ref);
            qsort(all, (size_t)B * world, sizeof *all, cmp_i64);
            qsort(ref, (size_t)B * world, sizeof *ref, cmp_i64);
            same &= !memcmp(all, ref, (size_t)B * world * sizeof *all);
        }
    }
    EXPECT(same, "rank %d: every global step equals np=1 with batch %d", rank, B * world);
    int64_t read = steps * B * world, dups = 0, missing = 0;
    for (int i = 0; i < N; i++) {
        missing += hits[i] == 0;
        dups += hits[i] > 1 ? hits[i] - 1 : 0;
    }
    EXPECT(read - dups + missing == N, "reads %lld, duplicates %lld, missing %lld", (long long)read,
           (long long)dups, (long long)missing);
    free(order);
    free(all);
    free(ref);
    free(hits);
}

/* Each record's inputs are float32 (i, i + 1): the value names the record. */
static void test_loader(int rank, int world, const char *path)
{
    const int64_t n = 203;
    if (rank == 0) {
        float *in = malloc(n * 2 * sizeof *in);
        int32_t *lab = malloc(n * sizeof *lab);
        for (int64_t i = 0; i < n; i++) {
            in[2 * i] = (float)i;
            in[2 * i + 1] = (float)i + 1;
            lab[i] = (int32_t)(i % 3);
        }
        dataset_writer_t *w;
        rt_status st = dataset_writer_create(path, &w);
        if (st == RT_OK) st = dataset_writer_classification(w, n, 1, (int64_t[]){2}, RT_DTYPE_F32,
                                                            RT_DTYPE_I32, 3);
        if (st == RT_OK) st = dataset_writer_put(w, "inputs", 0, n, in);
        if (st == RT_OK) st = dataset_writer_put(w, "labels", 0, n, lab);
        if (st == RT_OK) st = dataset_writer_commit(w);
        EXPECT(st == RT_OK, "write: %s", rt_last_error());
        free(in);
        free(lab);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    dataset_t *d;
    if (dataset_open(path, &d) != RT_OK) {
        EXPECT(0, "open: %s", rt_last_error());
        return;
    }
    loader_config_t cfg;
    loader_config_default(&cfg);
    cfg.batch = 4;
    cfg.rank = rank;
    cfg.world = world;
    cfg.start.seed = 5;
    loader_config_t gcfg = cfg;
    gcfg.batch = 4 * world;
    gcfg.rank = 0;
    gcfg.world = 1;
    loader_t *l, *g;
    float in[8], *all = malloc((size_t)8 * world * sizeof *all), *ref = malloc((size_t)8 * world * sizeof *ref);
    int32_t lab[4], *glab = malloc((size_t)4 * world * sizeof *glab);
    int same = 1;
    /* Two epochs, each from its start: the step counts may differ by one when
     * padding completes one more batch on W ranks (203 records: 17 steps on
     * 3 ranks, 16 on one), so the common steps are compared. */
    for (int64_t e = 0; e < 2; e++) {
        cfg.start.epoch = gcfg.start.epoch = e;
        EXPECT(loader_open(&l, d, &cfg) == RT_OK && loader_open(&g, d, &gcfg) == RT_OK,
               "open loaders");
        int64_t common = loader_steps_per_epoch(l) < loader_steps_per_epoch(g)
                             ? loader_steps_per_epoch(l) : loader_steps_per_epoch(g);
        for (int64_t s = 0; s < common; s++) {
            int c1, c2;
            loader_next(l, in, lab, &c1);
            loader_next(g, ref, glab, &c2);
            MPI_Allgather(in, 8, MPI_FLOAT, all, 8, MPI_FLOAT, MPI_COMM_WORLD);
            int64_t a[64], r[64];
            for (int i = 0; i < 4 * world; i++) {
                a[i] = (int64_t)all[2 * i];
                r[i] = (int64_t)ref[2 * i];
                same &= all[2 * i + 1] == all[2 * i] + 1;
            }
            qsort(a, (size_t)4 * world, sizeof *a, cmp_i64);
            qsort(r, (size_t)4 * world, sizeof *r, cmp_i64);
            same &= !memcmp(a, r, (size_t)4 * world * sizeof *a);
        }
        loader_close(l);
        loader_close(g);
    }
    EXPECT(same, "rank %d: loader global steps equal one loader with the global batch", rank);
    cfg.start.epoch = 0;

    /* evaluation: every record exactly once across ranks */
    cfg.shuffle = false;
    cfg.remainder = SAMPLER_PARTIAL;
    cfg.one_epoch = true;
    cfg.batch = 16;
    EXPECT(loader_open(&l, d, &cfg) == RT_OK, "eval open");
    int *hits = calloc(n, sizeof *hits);
    float ein[32];
    int32_t elab[16];
    int64_t steps = 0;
    while (!loader_done(l)) {
        int c;
        if (loader_next(l, ein, elab, &c) != RT_OK)
            break;
        steps++;
        for (int j = 0; j < c; j++)
            hits[(int64_t)ein[2 * j]]++;
    }
    MPI_Allreduce(MPI_IN_PLACE, hits, (int)n, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int once = 1;
    for (int64_t i = 0; i < n; i++)
        once &= hits[i] == 1;
    EXPECT(once, "evaluation reads every record once across ranks");
    int64_t max_steps = steps, min_steps = steps;
    MPI_Allreduce(MPI_IN_PLACE, &max_steps, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &min_steps, 1, MPI_INT64_T, MPI_MIN, MPI_COMM_WORLD);
    EXPECT(max_steps == min_steps, "equal eval steps on every rank");
    loader_close(l);
    free(hits);
    free(all);
    free(ref);
    free(glab);
    dataset_close(d);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0)
        unlink(path);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    char path[512];
    const char *base = getenv("RT_BINARY_DIR");
    long pid = (long)getpid();
    MPI_Bcast(&pid, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    snprintf(path, sizeof path, "%s/test_sampler_mpi.%ld.h5", base ? base : "/tmp", pid);
    test_sampler(rank, world);
    test_loader(rank, world, path);
    int failed = test_failed_count;
    MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int rc = TEST_EXIT();
    MPI_Finalize();
    return failed ? 1 : rc;
}
