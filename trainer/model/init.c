/* init.c - SplitMix64, uniform and normal initialisation (see init.h). */
#include "trainer/model/init.h"

#include <math.h>

void rt_rng_seed(rt_rng_t *rng, uint64_t seed)
{
    rng->state = seed;
}

uint64_t rt_rng_next(rt_rng_t *rng)
{
    uint64_t z = (rng->state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

float rt_rng_uniform(rt_rng_t *rng)
{
    return (float)(rt_rng_next(rng) >> 40) * (1.0f / 16777216.0f);
}

void init_uniform(float *x, int64_t n, float bound, rt_rng_t *rng)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (2.0f * rt_rng_uniform(rng) - 1.0f) * bound;
}

static double rng_unit_open0(rt_rng_t *rng)
{
    return 1.0 - (double)(rt_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

void init_normal(float *x, int64_t n, float std, rt_rng_t *rng)
{
    const double two_pi = 6.283185307179586476925286766559;
    for (int64_t i = 0; i < n; i += 2) {
        const double u1 = rng_unit_open0(rng), u2 = rng_unit_open0(rng);
        const double r = sqrt(-2.0 * log(u1)) * (double)std;
        x[i] = (float)(r * cos(two_pi * u2));
        if (i + 1 < n)
            x[i + 1] = (float)(r * sin(two_pi * u2));
    }
}
