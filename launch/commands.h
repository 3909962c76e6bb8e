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
int cmd_export(int argc, char **argv); /* cmd_export.c: ringtrain export <format> */
int cmd_export_safetensors(int argc, char **argv); /* cmd_export_safetensors.c */
int cmd_import(int argc, char **argv); /* cmd_import.c: ringtrain import */

/* Prints "ringtrain <cmd>: <message>" for a failed status and returns the
 * exit code for it; the message is the one recorded by rt_fail(). Out of
 * memory ends the process there (cmd_exit_if_out_of_memory). */
int cmd_report(const char *cmd, int status);

/* For RT_ERR_NOMEM: flushes stdio and ends the process with _exit(1)
 * instead of returning to exit(). A thread of OpenBLAS's pool that could
 * not map its buffer retries forever, and exit() would join it in
 * OpenBLAS's destructor and never return; by the time a command reports,
 * its files are closed and MPI is finalised, so nothing else is skipped.
 * Returns for any other status. */
void cmd_exit_if_out_of_memory(int status);

#endif
