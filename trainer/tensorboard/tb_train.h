/* tb_train.h - what `ringtrain train --tensorboard` logs: the tags of a
 * logged step's figures and of an evaluation (docs/TRAINING.md,
 * "TensorBoard"), each at the step, each call ending with a flush so that
 * a crash loses at most the current logging interval. */
#ifndef RT_TRAINER_TENSORBOARD_TB_TRAIN_H
#define RT_TRAINER_TENSORBOARD_TB_TRAIN_H

#include "trainer/run/metrics.h"
#include "trainer/tensorboard/tb_writer.h"

/* train/loss, train/lr, train/grad_norm, train/samples_per_s,
 * train/epoch; where the metrics have them (not NaN): train/tokens_per_s,
 * train/bits_per_byte, train/mfu, comm/exposed_ms. */
rt_status tb_write_train_step(tb_writer_t *w, const metrics_step_t *m);

/* eval/loss; eval/accuracy and eval/bits_per_byte where not NaN. */
rt_status tb_write_eval(tb_writer_t *w, int64_t step, double loss, double accuracy,
                        double bits_per_byte);

#endif
