/* fuzz_onnx_export.c - libFuzzer target: the ONNX exporter
 * (trainer/export/onnx/onnx_export.h) round-tripped. The input's first
 * line is a model spec (parsed as `--model` is; mlp and gpt, small models
 * only: at most FUZZ_MAX_PARAMS parameters), the next byte chooses the
 * batch dimension (0: symbolic), and the rest are the weights' bytes,
 * repeated to fill the arena (any float bits: NaN, infinities,
 * denormals). The file written is decoded with protobuf-c's unpack of
 * onnx.proto, independently of the builder that packed it, and must hold:
 * IR version, opset and producer as documented, the spec in the metadata,
 * every parameter as a float32 initializer of its state_dict name, shape
 * and exact bytes; one graph input ("input" or "tokens") with the batch
 * dimension asked for, the output "logits"; and a graph in which every
 * node's input is an initializer, the graph input or an earlier node's
 * output, and no value is produced twice. A spec the exporter refuses
 * must be refused as a usage error, never another failure. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "onnx.pb-c.h"
#include "trainer/export/onnx/onnx_builder.h"
#include "trainer/export/onnx/onnx_export.h"
#include "trainer/run/saved_model.h"

#define FUZZ_MAX_PARAMS (1 << 15)
#define MAX_NAMES 4096

#define REQUIRE(cond, ...)                                                   \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "onnx round trip (%s): ", sm->spec.text);        \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            abort();                                                         \
        }                                                                    \
    } while (0)

static int find_name(char **names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

static void check_value_info(const saved_model_t *sm, const Onnx__ValueInfoProto *v,
                             const char *name, int elem_type, int64_t batch)
{
    REQUIRE(strcmp(v->name, name) == 0, "graph value '%s', expected '%s'", v->name, name);
    REQUIRE(v->type && v->type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE &&
                v->type->tensor_type->elem_type == elem_type &&
                v->type->tensor_type->shape && v->type->tensor_type->shape->n_dim >= 2,
            "'%s': not a tensor of type %d with a shape", name, elem_type);
    const Onnx__TensorShapeProto__Dimension *d = v->type->tensor_type->shape->dim[0];
    if (batch > 0)
        REQUIRE(d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
                    d->dim_value == batch,
                "'%s': batch dimension is not %lld", name, (long long)batch);
    else
        REQUIRE(d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                    strcmp(d->dim_param, "batch") == 0,
                "'%s': batch dimension is not symbolic", name);
}

static void check_model(const saved_model_t *sm, const Onnx__ModelProto *m, int64_t batch)
{
    const bool mlp = sm->spec.kind == &model_kind_mlp;
    REQUIRE(m->ir_version == RT_ONNX_IR_VERSION && m->n_opset_import == 1 &&
                m->opset_import[0]->version == RT_ONNX_OPSET &&
                strcmp(m->opset_import[0]->domain, "") == 0,
            "IR version %lld / opsets not as written", (long long)m->ir_version);
    REQUIRE(strcmp(m->producer_name, "ringtrain") == 0, "producer '%s'", m->producer_name);
    REQUIRE(m->n_metadata_props == 1 &&
                strcmp(m->metadata_props[0]->key, "model_spec") == 0 &&
                strcmp(m->metadata_props[0]->value, sm->spec.text) == 0,
            "metadata does not hold the spec");
    const Onnx__GraphProto *g = m->graph;
    REQUIRE(g, "no graph");

    /* the parameters, exactly */
    for (int i = 0; i < sm->reg.count; i++) {
        const param_entry_t *e = &sm->reg.entries[i];
        const Onnx__TensorProto *t = NULL;
        for (size_t j = 0; j < g->n_initializer && !t; j++)
            if (strcmp(g->initializer[j]->name, e->name) == 0)
                t = g->initializer[j];
        REQUIRE(t, "parameter %s is not an initializer", e->name);
        REQUIRE(t->data_type == ONNX_FLOAT && t->n_dims == (size_t)e->ndim,
                "%s: type %d, %zu dims", e->name, t->data_type, t->n_dims);
        for (int d = 0; d < e->ndim; d++)
            REQUIRE(t->dims[d] == e->shape[d], "%s: dimension %d is %lld, not %lld", e->name,
                    d, (long long)t->dims[d], (long long)e->shape[d]);
        REQUIRE(t->has_raw_data && t->raw_data.len == sizeof(float) * (size_t)e->numel &&
                    memcmp(t->raw_data.data, sm->params + e->offset, t->raw_data.len) == 0,
                "%s: the data differs from the weights", e->name);
    }

    /* inputs and outputs */
    REQUIRE(g->n_input == 1 && g->n_output == 1, "%zu inputs, %zu outputs", g->n_input,
            g->n_output);
    check_value_info(sm, g->input[0], mlp ? "input" : "tokens", mlp ? ONNX_FLOAT : ONNX_INT64,
                     batch);
    check_value_info(sm, g->output[0], "logits", ONNX_FLOAT, batch);

    /* a well-formed graph: defined before use, defined once */
    static char *defined[MAX_NAMES];
    int n = 0;
    REQUIRE(g->n_initializer + 1 < MAX_NAMES, "%zu initializers", g->n_initializer);
    for (size_t j = 0; j < g->n_initializer; j++) {
        REQUIRE(find_name(defined, n, g->initializer[j]->name) < 0, "initializer %s twice",
                g->initializer[j]->name);
        defined[n++] = g->initializer[j]->name;
    }
    defined[n++] = g->input[0]->name;
    for (size_t k = 0; k < g->n_node; k++) {
        const Onnx__NodeProto *node = g->node[k];
        for (size_t j = 0; j < node->n_input; j++)
            REQUIRE(node->input[j][0] == '\0' || find_name(defined, n, node->input[j]) >= 0,
                    "node %zu (%s): input '%s' is not defined before it", k, node->op_type,
                    node->input[j]);
        for (size_t j = 0; j < node->n_output; j++) {
            REQUIRE(find_name(defined, n, node->output[j]) < 0, "node %zu (%s): '%s' again", k,
                    node->op_type, node->output[j]);
            REQUIRE(n < MAX_NAMES, "over %d values", MAX_NAMES);
            defined[n++] = node->output[j];
        }
    }
    REQUIRE(find_name(defined, n, "logits") >= 0, "no node produces logits");
}

/* The file's bytes (NULL on failure). */
static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size < 256 ? size : 256);
    if (!nl)
        return 0;
    char text[256];
    memcpy(text, data, (size_t)(nl - data));
    text[nl - data] = '\0';
    const uint8_t *rest = nl + 1;
    size_t rest_len = size - (size_t)(rest - data);
    int64_t batch = 0;
    if (rest_len) {
        batch = rest[0] % 4; /* 0: symbolic */
        rest++;
        rest_len--;
    }

    saved_model_t model, *sm = &model;
    memset(sm, 0, sizeof *sm);
    if (model_spec_parse(text, &sm->spec) != RT_OK)
        return 0;
    if ((sm->spec.kind != &model_kind_mlp && sm->spec.kind != &model_kind_gpt) ||
        sm->spec.kind->declare(sm->spec.cfg, &sm->reg) != RT_OK ||
        sm->reg.total > FUZZ_MAX_PARAMS) {
        param_registry_free(&sm->reg);
        model_spec_free(&sm->spec);
        return 0;
    }
    sm->spec.kind->describe(sm->spec.cfg, &sm->io);
    sm->params = calloc((size_t)sm->reg.total + 1, sizeof(float));
    if (!sm->params)
        abort();
    uint8_t *bytes = (uint8_t *)sm->params;
    for (size_t i = 0; rest_len && i < sizeof(float) * (size_t)sm->reg.total; i++)
        bytes[i] = rest[i % rest_len];

    char path[512];
    fuzz_path("model.onnx", path, sizeof path);
    rt_status st = onnx_export_saved(sm, batch, path);
    if (st == RT_OK) {
        size_t len = 0;
        uint8_t *buf = slurp(path, &len);
        REQUIRE(buf, "cannot read back %s", path);
        Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
        REQUIRE(m, "the file does not decode as an ONNX ModelProto");
        check_model(sm, m, batch);
        onnx__model_proto__free_unpacked(m, NULL);
        free(buf);
        unlink(path);
    } else {
        REQUIRE(st == RT_ERR_USAGE, "export failed with status %d, not a usage error: %s",
                (int)st, rt_last_error());
    }
    free(sm->params);
    param_registry_free(&sm->reg);
    model_spec_free(&sm->spec);
    return 0;
}
