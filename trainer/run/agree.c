/* agree.c - every rank learns the first failing rank's status (see
 * agree.h). */
#include "trainer/run/agree.h"

#include <stdint.h>
#include <stdlib.h>

#include "common/check.h"

rt_status ranks_agree(coll_comm_t *comm, rt_status local, bool *speak)
{
    if (!comm) {
        *speak = local != RT_OK;
        return local;
    }
    const int world = coll_size(comm), rank = coll_rank(comm);
    int32_t *codes = calloc((size_t)world, sizeof *codes);
    CHECK_ALLOC(codes, sizeof *codes * (size_t)world);
    int32_t mine = (int32_t)local;
    rt_status st = coll_allgather(comm, &mine, codes, 1, RT_DTYPE_I32);
    int first = -1;
    for (int i = 0; st == RT_OK && i < world && first < 0; i++)
        if (codes[i] != RT_OK)
            first = i;
    rt_status agreed = first < 0 ? RT_OK : (rt_status)codes[first];
    free(codes);
    TRY(st);
    *speak = first == rank;
    if (agreed != RT_OK && local == RT_OK)
        rt_fail(agreed, "rank %d failed to set up (see its message)", first);
    return agreed;
}
