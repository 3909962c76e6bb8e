/* nccl_buffer.h - the few CUDA runtime calls a C caller of nccl_comm.h needs
 * to drive it without CUDA headers: a stream, device buffers, copies to and
 * from the host, and event timing of work on a stream. Plain C in the CUDA
 * build (nccl_buffer.c); in the CPU-only build every function returns
 * RT_ERR_UNSUPPORTED (nccl_buffer_stub.c), so callers need no #ifdef.
 * Copies and fills are ordered on the given stream and wait for it (with no
 * deadline: they involve no peer). */
#ifndef RT_COLLECTIVES_NCCL_BUFFER_H
#define RT_COLLECTIVES_NCCL_BUFFER_H

#include <stddef.h>

#include "common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Makes `device` current for this thread and creates a non-blocking stream on it. */
rt_status nccl_stream_create(void **stream, int device);
void nccl_stream_destroy(void *stream); /* safe on NULL */

/* Device memory on the current device; free is safe on NULL. */
rt_status nccl_buffer_alloc(void **ptr, size_t bytes);
void nccl_buffer_free(void *ptr);
/* Host -> device and device -> host, then waits for the stream. */
rt_status nccl_buffer_upload(void *dst, const void *src, size_t bytes, void *stream);
rt_status nccl_buffer_download(void *dst, const void *src, size_t bytes, void *stream);
/* Every byte of ptr[0..bytes) set to `byte`, then waits for the stream. */
rt_status nccl_buffer_fill(void *ptr, int byte, size_t bytes, void *stream);

/* A pair of CUDA events: start and stop are recorded on a stream, and
 * elapsed (after the stream's work is done) gives the seconds between them. */
typedef struct nccl_timer nccl_timer_t;
rt_status nccl_timer_create(nccl_timer_t **out);
void nccl_timer_destroy(nccl_timer_t *t); /* safe on NULL */
rt_status nccl_timer_start(nccl_timer_t *t, void *stream);
rt_status nccl_timer_stop(nccl_timer_t *t, void *stream);
rt_status nccl_timer_elapsed(const nccl_timer_t *t, double *seconds);

#ifdef __cplusplus
}
#endif

#endif
