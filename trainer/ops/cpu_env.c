/* cpu_env.c - choosing OpenBLAS kernels and OpenMP's wait policy, and the
 * one re-exec that applies them (see cpu_env.h). */
#define _DEFAULT_SOURCE
#include "trainer/ops/cpu_env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

char *openblas_get_corename(void);

const char *cpu_env_blas_core(void)
{
    return openblas_get_corename();
}

/* Cores OpenBLAS falls back to for a CPU it does not recognise. */
static bool blas_core_is_fallback(const char *core)
{
    static const char *old[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
                                "Katmai", "Coppermine", "Northwood", "Banias", "Atom"};
    for (size_t i = 0; i < sizeof old / sizeof old[0]; i++)
        if (!strcmp(core, old[i]))
            return true;
    return false;
}

bool cpu_env_needs_reexec(void)
{
    const char *keep = getenv("RT_CPU_ENV");
    if ((keep && !strcmp(keep, "keep")) || getenv("RT_CPU_ENV_DONE"))
        return false;
    /* under valgrind /proc/self/exe is valgrind's tool, not this program */
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload"))
        return false;
    bool need = false;
    if (!getenv("OPENBLAS_CORETYPE") && blas_core_is_fallback(cpu_env_blas_core())) {
        __builtin_cpu_init();
        const char *core = NULL;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl"))
            core = "SKYLAKEX";
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            core = "HASWELL";
        if (core) {
            setenv("OPENBLAS_CORETYPE", core, 0);
            need = true;
        }
    }
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 0);
        need = true;
    }
    /* the pool grows later, in cpu_set_threads, once the room is checked */
    if (!getenv("OPENBLAS_NUM_THREADS")) {
        setenv("OPENBLAS_NUM_THREADS", "1", 0);
        need = true;
    }
    return need;
}

void cpu_env_reexec_if_needed(void)
{
    if (!cpu_env_needs_reexec())
        return;
    setenv("RT_CPU_ENV_DONE", "1", 1);
    FILE *f = fopen("/proc/self/cmdline", "rb");
    if (!f)
        return;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    if (n == 0 || n >= sizeof buf - 1)
        return;
    buf[n] = '\0';
    static char *args[1024];
    int argc = 0;
    for (size_t i = 0; i < n && argc < 1023; i += strlen(buf + i) + 1)
        args[argc++] = buf + i;
    args[argc] = NULL;
    execv("/proc/self/exe", args);
    LOG_WARN("re-exec with OPENBLAS_CORETYPE/OMP_WAIT_POLICY failed; running on, slower");
}
