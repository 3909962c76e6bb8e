/* import_tokens.c - token files other tools write (nanoGPT's headerless
 * .bin, llm.c's shards) to a token stream, streamed in chunks so files
 * larger than memory import too. Every file's header and size are checked
 * before an output is created; tokens are checked against the vocabulary as
 * they stream, and a bad one removes the unfinished outputs. */
#include "data/import.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "data/import_paths.h"
#include "data/import_split.h"

/* llm.c (dev/data/data_common.py): 256 little-endian int32, then the tokens */
#define LLMC_HEADER_BYTES (256 * 4)
#define LLMC_MAGIC 20240520
#define LLMC_VERSION 1
/* llm.c's other files, named when met so that the refusal says what they are */
#define LLMC_MAGIC_LLAMA3 20240801 /* uint32 tokens */
#define LLMC_MAGIC_EVAL 20240522   /* multiple-choice evaluation examples */

#define TOKEN_BYTES 2 /* both formats store little-endian uint16 */

typedef struct {
    int64_t header_bytes; /* before the first token */
    int64_t count;        /* tokens */
} token_file;

static int32_t le_i32(const uint8_t *p)
{
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                 (uint32_t)p[3] << 24;
    int32_t s;
    memcpy(&s, &v, sizeof s);
    return s;
}

static rt_status llmc_header(const char *path, int64_t size, token_file *tf)
{
    if (size < LLMC_HEADER_BYTES)
        return rt_fail(RT_ERR_FORMAT, "%s: truncated header: %lld bytes, an llm.c header is %d",
                       path, (long long)size, LLMC_HEADER_BYTES);
    uint8_t h[12];
    FILE *f = fopen(path, "rb");
    if (!f)
        return rt_fail(RT_ERR_IO, "%s: %s", path, strerror(errno));
    size_t got = fread(h, 1, sizeof h, f);
    int e = errno;
    fclose(f);
    if (got != sizeof h)
        return rt_fail(RT_ERR_IO, "%s: read: %s", path, got ? "short read" : strerror(e));
    int32_t magic = le_i32(h), version = le_i32(h + 4), count = le_i32(h + 8);
    if (magic != LLMC_MAGIC) {
        const char *what = magic == LLMC_MAGIC_LLAMA3 ? " (an llm.c LLaMA-3 shard of uint32 "
                                                        "tokens, not supported)"
                           : magic == LLMC_MAGIC_EVAL ? " (an llm.c evaluation file)"
                                                      : " (a headerless file is --format bin)";
        return rt_fail(RT_ERR_FORMAT, "%s: bad magic %d, an llm.c token shard has %d%s", path,
                       magic, LLMC_MAGIC, what);
    }
    if (version != LLMC_VERSION)
        return rt_fail(RT_ERR_FORMAT,
                       "%s: unsupported version %d (this build reads version %d, uint16 tokens)",
                       path, version, LLMC_VERSION);
    if (count == 0)
        return rt_fail(RT_ERR_FORMAT, "%s: empty shard (header token count 0)", path);
    int64_t body = size - LLMC_HEADER_BYTES;
    if (count < 0 || (int64_t)count * TOKEN_BYTES != body)
        return rt_fail(RT_ERR_FORMAT,
                       "%s: header token count %d (%lld bytes) does not match the %lld bytes "
                       "after the header", path, count, (long long)count * TOKEN_BYTES,
                       (long long)body);
    tf->header_bytes = LLMC_HEADER_BYTES;
    tf->count = count;
    return RT_OK;
}

/* The file's layout, from its size and (llm.c) header. */
static rt_status probe(const char *path, import_tokens_format format, token_file *tf)
{
    int64_t size;
    TRY(import_input_size(path, &size));
    if (format == IMPORT_TOKENS_LLMC)
        return llmc_header(path, size, tf);
    if (size % TOKEN_BYTES)
        return rt_fail(RT_ERR_FORMAT, "%s: odd byte count %lld, not a stream of 2-byte tokens",
                       path, (long long)size);
    tf->header_bytes = 0;
    tf->count = size / TOKEN_BYTES;
    return RT_OK;
}

/* Streams one file's tokens into s, decoded from little-endian (whatever the
 * host's byte order) and narrowed to uint8 for a vocabulary of <= 256. */
static rt_status copy_tokens(import_split_t *s, const char *path, const token_file *tf,
                             int vocab_size, uint8_t *raw, void *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return rt_fail(RT_ERR_IO, "%s: %s", path, strerror(errno));
    rt_status st = RT_OK;
    bool narrow = vocab_size <= 256;
    uint8_t *out8 = out;
    uint16_t *out16 = out;
    int64_t done = 0;
    if (fread(raw, 1, (size_t)tf->header_bytes, f) != (size_t)tf->header_bytes)
        goto short_read;
    while (done < tf->count) {
        int64_t left = tf->count - done;
        size_t want = left < IMPORT_CHUNK / TOKEN_BYTES ? (size_t)left : IMPORT_CHUNK / TOKEN_BYTES;
        size_t got = fread(raw, TOKEN_BYTES, want, f);
        if (got != want)
            goto short_read;
        for (size_t i = 0; i < got; i++) {
            unsigned v = (unsigned)raw[2 * i] | (unsigned)raw[2 * i + 1] << 8;
            if (v >= (unsigned)vocab_size) {
                int64_t index = done + (int64_t)i;
                st = rt_fail(RT_ERR_FORMAT,
                             "%s: token %u at byte offset %lld (token %lld of the file) is not "
                             "below --vocab %d", path, v,
                             (long long)(tf->header_bytes + index * TOKEN_BYTES),
                             (long long)index, vocab_size);
                goto done;
            }
            if (narrow)
                out8[i] = (uint8_t)v;
            else
                out16[i] = (uint16_t)v;
        }
        TRY_GOTO(st, import_split_put(s, out, (int64_t)got), done);
        done += (int64_t)got;
    }
    if (fgetc(f) != EOF)
        st = rt_fail(RT_ERR_IO, "%s: grew while being imported", path);
    goto done;
short_read:
    if (ferror(f))
        st = rt_fail(RT_ERR_IO, "%s: read: %s", path, strerror(errno));
    else
        st = rt_fail(RT_ERR_IO, "%s: shrank while being imported (%lld of %lld tokens)", path,
                     (long long)done, (long long)tf->count);
done:
    fclose(f);
    return st;
}

rt_status import_tokens(const char *const *inputs, int ninputs, import_tokens_format format,
                        int vocab_size, const char *out_path, const char *val_path,
                        double val_fraction, import_tokens_summary_t *summary)
{
    CHECK_ARG(ninputs > 0, "no input files");
    CHECK_ARG(format == IMPORT_TOKENS_BIN || format == IMPORT_TOKENS_LLMC,
              "unknown token file format %d", (int)format);
    /* the largest uint16 token is 65535, so a larger vocabulary is never used */
    if (vocab_size < 1 || vocab_size > 65536)
        return rt_fail(RT_ERR_USAGE, "--vocab must be in 1..65536, got %d", vocab_size);
    TRY(import_split_check(out_path, val_path, val_fraction));
    TRY(import_check_outputs(inputs, ninputs, out_path, val_path));
    token_file *files = calloc((size_t)ninputs, sizeof *files);
    CHECK_ALLOC(files, (size_t)ninputs * sizeof *files);
    rt_status st = RT_OK;
    uint8_t *raw = NULL;
    void *out = NULL;
    import_split_t split = {0};
    int64_t total = 0;
    for (int i = 0; i < ninputs; i++) {
        TRY_GOTO(st, probe(inputs[i], format, &files[i]), done);
        total += files[i].count;
    }
    raw = malloc(IMPORT_CHUNK);
    out = malloc(IMPORT_CHUNK); /* as many tokens as raw holds, at most as wide */
    if (!raw || !out) {
        st = rt_fail(RT_ERR_NOMEM, "import buffer");
        goto done;
    }
    char source[1024];
    import_source(source, sizeof source, format == IMPORT_TOKENS_BIN ? "nanoGPT bin" : "llm.c",
                  inputs, ninputs);
    TRY_GOTO(st, import_split_open(&split, out_path, val_path, val_fraction, total, "tokens",
                                   vocab_size <= 256 ? RT_DTYPE_U8 : RT_DTYPE_U16, vocab_size,
                                   source), done);
    for (int i = 0; i < ninputs; i++)
        TRY_GOTO(st, copy_tokens(&split, inputs[i], &files[i], vocab_size, raw, out), done);
    TRY_GOTO(st, import_split_commit(&split), done);
    if (summary) {
        summary->train_tokens = split.split;
        summary->val_tokens = split.total - split.split;
    }
done:
    import_split_abort(&split);
    free(out);
    free(raw);
    free(files);
    return st;
}
