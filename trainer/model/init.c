/* init.c - SplitMix64 and uniform initialisation (see init.h). */
#include "trainer/model/init.h"

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
