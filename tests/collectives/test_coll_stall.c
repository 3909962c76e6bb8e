/* test_coll_stall.c - hang forensics with a rank that really stops: the last
 * rank starts a ring all-reduce (4 MiB), posts its handshake and then
 * raise(SIGSTOP)s, so its peers stall inside the call.
 *   stall (np 2, RT_COLL_TIMEOUT=10)  rank 0 must warn exactly once, within
 *         10 % of the timeout (+0.5 s), naming the call, its sequence number,
 *         count, bytes and rank 1; print its history at the timeout (every
 *         field; the earlier calls done, the stalled one waiting); fail with
 *         RT_ERR_TIMEOUT naming itself and the call; and use under 10 % of a
 *         core (getrusage) while it waits.
 *   dump  (np 3, RT_COLL_TIMEOUT=4)   ranks 0 and 1 keep two calls in
 *         flight (#3 large, #4 small) and poll both with coll_test; each
 *         must warn once, for #3 only, and fail both with #3's timeout.
 *         Rank 0 times out first; rank 1 (timeout 8 s), still waiting, must
 *         print its history at rank 0's request before rank 0's call
 *         returns, and only once.
 * The stopped rank has sent its first ring segments, so its peers hold
 * receives that MPI can no longer cancel: the timeout must still return.
 * Each rank's stderr goes through a pipe read by a thread that timestamps
 * every line, so the test can tell when the library printed what. The
 * stopped rank is woken with SIGCONT at the end (and by a watchdog child if
 * the test goes wrong first), so nothing is left behind. */
#define _GNU_SOURCE /* prctl, pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coll_test_util.h"
#include "common/timer.h"

#define COUNT ((size_t)1 << 20) /* 4 MiB of f32: the ring pipeline */
#define MAX_LINES 1024

static int g_rank, g_size;
static float *g_buf; /* the stalled call's buffer, never freed (see main) */

/* ---- stderr capture --------------------------------------------------------- */

typedef struct {
    double t;
    char text[1024];
} line_t;

static line_t g_lines[MAX_LINES];
static int g_nlines;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_saved_err = -1, g_pipe_r = -1;
static volatile int g_stop;
static pthread_t g_reader;

static void store_line(const char *s, double t)
{
    pthread_mutex_lock(&g_mu);
    if (g_nlines < MAX_LINES) {
        g_lines[g_nlines].t = t;
        size_t n = strnlen(s, sizeof g_lines[0].text - 1);
        memcpy(g_lines[g_nlines].text, s, n);
        g_lines[g_nlines].text[n] = '\0';
        g_nlines++;
    }
    pthread_mutex_unlock(&g_mu);
}

/* Reads the pipe, echoes to the real stderr (so ctest shows the output) and
 * keeps every line with the time it arrived. */
static void *reader(void *arg)
{
    (void)arg;
    static char buf[8192];
    size_t have = 0;
    for (;;) {
        struct pollfd pf = {g_pipe_r, POLLIN, 0};
        int ready = poll(&pf, 1, 50);
        ssize_t n = 0;
        if (ready > 0)
            n = read(g_pipe_r, buf + have, sizeof buf - 1 - have);
        if (n <= 0) {
            if (g_stop && (ready == 0 || n == 0 || (n < 0 && errno == EAGAIN)))
                break;
            continue;
        }
        double t = rt_now();
        if (write(g_saved_err, buf + have, (size_t)n) < 0) {
            /* nowhere left to echo; the lines are still kept */
        }
        have += (size_t)n;
        char *start = buf, *nl;
        while ((nl = memchr(start, '\n', (size_t)(buf + have - start)))) {
            *nl = '\0';
            store_line(start, t);
            start = nl + 1;
        }
        have = (size_t)(buf + have - start);
        memmove(buf, start, have);
        if (have == sizeof buf - 1) {
            buf[have] = '\0';
            store_line(buf, t);
            have = 0;
        }
    }
    return NULL;
}

static int capture_start(void)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    fflush(stderr);
    g_saved_err = dup(2);
    if (g_saved_err < 0 || dup2(fds[1], 2) < 0)
        return -1;
    close(fds[1]);
    g_pipe_r = fds[0];
    return pthread_create(&g_reader, NULL, reader, NULL);
}

static void capture_stop(void)
{
    fflush(stderr);
    dup2(g_saved_err, 2); /* the pipe's last writer goes: the reader drains and ends */
    g_stop = 1;
    pthread_join(g_reader, NULL);
    close(g_pipe_r);
}

static int contains(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

/* The number of lines holding n1 and, unless NULL, n2 and n3; the first
 * one's index in *first. */
static int count_lines(int *first, const char *n1, const char *n2, const char *n3)
{
    int n = 0;
    for (int i = 0; i < g_nlines; i++) {
        const char *t = g_lines[i].text;
        if (contains(t, n1) && (!n2 || contains(t, n2)) && (!n3 || contains(t, n3))) {
            if (!n++ && first)
                *first = i;
        }
    }
    return n;
}

/* ---- the stopped rank --------------------------------------------------------- */

/* A child that wakes the parent after `seconds` if nobody else has (the
 * test failed on another rank); it dies with the parent. */
static pid_t watchdog(int seconds)
{
    pid_t parent = getpid();
    pid_t w = fork();
    if (w == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        sleep((unsigned)seconds);
        if (getppid() == parent)
            kill(parent, SIGCONT);
        _exit(0);
    }
    return w;
}

static void stop_inside_call(coll_comm_t *c, float *buf)
{
    /* Late by 0.1 s, so that the peers' headers are here: one test then
     * completes this rank's handshake and posts its first ring segments
     * before it stops. The peers stall in the ring with receives that have
     * matched those segments and can no longer be cancelled, the hardest
     * case for failing cleanly at the timeout. */
    usleep(100 * 1000);
    coll_request_t *req = NULL;
    rt_status st = coll_allreduce_start(c, buf, buf, COUNT, RT_DTYPE_F32, COLL_SUM, &req);
    EXPECT(st == RT_OK, "start: %s", rt_last_error());
    if (st != RT_OK)
        return;
    int done = 0;
    coll_test(req, &done);
    pid_t w = watchdog(45);
    raise(SIGSTOP);
    if (w > 0) {
        kill(w, SIGKILL);
        waitpid(w, NULL, 0);
    }
    /* Woken long after the peers gave up: the call must fail, not hang. */
    coll_set_timeout(c, 1.0);
    st = coll_wait(req);
    EXPECT(st != RT_OK, "the stopped rank's call succeeded after its peers gave up");
}

/* 'T' when pid is stopped (this node only). */
static char proc_state(pid_t pid)
{
    char path[64], text[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return '?';
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *p = strrchr(text, ')');
    return p && p[1] == ' ' ? p[2] : '?';
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

/* ---- checks --------------------------------------------------------------------- */

static void check_history_line(const char *t, const char *what)
{
    static const char *const fields[] = {"seq=", "kind=", "count=", "dtype=", "bytes=", "peer=",
                                         "state=", "duration="};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        EXPECT(contains(t, fields[i]), "%s: history line lacks %s: %s", what, fields[i], t);
}

/* Rank 0 in stall mode: the warning, the history, the error, the CPU. */
static void check_observer(rt_status st, const char *msg, double t0, double took, double cpu,
                           double timeout, uint64_t seq)
{
    char call[64], me[32];
    snprintf(call, sizeof call, "allreduce #%" PRIu64, seq);
    snprintf(me, sizeof me, "rank %d: ", g_rank);
    EXPECT(st == RT_ERR_TIMEOUT, "status %s, want timeout: %s", rt_status_name(st), msg);
    EXPECT(contains(msg, me) && contains(msg, call) && contains(msg, "timed out"),
           "the error does not name the rank and the call: %s", msg);
    EXPECT(contains(msg, "rank 1 stopped answering") || contains(msg, "rank 1 never arrived"),
           "the error does not name the stopped rank: %s", msg);
    EXPECT(took >= timeout && took < timeout + 1.5, "took %.2f s with a %.0f s timeout", took, timeout);
    EXPECT(cpu < 0.10 * took, "waiting used %.3f s of CPU in %.2f s (%.1f %%), want < 10 %%", cpu,
           took, 100 * cpu / took);
    printf("rank %d: waited %.2f s using %.3f s of CPU (%.2f %%)\n", g_rank, took, cpu, 100 * cpu / took);

    /* the warning: once, at 10 % of the timeout, naming what the brief asks */
    int w = -1;
    int nwarn = count_lines(&w, me, call, "stalled");
    EXPECT(nwarn == 1, "%d stall warnings for %s, want 1", nwarn, call);
    if (w >= 0) {
        const char *t = g_lines[w].text;
        double at = g_lines[w].t - t0;
        EXPECT(at >= 0.1 * timeout - 0.05 && at <= 0.1 * timeout + 0.5,
               "warning %.2f s into the call, want %.2f s (+0.5 s)", at, 0.1 * timeout);
        EXPECT(contains(t, "WARN"), "not a warning: %s", t);
        EXPECT(contains(t, "count=1048576") && contains(t, "bytes=4194304") && contains(t, "dtype=f32"),
               "warning lacks the count or bytes: %s", t);
        EXPECT(contains(t, "waiting for rank 1"), "warning does not name the peer: %s", t);
        EXPECT(contains(t, "rank 1 did not answer a roll call"), "warning lacks the roll call: %s", t);
        EXPECT(contains(t, "10% of the 10 s timeout"), "warning lacks its threshold: %s", t);
        printf("warning after %.2f s: %s\n", at, t);
    }

    /* the history, after the timeout */
    int h = -1;
    EXPECT(count_lines(&h, me, "collective history", "timed out here") == 1, "no history (or twice)");
    if (h >= 0) {
        EXPECT(g_lines[h].t - t0 >= timeout, "history printed %.2f s into the call, before the timeout",
               g_lines[h].t - t0);
        EXPECT(contains(g_lines[h].text, call), "history title does not name the call: %s",
               g_lines[h].text);
        /* the entries follow the title: seq 0..seq, the last one waiting */
        const char *want[] = {"seq=0 kind=barrier", "seq=1 kind=allreduce count=7 dtype=f32 bytes=28",
                              "seq=2 kind=allreduce count=1048576 dtype=f32 bytes=4194304"};
        for (uint64_t s = 0; s <= seq; s++) {
            int e = -1;
            char key[32];
            snprintf(key, sizeof key, "seq=%" PRIu64 " ", s);
            EXPECT(count_lines(&e, me, key, "state=") == 1, "history entry %" PRIu64 " missing", s);
            if (e < 0)
                continue;
            const char *t = g_lines[e].text;
            check_history_line(t, key);
            if (s < seq) {
                EXPECT(contains(t, want[s]) && contains(t, "state=done"),
                       "entry %" PRIu64 ": %s", s, t);
            } else {
                EXPECT(contains(t, "kind=allreduce count=1048576 dtype=f32 bytes=4194304 peer=1 "
                                   "state=waiting"), "stalled entry: %s", t);
                const char *d = strstr(t, "duration=");
                double dur = d ? strtod(d + 9, NULL) : 0;
                EXPECT(dur >= timeout && dur < timeout + 1.5, "stalled entry lasted %.3f s: %s", dur, t);
                EXPECT(contains(t, "at=\""), "stalled entry does not say where it waits: %s", t);
            }
        }
    }
    EXPECT(count_lines(NULL, me, "asked every rank to print", "no answer from rank(s) 1 ") == 1,
           "no line about the history request to rank 1");
}

/* Dump mode: two calls in flight, #3 (4 MiB) and #4 (7 floats), polled with
 * coll_test like the trainer's gradient buckets until both end. */
static rt_status two_in_flight(coll_comm_t *c, float *big, float *small, rt_status *st_small,
                               char *msg, char *msg_small)
{
    coll_request_t *rq[2] = {NULL, NULL};
    rt_status st[2] = {RT_OK, RT_OK};
    char *m[2] = {msg, msg_small};
    msg[0] = msg_small[0] = '\0';
    st[0] = coll_allreduce_start(c, big, big, COUNT, RT_DTYPE_F32, COLL_SUM, &rq[0]);
    st[1] = coll_allreduce_start(c, small, small, 7, RT_DTYPE_F32, COLL_SUM, &rq[1]);
    for (int left = (rq[0] != NULL) + (rq[1] != NULL); left;) {
        for (int i = 1; i >= 0; i--) { /* the newer one first, as a bucket poll may */
            if (!rq[i])
                continue;
            int done = 0;
            st[i] = coll_test(rq[i], &done);
            if (done) {
                snprintf(m[i], 1024, "%s", rt_last_error());
                rq[i] = NULL;
                left--;
            }
        }
        usleep(200);
    }
    *st_small = st[1];
    return st[0];
}

/* One stall, one warning (for the oldest call, #3), and both calls fail
 * with the timeout of #3. */
static void check_two_in_flight(rt_status st, const char *msg, rt_status st_small,
                                const char *msg_small)
{
    char me[32];
    snprintf(me, sizeof me, "rank %d: ", g_rank);
    EXPECT(st == RT_ERR_TIMEOUT && contains(msg, "allreduce #3 timed out"), "rank %d, #3: %s: %s",
           g_rank, rt_status_name(st), msg);
    EXPECT(st_small == RT_ERR_TIMEOUT && contains(msg_small, "allreduce #3 timed out"),
           "rank %d, #4: %s: %s", g_rank, rt_status_name(st_small), msg_small);
    int n3 = count_lines(NULL, me, "allreduce #3 ", "stalled");
    int n4 = count_lines(NULL, me, "allreduce #4 ", "stalled");
    EXPECT(n3 == 1 && n4 == 0, "rank %d: %d warnings for #3 and %d for #4, want 1 and 0", g_rank, n3,
           n4);
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
    int dump = !strcmp(mode, "dump");
    if ((!dump && strcmp(mode, "stall")) || g_size != (dump ? 3 : 2)) {
        if (g_rank == 0)
            fprintf(stderr, "usage: mpirun -np 2 test_coll_stall stall | -np 3 test_coll_stall dump\n");
        coll_finalize();
        return 2;
    }
    coll_comm_t *c = NULL;
    if (coll_comm_world(&c) != RT_OK) {
        fprintf(stderr, "comm_world: %s\n", rt_last_error());
        return 1;
    }
    if (coll_local_size(c) != g_size) {
        if (g_rank == 0)
            printf("needs every rank on one node (it signals the stopped one)\n");
        coll_comm_free(c);
        coll_finalize();
        return 77;
    }
    int me = (int)getpid();
    int pids[8] = {0};
    MPI_Allgather(&me, 1, MPI_INT, pids, 1, MPI_INT, MPI_COMM_WORLD);
    EXPECT(capture_start() == 0, "cannot capture stderr");

    const int stopped = g_size - 1;
    const double timeout = dump ? 4 : 10; /* RT_COLL_TIMEOUT, set by ctest */
    EXPECT(coll_timeout(c) == timeout, "RT_COLL_TIMEOUT gave %g s, want %g", coll_timeout(c), timeout);
    EXPECT(coll_warn_fraction(c) == 0.1, "default warning fraction %g, want 0.1", coll_warn_fraction(c));
    if (dump && g_rank == 1)
        coll_set_timeout(c, 2 * timeout); /* still waiting when rank 0 gives up */

    /* calls #0..#2 complete: the history must show them done */
    float *buf = g_buf = calloc(COUNT, sizeof(float));
    float small[7] = {1, 2, 3, 4, 5, 6, 7};
    EXPECT(coll_barrier(c) == RT_OK, "barrier: %s", rt_last_error());
    EXPECT(coll_allreduce(c, small, small, 7, RT_DTYPE_F32, COLL_SUM) == RT_OK, "small: %s",
           rt_last_error());
    EXPECT(coll_allreduce(c, buf, buf, COUNT, RT_DTYPE_F32, COLL_SUM) == RT_OK, "large: %s",
           rt_last_error());
    const uint64_t seq = 3;
    MPI_Barrier(MPI_COMM_WORLD);

    if (g_rank == stopped) {
        stop_inside_call(c, buf);
    } else {
        double t0 = rt_now(), cpu0 = cpu_seconds();
        rt_status st, st_small = RT_OK;
        char msg[1024], msg_small[1024] = "";
        if (!dump) {
            st = coll_allreduce(c, buf, buf, COUNT, RT_DTYPE_F32, COLL_SUM);
            snprintf(msg, sizeof msg, "%s", rt_last_error());
        } else {
            st = two_in_flight(c, buf, small, &st_small, msg, msg_small);
        }
        double took = rt_now() - t0, cpu = cpu_seconds() - cpu0;
        fflush(stderr);
        usleep(100 * 1000); /* let the reader take the last lines */
        pthread_mutex_lock(&g_mu);
        if (!dump) {
            check_observer(st, msg, t0, took, cpu, timeout, seq);
        } else if (g_rank == 0) {
            check_two_in_flight(st, msg, st_small, msg_small);
            EXPECT(took >= timeout && took < timeout + 0.4 + 1.0, "rank 0 took %.2f s", took);
            EXPECT(count_lines(NULL, "rank 0: asked every rank to print", "printed by rank(s) 1",
                               "no answer from rank(s) 2 ") == 1,
                   "rank 0 did not see rank 1 print its history");
        } else {
            int h = -1;
            EXPECT(count_lines(&h, "rank 1: collective history", NULL, NULL) == 1,
                   "rank 1 printed its history %d times, want once",
                   count_lines(NULL, "rank 1: collective history", NULL, NULL));
            if (h >= 0) {
                double at = g_lines[h].t - t0;
                EXPECT(contains(g_lines[h].text, "at the request of rank 0, whose allreduce #3 timed out"),
                       "rank 1's history title: %s", g_lines[h].text);
                EXPECT(at >= timeout - 0.2 && at <= timeout + 1.0,
                       "rank 1 printed its history %.2f s into the call, want about %.0f s", at, timeout);
                printf("rank 1 printed its history %.2f s into the call\n", at);
            }
            int e = -1;
            EXPECT(count_lines(&e, "rank 1:   seq=3 kind=allreduce", "state=waiting", NULL) == 1,
                   "rank 1's history lacks the waiting call");
            if (e >= 0)
                check_history_line(g_lines[e].text, "rank 1");
            check_two_in_flight(st, msg, st_small, msg_small);
        }
        pthread_mutex_unlock(&g_mu);
        /* rank 0 wakes the stopped rank, after rank 1 (dump) is done */
        if (dump && g_rank == 1)
            MPI_Send(&g_rank, 1, MPI_INT, 0, 99, MPI_COMM_WORLD);
        if (g_rank == 0) {
            if (dump)
                MPI_Recv(&me, 1, MPI_INT, 1, 99, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            char state = proc_state(pids[stopped]);
            EXPECT(state == 'T', "rank %d was not stopped (state %c)", stopped, state);
            kill(pids[stopped], SIGCONT);
        }
    }
    MPI_Barrier(MPI_COMM_WORLD);
    capture_stop();
    /* buf stays allocated (reachable through g_buf, so no leak report):
     * the timed-out call's sends and receives on it could not be cancelled
     * and MPI may still read or write it in any later MPI call (coll.h).
     * Freeing it here let the stopped rank's rendezvous send go on from
     * unmapped memory in tu_all's MPI_Allreduce: SIGSEGV in vader, seen
     * once in CI. */
    coll_comm_free(c);
    int ok = tu_all(test_failed_count == 0);
    int rc = TEST_EXIT();
    coll_finalize();
    return ok ? rc : 1;
}
