/* commands.h - the subcommands of the `ringtrain` executable. Each takes the
 * arguments after its own name and returns the process exit code
 * (0 ok, 1 failure, 2 usage error). */
#ifndef RT_LAUNCH_COMMANDS_H
#define RT_LAUNCH_COMMANDS_H

int cmd_bench(int argc, char **argv);  /* cmd_bench.c: ringtrain bench allreduce */
int cmd_data(int argc, char **argv);   /* cmd_data.c: import-idx, import-text, info */
int cmd_train(int argc, char **argv);  /* cmd_train.c: ringtrain train */
int cmd_launch(int argc, char **argv); /* cmd_launch.c: mpirun launcher with restarts */
int cmd_ckpt(int argc, char **argv);   /* cmd_ckpt.c: ckpt inspect|verify */
int cmd_eval(int argc, char **argv);   /* cmd_eval.c: ringtrain eval */
int cmd_sample(int argc, char **argv); /* cmd_sample.c: ringtrain sample */

/* Prints "ringtrain <cmd>: <message>" for a failed status and returns the
 * exit code for it; the message is the one recorded by rt_fail(). */
int cmd_report(const char *cmd, int status);

#endif
