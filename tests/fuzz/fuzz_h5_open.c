/* fuzz_h5_open.c - libFuzzer target: the dataset and checkpoint openers on
 * arbitrary file bytes (data/dataset.h: open and verify; trainer/ckpt:
 * open, metadata, verify). The seed corpus holds valid small files, so
 * the mutations are damaged HDF5 files; the openers must refuse them with
 * a status, never crash. (The HDF5 library itself is not instrumented: a
 * memory error inside it shows only if it crashes.)
 *
 * Two sanitizer settings are built in, both for libhdf5's sake:
 *  - allocations over 256 MiB fail (return NULL) instead of succeeding:
 *    a damaged length (an object header continuation of 2 GiB, regress/
 *    huge_continuation_chunk) makes libhdf5 allocate it, fail the read and
 *    free it, many times over; glibc does that lazily (0.3 s in a normal
 *    build) but ASan writes the shadow of every such block (40 s, a
 *    libFuzzer timeout). A failed allocation is refused as quickly. Our
 *    readers' own allocations are small for these inputs; one that is not
 *    now tests its out-of-memory path.
 *  - leaks inside libhdf5 (its error paths on damaged files keep a few
 *    hundred bytes) are not reported: not ringtrain's, not fixable here. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include "data/dataset.h"
#include "fuzz_util.h"
#include "trainer/ckpt/ckpt_file.h"

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1:max_allocation_size_mb=256";
}

const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libhdf5\n";
}

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
