/* coll_api.c - the public collectives: argument checks, the choice of
 * algorithm, and the plans (step tables) that coll_pipeline.c runs.
 *
 *   allreduce       n == 1: local copy. payload <= small_bytes: recursive
 *                   doubling carried by the handshake. Larger: handshake, then
 *                   ring reduce-scatter + allgather, segmented.
 *   broadcast       small: recursive doubling in the handshake; larger:
 *                   handshake, then a segmented chain from the root.
 *   allgather       n*count bytes <= small_bytes: recursive doubling in the
 *                   handshake (blocks + bitmap); larger: the ring allgather.
 *   reduce_scatter  n*count bytes <= small_bytes: recursive doubling over the
 *                   whole buffer in the handshake; larger: the ring.
 *   reduce_scatter_v, allgather_v (in place, uneven chunks): n == 1: nothing
 *                   to move. Total bytes (+ bitmap) <= small_bytes: as the
 *                   even forms, in the handshake. Larger: handshake, then
 *                   the same ring steps over the caller's chunks.
 *   barrier         the handshake alone.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/coll_internal.h"
#include "common/check.h"

/* Larger requests are taken for negative or overflowing counts. */
#define COLL_MAX_BYTES ((size_t)1 << 40)

typedef struct {
    const char *name;
    coll_comm_t *c;
    char msg[512];
    int bad;
} check_t;

static void bad(check_t *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad(check_t *k, const char *fmt, ...)
{
    if (k->bad)
        return;
    k->bad = 1;
    char detail[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    snprintf(k->msg, sizeof k->msg, "rank %d: coll_%s: %s", k->c->rank, k->name, detail);
}

static void check_type(check_t *k, rt_dtype dt, size_t count, size_t mult)
{
    size_t elem = rt_dtype_size(dt);
    if (!elem) {
        bad(k, "unknown dtype %d", (int)dt);
        return;
    }
    if (!coll_dtype_supported(dt)) {
        bad(k, "dtype %s is not supported (f32, f64, bf16, u8, i32, i64)", rt_dtype_name(dt));
        return;
    }
    if (count > COLL_MAX_BYTES / elem / mult)
        bad(k, "count %zu is negative or too large (limit 2^40 bytes)", count);
}

static void check_buf(check_t *k, const void *p, const char *what, size_t count, rt_dtype dt)
{
    size_t elem = rt_dtype_size(dt);
    if (!count || !elem)
        return;
    if (!p)
        bad(k, "%s buffer is NULL", what);
    else if ((uintptr_t)p % elem)
        bad(k, "%s buffer is not aligned to its element size (%zu bytes)", what, elem);
}

static void check_op(check_t *k, coll_op op)
{
    if (op != COLL_SUM && op != COLL_AVG)
        bad(k, "unknown op %d", (int)op);
}

/* Out-of-place buffers must not overlap unless they are the in-place form. */
static void check_overlap(check_t *k, const void *a, size_t abytes, const void *b, size_t bbytes,
                          const void *in_place)
{
    if (!abytes || !bbytes || !a || !b || b == in_place)
        return;
    uintptr_t a0 = (uintptr_t)a, b0 = (uintptr_t)b;
    if (a0 < b0 + bbytes && b0 < a0 + abytes)
        bad(k, "send and recv buffers overlap");
}

/* Header-only handshake for a rank whose own arguments are bad, so that its
 * peers fail with a mismatch naming it instead of waiting for a timeout. */
static rt_status fail_with_peers(check_t *k)
{
    char msg[512];
    memcpy(msg, k->msg, sizeof msg);
    coll_comm_t *c = k->c;
    if (c->broken || c->size == 1)
        return rt_fail(RT_ERR_INVALID, "%s", msg);
    coll_desc_t d = {0};
    coll_request_t *r = NULL;
    if (coll_request_new(c, &d, &r) == RT_OK) {
        void *mem = NULL;
        r->hs.scratch_slot = coll_scratch_get(c, 2 * sizeof(coll_hdr_t), &mem);
        if (r->hs.scratch_slot != -1) {
            r->hs.sendpack = mem;
            r->hs.recvpack = r->hs.sendpack + sizeof(coll_hdr_t);
            coll_hdr_t *h = (coll_hdr_t *)r->hs.sendpack;
            memset(h, 0, sizeof *h);
            h->magic = COLL_HDR_MAGIC;
            h->rank = c->rank;
            h->self = r->desc;
            coll_hs_plan(&r->hs, c->rank, c->size);
            coll_wait(r);
        } else {
            coll_request_free(r);
        }
    }
    return rt_fail(RT_ERR_INVALID, "%s", msg);
}

/* Common start: a request with its handshake buffers (header + payload for
 * each direction) and this rank's header. */
static rt_status start(coll_comm_t *c, const coll_desc_t *d, hs_payload_mode mode,
                       size_t payload, coll_request_t **out)
{
    coll_request_t *r = NULL;
    TRY(coll_request_new(c, d, &r));
    size_t half = (sizeof(coll_hdr_t) + payload + 63) & ~(size_t)63;
    void *mem = NULL;
    r->hs.scratch_slot = coll_scratch_get(c, 2 * half, &mem);
    if (r->hs.scratch_slot == -1) {
        coll_request_free(r);
        return rt_fail(RT_ERR_NOMEM, "rank %d: cannot allocate %zu bytes of scratch", c->rank, 2 * half);
    }
    r->hs.sendpack = mem;
    r->hs.recvpack = r->hs.sendpack + half;
    r->hs.mode = mode;
    r->hs.payload_bytes = payload;
    coll_hdr_t *h = (coll_hdr_t *)r->hs.sendpack;
    memset(h, 0, sizeof *h);
    h->magic = COLL_HDR_MAGIC;
    h->rank = c->rank;
    h->self = r->desc;
    coll_hs_plan(&r->hs, c->rank, c->size);
    *out = r;
    return RT_OK;
}

/* Allocates the pipeline's arrays and its segment buffers. */
static rt_status pl_setup(coll_request_t *r, int nsteps, int nchunks, int need_tmp)
{
    coll_comm_t *c = r->comm;
    coll_pl_t *p = &r->pl;
    int w = c->window;
    size_t bytes = (size_t)nsteps * sizeof(pl_step_t) + 2 * (size_t)nchunks * sizeof(size_t) +
                   2 * (size_t)w * (sizeof(MPI_Request) + sizeof(long));
    unsigned char *m = calloc(1, bytes);
    if (!m)
        return rt_fail(RT_ERR_NOMEM, "rank %d: cannot allocate %zu bytes for a plan", c->rank, bytes);
    p->alloc = m;
    p->steps = (pl_step_t *)m;                m += (size_t)nsteps * sizeof(pl_step_t);
    p->chunk_off = (size_t *)m;               m += (size_t)nchunks * sizeof(size_t);
    p->chunk_len = (size_t *)m;               m += (size_t)nchunks * sizeof(size_t);
    p->sreq = (MPI_Request *)m;               m += (size_t)w * sizeof(MPI_Request);
    p->rreq = (MPI_Request *)m;               m += (size_t)w * sizeof(MPI_Request);
    p->sk = (long *)m;                        m += (size_t)w * sizeof(long);
    p->rk = (long *)m;
    p->nsteps = nsteps;
    p->window = w;
    p->seg_elems = c->segment_bytes / r->elem ? c->segment_bytes / r->elem : 1;
    p->left = (c->rank - 1 + c->size) % c->size;
    p->right = (c->rank + 1) % c->size;
    p->tag = coll_tag(c, r->desc.seq, 1);
    p->final_chunk = -1;
    for (int i = 0; i < nsteps; i++)
        p->steps[i] = (pl_step_t){-1, 0, -1, -1, PL_RECV_NONE, -1};
    if (need_tmp) {
        void *mem = NULL;
        p->scratch_slot = coll_scratch_get(c, (size_t)w * p->seg_elems * r->elem, &mem);
        if (p->scratch_slot == -1)
            return rt_fail(RT_ERR_NOMEM, "rank %d: cannot allocate segment buffers", c->rank);
        p->tmp = mem;
    }
    r->use_pipeline = 1;
    return RT_OK;
}

static void pl_segments(coll_pl_t *p, int nchunks)
{
    size_t maxlen = 0;
    for (int i = 0; i < nchunks; i++)
        if (p->chunk_len[i] > maxlen)
            maxlen = p->chunk_len[i];
    p->nseg = (int)((maxlen + p->seg_elems - 1) / p->seg_elems);
    if (p->nseg < 1)
        p->nseg = 1;
}

/* Equal chunks of count_per_rank elements, one per rank (allgather and
 * reduce-scatter), and their segment count. */
static void pl_equal_chunks(coll_pl_t *p, int n, size_t count_per_rank)
{
    for (int i = 0; i < n; i++) {
        p->chunk_off[i] = (size_t)i * count_per_rank;
        p->chunk_len[i] = count_per_rank;
    }
    pl_segments(p, n);
}

static int mod(int a, int n) { return ((a % n) + n) % n; }

/* Ring reduce-scatter steps 0..n-2: at step s rank r sends chunk r-s-1 and
 * receives chunk r-s-2, adding its own contribution; the last step leaves
 * chunk r fully reduced (chunk r is never sent, so in-place works). */
static void plan_reduce_scatter_steps(coll_pl_t *p, int rank, int n)
{
    for (int s = 0; s < n - 1; s++) {
        pl_step_t *st = &p->steps[s];
        st->send_chunk = mod(rank - s - 1, n);
        st->send_from_src = s == 0;
        st->send_dep = s - 1;
        st->recv_chunk = mod(rank - s - 2, n);
        st->recv_mode = s == n - 2 ? PL_RECV_REDUCE_FINAL : PL_RECV_REDUCE;
    }
}

/* Ring allgather steps (from `first` on): at step t rank r forwards chunk r-t
 * and receives chunk r-t-1 in place. After a reduce-scatter, the receive of
 * chunk r-t-1 overwrites what the reduce-scatter's step t sent from. */
static void plan_allgather_steps(coll_pl_t *p, int rank, int n, int first, int after_rs)
{
    for (int t = 0; t < n - 1; t++) {
        pl_step_t *st = &p->steps[first + t];
        st->send_chunk = mod(rank - t, n);
        st->send_from_src = 0;
        st->send_dep = first + t - 1;
        st->recv_chunk = mod(rank - t - 1, n);
        st->recv_mode = PL_RECV_DIRECT;
        st->recv_wait_send = after_rs ? t : -1;
    }
}

static rt_status allreduce_start(coll_comm_t *c, const void *send, void *recv, size_t count,
                                 rt_dtype dt, coll_op op, coll_request_t **out)
{
    CHECK_ARG(c, "coll_allreduce: communicator is NULL");
    check_t k = {.name = "allreduce", .c = c};
    check_type(&k, dt, count, 1);
    check_op(&k, op);
    check_buf(&k, send, "send", count, dt);
    check_buf(&k, recv, "recv", count, dt);
    if (!k.bad)
        check_overlap(&k, send, count * rt_dtype_size(dt), recv, count * rt_dtype_size(dt), send);
    TRY(coll_comm_usable(c, "allreduce"));
    if (k.bad)
        return fail_with_peers(&k);
    size_t elem = rt_dtype_size(dt), bytes = count * elem;
    int n = c->size;
    coll_desc_t d = {.count = count, .kind = COLL_KIND_ALLREDUCE, .dtype = dt, .op = op, .root = -1};
    int small = n > 1 && bytes <= c->small_bytes;
    coll_request_t *r = NULL;
    TRY(start(c, &d, small ? HS_PAYLOAD_REDUCE : HS_PAYLOAD_NONE, small ? bytes : 0, &r));
    r->elem = elem; r->count = count; r->dt = dt; r->op = op; r->send = send; r->recv = recv;
    if (n == 1) {
        /* nothing to exchange; the request completes at the first wait */
        if (op == COLL_AVG)
            coll_scale_avg(dt, recv, send, count, 1);
        else if (recv != send && bytes)
            memcpy(recv, send, bytes);
        *out = r;
        return RT_OK;
    }
    if (small) {
        if (bytes)
            memcpy(r->hs.sendpack + sizeof(coll_hdr_t), send, bytes);
        *out = r;
        return RT_OK;
    }
    rt_status st = pl_setup(r, 2 * (n - 1), n, 1);
    if (st != RT_OK) {
        coll_request_free(r);
        return st;
    }
    coll_pl_t *p = &r->pl;
    size_t base = count / (size_t)n, extra = count % (size_t)n, off = 0;
    for (int i = 0; i < n; i++) {
        p->chunk_off[i] = off;
        p->chunk_len[i] = base + ((size_t)i < extra);
        off += p->chunk_len[i];
    }
    pl_segments(p, n);
    p->src = send;
    p->out = recv;
    plan_reduce_scatter_steps(p, c->rank, n);
    plan_allgather_steps(p, c->rank, n, n - 1, 1);
    *out = r;
    return RT_OK;
}

rt_status coll_allreduce_start(coll_comm_t *c, const void *send, void *recv, size_t count,
                               rt_dtype dt, coll_op op, coll_request_t **req)
{
    CHECK_ARG(req, "coll_allreduce_start: req is NULL");
    *req = NULL;
    return allreduce_start(c, send, recv, count, dt, op, req);
}

rt_status coll_allreduce(coll_comm_t *c, const void *send, void *recv, size_t count, rt_dtype dt,
                         coll_op op)
{
    coll_request_t *r = NULL;
    TRY(allreduce_start(c, send, recv, count, dt, op, &r));
    return coll_wait(r);
}

rt_status coll_broadcast(coll_comm_t *c, void *buf, size_t count, rt_dtype dt, int root)
{
    CHECK_ARG(c, "coll_broadcast: communicator is NULL");
    check_t k = {.name = "broadcast", .c = c};
    check_type(&k, dt, count, 1);
    check_buf(&k, buf, "data", count, dt);
    if (root < 0 || root >= c->size)
        bad(&k, "root %d is not a rank of this communicator (size %d)", root, c->size);
    TRY(coll_comm_usable(c, "broadcast"));
    if (k.bad)
        return fail_with_peers(&k);
    size_t elem = rt_dtype_size(dt), bytes = count * elem;
    int n = c->size;
    coll_desc_t d = {.count = count, .kind = COLL_KIND_BROADCAST, .dtype = dt, .op = 0, .root = root};
    int small = bytes <= c->small_bytes;
    coll_request_t *r = NULL;
    TRY(start(c, &d, small ? HS_PAYLOAD_BCAST : HS_PAYLOAD_NONE, small ? bytes : 0, &r));
    r->elem = elem; r->count = count; r->dt = dt; r->send = buf; r->recv = buf;
    if (c->rank == root) {
        ((coll_hdr_t *)r->hs.sendpack)->flags |= COLL_HDR_HAS_ROOT;
        if (small && bytes)
            memcpy(r->hs.sendpack + sizeof(coll_hdr_t), buf, bytes);
    }
    if (!small && n > 1) {
        rt_status st = pl_setup(r, 1, 1, 0);
        if (st != RT_OK) {
            coll_request_free(r);
            return st;
        }
        coll_pl_t *p = &r->pl;
        p->chunk_off[0] = 0;
        p->chunk_len[0] = count;
        pl_segments(p, 1);
        p->src = buf;
        p->out = buf;
        int pos = mod(c->rank - root, n);   /* place in the chain from the root */
        pl_step_t *st0 = &p->steps[0];
        st0->send_chunk = pos < n - 1 ? 0 : -1;
        st0->send_dep = pos > 0 ? 0 : -1;
        st0->recv_chunk = pos > 0 ? 0 : -1;
        st0->recv_mode = pos > 0 ? PL_RECV_DIRECT : PL_RECV_NONE;
    }
    return coll_wait(r);
}

rt_status coll_allgather(coll_comm_t *c, const void *send, void *recv, size_t count_per_rank,
                         rt_dtype dt)
{
    CHECK_ARG(c, "coll_allgather: communicator is NULL");
    check_t k = {.name = "allgather", .c = c};
    int n = c->size;
    check_type(&k, dt, count_per_rank, (size_t)n);
    check_buf(&k, send, "send", count_per_rank, dt);
    check_buf(&k, recv, "recv", count_per_rank, dt);
    size_t elem = rt_dtype_size(dt), bytes = count_per_rank * elem;
    const unsigned char *in_place = recv ? (const unsigned char *)recv + (size_t)c->rank * bytes : NULL;
    if (!k.bad && send != in_place) /* the in-place form overlaps by design */
        check_overlap(&k, send, bytes, recv, bytes * (size_t)n, NULL);
    TRY(coll_comm_usable(c, "allgather"));
    if (k.bad)
        return fail_with_peers(&k);
    coll_desc_t d = {.count = count_per_rank, .kind = COLL_KIND_ALLGATHER, .dtype = dt, .root = -1};
    coll_request_t *r = NULL;
    int small = n > 1 && bytes * (size_t)n <= c->small_bytes;
    size_t bitmap = ((size_t)n + 7) / 8;
    TRY(start(c, &d, small ? HS_PAYLOAD_GATHER : HS_PAYLOAD_NONE, small ? bytes * (size_t)n + bitmap : 0, &r));
    r->elem = elem; r->count = count_per_rank; r->dt = dt; r->send = send; r->recv = recv;
    if (small) {
        /* recursive doubling in the handshake: blocks plus a bitmap of those present */
        unsigned char *acc = r->hs.sendpack + sizeof(coll_hdr_t);
        memset(acc + bytes * (size_t)n, 0, bitmap);
        if (bytes)
            memcpy(acc + (size_t)c->rank * bytes, send, bytes);
        acc[bytes * (size_t)n + (size_t)c->rank / 8] |= (unsigned char)(1u << (c->rank % 8));
        return coll_wait(r);
    }
    if (bytes && send != in_place)
        memcpy((unsigned char *)recv + (size_t)c->rank * bytes, send, bytes);
    if (n > 1) {
        rt_status st = pl_setup(r, n - 1, n, 0);
        if (st != RT_OK) {
            coll_request_free(r);
            return st;
        }
        coll_pl_t *p = &r->pl;
        pl_equal_chunks(p, n, count_per_rank);
        p->src = recv;
        p->out = recv;
        plan_allgather_steps(p, c->rank, n, 0, 0);
    }
    return coll_wait(r);
}

rt_status coll_reduce_scatter(coll_comm_t *c, const void *send, void *recv, size_t count_per_rank,
                              rt_dtype dt, coll_op op)
{
    CHECK_ARG(c, "coll_reduce_scatter: communicator is NULL");
    check_t k = {.name = "reduce_scatter", .c = c};
    int n = c->size;
    check_type(&k, dt, count_per_rank, (size_t)n);
    check_op(&k, op);
    check_buf(&k, send, "send", count_per_rank, dt);
    check_buf(&k, recv, "recv", count_per_rank, dt);
    size_t elem = rt_dtype_size(dt), bytes = count_per_rank * elem;
    const unsigned char *in_place = send ? (const unsigned char *)send + (size_t)c->rank * bytes : NULL;
    if (!k.bad && recv != in_place)
        check_overlap(&k, send, bytes * (size_t)n, recv, bytes, NULL);
    TRY(coll_comm_usable(c, "reduce_scatter"));
    if (k.bad)
        return fail_with_peers(&k);
    coll_desc_t d = {.count = count_per_rank, .kind = COLL_KIND_REDUCE_SCATTER, .dtype = dt,
                     .op = op, .root = -1};
    coll_request_t *r = NULL;
    int small = n > 1 && bytes * (size_t)n <= c->small_bytes;
    TRY(start(c, &d, small ? HS_PAYLOAD_REDUCE : HS_PAYLOAD_NONE, small ? bytes * (size_t)n : 0, &r));
    r->elem = elem; r->count = count_per_rank; r->dt = dt; r->op = op; r->send = send; r->recv = recv;
    if (small) {
        /* recursive doubling over all n blocks in the handshake; each rank
         * keeps its own block at the end */
        r->count = count_per_rank * (size_t)n;
        if (bytes)
            memcpy(r->hs.sendpack + sizeof(coll_hdr_t), send, bytes * (size_t)n);
        return coll_wait(r);
    }
    if (n == 1) {
        rt_status st = coll_wait(r);
        if (st == RT_OK && bytes) {
            if (op == COLL_AVG)
                coll_scale_avg(dt, recv, send, count_per_rank, 1);
            else if (recv != send)
                memcpy(recv, send, bytes);
        }
        return st;
    }
    rt_status st = pl_setup(r, n - 1, n, 1);
    if (st != RT_OK) {
        coll_request_free(r);
        return st;
    }
    coll_pl_t *p = &r->pl;
    pl_equal_chunks(p, n, count_per_rank);
    void *mem = NULL;
    /* partial sums of the other ranks' chunks live in scratch */
    p->out_scratch_slot = coll_scratch_get(c, bytes * (size_t)n, &mem);
    if (p->out_scratch_slot == -1) {
        coll_request_free(r);
        return rt_fail(RT_ERR_NOMEM, "rank %d: cannot allocate %zu bytes of scratch", c->rank, bytes * n);
    }
    p->out = mem;
    p->src = send;
    p->final_out = recv;
    p->final_chunk = c->rank;
    plan_reduce_scatter_steps(p, c->rank, n);
    return coll_wait(r);
}

/* A 64-bit hash of the counts array, carried in the descriptor so that
 * ranks whose chunks differ but whose totals agree fail with a mismatch
 * (a splitmix64 finaliser per element, chained). */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27; x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t counts_hash(const size_t *counts, int n)
{
    uint64_t h = mix64((uint64_t)n + 0x9e3779b97f4a7c15ull);
    for (int i = 0; i < n; i++)
        h = mix64(h ^ mix64((uint64_t)counts[i] + 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1)));
    return h;
}

/* Shared start of the two _v calls: argument checks, the descriptor (total
 * count and counts hash), a private copy of the counts and their prefix
 * sums, and the small path (handshake-carried) or the ring plan. */
static rt_status v_start(coll_comm_t *c, coll_kind kind, void *buf, const size_t *counts,
                         rt_dtype dt, coll_op op, coll_request_t **out)
{
    int rs = kind == COLL_KIND_REDUCE_SCATTER_V;
    const char *name = rs ? "reduce_scatter_v" : "allgather_v";
    check_t k = {.name = name, .c = c};
    int n = c->size;
    size_t total = 0;
    check_type(&k, dt, 0, 1);
    if (rs)
        check_op(&k, op);
    if (!counts) {
        bad(&k, "counts is NULL");
    } else if (!k.bad) {
        size_t limit = COLL_MAX_BYTES / rt_dtype_size(dt);
        for (int i = 0; i < n; i++) {
            if (counts[i] > limit - total) {
                bad(&k, "counts[%d] = %zu is negative or brings the total over 2^40 bytes", i, counts[i]);
                break;
            }
            total += counts[i];
        }
    }
    check_buf(&k, buf, "data", total, dt);
    TRY(coll_comm_usable(c, name));
    if (k.bad)
        return fail_with_peers(&k);
    size_t elem = rt_dtype_size(dt), bytes = total * elem;
    size_t bitmap = rs ? 0 : ((size_t)n + 7) / 8;
    int small = n > 1 && bytes + bitmap <= c->small_bytes;
    hs_payload_mode mode = !small ? HS_PAYLOAD_NONE : rs ? HS_PAYLOAD_REDUCE : HS_PAYLOAD_GATHER;
    coll_desc_t d = {.count = total, .counts_hash = counts_hash(counts, n), .kind = kind,
                     .dtype = dt, .op = rs ? op : 0, .root = -1};
    coll_request_t *r = NULL;
    TRY(start(c, &d, mode, small ? bytes + bitmap : 0, &r));
    r->elem = elem; r->count = total; r->dt = dt; r->op = rs ? op : COLL_SUM;
    r->send = buf; r->recv = buf;
    r->vcount = malloc(2 * (size_t)n * sizeof(size_t));
    if (!r->vcount) {
        coll_request_free(r);
        return rt_fail(RT_ERR_NOMEM, "rank %d: cannot allocate the counts of %s", c->rank, name);
    }
    r->voff = r->vcount + n;
    for (int i = 0; i < n; i++) {
        r->vcount[i] = counts[i];
        r->voff[i] = i ? r->voff[i - 1] + counts[i - 1] : 0;
    }
    unsigned char *mine = (unsigned char *)buf + r->voff[c->rank] * elem;
    size_t mine_bytes = r->vcount[c->rank] * elem;
    if (n == 1) {
        /* one chunk, already this rank's; the average over one rank is the
         * value itself. The request completes at the first test or wait. */
        *out = r;
        return RT_OK;
    }
    if (small) {
        unsigned char *acc = r->hs.sendpack + sizeof(coll_hdr_t);
        if (rs) {
            /* recursive doubling over the whole buffer; hs_finish keeps this
             * rank's chunk */
            if (bytes)
                memcpy(acc, buf, bytes);
        } else {
            /* chunks plus a bitmap of those present (coll_handshake.c) */
            memset(acc + bytes, 0, bitmap);
            if (mine_bytes)
                memcpy(acc + r->voff[c->rank] * elem, mine, mine_bytes);
            acc[bytes + (size_t)c->rank / 8] |= (unsigned char)(1u << (c->rank % 8));
        }
        *out = r;
        return RT_OK;
    }
    rt_status st = pl_setup(r, n - 1, n, rs);
    if (st != RT_OK) {
        coll_request_free(r);
        return st;
    }
    coll_pl_t *p = &r->pl;
    for (int i = 0; i < n; i++) {
        p->chunk_off[i] = r->voff[i];
        p->chunk_len[i] = r->vcount[i];
    }
    /* segments per step from the largest chunk; shorter and empty chunks
     * skip their missing segments identically on both ends of each link,
     * since every rank has the same counts (the handshake checked) */
    pl_segments(p, n);
    /* in place, as the in-place all-reduce: chunk r-1 is sent from buf at
     * step 0 and never written here; every other chunk is written once, by
     * the reduction of its one receive, from this rank's own value still in
     * buf and the incoming partial sum */
    p->src = buf;
    p->out = buf;
    if (rs)
        plan_reduce_scatter_steps(p, c->rank, n);
    else
        plan_allgather_steps(p, c->rank, n, 0, 0);
    *out = r;
    return RT_OK;
}

rt_status coll_reduce_scatter_v_start(coll_comm_t *c, void *buf, const size_t *counts,
                                      rt_dtype dt, coll_op op, coll_request_t **req)
{
    CHECK_ARG(req, "coll_reduce_scatter_v_start: req is NULL");
    *req = NULL;
    CHECK_ARG(c, "coll_reduce_scatter_v: communicator is NULL");
    return v_start(c, COLL_KIND_REDUCE_SCATTER_V, buf, counts, dt, op, req);
}

rt_status coll_allgather_v_start(coll_comm_t *c, void *buf, const size_t *counts, rt_dtype dt,
                                 coll_request_t **req)
{
    CHECK_ARG(req, "coll_allgather_v_start: req is NULL");
    *req = NULL;
    CHECK_ARG(c, "coll_allgather_v: communicator is NULL");
    return v_start(c, COLL_KIND_ALLGATHER_V, buf, counts, dt, COLL_SUM, req);
}

rt_status coll_reduce_scatter_v(coll_comm_t *c, void *buf, const size_t *counts, rt_dtype dt,
                                coll_op op)
{
    coll_request_t *r = NULL;
    TRY(coll_reduce_scatter_v_start(c, buf, counts, dt, op, &r));
    return coll_wait(r);
}

rt_status coll_allgather_v(coll_comm_t *c, void *buf, const size_t *counts, rt_dtype dt)
{
    coll_request_t *r = NULL;
    TRY(coll_allgather_v_start(c, buf, counts, dt, &r));
    return coll_wait(r);
}

rt_status coll_barrier(coll_comm_t *c)
{
    CHECK_ARG(c, "coll_barrier: communicator is NULL");
    TRY(coll_comm_usable(c, "barrier"));
    coll_desc_t d = {.kind = COLL_KIND_BARRIER, .root = -1};
    coll_request_t *r = NULL;
    TRY(start(c, &d, HS_PAYLOAD_NONE, 0, &r));
    return coll_wait(r);
}
