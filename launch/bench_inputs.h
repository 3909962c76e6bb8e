/* bench_inputs.h - what `ringtrain bench allreduce` feeds every backend
 * (host and device alike) and how it checks each timed result, so that all
 * backends are checked against the same closed form. */
#ifndef RT_LAUNCH_BENCH_INPUTS_H
#define RT_LAUNCH_BENCH_INPUTS_H

#include <stddef.h>

/* Input of rank r at i is (r+1)*(i%17), so the sum over n ranks is
 * (i%17)*n(n+1)/2: integer-valued, exact in float32 for any sane n. */
void bench_fill_input(float *x, size_t count, int rank);

/* Elements of a summed result that differ from the closed form. */
size_t bench_count_wrong(const float *y, size_t count, int n);

/* qsort comparator for doubles (medians of timings). */
int bench_cmp_double(const void *a, const void *b);

#endif
