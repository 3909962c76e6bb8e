/* timeout.c - the default collective deadline from RT_COLL_TIMEOUT and the
 * stall-warning fraction from RT_COLL_WARN_FRACTION. */
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

double rt_timeout_warn_fraction(void)
{
    const char *v = getenv("RT_COLL_WARN_FRACTION");
    if (!v || !*v)
        return RT_TIMEOUT_WARN_DEFAULT;
    char *end = NULL;
    double d = strtod(v, &end);
    if (end == v || *end || !(d >= 0 && d < 1)) {
        LOG_WARN("ignoring RT_COLL_WARN_FRACTION='%s' (want a number in [0, 1); 0: no warning)", v);
        return RT_TIMEOUT_WARN_DEFAULT;
    }
    return d;
}
