/* cmd_bench.c - `ringtrain bench allreduce`: our ring all-reduce and
 * MPI_Allreduce side by side in one run, a table like nccl-tests' (size,
 * count, time, algbw, busbw = algbw * 2(n-1)/n, #wrong) with the ratio of
 * bus bandwidths per size. Sizes double from --min to --max; each size runs
 * --iters timed iterations per backend, alternating backends so that load
 * from other processes hits both alike, and reports the median of the
 * slowest rank's time. Every timed result is checked against a closed form
 * (float32 sum of integer-valued inputs, exact). --backend nccl runs the
 * same table on device buffers, our device ring against ncclAllReduce
 * (launch/bench_device.c); --backend all runs it after the host table when
 * every rank has a GPU of its own, and otherwise says it was skipped. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "collectives/coll.h"
#include "common/args.h"
#include "common/check.h"
#include "common/timer.h"
#include "launch/bench_inputs.h"
#include "launch/bench_device.h"
#include "launch/commands.h"

enum { BK_RING, BK_MPI, BK_COUNT };
static const char *const backend_names[BK_COUNT] = {"ring", "mpi"};

typedef struct {
    double time_s;   /* median over iterations of the slowest rank's time */
    size_t wrong;
} bench_result_t;

/* Input of rank r at i is (r+1)*(i%17), so the sum is (i%17)*n(n+1)/2:
 * integer-valued, exact in float32 for any sane n. */
static rt_status run_once(int backend, coll_comm_t *c, const float *x, float *y, size_t count,
                          double *elapsed)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = rt_now();
    if (backend == BK_RING) {
        TRY(coll_allreduce(c, x, y, count, RT_DTYPE_F32, COLL_SUM));
    } else {
        CHECK_MPI(MPI_Allreduce(x, y, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    }
    double local = rt_now() - t0;
    CHECK_MPI(MPI_Allreduce(&local, elapsed, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
    return RT_OK;
}

static rt_status bench_size(coll_comm_t *c, const bool use[BK_COUNT], size_t count, int iters,
                            const float *x, float *y, double *times, bench_result_t res[BK_COUNT])
{
    int n = coll_size(c);
    /* Every result is defined, unused backends' as zero: print_row reads
     * only the used ones, but the whole array is this function's output. */
    for (int b = 0; b < BK_COUNT; b++) {
        res[b] = (bench_result_t){0};
        if (use[b]) {
            double t;
            TRY(run_once(b, c, x, y, count, &t)); /* warm-up: page faults, connections */
        }
    }
    for (int it = 0; it < iters; it++) {
        for (int b = 0; b < BK_COUNT; b++) {
            if (!use[b])
                continue;
            memset(y, 0xff, count * sizeof *y);  /* NaN: a skipped write shows */
            TRY(run_once(b, c, x, y, count, &times[b * iters + it]));
            size_t wrong = bench_count_wrong(y, count, n), all = 0;
            CHECK_MPI(MPI_Allreduce(&wrong, &all, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD));
            res[b].wrong += all;
        }
    }
    for (int b = 0; b < BK_COUNT; b++) {
        if (!use[b])
            continue;
        qsort(&times[b * iters], (size_t)iters, sizeof(double), bench_cmp_double);
        res[b].time_s = iters % 2 ? times[b * iters + iters / 2]
                                  : 0.5 * (times[b * iters + iters / 2 - 1] + times[b * iters + iters / 2]);
    }
    return RT_OK;
}

static void print_row(int json, size_t bytes, size_t count, int n, const bool use[BK_COUNT],
                      const bench_result_t res[BK_COUNT])
{
    double alg[BK_COUNT] = {0}, bus[BK_COUNT] = {0};
    for (int b = 0; b < BK_COUNT; b++) {
        if (!use[b])
            continue;
        alg[b] = (double)bytes / res[b].time_s / 1e9;
        bus[b] = alg[b] * 2.0 * (n - 1) / n;
    }
    bool both = use[BK_RING] && use[BK_MPI];
    if (json) {
        printf("{\"size\":%zu,\"count\":%zu,\"np\":%d", bytes, count, n);
        for (int b = 0; b < BK_COUNT; b++)
            if (use[b])
                printf(",\"%s\":{\"time_us\":%.2f,\"algbw_gbps\":%.4f,\"busbw_gbps\":%.4f,\"wrong\":%zu}",
                       backend_names[b], res[b].time_s * 1e6, alg[b], bus[b], res[b].wrong);
        if (both)
            printf(",\"ratio\":%.3f", res[BK_MPI].time_s / res[BK_RING].time_s);
        printf("}\n");
        return;
    }
    printf("%12zu %11zu", bytes, count);
    for (int b = 0; b < BK_COUNT; b++) {
        if (use[b])
            printf("  %10.1f %7.3f %7.3f %6zu", res[b].time_s * 1e6, alg[b], bus[b], res[b].wrong);
    }
    if (both)
        printf("  %6.2f", res[BK_MPI].time_s / res[BK_RING].time_s);
    printf("\n");
}

static rt_status bench_allreduce(int argc, char **argv)
{
    int64_t min_bytes = 4096, max_bytes = 64 << 20;
    int iters = 20;
    const char *backend = "all";
    bool json = false;
    arg_spec specs[] = {
        {"min", ARG_I64, &min_bytes, "BYTES", "smallest message (default 4K; suffixes K, M, G)", false, false},
        {"max", ARG_I64, &max_bytes, "BYTES", "largest message (default 64M); sizes double", false, false},
        {"iters", ARG_INT, &iters, "N", "timed iterations per size and backend (default 20)", false, false},
        {"backend", ARG_STRING, &backend, "B", "ring (ours), mpi (MPI_Allreduce), nccl (device buffers: our device ring and ncclAllReduce) or all (default: all three; nccl when a GPU is visible)", false, false},
        {"json", ARG_FLAG, &json, NULL, "one JSON object per size instead of the table", false, false},
    };
    arg_command cmd = {.prog = "ringtrain bench allreduce",
                       .summary = "Times our ring all-reduce and MPI_Allreduce (float32 sum, host buffers) and, on GPUs, our device ring and ncclAllReduce, under mpirun."};
    TRY(args_parse(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv));
    bool use[BK_COUNT] = {false, false};
    bool dev_need = false, dev_want = false; /* device pair: required (nccl), if possible (all) */
    if (!strcmp(backend, "ring"))
        use[BK_RING] = true;
    else if (!strcmp(backend, "mpi"))
        use[BK_MPI] = true;
    else if (!strcmp(backend, "all"))
        use[BK_RING] = use[BK_MPI] = dev_want = true;
    else if (!strcmp(backend, "nccl"))
        dev_need = dev_want = true;
    else
        return rt_fail(RT_ERR_USAGE, "--backend: '%s' is not ring, mpi, nccl or all", backend);
    if (min_bytes < 4)
        return rt_fail(RT_ERR_USAGE, "--min: %lld bytes is less than one float32 (4 bytes)", (long long)min_bytes);
    if (max_bytes < min_bytes)
        return rt_fail(RT_ERR_USAGE, "--max (%lld) is smaller than --min (%lld)", (long long)max_bytes,
                       (long long)min_bytes);
    if (max_bytes > ((int64_t)1 << 33))
        return rt_fail(RT_ERR_USAGE, "--max: %lld bytes is more than the 8 GiB this benchmark allows",
                       (long long)max_bytes);
    if (iters < 1 || iters > 100000)
        return rt_fail(RT_ERR_USAGE, "--iters: %d is not in 1..100000", iters);
    if (dev_need)
        TRY(bench_device_check()); /* no CUDA path: exit 2; no device: exit 1 */

    TRY(coll_init(NULL, NULL));
    coll_comm_t *c = NULL;
    TRY(coll_comm_world(&c));
    rt_status st = RT_OK;
    bool agreed = false; /* a failure every rank saw alike: no abort needed */
    int n = coll_size(c), rank = coll_rank(c);
    size_t max_count = (size_t)max_bytes / 4, total_wrong = 0;
    float *x = NULL, *y = NULL;
    double *times = NULL;
    if (!use[BK_RING] && !use[BK_MPI])
        goto device;
    x = malloc(max_count * sizeof *x);
    y = malloc(max_count * sizeof *y);
    times = malloc(sizeof(double) * (size_t)iters * BK_COUNT);
    if (!x || !y || !times) {
        st = rt_fail(RT_ERR_NOMEM, "bench: cannot allocate 2 x %lld bytes", (long long)max_bytes);
        goto out_free;
    }
    bench_fill_input(x, max_count, rank);
    if (rank == 0 && !json) {
        printf("# ringtrain bench allreduce: np=%d, float32 sum, out of place, median of %d iterations"
               " (slowest rank)\n", n, iters);
        printf("# busbw = algbw * 2(n-1)/n; ratio = MPI time / ring time (> 1: ours is faster)\n");
        printf("#%23s", "");
        for (int b = 0; b < BK_COUNT; b++)
            if (use[b])
                printf("  %-33s", b == BK_RING ? "ring (ours), GB/s" : "MPI_Allreduce, GB/s");
        printf("\n#%11s %11s", "size(B)", "count");
        for (int b = 0; b < BK_COUNT; b++)
            if (use[b])
                printf("  %10s %7s %7s %6s", "time(us)", "algbw", "busbw", "#wrong");
        if (use[BK_RING] && use[BK_MPI])
            printf("  %6s", "ratio");
        printf("\n");
    }
    for (int64_t bytes = min_bytes; bytes <= max_bytes; bytes *= 2) {
        size_t count = (size_t)bytes / 4;
        bench_result_t res[BK_COUNT];
        st = bench_size(c, use, count, iters, x, y, times, res);
        if (st != RT_OK)
            goto out_free;
        for (int b = 0; b < BK_COUNT; b++)
            if (use[b])
                total_wrong += res[b].wrong;
        if (rank == 0) {
            print_row(json, count * 4, count, n, use, res);
            fflush(stdout);
        }
        if (bytes > INT64_MAX / 2)
            break;
    }
device:
    free(x); /* the device part has its own host buffers */
    free(y);
    x = y = NULL;
    if (dev_want) {
        bool ok = false;
        char why[160];
        TRY_GOTO(st, bench_device_available(c, &ok, why, sizeof why), out_free);
        if (ok) {
            bench_device_opts_t o = {.min_bytes = min_bytes, .max_bytes = max_bytes, .iters = iters, .json = json};
            size_t dev_wrong = 0;
            TRY_GOTO(st, bench_device_run(c, &o, &dev_wrong), out_free);
            total_wrong += dev_wrong;
        } else if (dev_need) {
            agreed = true;
            st = rt_fail(RT_ERR_CUDA, "--backend nccl: %s", why);
            goto out_free;
        } else if (rank == 0) {
            /* one line; in --json mode on stderr so that stdout stays JSON rows */
            fprintf(json ? stderr : stdout, "# device buffers (nccl): skipped: %s\n", why);
            fflush(json ? stderr : stdout);
        }
    }
    if (total_wrong)
        st = rt_fail(RT_ERR_INTERNAL, "%zu wrong results (see #wrong)", total_wrong);
out_free:
    free(x);
    free(y);
    free(times);
    coll_comm_free(c);
    if (st != RT_OK && st != RT_ERR_USAGE && !agreed)
        coll_abort(NULL, 1); /* a peer may still be inside a collective */
    coll_finalize();
    return st;
}

int cmd_bench(int argc, char **argv)
{
    if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        printf("usage: ringtrain bench allreduce [options]   (ringtrain bench allreduce --help)\n");
        return 0;
    }
    if (argc < 1)
        return cmd_report("bench", rt_fail(RT_ERR_USAGE, "missing benchmark name (allreduce)"));
    if (strcmp(argv[0], "allreduce") != 0)
        return cmd_report("bench", rt_fail(RT_ERR_USAGE, "unknown benchmark '%s' (allreduce)", argv[0]));
    return cmd_report("bench", bench_allreduce(argc - 1, argv + 1));
}
