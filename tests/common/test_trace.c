/* test_trace.c - the --trace timeline writer. Checked here: the per-rank
 * file names, a path that cannot be written fails at open naming it, a
 * write error is reported at close, NULL traces do nothing. Written for
 * check_trace.py, which runs this program and parses the output with
 * Python's json: DIR/trace.json (rank 3; spans from the main thread and two
 * pthreads, overlapping, with names that need escaping) and
 * DIR/killed.json (rank 1; a child that is SIGKILLed without closing).
 *
 * usage: test_trace DIR */
#define _POSIX_C_SOURCE 200809L /* pthread_barrier, nanosleep, setrlimit */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/timer.h"
#include "common/trace.h"
#include "test_util.h"

/* check_trace.py spells the same names independently. */
static const char *const names[] = {
    "plain",
    "quote \"q\"",
    "back\\slash",
    "new\nline",
    "tab\tcr\r ctl\x01\x1f",
    "UTF-8 \xc3\xbc\xc3\xb1\xc3\xaf \xe2\x80\x94 \xe5\xb1\x82 \xf0\x9f\x9a\x80",
    "</script>",
};
#define NNAMES (sizeof names / sizeof names[0])
#define WORKER_TICKS 500
#define KILLED_BEFORE 3000

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static void rank_path_cases(void)
{
    static const struct { const char *path; int rank, world; const char *want; } cases[] = {
        {"trace.json", 0, 1, "trace.json"},
        {"trace.json", 1, 2, "trace.rank1.json"},
        {"trace.json", 0, 2, "trace.rank0.json"},
        {"out/trace.json", 11, 16, "out/trace.rank11.json"},
        {"trace", 2, 4, "trace.rank2"},
        {"a.b/trace", 1, 2, "a.b/trace.rank1"},
        {"a.b/trace.json", 1, 2, "a.b/trace.rank1.json"},
        {"./trace", 1, 2, "./trace.rank1"},
        {"t.v2.json", 1, 2, "t.v2.rank1.json"},
        {".trace", 1, 2, ".trace.rank1"},
        {"dir/.trace", 1, 2, "dir/.trace.rank1"},
        {"trace.", 1, 2, "trace.rank1."},
    };
    char out[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rt_status st = rt_trace_rank_path(cases[i].path, cases[i].rank, cases[i].world, out,
                                          sizeof out);
        EXPECT(st == RT_OK && !strcmp(out, cases[i].want), "rank_path(%s, %d, %d) = %s, want %s",
               cases[i].path, cases[i].rank, cases[i].world, st == RT_OK ? out : "error",
               cases[i].want);
    }
    EXPECT(rt_trace_rank_path("trace.json", 2, 2, out, sizeof out) == RT_ERR_INVALID,
           "rank outside the world");
    EXPECT(rt_trace_rank_path("trace.json", 0, 0, out, sizeof out) == RT_ERR_INVALID, "world 0");
    EXPECT(rt_trace_rank_path("trace.json", 1, 2, out, 16) == RT_ERR_INVALID &&
               strstr(rt_last_error(), "too long"),
           "a result one byte too long: %s", rt_last_error());
    EXPECT(rt_trace_rank_path("trace.json", 1, 2, out, 17) == RT_OK, "an exact fit");
    EXPECT(rt_trace_rank_path("trace.json", 0, 1, out, 10) == RT_ERR_INVALID,
           "world 1, too long");
}

static void open_failures(const char *dir)
{
    char path[4096];
    rt_trace_t *t = (rt_trace_t *)1;
    snprintf(path, sizeof path, "%s/no-such-dir/trace.json", dir);
    EXPECT(rt_trace_open(&t, path, 0) == RT_ERR_IO && t == NULL, "missing directory fails");
    EXPECT(strstr(rt_last_error(), path) && strstr(rt_last_error(), strerror(ENOENT)),
           "the message names the path and the cause: %s", rt_last_error());
    EXPECT(rt_trace_open(&t, dir, 0) == RT_ERR_IO && strstr(rt_last_error(), dir),
           "a directory fails: %s", rt_last_error());
    /* /dev/full takes open() but refuses writes: the header is written at
     * open, so that fails there too, not only at close */
    if (access("/dev/full", W_OK) == 0) {
        EXPECT(rt_trace_open(&t, "/dev/full", 0) == RT_ERR_IO &&
                   strstr(rt_last_error(), "/dev/full") &&
                   strstr(rt_last_error(), strerror(ENOSPC)),
               "/dev/full fails at open: %s", rt_last_error());
    }
    EXPECT(rt_trace_open(&t, "", 0) == RT_ERR_INVALID, "empty name");
    EXPECT(rt_trace_open(&t, path, -1) == RT_ERR_INVALID, "negative rank");
}

/* A write error in the middle of a run (file size limit: EFBIG) is not
 * reported by the spans but by close, with the path. In a child, since the
 * limit is per process. */
static void close_reports_write_error(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/fsize.json", dir);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {4096, 4096};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(3);
        rt_trace_t *t = NULL;
        if (rt_trace_open(&t, path, 0) != RT_OK)
            _exit(4);
        double now = rt_now();
        for (int i = 0; i < 2000; i++)
            rt_trace_span(t, "test", "fill", now, now + 1e-6, "i", i);
        rt_status st = rt_trace_close(t);
        int ok = st == RT_ERR_IO && strstr(rt_last_error(), path) &&
                 strstr(rt_last_error(), strerror(EFBIG));
        if (!ok)
            fprintf(stderr, "close: %d %s\n", (int)st, rt_last_error());
        _exit(ok ? 0 : 5);
    }
    int ws = 0;
    EXPECT(pid > 0 && waitpid(pid, &ws, 0) == pid && WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
           "close returns the write error, naming the path and EFBIG (child status %d)", ws);
}

/* A run killed without close: the file ends after a whole event and holds
 * everything written up to the last write, which happens at least once a
 * second while events arrive. */
static void killed_run(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/killed.json", dir);
    pid_t pid = fork();
    if (pid == 0) {
        rt_trace_t *t = NULL;
        if (rt_trace_open(&t, path, 1) != RT_OK)
            _exit(4);
        rt_trace_thread_name(t, "main");
        double now = rt_now();
        for (int i = 0; i < KILLED_BEFORE; i++) /* several size-triggered writes */
            rt_trace_span(t, "test", "before", now, now + 1e-6, "i", i);
        sleep_s(1.2);
        now = rt_now();
        rt_trace_span(t, "test", "after pause", now, now + 1e-6, NULL, 0); /* time-triggered */
        for (int i = 0; i < 5; i++) /* buffered: a SIGKILL loses these */
            rt_trace_span(t, "test", "lost", now, now + 1e-6, NULL, 0);
        raise(SIGKILL);
        _exit(6);
    }
    int ws = 0;
    EXPECT(pid > 0 && waitpid(pid, &ws, 0) == pid && WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL,
           "the child was killed (status %d)", ws);
    FILE *f = fopen(path, "rb");
    EXPECT(f != NULL, "%s exists", path);
    if (f) {
        fseek(f, -1, SEEK_END);
        EXPECT(fgetc(f) == '}', "a killed run's file ends after a whole event");
        fclose(f);
    }
}

/* The traced threads: all of them hold an "overlap" span across one
 * barrier, so those spans share the instant it opened. */
static rt_trace_t *trace;
static pthread_barrier_t barrier;

static void traced_work(const char *thread_name, int index)
{
    rt_trace_thread_name(trace, thread_name);
    double t0 = rt_now();
    pthread_barrier_wait(&barrier);
    sleep_s(0.002);
    rt_trace_span(trace, "test", "overlap", t0, rt_now(), "thread", index);
    for (size_t i = 0; i < NNAMES; i++) {
        double s = rt_now();
        rt_trace_span(trace, "names", names[i], s, rt_now(), "index", (int64_t)i);
    }
    for (int i = 0; i < WORKER_TICKS; i++) {
        double s = rt_now();
        rt_trace_span(trace, "test", "tick", s, rt_now(), "i", i);
    }
}

static void *worker(void *arg)
{
    int index = (int)(intptr_t)arg;
    char name[32];
    snprintf(name, sizeof name, "worker %d", index);
    traced_work(name, index);
    return NULL;
}

static void threaded_trace(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/trace.json", dir);
    /* a stale longer file must not leave bytes behind */
    FILE *f = fopen(path, "w");
    if (f) {
        for (int i = 0; i < 100000; i++)
            fputc('x', f);
        fclose(f);
    }
    EXPECT(rt_trace_open(&trace, path, 3) == RT_OK, "open %s: %s", path, rt_last_error());
    if (!trace)
        return;
    pthread_barrier_init(&barrier, NULL, 3);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, worker, (void *)(intptr_t)(i + 1));
    traced_work("main", 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);

    double now = rt_now();
    rt_trace_span(trace, NULL, "no cat", now, now + 0.001, NULL, 0);
    rt_trace_span(trace, "test", "backwards", now, now - 0.001, NULL, 0);
    rt_trace_span(trace, "test", "nan time", now, NAN, NULL, 0);
    rt_trace_span(trace, "test", "inf time", INFINITY, now, NULL, 0);
    rt_trace_span(trace, "test", "big arg", now, now, "max", INT64_MAX);
    rt_trace_span(trace, "test", "small arg", now, now, "min", INT64_MIN);
    rt_trace_span(trace, "test", NULL, now, now, NULL, 0);
    EXPECT(rt_trace_close(trace) == RT_OK, "close: %s", rt_last_error());
    trace = NULL;

    f = fopen(path, "rb");
    EXPECT(f != NULL, "%s exists", path);
    if (f) {
        char tail[3] = {0};
        fseek(f, -3, SEEK_END);
        EXPECT(fread(tail, 1, 3, f) == 3 && !memcmp(tail, "\n]\n", 3),
               "a closed file ends with the bracket");
        fclose(f);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];

    /* NULL traces: nothing happens, close is fine */
    rt_trace_span(NULL, "test", "x", 0, 1, NULL, 0);
    rt_trace_thread_name(NULL, "x");
    EXPECT(rt_trace_close(NULL) == RT_OK, "close(NULL)");

    rank_path_cases();
    open_failures(dir);
    /* the forking cases first, while this process has one thread */
    close_reports_write_error(dir);
    killed_run(dir);
    threaded_trace(dir);
    return TEST_EXIT();
}
