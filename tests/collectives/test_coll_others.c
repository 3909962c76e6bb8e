/* test_coll_others.c - broadcast, allgather, reduce-scatter, barrier and
 * communicator splits against MPI's own (MPI_Bcast, MPI_Allgather,
 * MPI_Reduce_scatter_block, MPI_Comm_split, MPI_Comm_split_type) for counts
 * 0, 1, 2, n-1, n+1, 100003 and 1000003, every root, in place and out of
 * place, and every dtype. Broadcast and allgather move bytes: exact.
 * Reduce-scatter: exact on integer-valued inputs, tolerance on random floats
 * (as in test_coll_allreduce.c). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>

#include "coll_test_util.h"
#include "common/timer.h"

static int g_rank, g_size;
static const rt_dtype all_types[] = {RT_DTYPE_U8, RT_DTYPE_F32, RT_DTYPE_F64, RT_DTYPE_BF16,
                                     RT_DTYPE_I32, RT_DTYPE_I64};
#define NTYPES (sizeof all_types / sizeof all_types[0])

static void random_bytes(unsigned char *p, size_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 99;
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(tu_rand(&s) >> 24);
}

static void test_broadcast(coll_comm_t *c, size_t count, rt_dtype dt)
{
    size_t bytes = count * rt_dtype_size(dt);
    unsigned char *ours = malloc(bytes + 1), *ref = malloc(bytes + 1);
    for (int root = 0; root < g_size; root++) {
        random_bytes(ref, bytes, (uint64_t)root * 77 + count + (uint64_t)dt);
        if (g_rank == root)
            memcpy(ours, ref, bytes);
        else
            memset(ours, 0xee, bytes);
        rt_status st = coll_broadcast(c, ours, count, dt, root);
        EXPECT(st == RT_OK, "broadcast count=%zu %s root=%d: %s", count, rt_dtype_name(dt), root,
               rt_last_error());
        MPI_Bcast(ref, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD); /* the oracle */
        EXPECT(!memcmp(ours, ref, bytes), "broadcast count=%zu %s root=%d: rank %d differs from MPI_Bcast",
               count, rt_dtype_name(dt), root, g_rank);
    }
    free(ours);
    free(ref);
}

static void test_allgather(coll_comm_t *c, size_t count, rt_dtype dt)
{
    size_t bytes = count * rt_dtype_size(dt);
    unsigned char *mine = malloc(bytes + 1), *ours = malloc(bytes * (size_t)g_size + 1),
                  *ref = malloc(bytes * (size_t)g_size + 1);
    random_bytes(mine, bytes, (uint64_t)g_rank * 1009 + count + (uint64_t)dt);
    MPI_Allgather(mine, (int)bytes, MPI_BYTE, ref, (int)bytes, MPI_BYTE, MPI_COMM_WORLD);
    for (int inplace = 0; inplace <= 1; inplace++) {
        memset(ours, 0xee, bytes * (size_t)g_size);
        rt_status st;
        if (inplace) {
            memcpy(ours + (size_t)g_rank * bytes, mine, bytes);
            st = coll_allgather(c, ours + (size_t)g_rank * bytes, ours, count, dt);
        } else {
            st = coll_allgather(c, mine, ours, count, dt);
        }
        EXPECT(st == RT_OK, "allgather count=%zu %s %s: %s", count, rt_dtype_name(dt),
               inplace ? "in-place" : "out-of-place", rt_last_error());
        EXPECT(!memcmp(ours, ref, bytes * (size_t)g_size),
               "allgather count=%zu %s %s: rank %d differs from MPI_Allgather", count,
               rt_dtype_name(dt), inplace ? "in-place" : "out-of-place", g_rank);
    }
    free(mine); free(ours); free(ref);
}

static void test_reduce_scatter(coll_comm_t *c, size_t count, rt_dtype dt, int integer)
{
    size_t es = rt_dtype_size(dt), n = (size_t)g_size, total = count * n;
    unsigned char *x = malloc(total * es + 1), *buf = malloc(total * es + 1), *y = malloc(count * es + 1);
    size_t ob = count * (dt == RT_DTYPE_BF16 ? 4 : es);
    unsigned char *o = malloc(ob + 1);
    float *xf = NULL;
    tu_fill(x, dt, total, integer, (uint64_t)g_rank * 31 + count + (uint64_t)dt * 5 + (uint64_t)integer);
    const void *oin = x;
    if (dt == RT_DTYPE_BF16) {
        xf = malloc(total * 4 + 1);
        for (size_t i = 0; i < total; i++)
            xf[i] = rt_bf16_to_float(((uint16_t *)x)[i]);
        oin = xf;
    }
    MPI_Reduce_scatter_block(oin, o, (int)count, tu_mpi_type(dt), MPI_SUM, MPI_COMM_WORLD);
    for (int op = COLL_SUM; op <= COLL_AVG; op++) {
        for (int inplace = 0; inplace <= 1; inplace++) {
            rt_status st;
            unsigned char *res;
            if (inplace) {
                memcpy(buf, x, total * es);
                res = buf + (size_t)g_rank * count * es;
                st = coll_reduce_scatter(c, buf, res, count, dt, (coll_op)op);
            } else {
                memset(y, 0x5a, count * es);
                res = y;
                st = coll_reduce_scatter(c, x, y, count, dt, (coll_op)op);
            }
            EXPECT(st == RT_OK, "reduce_scatter count=%zu %s: %s", count, rt_dtype_name(dt), rt_last_error());
            size_t first = 0;
            size_t wrong = tu_compare(res, o, dt, count, (coll_op)op, integer, g_size, &first);
            EXPECT(wrong == 0, "reduce_scatter np=%d rank %d count=%zu %s %s %s %s: %zu wrong (first %zu)",
                   g_size, g_rank, count, rt_dtype_name(dt), op ? "avg" : "sum",
                   inplace ? "in-place" : "out-of-place", integer ? "int" : "rand", wrong, first);
        }
    }
    free(x); free(buf); free(y); free(o); free(xf);
}

/* Rank 0 arrives 0.3 s late: nobody may leave before it arrived. Each rank
 * stamps its exit time; MPI_Wtime is not global, so the oracle is rank 0's
 * arrival measured against a preceding MPI_Barrier on every rank. */
static void test_barrier(coll_comm_t *c)
{
    EXPECT(coll_barrier(c) == RT_OK, "barrier: %s", rt_last_error());
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = rt_now();
    if (g_rank == 0) {
        struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    rt_status st = coll_barrier(c);
    double waited = rt_now() - t0;
    EXPECT(st == RT_OK, "barrier: %s", rt_last_error());
    if (g_size > 1)
        EXPECT(waited >= 0.25, "rank %d left the barrier after %.3f s, before rank 0 arrived (0.3 s)",
               g_rank, waited);
}

static void test_split(coll_comm_t *c)
{
    coll_comm_t *sub = NULL;
    int color = g_rank % 2, key = -g_rank;
    rt_status st = coll_comm_split(c, color, key, &sub);
    EXPECT(st == RT_OK && sub, "split: %s", rt_last_error());
    MPI_Comm ref;
    MPI_Comm_split(MPI_COMM_WORLD, color, key, &ref);
    int rr, rs;
    MPI_Comm_rank(ref, &rr);
    MPI_Comm_size(ref, &rs);
    EXPECT(coll_rank(sub) == rr && coll_size(sub) == rs, "split: rank %d/%d, MPI says %d/%d",
           coll_rank(sub), coll_size(sub), rr, rs);
    double v[3] = {g_rank, 1, -g_rank * 0.5}, got[3], want[3];
    EXPECT(coll_allreduce(sub, v, got, 3, RT_DTYPE_F64, COLL_SUM) == RT_OK, "sub allreduce: %s", rt_last_error());
    MPI_Allreduce(v, want, 3, MPI_DOUBLE, MPI_SUM, ref);
    EXPECT(!memcmp(got, want, sizeof got), "sub-communicator allreduce differs from MPI");
    MPI_Comm_free(&ref);
    coll_comm_free(sub);
    /* a negative colour leaves a rank out */
    st = coll_comm_split(c, g_rank == 0 ? -1 : 0, 0, &sub);
    EXPECT(st == RT_OK && (g_rank == 0) == (sub == NULL), "split with colour -1: %s", rt_last_error());
    if (sub)
        EXPECT(coll_size(sub) == g_size - 1, "split without rank 0 has %d ranks", coll_size(sub));
    coll_comm_free(sub);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node);
    int lr, ls;
    MPI_Comm_rank(node, &lr);
    MPI_Comm_size(node, &ls);
    EXPECT(coll_local_rank(c) == lr && coll_local_size(c) == ls, "local rank %d/%d, MPI says %d/%d",
           coll_local_rank(c), coll_local_size(c), lr, ls);
    MPI_Comm_free(&node);
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
    size_t counts[32] = {0, 1, 2, (size_t)g_size - 1, (size_t)g_size + 1, 100003, 1000003};
    int ncounts = 7;
#ifdef __SANITIZE_ADDRESS__
    ncounts = 6; /* -O0 with ASan: 100003 runs the same paths; see test_coll_allreduce.c */
#endif
    for (int i = 1; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "--large")) {  /* replaces the two large counts */
            ncounts = 5;
            for (char *p = argv[++i]; *p && ncounts < 32;) {
                counts[ncounts++] = strtoull(p, &p, 10);
                if (*p == ',')
                    p++;
            }
        }
    }
    for (int ci = 0; ci < ncounts; ci++) {
        for (size_t t = 0; t < NTYPES; t++) {
            rt_dtype dt = all_types[t];
            test_broadcast(c, counts[ci], dt);
            test_allgather(c, counts[ci], dt);
            if (dt == RT_DTYPE_U8)
                continue;
            test_reduce_scatter(c, counts[ci], dt, 1);
            if (dt == RT_DTYPE_F32 || dt == RT_DTYPE_F64 || dt == RT_DTYPE_BF16)
                test_reduce_scatter(c, counts[ci], dt, 0);
        }
    }
    test_barrier(c);
    test_split(c);
    coll_comm_free(c);
    int ok = tu_all(test_failed_count == 0);
    int rc = TEST_EXIT();
    coll_finalize();
    return ok ? rc : 1;
}
