/* ckpt_file.h - HDF5 checkpoints: write atomically, verify checksums, read
 * back by name, pick the newest good one, prune old ones, and digest what
 * was loaded so ranks can compare it.
 *
 * This layer is generic: it stores named arrays plus a small metadata block
 * and knows nothing about models or optimizers. The trainer describes its
 * state as a list of ckpt_array_t (slices of its parameter arena, optimizer
 * moments, sampler and RNG state) and uses the same list to write and read.
 *
 * File layout (docs/FORMATS.md, "Checkpoint file", has the exact schema):
 *   root attributes  format="ringtrain-checkpoint", format_version, step,
 *                    epoch, model_spec, config (JSON), world_size,
 *                    created_unix, meta_crc32c
 *   /params/<name>   float32, PyTorch state_dict names ("<layer>.weight" [out,in])
 *   /optimizer/...   /data/...   /rng/...     (any names the caller chooses)
 *   every dataset    contiguous, little-endian, attribute crc32c (uint32) =
 *                    CRC-32C of its raw bytes in C order
 *
 * Completeness: a checkpoint is written as DIR/.ckpt-<step>.h5.tmp.<pid>,
 * fsync'ed, renamed to DIR/ckpt-<step 8 digits>.h5 and the directory
 * fsync'ed. Only names of ckpt_name.h's grammar are ever read as
 * checkpoints, so a write that dies part-way is never taken as complete.
 *
 * Errors: every function returns rt_status; the message (rt_last_error())
 * names the file and, for checksum failures, the dataset(s).
 */
#ifndef RT_TRAINER_CKPT_CKPT_FILE_H
#define RT_TRAINER_CKPT_CKPT_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/dtype.h"
#include "common/status.h"
#include "trainer/ckpt/ckpt_name.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CKPT_FORMAT "ringtrain-checkpoint"
#define CKPT_FORMAT_VERSION 1
#define CKPT_MAX_RANK 4
#define CKPT_NAME_MAX 256

/* Element types are rt_dtype (common/dtype.h). A checkpoint stores F32,
 * F64, I32, I64, U8, U32 and U64, always little-endian in the file;
 * BF16 and U16 are refused. */

/* One named array. name is a path below the root without a leading slash
 * ("params/<name>", "optimizer/m/<name>", "data/position");
 * intermediate groups are created as needed. rank 0 is a scalar (dims
 * unused). data: ckpt_write only reads it; ckpt_read_array fills it. */
typedef struct {
    const char *name;
    rt_dtype type;
    void *data;
    int rank;
    int64_t dims[CKPT_MAX_RANK];
} ckpt_array_t;

/* The root attributes. On write, created_unix 0 means "now". Strings read
 * back by ckpt_open belong to the reader and live until ckpt_close. */
typedef struct {
    int64_t format_version;   /* filled on read; ignored on write */
    int64_t step;
    int64_t epoch;
    const char *model_spec;   /* the canonical model spec */
    const char *config_json;  /* every training flag, as a JSON object */
    int64_t world_size;
    int64_t created_unix;
} ckpt_meta_t;

/* Number of elements of an array (1 for a scalar). */
int64_t ckpt_array_count(const ckpt_array_t *a);

/* ---- writing ------------------------------------------------------------ */

/* Writes DIR/ckpt-<step>.h5 atomically (temporary name, fsync, rename, fsync
 * of DIR). DIR is created if missing. On failure the temporary file is
 * removed and nothing else in DIR is touched. path_out (may be NULL)
 * receives the final path.
 *
 * Test hook: with RT_CKPT_TEST_PAUSE_AFTER=K in the environment the writer
 * flushes after K datasets, prints "RT_CKPT_TEST_PAUSED <tmp path>" on
 * stderr and sleeps, so a test can kill it mid-write. Space for the file
 * is reserved (fallocate) before HDF5 writes, so a full disk usually fails
 * there; RT_CKPT_TEST_NO_RESERVE=1 skips that to test failures inside HDF5.
 *
 * Arrays of 16 MiB and more go to disk with O_DIRECT where the file system
 * takes it (the file is the same; docs/PERFORMANCE.md, "Checkpoints");
 * RT_CKPT_TEST_NO_DIRECT=1 writes them through the page cache instead.
 * Threads: any one thread may call it; the threads it starts (checksum,
 * direct writer) make no HDF5 calls, but HDF5 itself is not thread-safe
 * here, so no other checkpoint call (read, verify, find-latest) may run in
 * the process while it does. */
rt_status ckpt_write(const char *dir, const ckpt_meta_t *meta,
                     const ckpt_array_t *arrays, int n,
                     char *path_out, size_t path_len);

/* What pruning knows of the run that writes checkpoints into a directory
 * (docs/CHECKPOINTS.md, "Pruning"): which checkpoints the run wrote itself,
 * and up to which step the directory holds the history the run continues.
 * Pruning deletes only the run's own checkpoints beyond its newest `keep`
 * and history checkpoints that verify beyond what fills `keep`, and only
 * while the run's newest checkpoint is in place and complete. Every other
 * checkpoint (a higher step, one another run wrote, one that does not
 * verify) is left alone and named once through note. Set up with ckpt_run_init, released
 * with ckpt_run_free; the fields are the library's. */
typedef void (*ckpt_note_fn)(void *ctx, const char *line);

typedef struct {
    int keep;               /* <= 0: keep every checkpoint */
    int64_t history_step;   /* the run resumed from this directory's checkpoint of this step:
                             * checkpoints up to it are its history; -1 none */
    int64_t *own;           /* steps the run wrote that are still there, ascending */
    int nown, own_cap;
    char **noted;           /* names already reported as left alone */
    int nnoted, noted_cap;
    ckpt_note_fn note;      /* one line for each prune that leaves new files alone (may be NULL) */
    void *note_ctx;
} ckpt_run_t;

void ckpt_run_init(ckpt_run_t *run, int keep, int64_t history_step, ckpt_note_fn note, void *ctx);
void ckpt_run_free(ckpt_run_t *run);

/* RT_OK when a checkpoint can be written into the existing directory dir:
 * it creates and removes a probe file (DIR/.write-probe.<pid>), so that a
 * run finds out before its first step. RT_ERR_IO naming dir and the cause
 * otherwise. */
rt_status ckpt_dir_writable(const char *dir);

/* ckpt_write, then (run not NULL) records the checkpoint as the run's own
 * and prunes with ckpt_prune(dir, run). */
rt_status ckpt_save(const char *dir, ckpt_run_t *run, const ckpt_meta_t *meta,
                    const ckpt_array_t *arrays, int n,
                    char *path_out, size_t path_len);

/* ---- reading ------------------------------------------------------------ */

typedef struct ckpt_reader ckpt_reader_t;

/* Opens a checkpoint and reads its metadata. Refuses (RT_ERR_FORMAT) a file
 * that is not a ringtrain checkpoint, one of a newer format_version (the
 * message gives both versions), and one whose metadata checksum fails. */
rt_status ckpt_open(const char *path, ckpt_reader_t **out);
void ckpt_close(ckpt_reader_t *r);
const ckpt_meta_t *ckpt_reader_meta(const ckpt_reader_t *r);
const char *ckpt_reader_path(const ckpt_reader_t *r);

/* RT_ERR_MISMATCH unless the checkpoint's model_spec equals model_spec;
 * the message names the file and both specs. */
rt_status ckpt_expect_spec(const ckpt_reader_t *r, const char *model_spec);

/* 1 if the checkpoint holds a dataset of that name, 0 if not. */
int ckpt_has_array(const ckpt_reader_t *r, const char *name);

/* Type and shape of a stored dataset (dims has CKPT_MAX_RANK entries). */
rt_status ckpt_array_info(const ckpt_reader_t *r, const char *name,
                          rt_dtype *type, int *rank, int64_t *dims);

/* Reads dataset a->name into a->data after checking that its type and
 * shape equal a's, then checks its CRC-32C. */
rt_status ckpt_read_array(ckpt_reader_t *r, const ckpt_array_t *a);
rt_status ckpt_read_arrays(ckpt_reader_t *r, const ckpt_array_t *arrays, int n);

/* Metadata only (opens, copies out, closes): strings are malloc'ed and
 * released by ckpt_meta_free. */
rt_status ckpt_read_meta(const char *path, ckpt_meta_t *meta);
void ckpt_meta_free(ckpt_meta_t *meta);

/* ---- checking and choosing --------------------------------------------- */

typedef struct {
    int64_t datasets;  /* datasets checked */
    int64_t bytes;     /* raw bytes checksummed */
    int64_t step;
} ckpt_verify_info_t;

/* Checks the format, version and metadata checksum, and every dataset's
 * CRC-32C against its stored attribute (streamed, bounded memory). Returns
 * RT_OK or RT_ERR_FORMAT / RT_ERR_HDF5 / RT_ERR_IO with a message naming
 * each failing dataset (a truncated file fails at open: HDF5 records the
 * expected end of file). info may be NULL. */
rt_status ckpt_verify(const char *path, ckpt_verify_info_t *info);

/* Called by ckpt_find_latest for each candidate it passes over. */
typedef void (*ckpt_skip_fn)(void *ctx, const char *path, const char *reason);

/* The newest complete checkpoint in dir that verifies: path_out receives
 * its path and step_out (may be NULL) its step; path_out is "" and the
 * status RT_OK when there is none (or dir does not exist). Each newer file
 * that fails verification, and each unfinished temporary file, is reported
 * through skip (may be NULL) with the reason. */
rt_status ckpt_find_latest(const char *dir, char *path_out, size_t path_len,
                           int64_t *step_out, ckpt_skip_fn skip, void *ctx);

/* Deletes what run may delete (see ckpt_run_t): the run's own checkpoints
 * beyond its newest run->keep, and history checkpoints (step up to
 * run->history_step) that verify and are not needed to fill run->keep;
 * nothing unless the run's newest own checkpoint opens as a complete
 * checkpoint of its step (metadata checksum included). Also deletes
 * temporary files left by writers that no longer run on this host.
 * Checkpoints it leaves alone that it has not reported before are named on
 * one line through run->note. removed (may be NULL) counts files. */
rt_status ckpt_prune(const char *dir, ckpt_run_t *run, int *removed);

/* File names: ckpt_path_for_step and ckpt_name_parse (ckpt_name.h). */

/* A 64-bit digest of loaded state: step, epoch, world_size, model_spec and,
 * for each array, its name, type, shape and CRC-32C of its bytes. Ranks
 * compare it with ckpt_digest_agree to stop when they loaded different
 * things. */
uint64_t ckpt_digest(const ckpt_meta_t *meta, const ckpt_array_t *arrays, int n);

/* Collective: RT_OK when every rank of comm passed the same digest, else
 * RT_ERR_MISMATCH on every rank with all ranks' digests in the message
 * ("ranks loaded different state from <what> (digests: rank 0 0x..., ...)").
 * Declared only where <mpi.h> was included first. */
#ifdef MPI_VERSION
rt_status ckpt_digest_agree(MPI_Comm comm, uint64_t digest, const char *what);
#endif

/* Resuming on another number of ranks keeps the global batch
 * (ckpt_batch per rank x ckpt_world ranks). batch_flag > 0 is the per-rank
 * batch the user asked for: accepted only if it keeps the global batch;
 * batch_flag 0 derives it (global / world). RT_ERR_MISMATCH, with the
 * numbers and what to do, when the global batch cannot be kept. The
 * sampler position must count samples of the global order, so that it
 * means the same thing whatever the rank count. */
rt_status ckpt_resume_batch(int64_t ckpt_world, int64_t ckpt_batch, int64_t world, int64_t batch_flag,
                            int64_t *batch_out);

/* Prints the file's tree: root attributes, then every group and dataset
 * with type, shape, bytes and attributes. Works on any HDF5 file. */
rt_status ckpt_inspect(const char *path, FILE *out);

#ifdef __cplusplus
}
#endif

#endif
