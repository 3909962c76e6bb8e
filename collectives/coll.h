/* coll.h - collectives on host buffers over MPI point-to-point: our own ring
 * all-reduce (segmented, pipelined), broadcast, allgather, reduce-scatter and
 * barrier, on communicators that know their node-local rank.
 *
 * Every collective first checks that all ranks called it with the same
 * operation, count, type and root (a small header exchange, folded into the
 * data for small messages), and every wait has a timeout: a peer that makes
 * no progress for `timeout` seconds ends the call with RT_ERR_TIMEOUT and a
 * message naming the rank(s) that never arrived. A call that makes no
 * progress warns once, at a fraction of the timeout, naming the call and the
 * rank it waits on; at the timeout every reachable rank prints its history
 * of recent calls. Blocked waits back off to short sleeps instead of
 * spinning. After a timeout or an MPI
 * error the communicator is unusable (later calls fail at once); the caller
 * ends the job with coll_abort(). The failed call's buffers must stay
 * allocated until then: sends and receives on them that had already
 * matched cannot be cancelled, and any later MPI call may still read or
 * write them. A mismatch (RT_ERR_MISMATCH) leaves the
 * communicator usable: every rank learns of it in the same call.
 * Algorithms, thresholds and messages: docs/COLLECTIVES.md.
 */
#ifndef RT_COLLECTIVES_COLL_H
#define RT_COLLECTIVES_COLL_H

#include <stddef.h>

#include "common/dtype.h"
#include "common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element types are rt_dtype (common/dtype.h). The collectives take F32,
 * F64, BF16 (2-byte storage, every addition done in float32 and rounded to
 * nearest even), I32, I64 and U8 (integer sums wrap modulo 2^bits; COLL_AVG
 * divides, truncating toward zero); any other type is refused. */
typedef enum { COLL_SUM, COLL_AVG } coll_op;

typedef struct coll_comm coll_comm_t;
typedef struct coll_request coll_request_t;

/* MPI_Init_thread asking for MPI_THREAD_SERIALIZED (so that one helper
 * thread may drive a communicator while the calling thread computes, never
 * both at once; FUNNELED is the least accepted) unless MPI is already
 * initialised; sets the log prefix to the world rank. */
rt_status coll_init(int *argc, char ***argv);
/* MPI_Finalize if coll_init started MPI and it is not finalised yet. */
rt_status coll_finalize(void);

/* A communicator over a private duplicate of MPI_COMM_WORLD. */
rt_status coll_comm_world(coll_comm_t **out);
/* Collective over parent: ranks with the same color form a new communicator,
 * ordered by key (then parent rank). color < 0 gives *out = NULL. */
rt_status coll_comm_split(coll_comm_t *parent, int color, int key, coll_comm_t **out);
void coll_comm_free(coll_comm_t *c);

int coll_rank(const coll_comm_t *c);
int coll_size(const coll_comm_t *c);
/* Rank and size among the ranks of c on this node (MPI_Comm_split_type). */
int coll_local_rank(const coll_comm_t *c);
int coll_local_size(const coll_comm_t *c);

/* Seconds without progress after which a call fails with RT_ERR_TIMEOUT.
 * A new communicator starts with rt_timeout_default() (common/timeout.h):
 * RT_COLL_TIMEOUT seconds, else 300. */
void coll_set_timeout(coll_comm_t *c, double seconds);
double coll_timeout(const coll_comm_t *c);

/* A call without progress for fraction * timeout seconds logs one warning
 * (the call, its size, the rank it waits on, what a roll call learnt of the
 * others). A new communicator starts with rt_timeout_warn_fraction():
 * RT_COLL_WARN_FRACTION, else 0.1. fraction in [0, 1); 0 turns it off; other
 * values are ignored. */
void coll_set_warn_fraction(coll_comm_t *c, double fraction);
double coll_warn_fraction(const coll_comm_t *c);

/* The ring pipeline's segment size (bytes) and segments in flight per
 * direction for later calls on c (a new communicator takes RT_COLL_SEGMENT
 * and RT_COLL_WINDOW, else 256 KiB and 4: tuned for latency as well as
 * bandwidth). A setting given in the environment wins over this call;
 * out-of-range values are ignored. Every rank must set the same. */
void coll_set_pipeline(coll_comm_t *c, size_t segment_bytes, int window);

/* recv[i] = op over ranks of send[i]; send == recv means in place. Every rank
 * gets bit-identical results. */
rt_status coll_allreduce(coll_comm_t *c, const void *send, void *recv, size_t count,
                         rt_dtype dt, coll_op op);
/* buf (count elements) on root is copied to every rank. */
rt_status coll_broadcast(coll_comm_t *c, void *buf, size_t count, rt_dtype dt, int root);
/* recv[r*count_per_rank ...] = send of rank r. In place: send == recv +
 * rank*count_per_rank elements. */
rt_status coll_allgather(coll_comm_t *c, const void *send, void *recv, size_t count_per_rank,
                         rt_dtype dt);
/* recv (count_per_rank elements) = op over ranks of send[rank*count_per_rank
 * ...]; send holds size*count_per_rank elements. In place: recv == send +
 * rank*count_per_rank elements. */
rt_status coll_reduce_scatter(coll_comm_t *c, const void *send, void *recv,
                              size_t count_per_rank, rt_dtype dt, coll_op op);
rt_status coll_barrier(coll_comm_t *c);

/* Nonblocking all-reduce: starts the call and returns a request that
 * coll_test/coll_wait progress on whichever thread calls them (the
 * collectives start no thread of their own; calls on one communicator must
 * not run on two threads at once). Several may be in flight on one
 * communicator; every test/wait progresses all of them, in start order.
 * Buffers must stay untouched until the request completes. All ranks must
 * start the same calls in the same order. */
rt_status coll_allreduce_start(coll_comm_t *c, const void *send, void *recv, size_t count,
                               rt_dtype dt, coll_op op, coll_request_t **req);
/* Nonblocking in-place reduce-scatter over uneven contiguous chunks: buf
 * holds sum(counts[0..size)) elements, chunk r being
 * [counts[0]+..+counts[r-1], +counts[r]). On completion chunk `rank` of buf
 * holds op over ranks of that chunk; the other chunks of buf are left with
 * unspecified values (partial sums). counts must be the same on every rank
 * (the handshake compares the total and a 64-bit hash of the array: a
 * difference is RT_ERR_MISMATCH on every rank); any count may be 0, this
 * rank's own included. counts is copied: the caller may free it at once. */
rt_status coll_reduce_scatter_v_start(coll_comm_t *c, void *buf, const size_t *counts,
                                      rt_dtype dt, coll_op op, coll_request_t **req);
/* Nonblocking in-place all-gather over uneven chunks (counts as above):
 * chunk `rank` of buf is this rank's contribution; on completion every chunk
 * holds its owner's. */
rt_status coll_allgather_v_start(coll_comm_t *c, void *buf, const size_t *counts,
                                 rt_dtype dt, coll_request_t **req);
/* Blocking forms: start, then coll_wait. */
rt_status coll_reduce_scatter_v(coll_comm_t *c, void *buf, const size_t *counts, rt_dtype dt,
                                coll_op op);
rt_status coll_allgather_v(coll_comm_t *c, void *buf, const size_t *counts, rt_dtype dt);

/* *done = 1 and the request freed (status returned) once complete. */
rt_status coll_test(coll_request_t *req, int *done);
/* Waits for completion (with the communicator's timeout) and frees req. */
rt_status coll_wait(coll_request_t *req);

/* Ends the whole job (MPI_Abort on the communicator, or on MPI_COMM_WORLD
 * when c is NULL) so that no peer stays blocked. Only launch/ calls this. */
void coll_abort(coll_comm_t *c, int code);

#ifdef __cplusplus
}
#endif

#endif
