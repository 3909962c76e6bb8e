/* check_mpi.c - MPI error codes to rt_status with MPI's error string. */
#include <mpi.h>
#include <stdio.h>

#include "check.h"

rt_status rt_mpi_error(int code, const char *call, const char *file, int line)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "error %d", code);
    const char *base = file;
    for (const char *p = file; *p; p++)
        if (*p == '/')
            base = p + 1;
    return rt_fail(RT_ERR_MPI, "%s:%d %s failed: %s", base, line, call, text);
}
