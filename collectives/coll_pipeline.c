/* coll_pipeline.c - the segmented pipeline behind the ring all-reduce,
 * reduce-scatter and allgather and the chain broadcast.
 *
 * A plan is a list of steps; each step sends one chunk to the right
 * neighbour and receives one chunk from the left. Every chunk is cut into
 * segments, and operation k = step*nseg + segment is issued in increasing k
 * on every rank, so a rank's k-th send meets its right neighbour's k-th
 * receive by MPI's ordering alone (one tag per call). Up to `window` sends
 * and receives are in flight at once: while segment k is being reduced,
 * segments k+1.. are moving. A send may depend on an earlier step's receive
 * of the same segment (forwarding a reduced partial sum), and a receive into
 * memory that a pending send still reads waits for that send; both point to
 * smaller k, so the pipeline cannot deadlock. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdlib.h>

#include "collectives/coll_internal.h"
#include "common/timer.h"

static size_t seg_len(const coll_pl_t *p, int chunk, int seg)
{
    size_t len = p->chunk_len[chunk], start = (size_t)seg * p->seg_elems;
    if (start >= len)
        return 0;
    return len - start < p->seg_elems ? len - start : p->seg_elems;
}

static unsigned char *out_ptr(const coll_pl_t *p, int chunk, size_t elem)
{
    if (p->final_out && chunk == p->final_chunk)
        return p->final_out;
    return p->out + p->chunk_off[chunk] * elem;
}

static long recv_processed_upto(const coll_pl_t *p)
{
    return p->r_count ? p->rk[p->r_head] : p->recv_cursor;
}

static long send_completed_upto(const coll_pl_t *p)
{
    return p->s_count ? p->sk[p->s_head] : p->send_cursor;
}

static int post_sends(coll_request_t *r, rt_status *st)
{
    coll_pl_t *p = &r->pl;
    long total = (long)p->nsteps * p->nseg;
    int posted = 0;
    while (p->send_cursor < total && p->s_count < p->window) {
        long k = p->send_cursor;
        int s = (int)(k / p->nseg), j = (int)(k % p->nseg);
        const pl_step_t *step = &p->steps[s];
        size_t len = step->send_chunk >= 0 ? seg_len(p, step->send_chunk, j) : 0;
        if (len == 0) {
            p->send_cursor++;
            continue;
        }
        if (step->send_dep >= 0 && recv_processed_upto(p) <= (long)step->send_dep * p->nseg + j)
            break;
        size_t off = (p->chunk_off[step->send_chunk] + (size_t)j * p->seg_elems) * r->elem;
        const unsigned char *buf = step->send_from_src
            ? p->src + off
            : out_ptr(p, step->send_chunk, r->elem) + (size_t)j * p->seg_elems * r->elem;
        int slot = (p->s_head + p->s_count) % p->window;
        int rc = MPI_Isend(buf, (int)(len * r->elem), MPI_BYTE, p->right, p->tag, r->comm->mpi,
                           &p->sreq[slot]);
        if (rc != MPI_SUCCESS) {
            *st = coll_mpi_fail(r, rc, "MPI_Isend", p->right);
            return posted;
        }
        p->sk[slot] = k;
        p->s_count++;
        p->send_cursor++;
        posted = 1;
    }
    return posted;
}

static int post_recvs(coll_request_t *r, rt_status *st)
{
    coll_pl_t *p = &r->pl;
    long total = (long)p->nsteps * p->nseg;
    int posted = 0;
    size_t seg_bytes = p->seg_elems * r->elem;
    while (p->recv_cursor < total && p->r_count < p->window) {
        long k = p->recv_cursor;
        int s = (int)(k / p->nseg), j = (int)(k % p->nseg);
        const pl_step_t *step = &p->steps[s];
        size_t len = step->recv_chunk >= 0 ? seg_len(p, step->recv_chunk, j) : 0;
        if (len == 0) {
            p->recv_cursor++;
            continue;
        }
        if (step->recv_wait_send >= 0 &&
            send_completed_upto(p) <= (long)step->recv_wait_send * p->nseg + j)
            break;
        unsigned char *buf = step->recv_mode == PL_RECV_DIRECT
            ? out_ptr(p, step->recv_chunk, r->elem) + (size_t)j * seg_bytes
            : p->tmp + (size_t)(p->recv_posted % p->window) * seg_bytes;
        int slot = (p->r_head + p->r_count) % p->window;
        int rc = MPI_Irecv(buf, (int)(len * r->elem), MPI_BYTE, p->left, p->tag, r->comm->mpi,
                           &p->rreq[slot]);
        if (rc != MPI_SUCCESS) {
            *st = coll_mpi_fail(r, rc, "MPI_Irecv", p->left);
            return posted;
        }
        p->rk[slot] = k;
        p->r_count++;
        p->recv_cursor++;
        p->recv_posted++;
        posted = 1;
    }
    return posted;
}

/* Reduces a completed receive into its chunk. */
static void process_recv(coll_request_t *r, long k, long tmp_index)
{
    coll_pl_t *p = &r->pl;
    int s = (int)(k / p->nseg), j = (int)(k % p->nseg);
    const pl_step_t *step = &p->steps[s];
    if (step->recv_mode != PL_RECV_REDUCE && step->recv_mode != PL_RECV_REDUCE_FINAL)
        return;
    int c = step->recv_chunk;
    size_t len = seg_len(p, c, j);
    size_t seg_off = (size_t)j * p->seg_elems * r->elem;
    unsigned char *dst = out_ptr(p, c, r->elem) + seg_off;
    const unsigned char *mine = p->src + p->chunk_off[c] * r->elem + seg_off;
    const unsigned char *in = p->tmp + (size_t)(tmp_index % p->window) * p->seg_elems * r->elem;
    if (step->recv_mode == PL_RECV_REDUCE_FINAL && r->op == COLL_AVG)
        coll_reduce_avg(r->dt, dst, mine, in, len, r->comm->size);
    else
        coll_reduce(r->dt, dst, mine, in, len);
}

rt_status coll_pl_progress(coll_request_t *r, int *progressed)
{
    coll_pl_t *p = &r->pl;
    long total = (long)p->nsteps * p->nseg;
    rt_status st = RT_OK;
    for (;;) {
        int moved = post_sends(r, &st);
        if (st != RT_OK)
            return st;
        moved |= post_recvs(r, &st);
        if (st != RT_OK)
            return st;
        while (p->r_count) {
            int flag = 0;
            int rc = MPI_Test(&p->rreq[p->r_head], &flag, MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS)
                return coll_mpi_fail(r, rc, "MPI_Test (receive)", p->left);
            if (!flag)
                break;
            long tmp_index = p->recv_posted - p->r_count;
            process_recv(r, p->rk[p->r_head], tmp_index);
            p->r_head = (p->r_head + 1) % p->window;
            p->r_count--;
            moved = 1;
        }
        while (p->s_count) {
            int flag = 0;
            int rc = MPI_Test(&p->sreq[p->s_head], &flag, MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS)
                return coll_mpi_fail(r, rc, "MPI_Test (send)", p->right);
            if (!flag)
                break;
            p->s_head = (p->s_head + 1) % p->window;
            p->s_count--;
            moved = 1;
        }
        if (!moved)
            break;
        *progressed = 1;
    }
    if (p->send_cursor >= total && p->recv_cursor >= total && !p->s_count && !p->r_count) {
        r->stage = REQ_DONE;
        return RT_OK;
    }
    r->waiting_for = p->r_count ? p->left : p->right;
    return RT_OK;
}

void coll_pl_cancel(coll_request_t *r)
{
    coll_pl_t *p = &r->pl;
    /* all cancels first, so that they settle together within one wait */
    for (int i = 0; p->rreq && i < p->r_count; i++)
        MPI_Cancel(&p->rreq[(p->r_head + i) % p->window]);
    double until = rt_now() + COLL_CANCEL_WAIT_S;
    for (int i = 0; p->rreq && i < p->r_count; i++)
        r->abandoned |= coll_recv_settle(&p->rreq[(p->r_head + i) % p->window], until);
    p->r_count = 0;
    for (int i = 0; p->sreq && i < p->s_count; i++)
        r->abandoned |= coll_send_release(&p->sreq[(p->s_head + i) % p->window]);
    p->s_count = 0;
}

void coll_pl_release(coll_request_t *r)
{
    coll_pl_t *p = &r->pl;
    if (r->abandoned) {
        coll_scratch_drop(r->comm, p->scratch_slot);
        coll_scratch_drop(r->comm, p->out_scratch_slot);
    } else {
        coll_scratch_put(r->comm, p->scratch_slot, p->tmp);
        coll_scratch_put(r->comm, p->out_scratch_slot, p->out);
    }
    p->scratch_slot = p->out_scratch_slot = -1;
    free(p->alloc);
    p->alloc = NULL;
}
