/* clip.c - gradient norm and clipping (see clip.h). */
#include "trainer/clip.h"

#include <math.h>

#include "trainer/op.h"

double grad_global_norm(const float *g, int64_t n)
{
    return sqrt(sum_squares_cpu(g, n));
}

float grad_clip_by_norm(float *g, int64_t n, double norm, double max_norm)
{
    float coef = (float)(max_norm / (norm + 1e-6));
    if (!(coef < 1.0f))
        return 1.0f;  /* multiplying by 1 changes nothing: skip the pass */
#pragma omp parallel for simd schedule(static) if (n >= 32768)
    for (int64_t i = 0; i < n; i++)
        g[i] *= coef;
    return coef;
}
