/* grad_plan.c - buckets and ZeRO shards of the gradient arena (see
 * grad_plan.h). */
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
    /* the first slice's halvings that lie inside it and the arena */
    const int64_t first = p->bucket < p->total ? p->bucket : p->total;
    p->head = 0;
    for (int h = GRAD_PLAN_HEAD; h >= 1; h--) {
        const int64_t b = p->bucket >> h;
        if (b >= 1 && b < first && (p->head == 0 || b > p->cut[p->head - 1]))
            p->cut[p->head++] = b;
    }
    p->count += p->head;
    return RT_OK;
}

void grad_plan_bucket(const grad_plan_t *p, int64_t k, int64_t *lo, int64_t *hi)
{
    if (k <= p->head) {  /* inside the first slice */
        const int64_t first = p->bucket < p->total ? p->bucket : p->total;
        *lo = k == 0 ? 0 : p->cut[k - 1];
        *hi = k < p->head ? p->cut[k] : first;
        return;
    }
    *lo = (k - p->head) * p->bucket;
    *hi = *lo + p->bucket < p->total ? *lo + p->bucket : p->total;
}

void grad_plan_shard(int64_t total, int n, int r, int64_t *lo, int64_t *hi)
{
    int64_t per = n > 0 ? (total + n - 1) / n : total;
    per = (per + GRAD_SHARD_ALIGN - 1) / GRAD_SHARD_ALIGN * GRAD_SHARD_ALIGN;
    const int64_t a = (int64_t)r * per;
    *lo = a < total ? a : total;
    *hi = a + per < total ? a + per : total;
}

void grad_plan_shard_counts(int64_t total, int n, int64_t lo, int64_t hi, size_t *counts)
{
    for (int q = 0; q < n; q++) {
        int64_t a, b;
        grad_plan_shard(total, n, q, &a, &b);
        a = a > lo ? a : lo;
        b = b < hi ? b : hi;
        counts[q] = b > a ? (size_t)(b - a) : 0;
    }
}
