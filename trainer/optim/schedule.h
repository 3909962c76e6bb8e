/* schedule.h - learning-rate schedules, as a pure function of the step:
 *   warmup: for step s < W (0-based), lr = base * (s + 1) / W;
 *   constant: base afterwards;
 *   cosine: base * 0.5 * (1 + cos(pi * p)), p = (s - W) / (T - W), from base
 *   at s = W down to 0 at s = T (the total steps); p is clamped to [0, 1].
 * The same formula is restated in the PyTorch parity test. */
#ifndef RT_TRAINER_OPTIM_SCHEDULE_H
#define RT_TRAINER_OPTIM_SCHEDULE_H

#include <stdint.h>

#include "common/status.h"

typedef enum { SCHED_CONSTANT, SCHED_COSINE } sched_kind;

typedef struct {
    sched_kind kind;
    double base_lr;
    int64_t warmup;  /* steps */
    int64_t total;   /* steps of the whole run (cosine) */
} schedule_t;

rt_status sched_kind_parse(const char *name, sched_kind *out);
const char *sched_kind_name(sched_kind kind);
double schedule_lr(const schedule_t *s, int64_t step);

#endif
