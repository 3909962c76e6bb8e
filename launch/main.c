/* main.c - the `ringtrain` executable: dispatches to subcommands. */
/* POSIX: _exit */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "trainer/ops/device.h"
#include "common/log.h"
#include "common/status.h"
#include "launch/commands.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command_entry;

static const command_entry commands[] = {
    {"data", cmd_data, "import, inspect and verify datasets (import-idx, import-text, import-tokens, info, verify)"},
    {"train", cmd_train, "train a model data-parallel (run under mpirun for several ranks)"},
    {"eval", cmd_eval, "loss (and accuracy) of saved parameters over a dataset"},
    {"sample", cmd_sample, "generate text from a trained byte-level language model"},
    {"export", cmd_export, "a trained model in another format (onnx, safetensors)"},
    {"import", cmd_import, "a PyTorch state_dict (safetensors, .pt) into parameters to train from"},
    {"launch", cmd_launch, "run a command on N ranks with mpirun; restart failed training"},
    {"ckpt", cmd_ckpt, "checkpoints: inspect (tree, metadata) and verify (checksums)"},
    {"bench", cmd_bench, "benchmarks: allreduce (ours against MPI_Allreduce)"},
};

static void print_usage(FILE *out)
{
    fprintf(out, "usage: ringtrain <command> [options]   (ringtrain <command> --help)\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-8s %s\n", "version", "print the version and build options");
}

void cmd_exit_if_out_of_memory(int status)
{
    if ((rt_status)status != RT_ERR_NOMEM)
        return;
    fflush(NULL);
    _exit(rt_exit_code(RT_ERR_NOMEM));
}

int cmd_report(const char *cmd, int status)
{
    rt_status st = (rt_status)status;
    if (st != RT_OK && st != RT_HELP)
        fprintf(stderr, "ringtrain %s: %s\n", cmd, rt_last_error());
    cmd_exit_if_out_of_memory(st);
    return rt_exit_code(st);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        print_usage(stdout);
        return 0;
    }
    if (!strcmp(name, "version") || !strcmp(name, "--version")) {
        printf("ringtrain 0.1.0 (cuda %s)\n", device_cuda_compiled() ? "on" : "off");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name))
            return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "ringtrain: unknown command '%s' (see ringtrain --help)\n", name);
    return 2;
}
