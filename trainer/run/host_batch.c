/* host_batch.c - loader batches as model batches, and the dataset checks
 * against a model (see host_batch.h). */
#include "trainer/run/host_batch.h"

#include <string.h>

#include "common/check.h"
#include "common/log.h"

void host_batch_bytes(const model_io_t *io, int rows, size_t *input_bytes, size_t *target_bytes)
{
    if (io->batch == RT_BATCH_TOKENS) {
        *input_bytes = (size_t)rows * (size_t)io->context * sizeof(int32_t);
        *target_bytes = *input_bytes;
    } else {
        *input_bytes = (size_t)rows * (size_t)io->features * sizeof(float);
        *target_bytes = (size_t)rows * sizeof(int32_t);
    }
}

size_t host_batch_split_len(const model_io_t *io, int rows)
{
    return io->batch == RT_BATCH_TOKENS ? 2 * (size_t)rows * (size_t)io->context : 0;
}

void host_batch_from_loader(const model_io_t *io, const loader_batch_t *lb, int32_t *split,
                            rt_batch_t *out)
{
    out->rows = lb->rows;
    if (io->batch != RT_BATCH_TOKENS) {
        out->inputs = tensor_2d((void *)lb->inputs, RT_DTYPE_F32, lb->rows, io->features);
        out->targets = tensor_1d((void *)lb->labels, RT_DTYPE_I32, lb->rows);
        return;
    }
    const size_t T = (size_t)io->context;
    int32_t *in = split, *tg = split + (size_t)lb->rows * T;
    for (int r = 0; r < lb->rows; r++) {
        const int32_t *w = lb->tokens + (size_t)r * (T + 1);
        memcpy(in + (size_t)r * T, w, T * sizeof(int32_t));
        memcpy(tg + (size_t)r * T, w + 1, T * sizeof(int32_t));
    }
    out->inputs = tensor_2d(in, RT_DTYPE_I32, lb->rows, io->context);
    out->targets = tensor_2d(tg, RT_DTYPE_I32, lb->rows, io->context);
}

static rt_status check_tokens(const char *path, const char *flag, const model_io_t *io,
                              const dataset_info_t *info)
{
    if (info->vocab_size > io->vocab)
        return rt_fail(RT_ERR_USAGE,
                       "--%s %s has a vocabulary of %d tokens but the model's is %d (vocab=%d or "
                       "more)",
                       flag, path, info->vocab_size, io->vocab, info->vocab_size);
    if (info->count <= io->context)
        return rt_fail(RT_ERR_USAGE,
                       "--%s %s has %lld tokens, not enough for one window of ctx %lld + 1", flag,
                       path, (long long)info->count, (long long)io->context);
    return RT_OK;
}

void host_batch_note_unchecked(const dataset_t *d)
{
    const dataset_info_t *info = dataset_info(d);
    if (info->unchecked[0])
        LOG_WARN("note: %s: no checksums for %s (written before ringtrain stored them); its "
                 "data is not verified", dataset_path(d), info->unchecked);
}

rt_status host_batch_dataset_open(const char *path, const char *flag, const model_io_t *io,
                                  dataset_t **out)
{
    const bool tokens = io->batch == RT_BATCH_TOKENS;
    rt_status st = dataset_open(path, out);
    const rt_status opened = st;
    if (st == RT_OK && dataset_info(*out)->kind != (tokens ? DATASET_TOKENS : DATASET_CLASSIFICATION))
        st = rt_fail(RT_ERR_USAGE, "%s is a %s dataset but the model is a %s model (it needs %s)",
                     path, dataset_kind_name(dataset_info(*out)->kind),
                     tokens ? "language" : "classification",
                     tokens ? "tokens: data import-text or import-tokens" : "classification records");
    /* a bad file is a usage error; running out of memory reading it is not */
    if (st != RT_OK)
        return rt_fail_context(opened != RT_OK ? rt_input_status(opened) : RT_ERR_USAGE, "--%s",
                               flag);
    const dataset_info_t *info = dataset_info(*out);
    if (tokens)
        return check_tokens(path, flag, io, info);
    if (info->features != io->features)
        return rt_fail(RT_ERR_USAGE, "--%s %s has %lld features per record but the model takes %lld inputs",
                       flag, path, (long long)info->features, (long long)io->features);
    if (info->num_classes != io->classes)
        return rt_fail(RT_ERR_USAGE, "--%s %s has %d classes but the model has %d outputs", flag,
                       path, info->num_classes, io->classes);
    return RT_OK;
}
