/* ckpt_snapshot.c - the reusable copy of the state an asynchronous
 * checkpoint writes (see ckpt_snapshot.h). */
#define _POSIX_C_SOURCE 200809L /* strdup, posix_memalign */
#include "trainer/run/ckpt_snapshot.h"

#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "common/log.h"
#include "trainer/ops/tensor.h"

/* The alignment of the host buffers: O_DIRECT's (trainer/ckpt/ckpt_direct.c). */
#define SNAPSHOT_ALIGN 4096u

static void buffer_free(ckpt_snapshot_t *s, float *p)
{
    if (s->pinned)
        device_pinned_free(p, &s->ordinal);
    else
        free(p);
}

static rt_status buffer_alloc(ckpt_snapshot_t *s, float **out)
{
    const size_t bytes = sizeof(float) * (size_t)s->total;
    *out = NULL;
    if (s->pinned) {
        *out = device_pinned_alloc(bytes, &s->ordinal);
        if (*out) {
            memset(*out, 0, bytes);
            return RT_OK;
        }
        return RT_ERR_NOMEM;  /* the caller falls back to host memory */
    }
    /* Page-aligned: a tensor that starts on a page of the arena then lies
     * in memory the way it will in the file (whose large datasets start on
     * 4 KiB boundaries), and the O_DIRECT writer sends it to the disk from
     * here without copying it again (ckpt_dio_write checks each array, and
     * copies the others). Rounded up to whole pages so that no other
     * allocation shares the last one; the writer never reads past an array
     * (its partial pages go through the page cache). Pinned memory
     * (cudaHostAlloc) is page-aligned in practice. */
    const size_t padded = (bytes + SNAPSHOT_ALIGN - 1) / SNAPSHOT_ALIGN * SNAPSHOT_ALIGN;
    void *p = NULL;
    if (padded > 0 && posix_memalign(&p, SNAPSHOT_ALIGN, padded) != 0)
        p = NULL;
    if (p)
        memset(p, 0, padded);  /* every page touched */
    *out = p;
    if (padded > 0 && !p)
        return rt_fail(RT_ERR_NOMEM,
                       "cannot allocate %.1f MB for the asynchronous checkpoint's copy of the state "
                       "(--ckpt-write sync needs none)",
                       (double)bytes * (1 + s->nstate) / 1e6);
    return RT_OK;
}

rt_status ckpt_snapshot_alloc(ckpt_snapshot_t *s, const rt_device_t *dev, int ordinal,
                              int64_t total, int nstate)
{
    memset(s, 0, sizeof *s);
    CHECK_ARG(total >= 0 && nstate >= 0 && nstate <= 2, "ckpt_snapshot_alloc: %lld floats, %d arrays",
              (long long)total, nstate);
    s->total = total;
    s->nstate = nstate;
    s->ordinal = ordinal;
    s->pinned = dev && !device_is_host(dev);
    for (int pass = 0; pass < 2; pass++) {
        rt_status st = buffer_alloc(s, &s->params);
        for (int i = 0; st == RT_OK && i < nstate; i++)
            st = buffer_alloc(s, &s->state[i]);
        if (st == RT_OK)
            return RT_OK;
        const bool was_pinned = s->pinned;
        ckpt_snapshot_free(s);
        s->total = total;
        s->nstate = nstate;
        s->ordinal = ordinal;
        if (!was_pinned)
            return st;
        LOG_WARN("no page-locked memory for the asynchronous checkpoint's copy of the state "
                 "(%.1f MB): using pageable memory, which copies from the GPU more slowly",
                 (double)sizeof(float) * (double)total * (1 + nstate) / 1e6);
    }
    return RT_OK;
}

rt_status ckpt_snapshot_set_meta(ckpt_snapshot_t *s, int64_t step, int64_t epoch,
                                 const char *model_spec, const char *config_json, int64_t world)
{
    free(s->config);
    free(s->model_spec);
    s->config = strdup(config_json);
    s->model_spec = strdup(model_spec);
    if (!s->config || !s->model_spec)
        return rt_fail(RT_ERR_NOMEM, "cannot allocate the checkpoint's metadata");
    s->meta = (ckpt_meta_t){.step = step, .epoch = epoch, .model_spec = s->model_spec,
                            .config_json = s->config, .world_size = world};
    return RT_OK;
}

void ckpt_snapshot_free(ckpt_snapshot_t *s)
{
    buffer_free(s, s->params);
    for (int i = 0; i < 2; i++)
        buffer_free(s, s->state[i]);
    ckpt_state_free(&s->list);
    free(s->config);
    free(s->model_spec);
    memset(s, 0, sizeof *s);
}
