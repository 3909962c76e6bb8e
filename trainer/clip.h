/* clip.h - global gradient norm and clipping by it, as
 * torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), and the
 * gradients are scaled by min(coef, 1). */
#ifndef RT_TRAINER_CLIP_H
#define RT_TRAINER_CLIP_H

#include <stdint.h>

/* L2 norm of g[0..n), accumulated in double. */
double grad_global_norm(const float *g, int64_t n);
/* Scales g by min(1, max_norm / (norm + 1e-6)); returns the factor used. */
float grad_clip_by_norm(float *g, int64_t n, double norm, double max_norm);

#endif
