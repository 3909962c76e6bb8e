/* cpu_threads.c - per-rank CPU thread counts for OpenBLAS and OpenMP. */
#define _DEFAULT_SOURCE
#include "trainer/ops/cpu_threads.h"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>

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

void cpu_set_threads(int n)
{
    if (n < 1)
        n = 1;
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
}
