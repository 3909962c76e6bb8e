/* nccl_history.h - the flight recorder of the device collectives: the last
 * NCCL_HISTORY calls enqueued on an NCCL communicator (sequence number, kind,
 * count, bytes, when enqueued, whether the stream has passed them), the
 * stall warning a waiting rank prints once at a fraction of its timeout, and
 * the history it prints when the wait times out. The host collectives have
 * the same forensics in coll_trace.c; these lines use the same fields.
 *
 * Plain C with no CUDA: completion is asked through a callback (the CUDA
 * side records an event after each call and queries it), so a CPU test can
 * drive it. Not thread-safe: one thread enqueues and waits per communicator,
 * as for the communicator itself. */
#ifndef RT_COLLECTIVES_NCCL_HISTORY_H
#define RT_COLLECTIVES_NCCL_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "common/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NCCL_HISTORY 16

typedef enum {
    NCCL_HIST_EMPTY = 0,
    NCCL_HIST_PENDING,  /* enqueued, the stream has not passed it yet */
    NCCL_HIST_DONE,     /* the stream has passed it */
    NCCL_HIST_UNTRACKED /* enqueued during a graph capture: no event to ask */
} nccl_hist_state;

typedef struct {
    uint64_t seq;
    const char *kind; /* a string literal: "allreduce", "reduce_scatter_v", ...;
                         NCCL's own collectives start with "nccl" */
    uint64_t count;
    rt_dtype dtype;
    double enqueued, done_at; /* rt_now() clock; done_at: when a wait first saw
                                 it done, so a done call's duration is an upper
                                 bound */
    nccl_hist_state state;
} nccl_hist_entry;

typedef struct {
    nccl_hist_entry e[NCCL_HISTORY];
    uint64_t next;      /* sequence number of the next call */
    uint64_t polled;    /* calls before this one are known done or untracked */
    int rank, size;
    int printed;        /* the history has been printed (once per communicator) */
} nccl_history_t;

/* Reports whether the call in history slot `slot` has completed (1), not yet
 * (0), or cannot be asked (-1). */
typedef int (*nccl_hist_query_fn)(void *ctx, int slot);

void nccl_history_init(nccl_history_t *h, int rank, int size);

/* Records a call; returns its slot (where the caller records its event).
 * tracked = 0 for a call enqueued while the stream is being captured. */
int nccl_history_begin(nccl_history_t *h, const char *kind, uint64_t count, rt_dtype dtype,
                       int tracked, double now);

/* Marks calls done in sequence order, stopping at the first one the query
 * says is pending (a stream runs its calls in order). */
void nccl_history_poll(nccl_history_t *h, nccl_hist_query_fn query, void *ctx, double now);

/* Marks every recorded call done (the stream was seen idle). */
void nccl_history_all_done(nccl_history_t *h, double now);

/* The oldest call still pending, or NULL. */
const nccl_hist_entry *nccl_history_oldest_pending(const nccl_history_t *h);

/* The stall warning, e.g. "rank 1: device allreduce #37 (count=1048576
 * dtype=f32 bytes=4194304) stalled: not finished after 30.0 s (warning at
 * 10% of the 300 s timeout); the ring receives from rank 0 and sends to rank
 * 2; NCCL does not say which ranks have arrived: ...". The ring's neighbours
 * are named for our ring calls only (NCCL's own pick their algorithm).
 * Written into buf. */
void nccl_history_stall_line(const nccl_history_t *h, double waited, double fraction,
                             double timeout_s, char *buf, size_t len);

/* Formats line i (0 = the oldest still held) of the history into buf;
 * returns the number of lines, so a caller loops until i reaches it. */
int nccl_history_line(const nccl_history_t *h, int i, double now, char *buf, size_t len);

/* Prints the history at WARN level, at most once per communicator; `why`
 * ends the title line. */
void nccl_history_print(nccl_history_t *h, const char *why, double now);

#ifdef __cplusplus
}
#endif

#endif
