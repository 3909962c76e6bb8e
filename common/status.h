/* status.h - status codes returned by every library function, and the
 * per-thread message that says what went wrong.
 *
 * Library code never exits: it returns an rt_status. The function that first
 * sees a failure records a message with rt_fail(); callers further up only
 * pass the code along (TRY in check.h), so the message names the real cause.
 */
#ifndef RT_COMMON_STATUS_H
#define RT_COMMON_STATUS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    RT_OK = 0,
    RT_ERR_USAGE,        /* bad flag or argument: exit code 2 */
    RT_ERR_INVALID,      /* bad argument to a library function */
    RT_ERR_NOMEM,
    RT_ERR_IO,           /* file system or POSIX failure */
    RT_ERR_FORMAT,       /* a file that is not what it claims to be */
    RT_ERR_MPI,
    RT_ERR_CUDA,
    RT_ERR_NCCL,
    RT_ERR_HDF5,
    RT_ERR_TIMEOUT,      /* a peer did not arrive in time */
    RT_ERR_MISMATCH,     /* ranks called a collective with different arguments */
    RT_ERR_UNSUPPORTED,  /* feature not compiled in (CPU-only build) */
    RT_ERR_NUMERIC,      /* non-finite loss or gradient */
    RT_ERR_CORRUPT,      /* data that fails its checksum: exit 1 (a copy or a re-read may be fine) */
    RT_ERR_INTERNAL,
    RT_HELP,             /* --help was printed: not an error, exit 0 */
    RT_STATUS_COUNT
} rt_status;

/* Short name of a status code ("timeout", "mpi", ...). */
const char *rt_status_name(rt_status st);

/* Records a formatted message for this thread and returns code, so call
 * sites read `return rt_fail(RT_ERR_IO, "open %s: %s", path, strerror(e));`. */
rt_status rt_fail(rt_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
rt_status rt_vfail(rt_status code, const char *fmt, va_list ap);

/* The message recorded by the last rt_fail() on this thread ("" if none). */
const char *rt_last_error(void);

/* Prefixes the current message with more context ("loading ckpt.h5: ..."). */
rt_status rt_fail_context(rt_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void rt_clear_error(void);

/* Process exit code for a status: 0 ok/help, 2 usage, 1 otherwise. */
int rt_exit_code(rt_status st);

/* The code for a failure while reading an input the user named (a dataset,
 * a checkpoint): a file that is missing, unreadable or not what it claims
 * (usage, invalid, i/o, format, hdf5, mismatch, unsupported) becomes
 * RT_ERR_USAGE, exit 2, which a launcher does not retry since a restart
 * cannot fix it; a failure of the run itself (out of memory, MPI, CUDA,
 * NCCL, a timeout, numeric, corrupt data, internal) keeps its code and
 * exits 1. */
rt_status rt_input_status(rt_status st);

#ifdef __cplusplus
}
#endif

#endif
