/* sampler.c - per-epoch permutations and each rank's strided share of them. */
#include "data/sampler.h"

#include "common/check.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

typedef struct { uint64_t s[4]; } xoshiro256;

static uint64_t xoshiro_next(xoshiro256 *g)
{
    uint64_t *s = g->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, bound) without modulo bias: reject the low values that
 * would make some residues more likely. */
static uint64_t xoshiro_below(xoshiro256 *g, uint64_t bound)
{
    uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t r = xoshiro_next(g);
        if (r >= threshold)
            return r % bound;
    }
}

/* Seeds the generator for (seed, epoch, stream). */
static void generator_init(xoshiro256 *g, uint64_t seed, int64_t epoch, uint64_t stream)
{
    uint64_t x = seed;
    uint64_t key = splitmix64(&x) ^ (uint64_t)epoch;
    x = key;
    uint64_t mixed = splitmix64(&x) ^ stream;
    x = mixed;
    for (int i = 0; i < 4; i++)
        g->s[i] = splitmix64(&x);
}

uint64_t sampler_hash(uint64_t seed, int64_t epoch, uint64_t stream)
{
    xoshiro256 g;
    generator_init(&g, seed, epoch, stream);
    return xoshiro_next(&g);
}

void sampler_permutation(uint64_t seed, int64_t epoch, int64_t n, int64_t *perm)
{
    xoshiro256 g;
    generator_init(&g, seed, epoch, 0);
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)xoshiro_below(&g, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

rt_status sampler_check(const sampler_config_t *c)
{
    CHECK_ARG(c->n >= 1, "sampler: dataset has no records");
    CHECK_ARG(c->world >= 1 && c->rank >= 0 && c->rank < c->world,
              "sampler: rank %d of world %d", c->rank, c->world);
    CHECK_ARG(c->batch >= 1, "sampler: batch %lld", (long long)c->batch);
    CHECK_ARG(c->remainder == SAMPLER_PAD || c->remainder == SAMPLER_DROP ||
                  c->remainder == SAMPLER_PARTIAL, "sampler: bad remainder mode");
    if (sampler_steps_per_epoch(c) < 1)
        return rt_fail(RT_ERR_INVALID,
                       "%lld records over %d ranks give fewer than one batch of %lld per rank",
                       (long long)c->n, c->world, (long long)c->batch);
    return RT_OK;
}

int64_t sampler_rank_len(const sampler_config_t *c)
{
    int64_t w = c->world;
    switch (c->remainder) {
    case SAMPLER_PAD: return (c->n + w - 1) / w;
    case SAMPLER_DROP: return c->n / w;
    case SAMPLER_PARTIAL: return c->rank < c->n ? (c->n - c->rank + w - 1) / w : 0;
    }
    return 0;
}

int64_t sampler_steps_per_epoch(const sampler_config_t *c)
{
    if (c->remainder == SAMPLER_PARTIAL) {
        int64_t longest = (c->n + c->world - 1) / c->world;
        return (longest + c->batch - 1) / c->batch;
    }
    return sampler_rank_len(c) / c->batch;
}

int64_t sampler_batch_rows(const sampler_config_t *c, int64_t step)
{
    if (c->remainder != SAMPLER_PARTIAL)
        return c->batch;
    int64_t left = sampler_rank_len(c) - step * c->batch;
    return left < 0 ? 0 : left < c->batch ? left : c->batch;
}

void sampler_epoch_order(const sampler_config_t *c, uint64_t seed, int64_t epoch, int64_t *order)
{
    if (c->shuffle) {
        sampler_permutation(seed, epoch, c->n, order);
    } else {
        for (int64_t i = 0; i < c->n; i++)
            order[i] = i;
    }
}

void sampler_batch_indices(const sampler_config_t *c, const int64_t *order, int64_t step,
                           int64_t *out)
{
    int64_t rows = sampler_batch_rows(c, step);
    for (int64_t j = 0; j < rows; j++) {
        int64_t k = step * c->batch + j;              /* position in this rank's slice */
        int64_t p = c->rank + k * (int64_t)c->world;  /* position in the padded order */
        out[j] = order[p % c->n];
    }
}
