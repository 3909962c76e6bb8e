/* coll_internal.h - what the collectives' files share: the communicator and
 * request structures, the call header exchanged to check consistency, the
 * two executors (handshake rounds and the segmented ring pipeline) and the
 * reduction kernels. Not for use outside collectives/. */
#ifndef RT_COLLECTIVES_COLL_INTERNAL_H
#define RT_COLLECTIVES_COLL_INTERNAL_H

#include <mpi.h>
#include <stdbool.h>
#include <stdint.h>

#include "collectives/coll.h"

/* Tags on the private communicator: the control channel (roll calls and
 * history requests, and their answers) has fixed tags; each call uses two
 * tags derived from its sequence number (handshake, then data), so calls in
 * flight together never match each other's messages and a late message of
 * a failed call never matches a later one. */
enum { COLL_TAG_CTL = 2, COLL_TAG_CTL_REPLY = 3, COLL_TAG_CALLS = 16 };

/* Control messages, sent by a rank whose call makes no progress and answered
 * by peers from inside any wait on the communicator (coll_trace.c). */
enum {
    COLL_CTL_ROLLCALL = 1,  /* "which call are you in?" */
    COLL_CTL_HERE,          /* answer: in call seq/kind */
    COLL_CTL_DUMP,          /* "my call timed out: print your history" */
    COLL_CTL_DUMPED         /* answer: printed */
};
typedef struct {
    uint64_t type;          /* COLL_CTL_* */
    uint64_t seq, kind;     /* the sender's call (kind 0: none in flight) */
    uint64_t round;         /* roll-call round asked, or answered */
    uint64_t echo_seq;      /* answers: the asker's call */
    uint64_t pad;
} coll_ctl_t;


typedef enum {
    COLL_KIND_ALLREDUCE = 1, COLL_KIND_BROADCAST, COLL_KIND_ALLGATHER,
    COLL_KIND_REDUCE_SCATTER, COLL_KIND_BARRIER,
    COLL_KIND_REDUCE_SCATTER_V, COLL_KIND_ALLGATHER_V  /* uneven chunks, in place */
} coll_kind;

/* What one rank called: compared across ranks before any data moves. */
typedef struct {
    uint64_t seq;     /* per-communicator call number */
    uint64_t count;   /* the _v calls: the total over all chunks */
    uint64_t counts_hash; /* the _v calls: hash of the counts array (equal
                             totals with different chunks must not pass) */
    int32_t kind, dtype, op, root;
} coll_desc_t;

enum { COLL_HDR_HAS_ROOT = 1u, COLL_HDR_CONFLICT = 2u };
#define COLL_HDR_MAGIC 0x52544331u /* "RTC1" */

/* The header every handshake message starts with (192 bytes: a multiple of
 * 64, so a payload behind it stays aligned for any element type). `conf_*` is the conflict
 * with the smallest rank pair seen so far, so that every rank reports the
 * same one. */
typedef struct {
    uint32_t magic, flags;
    int32_t rank, conf_a, conf_b, pad;
    coll_desc_t self, desc_a, desc_b;
    char reserved[192 - 24 - 3 * sizeof(coll_desc_t)];
} coll_hdr_t;
_Static_assert(sizeof(coll_hdr_t) == 192, "header is 192 bytes");

/* What the roll call learnt about one peer. */
typedef struct {
    uint64_t seq;              /* the call it was in when it answered */
    int32_t kind;              /* of that call (0: invalid arguments) */
    int32_t round;             /* the latest round it answered; 0: none */
    int printed;               /* answered this rank's history request */
} coll_peer_t;

/* One entry of a communicator's call history (the flight recorder that a
 * timeout prints). */
typedef enum {
    COLL_HIST_WAITING = 1, COLL_HIST_DONE, COLL_HIST_MISMATCH, COLL_HIST_INVALID,
    COLL_HIST_TIMEOUT, COLL_HIST_FAILED, COLL_HIST_CANCELLED
} coll_hist_state;
typedef struct {
    uint64_t seq, count;
    int32_t kind, dtype;
    int peer;                  /* the last rank the call waited on; -1: none */
    int state;                 /* coll_hist_state; 0: unused slot */
    double start, end;
} coll_hist_t;
#define COLL_HISTORY 16

/* A cached scratch buffer, handed to one request at a time. */
typedef struct {
    void *ptr;
    size_t cap;
    int busy;
} coll_scratch_t;
#define COLL_SCRATCH_SLOTS 8
#define COLL_SCRATCH_OWNED (-2)  /* a private buffer, freed on return */

struct coll_comm {
    MPI_Comm mpi;              /* private duplicate: our tags never meet others' */
    int rank, size, local_rank, local_size;
    double timeout;
    double warn_fraction;      /* warn once after this fraction of timeout; 0: never */
    uint64_t seq;
    int tag_span;              /* number of distinct per-call tag pairs */
    int broken;                /* set after a timeout or MPI failure */
    int yield_when_idle;       /* more ranks on this node than cores */
    char broken_msg[512];
    coll_request_t *active_head, *active_tail; /* in start order */
    coll_request_t *spare;     /* a freed request kept for reuse */
    coll_scratch_t scratch[COLL_SCRATCH_SLOTS];
    coll_hist_t history[COLL_HISTORY]; /* call seq lives in slot seq % COLL_HISTORY */
    int history_printed;       /* printed once per communicator, at the first timeout */
    /* control messages must outlive their Isend: one buffer for this rank's
     * roll calls, one for its history request, one answer slot per peer */
    coll_ctl_t ctl_rollcall, ctl_dump;
    coll_ctl_t *ctl_answers;   /* size entries, allocated at the first answer */
    /* tuning, from the environment at creation (see docs/COLLECTIVES.md) */
    size_t segment_bytes;      /* RT_COLL_SEGMENT */
    int window;                /* RT_COLL_WINDOW: segments in flight per direction */
    size_t small_bytes;        /* RT_COLL_SMALL: all-reduce/broadcast payload at or below
                                  which the handshake carries the data */
    double spin_s;             /* RT_COLL_SPIN_US: busy polling before a wait backs off */
};

static inline int coll_tag(const coll_comm_t *c, uint64_t seq, int data)
{
    return COLL_TAG_CALLS + 2 * (int)(seq % (uint64_t)c->tag_span) + data;
}

/* ---- handshake: header exchange in a recursive-doubling pattern ---------- */
typedef enum { HS_EXCHANGE, HS_FOLD_SEND, HS_FOLD_RECV, HS_RESULT_SEND, HS_RESULT_RECV } hs_step_kind;
typedef struct {
    hs_step_kind kind;
    int peer;
} hs_step_t;

/* How the payload carried by the handshake is combined on receipt. */
/* GATHER: the payload is every rank's block followed by a bitmap of the
 * blocks present. */
typedef enum { HS_PAYLOAD_NONE, HS_PAYLOAD_REDUCE, HS_PAYLOAD_BCAST, HS_PAYLOAD_GATHER } hs_payload_mode;

typedef struct {
    hs_step_t steps[72];
    int nsteps, cur, posted;
    int truncated, got;        /* the current step's receive */
    int result_in_recv;        /* the last merge wrote the user's buffer */
    MPI_Request sreq, rreq;
    hs_payload_mode mode;
    size_t payload_bytes;
    unsigned char *sendpack, *recvpack; /* header + payload, from scratch */
    int scratch_slot;
} coll_hs_t;

/* ---- pipeline: per-step plan for the segmented ring / chain ------------- */
enum { PL_RECV_NONE, PL_RECV_REDUCE, PL_RECV_REDUCE_FINAL, PL_RECV_DIRECT };
typedef struct {
    int send_chunk, send_from_src, send_dep;   /* -1: no send / no dependency */
    int recv_chunk, recv_mode, recv_wait_send; /* recv_wait_send: step whose send
                                                  must complete first, or -1 */
} pl_step_t;

typedef struct {
    int nsteps, nseg, window;
    size_t seg_elems;
    pl_step_t *steps;
    size_t *chunk_off, *chunk_len;  /* elements */
    const unsigned char *src;       /* this rank's contribution */
    unsigned char *out;             /* where chunks live (user buffer or scratch) */
    unsigned char *final_out;       /* reduce-scatter: the rank's own result */
    int final_chunk;
    int left, right;
    int tag;
    /* progress counters over the global order k = step*nseg + segment */
    long send_cursor, recv_cursor;
    MPI_Request *sreq, *rreq;
    long *sk, *rk;                  /* k of each in-flight request (FIFO) */
    int s_head, s_count, r_head, r_count;
    long recv_posted;               /* number of receives posted: tmp slot index */
    unsigned char *tmp;             /* window * seg bytes, from scratch */
    int scratch_slot, out_scratch_slot;
    void *alloc;                    /* one allocation for the arrays above */
} coll_pl_t;

typedef enum { REQ_HANDSHAKE, REQ_PIPELINE, REQ_DONE } req_stage;

struct coll_request {
    coll_comm_t *comm;
    coll_request_t *next;
    coll_desc_t desc;
    req_stage stage;
    rt_status status;
    char msg[768];
    size_t elem, count;
    rt_dtype dt;
    coll_op op;
    const void *send;
    void *recv;
    /* the _v calls: a copy of the counts (the caller may free its own) and
     * their prefix sums, size entries each, in one allocation; NULL else */
    size_t *vcount, *voff;
    int use_pipeline;
    coll_hs_t hs;
    coll_pl_t pl;
    int waiting_for;               /* rank the last stalled request waits on */
    double last_progress;
    int rollcall_round;            /* roll calls sent for this call (0, 1, 2) */
    int warned;                    /* the stall warning has been printed */
    coll_peer_t *peers;            /* per rank, from the roll calls (size entries) */
    int abandoned;                 /* cancelled with transfers left in flight: its
                                      scratch is dropped, not reused */
};

/* coll_comm.c */
rt_status coll_comm_usable(const coll_comm_t *c, const char *what);
void coll_comm_break(coll_comm_t *c, const char *msg);
int coll_scratch_get(coll_comm_t *c, size_t bytes, void **ptr);
void coll_scratch_put(coll_comm_t *c, int slot, void *ptr);
/* Forgets a slot whose memory a released transfer may still touch. */
void coll_scratch_drop(coll_comm_t *c, int slot);
/* Cancelling without waiting on a peer: a receive that has already matched
 * a message from a stopped peer cannot be cancelled, and MPI_Wait on it
 * would wait for that peer. coll_recv_settle polls a cancelled receive
 * until `until` (rt_now() clock), then frees it; coll_send_release tests a
 * send once, then frees it. Both return 1 when the transfer was left in
 * flight, so that its memory is not reused (coll_scratch_drop). */
#define COLL_CANCEL_WAIT_S 0.02
int coll_recv_settle(MPI_Request *q, double until);
int coll_send_release(MPI_Request *q);

/* coll_reduce.c: the element types the collectives take (coll.h: F32, F64,
 * BF16, U8, I32, I64); other rt_dtype values are refused by the argument
 * checks before any kernel below sees them. */
bool coll_dtype_supported(rt_dtype dt);
/* dst[i] = a[i] + b[i] (a may equal dst), and the AVG form
 * dst[i] = (a[i] + b[i]) / n. */
void coll_reduce(rt_dtype dt, void *dst, const void *a, const void *b, size_t n);
void coll_reduce_avg(rt_dtype dt, void *dst, const void *a, const void *b, size_t n, int ranks);
/* dst[i] = src[i] / n (the single-rank average). */
void coll_scale_avg(rt_dtype dt, void *dst, const void *src, size_t n, int ranks);

/* coll_handshake.c */
void coll_hs_plan(coll_hs_t *hs, int rank, int size);
rt_status coll_hs_progress(coll_request_t *r, int *progressed);
void coll_hs_cancel(coll_request_t *r);
void coll_desc_format(const coll_desc_t *d, char *buf, size_t len);
const char *coll_kind_name(int kind);

/* coll_pipeline.c */
rt_status coll_pl_progress(coll_request_t *r, int *progressed);
void coll_pl_cancel(coll_request_t *r);
void coll_pl_release(coll_request_t *r);

/* coll_trace.c: the call history, the stall warning, roll calls and the
 * history requests of a timeout. */
void coll_hist_begin(coll_request_t *r);
void coll_hist_end(coll_request_t *r);
/* Prints the history (at most once per communicator); `why` ends the title. */
void coll_hist_print(coll_comm_t *c, const char *why);
/* Answers roll calls and history requests that reached this rank. */
void coll_ctl_serve(coll_comm_t *c, const coll_request_t *current);
void coll_rollcall_send(coll_request_t *r, int round);
void coll_rollcall_collect(coll_request_t *r);
void coll_stall_warn(coll_request_t *r, double idle);
/* Writes what the roll calls say about the other ranks, e.g. "rank 2 never
 * arrived; rank 3 is in barrier #7", counting a rank as silent unless it
 * answered round min_round or later; returns the number of silent ranks and
 * sets *elsewhere (may be NULL) to the number in other calls. */
int coll_rollcall_summary(const coll_request_t *r, char *buf, size_t len, int min_round,
                          const char *silent_word, int *elsewhere);
/* After a timeout: asks every rank to print its history and waits a short
 * grace for the ranks that answered the latest roll call. */
void coll_dump_everywhere(coll_request_t *r);
/* "pipeline: 3/16 sends, 2/16 receives done" or "handshake step 1 of 2". */
void coll_request_where(const coll_request_t *r, char *buf, size_t len);

/* coll_request.c */
rt_status coll_request_new(coll_comm_t *c, const coll_desc_t *d, coll_request_t **out);
rt_status coll_request_fail(coll_request_t *r, rt_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
rt_status coll_mpi_fail(coll_request_t *r, int rc, const char *what, int peer);
rt_status coll_run(coll_request_t *r); /* wait and free */
void coll_request_free(coll_request_t *r);

#endif
