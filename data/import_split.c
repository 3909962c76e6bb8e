/* import_split.c - the input checks and the train/validation split shared by
 * import-text and import-tokens, so both split a stream the same way. */
#include "data/import_split.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/check.h"

rt_status import_split_check(const char *out_path, const char *val_path, double val_fraction)
{
    if (!val_path)
        return RT_OK;
    if (!(val_fraction > 0.0 && val_fraction < 1.0))
        return rt_fail(RT_ERR_USAGE, "--val-fraction must be in (0, 1), got %g", val_fraction);
    /* both would be written through the same temporary name */
    if (!strcmp(out_path, val_path))
        return rt_fail(RT_ERR_USAGE, "%s: --out and --val-out name the same file", out_path);
    return RT_OK;
}

rt_status import_input_size(const char *path, int64_t *size)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return rt_fail(RT_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return rt_fail(RT_ERR_IO, "%s: not a regular file", path);
    if (sb.st_size == 0)
        return rt_fail(RT_ERR_FORMAT, "%s: empty file", path);
    *size = (int64_t)sb.st_size;
    return RT_OK;
}

void import_source(char *buf, size_t size, const char *kind, const char *const *inputs,
                   int ninputs)
{
    snprintf(buf, size, "%s %s%s (%d file%s)", kind, inputs[0], ninputs > 1 ? " ..." : "",
             ninputs, ninputs > 1 ? "s" : "");
}

rt_status import_split_open(import_split_t *s, const char *out_path, const char *val_path,
                            double val_fraction, int64_t total, const char *unit,
                            rt_dtype type, int vocab_size, const char *source)
{
    CHECK_ARG(type == RT_DTYPE_U8 || type == RT_DTYPE_U16, "%s: tokens must be u8 or u16",
              out_path);
    TRY(import_split_check(out_path, val_path, val_fraction));
    int64_t nval = val_path ? (int64_t)llround((double)total * val_fraction) : 0;
    s->val_path = val_path;
    s->elem_size = rt_dtype_size(type);
    s->total = total;
    s->split = total - nval;
    s->pos = 0;
    if (val_path && (nval < 1 || s->split < 1))
        return rt_fail(RT_ERR_USAGE,
                       "--val-fraction %g of %lld %s leaves an empty training or validation set",
                       val_fraction, (long long)total, unit);
    rt_status st;
    TRY_GOTO(st, dataset_writer_create(out_path, &s->train), fail);
    TRY_GOTO(st, dataset_writer_tokens(s->train, s->split, type, vocab_size), fail);
    TRY_GOTO(st, dataset_writer_set_string(s->train, "source", source), fail);
    if (val_path) {
        TRY_GOTO(st, dataset_writer_create(val_path, &s->val), fail);
        TRY_GOTO(st, dataset_writer_tokens(s->val, nval, type, vocab_size), fail);
        TRY_GOTO(st, dataset_writer_set_string(s->val, "source", source), fail);
    }
    return RT_OK;
fail:
    import_split_abort(s);
    return st;
}

rt_status import_split_put(import_split_t *s, const void *tokens, int64_t n)
{
    CHECK_ARG(n >= 0 && n <= s->total - s->pos, "%lld tokens past the %lld declared",
              (long long)(s->pos + n - s->total), (long long)s->total);
    const uint8_t *buf = tokens;
    if (s->pos < s->split) {
        int64_t k = n < s->split - s->pos ? n : s->split - s->pos;
        TRY(dataset_writer_put(s->train, "tokens", s->pos, k, buf));
        s->pos += k;
        buf += (size_t)k * s->elem_size;
        n -= k;
    }
    if (n > 0) {
        TRY(dataset_writer_put(s->val, "tokens", s->pos - s->split, n, buf));
        s->pos += n;
    }
    return RT_OK;
}

rt_status import_split_commit(import_split_t *s)
{
    rt_status st;
    if (s->pos != s->total) {
        st = rt_fail(RT_ERR_INTERNAL, "%lld of the %lld tokens declared were written",
                     (long long)s->pos, (long long)s->total);
        import_split_abort(s);
        return st;
    }
    if (s->val) {
        st = dataset_writer_commit(s->val);
        s->val = NULL;
        if (st != RT_OK) {
            import_split_abort(s);
            return st;
        }
    }
    st = dataset_writer_commit(s->train);
    s->train = NULL;
    /* keep the pair consistent: no validation file without its training file */
    if (st != RT_OK && s->val_path)
        remove(s->val_path);
    return st;
}

void import_split_abort(import_split_t *s)
{
    dataset_writer_abort(s->train);
    dataset_writer_abort(s->val);
    s->train = NULL;
    s->val = NULL;
}
