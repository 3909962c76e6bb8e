/* device.c - opening a device and the device_* calls, which forward to the
 * device kind's runtime table (see device.h). */
#include "trainer/ops/device.h"

#include <stdlib.h>

#include "common/check.h"

rt_status device_open(rt_device_t **out, const device_config_t *cfg)
{
    CHECK_ARG(out && cfg, "device_open: NULL argument");
    *out = NULL;
    rt_device_t *d = calloc(1, sizeof *d);
    CHECK_ALLOC(d, sizeof *d);
    d->kind = cfg->kind;
    d->ordinal = cfg->ordinal;
    rt_status st = RT_OK;
    if (cfg->kind == RT_DEVICE_CPU) {
        d->ops = &rt_ops_cpu;
        d->impl = &device_impl_cpu;
    } else if (cfg->kind == RT_DEVICE_CUDA) {
        st = device_cuda_open(d, cfg);
    } else {
        st = rt_fail(RT_ERR_INVALID, "device_open: unknown device kind %d", (int)cfg->kind);
    }
    if (st != RT_OK) {
        free(d);
        return st;
    }
    *out = d;
    return RT_OK;
}

void device_close(rt_device_t *d)
{
    if (!d)
        return;
    if (d->impl && d->impl->close)
        d->impl->close(d);
    free(d);
}

rt_status device_count(rt_device_kind kind, int *count)
{
    *count = 0;
    if (kind == RT_DEVICE_CPU) {
        *count = 1;
        return RT_OK;
    }
    return device_cuda_count(count);
}

const char *device_name(const rt_device_t *d)
{
    return d->impl->name;
}

bool device_is_host(const rt_device_t *d)
{
    return d->impl->host_memory;
}

rt_status device_alloc(rt_device_t *d, void **ptr, size_t bytes, const char *what)
{
    rt_status st = d->impl->alloc(d, ptr, bytes);
    if (st != RT_OK)
        return rt_fail_context(st, "%s: %zu bytes for %s", device_name(d), bytes, what);
    return RT_OK;
}

void device_free(rt_device_t *d, void *ptr)
{
    if (ptr)
        d->impl->free(d, ptr);
}

rt_status device_zero(rt_device_t *d, void *ptr, size_t bytes)
{
    return bytes ? d->impl->fill(d, ptr, 0, bytes) : RT_OK;
}

rt_status device_fill(rt_device_t *d, void *ptr, int byte, size_t bytes)
{
    return bytes ? d->impl->fill(d, ptr, byte, bytes) : RT_OK;
}

rt_status device_upload(rt_device_t *d, void *dst, const void *src, size_t bytes)
{
    return bytes ? d->impl->to_device(d, dst, src, bytes) : RT_OK;
}

rt_status device_download(rt_device_t *d, void *dst, const void *src, size_t bytes)
{
    return bytes ? d->impl->to_host(d, dst, src, bytes) : RT_OK;
}

rt_status device_sync(rt_device_t *d)
{
    return d->impl->sync(d);
}

void *device_stream(const rt_device_t *d)
{
    return d->impl->stream(d);
}

bool device_graphs_supported(const rt_device_t *d)
{
    return d->impl->graphs;
}

rt_status device_capture_begin(rt_device_t *d)
{
    if (!d->impl->graphs)
        return rt_fail(RT_ERR_UNSUPPORTED, "%s: no graph capture", device_name(d));
    return d->impl->capture_begin(d);
}

rt_status device_capture_end(rt_device_t *d, rt_status body, rt_graph_t **out)
{
    return d->impl->capture_end(d, body, out);
}

rt_status device_graph_launch(rt_device_t *d, rt_graph_t *g)
{
    return d->impl->graph_launch(d, g);
}

void device_graph_free(rt_device_t *d, rt_graph_t *g)
{
    if (g)
        d->impl->graph_free(d, g);
}

struct device_stager {
    rt_device_t *dev;
    int slots;
    void *state;  /* the device kind's */
};

rt_status device_stager_create(rt_device_t *d, int slots, size_t input_bytes,
                               size_t target_bytes, device_stager_t **out)
{
    CHECK_ARG(slots >= 1, "device_stager_create: %d slots", slots);
    *out = NULL;
    device_stager_t *s = calloc(1, sizeof *s);
    CHECK_ALLOC(s, sizeof *s);
    s->dev = d;
    s->slots = slots;
    rt_status st = d->impl->stager_create(d, slots, input_bytes, target_bytes, &s->state);
    if (st != RT_OK) {
        free(s);
        return st;
    }
    *out = s;
    return RT_OK;
}

rt_status device_stager_put(device_stager_t *s, int slot, const void *input, size_t input_bytes,
                            const void *target, size_t target_bytes, void **dev_input,
                            void **dev_target)
{
    CHECK_ARG(slot >= 0 && slot < s->slots, "device_stager_put: slot %d of %d", slot, s->slots);
    return s->dev->impl->stager_put(s->dev, s->state, slot, input, input_bytes, target,
                                    target_bytes, dev_input, dev_target);
}

rt_status device_stager_release(device_stager_t *s, int slot, double timeout_s)
{
    CHECK_ARG(slot >= 0 && slot < s->slots, "device_stager_release: slot %d of %d", slot,
              s->slots);
    return s->dev->impl->stager_release(s->dev, s->state, slot, timeout_s);
}

void device_stager_destroy(device_stager_t *s)
{
    if (!s)
        return;
    s->dev->impl->stager_destroy(s->dev, s->state);
    free(s);
}

struct device_timer {
    rt_device_t *dev;
    void *state;  /* the device kind's */
};

rt_status device_timer_create(rt_device_t *d, device_timer_t **out)
{
    *out = NULL;
    device_timer_t *t = calloc(1, sizeof *t);
    CHECK_ALLOC(t, sizeof *t);
    t->dev = d;
    rt_status st = d->impl->timer_create(d, &t->state);
    if (st != RT_OK) {
        free(t);
        return st;
    }
    *out = t;
    return RT_OK;
}

rt_status device_timer_start(device_timer_t *t)
{
    return t->dev->impl->timer_record(t->dev, t->state, 0);
}

rt_status device_timer_stop(device_timer_t *t)
{
    return t->dev->impl->timer_record(t->dev, t->state, 1);
}

rt_status device_timer_elapsed(device_timer_t *t, double *seconds)
{
    return t->dev->impl->timer_elapsed(t->dev, t->state, seconds);
}

void device_timer_destroy(device_timer_t *t)
{
    if (!t)
        return;
    t->dev->impl->timer_destroy(t->dev, t->state);
    free(t);
}

struct device_side {
    rt_device_t *dev;
    void *state;  /* the device kind's */
};

rt_status device_side_create(rt_device_t *d, device_side_t **out)
{
    *out = NULL;
    if (!d->impl->side_create)
        return rt_fail(RT_ERR_UNSUPPORTED, "device %s has no side stream", device_name(d));
    device_side_t *s = calloc(1, sizeof *s);
    CHECK_ALLOC(s, sizeof *s);
    s->dev = d;
    rt_status st = d->impl->side_create(d, &s->state);
    if (st != RT_OK) {
        free(s);
        return st;
    }
    *out = s;
    return RT_OK;
}

void *device_side_stream(const device_side_t *s)
{
    return s->dev->impl->side_stream(s->state);
}

rt_status device_side_fork(device_side_t *s)
{
    return s->dev->impl->side_order(s->dev, s->state, 0);
}

rt_status device_side_join(device_side_t *s)
{
    return s->dev->impl->side_order(s->dev, s->state, 1);
}

void device_side_destroy(device_side_t *s)
{
    if (!s)
        return;
    s->dev->impl->side_destroy(s->dev, s->state);
    free(s);
}
