/* cmd_eval.c - `ringtrain eval --ckpt F.h5 --data F.h5`: loss and accuracy
 * of saved parameters over a whole classification dataset, every record
 * exactly once across the ranks (run under mpirun to split the work). Reads
 * the model_spec attribute and /params/<name> that both `train
 * --export-params` files and checkpoints carry; a checkpoint's datasets are
 * checked against their CRC-32C as they are read. */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "collectives/coll.h"
#include "common/args.h"
#include "common/check.h"
#include "common/hdf5_util.h"
#include "launch/commands.h"
#include "launch/eval_set.h"
#include "trainer/ckpt_file.h"
#include "trainer/cpu_env.h"
#include "trainer/export.h"
#include "trainer/mlp.h"
#include "trainer/threads.h"

typedef struct {
    const char *ckpt, *data;
    int batch, threads;
    bool json;
} eval_args_t;

static rt_status eval_args_parse(eval_args_t *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->batch = 500;
    arg_spec specs[] = {
        {"ckpt", ARG_STRING, &a->ckpt, "F.h5", "parameters: a checkpoint or a train --export-params file", true, false},
        {"data", ARG_STRING, &a->data, "F.h5", "classification dataset", true, false},
        {"batch", ARG_INT, &a->batch, "N", "rows per forward per rank (500)", false, false},
        {"threads", ARG_INT, &a->threads, "N", "CPU threads per rank (0: cores / ranks on the node)", false, false},
        {"json", ARG_FLAG, &a->json, NULL, "print one JSON object instead of a line", false, false},
    };
    arg_command cmd = {.prog = "ringtrain eval",
                       .summary = "Loss and accuracy of saved parameters over a whole dataset."};
    TRY(args_parse(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv));
    if (a->batch < 1)
        return rt_fail(RT_ERR_USAGE, "--batch must be at least 1, got %d", a->batch);
    if (a->threads < 0)
        return rt_fail(RT_ERR_USAGE, "--threads must not be negative, got %d", a->threads);
    return RT_OK;
}

typedef struct {
    mlp_t model;
    bool model_ready;
    dataset_t *ds;
    char spec[512];
} eval_run_t;

/* A checkpoint: the spec from its metadata, and every /params dataset read
 * with its CRC-32C checked (a corrupt checkpoint is refused, naming the
 * dataset). */
static rt_status eval_setup_ckpt(eval_run_t *r, const eval_args_t *a, ckpt_reader_t *rd)
{
    mlp_spec_t spec;
    snprintf(r->spec, sizeof r->spec, "%s", ckpt_reader_meta(rd)->model_spec);
    TRY(mlp_spec_parse(r->spec, &spec));
    TRY(eval_set_open(a->data, "data", &spec, &r->ds));
    TRY(mlp_create(&r->model, &spec, a->batch));
    r->model_ready = true;
    const param_set_t *ps = &r->model.params;
    ckpt_array_t arrays[RT_PARAMS_MAX];
    char names[RT_PARAMS_MAX][RT_PARAM_NAME_MAX + 8];
    for (int i = 0; i < ps->count; i++) {
        const param_entry_t *e = &ps->entries[i];
        snprintf(names[i], sizeof names[i], "params/%s", e->name);
        arrays[i] = (ckpt_array_t){.name = names[i], .type = RT_DTYPE_F32, .data = ps->data + e->offset,
                                   .rank = e->ndim};
        for (int k = 0; k < e->ndim; k++)
            arrays[i].dims[k] = e->shape[k];
    }
    if (ckpt_read_arrays(rd, arrays, ps->count) != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "--ckpt");
    return RT_OK;
}

static rt_status eval_setup(eval_run_t *r, const eval_args_t *a)
{
    ckpt_reader_t *rd = NULL;
    if (ckpt_open(a->ckpt, &rd) == RT_OK) {
        rt_status st = eval_setup_ckpt(r, a, rd);
        ckpt_close(rd);
        return st;
    }
    /* not a readable checkpoint: a `train --export-params` file? */
    char why[512];
    snprintf(why, sizeof why, "%s", rt_last_error());
    mlp_spec_t spec;
    if (params_read_spec_h5(a->ckpt, r->spec, sizeof r->spec) != RT_OK) {
        char why_export[512];
        snprintf(why_export, sizeof why_export, "%s", rt_last_error());
        return rt_fail(RT_ERR_USAGE, "--ckpt: neither a checkpoint (%s) nor a parameter export (%s)", why,
                       why_export);
    }
    TRY(mlp_spec_parse(r->spec, &spec));
    TRY(eval_set_open(a->data, "data", &spec, &r->ds));
    TRY(mlp_create(&r->model, &spec, a->batch));
    r->model_ready = true;
    if (params_import_h5(&r->model.params, a->ckpt) != RT_OK)
        return rt_fail_context(RT_ERR_USAGE, "--ckpt");
    return RT_OK;
}

int cmd_eval(int argc, char **argv)
{
    cpu_env_reexec_if_needed();
    eval_args_t args;
    rt_status st = eval_args_parse(&args, argc, argv);
    if (st != RT_OK)
        return cmd_report("eval", st);
    rt_hdf5_quiet();
    eval_run_t run;
    memset(&run, 0, sizeof run);
    coll_comm_t *comm = NULL;
    bool speak = true;
    TRY_GOTO(st, coll_init(&argc, &argv), report);
    TRY_GOTO(st, coll_comm_world(&comm), finalize);
    trainer_set_threads(args.threads ? args.threads : trainer_default_threads(coll_local_size(comm)));
    st = eval_set_agree(comm, eval_setup(&run, &args), &speak);
    if (st == RT_OK) {
        double loss, acc;
        int64_t count;
        speak = coll_rank(comm) == 0;
        st = eval_set_run(&run.model, run.ds, args.batch, comm, &loss, &acc, &count);
        if (st != RT_OK) {
            /* one rank's read error: end the job rather than leave peers waiting */
            fprintf(stderr, "ringtrain eval: rank %d: %s\n", coll_rank(comm), rt_last_error());
            coll_abort(comm, rt_exit_code(st));
        }
        if (speak && args.json)
            printf("{\"model_spec\":\"%s\",\"eval_loss\":%.7g,\"eval_accuracy\":%.7g,\"records\":%lld}\n",
                   run.spec, loss, acc, (long long)count);
        else if (speak)
            printf("eval %s on %s: loss %.4f | accuracy %.4f (%lld records)\n", args.ckpt, args.data,
                   loss, acc, (long long)count);
    }
    if (run.model_ready)
        mlp_free(&run.model);
    dataset_close(run.ds);
    coll_comm_free(comm);
finalize:
    coll_finalize();
report:
    if (!speak)
        return rt_exit_code(st);
    return cmd_report("eval", st);
}
