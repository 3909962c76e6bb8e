/* cpu_threads.h - how many CPU threads a rank uses for BLAS and its own loops:
 * its share of the node's cores (cores / ranks on the node, at least 1),
 * unless overridden. */
#ifndef RT_TRAINER_OPS_CPU_THREADS_H
#define RT_TRAINER_OPS_CPU_THREADS_H

/* Online cores of this machine (sysconf), at least 1. */
int cpu_cores(void);
/* cores / local_ranks, at least 1. */
int cpu_default_threads(int local_ranks);
/* Sets OpenBLAS's and OpenMP's thread counts. */
void cpu_set_threads(int n);

#endif
