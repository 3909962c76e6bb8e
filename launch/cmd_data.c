/* cmd_data.c - placeholder until its issue lands. */
#include "common/status.h"
#include "launch/commands.h"

int cmd_data(int argc, char **argv)
{
    (void)argc; (void)argv;
    return cmd_report("data", rt_fail(RT_ERR_UNSUPPORTED, "not built yet"));
}
