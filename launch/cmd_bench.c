/* cmd_bench.c - placeholder until its issue lands. */
#include "common/status.h"
#include "launch/commands.h"

int cmd_bench(int argc, char **argv)
{
    (void)argc; (void)argv;
    return cmd_report("bench", rt_fail(RT_ERR_UNSUPPORTED, "not built yet"));
}
