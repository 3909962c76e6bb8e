/* ckpt_name.c - checkpoint file names (see ckpt_name.h). */
#include "trainer/ckpt/ckpt_name.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/check.h"

int ckpt_name_parse(const char *base, int64_t *step)
{
    if (strncmp(base, "ckpt-", 5) != 0)
        return 0;
    const char *p = base + 5;
    int64_t v = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        int d = *p - '0';
        if (v > (INT64_MAX - d) / 10)
            return 0;  /* beyond INT64_MAX */
        v = v * 10 + d;
    }
    if (digits < 8 || strcmp(p, ".h5") != 0)
        return 0;
    *step = v;
    return 1;
}

rt_status ckpt_path_for_step(const char *dir, int64_t step, char *out, size_t len)
{
    CHECK_ARG(step >= 0, "checkpoint of a negative step %" PRId64, step);
    int n = snprintf(out, len, "%s/ckpt-%08" PRId64 ".h5", dir, step);
    if (n < 0 || (size_t)n >= len)
        return rt_fail(RT_ERR_INVALID, "checkpoint path in %s is too long", dir);
    return RT_OK;
}
