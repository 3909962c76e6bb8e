/* test_status.c - messages recorded by rt_fail reach the caller, context
 * prefixes stack, statuses map to the documented exit codes, and
 * rt_input_status tells bad input from the run's own failures. */
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
    EXPECT(rt_exit_code(RT_ERR_CORRUPT) == 1 && rt_exit_code(RT_ERR_NOMEM) == 1,
           "corrupt data and out of memory exit 1");
    /* reading a named input: bad files are usage errors, the run's own failures are not */
    EXPECT(rt_input_status(RT_ERR_FORMAT) == RT_ERR_USAGE &&
               rt_input_status(RT_ERR_IO) == RT_ERR_USAGE &&
               rt_input_status(RT_ERR_HDF5) == RT_ERR_USAGE,
           "bad input files become usage errors");
    EXPECT(rt_input_status(RT_ERR_NOMEM) == RT_ERR_NOMEM &&
               rt_input_status(RT_ERR_CORRUPT) == RT_ERR_CORRUPT &&
               rt_input_status(RT_ERR_INTERNAL) == RT_ERR_INTERNAL,
           "out of memory, corruption, internal errors keep their codes");
    EXPECT(!strcmp(rt_status_name(RT_ERR_CORRUPT), "corrupt"), "corrupt name");
    EXPECT(!strcmp(rt_status_name(RT_ERR_TIMEOUT), "timeout"), "name");
    EXPECT(!strcmp(rt_status_name((rt_status)999), "unknown"), "out of range name");
    return TEST_EXIT();
}
