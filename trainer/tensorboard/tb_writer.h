/* tb_writer.h - TensorBoard event files: TFRecord framing of protobuf
 * Event messages (proto/event.proto), as TensorFlow writes them
 * (docs/FORMATS.md, "TensorBoard event files").
 *
 * A writer creates a new file each time it is opened and never touches an
 * existing one: TensorBoard merges every event file of a directory, so a
 * resumed run adds a file rather than rewriting what an earlier run wrote.
 * Records are buffered until tb_writer_flush, which writes them with
 * write(2): what was flushed survives a crash of the process. */
#ifndef RT_TRAINER_TENSORBOARD_TB_WRITER_H
#define RT_TRAINER_TENSORBOARD_TB_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

typedef struct tb_writer tb_writer_t;

/* The first record of every file (Event.file_version). */
#define TB_FILE_VERSION "brain.Event:2"

/* Creates dir (and its missing parents) and in it a new file
 * events.out.tfevents.<unix seconds, 10 digits>.<host>.<pid> (".<n>"
 * appended when that name exists), then writes and flushes the
 * file_version record. RT_ERR_IO naming the directory or file. */
rt_status tb_writer_open(tb_writer_t **out, const char *dir);

/* The file's path. */
const char *tb_writer_path(const tb_writer_t *w);

/* Buffers one Event at the current wall time with one Summary.Value
 * {tag, simple_value = (float)value}. */
rt_status tb_writer_scalar(tb_writer_t *w, int64_t step, const char *tag, double value);

/* Buffers an Event {step, session_log {status START, msg}}: written at the
 * first step of a resumed run, it makes TensorBoard drop what earlier files
 * hold for that step and later, the steps a killed run logged after its
 * last checkpoint (TensorBoard purges "orphaned" events at a START). */
rt_status tb_writer_session_start(tb_writer_t *w, int64_t step, const char *msg);

/* Writes what is buffered; RT_ERR_IO naming the file. After a failed
 * write the file may end in a partial record (readers skip a cut-off last
 * record). */
rt_status tb_writer_flush(tb_writer_t *w);

/* Flushes and closes; NULL is a no-op. The writer is freed either way. */
rt_status tb_writer_close(tb_writer_t *w);

/* TFRecord's masked CRC-32C: ((crc >> 15) | (crc << 17)) + 0xa282ead8, so
 * that a CRC over data holding CRCs is not degenerate. */
uint32_t tb_masked_crc32c(const void *data, size_t n);

#endif
