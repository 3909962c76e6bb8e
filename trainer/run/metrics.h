/* metrics.h - what rank 0 reports: the JSON-lines metrics file (one object
 * per logged step, per evaluation, and a final summary; docs/TRAINING.md
 * lists the keys) and the human log lines on stdout. A resumed run keeps
 * the file's lines up to the checkpoint's step and appends, so the file
 * reads as one run. The lines are written and read with cJSON; a value that
 * is not finite is written as null. */
#ifndef RT_TRAINER_RUN_METRICS_H
#define RT_TRAINER_RUN_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/status.h"

/* A fresh run (keep_upto < 0) truncates the file; a resumed run keeps the
 * lines up to step keep_upto (those after it were written by the run that
 * was interrupted and are about to be redone) and appends. A line that is
 * not a JSON object with a numeric "step", or the cut-off last line of a
 * killed run, is dropped with a warning naming it. NULL and errno on
 * failure. */
FILE *metrics_open(const char *path, int64_t keep_upto);

/* One logged step. The optional fields below are left out of the JSON line
 * when NaN: tokens per second for a classification model, bits per byte
 * where tokens are not bytes, MFU where the device's peak is not known.
 * The others are always there, null when not finite (the loss of a step
 * skipped under --skip-nonfinite). */
typedef struct {
    int64_t step;
    double epoch, loss, lr, grad_norm;
    double samples_per_s;
    double tokens_per_s;   /* token models */
    double bits_per_byte;  /* byte-level token sets: loss / ln 2 */
    double mfu;            /* model FLOPs per second over the measured peak, 0..1 */
    double comm_exposed_ms;  /* per step, communication not hidden behind compute (NaN: no peers) */
    int64_t optimizer_bytes; /* optimizer state held by a rank */
} metrics_step_t;

/* Each writes one line and flushes it; RT_ERR_NOMEM or RT_ERR_IO (with
 * the message) when the line could not be made or written. */
rt_status metrics_write_step(FILE *f, const metrics_step_t *m);
/* accuracy and bits_per_byte NaN: left out; loss not finite: null. */
rt_status metrics_write_eval(FILE *f, int64_t step, double loss, double accuracy,
                             double bits_per_byte);
/* A checkpoint written (at the time its write ended, so with an
 * asynchronous write after later steps' lines): its step and file, the
 * milliseconds the step loop was held by it (copy, and waiting for the
 * previous write; with --ckpt-write sync the whole write) and those the
 * write took (the file, its fsyncs and the pruning). */
rt_status metrics_write_checkpoint(FILE *f, int64_t step, const char *path, double stall_ms,
                                   double write_ms);
rt_status metrics_write_final(FILE *f, int64_t step, double seconds, int64_t skipped,
                              uint64_t hash);

/* "1h02m", "3m05s", "4.2s", or "?" for a negative or absurd value. */
void format_duration(double s, char *buf, size_t size);

#endif
