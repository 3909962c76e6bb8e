/* ckpt_name.h - the one grammar of checkpoint file names, used by the
 * trainer (choosing and pruning checkpoints) and by the launcher (naming the
 * newest in its restart log):
 *
 *   ckpt-<step>.h5   step: 8 or more decimal digits (zero-padded to 8 when
 *                    written), a value in 0 .. INT64_MAX
 *
 * Anything else is not a checkpoint: fewer than 8 digits, a sign, spaces,
 * another suffix (the writer's temporary ".ckpt-<step>.h5.tmp.<pid>"
 * included), or a step beyond INT64_MAX (rejected, never wrapped). */
#ifndef RT_TRAINER_CKPT_CKPT_NAME_H
#define RT_TRAINER_CKPT_CKPT_NAME_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 and *step for a checkpoint's base name, 0 for anything else. */
int ckpt_name_parse(const char *base, int64_t *step);

/* DIR/ckpt-<step, 8 digits at least>.h5 into out; RT_ERR_INVALID for a
 * negative step or a path that does not fit. */
rt_status ckpt_path_for_step(const char *dir, int64_t step, char *out, size_t len);

#ifdef __cplusplus
}
#endif

#endif
