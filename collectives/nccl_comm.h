/* nccl_comm.h - all-reduce of device buffers between ranks through NCCL:
 * our own ring (reduce-scatter then allgather, chunks pipelined, built only
 * on ncclSend/ncclRecv plus our reduction kernel) and ncclAllReduce as the
 * reference it is tested and benchmarked against; and, on the same ring,
 * the in-place reduce-scatter and allgather over uneven chunks (ZeRO-1).
 *
 * The NCCL unique id comes from rank 0 through MPI_Bcast on the given MPI
 * communicator, so every rank of that communicator must call create. All
 * operations are enqueued on the caller's cudaStream_t (passed as void* so
 * that C callers need no CUDA headers) and return at once; nccl_comm_wait()
 * waits with a deadline and aborts the communicator on timeout or on an
 * asynchronous NCCL error, so that a dead peer never hangs a rank.
 *
 * Element types are rt_dtype (common/dtype.h): F32, F64 and BF16 (other
 * types are refused); ops are coll_op (collectives/coll.h): COLL_SUM, and
 * COLL_AVG (sum divided by the number of ranks).
 * In the CPU-only build every function returns RT_ERR_UNSUPPORTED. */
#ifndef RT_COLLECTIVES_NCCL_COMM_H
#define RT_COLLECTIVES_NCCL_COMM_H

#include <stddef.h>

#include <mpi.h>

#include "collectives/coll.h"
#include "common/dtype.h"
#include "common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nccl_comm nccl_comm_t;

/* Collective over `comm`: every rank passes its CUDA device. The returned
 * communicator owns a side stream, events and a device scratch buffer for
 * the ring. Ranks that share one GPU are reported by name in the error
 * (NCCL refuses one device twice in a communicator). */
rt_status nccl_comm_create(nccl_comm_t **out, MPI_Comm comm, int device);
/* Frees everything; safe on NULL and after an abort. */
void nccl_comm_destroy(nccl_comm_t *c);
/* Aborts outstanding NCCL work (peers see an error instead of hanging). */
void nccl_comm_abort(nccl_comm_t *c);

int nccl_comm_rank(const nccl_comm_t *c);
int nccl_comm_size(const nccl_comm_t *c);

/* Elements per pipelined chunk of the ring's reduce-scatter (default 1 Mi,
 * i.e. 4 MiB of f32). Every rank must set the same value: sender and
 * receiver cut segments into chunks alike. Synchronizes the device. */
rt_status nccl_comm_set_chunk_elems(nccl_comm_t *c, size_t elems);

/* Our ring all-reduce: recv = sum (or average) over ranks of send, count
 * elements of dtype. In place when send == recv. count 0 is a no-op. */
rt_status nccl_allreduce_ring(nccl_comm_t *c, const void *send, void *recv, size_t count,
                              rt_dtype dtype, coll_op op, void *stream);
/* The reference: ncclAllReduce (ncclAvg for COLL_AVG). */
rt_status nccl_allreduce_ref(nccl_comm_t *c, const void *send, void *recv, size_t count,
                             rt_dtype dtype, coll_op op, void *stream);

/* In-place reduce-scatter over uneven contiguous chunks, the device form of
 * coll_reduce_scatter_v_start: buf holds sum(counts[0..size)) elements,
 * chunk r being [counts[0]+..+counts[r-1], +counts[r]); afterwards chunk
 * `rank` holds the sum (or average) over ranks of that chunk, and the other
 * chunks hold unspecified partial sums. counts (host memory, read during the
 * call only) must be the same on every rank: unlike the host calls nothing
 * checks that, and different counts give wrong results or a hang that
 * nccl_comm_wait's deadline ends. Any count may be 0. Ring steps as the
 * all-reduce's reduce-scatter, pipelined in chunk_elems pieces. */
rt_status nccl_reduce_scatter_v_ring(nccl_comm_t *c, void *buf, const size_t *counts,
                                     rt_dtype dtype, coll_op op, void *stream);
/* In-place allgather over uneven chunks (counts as above): chunk `rank` of
 * buf is this rank's contribution; afterwards every chunk holds its
 * owner's. */
rt_status nccl_allgather_v_ring(nccl_comm_t *c, void *buf, const size_t *counts, rt_dtype dtype,
                                void *stream);

/* Waits until all work on `stream` is done, polling the stream and NCCL's
 * asynchronous error. timeout_s <= 0 waits without a deadline. On a NCCL
 * error or when the deadline passes, aborts the communicator and returns
 * RT_ERR_NCCL or RT_ERR_TIMEOUT; the communicator is then unusable. */
rt_status nccl_comm_wait(nccl_comm_t *c, void *stream, double timeout_s);

#ifdef __cplusplus
}
#endif

#endif
