/* bench_nccl_allreduce.c - times our device ring all-reduce against
 * ncclAllReduce, f32, out of place, sizes from MIN to MAX bytes (x4 each
 * step; default 4 KiB .. 256 MiB), and prints a table: median time over the
 * iterations (CUDA events around each call on the stream), algbw = bytes /
 * time and busbw = algbw * 2(n-1)/n as nccl-tests define them. The slower
 * rank's median counts. At np=1 both are a device-to-device copy (ours is a
 * cudaMemcpyAsync), so the table then measures copy speed and call overhead,
 * not communication: the "copy GB/s" column counts bytes read plus written.
 *
 * usage: mpirun -np N bench_nccl_allreduce [MIN_BYTES [MAX_BYTES]]
 * Exits 77 without a CUDA device. This is a benchmark, not a test. */
/* Host-to-device copies and memsets run on the legacy default stream, which
 * does not order with the non-blocking streams the library uses: each one is
 * followed by cudaDeviceSynchronize(). */
#include <cuda_runtime_api.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/nccl_comm.h"
#include "trainer/ops/device.h"
#include "common/status.h"

#define BCUDA(call) \
    do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { \
         fprintf(stderr, "FATAL %s:%d %s: %s\n", __FILE__, __LINE__, #call, \
                 cudaGetErrorString(e_)); MPI_Abort(MPI_COMM_WORLD, 1); } } while (0)
#define BST(call) \
    do { rt_status s_ = (call); if (s_ != RT_OK) { \
         fprintf(stderr, "FATAL %s:%d %s: %s\n", __FILE__, __LINE__, #call, rt_last_error()); \
         MPI_Abort(MPI_COMM_WORLD, 1); } } while (0)

enum { MAX_ITERS = 200 };

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Median microseconds of `iters` calls, after 3 warm-up calls. */
static double time_allreduce(nccl_comm_t *c, int ring, void *send, void *recv, size_t count,
                             int iters, cudaStream_t s, cudaEvent_t *ev)
{
    for (int i = 0; i < 3; i++) {
        BST(ring ? nccl_allreduce_ring(c, send, recv, count, RT_DTYPE_F32, COLL_SUM, s)
                 : nccl_allreduce_ref(c, send, recv, count, RT_DTYPE_F32, COLL_SUM, s));
    }
    BST(nccl_comm_wait(c, s, 120.0));
    for (int i = 0; i < iters; i++) {
        BCUDA(cudaEventRecord(ev[2 * i], s));
        BST(ring ? nccl_allreduce_ring(c, send, recv, count, RT_DTYPE_F32, COLL_SUM, s)
                 : nccl_allreduce_ref(c, send, recv, count, RT_DTYPE_F32, COLL_SUM, s));
        BCUDA(cudaEventRecord(ev[2 * i + 1], s));
    }
    BST(nccl_comm_wait(c, s, 120.0));
    float ms[MAX_ITERS];
    for (int i = 0; i < iters; i++)
        BCUDA(cudaEventElapsedTime(&ms[i], ev[2 * i], ev[2 * i + 1]));
    qsort(ms, (size_t)iters, sizeof ms[0], cmp_float);
    double med = 1e3 * (iters % 2 ? ms[iters / 2] : 0.5 * (ms[iters / 2 - 1] + ms[iters / 2]));
    double worst = 0;
    MPI_Allreduce(&med, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return worst;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    size_t min_b = (size_t)4 << 10, max_b = (size_t)256 << 20;
    if (argc > 1)
        min_b = strtoull(argv[1], NULL, 0);
    if (argc > 2)
        max_b = strtoull(argv[2], NULL, 0);
    if (argc > 3 || min_b < 4 || max_b < min_b) {
        if (rank == 0)
            fprintf(stderr, "usage: bench_nccl_allreduce [MIN_BYTES [MAX_BYTES]] (MIN >= 4, MAX >= MIN)\n");
        MPI_Finalize();
        return 2;
    }
    int devices = 0;
    if (device_count(RT_DEVICE_CUDA, &devices) != RT_OK || devices == 0) {
        if (rank == 0)
            printf("SKIP: no CUDA device\n");
        MPI_Finalize();
        return 77;
    }
    int device = rank % devices;
    nccl_comm_t *c = NULL;
    BST(nccl_comm_create(&c, MPI_COMM_WORLD, device));
    cudaStream_t s;
    BCUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaEvent_t ev[2 * MAX_ITERS];
    for (int i = 0; i < 2 * MAX_ITERS; i++)
        BCUDA(cudaEventCreate(&ev[i]));
    void *send = NULL, *recv = NULL;
    BCUDA(cudaMalloc(&send, max_b));
    BCUDA(cudaMalloc(&recv, max_b));
    /* random-looking, non-zero data (the content does not change a copy or
     * a sum's speed much, but zeros are never what training sends) */
    {
        size_t n = max_b / 4;
        float *h = malloc(max_b);
        if (!h) MPI_Abort(MPI_COMM_WORLD, 1);
        uint32_t x = 2463534242u + (uint32_t)rank;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            h[i] = (float)(x >> 8) * (1.0f / 16777216.0f) - 0.5f;
        }
        BCUDA(cudaMemcpy(send, h, n * 4, cudaMemcpyHostToDevice));
        BCUDA(cudaDeviceSynchronize());
        free(h);
    }

    if (rank == 0) {
        printf("# device all-reduce, f32, out of place, np=%d, median of the iterations, "
               "CUDA events; slowest rank\n", size);
        if (size == 1)
            printf("# np=1: both are a device-to-device copy (ours: cudaMemcpyAsync); "
                   "busbw is 0 by definition; copy GB/s counts read+write\n");
        printf("%12s %6s %11s %11s %10s %10s %10s %10s %9s %9s\n", "bytes", "iters", "ring_us",
               "nccl_us", "ring_GB/s", "nccl_GB/s", "ring_bus", "nccl_bus", "copy_GB/s",
               "nccl/ring");
    }
    for (size_t bytes = min_b; bytes <= max_b; bytes *= 4) {
        size_t count = bytes / 4;
        int iters = bytes <= ((size_t)1 << 20) ? 100 : bytes <= ((size_t)16 << 20) ? 40 : 15;
        MPI_Barrier(MPI_COMM_WORLD);
        double t_ring = time_allreduce(c, 1, send, recv, count, iters, s, ev);
        double t_ref = time_allreduce(c, 0, send, recv, count, iters, s, ev);
        double alg_ring = (double)bytes / (t_ring * 1e-6) / 1e9;
        double alg_ref = (double)bytes / (t_ref * 1e-6) / 1e9;
        double busf = 2.0 * (size - 1) / size;
        if (rank == 0)
            printf("%12zu %6d %11.2f %11.2f %10.2f %10.2f %10.2f %10.2f %9.1f %9.3f\n", bytes,
                   iters, t_ring, t_ref, alg_ring, alg_ref, alg_ring * busf, alg_ref * busf,
                   size == 1 ? 2 * alg_ring : 0.0, t_ref / t_ring);
        if (bytes > max_b / 4)
            break; /* no overflow past max */
    }
    fflush(stdout);
    for (int i = 0; i < 2 * MAX_ITERS; i++)
        BCUDA(cudaEventDestroy(ev[i]));
    BCUDA(cudaFree(send));
    BCUDA(cudaFree(recv));
    BCUDA(cudaStreamDestroy(s));
    nccl_comm_destroy(c);
    MPI_Finalize();
    return 0;
}
