/* coll_comm.c - communicators: MPI start-up and shut-down, the private
 * duplicate each communicator talks on, node-local rank and size, timeouts,
 * the stall warning and tuning from the environment, the scratch-buffer cache, and the broken
 * state a communicator enters after a timeout or an MPI failure. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collectives/coll_internal.h"
#include "common/check.h"
#include "common/log.h"
#include "common/timeout.h"
#include "common/timer.h"

static int coll_started_mpi;

rt_status coll_init(int *argc, char ***argv)
{
    int inited = 0, finalized = 0;
    CHECK_MPI(MPI_Initialized(&inited));
    CHECK_MPI(MPI_Finalized(&finalized));
    if (finalized)
        return rt_fail(RT_ERR_MPI, "coll_init: MPI was already finalised");
    if (!inited) {
        int provided = 0;
        /* SERIALIZED: the gradient sync's progress thread calls MPI while
         * the main thread computes (never both at once); FUNNELED is enough
         * for everything else, which then falls back to progress on the
         * main thread */
        CHECK_MPI(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided));
        coll_started_mpi = 1;
        if (provided < MPI_THREAD_FUNNELED)
            return rt_fail(RT_ERR_MPI, "coll_init: MPI gives thread level %d, need FUNNELED", provided);
    }
    int rank = 0, size = 1;
    CHECK_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    CHECK_MPI(MPI_Comm_size(MPI_COMM_WORLD, &size));
    rt_log_set_rank(rank, size);
    return RT_OK;
}

rt_status coll_finalize(void)
{
    int finalized = 0;
    CHECK_MPI(MPI_Finalized(&finalized));
    if (coll_started_mpi && !finalized)
        CHECK_MPI(MPI_Finalize());
    coll_started_mpi = 0;
    return RT_OK;
}

static double env_double(const char *name, double fallback, double lo, double hi)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return fallback;
    char *end = NULL;
    double d = strtod(v, &end);
    if (end == v || *end || !(d >= lo && d <= hi)) {
        LOG_WARN("ignoring %s='%s' (want a number in [%g, %g])", name, v, lo, hi);
        return fallback;
    }
    return d;
}

/* Wraps an MPI communicator we own (dup'ed or split) into a coll_comm_t. */
static rt_status comm_wrap(MPI_Comm mpi, coll_comm_t **out)
{
    coll_comm_t *c = calloc(1, sizeof *c);
    if (!c) {
        MPI_Comm_free(&mpi);
        return rt_fail(RT_ERR_NOMEM, "coll: cannot allocate a communicator");
    }
    c->mpi = mpi;
    rt_status st = RT_OK;
    MPI_Comm local = MPI_COMM_NULL;
    /* Errors come back as codes: a failed call becomes a status, not an exit. */
    int rc = MPI_Comm_set_errhandler(mpi, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(mpi, &c->rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(mpi, &c->size);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_split_type(mpi, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &local);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(local, &c->local_rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(local, &c->local_size);
    if (local != MPI_COMM_NULL)
        MPI_Comm_free(&local);
    if (rc != MPI_SUCCESS) {
        st = rt_mpi_error(rc, "communicator set-up", __FILE__, __LINE__);
        goto fail_free;
    }
    int *tag_ub = NULL, flag = 0;
    MPI_Comm_get_attr(mpi, MPI_TAG_UB, &tag_ub, &flag);
    int ub = flag && tag_ub ? *tag_ub : 32767;
    c->tag_span = (ub - COLL_TAG_CALLS) / 2;
    if (c->tag_span > (1 << 24))
        c->tag_span = 1 << 24;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    c->yield_when_idle = cores > 0 && c->local_size > cores;
    c->timeout = rt_timeout_default();
    c->warn_fraction = rt_timeout_warn_fraction();
    c->spin_s = 1e-6 * env_double("RT_COLL_SPIN_US", 50, 0, 1e7);
    c->segment_bytes = (size_t)env_double("RT_COLL_SEGMENT", 256 * 1024, 64, 1 << 30);
    c->window = (int)env_double("RT_COLL_WINDOW", 4, 1, 64);
    c->small_bytes = (size_t)env_double("RT_COLL_SMALL", 64 * 1024, 0, 1 << 30);
    *out = c;
    return RT_OK;
fail_free:
    MPI_Comm_free(&c->mpi);
    free(c);
    return st;
}

rt_status coll_comm_world(coll_comm_t **out)
{
    CHECK_ARG(out, "coll_comm_world: out is NULL");
    *out = NULL;
    int inited = 0;
    CHECK_MPI(MPI_Initialized(&inited));
    if (!inited)
        return rt_fail(RT_ERR_INVALID, "coll_comm_world: MPI is not initialised (call coll_init)");
    MPI_Comm dup;
    CHECK_MPI(MPI_Comm_dup(MPI_COMM_WORLD, &dup));
    return comm_wrap(dup, out);
}

rt_status coll_comm_split(coll_comm_t *parent, int color, int key, coll_comm_t **out)
{
    CHECK_ARG(parent && out, "coll_comm_split: NULL argument");
    *out = NULL;
    TRY(coll_comm_usable(parent, "comm_split"));
    MPI_Comm sub;
    int rc = MPI_Comm_split(parent->mpi, color < 0 ? MPI_UNDEFINED : color, key, &sub);
    if (rc != MPI_SUCCESS)
        return rt_mpi_error(rc, "MPI_Comm_split", __FILE__, __LINE__);
    if (sub == MPI_COMM_NULL)
        return RT_OK;
    rt_status st = comm_wrap(sub, out);
    if (st == RT_OK) {
        (*out)->timeout = parent->timeout;
        (*out)->warn_fraction = parent->warn_fraction;
        (*out)->spin_s = parent->spin_s;
        (*out)->segment_bytes = parent->segment_bytes;
        (*out)->window = parent->window;
        (*out)->small_bytes = parent->small_bytes;
    }
    return st;
}

void coll_comm_free(coll_comm_t *c)
{
    if (!c)
        return;
    while (c->active_head) {
        coll_request_t *r = c->active_head;
        coll_hs_cancel(r);
        coll_pl_cancel(r);
        coll_request_free(r);
    }
    for (int i = 0; i < COLL_SCRATCH_SLOTS; i++)
        free(c->scratch[i].ptr);
    free(c->spare);
    free(c->ctl_answers);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized)
        MPI_Comm_free(&c->mpi);
    free(c);
}

int coll_rank(const coll_comm_t *c) { return c ? c->rank : -1; }
int coll_size(const coll_comm_t *c) { return c ? c->size : 0; }
int coll_local_rank(const coll_comm_t *c) { return c ? c->local_rank : -1; }
int coll_local_size(const coll_comm_t *c) { return c ? c->local_size : 0; }

void coll_set_timeout(coll_comm_t *c, double seconds)
{
    if (c && seconds > 0)
        c->timeout = seconds;
}

double coll_timeout(const coll_comm_t *c) { return c ? c->timeout : 0; }

void coll_set_warn_fraction(coll_comm_t *c, double fraction)
{
    if (c && fraction >= 0 && fraction < 1)
        c->warn_fraction = fraction;
}

double coll_warn_fraction(const coll_comm_t *c) { return c ? c->warn_fraction : 0; }

void coll_set_pipeline(coll_comm_t *c, size_t segment_bytes, int window)
{
    if (!c)
        return;
    if (segment_bytes >= 64 && segment_bytes <= ((size_t)1 << 30) && !getenv("RT_COLL_SEGMENT"))
        c->segment_bytes = segment_bytes;
    if (window >= 1 && window <= 64 && !getenv("RT_COLL_WINDOW"))
        c->window = window;
}

void coll_abort(coll_comm_t *c, int code)
{
    MPI_Abort(c ? c->mpi : MPI_COMM_WORLD, code ? code : 1);
}

rt_status coll_comm_usable(const coll_comm_t *c, const char *what)
{
    if (c->broken)
        return rt_fail(RT_ERR_INVALID, "rank %d: %s on a communicator broken by an earlier failure (%s)",
                       c->rank, what, c->broken_msg);
    return RT_OK;
}

void coll_comm_break(coll_comm_t *c, const char *msg)
{
    if (c->broken)
        return;
    c->broken = 1;
    snprintf(c->broken_msg, sizeof c->broken_msg, "%s", msg);
}

/* Returns a slot index with at least `bytes` of memory, COLL_SCRATCH_OWNED
 * for a private buffer when every cached one is in use (many nonblocking
 * calls in flight), or -1 when memory runs out. Cached buffers are kept
 * between calls: a fresh large allocation per call would cost page faults
 * comparable to the transfer itself. */
int coll_scratch_get(coll_comm_t *c, size_t bytes, void **ptr)
{
    int pick = -1;
    for (int i = 0; i < COLL_SCRATCH_SLOTS; i++) {
        if (c->scratch[i].busy)
            continue;
        if (c->scratch[i].cap >= bytes) {
            pick = i;
            break;
        }
        if (pick < 0 || c->scratch[i].cap > c->scratch[pick].cap)
            pick = i;
    }
    if (pick < 0) {
        *ptr = NULL;
        if (posix_memalign(ptr, 64, bytes ? bytes : 64) != 0)
            return -1;
        return COLL_SCRATCH_OWNED;
    }
    coll_scratch_t *s = &c->scratch[pick];
    if (s->cap < bytes) {
        free(s->ptr);
        s->ptr = NULL;
        s->cap = 0;
        if (posix_memalign(&s->ptr, 64, bytes ? bytes : 64) != 0) {
            s->ptr = NULL;
            return -1;
        }
        s->cap = bytes;
    }
    s->busy = 1;
    *ptr = s->ptr;
    return pick;
}

void coll_scratch_drop(coll_comm_t *c, int slot)
{
    /* Left to MPI: neither reused nor freed (a broken communicator leaks
     * it), since a transfer still in flight may write or read it. */
    if (slot >= 0 && slot < COLL_SCRATCH_SLOTS)
        c->scratch[slot] = (coll_scratch_t){NULL, 0, 0};
}

int coll_recv_settle(MPI_Request *q, double until)
{
    for (;;) {
        int flag = 0;
        if (*q == MPI_REQUEST_NULL || MPI_Test(q, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS || flag)
            break;
        if (rt_now() >= until) {
            MPI_Request_free(q);
            return 1;
        }
    }
    *q = MPI_REQUEST_NULL;
    return 0;
}

int coll_send_release(MPI_Request *q)
{
    int flag = 0;
    if (*q == MPI_REQUEST_NULL)
        return 0;
    if (MPI_Test(q, &flag, MPI_STATUS_IGNORE) == MPI_SUCCESS && flag)
        return 0;
    /* a send to a stopped or dead peer: released, never waited for */
    if (*q != MPI_REQUEST_NULL)
        MPI_Request_free(q);
    return 1;
}

void coll_scratch_put(coll_comm_t *c, int slot, void *ptr)
{
    if (slot == COLL_SCRATCH_OWNED)
        free(ptr);
    else if (slot >= 0 && slot < COLL_SCRATCH_SLOTS)
        c->scratch[slot].busy = 0;
}
