/* schedule.c - learning rate as a function of the step (see schedule.h). */
#include "trainer/optim/schedule.h"

#include <math.h>
#include <string.h>

#define SCHED_PI 3.14159265358979323846

rt_status sched_kind_parse(const char *name, sched_kind *out)
{
    if (!strcmp(name, "constant"))
        *out = SCHED_CONSTANT;
    else if (!strcmp(name, "cosine"))
        *out = SCHED_COSINE;
    else
        return rt_fail(RT_ERR_USAGE, "unknown schedule '%s' (constant or cosine)", name);
    return RT_OK;
}

const char *sched_kind_name(sched_kind kind)
{
    return kind == SCHED_COSINE ? "cosine" : "constant";
}

double schedule_lr(const schedule_t *s, int64_t step)
{
    if (step < s->warmup)
        return s->base_lr * (double)(step + 1) / (double)s->warmup;
    if (s->kind == SCHED_CONSTANT)
        return s->base_lr;
    int64_t span = s->total - s->warmup;
    double p = span > 0 ? (double)(step - s->warmup) / (double)span : 1.0;
    p = p < 0.0 ? 0.0 : (p > 1.0 ? 1.0 : p);
    return s->base_lr * 0.5 * (1.0 + cos(SCHED_PI * p));
}
