/* eval.c - a whole dataset once across ranks (see eval.h). */
#include "trainer/run/eval.h"

#include <math.h>
#include <stdlib.h>

#include "common/check.h"
#include "data/loader.h"

rt_status eval_dataset_open(const char *path, const char *flag, const model_io_t *io,
                            dataset_t **out)
{
    if (io->batch != RT_BATCH_ROWS)
        return rt_fail(RT_ERR_USAGE, "--%s: only classification models are supported", flag);
    rt_status st = dataset_open(path, out);
    if (st == RT_OK)
        st = dataset_expect_kind(*out, DATASET_CLASSIFICATION);
    if (st != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "--%s", flag);
    const dataset_info_t *info = dataset_info(*out);
    if (info->features != io->features)
        return rt_fail(RT_ERR_USAGE, "--%s %s has %lld features per record but the model takes %lld inputs",
                       flag, path, (long long)info->features, (long long)io->features);
    if (info->num_classes != io->classes)
        return rt_fail(RT_ERR_USAGE, "--%s %s has %d classes but the model has %d outputs", flag,
                       path, info->num_classes, io->classes);
    return RT_OK;
}

/* Sums of one batch: loss (in double, in row order), correct rows. */
static rt_status eval_batch(model_t *m, device_stager_t *stager, const loader_batch_t *lb,
                            float *losses_host, int64_t features, double sums[3])
{
    rt_batch_t host = {.rows = lb->rows}, dev;
    host.inputs = tensor_2d((void *)lb->inputs, RT_DTYPE_F32, lb->rows, features);
    host.targets = tensor_1d((void *)lb->labels, RT_DTYPE_I32, lb->rows);
    void *din = NULL, *dtg = NULL;
    TRY(device_stager_put(stager, 0, host.inputs.data, tensor_bytes(&host.inputs),
                          host.targets.data, tensor_bytes(&host.targets), &din, &dtg));
    dev = host;
    dev.inputs.data = din;
    dev.targets.data = dtg;
    rt_tensor_t losses;
    TRY(m->kind->forward(m, &dev, &losses));
    int64_t correct = 0;
    if (m->kind->count_correct)
        TRY(m->kind->count_correct(m, &dev, &correct));
    TRY(device_download(m->dev, losses_host, losses.data, tensor_bytes(&losses)));
    TRY(device_stager_release(stager, 0, 0.0));
    double ls = 0.0;
    for (int64_t i = 0, n = tensor_numel(&losses); i < n; i++)
        ls += losses_host[i];
    sums[0] += ls;
    sums[1] += (double)correct;
    sums[2] += lb->rows;
    return RT_OK;
}

rt_status eval_dataset(model_t *m, dataset_t *ds, int batch, coll_comm_t *comm, double *loss,
                       double *accuracy, int64_t *count)
{
    CHECK_ARG(batch >= 1 && batch <= m->max_batch, "eval: batch %d (model holds %d)", batch,
              m->max_batch);
    const int64_t features = dataset_info(ds)->features;
    loader_config_t lc;
    loader_config_default(&lc);
    lc.batch = batch;
    lc.rank = comm ? coll_rank(comm) : 0;
    lc.world = comm ? coll_size(comm) : 1;
    lc.shuffle = false;
    lc.remainder = SAMPLER_PARTIAL;
    lc.one_epoch = true;
    lc.prefetch = 2;
    loader_t *l = NULL;
    device_stager_t *stager = NULL;
    float *losses_host = NULL;
    rt_status st = RT_OK;
    double sums[3] = {0, 0, 0};  /* loss, correct, rows */
    TRY_GOTO(st, host_alloc((void **)&losses_host, sizeof(float) * (size_t)batch), out);
    TRY_GOTO(st, device_stager_create(m->dev, 1, sizeof(float) * (size_t)batch * (size_t)features,
                                      sizeof(int32_t) * (size_t)batch, &stager), out);
    TRY_GOTO(st, loader_open(&l, ds, &lc), out);
    for (int64_t s = 0, steps = loader_steps_per_epoch(l); s < steps; s++) {
        loader_batch_t b;
        TRY_GOTO(st, loader_acquire(l, &b), out);
        if (b.rows > 0)
            st = eval_batch(m, stager, &b, losses_host, features, sums);
        loader_release(l);
        if (st != RT_OK)
            goto out;
    }
out:
    loader_close(l);
    device_stager_destroy(stager);
    host_free(losses_host);
    TRY(st);
    if (comm)
        TRY(coll_allreduce(comm, sums, sums, 3, RT_DTYPE_F64, COLL_SUM));
    *loss = sums[2] > 0 ? sums[0] / sums[2] : NAN;
    *accuracy = sums[2] > 0 && m->kind->count_correct ? sums[1] / sums[2] : NAN;
    *count = (int64_t)sums[2];
    return RT_OK;
}
