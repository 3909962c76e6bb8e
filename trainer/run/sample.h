/* sample.h - text generation from a trained byte-level language model
 * (`ringtrain sample`): the prompt's bytes are the first tokens; each new
 * token is drawn from the model's next-token distribution over the last
 * ctx tokens, with a temperature and an optional top-k cut, from a seeded
 * generator, and handed to the caller as soon as it is drawn. */
#ifndef RT_TRAINER_RUN_SAMPLE_H
#define RT_TRAINER_RUN_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/status.h"

typedef struct {
    const char *ckpt;      /* a checkpoint or a train --export-params file */
    const char *prompt;    /* bytes; "" starts from a newline */
    int tokens;            /* how many to generate, >= 1 */
    double temperature;    /* 0: always the most likely token (greedy) */
    int top_k;             /* 0: no cut; k: only the k most likely tokens */
    uint64_t seed;
    int threads;           /* CPU threads (0: all cores) */
    bool echo_prompt;      /* emit the prompt's bytes first (once the model has loaded) */
} sample_config_t;

/* Called with each generated token (a byte value); a failure stops. */
typedef rt_status (*sample_emit_fn)(void *ctx, int token);

/* RT_ERR_USAGE for bad settings and for a model that is not a byte-level
 * token model (vocab 256). */
rt_status sample_run(const sample_config_t *cfg, sample_emit_fn emit, void *ctx);

/* The choice from one row of logits [vocab], exposed for tests: with
 * temperature 0 the first maximum; otherwise softmax(logits / temperature)
 * over the top_k largest (all with top_k 0; ties at the cut all kept),
 * computed in double, and the first token whose cumulative probability
 * exceeds u in [0, 1). */
int sample_choose(const float *logits, int vocab, double temperature, int top_k, double u);

#endif
