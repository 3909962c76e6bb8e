/* device.h - where the trainer's memory lives and its ops run: the host CPU
 * or one CUDA device, behind one interface, so that models, the optimizer
 * and the training step are written once. A device is its op table (ops.h:
 * the math) plus its runtime: memory, ordering (a GPU runs everything on
 * one stream, in call order; the CPU runs each call to completion), copies
 * to and from the host, CUDA graph capture, and the staging of input
 * batches. Device memory of the CPU device is host memory, so callers can
 * skip host mirrors (device_is_host).
 *
 * A build without CUDA has one stub (device_cuda_stub.c): opening a CUDA
 * device fails with RT_ERR_UNSUPPORTED and device_count() reports none, so
 * no caller needs an #ifdef. */
#ifndef RT_TRAINER_OPS_DEVICE_H
#define RT_TRAINER_OPS_DEVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/status.h"
#include "trainer/ops/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { RT_DEVICE_CPU = 0, RT_DEVICE_CUDA = 1 } rt_device_kind;

typedef struct {
    rt_device_kind kind;
    int ordinal;   /* CUDA device ordinal */
    bool tf32;     /* CUDA: allow TF32 tensor cores in fp32 matrix products */
} device_config_t;

typedef struct rt_graph rt_graph_t;
typedef struct device_stager device_stager_t;
typedef struct device_timer device_timer_t;
typedef struct device_side device_side_t;

/* The runtime half of a device (one per kind; see device_cpu.c and
 * device_cuda.cu). Reached through the device_* functions below. */
typedef struct device_impl {
    const char *name;     /* "cpu", "cuda" */
    bool host_memory;     /* device memory is host memory */
    bool graphs;          /* supports CUDA graph capture */
    rt_status (*alloc)(rt_device_t *d, void **ptr, size_t bytes);
    void (*free)(rt_device_t *d, void *ptr);
    rt_status (*fill)(rt_device_t *d, void *ptr, int byte, size_t bytes);
    rt_status (*to_device)(rt_device_t *d, void *dst, const void *src, size_t bytes);
    rt_status (*to_host)(rt_device_t *d, void *dst, const void *src, size_t bytes);
    rt_status (*sync)(rt_device_t *d);
    void *(*stream)(const rt_device_t *d);
    rt_status (*capture_begin)(rt_device_t *d);
    rt_status (*capture_end)(rt_device_t *d, rt_status body, rt_graph_t **out);
    rt_status (*graph_launch)(rt_device_t *d, rt_graph_t *g);
    void (*graph_free)(rt_device_t *d, rt_graph_t *g);
    /* stagers: `state` is the kind's own (NULL for the CPU) */
    rt_status (*stager_create)(rt_device_t *d, int slots, size_t input_bytes,
                               size_t target_bytes, void **state);
    rt_status (*stager_put)(rt_device_t *d, void *state, int slot, const void *input,
                            size_t input_bytes, const void *target, size_t target_bytes,
                            void **dev_input, void **dev_target);
    rt_status (*stager_release)(rt_device_t *d, void *state, int slot, double timeout_s);
    void (*stager_destroy)(rt_device_t *d, void *state);
    /* timers: `state` is the kind's own */
    rt_status (*timer_create)(rt_device_t *d, void **state);
    rt_status (*timer_record)(rt_device_t *d, void *state, int stop);
    rt_status (*timer_elapsed)(rt_device_t *d, void *state, double *seconds);
    void (*timer_destroy)(rt_device_t *d, void *state);
    /* a side stream (NULL where the kind has none: the CPU) */
    rt_status (*side_create)(rt_device_t *d, void **state);
    void *(*side_stream)(void *state);
    rt_status (*side_order)(rt_device_t *d, void *state, int join);
    void (*side_destroy)(rt_device_t *d, void *state);
    void (*close)(rt_device_t *d);
} device_impl_t;

struct rt_device {
    rt_device_kind kind;
    int ordinal;
    const rt_ops_t *ops;        /* the math */
    const device_impl_t *impl;  /* the runtime */
    void *backend;              /* CUDA: the context (stream, cuBLAS handle, scratch) */
};

/* Opens a device: the CPU always; CUDA selects the ordinal and creates its
 * stream, cuBLAS handle and workspace. */
rt_status device_open(rt_device_t **out, const device_config_t *cfg);
void device_close(rt_device_t *d);  /* NULL is ignored */

/* Visible devices of a kind: 1 for the CPU; CUDA devices (0 without a driver,
 * a device, or the CUDA build: "no GPU" is an answer, not an error). */
rt_status device_count(rt_device_kind kind, int *count);
/* True when this binary has the CUDA path. */
bool device_cuda_compiled(void);

const char *device_name(const rt_device_t *d);
bool device_is_host(const rt_device_t *d);

/* Zeroed device memory; `what` names it in an out-of-memory message. */
rt_status device_alloc(rt_device_t *d, void **ptr, size_t bytes, const char *what);
void device_free(rt_device_t *d, void *ptr);  /* NULL is ignored */
/* Sets every byte of device memory (zero: to 0), ordered with the ops. */
rt_status device_zero(rt_device_t *d, void *ptr, size_t bytes);
rt_status device_fill(rt_device_t *d, void *ptr, int byte, size_t bytes);
/* Host -> device and device -> host copies, ordered with the ops; they
 * return when the copy is done (so after all earlier work). */
rt_status device_upload(rt_device_t *d, void *dst, const void *src, size_t bytes);
rt_status device_download(rt_device_t *d, void *dst, const void *src, size_t bytes);
/* Waits for all work queued so far (no deadline: use it where no peer is
 * involved; the training step waits through its gradient sync instead). */
rt_status device_sync(rt_device_t *d);

/* CUDA graphs: everything enqueued between begin and end is captured
 * instead of run (end instantiates it, or, when `body` failed, discards the
 * capture and returns body). Unsupported devices fail begin. */
bool device_graphs_supported(const rt_device_t *d);
rt_status device_capture_begin(rt_device_t *d);
rt_status device_capture_end(rt_device_t *d, rt_status body, rt_graph_t **out);
rt_status device_graph_launch(rt_device_t *d, rt_graph_t *g);
void device_graph_free(rt_device_t *d, rt_graph_t *g);  /* NULL is ignored */

/* Input staging: host batches into `slots` device buffers, copied on a
 * second stream while the previous slot's work still computes (CUDA), or
 * used in place (CPU: put returns the host pointers). put enqueues the
 * copy and orders the compute stream after it; once the work that reads
 * the slot is enqueued, release marks the slot reusable and waits until
 * the host buffer has been read (with a deadline of timeout_s seconds when
 * > 0: a copy can queue behind a collective whose peer died). */
rt_status device_stager_create(rt_device_t *d, int slots, size_t input_bytes,
                               size_t target_bytes, device_stager_t **out);
rt_status device_stager_put(device_stager_t *s, int slot, const void *input, size_t input_bytes,
                            const void *target, size_t target_bytes, void **dev_input,
                            void **dev_target);
rt_status device_stager_release(device_stager_t *s, int slot, double timeout_s);
void device_stager_destroy(device_stager_t *s);  /* NULL is ignored */

/* Timing of the device's own work: start and stop are recorded in order
 * with the ops (CUDA events on the stream; the host clock on the CPU), and
 * elapsed, once the work between them is done, gives the seconds between. */
rt_status device_timer_create(rt_device_t *d, device_timer_t **out);
rt_status device_timer_start(device_timer_t *t);
rt_status device_timer_stop(device_timer_t *t);
rt_status device_timer_elapsed(device_timer_t *t, double *seconds);
void device_timer_destroy(device_timer_t *t);  /* NULL is ignored */

/* The CUDA stream the device's work runs on (as void*, so C callers need
 * no CUDA headers); NULL for the CPU. */
void *device_stream(const rt_device_t *d);

/* A second stream of the device for work that overlaps the ops (the
 * gradient exchange during backward): fork orders the side stream after
 * everything enqueued on the device's stream so far, join orders the
 * device's stream after everything enqueued on the side stream so far
 * (events; neither waits on the host). Only devices with streams (CUDA):
 * create fails with RT_ERR_UNSUPPORTED on the CPU, which runs each call to
 * completion and needs none. */
rt_status device_side_create(rt_device_t *d, device_side_t **out);
void *device_side_stream(const device_side_t *s);
rt_status device_side_fork(device_side_t *s);
rt_status device_side_join(device_side_t *s);
void device_side_destroy(device_side_t *s);  /* NULL is ignored */

/* Page-locked host memory for batch buffers that a device copies from
 * asynchronously (the loader's alloc/free hooks): ctx is a pointer to the
 * int CUDA ordinal to select first. NULL where the build has no CUDA or the
 * allocation failed. */
void *device_pinned_alloc(size_t bytes, void *ctx);
void device_pinned_free(void *ptr, void *ctx);

/* The CUDA build's constructor and its queries (device_cuda.cu, or the
 * stub); device_open and device_count call these. */
rt_status device_cuda_open(rt_device_t *d, const device_config_t *cfg);
rt_status device_cuda_count(int *count);

/* The CPU device's tables (device_cpu.c). */
extern const rt_ops_t rt_ops_cpu;
extern const device_impl_t device_impl_cpu;

#ifdef __cplusplus
}
#endif

#endif
