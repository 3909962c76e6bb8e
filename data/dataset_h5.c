/* dataset_h5.c - HDF5 attribute and type helpers for dataset files. */
/* POSIX 2008: pread, strdup, O_CLOEXEC, O_DIRECTORY */
#define _POSIX_C_SOURCE 200809L
#include "data/dataset_h5.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"

rt_dtype h5_type_classify(hid_t type, bool *integer)
{
    H5T_class_t cls = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
    size_t size = type >= 0 ? H5Tget_size(type) : 0;
    if (integer)
        *integer = cls == H5T_INTEGER;
    if (cls == H5T_FLOAT)
        return size == 4 ? RT_DTYPE_F32 : size == 8 ? RT_DTYPE_F64 : RT_DTYPE_COUNT;
    if (cls != H5T_INTEGER)
        return RT_DTYPE_COUNT;
    H5T_sign_t sg = H5Tget_sign(type);
    if (sg != H5T_SGN_NONE && sg != H5T_SGN_2)
        return RT_DTYPE_COUNT;
    bool sign = sg == H5T_SGN_2;
    switch (size) {
    case 1: return sign ? RT_DTYPE_COUNT : RT_DTYPE_U8;
    case 2: return sign ? RT_DTYPE_COUNT : RT_DTYPE_U16;
    case 4: return sign ? RT_DTYPE_I32 : RT_DTYPE_U32;
    case 8: return sign ? RT_DTYPE_I64 : RT_DTYPE_U64;
    default: return RT_DTYPE_COUNT;
    }
}

hid_t h5_native_type(rt_dtype t)
{
    switch (t) {
    case RT_DTYPE_U8: return H5T_NATIVE_UINT8;
    case RT_DTYPE_U16: return H5T_NATIVE_UINT16;
    case RT_DTYPE_I32: return H5T_NATIVE_INT32;
    case RT_DTYPE_F32: return H5T_NATIVE_FLOAT;
    default: return H5I_INVALID_HID;
    }
}
