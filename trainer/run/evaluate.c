/* evaluate.c - saved parameters over a dataset (see evaluate.h). */
#include "trainer/run/evaluate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "trainer/ops/cpu_threads.h"
#include "trainer/run/agree.h"
#include "trainer/run/eval.h"
#include "trainer/run/host_batch.h"
#include "trainer/run/saved_model.h"

typedef struct {
    saved_model_t saved;
    dataset_t *ds;
    int batch;
} evaluation_t;

/* The saved model, the dataset checked against it, the CPU instance. A
 * batch of 0 is the default: 500 records, or 8 token windows (a window's
 * activations are ctx rows). */
static rt_status setup(evaluation_t *e, const eval_config_t *cfg, int threads)
{
    TRY(saved_model_load(&e->saved, cfg->ckpt, "ckpt"));
    TRY(host_batch_dataset_open(cfg->data, "data", &e->saved.io, &e->ds));
    e->batch = cfg->batch ? cfg->batch : e->saved.io.batch == RT_BATCH_TOKENS ? 8 : 500;
    TRY(saved_model_open(&e->saved, e->batch));
    /* after the large allocations, before the first product (cpu_threads.h) */
    return cpu_set_threads(threads);
}

static void evaluation_free(evaluation_t *e)
{
    saved_model_free(&e->saved);
    dataset_close(e->ds);
}

rt_status evaluate_run(const eval_config_t *cfg, coll_comm_t *comm, eval_result_t *res,
                       session_outcome_t *outcome)
{
    memset(res, 0, sizeof *res);
    memset(outcome, 0, sizeof *outcome);
    outcome->speak = true;
    outcome->consistent = true;
    CHECK_ARG(cfg->batch >= 0, "evaluate_run: batch %d", cfg->batch);
    const int threads = cfg->threads ? cfg->threads
                                     : cpu_default_threads(comm ? coll_local_size(comm) : 1);
    evaluation_t e;
    memset(&e, 0, sizeof e);
    bool speak = true;
    rt_status st = ranks_agree(comm, setup(&e, cfg, threads), &speak);
    if (st == RT_OK) {
        speak = !comm || coll_rank(comm) == 0;
        if (speak)
            host_batch_note_unchecked(e.ds);
        snprintf(res->model_spec, sizeof res->model_spec, "%s", e.saved.spec.text);
        res->tokens = e.saved.io.batch == RT_BATCH_TOKENS;
        res->byte_level = res->tokens && dataset_info(e.ds)->input_type == RT_DTYPE_U8 &&
                          dataset_info(e.ds)->vocab_size == 256;
        st = eval_dataset(&e.saved.model, e.ds, e.batch, comm, &res->loss, &res->accuracy,
                          &res->records);
        if (st != RT_OK) {
            /* one rank's read error: the others may wait in the all-reduce */
            outcome->consistent = false;
            speak = true;
        }
    }
    outcome->speak = speak;
    evaluation_free(&e);
    return st;
}
