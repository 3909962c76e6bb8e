/* ckpt_agree.c - after every rank has loaded a checkpoint, checks that they
 * all loaded the same state (same digest), so that a rank that read another
 * file, or read it differently, stops the job instead of training a
 * diverged replica. Collective over comm. */
#include <inttypes.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "trainer/ckpt/ckpt_file.h" /* after mpi.h: declares ckpt_digest_agree */

rt_status ckpt_digest_agree(MPI_Comm comm, uint64_t digest, const char *what)
{
    int size;
    CHECK_MPI(MPI_Comm_size(comm, &size));
    /* Everyone learns every digest (8 bytes a rank), so every rank can
     * return the same verdict and name the odd ones out. */
    uint64_t *all = malloc((size_t)size * sizeof *all);
    CHECK_ALLOC(all, (size_t)size * sizeof *all);
    int rc = MPI_Allgather(&digest, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, comm);
    if (rc != MPI_SUCCESS) {
        free(all);
        return rt_mpi_error(rc, "MPI_Allgather", __FILE__, __LINE__);
    }
    int same = 1;
    for (int r = 1; r < size; r++)
        same &= all[r] == all[0];
    if (same) {
        free(all);
        return RT_OK;
    }
    char list[768];
    size_t o = 0;
    list[0] = '\0';
    for (int r = 0; r < size && o < sizeof list - 32; r++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s rank %d 0x%016" PRIx64, r ? "," : "", r, all[r]);
    free(all);
    return rt_fail(RT_ERR_MISMATCH, "ranks loaded different state from %s (digests:%s)", what ? what : "the checkpoint",
                   list);
}
