/* export.c - parameters to HDF5 by state_dict name (see export.h). */
#include "trainer/export.h"

#include <hdf5.h>
#include <string.h>

#include "common/check.h"

static rt_status write_string_attr(hid_t loc, const char *name, const char *value)
{
    rt_status st = RT_OK;
    hid_t type = H5Tcopy(H5T_C_S1), space = -1, attr = -1;
    if (type < 0)
        return rt_hdf5_error("H5Tcopy", __FILE__, __LINE__);
    if (H5Tset_size(type, strlen(value) + 1) < 0 || (space = H5Screate(H5S_SCALAR)) < 0 ||
        (attr = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(attr, type, value) < 0)
        st = rt_hdf5_error("writing attribute", __FILE__, __LINE__);
    if (attr >= 0)
        H5Aclose(attr);
    if (space >= 0)
        H5Sclose(space);
    H5Tclose(type);
    return st;
}

rt_status params_export_h5(const param_set_t *ps, const char *model_spec, const char *path)
{
    rt_status st = RT_OK;
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), group = -1;
    if (file < 0) {
        rt_hdf5_error("H5Fcreate", __FILE__, __LINE__);
        return rt_fail_context(RT_ERR_IO, "cannot create %s", path);
    }
    TRY_GOTO(st, write_string_attr(file, "format", "ringtrain-params"), close_file);
    TRY_GOTO(st, write_string_attr(file, "model_spec", model_spec), close_file);
    group = H5Gcreate2(file, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (group < 0) {
        st = rt_hdf5_error("H5Gcreate2", __FILE__, __LINE__);
        goto close_file;
    }
    for (int i = 0; i < ps->count && st == RT_OK; i++) {
        const param_entry_t *e = &ps->entries[i];
        hsize_t dims[RT_TENSOR_MAX_DIMS];
        for (int d = 0; d < e->ndim; d++)
            dims[d] = (hsize_t)e->shape[d];
        hid_t space = H5Screate_simple(e->ndim, dims, NULL);
        hid_t dset = space < 0 ? -1 : H5Dcreate2(group, e->name, H5T_IEEE_F32LE, space,
                                                 H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (dset < 0 || H5Dwrite(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                 ps->data + e->offset) < 0)
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
