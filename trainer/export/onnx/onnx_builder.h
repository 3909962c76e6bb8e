/* onnx_builder.h - builds an ONNX graph (protobuf-c messages generated from
 * onnx.proto) node by node and writes it as a model file. Internal to
 * trainer/export/onnx.
 *
 * The error is sticky: an allocation that fails records RT_ERR_NOMEM in
 * the builder, every later call does nothing and returns a placeholder
 * name, and onnx_write() returns the recorded status. The graph code can
 * then read as the graph it builds, one line per node, without a check
 * after each. Every message, string and constant lives in the builder and
 * is freed by onnx_builder_free(); parameter initializers point into the
 * caller's arena (no copy), which must outlive onnx_write(). */
#ifndef RT_TRAINER_EXPORT_ONNX_BUILDER_H
#define RT_TRAINER_EXPORT_ONNX_BUILDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

/* The opset the graphs are written for, and the IR version of the ONNX
 * release that introduced it (1.12: opset 17, IR 8). Opset 17 is the first
 * with LayerNormalization and the last without a Gelu op, so GELU's tanh
 * form is spelled with primitive ops. */
#define RT_ONNX_OPSET 17
#define RT_ONNX_IR_VERSION 8

/* ONNX TensorProto.DataType values used here. */
enum { ONNX_FLOAT = 1, ONNX_INT64 = 7, ONNX_BOOL = 9 };

typedef struct onnx_builder onnx_builder_t;
typedef struct Onnx__AttributeProto onnx_attr_t;

rt_status onnx_builder_new(onnx_builder_t **out);
void onnx_builder_free(onnx_builder_t *b);

/* The prefix of generated value names ("h.0/attn"); names made by
 * onnx_node() are "<scope>/<op>_<n>". */
void onnx_scope(onnx_builder_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Attributes for onnx_node(). */
onnx_attr_t *onnx_attr_int(onnx_builder_t *b, const char *name, int64_t v);
onnx_attr_t *onnx_attr_float(onnx_builder_t *b, const char *name, float v);
onnx_attr_t *onnx_attr_ints(onnx_builder_t *b, const char *name, int n, const int64_t *v);

/* A node with up to 3 inputs and 2 attributes (NULL: absent; an input
 * NULL before a later one is an empty name, ONNX's "optional input left
 * out"). out NULL: a generated name. Returns the output's name. */
const char *onnx_node(onnx_builder_t *b, const char *op, const char *out, const char *in0,
                      const char *in1, const char *in2, onnx_attr_t *a0, onnx_attr_t *a1);

/* Initializers. A parameter: float32, its data referenced, not copied. */
const char *onnx_param(onnx_builder_t *b, const char *name, int ndim, const int64_t *dims,
                       const float *data);
/* Constants (copied): a float32 scalar, an int64 scalar, an int64 vector,
 * a bool tensor. */
const char *onnx_const_float(onnx_builder_t *b, const char *name, float v);
const char *onnx_const_int64(onnx_builder_t *b, const char *name, int64_t v);
const char *onnx_const_int64s(onnx_builder_t *b, const char *name, int n, const int64_t *v);
const char *onnx_const_bool(onnx_builder_t *b, const char *name, int ndim, const int64_t *dims,
                            const bool *v);

/* Graph inputs and outputs: a tensor of elem_type with ndim dimensions,
 * dims[i] < 0 meaning the symbolic dimension named by sym. */
void onnx_input(onnx_builder_t *b, const char *name, int elem_type, int ndim,
                const int64_t *dims, const char *sym);
void onnx_output(onnx_builder_t *b, const char *name, int elem_type, int ndim,
                 const int64_t *dims, const char *sym);

/* The model: IR RT_ONNX_IR_VERSION, opset RT_ONNX_OPSET of the default
 * domain, producer "ringtrain", the graph named graph_name, doc and one
 * metadata entry model_spec=spec; written to path through path.partial
 * and a rename, so a failed write leaves no half file under path. A model
 * over protobuf's 2 GiB message limit is RT_ERR_USAGE (external data is
 * not written). */
rt_status onnx_write(onnx_builder_t *b, const char *graph_name, const char *doc,
                     const char *spec, const char *path);

#endif
