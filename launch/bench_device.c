/* bench_device.c - `ringtrain bench allreduce --backend nccl` (and the device
 * half of --backend all): our device ring all-reduce (nccl_allreduce_ring,
 * built on ncclSend/ncclRecv plus our reduction kernel) and ncclAllReduce
 * (nccl_allreduce_ref) side by side on device buffers, f32 sum, out of
 * place, in the host bench's nccl-tests-like table. Each rank uses GPU
 * (node-local rank % visible devices). Each call is timed with CUDA events
 * on the stream, waited for with the collective timeout (nccl_comm_wait
 * aborts the communicator rather than hang), and its result is copied back
 * and compared exactly with the closed form of the integer-valued inputs.
 * Backends alternate per iteration like the host bench; the median of the
 * slowest rank's time is reported. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "collectives/nccl_comm.h"
#include "common/check.h"
#include "launch/bench_device.h"
#include "launch/bench_inputs.h"
#include "trainer/ops/device.h"

enum { DV_RING, DV_NCCL, DV_COUNT };
static const char *const dv_names[DV_COUNT] = {"ring", "nccl"};

rt_status bench_device_check(void)
{
    if (!device_cuda_compiled())
        return rt_fail(RT_ERR_USAGE, "--backend nccl: this build has no CUDA path (configure with RT_CUDA=ON; "
                                     "ring, mpi and all work without it)");
    int n = 0;
    TRY(device_count(RT_DEVICE_CUDA, &n));
    if (n == 0) {
        const char *vis = getenv("CUDA_VISIBLE_DEVICES");
        return rt_fail(RT_ERR_CUDA, "--backend nccl: no CUDA device is visible%s%s%s",
                       vis ? " (CUDA_VISIBLE_DEVICES='" : "", vis ? vis : "", vis ? "')" : "");
    }
    return RT_OK;
}

rt_status bench_device_available(coll_comm_t *c, bool *ok, char *why, size_t why_size)
{
    /* 0: usable; the larger code wins so that every rank reports the same cause */
    int devices = 0, code = 0, worst = 0;
    if (!device_cuda_compiled())
        code = 3;
    else if (device_count(RT_DEVICE_CUDA, &devices) != RT_OK || devices == 0)
        code = 2;
    else if (coll_local_size(c) > devices)
        code = 1;
    CHECK_MPI(MPI_Allreduce(&code, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    *ok = worst == 0;
    const char *text = worst == 3 ? "this build has no CUDA path"
                     : worst == 2 ? "no CUDA device is visible (on at least one rank)"
                     : worst == 1 ? "more ranks on a node than visible GPUs (NCCL needs a GPU per rank)"
                                  : "";
    snprintf(why, why_size, "%s", text);
    return RT_OK;
}

typedef struct {
    nccl_comm_t *nc;
    rt_device_t *dev;
    void *stream;
    device_timer_t *timer;
    void *dx, *dy;  /* device input and output, max_bytes each */
    float *hy;      /* host copy of the output for the check */
    double timeout_s;
} dev_ctx_t;

/* One call of backend b on count elements into d->dy, waited for with the
 * collective timeout; *seconds: this rank's CUDA-event time. */
static rt_status run_once(dev_ctx_t *d, int b, size_t count, double *seconds)
{
    TRY(device_timer_start(d->timer));
    if (b == DV_RING)
        TRY(nccl_allreduce_ring(d->nc, d->dx, d->dy, count, RT_DTYPE_F32, COLL_SUM, d->stream));
    else
        TRY(nccl_allreduce_ref(d->nc, d->dx, d->dy, count, RT_DTYPE_F32, COLL_SUM, d->stream));
    TRY(device_timer_stop(d->timer));
    TRY(nccl_comm_wait(d->nc, d->stream, d->timeout_s));
    return device_timer_elapsed(d->timer, seconds);
}

/* One size: a warm-up call per backend, then iters timed and checked calls
 * per backend, alternating. */
static rt_status bench_size(dev_ctx_t *d, int n, size_t count, int iters, double *times,
                            double time_s[DV_COUNT], size_t wrong[DV_COUNT])
{
    double t;
    for (int b = 0; b < DV_COUNT; b++) {
        wrong[b] = 0;
        TRY(run_once(d, b, count, &t));
    }
    for (int it = 0; it < iters; it++) {
        for (int b = 0; b < DV_COUNT; b++) {
            TRY(device_fill(d->dev, d->dy, 0xff, count * sizeof(float))); /* NaN: a skipped write shows */
            CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));
            TRY(run_once(d, b, count, &t));
            CHECK_MPI(MPI_Allreduce(&t, &times[b * iters + it], 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
            TRY(device_download(d->dev, d->hy, d->dy, count * sizeof(float)));
            size_t local = bench_count_wrong(d->hy, count, n), all = 0;
            CHECK_MPI(MPI_Allreduce(&local, &all, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD));
            wrong[b] += all;
        }
    }
    for (int b = 0; b < DV_COUNT; b++) {
        double *tb = &times[b * iters];
        qsort(tb, (size_t)iters, sizeof(double), bench_cmp_double);
        time_s[b] = iters % 2 ? tb[iters / 2] : 0.5 * (tb[iters / 2 - 1] + tb[iters / 2]);
    }
    return RT_OK;
}

static void print_header(int n, int iters, int device, int local_rank, int devices)
{
    printf("# ringtrain bench allreduce, device buffers: np=%d, float32 sum, out of place, median of %d"
           " iterations (slowest rank, CUDA events)\n", n, iters);
    printf("# rank 0 on cuda:%d (node-local rank %d %% %d visible GPUs); busbw = algbw * 2(n-1)/n;"
           " ratio = ncclAllReduce time / ring time (> 1: ours is faster)\n", device, local_rank, devices);
    if (n == 1)
        printf("# np=1: both are a device-to-device copy (busbw is 0 by definition)\n");
    printf("#%23s  %-33s  %-33s\n", "", "ring (ours, ncclSend/Recv), GB/s", "ncclAllReduce, GB/s");
    printf("#%11s %11s", "size(B)", "count");
    for (int b = 0; b < DV_COUNT; b++)
        printf("  %10s %7s %7s %6s", "time(us)", "algbw", "busbw", "#wrong");
    printf("  %6s\n", "ratio");
}

static void print_row(bool json, size_t bytes, size_t count, int n, const double time_s[DV_COUNT],
                      const size_t wrong[DV_COUNT])
{
    double alg[DV_COUNT], bus[DV_COUNT];
    for (int b = 0; b < DV_COUNT; b++) {
        alg[b] = (double)bytes / time_s[b] / 1e9;
        bus[b] = alg[b] * 2.0 * (n - 1) / n;
    }
    double ratio = time_s[DV_NCCL] / time_s[DV_RING];
    if (json) {
        printf("{\"size\":%zu,\"count\":%zu,\"np\":%d,\"buffers\":\"device\"", bytes, count, n);
        for (int b = 0; b < DV_COUNT; b++)
            printf(",\"%s\":{\"time_us\":%.2f,\"algbw_gbps\":%.4f,\"busbw_gbps\":%.4f,\"wrong\":%zu}",
                   dv_names[b], time_s[b] * 1e6, alg[b], bus[b], wrong[b]);
        printf(",\"ratio\":%.3f}\n", ratio);
        return;
    }
    printf("%12zu %11zu", bytes, count);
    for (int b = 0; b < DV_COUNT; b++)
        printf("  %10.1f %7.3f %7.3f %6zu", time_s[b] * 1e6, alg[b], bus[b], wrong[b]);
    printf("  %6.2f\n", ratio);
}

rt_status bench_device_run(coll_comm_t *c, const bench_device_opts_t *o, size_t *wrong)
{
    *wrong = 0;
    int n = coll_size(c), rank = coll_rank(c), devices = 0;
    TRY(device_count(RT_DEVICE_CUDA, &devices));
    if (devices < 1)
        return rt_fail(RT_ERR_CUDA, "rank %d: no CUDA device is visible", rank);
    int device = coll_local_rank(c) % devices;
    size_t max_bytes = (size_t)o->max_bytes & ~(size_t)3, max_count = max_bytes / 4;
    dev_ctx_t d = {.timeout_s = coll_timeout(c)};
    float *hx = malloc(max_bytes);
    double *times = malloc(sizeof(double) * (size_t)o->iters * DV_COUNT);
    d.hy = malloc(max_bytes);
    rt_status st = RT_OK;
    if (!hx || !d.hy || !times) {
        st = rt_fail(RT_ERR_NOMEM, "rank %d: bench: cannot allocate 2 x %zu host bytes", rank, max_bytes);
        goto out;
    }
    device_config_t dc = {.kind = RT_DEVICE_CUDA, .ordinal = device};
    TRY_GOTO(st, nccl_comm_create(&d.nc, MPI_COMM_WORLD, device), out);
    TRY_GOTO(st, device_open(&d.dev, &dc), out);
    d.stream = device_stream(d.dev);
    TRY_GOTO(st, device_timer_create(d.dev, &d.timer), out);
    TRY_GOTO(st, device_alloc(d.dev, &d.dx, max_bytes, "bench input"), out);
    TRY_GOTO(st, device_alloc(d.dev, &d.dy, max_bytes, "bench output"), out);
    bench_fill_input(hx, max_count, rank);
    TRY_GOTO(st, device_upload(d.dev, d.dx, hx, max_bytes), out);
    if (rank == 0 && !o->json) {
        print_header(n, o->iters, device, coll_local_rank(c), devices);
        fflush(stdout);
    }
    for (int64_t bytes = o->min_bytes; bytes <= o->max_bytes; bytes *= 2) {
        size_t count = (size_t)bytes / 4;
        double time_s[DV_COUNT];
        size_t w[DV_COUNT];
        TRY_GOTO(st, bench_size(&d, n, count, o->iters, times, time_s, w), out);
        *wrong += w[DV_RING] + w[DV_NCCL];
        if (rank == 0) {
            print_row(o->json, count * 4, count, n, time_s, w);
            fflush(stdout);
        }
        if (bytes > INT64_MAX / 2)
            break;
    }
out:
    if (st != RT_OK && d.nc != NULL) {
        /* Peers see an error instead of waiting for us. The device buffers
         * are left to process exit: cudaFree synchronizes the device, and
         * work stuck behind a dead peer must not hang this rank's exit. */
        nccl_comm_abort(d.nc);
    } else if (d.dev) {
        device_free(d.dev, d.dx);
        device_free(d.dev, d.dy);
        device_timer_destroy(d.timer);
        device_close(d.dev);
        nccl_comm_destroy(d.nc);
    } else {
        nccl_comm_destroy(d.nc);
    }
    free(hx);
    free(d.hy);
    free(times);
    return st;
}
