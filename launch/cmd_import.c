/* cmd_import.c - `ringtrain import --from M.safetensors|M.pt --out F.h5
 * [--model SPEC]`: a PyTorch state_dict with the model's names and shapes
 * into a parameters file (the `train --export-params` format,
 * trainer/ckpt/export.h) that `ringtrain train --init-params F.h5` starts
 * from, and that `eval`, `sample` and `export` read. safetensors is read
 * here (trainer/ckpt/safetensors.h); a torch.save file goes through
 * tools/pt_to_safetensors.py first, since only PyTorch reads its pickles.
 * Every mismatch against the model is listed, exit 2. docs/TRAINING.md,
 * "Moving models in and out". */
#define _POSIX_C_SOURCE 200809L /* fsync, O_CLOEXEC */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/args.h"
#include "common/check.h"
#include "common/hdf5_util.h"
#include "data/import_paths.h"
#include "launch/commands.h"
#include "trainer/ckpt/export.h"
#include "trainer/ckpt/safetensors.h"
#include "trainer/model/model.h"
#include "trainer/ops/tensor.h"

#ifndef RT_TOOLS_DIR
#define RT_TOOLS_DIR "tools"
#endif

/* The helper's exit codes (tools/pt_to_safetensors.py). */
enum { PT_BAD_INPUT = 2, PT_NO_TORCH = 3 };

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* A .pt file as a safetensors file at tmp, through the Python helper:
 * RT_PYTHON (default python3 on PATH) runs RT_PT_HELPER (default the
 * source tree's tools/pt_to_safetensors.py). */
static rt_status pt_convert(const char *from, const char *tmp)
{
    const char *python = getenv("RT_PYTHON"), *helper = getenv("RT_PT_HELPER");
    if (!python || !*python)
        python = "python3";
    char path[4096];
    if (helper && *helper)
        snprintf(path, sizeof path, "%s", helper);
    else
        snprintf(path, sizeof path, "%s/pt_to_safetensors.py", RT_TOOLS_DIR);
    if (access(path, R_OK) != 0)
        return rt_fail(RT_ERR_USAGE, "--from %s: reading a .pt file needs %s (%s); set RT_PT_HELPER to "
                       "tools/pt_to_safetensors.py", from, path, strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return rt_fail(RT_ERR_IO, "fork: %s", strerror(errno));
    if (pid == 0) {
        char *args[] = {(char *)python, path, (char *)from, (char *)tmp, NULL};
        execvp(python, args);
        fprintf(stderr, "ringtrain import: cannot run %s: %s\n", python, strerror(errno));
        _exit(127);
    }
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR)
            return rt_fail(RT_ERR_IO, "waitpid: %s", strerror(errno));
    int rc = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    if (rc == 0)
        return RT_OK;
    if (rc == PT_NO_TORCH)
        return rt_fail(RT_ERR_USAGE, "--from %s: %s has no PyTorch (import torch failed), which reading "
                       "a .pt file needs: install it (Debian: python3-torch) or set RT_PYTHON to a "
                       "python3 that has it", from, python);
    if (rc == PT_BAD_INPUT)
        return rt_fail(RT_ERR_USAGE, "--from %s: not a PyTorch state_dict (the reason is above)", from);
    if (rc == 127)
        return rt_fail(RT_ERR_USAGE, "--from %s: cannot run %s (set RT_PYTHON)", from, python);
    return rt_fail(RT_ERR_IO, "--from %s: %s %s failed (exit %d)", from, python, path, rc);
}

static rt_status fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return rt_fail(RT_ERR_IO, "%s: open for fsync: %s", path, strerror(errno));
    int rc = fsync(fd), e = errno;
    close(fd);
    /* some file systems cannot fsync a directory; that is not a failure */
    if (rc != 0 && !((flags & O_DIRECTORY) && (e == EINVAL || e == ENOTSUP)))
        return rt_fail(RT_ERR_IO, "%s: fsync: %s", path, strerror(e));
    return RT_OK;
}

/* The parameters export, written as <out>.tmp.<pid>, fsync'ed and renamed
 * into place, so that no half-written file ever has the output's name. */
static rt_status write_params(const param_registry_t *reg, const float *arena, const char *spec,
                              const char *out)
{
    char tmp[4096 + 32], dir[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    rt_status st = params_export_h5(reg, arena, spec, tmp);
    if (st == RT_OK)
        st = fsync_path(tmp, O_RDONLY);
    if (st == RT_OK && rename(tmp, out) != 0)
        st = rt_fail(RT_ERR_IO, "rename %s to %s: %s", tmp, out, strerror(errno));
    if (st != RT_OK) {
        unlink(tmp);
        return st;
    }
    snprintf(dir, sizeof dir, "%s", out);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        slash[slash == dir] = '\0';
    return fsync_path(dir, O_RDONLY | O_DIRECTORY);
}

typedef struct {
    const char *from, *out, *model, *format;
} import_args_t;

/* The spec: --model, or the file's __metadata__ model_spec (what `export
 * safetensors` writes); both given must name the same model, since shapes
 * alone do not tell every spec apart (a GPT's heads). */
static rt_status choose_spec(const import_args_t *a, const char *st_path, model_spec_t *spec)
{
    char meta[512] = "";
    TRY(safetensors_read_spec(st_path, meta, sizeof meta));
    if (!a->model && !meta[0])
        return rt_fail(RT_ERR_USAGE, "--model is required: %s carries no model_spec", a->from);
    TRY(model_spec_parse(a->model ? a->model : meta, spec));
    if (a->model && meta[0]) {
        model_spec_t other;
        if (model_spec_parse(meta, &other) != RT_OK)
            return rt_fail(RT_ERR_MISMATCH, "%s: its model_spec '%s' is not a model spec", a->from, meta);
        bool same = !strcmp(other.text, spec->text);
        model_spec_free(&other);
        if (!same)
            return rt_fail(RT_ERR_MISMATCH, "%s holds model '%s' but --model is '%s'", a->from, meta,
                           spec->text);
    }
    return RT_OK;
}

static rt_status import_run(const import_args_t *a)
{
    bool pt;
    if (a->format)
        pt = !strcmp(a->format, "pt");
    else
        pt = ends_with(a->from, ".pt") || ends_with(a->from, ".pth");
    import_path_t in = {"from", a->from}, o = {"out", a->out};
    TRY(import_check_paths(&in, 1, &o, 1));
    struct stat sb;
    if (stat(a->from, &sb) != 0)
        return rt_fail(RT_ERR_USAGE, "--from %s: %s", a->from, strerror(errno));
    if (params_export_check(a->out) != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "--out");

    char tmp[4096 + 64];
    const char *st_path = a->from;
    if (pt) {
        /* next to the output: the same file system, and room for it is
         * what the output needs anyway */
        snprintf(tmp, sizeof tmp, "%s.from-pt.tmp.%ld", a->out, (long)getpid());
        TRY(pt_convert(a->from, tmp));
        st_path = tmp;
    }
    model_spec_t spec = {0};
    param_registry_t reg = {0};
    float *arena = NULL;
    safetensors_report_t rep = {0};
    rt_status st = choose_spec(a, st_path, &spec);
    if (st == RT_OK)
        st = spec.kind->declare(spec.cfg, &reg);
    if (st == RT_OK)
        st = host_alloc((void **)&arena, sizeof(float) * (size_t)reg.total);
    if (st == RT_OK) {
        /* the GPT's output head is its token embedding; nanoGPT's
         * state_dict holds it under both names */
        static const safetensors_tie_t gpt_ties[] = {{"lm_head.weight", "transformer.wte.weight"}};
        bool gpt = spec.kind == &model_kind_gpt;
        st = safetensors_read(st_path, &reg, arena, gpt ? gpt_ties : NULL, gpt ? 1 : 0, &rep);
    }
    if (st == RT_ERR_MISMATCH && rep.problems) {
        /* every mismatch, one a line, after the summary (cmd_report's line
         * would cut a long list) */
        fprintf(stderr, "ringtrain import: %s (model %s)%s:\n%s", a->from, spec.text,
                pt ? " (read through its safetensors conversion)" : "", rep.problems);
        fprintf(stderr, "ringtrain import: %d mismatch%s; nothing written\n", rep.nproblems,
                rep.nproblems > 1 ? "es" : "");
        st = rt_fail(RT_ERR_USAGE, "%d mismatch%s against model %s", rep.nproblems,
                     rep.nproblems > 1 ? "es" : "", spec.text);
    } else if (st != RT_OK && st != RT_ERR_NOMEM) {
        st = rt_fail_context(rt_input_status(st), "--from %s", a->from);
    }
    if (st == RT_OK)
        st = write_params(&reg, arena, spec.text, a->out);
    if (st == RT_OK) {
        printf("wrote %s: %d parameters (%lld values) of model %s from %s", a->out, reg.count,
               (long long)param_numel(&reg), spec.text, a->from);
        if (rep.converted)
            printf("; %d tensor%s converted to float32", rep.converted, rep.converted > 1 ? "s" : "");
        printf("\ntrain from it: ringtrain train --model %s --init-params %s ...\n", spec.text, a->out);
    }
    if (pt)
        unlink(tmp);
    safetensors_report_free(&rep);
    host_free(arena);
    param_registry_free(&reg);
    model_spec_free(&spec);
    return st;
}

int cmd_import(int argc, char **argv)
{
    import_args_t a = {0};
    char model_help[256];
    snprintf(model_help, sizeof model_help, "model: %s (default: the file's __metadata__ model_spec)",
             model_kinds_syntax());
    arg_spec specs[] = {
        {"from", ARG_STRING, &a.from, "M.safetensors|M.pt",
         "a state_dict: safetensors, or torch.save's file (.pt/.pth, read through python3 and PyTorch)", true, false},
        {"out", ARG_STRING, &a.out, "F.h5", "the parameters file to write (train --init-params, eval, sample)", true, false},
        {"model", ARG_STRING, &a.model, "SPEC", model_help, false, false},
        {"format", ARG_STRING, &a.format, "safetensors|pt", "the input's format (default: pt for .pt/.pth, else safetensors)", false, false},
    };
    arg_command cmd = {.prog = "ringtrain import",
                       .summary = "Read a PyTorch state_dict with the model's names and shapes into a "
                                  "parameters file that training starts from (train --init-params)."};
    rt_status st = args_parse(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (st == RT_OK && a.format && strcmp(a.format, "pt") && strcmp(a.format, "safetensors"))
        st = rt_fail(RT_ERR_USAGE, "--format '%s' is not safetensors or pt", a.format);
    if (st == RT_OK) {
        rt_hdf5_quiet();
        st = import_run(&a);
    }
    return cmd_report("import", st);
}
