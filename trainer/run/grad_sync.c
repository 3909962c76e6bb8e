/* grad_sync.c - the gradient's exchange across ranks in buckets, host and
 * device, all-reduce or ZeRO-1, with the progress thread of the host's
 * thread overlap (see grad_sync.h). */
#define _POSIX_C_SOURCE 200809L
#include "trainer/run/grad_sync.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpi.h>

#include "collectives/nccl_comm.h"
#include "common/check.h"
#include "common/log.h"
#include "common/timer.h"

/* Nonblocking collectives in flight at once: the collectives keep a few
 * scratch buffers per communicator (8), each request holding one or two. */
#define GRAD_SYNC_MAX_INFLIGHT 4

/* The ring pipeline of the sync's own communicator: buckets are bulk
 * transfers (coll_set_pipeline; RT_COLL_SEGMENT / RT_COLL_WINDOW win). */
#define GRAD_SYNC_SEGMENT ((size_t)1 << 20)
#define GRAD_SYNC_WINDOW 8

/* The progress thread polls requests in flight with naps from NAP_MIN to
 * NAP_MAX (doubling while none completes): short enough to keep a TCP ring
 * streaming, long enough to leave the core to backward's arithmetic
 * (measured on the namespace cluster: naps of 0.1-2 ms hid as much, so the
 * cost of polling is not what limits the overlap there). */
#define NAP_MIN_NS 20000L
#define NAP_MAX_NS 50000L


/* The progress thread's phases: the main thread moves IDLE -> ACTIVE
 * (begin) -> FINISH (finish), the thread answers DONE; QUIT ends it. */
enum { PH_IDLE, PH_ACTIVE, PH_FINISH, PH_DONE, PH_QUIT };

struct grad_sync {
    bool device;
    grad_sync_config_t cfg;
    grad_plan_t plan;
    float *grads;
    double timeout_s;
    int rank, world;
    int64_t shard_lo, shard_hi;
    size_t *counts;          /* world entries: one bucket's shard chunks */
    size_t *shard_counts;    /* world entries: every rank's whole shard */
    /* host */
    coll_comm_t *comm;
    coll_request_t *reqs[GRAD_SYNC_MAX_INFLIGHT];
    double req_t0[GRAD_SYNC_MAX_INFLIGHT];
    int64_t req_bucket[GRAD_SYNC_MAX_INFLIGHT];
    int nreqs;
    int64_t next_bucket;  /* the next bucket to start in this backward; -1: all started */
    /* the progress thread (thread overlap) */
    bool thread_on;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int phase;                 /* PH_*, under mu */
    _Atomic int64_t ready_from;
    rt_status thread_st;
    char thread_msg[1024];
    /* exposed communication */
    double exposed_s;
    int64_t exposed_steps;
    /* device */
    rt_device_t *dev;
    nccl_comm_t *nccl;
    device_side_t *side;     /* overlap: the exchange's own stream; NULL: none */
    bool begun;              /* begin ran this step (not when a CUDA graph replays) */
    grad_sync_observer_fn observer;
    void *observer_ctx;
};

rt_status sync_overlap_parse(const char *name, sync_overlap *out)
{
    if (!strcmp(name, "thread"))
        *out = SYNC_OVERLAP_THREAD;
    else if (!strcmp(name, "layers"))
        *out = SYNC_OVERLAP_LAYERS;
    else if (!strcmp(name, "off"))
        *out = SYNC_OVERLAP_OFF;
    else
        return rt_fail(RT_ERR_USAGE, "--overlap must be thread, layers or off, got '%s'", name);
    return RT_OK;
}

const char *sync_overlap_name(sync_overlap o)
{
    return o == SYNC_OVERLAP_THREAD ? "thread" : o == SYNC_OVERLAP_LAYERS ? "layers" : "off";
}

void grad_sync_observe(grad_sync_t *s, grad_sync_observer_fn fn, void *ctx)
{
    s->observer = fn;
    s->observer_ctx = ctx;
}

static void *progress_main(void *arg);
static void name_rows(grad_sync_t *s);

/* What host and device share: the plan, the shards and the count arrays. */
static rt_status sync_new(grad_sync_t **out, const grad_sync_config_t *cfg, float *grads, int rank,
                          int world)
{
    grad_sync_t *s = calloc(1, sizeof *s);
    CHECK_ALLOC(s, sizeof *s);
    s->cfg = *cfg;
    s->plan = cfg->plan;
    s->grads = grads;
    s->rank = rank;
    s->world = world;
    s->next_bucket = -1;
    s->counts = calloc((size_t)world, sizeof *s->counts);
    s->shard_counts = calloc((size_t)world, sizeof *s->shard_counts);
    if (!s->counts || !s->shard_counts) {
        free(s->counts);
        free(s->shard_counts);
        free(s);
        return rt_fail(RT_ERR_NOMEM, "cannot allocate the gradient sync's counts");
    }
    if (cfg->zero) {
        grad_plan_shard(s->plan.total, world, rank, &s->shard_lo, &s->shard_hi);
        grad_plan_shard_counts(s->plan.total, world, 0, s->plan.total, s->shard_counts);
    } else {
        s->shard_lo = 0;
        s->shard_hi = s->plan.total;
    }
    *out = s;
    return RT_OK;
}

rt_status grad_sync_create_host(grad_sync_t **out, coll_comm_t *comm, const grad_sync_config_t *cfg,
                                float *grads)
{
    *out = NULL;
    grad_sync_t *s = NULL;
    TRY(sync_new(&s, cfg, grads, coll_rank(comm), coll_size(comm)));
    /* a communicator of its own: the buckets' traffic apart from the
     * session's other calls, with segments for bulk transfers (1 MiB, 8 in
     * flight: on the TCP namespace cluster they hid 76 % of the exchange
     * where 256 KiB x 4 hid 67-73 %, and no less on shared memory) */
    rt_status st = coll_comm_split(comm, 0, coll_rank(comm), &s->comm);
    if (st != RT_OK) {
        free(s->counts);
        free(s->shard_counts);
        free(s);
        return st;
    }
    coll_set_pipeline(s->comm, GRAD_SYNC_SEGMENT, GRAD_SYNC_WINDOW);
    s->timeout_s = coll_timeout(comm);
    if (cfg->overlap == SYNC_OVERLAP_THREAD) {
        int level = MPI_THREAD_SINGLE;
        MPI_Query_thread(&level);
        if (level < MPI_THREAD_SERIALIZED) {
            LOG_WARN("MPI provides thread level %d, not MPI_THREAD_SERIALIZED: the gradient sync "
                     "overlaps between layers instead of on a progress thread", level);
            s->cfg.overlap = SYNC_OVERLAP_LAYERS;
        }
    }
    name_rows(s);
    if (s->cfg.overlap == SYNC_OVERLAP_THREAD) {
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cv, NULL);
        s->phase = PH_IDLE;
        int rc = pthread_create(&s->thread, NULL, progress_main, s);
        if (rc != 0) {
            pthread_cond_destroy(&s->cv);
            pthread_mutex_destroy(&s->mu);
            coll_comm_free(s->comm);
            free(s->counts);
            free(s->shard_counts);
            free(s);
            return rt_fail(RT_ERR_NOMEM, "cannot start the gradient sync's progress thread: %s",
                           strerror(rc));
        }
        s->thread_on = true;
    }
    *out = s;
    return RT_OK;
}

rt_status grad_sync_create_device(grad_sync_t **out, rt_device_t *dev, const grad_sync_config_t *cfg,
                                  float *grads, double timeout_s)
{
    *out = NULL;
    int rank = 0, world = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    grad_sync_t *s = NULL;
    TRY(sync_new(&s, cfg, grads, rank, world));
    s->device = true;
    s->dev = dev;
    s->timeout_s = timeout_s;
    rt_status st = nccl_comm_create(&s->nccl, MPI_COMM_WORLD, dev->ordinal);
    if (st == RT_OK && s->cfg.overlap != SYNC_OVERLAP_OFF)
        st = device_side_create(dev, &s->side);
    if (st != RT_OK) {
        nccl_comm_destroy(s->nccl);
        free(s->counts);
        free(s->shard_counts);
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
    if (s->thread_on) {
        pthread_mutex_lock(&s->mu);
        s->phase = PH_QUIT;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
    }
    /* requests still in flight belong to a failed step: the communicator is
     * being torn down with the job, so they are dropped, not waited for */
    nccl_comm_destroy(s->nccl);
    device_side_destroy(s->side);
    coll_comm_free(s->comm);
    free(s->counts);
    free(s->shard_counts);
    free(s);
}

const char *grad_sync_overlap_text(const grad_sync_t *s)
{
    if (s->device)
        return s->side ? "side stream" : "off";
    return sync_overlap_name(s->cfg.overlap);
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

sync_overlap grad_sync_overlap(const grad_sync_t *s)
{
    return s->cfg.overlap;
}

bool grad_sync_zero(const grad_sync_t *s)
{
    return s->cfg.zero;
}

void grad_sync_shard(const grad_sync_t *s, int64_t *lo, int64_t *hi)
{
    *lo = s->shard_lo;
    *hi = s->shard_hi;
}

double grad_sync_take_exposed(grad_sync_t *s, int64_t *steps)
{
    const double e = s->exposed_s;
    if (steps)
        *steps = s->exposed_steps;
    s->exposed_s = 0.0;
    s->exposed_steps = 0;
    return e;
}

/* ---- host buckets ------------------------------------------------------------- */

/* The bucket's communication as a span, on rows of their own: it overlaps
 * backward (layers overlap) and other buckets (up to MAX_INFLIGHT, started
 * in order, so bucket k % MAX_INFLIGHT picks a free row). */
static void bucket_done(grad_sync_t *s, int i)
{
    if (s->cfg.trace && s->req_bucket[i] >= 0)
        rt_trace_span_row(s->cfg.trace,
                          RT_TRACE_ROW_FIRST + (int)(s->req_bucket[i] % GRAD_SYNC_MAX_INFLIGHT),
                          "comm", s->cfg.zero ? "reduce-scatter" : "all-reduce", s->req_t0[i],
                          rt_now(), "bucket", s->req_bucket[i]);
}

static void name_rows(grad_sync_t *s)
{
    for (int i = 0; s->cfg.trace && i < GRAD_SYNC_MAX_INFLIGHT; i++) {
        char name[48];
        snprintf(name, sizeof name, "gradient buckets %d", i + 1);
        rt_trace_row_name(s->cfg.trace, RT_TRACE_ROW_FIRST + i, name);
    }
}

static void drop_request(grad_sync_t *s, int i)
{
    for (int j = i + 1; j < s->nreqs; j++) {
        s->reqs[j - 1] = s->reqs[j];
        s->req_t0[j - 1] = s->req_t0[j];
        s->req_bucket[j - 1] = s->req_bucket[j];
    }
    s->nreqs--;
}

/* Tests every request in flight; *moved: some completed. */
static rt_status host_progress(grad_sync_t *s, int *moved)
{
    for (int i = 0; i < s->nreqs;) {
        int done = 0;
        rt_status st = coll_test(s->reqs[i], &done);
        if (!done) {
            i++;
            continue;
        }
        bucket_done(s, i);
        drop_request(s, i);
        if (moved)
            *moved = 1;
        TRY(st);
    }
    return RT_OK;
}

static rt_status host_wait_oldest(grad_sync_t *s)
{
    rt_status st = coll_wait(s->reqs[0]);
    bucket_done(s, 0);
    drop_request(s, 0);
    return st;
}

static rt_status host_wait_all(grad_sync_t *s)
{
    rt_status st = RT_OK;
    while (s->nreqs) {
        rt_status w = host_wait_oldest(s);
        if (st == RT_OK)
            st = w;
    }
    return st;
}

/* Starts the exchange of count elements at buf (bucket k, or -1 for a
 * scalar): an all-reduce, or with ZeRO a bucket's reduce-scatter. */
static rt_status host_start(grad_sync_t *s, float *buf, int64_t count, int64_t k)
{
    TRY(host_progress(s, NULL));
    if (s->nreqs == GRAD_SYNC_MAX_INFLIGHT)  /* small buckets: the oldest first */
        TRY(host_wait_oldest(s));
    coll_request_t **req = &s->reqs[s->nreqs];
    if (s->cfg.zero && k >= 0) {
        const int64_t lo = buf - s->grads;
        grad_plan_shard_counts(s->plan.total, s->world, lo, lo + count, s->counts);
        TRY(coll_reduce_scatter_v_start(s->comm, buf, s->counts, RT_DTYPE_F32, COLL_AVG, req));
    } else {
        TRY(coll_allreduce_start(s->comm, buf, buf, (size_t)count, RT_DTYPE_F32, COLL_AVG, req));
    }
    s->req_t0[s->nreqs] = rt_now();
    s->req_bucket[s->nreqs] = k;
    s->nreqs++;
    return RT_OK;
}

/* Starts every bucket that lies wholly in [ready_from, total). */
static rt_status host_start_ready(grad_sync_t *s, int64_t ready_from)
{
    int64_t lo, hi;
    while (s->next_bucket >= 0 &&
           (grad_plan_bucket(&s->plan, s->next_bucket, &lo, &hi), lo >= ready_from)) {
        if (s->observer)
            s->observer(s->observer_ctx, lo, hi);
        TRY(host_start(s, s->grads + lo, hi - lo, s->next_bucket));
        s->next_bucket--;
    }
    return RT_OK;
}

/* grad_ready_fn of the layers overlap: start what is final, poll the rest
 * (time on the computing thread, so it counts as exposed). */
static rt_status layers_ready(void *ctx, int64_t ready_from)
{
    grad_sync_t *s = ctx;
    const double t0 = rt_now();
    rt_status st = host_start_ready(s, ready_from);
    if (st == RT_OK)
        st = host_progress(s, NULL);
    s->exposed_s += rt_now() - t0;
    return st;
}

/* grad_ready_fn of the thread overlap: publish, and wake the thread. */
static rt_status thread_ready(void *ctx, int64_t ready_from)
{
    grad_sync_t *s = ctx;
    atomic_store(&s->ready_from, ready_from);
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return RT_OK;
}

/* One step's work on the progress thread: start buckets as backward
 * publishes them, poll those in flight, and once finish has asked, wait for
 * the rest (coll_wait backs off by itself). */
static rt_status progress_step(grad_sync_t *s)
{
    long nap = NAP_MIN_NS;
    for (;;) {
        const int64_t from = atomic_load(&s->ready_from);
        TRY(host_start_ready(s, from));
        int moved = 0;
        TRY(host_progress(s, &moved));
        pthread_mutex_lock(&s->mu);
        const int phase = s->phase;
        if (phase == PH_ACTIVE && s->nreqs == 0 && atomic_load(&s->ready_from) == from)
            pthread_cond_wait(&s->cv, &s->mu);  /* nothing in flight: sleep until told */
        pthread_mutex_unlock(&s->mu);
        if (phase == PH_QUIT)
            return RT_OK;  /* the step failed on the main thread: drop what is in flight */
        if (phase == PH_FINISH) {
            TRY(host_start_ready(s, 0));
            return host_wait_all(s);
        }
        if (s->nreqs && !moved) {
            struct timespec ts = {0, nap};
            nanosleep(&ts, NULL);
            nap = nap * 2 < NAP_MAX_NS ? nap * 2 : NAP_MAX_NS;
        } else {
            nap = NAP_MIN_NS;
        }
    }
}

static void *progress_main(void *arg)
{
    grad_sync_t *s = arg;
    rt_trace_thread_name(s->cfg.trace, "gradient sync");
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->phase == PH_IDLE || s->phase == PH_DONE)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->phase == PH_QUIT)
            break;
        pthread_mutex_unlock(&s->mu);
        rt_status st = progress_step(s);
        pthread_mutex_lock(&s->mu);
        if (s->phase == PH_QUIT)
            break;
        s->thread_st = st;
        snprintf(s->thread_msg, sizeof s->thread_msg, "%s", st == RT_OK ? "" : rt_last_error());
        s->phase = PH_DONE;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- device buckets ------------------------------------------------------------ */

/* Enqueues every bucket wholly in [ready_from, total) on the side stream,
 * ordered after the backward kernels enqueued so far (one fork per hook:
 * the kernels that finished those gradients are all before it). */
static rt_status device_start_ready(grad_sync_t *s, int64_t ready_from)
{
    bool forked = false;
    int64_t lo, hi;
    while (s->next_bucket >= 0 &&
           (grad_plan_bucket(&s->plan, s->next_bucket, &lo, &hi), lo >= ready_from)) {
        if (!forked)
            TRY(device_side_fork(s->side));
        forked = true;
        if (s->observer)
            s->observer(s->observer_ctx, lo, hi);
        void *stream = device_side_stream(s->side);
        if (s->cfg.zero) {
            grad_plan_shard_counts(s->plan.total, s->world, lo, hi, s->counts);
            TRY(nccl_reduce_scatter_v_ring(s->nccl, s->grads + lo, s->counts, RT_DTYPE_F32,
                                           COLL_AVG, stream));
        } else {
            TRY(nccl_allreduce_ring(s->nccl, s->grads + lo, s->grads + lo, (size_t)(hi - lo),
                                    RT_DTYPE_F32, COLL_AVG, stream));
        }
        s->next_bucket--;
    }
    return RT_OK;
}

/* grad_ready_fn of the device: nothing waits on the host. */
static rt_status device_ready(void *ctx, int64_t ready_from)
{
    return device_start_ready(ctx, ready_from);
}

/* After backward: the rest of the buckets, then the device's stream waits
 * for the side stream. Without a side stream, or when a CUDA graph replayed
 * backward (begin did not run), the whole arena in one call on the
 * device's stream. */
static rt_status device_finish(grad_sync_t *s)
{
    if (s->observer && !(s->side && s->begun))
        s->observer(s->observer_ctx, 0, s->plan.total);
    if (s->side && s->begun) {
        s->begun = false;
        TRY(device_start_ready(s, 0));
        return device_side_join(s->side);
    }
    if (s->cfg.zero)
        return nccl_reduce_scatter_v_ring(s->nccl, s->grads, s->shard_counts, RT_DTYPE_F32,
                                          COLL_AVG, device_stream(s->dev));
    return nccl_allreduce_ring(s->nccl, s->grads, s->grads, (size_t)s->plan.total, RT_DTYPE_F32,
                               COLL_AVG, device_stream(s->dev));
}

grad_ready_fn grad_sync_hook(const grad_sync_t *s)
{
    if (s->device)
        return s->side ? device_ready : NULL;
    switch (s->cfg.overlap) {
    case SYNC_OVERLAP_THREAD:
        return thread_ready;
    case SYNC_OVERLAP_LAYERS:
        return layers_ready;
    case SYNC_OVERLAP_OFF:
        break;
    }
    return NULL;
}

void grad_sync_begin(grad_sync_t *s)
{
    s->next_bucket = s->plan.count - 1;
    s->begun = true;
    s->exposed_steps++;
    if (s->thread_on) {
        atomic_store(&s->ready_from, s->plan.total);
        pthread_mutex_lock(&s->mu);
        s->phase = PH_ACTIVE;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
}

static rt_status host_finish(grad_sync_t *s)
{
    if (!s->thread_on) {
        TRY(host_start_ready(s, 0));  /* whatever backward's hook has not started */
        return host_wait_all(s);
    }
    atomic_store(&s->ready_from, 0);
    pthread_mutex_lock(&s->mu);
    s->phase = PH_FINISH;
    pthread_cond_broadcast(&s->cv);
    while (s->phase != PH_DONE)
        pthread_cond_wait(&s->cv, &s->mu);
    const rt_status st = s->thread_st;
    s->phase = PH_IDLE;
    pthread_mutex_unlock(&s->mu);
    if (st != RT_OK)
        return rt_fail(st, "%s", s->thread_msg);
    return RT_OK;
}

rt_status grad_sync_finish(grad_sync_t *s)
{
    if (s->device)
        return device_finish(s);
    const double t0 = rt_now();
    rt_status st = host_finish(s);
    s->exposed_s += rt_now() - t0;
    return st;
}

rt_status grad_sync_scalar(grad_sync_t *s, float *x)
{
    if (s->device)
        return nccl_allreduce_ring(s->nccl, x, x, 1, RT_DTYPE_F32, COLL_AVG,
                                   device_stream(s->dev));
    const double t0 = rt_now();
    rt_status st = host_start(s, x, 1, -1);
    if (st == RT_OK)
        st = host_wait_all(s);
    s->exposed_s += rt_now() - t0;
    return st;
}

rt_status grad_sync_sum(grad_sync_t *s, double *x)
{
    if (s->device)
        return nccl_allreduce_ring(s->nccl, x, x, 1, RT_DTYPE_F64, COLL_SUM,
                                   device_stream(s->dev));
    const double t0 = rt_now();
    rt_status st = coll_allreduce(s->comm, x, x, 1, RT_DTYPE_F64, COLL_SUM);
    s->exposed_s += rt_now() - t0;
    return st;
}

rt_status grad_sync_gather(grad_sync_t *s, float *params)
{
    CHECK_ARG(s->cfg.zero, "grad_sync_gather: the sync is not ZeRO-1");
    if (s->device)
        return nccl_allgather_v_ring(s->nccl, params, s->shard_counts, RT_DTYPE_F32,
                                     device_stream(s->dev));
    const double t0 = rt_now();
    coll_request_t *req = NULL;
    rt_status st = coll_allgather_v_start(s->comm, params, s->shard_counts, RT_DTYPE_F32, &req);
    if (st == RT_OK)
        st = coll_wait(req);
    const double t1 = rt_now();
    s->exposed_s += t1 - t0;
    rt_trace_span(s->cfg.trace, "comm", "all-gather parameters", t0, t1, NULL, 0);
    return st;
}

rt_status grad_sync_wait(grad_sync_t *s)
{
    if (!s->device)
        return RT_OK;
    return nccl_comm_wait(s->nccl, device_stream(s->dev), s->timeout_s);
}
