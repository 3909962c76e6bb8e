/* import_paths.h - the importers' guard against writing over their own
 * input: an output path (--out, --val-out) that names the same file as an
 * input, or as the other output, is refused before anything is read or
 * created. */
#ifndef RT_DATA_IMPORT_PATHS_H
#define RT_DATA_IMPORT_PATHS_H

#include "common/status.h"

/* A path given on the command line and the flag that gave it ("input"). */
typedef struct {
    const char *flag;
    const char *path;
} import_path_t;

/* RT_ERR_USAGE, naming both paths and flags, when an output names the same
 * file as an input or as an earlier output. "Same file": the same device
 * and inode when the output exists (so a symlink or a hard link to an input
 * counts), otherwise the same canonical path (the real path of the
 * output's directory plus its base name, against the input's real path).
 * NULL paths are skipped. */
rt_status import_check_paths(const import_path_t *inputs, int ninputs,
                             const import_path_t *outputs, int noutputs);

/* The token-stream importers' case: every input (--input) against out_path
 * (--out) and val_path (--val-out, may be NULL). */
rt_status import_check_outputs(const char *const *inputs, int ninputs, const char *out_path,
                               const char *val_path);

#endif
