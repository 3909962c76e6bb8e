/* ckpt_resume.c - the rule for resuming on a different number of ranks:
 * the global batch (per-rank batch x ranks) of the checkpoint is kept, so
 * the optimizer sees the same batches, and the sampler's position (counted
 * in samples of the global order) means the same thing. */
#include <inttypes.h>
#include <stdio.h>

#include "common/check.h"
#include "trainer/ckpt/ckpt_file.h"

rt_status ckpt_resume_batch(int64_t ckpt_world, int64_t ckpt_batch, int64_t world, int64_t batch_flag,
                            int64_t *batch_out)
{
    CHECK_ARG(ckpt_world > 0 && ckpt_batch > 0 && world > 0 && batch_flag >= 0 && batch_out,
              "ckpt_resume_batch: bad arguments (%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 ")",
              ckpt_world, ckpt_batch, world, batch_flag);
    int64_t global = ckpt_world * ckpt_batch;
    if (batch_flag > 0) {
        if (batch_flag * world == global) {
            *batch_out = batch_flag;
            return RT_OK;
        }
        char hint[96];
        if (global % world == 0)
            snprintf(hint, sizeof hint, "use --batch %" PRId64 " (or leave it out)", global / world);
        else
            snprintf(hint, sizeof hint, "use a rank count that divides %" PRId64, global);
        return rt_fail(RT_ERR_MISMATCH,
                       "the checkpoint's global batch is %" PRId64 " (%" PRId64 " per rank x %" PRId64
                       " ranks); --batch %" PRId64 " with %" PRId64 " ranks gives %" PRId64 "; %s",
                       global, ckpt_batch, ckpt_world, batch_flag, world, batch_flag * world, hint);
    }
    if (global % world != 0)
        return rt_fail(RT_ERR_MISMATCH,
                       "the checkpoint's global batch %" PRId64 " (%" PRId64 " per rank x %" PRId64
                       " ranks) cannot be split evenly over %" PRId64 " ranks; use a rank count that divides %" PRId64,
                       global, ckpt_batch, ckpt_world, world, global);
    *batch_out = global / world;
    return RT_OK;
}
