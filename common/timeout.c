/* timeout.c - the default collective deadline from RT_COLL_TIMEOUT. */
#include "common/timeout.h"

#include <stdlib.h>

#include "common/log.h"

double rt_timeout_default(void)
{
    const char *v = getenv("RT_COLL_TIMEOUT");
    if (!v || !*v)
        return RT_TIMEOUT_DEFAULT_S;
    char *end = NULL;
    double d = strtod(v, &end);
    /* written so that NaN fails the range test too */
    if (end == v || *end || !(d >= RT_TIMEOUT_MIN_S && d <= RT_TIMEOUT_MAX_S)) {
        LOG_WARN("ignoring RT_COLL_TIMEOUT='%s' (want a number in [%g, %g])", v,
                 RT_TIMEOUT_MIN_S, RT_TIMEOUT_MAX_S);
        return RT_TIMEOUT_DEFAULT_S;
    }
    return d;
}
