/* cmd_eval.c - `ringtrain eval --ckpt F.h5 --data F.h5`: flags into an
 * evaluation config and one library call (trainer/run/evaluate.h) on every
 * rank; run it under mpirun to split the work. Loss and accuracy of saved
 * parameters (a checkpoint, every dataset's CRC-32C checked, or a `train
 * --export-params` file) over a whole dataset, every record exactly once. */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "collectives/coll.h"
#include "common/args.h"
#include "common/check.h"
#include "common/hdf5_util.h"
#include "launch/commands.h"
#include "trainer/ops/cpu_env.h"
#include "trainer/ops/cpu_threads.h"
#include "trainer/run/evaluate.h"

static rt_status eval_flags_parse(eval_config_t *c, bool *json, int argc, char **argv)
{
    memset(c, 0, sizeof *c);
    c->batch = 0;
    arg_spec specs[] = {
        {"ckpt", ARG_STRING, &c->ckpt, "F.h5", "parameters: a checkpoint or a train --export-params file", true, false},
        {"data", ARG_STRING, &c->data, "F.h5", "dataset: classification records, or tokens for a token model", true, false},
        {"batch", ARG_INT, &c->batch, "N", "records or token windows per forward per rank (500 or 8)", false, false},
        {"threads", ARG_INT, &c->threads, "N", "CPU threads per rank (0: cores / ranks on the node)", false, false},
        {"json", ARG_FLAG, json, NULL, "print one JSON object instead of a line", false, false},
    };
    arg_command cmd = {.prog = "ringtrain eval",
                       .summary = "Loss and accuracy of saved parameters over a whole dataset."};
    TRY(args_parse(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv));
    if (c->batch < 0 || (c->batch == 0 && specs[2].seen))
        return rt_fail(RT_ERR_USAGE, "--batch must be at least 1, got %d", c->batch);
    if (c->threads < 0 || c->threads > CPU_MAX_THREADS)
        return rt_fail(RT_ERR_USAGE,
                       "--threads must be in 0..%d (0: cores / ranks on the node), got %d",
                       CPU_MAX_THREADS, c->threads);
    return RT_OK;
}

/* A line, or one JSON object: for a token model the loss is in nats per
 * token over every window (bits per byte too where tokens are bytes). */
static void print_result(const eval_config_t *cfg, const eval_result_t *r, bool json)
{
    const double bpb = r->loss / 0.69314718055994530942;
    if (json && r->tokens) {
        printf("{\"model_spec\":\"%s\",\"eval_loss\":%.9g,", r->model_spec, r->loss);
        if (r->byte_level)
            printf("\"eval_bits_per_byte\":%.9g,", bpb);
        printf("\"windows\":%lld}\n", (long long)r->records);
    } else if (json) {
        printf("{\"model_spec\":\"%s\",\"eval_loss\":%.9g,\"eval_accuracy\":%.9g,\"records\":%lld}\n",
               r->model_spec, r->loss, r->accuracy, (long long)r->records);
    } else if (r->tokens) {
        printf("eval %s on %s: loss %.4f nats/token", cfg->ckpt, cfg->data, r->loss);
        if (r->byte_level)
            printf(" | %.4f bits/byte", bpb);
        printf(" (%lld windows)\n", (long long)r->records);
    } else {
        printf("eval %s on %s: loss %.4f | accuracy %.4f (%lld records)\n", cfg->ckpt, cfg->data,
               r->loss, r->accuracy, (long long)r->records);
    }
}

int cmd_eval(int argc, char **argv)
{
    cpu_env_reexec_if_needed();
    eval_config_t cfg;
    bool json = false;
    rt_status st = eval_flags_parse(&cfg, &json, argc, argv);
    if (st != RT_OK)
        return cmd_report("eval", st);
    rt_hdf5_quiet();
    coll_comm_t *comm = NULL;
    eval_result_t res;
    session_outcome_t out = {.speak = true, .consistent = true};
    TRY_GOTO(st, coll_init(&argc, &argv), report);
    TRY_GOTO(st, coll_comm_world(&comm), finalize);
    st = evaluate_run(&cfg, comm, &res, &out);
    if (st != RT_OK && !out.consistent) {
        /* one rank's read error: end the job rather than leave peers waiting */
        fprintf(stderr, "ringtrain eval: rank %d: %s\n", coll_rank(comm), rt_last_error());
        coll_abort(comm, rt_exit_code(st));
    }
    if (st == RT_OK && out.speak)
        print_result(&cfg, &res, json);
    coll_comm_free(comm);
finalize:
    coll_finalize();
report:
    if (!out.speak) {
        cmd_exit_if_out_of_memory(st);
        return rt_exit_code(st);
    }
    return cmd_report("eval", st);
}
