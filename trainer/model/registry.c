/* registry.c - the model kinds this build knows, found by a spec's prefix,
 * and the instance lifecycle common to all of them (see model.h). A new
 * model is one file defining its model_kind_t plus one line here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "trainer/model/model.h"

static const model_kind_t *const model_kinds[] = {
    &model_kind_mlp,
    &model_kind_gpt,
};
#define MODEL_KINDS (sizeof model_kinds / sizeof model_kinds[0])

const char *model_kinds_syntax(void)
{
    static char buf[512];
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < MODEL_KINDS && used < sizeof buf; i++)
        used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%s", i ? " | " : "",
                                 model_kinds[i]->syntax);
    return buf;
}

rt_status model_spec_parse(const char *text, model_spec_t *out)
{
    memset(out, 0, sizeof *out);
    const char *colon = text ? strchr(text, ':') : NULL;
    size_t len = colon ? (size_t)(colon - text) : 0;
    for (size_t i = 0; colon && i < MODEL_KINDS; i++) {
        const model_kind_t *k = model_kinds[i];
        if (strlen(k->name) == len && !strncmp(text, k->name, len)) {
            TRY(k->parse(text, &out->cfg));
            out->kind = k;
            k->format(out->cfg, out->text, sizeof out->text);
            return RT_OK;
        }
    }
    return rt_fail(RT_ERR_USAGE, "model spec '%s' is not known (expected %s)", text ? text : "",
                   model_kinds_syntax());
}

void model_spec_free(model_spec_t *s)
{
    free(s->cfg);
    memset(s, 0, sizeof *s);
}

rt_status model_open(model_t *m, const model_spec_t *spec, const param_registry_t *reg,
                     rt_device_t *dev, float *params, float *grads, int max_batch)
{
    memset(m, 0, sizeof *m);
    CHECK_ARG(spec && spec->kind && reg && dev && params, "model_open: NULL argument");
    CHECK_ARG(max_batch >= 1, "batch must be positive, got %d", max_batch);
    m->kind = spec->kind;
    m->cfg = spec->cfg;
    m->reg = reg;
    m->dev = dev;
    m->params = params;
    m->grads = grads;
    m->max_batch = max_batch;
    rt_status st = m->kind->open(m);
    if (st != RT_OK)
        model_close(m);
    return st;
}

void model_close(model_t *m)
{
    if (m->kind && m->kind->close)
        m->kind->close(m);
    memset(m, 0, sizeof *m);
}
