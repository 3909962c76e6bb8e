/* ckpt_writer.c - the checkpoint writer thread (see ckpt_writer.h): one
 * thread per write, joined when its report is taken, so that "at most one
 * in flight" is the thread's own lifetime. */
#define _GNU_SOURCE /* syscall(SYS_gettid), pthread_setname_np */
#include "trainer/run/ckpt_writer.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/check.h"
#include "common/log.h"
#include "common/timer.h"

struct ckpt_writer {
    pthread_t thread;
    bool pending;             /* a thread was started and not joined */
    atomic_bool ended;        /* set by the thread as its last act */
    /* the job: read by the thread only while it runs */
    char dir[4096];
    ckpt_run_t *run;
    ckpt_meta_t meta;
    const ckpt_array_t *arrays;
    int n;
    ckpt_write_report_t report; /* written by the thread, read after the join */
};

/* Test hook (docs/FORMATS.md, "Test hooks"): RT_CKPT_TEST_WRITE_DELAY_MS=N
 * makes every write start N ms late, so that a test can see the step loop
 * go on, and the end of the run wait, while a write is in flight. */
static void test_delay(void)
{
    const char *v = getenv("RT_CKPT_TEST_WRITE_DELAY_MS");
    long ms = v ? strtol(v, NULL, 10) : 0;
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* The writer gives way to the training threads: SCHED_IDLE, so that it
 * runs only on a core the step loop leaves idle (a nice value only lowers
 * its share: at nice 10 it still took about a tenth of a core it shared
 * with a training thread, which then held up the others at the step's
 * next synchronisation; docs/PERFORMANCE.md, "Checkpoint stall"). Policy
 * and nice are per thread on Linux and inherited by the threads ckpt_write
 * starts (the checksum and O_DIRECT threads). The write always ends: the
 * next checkpoint, the end of the run and a stop wait for it by blocking
 * (pthread_join; the other ranks meanwhile nap in the collective's wait),
 * which frees a core. Where SCHED_IDLE is refused (a seccomp profile, a
 * kernel without it) the thread falls back to nice 10.
 *
 * SCHED_IDLE would also put the thread's disk requests in the idle I/O
 * class, which a busy disk may starve; they are kept best-effort, at its
 * lowest level. */
#define WRITER_NICE 10
#define IOPRIO_CLASS_SHIFT 13
#define IOPRIO_CLASS_BE 2
#define IOPRIO_WHO_PROCESS 1

static atomic_flag priority_said = ATOMIC_FLAG_INIT;

static void writer_yield_priority(void)
{
    pid_t tid = (pid_t)syscall(SYS_gettid);
#ifdef SYS_ioprio_set
    (void)syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, (int)tid, (IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT) | 7);
#endif
    const char *how = "SCHED_IDLE";
#ifdef SCHED_IDLE
    struct sched_param sp = {.sched_priority = 0};
    const char *hook = getenv("RT_CKPT_TEST_NO_SCHED_IDLE"); /* test hook: the fallback */
    int rc = hook && *hook ? EPERM : pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
#else
    int rc = ENOSYS;
#endif
    if (rc != 0) {
        how = "nice 10";
        errno = 0;
        int now = getpriority(PRIO_PROCESS, (id_t)tid);
        if (errno == 0 && now < WRITER_NICE)
            (void)setpriority(PRIO_PROCESS, (id_t)tid, WRITER_NICE);
    }
    /* once per process: quiet when the policy took, one line when not */
    if (atomic_flag_test_and_set(&priority_said))
        return;
    if (rc == 0)
        LOG_DEBUG("checkpoint writer thread at %s: it runs on idle cores only", how);
    else
        LOG_INFO("checkpoint writer thread at %s (SCHED_IDLE refused: %s)", how, strerror(rc));
}

static void *writer_main(void *arg)
{
    ckpt_writer_t *w = arg;
    ckpt_write_report_t *r = &w->report;
    const double t0 = rt_now();
    /* a name to find it by in top -H and /proc (its helper threads inherit it) */
    (void)pthread_setname_np(pthread_self(), "rt-ckpt-write");
    writer_yield_priority();
    test_delay();
    r->status = ckpt_save(w->dir, w->run, &w->meta, w->arrays, w->n, r->path, sizeof r->path);
    r->seconds = rt_now() - t0;
    if (r->status != RT_OK) {
        /* the message lives in this thread's storage: copy it out */
        snprintf(r->error, sizeof r->error, "%s", rt_last_error());
        r->path[0] = '\0';
    }
    atomic_store(&w->ended, true);
    return NULL;
}

rt_status ckpt_writer_create(ckpt_writer_t **out)
{
    ckpt_writer_t *w = calloc(1, sizeof *w);
    CHECK_ALLOC(w, sizeof *w);
    atomic_init(&w->ended, false);
    *out = w;
    return RT_OK;
}

rt_status ckpt_writer_start(ckpt_writer_t *w, const char *dir, ckpt_run_t *run,
                            const ckpt_meta_t *meta, const ckpt_array_t *arrays, int n)
{
    CHECK_ARG(w && dir && meta, "ckpt_writer_start: NULL argument");
    if (w->pending)
        return rt_fail(RT_ERR_INTERNAL, "checkpoint writer: the write of step %lld is still pending",
                       (long long)w->report.step);
    if (strlen(dir) >= sizeof w->dir)
        return rt_fail(RT_ERR_INVALID, "checkpoint directory name too long: %s", dir);
    memcpy(w->dir, dir, strlen(dir) + 1);
    w->run = run;
    w->meta = *meta;
    w->arrays = arrays;
    w->n = n;
    memset(&w->report, 0, sizeof w->report);
    w->report.step = meta->step;
    atomic_store(&w->ended, false);
    /* The thread starts with the stop signals blocked, so that SIGTERM and
     * SIGINT are always taken by the training thread, which polls for them. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = pthread_create(&w->thread, NULL, writer_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return rt_fail(RT_ERR_INTERNAL, "checkpoint writer: pthread_create: %s", strerror(rc));
    w->pending = true;
    return RT_OK;
}

bool ckpt_writer_pending(const ckpt_writer_t *w)
{
    return w && w->pending;
}

bool ckpt_writer_wait(ckpt_writer_t *w, ckpt_write_report_t *rep)
{
    if (!ckpt_writer_pending(w))
        return false;
    pthread_join(w->thread, NULL);
    w->pending = false;
    if (rep)
        *rep = w->report;
    return true;
}

bool ckpt_writer_poll(ckpt_writer_t *w, ckpt_write_report_t *rep)
{
    if (!ckpt_writer_pending(w) || !atomic_load(&w->ended))
        return false;
    return ckpt_writer_wait(w, rep);  /* the thread has ended: the join does not block */
}

void ckpt_writer_destroy(ckpt_writer_t *w)
{
    if (!w)
        return;
    ckpt_writer_wait(w, NULL);
    free(w);
}
