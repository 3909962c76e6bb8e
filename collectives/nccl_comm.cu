/* nccl_comm.cu - device all-reduce through NCCL: our ring (ncclSend/ncclRecv
 * plus our reduction kernel) and ncclAllReduce as the reference; and the
 * in-place uneven-chunk reduce-scatter and allgather on the same ring.
 *
 * The ring's schedule (which segment and chunk moves at each step) is in
 * nccl_ring_plan.c; this file executes it. Pipelining: chunk c of a
 * reduce-scatter step lands in scratch slot c%2 on the caller's stream while
 * the side stream adds chunk c-1 into the buffer, so the reduction hides
 * behind the next transfer. Events order the two streams: a slot is refilled
 * only after its previous reduction (reduced[slot]), a reduction starts only
 * after its chunk arrived (recvd[slot]), and a step's sends start only after
 * the previous step's reductions (step_done), since they send what those
 * reductions produced. At the end the caller's stream waits for step_done,
 * so the call is complete once the caller's stream is. */
#define OMPI_SKIP_MPICXX 1
extern "C" {
#include "common/status.h"
#include "common/check.h"
#include "common/log.h"
#include "common/timeout.h"
#include "common/timer.h"
}
#include "collectives/nccl_comm.h"
#include "collectives/nccl_history.h"
#include "collectives/nccl_ring_plan.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/check_cuda.h"
#include "common/cuda_grid.h"

enum { NC_SLOTS = 2, NC_THREADS = 256, NC_BLOCKS_PER_SM = 16 };
static_assert(NC_SLOTS == 2, "nccl_ring_plan.c assigns chunk c to slot c % 2");
static const size_t NC_DEFAULT_CHUNK_ELEMS = (size_t)1 << 20; /* 4 MiB of f32 */

struct nccl_comm {
    ncclComm_t nccl;      /* NULL after an abort */
    int rank, size, device;
    cudaStream_t side;    /* reductions of the ring */
    cudaEvent_t recvd[NC_SLOTS], reduced[NC_SLOTS], step_done;
    void *scratch;        /* NC_SLOTS chunks of the widest type */
    size_t chunk_elems;
    nccl_history_t hist;  /* the last calls, for stall warnings and timeouts */
    cudaEvent_t hist_done[NCCL_HISTORY]; /* recorded after each call, by slot */
};

/* ---- kernels ------------------------------------------------------------ */

template <typename T> struct nc_math {
    __device__ static T add(T a, T b) { return a + b; }
    __device__ static T scale(T a, double s) { return (T)(a * (T)s); }
};

/* bf16 sums are formed in float and rounded once, like NCCL does. */
template <> struct nc_math<__nv_bfloat16> {
    __device__ static __nv_bfloat16 add(__nv_bfloat16 a, __nv_bfloat16 b)
    {
        return __float2bfloat16_rn(__bfloat162float(a) + __bfloat162float(b));
    }
    __device__ static __nv_bfloat16 scale(__nv_bfloat16 a, double s)
    {
        return __float2bfloat16_rn(__bfloat162float(a) * (float)s);
    }
};

/* dst = a + b elementwise; a may be dst (in place). */
template <typename T> __global__ void nc_add_kernel(T *dst, const T *a, const T *b, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = nc_math<T>::add(a[i], b[i]);
}

template <typename T> __global__ void nc_scale_kernel(T *x, double s, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] = nc_math<T>::scale(x[i], s);
}

/* The kernels are grid-stride loops: a grid of up to 16 blocks per SM of
 * the current device (the comm's, set by the caller) covers any n. */
static unsigned nc_grid(size_t n)
{
    return rt_cuda_grid((int64_t)n, NC_THREADS, NC_BLOCKS_PER_SM);
}

static rt_status nc_add(rt_dtype dtype, void *dst, const void *a, const void *b, size_t n,
                        cudaStream_t s)
{
    if (n == 0)
        return RT_OK;
    switch (dtype) {
    case RT_DTYPE_F32:
        nc_add_kernel<float><<<nc_grid(n), NC_THREADS, 0, s>>>((float *)dst, (const float *)a,
                                                              (const float *)b, n);
        break;
    case RT_DTYPE_F64:
        nc_add_kernel<double><<<nc_grid(n), NC_THREADS, 0, s>>>((double *)dst, (const double *)a,
                                                               (const double *)b, n);
        break;
    default:
        nc_add_kernel<__nv_bfloat16><<<nc_grid(n), NC_THREADS, 0, s>>>(
            (__nv_bfloat16 *)dst, (const __nv_bfloat16 *)a, (const __nv_bfloat16 *)b, n);
        break;
    }
    CHECK_LAUNCH();
    return RT_OK;
}

static rt_status nc_scale(rt_dtype dtype, void *x, double factor, size_t n, cudaStream_t s)
{
    if (n == 0)
        return RT_OK;
    switch (dtype) {
    case RT_DTYPE_F32:
        nc_scale_kernel<float><<<nc_grid(n), NC_THREADS, 0, s>>>((float *)x, factor, n);
        break;
    case RT_DTYPE_F64:
        nc_scale_kernel<double><<<nc_grid(n), NC_THREADS, 0, s>>>((double *)x, factor, n);
        break;
    default:
        nc_scale_kernel<__nv_bfloat16><<<nc_grid(n), NC_THREADS, 0, s>>>((__nv_bfloat16 *)x,
                                                                         factor, n);
        break;
    }
    CHECK_LAUNCH();
    return RT_OK;
}

/* ---- types -------------------------------------------------------------- */

static rt_status nc_type(rt_dtype dtype, ncclDataType_t *t, size_t *esz)
{
    switch (dtype) {
    case RT_DTYPE_F32: *t = ncclFloat32; *esz = 4; return RT_OK;
    case RT_DTYPE_F64: *t = ncclFloat64; *esz = 8; return RT_OK;
    case RT_DTYPE_BF16: *t = ncclBfloat16; *esz = 2; return RT_OK;
    default:
        if (rt_dtype_size(dtype) == 0)
            return rt_fail(RT_ERR_INVALID, "nccl all-reduce: unknown dtype code %d", (int)dtype);
        return rt_fail(RT_ERR_INVALID, "nccl all-reduce: dtype %s is not supported (f32, f64, bf16)",
                       rt_dtype_name(dtype));
    }
}

static rt_status nc_check_call(const nccl_comm_t *c, const void *send, void *recv, size_t count,
                               coll_op op, const char *who)
{
    if (c == NULL)
        return rt_fail(RT_ERR_INVALID, "%s: communicator is NULL", who);
    if (c->nccl == NULL)
        return rt_fail(RT_ERR_NCCL, "%s: rank %d: communicator was aborted", who, c->rank);
    if (op != COLL_SUM && op != COLL_AVG)
        return rt_fail(RT_ERR_INVALID, "%s: unknown op code %d", who, (int)op);
    if (count > 0 && (send == NULL || recv == NULL))
        return rt_fail(RT_ERR_INVALID, "%s: NULL buffer for %zu elements", who, count);
    return RT_OK;
}

/* ---- lifetime ----------------------------------------------------------- */

static rt_status nc_alloc_scratch(nccl_comm_t *c, size_t chunk_elems)
{
    if (c->scratch) {
        CHECK_CUDA(cudaFree(c->scratch));
        c->scratch = NULL;
    }
    CHECK_CUDA(cudaMalloc(&c->scratch, NC_SLOTS * chunk_elems * sizeof(double)));
    c->chunk_elems = chunk_elems;
    return RT_OK;
}

static rt_status nc_init(nccl_comm_t *c, MPI_Comm comm, int device)
{
    CHECK_MPI(MPI_Comm_rank(comm, &c->rank));
    CHECK_MPI(MPI_Comm_size(comm, &c->size));
    c->device = device;
    CHECK_CUDA(cudaSetDevice(device));

    /* Which GPU each rank uses, so that a refusal can name who shares one. */
    char bus[32] = {0};
    CHECK_CUDA(cudaDeviceGetPCIBusId(bus, (int)sizeof bus - 1, device));
    char *all = (char *)calloc((size_t)c->size, sizeof bus);
    CHECK_ALLOC(all, (size_t)c->size * sizeof bus);
    int mrc = MPI_Allgather(bus, (int)sizeof bus, MPI_CHAR, all, (int)sizeof bus, MPI_CHAR, comm);
    if (mrc != MPI_SUCCESS) {
        free(all);
        CHECK_MPI(mrc);
    }
    int dup_a = -1, dup_b = -1;
    for (int i = 0; i < c->size && dup_a < 0; i++)
        for (int j = i + 1; j < c->size; j++)
            if (strncmp(all + (size_t)i * sizeof bus, all + (size_t)j * sizeof bus, sizeof bus) == 0) {
                dup_a = i;
                dup_b = j;
                break;
            }
    free(all);

    /* Rank 0 makes the id; a flag travels with it so that a failure there
     * fails every rank instead of leaving them with a garbage id. */
    struct {
        int ok;
        ncclUniqueId id;
    } msg;
    memset(&msg, 0, sizeof msg);
    ncclResult_t id_rc = ncclSuccess;
    if (c->rank == 0) {
        id_rc = ncclGetUniqueId(&msg.id);
        msg.ok = id_rc == ncclSuccess;
    }
    CHECK_MPI(MPI_Bcast(&msg, (int)sizeof msg, MPI_BYTE, 0, comm));
    if (!msg.ok)
        return rt_fail(RT_ERR_NCCL, "rank %d: ncclGetUniqueId on rank 0 failed%s%s", c->rank,
                       c->rank == 0 ? ": " : "", c->rank == 0 ? ncclGetErrorString(id_rc) : "");

    ncclComm_t nc = NULL;
    ncclResult_t rc = ncclCommInitRank(&nc, c->size, msg.id, c->rank);
    if (rc != ncclSuccess) {
        if (dup_a >= 0)
            return rt_fail(RT_ERR_NCCL,
                           "rank %d: ncclCommInitRank failed: %s (ranks %d and %d share GPU %s; "
                           "NCCL does not allow one device twice in a communicator)",
                           c->rank, ncclGetErrorString(rc), dup_a, dup_b, bus);
        return rt_fail(RT_ERR_NCCL, "rank %d: ncclCommInitRank failed: %s", c->rank,
                       ncclGetErrorString(rc));
    }
    c->nccl = nc;

    CHECK_CUDA(cudaStreamCreateWithFlags(&c->side, cudaStreamNonBlocking));
    for (int i = 0; i < NC_SLOTS; i++) {
        CHECK_CUDA(cudaEventCreateWithFlags(&c->recvd[i], cudaEventDisableTiming));
        CHECK_CUDA(cudaEventCreateWithFlags(&c->reduced[i], cudaEventDisableTiming));
    }
    CHECK_CUDA(cudaEventCreateWithFlags(&c->step_done, cudaEventDisableTiming));
    for (int i = 0; i < NCCL_HISTORY; i++)
        CHECK_CUDA(cudaEventCreateWithFlags(&c->hist_done[i], cudaEventDisableTiming));
    nccl_history_init(&c->hist, c->rank, c->size);
    TRY(nc_alloc_scratch(c, NC_DEFAULT_CHUNK_ELEMS));
    return RT_OK;
}

extern "C" rt_status nccl_comm_create(nccl_comm_t **out, MPI_Comm comm, int device)
{
    CHECK_ARG(out != NULL, "nccl_comm_create: out is NULL");
    *out = NULL;
    nccl_comm_t *c = (nccl_comm_t *)calloc(1, sizeof *c);
    CHECK_ALLOC(c, sizeof *c);
    rt_status st = nc_init(c, comm, device);
    if (st != RT_OK) {
        nccl_comm_destroy(c);
        return st;
    }
    *out = c;
    return RT_OK;
}

extern "C" void nccl_comm_abort(nccl_comm_t *c)
{
    if (c != NULL && c->nccl != NULL) {
        (void)ncclCommAbort(c->nccl);
        c->nccl = NULL;
    }
}

extern "C" void nccl_comm_destroy(nccl_comm_t *c)
{
    if (c == NULL)
        return;
    /* Teardown: errors cannot be acted on here, everything is released. */
    if (c->nccl != NULL)
        (void)ncclCommDestroy(c->nccl);
    if (c->side) {
        (void)cudaStreamSynchronize(c->side);
        (void)cudaStreamDestroy(c->side);
    }
    for (int i = 0; i < NC_SLOTS; i++) {
        if (c->recvd[i])
            (void)cudaEventDestroy(c->recvd[i]);
        if (c->reduced[i])
            (void)cudaEventDestroy(c->reduced[i]);
    }
    if (c->step_done)
        (void)cudaEventDestroy(c->step_done);
    for (int i = 0; i < NCCL_HISTORY; i++)
        if (c->hist_done[i])
            (void)cudaEventDestroy(c->hist_done[i]);
    if (c->scratch)
        (void)cudaFree(c->scratch);
    free(c);
}

extern "C" int nccl_comm_rank(const nccl_comm_t *c)
{
    return c ? c->rank : -1;
}

extern "C" int nccl_comm_size(const nccl_comm_t *c)
{
    return c ? c->size : 0;
}

extern "C" rt_status nccl_comm_set_chunk_elems(nccl_comm_t *c, size_t elems)
{
    CHECK_ARG(c != NULL && elems > 0, "nccl_comm_set_chunk_elems: bad arguments");
    if (elems == c->chunk_elems)
        return RT_OK;
    /* the old scratch may still be read by queued reductions */
    CHECK_CUDA(cudaDeviceSynchronize());
    return nc_alloc_scratch(c, elems);
}

/* ---- all-reduce --------------------------------------------------------- */

/* State the ring's transfer callbacks need. */
typedef struct {
    nccl_comm_t *c;
    const char *send; /* this rank's input (== buf when in place) */
    char *buf;        /* the result */
    rt_dtype dtype;
    ncclDataType_t t;
    size_t esz;
    cudaStream_t s;
} nc_ring_ctx;

/* One reduce-scatter transfer: the chunk lands in a scratch slot on the
 * caller's stream and the side stream writes buf = send + chunk. Every
 * segment but this rank's own is received exactly once in the
 * reduce-scatter, so out of place the result needs no initial copy: step 0
 * sends this rank's own segment straight from send, later steps send the
 * partial sums that the previous step wrote into buf. */
static rt_status nc_rs_xfer(void *arg, const nccl_ring_xfer_t *x)
{
    nc_ring_ctx *g = (nc_ring_ctx *)arg;
    nccl_comm_t *c = g->c;
    const int right = (c->rank + 1) % c->size, left = (c->rank - 1 + c->size) % c->size;
    char *dst = (char *)c->scratch + (size_t)x->slot * c->chunk_elems * sizeof(double);
    /* what this step sends was produced by the previous step's reductions */
    if (x->first_of_step && x->step > 0)
        CHECK_CUDA(cudaStreamWaitEvent(g->s, c->step_done, 0));
    /* the slot's previous chunk must have been added already */
    CHECK_CUDA(cudaStreamWaitEvent(g->s, c->reduced[x->slot], 0));
    CHECK_NCCL(ncclGroupStart());
    const char *from = x->step == 0 ? g->send : g->buf;
    if (x->send_len > 0)
        CHECK_NCCL(ncclSend(from + x->send_off * g->esz, x->send_len, g->t, right, c->nccl, g->s));
    if (x->recv_len > 0)
        CHECK_NCCL(ncclRecv(dst, x->recv_len, g->t, left, c->nccl, g->s));
    CHECK_NCCL(ncclGroupEnd());
    if (x->recv_len > 0) {
        CHECK_CUDA(cudaEventRecord(c->recvd[x->slot], g->s));
        CHECK_CUDA(cudaStreamWaitEvent(c->side, c->recvd[x->slot], 0));
        TRY(nc_add(g->dtype, g->buf + x->recv_off * g->esz, g->send + x->recv_off * g->esz, dst,
                   x->recv_len, c->side));
        CHECK_CUDA(cudaEventRecord(c->reduced[x->slot], c->side));
    }
    if (x->last_of_step)
        CHECK_CUDA(cudaEventRecord(c->step_done, c->side));
    return RT_OK;
}

/* One allgather transfer: whole segments, received in place. */
static rt_status nc_ag_xfer(void *arg, const nccl_ring_xfer_t *x)
{
    nc_ring_ctx *g = (nc_ring_ctx *)arg;
    nccl_comm_t *c = g->c;
    const int right = (c->rank + 1) % c->size, left = (c->rank - 1 + c->size) % c->size;
    CHECK_NCCL(ncclGroupStart());
    if (x->send_len > 0)
        CHECK_NCCL(ncclSend(g->buf + x->send_off * g->esz, x->send_len, g->t, right, c->nccl, g->s));
    if (x->recv_len > 0)
        CHECK_NCCL(ncclRecv(g->buf + x->recv_off * g->esz, x->recv_len, g->t, left, c->nccl, g->s));
    CHECK_NCCL(ncclGroupEnd());
    return RT_OK;
}

static rt_status nc_allreduce_ring(nccl_comm_t *c, const void *send, void *recv,
                                         size_t count, rt_dtype dtype, coll_op op, void *stream)
{
    TRY(nc_check_call(c, send, recv, count, op, "nccl_allreduce_ring"));
    ncclDataType_t t = ncclFloat32;
    size_t esz = 0;
    TRY(nc_type(dtype, &t, &esz));
    if (count == 0)
        return RT_OK;
    /* the side stream and events live on the communicator's device */
    CHECK_CUDA(cudaSetDevice(c->device));
    cudaStream_t s = (cudaStream_t)stream;
    char *buf = (char *)recv;
    if (c->size == 1) {
        /* the sum over one rank is its own data; so is the average */
        if (send != recv)
            CHECK_CUDA(cudaMemcpyAsync(buf, send, count * esz, cudaMemcpyDeviceToDevice, s));
        return RT_OK;
    }
    nc_ring_ctx g = {c, (const char *)send, buf, dtype, t, esz, s};
    TRY(nccl_ring_plan_run(NCCL_RING_REDUCE_SCATTER, count, c->size, c->rank, c->chunk_elems,
                           nc_rs_xfer, &g));
    /* everything after this (scaling, allgather, the caller) sees the sums */
    CHECK_CUDA(cudaStreamWaitEvent(s, c->step_done, 0));
    if (op == COLL_AVG) {
        /* only the segment this rank owns; the allgather spreads it */
        size_t off, len;
        nccl_ring_segment(count, c->size, nccl_ring_owned_segment(c->size, c->rank), &off, &len);
        TRY(nc_scale(dtype, buf + off * esz, 1.0 / (double)c->size, len, s));
    }
    return nccl_ring_plan_run(NCCL_RING_ALLGATHER, count, c->size, c->rank, c->chunk_elems,
                              nc_ag_xfer, &g);
}

/* ---- uneven-chunk reduce-scatter and allgather (in place) --------------- */

/* Checks shared by the two _v calls; *total is the sum of the counts. */
static rt_status nc_check_v(const nccl_comm_t *c, void *buf, const size_t *counts,
                            rt_dtype dtype, coll_op op, const char *who, ncclDataType_t *t,
                            size_t *esz, size_t *total)
{
    TRY(nc_check_call(c, buf, buf, 0, op, who)); /* c and op; buf below */
    if (counts == NULL)
        return rt_fail(RT_ERR_INVALID, "%s: counts is NULL", who);
    TRY(nc_type(dtype, t, esz));
    size_t sum = 0;
    for (int i = 0; i < c->size; i++) {
        if (counts[i] > ((size_t)1 << 40) / *esz - sum)
            return rt_fail(RT_ERR_INVALID, "%s: counts[%d] = %zu is negative or brings the total "
                           "over 2^40 bytes", who, i, counts[i]);
        sum += counts[i];
    }
    if (sum > 0 && buf == NULL)
        return rt_fail(RT_ERR_INVALID, "%s: NULL buffer for %zu elements", who, sum);
    *total = sum;
    return RT_OK;
}

static rt_status nc_reduce_scatter_v_ring(nccl_comm_t *c, void *buf, const size_t *counts,
                                                rt_dtype dtype, coll_op op, void *stream)
{
    ncclDataType_t t = ncclFloat32;
    size_t esz = 0, total = 0;
    TRY(nc_check_v(c, buf, counts, dtype, op, "nccl_reduce_scatter_v_ring", &t, &esz, &total));
    /* one rank: its chunk is the whole buffer, and the average over one
     * rank is the value itself */
    if (total == 0 || c->size == 1)
        return RT_OK;
    CHECK_CUDA(cudaSetDevice(c->device));
    cudaStream_t s = (cudaStream_t)stream;
    /* in place: the input is the buffer. Step 0 sends chunk r-1 from it,
     * which no reduction here writes; every other chunk is written once,
     * by the reduction of its one receive, from this rank's value still in
     * place plus the incoming partial sum (as nccl_allreduce_ring in place). */
    nc_ring_ctx g = {c, (const char *)buf, (char *)buf, dtype, t, esz, s};
    TRY(nccl_ring_plan_run_v(NCCL_RING_REDUCE_SCATTER, counts, c->size, c->rank, c->chunk_elems,
                             nc_rs_xfer, &g));
    /* the caller's stream (and the scaling below) must see the last sums */
    CHECK_CUDA(cudaStreamWaitEvent(s, c->step_done, 0));
    if (op == COLL_AVG) {
        size_t off = 0;
        for (int i = 0; i < c->rank; i++)
            off += counts[i];
        TRY(nc_scale(dtype, (char *)buf + off * esz, 1.0 / (double)c->size, counts[c->rank], s));
    }
    return RT_OK;
}

static rt_status nc_allgather_v_ring(nccl_comm_t *c, void *buf, const size_t *counts,
                                           rt_dtype dtype, void *stream)
{
    ncclDataType_t t = ncclFloat32;
    size_t esz = 0, total = 0;
    TRY(nc_check_v(c, buf, counts, dtype, COLL_SUM, "nccl_allgather_v_ring", &t, &esz, &total));
    if (total == 0 || c->size == 1)
        return RT_OK;
    CHECK_CUDA(cudaSetDevice(c->device));
    cudaStream_t s = (cudaStream_t)stream;
    /* every transfer is on the caller's stream: step k sends the chunk that
     * step k-1 received, and receives a chunk no pending send reads */
    nc_ring_ctx g = {c, (const char *)buf, (char *)buf, dtype, t, esz, s};
    return nccl_ring_plan_run_v(NCCL_RING_ALLGATHER, counts, c->size, c->rank, c->chunk_elems,
                                nc_ag_xfer, &g);
}

static rt_status nc_allreduce_ref(nccl_comm_t *c, const void *send, void *recv,
                                        size_t count, rt_dtype dtype, coll_op op, void *stream)
{
    TRY(nc_check_call(c, send, recv, count, op, "nccl_allreduce_ref"));
    ncclDataType_t t = ncclFloat32;
    size_t esz = 0;
    TRY(nc_type(dtype, &t, &esz));
    if (count == 0)
        return RT_OK;
    CHECK_NCCL(ncclAllReduce(send, recv, count, t, op == COLL_AVG ? ncclAvg : ncclSum, c->nccl,
                             (cudaStream_t)stream));
    return RT_OK;
}

/* ---- the flight recorder (nccl_history.h) -------------------------------- */

/* Records a call that was enqueued without error, with an event after it on
 * the caller's stream; a call enqueued during a graph capture has no event
 * of its own to ask. */
static rt_status nc_recorded(nccl_comm_t *c, rt_status st, const char *kind, size_t count,
                             rt_dtype dtype, void *stream)
{
    if (st != RT_OK)
        return st;
    cudaStream_t s = (cudaStream_t)stream;
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    CHECK_CUDA(cudaStreamIsCapturing(s, &capture));
    int tracked = capture == cudaStreamCaptureStatusNone;
    int slot = nccl_history_begin(&c->hist, kind, count, dtype, tracked, rt_now());
    if (tracked)
        CHECK_CUDA(cudaEventRecord(c->hist_done[slot], s));
    return RT_OK;
}

static int nc_hist_query(void *ctx, int slot)
{
    cudaError_t e = cudaEventQuery(((nccl_comm_t *)ctx)->hist_done[slot]);
    if (e == cudaSuccess)
        return 1;
    if (e == cudaErrorNotReady)
        return 0;
    (void)cudaGetLastError(); /* the wait reports the stream's own error */
    return -1;
}

static size_t nc_sum_counts(const nccl_comm_t *c, const size_t *counts)
{
    size_t total = 0;
    for (int i = 0; counts && i < c->size; i++)
        total += counts[i];
    return total;
}

extern "C" rt_status nccl_allreduce_ring(nccl_comm_t *c, const void *send, void *recv,
                                         size_t count, rt_dtype dtype, coll_op op, void *stream)
{
    return nc_recorded(c, nc_allreduce_ring(c, send, recv, count, dtype, op, stream), "allreduce",
                       count, dtype, stream);
}

extern "C" rt_status nccl_reduce_scatter_v_ring(nccl_comm_t *c, void *buf, const size_t *counts,
                                                rt_dtype dtype, coll_op op, void *stream)
{
    return nc_recorded(c, nc_reduce_scatter_v_ring(c, buf, counts, dtype, op, stream),
                       "reduce_scatter_v", c ? nc_sum_counts(c, counts) : 0, dtype, stream);
}

extern "C" rt_status nccl_allgather_v_ring(nccl_comm_t *c, void *buf, const size_t *counts,
                                           rt_dtype dtype, void *stream)
{
    return nc_recorded(c, nc_allgather_v_ring(c, buf, counts, dtype, stream), "allgather_v",
                       c ? nc_sum_counts(c, counts) : 0, dtype, stream);
}

extern "C" rt_status nccl_allreduce_ref(nccl_comm_t *c, const void *send, void *recv,
                                        size_t count, rt_dtype dtype, coll_op op, void *stream)
{
    return nc_recorded(c, nc_allreduce_ref(c, send, recv, count, dtype, op, stream),
                       "ncclAllReduce", count, dtype, stream);
}

/* Polls the stream: 50 us naps for the first 100 ms, longer than a step's
 * exchange normally waits, so finishing costs little latency; then 1 ms
 * naps, so that a rank waiting on a stalled peer leaves the CPU to others
 * (the host collectives back off the same way). */
#define NC_WAIT_SHORT_NAP_NS (50 * 1000L)
#define NC_WAIT_LONG_NAP_NS (1000 * 1000L)
#define NC_WAIT_SHORT_PHASE_S 0.1

extern "C" rt_status nccl_comm_wait(nccl_comm_t *c, void *stream, double timeout_s)
{
    CHECK_ARG(c != NULL, "nccl_comm_wait: communicator is NULL");
    cudaStream_t s = (cudaStream_t)stream;
    double start = rt_now(), deadline = start + timeout_s;
    double warn_fraction = rt_timeout_warn_fraction();
    int warned = 0;
    for (;;) {
        cudaError_t q = cudaStreamQuery(s);
        double now = rt_now();
        if (q == cudaSuccess) {
            nccl_history_all_done(&c->hist, now);
            return RT_OK;
        }
        if (q != cudaErrorNotReady) {
            nccl_history_print(&c->hist, "after a CUDA error in the wait", now);
            nccl_comm_abort(c);
            return rt_fail(RT_ERR_CUDA, "rank %d: waiting for the all-reduce: %s", c->rank,
                           cudaGetErrorString(q));
        }
        if (c->nccl == NULL)
            return rt_fail(RT_ERR_NCCL, "rank %d: communicator was aborted", c->rank);
        ncclResult_t async = ncclSuccess;
        ncclResult_t rc = ncclCommGetAsyncError(c->nccl, &async);
        if (rc != ncclSuccess || (async != ncclSuccess && async != ncclInProgress)) {
            nccl_history_print(&c->hist, "after an NCCL error", now);
            nccl_comm_abort(c);
            return rt_fail(RT_ERR_NCCL, "rank %d: NCCL asynchronous error: %s; communicator aborted",
                           c->rank, ncclGetErrorString(rc != ncclSuccess ? rc : async));
        }
        nccl_history_poll(&c->hist, nc_hist_query, c, now);
        if (!warned && timeout_s > 0 && warn_fraction > 0 &&
            now - start > warn_fraction * timeout_s) {
            warned = 1;
            char line[512];
            nccl_history_stall_line(&c->hist, now - start, warn_fraction, timeout_s, line,
                                    sizeof line);
            LOG_WARN("%s", line);
        }
        if (timeout_s > 0 && now > deadline) {
            nccl_history_print(&c->hist, "after the wait timed out", now);
            const nccl_hist_entry *e = nccl_history_oldest_pending(&c->hist);
            char what[96] = "all-reduce";
            if (e)
                snprintf(what, sizeof what, "device %s #%llu", e->kind,
                         (unsigned long long)e->seq);
            nccl_comm_abort(c);
            return rt_fail(RT_ERR_TIMEOUT,
                           "rank %d: %s did not finish within %.1f s (a peer is missing "
                           "or stuck); communicator aborted", c->rank, what, timeout_s);
        }
        struct timespec nap = {
            0, now - start < NC_WAIT_SHORT_PHASE_S ? NC_WAIT_SHORT_NAP_NS : NC_WAIT_LONG_NAP_NS};
        nanosleep(&nap, NULL);
    }
}
