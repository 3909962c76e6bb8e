/* cpu_peak.c - the sgemm peak of this rank's threads (see cpu_peak.h). A
 * square product of 1024 is large enough for OpenBLAS's kernels to reach
 * their steady rate and small enough (12 MB) to run at every start; the
 * best of five discounts a neighbour's burst of activity. */
/* POSIX: clock_gettime (common/timer.h) */
#define _POSIX_C_SOURCE 200809L
#include "trainer/ops/cpu_peak.h"

#include <cblas.h>
#include <stdlib.h>

#include "common/timer.h"

#define PEAK_N 1024
#define PEAK_RUNS 5

double cpu_sgemm_peak_flops(void)
{
    const size_t n = PEAK_N;
    float *a = malloc(sizeof(float) * n * n * 3);
    if (!a)
        return 0.0;
    float *b = a + n * n, *c = b + n * n;
    for (size_t i = 0; i < 2 * n * n; i++)
        a[i] = (float)(i % 17) * 0.0625f - 0.5f;
    double best = 0.0;
    for (int run = 0; run <= PEAK_RUNS; run++) {
        const double t0 = rt_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, PEAK_N, PEAK_N, PEAK_N, 1.0f, a,
                    PEAK_N, b, PEAK_N, 0.0f, c, PEAK_N);
        const double dt = rt_now() - t0;
        const double rate = 2.0 * (double)n * n * n / dt;
        if (run > 0 && dt > 0 && rate > best)  /* run 0 warms the caches and threads */
            best = rate;
    }
    free(a);
    return best;
}
