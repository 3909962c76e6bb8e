/* onnx_builder.c - ONNX graph building and writing over the protobuf-c
 * messages (see onnx_builder.h). */
#define _POSIX_C_SOURCE 200809L
#include "trainer/export/onnx/onnx_builder.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"

/* A growable array of pointers (nodes, initializers, allocations). */
typedef struct {
    void **items;
    size_t count, cap;
} ptr_list_t;

struct onnx_builder {
    rt_status st;          /* sticky: the first failure */
    ptr_list_t allocs;     /* everything to free */
    ptr_list_t nodes, inits, inputs, outputs;
    char scope[128];
    int counter;           /* for generated names */
};

static bool list_push(ptr_list_t *l, void *p)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        void **items = realloc(l->items, cap * sizeof *items);
        if (!items)
            return false;
        l->items = items;
        l->cap = cap;
    }
    l->items[l->count++] = p;
    return true;
}

/* Zeroed memory owned by the builder; NULL (and the builder failed) when
 * out of memory or after an earlier failure. */
static void *balloc(onnx_builder_t *b, size_t bytes)
{
    if (b->st != RT_OK)
        return NULL;
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p || !list_push(&b->allocs, p)) {
        free(p);
        b->st = rt_fail(RT_ERR_NOMEM, "onnx export: cannot allocate %zu bytes", bytes);
        return NULL;
    }
    return p;
}

static char *bstrdup(onnx_builder_t *b, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = balloc(b, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* After a failure, names are this placeholder so callers can go on. */
static const char failed_name[] = "<failed>";

rt_status onnx_builder_new(onnx_builder_t **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return rt_fail(RT_ERR_NOMEM, "onnx export: cannot allocate the builder");
    return RT_OK;
}

void onnx_builder_free(onnx_builder_t *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->allocs.count; i++)
        free(b->allocs.items[i]);
    free(b->allocs.items);
    free(b->nodes.items);
    free(b->inits.items);
    free(b->inputs.items);
    free(b->outputs.items);
    free(b);
}

static void push(onnx_builder_t *b, ptr_list_t *l, void *p)
{
    if (b->st == RT_OK && !list_push(l, p))
        b->st = rt_fail(RT_ERR_NOMEM, "onnx export: cannot grow a list");
}

void onnx_scope(onnx_builder_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->scope, sizeof b->scope, fmt, ap);
    va_end(ap);
}

/* ---- attributes ---------------------------------------------------------------- */

static Onnx__AttributeProto *attr(onnx_builder_t *b, const char *name,
                                  Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = balloc(b, sizeof *a);
    if (!a)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = bstrdup(b, name);
    a->has_type = 1;
    a->type = type;
    return a;
}

onnx_attr_t *onnx_attr_int(onnx_builder_t *b, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr(b, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = v;
    }
    return a;
}

onnx_attr_t *onnx_attr_float(onnx_builder_t *b, const char *name, float v)
{
    Onnx__AttributeProto *a = attr(b, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) {
        a->has_f = 1;
        a->f = v;
    }
    return a;
}

onnx_attr_t *onnx_attr_ints(onnx_builder_t *b, const char *name, int n, const int64_t *v)
{
    Onnx__AttributeProto *a = attr(b, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *copy = balloc(b, sizeof *copy * (size_t)n);
    if (!a || !copy)
        return NULL;
    memcpy(copy, v, sizeof *copy * (size_t)n);
    a->n_ints = (size_t)n;
    a->ints = copy;
    return a;
}

/* ---- nodes --------------------------------------------------------------------- */

const char *onnx_node(onnx_builder_t *b, const char *op, const char *out, const char *in0,
                      const char *in1, const char *in2, onnx_attr_t *a0, onnx_attr_t *a1)
{
    Onnx__NodeProto *n = balloc(b, sizeof *n);
    char **ins = balloc(b, 3 * sizeof *ins);
    char **outs = balloc(b, sizeof *outs);
    Onnx__AttributeProto **attrs = balloc(b, 2 * sizeof *attrs);
    if (!n || !ins || !outs || !attrs)
        return failed_name;
    onnx__node_proto__init(n);
    const char *in[3] = {in0, in1, in2};
    size_t nin = in2 ? 3 : in1 ? 2 : in0 ? 1 : 0;
    for (size_t i = 0; i < nin; i++)
        ins[i] = bstrdup(b, in[i] ? in[i] : "");
    char name[192];
    int id = b->counter++;
    if (out)
        snprintf(name, sizeof name, "%s", out);
    else
        snprintf(name, sizeof name, "%s/%s_%d", b->scope, op, id);
    outs[0] = bstrdup(b, name);
    snprintf(name, sizeof name, "%s_%d", op, id);
    n->name = bstrdup(b, name);
    n->op_type = bstrdup(b, op);
    n->n_input = nin;
    n->input = ins;
    n->n_output = 1;
    n->output = outs;
    if (a0)
        attrs[n->n_attribute++] = a0;
    if (a1)
        attrs[n->n_attribute++] = a1;
    n->attribute = attrs;
    push(b, &b->nodes, n);
    return b->st == RT_OK ? outs[0] : failed_name;
}

/* ---- initializers -------------------------------------------------------------- */

static Onnx__TensorProto *tensor(onnx_builder_t *b, const char *name, int type, int ndim,
                                 const int64_t *dims)
{
    Onnx__TensorProto *t = balloc(b, sizeof *t);
    int64_t *d = balloc(b, sizeof *d * (size_t)(ndim ? ndim : 1));
    if (!t || !d)
        return NULL;
    onnx__tensor_proto__init(t);
    if (ndim)
        memcpy(d, dims, sizeof *d * (size_t)ndim);
    t->n_dims = (size_t)ndim;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = type;
    t->name = bstrdup(b, name);
    push(b, &b->inits, t);
    return t;
}

/* raw_data is little-endian by ONNX's definition; the hosts ringtrain runs
 * on are, and a big-endian one is refused in onnx_write(). */
static const char *raw(onnx_builder_t *b, Onnx__TensorProto *t, const void *data, size_t bytes,
                       bool copy)
{
    if (!t)
        return failed_name;
    void *p = (void *)data;
    if (copy && !(p = balloc(b, bytes)))
        return failed_name;
    if (copy)
        memcpy(p, data, bytes);
    t->has_raw_data = 1;
    t->raw_data.len = bytes;
    t->raw_data.data = p;
    return b->st == RT_OK ? t->name : failed_name;
}

static size_t numel(int ndim, const int64_t *dims)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)dims[i];
    return n;
}

const char *onnx_param(onnx_builder_t *b, const char *name, int ndim, const int64_t *dims,
                       const float *data)
{
    return raw(b, tensor(b, name, ONNX_FLOAT, ndim, dims), data,
               sizeof(float) * numel(ndim, dims), false);
}

const char *onnx_const_float(onnx_builder_t *b, const char *name, float v)
{
    return raw(b, tensor(b, name, ONNX_FLOAT, 0, NULL), &v, sizeof v, true);
}

const char *onnx_const_int64(onnx_builder_t *b, const char *name, int64_t v)
{
    return raw(b, tensor(b, name, ONNX_INT64, 0, NULL), &v, sizeof v, true);
}

const char *onnx_const_int64s(onnx_builder_t *b, const char *name, int n, const int64_t *v)
{
    const int64_t dims[1] = {n};
    return raw(b, tensor(b, name, ONNX_INT64, 1, dims), v, sizeof *v * (size_t)n, true);
}

const char *onnx_const_bool(onnx_builder_t *b, const char *name, int ndim, const int64_t *dims,
                            const bool *v)
{
    /* ONNX bool raw data is one byte per element, 0 or 1 */
    const size_t n = numel(ndim, dims);
    Onnx__TensorProto *t = tensor(b, name, ONNX_BOOL, ndim, dims);
    uint8_t *bytes = balloc(b, n);
    if (!t || !bytes)
        return failed_name;
    for (size_t i = 0; i < n; i++)
        bytes[i] = v[i] ? 1 : 0;
    return raw(b, t, bytes, n, false);
}

/* ---- inputs and outputs -------------------------------------------------------- */

static void value_info(onnx_builder_t *b, ptr_list_t *l, const char *name, int elem_type,
                       int ndim, const int64_t *dims, const char *sym)
{
    Onnx__ValueInfoProto *vi = balloc(b, sizeof *vi);
    Onnx__TypeProto *tp = balloc(b, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = balloc(b, sizeof *tt);
    Onnx__TensorShapeProto *sh = balloc(b, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dv = balloc(b, sizeof *dv * (size_t)ndim);
    if (!vi || !tp || !tt || !sh || !dv)
        return;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i < ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = balloc(b, sizeof *d);
        if (!d)
            return;
        onnx__tensor_shape_proto__dimension__init(d);
        if (dims[i] < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = bstrdup(b, sym);
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
        dv[i] = d;
    }
    sh->n_dim = (size_t)ndim;
    sh->dim = dv;
    tt->has_elem_type = 1;
    tt->elem_type = elem_type;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->name = bstrdup(b, name);
    vi->type = tp;
    push(b, l, vi);
}

void onnx_input(onnx_builder_t *b, const char *name, int elem_type, int ndim,
                const int64_t *dims, const char *sym)
{
    value_info(b, &b->inputs, name, elem_type, ndim, dims, sym);
}

void onnx_output(onnx_builder_t *b, const char *name, int elem_type, int ndim,
                 const int64_t *dims, const char *sym)
{
    value_info(b, &b->outputs, name, elem_type, ndim, dims, sym);
}

/* ---- writing ------------------------------------------------------------------- */

/* protobuf-c's streaming output into a FILE, so a large model is not
 * packed into a second copy in memory. */
typedef struct {
    ProtobufCBuffer base;
    FILE *f;
    int err;   /* errno of the first failed write */
} file_buffer_t;

static void file_append(ProtobufCBuffer *buffer, size_t len, const uint8_t *data)
{
    file_buffer_t *fb = (file_buffer_t *)buffer;
    if (!fb->err && fwrite(data, 1, len, fb->f) != len)
        fb->err = errno ? errno : EIO;
}

static bool little_endian(void)
{
    const uint16_t probe = 1;
    return *(const uint8_t *)&probe == 1;
}

static rt_status write_model(const Onnx__ModelProto *m, const char *path)
{
    /* protobuf's parsers refuse messages of 2 GiB or more */
    const size_t size = onnx__model_proto__get_packed_size(m);
    if (size >= ((size_t)1 << 31))
        return rt_fail(RT_ERR_USAGE,
                       "onnx export: the model is %.2f GiB, over protobuf's 2 GiB limit "
                       "(external data files are not supported)",
                       (double)size / (1u << 30));
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.partial", path) >= (int)sizeof tmp)
        return rt_fail(RT_ERR_USAGE, "--out: path too long");
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return rt_fail(RT_ERR_USAGE, "--out %s: cannot create %s: %s", path, tmp,
                       strerror(errno));
    file_buffer_t fb = {.base = {.append = file_append}, .f = f};
    errno = 0;
    onnx__model_proto__pack_to_buffer(m, &fb.base);
    if (fflush(f) != 0 && !fb.err)
        fb.err = errno ? errno : EIO;
    if (fclose(f) != 0 && !fb.err)
        fb.err = errno ? errno : EIO;
    if (fb.err) {
        remove(tmp);
        return rt_fail(RT_ERR_IO, "--out %s: writing %s: %s", path, tmp, strerror(fb.err));
    }
    if (rename(tmp, path) != 0) {
        const int e = errno;
        remove(tmp);
        return rt_fail(RT_ERR_IO, "--out %s: rename from %s: %s", path, tmp, strerror(e));
    }
    return RT_OK;
}

rt_status onnx_write(onnx_builder_t *b, const char *graph_name, const char *doc,
                     const char *spec, const char *path)
{
    if (!little_endian())
        return rt_fail(RT_ERR_USAGE, "onnx export: a big-endian host cannot write ONNX raw data");
    Onnx__GraphProto *g = balloc(b, sizeof *g);
    Onnx__ModelProto *m = balloc(b, sizeof *m);
    Onnx__OperatorSetIdProto *opset = balloc(b, sizeof *opset);
    Onnx__OperatorSetIdProto **opsets = balloc(b, sizeof *opsets);
    Onnx__StringStringEntryProto *meta = balloc(b, sizeof *meta);
    Onnx__StringStringEntryProto **metas = balloc(b, sizeof *metas);
    if (b->st != RT_OK)
        return b->st;
    onnx__graph_proto__init(g);
    g->name = bstrdup(b, graph_name);
    g->doc_string = bstrdup(b, doc);
    g->n_node = b->nodes.count;
    g->node = (Onnx__NodeProto **)b->nodes.items;
    g->n_initializer = b->inits.count;
    g->initializer = (Onnx__TensorProto **)b->inits.items;
    g->n_input = b->inputs.count;
    g->input = (Onnx__ValueInfoProto **)b->inputs.items;
    g->n_output = b->outputs.count;
    g->output = (Onnx__ValueInfoProto **)b->outputs.items;

    onnx__operator_set_id_proto__init(opset);
    opset->domain = bstrdup(b, "");
    opset->has_version = 1;
    opset->version = RT_ONNX_OPSET;
    opsets[0] = opset;
    onnx__string_string_entry_proto__init(meta);
    meta->key = bstrdup(b, "model_spec");
    meta->value = bstrdup(b, spec);
    metas[0] = meta;

    onnx__model_proto__init(m);
    m->has_ir_version = 1;
    m->ir_version = RT_ONNX_IR_VERSION;
    m->n_opset_import = 1;
    m->opset_import = opsets;
    m->producer_name = bstrdup(b, "ringtrain");
    m->producer_version = bstrdup(b, "0.1.0");
    m->n_metadata_props = 1;
    m->metadata_props = metas;
    m->graph = g;
    if (b->st != RT_OK)
        return b->st;
    return write_model(m, path);
}
