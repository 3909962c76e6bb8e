/* dataset_verify.c - `ringtrain data verify`: every array of a dataset file
 * against its checksums, all of them (so that every bad array is named),
 * before the structural checks of dataset_open, so that a flipped bit shows
 * as corruption rather than as, say, a label out of range. */
/* POSIX 2008: stat */
#define _POSIX_C_SOURCE 200809L
#include "data/dataset.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/check.h"
#include "common/hdf5_util.h"
#include "data/dataset_crc.h"

#define BAD_MSG 900

/* One array: its whole CRC and, when it has a table, each block's. Appends
 * "name: why" to bad (and counts it) when they do not match. */
static rt_status verify_array(hid_t file, const char *name, dataset_verify_report_t *rep,
                              char *bad, int *nbad)
{
    htri_t exists = H5Lexists(file, name, H5P_DEFAULT);
    CHECK_HDF5(exists);
    if (!exists)
        return RT_OK;
    rep->arrays++;
    hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
    CHECK_HDF5(dset);
    rt_status st = RT_OK;
    uint32_t want = 0, *table = NULL;
    bool present = false;
    int64_t bytes = 0, block_bytes = 0, nblocks = 0;
    dataset_crc_t c = {0};
    TRY_GOTO(st, dataset_crc_read_attr(dset, &want, &present), done);
    TRY_GOTO(st, dataset_crc_array_bytes(dset, &bytes), done);
    TRY_GOTO(st, dataset_crc_read_blocks(file, name + 1, bytes, &table, &block_bytes, &nblocks),
             done);
    if (!present && !table) {
        size_t len = strlen(rep->unchecked);
        snprintf(rep->unchecked + len, sizeof rep->unchecked - len, "%s%s", len ? ", " : "",
                 name);
        goto done;
    }
    TRY_GOTO(st, dataset_crc_init(&c, bytes, table ? block_bytes : 0), done);
    TRY_GOTO(st, dataset_crc_stream(dset, &c), done);
    rep->bytes += bytes;
    char why[256] = "";
    if (present && c.whole != want)
        snprintf(why, sizeof why, "checksum mismatch (crc32c stored 0x%08x, read 0x%08x)", want,
                 c.whole);
    int64_t first_bad = -1, blocks_bad = 0;
    for (int64_t b = 0; table && b < nblocks; b++)
        if (table[b] != c.blocks[b]) {
            blocks_bad++;
            if (first_bad < 0)
                first_bad = b;
        }
    if (blocks_bad) {
        size_t len = strlen(why);
        snprintf(why + len, sizeof why - len, "%s%lld of %lld blocks of %lld bytes differ, the "
                 "first block %lld", len ? "; " : "", (long long)blocks_bad, (long long)nblocks,
                 (long long)block_bytes, (long long)first_bad);
    }
    if (why[0]) {
        size_t len = strlen(bad);
        snprintf(bad + len, BAD_MSG - len, "%s%s: %s", len ? "; " : "", name, why);
        ++*nbad;
    } else {
        rep->checked++;
    }
done:
    dataset_crc_free(&c);
    free(table);
    H5Dclose(dset);
    return st;
}

static rt_status verify_file(const char *path, hid_t file, dataset_verify_report_t *rep)
{
    char format[128];
    bool present;
    TRY(h5_attr_string(file, "format", format, sizeof format, &present));
    if (!present || strcmp(format, DATASET_FORMAT) != 0)
        return rt_fail(RT_ERR_FORMAT, "%s: not a ringtrain dataset (format is '%s')", path,
                       present ? format : "missing");
    static const char *const arrays[] = {"/inputs", "/labels", "/tokens"};
    char bad[BAD_MSG] = "";
    int nbad = 0;
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        rt_status st = verify_array(file, arrays[i], rep, bad, &nbad);
        if (st != RT_OK)
            return rt_fail_context(st, "%s: %s", path, arrays[i]);
    }
    if (nbad)
        return rt_fail(RT_ERR_CORRUPT, "%s: %d of %d arrays corrupt: %s", path, nbad,
                       rep->arrays, bad);
    return RT_OK;
}

rt_status dataset_verify(const char *path, dataset_verify_report_t *report)
{
    memset(report, 0, sizeof *report);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return rt_fail(RT_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return rt_fail(RT_ERR_IO, "%s: not a regular file", path);
    rt_hdf5_quiet();
    if (sb.st_size == 0 || H5Fis_hdf5(path) <= 0)
        return rt_fail(RT_ERR_FORMAT, "%s: not an HDF5 file", path);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        rt_hdf5_error("H5Fopen", __FILE__, __LINE__);
        return rt_fail_context(RT_ERR_FORMAT, "%s: cannot open as HDF5 (truncated or corrupt?)",
                               path);
    }
    rt_status st = verify_file(path, file, report);
    H5Fclose(file);
    if (st != RT_OK)
        return st;
    /* the data is as written: now everything else dataset_open checks */
    dataset_options_t opt = {.max_memory_bytes = -1, .skip_checksums = true};
    dataset_t *d = NULL;
    TRY(dataset_open_opts(path, &opt, &d));
    dataset_close(d);
    return RT_OK;
}
