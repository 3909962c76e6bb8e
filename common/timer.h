/* timer.h - monotonic wall clock in seconds, for timeouts and benchmarks. */
#ifndef RT_COMMON_TIMER_H
#define RT_COMMON_TIMER_H

#include <time.h>

static inline double rt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
