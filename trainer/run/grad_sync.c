/* grad_sync.c - the gradient's cross-rank average in buckets, host and
 * device (see grad_sync.h). */
#include "trainer/run/grad_sync.h"

#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "collectives/nccl_comm.h"
#include "common/check.h"

/* Nonblocking all-reduces in flight at once: the collectives keep a few
 * scratch buffers per communicator (8), each request holding one or two. */
#define GRAD_SYNC_MAX_INFLIGHT 4

struct grad_sync {
    bool device;
    grad_plan_t plan;
    float *grads;
    double timeout_s;
    /* host */
    coll_comm_t *comm;
    coll_request_t *reqs[GRAD_SYNC_MAX_INFLIGHT];
    int nreqs;
    int64_t next_bucket;  /* the next bucket to start in this backward; -1: all started */
    /* device */
    rt_device_t *dev;
    nccl_comm_t *nccl;
    grad_sync_observer_fn observer;
    void *observer_ctx;
};

void grad_sync_observe(grad_sync_t *s, grad_sync_observer_fn fn, void *ctx)
{
    s->observer = fn;
    s->observer_ctx = ctx;
}

rt_status grad_sync_create_host(grad_sync_t **out, coll_comm_t *comm, const grad_plan_t *plan,
                                float *grads)
{
    *out = NULL;
    grad_sync_t *s = calloc(1, sizeof *s);
    CHECK_ALLOC(s, sizeof *s);
    s->plan = *plan;
    s->grads = grads;
    s->comm = comm;
    s->timeout_s = coll_timeout(comm);
    s->next_bucket = -1;
    *out = s;
    return RT_OK;
}

rt_status grad_sync_create_device(grad_sync_t **out, rt_device_t *dev, const grad_plan_t *plan,
                                  float *grads, double timeout_s)
{
    *out = NULL;
    grad_sync_t *s = calloc(1, sizeof *s);
    CHECK_ALLOC(s, sizeof *s);
    s->device = true;
    s->plan = *plan;
    s->grads = grads;
    s->dev = dev;
    s->timeout_s = timeout_s;
    s->next_bucket = -1;
    rt_status st = nccl_comm_create(&s->nccl, MPI_COMM_WORLD, dev->ordinal);
    if (st != RT_OK) {
        free(s);
        return st;
    }
    *out = s;
    return RT_OK;
}

void grad_sync_destroy(grad_sync_t *s)
{
    if (!s)
        return;
    /* requests still in flight belong to a failed step: the communicator is
     * being torn down with the job, so they are dropped, not waited for */
    nccl_comm_destroy(s->nccl);
    free(s);
}

void grad_sync_abort(grad_sync_t *s)
{
    if (s && s->nccl)
        nccl_comm_abort(s->nccl);
}

double grad_sync_timeout(const grad_sync_t *s)
{
    return s->timeout_s;
}

/* ---- host buckets ------------------------------------------------------------- */

static rt_status host_progress(grad_sync_t *s)
{
    int kept = 0;
    for (int i = 0; i < s->nreqs; i++) {
        int done = 0;
        TRY(coll_test(s->reqs[i], &done));
        if (!done)
            s->reqs[kept++] = s->reqs[i];
    }
    s->nreqs = kept;
    return RT_OK;
}

static rt_status host_start(grad_sync_t *s, float *buf, int64_t count)
{
    TRY(host_progress(s));
    if (s->nreqs == GRAD_SYNC_MAX_INFLIGHT) {
        /* small buckets: finish the oldest before starting another */
        rt_status st = coll_wait(s->reqs[0]);
        memmove(s->reqs, s->reqs + 1, sizeof s->reqs[0] * (size_t)--s->nreqs);
        TRY(st);
    }
    TRY(coll_allreduce_start(s->comm, buf, buf, (size_t)count, RT_DTYPE_F32, COLL_AVG,
                             &s->reqs[s->nreqs]));
    s->nreqs++;
    return RT_OK;
}

static rt_status host_wait_all(grad_sync_t *s)
{
    rt_status st = RT_OK;
    for (int i = 0; i < s->nreqs; i++) {
        rt_status w = coll_wait(s->reqs[i]);
        if (st == RT_OK)
            st = w;
    }
    s->nreqs = 0;
    return st;
}

/* grad_ready_fn: starts every bucket that lies wholly in [ready_from, total). */
static rt_status host_ready(void *ctx, int64_t ready_from)
{
    grad_sync_t *s = ctx;
    while (s->next_bucket >= 0 && s->next_bucket * s->plan.bucket >= ready_from) {
        int64_t lo, hi;
        grad_plan_bucket(&s->plan, s->next_bucket, &lo, &hi);
        if (s->observer)
            s->observer(s->observer_ctx, lo, hi);
        TRY(host_start(s, s->grads + lo, hi - lo));
        s->next_bucket--;
    }
    return RT_OK;
}

grad_ready_fn grad_sync_hook(const grad_sync_t *s)
{
    return s->device ? NULL : host_ready;
}

void grad_sync_begin(grad_sync_t *s)
{
    s->next_bucket = s->plan.count - 1;
}

rt_status grad_sync_finish(grad_sync_t *s)
{
    if (s->device) {
        if (s->observer)
            s->observer(s->observer_ctx, 0, s->plan.total);
        return nccl_allreduce_ring(s->nccl, s->grads, s->grads, (size_t)s->plan.total,
                                   RT_DTYPE_F32, COLL_AVG, device_stream(s->dev));
    }
    /* whatever backward's hook has not started yet */
    TRY(host_ready(s, 0));
    return host_wait_all(s);
}

rt_status grad_sync_scalar(grad_sync_t *s, float *x)
{
    if (s->device)
        return nccl_allreduce_ring(s->nccl, x, x, 1, RT_DTYPE_F32, COLL_AVG,
                                   device_stream(s->dev));
    TRY(host_start(s, x, 1));
    return host_wait_all(s);
}

rt_status grad_sync_wait(grad_sync_t *s)
{
    if (!s->device)
        return RT_OK;
    return nccl_comm_wait(s->nccl, device_stream(s->dev), s->timeout_s);
}
