/* fuzz_h5_open.c - libFuzzer target: the dataset and checkpoint openers on
 * arbitrary file bytes (data/dataset.h: open and verify; trainer/ckpt:
 * open, metadata, verify). The seed corpus holds valid small files, so
 * the mutations are damaged HDF5 files; the openers must refuse them with
 * a status, never crash. (The HDF5 library itself is not instrumented: a
 * memory error inside it shows only if it crashes.) */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include "data/dataset.h"
#include "fuzz_util.h"
#include "trainer/ckpt/ckpt_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    fuzz_file("input.h5", data, size, path, sizeof path);
    dataset_t *d = NULL;
    if (dataset_open(path, &d) == RT_OK)
        dataset_close(d);
    dataset_verify_report_t rep;
    memset(&rep, 0, sizeof rep);
    (void)dataset_verify(path, &rep);
    ckpt_reader_t *r = NULL;
    if (ckpt_open(path, &r) == RT_OK)
        ckpt_close(r);
    ckpt_meta_t meta;
    memset(&meta, 0, sizeof meta);
    if (ckpt_read_meta(path, &meta) == RT_OK)
        ckpt_meta_free(&meta);
    ckpt_verify_info_t info;
    memset(&info, 0, sizeof info);
    (void)ckpt_verify(path, &info);
    return 0;
}
