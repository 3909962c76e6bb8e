/* fuzz_safetensors.c - libFuzzer target: the safetensors reader
 * (trainer/ckpt/safetensors.h) on arbitrary file bytes: the model spec
 * from the header's metadata, and the tensors read against a small MLP's
 * registry (mlp:4,3,2), whose names and shapes the seed files carry. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>

#include "fuzz_util.h"
#include "trainer/ckpt/safetensors.h"
#include "trainer/model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static param_registry_t reg;
    static int ready;
    if (!ready) {
        model_spec_t spec;
        if (model_spec_parse("mlp:4,3,2", &spec) != RT_OK || spec.kind->declare(spec.cfg, &reg) != RT_OK)
            abort();
        model_spec_free(&spec);
        ready = 1;
    }
    char path[512], model[512];
    fuzz_file("input.safetensors", data, size, path, sizeof path);
    (void)safetensors_read_spec(path, model, sizeof model);
    float *arena = calloc((size_t)reg.total + 1, sizeof(float));
    if (!arena)
        return 0;
    safetensors_report_t rep;
    memset(&rep, 0, sizeof rep);
    (void)safetensors_read(path, &reg, arena, NULL, 0, &rep);
    safetensors_report_free(&rep);
    free(arena);
    return 0;
}
