/* check.h - macros that turn foreign error codes (MPI, HDF5, POSIX) into
 * rt_status values with the library's own message, and propagate statuses.
 *
 * All of them visibly return or jump: TRY returns the status of a failed
 * call; TRY_GOTO stores it in `st` and jumps to a cleanup label.
 * CUDA and NCCL checks live in check_cuda.h so that C files need no CUDA
 * headers.
 */
#ifndef RT_COMMON_CHECK_H
#define RT_COMMON_CHECK_H

#include <errno.h>
#include <string.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TRY(expr) \
    do { rt_status try_st_ = (expr); if (try_st_ != RT_OK) return try_st_; } while (0)

#define TRY_GOTO(st, expr, label) \
    do { (st) = (expr); if ((st) != RT_OK) goto label; } while (0)

/* For a condition that makes the arguments invalid. */
#define CHECK_ARG(cond, ...) \
    do { if (!(cond)) return rt_fail(RT_ERR_INVALID, __VA_ARGS__); } while (0)

/* POSIX calls that return -1 and set errno. */
#define CHECK_POSIX(call, what) \
    do { if ((call) < 0) return rt_fail(RT_ERR_IO, "%s: %s", (what), strerror(errno)); } while (0)

/* Converts an MPI error code into RT_ERR_MPI with MPI's own text.
 * Requires <mpi.h> in the including file. */
rt_status rt_mpi_error(int code, const char *call, const char *file, int line);
#define CHECK_MPI(call) \
    do { int mpi_rc_ = (call); \
         if (mpi_rc_ != 0) return rt_mpi_error(mpi_rc_, #call, __FILE__, __LINE__); } while (0)

/* HDF5 calls return a negative value on failure. */
rt_status rt_hdf5_error(const char *call, const char *file, int line);
#define CHECK_HDF5(call) \
    do { if ((call) < 0) return rt_hdf5_error(#call, __FILE__, __LINE__); } while (0)

/* Allocation that fails with RT_ERR_NOMEM naming the size. */
#define CHECK_ALLOC(ptr, bytes) \
    do { if ((ptr) == NULL && (bytes) != 0) \
             return rt_fail(RT_ERR_NOMEM, "cannot allocate %zu bytes", (size_t)(bytes)); } while (0)

#ifdef __cplusplus
}
#endif

#endif
