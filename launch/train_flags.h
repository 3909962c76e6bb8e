/* train_flags.h - the flag parser of `ringtrain train` (in cmd_train.c),
 * declared apart from the command so that the fuzz target
 * (tests/fuzz/fuzz_train_flags.c) runs it as the command does. */
#ifndef RT_LAUNCH_TRAIN_FLAGS_H
#define RT_LAUNCH_TRAIN_FLAGS_H

#include "common/status.h"
#include "trainer/run/config.h"

/* argv[0..argc) after `train`: the defaults, then the flags, then
 * train_config_check and the --device check; RT_ERR_USAGE with a one-line
 * reason. --help prints the help and returns RT_HELP (common/args.h). */
rt_status train_flags_parse(train_config_t *c, int argc, char **argv);

#endif
