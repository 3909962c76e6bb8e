/* cmd_ckpt.c - `ringtrain ckpt inspect|verify F.h5`: show a checkpoint's
 * tree and metadata, or check every dataset's CRC-32C (exit 0 good, 1 bad). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/args.h"
#include "common/status.h"
#include "launch/commands.h"
#include "trainer/ckpt/ckpt_file.h"

static void ckpt_usage(FILE *out)
{
    fprintf(out, "usage: ringtrain ckpt <inspect|verify> F.h5\n\n"
                 "  inspect F.h5   print root attributes (step, model, config) and every dataset\n"
                 "                 with its type, shape, size and checksum attribute\n"
                 "  verify F.h5    check format, version and every dataset's CRC-32C;\n"
                 "                 exit 0 if all match, 1 naming each bad dataset\n");
}

int cmd_ckpt(int argc, char **argv)
{
    if (argc < 1) {
        ckpt_usage(stderr);
        return cmd_report("ckpt", rt_fail(RT_ERR_USAGE, "missing subcommand (inspect or verify)"));
    }
    const char *sub = argv[0];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        ckpt_usage(stdout);
        return 0;
    }
    int inspect = !strcmp(sub, "inspect");
    if (!inspect && strcmp(sub, "verify") != 0)
        return cmd_report("ckpt", rt_fail(RT_ERR_USAGE, "unknown subcommand '%s' (inspect or verify)", sub));

    const char *path = NULL;
    arg_command cmd = {
        .prog = inspect ? "ringtrain ckpt inspect" : "ringtrain ckpt verify",
        .summary = inspect ? "Print a checkpoint's metadata and tree." : "Check a checkpoint's checksums.",
        .positional = "F.h5", .min_positional = 1, .max_positional = 1, .positional_out = &path,
    };
    rt_status st = args_parse(&cmd, NULL, 0, argc - 1, argv + 1);
    if (st != RT_OK)
        return cmd_report("ckpt", st);
    if (inspect)
        return cmd_report("ckpt", ckpt_inspect(path, stdout));
    ckpt_verify_info_t info;
    st = ckpt_verify(path, &info);
    if (st == RT_OK)
        printf("%s: ok, step %" PRId64 ", %" PRId64 " datasets, %" PRId64 " bytes checked\n", path, info.step,
               info.datasets, info.bytes);
    return cmd_report("ckpt", st);
}
