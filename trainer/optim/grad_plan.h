/* grad_plan.h - the gradient-sync plan, derived from the parameter
 * registry: the gradient arena cut into buckets, reduced from the last to
 * the first because backward finishes the arena from its end (the last
 * layer first). The buckets are the fixed slices [k*S, (k+1)*S) of S
 * elements (from --bucket-mb), except that the first slice [0, S) is cut
 * in halves down to S/8: [0, S/8), [S/8, S/4), [S/4, S/2), [S/2, S).
 * The start of the arena is what backward finishes last, so its exchange
 * is the part that cannot overlap backward; small buckets there shrink it
 * to one eighth of a bucket (PyTorch DDP makes its first-reduced bucket
 * small for the mirror reason: to start early). A bucket may span
 * parameters or cut one: the reduction is elementwise, so only the moment
 * a bucket can start depends on where it lies. A bucket can start once
 * backward has made everything from its start on final.
 *
 * ZeRO-1 partitions the same arena among the ranks instead: rank r of n
 * owns the contiguous shard [r*S, min((r+1)*S, total)), S being total/n
 * rounded up to a multiple of GRAD_SHARD_ALIGN elements (64 bytes, so that
 * every shard starts aligned for vector loads); the last shards may be
 * shorter, or empty for tiny arenas. The shards need not divide the arena
 * evenly: uneven ones are padded, never refused. */
#ifndef RT_TRAINER_OPTIM_GRAD_PLAN_H
#define RT_TRAINER_OPTIM_GRAD_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "trainer/model/params.h"

#define GRAD_PLAN_HEAD 3  /* halvings of the first slice */

typedef struct {
    int64_t bucket;   /* S: elements of a full bucket (the last may be shorter) */
    int64_t total;    /* elements of the arena */
    int64_t count;    /* buckets */
    int head;         /* buckets the first slice is cut into, less one */
    int64_t cut[GRAD_PLAN_HEAD]; /* their inner boundaries, ascending */
} grad_plan_t;

/* Buckets of bucket_mb MiB of float32 (at least one element). */
rt_status grad_plan_make(grad_plan_t *p, const param_registry_t *reg, double bucket_mb);
/* Bucket k's range [*lo, *hi). */
void grad_plan_bucket(const grad_plan_t *p, int64_t k, int64_t *lo, int64_t *hi);

#define GRAD_SHARD_ALIGN 16
/* Rank r's shard [*lo, *hi) of an arena of total elements over n ranks. */
void grad_plan_shard(int64_t total, int n, int r, int64_t *lo, int64_t *hi);
/* counts[q] = the elements of [lo, hi) that lie in rank q's shard, for q
 * in 0..n-1: the chunks of a reduce-scatter or all-gather of that range. */
void grad_plan_shard_counts(int64_t total, int n, int64_t lo, int64_t hi, size_t *counts);

#endif
