/* import.h - importers that turn foreign files into ringtrain datasets.
 * All write the output under a temporary name and rename it into place, so
 * a failure leaves no output file behind. */
#ifndef RT_DATA_IMPORT_H
#define RT_DATA_IMPORT_H

#include <stdint.h>

#include "common/status.h"

typedef struct {
    int64_t records;
    int64_t features;
    int num_classes;
} import_idx_summary_t;

/* IDX images [N, ...] and labels [N] (gzip'ed or plain) into a
 * classification dataset with uint8 inputs and uint8 labels;
 * num_classes = largest label + 1. */
rt_status import_idx(const char *images_path, const char *labels_path, const char *out_path,
                     import_idx_summary_t *summary);

typedef struct {
    int64_t train_tokens;
    int64_t val_tokens;
} import_text_summary_t;

/* The bytes of the inputs, concatenated in order, as a uint8 token stream
 * (vocab_size 256). With val_path, the last round(total * val_fraction) bytes
 * go to val_path and the rest to out_path; both must be non-empty. */
rt_status import_text(const char *const *inputs, int ninputs, const char *out_path,
                      const char *val_path, double val_fraction, import_text_summary_t *summary);

/* Token files other tools write (docs/FORMATS.md, "Importers"). */
typedef enum {
    IMPORT_TOKENS_BIN,   /* nanoGPT: headerless little-endian uint16 tokens */
    IMPORT_TOKENS_LLMC,  /* llm.c: 256 int32 header (magic, version, count), uint16 tokens */
} import_tokens_format;

typedef struct {
    int64_t train_tokens;
    int64_t val_tokens;
} import_tokens_summary_t;

/* The tokens of the inputs, concatenated in order, as a token stream with
 * vocab_size (1..65536; uint8 when <= 256, else uint16); every token must be
 * below vocab_size. With val_path the split is import_text's: the last
 * round(total * val_fraction) tokens go to val_path. */
rt_status import_tokens(const char *const *inputs, int ninputs, import_tokens_format format,
                        int vocab_size, const char *out_path, const char *val_path,
                        double val_fraction, import_tokens_summary_t *summary);

#endif
