/* import_text.c - text files to a byte-level token stream (uint8, vocabulary
 * 256), streamed in chunks so corpora larger than memory import too. */
#include "data/import.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "data/import_paths.h"
#include "data/import_split.h"

static rt_status copy_file(import_split_t *s, const char *path, int64_t expect, uint8_t *buf)
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
        st = import_split_put(s, buf, (int64_t)got);
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
    TRY(import_split_check(out_path, val_path, val_fraction));
    TRY(import_check_outputs(inputs, ninputs, out_path, val_path));
    int64_t *sizes = calloc((size_t)ninputs, sizeof *sizes);
    CHECK_ALLOC(sizes, (size_t)ninputs * sizeof *sizes);
    int64_t total = 0;
    rt_status st = RT_OK;
    uint8_t *buf = NULL;
    import_split_t split = {0};
    for (int i = 0; i < ninputs; i++) {
        TRY_GOTO(st, import_input_size(inputs[i], &sizes[i]), done);
        total += sizes[i];
    }
    buf = malloc(IMPORT_CHUNK);
    if (!buf) {
        st = rt_fail(RT_ERR_NOMEM, "import buffer");
        goto done;
    }
    char source[1024];
    import_source(source, sizeof source, "text", inputs, ninputs);
    TRY_GOTO(st, import_split_open(&split, out_path, val_path, val_fraction, total, "bytes",
                                   RT_DTYPE_U8, 256, source), done);
    for (int i = 0; i < ninputs; i++)
        TRY_GOTO(st, copy_file(&split, inputs[i], sizes[i], buf), done);
    TRY_GOTO(st, import_split_commit(&split), done);
    if (summary) {
        summary->train_tokens = split.split;
        summary->val_tokens = split.total - split.split;
    }
done:
    import_split_abort(&split);
    free(buf);
    free(sizes);
    return st;
}
