/* fuzz_metrics.c - libFuzzer target: the metrics reader that a resumed run
 * uses to keep the lines up to its checkpoint (trainer/run/metrics.h,
 * metrics_open with keep_upto) on arbitrary file contents, then one line
 * appended through the writer. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <math.h>

#include "fuzz_util.h"
#include "trainer/run/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    fuzz_file("metrics.jsonl", data, size, path, sizeof path);
    const int64_t keep = size ? (int64_t)data[0] : 0;
    FILE *f = metrics_open(path, keep);
    if (f) {
        metrics_step_t m = {.step = keep + 1, .loss = NAN, .lr = 1e-3, .grad_norm = INFINITY,
                            .samples_per_s = 1.0, .tokens_per_s = NAN, .bits_per_byte = NAN,
                            .mfu = NAN, .comm_exposed_ms = NAN};
        metrics_write_step(f, &m);
        fclose(f);
    }
    return 0;
}
