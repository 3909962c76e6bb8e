/* test_grad_sync.c - the gradient sync of a CPU replica across ranks (run
 * under mpiexec, np 2 and 3): one step with buckets of 50 elements, each
 * rank on its own batch, learning rate 0 so that the averaged gradient stays
 * in the arena, for every overlap mode (thread, layers, off) and for ZeRO-1.
 * Checked against MPI_Allreduce of the gradients the same replica computes
 * without a sync (the oracle), the loss likewise (ZeRO-1: on this rank's
 * shard, whose bounds are checked too); the buckets tile the arena from its
 * end, each once, and with the layers overlap some start during backward,
 * before the first layer's gradient exists (the overlap). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "collectives/coll.h"
#include "test_util.h"
#include "trainer/model/model.h"
#include "trainer/run/grad_sync.h"
#include "trainer/run/replica.h"

enum { B = 4, IN = 8, MAXB = 64 };

typedef struct {
    float x[B * IN];
    int32_t y[B];
} batch_data_t;

static rt_status give_batch(void *ctx, int k, rt_batch_t *b)
{
    batch_data_t *d = ctx;
    b->rows = B;
    b->inputs = tensor_2d(d->x, RT_DTYPE_F32, B, IN);
    b->targets = tensor_1d(d->y, RT_DTYPE_I32, B);
    return RT_OK;
}

typedef struct {
    int64_t lo[MAXB], hi[MAXB];
    int n;
    int before_first_layer;  /* buckets started while fc1's gradient was still zero */
    const float *grads;
} buckets_t;

static void on_bucket(void *ctx, int64_t lo, int64_t hi)
{
    buckets_t *b = ctx;
    if (b->n < MAXB) {
        b->lo[b->n] = lo;
        b->hi[b->n] = hi;
    }
    b->n++;
    b->before_first_layer += b->grads[0] == 0.0f;
}

static replica_t *make(const model_spec_t *spec, rt_device_t *dev, int shards, int shard)
{
    replica_config_t rc = {.spec = spec, .dev = dev, .max_batch = B, .accum = 1,
                           .optim = optim_config_default(OPTIM_SGD),
                           .sched = {.kind = SCHED_CONSTANT, .base_lr = 0.0},
                           .compute_dtype = RT_DTYPE_F32, .shards = shards, .shard = shard};
    replica_t *r = NULL;
    if (replica_create(&r, &rc) != RT_OK) {
        fprintf(stderr, "FATAL replica: %s\n", rt_last_error());
        exit(1);
    }
    replica_init_params(r, 7);
    if (replica_upload(r, 0, 0) != RT_OK)
        exit(1);
    return r;
}

int main(int argc, char **argv)
{
    coll_comm_t *comm = NULL;
    if (coll_init(&argc, &argv) != RT_OK || coll_comm_world(&comm) != RT_OK)
        return 1;
    const int rank = coll_rank(comm), world = coll_size(comm);
    batch_data_t data;
    for (int i = 0; i < B * IN; i++)
        data.x[i] = (float)(((i + 1) * (rank + 3) * 37) % 101) / 101.0f - 0.5f;
    for (int i = 0; i < B; i++)
        data.y[i] = (i + rank) % 4;
    model_spec_t spec;
    rt_device_t *dev = NULL;
    device_config_t dc = {.kind = RT_DEVICE_CPU};
    if (model_spec_parse("mlp:8,16,16,4", &spec) != RT_OK || device_open(&dev, &dc) != RT_OK)
        return 1;

    /* the oracle: this rank's own gradient, averaged with MPI_Allreduce */
    replica_t *alone = make(&spec, dev, 1, 0);
    step_result_t res;
    EXPECT(replica_step(alone, give_batch, &data, true, &res) == RT_OK, "local step: %s",
           rt_last_error());
    const param_registry_t *reg = replica_registry(alone);
    const int64_t total = reg->total;
    double *want = calloc((size_t)total, sizeof *want), local_loss = res.loss, want_loss = 0;
    for (int64_t i = 0; i < total; i++)
        want[i] = replica_model(alone)->grads[i];
    MPI_Allreduce(MPI_IN_PLACE, want, (int)total, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(&local_loss, &want_loss, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);

    /* the same step with the sync, in every mode */
    for (int mode = 0; mode < 6; mode++) {
        const sync_overlap ov = (sync_overlap)(mode % 3);
        const bool zero = mode >= 3;
        replica_t *r = make(&spec, dev, zero ? world : 1, rank);
        grad_sync_config_t gc = {.overlap = ov, .zero = zero};
        EXPECT(grad_plan_make(&gc.plan, replica_registry(r), 50.0 * sizeof(float) / 1048576.0) ==
                   RT_OK,
               "plan");
        grad_sync_t *sync = NULL;
        EXPECT(grad_sync_create_host(&sync, comm, &gc, replica_model(r)->grads) == RT_OK, "sync: %s",
               rt_last_error());
        buckets_t seen = {.grads = replica_model(r)->grads};
        grad_sync_observe(sync, on_bucket, &seen);
        replica_set_sync(r, sync);
        EXPECT(replica_step(r, give_batch, &data, true, &res) == RT_OK, "synced step: %s",
               rt_last_error());
        int64_t lo = 0, hi = total, slo, shi;
        grad_sync_shard(sync, &slo, &shi);
        replica_shard(r, &lo, &hi);
        EXPECT(slo == lo && shi == hi, "rank %d: sync shard [%lld, %lld) vs replica [%lld, %lld)",
               rank, (long long)slo, (long long)shi, (long long)lo, (long long)hi);
        if (zero) {
            /* shards in rank order, 16-element aligned, covering the arena */
            int64_t per = ((total + world - 1) / world + 15) / 16 * 16;
            EXPECT(lo == (rank * per < total ? rank * per : total) &&
                       hi == ((rank + 1) * per < total ? (rank + 1) * per : total),
                   "rank %d: shard [%lld, %lld) of %lld", rank, (long long)lo, (long long)hi,
                   (long long)total);
            EXPECT(replica_optimizer_bytes(r) == 0,
                   "rank %d: plain SGD holds no state, got %lld bytes", rank,
                   (long long)replica_optimizer_bytes(r));
        } else {
            EXPECT(lo == 0 && hi == total, "rank %d: shard without ZeRO", rank);
        }
        const float *got = replica_model(r)->grads;
        double worst = 0, scale = 1e-30;
        for (int64_t i = lo; i < hi; i++) {
            worst = fmax(worst, fabs(got[i] - want[i] / world));
            scale = fmax(scale, fabs(want[i] / world));
        }
        EXPECT(worst / scale <= 1e-6,
               "rank %d, overlap %s%s: gradient differs from MPI_Allreduce's average by %g", rank,
               sync_overlap_name(ov), zero ? ", zero" : "", worst / scale);
        EXPECT(test_close(res.loss, want_loss / world, 0, 1e-6), "rank %d: loss %g vs %g", rank,
               res.loss, want_loss / world);
        int tiled = seen.n == gc.plan.count;
        int64_t top = total;
        for (int i = 0; tiled && i < seen.n; i++) {
            int64_t blo, bhi;
            grad_plan_bucket(&gc.plan, gc.plan.count - 1 - i, &blo, &bhi);
            tiled = seen.hi[i] == top && seen.lo[i] == blo && bhi == top && blo < bhi;
            top = seen.lo[i];
        }
        EXPECT(tiled && top == 0, "rank %d: %d buckets do not tile the arena from its end", rank,
               seen.n);
        /* the thread may be scheduled late on a busy machine: only the
         * layers mode starts buckets at a known point */
        if (ov == SYNC_OVERLAP_LAYERS)
            EXPECT(seen.before_first_layer > 0, "rank %d: no bucket started during backward", rank);
        if (ov == SYNC_OVERLAP_OFF)
            EXPECT(seen.before_first_layer == 0, "rank %d: overlap off started %d buckets early",
                   rank, seen.before_first_layer);
        /* the parameters stay the same on every rank (ZeRO gathered them) */
        const float *p = replica_host_params(r);
        double sum = 0, all_min = 0, all_max = 0;
        for (int64_t i = 0; i < total; i++)
            sum += p[i] * (double)(i % 7 + 1);
        MPI_Allreduce(&sum, &all_min, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
        MPI_Allreduce(&sum, &all_max, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        EXPECT(all_min == all_max, "rank %d: parameters differ across ranks", rank);
        printf("rank %d/%d, overlap %s%s: %d buckets, %d during backward, gradient within %.1e of "
               "MPI_Allreduce\n",
               rank, world, sync_overlap_name(ov), zero ? ", zero" : "", seen.n,
               seen.before_first_layer, worst / scale);
        replica_destroy(r);
        grad_sync_destroy(sync);
    }
    replica_destroy(alone);
    device_close(dev);
    model_spec_free(&spec);
    free(want);
    int failed = test_failed_count, any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    coll_comm_free(comm);
    coll_finalize();
    int rc = TEST_EXIT();
    return any ? 1 : rc;
}
