/* ckpt_writer.h - a thread that writes one checkpoint at a time while the
 * step loop goes on (`--ckpt-write async`, docs/TRAINING.md, "Checkpoints
 * and resume"). It does file I/O only, through ckpt_save (write, then
 * prune): no MPI, no device calls; the caller copies the state it hands
 * over and shares each write's outcome with the other ranks itself.
 *
 * At most one write is in flight: ckpt_writer_start refuses while one is,
 * so the caller takes the previous one's report first (ckpt_writer_wait).
 * Every write that was started has exactly one report, taken by poll or
 * wait: a failure cannot go unseen unless the caller drops it. */
#ifndef RT_TRAINER_RUN_CKPT_WRITER_H
#define RT_TRAINER_RUN_CKPT_WRITER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/status.h"
#include "trainer/ckpt/ckpt_file.h"

typedef struct ckpt_writer ckpt_writer_t;

typedef struct {
    int64_t step;
    rt_status status;   /* RT_OK: written, renamed into place and pruned */
    char path[4096];    /* written: the checkpoint's final path */
    char error[1024];   /* failed: the message (it names the file) */
    double seconds;     /* the write and the prune, on the writer thread */
} ckpt_write_report_t;

rt_status ckpt_writer_create(ckpt_writer_t **out);
/* Waits for a write in flight; its report, if not taken, is lost: take it
 * with ckpt_writer_wait first. NULL is ignored. */
void ckpt_writer_destroy(ckpt_writer_t *w);

/* Starts ckpt_save(dir, run, meta, arrays, n) on a new thread. meta, the
 * arrays, the memory they point to and run belong to the writer until the
 * write's report is taken: the caller must not change or free them
 * before. RT_ERR_INTERNAL while a write is in flight or unreported. */
rt_status ckpt_writer_start(ckpt_writer_t *w, const char *dir, ckpt_run_t *run,
                            const ckpt_meta_t *meta, const ckpt_array_t *arrays, int n);

/* A write was started and its report not taken yet. */
bool ckpt_writer_pending(const ckpt_writer_t *w);
/* Does not block: true, with the report, when the write in flight has
 * ended; false when none is pending or it still runs. */
bool ckpt_writer_poll(ckpt_writer_t *w, ckpt_write_report_t *rep);
/* Blocks until the pending write ends: true with its report; false when
 * none was pending. */
bool ckpt_writer_wait(ckpt_writer_t *w, ckpt_write_report_t *rep);

#endif
