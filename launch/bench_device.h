/* bench_device.h - the device-buffer half of `ringtrain bench allreduce`:
 * our device ring (nccl_allreduce_ring: ncclSend/ncclRecv and our reduction
 * kernel) against ncclAllReduce (nccl_allreduce_ref) on cudaMalloc'd
 * buffers, in the host bench's table format. cmd_bench.c calls these for
 * --backend nccl and all; in the CPU-only build they report that the CUDA
 * path is missing, so the caller needs no #ifdef. */
#ifndef RT_LAUNCH_BENCH_DEVICE_H
#define RT_LAUNCH_BENCH_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collectives/coll.h"
#include "common/status.h"

typedef struct {
    int64_t min_bytes, max_bytes; /* sizes double from min to max */
    int iters;                    /* timed iterations per size and backend */
    bool json;
} bench_device_opts_t;

/* Before MPI, for --backend nccl: RT_ERR_USAGE (exit 2) when the build has
 * no CUDA path, RT_ERR_CUDA (exit 1) when no CUDA device is visible. */
rt_status bench_device_check(void);

/* Collective over MPI_COMM_WORLD: *ok when every rank has a device of its
 * own (built with CUDA, a device visible, no more ranks on its node than
 * devices); otherwise why says what is missing. */
rt_status bench_device_available(coll_comm_t *c, bool *ok, char *why, size_t why_size);

/* Collective over MPI_COMM_WORLD: the device table (rank 0 prints it).
 * Every timed result is checked; *wrong gets the number of wrong elements
 * summed over ranks, iterations and both backends. */
rt_status bench_device_run(coll_comm_t *c, const bench_device_opts_t *o, size_t *wrong);

#endif
