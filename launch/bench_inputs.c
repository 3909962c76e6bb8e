/* bench_inputs.c - the all-reduce bench's inputs and result check. */
#include "launch/bench_inputs.h"

void bench_fill_input(float *x, size_t count, int rank)
{
    for (size_t i = 0; i < count; i++)
        x[i] = (float)((rank + 1) * (int)(i % 17));
}

size_t bench_count_wrong(const float *y, size_t count, int n)
{
    size_t wrong = 0;
    float tri = (float)(n * (n + 1) / 2);
    for (size_t i = 0; i < count; i++)
        wrong += y[i] != (float)(int)(i % 17) * tri;
    return wrong;
}

int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
