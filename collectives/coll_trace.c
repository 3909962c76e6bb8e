/* coll_trace.c - hang forensics for the collectives: a per-communicator
 * history of the last COLL_HISTORY calls (a flight recorder), the warning a
 * stalled call prints once at a fraction of its timeout, the roll call that
 * tells a waiting rank which call each peer is in, and on a timeout the
 * request that makes every reachable rank print its history before the job
 * is ended. Formats: docs/COLLECTIVES.md ("Stalls and timeouts").
 *
 * Everything here runs on the calling thread from inside waits: a peer
 * answers control messages only while it waits on the same communicator,
 * which is exactly the "reachable" rank a hang report can ask. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collectives/coll_internal.h"
#include "common/log.h"
#include "common/timer.h"

/* Longest wait for peers to print their history after a timeout: long
 * enough for a rank that polls every millisecond, short next to any
 * timeout worth having. */
#define COLL_DUMP_GRACE_MAX_S 1.0

static coll_hist_t *hist_slot(coll_comm_t *c, uint64_t seq)
{
    return &c->history[seq % COLL_HISTORY];
}

static uint64_t desc_bytes(uint64_t count, int dtype)
{
    return count * (uint64_t)rt_dtype_size((rt_dtype)dtype);
}

void coll_hist_begin(coll_request_t *r)
{
    *hist_slot(r->comm, r->desc.seq) = (coll_hist_t){
        .seq = r->desc.seq, .count = r->desc.count, .kind = r->desc.kind,
        .dtype = r->desc.dtype, .peer = -1, .state = COLL_HIST_WAITING,
        .start = r->last_progress};
}

void coll_hist_end(coll_request_t *r)
{
    coll_hist_t *h = hist_slot(r->comm, r->desc.seq);
    if (h->seq != r->desc.seq || h->state != COLL_HIST_WAITING)
        return;
    h->end = rt_now();
    h->peer = r->waiting_for;
    if (r->stage != REQ_DONE)
        h->state = COLL_HIST_CANCELLED;
    else if (r->desc.kind == 0) /* this rank's own arguments were refused */
        h->state = COLL_HIST_INVALID;
    else
        switch (r->status) {
        case RT_OK: h->state = COLL_HIST_DONE; break;
        case RT_ERR_MISMATCH: h->state = COLL_HIST_MISMATCH; break;
        case RT_ERR_INVALID: h->state = COLL_HIST_INVALID; break;
        case RT_ERR_TIMEOUT: h->state = COLL_HIST_TIMEOUT; break;
        default: h->state = COLL_HIST_FAILED; break;
        }
}

static const char *hist_state_name(int state)
{
    switch (state) {
    case COLL_HIST_WAITING: return "waiting";
    case COLL_HIST_DONE: return "done";
    case COLL_HIST_MISMATCH: return "mismatch";
    case COLL_HIST_INVALID: return "invalid";
    case COLL_HIST_TIMEOUT: return "timeout";
    case COLL_HIST_FAILED: return "failed";
    case COLL_HIST_CANCELLED: return "cancelled";
    }
    return "?";
}

void coll_request_where(const coll_request_t *r, char *buf, size_t len)
{
    if (r->stage == REQ_HANDSHAKE) {
        snprintf(buf, len, "handshake step %d of %d", r->hs.cur + 1, r->hs.nsteps);
    } else if (r->stage == REQ_PIPELINE) {
        const coll_pl_t *p = &r->pl;
        long total = (long)p->nsteps * p->nseg;
        snprintf(buf, len, "pipeline: %ld/%ld segment sends, %ld/%ld receives done",
                 p->send_cursor - p->s_count, total, p->recv_cursor - p->r_count, total);
    } else {
        snprintf(buf, len, "finishing");
    }
}

static const coll_request_t *find_active(const coll_comm_t *c, uint64_t seq)
{
    for (const coll_request_t *q = c->active_head; q; q = q->next)
        if (q->desc.seq == seq)
            return q;
    return NULL;
}

/* At level WARN, not ERROR: the history explains an error that the caller
 * reports; the launcher takes a rank's first ERROR line as the cause of a
 * failed run. */
void coll_hist_print(coll_comm_t *c, const char *why)
{
    if (c->history_printed)
        return;
    c->history_printed = 1;
    uint64_t total = c->seq, first = total > COLL_HISTORY ? total - COLL_HISTORY : 0;
    double now = rt_now();
    LOG_WARN("rank %d: collective history, last %" PRIu64 " of %" PRIu64
             " calls on this communicator (size %d), oldest first, %s:",
             c->rank, total - first, total, c->size, why);
    for (uint64_t s = first; s < total; s++) {
        const coll_hist_t *h = hist_slot(c, s);
        if (!h->state || h->seq != s)
            continue;
        int peer = h->peer;
        char where[112] = "";
        double end = h->end;
        if (h->state == COLL_HIST_WAITING) {
            end = now;
            const coll_request_t *q = find_active(c, s);
            if (q) {
                char w[96];
                coll_request_where(q, w, sizeof w);
                snprintf(where, sizeof where, " at=\"%s\"", w);
                peer = q->waiting_for;
            }
        }
        char peer_s[16] = "-";
        if (peer >= 0)
            snprintf(peer_s, sizeof peer_s, "%d", peer);
        int typed = h->kind != 0 && h->kind != COLL_KIND_BARRIER;
        LOG_WARN("rank %d:   seq=%" PRIu64 " kind=%s count=%" PRIu64 " dtype=%s bytes=%" PRIu64
                 " peer=%s state=%s duration=%.6fs%s",
                 c->rank, h->seq, coll_kind_name(h->kind), h->count,
                 typed ? rt_dtype_name((rt_dtype)h->dtype) : "-",
                 typed ? desc_bytes(h->count, h->dtype) : 0, peer_s, hist_state_name(h->state),
                 end - h->start, where);
    }
}

/* ---- the control channel --------------------------------------------------- */

static void ctl_send(coll_comm_t *c, coll_ctl_t *m, int peer, int tag)
{
    /* Fire and forget: a peer that never receives (stopped, dead) must not
     * keep this rank waiting; the buffer outlives the send (see callers). */
    MPI_Request q;
    if (MPI_Isend(m, (int)sizeof *m, MPI_BYTE, peer, tag, c->mpi, &q) == MPI_SUCCESS)
        MPI_Request_free(&q);
}

void coll_ctl_serve(coll_comm_t *c, const coll_request_t *current)
{
    for (;;) {
        int flag = 0;
        MPI_Status status;
        if (MPI_Iprobe(MPI_ANY_SOURCE, COLL_TAG_CTL, c->mpi, &flag, &status) != MPI_SUCCESS || !flag)
            return;
        int from = status.MPI_SOURCE;
        coll_ctl_t in;
        memset(&in, 0, sizeof in);
        if (MPI_Recv(&in, (int)sizeof in, MPI_BYTE, from, COLL_TAG_CTL, c->mpi, MPI_STATUS_IGNORE) !=
            MPI_SUCCESS)
            return;
        if (in.type == COLL_CTL_DUMP) {
            char why[160];
            snprintf(why, sizeof why, "at the request of rank %d, whose %s #%" PRIu64 " timed out",
                     from, coll_kind_name((int)in.kind), in.seq);
            coll_hist_print(c, why);
        } else if (in.type != COLL_CTL_ROLLCALL) {
            continue;
        }
        /* One answer slot per asker: its roll calls and history request
         * are far apart in time (fractions of the timeout), so a slot is
         * not rewritten while its send is in flight. */
        if (!c->ctl_answers)
            c->ctl_answers = calloc((size_t)c->size, sizeof *c->ctl_answers);
        if (!c->ctl_answers)
            continue;
        coll_ctl_t *out = &c->ctl_answers[from];
        *out = (coll_ctl_t){
            .type = in.type == COLL_CTL_DUMP ? COLL_CTL_DUMPED : COLL_CTL_HERE,
            .seq = current ? current->desc.seq : 0,
            .kind = current ? (uint64_t)current->desc.kind : 0,
            .round = in.round, .echo_seq = in.seq};
        ctl_send(c, out, from, COLL_TAG_CTL_REPLY);
    }
}

void coll_rollcall_send(coll_request_t *r, int round)
{
    coll_comm_t *c = r->comm;
    r->rollcall_round = round;
    if (!r->peers)
        r->peers = calloc((size_t)c->size, sizeof *r->peers);
    if (!r->peers)
        return; /* the messages will only say less */
    c->ctl_rollcall = (coll_ctl_t){.type = COLL_CTL_ROLLCALL, .seq = r->desc.seq,
                                   .kind = (uint64_t)r->desc.kind, .round = (uint64_t)round};
    for (int p = 0; p < c->size; p++)
        if (p != c->rank)
            ctl_send(c, &c->ctl_rollcall, p, COLL_TAG_CTL);
}

void coll_rollcall_collect(coll_request_t *r)
{
    coll_comm_t *c = r->comm;
    for (;;) {
        int flag = 0;
        MPI_Status status;
        if (MPI_Iprobe(MPI_ANY_SOURCE, COLL_TAG_CTL_REPLY, c->mpi, &flag, &status) != MPI_SUCCESS ||
            !flag)
            return;
        coll_ctl_t in;
        memset(&in, 0, sizeof in);
        if (MPI_Recv(&in, (int)sizeof in, MPI_BYTE, status.MPI_SOURCE, COLL_TAG_CTL_REPLY, c->mpi,
                     MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return;
        /* answers to an earlier call's roll call are stale: dropped */
        if (!r->peers || in.echo_seq != r->desc.seq)
            continue;
        coll_peer_t *p = &r->peers[status.MPI_SOURCE];
        if (in.type == COLL_CTL_DUMPED) {
            p->printed = 1;
        } else if (in.type == COLL_CTL_HERE && (int32_t)in.round >= p->round) {
            p->seq = in.seq;
            p->kind = (int32_t)in.kind;
            p->round = (int32_t)in.round;
        }
    }
}

/* ---- messages ----------------------------------------------------------------- */

/* A bounded string builder: appends until full, then marks the cut. */
typedef struct {
    char *buf;
    size_t len, used;
} sb_t;

static void sb_add(sb_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sb_t *b, const char *fmt, ...)
{
    if (b->used + 1 >= b->len)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(b->buf + b->used, b->len - b->used, fmt, ap);
    va_end(ap);
    if (w < 0)
        return;
    if ((size_t)w >= b->len - b->used) {
        b->used = b->len - 1;
        if (b->len > 4)
            memcpy(b->buf + b->len - 4, "...", 4);
    } else {
        b->used += (size_t)w;
    }
}

/* "rank 3" or "ranks 1, 4, 7": the peers of class `want` (0: silent, 1: in
 * this call, 2: in another call); at most 16 named. */
static int sb_ranks(sb_t *b, const coll_request_t *r, int min_round, int want)
{
    const coll_comm_t *c = r->comm;
    int n = 0;
    for (int p = 0; p < c->size; p++) {
        if (p == c->rank)
            continue;
        const coll_peer_t *q = &r->peers[p];
        int answered = q->round >= min_round && q->round > 0;
        int in_this = answered && q->seq == r->desc.seq;
        int cls = !answered ? 0 : in_this ? 1 : 2;
        n += cls == want;
    }
    if (!n)
        return 0;
    sb_add(b, "%s", n > 1 ? "ranks " : "rank ");
    int named = 0;
    for (int p = 0; p < c->size && named < 16; p++) {
        if (p == c->rank)
            continue;
        const coll_peer_t *q = &r->peers[p];
        int answered = q->round >= min_round && q->round > 0;
        int cls = !answered ? 0 : q->seq == r->desc.seq ? 1 : 2;
        if (cls == want)
            sb_add(b, "%s%d", named++ ? ", " : "", p);
    }
    if (n > named)
        sb_add(b, " and %d more", n - named);
    return n;
}

int coll_rollcall_summary(const coll_request_t *r, char *buf, size_t len, int min_round,
                          const char *silent_word, int *elsewhere)
{
    sb_t b = {buf, len, 0};
    if (len)
        buf[0] = '\0';
    if (elsewhere)
        *elsewhere = 0;
    if (!r->peers)
        return 0;
    const coll_comm_t *c = r->comm;
    int silent = sb_ranks(&b, r, min_round, 0);
    if (silent)
        sb_add(&b, " %s", silent_word);
    /* ranks in other calls, each with its call: behind, ahead or lost */
    int named = 0, others = 0;
    for (int p = 0; p < c->size; p++) {
        const coll_peer_t *q = &r->peers[p];
        if (p == c->rank || q->round < min_round || q->round == 0 || q->seq == r->desc.seq)
            continue;
        if (named < 16)
            sb_add(&b, "%srank %d is in %s #%" PRIu64, b.used ? "; " : "", p, coll_kind_name(q->kind),
                   q->seq);
        named++;
        others++;
    }
    if (others > named)
        sb_add(&b, " and %d more elsewhere", others - named);
    if (elsewhere)
        *elsewhere = others;
    size_t before = b.used;
    if (before)
        sb_add(&b, "; ");
    if (sb_ranks(&b, r, min_round, 1))
        sb_add(&b, " waiting in this call too");
    else if (before)
        b.buf[b.used = before] = '\0';
    return silent;
}

void coll_stall_warn(coll_request_t *r, double idle)
{
    coll_comm_t *c = r->comm;
    r->warned = 1;
    char desc[160], where[96], who[640] = "", bytes[48] = "";
    coll_desc_format(&r->desc, desc, sizeof desc);
    coll_request_where(r, where, sizeof where);
    if (r->desc.kind != 0 && r->desc.kind != COLL_KIND_BARRIER)
        snprintf(bytes, sizeof bytes, " bytes=%" PRIu64, desc_bytes(r->desc.count, r->desc.dtype));
    if (r->peers)
        coll_rollcall_summary(r, who, sizeof who, 1,
                              "did not answer a roll call (stopped, dead, or not in a collective on "
                              "this communicator)", NULL);
    char peer[32] = "";
    if (r->waiting_for >= 0)
        snprintf(peer, sizeof peer, " for rank %d", r->waiting_for);
    LOG_WARN("rank %d: %s%s stalled: no progress for %.1f s (warning at %g%% of the %g s timeout), "
             "waiting%s (%s)%s%s",
             c->rank, desc, bytes, idle, 100 * c->warn_fraction, c->timeout, peer, where,
             who[0] ? "; " : "", who);
}

void coll_dump_everywhere(coll_request_t *r)
{
    coll_comm_t *c = r->comm;
    char why[128];
    snprintf(why, sizeof why, "because %s #%" PRIu64 " timed out here", coll_kind_name(r->desc.kind),
             r->desc.seq);
    coll_hist_print(c, why);
    if (c->size == 1)
        return;
    c->ctl_dump = (coll_ctl_t){.type = COLL_CTL_DUMP, .seq = r->desc.seq,
                               .kind = (uint64_t)r->desc.kind, .round = (uint64_t)r->rollcall_round};
    for (int p = 0; p < c->size; p++)
        if (p != c->rank)
            ctl_send(c, &c->ctl_dump, p, COLL_TAG_CTL);
    if (!r->peers)
        return;
    /* Only the ranks that answered the latest roll call are waited for: they
     * sit in a wait on this communicator and print within milliseconds; the
     * silent ones are stopped, dead or elsewhere and would cost the grace. */
    double grace = 0.1 * c->timeout < COLL_DUMP_GRACE_MAX_S ? 0.1 * c->timeout : COLL_DUMP_GRACE_MAX_S;
    double until = rt_now() + grace;
    int round = r->rollcall_round;
    for (;;) {
        coll_ctl_serve(c, r);
        coll_rollcall_collect(r);
        int pending = 0;
        for (int p = 0; p < c->size; p++)
            pending += p != c->rank && round > 0 && r->peers[p].round >= round && !r->peers[p].printed;
        if (!pending || rt_now() >= until)
            break;
        struct timespec nap = {0, 200 * 1000};
        nanosleep(&nap, NULL);
    }
    char printed[256] = "", missing[256] = "";
    sb_t a = {printed, sizeof printed, 0}, m = {missing, sizeof missing, 0};
    for (int p = 0; p < c->size; p++) {
        if (p == c->rank)
            continue;
        sb_t *b = r->peers[p].printed ? &a : &m;
        sb_add(b, "%s%d", b->used ? ", " : "", p);
    }
    LOG_WARN("rank %d: asked every rank to print its collective history: printed by rank(s) %s; "
             "no answer from rank(s) %s (waited up to %.1f s for those that answered the roll call)",
             c->rank, printed[0] ? printed : "none", missing[0] ? missing : "none", grace);
}
