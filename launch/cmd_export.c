/* cmd_export.c - `ringtrain export <format> ...`: a trained model in a
 * format other programs read. The first word picks the format from the
 * table below; each format parses its own flags and makes one library
 * call. `onnx` (here): trainer/export/onnx/onnx_export.h, docs/EXPORT.md;
 * `safetensors`: cmd_export_safetensors.c. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/hdf5_util.h"
#include "common/status.h"
#include "launch/commands.h"
#include "trainer/export/onnx/onnx_export.h"

/* --batch N|dynamic: N in 1..2^31-1 fixes the batch dimension; dynamic
 * (the default) leaves it symbolic. */
static rt_status parse_batch(const char *text, int64_t *out)
{
    *out = 0;
    if (!text || !strcmp(text, "dynamic"))
        return RT_OK;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end || errno || v < 1 || v > INT32_MAX)
        return rt_fail(RT_ERR_USAGE, "--batch must be 'dynamic' or an integer in 1..%d, got '%s'",
                       INT32_MAX, text);
    *out = v;
    return RT_OK;
}

static int export_onnx(int argc, char **argv)
{
    onnx_export_config_t c;
    memset(&c, 0, sizeof c);
    const char *batch = NULL;
    arg_spec specs[] = {
        {"ckpt", ARG_STRING, &c.ckpt, "F.h5", "parameters: a checkpoint or a train --export-params file", true, false},
        {"out", ARG_STRING, &c.out, "F.onnx", "the ONNX model to write (replaced if it exists)", true, false},
        {"batch", ARG_STRING, &batch, "N|dynamic", "the input's batch dimension: fixed at N, or symbolic (dynamic, the default)", false, false},
    };
    arg_command cmd = {.prog = "ringtrain export onnx",
                       .summary = "Write an mlp or gpt model as an ONNX file (opset 17, float32 "
                                  "weights): mlp input float32 [batch, features] (uint8 records "
                                  "/ 255), gpt input int64 tokens [batch, ctx]; output logits."};
    rt_status st = args_parse(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (st == RT_OK)
        st = parse_batch(batch, &c.batch);
    if (st != RT_OK)
        return cmd_report("export onnx", st);
    rt_hdf5_quiet();
    st = onnx_export_run(&c);
    if (st == RT_OK)
        printf("wrote %s\n", c.out);
    return cmd_report("export onnx", st);
}

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} export_format_t;

static const export_format_t formats[] = {
    {"onnx", export_onnx, "an ONNX model (mlp, gpt) for ONNX Runtime and other runtimes"},
    {"safetensors", cmd_export_safetensors, "parameters as a safetensors file (PyTorch state_dict names)"},
};

static void export_usage(FILE *out)
{
    fprintf(out, "usage: ringtrain export <format> [options]   (ringtrain export <format> --help)\n\n"
                 "formats:\n");
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        fprintf(out, "  %-12s %s\n", formats[i].name, formats[i].summary);
}

int cmd_export(int argc, char **argv)
{
    if (argc < 1) {
        export_usage(stderr);
        return cmd_report("export", rt_fail(RT_ERR_USAGE, "missing format (onnx or safetensors)"));
    }
    if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        export_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (!strcmp(argv[0], formats[i].name))
            return formats[i].run(argc - 1, argv + 1);
    return cmd_report("export", rt_fail(RT_ERR_USAGE, "unknown format '%s' (onnx or safetensors)", argv[0]));
}
