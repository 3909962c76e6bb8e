/* hdf5_util.c - HDF5 attribute helpers shared by datasets, parameter
 * exports and checkpoints: string and integer attributes, read and written
 * the way h5py reads and writes them. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "common/hdf5_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"

/* A variable-length string attribute's stored value must hold one whole
 * element as HDF5 keeps it on disk: its length (4 bytes), the global heap
 * collection's address (the file's address size) and the object's index
 * (4 bytes). libhdf5 1.10.8 sizes the stored value from the datatype
 * message's size field, but H5Aread copies a whole element out of it: a
 * damaged size field (15 instead of 16, found by fuzz_h5_open) makes it
 * read past its own buffer. */
static rt_status vlen_value_size_check(hid_t loc, hid_t attr, const char *name)
{
    size_t sizeof_addr = 8, sizeof_size = 8;
    hid_t file = H5Iget_file_id(loc);
    hid_t fcpl = file >= 0 ? H5Fget_create_plist(file) : H5I_INVALID_HID;
    herr_t got = fcpl >= 0 ? H5Pget_sizes(fcpl, &sizeof_addr, &sizeof_size) : -1;
    if (fcpl >= 0)
        H5Pclose(fcpl);
    if (file >= 0)
        H5Fclose(file);
    if (got < 0)
        return rt_hdf5_error("H5Pget_sizes", __FILE__, __LINE__);
    hsize_t stored = H5Aget_storage_size(attr);
    uint64_t element = 4 + (uint64_t)sizeof_addr + 4;
    if ((uint64_t)stored < element)
        return rt_fail(RT_ERR_FORMAT,
                       "string attribute '%s': its stored value is %llu bytes, shorter than one "
                       "variable-length string (%llu)",
                       name, (unsigned long long)stored, (unsigned long long)element);
    return RT_OK;
}

rt_status h5_attr_string_dup(hid_t loc, const char *name, char **out, bool *present)
{
    rt_status st = RT_OK;
    *present = false;
    *out = NULL;
    htri_t exists = H5Aexists(loc, name);
    CHECK_HDF5(exists);
    if (!exists)
        return RT_OK;
    *present = true;
    hid_t attr = H5Aopen(loc, name, H5P_DEFAULT);
    CHECK_HDF5(attr);
    hid_t ftype = H5Aget_type(attr);
    hid_t mtype = H5I_INVALID_HID;
    if (ftype < 0) {
        st = rt_hdf5_error("H5Aget_type", __FILE__, __LINE__);
        goto close_attr;
    }
    if (H5Tget_class(ftype) != H5T_STRING) {
        st = rt_fail(RT_ERR_FORMAT, "attribute '%s' is not a string", name);
        goto close_ftype;
    }
    /* one string: H5Aread writes every element into a buffer sized for one */
    hid_t space = H5Aget_space(attr);
    hssize_t npoints = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (space >= 0)
        H5Sclose(space);
    if (npoints != 1) {
        st = rt_fail(RT_ERR_FORMAT, "attribute '%s' is not a single string", name);
        goto close_ftype;
    }
    mtype = H5Tcopy(H5T_C_S1);
    if (H5Tis_variable_str(ftype) > 0) {
        char *value = NULL;
        st = h5_vlen_attr_check(loc, name);
        if (st != RT_OK)
            goto close_mtype;
        st = vlen_value_size_check(loc, attr, name);
        if (st != RT_OK)
            goto close_mtype;
        H5Tset_size(mtype, H5T_VARIABLE);
        H5Tset_cset(mtype, H5Tget_cset(ftype));
        if (H5Aread(attr, mtype, &value) < 0) {
            st = rt_hdf5_error("H5Aread", __FILE__, __LINE__);
            goto close_mtype;
        }
        *out = strdup(value ? value : "");
        H5free_memory(value);
    } else {
        /* fixed-length (e.g. written by other tools): read as is */
        size_t size = H5Tget_size(ftype);
        char *tmp = calloc(size + 1, 1);
        if (!tmp) {
            st = rt_fail(RT_ERR_NOMEM, "attribute '%s'", name);
            goto close_mtype;
        }
        H5Tset_size(mtype, size);
        H5Tset_cset(mtype, H5Tget_cset(ftype));
        H5Tset_strpad(mtype, H5Tget_strpad(ftype));
        if (H5Aread(attr, mtype, tmp) < 0) {
            free(tmp);
            st = rt_hdf5_error("H5Aread", __FILE__, __LINE__);
            goto close_mtype;
        }
        *out = tmp;
    }
    if (!*out)
        st = rt_fail(RT_ERR_NOMEM, "attribute '%s'", name);
close_mtype:
    H5Tclose(mtype);
close_ftype:
    H5Tclose(ftype);
close_attr:
    H5Aclose(attr);
    return st;
}

rt_status h5_attr_string(hid_t loc, const char *name, char *buf, size_t cap, bool *present)
{
    char *value = NULL;
    buf[0] = '\0';
    TRY(h5_attr_string_dup(loc, name, &value, present));
    if (value)
        snprintf(buf, cap, "%s", value);
    free(value);
    return RT_OK;
}

rt_status h5_attr_i64(hid_t loc, const char *name, int64_t *vals, int cap, int *count,
                      bool *present)
{
    rt_status st = RT_OK;
    *present = false;
    *count = 0;
    htri_t exists = H5Aexists(loc, name);
    CHECK_HDF5(exists);
    if (!exists)
        return RT_OK;
    *present = true;
    hid_t attr = H5Aopen(loc, name, H5P_DEFAULT);
    CHECK_HDF5(attr);
    hid_t ftype = H5Aget_type(attr);
    hid_t space = H5Aget_space(attr);
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (ftype < 0 || H5Tget_class(ftype) != H5T_INTEGER)
        st = rt_fail(RT_ERR_FORMAT, "attribute '%s' is not an integer", name);
    else if (n < 1 || n > cap)
        st = rt_fail(RT_ERR_FORMAT, "attribute '%s' has %lld values (expected 1 to %d)", name,
                     (long long)n, cap);
    else if (H5Aread(attr, H5T_NATIVE_INT64, vals) < 0)
        st = rt_hdf5_error("H5Aread", __FILE__, __LINE__);
    else
        *count = (int)n;
    if (space >= 0)
        H5Sclose(space);
    if (ftype >= 0)
        H5Tclose(ftype);
    H5Aclose(attr);
    return st;
}

rt_status h5_write_attr_string(hid_t loc, const char *name, const char *value)
{
    rt_status st = RT_OK;
    /* variable-length UTF-8, which h5py returns as str */
    hid_t type = H5Tcopy(H5T_C_S1);
    CHECK_HDF5(type);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = space >= 0 ? H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
    if (attr < 0 || H5Awrite(attr, type, &value) < 0)
        st = rt_hdf5_error("H5Awrite", __FILE__, __LINE__);
    if (attr >= 0)
        H5Aclose(attr);
    if (space >= 0)
        H5Sclose(space);
    H5Tclose(type);
    return st;
}

rt_status h5_write_attr_i64(hid_t loc, const char *name, const int64_t *vals, int count)
{
    rt_status st = RT_OK;
    hsize_t dim = (hsize_t)count;
    /* a single value is a scalar, so h5py reads it as a plain int */
    hid_t space = count == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
    CHECK_HDF5(space);
    hid_t attr = H5Acreate2(loc, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0 || H5Awrite(attr, H5T_NATIVE_INT64, vals) < 0)
        st = rt_hdf5_error("H5Awrite", __FILE__, __LINE__);
    if (attr >= 0)
        H5Aclose(attr);
    H5Sclose(space);
    return st;
}
