/* nccl_comm_stub.c - the CPU-only build's NCCL communicator: every call
 * reports that the CUDA/NCCL path is not compiled in. */
#include "collectives/nccl_comm.h"

static rt_status nccl_unsupported(const char *who)
{
    return rt_fail(RT_ERR_UNSUPPORTED, "%s: this build has no CUDA/NCCL path (configured with RT_CUDA=OFF or without nvcc)", who);
}

rt_status nccl_comm_create(nccl_comm_t **out, MPI_Comm comm, int device)
{
    if (out != NULL)
        *out = NULL;
    return nccl_unsupported("nccl_comm_create");
}

void nccl_comm_destroy(nccl_comm_t *c)
{
}

void nccl_comm_abort(nccl_comm_t *c)
{
}

int nccl_comm_rank(const nccl_comm_t *c)
{
    return -1;
}

int nccl_comm_size(const nccl_comm_t *c)
{
    return 0;
}

rt_status nccl_comm_set_chunk_elems(nccl_comm_t *c, size_t elems)
{
    return nccl_unsupported("nccl_comm_set_chunk_elems");
}

rt_status nccl_allreduce_ring(nccl_comm_t *c, const void *send, void *recv, size_t count,
                              rt_dtype dtype, coll_op op, void *stream)
{
    return nccl_unsupported("nccl_allreduce_ring");
}

rt_status nccl_allreduce_ref(nccl_comm_t *c, const void *send, void *recv, size_t count,
                             rt_dtype dtype, coll_op op, void *stream)
{
    return nccl_unsupported("nccl_allreduce_ref");
}

rt_status nccl_reduce_scatter_v_ring(nccl_comm_t *c, void *buf, const size_t *counts,
                                     rt_dtype dtype, coll_op op, void *stream)
{
    return nccl_unsupported("nccl_reduce_scatter_v_ring");
}

rt_status nccl_allgather_v_ring(nccl_comm_t *c, void *buf, const size_t *counts, rt_dtype dtype,
                                void *stream)
{
    return nccl_unsupported("nccl_allgather_v_ring");
}

rt_status nccl_comm_wait(nccl_comm_t *c, void *stream, double timeout_s)
{
    return nccl_unsupported("nccl_comm_wait");
}
