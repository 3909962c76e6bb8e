/* test_sampler.c - the distributed sampler against the DistributedSampler
 * rules restated directly (pad by repeating the order's start, or cut; rank
 * r takes every world-th position), with ranks simulated in one process:
 * coverage, overlap only by padding, determinism, epochs, resume, and that
 * np=1 and np=4 see the same records per global step. */
#include <stdlib.h>
#include <string.h>

#include "data/sampler.h"
#include "test_util.h"

/* All batches of one rank for one epoch, concatenated. */
static int64_t rank_epoch(const sampler_config_t *c, const int64_t *order, int64_t *out)
{
    int64_t n = 0, steps = sampler_steps_per_epoch(c);
    for (int64_t s = 0; s < steps; s++) {
        sampler_batch_indices(c, order, s, out + n);
        n += sampler_batch_rows(c, s);
    }
    return n;
}

/* One epoch over all ranks: every record is read, duplicates are exactly the
 * padding, and each rank's sequence is the strided slice of the order. */
static void check_epoch(int64_t n, int world, int64_t batch, sampler_remainder mode, bool shuffle)
{
    int64_t *order = malloc((size_t)n * sizeof *order);
    int64_t *seen = calloc((size_t)n, sizeof *seen);
    int64_t *got = malloc((size_t)(n + world) * sizeof *got);
    int64_t total_pos = mode == SAMPLER_PAD ? (n + world - 1) / world * world
                        : mode == SAMPLER_DROP ? n / world * world : n;
    int64_t per_rank_steps = -1, read = 0;
    for (int r = 0; r < world; r++) {
        sampler_config_t c = {.n = n, .rank = r, .world = world, .batch = batch,
                              .shuffle = shuffle, .remainder = mode};
        if (sampler_check(&c) != RT_OK) {
            EXPECT(0, "config n=%lld world=%d batch=%lld rejected", (long long)n, world,
                   (long long)batch);
            goto out;
        }
        sampler_epoch_order(&c, 42, 3, order);
        int64_t steps = sampler_steps_per_epoch(&c);
        if (per_rank_steps < 0)
            per_rank_steps = steps;
        EXPECT(steps == per_rank_steps, "every rank has the same number of steps");
        int64_t m = rank_epoch(&c, order, got);
        read += m;
        /* the oracle: position r + k*world of the padded/cut order */
        int64_t want_len = mode == SAMPLER_PARTIAL ? (r < n ? (n - r + world - 1) / world : 0)
                                                   : total_pos / world;
        if (mode != SAMPLER_PARTIAL)
            want_len = want_len / batch * batch; /* incomplete last batch dropped */
        EXPECT(m == want_len, "rank %d reads %lld, want %lld", r, (long long)m,
               (long long)want_len);
        for (int64_t k = 0; k < m; k++) {
            int64_t p = r + k * world;
            EXPECT(got[k] == order[p % n], "rank %d item %lld", r, (long long)k);
            seen[got[k]]++;
        }
    }
    if (mode == SAMPLER_PARTIAL) {
        for (int64_t i = 0; i < n; i++)
            EXPECT(seen[i] == 1, "partial: record %lld read %lld times", (long long)i,
                   (long long)seen[i]);
        EXPECT(read == n, "partial reads n");
    } else if (per_rank_steps * batch == total_pos / world) {
        /* no batch dropped: pad covers everything, extra reads are the padding */
        int64_t dup = 0, missing = 0;
        for (int64_t i = 0; i < n; i++) {
            missing += seen[i] == 0;
            dup += seen[i] > 1 ? seen[i] - 1 : 0;
        }
        if (mode == SAMPLER_PAD) {
            EXPECT(missing == 0, "pad covers every record (%lld missing)", (long long)missing);
            EXPECT(dup == total_pos - n, "duplicates %lld = padding %lld", (long long)dup,
                   (long long)(total_pos - n));
            /* the duplicates are the first records of the order */
            for (int64_t p = n; p < total_pos; p++)
                EXPECT(seen[order[p % n]] >= 2, "padding repeats the order's start");
        } else {
            EXPECT(dup == 0, "drop has no duplicates");
            EXPECT(missing == n - total_pos, "drop leaves out n %% world records");
        }
    }
out:
    free(order);
    free(seen);
    free(got);
}

static void test_permutation(void)
{
    int64_t n = 1000;
    int64_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    char *hit = calloc(n, 1);
    sampler_permutation(7, 0, n, a);
    for (int64_t i = 0; i < n; i++)
        hit[a[i]]++;
    int ok = 1;
    for (int64_t i = 0; i < n; i++)
        ok &= hit[i] == 1;
    EXPECT(ok, "permutation of [0, n)");
    sampler_permutation(7, 0, n, b);
    EXPECT(!memcmp(a, b, n * sizeof *a), "same seed and epoch, same order");
    sampler_permutation(7, 1, n, c);
    EXPECT(memcmp(a, c, n * sizeof *a) != 0, "another epoch, another order");
    sampler_permutation(8, 0, n, c);
    EXPECT(memcmp(a, c, n * sizeof *a) != 0, "another seed, another order");
    int fixed = 0;
    for (int64_t i = 0; i < n; i++)
        fixed += a[i] == i;
    EXPECT(fixed < 10, "a shuffle moves almost everything (%d fixed points)", fixed);
    /* every position is about equally likely to hold record 0 */
    int counts[4] = {0};
    for (int e = 0; e < 4000; e++) {
        int64_t p[4];
        sampler_permutation(99, e, 4, p);
        for (int i = 0; i < 4; i++)
            if (p[i] == 0)
                counts[i]++;
    }
    for (int i = 0; i < 4; i++)
        EXPECT(counts[i] > 850 && counts[i] < 1150, "position %d holds 0 in %d of 4000", i,
               counts[i]);
    free(a);
    free(b);
    free(c);
    free(hit);
}

/* Resuming at (epoch, position) yields exactly the rest of the sequence. */
static void test_resume(void)
{
    sampler_config_t c = {.n = 1003, .rank = 2, .world = 3, .batch = 16, .shuffle = true,
                          .remainder = SAMPLER_PAD};
    int64_t *order = malloc(c.n * sizeof *order), *full = malloc(c.n * sizeof *full);
    int64_t *rest = malloc(c.n * sizeof *rest);
    sampler_epoch_order(&c, 5, 2, order);
    int64_t m = rank_epoch(&c, order, full);
    int64_t steps = sampler_steps_per_epoch(&c);
    for (int64_t pos = 0; pos <= steps; pos++) {
        /* a fresh process: recompute the order from the saved (seed, epoch) */
        int64_t *order2 = malloc(c.n * sizeof *order2);
        sampler_epoch_order(&c, 5, 2, order2);
        int64_t k = 0;
        for (int64_t s = pos; s < steps; s++) {
            sampler_batch_indices(&c, order2, s, rest + k);
            k += c.batch;
        }
        EXPECT(k == m - pos * c.batch && !memcmp(rest, full + pos * c.batch, k * sizeof *rest),
               "resume at position %lld", (long long)pos);
        free(order2);
    }
    free(order);
    free(full);
    free(rest);
}

/* np=4 with batch B reads, per global step, the same records as np=1 with
 * batch 4B (and as 4 micro-batches of B on one rank, in the same order). */
static void test_np1_np4(void)
{
    const int64_t n = 997, B = 8;
    int64_t *order = malloc(n * sizeof *order);
    sampler_config_t one = {.n = n, .rank = 0, .world = 1, .batch = 4 * B, .shuffle = true,
                            .remainder = SAMPLER_PAD};
    sampler_epoch_order(&one, 11, 1, order);
    int64_t steps1 = sampler_steps_per_epoch(&one);
    sampler_config_t four = one;
    four.world = 4;
    four.batch = B;
    int64_t steps4 = sampler_steps_per_epoch(&four);
    EXPECT(steps1 == steps4, "steps %lld vs %lld", (long long)steps1,
           (long long)steps4);
    for (int64_t s = 0; s < steps1 && s < steps4; s++) {
        int64_t g1[32], g4[32];
        sampler_batch_indices(&one, order, s, g1);
        for (int r = 0; r < 4; r++) {
            four.rank = r;
            sampler_batch_indices(&four, order, s, g4 + r * B);
        }
        /* as sets: sort both */
        for (int i = 0; i < 32; i++)
            for (int j = i + 1; j < 32; j++) {
                if (g1[j] < g1[i]) { int64_t t = g1[i]; g1[i] = g1[j]; g1[j] = t; }
                if (g4[j] < g4[i]) { int64_t t = g4[i]; g4[i] = g4[j]; g4[j] = t; }
            }
        EXPECT(!memcmp(g1, g4, sizeof g1), "global step %lld: same records", (long long)s);
    }
    free(order);
}

int main(void)
{
    test_permutation();
    int64_t ns[] = {1, 7, 64, 100, 1001};
    int worlds[] = {1, 2, 3, 4, 5};
    int64_t batches[] = {1, 3, 8};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (size_t w = 0; w < sizeof worlds / sizeof worlds[0]; w++)
            for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++)
                for (int mode = SAMPLER_PAD; mode <= SAMPLER_PARTIAL; mode++) {
                    sampler_config_t c = {.n = ns[i], .rank = 0, .world = worlds[w],
                                          .batch = batches[b], .shuffle = true,
                                          .remainder = (sampler_remainder)mode};
                    if (sampler_steps_per_epoch(&c) < 1) {
                        EXPECT(sampler_check(&c) != RT_OK, "too small a set is rejected");
                        continue;
                    }
                    check_epoch(ns[i], worlds[w], batches[b], (sampler_remainder)mode, true);
                    check_epoch(ns[i], worlds[w], batches[b], (sampler_remainder)mode, false);
                }
    /* evaluation: 10 records, 4 ranks, batch 2: shares 3,3,2,2 in 2 steps */
    sampler_config_t e = {.n = 10, .rank = 3, .world = 4, .batch = 2, .shuffle = false,
                          .remainder = SAMPLER_PARTIAL};
    EXPECT(sampler_steps_per_epoch(&e) == 2, "eval steps");
    EXPECT(sampler_batch_rows(&e, 0) == 2 && sampler_batch_rows(&e, 1) == 0, "rank 3 rows");
    e.rank = 0;
    EXPECT(sampler_batch_rows(&e, 1) == 1, "rank 0 last batch partial");
    test_resume();
    test_np1_np4();
    return TEST_EXIT();
}
