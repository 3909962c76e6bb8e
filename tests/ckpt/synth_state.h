/* synth_state.h - synthetic checkpoint state for the checkpoint tests and
 * the bench: an MLP-shaped parameter set with AdamW moments, sampler and
 * RNG state, every value a closed-form function of (step, array, index)
 * so that tests (and test_ckpt_h5py.py, with numpy) know what to expect.
 *
 * Float arrays: value[k] = (float)(k % 1000) * 0.001f + (float)step + 0.25f * j
 * where j is the array's index in the list (float32 arithmetic, left to right). */
#ifndef RT_TESTS_CKPT_SYNTH_STATE_H
#define RT_TESTS_CKPT_SYNTH_STATE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/ckpt/ckpt_file.h"

#define SYNTH_MAX_ARRAYS 24

typedef struct {
    int64_t in, hidden, out;
    int64_t step;
    int n;
    ckpt_array_t arrays[SYNTH_MAX_ARRAYS];
    char names[SYNTH_MAX_ARRAYS][64];
} synth_state;

static inline float synth_f32(int64_t step, int j, int64_t k)
{
    return (float)(k % 1000) * 0.001f + (float)step + 0.25f * (float)j;
}

static inline void synth_add(synth_state *s, const char *name, rt_dtype t, int rank, int64_t d0, int64_t d1)
{
    ckpt_array_t *a = &s->arrays[s->n];
    snprintf(s->names[s->n], sizeof s->names[0], "%s", name);
    a->name = s->names[s->n];
    a->type = t;
    a->rank = rank;
    a->dims[0] = d0;
    a->dims[1] = d1;
    s->n++;
}

/* The list of arrays with shapes, no data yet. */
static inline void synth_layout(synth_state *s, int64_t in, int64_t hidden, int64_t out)
{
    memset(s, 0, sizeof *s);
    s->in = in;
    s->hidden = hidden;
    s->out = out;
    static const char *const groups[3] = {"params", "optimizer/m", "optimizer/v"};
    for (int g = 0; g < 3; g++) {
        char name[64];
        snprintf(name, sizeof name, "%s/fc1.weight", groups[g]);
        synth_add(s, name, RT_DTYPE_F32, 2, hidden, in);
        snprintf(name, sizeof name, "%s/fc1.bias", groups[g]);
        synth_add(s, name, RT_DTYPE_F32, 1, hidden, 0);
        snprintf(name, sizeof name, "%s/fc2.weight", groups[g]);
        synth_add(s, name, RT_DTYPE_F32, 2, out, hidden);
        snprintf(name, sizeof name, "%s/fc2.bias", groups[g]);
        synth_add(s, name, RT_DTYPE_F32, 1, out, 0);
    }
    synth_add(s, "optimizer/step", RT_DTYPE_I64, 0, 0, 0);
    synth_add(s, "optimizer/lr", RT_DTYPE_F64, 0, 0, 0);
    synth_add(s, "data/seed", RT_DTYPE_I64, 0, 0, 0);
    synth_add(s, "data/epoch", RT_DTYPE_I64, 0, 0, 0);
    synth_add(s, "data/position", RT_DTYPE_I64, 0, 0, 0);
    synth_add(s, "data/shard", RT_DTYPE_I32, 1, 2, 0);
    synth_add(s, "rng/state", RT_DTYPE_U64, 1, 4, 0);
    synth_add(s, "rng/counter", RT_DTYPE_U32, 1, 2, 0);
    synth_add(s, "rng/flags", RT_DTYPE_U8, 1, 5, 0);
}

/* Allocates every array's buffer (zeroed). Returns 0 on success. */
static inline int synth_alloc(synth_state *s)
{
    for (int i = 0; i < s->n; i++) {
        size_t bytes = (size_t)ckpt_array_count(&s->arrays[i]) * rt_dtype_size(s->arrays[i].type);
        s->arrays[i].data = calloc(bytes ? bytes : 1, 1);
        if (!s->arrays[i].data)
            return -1;
    }
    return 0;
}

static inline void synth_free(synth_state *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->arrays[i].data);
        s->arrays[i].data = NULL;
    }
}

/* Value of element k of non-float array i at step (as uint64 bits). */
static inline uint64_t synth_int(const synth_state *s, int i, int64_t step, int64_t k)
{
    const char *n = s->arrays[i].name;
    if (!strcmp(n, "optimizer/step")) return (uint64_t)step;
    if (!strcmp(n, "data/seed")) return 1234;
    if (!strcmp(n, "data/epoch")) return (uint64_t)(step / 10);
    if (!strcmp(n, "data/position")) return (uint64_t)(step * 32);
    if (!strcmp(n, "data/shard")) return (uint64_t)k;
    if (!strcmp(n, "rng/state")) {
        static const uint64_t c[4] = {0, 0x9E3779B97F4A7C15ull, 0xFFFFFFFFFFFFFFFFull, 7};
        return k == 0 ? (uint64_t)step : (k == 1 ? c[1] ^ (uint64_t)step : c[k]);
    }
    if (!strcmp(n, "rng/counter")) return k == 0 ? (uint64_t)step : 1;
    if (!strcmp(n, "rng/flags")) return (uint64_t)(k * 50 + 3);
    return 0;
}

static inline void synth_fill(synth_state *s, int64_t step)
{
    s->step = step;
    for (int i = 0; i < s->n; i++) {
        ckpt_array_t *a = &s->arrays[i];
        int64_t n = ckpt_array_count(a);
        for (int64_t k = 0; k < n; k++) {
            switch (a->type) {
            case RT_DTYPE_F32: ((float *)a->data)[k] = synth_f32(step, i, k); break;
            case RT_DTYPE_F64: ((double *)a->data)[k] = 0.001; break;
            case RT_DTYPE_I32: ((int32_t *)a->data)[k] = (int32_t)synth_int(s, i, step, k); break;
            case RT_DTYPE_I64: ((int64_t *)a->data)[k] = (int64_t)synth_int(s, i, step, k); break;
            case RT_DTYPE_U8: ((uint8_t *)a->data)[k] = (uint8_t)synth_int(s, i, step, k); break;
            case RT_DTYPE_U32: ((uint32_t *)a->data)[k] = (uint32_t)synth_int(s, i, step, k); break;
            case RT_DTYPE_U64: ((uint64_t *)a->data)[k] = synth_int(s, i, step, k); break;
            default: break;
            }
        }
    }
}

/* Index of the first element that differs from synth_fill(step), or -1;
 * *which receives the array index. */
static inline int64_t synth_check(const synth_state *s, int64_t step, int *which)
{
    synth_state want = *s;
    for (int i = 0; i < s->n; i++) {
        const ckpt_array_t *a = &s->arrays[i];
        int64_t n = ckpt_array_count(a);
        size_t es = rt_dtype_size(a->type);
        for (int64_t k = 0; k < n; k++) {
            union { float f; double d; int32_t i32; int64_t i64; uint8_t u8; uint32_t u32; uint64_t u64; } v;
            memset(&v, 0, sizeof v);
            switch (a->type) {
            case RT_DTYPE_F32: v.f = synth_f32(step, i, k); break;
            case RT_DTYPE_F64: v.d = 0.001; break;
            case RT_DTYPE_I32: v.i32 = (int32_t)synth_int(&want, i, step, k); break;
            case RT_DTYPE_I64: v.i64 = (int64_t)synth_int(&want, i, step, k); break;
            case RT_DTYPE_U8: v.u8 = (uint8_t)synth_int(&want, i, step, k); break;
            case RT_DTYPE_U32: v.u32 = (uint32_t)synth_int(&want, i, step, k); break;
            case RT_DTYPE_U64: v.u64 = synth_int(&want, i, step, k); break;
            default: break;
            }
            if (memcmp((const char *)a->data + (size_t)k * es, &v, es) != 0) {
                *which = i;
                return k;
            }
        }
    }
    return -1;
}

/* The metadata the tests write for a step. */
static inline ckpt_meta_t synth_meta(int64_t step, const char *spec)
{
    ckpt_meta_t m;
    memset(&m, 0, sizeof m);
    m.step = step;
    m.epoch = step / 10;
    m.model_spec = spec;
    m.config_json = "{\"optimizer\":\"adamw\",\"lr\":0.001,\"batch\":32,\"note\":\"synthetic \\u00e9\"}";
    m.world_size = 2;
    return m;
}

#endif
