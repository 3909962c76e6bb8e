/* cpu_threads.h - how many CPU threads a rank uses for BLAS and its own loops:
 * its share of the node's cores (cores / ranks on the node, at least 1),
 * unless overridden, and setting them without the hang OpenBLAS falls into
 * when it cannot map a thread's buffer. */
#ifndef RT_TRAINER_OPS_CPU_THREADS_H
#define RT_TRAINER_OPS_CPU_THREADS_H

#include <stddef.h>

#include "common/status.h"

/* The most threads a rank may be given (--threads): above any core count
 * this runs on, low enough that a slip (100000) is refused as a usage error
 * instead of asking OpenBLAS and OpenMP for that many threads. */
#define CPU_MAX_THREADS 1024

/* OpenBLAS (0.3.21, x86-64) maps a work buffer of this size for every
 * thread of its pool as the thread starts, and one for the calling thread
 * at its first product. */
#define CPU_BLAS_BUFFER_BYTES ((size_t)128 << 20)

/* Online cores of this machine (sysconf), at least 1. */
int cpu_cores(void);
/* cores / local_ranks, at least 1. */
int cpu_default_threads(int local_ranks);

/* Address space n threads need: per thread OpenBLAS's buffer and two
 * default-size stacks (its pool thread and OpenMP's), plus 64 MiB slack. */
size_t cpu_threads_bytes(int n);

/* Sets OpenBLAS's and OpenMP's thread counts to n (1..CPU_MAX_THREADS).
 * OpenBLAS retries a failed buffer mapping forever, so a pool larger than
 * the address space left (ulimit -v) would hang the next product and the
 * exit (its destructor joins the threads). First checks that
 * cpu_threads_bytes(n) can be mapped now; if not, RT_ERR_NOMEM naming the
 * need and the limit, with the thread counts unchanged. Call it after the
 * large allocations (datasets) and before the first product. */
rt_status cpu_set_threads(int n);

#endif
