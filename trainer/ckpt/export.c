/* export.c - parameters to and from HDF5 by state_dict name (see export.h). */
#define _POSIX_C_SOURCE 200809L /* O_CLOEXEC */
#include "trainer/ckpt/export.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/check.h"
#include "common/hdf5_util.h"

rt_status params_export_check(const char *path)
{
    CHECK_ARG(path && *path, "params_export_check: no path");
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return rt_fail(RT_ERR_IO, "cannot write %s: it is a directory", path);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        return RT_OK;
    }
    if (errno != ENOENT)
        return rt_fail(RT_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return rt_fail(RT_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    close(fd);
    unlink(path);
    return RT_OK;
}

rt_status params_export_h5(const param_registry_t *reg, const float *arena,
                           const char *model_spec, const char *path)
{
    rt_status st = RT_OK;
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), group = -1;
    if (file < 0) {
        rt_hdf5_error("H5Fcreate", __FILE__, __LINE__);
        return rt_fail_context(RT_ERR_IO, "cannot create %s", path);
    }
    TRY_GOTO(st, h5_write_attr_string(file, "format", "ringtrain-params"), close_file);
    TRY_GOTO(st, h5_write_attr_string(file, "model_spec", model_spec), close_file);
    group = H5Gcreate2(file, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (group < 0) {
        st = rt_hdf5_error("H5Gcreate2", __FILE__, __LINE__);
        goto close_file;
    }
    for (int i = 0; i < reg->count && st == RT_OK; i++) {
        const param_entry_t *e = &reg->entries[i];
        hsize_t dims[RT_TENSOR_MAX_DIMS];
        for (int d = 0; d < e->ndim; d++)
            dims[d] = (hsize_t)e->shape[d];
        hid_t space = H5Screate_simple(e->ndim, dims, NULL);
        hid_t dset = space < 0 ? -1 : H5Dcreate2(group, e->name, H5T_IEEE_F32LE, space,
                                                 H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (dset < 0 || H5Dwrite(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                 arena + e->offset) < 0)
            st = rt_hdf5_error("writing a parameter", __FILE__, __LINE__);
        if (dset >= 0)
            H5Dclose(dset);
        if (space >= 0)
            H5Sclose(space);
    }
    H5Gclose(group);
close_file:
    if (H5Fclose(file) < 0 && st == RT_OK)
        st = rt_hdf5_error("H5Fclose", __FILE__, __LINE__);
    if (st != RT_OK)
        return rt_fail_context(st, "exporting parameters to %s", path);
    return RT_OK;
}

rt_status params_read_spec_h5(const char *path, char *buf, size_t size)
{
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        rt_hdf5_error("H5Fopen", __FILE__, __LINE__);
        return rt_fail_context(RT_ERR_IO, "cannot open %s", path);
    }
    bool present = false;
    rt_status st = h5_attr_string(file, "model_spec", buf, size, &present);
    if (st == RT_OK && !present)
        st = rt_fail(RT_ERR_FORMAT, "%s has no model_spec attribute (not ringtrain parameters)", path);
    else if (st != RT_OK)
        rt_fail_context(st, "%s: model_spec", path);
    H5Fclose(file);
    return st;
}

rt_status params_import_h5(const param_registry_t *reg, float *arena, const char *path)
{
    rt_status st = RT_OK;
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        rt_hdf5_error("H5Fopen", __FILE__, __LINE__);
        return rt_fail_context(RT_ERR_IO, "cannot open %s", path);
    }
    for (int i = 0; i < reg->count && st == RT_OK; i++) {
        const param_entry_t *e = &reg->entries[i];
        char name[RT_PARAM_NAME_MAX + 8];
        snprintf(name, sizeof name, "/params/%s", e->name);
        if (H5Lexists(file, "/params", H5P_DEFAULT) <= 0 || H5Lexists(file, name, H5P_DEFAULT) <= 0) {
            st = rt_fail(RT_ERR_FORMAT, "%s has no dataset %s", path, name);
            break;
        }
        hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
        hid_t space = dset < 0 ? -1 : H5Dget_space(dset);
        hsize_t dims[RT_TENSOR_MAX_DIMS + 1] = {0};
        int nd = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
        bool same = nd == e->ndim;
        if (same && H5Sget_simple_extent_dims(space, dims, NULL) < 0)
            same = false;
        for (int d = 0; same && d < nd; d++)
            same = dims[d] == (hsize_t)e->shape[d];
        if (dset < 0 || space < 0)
            st = rt_hdf5_error("opening a parameter", __FILE__, __LINE__);
        else if (!same) {
            char want[64];
            rt_tensor_t t = param_view(reg, i, arena);
            st = rt_fail(RT_ERR_FORMAT, "%s: %s does not have the model's shape %s", path, name,
                         tensor_shape_str(&t, want, sizeof want));
        } else if (H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                           arena + e->offset) < 0)
            st = rt_hdf5_error("reading a parameter", __FILE__, __LINE__);
        if (space >= 0)
            H5Sclose(space);
        if (dset >= 0)
            H5Dclose(dset);
    }
    H5Fclose(file);
    return st;
}
