/* test_ckpt_agree.c - rank 0 writes, every rank loads, and the ranks
 * compare digests (ckpt_digest_agree). Agreement when all loaded the
 * newest checkpoint; a mismatch reported identically on every rank, naming
 * each rank's digest, when the last rank loaded an older one or one rank's
 * copy differs by one float. The digests expected are computed on each rank
 * from the synthetic state, independently of what was loaded. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "synth_state.h"
#include "test_util.h"

#define SPEC "mlp:8,16,3"

static uint64_t load_digest(const char *path, int flip)
{
    ckpt_reader_t *r = NULL;
    synth_state s;
    synth_layout(&s, 8, 16, 3);
    synth_alloc(&s);
    uint64_t d = 0;
    if (ckpt_open(path, &r) == RT_OK && ckpt_read_arrays(r, s.arrays, s.n) == RT_OK) {
        if (flip)
            ((float *)s.arrays[2].data)[3] += 1.0f;
        d = ckpt_digest(ckpt_reader_meta(r), s.arrays, s.n);
    } else {
        fprintf(stderr, "load %s: %s\n", path, rt_last_error());
    }
    ckpt_close(r);
    synth_free(&s);
    return d;
}

static uint64_t expected_digest(int64_t step)
{
    synth_state s;
    synth_layout(&s, 8, 16, 3);
    synth_alloc(&s);
    synth_fill(&s, step);
    ckpt_meta_t m = synth_meta(step, SPEC);
    uint64_t d = ckpt_digest(&m, s.arrays, s.n);
    synth_free(&s);
    return d;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    char dir[256] = "";
    if (rank == 0) {
        snprintf(dir, sizeof dir, "/tmp/test_ckpt_agree.%ld", (long)getpid());
        for (int64_t step = 10; step <= 20; step += 10) {
            synth_state s;
            synth_layout(&s, 8, 16, 3);
            synth_alloc(&s);
            synth_fill(&s, step);
            ckpt_meta_t m = synth_meta(step, SPEC);
            if (ckpt_write(dir, &m, s.arrays, s.n, NULL, 0) != RT_OK)
                fprintf(stderr, "write: %s\n", rt_last_error());
            synth_free(&s);
        }
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);

    char latest[512], older[512];
    int64_t step = -1;
    EXPECT(ckpt_find_latest(dir, latest, sizeof latest, &step, NULL, NULL) == RT_OK && step == 20,
           "rank %d: latest step %" PRId64, rank, step);
    ckpt_path_for_step(dir, 10, older, sizeof older);
    uint64_t d20 = expected_digest(20), d10 = expected_digest(10);
    EXPECT(d10 != d20, "steps differ");

    /* all load the newest */
    uint64_t d = load_digest(latest, 0);
    EXPECT(d == d20, "rank %d loaded digest 0x%016" PRIx64 ", expected 0x%016" PRIx64, rank, d, d20);
    EXPECT(ckpt_digest_agree(MPI_COMM_WORLD, d, latest) == RT_OK, "rank %d: agreement: %s", rank, rt_last_error());

    /* the last rank loads the older one */
    d = load_digest(rank == size - 1 ? older : latest, 0);
    rt_status st = ckpt_digest_agree(MPI_COMM_WORLD, d, latest);
    char want[64];
    snprintf(want, sizeof want, "rank %d 0x%016" PRIx64, size - 1, d10);
    char want0[64];
    snprintf(want0, sizeof want0, "rank 0 0x%016" PRIx64, d20);
    EXPECT(size == 1 || (st == RT_ERR_MISMATCH && strstr(rt_last_error(), want) && strstr(rt_last_error(), want0)),
           "rank %d: older on the last rank: %s", rank, rt_last_error());

    /* one rank's copy differs by one float */
    d = load_digest(latest, rank == size / 2);
    st = ckpt_digest_agree(MPI_COMM_WORLD, d, latest);
    EXPECT(size == 1 || st == RT_ERR_MISMATCH, "rank %d: one float differs: %s", rank, rt_last_error());

    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    int failed = test_failed_count, any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int rc = TEST_EXIT();
    MPI_Finalize();
    return any ? 1 : rc;
}
