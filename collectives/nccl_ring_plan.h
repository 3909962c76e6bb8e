/* nccl_ring_plan.h - the schedule of the device ring all-reduce: which
 * segment each rank sends and receives at each step, cut into chunks. Pure
 * arithmetic with no CUDA or NCCL, so that a CPU test can play the schedule
 * for many ranks (one GPU cannot host a multi-rank NCCL communicator).
 *
 * n ranks, rank r, count elements cut into n near-equal segments:
 *   reduce-scatter step k = 0..n-2: send segment (r-k) to the right, receive
 *     segment (r-k-1) from the left and add it; afterwards rank r holds the
 *     full sum of segment (r+1) mod n.
 *   allgather step k = 0..n-2: send segment (r+1-k) to the right, receive
 *     segment (r-k) from the left in place.
 * Reduce-scatter transfers are cut into chunks of chunk_elems (the pipeline
 * unit); sender and receiver cut a segment alike, so the i-th send from r to
 * r+1 always meets the i-th receive of r+1 from r, with the same length. */
#ifndef RT_COLLECTIVES_NCCL_RING_PLAN_H
#define RT_COLLECTIVES_NCCL_RING_PLAN_H

#include <stddef.h>

#include "common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { NCCL_RING_REDUCE_SCATTER = 0, NCCL_RING_ALLGATHER = 1 } nccl_ring_phase_t;

/* One grouped transfer: a send to the right and a receive from the left
 * (either may be empty), in elements. */
typedef struct {
    nccl_ring_phase_t phase;
    int step;             /* k */
    int first_of_step;    /* the first transfer of step k */
    int last_of_step;     /* the last transfer of step k */
    size_t send_off, send_len;
    size_t recv_off, recv_len;
    int slot;             /* reduce-scatter: scratch slot (chunk index mod 2) */
} nccl_ring_xfer_t;

typedef rt_status (*nccl_ring_xfer_fn)(void *arg, const nccl_ring_xfer_t *x);

/* Segment s of n near-equal segments of count elements. */
void nccl_ring_segment(size_t count, int n, int s, size_t *off, size_t *len);

/* The segment rank r holds fully reduced after the reduce-scatter. */
int nccl_ring_owned_segment(int n, int r);

/* Calls fn for every transfer of rank r (of n) in the given phase, in order;
 * stops at and returns the first error. Nothing for n == 1 or count == 0. */
rt_status nccl_ring_plan_run(nccl_ring_phase_t phase, size_t count, int n, int r,
                             size_t chunk_elems, nccl_ring_xfer_fn fn, void *arg);

/* The uneven-chunk form behind nccl_reduce_scatter_v_ring and
 * nccl_allgather_v_ring (in place, like the host coll_*_v calls): chunk i is
 * [counts[0]+..+counts[i-1], +counts[i]), and any count may be 0.
 *   reduce-scatter step k = 0..n-2: send chunk (r-k-1) to the right, receive
 *     chunk (r-k-2) from the left and add it; afterwards rank r holds the
 *     full sum of chunk r (its own). Transfers are cut into chunk_elems.
 *   allgather step k = 0..n-2: send chunk (r-k), receive chunk (r-k-1) in
 *     place, whole.
 * A rank's send and its right neighbour's receive at step k concern the
 * same chunk, cut alike, so they pair up one to one. A step whose two chunks
 * are both empty has no transfers. counts must be the same on every rank. */
rt_status nccl_ring_plan_run_v(nccl_ring_phase_t phase, const size_t *counts, int n, int r,
                               size_t chunk_elems, nccl_ring_xfer_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif
