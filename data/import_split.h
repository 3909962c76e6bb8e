/* import_split.h - what the token-stream importers (import-text,
 * import-tokens) share: checking their input files, and writing one stream
 * of tokens to a training file and, optionally, its last
 * round(total * fraction) tokens to a validation file.
 *
 * Both outputs are written under temporary names (dataset_write.h) and put
 * in place only by import_split_commit(), so a failure at any point leaves
 * neither file behind. */
#ifndef RT_DATA_IMPORT_SPLIT_H
#define RT_DATA_IMPORT_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "common/dtype.h"
#include "common/status.h"
#include "data/dataset_write.h"

/* Streamed inputs are read in pieces of this many bytes. */
#define IMPORT_CHUNK (8u << 20)

typedef struct {
    dataset_writer_t *train, *val;
    const char *val_path;
    size_t elem_size;  /* bytes per token in memory: 1 (U8) or 2 (U16) */
    int64_t total;
    int64_t split;     /* tokens [0, split) go to train, the rest to val */
    int64_t pos;       /* tokens written so far */
} import_split_t;

/* The flags alone, before any file is read: with val_path, val_fraction must
 * lie in (0, 1) and val_path must differ from out_path. */
rt_status import_split_check(const char *out_path, const char *val_path, double val_fraction);

/* The size of an input file in bytes: it must exist, be a regular file and
 * not be empty. */
rt_status import_input_size(const char *path, int64_t *size);

/* "<kind> <first input>[ ...] (<n> file[s])", the `source` attribute. */
void import_source(char *buf, size_t size, const char *kind, const char *const *inputs,
                   int ninputs);

/* Creates the outputs for a stream of `total` tokens of `type` (U8 or U16).
 * `unit` names what is counted in the message when the split would leave a
 * file empty ("bytes", "tokens"). *s must be zeroed; on failure nothing is
 * left to clean up, though import_split_abort() may still be called. */
rt_status import_split_open(import_split_t *s, const char *out_path, const char *val_path,
                            double val_fraction, int64_t total, const char *unit,
                            rt_dtype type, int vocab_size, const char *source);

/* Appends n tokens, in the declared type, to the stream. */
rt_status import_split_put(import_split_t *s, const void *tokens, int64_t n);

/* Puts both files in place (validation first; it is removed again if the
 * training file then fails, so the pair stays consistent). Every token
 * declared at open must have been put. */
rt_status import_split_commit(import_split_t *s);

/* Removes whatever import_split_open() created and not yet committed. */
void import_split_abort(import_split_t *s);

#endif
