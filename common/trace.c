/* trace.c - the Chrome trace-event writer behind --trace: JSON array
 * format, events appended to a buffer under a mutex and written out in
 * whole events. */
#define _POSIX_C_SOURCE 200809L /* O_CLOEXEC */
#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "timer.h"

/* Written out when the buffer holds this much, which bounds memory (plus
 * one event) and keeps write calls rare. */
#define TRACE_FLUSH_BYTES (64 * 1024)
/* ... or when this long has passed since the last write, so that a killed
 * run loses at most about this much of its timeline. */
#define TRACE_FLUSH_SECONDS 1.0

struct rt_trace {
    pthread_mutex_t lock;
    int fd;
    int pid;
    double origin;     /* rt_now() at open; ts are microseconds since */
    double last_write; /* rt_now() of the last write to fd */
    char *buf;
    size_t len, cap;
    long events;       /* written so far: the first has no leading comma */
    int err;           /* first errno of a failed write (or ENOMEM), 0 if none */
    char path[];
};

/* Small per-process thread numbers: readable rows in the viewer, and stable
 * across traces (pthread_t values are neither small nor portable). */
static atomic_int trace_next_tid = 1;
static _Thread_local int trace_tid;

static int thread_tid(void)
{
    if (trace_tid == 0)
        trace_tid = atomic_fetch_add(&trace_next_tid, 1);
    return trace_tid;
}

/* Makes room for n more bytes; on failure remembers ENOMEM and returns 0,
 * and the event is dropped (an out-of-memory trace must not stop a run). */
static int buf_reserve(rt_trace_t *t, size_t n)
{
    if (t->len + n <= t->cap)
        return 1;
    size_t cap = t->cap ? t->cap : 1024;
    while (cap < t->len + n)
        cap *= 2;
    char *p = realloc(t->buf, cap);
    if (!p) {
        if (!t->err)
            t->err = ENOMEM;
        return 0;
    }
    t->buf = p;
    t->cap = cap;
    return 1;
}

static void buf_put(rt_trace_t *t, const char *s, size_t n)
{
    if (buf_reserve(t, n)) {
        memcpy(t->buf + t->len, s, n);
        t->len += n;
    }
}

__attribute__((format(printf, 2, 3)))
static void buf_printf(rt_trace_t *t, const char *fmt, ...)
{
    char tmp[256]; /* every caller formats numbers and fixed keys only */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        buf_put(t, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A JSON string: quotes, backslash and control characters escaped; bytes
 * from 0x80 up are copied, so UTF-8 names stay readable. */
static void buf_string(rt_trace_t *t, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    buf_put(t, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        char e[6];
        size_t n = 2;
        e[0] = '\\';
        switch (*p) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        default:
            if (*p < 0x20) {
                memcpy(e + 1, "u00", 3);
                e[4] = hex[*p >> 4];
                e[5] = hex[*p & 15];
                n = 6;
            } else {
                e[0] = (char)*p;
                n = 1;
            }
        }
        buf_put(t, e, n);
    }
    buf_put(t, "\"", 1);
}

/* Writes the whole buffer. Only whole events are ever in it, so the file
 * always ends at an event boundary. After the first error nothing more is
 * written: the file is already incomplete, and the error is what close
 * reports. */
static void flush_locked(rt_trace_t *t)
{
    size_t off = 0;
    while (!t->err && off < t->len) {
        ssize_t n = write(t->fd, t->buf + off, t->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            t->err = n < 0 ? errno : EIO;
            break;
        }
        off += (size_t)n;
    }
    t->len = 0;
    t->last_write = rt_now();
}

/* The separator before an event, so that the file after any whole event is
 * "[ ... }": one "]" away from valid JSON. */
static void begin_event(rt_trace_t *t)
{
    if (t->events++ > 0)
        buf_put(t, ",\n", 2);
}

static void end_event(rt_trace_t *t)
{
    if (t->len >= TRACE_FLUSH_BYTES || rt_now() - t->last_write >= TRACE_FLUSH_SECONDS)
        flush_locked(t);
}

/* A metadata event (process_name, thread_name, process_sort_index). "ts"
 * is there only so that every event has one, which some tools expect. */
static void metadata_locked(rt_trace_t *t, int tid, const char *what, const char *key,
                            const char *str, int num)
{
    begin_event(t);
    buf_printf(t, "{\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"ts\":0,\"name\":\"%s\",\"args\":{\"%s\":",
               t->pid, tid, what, key);
    if (str)
        buf_string(t, str);
    else
        buf_printf(t, "%d", num);
    buf_put(t, "}}", 2);
}

rt_status rt_trace_open(rt_trace_t **out, const char *path, int rank)
{
    CHECK_ARG(out && path && *path, "trace: no file name");
    CHECK_ARG(rank >= 0, "trace %s: rank %d", path, rank);
    *out = NULL;
    size_t plen = strlen(path) + 1;
    rt_trace_t *t = calloc(1, sizeof *t + plen);
    CHECK_ALLOC(t, sizeof *t + plen);
    memcpy(t->path, path, plen);
    t->pid = rank;
    t->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (t->fd < 0) {
        int e = errno;
        free(t);
        return rt_fail(RT_ERR_IO, "trace %s: cannot create: %s", path, strerror(e));
    }
    pthread_mutex_init(&t->lock, NULL);
    t->origin = rt_now();
    (void)thread_tid(); /* the opening thread, usually main, gets the first row */

    buf_put(t, "[\n", 2);
    char pname[32];
    snprintf(pname, sizeof pname, "rank %d", rank);
    metadata_locked(t, 0, "process_name", "name", pname, 0);
    /* ranks in order when per-rank files are loaded together */
    metadata_locked(t, 0, "process_sort_index", "sort_index", NULL, rank);
    /* Written now so that a full disk or a special file that refuses
     * writes fails here, before training, and not only at close. */
    flush_locked(t);
    if (t->err) {
        int e = t->err;
        close(t->fd);
        pthread_mutex_destroy(&t->lock);
        free(t->buf);
        free(t);
        return rt_fail(RT_ERR_IO, "trace %s: write: %s", path, strerror(e));
    }
    *out = t;
    return RT_OK;
}

rt_status rt_trace_rank_path(const char *path, int rank, int world, char *out, size_t size)
{
    CHECK_ARG(path && out && size > 0, "trace: no file name");
    CHECK_ARG(world >= 1 && rank >= 0 && rank < world, "trace %s: rank %d of %d", path, rank,
              world);
    size_t len = strlen(path);
    if (world == 1) {
        CHECK_ARG(len < size, "trace %s: file name too long (%zu bytes)", path, len);
        memcpy(out, path, len + 1);
        return RT_OK;
    }
    /* The extension is the last dot of the last path component, so dots in
     * directory names ("runs.v2/trace") are left alone, and not its first
     * character (".trace" is a name, as in os.path.splitext). */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t stem = dot && dot > base ? (size_t)(dot - path) : len;
    int n = snprintf(out, size, "%.*s.rank%d%s", (int)stem, path, rank, path + stem);
    CHECK_ARG(n >= 0 && (size_t)n < size, "trace %s: file name for rank %d too long", path,
              rank);
    return RT_OK;
}

void rt_trace_span(rt_trace_t *t, const char *cat, const char *name, double t0, double t1,
                   const char *arg_name, int64_t arg)
{
    if (t)
        rt_trace_span_row(t, thread_tid(), cat, name, t0, t1, arg_name, arg);
}

void rt_trace_span_row(rt_trace_t *t, int tid, const char *cat, const char *name, double t0,
                       double t1, const char *arg_name, int64_t arg)
{
    if (!t || !isfinite(t0) || !isfinite(t1))
        return; /* a NaN or inf would make the whole file invalid JSON */
    double ts = (t0 - t->origin) * 1e6;
    double dur = t1 > t0 ? (t1 - t0) * 1e6 : 0.0;
    pthread_mutex_lock(&t->lock);
    begin_event(t);
    buf_printf(t, "{\"ph\":\"X\",\"pid\":%d,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f", t->pid, tid, ts,
               dur);
    if (cat) {
        buf_put(t, ",\"cat\":", 7);
        buf_string(t, cat);
    }
    buf_put(t, ",\"name\":", 8);
    buf_string(t, name);
    if (arg_name) {
        buf_put(t, ",\"args\":{", 9);
        buf_string(t, arg_name);
        buf_printf(t, ":%" PRId64 "}", arg);
    }
    buf_put(t, "}", 1);
    end_event(t);
    pthread_mutex_unlock(&t->lock);
}

void rt_trace_thread_name(rt_trace_t *t, const char *name)
{
    if (t)
        rt_trace_row_name(t, thread_tid(), name);
}

void rt_trace_row_name(rt_trace_t *t, int tid, const char *name)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    metadata_locked(t, tid, "thread_name", "name", name, 0);
    end_event(t);
    pthread_mutex_unlock(&t->lock);
}

void rt_trace_restart_clock(rt_trace_t *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->origin = rt_now();
    pthread_mutex_unlock(&t->lock);
}

rt_status rt_trace_close(rt_trace_t *t)
{
    if (!t)
        return RT_OK;
    pthread_mutex_lock(&t->lock);
    buf_put(t, "\n]\n", 3);
    flush_locked(t);
    int err = t->err;
    pthread_mutex_unlock(&t->lock);
    if (close(t->fd) != 0 && !err)
        err = errno; /* e.g. NFS reports a failed write only here */
    rt_status st = RT_OK;
    if (err)
        st = rt_fail(RT_ERR_IO, "trace %s: write: %s", t->path, strerror(err));
    pthread_mutex_destroy(&t->lock);
    free(t->buf);
    free(t);
    return st;
}
