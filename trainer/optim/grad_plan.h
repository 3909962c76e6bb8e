/* grad_plan.h - the gradient-sync plan, derived from the parameter
 * registry: the gradient arena cut into buckets, the fixed slices
 * [k*S, (k+1)*S) of S elements (from --bucket-mb), reduced from the last
 * to the first because backward finishes the arena from its end (the last
 * layer first). A bucket may span parameters or cut one: the all-reduce is
 * elementwise, so only the moment a bucket can start depends on where it
 * lies. Bucket k can start once backward has made everything from k*S on
 * final. */
#ifndef RT_TRAINER_OPTIM_GRAD_PLAN_H
#define RT_TRAINER_OPTIM_GRAD_PLAN_H

#include <stdint.h>

#include "common/status.h"
#include "trainer/model/params.h"

typedef struct {
    int64_t bucket;   /* elements per bucket (the last may be shorter) */
    int64_t total;    /* elements of the arena */
    int64_t count;    /* buckets */
} grad_plan_t;

/* Buckets of bucket_mb MiB of float32 (at least one element). */
rt_status grad_plan_make(grad_plan_t *p, const param_registry_t *reg, double bucket_mb);
/* Bucket k's range [*lo, *hi). */
void grad_plan_bucket(const grad_plan_t *p, int64_t k, int64_t *lo, int64_t *hi);

#endif
