/* test_status.c - messages recorded by rt_fail reach the caller, context
 * prefixes stack, and statuses map to the documented exit codes. */
#include <string.h>

#include "common/status.h"
#include "test_util.h"

static rt_status inner(void)
{
    return rt_fail(RT_ERR_IO, "open %s: %s", "x.h5", "No such file");
}

int main(void)
{
    EXPECT(inner() == RT_ERR_IO, "code");
    EXPECT(!strcmp(rt_last_error(), "open x.h5: No such file"), "msg %s", rt_last_error());
    rt_fail_context(RT_ERR_IO, "loading dataset");
    EXPECT(!strcmp(rt_last_error(), "loading dataset: open x.h5: No such file"), "ctx %s",
           rt_last_error());
    EXPECT(rt_exit_code(RT_OK) == 0 && rt_exit_code(RT_HELP) == 0, "ok exits 0");
    EXPECT(rt_exit_code(RT_ERR_USAGE) == 2, "usage exits 2");
    EXPECT(rt_exit_code(RT_ERR_TIMEOUT) == 1, "failure exits 1");
    EXPECT(!strcmp(rt_status_name(RT_ERR_TIMEOUT), "timeout"), "name");
    EXPECT(!strcmp(rt_status_name((rt_status)999), "unknown"), "out of range name");
    return TEST_EXIT();
}
