/* dataset_h5.c - HDF5 attribute and type helpers for dataset files. */
/* POSIX 2008: pread, strdup, O_CLOEXEC, O_DIRECTORY */
#define _POSIX_C_SOURCE 200809L
#include "data/dataset_h5.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"

dataset_dtype h5_type_classify(hid_t type)
{
    H5T_class_t cls = H5Tget_class(type);
    size_t size = H5Tget_size(type);
    if (cls == H5T_FLOAT)
        return size == 4 ? DATASET_F32 : 0;
    if (cls != H5T_INTEGER)
        return 0;
    H5T_sign_t sign = H5Tget_sign(type);
    if (size == 1 && sign == H5T_SGN_NONE)
        return DATASET_U8;
    if (size == 2 && sign == H5T_SGN_NONE)
        return DATASET_U16;
    if (size == 4 && sign == H5T_SGN_2)
        return DATASET_I32;
    return DATASET_OTHER_INT;
}

hid_t h5_native_type(dataset_dtype t)
{
    switch (t) {
    case DATASET_U8: return H5T_NATIVE_UINT8;
    case DATASET_U16: return H5T_NATIVE_UINT16;
    case DATASET_I32: return H5T_NATIVE_INT32;
    case DATASET_F32: return H5T_NATIVE_FLOAT;
    default: return H5I_INVALID_HID;
    }
}

size_t dataset_dtype_size(dataset_dtype t)
{
    switch (t) {
    case DATASET_U8: return 1;
    case DATASET_U16: return 2;
    case DATASET_I32: return 4;
    case DATASET_F32: return 4;
    default: return 0;
    }
}
