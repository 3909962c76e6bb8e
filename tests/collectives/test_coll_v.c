/* test_coll_v.c - the in-place uneven-chunk collectives
 * (coll_reduce_scatter_v, coll_allgather_v and their _start forms) against
 * MPI's own on MPI_COMM_WORLD (MPI_Reduce_scatter with per-rank counts,
 * MPI_Allgatherv) for count patterns that stress the chunk bookkeeping:
 * even, uneven, empty chunks (this rank's own included), all empty, one rank
 * owning everything, tiny totals (handshake path) and totals of several
 * 256 KiB segments (ring path). Then several requests in flight together
 * with coll_allreduce_start, and mismatched counts, which must fail with
 * RT_ERR_MISMATCH on every rank instead of hanging, and an absent rank,
 * which must give a timeout naming it.
 *
 * Reduce-scatter: exact on integer-valued inputs, the tolerance of
 * test_coll_allreduce.c on random floats; only this rank's chunk is checked
 * (the others are unspecified). Allgather moves bytes: exact. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>

#include "coll_test_util.h"
#include "common/timer.h"

static int g_rank, g_size;

enum { NPATTERNS = 11 };

/* Fills counts[0..n) with pattern `which`; returns its name. */
static const char *pattern(int which, int n, size_t *counts)
{
    for (int i = 0; i < n; i++) {
        size_t v = 0;
        switch (which) {
        case 0: v = 1000; break;                                  /* even */
        case 1: v = (size_t)(37 * i + 11); break;                 /* uneven, small */
        case 2: v = i % 2 ? 0 : (size_t)(513 + i); break;         /* odd ranks own nothing */
        case 3: v = i == 0 ? 0 : (size_t)(300 + i); break;        /* rank 0 owns nothing */
        case 4: v = 0; break;                                     /* all empty */
        case 5: v = i == n - 1 ? 1234 : 0; break;                 /* last rank owns all */
        case 6: v = i == 0 ? 70001 : 0; break;                    /* rank 0 owns all, > 1 segment */
        case 7: v = (size_t)(i % 3); break;                       /* tiny: 0, 1, 2, 0 */
        case 8: v = 100003 + 50000 * (size_t)i; break;            /* large, uneven */
        case 9: v = i % 2 ? 0 : (size_t)(90001 + i); break;       /* large with empty chunks */
        case 10: v = i == n - 1 ? 0 : (size_t)(65537 + 3 * i); break; /* large, last empty */
        }
        counts[i] = v;
    }
    static const char *names[NPATTERNS] = {"even", "uneven", "odd-ranks-empty", "rank0-empty",
                                           "all-empty", "last-owns-all", "rank0-owns-all",
                                           "tiny", "large-uneven", "large-with-empty",
                                           "large-last-empty"};
    return names[which];
}

static size_t sum_counts(const size_t *counts, int n, int upto)
{
    size_t s = 0;
    for (int i = 0; i < upto && i < n; i++)
        s += counts[i];
    return s;
}

/* Input of reduce-scatter case `seed` and MPI's answer for this rank's
 * chunk (bf16: reduced as float). */
typedef struct {
    unsigned char *x, *o;
    float *xf;
    size_t total, mine_off, mine;
} rs_case_t;

static void rs_prepare(rs_case_t *k, const size_t *counts, rt_dtype dt, int integer, uint64_t seed)
{
    size_t es = rt_dtype_size(dt), oes = dt == RT_DTYPE_BF16 ? 4 : es;
    k->total = sum_counts(counts, g_size, g_size);
    k->mine_off = sum_counts(counts, g_size, g_rank);
    k->mine = counts[g_rank];
    k->x = malloc(k->total * es + 1);
    k->o = malloc(k->mine * oes + 1);
    k->xf = NULL;
    tu_fill(k->x, dt, k->total, integer, seed * 1000003 + (uint64_t)g_rank * 31 + (uint64_t)dt);
    const void *oin = k->x;
    if (dt == RT_DTYPE_BF16) {
        k->xf = malloc(k->total * 4 + 1);
        for (size_t i = 0; i < k->total; i++)
            k->xf[i] = rt_bf16_to_float(((uint16_t *)k->x)[i]);
        oin = k->xf;
    }
    int *rc = malloc(sizeof(int) * (size_t)g_size);
    for (int i = 0; i < g_size; i++)
        rc[i] = (int)counts[i];
    MPI_Reduce_scatter(oin, k->o, rc, tu_mpi_type(dt), MPI_SUM, MPI_COMM_WORLD);
    free(rc);
}

static void rs_free(rs_case_t *k)
{
    free(k->x);
    free(k->o);
    free(k->xf);
}

static size_t rs_check(const rs_case_t *k, const unsigned char *buf, rt_dtype dt, coll_op op,
                       int integer, size_t *first)
{
    size_t es = rt_dtype_size(dt);
    return tu_compare(buf + k->mine_off * es, k->o, dt, k->mine, op, integer, g_size, first);
}

static void test_reduce_scatter_v(coll_comm_t *c, const size_t *counts, const char *pat,
                                  rt_dtype dt, coll_op op, int integer)
{
    rs_case_t k;
    rs_prepare(&k, counts, dt, integer, (uint64_t)op * 7 + (uint64_t)integer);
    size_t es = rt_dtype_size(dt);
    unsigned char *buf = malloc(k.total * es + 1);
    memcpy(buf, k.x, k.total * es);
    rt_status st = coll_reduce_scatter_v(c, buf, counts, dt, op);
    EXPECT(st == RT_OK, "reduce_scatter_v %s %s: %s", pat, rt_dtype_name(dt), rt_last_error());
    size_t first = 0, wrong = rs_check(&k, buf, dt, op, integer, &first);
    EXPECT(wrong == 0, "reduce_scatter_v np=%d rank %d %s (total %zu, mine %zu) %s %s %s: %zu wrong (first %zu)",
           g_size, g_rank, pat, k.total, k.mine, rt_dtype_name(dt), op == COLL_AVG ? "avg" : "sum",
           integer ? "int" : "rand", wrong, first);
    free(buf);
    rs_free(&k);
}

/* This rank's chunk of allgather case `seed`, and MPI_Allgatherv's answer. */
static void ag_prepare(const size_t *counts, rt_dtype dt, uint64_t seed, unsigned char **buf,
                       unsigned char **ref)
{
    size_t es = rt_dtype_size(dt), total = sum_counts(counts, g_size, g_size);
    size_t off = sum_counts(counts, g_size, g_rank), mine = counts[g_rank];
    *buf = malloc(total * es + 1);
    *ref = malloc(total * es + 1);
    memset(*buf, 0xee, total * es);
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + (uint64_t)g_rank * 1009 + (uint64_t)dt + 1;
    for (size_t i = 0; i < mine * es; i++)
        (*buf)[off * es + i] = (unsigned char)(tu_rand(&s) >> 24);
    int *rc = malloc(sizeof(int) * 2 * (size_t)g_size), *displ = rc + g_size;
    for (int i = 0; i < g_size; i++) {
        rc[i] = (int)(counts[i] * es);
        displ[i] = (int)(sum_counts(counts, g_size, i) * es);
    }
    MPI_Allgatherv(*buf + off * es, (int)(mine * es), MPI_BYTE, *ref, rc, displ, MPI_BYTE,
                   MPI_COMM_WORLD);
    free(rc);
}

static void test_allgather_v(coll_comm_t *c, const size_t *counts, const char *pat, rt_dtype dt)
{
    unsigned char *buf, *ref;
    ag_prepare(counts, dt, 1, &buf, &ref);
    size_t bytes = sum_counts(counts, g_size, g_size) * rt_dtype_size(dt);
    rt_status st = coll_allgather_v(c, buf, counts, dt);
    EXPECT(st == RT_OK, "allgather_v %s %s: %s", pat, rt_dtype_name(dt), rt_last_error());
    EXPECT(!memcmp(buf, ref, bytes), "allgather_v np=%d rank %d %s %s: differs from MPI_Allgatherv",
           g_size, g_rank, pat, rt_dtype_name(dt));
    free(buf);
    free(ref);
}

/* Five calls in flight at once on one communicator, the counts arrays
 * scribbled over and freed right after each start: a ring-sized and a small
 * reduce-scatter_v, an all-reduce between them, a ring-sized and a small
 * allgather_v. Completed newest first with coll_wait (`how` 0) or by
 * polling every request with coll_test (`how` 1). */
static void test_in_flight(coll_comm_t *c, int how)
{
    int n = g_size;
    size_t *cnt[4];
    for (int i = 0; i < 4; i++)
        cnt[i] = malloc(sizeof(size_t) * (size_t)n);
    pattern(8, n, cnt[0]);       /* large: the ring (default RT_COLL_SMALL) */
    pattern(7, n, cnt[1]);       /* tiny: the handshake */
    pattern(9, n, cnt[2]);
    pattern(2, n, cnt[3]);
    rs_case_t a, b;
    rs_prepare(&a, cnt[0], RT_DTYPE_F32, 1, 100 + (uint64_t)how);
    rs_prepare(&b, cnt[1], RT_DTYPE_BF16, 1, 200 + (uint64_t)how);
    unsigned char *abuf = malloc(a.total * 4 + 1), *bbuf = malloc(b.total * 2 + 1);
    memcpy(abuf, a.x, a.total * 4);
    memcpy(bbuf, b.x, b.total * 2);
    size_t arn = 50001;
    int64_t *arx = malloc(arn * 8), *arref = malloc(arn * 8), *ary = malloc(arn * 8);
    tu_fill(arx, RT_DTYPE_I64, arn, 1, 300 + (uint64_t)g_rank);
    MPI_Allreduce(arx, arref, (int)arn, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    unsigned char *gbuf, *gref, *hbuf, *href;
    ag_prepare(cnt[2], RT_DTYPE_F32, 400 + (uint64_t)how, &gbuf, &gref);
    ag_prepare(cnt[3], RT_DTYPE_I64, 500 + (uint64_t)how, &hbuf, &href);
    size_t gbytes = sum_counts(cnt[2], n, n) * 4, hbytes = sum_counts(cnt[3], n, n) * 8;

    coll_request_t *q[5] = {0};
    EXPECT(coll_reduce_scatter_v_start(c, abuf, cnt[0], RT_DTYPE_F32, COLL_SUM, &q[0]) == RT_OK,
           "start rs_v large: %s", rt_last_error());
    EXPECT(coll_allreduce_start(c, arx, ary, arn, RT_DTYPE_I64, COLL_SUM, &q[1]) == RT_OK,
           "start allreduce: %s", rt_last_error());
    EXPECT(coll_reduce_scatter_v_start(c, bbuf, cnt[1], RT_DTYPE_BF16, COLL_AVG, &q[2]) == RT_OK,
           "start rs_v tiny: %s", rt_last_error());
    EXPECT(coll_allgather_v_start(c, gbuf, cnt[2], RT_DTYPE_F32, &q[3]) == RT_OK,
           "start ag_v large: %s", rt_last_error());
    EXPECT(coll_allgather_v_start(c, hbuf, cnt[3], RT_DTYPE_I64, &q[4]) == RT_OK,
           "start ag_v small: %s", rt_last_error());
    /* the requests must hold their own copies of the counts */
    for (int i = 0; i < 4; i++) {
        memset(cnt[i], 0xa5, sizeof(size_t) * (size_t)n);
        free(cnt[i]);
    }
    if (how == 0) {
        for (int i = 4; i >= 0; i--)
            EXPECT(q[i] && coll_wait(q[i]) == RT_OK, "wait %d: %s", i, rt_last_error());
    } else {
        int left = 5;
        double t0 = rt_now();
        while (left && rt_now() - t0 < 60) {
            for (int i = 0; i < 5; i++) {
                if (!q[i])
                    continue;
                int done = 0;
                rt_status st = coll_test(q[i], &done);
                if (done) {
                    EXPECT(st == RT_OK, "test %d: %s", i, rt_last_error());
                    q[i] = NULL;
                    left--;
                }
            }
        }
        EXPECT(left == 0, "%d requests still in flight after 60 s of coll_test", left);
    }
    size_t first = 0, wrong = rs_check(&a, abuf, RT_DTYPE_F32, COLL_SUM, 1, &first);
    EXPECT(wrong == 0, "in flight (%d): rs_v f32 large: %zu wrong (first %zu)", how, wrong, first);
    wrong = rs_check(&b, bbuf, RT_DTYPE_BF16, COLL_AVG, 1, &first);
    EXPECT(wrong == 0, "in flight (%d): rs_v bf16 avg tiny: %zu wrong (first %zu)", how, wrong, first);
    EXPECT(!memcmp(ary, arref, arn * 8), "in flight (%d): allreduce differs from MPI_Allreduce", how);
    EXPECT(!memcmp(gbuf, gref, gbytes), "in flight (%d): ag_v f32 large differs", how);
    EXPECT(!memcmp(hbuf, href, hbytes), "in flight (%d): ag_v i64 small differs", how);
    rs_free(&a);
    rs_free(&b);
    free(abuf); free(bbuf); free(arx); free(arref); free(ary);
    free(gbuf); free(gref); free(hbuf); free(href);
}

/* Rank 0 passes different counts (same total, or another total), or calls
 * the other _v collective: every rank must get RT_ERR_MISMATCH promptly, and
 * the communicator must stay usable. A bad argument on rank 0 alone gives it
 * RT_ERR_INVALID and the others a mismatch. */
static void test_mismatch(coll_comm_t *c)
{
    if (g_size < 2)
        return;
    int n = g_size;
    size_t *cnt = malloc(sizeof(size_t) * (size_t)n);
    for (int big = 0; big <= 1; big++) {
        for (int kind = 0; kind < 4; kind++) {
            pattern(big ? 8 : 1, n, cnt);
            size_t total = sum_counts(cnt, n, n);
            const char *what = "";
            if (g_rank == 0) {
                if (kind == 0) {            /* same total, chunks moved */
                    cnt[0] += 1;
                    cnt[1] -= 1;
                    what = "swapped";
                } else if (kind == 1) {     /* one more element */
                    cnt[n - 1] += 1;
                    what = "total";
                }
            }
            if (kind == 2)
                what = "kind";
            if (kind == 3)
                what = "in-flight";
            size_t cap = total + 2;
            float *buf = calloc(cap, sizeof(float));
            double t0 = rt_now();
            rt_status st;
            char msg[1024] = "";
            if (kind == 2) {
                st = g_rank == 0 ? coll_allgather_v(c, buf, cnt, RT_DTYPE_F32)
                                 : coll_reduce_scatter_v(c, buf, cnt, RT_DTYPE_F32, COLL_SUM);
            } else if (kind == 3) {
                /* a mismatched call with a good one queued behind it */
                if (g_rank == 0) {
                    cnt[0] += 1;
                    cnt[1] -= 1;
                }
                coll_request_t *q1 = NULL, *q2 = NULL;
                double one = 1, got = 0;
                st = coll_reduce_scatter_v_start(c, buf, cnt, RT_DTYPE_F32, COLL_SUM, &q1);
                EXPECT(st == RT_OK, "start: %s", rt_last_error());
                EXPECT(coll_allreduce_start(c, &one, &got, 1, RT_DTYPE_F64, COLL_SUM, &q2) == RT_OK,
                       "start: %s", rt_last_error());
                rt_status st2 = coll_wait(q2);
                EXPECT(st2 == RT_OK && got == n, "allreduce behind a mismatch: %s, %g", rt_last_error(), got);
                st = coll_wait(q1);
            } else {
                st = coll_reduce_scatter_v(c, buf, cnt, RT_DTYPE_F32, COLL_SUM);
            }
            snprintf(msg, sizeof msg, "%s", rt_last_error());
            double took = rt_now() - t0;
            EXPECT(st == RT_ERR_MISMATCH, "mismatch %s%s: status %s, want mismatch: %s", what,
                   big ? " (ring size)" : "", rt_status_name(st), msg);
            EXPECT(took < 5, "mismatch %s took %.1f s", what, took);
            if (kind == 0 || kind == 3)
                EXPECT(strstr(msg, "counts_hash=") != NULL, "mismatch message names no counts hash: %s", msg);
            free(buf);
            /* still usable: a good call */
            pattern(1, n, cnt);
            test_reduce_scatter_v(c, cnt, "after-mismatch", RT_DTYPE_F32, COLL_SUM, 1);
        }
    }
    /* one rank's own arguments bad */
    pattern(1, n, cnt);
    float *buf = calloc(sum_counts(cnt, n, n) + 1, sizeof(float));
    rt_status st = g_rank == 0 ? coll_allgather_v(c, buf, NULL, RT_DTYPE_F32)
                               : coll_allgather_v(c, buf, cnt, RT_DTYPE_F32);
    EXPECT(st == (g_rank == 0 ? RT_ERR_INVALID : RT_ERR_MISMATCH), "NULL counts on rank 0: %s: %s",
           rt_status_name(st), rt_last_error());
    if (g_rank == 0)
        cnt[0] = (size_t)-1;
    st = coll_reduce_scatter_v(c, buf, cnt, RT_DTYPE_F32, COLL_SUM);
    EXPECT(st == (g_rank == 0 ? RT_ERR_INVALID : RT_ERR_MISMATCH), "negative count on rank 0: %s: %s",
           rt_status_name(st), rt_last_error());
    pattern(1, n, cnt);
    free(buf);
    free(cnt);
    test_allgather_v(c, (size_t[]){3, 0, 5, 7, 9, 11, 13, 15}, "after-invalid", RT_DTYPE_F64);
}

/* Bad arguments refused on every rank alike (any size). */
static void test_bad_args(coll_comm_t *c)
{
    size_t cnt[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    uint16_t buf[8] = {0};
    coll_request_t *q = (coll_request_t *)&q;
    EXPECT(coll_allgather_v_start(c, buf, cnt, RT_DTYPE_U16, &q) == RT_ERR_INVALID && q == NULL,
           "u16 is refused: %s", rt_last_error());
    EXPECT(coll_reduce_scatter_v(c, buf, cnt, RT_DTYPE_BF16, (coll_op)7) == RT_ERR_INVALID,
           "unknown op is refused: %s", rt_last_error());
    EXPECT(coll_reduce_scatter_v(c, NULL, cnt, RT_DTYPE_BF16, COLL_SUM) == RT_ERR_INVALID,
           "NULL buffer is refused: %s", rt_last_error());
    EXPECT(coll_reduce_scatter_v(c, (char *)buf + 1, cnt, RT_DTYPE_BF16, COLL_SUM) == RT_ERR_INVALID,
           "misaligned buffer is refused: %s", rt_last_error());
    EXPECT(coll_reduce_scatter_v_start(NULL, buf, cnt, RT_DTYPE_BF16, COLL_SUM, &q) == RT_ERR_INVALID,
           "NULL communicator is refused");
    EXPECT(coll_allgather_v_start(c, buf, cnt, RT_DTYPE_BF16, NULL) == RT_ERR_INVALID,
           "NULL request pointer is refused");
    /* a NULL buffer is fine when there is nothing to move */
    size_t zero[8] = {0};
    EXPECT(coll_allgather_v(c, NULL, zero, RT_DTYPE_F32) == RT_OK, "empty with NULL: %s", rt_last_error());
}

/* One rank never calls: the others' _v requests (a ring-sized
 * reduce-scatter and a small allgather in flight together) time out within
 * the 2 s timeout + 1 s, naming it, and the communicator refuses the next
 * call at once. On a communicator of its own, which it breaks. */
static void test_timeout(void)
{
    if (g_size < 2)
        return;
    coll_comm_t *c = NULL;
    EXPECT(coll_comm_world(&c) == RT_OK, "comm_world: %s", rt_last_error());
    const double timeout = 2.0;
    coll_set_timeout(c, timeout);
    int absent = g_size - 1;
    size_t big[8], small[8];
    pattern(9, g_size, big);
    pattern(7, g_size, small);
    float *a = calloc(sum_counts(big, g_size, g_size) + 1, sizeof(float));
    float *b = calloc(sum_counts(small, g_size, g_size) + 1, sizeof(float));
    if (g_rank != absent) {
        double t0 = rt_now();
        coll_request_t *q1 = NULL, *q2 = NULL;
        EXPECT(coll_reduce_scatter_v_start(c, a, big, RT_DTYPE_F32, COLL_AVG, &q1) == RT_OK,
               "start: %s", rt_last_error());
        EXPECT(coll_allgather_v_start(c, b, small, RT_DTYPE_F32, &q2) == RT_OK, "start: %s",
               rt_last_error());
        rt_status st2 = coll_wait(q2);
        char msg2[1024];
        snprintf(msg2, sizeof msg2, "%s", rt_last_error());
        rt_status st1 = coll_wait(q1);
        const char *msg1 = rt_last_error();
        double took = rt_now() - t0;
        char want[64];
        snprintf(want, sizeof want, "rank %d never arrived", absent);
        EXPECT(st1 == RT_ERR_TIMEOUT && st2 == RT_ERR_TIMEOUT, "statuses %s, %s, want timeouts: %s",
               rt_status_name(st1), rt_status_name(st2), msg1);
        EXPECT(strstr(msg1, want) && strstr(msg1, "reduce_scatter_v #0"),
               "message does not name the call and the absent rank %d: %s", absent, msg1);
        EXPECT(strstr(msg2, want) != NULL, "the queued call's message: %s", msg2);
        EXPECT(took < timeout + 1.0, "took %.2f s with a %.1f s timeout", took, timeout);
        if (g_rank == 0)
            printf("rank 0 got: %s\n", msg1);
        t0 = rt_now();
        rt_status st = coll_allgather_v(c, b, small, RT_DTYPE_F32);
        EXPECT(st != RT_OK && rt_now() - t0 < 0.5 && strstr(rt_last_error(), "broken"),
               "call after a timeout: %s: %s", rt_status_name(st), rt_last_error());
    }
    free(a);
    free(b);
    MPI_Barrier(MPI_COMM_WORLD);
    coll_comm_free(c);
}

int main(int argc, char **argv)
{
    if (coll_init(&argc, &argv) != RT_OK || MPI_Comm_rank(MPI_COMM_WORLD, &g_rank) != MPI_SUCCESS) {
        fprintf(stderr, "coll_init: %s\n", rt_last_error());
        return 1;
    }
    coll_comm_t *c = NULL;
    if (coll_comm_world(&c) != RT_OK) {
        fprintf(stderr, "coll_comm_world: %s\n", rt_last_error());
        return 1;
    }
    coll_set_timeout(c, 60);
    g_size = coll_size(c);
    if (g_size > 8) {
        fprintf(stderr, "test_coll_v: at most 8 ranks\n");
        return 1;
    }
    size_t counts[8];
    static const rt_dtype ag_types[] = {RT_DTYPE_U8, RT_DTYPE_BF16, RT_DTYPE_F32, RT_DTYPE_I32,
                                        RT_DTYPE_F64, RT_DTYPE_I64};
    for (int p = 0; p < NPATTERNS; p++) {
        const char *pat = pattern(p, g_size, counts);
        int large = p >= 8 || p == 6;
        test_reduce_scatter_v(c, counts, pat, RT_DTYPE_F32, COLL_SUM, 1);
        test_reduce_scatter_v(c, counts, pat, RT_DTYPE_F32, COLL_AVG, 1);
        test_reduce_scatter_v(c, counts, pat, RT_DTYPE_F32, COLL_SUM, 0);
        test_reduce_scatter_v(c, counts, pat, RT_DTYPE_BF16, COLL_SUM, 1);
        test_reduce_scatter_v(c, counts, pat, RT_DTYPE_BF16, COLL_AVG, 1);
        test_reduce_scatter_v(c, counts, pat, RT_DTYPE_I64, COLL_SUM, 1);
        test_reduce_scatter_v(c, counts, pat, RT_DTYPE_I64, COLL_AVG, 1);
        if (!large) {
            test_reduce_scatter_v(c, counts, pat, RT_DTYPE_BF16, COLL_SUM, 0);
            test_reduce_scatter_v(c, counts, pat, RT_DTYPE_F64, COLL_AVG, 0);
            test_reduce_scatter_v(c, counts, pat, RT_DTYPE_I32, COLL_SUM, 1);
        }
        for (size_t t = 0; t < sizeof ag_types / sizeof ag_types[0]; t++)
            if (!large || ag_types[t] == RT_DTYPE_F32 || ag_types[t] == RT_DTYPE_U8)
                test_allgather_v(c, counts, pat, ag_types[t]);
    }
    test_in_flight(c, 0);
    test_in_flight(c, 1);
    test_bad_args(c);
    test_mismatch(c);
    coll_comm_free(c);
    test_timeout();
    int ok = tu_all(test_failed_count == 0);
    int rc = TEST_EXIT();
    coll_finalize();
    return ok ? rc : 1;
}
