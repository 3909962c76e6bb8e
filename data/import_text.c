/* import_text.c - text files to a byte-level token stream (uint8, vocabulary
 * 256), streamed in chunks so corpora larger than memory import too. */
/* POSIX 2008: pread, strdup, O_CLOEXEC, O_DIRECTORY */
#define _POSIX_C_SOURCE 200809L
#include "data/import.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/check.h"
#include "data/dataset_write.h"

#define IMPORT_CHUNK (8u << 20)

/* Where the byte stream goes: bytes [0, split) to train, the rest to val. */
typedef struct {
    dataset_writer_t *train, *val;
    int64_t split;
    int64_t pos;
} text_sink;

static rt_status sink_put(text_sink *s, const uint8_t *buf, int64_t n)
{
    if (s->pos < s->split) {
        int64_t k = n < s->split - s->pos ? n : s->split - s->pos;
        TRY(dataset_writer_put(s->train, "tokens", s->pos, k, buf));
        s->pos += k;
        buf += k;
        n -= k;
    }
    if (n > 0) {
        TRY(dataset_writer_put(s->val, "tokens", s->pos - s->split, n, buf));
        s->pos += n;
    }
    return RT_OK;
}

static rt_status copy_file(text_sink *s, const char *path, int64_t expect, uint8_t *buf)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return rt_fail(RT_ERR_IO, "%s: %s", path, strerror(errno));
    rt_status st = RT_OK;
    int64_t total = 0;
    for (;;) {
        size_t got = fread(buf, 1, IMPORT_CHUNK, f);
        if (got == 0)
            break;
        if (total + (int64_t)got > expect) {
            st = rt_fail(RT_ERR_IO, "%s: grew while being imported", path);
            break;
        }
        st = sink_put(s, buf, (int64_t)got);
        if (st != RT_OK)
            break;
        total += (int64_t)got;
    }
    if (st == RT_OK && ferror(f))
        st = rt_fail(RT_ERR_IO, "%s: read: %s", path, strerror(errno));
    else if (st == RT_OK && total != expect)
        st = rt_fail(RT_ERR_IO, "%s: shrank while being imported (%lld of %lld bytes)", path,
                     (long long)total, (long long)expect);
    fclose(f);
    return st;
}

rt_status import_text(const char *const *inputs, int ninputs, const char *out_path,
                      const char *val_path, double val_fraction, import_text_summary_t *summary)
{
    CHECK_ARG(ninputs > 0, "no input files");
    if (val_path && !(val_fraction > 0.0 && val_fraction < 1.0))
        return rt_fail(RT_ERR_USAGE, "--val-fraction must be in (0, 1), got %g", val_fraction);
    int64_t *sizes = calloc((size_t)ninputs, sizeof *sizes);
    CHECK_ALLOC(sizes, (size_t)ninputs * sizeof *sizes);
    int64_t total = 0;
    rt_status st = RT_OK;
    uint8_t *buf = NULL;
    text_sink sink = {0};
    for (int i = 0; i < ninputs; i++) {
        struct stat sb;
        if (stat(inputs[i], &sb) != 0) {
            st = rt_fail(RT_ERR_IO, "%s: %s", inputs[i], strerror(errno));
            goto done;
        }
        if (!S_ISREG(sb.st_mode)) {
            st = rt_fail(RT_ERR_IO, "%s: not a regular file", inputs[i]);
            goto done;
        }
        if (sb.st_size == 0) {
            st = rt_fail(RT_ERR_FORMAT, "%s: empty file", inputs[i]);
            goto done;
        }
        sizes[i] = sb.st_size;
        total += sb.st_size;
    }
    int64_t nval = val_path ? (int64_t)llround((double)total * val_fraction) : 0;
    sink.split = total - nval;
    if (val_path && (nval < 1 || sink.split < 1)) {
        st = rt_fail(RT_ERR_USAGE,
                     "--val-fraction %g of %lld bytes leaves an empty training or validation set",
                     val_fraction, (long long)total);
        goto done;
    }
    buf = malloc(IMPORT_CHUNK);
    if (!buf) {
        st = rt_fail(RT_ERR_NOMEM, "import buffer");
        goto done;
    }
    char source[1024];
    snprintf(source, sizeof source, "text %s%s (%d file%s)", inputs[0], ninputs > 1 ? " ..." : "",
             ninputs, ninputs > 1 ? "s" : "");
    TRY_GOTO(st, dataset_writer_create(out_path, &sink.train), done);
    TRY_GOTO(st, dataset_writer_tokens(sink.train, sink.split, RT_DTYPE_U8, 256), done);
    TRY_GOTO(st, dataset_writer_set_string(sink.train, "source", source), done);
    if (val_path) {
        TRY_GOTO(st, dataset_writer_create(val_path, &sink.val), done);
        TRY_GOTO(st, dataset_writer_tokens(sink.val, nval, RT_DTYPE_U8, 256), done);
        TRY_GOTO(st, dataset_writer_set_string(sink.val, "source", source), done);
    }
    for (int i = 0; i < ninputs; i++)
        TRY_GOTO(st, copy_file(&sink, inputs[i], sizes[i], buf), done);
    if (sink.val) {
        st = dataset_writer_commit(sink.val);
        sink.val = NULL;
        if (st != RT_OK)
            goto done;
    }
    st = dataset_writer_commit(sink.train);
    sink.train = NULL;
    if (st != RT_OK) {
        /* keep the pair consistent: no validation file without its training file */
        if (val_path)
            remove(val_path);
        goto done;
    }
    if (summary) {
        summary->train_tokens = sink.split;
        summary->val_tokens = nval;
    }
done:
    dataset_writer_abort(sink.train);
    dataset_writer_abort(sink.val);
    free(buf);
    free(sizes);
    return st;
}
