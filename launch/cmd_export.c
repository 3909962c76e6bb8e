/* cmd_export.c - `ringtrain export <format> ...`: saved parameters (a
 * checkpoint or a `train --export-params` file) in another program's
 * format. This file only dispatches; each format has its own file
 * (cmd_export_safetensors.c). */
#include <stdio.h>
#include <string.h>

#include "common/status.h"
#include "launch/commands.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} export_format_t;

static const export_format_t formats[] = {
    {"safetensors", cmd_export_safetensors, "parameters as a safetensors file (PyTorch state_dict names)"},
};

static void export_usage(FILE *out)
{
    fprintf(out, "usage: ringtrain export <format> --ckpt F.h5 --out FILE   (ringtrain export <format> --help)\n\n"
                 "formats:\n");
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        fprintf(out, "  %-12s %s\n", formats[i].name, formats[i].summary);
}

int cmd_export(int argc, char **argv)
{
    if (argc < 1) {
        export_usage(stderr);
        return cmd_report("export", rt_fail(RT_ERR_USAGE, "missing format"));
    }
    if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        export_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (!strcmp(argv[0], formats[i].name))
            return formats[i].run(argc - 1, argv + 1);
    return cmd_report("export", rt_fail(RT_ERR_USAGE, "unknown format '%s' (see ringtrain export --help)", argv[0]));
}
