/* test_ring_plan.c - plays the device ring all-reduce's schedule
 * (collectives/nccl_ring_plan.h) for n = 1..7 simulated ranks on the CPU,
 * because one GPU cannot host a multi-rank NCCL communicator. Each rank runs
 * its transfers in order; a send is buffered in a FIFO to the right
 * neighbour, a receive takes the head of the FIFO from the left (its length
 * must match). Buffers follow nccl_comm.cu's rules: the reduce-scatter's
 * step 0 sends from the input, later steps from the result, and a received
 * chunk becomes result = input + chunk; the allgather sends from and stores
 * into the result. Out of place the result starts as NaN, so an element no
 * step writes fails; in place input and result are one buffer. Fails on a
 * length mismatch, a deadlock, a leftover message, or a wrong result.
 * Oracle: the sum of small integers held in doubles, which is exact. Runs
 * in every build (no CUDA needed). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/nccl_ring_plan.h"
#include "test_util.h"

enum { MAX_RANKS = 7, MAX_XFERS = 4096 };

typedef struct {
    nccl_ring_xfer_t x[MAX_XFERS];
    int n;
} xfer_list;

static rt_status collect(void *arg, const nccl_ring_xfer_t *x)
{
    xfer_list *l = arg;
    if (l->n >= MAX_XFERS)
        return rt_fail(RT_ERR_INTERNAL, "too many transfers");
    l->x[l->n++] = *x;
    return RT_OK;
}

/* A FIFO of messages from rank r to rank r+1. */
typedef struct msg {
    double *data;
    size_t len;
    struct msg *next;
} msg;

typedef struct {
    msg *head, *tail;
} fifo;

static void fifo_push(fifo *f, const double *data, size_t len)
{
    msg *m = calloc(1, sizeof *m);
    m->data = malloc((len ? len : 1) * sizeof(double));
    memcpy(m->data, data, len * sizeof(double));
    m->len = len;
    if (f->tail)
        f->tail->next = m;
    else
        f->head = m;
    f->tail = m;
}

static msg *fifo_pop(fifo *f)
{
    msg *m = f->head;
    if (m) {
        f->head = m->next;
        if (!f->head)
            f->tail = NULL;
    }
    return m;
}

/* Runs one phase on all ranks; returns 0 on success. */
static int play(nccl_ring_phase_t phase, double **in, double **buf, int n, size_t count,
                size_t chunk, const char *what)
{
    static xfer_list lists[MAX_RANKS];
    fifo q[MAX_RANKS] = {{0}};
    int pc[MAX_RANKS] = {0}, sent[MAX_RANKS] = {0};
    for (int r = 0; r < n; r++) {
        lists[r].n = 0;
        if (nccl_ring_plan_run(phase, count, n, r, chunk, collect, &lists[r]) != RT_OK) {
            EXPECT(0, "%s: plan failed: %s", what, rt_last_error());
            return 1;
        }
    }
    for (;;) {
        int progress = 0, done = 1;
        for (int r = 0; r < n; r++) {
            if (pc[r] >= lists[r].n)
                continue;
            done = 0;
            const nccl_ring_xfer_t *x = &lists[r].x[pc[r]];
            if (!sent[r]) {
                const double *from =
                    phase == NCCL_RING_REDUCE_SCATTER && x->step == 0 ? in[r] : buf[r];
                if (x->send_len > 0)
                    fifo_push(&q[r], from + x->send_off, x->send_len);
                sent[r] = 1;
                progress = 1;
            }
            if (x->recv_len > 0) {
                msg *m = fifo_pop(&q[(r - 1 + n) % n]);
                if (!m)
                    continue; /* blocked until the left neighbour sends */
                if (m->len != x->recv_len) {
                    EXPECT(0, "%s: rank %d transfer %d expects %zu elements, got %zu", what, r,
                           pc[r], x->recv_len, m->len);
                    return 1;
                }
                for (size_t i = 0; i < m->len; i++) {
                    if (phase == NCCL_RING_REDUCE_SCATTER)
                        buf[r][x->recv_off + i] = in[r][x->recv_off + i] + m->data[i];
                    else
                        buf[r][x->recv_off + i] = m->data[i];
                }
                free(m->data);
                free(m);
            }
            pc[r]++;
            sent[r] = 0;
            progress = 1;
        }
        if (done)
            break;
        if (!progress) {
            EXPECT(0, "%s: deadlock", what);
            return 1;
        }
    }
    for (int r = 0; r < n; r++)
        if (q[r].head) {
            EXPECT(0, "%s: rank %d left unreceived messages", what, r);
            return 1;
        }
    return 0;
}

static void check(int n, size_t count, size_t chunk, int in_place)
{
    char what[112];
    snprintf(what, sizeof what, "n=%d count=%zu chunk=%zu %s", n, count, chunk,
             in_place ? "in place" : "out of place");
    double *in[MAX_RANKS], *buf[MAX_RANKS];
    double *want = calloc(count + 1, sizeof *want);
    for (int r = 0; r < n; r++) {
        in[r] = malloc((count + 1) * sizeof(double));
        for (size_t i = 0; i < count; i++) {
            in[r][i] = (double)((r + 1) * 1000 + (long)(i % 97));
            want[i] += in[r][i];
        }
        if (in_place) {
            buf[r] = in[r];
        } else {
            buf[r] = malloc((count + 1) * sizeof(double));
            for (size_t i = 0; i < count; i++)
                buf[r][i] = n == 1 ? in[r][i] : NAN; /* one rank: the copy nccl_comm.cu makes */
        }
    }
    if (play(NCCL_RING_REDUCE_SCATTER, in, buf, n, count, chunk, what) == 0) {
        int bad = 0;
        for (int r = 0; r < n && !bad; r++) {
            size_t off, len;
            nccl_ring_segment(count, n, nccl_ring_owned_segment(n, r), &off, &len);
            for (size_t i = off; i < off + len; i++)
                if (!(buf[r][i] == want[i])) {
                    EXPECT(0, "%s: after reduce-scatter rank %d element %zu is %g, want %g", what,
                           r, i, buf[r][i], want[i]);
                    bad = 1;
                    break;
                }
        }
        if (!bad && play(NCCL_RING_ALLGATHER, in, buf, n, count, chunk, what) == 0) {
            for (int r = 0; r < n && !bad; r++)
                for (size_t i = 0; i < count; i++)
                    if (!(buf[r][i] == want[i])) {
                        EXPECT(0, "%s: after allgather rank %d element %zu is %g, want %g", what,
                               r, i, buf[r][i], want[i]);
                        bad = 1;
                        break;
                    }
            EXPECT(!bad, "%s", what);
        }
    }
    for (int r = 0; r < n; r++) {
        if (!in_place)
            free(buf[r]);
        free(in[r]);
    }
    free(want);
}

int main(void)
{
    static const size_t counts[] = {0, 1, 2, 3, 5, 7, 64, 100, 1001};
    static const size_t chunks[] = {1, 2, 3, 16, 1 << 20};
    for (int n = 1; n <= MAX_RANKS; n++)
        for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++)
            for (size_t ki = 0; ki < sizeof chunks / sizeof chunks[0]; ki++)
                for (int in_place = 0; in_place < 2; in_place++)
                    check(n, counts[ci], chunks[ki], in_place);

    /* segments tile the buffer exactly */
    for (int n = 1; n <= MAX_RANKS; n++) {
        size_t next = 0, total = 0;
        for (int s = 0; s < n; s++) {
            size_t off, len;
            nccl_ring_segment(1003, n, s, &off, &len);
            EXPECT(off == next, "n=%d segment %d starts at %zu, want %zu", n, s, off, next);
            next = off + len;
            total += len;
        }
        EXPECT(total == 1003, "n=%d segments cover %zu of 1003", n, total);
    }
    return TEST_EXIT();
}
