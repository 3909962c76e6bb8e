/* cpu_threads.c - per-rank CPU thread counts for OpenBLAS and OpenMP, and
 * the address-space check before the pools grow (see cpu_threads.h). */
/* GNU: pthread_getattr_default_np; MAP_NORESERVE */
#define _GNU_SOURCE
#include "trainer/ops/cpu_threads.h"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#define CPU_THREADS_SLACK ((size_t)64 << 20)

int cpu_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int cpu_default_threads(int local_ranks)
{
    int n = cpu_cores() / (local_ranks > 0 ? local_ranks : 1);
    return n > 0 ? n : 1;
}

/* The stack a new thread gets (OpenBLAS and libgomp use the default). */
static size_t default_stack_bytes(void)
{
    pthread_attr_t attr;
    size_t size = 0;
    if (pthread_getattr_default_np(&attr) == 0) {
        pthread_attr_getstacksize(&attr, &size);
        pthread_attr_destroy(&attr);
    }
    return size ? size : (size_t)8 << 20;
}

size_t cpu_threads_bytes(int n)
{
    return (size_t)(n > 0 ? n : 1) * (CPU_BLAS_BUFFER_BYTES + 2 * default_stack_bytes()) +
           CPU_THREADS_SLACK;
}

rt_status cpu_set_threads(int n)
{
    if (n < 1 || n > CPU_MAX_THREADS)
        return rt_fail(RT_ERR_INVALID, "cpu_set_threads: %d threads, expected 1..%d", n,
                       CPU_MAX_THREADS);
    /* Map (untouched, so nothing is committed) what the threads will map,
     * and give it back: a limit too tight shows here as a plain error
     * instead of as OpenBLAS threads that retry their mapping forever.
     * Read-write rather than PROT_NONE so that strict overcommit
     * (vm.overcommit_memory=2) is seen too. */
    const size_t need = cpu_threads_bytes(n);
    void *p = mmap(NULL, need, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        struct rlimit rl;
        char why[96];
        if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
            snprintf(why, sizeof why, "address-space limit (ulimit -v) %llu MiB",
                     (unsigned long long)(rl.rlim_cur >> 20));
        else
            snprintf(why, sizeof why, "no address-space limit; memory overcommit refused it");
        return rt_fail(RT_ERR_NOMEM,
                       "%d CPU threads need about %zu MiB of address space (OpenBLAS's %zu MiB "
                       "buffer and two %zu MiB stacks per thread), more than this process can "
                       "still map (%s); use fewer --threads",
                       n, need >> 20, CPU_BLAS_BUFFER_BYTES >> 20, default_stack_bytes() >> 20,
                       why);
    }
    munmap(p, need);
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
    return RT_OK;
}
