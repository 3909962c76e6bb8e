/* trainer_driver.c - runs trainer/ code on arrays exchanged as raw files, so
 * that the Python oracle tests (PyTorch on the CPU) can feed the same weights,
 * inputs and batches and compare every output. Files are raw little-endian
 * arrays in DIR (float32 unless named otherwise; labels int32), as numpy's
 * tofile/fromfile write and read them.
 *
 *   op-linear  --dir D --B n --C n --OC n   inp weight bias dout -> out dinp dweight dbias
 *   op-relu    --dir D --N n                inp dout -> out dinp
 *   op-xent    --dir D --B n --V n          logits labels -> losses probs dlogits (scale 1/B)
 *   model-grad --dir D --spec S --B n       params inputs labels -> loss(f64) logits grads
 *              (mlp-grad: the same)
 *   init       --dir D --spec S --seed n    -> params
 *   train      --dir D --spec S --B n --steps n [--accum k] [optimizer flags]
 *              params inputs[steps*accum*B] labels -> losses(f64, per step)
 *              grad_norms(f64) lrs(f64) params_out
 * For a token model (gpt:...) "inputs" and "labels" are int32 [B, ctx] (the
 * targets) in model-grad, and train reads one int32 stream "tokens" of
 * steps*accum*B*ctx + 1 tokens instead, written as a tokens dataset of the
 * model's vocabulary: micro-batch j's row r is window j*B + r, tokens
 * [(j*B + r)*ctx, (j*B + r)*ctx + ctx] (docs/FORMATS.md, unshuffled).
 * "params"/"grads" are the state_dict tensors concatenated in order
 * (fc1.weight, fc1.bias, fc2.weight, ...), without the arena's gaps.
 * The models run through the model interface on the CPU device, and
 * `train` is a whole training session (trainer/run/session.h, the call
 * behind `ringtrain train`) over a dataset file written from the inputs,
 * read in file order, with the parameters set through its init hook. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/check.h"
#include "data/dataset_write.h"
#include "trainer/model/model.h"
#include "trainer/ops/device.h"
#include "trainer/ops/op_cpu.h"
#include "trainer/run/session.h"

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
static void params_pack(const param_registry_t *reg, const float *arena, float *packed)
{
    for (int i = 0; i < reg->count; i++) {
        memcpy(packed, arena + reg->entries[i].offset, sizeof(float) * reg->entries[i].numel);
        packed += reg->entries[i].numel;
    }
}

static void params_unpack(const param_registry_t *reg, const float *packed, float *arena)
{
    for (int i = 0; i < reg->count; i++) {
        memcpy(arena + reg->entries[i].offset, packed, sizeof(float) * reg->entries[i].numel);
        packed += reg->entries[i].numel;
    }
}

/* A tokens dataset (uint8 up to 256 tokens, else uint16) of the stream. */
static rt_status write_tokens(const char *path, const int32_t *stream, int64_t n, int vocab)
{
    const bool narrow = vocab <= 256;
    void *buf = xcalloc((size_t)n, narrow ? 1 : 2);
    for (int64_t i = 0; i < n; i++) {
        if (stream[i] < 0 || stream[i] >= vocab)
            return rt_fail(RT_ERR_INVALID, "token %d at %lld is outside the vocabulary of %d",
                           stream[i], (long long)i, vocab);
        if (narrow)
            ((uint8_t *)buf)[i] = (uint8_t)stream[i];
        else
            ((uint16_t *)buf)[i] = (uint16_t)stream[i];
    }
    dataset_writer_t *w = NULL;
    TRY(dataset_writer_create(path, &w));
    rt_status st = dataset_writer_tokens(w, n, narrow ? RT_DTYPE_U8 : RT_DTYPE_U16, vocab);
    if (st == RT_OK)
        st = dataset_writer_put(w, "tokens", 0, n, buf);
    free(buf);
    if (st != RT_OK) {
        dataset_writer_abort(w);
        return st;
    }
    return dataset_writer_commit(w);
}

/* The session's hooks: initial parameters from the packed file, and each
 * step's loss, gradient norm and learning rate; the final parameters. */
typedef struct {
    const float *packed_in;
    float *packed_out;
    double *losses, *norms, *lrs;
    int steps, recorded;
} train_record_t;

static rt_status train_on_init(void *ctx, const param_registry_t *reg, float *params)
{
    train_record_t *t = ctx;
    params_unpack(reg, t->packed_in, params);
    return RT_OK;
}

static void train_after_step(void *ctx, const session_step_report_t *r)
{
    train_record_t *t = ctx;
    int s = (int)r->step - 1;
    if (s >= 0 && s < t->steps && r->result->have) {
        t->losses[s] = r->result->loss;
        t->norms[s] = r->result->grad_norm;
        t->lrs[s] = r->result->lr;
        t->recorded++;
    }
}

static rt_status train_on_end(void *ctx, const param_registry_t *reg, const float *params)
{
    train_record_t *t = ctx;
    params_pack(reg, params, t->packed_out);
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
    } else if (!strcmp(mode, "op-layernorm") || !strcmp(mode, "op-gelu") ||
               !strcmp(mode, "op-attention") || !strcmp(mode, "op-embedding")) {
        /* The transformer's ops (op_cpu.h); gradients start from zero.
         *   op-layernorm --N n --C n  inp weight bias dout
         *                             -> out mean rstd dinp dweight dbias (eps 1e-5)
         *   op-gelu      --N n        inp dout -> out dinp
         *   op-attention              dims(int32 B T C NH) qkv dout -> out att dqkv
         *   op-embedding              dims(int32 B T C V) tokens(int32) wte wpe[T,C] dout
         *                             -> out dwte dwpe
         * T and NH come in a file so that these modes need no flags of their own. */
        if (!strcmp(mode, "op-layernorm")) {
            size_t n = (size_t)N * C;
            float *inp = xcalloc(n, 4), *w = xcalloc(C, 4), *b = xcalloc(C, 4),
                  *dout = xcalloc(n, 4), *out = xcalloc(n, 4), *mean = xcalloc(N, 4),
                  *rstd = xcalloc(N, 4), *dinp = xcalloc(n, 4), *dw = xcalloc(C, 4),
                  *db = xcalloc(C, 4);
            TRY_GOTO(st, file_read("inp", inp, 4 * n), done);
            TRY_GOTO(st, file_read("weight", w, 4 * (size_t)C), done);
            TRY_GOTO(st, file_read("bias", b, 4 * (size_t)C), done);
            TRY_GOTO(st, file_read("dout", dout, 4 * n), done);
            layernorm_forward_cpu(out, mean, rstd, inp, w, b, N, C, 1e-5f);
            layernorm_backward_cpu(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
            TRY_GOTO(st, file_write("out", out, 4 * n), done);
            TRY_GOTO(st, file_write("mean", mean, 4 * (size_t)N), done);
            TRY_GOTO(st, file_write("rstd", rstd, 4 * (size_t)N), done);
            TRY_GOTO(st, file_write("dinp", dinp, 4 * n), done);
            TRY_GOTO(st, file_write("dweight", dw, 4 * (size_t)C), done);
            TRY_GOTO(st, file_write("dbias", db, 4 * (size_t)C), done);
        } else if (!strcmp(mode, "op-gelu")) {
            float *inp = xcalloc(N, 4), *dout = xcalloc(N, 4), *out = xcalloc(N, 4),
                  *dinp = xcalloc(N, 4);
            TRY_GOTO(st, file_read("inp", inp, 4 * (size_t)N), done);
            TRY_GOTO(st, file_read("dout", dout, 4 * (size_t)N), done);
            gelu_forward_cpu(out, inp, N);
            gelu_backward_cpu(dinp, inp, dout, N);
            TRY_GOTO(st, file_write("out", out, 4 * (size_t)N), done);
            TRY_GOTO(st, file_write("dinp", dinp, 4 * (size_t)N), done);
        } else {
            int32_t dims[4];
            TRY_GOTO(st, file_read("dims", dims, sizeof dims), done);
            const int b_ = dims[0], t_ = dims[1], c_ = dims[2], d3 = dims[3];
            if (b_ < 1 || t_ < 1 || c_ < 1 || d3 < 1) {
                st = rt_fail(RT_ERR_USAGE, "dims must be positive");
                goto done;
            }
            size_t rows = (size_t)b_ * t_, nout = rows * c_;
            if (!strcmp(mode, "op-attention")) {
                if (c_ % d3) {
                    st = rt_fail(RT_ERR_USAGE, "C %% NH != 0");
                    goto done;
                }
                size_t natt = (size_t)b_ * d3 * t_ * t_;
                float *qkv = xcalloc(3 * nout, 4), *dout = xcalloc(nout, 4),
                      *out = xcalloc(nout, 4), *att = xcalloc(natt, 4),
                      *dqkv = xcalloc(3 * nout, 4), *scratch = xcalloc(natt, 4);
                TRY_GOTO(st, file_read("qkv", qkv, 4 * 3 * nout), done);
                TRY_GOTO(st, file_read("dout", dout, 4 * nout), done);
                attention_forward_cpu(out, att, qkv, b_, t_, c_, d3);
                attention_backward_cpu(dqkv, scratch, dout, qkv, att, b_, t_, c_, d3);
                TRY_GOTO(st, file_write("out", out, 4 * nout), done);
                TRY_GOTO(st, file_write("att", att, 4 * natt), done);
                TRY_GOTO(st, file_write("dqkv", dqkv, 4 * 3 * nout), done);
            } else {
                size_t nte = (size_t)d3 * c_, npe = (size_t)t_ * c_;
                int32_t *tok = xcalloc(rows, 4);
                float *wte = xcalloc(nte, 4), *wpe = xcalloc(npe, 4), *dout = xcalloc(nout, 4),
                      *out = xcalloc(nout, 4), *dwte = xcalloc(nte, 4), *dwpe = xcalloc(npe, 4);
                TRY_GOTO(st, file_read("tokens", tok, 4 * rows), done);
                for (size_t i = 0; i < rows; i++)
                    if (tok[i] < 0 || tok[i] >= d3) {
                        st = rt_fail(RT_ERR_USAGE, "token %d outside [0, %d)", tok[i], d3);
                        goto done;
                    }
                TRY_GOTO(st, file_read("wte", wte, 4 * nte), done);
                TRY_GOTO(st, file_read("wpe", wpe, 4 * npe), done);
                TRY_GOTO(st, file_read("dout", dout, 4 * nout), done);
                embedding_forward_cpu(out, tok, wte, wpe, b_, t_, c_);
                embedding_backward_cpu(dwte, dwpe, dout, tok, b_, t_, c_);
                TRY_GOTO(st, file_write("out", out, 4 * nout), done);
                TRY_GOTO(st, file_write("dwte", dwte, 4 * nte), done);
                TRY_GOTO(st, file_write("dwpe", dwpe, 4 * npe), done);
            }
        }
    } else if (!strcmp(mode, "mlp-grad") || !strcmp(mode, "model-grad") || !strcmp(mode, "init") ||
               !strcmp(mode, "train")) {
        model_spec_t spec;
        param_registry_t reg = {0};
        TRY_GOTO(st, model_spec_parse(spec_text ? spec_text : "", &spec), done);
        TRY_GOTO(st, spec.kind->declare(spec.cfg, &reg), done);
        model_io_t io;
        spec.kind->describe(spec.cfg, &io);
        int64_t np = param_numel(&reg);
        float *packed = xcalloc(np, 4), *arena = xcalloc(reg.total, 4);
        if (!strcmp(mode, "init")) {
            spec.kind->init(spec.cfg, &reg, arena, (uint64_t)seed);
            params_pack(&reg, arena, packed);
            TRY_GOTO(st, file_write("params", packed, 4 * (size_t)np), done);
            goto done;
        }
        TRY_GOTO(st, file_read("params", packed, 4 * (size_t)np), done);
        const bool tokens = io.batch == RT_BATCH_TOKENS;
        const int64_t in = tokens ? io.context : io.features, T = tokens ? io.context : 1;
        int64_t rows_total = !strcmp(mode, "train") ? (int64_t)steps * accum * B : B;
        float *x = NULL;
        int32_t *y = NULL, *stream = NULL;
        if (tokens && !strcmp(mode, "train")) {
            stream = xcalloc((size_t)(rows_total * T + 1), 4);
            TRY_GOTO(st, file_read("tokens", stream, 4 * (size_t)(rows_total * T + 1)), done);
        } else {
            x = xcalloc((size_t)rows_total * in, 4);
            y = xcalloc((size_t)rows_total * T, 4);
            TRY_GOTO(st, file_read("inputs", x, 4 * (size_t)rows_total * in), done);
            TRY_GOTO(st, file_read("labels", y, 4 * (size_t)rows_total * T), done);
        }
        if (strcmp(mode, "train") != 0) {
            rt_device_t *dev = NULL;
            device_config_t cpu = {.kind = RT_DEVICE_CPU};
            float *grads = xcalloc(reg.total, 4);
            model_t m;
            TRY_GOTO(st, device_open(&dev, &cpu), done);
            params_unpack(&reg, packed, arena);
            TRY_GOTO(st, model_open(&m, &spec, &reg, dev, arena, grads, B), done);
            rt_batch_t batch = {.rows = B};
            if (tokens) {
                batch.inputs = tensor_2d(x, RT_DTYPE_I32, B, T);
                batch.targets = tensor_2d(y, RT_DTYPE_I32, B, T);
            } else {
                batch.inputs = tensor_2d(x, RT_DTYPE_F32, B, in);
                batch.targets = tensor_1d(y, RT_DTYPE_I32, B);
            }
            rt_tensor_t losses, logits;
            TRY_GOTO(st, m.kind->forward(&m, &batch, &losses), done);
            const int64_t n = tensor_numel(&losses);
            double loss = 0;
            for (int64_t i = 0; i < n; i++)
                loss += ((const float *)losses.data)[i];
            loss /= (double)n;
            TRY_GOTO(st, m.kind->logits(&m, &logits), done);
            TRY_GOTO(st, file_write("logits", logits.data, tensor_bytes(&logits)), done);
            TRY_GOTO(st, m.kind->backward(&m, &batch, (float)(1.0 / (double)n), NULL, NULL), done);
            params_pack(&reg, grads, packed);
            TRY_GOTO(st, file_write("loss", &loss, sizeof loss), done);
            TRY_GOTO(st, file_write("grads", packed, 4 * (size_t)np), done);
            goto done;
        }
        /* train: a whole session over the batches in file order */
        char data_path[1100];
        snprintf(data_path, sizeof data_path, "%s/train.h5", dir);
        if (tokens)
            TRY_GOTO(st, write_tokens(data_path, stream, rows_total * T + 1, io.vocab), done);
        else
            TRY_GOTO(st, dataset_write_f32_classification(data_path, x, y, rows_total, in,
                                                          io.classes),
                     done);
        train_record_t rec = {.packed_in = packed, .packed_out = xcalloc(np, 4),
                              .losses = xcalloc(steps, 8), .norms = xcalloc(steps, 8),
                              .lrs = xcalloc(steps, 8), .steps = steps};
        train_config_t cfg;
        train_config_default(&cfg);
        cfg.model = spec_text;
        cfg.data = data_path;
        cfg.batch = B;
        cfg.steps = steps;
        cfg.accum = accum;
        cfg.optimizer = opt_name;
        cfg.schedule = sched_name;
        cfg.lr = lr;
        cfg.momentum = momentum;
        cfg.weight_decay = wd;
        cfg.warmup = warmup;
        cfg.grad_clip = clip;
        cfg.device = "cpu";
        cfg.log_every = 1000000;
        cfg.shuffle = false;
        cfg.resume = "never";
        session_hooks_t hooks = {.on_init = train_on_init, .after_step = train_after_step,
                                 .on_end = train_on_end, .ctx = &rec};
        session_outcome_t out;
        TRY_GOTO(st, session_run(&cfg, NULL, &hooks, &out), done);
        if (rec.recorded != steps) {
            st = rt_fail(RT_ERR_INTERNAL, "%d of %d steps reported a result", rec.recorded, steps);
            goto done;
        }
        TRY_GOTO(st, file_write("losses", rec.losses, 8 * (size_t)steps), done);
        TRY_GOTO(st, file_write("grad_norms", rec.norms, 8 * (size_t)steps), done);
        TRY_GOTO(st, file_write("lrs", rec.lrs, 8 * (size_t)steps), done);
        TRY_GOTO(st, file_write("params_out", rec.packed_out, 4 * (size_t)np), done);
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
