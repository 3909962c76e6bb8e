/* grad_plan.c - buckets of the gradient arena (see grad_plan.h). */
#include "trainer/optim/grad_plan.h"

#include "common/check.h"

rt_status grad_plan_make(grad_plan_t *p, const param_registry_t *reg, double bucket_mb)
{
    CHECK_ARG(bucket_mb > 0.0, "gradient buckets of %g MiB", bucket_mb);
    p->bucket = (int64_t)(bucket_mb * 1048576.0 / sizeof(float));
    if (p->bucket < 1)
        p->bucket = 1;
    p->total = reg->total;
    p->count = (p->total + p->bucket - 1) / p->bucket;
    return RT_OK;
}

void grad_plan_bucket(const grad_plan_t *p, int64_t k, int64_t *lo, int64_t *hi)
{
    *lo = k * p->bucket;
    *hi = *lo + p->bucket < p->total ? *lo + p->bucket : p->total;
}
