/* saved_logits.c - ringtrain's own CPU logits of saved parameters, the
 * reference the ONNX export test compares ONNX Runtime against:
 *
 *   saved_logits CKPT IN.bin ROWS OUT.bin
 *
 * loads CKPT through trainer/run/saved_model.h (what `export onnx` reads),
 * runs the model's forward on ROWS inputs from IN.bin, in the layout the
 * forward consumes (float32 [ROWS, features] for an mlp, int32 tokens
 * [ROWS, ctx] for a gpt), and writes the logits, float32 [ROWS * positions,
 * outputs], to OUT.bin. One thread, so the numbers do not depend on the
 * machine's cores. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "trainer/ops/cpu_threads.h"
#include "trainer/run/saved_model.h"

static rt_status run(const char *ckpt, const char *in_path, int rows, const char *out_path)
{
    saved_model_t sm;
    void *inputs = NULL;
    int32_t *targets = NULL;
    FILE *f = NULL;
    rt_status st = saved_model_load(&sm, ckpt, "ckpt");
    const bool tokens = sm.io.batch == RT_BATCH_TOKENS;
    const int64_t width = tokens ? sm.io.context : sm.io.features;
    const size_t n = (size_t)rows * (size_t)width, tn = tokens ? n : (size_t)rows;
    if (st == RT_OK)
        st = saved_model_open(&sm, rows);
    if (st == RT_OK)
        st = cpu_set_threads(1);
    if (st != RT_OK)
        goto out;
    inputs = malloc(n * 4);
    targets = calloc(tn, sizeof *targets);   /* the loss is not looked at */
    if (!inputs || !targets) {
        st = rt_fail(RT_ERR_NOMEM, "inputs");
        goto out;
    }
    if (!(f = fopen(in_path, "rb")) || fread(inputs, 4, n, f) != n) {
        st = rt_fail(RT_ERR_IO, "%s: cannot read %zu values", in_path, n);
        goto out;
    }
    fclose(f);
    f = NULL;
    rt_batch_t b = {.rows = rows,
                    .inputs = tensor_2d(inputs, tokens ? RT_DTYPE_I32 : RT_DTYPE_F32, rows, width),
                    .targets = tokens ? tensor_2d(targets, RT_DTYPE_I32, rows, width)
                                      : tensor_1d(targets, RT_DTYPE_I32, rows)};
    rt_tensor_t losses, logits;
    model_t *m = &sm.model;
    TRY_GOTO(st, m->kind->forward(m, &b, &losses), out);
    TRY_GOTO(st, m->kind->logits(m, &logits), out);
    const size_t bytes = tensor_bytes(&logits);
    f = fopen(out_path, "wb");
    bool ok = f && fwrite(logits.data, 1, bytes, f) == bytes;
    if (f && fclose(f) != 0)
        ok = false;
    f = NULL;
    if (!ok)
        st = rt_fail(RT_ERR_IO, "%s: cannot write", out_path);
out:
    if (f)
        fclose(f);
    free(inputs);
    free(targets);
    saved_model_free(&sm);
    return st;
}

int main(int argc, char **argv)
{
    if (argc != 5 || atoi(argv[3]) < 1) {
        fprintf(stderr, "usage: saved_logits CKPT IN.bin ROWS OUT.bin\n");
        return 2;
    }
    rt_status st = run(argv[1], argv[2], atoi(argv[3]), argv[4]);
    if (st != RT_OK) {
        fprintf(stderr, "saved_logits: %s\n", rt_last_error());
        return 1;
    }
    return 0;
}
