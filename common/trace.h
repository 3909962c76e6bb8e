/* trace.h - a timeline of what each rank spent its time on, written in the
 * Chrome Trace Event Format (JSON array) that chrome://tracing and
 * ui.perfetto.dev load: one file per rank, pid = rank, one row per thread.
 *
 * Events are streamed to the file as the run goes, so memory stays constant
 * however long it runs. The file is written in whole events only, and at
 * least once a second while events arrive, so a run that is killed leaves a
 * file that loads once "]" is appended (the viewers accept a missing closing
 * bracket; see docs/TRAINING.md, "Timeline (--trace)").
 *
 * Every function takes a NULL trace and then does nothing, so call sites
 * need no `if (trace)`.
 */
#ifndef RT_COMMON_TRACE_H
#define RT_COMMON_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rt_trace rt_trace_t;

/* Creates (truncates) path now and writes the header, so that a path that
 * cannot be written fails before training starts (RT_ERR_IO naming the
 * path). Events carry pid = rank; a process_name metadata event names the
 * process "rank N". The calling thread gets tid 1 unless another thread
 * already traced. Times are relative to this call. */
rt_status rt_trace_open(rt_trace_t **out, const char *path, int rank);

/* The file for one rank of a --trace path: path itself when world == 1,
 * else path with ".rank<R>" inserted before the extension of its last
 * component (trace.json -> trace.rank1.json; a.b/trace -> a.b/trace.rank1;
 * a leading dot is no extension: .trace -> .trace.rank1). RT_ERR_INVALID
 * when the result does not fit in size bytes or rank is not in [0, world). */
rt_status rt_trace_rank_path(const char *path, int rank, int world, char *out, size_t size);

/* A complete event ("ph":"X") from t0 to t1 (rt_now() seconds; written as
 * microseconds since rt_trace_open), on the calling thread's row, with an
 * optional integer argument (arg_name NULL: none). cat and name are copied
 * and JSON-escaped (UTF-8 passes through; cat NULL: no category). t1 < t0
 * is written as zero length; non-finite times drop the event. Thread-safe;
 * a write error is remembered for rt_trace_close, never reported here.
 * Spans of one thread should nest or follow each other: Perfetto draws
 * partly overlapping spans on one row wrongly, so work that overlaps (a
 * bucket's communication) belongs on the thread that does it. */
void rt_trace_span(rt_trace_t *t, const char *cat, const char *name, double t0, double t1,
                   const char *arg_name, int64_t arg);

/* Names the calling thread's row (thread_name metadata), e.g. "main",
 * "comm progress". */
void rt_trace_thread_name(rt_trace_t *t, const char *name);

/* Rows of their own for work that overlaps the thread that records it
 * (nonblocking communication progressed between a thread's other spans):
 * rt_trace_span on row `row` instead of the calling thread's, and its
 * name. Rows from RT_TRACE_ROW_FIRST on are never given to threads. */
#define RT_TRACE_ROW_FIRST 1000
void rt_trace_span_row(rt_trace_t *t, int row, const char *cat, const char *name, double t0,
                       double t1, const char *arg_name, int64_t arg);
void rt_trace_row_name(rt_trace_t *t, int row, const char *name);

/* Times are measured from now on (call it on every rank right after a
 * barrier, so that the ranks' time axes line up). */
void rt_trace_restart_clock(rt_trace_t *t);

/* Writes what is buffered and the closing bracket, closes the file and
 * frees t. Returns RT_OK or the first write error of the whole run
 * (RT_ERR_IO naming the path and the errno text). No other thread may
 * trace into t during or after this call. NULL: RT_OK. */
rt_status rt_trace_close(rt_trace_t *t);

#ifdef __cplusplus
}
#endif

#endif
