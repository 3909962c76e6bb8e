/* fuzz_import.c - libFuzzer target: the token importers (data/import.h) on
 * arbitrary input bytes: import-text (bytes as tokens, with and without a
 * validation split) and import-tokens in both formats (nanoGPT .bin,
 * llm.c with its header) with a vocabulary taken from the first byte.
 * Whatever they accept must have been written as a dataset that opens. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include "data/dataset.h"
#include "data/import.h"
#include "fuzz_util.h"

static void opens(const char *path)
{
    dataset_t *d = NULL;
    if (dataset_open(path, &d) != RT_OK) {
        fprintf(stderr, "fuzz_import: an imported file does not open: %s\n", rt_last_error());
        abort();
    }
    dataset_close(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char in[512], out[512], val[512];
    const char *inputs[1] = {fuzz_file("input.bin", data, size, in, sizeof in)};
    fuzz_path("out.h5", out, sizeof out);
    fuzz_path("val.h5", val, sizeof val);
    import_text_summary_t ts;
    if (import_text(inputs, 1, out, NULL, 0.0, &ts) == RT_OK)
        opens(out);
    if (import_text(inputs, 1, out, val, 0.25, &ts) == RT_OK) {
        opens(out);
        opens(val);
    }
    const int vocab = size ? 1 + data[0] * 257 : 50257;
    import_tokens_summary_t ks;
    for (int f = 0; f < 2; f++)
        if (import_tokens(inputs, 1, f ? IMPORT_TOKENS_LLMC : IMPORT_TOKENS_BIN, vocab, out, NULL,
                          0.0, &ks) == RT_OK)
            opens(out);
    return 0;
}
