/* tb_train.c - the training session's TensorBoard tags (see tb_train.h).
 * The tags mirror the metrics file's keys; a key the metrics file leaves
 * out (NaN) has no event either. */
#include "trainer/tensorboard/tb_train.h"

#include <math.h>

#include "common/check.h"

rt_status tb_write_train_step(tb_writer_t *w, const metrics_step_t *m)
{
    const int64_t s = m->step;
    TRY(tb_writer_scalar(w, s, "train/loss", m->loss));
    TRY(tb_writer_scalar(w, s, "train/lr", m->lr));
    TRY(tb_writer_scalar(w, s, "train/grad_norm", m->grad_norm));
    TRY(tb_writer_scalar(w, s, "train/samples_per_s", m->samples_per_s));
    TRY(tb_writer_scalar(w, s, "train/epoch", m->epoch));
    if (!isnan(m->tokens_per_s))
        TRY(tb_writer_scalar(w, s, "train/tokens_per_s", m->tokens_per_s));
    if (!isnan(m->bits_per_byte))
        TRY(tb_writer_scalar(w, s, "train/bits_per_byte", m->bits_per_byte));
    if (!isnan(m->mfu))
        TRY(tb_writer_scalar(w, s, "train/mfu", m->mfu));
    if (!isnan(m->comm_exposed_ms))
        TRY(tb_writer_scalar(w, s, "comm/exposed_ms", m->comm_exposed_ms));
    return tb_writer_flush(w);
}

rt_status tb_write_eval(tb_writer_t *w, int64_t step, double loss, double accuracy,
                        double bits_per_byte)
{
    TRY(tb_writer_scalar(w, step, "eval/loss", loss));
    if (!isnan(accuracy))
        TRY(tb_writer_scalar(w, step, "eval/accuracy", accuracy));
    if (!isnan(bits_per_byte))
        TRY(tb_writer_scalar(w, step, "eval/bits_per_byte", bits_per_byte));
    return tb_writer_flush(w);
}
