/* status.c - per-thread error message storage behind rt_fail(). */
#include "status.h"

#include <stdio.h>
#include <string.h>

#define RT_MSG_LEN 1024

static _Thread_local char last_message[RT_MSG_LEN];

static const char *const status_names[RT_STATUS_COUNT] = {
    [RT_OK] = "ok",
    [RT_ERR_USAGE] = "usage",
    [RT_ERR_INVALID] = "invalid argument",
    [RT_ERR_NOMEM] = "out of memory",
    [RT_ERR_IO] = "i/o",
    [RT_ERR_FORMAT] = "format",
    [RT_ERR_MPI] = "mpi",
    [RT_ERR_CUDA] = "cuda",
    [RT_ERR_NCCL] = "nccl",
    [RT_ERR_HDF5] = "hdf5",
    [RT_ERR_TIMEOUT] = "timeout",
    [RT_ERR_MISMATCH] = "mismatch",
    [RT_ERR_UNSUPPORTED] = "unsupported",
    [RT_ERR_NUMERIC] = "numeric",
    [RT_ERR_CORRUPT] = "corrupt",
    [RT_ERR_INTERNAL] = "internal",
    [RT_HELP] = "help",
};

const char *rt_status_name(rt_status st)
{
    if ((int)st < 0 || st >= RT_STATUS_COUNT)
        return "unknown";
    return status_names[st];
}

rt_status rt_vfail(rt_status code, const char *fmt, va_list ap)
{
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    return code;
}

rt_status rt_fail(rt_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_vfail(code, fmt, ap);
    va_end(ap);
    return code;
}

rt_status rt_fail_context(rt_status code, const char *fmt, ...)
{
    char prefix[RT_MSG_LEN];
    char old[RT_MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_message, sizeof old);
    /* both parts fit in 2 KiB; the copy back truncates to the buffer */
    char joined[2 * RT_MSG_LEN + 2];
    snprintf(joined, sizeof joined, "%s: %s", prefix, old);
    memcpy(last_message, joined, sizeof last_message - 1);
    last_message[sizeof last_message - 1] = '\0';
    return code;
}

const char *rt_last_error(void)
{
    return last_message;
}

void rt_clear_error(void)
{
    last_message[0] = '\0';
}

rt_status rt_input_status(rt_status st)
{
    switch (st) {
    case RT_ERR_USAGE:
    case RT_ERR_INVALID:
    case RT_ERR_IO:
    case RT_ERR_FORMAT:
    case RT_ERR_HDF5:
    case RT_ERR_MISMATCH:
    case RT_ERR_UNSUPPORTED:
        return RT_ERR_USAGE;
    default:
        return st;
    }
}

int rt_exit_code(rt_status st)
{
    if (st == RT_OK || st == RT_HELP)
        return 0;
    return st == RT_ERR_USAGE ? 2 : 1;
}
