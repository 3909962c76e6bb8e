/* dataset_write.c - creating dataset files under a temporary name and
 * renaming them into place only when complete. */
/* POSIX 2008: pread, strdup, O_CLOEXEC, O_DIRECTORY */
#define _POSIX_C_SOURCE 200809L
#include "data/dataset_write.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/check.h"
#include "common/hdf5_util.h"
#include "data/dataset_crc.h"
#include "data/dataset_h5.h"

/* The checksums of one array, computed as its rows are put in order; rows
 * put out of order (or missing) make commit read the array back instead. */
typedef struct {
    char name[16];        /* "inputs", "labels", "tokens"; "" unused */
    int64_t rows;
    size_t row_bytes;
    size_t elem_size;
    int64_t next_row;     /* rows [0, next_row) fed in order */
    bool in_order;
    dataset_crc_t crc;
} writer_array_t;

#define WRITER_ARRAYS 2

struct dataset_writer {
    char *path;
    char *tmp;
    hid_t file;
    writer_array_t arrays[WRITER_ARRAYS];
};

rt_status dataset_writer_create(const char *path, dataset_writer_t **out)
{
    *out = NULL;
    rt_hdf5_quiet();
    dataset_writer_t *w = calloc(1, sizeof *w);
    CHECK_ALLOC(w, sizeof *w);
    w->file = H5I_INVALID_HID;
    size_t len = strlen(path) + 32;
    w->path = strdup(path);
    w->tmp = malloc(len);
    if (!w->path || !w->tmp) {
        dataset_writer_abort(w);
        return rt_fail(RT_ERR_NOMEM, "%s", path);
    }
    snprintf(w->tmp, len, "%s.tmp.%ld", path, (long)getpid());
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) {
        /* say why in POSIX terms when we can (missing directory, permissions) */
        int fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = errno;
        if (fd >= 0) {
            close(fd);
            unlink(w->tmp);
        }
        rt_status st = rt_fail(RT_ERR_IO, "%s: cannot create: %s", path,
                               fd < 0 ? strerror(e) : "HDF5 refused the file");
        free(w->tmp);
        w->tmp = NULL;
        dataset_writer_abort(w);
        return st;
    }
    *out = w;
    return RT_OK;
}

static rt_status writer_fail(dataset_writer_t *w, rt_status st)
{
    return rt_fail_context(st, "%s", w->path);
}

static rt_status common_attrs(dataset_writer_t *w, const char *kind)
{
    int64_t version = DATASET_FORMAT_VERSION;
    TRY(h5_write_attr_string(w->file, "format", DATASET_FORMAT));
    TRY(h5_write_attr_i64(w->file, "format_version", &version, 1));
    TRY(h5_write_attr_string(w->file, "kind", kind));
    return RT_OK;
}

static rt_status create_array(dataset_writer_t *w, const char *name, int rank,
                              const hsize_t *dims, rt_dtype type)
{
    writer_array_t *a = NULL;
    for (int i = 0; i < WRITER_ARRAYS && !a; i++)
        if (!w->arrays[i].name[0])
            a = &w->arrays[i];
    if (!a)
        return rt_fail(RT_ERR_INVALID, "%s: more arrays than a dataset file holds", name);
    hid_t ftype;
    switch (type) {
    case RT_DTYPE_U8: ftype = H5T_STD_U8LE; break;
    case RT_DTYPE_U16: ftype = H5T_STD_U16LE; break;
    case RT_DTYPE_I32: ftype = H5T_STD_I32LE; break;
    case RT_DTYPE_F32: ftype = H5T_IEEE_F32LE; break;
    default: return rt_fail(RT_ERR_INVALID, "%s: unsupported element type", name);
    }
    hid_t space = H5Screate_simple(rank, dims, NULL);
    CHECK_HDF5(space);
    /* default creation properties: contiguous, unfiltered, allocated late */
    hid_t dset = H5Dcreate2(w->file, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(space);
    CHECK_HDF5(dset);
    H5Dclose(dset);
    /* the arrays that may be read by offset get per-block checksums too */
    snprintf(a->name, sizeof a->name, "%s", name + 1);
    a->rows = (int64_t)dims[0];
    a->elem_size = rt_dtype_size(type);
    a->row_bytes = a->elem_size;
    for (int i = 1; i < rank; i++)
        a->row_bytes *= (size_t)dims[i];
    a->in_order = true;
    return dataset_crc_init(&a->crc, a->rows * (int64_t)a->row_bytes,
                            strcmp(name, "/labels") ? DATASET_CRC_BLOCK_BYTES : 0);
}

static writer_array_t *find_array(dataset_writer_t *w, const char *name)
{
    for (int i = 0; i < WRITER_ARRAYS; i++)
        if (w->arrays[i].name[0] && !strcmp(w->arrays[i].name, name))
            return &w->arrays[i];
    return NULL;
}

rt_status dataset_writer_classification(dataset_writer_t *w, int64_t n, int dims,
                                        const int64_t *shape, rt_dtype input_type,
                                        rt_dtype label_type, int num_classes)
{
    CHECK_ARG(n > 0 && dims >= 1 && dims <= DATASET_MAX_DIMS && num_classes > 0,
              "%s: bad classification shape", w->path);
    hsize_t idims[DATASET_MAX_DIMS + 1];
    idims[0] = (hsize_t)n;
    for (int i = 0; i < dims; i++)
        idims[i + 1] = (hsize_t)shape[i];
    hsize_t ldims[1] = {(hsize_t)n};
    int64_t classes = num_classes;
    rt_status st;
    TRY_GOTO(st, common_attrs(w, "classification"), fail);
    TRY_GOTO(st, h5_write_attr_i64(w->file, "num_classes", &classes, 1), fail);
    TRY_GOTO(st, h5_write_attr_i64(w->file, "num_records", &n, 1), fail);
    TRY_GOTO(st, h5_write_attr_i64(w->file, "input_shape", shape, dims), fail);
    TRY_GOTO(st, create_array(w, "/inputs", dims + 1, idims, input_type), fail);
    TRY_GOTO(st, create_array(w, "/labels", 1, ldims, label_type), fail);
    return RT_OK;
fail:
    return writer_fail(w, st);
}

rt_status dataset_writer_tokens(dataset_writer_t *w, int64_t n, rt_dtype type,
                                int vocab_size)
{
    CHECK_ARG(n > 0 && vocab_size > 0, "%s: bad tokens shape", w->path);
    hsize_t dims[1] = {(hsize_t)n};
    int64_t vocab = vocab_size;
    rt_status st;
    TRY_GOTO(st, common_attrs(w, "tokens"), fail);
    TRY_GOTO(st, h5_write_attr_i64(w->file, "vocab_size", &vocab, 1), fail);
    TRY_GOTO(st, h5_write_attr_i64(w->file, "num_tokens", &n, 1), fail);
    TRY_GOTO(st, create_array(w, "/tokens", 1, dims, type), fail);
    return RT_OK;
fail:
    return writer_fail(w, st);
}

rt_status dataset_writer_put(dataset_writer_t *w, const char *name, int64_t start,
                             int64_t count, const void *data)
{
    rt_status st = RT_OK;
    char path[64];
    snprintf(path, sizeof path, "/%s", name);
    hid_t dset = H5Dopen2(w->file, path, H5P_DEFAULT);
    if (dset < 0)
        return rt_fail(RT_ERR_INVALID, "%s: no dataset %s declared", w->path, path);
    hid_t fspace = H5Dget_space(dset);
    hid_t ftype = H5Dget_type(dset);
    hid_t mspace = H5I_INVALID_HID;
    int rank = H5Sget_simple_extent_ndims(fspace);
    hsize_t dims[DATASET_MAX_DIMS + 1], off[DATASET_MAX_DIMS + 1], cnt[DATASET_MAX_DIMS + 1];
    H5Sget_simple_extent_dims(fspace, dims, NULL);
    if (start < 0 || count < 0 || (hsize_t)(start + count) > dims[0]) {
        st = rt_fail(RT_ERR_INVALID, "%s: rows [%lld, %lld) outside %s", w->path,
                     (long long)start, (long long)(start + count), path);
        goto done;
    }
    if (count == 0)
        goto done;
    for (int i = 0; i < rank; i++) {
        off[i] = 0;
        cnt[i] = dims[i];
    }
    off[0] = (hsize_t)start;
    cnt[0] = (hsize_t)count;
    mspace = H5Screate_simple(rank, cnt, NULL);
    hid_t mtype = h5_native_type(h5_type_classify(ftype, NULL));
    if (mspace < 0 || H5Sselect_hyperslab(fspace, H5S_SELECT_SET, off, NULL, cnt, NULL) < 0 ||
        H5Dwrite(dset, mtype, mspace, fspace, H5P_DEFAULT, data) < 0) {
        st = writer_fail(w, rt_hdf5_error("H5Dwrite", __FILE__, __LINE__));
    } else {
        writer_array_t *a = find_array(w, name);
        if (a && a->in_order && start == a->next_row) {
            dataset_crc_feed(&a->crc, data, (size_t)count * (a->row_bytes / a->elem_size),
                             a->elem_size);
            a->next_row += count;
        } else if (a) {
            a->in_order = false;
        }
    }
done:
    if (mspace >= 0)
        H5Sclose(mspace);
    H5Tclose(ftype);
    H5Sclose(fspace);
    H5Dclose(dset);
    return st;
}

rt_status dataset_writer_set_string(dataset_writer_t *w, const char *name, const char *value)
{
    rt_status st = h5_write_attr_string(w->file, name, value);
    return st == RT_OK ? RT_OK : writer_fail(w, st);
}

static rt_status fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return rt_fail(RT_ERR_IO, "%s: open for fsync: %s", path, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    /* some file systems cannot fsync a directory; that is not a failure */
    if (rc != 0 && !(flags & O_DIRECTORY && (e == EINVAL || e == EBADF)))
        return rt_fail(RT_ERR_IO, "%s: fsync: %s", path, strerror(e));
    return RT_OK;
}

/* Each array's checksums, from the rows as they were put or, when they came
 * out of order or not all, from the array read back. */
static rt_status write_checksums(dataset_writer_t *w)
{
    for (int i = 0; i < WRITER_ARRAYS; i++) {
        writer_array_t *a = &w->arrays[i];
        if (!a->name[0])
            continue;
        char path[32];
        snprintf(path, sizeof path, "/%s", a->name);
        hid_t dset = H5Dopen2(w->file, path, H5P_DEFAULT);
        CHECK_HDF5(dset);
        rt_status st = RT_OK;
        if (!a->in_order || a->next_row != a->rows) {
            int64_t block = a->crc.block_bytes;
            dataset_crc_free(&a->crc);
            st = dataset_crc_init(&a->crc, a->rows * (int64_t)a->row_bytes, block);
            if (st == RT_OK)
                st = dataset_crc_stream(dset, &a->crc);
        }
        if (st == RT_OK)
            st = dataset_crc_write(w->file, dset, a->name, &a->crc);
        H5Dclose(dset);
        if (st != RT_OK)
            return writer_fail(w, st);
    }
    return RT_OK;
}

rt_status dataset_writer_commit(dataset_writer_t *w)
{
    rt_status st = write_checksums(w);
    if (st != RT_OK)
        goto fail;
    herr_t rc = H5Fclose(w->file);
    w->file = H5I_INVALID_HID;
    if (rc < 0) {
        st = rt_fail(RT_ERR_IO, "%s: closing the HDF5 file failed", w->path);
        goto fail;
    }
    TRY_GOTO(st, fsync_path(w->tmp, O_RDONLY), fail);
    if (rename(w->tmp, w->path) != 0) {
        st = rt_fail(RT_ERR_IO, "%s: rename from %s: %s", w->path, w->tmp, strerror(errno));
        goto fail;
    }
    char *dir_copy = strdup(w->path);
    if (dir_copy) {
        st = fsync_path(dirname(dir_copy), O_RDONLY | O_DIRECTORY);
        free(dir_copy);
    }
    free(w->tmp);
    w->tmp = NULL;
    dataset_writer_abort(w);
    return st;
fail:
    dataset_writer_abort(w);
    return st;
}

void dataset_writer_abort(dataset_writer_t *w)
{
    if (!w)
        return;
    if (w->file >= 0)
        H5Fclose(w->file);
    if (w->tmp)
        unlink(w->tmp);
    for (int i = 0; i < WRITER_ARRAYS; i++)
        dataset_crc_free(&w->arrays[i].crc);
    free(w->tmp);
    free(w->path);
    free(w);
}

rt_status dataset_write_f32_classification(const char *path, const float *inputs,
                                           const int32_t *labels, int64_t rows, int64_t features,
                                           int num_classes)
{
    dataset_writer_t *w = NULL;
    TRY(dataset_writer_create(path, &w));
    rt_status st = dataset_writer_classification(w, rows, 1, &features, RT_DTYPE_F32,
                                                 RT_DTYPE_I32, num_classes);
    if (st == RT_OK)
        st = dataset_writer_put(w, "inputs", 0, rows, inputs);
    if (st == RT_OK)
        st = dataset_writer_put(w, "labels", 0, rows, labels);
    if (st != RT_OK) {
        dataset_writer_abort(w);
        return st;
    }
    return dataset_writer_commit(w);
}
