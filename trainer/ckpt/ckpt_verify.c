/* ckpt_verify.c - checks a checkpoint end to end: metadata, then every
 * dataset's CRC-32C, read in bounded blocks so that verifying a large file
 * needs little memory. Reports every failing dataset, not just the first. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "common/crc32c.h"
#include "common/hdf5_util.h"
#include "trainer/ckpt/ckpt_internal.h"

#define VERIFY_BLOCK_BYTES (64u << 20)
#define VERIFY_MSG_MAX 900

typedef struct {
    int fd;
    void *buf;
    size_t buf_len;
    int64_t datasets;
    int64_t bytes;
    int bad;
    char msg[VERIFY_MSG_MAX];
} verify_state;

static void bad_add(verify_state *vs, const char *name, const char *why)
{
    size_t o = strlen(vs->msg);
    if (o < sizeof vs->msg - 1)
        snprintf(vs->msg + o, sizeof vs->msg - o, "%s/%s: %s", vs->bad ? "; " : "", name, why);
    vs->bad++;
}

/* CRC-32C of a dataset's raw bytes in C order, reading whole rows of the
 * first dimension so that each block is one contiguous hyperslab. */
static rt_status dataset_crc(hid_t ds, verify_state *vs, uint32_t *crc, int64_t *nbytes)
{
    rt_status st = RT_OK;
    hid_t ft = H5Dget_type(ds), mt = H5I_INVALID_HID, fsp = H5Dget_space(ds), msp = H5I_INVALID_HID;
    if (ft < 0 || fsp < 0) {
        st = ckpt_h5_fail(RT_ERR_HDF5, "H5Dget_type");
        goto done;
    }
    mt = H5Tget_native_type(ft, H5T_DIR_ASCEND);
    size_t esize = H5Tget_size(ft);
    int nd = H5Sget_simple_extent_ndims(fsp);
    hsize_t dims[H5S_MAX_RANK] = {0};
    if (mt < 0 || nd < 0 || H5Sget_simple_extent_dims(fsp, dims, NULL) < 0) {
        st = ckpt_h5_fail(RT_ERR_HDF5, "H5Sget_simple_extent_dims");
        goto done;
    }
    uint32_t c = 0;
    int64_t total = 0;
    if (nd == 0) {
        if (esize > vs->buf_len) {
            st = rt_fail(RT_ERR_FORMAT, "scalar of %zu bytes", esize);
            goto done;
        }
        if (H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, vs->buf) < 0) {
            st = ckpt_h5_fail(RT_ERR_HDF5, "H5Dread");
            goto done;
        }
        c = crc32c(vs->buf, esize);
        total = (int64_t)esize;
    } else {
        size_t row = esize;
        for (int d = 1; d < nd; d++)
            row *= dims[d];
        hsize_t rows_per_block = row ? vs->buf_len / row : dims[0];
        if (rows_per_block == 0) {
            /* One row larger than the buffer: grow the buffer to one row. */
            void *nb = realloc(vs->buf, row);
            if (!nb) {
                st = rt_fail(RT_ERR_NOMEM, "cannot allocate %zu bytes to verify a row", row);
                goto done;
            }
            vs->buf = nb;
            vs->buf_len = row;
            rows_per_block = 1;
        }
        for (hsize_t r0 = 0; r0 < dims[0] && row > 0; r0 += rows_per_block) {
            hsize_t start[H5S_MAX_RANK] = {0}, count[H5S_MAX_RANK];
            memcpy(count, dims, sizeof count);
            start[0] = r0;
            count[0] = dims[0] - r0 < rows_per_block ? dims[0] - r0 : rows_per_block;
            /* the disk reads the next block while this one is checksummed */
            ckpt_readahead(vs->fd, ds, (size_t)(r0 + count[0]) * row, (size_t)rows_per_block * row);
            if (msp >= 0)
                H5Sclose(msp);
            msp = H5Screate_simple(nd, count, NULL);
            if (msp < 0 || H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
                H5Dread(ds, mt, msp, fsp, H5P_DEFAULT, vs->buf) < 0) {
                st = ckpt_h5_fail(RT_ERR_HDF5, "H5Dread");
                goto done;
            }
            size_t n = (size_t)count[0] * row;
            c = crc32c_update(c, vs->buf, n);
            total += (int64_t)n;
        }
    }
    *crc = c;
    *nbytes = total;
done:
    if (msp >= 0)
        H5Sclose(msp);
    if (mt >= 0)
        H5Tclose(mt);
    if (fsp >= 0)
        H5Sclose(fsp);
    if (ft >= 0)
        H5Tclose(ft);
    return st;
}

static herr_t visit_one(hid_t root, const char *name, const H5O_info_t *info, void *data)
{
    verify_state *vs = data;
    if (info->type != H5O_TYPE_DATASET)
        return 0;
    vs->datasets++;
    hid_t ds = H5Dopen2(root, name, H5P_DEFAULT);
    if (ds < 0) {
        ckpt_h5_fail(RT_ERR_HDF5, "H5Dopen2");
        bad_add(vs, name, rt_last_error());
        return 0;
    }
    uint32_t want, got = 0;
    int64_t nbytes = 0;
    if (ckpt_attr_read_u32(ds, "crc32c", &want) != RT_OK) {
        bad_add(vs, name, "no crc32c attribute");
    } else if (dataset_crc(ds, vs, &got, &nbytes) != RT_OK) {
        char why[300];
        snprintf(why, sizeof why, "unreadable (%s)", rt_last_error());
        bad_add(vs, name, why);
    } else if (got != want) {
        char why[96];
        snprintf(why, sizeof why, "checksum mismatch (crc32c stored 0x%08x, read 0x%08x)", want, got);
        bad_add(vs, name, why);
    }
    vs->bytes += nbytes;
    H5Dclose(ds);
    return 0;
}

rt_status ckpt_verify(const char *path, ckpt_verify_info_t *info)
{
    ckpt_reader_t *r;
    TRY(ckpt_open(path, &r));
    rt_status st = RT_OK;
    verify_state vs = {0};
    vs.buf_len = VERIFY_BLOCK_BYTES;
    vs.buf = malloc(vs.buf_len);
    if (!vs.buf) {
        st = rt_fail(RT_ERR_NOMEM, "cannot allocate %zu bytes to verify %s", vs.buf_len, path);
        goto close_reader;
    }
    int64_t want_count = -1;
    hid_t file = ckpt_reader_file(r); /* metadata already checked by ckpt_open */
    vs.fd = ckpt_reader_fd(r);
    if (H5Ovisit2(file, H5_INDEX_NAME, H5_ITER_INC, visit_one, &vs, H5O_INFO_BASIC) < 0)
        st = rt_fail_context(ckpt_h5_fail(RT_ERR_HDF5, "H5Ovisit2"), "%s", path);
    else if (vs.bad)
        st = rt_fail(RT_ERR_FORMAT, "%s: %d of %" PRId64 " datasets bad: %s", path, vs.bad, vs.datasets, vs.msg);
    else if (ckpt_attr_read_i64(file, "dataset_count", &want_count) != RT_OK)
        st = rt_fail_context(RT_ERR_FORMAT, "%s", path);
    else if (want_count != vs.datasets)
        st = rt_fail(RT_ERR_FORMAT, "%s is incomplete: %" PRId64 " of %" PRId64 " datasets present", path,
                     vs.datasets, want_count);
    if (info) {
        info->datasets = vs.datasets;
        info->bytes = vs.bytes;
        info->step = ckpt_reader_meta(r)->step;
    }
    free(vs.buf);
close_reader:
    ckpt_close(r);
    return st;
}
