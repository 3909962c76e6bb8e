/* test_nccl_allreduce.c - the device ring all-reduce (nccl_allreduce_ring)
 * against ncclAllReduce and against a host reference computed in double from
 * the same data, for f32 and bf16, sum and average, counts {0, 1, 2, 1000003,
 * 4194304}, out of place and in place, and with a small odd chunk size so the
 * pipelined reduce-scatter runs many chunks when there are several ranks.
 * Then the in-place uneven-chunk calls (nccl_reduce_scatter_v_ring,
 * nccl_allgather_v_ring, and the two in a row) against the host reference
 * for count patterns with empty chunks (this rank's own included), one rank
 * owning everything, tiny and multi-chunk totals; the allgather exactly.
 *
 * Every rank regenerates every rank's input from the broadcast seed, so each
 * can check the full result. Outputs are poisoned with NaN (0xFF bytes)
 * before each run. Tolerances: one rank is a copy, so results must be exact;
 * with n ranks f32 allows atol 1e-6*n + rtol 1e-6, bf16 (rounded once per
 * ring step) atol n*2^-8 + rtol 2^-7 on inputs in [-1, 1].
 *
 * Exits 77 (skipped) without a CUDA device, and also when several ranks
 * share one GPU and NCCL refuses that (it does: "Duplicate GPU detected");
 * it says so, so that the log shows which multi-rank paths ran. With
 * --distinct-host-ids, ranks that share a GPU each set their own NCCL_HOSTID,
 * so NCCL treats them as separate hosts and connects them through its socket
 * transport on loopback: the multi-rank ring then runs for real on one GPU
 * (only the transport differs from a multi-GPU machine). */
/* Host-to-device copies and memsets run on the legacy default stream, which
 * does not order with the non-blocking streams the library uses: each one is
 * followed by cudaDeviceSynchronize(). */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <cuda_runtime_api.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collectives/nccl_comm.h"
#include "trainer/ops/device.h"
#include "common/dtype.h"
#include "common/status.h"
#include "test_util.h"

#define TCUDA(call) \
    do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { \
         fprintf(stderr, "FATAL %s:%d %s: %s\n", __FILE__, __LINE__, #call, \
                 cudaGetErrorString(e_)); MPI_Abort(MPI_COMM_WORLD, 1); } } while (0)

static int world_rank, world_size;

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Rank r's input element i as a float (bf16-representable for bf16). */
static void fill_input(float *x, size_t n, uint64_t seed, int r, rt_dtype dtype)
{
    uint64_t s = seed * 1000003ull + (uint64_t)r * 7919ull + 1;
    for (size_t i = 0; i < n; i++) {
        float v = (float)((splitmix(&s) >> 40) * (2.0 / 16777216.0) - 1.0);
        x[i] = dtype == RT_DTYPE_BF16 ? rt_bf16_to_float(rt_bf16_from_float(v)) : v;
    }
}

static void *to_device_bytes(const float *x, size_t n, rt_dtype dtype)
{
    size_t esz = dtype == RT_DTYPE_BF16 ? 2 : 4;
    void *host = malloc(n * esz + 1), *dev = NULL;
    if (!host) MPI_Abort(MPI_COMM_WORLD, 1);
    if (dtype == RT_DTYPE_BF16)
        for (size_t i = 0; i < n; i++)
            ((uint16_t *)host)[i] = rt_bf16_from_float(x[i]);
    else
        memcpy(host, x, n * esz);
    TCUDA(cudaMalloc(&dev, n * esz + 4));
    TCUDA(cudaMemcpy(dev, host, n * esz, cudaMemcpyHostToDevice));
    TCUDA(cudaDeviceSynchronize());
    free(host);
    return dev;
}

static void *poisoned(size_t n, rt_dtype dtype)
{
    size_t bytes = n * (dtype == RT_DTYPE_BF16 ? 2 : 4) + 4;
    void *dev = NULL;
    TCUDA(cudaMalloc(&dev, bytes));
    TCUDA(cudaMemset(dev, 0xFF, bytes));
    TCUDA(cudaDeviceSynchronize());
    return dev;
}

static float *to_host_f32(const void *dev, size_t n, rt_dtype dtype)
{
    size_t esz = dtype == RT_DTYPE_BF16 ? 2 : 4;
    void *raw = malloc(n * esz + 1);
    float *out = malloc(n * sizeof(float) + 1);
    if (!raw || !out) MPI_Abort(MPI_COMM_WORLD, 1);
    TCUDA(cudaMemcpy(raw, dev, n * esz, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++)
        out[i] = dtype == RT_DTYPE_BF16 ? rt_bf16_to_float(((uint16_t *)raw)[i]) : ((float *)raw)[i];
    free(raw);
    return out;
}

/* max |got - want| / (atol + rtol |want|); NaN counts as infinite. */
static double worst_ratio(const float *got, const double *want, size_t n, double atol, double rtol)
{
    double w = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        double tol = atol + rtol * fabs(want[i]);
        double r = isnan(got[i]) ? INFINITY : (tol > 0 ? d / tol : (d > 0 ? INFINITY : 0.0));
        if (r > w)
            w = r;
    }
    return w;
}

static rt_status run_one(nccl_comm_t *c, int ring, const void *send, void *recv, size_t count,
                         rt_dtype dtype, coll_op op, cudaStream_t s)
{
    rt_status st = ring ? nccl_allreduce_ring(c, send, recv, count, dtype, op, s)
                        : nccl_allreduce_ref(c, send, recv, count, dtype, op, s);
    if (st != RT_OK)
        return st;
    return nccl_comm_wait(c, s, 60.0);
}

static void check_case(nccl_comm_t *c, cudaStream_t s, uint64_t seed, size_t count, rt_dtype dtype,
                       coll_op op, int in_place, const char *note)
{
    const int n = world_size;
    float *mine = malloc(count * sizeof(float) + 4), *tmp = malloc(count * sizeof(float) + 4);
    double *want = calloc(count + 1, sizeof(double));
    if (!mine || !tmp || !want) MPI_Abort(MPI_COMM_WORLD, 1);
    fill_input(mine, count, seed, world_rank, dtype);
    for (int r = 0; r < n; r++) {
        fill_input(tmp, count, seed, r, dtype);
        for (size_t i = 0; i < count; i++)
            want[i] += tmp[i];
    }
    if (op == COLL_AVG)
        for (size_t i = 0; i < count; i++)
            want[i] /= n;
    double atol, rtol;
    if (n == 1) {
        atol = 0; rtol = 0; /* a copy: exact */
    } else if (dtype == RT_DTYPE_BF16) {
        atol = n / 256.0; rtol = 1.0 / 128;
    } else {
        atol = 1e-6 * n; rtol = 1e-6;
    }

    void *send = to_device_bytes(mine, count, dtype);
    void *recv_ring = in_place ? send : poisoned(count, dtype);
    void *recv_ref = poisoned(count, dtype);
    rt_status st_ring = run_one(c, 1, send, recv_ring, count, dtype, op, s);
    if (st_ring != RT_OK)
        fprintf(stderr, "r%d ring: %s\n", world_rank, rt_last_error());
    rt_status st_ref = RT_OK;
    if (!in_place) { /* the reference reads the untouched send buffer */
        st_ref = run_one(c, 0, send, recv_ref, count, dtype, op, s);
        if (st_ref != RT_OK)
            fprintf(stderr, "r%d ref: %s\n", world_rank, rt_last_error());
    }
    float *got_ring = to_host_f32(recv_ring, count, dtype);
    float *got_ref = in_place ? NULL : to_host_f32(recv_ref, count, dtype);
    double e_ring = worst_ratio(got_ring, want, count, atol, rtol);
    double e_ref = got_ref ? worst_ratio(got_ref, want, count, atol, rtol) : 0.0;
    /* ring against NCCL itself, element by element */
    double e_vs = 0.0;
    if (got_ref) {
        double *ref_d = malloc((count + 1) * sizeof(double));
        if (!ref_d) MPI_Abort(MPI_COMM_WORLD, 1);
        for (size_t i = 0; i < count; i++)
            ref_d[i] = got_ref[i];
        e_vs = worst_ratio(got_ring, ref_d, count, 2 * atol, 2 * rtol);
        free(ref_d);
    }
    int ok = st_ring == RT_OK && st_ref == RT_OK && e_ring <= 1.0 && e_ref <= 1.0 && e_vs <= 1.0;
    int all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (world_rank == 0)
        printf("allreduce np=%d %-4s %s count=%-8zu %-8s %-9s ring/host err/tol=%.3g  "
               "nccl/host=%.3g  ring/nccl=%.3g  %s\n",
               n, rt_dtype_name(dtype), op == COLL_AVG ? "avg" : "sum", count,
               in_place ? "inplace" : "outplace", note, e_ring, e_ref, e_vs, all_ok ? "ok" : "FAIL");
    EXPECT(ok, "rank %d: count %zu dtype %s op %d in_place %d: ring %.3g nccl %.3g ring/nccl %.3g "
           "(status ring %d ref %d)", world_rank, count, rt_dtype_name(dtype), (int)op, in_place, e_ring, e_ref, e_vs,
           (int)st_ring, (int)st_ref);

    free(mine); free(tmp); free(want); free(got_ring); free(got_ref);
    cudaFree(send);
    if (!in_place)
        cudaFree(recv_ring);
    cudaFree(recv_ref);
}

/* ---- the in-place uneven-chunk calls ------------------------------------ */

/* Count pattern `which` for n ranks (the same on every rank). */
static const char *v_counts(int which, int n, size_t *counts)
{
    static const char *names[] = {"even", "uneven", "odd-ranks-empty", "rank0-empty",
                                  "all-empty", "last-owns-all", "tiny", "large-uneven",
                                  "large-with-empty"};
    for (int i = 0; i < n; i++) {
        size_t v = 0;
        switch (which) {
        case 0: v = 1000; break;
        case 1: v = (size_t)(37 * i + 11); break;
        case 2: v = i % 2 ? 0 : (size_t)(513 + i); break;
        case 3: v = i == 0 ? 0 : (size_t)(300 + i); break;
        case 4: v = 0; break;
        case 5: v = i == n - 1 ? 1234 : 0; break;
        case 6: v = (size_t)(i % 3); break;
        case 7: v = 1000003 + 65537 * (size_t)i; break;
        case 8: v = i % 2 ? 0 : (size_t)(2000003 + i); break;
        }
        counts[i] = v;
    }
    return names[which];
}
enum { V_PATTERNS = 9 };

/* Copies n host floats to dev at element offset off, as dtype. */
static void upload_at(void *dev, size_t off, const float *x, size_t n, rt_dtype dtype)
{
    if (n == 0)
        return;
    void *tmp = to_device_bytes(x, n, dtype);
    size_t esz = dtype == RT_DTYPE_BF16 ? 2 : 4;
    TCUDA(cudaMemcpy((char *)dev + off * esz, tmp, n * esz, cudaMemcpyDeviceToDevice));
    TCUDA(cudaDeviceSynchronize());
    TCUDA(cudaFree(tmp));
}

/* mode 0: nccl_reduce_scatter_v_ring, this rank's chunk against the host
 * sum (or average) in double; mode 1: nccl_allgather_v_ring on a buffer
 * that is NaN outside this rank's chunk, every chunk exactly its owner's
 * input; mode 2: reduce-scatter then allgather on one buffer (the ZeRO-1
 * pair), every element against the host all-reduce. Every rank regenerates
 * every rank's input from the seed. */
static void check_v_case(nccl_comm_t *c, cudaStream_t s, uint64_t seed, int pattern, rt_dtype dtype,
                         coll_op op, int mode, const char *note)
{
    const int n = world_size;
    size_t counts[64], offs[64], total = 0;
    if (n > 64) MPI_Abort(MPI_COMM_WORLD, 1);
    const char *pat = v_counts(pattern, n, counts);
    for (int r = 0; r < n; r++) {
        offs[r] = total;
        total += counts[r];
    }
    float *mine = malloc(total * sizeof(float) + 4), *tmp = malloc(total * sizeof(float) + 4);
    double *want = calloc(total + 1, sizeof(double));
    if (!mine || !tmp || !want) MPI_Abort(MPI_COMM_WORLD, 1);
    fill_input(mine, total, seed, world_rank, dtype);
    for (int r = 0; r < n; r++) {
        fill_input(tmp, total, seed, r, dtype);
        for (size_t i = 0; i < total; i++) {
            if (mode == 1) {
                if (i >= offs[r] && i < offs[r] + counts[r])
                    want[i] = tmp[i];
            } else {
                want[i] += tmp[i];
            }
        }
    }
    if (mode != 1 && op == COLL_AVG)
        for (size_t i = 0; i < total; i++)
            want[i] /= n;
    double atol = 0, rtol = 0; /* one rank, and any allgather: exact */
    if (n > 1 && mode != 1) {
        if (dtype == RT_DTYPE_BF16) {
            atol = n / 256.0; rtol = 1.0 / 128;
        } else {
            atol = 1e-6 * n; rtol = 1e-6;
        }
    }
    void *buf;
    if (mode == 1) {
        buf = poisoned(total, dtype);
        upload_at(buf, offs[world_rank], mine + offs[world_rank], counts[world_rank], dtype);
    } else {
        buf = to_device_bytes(mine, total, dtype);
    }
    rt_status st = RT_OK;
    if (mode != 1)
        st = nccl_reduce_scatter_v_ring(c, buf, counts, dtype, op, s);
    if (st == RT_OK && mode != 0)
        st = nccl_allgather_v_ring(c, buf, counts, dtype, s);
    if (st == RT_OK)
        st = nccl_comm_wait(c, s, 60.0);
    if (st != RT_OK)
        fprintf(stderr, "r%d %s: %s\n", world_rank, pat, rt_last_error());
    float *got = to_host_f32(buf, total, dtype);
    /* reduce-scatter alone: only this rank's chunk is specified */
    size_t from = mode == 0 ? offs[world_rank] : 0, len = mode == 0 ? counts[world_rank] : total;
    double e = worst_ratio(got + from, want + from, len, atol, rtol);
    int ok = st == RT_OK && e <= 1.0, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    static const char *modes[] = {"reduce_scatter_v", "allgather_v", "rs_v+ag_v"};
    if (world_rank == 0)
        printf("%-16s np=%d %-4s %s %-16s total=%-8zu %-9s err/tol=%.3g  %s\n", modes[mode], n,
               rt_dtype_name(dtype), op == COLL_AVG ? "avg" : "sum", pat, total, note, e,
               all_ok ? "ok" : "FAIL");
    EXPECT(ok, "rank %d: %s %s %s %s: err/tol %.3g, status %d", world_rank, modes[mode], pat,
           rt_dtype_name(dtype), op == COLL_AVG ? "avg" : "sum", e, (int)st);
    free(mine); free(tmp); free(want); free(got);
    TCUDA(cudaFree(buf));
}

static void check_v_all(nccl_comm_t *c, cudaStream_t s, uint64_t seed, const char *note)
{
    static const rt_dtype dtypes[] = {RT_DTYPE_F32, RT_DTYPE_BF16};
    for (int p = 0; p < V_PATTERNS; p++)
        for (int di = 0; di < 2; di++) {
            uint64_t sd = seed + (uint64_t)p * 131 + (uint64_t)di * 17;
            check_v_case(c, s, sd, p, dtypes[di], COLL_SUM, 0, note);
            check_v_case(c, s, sd + 1, p, dtypes[di], COLL_AVG, 0, note);
            check_v_case(c, s, sd + 2, p, dtypes[di], COLL_SUM, 1, note);
            check_v_case(c, s, sd + 3, p, dtypes[di], COLL_AVG, 2, note);
        }
}

/* Refused before any transfer, on every rank alike: nothing may hang. */
static void check_v_bad_args(nccl_comm_t *c, cudaStream_t s)
{
    size_t counts[64] = {0};
    float *d = NULL;
    TCUDA(cudaMalloc((void **)&d, 16));
    EXPECT(nccl_reduce_scatter_v_ring(c, d, NULL, RT_DTYPE_F32, COLL_SUM, s) == RT_ERR_INVALID,
           "NULL counts: %s", rt_last_error());
    EXPECT(nccl_allgather_v_ring(c, d, counts, RT_DTYPE_U8, s) == RT_ERR_INVALID,
           "u8: %s", rt_last_error());
    EXPECT(nccl_reduce_scatter_v_ring(c, d, counts, RT_DTYPE_F32, (coll_op)9, s) == RT_ERR_INVALID,
           "unknown op: %s", rt_last_error());
    counts[0] = 4;
    EXPECT(nccl_allgather_v_ring(c, NULL, counts, RT_DTYPE_F32, s) == RT_ERR_INVALID,
           "NULL buffer: %s", rt_last_error());
    EXPECT(nccl_reduce_scatter_v_ring(NULL, d, counts, RT_DTYPE_F32, COLL_SUM, s) == RT_ERR_INVALID,
           "NULL communicator: %s", rt_last_error());
    TCUDA(cudaFree(d));
}

/* Blocks a stream from the host side for a while: a stand-in for a peer
 * that never arrives. */
static void CUDART_CB host_sleep(void *arg)
{
    struct timespec ts = {*(int *)arg, 0};
    nanosleep(&ts, NULL);
}

/* nccl_comm_wait must give up at its deadline, abort the communicator and
 * say so, and later calls must refuse to run on the aborted communicator. */
static void check_wait_timeout(int device)
{
    nccl_comm_t *c = NULL;
    if (nccl_comm_create(&c, MPI_COMM_WORLD, device) != RT_OK) {
        EXPECT(0, "timeout check: nccl_comm_create: %s", rt_last_error());
        return;
    }
    cudaStream_t s;
    TCUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    static int sleep_s = 3;
    TCUDA(cudaLaunchHostFunc(s, host_sleep, &sleep_s));
    double t0 = MPI_Wtime();
    rt_status st = nccl_comm_wait(c, s, 0.5);
    double waited = MPI_Wtime() - t0;
    /* The stand-in blocks the stream with a host function, which
     * ncclCommAbort cannot interrupt (it can stop NCCL's own kernels, not a
     * host callback), so the call returns once the callback ends: the
     * deadline is checked by "not before 0.5 s" and by the TIMEOUT status
     * rather than by the return time. */
    int ok = st == RT_ERR_TIMEOUT && waited >= 0.45 && waited < sleep_s + 2.0;
    printf("wait-timeout: status=%s after %.2f s (deadline 0.5 s): %s\n", rt_status_name(st),
           waited, ok ? "ok" : "FAIL");
    EXPECT(ok, "nccl_comm_wait: status %d after %.2f s, want timeout after ~0.5 s (%s)", (int)st,
           waited, rt_last_error());
    EXPECT(strstr(rt_last_error(), "aborted") != NULL, "timeout message: %s", rt_last_error());
    float *d = NULL;
    TCUDA(cudaMalloc((void **)&d, 16));
    st = nccl_allreduce_ring(c, d, d, 4, RT_DTYPE_F32, COLL_SUM, s);
    EXPECT(st == RT_ERR_NCCL, "all-reduce on an aborted communicator: status %d", (int)st);
    TCUDA(cudaStreamSynchronize(s)); /* let the host function finish */
    TCUDA(cudaFree(d));
    TCUDA(cudaStreamDestroy(s));
    nccl_comm_destroy(c);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);

    int devices = 0;
    if (device_count(RT_DEVICE_CUDA, &devices) != RT_OK)
        devices = 0;
    if (devices == 0) {
        if (world_rank == 0)
            printf("SKIP: no CUDA device\n");
        MPI_Finalize();
        return 77;
    }
    int device = world_rank % devices;
    int shared = world_size > devices;
    int host_ids = argc > 1 && strcmp(argv[1], "--distinct-host-ids") == 0;
    if (world_rank == 0)
        printf("test_nccl_allreduce: %d rank(s), %d visible GPU(s)%s\n", world_size, devices,
               shared ? ": ranks share GPUs" : "");
    if (shared && host_ids) {
        /* NCCL refuses two ranks on one GPU of one host. A distinct
         * NCCL_HOSTID per rank makes it see n hosts, so the ranks talk over
         * its socket transport on loopback: the multi-rank ring (matching,
         * chunking, reductions, stream ordering) really runs, while P2P,
         * NVLink and shared-memory transports do not, and times mean nothing. */
        char id[64];
        snprintf(id, sizeof id, "ringtrain-test-rank%d", world_rank);
        setenv("NCCL_HOSTID", id, 1);
        setenv("NCCL_SOCKET_IFNAME", "lo", 0);
        setenv("NCCL_IB_DISABLE", "1", 0);
        if (world_rank == 0)
            printf("np=%d on %d GPU(s) with a distinct NCCL_HOSTID per rank: NCCL socket "
                   "transport on loopback (not P2P/NVLink/SHM)\n", world_size, devices);
    }

    nccl_comm_t *c = NULL;
    rt_status st = nccl_comm_create(&c, MPI_COMM_WORLD, device);
    int failed = st != RT_OK, any_failed = 0;
    MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (any_failed) {
        fprintf(stderr, "rank %d: nccl_comm_create: %s\n", world_rank,
                failed ? rt_last_error() : "ok here, failed on another rank");
        if (c) {
            nccl_comm_abort(c);
            nccl_comm_destroy(c);
        }
        if (shared) {
            if (world_rank == 0)
                printf("SKIP: np=%d on %d GPU(s): NCCL refused ranks sharing a GPU; the "
                       "multi-rank ring path was NOT exercised\n", world_size, devices);
            MPI_Finalize();
            return 77;
        }
        MPI_Finalize();
        return 1;
    }
    if (world_rank == 0)
        printf("multi-rank ring path: %s\n", world_size > 1 ? "EXERCISED (np > 1)"
               : "not exercised at np=1 (the ring is a copy); ncclAllReduce compared too");
    fflush(stdout);

    cudaStream_t s;
    TCUDA(cudaSetDevice(device));
    TCUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    uint64_t seed = (uint64_t)time(NULL);
    const char *seed_env = getenv("RT_TEST_SEED");
    if (seed_env)
        seed = strtoull(seed_env, NULL, 0);
    MPI_Bcast(&seed, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (world_rank == 0)
        printf("seed %llu (set RT_TEST_SEED to replay)\n", (unsigned long long)seed);

    static const size_t counts[] = {0, 1, 2, 1000003, 4194304};
    static const rt_dtype dtypes[] = {RT_DTYPE_F32, RT_DTYPE_BF16};
    static const coll_op ops[] = {COLL_SUM, COLL_AVG};
    for (int di = 0; di < 2; di++)
        for (int oi = 0; oi < 2; oi++)
            for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++)
                check_case(c, s, seed + ci * 31 + (uint64_t)oi * 7 + (uint64_t)di, counts[ci],
                           dtypes[di], ops[oi], 0, "chunk=1Mi");
    check_case(c, s, seed + 101, 1000003, RT_DTYPE_F32, COLL_SUM, 1, "chunk=1Mi");
    check_case(c, s, seed + 102, 1000003, RT_DTYPE_BF16, COLL_AVG, 1, "chunk=1Mi");
    /* an odd small chunk: many pipelined chunks per segment and short tails */
    if (nccl_comm_set_chunk_elems(c, 65537) != RT_OK) {
        fprintf(stderr, "rank %d: %s\n", world_rank, rt_last_error());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    check_case(c, s, seed + 103, 4194304, RT_DTYPE_F32, COLL_SUM, 0, "chunk=65537");
    check_case(c, s, seed + 104, 1000003, RT_DTYPE_BF16, COLL_AVG, 1, "chunk=65537");
    /* the uneven-chunk calls, with the odd chunk, then the default one */
    check_v_bad_args(c, s);
    check_v_all(c, s, seed + 1000, "chunk=65537");
    if (nccl_comm_set_chunk_elems(c, (size_t)1 << 20) != RT_OK) {
        fprintf(stderr, "rank %d: %s\n", world_rank, rt_last_error());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    check_v_all(c, s, seed + 2000, "chunk=1Mi");

    TCUDA(cudaStreamDestroy(s));
    nccl_comm_destroy(c);
    if (world_size == 1)
        check_wait_timeout(device);
    int local_failed = test_failed_count, total_failed = 0;
    MPI_Allreduce(&local_failed, &total_failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int rc = TEST_EXIT();
    MPI_Finalize();
    return total_failed ? 1 : rc;
}
