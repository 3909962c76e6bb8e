/* check_hdf5.c - HDF5 failures to rt_status with the innermost HDF5 message.
 * HDF5's own automatic error printing is turned off by rt_hdf5_quiet() so
 * that users see one line from us rather than a stack dump. */
#include <hdf5.h>
#include <stdio.h>

#include "check.h"
#include "hdf5_util.h"

struct walk_state {
    char text[256];
};

static herr_t take_innermost(unsigned n, const H5E_error2_t *err, void *data)
{
    struct walk_state *ws = data;
    if (n == 0 && err->desc)
        snprintf(ws->text, sizeof ws->text, "%s", err->desc);
    return 0;
}

rt_status rt_hdf5_error(const char *call, const char *file, int line)
{
    struct walk_state ws = {"unknown HDF5 error"};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, take_innermost, &ws);
    H5Eclear2(H5E_DEFAULT);
    const char *base = file;
    for (const char *p = file; *p; p++)
        if (*p == '/')
            base = p + 1;
    return rt_fail(RT_ERR_HDF5, "%s:%d %s failed: %s", base, line, call, ws.text);
}

void rt_hdf5_quiet(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}
