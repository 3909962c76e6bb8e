/* cpu_env.h - the process environment the CPU path needs to be fast, which
 * OpenBLAS and OpenMP only read when they load, so a program fixes it by
 * re-executing itself once, first thing in main, before MPI_Init:
 *
 * - OPENBLAS_CORETYPE: Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) does not know
 *   recent CPUs (Sapphire Rapids under KVM here) and falls back to its
 *   "Prescott" SSE3 kernels, 5x slower for sgemm than its SkylakeX AVX-512
 *   kernels on the same CPU. When the detected core is such a fallback and
 *   the CPU has AVX-512 (or AVX2+FMA), we name SkylakeX (or Haswell).
 * - OMP_WAIT_POLICY=passive: OpenMP workers that spin after our loops steal
 *   the cores from OpenBLAS's threads during the next sgemm (a 2-thread
 *   training step went from 28 ms to 58 ms).
 * - OPENBLAS_NUM_THREADS=1: OpenBLAS starts a pool of one thread per core
 *   when it loads, each mapping a 128 MiB buffer; the commands size the pool
 *   themselves (cpu_set_threads, after checking the address space), so it
 *   starts empty instead of hanging at load under a tight ulimit -v on a
 *   many-core machine.
 * Variables the user has set are never changed; RT_CPU_ENV=keep disables all
 * of this, and so does running under valgrind. */
#ifndef RT_TRAINER_OPS_CPU_ENV_H
#define RT_TRAINER_OPS_CPU_ENV_H

#include <stdbool.h>

/* OpenBLAS's name for the kernels in use ("SkylakeX", "Prescott", ...). */
const char *cpu_env_blas_core(void);

/* True if this process should re-execute with a better environment; then
 * the variables are already set (setenv) and the caller execs itself. */
bool cpu_env_needs_reexec(void);

/* Sets the variables when needed and re-executes /proc/self/exe with the
 * same arguments (read back from /proc/self/cmdline). Returns only when
 * nothing is needed or the exec failed (then the process simply runs on,
 * slower, and a warning is logged). */
void cpu_env_reexec_if_needed(void);

#endif
