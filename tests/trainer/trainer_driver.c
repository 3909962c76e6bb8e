/* trainer_driver.c - runs trainer/ code on arrays exchanged as raw files, so
 * that the Python oracle tests (PyTorch on the CPU) can feed the same weights,
 * inputs and batches and compare every output. Files are raw little-endian
 * arrays in DIR (float32 unless named otherwise; labels int32), as numpy's
 * tofile/fromfile write and read them.
 *
 *   op-linear  --dir D --B n --C n --OC n   inp weight bias dout -> out dinp dweight dbias
 *   op-relu    --dir D --N n                inp dout -> out dinp
 *   op-xent    --dir D --B n --V n          logits labels -> losses probs dlogits (scale 1/B)
 *   mlp-grad   --dir D --spec S --B n       params inputs labels -> loss(f64) grads
 *   init       --dir D --spec S --seed n    -> params
 *   train      --dir D --spec S --B n --steps n [--accum k] [optimizer flags]
 *              params inputs[steps*accum*B] labels -> losses(f64, per step)
 *              grad_norms(f64) lrs(f64) params_out
 * "params"/"grads" are the state_dict tensors concatenated in order
 * (fc1.weight, fc1.bias, fc2.weight, ...), without the arena's gaps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/check.h"
#include "trainer/mlp.h"
#include "trainer/op.h"
#include "trainer/optim.h"
#include "trainer/schedule.h"
#include "trainer/train_step.h"

static const char *dir = ".";

static rt_status file_read(const char *name, void *buf, size_t bytes)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return rt_fail(RT_ERR_IO, "open %s: %s", path, strerror(errno));
    size_t got = fread(buf, 1, bytes, f);
    int extra = fgetc(f);
    fclose(f);
    if (got != bytes || extra != EOF)
        return rt_fail(RT_ERR_FORMAT, "%s: expected exactly %zu bytes", path, bytes);
    return RT_OK;
}

static rt_status file_write(const char *name, const void *buf, size_t bytes)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return rt_fail(RT_ERR_IO, "open %s: %s", path, strerror(errno));
    size_t put = fwrite(buf, 1, bytes, f);
    if (fclose(f) != 0 || put != bytes)
        return rt_fail(RT_ERR_IO, "write %s failed", path);
    return RT_OK;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

/* Copies between the arena (with gaps) and the packed file layout. */
static void params_pack(const param_set_t *ps, const float *arena, float *packed)
{
    for (int i = 0; i < ps->count; i++) {
        memcpy(packed, arena + ps->entries[i].offset, sizeof(float) * ps->entries[i].numel);
        packed += ps->entries[i].numel;
    }
}

static void params_unpack(const param_set_t *ps, const float *packed, float *arena)
{
    for (int i = 0; i < ps->count; i++) {
        memcpy(arena + ps->entries[i].offset, packed, sizeof(float) * ps->entries[i].numel);
        packed += ps->entries[i].numel;
    }
}

typedef struct {
    const float *x;
    const int32_t *y;
    int B, in, accum;
    int64_t step;
} driver_batches_t;

static rt_status driver_next(void *ctx, int k, const float **x, const int32_t **y, int *B)
{
    driver_batches_t *d = ctx;
    int64_t row = (d->step * d->accum + k) * (int64_t)d->B;
    *x = d->x + row * d->in;
    *y = d->y + row;
    *B = d->B;
    return RT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: trainer_driver MODE --dir D ...\n");
        return 2;
    }
    const char *mode = argv[1];
    const char *spec_text = NULL, *opt_name = "sgd", *sched_name = "constant";
    int B = 0, C = 0, OC = 0, V = 0, steps = 0, accum = 1, seed = 0, warmup = 0;
    int64_t N = 0;
    double lr = 0.01, momentum = 0.0, wd = -1.0, clip = 0.0;
    arg_spec specs[] = {
        {"dir", ARG_STRING, &dir, "D", "exchange directory", true, false},
        {"spec", ARG_STRING, &spec_text, "S", "model spec", false, false},
        {"B", ARG_INT, &B, "n", "rows", false, false},
        {"C", ARG_INT, &C, "n", "inputs", false, false},
        {"OC", ARG_INT, &OC, "n", "outputs", false, false},
        {"V", ARG_INT, &V, "n", "classes", false, false},
        {"N", ARG_I64, &N, "n", "elements", false, false},
        {"steps", ARG_INT, &steps, "n", "steps", false, false},
        {"accum", ARG_INT, &accum, "n", "micro-batches per step", false, false},
        {"seed", ARG_INT, &seed, "n", "init seed", false, false},
        {"optimizer", ARG_STRING, &opt_name, "sgd|adamw", "optimizer", false, false},
        {"lr", ARG_DOUBLE, &lr, "X", "learning rate", false, false},
        {"momentum", ARG_DOUBLE, &momentum, "X", "SGD momentum", false, false},
        {"weight-decay", ARG_DOUBLE, &wd, "X", "weight decay", false, false},
        {"warmup", ARG_INT, &warmup, "n", "warmup steps", false, false},
        {"schedule", ARG_STRING, &sched_name, "constant|cosine", "schedule", false, false},
        {"grad-clip", ARG_DOUBLE, &clip, "X", "max gradient norm", false, false},
    };
    arg_command cmd = {.prog = "trainer_driver MODE", .summary = "trainer test driver"};
    rt_status st = args_parse(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc - 2, argv + 2);
    if (st != RT_OK) {
        if (st != RT_HELP)
            fprintf(stderr, "trainer_driver: %s\n", rt_last_error());
        return rt_exit_code(st);
    }

    if (!strcmp(mode, "op-linear")) {
        float *inp = xcalloc((size_t)B * C, 4), *w = xcalloc((size_t)OC * C, 4),
              *b = xcalloc(OC, 4), *dout = xcalloc((size_t)B * OC, 4),
              *out = xcalloc((size_t)B * OC, 4), *dinp = xcalloc((size_t)B * C, 4),
              *dw = xcalloc((size_t)OC * C, 4), *db = xcalloc(OC, 4);
        TRY_GOTO(st, file_read("inp", inp, 4 * (size_t)B * C), done);
        TRY_GOTO(st, file_read("weight", w, 4 * (size_t)OC * C), done);
        TRY_GOTO(st, file_read("bias", b, 4 * (size_t)OC), done);
        TRY_GOTO(st, file_read("dout", dout, 4 * (size_t)B * OC), done);
        linear_forward_cpu(out, inp, w, b, B, C, OC);
        linear_backward_cpu(dinp, dw, db, dout, inp, w, B, C, OC);
        TRY_GOTO(st, file_write("out", out, 4 * (size_t)B * OC), done);
        TRY_GOTO(st, file_write("dinp", dinp, 4 * (size_t)B * C), done);
        TRY_GOTO(st, file_write("dweight", dw, 4 * (size_t)OC * C), done);
        TRY_GOTO(st, file_write("dbias", db, 4 * (size_t)OC), done);
    } else if (!strcmp(mode, "op-relu")) {
        float *inp = xcalloc(N, 4), *dout = xcalloc(N, 4), *out = xcalloc(N, 4),
              *dinp = xcalloc(N, 4);
        TRY_GOTO(st, file_read("inp", inp, 4 * (size_t)N), done);
        TRY_GOTO(st, file_read("dout", dout, 4 * (size_t)N), done);
        relu_forward_cpu(out, inp, N);
        relu_backward_cpu(dinp, dout, out, N);
        TRY_GOTO(st, file_write("out", out, 4 * (size_t)N), done);
        TRY_GOTO(st, file_write("dinp", dinp, 4 * (size_t)N), done);
    } else if (!strcmp(mode, "op-xent")) {
        float *logits = xcalloc((size_t)B * V, 4), *probs = xcalloc((size_t)B * V, 4),
              *losses = xcalloc(B, 4), *dl = xcalloc((size_t)B * V, 4);
        int32_t *labels = xcalloc(B, 4);
        TRY_GOTO(st, file_read("logits", logits, 4 * (size_t)B * V), done);
        TRY_GOTO(st, file_read("labels", labels, 4 * (size_t)B), done);
        softmax_xent_forward_cpu(losses, probs, logits, labels, B, V);
        softmax_xent_backward_cpu(dl, probs, labels, 1.0f / (float)B, B, V);
        int64_t correct = accuracy_count_cpu(logits, labels, B, V);
        TRY_GOTO(st, file_write("losses", losses, 4 * (size_t)B), done);
        TRY_GOTO(st, file_write("probs", probs, 4 * (size_t)B * V), done);
        TRY_GOTO(st, file_write("dlogits", dl, 4 * (size_t)B * V), done);
        TRY_GOTO(st, file_write("correct", &correct, sizeof correct), done);
    } else if (!strcmp(mode, "mlp-grad") || !strcmp(mode, "init") || !strcmp(mode, "train")) {
        mlp_spec_t spec;
        mlp_t m;
        TRY_GOTO(st, mlp_spec_parse(spec_text ? spec_text : "", &spec), done);
        int rows = B > 0 ? B : 1;
        TRY_GOTO(st, mlp_create(&m, &spec, rows), done);
        int64_t np = param_set_numel(&m.params);
        float *packed = xcalloc(np, 4);
        if (!strcmp(mode, "init")) {
            mlp_init_params(&m, (uint64_t)seed);
            params_pack(&m.params, m.params.data, packed);
            TRY_GOTO(st, file_write("params", packed, 4 * (size_t)np), model_done);
            goto model_done;
        }
        TRY_GOTO(st, file_read("params", packed, 4 * (size_t)np), model_done);
        params_unpack(&m.params, packed, m.params.data);
        int in = spec.sizes[0];
        int64_t rows_total = !strcmp(mode, "train") ? (int64_t)steps * accum * B : B;
        float *x = xcalloc((size_t)rows_total * in, 4);
        int32_t *y = xcalloc((size_t)rows_total, 4);
        TRY_GOTO(st, file_read("inputs", x, 4 * (size_t)rows_total * in), model_done);
        TRY_GOTO(st, file_read("labels", y, 4 * (size_t)rows_total), model_done);
        if (!strcmp(mode, "mlp-grad")) {
            double loss_sum;
            mlp_forward(&m, x, y, B, &loss_sum, NULL);
            TRY_GOTO(st, mlp_backward(&m, y, 1.0f / (float)B, NULL, NULL), model_done);
            double loss = loss_sum / B;
            params_pack(&m.params, m.params.grad, packed);
            TRY_GOTO(st, file_write("loss", &loss, sizeof loss), model_done);
            TRY_GOTO(st, file_write("grads", packed, 4 * (size_t)np), model_done);
            goto model_done;
        }
        optim_config_t oc;
        optim_kind kind;
        sched_kind sk;
        TRY_GOTO(st, optim_kind_parse(opt_name, &kind), model_done);
        TRY_GOTO(st, sched_kind_parse(sched_name, &sk), model_done);
        oc = optim_config_default(kind);
        oc.momentum = (float)momentum;
        if (wd >= 0)
            oc.weight_decay = (float)wd;
        optimizer_t opt;
        TRY_GOTO(st, optimizer_create(&opt, &oc, m.params.total), model_done);
        train_step_t t;
        train_step_init(&t, &m, &opt);
        t.accum = accum;
        t.grad_clip = clip;
        t.sched = (schedule_t){.kind = sk, .base_lr = lr, .warmup = warmup, .total = steps};
        driver_batches_t db = {.x = x, .y = y, .B = B, .in = in, .accum = accum};
        double *losses = xcalloc(steps, 8), *norms = xcalloc(steps, 8), *lrs = xcalloc(steps, 8);
        for (int s = 0; s < steps && st == RT_OK; s++) {
            step_result_t r;
            db.step = s;
            st = train_step_run(&t, driver_next, &db, &r);
            losses[s] = r.loss;
            norms[s] = r.grad_norm;
            lrs[s] = r.lr;
        }
        optimizer_free(&opt);
        if (st != RT_OK)
            goto model_done;
        params_pack(&m.params, m.params.data, packed);
        TRY_GOTO(st, file_write("losses", losses, 8 * (size_t)steps), model_done);
        TRY_GOTO(st, file_write("grad_norms", norms, 8 * (size_t)steps), model_done);
        TRY_GOTO(st, file_write("lrs", lrs, 8 * (size_t)steps), model_done);
        TRY_GOTO(st, file_write("params_out", packed, 4 * (size_t)np), model_done);
    model_done:
        mlp_free(&m);
    } else {
        fprintf(stderr, "trainer_driver: unknown mode '%s'\n", mode);
        return 2;
    }
done:
    /* a test driver: the process exit frees what the modes allocated */
    if (st != RT_OK)
        fprintf(stderr, "trainer_driver %s: %s\n", mode, rt_last_error());
    return rt_exit_code(st);
}
