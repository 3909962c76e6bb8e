/* dataset_crc.c - computing, storing and reading the CRC-32C checksums of
 * dataset arrays (see dataset_crc.h). */
#include "data/dataset_crc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "common/crc32c.h"
#include "common/hdf5_util.h"

/* Rows are streamed in pieces of about this many bytes. */
#define STREAM_PIECE ((size_t)8 << 20)

rt_status dataset_crc_init(dataset_crc_t *c, int64_t total_bytes, int64_t block_bytes)
{
    memset(c, 0, sizeof *c);
    if (block_bytes <= 0 || total_bytes <= 0)
        return RT_OK;
    c->block_bytes = block_bytes;
    c->nblocks = (total_bytes + block_bytes - 1) / block_bytes;
    c->blocks = calloc((size_t)c->nblocks, sizeof *c->blocks);
    CHECK_ALLOC(c->blocks, (size_t)c->nblocks * sizeof *c->blocks);
    return RT_OK;
}

void dataset_crc_free(dataset_crc_t *c)
{
    free(c->blocks);
    memset(c, 0, sizeof *c);
}

/* Little-endian bytes into the whole CRC and the blocks they fall in. */
static void feed_le(dataset_crc_t *c, const uint8_t *p, size_t n)
{
    c->whole = crc32c_update(c->whole, p, n);
    while (c->block_bytes > 0 && n > 0) {
        int64_t b = c->pos / c->block_bytes;
        size_t room = (size_t)((b + 1) * c->block_bytes - c->pos);
        size_t k = n < room ? n : room;
        if (b < c->nblocks)
            c->blocks[b] = crc32c_update(c->blocks[b], p, k);
        c->pos += (int64_t)k;
        p += k;
        n -= k;
    }
    if (c->block_bytes <= 0)
        c->pos += (int64_t)n;
}

void dataset_crc_feed(dataset_crc_t *c, const void *data, size_t n, size_t elem_size)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    if (elem_size > 1) {
        /* the stored bytes are little-endian: swap a piece at a time */
        uint8_t tmp[4096];
        const uint8_t *src = data;
        size_t per = sizeof tmp / elem_size;
        while (n > 0) {
            size_t k = n < per ? n : per;
            for (size_t i = 0; i < k; i++)
                for (size_t j = 0; j < elem_size; j++)
                    tmp[i * elem_size + j] = src[i * elem_size + elem_size - 1 - j];
            feed_le(c, tmp, k * elem_size);
            src += k * elem_size;
            n -= k;
        }
        return;
    }
#endif
    feed_le(c, data, n * elem_size);
}

rt_status dataset_crc_read_attr(hid_t dset, uint32_t *crc, bool *present)
{
    int64_t v = 0;
    int n;
    TRY(h5_attr_i64(dset, DATASET_CRC_ATTR, &v, 1, &n, present));
    if (*present && (v < 0 || v > (int64_t)UINT32_MAX))
        return rt_fail(RT_ERR_FORMAT, "attribute %s=%lld is not a 32-bit checksum",
                       DATASET_CRC_ATTR, (long long)v);
    *crc = (uint32_t)v;
    return RT_OK;
}

rt_status dataset_crc_read_blocks(hid_t file, const char *name, int64_t total_bytes,
                                  uint32_t **blocks, int64_t *block_bytes, int64_t *nblocks)
{
    *blocks = NULL;
    *block_bytes = 0;
    *nblocks = 0;
    char path[96];
    snprintf(path, sizeof path, "%s/%s", DATASET_CRC_BLOCKS_GROUP, name);
    htri_t group = H5Lexists(file, DATASET_CRC_BLOCKS_GROUP, H5P_DEFAULT);
    CHECK_HDF5(group);
    if (!group)
        return RT_OK;
    htri_t exists = H5Lexists(file, path, H5P_DEFAULT);
    CHECK_HDF5(exists);
    if (!exists)
        return RT_OK;
    rt_status st = RT_OK;
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    CHECK_HDF5(ds);
    hid_t space = H5Dget_space(ds);
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    int64_t bb = 0;
    int count;
    bool present;
    TRY_GOTO(st, h5_attr_i64(ds, "block_bytes", &bb, 1, &count, &present), done);
    if (!present || bb < 1 || n != (total_bytes + bb - 1) / bb) {
        st = rt_fail(RT_ERR_FORMAT, "%s does not fit /%s (%lld bytes): %lld checksums of "
                     "block_bytes %lld", path, name, (long long)total_bytes, (long long)n,
                     (long long)bb);
        goto done;
    }
    *blocks = malloc((size_t)(n > 0 ? n : 1) * sizeof **blocks);
    if (!*blocks) {
        st = rt_fail(RT_ERR_NOMEM, "cannot allocate %zu bytes", (size_t)n * sizeof **blocks);
        goto done;
    }
    if (n > 0 && H5Dread(ds, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, *blocks) < 0) {
        st = rt_hdf5_error("H5Dread(checksums)", __FILE__, __LINE__);
        free(*blocks);
        *blocks = NULL;
        goto done;
    }
    *block_bytes = bb;
    *nblocks = (int64_t)n;
done:
    if (space >= 0)
        H5Sclose(space);
    H5Dclose(ds);
    return st;
}

static rt_status write_u32_attr(hid_t obj, const char *name, uint32_t v)
{
    rt_status st = RT_OK;
    hid_t space = H5Screate(H5S_SCALAR);
    CHECK_HDF5(space);
    hid_t attr = H5Acreate2(obj, name, H5T_STD_U32LE, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0 || H5Awrite(attr, H5T_NATIVE_UINT32, &v) < 0)
        st = rt_hdf5_error("H5Awrite", __FILE__, __LINE__);
    if (attr >= 0)
        H5Aclose(attr);
    H5Sclose(space);
    return st;
}

rt_status dataset_crc_write(hid_t file, hid_t dset, const char *name, const dataset_crc_t *c)
{
    TRY(write_u32_attr(dset, DATASET_CRC_ATTR, c->whole));
    if (!c->blocks)
        return RT_OK;
    htri_t group = H5Lexists(file, DATASET_CRC_BLOCKS_GROUP, H5P_DEFAULT);
    CHECK_HDF5(group);
    if (!group) {
        hid_t g = H5Gcreate2(file, DATASET_CRC_BLOCKS_GROUP, H5P_DEFAULT, H5P_DEFAULT,
                             H5P_DEFAULT);
        CHECK_HDF5(g);
        H5Gclose(g);
    }
    char path[96];
    snprintf(path, sizeof path, "%s/%s", DATASET_CRC_BLOCKS_GROUP, name);
    hsize_t dim = (hsize_t)c->nblocks;
    hid_t space = H5Screate_simple(1, &dim, NULL);
    CHECK_HDF5(space);
    rt_status st = RT_OK;
    hid_t ds = H5Dcreate2(file, path, H5T_STD_U32LE, space, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    int64_t bb = c->block_bytes;
    if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, c->blocks) < 0)
        st = rt_hdf5_error("H5Dwrite(checksums)", __FILE__, __LINE__);
    else
        st = h5_write_attr_i64(ds, "block_bytes", &bb, 1);
    if (ds >= 0)
        H5Dclose(ds);
    H5Sclose(space);
    return st;
}

rt_status dataset_crc_array_bytes(hid_t dset, int64_t *bytes)
{
    hid_t space = H5Dget_space(dset), type = H5Dget_type(dset);
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    size_t size = type >= 0 ? H5Tget_size(type) : 0;
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    if (n < 0 || size == 0)
        return rt_hdf5_error("H5Dget_space/H5Dget_type", __FILE__, __LINE__);
    *bytes = (int64_t)n * (int64_t)size;
    return RT_OK;
}

rt_status dataset_crc_stream(hid_t dset, dataset_crc_t *c)
{
    rt_status st = RT_OK;
    hid_t fspace = H5Dget_space(dset), ftype = H5Dget_type(dset);
    hid_t mtype = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    void *buf = NULL;
    if (fspace < 0 || ftype < 0) {
        st = rt_hdf5_error("H5Dget_space/H5Dget_type", __FILE__, __LINE__);
        goto done;
    }
    /* the stored type itself, little-endian: the bytes the CRC is defined on */
    mtype = H5Tcopy(ftype);
    const size_t elem = H5Tget_size(ftype);
    if (mtype < 0 || (elem > 1 && H5Tset_order(mtype, H5T_ORDER_LE) < 0)) {
        st = rt_hdf5_error("H5Tcopy", __FILE__, __LINE__);
        goto done;
    }
    int rank = H5Sget_simple_extent_ndims(fspace);
    hsize_t dims[H5S_MAX_RANK], off[H5S_MAX_RANK], cnt[H5S_MAX_RANK];
    if (rank < 0 || H5Sget_simple_extent_dims(fspace, dims, NULL) < 0) {
        st = rt_hdf5_error("H5Sget_simple_extent_dims", __FILE__, __LINE__);
        goto done;
    }
    if (rank == 0) {
        st = rt_fail(RT_ERR_FORMAT, "a scalar where an array belongs");
        goto done;
    }
    size_t row_bytes = elem;
    for (int i = 1; i < rank; i++)
        row_bytes *= (size_t)dims[i];
    if (dims[0] == 0 || row_bytes == 0)
        goto done;
    hsize_t rows = STREAM_PIECE / row_bytes > 0 ? STREAM_PIECE / row_bytes : 1;
    buf = malloc(rows * row_bytes);
    if (!buf) {
        st = rt_fail(RT_ERR_NOMEM, "cannot allocate %zu bytes", (size_t)(rows * row_bytes));
        goto done;
    }
    for (int i = 0; i < rank; i++) {
        off[i] = 0;
        cnt[i] = dims[i];
    }
    for (hsize_t r = 0; r < dims[0]; r += rows) {
        off[0] = r;
        cnt[0] = dims[0] - r < rows ? dims[0] - r : rows;
        if (mspace >= 0)
            H5Sclose(mspace);
        mspace = H5Screate_simple(rank, cnt, NULL);
        if (mspace < 0 ||
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, off, NULL, cnt, NULL) < 0 ||
            H5Dread(dset, mtype, mspace, fspace, H5P_DEFAULT, buf) < 0) {
            st = rt_hdf5_error("H5Dread", __FILE__, __LINE__);
            goto done;
        }
        /* already little-endian bytes: feed them as such */
        feed_le(c, buf, (size_t)cnt[0] * row_bytes);
    }
done:
    free(buf);
    if (mspace >= 0)
        H5Sclose(mspace);
    if (mtype >= 0)
        H5Tclose(mtype);
    if (ftype >= 0)
        H5Tclose(ftype);
    if (fspace >= 0)
        H5Sclose(fspace);
    return st;
}
