/* tb_writer.c - TensorBoard event files (see tb_writer.h): a record is
 * uint64 length (little-endian), uint32 masked CRC-32C of those 8 bytes,
 * the serialized Event, uint32 masked CRC-32C of the Event. */
#define _POSIX_C_SOURCE 200809L
#include "trainer/tensorboard/tb_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/check.h"
#include "common/crc32c.h"
#include "event.pb-c.h"

struct tb_writer {
    int fd;
    char path[PATH_MAX];
    unsigned char *buf;  /* framed records not yet written */
    size_t len, cap;
};

uint32_t tb_masked_crc32c(const void *data, size_t n)
{
    const uint32_t crc = crc32c(data, n);
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Frames one Event into the buffer. */
/* An Event at the current wall time and `step`, its `what` still to set. */
static Tensorflow__Event event_now(int64_t step)
{
    Tensorflow__Event ev = TENSORFLOW__EVENT__INIT;
    ev.wall_time = wall_now();
    ev.step = step;
    return ev;
}

static rt_status append_event(tb_writer_t *w, const Tensorflow__Event *ev)
{
    const size_t n = tensorflow__event__get_packed_size(ev);
    const size_t need = w->len + 12 + n + 4;
    if (need > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < need)
            cap *= 2;
        unsigned char *p = realloc(w->buf, cap);
        CHECK_ALLOC(p, cap);
        w->buf = p;
        w->cap = cap;
    }
    unsigned char *r = w->buf + w->len;
    put_le(r, (uint64_t)n, 8);
    put_le(r + 8, tb_masked_crc32c(r, 8), 4);
    tensorflow__event__pack(ev, r + 12);
    put_le(r + 12 + n, tb_masked_crc32c(r + 12, n), 4);
    w->len = need;
    return RT_OK;
}

/* mkdir -p: each missing component, an existing one is fine. */
static rt_status make_dirs(const char *dir)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return rt_fail(RT_ERR_IO, "%s: path too long", dir);
    for (char *c = p + 1;; c++) {
        if (*c == '/' || *c == '\0') {
            const char saved = *c;
            *c = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST)
                return rt_fail(RT_ERR_IO, "cannot create directory %s: %s", p, strerror(errno));
            *c = saved;
            if (!saved)
                break;
        }
    }
    return RT_OK;
}

static rt_status create_file(tb_writer_t *w, const char *dir)
{
    char host[256];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    const long long t = (long long)time(NULL);
    const size_t dl = strlen(dir);
    const char *sep = dl && dir[dl - 1] == '/' ? "" : "/";
    /* O_EXCL: an existing file (another process in the same second with a
     * recycled pid, or this one opening twice) is never reused */
    for (int n = 0; n < 1000; n++) {
        char suffix[16] = "";
        if (n)
            snprintf(suffix, sizeof suffix, ".%d", n);
        if (snprintf(w->path, sizeof w->path, "%s%sevents.out.tfevents.%010lld.%s.%ld%s", dir, sep, t,
                     host, (long)getpid(), suffix) >= (int)sizeof w->path)
            return rt_fail(RT_ERR_IO, "%s: path too long", dir);
        w->fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0666);
        if (w->fd >= 0)
            return RT_OK;
        if (errno != EEXIST)
            return rt_fail(RT_ERR_IO, "cannot create %s: %s", w->path, strerror(errno));
    }
    return rt_fail(RT_ERR_IO, "cannot create %s: %s", w->path, strerror(EEXIST));
}

rt_status tb_writer_open(tb_writer_t **out, const char *dir)
{
    *out = NULL;
    CHECK_ARG(dir && *dir, "tb_writer_open: empty directory name");
    TRY(make_dirs(dir));
    tb_writer_t *w = calloc(1, sizeof *w);
    CHECK_ALLOC(w, sizeof *w);
    w->fd = -1;
    rt_status st = create_file(w, dir);
    if (st == RT_OK) {
        Tensorflow__Event ev = event_now(0);
        ev.what_case = TENSORFLOW__EVENT__WHAT_FILE_VERSION;
        ev.file_version = (char *)TB_FILE_VERSION;
        st = append_event(w, &ev);
    }
    if (st == RT_OK)
        st = tb_writer_flush(w);
    if (st != RT_OK) {
        if (w->fd >= 0)
            close(w->fd);
        free(w->buf);
        free(w);
        return st;
    }
    *out = w;
    return RT_OK;
}

const char *tb_writer_path(const tb_writer_t *w)
{
    return w->path;
}

rt_status tb_writer_scalar(tb_writer_t *w, int64_t step, const char *tag, double value)
{
    Tensorflow__Summary__Value val = TENSORFLOW__SUMMARY__VALUE__INIT;
    val.tag = (char *)tag;
    val.value_case = TENSORFLOW__SUMMARY__VALUE__VALUE_SIMPLE_VALUE;
    val.simple_value = (float)value;
    Tensorflow__Summary__Value *vals[1] = {&val};
    Tensorflow__Summary sum = TENSORFLOW__SUMMARY__INIT;
    sum.n_value = 1;
    sum.value = vals;
    Tensorflow__Event ev = event_now(step);
    ev.what_case = TENSORFLOW__EVENT__WHAT_SUMMARY;
    ev.summary = &sum;
    return append_event(w, &ev);
}

rt_status tb_writer_session_start(tb_writer_t *w, int64_t step, const char *msg)
{
    Tensorflow__SessionLog log = TENSORFLOW__SESSION_LOG__INIT;
    log.status = TENSORFLOW__SESSION_LOG__SESSION_STATUS__START;
    log.msg = (char *)(msg ? msg : "");
    Tensorflow__Event ev = event_now(step);
    ev.what_case = TENSORFLOW__EVENT__WHAT_SESSION_LOG;
    ev.session_log = &log;
    return append_event(w, &ev);
}

rt_status tb_writer_flush(tb_writer_t *w)
{
    size_t done = 0;
    while (done < w->len) {
        const ssize_t n = write(w->fd, w->buf + done, w->len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            const int e = n < 0 ? errno : EIO;
            w->len = 0;  /* not retried: a later flush would interleave with the partial record */
            return rt_fail(RT_ERR_IO, "write %s: %s", w->path, strerror(e));
        }
        done += (size_t)n;
    }
    w->len = 0;
    return RT_OK;
}

rt_status tb_writer_close(tb_writer_t *w)
{
    if (!w)
        return RT_OK;
    rt_status st = tb_writer_flush(w);
    if (close(w->fd) != 0 && st == RT_OK)
        st = rt_fail(RT_ERR_IO, "close %s: %s", w->path, strerror(errno));
    free(w->buf);
    free(w);
    return st;
}
