/* test_timeout.c - the collective timeout default: RT_COLL_TIMEOUT when it
 * is a plain number in [0.001, 1e9] seconds, else 300 s; the stall-warning
 * fraction: RT_COLL_WARN_FRACTION when it is a number in [0, 1), else 0.1. */
#define _POSIX_C_SOURCE 200112L /* setenv */
#include <stdlib.h>

#include "common/timeout.h"
#include "test_util.h"

static double with_env(const char *value)
{
    if (value)
        setenv("RT_COLL_TIMEOUT", value, 1);
    else
        unsetenv("RT_COLL_TIMEOUT");
    return rt_timeout_default();
}

int main(void)
{
    EXPECT(RT_TIMEOUT_DEFAULT_S == 300.0, "the documented default is 300 s");
    EXPECT(with_env(NULL) == 300.0, "unset");
    EXPECT(with_env("") == 300.0, "empty");
    EXPECT(with_env("123.5") == 123.5, "123.5");
    EXPECT(with_env("0.001") == 0.001, "lower bound accepted");
    EXPECT(with_env("1e9") == 1e9, "upper bound accepted");
    const char *bad[] = {"0", "0.0009", "-5", "1.1e9", "abc", "5s", " ", "nan", "inf"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        EXPECT(with_env(bad[i]) == 300.0, "'%s' is ignored for 300 s", bad[i]);

    EXPECT(RT_TIMEOUT_WARN_DEFAULT == 0.1, "the documented warning fraction is 0.1");
    unsetenv("RT_COLL_WARN_FRACTION");
    EXPECT(rt_timeout_warn_fraction() == 0.1, "unset");
    const char *good[] = {"0", "0.25", "0.999"};
    const double want[] = {0, 0.25, 0.999};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        setenv("RT_COLL_WARN_FRACTION", good[i], 1);
        EXPECT(rt_timeout_warn_fraction() == want[i], "'%s' is taken", good[i]);
    }
    const char *refused[] = {"", "1", "-0.1", "2", "abc", "0.1s", "nan"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        setenv("RT_COLL_WARN_FRACTION", refused[i], 1);
        EXPECT(rt_timeout_warn_fraction() == 0.1, "'%s' is ignored for 0.1", refused[i]);
    }
    return TEST_EXIT();
}
