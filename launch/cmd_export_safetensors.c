/* cmd_export_safetensors.c - `ringtrain export safetensors --ckpt F.h5
 * --out M.safetensors`: the parameters of a checkpoint (every dataset's
 * CRC-32C checked as it is read) or of a `train --export-params` file as
 * a safetensors file with the model's PyTorch state_dict names
 * (trainer/ckpt/safetensors.h; docs/FORMATS.md, "safetensors"). */
#include <stdio.h>

#include "common/args.h"
#include "common/check.h"
#include "common/hdf5_util.h"
#include "data/import_paths.h"
#include "launch/commands.h"
#include "trainer/ckpt/export.h"
#include "trainer/ckpt/safetensors.h"
#include "trainer/run/saved_model.h"

static rt_status export_safetensors(const char *ckpt, const char *out)
{
    /* the rename would replace the input with the output */
    import_path_t in = {"ckpt", ckpt}, o = {"out", out};
    TRY(import_check_paths(&in, 1, &o, 1));
    /* a missing directory or no permission is found before the input is read */
    if (params_export_check(out) != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "--out");
    saved_model_t sm;
    rt_status st = saved_model_load(&sm, ckpt, "ckpt");
    if (st == RT_OK)
        st = safetensors_write(&sm.reg, sm.params, sm.spec.text, out);
    if (st == RT_OK)
        printf("wrote %s: %d tensors, %lld parameters (float32), model %s\n", out, sm.reg.count,
               (long long)param_numel(&sm.reg), sm.spec.text);
    saved_model_free(&sm);
    return st;
}

int cmd_export_safetensors(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL;
    arg_spec specs[] = {
        {"ckpt", ARG_STRING, &ckpt, "F.h5", "parameters: a checkpoint or a train --export-params file", true, false},
        {"out", ARG_STRING, &out, "M.safetensors", "the file to write (atomically: temporary name, then rename)", true, false},
    };
    arg_command cmd = {.prog = "ringtrain export safetensors",
                       .summary = "Write saved parameters as a safetensors file (F32, the model's PyTorch "
                                  "state_dict names, __metadata__ model_spec)."};
    rt_status st = args_parse(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (st == RT_OK) {
        rt_hdf5_quiet();
        st = export_safetensors(ckpt, out);
    }
    return cmd_report("export safetensors", st);
}
