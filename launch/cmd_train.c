/* cmd_train.c - placeholder until its issue lands. */
#include "common/status.h"
#include "launch/commands.h"

int cmd_train(int argc, char **argv)
{
    (void)argc; (void)argv;
    return cmd_report("train", rt_fail(RT_ERR_UNSUPPORTED, "not built yet"));
}
