/* safetensors.h - a model's parameters as a safetensors file (the format of
 * Hugging Face's `safetensors` package), written and read here without it:
 *
 *   8 bytes   N, the header's length, unsigned little-endian
 *   N bytes   a JSON object: for every tensor
 *               "<name>": {"dtype": "F32", "shape": [...], "data_offsets": [b, e]}
 *             (b, e in bytes from the start of the data section), and
 *               "__metadata__": {"format": "pt", "model_spec": "<spec>"}
 *             padded with spaces so that the data starts 8-byte aligned
 *   the data  every tensor's elements in C order, little-endian, back to
 *             back in the order of the header (for the writer: the model's
 *             parameter order), no gaps
 *
 * Names are the parameter registry's, i.e. the PyTorch state_dict names.
 * docs/FORMATS.md, "safetensors", has the rules the reader checks. */
#ifndef RT_TRAINER_CKPT_SAFETENSORS_H
#define RT_TRAINER_CKPT_SAFETENSORS_H

#include <stddef.h>

#include "common/status.h"
#include "trainer/model/params.h"

/* The reference implementation refuses headers above 100 MB; so do we. */
#define SAFETENSORS_MAX_HEADER (100u * 1000u * 1000u)

/* Writes every parameter of reg from arena (host memory) as F32 to path,
 * atomically: <path>.tmp.<pid> in the same directory, fsync, rename, fsync
 * of the directory; on failure the temporary file is removed and path is
 * untouched. */
rt_status safetensors_write(const param_registry_t *reg, const float *arena,
                            const char *model_spec, const char *path);

/* __metadata__.model_spec of a safetensors file into buf ("" when the file
 * has none). RT_ERR_FORMAT naming the file for a file that is not valid
 * safetensors. */
rt_status safetensors_read_spec(const char *path, char *buf, size_t size);

/* Two names for one tensor: a file may hold `alias` besides `name` (a
 * PyTorch state_dict of a model with tied weights holds both) when its
 * contents are the same; it is then not "unexpected". */
typedef struct {
    const char *alias, *name;
} safetensors_tie_t;

/* What safetensors_read found besides errors. */
typedef struct {
    char *problems;   /* malloc'ed, one line per mismatch ('\n'-terminated); NULL: none */
    int nproblems;
    int converted;    /* tensors converted to float32 (F16, BF16, F64 in the file) */
} safetensors_report_t;

/* Fills every parameter of reg in arena from path. Tensors must match the
 * registry by name and shape; F32 is read as is, F16 and BF16 are widened
 * exactly, F64 is rounded to nearest float32 (report->converted counts them).
 * Every mismatch (a missing parameter, an unexpected tensor, a wrong shape,
 * another dtype, a tie whose alias differs) is listed in report->problems
 * and the result is RT_ERR_MISMATCH; a malformed file is RT_ERR_FORMAT,
 * a read failure RT_ERR_IO, both naming the file. Free the report with
 * safetensors_report_free in every case. */
rt_status safetensors_read(const char *path, const param_registry_t *reg, float *arena,
                           const safetensors_tie_t *ties, int nties, safetensors_report_t *report);
void safetensors_report_free(safetensors_report_t *report);

#endif
