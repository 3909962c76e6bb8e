/* test_timeout.c - the collective timeout default: RT_COLL_TIMEOUT when it
 * is a plain number in [0.001, 1e9] seconds, else 300 s. */
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
    return TEST_EXIT();
}
