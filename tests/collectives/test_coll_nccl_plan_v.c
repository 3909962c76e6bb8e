/* test_coll_nccl_plan_v.c - plays the device ring's uneven-chunk schedule
 * (nccl_ring_plan_run_v, behind nccl_reduce_scatter_v_ring and
 * nccl_allgather_v_ring) for n = 1..7 simulated ranks on the CPU, since the
 * device calls need several GPUs (or NCCL's socket transport) to run.
 *
 * Transfers are rendezvous, as strict as NCCL can be: a rank's transfer (one
 * grouped send + receive) completes only when its send has met the right
 * neighbour's current receive and its receive the left neighbour's current
 * send; only then does the rank go on to its next transfer. A send and the
 * receive it meets must have the same length. Buffers follow nccl_comm.cu,
 * in place: a received reduce-scatter piece becomes buf = buf + piece (buf
 * still holds this rank's own input there), an allgather piece is stored.
 * Fails on a length mismatch, a deadlock, or a wrong result: after the
 * reduce-scatter each rank's own chunk must hold the exact sum of small
 * integers, after the allgather every chunk its owner's values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/nccl_ring_plan.h"
#include "test_util.h"

enum { MAX_RANKS = 7, MAX_XFERS = 8192 };

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

static xfer_list lists[MAX_RANKS];

/* Runs one phase on all ranks in place; returns 0 on success. */
static int play(nccl_ring_phase_t phase, double **buf, int n, const size_t *counts,
                size_t chunk, const char *what)
{
    int pc[MAX_RANKS] = {0}, sdone[MAX_RANKS] = {0}, rdone[MAX_RANKS] = {0};
    for (int r = 0; r < n; r++) {
        lists[r].n = 0;
        if (nccl_ring_plan_run_v(phase, counts, n, r, chunk, collect, &lists[r]) != RT_OK) {
            EXPECT(0, "%s: plan failed: %s", what, rt_last_error());
            return 1;
        }
    }
    for (;;) {
        int progress = 0, done = 1;
        /* match each rank's pending send with its right neighbour's pending
         * receive */
        for (int r = 0; r < n; r++) {
            int q = (r + 1) % n;
            if (pc[r] >= lists[r].n || pc[q] >= lists[q].n)
                continue;
            const nccl_ring_xfer_t *s = &lists[r].x[pc[r]], *v = &lists[q].x[pc[q]];
            if (sdone[r] || s->send_len == 0 || rdone[q] || v->recv_len == 0)
                continue;
            if (s->send_len != v->recv_len) {
                EXPECT(0, "%s: rank %d sends %zu elements, rank %d expects %zu", what, r,
                       s->send_len, q, v->recv_len);
                return 1;
            }
            /* both ends run the reduce-scatter, with the same step number */
            if (s->step != v->step) {
                EXPECT(0, "%s: rank %d step %d meets rank %d step %d", what, r, s->step, q, v->step);
                return 1;
            }
            for (size_t i = 0; i < s->send_len; i++) {
                double x = buf[r][s->send_off + i];
                if (phase == NCCL_RING_REDUCE_SCATTER)
                    buf[q][v->recv_off + i] += x;
                else
                    buf[q][v->recv_off + i] = x;
            }
            sdone[r] = rdone[q] = 1;
            progress = 1;
        }
        for (int r = 0; r < n; r++) {
            if (pc[r] >= lists[r].n)
                continue;
            done = 0;
            const nccl_ring_xfer_t *x = &lists[r].x[pc[r]];
            if ((sdone[r] || x->send_len == 0) && (rdone[r] || x->recv_len == 0)) {
                pc[r]++;
                sdone[r] = rdone[r] = 0;
                progress = 1;
            }
        }
        if (done)
            return 0;
        if (!progress) {
            EXPECT(0, "%s: deadlock", what);
            return 1;
        }
    }
}

static void check(int n, const size_t *counts, size_t chunk, const char *pat)
{
    char what[160];
    snprintf(what, sizeof what, "n=%d %s chunk=%zu", n, pat, chunk);
    size_t total = 0, off[MAX_RANKS];
    for (int r = 0; r < n; r++) {
        off[r] = total;
        total += counts[r];
    }
    double *buf[MAX_RANKS], *want = calloc(total + 1, sizeof *want);
    for (int r = 0; r < n; r++) {
        buf[r] = malloc((total + 1) * sizeof(double));
        for (size_t i = 0; i < total; i++) {
            buf[r][i] = (double)((r + 1) * 1000 + (long)(i % 97));
            want[i] += buf[r][i];
        }
    }
    int bad = play(NCCL_RING_REDUCE_SCATTER, buf, n, counts, chunk, what);
    for (int r = 0; r < n && !bad; r++)
        for (size_t i = off[r]; i < off[r] + counts[r]; i++)
            if (buf[r][i] != want[i]) {
                EXPECT(0, "%s: after reduce-scatter rank %d element %zu is %g, want %g", what, r, i,
                       buf[r][i], want[i]);
                bad = 1;
                break;
            }
    /* allgather: each rank's own chunk tagged with its rank, the rest junk */
    for (int r = 0; r < n && !bad; r++)
        for (size_t i = 0; i < total; i++)
            buf[r][i] = i >= off[r] && i < off[r] + counts[r] ? (double)(r * 100000 + (long)i) : -1;
    if (!bad)
        bad = play(NCCL_RING_ALLGATHER, buf, n, counts, chunk, what);
    for (int r = 0; r < n && !bad; r++)
        for (int o = 0; o < n && !bad; o++)
            for (size_t i = off[o]; i < off[o] + counts[o]; i++)
                if (buf[r][i] != (double)(o * 100000 + (long)i)) {
                    EXPECT(0, "%s: after allgather rank %d element %zu is %g, want rank %d's", what,
                           r, i, buf[r][i], o);
                    bad = 1;
                    break;
                }
    EXPECT(!bad, "%s", what);
    for (int r = 0; r < n; r++)
        free(buf[r]);
    free(want);
}

int main(void)
{
    static const size_t chunks[] = {1, 2, 3, 16, 1 << 20};
    for (int n = 1; n <= MAX_RANKS; n++) {
        for (int p = 0; p < 9; p++) {
            size_t counts[MAX_RANKS];
            const char *pat = "";
            for (int i = 0; i < n; i++) {
                switch (p) {
                case 0: counts[i] = 7; pat = "even"; break;
                case 1: counts[i] = (size_t)(5 * i + 3); pat = "uneven"; break;
                case 2: counts[i] = i % 2 ? 0 : (size_t)(9 + i); pat = "odd-ranks-empty"; break;
                case 3: counts[i] = i == 0 ? 0 : (size_t)(4 + i); pat = "rank0-empty"; break;
                case 4: counts[i] = 0; pat = "all-empty"; break;
                case 5: counts[i] = i == n - 1 ? 41 : 0; pat = "last-owns-all"; break;
                case 6: counts[i] = i == 0 ? 37 : 0; pat = "rank0-owns-all"; break;
                case 7: counts[i] = (size_t)(i % 3); pat = "tiny"; break;
                case 8: counts[i] = (size_t)((i * 7919) % 61); pat = "scattered"; break;
                }
            }
            for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++)
                check(n, counts, chunks[k], pat);
        }
    }
    /* bad arguments */
    size_t one = 1;
    xfer_list *l = &lists[0];
    EXPECT(nccl_ring_plan_run_v(NCCL_RING_ALLGATHER, NULL, 1, 0, 1, collect, l) == RT_ERR_INVALID,
           "NULL counts is refused");
    EXPECT(nccl_ring_plan_run_v(NCCL_RING_ALLGATHER, &one, 1, 0, 0, collect, l) == RT_ERR_INVALID,
           "chunk 0 is refused");
    return TEST_EXIT();
}
