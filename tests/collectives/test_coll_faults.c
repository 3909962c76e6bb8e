/* test_coll_faults.c - failures end in a status with a message, never a hang
 * or a crash:
 *   timeout   one rank never calls; every other rank gets RT_ERR_TIMEOUT
 *             within the timeout (2 s), naming the absent rank; the
 *             communicator then refuses further calls at once.
 *   mismatch  ranks call with different counts, types, ops, roots or
 *             collectives: every rank gets RT_ERR_MISMATCH naming the
 *             ranks, quickly, and the communicator stays usable.
 *   badinput  NULL or misaligned buffers, negative or overflowing counts,
 *             unknown or unsupported dtypes (u16, u64) and ops, bad roots,
 *             overlapping buffers: every rank gets RT_ERR_INVALID naming its
 *             rank; when only one rank is wrong, the others get
 *             RT_ERR_MISMATCH naming it.
 * The test exits 0 only if every rank's checks held. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>

#include "coll_test_util.h"
#include "common/timer.h"

static int g_rank, g_size;

static int contains(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

/* Sum of ranks: the closed form for a follow-up call that must still work. */
static void expect_usable(coll_comm_t *c, const char *after)
{
    double v = g_rank, s = -1;
    rt_status st = coll_allreduce(c, &v, &s, 1, RT_DTYPE_F64, COLL_SUM);
    EXPECT(st == RT_OK && s == g_size * (g_size - 1) / 2.0, "allreduce after %s: %s (got %g)", after,
           rt_last_error(), s);
}

static void run_timeout(size_t count, int absent)
{
    coll_comm_t *c = NULL;
    if (coll_comm_world(&c) != RT_OK) {
        EXPECT(0, "comm_world: %s", rt_last_error());
        return;
    }
    const double timeout = 2.0;
    coll_set_timeout(c, timeout);
    float *buf = calloc(count + 1, sizeof(float));
    if (g_rank != absent) {
        double t0 = rt_now();
        rt_status st = coll_allreduce(c, buf, buf, count, RT_DTYPE_F32, COLL_SUM);
        double took = rt_now() - t0;
        const char *msg = rt_last_error();
        char want[64];
        snprintf(want, sizeof want, "rank %d never arrived", absent);
        EXPECT(st == RT_ERR_TIMEOUT, "count %zu: status %s, want timeout: %s", count, rt_status_name(st), msg);
        EXPECT(contains(msg, want), "count %zu: message does not name the absent rank %d: %s", count, absent, msg);
        EXPECT(took < timeout + 1.0, "count %zu: took %.2f s with a %.1f s timeout", count, took, timeout);
        if (g_rank == 0)
            printf("rank 0 got: %s\n", msg);
        /* the communicator is now unusable: the next call fails at once */
        t0 = rt_now();
        st = coll_barrier(c);
        EXPECT(st != RT_OK && rt_now() - t0 < 0.5 && contains(rt_last_error(), "broken"),
               "call after a timeout: %s: %s", rt_status_name(st), rt_last_error());
    }
    free(buf);
    MPI_Barrier(MPI_COMM_WORLD);
    coll_comm_free(c);
}

typedef enum { CALL_ALLREDUCE, CALL_BARRIER, CALL_BCAST, CALL_ALLGATHER, CALL_REDUCE_SCATTER } call_kind;

static rt_status call(coll_comm_t *c, call_kind k, size_t count, rt_dtype dt, coll_op op, int root)
{
    size_t es = rt_dtype_size(dt) ? rt_dtype_size(dt) : 8;
    void *a = calloc(count * (size_t)g_size + 1, es), *b = calloc(count * (size_t)g_size + 1, es);
    rt_status st = RT_ERR_INTERNAL;
    switch (k) {
    case CALL_ALLREDUCE: st = coll_allreduce(c, a, b, count, dt, op); break;
    case CALL_BARRIER: st = coll_barrier(c); break;
    case CALL_BCAST: st = coll_broadcast(c, a, count, dt, root); break;
    case CALL_ALLGATHER: st = coll_allgather(c, a, b, count, dt); break;
    case CALL_REDUCE_SCATTER: st = coll_reduce_scatter(c, a, b, count, dt, op); break;
    }
    free(a);
    free(b);
    return st;
}

static void run_mismatch(coll_comm_t *c)
{
    const int odd = 1; /* the rank that disagrees */
    struct {
        const char *name;
        call_kind k[2];
        size_t count[2];
        rt_dtype dt[2];
        coll_op op[2];
        int root[2];
    } cases[] = {
        {"small count", {CALL_ALLREDUCE, CALL_ALLREDUCE}, {10, 11}, {RT_DTYPE_F32, RT_DTYPE_F32}, {0, 0}, {0, 0}},
        {"large count", {CALL_ALLREDUCE, CALL_ALLREDUCE}, {1 << 20, (1 << 20) + 1}, {RT_DTYPE_F32, RT_DTYPE_F32}, {0, 0}, {0, 0}},
        {"small vs large", {CALL_ALLREDUCE, CALL_ALLREDUCE}, {10, 1 << 20}, {RT_DTYPE_F32, RT_DTYPE_F32}, {0, 0}, {0, 0}},
        {"dtype", {CALL_ALLREDUCE, CALL_ALLREDUCE}, {100, 100}, {RT_DTYPE_F32, RT_DTYPE_I32}, {0, 0}, {0, 0}},
        {"op", {CALL_ALLREDUCE, CALL_ALLREDUCE}, {100, 100}, {RT_DTYPE_F64, RT_DTYPE_F64}, {COLL_SUM, COLL_AVG}, {0, 0}},
        {"root", {CALL_BCAST, CALL_BCAST}, {100, 100}, {RT_DTYPE_U8, RT_DTYPE_U8}, {0, 0}, {0, 1}},
        {"large bcast root", {CALL_BCAST, CALL_BCAST}, {1 << 20, 1 << 20}, {RT_DTYPE_U8, RT_DTYPE_U8}, {0, 0}, {0, 1}},
        {"barrier vs allreduce", {CALL_ALLREDUCE, CALL_BARRIER}, {5, 0}, {RT_DTYPE_F32, RT_DTYPE_F32}, {0, 0}, {0, 0}},
        {"allgather vs reduce_scatter", {CALL_REDUCE_SCATTER, CALL_ALLGATHER}, {1000, 1000}, {RT_DTYPE_F32, RT_DTYPE_F32}, {0, 0}, {0, 0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int w = g_rank == odd;
        double t0 = rt_now();
        rt_status st = call(c, cases[i].k[w], cases[i].count[w], cases[i].dt[w], cases[i].op[w], cases[i].root[w]);
        double took = rt_now() - t0;
        const char *msg = rt_last_error();
        EXPECT(st == RT_ERR_MISMATCH, "%s: status %s, want mismatch: %s", cases[i].name, rt_status_name(st), msg);
        EXPECT(contains(msg, "ranks disagree") && contains(msg, "rank 1 called"),
               "%s: message does not name rank %d: %s", cases[i].name, odd, msg);
        EXPECT(took < 5.0, "%s: took %.2f s", cases[i].name, took);
        if (g_rank == 0)
            printf("%s: %s\n", cases[i].name, msg);
        expect_usable(c, cases[i].name);
    }
}

static void expect_invalid(rt_status st, const char *what, const char *needle)
{
    const char *msg = rt_last_error();
    char rk[32];
    snprintf(rk, sizeof rk, "rank %d", g_rank);
    EXPECT(st == RT_ERR_INVALID, "%s: status %s, want invalid: %s", what, rt_status_name(st), msg);
    EXPECT(contains(msg, needle), "%s: message lacks '%s': %s", what, needle, msg);
    EXPECT(contains(msg, rk) || contains(msg, "NULL"), "%s: message does not name the rank: %s", what, msg);
}

static void run_badinput(coll_comm_t *c)
{
    float f[8] = {0};
    char *raw = (char *)f;
    double t0 = rt_now();
    expect_invalid(coll_allreduce(NULL, f, f, 1, RT_DTYPE_F32, COLL_SUM), "NULL comm", "NULL");
    expect_invalid(coll_allreduce(c, NULL, f, 4, RT_DTYPE_F32, COLL_SUM), "NULL send", "NULL");
    expect_invalid(coll_allreduce(c, f, NULL, 4, RT_DTYPE_F32, COLL_SUM), "NULL recv", "NULL");
    expect_invalid(coll_allreduce(c, raw + 1, raw + 1, 2, RT_DTYPE_F32, COLL_SUM), "misaligned", "aligned");
    expect_invalid(coll_allreduce(c, f, f, (size_t)-1, RT_DTYPE_F32, COLL_SUM), "count -1", "too large");
    expect_invalid(coll_allreduce(c, f, f, (size_t)-5, RT_DTYPE_F64, COLL_SUM), "count -5", "too large");
    expect_invalid(coll_allreduce(c, f, f, SIZE_MAX / 4 + 2, RT_DTYPE_F64, COLL_SUM), "overflowing count", "too large");
    expect_invalid(coll_allreduce(c, f, f, 2, (rt_dtype)99, COLL_SUM), "unknown dtype", "unknown dtype");
    expect_invalid(coll_allreduce(c, f, f, 2, RT_DTYPE_F32, (coll_op)7), "unknown op", "unknown op");
    expect_invalid(coll_allreduce(c, f, f + 1, 4, RT_DTYPE_F32, COLL_SUM), "overlap", "overlap");
    expect_invalid(coll_broadcast(c, f, 2, RT_DTYPE_F32, -1), "root -1", "root");
    expect_invalid(coll_broadcast(c, f, 2, RT_DTYPE_F32, g_size), "root n", "root");
    expect_invalid(coll_broadcast(c, NULL, 2, RT_DTYPE_F32, 0), "bcast NULL", "NULL");
    expect_invalid(coll_allgather(c, f, NULL, 1, RT_DTYPE_F32), "allgather NULL", "NULL");
    expect_invalid(coll_allgather(c, f, f, SIZE_MAX / 2, RT_DTYPE_U8), "allgather huge", "too large");
    expect_invalid(coll_reduce_scatter(c, f, f, 1, (rt_dtype)-3, COLL_AVG), "reduce_scatter dtype", "unknown dtype");
    /* types of common/dtype.h that the collectives do not take */
    expect_invalid(coll_allreduce(c, f, f, 2, RT_DTYPE_U16, COLL_SUM), "u16 allreduce", "dtype u16 is not supported");
    expect_invalid(coll_broadcast(c, f, 2, RT_DTYPE_U64, 0), "u64 broadcast", "dtype u64 is not supported");
    expect_invalid(coll_allgather(c, f, f, 1, RT_DTYPE_COUNT), "end marker", "unknown dtype");
    expect_invalid(coll_barrier(NULL), "barrier NULL", "NULL");
    coll_request_t *r = NULL;
    expect_invalid(coll_allreduce_start(c, f, f, 1, RT_DTYPE_F32, COLL_SUM, NULL), "start NULL req", "NULL");
    expect_invalid(coll_allreduce_start(c, NULL, f, 1, RT_DTYPE_F32, COLL_SUM, &r), "start NULL send", "NULL");
    EXPECT(r == NULL, "failed start returned a request");
    expect_invalid(coll_wait(NULL), "wait NULL", "NULL");
    expect_invalid(coll_comm_split(NULL, 0, 0, &(coll_comm_t *){NULL}), "split NULL", "NULL");
    EXPECT(rt_now() - t0 < 5.0, "bad input took %.2f s", rt_now() - t0);
    expect_usable(c, "bad input on every rank");
    /* Only rank 0 is wrong: it gets INVALID, the others a mismatch naming it. */
    if (g_size > 1) {
        rt_status st = coll_allreduce(c, g_rank == 0 ? NULL : f, f, 4, RT_DTYPE_F32, COLL_SUM);
        if (g_rank == 0) {
            expect_invalid(st, "one rank's NULL buffer", "NULL");
        } else {
            EXPECT(st == RT_ERR_MISMATCH && contains(rt_last_error(), "rank 0 called call") &&
                   contains(rt_last_error(), "invalid arguments"),
                   "peer of a bad rank: %s: %s", rt_status_name(st), rt_last_error());
        }
        if (g_rank == 1)
            printf("peer of a bad rank got: %s\n", rt_last_error());
        expect_usable(c, "one rank's bad input");
    }
}

int main(int argc, char **argv)
{
    if (coll_init(&argc, &argv) != RT_OK) {
        fprintf(stderr, "coll_init: %s\n", rt_last_error());
        return 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "timeout")) {
        if (g_size < 2) {
            printf("needs 2 ranks\n");
            coll_finalize();
            return 77;
        }
        run_timeout(10, g_size - 1);        /* handshake carries the data */
        run_timeout(1 << 20, g_size / 2);   /* ring path */
    } else if (!strcmp(mode, "mismatch") || !strcmp(mode, "badinput")) {
        coll_comm_t *c = NULL;
        if (coll_comm_world(&c) != RT_OK) {
            fprintf(stderr, "comm_world: %s\n", rt_last_error());
            return 1;
        }
        /* RT_COLL_TIMEOUT sets the default; a value that is not a positive
         * number is ignored (with a warning) for the built-in 300 s. */
        const char *env = getenv("RT_COLL_TIMEOUT");
        if (env) {
            char *end = NULL;
            double want = strtod(env, &end);
            if (end == env || *end || !(want > 0))
                want = 300;
            EXPECT(coll_timeout(c) == want, "RT_COLL_TIMEOUT=%s gave a timeout of %g s, want %g",
                   env, coll_timeout(c), want);
        }
        coll_set_timeout(c, 20);
        EXPECT(coll_timeout(c) == 20, "coll_set_timeout(20) gave %g", coll_timeout(c));
        /* the stall warning's fraction: RT_COLL_WARN_FRACTION or 0.1; the
         * setter takes [0, 1) and ignores anything else */
        const char *wenv = getenv("RT_COLL_WARN_FRACTION");
        double wwant = wenv ? strtod(wenv, NULL) : 0.1;
        EXPECT(coll_warn_fraction(c) == wwant, "RT_COLL_WARN_FRACTION=%s gave %g, want %g",
               wenv ? wenv : "(unset)", coll_warn_fraction(c), wwant);
        coll_set_warn_fraction(c, 0.25);
        EXPECT(coll_warn_fraction(c) == 0.25, "coll_set_warn_fraction(0.25) gave %g", coll_warn_fraction(c));
        coll_set_warn_fraction(c, 1.0);
        coll_set_warn_fraction(c, -0.5);
        EXPECT(coll_warn_fraction(c) == 0.25, "out-of-range fractions were taken: %g", coll_warn_fraction(c));
        coll_set_warn_fraction(c, 0);
        EXPECT(coll_warn_fraction(c) == 0, "fraction 0 (no warning) refused: %g", coll_warn_fraction(c));
        if (!strcmp(mode, "mismatch") && g_size >= 2)
            run_mismatch(c);
        else if (!strcmp(mode, "badinput"))
            run_badinput(c);
        coll_comm_free(c);
    } else {
        fprintf(stderr, "usage: test_coll_faults timeout|mismatch|badinput\n");
        return 2;
    }
    int ok = tu_all(test_failed_count == 0);
    int rc = TEST_EXIT();
    coll_finalize();
    return ok ? rc : 1;
}
