/* eval.c - a whole dataset once across ranks (see eval.h). */
#include "trainer/run/eval.h"

#include <math.h>
#include <stdlib.h>

#include "common/check.h"
#include "data/loader.h"
#include "trainer/run/host_batch.h"

/* Sums of one batch: loss (in double, in row order), correct rows, and
 * the losses counted (rows, or rows * ctx positions). */
static rt_status eval_batch(model_t *m, device_stager_t *stager, const model_io_t *io,
                            const loader_batch_t *lb, int32_t *split, float *losses_host,
                            double sums[4])
{
    rt_batch_t host, dev;
    host_batch_from_loader(io, lb, split, &host);
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
    sums[3] += (double)tensor_numel(&losses);
    return RT_OK;
}

rt_status eval_dataset(model_t *m, dataset_t *ds, int batch, coll_comm_t *comm, double *loss,
                       double *accuracy, int64_t *count)
{
    CHECK_ARG(batch >= 1 && batch <= m->max_batch, "eval: batch %d (model holds %d)", batch,
              m->max_batch);
    model_io_t io;
    m->kind->describe(m->cfg, &io);
    loader_config_t lc;
    loader_config_default(&lc);
    lc.batch = batch;
    lc.rank = comm ? coll_rank(comm) : 0;
    lc.world = comm ? coll_size(comm) : 1;
    lc.shuffle = false;
    lc.remainder = SAMPLER_PARTIAL;
    lc.one_epoch = true;
    lc.prefetch = 2;
    lc.ctx = io.context;
    loader_t *l = NULL;
    device_stager_t *stager = NULL;
    float *losses_host = NULL;
    int32_t *split = NULL;
    rt_status st = RT_OK;
    double sums[4] = {0, 0, 0, 0};  /* loss, correct, rows, losses */
    const size_t per_row = io.batch == RT_BATCH_TOKENS ? (size_t)io.context : 1;
    size_t in_bytes, tg_bytes;
    host_batch_bytes(&io, batch, &in_bytes, &tg_bytes);
    TRY_GOTO(st, host_alloc((void **)&losses_host, sizeof(float) * (size_t)batch * per_row), out);
    TRY_GOTO(st, host_alloc((void **)&split,
                            sizeof(int32_t) * (host_batch_split_len(&io, batch) + 1)), out);
    TRY_GOTO(st, device_stager_create(m->dev, 1, in_bytes, tg_bytes, &stager), out);
    TRY_GOTO(st, loader_open(&l, ds, &lc), out);
    for (int64_t s = 0, steps = loader_steps_per_epoch(l); s < steps; s++) {
        loader_batch_t b;
        TRY_GOTO(st, loader_acquire(l, &b), out);
        if (b.rows > 0)
            st = eval_batch(m, stager, &io, &b, split, losses_host, sums);
        loader_release(l);
        if (st != RT_OK)
            goto out;
    }
out:
    loader_close(l);
    device_stager_destroy(stager);
    host_free(losses_host);
    host_free(split);
    TRY(st);
    if (comm)
        TRY(coll_allreduce(comm, sums, sums, 4, RT_DTYPE_F64, COLL_SUM));
    *loss = sums[3] > 0 ? sums[0] / sums[3] : NAN;
    *accuracy = sums[2] > 0 && m->kind->count_correct ? sums[1] / sums[2] : NAN;
    *count = (int64_t)sums[2];
    return RT_OK;
}
