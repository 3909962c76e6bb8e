/* eval_set.c - the whole test set once across ranks (see eval_set.h). */
#include "launch/eval_set.h"

#include <math.h>
#include <stdlib.h>

#include "common/check.h"
#include "data/loader.h"

rt_status eval_set_run(mlp_t *m, dataset_t *ds, int batch, coll_comm_t *comm, double *loss,
                       double *accuracy, int64_t *count)
{
    loader_config_t lc;
    loader_config_default(&lc);
    lc.batch = batch;
    lc.rank = coll_rank(comm);
    lc.world = coll_size(comm);
    lc.shuffle = false;
    lc.remainder = SAMPLER_PARTIAL;
    lc.one_epoch = true;
    lc.prefetch = 2;
    loader_t *l = NULL;
    TRY(loader_open(&l, ds, &lc));
    double sums[3] = {0, 0, 0};  /* loss, correct, rows */
    rt_status st = RT_OK;
    int64_t steps = loader_steps_per_epoch(l);
    for (int64_t s = 0; s < steps; s++) {
        loader_batch_t b;
        TRY_GOTO(st, loader_acquire(l, &b), out);
        if (b.rows > 0) {
            double ls;
            int64_t correct;
            mlp_forward(m, b.inputs, b.labels, b.rows, &ls, &correct);
            sums[0] += ls;
            sums[1] += (double)correct;
            sums[2] += b.rows;
        }
        loader_release(l);
    }
out:
    loader_close(l);
    TRY(st);
    TRY(coll_allreduce(comm, sums, sums, 3, RT_DTYPE_F64, COLL_SUM));
    *loss = sums[2] > 0 ? sums[0] / sums[2] : NAN;
    *accuracy = sums[2] > 0 ? sums[1] / sums[2] : NAN;
    *count = (int64_t)sums[2];
    return RT_OK;
}

/* A dataset that cannot be opened or has the wrong kind or shape is a usage
 * error (exit 2) with the dataset layer's own message. */
rt_status eval_set_open(const char *path, const char *flag, const mlp_spec_t *spec, dataset_t **out)
{
    rt_status st = dataset_open(path, out);
    if (st == RT_OK)
        st = dataset_expect_kind(*out, DATASET_CLASSIFICATION);
    if (st != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "--%s", flag);
    const dataset_info_t *info = dataset_info(*out);
    int in = spec->sizes[0], classes = spec->sizes[spec->nlayers];
    if (info->features != in)
        return rt_fail(RT_ERR_USAGE, "--%s %s has %lld features per record but the model takes %d inputs",
                       flag, path, (long long)info->features, in);
    if (info->num_classes != classes)
        return rt_fail(RT_ERR_USAGE, "--%s %s has %d classes but the model has %d outputs", flag,
                       path, info->num_classes, classes);
    return RT_OK;
}

/* All ranks learn whether any failed, so that none trains alone or waits in a
 * collective for a peer that already gave up. Every rank returns a failure
 * if any rank failed; *speak is set on the one rank that prints the message
 * (the lowest failing rank), so that a bad flag on 4 ranks prints once. */
rt_status eval_set_agree(coll_comm_t *comm, rt_status local, bool *speak)
{
    const int world = coll_size(comm), rank = coll_rank(comm);
    int32_t *codes = calloc((size_t)world, sizeof *codes);
    CHECK_ALLOC(codes, sizeof *codes * (size_t)world);
    int32_t mine = (int32_t)local;
    rt_status st = coll_allgather(comm, &mine, codes, 1, RT_DTYPE_I32);
    int first = -1;
    for (int i = 0; st == RT_OK && i < world && first < 0; i++)
        if (codes[i] != RT_OK)
            first = i;
    rt_status agreed = first < 0 ? RT_OK : (rt_status)codes[first];
    free(codes);
    TRY(st);
    *speak = first == rank;
    if (agreed != RT_OK && local == RT_OK)
        rt_fail(agreed, "rank %d failed to set up (see its message)", first);
    return agreed;
}
