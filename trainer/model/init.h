/* init.h - the seeded random numbers behind parameter initialisation, and
 * nn.Linear's default initialisation: weight and bias ~ U(-1/sqrt(in),
 * 1/sqrt(in)).
 *
 * Generator: SplitMix64 (Steele, Lea, Flood 2014): state += 0x9E3779B97F4A7C15,
 * then the usual xor-shift-multiply finaliser. A uniform float in [0, 1) is
 * the top 24 bits of one output times 2^-24, so every value is exact in
 * float32. Parameters are drawn in arena order (fc1.weight row by row,
 * fc1.bias, fc2.weight, ...) from one stream seeded with --seed; rank 0
 * draws them and broadcasts, so the other ranks' streams never matter. */
#ifndef RT_TRAINER_MODEL_INIT_H
#define RT_TRAINER_MODEL_INIT_H

#include <stdint.h>

typedef struct {
    uint64_t state;
} rt_rng_t;

void rt_rng_seed(rt_rng_t *rng, uint64_t seed);
uint64_t rt_rng_next(rt_rng_t *rng);
/* Uniform in [0, 1), 24 random bits. */
float rt_rng_uniform(rt_rng_t *rng);

/* Fills x[0..n) with U(-bound, bound): (2u - 1) * bound. */
void init_uniform(float *x, int64_t n, float bound, rt_rng_t *rng);

/* Fills x[0..n) with N(0, std^2) by Box-Muller in double: for each pair,
 * u1 = 1 - (53 bits of one output) * 2^-53 (in (0, 1]), u2 likewise from
 * the next, r = sqrt(-2 ln u1), x[i] = r cos(2 pi u2) * std, x[i+1] =
 * r sin(2 pi u2) * std (an odd n drops the last sine). */
void init_normal(float *x, int64_t n, float std, rt_rng_t *rng);

#endif
