/* coll_request.c - the life of one collective call: its place in the
 * communicator's queue, progress of every call in flight (in start order),
 * and the wait with a timeout. A call fails with RT_ERR_TIMEOUT after
 * `timeout` seconds without progress. Before that it warns once (at
 * warn_fraction of the timeout) and asks every other rank "which call are
 * you in?" (a roll call, answered from inside any wait on the communicator),
 * so the warning and the error can name the ranks that never arrived rather
 * than only the neighbour it waits on; on the timeout every reachable rank
 * prints its call history (coll_trace.c).
 *
 * A wait spins only briefly: then it yields and sleeps with growing naps
 * (up to 1 ms), so that a rank blocked on a stalled peer leaves its core to
 * others instead of burning it for the whole timeout. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collectives/coll_internal.h"
#include "common/check.h"
#include "common/timer.h"

rt_status coll_request_new(coll_comm_t *c, const coll_desc_t *d, coll_request_t **out)
{
    /* One freed request is kept for reuse: small calls are latency-bound and
     * malloc takes a lock once MPI has started its helper threads. */
    coll_request_t *r = c->spare;
    c->spare = NULL;
    if (r)
        memset(r, 0, sizeof *r);
    else
        r = calloc(1, sizeof *r);
    if (!r)
        return rt_fail(RT_ERR_NOMEM, "rank %d: cannot allocate a collective request", c->rank);
    r->comm = c;
    r->desc = *d;
    r->desc.seq = c->seq++;
    r->stage = REQ_HANDSHAKE;
    r->waiting_for = -1;
    r->hs.sreq = r->hs.rreq = MPI_REQUEST_NULL;
    r->hs.scratch_slot = -1;
    r->pl.scratch_slot = r->pl.out_scratch_slot = -1;
    r->last_progress = rt_now();
    coll_hist_begin(r);
    if (c->active_tail)
        c->active_tail->next = r;
    else
        c->active_head = r;
    c->active_tail = r;
    *out = r;
    return RT_OK;
}

void coll_request_free(coll_request_t *r)
{
    if (!r)
        return;
    coll_comm_t *c = r->comm;
    coll_request_t **pp = &c->active_head, *prev = NULL;
    while (*pp && *pp != r) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = r->next;
        if (c->active_tail == r)
            c->active_tail = prev;
    }
    coll_hist_end(r);
    if (r->abandoned)
        coll_scratch_drop(c, r->hs.scratch_slot);
    else
        coll_scratch_put(c, r->hs.scratch_slot, r->hs.sendpack);
    coll_pl_release(r);
    free(r->peers);
    free(r->vcount);  /* voff lives in the same allocation */
    if (!c->spare)
        c->spare = r;
    else
        free(r);
}

rt_status coll_request_fail(coll_request_t *r, rt_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    r->status = st;
    r->stage = REQ_DONE;
    return st;
}

rt_status coll_mpi_fail(coll_request_t *r, int rc, const char *what, int peer)
{
    char text[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, text, &len);
    coll_request_fail(r, RT_ERR_MPI, "rank %d: %s #%" PRIu64 ": %s with rank %d failed: %s",
                      r->comm->rank, coll_kind_name(r->desc.kind), r->desc.seq, what, peer, text);
    coll_comm_break(r->comm, r->msg);
    return RT_ERR_MPI;
}

/* Finishes the handshake stage: a mismatch ends the call on every rank. */
static void hs_finish(coll_request_t *r)
{
    coll_hdr_t *h = (coll_hdr_t *)r->hs.sendpack;
    if (h->flags & COLL_HDR_CONFLICT) {
        char da[160], db[160];
        coll_desc_format(&h->desc_a, da, sizeof da);
        coll_desc_format(&h->desc_b, db, sizeof db);
        coll_request_fail(r, RT_ERR_MISMATCH,
                          "rank %d: %s #%" PRIu64 ": ranks disagree: rank %d called %s, rank %d called %s",
                          r->comm->rank, coll_kind_name(r->desc.kind), r->desc.seq,
                          h->conf_a, da, h->conf_b, db);
        return;
    }
    if (r->desc.kind == 0) {
        /* This rank's own arguments were bad; peers learnt of it above. */
        r->stage = REQ_DONE;
        return;
    }
    if (r->hs.mode != HS_PAYLOAD_NONE && !r->hs.result_in_recv) {
        const unsigned char *acc = r->hs.sendpack + sizeof(coll_hdr_t);
        size_t n = (size_t)r->comm->size;
        switch (r->desc.kind) {
        case COLL_KIND_REDUCE_SCATTER: {
            /* the handshake reduced all n blocks; this rank keeps its own */
            size_t per = r->count / n;
            const unsigned char *mine = acc + (size_t)r->comm->rank * per * r->elem;
            if (r->op == COLL_AVG)
                coll_scale_avg(r->dt, r->recv, mine, per, (int)n);
            else if (per)
                memcpy(r->recv, mine, per * r->elem);
            break;
        }
        case COLL_KIND_REDUCE_SCATTER_V: {
            /* the handshake reduced the whole buffer; this rank keeps its
             * own chunk (the others' chunks stay as they were: unspecified) */
            size_t off = r->voff[r->comm->rank] * r->elem, len = r->vcount[r->comm->rank];
            unsigned char *dst = (unsigned char *)r->recv + off;
            if (r->op == COLL_AVG)
                coll_scale_avg(r->dt, dst, acc + off, len, (int)n);
            else if (len)
                memcpy(dst, acc + off, len * r->elem);
            break;
        }
        case COLL_KIND_ALLGATHER_V: /* every chunk (this rank's own is unchanged) */
            if (r->count)
                memcpy(r->recv, acc, r->count * r->elem);
            break;
        case COLL_KIND_ALLGATHER:
            if (r->count)
                memcpy(r->recv, acc, n * r->count * r->elem);
            break;
        default:
            if (r->hs.mode == HS_PAYLOAD_REDUCE && r->op == COLL_AVG)
                coll_scale_avg(r->dt, r->recv, acc, r->count, (int)n);
            else if (r->hs.payload_bytes)
                memcpy(r->recv, acc, r->hs.payload_bytes);
        }
    }
    coll_scratch_put(r->comm, r->hs.scratch_slot, r->hs.sendpack);
    r->hs.scratch_slot = -1;
    r->stage = r->use_pipeline ? REQ_PIPELINE : REQ_DONE;
}

/* One pass over every call in flight on c, oldest first. */
static int progress_all(coll_comm_t *c)
{
    int progressed = 0;
    for (coll_request_t *r = c->active_head; r; r = r->next) {
        if (r->stage == REQ_HANDSHAKE) {
            int moved = 0;
            if (coll_hs_progress(r, &moved) != RT_OK)
                continue;
            if (r->hs.cur == r->hs.nsteps) {
                hs_finish(r);
                moved = 1;
            }
            progressed |= moved;
        }
        if (r->stage == REQ_PIPELINE) {
            int moved = 0;
            coll_pl_progress(r, &moved);
            progressed |= moved;
        }
    }
    return progressed;
}

/* Cancels everything in flight on c and marks it broken. */
static void comm_fail_all(coll_comm_t *c, coll_request_t *failed)
{
    coll_comm_break(c, failed->msg);
    for (coll_request_t *q = c->active_head; q; q = q->next) {
        coll_hs_cancel(q);
        coll_pl_cancel(q);
        if (q->stage != REQ_DONE)
            coll_request_fail(q, failed->status, "%s", failed->msg);
    }
}

static void timeout_fail(coll_request_t *r, double idle)
{
    coll_comm_t *c = r->comm;
    /* the history first, while the call still shows where it waits */
    coll_dump_everywhere(r);
    char who[400];
    /* past the handshake every rank did arrive: a silent one stopped later */
    int elsewhere = 0;
    int silent = coll_rollcall_summary(r, who, sizeof who, r->rollcall_round,
                                       r->stage == REQ_HANDSHAKE ? "never arrived"
                                                                 : "stopped answering",
                                       &elsewhere);
    char tail[480];
    if (!r->peers)
        snprintf(tail, sizeof tail, "%s", "");
    else if (silent)
        snprintf(tail, sizeof tail, "; %s", who);
    else
        snprintf(tail, sizeof tail, "; every rank answered the roll call%s: %s",
                 elsewhere ? ", so they wait in different calls" : "", who);
    coll_request_fail(r, RT_ERR_TIMEOUT,
                      "rank %d: %s #%" PRIu64 " timed out after %.1f s waiting for rank %d%s",
                      c->rank, coll_kind_name(r->desc.kind), r->desc.seq, idle, r->waiting_for, tail);
    comm_fail_all(c, r);
}

rt_status coll_test(coll_request_t *r, int *done)
{
    if (!r || !done)
        return rt_fail(RT_ERR_INVALID, "coll_test: NULL argument");
    coll_comm_t *c = r->comm;
    *done = 0;
    double now = rt_now();
    if (progress_all(c))
        for (coll_request_t *q = c->active_head; q; q = q->next)
            q->last_progress = now;
    if (r->stage != REQ_DONE) {
        coll_ctl_serve(c, r);
        /* The stall checks concern the oldest unfinished call: the later
         * ones queue behind it, so one stall gives one roll call and one
         * warning however many calls are in flight. It has been idle
         * longest (progress updates every call), so it also times out
         * first, and failing it fails r with its message. */
        coll_request_t *s = c->active_head;
        while (s->stage == REQ_DONE)
            s = s->next;
        double idle = now - s->last_progress;
        double warn_at = c->warn_fraction * c->timeout;
        if (s->rollcall_round)
            coll_rollcall_collect(s);
        /* round 1 early enough that its answers are in for the warning;
         * round 2 fresh for the timeout's message */
        if (warn_at > 0 && idle > 0.5 * warn_at && s->rollcall_round < 1)
            coll_rollcall_send(s, 1);
        if (idle > 0.75 * c->timeout && s->rollcall_round < 2)
            coll_rollcall_send(s, 2);
        if (warn_at > 0 && idle > warn_at && !s->warned && idle <= c->timeout)
            coll_stall_warn(s, idle);
        if (idle > c->timeout)
            timeout_fail(s, idle);
    }
    if (r->stage != REQ_DONE)
        return RT_OK;
    *done = 1;
    rt_status st = r->status;
    if (st != RT_OK) {
        if (st != RT_ERR_MISMATCH && st != RT_ERR_INVALID)
            comm_fail_all(c, r);
        rt_fail(st, "%s", r->msg);
    }
    coll_request_free(r);
    return st;
}

/* The back-off of an idle wait, timed from the start of the idle stretch
 * (any progress starts it over): spin for spin_s (RT_COLL_SPIN_US), where a
 * message that is about to arrive costs no wake-up; then sched_yield() for
 * COLL_YIELD_S, which hands the core to a runnable peer on a crowded node;
 * then nanosleep with naps doubling from COLL_NAP_MIN_NS to COLL_NAP_MAX_NS.
 * A rank waiting on a stalled peer then polls about once a millisecond and
 * uses a few per cent of a core (2-4 % in coll_stall_np2); the price is up
 * to one nap of extra latency when a peer arrives more than ~0.3 ms late. */
#define COLL_YIELD_S 200e-6
#define COLL_NAP_MIN_NS 20000L
#define COLL_NAP_MAX_NS 1000000L
enum { WAIT_SPIN, WAIT_YIELD, WAIT_NAP };

rt_status coll_wait(coll_request_t *r)
{
    if (!r)
        return rt_fail(RT_ERR_INVALID, "coll_wait: NULL request");
    coll_comm_t *c = r->comm;
    double next_poll = rt_now() + 1e-3;
    double idle_start = 0;
    unsigned idle_polls = 0;
    int phase = WAIT_SPIN;
    long nap_ns = COLL_NAP_MIN_NS;
    int moved = 0;  /* progress since the clock was last read */
    for (;;) {
        int progressed = progress_all(c);
        if (r->stage == REQ_DONE)
            break;
        if (progressed) {
            moved = 1;
            idle_polls = 0;
            phase = WAIT_SPIN;
            continue;
        }
        if (phase == WAIT_SPIN) {
            /* Oversubscribed ranks must let their peers run at once. */
            if (c->yield_when_idle && idle_polls > 64)
                sched_yield();
            /* While spinning, the clock and the slow checks every 16 polls. */
            if (++idle_polls % 16)
                continue;
        }
        double now = rt_now();
        if (moved) {
            for (coll_request_t *q = c->active_head; q; q = q->next)
                q->last_progress = now;
            moved = 0;
        }
        if (phase == WAIT_SPIN && idle_polls == 16)
            idle_start = now;
        double idle = now - idle_start;
        if (phase == WAIT_SPIN && idle >= c->spin_s)
            phase = WAIT_YIELD;
        if (phase == WAIT_YIELD && idle >= c->spin_s + COLL_YIELD_S) {
            phase = WAIT_NAP;
            nap_ns = COLL_NAP_MIN_NS;
        }
        if (now >= next_poll) {
            next_poll = now + 1e-3;
            int done = 0;
            rt_status st = coll_test(r, &done);
            if (done)
                return st;
            if (r->last_progress >= now) {  /* the test moved something */
                idle_polls = 0;
                phase = WAIT_SPIN;
                continue;
            }
        }
        if (phase == WAIT_YIELD) {
            sched_yield();
        } else if (phase == WAIT_NAP) {
            struct timespec nap = {0, nap_ns};
            nanosleep(&nap, NULL);
            nap_ns = nap_ns * 2 < COLL_NAP_MAX_NS ? nap_ns * 2 : COLL_NAP_MAX_NS;
        }
    }
    int done = 0;
    return coll_test(r, &done);
}

rt_status coll_run(coll_request_t *r)
{
    return coll_wait(r);
}
