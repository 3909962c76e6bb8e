/* onnx_export.h - a trained model as an ONNX file (`ringtrain export onnx`):
 * the parameters of a checkpoint or a `train --export-params` file
 * (trainer/run/saved_model.h) become float32 initializers under their
 * state_dict names, and the model's forward becomes an opset-17 graph that
 * computes the logits the CPU forward computes (docs/EXPORT.md):
 *
 *   mlp   input  "input"  float32 [batch, features] -> "logits" float32 [batch, classes]
 *   gpt   input  "tokens" int64   [batch, ctx]      -> "logits" float32 [batch, ctx, vocab]
 *
 * The MLP's input is what the loader feeds the model: a uint8 record
 * divided by 255, a float32 one as stored. The GPT's context is fixed at
 * the model's ctx. */
#ifndef RT_TRAINER_EXPORT_ONNX_EXPORT_H
#define RT_TRAINER_EXPORT_ONNX_EXPORT_H

#include <stdint.h>

#include "common/status.h"
#include "trainer/run/saved_model.h"

typedef struct {
    const char *ckpt;  /* a checkpoint or a parameter export */
    const char *out;   /* the .onnx file to write */
    int64_t batch;     /* the batch dimension: > 0 fixed, 0 symbolic ("batch") */
} onnx_export_config_t;

/* Loads cfg->ckpt and writes cfg->out. A file that cannot be read, or a
 * model kind the exporter does not know, is RT_ERR_USAGE with the reason;
 * a failed write RT_ERR_IO. */
rt_status onnx_export_run(const onnx_export_config_t *cfg);

/* The same for a model already loaded (its parameters are read, not
 * changed). */
rt_status onnx_export_saved(const saved_model_t *sm, int64_t batch, const char *out);

#endif
