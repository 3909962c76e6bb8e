/* sampler_dump.c - prints the sampler's epoch order and every rank's
 * sequence, for test_sampler_torch.py to compare with PyTorch's
 * DistributedSampler.
 *   sampler_dump N WORLD BATCH SEED EPOCH pad|drop|partial SHUFFLE(0|1) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/sampler.h"

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: sampler_dump N WORLD BATCH SEED EPOCH pad|drop|partial SHUFFLE\n");
        return 2;
    }
    sampler_config_t c = {.n = atoll(argv[1]), .world = atoi(argv[2]), .batch = atoll(argv[3]),
                          .shuffle = atoi(argv[7]) != 0};
    uint64_t seed = strtoull(argv[4], NULL, 10);
    int64_t epoch = atoll(argv[5]);
    c.remainder = !strcmp(argv[6], "drop") ? SAMPLER_DROP
                  : !strcmp(argv[6], "partial") ? SAMPLER_PARTIAL : SAMPLER_PAD;
    if (sampler_check(&c) != RT_OK) {
        fprintf(stderr, "sampler_dump: %s\n", rt_last_error());
        return 1;
    }
    int64_t *order = malloc((size_t)c.n * sizeof *order);
    int64_t *idx = malloc((size_t)c.batch * sizeof *idx);
    sampler_epoch_order(&c, seed, epoch, order);
    printf("order");
    for (int64_t i = 0; i < c.n; i++)
        printf(" %lld", (long long)order[i]);
    printf("\nsteps %lld\n", (long long)sampler_steps_per_epoch(&c));
    for (int r = 0; r < c.world; r++) {
        c.rank = r;
        printf("rank %d", r);
        for (int64_t s = 0; s < sampler_steps_per_epoch(&c); s++) {
            int64_t rows = sampler_batch_rows(&c, s);
            sampler_batch_indices(&c, order, s, idx);
            for (int64_t j = 0; j < rows; j++)
                printf(" %lld", (long long)idx[j]);
        }
        printf("\n");
    }
    free(order);
    free(idx);
    return 0;
}
