/* nccl_ring_plan.c - the device ring's schedules (see the header): segment
 * arithmetic and the order of chunked transfers, for the all-reduce and for
 * the uneven-chunk reduce-scatter and allgather. */
#include "collectives/nccl_ring_plan.h"

#include "common/check.h"

void nccl_ring_segment(size_t count, int n, int s, size_t *off, size_t *len)
{
    size_t base = count / (size_t)n, rem = count % (size_t)n, us = (size_t)s;
    *off = us * base + (us < rem ? us : rem);
    *len = base + (us < rem ? 1 : 0);
}

int nccl_ring_owned_segment(int n, int r)
{
    return (r + 1) % n;
}

static int ring_mod(int a, int n)
{
    return ((a % n) + n) % n;
}

static size_t chunk_len(size_t len, size_t ci, size_t chunk)
{
    size_t start = ci * chunk;
    if (start >= len)
        return 0;
    return len - start < chunk ? len - start : chunk;
}

/* One step's transfers: the send of slen elements at soff and the receive
 * of rlen at roff, cut into pieces of chunk_elems (the reduce-scatter
 * pipelines them against the reduction; the allgather moves whole
 * segments, having nothing to overlap with), alternating two slots. */
static rt_status run_step(nccl_ring_phase_t phase, int k, size_t soff, size_t slen, size_t roff,
                          size_t rlen, size_t chunk_elems, nccl_ring_xfer_fn fn, void *arg)
{
    size_t chunk = phase == NCCL_RING_REDUCE_SCATTER ? chunk_elems : (slen > rlen ? slen : rlen);
    if (chunk == 0)
        chunk = 1;
    size_t ns = (slen + chunk - 1) / chunk, nr = (rlen + chunk - 1) / chunk;
    size_t nx = ns > nr ? ns : nr;
    for (size_t ci = 0; ci < nx; ci++) {
        nccl_ring_xfer_t x = {
            .phase = phase,
            .step = k,
            .first_of_step = ci == 0,
            .last_of_step = ci + 1 == nx,
            .send_off = soff + ci * chunk,
            .send_len = chunk_len(slen, ci, chunk),
            .recv_off = roff + ci * chunk,
            .recv_len = chunk_len(rlen, ci, chunk),
            .slot = (int)(ci % 2),
        };
        TRY(fn(arg, &x));
    }
    return RT_OK;
}

rt_status nccl_ring_plan_run(nccl_ring_phase_t phase, size_t count, int n, int r,
                             size_t chunk_elems, nccl_ring_xfer_fn fn, void *arg)
{
    CHECK_ARG(n >= 1 && r >= 0 && r < n && chunk_elems > 0 && fn != NULL,
              "nccl_ring_plan_run: bad arguments n=%d r=%d chunk=%zu", n, r, chunk_elems);
    if (count == 0)
        return RT_OK;
    for (int k = 0; k < n - 1; k++) {
        int sseg, rseg;
        if (phase == NCCL_RING_REDUCE_SCATTER) {
            sseg = ring_mod(r - k, n);
            rseg = ring_mod(r - k - 1, n);
        } else {
            sseg = ring_mod(r + 1 - k, n);
            rseg = ring_mod(r - k, n);
        }
        size_t soff, slen, roff, rlen;
        nccl_ring_segment(count, n, sseg, &soff, &slen);
        nccl_ring_segment(count, n, rseg, &roff, &rlen);
        TRY(run_step(phase, k, soff, slen, roff, rlen, chunk_elems, fn, arg));
    }
    return RT_OK;
}

rt_status nccl_ring_plan_run_v(nccl_ring_phase_t phase, const size_t *counts, int n, int r,
                               size_t chunk_elems, nccl_ring_xfer_fn fn, void *arg)
{
    CHECK_ARG(counts != NULL && n >= 1 && r >= 0 && r < n && chunk_elems > 0 && fn != NULL,
              "nccl_ring_plan_run_v: bad arguments n=%d r=%d chunk=%zu", n, r, chunk_elems);
    for (int k = 0; k < n - 1; k++) {
        int sc, rc;
        if (phase == NCCL_RING_REDUCE_SCATTER) {
            sc = ring_mod(r - k - 1, n);
            rc = ring_mod(r - k - 2, n);
        } else {
            sc = ring_mod(r - k, n);
            rc = ring_mod(r - k - 1, n);
        }
        size_t soff = 0, roff = 0;
        for (int i = 0; i < sc; i++)
            soff += counts[i];
        for (int i = 0; i < rc; i++)
            roff += counts[i];
        size_t slen = counts[sc], rlen = counts[rc];
        TRY(run_step(phase, k, soff, slen, roff, rlen, chunk_elems, fn, arg));
    }
    return RT_OK;
}
