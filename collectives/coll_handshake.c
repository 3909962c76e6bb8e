/* coll_handshake.c - the call header exchange that opens every collective:
 * recursive doubling over the ranks (with the ranks beyond the largest power
 * of two folded into a partner first and sent the result last), so that
 * after ceil(log2 n) rounds every rank knows whether any two ranks called
 * with different operation, count, type, root or sequence number, and which
 * pair. Small all-reduces and broadcasts carry their data behind the header,
 * so the check costs them nothing; larger calls exchange the header alone
 * and then run the pipeline. A barrier is the header exchange alone.
 *
 * Why this detects every mismatch: in each round a rank merges a partner
 * whose rank set is disjoint from its own; if both sets were uniform, the
 * union is uniform exactly when the two ranks' own descriptors agree, so
 * comparing those (and OR-ing the partner's flag) is enough. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "collectives/coll_internal.h"
#include "common/timer.h"

const char *coll_kind_name(int kind)
{
    switch (kind) {
    case COLL_KIND_ALLREDUCE: return "allreduce";
    case COLL_KIND_BROADCAST: return "broadcast";
    case COLL_KIND_ALLGATHER: return "allgather";
    case COLL_KIND_REDUCE_SCATTER: return "reduce_scatter";
    case COLL_KIND_BARRIER: return "barrier";
    case COLL_KIND_REDUCE_SCATTER_V: return "reduce_scatter_v";
    case COLL_KIND_ALLGATHER_V: return "allgather_v";
    }
    return "invalid call";
}

void coll_desc_format(const coll_desc_t *d, char *buf, size_t len)
{
    if (d->kind == 0) {
        snprintf(buf, len, "call #%" PRIu64 " with invalid arguments", d->seq);
        return;
    }
    int n = snprintf(buf, len, "%s #%" PRIu64, coll_kind_name(d->kind), d->seq);
    if (d->kind == COLL_KIND_BARRIER || n < 0 || (size_t)n >= len)
        return;
    n += snprintf(buf + n, len - (size_t)n, " count=%" PRIu64 " dtype=%s", d->count,
                  rt_dtype_name((rt_dtype)d->dtype));
    if ((size_t)n < len && (d->kind == COLL_KIND_ALLREDUCE || d->kind == COLL_KIND_REDUCE_SCATTER ||
                            d->kind == COLL_KIND_REDUCE_SCATTER_V))
        n += snprintf(buf + n, len - (size_t)n, " op=%s", d->op == COLL_AVG ? "avg" : "sum");
    /* equal totals with different chunks differ only here */
    if ((size_t)n < len && (d->kind == COLL_KIND_REDUCE_SCATTER_V || d->kind == COLL_KIND_ALLGATHER_V))
        n += snprintf(buf + n, len - (size_t)n, " counts_hash=%016" PRIx64, d->counts_hash);
    if ((size_t)n < len && d->kind == COLL_KIND_BROADCAST)
        snprintf(buf + n, len - (size_t)n, " root=%d", d->root);
}

void coll_hs_plan(coll_hs_t *hs, int rank, int size)
{
    int p2 = 1;
    while (p2 * 2 <= size)
        p2 *= 2;
    int rem = size - p2;
    hs->nsteps = 0;
    hs->cur = 0;
    hs->posted = 0;
    if (rank < 2 * rem && rank % 2 == 0) {
        hs->steps[hs->nsteps++] = (hs_step_t){HS_FOLD_SEND, rank + 1};
        hs->steps[hs->nsteps++] = (hs_step_t){HS_RESULT_RECV, rank + 1};
        return;
    }
    int newrank = rank < 2 * rem ? rank / 2 : rank - rem;
    if (rank < 2 * rem)
        hs->steps[hs->nsteps++] = (hs_step_t){HS_FOLD_RECV, rank - 1};
    for (int mask = 1; mask < p2; mask <<= 1) {
        int pn = newrank ^ mask;
        int peer = pn < rem ? pn * 2 + 1 : pn + rem;
        hs->steps[hs->nsteps++] = (hs_step_t){HS_EXCHANGE, peer};
    }
    if (rank < 2 * rem)
        hs->steps[hs->nsteps++] = (hs_step_t){HS_RESULT_SEND, rank - 1};
}

static int desc_equal(const coll_desc_t *a, const coll_desc_t *b)
{
    return a->seq == b->seq && a->count == b->count && a->counts_hash == b->counts_hash &&
           a->kind == b->kind && a->dtype == b->dtype && a->op == b->op && a->root == b->root;
}

/* Keeps the conflict with the smallest (a, b) rank pair. */
static void conflict_offer(coll_hdr_t *h, int a, int b, const coll_desc_t *da, const coll_desc_t *db)
{
    if ((h->flags & COLL_HDR_CONFLICT) && (h->conf_a < a || (h->conf_a == a && h->conf_b <= b)))
        return;
    h->flags |= COLL_HDR_CONFLICT;
    h->conf_a = a;
    h->conf_b = b;
    h->desc_a = *da;
    h->desc_b = *db;
}

/* Folds a received header (and payload) into this rank's state. */
static void hs_merge(coll_request_t *r, hs_step_kind kind, int peer, int truncated, int got_bytes)
{
    coll_hs_t *hs = &r->hs;
    coll_hdr_t *mine = (coll_hdr_t *)hs->sendpack;
    const coll_hdr_t *theirs = (const coll_hdr_t *)hs->recvpack;
    int hdr_ok = got_bytes >= (int)sizeof(coll_hdr_t) && theirs->magic == COLL_HDR_MAGIC;
    if (!hdr_ok) {
        /* Not our header: someone sent something else on this tag. */
        coll_desc_t unknown = {0};
        unknown.seq = mine->self.seq;
        if (peer < r->comm->rank)
            conflict_offer(mine, peer, r->comm->rank, &unknown, &mine->self);
        else
            conflict_offer(mine, r->comm->rank, peer, &mine->self, &unknown);
        return;
    }
    if (kind == HS_RESULT_RECV) {
        /* The partner holds the final view; take it whole. */
        mine->flags = theirs->flags;
        mine->conf_a = theirs->conf_a;
        mine->conf_b = theirs->conf_b;
        mine->desc_a = theirs->desc_a;
        mine->desc_b = theirs->desc_b;
        if (!(mine->flags & COLL_HDR_CONFLICT) && !truncated &&
            (size_t)got_bytes == sizeof(coll_hdr_t) + hs->payload_bytes && hs->payload_bytes)
            memcpy(hs->sendpack + sizeof(coll_hdr_t), hs->recvpack + sizeof(coll_hdr_t),
                   hs->payload_bytes);
        return;
    }
    if (theirs->flags & COLL_HDR_CONFLICT)
        conflict_offer(mine, theirs->conf_a, theirs->conf_b, &theirs->desc_a, &theirs->desc_b);
    if (!desc_equal(&mine->self, &theirs->self) || mine->self.kind == 0) {
        if (peer < r->comm->rank)
            conflict_offer(mine, peer, r->comm->rank, &theirs->self, &mine->self);
        else
            conflict_offer(mine, r->comm->rank, peer, &mine->self, &theirs->self);
    }
    if ((mine->flags & COLL_HDR_CONFLICT) || truncated ||
        (size_t)got_bytes != sizeof(coll_hdr_t) + hs->payload_bytes || !hs->payload_bytes)
        return;
    unsigned char *acc = hs->sendpack + sizeof(coll_hdr_t);
    const unsigned char *in = hs->recvpack + sizeof(coll_hdr_t);
    if (hs->mode == HS_PAYLOAD_REDUCE) {
        /* The last exchange of a sum writes the user's buffer directly,
         * saving a copy: the whole call is latency at these sizes. */
        if (hs->cur == hs->nsteps - 1 && kind == HS_EXCHANGE && r->op == COLL_SUM &&
            r->desc.kind == COLL_KIND_ALLREDUCE) {
            coll_reduce(r->dt, r->recv, acc, in, r->count);
            hs->result_in_recv = 1;
        } else {
            coll_reduce(r->dt, acc, acc, in, r->count);
        }
    } else if (hs->mode == HS_PAYLOAD_BCAST) {
        if ((theirs->flags & COLL_HDR_HAS_ROOT) && !(mine->flags & COLL_HDR_HAS_ROOT))
            memcpy(acc, in, hs->payload_bytes);
    } else if (hs->mode == HS_PAYLOAD_GATHER) {
        /* take the blocks the partner has and this rank lacks; the _v
         * call's blocks are its uneven chunks (r->count is their total) */
        size_t block = r->count * r->elem, n = (size_t)r->comm->size;
        size_t data = r->voff ? block : n * block;
        unsigned char *have = acc + data;
        const unsigned char *their_have = in + data;
        for (size_t b = 0; b < n; b++) {
            unsigned char bit = (unsigned char)(1u << (b % 8));
            if ((their_have[b / 8] & bit) && !(have[b / 8] & bit)) {
                size_t off = r->voff ? r->voff[b] * r->elem : b * block;
                size_t len = r->voff ? r->vcount[b] * r->elem : block;
                if (len)
                    memcpy(acc + off, in + off, len);
                have[b / 8] |= bit;
            }
        }
    }
    mine->flags |= theirs->flags & COLL_HDR_HAS_ROOT;
}

static int step_sends(hs_step_kind k) { return k == HS_EXCHANGE || k == HS_FOLD_SEND || k == HS_RESULT_SEND; }
static int step_recvs(hs_step_kind k) { return k == HS_EXCHANGE || k == HS_FOLD_RECV || k == HS_RESULT_RECV; }

/* Advances the header exchange as far as it goes without blocking. */
rt_status coll_hs_progress(coll_request_t *r, int *progressed)
{
    coll_hs_t *hs = &r->hs;
    coll_comm_t *c = r->comm;
    int bytes = (int)(sizeof(coll_hdr_t) + hs->payload_bytes);
    while (hs->cur < hs->nsteps) {
        hs_step_t *st = &hs->steps[hs->cur];
        if (!hs->posted) {
            int rc;
            if (step_recvs(st->kind)) {
                rc = MPI_Irecv(hs->recvpack, bytes, MPI_BYTE, st->peer, coll_tag(c, r->desc.seq, 0), c->mpi, &hs->rreq);
                if (rc != MPI_SUCCESS)
                    return coll_mpi_fail(r, rc, "MPI_Irecv (handshake)", st->peer);
            }
            if (step_sends(st->kind)) {
                rc = MPI_Isend(hs->sendpack, bytes, MPI_BYTE, st->peer, coll_tag(c, r->desc.seq, 0), c->mpi, &hs->sreq);
                if (rc != MPI_SUCCESS)
                    return coll_mpi_fail(r, rc, "MPI_Isend (handshake)", st->peer);
            }
            hs->posted = 1;
            *progressed = 1;
        }
        /* Both directions must finish before merging: the merge rewrites
         * the send buffer. */
        if (hs->sreq != MPI_REQUEST_NULL) {
            int flag = 0;
            int rc = MPI_Test(&hs->sreq, &flag, MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS)
                return coll_mpi_fail(r, rc, "MPI_Test (handshake send)", st->peer);
            if (flag)
                *progressed = 1;
        }
        if (hs->rreq != MPI_REQUEST_NULL) {
            int flag = 0;
            MPI_Status status;
            int rc = MPI_Test(&hs->rreq, &flag, &status);
            if (rc != MPI_SUCCESS) {
                int cls = 0;
                MPI_Error_class(rc, &cls);
                if (cls != MPI_ERR_TRUNCATE)
                    return coll_mpi_fail(r, rc, "MPI_Test (handshake receive)", st->peer);
                /* A longer message than ours: the peer called with other
                 * arguments; its header (first bytes) says how. */
                flag = 1;
                hs->truncated = 1;
                hs->got = bytes;
                hs->rreq = MPI_REQUEST_NULL;
            } else if (flag) {
                MPI_Get_count(&status, MPI_BYTE, &hs->got);
            }
            if (flag)
                *progressed = 1;
        }
        if (hs->sreq != MPI_REQUEST_NULL || hs->rreq != MPI_REQUEST_NULL) {
            r->waiting_for = st->peer;
            return RT_OK;
        }
        if (step_recvs(st->kind))
            hs_merge(r, st->kind, st->peer, hs->truncated, hs->got);
        hs->truncated = 0;
        hs->got = 0;
        hs->cur++;
        hs->posted = 0;
    }
    return RT_OK;
}

void coll_hs_cancel(coll_request_t *r)
{
    coll_hs_t *hs = &r->hs;
    if (hs->rreq != MPI_REQUEST_NULL) {
        MPI_Cancel(&hs->rreq);
        r->abandoned |= coll_recv_settle(&hs->rreq, rt_now() + COLL_CANCEL_WAIT_S);
    }
    r->abandoned |= coll_send_release(&hs->sreq);
}
